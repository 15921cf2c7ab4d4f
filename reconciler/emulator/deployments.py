"""Deployment rules of the emulated API, read from the spec models (never copied).

A stored deployment is a plain dict in wire form: every attribute of its type by API
name, secrets as the plain strings that were sent. What a response shows is derived
from it by `public_deployment`, which is where write-only values are left out.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from reconciler.emulator.errors import BadRequest
from reconciler.specs import (
    DEPLOYMENT_MODELS,
    DEPLOYMENT_TYPES,
    DeploymentBase,
    Secret,
    SecretRef,
    deployment_defaults,
    deployment_fields,
    secret_fields,
)

DEFAULT_ANNOTATION = "New deployment created for source by imgix-emulator"
DASHBOARD_ANNOTATION = "New deployment created for source by dashboard"

# Types whose origin permissions imgix reports (reference: `allows_upload`).
UPLOAD_TYPES = frozenset({"s3", "gcs", "azure"})
# Attributes shared by every type: they survive a change of `type`.
COMMON_FIELDS = frozenset(api for _, api in deployment_fields(DeploymentBase))
# Attributes responses carry and requests may not: `*_encrypted` and their `*_set` flags.
READ_ONLY_FIELDS = frozenset(
    {"allows_upload"}
    | {
        shown
        for model in DEPLOYMENT_MODELS.values()
        for name, marker in secret_fields(model).items()
        if marker.encrypted_as
        for shown in (marker.encrypted_as, f"{name}_set")
    }
)


def model_for(deployment_type: object) -> type[DeploymentBase]:
    """The spec model of a deployment type, or a 400 naming the accepted values."""
    if not isinstance(deployment_type, str) or deployment_type not in DEPLOYMENT_MODELS:
        raise BadRequest("deployment.type must be one of " + ", ".join(DEPLOYMENT_TYPES) + ".")
    return DEPLOYMENT_MODELS[deployment_type]


def requested_deployment(body: object) -> dict[str, Any]:
    """The `deployment` object of a request, checked to be an object without read-only keys."""
    if not isinstance(body, dict):
        raise BadRequest("deployment must be an object.")
    for name in sorted(READ_ONLY_FIELDS & body.keys()):
        raise BadRequest(f"deployment.{name} is read-only.")
    return dict(body)


def new_deployment(requested: dict[str, Any]) -> dict[str, Any]:
    """A create's deployment: the type's documented defaults under what was sent."""
    model = model_for(requested.get("type"))
    return validated({**deployment_defaults(model), **requested})


def merged_deployment(stored: dict[str, Any], requested: dict[str, Any]) -> dict[str, Any]:
    """A PATCH's deployment merged onto the stored one (lists and maps replace whole).

    A change of type keeps only the attributes every type has: the new type's own
    attributes must all come with the request.
    """
    kind = requested.get("type", stored["type"])
    model = model_for(kind)
    if kind == stored["type"]:
        base = dict(stored)
    else:
        base = {**deployment_defaults(model)}
        base.update({k: v for k, v in stored.items() if k in COMMON_FIELDS})
    base.pop("annotation", None)
    return validated({**base, **requested, "type": kind})


def validated(candidate: dict[str, Any]) -> dict[str, Any]:
    """Validate a whole deployment with its spec model; the normalized wire form."""
    model = model_for(candidate.get("type"))
    try:
        parsed = model.model_validate(candidate, context={"wire": True}, strict=True)
    except ValidationError as error:
        raise BadRequest(describe(error, candidate["type"])) from None
    wire = parsed.model_dump(by_alias=True, mode="json")
    for python_name, api_name in deployment_fields(model):
        value = getattr(parsed, python_name)
        if isinstance(value, SecretRef):
            wire[api_name] = value.reveal()
    if wire.get("annotation") is None:
        wire["annotation"] = DEFAULT_ANNOTATION
    return wire


def describe(error: ValidationError, kind: str) -> str:
    """API-like words for each problem; never the input (it may be a secret)."""
    problems = []
    for item in error.errors(include_input=False, include_url=False):
        path = "deployment" + "".join(
            f"[{part}]" if isinstance(part, int) else f".{part}" for part in item["loc"]
        )
        problems.append(f"{path} {_wording(item['type'], item['msg'], kind)}")
    return "; ".join(problems) + "."


def _wording(error_type: str, message: str, kind: str) -> str:
    if error_type == "missing":
        return "is required"
    if error_type == "extra_forbidden":
        return f"is not an attribute of {kind} sources"
    if error_type == "literal_secret":
        return "must be a string"
    if message.startswith("Input should be "):
        return "must be " + message.removeprefix("Input should be ")
    if message.startswith("Value error, "):
        return message.removeprefix("Value error, ")
    return message


def changed_location(stored: dict[str, Any], requested: dict[str, Any]) -> list[str]:
    """The attributes of a PATCH that move the origin: its type, or a location field."""
    if requested.get("type", stored["type"]) != stored["type"]:
        return ["type"]
    model = model_for(stored["type"])
    return sorted(
        name
        for name in model.LOCATION_FIELDS & requested.keys()
        if requested[name] != stored.get(name)
    )


def require_credentials(stored: dict[str, Any], requested: dict[str, Any]) -> None:
    """A moved origin needs its credentials in the same request, or a 400."""
    moved = changed_location(stored, requested)
    if not moved:
        return
    model = model_for(requested.get("type", stored["type"]))
    missing = sorted(model.CREDENTIAL_FIELDS - requested.keys())
    if missing:
        raise BadRequest(
            "Changing "
            + ", ".join(f"deployment.{name}" for name in moved)
            + " requires "
            + " and ".join(f"deployment.{name}" for name in missing)
            + " in the same request."
        )


def written_secrets(deployment: dict[str, Any], requested: dict[str, Any]) -> list[str]:
    """The secrets a request wrote (each one gets a fresh encrypted value)."""
    model = model_for(deployment["type"])
    return [name for name in secret_fields(model) if requested.get(name) is not None]


def encrypt(rng: random.Random) -> str:
    """An opaque stand-in for an encrypted value: random each time, like a fresh IV."""
    return "enc:" + rng.getrandbits(192).to_bytes(24, "big").hex()


def public_deployment(deployment: dict[str, Any], encrypted: dict[str, str]) -> dict[str, Any]:
    """What a response shows: no secret values, `*_encrypted` where the type has them."""
    secrets = _secrets_of(deployment["type"])
    shown = {k: v for k, v in deployment.items() if k not in secrets}
    for name, marker in secrets.items():
        if marker.encrypted_as:
            shown[marker.encrypted_as] = encrypted.get(name)
            # Extra keys the client does not know, as the real API adds over time.
            shown[f"{name}_set"] = deployment.get(name) is not None
    if deployment["type"] in UPLOAD_TYPES:
        shown["allows_upload"] = False
    return shown


def shown_value(deployment: dict[str, Any], encrypted: dict[str, str], name: str) -> Any:
    """`public_deployment(deployment, encrypted).get(name)`, without building the rest."""
    secrets = _secrets_of(deployment["type"])
    if name == "allows_upload" and deployment["type"] in UPLOAD_TYPES:
        return False
    # Checked last-written first, so a clash resolves the way `public_deployment` does.
    for secret, marker in reversed(list(secrets.items())):
        if name == f"{secret}_set" and marker.encrypted_as:
            return deployment.get(secret) is not None
        if name == marker.encrypted_as:
            return encrypted.get(secret)
    return None if name in secrets else deployment.get(name)


def _secrets_of(deployment_type: object) -> Mapping[str, Secret]:
    return secret_fields(model_for(deployment_type))
