"""The bench/ scripts (issue 13's figures) still run: each at a size that takes seconds,
printing its figure beside its floor or baseline. The figures are read by hand, never
asserted (a test asserts no wall-clock time); a script that rots fails here instead of
on the day someone measures. Not run here: `validate.py` (its baseline, PyYAML, is the
`bench` extra CI does not install) and `startup.py` (it starts every command many times)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"

# The script, its smallest useful arguments, and the line that carries its figure.
SMALL_RUNS = [
    (
        "plan.py",
        ["--sources", "300", "--steps", "--runs", "1"],
        r"bare comparison alone .* is [\d.]+x of the client's decoding",
    ),
    ("render.py", ["--actions", "50", "--runs", "1"], r"markdown\s+[\d.]+s\s+[\d.]+s\s+[\d.]+"),
    ("redact.py", ["--values", "100"], r"ratio [\d.]+x \(goal <= 2x\)"),
    (
        "memory.py",
        ["--sources", "300", "--files", "2"],
        r"peak RSS: \d+ MiB, goal under 1024 MiB",
    ),
    ("list_sources.py", ["--n", "250"], r"requests: 3 made, floor ceil\(250/100\) = 3"),
    ("plan_wall.py", ["--sources", "200"], r"N = 200: plan [\d.]+ s, read floor 0.50 s: [\d.]+x"),
    (
        "apply_pace.py",
        ["--changes", "5", "--quiet"],
        r"changes: 5, all applied: True(.|\n)*floor \(the plan's cost\)",
    ),
    ("spec_models.py", ["--runs", "1"], r"DesiredState\s+[\d.]+ ms\s+[\d.]+x the baseline"),
]


@pytest.mark.parametrize(
    ("script", "arguments", "figure"), SMALL_RUNS, ids=[run[0] for run in SMALL_RUNS]
)
def test_a_bench_script_prints_its_figure_beside_its_floor(
    script: str, arguments: list[str], figure: str
) -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH / script), *arguments],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert re.search(figure, done.stdout), done.stdout
