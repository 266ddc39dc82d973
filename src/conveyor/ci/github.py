"""Publishing the CI report on GitHub: the job summary (``$GITHUB_STEP_SUMMARY``) and one
sticky pull-request comment, found by a hidden marker and edited in place on every run.

REST calls (https://docs.github.com/en/rest/issues/comments): list the pull request's issue
comments, then ``PATCH /repos/{owner}/{repo}/issues/comments/{id}`` the one holding the marker
or ``POST /repos/{owner}/{repo}/issues/{number}/comments``; the body is ``{"body": TEXT}``.
``GITHUB_API_URL`` (set by GitHub Actions; GitHub Enterprise too) chooses the API.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from conveyor.ci.api import check_base_url, request_json
from conveyor.ci.report import MARKER, truncate
from conveyor.errors import PublishError

COMMENT_MAX_CHARS = 65_536
SUMMARY_MAX_BYTES = 1 << 20  # 1 MiB per step
MAX_PAGES = 50
API_VERSION = "2022-11-28"
_REPO = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")


@dataclass(frozen=True, slots=True, kw_only=True)
class GitHubTarget:
    api: str
    repository: str  # owner/name
    number: int
    token: str

    def __repr__(self) -> str:  # never show the token
        return f"GitHubTarget({self.api}, {self.repository}#{self.number})"


def github_target(environ: Mapping[str, str], number: int | None = None) -> GitHubTarget | None:
    """The pull request to comment on, when a token and a pull request are known."""
    token = environ.get("CONVEYOR_GITHUB_TOKEN") or environ.get("GITHUB_TOKEN")
    repository = environ.get("GITHUB_REPOSITORY", "")
    number = number or _pull_number(environ)
    if not token or number is None:
        return None
    if not _REPO.fullmatch(repository):
        raise PublishError(
            f"GITHUB_REPOSITORY={repository!r} is not OWNER/NAME",
            hint="GitHub Actions sets it; elsewhere export GITHUB_REPOSITORY=owner/name",
        )
    api = check_base_url(
        environ.get("GITHUB_API_URL") or "https://api.github.com", "GITHUB_API_URL"
    )
    return GitHubTarget(api=api, repository=repository, number=number, token=token)


def _pull_number(environ: Mapping[str, str]) -> int | None:
    event = environ.get("GITHUB_EVENT_PATH")
    if event and Path(event).is_file():
        try:
            doc = json.loads(Path(event).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            doc = {}
        number = (doc.get("pull_request") or {}).get("number") if isinstance(doc, dict) else None
        if isinstance(number, int):
            return number
    match = re.fullmatch(r"refs/pull/(\d+)/(merge|head)", environ.get("GITHUB_REF", ""))
    return int(match.group(1)) if match else None


def _headers(target: GitHubTarget) -> dict[str, str]:
    return {
        "Accept": "application/vnd.github+json",
        "Authorization": f"Bearer {target.token}",
        "X-GitHub-Api-Version": API_VERSION,
    }


def upsert_comment(target: GitHubTarget, markdown: str) -> tuple[str, int]:
    """Create or update the sticky comment; ("created" | "updated", comment id)."""
    body = truncate(markdown, max_chars=COMMENT_MAX_CHARS)
    if MARKER not in body:
        body = f"{MARKER}\n{body}"
    base = f"{target.api}/repos/{target.repository}"
    existing = _find(target, base)
    if existing is not None:
        request_json(
            "PATCH", f"{base}/issues/comments/{existing}", _headers(target), {"body": body}
        )
        return "updated", existing
    made = request_json(
        "POST", f"{base}/issues/{target.number}/comments", _headers(target), {"body": body}
    )
    return "created", int(made["id"]) if isinstance(made, dict) and "id" in made else 0


def _find(target: GitHubTarget, base: str) -> int | None:
    for page in range(1, MAX_PAGES + 1):
        url = f"{base}/issues/{target.number}/comments?per_page=100&page={page}"
        comments = request_json("GET", url, _headers(target))
        if not isinstance(comments, list):
            return None
        for comment in comments:
            if isinstance(comment, dict) and MARKER in str(comment.get("body", "")):
                return int(comment["id"])
        if len(comments) < 100:
            return None
    return None


def write_step_summary(environ: Mapping[str, str], markdown: str) -> Path | None:
    """Append the report to ``$GITHUB_STEP_SUMMARY`` (under its 1 MiB cap) when it is set."""
    path = environ.get("GITHUB_STEP_SUMMARY")
    if not path:
        return None
    text = truncate(markdown, max_bytes=SUMMARY_MAX_BYTES - 1024)
    try:
        with open(path, "a", encoding="utf-8") as out:
            out.write(text + "\n")
    except OSError as exc:
        raise PublishError(f"cannot write GITHUB_STEP_SUMMARY {path}: {exc.strerror}") from None
    return Path(path)
