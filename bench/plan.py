"""Plan 10,000 sources against the emulator and print where the time goes.

    .venv/bin/python bench/plan.py [--sources N] [--runs R]

The emulator runs in-process with no rate limit. Two accounts are planned: an adopted
one (every live source carries the marker an apply writes: what a plan on a pull request
sees; the headline) and an unadopted one (no marker: a first plan). For each, printed
side by side, in total and per desired source: the CPU time spent fetching and decoding
the list (client and in-process emulator, with the emulator's own listing share beside
it) and the planner's own CPU time, with its ratio to the decoding (goal: under 0.1x).
The best of `--runs` is kept for each figure. Figures only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import time
from collections.abc import Mapping

import httpx

from reconciler.client import ImgixClient
from reconciler.emulator import EMULATOR_API_KEY, RateLimits, SourceStore, create_app
from reconciler.emulator.listing import Page
from reconciler.live import LiveSource
from reconciler.marker import Marker
from reconciler.pacing import Pacing
from reconciler.planner import PlanOptions, plan
from reconciler.secrets import fingerprint
from reconciler.specs import DesiredState, SecretRef

KEY = b"bench"
SECRET = "bench-secret"


def desired_state(count: int) -> DesiredState:
    """`count` s3 sources; every tenth differs from the live state, every hundredth is new."""
    sources = []
    for n in range(count):
        sources.append(
            {
                "name": f"Source {n:05d}",
                "deployment": {
                    "type": "s3",
                    "s3_access_key": "AKIABENCH",
                    "s3_bucket": f"bucket-{n}",
                    "s3_secret_key": SecretRef("env", "S3_SECRET_KEY", SECRET),
                    "imgix_subdomains": [f"bench-{n}"],
                    "cache_ttl_value": 86400 if n % 10 == 0 else 31536000,
                },
            }
        )
    return DesiredState.model_validate({"version": 1, "sources": sources})


class TimedStore(SourceStore):
    """A store that adds up the CPU time of its listings, to tell the emulator's share apart."""

    listing_cpu = 0.0

    def list_sources(self, params: Mapping[str, str]) -> Page:
        started = time.process_time()
        try:
            return super().list_sources(params)
        finally:
            self.listing_cpu += time.process_time() - started


def seed(store: SourceStore, count: int, *, adopted: bool) -> None:
    """Every source but each hundredth, created through the store's API (as a POST would).

    `adopted`: each carries the marker an apply of the file writes (the secret's
    fingerprint under the bench's key), as on an account the tool manages.
    """
    marker = Marker({"s3_secret_key": fingerprint(KEY, "s3_secret_key", SECRET)}).render()
    for n in range(count):
        if n % 100 == 99:
            continue  # left for the plan to create
        deployment = {
            "type": "s3",
            "s3_access_key": "AKIABENCH",
            "s3_bucket": f"bucket-{n}",
            "s3_secret_key": SECRET,
            "imgix_subdomains": [f"bench-{n}"],
        }
        if adopted:
            deployment["annotation"] = marker
        store.create_source({"name": f"Source {n:05d}", "deployment": deployment})


async def fetch(store: SourceStore) -> list[LiveSource]:
    async def no_sleep(seconds: float) -> None:
        return None

    unlimited = Pacing(per_second=None, creates_per_hour=None, updates_per_hour=None)
    async with ImgixClient(
        api_key=EMULATOR_API_KEY,
        base_url="http://127.0.0.1",
        transport=httpx.ASGITransport(app=create_app(store)),
        pacing=unlimited,
        sleep=no_sleep,
    ) as client:
        return await client.list_sources()


def measure(count: int, *, adopted: bool, runs: int) -> list[float]:
    """Best CPU seconds of: fetch + decode, the emulator's listing share, the planner."""
    off = RateLimits(per_second=None, creates_per_hour=None, updates_per_hour=None)
    store = TimedStore(limits=off, deploy_delay=0)
    seed(store, count, adopted=adopted)
    best = [math.inf] * 3
    for _ in range(runs):
        store.listing_cpu = 0.0
        cpu = time.process_time()
        live = asyncio.run(fetch(store))
        fetch_cpu = time.process_time() - cpu

        # A new file each run: what a plan computes once per spec and keeps is counted.
        desired = desired_state(count)
        cpu = time.process_time()
        result = plan(desired, live, PlanOptions(fingerprint_key=KEY))
        plan_cpu = time.process_time() - cpu
        figures = (fetch_cpu, store.listing_cpu, plan_cpu)
        best = [min(b, f) for b, f in zip(best, figures, strict=True)]
    summary = ", ".join(f"{k} {v}" for k, v in result.summary.model_dump().items())
    adoption = result.adoption.count if result.adoption is not None else 0
    print(
        f"{'adopted' if adopted else 'unadopted'}: {len(live)} live; plan: {summary}; "
        f"{adoption} to adopt"
    )
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3, help="the best of this many")
    args = parser.parse_args()
    count = args.sources

    figures = {
        scenario: measure(count, adopted=scenario == "adopted", runs=args.runs)
        for scenario in ("adopted", "unadopted")
    }
    print(f"sources: {count} desired; CPU seconds, best of {args.runs}")
    print(
        f"{'':12}{'fetch + decode':>16}{'(emulator)':>12}{'planner':>10}{'per source':>12}"
        f"{'ratio':>8}  (goal < 0.1x)"
    )
    for scenario, (fetch_cpu, listing_cpu, plan_cpu) in figures.items():
        print(
            f"{scenario:12}{fetch_cpu:14.3f} s{listing_cpu:10.3f} s{plan_cpu:8.3f} s"
            f"{plan_cpu * 1e6 / count:9.1f} µs{plan_cpu / fetch_cpu:7.2f}x"
        )


if __name__ == "__main__":
    main()
