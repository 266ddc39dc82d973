"""cmd steps: argv commands with declared deps and outs, in YAML or in Python pipelines."""

from __future__ import annotations

import sys
from pathlib import Path

from helpers import conveyor, open_and_run, write_files

CONFIG = f"""
name: cmds
pipelines:
  prep:
    steps:
      - name: upper
        cmd: ["{sys.executable}", "-c", "import sys; open(sys.argv[2], 'w').write(open(sys.argv[1]).read().upper())", "data/in.txt", "data/up.txt"]
        deps: [data/in.txt]
        outs: [data/up.txt]
      - name: count
        cmd: ["{sys.executable}", "-c", "import sys; open(sys.argv[2], 'w').write(str(len(open(sys.argv[1]).read()) * int(sys.argv[3])))", "data/up.txt", "data/n.txt", "{{params.factor}}"]
        deps: [data/up.txt]
        outs: [data/n.txt]
        params: {{factor: 1}}
      - name: label
        cmd: ["{sys.executable}", "-c", "import sys; open('data/label.txt', 'w').write(sys.argv[1])", "{{params.label}}"]
        deps: [data/n.txt]
        outs: [data/label.txt]
        params: {{label: plain}}
params:
  factor: 2
"""


def test_yaml_cmd_pipeline_runs_caches_and_restores_outputs(tmp_path: Path) -> None:
    root = write_files(tmp_path / "p", {"conveyor.yaml": CONFIG, "data/in.txt": "hello"})
    first = open_and_run(root)
    assert first.status == "succeeded"
    assert (root / "data/up.txt").read_text() == "HELLO"
    assert (root / "data/n.txt").read_text() == "10"  # factor 2 from conveyor.yaml params

    (root / "data/n.txt").unlink()
    second = open_and_run(root)
    assert [s.status for s in second.steps] == ["cached", "cached", "cached"]
    assert (root / "data/n.txt").read_text() == "10"  # restored from the artifact store

    (root / "data/in.txt").write_text("hello world")
    third = open_and_run(root, explain=True)
    assert [s.status for s in third.steps] == ["succeeded", "succeeded", "succeeded"]
    assert any("files: 'data/in.txt' changed" in r for r in third.step("upper").reasons)
    assert (root / "data/n.txt").read_text() == "22"


def test_param_in_argv_is_one_argument_never_shell_interpreted(tmp_path: Path) -> None:
    root = write_files(tmp_path / "p", {"conveyor.yaml": CONFIG, "data/in.txt": "abc"})
    marker = tmp_path / "pwned"
    hostile = f"$(touch {marker}); touch {marker}"
    proc = conveyor("run", "-p", f"label={hostile}", cwd=root)
    assert proc.returncode == 0, proc.stderr
    assert (root / "data/label.txt").read_text() == hostile
    assert not marker.exists()


def test_cmd_param_is_typed_by_its_default(tmp_path: Path) -> None:
    root = write_files(tmp_path / "p", {"conveyor.yaml": CONFIG, "data/in.txt": "abc"})
    proc = conveyor("run", "-p", "factor=three", cwd=root)
    assert proc.returncode == 2, proc.stderr
    assert "param 'factor' must be int" in proc.stderr
    assert not (root / "data/up.txt").exists()  # refused before anything ran


def test_missing_declared_output_fails_the_step(tmp_path: Path) -> None:
    config = f"""
    name: cmds
    pipelines:
      p:
        steps:
          - name: forgetful
            cmd: ["{sys.executable}", "-c", "pass"]
            outs: [out.txt]
    """
    root = write_files(tmp_path / "p", {"conveyor.yaml": config})
    outcome = open_and_run(root)
    assert outcome.status == "failed"
    assert "did not produce its declared output 'out.txt'" in (outcome.steps[0].error or "")


def test_python_pipeline_mixes_cmd_steps_and_python_steps(tmp_path: Path) -> None:
    pipeline = f"""
    from pathlib import Path
    from conveyor import cmd_step, pipeline, step

    @step
    def size(text: Path) -> int:
        return len(text.read_text())

    @pipeline
    def main():
        out = cmd_step("write", ["{sys.executable}", "-c",
                       "open('made.txt', 'w').write('x' * 7)"], outs=["made.txt"])
        size(out)
    """
    root = write_files(
        tmp_path / "p",
        {
            "conveyor.yaml": "name: mix\npipelines:\n  main: pipelines/main.py:main\n",
            "pipelines/main.py": pipeline,
        },
    )
    outcome = open_and_run(root)
    assert outcome.status == "succeeded", outcome.steps
    from conveyor.engine.project import open_project

    with open_project(root, environ={}) as project:
        assert project.artifacts.load(outcome.step("size").outputs["output"]) == 7
