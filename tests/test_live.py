"""LiveSource: what the API returns, read leniently."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from reconciler.live import LiveSource

RESOURCE: dict[str, Any] = {
    "id": "6359b5ba8147da20e8edfdd5",
    "type": "sources",
    "attributes": {
        "name": "Blog",
        "enabled": True,
        "deployment_status": "deployed",
        "date_deployed": 1700000000,
        "secure_url_token": "tok_should_not_be_kept",
        "a_future_attribute": {"nested": [1, 2]},
        "deployment": {
            "type": "webfolder",
            "imgix_subdomains": ["acme-blog"],
            "custom_domains": ["images.blog.acme.example"],
            "webfolder_base_url": "https://blog.acme.example/",
            "password_set": True,
        },
    },
    "relationships": {"account": {"data": {"id": "x", "type": "accounts"}}},
}


def test_from_resource_keeps_what_the_reconciler_reads() -> None:
    live = LiveSource.from_resource(RESOURCE)

    assert live.id == "6359b5ba8147da20e8edfdd5"
    assert live.name == "Blog"
    assert live.enabled is True
    assert live.deployment_status == "deployed"
    assert live.date_deployed == 1700000000
    assert live.type == "webfolder"
    assert live.hostnames == {"acme-blog", "images.blog.acme.example"}


def test_unknown_top_level_keys_and_the_token_are_dropped() -> None:
    live = LiveSource.from_resource(RESOURCE)

    dumped = live.model_dump()
    assert "a_future_attribute" not in dumped
    assert "secure_url_token" not in dumped
    assert "tok_should_not_be_kept" not in repr(live)


def test_deployment_is_kept_as_returned_unknown_keys_included() -> None:
    # The planner compares only attributes the spec models know; the rest rides along.
    live = LiveSource.from_resource(RESOURCE)

    assert live.deployment["password_set"] is True


@pytest.mark.parametrize("missing", ["name", "enabled", "deployment", "date_deployed"])
def test_a_missing_or_null_attribute_takes_its_default(missing: str) -> None:
    attributes = {k: v for k, v in RESOURCE["attributes"].items() if k != missing}
    absent = LiveSource.from_resource({"id": "a" * 24, "attributes": attributes})
    null = LiveSource.from_resource({"id": "a" * 24, "attributes": {**attributes, missing: None}})

    assert absent == null
    assert getattr(absent, missing) == LiveSource.model_fields[missing].get_default(
        call_default_factory=True
    )


@pytest.mark.parametrize("listed", [{}, {"enabled": None, "name": None}], ids=["omitted", "null"])
def test_a_listing_that_omits_enabled_or_name_reads_it_unknown_never_a_default(
    listed: dict[str, Any],
) -> None:
    # A key a listing omits is unknown (product.md): the source may well be disabled, and
    # its name is not "" (a plan showed that as its name before a rename).
    live = LiveSource.from_resource({"id": "f" * 24, "attributes": {"deployment": {}, **listed}})

    assert live.enabled is None
    assert live.name is None
    assert live.deployment == {}


def test_the_annotation_is_split_into_the_users_text_and_the_marker() -> None:
    from reconciler.marker import Marker

    text = "Owned by the blog team " + Marker(owner="ci").render()
    live = LiveSource.from_resource(
        {"id": "f" * 24, "attributes": {"deployment": {"annotation": text}}}
    )

    assert live.annotation.text == "Owned by the blog team"
    assert live.annotation.marker is not None
    assert live.annotation.marker.owner == "ci"


@pytest.mark.parametrize("annotation", [None, 7, ["x"]], ids=repr)
def test_an_annotation_that_is_not_text_is_no_annotation(annotation: Any) -> None:
    live = LiveSource.from_resource(
        {"id": "f" * 24, "attributes": {"deployment": {"annotation": annotation}}}
    )

    assert live.annotation == (None, None)


def test_a_partial_deployment_has_no_type_and_no_hostnames() -> None:
    live = LiveSource.from_resource({"id": "b" * 24, "attributes": {"deployment": {}}})

    assert live.type is None
    assert live.hostnames == frozenset()


def test_fractional_timestamps_are_whole_seconds() -> None:
    live = LiveSource.from_resource({"id": "c" * 24, "attributes": {"date_deployed": 17.9}})

    assert live.date_deployed == 17


def test_a_resource_without_attributes_is_an_id_only() -> None:
    assert LiveSource.from_resource({"id": "d" * 24}) == LiveSource(id="d" * 24)


def test_a_wrongly_typed_attribute_is_an_error() -> None:
    with pytest.raises(ValidationError):
        LiveSource.from_resource({"id": "e" * 24, "attributes": {"enabled": "perhaps"}})


def test_fingerprint_ignores_key_order_and_sees_every_change() -> None:
    live = LiveSource.from_resource(RESOURCE)
    reordered = LiveSource.from_resource(
        {
            **RESOURCE,
            "attributes": {
                **RESOURCE["attributes"],
                "deployment": dict(reversed(list(RESOURCE["attributes"]["deployment"].items()))),
            },
        }
    )
    renamed = live.model_copy(update={"name": "Blog 2"})
    disabled = live.model_copy(update={"enabled": False})
    redeployed = live.model_copy(update={"deployment": {**live.deployment, "annotation": "x"}})

    assert live.fingerprint() == reordered.fingerprint()
    assert live.fingerprint().startswith("sha256:")
    fingerprints = {source.fingerprint() for source in (live, renamed, disabled, redeployed)}
    assert len(fingerprints) == 4


def test_fingerprint_is_the_hash_of_the_canonical_json_saved_plans_hold() -> None:
    import hashlib
    import json

    # Saved plans made by earlier versions compare this value: it must not drift.
    resource = {**RESOURCE, "attributes": {**RESOURCE["attributes"], "name": "Blög ✓"}}
    live = LiveSource.from_resource(resource)
    state = {"name": live.name, "enabled": live.enabled, "deployment": live.deployment}
    canonical = json.dumps(state, sort_keys=True, separators=(",", ":"))
    assert live.fingerprint() == "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()
    assert '"name":"Bl\\u00f6g \\u2713"' in canonical  # ASCII-escaped, as always


def test_live_sources_are_frozen() -> None:
    live = LiveSource.from_resource(RESOURCE)

    with pytest.raises(ValidationError):
        live.name = "other"  # type: ignore[misc]


def test_equal_text_of_many_sources_is_held_once_and_read_unchanged() -> None:
    import json

    # Decoded separately, as pages are: each page's JSON makes its own strings.
    first, second = (LiveSource.from_resource(json.loads(json.dumps(RESOURCE))) for _ in range(2))
    assert first.deployment == RESOURCE["attributes"]["deployment"]
    assert first.deployment["type"] is second.deployment["type"]
    assert first.deployment["webfolder_base_url"] is second.deployment["webfolder_base_url"]
    assert first.fingerprint() == second.fingerprint()


@pytest.mark.parametrize("hosts", [[1, "a"], ["a", None], "acme", {"a": 1}, [["a"]]], ids=repr)
@pytest.mark.parametrize("field", ["imgix_subdomains", "custom_domains"])
def test_hostname_lists_that_are_not_lists_of_text_are_refused(field: str, hosts: Any) -> None:
    # The planner sorts and matches hostnames: a broken answer is refused, never a crash.
    with pytest.raises(ValidationError, match=f"deployment.{field} must be a list of text"):
        LiveSource.from_resource({"id": "a" * 24, "attributes": {"deployment": {field: hosts}}})
