"""Views of a plan: each renderer only formats what the `Plan` already holds."""

from __future__ import annotations

from reconciler.plan import Plan
from reconciler.render import json, markdown, text
from reconciler.render.values import View

FORMATS: tuple[str, ...] = ("text", "markdown", "json")


def render(
    plan: Plan,
    fmt: str,
    *,
    color: bool = False,
    view: View = "plan",
    drifted: bool | None = None,
) -> str:
    """The plan in `fmt` (`text`, `markdown` or `json`); `color` only affects `text`.

    `view="drift"` words text and markdown for a scheduled check, whose verdict is
    `drifted`; json is the same document.
    """
    if fmt == "text":
        return text.render(plan, color=color, view=view, drifted=drifted)
    if fmt == "markdown":
        return markdown.render(plan, view=view, drifted=drifted)
    if fmt == "json":
        return json.render(plan)
    raise ValueError(f"unknown plan format {fmt!r} (use one of {', '.join(FORMATS)})")
