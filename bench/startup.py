"""CLI start-up of each command against the bare import of the dependencies it needs.

    .venv/bin/python bench/startup.py [--runs 7] [--instructions]

The baseline of a command is derived, not chosen: the command first runs once in a
probe process that records every third-party module (one from site-packages, not ours)
it ended up importing, in import order, and every module it kept out (`sys.modules[name]
= None`, as the CLI does for httpx's own command line). The baseline is then a fresh
interpreter importing exactly those modules, keeping out the same ones, and nothing of
ours. So the ratio is what the tool itself adds: its own modules, the standard library
modules only it imports, building its models, and the work of the command. The CLI
freezes its objects out of the cycle collector before exiting, which spares the
interpreter's last collection a walk over all of them, the dependencies' included; the
baseline ends the same way (`gc.freeze()`), so that saving counts on both sides.

Both sides run with bytecode, as an installed package has it: the environment may say
PYTHONDONTWRITEBYTECODE (our modules would then be compiled from source at every run,
site-packages never are), so the bench lets Python write the bytecode to a temporary
PYTHONPYCACHEPREFIX and runs each command once before timing it. Each figure is the
best of `--runs` fresh processes, in CPU time (user + system of the child) and wall
time, the CLI and its baseline taking turns. Goal: at most 1.3x (the CPU ratio).

`--instructions` counts instead the instructions each side executes (valgrind's
callgrind, one run each, `PYTHONHASHSEED=0`): the same count at every run whatever else
the machine does, so a change of half a millisecond shows (about 5 million instructions
a millisecond here), where the CPU times' noise on a shared machine is ±5%.

`paired` is a cross-check for a shared machine: the median, over the rounds, of the CLI's
CPU time over its baseline's in the same round (run back to back, so a load that comes
and goes between rounds cancels out, where each best-of figure may come from a
different, quieter moment).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "sources.yaml"

COMMANDS: list[list[str]] = [
    ["--help"],
    ["schema"],
    ["validate", "--no-resolve", str(EXAMPLE)],
    ["plan", str(EXAMPLE), "--emulator", "--format", "json"],
]

# Runs the CLI as `python -m reconciler` would, then writes what it imported to argv[1].
PROBE = """
import atexit, json, os, runpy, sys, sysconfig
before = set(sys.modules)
out = sys.argv[1]
site_dirs = {os.path.realpath(sysconfig.get_paths()[key]) for key in ("purelib", "platlib")}

def third_party(module):
    places = [getattr(module, "__file__", None) or "", *(getattr(module, "__path__", None) or [])]
    return any(
        os.path.realpath(place).startswith(tuple(site + os.sep for site in site_dirs))
        for place in places if place
    )

def record():
    imported = [name for name, module in list(sys.modules.items())
                if name not in before and module is not None and third_party(module)]
    kept_out = [name for name, module in list(sys.modules.items()) if module is None]
    with open(out, "w") as file:
        json.dump({"imported": imported, "kept_out": kept_out}, file)

atexit.register(record)
sys.argv = ["imgix-reconciler", *sys.argv[2:]]
runpy.run_module("reconciler", run_name="__main__", alter_sys=True)
"""


def imports_of(env: dict[str, str], command: list[str]) -> tuple[list[str], list[str]]:
    """The third-party modules `command` imports, and the modules it keeps out."""
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        subprocess.run(
            [sys.executable, "-c", PROBE, out.name, *command],
            capture_output=True,
            check=False,
            cwd=REPO,
            env=env,
        )
        found = json.loads(Path(out.name).read_text())
    if not any(name.split(".")[0] == "click" for name in found["imported"]):
        raise SystemExit(f"the probe of {command} recorded no import of click: {found}")
    return found["imported"], found["kept_out"]


def baseline_code(imported: list[str], kept_out: list[str]) -> str:
    """Import `imported` in order, keeping out `kept_out`; fail unless all of them loaded.

    A few names are not importable as such (an extension module registered under a second
    name, such as `ruamel.yaml.clib._ruamel_yaml`): they load with the module they belong to.
    """
    return "\n".join(
        [
            "import importlib, sys",
            *(f"sys.modules[{name!r}] = None" for name in kept_out),
            f"names = {imported!r}",
            "for name in names:",
            "    try:",
            "        importlib.import_module(name)",
            "    except ImportError:",
            "        pass",
            "missing = [name for name in names if sys.modules.get(name) is None]",
            "if missing:",
            "    sys.exit(f'baseline did not import {missing}')",
            # The CLI exits this way (`reconciler.cli.run`): the same exit for both sides.
            "import gc",
            "gc.freeze()",
        ]
    )


def timed(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """CPU time (user + system of the child) and wall time of one fresh process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=REPO, env=env)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{command[:3]} exited {done.returncode}: {done.stderr[-500:]}")
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), wall


def instructions(command: list[str], env: dict[str, str]) -> int:
    """Instructions one run of `command` executes (callgrind's `Collected`, all threads)."""
    with tempfile.NamedTemporaryFile(suffix=".callgrind") as out:
        done = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out.name}", *command],
            capture_output=True,
            text=True,
            check=False,
            cwd=REPO,
            env={**env, "PYTHONHASHSEED": "0"},
        )
    found = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode != 0 or found is None:
        raise SystemExit(f"{command[:3]} under valgrind: {done.stderr[-500:]}")
    return int(found.group(1))


def count_instructions(env: dict[str, str]) -> None:
    """Each command's instructions beside its baseline's, after an untimed run of each."""
    python = sys.executable
    print(f"{'command':28}{'CLI Minstr':>12}{'deps Minstr':>13}{'ratio':>7}  (goal: <= 1.3x)")
    for command in COMMANDS:
        imported, kept_out = imports_of(env, command)
        sides = [
            [python, "-c", baseline_code(imported, kept_out)],
            [python, "-m", "reconciler", *command],
        ]
        for side in sides:
            timed(side, env)
        floor, taken = (instructions(side, env) for side in sides)
        label = " ".join(command[:1] + [part for part in command[1:] if part.startswith("-")])
        print(f"{label:28}{taken / 1e6:12.1f}{floor / 1e6:13.1f}{taken / floor:6.3f}x")


def best_of(
    runs: int,
    commands: list[list[str]],
    env: dict[str, str],
    rounds: list[list[float]] | None = None,
) -> list[tuple[float, float]]:
    """Best CPU and best wall time of each command over `runs` rounds, after an untimed one.

    The commands take turns within a round, so a load that comes and goes on a shared
    machine weighs on each of them alike. `rounds`, when given, receives each round's CPU
    times (one list per round, in the order of `commands`).
    """
    for command in commands:
        timed(command, env)
    best = [(float("inf"), float("inf"))] * len(commands)
    for _ in range(runs):
        this_round = []
        for index, command in enumerate(commands):
            cpu, wall = timed(command, env)
            best[index] = (min(best[index][0], cpu), min(best[index][1], wall))
            this_round.append(cpu)
        if rounds is not None:
            rounds.append(this_round)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--show-baselines", action="store_true", help="List each baseline.")
    parser.add_argument(
        "--instructions", action="store_true", help="Count instructions (valgrind) instead."
    )
    args = parser.parse_args()
    python = sys.executable
    with tempfile.TemporaryDirectory(prefix="startup-pycache-") as cache:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = cache
        env.pop("GITHUB_ACTIONS", None)
        if args.instructions:
            count_instructions(env)
            return
        ((bare_cpu, bare_wall),) = best_of(args.runs, [[python, "-c", "pass"]], env)
        print(
            f"bare interpreter: {bare_cpu * 1000:.0f} ms CPU, {bare_wall * 1000:.0f} ms wall "
            f"(best of {args.runs})"
        )
        print(
            f"{'command':28}{'CLI cpu':>9}{'deps cpu':>10}{'ratio':>7}"
            f"{'CLI wall':>10}{'deps wall':>11}{'ratio':>7}{'paired':>8}  (goal: <= 1.3x)"
        )
        for command in COMMANDS:
            imported, kept_out = imports_of(env, command)
            rounds: list[list[float]] = []
            floor, taken = best_of(
                args.runs,
                [
                    [python, "-c", baseline_code(imported, kept_out)],
                    [python, "-m", "reconciler", *command],
                ],
                env,
                rounds,
            )
            paired = statistics.median(cli / deps for deps, cli in rounds)
            label = " ".join(command[:1] + [part for part in command[1:] if part.startswith("-")])
            print(
                f"{label:28}{taken[0] * 1000:6.0f} ms{floor[0] * 1000:7.0f} ms"
                f"{taken[0] / floor[0]:6.2f}x{taken[1] * 1000:7.0f} ms{floor[1] * 1000:8.0f} ms"
                f"{taken[1] / floor[1]:6.2f}x{paired:7.2f}x"
            )
            if args.show_baselines:
                packages = sorted({name.split(".")[0] for name in imported})
                print(f"    baseline: {len(imported)} modules of {', '.join(packages)}")
                if kept_out:
                    print(f"    kept out: {', '.join(kept_out)}")


if __name__ == "__main__":
    main()
