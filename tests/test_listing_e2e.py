"""A listing that moved while it was read, end to end: the CLI over real HTTP.

The emulator (uvicorn on 127.0.0.1) serves a 250-source account in pages of 100, and
its `on_page_listed` hook removes a source right after page 0 is served, as support
might between two page reads. Offset pages then shift: the source after page 0's last
slides onto page 0, read already, and no page of that listing shows it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from console import run_cli

from reconciler.emulator import SourceStore

ACCOUNT = 250
REMOVED = 5  # on page 0: source 100 slides onto page 0 once it is gone
NOTICE = (
    "the list of sources changed while it was read (250 then 249 announced, 249 read); "
    "reading it again"
)


def fill(store: SourceStore) -> list[str]:
    """The account's sources, S0 to S249; their ids in listing order."""
    store.load_json(
        {
            "version": 1,
            "sources": [{"name": f"S{n}", "deployment": _deployment(n)} for n in range(ACCOUNT)],
        }
    )
    return list(store.sources)


def _deployment(n: int) -> dict[str, object]:
    return {
        "type": "webfolder",
        "imgix_subdomains": [f"lst-{n}"],
        "webfolder_base_url": f"https://origin.example/{n}/",
    }


def desired_file(directory: Path, numbers: range | list[int]) -> Path:
    """A desired-state file stating sources S<n> exactly as the account holds them."""
    blocks = "".join(
        f"  - name: S{n}\n    deployment:\n      type: webfolder\n"
        f"      imgix_subdomains: [lst-{n}]\n      webfolder_base_url: https://origin.example/{n}/\n"
        for n in numbers
    )
    path = directory / "sources.yaml"
    path.write_text(f"version: 1\nsources:\n{blocks}", encoding="utf-8")
    return path


def remove_after_page_0(store: SourceStore, ids: list[str], times: int) -> Callable[[int], None]:
    """A hook that removes the next of `ids` after page 0 is served, `times` times."""
    pending = iter(ids[:times])

    def hook(number: int) -> None:
        if number == 0:
            removed = next(pending, None)
            if removed is not None:
                store.remove_source(removed)

    return hook


def list_reads(store: SourceStore) -> list[str]:
    """The page numbers of each list request the emulator answered, in order."""
    return [
        dict(part.split("=", 1) for part in entry.query.split("&"))["page%5Bnumber%5D"]
        for entry in store.request_log
        if entry.method == "GET" and entry.path == "/api/v1/sources"
    ]


@pytest.fixture
def account(emulator_store: SourceStore, emulator_url: str) -> list[str]:
    return fill(emulator_store)


def test_a_quiet_listing_makes_one_request_per_page(
    emulator_store: SourceStore, emulator_url: str, account: list[str], tmp_path: Path
) -> None:
    file = desired_file(tmp_path, range(ACCOUNT))

    result = run_cli("plan", file, "--api-url", emulator_url, "--detailed-exitcode")

    assert result.returncode == 0, result.stderr
    assert list_reads(emulator_store) == ["0", "1", "2"]
    assert [entry.status for entry in emulator_store.request_log] == [200] * 3
    assert "changed while it was read" not in result.stderr


def test_plan_reads_a_list_that_moved_again_and_proposes_no_create(
    emulator_store: SourceStore, emulator_url: str, account: list[str], tmp_path: Path
) -> None:
    file = desired_file(tmp_path, [n for n in range(ACCOUNT) if n != REMOVED])
    emulator_store.on_page_listed = remove_after_page_0(emulator_store, [account[REMOVED]], 1)

    result = run_cli(
        "plan", file, "--api-url", emulator_url, "--format", "json", "--detailed-exitcode"
    )

    # Without the second read, S100 (on no page read) would be planned as a create.
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["actions"] == [] and document["unmanaged"] == []
    assert document["summary"]["create"] == 0
    assert document["summary"]["unchanged"] == ACCOUNT - 1
    assert result.stderr.count(NOTICE) == 1
    assert list_reads(emulator_store) == ["0", "1", "2"] * 2


def test_drift_reports_no_false_missing_source(
    emulator_store: SourceStore, emulator_url: str, account: list[str], tmp_path: Path
) -> None:
    file = desired_file(tmp_path, [n for n in range(ACCOUNT) if n != REMOVED])
    emulator_store.on_page_listed = remove_after_page_0(emulator_store, [account[REMOVED]], 1)

    result = run_cli("drift", file, "--api-url", emulator_url, "--allow-unadopted")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "In sync" in result.stdout and "S100" not in result.stdout
    assert result.stderr.count(NOTICE) == 1


@pytest.mark.parametrize("command", ["plan", "drift"])
def test_a_listing_that_keeps_moving_is_an_error_and_no_verdict(
    emulator_store: SourceStore,
    emulator_url: str,
    account: list[str],
    tmp_path: Path,
    command: str,
) -> None:
    file = desired_file(tmp_path, range(ACCOUNT))
    emulator_store.on_page_listed = remove_after_page_0(emulator_store, account, 3)

    result = run_cli(command, file, "--api-url", emulator_url)

    assert result.returncode == 1  # an API error: not drift (2), not a plan
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[:2] == [
        "the list of sources changed while it was read (250 then 249 announced, 249 read); "
        "reading it again",
        "the list of sources changed while it was read (249 then 248 announced, 248 read); "
        "reading it again",
    ]
    assert lines[2:] == [
        "error: imgix API 200 Invalid Response: GET: the list of sources kept changing "
        "while it was read (248 then 247 announced, 247 read), 3 times in a row; no plan is "
        "made from a list known to be incomplete: try again when the account is quiet"
    ]
    assert list_reads(emulator_store) == ["0", "1", "2"] * 3


def test_apply_checks_a_saved_plan_against_a_list_read_again(
    emulator_store: SourceStore, emulator_url: str, account: list[str], tmp_path: Path
) -> None:
    file = desired_file(tmp_path, [n for n in range(ACCOUNT) if n != REMOVED])
    moved = "https://origin.example/moved/"
    file.write_text(file.read_text().replace("https://origin.example/100/", moved))
    saved = tmp_path / "plan.json"
    made = run_cli("plan", file, "--api-url", emulator_url, "--out", saved)
    assert made.returncode == 0, made.stderr
    emulator_store.on_page_listed = remove_after_page_0(emulator_store, [account[REMOVED]], 1)

    result = run_cli("apply", saved, "--api-url", emulator_url, "--auto-approve")

    # The freshness check finds S100 as planned, not gone (which would be exit 4).
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr.count(NOTICE) == 1
    assert emulator_store.sources[account[100]].deployment["webfolder_base_url"] == moved
