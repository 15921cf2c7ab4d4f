"""Plan 10,000 sources against the emulator and print where the time goes.

    .venv/bin/python bench/plan.py [--sources N]

The emulator runs in-process with no rate limit. Printed side by side, in total and per
desired source: the CPU time spent fetching and decoding the list (client and in-process
emulator, with the emulator's own listing share beside it) and the planner's own CPU
time. Figures only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Mapping

import httpx

from reconciler.client import ImgixClient
from reconciler.emulator import EMULATOR_API_KEY, RateLimits, SourceStore, create_app
from reconciler.emulator.listing import Page
from reconciler.live import LiveSource
from reconciler.pacing import Pacing
from reconciler.planner import PlanOptions, plan
from reconciler.specs import DesiredState, SecretRef


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
                    "s3_secret_key": SecretRef("env", "S3_SECRET_KEY", "bench-secret"),
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


def seed(store: SourceStore, count: int) -> None:
    """Every source but each hundredth, created through the store's API (as a POST would)."""
    for n in range(count):
        if n % 100 == 99:
            continue  # left for the plan to create
        store.create_source(
            {
                "name": f"Source {n:05d}",
                "deployment": {
                    "type": "s3",
                    "s3_access_key": "AKIABENCH",
                    "s3_bucket": f"bucket-{n}",
                    "s3_secret_key": "bench-secret",
                    "imgix_subdomains": [f"bench-{n}"],
                },
            }
        )


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", type=int, default=10_000)
    count = parser.parse_args().sources

    off = RateLimits(per_second=None, creates_per_hour=None, updates_per_hour=None)
    store = TimedStore(limits=off, deploy_delay=0)
    started = time.perf_counter()
    seed(store, count)
    seeding = time.perf_counter() - started
    desired = desired_state(count)

    wall, cpu = time.perf_counter(), time.process_time()
    live = asyncio.run(fetch(store))
    fetch_wall, fetch_cpu = time.perf_counter() - wall, time.process_time() - cpu

    cpu = time.process_time()
    result = plan(desired, live, PlanOptions(fingerprint_key=b"bench"))
    plan_cpu = time.process_time() - cpu

    summary = ", ".join(f"{k} {v}" for k, v in result.summary.model_dump().items())
    print(f"sources: {count} desired, {len(live)} live (seeded in {seeding:.2f} s, not counted)")
    print(f"plan: {summary}")
    print(f"{'':32}{'CPU total':>10}  {'CPU per source':>15}")
    rows = [
        ("fetch + decode list", fetch_cpu),
        ("  of which emulator listing", store.listing_cpu),
        ("planner", plan_cpu),
    ]
    for label, seconds in rows:
        print(f"{label:32}{seconds:8.3f} s  {seconds * 1e6 / count:10.1f} µs")
    print(f"(fetch + decode wall time: {fetch_wall:.3f} s)")


if __name__ == "__main__":
    main()
