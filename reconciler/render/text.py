"""The plan for a terminal: one block per action, colour only when asked."""

from __future__ import annotations

import io

from rich.console import Console
from rich.text import Text

from reconciler.applier import ApplyReport
from reconciler.plan import (
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
    View,
    action_flags,
    adoption_names,
    blast_radius_warning,
    cost_line,
    headline,
    report_summary,
    shown,
    shown_outcome,
    source_names,
    waits_for,
)
from reconciler.untrusted import escaped, one_line, quoted

_SIGN = {"create": ("+", "green"), "patch": ("~", "yellow")}


def render(
    plan: Plan, *, color: bool = False, view: View = "plan", drifted: bool | None = None
) -> str:
    """The plan as terminal text; ANSI styles only when `color` is true."""
    buffer = io.StringIO()
    console = Console(
        file=buffer,
        force_terminal=color,
        no_color=not color,
        color_system="standard" if color else None,
        highlight=False,
        markup=False,
        emoji=False,
        soft_wrap=True,
        width=120,
    )
    console.print(Text(headline(plan, view, drifted), style="bold"))
    warning = blast_radius_warning(plan)
    if warning is not None:
        console.print(Text(f"! {warning}", style="bold red"))
    names = source_names(plan)
    for action in plan.actions:
        console.print()
        for line in _action(names, action):
            console.print(line)
    for observed in plan.observed:
        console.print()
        for line in _observed(observed):
            console.print(line)
    if plan.owned_elsewhere:
        console.print()
        console.print(Text("Owned elsewhere (never written; --take-over takes over):", "bold"))
        for owned in plan.owned_elsewhere:
            console.print(_owned(owned))
    if plan.notices or plan.adoption:
        console.print()
        console.print(Text("Notices:", style="bold"))
        if plan.adoption:
            console.print(_adoption(plan.adoption))
        for notice in plan.notices:
            console.print(_notice(notice))
    if plan.unmanaged:
        console.print()
        console.print(Text("Unmanaged (live, matched by no source; never touched):", style="bold"))
        for source in plan.unmanaged:
            console.print(_unmanaged(source))
    if plan.actions:
        console.print()
        if plan.cost is not None:
            console.print(Text(cost_line(plan.cost)))
        console.print(Text(f"Digest: {escaped(plan.digest)}", style="dim"))
    return buffer.getvalue()


def _action(names: dict[str, str], action: Action) -> list[Text]:
    sign, style = _SIGN[action.action]
    title = Text(f"{sign} {action.action} ", style=f"bold {style}")
    title.append(quoted(action.source), style="bold")
    if action.id:
        title.append(f" ({escaped(action.id)})")
    lines = [title]
    if action.destructive:
        lines.append(Text(f"    ! {DISABLES}", style="bold red"))
    for flag in action_flags(action):
        lines.append(Text(f"    ! {escaped(flag)}", style="yellow"))
    for name in waits_for(names, action):
        lines.append(Text(f"    after {quoted(name)} (it releases a hostname this claims)", "dim"))
    for change in action.changes:
        line = Text(f"    {sign} {escaped(change.path)}: ")
        if action.action == "create":
            line.append(shown(change.after), style=style)
        else:
            line.append(shown(change.before), style="red")
            line.append(" -> ")
            line.append(shown(change.after), style="green")
        lines.append(line)
    return lines


def _observed(observed: ObservedSource) -> list[Text]:
    title = Text(f"= observed {quoted(observed.source)}", style="bold cyan")
    if observed.id:
        title.append(f" ({escaped(observed.id)})")
    title.append(" (mode: observe; never written)", style="dim")
    lines = [title]
    for change in observed.changes:
        line = Text(f"    = {escaped(change.path)}: ")
        if observed.action == "create":
            line.append("(missing) -> ", style="red")
        else:
            line.append(shown(change.before), style="red")
            line.append(" -> ")
        line.append(shown(change.after), style="green")
        lines.append(line)
    return lines


def _owned(owned: OwnedElsewhere) -> Text:
    return Text(f"  - {quoted(owned.source)} ({escaped(owned.id)}): owned by {quoted(owned.owner)}")


def _notice(notice: Notice) -> Text:
    line = Text("  ! ", style="yellow")
    line.append(quoted(notice.source))
    if notice.id:
        line.append(f" ({escaped(notice.id)})")
    line.append(f": {escaped(notice.detail)}")
    return line


def _adoption(adoption: Adoption) -> Text:
    names, hidden = adoption_names(adoption)
    line = Text("  ! ", style="yellow")
    line.append(f"{escaped(adoption.detail)}: ")
    line.append(", ".join(quoted(name) for name in names))
    if hidden:
        line.append(f" and {hidden} more")
    return line


def _unmanaged(source: UnmanagedSource) -> Text:
    return Text(f"  - {quoted(source.name)} ({escaped(source.id)})")


def render_report(report: ApplyReport) -> str:
    """The apply report as terminal text: one line per action, then the summary."""
    # Names and API messages come from outside: escaped, they cannot forge a log line.
    lines = []
    for result in report.results:
        line = f"{shown_outcome(result.outcome)}: {result.action} {escaped(result.source)}"
        if result.source_id:
            line += f" ({escaped(result.source_id)})"
        if result.error:
            line += f": {one_line(result.error)}"
        lines.append(line)
    if report.still_deploying:
        ids = ", ".join(map(escaped, report.still_deploying))
        lines.append(f"Still deploying when --wait gave up: {ids}.")
    lines.append(report_summary(report))
    return "\n".join(lines) + "\n"
