"""Comparing golden predictions with a fresh process's, and choosing an interpreter."""

from __future__ import annotations

import sys

import pytest

from conveyor.errors import UsageError
from conveyor.registry.infra import compare_predictions, find_python, venv_key


def test_scores_within_tolerance_pass() -> None:
    expected = [[0.25, 0.75], [0.5, 0.5]]
    got = {"predictions": [[0.25 + 1e-12, 0.75 - 1e-12], [0.5, 0.5]]}
    result = compare_predictions(expected, got, 1e-9)
    assert result.passed and result.kind == "infra"
    assert result.metrics["max_abs_diff"] == pytest.approx(1e-12, rel=1e-3)


def test_scores_outside_tolerance_name_rows_expected_and_got() -> None:
    expected = [[0.1, 0.9]] * 20
    got = [list(r) for r in expected]
    for i in (2, 5, 11, 12, 13, 14, 15, 16, 17, 18, 19):
        got[i] = [0.1 + 1e-6, 0.9 - 1e-6]
    result = compare_predictions(expected, {"predictions": got}, 1e-9)
    assert not result.passed
    assert result.message.startswith("11 of 20 golden rows disagree (within 1e-09): rows 2, 5, 11")
    assert ", ..." in result.message  # only the first ten rows are listed in the message
    assert f"row 2: expected [0.1, 0.9], got {got[2]}" in result.message
    assert len(result.details["rows"]) == 11
    assert result.metrics["rows_disagreeing"] == 11


def test_labels_must_match_exactly() -> None:
    result = compare_predictions([0, 1, 1], {"predictions": [0, 1, 0]}, 1.0)
    assert not result.passed
    assert "1 of 3 golden rows disagree (exactly): rows 2" in result.message
    assert compare_predictions(["a", "b"], {"predictions": ["a", "b"]}, 1e-9).passed


def test_nan_scores_agree_only_with_nan() -> None:
    nan = float("nan")
    assert compare_predictions([[nan, 1.0]], {"predictions": [[nan, 1.0]]}, 1e-9).passed
    assert not compare_predictions([[nan, 1.0]], {"predictions": [[0.0, 1.0]]}, 1e-9).passed


def test_a_different_number_of_predictions_fails() -> None:
    result = compare_predictions([1.0, 2.0], {"predictions": [1.0]}, 1e-9)
    assert (
        not result.passed and "expected 2 golden predictions, the package gave 1" in result.message
    )


def test_a_different_shape_per_row_fails() -> None:
    assert not compare_predictions([[0.5, 0.5]], {"predictions": [[0.5, 0.5, 0.0]]}, 1e-9).passed


def test_find_python() -> None:
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert find_python(here)  # on PATH, or this interpreter
    assert find_python(sys.executable) == sys.executable
    with pytest.raises(UsageError, match="no python9.99 on PATH"):
        find_python("9.99")
    with pytest.raises(UsageError, match="no Python interpreter at /nope/python"):
        find_python("/nope/python")


def test_venv_key_depends_on_lock_and_python() -> None:
    assert venv_key("numpy==2.0\n", "3.11.7") == venv_key("numpy==2.0\n", "3.11.7")
    assert venv_key("numpy==2.0\n", "3.11.7") != venv_key("numpy==2.1\n", "3.11.7")
    assert venv_key("numpy==2.0\n", "3.11.7") != venv_key("numpy==2.0\n", "3.12.1")
