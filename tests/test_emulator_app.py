"""Conformance of the emulator over real HTTP (uvicorn on 127.0.0.1).

One test (or one parametrized case) per point api-notes.md marks *emulate* and per
attribute constraint of sources-reference.txt.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import FakeClock

from reconciler.emulator import Faults, RateLimits, SourceStore
from reconciler.emulator.deployments import DEFAULT_ANNOTATION
from reconciler.specs import DEPLOYMENT_MODELS, deployment_defaults, secret_fields

SOURCES = "/api/v1/sources"
MINIMAL: dict[str, dict[str, Any]] = json.loads(
    (Path(__file__).parent / "fixtures" / "emulator-deployments.json").read_text()
)
SECRET_VALUES = [v for d in MINIMAL.values() for k, v in d.items() if "SECRET" in v or len(v) == 32]


# Plain HTTP only: one TLS context for every client, instead of loading certificates
# for each test.
TLS = ssl.create_default_context()


def deployment(kind: str, subdomain: str = "img", **extra: Any) -> dict[str, Any]:
    return {"type": kind, "imgix_subdomains": [subdomain], **MINIMAL[kind], **extra}


def body(attributes: Any, source_id: str | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {"type": "sources", "attributes": attributes}
    if source_id is not None:
        data["id"] = source_id
    return {"data": data}


@pytest.fixture
def api(emulator_url: str, emulator_headers: dict[str, str]) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=emulator_url, headers=emulator_headers, timeout=5, verify=TLS
    ) as client:
        yield client


def create(api: httpx.Client, kind: str = "s3", name: str = "Photos", **extra: Any) -> str:
    response = api.post(SOURCES, json=body({"name": name, "deployment": deployment(kind, **extra)}))
    assert response.status_code == 201, response.text
    return str(response.json()["data"]["id"])


def patch(api: httpx.Client, source_id: str, attributes: dict[str, Any]) -> httpx.Response:
    return api.patch(f"{SOURCES}/{source_id}", json=body(attributes, source_id))


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    """The single JSON:API error of a response, checked against the documented shape."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/vnd.api+json"
    (error,) = response.json()["errors"]
    assert error["status"] == str(status)
    assert error["id"] == response.headers["x-request-id"]
    assert error["title"] == httpx.codes.get_reason_phrase(status)
    assert error["detail"]
    assert response.json()["jsonapi"] == {"version": "1.0"}
    return dict(error)


# --------------------------------------------------------------------------- transport


def test_serves_on_loopback(emulator_url: str) -> None:
    assert emulator_url.startswith("http://127.0.0.1:")


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer", "Bearer not-a-key", "Bearer ak_" + "a" * 63, "Token ak_" + "a" * 64],
)
def test_missing_or_malformed_key_is_401(emulator_url: str, authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = httpx.get(emulator_url + SOURCES, headers=headers, verify=TLS)
    error = error_of(response, 401)
    assert error["detail"] == "A valid API key is required and could not be determined."


def test_key_without_sources_permission_is_403(
    emulator_url: str, emulator_store: SourceStore
) -> None:
    key = "ak_" + "c" * 64
    emulator_store.unprivileged_keys.add(key)
    error_of(
        httpx.get(emulator_url + SOURCES, headers={"Authorization": f"Bearer {key}"}, verify=TLS),
        403,
    )


def test_success_envelope(api: httpx.Client) -> None:
    source_id = create(api)
    response = api.get(f"{SOURCES}/{source_id}")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/vnd.api+json"
    document = response.json()
    assert document["included"] == []
    assert document["jsonapi"] == {"version": "1.0"}
    assert document["meta"]["authentication"]["authorized"] is True
    assert document["data"]["type"] == "sources"
    assert document["data"]["id"] == source_id
    assert document["data"]["links"] == {"self": f"{SOURCES}/{source_id}"}


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", SOURCES + "/" + "0" * 24, 404),
        ("GET", "/api/v2/sources", 404),
        ("POST", "/api/v2/sources", 404),
        ("DELETE", SOURCES + "/" + "0" * 24, 405),
        ("PUT", SOURCES, 405),
        ("OPTIONS", SOURCES, 405),
        ("POST", SOURCES, 400),
    ],
)
def test_error_bodies_carry_the_request_id(
    api: httpx.Client, method: str, path: str, status: int
) -> None:
    response = api.request(method, path, content=b"{}")
    error_of(response, status)
    if status == 405:
        # The methods each path has: the collection lists and creates, a member reads and
        # updates (api-notes.md: there is no DELETE).
        expected = "GET, POST" if path == SOURCES else "GET, PATCH"
        assert response.headers["allow"] == expected


def test_invalid_json_is_400(api: httpx.Client) -> None:
    assert "not valid JSON" in error_of(api.post(SOURCES, content=b"{nope"), 400)["detail"]


@pytest.mark.parametrize("document", [[], "sources", {"data": []}, {"attributes": {}}])
def test_a_body_that_is_not_a_json_api_document_is_400(api: httpx.Client, document: Any) -> None:
    detail = error_of(api.post(SOURCES, json=document), 400)["detail"]
    assert "must be a JSON:API document" in detail


# --------------------------------------------------------------------------- listing


def test_default_page_size_and_full_pagination_meta(api: httpx.Client) -> None:
    for index in range(23):
        create(api, subdomain=f"s{index}")
    first = api.get(SOURCES).json()
    assert len(first["data"]) == 20
    assert first["meta"]["pagination"] == {
        "currentPage": 0,
        "pageSize": 20,
        "totalPages": 2,
        "totalRecords": 23,
        "hasNextPage": True,
        "hasPreviousPage": False,
        "nextPage": 1,
        "previousPage": None,
    }
    last = api.get(SOURCES, params={"page[number]": 1}).json()
    assert len(last["data"]) == 3
    assert last["meta"]["pagination"]["hasNextPage"] is False
    assert last["meta"]["pagination"]["previousPage"] == 0


@pytest.mark.parametrize(("max_page_size", "asked", "served"), [(100, 500, 100), (50, 80, 50)])
def test_page_size_is_clamped(
    api: httpx.Client, emulator_store: SourceStore, max_page_size: int, asked: int, served: int
) -> None:
    emulator_store.max_page_size = max_page_size
    for index in range(served + 1):
        emulator_store.create_source({"name": "n", "deployment": deployment("s3", f"s{index}")})
    page = api.get(SOURCES, params={"page[size]": asked}).json()
    assert len(page["data"]) == served
    assert page["meta"]["pagination"]["pageSize"] == served


def test_a_full_width_page_size_is_400_naming_the_parameter(api: httpx.Client) -> None:
    create(api)
    response = api.get(SOURCES + "?page%5Bsize%5D=%EF%BC%91%EF%BC%90")  # page[size]=\uff11\uff10
    assert error_of(response, 400)["detail"] == "page[size] must be an integer."


def test_a_page_past_the_end_is_empty_and_says_there_is_no_next(api: httpx.Client) -> None:
    # api-notes.md: a client stops on a short or empty page; the meta must agree.
    empty = api.get(SOURCES).json()
    assert empty["data"] == []
    assert empty["meta"]["pagination"]["totalPages"] == 0
    assert empty["meta"]["pagination"]["hasNextPage"] is False
    for index in range(3):
        create(api, subdomain=f"s{index}")
    beyond = api.get(SOURCES, params={"page[size]": 2, "page[number]": 5}).json()
    assert beyond["data"] == []
    pagination = beyond["meta"]["pagination"]
    assert (pagination["totalRecords"], pagination["totalPages"]) == (3, 2)
    assert (pagination["hasNextPage"], pagination["nextPage"]) == (False, None)
    assert (pagination["hasPreviousPage"], pagination["previousPage"]) == (True, 4)


def test_pagination_meta_can_be_turned_off(api: httpx.Client, emulator_store: SourceStore) -> None:
    emulator_store.pagination_meta = False
    create(api)
    assert "pagination" not in api.get(SOURCES).json()["meta"]


@pytest.mark.parametrize(
    ("params", "names"),
    [
        ({"filter[name]": "Blog"}, ["Blog"]),
        ({"filter[enabled]": "false"}, ["Archive"]),
        ({"filter[deployment.type]": "s3"}, ["Products", "Archive"]),
        ({"filter[deployment.imgix_subdomains]": "sub-b"}, ["Blog"]),
        ({"sort": "name"}, ["Archive", "Blog", "Products"]),
        ({"sort": "-date_deployed"}, ["Archive", "Blog", "Products"]),
        ({"sort": "-enabled,name"}, ["Blog", "Products", "Archive"]),
        ({"sort": "date_deployed"}, ["Products", "Blog", "Archive"]),
        ({"sort": "-name"}, ["Products", "Blog", "Archive"]),
        # sources-reference.txt "Source Filters": deployment.webfolder_base_url.
        ({"filter[deployment.webfolder_base_url]": "https://origin.example/"}, ["Blog"]),
        (
            {"filter[deployment.type]": "webfolder,s3", "filter[enabled]": "true"},
            ["Products", "Blog"],
        ),
    ],
)
def test_filters_and_sorts(
    api: httpx.Client, fake_clock: FakeClock, params: dict[str, str], names: list[str]
) -> None:
    for name, kind, subdomain in [
        ("Products", "s3", "sub-p"),
        ("Blog", "webfolder", "sub-b"),
        ("Archive", "s3", "sub-a"),
    ]:
        fake_clock.advance(10)
        create(api, kind, name=name, subdomain=subdomain)
    archive = api.get(SOURCES, params={"filter[name]": "Archive"}).json()["data"][0]["id"]
    assert patch(api, archive, {"enabled": False}).status_code == 200
    listed = api.get(SOURCES, params=params).json()["data"]
    assert [s["attributes"]["name"] for s in listed] == names


def test_sparse_fields_keep_only_what_is_asked(api: httpx.Client) -> None:
    create(api, name="Products")
    listed = api.get(SOURCES, params={"fields[sources]": "name,deployment.type"}).json()
    (resource,) = listed["data"]
    assert resource["attributes"] == {"name": "Products", "deployment": {"type": "s3"}}
    assert listed["meta"]["pagination"]["totalRecords"] == 1


def test_unknown_filter_is_400(api: httpx.Client) -> None:
    error_of(api.get(SOURCES, params={"filter[deployment.s3_secret_key]": "x"}), 400)


# --------------------------------------------------------------------------- create and update


@pytest.mark.parametrize("kind", sorted(MINIMAL))
def test_create_returns_201_with_documented_defaults(
    api: httpx.Client, fake_clock: FakeClock, kind: str
) -> None:
    response = api.post(SOURCES, json=body({"name": "n", "deployment": deployment(kind)}))
    assert response.status_code == 201
    attributes = response.json()["data"]["attributes"]
    model = DEPLOYMENT_MODELS[kind]
    for name, default in deployment_defaults(model).items():
        if name not in MINIMAL[kind] and name not in secret_fields(model):
            assert attributes["deployment"][name] == default, name
    assert attributes["deployment"]["annotation"] == DEFAULT_ANNOTATION
    assert attributes["deployment_status"] == "deploying"
    assert attributes["date_deployed"] == int(fake_clock.now)


# api-notes.md "Defaults", in its own words: not read from the spec models, so a model
# that drifted from the documentation cannot drag the emulator along unnoticed.
DOCUMENTED_DEFAULTS: dict[str, Any] = {
    "cache_ttl_behavior": "respect_origin",
    "cache_ttl_value": 31536000,
    "cache_ttl_error": 300,
    "default_params": {},
    "custom_domains": [],
    "image_error": None,
    "image_missing": None,
    "crossdomain_xml_enabled": False,
    "image_error_append_qs": False,
    "image_missing_append_qs": False,
    "secure_url_enabled": False,
}


@pytest.mark.parametrize("kind", ["s3", "gcs", "azure", "webfolder", "s3_compatible"])
def test_create_shows_the_values_the_api_notes_document_as_defaults(
    api: httpx.Client, kind: str
) -> None:
    response = api.post(SOURCES, json=body({"name": "n", "deployment": deployment(kind)}))
    shown = response.json()["data"]["attributes"]
    expected = dict(DOCUMENTED_DEFAULTS)
    if kind == "gcs":
        expected["cache_ttl_behavior"] = "enforce_minimum"
    assert {name: shown["deployment"][name] for name in expected} == expected
    # "New deployment created for source by <user>", the user being the emulator.
    assert (
        shown["deployment"]["annotation"] == "New deployment created for source by imgix-emulator"
    )
    assert shown["enabled"] is True
    assert "secure_url_token" not in shown


@pytest.mark.parametrize(
    ("field", "value"),
    [("cache_ttl_value", 1800), ("cache_ttl_value", 31536000), ("cache_ttl_error", 1)],
)
def test_the_documented_bounds_of_a_ttl_are_accepted(
    api: httpx.Client, field: str, value: int
) -> None:
    source_id = create(api, **{field: value})
    shown = api.get(f"{SOURCES}/{source_id}").json()["data"]["attributes"]["deployment"]
    assert shown[field] == value


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ({"type": "sources", "id": "a" * 24}, "data.id must not be sent"),
        ({"type": "source"}, "data.type must be sources"),
        ({}, "data.type must be sources"),
    ],
)
def test_a_create_with_an_id_or_another_type_is_400(
    api: httpx.Client, data: dict[str, Any], words: str
) -> None:
    attributes = {"name": "n", "deployment": deployment("s3")}
    response = api.post(SOURCES, json={"data": {**data, "attributes": attributes}})
    assert words in error_of(response, 400)["detail"]
    assert api.get(SOURCES).json()["data"] == []


@pytest.mark.parametrize("missing", ["name", "deployment"])
def test_create_requires_name_and_deployment(api: httpx.Client, missing: str) -> None:
    attributes = {"name": "n", "deployment": deployment("s3")}
    del attributes[missing]
    assert missing in error_of(api.post(SOURCES, json=body(attributes)), 400)["detail"]


def test_patch_is_partial_and_lists_replace_whole(api: httpx.Client) -> None:
    source_id = create(api, default_params={"auto": "format", "q": 75})
    response = patch(api, source_id, {"deployment": {"default_params": {"fm": "webp"}}})
    assert response.status_code == 200
    shown = response.json()["data"]["attributes"]["deployment"]
    assert shown["default_params"] == {"fm": "webp"}
    assert shown["s3_bucket"] == "b"
    assert patch(api, source_id, {"enabled": False}).status_code == 200


@pytest.mark.parametrize(
    ("field", "before", "after"),
    [
        ("imgix_subdomains", ["img", "img-2"], ["img-3"]),
        ("custom_domains", ["a.example.com", "b.example.com"], ["c.example.com"]),
        ("default_params", {"auto": "format", "q": 75}, {}),
    ],
)
def test_a_patch_replaces_lists_and_maps_whole(
    api: httpx.Client, field: str, before: Any, after: Any
) -> None:
    # api-notes.md "Create and update": list and map values replace the old value whole.
    source_id = create(api, **{field: before})
    shown = patch(api, source_id, {"deployment": {field: after}}).json()["data"]["attributes"]
    assert shown["deployment"][field] == after
    assert (
        api.get(f"{SOURCES}/{source_id}").json()["data"]["attributes"]["deployment"][field] == after
    )


def test_a_patch_with_null_clears_an_optional_attribute(api: httpx.Client) -> None:
    # Defaults to null (sources-reference.txt, image_error and image_missing): null is a value.
    source_id = create(api, image_error="https://example.com/e.png", cache_ttl_error=60)
    patched = patch(api, source_id, {"deployment": {"image_error": None}})
    shown = patched.json()["data"]["attributes"]["deployment"]
    assert shown["image_error"] is None
    assert shown["cache_ttl_error"] == 60  # omitted: kept


@pytest.mark.parametrize(
    ("attributes", "words"),
    [
        ({"name": None}, "name must be a non-empty string"),
        ({"enabled": None}, "enabled must be a boolean"),
        ({"deployment": None}, "deployment must be an object"),
        ({"deployment": {"cache_ttl_value": None}}, "deployment.cache_ttl_value"),
        ({"deployment": {"default_params": None}}, "deployment.default_params"),
        ({"deployment": {"imgix_subdomains": None}}, "deployment.imgix_subdomains"),
        ({"deployment": {"s3_secret_key": None}}, "deployment.s3_secret_key"),
    ],
)
def test_a_patch_with_null_for_a_required_value_is_400_and_changes_nothing(
    api: httpx.Client, attributes: dict[str, Any], words: str
) -> None:
    source_id = create(api)
    before = api.get(f"{SOURCES}/{source_id}").json()["data"]
    assert words in error_of(patch(api, source_id, attributes), 400)["detail"]
    assert api.get(f"{SOURCES}/{source_id}").json()["data"] == before


def test_patch_must_name_the_source(api: httpx.Client) -> None:
    source_id = create(api)
    response = api.patch(f"{SOURCES}/{source_id}", json=body({"name": "x"}, "f" * 24))
    error_of(response, 400)


@pytest.mark.parametrize("kind", ["s3", "gcs", "azure", "s3_compatible"])
def test_moving_an_origin_needs_its_credentials(api: httpx.Client, kind: str) -> None:
    source_id = create(api, kind)
    model = DEPLOYMENT_MODELS[kind]
    field = sorted(model.LOCATION_FIELDS - {"azure_service_type", "storage_provider"})[0]
    moved = "https://moved.example" if field == "endpoint_url" else "moved"
    detail = error_of(patch(api, source_id, {"deployment": {field: moved}}), 400)["detail"]
    assert f"deployment.{field}" in detail
    for credential in model.CREDENTIAL_FIELDS:
        assert credential in detail
    credentials = {name: MINIMAL[kind][name] for name in model.CREDENTIAL_FIELDS}
    assert patch(api, source_id, {"deployment": {field: moved, **credentials}}).status_code == 200


def test_changing_type_needs_every_required_field(api: httpx.Client) -> None:
    source_id = create(api, "webfolder")
    partial = {"type": "s3_compatible", "access_key_id": "A", "secret_key": "S"}
    detail = error_of(patch(api, source_id, {"deployment": partial}), 400)["detail"]
    for name in ("bucket_name", "endpoint_url", "region", "storage_provider"):
        assert f"deployment.{name} is required" in detail
    full = {"type": "s3_compatible", **MINIMAL["s3_compatible"]}
    assert patch(api, source_id, {"deployment": full}).status_code == 200


def test_disabled_source_refuses_other_changes(api: httpx.Client) -> None:
    source_id = create(api)
    assert patch(api, source_id, {"enabled": False}).status_code == 200
    assert "disabled" in error_of(patch(api, source_id, {"name": "x"}), 400)["detail"]
    both = patch(api, source_id, {"enabled": True, "name": "x"})
    assert both.status_code == 200
    assert both.json()["data"]["attributes"]["name"] == "x"


@pytest.mark.parametrize(
    ("field", "hostname"),
    [("imgix_subdomains", "taken"), ("custom_domains", "img.taken.example")],
)
def test_hostnames_are_unique_across_sources(api: httpx.Client, field: str, hostname: str) -> None:
    create(api, subdomain="taken", custom_domains=["img.taken.example"])
    claim = {**deployment("gcs", "free"), field: [hostname]}
    response = api.post(SOURCES, json=body({"name": "n", "deployment": claim}))
    assert hostname in error_of(response, 400)["detail"]


def test_at_most_100_hostnames(api: httpx.Client) -> None:
    names = [f"s{i}" for i in range(101)]
    response = api.post(SOURCES, json=body({"name": "n", "deployment": deployment("s3")}))
    source_id = response.json()["data"]["id"]
    detail = error_of(patch(api, source_id, {"deployment": {"imgix_subdomains": names}}), 400)
    assert "at most 100" in detail["detail"]


def test_names_are_not_unique(api: httpx.Client) -> None:
    create(api, name="Same", subdomain="a")
    create(api, name="Same", subdomain="b")
    assert (
        api.get(SOURCES, params={"filter[name]": "Same"}).json()["meta"]["pagination"][
            "totalRecords"
        ]
        == 2
    )


# --------------------------------------------------------------------------- secrets


@pytest.mark.parametrize("kind", sorted(MINIMAL))
def test_secrets_are_never_returned(api: httpx.Client, kind: str) -> None:
    created = api.post(SOURCES, json=body({"name": "n", "deployment": deployment(kind)}))
    source_id = created.json()["data"]["id"]
    secrets = secret_fields(DEPLOYMENT_MODELS[kind])
    rotated = {name: value for name, value in MINIMAL[kind].items() if name in secrets}
    patched = patch(api, source_id, {"deployment": rotated})
    responses = [created, patched, api.get(f"{SOURCES}/{source_id}"), api.get(SOURCES)]
    for response in responses:
        for value in SECRET_VALUES:
            assert value not in response.text


# sources-reference.txt, "Source Deployment" tables: what a GET returns for each type
# (every attribute but the write-only ones, `*_encrypted` in their place for web origins).
COMMON_SHOWN = {
    "annotation",
    "cache_ttl_behavior",
    "cache_ttl_error",
    "cache_ttl_value",
    "crossdomain_xml_enabled",
    "custom_domains",
    "default_params",
    "image_error",
    "image_error_append_qs",
    "image_missing",
    "image_missing_append_qs",
    "imgix_subdomains",
    "robots.txt",
    "secure_url_enabled",
    "type",
}
WEB_SHOWN = {
    "username",
    "password_encrypted",
    "request_handshake_encrypted",
    "request_signing_key_encrypted",
    # Keys the reference does not list, as the real API adds over time (api-notes.md).
    "password_set",
    "request_handshake_set",
    "request_signing_key_set",
}
SHOWN_BY_TYPE = {
    "s3": {"allows_upload", "s3_access_key", "s3_bucket", "s3_prefix"},
    "gcs": {"allows_upload", "gcs_access_key", "gcs_bucket", "gcs_prefix"},
    "azure": {
        "allows_upload",
        "azure_account",
        "azure_bucket",
        "azure_prefix",
        "azure_service_type",
    },
    "webfolder": {"webfolder_base_url", *WEB_SHOWN},
    "webproxy": WEB_SHOWN,
    "s3_compatible": {"access_key_id", "bucket_name", "endpoint_url", "region", "storage_provider"},
}


@pytest.mark.parametrize("kind", sorted(SHOWN_BY_TYPE))
def test_a_source_shows_the_attributes_the_reference_lists_for_its_type(
    api: httpx.Client, kind: str
) -> None:
    source_id = create(api, kind)
    for response in (api.get(f"{SOURCES}/{source_id}"), api.get(SOURCES)):
        data = response.json()["data"]
        (resource,) = data if isinstance(data, list) else [data]
        assert set(resource["attributes"]["deployment"]) == COMMON_SHOWN | SHOWN_BY_TYPE[kind]


@pytest.mark.parametrize("kind", ["webfolder", "webproxy"])
def test_web_origins_return_encrypted_values(api: httpx.Client, kind: str) -> None:
    source_id = create(api, kind, request_signing_key="k" * 32)
    before = api.get(f"{SOURCES}/{source_id}").json()["data"]["attributes"]["deployment"]
    assert before["request_signing_key_encrypted"]
    patch(api, source_id, {"deployment": {"request_signing_key": "k" * 32}})
    after = api.get(f"{SOURCES}/{source_id}").json()["data"]["attributes"]["deployment"]
    assert after["request_signing_key_encrypted"] != before["request_signing_key_encrypted"]


@pytest.mark.parametrize("kind", sorted(MINIMAL))
def test_allows_upload_is_shown_only_for_bucket_origins(api: httpx.Client, kind: str) -> None:
    # sources-reference.txt: allows_upload is "applicable only for azure, gcs, or s3".
    source_id = create(api, kind)
    shown = api.get(f"{SOURCES}/{source_id}").json()["data"]["attributes"]["deployment"]
    if kind in ("azure", "gcs", "s3"):
        assert shown["allows_upload"] is False
    else:
        assert "allows_upload" not in shown
    refused = patch(api, source_id, {"deployment": {"allows_upload": True}})
    assert "deployment.allows_upload is read-only" in error_of(refused, 400)["detail"]


def test_secure_url_token_appears_when_enabled(api: httpx.Client) -> None:
    source_id = create(api)
    assert "secure_url_token" not in api.get(f"{SOURCES}/{source_id}").json()["data"]["attributes"]
    response = patch(api, source_id, {"deployment": {"secure_url_enabled": True}})
    assert response.json()["data"]["attributes"]["secure_url_token"]


def test_deploying_then_deployed(
    api: httpx.Client, emulator_store: SourceStore, fake_clock: FakeClock
) -> None:
    source_id = create(api)
    fake_clock.advance(emulator_store.deploy_delay)
    attributes = api.get(f"{SOURCES}/{source_id}").json()["data"]["attributes"]
    assert attributes["deployment_status"] == "deployed"
    patched = patch(api, source_id, {"deployment": {"cache_ttl_error": 60}})
    assert patched.json()["data"]["attributes"]["deployment_status"] == "deploying"


# --------------------------------------------------------------------------- constraints

# (type, attribute, bad value, words of the error): every constraint of the reference.
CONSTRAINTS = [
    ("s3", "cache_ttl_value", 1799, "greater than or equal to 1800"),
    ("s3", "cache_ttl_value", 31536001, "less than or equal to 31536000"),
    ("s3", "cache_ttl_error", 0, "greater than or equal to 1"),
    ("s3", "cache_ttl_error", 31536001, "less than or equal to 31536000"),
    ("s3", "cache_ttl_behavior", "forever", "respect_origin"),
    ("s3", "crossdomain_xml_enabled", "yes", "valid boolean"),
    ("s3", "custom_domains", ["Not A Domain"], "lowercase domain name"),
    ("s3", "default_params", ["auto"], "valid dictionary"),
    ("s3", "default_params", {"fm": "wepb"}, "fm must be one of gif, jpg"),
    ("s3", "default_params", {"atuo": "format"}, "unknown imgix rendering parameter 'atuo'"),
    ("s3", "image_error", "/relative.png", "absolute http(s) URL"),
    ("s3", "image_error_append_qs", 1, "valid boolean"),
    ("s3", "image_missing", "ftp://x.example/a.png", "absolute http(s) URL"),
    ("s3", "image_missing_append_qs", "no", "valid boolean"),
    ("s3", "imgix_subdomains", [], "at least 1 item"),
    ("s3", "imgix_subdomains", ["foo.imgix.net"], "DNS label"),
    ("s3", "secure_url_enabled", None, "valid boolean"),
    ("s3", "type", "ftp", "deployment.type must be one of"),
    ("s3", "s3_access_key", "", "at least 1 character"),
    ("s3", "s3_bucket", None, "valid string"),
    ("s3", "s3_secret_key", 12, "must be a string"),
    ("s3", "robots.txt", "sometimes", "origin"),
    ("gcs", "gcs_access_key", "", "at least 1 character"),
    ("gcs", "gcs_bucket", "", "at least 1 character"),
    ("gcs", "gcs_secret_key", None, "must be a string"),
    ("azure", "azure_account", "", "at least 1 character"),
    ("azure", "azure_bucket", "", "at least 1 character"),
    ("azure", "azure_sas_string", None, "must be a string"),
    ("azure", "azure_service_type", "table", "'blob' or 'file'"),
    ("webfolder", "webfolder_base_url", "origin.example", "absolute http(s) URL"),
    ("webfolder", "username", "us:er", "must not contain ':'"),
    ("webfolder", "password", "pass\x07word", "control characters"),
    ("webfolder", "request_handshake", "x" * 31, "exactly 32 latin-1 characters"),
    ("webfolder", "request_signing_key", "x" * 33, "exactly 32 latin-1 characters"),
    ("webproxy", "username", "us\ner", "control characters"),
    ("webproxy", "password", "pass:word", "must not contain ':'"),
    ("webproxy", "request_handshake", "\u20ac" * 32, "latin-1"),
    ("webproxy", "robots.txt", "origin", "'allow-all' or 'disallow-all'"),
    ("webproxy", "secure_url_enabled", False, "secure_url_enabled: true"),
    ("s3_compatible", "access_key_id", "", "at least 1 character"),
    ("s3_compatible", "bucket_name", "", "at least 1 character"),
    ("s3_compatible", "endpoint_url", "s3.example", "absolute http(s) URL"),
    ("s3_compatible", "region", "", "at least 1 character"),
    ("s3_compatible", "storage_provider", "Backblaze", "DigitalOcean"),
    ("gcs", "s3_bucket", "b", "is not an attribute of gcs sources"),
]


@pytest.mark.parametrize(("kind", "attribute", "value", "words"), CONSTRAINTS)
def test_attribute_constraint(
    api: httpx.Client, kind: str, attribute: str, value: Any, words: str
) -> None:
    attributes = {"name": "n", "deployment": deployment(kind, **{attribute: value})}
    detail = error_of(api.post(SOURCES, json=body(attributes)), 400)["detail"]
    assert words in detail
    if attribute in secret_fields(DEPLOYMENT_MODELS.get(kind, DEPLOYMENT_MODELS["s3"])):
        assert repr(value) not in detail and str(value) not in detail.split(" ")


def test_read_only_attributes_are_refused(api: httpx.Client) -> None:
    attributes = {"name": "n", "date_deployed": 1, "deployment": deployment("s3")}
    assert "read-only" in error_of(api.post(SOURCES, json=body(attributes)), 400)["detail"]
    web = {"name": "n", "deployment": deployment("webfolder", password_encrypted="x")}
    assert "read-only" in error_of(api.post(SOURCES, json=body(web)), 400)["detail"]


# --------------------------------------------------------------------------- limits and faults


@pytest.mark.parametrize("retry_after", [True, False])
def test_per_second_limit_is_429(
    api: httpx.Client, emulator_store: SourceStore, fake_clock: FakeClock, retry_after: bool
) -> None:
    emulator_store.limits = RateLimits(per_second=4, retry_after=retry_after)
    for _ in range(4):
        assert api.get(SOURCES).status_code == 200
    limited = api.get(SOURCES)
    error_of(limited, 429)
    assert limited.headers.get("retry-after") == ("1" if retry_after else None)
    assert "x-ratelimit-limit" not in limited.headers  # only when asked for
    fake_clock.advance(1)
    assert api.get(SOURCES).status_code == 200


def test_a_429_carries_rate_limit_headers_when_asked(
    api: httpx.Client, emulator_store: SourceStore, fake_clock: FakeClock
) -> None:
    emulator_store.limits = RateLimits(
        per_second=None, updates_per_hour=2, retry_after=False, rate_limit_headers=True
    )
    source_id = create(api)
    assert "x-ratelimit-reset" not in patch(api, source_id, {"name": "a"}).headers
    fake_clock.advance(600)
    assert patch(api, source_id, {"name": "b"}).status_code == 200
    refused = patch(api, source_id, {"name": "c"})
    error_of(refused, 429)
    assert "retry-after" not in refused.headers
    assert refused.headers["x-ratelimit-limit"] == "2"
    assert refused.headers["x-ratelimit-remaining"] == "0"
    assert refused.headers["x-ratelimit-reset"] == "3000"  # the first update leaves the hour
    not_found = api.get(f"{SOURCES}/{'0' * 24}")
    error_of(not_found, 404)
    assert "x-ratelimit-limit" not in not_found.headers  # a 429's headers, on 429s only


def test_hourly_create_and_update_limits(
    api: httpx.Client, emulator_store: SourceStore, fake_clock: FakeClock
) -> None:
    emulator_store.limits = RateLimits(per_second=None, creates_per_hour=1, updates_per_hour=1)
    source_id = create(api, subdomain="one")
    refused = api.post(SOURCES, json=body({"name": "n", "deployment": deployment("s3", "two")}))
    assert error_of(refused, 429)["detail"].endswith("Try again later.")
    assert refused.headers["retry-after"] == "3600"
    assert patch(api, source_id, {"name": "x"}).status_code == 200
    error_of(patch(api, source_id, {"name": "y"}), 429)
    fake_clock.advance(3600)
    assert patch(api, source_id, {"name": "y"}).status_code == 200


def test_injected_error_changes_nothing(api: httpx.Client, emulator_store: SourceStore) -> None:
    emulator_store.faults = Faults(error_rate=1.0)
    response = api.post(SOURCES, json=body({"name": "n", "deployment": deployment("s3")}))
    error_of(response, 500)
    assert emulator_store.sources == {}


def test_lost_response_commits_the_write(api: httpx.Client, emulator_store: SourceStore) -> None:
    emulator_store.faults = Faults(lost_response_rate=1.0)
    response = api.post(SOURCES, json=body({"name": "n", "deployment": deployment("s3")}))
    assert response.status_code == 504
    # A proxy's HTML page, as a gateway in front of the API would send.
    assert response.headers["content-type"].startswith("text/html")
    with pytest.raises(json.JSONDecodeError):
        response.json()
    # Reads never lose their answer (nothing to look up after), so the write is visible.
    listed = api.get(SOURCES, params={"filter[deployment.imgix_subdomains]": "img"})
    assert listed.status_code == 200
    (source,) = listed.json()["data"]
    assert patch(api, source["id"], {"name": "renamed"}).status_code == 504
    emulator_store.faults = Faults()
    shown = api.get(f"{SOURCES}/{source['id']}").json()["data"]["attributes"]
    assert shown["name"] == "renamed"


def test_added_latency_delays_the_answer(api: httpx.Client, emulator_store: SourceStore) -> None:
    emulator_store.faults = Faults(latency=0.5)
    with pytest.raises(httpx.ReadTimeout):
        api.get(SOURCES, timeout=0.05)
    emulator_store.faults = Faults()


def test_request_log_records_every_request(api: httpx.Client, emulator_store: SourceStore) -> None:
    attributes = {"name": "n", "deployment": deployment("s3")}
    api.post(SOURCES, json=body(attributes))
    api.get(SOURCES, params={"page[size]": 5})
    httpx.get(str(api.base_url) + SOURCES, verify=TLS)
    logged = [(r.method, r.path, r.query, r.status) for r in emulator_store.request_log]
    assert logged == [
        ("POST", SOURCES, "", 201),
        ("GET", SOURCES, "page%5Bsize%5D=5", 200),
        ("GET", SOURCES, "", 401),
    ]
    assert emulator_store.request_log[0].body == body(attributes)
    assert emulator_store.request_log[1].body is None


def test_dashboard_redeploy_is_visible_over_http(
    api: httpx.Client, emulator_store: SourceStore
) -> None:
    source_id = create(api)
    emulator_store.dashboard_redeploy(source_id, {"cache_ttl_value": 7200})
    shown = api.get(f"{SOURCES}/{source_id}").json()["data"]["attributes"]["deployment"]
    assert shown["cache_ttl_value"] == 7200
    assert shown["annotation"] == "New deployment created for source by dashboard"


def test_a_patch_with_an_invalid_parameter_changes_nothing(api: httpx.Client) -> None:
    source_id = create(api, default_params={"auto": "format"})
    response = patch(api, source_id, {"deployment": {"default_params": {"fm": "wepb"}}})
    detail = error_of(response, 400)["detail"]
    assert "deployment.default_params.fm must be one of" in detail
    assert "did you mean 'webp'?" in detail
    shown = api.get(f"{SOURCES}/{source_id}").json()["data"]["attributes"]["deployment"]
    assert shown["default_params"] == {"auto": "format"}
