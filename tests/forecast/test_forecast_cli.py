"""The command line end to end on a generated series, and every bad input: exit 2, one line."""

import json

import pytest
from forecast_series import SMALL, sinusoid_rows, write_wide

from rnnkit import cli


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("forecast")
    data = write_wide(tmp / "sine.csv", ["load"], [sinusoid_rows(600)])
    out = tmp / "run"
    argv = ["forecast", "train", "--data", data, "--out", out, "--max-steps", 80, *SMALL]
    assert cli.main([str(a) for a in argv]) == 0
    return out, data


def test_train_writes_the_run_directory(trained):
    out, _ = trained
    names = {p.name for p in out.iterdir()}
    assert {"run.json", "config.json", "model.safetensors", "last.safetensors"} <= names
    config = json.loads((out / "config.json").read_text())
    assert config["model"]["lags"] == [1, 2, 24] and config["data"]["step_s"] == 3600


def test_predict_prints_quantiles_as_csv_and_json_and_draws(trained, run_cli, tmp_path):
    out, _ = trained
    code, text, _ = run_cli(*["forecast", "predict", out, "--quantiles", "0.1,0.5,0.9", "--csv"])
    assert code == 0
    lines = text.strip().splitlines()
    assert lines[0] == "series,time,mean,q0.1,q0.5,q0.9" and len(lines) == 1 + 12
    first = lines[1].split(",")
    assert first[1] == "2024-01-26T00:00:00"  # the step after the last of 600 hourly values
    q10, q50, q90 = map(float, first[3:])
    assert q10 < q50 < q90
    plot = tmp_path / "f.png"
    code, text, _ = run_cli(*["forecast", "predict", out, "--json", "--horizon", 6, "--plot", plot])
    result = json.loads(text)
    assert code == 0 and len(result["series"][0]["times"]) == 6
    assert plot.read_bytes()[:4] == b"\x89PNG"


def test_plots_never_replace_the_data_or_a_picture_of_the_user(trained, run_cli, tmp_path):
    from PIL import Image

    out, data = trained
    photo = tmp_path / "photo.png"
    Image.new("RGB", (4, 4)).save(photo)
    before, csv = photo.read_bytes(), data.read_bytes()
    for command in ("predict", "backtest"):
        code, _, err = run_cli("forecast", command, out, "--plot", photo)
        assert code == 2 and f"--plot {photo} exists and is not an rnnkit image" in err
        code, _, err = run_cli("forecast", command, out, "--data", data, "--plot", data, "--force")
        assert code == 2 and "also an input" in err
    assert photo.read_bytes() == before and data.read_bytes() == csv
    assert run_cli("forecast", "predict", out, "--plot", photo, "--force")[0] == 0
    assert photo.read_bytes() != before  # replaced, now by a figure rnnkit drew:
    assert run_cli("forecast", "predict", out, "--plot", photo)[0] == 0


def test_same_seed_same_forecast(trained, run_cli):
    out, _ = trained
    runs = [run_cli(*["forecast", "predict", out, "--csv", "--seed", s])[1] for s in (3, 3, 4)]
    assert runs[0] == runs[1] and runs[0] != runs[2]


def test_backtest_with_baselines(trained, run_cli, tmp_path):
    out, _ = trained
    plot = tmp_path / "b.png"
    argv = ["forecast", "backtest", out, "--baselines", "--json", "--plot", plot, "--samples", 50]
    code, text, _ = run_cli(*argv)
    assert code == 0
    result = json.loads(text)
    assert set(result["methods"]) == {"model", "seasonal-naive", "holt-winters", "arima"}
    model = result["methods"]["model"]
    assert result["origins"] == 4  # midnights of the last 60 hours with 12 hours ahead
    assert 0 <= model["coverage_80"] <= model["coverage_95"] <= 1
    assert len(result["per_step"]["model"]["mae"]) == 12
    assert plot.read_bytes()[:4] == b"\x89PNG"


def test_backtest_of_the_validation_period_shows_the_spread_per_step(trained, run_cli):
    out, _ = trained
    code, text, _ = run_cli("forecast", "backtest", out, "--period", "valid", "--samples", 20)
    stored = json.loads((out / "calibration.json").read_text())["spread"]
    assert code == 0 and "(valid period), 12 steps each" in text
    assert f"spread factor per step {', '.join(f'{f:.2f}' for f in stored)}" in text


def _error(run_cli, argv):
    code, _, err = run_cli(*argv)
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rnnkit: error: "), err
    return lines[0]


def _train(run_cli, tmp_path, data, *extra):
    argv = ["forecast", "train", "--data", data, "--out", tmp_path / "r", "--max-steps", 1]
    return _error(run_cli, [*argv, *SMALL, *extra])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("time,v\n2024-01-01 00:00,1\n2024-01-01 00:00,2\n", r"bad.csv:3: duplicate time"),
        (
            "time,v\n2024-01-01 00:00,1\nyesterday,2\n",
            r"bad.csv:3: cannot read the time 'yesterday'",
        ),
        ("time,v\n2024-01-01 00:00,1\n2024-01-01 01:00,warm\n", r"bad.csv:3: 'warm' in column 'v'"),
        (
            "time,v\n2024-01-01 00:00,1\n2024-01-01 01:00,2\n2024-01-01 02:20,4\n"
            "2024-01-01 03:00,3\n",
            r"bad.csv:4: the time 2024-01-01 02:20:00 is off the 1h grid",
        ),
        ("time,v\n2024-01-01 00:00,1\n2024-01-01 01:00,2\n", r"series 'v' .* has 2 steps, fewer"),
    ],
)
def test_bad_files_name_the_line_or_series(tmp_path, run_cli, text, expected):
    import re

    path = tmp_path / "bad.csv"
    path.write_text(text)
    assert re.search(expected, _train(run_cli, tmp_path, path))


def test_constant_series_is_named(tmp_path, run_cli):
    rows = sinusoid_rows(200)
    data = write_wide(tmp_path / "c.csv", ["wave", "flat"], [rows, [(t, 1.0) for t, _ in rows]])
    assert "series 'flat'" in _train(run_cli, tmp_path, data) and not (tmp_path / "r").exists()


def test_missing_values_are_counted(tmp_path, run_cli):
    rows = sinusoid_rows(300)
    rows = [(t, None if i in (50, 51) else v) for i, (t, v) in enumerate(rows) if i != 100]
    data = write_wide(tmp_path / "m.csv", ["load"], [rows])
    argv = ["forecast", "train", "--data", data, "--out", tmp_path / "r", "--max-steps", 2]
    code, _, err = run_cli(*[*argv, *[a for a in SMALL if a != "--quiet"]])
    assert code == 0 and "3 missing values (1 gaps in the time column)" in err


def test_run_dir_of_another_task_and_too_long_horizon(trained, tmp_path, run_cli):
    out, _ = trained
    other = tmp_path / "lm"
    other.mkdir()
    (other / "run.json").write_text((out / "run.json").read_text().replace('"forecast"', '"lm"'))
    assert "is an 'lm' run, not a 'forecast' run" in _error(run_cli, ["forecast", "predict", other])
    line = _error(run_cli, ["forecast", "predict", out, "--horizon", 13])
    assert "horizon 13 is longer than the model was trained for (12)" in line


def test_existing_run_is_not_overwritten(trained, run_cli):
    out, data = trained
    before = (out / "model.safetensors").read_bytes()
    argv = ["forecast", "train", "--data", data, "--out", out, "--max-steps", 1, *SMALL]
    assert "already holds a run" in _error(run_cli, argv)
    assert (out / "model.safetensors").read_bytes() == before


def test_refit_from_the_command_line_and_its_first_stage(tmp_path, run_cli):
    data = write_wide(tmp_path / "s.csv", ["load"], [sinusoid_rows(600)])
    out = tmp_path / "run"
    argv = ["forecast", "train", "--data", data, "--out", out, "--max-steps", 60, *SMALL]
    code, text, _ = run_cli(*argv, "--refit", "--patience", 1)
    assert code == 0 and "the refit, " in text and str(out / "refit") in text
    first = json.loads((out / "trainer.json").read_text())
    refit = json.loads((out / "refit" / "config.json").read_text())
    assert first["step"] - first["best_step"] <= 40  # patience 1: one validation without gain
    assert refit["refit"]["steps"] == first["best_step"] == refit["train"]["max_steps"]
    scores = {}
    for extra in ([], ["--first-stage"]):
        code, text, _ = run_cli("forecast", "backtest", out, "--json", "--samples", 20, *extra)
        assert code == 0
        scores[bool(extra)] = json.loads(text)
    assert scores[True]["run"] == str(out) and scores[False]["run"] == str(out / "refit")
    assert scores[True]["methods"]["model"] != scores[False]["methods"]["model"]


def test_split_times_that_do_not_fit_the_data_are_one_line(tmp_path, run_cli):
    data = write_wide(tmp_path / "s.csv", ["load"], [sinusoid_rows(300)])
    line = _train(run_cli, tmp_path, data, "--split", "2024-01-05 00:00,2024-01-02 00:00")
    assert "split times must increase" in line and not (tmp_path / "r").exists()


def test_a_data_file_given_as_the_run_directory_is_named_a_file(tmp_path, run_cli):
    data = tmp_path / "wide.csv"
    data.write_text("time,a\n0,1\n1,2\n")
    line = _error(run_cli, ["forecast", "predict", data])
    assert line == (
        f"rnnkit: error: {data} is a file, not a run directory; "
        "give the directory `rnnkit forecast train --out` wrote"
    )


# The trained series as a user's CSV in the encodings spreadsheets and editors write, the time
# column named with letters outside ASCII (utf-16-le/-be: without a byte-order mark).
TIME_NAMES = {"latin-1": "Zeit f\u00fcr", "cp1252": "\u2019t\u2019", "utf-16-le": "Zeit f\u00fcr"}
TIME_NAMES["utf-16-be"] = TIME_NAMES["utf-16-le"]


@pytest.mark.parametrize("kind", list(TIME_NAMES))
def test_predict_reads_a_csv_in_the_encoding_given(
    trained, run_cli, tmp_path, kind, encoding_advice
):
    # predict and backtest had no --encoding: such a file was refused ("save it as UTF-8").
    out, data = trained
    path = tmp_path / "mine.csv"
    path.write_bytes(data.read_text().replace("time,", f"{TIME_NAMES[kind]},", 1).encode(kind))
    code, utf8, _ = run_cli("forecast", "predict", out, "--csv", "--data", data)
    assert code == 0
    line = _error(run_cli, ["forecast", "predict", out, "--csv", "--data", path])
    assert encoding_advice(kind) in line
    code, text, _ = run_cli("forecast", "predict", out, "--csv", "--data", path, "--encoding", kind)
    assert code == 0 and text == utf8  # the same series, the same forecast


def test_backtest_reads_a_csv_in_the_encoding_given(trained, run_cli, tmp_path, encoding_advice):
    out, data = trained
    path = tmp_path / "mine.csv"
    path.write_bytes(data.read_text().replace("time,", "Zeit f\u00fcr,", 1).encode("latin-1"))
    argv = ["forecast", "backtest", out, "--json", "--samples", 20, "--data"]
    assert encoding_advice("latin-1") in _error(run_cli, [*argv, path])
    scores = [json.loads(run_cli(*argv, *given)[1])["methods"] for given in
              ([data], [path, "--encoding", "latin-1"])]  # fmt: skip
    assert scores[0] == scores[1]


def test_train_reads_its_csv_in_the_encoding_given_and_the_run_keeps_it(
    tmp_path, run_cli, encoding_advice
):
    rows = sinusoid_rows(200)
    utf8 = write_wide(tmp_path / "utf8.csv", ["Z\u00fcrich"], [rows])
    data = tmp_path / "latin.csv"
    data.write_bytes(utf8.read_text().encode("latin-1"))
    assert encoding_advice("latin-1") in _train(run_cli, tmp_path, data)
    assert not (tmp_path / "r").exists()
    argv = ["forecast", "train", "--data", data, "--out", tmp_path / "r", "--max-steps", 1]
    assert run_cli(*argv, *SMALL, "--encoding", "latin-1")[0] == 0
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    assert config["recipe"]["encoding"] == "latin-1" and config["data"]["series"] == ["Z\u00fcrich"]
    # predict and backtest read the run's own data in the encoding it was trained with
    code, text, _ = run_cli("forecast", "predict", tmp_path / "r", "--csv")
    assert code == 0 and text.splitlines()[1].startswith("Z\u00fcrich,")
    assert run_cli("forecast", "predict", tmp_path / "r", "--csv", "--data", utf8)[1] == text
