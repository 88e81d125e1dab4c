import math

import numpy as np
import pytest
from forecast_series import sinusoid_rows, write_wide

from rnnkit.errors import DataError
from rnnkit.forecast.data import (
    calendar_features,
    check_series,
    format_freq,
    parse_freq,
    read_csv,
    seasonal_period,
)


def test_wide_file_with_a_gap_and_an_empty_cell(tmp_path):
    path = tmp_path / "w.csv"
    path.write_text(
        "date,a,b\n2024/01/01 00:00,1,10\n2024/01/01 01:00,,11\n"
        "2024/01/01 03:00,3,13\n2024/01/01 02:00,2,12\n2024/01/01 05:00,5,15\n"
    )
    data = read_csv(path)
    assert data.step == 3600 and [s.name for s in data.series] == ["a", "b"]
    a, b = data.series
    np.testing.assert_array_equal(a.values, [1, np.nan, 2, 3, np.nan, 5])  # rows sorted by time
    assert data.gaps == 2  # 04:00 absent, for both series
    assert data.missing == 3  # the two gaps and a's empty cell
    assert data.length == 6 and data.season == 24


def test_long_file_with_covariates_and_future_rows(tmp_path):
    path = tmp_path / "l.csv"
    lines = ["series_id,time,value,price"]
    lines += [f"x,2024-01-0{d + 1},{d * 2},{d}" for d in range(5)]
    lines += [f"y,2024-01-0{d + 3},{d},{-d}" for d in range(3)]
    lines += ["y,2024-01-06,,7", "y,2024-01-07,,8"]  # the future: covariates only
    path.write_text("\n".join(lines) + "\n")
    data = read_csv(path, covariates=("price",))
    x, y = data.series
    assert data.step == 86400 and data.season == 7
    assert (x.offset, y.offset) == (0, 2) and len(y.values) == 3
    np.testing.assert_array_equal(y.covariates[:, 0], [0, -1, -2, 7, 8])
    features = data.features(y)
    assert features.shape == (5, 4 + 1)  # day of week and year (sin, cos), then the price


def test_unknown_extra_column_of_a_long_file_is_refused(tmp_path):
    path = tmp_path / "l.csv"
    path.write_text("series_id,time,value,price\nx,2024-01-01,1,2\n")
    with pytest.raises(DataError, match="--covariates price"):
        read_csv(path)


def test_frequencies():
    assert parse_freq("30min") == 1800 and parse_freq("h") == 3600 and parse_freq("1W") == 604800
    assert format_freq(1800) == "30min" and format_freq(86400) == "1d"
    assert seasonal_period(1800) == 48 and seasonal_period(604800) == 52
    with pytest.raises(DataError, match="frequency"):
        parse_freq("often")


def test_calendar_features_of_known_times():
    # 1970-01-05 06:00 UTC: a Monday, a quarter into the day.
    seconds = np.array([4 * 86400 + 6 * 3600.0])
    feats = calendar_features(seconds, 3600)
    day_sin, week_sin, day_cos, week_cos = feats[0]
    assert day_sin == pytest.approx(1.0) and day_cos == pytest.approx(0.0, abs=1e-12)
    assert week_sin == pytest.approx(math.sin(2 * math.pi * 0.25 / 7))
    assert week_cos == pytest.approx(math.cos(2 * math.pi * 0.25 / 7))


def test_check_series_names_short_and_constant_series(tmp_path):
    rows = sinusoid_rows(100)
    flat = [(t, 4.0) for t, _ in rows]
    data = read_csv(write_wide(tmp_path / "c.csv", ["good", "flat"], [rows, flat]))
    with pytest.raises(DataError, match="series 'flat' .* is constant"):
        check_series(data, context=24, horizon=12)
    with pytest.raises(DataError, match="series 'good' .* has 100 steps, fewer than"):
        check_series(data, context=96, horizon=12)


def test_a_csv_saved_by_excel_with_a_byte_order_mark(tmp_path):
    # The mark used to be part of the first column's name: 'z' in column '\ufeffseries_id' ...
    lines = ["series_id,time,value"] + [f"x,2024-01-0{d + 1},{d * 2}" for d in range(5)]
    path = tmp_path / "l.csv"
    path.write_bytes("\r\n".join(lines).encode("utf-8-sig"))
    data = read_csv(path)
    assert [s.name for s in data.series] == ["x"] and data.step == 86400
    path.write_bytes("\n".join(lines).encode("utf-16"))  # "Unicode text"
    assert len(read_csv(path).series[0].values) == 5


@pytest.mark.parametrize("sep", [";", "\t"])
def test_a_csv_separated_by_semicolons_or_tabs(tmp_path, sep):
    # A spreadsheet's ';' export used to be "the first line should name a time column ...".
    lines = [f"date{sep}a{sep}b"] + [f"2024-01-0{d + 1}{sep}{d}{sep}{d * 3}" for d in range(6)]
    path = tmp_path / "s.csv"
    path.write_text("\n".join(lines) + "\n")
    data = read_csv(path)
    assert [s.name for s in data.series] == ["a", "b"]
    np.testing.assert_array_equal(data.series[1].values, [0, 3, 6, 9, 12, 15])
    path.write_text("date;a\n2024-01-01;1,5\n")
    with pytest.raises(DataError, match=r"s.csv:2: '1,5' .* write decimals with a point"):
        read_csv(path)
    path.write_text("just one column\n2024-01-01\n")
    with pytest.raises(DataError, match=r"separated by commas \(or ';' or tabs\)"):
        read_csv(path)
