import socket

import uvicorn


def test_serve_prints_its_address_and_warns_off_loopback(lm_run, run_cli, monkeypatch):
    served = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: served.append((app, kw)))
    code, _, err = run_cli("serve", lm_run, "--port", "8123")
    assert code == 0 and "http://127.0.0.1:8123/" in err and "warning" not in err
    assert served[0][1]["host"] == "127.0.0.1" and served[0][1]["port"] == 8123
    code, _, err = run_cli("serve", lm_run, "--host", "0.0.0.0")
    assert code == 0 and "warning: listening on 0.0.0.0" in err


def test_serve_rejects_what_is_not_a_run_in_one_line(tmp_path, lm_run, run_cli, monkeypatch):
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: None)
    code, _, err = run_cli("serve", lm_run, tmp_path / "nothing")
    assert code == 2 and err.strip().endswith(f"no run directory at {tmp_path / 'nothing'}")
    code, _, err = run_cli("serve", lm_run, "--port", "70000")
    assert code == 2 and "port must be between 1 and 65535" in err


def test_serve_refuses_a_port_in_use_in_one_line(lm_run, run_cli, monkeypatch):
    served = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: served.append(kw))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        code, _, err = run_cli("serve", lm_run, "--port", port)
    assert code == 2 and f"port {port} on 127.0.0.1 is in use" in err and not served
    code, _, err = run_cli("serve", lm_run, "--host", "192.0.2.1")  # not this machine's
    assert code == 2 and "cannot listen on 192.0.2.1" in err and not served


def test_serve_help_shows_the_defaults(run_cli, capsys):
    import pytest

    with pytest.raises(SystemExit):
        run_cli("serve", "--help")
    out = capsys.readouterr().out
    assert "127.0.0.1" in out and "8000" in out
