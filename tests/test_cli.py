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


def run_handler(monkeypatch, handler):
    """``rnnkit`` whose command is ``handler`` (the parsed arguments are the top level's)."""
    parser = cli.build_parser()
    real_parse = parser.parse_known_args

    def parse_with_func(argv):
        args, extras = real_parse(argv)
        args.func = handler
        return args, extras

    monkeypatch.setattr(parser, "parse_known_args", parse_with_func)
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    return cli.main([])


def test_a_bug_keeps_its_traceback(monkeypatch):
    def bug(_args):
        raise TypeError("unsupported operand type(s) for +: 'int' and 'str'")

    with pytest.raises(TypeError, match="unsupported operand"):
        run_handler(monkeypatch, bug)


def test_os_errors_about_user_files_are_one_line_others_are_bugs(monkeypatch, capsys, tmp_path):
    def unreadable(_args):
        raise PermissionError(13, "Permission denied", str(tmp_path / "corpus.txt"))

    assert run_handler(monkeypatch, unreadable) == 2
    assert (
        capsys.readouterr().err == f"rnnkit: error: {tmp_path / 'corpus.txt'}: Permission denied\n"
    )

    def no_file(_args):
        raise OSError("the C compiler crashed")

    with pytest.raises(OSError, match="compiler"):
        run_handler(monkeypatch, no_file)


def test_signals_end_a_command_with_one_line(monkeypatch, capsys):
    import os
    import signal

    from rnnkit.errors import TrainingInterrupted

    def interrupted(_args):
        raise TrainingInterrupted("interrupted at step 3; checkpoint saved in r; --resume r")

    assert run_handler(monkeypatch, interrupted) == 130
    assert (
        capsys.readouterr().err
        == "rnnkit: interrupted at step 3; checkpoint saved in r; --resume r\n"
    )

    def terminated(_args):
        os.kill(os.getpid(), signal.SIGTERM)
        raise AssertionError("SIGTERM did not stop the command")

    before = signal.getsignal(signal.SIGTERM)
    assert run_handler(monkeypatch, terminated) == 128 + signal.SIGTERM
    assert capsys.readouterr().err == "rnnkit: terminated\n"
    assert signal.getsignal(signal.SIGTERM) == before  # the handler is put back


@pytest.mark.parametrize(
    ("argv", "recipe", "fields"),
    [
        (["lm", "train"], "rnnkit.lm:LMRecipe", {"--cell": "cell", "--hidden": "hidden_size"}),
        (
            ["translate", "train"],
            "rnnkit.translate:TranslateRecipe",
            {"--attention": "attention", "--hidden-size": "hidden_size", "--lr": "lr"},
        ),
        (["embed", "train"], "rnnkit.embed:Word2VecConfig", {"--dim": "dim", "--window": "window"}),
    ],
)
def test_help_shows_the_recipe_defaults(capsys, argv, recipe, fields):
    import importlib
    import re

    module, name = recipe.split(":")
    defaults = getattr(importlib.import_module(module), name)()
    with pytest.raises(SystemExit):
        cli.main([*argv, "--help"])
    text = " ".join(capsys.readouterr().out.split("\noptions:")[1].split())  # after the usage
    for option, field in fields.items():
        shown = re.search(rf"{option} \S+ .*?\(default: (\S+?)\)", text).group(1)
        assert shown == str(getattr(defaults, field)), option


def test_lm_help_names_the_default_cell():
    from rnnkit.lm import LMRecipe
    from rnnkit.lm.cli import DESCRIPTION

    assert f"{LMRecipe.cell.upper()}," in DESCRIPTION and "LSTM" not in DESCRIPTION


@pytest.mark.parametrize("argv", [["lm", "train", "--bogus"], ["lm", "train", "--bptt", "0"]])
def test_a_bad_option_under_torchrun_is_reported_by_rank_zero_only(monkeypatch, capsys, argv):
    for rank, reported in (("0", True), ("1", False)):
        monkeypatch.setenv("RANK", rank)
        with pytest.raises(SystemExit) as stop:
            cli.main(argv)
        assert stop.value.code == 2
        err = capsys.readouterr().err
        assert bool(err.strip()) is reported, (rank, err)
        if reported:
            assert "error:" in err


@pytest.mark.parametrize(
    "argv, prog, extras",
    [(["forecast", "predict", "RUN", "--bogus"], "rnnkit forecast predict", "--bogus"),
     (["translate", "run", "RUN", "text", "--bogus", "1"], "rnnkit translate run", "--bogus 1"),
     (["forecast", "--bogus"], "rnnkit forecast", "--bogus"),
     (["--bogus"], "rnnkit", "--bogus")],
)  # fmt: skip
def test_an_unknown_option_shows_the_usage_of_the_command_typed(capsys, argv, prog, extras):
    with pytest.raises(SystemExit) as stop:
        cli.main(argv)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"usage: {prog} [-h]"), err
    assert err.endswith(f"\n{prog}: error: unrecognized arguments: {extras}\n"), err


# Every command that reads a user's text file, and the files its --encoding is for.
TEXT_READERS = [
    (["demo"], "--data"),
    (["lm", "train"], "--data"),
    (["lm", "eval"], "--data"),
    (["embed", "train"], "--data"),
    (["reference", "train"], "a --data file"),
    (["translate", "train"], "a --data .tsv"),
    (["caption", "train"], "a --data .json or .tsv"),
    (["speech", "synth"], "--corpus's transcripts"),
    (["speech", "train"], "--corpus's transcripts"),
    (["speech", "transcribe"], "--lexicon"),
    (["speech", "eval"], "--data's transcripts and --lexicon"),
    (["forecast", "train"], "a --data CSV file"),
    (["forecast", "predict"], "--data"),
    (["forecast", "backtest"], "--data"),
]


def _command_parser(names):
    import argparse

    parser = cli.build_parser()
    for name in names:
        subs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = subs.choices[name]
    return parser


@pytest.mark.parametrize(("argv", "files"), TEXT_READERS)
def test_every_reader_of_a_users_text_takes_the_same_encoding_option(argv, files):
    # forecast, speech, caption, translate and demo had none: their files had to be UTF-8.
    from rnnkit.options import encoding_name

    parser = _command_parser(argv)
    (action,) = [a for a in parser._actions if "--encoding" in a.option_strings]
    assert action.default == "utf-8" and action.type is encoding_name
    assert action.help.startswith(f"encoding of {files}")
    assert "e.g. latin-1, cp1252, utf-16-le (default: %(default)s;" in action.help


@pytest.mark.parametrize("name", ["no-such-codec", "base64"])
def test_an_encoding_that_is_not_a_text_codec_is_refused_when_parsing(capsys, name):
    with pytest.raises(SystemExit) as stop:
        cli.main(["forecast", "predict", "RUN", "--encoding", name])
    assert stop.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last == (
        f"rnnkit forecast predict: error: argument --encoding: unknown text encoding {name!r}; "
        "give a Python codec name such as utf-8, latin-1, cp1252 or utf-16-le"
    )


def _commands(parser, path=()):
    """Every (command path, parser) below ``parser``."""
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*path, name), sub
                yield from _commands(sub, (*path, name))


def test_every_option_with_a_default_shows_it_in_help(capsys):
    """`--help` shows defaults: an option that takes a value and has one says `(default: X)`
    (embed train's --format/--model/--seed and reference train's --seed said nothing)."""
    import argparse

    missing = []
    for path, parser in _commands(cli.build_parser()):
        for action in parser._actions:
            flag = action.nargs == 0 or isinstance(action, argparse._HelpAction)
            unset = action.default in (None, argparse.SUPPRESS) or action.help == argparse.SUPPRESS
            if flag or unset or not action.option_strings:
                continue
            entry = " ".join(parser._get_formatter()._format_action(action).split())
            if "default" not in entry and "(None:" not in entry:
                missing.append(f"rnnkit {' '.join(path)} {action.option_strings[-1]}")
    assert not missing, missing


EMA_TRAINERS = [
    (["lm", "train"], "rnnkit.lm.cli"),
    (["translate", "train"], "rnnkit.translate.cli"),
    (["speech", "train"], "rnnkit.speech.cli"),
    (["caption", "train"], "rnnkit.caption.cli"),
    (["forecast", "train"], "rnnkit.forecast.cli"),
]


@pytest.mark.parametrize(("argv", "module"), EMA_TRAINERS)
def test_every_train_command_gives_ema_to_the_trainer(argv, module):
    import importlib

    parser = cli.build_parser()
    recipe_of = importlib.import_module(module).recipe_from_args
    recipe = recipe_of(parser.parse_args([*argv, "--out", "RUN", "--ema", "0.99"]))
    assert recipe.ema == 0.99 and recipe.train_config().ema == 0.99
    off = recipe_of(parser.parse_args([*argv, "--out", "RUN", "--ema", "0"]))
    assert off.train_config().ema == 0.0
    plain = recipe_of(parser.parse_args([*argv, "--out", "R"]))
    assert plain.train_config().ema == 0.0  # off unless asked


@pytest.mark.parametrize(("argv", "module"), EMA_TRAINERS)
@pytest.mark.parametrize("value", ["1", "-0.5", "nan"])
def test_an_ema_decay_outside_0_1_is_refused_when_parsing(capsys, argv, module, value):
    with pytest.raises(SystemExit) as stop:
        cli.main([*argv, "--out", "RUN", "--ema", value])
    assert stop.value.code == 2
    assert "argument --ema: must be a finite number >= 0 and <= 0.999999" in capsys.readouterr().err


def test_ema_with_nt_asgd_is_one_line_that_says_how_to_turn_it_off(tmp_path, capsys):
    out = tmp_path / "run"
    code = cli.main(["lm", "train", "--optimizer", "nt-asgd", "--ema", "0.99", "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "nt-asgd" in err[0] and "--ema 0" in err[0]
    assert not out.exists()  # refused before anything was written
