"""The planner: a pure function from (desired state, live state, options) to a `Plan`.

Set algebra over matched sources: desired ∩ live are compared attribute by attribute,
desired minus live are created, live minus desired are listed as unmanaged and never touched.
Both sides are normalized first (defaults on the desired side, read-only and write-only
attributes out, hostname lists as sets, `ignore_changes` honoured), and secrets follow
the send rules of `reconciler.secrets`. No I/O happens here: that is what lets tests and
property tests call it with plain values.
"""

from __future__ import annotations

import functools
import heapq
import math
from collections.abc import Callable, Container, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from itertools import chain, compress, repeat
from operator import and_, attrgetter, eq, is_, is_not, itemgetter, not_, or_
from typing import Any, ClassVar, NamedTuple

from pydantic import JsonValue

from reconciler import collector, redact
from reconciler.errors import PlanError
from reconciler.live import LiveSource
from reconciler.marker import Annotation, Marker
from reconciler.plan import (
    HIDDEN,
    MARKER_WRITTEN,
    NOT_RETURNED,
    NOT_SET,
    REMOVED,
    WILL_BE_SENT,
    WRITE_ONLY,
    Action,
    Adoption,
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
    canonical_json,
    compute_digest,
    same_json,
    write_cost,
)
from reconciler.secrets import (
    UNRECORDED,
    UNRESOLVED,
    SecretDecision,
    credentials_to_resend,
    decide_secrets,
    declared_secrets,
    encrypted_attributes,
    encrypted_changed,
    encrypted_fields,
    secret_values,
    unchanged_secrets,
)
from reconciler.specs import (
    DEPLOYMENT_MODELS,
    HOSTNAME_FIELDS,
    HOSTNAMES_ARE_UNIQUE,
    DeploymentBase,
    DesiredState,
    ManagedView,
    SourceSpec,
    managed_view,
    managed_views,
    secret_fields,
    stated_fields,
)

_NOTICE_ORDER = {"possible_rename": 0, "cannot_compare": 1, "encrypted_changed": 2}
# imgix's documented limit of source updates per hour: what adoption is costed at.
DEFAULT_UPDATES_PER_HOUR = 60


@dataclass(frozen=True)
class PlanOptions:
    """What a plan may do beyond diffing: the fingerprint key, re-sending, targeting."""

    fingerprint_key: bytes
    resend_secrets: bool = False
    targets: frozenset[str] = frozenset()
    # The API the plan is for: recorded in the plan and covered by its digest.
    api_url: str | None = None
    # Plan writes to sources whose marker names another owner (they are refused otherwise).
    take_over: bool = False
    # Adopt managed sources that carry no marker: send their secrets and write the marker.
    adopt: bool = False
    # Hourly write budgets the plan's cost (and adoption's) is stated at (None: unlimited).
    creates_per_hour: int | None = 60
    updates_per_hour: int | None = DEFAULT_UPDATES_PER_HOUR

    def __post_init__(self) -> None:
        for name in ("creates_per_hour", "updates_per_hour"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1 (got {value})")


# Not frozen: a frozen dataclass's construction costs a microsecond, one per spec per plan.
@dataclass(slots=True)
class Match:
    """A spec and the live source it describes (None: it must be created)."""

    index: int
    spec: SourceSpec
    live: LiveSource | None


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
# Left to the per-source path too, known to differ: its managed attributes plainly do.
_DIFFERS: Any = object()
# The outcome of each verdict of the bulk pass but "not adopted" (True), its own.
_BY_VERDICT: dict[Any, Any] = {False: _IN_SYNC, None: _UNSETTLED, _DIFFERS: _DIFFERS}
# Pairs the bulk pass compares at once (`_quiet_in_bulk`).
_BLOCK = 256


class Planner:
    """`plan`, with what one plan remembers: the secret fingerprints computed so far and
    the bulk pass's verdicts on annotations and secrets."""

    def __init__(self, desired: DesiredState, options: PlanOptions) -> None:
        self.desired = desired
        self.options = options
        self._fingerprints: dict[tuple[str, str], str] = {}
        # The bulk pass's verdicts on the annotation and secrets (`_quiet_in_bulk`).
        self._verdicts: dict[tuple[Any, ...], bool | None] = {}

    def plan(self, live: Sequence[LiveSource]) -> Plan:
        """The plan for the live sources listed."""
        with collector.paused():
            return _plan(self.desired, live, self.options, self._outcomes_in_bulk, self._outcome_of)

    def _outcomes_in_bulk(self, pairs: list[Match]) -> list[Any]:
        """The outcome of each matched pair the bulk pass settles (`_UNSETTLED`: the
        per-source path decides)."""
        quiet = _quiet_in_bulk(
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
            quiet = _quiet(spec, live, options, adopt, memo, annotation)
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
        unadopted=_source_ref(live.id, spec.name), adoption_updates=_adoption_updates(spec, live)
    )


def _plan(
    desired: DesiredState,
    live: Sequence[LiveSource],
    options: PlanOptions,
    outcomes_in_bulk: Callable[[list[Match]], list[Any]],
    outcome_of: Callable[[Match, Annotation, bool], _Outcome | None],
) -> Plan:
    targets, file_owner, take_over = options.targets, desired.owner, options.take_over
    _check_targets(desired, targets)
    subdomains = _check_unique_hostnames(desired)
    matching = _matching(desired.sources, live, subdomains)
    matches = matching.matches
    # Matching claimed exactly the live sources some spec matches.
    claimed = matching.claimed
    unmanaged_live = [s for s in live if s.id not in claimed] if len(claimed) < len(live) else []
    unmanaged = sorted(
        (
            # An unknown name is the plan's marker, shown as it is.
            UnmanagedSource(id=s.id, name=_masked(s.name) if s.name is not None else NOT_RETURNED)
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
            notices.extend(_unreadable_for_create(spec))
            if unmanaged_live:
                notices.extend(_possible_renames(spec, unmanaged_live))
            continue
        outcome = settled.get(match.index, _UNSETTLED)
        if outcome is _UNSETTLED or outcome is _DIFFERS:
            outcome = outcome_of(match, annotation, outcome is _DIFFERS)
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

    ordered = _order(_with_dependencies(actions, matching, held))
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
        adoption=_adoption(
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


# --------------------------------------------------------------------------- checks


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


def _check_unique_hostnames(desired: DesiredState) -> list[list[str]]:
    """Refuse a hostname two specs claim; the subdomains of each spec, for matching."""
    deployments = list(map(_DEPLOYMENT, desired.sources))
    subdomains = list(map(_SUBDOMAINS, deployments))
    hosts = [*chain.from_iterable(subdomains), *chain.from_iterable(map(_DOMAINS, deployments))]
    if len(set(hosts)) == len(hosts):  # the common case, in C: nothing claimed twice
        return subdomains
    owner: dict[str, int] = {}
    for index, spec in enumerate(desired.sources):
        deployment = spec.deployment
        for hosts in (deployment.imgix_subdomains, deployment.custom_domains):
            for host in hosts:
                # A spec never holds a hostname twice (the model refuses it).
                first = owner.setdefault(host, index)
                if first != index:
                    raise PlanError(
                        f'sources "{desired.sources[first].name}" and "{spec.name}" both '
                        f"claim {host} ({HOSTNAMES_ARE_UNIQUE})",
                        spec_indices=(first, index),
                    )
    return subdomains


_SUBDOMAINS = attrgetter("imgix_subdomains")
_INDEX = attrgetter("index")
_DEPLOYMENT = attrgetter("deployment")
_ID = attrgetter("id")
_FIRST = itemgetter(0)
_DOMAINS = attrgetter("custom_domains")


# --------------------------------------------------------------------------- matching


def match_sources(specs: Sequence[SourceSpec], live: Sequence[LiveSource]) -> list[Match]:
    """Pair each spec with its live source: by `id`, else by subdomains, never by name."""
    return _matching(specs, live).matches


# NamedTuples and a slotted class: about 0.05 ms each to define at start-up, against
# 0.5 to 0.8 for a dataclass.
class _Matching(NamedTuple):
    """The matches, and what matching learnt that ordering needs again."""

    matches: list[Match]
    live: Sequence[LiveSource]
    # The first listed live source holding each hostname, by the field that lists it.
    by_subdomain: Mapping[str, LiveSource]
    by_domain: Mapping[str, LiveSource]
    # Live id to the index of the spec it matched.
    claimed: Mapping[str, int]

    def holder(self, host: str) -> LiveSource | None:
        """The first listed live source holding `host`."""
        subdomain = self.by_subdomain.get(host)
        domain = self.by_domain.get(host)
        if subdomain is None or domain is None:
            return subdomain or domain
        # Listed as a subdomain by one and as a domain by another: the first listed holds it.
        held = {id(subdomain), id(domain)}
        return next(source for source in self.live if id(source) in held)


def _first_holders(
    live: Sequence[LiveSource], listed: Sequence[dict[str, Any]], name: str
) -> tuple[dict[str, LiveSource], dict[str, list[LiveSource]]]:
    """Each hostname the live sources list in field `name`: its first holder, and every
    holder in listing order of those listed more than once (rare: imgix refuses it).

    `listed` holds each live source's deployment, in the same order."""
    lists: list[Any] = list(map(dict.get, listed, repeat(name)))
    if not any(lists):  # custom domains, on most accounts
        return {}, {}
    if None in lists:
        lists = [hosts or () for hosts in lists]
    lengths = list(map(len, lists))
    hosts = list(chain.from_iterable(lists))
    # One hostname each, the common case: the holders are the live sources themselves.
    holders = (
        live
        if len(hosts) == len(live) and min(lengths) == 1
        else list(chain.from_iterable(map(repeat, live, lengths)))
    )
    # Built in C; reversed, so that the first holder is the one a key keeps.
    first = dict(zip(reversed(hosts), reversed(holders), strict=True))
    shared: dict[str, list[LiveSource]] = {}
    if len(first) < len(hosts):
        for host, holder in zip(hosts, holders, strict=True):
            shared.setdefault(host, []).append(holder)
        shared = {host: group for host, group in shared.items() if len(group) > 1}
    return first, shared


def _matching(
    specs: Sequence[SourceSpec],
    live: Sequence[LiveSource],
    subdomains: list[list[str]] | None = None,
) -> _Matching:
    """`subdomains`: each spec's, when the caller has read them."""
    deployments: list[dict[str, Any]] = list(map(_LIVE_DEPLOYMENT, live))
    by_subdomain, shared = _first_holders(live, deployments, "imgix_subdomains")
    by_domain, _ = _first_holders(live, deployments, "custom_domains")
    found = _plain_matches(specs, by_subdomain, subdomains) if not shared else None
    if found is not None:
        # All in C: the matched live sources, their specs' indices, and the claims.
        present = list(map(is_not, found, repeat(None)))
        matched = list(compress(found, present))
        claimed = dict(zip(map(_ID, matched), compress(range(len(found)), present), strict=True))
        if len(claimed) == len(matched):  # no live source matched twice
            matches = list(map(Match, range(len(specs)), specs, found))
            return _Matching(matches, live, by_subdomain, by_domain, claimed)
    by_id = {source.id: source for source in live}
    # Pins, a subdomain listed twice, or an error to report: the rules spec by spec.

    pinned: dict[str, int] = {}
    for index, spec in enumerate(specs):
        if spec.id is None:
            continue
        if spec.id not in by_id:
            raise PlanError(
                f'source "{spec.name}": no live source has id {spec.id} (remove `id` to '
                "create a new source, or correct it)",
                spec_indices=(index,),
            )
        if spec.id in pinned:
            other = specs[pinned[spec.id]].name
            raise PlanError(
                f'sources "{other}" and "{spec.name}" both have id {spec.id}',
                spec_indices=(pinned[spec.id], index),
            )
        pinned[spec.id] = index

    claimed = dict(pinned)
    found = []
    # Without pins or a subdomain listed twice, a subdomain names one candidate at most.
    simple = not pinned and not shared
    for index, spec in enumerate(specs):
        if spec.id is not None:
            found.append(by_id[spec.id])
            continue
        match: LiveSource | None = None
        for subdomain in spec.deployment.imgix_subdomains:
            source = by_subdomain.get(subdomain)
            if source is None or source is match:
                continue
            if match is None and simple:  # the common case: one source, no candidates built
                match = source
                continue
            candidates = _candidates(spec, by_subdomain, shared, pinned)
            if len(candidates) > 1:
                listed = ", ".join(f"{_named(s)}({s.id})" for s in _by_name(candidates))
                raise PlanError(
                    f'source "{spec.name}": its subdomains belong to {len(candidates)} live '
                    f"sources ({listed}); add `id:` to say which one it describes",
                    spec_indices=(index,),
                )
            match = candidates[0] if candidates else None
            break
        if match is not None:
            if match.id in claimed:
                other = specs[claimed[match.id]].name
                raise PlanError(
                    f'sources "{other}" and "{spec.name}" both match live source '
                    f"{_named(match)}({match.id}) by subdomain; add `id: {match.id}` to "
                    "the one that describes it",
                    spec_indices=(claimed[match.id], index),
                )
            claimed[match.id] = index
        found.append(match)
    matches = list(map(Match, range(len(specs)), specs, found))
    return _Matching(matches, live, by_subdomain, by_domain, claimed)


def _plain_matches(
    specs: Sequence[SourceSpec],
    by_subdomain: Mapping[str, LiveSource],
    subdomains: list[list[str]] | None = None,
) -> list[LiveSource | None] | None:
    """The live source each spec matches, in the common case, mostly in C: no spec pinned,
    and no subdomain of a spec held by two live sources. None: another case (the rules
    spec by spec decide it, or say what is wrong)."""
    if any(map(_ID, specs)):
        return None
    if subdomains is None:
        subdomains = list(map(_SUBDOMAINS, map(_DEPLOYMENT, specs)))
    if not all(subdomains):
        return None
    found: list[LiveSource | None] = list(map(by_subdomain.get, map(_FIRST, subdomains)))
    if max(map(len, subdomains), default=1) == 1:
        return found
    for index, hosts in enumerate(subdomains):
        if len(hosts) == 1:
            continue
        match = None
        for source in map(by_subdomain.get, hosts):
            if source is None or source is match:
                continue
            if match is not None:
                return None  # two candidates
            match = source
        found[index] = match
    return found


def _candidates(
    spec: SourceSpec,
    by_subdomain: Mapping[str, LiveSource],
    shared: Mapping[str, list[LiveSource]],
    pinned: Mapping[str, int],
) -> list[LiveSource]:
    """The unpinned live sources holding a subdomain of `spec`, each once, in order found."""
    candidates: dict[str, LiveSource] = {}
    for subdomain in spec.deployment.imgix_subdomains:
        first = by_subdomain.get(subdomain)
        if first is None:
            continue
        for source in shared.get(subdomain) or (first,):
            if source.id not in pinned:
                candidates.setdefault(source.id, source)
    return list(candidates.values())


def _by_name(sources: Iterable[LiveSource]) -> list[LiveSource]:
    return sorted(sources, key=lambda s: (s.name or "", s.id))


# --------------------------------------------------------------------------- normalizing


def desired_attributes(deployment: DeploymentBase) -> dict[str, Any]:
    """Every managed attribute (API names, defaults applied), lists as declared.

    Attributes without a documented default count only when the file states them;
    `annotation` and secrets follow their own rules.
    """
    return deployment.managed()


def _normalized(name: str, value: Any) -> Any:
    if name in HOSTNAME_FIELDS:
        return sorted(value or [])
    return value


def _secret_placeholder(deployment: DeploymentBase, name: str) -> dict[str, JsonValue]:
    locator: dict[str, JsonValue] = dict(declared_secrets(deployment)[name].locator())
    return {"secret": locator}


def _hide_referenced(deployment: DeploymentBase, changes: list[Change]) -> list[Change]:
    """`changes` with each value read through a reference shown as that reference, and
    the live value it replaces hidden (most likely an earlier value of the reference), as
    is any live value that holds a referenced value (a password pasted into an annotation):
    a saved plan is written unmasked."""
    referenced = deployment.referenced()
    hidden = []
    for change in changes:
        ref = referenced.get(change.path.removeprefix("deployment."))
        if ref is not None and change.path.startswith("deployment.") and change.after is not None:
            shown: dict[str, JsonValue] = dict(ref.as_reference())
            before = change.before if change.before in (None, NOT_RETURNED) else HIDDEN
            change = change.model_copy(update={"after": shown, "before": before})
        elif _holds_secret(change.before):
            change = change.model_copy(update={"before": HIDDEN})
        hidden.append(change)
    return hidden


def _holds_secret(value: JsonValue) -> bool:
    return redact.holds(value if isinstance(value, str) else canonical_json(value))


def _masked(text: str) -> str:
    """A live source's name as a plan holds it: a saved plan is written unmasked, and a
    name may hold a referenced value (pasted in the dashboard, or a server's echo)."""
    return redact.scrub(text) if redact.holds(text) else text


def _with_placeholders(deployment: DeploymentBase, body: dict[str, JsonValue]) -> None:
    """Put in `body`, for each referenced value it sends, a placeholder the applier reads."""
    for name, ref in deployment.referenced().items():
        if name in body and name != "annotation":
            locator: dict[str, JsonValue] = dict(ref.locator())
            body[name] = {"reference": locator}


def _annotation_write(deployment: DeploymentBase, text: str | None, *, own_text: bool) -> JsonValue:
    """The user's text a write puts in front of the marker (`Action.marker`): a placeholder
    when it is the file's referenced text (`own_text`)."""
    ref = deployment.referenced().get("annotation")
    if ref is None or not own_text or text is None:
        return text
    locator: dict[str, JsonValue] = dict(ref.locator())
    return {"reference": locator}


def _carries_annotation(writes: list[dict[str, JsonValue]]) -> bool:
    return any(
        isinstance(deployment := write.get("deployment"), dict) and "annotation" in deployment
        for write in writes
    )


# --------------------------------------------------------------------------- actions


def _create(spec: SourceSpec, options: PlanOptions, owner: str | None) -> Action:
    deployment = spec.deployment
    secrets = decide_secrets(deployment, key=options.fingerprint_key, creating=True)
    attributes = desired_attributes(deployment)
    body: dict[str, JsonValue] = dict(attributes)
    _with_placeholders(deployment, body)
    for name in secrets.send:
        body[name] = _secret_placeholder(deployment, name)
    body["annotation"] = _annotation_write(deployment, deployment.annotation, own_text=True)

    changes = [Change(path="name", after=spec.name), Change(path="enabled", after=spec.enabled)]
    if owner is not None:
        changes.append(Change(path="owner", after=owner))
    changes += [
        Change(path=f"deployment.{name}", after=_normalized(name, value))
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
        changes=_sorted_changes(_hide_referenced(deployment, changes)),
        writes=[{"name": spec.name, "enabled": spec.enabled, "deployment": body}],
        record_encrypted=secrets.record_encrypted,
        protected=spec.mode == "protect",
        marker=secrets.marker(owner),
    )


def _quiet(
    spec: SourceSpec,
    live: LiveSource,
    options: PlanOptions,
    adopt: bool,
    fingerprints: dict[tuple[str, str], str],
    annotation: Annotation | None = None,
) -> bool | None:
    """Whether the source is unadopted, when `_compare` would plan nothing and say nothing
    (None: it might, and must decide). What most matched sources are: no change built.

    `fingerprints` remembers the secret HMACs computed so far; `annotation` is the live
    source's, when the caller has it.
    """
    if options.resend_secrets:
        return None
    ignored = frozenset(spec.ignore_changes) if spec.ignore_changes else _NOTHING
    if spec.name != live.name and "name" not in ignored:
        return None
    if spec.enabled != live.enabled and "enabled" not in ignored:
        return None
    deployment = spec.deployment
    if not _attributes_in_sync(deployment, live, ignored):
        return None
    if annotation is None:
        annotation = live.annotation
    wanted = deployment.annotation
    if (
        wanted is not None
        and annotation.text != (wanted or None)
        and "deployment.annotation" not in ignored
    ):
        return None
    marker = annotation.marker
    model = type(deployment)
    # Web secrets: one whose `*_encrypted` value changed outside is sent again, and one
    # the file no longer declares is cleared (each checked only when there can be one).
    if (
        marker is not None
        and marker.encrypted
        and encrypted_changed(model, marker, live.deployment)
    ):
        return None
    web_secrets = encrypted_attributes(model)
    if (
        web_secrets
        and any(map(live.deployment.get, web_secrets))
        and _cleared_secrets(deployment, live, ignored)
    ):
        return None
    return _secrets_verdict(deployment, marker, ignored, options, fingerprints, adopt=adopt)


def _secrets_verdict(
    deployment: DeploymentBase,
    marker: Marker | None,
    ignored: Container[str],
    options: PlanOptions,
    fingerprints: dict[tuple[str, str], str],
    *,
    adopt: bool,
) -> bool | None:
    """The end of `_quiet`, once all but the secrets agree: whether the source is
    unadopted (None: a secret to send or report, or adopting it is a patch)."""
    secrets = unchanged_secrets(
        deployment,
        key=options.fingerprint_key,
        recorded=marker,
        ignored=ignored,
        fingerprints=fingerprints,
    )
    if secrets is None:
        return None
    unadopted = marker is None or secrets == UNRECORDED
    # Adopting writes the marker (and sends the secrets): a patch.
    return None if unadopted and adopt else unadopted


def _quiet_in_bulk(
    pairs: Sequence[Match],
    options: PlanOptions,
    owner: str | None,
    verdicts: dict[tuple[Any, ...], bool | None],
    fingerprints: dict[tuple[str, str], str],
) -> list[Any]:
    """What `_quiet` says of each matched pair, for all at once and mostly in C.

    Per managed view: the managed attributes, the types of those a value of another type
    could equal, the maps as JSON, the names and `enabled` are compared with `map`; what
    the annotation and the secrets say is decided once per distinct (live annotation,
    spec's annotation, secret values) and remembered in `verdicts`. None for a pair the
    bulk check cannot settle (observed, `ignore_changes`, `--resend-secrets`, a listing
    without a managed attribute, a web secret's `*_encrypted` value, another owner, ...):
    the per-source path decides it; `_DIFFERS` for such a pair whose managed attributes
    plainly differ (no quick check can settle it).
    """
    if options.resend_secrets or not pairs:
        return [None] * len(pairs)
    if len(pairs) > _BLOCK:
        # A block at a time: its objects stay in the CPU's caches from one pass to the next.
        return list(
            chain.from_iterable(
                _quiet_in_bulk(
                    pairs[start : start + _BLOCK], options, owner, verdicts, fingerprints
                )
                for start in range(0, len(pairs), _BLOCK)
            )
        )
    specs: list[SourceSpec] = list(map(_SPEC, pairs))
    lives: list[LiveSource] = list(map(_LIVE, pairs))
    deployments = list(map(_DEPLOYMENT, specs))
    groups = managed_views(deployments)
    if len(groups) == 1:  # the common case: one view, every pair in listing order
        view, _ = groups[0]
        return _quiet_group(view, specs, lives, deployments, options, owner, verdicts, fingerprints)
    quiet: list[Any] = [None] * len(pairs)
    for view, positions in groups:
        args = (options, owner, verdicts, fingerprints)
        _quiet_part(quiet, positions, view, specs, lives, deployments, *args)
    return quiet


def _quiet_group(
    view: ManagedView,
    specs: list[SourceSpec],
    lives: list[LiveSource],
    deployments: list[DeploymentBase],
    options: PlanOptions,
    owner: str | None,
    verdicts: dict[tuple[Any, ...], bool | None],
    fingerprints: dict[tuple[str, str], str],
) -> list[Any]:
    """`_quiet_in_bulk` of pairs whose specs share one managed view (so one type)."""
    if not specs:
        return []
    listed: list[dict[str, Any]] = list(map(_LIVE_DEPLOYMENT, lives))
    try:
        haves = list(map(view.from_api, listed))
    except KeyError:
        # A listing without a managed attribute: that pair goes one by one, the rest in bulk.
        complete = [p for p, have in enumerate(listed) if _holds_all(view, have)]
        quiet: list[Any] = [None] * len(specs)
        args = (options, owner, verdicts, fingerprints)
        _quiet_part(quiet, complete, view, specs, lives, deployments, *args)
        return quiet
    wants = list(map(view.from_fields, map(vars, deployments)))
    same = list(map(eq, haves, wants))
    # Column by column: most columns hold one type on both sides, told by two sets. A
    # strict field fixes the desired side's type, so only the listing's is read.
    for position, fixed in zip(view.typed_positions, view.typed_types, strict=True):
        column = itemgetter(position)
        have_types = set(map(type, map(column, haves)))
        want_types = {fixed} if fixed is not None else set(map(type, map(column, wants)))
        if len(have_types) > 1 or have_types != want_types:
            alike = map(is_, map(type, map(column, haves)), map(type, map(column, wants)))
            same = list(map(and_, same, alike))
    for name, api in view.maps:
        want_maps = list(map(attrgetter(name), deployments))
        if any(want_maps):
            same = [
                alike and (not want or same_json(have[api], want))
                for alike, want, have in zip(same, want_maps, listed, strict=True)
            ]
    # Differing attributes (what most unsettled pairs have) spare the per-source path
    # its quick check.
    attributes_alike = same
    # Whole columns first: names and `enabled` all agree in the common case.
    if list(map(_NAME, specs)) != list(map(_NAME, lives)) or list(map(_ENABLED, specs)) != list(
        map(_ENABLED, lives)
    ):
        same = list(map(and_, same, map(eq, map(_TOP, specs), map(_TOP, lives))))
    model = type(deployments[0])
    # A web secret the listing holds may have changed outside or be cleared: one by one.
    for attribute in encrypted_attributes(model):
        same = list(map(and_, same, map(not_, map(dict.get, listed, repeat(attribute)))))
    # Nothing ignored and never observed: the per-source path handles those.
    if any(map(_IGNORED, specs)) or "observe" in map(_MODE, specs):
        eligible = [
            not ignored and mode != "observe"
            for ignored, mode in zip(map(_IGNORED, specs), map(_MODE, specs), strict=True)
        ]
        same = list(map(and_, same, eligible))
        # What they ignore may be all that differs: the quick check is theirs to try.
        attributes_alike = list(map(or_, attributes_alike, map(not_, eligible)))
    # The annotation as `LiveSource.annotation` reads it: text, else none.
    texts = list(map(dict.get, listed, repeat("annotation")))
    if not _TEXT_TYPES.issuperset(map(type, texts)):
        texts = [text if isinstance(text, str) else None for text in texts]
    keys = list(
        zip(
            repeat(model),
            texts,
            map(_ANNOTATION, deployments),
            *secret_values(model, deployments),
        )
    )
    found = list(map(verdicts.get, keys, repeat(_UNSETTLED)))
    if _UNSETTLED in found:
        for position, (alike, verdict) in enumerate(zip(same, found, strict=True)):
            if alike and verdict is _UNSETTLED:
                key = keys[position]
                verdict = verdicts.get(key, _UNSETTLED)
                if verdict is _UNSETTLED:
                    verdict = verdicts[key] = _annotation_verdict(
                        specs[position], lives[position], options, owner, fingerprints
                    )
                found[position] = verdict
    return [
        verdict if alike else None if attributes else _DIFFERS
        for alike, attributes, verdict in zip(same, attributes_alike, found, strict=True)
    ]


def _quiet_part(
    quiet: list[Any],
    positions: Sequence[int],
    view: ManagedView,
    specs: list[SourceSpec],
    lives: list[LiveSource],
    deployments: list[DeploymentBase],
    options: PlanOptions,
    owner: str | None,
    verdicts: dict[tuple[Any, ...], bool | None],
    fingerprints: dict[tuple[str, str], str],
) -> None:
    """`_quiet_group` of the pairs at `positions`, written into `quiet` at theirs."""
    group = _quiet_group(
        view,
        [specs[p] for p in positions],
        [lives[p] for p in positions],
        [deployments[p] for p in positions],
        options,
        owner,
        verdicts,
        fingerprints,
    )
    for position, verdict in zip(positions, group, strict=True):
        quiet[position] = verdict


def _annotation_verdict(
    spec: SourceSpec,
    live: LiveSource,
    options: PlanOptions,
    owner: str | None,
    fingerprints: dict[tuple[str, str], str],
) -> bool | None:
    """What `_quiet` says of a pair whose attributes, name and `enabled` agree: decided by
    the live annotation, the spec's annotation and secrets alone (the bulk pass's key)."""
    annotation = live.annotation
    marker = annotation.marker
    if marker is not None and (
        marker.encrypted or (marker.owner is not None and marker.owner != owner)
    ):
        return None
    wanted = spec.deployment.annotation
    if wanted is not None and annotation.text != (wanted or None):
        return None
    return _secrets_verdict(
        spec.deployment, marker, _NOTHING, options, fingerprints, adopt=options.adopt
    )


def _holds_all(view: ManagedView, listed: Mapping[str, Any]) -> bool:
    try:
        view.from_api(listed)
    except KeyError:
        return False
    return True


_SPEC = attrgetter("spec")
_LIVE = attrgetter("live")
_LIVE_DEPLOYMENT = attrgetter("deployment")
# What a spec and a listed source both have at the top: compared as one tuple.
_TOP = attrgetter("name", "enabled")
_NAME = attrgetter("name")
_ENABLED = attrgetter("enabled")
_IGNORED = attrgetter("ignore_changes")
_MODE = attrgetter("mode")
_ANNOTATION = attrgetter("annotation")
_TEXT_TYPES = frozenset({str, type(None)})


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
    attributes = _managed_values(deployment)
    changes: list[Change] = []
    renames = "name" not in ignored and spec.name != live.name
    if renames:
        before = live.name if live.name is not None else NOT_RETURNED
        changes.append(Change(path="name", before=before, after=spec.name))
    # Most matched sources are in sync: the detailed diff is built only for those that differ.
    changed: list[str] = []
    if differs or not _plainly_in_sync(deployment, live):
        changes += _attribute_changes(attributes, deployment, live, ignored, changed)

    annotation = live.annotation
    text, annotation_change = _annotation_text(deployment, annotation.text, ignored)
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
            raw = _text_or_none(live.deployment.get("annotation"))
            annotation_change = Change(
                path="deployment.annotation", before=raw, after=MARKER_WRITTEN
            )
            changes.append(annotation_change)
    if secrets.send:
        changes += [
            Change(path=f"deployment.{name}", before=WRITE_ONLY, after=WILL_BE_SENT)
            for name in secrets.send
        ]
    cleared = [] if "type" in changed else _cleared_secrets(deployment, live, ignored)
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

    notices = _notices(spec, live, secrets)
    if outside:
        notices += _encrypted_notices(spec, live, outside)
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
        first["deployment"] = _deployment_write(
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
    writes = _enabled_writes(first, live_enabled=live.enabled, enabled=enabled)
    marker = secrets.marker(owner)
    # Enabled for the change, then disabled again (or finishing such a change).
    if writes and enabled is False and (pending or writes[0].get("enabled") is True):
        own_text = "deployment.annotation" not in ignored
        writes = _kill_safe(writes, _annotation_write(deployment, text, own_text=own_text))
        # Two writes: the enabling one records the pending disable, the last clears it.
        marker = replace(marker, pending_disable=len(writes) == 2)
    # Built of values known valid, not validated again (4.3 µs an action; tests compare it
    # with the validated model).
    action = Action.trusted(
        action="patch",
        source=spec.name,
        id=live.id,
        changes=_sorted_changes(_hide_referenced(deployment, changes)),
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
        marker=marker if _carries_annotation(writes) or secrets.record_encrypted else None,
    )
    return _Comparison(action, notices, unadopted)


def _kill_safe(writes: list[dict[str, JsonValue]], text: JsonValue) -> list[dict[str, JsonValue]]:
    """Writes that record a temporary enabling in the marker, and the disable that ends it.

    Every write carries the annotation (`text`, then the marker): the enabling write (when
    there are two) records the pending disable, so a run killed before the disabling
    write leaves a record the next plan reads; the disabling write clears it.
    """
    *leading, closing = writes
    if leading:
        (first,) = leading
        body = first.get("deployment")
        deployment = dict(body) if isinstance(body, dict) else {}
        leading = [{**first, "deployment": {**deployment, "annotation": text}}]
    return [*leading, {**closing, "deployment": {"annotation": text}}]


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


def _attributes_in_sync(
    deployment: DeploymentBase, live: LiveSource, ignored: frozenset[str]
) -> bool:
    """Whether `_attribute_changes` would find nothing, without building any change."""
    return _plainly_in_sync(deployment, live) or _in_sync_slowly(deployment, live, ignored)


def _in_sync_slowly(deployment: DeploymentBase, live: LiveSource, ignored: frozenset[str]) -> bool:
    """`_attributes_in_sync` attribute by attribute: what the quick check cannot tell."""
    have_all = live.deployment
    view = managed_view(deployment)
    stated: frozenset[str] | None = None
    # What `deployment.managed()` holds, read without copying its containers.
    for (_, name), value in zip(view.fields, view.from_spec(deployment), strict=True):
        have = have_all.get(name, _MISSING)
        if have is _MISSING:
            if ignored and f"deployment.{name}" in ignored:
                continue
            if _unset(value):
                continue
            if stated is None:
                stated = stated_fields(deployment)
            if name in stated:
                return False
            continue
        if _plainly_equal(have, value):
            continue
        if ignored and f"deployment.{name}" in ignored:
            continue
        if not same_json(_normalized(name, have), _normalized(name, value)):
            return False
    return True


def _plainly_in_sync(deployment: DeploymentBase, live: LiveSource) -> bool:
    """The common case of `_attributes_in_sync`, in C: the listing holds every managed
    attribute, equal and same-typed (False: not known)."""
    have_all = live.deployment
    view = managed_view(deployment)
    try:
        haves = view.from_api(have_all)
    except KeyError:
        return False
    wants = view.from_spec(deployment)
    typed = view.typed
    if haves != wants or (
        typed is not None and tuple(map(type, typed(haves))) != tuple(map(type, typed(wants)))
    ):
        return False
    for name, api in view.maps:
        want = getattr(deployment, name)
        if want and not same_json(have_all[api], want):
            return False
    return True


def _plainly_equal(have: Any, want: Any) -> bool:
    """Equal as JSON values by a quick test: same-typed scalars, or equal lists of text
    (in the same order, so equal once hostnames are sorted too). False: not known."""
    kind = type(want)
    if kind is not type(have) or have != want:
        return False
    return kind in _SCALARS or (kind is list and all(type(item) is str for item in want))


def _unset(value: Any) -> bool:
    """Whether `value` is one a listing leaves out (null, `[]`, `{}`): stated or not, an
    omitted key may be it, and writing it again would never show in the next listing."""
    return value is None or (type(value) in _CONTAINERS and not value)


_MISSING: Any = object()
_NOTHING: frozenset[str] = frozenset()
_SCALARS = frozenset({str, int, float, bool, type(None)})
_CONTAINERS = frozenset({list, dict})


def _attribute_changes(
    attributes: Mapping[str, Any],
    deployment: DeploymentBase,
    live: LiveSource,
    ignored: frozenset[str],
    changed: list[str] | None = None,
) -> list[Change]:
    """The non-secret deployment attributes whose desired value differs from the live one
    (`attributes`: the deployment's managed ones), each name also added to `changed`.

    An attribute the listing omits is unknown, not a difference: it is written only when
    the file states it (an unstated default may well be what the API holds), and states a
    value a listing would show (an omitted key may be an unset one).
    """
    have_all = live.deployment
    # Most attributes of a patch are equal, of the same type, and scalars or empty: settled
    # here at once; only the rest (unequal, missing, another type, lists and maps holding
    # something, compared item by item) are looked at below.
    unsettled = [
        (name, value, have)
        for name, value in attributes.items()
        if (have := have_all.get(name, _MISSING)) != value
        or type(have) is not type(value)
        or (value and type(value) in _CONTAINERS)
    ]
    changes: list[Change] = []
    stated: frozenset[str] | None = None
    for name, value, have in unsettled:
        if ignored and f"deployment.{name}" in ignored:
            continue
        if have is _MISSING:
            if _unset(value):
                continue
            if stated is None:
                stated = stated_fields(deployment)
            if name in stated:
                want = _normalized(name, value)
                changes.append(Change(path=f"deployment.{name}", before=NOT_RETURNED, after=want))
                if changed is not None:
                    changed.append(name)
            continue
        if _plainly_equal(have, value):
            continue
        want = _normalized(name, value)
        have = _normalized(name, have)
        if not same_json(have, want):
            changes += _value_changes(name, have, want)
            if changed is not None:
                changed.append(name)
    return changes


def _managed_values(deployment: DeploymentBase) -> dict[str, Any]:
    """`deployment.managed()` without copying its lists and maps: read, not sent as is
    (`_deployment_write` copies what it sends)."""
    values = deployment.__dict__
    return {api: values[name] for name, api in managed_view(deployment).fields}


# Map attributes shown key by key: the API replaces them whole, so writes still send all.
_KEYED_ATTRIBUTES = frozenset({"default_params"})


def _value_changes(name: str, have: Any, want: Any) -> list[Change]:
    """The change of one differing attribute; a map attribute's, one per differing key."""
    path = f"deployment.{name}"
    if name not in _KEYED_ATTRIBUTES or not isinstance(have, dict) or not isinstance(want, dict):
        # JSON values both (listed and validated): not validated again.
        return [Change.trusted(path=path, before=have, after=want)]
    # Imported here: a map attribute that differs is rare, and deepdiff costs every plan
    # 30 ms to import, before its first request.
    from deepdiff import DeepDiff

    keys: set[str] = set()
    # threshold_to_diff_deeper=0: by default DeepDiff reports two maps sharing few keys as
    # one change of the root, which showed every key, equal ones too, as changed.
    for items in DeepDiff(have, want, view="tree", threshold_to_diff_deeper=0).values():
        for item in items:
            steps = item.path(output_format="list")
            keys.update([str(steps[0])] if steps else {*have, *want})
    if not keys:  # differing by something DeepDiff does not report: show the whole map
        return [Change(path=path, before=have, after=want)]
    return [
        Change(
            path=f"{path}.{key}",
            before=have.get(key, NOT_SET),
            after=want.get(key, REMOVED),
        )
        for key in sorted(keys)
    ]


def _annotation_text(
    deployment: DeploymentBase, live_text: str | None, ignored: frozenset[str]
) -> tuple[str | None, Change | None]:
    """The user text the next write puts in front of the marker, and its change if any.

    A declared annotation is compared by its text; an undeclared one is not managed (the
    marker alone is written); an ignored one keeps the live text.
    """
    if "deployment.annotation" in ignored:
        return live_text, None
    if deployment.annotation is None:
        return None, None
    change = None
    # An empty text is no text: the marker alone is written, and read back as no text.
    if live_text != (deployment.annotation or None):
        change = Change(path="deployment.annotation", before=live_text, after=deployment.annotation)
    return deployment.annotation, change


def _text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _deployment_write(
    deployment: DeploymentBase,
    attributes: Mapping[str, Any],
    live: LiveSource,
    changed: list[str],
    secrets: SecretDecision,
    text: str | None,
    cleared: list[str],
    annotation_ignored: bool = False,
) -> dict[str, JsonValue]:
    """The partial deployment a patch sends: changes, credentials, secrets, the annotation.

    `attributes` are the deployment's managed ones, shared with the model: what is sent
    is copied.
    """
    if "type" in changed:
        # A new type needs every one of its attributes, not a merge into the old type's.
        names: Iterable[str] = attributes
    else:
        resend = credentials_to_resend(type(deployment), live.type, changed)
        names = sorted({*changed, *resend})
    body: dict[str, JsonValue] = {name: _copied(attributes[name]) for name in names}
    _with_placeholders(deployment, body)
    for name in secrets.send:
        body[name] = _secret_placeholder(deployment, name)
    for name in cleared:
        body[name] = None
    body["annotation"] = _annotation_write(deployment, text, own_text=not annotation_ignored)
    return body


def _copied(value: Any) -> Any:
    """A list or map copied (one level, as `DeploymentBase.managed` does); else the value."""
    return value.copy() if type(value) is list or type(value) is dict else value


def _cleared_secrets(
    deployment: DeploymentBase, live: LiveSource, ignored: frozenset[str]
) -> list[str]:
    """Optional secrets the file no longer declares but the live source still holds.

    Omitted means the documented default (none); the API shows a held web secret by its
    `*_encrypted` value.
    """
    web_secrets = encrypted_fields(type(deployment))
    if not web_secrets:  # most types have none
        return []
    declared = declared_secrets(deployment)
    return sorted(
        name
        for name, attribute in web_secrets.items()
        if name not in declared
        and live.deployment.get(attribute)
        and f"deployment.{name}" not in ignored
    )


def _enabled_writes(
    first: dict[str, JsonValue], *, live_enabled: bool | None, enabled: bool | None
) -> list[dict[str, JsonValue]]:
    """Order the writes around `enabled`: a disabled source accepts changes only when enabled.

    None is unknown: for `live_enabled`, maybe disabled (so enabled first) and maybe
    enabled (so disabled after); for `enabled`, left as it is (ignored and not listed)."""
    if enabled is None:
        return [first] if first else []
    other = bool(first)
    if live_enabled is not True and (other or enabled):
        first = {"enabled": True, **first}
    writes = [first] if first else []
    if not enabled and (other or live_enabled is not False):
        writes.append({"enabled": False})
    return writes


def _notices(spec: SourceSpec, live: LiveSource, secrets: SecretDecision) -> list[Notice]:
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


def _adoption_updates(spec: SourceSpec, live: LiveSource) -> int:
    """Updates adopting a source costs, as the applier will make them.

    One write carries the secrets and the marker (enabling a disabled source for it, as
    `_enabled_writes` does); a source the file wants disabled is disabled again in a
    second; a web secret's `*_encrypted` value is recorded in one more, after the first
    write (which leaves the source enabled).
    """
    enabled = live.enabled if "enabled" in spec.ignore_changes else spec.enabled
    web_secrets = encrypted_attributes(type(spec.deployment))
    sends_web_secret = bool(web_secrets) and not encrypted_fields(
        type(spec.deployment)
    ).keys().isdisjoint(declared_secrets(spec.deployment))
    return 1 + (enabled is False) + sends_web_secret


def _adoption(refs: list[SourceRef], updates: int, options: PlanOptions) -> Adoption | None:
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


def _possible_renames(spec: SourceSpec, unmanaged: Sequence[LiveSource]) -> list[Notice]:
    """A create whose origin an unmanaged live source already serves: likely that source."""
    attributes = desired_attributes(spec.deployment)
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
            detail=f"has the same {fields} as the unmanaged live source {_named(live)}"
            f"({live.id}): if it is that source renamed or given new hostnames, pin it with "
            f"`id: {live.id}`; as planned, a create makes a second source for the same origin",
        )
        for live in _by_name(unmanaged)
        if _origin(live.type, live.deployment) == origin
    ]


def _named(live: LiveSource) -> str:
    """`"Name" ` to put before a live source's id in a message; nothing if it is unknown."""
    return f'"{_masked(live.name)}" ' if live.name is not None else ""


def _unreadable_for_create(spec: SourceSpec) -> list[Notice]:
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


def _encrypted_notices(spec: SourceSpec, live: LiveSource, changed: list[str]) -> list[Notice]:
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


_LEADING_CHANGES = {"name": 0, "enabled": 1, "deployment.type": 2}


def _sorted_changes(changes: list[Change]) -> list[Change]:
    if len(changes) < 2:
        return changes
    return sorted(changes, key=lambda c: (_LEADING_CHANGES.get(c.path, 3), c.path))


# --------------------------------------------------------------------------- ordering


class _Node:
    __slots__ = ("action", "match", "waits_for")

    ORDER: ClassVar[Mapping[str, int]] = {"create": 0, "patch": 1}

    def __init__(self, match: Match, action: Action) -> None:
        self.match = match
        self.action = action
        # Key of the action that must release a hostname first, with that hostname.
        self.waits_for: dict[str, str] = {}

    def ready_key(self) -> tuple[int, str, str]:
        """Among ready actions: creates, patches, then name and key (unique in a plan)."""
        return (self.ORDER[self.action.action], self.action.source, self.action.key)


def _hostnames_after(match: Match, held: bool = False) -> set[str]:
    """The hostnames a matched source holds once its action is applied (held: never written)."""
    if held and match.live is not None:
        return set(match.live.hostnames)
    ignored = match.spec.ignore_changes
    hosts: set[str] = set()
    for name in HOSTNAME_FIELDS:
        if f"deployment.{name}" in ignored and match.live is not None:
            hosts.update(match.live.deployment.get(name) or [])
        else:
            hosts.update(getattr(match.spec.deployment, name))
    return hosts


def _with_dependencies(
    actions: list[tuple[Match, Action]], matching: _Matching, held: set[int]
) -> list[_Node]:
    """Make each claim of a hostname wait for the patch that releases it."""
    planned: dict[int, Action] | None = None
    nodes: list[_Node] = []
    for match, action in actions:
        node = _Node(match, action)
        nodes.append(node)
        if match.live is not None and _keeps_hostnames(match.spec, match.live):
            continue  # claims none: the common patch
        own = match.live.hostnames if match.live is not None else frozenset()
        for host in sorted(_hostnames_after(match) - own):
            owner = matching.holder(host)
            if owner is None:
                continue
            releaser_index = matching.claimed.get(owner.id)
            if releaser_index is None:
                raise PlanError(
                    f'source "{match.spec.name}" claims {host}, which belongs to live source '
                    f'"{owner.name}" ({owner.id}) that no source of the file manages; '
                    "release it there first",
                    spec_indices=(match.index,),
                )
            releaser = matching.matches[releaser_index]
            if host in _hostnames_after(releaser, releaser.index in held):
                why = " (it is observed or owned elsewhere: never written)"
                raise PlanError(
                    f'source "{match.spec.name}" claims {host}, which "{releaser.spec.name}" keeps'
                    + (why if releaser.index in held else ""),
                    spec_indices=(match.index, releaser.index),
                )
            if planned is None:  # only for claims, which most plans do not have
                planned = {match.index: action for match, action in actions}
            release = planned.get(releaser.index)
            if release is None:
                raise PlanError(
                    f'source "{match.spec.name}" claims {host}, which "{releaser.spec.name}" '
                    f'releases: add --target "{releaser.spec.name}" to plan both',
                    spec_indices=(match.index, releaser.index),
                )
            node.waits_for.setdefault(release.key, host)
    return nodes


def _keeps_hostnames(spec: SourceSpec, live: LiveSource) -> bool:
    """Whether a patch's hostnames are the live ones, in the same order (it claims none)."""
    deployment, have = spec.deployment, live.deployment
    return deployment.imgix_subdomains == have.get("imgix_subdomains") and (
        deployment.custom_domains == (have.get("custom_domains") or [])
    )


def _order(nodes: list[_Node]) -> list[Action]:
    """Topological order, and among ready actions: creates, patches, then name and key."""
    if not any(node.waits_for for node in nodes):
        # The common plan claims no hostname another releases: the order is the sort's
        # (keys are unique, so the heap below would pop them in this order too).
        return [node.action for node in sorted(nodes, key=_Node.ready_key)]
    by_key = {node.action.key: node for node in nodes}
    waiting = {node.action.key: set(node.waits_for) for node in nodes}
    # Who waits for whom, so that each write done wakes only its own waiters (linear).
    waiters: dict[str, list[str]] = {}
    for key, blockers in waiting.items():
        for blocker in blockers:
            waiters.setdefault(blocker, []).append(key)
    ready = [node.ready_key() for node in nodes if not node.waits_for]
    heapq.heapify(ready)
    ordered: list[Action] = []
    while ready:
        *_, key = heapq.heappop(ready)
        node = by_key[key]
        # Most actions wait for none: kept as built rather than copied (a copy each at 100,000).
        action = node.action
        if node.waits_for:
            action = action.model_copy(update={"depends_on": sorted(node.waits_for)})
        ordered.append(action)
        for other in waiters.get(key, ()):
            blockers = waiting[other]
            blockers.discard(key)
            if not blockers:
                heapq.heappush(ready, by_key[other].ready_key())
    if len(ordered) < len(nodes):
        raise _cycle_error(by_key, {k for k, b in waiting.items() if b})
    return ordered


def _cycle_error(by_key: Mapping[str, _Node], stuck: set[str]) -> PlanError:
    """Name one cycle of hostname moves, in order, so the user can break it."""
    key = min(stuck)
    path: list[str] = []
    while key not in path:
        path.append(key)
        key = min(k for k in by_key[key].waits_for if k in stuck)
    cycle = path[path.index(key) :]
    steps = []
    for current in cycle:
        node = by_key[current]
        blocker = min(k for k in node.waits_for if k in stuck)
        steps.append(
            f'"{node.action.source}" claims {node.waits_for[blocker]} from '
            f'"{by_key[blocker].action.source}"'
        )
    return PlanError(
        "hostname moves form a cycle: "
        + "; ".join(steps)
        + ". No order of writes can apply them: move one hostname to a temporary name "
        "first, apply, then finish the move.",
        spec_indices=sorted(by_key[k].match.index for k in cycle),
    )
