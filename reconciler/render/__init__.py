"""Views of a plan and of an apply report: each renderer only formats what it is given."""

from __future__ import annotations

from typing import TYPE_CHECKING

from reconciler import collector

if TYPE_CHECKING:
    from reconciler.plan import Plan
    from reconciler.render.values import View
    from reconciler.report import ApplyReport

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
    with collector.paused():
        return _render(plan, fmt, color=color, view=view, drifted=drifted)


def _render(plan: Plan, fmt: str, *, color: bool, view: View, drifted: bool | None) -> str:
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


def render_report(report: ApplyReport, fmt: str, *, digest: str | None = None) -> str:
    """The apply report in `fmt`; the json document records the applied plan's `digest`."""
    if fmt == "text":
        from reconciler.render import text

        return text.render_report(report)
    if fmt == "markdown":
        from reconciler.render import markdown

        return markdown.render_report(report)
    if fmt == "json":
        from reconciler.render import json

        return json.render_report(report, digest)
    raise ValueError(f"unknown report format {fmt!r} (use one of {', '.join(FORMATS)})")
