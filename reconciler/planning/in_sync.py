"""Whether a matched source is in sync, decided without building a comparison.

Most matched sources are: `quiet_in_bulk` settles whole blocks of them at once, mostly in
C, and `quiet_verdict` one at a time. Either says None when it cannot tell; the planner's
detailed comparison (`reconciler.planner`) then decides.
"""

from __future__ import annotations

from collections.abc import Container, Mapping, Sequence
from itertools import chain, repeat
from operator import and_, attrgetter, eq, is_, itemgetter, not_, or_
from typing import Any

from reconciler.live import LiveSource
from reconciler.marker import Annotation, Marker
from reconciler.plan import (
    same_json,
)
from reconciler.planning.changes import (
    MISSING,
    NOTHING,
    cleared_secrets,
    plainly_equal,
    same_value,
    unset,
)
from reconciler.planning.matching import (
    Match,
)
from reconciler.planning.options import PlanOptions
from reconciler.secrets import (
    UNRECORDED,
    encrypted_attributes,
    encrypted_changed,
    secret_values,
    unchanged_secrets,
)
from reconciler.specs import (
    DeploymentBase,
    ManagedView,
    SourceSpec,
    managed_view,
    managed_views,
    stated_fields,
)

# A bulk verdict: left to the per-source path, known to differ (its managed attributes
# plainly do, so no quick check is tried there).
DIFFERS: Any = object()
# Pairs the bulk pass compares at once (`quiet_in_bulk`).
_BLOCK = 256
# A verdict on an annotation and secrets not decided yet (`verdicts` holds None too).
_UNDECIDED: Any = object()


def quiet_verdict(
    spec: SourceSpec,
    live: LiveSource,
    options: PlanOptions,
    adopt: bool,
    fingerprints: dict[tuple[str, str], str],
    annotation: Annotation | None = None,
) -> bool | None:
    """Whether the source is unadopted, when the planner's comparison would plan nothing and
    say nothing (None: it might, and must decide). What most matched sources are: no change
    built.

    `fingerprints` remembers the secret HMACs computed so far; `annotation` is the live
    source's, when the caller has it.
    """
    if options.resend_secrets:
        return None
    ignored = frozenset(spec.ignore_changes) if spec.ignore_changes else NOTHING
    if spec.name != live.name and "name" not in ignored:
        return None
    if spec.enabled != live.enabled and "enabled" not in ignored:
        return None
    deployment = spec.deployment
    if not attributes_in_sync(deployment, live, ignored):
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
        and cleared_secrets(deployment, live, ignored)
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
    """The end of `quiet`, once all but the secrets agree: whether the source is
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


def quiet_in_bulk(
    pairs: Sequence[Match],
    options: PlanOptions,
    owner: str | None,
    verdicts: dict[tuple[Any, ...], bool | None],
    fingerprints: dict[tuple[str, str], str],
) -> list[Any]:
    """What `quiet` says of each matched pair, for all at once and mostly in C.

    Per managed view: the managed attributes, the types of those a value of another type
    could equal, the maps as JSON, the names and `enabled` are compared with `map`; what
    the annotation and the secrets say is decided once per distinct (live annotation,
    spec's annotation, secret values) and remembered in `verdicts`. None for a pair the
    bulk check cannot settle (observed, `ignore_changes`, `--resend-secrets`, a listing
    without a managed attribute, a web secret's `*_encrypted` value, another owner, ...):
    the per-source path decides it; `DIFFERS` for such a pair whose managed attributes
    plainly differ (no quick check can settle it).
    """
    if options.resend_secrets or not pairs:
        return [None] * len(pairs)
    if len(pairs) > _BLOCK:
        # A block at a time: its objects stay in the CPU's caches from one pass to the next.
        return list(
            chain.from_iterable(
                quiet_in_bulk(pairs[start : start + _BLOCK], options, owner, verdicts, fingerprints)
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
    """`quiet_in_bulk` of pairs whose specs share one managed view (so one type)."""
    if not specs:
        return []
    listed: list[dict[str, Any]] = list(map(_DEPLOYMENT, lives))
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
    found = list(map(verdicts.get, keys, repeat(_UNDECIDED)))
    if _UNDECIDED in found:
        for position, (alike, verdict) in enumerate(zip(same, found, strict=True)):
            if alike and verdict is _UNDECIDED:
                key = keys[position]
                verdict = verdicts.get(key, _UNDECIDED)
                if verdict is _UNDECIDED:
                    verdict = verdicts[key] = _annotation_verdict(
                        specs[position], lives[position], options, owner, fingerprints
                    )
                found[position] = verdict
    return [
        verdict if alike else None if attributes else DIFFERS
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
    """What `quiet` says of a pair whose attributes, name and `enabled` agree: decided by
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
        spec.deployment, marker, NOTHING, options, fingerprints, adopt=options.adopt
    )


def _holds_all(view: ManagedView, listed: Mapping[str, Any]) -> bool:
    try:
        view.from_api(listed)
    except KeyError:
        return False
    return True


_SPEC = attrgetter("spec")
_DEPLOYMENT = attrgetter("deployment")
_LIVE = attrgetter("live")
# What a spec and a listed source both have at the top: compared as one tuple.
_TOP = attrgetter("name", "enabled")
_NAME = attrgetter("name")
_ENABLED = attrgetter("enabled")
_IGNORED = attrgetter("ignore_changes")
_MODE = attrgetter("mode")
_ANNOTATION = attrgetter("annotation")
_TEXT_TYPES = frozenset({str, type(None)})


def attributes_in_sync(
    deployment: DeploymentBase, live: LiveSource, ignored: frozenset[str]
) -> bool:
    """Whether `attribute_changes` would find nothing, without building any change."""
    return plainly_in_sync(deployment, live) or _in_sync_slowly(deployment, live, ignored)


def _in_sync_slowly(deployment: DeploymentBase, live: LiveSource, ignored: frozenset[str]) -> bool:
    """`attributes_in_sync` attribute by attribute: what the quick check cannot tell."""
    have_all = live.deployment
    view = managed_view(deployment)
    stated: frozenset[str] | None = None
    # What `deployment.managed()` holds, read without copying its containers.
    for (_, name), value in zip(view.fields, view.from_spec(deployment), strict=True):
        have = have_all.get(name, MISSING)
        if have is MISSING or have is None:  # unknown, as in `attribute_changes`
            if ignored and f"deployment.{name}" in ignored:
                continue
            if unset(value):
                continue
            if stated is None:
                stated = stated_fields(deployment)
            if name in stated:
                return False
            continue
        if plainly_equal(have, value) or (unset(have) and unset(value)):
            continue
        if ignored and f"deployment.{name}" in ignored:
            continue
        if not same_value(name, have, value):
            return False
    return True


def plainly_in_sync(deployment: DeploymentBase, live: LiveSource) -> bool:
    """The common case of `attributes_in_sync`, in C: the listing holds every managed
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
