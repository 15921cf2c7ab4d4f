"""Live sources as a desired-state file that plans to no changes.

Attributes equal to the documented default are left out (omitted means default), the
API-rewritten `annotation` is not managed, and each secret becomes an `{env: NAME}`
reference with a generated name, since the API never returns the value.
"""

from __future__ import annotations

import io
import re
import unicodedata
from collections.abc import Sequence
from typing import Any

from ruamel.yaml import YAML

from reconciler.live import LiveSource
from reconciler.plan import same_json
from reconciler.specs import (
    DEPLOYMENT_MODELS,
    deployment_defaults,
    deployment_fields,
    fields_by_api_name,
    secret_fields,
)

# Relative to the exported file: `imgix-reconciler schema > schemas/sources.schema.json`
# beside it makes editors complete and check it.
SCHEMA_LINE = "# yaml-language-server: $schema=schemas/sources.schema.json"
# Generated variable names stay well inside what shells, CI systems and GitHub accept.
MAX_VARIABLE_LENGTH = 60


def secret_variable(source: LiveSource, field: str, taken: set[str]) -> str:
    """A readable, unique environment variable name for one secret of one source.

    Valid in a shell and as a GitHub secret name: `[A-Z_][A-Z0-9_]*`, no `GITHUB_`
    prefix, at most `MAX_VARIABLE_LENGTH` characters.
    """
    suffix = "_" + _variable_part(field)
    tag = _variable_part(source.id)[-6:]
    slug = _variable_part(source.name) or _variable_part(f"SOURCE_{tag}")
    if slug[0].isdigit() or slug.startswith("GITHUB_") or slug == "GITHUB":
        slug = f"SOURCE_{slug}"
    candidates = [slug, f"{slug}_{tag}" if tag else slug]
    for candidate in candidates:
        name = _fitted(candidate, suffix)
        if name not in taken:
            break
    count = 2
    while name in taken:
        name = _fitted(candidates[-1], f"_{count}{suffix}")
        count += 1
    taken.add(name)
    return name


def _variable_part(text: str) -> str:
    """`text` as upper-case ASCII words joined by `_`: accents folded, other letters dropped."""
    folded = unicodedata.normalize("NFKD", text.upper()).encode("ascii", "ignore").decode()
    return re.sub(r"[^A-Z0-9]+", "_", folded.upper()).strip("_")


def _fitted(stem: str, suffix: str) -> str:
    """`stem` + `suffix`, the stem cut so the name fits (the suffix says which secret)."""
    room = MAX_VARIABLE_LENGTH - len(suffix)
    return stem[:room].rstrip("_") + suffix


def exported_source(source: LiveSource, taken: set[str]) -> dict[str, Any]:
    """One live source as a spec mapping."""
    spec: dict[str, Any] = {"name": source.name, "id": source.id}
    if not source.enabled:
        spec["enabled"] = False
    model = DEPLOYMENT_MODELS.get(source.type or "")
    if model is None:  # an unknown or missing type: keep what the API said, verbatim
        spec["deployment"] = dict(source.deployment)
        return spec
    defaults = deployment_defaults(model)
    secrets = secret_fields(model)
    deployment: dict[str, Any] = {"type": source.type}
    for _, api in deployment_fields(model):
        if api in ("type", "annotation"):
            continue
        if api in secrets:
            marker = secrets[api]
            required = fields_by_api_name(model)[api].is_required()
            if required or (marker.encrypted_as and source.deployment.get(marker.encrypted_as)):
                deployment[api] = {"env": secret_variable(source, api, taken)}
            continue
        if api not in source.deployment:
            continue
        value = source.deployment[api]
        # Compared as the planner compares: a live 300.0 is not the default 300. An
        # attribute with no documented default is written whenever the API has a value.
        if api in defaults and same_json(value, defaults[api]):
            continue
        if api not in defaults and value is None:
            continue
        deployment[api] = value
    spec["deployment"] = deployment
    return spec


def export_document(live: Sequence[LiveSource]) -> dict[str, Any]:
    """The desired-state document for `live`, sources ordered by name then id."""
    taken: set[str] = set()
    ordered = sorted(live, key=lambda s: (s.name, s.id))
    return {"version": 1, "sources": [exported_source(s, taken) for s in ordered]}


def export_yaml(live: Sequence[LiveSource]) -> str:
    """The desired-state file text for `live`, with the editor schema line on top."""
    yaml = YAML()
    yaml.default_flow_style = False
    yaml.indent(mapping=2, sequence=4, offset=2)
    buffer = io.StringIO()
    yaml.dump(export_document(live), buffer)
    return f"{SCHEMA_LINE}\n{buffer.getvalue()}"
