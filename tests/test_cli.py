import pytest

import rnnkit
from rnnkit import cli
from rnnkit.errors import DataError


def test_version_prints_package_version(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"rnnkit {rnnkit.__version__}"


def test_help_lists_every_command_group(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for name, _module, _help in cli.COMMAND_GROUPS:
        assert name in out


def test_no_arguments_prints_help_and_succeeds(capsys):
    assert cli.main([]) == 0
    assert "usage: rnnkit" in capsys.readouterr().out


def test_user_error_is_one_line_without_traceback(capsys, monkeypatch):
    def boom(_args):
        raise DataError("corpus 'x.txt' is empty; pass a file with text in it")

    parser = cli.build_parser()
    real_parse = parser.parse_known_args

    def parse_with_func(argv):
        args, extras = real_parse(argv)
        args.func = boom
        return args, extras

    monkeypatch.setattr(parser, "parse_known_args", parse_with_func)
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    assert cli.main([]) == 2
    err = capsys.readouterr().err
    assert err == "rnnkit: error: corpus 'x.txt' is empty; pass a file with text in it\n"
    assert "Traceback" not in err


def test_importing_rnnkit_does_not_import_torch():
    import os
    import subprocess
    import sys
    from pathlib import Path

    src = str(Path(rnnkit.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": src}
    code = "import sys, rnnkit, rnnkit.cli; print('torch' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert out.stdout.strip() == "False"
