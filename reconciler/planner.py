"""The planner: a pure function from (desired state, live state, options) to a `Plan`.

Set algebra over matched sources: desired ∩ live are compared attribute by attribute,
desired minus live are created, live minus desired are listed as unmanaged and never touched.
Both sides are normalized first (defaults on the desired side, read-only and write-only
attributes out, hostname lists as sets, `ignore_changes` honoured), and secrets follow
the send rules of `reconciler.secrets`. No I/O happens here or in its parts: that is what
lets tests and property tests call it with plain values.

This module assembles the plan and compares a pair in detail; its parts are in
`reconciler.planning`: `matching` (which live source a spec describes), `in_sync` (the
quick verdicts that settle most pairs), `changes` (what differs), `writes` (what a write
sends), `notices`, `ordering`, and `options`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import replace
from itertools import compress, repeat
from operator import attrgetter, is_, itemgetter
from typing import Any, NamedTuple

from pydantic import JsonValue

from reconciler import collector
from reconciler.errors import PlanError
from reconciler.live import LiveSource
from reconciler.marker import Annotation
from reconciler.plan import (
    MARKER_WRITTEN,
    NOT_RETURNED,
    WILL_BE_SENT,
    WRITE_ONLY,
    Action,
    BlastRadius,
    Change,
    Notice,
    ObservedSource,
    OwnedElsewhere,
    Plan,
    Risk,
    SourceRef,
    Summary,
    UnmanagedSource,
    compute_digest,
    write_cost,
)
from reconciler.planning.changes import (
    annotation_text,
    attribute_changes,
    cleared_secrets,
    hide_referenced,
    managed_values,
    normalized,
    sorted_changes,
    text_or_none,
)
from reconciler.planning.in_sync import (
    DIFFERS,
    plainly_in_sync,
    quiet_in_bulk,
    quiet_verdict,
)
from reconciler.planning.matching import (
    Match,
    check_unique_hostnames,
    masked,
    match_sources,
    matching_of,
)
from reconciler.planning.notices import (
    adoption_notice,
    adoption_updates,
    encrypted_notices,
    possible_renames,
    secret_notices,
    unreadable_for_create,
)
from reconciler.planning.options import PlanOptions
from reconciler.planning.ordering import order, with_dependencies
from reconciler.planning.writes import (
    annotation_write,
    carries_annotation,
    deployment_write,
    enabled_writes,
    kill_safe,
    secret_placeholder,
    with_placeholders,
)
from reconciler.secrets import (
    UNRECORDED,
    decide_secrets,
    encrypted_changed,
)
from reconciler.specs import (
    HOSTNAME_FIELDS,
    DeploymentBase,
    DesiredState,
    SourceSpec,
    name_form,
    secret_fields,
)

# The planner's parts live in `reconciler.planning`; these are what callers import here.
__all__ = ["Match", "PlanOptions", "Planner", "desired_attributes", "match_sources", "plan"]

_NOTICE_ORDER = {"possible_rename": 0, "cannot_compare": 1, "encrypted_changed": 2}


def plan(desired: DesiredState, live: Sequence[LiveSource], options: PlanOptions) -> Plan:
    """Compare the desired state with the live one and say what to write."""
    return Planner(desired, options).plan(live)


# A NamedTuple: built for every unadopted source, in half the time of a frozen dataclass.
class _Outcome(NamedTuple):
    """What a spec matched to a live source adds to the plan (None: another owner holds it)."""

    action: Action | None = None
    notices: Sequence[Notice] = ()
    # Not adopted yet: the reference the adoption notice lists, and what adopting costs.
    unadopted: SourceRef | None = None
    adoption_updates: int = 0


_IN_SYNC = _Outcome()
# What the bulk pass leaves to the per-source path.
_UNSETTLED: Any = object()
# The outcome of each verdict of the bulk pass but "not adopted" (True), its own.
_BY_VERDICT: dict[Any, Any] = {False: _IN_SYNC, None: _UNSETTLED, DIFFERS: DIFFERS}


class Planner:
    """`plan`, with what one plan remembers: the secret fingerprints computed so far and
    the bulk pass's verdicts on annotations and secrets."""

    def __init__(self, desired: DesiredState, options: PlanOptions) -> None:
        self.desired = desired
        self.options = options
        self._fingerprints: dict[tuple[str, str], str] = {}
        # The bulk pass's verdicts on the annotation and secrets (`quiet_in_bulk`).
        self._verdicts: dict[tuple[Any, ...], bool | None] = {}

    def plan(self, live: Sequence[LiveSource]) -> Plan:
        """The plan for the live sources listed."""
        with collector.paused():
            return _plan(self.desired, live, self.options, self._outcomes_in_bulk, self._outcome_of)

    def _outcomes_in_bulk(self, pairs: list[Match]) -> list[Any]:
        """The outcome of each matched pair the bulk pass settles (`_UNSETTLED`: the
        per-source path decides)."""
        quiet = quiet_in_bulk(
            pairs, self.options, self.desired.owner, self._verdicts, self._fingerprints
        )
        found = list(map(_BY_VERDICT.get, quiet, repeat(_UNSETTLED)))
        if True in quiet:  # not adopted yet: an outcome of its own
            for position in compress(range(len(quiet)), map(is_, quiet, repeat(True))):
                match = pairs[position]
                found[position] = _unadopted(match.spec, match.live)  # type: ignore[arg-type]
        return found

    def _outcome_of(
        self, match: Match, annotation: Annotation, differs: bool = False
    ) -> _Outcome | None:
        assert match.live is not None
        return self._outcome(match.spec, match.live, annotation, differs)

    def _outcome(
        self,
        spec: SourceSpec,
        live: LiveSource,
        annotation: Annotation | None = None,
        differs: bool = False,
    ) -> _Outcome | None:
        """What the pair adds to the plan. `differs`: its managed attributes are known to
        differ plainly (the bulk pass compared them), so no quick check is tried first."""
        options, owner, memo = self.options, self.desired.owner, self._fingerprints
        if annotation is None:
            annotation = live.annotation
        marker = annotation.marker
        live_owner = marker.owner if marker is not None else None
        observed = spec.mode == "observe"
        if not differs and (observed or live_owner is None or live_owner == owner):
            # Most sources are in sync: settled without building a comparison.
            adopt = options.adopt and not observed
            quiet = quiet_verdict(spec, live, options, adopt, memo, annotation)
            if quiet is not None:
                return _unadopted(spec, live) if quiet else _IN_SYNC
        if spec.mode == "observe":
            # Never written, so no owner is claimed: the diff is shown as it stands.
            compared = _compare(spec, live, options, memo, owner=live_owner, differs=differs)
        elif live_owner is not None and live_owner != owner:
            if not options.take_over:
                return None
            compared = _compare(
                spec, live, options, memo, owner=owner, takes_over_from=live_owner, differs=differs
            )
        else:
            compared = _compare(
                spec, live, options, memo, owner=owner, adopt=options.adopt, differs=differs
            )
        if compared.unadopted:
            return _unadopted(spec, live)._replace(action=compared.action, notices=compared.notices)
        return _Outcome(compared.action, compared.notices)


def _is_outcome(outcome: Any) -> bool:
    return type(outcome) is _Outcome


def _quietly(outcome: _Outcome) -> bool:
    """Whether an outcome only counts the source as unchanged (and perhaps unadopted)."""
    return outcome.action is None and not outcome.notices


def _unadopted(spec: SourceSpec, live: LiveSource) -> _Outcome:
    # An observed source is never written, so it cannot be adopted either.
    if spec.mode == "observe":
        return _IN_SYNC
    return _Outcome(
        unadopted=_source_ref(live.id, spec.name), adoption_updates=adoption_updates(spec, live)
    )


def _plan(
    desired: DesiredState,
    live: Sequence[LiveSource],
    options: PlanOptions,
    outcomes_in_bulk: Callable[[list[Match]], list[Any]],
    outcome_of: Callable[[Match, Annotation, bool], _Outcome | None],
) -> Plan:
    file_owner, take_over = desired.owner, options.take_over
    targets = _targeted(desired, options.targets)
    _check_targets(desired, targets)
    subdomains = check_unique_hostnames(desired)
    matching = matching_of(desired.sources, live, subdomains)
    matches = matching.matches
    # Matching claimed exactly the live sources some spec matches.
    claimed = matching.claimed
    unmanaged_live = [s for s in live if s.id not in claimed] if len(claimed) < len(live) else []
    unmanaged = sorted(
        (
            # An unknown name is the plan's marker, shown as it is.
            UnmanagedSource(id=s.id, name=masked(s.name) if s.name is not None else NOT_RETURNED)
            for s in unmanaged_live
        ),
        key=lambda u: (u.name, u.id),
    )

    # Most matched sources are settled all at once (in sync: nothing to add); the loop
    # below visits the others. An observed one is held, so it always takes the loop.
    # Each spec claimed a live source (one each), none is observed: all of them, in C.
    every_match = len(claimed) == len(matches) and "observe" not in map(_MODE, desired.sources)
    pairs = (
        matches
        if every_match and not targets
        else [
            m
            for m in matches
            if m.live is not None
            and m.spec.mode != "observe"
            and (not targets or m.spec.name in targets)
        ]
    )
    outcomes = outcomes_in_bulk(pairs)
    # In sync, perhaps not adopted yet, and nothing to say: what the loop would only count.
    in_sync = list(map(is_, outcomes, repeat(_IN_SYNC)))
    quiet = (
        set(range(len(matches)))  # the steady state: the indices of all
        if pairs is matches and all(in_sync)
        else set(compress(map(_INDEX, pairs), in_sync))
    )
    # By the spec's index: the adoption notice lists them in the file's order.
    unadopted: list[tuple[int, SourceRef]] = []
    adoption_updates = 0
    settled: dict[int, Any] = {}
    if len(quiet) < len(pairs):
        for match, outcome in zip(pairs, outcomes, strict=True):
            if outcome is _IN_SYNC or outcome is _UNSETTLED:
                continue
            if _is_outcome(outcome) and _quietly(outcome):
                quiet.add(match.index)
                if outcome.unadopted is not None:
                    unadopted.append((match.index, outcome.unadopted))
                    adoption_updates += outcome.adoption_updates
            else:
                settled[match.index] = outcome
    if len(quiet) == len(matches):
        rest: list[Match] = []
    else:
        rest = [m for m in matches if m.index not in quiet] if quiet else matches

    actions: list[tuple[Match, Action]] = []
    observed: list[ObservedSource] = []
    owned_elsewhere: list[OwnedElsewhere] = []
    notices: list[Notice] = []
    unchanged = len(quiet)
    some_quiet = len(unadopted)
    # Matched live sources this plan never writes: observed, or owned by another file.
    held: set[int] = set()
    for match in rest:
        spec = match.spec
        if match.live is not None:
            annotation = match.live.annotation
            marker = annotation.marker
            owner = marker.owner if marker is not None else None
            if spec.mode == "observe" or (
                owner is not None and owner != file_owner and not take_over
            ):
                held.add(match.index)
        if targets and spec.name not in targets:
            continue
        if match.live is None:
            create = _create(spec, options, desired.owner)
            if spec.mode == "observe":
                observed.append(_observed(create))
                continue
            actions.append((match, create))
            notices.extend(unreadable_for_create(spec))
            if unmanaged_live:
                notices.extend(possible_renames(spec, unmanaged_live))
            continue
        outcome = settled.get(match.index, _UNSETTLED)
        if outcome is _UNSETTLED or outcome is DIFFERS:
            outcome = outcome_of(match, annotation, outcome is DIFFERS)
        if outcome is _IN_SYNC:
            unchanged += 1
            continue
        if outcome is None:
            assert owner is not None
            owned_elsewhere.append(OwnedElsewhere(source=spec.name, id=match.live.id, owner=owner))
            continue
        notices.extend(outcome.notices)
        if outcome.action is None:
            unchanged += 1
        elif spec.mode == "observe":
            observed.append(_observed(outcome.action))
        else:
            actions.append((match, outcome.action))
        if outcome.unadopted is not None:
            unadopted.append((match.index, outcome.unadopted))
            adoption_updates += outcome.adoption_updates

    ordered = order(with_dependencies(actions, matching, held))
    notices.sort(key=lambda n: (n.source, n.id or "", _NOTICE_ORDER[n.kind]))
    observed.sort(key=lambda o: (o.source, o.id or ""))
    owned_elsewhere.sort(key=lambda o: (o.source, o.id))
    summary = Summary(
        create=sum(a.action == "create" for a in ordered),
        patch=sum(a.action == "patch" for a in ordered),
        unchanged=unchanged,
        unmanaged=len(unmanaged),
        observed=len(observed),
    )
    managed = len(claimed) - len(held)
    blast_radius = BlastRadius.measure(
        sum(1 for a in ordered if a.risks),
        managed,
        max_risky_share=desired.safety.max_risky_share,
        min_risky_count=desired.safety.min_risky_count,
    )
    return Plan(
        api_url=options.api_url,
        digest=compute_digest(ordered, options.api_url),
        summary=summary,
        actions=ordered,
        unmanaged=unmanaged,
        notices=notices,
        observed=observed,
        owned_elsewhere=owned_elsewhere,
        blast_radius=blast_radius,
        adoption=adoption_notice(
            # Each part is in the file's order already: merged only when both have some.
            [
                ref
                for _, ref in (
                    sorted(unadopted, key=_FIRST) if 0 < some_quiet < len(unadopted) else unadopted
                )
            ],
            adoption_updates,
            options,
        ),
        cost=write_cost(
            ordered,
            creates_per_hour=options.creates_per_hour,
            updates_per_hour=options.updates_per_hour,
        ),
    )


# One set of given fields for every reference a plan lists (one per unadopted source, all
# of them on a first plan): sharing it saves a set per source. Never mutated: frozen model.
_SOURCE_REF_FIELDS = {"id", "name"}


def _source_ref(id: str, name: str) -> SourceRef:
    """A reference to a live source."""
    # Validated (1 µs) rather than `model_construct` (2.7 µs on pydantic 2.14, one per
    # unadopted source), then given the shared set of fields.
    ref = SourceRef(id=id, name=name)
    object.__setattr__(ref, "__pydantic_fields_set__", _SOURCE_REF_FIELDS)
    return ref


def _observed(action: Action) -> ObservedSource:
    return ObservedSource(
        action=action.action, source=action.source, id=action.id, changes=action.changes
    )


def _targeted(desired: DesiredState, targets: frozenset[str]) -> frozenset[str]:
    """The file's names `targets` name, as the file writes them: a name typed in another
    Unicode form (é, or e and a combining accent), which reads the same, names it too."""
    if not targets:
        return targets
    written: dict[str, set[str]] = {}
    for spec in desired.sources:
        written.setdefault(name_form(spec.name), set()).add(spec.name)
    return frozenset(
        name for target in targets for name in written.get(name_form(target), {target})
    )


def _check_targets(desired: DesiredState, targets: frozenset[str]) -> None:
    if not targets:
        return
    names = {spec.name for spec in desired.sources}
    unknown = sorted(targets - names)
    if unknown:
        import difflib  # for a mistake only: a plan with known targets never loads it

        def named(target: str) -> str:
            close = difflib.get_close_matches(target, names, n=1, cutoff=0.6)
            return f'"{target}" (did you mean "{close[0]}"?)' if close else f'"{target}"'

        raise PlanError("--target names no source of the file: " + ", ".join(map(named, unknown)))


_INDEX = attrgetter("index")
_MODE = attrgetter("mode")
_FIRST = itemgetter(0)


def desired_attributes(deployment: DeploymentBase) -> dict[str, Any]:
    """Every managed attribute (API names, defaults applied), lists as declared.

    Attributes without a documented default count only when the file states them;
    `annotation` and secrets follow their own rules.
    """
    return deployment.managed()


def _create(spec: SourceSpec, options: PlanOptions, owner: str | None) -> Action:
    deployment = spec.deployment
    secrets = decide_secrets(deployment, key=options.fingerprint_key, creating=True)
    attributes = desired_attributes(deployment)
    body: dict[str, JsonValue] = dict(attributes)
    with_placeholders(deployment, body)
    for name in secrets.send:
        body[name] = secret_placeholder(deployment, name)
    body["annotation"] = annotation_write(deployment, deployment.annotation, own_text=True)

    changes = [Change(path="name", after=spec.name), Change(path="enabled", after=spec.enabled)]
    if owner is not None:
        changes.append(Change(path="owner", after=owner))
    changes += [
        Change(path=f"deployment.{name}", after=normalized(name, value))
        for name, value in attributes.items()
        if value is not None
    ]
    changes += [Change(path=f"deployment.{name}", after=WILL_BE_SENT) for name in secrets.send]
    if deployment.annotation is not None:
        changes.append(Change(path="deployment.annotation", after=deployment.annotation))
    return Action(
        action="create",
        source=spec.name,
        id=None,
        changes=sorted_changes(hide_referenced(deployment, changes)),
        writes=[{"name": spec.name, "enabled": spec.enabled, "deployment": body}],
        record_encrypted=secrets.record_encrypted,
        protected=spec.mode == "protect",
        marker=secrets.marker(owner),
    )


class _Comparison(NamedTuple):
    """A spec against its live source: the patch (None when in sync), notices, adoption."""

    action: Action | None
    notices: list[Notice]
    # No marker, or a declared secret imgix-reconciler never sent: not adopted (yet).
    unadopted: bool


def _compare(
    spec: SourceSpec,
    live: LiveSource,
    options: PlanOptions,
    memo: dict[tuple[str, str], str] | None = None,
    *,
    owner: str | None,
    takes_over_from: str | None = None,
    adopt: bool = False,
    differs: bool = False,
) -> _Comparison:
    """The patch (None when in sync) and the notices for a spec matched to a live source.

    A patch records `owner` in the marker; `takes_over_from` (another owner's source,
    planned with --take-over) makes a patch even when nothing else differs. `adopt`
    re-sends the secrets of a source not adopted yet and writes its marker. `memo` keeps
    the secret fingerprints computed so far; `differs`: the managed attributes are known
    to differ plainly.
    """
    deployment = spec.deployment
    ignored = frozenset(spec.ignore_changes)
    attributes = managed_values(deployment)
    changes: list[Change] = []
    renames = "name" not in ignored and spec.name != live.name
    if renames:
        before = live.name if live.name is not None else NOT_RETURNED
        changes.append(Change(path="name", before=before, after=spec.name))
    # Most matched sources are in sync: the detailed diff is built only for those that differ.
    changed: list[str] = []
    if differs or not plainly_in_sync(deployment, live):
        changes += attribute_changes(attributes, deployment, live, ignored, changed)

    annotation = live.annotation
    text, annotation_change = annotation_text(deployment, annotation.text, ignored)
    if annotation_change is not None:
        changes.append(annotation_change)

    outside = (
        encrypted_changed(type(deployment), annotation.marker, live.deployment)
        if annotation.marker is not None and annotation.marker.encrypted
        else []
    )
    secrets = decide_secrets(
        deployment,
        key=options.fingerprint_key,
        live_type=live.type,
        changed=changed,
        recorded=annotation.marker,
        resend=options.resend_secrets,
        ignored=ignored,
        changed_outside=outside,
        memo=memo,
    )
    unadopted = annotation.marker is None or UNRECORDED in secrets.cannot_compare.values()
    if adopt and unadopted:
        secrets = decide_secrets(
            deployment,
            key=options.fingerprint_key,
            live_type=live.type,
            changed=changed,
            recorded=annotation.marker,
            resend=True,
            ignored=ignored,
            changed_outside=outside,
            memo=memo,
        )
        if annotation_change is None:
            raw = text_or_none(live.deployment.get("annotation"))
            annotation_change = Change(
                path="deployment.annotation", before=raw, after=MARKER_WRITTEN
            )
            changes.append(annotation_change)
    if secrets.send:
        changes += [
            Change(path=f"deployment.{name}", before=WRITE_ONLY, after=WILL_BE_SENT)
            for name in secrets.send
        ]
    cleared = [] if "type" in changed else cleared_secrets(deployment, live, ignored)
    if cleared:
        changes += [
            Change(path=f"deployment.{name}", before=WRITE_ONLY, after=None) for name in cleared
        ]

    # None: the listing did not say, and the file ignores it (left as it is).
    enabled = live.enabled if "enabled" in ignored else spec.enabled
    writes_deployment = bool(changed or secrets.send or cleared or annotation_change)
    if live.enabled is not None and enabled != live.enabled:
        changes.append(Change(path="enabled", before=live.enabled, after=enabled))
    elif (
        live.enabled is None
        and enabled is not None
        and ("enabled" in spec.model_fields_set or renames or writes_deployment)
    ):
        # Unknown: written when the file states it, or with another write (a disabled
        # source refuses one unless it also says `enabled: true`).
        changes.append(Change(path="enabled", before=NOT_RETURNED, after=enabled))

    notices = secret_notices(spec, live, secrets)
    if outside:
        notices += encrypted_notices(spec, live, outside)
    live_owner = annotation.marker.owner if annotation.marker is not None else None
    # The owner is recorded by any write that can carry the marker; taking a source over
    # is a write of its own.
    if takes_over_from is not None or (
        live_owner != owner
        and (writes_deployment or spec.name != live.name or (enabled and not live.enabled))
        and changes
    ):
        changes.append(Change(path="owner", before=live_owner, after=owner))
        writes_deployment = True
    if not changes:
        return _Comparison(None, notices, unadopted)

    first: dict[str, JsonValue] = {}
    if renames:
        first["name"] = spec.name
    if writes_deployment:
        first["deployment"] = deployment_write(
            deployment,
            attributes,
            live,
            changed,
            secrets,
            text,
            cleared,
            "deployment.annotation" in ignored,
        )
    # The tool enabled this source for a change and was cut off before disabling it again:
    # the disable finishes that change, so it needs no --allow-disable.
    pending = annotation.marker is not None and annotation.marker.pending_disable
    writes = enabled_writes(first, live_enabled=live.enabled, enabled=enabled)
    marker = secrets.marker(owner)
    # Enabled for the change, then disabled again (or finishing such a change).
    if writes and enabled is False and (pending or writes[0].get("enabled") is True):
        own_text = "deployment.annotation" not in ignored
        writes = kill_safe(writes, annotation_write(deployment, text, own_text=own_text))
        # Two writes: the enabling one records the pending disable, the last clears it.
        marker = replace(marker, pending_disable=len(writes) == 2)
    # Built of values known valid, not validated again (4.3 µs an action; tests compare it
    # with the validated model).
    action = Action.trusted(
        action="patch",
        source=spec.name,
        id=live.id,
        changes=sorted_changes(hide_referenced(deployment, changes)),
        # Unknown counts as enabled: the disable may stop a source that serves images.
        destructive=live.enabled is not False and enabled is False and not pending,
        writes=writes,
        depends_on=[],
        live_fingerprint=live.fingerprint(),
        record_encrypted=secrets.record_encrypted,
        # Finishing the tool's own temporary enabling is no disable of the user's.
        risks=_risks(type(deployment), changes, pending_disable=pending),
        protected=spec.mode == "protect",
        takes_over_from=takes_over_from,
        # The applier also needs it to record an `*_encrypted` value after any write.
        marker=marker if carries_annotation(writes) or secrets.record_encrypted else None,
    )
    return _Comparison(action, notices, unadopted)


def _risks(
    model: type[DeploymentBase], changes: list[Change], *, pending_disable: bool = False
) -> list[Risk]:
    """What makes a patch risky: the blast radius counts it, a protected source refuses some.

    `pending_disable`: the disable finishes the tool's own temporary enabling, no disable of
    the user's."""
    by_path = {change.path: change for change in changes}
    risks: list[Risk] = []
    enabled = by_path.get("enabled")
    if (
        enabled is not None
        and enabled.before is not False  # unknown (not returned) counts
        and enabled.after is False
        and not pending_disable
    ):
        risks.append("disables")
    moves_origin, credentials = _risky_paths(model)
    if not moves_origin.isdisjoint(by_path):
        risks.append("moves_origin")
    if not credentials.isdisjoint(by_path):
        risks.append("changes_credentials")
    for name in HOSTNAME_FIELDS:
        change = by_path.get(f"deployment.{name}")
        before = change.before if change is not None else None
        after = change.after if change is not None and isinstance(change.after, list) else []
        if isinstance(before, list) and set(map(str, before)) - set(map(str, after)):
            risks.append("releases_hostnames")
            break
    return risks


@functools.cache
def _risky_paths(model: type[DeploymentBase]) -> tuple[frozenset[str], frozenset[str]]:
    """The paths whose change moves the origin, and those that change credentials."""
    return (
        frozenset(f"deployment.{name}" for name in ("type", *model.LOCATION_FIELDS)),
        frozenset(
            f"deployment.{name}" for name in model.CREDENTIAL_FIELDS | set(secret_fields(model))
        ),
    )
