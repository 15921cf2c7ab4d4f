"""The order of a plan's actions: a claim of a hostname waits for the patch releasing it."""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from typing import ClassVar

from reconciler.errors import PlanError
from reconciler.live import LiveSource
from reconciler.plan import (
    Action,
)
from reconciler.planning.matching import (
    Match,
    Matching,
)
from reconciler.specs import (
    HOSTNAME_FIELDS,
    SourceSpec,
)


class Node:
    """An action in the ordering, with the actions it waits for."""

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


def with_dependencies(
    actions: list[tuple[Match, Action]], matching: Matching, held: set[int]
) -> list[Node]:
    """Make each claim of a hostname wait for the patch that releases it."""
    planned: dict[int, Action] | None = None
    nodes: list[Node] = []
    for match, action in actions:
        node = Node(match, action)
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


def order(nodes: list[Node]) -> list[Action]:
    """Topological order, and among ready actions: creates, patches, then name and key."""
    if not any(node.waits_for for node in nodes):
        # The common plan claims no hostname another releases: the order is the sort's
        # (keys are unique, so the heap below would pop them in this order too).
        return [node.action for node in sorted(nodes, key=Node.ready_key)]
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


def _cycle_error(by_key: Mapping[str, Node], stuck: set[str]) -> PlanError:
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
