"""`plan` of N managed sources against the emulator at the documented pace, over the read floor.

    .venv/bin/python bench/plan_wall.py [--sources 2000 10000] [--latency 0.05]

The emulator serves over real HTTP on 127.0.0.1 in this process, at 4 requests/s with
`--latency` seconds added to every answer; the CLI runs as its own process
(`imgix-reconciler plan FILE --api-url URL`), so start-up, loading and planning all
count. The read floor of N sources is ceil(N / 100) / 4 s: the pages alone at the pace.
Printed per N: the wall time beside the floor (goal: at most 1.1x), when the first
request arrived after the start, when the command ended after the last answer, the
429s (floor 0) and the requests beside the pages.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from tempfile import TemporaryDirectory

from webfolder_account import seed, sources_yaml

from reconciler.emulator import EMULATOR_API_KEY, Faults, RateLimits, SourceStore, running_emulator
from reconciler.emulator.listing import Page

PER_SECOND = 4
PAGE_SIZE = 100


class TimedStore(SourceStore):
    """A store that notes when each listing request arrives and is answered."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.listed: list[tuple[float, float]] = []

    def list_sources(self, params: Mapping[str, str]) -> Page:
        arrived = time.monotonic()
        try:
            return super().list_sources(params)
        finally:
            self.listed.append((arrived, time.monotonic()))


def seeded(count: int, latency: float) -> TimedStore:
    store = TimedStore(
        limits=RateLimits(per_second=PER_SECOND, creates_per_hour=None, updates_per_hour=None),
        faults=Faults(latency=latency),
    )
    return seed(store, range(count))


def run(count: int, latency: float) -> None:
    store = seeded(count, latency)
    floor = math.ceil(count / PAGE_SIZE) / PER_SECOND
    with TemporaryDirectory() as directory, running_emulator(store) as url:
        file = Path(directory) / "sources.yaml"
        file.write_text(sources_yaml(range(count)), encoding="utf-8")
        environ = {**os.environ, "IMGIX_API_KEY": EMULATOR_API_KEY}
        command = [sys.executable, "-m", "reconciler", "plan", str(file), "--api-url", url]
        started = time.monotonic()
        done = subprocess.run(command, env=environ, capture_output=True, text=True)
        ended = time.monotonic()
    if done.returncode not in (0, 2):
        sys.exit(f"plan failed ({done.returncode}): {done.stderr[-2000:]}")
    wall = ended - started
    statuses = [entry.status for entry in store.request_log]
    pages = math.ceil(count / PAGE_SIZE)
    first, last = store.listed[0][0] - started, ended - store.listed[-1][1]
    print(f"N = {count}: plan {wall:.2f} s, read floor {floor:.2f} s: {wall / floor:.2f}x")
    print(f"  (goal: at most 1.1x) first request {first:.2f} s after the start,")
    print(f"  the command ended {last:.2f} s after the last answer")
    rate_limited = statuses.count(429)
    print(f"  requests: {len(statuses)} for {pages} pages, {rate_limited} rate-limited (floor 0)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", type=int, nargs="+", default=[2_000, 10_000])
    parser.add_argument("--latency", type=float, default=0.05, help="seconds added per answer")
    args = parser.parse_args()
    for count in args.sources:
        run(count, args.latency)


if __name__ == "__main__":
    main()
