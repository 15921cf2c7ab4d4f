"""The planner (reconciler/planner.py and its parts, reconciler/planning/): matching,
normalizing, actions, ordering."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
from dataclasses import dataclass, replace
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from reconciler.applier import ApplyRefused, Permissions, SecretResolver, apply_plan
from reconciler.client import ImgixClient
from reconciler.emulator import EMULATOR_API_KEY, RateLimits, SourceStore, create_app
from reconciler.emulator.errors import BadRequest
from reconciler.live import LiveSource
from reconciler.marker import Marker, compose_annotation, parse_annotation
from reconciler.pacing import Pacing
from reconciler.plan import (
    HIDDEN,
    MARKER_WRITTEN,
    NOT_RETURNED,
    NOT_SET,
    REMOVED,
    WILL_BE_SENT,
    WRITE_ONLY,
    Action,
    Change,
    Plan,
    compute_digest,
    same_json,
)
from reconciler.planner import PlanError, PlanOptions, plan
from reconciler.rendering_params import param_text
from reconciler.secrets import UNKNOWN, encrypted_digest, fingerprint
from reconciler.specs import DesiredState, SecretRef

KEY = b"planner-test-key"
OPTIONS = PlanOptions(fingerprint_key=KEY)
S3_SECRET = "s3-secret-value-do-not-print"
ID_A, ID_B, ID_C = "a" * 24, "b" * 24, "c" * 24


def s3_spec(
    name: str = "Product images",
    subdomains: tuple[str, ...] = ("acme-products",),
    secret: str | None = S3_SECRET,
    **fields: Any,
) -> dict[str, Any]:
    top = {k: fields.pop(k) for k in ("id", "enabled", "mode", "ignore_changes") if k in fields}
    return {
        "name": name,
        **top,
        "deployment": {
            "type": "s3",
            "s3_access_key": "AKIAEXAMPLE",
            "s3_bucket": "acme-products",
            "s3_secret_key": SecretRef("env", "S3_SECRET_KEY", secret),
            "imgix_subdomains": list(subdomains),
            **fields,
        },
    }


def webfolder_spec(name: str, subdomains: tuple[str, ...], **fields: Any) -> dict[str, Any]:
    top = {k: fields.pop(k) for k in ("id", "enabled", "mode", "ignore_changes") if k in fields}
    return {
        "name": name,
        **top,
        "deployment": {
            "type": "webfolder",
            "webfolder_base_url": "https://origin.example/images/",
            "imgix_subdomains": list(subdomains),
            **fields,
        },
    }


def desired(*sources: dict[str, Any]) -> DesiredState:
    return DesiredState.model_validate({"version": 1, "sources": list(sources)})


def as_sent(action: Action, index: int = 0, write: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write `index` of `action` (or `write`, resolved) with its annotation as the applier
    sends it: the write's text, then the action's marker (pending on all but the last)."""
    index %= len(action.writes)
    body = dict(action.writes[index] if write is None else write)
    deployment = body.get("deployment")
    if action.marker is None or not isinstance(deployment, dict) or "annotation" not in deployment:
        return body
    text = deployment["annotation"]
    if isinstance(text, dict):
        return body  # referenced text: read at send time
    pending = action.marker.pending_disable and index < len(action.writes) - 1
    marker = dataclasses.replace(action.marker, pending_disable=pending)
    annotation = compose_annotation(text or None, marker)
    return {**body, "deployment": {**deployment, "annotation": annotation}}


def as_live(plan_: Plan, source_id: str = ID_A, **overrides: Any) -> LiveSource:
    """What the API returns after the plan's single create: secrets left out, defaults kept."""
    (action,) = plan_.actions
    body = as_sent(action)
    deployment = {
        k: v
        for k, v in dict(body["deployment"]).items()  # type: ignore[arg-type]
        if not (isinstance(v, dict) and "secret" in v)
    }
    deployment.update(overrides.pop("deployment", {}))
    attributes = {"name": body["name"], "enabled": body["enabled"], **overrides}
    return LiveSource(id=source_id, deployment=deployment, **attributes)


def live_of(spec: dict[str, Any], source_id: str = ID_A, **overrides: Any) -> LiveSource:
    return as_live(plan(desired(spec), [], OPTIONS), source_id, **overrides)


def only(plan_: Plan) -> Action:
    (action,) = plan_.actions
    return action


def paths(action: Action) -> list[str]:
    return [change.path for change in action.changes]


# --------------------------------------------------------------------------- create


def test_new_source_is_created_with_every_attribute_and_its_secret() -> None:
    result = plan(desired(s3_spec(cache_ttl_value=86400)), [], OPTIONS)
    action = only(result)
    assert action.action == "create" and action.id is None
    assert action.key == "new:acme-products"
    (write,) = action.writes
    assert write["name"] == "Product images" and write["enabled"] is True
    deployment = write["deployment"]
    assert isinstance(deployment, dict)
    assert deployment["cache_ttl_value"] == 86400
    assert deployment["cache_ttl_error"] == 300  # the documented default, sent explicitly
    # No documented default: an unstated robots.txt is left to the API.
    assert "robots.txt" not in deployment
    assert deployment["s3_secret_key"] == {"secret": {"env": "S3_SECRET_KEY"}}
    recorded = parse_annotation(str(as_sent(action)["deployment"]["annotation"])).marker
    assert recorded == Marker({"s3_secret_key": fingerprint(KEY, "s3_secret_key", S3_SECRET)})
    assert Change(path="deployment.s3_secret_key", after=WILL_BE_SENT) in action.changes
    assert result.summary.create == 1


def test_create_shows_declared_annotation_and_keeps_it_before_the_marker() -> None:
    action = only(plan(desired(s3_spec(annotation="Managed in git")), [], OPTIONS))
    assert Change(path="deployment.annotation", after="Managed in git") in action.changes
    annotation = as_sent(action, 0)["deployment"]["annotation"]  # type: ignore[index,call-overload]
    assert str(annotation).startswith("Managed in git [imgix-reconciler v1 fp.s3_secret_key=")


# --------------------------------------------------------------------------- matching


def test_live_state_equal_to_the_file_plans_no_changes() -> None:
    spec = s3_spec(annotation="Managed in git", custom_domains=["img.acme.example"])
    result = plan(desired(spec), [live_of(spec)], OPTIONS)
    assert result.actions == [] and not result.has_changes
    assert result.summary.unchanged == 1
    assert result.notices == []


def test_match_by_subdomain_not_by_name() -> None:
    spec = s3_spec()
    renamed = live_of(spec).model_copy(update={"name": "Old name"})
    stranger = live_of(s3_spec(subdomains=("elsewhere",)), ID_B)
    result = plan(desired(spec), [renamed, stranger], OPTIONS)
    action = only(result)
    assert action.action == "patch" and action.id == ID_A
    assert action.changes == [Change(path="name", before="Old name", after="Product images")]
    assert action.writes == [{"name": "Product images"}]
    assert [(u.id, u.name) for u in result.unmanaged] == [(ID_B, "Product images")]


def test_match_by_id_wins_over_subdomains() -> None:
    spec = s3_spec(id=ID_B, subdomains=("acme-new",))
    elsewhere = live_of(s3_spec(subdomains=("acme-old",)), ID_B)
    action = only(plan(desired(spec), [elsewhere], OPTIONS))
    assert action.id == ID_B
    assert (
        Change(path="deployment.imgix_subdomains", before=["acme-old"], after=["acme-new"])
        in action.changes
    )


@pytest.mark.parametrize(
    "subdomains",
    [("one", "two"), ("acme-unheld", "one", "two")],
    ids=["each held", "after one no source holds"],
)
def test_subdomains_on_two_live_sources_ask_for_an_id(subdomains: tuple[str, ...]) -> None:
    spec = s3_spec(subdomains=subdomains)
    first = live_of(s3_spec(subdomains=("one",)), ID_A)
    second = live_of(s3_spec(subdomains=("two",)), ID_B)
    with pytest.raises(PlanError, match=r'"Product images".*2 live sources.*add `id:`') as info:
        plan(desired(spec), [first, second], OPTIONS)
    assert info.value.spec_indices == (0,)


def test_a_subdomain_two_live_sources_list_asks_for_an_id() -> None:
    # imgix refuses it, but the listing is untrusted: matching does not pick one.
    spec = s3_spec(subdomains=("one",))
    with pytest.raises(PlanError, match=r"belong to 2 live sources"):
        plan(desired(spec), [live_of(spec, ID_A), live_of(spec, ID_B)], OPTIONS)


def test_a_live_source_listing_a_subdomain_twice_is_matched_once() -> None:
    spec = s3_spec(subdomains=("one",))
    twice = live_of(spec, deployment={"imgix_subdomains": ["one", "one"]})
    assert only(plan(desired(spec), [twice], OPTIONS)).id == ID_A


def test_a_live_source_without_subdomains_holds_none_of_the_next_ones() -> None:
    # As many hostnames as live sources, but not one each: the second holds both.
    spec = s3_spec(subdomains=("one", "two"))
    bare = LiveSource(id=ID_A, name="Bare", deployment={"type": "s3", "imgix_subdomains": []})
    result = plan(desired(spec), [bare, live_of(spec, ID_B)], OPTIONS)
    assert result.actions == [] and result.summary.unchanged == 1
    assert [u.id for u in result.unmanaged] == [ID_A]


def test_a_pin_leaves_the_other_specs_matched_by_subdomain() -> None:
    pinned = s3_spec("Pinned", ("p",), id=ID_B)
    spec = s3_spec("By subdomain", ("one", "two"))
    listed = [live_of(spec, ID_A), live_of(s3_spec("Pinned", ("p",)), ID_B)]
    result = plan(desired(pinned, spec), listed, OPTIONS)
    assert result.actions == [] and result.summary.unchanged == 2


def test_a_spec_is_matched_by_any_of_its_subdomains() -> None:
    both = s3_spec("Both", ("b-one", "b-two"))
    second = s3_spec("Second", ("new", "kept"))
    listed = [live_of(both, ID_A), live_of(s3_spec("Second", ("kept",)), ID_B)]
    result = plan(desired(both, second), listed, OPTIONS)
    assert only(result).id == ID_B and result.summary.unchanged == 1


_HOSTS = ("h0", "h1", "h2", "h3", "h4", "h5")
_IDS = (ID_A, ID_B, ID_C)


@st.composite
def _matching_case(draw: Any) -> tuple[DesiredState, list[LiveSource]]:
    """Specs with their own subdomains (now and then pinned), and live sources holding
    some (now and then one held twice)."""
    owners = draw(st.lists(st.integers(-1, 3), min_size=len(_HOSTS), max_size=len(_HOSTS)))
    specs = []
    for n in range(4):
        hosts = tuple(h for h, owner in zip(_HOSTS, owners, strict=True) if owner == n)
        if hosts:
            pin = draw(st.sampled_from((None,) * 9 + _IDS))
            specs.append(s3_spec(f"S{n}", hosts, **({"id": pin} if pin else {})))
    holders = draw(st.lists(st.integers(-1, 2), min_size=len(_HOSTS), max_size=len(_HOSTS)))
    listed = []
    for n, source_id in enumerate(_IDS):
        hosts = [h for h, holder in zip(_HOSTS, holders, strict=True) if holder == n]
        if draw(st.integers(0, 4)) == 0:
            hosts.append(draw(st.sampled_from(_HOSTS)))  # perhaps another's, or its own again
        if hosts:
            deployment = {"type": "s3", "imgix_subdomains": hosts}
            listed.append(LiveSource(id=source_id, name=f"L{n}", deployment=deployment))
    return desired(*specs), listed


def _matched(specs: Any, listed: list[LiveSource]) -> object:
    from reconciler.planner import match_sources

    try:
        return [(m.index, m.live.id if m.live else None) for m in match_sources(specs, listed)]
    except PlanError as error:
        return (str(error), error.spec_indices)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(case=_matching_case())
def test_matching_in_c_agrees_with_the_rules_spec_by_spec(
    case: tuple[DesiredState, list[LiveSource]],
) -> None:
    from reconciler.planning import matching

    wanted, listed = case
    quick = _matched(wanted.sources, listed)
    with pytest.MonkeyPatch.context() as patched:  # the rules spec by spec, for every case
        patched.setattr(matching, "_plain_matches", lambda *_: None)
        assert _matched(wanted.sources, listed) == quick


def test_unknown_id_is_an_error_naming_the_source() -> None:
    with pytest.raises(PlanError, match=rf'"Product images": no live source has id {ID_C}'):
        plan(desired(s3_spec(id=ID_C)), [], OPTIONS)


def test_two_specs_on_one_live_source_is_an_error() -> None:
    live = live_of(s3_spec(subdomains=("one", "two")))
    specs = desired(s3_spec("A", ("one",)), s3_spec("B", ("two",)))
    with pytest.raises(
        PlanError, match=rf'"A" and "B" both match live source "Product images" \({ID_A}\)'
    ) as info:
        plan(specs, [live], OPTIONS)
    assert info.value.spec_indices == (0, 1)
    # A listing without its name: the id alone, not `"None"`.
    unnamed = live.model_copy(update={"name": None})
    with pytest.raises(PlanError, match=rf"both match live source \({ID_A}\) by subdomain"):
        plan(specs, [unnamed], OPTIONS)


def test_two_specs_pinning_one_id_is_an_error_naming_both() -> None:
    live = live_of(s3_spec(subdomains=("one",)), ID_B)
    specs = desired(s3_spec("A", ("one",), id=ID_B), s3_spec("B", ("two",), id=ID_B))
    with pytest.raises(PlanError, match=rf'"A" and "B" both have id {ID_B}') as info:
        plan(specs, [live], OPTIONS)
    assert info.value.spec_indices == (0, 1)


def test_hostname_claimed_by_two_specs_is_an_error() -> None:
    specs = desired(s3_spec("A", ("one",)), s3_spec("B", ("two", "one")))
    with pytest.raises(PlanError, match=r'"A" and "B" both claim one') as info:
        plan(specs, [], OPTIONS)
    assert info.value.spec_indices == (0, 1)


def test_unmanaged_sources_are_listed_sorted_and_never_touched() -> None:
    others = [
        live_of(s3_spec("Zeta", ("z",)), ID_A),
        live_of(s3_spec("Alpha", ("y",)), ID_B),
    ]
    result = plan(desired(), others, OPTIONS)
    assert result.actions == []
    assert [u.name for u in result.unmanaged] == ["Alpha", "Zeta"]
    assert result.summary.unmanaged == 2


# --------------------------------------------------------------------------- normalizing


def test_omitted_attribute_means_the_documented_default() -> None:
    live = live_of(s3_spec(), deployment={"cache_ttl_value": 86400})
    action = only(plan(desired(s3_spec()), [live], OPTIONS))
    assert action.changes == [
        Change(path="deployment.cache_ttl_value", before=86400, after=31536000)
    ]
    deployment = as_sent(action, 0)["deployment"]
    assert isinstance(deployment, dict)
    # Only the change and the marker: no secret, no unchanged attribute.
    assert set(deployment) == {"cache_ttl_value", "annotation"}


def test_read_only_and_unknown_live_attributes_are_not_compared() -> None:
    extra = {"allows_upload": True, "s3_secret_key_set": True, "brand_new_field": 1}
    live = live_of(s3_spec(), deployment=extra)
    assert plan(desired(s3_spec()), [live], OPTIONS).actions == []


def test_hostnames_compare_as_sets() -> None:
    spec = s3_spec(subdomains=("b", "a"), custom_domains=["y.example.com", "x.example.com"])
    live = live_of(
        spec,
        deployment={
            "imgix_subdomains": ["a", "b"],
            "custom_domains": ["x.example.com", "y.example.com"],
        },
    )
    assert plan(desired(spec), [live], OPTIONS).actions == []


def test_an_attribute_the_listing_omits_is_no_difference_when_the_file_is_silent() -> None:
    live = live_of(s3_spec())
    deployment = {
        k: v for k, v in live.deployment.items() if k not in ("image_error", "custom_domains")
    }
    omitted = live.model_copy(update={"deployment": deployment})
    assert plan(desired(s3_spec()), [omitted], OPTIONS).actions == []


def test_an_attribute_the_listing_omits_is_written_when_the_file_states_it() -> None:
    spec = s3_spec(image_error="https://example.com/error.png", cache_ttl_value=1800)
    live = live_of(spec)
    deployment = {
        k: v for k, v in live.deployment.items() if k not in ("image_error", "cache_ttl_value")
    }
    action = only(
        plan(desired(spec), [live.model_copy(update={"deployment": deployment})], OPTIONS)
    )
    assert action.changes == [
        Change(path="deployment.cache_ttl_value", before=NOT_RETURNED, after=1800),
        Change(
            path="deployment.image_error",
            before=NOT_RETURNED,
            after="https://example.com/error.png",
        ),
    ]
    write = as_sent(action, 0)["deployment"]
    assert isinstance(write, dict)
    assert write["image_error"] == "https://example.com/error.png"
    assert write["cache_ttl_value"] == 1800


@pytest.mark.parametrize(
    "stated", [{"image_error": None}, {"custom_domains": []}, {"default_params": {}}]
)
def test_a_stated_empty_value_the_listing_omits_is_no_difference(stated: dict[str, Any]) -> None:
    # Real listings leave out keys without a value: writing null, [] or {} again would
    # never show in the next listing, and every plan would patch it again.
    spec = s3_spec(**stated)
    live = live_of(spec)
    (name,) = stated
    deployment = {k: v for k, v in live.deployment.items() if k != name}
    omitted = live.model_copy(update={"deployment": deployment})
    assert plan(desired(spec), [omitted], OPTIONS).actions == []
    # Still compared when listed: a value set in the dashboard is cleared.
    shown = {"image_error": "https://x.example/e.png", "custom_domains": ["a.example.com"]}
    changed = live.model_copy(
        update={"deployment": {**deployment, name: shown.get(name, {"auto": "format"})}}
    )
    assert paths(only(plan(desired(spec), [changed], OPTIONS)))[0].startswith(f"deployment.{name}")


def test_robots_txt_has_no_default_and_is_managed_only_when_stated() -> None:
    live = live_of(s3_spec(), deployment={"robots.txt": "disallow-all"})
    assert plan(desired(s3_spec()), [live], OPTIONS).actions == []
    stated = s3_spec(**{"robots.txt": "origin"})
    action = only(plan(desired(stated), [live], OPTIONS))
    assert action.changes == [
        Change(path="deployment.robots.txt", before="disallow-all", after="origin")
    ]


def test_json_types_are_compared_strictly() -> None:
    spec = s3_spec(default_params={"q": 1})
    live = live_of(spec, deployment={"default_params": {"q": True}})
    assert paths(only(plan(desired(spec), [live], OPTIONS))) == ["deployment.default_params.q"]


def test_default_params_changes_are_shown_key_by_key() -> None:
    spec = s3_spec(default_params={"auto": "format,compress", "q": 75})
    live = live_of(spec, deployment={"default_params": {"auto": "format", "fm": "webp", "q": 75}})
    action = only(plan(desired(spec), [live], OPTIONS))
    assert action.changes == [
        Change(path="deployment.default_params.auto", before="format", after="format,compress"),
        Change(path="deployment.default_params.fm", before="webp", after=REMOVED),
    ]
    # The API replaces maps whole: the write sends every parameter, not the changed ones.
    deployment = as_sent(action, 0)["deployment"]
    assert deployment["default_params"] == {"auto": "format,compress", "q": 75}  # type: ignore[index,call-overload]


def test_an_added_parameter_was_not_set_before() -> None:
    spec = s3_spec(default_params={"q": 75})
    live = live_of(spec, deployment={"default_params": {}})
    assert only(plan(desired(spec), [live], OPTIONS)).changes == [
        Change(path="deployment.default_params.q", before=NOT_SET, after=75)
    ]


def test_a_parameter_listed_as_its_text_is_the_files_value_not_a_change() -> None:
    # A listing may give `default_params` values as text (as a dashboard form saves them):
    # `q: 75` in the file is the "75" of the image URL, as `validate` reads it, not a
    # change on every plan. A key that differs by its text is still shown, alone.
    spec = s3_spec(default_params={"q": 75, "lossless": True, "auto": "format"})
    spelled = {"q": "75", "lossless": "true", "auto": "format"}
    assert (
        plan(
            desired(spec), [live_of(spec, deployment={"default_params": spelled})], OPTIONS
        ).actions
        == []
    )
    moved = {"q": "75.0", "lossless": "true", "auto": "format"}
    assert only(
        plan(desired(spec), [live_of(spec, deployment={"default_params": moved})], OPTIONS)
    ).changes == [Change(path="deployment.default_params.q", before="75.0", after=75)]


def test_a_default_params_that_is_not_a_map_is_shown_whole() -> None:
    spec = s3_spec(default_params={"q": 75})
    live = live_of(spec, deployment={"default_params": "q=75"})
    assert only(plan(desired(spec), [live], OPTIONS)).changes == [
        Change(path="deployment.default_params", before="q=75", after={"q": 75})
    ]


PARAM_VALUES = st.one_of(
    st.sampled_from(["format", "webp", "75", "1", "true"]), st.integers(0, 2), st.booleans()
)
PARAM_MAPS = st.dictionaries(st.sampled_from(["auto", "fm", "q", "w"]), PARAM_VALUES, max_size=4)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(have=PARAM_MAPS)
# Found by Python 3.10's draw: maps sharing few keys were one change of the whole map.
@example(have={"fm": "format", "q": 1, "w": "format"})
def test_key_by_key_changes_are_exactly_the_keys_that_differ(have: dict[str, Any]) -> None:
    want = {"auto": "format", "q": 1}
    spec = s3_spec(default_params=want)
    live = live_of(spec, deployment={"default_params": have})
    # A value is compared by its text in an image URL: the listed "1" is the file's 1.
    differing = sorted(
        key
        for key in {*have, *want}
        if key not in have or key not in want or param_text(have[key]) != param_text(want[key])
    )
    actions = plan(desired(spec), [live], OPTIONS).actions
    changed = [
        c.path.removeprefix("deployment.default_params.") for a in actions for c in a.changes
    ]
    assert changed == differing


def test_ignore_changes_excludes_the_paths() -> None:
    spec = s3_spec(ignore_changes=["deployment.default_params", "name"])
    live = live_of(spec).model_copy(update={"name": "Dashboard name"})
    live = live.model_copy(update={"deployment": {**live.deployment, "default_params": {"w": 9}}})
    assert plan(desired(spec), [live], OPTIONS).actions == []


@pytest.mark.parametrize("text", ["Managed in git\n", "note ", "   ", ""])
def test_a_declared_annotation_in_any_spacing_is_in_sync_once_written(text: str) -> None:
    # A YAML block scalar ends in a newline; the marker's space must not eat it, and an
    # empty text is the marker alone: otherwise every plan rewrites the annotation.
    spec = s3_spec(annotation=text)
    assert plan(desired(spec), [live_of(spec)], OPTIONS).actions == []
    live = live_of(spec, deployment={"annotation": "New deployment created by jane"})
    assert only(plan(desired(spec), [live], OPTIONS)).changes == [
        Change(path="deployment.annotation", before="New deployment created by jane", after=text)
    ]


def test_undeclared_annotation_is_not_compared() -> None:
    live = live_of(s3_spec())
    annotation = str(live.deployment["annotation"]).replace("[", "Edited by hand [", 1)
    live = live.model_copy(update={"deployment": {**live.deployment, "annotation": annotation}})
    assert plan(desired(s3_spec()), [live], OPTIONS).actions == []


def test_declared_annotation_is_compared_by_its_text() -> None:
    live = live_of(s3_spec(annotation="old words"))
    action = only(plan(desired(s3_spec(annotation="new words")), [live], OPTIONS))
    assert action.changes == [
        Change(path="deployment.annotation", before="old words", after="new words")
    ]
    written = as_sent(action, 0)["deployment"]["annotation"]  # type: ignore[index,call-overload]
    assert parse_annotation(str(written)).text == "new words"
    assert (
        parse_annotation(str(written)).marker
        == parse_annotation(str(live.deployment["annotation"])).marker
    )


# --------------------------------------------------------------------------- patches


def test_location_change_resends_the_whole_credential_set() -> None:
    live = live_of(s3_spec())
    action = only(plan(desired(s3_spec(s3_bucket="new-bucket")), [live], OPTIONS))
    deployment = as_sent(action, 0)["deployment"]
    assert isinstance(deployment, dict)
    assert deployment["s3_bucket"] == "new-bucket"
    assert deployment["s3_access_key"] == "AKIAEXAMPLE"
    assert deployment["s3_secret_key"] == {"secret": {"env": "S3_SECRET_KEY"}}
    assert (
        Change(path="deployment.s3_secret_key", before=WRITE_ONLY, after=WILL_BE_SENT)
        in action.changes
    )


def test_rotated_secret_becomes_a_patch_that_resends_it() -> None:
    live = live_of(s3_spec(secret="before-rotation"))
    action = only(plan(desired(s3_spec(secret="after-rotation")), [live], OPTIONS))
    assert action.changes == [
        Change(path="deployment.s3_secret_key", before=WRITE_ONLY, after=WILL_BE_SENT)
    ]
    deployment = as_sent(action, 0)["deployment"]
    assert isinstance(deployment, dict)
    marker = parse_annotation(str(deployment["annotation"])).marker
    assert marker == Marker({"s3_secret_key": fingerprint(KEY, "s3_secret_key", "after-rotation")})


def test_resend_secrets_option_sends_unchanged_secrets() -> None:
    live = live_of(s3_spec())
    options = PlanOptions(fingerprint_key=KEY, resend_secrets=True)
    assert paths(only(plan(desired(s3_spec()), [live], options))) == ["deployment.s3_secret_key"]


def test_resend_secrets_and_adoption_leave_an_ignored_secret_alone() -> None:
    # `ignore_changes: [deployment.s3_secret_key]`: the secret is rotated elsewhere once the
    # source exists, and neither option may write the file's value over it.
    spec = s3_spec(ignore_changes=["deployment.s3_secret_key"])
    resending = PlanOptions(fingerprint_key=KEY, resend_secrets=True)
    assert plan(desired(spec), [live_of(spec)], resending).actions == []
    unmarked = live_of(spec, deployment={"annotation": "New deployment created by jane"})
    adopting = PlanOptions(fingerprint_key=KEY, adopt=True)
    action = only(plan(desired(spec), [unmarked], adopting))
    assert paths(action) == ["deployment.annotation"]
    deployment = as_sent(action, 0)["deployment"]
    assert isinstance(deployment, dict) and "s3_secret_key" not in deployment


def test_other_fingerprint_key_resends_every_secret_once() -> None:
    live = live_of(s3_spec())
    options = PlanOptions(fingerprint_key=b"rotated api key")
    assert paths(only(plan(desired(s3_spec()), [live], options))) == ["deployment.s3_secret_key"]


def test_unresolved_secrets_give_a_cannot_compare_notice_not_a_failure() -> None:
    live = live_of(s3_spec())
    result = plan(desired(s3_spec(secret=None)), [live], OPTIONS)
    assert result.actions == []
    (notice,) = result.notices
    assert notice.kind == "cannot_compare" and "s3_secret_key" in notice.detail


def test_sources_without_marker_are_one_adoption_notice_not_one_each() -> None:
    unmarked = [
        live_of(s3_spec(f"S{n}", (f"s{n}",)), f"{n:024x}", deployment={"annotation": "by jane"})
        for n in range(200)
    ]
    specs = desired(*(s3_spec(f"S{n}", (f"s{n}",)) for n in range(200)))
    result = plan(specs, unmarked, OPTIONS)
    assert result.actions == [] and result.notices == []
    adoption = result.adoption
    assert adoption is not None and not adoption.planned
    assert (adoption.count, adoption.updates, adoption.hours) == (200, 200, 4)
    assert [s.name for s in adoption.sources[:2]] == ["S0", "S1"]
    assert "200 sources without an imgix-reconciler marker" in adoption.detail
    assert "`apply --adopt`" in adoption.detail and "200 updates, 4 hours" in adoption.detail
    faster = plan(specs, unmarked, PlanOptions(fingerprint_key=KEY, updates_per_hour=100))
    assert faster.adoption is not None and faster.adoption.hours == 2


def test_adopting_sends_the_secrets_and_writes_the_marker() -> None:
    live = live_of(s3_spec(), deployment={"annotation": "New deployment created by jane"})
    options = PlanOptions(fingerprint_key=KEY, adopt=True)
    result = plan(desired(s3_spec()), [live], options)
    action = only(result)
    assert action.changes == [
        Change(
            path="deployment.annotation",
            before="New deployment created by jane",
            after=MARKER_WRITTEN,
        ),
        Change(path="deployment.s3_secret_key", before=WRITE_ONLY, after=WILL_BE_SENT),
    ]
    deployment = as_sent(action, 0)["deployment"]
    assert isinstance(deployment, dict)
    assert deployment["s3_secret_key"] == {"secret": {"env": "S3_SECRET_KEY"}}
    marker = parse_annotation(str(deployment["annotation"])).marker
    assert marker == Marker({"s3_secret_key": fingerprint(KEY, "s3_secret_key", S3_SECRET)})
    assert result.adoption is not None and result.adoption.planned
    assert "adopting 1 source:" in result.adoption.detail
    assert "(1 update, 1 hour of the budget of 60 updates per hour)" in result.adoption.detail
    adopted = live.model_copy(
        update={"deployment": {**live.deployment, "annotation": deployment["annotation"]}}
    )
    assert plan(desired(s3_spec()), [adopted], OPTIONS).adoption is None


def test_a_secret_never_sent_behind_a_marker_still_needs_adoption() -> None:
    unknown = compose_annotation(None, Marker({"s3_secret_key": "unknown"}))
    live = live_of(s3_spec(), deployment={"annotation": unknown})
    result = plan(desired(s3_spec()), [live], OPTIONS)
    assert result.adoption is not None and result.adoption.count == 1


def test_adopting_a_web_folder_costs_the_recording_of_its_encrypted_password() -> None:
    spec = webfolder_spec(
        "Blog", ("acme-blog",), password=SecretRef("env", "BLOG_PASSWORD", "hunter22")
    )
    live = live_of(spec, deployment={"annotation": None, "password_encrypted": "x"})
    adoption = plan(desired(spec), [live], OPTIONS).adoption
    assert adoption is not None and adoption.updates == 2
    disabled = live.model_copy(update={"enabled": False})
    spec_disabled = {**spec, "enabled": False}
    # Enabled to be written (and its password recorded), then disabled again.
    adoption = plan(desired(spec_disabled), [disabled], OPTIONS).adoption
    assert adoption is not None and adoption.updates == 3


def test_a_web_password_changed_outside_is_sent_again_with_a_notice() -> None:
    spec = webfolder_spec("Blog", ("acme-blog",), password=BLOG_PASSWORD)
    live = live_of(spec)
    recorded = parse_annotation(str(live.deployment["annotation"])).marker
    assert recorded is not None
    marker = replace(recorded, encrypted={"password": encrypted_digest("ciphertext-1")})
    annotation = compose_annotation(None, marker)
    as_recorded = {"annotation": annotation, "password_encrypted": "ciphertext-1"}
    assert plan(desired(spec), [live_of(spec, deployment=as_recorded)], OPTIONS).actions == []
    changed = live_of(spec, deployment={**as_recorded, "password_encrypted": "ciphertext-2"})
    result = plan(desired(spec), [changed], OPTIONS)
    assert paths(only(result)) == ["deployment.password"]
    (notice,) = result.notices
    assert (notice.kind, notice.source, notice.id) == ("encrypted_changed", "Blog", ID_A)
    assert notice.detail.startswith("password changed outside imgix-reconciler")


def test_a_web_password_the_file_no_longer_declares_is_cleared() -> None:
    spec = webfolder_spec("Blog", ("acme-blog",))
    live = live_of(spec, deployment={"password_encrypted": "ciphertext-1"})
    action = only(plan(desired(spec), [live], OPTIONS))
    assert action.changes == [Change(path="deployment.password", before=WRITE_ONLY, after=None)]
    deployment = action.writes[0]["deployment"]
    assert isinstance(deployment, dict) and deployment["password"] is None
    ignored = webfolder_spec("Blog", ("acme-blog",), ignore_changes=["deployment.password"])
    assert plan(desired(ignored), [live], OPTIONS).actions == []


def test_a_create_on_the_origin_of_an_unmanaged_source_suggests_pinning_its_id() -> None:
    old = live_of(s3_spec("Products (old)", ("acme-old",)), ID_B)
    other = live_of(s3_spec("Other", ("acme-other",), s3_bucket="elsewhere"), ID_C)
    result = plan(desired(s3_spec("Products", ("acme-new",))), [old, other], OPTIONS)
    assert only(result).action == "create"
    (notice,) = result.notices
    assert notice.kind == "possible_rename" and notice.source == "Products"
    assert f'"Products (old)" ({ID_B})' in notice.detail
    assert f"`id: {ID_B}`" in notice.detail and "type and s3_bucket" in notice.detail
    # A managed source on the same origin is not a candidate.
    both = desired(s3_spec("Products", ("acme-new",)), s3_spec("Products (old)", ("acme-old",)))
    assert plan(both, [old], OPTIONS).notices == []
    # A listing without the name: the id alone, not `""` nor `"None"`.
    unnamed = old.model_copy(update={"name": None})
    (notice,) = plan(desired(s3_spec("Products", ("acme-new",))), [unnamed], OPTIONS).notices
    assert f"the unmanaged live source ({ID_B}): " in notice.detail


def test_web_proxies_have_no_origin_to_compare() -> None:
    proxy = {"name": "P", "deployment": {"type": "webproxy", "imgix_subdomains": ["acme-p"]}}
    live = live_of({**proxy, "name": "Q"}, ID_B)
    live = live.model_copy(update={"deployment": {**live.deployment, "imgix_subdomains": ["q"]}})
    assert plan(desired(proxy), [live], OPTIONS).notices == []


def test_type_change_sends_the_whole_new_deployment() -> None:
    live = live_of(webfolder_spec("Blog", ("acme-blog",)))
    spec = s3_spec("Blog", ("acme-blog",))
    action = only(plan(desired(spec), [live], OPTIONS))
    assert action.changes[0] == Change(path="deployment.type", before="webfolder", after="s3")
    deployment = as_sent(action, 0)["deployment"]
    assert isinstance(deployment, dict)
    for required in ("type", "s3_access_key", "s3_bucket", "s3_secret_key", "cache_ttl_value"):
        assert required in deployment


def test_disabling_a_live_source_is_destructive() -> None:
    live = live_of(s3_spec())
    action = only(plan(desired(s3_spec(enabled=False)), [live], OPTIONS))
    assert action.destructive
    assert action.changes == [Change(path="enabled", before=True, after=False)]
    assert action.writes == [{"enabled": False}]


def test_disabling_with_other_changes_writes_them_first() -> None:
    live = live_of(s3_spec())
    action = only(plan(desired(s3_spec(enabled=False, cache_ttl_value=1800)), [live], OPTIONS))
    assert action.destructive
    assert [set(w) for w in action.writes] == [{"deployment"}, {"enabled"}]
    assert action.writes[-1] == {"enabled": False}


def test_disabled_source_that_must_change_is_enabled_then_disabled_again() -> None:
    spec = s3_spec(enabled=False)
    live = live_of(spec, enabled=False)
    action = only(plan(desired(s3_spec(enabled=False, cache_ttl_value=1800)), [live], OPTIONS))
    assert not action.destructive
    assert action.writes[0]["enabled"] is True and "deployment" in action.writes[0]
    assert [set(w) for w in action.writes[1:]] == [{"enabled", "deployment"}]
    assert action.writes[1]["enabled"] is False
    assert "enabled" not in paths(action)


def _marker_of(write: dict[str, Any]) -> Marker | None:
    return parse_annotation(write["deployment"]["annotation"]).marker


def test_the_enabling_write_records_the_pending_disable_and_the_disabling_write_clears_it() -> None:
    live = live_of(s3_spec(enabled=False), enabled=False)
    action = only(plan(desired(s3_spec(enabled=False, cache_ttl_value=1800)), [live], OPTIONS))

    enabling, disabling = (_marker_of(as_sent(action, index)) for index in range(2))

    assert enabling is not None and enabling.pending_disable
    assert disabling is not None and not disabling.pending_disable
    assert disabling.fingerprints == enabling.fingerprints


def test_every_write_of_a_patch_sends_a_referenced_annotation_as_its_reference() -> None:
    # The text read through the reference must reach neither write (nor the plan file); an
    # ignored annotation keeps the live text in both instead of the file's reference.
    text = "annotation-from-a-reference"
    note = SecretRef("env", "NOTE", text)
    live = live_of(s3_spec(enabled=False, annotation="old note"), enabled=False)
    wanted = s3_spec(enabled=False, cache_ttl_value=1800, annotation=text)

    result = plan(referenced(desired(wanted), annotation=note), [live], OPTIONS)
    action = only(result)

    assert len(action.writes) == 2 and text not in result.to_json()
    for write in action.writes:
        assert write["deployment"]["annotation"] == {"reference": {"env": "NOTE"}}  # type: ignore[call-overload,index]

    ignoring = {**wanted, "ignore_changes": ["deployment.annotation"]}
    kept = only(plan(referenced(desired(ignoring), annotation=note), [live], OPTIONS))
    assert [w["deployment"]["annotation"] for w in kept.writes] == ["old note"] * 2  # type: ignore[call-overload,index]

    # The same for the single write of an enabled source.
    live = live_of(s3_spec(annotation="old note"))
    wanted = s3_spec(cache_ttl_value=1800, annotation=text)
    result = plan(referenced(desired(wanted), annotation=note), [live], OPTIONS)
    (write,) = only(result).writes
    assert write["deployment"]["annotation"] == {"reference": {"env": "NOTE"}}  # type: ignore[call-overload,index]
    assert text not in result.to_json()
    ignoring = {**wanted, "ignore_changes": ["deployment.annotation"]}
    (write,) = only(plan(referenced(desired(ignoring), annotation=note), [live], OPTIONS)).writes
    assert write["deployment"]["annotation"] == "old note"  # type: ignore[call-overload,index]


def test_a_source_left_enabled_by_a_killed_apply_is_disabled_without_allow_disable() -> None:
    live = live_of(s3_spec(enabled=False), enabled=False)
    killed = only(plan(desired(s3_spec(enabled=False, cache_ttl_value=1800)), [live], OPTIONS))
    # What the API holds after the enabling write, the disabling one never sent.
    enabled_live = live_of(s3_spec(cache_ttl_value=1800), enabled=True)
    annotation = as_sent(killed, 0)["deployment"]["annotation"]  # type: ignore[call-overload,index]
    enabled_live = enabled_live.model_copy(
        update={"deployment": {**enabled_live.deployment, "annotation": annotation}}
    )

    wanted = s3_spec(enabled=False, cache_ttl_value=1800, mode="protect")
    action = only(plan(desired(wanted), [enabled_live], OPTIONS))

    assert not action.destructive
    # Finishing the tool's own enabling is no disable: a protected source allows it too.
    assert "disables" not in action.risks and not action.refused_as_protected
    assert action.writes[-1]["enabled"] is False
    marker = _marker_of(as_sent(action, -1))
    assert marker is not None and not marker.pending_disable


def test_an_enabled_source_the_file_disables_stays_destructive_without_the_record() -> None:
    live = live_of(s3_spec(), enabled=True)
    action = only(plan(desired(s3_spec(enabled=False)), [live], OPTIONS))
    assert action.destructive


def test_a_marker_spelled_in_the_files_annotation_records_nothing() -> None:
    # The annotation of a pull request's file is untrusted: an unclosed marker in its text
    # must not be read as the reconciler's record of a pending disable (or an owner).
    text = "Managed [imgix-reconciler v1 pending.enabled=false owner.name=mallory"
    live = live_of(s3_spec(annotation=text), enabled=True)
    assert live.annotation.text == text
    assert plan(desired(s3_spec(annotation=text)), [live], OPTIONS).actions == []
    disabling = plan(desired(s3_spec(enabled=False, annotation=text)), [live], OPTIONS)
    assert not disabling.owned_elsewhere  # was: owned by "mallory", never written
    assert only(disabling).destructive  # was: not, so no --allow-disable asked for
    assert "disables" in only(disabling).risks


def test_enabling_a_disabled_source_carries_the_changes_in_one_write() -> None:
    live = live_of(s3_spec(), enabled=False)
    action = only(plan(desired(s3_spec(name="Renamed")), [live], OPTIONS))
    assert action.writes == [{"enabled": True, "name": "Renamed"}]
    assert not action.destructive


def test_unchanged_disabled_source_is_left_alone() -> None:
    spec = s3_spec(enabled=False)
    assert plan(desired(spec), [live_of(spec, enabled=False)], OPTIONS).actions == []


# A listing that does not say whether a source is enabled (omitted or null): unknown.
def _enabled_unknown(live: LiveSource) -> LiveSource:
    return live.model_copy(update={"enabled": None})


def test_enabled_a_listing_omits_is_no_difference_when_the_file_is_silent() -> None:
    live = _enabled_unknown(live_of(s3_spec()))
    assert plan(desired(s3_spec()), [live], OPTIONS).actions == []
    ignoring = s3_spec(enabled=False, ignore_changes=["enabled"])
    assert plan(desired(ignoring), [live], OPTIONS).actions == []


def test_enabled_a_listing_omits_is_written_when_the_file_states_it() -> None:
    live = _enabled_unknown(live_of(s3_spec()))
    action = only(plan(desired(s3_spec(enabled=True)), [live], OPTIONS))
    assert action.changes == [Change(path="enabled", before=NOT_RETURNED, after=True)]
    assert action.writes == [{"enabled": True}]
    assert not action.destructive and not action.risks


def test_disabling_a_source_whose_enabled_is_unknown_is_a_disable() -> None:
    # It may be serving images: --allow-disable and the blast radius count it.
    live = _enabled_unknown(live_of(s3_spec()))
    action = only(plan(desired(s3_spec(enabled=False)), [live], OPTIONS))
    assert action.changes == [Change(path="enabled", before=NOT_RETURNED, after=False)]
    assert action.writes == [{"enabled": False}]
    assert action.destructive and "disables" in action.risks


def test_a_change_to_a_source_whose_enabled_is_unknown_says_enabled_true() -> None:
    # A disabled source refuses a change unless the write also enables it; the file
    # (silent: enabled) wants it enabled, and the plan shows it.
    live = _enabled_unknown(live_of(s3_spec()))
    action = only(plan(desired(s3_spec(cache_ttl_value=1800)), [live], OPTIONS))
    assert Change(path="enabled", before=NOT_RETURNED, after=True) in action.changes
    (write,) = action.writes
    assert write["enabled"] is True and "deployment" in write
    # Ignored: never written, whatever it is.
    ignoring = s3_spec(cache_ttl_value=1800, ignore_changes=["enabled"])
    kept = only(plan(desired(ignoring), [live], OPTIONS))
    (write,) = kept.writes
    assert "enabled" not in write and "enabled" not in paths(kept)


def test_a_change_to_a_source_the_file_disables_and_whose_enabled_is_unknown() -> None:
    # Enabled for the change (recording the pending disable), then disabled: right
    # whether it was enabled or disabled, and counted as a disable.
    live = _enabled_unknown(live_of(s3_spec()))
    action = only(plan(desired(s3_spec(enabled=False, cache_ttl_value=1800)), [live], OPTIONS))
    assert [w["enabled"] for w in action.writes] == [True, False]
    enabling, disabling = (_marker_of(as_sent(action, index)) for index in range(2))
    assert enabling is not None and enabling.pending_disable
    assert disabling is not None and not disabling.pending_disable
    assert action.destructive and "disables" in action.risks


def test_a_name_a_listing_omits_is_written_and_shown_as_not_returned() -> None:
    # Was: read as "", so the plan showed a rename from "" (a name the source never had).
    live = live_of(s3_spec()).model_copy(update={"name": None})
    action = only(plan(desired(s3_spec()), [live], OPTIONS))
    assert action.changes == [Change(path="name", before=NOT_RETURNED, after="Product images")]
    assert action.writes == [{"name": "Product images"}]


def test_an_unmanaged_source_whose_listing_omits_its_name_is_listed_with_the_marker() -> None:
    stray = live_of(s3_spec(), "c" * 24).model_copy(update={"name": None})
    named = live_of(s3_spec(name="Zoo"), "d" * 24)
    result = plan(desired(), [named, stray], OPTIONS)
    assert [(u.id, u.name) for u in result.unmanaged] == [
        ("c" * 24, NOT_RETURNED),
        ("d" * 24, "Zoo"),
    ]


@pytest.mark.parametrize("enabled", [True, False])
def test_apply_converges_on_sources_whose_listing_omits_enabled(enabled: bool) -> None:
    # Was: read as enabled, so a change to a disabled source was sent without
    # `enabled: true` and refused (400), and a disabled one the file leaves silent stayed so.
    store = SourceStore(
        limits=RateLimits(per_second=None, creates_per_hour=None, updates_per_hour=None),
        deploy_delay=0,
        omitted=frozenset({"enabled"}),
    )
    spec = s3_spec(enabled=enabled)
    deployment = {k: v for k, v in spec["deployment"].items() if k != "s3_secret_key"}
    created = store.create_source(
        {
            "name": spec["name"],
            "enabled": False,
            "deployment": {**deployment, "s3_secret_key": S3_SECRET},
        }
    )
    wanted = desired({**spec, "deployment": {**spec["deployment"], "cache_ttl_value": 1800}})
    environ = {"S3_SECRET_KEY": S3_SECRET}

    async def run() -> tuple[Plan, Any]:
        async with _client(store) as client:
            first = plan(wanted, await client.list_sources(), OPTIONS)
            report = await apply_plan(
                first, client, resolver=SecretResolver(environ), permissions=RAILS_LIFTED
            )
            return first, report

    first, report = asyncio.run(run())
    assert report.ok, report.failed
    stored = store.sources[created["id"]]
    assert stored.enabled is enabled
    assert stored.deployment["cache_ttl_value"] == 1800
    assert only(first).destructive is not enabled


def test_patch_records_the_live_fingerprint() -> None:
    live = live_of(s3_spec(), deployment={"cache_ttl_value": 86400})
    assert only(plan(desired(s3_spec()), [live], OPTIONS)).live_fingerprint == live.fingerprint()


# --------------------------------------------------------------------------- ordering


def test_moving_a_subdomain_orders_the_release_before_the_claim() -> None:
    old = live_of(s3_spec("Old", ("shared", "old-only")), ID_A)
    new = live_of(s3_spec("New", ("new-only",)), ID_B)
    specs = desired(
        s3_spec("Old", ("old-only",), id=ID_A),
        s3_spec("New", ("new-only", "shared"), id=ID_B),
    )
    result = plan(specs, [new, old], OPTIONS)
    assert [a.source for a in result.actions] == ["Old", "New"]
    assert result.actions[1].depends_on == [ID_A]


def test_a_new_source_claiming_a_released_subdomain_waits_for_the_release() -> None:
    old = live_of(s3_spec("Old", ("shared", "keep")), ID_A)
    specs = desired(s3_spec("Old", ("keep",), id=ID_A), s3_spec("Aaa new", ("shared",)))
    result = plan(specs, [old], OPTIONS)
    assert [(a.action, a.source) for a in result.actions] == [
        ("patch", "Old"),
        ("create", "Aaa new"),
    ]
    assert result.actions[1].depends_on == [ID_A]


def test_swapping_subdomains_is_a_cycle_that_explains_itself() -> None:
    first = live_of(s3_spec("First", ("x",)), ID_A)
    second = live_of(s3_spec("Second", ("y",)), ID_B)
    specs = desired(s3_spec("First", ("y",), id=ID_A), s3_spec("Second", ("x",), id=ID_B))
    with pytest.raises(PlanError, match="cycle") as info:
        plan(specs, [first, second], OPTIONS)
    message = str(info.value)
    assert '"First" claims y from "Second"' in message
    assert '"Second" claims x from "First"' in message
    assert info.value.spec_indices == (0, 1)


def test_a_cycle_names_only_its_own_moves_not_those_waiting_on_it() -> None:
    # "Tail" waits for "First", which is in the cycle but is not in it itself.
    listed = [
        live_of(s3_spec("Tail", ("t",)), ID_A),
        live_of(s3_spec("First", ("x", "z")), ID_B),
        live_of(s3_spec("Second", ("y",)), ID_C),
    ]
    specs = desired(
        s3_spec("Tail", ("t", "z"), id=ID_A),
        s3_spec("First", ("y",), id=ID_B),
        s3_spec("Second", ("x",), id=ID_C),
    )
    with pytest.raises(PlanError, match="cycle") as info:
        plan(specs, listed, OPTIONS)
    message = str(info.value)
    assert message.startswith(
        'hostname moves form a cycle: "First" claims y from "Second"; '
        '"Second" claims x from "First". '
    )
    assert "Tail" not in message and info.value.spec_indices == (1, 2)
    assert message.endswith(
        ". No order of writes can apply them: move one hostname to a temporary name first, "
        "apply, then finish the move."
    )


def test_a_chain_of_moves_is_ordered_release_by_release() -> None:
    # Each claims what the next releases: the writes run backwards along the chain.
    listed = [
        live_of(s3_spec("A", ("a",)), ID_A),
        live_of(s3_spec("B", ("b",)), ID_B),
        live_of(s3_spec("C", ("c",)), ID_C),
    ]
    specs = desired(
        s3_spec("A", ("b",), id=ID_A), s3_spec("B", ("c",), id=ID_B), s3_spec("C", ("d",), id=ID_C)
    )
    result = plan(specs, listed, OPTIONS)
    assert [(a.source, a.depends_on) for a in result.actions] == [
        ("C", []),
        ("B", [ID_C]),
        ("A", [ID_B]),
    ]


def test_a_claim_of_two_released_hostnames_waits_for_both_releases() -> None:
    # Listed before its releasers and first by name: only both releases make it ready.
    listed = [
        live_of(s3_spec("Claimer", ("c",)), ID_A),
        live_of(s3_spec("P release", ("p", "p-kept")), ID_B),
        live_of(s3_spec("Q release", ("q", "q-kept")), ID_C),
    ]
    specs = desired(
        s3_spec("Claimer", ("c", "p", "q"), id=ID_A),
        s3_spec("P release", ("p-kept",), id=ID_B),
        s3_spec("Q release", ("q-kept",), id=ID_C),
    )
    result = plan(specs, listed, OPTIONS)
    assert [(a.source, a.depends_on) for a in result.actions] == [
        ("P release", []),
        ("Q release", []),
        ("Claimer", [ID_B, ID_C]),
    ]


def test_ready_actions_of_a_plan_with_claims_run_creates_first_then_by_name() -> None:
    # Listed out of order: the ready ones are taken in order all the same, at each step.
    listed = [
        live_of(s3_spec("Zed", ("z",)), ID_A),
        live_of(s3_spec("Old", ("shared", "keep")), ID_B),
        live_of(s3_spec("Abe", ("a",)), ID_C),
    ]
    specs = desired(
        s3_spec("Zed", ("z",), id=ID_A, cache_ttl_value=3600),
        s3_spec("Old", ("keep",), id=ID_B),
        s3_spec("Abe", ("a",), id=ID_C, cache_ttl_value=3600),
        s3_spec("New", ("shared",)),
        s3_spec("Fresh", ("fresh",)),
    )
    result = plan(specs, listed, OPTIONS)
    assert [(a.action, a.source) for a in result.actions] == [
        ("create", "Fresh"),
        ("patch", "Abe"),
        ("patch", "Old"),
        ("create", "New"),  # ready once "Old" released: a create, so before "Zed"
        ("patch", "Zed"),
    ]


def test_a_hostname_field_ignored_keeps_the_live_hostnames_from_any_claim() -> None:
    kept = live_of(s3_spec("Kept", ("k",)), ID_A, deployment={"custom_domains": ["img.example"]})
    specs = desired(
        s3_spec("Kept", ("k",), id=ID_A, ignore_changes=["deployment.custom_domains"]),
        s3_spec("Claimer", ("c",), custom_domains=["img.example"]),
    )
    with pytest.raises(
        PlanError, match=r'"Claimer" claims img.example, which "Kept" keeps$'
    ) as info:
        plan(specs, [kept], OPTIONS)
    assert info.value.spec_indices == (1, 0)


def test_claiming_a_hostname_of_an_unmanaged_source_is_an_error() -> None:
    holder = live_of(s3_spec("Someone else", ("taken",)), ID_B)
    mine = live_of(s3_spec("Mine", ("mine",)), ID_A)
    specs = desired(s3_spec("Mine", ("mine",), id=ID_A, custom_domains=["img.taken.example"]))
    holder = holder.model_copy(
        update={"deployment": {**holder.deployment, "custom_domains": ["img.taken.example"]}}
    )
    with pytest.raises(PlanError, match=r'"Mine" claims img.taken.example.*"Someone else"') as info:
        plan(specs, [mine, holder], OPTIONS)
    assert info.value.spec_indices == (0,)


def test_a_hostname_listed_as_subdomain_and_as_domain_belongs_to_the_first_listed() -> None:
    # The listing is untrusted: two live sources may list one name in different fields.
    mine = live_of(s3_spec("Mine", ("mine",)), ID_A)
    as_subdomain = LiveSource(
        id=ID_B,
        name="Listed first",
        deployment={"type": "s3", "imgix_subdomains": ["img.x.example"]},
    )
    as_domain = LiveSource(
        id=ID_C,
        name="Listed second",
        deployment={"type": "s3", "imgix_subdomains": ["c"], "custom_domains": ["img.x.example"]},
    )
    specs = desired(s3_spec("Mine", ("mine",), id=ID_A, custom_domains=["img.x.example"]))
    for listed, holder in (
        ([as_subdomain, as_domain], "first"),
        ([as_domain, as_subdomain], "second"),
    ):
        with pytest.raises(PlanError, match=rf'belongs to live source "Listed {holder}"'):
            plan(specs, [mine, *listed], OPTIONS)


def test_claim_waiting_for_an_untargeted_release_asks_to_target_it() -> None:
    old = live_of(s3_spec("Old", ("shared", "keep")), ID_A)
    specs = desired(s3_spec("Old", ("keep",), id=ID_A), s3_spec("New", ("shared",)))
    options = PlanOptions(fingerprint_key=KEY, targets=frozenset({"New"}))
    with pytest.raises(PlanError, match='add --target "Old"') as info:
        plan(specs, [old], options)
    assert info.value.spec_indices == (1, 0)


def test_actions_sort_creates_then_patches_then_by_name() -> None:
    lives = [live_of(s3_spec("Zed", ("z",)), ID_A), live_of(s3_spec("Abe", ("a",)), ID_B)]
    specs = desired(
        s3_spec("Zed", ("z",), cache_ttl_value=1800),
        s3_spec("New two", ("n2",)),
        s3_spec("Abe", ("a",), cache_ttl_value=1800),
        s3_spec("New one", ("n1",)),
    )
    result = plan(specs, lives, OPTIONS)
    assert [(a.action, a.source) for a in result.actions] == [
        ("create", "New one"),
        ("create", "New two"),
        ("patch", "Abe"),
        ("patch", "Zed"),
    ]


# --------------------------------------------------------------------------- targets, digest


def test_targets_limit_the_plan_but_unmanaged_stays_complete() -> None:
    lives = [live_of(s3_spec("A", ("a",)), ID_A), live_of(s3_spec("Stray", ("s",)), ID_C)]
    specs = desired(s3_spec("A", ("a",), cache_ttl_value=1800), s3_spec("B", ("b",)))
    options = PlanOptions(fingerprint_key=KEY, targets=frozenset({"B"}))
    result = plan(specs, lives, options)
    assert [a.source for a in result.actions] == ["B"]
    assert [u.name for u in result.unmanaged] == ["Stray"]


def test_unknown_target_is_an_error() -> None:
    options = PlanOptions(fingerprint_key=KEY, targets=frozenset({"Nope"}))
    with pytest.raises(PlanError, match='"Nope"') as info:
        plan(desired(s3_spec()), [], options)
    assert "did you mean" not in str(info.value)  # nothing close to suggest


def test_a_mistyped_target_suggests_the_closest_source_name() -> None:
    options = PlanOptions(fingerprint_key=KEY, targets=frozenset({"Blgo", "Nope"}))
    with pytest.raises(PlanError) as info:
        plan(desired(s3_spec("Blog", ("b",)), s3_spec("Shop", ("s",))), [], options)
    assert str(info.value) == (
        '--target names no source of the file: "Blgo" (did you mean "Blog"?), "Nope"'
    )


def test_same_inputs_give_the_same_digest_whatever_the_dict_order() -> None:
    live = live_of(s3_spec(), deployment={"cache_ttl_value": 86400})
    reordered = live.model_copy(update={"deployment": dict(reversed(live.deployment.items()))})
    one = plan(desired(s3_spec(), s3_spec("New", ("n",))), [live], OPTIONS)
    two = plan(desired(s3_spec("New", ("n",)), s3_spec()), [reordered], OPTIONS)
    assert one.digest == two.digest
    assert one.digest != plan(desired(s3_spec()), [live], OPTIONS).digest


def test_digest_ignores_the_live_fingerprint() -> None:
    live = live_of(s3_spec(), deployment={"cache_ttl_value": 86400})
    other = live.model_copy(update={"date_deployed": 5, "deployment_status": "deployed"})
    touched = live.model_copy(update={"deployment": {**live.deployment, "allows_upload": True}})
    assert (
        plan(desired(s3_spec()), [other], OPTIONS).digest
        == plan(desired(s3_spec()), [touched], OPTIONS).digest
    )


def test_no_secret_value_reaches_the_plan() -> None:
    lives = [live_of(s3_spec(secret="old"), ID_A)]
    specs = desired(s3_spec(), s3_spec("New", ("n",)), s3_spec("Rotated", ("r",)))
    document = plan(specs, lives, PlanOptions(fingerprint_key=KEY, resend_secrets=True)).to_json()
    assert S3_SECRET not in document
    assert json.loads(document)["summary"]["create"] == 2


def test_marker_keeps_fingerprints_of_secrets_not_sent() -> None:
    live = live_of(s3_spec())
    annotation = str(live.deployment["annotation"])
    action = only(plan(desired(s3_spec(cache_ttl_value=1800)), [live], OPTIONS))
    written = as_sent(action, 0)["deployment"]["annotation"]  # type: ignore[index,call-overload]
    assert written == annotation
    assert compose_annotation(None, Marker()) != annotation


# --------------------------------------------------------------------------- safety rails


def state(*sources: dict[str, Any], **top: Any) -> DesiredState:
    """A desired state with top-level settings (`owner`, `safety`)."""
    return DesiredState.model_validate({"version": 1, **top, "sources": list(sources)})


def owned_live(spec: dict[str, Any], owner: str, source_id: str = ID_A) -> LiveSource:
    """The live source a write by a file of `owner` leaves behind."""
    return as_live(plan(state(spec, owner=owner), [], OPTIONS), source_id)


def test_observed_source_is_shown_but_never_planned_as_an_action() -> None:
    spec = s3_spec(mode="observe", cache_ttl_value=1800)
    result = plan(desired(spec), [live_of(s3_spec())], OPTIONS)
    assert result.actions == [] and not result.has_changes
    (observed,) = result.observed
    assert (observed.action, observed.id) == ("patch", ID_A)
    assert [c.path for c in observed.changes] == ["deployment.cache_ttl_value"]
    assert result.summary.observed == 1 and result.summary.unchanged == 0


def test_observed_source_missing_from_imgix_is_never_created() -> None:
    result = plan(desired(s3_spec(mode="observe")), [], OPTIONS)
    assert result.actions == []
    assert [o.action for o in result.observed] == ["create"]


def test_observed_source_in_sync_counts_as_unchanged() -> None:
    spec = s3_spec(mode="observe")
    result = plan(desired(spec), [live_of(s3_spec())], OPTIONS)
    assert result.observed == [] and result.summary.unchanged == 1


def test_an_observed_source_without_a_marker_is_never_to_adopt() -> None:
    spec = s3_spec(mode="observe")
    unmarked = live_of(s3_spec(), deployment={"annotation": "by jane"})
    result = plan(desired(spec), [unmarked], OPTIONS)
    assert result.summary.unchanged == 1 and result.adoption is None
    drifted = unmarked.model_copy(update={"name": "Renamed"})
    result = plan(desired(spec), [drifted], OPTIONS)
    assert len(result.observed) == 1 and result.adoption is None


def test_claiming_a_hostname_an_observed_source_holds_is_an_error() -> None:
    held = live_of(s3_spec("Held", ("shared", "held")), ID_A)
    files = desired(
        s3_spec("Held", ("held",), mode="observe", id=ID_A), s3_spec("New", ("shared",))
    )
    with pytest.raises(PlanError) as info:
        plan(files, [held], OPTIONS)
    assert str(info.value) == (
        'source "New" claims shared, which "Held" keeps (it is observed or owned elsewhere: '
        "never written)"
    )
    assert info.value.spec_indices == (1, 0)


def test_patch_risks_name_what_makes_it_risky() -> None:
    live = live_of(s3_spec(subdomains=("one", "two")))
    cases = {
        "cache": (s3_spec(subdomains=("one", "two"), cache_ttl_value=1800), []),
        "added host": (s3_spec(subdomains=("one", "two", "three")), []),
        "released": (s3_spec(subdomains=("one",)), ["releases_hostnames"]),
        "disabled": (s3_spec(subdomains=("one", "two"), enabled=False), ["disables"]),
        "bucket": (
            s3_spec(subdomains=("one", "two"), s3_bucket="elsewhere"),
            ["moves_origin", "changes_credentials"],
        ),
        "rotated": (
            s3_spec(subdomains=("one", "two"), secret="rotated"),
            ["changes_credentials"],
        ),
    }
    for case, (spec, risks) in cases.items():
        assert only(plan(desired(spec), [live], OPTIONS)).risks == risks, case


def test_web_folder_base_url_change_moves_its_origin() -> None:
    live = live_of(webfolder_spec("Blog", ("blog",)))
    moved = webfolder_spec("Blog", ("blog",), webfolder_base_url="https://other.example/")
    assert only(plan(desired(moved), [live], OPTIONS)).risks == ["moves_origin"]


def test_protected_source_marks_disable_and_origin_move_for_refusal_only() -> None:
    live = live_of(s3_spec())
    disable = only(plan(desired(s3_spec(mode="protect", enabled=False)), [live], OPTIONS))
    move = only(plan(desired(s3_spec(mode="protect", s3_bucket="b2")), [live], OPTIONS))
    tune = only(plan(desired(s3_spec(mode="protect", cache_ttl_value=1800)), [live], OPTIONS))
    assert disable.refused_as_protected == ["disables"]
    assert move.refused_as_protected == ["moves_origin"]
    assert tune.protected and tune.refused_as_protected == []
    managed = only(plan(desired(s3_spec(enabled=False)), [live], OPTIONS))
    assert managed.refused_as_protected == []


def _fleet(count: int) -> tuple[list[dict[str, Any]], list[LiveSource]]:
    specs = [s3_spec(f"S{n}", (f"host-{n}",)) for n in range(count)]
    return specs, [live_of(spec, f"{n:024x}") for n, spec in enumerate(specs)]


def test_blast_radius_counts_risky_sources_against_the_managed_ones() -> None:
    specs, live = _fleet(6)
    disabled = [{**spec, "enabled": False} for spec in specs[:2]] + specs[2:]
    radius = plan(state(*disabled), live, OPTIONS).blast_radius
    assert radius is not None
    assert (radius.risky, radius.managed, radius.exceeded) == (2, 6, False)  # below 3
    lowered = plan(state(*disabled, safety={"min_risky_count": 2}), live, OPTIONS).blast_radius
    assert lowered is not None and lowered.exceeded  # 2 of 6 > 30%
    observed = [*disabled[:2], *({**spec, "mode": "observe"} for spec in specs[2:])]
    radius = plan(state(*observed, safety={"min_risky_count": 2}), live, OPTIONS).blast_radius
    assert radius is not None and (radius.risky, radius.managed) == (2, 2)
    relaxed = state(*disabled, safety={"min_risky_count": 2, "max_risky_share": 0.5})
    radius = plan(relaxed, live, OPTIONS).blast_radius
    assert radius is not None and not radius.exceeded


def test_every_write_records_the_files_owner() -> None:
    created = only(plan(state(s3_spec(), owner="acme/infra"), [], OPTIONS))
    annotation = as_sent(created, 0)["deployment"]["annotation"]  # type: ignore[call-overload,index]
    assert parse_annotation(annotation).marker.owner == "acme/infra"  # type: ignore[union-attr]
    assert Change(path="owner", after="acme/infra") in created.changes

    unowned = live_of(s3_spec())
    assert plan(state(s3_spec(), owner="acme/infra"), [unowned], OPTIONS).actions == []
    patch = only(plan(state(s3_spec(name="New"), owner="acme/infra"), [unowned], OPTIONS))
    assert Change(path="owner", before=None, after="acme/infra") in patch.changes
    deployment = as_sent(patch, 0)["deployment"]
    assert isinstance(deployment, dict)
    assert parse_annotation(str(deployment["annotation"])).marker.owner == "acme/infra"  # type: ignore[union-attr]


def test_source_owned_elsewhere_is_never_planned_unless_taken_over() -> None:
    live = owned_live(s3_spec(), "other/repo")
    wanted = s3_spec(cache_ttl_value=1800)
    for owner in ("acme/infra", None):
        result = plan(state(wanted, owner=owner), [live], OPTIONS)
        assert result.actions == []
        assert [(o.source, o.id, o.owner) for o in result.owned_elsewhere] == [
            ("Product images", ID_A, "other/repo")
        ]
    same_owner = plan(state(wanted, owner="other/repo"), [live], OPTIONS)
    assert same_owner.owned_elsewhere == [] and len(same_owner.actions) == 1

    take_over = PlanOptions(fingerprint_key=KEY, take_over=True)
    action = only(plan(state(s3_spec(), owner="acme/infra"), [live], take_over))
    assert action.takes_over_from == "other/repo"
    assert action.changes == [Change(path="owner", before="other/repo", after="acme/infra")]
    deployment = as_sent(action, 0)["deployment"]
    assert isinstance(deployment, dict)
    assert parse_annotation(str(deployment["annotation"])).marker.owner == "acme/infra"  # type: ignore[union-attr]


def test_observing_a_source_owned_elsewhere_is_no_conflict() -> None:
    live = owned_live(s3_spec(), "other/repo")
    result = plan(state(s3_spec(mode="observe", cache_ttl_value=1800)), [live], OPTIONS)
    assert result.owned_elsewhere == [] and result.actions == []
    assert [c.path for c in result.observed[0].changes] == ["deployment.cache_ttl_value"]


# --------------------------------------------------------------------------- against the emulator


SUBDOMAINS = [f"host-{n}" for n in range(8)]
TYPES = ["s3", "gcs", "azure", "webfolder", "webproxy", "s3_compatible"]
SECRET_VALUES = ["a" * 32, "b" * 32, "c" * 32]  # 32 latin-1 characters fit every secret


def _deployment(kind: str, index: int, draw: Any, environ: dict[str, str]) -> dict[str, Any]:
    def secret(field: str) -> SecretRef:
        name = f"SECRET_{index}_{field.upper()}"
        environ[name] = draw(st.sampled_from(SECRET_VALUES))
        return SecretRef("env", name, environ[name])

    bucket = draw(st.sampled_from(["bucket-one", "bucket-two"]))
    by_type: dict[str, dict[str, Any]] = {
        "s3": {"s3_access_key": "AK", "s3_bucket": bucket, "s3_secret_key": secret("s3")},
        "gcs": {"gcs_access_key": "GK", "gcs_bucket": bucket, "gcs_secret_key": secret("gcs")},
        "azure": {
            "azure_account": "acct",
            "azure_bucket": bucket,
            "azure_sas_string": secret("sas"),
            "azure_service_type": "blob",
        },
        "webfolder": {"webfolder_base_url": f"https://{bucket}.example/"},
        "webproxy": {},
        "s3_compatible": {
            "access_key_id": "KI",
            "bucket_name": bucket,
            "endpoint_url": "https://s3.example.com",
            "region": "eu",
            "secret_key": secret("s3c"),
            "storage_provider": "Wasabi",
        },
    }
    fields = by_type[kind]
    if kind in ("webfolder", "webproxy") and draw(st.booleans()):
        fields |= {"username": "user", "password": secret("pw")}
    if kind in ("webfolder", "webproxy") and draw(st.booleans()):
        fields["request_signing_key"] = secret("sign")
    if draw(st.booleans()):
        fields["cache_ttl_value"] = draw(st.sampled_from([1800, 86400]))
    if draw(st.booleans()):
        fields["default_params"] = {"auto": draw(st.sampled_from(["format", "compress"]))}
    if draw(st.booleans()):
        fields["annotation"] = draw(st.sampled_from(["Managed in git", "Owned by team A"]))
    if draw(st.booleans()):
        robots = ["allow-all", "disallow-all"] + ([] if kind == "webproxy" else ["origin"])
        fields["robots.txt"] = draw(st.sampled_from(robots))
    return {"type": kind, **fields}


@dataclass
class _Generation:
    desired: DesiredState
    environ: dict[str, str]
    take_over: bool = False


@st.composite
def _generation(draw: Any, count: int, ids: list[str] | None) -> _Generation:
    """A desired state of `count` sources holding disjoint random subdomains."""
    hosts = draw(st.permutations(SUBDOMAINS))
    cuts = sorted(
        draw(st.lists(st.integers(1, 7), min_size=count - 1, max_size=count - 1, unique=True))
    )
    groups = [hosts[a:b] for a, b in zip([0, *cuts], [*cuts, 8], strict=True)]
    environ: dict[str, str] = {}
    sources = []
    for index in range(count):
        kind = draw(st.sampled_from(TYPES))
        source: dict[str, Any] = {
            "name": draw(st.sampled_from([f"Source {index}", f"Renamed {index}"])),
            "enabled": draw(st.sampled_from([True, False, None])),  # None: not stated
            "mode": draw(st.sampled_from(["manage", "manage", "observe", "protect"])),
            "deployment": _deployment(kind, index, draw, environ)
            | {"imgix_subdomains": list(groups[index])},
        }
        if source["enabled"] is None:
            del source["enabled"]
        if ids is not None and index < len(ids):
            source["id"] = ids[index]
            source["ignore_changes"] = draw(
                st.lists(
                    st.sampled_from(["name", "enabled", "deployment.default_params"]), unique=True
                )
            )
        sources.append(source)
    owner = draw(st.sampled_from([None, "team-a", "team-b"]))
    return _Generation(state(*sources, owner=owner), environ, draw(st.booleans()))


def _client(store: SourceStore) -> ImgixClient:
    async def no_sleep(seconds: float) -> None:
        return None

    return ImgixClient(
        api_key=EMULATOR_API_KEY,
        base_url="http://127.0.0.1",
        transport=httpx.ASGITransport(app=create_app(store)),
        pacing=Pacing(per_second=None, creates_per_hour=None, updates_per_hour=None),
        sleep=no_sleep,
    )


def _is_encrypted_recording(body: dict[str, Any]) -> bool:
    deployment = body.get("deployment")
    return (
        set(body) == {"deployment"}
        and isinstance(deployment, dict)
        and set(deployment) == {"annotation"}
        and " enc." in deployment["annotation"]
    )


def _without_records(body: dict[str, Any]) -> str:
    """A write as JSON, minus the `enc.` records: a disabling write that follows a
    recording keeps what was just recorded, which the plan could not know."""
    deployment = body.get("deployment")
    if isinstance(deployment, dict) and isinstance(deployment.get("annotation"), str):
        parsed = parse_annotation(deployment["annotation"])
        if parsed.marker is not None:
            marker = dataclasses.replace(parsed.marker, encrypted={})
            annotation = compose_annotation(parsed.text, marker)
            body = {**body, "deployment": {**deployment, "annotation": annotation}}
    return json.dumps(body, sort_keys=True)


# Every rail lifted but ownership: the property is about what the planner writes.
RAILS_LIFTED = Permissions(allow_disable=True, allow_large_change=True, allow_protected_change=True)


async def _plan_and_apply(store: SourceStore, generation: _Generation) -> tuple[Plan, Plan]:
    """Plan, apply the plan's writes, then plan again; returns both plans."""
    options = PlanOptions(fingerprint_key=KEY, take_over=generation.take_over)
    async with _client(store) as client:
        first = plan(generation.desired, await client.list_sources(), options)
        permissions = replace(RAILS_LIFTED, take_over=generation.take_over)
        resolver = SecretResolver(generation.environ)
        before = len(store.request_log)
        if first.owned_elsewhere:
            # Refused whole, before any write; the rest converges once those specs go.
            with pytest.raises(ApplyRefused, match="--take-over"):
                await apply_plan(first, client, resolver=resolver, permissions=permissions)
            assert len(store.request_log) == before
            first = first.model_copy(update={"owned_elsewhere": []})
        report = await apply_plan(
            first,
            client,
            resolver=SecretResolver(generation.environ),
            permissions=permissions,
        )
        assert report.ok, report.failed
        writes = [e for e in store.request_log[before:] if e.method in ("POST", "PATCH")]
        # Observed sources and sources owned by another file are never written.
        held = {o.id for o in first.observed} | {o.id for o in first.owned_elsewhere}
        assert not [e.path for e in writes if e.path.rsplit("/", 1)[-1] in held]
        bodies = [entry.body["data"]["attributes"] for entry in writes]
        # The applier adds one write the plan cannot spell out: recording the
        # `*_encrypted` values the API returned (an annotation-only patch).
        recordings = [b for b in bodies if _is_encrypted_recording(b)]
        sent = [_without_records(b) for b in bodies if b not in recordings]
        resolver = SecretResolver(generation.environ)
        planned = [
            _without_records(as_sent(action, index, resolver.resolve(write)))
            for action in first.actions
            for index, write in enumerate(action.writes)
        ]
        assert sorted(sent) == sorted(planned)
        assert len(recordings) <= sum(a.record_encrypted for a in first.actions)
        again = plan(generation.desired, await client.list_sources(), options)
    return first, again


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_applying_a_plan_to_the_emulator_then_planning_again_changes_nothing(
    data: st.DataObject,
) -> None:
    count = data.draw(st.integers(1, 4), label="sources")
    store = SourceStore(
        limits=RateLimits(per_second=None, creates_per_hour=None, updates_per_hour=None),
        deploy_delay=0,
        # Real listings leave out keys without a value: unknown, never a difference.
        omit_unset=data.draw(st.booleans(), label="listings omit unset keys"),
    )
    initial = data.draw(_generation(count, None), label="initial")
    asyncio.run(_plan_and_apply(store, initial))
    ids = [
        source.id
        for spec in initial.desired.sources
        for source in store.sources.values()
        if source.deployment["imgix_subdomains"][0] == spec.deployment.imgix_subdomains[0]
    ]
    redeployed = st.lists(st.sampled_from(ids), unique=True) if ids else st.just([])
    for source_id in data.draw(redeployed, label="redeployed"):
        store.dashboard_redeploy(source_id, {})
    extra = data.draw(st.integers(0, min(2, 7 - count)), label="new sources")
    changed = data.draw(_generation(count + extra, ids), label="changed")
    # Listings that never say whether a source is enabled: unknown. Left out where the file
    # states it (written on every plan then, as any key a listing omits) or ignores it (a
    # change to it is sent without `enabled: true`, refused if it is disabled: it may be
    # disabled on purpose, and the plan cannot know whether to disable it again).
    said = [
        s for s in changed.desired.sources if {"enabled"} & {*s.model_fields_set, *s.ignore_changes}
    ]
    if not said and data.draw(st.booleans(), label="listings omit enabled"):
        store.omitted = frozenset({"enabled"})
    try:
        _, again = asyncio.run(_plan_and_apply(store, changed))
    except PlanError as error:
        # No order of writes applies a cycle, and a held source keeps its hostnames.
        assume("cycle" not in str(error) and "keeps" not in str(error))
        raise
    # Observed sources are left out of the promise: their difference stays, unwritten.
    assert again.actions == [], again.to_json()
    held = len(again.observed) + len(again.owned_elsewhere)
    assert again.summary.unchanged == len(changed.desired.sources) - held


# --------------------------------------------------------------------------- references


def referenced(state: DesiredState, **references: SecretRef) -> DesiredState:
    """`state` whose first source wrote `references` as {env:} references (as the loader does)."""
    state.sources[0].deployment.attach_references(references)
    return state


def test_referenced_values_are_compared_by_value_and_shown_as_their_reference() -> None:
    bucket = "bucket-from-a-reference"
    spec = s3_spec(s3_bucket=bucket, annotation="annotation-from-a-reference")
    refs = {
        "s3_bucket": SecretRef("env", "BUCKET", bucket),
        "annotation": SecretRef("file", "note.txt", "annotation-from-a-reference", path="/r/n"),
    }
    created = plan(referenced(desired(spec), **refs), [], OPTIONS)
    action = only(created)
    assert Change(path="deployment.s3_bucket", after={"env": "BUCKET"}) in action.changes
    assert Change(path="deployment.annotation", after={"file": "note.txt"}) in action.changes
    deployment = as_sent(action, 0)["deployment"]
    assert isinstance(deployment, dict)
    assert deployment["s3_bucket"] == {"reference": {"env": "BUCKET"}}
    annotation = deployment["annotation"]
    assert isinstance(annotation, dict) and annotation["reference"] == {"file": "/r/n"}
    assert action.marker is not None
    assert action.marker.render().startswith("[imgix-reconciler v1 fp.s3_secret_key=")
    assert bucket not in created.to_json() and "annotation-from" not in created.to_json()

    live = LiveSource(
        id=ID_A,
        name="Product images",
        enabled=True,
        deployment={
            **as_live(created).deployment,
            "s3_bucket": bucket,
            "annotation": "annotation-from-a-reference " + action.marker.render(),
        },
    )
    assert plan(referenced(desired(spec), **refs), [live], OPTIONS).actions == []

    old = LiveSource(**{**live.model_dump(), "deployment": {**live.deployment, "s3_bucket": "old"}})
    patched = plan(referenced(desired(spec), **refs), [old], OPTIONS)
    patch = only(patched)
    # The patch sends the new bucket as its reference too: the applier reads it at send time.
    (write,) = patch.writes
    assert write["deployment"]["s3_bucket"] == {"reference": {"env": "BUCKET"}}  # type: ignore[call-overload,index]
    assert bucket not in patched.to_json()
    # A new bucket also re-sends the credentials, as for a bucket written in the file.
    assert paths(patch) == ["deployment.s3_bucket", "deployment.s3_secret_key"]
    assert patch.changes[0] == Change(
        path="deployment.s3_bucket", before=HIDDEN, after={"env": "BUCKET"}
    )


def test_the_digest_ignores_the_marker_inside_a_referenced_annotation() -> None:
    spec = s3_spec(annotation="annotation-from-a-reference")
    note = SecretRef("env", "NOTE", "annotation-from-a-reference")
    with_secret = plan(referenced(desired(spec), annotation=note), [], OPTIONS)
    without = plan(
        referenced(desired(s3_spec(secret=None, annotation=note.reveal())), annotation=note),
        [],
        OPTIONS,
    )
    assert with_secret.actions[0].marker != without.actions[0].marker  # fingerprints differ
    assert with_secret.digest == without.digest == compute_digest(with_secret.actions)


# --------------------------------------------------------------------------- cheap comparison

LIVE_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(0, 2),
    st.sampled_from([1.0, 300, 31536000, 31536000.0, "", "acme-products", "prefix/"]),
    st.lists(st.sampled_from(["acme-products", "acme-cdn", "img.acme.example"]), max_size=3),
    st.lists(st.one_of(st.just("acme-products"), st.integers(0, 1)), max_size=2),
    PARAM_MAPS,
)
COMPARED = ["cache_ttl_value", "imgix_subdomains", "custom_domains", "secure_url_enabled"]
COMPARED += ["default_params", "s3_prefix", "robots.txt", "s3_bucket"]


@settings(max_examples=150, deadline=None, derandomize=True)
@given(
    live_values=st.dictionaries(st.sampled_from(COMPARED), LIVE_VALUES, max_size=5),
    omitted=st.sets(st.sampled_from(COMPARED), max_size=3),
    ignored=st.sets(st.sampled_from(COMPARED), max_size=2),
)
def test_the_cheap_comparison_agrees_with_the_detailed_diff(
    live_values: dict[str, Any], omitted: set[str], ignored: set[str]
) -> None:
    # The planner builds the detailed diff only when the cheap check says a source differs:
    # the two must agree on every value a listing can hold (types strictly, hostnames as sets).
    from reconciler.planning.changes import attribute_changes
    from reconciler.planning.in_sync import attributes_in_sync
    from reconciler.specs import HOSTNAME_FIELDS

    # Both sort hostnames, so both need them as text (what the listing returns).
    hostnames = [live_values.get(name, []) for name in HOSTNAME_FIELDS]
    assume(
        all(
            v is None or (isinstance(v, list) and all(isinstance(h, str) for h in v))
            for v in hostnames
        )
    )
    paths = [f"deployment.{name}" for name in sorted(ignored)]
    spec = s3_spec(
        subdomains=("acme-products", "acme-cdn"),
        default_params={"auto": "format", "q": 1},
        cache_ttl_value=31536000,
        ignore_changes=paths,
    )
    deployment = desired(spec).sources[0].deployment
    live = live_of(spec)
    values = {k: v for k, v in {**live.deployment, **live_values}.items() if k not in omitted}
    live = live.model_copy(update={"deployment": values})
    detailed = attribute_changes(deployment.managed(), deployment, live, frozenset(paths))
    assert attributes_in_sync(deployment, live, frozenset(paths)) == (not detailed)


def _attribute_changes_one_by_one(
    deployment: Any, live: LiveSource, ignored: frozenset[str]
) -> tuple[list[Change], list[str]]:
    """The detailed diff as the rule says it, attribute by attribute: what the planner's
    `attribute_changes` (equal scalars settled at once) must give, changes and names."""
    from reconciler.planning.changes import normalized, value_changes
    from reconciler.specs import stated_fields

    changes: list[Change] = []
    names: list[str] = []
    for name, value in deployment.managed().items():
        if f"deployment.{name}" in ignored:
            continue
        if live.deployment.get(name) is None:
            # Omitted or listed as null: unknown. A change when stated, and not what an
            # omitted key may be (null, [] or {}).
            if name in stated_fields(deployment) and value not in (None, [], {}):
                path, want = f"deployment.{name}", normalized(name, value)
                before = NOT_RETURNED if name not in live.deployment else None
                changes.append(Change(path=path, before=before, after=want))
                names.append(name)
            continue
        have, want = normalized(name, live.deployment[name]), normalized(name, value)
        empty = (None, [], {})
        if not same_json(have, want) and not (have in empty and want in empty):
            differing = value_changes(name, have, want)  # none when spelled apart only
            changes += differing
            names += [name] if differing else []
    return changes, names


# Values equal in Python to the spec's (or to each other) that JSON tells apart, and lists
# in another order: what settling equal attributes at once could get wrong.
NEAR_VALUES = st.sampled_from(
    [
        *(False, 0, True, 1, 1.0, 31536000, 31536000.0, None, "", "prefix/", []),
        *(["acme-products", "acme-cdn"], ["acme-cdn", "acme-products"], ["img.acme.example"]),
        *({}, {"auto": "format", "q": 1}, {"auto": "format", "q": 1.0}),
        {"q": True, "auto": "format"},
    ]
)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    live_values=st.dictionaries(
        st.sampled_from(COMPARED), st.one_of(NEAR_VALUES, LIVE_VALUES), max_size=6
    ),
    omitted=st.sets(st.sampled_from(COMPARED), max_size=3),
    ignored=st.sets(st.sampled_from(COMPARED), max_size=2),
    stated=st.fixed_dictionaries(
        {},
        optional={
            "robots.txt": st.just("allow-all"),
            "custom_domains": st.sampled_from([[], ["img.acme.example"]]),
            "default_params": st.sampled_from([{}, {"auto": "format", "q": 1}]),
            "s3_prefix": st.just("prefix/"),
        },
    ),
)
# Equal in Python, not as JSON: a number for a flag, and inside a map.
@example({"secure_url_enabled": 0}, set(), set(), {})
@example(
    {"default_params": {"q": True, "auto": "format"}},
    set(),
    set(),
    {"default_params": {"auto": "format", "q": 1}},
)
def test_the_detailed_diff_is_the_diff_attribute_by_attribute(
    live_values: dict[str, Any], omitted: set[str], ignored: set[str], stated: dict[str, Any]
) -> None:
    from reconciler.planning.changes import attribute_changes, managed_values

    hostnames = [live_values.get(name, []) for name in ("imgix_subdomains", "custom_domains")]
    # Hostname lists are text once listed (`LiveSource` refuses others): both sort them.
    assume(
        all(
            v is None or (isinstance(v, list) and all(isinstance(h, str) for h in v))
            for v in hostnames
        )
    )
    paths = frozenset(f"deployment.{name}" for name in ignored)
    spec = s3_spec(subdomains=("acme-products", "acme-cdn"), **stated)
    deployment = desired(spec).sources[0].deployment
    live = live_of(spec)
    values = {k: v for k, v in {**live.deployment, **live_values}.items() if k not in omitted}
    live = live.model_copy(update={"deployment": values})
    changed: list[str] = []
    attributes = managed_values(deployment)
    changes = attribute_changes(attributes, deployment, live, paths, changed)
    assert (changes, changed) == _attribute_changes_one_by_one(deployment, live, paths)
    assert attributes == deployment.managed()  # the same values, read without copies


def test_hostnames_in_another_order_are_in_sync_and_a_bool_is_not_a_number() -> None:
    spec = s3_spec(subdomains=("acme-products", "acme-cdn"), secure_url_enabled=True)
    live = live_of(spec, deployment={"imgix_subdomains": ["acme-cdn", "acme-products"]})
    assert plan(desired(spec), [live], OPTIONS).summary.unchanged == 1
    live = live_of(spec, deployment={"secure_url_enabled": 1})
    assert paths(only(plan(desired(spec), [live], OPTIONS))) == ["deployment.secure_url_enabled"]


# --------------------------------------------------------------------------- cycle collector


@pytest.mark.parametrize("enabled", [True, False])
def test_planning_leaves_the_cycle_collector_as_it_found_it(enabled: bool) -> None:
    import gc

    was = gc.isenabled()
    try:
        gc.enable() if enabled else gc.disable()
        spec = s3_spec()
        plan(desired(spec), [live_of(spec)], OPTIONS)
        assert gc.isenabled() is enabled
        with pytest.raises(PlanError):
            plan(desired(s3_spec(id=ID_B)), [live_of(spec)], OPTIONS)
        assert gc.isenabled() is enabled
    finally:
        gc.enable() if was else gc.disable()


# --------------------------------------------------------------------------- settled sources

BLOG_PASSWORD = SecretRef("env", "BLOG_PASSWORD", "hunter22")
IGNORABLE = ["name", "enabled", "deployment.annotation", "deployment.cache_ttl_value"]
RARELY = st.sampled_from([False, False, False, True])


@st.composite
def _settled_or_not(draw: Any) -> tuple[DesiredState, LiveSource, PlanOptions]:
    """A spec, the source an apply of it (or of a variant) leaves, then changed a little."""
    kind = draw(st.sampled_from(["s3", "webfolder"]))
    fields: dict[str, Any] = {}
    if draw(st.booleans()):
        fields["annotation"] = "Managed in git"
    if draw(st.booleans()):
        fields["default_params"] = {"auto": "format", "q": 75}
    if draw(st.booleans()):
        fields["cache_ttl_value"] = 86400
    ignored = draw(st.lists(st.sampled_from(IGNORABLE), unique=True, max_size=2))
    top = {"enabled": draw(st.booleans()), "mode": draw(st.sampled_from(["manage", "observe"]))}
    if kind == "s3":
        spec = s3_spec(**top, **fields)
        secret = "deployment.s3_secret_key"
    else:
        password = draw(st.sampled_from([None, BLOG_PASSWORD, BLOG_PASSWORD]))
        spec = webfolder_spec("Blog", ("acme-blog",), **top, **fields)
        if password is not None:
            spec["deployment"]["password"] = password
        secret = "deployment.password"
    if draw(st.booleans()):
        ignored.append(secret)
    spec["ignore_changes"] = ignored
    owner = draw(st.sampled_from([None, "team-a"]))
    live = as_live(plan(state({**spec, "mode": "manage"}, owner=owner), [], OPTIONS))
    deployment = dict(live.deployment)
    top_changes: dict[str, Any] = {}
    if draw(st.sampled_from([False, False, True])):  # not adopted: the user's text alone
        deployment["annotation"] = fields.get("annotation")
    count = draw(st.sampled_from([0, 1, 1, 2, 3]))
    # The changes a quick check can miss (types in maps, `*_encrypted` values) weigh more.
    changes = st.sampled_from([*range(12), 4, 9, 10, 10])
    for change in draw(st.sets(changes, min_size=count, max_size=count)):
        if change == 0:
            top_changes["name"] = "Renamed in the dashboard"
        elif change == 1:
            top_changes["enabled"] = not live.enabled
        elif change == 2:
            deployment["cache_ttl_value"] = draw(st.sampled_from([1800, 86400.0, 31536000.0]))
        elif change == 3:
            deployment["secure_url_enabled"] = draw(st.sampled_from([0, True, None]))
        elif change == 4:
            deployment["default_params"] = draw(
                st.sampled_from([{}, {"auto": "format", "q": 75.0}])
            )
        elif change == 5:
            deployment.pop(draw(st.sampled_from(sorted(deployment))))
        elif change == 6:
            deployment["imgix_subdomains"] = ["acme-other", *deployment["imgix_subdomains"]]
        elif change == 7:
            deployment["annotation"] = draw(st.sampled_from([None, "by jane", "Managed in git"]))
        elif change == 8:  # another marker: unknown, rotated, another owner, a pending disable
            marker = draw(
                st.sampled_from(
                    [
                        Marker({"s3_secret_key": "unknown", "password": "unknown"}),
                        Marker({"s3_secret_key": "0" * 32, "password": "0" * 32}),
                        Marker(owner="team-b"),
                        Marker(pending_disable=True),
                    ]
                )
            )
            deployment["annotation"] = compose_annotation(fields.get("annotation"), marker)
        elif change == 9:
            deployment["password_encrypted"] = "encrypted-by-imgix"
        elif change == 10:  # a recorded `*_encrypted` value, the same or changed since
            parsed = parse_annotation(deployment.get("annotation"))
            if parsed.marker is not None:
                recorded = {"password": encrypted_digest("encrypted-by-imgix")}
                marker = replace(parsed.marker, encrypted=recorded)
                deployment["annotation"] = compose_annotation(parsed.text, marker)
                deployment["password_encrypted"] = draw(
                    st.sampled_from(["encrypted-by-imgix", "changed in the dashboard"])
                )
        else:
            deployment["extra_read_only"] = "ignored"
    live = live.model_copy(update={"deployment": deployment, **top_changes})
    if draw(st.booleans()):  # planned without the secret's value, or with another one
        name = "s3_secret_key" if kind == "s3" else "password"
        value = draw(st.sampled_from([None, "rotated-secret-value"]))
        spec["deployment"][name] = SecretRef("env", "ROTATED", value)
    options = PlanOptions(
        fingerprint_key=KEY,
        resend_secrets=draw(RARELY),
        adopt=draw(RARELY),
        take_over=draw(RARELY),
    )
    return state(spec, owner=draw(st.sampled_from([owner, "team-b"]))), live, options


@settings(max_examples=250, deadline=None, derandomize=True)
@given(case=_settled_or_not())
def test_a_source_settled_without_a_comparison_plans_as_the_full_comparison_would(
    case: tuple[DesiredState, LiveSource, PlanOptions],
) -> None:
    # Most matched sources are settled by a quick check (`quiet_verdict`); the plan must be the
    # very plan the full comparison gives, notices and adoption included.
    from unittest import mock

    from reconciler import planner

    wanted, live, options = case
    quick = plan(wanted, [live], options)
    with mock.patch.object(planner, "quiet_verdict", return_value=None), _per_source_only():
        full = plan(wanted, [live], options)
    assert quick.to_json() == full.to_json()


@settings(max_examples=150, deadline=None, derandomize=True)
@given(case=_settled_or_not())
def test_a_planned_patch_is_the_model_validation_gives(
    case: tuple[DesiredState, LiveSource, PlanOptions],
) -> None:
    # Patches and their changes are built with `trusted` (not validated again): each must be
    # the very model validating its fields gives, dump and digest included.
    wanted, live, options = case
    made = plan(wanted, [live], options)
    for action in made.actions:
        validated = Action.model_validate(dict(vars(action)))
        assert validated == action
        assert validated.model_dump_json() == action.model_dump_json()
        for change in action.changes:  # taken as they are by the action's validation
            assert Change.model_validate(dict(vars(change))) == change
    assert compute_digest([Action.model_validate(dict(vars(a))) for a in made.actions]) == (
        made.digest
    )


def test_actions_waiting_for_none_are_ordered_as_the_heap_orders_them() -> None:
    # Without a claim to wait for, the order is one sort: creates, patches, then the
    # source's name and the action's key (two live sources may share a name).
    from reconciler.planning.matching import matching_of
    from reconciler.planning.ordering import Node, order

    lives = [
        live_of(s3_spec("Same", ("s1",)), ID_B),
        live_of(s3_spec("Same", ("s2",)), ID_A),
        live_of(s3_spec("Abe", ("a",)), ID_C),
    ]
    specs = desired(
        s3_spec("Same", ("s1",), cache_ttl_value=1800, id=ID_B),
        s3_spec("New", ("n2",)),
        s3_spec("Same", ("s2",), cache_ttl_value=1800, id=ID_A),
        s3_spec("Abe", ("a",), cache_ttl_value=1800),
        s3_spec("New", ("n1",)),
    )
    result = plan(specs, lives, OPTIONS)
    expected = [("create", "new:n1"), ("create", "new:n2"), ("patch", ID_C)]
    expected += sorted([("patch", ID_A), ("patch", ID_B)])
    assert [(a.action, a.key) for a in result.actions] == expected
    matches = matching_of(specs.sources, lives).matches
    nodes = [Node(m, a) for m, a in zip(matches, reversed(result.actions), strict=True)]
    assert order(nodes) == result.actions


@pytest.mark.parametrize(
    ("spec", "live_deployment", "path"),
    [
        (webfolder_spec("Blog", ("acme-blog",)), {"password_encrypted": "x"}, "password"),
        (s3_spec(annotation="Managed in git"), {"annotation": "by jane"}, "annotation"),
        (s3_spec(default_params={"q": 75}), {"default_params": {"q": 75.0}}, "default_params.q"),
        (s3_spec(), {"secure_url_enabled": 0}, "secure_url_enabled"),
        (s3_spec(), {"cache_ttl_value": 31536000.0}, "cache_ttl_value"),
    ],
    ids=[
        "a-secret-to-clear",
        "the-annotation-text",
        "a-float-in-a-map",
        "a-number-for-a-flag",
        "a-float-for-a-whole-number",
    ],
)
def test_the_quick_check_leaves_to_the_full_comparison(
    spec: dict[str, Any], live_deployment: dict[str, Any], path: str
) -> None:
    from reconciler.planning.in_sync import quiet_verdict

    live = live_of(spec)
    live = live.model_copy(update={"deployment": {**live.deployment, **live_deployment}})
    assert quiet_verdict(desired(spec).sources[0], live, OPTIONS, False, {}) is None
    assert f"deployment.{path}" in paths(only(plan(desired(spec), [live], OPTIONS)))


def test_secrets_of_one_name_are_compared_by_value() -> None:
    # A plan remembers each secret's fingerprint by attribute and value, not by name alone.
    first = s3_spec("A", ("a",), secret="first")
    second = s3_spec("B", ("b",), secret="second")
    stale = live_of(s3_spec("B", ("b",), secret="first"), ID_B)
    action = only(plan(desired(first, second), [live_of(first, ID_A), stale], OPTIONS))
    assert action.id == ID_B and "deployment.s3_secret_key" in paths(action)


def test_a_source_in_sync_is_settled_by_the_quick_check() -> None:
    # Without this, the agreement above would hold for a quick check that never settles.
    from reconciler.planning.in_sync import quiet_verdict

    spec = s3_spec(annotation="Managed in git", default_params={"auto": "format"})
    wanted = desired(spec).sources[0]
    live = live_of(spec)
    assert quiet_verdict(wanted, live, OPTIONS, False, {}) is False
    unmarked = live_of(spec, deployment={"annotation": "Managed in git"})
    assert quiet_verdict(wanted, unmarked, OPTIONS, False, {}) is True
    assert quiet_verdict(wanted, unmarked, OPTIONS, True, {}) is None  # adopting it is a patch
    reordered = live_of(
        webfolder_spec("Blog", ("b", "a")), deployment={"imgix_subdomains": ["a", "b"]}
    )
    assert (
        quiet_verdict(
            desired(webfolder_spec("Blog", ("b", "a"))).sources[0], reordered, OPTIONS, False, {}
        )
        is False
    )


# --------------------------------------------------------------------------- bulk pass


def _per_source_only() -> Any:
    """The planner with its bulk pass settling nothing: every pair goes one by one."""
    from unittest import mock

    from reconciler import planner as planner_module

    return mock.patch.object(
        planner_module, "quiet_in_bulk", side_effect=lambda pairs, *rest: [None] * len(pairs)
    )


def _bulk_verdicts(wanted: DesiredState, live: list[LiveSource], options: PlanOptions) -> list[Any]:
    """The bulk pass's verdict on each matched pair ("differs": left to the per-source
    path, its managed attributes plainly differing)."""
    from reconciler.planning.in_sync import DIFFERS, quiet_in_bulk
    from reconciler.planning.matching import matching_of

    pairs = [m for m in matching_of(wanted.sources, live).matches if m.live is not None]
    verdicts = quiet_in_bulk(pairs, options, wanted.owner, {}, {})
    return ["differs" if verdict is DIFFERS else verdict for verdict in verdicts]


@settings(max_examples=250, deadline=None, derandomize=True)
@given(case=_settled_or_not())
def test_the_bulk_pass_and_the_per_source_path_agree(
    case: tuple[DesiredState, LiveSource, PlanOptions],
) -> None:
    from reconciler.planning.in_sync import quiet_in_bulk, quiet_verdict
    from reconciler.planning.matching import Match

    wanted, live, options = case
    spec = wanted.sources[0]
    (verdict,) = quiet_in_bulk([Match(0, spec, live)], options, wanted.owner, {}, {})
    if verdict is True or verdict is False:  # settled: what the quick check one by one says
        assert quiet_verdict(spec, live, options, options.adopt, {}) is verdict
    bulk = plan(wanted, [live], options)
    with _per_source_only():
        assert plan(wanted, [live], options).to_json() == bulk.to_json()


def _fallback_case(name: str) -> tuple[DesiredState, list[LiveSource], PlanOptions, list[Any]]:
    """A plan of two sources, one in sync and one `name` concerns, with the bulk verdicts."""
    first = s3_spec("A", ("acme-a",), cache_ttl_value=3600)
    second = webfolder_spec("B", ("acme-b",), cache_ttl_value=3600)
    options = OPTIONS
    live_a, live_b = live_of(first, ID_A), live_of(second, ID_B)
    expected: list[Any] = [False, None]
    if name == "pinned":
        second["id"] = ID_B
        live_b = live_b.model_copy(update={"name": "Renamed"})
    elif name == "shared-subdomain":
        # A second live source holds B's subdomain: matched spec by spec (B is pinned).
        second["id"] = ID_B
        extra = live_of(webfolder_spec("C", ("acme-b",)), ID_C)
        live_b = live_b.model_copy(update={"enabled": False})
        return desired(first, second), [live_a, live_b, extra], options, [False, None]
    elif name == "ignore-changes":
        second["ignore_changes"] = ["deployment.cache_ttl_value"]
        live_b = live_b.model_copy(
            update={"deployment": {**live_b.deployment, "cache_ttl_value": 60}}
        )
    elif name == "another-owner":
        marker = compose_annotation(None, Marker(owner="team-b"))
        live_b = live_b.model_copy(
            update={"deployment": {**live_b.deployment, "annotation": marker}}
        )
        return state(first, second), [live_a, live_b], options, expected
    elif name == "resend-secrets":
        options = replace(OPTIONS, resend_secrets=True)
        expected = [None, None]
    elif name == "unadopted":
        unmarked = {**live_b.deployment, "annotation": None}
        live_b = live_b.model_copy(update={"deployment": unmarked})
        expected = [False, True]
    elif name == "adopting":
        unmarked = {**live_b.deployment, "annotation": None}
        live_b = live_b.model_copy(update={"deployment": unmarked})
        options = replace(OPTIONS, adopt=True)
    elif name == "missing-key":
        live_b = live_b.model_copy(
            update={
                "deployment": {k: v for k, v in live_b.deployment.items() if k != "cache_ttl_error"}
            }
        )
    elif name == "int-for-bool":  # equal under `==` (0 == False), not as JSON
        live_b = live_b.model_copy(
            update={"deployment": {**live_b.deployment, "secure_url_enabled": 0}}
        )
        expected = [False, "differs"]
    elif name == "float-in-a-map":
        second["deployment"]["default_params"] = {"q": 75}
        live_b = live_of(second, ID_B)
        live_b = live_b.model_copy(
            update={"deployment": {**live_b.deployment, "default_params": {"q": 75.0}}}
        )
        expected = [False, "differs"]
    elif name == "float-for-int":
        live_b = live_b.model_copy(
            update={"deployment": {**live_b.deployment, "cache_ttl_value": 3600.0}}
        )
        expected = [False, "differs"]
    elif name == "observed":
        second["mode"] = "observe"
    elif name == "web-secret-held":
        live_b = live_b.model_copy(
            update={"deployment": {**live_b.deployment, "password_encrypted": "x"}}
        )
    elif name == "annotation-text":
        second["deployment"]["annotation"] = "Managed in git"
    return desired(first, second), [live_a, live_b], options, expected


FALLBACKS = [
    "pinned",
    "shared-subdomain",
    "ignore-changes",
    "another-owner",
    "resend-secrets",
    "unadopted",
    "adopting",
    "missing-key",
    "int-for-bool",
    "float-in-a-map",
    "float-for-int",
    "observed",
    "web-secret-held",
    "annotation-text",
]


@pytest.mark.parametrize("name", FALLBACKS)
def test_what_the_bulk_pass_cannot_settle_goes_one_by_one(name: str) -> None:
    wanted, live, options, expected = _fallback_case(name)
    # An observed source is held: `_plan` never hands it over, and the pass refuses it too.
    assert _bulk_verdicts(wanted, live, options) == expected
    bulk = plan(wanted, live, options)
    with _per_source_only():
        assert plan(wanted, live, options).to_json() == bulk.to_json()
    assert bulk.summary.unchanged >= 1  # the source in sync, settled either way


def test_the_bulk_pass_settles_sources_of_several_views_and_markers() -> None:
    # Without this, the agreements above would hold for a bulk pass that never settles.
    blog = webfolder_spec("Blog", ("acme-blog",), **{"robots.txt": "disallow-all"})
    specs = [s3_spec("A", ("acme-a",)), webfolder_spec("B", ("acme-b",)), blog]
    specs += [s3_spec(f"S{n}", (f"acme-s{n}",), secret=f"secret-{n % 3}") for n in range(6)]
    ids = [f"{n:024x}" for n in range(len(specs))]
    live = [live_of(spec, source_id) for spec, source_id in zip(specs, ids, strict=True)]
    wanted = desired(*specs)
    assert _bulk_verdicts(wanted, live, OPTIONS) == [False] * len(specs)
    # The verdict on a marker is remembered with the secret's value: a rotated one differs.
    specs[4]["deployment"]["s3_secret_key"] = SecretRef("env", "S3_SECRET_KEY", "rotated")
    rotated = desired(*specs)
    assert _bulk_verdicts(rotated, live, OPTIONS) == [False] * 4 + [None] + [False] * 4
    assert only(plan(rotated, live, OPTIONS)).source == "S1"


@pytest.mark.parametrize("no_text", [42, {"text": "a map"}])
def test_a_listing_with_an_annotation_that_is_no_text_tells_the_others_apart(
    no_text: object,
) -> None:
    # The bulk pass remembers a verdict per live annotation: a marked source and an
    # unmarked one must not share it because a third annotation is no text (nor may a
    # map, which no verdict can be remembered by, stop the plan).
    specs = [s3_spec("A", ("acme-a",)), s3_spec("B", ("acme-b",)), s3_spec("C", ("acme-c",))]
    live = [
        live_of(specs[0], ID_A),
        live_of(specs[1], ID_B, deployment={"annotation": no_text}),
        live_of(specs[2], ID_C, deployment={"annotation": None}),
    ]
    wanted = desired(*specs)
    assert _bulk_verdicts(wanted, live, OPTIONS) == [False, True, True]
    bulk = plan(wanted, live, OPTIONS)
    assert bulk.adoption is not None and [s.name for s in bulk.adoption.sources] == ["B", "C"]
    with _per_source_only():
        assert plan(wanted, live, OPTIONS).to_json() == bulk.to_json()


def test_a_pair_whose_attributes_plainly_differ_skips_the_quick_check() -> None:
    from unittest import mock

    from reconciler import planner as planner_module

    spec = s3_spec(cache_ttl_value=3600)
    live = live_of(spec, deployment={"cache_ttl_value": 7200})
    with mock.patch.object(planner_module, "quiet_verdict", side_effect=AssertionError):
        action = only(plan(desired(spec), [live], OPTIONS))
    assert paths(action) == ["deployment.cache_ttl_value"]
    # Ignored, the difference is the quick check's to settle.
    quiet = desired({**spec, "ignore_changes": ["deployment.cache_ttl_value"]})
    counting = mock.patch.object(
        planner_module, "quiet_verdict", wraps=planner_module.quiet_verdict
    )
    with counting as check:
        assert plan(quiet, [live], OPTIONS).summary.unchanged == 1
    assert check.call_count == 1


def test_the_adoption_notice_lists_sources_in_the_files_order_however_each_was_settled() -> None:
    specs = [s3_spec(f"S{n}", (f"acme-s{n}",)) for n in range(3)]
    live = [
        live_of(spec, f"{n:024x}", deployment={"annotation": None}) for n, spec in enumerate(specs)
    ]
    # The first differs, so the per-source path settles it; the others the bulk pass.
    live[0] = live[0].model_copy(update={"name": "Renamed"})
    result = plan(desired(*specs), live, OPTIONS)
    assert result.adoption is not None
    assert [ref.name for ref in result.adoption.sources] == ["S0", "S1", "S2"]
    assert result.adoption.updates == 3


@pytest.mark.parametrize(
    "spec",
    [
        s3_spec(default_params={"auto": "format"}, cache_ttl_value=86400),
        webfolder_spec("Blog", ("b", "a"), **{"robots.txt": "disallow-all"}),
        webfolder_spec("Blog", ("b",), password=SecretRef("env", "P", "p"), annotation="x"),
    ],
    ids=["s3", "webfolder-robots", "webfolder-password"],
)
def test_a_view_reads_the_same_values_from_the_fields_as_from_the_model(
    spec: dict[str, Any],
) -> None:
    from reconciler.specs import managed_view

    deployment = desired(spec).sources[0].deployment
    view = managed_view(deployment)
    assert view.from_fields(vars(deployment)) == view.from_spec(deployment)
    assert len(view.from_spec(deployment)) == len(view.fields)


def test_the_bulk_pass_gives_the_same_verdicts_block_by_block() -> None:
    from unittest import mock

    from reconciler.planning import in_sync

    specs = [s3_spec(f"S{n}", (f"acme-s{n}",), secret=f"secret-{n % 2}") for n in range(7)]
    live = [live_of(spec, f"{n:024x}") for n, spec in enumerate(specs)]
    live[3] = live[3].model_copy(update={"name": "Renamed"})
    live[5] = live[5].model_copy(update={"deployment": {**live[5].deployment, "annotation": None}})
    whole = _bulk_verdicts(desired(*specs), live, OPTIONS)
    assert whole == [False, False, False, None, False, True, False]
    with mock.patch.object(in_sync, "_BLOCK", 3):
        assert _bulk_verdicts(desired(*specs), live, OPTIONS) == whole


def test_a_strict_fields_value_has_the_type_its_view_reads_it_as() -> None:
    # The bulk pass reads only the listing's types where the view fixes the spec's: a
    # validated value of a strict `int` field is an `int`, even given an `int` subclass.
    import enum

    from reconciler.specs import DEPLOYMENT_MODELS, managed_view

    class Seconds(enum.IntEnum):
        HOUR = 3600

    spec = s3_spec(cache_ttl_value=Seconds.HOUR, secure_url_enabled=True)
    deployment = desired(spec).sources[0].deployment
    view = managed_view(deployment)
    values = view.from_fields(vars(deployment))
    fixed = dict(zip(view.typed_positions, view.typed_types, strict=True))
    assert set(fixed.values()) == {int, bool}  # all of the s3 type's, none left to read
    for position, kind in fixed.items():
        assert type(values[position]) is kind, view.fields[position]
    for model in DEPLOYMENT_MODELS.values():
        typed = managed_view(model.model_construct()).typed_types
        assert all(kind in (int, bool) for kind in typed), model


@pytest.mark.parametrize("differing", ["name", "enabled", "both"])
def test_names_and_enabled_agreeing_as_columns_or_not_settle_each_pair(differing: str) -> None:
    specs = [s3_spec(f"S{n}", (f"acme-s{n}",)) for n in range(4)]
    live = [live_of(spec, f"{n:024x}") for n, spec in enumerate(specs)]
    assert _bulk_verdicts(desired(*specs), live, OPTIONS) == [False] * 4  # the columns agree
    if differing in ("name", "both"):
        live[1] = live[1].model_copy(update={"name": "Renamed"})
    if differing in ("enabled", "both"):
        live[2] = live[2].model_copy(update={"enabled": False})
    expected = [False, None, False, False] if differing == "name" else [False, False, None, False]
    if differing == "both":
        expected = [False, None, None, False]
    assert _bulk_verdicts(desired(*specs), live, OPTIONS) == expected
    assert plan(desired(*specs), live, OPTIONS).summary.patch == expected.count(None)


def test_the_steady_state_counts_every_source_and_the_rest_still_take_the_loop() -> None:
    from unittest import mock

    from reconciler import planner as planner_module

    specs = [s3_spec(f"S{n}", (f"acme-s{n}",)) for n in range(5)]
    live = [live_of(spec, f"{n:024x}") for n, spec in enumerate(specs)]
    # Every spec matched and in sync: counted, and nothing is compared one by one.
    with mock.patch.object(planner_module, "_compare", side_effect=AssertionError):
        result = plan(desired(*specs), live, OPTIONS)
    assert (result.summary.unchanged, result.actions, result.adoption) == (5, [], None)
    # One not adopted yet: settled in bulk too, and listed for adoption.
    live[1] = live[1].model_copy(update={"deployment": {**live[1].deployment, "annotation": None}})
    with (
        mock.patch.object(planner_module, "quiet_verdict", side_effect=AssertionError),
        mock.patch.object(planner_module, "_compare", side_effect=AssertionError),
    ):
        result = plan(desired(*specs), live, OPTIONS)
    assert result.summary.unchanged == 5 and result.actions == []
    assert result.adoption is not None and [r.name for r in result.adoption.sources] == ["S1"]
    # And one observed, one with no live source: not the steady state.
    specs[2]["mode"] = "observe"
    result = plan(desired(*specs), live[:4], OPTIONS)
    assert [a.action for a in result.actions] == ["create"]
    assert (result.summary.unchanged, result.summary.observed) == (4, 0)
    assert result.adoption is not None and [r.name for r in result.adoption.sources] == ["S1"]
    with _per_source_only():
        assert plan(desired(*specs), live[:4], OPTIONS).to_json() == result.to_json()


@st.composite
def _markers_and_secrets(draw: Any) -> tuple[DesiredState, list[LiveSource], PlanOptions]:
    """Sources in sync but for what only the annotation and secrets tell: the markers and
    secret values the bulk pass's remembered verdicts are keyed by, mixed in one plan."""
    specs, live = [], []
    for k in range(draw(st.integers(min_value=2, max_value=6))):
        text = draw(st.sampled_from([None, "Managed in git"]))
        secret = draw(st.sampled_from(["first", "second", None]))  # None: not resolved
        spec = s3_spec(f"S{k}", (f"acme-s{k}",), secret=secret)
        if text is not None:
            spec["deployment"]["annotation"] = text
        recorded = draw(st.sampled_from(["first", "second"]))
        source = live_of(s3_spec(f"S{k}", (f"acme-s{k}",), secret=recorded), f"{k:024x}")
        marker = parse_annotation(source.deployment.get("annotation")).marker
        assert marker is not None
        marker = draw(
            st.sampled_from(
                [
                    marker,
                    None,
                    Marker({"s3_secret_key": "unknown"}),
                    replace(marker, owner="team-b"),
                    replace(marker, encrypted={"s3_secret_key": "0" * 16}),
                ]
            )
        )
        live_text = draw(st.sampled_from([text, None, "by jane"]))
        annotation = compose_annotation(live_text, marker) if marker is not None else live_text
        specs.append(spec)
        live.append(
            source.model_copy(
                update={"deployment": {**source.deployment, "annotation": annotation}}
            )
        )
    options = PlanOptions(fingerprint_key=KEY, adopt=draw(RARELY), take_over=draw(RARELY))
    return desired(*specs), live, options


@settings(max_examples=150, deadline=None, derandomize=True)
@given(case=_markers_and_secrets())
def test_the_bulk_pass_and_the_per_source_path_agree_on_a_plan_of_several(
    case: tuple[DesiredState, list[LiveSource], PlanOptions],
) -> None:
    # A verdict remembered for one pair's marker and secrets must hold for the others.
    wanted, live, options = case
    bulk = plan(wanted, live, options)
    with _per_source_only():
        assert plan(wanted, live, options).to_json() == bulk.to_json()


def test_a_verdict_remembered_for_one_type_is_not_taken_for_another() -> None:
    # The same live annotation and secret value, but the gcs source's marker records no
    # fingerprint of its key: never sent, so it is sent now.
    s3 = s3_spec("A", ("acme-a",), secret="first")
    gcs = {
        "name": "B",
        "deployment": {
            "type": "gcs",
            "gcs_access_key": "GOOGEXAMPLE",
            "gcs_bucket": "acme-b",
            "gcs_secret_key": SecretRef("env", "GCS_SECRET_KEY", "first"),
            "imgix_subdomains": ["acme-b"],
        },
    }
    live_a, live_b = live_of(s3, ID_A), live_of(gcs, ID_B)
    s3_marker = live_a.deployment["annotation"]
    live_b = live_b.model_copy(
        update={"deployment": {**live_b.deployment, "annotation": s3_marker}}
    )
    assert _bulk_verdicts(desired(s3, gcs), [live_a, live_b], OPTIONS) == [False, None]
    action = only(plan(desired(s3, gcs), [live_a, live_b], OPTIONS))
    assert action.id == ID_B and "deployment.gcs_secret_key" in paths(action)


# --------------------------------------------------------------------------- any account

# Examples per run: a short fixed-seed run in the suite; a campaign by hand with, e.g.,
# IMGIX_RECONCILER_CAMPAIGN=5000 pytest tests/test_planner.py -k any_account
CAMPAIGN = int(os.environ.get("IMGIX_RECONCILER_CAMPAIGN", "0"))
PARAM_SETS = [{}, {"auto": "format"}, {"q": 75, "dpr": 2}, {"fit": "crop", "lossless": True}]
SECRET_FIELDS = {
    "s3": "s3_secret_key",
    "gcs": "gcs_secret_key",
    "azure": "azure_sas_string",
    "s3_compatible": "secret_key",
}


def _any_deployment(
    draw: Any, kind: str, index: int, hosts: list[str], environ: dict[str, str]
) -> dict[str, Any]:
    """A deployment of `kind` with every optional attribute stated or left out at random
    (an explicit default included); its secrets as {env:} references into `environ`."""

    def secret(field: str) -> SecretRef:
        name = f"SECRET_{index}_{field.upper()}"
        environ[name] = draw(st.sampled_from(SECRET_VALUES))
        return SecretRef("env", name, environ[name])

    def maybe(name: str, values: list[Any]) -> None:
        if draw(st.booleans()):
            fields[name] = draw(st.sampled_from(values))

    bucket = draw(st.sampled_from(["bucket-one", "bucket-two"]))
    fields: dict[str, Any] = {"type": kind, "imgix_subdomains": hosts}
    if kind == "s3":
        fields |= {"s3_access_key": "AK", "s3_bucket": bucket, "s3_secret_key": secret("s3")}
        maybe("s3_prefix", ["images/", "", None])
    elif kind == "gcs":
        fields |= {"gcs_access_key": "GK", "gcs_bucket": bucket, "gcs_secret_key": secret("gcs")}
        maybe("gcs_prefix", ["images/", None])
    elif kind == "azure":
        fields |= {
            "azure_account": "acct",
            "azure_bucket": bucket,
            "azure_sas_string": secret("sas"),
        }
        fields["azure_service_type"] = draw(st.sampled_from(["blob", "file"]))
        maybe("azure_prefix", ["images/", None])
    elif kind == "webfolder":
        fields["webfolder_base_url"] = f"https://{bucket}.example/"
    elif kind == "s3_compatible":
        fields |= {
            "access_key_id": "KI",
            "bucket_name": bucket,
            "endpoint_url": "https://s3.example.com",
            "region": draw(st.sampled_from(["eu", "us"])),
            "secret_key": secret("s3c"),
            "storage_provider": draw(st.sampled_from(["Wasabi", "Linode"])),
        }
    if kind in ("webfolder", "webproxy"):
        if draw(st.booleans()):
            fields |= {"username": "user", "password": secret("pw")}
        for name in ("request_signing_key", "request_handshake"):
            if draw(st.booleans()):
                fields[name] = secret(name)
    maybe("cache_ttl_value", [1800, 86400, 31536000])
    maybe("cache_ttl_error", [1, 300])
    maybe("cache_ttl_behavior", ["respect_origin", "override_origin", "enforce_minimum"])
    maybe("default_params", PARAM_SETS)
    maybe("custom_domains", [[], [f"img{index}.example.com", f"cdn{index}.example.org"]])
    maybe("image_error", [None, "https://errors.example/e.png"])
    maybe("image_missing", [None, "https://errors.example/m.png"])
    for flag in ("image_error_append_qs", "image_missing_append_qs", "crossdomain_xml_enabled"):
        maybe(flag, [False, True])
    if kind != "webproxy":
        maybe("secure_url_enabled", [False, True])
    maybe("annotation", ["Managed in git", "Managed in git\n", ""])
    maybe("robots.txt", ["allow-all", "disallow-all"] + ([] if kind == "webproxy" else ["origin"]))
    return fields


@dataclass
class _Account:
    """An account made outside the tool, a file, edits made in the dashboard after the
    file's first apply, and the file as it is changed next."""

    live: list[dict[str, Any]]
    first: list[dict[str, Any]]
    owner: str | None
    environ: dict[str, str]
    omit_unset: bool
    edits: list[tuple[int, dict[str, Any], dict[str, Any]]]
    second: list[dict[str, Any]]
    second_owner: str | None
    second_environ: dict[str, str]
    resend_secrets: bool


@st.composite
def _accounts(draw: Any) -> _Account:
    count = draw(st.integers(1, 3))
    environ: dict[str, str] = {}
    hosts = [
        [f"host-{2 * i}", *draw(st.sampled_from([[], [f"host-{2 * i + 1}"]]))] for i in range(count)
    ]
    first = [
        {
            "name": f"Source {i}",
            "enabled": draw(st.booleans()),
            "deployment": _any_deployment(draw, draw(st.sampled_from(TYPES)), i, hosts[i], environ),
        }
        for i in range(count)
    ]
    live = []
    for i in range(count):
        if draw(st.booleans()):  # made in the dashboard, of any type: matched, or unmanaged
            held = draw(st.sampled_from([[f"host-{2 * i}"], [f"host-{2 * i}"], [f"other-{i}"]]))
            fields = _any_deployment(draw, draw(st.sampled_from(TYPES)), i, held, {})
            fields.pop("annotation", None)
            plain = {k: v.reveal() if isinstance(v, SecretRef) else v for k, v in fields.items()}
            live.append({"name": f"Old {i}", "enabled": draw(st.booleans()), "deployment": plain})
    edits = []
    for i in range(count):
        if not draw(st.booleans()):
            continue
        top: dict[str, Any] = {}
        changes: dict[str, Any] = {}
        for what in draw(st.sets(st.integers(0, 9), min_size=1, max_size=3)):
            if what == 0:
                top["name"] = "Renamed in the dashboard"
            elif what == 1:
                top["enabled"] = "toggled"
            elif what == 2:
                changes["cache_ttl_value"] = draw(st.sampled_from([3600, 86400]))
            elif what == 3:  # equal numbers of another JSON type, keys in another order
                changes["default_params"] = draw(
                    st.sampled_from([{"dpr": 2.0, "q": 75}, {"dpr": 2, "q": 75}, {}])
                )
            elif what == 4:
                changes["image_error"] = draw(st.sampled_from([None, "https://d.example/e.png"]))
            elif what == 5:
                changes["custom_domains"] = draw(
                    st.sampled_from([[], [f"cdn{i}.example.org", f"img{i}.example.com"]])
                )
            elif what == 6:
                changes["secure_url_enabled"] = draw(st.booleans())
            elif what == 7:
                changes["robots.txt"] = draw(st.sampled_from(["allow-all", "disallow-all"]))
            elif what == 8:
                changes["annotation"] = "Edited by jane"
            else:
                changes["secret"] = draw(st.sampled_from(["x" * 32, "y" * 32]))
        edits.append((i, top, changes))
    second_environ = dict(environ)
    for name in draw(st.lists(st.sampled_from(sorted(environ)), unique=True)) if environ else []:
        second_environ[name] = "r" * 32  # rotated
    second = []
    for i, spec in enumerate(first):
        spec = {**spec, "mode": draw(st.sampled_from(["manage", "manage", "observe", "protect"]))}
        if draw(st.booleans()):
            spec["name"] = f"Renamed {i}"
        if draw(st.booleans()):
            spec["id"] = "pinned"
        spec["ignore_changes"] = draw(
            st.lists(
                st.sampled_from([*IGNORABLE, "deployment.default_params"]), unique=True, max_size=2
            )
        )
        if draw(st.sampled_from([False, False, True])):  # another origin, maybe another type
            kind = draw(st.sampled_from(TYPES))
            spec["deployment"] = _any_deployment(draw, kind, i + 10, hosts[i], second_environ)
            spec["moved"] = True
        second.append(spec)
    owner = draw(st.sampled_from([None, "team-a"]))
    return _Account(
        live=live,
        first=first,
        owner=owner,
        environ=environ,
        omit_unset=draw(st.booleans()),
        edits=edits,
        second=second,
        second_owner=draw(st.sampled_from([owner, owner, None, "team-b"])),
        second_environ=second_environ,
        resend_secrets=draw(st.booleans()),
    )


def _both_ways(wanted: DesiredState, live: list[LiveSource], options: PlanOptions) -> Plan:
    """The plan, checked to be the one the per-source path makes without the bulk pass."""
    result = plan(wanted, live, options)
    with _per_source_only():
        assert plan(wanted, live, options).to_json() == result.to_json()
    return result


async def _converges(account: _Account) -> None:
    store = SourceStore(
        limits=RateLimits(per_second=None, creates_per_hour=None, updates_per_hour=None),
        deploy_delay=0,
        omit_unset=account.omit_unset,
    )
    try:
        store.load_json({"version": 1, "sources": account.live})
    except BadRequest:
        assume(False)  # two dashboard sources on one hostname: not an account imgix allows
    first = state(*account.first, owner=account.owner)
    async with _client(store) as client:
        try:
            planned = _both_ways(first, await client.list_sources(), ADOPTING)
        except PlanError as error:  # a hostname an unmanaged source holds, or two matches
            assume("manages" not in str(error) and "both match" not in str(error))
            raise
        report = await apply_plan(
            planned, client, resolver=SecretResolver(account.environ), permissions=RAILS_LIFTED
        )
        assert report.ok, report.failed
        again = _both_ways(first, await client.list_sources(), OPTIONS)
        assert (again.actions, again.notices, again.adoption) == ([], [], None), again.to_json()

        # Changes made outside, then the file changed: the plan fixes exactly those.
        ids = {
            i: source.id
            for source in store.sources.values()
            for i, spec in enumerate(account.first)
            if spec["deployment"]["imgix_subdomains"][0] in source.deployment["imgix_subdomains"]
        }
        edited: dict[str, set[str]] = {}
        for i, top, changes in account.edits:
            source = store.sources[ids[i]]
            changes = dict(changes)
            if "secret" in changes:  # a secret set anew in the dashboard
                value = changes.pop("secret")
                field = SECRET_FIELDS.get(source.deployment["type"], "password")
                if source.deployment.get(field) is not None:
                    changes[field] = value
            store.dashboard_redeploy(source.id, changes)
            source.name = top.get("name", source.name)
            source.enabled ^= "enabled" in top
            edited[source.id] = set(top) | {f"deployment.{name}" for name in changes}
        specs, moved = [], set()
        for i, spec in enumerate(account.second):
            spec = dict(spec)
            if spec.pop("moved", False):
                moved.add(ids[i])
            if "id" in spec:
                spec["id"] = ids[i]
            specs.append(spec)
        second = state(*specs, owner=account.second_owner)
        take_over = account.second_owner != account.owner
        options = replace(ADOPTING, take_over=take_over, resend_secrets=account.resend_secrets)
        planned = _both_ways(second, await client.list_sources(), options)
        for action in planned.actions:
            if action.id in moved or action.takes_over_from is not None:
                continue
            renamed = {"name"} if action.source.startswith("Renamed ") else set()
            allowed = edited.get(action.id, set()) | renamed | {"deployment.annotation", "owner"}
            unexpected = [
                c.path
                for c in action.changes
                if c.path not in allowed
                and not any(c.path.startswith(f"{path}.") for path in allowed)
                # Secrets: sent on adoption and resending, cleared when the file has none.
                and c.before != WRITE_ONLY
                and c.after != WILL_BE_SENT
            ]
            assert not unexpected, (action, account.edits)
        report = await apply_plan(
            planned,
            client,
            resolver=SecretResolver(account.second_environ),
            permissions=replace(RAILS_LIFTED, take_over=take_over),
        )
        assert report.ok, report.failed
        again = _both_ways(second, await client.list_sources(), OPTIONS)
        assert (again.actions, again.notices, again.adoption) == ([], [], None), again.to_json()


ADOPTING = PlanOptions(fingerprint_key=KEY, adopt=True)


@settings(
    max_examples=CAMPAIGN or 150,
    derandomize=not CAMPAIGN,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(account=_accounts())
def test_any_account_converges_after_one_apply_and_again_after_dashboard_edits(
    account: _Account,
) -> None:
    asyncio.run(_converges(account))


# ------------------------------------------------------------- mutation audit (stop 24)


def test_secrets_the_plan_cannot_read_are_named_together_in_one_notice() -> None:
    handshake = SecretRef("env", "BLOG_HANDSHAKE", "h" * 32)
    spec = webfolder_spec(
        "Blog", ("acme-blog",), password=BLOG_PASSWORD, request_handshake=handshake
    )
    live = live_of(spec)
    unread = webfolder_spec(
        "Blog",
        ("acme-blog",),
        password=BLOG_PASSWORD.with_value(None),
        request_handshake=handshake.with_value(None),
    )
    result = plan(desired(unread), [live], OPTIONS)
    assert result.actions == [] and result.adoption is None
    (notice,) = result.notices
    assert (notice.kind, notice.source, notice.id) == ("cannot_compare", "Blog", ID_A)
    assert notice.detail.startswith("cannot compare password, request_handshake: ")


def test_a_possible_rename_names_only_the_origin_fields_the_file_states() -> None:
    old = live_of(s3_spec("Products (old)", ("acme-old",)), ID_B)
    result = plan(desired(s3_spec("Products", ("acme-new",))), [old], OPTIONS)
    (notice,) = result.notices
    # A create has no id yet: the notice is the spec's, not the unmanaged source's.
    assert notice.id is None
    assert notice.detail.startswith("has the same type and s3_bucket as the unmanaged live source")
    prefixed = live_of(s3_spec("Products (old)", ("acme-old",), s3_prefix="images/"), ID_B)
    wanted = desired(s3_spec("Products", ("acme-new",), s3_prefix="images/"))
    (notice,) = plan(wanted, [prefixed], OPTIONS).notices
    assert notice.detail.startswith("has the same type and s3_bucket and s3_prefix as the")


def test_web_secrets_changed_outside_are_named_together_in_one_notice() -> None:
    handshake = SecretRef("env", "BLOG_HANDSHAKE", "h" * 32)
    spec = webfolder_spec(
        "Blog", ("acme-blog",), password=BLOG_PASSWORD, request_handshake=handshake
    )
    recorded = parse_annotation(str(live_of(spec).deployment["annotation"])).marker
    assert recorded is not None
    encrypted = {
        "password": encrypted_digest("password-1"),
        "request_handshake": encrypted_digest("handshake-1"),
    }
    annotation = compose_annotation(None, replace(recorded, encrypted=encrypted))
    changed = {
        "annotation": annotation,
        "password_encrypted": "password-2",
        "request_handshake_encrypted": "handshake-2",
    }
    result = plan(desired(spec), [live_of(spec, deployment=changed)], OPTIONS)
    assert paths(only(result)) == ["deployment.password", "deployment.request_handshake"]
    (notice,) = result.notices
    assert notice.kind == "encrypted_changed"
    assert notice.detail.startswith("password, request_handshake changed outside imgix-reconciler")


def test_a_create_shows_only_what_it_sets() -> None:
    action = only(plan(desired(s3_spec()), [], OPTIONS))
    # Unset attributes (no prefix, no error image), no annotation, no owner: not shown.
    assert all(change.after is not None for change in action.changes), action.changes
    assert not {"owner", "deployment.annotation", "deployment.s3_prefix"} & set(paths(action))
    assert action.changes[:2] == [
        Change(path="name", after="Product images"),
        Change(path="enabled", after=True),
    ]
    assert not action.protected
    owned = only(plan(state(s3_spec(), owner="team-a"), [], OPTIONS))
    assert Change(path="owner", after="team-a") in owned.changes
    # The plan file tells a protected source's create from another's.
    assert only(plan(desired(s3_spec(mode="protect")), [], OPTIONS)).protected


def test_notices_observed_and_owned_elsewhere_are_listed_by_name_not_in_the_files_order() -> None:
    # Unreadable in "Zeta", and in "Alpha" (a create) with a possible rename too.
    zeta = live_of(s3_spec("Zeta", ("z",)), ID_A)
    old = live_of(s3_spec("Old", ("o",)), ID_B)
    wanted = desired(s3_spec("Zeta", ("z",), secret=None), s3_spec("Alpha", ("a",), secret=None))
    notices = plan(wanted, [zeta, old], OPTIONS).notices
    assert [(n.source, n.kind) for n in notices] == [
        ("Alpha", "possible_rename"),
        ("Alpha", "cannot_compare"),
        ("Zeta", "cannot_compare"),
    ]
    lives = [live_of(s3_spec("Zeta", ("z",)), ID_A), live_of(s3_spec("Alpha", ("a",)), ID_B)]
    observing = desired(
        s3_spec("Zeta", ("z",), mode="observe", cache_ttl_value=1800),
        s3_spec("Alpha", ("a",), mode="observe", cache_ttl_value=1800),
    )
    result = plan(observing, lives, OPTIONS)
    assert [o.source for o in result.observed] == ["Alpha", "Zeta"]
    elsewhere = [owned_live(s3_spec("Zeta", ("z",)), "other/repo", ID_A)]
    elsewhere.append(owned_live(s3_spec("Alpha", ("a",)), "other/repo", ID_B))
    wanted = state(s3_spec("Zeta", ("z",)), s3_spec("Alpha", ("a",)), owner="acme/infra")
    result = plan(wanted, elsewhere, OPTIONS)
    assert [o.source for o in result.owned_elsewhere] == ["Alpha", "Zeta"]


def test_adoption_costs_the_writes_the_source_will_take() -> None:
    unmarked = {"annotation": "by jane"}

    def updates(spec: dict[str, Any], live: LiveSource) -> int:
        adoption = plan(desired(spec), [live], OPTIONS).adoption
        assert adoption is not None
        return adoption.updates

    live = live_of(s3_spec(), deployment=unmarked)
    assert updates(s3_spec(), live) == 1
    # Disabled by the file: the adopting write, then the disable.
    assert updates(s3_spec(enabled=False), live) == 2
    # `enabled` ignored: the live source's state is kept, so a disabled one is enabled
    # for the adopting write and disabled again.
    disabled = live.model_copy(update={"enabled": False})
    assert updates(s3_spec(ignore_changes=["enabled"]), disabled) == 2
    assert updates(s3_spec(ignore_changes=["enabled"]), live) == 1
    # Ignored and not listed: left as it is, so the adopting write is the only one.
    unlisted = live.model_copy(update={"enabled": None})
    assert updates(s3_spec(ignore_changes=["enabled"]), unlisted) == 1
    adopting = plan(desired(s3_spec(ignore_changes=["enabled"])), [unlisted], ADOPTING)
    (write,) = only(adopting).writes
    assert "enabled" not in write
    # A web folder that declares no web secret records no `*_encrypted` value.
    folder = webfolder_spec("Blog", ("acme-blog",))
    assert updates(folder, live_of(folder, deployment=unmarked)) == 1


def test_a_targeted_plan_counts_and_adopts_only_the_targets() -> None:
    unmarked = {"annotation": "by jane"}
    lives = [
        live_of(s3_spec("A", ("a",)), ID_A),
        live_of(s3_spec("B", ("b",)), ID_B, deployment=unmarked),
        live_of(s3_spec("C", ("c",)), ID_C, deployment=unmarked),
    ]
    specs = desired(s3_spec("A", ("a",)), s3_spec("B", ("b",)), s3_spec("C", ("c",)))
    options = PlanOptions(fingerprint_key=KEY, targets=frozenset({"A", "C"}))
    result = plan(specs, lives, options)
    assert result.actions == [] and result.summary.unchanged == 2
    assert result.adoption is not None
    assert [s.name for s in result.adoption.sources] == ["C"]


def test_the_blast_radius_counts_only_risky_actions() -> None:
    specs, live = _fleet(6)
    # Two disabled (risky), two with a longer cache (no risk), one created (no risk).
    changed = [{**spec, "enabled": False} for spec in specs[:2]]
    changed += [
        {**spec, "deployment": {**spec["deployment"], "cache_ttl_value": 1800}}
        for spec in specs[2:4]
    ]
    wanted = state(*changed, *specs[4:], s3_spec("New", ("host-new",)))
    result = plan(wanted, live, OPTIONS)
    assert result.summary.patch == 4 and result.summary.create == 1
    radius = result.blast_radius
    assert radius is not None and (radius.risky, radius.managed) == (2, 6)


def test_sources_of_one_name_are_listed_new_one_first_then_by_id() -> None:
    # The file may name two sources alike: a new one (no id yet) sorts before a live one,
    # even one whose id sorts before any letter.
    live_id = "0" * 24
    live = live_of(s3_spec("Twin", ("a",)), live_id)
    wanted = desired(s3_spec("Twin", ("a",), secret=None), s3_spec("Twin", ("b",), secret=None))
    notices = plan(wanted, [live], OPTIONS).notices
    assert [(n.source, n.id) for n in notices] == [("Twin", None), ("Twin", live_id)]
    observing = desired(
        s3_spec("Twin", ("a",), mode="observe", cache_ttl_value=1800),
        s3_spec("Twin", ("b",), mode="observe"),
    )
    observed = plan(observing, [live], OPTIONS).observed
    assert [(o.action, o.id) for o in observed] == [("create", None), ("patch", live_id)]


# ------------------------------------------------------------- mutation audit (stop 30)


def test_a_live_value_holding_a_secret_the_run_read_is_hidden_in_the_change() -> None:
    # Someone pasted the password into the dashboard (a note, a parameter): the plan shows
    # that a value changes, never the value, whether it is text or a map holding the text.
    from reconciler import redact

    pasted = "pasted-password-4f1c"
    redact.register(pasted)
    live = live_of(s3_spec(annotation="our note", default_params={"auto": "format"}))
    deployment = {
        **live.deployment,
        "annotation": f"password is {pasted}",
        "default_params": {"auto": "format", "s": pasted},
    }
    live = live.model_copy(update={"deployment": deployment})
    wanted = desired(s3_spec(annotation="our note", default_params={"auto": "format"}))
    result = plan(wanted, [live], OPTIONS)
    changes = {change.path: change for change in only(result).changes}
    assert changes["deployment.annotation"].before == HIDDEN
    assert changes["deployment.default_params.s"].before == HIDDEN
    assert changes["deployment.annotation"].after == "our note"
    assert pasted not in result.to_json()


def test_a_listing_without_a_managed_attribute_leaves_only_that_source_to_go_one_by_one() -> None:
    # Sources of one view, one listed without `cache_ttl_error`: the others are still
    # settled at once, and the plan is the one the per-source path gives.
    specs = [s3_spec(name, (f"acme-{name}",)) for name in ("a", "b", "c")]
    live = [
        live_of(spec, source_id) for spec, source_id in zip(specs, (ID_A, ID_B, ID_C), strict=True)
    ]
    partial = {k: v for k, v in live[1].deployment.items() if k != "cache_ttl_error"}
    live[1] = live[1].model_copy(update={"deployment": partial})
    wanted = desired(*specs)
    assert _bulk_verdicts(wanted, live, OPTIONS) == [False, None, False]
    bulk = plan(wanted, live, OPTIONS)
    with _per_source_only():
        assert plan(wanted, live, OPTIONS).to_json() == bulk.to_json()
    assert bulk.actions == [] and bulk.summary.unchanged == 3


def test_a_plan_shows_name_enabled_and_type_first_then_the_rest_by_path() -> None:
    # The order a reviewer reads in every format: what the source is, then what changes.
    created = only(
        plan(state(s3_spec("New", ("acme-new",), annotation="note"), owner="team-a"), [], OPTIONS)
    )
    shown = paths(created)
    assert shown[:3] == ["name", "enabled", "deployment.type"]
    assert shown[3:] == sorted(shown[3:]) and shown[-1] == "owner"
    live = live_of(webfolder_spec("Blog", ("acme-blog",)))
    moved = s3_spec("Blog v2", ("acme-blog",), enabled=False, annotation="moved to S3")
    patched = paths(only(plan(desired(moved), [live], OPTIONS)))
    assert patched[:3] == ["name", "enabled", "deployment.type"]
    assert patched[3:] == sorted(patched[3:]) and "deployment.annotation" in patched
    # Two changes are sorted too: the annotation is compared after the attributes.
    noted = s3_spec(cache_ttl_value=1800, annotation="new note")
    two = only(plan(desired(noted), [live_of(s3_spec(annotation="old note"))], OPTIONS))
    assert paths(two) == ["deployment.annotation", "deployment.cache_ttl_value"]


def test_a_parameter_listed_as_its_text_is_settled_by_the_quick_check() -> None:
    # Dashboards save parameters as text: a file of numbers and flags against such a
    # listing must not cost every plan the detailed comparison (it is in sync).
    from reconciler.planning.in_sync import quiet_verdict

    spec = s3_spec(default_params={"q": 75, "lossless": True, "auto": "format"})
    wanted = desired(spec).sources[0]
    spelled = {"q": "75", "lossless": "true", "auto": "format"}
    live = live_of(spec, deployment={"default_params": spelled})
    assert quiet_verdict(wanted, live, OPTIONS, False, {}) is False
    moved = live_of(spec, deployment={"default_params": {**spelled, "q": "75.0"}})
    assert quiet_verdict(wanted, moved, OPTIONS, False, {}) is None


def test_the_bulk_pass_settles_annotations_declared_in_sync_and_undeclared_ones() -> None:
    # A declared annotation as the listing holds it, and one the file leaves to the
    # dashboard (any text there): both in sync, settled at once, not one by one.
    declared = s3_spec("A", ("acme-a",), annotation="Managed in git")
    undeclared = s3_spec("B", ("acme-b",))
    noted = live_of(undeclared, ID_B)
    text = "by jane " + str(noted.deployment["annotation"])
    noted = noted.model_copy(update={"deployment": {**noted.deployment, "annotation": text}})
    wanted = desired(declared, undeclared)
    live = [live_of(declared, ID_A), noted]
    assert _bulk_verdicts(wanted, live, OPTIONS) == [False, False]
    assert plan(wanted, live, OPTIONS).actions == []


def test_a_web_password_cleared_in_the_dashboard_is_sent_again() -> None:
    # The marker recorded the password's `*_encrypted` value; the listing holds none now
    # (cleared outside): the bulk pass must not take the fingerprint's word for it.
    spec = webfolder_spec("Blog", ("acme-blog",), password=BLOG_PASSWORD)
    recorded = parse_annotation(str(live_of(spec).deployment["annotation"])).marker
    assert recorded is not None
    marker = replace(recorded, encrypted={"password": encrypted_digest("ciphertext-1")})
    cleared = live_of(spec, deployment={"annotation": compose_annotation(None, marker)})
    assert "password_encrypted" not in cleared.deployment
    assert _bulk_verdicts(desired(spec), [cleared], OPTIONS) == [None]
    result = plan(desired(spec), [cleared], OPTIONS)
    assert paths(only(result)) == ["deployment.password"]
    assert [notice.kind for notice in result.notices] == ["encrypted_changed"]


def test_a_difference_past_an_attribute_the_listing_omits_is_still_planned() -> None:
    # An omitted attribute the file is silent on is unknown, no difference: the comparison
    # goes on to the attributes after it (the listing omits the first one compared).
    spec = s3_spec()
    live = live_of(spec, deployment={"s3_bucket": "moved-bucket"})
    omitted = {k: v for k, v in live.deployment.items() if k != "cache_ttl_behavior"}
    live = live.model_copy(update={"deployment": omitted})
    action = only(plan(desired(spec), [live], OPTIONS))
    assert paths(action) == ["deployment.s3_bucket", "deployment.s3_secret_key"]


def test_an_empty_declared_annotation_is_no_text_in_either_comparison() -> None:
    # `annotation: ""` is no text: the listing's marker alone is in sync (settled by the
    # quick check) and a patch for another reason shows no annotation change.
    from reconciler.planning.in_sync import quiet_verdict

    spec = s3_spec(annotation="")
    live = live_of(spec)
    assert live.annotation.text is None
    assert quiet_verdict(desired(spec).sources[0], live, OPTIONS, False, {}) is False
    assert _bulk_verdicts(desired(spec), [live], OPTIONS) == [False]
    longer = s3_spec(annotation="", cache_ttl_value=1800)
    assert paths(only(plan(desired(longer), [live], OPTIONS))) == ["deployment.cache_ttl_value"]


def test_an_ignored_annotation_is_settled_by_the_quick_check() -> None:
    from reconciler.planning.in_sync import quiet_verdict

    spec = s3_spec(annotation="ours", ignore_changes=["deployment.annotation"])
    live = live_of(s3_spec(annotation="theirs"))
    assert quiet_verdict(desired(spec).sources[0], live, OPTIONS, False, {}) is False
    assert plan(desired(spec), [live], OPTIONS).actions == []


def test_adopting_a_source_whose_annotation_is_no_text_shows_none_before_the_marker() -> None:
    # A listing may give the annotation as a number: it is no text, shown as none.
    live = live_of(s3_spec(), deployment={"annotation": 42})
    action = only(plan(desired(s3_spec()), [live], ADOPTING))
    (change,) = [c for c in action.changes if c.path == "deployment.annotation"]
    assert (change.before, change.after) == (None, MARKER_WRITTEN)


def test_the_bulk_pass_settles_sources_of_the_files_owner_and_of_no_owner() -> None:
    # A file with an owner: a marker recording it, and one recording none (written before
    # the file named an owner), are both in sync and settled at once.
    first, second = s3_spec("A", ("acme-a",)), s3_spec("B", ("acme-b",))
    owned = as_live(plan(state(first, owner="team-a"), [], OPTIONS), ID_A)
    unowned = live_of(second, ID_B)
    assert unowned.annotation.marker is not None and unowned.annotation.marker.owner is None
    wanted = state(first, second, owner="team-a")
    assert _bulk_verdicts(wanted, [owned, unowned], OPTIONS) == [False, False]
    result = plan(wanted, [owned, unowned], OPTIONS)
    assert result.actions == [] and result.summary.unchanged == 2


def test_a_patch_of_a_source_without_a_declared_annotation_writes_no_text() -> None:
    # The file leaves the annotation out: the write carries no user text (the applier puts
    # the marker alone), whatever the listing held.
    live = live_of(s3_spec())
    action = only(plan(desired(s3_spec(cache_ttl_value=1800)), [live], OPTIONS))
    deployment = action.writes[0]["deployment"]
    assert isinstance(deployment, dict) and deployment["annotation"] is None


def test_in_bulk_a_source_with_parameters_in_sync_does_not_hide_another_that_differs() -> None:
    # One view: A states default_params (as listed), B states none and its cache differs.
    # The maps agreeing must not settle B, nor may they stop A being settled.
    first = s3_spec("A", ("acme-a",), default_params={"auto": "format", "q": 75})
    second = s3_spec("B", ("acme-b",))
    live = [live_of(first, ID_A), live_of(second, ID_B, deployment={"cache_ttl_value": 60})]
    wanted = desired(first, second)
    assert _bulk_verdicts(wanted, live, OPTIONS) == [False, "differs"]
    action = only(plan(wanted, live, OPTIONS))
    assert (action.source, paths(action)) == ("B", ["deployment.cache_ttl_value"])


def test_the_quick_check_settles_differences_the_file_leaves_alone() -> None:
    # An ignored name or `enabled`, and an annotation the file does not declare: no
    # difference, so the quick check settles them rather than the full comparison.
    from reconciler.planning.in_sync import quiet_verdict

    spec = s3_spec(ignore_changes=["name", "enabled"])
    wanted = desired(spec).sources[0]
    live = live_of(spec).model_copy(update={"name": "Dashboard name", "enabled": False})
    assert quiet_verdict(wanted, live, OPTIONS, False, {}) is False
    noted = live_of(s3_spec())
    text = "by jane " + str(noted.deployment["annotation"])
    noted = noted.model_copy(update={"deployment": {**noted.deployment, "annotation": text}})
    assert quiet_verdict(desired(s3_spec()).sources[0], noted, OPTIONS, False, {}) is False


def test_a_web_password_as_recorded_is_settled_by_the_quick_check() -> None:
    # The listing's `*_encrypted` value is the one the marker recorded: nothing changed
    # outside, so the source is settled without the full comparison.
    from reconciler.planning.in_sync import quiet_verdict

    spec = webfolder_spec("Blog", ("acme-blog",), password=BLOG_PASSWORD)
    recorded = parse_annotation(str(live_of(spec).deployment["annotation"])).marker
    assert recorded is not None
    marker = replace(recorded, encrypted={"password": encrypted_digest("ciphertext-1")})
    as_recorded = {
        "annotation": compose_annotation(None, marker),
        "password_encrypted": "ciphertext-1",
    }
    live = live_of(spec, deployment=as_recorded)
    assert quiet_verdict(desired(spec).sources[0], live, OPTIONS, False, {}) is False


# ------------------------------------------------------------- mutation audit (stop 31)


def test_a_rename_of_a_disabled_source_records_the_pending_disable_in_its_enabling_write() -> None:
    # A rename alone writes no deployment: the enabling write must still carry the
    # annotation, so a run killed before the disabling write leaves a record.
    live = live_of(s3_spec("Old name", enabled=False), enabled=False)
    action = only(plan(desired(s3_spec("New name", enabled=False)), [live], OPTIONS))
    assert paths(action) == ["name"]
    enabling, disabling = action.writes
    assert (enabling["enabled"], enabling["name"], disabling["enabled"]) == (
        True,
        "New name",
        False,
    )
    first, last = (_marker_of(as_sent(action, index)) for index in range(2))
    assert first is not None and first.pending_disable
    assert last is not None and not last.pending_disable


def test_a_patch_leaves_out_a_referenced_value_that_did_not_change() -> None:
    # Sent only when it changes, like a value written in the file: not on every patch.
    bucket = "bucket-from-a-reference"
    live = live_of(s3_spec(s3_bucket=bucket))
    wanted = referenced(
        desired(s3_spec(s3_bucket=bucket, cache_ttl_value=1800)),
        s3_bucket=SecretRef("env", "BUCKET", bucket),
    )
    action = only(plan(wanted, [live], OPTIONS))
    assert paths(action) == ["deployment.cache_ttl_value"]
    (write,) = action.writes
    assert write == {"deployment": {"cache_ttl_value": 1800, "annotation": None}}


def test_an_unmanaged_source_of_an_unknown_or_unlisted_type_suggests_no_rename() -> None:
    # A type this tool does not model, or a listing without one: no origin to compare.
    deployment = {"type": "some-future-type", "imgix_subdomains": ["acme-x"]}
    unknown = LiveSource(id=ID_B, name="X", enabled=True, deployment=deployment)
    untyped = LiveSource(id=ID_C, name="Y", enabled=True, deployment={"imgix_subdomains": []})
    result = plan(desired(s3_spec("Products", ("acme-new",))), [unknown, untyped], OPTIONS)
    assert only(result).action == "create" and result.notices == []
    assert [source.id for source in result.unmanaged] == [ID_B, ID_C]


@pytest.mark.parametrize("listed", [None, "", "/"])
@pytest.mark.parametrize("stated", [{}, {"s3_prefix": ""}])
def test_no_prefix_in_any_spelling_is_the_same_origin_for_a_possible_rename(
    listed: str | None, stated: dict[str, Any]
) -> None:
    old = live_of(s3_spec("Products (old)", ("acme-old",)), ID_B)
    old = old.model_copy(update={"deployment": {**old.deployment, "s3_prefix": listed}})
    result = plan(desired(s3_spec("Products", ("acme-new",), **stated)), [old], OPTIONS)
    (notice,) = result.notices
    assert notice.kind == "possible_rename"
    assert notice.detail.startswith("has the same type and s3_bucket as the unmanaged")


def test_a_prefix_with_or_without_its_last_slash_is_the_same_origin_and_another_is_not() -> None:
    old = live_of(s3_spec("Products (old)", ("acme-old",), s3_prefix="images"), ID_B)
    wanted = desired(s3_spec("Products", ("acme-new",), s3_prefix="images/"))
    (notice,) = plan(wanted, [old], OPTIONS).notices
    assert notice.detail.startswith("has the same type and s3_bucket and s3_prefix as the")
    other = live_of(s3_spec("Products (old)", ("acme-old",), s3_prefix="imagesX/"), ID_B)
    assert plan(wanted, [other], OPTIONS).notices == []


def test_a_create_names_together_every_secret_the_plan_could_not_read() -> None:
    unread = webfolder_spec(
        "Blog",
        ("acme-blog",),
        password=BLOG_PASSWORD.with_value(None),
        request_handshake=SecretRef("env", "BLOG_HANDSHAKE"),
    )
    result = plan(desired(unread), [], OPTIONS)
    assert only(result).action == "create"
    (notice,) = result.notices
    assert (notice.kind, notice.source, notice.id) == ("cannot_compare", "Blog", None)
    assert notice.detail.startswith("password, request_handshake not available to this plan")


def test_editing_a_patchs_writes_leaves_the_desired_state_and_the_next_plan_alone() -> None:
    # A patch's lists and maps are its own: a caller that edits a write in place changes
    # neither the loaded state nor a later plan made from it.
    live = live_of(s3_spec())
    state = desired(s3_spec(subdomains=("acme-products", "acme-more"), default_params={"q": 75}))
    (write,) = only(plan(state, [live], OPTIONS)).writes
    sent = json.loads(json.dumps(write))
    deployment = write["deployment"]
    assert isinstance(deployment, dict)
    subdomains, params = deployment["imgix_subdomains"], deployment["default_params"]
    assert isinstance(subdomains, list) and isinstance(params, dict)
    subdomains.append("acme-intruder")
    params["dpr"] = 2
    assert state.sources[0].deployment.managed()["imgix_subdomains"] == [
        "acme-products",
        "acme-more",
    ]
    assert only(plan(state, [live], OPTIONS)).writes == [sent]


def test_an_unknown_id_is_located_at_the_source_that_pins_it() -> None:
    # The CLI points at the file's line of the source the error names.
    wanted = desired(s3_spec("Known", ("acme-known",)), s3_spec("Pinned", ("acme-p",), id=ID_C))
    with pytest.raises(PlanError, match=f'"Pinned": no live source has id {ID_C}') as info:
        plan(wanted, [live_of(s3_spec("Known", ("acme-known",)))], OPTIONS)
    assert info.value.spec_indices == (1,)


def test_an_ignored_hostname_field_the_listing_omits_claims_nothing() -> None:
    live = live_of(s3_spec("Mine", ("mine",)), ID_A)
    listed = {k: v for k, v in live.deployment.items() if k != "custom_domains"}
    live = live.model_copy(update={"deployment": listed})
    spec = s3_spec("Mine", ("mine", "more"), ignore_changes=["deployment.custom_domains"])
    action = only(plan(desired(spec), [live], OPTIONS))
    assert paths(action) == ["deployment.imgix_subdomains"] and action.depends_on == []


def test_the_live_sources_a_spec_could_describe_are_listed_by_name_then_id() -> None:
    spec = s3_spec(subdomains=("one", "two", "three"))
    zed = live_of(s3_spec("Zed", ("one",)), ID_A)
    abe = live_of(s3_spec("Abe", ("two",)), ID_B)
    unnamed = live_of(s3_spec("Unnamed", ("three",)), ID_C).model_copy(update={"name": None})
    with pytest.raises(PlanError) as info:
        plan(desired(spec), [zed, abe, unnamed], OPTIONS)
    listed = f'({ID_C}), "Abe" ({ID_B}), "Zed" ({ID_A})'
    assert f"belong to 3 live sources ({listed}); add `id:`" in str(info.value)


def test_possible_renames_name_the_unmanaged_sources_in_name_order() -> None:
    zed = live_of(s3_spec("Zed", ("acme-z",)), ID_A)
    abe = live_of(s3_spec("Abe", ("acme-a",)), ID_B)
    result = plan(desired(s3_spec("Products", ("acme-new",))), [zed, abe], OPTIONS)
    assert [notice.kind for notice in result.notices] == ["possible_rename"] * 2
    assert [f"`id: {ID_B}`" in n.detail for n in result.notices] == [True, False]
    assert f'"Zed" ({ID_A})' in result.notices[1].detail


def test_a_cycle_names_the_first_of_the_hostnames_one_source_claims_from_another() -> None:
    first = live_of(s3_spec("First", ("x1", "x2")), ID_A)
    second = live_of(s3_spec("Second", ("y",)), ID_B)
    specs = desired(s3_spec("First", ("y",), id=ID_A), s3_spec("Second", ("x1", "x2"), id=ID_B))
    with pytest.raises(PlanError, match="cycle") as info:
        plan(specs, [first, second], OPTIONS)
    assert '"Second" claims x1 from "First"' in str(info.value)


# ------------------------------------------------------------- mutation audit (planner.py)


def test_a_marked_source_missing_a_secrets_fingerprint_is_still_to_adopt_when_it_differs() -> None:
    # A marker that holds the secret with no fingerprint: the tool never sent its value.
    marker = compose_annotation(None, Marker({"s3_secret_key": UNKNOWN}))
    unrecorded = live_of(s3_spec(), deployment={"annotation": marker})
    wanted = desired(s3_spec(cache_ttl_value=1800))
    result = plan(wanted, [unrecorded], OPTIONS)
    assert result.adoption is not None
    assert [(s.id, s.name) for s in result.adoption.sources] == [(ID_A, "Product images")]
    assert "deployment.s3_secret_key" not in paths(only(result))
    adopted = only(plan(wanted, [unrecorded], ADOPTING))
    assert (
        Change(path="deployment.s3_secret_key", before=WRITE_ONLY, after=WILL_BE_SENT)
        in adopted.changes
    )


def test_a_plan_carries_the_api_it_was_made_for_and_the_cost_of_its_writes() -> None:
    options = PlanOptions(
        fingerprint_key=KEY, api_url="https://api.example.test", updates_per_hour=None
    )
    live = live_of(s3_spec("Kept", ("acme-kept",)), ID_A)
    wanted = desired(s3_spec("Kept", ("acme-kept",), cache_ttl_value=1800), s3_spec())
    result = plan(wanted, [live], options)
    assert result.api_url == "https://api.example.test"
    assert result.digest == compute_digest(result.actions, "https://api.example.test")
    assert result.cost is not None
    assert (result.cost.creates, result.cost.updates) == (1, 1)
    assert (result.cost.creates_per_hour, result.cost.updates_per_hour) == (60, None)


def test_disabling_a_source_of_no_owner_writes_only_enabled_and_claims_no_owner() -> None:
    # A write of `enabled` alone cannot carry the marker: recording the owner would
    # take a deployment write the file does not ask for.
    unowned = live_of(s3_spec())
    action = only(plan(state(s3_spec(enabled=False), owner="acme/infra"), [unowned], OPTIONS))
    assert action.changes == [Change(path="enabled", before=True, after=False)]
    assert action.writes == [{"enabled": False}]
    unlisted = unowned.model_copy(update={"enabled": None})
    action = only(plan(state(s3_spec(enabled=False), owner="acme/infra"), [unlisted], OPTIONS))
    assert action.changes == [Change(path="enabled", before=NOT_RETURNED, after=False)]


def test_a_type_change_clears_no_web_secret_of_the_old_type() -> None:
    # The new type's deployment replaces the old one: the old password goes with it.
    folder = webfolder_spec("Blog", ("acme-blog",), password=BLOG_PASSWORD)
    live = live_of(folder, deployment={"password_encrypted": "ciphertext-1"})
    proxy = {"name": "Blog", "deployment": {"type": "webproxy", "imgix_subdomains": ["acme-blog"]}}
    action = only(plan(desired(proxy), [live], OPTIONS))
    assert "deployment.type" in paths(action)
    assert "deployment.password" not in paths(action)
    deployment = action.writes[0]["deployment"]
    assert isinstance(deployment, dict) and "password" not in deployment


def test_a_rename_of_a_source_whose_enabled_is_unlisted_states_enabled_too() -> None:
    # The rename is a write: a source the listing may show as disabled refuses it unless
    # it also says `enabled`.
    unlisted = live_of(s3_spec()).model_copy(update={"name": "Old name", "enabled": None})
    action = only(plan(desired(s3_spec()), [unlisted], OPTIONS))
    assert action.changes == [
        Change(path="name", before="Old name", after="Product images"),
        Change(path="enabled", before=NOT_RETURNED, after=True),
    ]


def test_a_deployment_change_or_an_enabling_of_a_source_of_no_owner_records_the_owner() -> None:
    unowned = live_of(s3_spec())
    owner = Change(path="owner", before=None, after="acme/infra")
    changed = plan(state(s3_spec(cache_ttl_value=1800), owner="acme/infra"), [unowned], OPTIONS)
    assert owner in only(changed).changes
    disabled = unowned.model_copy(update={"enabled": False})
    enabling = only(plan(state(s3_spec(), owner="acme/infra"), [disabled], OPTIONS))
    assert paths(enabling) == ["enabled", "owner"]
    assert owner in enabling.changes
    annotation = as_sent(enabling, -1)["deployment"]["annotation"]  # type: ignore[index,call-overload]
    assert parse_annotation(str(annotation)).marker.owner == "acme/infra"  # type: ignore[union-attr]


def test_a_rename_alone_still_gives_the_marker_to_record_a_web_secrets_encrypted_value() -> None:
    # The password was sent while the source was disabled: no `*_encrypted` value is
    # recorded yet. The rename carries no annotation, but the applier records the value
    # after it, and needs the marker to do so.
    spec = webfolder_spec("Blog", ("acme-blog",), password=BLOG_PASSWORD)
    live = live_of(spec, deployment={"password_encrypted": "ciphertext-1"})
    renamed = live.model_copy(update={"name": "Old name"})
    action = only(plan(desired(spec), [renamed], OPTIONS))
    assert action.writes == [{"name": "Blog"}] and action.record_encrypted
    assert action.marker == parse_annotation(str(live.deployment["annotation"])).marker


def test_a_source_taken_over_counts_as_managed_in_the_blast_radius() -> None:
    live = owned_live(s3_spec(), "other/repo")
    take_over = PlanOptions(fingerprint_key=KEY, take_over=True)
    result = plan(state(s3_spec(enabled=False), owner="acme/infra"), [live], take_over)
    assert only(result).takes_over_from == "other/repo"
    assert result.blast_radius is not None
    assert (result.blast_radius.risky, result.blast_radius.managed) == (1, 1)


def test_a_patch_releasing_hostnames_of_two_fields_names_the_risk_once() -> None:
    live = live_of(s3_spec(subdomains=("one", "two"), custom_domains=["img.acme.example"]))
    action = only(plan(desired(s3_spec(subdomains=("one",))), [live], OPTIONS))
    assert paths(action) == ["deployment.custom_domains", "deployment.imgix_subdomains"]
    assert action.risks == ["releases_hostnames"]


def test_a_source_to_adopt_keeps_its_notice_of_a_secret_the_plan_cannot_read() -> None:
    handshake = SecretRef("env", "BLOG_HANDSHAKE", "h" * 32)
    spec = webfolder_spec(
        "Blog", ("acme-blog",), password=BLOG_PASSWORD, request_handshake=handshake
    )
    recorded = parse_annotation(str(live_of(spec).deployment["annotation"])).marker
    assert recorded is not None
    # The password was never sent by the tool; the handshake was, but is unread now.
    marker = replace(recorded, fingerprints={**recorded.fingerprints, "password": UNKNOWN})
    live = live_of(spec, deployment={"annotation": compose_annotation(None, marker)})
    unread = webfolder_spec(
        "Blog", ("acme-blog",), password=BLOG_PASSWORD, request_handshake=handshake.with_value(None)
    )
    result = plan(desired(unread), [live], OPTIONS)
    assert result.adoption is not None and [s.id for s in result.adoption.sources] == [ID_A]
    assert [(n.kind, n.source, n.id) for n in result.notices] == [("cannot_compare", "Blog", ID_A)]
    assert result.notices[0].detail.startswith("cannot compare request_handshake: ")


def test_a_created_web_folder_with_a_password_records_its_encrypted_value() -> None:
    # The create's response holds `password_encrypted`: the applier records it in the
    # marker, so the next plan can tell a password changed in the dashboard.
    spec = webfolder_spec("Blog", ("acme-blog",), password=BLOG_PASSWORD)
    assert only(plan(desired(spec), [], OPTIONS)).record_encrypted
    assert not only(plan(desired(s3_spec()), [], OPTIONS)).record_encrypted


def test_a_target_typed_in_another_unicode_form_names_the_files_source() -> None:
    composed, decomposed = "Caf\u00e9", "Cafe\u0301"
    specs = desired(s3_spec(composed, ("cafe",)), s3_spec("Other", ("other",)))
    options = PlanOptions(fingerprint_key=KEY, targets=frozenset({decomposed}))
    assert [a.source for a in plan(specs, [], options).actions] == [composed]


def test_a_sources_unread_secret_is_noted_before_one_changed_outside() -> None:
    handshake = SecretRef("env", "BLOG_HANDSHAKE", "h" * 32)
    spec = webfolder_spec(
        "Blog", ("acme-blog",), password=BLOG_PASSWORD, request_handshake=handshake
    )
    recorded = parse_annotation(str(live_of(spec).deployment["annotation"])).marker
    assert recorded is not None
    marker = replace(recorded, encrypted={"password": encrypted_digest("password-1")})
    changed = {"annotation": compose_annotation(None, marker), "password_encrypted": "password-2"}
    unread = webfolder_spec(
        "Blog", ("acme-blog",), password=BLOG_PASSWORD, request_handshake=handshake.with_value(None)
    )
    result = plan(desired(unread), [live_of(spec, deployment=changed)], OPTIONS)
    assert [n.kind for n in result.notices] == ["cannot_compare", "encrypted_changed"]
