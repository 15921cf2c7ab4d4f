"""Peak memory of a plan of N sources in ten files (goal: under 1 GiB at 100,000).

    .venv/bin/python bench/memory.py [--sources 100000] [--files 10]

The emulator serves the live sources over real HTTP from this process (no rate limit,
so the run takes minutes, not the hours of the real pace); a child process loads the
files, lists, plans and renders the plan as text, like `plan`, and its peak resident
set is printed beside the 1 GiB goal and beside the size of the files it read.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import subprocess
import sys
import time
from pathlib import Path
from tempfile import TemporaryDirectory

from webfolder_account import seed, sources_yaml

from reconciler.emulator import EMULATOR_API_KEY, RateLimits, SourceStore, running_emulator

GIB = 1024**3


def seeded(count: int) -> SourceStore:
    unlimited = RateLimits(per_second=None, creates_per_hour=None, updates_per_hour=None)
    # Every hundredth is left for the plan to create.
    return seed(SourceStore(limits=unlimited), (n for n in range(count) if n % 100 != 99))


def child(url: str, files: list[str]) -> None:
    """Plan like the CLI, without its pace: print the peak RSS in bytes."""
    from reconciler.pacing import Pacing
    from reconciler.reconcile import Connection, plan_files
    from reconciler.render import render

    unlimited = Pacing(per_second=None, creates_per_hour=None, updates_per_hour=None)
    connection = Connection(url, EMULATOR_API_KEY, pacing=unlimited)
    made = asyncio.run(plan_files([Path(f) for f in files], connection, environ={}))
    text = render(made.plan, "text")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    summary = made.plan.summary
    print(f"{peak} {len(text)} {summary.create} {summary.patch} {summary.unchanged}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", type=int, default=100_000)
    parser.add_argument("--files", type=int, default=10)
    parser.add_argument("--child", nargs="+", metavar="URL FILE", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1:])
        return
    store = seeded(args.sources)
    per_file = -(-args.sources // args.files)
    with TemporaryDirectory() as directory, running_emulator(store) as url:
        files = []
        for index in range(args.files):
            numbers = range(index * per_file, min(args.sources, (index + 1) * per_file))
            file = Path(directory) / f"sources-{index}.yaml"
            file.write_text(sources_yaml(numbers), encoding="utf-8")
            files.append(str(file))
        size = sum(Path(f).stat().st_size for f in files)
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, __file__, "--child", url, *files],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            sys.exit(f"the plan failed: {done.stderr[-2000:]}")
        taken = time.perf_counter() - started
    peak, rendered, create, patch, unchanged = map(int, done.stdout.split())
    print(f"sources: {args.sources} in {args.files} files ({size / 2**20:.0f} MiB of YAML)")
    print(f"plan: create {create}, patch {patch}, unchanged {unchanged}; text {rendered} chars")
    print(
        f"peak RSS: {peak / 2**20:.0f} MiB, goal under {GIB / 2**20:.0f} MiB ({peak / GIB:.2f} GiB)"
    )
    print(f"(wall {taken:.0f} s without the API's pace)")


if __name__ == "__main__":
    main()
