"""The safety rails end to end: blast radius, `mode`, `owner`, over real HTTP.

Each rail is shown refusing (exit 1, located errors, nothing written) in a subprocess
against the emulator on 127.0.0.1, then lifted by its flag in-process.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from console import invoke, run_cli, write_sources, writes_since

from reconciler.emulator import SourceStore
from reconciler.marker import parse_annotation

pytestmark = pytest.mark.e2e

LOCATED = re.compile(r"^\S+\.yaml:\d+:\d+: ", re.MULTILINE)


def folder(name: str, base: str = "https://origin.e2e.example/", **top: str) -> str:
    """One web folder source (no secrets: few requests) as a list item of `sources:`."""
    extra = "".join(f"    {key}: {value}\n" for key, value in top.items())
    return (
        f"  - name: {name}\n{extra}    deployment:\n      type: webfolder\n"
        f"      imgix_subdomains: [e2e-{name.lower()}]\n      webfolder_base_url: {base}\n"
    )


def folder_wire(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "deployment": {
            "type": "webfolder",
            "imgix_subdomains": [f"e2e-{name.lower()}"],
            "webfolder_base_url": "https://origin.e2e.example/",
        },
    }


def desired(tmp_path: Path, *items: str, head: str = "", name: str = "sources.yaml") -> Path:
    return write_sources(tmp_path, f"version: 1\n{head}sources:\n" + "".join(items), name)


@pytest.fixture
def store(emulator_store: SourceStore) -> SourceStore:
    emulator_store.deploy_delay = 0
    return emulator_store


def owner_of(store: SourceStore, source_id: str) -> str | None:
    marker = parse_annotation(store.sources[source_id].deployment.get("annotation")).marker
    return marker.owner if marker is not None else None


def test_a_plan_over_the_blast_radius_is_refused_then_allowed_with_the_flag(
    store: SourceStore, emulator_url: str, tmp_path: Path
) -> None:
    names = ["One", "Two", "Three", "Four"]
    ids = [store.create_source(folder_wire(name))["id"] for name in names]
    moved = "https://new-origin.e2e.example/"
    file = desired(tmp_path, *(folder(n, moved) for n in names[:3]), folder("Four"))

    plan = invoke("plan", file, "--format", "json", "--api-url", emulator_url)
    assert plan.exit_code == 0, plan.output
    document = json.loads(plan.stdout)
    assert document["blast_radius"] == {
        "risky": 3,
        "managed": 4,
        "max_risky_share": 0.3,
        "min_risky_count": 3,
        "exceeded": True,
    }
    assert "Over the blast radius: 3 of 4" in invoke("plan", file, "--api-url", emulator_url).stdout

    mark = len(store.request_log)
    refused = run_cli("apply", file, "--auto-approve", "--api-url", emulator_url)
    assert refused.returncode == 1
    assert "Traceback" not in refused.stderr
    located = LOCATED.findall(refused.stderr)
    assert len(located) == 3, refused.stderr
    assert 'sources.yaml:3:5: source "One": it moves its origin' in refused.stderr
    assert "--allow-large-change" in refused.stderr.splitlines()[-1]
    assert writes_since(store, mark) == []

    # Raising the threshold in the file is the other way through.
    relaxed = desired(
        tmp_path,
        *(folder(n, moved) for n in names[:3]),
        folder("Four"),
        head="safety: {max_risky_share: 0.8}\n",
        name="relaxed.yaml",
    )
    assert invoke("plan", relaxed, "--format", "json", "--api-url", emulator_url).exit_code == 0
    assert not json.loads(
        invoke("plan", relaxed, "--format", "json", "--api-url", emulator_url).stdout
    )["blast_radius"]["exceeded"]

    allowed = invoke(
        "apply", file, "--auto-approve", "--allow-large-change", "--api-url", emulator_url
    )
    assert allowed.exit_code == 0, allowed.output
    bases = [store.sources[i].deployment["webfolder_base_url"] for i in ids]
    assert bases == [moved, moved, moved, "https://origin.e2e.example/"]


def test_an_observed_source_is_reported_as_drift_and_never_written(
    store: SourceStore, emulator_url: str, tmp_path: Path
) -> None:
    live_id = store.create_source(folder_wire("Watched"))["id"]
    file = desired(tmp_path, folder("Watched", "https://elsewhere.e2e.example/", mode="observe"))
    mark = len(store.request_log)

    drift = run_cli("drift", file, "--api-url", emulator_url)
    assert drift.returncode == 2, drift.stderr
    assert "observed" in drift.stdout and "webfolder_base_url" in drift.stdout
    assert "Watched differs (mode: observe, never written)" in drift.stderr

    plan = invoke("plan", file, "--detailed-exitcode", "--api-url", emulator_url)
    assert plan.exit_code == 0, plan.output  # nothing apply would write
    assert "1 observed (never written)" in plan.stdout

    applied = run_cli("apply", file, "--auto-approve", "--api-url", emulator_url)
    assert applied.returncode == 0, applied.stderr
    assert "Nothing to do." in applied.stderr
    assert writes_since(store, mark) == []
    assert store.sources[live_id].deployment["webfolder_base_url"] == "https://origin.e2e.example/"


def test_disabling_a_protected_source_is_refused_without_its_flag(
    store: SourceStore, emulator_url: str, tmp_path: Path
) -> None:
    live_id = store.create_source(folder_wire("Vault"))["id"]
    file = desired(tmp_path, folder("Vault", mode="protect", enabled="false"))
    mark = len(store.request_log)

    refused = run_cli("apply", file, "--auto-approve", "--allow-disable", "--api-url", emulator_url)
    assert refused.returncode == 1
    assert re.search(
        r'sources\.yaml:3:5: source "Vault": mode: protect: the plan disables it '
        r"\(--allow-protected-change overrides\)$",
        refused.stderr,
        re.MULTILINE,
    ), refused.stderr
    assert "--allow-protected-change" in refused.stderr.splitlines()[-1]
    assert writes_since(store, mark) == []
    assert store.sources[live_id].enabled

    allowed = invoke(
        "apply", file, "--auto-approve", "--allow-disable", "--allow-protected-change",
        "--api-url", emulator_url,
    )  # fmt: skip
    assert allowed.exit_code == 0, allowed.output
    assert not store.sources[live_id].enabled


def test_a_source_owned_by_another_file_is_refused_then_taken_over(
    store: SourceStore, emulator_url: str, tmp_path: Path
) -> None:
    theirs = desired(tmp_path, folder("Shared"), head="owner: acme/team-a\n", name="a.yaml")
    created = invoke("apply", theirs, "--auto-approve", "--api-url", emulator_url)
    assert created.exit_code == 0, created.output
    (live_id,) = store.sources
    assert owner_of(store, live_id) == "acme/team-a"

    ours = desired(
        tmp_path,
        folder("Shared", "https://ours.e2e.example/"),
        head="owner: acme/team-b\n",
        name="b.yaml",
    )
    mark = len(store.request_log)
    plan = run_cli("plan", ours, "--api-url", emulator_url)
    assert plan.returncode == 1
    assert 'b.yaml:4:5: source "Shared": owned by "acme/team-a"; --take-over overrides' in (
        plan.stderr
    )
    assert "Owned elsewhere" in plan.stdout
    refused = run_cli("apply", ours, "--auto-approve", "--api-url", emulator_url)
    assert refused.returncode == 1 and "--take-over" in refused.stderr
    drift = invoke("drift", ours, "--api-url", emulator_url)
    assert drift.exit_code == 1 and 'owned by "acme/team-a"' in drift.output
    assert writes_since(store, mark) == []

    taken = invoke("apply", ours, "--auto-approve", "--take-over", "--api-url", emulator_url)
    assert taken.exit_code == 0, taken.output
    assert owner_of(store, live_id) == "acme/team-b"
    assert store.sources[live_id].deployment["webfolder_base_url"] == "https://ours.e2e.example/"
    # Now the first file is the one refused: the two cannot fight over the source.
    back = invoke("plan", theirs, "--api-url", emulator_url)
    assert back.exit_code == 1 and 'owned by "acme/team-b"' in back.output


def test_a_saved_take_over_needs_the_flag_at_apply_too(
    store: SourceStore, emulator_url: str, tmp_path: Path
) -> None:
    theirs = desired(tmp_path, folder("Shared"), head="owner: team-a\n", name="a.yaml")
    assert invoke("apply", theirs, "--auto-approve", "--api-url", emulator_url).exit_code == 0
    (live_id,) = store.sources
    ours = desired(tmp_path, folder("Shared"), head="owner: team-b\n", name="b.yaml")
    saved = tmp_path / "plan.json"
    planned = invoke("plan", ours, "--take-over", "--out", saved, "--api-url", emulator_url)
    assert planned.exit_code == 0, planned.output
    assert "owned by team-a: apply needs --take-over" in planned.stdout

    mark = len(store.request_log)
    refused = invoke("apply", saved, "--auto-approve", "--api-url", emulator_url)
    assert refused.exit_code == 1 and "--take-over" in refused.output
    assert writes_since(store, mark) == []
    taken = invoke("apply", saved, "--auto-approve", "--take-over", "--api-url", emulator_url)
    assert taken.exit_code == 0, taken.output
    assert owner_of(store, live_id) == "team-b"


def test_a_large_change_cut_short_needs_the_flag_again_while_the_rest_is_over_the_radius(
    store: SourceStore, emulator_url: str, tmp_path: Path
) -> None:
    names = [f"Site{n}" for n in range(10)]
    for name in names:
        store.create_source(folder_wire(name))
    moved = "https://new-origin.e2e.example/"
    file = desired(tmp_path, *(folder(n, moved) for n in names[:6]), *map(folder, names[6:]))
    two_an_hour = {"IMGIX_RECONCILER_UPDATES_PER_HOUR": "2"}
    cut_short = ("--auto-approve", "--max-duration", "10m", "--api-url", emulator_url)

    first = run_cli("apply", file, "--allow-large-change", *cut_short, env=two_an_hour)
    assert first.returncode == 3, first.stderr
    assert "2 applied, 0 failed. 4 not attempted (stopped by --max-duration)" in first.stdout

    # The next run plans the 4 left: still over the radius (40% of 10), so still refused.
    mark = len(store.request_log)
    resumed = run_cli("apply", file, *cut_short, env=two_an_hour)
    assert resumed.returncode == 1
    assert "changes 4 of 10 managed live sources in risky ways" in resumed.stderr
    assert "--allow-large-change" in resumed.stderr.splitlines()[-1]
    assert writes_since(store, mark) == []

    again = run_cli("apply", file, "--allow-large-change", *cut_short, env=two_an_hour)
    assert again.returncode == 3, again.stderr
    # The 2 left are under the radius: an ordinary apply finishes the change.
    last = run_cli("apply", file, *cut_short, env=two_an_hour)
    assert last.returncode == 0, last.stderr
    assert [store.sources[i].deployment["webfolder_base_url"] for i in store.sources].count(
        moved
    ) == 6
