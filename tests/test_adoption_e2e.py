"""Adopting an existing account end to end, and drift catching edits made outside git.

An account of 200 sources made in the dashboard (no imgix-reconciler marker) is described
by a file; `plan` says so in one notice with the cost, the adopting apply writes the
markers and sends the file's secrets, and a later dashboard edit (annotation rewritten,
password changed) is drift again until `apply --adopt` repairs it. Commands run against
the emulator over real HTTP on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from console import UNPACED, deployment_of, invoke, writes_since

from reconciler.applier import Permissions
from reconciler.emulator import EMULATOR_API_KEY, SourceStore
from reconciler.reconcile import Connection, apply_with_report, plan_files

pytestmark = pytest.mark.e2e

S3_COUNT, WEB_COUNT = 190, 10
ENV = {"ADOPT_S3_SECRET": "adopt-s3-secret-value-5d1c", "ADOPT_WEB_PASSWORD": "adopt-web-pw-5d1c"}
CHANGED_PASSWORD = "changed-in-the-dashboard-77"


def s3_name(n: int) -> str:
    return f"Shop {n:03d}"


def web_name(n: int) -> str:
    return f"Blog {n:03d}"


@pytest.fixture
def account(emulator_store: SourceStore) -> SourceStore:
    """200 sources created outside imgix-reconciler: no marker in any annotation."""
    emulator_store.deploy_delay = 0
    for n in range(S3_COUNT):
        emulator_store.create_source(
            {
                "name": s3_name(n),
                "deployment": {
                    "type": "s3",
                    "imgix_subdomains": [f"adopt-shop-{n}"],
                    "s3_bucket": f"shop-{n}",
                    "s3_access_key": "AKIAADOPT",
                    "s3_secret_key": ENV["ADOPT_S3_SECRET"],
                },
            }
        )
    for n in range(WEB_COUNT):
        emulator_store.create_source(
            {
                "name": web_name(n),
                "deployment": {
                    "type": "webfolder",
                    "imgix_subdomains": [f"adopt-blog-{n}"],
                    "webfolder_base_url": f"https://blog-{n}.adopt.example/",
                    "username": "imgix",
                    "password": ENV["ADOPT_WEB_PASSWORD"],
                },
            }
        )
    return emulator_store


@pytest.fixture
def sources(tmp_path: Path) -> Path:
    blocks = [
        f"  - name: {s3_name(n)}\n    deployment:\n      type: s3\n"
        f"      imgix_subdomains: [adopt-shop-{n}]\n      s3_bucket: shop-{n}\n"
        "      s3_access_key: AKIAADOPT\n      s3_secret_key: {env: ADOPT_S3_SECRET}\n"
        for n in range(S3_COUNT)
    ]
    blocks += [
        f"  - name: {web_name(n)}\n    deployment:\n      type: webfolder\n"
        f"      imgix_subdomains: [adopt-blog-{n}]\n"
        f"      webfolder_base_url: https://blog-{n}.adopt.example/\n"
        "      username: imgix\n      password: {env: ADOPT_WEB_PASSWORD}\n"
        for n in range(WEB_COUNT)
    ]
    path = tmp_path / "sources.yaml"
    path.write_text("version: 1\nsources:\n" + "".join(blocks), encoding="utf-8")
    return path


def adopt_unpaced(url: str, file: Path) -> int:
    """The adopting apply through the library, unpaced (the CLI's is paced at 60/hour)."""
    connection = Connection(url, EMULATOR_API_KEY, pacing=UNPACED)
    made = asyncio.run(
        plan_files([file], connection, adopt=True, secrets_optional=False, environ=ENV)
    )
    # Adopting every source sends every credential: over the blast radius, by design.
    allowed = Permissions(allow_large_change=True)
    report = asyncio.run(apply_with_report(made.plan, connection, permissions=allowed, environ=ENV))
    assert report.ok, report.failed
    return len(made.plan.actions)


def test_adopting_200_sources_then_catching_a_dashboard_edit(
    account: SourceStore, emulator_url: str, sources: Path, tmp_path: Path
) -> None:
    mark = len(account.request_log)
    saved = tmp_path / "plan.json"
    planned = invoke("plan", sources, "--out", saved, "--api-url", emulator_url, env=ENV)
    assert planned.exit_code == 0, planned.output
    # One notice with the count and the cost, not 200 of them (nor 200 "cannot compare").
    notices = [line for line in planned.stdout.splitlines() if line.startswith("  ! ")]
    assert len(notices) == 1, notices
    (notice,) = notices
    assert "200 sources without an imgix-reconciler marker" in notice
    # 190 S3 sources cost one update each; a web folder one more to record its password.
    assert "210 updates, 4 hours of the budget of 60 updates per hour" in notice
    assert "`apply --adopt`" in notice and "and 180 more" in notice
    assert len(planned.stdout.splitlines()) < 10
    assert planned.stdout.startswith("No changes: 200 unchanged, 0 unmanaged.")
    document = json.loads(saved.read_text())
    assert document["adoption"]["count"] == 200 and len(document["adoption"]["sources"]) == 200
    assert document["adoption"]["updates"] == 210
    assert document["notices"] == [] and document["actions"] == []

    # Sending 200 sources' credentials at once is what the blast-radius rail is for.
    refused = invoke(
        "apply", sources, "--adopt", "--auto-approve", "--api-url", emulator_url, env=ENV
    )
    assert refused.exit_code == 1 and "--allow-large-change" in refused.stderr
    assert writes_since(account, mark) == []

    mark = len(account.request_log)
    assert adopt_unpaced(emulator_url, sources) == 200
    # The cost the plan announced is what the adoption wrote.
    assert len(writes_since(account, mark)) == 210
    adopted = invoke("drift", sources, "--api-url", emulator_url, env=ENV)
    assert adopted.exit_code == 0, adopted.output
    assert "In sync: 200 sources match the files" in adopted.stdout

    # The dashboard changes one password and rewrites the annotation (our marker).
    (blog,) = [s.id for s in account.sources.values() if s.name == web_name(3)]
    account.dashboard_redeploy(blog, {"password": CHANGED_PASSWORD})
    edited = invoke("drift", sources, "--api-url", emulator_url, env=ENV)
    assert edited.exit_code == 2, edited.output
    assert edited.stderr == (
        f"Drift: {web_name(3)} ({blog}): changed outside git, or not adopted yet.\n"
    )

    # `apply --adopt` repairs it: the file's password is sent again, the marker written.
    mark = len(account.request_log)
    repaired = invoke(
        "apply", sources, "--adopt", "--auto-approve", "--api-url", emulator_url, env=ENV
    )
    assert repaired.exit_code == 0, repaired.output
    first, *rest = writes_since(account, mark)
    assert first.path.endswith(blog)
    assert deployment_of(first.body)["password"] == ENV["ADOPT_WEB_PASSWORD"]
    assert len(rest) == 1  # the recording of the new `password_encrypted`
    assert ENV["ADOPT_WEB_PASSWORD"] not in repaired.output
    final = invoke("drift", sources, "--api-url", emulator_url, env=ENV)
    assert final.exit_code == 0, final.output


def test_a_saved_adoption_plan_applies_like_apply_adopt(
    emulator_store: SourceStore, emulator_url: str, tmp_path: Path
) -> None:
    emulator_store.deploy_delay = 0
    emulator_store.create_source(
        {
            "name": "Blog",
            "enabled": False,
            "deployment": {
                "type": "webfolder",
                "imgix_subdomains": ["adopt-saved"],
                "webfolder_base_url": "https://saved.adopt.example/",
                "password": "old",
            },
        }
    )
    file = tmp_path / "sources.yaml"
    file.write_text(
        "version: 1\nsources:\n  - name: Blog\n    enabled: false\n    deployment:\n"
        "      type: webfolder\n      imgix_subdomains: [adopt-saved]\n"
        "      webfolder_base_url: https://saved.adopt.example/\n"
        "      password: {env: ADOPT_WEB_PASSWORD}\n"
    )
    saved = tmp_path / "adopt.json"
    planned = invoke("plan", file, "--adopt", "--out", saved, "--api-url", emulator_url)
    assert planned.exit_code == 0, planned.output
    document = json.loads(saved.read_text())
    # A disabled source is enabled for the write (its password recorded) and disabled again.
    assert document["adoption"]["planned"] and document["adoption"]["updates"] == 3
    assert "adopting 1 source: this plan sends" in planned.stdout
    (action,) = document["actions"]
    assert [w.get("enabled") for w in action["writes"]] == [True, False]

    refused = invoke(
        "apply", saved, "--adopt", "--auto-approve", "--api-url", emulator_url, env=ENV
    )
    assert refused.exit_code == 1 and "pass --adopt to `plan --out`" in refused.stderr
    mark = len(emulator_store.request_log)
    applied = invoke("apply", saved, "--auto-approve", "--api-url", emulator_url, env=ENV)
    assert applied.exit_code == 0, applied.output
    assert len(writes_since(emulator_store, mark)) == 3
    drift = invoke("drift", file, "--api-url", emulator_url, env=ENV)
    assert drift.exit_code == 0, drift.output
