"""README.md's promises: its samples are what the tool prints, its options and variables exist."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import click
import pytest
from console import invoke

from reconciler.canonical import SOURCE_ORDER, TOP_LEVEL_ORDER
from reconciler.cli import main
from reconciler.plan import Action, write_cost
from reconciler.render.values import cost_line

ROOT = Path(__file__).parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
FIXTURES = Path(__file__).parent / "fixtures"


def _stderr_of_validate(fixture: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    # The README's samples name the file as a user would: sources.yaml, from its folder.
    shutil.copy(FIXTURES / fixture, tmp_path / "sources.yaml")
    monkeypatch.chdir(tmp_path)
    result = invoke("validate", "--no-resolve", "sources.yaml")
    assert result.exit_code == 1
    return result.stderr


def test_the_validate_sample_is_what_validate_prints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stderr = _stderr_of_validate("readme_validate.yaml", tmp_path, monkeypatch)
    assert f"```text\n{stderr}```" in README


def test_the_default_params_sample_is_what_validate_prints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stderr = _stderr_of_validate("readme_default_params.yaml", tmp_path, monkeypatch)
    errors = stderr.splitlines()[:-1]
    assert len(errors) == 2
    assert "".join(f"  {line}\n" for line in errors) in README


def test_the_cost_sample_is_what_a_plan_of_150_updates_prints() -> None:
    patch = Action(action="patch", source="Site", id="1", changes=[], writes=[{"enabled": True}])
    cost = write_cost([patch] * 150, creates_per_hour=60, updates_per_hour=60)
    assert f"  {cost_line(cost)}\n" in README


def test_every_option_of_every_command_is_in_the_readme() -> None:
    commands = [main, *main.commands.values()]
    options = {
        option
        for command in commands
        for parameter in command.params
        if isinstance(parameter, click.Option) and not parameter.hidden
        for option in parameter.opts + parameter.secondary_opts
        if option.startswith("--") and option != "--help"
    }
    assert "--api-url" in options and "--version" in options
    documented = set(re.findall(r"--[a-z][a-z-]*", README))
    assert sorted(options - documented) == []
    assert sorted(f"`{name}" for name in main.commands if f"`{name}" not in README) == []


def test_every_variable_the_tool_reads_is_in_the_readme() -> None:
    read = set()
    for module in (ROOT / "reconciler").rglob("*.py"):
        text = module.read_text(encoding="utf-8")
        read |= set(re.findall(r'_VARIABLE = "([A-Z0-9_]+)"', text))
        read |= set(re.findall(r'environ(?:\.get|\.setdefault)?\(\s*"([A-Z0-9_]+)"', text))
        read |= set(re.findall(r'"([A-Z0-9_]+)" (?:not )?in os\.environ', text))
    assert {"IMGIX_API_KEY", "NO_COLOR", "GITHUB_WORKSPACE"} <= read
    assert sorted(name for name in read if f"`{name}" not in README) == []


def test_the_format_section_lists_the_canonical_order_of_fmt() -> None:
    paragraph = " ".join(README.split("Rewrites files in the canonical order")[1].split()[:40])
    named = re.findall(r"`([a-z_]+)`", paragraph.split("in a deployment")[0])
    assert named == [*TOP_LEVEL_ORDER, *SOURCE_ORDER]
