"""Secret send rules and the annotation marker that makes them possible.

The API never returns a secret, so the reconciler cannot compare one with the live
value. Instead every deployment it writes carries, in `annotation`, a marker saying the
reconciler made it and a keyed fingerprint (HMAC-SHA256 over field name and value) of
each secret it sent. The next plan fingerprints the secret it would send and compares.

The marker (its text lives in `reconciler.marker`) sits at the end of the annotation,
after any user-written text. `fp.` tokens are secret fingerprints; `enc.<field>=<short
hash>` tokens record the `*_encrypted` value the
API returned for a web folder / web proxy secret right after the reconciler sent it (the
applier writes them in a follow-up annotation-only patch, as the value exists only once
the API has encrypted the secret). A fingerprint value of `unknown` records that the
secret exists but was not sent by the reconciler. `owner.name=<owner>` names the file's
`owner:` that made the write: a file with another owner never writes the source.

The send rules (`decide_secrets`) live here and nowhere else: a secret is sent on create;
on patch only when the type or a location field of a credentialed origin changes, when
its fingerprint differs from the recorded one, or when `--resend-secrets` asks.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from collections.abc import Container, Iterable, Mapping, Sequence
from dataclasses import replace
from itertools import repeat
from operator import attrgetter
from types import MappingProxyType
from typing import Any, NamedTuple

from reconciler.marker import Marker
from reconciler.specs import (
    DEPLOYMENT_MODELS,
    DeploymentBase,
    SecretRef,
    all_secret_fields,
    api_name,
    deployment_type,
    secret_fields,
)

_ENCRYPTED_HEX = 16  # the encrypted value is not secret; a short hash only has to differ
UNKNOWN = "unknown"
_FINGERPRINT_HEX = 32  # 128 bits: plenty to notice a rotation, short enough for an annotation


def fingerprint(key: bytes, field_name: str, value: str) -> str:
    """Keyed fingerprint of one secret: safe to store where anyone can read it."""
    keyed = _keyed(key).copy()
    keyed.update(field_name.encode() + b"\x00" + value.encode())
    return keyed.hexdigest()[:_FINGERPRINT_HEX]


# The HMAC keyed once per key and copied per message: a plan fingerprints each secret of
# each source, and keying is most of an HMAC's cost (1.2 instead of 1.9 µs).
@functools.lru_cache(maxsize=8)
def _keyed(key: bytes) -> hmac.HMAC:
    return hmac.new(key, digestmod=hashlib.sha256)


def stamped(marker: Marker, deployment: Mapping[str, Any], key: bytes) -> Marker:
    """`marker` fingerprinting the secrets `deployment` (a resolved request body) sends.

    A saved plan is applied with the secrets as they are at apply time; the marker must
    describe the values actually sent, not the ones seen when planning.
    """
    sent = {
        name: fingerprint(key, name, value)
        for name, value in deployment.items()
        if name in all_secret_fields() and isinstance(value, str)
    }
    return replace(marker, fingerprints={**marker.fingerprints, **sent}) if sent else marker


# --------------------------------------------------------------------------- *_encrypted


@functools.cache  # asked for per source by the planner
def encrypted_fields(model: type[DeploymentBase]) -> dict[str, str]:
    """Secret API name to the `*_encrypted` attribute the API returns in its place."""
    return {name: s.encrypted_as for name, s in secret_fields(model).items() if s.encrypted_as}


@functools.cache
def encrypted_attributes(model: type[DeploymentBase]) -> tuple[str, ...]:
    """The `*_encrypted` attributes the API returns for the web secrets of a type."""
    return tuple(encrypted_fields(model).values())


def encrypted_digest(value: str) -> str:
    """Short hash of an `*_encrypted` value, for the marker."""
    return hashlib.sha256(value.encode()).hexdigest()[:_ENCRYPTED_HEX]


def encrypted_changed(
    model: type[DeploymentBase], marker: Marker, live: Mapping[str, Any]
) -> list[str]:
    """Secrets whose `*_encrypted` value differs from the one recorded at the last write."""
    changed = []
    for name, attribute in sorted(encrypted_fields(model).items()):
        recorded = marker.encrypted.get(name)
        value = live.get(attribute)
        if recorded is not None and (
            not isinstance(value, str) or encrypted_digest(value) != recorded
        ):
            changed.append(name)
    return changed


def recorded_encrypted(marker: Marker, deployment: Mapping[str, Any]) -> Marker | None:
    """`marker` recording the `*_encrypted` values a write's response (`deployment`) returned.

    None when there is nothing new to record (the marker already matches).
    """
    model = DEPLOYMENT_MODELS.get(str(deployment.get("type")))
    if model is None:
        return None
    encrypted = {
        name: encrypted_digest(value)
        for name, attribute in encrypted_fields(model).items()
        if marker.fingerprints.get(name, UNKNOWN) != UNKNOWN
        and isinstance(value := deployment.get(attribute), str)
    }
    if encrypted == dict(marker.encrypted):
        return None
    return replace(marker, encrypted=encrypted)


# --------------------------------------------------------------------------- send rules


def declared_secrets(deployment: DeploymentBase) -> dict[str, SecretRef]:
    """API name to reference of each secret the spec declares (unset optional ones left out)."""
    declared: dict[str, SecretRef] = {}
    for api, python_name in _secret_attributes(type(deployment)):
        value = getattr(deployment, python_name)
        if isinstance(value, SecretRef):
            declared[api] = value
    return declared


@functools.cache
def _secret_attributes(model: type[DeploymentBase]) -> tuple[tuple[str, str], ...]:
    """(API name, python name) of each secret of a deployment model, in field order."""
    names = secret_fields(model)
    return tuple(
        (api, python_name)
        for python_name in model.model_fields
        if (api := api_name(model, python_name)) in names
    )


# `specs.deployment_type` scans the types; asked for up to three times a patch.
_type_of = functools.cache(deployment_type)


def origin_moved(
    model: type[DeploymentBase], live_type: str | None, changed: Iterable[str]
) -> bool:
    """Whether a patch changes the type, or where a credentialed origin lives."""
    if live_type != _type_of(model):
        return True
    return bool(model.CREDENTIAL_FIELDS) and bool(model.LOCATION_FIELDS.intersection(changed))


def credentials_to_resend(
    model: type[DeploymentBase], live_type: str | None, changed: Iterable[str]
) -> frozenset[str]:
    """Non-secret attributes the API wants again with a moved origin (e.g. `s3_access_key`)."""
    if not origin_moved(model, live_type, changed):
        return frozenset()
    return frozenset(model.CREDENTIAL_FIELDS - set(secret_fields(model)))


def _fingerprint(
    key: bytes, name: str, ref: SecretRef, memo: dict[tuple[str, str], str] | None = None
) -> str | None:
    # Computed only by the rules that need it: an unrecorded or kept secret costs no HMAC.
    if not ref.resolved:
        return None
    value = ref.reveal()
    if memo is None:
        return fingerprint(key, name, value)
    current = memo.get((name, value))
    if current is None:
        current = memo[name, value] = fingerprint(key, name, value)
    return current


# Why a secret cannot be compared with what the API holds.
UNRESOLVED = "unresolved"  # this run has no access to the value (e.g. a fork's pull request)
UNRECORDED = "unrecorded"  # the reconciler never sent it, so no fingerprint was recorded


_NO_RECORDS: Mapping[str, str] = MappingProxyType({})
_NO_NAMES: frozenset[str] = frozenset()


# A NamedTuple: about 0.05 ms to define at start-up, against 1 ms for a frozen dataclass.
class SecretDecision(NamedTuple):
    """Which declared secrets a write sends, and what its marker will record."""

    send: tuple[str, ...]
    cannot_compare: Mapping[str, str]  # API name to UNRESOLVED or UNRECORDED
    fingerprints: Mapping[str, str]
    # `enc.` records of secrets not sent: their `*_encrypted` values stay as they were.
    encrypted: Mapping[str, str] = _NO_RECORDS
    # A sent secret has an `*_encrypted` value to record once the API returns it.
    record_encrypted: bool = False

    def marker(self, owner: str | None = None) -> Marker:
        """The marker a write carrying this decision sets, naming the file's `owner`."""
        return Marker(dict(self.fingerprints), dict(self.encrypted), owner=owner)


def decide_secrets(
    deployment: DeploymentBase,
    *,
    key: bytes,
    live_type: str | None = None,
    changed: Iterable[str] = (),
    recorded: Marker | None = None,
    creating: bool = False,
    resend: bool = False,
    ignored: Iterable[str] = (),
    changed_outside: Iterable[str] = (),
    memo: dict[tuple[str, str], str] | None = None,
) -> SecretDecision:
    """Apply the send rules to every secret `deployment` declares.

    `changed` are the API names of non-secret attributes the patch changes; `recorded` is
    the live marker (None when the source was deployed outside the reconciler); `ignored`
    holds `deployment.<name>` paths from `ignore_changes`; `memo` keeps the fingerprints
    computed so far (a plan's), by attribute and value.
    """
    model = type(deployment)
    moved = not creating and origin_moved(model, live_type, changed)
    type_changed = moved and live_type != _type_of(model)
    # Asked once per secret: a set unless the caller's is one already (the planner's).
    ignored = ignored if isinstance(ignored, frozenset) else set(ignored)
    outside = set(changed_outside) if changed_outside else _NO_NAMES
    previous = recorded.fingerprints if recorded is not None else {}

    send: list[str] = []
    cannot_compare: dict[str, str] = {}
    fingerprints: dict[str, str] = {}
    for name, ref in sorted(declared_secrets(deployment).items()):
        recorded_fp = previous.get(name)
        if creating or type_changed or (moved and name in model.CREDENTIAL_FIELDS):
            verdict = "send"  # what the API requires, ignored or not
        elif f"deployment.{name}" in ignored:
            # Set elsewhere once the source exists: not even `--resend-secrets` or adoption
            # writes the file's value over it.
            verdict = "keep"
        elif resend:
            verdict = "send"
        elif recorded is None or recorded_fp == UNKNOWN:
            verdict = UNRECORDED
        elif recorded_fp is None:
            # Declared since the last write: the reconciler has never sent it.
            verdict = "send"
        elif name in outside:
            # Its `*_encrypted` value changed since our write: the recorded fingerprint no
            # longer describes what imgix holds, so the file's value goes again.
            verdict = "send" if ref.resolved else UNRESOLVED
        elif not ref.resolved:
            verdict = UNRESOLVED
        else:
            verdict = "send" if recorded_fp != _fingerprint(key, name, ref, memo) else "keep"

        if verdict == "send":
            send.append(name)
            # Without the value the fingerprint stays unrecorded, so the next plan that
            # can read the secret sends it once more and records it.
            current = _fingerprint(key, name, ref, memo)
            if current is not None:
                fingerprints[name] = current
            continue
        if verdict != "keep":
            cannot_compare[name] = verdict
        fingerprints[name] = recorded_fp or UNKNOWN
    previous_encrypted = recorded.encrypted if recorded is not None else None
    encrypted = (
        {n: v for n, v in previous_encrypted.items() if n in fingerprints and n not in send}
        if previous_encrypted
        else {}
    )
    # Record `*_encrypted` after sending a web secret, or when a fingerprint we hold has no
    # record yet (the write that sent it found the source disabled). Only web secrets have one.
    web_secrets = encrypted_fields(model)
    record = bool(web_secrets) and (
        any(name in web_secrets for name in send)
        or any(
            name in web_secrets and fp != UNKNOWN and name not in encrypted
            for name, fp in fingerprints.items()
        )
    )
    return SecretDecision(tuple(send), cannot_compare, fingerprints, encrypted, record)


# A secret attribute the deployment does not declare, in `secret_values`.
UNDECLARED: Any = object()


def secret_values(
    model: type[DeploymentBase], deployments: Sequence[DeploymentBase]
) -> list[list[Any]]:
    """Per secret attribute of `model` (`_secret_attributes` order), each deployment's
    value, read in C: the text, None when not resolved, UNDECLARED when not declared.

    What `unchanged_secrets` depends on besides the marker, so that a planner can decide
    it once per distinct marker and values. Values only ever key a plan's own memo.
    """
    return [
        # `reveal()` in bulk: a declared value is a `SecretRef`, whose value is `_value`.
        list(
            map(
                getattr,
                map(attrgetter(python_name), deployments),
                repeat("_value"),
                repeat(UNDECLARED),
            )
        )
        for _, python_name in _secret_attributes(model)
    ]


def unchanged_secrets(
    deployment: DeploymentBase,
    *,
    key: bytes,
    recorded: Marker | None,
    ignored: Container[str],
    fingerprints: dict[tuple[str, str], str],
) -> str | None:
    """What `decide_secrets` says of a patch that changes nothing else, when it sends no
    secret and none is unresolved: "keep", or UNRECORDED when one was never recorded.

    None when the full rules must decide (a secret to send or to report). The caller has
    checked the rest: no type or location change, no re-send, no `*_encrypted` value
    changed outside. `fingerprints` remembers the HMACs computed so far (a plan's), by
    attribute and value.
    """
    verdict = "keep"
    previous = recorded.fingerprints if recorded is not None else None
    for name, python_name in _secret_attributes(type(deployment)):
        ref = getattr(deployment, python_name)
        if type(ref) is not SecretRef or (ignored and f"deployment.{name}" in ignored):
            continue
        recorded_fp = previous.get(name) if previous is not None else UNKNOWN
        if recorded_fp == UNKNOWN:
            verdict = UNRECORDED
            continue
        if recorded_fp is None or not ref.resolved:
            return None
        if _fingerprint(key, name, ref, fingerprints) != recorded_fp:
            return None
    return verdict
