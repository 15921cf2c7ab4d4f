"""Apply under the write budget, end to end: cut short, stopped, killed, then resumed.

Each stopped run is `python -m reconciler apply` in a subprocess against the emulator on
127.0.0.1 (over real HTTP); the plain re-runs that must converge run in-process. Hourly
budgets are made tiny (`IMGIX_RECONCILER_UPDATES_PER_HOUR=2`) so a run meets the budget
after two writes without any test waiting for it.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import signal
import subprocess
import sys
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from conftest import FakeClock
from console import UNPACED, apply_directly, child_env, invoke, run_cli, writes_since
from starlette.responses import Response

from reconciler import reconcile
from reconciler.emulator import EMULATOR_API_KEY, RateLimits, SourceStore, create_app
from reconciler.emulator.limits import Faults
from reconciler.emulator.server import running_app
from reconciler.pacing import Pacing, Stop
from reconciler.progress import ApplyProgress
from reconciler.reconcile import Connection, apply_with_report, plan_files

pytestmark = pytest.mark.e2e

TWO_PER_HOUR = {"IMGIX_RECONCILER_UPDATES_PER_HOUR": "2"}


def sites(count: int, *, ttl: int, disabled: frozenset[int] = frozenset(), start: int = 0) -> str:
    """Web folder sources (no secrets): `Site n` on `e2e-site-n`, with one TTL for all."""
    blocks = [
        f"""\
  - name: Site {n}
    enabled: {"false" if n in disabled else "true"}
    deployment:
      type: webfolder
      imgix_subdomains: [e2e-site-{n}]
      webfolder_base_url: https://site{n}.e2e.example/
      cache_ttl_value: {ttl}
"""
        for n in range(start, start + count)
    ]
    return "version: 1\nsources:\n" + "".join(blocks)


@pytest.fixture
def store(emulator_store: SourceStore) -> SourceStore:
    emulator_store.deploy_delay = 0
    return emulator_store


def apply_command(file: Path, url: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "reconciler",
        "apply",
        str(file),
        "--auto-approve",
        "--api-url",
        url,
    ]


def managed(tmp_path: Path, url: str, text: str) -> Path:
    """A file applied to the account (unpaced, through the library)."""
    file = tmp_path / "sources.yaml"
    file.write_text(text, encoding="utf-8")
    apply_directly(url, file, {})
    return file


def converges(file: Path, url: str) -> int:
    """Plain `apply --auto-approve` runs until the plan is empty; how many it took (<= 2)."""
    for runs in (1, 2):
        result = invoke("apply", file, "--auto-approve", "--api-url", url)
        assert result.exit_code in (0, 3), result.output
        plan = invoke("plan", file, "--detailed-exitcode", "--api-url", url)
        if plan.exit_code == 0:
            return runs
    raise AssertionError(f"still changes after two plain applies:\n{plan.output}")


def test_max_duration_starts_no_write_past_it_and_the_next_apply_continues(
    store: SourceStore, emulator_url: str, tmp_path: Path
) -> None:
    file = managed(tmp_path, emulator_url, sites(4, ttl=3600))
    file.write_text(sites(4, ttl=7200), encoding="utf-8")
    mark = len(store.request_log)

    first = run_cli(
        "apply", file, "--auto-approve", "--max-duration", "10m", "--api-url", emulator_url,
        env=TWO_PER_HOUR,
    )  # fmt: skip

    assert first.returncode == 3, first.stderr
    assert "Cost: 0 creates and 4 updates; about 1 h 00 min at 60 creates/h, 2 updates/h" in (
        first.stdout
    )
    assert first.stdout.count("\napplied: patch Site") == 2
    assert first.stdout.count("\nnot attempted: patch Site") == 2
    assert "it could not finish within --max-duration" in first.stdout
    assert first.stdout.rstrip().endswith(
        "Apply: 2 applied, 0 failed. 2 not attempted (stopped by --max-duration). "
        "Run apply again to continue: it plans afresh."
    )
    assert "[4/4]" in first.stderr  # a progress line per action
    assert len(writes_since(store, mark)) == 2

    rerun = run_cli("apply", file, "--auto-approve", "--api-url", emulator_url, env=TWO_PER_HOUR)
    assert rerun.returncode == 0, rerun.stderr
    assert "Plan: 0 to create, 2 to patch, 2 unchanged" in rerun.stdout
    assert invoke("plan", file, "--detailed-exitcode", "--api-url", emulator_url).exit_code == 0


@pytest.mark.parametrize("max_duration", ["0s", "1h-5m", "5m30h", "soon", ""])
def test_a_bad_max_duration_is_a_one_line_error_before_any_request(
    store: SourceStore, emulator_url: str, tmp_path: Path, max_duration: str
) -> None:
    file = tmp_path / "sources.yaml"
    file.write_text(sites(1, ttl=3600), encoding="utf-8")

    result = invoke(
        "apply", file, "--auto-approve", "--max-duration", max_duration, "--api-url", emulator_url
    )

    assert result.exit_code == 1
    assert "--max-duration" in result.stderr and "Traceback" not in result.stderr
    assert store.request_log == []


@pytest.mark.parametrize("value", ["0", "-5", "sixty", "1.5", "6O"])
def test_a_bad_budget_variable_is_a_one_line_error(
    store: SourceStore, emulator_url: str, tmp_path: Path, value: str
) -> None:
    file = tmp_path / "sources.yaml"
    file.write_text(sites(1, ttl=3600), encoding="utf-8")

    result = run_cli(
        "plan", file, "--api-url", emulator_url, env={"IMGIX_RECONCILER_CREATES_PER_HOUR": value}
    )

    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "error: IMGIX_RECONCILER_CREATES_PER_HOUR must be a whole number of writes per hour "
        f">= 1 (got {value!r})"
    ]


def test_sigterm_mid_apply_stops_starting_writes_reports_all_and_exits_3(
    store: SourceStore, emulator_url: str, tmp_path: Path
) -> None:
    file = managed(tmp_path, emulator_url, sites(4, ttl=3600))
    file.write_text(sites(4, ttl=7200), encoding="utf-8")
    process = subprocess.Popen(
        apply_command(file, emulator_url),
        env=child_env(TWO_PER_HOUR),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    watchdog = threading.Timer(60, process.kill)
    watchdog.start()
    try:
        assert process.stderr is not None
        seen = []
        for line in process.stderr:  # the third write waits an hour for the budget
            seen.append(line)
            if line.startswith("waiting "):
                break
        # The third write may start waiting before the second's line is out.
        assert re.match(
            r"waiting 1 h 00 min for the hourly update budget \(2/h\), [12] of 4 done", seen[-1]
        )
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        watchdog.cancel()

    assert process.returncode == 3, stderr
    assert "SIGTERM received: starting no more writes" in stderr
    assert stdout.count("\napplied: patch Site") == 2
    assert stdout.count("\nnot attempted: patch Site") == 2
    assert "2 not attempted (stopped by SIGTERM)" in stdout
    assert "Traceback" not in stderr
    assert converges(file, emulator_url) == 1


def _kill_when(store: SourceStore, process_id: list[int], boundary: str) -> None:
    """Kill the apply (SIGKILL) right after the emulator commits the chosen write."""
    committed = 0

    def on_commit(store: SourceStore) -> None:
        nonlocal committed
        committed += 1
        site0 = next(s for s in store.sources.values() if s.name == "Site 0")
        hit = site0.enabled if boundary == "site 0 enabled" else committed == int(boundary)
        if hit and process_id:
            os.kill(process_id.pop(), signal.SIGKILL)

    store.on_commit = on_commit


@pytest.mark.parametrize("boundary", ["site 0 enabled", "1", "2", "3"])
def test_sigkill_at_a_write_boundary_then_plain_applies_converge(
    store: SourceStore, emulator_url: str, tmp_path: Path, boundary: str
) -> None:
    # Site 0 is disabled and stays so, but changes: enabled, changed, disabled again.
    # Site 1 changes, Site 2 is created: four writes in all.
    file = managed(tmp_path, emulator_url, sites(2, ttl=3600, disabled=frozenset({0})))
    file.write_text(sites(3, ttl=7200, disabled=frozenset({0})), encoding="utf-8")
    process_id: list[int] = []
    _kill_when(store, process_id, boundary)
    mark = len(store.request_log)
    process = subprocess.Popen(
        apply_command(file, emulator_url),
        env=child_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    process_id.append(process.pid)
    process.wait(timeout=60)
    store.on_commit = None

    assert process.returncode == -signal.SIGKILL
    # Requests already on the wire may still land after the kill.
    assert 1 <= len(writes_since(store, mark)) <= 4
    # No --allow-disable: the disable the killed run owed is finished without it.
    assert converges(file, emulator_url) == 1
    site0 = next(s for s in store.sources.values() if s.name == "Site 0")
    assert not site0.enabled and site0.deployment["cache_ttl_value"] == 7200
    assert "pending." not in site0.deployment["annotation"]


def test_150_changes_at_the_documented_limits_meet_no_429_and_keep_the_budget_pace(
    emulator_store: SourceStore, emulator_url: str, fake_clock: FakeClock, tmp_path: Path
) -> None:
    # Both sides on one fake clock: two hours of budget pass in a second of real time.
    emulator_store.limits = RateLimits()
    emulator_store.deploy_delay = 0
    connection = Connection(
        emulator_url, EMULATOR_API_KEY, pacing=Pacing(), clock=fake_clock, sleep=fake_clock.sleep
    )
    file = tmp_path / "sources.yaml"
    file.write_text(sites(150, ttl=3600), encoding="utf-8")
    unpaced = Connection(emulator_url, EMULATOR_API_KEY, pacing=Pacing(None, None, None))
    emulator_store.limits = RateLimits(None, None, None)
    asyncio.run(_apply(file, unpaced))
    emulator_store.limits = RateLimits()
    fake_clock.advance(3600.0)  # the set-up's writes leave the server's window
    file.write_text(sites(150, ttl=7200), encoding="utf-8")
    mark = len(emulator_store.request_log)
    out = io.StringIO()

    started = fake_clock.now
    cost = asyncio.run(_apply(file, connection, out))

    taken = fake_clock.now - started
    statuses = [entry.status for entry in emulator_store.request_log[mark:]]
    assert 429 not in statuses
    assert statuses.count(200) >= 151  # the listing and 150 patches
    assert cost == 2 * 3600 + 38
    assert abs(taken - cost) <= 0.1 * cost, (taken, cost)
    lines = out.getvalue().splitlines()
    assert sum(line.startswith("[") for line in lines) == 150
    budget_waits = [line for line in lines if line.startswith("waiting ")]
    # Two hourly waits (after 60 and 120 updates); on a loaded machine the fake clock may
    # jump while a request is on the wire, splitting one wait in two: never fewer.
    assert len(budget_waits) >= 2, lines
    assert all("for the hourly update budget (60/h)" in line for line in budget_waits)
    assert re.fullmatch(
        r"waiting 1 h 00 min for the hourly update budget \(60/h\), 5\d of 150 done, "
        r"about 2 h 00 min left",
        budget_waits[0],
    )


async def _apply(file: Path, connection: Connection, out: io.StringIO | None = None) -> int:
    made = await plan_files([file], connection, secrets_optional=False, environ={})
    progress = None
    if out is not None:
        # No heartbeat: the fake clock would jump to its wake-ups while requests are in
        # flight (it cannot see tasks waiting on sockets), inflating the time taken.
        progress = ApplyProgress(
            len(made.plan.actions), clock=connection.clock, stream=out, heartbeat=None
        )
    report = await apply_with_report(made.plan, connection, environ={}, progress=progress)
    assert report.ok, report.failed
    assert made.plan.cost is not None
    return made.plan.cost.seconds


def test_a_saved_plan_cut_short_is_finished_by_applying_it_again(
    store: SourceStore, emulator_url: str, tmp_path: Path
) -> None:
    file = managed(tmp_path, emulator_url, sites(4, ttl=3600))
    file.write_text(sites(4, ttl=7200), encoding="utf-8")
    saved = tmp_path / "plan.json"
    assert run_cli("plan", file, "--out", saved, "--api-url", emulator_url).returncode == 0

    first = invoke(
        "apply", saved, "--auto-approve", "--max-duration", "10m", "--api-url", emulator_url,
        env=TWO_PER_HOUR,
    )  # fmt: skip
    assert first.exit_code == 3, first.output
    assert "2 not attempted (stopped by --max-duration)" in first.stdout

    mark = len(store.request_log)
    again = invoke("apply", saved, "--auto-approve", "--api-url", emulator_url, env=TWO_PER_HOUR)

    assert again.exit_code == 0, again.output
    assert again.stdout.count("\nin effect: patch Site") == 2
    assert "Apply: 2 applied, 0 failed. 2 already in effect (skipped)." in again.stdout
    assert len(writes_since(store, mark)) == 2
    assert invoke("plan", file, "--detailed-exitcode", "--api-url", emulator_url).exit_code == 0


def test_a_saved_plan_whose_source_someone_else_changed_is_still_stale(
    store: SourceStore, emulator_url: str, tmp_path: Path
) -> None:
    file = managed(tmp_path, emulator_url, sites(2, ttl=3600))
    file.write_text(sites(2, ttl=7200), encoding="utf-8")
    saved = tmp_path / "plan.json"
    assert run_cli("plan", file, "--out", saved, "--api-url", emulator_url).returncode == 0
    site0 = next(s for s in store.sources.values() if s.name == "Site 0")
    store.dashboard_redeploy(site0.id, {"cache_ttl_value": 7200})  # in effect, but not ours
    mark = len(store.request_log)

    result = invoke("apply", saved, "--auto-approve", "--api-url", emulator_url)

    assert result.exit_code == 4, result.output
    assert "Site 0" in result.stderr and "changed" in result.stderr
    assert writes_since(store, mark) == []


def test_apply_format_json_prints_one_report_document_that_its_schema_accepts(
    store: SourceStore, emulator_url: str, tmp_path: Path
) -> None:
    file = managed(tmp_path, emulator_url, sites(4, ttl=3600))
    file.write_text(sites(4, ttl=7200), encoding="utf-8")
    schema = json.loads((Path(__file__).parent.parent / "schemas" / "apply-report.schema.json")
                        .read_text(encoding="utf-8"))  # fmt: skip

    first = run_cli(
        "apply", file, "--auto-approve", "--format", "json", "--max-duration", "10m",
        "--api-url", emulator_url, env=TWO_PER_HOUR,
    )  # fmt: skip

    assert first.returncode == 3, first.stderr
    report = json.loads(first.stdout)  # stdout holds the report alone
    jsonschema.validate(report, schema)
    assert report["ok"] is False
    assert report["counts"] == {"applied": 2, "stopped": 2}
    assert report["stopped"] == "stopped by --max-duration"
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", report["digest"])
    assert "Plan: 0 to create, 4 to patch" in first.stderr  # the plan is still shown
    applied = {r["source"] for r in report["results"] if r["outcome"] == "applied"}

    rerun = run_cli(
        "apply", file, "--auto-approve", "--format", "json", "--api-url", emulator_url,
        env=TWO_PER_HOUR,
    )  # fmt: skip
    assert rerun.returncode == 0, rerun.stderr
    second = json.loads(rerun.stdout)
    jsonschema.validate(second, schema)
    assert second["ok"] is True and second["counts"] == {"applied": 2}
    assert {r["source"] for r in second["results"]}.isdisjoint(applied)

    done = run_cli("apply", file, "--auto-approve", "--format", "json", "--api-url", emulator_url)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["results"] == []
    assert "Nothing to do." in done.stderr


class LosesFirstCreate:
    """A gateway in front of the API that answers the first create 502 without passing it on."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.lost = False

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and not self.lost:
            self.lost = True
            await Response("<html>502 Bad Gateway</html>", status_code=502)(scope, receive, send)
            return
        await self.app(scope, receive, send)


def test_a_create_whose_answer_was_lost_never_claims_a_source_another_run_made(
    store: SourceStore, tmp_path: Path, fake_clock: FakeClock
) -> None:
    # Two runs at once (two merges, a retry, someone in the dashboard) create a source
    # for the same subdomain: this run's create never arrives, the other's does.
    file = tmp_path / "sources.yaml"
    file.write_text(sites(1, ttl=86400))
    gateway = LosesFirstCreate(create_app(store))
    with running_app(gateway) as url:
        connection = Connection(
            url, EMULATOR_API_KEY, pacing=UNPACED, clock=fake_clock, sleep=fake_clock.sleep
        )
        made = asyncio.run(plan_files([file], connection, environ={}))
        store.create_source(
            {
                "name": "Site 0",
                "deployment": {
                    "type": "webfolder",
                    "imgix_subdomains": ["e2e-site-0"],
                    "webfolder_base_url": "https://elsewhere.example/",
                },
            }
        )
        report = asyncio.run(apply_with_report(made.plan, connection, environ={}))

    (result,) = report.results
    assert (result.outcome, result.source_id) == ("failed", None)
    assert result.error is not None and "e2e-site-0" in result.error
    (only,) = store.sources.values()
    assert only.deployment["webfolder_base_url"] == "https://elsewhere.example/"


def test_a_budget_another_run_spent_stops_at_max_duration_after_one_429_not_failing_all(
    store: SourceStore, emulator_url: str, tmp_path: Path
) -> None:
    file = managed(tmp_path, emulator_url, sites(12, ttl=3600))
    # Another run (a merge before ours) spends the account's hourly updates on Sites 0-1.
    store.limits = RateLimits(per_second=None, creates_per_hour=None, updates_per_hour=2)
    other = tmp_path / "other.yaml"
    other.write_text(
        sites(2, ttl=7200) + sites(10, ttl=3600, start=2).split("sources:\n", 1)[1],
        encoding="utf-8",
    )
    assert apply_directly(emulator_url, other, {}).ok
    file.write_text(sites(12, ttl=7200), encoding="utf-8")
    mark = len(store.request_log)

    ours = run_cli(
        "apply", file, "--auto-approve", "--max-duration", "10m", "--api-url", emulator_url,
    )  # fmt: skip

    assert ours.returncode == 3, ours.stderr
    refused = [entry for entry in store.request_log[mark:] if entry.status == 429]
    # The first 429 teaches the pacer: only the patches already on their way meet one.
    assert 1 <= len(refused) <= 4, ours.stdout
    assert "\nfailed:" not in ours.stdout
    assert ours.stdout.count("\nnot attempted: patch Site") == 10
    assert "hourly update budget" in ours.stdout
    assert ours.stdout.rstrip().endswith(
        "Apply: 0 applied, 0 failed. 10 not attempted (stopped by --max-duration). "
        "Run apply again to continue: it plans afresh."
    )


def test_a_budget_another_run_spent_is_waited_for_announced_and_the_apply_finishes(
    emulator_store: SourceStore, emulator_url: str, fake_clock: FakeClock, tmp_path: Path
) -> None:
    # Both sides on one fake clock: the hour waited passes at once.
    emulator_store.deploy_delay = 0
    file = managed(tmp_path, emulator_url, sites(6, ttl=3600))
    emulator_store.limits = RateLimits(per_second=None, creates_per_hour=None, updates_per_hour=4)
    other = tmp_path / "other.yaml"
    other.write_text(
        sites(4, ttl=7200) + sites(2, ttl=3600, start=4).split("sources:\n", 1)[1],
        encoding="utf-8",
    )
    assert apply_directly(emulator_url, other, {}).ok  # another run spends the hour
    file.write_text(sites(6, ttl=7200), encoding="utf-8")
    connection = Connection(
        emulator_url, EMULATOR_API_KEY, pacing=Pacing(), clock=fake_clock, sleep=fake_clock.sleep
    )
    mark = len(emulator_store.request_log)
    out = io.StringIO()

    started = fake_clock.now
    asyncio.run(_apply(file, connection, out))  # asserts that every action applied

    statuses = [entry.status for entry in emulator_store.request_log[mark:]]
    assert 1 <= statuses.count(429) <= 2  # the patches under way when the first came back
    assert fake_clock.now - started >= 3590  # it waited for the other run's writes to age out
    waits = [line for line in out.getvalue().splitlines() if line.startswith("waiting ")]
    assert waits and "for the hourly update budget" in waits[0], out.getvalue()


def test_a_wait_whose_polls_fail_still_reports_the_writes_made_and_exits_partial(
    emulator_store: SourceStore, emulator_url: str, fake_clock: FakeClock, tmp_path: Path
) -> None:
    # The API goes down once the writes are made, while --wait polls: the run must still
    # print its report (exit 3), not end as an error before any write (exit 1).
    emulator_store.deploy_delay = 10_000  # never deployed within the run
    file = tmp_path / "sources.yaml"
    file.write_text(sites(2, ttl=3600), encoding="utf-8")
    connection = Connection(
        emulator_url, EMULATOR_API_KEY, pacing=UNPACED, clock=fake_clock, sleep=fake_clock.sleep
    )
    made = asyncio.run(plan_files([file], connection, secrets_optional=False, environ={}))
    out = io.StringIO()
    progress = ApplyProgress(2, clock=fake_clock, stream=out, heartbeat=None)

    finished: list[object] = []

    def api_goes_down(result: object) -> None:
        finished.append(result)
        if len(finished) == 2:
            emulator_store.faults = Faults(error_rate=1.0)

    report = asyncio.run(
        apply_with_report(
            made.plan, connection, environ={}, wait=True, on_result=api_goes_down,
            progress=progress,
        )
    )  # fmt: skip

    assert [result.outcome for result in report.results] == ["applied", "applied"]
    assert not report.ok  # exit 3
    assert sorted(report.still_deploying) == sorted(report.touched_ids)
    gave_up = [line for line in out.getvalue().splitlines() if line.startswith("--wait gave up")]
    assert len(gave_up) == 1 and "500" in gave_up[0], out.getvalue()


@pytest.mark.parametrize("max_duration", [600.0, None])
def test_a_spent_budget_whose_429s_say_not_how_long_is_learned_not_hammered(
    emulator_store: SourceStore,
    emulator_url: str,
    fake_clock: FakeClock,
    tmp_path: Path,
    max_duration: float | None,
) -> None:
    # imgix may send no Retry-After: refused writes in a row tell the budget is spent.
    emulator_store.deploy_delay = 0
    file = managed(tmp_path, emulator_url, sites(8, ttl=3600))
    emulator_store.limits = RateLimits(
        per_second=None, creates_per_hour=None, updates_per_hour=2, retry_after=False
    )
    other = tmp_path / "other.yaml"
    other.write_text(
        sites(2, ttl=7200) + sites(6, ttl=3600, start=2).split("sources:\n", 1)[1],
        encoding="utf-8",
    )
    assert apply_directly(emulator_url, other, {}).ok  # another run spends the hour
    file.write_text(sites(8, ttl=7200), encoding="utf-8")
    connection = Connection(
        emulator_url, EMULATOR_API_KEY, pacing=Pacing(), clock=fake_clock, sleep=fake_clock.sleep
    )
    made = asyncio.run(plan_files([file], connection, secrets_optional=False, environ={}))
    stop = None if max_duration is None else Stop(deadline=fake_clock.now + 600, clock=fake_clock)
    mark = len(emulator_store.request_log)

    report = asyncio.run(apply_with_report(made.plan, connection, environ={}, stop=stop))

    refused = [e for e in emulator_store.request_log[mark:] if e.status == 429]
    if max_duration is not None:
        assert [r.outcome for r in report.results] == ["stopped"] * 6
        assert report.stopped == "stopped by --max-duration"
        assert all("hourly update budget" in (r.error or "") for r in report.results)
        assert len(refused) <= 12  # 8 in a row, and the retries already under way
    else:
        assert report.ok, report.failed  # three hours later, at 2 updates an hour
        assert len(refused) <= 3 * 12


def test_a_429_asking_to_wait_past_max_duration_is_not_slept_through(
    emulator_store: SourceStore, emulator_url: str, fake_clock: FakeClock, tmp_path: Path
) -> None:
    emulator_store.deploy_delay = 0
    file = managed(tmp_path, emulator_url, sites(3, ttl=3600))
    emulator_store.limits = RateLimits(per_second=None, creates_per_hour=None, updates_per_hour=1)
    other = tmp_path / "other.yaml"
    other.write_text(
        sites(1, ttl=7200) + sites(2, ttl=3600, start=1).split("sources:\n", 1)[1],
        encoding="utf-8",
    )
    assert apply_directly(emulator_url, other, {}).ok  # another run's update...
    fake_clock.advance(3600 - 60)  # ...frees the hour's only one in a minute
    file.write_text(sites(3, ttl=7200), encoding="utf-8")
    connection = Connection(
        emulator_url, EMULATOR_API_KEY, pacing=Pacing(), clock=fake_clock, sleep=fake_clock.sleep
    )
    made = asyncio.run(plan_files([file], connection, secrets_optional=False, environ={}))
    started = fake_clock.now
    stop = Stop(deadline=started + 30, clock=fake_clock)  # --max-duration 30s

    report = asyncio.run(apply_with_report(made.plan, connection, environ={}, stop=stop))

    assert [r.outcome for r in report.results] == ["stopped", "stopped"]
    assert fake_clock.now - started < 30  # the 429's 60 s were not waited out first


def test_a_dashboard_edit_made_while_a_patch_waits_for_the_budget_survives_and_exits_3(
    emulator_store: SourceStore,
    emulator_url: str,
    fake_clock: FakeClock,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # `apply` itself (in-process, over real HTTP): one update an hour on both sides, and the
    # hour the second patch waits passes at once on the shared fake clock.
    emulator_store.deploy_delay = 0
    canary = "CANARY-reread-annotation-5c1e"
    noted = sites(2, ttl=3600).replace(
        "      cache_ttl_value", "      annotation: {env: REREAD_NOTE}\n      cache_ttl_value"
    )
    file = tmp_path / "sources.yaml"
    file.write_text(noted, encoding="utf-8")
    apply_directly(emulator_url, file, {"REREAD_NOTE": canary})
    file.write_text(noted.replace("3600", "7200"), encoding="utf-8")
    emulator_store.limits = RateLimits(per_second=None, creates_per_hour=None, updates_per_hour=1)
    site1 = next(s.id for s in emulator_store.sources.values() if s.name == "Site 1")

    def dashboard_edit(store: SourceStore) -> None:  # after the first patch, while 1 waits
        store.on_commit = None
        store.dashboard_redeploy(site1, {"cache_ttl_value": 86400})

    emulator_store.on_commit = dashboard_edit
    real_connect = reconcile.connect

    def on_the_fake_clock(*args: Any, **kwargs: Any) -> Connection:
        return replace(real_connect(*args, **kwargs), clock=fake_clock, sleep=fake_clock.sleep)

    monkeypatch.setattr("reconciler.reconcile.connect", on_the_fake_clock)
    env = {"IMGIX_RECONCILER_UPDATES_PER_HOUR": "1", "REREAD_NOTE": canary}

    result = invoke("apply", file, "--auto-approve", "--api-url", emulator_url, env=env)

    assert result.exit_code == 3, result.output
    assert f"\nstale: patch Site 1 ({site1}): not applied: it changed since the plan " in (
        result.stdout
    )
    assert "(deployment.annotation, deployment.cache_ttl_value); run plan again" in result.stdout
    assert result.stdout.rstrip().endswith(
        "Apply: 1 applied, 0 failed. 1 not applied (changed since the plan): "
        "run plan again and review it."
    )
    assert fake_clock.elapsed >= 3600
    edited = emulator_store.sources[site1].deployment
    assert edited["cache_ttl_value"] == 86400  # the edit survives
    site0 = next(s for s in emulator_store.sources.values() if s.name == "Site 0")
    assert site0.deployment["cache_ttl_value"] == 7200
    assert canary not in result.stdout + result.stderr


def test_the_wait_report_tells_deleted_and_gone_sources_from_those_still_deploying(
    emulator_store: SourceStore,
    emulator_url: str,
    fake_clock: FakeClock,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Stderr said why --wait gave up on a source; the report listed all alike.
    from reconciler.render import render_report

    emulator_store.deploy_delay = 10_000  # never deployed within the 10 minutes of waiting
    file = tmp_path / "sources.yaml"
    file.write_text(sites(3, ttl=3600), encoding="utf-8")
    connection = Connection(
        emulator_url, EMULATOR_API_KEY, pacing=UNPACED, clock=fake_clock, sleep=fake_clock.sleep
    )
    made = asyncio.run(plan_files([file], connection, secrets_optional=False, environ={}))
    ids: dict[str, str] = {}
    polled = emulator_store.get_source

    def get_source(source_id: str) -> dict[str, Any]:
        resource = polled(source_id)
        if source_id == ids["Site 1"]:  # deleted in the dashboard as it deployed
            resource["attributes"]["deployment_status"] = "deleted"
        return resource

    def written(result: Any) -> None:
        ids[result.source] = result.source_id
        if len(ids) == 3:
            del emulator_store.sources[ids["Site 2"]]  # gone: the API answers 404
            monkeypatch.setattr(emulator_store, "get_source", get_source)

    report = asyncio.run(
        apply_with_report(made.plan, connection, environ={}, wait=True, on_result=written)
    )

    assert report.not_deployed == {
        ids["Site 0"]: "deploying",
        ids["Site 1"]: "deleted",
        ids["Site 2"]: "gone",
    }
    in_plan_order = [ids[f"Site {n}"] for n in range(3)]
    assert report.still_deploying == in_plan_order
    lines = render_report(report, "text").splitlines()
    assert lines[3:7] == [
        f"Not seen deployed when --wait ended: {', '.join(in_plan_order)}.",
        f'  - "Site 0" ({ids["Site 0"]}): still deploying when the wait ended',
        f'  - "Site 1" ({ids["Site 1"]}): deleted while deploying',
        f'  - "Site 2" ({ids["Site 2"]}): gone (the API answers 404)',
    ]
    document = json.loads(render_report(report, "json"))
    assert document["still_deploying"] == in_plan_order
    assert document["not_deployed"] == report.not_deployed
