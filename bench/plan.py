"""Plan 10,000 sources against the emulator and print where the time goes.

    .venv/bin/python bench/plan.py [--sources N] [--runs R] [--differ PERCENT]
                                   [--distinct-secrets] [--steps]

The emulator runs in-process with no rate limit. Two accounts are planned: an adopted
one (every live source carries the marker an apply writes: what a plan on a pull request
sees; the headline) and an unadopted one (no marker: a first plan). For each, printed
side by side, in total and per desired source: the CPU time the client spends fetching
and decoding the list (the emulator's answers recorded once and replayed byte for byte,
so that none of the server's work is counted: a real API does it elsewhere), the same
fetch from the emulator itself (its own work included, as this bench counted it before
stop 25), and the planner's own CPU time, with its ratio to the client's decoding (goal:
under 0.1x).
The best of `--runs` is kept for each figure. Figures only; nothing is asserted.
`--differ` is the share of sources that differ from the live state (default 10; one in
a hundred more is new); both accounts are also planned with nothing differing and
nothing new, the steady state of a scheduled `drift`. Every source shares one secret
value unless `--distinct-secrets` gives each its own (each bucket with its own key): then
no two markers are alike, and each secret's fingerprint is computed once per source.
`--steps` also times each step of the adopted account's plan alone (the planner's own
functions, so it follows them), prints what one differing source costs in all (its patch,
and its action's share of the digest and the ordering) and what is left of the whole plan;
then the same for the adopted account with nothing differing (the steady state): its
hostname check, matching, the bulk in-sync pass (with the outcomes it gives the plan) and
the rest; and a bare comparison (`bare_comparison`: the least any comparison of one
Python object per source does), with its ratio to the client's decoding: the floor of
this design against the goal, both on the step table's reused listing and on a listing
fetched in its run as the headline's planner gets it.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import time
from collections.abc import Callable, Mapping
from itertools import repeat
from operator import attrgetter, eq, itemgetter
from typing import Any

import httpx
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from reconciler import collector
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


def _every(percent: float) -> int:
    """One source in this many differs (0: none)."""
    return round(100 / percent) if percent else 0


def secret(n: int, distinct: bool) -> str:
    """The secret value of source `n`."""
    return f"{SECRET}-{n}" if distinct else SECRET


def desired_state(count: int, differ: float = 10, distinct: bool = False) -> DesiredState:
    """`count` s3 sources; `differ` percent differ from the live state (every tenth by
    default); every hundredth is new unless `differ` is 0."""
    every = _every(differ)
    sources = []
    for n in range(count):
        sources.append(
            {
                "name": f"Source {n:05d}",
                "deployment": {
                    "type": "s3",
                    "s3_access_key": "AKIABENCH",
                    "s3_bucket": f"bucket-{n}",
                    "s3_secret_key": SecretRef("env", "S3_SECRET_KEY", secret(n, distinct)),
                    "imgix_subdomains": [f"bench-{n}"],
                    "cache_ttl_value": 86400 if every and n % every == 0 else 31536000,
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


def seed(
    store: SourceStore, count: int, *, adopted: bool, new: bool = True, distinct: bool = False
) -> None:
    """Every source but each hundredth (`new`: left to create), created through the
    store's API (as a POST would).

    `adopted`: each carries the marker an apply of the file writes (the secret's
    fingerprint under the bench's key), as on an account the tool manages.
    """
    for n in range(count):
        if new and n % 100 == 99:
            continue  # left for the plan to create
        deployment = {
            "type": "s3",
            "s3_access_key": "AKIABENCH",
            "s3_bucket": f"bucket-{n}",
            "s3_secret_key": secret(n, distinct),
            "imgix_subdomains": [f"bench-{n}"],
        }
        if adopted:
            value = secret(n, distinct)
            marker = Marker({"s3_secret_key": fingerprint(KEY, "s3_secret_key", value)})
            deployment["annotation"] = marker.render()
        store.create_source({"name": f"Source {n:05d}", "deployment": deployment})


class Replay:
    """An ASGI app that answers as the emulator `app` did, from a recording: each request's
    answer is recorded the first time and replayed byte for byte after."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.recorded: dict[tuple[str, bytes], tuple[int, list[Any], bytes]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        key = (scope["path"], scope["query_string"])
        if key not in self.recorded:
            answer: dict[str, Any] = {"body": b""}

            async def record(message: Message) -> None:
                if message["type"] == "http.response.start":
                    answer["status"], answer["headers"] = message["status"], message["headers"]
                else:
                    answer["body"] += message.get("body", b"")

            await self.app(scope, receive, record)
            self.recorded[key] = (answer["status"], answer["headers"], answer["body"])
        status, headers, body = self.recorded[key]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


async def fetch(source: SourceStore | ASGIApp) -> list[LiveSource]:
    """The list as the client reads it, from a store's emulator or from an ASGI app."""

    async def no_sleep(seconds: float) -> None:
        return None

    app = create_app(source) if isinstance(source, SourceStore) else source
    unlimited = Pacing(per_second=None, creates_per_hour=None, updates_per_hour=None)
    async with ImgixClient(
        api_key=EMULATOR_API_KEY,
        base_url="http://127.0.0.1",
        transport=httpx.ASGITransport(app=app),
        pacing=unlimited,
        sleep=no_sleep,
    ) as client:
        return await client.list_sources()


def measure(
    count: int,
    *,
    adopted: bool,
    runs: int,
    differ: float,
    distinct: bool = False,
    floor: bool = False,
) -> list[float]:
    """Best CPU seconds of: the client's fetch + decode, the same with the emulator's work,
    the emulator's listing share, the planner; and with `floor`, the bare comparison on a
    listing fetched and a file validated the same way (the design's floor in the
    headline's conditions)."""
    off = RateLimits(per_second=None, creates_per_hour=None, updates_per_hour=None)
    store = TimedStore(limits=off, deploy_delay=0)
    seed(store, count, adopted=adopted, new=differ > 0, distinct=distinct)
    replay = Replay(create_app(store))
    asyncio.run(fetch(replay))  # recorded
    best = [math.inf] * 5
    for _ in range(runs):
        cpu = time.process_time()
        live = asyncio.run(fetch(replay))
        decode_cpu = time.process_time() - cpu
        del live
        store.listing_cpu = 0.0
        cpu = time.process_time()
        live = asyncio.run(fetch(store))
        fetch_cpu = time.process_time() - cpu

        # A new file each run: what a plan computes once per spec and keeps is counted.
        desired = desired_state(count, differ, distinct)
        cpu = time.process_time()
        result = plan(desired, live, PlanOptions(fingerprint_key=KEY))
        plan_cpu = time.process_time() - cpu
        floor_cpu = math.inf
        if floor:
            # Its own listing and file, allocated as the plan's were: whichever of the two
            # ran first on shared objects would pay the first reading of them for both.
            del live, desired
            live = asyncio.run(fetch(store))
            compare = bare_comparison(desired_state(count, differ, distinct), live)
            with collector.paused():  # as the planner runs
                cpu = time.process_time()
                compare()
                floor_cpu = time.process_time() - cpu
        figures = (decode_cpu, fetch_cpu, store.listing_cpu, plan_cpu, floor_cpu)
        best = [min(b, f) for b, f in zip(best, figures, strict=True)]
    summary = ", ".join(f"{k} {v}" for k, v in result.summary.model_dump().items())
    adoption = result.adoption.count if result.adoption is not None else 0
    print(
        f"{'adopted' if adopted else 'unadopted'}, {differ:g}% differ: {len(live)} live; "
        f"plan: {summary}; "
        f"{adoption} to adopt"
    )
    return best


def steps(count: int, runs: int) -> float:
    """The adopted account's plan, step by step: best CPU milliseconds of each, alone."""
    from reconciler import planner
    from reconciler.plan import compute_digest
    from reconciler.planning import in_sync as bulk
    from reconciler.planning import matching, ordering

    off = RateLimits(per_second=None, creates_per_hour=None, updates_per_hour=None)
    store = SourceStore(limits=off, deploy_delay=0)
    seed(store, count, adopted=True)
    live = asyncio.run(fetch(store))
    options = PlanOptions(fingerprint_key=KEY)
    desired = desired_state(count)
    found = matching.matching_of(desired.sources, live)
    matched = [m for m in found.matches if m.live is not None]
    first = planner.Planner(desired, options)
    outcomes = [first._outcome(m.spec, m.live) for m in matched]  # type: ignore[arg-type]
    in_sync = [m for m, o in zip(matched, outcomes, strict=True) if o and o.action is None]
    differing = [m for m, o in zip(matched, outcomes, strict=True) if o and o.action]
    new = [m for m in found.matches if m.live is None]
    actions = [(m, o.action) for m, o in zip(matched, outcomes, strict=True) if o and o.action]
    actions += [(m, planner._create(m.spec, options, None)) for m in new]
    result = plan(desired, live, options)

    def best(step: Callable[[], object]) -> float:
        times = []
        for _ in range(runs):
            with collector.paused():  # as the planner runs
                cpu = time.process_time()
                step()
                times.append(time.process_time() - cpu)
        return min(times) * 1000

    def in_bulk(matches: list[planner.Match]) -> Callable[[], object]:
        def run() -> object:
            # No verdict nor fingerprint remembered, as in a new plan.
            return bulk.quiet_in_bulk(matches, options, None, {}, {})

        return run

    def outcomes_of(matches: list[planner.Match]) -> Callable[[], object]:
        def run() -> object:
            fresh = planner.Planner(desired, options)  # no fingerprint remembered
            # As the plan does: the bulk pass found their attributes differing.
            return [fresh._outcome(m.spec, m.live, None, True) for m in matches]  # type: ignore[arg-type]

        return run

    def fresh_plan() -> float:
        wanted = desired_state(count)
        cpu = time.process_time()
        plan(wanted, live, options)
        return (time.process_time() - cpu) * 1000

    def order() -> object:
        return ordering.order(ordering.with_dependencies(actions, found, set()))

    total = min(fresh_plan() for _ in range(runs))
    # Each step: its CPU milliseconds, and how many things it handles.
    parts = {
        "in sync (bulk)": (best(in_bulk(in_sync)), len(in_sync)),
        "differing (bulk)": (best(in_bulk(differing)), len(differing)),
        "patches": (best(outcomes_of(differing)), len(differing)),
        "creates": (best(lambda: [planner._create(m.spec, options, None) for m in new]), len(new)),
        "matching": (best(lambda: matching.matching_of(desired.sources, live)), count),
        "digest (actions)": (best(lambda: compute_digest(result.actions)), len(result.actions)),
        "ordering (actions)": (best(order), len(actions)),
        "hostnames unique": (best(lambda: matching.check_unique_hostnames(desired)), count),
    }
    print(f"adopted plan, step by step (CPU, best of {runs}; each step alone):")
    for name, (figure, number) in parts.items():
        one = figure * 1000 / max(number, 1)
        print(f"  {name:20}{figure:8.1f} ms{number:7} x{one:6.2f} µs")
    # What one differing source costs in all: its patch, and its action's share of the
    # digest and of the ordering (both averaged over every action, creates included).
    each = {name: figure * 1000 / max(number, 1) for name, (figure, number) in parts.items()}
    differing_source = each["patches"] + each["digest (actions)"] + each["ordering (actions)"]
    print(f"  {'a differing source':20}{differing_source:8.2f} µs (patch + digest + ordering)")
    rest = total - sum(figure for figure, _ in parts.values())
    print(f"  {'the rest':20}{rest:8.1f} ms  (the loop over matches, summary, plan model)")
    print(f"  {'whole plan':20}{total:8.1f} ms")
    return steady(count, runs, best)


def bare_comparison(desired: DesiredState, live: list[LiveSource]) -> Callable[[], object]:
    """The least any comparison of one Python object per source can do, as the planner's
    bulk pass does it: match by first subdomain, read the managed attributes as one tuple
    per side, names and `enabled` as columns, and the annotations; in blocks of 256, in C.
    No types, secrets, verdicts or plan: a floor for this design, not a planner."""
    from reconciler.specs import managed_view

    specs = desired.sources
    view = managed_view(specs[0].deployment)  # one type and view, as the bench's file has
    deployment, name, enabled = attrgetter("deployment"), attrgetter("name"), attrgetter("enabled")
    subdomains, first = attrgetter("imgix_subdomains"), itemgetter(0)

    def compare() -> object:
        listed = list(map(deployment, live))
        hosts = map(first, map(itemgetter("imgix_subdomains"), listed))
        holders = dict(zip(hosts, live, strict=True))
        found = list(map(holders.get, map(first, map(subdomains, map(deployment, specs)))))
        verdicts = []
        for start in range(0, len(specs), 256):
            wanted, have = specs[start : start + 256], found[start : start + 256]
            deployments = list(map(deployment, have))
            alike = list(
                map(
                    eq,
                    map(view.from_api, deployments),
                    map(view.from_fields, map(vars, map(deployment, wanted))),
                )
            )
            named = list(map(name, wanted)) == list(map(name, have))
            both = list(map(enabled, wanted)) == list(map(enabled, have))
            texts = list(map(dict.get, deployments, repeat("annotation")))
            verdicts.append((alike, named, both, texts))
        return verdicts

    return compare


def steady(count: int, runs: int, best: Callable[[Callable[[], object]], float]) -> float:
    """The adopted account with nothing differing (a scheduled `drift`), step by step;
    returns the bare comparison's CPU seconds."""
    from reconciler import planner
    from reconciler.planning import matching

    off = RateLimits(per_second=None, creates_per_hour=None, updates_per_hour=None)
    store = SourceStore(limits=off, deploy_delay=0)
    seed(store, count, adopted=True, new=False)
    live = asyncio.run(fetch(store))
    options = PlanOptions(fingerprint_key=KEY)
    desired = desired_state(count, differ=0)
    matches = matching.matching_of(desired.sources, live).matches

    def in_bulk() -> object:
        # A new planner: no verdict nor fingerprint remembered, as in a new plan.
        return planner.Planner(desired, options)._outcomes_in_bulk(matches)

    def fresh_plan() -> float:
        wanted = desired_state(count, differ=0)  # a new file: nothing computed per spec kept
        with collector.paused():
            cpu = time.process_time()
            plan(wanted, live, options)
            return (time.process_time() - cpu) * 1000

    total = min(fresh_plan() for _ in range(runs))
    parts = {
        "hostnames unique": best(lambda: matching.check_unique_hostnames(desired)),
        "matching": best(lambda: matching.matching_of(desired.sources, live)),
        "in sync (bulk)": best(in_bulk),
    }
    floor = best(bare_comparison(desired, live))
    print(f"steady state, adopted, nothing differing (CPU, best of {runs}; each step alone):")
    for name, figure in parts.items():
        print(f"  {name:20}{figure:8.1f} ms{count:7} x{figure * 1000 / count:6.2f} µs")
    rest = total - sum(parts.values())
    print(f"  {'the rest':20}{rest:8.1f} ms  (the loop over matches, summary, plan model)")
    print(f"  {'whole plan':20}{total:8.1f} ms{count:7} x{total * 1000 / count:6.2f} µs")
    print(f"  {'bare comparison':20}{floor:8.1f} ms{count:7} x{floor * 1000 / count:6.2f} µs")
    return floor / 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3, help="the best of this many")
    parser.add_argument("--steps", action="store_true", help="also time each step")
    parser.add_argument(
        "--differ", type=float, default=10, help="percent of sources that differ (default 10)"
    )
    parser.add_argument(
        "--distinct-secrets", action="store_true", help="a secret value of its own per source"
    )
    args = parser.parse_args()
    count = args.sources

    figures = {
        f"{scenario}, {differ:g}%": measure(
            count,
            adopted=scenario == "adopted",
            runs=args.runs,
            differ=differ,
            distinct=args.distinct_secrets,
            floor=args.steps and scenario == "adopted" and differ == 0,
        )
        for differ in dict.fromkeys((args.differ, 0))
        for scenario in ("adopted", "unadopted")
    }
    print(f"sources: {count} desired; CPU seconds, best of {args.runs}")
    print(
        f"{'':16}{'client decode':>15}{'with emulator':>15}{'(listing)':>11}{'planner':>10}"
        f"{'per source':>12}{'ratio':>8}  (goal < 0.1x; the old ratio, to the fetch with "
        "the emulator, beside it)"
    )
    for scenario, (decode_cpu, fetch_cpu, listing_cpu, plan_cpu, _) in figures.items():
        print(
            f"{scenario:16}{decode_cpu:13.3f} s{fetch_cpu:13.3f} s{listing_cpu:9.3f} s"
            f"{plan_cpu:8.3f} s{plan_cpu * 1e6 / count:9.1f} µs{plan_cpu / decode_cpu:7.2f}x"
            f"  ({plan_cpu / fetch_cpu:.2f}x)"
        )
    if args.steps:
        floor = steps(count, args.runs)
        decode_cpu, *_, fresh_floor = figures["adopted, 0%"]
        print(
            f"the bare comparison alone (one object per source, the floor of this design) is "
            f"{floor / decode_cpu:.2f}x of the client's decoding (goal for the whole planner: "
            "< 0.1x)"
        )
        # The step table reuses one listing; the headline plans one fetched in its run,
        # whose objects are first read by the planner itself (and lie among the freed
        # ones of the fetch before): the floor measured the headline's way.
        print(
            f"the same on a listing fetched in its run, as the headline's planner: "
            f"{fresh_floor:.3f} s, {fresh_floor / decode_cpu:.2f}x of the client's decoding"
        )


if __name__ == "__main__":
    main()
