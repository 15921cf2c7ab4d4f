"""The emulator's rules, without HTTP: SourceStore raises domain errors, returns resources."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import Any

import pytest

from reconciler.emulator import EMULATOR_API_KEY, Faults, RateLimits, SourceStore, seeded_store
from reconciler.emulator.deployments import (
    DASHBOARD_ANNOTATION,
    DEFAULT_ANNOTATION,
    READ_ONLY_FIELDS,
)
from reconciler.emulator.errors import (
    BadRequest,
    Forbidden,
    InjectedFailure,
    NotFound,
    RateLimited,
    Unauthorized,
)
from reconciler.emulator.limits import ManualClock
from reconciler.pacing import Pacing
from reconciler.specs import (
    DEPLOYMENT_MODELS,
    deployment_defaults,
    deployment_fields,
    secret_fields,
)

HANDSHAKE = "h" * 32
SIGNING_KEY = "k" * 32

# One minimal valid deployment per type; secret values are recognisable so a test can
# prove they never come back.
MINIMAL: dict[str, dict[str, Any]] = json.loads(
    (Path(__file__).parent / "fixtures" / "emulator-deployments.json").read_text()
)
SECRET_VALUES = ("s3-SECRET", "gcs-SECRET", "sas-SECRET", "pw-SECRET", "wasabi-SECRET")


def deployment(kind: str, subdomain: str = "img", **extra: Any) -> dict[str, Any]:
    return {"type": kind, "imgix_subdomains": [subdomain], **MINIMAL[kind], **extra}


def create(store: SourceStore, kind: str = "s3", name: str = "Photos", **extra: Any) -> str:
    created = store.create_source({"name": name, "deployment": deployment(kind, **extra)})
    return str(created["id"])


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def store(clock: ManualClock) -> SourceStore:
    off = RateLimits(per_second=None, creates_per_hour=None, updates_per_hour=None)
    return SourceStore(clock=clock, rng=random.Random(1), limits=off, deploy_delay=5.0)


# --------------------------------------------------------------------------- create


@pytest.mark.parametrize("kind", sorted(MINIMAL))
def test_create_fills_documented_defaults_and_deploys(
    store: SourceStore, clock: ManualClock, kind: str
) -> None:
    created = store.create_source({"name": "Photos", "deployment": deployment(kind)})
    attributes = created["attributes"]
    shown = attributes["deployment"]
    for name, default in deployment_defaults(DEPLOYMENT_MODELS[kind]).items():
        if name not in MINIMAL[kind] and name not in secret_fields(DEPLOYMENT_MODELS[kind]):
            assert shown[name] == default, name
    assert re.fullmatch(r"[0-9a-f]{24}", created["id"])
    assert attributes["enabled"] is True
    assert attributes["deployment_status"] == "deploying"
    assert attributes["date_deployed"] == int(clock.now)
    assert shown["annotation"] == DEFAULT_ANNOTATION


def test_omitted_attributes_are_left_out_of_every_answer(clock: ManualClock) -> None:
    # A listing that does not say whether a source is enabled: clients must cope.
    store = SourceStore(clock=clock, omitted=frozenset({"enabled", "date_deployed"}))
    source_id = create(store)
    for resource in (store.get_source(source_id), *store.list_sources({}).resources):
        assert not {"enabled", "date_deployed"} & resource["attributes"].keys()
        assert resource["attributes"]["name"] == "Photos"


def test_omitting_mode_leaves_out_an_empty_map(store: SourceStore) -> None:
    source_id = create(store, "s3")
    store.omit_unset = True
    assert "default_params" not in store.get_source(source_id)["attributes"]["deployment"]


def test_omitting_mode_leaves_out_keys_without_a_value(store: SourceStore) -> None:
    source_id = create(store, "s3", default_params={"auto": "format"})
    full = store.get_source(source_id)["attributes"]["deployment"]
    assert full["robots.txt"] is None and full["custom_domains"] == []
    store.omit_unset = True
    shown = store.get_source(source_id)["attributes"]["deployment"]
    assert not {"robots.txt", "s3_prefix", "custom_domains", "image_error"} & shown.keys()
    assert shown["default_params"] == {"auto": "format"}
    assert shown == {k: v for k, v in full.items() if v not in (None, [], {})}
    (listed,) = store.list_sources({}).resources
    assert listed["attributes"]["deployment"] == shown


@pytest.mark.parametrize("kind", sorted(MINIMAL))
def test_secret_values_are_never_returned(store: SourceStore, kind: str) -> None:
    source_id = create(store, kind)
    shown = json.dumps([store.get_source(source_id), store.list_sources({}).resources])
    for value in (*SECRET_VALUES, HANDSHAKE, SIGNING_KEY):
        assert value not in shown
    for name in secret_fields(DEPLOYMENT_MODELS[kind]):
        assert name not in store.get_source(source_id)["attributes"]["deployment"]


@pytest.mark.parametrize("missing", ["name", "deployment"])
def test_create_requires_name_and_deployment(store: SourceStore, missing: str) -> None:
    attributes = {"name": "Photos", "deployment": deployment("s3")}
    del attributes[missing]
    with pytest.raises(BadRequest, match=f"{missing} is required"):
        store.create_source(attributes)


@pytest.mark.parametrize(
    ("attributes", "message"),
    [
        ({"name": "", "deployment": deployment("s3")}, "name must be a non-empty string"),
        ({"name": 3, "deployment": deployment("s3")}, "name must be a non-empty string"),
        ({"name": "n", "enabled": "yes", "deployment": deployment("s3")}, "enabled must be"),
        ({"name": "n", "enabled": 1, "deployment": deployment("s3")}, "enabled must be"),
        ({"name": "n", "enabled": None, "deployment": deployment("s3")}, "enabled must be"),
        ({"name": "n", "tags": [], "deployment": deployment("s3")}, "tags is not an attribute"),
        (
            {"name": "n", "deployment_status": "deployed", "deployment": deployment("s3")},
            "read-only",
        ),
        ({"name": "n", "secure_url_token": "t", "deployment": deployment("s3")}, "read-only"),
        ({"name": "n", "deployment": deployment("s3", allows_upload=True)}, "read-only"),
        ({"name": "n", "deployment": {"imgix_subdomains": ["a"]}}, "deployment.type must be"),
        ({"name": "n", "deployment": "s3"}, "deployment must be an object"),
        ("not an object", "attributes must be an object"),
    ],
)
def test_create_rejects_malformed_attributes(
    store: SourceStore, attributes: Any, message: str
) -> None:
    with pytest.raises(BadRequest, match=message):
        store.create_source(attributes)
    assert store.sources == {}


def test_names_are_not_unique(store: SourceStore) -> None:
    create(store, name="Same", subdomain="one")
    create(store, name="Same", subdomain="two")
    assert [r["attributes"]["name"] for r in store.list_sources({}).resources] == ["Same"] * 2


# --------------------------------------------------------------------------- constraints

# (type, attribute, bad value, words of the error): every constraint of the reference.
CONSTRAINTS = [
    ("s3", "cache_ttl_value", 1799, "greater than or equal to 1800"),
    ("s3", "cache_ttl_value", 31536001, "less than or equal to 31536000"),
    ("s3", "cache_ttl_error", 0, "greater than or equal to 1"),
    ("s3", "cache_ttl_error", 31536001, "less than or equal to 31536000"),
    ("s3", "cache_ttl_value", "3600", "must be a valid integer"),
    ("s3", "cache_ttl_behavior", "forever", "respect_origin"),
    ("s3", "imgix_subdomains", [], "at least 1 item"),
    ("s3", "imgix_subdomains", ["Bad_Label"], "must be a DNS label"),
    ("s3", "imgix_subdomains", ["a" * 64], "must be a DNS label"),
    ("s3", "imgix_subdomains", ["dup", "dup"], "more than once"),
    ("s3", "custom_domains", ["not a domain"], "must be a lowercase domain name"),
    ("s3", "image_error", "/relative.png", "absolute http(s) URL"),
    ("s3", "image_missing", "ftp://x.example/a.png", "absolute http(s) URL"),
    ("s3", "default_params", ["auto"], "valid dictionary"),
    ("s3", "default_params", {"fm": "wepb"}, "fm must be one of gif, jpg"),
    ("s3", "default_params", {"atuo": "format"}, "unknown imgix rendering parameter 'atuo'"),
    ("s3", "secure_url_enabled", "yes", "valid boolean"),
    ("s3", "robots.txt", "sometimes", "origin"),
    ("s3", "s3_bucket", "", "at least 1 character"),
    ("s3", "s3_secret_key", 7, "must be a string"),
    ("azure", "azure_service_type", "table", "'blob' or 'file'"),
    ("s3_compatible", "storage_provider", "Backblaze", "DigitalOcean"),
    ("s3_compatible", "endpoint_url", "s3.example", "absolute http(s) URL"),
    ("webfolder", "webfolder_base_url", "origin.example", "absolute http(s) URL"),
    ("webfolder", "username", "user:name", "must not contain ':'"),
    ("webfolder", "password", "pass:word", "must not contain ':'"),
    ("webfolder", "request_handshake", "x" * 31, "exactly 32 latin-1 characters"),
    ("webproxy", "request_signing_key", "\u20ac" * 32, "latin-1"),
    ("webproxy", "robots.txt", "origin", "'allow-all' or 'disallow-all'"),
    ("webproxy", "secure_url_enabled", False, "must have secure_url_enabled: true"),
    ("gcs", "s3_bucket", "b", "is not an attribute of gcs sources"),
]


@pytest.mark.parametrize(("kind", "attribute", "value", "words"), CONSTRAINTS)
def test_every_attribute_constraint_is_enforced(
    store: SourceStore, kind: str, attribute: str, value: Any, words: str
) -> None:
    with pytest.raises(BadRequest) as refused:
        store.create_source({"name": "n", "deployment": deployment(kind, **{attribute: value})})
    assert words in refused.value.detail
    assert "deployment" in refused.value.detail
    if attribute in secret_fields(DEPLOYMENT_MODELS[kind]):
        assert str(value) not in refused.value.detail


@pytest.mark.parametrize("kind", [["s3"], {"s3": True}, 3, None])
def test_a_deployment_type_that_is_not_text_is_a_400(store: SourceStore, kind: Any) -> None:
    # A list or an object cannot be looked up as a type name: still a 400, never a crash.
    with pytest.raises(BadRequest, match=r"deployment\.type must be one of"):
        store.create_source({"name": "n", "deployment": {**deployment("s3"), "type": kind}})
    source_id = create(store)
    with pytest.raises(BadRequest, match=r"deployment\.type must be one of"):
        store.update_source(source_id, {"deployment": {"type": kind}})


@pytest.mark.parametrize(
    ("extra", "detail"),
    [
        (
            {"cache_ttl_value": 1799},
            "deployment.cache_ttl_value must be greater than or equal to 1800.",
        ),
        (
            {"imgix_subdomains": ["A_b"]},
            "deployment.imgix_subdomains[0] must be a DNS label: lowercase letters, digits and "
            "inner hyphens, at most 63 characters (got 'A_b').",
        ),
        ({"bogus": 1}, "deployment.bogus is not an attribute of s3 sources."),
    ],
)
def test_a_refused_attribute_is_one_sentence_naming_its_path(
    store: SourceStore, extra: dict[str, Any], detail: str
) -> None:
    # Users read these details in apply's errors: the path, then what the value must be.
    with pytest.raises(BadRequest) as refused:
        store.create_source({"name": "n", "deployment": deployment("s3", **extra)})
    assert refused.value.detail == detail


@pytest.mark.parametrize("kind", sorted(MINIMAL))
def test_a_type_accepts_only_its_own_attributes(store: SourceStore, kind: str) -> None:
    # sources-reference.txt: one table of attributes per source type; read from the models.
    own = {api for _, api in deployment_fields(DEPLOYMENT_MODELS[kind])}
    others = {
        api for model in DEPLOYMENT_MODELS.values() for _, api in deployment_fields(model)
    } - own
    assert others
    for attribute in sorted(others):
        with pytest.raises(BadRequest) as refused:
            store.create_source({"name": "n", "deployment": deployment(kind, **{attribute: "x"})})
        assert (
            refused.value.detail == f"deployment.{attribute} is not an attribute of {kind} sources."
        )
    for attribute in sorted(READ_ONLY_FIELDS):
        with pytest.raises(BadRequest, match=f"deployment.{attribute} is read-only"):
            store.create_source({"name": "n", "deployment": deployment(kind, **{attribute: "x"})})
    assert store.sources == {}


def test_at_most_100_hostnames(store: SourceStore) -> None:
    names = {"imgix_subdomains": [f"s{i}" for i in range(60)]}
    names["custom_domains"] = [f"d{i}.example.com" for i in range(41)]
    with pytest.raises(BadRequest, match="at most 100 names"):
        store.create_source({"name": "n", "deployment": {**deployment("s3"), **names}})
    names["custom_domains"].pop()
    store.create_source({"name": "n", "deployment": {**deployment("s3"), **names}})


def test_required_fields_of_the_type_are_required(store: SourceStore) -> None:
    with pytest.raises(BadRequest) as refused:
        store.create_source({"name": "n", "deployment": {"type": "s3", "imgix_subdomains": ["a"]}})
    # Every problem at once, one clause each: a user fixes the file in one pass.
    assert refused.value.detail == (
        "deployment.s3_access_key is required; deployment.s3_bucket is required; "
        "deployment.s3_secret_key is required."
    )


# --------------------------------------------------------------------------- hostnames


@pytest.mark.parametrize(
    ("field", "claimed"),
    [("imgix_subdomains", ["taken"]), ("custom_domains", ["img.taken.example"])],
)
def test_hostnames_are_globally_unique(store: SourceStore, field: str, claimed: list[str]) -> None:
    create(store, subdomain="first", **{field: claimed} if field == "custom_domains" else {})
    if field == "imgix_subdomains":
        create(store, subdomain="taken")
    with pytest.raises(BadRequest) as refused:
        store.create_source(
            {"name": "n", "deployment": {**deployment("gcs", subdomain="other"), field: claimed}}
        )
    label = "imgix subdomain" if field == "imgix_subdomains" else "custom domain"
    assert refused.value.detail == (
        f"deployment.{field}: the {label} {claimed[0]} is already in use by another source."
    )


def test_hostnames_of_other_accounts_are_taken(store: SourceStore) -> None:
    store.foreign_hostnames.add("elsewhere")
    with pytest.raises(BadRequest, match="elsewhere is already in use"):
        create(store, subdomain="elsewhere")


def test_a_source_may_keep_its_own_hostnames(store: SourceStore) -> None:
    source_id = create(store, subdomain="mine")
    updated = store.update_source(source_id, {"deployment": {"imgix_subdomains": ["mine", "b"]}})
    assert updated["attributes"]["deployment"]["imgix_subdomains"] == ["mine", "b"]


def _taken(store: SourceStore, subdomain: str) -> bool:
    """Whether a new source is refused `subdomain` (if not, the new source now holds it)."""
    try:
        create(store, "gcs", subdomain=subdomain)
    except BadRequest as problem:
        assert "already in use" in problem.detail
        return True
    return False


def test_a_subdomain_moves_between_sources(store: SourceStore) -> None:
    first, second = create(store, subdomain="moving"), create(store, subdomain="other")
    with pytest.raises(BadRequest, match="moving is already in use"):
        store.update_source(second, {"deployment": {"imgix_subdomains": ["other", "moving"]}})
    store.update_source(first, {"deployment": {"imgix_subdomains": ["kept"]}})
    store.update_source(second, {"deployment": {"imgix_subdomains": ["other", "moving"]}})
    with pytest.raises(BadRequest, match="moving is already in use"):
        store.update_source(first, {"deployment": {"imgix_subdomains": ["moving"]}})
    assert [_taken(store, name) for name in ("moving", "other", "kept")] == [True, True, True]


def test_a_type_change_releases_the_hostnames_it_drops(store: SourceStore) -> None:
    source_id = create(store, subdomain="before", custom_domains=["img.before.example"])
    store.update_source(
        source_id,
        {
            "deployment": {
                **deployment("webfolder", subdomain="after"),
                "custom_domains": ["img.after.example"],
            }
        },
    )
    assert not _taken(store, "before")
    assert _taken(store, "after")
    # The freed custom domain is free again; the new one is held.
    create(store, "gcs", subdomain="x", custom_domains=["img.before.example"])
    with pytest.raises(BadRequest, match=re.escape("img.after.example is already in use")):
        create(store, "gcs", subdomain="y", custom_domains=["img.after.example"])


def test_a_dashboard_redeploy_moves_hostnames_without_checks(store: SourceStore) -> None:
    first, second = create(store, subdomain="a"), create(store, subdomain="b")
    store.dashboard_redeploy(first, {"imgix_subdomains": ["c"]})
    assert [_taken(store, name) for name in ("a", "c")] == [False, True]
    # The dashboard may hand out a name another source holds: both then hold it.
    store.dashboard_redeploy(first, {"imgix_subdomains": ["b"]})
    store.dashboard_redeploy(second, {"imgix_subdomains": ["d"]})
    assert _taken(store, "b")
    store.dashboard_redeploy(first, {"imgix_subdomains": ["e"]})
    assert not _taken(store, "b")


def test_restored_sources_hold_their_hostnames(store: SourceStore, clock: ManualClock) -> None:
    source_id = create(store, subdomain="saved")
    restored = SourceStore(clock=clock, rng=random.Random(4))
    restored.load_json(store.to_json())
    assert _taken(restored, "saved")
    # Loading a source again under its id replaces it, releasing what it no longer holds.
    state = store.to_json()
    state["sources"][0]["deployment"]["imgix_subdomains"] = ["resaved"]
    restored.load_json(state)
    assert list(restored.sources) == [source_id]
    assert [_taken(restored, name) for name in ("saved", "resaved")] == [False, True]


def test_replacing_the_sources_reindexes_their_hostnames(store: SourceStore) -> None:
    kept, dropped = create(store, subdomain="kept"), create(store, subdomain="dropped")
    store.sources = {dropped: store.sources[dropped], kept: store.sources[kept]}
    assert list(store.sources) == [dropped, kept]
    assert _taken(store, "kept")
    store.sources = {kept: store.sources[kept]}
    assert not _taken(store, "dropped")


# --------------------------------------------------------------------------- update


def test_partial_update_merges_and_lists_replace_whole(store: SourceStore) -> None:
    source_id = create(store, default_params={"auto": "format", "q": 75}, custom_domains=[])
    store.update_source(source_id, {"deployment": {"default_params": {"fm": "webp"}}})
    updated = store.update_source(source_id, {"enabled": True})
    shown = updated["attributes"]["deployment"]
    assert shown["default_params"] == {"fm": "webp"}
    assert shown["s3_bucket"] == "b"
    assert updated["attributes"]["name"] == "Photos"


def test_name_only_update_does_not_redeploy(store: SourceStore, clock: ManualClock) -> None:
    source_id = create(store)
    clock.advance(60)
    updated = store.update_source(source_id, {"name": "Renamed"})
    assert updated["attributes"]["deployment_status"] == "deployed"
    assert updated["attributes"]["date_deployed"] == int(clock.now) - 60


def test_resending_the_current_deployment_does_not_redeploy(
    store: SourceStore, clock: ManualClock
) -> None:
    # api-notes.md: `deploying` follows a deployment-changing PATCH; one that changes
    # nothing keeps the deployment, its date and its annotation.
    source_id = create(store, annotation="first", cache_ttl_value=3600)
    clock.advance(60)
    same = {"cache_ttl_value": 3600, "s3_bucket": "b", "imgix_subdomains": ["img"]}
    updated = store.update_source(source_id, {"deployment": same})["attributes"]
    assert updated["deployment_status"] == "deployed"
    assert updated["date_deployed"] == int(clock.now) - 60
    assert updated["deployment"]["annotation"] == "first"


def test_deployment_change_redeploys_and_rewrites_annotation(
    store: SourceStore, clock: ManualClock
) -> None:
    source_id = create(store, annotation="first")
    clock.advance(60)
    updated = store.update_source(source_id, {"deployment": {"cache_ttl_value": 3600}})
    attributes = updated["attributes"]
    assert attributes["deployment_status"] == "deploying"
    assert attributes["date_deployed"] == int(clock.now)
    assert attributes["deployment"]["annotation"] == DEFAULT_ANNOTATION
    kept = store.update_source(source_id, {"deployment": {"annotation": "mine"}})
    assert kept["attributes"]["deployment"]["annotation"] == "mine"


def test_unknown_source_is_not_found(store: SourceStore) -> None:
    with pytest.raises(NotFound):
        store.update_source("0" * 24, {"enabled": True})
    with pytest.raises(NotFound):
        store.get_source("0" * 24)


MOVED = {
    "azure_service_type": "file",
    "storage_provider": "Linode",
    "endpoint_url": "https://moved.example",
}
# Origins with credentials: a web folder's base URL moves it, but it has none to re-send.
LOCATIONS = [
    (kind, field)
    for kind, model in DEPLOYMENT_MODELS.items()
    if model.CREDENTIAL_FIELDS
    for field in sorted(model.LOCATION_FIELDS)
]


@pytest.mark.parametrize(("kind", "field"), LOCATIONS)
def test_moving_an_origin_requires_its_credentials(
    store: SourceStore, kind: str, field: str
) -> None:
    source_id = create(store, kind)
    moved = MOVED.get(field, "moved")
    with pytest.raises(BadRequest, match=f"Changing deployment.{field} requires"):
        store.update_source(source_id, {"deployment": {field: moved}})
    credentials = {name: MINIMAL[kind][name] for name in DEPLOYMENT_MODELS[kind].CREDENTIAL_FIELDS}
    updated = store.update_source(source_id, {"deployment": {field: moved, **credentials}})
    assert updated["attributes"]["deployment"][field] == moved


def test_resending_the_same_location_needs_no_credentials(store: SourceStore) -> None:
    source_id = create(store, "s3")
    store.update_source(source_id, {"deployment": {"s3_bucket": "b", "cache_ttl_value": 3600}})


def test_changing_type_requires_the_new_types_fields_and_credentials(store: SourceStore) -> None:
    source_id = create(store, "webfolder")
    with pytest.raises(BadRequest, match=r"Changing deployment\.type requires"):
        store.update_source(source_id, {"deployment": {"type": "s3", "s3_bucket": "b"}})
    with pytest.raises(BadRequest, match=r"deployment\.s3_bucket is required"):
        store.update_source(
            source_id,
            {"deployment": {"type": "s3", "s3_access_key": "AK", "s3_secret_key": "x"}},
        )
    updated = store.update_source(source_id, {"deployment": {"type": "s3", **MINIMAL["s3"]}})
    shown = updated["attributes"]["deployment"]
    assert shown["type"] == "s3"
    assert "webfolder_base_url" not in shown
    assert shown["imgix_subdomains"] == ["img"]


def test_webproxy_refuses_insecure_urls_on_update(store: SourceStore) -> None:
    source_id = create(store, "webproxy")
    with pytest.raises(BadRequest, match="secure_url_enabled: true"):
        store.update_source(source_id, {"deployment": {"secure_url_enabled": False}})


# --------------------------------------------------------------------------- disabled


def test_a_disabled_source_changes_only_when_enabled_too(
    store: SourceStore, clock: ManualClock
) -> None:
    source_id = create(store)
    disabled = store.update_source(source_id, {"enabled": False})
    assert disabled["attributes"]["deployment_status"] == "disabled"
    for change in (
        {"name": "x"},
        {"deployment": {"cache_ttl_value": 3600}},
        {"enabled": False, "name": "x"},
    ):
        with pytest.raises(BadRequest, match="is disabled"):
            store.update_source(source_id, change)
    clock.advance(60)
    enabled = store.update_source(source_id, {"enabled": True, "name": "x"})
    assert enabled["attributes"]["deployment_status"] == "deploying"
    assert enabled["attributes"]["name"] == "x"


def test_restating_enabled_does_not_redeploy(store: SourceStore, clock: ManualClock) -> None:
    # Only enabling a disabled source deploys it again; saying what already holds does not.
    source_id = create(store)
    clock.advance(60)
    deployed = int(clock.now) - 60
    kept = store.update_source(source_id, {"enabled": True})["attributes"]
    assert (kept["deployment_status"], kept["date_deployed"]) == ("deployed", deployed)
    store.update_source(source_id, {"enabled": False})
    still = store.update_source(source_id, {"enabled": False})["attributes"]
    assert (still["deployment_status"], still["date_deployed"]) == ("disabled", deployed)


def test_a_source_may_be_created_disabled(store: SourceStore) -> None:
    created = store.create_source({"name": "n", "enabled": False, "deployment": deployment("s3")})
    assert created["attributes"]["deployment_status"] == "disabled"


# --------------------------------------------------------------------------- deployment status


def test_deploying_becomes_deployed_after_the_delay(store: SourceStore, clock: ManualClock) -> None:
    source_id = create(store)
    clock.advance(4.9)
    assert store.get_source(source_id)["attributes"]["deployment_status"] == "deploying"
    clock.advance(0.1)
    assert store.get_source(source_id)["attributes"]["deployment_status"] == "deployed"


def test_status_is_the_deployment_status_a_response_shows(
    store: SourceStore, clock: ManualClock
) -> None:
    source_id = create(store)
    assert store.status(store.sources[source_id]) == "deploying"
    clock.advance(5)
    assert store.status(store.sources[source_id]) == "deployed"
    store.update_source(source_id, {"enabled": False})
    assert store.status(store.sources[source_id]) == "disabled"


# --------------------------------------------------------------------------- secrets


@pytest.mark.parametrize("kind", ["webfolder", "webproxy"])
def test_encrypted_values_change_on_every_write(store: SourceStore, kind: str) -> None:
    source_id = create(store, kind, request_handshake=HANDSHAKE)
    first = store.get_source(source_id)["attributes"]["deployment"]
    assert first["request_handshake_encrypted"].startswith("enc:")
    assert first["request_handshake_set"] is True
    store.update_source(source_id, {"deployment": {"cache_ttl_value": 3600}})
    same = store.get_source(source_id)["attributes"]["deployment"]
    assert same["request_handshake_encrypted"] == first["request_handshake_encrypted"]
    store.update_source(source_id, {"deployment": {"request_handshake": HANDSHAKE}})
    rewritten = store.get_source(source_id)["attributes"]["deployment"]
    assert rewritten["request_handshake_encrypted"] != first["request_handshake_encrypted"]
    cleared = store.update_source(source_id, {"deployment": {"request_handshake": None}})
    shown = cleared["attributes"]["deployment"]
    assert shown["request_handshake_encrypted"] is None
    assert shown["request_handshake_set"] is False


def test_secure_url_token_follows_secure_url_enabled(store: SourceStore) -> None:
    source_id = create(store)
    assert "secure_url_token" not in store.get_source(source_id)["attributes"]
    on = store.update_source(source_id, {"deployment": {"secure_url_enabled": True}})
    token = on["attributes"]["secure_url_token"]
    assert re.fullmatch(r"[0-9a-f]{32}", token)
    again = store.update_source(source_id, {"deployment": {"cache_ttl_value": 3600}})
    assert again["attributes"]["secure_url_token"] == token
    off = store.update_source(source_id, {"deployment": {"secure_url_enabled": False}})
    assert "secure_url_token" not in off["attributes"]


def test_stored_secrets_are_the_values_sent(store: SourceStore) -> None:
    source_id = create(store, "s3")
    store.update_source(source_id, {"deployment": {"s3_secret_key": "rotated"}})
    assert store.sources[source_id].deployment["s3_secret_key"] == "rotated"


# --------------------------------------------------------------------------- dashboard


def test_dashboard_redeploy_rewrites_the_annotation(store: SourceStore, clock: ManualClock) -> None:
    source_id = create(store)
    clock.advance(60)
    store.dashboard_redeploy(source_id, {"cache_ttl_value": 7200})
    attributes = store.get_source(source_id)["attributes"]
    assert attributes["deployment"]["cache_ttl_value"] == 7200
    assert attributes["deployment"]["annotation"] == DASHBOARD_ANNOTATION
    assert attributes["deployment_status"] == "deploying"


@pytest.mark.parametrize(
    ("hostnames", "problem"),
    [
        ("img-b", "deployment.{field} must be a valid list."),
        (7, "deployment.{field} must be a valid list."),
        (None, "deployment.{field} must be a valid list."),
        (["img-b", 1], "deployment.{field}[1] must be a valid string."),
        ([["img-b"]], "deployment.{field}[0] must be a valid string."),
    ],
)
@pytest.mark.parametrize("field", ["imgix_subdomains", "custom_domains"])
def test_a_dashboard_edit_of_hostnames_that_are_not_text_is_refused_as_the_api_refuses_it(
    store: SourceStore, field: str, hostnames: object, problem: str
) -> None:
    # The dashboard offers hostnames as lists of text only. Such an edit was a TypeError
    # halfway through, leaving the source holding the value unindexed: every later write
    # to it was a TypeError too.
    source_id = create(store, "gcs", subdomain="img-a")
    before = store.get_source(source_id)

    with pytest.raises(BadRequest, match=re.escape(problem.format(field=field))):
        store.dashboard_redeploy(source_id, {field: hostnames, "cache_ttl_value": 7200})

    assert store.get_source(source_id) == before
    store.update_source(source_id, {"deployment": {"imgix_subdomains": ["img-c"]}})
    assert [_taken(store, name) for name in ("img-a", "img-c")] == [False, True]


# --------------------------------------------------------------------------- listing


def test_list_filters_sorts_and_pages(store: SourceStore, clock: ManualClock) -> None:
    for index, kind in enumerate(["s3", "gcs", "s3", "webfolder"]):
        clock.advance(10)
        create(store, kind, name=f"n{3 - index}", subdomain=f"sub{index}")
    store.update_source(_id(store, "n0"), {"enabled": False})

    def names(params: dict[str, str]) -> list[str]:
        return [r["attributes"]["name"] for r in store.list_sources(params).resources]

    assert names({"filter[deployment.type]": "s3"}) == ["n3", "n1"]
    assert names({"filter[deployment.type]": "gcs,webfolder"}) == ["n2", "n0"]
    assert names({"filter[enabled]": "false"}) == ["n0"]
    assert names({"filter[name]": "n2"}) == ["n2"]
    assert names({"filter[deployment.imgix_subdomains]": "sub3"}) == ["n0"]
    assert names({"filter[deployment_status]": "disabled"}) == ["n0"]
    assert names({"filter[deployment_status]": "deployed"}) == ["n3", "n2", "n1"]
    assert names({"sort": "name"}) == ["n0", "n1", "n2", "n3"]
    assert names({"sort": "-date_deployed"}) == ["n0", "n1", "n2", "n3"]
    assert names({"sort": "enabled,name"}) == ["n0", "n1", "n2", "n3"]
    assert names({"sort": "name", "page[size]": "3", "page[number]": "1"}) == ["n3"]


def _id(store: SourceStore, name: str) -> str:
    return next(s.id for s in store.sources.values() if s.name == name)


@pytest.mark.parametrize(
    "params",
    [
        {"sort": "deployment.type"},
        {"filter[deployment.s3_secret_key]": "x"},
        {"filter[bogus]": "x"},
        {"page[size]": "0"},
        {"page[number]": "-1"},
        {"page[size]": "ten"},
        {"unknown": "1"},
    ],
)
def test_list_rejects_unknown_queries(store: SourceStore, params: dict[str, str]) -> None:
    with pytest.raises(BadRequest):
        store.list_sources(params)


@pytest.mark.parametrize("key", ["page[size]", "page[number]"])
@pytest.mark.parametrize("raw", ["\uff11\uff10", "\u0661", "1_0", " 1", "1\n"])
def test_page_parameters_take_ascii_digits_only(store: SourceStore, key: str, raw: str) -> None:
    # Python's int() reads full-width and Arabic-Indic digits, underscores and padding; a
    # real server's query parser wants the ASCII digits a URL carries.
    create(store)
    with pytest.raises(BadRequest, match=re.escape(f"{key} must be an integer")):
        store.list_sources({key: raw})


def test_the_default_store_has_the_documented_page_sizes_and_a_5_second_deploy(
    clock: ManualClock,
) -> None:
    # api-notes.md: "emulate with default 20, max 100"; `deploying` lasts "some seconds".
    store = SourceStore(clock=clock, limits=RateLimits(per_second=None, creates_per_hour=None))
    for index in range(101):
        create(store, subdomain=f"s{index}")
    assert len(store.list_sources({}).resources) == 20
    assert len(store.list_sources({"page[size]": "101"}).resources) == 100
    assert store.list_sources({"page[size]": "101"}).pagination["pageSize"] == 100
    clock.advance(4.9)
    assert store.list_sources({"filter[deployment_status]": "deployed"}).resources == []
    clock.advance(0.1)
    assert len(store.list_sources({"filter[deployment_status]": "deployed"}).resources) == 20


def test_a_seeded_random_generator_gives_the_same_ids(clock: ManualClock) -> None:
    # `--emulator` runs in two processes must agree on ids: a saved plan names them.
    ids = [create(SourceStore(clock=clock, rng=random.Random(3))) for _ in range(2)]
    assert ids[0] == ids[1]


@pytest.mark.parametrize(
    ("params", "detail"),
    [
        ({"page[number]": "-1"}, "page[number] must be at least 0."),
        ({"page[size]": "0"}, "page[size] must be at least 1."),
        ({"page[size]": "9" * 5000}, "page[size] must be an integer."),
        ({"filter[name": "x"}, "Unknown query parameter filter[name."),
        ({"filter[type]": "s3"}, "Cannot filter by type."),  # deployment.type, not type
        (
            {"sort": "-deployment.type"},
            "Cannot sort by -deployment.type: sort by one of date_deployed, enabled, name.",
        ),
    ],
)
def test_a_refused_query_says_which_parameter_and_why(
    store: SourceStore, params: dict[str, str], detail: str
) -> None:
    with pytest.raises(BadRequest) as refused:
        store.list_sources(params)
    assert refused.value.detail == detail


def test_sparse_fields_naming_no_attribute_are_left_out(store: SourceStore) -> None:
    create(store)
    fields = "bogus,deployment.bogus,name"
    (resource,) = store.list_sources({"fields[sources]": fields}).resources
    assert resource["attributes"] == {"name": "Photos"}


def test_sparse_fields_name_whole_attributes_too(store: SourceStore) -> None:
    source_id = create(store)
    (resource,) = store.list_sources({"fields[sources]": "deployment,enabled.x"}).resources
    shown = store.get_source(source_id)["attributes"]
    # `enabled` has no parts: asking for one of them gets the whole value.
    assert resource["attributes"] == {"deployment": shown["deployment"], "enabled": True}


def test_a_name_filter_matches_a_name_holding_a_comma(store: SourceStore) -> None:
    # Other filters take a comma-separated list; a display name may hold commas itself.
    create(store, subdomain="one", name="Photos, archived")
    create(store, subdomain="two", name="Photos")
    listed = store.list_sources({"filter[name]": "Photos, archived"}).resources
    assert [r["attributes"]["name"] for r in listed] == ["Photos, archived"]


def test_a_filter_for_null_finds_sources_without_a_value(store: SourceStore) -> None:
    create(store, subdomain="bare", name="Bare")
    create(store, subdomain="prefixed", name="Prefixed", s3_prefix="images/")
    listed = store.list_sources({"filter[deployment.s3_prefix]": "null"}).resources
    assert [r["attributes"]["name"] for r in listed] == ["Bare"]


def test_page_size_is_clamped_and_described(clock: ManualClock) -> None:
    store = SourceStore(clock=clock, rng=random.Random(2), max_page_size=3)
    for index in range(7):
        create(store, subdomain=f"s{index}")
    page = store.list_sources({"page[size]": "100", "page[number]": "1"})
    assert len(page.resources) == 3
    assert page.pagination == {
        "currentPage": 1,
        "pageSize": 3,
        "totalPages": 3,
        "totalRecords": 7,
        "hasNextPage": True,
        "hasPreviousPage": True,
        "nextPage": 2,
        "previousPage": 0,
    }
    assert len(store.list_sources({}).resources) == 3


def test_sparse_fields(store: SourceStore) -> None:
    create(store)
    (resource,) = store.list_sources({"fields[sources]": "name,deployment.type"}).resources
    assert resource["attributes"] == {"name": "Photos", "deployment": {"type": "s3"}}


# --------------------------------------------------------------------------- access and limits


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Bearer",
        "Bearer ak_123",
        "Basic " + "a" * 64,
        "Bearer ak_" + "G" * 64,
        "ak_" + "a" * 64,
    ],
)
def test_malformed_keys_are_unauthorized(store: SourceStore, header: str | None) -> None:
    with pytest.raises(Unauthorized, match="A valid API key is required"):
        store.authorize(header)


@pytest.mark.parametrize(
    "header",
    ["Bearer  " + EMULATOR_API_KEY, "bearer " + EMULATOR_API_KEY, " Bearer " + EMULATOR_API_KEY],
)
def test_a_well_formed_key_is_accepted_with_any_scheme_case_and_spacing(
    store: SourceStore, header: str
) -> None:
    # RFC 7235: the scheme is case-insensitive and one or more spaces precede the credentials.
    store.authorize(header)


def test_keys_without_the_sources_permission_are_forbidden(store: SourceStore) -> None:
    key = "ak_" + "b" * 64
    store.authorize(f"Bearer {key}")
    store.unprivileged_keys.add(key)
    with pytest.raises(Forbidden):
        store.authorize(f"Bearer {key}")


def test_per_second_limit(store: SourceStore, clock: ManualClock) -> None:
    store.limits = RateLimits(per_second=4)
    for _ in range(4):
        store.admit()
    with pytest.raises(RateLimited) as limited:
        store.admit()
    assert limited.value.retry_after == 1
    clock.advance(1.0)
    store.admit()


@pytest.mark.parametrize("kind", ["creates", "updates"])
def test_hourly_write_limits(store: SourceStore, clock: ManualClock, kind: str) -> None:
    store.limits = RateLimits(per_second=None, creates_per_hour=2, updates_per_hour=2)
    source_id = create(store, subdomain="first")

    def write(index: int) -> None:
        if kind == "creates":
            create(store, subdomain=f"s{index}")
        else:
            store.update_source(source_id, {"name": f"n{index}"})

    write(1)
    if kind == "updates":
        write(2)
    clock.advance(600)
    with pytest.raises(RateLimited, match=f"source {kind} per hour") as limited:
        write(3)
    assert limited.value.retry_after == 3000
    clock.advance(3000)
    write(4)


def test_the_default_limits_are_the_documented_ones(clock: ManualClock) -> None:
    # api-notes.md "Rate limits": 4 requests/s, 60 creates/h, 60 updates/h; the client
    # paces itself to the same figures by default.
    store = SourceStore(clock=clock, rng=random.Random(3))
    assert Pacing() == Pacing(per_second=4, creates_per_hour=60, updates_per_hour=60)
    for index in range(60):
        clock.advance(1.0)
        create(store, subdomain=f"s{index}")
    source_id = next(iter(store.sources))
    for index in range(60):
        clock.advance(1.0)
        store.update_source(source_id, {"name": f"n{index}"})
    clock.advance(1.0)
    with pytest.raises(RateLimited, match="at most 60 source creates per hour"):
        create(store, subdomain="s60")
    with pytest.raises(RateLimited, match="at most 60 source updates per hour"):
        store.update_source(source_id, {"name": "late"})
    for _ in range(4):
        store.admit()
    with pytest.raises(RateLimited, match="at most 4 requests per second"):
        store.admit()


def test_injected_errors(store: SourceStore) -> None:
    with pytest.raises(InjectedFailure):
        SourceStore(faults=Faults(error_rate=1.0)).admit()
    store.faults = Faults(error_rate=1.0)
    with pytest.raises(InjectedFailure):
        store.admit()
    store.faults = Faults(lost_response_rate=1.0)
    assert store.lose_response()
    store.faults = Faults()
    assert not store.lose_response()


def test_requests_without_faults_draw_no_randomness(clock: ManualClock) -> None:
    # Ids come from the seeded generator: how many requests came before must not move them.
    quiet = SourceStore(clock=clock, rng=random.Random(6), limits=RateLimits(per_second=None))
    for _ in range(3):
        quiet.admit()
        assert not quiet.lose_response()
    assert create(quiet) == create(SourceStore(clock=clock, rng=random.Random(6)))


def test_fault_rates_are_probabilities(clock: ManualClock) -> None:
    # A rate of 0.5 fails about half the requests, not all of them (seeded: one answer).
    store = SourceStore(
        clock=clock,
        rng=random.Random(8),
        limits=RateLimits(per_second=None),
        faults=Faults(error_rate=0.5, lost_response_rate=0.5),
    )
    failures = 0
    for _ in range(200):
        try:
            store.admit()
        except InjectedFailure:
            failures += 1
    lost = sum(store.lose_response() for _ in range(200))
    assert 60 < failures < 140
    assert 60 < lost < 140


# --------------------------------------------------------------------------- state


def test_state_round_trips_with_secrets(store: SourceStore, clock: ManualClock) -> None:
    create(store, "webfolder", subdomain="w", secure_url_enabled=True)
    create(store, "s3_compatible", subdomain="c")
    restored = SourceStore(clock=clock, rng=random.Random(9))
    restored.load_json(json.loads(json.dumps(store.to_json())))
    assert restored.list_sources({}).resources == store.list_sources({}).resources
    assert restored.to_json() == store.to_json()


def test_a_state_without_derived_values_gets_them_on_load(clock: ManualClock) -> None:
    # A hand-written state names the secrets only: what the API derives from them (the
    # `*_encrypted` values, the secure URL token) is made on load, as a write would.
    state = {
        "version": 1,
        "sources": [
            {
                "id": "a" * 24,
                "name": "Blog",
                "deployment": deployment("webfolder", "w", secure_url_enabled=True),
            }
        ],
    }
    restored = SourceStore(clock=clock, rng=random.Random(5))
    restored.load_json(state)
    (shown,) = restored.list_sources({}).resources
    assert shown["attributes"]["deployment"]["password_encrypted"]
    assert shown["attributes"]["secure_url_token"]
    # Without a date, a saved source was deployed long enough ago to be `deployed` now.
    assert shown["attributes"]["deployment_status"] == "deployed"
    # Loading the same state again replaces the source: its hostnames are its own.
    restored.load_json(state)
    assert len(restored.sources) == 1


def test_a_state_giving_two_sources_one_subdomain_is_refused(clock: ManualClock) -> None:
    state = {
        "version": 1,
        "sources": [
            {"name": "a", "deployment": deployment("s3", "shared")},
            {"name": "b", "deployment": deployment("gcs", "shared")},
        ],
    }
    with pytest.raises(BadRequest, match="shared is already in use"):
        SourceStore(clock=clock).load_json(state)


@pytest.mark.parametrize(
    ("state", "words"),
    [
        ([], "the state must be a JSON object"),
        ({"version": 2, "sources": []}, "unsupported emulator state version 2"),
        ({"version": 1, "sources": {}}, "sources must be a list"),
        ({"version": 1, "sources": ["x"]}, r"sources\[0\] must be an object"),
        ({"version": 1, "sources": [{"deployment": []}]}, r"sources\[0\]\.deployment must be"),
        ({"version": 1, "sources": [], "x": 1e999}, "x: numbers must be finite"),
    ],
)
def test_a_malformed_state_is_refused_naming_what_is_wrong(
    clock: ManualClock, state: Any, words: str
) -> None:
    restored = SourceStore(clock=clock)
    with pytest.raises(ValueError, match=words):
        restored.load_json(state)
    assert restored.sources == {}


@pytest.mark.parametrize("source_id", ["A" * 24, "a" * 23, "../" + "a" * 21, 7])
def test_a_state_source_id_the_api_would_never_serve_is_refused(
    store: SourceStore, source_id: Any
) -> None:
    # api-notes.md "Transport": ids are 24 lowercase hex characters.
    state = {
        "version": 1,
        "sources": [{"id": source_id, "name": "n", "deployment": deployment("s3")}],
    }
    with pytest.raises(ValueError, match=r"sources\[0\]\.id must be 24 lowercase hex"):
        store.load_json(state)
    assert store.sources == {}


def test_on_commit_sees_every_write(store: SourceStore) -> None:
    commits: list[int] = []
    store.on_commit = lambda committed: commits.append(len(committed.sources))
    source_id = create(store)
    store.update_source(source_id, {"name": "x"})
    store.dashboard_redeploy(source_id, {})
    assert commits == [1, 1, 1]


def test_a_restored_source_is_deploying_as_long_as_it_was(
    store: SourceStore, clock: ManualClock
) -> None:
    # date_deployed is whole seconds; the deployment's end follows the exact start.
    clock.advance(0.5)
    source_id = create(store)
    restored = SourceStore(clock=clock, rng=random.Random(2))
    restored.load_json(json.loads(json.dumps(store.to_json())))
    clock.advance(4.8)
    assert restored.get_source(source_id)["attributes"]["deployment_status"] == "deploying"
    clock.advance(0.2)
    assert restored.get_source(source_id)["attributes"]["deployment_status"] == "deployed"


def test_two_seeded_stores_are_the_same_account() -> None:
    # Two `--emulator` processes: a plan saved against one applies in the next.
    first, second = seeded_store(), seeded_store()
    assert first.list_sources({}).resources == second.list_sources({}).resources
    assert create(first, subdomain="new") == create(second, subdomain="new")


def test_seeded_store_holds_the_example_live_state() -> None:
    store = seeded_store(rng=random.Random(3))
    sources = {s.name: s for s in store.sources.values()}
    assert set(sources) == {"Marketing assets", "Blog", "Archive", "Legacy CDN"}
    assert sources["Marketing assets"].deployment["type"] == "gcs"
    assert sources["Blog"].deployment["type"] == "webfolder"
    assert sources["Archive"].enabled is False
    assert {r["attributes"]["deployment_status"] for r in store.list_sources({}).resources} == {
        "deployed",
        "disabled",
    }
