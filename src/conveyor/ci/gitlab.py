"""Publishing the CI report on GitLab: one merge-request note, found by a hidden marker and
edited in place (https://docs.gitlab.com/ee/api/notes.html#merge-requests).

``GET /projects/:id/merge_requests/:iid/notes``, then ``PUT .../notes/:note_id`` or
``POST .../notes`` with ``{"body": TEXT}``. The API is ``CI_API_V4_URL``, the project
``CI_PROJECT_ID`` and the merge request ``CI_MERGE_REQUEST_IID`` (all set in merge-request
pipelines); the token (``CONVEYOR_GITLAB_TOKEN`` or ``GITLAB_TOKEN``, a project access token
with the ``api`` scope) goes in the ``PRIVATE-TOKEN`` header.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass

from conveyor.ci.api import check_base_url, request_json
from conveyor.ci.report import MARKER, truncate

NOTE_MAX_CHARS = 1_000_000
MAX_PAGES = 50


@dataclass(frozen=True, slots=True, kw_only=True)
class GitLabTarget:
    api: str
    project: str
    iid: int
    token: str

    def __repr__(self) -> str:  # never show the token
        return f"GitLabTarget({self.api}, project {self.project}!{self.iid})"


def gitlab_target(environ: Mapping[str, str], iid: int | None = None) -> GitLabTarget | None:
    token = environ.get("CONVEYOR_GITLAB_TOKEN") or environ.get("GITLAB_TOKEN")
    raw_iid = environ.get("CI_MERGE_REQUEST_IID", "")
    iid = iid or (int(raw_iid) if raw_iid.isdigit() else None)
    project = environ.get("CI_PROJECT_ID", "")
    if not token or iid is None or not project:
        return None
    api = check_base_url(
        environ.get("CI_API_V4_URL") or "https://gitlab.com/api/v4", "CI_API_V4_URL"
    )
    return GitLabTarget(api=api, project=project, iid=iid, token=token)


def upsert_note(target: GitLabTarget, markdown: str) -> tuple[str, int]:
    """Create or update the sticky note; ("created" | "updated", note id)."""
    body = truncate(markdown, max_chars=NOTE_MAX_CHARS)
    headers = {"PRIVATE-TOKEN": target.token}
    project = urllib.parse.quote(target.project, safe="")
    base = f"{target.api}/projects/{project}/merge_requests/{target.iid}/notes"
    for page in range(1, MAX_PAGES + 1):
        notes = request_json("GET", f"{base}?per_page=100&page={page}&sort=asc", headers)
        if not isinstance(notes, list):
            break
        for note in notes:
            if isinstance(note, dict) and MARKER in str(note.get("body", "")):
                request_json("PUT", f"{base}/{int(note['id'])}", headers, {"body": body})
                return "updated", int(note["id"])
        if len(notes) < 100:
            break
    made = request_json("POST", base, headers, {"body": body})
    return "created", int(made["id"]) if isinstance(made, dict) and "id" in made else 0
