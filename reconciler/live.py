"""What the API returns for a source: the live side of a diff.

Unknown keys are ignored at every level (the API adds fields over time): the top level
keeps only what the reconciler reads, and `deployment` is kept as returned, because the
planner compares only the attributes the spec models know. `secure_url_token` is a
secret the reconciler never needs, so it is not kept at all. A listed source may lack
parts of what the reference promises (seen in the wild): a missing or null attribute is
unknown, never read as a default the source may not have: `name` and `enabled` are None,
a deployment attribute is absent, and `deployment` itself is empty.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from reconciler.endpoint import DEFAULT_API_URL as DEFAULT_API_URL
from reconciler.marker import Annotation, parse_annotation
from reconciler.plan import canonical_json
from reconciler.specs import HOSTNAME_FIELDS


class LiveSource(BaseModel):
    """One source as the API returned it."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str
    name: str | None = None
    enabled: bool | None = None
    deployment_status: str | None = None
    date_deployed: int | None = None
    deployment: dict[str, Any] = Field(default_factory=dict)

    @field_validator("deployment", mode="before")
    @classmethod
    def _null_is_default(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None:
            return cls.model_fields[info.field_name or ""].get_default(call_default_factory=True)
        return value

    @field_validator("deployment", mode="after")
    @classmethod
    def _hostname_lists(cls, value: dict[str, Any]) -> dict[str, Any]:
        # Hostnames are matched, sorted and compared as text: anything else is a broken
        # answer, refused here rather than crashing the planner.
        for key in HOSTNAME_FIELDS:
            hosts = value.get(key)
            if hosts is not None and not (
                isinstance(hosts, list) and all(type(host) is str for host in hosts)
            ):
                raise ValueError(f"deployment.{key} must be a list of text")
        return value

    @field_validator("deployment", mode="after")
    @classmethod
    def _shared_text(cls, value: dict[str, Any]) -> dict[str, Any]:
        # Most text attributes repeat across an account's sources (the type, behaviours,
        # the annotation): one string each instead of one per source and attribute.
        for key, item in value.items():
            if type(item) is str:
                value[key] = _shared(item)
        return value

    @field_validator("date_deployed", mode="before")
    @classmethod
    def _whole_seconds(cls, value: Any) -> Any:
        # Some responses carry a fractional Unix timestamp; seconds are all a plan shows.
        return int(value) if isinstance(value, float) else value

    @classmethod
    def from_resource(cls, resource: dict[str, Any]) -> LiveSource:
        """Build from a JSON:API resource object (`{"id": ..., "attributes": {...}}`)."""
        attributes = resource.get("attributes") or {}
        return cls.model_validate({**attributes, "id": resource["id"]})

    @property
    def type(self) -> str | None:
        """The deployment type, when the API returned one."""
        kind = self.deployment.get("type")
        return kind if isinstance(kind, str) else None

    @property
    def hostnames(self) -> frozenset[str]:
        """Subdomains and custom domains this source claims."""
        return frozenset(host for key in HOSTNAME_FIELDS for host in self.deployment.get(key) or [])

    @property
    def annotation(self) -> Annotation:
        """The live annotation as the user's text and the reconciler's marker."""
        text = self.deployment.get("annotation")
        return _parsed_annotation(text if isinstance(text, str) else None)

    def fingerprint(self) -> str:
        """A stable hash of what a plan depends on: saved plans compare it before applying."""
        state = {"name": self.name, "enabled": self.enabled, "deployment": self.deployment}
        canonical = canonical_json(state)
        return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


# Keyed by the text, not kept on the (copyable) model: a planner asks twice per source
# (owner, then the marker), and the text is parsed once.
_parsed_annotation = lru_cache(maxsize=1024)(parse_annotation)


# The first of equal strings seen lately, for the others to use: a bounded memo, so text
# that does not repeat (URLs, hostnames) passes through it without being kept.
_shared = lru_cache(maxsize=4096)(lambda text: text)
