"""How renderers show plan data: markers bare, everything else through `reconciler.untrusted`.

Names, ids and values come from the live API and the files, so they may hold anything;
`reconciler.untrusted` is the one place that makes such text safe to show.
"""

from __future__ import annotations

from typing import Literal

from pydantic import JsonValue

from reconciler.plan import (
    CANNOT_COMPARE,
    HIDDEN,
    NOT_RETURNED,
    NOT_SET,
    REMOVED,
    WILL_BE_SENT,
    WRITE_ONLY,
    Action,
    Plan,
)
from reconciler.untrusted import json_shown

MARKERS = frozenset(
    {WRITE_ONLY, WILL_BE_SENT, CANNOT_COMPARE, NOT_RETURNED, HIDDEN, NOT_SET, REMOVED}
)
DISABLES = "disables a live source: apply needs --allow-disable"


def shown(value: JsonValue) -> str:
    """`value` as a reviewer reads it: JSON, except the plan's own markers."""
    if isinstance(value, str) and value in MARKERS:
        return value
    return json_shown(value)


def counted(number: int, noun: str) -> str:
    """`1 source`, `2 sources`: a count with its noun in agreement."""
    return f"{number} {noun if number == 1 else noun + 's'}"


View = Literal["plan", "drift"]


def headline(plan: Plan, view: View = "plan", drifted: bool | None = None) -> str:
    """One line saying what the plan does, or (`drift`) how live state differs from the file.

    `drifted` is the drift command's verdict (`reconcile.drift_findings`), which can rest
    on notices too (a secret changed outside git, a missing marker with --require-marker):
    the renderer shows it, never guesses it.
    """
    s = plan.summary
    if view == "drift":
        if drifted is None:
            raise ValueError("the drift view needs the drift verdict (drifted=True/False)")
        if drifted and not plan.actions:
            return (
                "Drift: changed outside imgix-reconciler (see the notices), "
                f"{s.unchanged} in sync, {s.unmanaged} unmanaged."
            )
        if not drifted:
            verb = "matches" if s.unchanged == 1 else "match"
            return (
                f"In sync: {counted(s.unchanged, 'source')} {verb} the files, "
                f"{s.unmanaged} unmanaged."
            )
        return (
            f"Drift: {s.create} missing from imgix, {s.patch} differing from the files, "
            f"{s.unchanged} in sync, {s.unmanaged} unmanaged."
        )
    if not plan.actions:
        return f"No changes: {s.unchanged} unchanged, {s.unmanaged} unmanaged."
    return (
        f"Plan: {s.create} to create, {s.patch} to patch, {s.unchanged} unchanged, "
        f"{s.unmanaged} unmanaged."
    )


def source_names(plan: Plan) -> dict[str, str]:
    """Action key to source name, to say which actions wait for which."""
    return {action.key: action.source for action in plan.actions}


def waits_for(names: dict[str, str], action: Action) -> list[str]:
    """Names of the sources whose actions must apply before `action`."""
    return [names.get(key, key) for key in action.depends_on]
