"""Forged saved plans: whoever can edit a plan file but lacks the key cannot get it applied.

Every forgery is refused with exit 1 before the first request, end to end over real HTTP
to the emulator; a genuine saved plan still applies, with an explicit key or with the
fallback derived from the API key.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from console import invoke, run_cli, writes_since

from reconciler.emulator import EMULATOR_API_KEY, SourceStore
from reconciler.live import LiveSource
from reconciler.plan import Plan, compute_digest
from reconciler.reconcile import (
    Connection,
    PlanFileError,
    apply_with_report,
    authenticate_plan,
    check_saved_plan,
)

pytestmark = pytest.mark.e2e

CI_KEY = "ci-held-fingerprint-key-5b1e0c7d9a"
CI_ENV = {"IMGIX_RECONCILER_FINGERPRINT_KEY": CI_KEY}
# The forger's own key: any run can authenticate plans with it, but not with ours.
FORGER_KEY = "forger-held-key-0c6f2a91e4d7b358"
# Another key the emulator accepts: an API key rotated, or another account's.
OTHER_API_KEY = "ak_" + "fedcba9876543210" * 4

SITE = """\
  - name: Site
    deployment:
      type: webfolder
      imgix_subdomains: [hostile-site]
      webfolder_base_url: https://site.example/
      cache_ttl_value: {ttl}
"""
NEW = """\
  - name: New
    deployment:
      type: webfolder
      imgix_subdomains: [hostile-new]
      webfolder_base_url: https://new.example/
"""
Document = dict[str, Any]


@pytest.fixture
def store(emulator_store: SourceStore, emulator_url: str, tmp_path: Path) -> SourceStore:
    """An account holding "Site", applied from a file."""
    first = tmp_path / "first.yaml"
    first.write_text("version: 1\nsources:\n" + SITE.format(ttl=604800))
    applied = invoke("apply", first, "--auto-approve", "--api-url", emulator_url, env=CI_ENV)
    assert applied.exit_code == 0, applied.output + applied.stderr
    return emulator_store


@pytest.fixture
def sources(tmp_path: Path) -> Path:
    """The reviewed change: patch Site, create New."""
    path = tmp_path / "sources.yaml"
    path.write_text("version: 1\nsources:\n" + SITE.format(ttl=86400) + NEW)
    return path


def saved_plan(
    sources: Path, url: str, out: Path, env: Mapping[str, str | None] | None = None
) -> Document:
    env = CI_ENV if env is None else env
    made = invoke("plan", sources, "--out", out, "--api-url", url, env=env)
    assert made.exit_code == 0, made.output + made.stderr
    document: Document = json.loads(out.read_text())
    return document


def redigested(document: Document) -> Document:
    """What a forger does next: recompute the (public, unkeyed) digest of the edited plan."""
    body = {key: value for key, value in document.items() if key != "mac"}
    plan = Plan.model_validate(body)
    return {**document, "digest": compute_digest(plan.actions, plan.api_url)}


def patch_of(document: Document) -> Document:
    patches = [action for action in document["actions"] if action["action"] == "patch"]
    assert len(patches) == 1
    action: Document = patches[0]
    return action


def point_elsewhere(document: Document) -> Document:
    # The attacker's origin instead of the reviewed one, shown consistently in the changes.
    patch = patch_of(document)
    patch["writes"][0]["deployment"]["webfolder_base_url"] = "https://attacker.example/"
    patch["changes"].append(
        {
            "path": "deployment.webfolder_base_url",
            "before": "https://site.example/",
            "after": "https://attacker.example/",
        }
    )
    return redigested(document)


def disable_quietly(document: Document) -> Document:
    # A write that disables the live source, not flagged destructive: --allow-disable bypassed.
    patch = patch_of(document)
    patch["writes"][0]["enabled"] = False
    patch["destructive"] = False
    return redigested(document)


def null_api_url(document: Document) -> Document:
    return redigested({**document, "api_url": None})


def no_api_url(document: Document) -> Document:
    return redigested({key: value for key, value in document.items() if key != "api_url"})


def no_mac(document: Document) -> Document:
    # What `plan --format json` prints: readable, never applicable.
    return {key: value for key, value in document.items() if key != "mac"}


def hide_an_action(document: Document) -> Document:
    # The reviewer saw one action: the summary and digest say so, the create stays hidden.
    return redigested({**document, "summary": {**document["summary"], "create": 0}})


FORGERIES: dict[str, Callable[[Document], Document]] = {
    "writes edited, digest recomputed": point_elsewhere,
    "a disabling write flagged harmless": disable_quietly,
    "summary edited": hide_an_action,
    "api_url null": null_api_url,
    "api_url missing": no_api_url,
    "no MAC (a --format json document)": no_mac,
}


def assert_refused_before_any_request(
    store: SourceStore, mark: int, result: Any, plan_file: Path, reason: str
) -> None:
    assert result.exit_code == 1, result.output + result.stderr
    assert result.stdout == ""
    assert result.stderr == f"error: {plan_file}: {reason}\n"
    assert CI_KEY not in result.stderr
    assert store.request_log[mark:] == []


MAC_MISMATCH = (
    "the plan's MAC does not match its content: it was edited or forged after `plan --out`, "
    "or saved with another key (IMGIX_RECONCILER_FINGERPRINT_KEY, or IMGIX_API_KEY when that "
    "is unset) or for another API key (another account); nothing was written"
)
NO_MAC = (
    "the plan carries no MAC: only a plan saved by `plan --out` can be applied "
    "(`--format json` prints one for reading)"
)


@pytest.mark.parametrize("forge", FORGERIES.values(), ids=FORGERIES.keys())
def test_a_forged_plan_is_refused_with_exit_1_before_any_request(
    store: SourceStore,
    emulator_url: str,
    sources: Path,
    tmp_path: Path,
    forge: Callable[[Document], Document],
) -> None:
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(json.dumps(forge(saved_plan(sources, emulator_url, plan_file))))
    mark = len(store.request_log)

    result = invoke(
        "apply", plan_file, "--auto-approve", "--allow-disable", "--api-url", emulator_url,
        env=CI_ENV,
    )  # fmt: skip

    reason = NO_MAC if forge is no_mac else MAC_MISMATCH
    assert_refused_before_any_request(store, mark, result, plan_file, reason)
    assert [source.name for source in store.sources.values()] == ["Site"]


def test_live_fingerprints_rewritten_to_pass_the_stale_check_are_refused(
    store: SourceStore, emulator_url: str, sources: Path, tmp_path: Path
) -> None:
    plan_file = tmp_path / "plan.json"
    document = saved_plan(sources, emulator_url, plan_file)
    (site,) = store.sources.values()
    store.dashboard_redeploy(site.id, {"webfolder_base_url": "https://changed.example/"})
    # The stale check compares these with the live sources: the forger copies the new ones.
    now = LiveSource.from_resource(store.resource(site)).fingerprint()
    patch_of(document)["live_fingerprint"] = now
    plan_file.write_text(json.dumps(redigested(document)))
    mark = len(store.request_log)

    result = invoke("apply", plan_file, "--auto-approve", "--api-url", emulator_url, env=CI_ENV)

    assert_refused_before_any_request(store, mark, result, plan_file, MAC_MISMATCH)
    assert site.deployment["webfolder_base_url"] == "https://changed.example/"


def test_a_plan_saved_with_another_key_is_refused(
    store: SourceStore, emulator_url: str, sources: Path, tmp_path: Path
) -> None:
    # The forger's own run (a fork's CI, a laptop) makes a well-formed plan with its key.
    plan_file = tmp_path / "plan.json"
    saved_plan(
        sources, emulator_url, plan_file, env={"IMGIX_RECONCILER_FINGERPRINT_KEY": FORGER_KEY}
    )
    mark = len(store.request_log)

    result = invoke("apply", plan_file, "--auto-approve", "--api-url", emulator_url, env=CI_ENV)

    assert_refused_before_any_request(store, mark, result, plan_file, MAC_MISMATCH)


def test_a_genuine_saved_plan_applies_in_a_fresh_process(
    store: SourceStore, emulator_url: str, sources: Path, tmp_path: Path
) -> None:
    plan_file = tmp_path / "plan.json"
    document = saved_plan(sources, emulator_url, plan_file)
    assert document["mac"].startswith("hmac-sha256:") and CI_KEY not in plan_file.read_text()
    mark = len(store.request_log)

    result = run_cli("apply", plan_file, "--auto-approve", "--api-url", emulator_url, env=CI_ENV)

    assert result.returncode == 0, result.stderr
    assert "Apply: 2 applied, 0 failed." in result.stdout
    assert [(entry.method, entry.status) for entry in writes_since(store, mark)] == [
        ("POST", 201),
        ("PATCH", 200),
    ]
    assert {s.name: s.deployment["cache_ttl_value"] for s in store.sources.values()} == {
        "Site": 86400,
        "New": 31536000,
    }


def test_the_fallback_key_follows_the_api_key(
    store: SourceStore, emulator_url: str, sources: Path, tmp_path: Path
) -> None:
    fallback: dict[str, str | None] = {"IMGIX_RECONCILER_FINGERPRINT_KEY": None}
    plan_file = tmp_path / "plan.json"
    saved_plan(sources, emulator_url, plan_file, env=fallback)
    mark = len(store.request_log)

    rotated = invoke(
        "apply", plan_file, "--auto-approve", "--api-url", emulator_url,
        env={**fallback, "IMGIX_API_KEY": OTHER_API_KEY},
    )  # fmt: skip
    assert_refused_before_any_request(store, mark, rotated, plan_file, MAC_MISMATCH)
    assert OTHER_API_KEY not in rotated.stderr

    same = invoke("apply", plan_file, "--auto-approve", "--api-url", emulator_url, env=fallback)
    assert same.exit_code == 0, same.output + same.stderr
    assert len(writes_since(store, mark)) == 2


def test_a_plan_saved_for_another_api_key_is_refused_though_the_fingerprint_key_is_shared(
    store: SourceStore, emulator_url: str, sources: Path, tmp_path: Path
) -> None:
    # One fingerprint key for every account of an organisation: a plan made for one
    # account (its creates above all) must not apply to another one at the same API.
    plan_file = tmp_path / "plan.json"
    saved_plan(sources, emulator_url, plan_file)
    mark = len(store.request_log)

    other = invoke(
        "apply", plan_file, "--auto-approve", "--api-url", emulator_url,
        env={**CI_ENV, "IMGIX_API_KEY": OTHER_API_KEY},
    )  # fmt: skip

    assert_refused_before_any_request(store, mark, other, plan_file, MAC_MISMATCH)
    assert OTHER_API_KEY not in other.stderr


def test_the_library_applies_a_saved_plan_only_when_authentic(
    store: SourceStore, emulator_url: str, sources: Path, tmp_path: Path
) -> None:
    plan_file = tmp_path / "plan.json"
    document = saved_plan(sources, emulator_url, plan_file)
    forged = Plan.model_validate(point_elsewhere(document))
    connection = Connection(emulator_url, EMULATOR_API_KEY)
    mark = len(store.request_log)

    with pytest.raises(PlanFileError, match="MAC does not match"):
        asyncio.run(apply_with_report(forged, connection, saved=True, environ=CI_ENV))
    assert store.request_log[mark:] == []


def test_an_authentic_plan_that_names_no_api_is_still_refused(
    store: SourceStore, emulator_url: str, sources: Path, tmp_path: Path
) -> None:
    # Only a library caller can make one: `plan --out` always records the API.
    connection = Connection(emulator_url, EMULATOR_API_KEY)
    document = saved_plan(sources, emulator_url, tmp_path / "plan.json")
    anywhere = authenticate_plan(Plan.model_validate(null_api_url(document)), connection, CI_ENV)
    with pytest.raises(PlanFileError, match=r"records no API \(`api_url`\)"):
        check_saved_plan(anywhere, connection, CI_ENV)


@pytest.mark.parametrize("version", [1, 3])
def test_a_plan_of_another_format_version_is_refused_saying_to_plan_again(
    store: SourceStore, emulator_url: str, sources: Path, tmp_path: Path, version: int
) -> None:
    # It said "not a plan document written by `plan --out` (1 validation error for Plan)"
    # of a plan an earlier (or later) imgix-reconciler did write with `plan --out`.
    out = tmp_path / "plan.json"
    document = saved_plan(sources, emulator_url, out)
    out.write_text(json.dumps({**document, "format_version": version}))
    mark = len(store.request_log)
    refused = invoke("apply", out, "--auto-approve", "--api-url", emulator_url, env=CI_ENV)
    assert refused.exit_code == 1
    assert refused.stderr == (
        f"error: {out}: a plan of format_version {version}, which this version of "
        "imgix-reconciler does not apply (it applies format_version 2): plan again with "
        "`plan --out`\n"
    )
    assert len(store.request_log) == mark


def test_a_saved_plan_with_a_byte_order_mark_and_crlf_lines_is_still_the_plan(
    store: SourceStore, emulator_url: str, sources: Path, tmp_path: Path
) -> None:
    # As a Windows editor or PowerShell saves it. The mark hid the plan: the file was
    # read as a desired-state file, with 15 errors such as "cost: unknown key 'cost'".
    plan_file = tmp_path / "plan.json"
    saved_plan(sources, emulator_url, plan_file)
    text = plan_file.read_text().replace("\n", "\r\n")
    plan_file.write_bytes(b"\xef\xbb\xbf" + text.encode())
    applied = invoke("apply", plan_file, "--auto-approve", "--api-url", emulator_url, env=CI_ENV)
    assert applied.exit_code == 0, applied.stderr
    assert "Apply: 2 applied, 0 failed." in applied.stdout


def test_a_saved_plan_cut_short_is_called_a_plan_cut_short(
    store: SourceStore, emulator_url: str, sources: Path, tmp_path: Path
) -> None:
    # An artifact cut by a full disk or a failed upload: it was taken for a desired-state
    # file, "invalid YAML: while scanning a quoted scalar: found unexpected end of stream".
    plan_file = tmp_path / "plan.json"
    saved_plan(sources, emulator_url, plan_file)
    whole = plan_file.read_text()
    plan_file.write_text(whole[: len(whole) // 2])
    mark = len(store.request_log)
    refused = invoke("apply", plan_file, "--auto-approve", "--api-url", emulator_url, env=CI_ENV)
    assert refused.exit_code == 1
    (line,) = refused.stderr.splitlines()
    assert line.startswith(f"error: {plan_file}: the plan is not valid JSON (")
    assert line.endswith("): was it cut short? Plan again with `plan --out`")
    assert "YAML" not in line
    assert len(store.request_log) == mark


BUCKET = """\
version: 1
sources:
  - name: Bucket
    deployment:
      type: s3
      imgix_subdomains: [hostile-bucket]
      s3_bucket: hostile-bucket
      s3_access_key: AKIAHOSTILEBUCKET
      s3_secret_key: {env: HOSTILE_BUCKET_SECRET}
"""


@pytest.mark.parametrize("pasted", [CI_KEY + "\n", f" {CI_KEY} ", CI_KEY + "\r\n"], ids=repr)
def test_a_fingerprint_key_pasted_with_surrounding_whitespace_is_the_same_key(
    emulator_store: SourceStore, emulator_url: str, tmp_path: Path, pasted: str
) -> None:
    # A secret saved with the newline of the line it was pasted from, and the same key
    # read without it on a laptop (`$(cat key)`): the API key's whitespace was ignored,
    # the fingerprint key's was not. Was: every secret planned as changed ("re-sent", a
    # credentials change on every source, over the blast radius), and a saved plan refused.
    (tmp_path / ".git").mkdir()
    file = tmp_path / "sources.yaml"
    file.write_text(BUCKET)
    secret = {"HOSTILE_BUCKET_SECRET": "bucket-secret-value-1f4e"}
    applied = invoke(
        "apply", file, "--auto-approve", "--api-url", emulator_url, env={**CI_ENV, **secret}
    )
    assert applied.exit_code == 0, applied.stderr

    padded = {"IMGIX_RECONCILER_FINGERPRINT_KEY": pasted, **secret}
    planned = invoke("plan", file, "--format", "json", "--api-url", emulator_url, env=padded)
    assert planned.exit_code == 0, planned.stderr
    assert json.loads(planned.stdout)["actions"] == []

    plan_file = tmp_path / "plan.json"
    saved = invoke("plan", file, "--out", plan_file, "--api-url", emulator_url, env=padded)
    assert saved.exit_code == 0, saved.stderr
    result = invoke(
        "apply", plan_file, "--auto-approve", "--api-url", emulator_url, env={**CI_ENV, **secret}
    )
    assert result.exit_code == 0, result.stderr
