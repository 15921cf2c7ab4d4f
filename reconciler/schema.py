"""The JSON Schema of the desired-state file, generated from the specs models.

`schemas/sources.schema.json` is this function's output (a test keeps them equal), so
editors check files against exactly what `validate` accepts, references included.
"""

from __future__ import annotations

import json
from typing import Any

from reconciler import references
from reconciler.rendering_params import default_params_schema
from reconciler.specs import (
    DEPLOYMENT_MODELS,
    SUBDOMAIN_PATTERN,
    DesiredState,
    reference_fields,
)

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_ID = "urn:imgix-reconciler:schemas:sources:1"

REFERENCE_SCHEMA = references.schema(
    "Reference",
    "A value read from an environment variable or a file (relative to the YAML file, inside "
    "its repository) when the file is loaded; it is never shown, only the reference is. At "
    f"least {references.MIN_LENGTH} characters.",
)


def sources_schema() -> dict[str, Any]:
    """The JSON Schema of a desired-state file (`imgix-reconciler schema` prints it)."""
    schema = DesiredState.model_json_schema(by_alias=True)
    definitions = schema["$defs"]
    definitions["Reference"] = REFERENCE_SCHEMA
    params, params_definitions = default_params_schema()
    definitions["DefaultParams"] = params
    definitions.update(params_definitions)
    for model in DEPLOYMENT_MODELS.values():
        properties = definitions[model.__name__]["properties"]
        properties["default_params"] = {"$ref": "#/$defs/DefaultParams", "default": {}}
        for name in reference_fields(model):
            properties[name] = _or_reference(properties[name])
        # Pydantic does not see the after-validator's pattern; editors should.
        properties["imgix_subdomains"]["items"]["pattern"] = SUBDOMAIN_PATTERN
    schema["$defs"] = definitions
    schema.update(_known_params_only())
    return {
        "$schema": SCHEMA_DIALECT,
        "$id": SCHEMA_ID,
        **schema,
        "title": "imgix-reconciler desired state",
        "description": "imgix Sources kept in git. Secret attributes take a reference "
        "({env: NAME} or {file: path}), never a value; other text deployment attributes "
        "may take one.",
    }


def render_sources_schema() -> str:
    """The schema as written to `schemas/sources.schema.json`."""
    return json.dumps(sources_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _or_reference(property_schema: dict[str, Any]) -> dict[str, Any]:
    """Let an attribute take its own value or a reference; keep its annotations outside."""
    outer: dict[str, Any] = {
        key: property_schema.pop(key)
        for key in ("title", "description", "default")
        if key in property_schema
    }
    choices = property_schema["anyOf"] if set(property_schema) == {"anyOf"} else [property_schema]
    return {**outer, "anyOf": [*choices, {"$ref": "#/$defs/Reference"}]}


def _known_params_only() -> dict[str, Any]:
    """Unless the file says `allow_unknown_params: true`, only the catalogue's names."""
    allowed = {"properties": {"allow_unknown_params": {"const": True}}}
    known = {"propertyNames": {"$ref": "#/$defs/ImgixParamName"}}
    deployment = {"properties": {"deployment": {"properties": {"default_params": known}}}}
    return {
        "if": {**allowed, "required": ["allow_unknown_params"]},
        "else": {"properties": {"sources": {"items": deployment}}},
    }
