"""Views of a plan: each renderer only formats what the `Plan` already holds."""

from __future__ import annotations

from typing import Literal

from reconciler.plan import Plan
from reconciler.render import json, markdown, text

Format = Literal["text", "markdown", "json"]
FORMATS: tuple[str, ...] = ("text", "markdown", "json")


def render(plan: Plan, fmt: str, *, color: bool = False) -> str:
    """The plan in `fmt` (`text`, `markdown` or `json`); `color` only affects `text`."""
    if fmt == "text":
        return text.render(plan, color=color)
    if fmt == "markdown":
        return markdown.render(plan)
    if fmt == "json":
        return json.render(plan)
    raise ValueError(f"unknown plan format {fmt!r} (use one of {', '.join(FORMATS)})")
