"""The fault campaign: random accounts, random changes, random faults, applies cut off.

Each run builds a managed account on the emulator (over real HTTP on 127.0.0.1), draws a
desired state that changes it (attribute changes, renames, disabled sources that must
change, hostnames moving between sources, rotated secrets, new sources, sources left
unmanaged), then applies it under a random fault schedule: injected 500s, responses
lost after the write committed, 429 bursts (with and without `Retry-After`), latency,
and the apply cut off after a random number of committed writes (its task cancelled
mid-flight; `test_apply_e2e.py` kills a real process with SIGKILL). Then, without
faults, at most two plain applies (no `--allow-disable`) must leave an empty plan, no
hostname on two sources, and no write ever went to a source the file does not manage.

The suite runs a few runs with a fixed seed. By hand, longer:

    IMGIX_RECONCILER_CAMPAIGN_RUNS=200 IMGIX_RECONCILER_CAMPAIGN_SEED=7 \\
        .venv/bin/pytest tests/test_fault_campaign.py -s

prints one line per run (faults injected, writes before the cut, applies needed) and a
total.
"""

from __future__ import annotations

import asyncio
import os
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from campaign import (
    LARGE,
    NO_LIMITS,
    Account,
    Drawing,
    Names,
    Secrets,
    applies_to_converge,
    draw_account,
    hostnames_on_two,
    set_up,
)
from conftest import FakeClock

from reconciler.emulator import EMULATOR_API_KEY, Faults, RateLimits, SourceStore
from reconciler.pacing import Pacing, RetryPolicy
from reconciler.reconcile import Connection, apply_with_report, plan_files

pytestmark = pytest.mark.e2e

RUNS = int(os.environ.get("IMGIX_RECONCILER_CAMPAIGN_RUNS", "6"))
SEED = int(os.environ.get("IMGIX_RECONCILER_CAMPAIGN_SEED", "20261130"))
DRAWING = Drawing(
    Names(label="Run", site="source", host="r", variables="", renamed=" (renamed)"),
    Secrets(("secret-", "rotated-", "new-"), bits=32, first=0.4, rotate=0.3),
    most_sources=7,
    enabled=0.7,
    ttl_change=0.5,
    rename=0.2,
    move=0.2,
    # Disabled sources that must change, and sources the file leaves unmanaged.
    enable=0.3,
    most_unmanaged=2,
)


@dataclass
class Run:
    """What one run drew and what happened."""

    number: int
    account: Account
    faults: Faults
    limits: RateLimits
    cut_after: int | None
    statuses: Counter[int] = field(default_factory=Counter)
    writes_before_cut: int = 0
    applies_needed: int = 0


def draw(rng: random.Random, number: int) -> Run:
    """A managed account, the change to make to it and the faults to make it under."""
    account = draw_account(rng, number, DRAWING)
    faults = Faults(
        error_rate=rng.choice([0.0, 0.1, 0.25]),
        lost_response_rate=rng.choice([0.0, 0.1, 0.3]),
        latency=rng.choice([0.0, 0.0, 0.002]),
    )
    limits = NO_LIMITS
    if rng.random() < 0.5:  # 429 bursts: the server allows less than the client sends
        limits = RateLimits(
            per_second=rng.choice([1, 2]),
            creates_per_hour=None,
            updates_per_hour=None,
            retry_after=rng.random() < 0.5,
        )
    cut_after = rng.choice([None, *range(1, len(account.desired) + 2)])
    return Run(number, account, faults, limits, cut_after)


def connection(url: str, clock: FakeClock, rng: random.Random) -> Connection:
    return Connection(
        url,
        EMULATOR_API_KEY,
        # No per-second pacing: the client sends bursts the 429 schedules refuse.
        pacing=Pacing(per_second=None, creates_per_hour=None, updates_per_hour=None),
        retry=RetryPolicy(attempts=6, base=0.2, cap=2.0, deadline=20.0, jitter=rng),
        clock=clock,
        sleep=clock.sleep,
    )


async def apply_file(
    file: Path, url: str, clock: FakeClock, rng: random.Random, environ: dict[str, str]
) -> bool:
    """Plan and apply `file` (a plain apply: no --allow-disable); whether all applied."""
    link = connection(url, clock, rng)
    made = await plan_files([file], link, secrets_optional=False, environ=environ)
    if not made.plan.has_changes:
        return True
    report = await apply_with_report(made.plan, link, permissions=LARGE, environ=environ)
    return report.ok


async def apply_cut_off(
    run: Run, file: Path, url: str, store: SourceStore, clock: FakeClock, rng: random.Random
) -> None:
    """Apply under the run's faults; cancel the apply after `cut_after` committed writes."""
    link = connection(url, clock, rng)
    environ = run.account.environ
    made = await plan_files([file], link, secrets_optional=False, environ=environ)
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(
        apply_with_report(made.plan, link, environ=environ, permissions=LARGE, allow_disable=True)
    )
    committed = 0

    def on_commit(store: SourceStore) -> None:
        nonlocal committed
        committed += 1
        if committed == run.cut_after:
            loop.call_soon_threadsafe(task.cancel)

    store.faults, store.limits, store.on_commit = run.faults, run.limits, on_commit
    try:
        await asyncio.gather(task, return_exceptions=True)
    finally:
        store.faults, store.limits, store.on_commit = Faults(), NO_LIMITS, None
    run.writes_before_cut = committed


def check_invariants(run: Run, store: SourceStore, mark: int) -> None:
    assert hostnames_on_two(store) == [], "a subdomain on two"
    desired_hosts = {host for source in run.account.desired for host in source.subdomains}
    unmanaged = {
        source.id
        for source in store.sources.values()
        if not desired_hosts & set(source.deployment["imgix_subdomains"])
    }
    touched = {
        entry.path.rsplit("/", 1)[-1]
        for entry in store.request_log[mark:]
        if entry.method == "PATCH"
    }
    assert not touched & unmanaged, "a write went to a source the file does not manage"


def campaign_run(
    run: Run, tmp_path: Path, url: str, store: SourceStore, clock: FakeClock, rng: random.Random
) -> None:
    file = tmp_path / f"run{run.number}.yaml"
    environ = run.account.environ
    set_up(
        run.account,
        file,
        store,
        lambda first: asyncio.run(apply_file(file, url, clock, rng, first)),
    )
    clock.advance(3600.0)
    mark = len(store.request_log)

    asyncio.run(apply_cut_off(run, file, url, store, clock, rng))
    run.statuses = Counter(entry.status for entry in store.request_log[mark:])

    def settled() -> bool:
        made = asyncio.run(plan_files([file], connection(url, clock, rng), environ=environ))
        return not made.plan.has_changes

    applies = applies_to_converge(
        lambda: asyncio.run(apply_file(file, url, clock, rng, environ)), settled
    )
    if applies is None:
        pytest.fail(f"run {run.number} did not converge in two plain applies: {run}")
    run.applies_needed = applies
    check_invariants(run, store, mark)


def test_fault_campaign_converges_in_two_plain_applies(
    emulator_store: SourceStore,
    emulator_url: str,
    fake_clock: FakeClock,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    emulator_store.deploy_delay = 0
    rng = random.Random(SEED)
    totals: Counter[str] = Counter()
    most = 0
    lines = []
    for number in range(RUNS):
        run = draw(rng, number)
        # Its own generators: how many retries a run makes must not change later draws.
        emulator_store.rng = random.Random(SEED + 1 + number)
        jitter = random.Random(SEED - 1 - number)
        campaign_run(run, tmp_path, emulator_url, emulator_store, fake_clock, jitter)
        faults = run.statuses[500] + run.statuses[504] + run.statuses[429]
        totals.update(
            faults=faults,
            applies=run.applies_needed,
            cut=run.cut_after is not None and run.writes_before_cut >= (run.cut_after or 0),
        )
        most = max(most, run.applies_needed)
        lines.append(
            f"run {number}: {len(run.account.desired)} sources, faults 500x{run.statuses[500]} "
            f"504x{run.statuses[504]} 429x{run.statuses[429]}, "
            f"cut after {run.cut_after} writes ({run.writes_before_cut} made), "
            f"{run.applies_needed} plain applies to converge"
        )
    with capsys.disabled():
        if RUNS > 6:
            print("\n" + "\n".join(lines))
        print(
            f"\nfault campaign (seed {SEED}): {RUNS} runs, {totals['faults']} faults injected, "
            f"{totals['cut']} applies cut off, {totals['applies']} plain applies to converge "
            f"(at most {most} per run)"
        )
    assert totals["faults"] > 0
