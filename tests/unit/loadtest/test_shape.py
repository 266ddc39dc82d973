from __future__ import annotations

import pytest

from conveyor.errors import UsageError
from conveyor.loadtest.shape import LoadShape, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("10s", 10.0), ("500ms", 0.5), ("2m", 120.0), ("1.5", 1.5), (" 3 s ", 3.0), (".5s", 0.5)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "ten", "10 seconds", "-1s", "1e3s", "nan"])
def test_a_bad_duration_says_what_to_write(text: str) -> None:
    with pytest.raises(UsageError) as err:
        parse_duration(text, what="--duration")
    assert "--duration" in err.value.message and "10s" in (err.value.hint or "")


def test_shape_describes_both_loops() -> None:
    closed = LoadShape(concurrency=8, duration_s=10, warmup_s=2)
    assert closed.mode == "closed"
    assert closed.describe() == "closed loop, 8 connections; 2 s warm-up, then 10 s"
    opened = LoadShape(concurrency=64, rate=500, duration_s=5, warmup_s=0, max_requests=1000)
    assert opened.mode == "open"
    assert "500 requests/s" in opened.describe() and "or 1000 requests" in opened.describe()


@pytest.mark.parametrize(
    "kwargs",
    [{"concurrency": 0}, {"rate": 0.0}, {"duration_s": 0}, {"warmup_s": -1}, {"max_requests": 0}],
)
def test_an_impossible_shape_is_a_usage_error(kwargs: dict[str, float]) -> None:
    with pytest.raises(UsageError):
        LoadShape(**kwargs)  # type: ignore[arg-type]
