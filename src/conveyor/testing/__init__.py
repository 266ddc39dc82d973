"""Testing ML code with pytest: Conveyor's plugin, fixtures and assertions.

The plugin is registered automatically when Conveyor is installed. It provides the fixtures
``conveyor_project`` (the project the tests belong to) and ``conveyor_run`` (run a pipeline on
a sample, in stores of its own, and fetch its artifacts), and this module provides assertions
whose failure messages show the numbers that failed.
"""

from __future__ import annotations

from conveyor.testing.assertions import (
    assert_directional,
    assert_invariant,
    assert_metric,
    assert_no_drift,
    assert_not_worse_than,
    assert_schema,
)
from conveyor.testing.runs import TestRun, find_project_dir, run_sample

__all__ = [
    "TestRun",
    "assert_directional",
    "assert_invariant",
    "assert_metric",
    "assert_no_drift",
    "assert_not_worse_than",
    "assert_schema",
    "find_project_dir",
    "run_sample",
]
