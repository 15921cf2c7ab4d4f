"""Apply N changes over real HTTP to the emulator at the documented limits, on a scaled clock.

Both sides (the client's pacer and the emulator's rate limits) run on one clock that
goes `--scale` times faster than real time, so hours of write budget pass in seconds.
Prints the 429s met (floor 0), and the time the apply took on the scaled clock against
the plan's stated cost (the budget's floor; within 10% is the goal), and the progress
lines. Run: `.venv/bin/python bench/apply_pace.py --changes 150`. `--reread-every` makes
every patch read its source again before it is sent (the applier does so only for a patch
starting over a minute after the listing), to see what that read costs.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import time
from pathlib import Path
from tempfile import TemporaryDirectory

from reconciler.emulator import EMULATOR_API_KEY, RateLimits, SourceStore, running_emulator
from reconciler.emulator.store import STATE_VERSION
from reconciler.pacing import Pacing
from reconciler.progress import ApplyProgress
from reconciler.reconcile import Connection, apply_with_report, plan_files


class ScaledClock:
    """Real time, `scale` times faster: a clock and a sleep for both sides."""

    def __init__(self, scale: float) -> None:
        self.scale = scale
        self._real_start = time.monotonic()
        self.start = 1_700_000_000.0

    def __call__(self) -> float:
        return self.start + (time.monotonic() - self._real_start) * self.scale

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / self.scale)


def sources_yaml(count: int, ttl: int) -> str:
    blocks = [
        f"""\
  - name: Bench {n}
    deployment:
      type: webfolder
      imgix_subdomains: [bench-{n}]
      webfolder_base_url: https://origin.example/{n}/
      cache_ttl_value: {ttl}
"""
        for n in range(count)
    ]
    return "version: 1\nsources:\n" + "".join(blocks)


def seeded(count: int, clock: ScaledClock) -> SourceStore:
    store = SourceStore(clock=clock, deploy_delay=0)
    store.load_json(
        {
            "version": STATE_VERSION,
            "sources": [
                {
                    "name": f"Bench {n}",
                    "deployment": {
                        "type": "webfolder",
                        "imgix_subdomains": [f"bench-{n}"],
                        "webfolder_base_url": f"https://origin.example/{n}/",
                        "cache_ttl_value": 3600,
                    },
                }
                for n in range(count)
            ],
        }
    )
    store.limits = RateLimits()  # the documented limits: 4/s, 60 creates/h, 60 updates/h
    return store


async def apply(file: Path, connection: Connection, out: io.StringIO) -> tuple[int, bool]:
    made = await plan_files([file], connection, secrets_optional=False, environ={})
    progress = ApplyProgress(len(made.plan.actions), clock=connection.clock, stream=out)
    report = await apply_with_report(made.plan, connection, environ={}, progress=progress)
    assert made.plan.cost is not None
    return made.plan.cost.seconds, report.ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=150, help="sources to change (150)")
    parser.add_argument("--scale", type=float, default=200.0, help="clock speed-up (200)")
    parser.add_argument("--quiet", action="store_true", help="do not print progress lines")
    parser.add_argument("--reread-every", action="store_true", help="re-read before every patch")
    args = parser.parse_args()
    if args.reread_every:
        from reconciler import applier

        assert applier.apply_plan.__kwdefaults__ is not None
        applier.apply_plan.__kwdefaults__["reread_after"] = 0.0

    clock = ScaledClock(args.scale)
    store = seeded(args.changes, clock)
    out = io.StringIO()
    with TemporaryDirectory() as directory, running_emulator(store) as url:
        file = Path(directory) / "sources.yaml"
        file.write_text(sources_yaml(args.changes, ttl=7200), encoding="utf-8")
        connection = Connection(
            url, EMULATOR_API_KEY, pacing=Pacing(), clock=clock, sleep=clock.sleep
        )
        started = clock()
        real = time.perf_counter()
        cost, ok = asyncio.run(apply(file, connection, out))
        taken = clock() - started
        real = time.perf_counter() - real

    statuses = [entry.status for entry in store.request_log]
    if not args.quiet:
        print(out.getvalue(), end="")
    print(f"changes: {args.changes}, all applied: {ok}")
    print(f"responses: {statuses.count(200)} ok, {statuses.count(429)} rate-limited (floor 0)")
    print(
        f"scaled time: {taken:.0f} s, floor (the plan's cost) {cost} s, "
        f"{(taken - cost) / cost:+.1%} (goal: within 10%); real time {real:.1f} s "
        f"at x{args.scale:g}"
    )


if __name__ == "__main__":
    main()
