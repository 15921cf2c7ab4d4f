"""Renderers (reconciler/render/): golden text, markdown and json of one representative plan.

Regenerate the golden files after an intended change with
`UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_render.py tests/test_plan.py`, then review the diff.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from reconciler.live import LiveSource
from reconciler.loader import load
from reconciler.plan import Action, Change, Notice, Plan, Summary, UnmanagedSource
from reconciler.planner import PlanOptions, plan
from reconciler.render import render
from reconciler.render.markdown import GITHUB_LIMIT, MARKER
from reconciler.specs import DEPLOYMENT_MODELS, deployment_defaults

FIXTURES = Path(__file__).parent / "fixtures"
GOLDEN = Path(__file__).parent / "golden"
KEY = b"golden-fingerprint-key"
SECRETS = {
    "S3_SECRET_KEY": "product-secret-value",
    "BLOG_PASSWORD": "blog-password-value",
    "ARCHIVE_SECRET_KEY": "wasabi-secret-value",
    "GCS_SECRET_KEY": "gcs-secret-value",
    "PROXY_SIGNING_KEY": "fedcba9876543210fedcba9876543210",
    "AZURE_SAS": "sv=2024&sig=azure-sas-value",
}


def live_sources() -> list[LiveSource]:
    """The fixture's live sources, with the defaults the API fills in."""
    entries: list[dict[str, Any]] = YAML(typ="safe").load(FIXTURES / "plan_live.yaml")
    sources = []
    for entry in entries:
        model = DEPLOYMENT_MODELS[entry["deployment"]["type"]]
        defaults = {
            k: v
            for k, v in deployment_defaults(model).items()
            if k not in ("password", "request_handshake", "request_signing_key")
        }
        sources.append(
            LiveSource.model_validate({**entry, "deployment": {**defaults, **entry["deployment"]}})
        )
    return sources


def representative_plan() -> Plan:
    desired = load([FIXTURES / "plan_desired.yaml"], environ=SECRETS).state
    return plan(desired, live_sources(), PlanOptions(fingerprint_key=KEY))


def check_golden(name: str, actual: str) -> None:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.write_text(actual, encoding="utf-8")
    assert path.read_text(encoding="utf-8") == actual, (
        f"{path} differs; if the change is intended, run with UPDATE_GOLDEN=1 and review"
    )


@pytest.fixture(scope="module")
def the_plan() -> Plan:
    return representative_plan()


def test_representative_plan_covers_every_kind_of_entry(the_plan: Plan) -> None:
    assert the_plan.summary == Summary(create=2, patch=3, unchanged=1, unmanaged=1)
    assert [a.destructive for a in the_plan.actions].count(True) == 1
    assert any(a.depends_on for a in the_plan.actions)
    assert {n.kind for n in the_plan.notices} == {"deployed_outside", "cannot_compare"}


@pytest.mark.parametrize(
    ("fmt", "golden"), [("text", "plan.txt"), ("markdown", "plan.md"), ("json", "plan.json")]
)
def test_golden(the_plan: Plan, fmt: str, golden: str) -> None:
    check_golden(golden, render(the_plan, fmt, color=False))


@pytest.mark.parametrize("fmt", ["text", "markdown", "json"])
def test_no_secret_value_in_any_rendering(the_plan: Plan, fmt: str) -> None:
    output = render(the_plan, fmt, color=True)
    for value in SECRETS.values():
        assert value not in output


def test_text_is_coloured_only_when_asked(the_plan: Plan) -> None:
    assert "\x1b[" in render(the_plan, "text", color=True)
    assert "\x1b[" not in render(the_plan, "text", color=False)


def test_empty_plan_says_no_changes() -> None:
    empty = Plan(
        digest="sha256:0", summary=Summary(create=0, patch=0, unchanged=3, unmanaged=0), actions=[]
    )
    assert render(empty, "text").startswith("No changes: 3 unchanged, 0 unmanaged.")
    assert "No changes" in render(empty, "markdown")


def test_markdown_starts_with_the_stable_marker_then_the_summary(the_plan: Plan) -> None:
    lines = render(the_plan, "markdown").splitlines()
    assert lines[0] == MARKER == "<!-- imgix-reconciler:plan -->"
    assert lines.index("| create | patch | unchanged | unmanaged |") < lines.index(
        next(line for line in lines if line.startswith("<details>"))
    )


def test_markdown_escapes_table_breaking_text() -> None:
    action = Action(
        action="patch",
        source="A | <b>name</b>",
        id="a" * 24,
        changes=[Change(path="deployment.default_params", before={"txt": "x|y"}, after={})],
        writes=[{"deployment": {"default_params": {}}}],
    )
    document = Plan(
        digest="sha256:0",
        summary=Summary(create=0, patch=1, unchanged=0, unmanaged=0),
        actions=[action],
    )
    output = render(document, "markdown")
    assert "A &#124; &lt;b&gt;name&lt;/b&gt;" in output
    assert "x&#124;y" in output


def big_plan(sources: int) -> Plan:
    base = representative_plan()
    template = next(a for a in base.actions if a.action == "create")
    actions = [template.model_copy(update={"source": f"Source {n:05d}"}) for n in range(sources)]
    notices = [
        Notice(source=f"Source {n:05d}", id=None, kind="deployed_outside", detail="x")
        for n in range(sources)
    ]
    unmanaged = [UnmanagedSource(id=f"{n:024x}", name=f"Stray {n}") for n in range(sources)]
    return Plan(
        digest=base.digest,
        summary=Summary(create=sources, patch=0, unchanged=0, unmanaged=sources),
        actions=actions,
        notices=notices,
        unmanaged=unmanaged,
    )


def test_markdown_of_5000_sources_fits_a_github_comment() -> None:
    output = render(big_plan(5000), "markdown")
    assert len(output) < GITHUB_LIMIT
    assert "more sources not shown (see the JSON plan)" in output
    # Sources come first, but notices and unmanaged sources keep a share of the space.
    assert re.search(r"\n- \*\*Source 00000\*\*: x\n", output)
    assert re.search(r"… and \d+ more notices not shown", output)
    assert re.search(r"… and \d+ more unmanaged sources not shown", output)
    assert output.rstrip().endswith("`")  # the digest line survives truncation
    assert output == render(big_plan(5000), "markdown")  # truncation is deterministic


def test_markdown_truncation_counts_what_it_left_out() -> None:
    output = render(big_plan(5000), "markdown")
    shown = output.count("<details>")
    assert f"… and {5000 - shown} more sources not shown" in output


def test_unknown_format_is_refused(the_plan: Plan) -> None:
    with pytest.raises(ValueError, match="unknown plan format 'yaml'"):
        render(the_plan, "yaml")


def test_drift_view_words_the_same_plan_for_a_scheduled_check(the_plan: Plan) -> None:
    s = the_plan.summary
    drift_text = render(the_plan, "text", view="drift")
    assert drift_text.startswith(
        f"Drift: {s.create} missing from imgix, {s.patch} differing from the files, "
        f"{s.unchanged} in sync, {s.unmanaged} unmanaged."
    )
    # Same body as the plan: only the wording of the headline changes.
    assert drift_text.splitlines()[1:] == render(the_plan, "text").splitlines()[1:]
    drift_markdown = render(the_plan, "markdown", view="drift")
    assert drift_markdown.splitlines()[:2] == [
        "<!-- imgix-reconciler:drift -->",
        "### imgix-reconciler drift",
    ]
    assert render(the_plan, "json", view="drift") == render(the_plan, "json")


def test_drift_view_of_an_empty_plan_says_in_sync() -> None:
    empty = Plan(
        digest="sha256:0",
        summary=Summary(create=0, patch=0, unchanged=3, unmanaged=1),
        actions=[],
    )
    assert render(empty, "text", view="drift").startswith(
        "In sync: 3 sources match the files, 1 unmanaged."
    )
