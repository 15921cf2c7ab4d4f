"""The plan document: the one structure every view of a plan reads.

Renderers, the digest, saved plans (`--out`) and the applier all consume a `Plan`;
none of them recomputes anything from the desired or live state. `Plan.model_dump()`
is exactly the JSON document of product.md (`schemas/plan.schema.json`).

Secret values never enter a plan: changes show markers, and the request bodies in
`Action.writes` carry `{"secret": {"env": NAME}}` or `{"secret": {"file": PATH}}`
placeholders that the applier resolves at send time. So do the values of other attributes
written as references: changes show the reference, writes carry `{"reference": {...}}`.

The annotation marker travels as data (`Action.marker`): a write's `deployment.annotation`
holds only the user's text (null: none), and the applier renders the marker after it
when it sends the write.
"""

# Not `from __future__ import annotations`: pydantic would evaluate the text of every
# field's annotation at each start (about 0.6 ms for these models).
import functools
import hashlib
import hmac
import json
import math
import re
from collections.abc import Callable
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from reconciler.marker import Marker

# Markers shown instead of secret values.
WRITE_ONLY = "(write-only)"
WILL_BE_SENT = "(write-only, will be sent)"
CANNOT_COMPARE = "(write-only, cannot compare)"
# `before` of an attribute the API did not return: unknown, so the plan sets it.
NOT_RETURNED = "(not returned by the API)"
# `after` of the annotation of an adopting write: the marker, with fingerprints that are
# bookkeeping (and would tie the plan to the secrets' values).
MARKER_WRITTEN = "(imgix-reconciler marker)"
# `before` of an attribute the file reads through a reference: the live value is most
# likely an earlier value of that reference, so it is not shown either.
HIDDEN = "(hidden: a referenced attribute)"
# A key of a map attribute (`deployment.default_params.<param>`) absent on one side.
NOT_SET = "(not set)"
REMOVED = "(removed)"


_Model = TypeVar("_Model", bound="_Frozen")


class _Frozen(BaseModel):
    # Lists default to a factory of ours, not `list`: pydantic reads a factory's signature,
    # and a builtin's is parsed from text by the tokenizer (about 2 ms at start-up).
    model_config = ConfigDict(extra="forbid", frozen=True)

    @classmethod
    def trusted(cls: type[_Model], **values: Any) -> _Model:
        """The model of `values` its maker knows valid (JSON values; every field given, in
        the model's order), not validated again: what the planner builds for each patch.

        Validating an action cost 4.3 µs here, this 1.7 (and `model_construct` more than
        validating: it fills defaults in Python). The model is the one validation would
        give, with every field set.
        """
        names, every = _fields(cls)
        if tuple(values) != names:
            raise TypeError(f"{cls.__name__} takes its fields in order, not {list(values)}")
        model = cls.__new__(cls)
        _set(model, "__dict__", values)
        # Shared, as no frozen model adds to it (a copy copies it).
        _set(model, "__pydantic_fields_set__", every)
        _set(model, "__pydantic_extra__", None)
        _set(model, "__pydantic_private__", None)
        return model


@functools.cache
def _fields(model: type[BaseModel]) -> tuple[tuple[str, ...], set[str]]:
    """A model's field names in order, and as the set of every field."""
    return tuple(model.__pydantic_fields__), set(model.__pydantic_fields__)


_set = object.__setattr__


class Change(_Frozen):
    """One attribute that differs: `path` is `name`, `enabled` or `deployment.<attr>`
    (`deployment.default_params.<param>` for one parameter of `default_params`)."""

    path: str
    before: JsonValue = None
    after: JsonValue = None


# Why a change to a live source is risky (the blast radius counts such sources).
Risk = Literal["disables", "moves_origin", "changes_credentials", "releases_hostnames"]
# The risks a protected source refuses without --allow-protected-change.
PROTECTED_RISKS: frozenset[str] = frozenset({"disables", "moves_origin"})


class Action(_Frozen):
    """What happens to one source: a create or a patch, with the requests that do it."""

    action: Literal["create", "patch"]
    source: str
    id: str | None
    changes: list[Change]
    # Disables a live source: `apply` refuses it without --allow-disable.
    destructive: bool = False
    # Request attribute bodies, sent in order (a disabled source that must change is
    # enabled with the change, then disabled again if the file says so).
    writes: list[dict[str, JsonValue]]
    # Keys (`Action.key`) of actions that must succeed first: the release of a
    # subdomain or custom domain comes before its claim.
    depends_on: list[str] = Field(default_factory=lambda: [])
    # What the live source looked like when planned; a saved plan is stale if it changed.
    live_fingerprint: str | None = None
    # The writes send a web folder / web proxy secret: once the API returns its new
    # `*_encrypted` value, the applier records it in the marker (an annotation-only patch).
    record_encrypted: bool = False
    # What makes this patch risky, for the blast radius (empty for creates).
    risks: list[Risk] = Field(default_factory=lambda: [])
    # The source has `mode: protect`: apply refuses its PROTECTED_RISKS.
    protected: bool = False
    # The live marker names this other owner: apply writes it only with --take-over.
    takes_over_from: str | None = None
    # The marker every write with a `deployment.annotation` sets after the user's text.
    # With `pending_disable`, the enabling write of a disabled source records it and the
    # last (disabling) write clears it. None: no write carries the annotation.
    marker: Marker | None = None

    @property
    def refused_as_protected(self) -> list[str]:
        """The risks of a protected source apply refuses without --allow-protected-change."""
        return [risk for risk in self.risks if self.protected and risk in PROTECTED_RISKS]

    @property
    def key(self) -> str:
        """Stable identity inside a plan: the live id, or the new source's first hostname."""
        if self.id is not None:
            return self.id
        deployment = self.writes[0].get("deployment") if self.writes else None
        subdomains = deployment.get("imgix_subdomains") if isinstance(deployment, dict) else None
        first = subdomains[0] if isinstance(subdomains, list) and subdomains else self.source
        return f"new:{first}"


class Notice(_Frozen):
    """Something a reviewer should know that is not a change (drift made outside git...)."""

    source: str
    id: str | None
    kind: Literal["cannot_compare", "encrypted_changed", "possible_rename"]
    detail: str


class SourceRef(_Frozen):
    """A live source named in a plan: its id and name."""

    id: str
    name: str


class Adoption(_Frozen):
    """Managed sources whose annotation carries no marker (or a secret never sent), as one notice.

    The tool keeps no state, so a marker lost to a dashboard edit and one never written look
    the same. Adopting (`apply --adopt`) sends the file's secrets and writes the marker:
    `updates` writes, `hours` hours of a budget of `updates_per_hour`.
    """

    count: int
    sources: list[SourceRef]
    # Whether this plan's actions adopt them (planned with --adopt).
    planned: bool
    updates: int
    updates_per_hour: int
    hours: int
    detail: str


class Summary(_Frozen):
    create: int
    patch: int
    unchanged: int
    unmanaged: int
    # Sources with `mode: observe` that differ from the file (never written).
    observed: int = 0


class ObservedSource(_Frozen):
    """A `mode: observe` source that differs from the file: shown and drift, never written."""

    action: Literal["create", "patch"]
    source: str
    id: str | None
    changes: list[Change]


class OwnedElsewhere(_Frozen):
    """A live source a spec matches whose marker names another owner: never written."""

    source: str
    id: str
    owner: str


class BlastRadius(_Frozen):
    """How many managed live sources the plan changes in risky ways, against the threshold."""

    risky: int
    managed: int
    max_risky_share: float
    min_risky_count: int
    # Whether apply needs --allow-large-change.
    exceeded: bool

    @classmethod
    def measure(
        cls, risky: int, managed: int, *, max_risky_share: float, min_risky_count: int
    ) -> "BlastRadius":
        """The blast radius of `risky` out of `managed` sources under a threshold."""
        exceeded = risky >= min_risky_count and risky > max_risky_share * managed
        return cls(
            risky=risky,
            managed=managed,
            max_risky_share=max_risky_share,
            min_risky_count=min_risky_count,
            exceeded=exceeded,
        )


class WriteCost(_Frozen):
    """What an apply of the plan writes, and the least time it takes at the hourly budgets.

    imgix counts source creates and updates in separate hourly budgets, shared with the
    dashboard and other tools: `seconds` assumes both are unspent when the apply starts.
    `updates` counts every patch request, including a disabled source's enabling and
    disabling writes and the annotation-only patch that records an encrypted secret.
    """

    creates: int
    updates: int
    creates_per_hour: int | None
    updates_per_hour: int | None
    seconds: int


# imgix's documented per-second limit, which every request shares.
REQUESTS_PER_SECOND = 4.0


def write_cost(
    actions: list[Action], *, creates_per_hour: int | None, updates_per_hour: int | None
) -> WriteCost:
    """The writes `actions` make and how long they take at these budgets (None: unlimited)."""
    creates = sum(1 for action in actions if action.action == "create")
    updates = sum(len(action.writes) for action in actions) - creates
    updates += sum(1 for action in actions if action.record_encrypted and _ever_enabled(action))
    seconds = max(
        _budget_seconds(creates, creates_per_hour), _budget_seconds(updates, updates_per_hour)
    )
    seconds += (creates + updates) / REQUESTS_PER_SECOND
    return WriteCost(
        creates=creates,
        updates=updates,
        creates_per_hour=creates_per_hour,
        updates_per_hour=updates_per_hour,
        seconds=math.ceil(seconds),
    )


def _ever_enabled(action: Action) -> bool:
    """Whether a write of the action leaves the source enabled (the applier then records)."""
    # A patch of a disabled source always enables it first, so no `enabled` means enabled.
    states = [write.get("enabled", True) for write in action.writes[:1]]
    states += [write.get("enabled", states[-1]) for write in action.writes[1:]]
    return any(state is True for state in states)


def _budget_seconds(count: int, per_hour: int | None) -> float:
    # A fresh budget takes `per_hour` writes at once; each further batch waits an hour.
    if count == 0 or per_hour is None:
        return 0.0
    return 3600.0 * (math.ceil(count / per_hour) - 1)


class UnmanagedSource(_Frozen):
    """A live source that no spec matches: reported, never touched."""

    id: str
    name: str


# How every plan document starts: `format_version` is dumped first (a desired-state file
# has no such key, so a file starting so is a plan).
PLAN_START = re.compile(rb'\s*\{\s*"format_version"\s*:')


class Plan(_Frozen):
    """A whole plan, as printed by `--format json` and saved by `--out`."""

    # 2: the marker is `Action.marker`, no longer text inside the writes' annotation.
    format_version: Literal[2] = 2
    # The API the plan was made against: a saved plan applies there and nowhere else.
    api_url: str | None = None
    digest: str
    # Set on saved plans only (`plan --out`): authenticates the whole document, see
    # `authenticated`. Absent from `--format json`, which is for reading, not applying.
    mac: str | None = Field(
        default=None,
        pattern=r"^hmac-sha256:[0-9a-f]{64}$",
        description="Saved plans only: HMAC-SHA256 over the rest of the document, keyed "
        "from IMGIX_RECONCILER_FINGERPRINT_KEY (or IMGIX_API_KEY when that is unset).",
    )
    summary: Summary
    actions: list[Action]
    unmanaged: list[UnmanagedSource] = Field(default_factory=lambda: [])
    notices: list[Notice] = Field(default_factory=lambda: [])
    observed: list[ObservedSource] = Field(default_factory=lambda: [])
    owned_elsewhere: list[OwnedElsewhere] = Field(default_factory=lambda: [])
    blast_radius: BlastRadius | None = None
    adoption: Adoption | None = None
    # Absent only from plans saved before it was recorded.
    cost: WriteCost | None = None

    @property
    def has_changes(self) -> bool:
        """Whether applying would write anything."""
        return bool(self.actions)

    def to_json(self) -> str:
        """The plan document, as saved and printed (with `mac` only when it has one)."""
        return self.model_dump_json(indent=2, exclude=None if self.mac else {"mac"})

    def authenticated(self, key: bytes) -> "Plan":
        """This plan with its `mac`: HMAC-SHA256 over every other field, keyed by `key`.

        The MAC covers the validated model, not the file's bytes: what `apply` acts on is
        exactly what was authenticated, however the JSON was spelled.
        """
        return self.model_copy(update={"mac": self._mac(key)})

    def is_authentic(self, key: bytes) -> bool:
        """Whether the plan carries a MAC made with `key` over exactly its content."""
        return self.mac is not None and hmac.compare_digest(self.mac, self._mac(key))

    def _mac(self, key: bytes) -> str:
        document = self.model_dump(mode="json", exclude={"mac"})
        canonical = canonical_json(document)
        return "hmac-sha256:" + hmac.new(key, canonical.encode(), hashlib.sha256).hexdigest()


def plan_json_schema() -> dict[str, JsonValue]:
    """The JSON Schema of the plan document (`schemas/plan.schema.json`)."""
    schema: dict[str, JsonValue] = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        **Plan.model_json_schema(mode="serialization"),
    }
    return schema


def same_json(a: Any, b: Any) -> bool:
    """Equal as JSON values: `true` and `1`, or `1` and `1.0`, stay different."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same_json(a[key], b[key]) for key in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(map(same_json, a, b))
    return bool(a == b)


def compute_digest(actions: list[Action], api_url: str | None = None) -> str:
    """Hash of the normalized actions (never of rendered text): same plan, same digest.

    The API the plan targets is covered when known, so a saved plan cannot be pointed
    elsewhere by editing it. The annotation marker's fingerprints are left out: they are
    bookkeeping a reviewer cannot judge, and a plan made without the secrets (a fork's
    pull request) must have the digest of the same plan made with them at apply time. A
    changed secret still changes the digest, through the change that sends it.
    """
    # Hashed a block of actions at a time: the bytes of one canonical JSON document (keys
    # sorted, so "actions" before "api_url"), without holding it, or every action's dump,
    # at once. One encoding a block, not one an action: 1 µs less an action.
    digest = hashlib.sha256(b'{"actions":[' if api_url is not None else b"[")
    for start in range(0, len(actions), _DIGEST_BLOCK):
        block = [_normalized_action(action) for action in actions[start : start + _DIGEST_BLOCK]]
        digest.update(b"," if start else b"")
        digest.update(canonical_json(block)[1:-1].encode())  # the items, without the brackets
    digest.update(b"]")
    if api_url is not None:
        digest.update(b',"api_url":' + canonical_json(api_url.rstrip("/")).encode() + b"}")
    return "sha256:" + digest.hexdigest()


def canonical_json(value: object) -> str:
    """`json.dumps(value, sort_keys=True, separators=(",", ":"))`: the bytes the plan's
    digest and a live source's fingerprint hash, made by one encoder built once.

    A non-finite number (NaN, ±Infinity: only a broken API answer holds one) is hashed as
    null, which is what a saved plan holds in its place: a plan's MAC and digest are the
    same before it is saved and once it is read back.
    """
    try:
        if _C_CANONICAL is None or isinstance(value, str):
            return _CANONICAL.encode(value)
        return "".join(_C_CANONICAL(value, 0))
    except ValueError:  # allow_nan=False
        return _CANONICAL.encode(_finite(value))


def _finite(value: object) -> object:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


# What is hashed holds no cycles (decoded or plain JSON values), so none is looked for
# (15% of a fingerprint).
_CANONICAL = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), check_circular=False, allow_nan=False
)
# What `JSONEncoder.encode` makes at each call, made once (0.7 µs an encoding): the same
# encoder, the same bytes (tests/test_plan.py and tests/test_live.py compare them).
_C_CANONICAL: Callable[[object, int], list[str]] | None = (
    _make(
        None,
        _CANONICAL.default,
        json.encoder.encode_basestring_ascii,
        None,
        ":",
        ",",
        True,
        False,
        False,
    )
    if (_make := getattr(json.encoder, "c_make_encoder", None)) is not None
    else None
)


# What the digest covers of an action: every field but the two bookkeeping ones.
_DIGEST_EXCLUDES = ("live_fingerprint", "marker")
# Actions encoded at once by the digest.
_DIGEST_BLOCK = 256


def _normalized_action(action: Action) -> dict[str, object]:
    """`action.model_dump(mode="json", exclude=_DIGEST_EXCLUDES)`, with the annotation of
    each write as the user's text and whether a marker follows it: the same payload (and
    digest) as when the marker was text inside the writes.

    Read from the fields, not dumped (a dump costs more than the hashing): every value
    but the changes is JSON already, and a `Change`'s fields are JSON values.
    """
    data: dict[str, object] = dict(vars(action))
    for name in _DIGEST_EXCLUDES:
        del data[name]
    data["changes"] = [vars(change) for change in action.changes]
    marked = action.marker is not None
    data["writes"] = [_normalized_write(write, marked) for write in action.writes]
    return data


def _normalized_write(write: dict[str, JsonValue], marked: bool) -> dict[str, JsonValue]:
    deployment = write.get("deployment")
    if not isinstance(deployment, dict) or "annotation" not in deployment:
        return write
    annotation: JsonValue = [deployment["annotation"], marked]
    return {**write, "deployment": {**deployment, "annotation": annotation}}
