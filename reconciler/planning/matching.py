"""Matching specs to live sources: by `id`, else by subdomains, never by name.

A matched pair is compared; a spec without a match is created; a live source no spec
matches is listed as unmanaged and never touched.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import chain, compress, repeat
from operator import attrgetter, is_not, itemgetter
from typing import Any, NamedTuple

from reconciler import redact
from reconciler.errors import PlanError
from reconciler.live import LiveSource
from reconciler.specs import (
    HOSTNAMES_ARE_UNIQUE,
    DesiredState,
    SourceSpec,
)


# Not frozen: a frozen dataclass's construction costs a microsecond, one per spec per plan.
@dataclass(slots=True)
class Match:
    """A spec and the live source it describes (None: it must be created)."""

    index: int
    spec: SourceSpec
    live: LiveSource | None


def check_unique_hostnames(desired: DesiredState) -> list[list[str]]:
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
_ID = attrgetter("id")
_FIRST = itemgetter(0)
_DOMAINS = attrgetter("custom_domains")
_DEPLOYMENT = attrgetter("deployment")


def match_sources(specs: Sequence[SourceSpec], live: Sequence[LiveSource]) -> list[Match]:
    """Pair each spec with its live source: by `id`, else by subdomains, never by name."""
    return matching_of(specs, live).matches


# NamedTuples and a slotted class: about 0.05 ms each to define at start-up, against
# 0.5 to 0.8 for a dataclass.
class Matching(NamedTuple):
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


def matching_of(
    specs: Sequence[SourceSpec],
    live: Sequence[LiveSource],
    subdomains: list[list[str]] | None = None,
) -> Matching:
    """`subdomains`: each spec's, when the caller has read them."""
    deployments: list[dict[str, Any]] = list(map(_DEPLOYMENT, live))
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
            return Matching(matches, live, by_subdomain, by_domain, claimed)
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
                listed = ", ".join(f"{named(s)}({s.id})" for s in by_name(candidates))
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
                    f"{named(match)}({match.id}) by subdomain; add `id: {match.id}` to "
                    "the one that describes it",
                    spec_indices=(claimed[match.id], index),
                )
            claimed[match.id] = index
        found.append(match)
    matches = list(map(Match, range(len(specs)), specs, found))
    return Matching(matches, live, by_subdomain, by_domain, claimed)


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


def by_name(sources: Iterable[LiveSource]) -> list[LiveSource]:
    """Live sources by name, then id: the order messages list them in."""
    return sorted(sources, key=lambda s: (s.name or "", s.id))


def masked(text: str) -> str:
    """A live source's name as a plan holds it: a saved plan is written unmasked, and a
    name may hold a referenced value (pasted in the dashboard, or a server's echo)."""
    return redact.scrub(text) if redact.holds(text) else text


def named(live: LiveSource) -> str:
    """`"Name" ` to put before a live source's id in a message; nothing if it is unknown."""
    return f'"{masked(live.name)}" ' if live.name is not None else ""
