"""What differs between a spec and its live source, as the plan shows it (`Change`s).

An attribute a listing omits is unknown, not a difference; hostname lists compare as sets;
a value read through a reference is shown as that reference, never as itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import JsonValue

from reconciler import redact
from reconciler.live import LiveSource
from reconciler.plan import (
    HIDDEN,
    NOT_RETURNED,
    NOT_SET,
    REMOVED,
    Change,
    canonical_json,
    same_json,
)
from reconciler.rendering_params import param_text
from reconciler.secrets import (
    declared_secrets,
    encrypted_fields,
)
from reconciler.specs import (
    HOSTNAME_FIELDS,
    DeploymentBase,
    managed_view,
    stated_fields,
)


def normalized(name: str, value: Any) -> Any:
    """A value as it is compared and shown: hostname lists sorted (they are sets)."""
    if name in HOSTNAME_FIELDS:
        return sorted(value or [])
    return value


def hide_referenced(deployment: DeploymentBase, changes: list[Change]) -> list[Change]:
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


def plainly_equal(have: Any, want: Any) -> bool:
    """Equal as JSON values by a quick test: same-typed scalars, or equal lists of text
    (in the same order, so equal once hostnames are sorted too). False: not known."""
    kind = type(want)
    if kind is not type(have) or have != want:
        return False
    return kind in _SCALARS or (kind is list and all(type(item) is str for item in want))


def unset(value: Any) -> bool:
    """Whether `value` is one a listing leaves out (null, `[]`, `{}`): stated or not, an
    omitted key may be it, and writing it again would never show in the next listing."""
    return value is None or (type(value) in _CONTAINERS and not value)


MISSING: Any = object()
NOTHING: frozenset[str] = frozenset()
_SCALARS = frozenset({str, int, float, bool, type(None)})
_CONTAINERS = frozenset({list, dict})


def attribute_changes(
    attributes: Mapping[str, Any],
    deployment: DeploymentBase,
    live: LiveSource,
    ignored: frozenset[str],
    changed: list[str] | None = None,
) -> list[Change]:
    """The non-secret deployment attributes whose desired value differs from the live one
    (`attributes`: the deployment's managed ones), each name also added to `changed`.

    An attribute the listing omits (or gives as null) is unknown, not a difference: it is
    written only when the file states it (an unstated default may well be what the API
    holds), and states a value a listing would show (an omitted key may be an unset one).
    Empty values (null, `[]`, `{}`) are all alike.
    """
    have_all = live.deployment
    # Most attributes of a patch are equal, of the same type, and scalars or empty: settled
    # here at once; only the rest (unequal, missing, another type, lists and maps holding
    # something, compared item by item) are looked at below.
    unsettled = [
        (name, value, have)
        for name, value in attributes.items()
        if (have := have_all.get(name, MISSING)) != value
        or type(have) is not type(value)
        or (value and type(value) in _CONTAINERS)
    ]
    changes: list[Change] = []
    stated: frozenset[str] | None = None
    for name, value, have in unsettled:
        if ignored and f"deployment.{name}" in ignored:
            continue
        # A null is how some listings leave out a key that has no value: unknown as well
        # (the file's value, when not null, is what differs: settled above otherwise).
        if have is MISSING or have is None:
            if unset(value):
                continue
            if stated is None:
                stated = stated_fields(deployment)
            if name in stated:
                want = normalized(name, value)
                before = NOT_RETURNED if have is MISSING else None
                changes.append(Change(path=f"deployment.{name}", before=before, after=want))
                if changed is not None:
                    changed.append(name)
            continue
        if plainly_equal(have, value) or (unset(have) and unset(value)):
            # Empty is empty: some encoders (PHP's) write an empty map as `[]`.
            continue
        want = normalized(name, value)
        have = normalized(name, have)
        if not same_json(have, want):
            differing = value_changes(name, have, want)
            if differing:
                changes += differing
                if changed is not None:
                    changed.append(name)
    return changes


def same_value(name: str, have: Any, want: Any) -> bool:
    """Whether a listed value and the file's are one (both present, neither unknown)."""
    have, want = normalized(name, have), normalized(name, want)
    if same_json(have, want):
        return True
    return name in _KEYED_ATTRIBUTES and not value_changes(name, have, want)


def _same_param(have: Mapping[str, Any], want: Mapping[str, Any], key: str) -> bool:
    # A parameter's value is its text in an image URL (as `validate` reads it): `q: 75` in
    # the file and a "75" a listing gives are one value, not a change on every plan.
    return key in have and key in want and param_text(have[key]) == param_text(want[key])


def managed_values(deployment: DeploymentBase) -> dict[str, Any]:
    """`deployment.managed()` without copying its lists and maps: read, not sent as is
    (`deployment_write` copies what it sends)."""
    values = deployment.__dict__
    return {api: values[name] for name, api in managed_view(deployment).fields}


# Map attributes shown key by key: the API replaces them whole, so writes still send all.
_KEYED_ATTRIBUTES = frozenset({"default_params"})


def value_changes(name: str, have: Any, want: Any) -> list[Change]:
    """The change of one differing attribute; a map attribute's, one per differing key
    (none when its keys differ only in how a value is spelled: `75`, `"75"`)."""
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
    keys = {key for key in keys if not _same_param(have, want, key)}
    return [
        Change(
            path=f"{path}.{key}",
            before=have.get(key, NOT_SET),
            after=want.get(key, REMOVED),
        )
        for key in sorted(keys)
    ]


def annotation_text(
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


def text_or_none(value: Any) -> str | None:
    """A listed value that is text, else None (an annotation the API may omit or mistype)."""
    return value if isinstance(value, str) else None


def cleared_secrets(
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


_LEADING_CHANGES = {"name": 0, "enabled": 1, "deployment.type": 2}


def sorted_changes(changes: list[Change]) -> list[Change]:
    """Name, `enabled` and the type first, then the rest by path: the order a plan shows."""
    if len(changes) < 2:
        return changes
    return sorted(changes, key=lambda c: (_LEADING_CHANGES.get(c.path, 3), c.path))
