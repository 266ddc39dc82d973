"""Publishing the report over real HTTP to a local server that records requests: GitHub's
sticky comment (and its size cap), GitLab's merge-request note, the job summary."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from conveyor.ci.github import (
    COMMENT_MAX_CHARS,
    GitHubTarget,
    github_target,
    upsert_comment,
    write_step_summary,
)
from conveyor.ci.gitlab import GitLabTarget, gitlab_target, upsert_note
from conveyor.ci.report import MARKER
from conveyor.errors import PublishError


class Recorder:
    """Answers GET with ``self.listing`` and writes with an id; records every request."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.listing: list[dict[str, Any]] = []
        self.status = 200
        rec = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                headers = {k.lower(): v for k, v in self.headers.items()}
                rec.requests.append(
                    {"method": self.command, "path": self.path, "body": body, "headers": headers}
                )
                doc: Any = rec.listing if self.command == "GET" else {"id": 55, **(body or {})}
                if rec.status != 200:
                    doc = {"message": "Bad credentials"}
                data = json.dumps(doc).encode()
                self.send_response(rec.status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_PUT = _answer

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Iterator[Recorder]:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    rec = Recorder()
    yield rec
    rec.server.shutdown()
    rec.server.server_close()


def test_a_report_over_the_cap_is_cut_with_a_note_not_rejected(recorder: Recorder) -> None:
    target = GitHubTarget(api=recorder.url, repository="o/r", number=3, token="t0k")
    huge = MARKER + "\n" + "\n".join(f"- line {i} " + "x" * 80 for i in range(5000))
    assert upsert_comment(target, huge) == ("created", 55)
    post = recorder.requests[-1]
    assert post["method"] == "POST" and post["path"] == "/repos/o/r/issues/3/comments"
    body = post["body"]["body"]
    assert len(body) <= COMMENT_MAX_CHARS and body.startswith(MARKER)
    assert "The report was cut" in body


def test_an_existing_comment_is_found_by_its_marker_and_updated(recorder: Recorder) -> None:
    recorder.listing = [{"id": 7, "body": "a human comment"}, {"id": 9, "body": f"{MARKER}\nold"}]
    target = GitHubTarget(api=recorder.url, repository="o/r", number=3, token="t0k")
    assert upsert_comment(target, f"{MARKER}\nnew") == ("updated", 9)
    assert [(r["method"], r["path"]) for r in recorder.requests] == [
        ("GET", "/repos/o/r/issues/3/comments?per_page=100&page=1"),
        ("PATCH", "/repos/o/r/issues/comments/9"),
    ]
    assert recorder.requests[-1]["body"] == {"body": f"{MARKER}\nnew"}


def test_a_refused_token_is_a_publish_error_without_the_token(recorder: Recorder) -> None:
    recorder.status = 401
    target = GitHubTarget(api=recorder.url, repository="o/r", number=3, token="s3cret")
    with pytest.raises(PublishError) as err:
        upsert_comment(target, "x")
    assert "401" in err.value.message and "s3cret" not in str(err.value) + repr(target)


def test_gitlab_note_is_created_then_updated(recorder: Recorder) -> None:
    target = GitLabTarget(api=recorder.url, project="group/proj", iid=4, token="glpat")
    assert upsert_note(target, f"{MARKER}\nfirst") == ("created", 55)
    assert recorder.requests[-1]["path"] == "/projects/group%2Fproj/merge_requests/4/notes"
    assert recorder.requests[-1]["headers"]["private-token"] == "glpat"
    recorder.listing = [{"id": 12, "body": f"{MARKER}\nfirst"}]
    assert upsert_note(target, f"{MARKER}\nsecond") == ("updated", 12)
    assert recorder.requests[-1]["method"] == "PUT"
    assert recorder.requests[-1]["path"] == "/projects/group%2Fproj/merge_requests/4/notes/12"
    assert recorder.requests[-1]["body"] == {"body": f"{MARKER}\nsecond"}


def test_targets_come_from_the_ci_environment(tmp_path: Path) -> None:
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"pull_request": {"number": 42}}))
    env = {"GITHUB_TOKEN": "t", "GITHUB_REPOSITORY": "o/r", "GITHUB_EVENT_PATH": str(event)}
    target = github_target(env)
    assert target is not None and target.number == 42 and target.api == "https://api.github.com"
    assert github_target({**env, "GITHUB_TOKEN": ""}) is None
    with pytest.raises(PublishError, match="not an http"):
        github_target({**env, "GITHUB_API_URL": "file:///etc"})
    lab = gitlab_target(
        {
            "GITLAB_TOKEN": "g",
            "CI_PROJECT_ID": "5",
            "CI_MERGE_REQUEST_IID": "8",
            "CI_API_V4_URL": "https://gitlab.example/api/v4",
        }
    )
    assert lab is not None and (lab.api, lab.project, lab.iid) == (
        "https://gitlab.example/api/v4",
        "5",
        8,
    )
    assert gitlab_target({"CI_PROJECT_ID": "5", "CI_MERGE_REQUEST_IID": "8"}) is None


def test_the_job_summary_is_appended_under_its_cap(tmp_path: Path) -> None:
    summary = tmp_path / "summary.md"
    assert write_step_summary({}, "x") is None
    write_step_summary({"GITHUB_STEP_SUMMARY": str(summary)}, "first")
    write_step_summary({"GITHUB_STEP_SUMMARY": str(summary)}, "ü" * (1 << 20))
    text = summary.read_text()
    assert text.startswith("first\n") and "The report was cut" in text
    assert len(text.encode()) <= 1 << 20
