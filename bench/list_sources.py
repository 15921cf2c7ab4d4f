"""List N sources from the emulator over real HTTP under the documented 4 requests/s limit.

Prints the requests made against the floor ceil(N / page size) and the wall time
against the floor pages / 4 s. Run: `.venv/bin/python bench/list_sources.py --n 10000`.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import time

from reconciler.client import ImgixClient, Pacing
from reconciler.emulator import EMULATOR_API_KEY, RateLimits, SourceStore, running_emulator
from reconciler.emulator.store import STATE_VERSION

PER_SECOND = 4


def seeded(count: int, max_page_size: int) -> SourceStore:
    """A store holding `count` web folder sources, loaded through its state API."""
    store = SourceStore(
        limits=RateLimits(per_second=PER_SECOND, creates_per_hour=None, updates_per_hour=None),
        max_page_size=max_page_size,
    )
    sources = [
        {
            "id": f"{n:024x}",
            "name": f"Bench source {n}",
            "deployment": {
                "type": "webfolder",
                "imgix_subdomains": [f"bench-{n}"],
                "webfolder_base_url": f"https://origin.example/{n}/",
                "annotation": "seeded by bench/list_sources.py",
            },
        }
        for n in range(count)
    ]
    store.load_json({"version": STATE_VERSION, "sources": sources})
    return store


async def list_all(url: str) -> int:
    pacing = Pacing(per_second=PER_SECOND, creates_per_hour=None, updates_per_hour=None)
    async with ImgixClient(api_key=EMULATOR_API_KEY, base_url=url, pacing=pacing) as client:
        return len(await client.list_sources())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="sources to list (10000)")
    parser.add_argument(
        "--max-page-size", type=int, default=100, help="the server's page size cap (100)"
    )
    args = parser.parse_args()

    store = seeded(args.n, args.max_page_size)
    page_size = min(100, args.max_page_size)
    pages = max(1, math.ceil(args.n / page_size))
    with running_emulator(store) as url:
        started = time.perf_counter()
        listed = asyncio.run(list_all(url))
        wall = time.perf_counter() - started

    statuses = [entry.status for entry in store.request_log]
    print(f"sources: {args.n} seeded, {listed} listed (each once: {listed == args.n})")
    print(f"requests: {len(statuses)} made, floor ceil({args.n}/{page_size}) = {pages}")
    print(f"responses: {statuses.count(200)} ok, {statuses.count(429)} rate-limited (429)")
    print(
        f"wall time: {wall:.2f} s, floor {pages}/{PER_SECOND} = {pages / PER_SECOND:.2f} s "
        f"(the sliding window lets {PER_SECOND} go at once, so the last request may start "
        f"at {(pages - 1) // PER_SECOND} s)"
    )


if __name__ == "__main__":
    main()
