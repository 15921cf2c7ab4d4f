"""The plan document (reconciler/plan.py): schema, digest, round trip."""

from __future__ import annotations

import json
import os
from pathlib import Path

import jsonschema

from reconciler.plan import Action, Change, Plan, compute_digest, plan_json_schema

ROOT = Path(__file__).parent.parent
SCHEMA = ROOT / "schemas" / "plan.schema.json"
GOLDEN_PLAN = Path(__file__).parent / "golden" / "plan.json"


def create(name: str = "New", subdomain: str = "new-one") -> Action:
    return Action(
        action="create",
        source=name,
        id=None,
        changes=[Change(path="name", after=name)],
        writes=[{"name": name, "deployment": {"imgix_subdomains": [subdomain]}}],
    )


def test_schema_file_is_in_sync_with_the_models() -> None:
    generated = json.dumps(plan_json_schema(), indent=2, sort_keys=True) + "\n"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        SCHEMA.write_text(generated, encoding="utf-8")
    assert SCHEMA.read_text(encoding="utf-8") == generated, (
        "schemas/plan.schema.json is out of date: run UPDATE_GOLDEN=1 pytest tests/test_plan.py"
    )


def test_representative_plan_validates_against_the_schema() -> None:
    document = json.loads(GOLDEN_PLAN.read_text(encoding="utf-8"))
    jsonschema.validate(document, json.loads(SCHEMA.read_text(encoding="utf-8")))
    assert document["format_version"] == 1
    assert set(document["summary"]) == {"create", "patch", "unchanged", "unmanaged"}


def test_schema_rejects_an_unknown_action() -> None:
    document = json.loads(GOLDEN_PLAN.read_text(encoding="utf-8"))
    document["actions"][0]["action"] = "delete"
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    assert not jsonschema.Draft202012Validator(schema).is_valid(document)


def test_saved_plan_reads_back_identical() -> None:
    text = GOLDEN_PLAN.read_text(encoding="utf-8")
    plan = Plan.model_validate_json(text)
    assert plan.to_json() + "\n" == text
    assert compute_digest(plan.actions) == plan.digest


def test_digest_covers_actions_but_not_live_fingerprints() -> None:
    action = create()
    seen = action.model_copy(update={"live_fingerprint": "sha256:other"})
    assert compute_digest([action]) == compute_digest([seen])
    assert compute_digest([action]) != compute_digest([create("Other")])
    assert compute_digest([action, create("B", "b")]) != compute_digest([create("B", "b"), action])


def test_digest_does_not_depend_on_dict_order() -> None:
    one = create().model_copy(update={"writes": [{"name": "New", "enabled": True}]})
    two = create().model_copy(update={"writes": [{"enabled": True, "name": "New"}]})
    assert compute_digest([one]) == compute_digest([two])


def test_action_key_is_the_id_or_the_first_new_subdomain() -> None:
    assert create().key == "new:new-one"
    assert create().model_copy(update={"id": "a" * 24}).key == "a" * 24
