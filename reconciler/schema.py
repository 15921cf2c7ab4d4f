"""The JSON Schema of the desired-state file, generated from the specs models.

`schemas/sources.schema.json` and the package's copy that `imgix-reconciler schema` prints
are this module's output (a test keeps all three equal), so editors check files against
exactly what `validate` accepts, references included. Printing the shipped copy spares
`schema` building the models: it imports no pydantic. Regenerate both copies with
`python -m reconciler.schema`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from reconciler import shipped

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_ID = "urn:imgix-reconciler:schemas:sources:1"

# The generated schema as shipped in the package, and the repository's copy for editors.
SHIPPED_NAME = "sources.schema.json"
REPOSITORY_COPY = Path("schemas") / SHIPPED_NAME


def sources_schema() -> dict[str, Any]:
    """The JSON Schema of a desired-state file, generated from the models."""
    # Imported here: printing the shipped copy needs none of them.
    from reconciler import references
    from reconciler.rendering_params import default_params_schema
    from reconciler.specs import (
        DEPLOYMENT_MODELS,
        SUBDOMAIN_PATTERN,
        DesiredState,
        reference_fields,
    )

    schema = DesiredState.model_json_schema(by_alias=True)
    definitions = schema["$defs"]
    definitions["Reference"] = references.schema(
        "Reference",
        "A value read from an environment variable or a file (relative to the YAML file, "
        "inside its repository) when the file is loaded; it is never shown, only the "
        f"reference is. At least {references.MIN_LENGTH} characters.",
    )
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
    """The generated schema as written to `schemas/sources.schema.json` and shipped."""
    return json.dumps(sources_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def shipped_sources_schema() -> str:
    """The schema shipped in the package (what `imgix-reconciler schema` prints)."""
    try:
        data = shipped.read(SHIPPED_NAME)
    except FileNotFoundError:
        data = None
    if data is None:  # installed without its data: the models still know the schema
        return render_sources_schema()
    return data.decode("utf-8")


def write_sources_schemas(repository: Path) -> list[Path]:
    """Regenerate the package's copy and the repository's `schemas/` copy; return both."""
    text = render_sources_schema()
    written = [Path(__file__).with_name(SHIPPED_NAME), repository / REPOSITORY_COPY]
    for path in written:
        path.write_text(text, encoding="utf-8")
    return written


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


if __name__ == "__main__":
    # From a checkout: `python -m reconciler.schema` after changing a model.
    for path in write_sources_schemas(Path(__file__).resolve().parent.parent):
        print(f"wrote {path}")
