"""The plan document (reconciler/plan.py): schema, digest, round trip."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import os
import pickle
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from test_render import live_sources

from reconciler.loader import load
from reconciler.plan import (
    Action,
    Adoption,
    BlastRadius,
    Change,
    ObservedSource,
    OwnedElsewhere,
    Plan,
    Summary,
    canonical_json,
    compute_digest,
    plan_json_schema,
    same_json,
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
    assert document["format_version"] == 2
    assert set(document["summary"]) == {"create", "patch", "unchanged", "unmanaged", "observed"}
    assert document["blast_radius"] == {
        "risky": 2,
        "managed": 4,
        "max_risky_share": 0.3,
        "min_risky_count": 2,
        "exceeded": True,
    }


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


def _dumped_payload(action: Action) -> dict[str, Any]:
    """What the digest hashed of an action as first written: from the model's JSON dump."""
    data = action.model_dump(mode="json", exclude={"live_fingerprint", "marker"})
    for write in data["writes"]:
        deployment = write.get("deployment")
        if isinstance(deployment, dict) and "annotation" in deployment:
            deployment["annotation"] = [deployment["annotation"], action.marker is not None]
    return data


def test_the_digest_reads_each_action_as_its_dump_gives_it() -> None:
    from reconciler.marker import Marker
    from reconciler.plan import _normalized_action

    golden = Plan.model_validate_json(GOLDEN_PLAN.read_text(encoding="utf-8"))
    unmarked = golden.actions[-1].model_copy(
        update={"marker": None, "takes_over_from": "other/repo", "live_fingerprint": "sha256:x"}
    )
    marked = create().model_copy(
        update={
            "writes": [{"name": "New", "deployment": {"annotation": "note", "q": [1, 2.5]}}],
            "marker": Marker({"s3_secret_key": "ab"}),
        }
    )
    actions = [*golden.actions, unmarked, marked]
    assert any(a.depends_on for a in actions) and any(a.risks for a in actions)
    for action in actions:
        writes = json.dumps(action.writes, sort_keys=True)
        assert _normalized_action(action) == _dumped_payload(action)
        assert json.dumps(action.writes, sort_keys=True) == writes  # the action is not changed
    assert _normalized_action(marked)["writes"] == [
        {"name": "New", "deployment": {"annotation": ["note", True], "q": [1, 2.5]}}
    ]


MAC_KEY = b"saved-plan-key"


def test_the_mac_covers_every_field_of_the_document() -> None:
    golden = Plan.model_validate_json(GOLDEN_PLAN.read_text(encoding="utf-8"))
    saved = golden.authenticated(MAC_KEY)
    assert saved.is_authentic(MAC_KEY) and not saved.is_authentic(b"another-key")
    action = saved.actions[0]
    edits: dict[str, object] = {
        "format_version": 1,
        "api_url": "https://elsewhere.example" if saved.api_url is None else None,
        "digest": "sha256:" + "0" * 64,
        "summary": saved.summary.model_copy(update={"create": 9}),
        "actions": [action.model_copy(update={"live_fingerprint": "sha256:" + "1" * 64})],
        "unmanaged": [],
        "notices": [],
        "observed": [ObservedSource(action="patch", source="Seen", id="f" * 24, changes=[])],
        "owned_elsewhere": [OwnedElsewhere(source="Theirs", id="e" * 24, owner="acme/other")],
        "adoption": Adoption(
            count=1,
            sources=[],
            planned=False,
            updates=1,
            updates_per_hour=60,
            hours=1,
            detail="1 source to adopt",
        ),
        "blast_radius": BlastRadius.measure(9, 10, max_risky_share=0.9, min_risky_count=1),
        "cost": write_cost(saved.actions, creates_per_hour=1, updates_per_hour=1),
    }
    assert set(edits) == set(Plan.model_fields) - {"mac"}  # a new field must be covered too
    for field, value in edits.items():
        assert not saved.model_copy(update={field: value}).is_authentic(MAC_KEY), field
    # The marker is left out of the digest, not out of the MAC.
    assert action.marker is not None
    owner = dataclasses.replace(action.marker, owner="acme/forger")
    forged = saved.model_copy(update={"actions": [action.model_copy(update={"marker": owner})]})
    assert not forged.is_authentic(MAC_KEY)


GOLDEN_SAVED = Path(__file__).parent / "golden" / "plan.saved.json"


def test_the_mac_of_a_saved_plan_is_pinned() -> None:
    """A change to how the MAC is computed shows in review as a new `mac` on the same plan."""
    api_url = "https://api.imgix.com"
    small = Plan(
        api_url=api_url,
        digest=compute_digest([create()], api_url),
        summary=Summary(create=1, patch=0, unchanged=0, unmanaged=0),
        actions=[create()],
    )
    saved = small.authenticated(MAC_KEY).to_json() + "\n"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        GOLDEN_SAVED.write_text(saved, encoding="utf-8")
    assert GOLDEN_SAVED.read_text(encoding="utf-8") == saved
    document = json.loads(saved)
    jsonschema.validate(document, json.loads(SCHEMA.read_text(encoding="utf-8")))
    assert Plan.model_validate(document).is_authentic(MAC_KEY)


def test_only_a_plan_with_a_mac_prints_one() -> None:
    golden = Plan.model_validate_json(GOLDEN_PLAN.read_text(encoding="utf-8"))
    assert "mac" not in json.loads(golden.to_json())
    saved = json.loads(golden.authenticated(MAC_KEY).to_json())
    assert saved["mac"].startswith("hmac-sha256:")
    assert Plan.model_validate(saved).is_authentic(MAC_KEY)


def test_action_key_is_the_id_or_the_first_new_subdomain() -> None:
    assert create().key == "new:new-one"
    assert create().model_copy(update={"id": "a" * 24}).key == "a" * 24


@pytest.mark.parametrize(
    "writes",
    [
        [],
        [{"name": "New"}],
        [{"deployment": {"imgix_subdomains": []}}],
        [{"deployment": {"imgix_subdomains": "new-one"}}],
    ],
)
def test_a_new_source_whose_writes_name_no_subdomain_is_keyed_by_its_name(
    writes: list[dict[str, Any]],
) -> None:
    assert create().model_copy(update={"writes": writes}).key == "new:New"


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
    marker = with_secret.actions[0].marker
    assert marker is not None and "s3_secret_key" in marker.fingerprints  # written...
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
    enabled_later = patch([{"enabled": False}, {"enabled": True}], record=True)

    cost = write_cost(
        [create(), disabled_change, web_secret, disabling, enabled_later],
        creates_per_hour=60,
        updates_per_hour=60,
    )

    assert (cost.creates, cost.updates) == (1, 2 + 1 + 2 + 1 + 2 + 1)


def test_the_record_patch_is_counted_only_for_an_action_that_leaves_the_source_enabled() -> None:
    # Counted one action at a time: in a total, one action counted wrongly one way and
    # another the other way add up to the right number.
    def updates(*writes: dict[str, Any]) -> int:
        return write_cost(
            [patch(list(writes), record=True)], creates_per_hour=None, updates_per_hour=None
        ).updates

    assert updates({"deployment": {"password": {"secret": {"env": "P"}}}}) == 1 + 1
    assert updates({"enabled": True, "name": "x"}, {"name": "y"}) == 2 + 1
    assert updates({"enabled": False}) == 1  # disabled throughout: the applier cannot record
    assert updates({"enabled": False}, {"name": "y"}) == 2  # still disabled
    assert updates({"enabled": False}, {"enabled": True}) == 2 + 1


def test_a_plan_that_writes_nothing_takes_no_time() -> None:
    for budget in (None, 1, 60):
        cost = write_cost([], creates_per_hour=budget, updates_per_hour=budget)
        assert (cost.creates, cost.updates, cost.seconds) == (0, 0, 0)


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


# --------------------------------------------------------------------------- trusted models


def test_a_trusted_action_is_the_model_validation_gives() -> None:
    # The planner builds its patches with `Action.trusted`: the same model, dump and digest
    # as validating the same fields.
    desired = load([FIXTURES / "plan_desired.yaml"], secrets_optional=True).state
    made = plan(desired, live_sources(), PlanOptions(fingerprint_key=b"k"))
    patches = [action for action in made.actions if action.action == "patch"]
    assert patches
    for action in patches:
        validated = Action.model_validate(dict(vars(action)))
        assert validated == action
        assert list(vars(validated)) == list(vars(action))
        assert validated.model_dump_json() == action.model_dump_json()
        assert compute_digest([validated]) == compute_digest([action])
        for change in action.changes:  # taken as they are by the action's validation
            validated_change = Change.model_validate(dict(vars(change)))
            assert validated_change == change
            assert list(vars(validated_change)) == list(vars(change))


def test_a_trusted_model_takes_every_field_in_order() -> None:
    fields = {"path": "name", "before": "A", "after": "B"}
    trusted = Change.trusted(**fields)
    assert trusted == Change(**fields)
    # Every field set, as validation leaves it; copied and pickled like a validated model.
    assert trusted.model_fields_set == set(fields)
    assert trusted.model_dump(exclude_unset=True) == fields
    assert copy.deepcopy(trusted) == pickle.loads(pickle.dumps(trusted)) == trusted
    for wrong in (
        {"path": "name", "after": "B"},  # one missing
        {"after": "B", "path": "name", "before": "A"},  # out of order
        {**fields, "other": 1},  # one unknown
    ):
        with pytest.raises(TypeError, match="takes its fields in order"):
            Change.trusted(**wrong)


def test_the_digest_of_many_actions_is_the_hash_of_their_payloads_in_one_document() -> None:
    # Encoded a block of actions at a time: the bytes are still one canonical document.
    actions = [create(f"New {n:04d}", f"new-{n}") for n in range(600)]
    for api_url in (None, "https://api.imgix.com/"):
        payload: object = [_dumped_payload(action) for action in actions]
        if api_url is not None:
            payload = {"actions": payload, "api_url": api_url.rstrip("/")}
        text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
        expected = "sha256:" + hashlib.sha256(text.encode()).hexdigest()
        assert compute_digest(actions, api_url) == expected
        for count in (0, 1, 255, 256, 257, 512, 513):
            some = actions[:count]
            payload = [_dumped_payload(action) for action in some]
            text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
            assert compute_digest(some) == "sha256:" + hashlib.sha256(text.encode()).hexdigest()


# --------------------------------------------------------------------------- values


def test_same_json_tells_apart_what_json_tells_apart() -> None:
    assert same_json({"a": [1, "x", None], "b": {"c": 1.5}}, {"b": {"c": 1.5}, "a": [1, "x", None]})
    for a, b in (
        (True, 1),
        (1, 1.0),
        (0, False),
        ({"a": 1}, {"a": 1, "b": 1}),
        ({"a": 1}, {"b": 1}),
        ({"a": {"b": True}}, {"a": {"b": 1}}),
        ([1, 2], [1, 2, 3]),
        ([1, 2, 3], [1, 2]),
        ([1, [True]], [1, [1]]),
        ("1", 1),
    ):
        assert not same_json(a, b) and not same_json(b, a), (a, b)


def test_a_plan_holding_a_non_finite_number_keeps_its_mac_and_digest_once_read_back() -> None:
    # Only a broken API answer holds NaN or Infinity; the saved plan holds null instead.
    nan, inf = float("nan"), float("inf")
    assert canonical_json({"a": [nan, 1.5, -inf], "b": {"c": inf}, "d": (nan,)}) == (
        '{"a":[null,1.5,null],"b":{"c":null},"d":[null]}'
    )
    action = create().model_copy(
        update={"changes": [Change(path="deployment.q", before={"a": [nan, 2.5]}, after=inf)]}
    )
    made = Plan(
        digest=compute_digest([action]),
        summary=Summary(create=1, patch=0, unchanged=0, unmanaged=0),
        actions=[action],
    ).authenticated(MAC_KEY)
    read_back = Plan.model_validate_json(made.to_json())
    assert read_back.actions[0].changes[0].before == {"a": [None, 2.5]}
    assert read_back.is_authentic(MAC_KEY)
    assert compute_digest(read_back.actions) == made.digest


def test_a_protected_source_refuses_only_the_protected_risks() -> None:
    risky = create().model_copy(
        update={"risks": ["disables", "changes_credentials", "moves_origin"]}
    )
    assert risky.model_copy(update={"protected": True}).refused_as_protected == [
        "disables",
        "moves_origin",
    ]
    assert risky.refused_as_protected == []


def test_the_blast_radius_is_exceeded_past_both_the_share_and_the_count() -> None:
    def exceeded(risky: int, managed: int, share: float, count: int) -> bool:
        measured = BlastRadius.measure(risky, managed, max_risky_share=share, min_risky_count=count)
        assert (measured.risky, measured.managed) == (risky, managed)
        assert (measured.max_risky_share, measured.min_risky_count) == (share, count)
        return measured.exceeded

    assert exceeded(4, 10, 0.3, 1)
    assert not exceeded(3, 10, 0.3, 1)  # at the share, not past it
    assert not exceeded(4, 10, 0.3, 5)  # past the share, under the count
    assert exceeded(5, 10, 0.3, 5)  # at the count


def test_each_text_shown_in_place_of_a_value_is_a_distinct_parenthesised_marker() -> None:
    # A reviewer tells them from values by their parentheses (an API value such as "" or
    # "x" would pass for a marker otherwise), and one from another by their words.
    from reconciler import plan as plan_module

    markers = [
        plan_module.WRITE_ONLY,
        plan_module.WILL_BE_SENT,
        plan_module.CANNOT_COMPARE,
        plan_module.NOT_RETURNED,
        plan_module.MARKER_WRITTEN,
        plan_module.HIDDEN,
        plan_module.NOT_SET,
        plan_module.REMOVED,
    ]
    assert len(set(markers)) == len(markers)
    for marker in markers:
        assert marker.startswith("(") and marker.endswith(")") and len(marker) > len("()")


def test_a_plan_cannot_be_changed_once_made() -> None:
    # What `apply` acts on is what the MAC and digest were computed over: no part of a
    # plan, shared between its views, may be edited in place.
    import pydantic

    golden = Plan.model_validate_json(GOLDEN_PLAN.read_text(encoding="utf-8"))
    action = golden.actions[0]
    for model, field, value in (
        (golden, "api_url", "https://elsewhere.example"),
        (action, "source", "Other"),
        (action.changes[0], "after", "x"),
        (golden.summary, "create", 9),
    ):
        with pytest.raises(pydantic.ValidationError, match="frozen"):
            setattr(model, field, value)
