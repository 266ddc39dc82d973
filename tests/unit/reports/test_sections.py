"""Reading the built-in steps' JSON values into report sections, and formatting numbers."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone

import pytest

from conveyor.errors import EXIT_USAGE, UsageError
from conveyor.reports.sections import drift_from_dict, gate_from_dict, number, validation_from_dict
from conveyor.reports.text import duration, num, value, when


def test_drift_reads_infinite_statistics_and_missing_histograms() -> None:
    raw = {
        "drift_share": 0.5,
        "features": [
            {
                "column": "a",
                "kind": "categorical",
                "checked": True,
                "drifted": True,
                "method": "chisquare",
                "statistic": "inf",
                "p_value": 0.0,
                "threshold": 0.05,
                "histogram": None,
            },
            {"column": "b", "kind": "numeric", "checked": False, "note": "missing"},
        ],
    }
    section = drift_from_dict(raw, "check_drift")
    a, b = section.features
    assert a.statistic == math.inf and a.histogram is None and a.verdict == "drift"
    assert b.verdict == "not checked" and b.statistic is None
    assert section.checked == 1 and section.drifted and section.share == 1.0
    assert "drift in 1 of 1 features" in section.summary


@pytest.mark.parametrize(
    ("parse", "raw", "what"),
    [
        (gate_from_dict, {"blessed": True}, "model gate verdict"),
        (validation_from_dict, {"anomalies": [{"column": "x"}]}, "data validation report"),
        (drift_from_dict, {"features": "nope"}, "drift report"),
    ],
)
def test_damaged_values_name_the_step_and_say_how_to_fix(parse, raw, what) -> None:
    with pytest.raises(UsageError) as caught:
        parse(raw, "my_step")
    assert what in caught.value.message and "'my_step'" in caught.value.message
    assert caught.value.hint and "re-run" in caught.value.hint
    assert caught.value.exit_code == EXIT_USAGE


def test_number_accepts_json_numbers_and_their_text_forms() -> None:
    assert number(1) == 1.0 and number("-inf") == -math.inf
    assert number(None) is None and number(True) is None and number("x") is None


@pytest.mark.parametrize(
    ("x", "text"),
    [
        (None, "n/a"),
        (float("nan"), "n/a"),
        (float("inf"), "inf"),
        (0.123456, "0.1235"),
        (1.0, "1"),
        (123456.7, "123,457"),
        (0.0000123456, "1.235e-05"),
        (42, "42"),
        (12345, "12,345"),
    ],
)
def test_numbers_read_with_four_significant_digits(x, text) -> None:
    assert num(x) == text


def test_durations_times_and_values() -> None:
    assert duration(None) == "-" and duration(0.1234) == "0.12 s" and duration(12.34) == "12.3 s"
    assert duration(125) == "2 min 5 s" and duration(3 * 3600 + 120) == "3 h 2 min"
    local = datetime(2026, 1, 1, 5, 0, tzinfo=UTC).astimezone(timezone(timedelta(hours=2)))
    assert when(local) == "2026-01-01 05:00:00 UTC"
    assert value("") == '""' and value({"b": 1, "a": [1]}) == '{"a": [1], "b": 1}'
