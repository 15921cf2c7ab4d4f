"""Views of a plan: each renderer only formats what the `Plan` already holds."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from reconciler.plan import Plan
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
    # Each format is imported when asked for: rich only for text.
    if fmt == "text":
        from reconciler.render import text

        return text.render(plan, color=color, view=view, drifted=drifted)
    if fmt == "markdown":
        from reconciler.render import markdown

        return markdown.render(plan, view=view, drifted=drifted)
    if fmt == "json":
        from reconciler.render import json

        return json.render(plan)
    raise ValueError(f"unknown plan format {fmt!r} (use one of {', '.join(FORMATS)})")
