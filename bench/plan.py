"""Plan 10,000 sources against the emulator and print where the time goes.

    .venv/bin/python bench/plan.py [--sources N]

The emulator runs in-process with no rate limit. Printed side by side: the time spent
fetching and decoding the list (client + emulator) and the planner's own CPU time, each
per source. Figures only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import httpx

from reconciler.client import ImgixClient
from reconciler.emulator import EMULATOR_API_KEY, RateLimits, SourceStore, create_app
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


def seed(store: SourceStore, count: int) -> None:
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
    store = SourceStore(limits=off, deploy_delay=0)
    seed(store, count)
    desired = desired_state(count)

    wall, cpu = time.perf_counter(), time.process_time()
    live = asyncio.run(fetch(store))
    fetch_wall, fetch_cpu = time.perf_counter() - wall, time.process_time() - cpu

    cpu = time.process_time()
    result = plan(desired, live, PlanOptions(fingerprint_key=b"bench"))
    plan_cpu = time.process_time() - cpu

    per = 1e6 / count
    print(f"sources: {count}  live: {len(live)}  summary: {result.summary.model_dump()}")
    print(f"fetch + decode list: {fetch_wall:8.3f} s wall, {fetch_cpu * per:8.1f} µs CPU/source")
    print(f"planner:             {plan_cpu:8.3f} s CPU,  {plan_cpu * per:8.1f} µs CPU/source")


if __name__ == "__main__":
    main()
