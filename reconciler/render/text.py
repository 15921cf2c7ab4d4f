"""The plan for a terminal: one block per action, colour only when asked.

Lines are built as spans of text with rich styles; rich draws them only for a colour
terminal, so plain text (a pipe, a file, a CI log) never imports it.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

from reconciler.plan import (
    NOT_RETURNED,
    Action,
    Adoption,
    Notice,
    ObservedSource,
    OwnedElsewhere,
    Plan,
    UnmanagedSource,
)
from reconciler.render.values import (
    DISABLES,
    NOT_DEPLOYED_WHY,
    WAIT_LEFT,
    View,
    action_flags,
    adoption_names,
    blast_radius_warning,
    cost_line,
    headline,
    report_summary,
    shown,
    shown_error,
    shown_outcome,
    source_names,
    waits_for,
)
from reconciler.untrusted import escaped, one_line, quoted

if TYPE_CHECKING:
    import rich.text

    from reconciler.report import ApplyReport

_SIGN = {"create": ("+", "green"), "patch": ("~", "yellow")}


def render(
    plan: Plan, *, color: bool = False, view: View = "plan", drifted: bool | None = None
) -> str:
    """The plan as terminal text; ANSI styles only when `color` is true."""
    lines = _lines(plan, view, drifted)
    if not color:
        return "".join(line.plain + "\n" for line in lines)
    from rich.console import Console

    buffer = io.StringIO()
    console = Console(
        file=buffer,
        force_terminal=True,
        color_system="standard",
        highlight=False,
        markup=False,
        emoji=False,
        soft_wrap=True,
        width=120,
    )
    for line in lines:
        console.print(line.styled())
    return buffer.getvalue()


class Line:
    """One line: spans of text, each with a rich style, under the line's own style."""

    __slots__ = ("spans", "style")

    def __init__(self, text: str = "", style: str = "") -> None:
        self.style = style
        self.spans: list[tuple[str, str]] = [(text, "")] if text else []

    def append(self, text: str, style: str = "") -> None:
        """Add `text` at the end, in `style` on top of the line's."""
        self.spans.append((text, style))

    @property
    def plain(self) -> str:
        """The line without styles, as plain output shows it."""
        return "".join(text for text, _ in self.spans)

    def styled(self) -> rich.text.Text:
        """The line for rich to draw in colour (rich is imported here, and only here)."""
        from rich.text import Text as RichText

        line = RichText(style=self.style)
        for text, style in self.spans:
            line.append(text, style=style or None)
        return line


def _lines(plan: Plan, view: View, drifted: bool | None) -> list[Line]:
    lines = [Line(headline(plan, view, drifted), style="bold")]
    warning = blast_radius_warning(plan)
    if warning is not None:
        lines.append(Line(f"! {warning}", style="bold red"))
    names = source_names(plan)
    for action in plan.actions:
        lines += [Line(), *_action(names, action)]
    for observed in plan.observed:
        lines += [Line(), *_observed(observed)]
    if plan.owned_elsewhere:
        lines += [Line(), Line("Owned elsewhere (never written; --take-over takes over):", "bold")]
        lines += [_owned(owned) for owned in plan.owned_elsewhere]
    if plan.notices or plan.adoption:
        lines += [Line(), Line("Notices:", style="bold")]
        if plan.adoption:
            lines.append(_adoption(plan.adoption))
        lines += [_notice(notice) for notice in plan.notices]
    if plan.unmanaged:
        lines += [Line(), Line("Unmanaged (live, matched by no source; never touched):", "bold")]
        lines += [_unmanaged(source) for source in plan.unmanaged]
    if plan.actions:
        lines.append(Line())
        if plan.cost is not None:
            lines.append(Line(cost_line(plan.cost)))
        lines.append(Line(f"Digest: {escaped(plan.digest)}", style="dim"))
    return lines


def _action(names: dict[str, str], action: Action) -> list[Line]:
    sign, style = _SIGN[action.action]
    title = Line(f"{sign} {action.action} ", style=f"bold {style}")
    title.append(quoted(action.source), style="bold")
    if action.id:
        title.append(f" ({escaped(action.id)})")
    lines = [title]
    if action.destructive:
        lines.append(Line(f"    ! {DISABLES}", style="bold red"))
    for flag in action_flags(action):
        lines.append(Line(f"    ! {escaped(flag)}", style="yellow"))
    for name in waits_for(names, action):
        lines.append(Line(f"    after {quoted(name)} (it releases a hostname this claims)", "dim"))
    for change in action.changes:
        line = Line(f"    {sign} {escaped(change.path)}: ")
        if action.action == "create":
            line.append(shown(change.after), style=style)
        else:
            line.append(shown(change.before), style="red")
            line.append(" -> ")
            line.append(shown(change.after), style="green")
        lines.append(line)
    return lines


def _observed(observed: ObservedSource) -> list[Line]:
    title = Line(f"= observed {quoted(observed.source)}", style="bold cyan")
    if observed.id:
        title.append(f" ({escaped(observed.id)})")
    title.append(" (mode: observe; never written)", style="dim")
    lines = [title]
    for change in observed.changes:
        line = Line(f"    = {escaped(change.path)}: ")
        if observed.action == "create":
            line.append("(missing) -> ", style="red")
        else:
            line.append(shown(change.before), style="red")
            line.append(" -> ")
        line.append(shown(change.after), style="green")
        lines.append(line)
    return lines


def _owned(owned: OwnedElsewhere) -> Line:
    return Line(f"  - {quoted(owned.source)} ({escaped(owned.id)}): owned by {quoted(owned.owner)}")


def _notice(notice: Notice) -> Line:
    line = Line("  ! ", style="yellow")
    line.append(quoted(notice.source))
    if notice.id:
        line.append(f" ({escaped(notice.id)})")
    line.append(f": {escaped(notice.detail)}")
    return line


def _adoption(adoption: Adoption) -> Line:
    names, hidden = adoption_names(adoption)
    line = Line("  ! ", style="yellow")
    line.append(f"{escaped(adoption.detail)}: ")
    line.append(", ".join(quoted(name) for name in names))
    if hidden:
        line.append(f" and {hidden} more")
    return line


def _unmanaged(source: UnmanagedSource) -> Line:
    name = source.name if source.name == NOT_RETURNED else quoted(source.name)
    return Line(f"  - {name} ({escaped(source.id)})")


def render_report(report: ApplyReport) -> str:
    """The apply report as terminal text: one line per action, then the summary."""
    # Names and API messages come from outside: escaped, they cannot forge a log line.
    lines = []
    for result in report.results:
        line = f"{shown_outcome(result.outcome)}: {result.action} {escaped(result.source)}"
        if result.source_id:
            line += f" ({escaped(result.source_id)})"
        if result.error:
            line += f": {one_line(shown_error(result))}"
        lines.append(line)
    if report.still_deploying:
        # The ids' line is read by scripts as it always was; the lines under it say why.
        ids = ", ".join(map(escaped, report.still_deploying))
        lines.append(f"{WAIT_LEFT}: {ids}.")
        names = {r.source_id: r.source for r in report.results if r.source_id}
        for source_id in report.still_deploying:
            name = f"{quoted(names[source_id])} " if source_id in names else ""
            why = NOT_DEPLOYED_WHY[report.why_not_deployed(source_id)]
            lines.append(f"  - {name}({escaped(source_id)}): {why}")
    lines.append(report_summary(report))
    return "\n".join(lines) + "\n"
