"""`validate` of an N-source file against a plain C-accelerated safe parse of the same file.

    .venv/bin/python bench/validate.py [--sources 10000] [--runs 3]

Both run as fresh processes, best of `--runs`: the CLI's `validate FILE` and the same
interpreter doing only `yaml.load(text, Loader=CSafeLoader)` (PyYAML's libyaml binding,
`pip install -e '.[bench]'`; ruamel's C safe loader when PyYAML is absent). Goal: at most 2x.
"""

from __future__ import annotations

import argparse
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
    args = parser.parse_args()
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
