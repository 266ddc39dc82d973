"""Output conventions: status to stderr, results to stdout, ``--json`` for scripts."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click


def use_color(stream: Any) -> bool:
    return bool(getattr(stream, "isatty", lambda: False)()) and not os.environ.get("NO_COLOR")


def status(message: str, **style: Any) -> None:
    """A progress or status line on stderr."""
    click.echo(
        click.style(message, **style) if use_color(sys.stderr) and style else message, err=True
    )


def result(message: str = "", **style: Any) -> None:
    """A result line on stdout."""
    click.echo(click.style(message, **style) if use_color(sys.stdout) and style else message)


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


def console(stderr: bool = False) -> Any:
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    # Piped output keeps whole lines (ids, digests) instead of rich's 80-column default.
    width = None if use_color(stream) else 200
    # emoji=False: names such as "input:a" must print as written, not as an emoji code.
    return Console(
        stderr=stderr,
        no_color=bool(os.environ.get("NO_COLOR")),
        highlight=False,
        width=width,
        emoji=False,
    )


def open_project_from(ctx: click.Context) -> Any:
    from conveyor.engine.project import open_project

    root = ctx.find_root().obj or {}
    return open_project(root.get("project"))


json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print the result as JSON on stdout."
)


def parse_pairs(
    items: tuple[str, ...], option: str, what: str = "KEY", example: str | None = None
) -> dict[str, str]:
    """``KEY=VALUE`` option values as a mapping; a malformed one is a usage error."""
    from conveyor.errors import UsageError

    pairs: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(
                f"{option} {item}: expected {what}=VALUE",
                hint=f"e.g. {option} {example}" if example else None,
            )
        pairs[key.strip()] = value
    return pairs


def write_atomically(path: Path, text: str, option: str) -> None:
    """Write ``text`` to ``path`` through a temporary file, so a reader never sees half of it."""
    from conveyor.errors import UsageError

    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise UsageError(
            f"cannot write the report to {path}: {exc.strerror or exc}",
            hint=f"choose a file in a writable directory with {option}",
        ) from None
