"""The JSON Schema: generated from the models, shipped in sync, accepting what validate does."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from ruamel.yaml import YAML

from reconciler import schema as schema_module
from reconciler.schema import (
    SCHEMA_DIALECT,
    render_sources_schema,
    shipped_sources_schema,
    sources_schema,
)

REPO = Path(__file__).resolve().parent.parent
SHIPPED = REPO / "schemas" / "sources.schema.json"
PACKAGED = REPO / "reconciler" / "sources.schema.json"
EXAMPLE = REPO / "examples" / "sources.yaml"


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = sources_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def example() -> Any:
    return YAML(typ="safe").load(EXAMPLE.read_text())


@pytest.mark.parametrize("copy", [SHIPPED, PACKAGED], ids=["schemas/", "package"])
def test_shipped_schema_is_the_generated_one(copy: Path) -> None:
    assert copy.read_text(encoding="utf-8") == render_sources_schema(), (
        f"{copy.relative_to(REPO)} is out of date: regenerate both copies with "
        "`.venv/bin/python -m reconciler.schema`"
    )


def test_the_wheel_carries_the_packaged_copy() -> None:
    text = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    assert '"rendering_params.LICENSE", "sources.schema.json"]' in text


def test_schema_command_prints_the_packaged_copy() -> None:
    assert shipped_sources_schema() == PACKAGED.read_text(encoding="utf-8")


def test_without_its_packaged_copy_the_schema_is_generated(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def missing(name: str) -> bytes:
        raise FileNotFoundError(name)

    monkeypatch.setattr(schema_module.shipped, "read", missing)
    assert shipped_sources_schema() == render_sources_schema()


def test_regeneration_writes_both_copies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    packaged = tmp_path / "package" / "sources.schema.json"
    packaged.parent.mkdir()
    (tmp_path / "schemas").mkdir()
    monkeypatch.setattr(schema_module, "__file__", str(packaged.with_name("schema.py")))
    written = schema_module.write_sources_schemas(tmp_path)
    assert written == [packaged, tmp_path / "schemas" / "sources.schema.json"]
    assert all(path.read_text(encoding="utf-8") == render_sources_schema() for path in written)


def test_the_regeneration_command_the_stale_copy_names_writes_both_copies(tmp_path: Path) -> None:
    # `python -m reconciler.schema`, run from a checkout (here a copy, so the repository's
    # own files stay as they are): it writes both copies next to the package and says where.
    shutil.copytree(REPO / "reconciler", tmp_path / "reconciler", ignore=_no_caches)
    (tmp_path / "schemas").mkdir()
    (tmp_path / "reconciler" / "sources.schema.json").write_text("{}", encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "reconciler.schema"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    written = [
        tmp_path / "reconciler" / "sources.schema.json",
        tmp_path / "schemas" / "sources.schema.json",
    ]
    assert done.stdout == "".join(f"wrote {path}\n" for path in written)
    assert all(path.read_text(encoding="utf-8") == render_sources_schema() for path in written)


def _no_caches(folder: str, names: list[str]) -> list[str]:
    return [name for name in names if name == "__pycache__"]


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
        (lambda d: d["sources"][0]["deployment"].update(s3_bucket="images\n"), "a line end"),
        (lambda d: d["sources"][0]["deployment"].update(s3_access_key="AKIA\x7f"), "DEL"),
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


def test_an_attribute_that_takes_a_reference_keeps_its_annotations_outside_the_choices() -> None:
    # No attribute that takes a reference has a description yet: the schema built from the
    # models cannot show where one would go, so the rewriting is tried on its own. Editors
    # show the annotations of the property itself, not of one of its choices.
    annotated = {"type": "string", "title": "Bucket", "description": "Where.", "default": "x"}
    assert schema_module._or_reference(annotated) == {
        "title": "Bucket",
        "description": "Where.",
        "default": "x",
        "anyOf": [{"type": "string"}, {"$ref": "#/$defs/Reference"}],
    }
    either = {"anyOf": [{"type": "string"}, {"type": "null"}], "description": "Or none."}
    assert schema_module._or_reference(either) == {
        "description": "Or none.",
        "anyOf": [{"type": "string"}, {"type": "null"}, {"$ref": "#/$defs/Reference"}],
    }


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
