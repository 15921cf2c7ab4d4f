"""The safety rails: what stops a plan from being applied without a flag that allows it.

Pure checks of a plan (no I/O): `plan` and `drift` refuse a plan whose sources another
owner manages, `apply` refuses what the rails stop before any write, and the applier
checks again before it writes, so a plan applied as a library call is held to them too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import NamedTuple

from reconciler.errors import ApplyRefused
from reconciler.plan import BlastRadius, Plan
from reconciler.untrusted import escaped, quoted


# A NamedTuple: a frozen dataclass costs about 0.4 ms to define at start-up, this 0.05.
class Refusal(NamedTuple):
    """One reason a plan may not be applied, naming its sources and the flag that overrides it.

    `sources` holds (action key or live id, source name, what concerns that source).
    """

    message: str
    sources: tuple[tuple[str, str, str], ...] = ()


@dataclass(frozen=True)
class Permissions:
    """What the user allowed on the command line beyond an ordinary apply."""

    allow_disable: bool = False
    allow_large_change: bool = False
    allow_protected_change: bool = False
    take_over: bool = False


def check_permissions(
    plan: Plan, *, allow_disable: bool = False, permissions: Permissions | None = None
) -> None:
    """Refuse a plan the rails stop (disables, blast radius, protected, owned elsewhere)."""
    allowed = permissions or Permissions()
    if allow_disable:
        allowed = replace(allowed, allow_disable=True)
    found = refusals(plan, allowed)
    if len(found) == 1:
        raise ApplyRefused(found[0].message, found)
    if found:
        raise ApplyRefused(
            "nothing was written, for "
            + f"{len(found)} reasons:\n"
            + "\n".join(f"  - {refusal.message}" for refusal in found),
            found,
        )


def refusals(plan: Plan, permissions: Permissions) -> list[Refusal]:
    """Every rail the plan runs into under `permissions`; empty when it may be applied."""
    found: list[Refusal] = []
    destructive = [a for a in plan.actions if a.destructive]
    if destructive and not permissions.allow_disable:
        names = ", ".join(sorted(escaped(a.source) for a in destructive))
        found.append(
            Refusal(
                f"the plan disables live sources ({names}); re-run with --allow-disable "
                "to let it, or set enabled: true in the file",
                tuple(
                    (a.key, a.source, "the plan disables it; apply needs --allow-disable")
                    for a in destructive
                ),
            )
        )
    if not permissions.allow_large_change:
        found += _blast_radius_refusal(plan)
    if not permissions.allow_protected_change:
        found += [
            Refusal(
                f"source {quoted(a.source)} has mode: protect and the plan "
                f"{_risk_words(a.refused_as_protected)}: "
                "re-run with --allow-protected-change, or set mode: manage in the file",
                (
                    (
                        a.key,
                        a.source,
                        f"mode: protect: the plan {_risk_words(a.refused_as_protected)} "
                        "(--allow-protected-change overrides)",
                    ),
                ),
            )
            for a in plan.actions
            if a.refused_as_protected
        ]
    found += ownership_refusals(plan)
    if not permissions.take_over:
        found += [
            Refusal(
                f"source {quoted(a.source)} is owned by {quoted(a.takes_over_from)}: the plan "
                "takes it over; re-run with --take-over to let it",
                (
                    (
                        a.key,
                        a.source,
                        f"owned by {quoted(a.takes_over_from)}; --take-over overrides",
                    ),
                ),
            )
            for a in plan.actions
            if a.takes_over_from is not None
        ]
    return found


def ownership_refusals(plan: Plan) -> list[Refusal]:
    """The plan's sources that another owner's files manage: never written without --take-over."""
    return [
        Refusal(
            f"source {quoted(owned.source)} ({escaped(owned.id)}) is owned by "
            f"{quoted(owned.owner)} (its marker says so) and is never written: plan and "
            "apply with --take-over to take it over, or remove it from this file",
            ((owned.id, owned.source, f"owned by {quoted(owned.owner)}; --take-over overrides"),),
        )
        for owned in plan.owned_elsewhere
    ]


_RISK_WORDS = {
    "disables": "disables it",
    "moves_origin": "moves its origin",
    "changes_credentials": "changes its credentials",
    "releases_hostnames": "releases hostnames",
}


def _risk_words(risks: Sequence[str]) -> str:
    return " and ".join(_RISK_WORDS[r] for r in risks if r in _RISK_WORDS)


def _blast_radius_refusal(plan: Plan) -> list[Refusal]:
    radius = plan.blast_radius
    if radius is None:
        return []
    risky = [a for a in plan.actions if a.risks]
    # Counted again from the actions (which the digest covers), not only read from the plan.
    measured = BlastRadius.measure(
        len(risky),
        radius.managed,
        max_risky_share=radius.max_risky_share,
        min_risky_count=radius.min_risky_count,
    )
    if not (measured.exceeded or radius.exceeded):
        return []
    names = ", ".join(sorted(escaped(a.source) for a in risky)[:20])
    if len(risky) > 20:
        names += f" and {len(risky) - 20} more"
    return [
        Refusal(
            f"the plan changes {len(risky)} of {radius.managed} managed live sources in risky "
            f"ways ({names}), over the blast-radius threshold (more than "
            f"{radius.max_risky_share:.0%}, and at least {radius.min_risky_count}): review it "
            "and re-run with --allow-large-change",
            tuple(
                (
                    a.key,
                    a.source,
                    f"it {_risk_words(a.risks)}; the plan is over the blast "
                    "radius (--allow-large-change overrides)",
                )
                for a in risky
            ),
        )
    ]
