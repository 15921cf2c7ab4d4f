"""CLI start-up of each command against the bare import of the dependencies it needs.

    .venv/bin/python bench/startup.py [--runs 7]

Each figure is the best of `--runs` fresh processes. The baseline of a command is the
same interpreter importing only the third-party packages that command needs (pydantic.main:
`import pydantic` alone defers its model machinery, which any model needs; so the
ratio is what the tool itself adds on top of them). `import httpx` alone would also
import httpx's own command line, and with it rich and pygments; the CLI never runs it and
keeps it out (rich is for a terminal only), so the baseline keeps it out the same way.
Goal: at most 1.3x.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "sources.yaml"

# Command, and the packages it cannot do without.
COMMANDS: list[tuple[list[str], list[str]]] = [
    (["--help"], ["click"]),
    (["schema"], ["click", "pydantic.main"]),
    (["validate", "--no-resolve", str(EXAMPLE)], ["click", "pydantic.main", "ruamel.yaml"]),
    (
        ["plan", str(EXAMPLE), "--emulator", "--format", "json"],
        [
            "click",
            "pydantic.main",
            "ruamel.yaml",
            "httpx",
            "deepdiff",
            "starlette",
            "uvicorn",
        ],
    ),
]


def best_of(runs: int, command: list[str]) -> float:
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, capture_output=True, check=False, cwd=REPO)
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    python = sys.executable
    bare = best_of(args.runs, [python, "-c", "pass"])
    print(f"bare interpreter: {bare * 1000:.0f} ms (best of {args.runs})")
    print(f"{'command':40}{'CLI':>9}{'deps':>9}{'ratio':>8}  (goal: <= 1.3x)")
    for command, needs in COMMANDS:
        imports = "import sys; sys.modules['httpx._main'] = None; import " + ", ".join(needs)
        floor = best_of(args.runs, [python, "-c", imports])
        taken = best_of(args.runs, [python, "-m", "reconciler", *command])
        label = " ".join(command[:1] + [part for part in command[1:] if part.startswith("-")])
        print(f"{label:40}{taken * 1000:7.0f} ms{floor * 1000:6.0f} ms{taken / floor:7.2f}x")


if __name__ == "__main__":
    main()
