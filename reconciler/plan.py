"""The plan document: the one structure every view of a plan reads.

Renderers, the digest, saved plans (`--out`) and the applier all consume a `Plan`;
none of them recomputes anything from the desired or live state. `Plan.model_dump()`
is exactly the JSON document of product.md (`schemas/plan.schema.json`).

Secret values never enter a plan: changes show markers, and the request bodies in
`Action.writes` carry `{"secret": {"env": NAME}}` or `{"secret": {"file": PATH}}`
placeholders that the applier resolves at send time. So do the values of other attributes
written as references: changes show the reference, writes carry `{"reference": {...}}`.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from reconciler.secrets import parse_annotation

# Markers shown instead of secret values.
WRITE_ONLY = "(write-only)"
WILL_BE_SENT = "(write-only, will be sent)"
CANNOT_COMPARE = "(write-only, cannot compare)"
# `before` of an attribute the API did not return: unknown, so the plan sets it.
NOT_RETURNED = "(not returned by the API)"
# `before` of an attribute the file reads through a reference: the live value is most
# likely an earlier value of that reference, so it is not shown either.
HIDDEN = "(hidden: a referenced attribute)"
# A key of a map attribute (`deployment.default_params.<param>`) absent on one side.
NOT_SET = "(not set)"
REMOVED = "(removed)"


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Change(_Frozen):
    """One attribute that differs: `path` is `name`, `enabled` or `deployment.<attr>`
    (`deployment.default_params.<param>` for one parameter of `default_params`)."""

    path: str
    before: JsonValue = None
    after: JsonValue = None


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
    depends_on: list[str] = Field(default_factory=list)
    # What the live source looked like when planned; a saved plan is stale if it changed.
    live_fingerprint: str | None = None
    # The writes send a web folder / web proxy secret: once the API returns its new
    # `*_encrypted` value, the applier records it in the marker (an annotation-only patch).
    record_encrypted: bool = False

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
    kind: Literal["deployed_outside", "cannot_compare", "encrypted_changed"]
    detail: str


class Summary(_Frozen):
    create: int
    patch: int
    unchanged: int
    unmanaged: int


class UnmanagedSource(_Frozen):
    """A live source that no spec matches: reported, never touched."""

    id: str
    name: str


class Plan(_Frozen):
    """A whole plan, as printed by `--format json` and saved by `--out`."""

    format_version: Literal[1] = 1
    # The API the plan was made against: a saved plan applies there and nowhere else.
    api_url: str | None = None
    digest: str
    summary: Summary
    actions: list[Action]
    unmanaged: list[UnmanagedSource] = Field(default_factory=list)
    notices: list[Notice] = Field(default_factory=list)

    @property
    def has_changes(self) -> bool:
        """Whether applying would write anything."""
        return bool(self.actions)

    def to_json(self) -> str:
        """The plan document, as saved and printed."""
        return self.model_dump_json(indent=2)


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
    payload: object = [_normalized_action(action) for action in actions]
    if api_url is not None:
        payload = {"api_url": api_url.rstrip("/"), "actions": payload}
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def _normalized_action(action: Action) -> dict[str, object]:
    data = action.model_dump(mode="json", exclude={"live_fingerprint"})
    for write in data["writes"]:
        deployment = write.get("deployment")
        if isinstance(deployment, dict) and isinstance(deployment.get("annotation"), str):
            annotation = parse_annotation(deployment["annotation"])
            deployment["annotation"] = [annotation.text, annotation.marker is not None]
        elif isinstance(deployment, dict) and isinstance(deployment.get("annotation"), dict):
            # Referenced text: a placeholder, the marker in its suffix (see the planner).
            placeholder = dict(deployment["annotation"])
            marker = parse_annotation(str(placeholder.pop("suffix", "")).strip()).marker
            deployment["annotation"] = [placeholder, marker is not None]
    return data
