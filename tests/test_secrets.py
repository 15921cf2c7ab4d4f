"""The secret send rules and the annotation marker (reconciler/secrets.py)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.applier import SecretResolver, apply_plan
from reconciler.client import ImgixClient
from reconciler.emulator import EMULATOR_API_KEY, RateLimits, SourceStore, create_app
from reconciler.loader import load
from reconciler.marker import Marker, compose_annotation, parse_annotation
from reconciler.pacing import Pacing
from reconciler.plan import Plan
from reconciler.planner import PlanOptions, plan
from reconciler.reconcile import drift_findings
from reconciler.secrets import (
    UNDECLARED,
    UNKNOWN,
    UNRECORDED,
    UNRESOLVED,
    credentials_to_resend,
    decide_secrets,
    encrypted_changed,
    encrypted_digest,
    encrypted_fields,
    fingerprint,
    origin_moved,
    recorded_encrypted,
    secret_values,
    stamped,
    unchanged_secrets,
)
from reconciler.specs import (
    DeploymentBase,
    S3Deployment,
    SecretRef,
    WebFolderDeployment,
)

KEY = b"fingerprint-key"


def s3(secret: str | None = "s3-secret-value", **changes: Any) -> S3Deployment:
    ref = SecretRef("env", "S3_SECRET_KEY", secret)
    attributes = {
        "type": "s3",
        "s3_access_key": "AKIA",
        "s3_bucket": "bucket",
        "s3_secret_key": ref,
        "imgix_subdomains": ["acme-products"],
        **changes,
    }
    return S3Deployment.model_validate(attributes)


def marker_for(deployment: DeploymentBase, **values: str) -> Marker:
    return Marker({name: fingerprint(KEY, name, value) for name, value in values.items()})


# --------------------------------------------------------------------------- fingerprints


def test_fingerprint_is_keyed_and_bound_to_the_field_name() -> None:
    base = fingerprint(KEY, "s3_secret_key", "value")
    assert base == fingerprint(KEY, "s3_secret_key", "value")
    assert base != fingerprint(b"other key", "s3_secret_key", "value")
    assert base != fingerprint(KEY, "secret_key", "value")
    assert base != fingerprint(KEY, "s3_secret_key", "value2")
    assert "value" not in base and len(base) == 32


def test_fingerprint_is_the_hmac_sha256_every_written_marker_holds() -> None:
    # Markers already on live accounts hold these bytes: a different hash would make every
    # plan re-send every secret. The keyed HMAC is reused, so each call must start afresh.
    for value in ("value", "value2", "value"):
        message = b"s3_secret_key\x00" + value.encode()
        expected = hmac.new(KEY, message, hashlib.sha256).hexdigest()[:32]
        assert fingerprint(KEY, "s3_secret_key", value) == expected
    assert fingerprint(b"imgix", "s3_secret_key", "rotate-me") == "fa7870d854621cb6af04932b343a4f17"


def test_marker_round_trips_with_user_text_in_front() -> None:
    marker = Marker({"s3_secret_key": "ab" * 16, "password": UNKNOWN})
    annotation = compose_annotation("Managed in git", marker)
    assert annotation.startswith("Managed in git [imgix-reconciler v1 ")
    parsed = parse_annotation(annotation)
    assert parsed.text == "Managed in git"
    assert parsed.marker == marker


def test_marker_alone_when_no_user_text() -> None:
    marker = Marker({"s3_secret_key": "cd" * 16})
    assert compose_annotation(None, marker) == f"[imgix-reconciler v1 fp.s3_secret_key={'cd' * 16}]"
    assert parse_annotation(compose_annotation(None, marker)).text is None


def test_marker_tokens_are_sorted_so_the_text_is_stable() -> None:
    one = Marker({"b": "1", "a": "2"}).render()
    two = Marker({"a": "2", "b": "1"}).render()
    assert one == two == "[imgix-reconciler v1 fp.a=2 fp.b=1]"


@pytest.mark.parametrize(
    "annotation",
    [None, "", "New deployment created for source by jane", "[imgix-reconciler] by hand"],
)
def test_annotation_without_marker_means_deployed_outside(annotation: str | None) -> None:
    parsed = parse_annotation(annotation)
    assert parsed.marker is None
    assert parsed.text == (annotation or None)


def test_parser_keeps_unknown_tokens_out_and_reads_reserved_encrypted_hashes() -> None:
    parsed = parse_annotation(
        "[imgix-reconciler v2 fp.password=abc enc.password_encrypted=1234 zz.x=y junk]"
    )
    assert parsed.marker == Marker({"password": "abc"}, {"password_encrypted": "1234"}, 2)


def test_marker_only_counts_at_the_end() -> None:
    parsed = parse_annotation("[imgix-reconciler v1] then edited in the dashboard")
    assert parsed.marker is None


# --------------------------------------------------------------------------- send rules


def test_create_sends_every_declared_secret_and_records_its_fingerprint() -> None:
    decision = decide_secrets(s3(), key=KEY, creating=True)
    assert decision.send == ("s3_secret_key",)
    assert decision.fingerprints == {
        "s3_secret_key": fingerprint(KEY, "s3_secret_key", "s3-secret-value")
    }


def test_unchanged_secret_with_matching_fingerprint_is_not_sent() -> None:
    deployment = s3()
    recorded = marker_for(deployment, s3_secret_key="s3-secret-value")
    decision = decide_secrets(deployment, key=KEY, live_type="s3", recorded=recorded)
    assert decision.send == ()
    assert decision.cannot_compare == {}
    assert decision.marker() == recorded


def test_rotated_secret_is_sent_with_its_new_fingerprint() -> None:
    deployment = s3("rotated")
    recorded = marker_for(deployment, s3_secret_key="s3-secret-value")
    decision = decide_secrets(deployment, key=KEY, live_type="s3", recorded=recorded)
    assert decision.send == ("s3_secret_key",)
    assert decision.fingerprints["s3_secret_key"] == fingerprint(KEY, "s3_secret_key", "rotated")


def test_location_change_of_a_credentialed_origin_sends_the_credentials() -> None:
    deployment = s3()
    recorded = marker_for(deployment, s3_secret_key="s3-secret-value")
    decision = decide_secrets(
        deployment, key=KEY, live_type="s3", changed=["s3_bucket"], recorded=recorded
    )
    assert decision.send == ("s3_secret_key",)
    assert credentials_to_resend(S3Deployment, "s3", ["s3_bucket"]) == {"s3_access_key"}


def test_non_location_change_sends_nothing() -> None:
    deployment = s3()
    recorded = marker_for(deployment, s3_secret_key="s3-secret-value")
    decision = decide_secrets(
        deployment, key=KEY, live_type="s3", changed=["cache_ttl_value"], recorded=recorded
    )
    assert decision.send == ()
    assert credentials_to_resend(S3Deployment, "s3", ["cache_ttl_value"]) == frozenset()


def test_type_change_sends_every_secret_of_the_new_type() -> None:
    deployment = WebFolderDeployment.model_validate(
        {
            "type": "webfolder",
            "webfolder_base_url": "https://origin.example/",
            "imgix_subdomains": ["acme-blog"],
            "password": SecretRef("env", "BLOG_PASSWORD", "pw"),
        }
    )
    decision = decide_secrets(deployment, key=KEY, live_type="s3", recorded=Marker())
    assert decision.send == ("password",)


def test_resend_option_sends_even_an_unchanged_secret() -> None:
    deployment = s3()
    recorded = marker_for(deployment, s3_secret_key="s3-secret-value")
    decision = decide_secrets(deployment, key=KEY, live_type="s3", recorded=recorded, resend=True)
    assert decision.send == ("s3_secret_key",)


def test_no_marker_means_cannot_compare_and_nothing_sent() -> None:
    decision = decide_secrets(s3(), key=KEY, live_type="s3", recorded=None)
    assert decision.send == ()
    assert decision.cannot_compare == {"s3_secret_key": UNRECORDED}
    # Written into the next marker as unknown, so later plans do not re-send it unasked.
    assert decision.fingerprints == {"s3_secret_key": UNKNOWN}


def test_unknown_recorded_fingerprint_stays_cannot_compare() -> None:
    decision = decide_secrets(
        s3(), key=KEY, live_type="s3", recorded=Marker({"s3_secret_key": UNKNOWN})
    )
    assert decision.send == ()
    assert decision.cannot_compare == {"s3_secret_key": UNRECORDED}


def test_unresolved_secret_cannot_be_compared_and_keeps_the_recorded_fingerprint() -> None:
    recorded = Marker({"s3_secret_key": "ab" * 16})
    decision = decide_secrets(s3(None), key=KEY, live_type="s3", recorded=recorded)
    assert decision.send == ()
    assert decision.cannot_compare == {"s3_secret_key": UNRESOLVED}
    assert decision.marker() == recorded


def test_secret_declared_since_the_last_write_is_sent() -> None:
    decision = decide_secrets(s3(), key=KEY, live_type="s3", recorded=Marker())
    assert decision.send == ("s3_secret_key",)


def test_sent_but_unresolved_secret_records_no_fingerprint() -> None:
    decision = decide_secrets(s3(None), key=KEY, creating=True)
    assert decision.send == ("s3_secret_key",)
    assert decision.fingerprints == {}


def test_ignored_secret_is_not_sent_for_a_new_fingerprint() -> None:
    deployment = s3("rotated")
    recorded = marker_for(deployment, s3_secret_key="s3-secret-value")
    decision = decide_secrets(
        deployment,
        key=KEY,
        live_type="s3",
        recorded=recorded,
        ignored=["deployment.s3_secret_key"],
    )
    assert decision.send == ()
    assert decision.marker() == recorded


def test_an_ignored_secret_is_not_resent_by_resend_secrets_or_adoption() -> None:
    # `ignore_changes` says the secret is set elsewhere (the dashboard rotates it) once the
    # source exists: `--resend-secrets` and `--adopt` (which resends every secret) wrote
    # the file's value over it.
    deployment = s3("the-files-value")
    recorded = marker_for(deployment, s3_secret_key="s3-secret-value")
    for marker in (recorded, None):
        decision = decide_secrets(
            deployment,
            key=KEY,
            live_type="s3",
            recorded=marker,
            resend=True,
            ignored=["deployment.s3_secret_key"],
        )
        assert decision.send == ()
        assert decision.cannot_compare == {}
        assert decision.fingerprints == (
            recorded.fingerprints if marker is not None else {"s3_secret_key": UNKNOWN}
        )


def test_an_ignored_credential_is_still_sent_where_the_api_requires_it() -> None:
    # On create, and with the whole credential set when the origin moves: the API refuses
    # a new bucket without its key.
    ignored = ["deployment.s3_secret_key"]
    created = decide_secrets(s3(), key=KEY, creating=True, ignored=ignored)
    recorded = marker_for(s3(), s3_secret_key="s3-secret-value")
    moved = decide_secrets(
        s3(), key=KEY, live_type="s3", changed=["s3_bucket"], recorded=recorded, ignored=ignored
    )
    assert created.send == moved.send == ("s3_secret_key",)


def test_secret_values_never_appear_in_a_decision() -> None:
    decision = decide_secrets(s3("very-secret-value"), key=KEY, creating=True)
    assert "very-secret-value" not in repr(decision)
    assert "very-secret-value" not in decision.marker().render()


# --------------------------------------------------------------------------- *_encrypted


def _webfolder_live(annotation: str, encrypted: str) -> dict[str, Any]:
    return {
        "type": "webfolder",
        "annotation": annotation,
        "password_encrypted": encrypted,
        "imgix_subdomains": ["acme-blog"],
    }


def test_recording_adds_hashes_of_the_returned_encrypted_values_to_the_marker() -> None:
    sent = Marker({"password": "ab" * 16}, owner="acme/web")
    recorded = recorded_encrypted(sent, _webfolder_live("Managed in git", "ciphertext-1"))
    assert recorded is not None
    assert recorded.fingerprints == {"password": "ab" * 16}
    assert recorded.encrypted == {"password": encrypted_digest("ciphertext-1")}
    assert recorded.owner == "acme/web"
    # Already recorded: nothing more to write.
    assert recorded_encrypted(recorded, _webfolder_live("", "ciphertext-1")) is None


def test_no_recording_for_a_secret_the_reconciler_did_not_send() -> None:
    never_sent = Marker({"password": UNKNOWN})
    assert recorded_encrypted(never_sent, _webfolder_live("", "ciphertext-1")) is None
    # Not in the marker at all (a password set on the dashboard, not in the file): its
    # `*_encrypted` value is not ours to record either.
    assert recorded_encrypted(Marker({}, owner="acme/web"), _webfolder_live("", "c-1")) is None
    unknown_type = {**_webfolder_live("", "ciphertext-1"), "type": "ftp"}
    assert recorded_encrypted(Marker({"password": "ab" * 16}), unknown_type) is None


def test_encrypted_change_is_detected_against_the_recorded_hash() -> None:
    marker = Marker({"password": "ab" * 16}, {"password": encrypted_digest("ciphertext-1")})
    live_same = _webfolder_live("", "ciphertext-1")
    live_changed = _webfolder_live("", "ciphertext-2")
    assert encrypted_changed(WebFolderDeployment, marker, live_same) == []
    assert encrypted_changed(WebFolderDeployment, marker, live_changed) == ["password"]
    # Nothing recorded: nothing to compare (no false alarm).
    assert encrypted_changed(WebFolderDeployment, Marker({"password": "x"}), live_changed) == []


def unpaced_store() -> SourceStore:
    """An emulated account without rate limits or deploy delay."""
    return SourceStore(
        limits=RateLimits(per_second=None, creates_per_hour=None, updates_per_hour=None),
        deploy_delay=0,
    )


def client_of(store: SourceStore) -> ImgixClient:
    """A client for `store`, in-process and unpaced."""
    return ImgixClient(
        api_key=EMULATOR_API_KEY,
        base_url="http://emulator",
        transport=httpx.ASGITransport(app=create_app(store)),
        pacing=Pacing(per_second=None, creates_per_hour=None, updates_per_hour=None),
    )


BLOG_YAML = """\
version: 1
sources:
  - name: Blog
    deployment:
      type: webfolder
      webfolder_base_url: https://assets.example.com/
      imgix_subdomains: [acme-blog]
      username: imgix
      password: {env: BLOG_PASSWORD}
"""


BLOG_ENVIRON = {"BLOG_PASSWORD": "blog-password-value"}


def _desired(folder: Path, text: str) -> Any:
    """The desired state `text` loads to, its password read from BLOG_ENVIRON."""
    (folder / "sources.yaml").write_text(text)
    return load([folder / "sources.yaml"], environ=BLOG_ENVIRON).state


def test_a_secret_changed_through_the_api_behind_the_marker_is_drift(tmp_path: Path) -> None:
    """Someone re-sends the password keeping the annotation: drift, and apply repairs it."""
    desired = _desired(tmp_path, BLOG_YAML)
    store = unpaced_store()
    options = PlanOptions(fingerprint_key=KEY)

    async def scenario() -> tuple[list[str], list[str]]:
        async with client_of(store) as client:
            first = plan(desired, await client.list_sources(), options)
            assert first.actions[0].record_encrypted
            assert (await apply_plan(first, client, resolver=SecretResolver(BLOG_ENVIRON))).ok
            in_sync = plan(desired, await client.list_sources(), options)
            assert in_sync.actions == []
            (live,) = await client.list_sources()
            annotation = live.deployment["annotation"]
            await client.update_source(
                live.id, {"deployment": {"password": "changed-by-hand", "annotation": annotation}}
            )
            drifted = plan(desired, await client.list_sources(), options)
            (repair,) = drifted.actions
            assert [c.path for c in repair.changes] == ["deployment.password"]
            assert (await apply_plan(drifted, client, resolver=SecretResolver(BLOG_ENVIRON))).ok
            repaired = plan(desired, await client.list_sources(), options)
            return drift_findings(in_sync), drift_findings(drifted), drift_findings(repaired)

    before, after, repaired = asyncio.run(scenario())
    assert before == [] and repaired == []
    assert after[0] == "patch Blog"
    assert "password changed outside imgix-reconciler" in after[1]


def test_stamping_fingerprints_the_values_a_resolved_body_sends() -> None:
    planned = Marker({"s3_secret_key": "stale", "other": "x"}, owner="acme/web")
    body = {"s3_secret_key": "sent-value", "annotation": "Owned by web", "cache_ttl_value": 3600}
    marker = stamped(planned, body, KEY)
    assert marker.fingerprints == {
        "s3_secret_key": fingerprint(KEY, "s3_secret_key", "sent-value"),
        "other": "x",
    }
    assert marker.owner == "acme/web"
    # A write that sends no secret keeps the marker as planned.
    assert stamped(planned, {"annotation": "by hand", "cache_ttl_value": 60}, KEY) == planned


def test_a_web_source_created_disabled_gets_its_encrypted_record_once_enabled(
    tmp_path: Path,
) -> None:
    disabled = BLOG_YAML.replace("  - name: Blog\n", "  - name: Blog\n    enabled: false\n")
    store = unpaced_store()
    options = PlanOptions(fingerprint_key=KEY)

    async def scenario() -> list[str]:
        async with client_of(store) as client:
            resolver = SecretResolver(BLOG_ENVIRON)
            for text in (disabled, BLOG_YAML):
                made = plan(_desired(tmp_path, text), await client.list_sources(), options)
                assert (await apply_plan(made, client, resolver=resolver)).ok
            (live,) = await client.list_sources()
            marker = parse_annotation(live.deployment["annotation"]).marker
            assert marker is not None and "password" in marker.encrypted
            await client.update_source(
                live.id,
                {
                    "deployment": {
                        "password": "by-hand",
                        "annotation": live.deployment["annotation"],
                    }
                },
            )
            return drift_findings(
                plan(_desired(tmp_path, BLOG_YAML), await client.list_sources(), options)
            )

    findings = asyncio.run(scenario())
    assert any("password changed outside imgix-reconciler" in f for f in findings)


def test_a_secret_removed_from_the_file_is_cleared_on_the_live_source(tmp_path: Path) -> None:
    """Omitted means the documented default: no password. Drift would otherwise miss it."""
    without = BLOG_YAML.replace("      password: {env: BLOG_PASSWORD}\n", "")
    store = unpaced_store()
    options = PlanOptions(fingerprint_key=KEY)

    async def scenario() -> tuple[Plan, Plan, dict[str, Any]]:
        async with client_of(store) as client:
            resolver = SecretResolver(BLOG_ENVIRON)
            made = plan(_desired(tmp_path, BLOG_YAML), await client.list_sources(), options)
            assert (await apply_plan(made, client, resolver=resolver)).ok
            removal = plan(_desired(tmp_path, without), await client.list_sources(), options)
            assert (await apply_plan(removal, client, resolver=resolver)).ok
            again = plan(_desired(tmp_path, without), await client.list_sources(), options)
            (live,) = await client.list_sources()
            return removal, again, live.deployment

    removal, again, deployment = asyncio.run(scenario())
    (action,) = removal.actions
    assert [(c.path, c.before, c.after) for c in action.changes] == [
        ("deployment.password", "(write-only)", None)
    ]
    assert action.writes[0]["deployment"]["password"] is None  # type: ignore[call-overload,index]
    assert again.actions == [] and not deployment.get("password_encrypted")


def test_a_patch_that_keeps_a_web_secret_writes_a_marker_naming_the_owner_and_its_records(
    tmp_path: Path,
) -> None:
    """The marker a patch writes is the whole record: the owner that claims the source and
    the `*_encrypted` hash of a secret it does not send again (else drift goes unseen)."""
    owned = BLOG_YAML.replace("sources:", "owner: acme/web\nsources:")
    changed = owned.replace("      username:", "      cache_ttl_value: 7200\n      username:")
    store = unpaced_store()
    options = PlanOptions(fingerprint_key=KEY)

    async def scenario() -> tuple[Plan, dict[str, Any], Plan]:
        async with client_of(store) as client:
            resolver = SecretResolver(BLOG_ENVIRON)
            made = plan(_desired(tmp_path, owned), await client.list_sources(), options)
            assert (await apply_plan(made, client, resolver=resolver)).ok
            patch = plan(_desired(tmp_path, changed), await client.list_sources(), options)
            assert (await apply_plan(patch, client, resolver=resolver)).ok
            (live,) = await client.list_sources()
            return (
                patch,
                live.deployment,
                plan(_desired(tmp_path, changed), await client.list_sources(), options),
            )

    patch, deployment, again = asyncio.run(scenario())
    (action,) = patch.actions
    assert [c.path for c in action.changes] == ["deployment.cache_ttl_value"]  # not the password
    expected = Marker(
        {"password": fingerprint(KEY, "password", BLOG_ENVIRON["BLOG_PASSWORD"])},
        {"password": encrypted_digest(deployment["password_encrypted"])},
        owner="acme/web",
    )
    assert action.marker == expected
    assert parse_annotation(deployment["annotation"]).marker == expected
    assert again.actions == []


def test_owner_token_round_trips_and_survives_restamping() -> None:
    marker = Marker({"s3_secret_key": "ab" * 16}, owner="acme/images-infra")
    annotation = compose_annotation("Managed in git", marker)
    assert annotation.endswith(" owner.name=acme/images-infra]")
    assert parse_annotation(annotation).marker == marker
    restamped = stamped(marker, {"s3_secret_key": "new value", "annotation": "Managed"}, KEY)
    assert restamped.owner == "acme/images-infra"
    assert parse_annotation(compose_annotation("Managed", restamped)).marker == restamped
    assert parse_annotation("[imgix-reconciler v1 owner.other=x]").marker == Marker()


# --------------------------------------------------------------------------- the decision's record


def _web_folder(secrets: dict[str, str | None]) -> WebFolderDeployment:
    return WebFolderDeployment.model_validate(
        {
            "type": "webfolder",
            "webfolder_base_url": "https://origin.example/",
            "imgix_subdomains": ["acme-blog"],
            **{name: SecretRef("env", name.upper(), value) for name, value in secrets.items()},
        }
    )


WEB_SECRETS = ["password", "request_signing_key"]
RECORDED = st.one_of(st.none(), st.just(UNKNOWN), st.sampled_from(["p" * 32, "o" * 32]))


@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    declared=st.dictionaries(st.sampled_from(WEB_SECRETS), st.sampled_from([None, "p" * 32])),
    recorded=st.one_of(
        st.none(),
        st.builds(
            dict,
            fingerprints=st.dictionaries(st.sampled_from(WEB_SECRETS), RECORDED),
            encrypted=st.dictionaries(st.sampled_from(WEB_SECRETS), st.just("e" * 16)),
        ),
    ),
    live_type=st.sampled_from(["webfolder", "s3"]),
    changed=st.sampled_from([[], ["webfolder_base_url"]]),
    resend=st.booleans(),
    s3_record=st.booleans(),
)
def test_the_decision_records_encrypted_values_as_its_rule_says(
    declared: dict[str, str | None],
    recorded: dict[str, dict[str, str | None]] | None,
    live_type: str,
    changed: list[str],
    resend: bool,
    s3_record: bool,
) -> None:
    # `record_encrypted` and `encrypted` are worked out only for types with web secrets:
    # against the rule as written, for a web folder and for S3 (which has none).
    marker = None
    if recorded is not None:
        fingerprints = {
            name: value if value in (None, UNKNOWN) else fingerprint(KEY, name, value)
            for name, value in recorded["fingerprints"].items()
        }
        marker = Marker(
            {n: v for n, v in fingerprints.items() if v is not None},
            {**recorded["encrypted"], **({"s3_secret_key": "e" * 16} if s3_record else {})},
        )
    cases = [(_web_folder(declared), live_type), (s3(), "s3")]
    for deployment, kind in cases:
        decision = decide_secrets(
            deployment, key=KEY, live_type=kind, changed=changed, recorded=marker, resend=resend
        )
        previous = marker.encrypted if marker is not None else {}
        encrypted = {
            n: v
            for n, v in previous.items()
            if n in decision.fingerprints and n not in decision.send
        }
        unrecorded = {
            n for n, fp in decision.fingerprints.items() if fp != UNKNOWN and n not in encrypted
        }
        web = set(encrypted_fields(type(deployment)))
        assert decision.encrypted == encrypted
        assert decision.record_encrypted == bool((set(decision.send) | unrecorded) & web)


# --------------------------------------------------------------------------- the planner's shortcut

_FOLDER_VALUES = {
    "password": "folder-password-1",
    "request_signing_key": "folder-signing-key-0123456789abc",
}


def _folder(resolved: bool) -> WebFolderDeployment:
    return WebFolderDeployment.model_validate(
        {
            "type": "webfolder",
            "webfolder_base_url": "https://o.example/",
            "imgix_subdomains": ["acme-folder"],
            **{
                name: SecretRef("env", name.upper(), value if resolved else None)
                for name, value in _FOLDER_VALUES.items()
            },
        }
    )


_RECORDS: dict[str, Marker | None] = {
    "none": None,
    "same": Marker({n: fingerprint(KEY, n, v) for n, v in _FOLDER_VALUES.items()}),
    "rotated": Marker(
        {"password": fingerprint(KEY, "password", "old-password"), "request_signing_key": "0"}
    ),
    "one unknown": Marker(
        {
            "password": UNKNOWN,
            "request_signing_key": fingerprint(
                KEY, "request_signing_key", _FOLDER_VALUES["request_signing_key"]
            ),
        }
    ),
    "one unrecorded": Marker({"password": fingerprint(KEY, "password", "folder-password-1")}),
}


@pytest.mark.parametrize("resolved", [True, False])
@pytest.mark.parametrize("record", list(_RECORDS))
@pytest.mark.parametrize(
    "ignored", [frozenset(), frozenset({"deployment.password"}), frozenset({"deployment.x"})]
)
def test_the_planners_shortcut_says_what_the_full_rules_say(
    resolved: bool, record: str, ignored: frozenset[str]
) -> None:
    # `unchanged_secrets` answers for a patch that changes nothing else, or defers (None).
    deployment, recorded = _folder(resolved), _RECORDS[record]
    shortcut = unchanged_secrets(
        deployment, key=KEY, recorded=recorded, ignored=ignored, fingerprints={}
    )
    decision = decide_secrets(
        deployment, key=KEY, live_type="webfolder", recorded=recorded, ignored=ignored
    )
    must_decide = bool(decision.send) or UNRESOLVED in decision.cannot_compare.values()
    if must_decide:
        assert shortcut is None
    else:
        unrecorded = UNRECORDED in decision.cannot_compare.values()
        assert shortcut == (UNRECORDED if unrecorded else "keep")


def test_a_type_change_sends_every_secret_even_one_recorded_unchanged() -> None:
    deployment = _folder(resolved=True)
    decision = decide_secrets(
        deployment, key=KEY, live_type="s3", recorded=_RECORDS["same"], changed={"type"}
    )
    assert decision.send == ("password", "request_signing_key")
    assert origin_moved(WebFolderDeployment, "s3", ())
    assert credentials_to_resend(S3Deployment, "gcs", ()) == {"s3_access_key"}


def test_only_a_credentialed_origin_moves() -> None:
    # A web folder has no credentials to send again when its base URL changes.
    assert not origin_moved(WebFolderDeployment, "webfolder", {"webfolder_base_url"})
    assert origin_moved(S3Deployment, "s3", {"s3_bucket"})
    assert not origin_moved(S3Deployment, "s3", {"cache_ttl_value"})


def test_an_ignored_secret_is_neither_sent_nor_reported() -> None:
    decision = decide_secrets(
        _folder(resolved=True),
        key=KEY,
        live_type="webfolder",
        recorded=_RECORDS["rotated"],
        ignored=["deployment.password", "deployment.request_signing_key"],
    )
    assert decision.send == () and decision.cannot_compare == {}
    assert decision.fingerprints == _RECORDS["rotated"].fingerprints  # type: ignore[union-attr]


def test_a_secret_the_body_clears_gets_no_fingerprint() -> None:
    body = {"type": "webfolder", "password": None, "request_signing_key": "signing-value-1"}
    marker = stamped(Marker({"password": "old"}), body, KEY)
    assert marker.fingerprints == {
        "password": "old",
        "request_signing_key": fingerprint(KEY, "request_signing_key", "signing-value-1"),
    }


def test_an_encrypted_value_gone_from_the_live_source_is_a_change() -> None:
    marker = Marker({"password": "fp"}, {"password": encrypted_digest("enc-value")})
    for live in ({}, {"password_encrypted": None}, {"password_encrypted": "other"}):
        assert encrypted_changed(WebFolderDeployment, marker, live) == ["password"]
    assert encrypted_changed(WebFolderDeployment, marker, {"password_encrypted": "enc-value"}) == []


def test_secret_values_reads_each_deployments_value_per_secret_attribute() -> None:
    values = secret_values(WebFolderDeployment, [_folder(True), _folder(False)])
    assert values == [
        ["folder-password-1", None],
        [UNDECLARED, UNDECLARED],
        [_FOLDER_VALUES["request_signing_key"], None],
    ]


def test_the_recorded_texts_are_the_ones_live_markers_already_hold() -> None:
    # Markers written by earlier runs stay on live sources: a different hash length or
    # placeholder would read as a change of every secret.
    assert encrypted_digest("enc-value") == hashlib.sha256(b"enc-value").hexdigest()[:16]
    decision = decide_secrets(
        _folder(resolved=True),
        key=KEY,
        live_type="webfolder",
        recorded=Marker({"password": "unknown", "request_signing_key": "unknown"}),
    )
    assert decision.cannot_compare == {
        "password": "unrecorded",
        "request_signing_key": "unrecorded",
    }
    assert decision.marker().render() == (
        "[imgix-reconciler v1 fp.password=unknown fp.request_signing_key=unknown]"
    )
    unresolved = decide_secrets(
        _folder(resolved=False), key=KEY, live_type="webfolder", recorded=_RECORDS["same"]
    )
    assert set(unresolved.cannot_compare.values()) == {"unresolved"}


def test_an_ignored_secret_is_kept_whatever_iterable_names_it() -> None:
    # `ignored` is any iterable of paths: read once, it must still hold for every secret.
    decision = decide_secrets(
        _folder(resolved=True),
        key=KEY,
        live_type="webfolder",
        recorded=_RECORDS["rotated"],
        ignored=iter(["deployment.request_signing_key"]),
    )
    assert decision.send == ("password",)
    assert decision.fingerprints["request_signing_key"] == "0"


def test_a_secret_changed_outside_waits_for_a_run_that_can_read_it() -> None:
    # A fork's pull request cannot read the value: it reports the secret, never sends it.
    decision = decide_secrets(
        _folder(resolved=False),
        key=KEY,
        live_type="webfolder",
        recorded=_RECORDS["same"],
        changed_outside=["password"],
    )
    assert decision.send == ()
    assert decision.cannot_compare == {"password": UNRESOLVED, "request_signing_key": UNRESOLVED}
    assert decision.fingerprints == _RECORDS["same"].fingerprints  # type: ignore[union-attr]
    resolved = decide_secrets(
        _folder(resolved=True),
        key=KEY,
        live_type="webfolder",
        recorded=_RECORDS["same"],
        changed_outside=["password"],
    )
    assert resolved.send == ("password",) and resolved.cannot_compare == {}
