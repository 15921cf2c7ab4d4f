"""The plan document (reconciler/plan.py): schema, digest, round trip."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import jsonschema
from test_render import live_sources

from reconciler.loader import load
from reconciler.plan import (
    Action,
    Change,
    Plan,
    compute_digest,
    plan_json_schema,
    write_cost,
)
from reconciler.planner import PlanOptions, plan

ROOT = Path(__file__).parent.parent
SCHEMA = ROOT / "schemas" / "plan.schema.json"
GOLDEN_PLAN = Path(__file__).parent / "golden" / "plan.json"
FIXTURES = Path(__file__).parent / "fixtures"


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


FORK_YAML = """\
version: 1
sources:
  - name: Products
    deployment:
      type: s3
      imgix_subdomains: [acme-products]
      s3_bucket: products
      s3_access_key: AKIAEXAMPLE
      s3_secret_key: {env: S3_SECRET_KEY}
"""


def test_a_plan_without_the_secrets_has_the_digest_of_the_same_plan_with_them(
    tmp_path: Path,
) -> None:
    """A fork's pull request plans without secrets; apply --expect-digest must still match."""
    (tmp_path / "sources.yaml").write_text(FORK_YAML)
    files = [tmp_path / "sources.yaml"]
    options = PlanOptions(fingerprint_key=b"key")

    def planned(environ: dict[str, str]) -> Plan:
        desired = load(files, environ=environ, secrets_optional=True).state
        return plan(desired, [], options)

    without = planned({})
    with_secret = planned({"S3_SECRET_KEY": "secret-one-value"})
    rotated = planned({"S3_SECRET_KEY": "secret-two-value"})
    annotation = with_secret.actions[0].writes[0]["deployment"]["annotation"]  # type: ignore[call-overload,index]
    assert "fp.s3_secret_key=" in annotation  # the fingerprint is written...
    assert without.digest == with_secret.digest == rotated.digest  # ...but not digested
    changed = with_secret.actions[0].model_copy(update={"source": "Other"})
    assert compute_digest([changed]) != with_secret.digest


# --------------------------------------------------------------------------- write cost


def patch(writes: list[dict[str, Any]], *, record: bool = False) -> Action:
    return Action(
        action="patch",
        source="Old",
        id="64f1c2a9e4b0a1d2c3e4f500",
        changes=[],
        writes=writes,
        record_encrypted=record,
    )


def test_write_cost_counts_every_request_an_apply_sends() -> None:
    disabled_change = patch([{"enabled": True, "name": "x"}, {"enabled": False}], record=True)
    web_secret = patch([{"deployment": {"password": {"secret": {"env": "P"}}}}], record=True)
    disabling = patch([{"enabled": False}], record=True)  # never enabled: nothing recorded

    cost = write_cost(
        [create(), disabled_change, web_secret, disabling],
        creates_per_hour=60,
        updates_per_hour=60,
    )

    assert (cost.creates, cost.updates) == (1, 2 + 1 + 2 + 1)


def test_write_cost_time_is_the_hourly_batches_beyond_a_fresh_budget() -> None:
    updates = [patch([{"name": f"n{i}"}]) for i in range(150)]

    at_60 = write_cost(updates, creates_per_hour=60, updates_per_hour=60)
    at_200 = write_cost(updates, creates_per_hour=60, updates_per_hour=200)
    unlimited = write_cost(updates, creates_per_hour=None, updates_per_hour=None)

    # 60 now, 60 an hour later, the last 30 two hours later; 4 requests/s on top.
    assert at_60.seconds == 2 * 3600 + 38
    assert at_200.seconds == unlimited.seconds == 38
    assert (at_60.updates_per_hour, at_200.updates_per_hour) == (60, 200)


def test_the_planner_states_the_cost_at_the_configured_budgets() -> None:
    desired = load([FIXTURES / "plan_desired.yaml"], secrets_optional=True).state
    made = plan(desired, live_sources(), PlanOptions(fingerprint_key=b"k", creates_per_hour=1))

    assert made.cost is not None
    assert made.cost.creates == made.summary.create
    assert made.cost.creates_per_hour == 1
    assert made.cost.seconds >= 3600 * (made.summary.create - 1) > 0
