"""The plan for a terminal: one block per action, colour only when asked."""

from __future__ import annotations

import io

from rich.console import Console
from rich.text import Text

from reconciler.plan import Action, Adoption, Notice, Plan, UnmanagedSource
from reconciler.render.values import (
    DISABLES,
    View,
    adoption_names,
    headline,
    shown,
    source_names,
    waits_for,
)
from reconciler.untrusted import escaped, quoted

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
    names = source_names(plan)
    for action in plan.actions:
        console.print()
        for line in _action(names, action):
            console.print(line)
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
