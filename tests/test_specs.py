"""The specs models: defaults, constraints and secrets as the API reference documents them."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from reconciler.specs import (
    DEPLOYMENT_MODELS,
    DEPLOYMENT_TYPES,
    AzureDeployment,
    DesiredState,
    GcsDeployment,
    S3CompatibleDeployment,
    S3Deployment,
    Secret,
    SecretRef,
    SourceSpec,
    WebFolderDeployment,
    WebProxyDeployment,
    all_secret_fields,
    api_name,
    comparable_paths,
    deployment_defaults,
    deployment_fields,
    deployment_type,
    fields_by_api_name,
    hostname_count_error,
    ignore_changes_error,
    managed_view,
    managed_views,
    reference_fields,
    reference_value_problem,
    secret_fields,
    secret_value_problem,
    stated_fields,
    stated_only_fields,
    validation_context,
)


def s3(**overrides: Any) -> dict[str, Any]:
    return {
        "type": "s3",
        "imgix_subdomains": ["acme-products"],
        "s3_access_key": "AKIAIOSFODNN7EXAMPLE",
        "s3_bucket": "acme-product-images",
        "s3_secret_key": {"env": "S3_SECRET_KEY"},
        **overrides,
    }


def errors(model: type[Any], data: dict[str, Any], **kwargs: Any) -> list[dict[str, Any]]:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(data, **kwargs)
    return [dict(e) for e in caught.value.errors()]


# --------------------------------------------------------------------------- secrets


def test_secret_ref_never_shows_its_value() -> None:
    ref = SecretRef("env", "S3_SECRET_KEY", "hunter2")
    assert ref.reveal() == "hunter2"
    for shown in (str(ref), repr(ref), f"{ref}", str([ref]), str(ref.as_reference())):
        assert "hunter2" not in shown
    assert str(ref) == "{env: S3_SECRET_KEY}"


def test_a_secret_given_as_a_value_shows_as_literal_and_serializes_as_write_only() -> None:
    # A deployment validated from the wire (a request body) holds the value itself.
    deployment = S3Deployment.model_validate(s3(s3_secret_key="hunter2"), context={"wire": True})
    ref = deployment.s3_secret_key
    assert ref.reveal() == "hunter2"
    assert (str(ref), repr(ref)) == ("{literal}", "SecretRef({literal})")
    assert deployment.model_dump()["s3_secret_key"] == "(write-only)"
    assert "hunter2" not in repr(deployment) + str(deployment.model_dump_json())


def test_unresolved_secret_cannot_be_revealed() -> None:
    ref = SecretRef("file", "keys/s3.txt", path="/abs/keys/s3.txt")
    assert not ref.resolved
    with pytest.raises(LookupError) as caught:
        ref.reveal()
    assert "keys/s3.txt" in str(caught.value)
    assert ref.with_value("x").reveal() == "x"
    assert ref.locator() == {"file": "/abs/keys/s3.txt"}
    assert ref.as_reference() == {"file": "keys/s3.txt"}


def test_secret_refs_are_values_equal_by_reference_and_value() -> None:
    # Public and hashable: a set of them holds each reference with its value once.
    same = {SecretRef("env", "S3_SECRET_KEY", "v"), SecretRef("env", "S3_SECRET_KEY", "v")}
    assert same == {SecretRef("env", "S3_SECRET_KEY", "v")}
    others = [
        SecretRef("env", "S3_SECRET_KEY", "w"),
        SecretRef("file", "S3_SECRET_KEY", "v"),
        SecretRef("env", "OTHER", "v"),
        SecretRef("env", "S3_SECRET_KEY"),
    ]
    assert len(same | set(others)) == 5
    assert {SecretRef("env", "S3_SECRET_KEY", "v"): 1}[SecretRef("env", "S3_SECRET_KEY", "v")]
    assert SecretRef("env", "S3_SECRET_KEY") != {"env": "S3_SECRET_KEY"}


def test_an_env_reference_is_read_again_from_the_same_variable() -> None:
    assert SecretRef("env", "S3_SECRET_KEY", "v").locator() == {"env": "S3_SECRET_KEY"}
    assert SecretRef("file", "keys/s3.txt").locator() == {"file": "keys/s3.txt"}


def test_a_value_read_through_a_reference_is_checked_as_its_field() -> None:
    # The message never holds the value (it came through a reference).
    assert reference_value_problem("imgix_subdomains", "acme") == "takes no reference"
    assert reference_value_problem("cache_ttl_behavior", "respect_origin") is None
    problem = reference_value_problem("cache_ttl_behavior", "sometimes")
    assert problem is not None
    assert "sometimes" not in problem
    # A check that quotes the value in the file's errors does not quote it here.
    canary = "ftp://canary.example/"
    assert reference_value_problem("webfolder_base_url", canary) == (
        "must be an absolute http(s) URL"
    )
    assert secret_value_problem("request_handshake", "short") == (
        "must be exactly 32 latin-1 characters (the value has 5)"
    )
    assert secret_value_problem("request_handshake", "k" * 32) is None
    assert secret_value_problem("password", "user:pass") == (
        "must not contain ':' or control characters"
    )
    assert secret_value_problem("s3_bucket", "user:pass") is None  # no secret


def test_literal_secret_is_rejected_without_echo() -> None:
    (error,) = errors(S3Deployment, s3(s3_secret_key="hunter2"))
    assert error["type"] == "literal_secret"
    assert error["loc"] == ("s3_secret_key",)
    assert "hunter2" not in error["msg"]
    # What to write instead, for the error the user sees at the value's line.
    assert error["msg"] == (
        "is write-only and must not be written in the file: use a reference such as "
        "{env: NAME} or {file: path}"
    )


def test_wire_bodies_accept_plain_secrets() -> None:
    deployment = S3Deployment.model_validate(s3(s3_secret_key="hunter2"), context={"wire": True})
    assert deployment.s3_secret_key.reveal() == "hunter2"
    assert deployment.model_dump(by_alias=True)["s3_secret_key"] == "(write-only)"


def test_references_dump_as_written() -> None:
    deployment = S3Deployment.model_validate(s3())
    dumped = deployment.model_dump(by_alias=True)
    assert dumped["s3_secret_key"] == {"env": "S3_SECRET_KEY"}
    assert dumped["robots.txt"] is None  # no documented default: unset until stated


@pytest.mark.parametrize("value", ["short", "é" * 31 + "€", "x" * 33])
def test_handshake_must_be_32_latin1_characters(value: str) -> None:
    ref = SecretRef("env", "HANDSHAKE", value)
    data = {
        "type": "webfolder",
        "imgix_subdomains": ["a"],
        "webfolder_base_url": "https://o.example/",
    }
    (error,) = errors(WebFolderDeployment, {**data, "request_handshake": ref})
    assert "32 latin-1" in error["msg"]
    assert value not in error["msg"]
    ok = WebFolderDeployment.model_validate({**data, "request_handshake": ref.with_value("é" * 32)})
    assert ok.request_handshake is not None


def test_basic_auth_parts_refuse_colons() -> None:
    data = {
        "type": "webfolder",
        "imgix_subdomains": ["a"],
        "webfolder_base_url": "https://o.example/",
    }
    (error,) = errors(WebFolderDeployment, {**data, "username": "a:b"})
    assert error["loc"] == ("username",)
    password = SecretRef("env", "P", "pass:word")
    (error,) = errors(WebFolderDeployment, {**data, "password": password})
    assert "pass:word" not in error["msg"]


def test_secret_fields_of_each_type() -> None:
    assert secret_fields(S3Deployment) == {"s3_secret_key": Secret()}
    assert set(secret_fields(WebProxyDeployment)) == {
        "password",
        "request_handshake",
        "request_signing_key",
    }
    assert secret_fields(WebFolderDeployment)["password"].encrypted_as == "password_encrypted"
    for model in DEPLOYMENT_MODELS.values():
        assert "secure_url_token" not in model.model_fields


# --------------------------------------------------------------------------- defaults


def test_documented_defaults() -> None:
    defaults = deployment_defaults(S3Deployment)
    assert defaults["cache_ttl_behavior"] == "respect_origin"
    assert defaults["cache_ttl_value"] == 31536000
    assert defaults["cache_ttl_error"] == 300
    assert defaults["custom_domains"] == []
    assert defaults["default_params"] == {}
    assert defaults["image_error"] is None
    # No documented default: managed only when the file states them.
    assert "robots.txt" not in defaults
    assert "annotation" not in defaults
    assert stated_only_fields(S3Deployment) == {"annotation", "robots.txt"}
    assert deployment_defaults(GcsDeployment)["cache_ttl_behavior"] == "enforce_minimum"
    assert deployment_defaults(WebProxyDeployment)["secure_url_enabled"] is True
    assert "robots.txt" not in deployment_defaults(WebProxyDeployment)


def test_credentialed_origins_name_their_credentials_and_location() -> None:
    # api-notes: moving such an origin re-sends its credentials, the secret included.
    expected = {
        "s3": ({"s3_access_key", "s3_secret_key"}, {"s3_bucket", "s3_prefix"}),
        "gcs": ({"gcs_access_key", "gcs_secret_key"}, {"gcs_bucket", "gcs_prefix"}),
        "s3_compatible": (
            {"access_key_id", "secret_key"},
            {"bucket_name", "endpoint_url", "region", "storage_provider"},
        ),
    }
    for kind, (credentials, location) in expected.items():
        model = DEPLOYMENT_MODELS[kind]
        assert set(model.CREDENTIAL_FIELDS) == credentials
        assert set(model.LOCATION_FIELDS) == location
    azure = DEPLOYMENT_MODELS["azure"]
    assert set(azure.CREDENTIAL_FIELDS) == {"azure_sas_string"}
    assert azure.LOCATION_FIELDS
    assert set(DEPLOYMENT_MODELS["webfolder"].LOCATION_FIELDS) == {"webfolder_base_url"}
    # Their secrets are basic-auth and signing keys, not credentials of a bucket.
    assert not DEPLOYMENT_MODELS["webfolder"].CREDENTIAL_FIELDS
    assert not DEPLOYMENT_MODELS["webproxy"].CREDENTIAL_FIELDS


def test_a_web_proxy_keeps_secure_urls_enabled() -> None:
    data = {"type": "webproxy", "imgix_subdomains": ["acme-proxy"], "secure_url_enabled": True}
    assert WebProxyDeployment.model_validate(data).secure_url_enabled is True


def test_specs_cannot_be_changed_once_read() -> None:
    spec = SourceSpec.model_validate({"name": "Product images", "deployment": s3()})
    with pytest.raises(ValidationError):
        spec.name = "other"  # type: ignore[misc]
    with pytest.raises(ValidationError):
        spec.deployment.s3_bucket = "other"  # type: ignore[misc]
    state = DesiredState.model_validate({"version": 1, "sources": []})
    with pytest.raises(ValidationError):
        state.sources = []  # type: ignore[misc]
    with pytest.raises(ValidationError):
        state.safety.max_risky_share = 1.0  # type: ignore[misc]


def test_unknown_default_params_are_refused_unless_the_file_allows_them() -> None:
    params = {"default_params": {"not-a-param": "1"}}
    (error,) = errors(S3Deployment, s3(**params))
    assert (error["type"], error["loc"]) == ("unknown_param", ("default_params", "not-a-param"))
    source = {"name": "Product images", "deployment": s3(**params)}
    (error,) = errors(DesiredState, {"version": 1, "sources": [source]})
    assert error["type"] == "unknown_param"
    # A caller's own context reaches the validators either way.
    assert validation_context({"version": 1}, {"wire": True}) == {"wire": True}
    assert validation_context({"allow_unknown_params": True}, {"wire": True}) == {
        "wire": True,
        "allow_unknown_params": True,
    }
    allowed = DesiredState.model_validate(
        {"version": 1, "allow_unknown_params": True, "sources": [source]}
    )
    assert allowed.sources[0].deployment.default_params == {"not-a-param": "1"}


def test_stated_fields_are_those_the_file_wrote() -> None:
    deployment = S3Deployment.model_validate({**s3(), "robots.txt": "origin"})
    assert "robots.txt" in stated_fields(deployment)
    assert "cache_ttl_value" not in stated_fields(deployment)


def test_managed_attributes_are_the_api_form_of_what_the_file_manages() -> None:
    deployment = S3Deployment.model_validate(
        {**s3(), "robots.txt": "origin", "default_params": {"q": 75}, "annotation": "note"}
    )
    managed = deployment.managed()
    attributes = deployment.model_dump(by_alias=True, mode="json")
    # The annotation and the secret follow their own rules; robots.txt is stated here.
    del attributes["annotation"], attributes["s3_secret_key"]
    assert list(managed.items()) == list(attributes.items())  # in field order, as dumped
    view = managed_view(deployment)
    assert view.from_api(attributes) == view.from_spec(deployment) == tuple(attributes.values())
    assert view.maps == (("default_params", "default_params"),)
    unstated = S3Deployment.model_validate(s3())
    assert "robots.txt" not in unstated.managed() and "cache_ttl_value" in unstated.managed()
    assert "robots.txt" not in dict(managed_view(unstated).fields).values()
    # Copies, as a dump gives: what a plan sends never shares the model's lists.
    assert managed["imgix_subdomains"] == deployment.imgix_subdomains
    assert managed["imgix_subdomains"] is not deployment.imgix_subdomains
    assert managed["default_params"] is not deployment.default_params


def test_managed_attributes_are_what_a_dump_gives_for_every_source_of_the_example() -> None:
    from pathlib import Path

    from reconciler.loader import load

    example = Path(__file__).parent.parent / "examples" / "sources.yaml"
    loaded = load([example], resolve=False)
    kinds = set()
    for spec in loaded.state.sources:
        deployment = spec.deployment
        model = type(deployment)
        kinds.add(model)
        dumped = deployment.model_dump(by_alias=True, mode="json")
        unstated = stated_only_fields(model) - stated_fields(deployment)
        expected = {
            name: value
            for name, value in dumped.items()
            if name != "annotation" and name not in secret_fields(model) and name not in unstated
        }
        assert list(deployment.managed().items()) == list(expected.items())
        view = managed_view(deployment)
        assert view.from_api(dumped) == view.from_spec(deployment)
    assert len(kinds) >= 5  # the example shows all types but s3_compatible


def test_only_numbers_and_booleans_are_compared_by_type_too() -> None:
    # `true == 1` in Python: a live `true` for cache_ttl_value must not read as unchanged.
    view = managed_view(S3Deployment.model_validate(s3()))
    typed = {
        view.fields[p][1]: kind
        for p, kind in zip(view.typed_positions, view.typed_types, strict=True)
    }
    assert typed == {
        "cache_ttl_error": int,
        "cache_ttl_value": int,
        "crossdomain_xml_enabled": bool,
        "image_error_append_qs": bool,
        "image_missing_append_qs": bool,
        "secure_url_enabled": bool,
    }
    assert view.typed is not None
    values = view.from_spec(S3Deployment.model_validate(s3()))
    assert view.typed(values) == tuple(values[p] for p in view.typed_positions)


def test_views_of_many_deployments_are_grouped_by_view() -> None:
    gcs = {
        "type": "gcs",
        "imgix_subdomains": ["acme-gcs"],
        "gcs_access_key": "GOOG1EXAMPLE",
        "gcs_bucket": "acme-gcs",
        "gcs_secret_key": {"env": "GCS_SECRET_KEY"},
    }
    deployments = [
        S3Deployment.model_validate(s3()),
        GcsDeployment.model_validate(gcs),
        S3Deployment.model_validate(s3(imgix_subdomains=["acme-other"])),
        S3Deployment.model_validate({**s3(), "robots.txt": "origin"}),
        # Stated-only too, but never in a view: it reads like the plain ones, in bulk.
        S3Deployment.model_validate(s3(annotation="hello")),
    ]
    groups = managed_views(deployments)
    assert sorted(positions for _, positions in groups) == [[0, 2, 4], [1], [3]]
    assert managed_view(deployments[4]) is managed_view(deployments[0])
    for view, positions in groups:
        for position in positions:
            assert view == managed_view(deployments[position])


def test_every_type_has_a_model() -> None:
    assert set(DEPLOYMENT_MODELS) == set(DEPLOYMENT_TYPES)
    for kind, model in DEPLOYMENT_MODELS.items():
        assert model.model_fields["type"].annotation.__args__ == (kind,)  # type: ignore[union-attr]


def test_robots_txt_uses_the_api_name() -> None:
    assert api_name(S3Deployment, "robots_txt") == "robots.txt"
    assert "deployment.robots.txt" in comparable_paths(S3Deployment)
    assert comparable_paths(S3Deployment)[:2] == ["name", "enabled"]
    assert comparable_paths(S3Deployment)[-1] == "deployment.type"
    for model in DEPLOYMENT_MODELS.values():
        paths = comparable_paths(model)
        assert len(set(paths)) == len(paths), model  # each path once


# --------------------------------------------------------------------------- constraints


@pytest.mark.parametrize(
    ("overrides", "kind"),
    [
        ({"cache_ttl_value": 1799}, "greater_than_equal"),
        ({"cache_ttl_value": 31536001}, "less_than_equal"),
        ({"cache_ttl_error": 0}, "greater_than_equal"),
        ({"imgix_subdomains": []}, "too_short"),
        ({"imgix_subdomains": ["-bad"]}, "subdomain"),
        ({"imgix_subdomains": ["a" * 64]}, "subdomain"),
        ({"custom_domains": ["Images.Example.com"]}, "domain"),
        ({"image_error": "/relative.png"}, "absolute_url"),
        ({"robots.txt": "maybe"}, "literal_error"),
        ({"cache_ttl_behavior": "forever"}, "literal_error"),
        ({"s3_bucket": ""}, "string_too_short"),
        ({"s3_bucket_name": "x"}, "extra_forbidden"),
        ({"imgix_subdomains": ["a", "a"]}, "repeated_hostname"),
        (
            {
                "imgix_subdomains": [f"s{i}" for i in range(60)],
                "custom_domains": [f"d{i}.example.com" for i in range(41)],
            },
            "too_many_hostnames",
        ),
    ],
)
def test_documented_constraints(overrides: dict[str, Any], kind: str) -> None:
    assert [e["type"] for e in errors(S3Deployment, s3(**overrides))] == [kind]


def test_value_errors_quote_the_value() -> None:
    (error,) = errors(S3Deployment, s3(imgix_subdomains=["Bad_Sub"]))
    assert error["msg"].endswith("(got 'Bad_Sub')")
    (error,) = errors(S3Deployment, s3(custom_domains=["Images.Example.com"]))
    assert error["msg"].endswith("(got 'Images.Example.com')")
    (error,) = errors(DesiredState, {"version": 1, "owner": "two words", "sources": []})
    assert error["msg"].endswith("(got 'two words')")


def test_limits_are_inclusive() -> None:
    hosts = {
        "imgix_subdomains": [f"s{i}" for i in range(60)],
        "custom_domains": [f"d{i}.example.com" for i in range(40)],
    }
    S3Deployment.model_validate(s3(cache_ttl_value=1800, cache_ttl_error=31536000, **hosts))


def test_web_proxy_needs_secure_urls() -> None:
    data = {"type": "webproxy", "imgix_subdomains": ["acme-proxy"], "secure_url_enabled": False}
    (error,) = errors(WebProxyDeployment, data)
    assert error["type"] == "webproxy_secure_url"
    (error,) = errors(
        WebProxyDeployment, {**data, "secure_url_enabled": True, "robots.txt": "origin"}
    )
    assert error["type"] == "literal_error"


def test_source_spec_checks_id_and_ignore_changes() -> None:
    base = {"name": "Product images", "deployment": s3()}
    assert SourceSpec.model_validate(base).enabled is True
    (error,) = errors(SourceSpec, {**base, "id": "6359B5BA8147DA20E8EDFDD5"})
    assert error["type"] == "string_pattern_mismatch"
    (error,) = errors(SourceSpec, {**base, "ignore_changes": ["deployment.gcs_bucket"]})
    assert error["type"] == "ignore_changes"
    spec = SourceSpec.model_validate(
        {**base, "ignore_changes": ["deployment.default_params", "deployment.robots.txt"]}
    )
    assert spec.ignore_changes == ["deployment.default_params", "deployment.robots.txt"]


def test_ignore_changes_cannot_name_the_type() -> None:
    # Ignored, a live source of another type was sent this type's attributes without the
    # type: the API refuses them (400) on every apply, and the plan never converges.
    base = {"name": "Product images", "deployment": s3()}
    (error,) = errors(SourceSpec, {**base, "ignore_changes": ["name", "deployment.type"]})
    assert error["type"] == "ignore_changes"
    assert error["msg"].startswith("ignore_changes cannot name deployment.type")
    assert "mode: protect" in error["msg"]


# --------------------------------------------------------------------------- all errors at once


def test_web_proxy_secure_urls_are_checked_with_the_other_fields() -> None:
    data = {
        "type": "webproxy",
        "imgix_subdomains": ["acme-proxy"],
        "secure_url_enabled": False,
        "cache_ttl_value": 60,
    }
    found = {e["type"]: e["loc"] for e in errors(WebProxyDeployment, data)}
    assert found == {
        "webproxy_secure_url": ("secure_url_enabled",),
        "greater_than_equal": ("cache_ttl_value",),
    }


@pytest.mark.parametrize("field", ["imgix_subdomains", "custom_domains"])
def test_repeated_hostnames_are_checked_with_the_other_fields(field: str) -> None:
    name = "acme-products" if field == "imgix_subdomains" else "images.acme.example"
    found = errors(S3Deployment, s3(**{field: [name, name]}, cache_ttl_value=60))
    assert {(e["type"], e["loc"]) for e in found} == {
        ("repeated_hostname", (field,)),
        ("greater_than_equal", ("cache_ttl_value",)),
    }
    (repeated,) = (e for e in found if e["type"] == "repeated_hostname")
    assert repeated["msg"] == f"{field} lists {name} more than once"


def test_repeated_hostname_is_reported_beside_an_invalid_one() -> None:
    found = errors(S3Deployment, s3(imgix_subdomains=["acme-a", "Bad_Sub", "acme-a"]))
    assert {(e["type"], e["loc"]) for e in found} == {
        ("subdomain", ("imgix_subdomains", 1)),
        ("repeated_hostname", ("imgix_subdomains",)),
    }


def test_a_hostname_written_as_text_instead_of_a_list_is_one_error() -> None:
    # The letters of "images.acme.example" repeat: they are not hostnames named twice.
    found = errors(S3Deployment, s3(custom_domains="images.acme.example"))
    assert [(e["type"], e["loc"]) for e in found] == [("list_type", ("custom_domains",))]


def test_every_repeated_hostname_is_named_once_in_one_message() -> None:
    names = ["acme-b", "acme-a", "acme-b", "acme-c", "acme-a", "acme-b"]
    (error,) = errors(S3Deployment, s3(imgix_subdomains=names))
    assert error["msg"] == "imgix_subdomains lists acme-a, acme-b more than once"


def test_hostnames_that_are_not_text_are_type_errors_even_when_repeated() -> None:
    found = errors(S3Deployment, s3(imgix_subdomains=[7, 7, {"host": "a"}, {"host": "a"}]))
    assert [(e["type"], e["loc"]) for e in found] == [
        ("string_type", ("imgix_subdomains", index)) for index in range(4)
    ]


def test_cross_field_checks_are_available_without_a_model() -> None:
    error = hostname_count_error(60, 41)
    assert error is not None
    assert error.message() == (
        "imgix_subdomains and custom_domains may hold at most 100 names together (got 101)"
    )
    assert hostname_count_error(60, 40) is None
    error = ignore_changes_error(S3Deployment, ["deployment.gcs_bucket", "name"])
    assert error is not None
    assert error.message().startswith("ignore_changes names deployment.gcs_bucket, which is not")
    assert ignore_changes_error(S3Deployment, ["deployment.s3_bucket", "name"]) is None
    # Any iterable, read once: the paths are all checked after the look for `type`.
    error = ignore_changes_error(S3Deployment, iter(["name", "deployment.gcs_bucket"]))
    assert error is not None and "deployment.gcs_bucket" in error.message()


# --------------------------------------------------------------------------- strict scalars


@pytest.mark.parametrize(
    ("overrides", "kind"),
    [
        ({"cache_ttl_value": "86400"}, "int_type"),
        ({"cache_ttl_value": True}, "int_type"),
        ({"cache_ttl_value": 86400.0}, "int_type"),
        ({"cache_ttl_error": "300"}, "int_type"),
        ({"secure_url_enabled": "yes"}, "bool_type"),
        ({"secure_url_enabled": "true"}, "bool_type"),
        ({"crossdomain_xml_enabled": 1}, "bool_type"),
        ({"image_error_append_qs": "0"}, "bool_type"),
        ({"image_missing_append_qs": "false"}, "bool_type"),
    ],
)
def test_scalars_are_not_coerced_from_other_types(overrides: dict[str, Any], kind: str) -> None:
    (error,) = errors(S3Deployment, s3(**overrides))
    assert error["type"] == kind


@pytest.mark.parametrize("enabled", ["yes", "0", 1, "true"])
def test_enabled_must_be_a_boolean(enabled: Any) -> None:
    (error,) = errors(SourceSpec, {"name": "x", "enabled": enabled, "deployment": s3()})
    assert (error["type"], error["loc"]) == ("bool_type", ("enabled",))


@pytest.mark.parametrize("version", [True, 1.0, "1", 2])
def test_version_must_be_the_integer_one(version: Any) -> None:
    (error,) = errors(DesiredState, {"version": version, "sources": []})
    assert (error["type"], error["loc"]) == ("literal_error", ("version",))
    assert error["msg"] == "Input should be 1"


def test_sources_key_is_required() -> None:
    (error,) = errors(DesiredState, {"version": 1})
    assert (error["type"], error["loc"]) == ("missing", ("sources",))
    assert DesiredState.model_validate({"version": 1, "sources": []}).sources == []


# --------------------------------------------------------------------------- checked values


def test_values_that_pass_their_checks_are_kept_as_written() -> None:
    webfolder = WebFolderDeployment.model_validate(
        {
            "type": "webfolder",
            "imgix_subdomains": ["acme-blog"],
            "custom_domains": ["images.acme.example"],
            "webfolder_base_url": "https://blog.example/",
            "image_error": "https://blog.example/error.png",
            "username": "reader",
        }
    )
    assert webfolder.imgix_subdomains == ["acme-blog"]
    assert webfolder.custom_domains == ["images.acme.example"]
    assert webfolder.webfolder_base_url == "https://blog.example/"
    assert webfolder.image_error == "https://blog.example/error.png"
    assert webfolder.username == "reader"


def test_plain_http_urls_are_accepted_as_well_as_https() -> None:
    webfolder = WebFolderDeployment.model_validate(
        {
            "type": "webfolder",
            "imgix_subdomains": ["acme-blog"],
            "webfolder_base_url": "http://blog.example/",
            "image_missing": "http://blog.example/missing.png",
        }
    )
    assert webfolder.webfolder_base_url == "http://blog.example/"
    assert webfolder.image_missing == "http://blog.example/missing.png"


def test_a_url_error_quotes_the_url() -> None:
    webfolder = {"type": "webfolder", "imgix_subdomains": ["acme-blog"]}
    (error,) = errors(WebFolderDeployment, {**webfolder, "webfolder_base_url": "ftp://o.example/"})
    assert error["msg"] == "must be an absolute http(s) URL (got 'ftp://o.example/')"


def test_default_params_report_type_errors_and_unknown_names_together() -> None:
    found = errors(
        WebFolderDeployment,
        {
            "type": "webfolder",
            "imgix_subdomains": ["acme-blog"],
            "webfolder_base_url": "https://blog.example/",
            "default_params": {"w": [1], "nonsense": 1},
        },
    )
    locations = {error["loc"][:2] for error in found}
    assert locations == {("default_params", "w"), ("default_params", "nonsense")}
    (unknown,) = (e for e in found if e["loc"] == ("default_params", "nonsense"))
    assert unknown["type"] == "unknown_param" and "'nonsense'" in unknown["msg"]


def test_an_owner_is_kept_and_a_risky_count_below_one_is_refused() -> None:
    state = {"version": 1, "owner": "team-images", "sources": []}
    assert DesiredState.model_validate(state).owner == "team-images"
    (error,) = errors(DesiredState, {**state, "safety": {"min_risky_count": 0}})
    assert error["loc"] == ("safety", "min_risky_count")


# --------------------------------------------------------------------------- introspection


def webfolder(**overrides: Any) -> dict[str, Any]:
    return {
        "type": "webfolder",
        "imgix_subdomains": ["acme-blog"],
        "webfolder_base_url": "https://blog.acme.example/",
        **overrides,
    }


def test_each_type_names_its_write_only_attributes_and_what_the_api_returns_instead() -> None:
    assert dict(secret_fields(S3Deployment)) == {"s3_secret_key": Secret()}
    assert dict(secret_fields(AzureDeployment)) == {"azure_sas_string": Secret()}
    assert dict(secret_fields(S3CompatibleDeployment)) == {"secret_key": Secret()}
    for model in (WebFolderDeployment, WebProxyDeployment):
        assert dict(secret_fields(model)) == {
            "password": Secret("password_encrypted"),
            "request_handshake": Secret("request_handshake_encrypted"),
            "request_signing_key": Secret("request_signing_key_encrypted"),
        }
    assert all_secret_fields() == {
        "s3_secret_key",
        "gcs_secret_key",
        "azure_sas_string",
        "secret_key",
        "password",
        "request_handshake",
        "request_signing_key",
    }
    # One mapping serves every caller: none of them may change it for the others.
    with pytest.raises(TypeError):
        secret_fields(S3Deployment)["s3_bucket"] = Secret()  # type: ignore[index]


def test_attributes_written_as_references_are_the_text_ones_but_the_type_and_secrets() -> None:
    # Literals of text, optional text and checked text are text; numbers, booleans,
    # lists and maps are not.
    assert reference_fields(AzureDeployment) == (
        "annotation",
        "cache_ttl_behavior",
        "image_error",
        "image_missing",
        "azure_account",
        "azure_bucket",
        "azure_prefix",
        "azure_service_type",
        "robots.txt",
    )
    assert reference_fields(WebProxyDeployment) == (
        "annotation",
        "cache_ttl_behavior",
        "image_error",
        "image_missing",
        "username",
        "robots.txt",
    )


def test_a_value_through_a_reference_is_refused_for_attributes_that_take_none() -> None:
    for field in ("type", "s3_secret_key", "secure_url_enabled", "cache_ttl_value", "nonsense"):
        assert reference_value_problem(field, "anything-long-enough") == "takes no reference"
    assert reference_value_problem("azure_service_type", "blob") is None
    assert reference_value_problem("username", "reader") is None
    assert reference_value_problem("image_error", "mailto:canary") == (
        "must be an absolute http(s) URL"
    )


def test_a_secret_read_at_apply_time_passes_the_models_checks_without_its_value_shown() -> None:
    # A literal value is what the reference gave: no "write it as a reference" error.
    assert secret_value_problem("s3_secret_key", "literal-from-the-environment") is None
    assert secret_value_problem("request_signing_key", "é" * 32) is None
    assert secret_value_problem("request_signing_key", "k" * 33) == (
        "must be exactly 32 latin-1 characters (the value has 33)"
    )
    assert secret_value_problem("password", "tab\tinside") == (
        "must not contain ':' or control characters"
    )


@pytest.mark.parametrize(
    "field", ["s3_secret_key", "gcs_secret_key", "azure_sas_string", "secret_key"]
)
def test_a_credential_read_with_a_line_break_or_a_control_character_is_refused(
    field: str,
) -> None:
    # A Kubernetes secret made `--from-file`, `export KEY=$(cat key.txt)` of a CRLF file:
    # the key went to imgix with its line end, and the origin refused every image.
    problem = "must not contain control characters (a line break pasted with the value?)"
    for value in ("value-pasted-with-its-newline\n", "value-with-a-cr\r", "tab\tinside-it"):
        assert secret_value_problem(field, value) == problem
    assert secret_value_problem(field, "wJalrXUtnFEMI/K7MDENG/bPxRfi CYEXAMPLEKEY") is None


@pytest.mark.parametrize(
    "field",
    [
        "s3_access_key", "s3_bucket", "gcs_access_key", "gcs_bucket", "azure_account",
        "azure_bucket", "access_key_id", "bucket_name", "region",
    ],
)  # fmt: skip
def test_a_storage_name_or_key_read_with_its_line_end_is_refused(field: str) -> None:
    # `s3_access_key: {env: AWS_ACCESS_KEY_ID}` with the variable ending in a line break
    # was valid and sent as is.
    problem = "must not contain control characters (a line break pasted with the value?)"
    assert reference_value_problem(field, "acme-value-01\n") == problem
    assert reference_value_problem(field, "acme-value-01\r") == problem
    assert reference_value_problem(field, "acme-value-01") is None


@pytest.mark.parametrize("field", ["image_missing", "image_error", "webfolder_base_url"])
def test_a_url_with_a_line_break_or_tab_is_refused_though_urlsplit_drops_them(
    field: str,
) -> None:
    # urlsplit removes tabs and line breaks before parsing: the check passed and the URL
    # was sent with them.
    for url in ("https://acme.example/a.png\n", "https://acme.example/\ta.png"):
        assert reference_value_problem(field, url) == "must be an absolute http(s) URL"
    (error,) = errors(S3Deployment, s3(image_missing="https://acme.example/a.png\r\n"))
    assert error["msg"] == (
        "must be an absolute http(s) URL (got 'https://acme.example/a.png\\r\\n')"
    )


def test_every_type_manages_annotation_and_robots_txt_only_when_stated() -> None:
    for model in DEPLOYMENT_MODELS.values():
        assert stated_only_fields(model) == {"annotation", "robots.txt"}, model


def test_stated_attributes_are_api_names_of_what_the_file_wrote_even_a_default() -> None:
    deployment = WebFolderDeployment.model_validate(
        webfolder(**{"robots.txt": "origin", "cache_ttl_value": 31536000})
    )
    assert stated_fields(deployment) == {
        "type",
        "imgix_subdomains",
        "webfolder_base_url",
        "robots.txt",
        "cache_ttl_value",
    }


def test_defaults_are_every_optional_attribute_but_those_managed_only_when_stated() -> None:
    defaults = deployment_defaults(WebFolderDeployment)
    assert defaults == {
        "cache_ttl_behavior": "respect_origin",
        "cache_ttl_error": 300,
        "cache_ttl_value": 31536000,
        "crossdomain_xml_enabled": False,
        "custom_domains": [],
        "default_params": {},
        "image_error": None,
        "image_error_append_qs": False,
        "image_missing": None,
        "image_missing_append_qs": False,
        "secure_url_enabled": False,
        "username": None,
        "password": None,
        "request_handshake": None,
        "request_signing_key": None,
    }
    # Each call gives its own lists and maps: a caller filling one changes no other's.
    defaults["custom_domains"].append("images.acme.example")
    defaults["default_params"]["q"] = 75
    again = deployment_defaults(WebFolderDeployment)
    assert again["custom_domains"] == [] and again["default_params"] == {}


def test_a_plan_can_change_every_attribute_with_the_type_last() -> None:
    assert comparable_paths(WebFolderDeployment) == [
        "name",
        "enabled",
        "deployment.annotation",
        "deployment.cache_ttl_behavior",
        "deployment.cache_ttl_error",
        "deployment.cache_ttl_value",
        "deployment.crossdomain_xml_enabled",
        "deployment.custom_domains",
        "deployment.default_params",
        "deployment.image_error",
        "deployment.image_error_append_qs",
        "deployment.image_missing",
        "deployment.image_missing_append_qs",
        "deployment.imgix_subdomains",
        "deployment.secure_url_enabled",
        "deployment.webfolder_base_url",
        "deployment.username",
        "deployment.password",
        "deployment.request_handshake",
        "deployment.request_signing_key",
        "deployment.robots.txt",
        "deployment.type",
    ]


def test_attributes_are_known_by_their_api_names() -> None:
    assert api_name(S3Deployment, "s3_bucket") == "s3_bucket"
    assert api_name(SourceSpec, "name") == "name"
    by_api = fields_by_api_name(WebProxyDeployment)
    assert "robots.txt" in by_api and "robots_txt" not in by_api
    assert by_api["robots.txt"] is WebProxyDeployment.model_fields["robots_txt"]
    assert set(by_api) == {api for _, api in deployment_fields(WebProxyDeployment)}
    assert ("robots_txt", "robots.txt") in deployment_fields(WebProxyDeployment)
    assert ("type", "type") in deployment_fields(WebProxyDeployment)
    assert [deployment_type(model) for model in DEPLOYMENT_MODELS.values()] == list(
        DEPLOYMENT_TYPES
    )
