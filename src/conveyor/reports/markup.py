"""HTML building blocks of the report. Cells passed in are HTML already; text is escaped
with :func:`esc` where it enters, so a user's string never becomes markup."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape

TONES = {
    "succeeded": "pass",
    "cached": "info",
    "failed": "fail",
    "skipped": "warn",
    "running": "warn",
    "cancelled": "warn",
}


def esc(text: object) -> str:
    return escape(str(text))


def badge(label: str, tone: str) -> str:
    return f'<span class="badge {esc(tone)}">{esc(label)}</span>'


def status_badge(status: str) -> str:
    return badge(status, TONES.get(status, "info"))


def verdict_badge(passed: bool, severity: str = "error") -> str:
    if passed:
        return badge("pass", "pass")
    return badge(
        "fail" if severity == "error" else severity, "fail" if severity == "error" else "warn"
    )


def code(text: object) -> str:
    return f"<code>{esc(text)}</code>"


def table(
    head: Sequence[str], rows: Iterable[Sequence[str]], *, right: Iterable[int] = (), css: str = ""
) -> str:
    """A table of HTML cells; column numbers in ``right`` are right-aligned (numbers)."""
    aligned = set(right)

    def cell(tag: str, i: int, content: str) -> str:
        return (
            f'<{tag} class="n">{content}</{tag}>' if i in aligned else f"<{tag}>{content}</{tag}>"
        )

    header = "".join(cell("th", i, esc(h)) for i, h in enumerate(head))
    body = "".join(
        "<tr>" + "".join(cell("td", i, c) for i, c in enumerate(row)) + "</tr>" for row in rows
    )
    attr = f' class="{esc(css)}"' if css else ""
    return f"<table{attr}><thead><tr>{header}</tr></thead><tbody>{body}</tbody></table>"


def section(ident: str, heading: str, body: Iterable[str]) -> str:
    return f'<section id="{esc(ident)}"><h2>{esc(heading)}</h2>{"".join(body)}</section>'


def article(heading: str, body: Iterable[str]) -> str:
    return f"<article><h3>{heading}</h3>{''.join(body)}</article>"


def para(html: str, css: str = "") -> str:
    return f'<p class="{esc(css)}">{html}</p>' if css else f"<p>{html}</p>"


def bullets(items: Iterable[str]) -> str:
    """A list of HTML items (empty string for none)."""
    listed = "".join(f"<li>{item}</li>" for item in items)
    return f"<ul>{listed}</ul>" if listed else ""


def figure(content: str, caption: str) -> str:
    return f"<figure>{content}<figcaption>{caption}</figcaption></figure>"
