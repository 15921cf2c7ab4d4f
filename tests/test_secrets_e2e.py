"""Secrets end to end: which requests carry them, and how rotation and drift show.

The API never returns a secret, so these tests read what was sent from the emulator's
request log. Commands run in-process (`invoke`) against the emulator over real HTTP;
`test_canary.py` runs them as subprocesses and searches every output.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from console import (
    CANARY_ENV,
    CANARY_FILES,
    apply_directly,
    deployment_of,
    invoke,
    write_sources,
    writes_since,
)

from reconciler.emulator import LoggedRequest, SourceStore
from reconciler.plan import WILL_BE_SENT
from reconciler.specs import DEPLOYMENT_MODELS, secret_fields

pytestmark = pytest.mark.e2e

ALL_SECRETS = frozenset(name for m in DEPLOYMENT_MODELS.values() for name in secret_fields(m))
ROTATED = "CANARY-env-s3-secret-rotated-77"
ROTATED_HANDSHAKE = "CANARY-file-blog-handshake-77rot"
assert len(ROTATED_HANDSHAKE) == 32


@pytest.fixture
def store(emulator_store: SourceStore) -> SourceStore:
    emulator_store.deploy_delay = 0
    return emulator_store


@pytest.fixture
def sources(tmp_path: Path) -> Path:
    return write_sources(tmp_path)


@pytest.fixture
def managed(store: SourceStore, emulator_url: str, sources: Path) -> SourceStore:
    """The six sources as imgix-reconciler applied them (annotations carry its marker)."""
    apply_directly(emulator_url, sources, CANARY_ENV)
    return store


def source_id(store: SourceStore, name: str) -> str:
    (found,) = [s.id for s in store.sources.values() if s.name == name]
    return found


def plan_json(sources: Path, url: str, env: dict[str, str]) -> dict[str, Any]:
    result = invoke("plan", sources, "--format", "json", "--api-url", url, env=env)
    assert result.exit_code == 0, result.output
    document: dict[str, Any] = json.loads(result.stdout)
    return document


def apply(sources: Path, url: str, env: dict[str, str]) -> None:
    result = invoke("apply", sources, "--auto-approve", "--api-url", url, env=env)
    assert result.exit_code == 0, result.output


def sent_secrets(request: LoggedRequest) -> dict[str, Any]:
    return {k: v for k, v in deployment_of(request.body).items() if k in ALL_SECRETS}


def assert_next_plan_is_empty(sources: Path, url: str, env: dict[str, str]) -> None:
    result = invoke("plan", sources, "--detailed-exitcode", "--api-url", url, env=env)
    assert result.exit_code == 0, result.output


# --------------------------------------------------------------------------- rotation


@pytest.mark.parametrize(
    ("source", "secret", "rotated"),
    [("Products", "s3_secret_key", ROTATED), ("Blog", "request_handshake", ROTATED_HANDSHAKE)],
    ids=["env", "file"],
)
def test_a_rotated_secret_is_one_patch_that_sends_it_alone(
    managed: SourceStore,
    emulator_url: str,
    sources: Path,
    source: str,
    secret: str,
    rotated: str,
) -> None:
    env = dict(CANARY_ENV)
    if secret == "s3_secret_key":
        env["E2E_S3_SECRET_KEY"] = rotated
    else:
        (sources.parent / "secrets" / "blog-handshake.txt").write_text(rotated + "\n")

    document = plan_json(sources, emulator_url, env)
    (action,) = document["actions"]
    assert (action["action"], action["source"]) == ("patch", source)
    (change,) = [c for c in action["changes"] if c["path"] == f"deployment.{secret}"]
    assert change["after"] == WILL_BE_SENT
    assert rotated not in json.dumps(document)

    mark = len(managed.request_log)
    apply(sources, emulator_url, env)
    patch, *follow_ups = writes_since(managed, mark)
    assert patch.path == f"/api/v1/sources/{source_id(managed, source)}"
    assert sent_secrets(patch) == {secret: rotated}
    # A web secret's new encrypted value is then recorded in the annotation, and only that.
    assert len(follow_ups) == (secret == "request_handshake")
    for request in follow_ups:
        assert request.path == patch.path
        assert set(deployment_of(request.body)) == {"annotation"}
    assert managed.sources[source_id(managed, source)].deployment[secret] == rotated
    assert_next_plan_is_empty(sources, emulator_url, env)


# --------------------------------------------------------------------------- what a patch carries


def test_a_patch_of_cache_ttl_value_alone_carries_no_secret(
    managed: SourceStore, emulator_url: str, sources: Path
) -> None:
    sources.write_text(
        sources.read_text().replace("cache_ttl_value: 604800", "cache_ttl_value: 86400")
    )
    mark = len(managed.request_log)
    apply(sources, emulator_url, CANARY_ENV)
    (patch,) = writes_since(managed, mark)
    deployment = deployment_of(patch.body)
    assert deployment["cache_ttl_value"] == 86400
    assert sent_secrets(patch) == {}
    assert "s3_access_key" not in deployment
    body = json.dumps(patch.body)
    for value in [*CANARY_ENV.values(), *CANARY_FILES.values()]:
        assert value not in body


def test_a_moved_s3_bucket_carries_both_credentials(
    managed: SourceStore, emulator_url: str, sources: Path
) -> None:
    sources.write_text(
        sources.read_text().replace("s3_bucket: e2e-products", "s3_bucket: e2e-products-v2")
    )
    document = plan_json(sources, emulator_url, CANARY_ENV)
    (action,) = document["actions"]
    changes = {c["path"]: c["after"] for c in action["changes"]}
    assert changes["deployment.s3_secret_key"] == WILL_BE_SENT

    mark = len(managed.request_log)
    apply(sources, emulator_url, CANARY_ENV)
    (patch,) = writes_since(managed, mark)
    deployment = deployment_of(patch.body)
    assert deployment["s3_bucket"] == "e2e-products-v2"
    assert deployment["s3_access_key"] == "AKIAE2EEXAMPLEKEY01"
    assert sent_secrets(patch) == {"s3_secret_key": CANARY_ENV["E2E_S3_SECRET_KEY"]}
    assert_next_plan_is_empty(sources, emulator_url, CANARY_ENV)


# --------------------------------------------------------------------------- dashboard drift


def test_a_dashboard_redeploy_is_drift_unless_an_adoption_is_under_way(
    managed: SourceStore, emulator_url: str, sources: Path
) -> None:
    managed.dashboard_redeploy(source_id(managed, "Uploads"), {})

    plain = invoke("drift", sources, "--api-url", emulator_url, env=CANARY_ENV)
    assert plain.exit_code == 2, plain.output
    assert "Uploads" in plain.stderr and "changed outside git, or not adopted yet" in plain.stderr
    assert '"Uploads"' in plain.stdout and "without an imgix-reconciler marker" in plain.stdout

    # The old flag asked for what is now the default: still accepted.
    strict = invoke("drift", sources, "--require-marker", "--api-url", emulator_url, env=CANARY_ENV)
    assert strict.exit_code == 2, strict.output

    during = invoke(
        "drift", sources, "--allow-unadopted", "--api-url", emulator_url, env=CANARY_ENV
    )
    assert during.exit_code == 0, during.output
    assert "without an imgix-reconciler marker" in during.stdout


def test_a_dashboard_change_of_a_compared_attribute_is_drift(
    managed: SourceStore, emulator_url: str, sources: Path
) -> None:
    managed.dashboard_redeploy(source_id(managed, "Marketing"), {"default_params": {"q": 40}})

    result = invoke("drift", sources, "--format", "json", "--api-url", emulator_url, env=CANARY_ENV)
    assert result.exit_code == 2, result.output
    document = json.loads(result.stdout)
    (action,) = document["actions"]
    assert action["source"] == "Marketing"
    assert {"path": "deployment.default_params.q", "before": 40, "after": "(removed)"} in action[
        "changes"
    ]
    assert [s["name"] for s in document["adoption"]["sources"]] == ["Marketing"]


def test_a_web_secret_rewritten_by_another_api_client_is_drift(
    managed: SourceStore, emulator_url: str, sources: Path
) -> None:
    # Another tool sets the password and keeps the annotation (so the marker survives):
    # only the changed `password_encrypted` tells. The dashboard would drop the marker.
    blog = source_id(managed, "Blog")
    rotated_elsewhere = "CANARY-other-tool-password-3e9a"
    annotation = managed.sources[blog].deployment["annotation"]
    managed.update_source(
        blog, {"deployment": {"password": rotated_elsewhere, "annotation": annotation}}
    )

    result = invoke("drift", sources, "--format", "json", "--api-url", emulator_url, env=CANARY_ENV)
    assert result.exit_code == 2, result.output
    kinds = {(n["source"], n["kind"]) for n in json.loads(result.stdout)["notices"]}
    assert ("Blog", "encrypted_changed") in kinds
    assert "Blog" in result.stderr
    assert rotated_elsewhere not in result.output
