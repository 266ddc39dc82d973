"""A small JSON-over-HTTPS client for code hosts' REST APIs (GitHub, GitLab), on the standard
library. Tokens go in headers only; no message this module raises contains one."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any

from conveyor.errors import PublishError

TIMEOUT_S = 30.0
USER_AGENT = "conveyor-ci"


def check_base_url(url: str, variable: str) -> str:
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise PublishError(
            f"{variable}={url!r} is not an http(s) URL",
            hint=f"unset {variable} to use the public API, or give e.g. https://host/api",
        )
    return url.rstrip("/")


def request_json(
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: Mapping[str, Any] | None = None,
) -> Any:
    """Send one request; the decoded JSON answer, or PublishError naming the status."""
    data = None if body is None else json.dumps(body).encode("utf-8")
    request = urllib.request.Request(  # noqa: S310 - the scheme is checked by check_base_url
        url,
        data=data,
        method=method,
        headers={
            "User-Agent": USER_AGENT,
            **({"Content-Type": "application/json"} if data is not None else {}),
            **headers,
        },
    )
    where = f"{method} {urllib.parse.urlsplit(url).path}"
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:  # noqa: S310
            raw = response.read()
    except urllib.error.HTTPError as exc:
        detail = exc.read()[:300].decode("utf-8", errors="replace")
        hint = (
            "check that the token is set and may write comments (pull-requests: write)"
            if exc.code in (401, 403, 404)
            else None
        )
        raise PublishError(f"{where} answered {exc.code}: {detail}", hint=hint) from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise PublishError(f"{where} failed: {reason}") from None
    try:
        return json.loads(raw) if raw.strip() else None
    except ValueError:
        raise PublishError(f"{where} answered with something other than JSON") from None
