"""The safety rails (reconciler/rails.py): what each refusal tells the user."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.errors import ApplyRefused
from reconciler.live import LiveSource
from reconciler.plan import OwnedElsewhere, Plan
from reconciler.planner import PlanOptions, plan
from reconciler.rails import Permissions, check_permissions, refusals
from reconciler.specs import DesiredState


def _moved_plan(count: int, **top: Any) -> Plan:
    """`count` live web folders, each moved to a new origin by the file."""
    names = [f"s{n:02d}" for n in range(count)]
    live = [
        LiveSource(
            id=f"{n:024x}",
            name=name,
            enabled=True,
            deployment={
                "type": "webfolder",
                "webfolder_base_url": "https://old.example/",
                "imgix_subdomains": [name],
            },
        )
        for n, name in enumerate(names)
    ]
    files = DesiredState.model_validate(
        {
            "version": 1,
            "sources": [
                {
                    "name": name,
                    **top,
                    "deployment": {
                        "type": "webfolder",
                        "webfolder_base_url": "https://new.example/",
                        "imgix_subdomains": [name],
                    },
                }
                for name in names
            ],
        }
    )
    return plan(files, live, PlanOptions(fingerprint_key=b"k"))


@pytest.mark.parametrize("count", [20, 21, 23])
def test_a_blast_radius_refusal_lists_twenty_sources_then_counts_the_rest(count: int) -> None:
    (refusal,) = refusals(_moved_plan(count), Permissions(allow_disable=True))
    names = ", ".join(f"s{n:02d}" for n in range(20))
    more = f" and {count - 20} more" if count > 20 else ""
    assert f"in risky ways ({names}{more})," in refusal.message
    assert f"the plan changes {count} of {count} managed live sources" in refusal.message
    assert refusal.message.endswith(
        "over the blast-radius threshold (more than 30%, and at least 3): review it and "
        "re-run with --allow-large-change"
    )
    assert len(refusal.sources) == count  # every source is named where it is shown
    assert refusal.sources[0][2] == (
        "it moves its origin; the plan is over the blast radius (--allow-large-change overrides)"
    )


def test_a_protected_source_is_refused_saying_what_the_plan_does_to_it() -> None:
    with pytest.raises(ApplyRefused) as refused:
        check_permissions(
            _moved_plan(1, mode="protect"), permissions=Permissions(allow_large_change=True)
        )
    assert str(refused.value) == (
        'source "s00" has mode: protect and the plan moves its origin: re-run with '
        "--allow-protected-change, or set mode: manage in the file"
    )
    assert refused.value.refusals[0].sources[0][2] == (
        "mode: protect: the plan moves its origin (--allow-protected-change overrides)"
    )


def test_a_protected_source_with_two_risks_names_both() -> None:
    made = _moved_plan(1, mode="protect", enabled=False)
    (refusal,) = refusals(made, Permissions(allow_disable=True, allow_large_change=True))
    assert "the plan disables it and moves its origin:" in refusal.message


def test_a_saved_plan_that_says_its_radius_is_exceeded_is_refused() -> None:
    # One risky source is under the threshold, but the plan (reviewed as such) says otherwise.
    made = _moved_plan(1)
    assert made.blast_radius is not None and not made.blast_radius.exceeded
    check_permissions(made)
    stricter = made.model_copy(
        update={"blast_radius": made.blast_radius.model_copy(update={"exceeded": True})}
    )
    with pytest.raises(ApplyRefused, match="--allow-large-change"):
        check_permissions(stricter)


def test_disabled_sources_are_named_in_one_refusal() -> None:
    made = _moved_plan(2, enabled=False)
    refused = refusals(made, Permissions(allow_large_change=True))
    assert [r.message for r in refused] == [
        "the plan disables live sources (s00, s01); re-run with --allow-disable to let it, "
        "or set enabled: true in the file"
    ]


def test_a_source_another_owner_manages_is_refused_naming_the_owner() -> None:
    owned = _moved_plan(1).model_copy(
        update={"owned_elsewhere": [OwnedElsewhere(source="s09", id="9" * 24, owner="team-b")]}
    )
    everything = Permissions(True, True, True, take_over=True)
    (refusal,) = refusals(owned, everything)
    assert refusal.message == (
        f'source "s09" ({"9" * 24}) is owned by "team-b" (its marker says so) and is never '
        "written: plan and apply with --take-over to take it over, or remove it from this file"
    )
    assert refusal.sources == (("9" * 24, "s09", 'owned by "team-b"; --take-over overrides'),)


def test_taking_a_source_over_needs_the_flag() -> None:
    made = _moved_plan(1)
    taking = made.model_copy(
        update={"actions": [made.actions[0].model_copy(update={"takes_over_from": "team-b"})]}
    )
    with pytest.raises(ApplyRefused) as refused:
        check_permissions(taking)
    assert str(refused.value) == (
        'source "s00" is owned by "team-b": the plan takes it over; re-run with --take-over '
        "to let it"
    )
    check_permissions(taking, permissions=Permissions(take_over=True))
    assert refusals(taking, Permissions())[0].sources == (
        (taking.actions[0].key, "s00", 'owned by "team-b"; --take-over overrides'),
    )


def test_several_refusals_are_listed_one_a_line() -> None:
    made = _moved_plan(1, enabled=False)
    both = made.model_copy(
        update={"actions": [made.actions[0].model_copy(update={"takes_over_from": "team-b"})]}
    )
    with pytest.raises(ApplyRefused) as refused:
        check_permissions(both)
    first, second = (r.message for r in refused.value.refusals)
    assert str(refused.value) == (f"nothing was written, for 2 reasons:\n  - {first}\n  - {second}")
    assert refused.value.refusals[0].sources[0][2] == (
        "the plan disables it; apply needs --allow-disable"
    )


def test_every_risk_has_its_words_where_the_blast_radius_names_a_source() -> None:
    made = _moved_plan(3)
    risks = ["disables", "moves_origin", "changes_credentials", "releases_hostnames"]
    every = made.model_copy(
        update={"actions": [made.actions[0].model_copy(update={"risks": risks}), *made.actions[1:]]}
    )
    (refusal,) = refusals(every, Permissions(allow_disable=True))
    assert refusal.sources[0][2].startswith(
        "it disables it and moves its origin and changes its credentials and releases hostnames;"
    )
