"""The planner: a pure function from (desired state, live state, options) to a `Plan`.

Set algebra over matched sources: desired ∩ live are compared attribute by attribute,
desired minus live are created, live minus desired are listed as unmanaged and never touched.
Both sides are normalized first (defaults on the desired side, read-only and write-only
attributes out, hostname lists as sets, `ignore_changes` honoured), and secrets follow
the send rules of `reconciler.secrets`. No I/O happens here: that is what lets tests and
property tests call it with plain values.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from deepdiff import DeepDiff
from pydantic import JsonValue

from reconciler.live import LiveSource
from reconciler.plan import (
    HIDDEN,
    NOT_RETURNED,
    NOT_SET,
    REMOVED,
    WILL_BE_SENT,
    WRITE_ONLY,
    Action,
    Change,
    Notice,
    Plan,
    Summary,
    UnmanagedSource,
    compute_digest,
    same_json,
)
from reconciler.secrets import (
    UNRESOLVED,
    Marker,
    SecretDecision,
    compose_annotation,
    credentials_to_resend,
    decide_secrets,
    declared_secrets,
    encrypted_changed,
    encrypted_fields,
    parse_annotation,
)
from reconciler.specs import (
    HOSTNAME_FIELDS,
    DeploymentBase,
    DesiredState,
    SourceSpec,
    secret_fields,
    stated_fields,
    stated_only_fields,
)

_NOTICE_ORDER = {"deployed_outside": 0, "cannot_compare": 1, "encrypted_changed": 2}


@dataclass(frozen=True)
class PlanOptions:
    """What a plan may do beyond diffing: the fingerprint key, re-sending, targeting."""

    fingerprint_key: bytes
    resend_secrets: bool = False
    targets: frozenset[str] = frozenset()
    # The API the plan is for: recorded in the plan and covered by its digest.
    api_url: str | None = None


class PlanError(Exception):
    """The desired and live states cannot be reconciled as they are.

    `spec_indices` are the positions in `DesiredState.sources` of the sources concerned,
    so the CLI can point at their place in the file.
    """

    def __init__(self, message: str, *, spec_indices: Iterable[int] = ()) -> None:
        super().__init__(message)
        self.spec_indices = tuple(spec_indices)


@dataclass(frozen=True)
class Match:
    """A spec and the live source it describes (None: it must be created)."""

    index: int
    spec: SourceSpec
    live: LiveSource | None


def plan(desired: DesiredState, live: Sequence[LiveSource], options: PlanOptions) -> Plan:
    """Compare the desired state with the live one and say what to write."""
    _check_targets(desired, options.targets)
    _check_unique_hostnames(desired)
    matches = match_sources(desired.sources, live)
    matched_ids = {m.live.id for m in matches if m.live is not None}
    unmanaged = sorted(
        (UnmanagedSource(id=s.id, name=s.name) for s in live if s.id not in matched_ids),
        key=lambda u: (u.name, u.id),
    )
    selected = [m for m in matches if not options.targets or m.spec.name in options.targets]

    actions: list[tuple[Match, Action]] = []
    notices: list[Notice] = []
    unchanged = 0
    for match in selected:
        if match.live is None:
            actions.append((match, _create(match.spec, options)))
            notices.extend(_unreadable_for_create(match.spec))
            continue
        action, source_notices = _compare(match.spec, match.live, options)
        notices.extend(source_notices)
        if action is None:
            unchanged += 1
        else:
            actions.append((match, action))

    ordered = _order(_with_dependencies(actions, matches, live))
    notices.sort(key=lambda n: (n.source, n.id or "", _NOTICE_ORDER[n.kind]))
    summary = Summary(
        create=sum(a.action == "create" for a in ordered),
        patch=sum(a.action == "patch" for a in ordered),
        unchanged=unchanged,
        unmanaged=len(unmanaged),
    )
    return Plan(
        api_url=options.api_url,
        digest=compute_digest(ordered, options.api_url),
        summary=summary,
        actions=ordered,
        unmanaged=unmanaged,
        notices=notices,
    )


# --------------------------------------------------------------------------- checks


def _check_targets(desired: DesiredState, targets: frozenset[str]) -> None:
    names = {spec.name for spec in desired.sources}
    unknown = sorted(targets - names)
    if unknown:
        raise PlanError(
            "--target names no source of the file: " + ", ".join(f'"{n}"' for n in unknown)
        )


def _check_unique_hostnames(desired: DesiredState) -> None:
    owner: dict[str, int] = {}
    for index, spec in enumerate(desired.sources):
        for host in _hostnames(spec.deployment):
            if host in owner:
                first = desired.sources[owner[host]]
                raise PlanError(
                    f'sources "{first.name}" and "{spec.name}" both claim {host}: a subdomain '
                    "or custom domain belongs to one source only",
                    spec_indices=(owner[host], index),
                )
            owner[host] = index


def _hostnames(deployment: DeploymentBase) -> list[str]:
    return [*deployment.imgix_subdomains, *deployment.custom_domains]


# --------------------------------------------------------------------------- matching


def match_sources(specs: Sequence[SourceSpec], live: Sequence[LiveSource]) -> list[Match]:
    """Pair each spec with its live source: by `id`, else by subdomains, never by name."""
    by_id = {source.id: source for source in live}
    by_subdomain: dict[str, list[LiveSource]] = {}
    for source in live:
        for subdomain in source.deployment.get("imgix_subdomains") or []:
            by_subdomain.setdefault(subdomain, []).append(source)

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

    claimed: dict[str, int] = dict(pinned)
    found: list[LiveSource | None] = []
    for index, spec in enumerate(specs):
        if spec.id is not None:
            found.append(by_id[spec.id])
            continue
        candidates = {
            source.id: source
            for subdomain in spec.deployment.imgix_subdomains
            for source in by_subdomain.get(subdomain, [])
            if source.id not in pinned
        }
        if len(candidates) > 1:
            listed = ", ".join(f'"{s.name}" ({s.id})' for s in _by_name(candidates.values()))
            raise PlanError(
                f'source "{spec.name}": its subdomains belong to {len(candidates)} live '
                f"sources ({listed}); add `id:` to say which one it describes",
                spec_indices=(index,),
            )
        match = next(iter(candidates.values()), None)
        if match is not None:
            if match.id in claimed:
                other = specs[claimed[match.id]].name
                raise PlanError(
                    f'sources "{other}" and "{spec.name}" both match live source '
                    f'"{match.name}" ({match.id}) by subdomain; add `id: {match.id}` to '
                    "the one that describes it",
                    spec_indices=(claimed[match.id], index),
                )
            claimed[match.id] = index
        found.append(match)
    return [
        Match(i, spec, source) for i, (spec, source) in enumerate(zip(specs, found, strict=True))
    ]


def _by_name(sources: Iterable[LiveSource]) -> list[LiveSource]:
    return sorted(sources, key=lambda s: (s.name, s.id))


# --------------------------------------------------------------------------- normalizing


def desired_attributes(deployment: DeploymentBase) -> dict[str, Any]:
    """Every managed attribute (API names, defaults applied), lists as declared.

    Attributes without a documented default count only when the file states them;
    `annotation` and secrets follow their own rules.
    """
    model = type(deployment)
    attributes = deployment.model_dump(by_alias=True, mode="json")
    unstated = stated_only_fields(model) - stated_fields(deployment)
    for name in ("annotation", *secret_fields(model), *unstated):
        attributes.pop(name, None)
    return attributes


def _normalized(name: str, value: Any) -> Any:
    if name in HOSTNAME_FIELDS:
        return sorted(value or [])
    return value


def _secret_placeholder(deployment: DeploymentBase, name: str) -> dict[str, JsonValue]:
    locator: dict[str, JsonValue] = dict(declared_secrets(deployment)[name].locator())
    return {"secret": locator}


def _hide_referenced(deployment: DeploymentBase, changes: list[Change]) -> list[Change]:
    """`changes` with each value read through a reference shown as that reference, and
    the live value it replaces hidden (most likely an earlier value of the reference)."""
    referenced = deployment.referenced()
    hidden = []
    for change in changes:
        ref = referenced.get(change.path.removeprefix("deployment."))
        if ref is not None and change.path.startswith("deployment.") and change.after is not None:
            shown: dict[str, JsonValue] = dict(ref.as_reference())
            before = change.before if change.before in (None, NOT_RETURNED) else HIDDEN
            change = change.model_copy(update={"after": shown, "before": before})
        hidden.append(change)
    return hidden


def _with_placeholders(deployment: DeploymentBase, body: dict[str, JsonValue]) -> None:
    """Put in `body`, for each referenced value it sends, a placeholder the applier reads."""
    for name, ref in deployment.referenced().items():
        if name in body and name != "annotation":
            locator: dict[str, JsonValue] = dict(ref.locator())
            body[name] = {"reference": locator}


def _annotation_write(
    deployment: DeploymentBase, text: str | None, marker: Marker, *, own_text: bool
) -> JsonValue:
    """The annotation a write sends: the user's text (a placeholder when it is the file's
    referenced text, `own_text`) in front of the marker."""
    ref = deployment.referenced().get("annotation")
    if ref is None or not own_text or text is None:
        return compose_annotation(text, marker)
    locator: dict[str, JsonValue] = dict(ref.locator())
    return {"reference": locator, "suffix": " " + marker.render()}


# --------------------------------------------------------------------------- actions


def _create(spec: SourceSpec, options: PlanOptions) -> Action:
    deployment = spec.deployment
    secrets = decide_secrets(deployment, key=options.fingerprint_key, creating=True)
    attributes = desired_attributes(deployment)
    body: dict[str, JsonValue] = dict(attributes)
    _with_placeholders(deployment, body)
    for name in secrets.send:
        body[name] = _secret_placeholder(deployment, name)
    body["annotation"] = _annotation_write(
        deployment, deployment.annotation, secrets.marker(), own_text=True
    )

    changes = [Change(path="name", after=spec.name), Change(path="enabled", after=spec.enabled)]
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
    )


def _compare(
    spec: SourceSpec, live: LiveSource, options: PlanOptions
) -> tuple[Action | None, list[Notice]]:
    """The patch (None when in sync) and the notices for a spec matched to a live source."""
    deployment = spec.deployment
    ignored = frozenset(spec.ignore_changes)
    attributes = desired_attributes(deployment)
    changes: list[Change] = []
    if "name" not in ignored and spec.name != live.name:
        changes.append(Change(path="name", before=live.name, after=spec.name))
    attribute_changes = _attribute_changes(attributes, stated_fields(deployment), live, ignored)
    changes += attribute_changes
    changed = _changed_attributes(attributes, attribute_changes)

    annotation = parse_annotation(_text_or_none(live.deployment.get("annotation")))
    text, annotation_change = _annotation_text(deployment, annotation.text, ignored)
    if annotation_change is not None:
        changes.append(annotation_change)

    outside = (
        encrypted_changed(type(deployment), annotation.marker, live.deployment)
        if annotation.marker is not None
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
    )
    changes += [
        Change(path=f"deployment.{name}", before=WRITE_ONLY, after=WILL_BE_SENT)
        for name in secrets.send
    ]
    cleared = [] if "type" in changed else _cleared_secrets(deployment, live, ignored)
    changes += [
        Change(path=f"deployment.{name}", before=WRITE_ONLY, after=None) for name in cleared
    ]

    enabled = live.enabled if "enabled" in ignored else spec.enabled
    if enabled != live.enabled:
        changes.append(Change(path="enabled", before=live.enabled, after=enabled))

    notices = _notices(spec, live, annotation.marker is None, secrets)
    notices += _encrypted_notices(spec, live, outside)
    if not changes:
        return None, notices

    first: dict[str, JsonValue] = {}
    if "name" in {c.path for c in changes}:
        first["name"] = spec.name
    if (
        changed
        or secrets.send
        or cleared
        or any(c.path == "deployment.annotation" for c in changes)
    ):
        first["deployment"] = _deployment_write(
            deployment, live, changed, secrets, text, cleared, "deployment.annotation" in ignored
        )
    action = Action(
        action="patch",
        source=spec.name,
        id=live.id,
        changes=_sorted_changes(_hide_referenced(deployment, changes)),
        destructive=live.enabled and not enabled,
        writes=_enabled_writes(first, live_enabled=live.enabled, enabled=enabled),
        live_fingerprint=live.fingerprint(),
        record_encrypted=secrets.record_encrypted,
    )
    return action, notices


def _attribute_changes(
    attributes: dict[str, Any], stated: frozenset[str], live: LiveSource, ignored: frozenset[str]
) -> list[Change]:
    """The non-secret deployment attributes whose desired value differs from the live one.

    An attribute the listing omits is unknown, not a difference: it is written only when
    the file states it (an unstated default may well be what the API holds).
    """
    changes = []
    for name, value in attributes.items():
        if f"deployment.{name}" in ignored:
            continue
        want = _normalized(name, value)
        if name not in live.deployment:
            if name in stated:
                changes.append(Change(path=f"deployment.{name}", before=NOT_RETURNED, after=want))
            continue
        have = _normalized(name, live.deployment[name])
        if not same_json(have, want):
            changes += _value_changes(name, have, want)
    return changes


# Map attributes shown key by key: the API replaces them whole, so writes still send all.
_KEYED_ATTRIBUTES = frozenset({"default_params"})


def _value_changes(name: str, have: Any, want: Any) -> list[Change]:
    """The change of one differing attribute; a map attribute's, one per differing key."""
    path = f"deployment.{name}"
    if name not in _KEYED_ATTRIBUTES or not isinstance(have, dict) or not isinstance(want, dict):
        return [Change(path=path, before=have, after=want)]
    keys: set[str] = set()
    for items in DeepDiff(have, want, view="tree").values():
        for item in items:
            steps = item.path(output_format="list")
            # DeepDiff reports a map compared with an empty one as one change of the root.
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


def _changed_attributes(attributes: dict[str, Any], changes: list[Change]) -> list[str]:
    """The attributes `changes` are about (`deployment.default_params.q` is `default_params`)."""
    paths = {c.path for c in changes}
    return [
        name
        for name in attributes
        if f"deployment.{name}" in paths
        or (name in _KEYED_ATTRIBUTES and any(p.startswith(f"deployment.{name}.") for p in paths))
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
    if live_text != deployment.annotation:
        change = Change(path="deployment.annotation", before=live_text, after=deployment.annotation)
    return deployment.annotation, change


def _text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _deployment_write(
    deployment: DeploymentBase,
    live: LiveSource,
    changed: list[str],
    secrets: SecretDecision,
    text: str | None,
    cleared: list[str],
    annotation_ignored: bool = False,
) -> dict[str, JsonValue]:
    """The partial deployment a patch sends: changes, credentials, secrets, the marker."""
    attributes = desired_attributes(deployment)
    if "type" in changed:
        # A new type needs every one of its attributes, not a merge into the old type's.
        body: dict[str, JsonValue] = dict(attributes)
    else:
        resend = credentials_to_resend(type(deployment), live.type, changed)
        body = {name: attributes[name] for name in sorted({*changed, *resend})}
    _with_placeholders(deployment, body)
    for name in secrets.send:
        body[name] = _secret_placeholder(deployment, name)
    for name in cleared:
        body[name] = None
    body["annotation"] = _annotation_write(
        deployment, text, secrets.marker(), own_text=not annotation_ignored
    )
    return body


def _cleared_secrets(
    deployment: DeploymentBase, live: LiveSource, ignored: frozenset[str]
) -> list[str]:
    """Optional secrets the file no longer declares but the live source still holds.

    Omitted means the documented default (none); the API shows a held web secret by its
    `*_encrypted` value.
    """
    declared = declared_secrets(deployment)
    return sorted(
        name
        for name, attribute in encrypted_fields(type(deployment)).items()
        if name not in declared
        and live.deployment.get(attribute)
        and f"deployment.{name}" not in ignored
    )


def _enabled_writes(
    first: dict[str, JsonValue], *, live_enabled: bool, enabled: bool
) -> list[dict[str, JsonValue]]:
    """Order the writes around `enabled`: a disabled source accepts changes only when enabled."""
    other = bool(first)
    if not live_enabled and (other or enabled):
        first = {"enabled": True, **first}
    writes = [first] if first else []
    if not enabled and (other or live_enabled):
        writes.append({"enabled": False})
    return writes


def _notices(
    spec: SourceSpec, live: LiveSource, outside: bool, secrets: SecretDecision
) -> list[Notice]:
    notices: list[Notice] = []
    if outside:
        notices.append(
            Notice(
                source=spec.name,
                id=live.id,
                kind="deployed_outside",
                detail="deployed outside imgix-reconciler (its annotation carries no "
                "imgix-reconciler marker, e.g. redeployed from the dashboard)",
            )
        )
    unresolved = sorted(n for n, why in secrets.cannot_compare.items() if why == UNRESOLVED)
    unrecorded = sorted(n for n, why in secrets.cannot_compare.items() if why != UNRESOLVED)
    if unresolved:
        notices.append(
            Notice(
                source=spec.name,
                id=live.id,
                kind="cannot_compare",
                detail=f"cannot compare {', '.join(unresolved)}: the secret is not available "
                "to this plan (references not resolved)",
            )
        )
    if unrecorded:
        notices.append(
            Notice(
                source=spec.name,
                id=live.id,
                kind="cannot_compare",
                detail=f"cannot compare {', '.join(unrecorded)}: imgix-reconciler has no "
                "fingerprint of what the API holds; apply --resend-secrets sends and records it",
            )
        )
    return notices


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


def _sorted_changes(changes: list[Change]) -> list[Change]:
    leading = {"name": 0, "enabled": 1, "deployment.type": 2}
    return sorted(changes, key=lambda c: (leading.get(c.path, 3), c.path))


# --------------------------------------------------------------------------- ordering


@dataclass
class _Node:
    match: Match
    action: Action
    # Key of the action that must release a hostname first, with that hostname.
    waits_for: dict[str, str] = field(default_factory=dict)

    ORDER: ClassVar[Mapping[str, int]] = {"create": 0, "patch": 1}

    def sort_key(self) -> tuple[int, str, str]:
        return (self.ORDER[self.action.action], self.action.source, self.action.key)


def _hostnames_after(match: Match) -> set[str]:
    """The hostnames a matched source holds once its action is applied."""
    ignored = match.spec.ignore_changes
    hosts: set[str] = set()
    for name in HOSTNAME_FIELDS:
        if f"deployment.{name}" in ignored and match.live is not None:
            hosts.update(match.live.deployment.get(name) or [])
        else:
            hosts.update(getattr(match.spec.deployment, name))
    return hosts


def _with_dependencies(
    actions: list[tuple[Match, Action]], matches: list[Match], live: Sequence[LiveSource]
) -> list[_Node]:
    """Make each claim of a hostname wait for the patch that releases it."""
    holder: dict[str, LiveSource] = {}
    for source in live:
        for host in source.hostnames:
            holder.setdefault(host, source)
    match_of_live = {m.live.id: m for m in matches if m.live is not None}
    planned = {match.index: action for match, action in actions}

    nodes: list[_Node] = []
    for match, action in actions:
        node = _Node(match, action)
        own = match.live.hostnames if match.live is not None else frozenset()
        for host in sorted(_hostnames_after(match) - own):
            owner = holder.get(host)
            if owner is None:
                continue
            releaser = match_of_live.get(owner.id)
            if releaser is None:
                raise PlanError(
                    f'source "{match.spec.name}" claims {host}, which belongs to live source '
                    f'"{owner.name}" ({owner.id}) that no source of the file manages; '
                    "release it there first",
                    spec_indices=(match.index,),
                )
            if host in _hostnames_after(releaser):
                raise PlanError(
                    f'source "{match.spec.name}" claims {host}, which "{releaser.spec.name}" keeps',
                    spec_indices=(match.index, releaser.index),
                )
            release = planned.get(releaser.index)
            if release is None:
                raise PlanError(
                    f'source "{match.spec.name}" claims {host}, which "{releaser.spec.name}" '
                    f'releases: add --target "{releaser.spec.name}" to plan both',
                    spec_indices=(match.index, releaser.index),
                )
            node.waits_for.setdefault(release.key, host)
        nodes.append(node)
    return nodes


def _order(nodes: list[_Node]) -> list[Action]:
    """Topological order, and among ready actions: creates, patches, then name and key."""
    by_key = {node.action.key: node for node in nodes}
    waiting = {node.action.key: set(node.waits_for) for node in nodes}
    ready = [(node.sort_key(), node.action.key) for node in nodes if not node.waits_for]
    heapq.heapify(ready)
    ordered: list[Action] = []
    while ready:
        _, key = heapq.heappop(ready)
        node = by_key[key]
        ordered.append(node.action.model_copy(update={"depends_on": sorted(node.waits_for)}))
        for other, blockers in waiting.items():
            if key in blockers:
                blockers.discard(key)
                if not blockers:
                    heapq.heappush(ready, (by_key[other].sort_key(), other))
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
