"""The command line as a user meets it: help, docs, exit codes, streams, --json."""

from __future__ import annotations

import json
import re
from pathlib import Path

import click
import pytest

from conveyor.cli.main import COMMANDS, cli
from helpers import conveyor, write_files

DOCS = Path(__file__).resolve().parents[2] / "docs" / "cli.md"

REPORTING = {
    "run",
    "runs list",
    "runs show",
    "runs compare",
    "artifacts show",
    "lineage",
    "reproduce",
    "db upgrade",
    "db status",
    "data schema infer",
    "data validate",
    "data drift",
    "model register",
    "model list",
    "model show",
    "model package",
    "model validate",
    "predict",
    "ci",
    "promote",
    "approve",
    "reject",
    "rollback",
    "history",
    "status",
    "deploy",
    "stop",
    "whoami",
    "audit",
    "replay",
}


def walk(group: click.Group, prefix: str = "") -> list[tuple[str, click.Command]]:
    ctx = click.Context(group)
    found = []
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        assert cmd is not None, name
        path = f"{prefix}{name}"
        found.append((path, cmd))
        if isinstance(cmd, click.Group):
            found += walk(cmd, path + " ")
    return found


def test_every_command_has_help_and_is_documented() -> None:
    docs = DOCS.read_text()
    commands = walk(cli)
    assert {p for p, _ in commands} >= {
        "init",
        "run",
        "runs list",
        "runs show",
        "runs compare",
        "artifacts show",
        "lineage",
        "reproduce",
        "db upgrade",
    }
    for path, cmd in commands:
        assert (cmd.help or "").strip(), f"'conveyor {path}' has no help text"
        assert f"## conveyor {path}\n" in docs, f"'conveyor {path}' is missing from docs/cli.md"
        if isinstance(cmd, click.Group):
            continue
        section = docs.split(f"## conveyor {path}\n", 1)[1].split("\n## ", 1)[0]
        for param in cmd.params:
            if isinstance(param, click.Option) and not param.hidden:
                assert param.help, f"option {param.opts} of 'conveyor {path}' has no help"
                assert any(opt in section for opt in param.opts), (
                    f"option {param.opts[0]} of 'conveyor {path}' is not in docs/cli.md"
                )
    for name in COMMANDS:
        assert name in {p for p, _ in commands}


def test_every_reporting_command_has_json() -> None:
    for path, cmd in walk(cli):
        if path in REPORTING:
            assert any("--json" in p.opts for p in cmd.params), f"'conveyor {path}' lacks --json"


def test_help_is_fast_to_load_and_prints_commands(tmp_path: Path) -> None:
    proc = conveyor("--help", cwd=tmp_path)
    assert proc.returncode == 0
    for name in COMMANDS:
        assert name in proc.stdout
    imported = conveyor("--help", cwd=tmp_path, env={"PYTHONPROFILEIMPORTTIME": "1"}).stderr
    heavy = {"pandas", "sqlalchemy", "pyarrow", "sklearn", "alembic", "fsspec"}
    loaded = set(re.findall(r"\|\s+(\w+)$", imported, re.M))
    assert not heavy & loaded, f"`conveyor --help` imports {heavy & loaded}"


def test_outside_a_project_is_a_usage_error(tmp_path: Path) -> None:
    proc = conveyor("runs", "list", cwd=tmp_path)
    assert proc.returncode == 2
    assert "no conveyor.yaml" in proc.stderr and "conveyor init" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_init_then_run_twice_then_inspect(tmp_path: Path) -> None:
    project = tmp_path / "fresh"
    created = conveyor("init", str(project), cwd=tmp_path, check=True)
    assert "project ready" in created.stdout
    first = conveyor("run", cwd=project, check=True)
    run_id = first.stdout.strip()
    assert re.fullmatch(r"\d{8}-\d{6}-[0-9a-f]{6}", run_id)
    assert "ran in" in first.stderr and "4 ran, 0 cached" in first.stderr
    second = conveyor("run", "--json", cwd=project, check=True)
    outcome = json.loads(second.stdout)
    assert {s["status"] for s in outcome["steps"]} == {"cached"}

    listed = json.loads(conveyor("runs", "list", "--json", cwd=project, check=True).stdout)
    assert [r["id"] for r in listed] == [outcome["run_id"], run_id]

    shown = conveyor("runs", "show", "latest", cwd=project, check=True).stdout
    assert "cached" in shown and "roc_auc" in shown

    compared = json.loads(
        conveyor("runs", "compare", "latest", "latest~1", "--json", cwd=project, check=True).stdout
    )
    assert compared["runs"] == [outcome["run_id"], run_id]
    assert not any(row["differs"] for row in compared["rows"])
    changed = conveyor("run", "-p", "train.c=0.01", cwd=project, check=True)
    assert "cached" in changed.stderr  # data steps reused
    diff = conveyor("runs", "compare", "latest", "latest~1", cwd=project, check=True).stdout
    assert "param train.c" in diff and "0.01" in diff

    art = json.loads(
        conveyor("artifacts", "show", "latest:evaluate", "--json", cwd=project, check=True).stdout
    )
    assert art["verified"] is True and art["materializer"] == "json"
    missing = conveyor("runs", "show", run_id, "--logs", "nostep", cwd=project)
    assert missing.returncode == 2 and "has no step 'nostep'" in missing.stderr

    again = conveyor("init", str(project), cwd=tmp_path)
    assert again.returncode == 2 and "already has conveyor.yaml" in again.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("run", "nope"), "no pipeline 'nope'"),
        (("run", "-p", "n_rowz=3"), "did you mean 'n_rows'?"),
        (("run", "-p", "n_rows=many"), "param 'n_rows' must be int"),
        (("run", "-p", "novalue"), "expected KEY=VALUE"),
        (("runs", "show", "nosuchrun"), "no run 'nosuchrun'"),
        (("runs", "compare", "latest"), "at least two runs"),
        (("lineage", "abcdef12"), "no run 'abcdef12'"),
        (("artifacts", "show", "latest:nostep"), "there are no runs yet"),
    ],
)
def test_user_mistakes_exit_2_with_a_message(
    tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    conveyor("init", str(tmp_path / "p"), cwd=tmp_path, check=True)
    proc = conveyor(*args, cwd=tmp_path / "p")
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "p" / ".conveyor" / "artifacts" / "objects").exists()


def test_failing_step_exits_1_and_shows_traceback(tmp_path: Path) -> None:
    root = write_files(
        tmp_path / "p",
        {
            "conveyor.yaml": "name: f\npipelines:\n  main: pipelines/main.py:main\n",
            "pipelines/main.py": """
        from conveyor import pipeline, step

        @step
        def boom(x: int = 1) -> int:
            raise ValueError("the input is bad")

        @pipeline
        def main():
            boom()
        """,
        },
    )
    proc = conveyor("run", cwd=root)
    assert proc.returncode == 1
    assert "failed" in proc.stderr and "ValueError: the input is bad" in proc.stderr
    shown = conveyor("runs", "show", "latest", cwd=root).stdout
    assert "Traceback" in shown and "main.py" in shown and "the input is bad" in shown
