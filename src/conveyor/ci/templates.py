"""Workflow files for ``conveyor init --ci github|gitlab``.

Three jobs: ``conveyor ci`` on every pull request (merge request), ``conveyor run`` and a
promotion of the new version to the test environment on every merge to the default branch,
and a scheduled retraining. The virtual environment and the ``.conveyor`` directory (the
artifact store, its local cache and the SQLite metadata) are cached between jobs, so a pull
request finds main's runs and reuses their steps.
"""

from __future__ import annotations

from pathlib import Path

from conveyor.errors import UsageError

GITHUB_PATH = ".github/workflows/conveyor.yml"
GITLAB_PATH = ".gitlab-ci.yml"

GITHUB = """\
# Conveyor: ML tests on pull requests, release on merge, scheduled retraining.
name: conveyor

on:
  pull_request:
  push:
    branches: [{branch}]
  schedule:
    - cron: "0 3 * * 1"      # retrain every Monday at 03:00 UTC
  workflow_dispatch:

permissions:
  contents: read
  pull-requests: write       # the sticky report comment

env:
  PYTHON_VERSION: "{python}"
  NO_COLOR: "1"

jobs:
  ci:
    if: github.event_name == 'pull_request'
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
        with:
          fetch-depth: 0         # the merge-base with the base branch is the baseline
      - uses: actions/setup-python@v5
        with:
          python-version: ${{{{ env.PYTHON_VERSION }}}}
      - name: Cache the virtual environment
        uses: actions/cache@v4
        with:
          path: .venv
          key: venv-${{{{ runner.os }}}}-${{{{ env.PYTHON_VERSION }}}}-${{{{ hashFiles('requirements*.txt', 'pyproject.toml') }}}}
      - name: Cache the artifact store and metadata
        uses: actions/cache@v4
        with:
          path: .conveyor
          key: conveyor-${{{{ github.sha }}}}
          restore-keys: conveyor-
      - name: Install
        run: |
          [ -x .venv/bin/python ] || python -m venv .venv
          .venv/bin/pip install --quiet conveyor-ml
          if [ -f requirements.txt ]; then .venv/bin/pip install --quiet -r requirements.txt; fi
      - name: conveyor ci
        run: .venv/bin/conveyor ci --base origin/${{{{ github.base_ref }}}}
        env:
          GITHUB_TOKEN: ${{{{ secrets.GITHUB_TOKEN }}}}
      - name: Keep the reports
        if: always()
        uses: actions/upload-artifact@v4
        with:
          name: conveyor-ci
          path: .conveyor/ci/

  release:
    if: github.event_name == 'push'
    runs-on: ubuntu-latest
    concurrency: release
    steps:
      - uses: actions/checkout@v4
      - uses: actions/setup-python@v5
        with:
          python-version: ${{{{ env.PYTHON_VERSION }}}}
      - uses: actions/cache@v4
        with:
          path: .venv
          key: venv-${{{{ runner.os }}}}-${{{{ env.PYTHON_VERSION }}}}-${{{{ hashFiles('requirements*.txt', 'pyproject.toml') }}}}
      - uses: actions/cache@v4
        with:
          path: .conveyor
          key: conveyor-${{{{ github.sha }}}}
          restore-keys: conveyor-
      - name: Install
        run: |
          [ -x .venv/bin/python ] || python -m venv .venv
          .venv/bin/pip install --quiet conveyor-ml
          if [ -f requirements.txt ]; then .venv/bin/pip install --quiet -r requirements.txt; fi
      - name: Train, register, package and promote to test
        run: |
          .venv/bin/conveyor run{pipeline}
          ref=$(.venv/bin/conveyor model register latest --json | .venv/bin/python -c 'import json, sys; v = json.load(sys.stdin); print(v["name"] + ":" + str(v["version"]))')
          .venv/bin/conveyor model package "$ref"
          .venv/bin/conveyor promote "$ref" --to test

  retrain:
    if: github.event_name == 'schedule' || github.event_name == 'workflow_dispatch'
    runs-on: ubuntu-latest
    concurrency: release
    steps:
      - uses: actions/checkout@v4
      - uses: actions/setup-python@v5
        with:
          python-version: ${{{{ env.PYTHON_VERSION }}}}
      - uses: actions/cache@v4
        with:
          path: .venv
          key: venv-${{{{ runner.os }}}}-${{{{ env.PYTHON_VERSION }}}}-${{{{ hashFiles('requirements*.txt', 'pyproject.toml') }}}}
      - uses: actions/cache@v4
        with:
          path: .conveyor
          key: conveyor-retrain-${{{{ github.run_id }}}}
          restore-keys: conveyor-
      - name: Install
        run: |
          [ -x .venv/bin/python ] || python -m venv .venv
          .venv/bin/pip install --quiet conveyor-ml
          if [ -f requirements.txt ]; then .venv/bin/pip install --quiet -r requirements.txt; fi
      - name: Retrain on fresh data, register, package and promote to test
        run: |
          .venv/bin/conveyor run{pipeline} --no-cache
          ref=$(.venv/bin/conveyor model register latest --json | .venv/bin/python -c 'import json, sys; v = json.load(sys.stdin); print(v["name"] + ":" + str(v["version"]))')
          .venv/bin/conveyor model package "$ref"
          .venv/bin/conveyor promote "$ref" --to test
"""  # noqa: E501 - workflow lines are as long as GitHub's expressions make them

GITLAB = """\
# Conveyor: ML tests on merge requests, release on merge, scheduled retraining.
# Set CONVEYOR_GITLAB_TOKEN (a project access token with the api scope) as a masked CI/CD
# variable for the merge-request note; create a pipeline schedule for the retrain job.
image: python:{python}

variables:
  NO_COLOR: "1"
  GIT_DEPTH: "0"             # the merge-base with the target branch is the baseline
  PIP_CACHE_DIR: "$CI_PROJECT_DIR/.cache/pip"

cache:
  - key:
      files: [requirements.txt]
      prefix: venv
    paths: [.venv, .cache/pip]
  - key: conveyor-store
    paths: [.conveyor]

default:
  before_script:
    - '[ -x .venv/bin/python ] || python -m venv .venv'
    - .venv/bin/pip install --quiet conveyor-ml
    - if [ -f requirements.txt ]; then .venv/bin/pip install --quiet -r requirements.txt; fi

stages: [test, release]

conveyor-ci:
  stage: test
  rules:
    - if: $CI_PIPELINE_SOURCE == "merge_request_event"
  script:
    - git fetch --quiet origin "$CI_MERGE_REQUEST_TARGET_BRANCH_NAME"
    - .venv/bin/conveyor ci --base "origin/$CI_MERGE_REQUEST_TARGET_BRANCH_NAME"
  artifacts:
    when: always
    paths: [.conveyor/ci/]
    reports:
      junit: .conveyor/ci/junit.xml
      metrics: .conveyor/ci/metrics.txt

release:
  stage: release
  resource_group: release
  rules:
    - if: $CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH && $CI_PIPELINE_SOURCE == "push"
  script:
    - .venv/bin/conveyor run{pipeline}
    - ref=$(.venv/bin/conveyor model register latest --json | .venv/bin/python -c 'import json, sys; v = json.load(sys.stdin); print(v["name"] + ":" + str(v["version"]))')
    - .venv/bin/conveyor model package "$ref"
    - .venv/bin/conveyor promote "$ref" --to test

retrain:
  stage: release
  resource_group: release
  rules:
    - if: $CI_PIPELINE_SOURCE == "schedule"
  script:
    - .venv/bin/conveyor run{pipeline} --no-cache
    - ref=$(.venv/bin/conveyor model register latest --json | .venv/bin/python -c 'import json, sys; v = json.load(sys.stdin); print(v["name"] + ":" + str(v["version"]))')
    - .venv/bin/conveyor model package "$ref"
    - .venv/bin/conveyor promote "$ref" --to test
"""  # noqa: E501 - one shell command per line

KINDS = ("github", "gitlab")


def render_workflow(
    kind: str, *, pipeline: str = "", branch: str = "main", python: str = "3.11"
) -> tuple[str, str]:
    """(relative path, text) of the workflow file for ``kind``."""
    values = {"pipeline": f" {pipeline}" if pipeline else "", "branch": branch, "python": python}
    if kind == "github":
        return GITHUB_PATH, GITHUB.format(**values)
    if kind == "gitlab":
        return GITLAB_PATH, GITLAB.format(**values)
    raise UsageError(f"unknown CI system '{kind}'", hint=f"choose one of {', '.join(KINDS)}")


def write_workflow(directory: Path, kind: str, *, pipeline: str = "") -> Path:
    """Write the workflow file into ``directory``; refuses to overwrite one."""
    rel, text = render_workflow(kind, pipeline=pipeline)
    path = directory / rel
    if path.exists():
        raise UsageError(
            f"{path} already exists",
            hint="remove it first, or merge the jobs of the generated file by hand",
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path
