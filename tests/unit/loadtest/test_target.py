from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from conveyor.cli.loadtest_cmd import loadtest
from conveyor.errors import UsageError
from conveyor.loadtest.target import is_url, open_target


def no_project() -> Any:
    raise AssertionError("the project must not be opened")


def test_urls_and_model_versions_are_told_apart() -> None:
    assert is_url("http://127.0.0.1:8080/invocations")
    assert is_url("HTTPS://example.com")
    assert not is_url("credit-risk:3")
    assert not is_url("credit-risk")


def test_a_url_and_an_inputs_file_need_no_project(tmp_path: Path) -> None:
    rows = tmp_path / "rows.json"
    rows.write_text('{"columns": ["a"], "data": [[1], [2]]}')
    with open_target(
        "http://127.0.0.1:9/v2/models/m/infer",
        project=no_project,
        inputs=rows,
    ) as (endpoint, payload):
        assert endpoint.path == "/v2/models/m/infer"
        assert payload.protocol == "v2" and payload.rows == 2


def test_a_url_without_rows_says_where_rows_come_from() -> None:
    with (
        pytest.raises(UsageError) as err,
        open_target("http://127.0.0.1:9/invocations", project=no_project),
    ):
        pass
    assert "--package" in (err.value.hint or "") and "--inputs" in (err.value.hint or "")


def test_package_with_a_model_version_target_is_refused() -> None:
    with (
        pytest.raises(UsageError, match="--package is for a URL target"),
        open_target("credit-risk:3", project=no_project, package_ref="credit-risk:2"),
    ):
        pass


def test_only_one_report_goes_to_stdout() -> None:
    result = CliRunner().invoke(loadtest, ["http://127.0.0.1:9", "--json", "--markdown"])
    assert result.exit_code == 2
    assert "only one report" in result.output


def test_a_bad_duration_is_a_usage_error() -> None:
    result = CliRunner().invoke(loadtest, ["http://127.0.0.1:9", "--duration", "soon"])
    assert result.exit_code == 2
    assert "'soon' is not a duration" in result.output
