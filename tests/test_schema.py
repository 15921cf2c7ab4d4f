"""The JSON Schema: generated from the models, shipped in sync, accepting what validate does."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from ruamel.yaml import YAML

from reconciler.schema import SCHEMA_DIALECT, render_sources_schema, sources_schema

REPO = Path(__file__).resolve().parent.parent
SHIPPED = REPO / "schemas" / "sources.schema.json"
EXAMPLE = REPO / "examples" / "sources.yaml"


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = sources_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def example() -> Any:
    return YAML(typ="safe").load(EXAMPLE.read_text())


def test_shipped_schema_is_the_generated_one() -> None:
    assert SHIPPED.read_text() == render_sources_schema(), (
        "schemas/sources.schema.json is out of date: regenerate it with "
        "`imgix-reconciler schema > schemas/sources.schema.json`"
    )


def test_schema_declares_its_dialect_and_identity() -> None:
    schema = sources_schema()
    assert schema["$schema"] == SCHEMA_DIALECT
    assert schema["$id"]
    assert schema["title"]


def test_example_points_editors_at_the_schema() -> None:
    first = EXAMPLE.read_text().splitlines()[0]
    assert first == "# yaml-language-server: $schema=../schemas/sources.schema.json"
    assert (EXAMPLE.parent / "../schemas/sources.schema.json").resolve() == SHIPPED


def test_schema_validates_the_example(validator: jsonschema.Draft202012Validator) -> None:
    assert list(validator.iter_errors(example())) == []


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (lambda d: d["sources"][0]["deployment"].update(s3_secret_key="hunter2"), "literal"),
        (lambda d: d["sources"][0]["deployment"].update(cache_ttl_value=60), "minimum"),
        (lambda d: d["sources"][0]["deployment"].update(s3_bucket_name="x"), "unknown key"),
        (lambda d: d["sources"][0].update(nmae="x"), "unknown source key"),
        (lambda d: d["sources"][0]["deployment"].update(type="ftp"), "type"),
        (lambda d: d["sources"][0]["deployment"].update(imgix_subdomains=["Bad_Sub"]), "label"),
        (lambda d: d.update(version=2), "version"),
        (lambda d: d["sources"][4]["deployment"].update(robots_txt="origin"), "alias"),
        (lambda d: d.pop("sources"), "sources missing"),
        (lambda d: d.update(version=True), "version a boolean"),
        (lambda d: d["sources"][0].update(enabled="yes"), "enabled a string"),
        (lambda d: d["sources"][0]["deployment"].update(cache_ttl_value="86400"), "ttl a string"),
    ],
)
def test_schema_rejects_what_validate_rejects(
    validator: jsonschema.Draft202012Validator, change: Any, why: str
) -> None:
    data = copy.deepcopy(example())
    change(data)
    assert list(validator.iter_errors(data)), why


def test_non_secret_attributes_take_references(
    validator: jsonschema.Draft202012Validator,
) -> None:
    data = example()
    data["sources"][0]["deployment"]["s3_bucket"] = {"env": "BUCKET"}
    data["sources"][0]["deployment"]["annotation"] = {"file": "annotation.txt"}
    assert list(validator.iter_errors(data)) == []
    data["sources"][0]["deployment"]["type"] = {"env": "TYPE"}
    assert list(validator.iter_errors(data))


def test_numbers_and_booleans_take_no_reference(
    validator: jsonschema.Draft202012Validator,
) -> None:
    data = example()
    data["sources"][0]["deployment"]["cache_ttl_value"] = {"file": "ttl.txt"}
    assert list(validator.iter_errors(data))


def test_schema_output_is_stable_json() -> None:
    text = render_sources_schema()
    assert text.endswith("}\n")
    assert json.loads(text) == sources_schema()
    assert text == json.dumps(json.loads(text), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
