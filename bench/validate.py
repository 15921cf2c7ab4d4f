"""`validate` of an N-source file against a plain C-accelerated safe parse of the same file.

    .venv/bin/python bench/validate.py [--sources 10000] [--runs 3]
    .venv/bin/python bench/validate.py --errors 300000 [--runs 1]
    .venv/bin/python bench/validate.py --errors 300000 --plus duplicate-key [--plus ...]

Both run as fresh processes, best of `--runs`: the CLI's `validate FILE` and the same
interpreter doing only `yaml.load(text, Loader=CSafeLoader)` (PyYAML's libyaml binding,
`pip install -e '.[bench]'`; ruamel's C safe loader when PyYAML is absent). Goal: at most 2x.

With `--errors N`: `validate` of a file of N unknown top-level keys (N errors, 3 MB at
300,000) beside `validate` of a valid file of the same size, wall time and peak memory
(the child's maximum resident set) of each. Goal: at most 5x the valid file's time.

With `--plus KIND` (repeatable, or `--plus all`): the same file with one error of another
kind among the N (`MIXED`: a repeated key, a hostname claimed twice, a bad tag...), beside
the file of N unknown keys alone: CPU time (the child's), wall time (on a shared machine)
and peak memory. Goal: at most 1.5x its CPU time.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path
from tempfile import TemporaryDirectory

BASELINES = {
    "PyYAML CSafeLoader": (
        "import sys, yaml\n"
        "yaml.load(open(sys.argv[1], encoding='utf-8').read(), Loader=yaml.CSafeLoader)\n"
    ),
    "ruamel C safe load": (
        "import sys\nfrom ruamel.yaml import YAML\n"
        "YAML(typ='safe').load(open(sys.argv[1], encoding='utf-8').read())\n"
    ),
}


def sources_yaml(count: int) -> str:
    """`count` web folder sources of the shape `export` writes."""
    blocks = [
        f"""\
  - name: Source {n:05d}
    enabled: true
    deployment:
      type: webfolder
      imgix_subdomains: [bench-{n}]
      webfolder_base_url: https://origin.example/{n}/
      cache_ttl_value: 31536000
      default_params:
        auto: format
        q: 75
"""
        for n in range(count)
    ]
    return "version: 1\nsources:\n" + "".join(blocks)


def mistakes_yaml(count: int) -> str:
    """A file of `count` unknown top-level keys: `count` errors."""
    return "version: 1\nsources: []\n" + "".join(f"k{n:07d}: 1\n" for n in range(count))


SOURCE = """\
  - name: s{n}
    deployment:
      type: webfolder
      imgix_subdomains: [{host}]
      webfolder_base_url: https://origin.example/{n}/
"""

# One error (or one shape only the round-trip constructor reads) of a kind other than
# pydantic's: (sources, top-level lines) added to the file of unknown keys.
MIXED: dict[str, tuple[str, str]] = {
    "duplicate-key": ("", "k0000000: 2\n"),
    "hostname-twice": (SOURCE.format(n=1, host="one") + SOURCE.format(n=2, host="one"), ""),
    "name-twice": (SOURCE.format(n=1, host="one") + SOURCE.format(n=1, host="two"), ""),
    "too-many-hostnames": (SOURCE.format(n=1, host=", ".join(f"h{i}" for i in range(101))), ""),
    "ignore-changes": (SOURCE.format(n=1, host="one") + "    ignore_changes: [nonsense]\n", ""),
    "unread-reference": (
        SOURCE.format(n=1, host="one").replace(
            "type: webfolder", "type: webproxy\n      password: {env: BENCH_UNSET_VARIABLE}"
        ),
        "",
    ),
    "huge-integer": ("", "huge: " + "9" * 200 + "\n"),
    "unsafe-number": ("", "big: 9007199254740993\n"),
    "bad-tag": ("", "tagged: !!int abc\n"),
    "unknown-tag": ("", "tagged: !custom abc\n"),
    "merge-key": ("", "base: &base {a: 1}\nmerged: {<<: *base}\n"),
    "alias": ("", "shared: &shared {a: 1}\nagain: *shared\n"),
    "syntax-error": ("", "broken: [\n"),
}


def mixed_yaml(count: int, kind: str) -> str:
    """`mistakes_yaml(count)` with one error of `kind` (`MIXED`) besides."""
    sources, top = MIXED[kind]
    listed = f"sources:\n{sources}" if sources else "sources: []\n"
    return f"version: 1\n{listed}" + "".join(f"k{n:07d}: 1\n" for n in range(count)) + top


def timed_child(command: list[str]) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds and peak resident MiB of one run of `command` (exit
    status ignored)."""
    started = time.perf_counter()
    with subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as child:
        _, _, usage = os.wait4(child.pid, 0)
        child.returncode = 0  # reaped here
    cpu = usage.ru_utime + usage.ru_stime
    return time.perf_counter() - started, cpu, usage.ru_maxrss / 1024


def errors_bench(count: int, runs: int) -> None:
    with TemporaryDirectory() as directory:
        bad = Path(directory) / "mistakes.yaml"
        bad.write_text(mistakes_yaml(count), encoding="utf-8")
        good = Path(directory) / "sources.yaml"
        size = bad.stat().st_size
        good.write_text(sources_yaml(max(1, size // 230)), encoding="utf-8")
        rows = {}
        for name, file in (("valid file", good), (f"{count} errors", bad)):
            cli = [sys.executable, "-m", "reconciler", "validate", str(file)]
            rows[name] = min(timed_child(cli) for _ in range(runs))
    print(f"validate, files of {size / 1e6:.1f} MB, best of {runs} runs (wall, shared machine)")
    (floor, _, floor_mem), (taken, _, mem) = rows.values()
    print(f"{'valid file':28}{floor:8.2f} s {floor_mem:8.0f} MiB  (baseline)")
    print(
        f"{f'{count} errors':28}{taken:8.2f} s {mem:8.0f} MiB  "
        f"{taken / floor:.2f}x the valid file's time (goal: <= 5x)"
    )


def mixed_bench(count: int, kinds: list[str], runs: int) -> None:
    """Each mixed file's wall time beside the file of `count` unknown keys alone."""
    with TemporaryDirectory() as directory:
        alone = Path(directory) / "mistakes.yaml"
        alone.write_text(mistakes_yaml(count), encoding="utf-8")
        files = {f"{count} unknown keys": alone}
        for kind in kinds:
            files[f"+ {kind}"] = Path(directory) / f"{kind}.yaml"
            files[f"+ {kind}"].write_text(mixed_yaml(count, kind), encoding="utf-8")
        rows = {}
        for name, file in files.items():
            cli = [sys.executable, "-m", "reconciler", "validate", str(file)]
            rows[name] = min((timed_child(cli) for _ in range(runs)), key=lambda row: row[1])
    print(f"validate, {count} errors plus one of another kind, best of {runs} runs")
    print(f"{'':28}{'CPU':>8}   {'wall':>8}   {'peak RSS':>12}")
    floor = rows[f"{count} unknown keys"][1]
    for name, (wall, cpu, mem) in rows.items():
        ratio = "(baseline)" if cpu == floor else f"{cpu / floor:.2f}x CPU (goal: <= 1.5x)"
        print(f"{name:28}{cpu:8.2f} s {wall:8.2f} s {mem:8.0f} MiB  {ratio}")


def best_of(runs: int, command: list[str]) -> float:
    """The shortest wall time of `runs` runs of `command`, which must succeed."""
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        best = min(best, time.perf_counter() - started)
    return best


def baseline() -> tuple[str, str]:
    try:
        import yaml

        if hasattr(yaml, "CSafeLoader"):
            return "PyYAML CSafeLoader", BASELINES["PyYAML CSafeLoader"]
    except ImportError:
        pass
    return "ruamel C safe load", BASELINES["ruamel C safe load"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--errors", type=int, help="a file of this many errors instead")
    parser.add_argument(
        "--plus", action="append", choices=[*MIXED, "all"], help="with --errors: mixed files"
    )
    args = parser.parse_args()
    if args.errors and args.plus:
        kinds = list(MIXED) if "all" in args.plus else args.plus
        mixed_bench(args.errors, kinds, args.runs)
        return
    if args.errors:
        errors_bench(args.errors, args.runs)
        return
    name, code = baseline()
    with TemporaryDirectory() as directory:
        file = Path(directory) / "sources.yaml"
        file.write_text(sources_yaml(args.sources), encoding="utf-8")
        floor = best_of(args.runs, [sys.executable, "-c", code, str(file)])
        cli = [sys.executable, "-m", "reconciler", "validate", str(file)]
        taken = best_of(args.runs, cli)
    print(f"sources: {args.sources} in one file, best of {args.runs} runs")
    print(f"{name:28}{floor:8.2f} s  (baseline)")
    print(f"{'validate':28}{taken:8.2f} s  {taken / floor:.2f}x the baseline (goal: <= 2x)")


if __name__ == "__main__":
    main()
