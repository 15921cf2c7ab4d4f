"""Rendering a large plan is linear: render N and N x factor actions, print the time ratio.

    .venv/bin/python bench/render.py [--actions 1000] [--factor 10] [--runs 3]

Plans are made by the planner from plain values (no API): every source differs from the
live one by three attributes and every tenth one is new. Each format is rendered `--runs`
times at both sizes; the best times and their ratio are printed beside 10.0, the ratio
of a linear renderer (a quadratic one shows about 100). A small plan's JSON fits in the
CPU's caches and a large one's does not, which alone shows about 20 from 1,000 to
10,000 actions and about 1.3 from 10,000 to 20,000 (`--actions 10000 --factor 2`).
Markdown stops at GitHub's comment size, so its ratio stays near 2. Figures only.
"""

from __future__ import annotations

import argparse
import time

from reconciler.live import LiveSource
from reconciler.plan import Plan
from reconciler.planner import PlanOptions, plan
from reconciler.render import FORMATS, render
from reconciler.specs import DesiredState


def made_plan(count: int) -> Plan:
    """A plan of `count` actions: 90% patches, 10% creates."""
    sources, live = [], []
    for n in range(count):
        sources.append(
            {
                "name": f"Source {n:06d}",
                "deployment": {
                    "type": "webfolder",
                    "imgix_subdomains": [f"bench-{n}"],
                    "webfolder_base_url": f"https://origin.example/{n}/",
                    "cache_ttl_value": 86400,
                    "default_params": {"auto": "format", "q": 75},
                },
            }
        )
        if n % 10 == 9:
            continue  # created by the plan
        live.append(
            LiveSource.model_validate(
                {
                    "id": f"{n:024x}",
                    "name": f"Source {n:06d}",
                    "deployment": {
                        "type": "webfolder",
                        "imgix_subdomains": [f"bench-{n}"],
                        "webfolder_base_url": f"https://origin.example/{n}/old/",
                        "cache_ttl_value": 31536000,
                        "default_params": {},
                    },
                }
            )
        )
    desired = DesiredState.model_validate({"version": 1, "sources": sources})
    return plan(desired, live, PlanOptions(fingerprint_key=b"bench"))


def best_time(made: Plan, fmt: str, runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        render(made, fmt)
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--actions", type=int, default=1000)
    parser.add_argument("--factor", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    small, large = made_plan(args.actions), made_plan(args.actions * args.factor)
    print(f"plans: {len(small.actions)} and {len(large.actions)} actions")
    print(f"{'format':10}{'small':>10}{'large':>10}{'ratio':>8}  (linear: {args.factor:.1f})")
    for fmt in FORMATS:
        a, b = best_time(small, fmt, args.runs), best_time(large, fmt, args.runs)
        print(f"{fmt:10}{a:9.3f}s{b:9.3f}s{b / a:8.1f}")


if __name__ == "__main__":
    main()
