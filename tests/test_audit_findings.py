"""Findings in files another engineer owns this round, reproduced for them to fix."""

from __future__ import annotations

from pathlib import Path

import pytest
from console import invoke

EXAMPLE = Path(__file__).parents[1] / "examples" / "sources.yaml"


@pytest.mark.xfail(
    strict=True,
    reason="planner._check_targets names the unknown --target but not the closest name, "
    "unlike every other mistake of the tool (README: errors say how to fix them)",
)
def test_a_mistyped_target_suggests_the_closest_source_name() -> None:
    result = invoke("plan", EXAMPLE, "--emulator", "--target", "Blgo")
    assert result.exit_code == 1
    assert 'did you mean "Blog"' in result.stderr
