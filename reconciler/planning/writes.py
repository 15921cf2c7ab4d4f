"""What a create or patch sends: the bodies of its writes, in order.

Values read through a reference and secrets are placeholders the applier fills in, so a
saved plan never holds them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import JsonValue

from reconciler.live import LiveSource
from reconciler.secrets import (
    SecretDecision,
    credentials_to_resend,
    declared_secrets,
)
from reconciler.specs import (
    DeploymentBase,
)


def secret_placeholder(deployment: DeploymentBase, name: str) -> dict[str, JsonValue]:
    """What a write holds for a secret it sends: where the applier reads the value."""
    locator: dict[str, JsonValue] = dict(declared_secrets(deployment)[name].locator())
    return {"secret": locator}


def with_placeholders(deployment: DeploymentBase, body: dict[str, JsonValue]) -> None:
    """Put in `body`, for each referenced value it sends, a placeholder the applier reads."""
    for name, ref in deployment.referenced().items():
        if name in body and name != "annotation":
            locator: dict[str, JsonValue] = dict(ref.locator())
            body[name] = {"reference": locator}


def annotation_write(deployment: DeploymentBase, text: str | None, *, own_text: bool) -> JsonValue:
    """The user's text a write puts in front of the marker (`Action.marker`): a placeholder
    when it is the file's referenced text (`own_text`)."""
    ref = deployment.referenced().get("annotation")
    if ref is None or not own_text or text is None:
        return text
    locator: dict[str, JsonValue] = dict(ref.locator())
    return {"reference": locator}


def carries_annotation(writes: list[dict[str, JsonValue]]) -> bool:
    """Whether any of the writes sets the annotation (so it carries the marker)."""
    return any(
        isinstance(deployment := write.get("deployment"), dict) and "annotation" in deployment
        for write in writes
    )


def kill_safe(writes: list[dict[str, JsonValue]], text: JsonValue) -> list[dict[str, JsonValue]]:
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


def deployment_write(
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
    with_placeholders(deployment, body)
    for name in secrets.send:
        body[name] = secret_placeholder(deployment, name)
    for name in cleared:
        body[name] = None
    body["annotation"] = annotation_write(deployment, text, own_text=not annotation_ignored)
    return body


def _copied(value: Any) -> Any:
    """A list or map copied (one level, as `DeploymentBase.managed` does); else the value."""
    return value.copy() if type(value) is list or type(value) is dict else value


def enabled_writes(
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
