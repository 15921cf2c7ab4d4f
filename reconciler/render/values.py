"""How renderers show a value: markers bare, everything else as compact JSON."""

from __future__ import annotations

import json
from typing import Literal

from pydantic import JsonValue

from reconciler.plan import CANNOT_COMPARE, NOT_RETURNED, WILL_BE_SENT, WRITE_ONLY, Action, Plan

MARKERS = frozenset({WRITE_ONLY, WILL_BE_SENT, CANNOT_COMPARE, NOT_RETURNED})
DISABLES = "disables a live source: apply needs --allow-disable"


def shown(value: JsonValue) -> str:
    """`value` as a reviewer reads it: JSON, except the plan's own markers."""
    if isinstance(value, str) and value in MARKERS:
        return value
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))


View = Literal["plan", "drift"]


def headline(plan: Plan, view: View = "plan") -> str:
    """One line saying what the plan does, or (`drift`) how live state differs from the file."""
    s = plan.summary
    if view == "drift":
        if not plan.actions:
            return f"In sync: {s.unchanged} sources match the files, {s.unmanaged} unmanaged."
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
