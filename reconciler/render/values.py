"""How renderers show plan data: markers bare, everything else through `reconciler.untrusted`.

Names, ids and values come from the live API and the files, so they may hold anything;
`reconciler.untrusted` is the one place that makes such text safe to show.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import JsonValue

from reconciler.plan import (
    CANNOT_COMPARE,
    HIDDEN,
    MARKER_WRITTEN,
    NOT_RETURNED,
    NOT_SET,
    REMOVED,
    WILL_BE_SENT,
    WRITE_ONLY,
    Action,
    Adoption,
    Plan,
    WriteCost,
)
from reconciler.untrusted import json_shown

if TYPE_CHECKING:
    from reconciler.report import ActionResult, ApplyReport, NotDeployed, Outcome

MARKERS = frozenset(
    {
        WRITE_ONLY,
        WILL_BE_SENT,
        CANNOT_COMPARE,
        NOT_RETURNED,
        HIDDEN,
        NOT_SET,
        REMOVED,
        MARKER_WRITTEN,
    }
)
DISABLES = "disables a live source: apply needs --allow-disable"
# Sources the adoption notice names; the JSON plan lists them all.
MAX_ADOPTION_NAMES = 20


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
        if drifted and not plan.actions and s.observed:
            return (
                f"Drift: {counted(s.observed, 'observed source')} "
                f"{'differs' if s.observed == 1 else 'differ'} from the files (never written), "
                f"{s.unchanged} in sync, "
                f"{s.unmanaged} unmanaged."
            )
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
    observed = f", {s.observed} observed (never written)" if s.observed else ""
    if not plan.actions:
        return f"No changes: {s.unchanged} unchanged, {s.unmanaged} unmanaged{observed}."
    return (
        f"Plan: {s.create} to create, {s.patch} to patch, {s.unchanged} unchanged, "
        f"{s.unmanaged} unmanaged{observed}."
    )


RISK_NAMES = {
    "disables": "disables it",
    "moves_origin": "moves its origin",
    "changes_credentials": "changes its credentials",
    "releases_hostnames": "releases hostnames",
}


def blast_radius_warning(plan: Plan) -> str | None:
    """The warning of a plan over the blast-radius threshold, else None."""
    radius = plan.blast_radius
    if radius is None or not radius.exceeded:
        return None
    return (
        f"Over the blast radius: {radius.risky} of {radius.managed} managed live sources "
        f"change in risky ways (threshold: more than {radius.max_risky_share:.0%}, and at "
        f"least {radius.min_risky_count}); apply needs --allow-large-change."
    )


def action_flags(action: Action) -> list[str]:
    """What a reviewer must know about one action beyond its changes: risks and rails."""
    flags = []
    # A disable has its own warning (DISABLES).
    risks = [RISK_NAMES[r] for r in action.risks if r != "disables"]
    if risks:
        flags.append("risky: " + ", ".join(risks))
    if action.refused_as_protected:
        flags.append("mode: protect: apply needs --allow-protected-change")
    if action.takes_over_from is not None:
        flags.append(f"owned by {action.takes_over_from}: apply needs --take-over")
    return flags


def source_names(plan: Plan) -> dict[str, str]:
    """Action key to source name, to say which actions wait for which."""
    return {action.key: action.source for action in plan.actions}


def waits_for(names: dict[str, str], action: Action) -> list[str]:
    """Names of the sources whose actions must apply before `action`."""
    return [names.get(key, key) for key in action.depends_on]


def duration(seconds: float) -> str:
    """`45 s`, `14 min`, `1 h 05 min`: a wait as a person reads it."""
    whole = max(0, round(seconds))
    if whole < 60:
        return f"{whole} s"
    minutes = round(whole / 60)
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def cost_line(cost: WriteCost) -> str:
    """What an apply writes and how long it takes at the hourly budgets, in one sentence."""
    writes = f"{counted(cost.creates, 'create')} and {counted(cost.updates, 'update')}"
    budgets = ", ".join(
        f"{limit} {kind}/h"
        for kind, limit in (("creates", cost.creates_per_hour), ("updates", cost.updates_per_hour))
        if limit is not None
    )
    at = f" at {budgets}" if budgets else ""
    return f"Cost: {writes}; about {duration(cost.seconds)}{at} (from an unspent hourly budget)."


def adoption_names(adoption: Adoption) -> tuple[list[str], int]:
    """The source names the adoption notice shows, and how many it leaves to the JSON plan."""
    shown_sources = adoption.sources[:MAX_ADOPTION_NAMES]
    return [source.name for source in shown_sources], adoption.count - len(shown_sources)


# What the report lists of the sources --wait left: still deploying, or deleted meanwhile.
WAIT_LEFT = "Not seen deployed when --wait ended"
# Why, per source: the stderr line `--wait gave up: ...` says what a failed poll met.
NOT_DEPLOYED_WHY: dict[NotDeployed, str] = {
    "deploying": "still deploying when the wait ended",
    "deleted": "deleted while deploying",
    "gone": "gone (the API answers 404)",
    "unknown": "unknown (its poll failed: see --wait gave up on stderr)",
}

# The report's words for an outcome where the plan's differ.
_SHOWN_OUTCOME: dict[Outcome, str] = {"stopped": "not attempted"}


def shown_outcome(outcome: Outcome) -> str:
    """An action's outcome as the apply report words it."""
    return _SHOWN_OUTCOME.get(outcome, outcome)


def shown_error(result: ActionResult) -> str:
    """An action's error as the report words it after its outcome, which it may begin with
    (a stopped action's "not attempted: ..."): said once."""
    return (result.error or "").removeprefix(f"{shown_outcome(result.outcome)}: ")


def report_summary(report: ApplyReport) -> str:
    """The apply report's closing sentence: how many actions ended each way, and why."""
    outcomes = [result.outcome for result in report.results]
    summary = f"Apply: {outcomes.count('applied')} applied, {outcomes.count('failed')} failed."
    if outcomes.count("in effect"):
        summary += f" {outcomes.count('in effect')} already in effect (skipped)."
    if outcomes.count("stale"):
        summary += (
            f" {outcomes.count('stale')} not applied (changed since the plan):"
            " run plan again and review it."
        )
    if outcomes.count("skipped"):
        summary += f" {outcomes.count('skipped')} not attempted (waiting for a failed action)."
    if outcomes.count("stopped"):
        summary += f" {outcomes.count('stopped')} not attempted ({report.stopped or 'stopped'})."
    # A stop that came during the last write leaves nothing to continue.
    if report.stopped and (outcomes.count("stopped") or outcomes.count("failed")):
        summary += " Run apply again to continue: it plans afresh."
    elif report.stopped and report.still_deploying:
        # Every write made: only the wait was cut, and the log's reader needs to know why.
        summary += f" --wait {report.stopped}: {len(report.still_deploying)} not seen deployed."
    return summary
