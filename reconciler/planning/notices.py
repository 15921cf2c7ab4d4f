"""What a plan tells beside its actions: notices, and the cost of adoption."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from reconciler.live import LiveSource
from reconciler.plan import (
    Adoption,
    Notice,
    SourceRef,
)
from reconciler.planning.matching import (
    by_name,
    named,
)
from reconciler.planning.options import DEFAULT_UPDATES_PER_HOUR, PlanOptions
from reconciler.secrets import (
    UNRESOLVED,
    SecretDecision,
    declared_secrets,
    encrypted_attributes,
    encrypted_fields,
)
from reconciler.specs import (
    DEPLOYMENT_MODELS,
    SourceSpec,
)


def secret_notices(spec: SourceSpec, live: LiveSource, secrets: SecretDecision) -> list[Notice]:
    """A notice naming the secrets this plan could not compare (references not resolved)."""
    # Secrets never sent (no fingerprint recorded) are the adoption notice's, not one each.
    if not secrets.cannot_compare:
        return []
    unresolved = sorted(n for n, why in secrets.cannot_compare.items() if why == UNRESOLVED)
    if not unresolved:
        return []
    return [
        Notice(
            source=spec.name,
            id=live.id,
            kind="cannot_compare",
            detail=f"cannot compare {', '.join(unresolved)}: the secret is not available "
            "to this plan (references not resolved)",
        )
    ]


def adoption_updates(spec: SourceSpec, live: LiveSource) -> int:
    """Updates adopting a source costs, as the applier will make them.

    One write carries the secrets and the marker (enabling a disabled source for it, as
    `enabled_writes` does); a source the file wants disabled is disabled again in a
    second; a web secret's `*_encrypted` value is recorded in one more, after the first
    write (which leaves the source enabled).
    """
    enabled = live.enabled if "enabled" in spec.ignore_changes else spec.enabled
    web_secrets = encrypted_attributes(type(spec.deployment))
    sends_web_secret = bool(web_secrets) and not encrypted_fields(
        type(spec.deployment)
    ).keys().isdisjoint(declared_secrets(spec.deployment))
    return 1 + (enabled is False) + sends_web_secret


def adoption_notice(refs: list[SourceRef], updates: int, options: PlanOptions) -> Adoption | None:
    """One notice for every managed source without a marker, with what adopting costs."""
    if not refs:
        return None
    count = len(refs)
    per_hour = options.updates_per_hour or DEFAULT_UPDATES_PER_HOUR
    hours = math.ceil(updates / per_hour)
    cost = (
        f"{updates} update{'s' if updates != 1 else ''}, {hours} hour{'s' if hours != 1 else ''} "
        f"of the budget of {per_hour} updates per hour"
    )
    sources = f"{count} source{'s' if count != 1 else ''}"
    if options.adopt:
        detail = (
            f"adopting {sources}: this plan sends the secrets the file holds and writes the "
            f"imgix-reconciler marker ({cost})"
        )
    else:
        detail = (
            f"{sources} without an imgix-reconciler marker (changed outside git, e.g. in the "
            "dashboard, or not adopted yet): secrets cannot be compared with what imgix "
            "holds. `apply --adopt` sends the secrets the file holds and writes the marker "
            f"({cost})"
        )
    return Adoption(
        count=count,
        sources=refs,
        planned=options.adopt,
        updates=updates,
        updates_per_hour=per_hour,
        hours=hours,
        detail=detail,
    )


def _origin(kind: Any, attributes: Mapping[str, Any]) -> tuple[Any, ...] | None:
    """Where a source's images come from (its type and origin fields), if it says so."""
    model = DEPLOYMENT_MODELS.get(kind) if isinstance(kind, str) else None
    if model is None or not model.ORIGIN_FIELDS:
        return None
    values = []
    for name in model.ORIGIN_FIELDS:
        value = attributes.get(name)
        values.append(value.rstrip("/") or None if isinstance(value, str) else value)
    if values[0] is None:
        return None
    return (kind, *values)


def possible_renames(spec: SourceSpec, unmanaged: Sequence[LiveSource]) -> list[Notice]:
    """A create whose origin an unmanaged live source already serves: likely that source."""
    attributes = spec.deployment.managed()
    origin = _origin(attributes.get("type"), attributes)
    if origin is None:
        return []
    model = type(spec.deployment)
    fields = " and ".join(("type", *(n for n in model.ORIGIN_FIELDS if attributes.get(n))))
    return [
        Notice(
            source=spec.name,
            id=None,
            kind="possible_rename",
            detail=f"has the same {fields} as the unmanaged live source {named(live)}"
            f"({live.id}): if it is that source renamed or given new hostnames, pin it with "
            f"`id: {live.id}`; as planned, a create makes a second source for the same origin",
        )
        for live in by_name(unmanaged)
        if _origin(live.type, live.deployment) == origin
    ]


def unreadable_for_create(spec: SourceSpec) -> list[Notice]:
    """A create sends every secret: say which ones this plan could not read (apply must)."""
    missing = sorted(n for n, ref in declared_secrets(spec.deployment).items() if not ref.resolved)
    if not missing:
        return []
    return [
        Notice(
            source=spec.name,
            id=None,
            kind="cannot_compare",
            detail=f"{', '.join(missing)} not available to this plan: apply must be able to "
            "read it to create the source",
        )
    ]


def encrypted_notices(spec: SourceSpec, live: LiveSource, changed: list[str]) -> list[Notice]:
    """A notice naming the web secrets changed outside (their `*_encrypted` value moved)."""
    if not changed:
        return []
    names = ", ".join(changed)
    return [
        Notice(
            source=spec.name,
            id=live.id,
            kind="encrypted_changed",
            detail=f"{names} changed outside imgix-reconciler (the encrypted value differs "
            "from the one recorded at the last write); apply sends the file's value again",
        )
    ]
