"""Renderers (reconciler/render/): golden text, markdown and json of one representative plan.

Regenerate the golden files after an intended change with
`UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_render.py tests/test_plan.py`, then review the diff.
"""

from __future__ import annotations

import html
import io
import json
import os
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from console import invoke
from hypothesis import given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from reconciler.applier import ActionResult, ApplyReport
from reconciler.emulator import SourceStore
from reconciler.github import COMMENT_LIMIT
from reconciler.live import LiveSource
from reconciler.loader import load
from reconciler.plan import (
    NOT_RETURNED,
    Action,
    Adoption,
    Change,
    Notice,
    ObservedSource,
    OwnedElsewhere,
    Plan,
    SourceRef,
    Summary,
    UnmanagedSource,
    WriteCost,
)
from reconciler.planner import PlanOptions, plan
from reconciler.render import _render, markdown, render, render_report
from reconciler.render.json import report_json_schema
from reconciler.render.markdown import MARKER
from reconciler.specs import DEPLOYMENT_MODELS, deployment_defaults

ROOT = Path(__file__).parents[1]
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
    assert the_plan.summary == Summary(create=3, patch=3, unchanged=1, unmanaged=1)
    assert [a.destructive for a in the_plan.actions].count(True) == 1
    assert any(a.depends_on for a in the_plan.actions)
    assert {n.kind for n in the_plan.notices} == {"possible_rename"}
    assert the_plan.adoption is not None
    assert [s.name for s in the_plan.adoption.sources] == ["Marketing assets"]


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
        Notice(source=f"Source {n:05d}", id=None, kind="cannot_compare", detail="x")
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
    assert len(output) < COMMENT_LIMIT
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


def test_drawing_text_sets_off_no_cycle_collection() -> None:
    """A large plan's text grew faster than the plan while full collections walked it."""
    import gc

    large = big_plan(300)
    started: list[int] = []

    def record(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started.append(info["generation"])

    threshold = gc.get_threshold()
    gc.set_threshold(10)
    gc.callbacks.append(record)
    try:
        _render(large, "text", color=False, view="plan", drifted=None)  # the collector on
        unpaused = len(started)
        started.clear()
        render(large, "text")
        # Only entering the pause allocates with the collector on.
        assert len(started) <= 2 < unpaused
    finally:
        gc.callbacks.remove(record)
        gc.set_threshold(*threshold)


def test_unknown_format_is_refused(the_plan: Plan) -> None:
    with pytest.raises(ValueError, match="unknown plan format 'yaml'"):
        render(the_plan, "yaml")


def test_drift_view_words_the_same_plan_for_a_scheduled_check(the_plan: Plan) -> None:
    s = the_plan.summary
    drift_text = render(the_plan, "text", view="drift", drifted=True)
    assert drift_text.startswith(
        f"Drift: {s.create} missing from imgix, {s.patch} differing from the files, "
        f"{s.unchanged} in sync, {s.unmanaged} unmanaged."
    )
    # Same body as the plan: only the wording of the headline changes.
    assert drift_text.splitlines()[1:] == render(the_plan, "text").splitlines()[1:]
    drift_markdown = render(the_plan, "markdown", view="drift", drifted=True)
    assert drift_markdown.splitlines()[:2] == [
        "<!-- imgix-reconciler:drift -->",
        "### imgix-reconciler drift",
    ]
    assert render(the_plan, "json", view="drift", drifted=True) == render(the_plan, "json")


def test_drift_view_of_an_empty_plan_says_in_sync() -> None:
    empty = Plan(
        digest="sha256:0",
        summary=Summary(create=0, patch=0, unchanged=3, unmanaged=1),
        actions=[],
    )
    assert render(empty, "text", view="drift", drifted=False).startswith(
        "In sync: 3 sources match the files, 1 unmanaged."
    )


def test_an_unmanaged_source_whose_name_was_not_returned_shows_the_marker_bare() -> None:
    # Not as a name in quotes: the plan's markers are shown as they are, in every format.
    unnamed = Plan(
        digest="sha256:0",
        summary=Summary(create=0, patch=0, unchanged=0, unmanaged=1),
        actions=[],
        unmanaged=[UnmanagedSource(id="c" * 24, name=NOT_RETURNED)],
    )
    assert f"  - {NOT_RETURNED} ({'c' * 24})" in render(unnamed, "text").splitlines()
    assert f"- {NOT_RETURNED} (<code>{'c' * 24}</code>)" in render(unnamed, "markdown").splitlines()


# --------------------------------------------------------------------------- hostile text

# A live source name is whatever the API returns: fake CI log lines and workflow commands,
# terminal escapes (colour, OSC 8 hyperlink, title), a NEL, the Unicode line separators, a
# bidi override, and markdown/HTML that would close the comment's structure.
NASTY = (
    "Evil\r\n::error file=x::fake\n::set-output name=ok::1\x1b[31mred\x1b]8;;http://x\x07"
    "\x85\x7f\x9b\u2028\u2029\u202e</summary></details>\n\n# Approved | [click](http://evil) "
    "![img](http://evil/x.png) `tick` **bold** _em_ ~~gone~~ \\"
)
UNSAFE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def nasty_plan(name: str = NASTY) -> Plan:
    first = Action(
        action="patch",
        source=name,
        id="a" * 23 + "\x1b",
        destructive=True,
        changes=[
            Change(path=f"deployment.{name}", before={name: [name]}, after=name),
            Change(path="enabled", before=True, after=False),
        ],
        writes=[{"enabled": False}],
    )
    second = Action(
        action="create",
        source=name,
        id=None,
        changes=[Change(path="name", after=name)],
        writes=[{"name": name, "deployment": {"imgix_subdomains": [name]}}],
        depends_on=["a" * 23 + "\x1b"],
    )
    return Plan(
        digest=f"sha256:{name}",
        summary=Summary(create=1, patch=1, unchanged=0, unmanaged=1),
        actions=[first, second],
        notices=[Notice(source=name, id=name, kind="cannot_compare", detail=name)],
        unmanaged=[UnmanagedSource(id=name, name=name)],
        adoption=Adoption(
            count=1,
            sources=[SourceRef(id=name, name=name)],
            planned=False,
            updates=1,
            updates_per_hour=60,
            hours=1,
            detail=name,
        ),
    )


def test_text_shows_hostile_names_escaped_on_their_own_lines() -> None:
    output = render(nasty_plan(), "text")
    plain = render(nasty_plan("x"), "text")
    assert not UNSAFE.search(output)
    # Not one extra line: no name can start a line of its own (a fake `::error::`).
    assert len(output.splitlines()) == len(plain.splitlines())
    assert not any(line.lstrip().startswith("::") for line in output.splitlines())
    assert '"Evil\\r\\n::error file=x::fake\\n::set-output' in output
    assert "\\u001b[31mred\\u001b]8;;http://x\\u0007\\u0085\\u007f\\u009b\\u2028\\u2029\\u202e" in (
        output
    )
    assert "(aaaaaaaaaaaaaaaaaaaaaaa\\u001b)" in output


def test_coloured_text_carries_only_its_own_colour_escapes() -> None:
    output = render(nasty_plan(), "text", color=True)
    assert "\x1b[" in output
    assert "\x1b" not in re.sub(r"\x1b\[[0-9;]*m", "", output)


@pytest.mark.parametrize("view", ["plan", "drift"])
def test_markdown_keeps_hostile_names_inside_their_cell_and_summary(view: Any) -> None:
    verdict = True if view == "drift" else None
    output = render(nasty_plan(), "markdown", view=view, drifted=verdict)
    plain = render(nasty_plan("x"), "markdown", view=view, drifted=verdict)
    assert not UNSAFE.search(output)
    assert len(output.splitlines()) == len(plain.splitlines())
    assert output.count("</summary>") == output.count("<summary>") == 2
    assert output.count("</details>") == 2
    assert "<code>" + "a" * 23 + "&#92;u001b</code>" in output  # shows as \u001b
    for tag in ("summary", "details", "code"):
        assert output.count(f"<{tag}>") == plain.count(f"<{tag}>")
    # No link, image, code span, emphasis or strikethrough can come from a name.
    for syntax in ("](", "`tick`", "**bold**", "_em_", "~~gone~~"):
        assert syntax not in output
    assert not any(line.startswith("# ") for line in output.splitlines())
    rows = [line for line in output.splitlines() if line.startswith("| <code>")]
    assert rows and all(line.count("|") == 4 for line in rows)
    assert output.rstrip().endswith("</code>")  # a malformed digest leaves the code span


def test_values_escape_what_json_leaves_raw() -> None:
    change = Change(path="deployment.default_params", before={"txt": "\u2028\x85"}, after={})
    action = Action(action="patch", source="A", id="a" * 24, changes=[change], writes=[{}])
    document = Plan(
        digest="sha256:0",
        summary=Summary(create=0, patch=1, unchanged=0, unmanaged=0),
        actions=[action],
    )
    assert '{"txt": "\\u2028\\u0085"} -> {}' in render(document, "text")


# --------------------------------------------------------------------------- counts


def one_patch(*, destructive: bool, source: str = "A") -> Action:
    change = Change(path="enabled", before=True, after=False)
    return Action(
        action="patch",
        source=source,
        id="a" * 24,
        changes=[change],
        writes=[{"enabled": False}],
        destructive=destructive,
    )


def test_counts_agree_with_their_nouns() -> None:
    one_in_sync = Plan(
        digest="sha256:0",
        summary=Summary(create=0, patch=0, unchanged=1, unmanaged=0),
        actions=[],
    )
    assert render(one_in_sync, "text", view="drift", drifted=False).startswith(
        "In sync: 1 source matches the files, 0 unmanaged."
    )
    one = Plan(
        digest="sha256:0",
        summary=Summary(create=0, patch=1, unchanged=0, unmanaged=0),
        actions=[one_patch(destructive=True)],
    )
    two = Plan(
        digest="sha256:0",
        summary=Summary(create=0, patch=2, unchanged=0, unmanaged=0),
        actions=[one_patch(destructive=True), one_patch(destructive=True, source="B")],
    )
    assert "Destructive: 1 of these actions disables a live source (A);" in render(one, "markdown")
    assert "Destructive: 2 of these actions disable a live source (A, B);" in render(
        two, "markdown"
    )


@pytest.mark.parametrize("hidden", [1, 2])
def test_the_truncation_note_counts_in_agreement(hidden: int) -> None:
    actions = [one_patch(destructive=False, source=f"S{n}") for n in range(3)]
    document = Plan(
        digest="sha256:0",
        summary=Summary(create=0, patch=3, unchanged=0, unmanaged=0),
        actions=actions,
    )
    full = markdown.render(document, budget=10**6)
    budget = len(full)
    while f"… and {hidden} more" not in markdown.render(document, budget=budget):
        budget -= 1
    noun = "source" if hidden == 1 else "sources"
    assert f"… and {hidden} more {noun} not shown" in markdown.render(document, budget=budget)


def test_drift_resting_on_notices_alone_is_not_called_in_sync(the_plan: Plan) -> None:
    """drift --require-marker fails on a missing marker: the report must say drift too."""
    quiet = the_plan.model_copy(update={"actions": []})
    for fmt in ("text", "markdown"):
        shown = render(quiet, fmt, view="drift", drifted=True)
        assert "In sync" not in shown
        assert "Drift: changed outside imgix-reconciler (see the notices)" in shown
    assert "In sync" in render(quiet, "text", view="drift", drifted=False)


def test_the_drift_view_shows_the_verdict_it_is_given_and_never_guesses(the_plan: Plan) -> None:
    with pytest.raises(ValueError, match="drift verdict"):
        render(the_plan, "text", view="drift")


def test_observed_and_owned_elsewhere_sources_are_shown_in_text_and_markdown() -> None:
    observed = ObservedSource(
        action="patch",
        source="Watched",
        id="a" * 24,
        changes=[Change(path="deployment.cache_ttl_value", before=86400, after=1800)],
    )
    owned = OwnedElsewhere(source="Shared", id="b" * 24, owner="team-a")
    summary = Summary(create=0, patch=0, unchanged=0, unmanaged=0, observed=1)
    held = Plan(digest="sha256:x", summary=summary, actions=[], observed=[observed])
    held = held.model_copy(update={"owned_elsewhere": [owned]})
    text = render(held, "text")
    assert "No changes: 0 unchanged, 0 unmanaged, 1 observed (never written)." in text
    assert '= observed "Watched"' in text and "cache_ttl_value: 86400 -> 1800" in text
    assert '"Shared" (bbbbbbbbbbbbbbbbbbbbbbbb): owned by "team-a"' in text
    comment = render(held, "markdown")
    assert "#### Observed sources (mode: observe; never written)" in comment
    assert "<b>= observed</b> Watched" in comment
    assert "Shared (<code>bbbbbbbbbbbbbbbbbbbbbbbb</code>): owned by <code>team-a</code>" in comment
    drift = render(held, "text", view="drift", drifted=True)
    assert drift.startswith("Drift: 1 observed source differs from the files (never written)")


# --------------------------------------------------------------------------- apply report

REPORT_SCHEMA = Path(__file__).parent.parent / "schemas" / "apply-report.schema.json"
HOSTILE = "Evil\n::error::forged @someone"


def _report() -> ApplyReport:
    return ApplyReport(
        results=[
            ActionResult("patch", "Blog", "id:1", "applied", source_id="6359b5ba"),
            ActionResult("patch", HOSTILE, "id:2", "failed", source_id="2", error="HTTP 500\nx"),
            ActionResult("create", "New", "new:new", "skipped"),
            ActionResult("patch", "Late", "id:3", "stopped", source_id="3"),
        ],
        writes=2,
        still_deploying=["6359b5ba"],
        stopped="stopped by SIGTERM",
    )


def test_the_apply_report_schema_file_is_in_sync_with_the_model() -> None:
    generated = json.dumps(report_json_schema(), indent=2, sort_keys=True) + "\n"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        REPORT_SCHEMA.write_text(generated, encoding="utf-8")
    assert REPORT_SCHEMA.read_text(encoding="utf-8") == generated, (
        "schemas/apply-report.schema.json is out of date: "
        "run UPDATE_GOLDEN=1 pytest tests/test_render.py"
    )


def test_the_json_report_validates_and_counts_every_outcome() -> None:
    document = json.loads(render_report(_report(), "json", digest="sha256:" + "0" * 64))
    jsonschema.validate(document, json.loads(REPORT_SCHEMA.read_text(encoding="utf-8")))
    assert document["ok"] is False
    assert document["digest"] == "sha256:" + "0" * 64
    assert document["counts"] == {"applied": 1, "failed": 1, "skipped": 1, "stopped": 1}
    assert [r["outcome"] for r in document["results"]] == [
        "applied",
        "failed",
        "skipped",
        "stopped",
    ]
    assert document["results"][1]["source"] == HOSTILE  # the data itself, escaped only as JSON
    assert document["still_deploying"] == ["6359b5ba"]
    assert document["stopped"] == "stopped by SIGTERM"


def test_the_json_report_is_indented_like_the_plan_document(the_plan: Plan) -> None:
    for printed in (render_report(_report(), "json"), render(the_plan, "json")):
        assert printed == json.dumps(json.loads(printed), indent=2) + "\n"


def test_the_json_report_schema_rejects_an_unknown_outcome() -> None:
    document = json.loads(render_report(_report(), "json"))
    document["results"][0]["outcome"] = "deleted"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(document, json.loads(REPORT_SCHEMA.read_text(encoding="utf-8")))


def test_the_text_report_keeps_outside_text_on_its_line() -> None:
    lines = render_report(_report(), "text").splitlines()
    assert lines[0] == "applied: patch Blog (6359b5ba)"
    assert lines[1] == "failed: patch Evil\\n::error::forged @someone (2): HTTP 500\\nx"
    assert lines[3] == "not attempted: patch Late (3)"
    assert lines[-3:-1] == [
        "Not seen deployed when --wait ended: 6359b5ba.",
        '  - "Blog" (6359b5ba): still deploying when the wait ended',
    ]
    assert lines[-1] == (
        "Apply: 1 applied, 1 failed. 1 not attempted (waiting for a failed action). "
        "1 not attempted (stopped by SIGTERM). Run apply again to continue: it plans afresh."
    )


def test_a_stop_during_the_last_write_asks_for_no_second_run() -> None:
    # The signal came while the last write was under way, and that write succeeded.
    report = ApplyReport(
        results=[ActionResult("patch", "Blog", "id:1", "applied", source_id="6359b5ba")],
        writes=1,
        stopped="stopped by SIGTERM",
    )
    assert render_report(report, "text").splitlines()[-1] == "Apply: 1 applied, 0 failed."
    cut = replace(report, results=[replace(report.results[0], outcome="failed")])
    assert (
        render_report(cut, "text")
        .splitlines()[-1]
        .endswith("Run apply again to continue: it plans afresh.")
    )


def test_the_markdown_report_is_a_table_with_inert_names() -> None:
    shown = render_report(_report(), "markdown")
    assert shown.startswith("<!-- imgix-reconciler:apply -->\n")
    assert "| applied | patch | <code>Blog</code> | <code>6359b5ba</code> |  |" in shown
    assert "@someone" not in shown and "\n::error::" not in shown
    assert "Apply: 1 applied, 1 failed." in shown


def test_an_unknown_report_format_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown report format"):
        render_report(_report(), "yaml")


def _rich_without_colour(plan: Plan) -> str:
    # How the text was drawn before plain text stopped going through rich.
    from rich.console import Console

    from reconciler.render.text import _lines

    buffer = io.StringIO()
    console = Console(
        file=buffer, no_color=True, color_system=None, highlight=False, markup=False,
        emoji=False, soft_wrap=True, width=120,
    )  # fmt: skip
    for line in _lines(plan, "plan", None):
        console.print(line.styled())
    return buffer.getvalue()


@settings(max_examples=40, deadline=None)
@given(name=st.text(min_size=1, max_size=40))
def test_plain_text_is_what_rich_draws_without_colour(name: str) -> None:
    plan = nasty_plan(name)
    assert render(plan, "text", color=False) == _rich_without_colour(plan)


def test_lists_of_long_names_above_the_sources_still_fit_a_github_comment() -> None:
    # A pull request's names (or an owner read from a live marker) of any length, made of
    # what escaping lengthens most: the summary lists name up to 20 of each.
    name = "@_" * 3000
    template = next(a for a in representative_plan().actions if a.action == "patch")
    disables = [
        template.model_copy(update={"source": f"{name}{n}", "destructive": True}) for n in range(25)
    ]
    owned = [OwnedElsewhere(source=f"{name}{n}", id="b" * 24, owner=name) for n in range(25)]
    adoption = Adoption(
        count=25,
        sources=[SourceRef(id=f"{n:024x}", name=f"{name}{n}") for n in range(25)],
        planned=False,
        updates=25,
        updates_per_hour=60,
        hours=1,
        detail="25 sources without an imgix-reconciler marker",
    )
    document = Plan(
        digest="sha256:" + "0" * 64,
        summary=Summary(create=0, patch=25, unchanged=0, unmanaged=0),
        actions=disables,
        owned_elsewhere=owned,
        adoption=adoption,
    )

    output = render(document, "markdown")

    assert len(output) < COMMENT_LIMIT
    assert output.rstrip().endswith(f"Digest: `sha256:{'0' * 64}`")
    assert "- … and 5 more" in output  # owned elsewhere, past the 20 named
    assert "@&#8203;&#95;@&#8203;" in output and "…" in output
    assert "**@&#8203;&#95;" in output  # the adoption notice kept its place, names cut


def test_one_source_with_hundreds_of_long_values_hides_none_of_the_sources_after_it() -> None:
    # A pull request puts first a source with 500 long default_params values (or a long
    # name): the sources after it, the ones a reviewer must see, still show.
    template = next(a for a in representative_plan().actions if a.action == "patch")
    value = "@" * 400
    bulky = template.model_copy(
        update={
            "source": "Bulky" + "@" * 50_000,
            "changes": [
                Change(path=f"deployment.default_params.p{n}", before=value, after=value + "!")
                for n in range(500)
            ],
        }
    )
    quiet = template.model_copy(update={"source": "Quiet", "id": "c" * 24, "destructive": True})
    document = Plan(
        digest="sha256:" + "0" * 64,
        summary=Summary(create=0, patch=2, unchanged=0, unmanaged=0, observed=1),
        actions=[bulky, quiet],
        observed=[
            ObservedSource(action="patch", source="Watched", id="d" * 24, changes=bulky.changes)
        ],
    )

    output = render(document, "markdown")

    assert len(output) < COMMENT_LIMIT
    assert "<details><summary><b>~ patch</b> Quiet" in output
    assert "<details><summary><b>= observed</b> Watched" in output
    assert "not shown" not in output
    shown_rows = output.count("| <code>deployment.default_params.p")
    assert 0 < shown_rows < 500 * 2
    assert output.count(" more changes (see the JSON plan) | | |") == 2


# --------------------------------------------------------------------------- plan document e2e

ADVERSARIAL_YAML = """\
version: 1
owner: acme/images-infra
safety: {max_risky_share: 0.1, min_risky_count: 1}
sources:
  - name: Product images
    deployment:
      type: s3
      imgix_subdomains: [acme-products]
      s3_bucket: acme-product-images
      s3_access_key: AKIAIOSFODNN7EXAMPLE
      s3_secret_key: {env: DOC_S3_SECRET_KEY}
  - name: Legacy again
    deployment:
      type: webfolder
      imgix_subdomains: [acme-legacy-new]
      webfolder_base_url: https://legacy.acme.example/
  - name: Blog
    id: 6359b5ba8147da20e8edfdd5
    enabled: false
    deployment:
      type: webfolder
      imgix_subdomains: [acme-blog]
      custom_domains: [images.blog.acme.example]
      webfolder_base_url: https://blog.acme.example/wp-content/uploads/
      cache_ttl_value: 86400
      default_params: {auto: format}
      crossdomain_xml_enabled: true
  - name: Marketing assets
    mode: observe
    deployment:
      type: gcs
      imgix_subdomains: [acme-marketing, acme-campaigns]
      gcs_bucket: acme-marketing-assets
      gcs_access_key: GOOG1EXAMPLEACCESSKEYACMEMARKETING
      gcs_secret_key: {env: DOC_GCS_SECRET_KEY}
  - name: Archive
    mode: protect
    deployment:
      type: s3_compatible
      storage_provider: Wasabi
      imgix_subdomains: [acme-archive]
      bucket_name: acme-archive-moved
      endpoint_url: https://s3.eu-central-1.wasabisys.com
      region: eu-central-1
      access_key_id: WASABIEXAMPLEKEYID01
      secret_key: {env: DOC_ARCHIVE_SECRET_KEY}
      cache_ttl_behavior: enforce_minimum
      cache_ttl_value: 2592000
  - name: Shared
    deployment:
      type: webproxy
      imgix_subdomains: [acme-shared]
"""

SHARED_LIVE = {
    "id": "64f1c2a9e4b0a1d2c3e4f5aa",
    "name": "Shared",
    "enabled": True,
    "deployment": {
        "type": "webproxy",
        "imgix_subdomains": ["acme-shared"],
        "annotation": "[imgix-reconciler v1 owner.name=other/repo]",
    },
}


@pytest.mark.e2e
def test_plan_json_of_every_kind_of_entry_validates_against_the_shipped_schema(
    emulator_store: SourceStore, emulator_url: str, tmp_path: Path
) -> None:
    state = json.loads((ROOT / "reconciler" / "emulator" / "live-state.json").read_text())
    emulator_store.load_json({**state, "sources": [*state["sources"], SHARED_LIVE]})
    sources = tmp_path / "sources.yaml"
    sources.write_text(ADVERSARIAL_YAML)
    schema = json.loads((ROOT / "schemas" / "plan.schema.json").read_text())
    validator = jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )

    owned = invoke("plan", sources, "--format", "json", "--api-url", emulator_url)
    taken = invoke("plan", sources, "--format", "json", "--take-over", "--api-url", emulator_url)

    assert owned.exit_code == 1, owned.output  # a source another owner manages
    assert taken.exit_code == 0, taken.output
    for result in (owned, taken):
        document = json.loads(result.stdout)
        assert list(validator.iter_errors(document)) == []
        # What product.md names, at least.
        assert {"format_version", "digest", "summary", "actions", "unmanaged"} <= set(document)
        assert document["digest"].startswith("sha256:")
        assert {"create", "patch", "unchanged", "unmanaged"} <= set(document["summary"])
        for action in document["actions"]:
            assert {"action", "source", "id", "changes"} <= set(action)
            for change in action["changes"]:
                assert set(change) >= {"path", "before", "after"}
        assert document["unmanaged"] == [{"id": "64f1c2a9e4b0a1d2c3e4f504", "name": "Legacy CDN"}]
    owned_document = json.loads(owned.stdout)
    assert [o["source"] for o in owned_document["owned_elsewhere"]] == ["Shared"]
    document = json.loads(taken.stdout)
    by_source = {action["source"]: action for action in document["actions"]}
    assert by_source["Product images"]["action"] == "create"
    assert by_source["Blog"]["destructive"] is True
    assert by_source["Archive"]["protected"] is True and by_source["Archive"]["risks"]
    assert by_source["Shared"]["takes_over_from"] == "other/repo"
    assert [o["source"] for o in document["observed"]] == ["Marketing assets"]
    assert document["blast_radius"]["exceeded"] is True
    assert document["adoption"]["count"] >= 1
    assert {"possible_rename", "cannot_compare"} <= {n["kind"] for n in document["notices"]}


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(-3, "0 s"), (59.4, "59 s"), (60, "1 min"), (3540, "59 min"), (3599, "1 h 00 min"),
     (3600, "1 h 00 min"), (3900, "1 h 05 min"), (7080, "1 h 58 min"),
     (14 * 3600 + 60, "14 h 01 min")],
)  # fmt: skip
def test_a_duration_reads_as_a_person_says_it(seconds: float, shown: str) -> None:
    from reconciler.render.values import duration

    assert duration(seconds) == shown


# --------------------------------------------------------------------------- the comment's parts


def patches(count: int, *, destructive: bool = False) -> Plan:
    actions = [one_patch(destructive=destructive, source=f"S{n:02d}") for n in range(count)]
    return Plan(
        digest="sha256:" + "0" * 64,
        summary=Summary(create=0, patch=count, unchanged=0, unmanaged=0),
        actions=actions,
    )


def test_a_plan_that_disables_nothing_carries_no_destructive_warning() -> None:
    for fmt in ("markdown", "text"):
        assert "Destructive" not in render(patches(2), fmt)
        assert "--allow-disable" not in render(patches(2), fmt)
    assert "apply needs `--allow-disable`" in render(patches(1, destructive=True), "markdown")


def test_the_destructive_warning_names_twenty_sources_and_counts_the_rest() -> None:
    output = render(patches(23, destructive=True), "markdown")
    named = ", ".join(f"S{n:02d}" for n in range(20))
    assert f"Destructive: 23 of these actions disable a live source ({named} and 3 more);" in (
        output
    )
    exactly = render(patches(20, destructive=True), "markdown")
    assert "S19);" in exactly and " more);" not in exactly


def test_a_notice_about_a_live_source_shows_its_id() -> None:
    notice = Notice(source="Blog", id="b" * 24, kind="encrypted_changed", detail="changed")
    document = patches(1).model_copy(update={"notices": [notice]})
    assert f"- **Blog** (<code>{'b' * 24}</code>): changed\n" in render(document, "markdown")
    assert f'  ! "Blog" ({"b" * 24}): changed\n' in render(document, "text")
    unplaced = notice.model_copy(update={"id": None})
    document = document.model_copy(update={"notices": [unplaced]})
    assert "- **Blog**: changed\n" in render(document, "markdown")
    assert '  ! "Blog": changed\n' in render(document, "text")


def test_the_markdown_report_says_what_is_still_deploying_only_when_something_is() -> None:
    shown = render_report(_report(), "markdown")
    assert shown.endswith(
        "\n\nNot seen deployed when --wait ended:\n\n"
        "- still deploying when the wait ended: <code>6359b5ba</code>.\n"
    )
    done = replace(_report(), still_deploying=[])
    assert "Not seen deployed" not in render_report(done, "markdown")
    assert "Not seen deployed" not in render_report(done, "text")


def _waited() -> ApplyReport:
    """A report whose --wait saw none deployed, each for another reason."""
    names = {"a": "Blog", "b": HOSTILE, "c": "Gone", "d": "Down"}
    return ApplyReport(
        results=[
            ActionResult("patch", name, f"id:{i}", "applied", source_id=i)
            for i, name in names.items()
        ],
        writes=4,
        still_deploying=["a", "b", "c", "d"],
        given_up={"b": "deleted", "c": "gone", "d": "unknown"},
    )


def test_the_text_report_says_why_each_source_was_not_seen_deployed() -> None:
    # The ids' line stays as it was (scripts read it); a line per source says why.
    lines = render_report(_waited(), "text").splitlines()
    start = lines.index("Not seen deployed when --wait ended: a, b, c, d.")
    assert lines[start + 1 : start + 5] == [
        '  - "Blog" (a): still deploying when the wait ended',
        '  - "Evil\\n::error::forged @someone" (b): deleted while deploying',
        '  - "Gone" (c): gone (the API answers 404)',
        '  - "Down" (d): unknown (its poll failed: see --wait gave up on stderr)',
    ]
    assert lines[start + 5].startswith("Apply: 4 applied, 0 failed.")


def test_the_markdown_report_says_why_each_source_was_not_seen_deployed() -> None:
    shown = render_report(_waited(), "markdown")
    assert shown.endswith(
        "\n\nNot seen deployed when --wait ended:\n\n"
        "- still deploying when the wait ended: <code>a</code>.\n"
        "- deleted while deploying: <code>b</code>.\n"
        "- gone (the API answers 404): <code>c</code>.\n"
        "- unknown (its poll failed: see --wait gave up on stderr): <code>d</code>.\n"
    )


def test_the_json_report_says_why_each_source_was_not_seen_deployed() -> None:
    document = json.loads(render_report(_waited(), "json"))
    jsonschema.validate(document, json.loads(REPORT_SCHEMA.read_text(encoding="utf-8")))
    assert document["still_deploying"] == ["a", "b", "c", "d"]  # the contract, unchanged
    assert document["not_deployed"] == {
        "a": "deploying",
        "b": "deleted",
        "c": "gone",
        "d": "unknown",
    }
    plain = json.loads(render_report(_report(), "json"))
    assert plain["not_deployed"] == {"6359b5ba": "deploying"}


def test_a_value_cut_inside_a_secret_shows_no_part_of_it() -> None:
    # A live value the planner did not hide (a secret that is not the source's own, say):
    # the cell is masked before it is cut, so no prefix of the secret survives the cut.
    from reconciler import redact

    secret = "Cut-Secret-5e9a-Value"
    redact.register(secret)
    value = "n" * 290 + secret
    change = Change(path="deployment.annotation", before=value, after="our note")
    action = Action(
        action="patch",
        source="m" * 180 + secret,
        id="a" * 24,
        changes=[change],
        writes=[{}],
        destructive=True,
    )
    document = patches(1).model_copy(update={"actions": [action]})
    shown = html.unescape(render(document, "markdown"))
    assert '"' + "n" * 290 + '***"' in shown  # masked, then short enough to keep whole
    assert "m" * 180 + "***" in shown
    assert secret[:8] not in shown


def test_the_comment_stays_within_its_budget_but_for_the_notes_of_what_it_left_out() -> None:
    """Every title and section counts against the budget; only the "N more" notes exceed it."""
    document = patches(3).model_copy(
        update={
            "observed": [
                ObservedSource(
                    action="patch",
                    source=f"Watched {n}",
                    id=f"{n:024x}",
                    changes=[Change(path="enabled", before=True, after=False)],
                )
                for n in range(3)
            ],
            "notices": [
                Notice(source=f"N{n}", id=None, kind="cannot_compare", detail="x" * 40)
                for n in range(3)
            ],
            "unmanaged": [UnmanagedSource(id=f"{n:024x}", name=f"Stray {n}") for n in range(3)],
        }
    )
    full = len(markdown.render(document, budget=10**6))
    assert markdown.render(document, budget=full) == markdown.render(document, budget=10**6)
    note = re.compile(r"\n… and \d+ more [a-z ]+ not shown \(see the JSON plan\)\.\n")
    cut_somewhere = 0
    for budget in range(full - 1500, full + 1):
        output = markdown.render(document, budget=budget)
        assert len(note.sub("", output)) <= budget, budget
        cut_somewhere += bool(note.search(output))
    assert cut_somewhere


def test_observed_sources_keep_their_share_of_a_comment_that_sources_fill() -> None:
    crowded = big_plan(5000)
    watched = ObservedSource(
        action="patch",
        source="Watched",
        id="d" * 24,
        changes=[Change(path="enabled", before=True, after=False)],
    )
    output = render(crowded.model_copy(update={"observed": [watched]}), "markdown")
    assert len(output) < COMMENT_LIMIT
    assert "<details><summary><b>= observed</b> Watched" in output


def test_an_observed_source_is_a_whole_section_with_its_id_and_live_and_file_columns() -> None:
    observed = ObservedSource(
        action="patch",
        source="Watched",
        id="d" * 24,
        changes=[Change(path="deployment.cache_ttl_value", before=86400, after=1800)],
    )
    summary = Summary(create=0, patch=0, unchanged=0, unmanaged=0, observed=1)
    document = Plan(digest="sha256:x", summary=summary, actions=[], observed=[observed])
    assert render(document, "markdown").endswith(
        "#### Observed sources (mode: observe; never written)\n\n"
        f"<details><summary><b>= observed</b> Watched (<code>{'d' * 24}</code>)</summary>\n\n"
        "| attribute | live | file |\n|---|---|---|\n"
        "| <code>deployment.cache_ttl_value</code> | <code>86400</code> | <code>1800</code> |\n\n"
        "</details>\n\n"
    )
    missing = observed.model_copy(update={"action": "create", "id": None})
    comment = render(document.model_copy(update={"observed": [missing]}), "markdown")
    assert "| <code>deployment.cache_ttl_value</code> |  | <code>1800</code> |\n" in comment
    text = render(document.model_copy(update={"observed": [missing]}), "text")
    assert '= observed "Watched" (mode: observe; never written)\n' in text
    assert "    = deployment.cache_ttl_value: (missing) -> 1800\n" in text


def test_the_markdown_report_table_has_its_header_and_a_row_per_action() -> None:
    lines = render_report(_report(), "markdown").splitlines()
    header = lines.index("| outcome | action | source | id | error |")
    assert lines[header + 1] == "|---|---|---|---|---|"
    assert len([line for line in lines[header + 2 :] if line.startswith("| ")]) == 4
    assert "| not attempted | patch | <code>Late</code> | <code>3</code> |  |" in lines


def test_twenty_owned_elsewhere_are_all_named_and_more_are_counted() -> None:
    def owned(count: int) -> str:
        entries = [OwnedElsewhere(source=f"O{n}", id="b" * 24, owner="x") for n in range(count)]
        return render(patches(1).model_copy(update={"owned_elsewhere": entries}), "markdown")

    assert "O19 (" in owned(20) and "more" not in owned(20)
    assert "O19 (" in owned(21) and "O20 (" not in owned(21) and "- … and 1 more" in owned(21)


def test_a_name_is_cut_only_past_its_limit() -> None:
    def summary_of(name: str) -> str:
        output = render(
            patches(1).model_copy(update={"actions": [one_patch(destructive=False, source=name)]}),
            "markdown",
        )
        return next(line for line in output.splitlines() if line.startswith("<details>"))

    assert f"</b> {'n' * 200} (<code>" in summary_of("n" * 200)
    assert f"</b> {'n' * 199}… (<code>" in summary_of("n" * 201)


def test_a_section_shows_about_eight_thousand_characters_of_rows_whatever_the_first_row() -> None:
    short = Change(path="enabled", before=True, after=False)
    long = [
        Change(path=f"deployment.default_params.p{n}", before="@" * 200, after="!")
        for n in range(200)
    ]
    action = one_patch(destructive=False).model_copy(update={"changes": [short, *long]})
    output = render(patches(1).model_copy(update={"actions": [action]}), "markdown")
    rows = [line for line in output.splitlines() if line.startswith("| <code>")]
    assert 8_000 < sum(map(len, rows)) < 8_000 + max(map(len, rows))
    assert f"| … and {201 - len(rows)} more changes (see the JSON plan) | | |" in output


def test_a_long_value_is_cut_to_three_hundred_characters_with_an_ellipsis() -> None:
    change = Change(path="deployment.webfolder_base_url", before="x" * 400, after="short")
    action = one_patch(destructive=False).model_copy(update={"changes": [change]})
    output = render(patches(1).model_copy(update={"actions": [action]}), "markdown")
    # JSON's quote counts: 300 characters in all, the last of them the ellipsis.
    assert f'| <code>"{"x" * 298}…</code> |' in output
    assert f'| <code>"{"x" * 299}' not in output
    whole = change.model_copy(update={"before": "x" * 298})  # 300 characters with its quotes
    action = one_patch(destructive=False).model_copy(update={"changes": [whole]})
    output = render(patches(1).model_copy(update={"actions": [action]}), "markdown")
    assert f'| <code>"{"x" * 298}"</code> |' in output


def test_an_owner_of_any_length_takes_at_most_four_hundred_characters_in_its_flag() -> None:
    taken = one_patch(destructive=False).model_copy(update={"takes_over_from": "o" * 5_000})
    output = render(patches(1).model_copy(update={"actions": [taken]}), "markdown")
    (flag,) = [line for line in output.splitlines() if line.startswith("**⚠ owned by")]
    assert len(flag) == len("**⚠ **") + 400 and flag.endswith("…**")


def test_the_rows_cut_counts_the_changes_left_in_agreement() -> None:
    def section(changes: int) -> str:
        rows = [
            Change(path=f"deployment.default_params.p{n}", before="@" * 200, after="!")
            for n in range(changes)
        ]
        action = one_patch(destructive=False).model_copy(update={"changes": rows})
        return render(patches(1).model_copy(update={"actions": [action]}), "markdown")

    shown = section(100).count("| <code>deployment.default_params.p")
    assert "| … and 1 more change (see the JSON plan) | | |" in section(shown + 1)
    assert "| … and 2 more changes (see the JSON plan) | | |" in section(shown + 2)
    assert "more change" not in section(shown)


def test_the_adoption_notice_names_twenty_sources_and_counts_the_rest() -> None:
    def adoption(count: int) -> Adoption:
        return Adoption(
            count=count,
            sources=[SourceRef(id=f"{n:024x}", name=f"U{n}") for n in range(count)],
            planned=False,
            updates=count,
            updates_per_hour=60,
            hours=1,
            detail=f"{count} sources without a marker",
        )

    crowded = patches(1).model_copy(update={"adoption": adoption(25)})
    named = ", ".join(f'"U{n}"' for n in range(20))
    assert f"  ! 25 sources without a marker: {named} and 5 more\n" in render(crowded, "text")
    bold = ", ".join(f"**U{n}**" for n in range(20))
    assert f"- 25 sources without a marker: {bold} and 5 more\n" in render(crowded, "markdown")
    exactly = patches(1).model_copy(update={"adoption": adoption(20)})
    for fmt in ("text", "markdown"):
        assert "U19" in render(exactly, fmt) and " more" not in render(exactly, fmt)


def test_the_text_of_an_observed_source_shows_its_id() -> None:
    observed = ObservedSource(
        action="patch",
        source="Watched",
        id="d" * 24,
        changes=[Change(path="enabled", before=True, after=False)],
    )
    summary = Summary(create=0, patch=0, unchanged=0, unmanaged=0, observed=1)
    document = Plan(digest="sha256:x", summary=summary, actions=[], observed=[observed])
    assert f'= observed "Watched" ({"d" * 24}) (mode: observe; never written)\n' in render(
        document, "text"
    )


def test_coloured_text_draws_what_goes_red_and_what_goes_green() -> None:
    output = render(patches(1), "text", color=True)
    assert "    ~ enabled: \x1b[31mtrue\x1b[0m -> \x1b[32mfalse\x1b[0m\n" in output
    assert output.startswith("\x1b[1mPlan: 0 to create, 1 to patch,")


def test_the_text_lists_sources_owned_elsewhere_under_their_own_heading() -> None:
    owned = OwnedElsewhere(source="Shared", id="b" * 24, owner="team-a")
    text = render(patches(1).model_copy(update={"owned_elsewhere": [owned]}), "text")
    assert (
        "\n\nOwned elsewhere (never written; --take-over takes over):\n"
        f'  - "Shared" ({"b" * 24}): owned by "team-a"\n'
    ) in text


@pytest.mark.parametrize("fmt", ["text", "markdown"])
def test_a_wait_cut_by_a_stop_says_why_when_every_write_was_made(fmt: str) -> None:
    applied = [ActionResult("patch", "Blog", "id:1", "applied", source_id="1")]
    report = ApplyReport(applied, writes=1, still_deploying=["1"], stopped="stopped by SIGTERM")
    assert "Apply: 1 applied, 0 failed. --wait stopped by SIGTERM: 1 not seen deployed." in (
        render_report(report, fmt)
    )
    # Given up on its own (10 minutes, a failed poll): stderr said why, nothing was stopped.
    quiet = render_report(replace(report, stopped=None), fmt)
    assert "stopped" not in quiet.replace("Not seen deployed", "")
    # A stop that cut the writes says so, and how to continue, instead.
    cut = replace(report, results=[*applied, ActionResult("patch", "Shop", "id:2", "stopped")])
    assert "--wait stopped" not in render_report(cut, fmt)


def test_the_report_summary_says_what_was_already_in_effect_and_what_went_stale() -> None:
    report = ApplyReport(
        results=[
            ActionResult("patch", "Blog", "id:1", "in effect", source_id="1"),
            ActionResult("patch", "Shop", "id:2", "stale", source_id="2"),
            ActionResult("patch", "Docs", "id:3", "stale", source_id="3"),
        ],
        writes=0,
    )
    assert render_report(report, "text").splitlines()[-1] == (
        "Apply: 0 applied, 0 failed. 1 already in effect (skipped). 2 not applied (changed "
        "since the plan): run plan again and review it."
    )


# --------------------------------------------------------------------------- every headline


def _headline_of(summary: Summary, *, acting: bool, view: Any, drifted: bool | None) -> str:
    actions = [one_patch(destructive=False)] if acting else []
    document = Plan(digest="sha256:" + "0" * 64, summary=summary, actions=actions)
    first = render(document, "text", view=view, drifted=drifted).splitlines()[0]
    # The comment words it the same: the reader of either is told the same thing.
    assert first in render(document, "markdown", view=view, drifted=drifted).splitlines()
    return first


@pytest.mark.parametrize(
    ("counts", "acting", "view", "drifted", "headline"),
    [
        ((0, 0, 3, 1, 1), False, "drift", True,
         "Drift: 1 observed source differs from the files (never written), "
         "3 in sync, 1 unmanaged."),
        ((0, 0, 3, 1, 2), False, "drift", True,
         "Drift: 2 observed sources differ from the files (never written), "
         "3 in sync, 1 unmanaged."),
        ((0, 0, 3, 1, 0), False, "drift", True,
         "Drift: changed outside imgix-reconciler (see the notices), 3 in sync, 1 unmanaged."),
        ((0, 0, 2, 4, 0), False, "drift", False,
         "In sync: 2 sources match the files, 4 unmanaged."),
        ((5, 1, 2, 4, 0), True, "drift", True,
         "Drift: 5 missing from imgix, 1 differing from the files, 2 in sync, 4 unmanaged."),
        ((0, 0, 2, 4, 0), False, "plan", None, "No changes: 2 unchanged, 4 unmanaged."),
        ((0, 0, 2, 4, 3), False, "plan", None,
         "No changes: 2 unchanged, 4 unmanaged, 3 observed (never written)."),
        ((5, 1, 2, 4, 0), True, "plan", None,
         "Plan: 5 to create, 1 to patch, 2 unchanged, 4 unmanaged."),
        ((5, 1, 2, 4, 3), True, "plan", None,
         "Plan: 5 to create, 1 to patch, 2 unchanged, 4 unmanaged, 3 observed (never written)."),
    ],
)  # fmt: skip
def test_each_headline_says_word_for_word_what_the_plan_does(
    counts: tuple[int, int, int, int, int],
    acting: bool,
    view: Any,
    drifted: bool | None,
    headline: str,
) -> None:
    create, patch, unchanged, unmanaged, observed = counts
    summary = Summary(
        create=create, patch=patch, unchanged=unchanged, unmanaged=unmanaged, observed=observed
    )
    assert _headline_of(summary, acting=acting, view=view, drifted=drifted) == headline


def test_every_flag_of_an_action_is_its_own_warning_in_text_and_markdown() -> None:
    action = one_patch(destructive=True).model_copy(
        update={
            "risks": ["disables", "moves_origin", "changes_credentials", "releases_hostnames"],
            "protected": True,
            "takes_over_from": "team-b",
        }
    )
    document = patches(1).model_copy(update={"actions": [action]})
    text = render(document, "text").splitlines()
    start = text.index('~ patch "A" (' + "a" * 24 + ")") + 1
    assert text[start : start + 4] == [
        "    ! disables a live source: apply needs --allow-disable",
        "    ! risky: moves its origin, changes its credentials, releases hostnames",
        "    ! mode: protect: apply needs --allow-protected-change",
        "    ! owned by team-b: apply needs --take-over",
    ]
    comment = render(document, "markdown")
    assert (
        "**⚠ disables a live source: apply needs --allow-disable**\n\n"
        "**⚠ risky: moves its origin, changes its credentials, releases hostnames**\n\n"
        "**⚠ mode: protect: apply needs --allow-protected-change**\n\n"
        "**⚠ owned by team-b: apply needs --take-over**\n\n"
    ) in comment
    # Unprotected and owned by no one else: only the risks and the disable are flagged.
    plain = action.model_copy(update={"protected": False, "takes_over_from": None})
    shown = render(document.model_copy(update={"actions": [plain]}), "text")
    assert "mode: protect" not in shown and "--take-over" not in shown


@pytest.mark.parametrize(
    ("cost", "line"),
    [
        (WriteCost(creates=1, updates=2, creates_per_hour=None, updates_per_hour=None, seconds=3),
         "Cost: 1 create and 2 updates; about 3 s (from an unspent hourly budget)."),
        (WriteCost(creates=2, updates=1, creates_per_hour=None, updates_per_hour=100, seconds=3900),
         "Cost: 2 creates and 1 update; about 1 h 05 min at 100 updates/h"
         " (from an unspent hourly budget)."),
        (WriteCost(creates=0, updates=0, creates_per_hour=50, updates_per_hour=None, seconds=0),
         "Cost: 0 creates and 0 updates; about 0 s at 50 creates/h"
         " (from an unspent hourly budget)."),
    ],
)  # fmt: skip
def test_the_cost_line_names_only_the_budgets_it_knows(cost: WriteCost, line: str) -> None:
    document = patches(1).model_copy(update={"cost": cost})
    assert line in render(document, "text").splitlines()
    assert line in render(document, "markdown").splitlines()
    # A plan that writes nothing costs nothing: no line, whatever the cost says.
    empty = document.model_copy(update={"actions": []})
    assert "Cost:" not in render(empty, "text") and "Cost:" not in render(empty, "markdown")


def every_kind_of_entry() -> Plan:
    """The representative plan, with an observed source and one owned elsewhere too."""
    observed = [
        ObservedSource(
            action=action,
            source=f"Watched {action}",
            id="d" * 24 if action == "patch" else None,
            changes=[Change(path="deployment.cache_ttl_value", before=86400, after=1800)],
        )
        for action in ("patch", "create")
    ]
    owned = [OwnedElsewhere(source="Shared", id="b" * 24, owner="team-a")]
    return representative_plan().model_copy(update={"observed": observed, "owned_elsewhere": owned})


def test_coloured_text_of_every_kind_of_entry_is_drawn_as_reviewed() -> None:
    # Colour is how a log's reader tells a create from a patch, and what goes from what comes.
    check_golden("plan.color.txt", render(every_kind_of_entry(), "text", color=True))


def test_the_comment_of_every_kind_of_entry_is_laid_out_as_reviewed() -> None:
    # Blank lines matter: a line right after the summary table would become one of its rows.
    check_golden("plan.every.md", render(every_kind_of_entry(), "markdown"))


def test_a_comment_is_a_plans_unless_it_is_asked_for_drift() -> None:
    comment = markdown.render(patches(1)).splitlines()
    assert comment[:2] == [MARKER, "### imgix-reconciler plan"]


@pytest.mark.parametrize("lists", [(), ("observed",), ("notices",), ("unmanaged",)])
def test_a_comment_exactly_as_long_as_its_budget_leaves_nothing_out(lists: tuple[str, ...]) -> None:
    # An empty list after the sources reserves no room: the sources may use all of it.
    document = patches(3)
    if "observed" in lists:
        watched = ObservedSource(action="patch", source="W", id="d" * 24, changes=[])
        document = document.model_copy(update={"observed": [watched]})
    if "notices" in lists:
        notice = Notice(source="N", id=None, kind="cannot_compare", detail="x")
        document = document.model_copy(update={"notices": [notice]})
    if "unmanaged" in lists:
        document = document.model_copy(
            update={"unmanaged": [UnmanagedSource(id="c" * 24, name="U")]}
        )
    whole = markdown.render(document, budget=10**6)
    assert markdown.render(document, budget=len(whole)) == whole
    assert "not shown" in markdown.render(document, budget=len(whole) - 1)


def test_the_text_report_ends_its_last_line_and_names_a_source_only_when_known() -> None:
    # A source --wait left with no result to name it (a report made by hand) shows its id.
    report = replace(_report(), still_deploying=["6359b5ba", "7"])
    shown = render_report(report, "text")
    assert shown.endswith(".\n") and not shown.endswith("\n\n")
    lines = shown.splitlines()
    start = lines.index("Not seen deployed when --wait ended: 6359b5ba, 7.")
    assert lines[start + 1 : start + 3] == [
        '  - "Blog" (6359b5ba): still deploying when the wait ended',
        "  - (7): still deploying when the wait ended",
    ]


def test_an_apply_report_exactly_as_long_as_its_budget_leaves_no_row_out() -> None:
    # The table's own header lines count against the budget like every row.
    report = replace(_report(), results=_report().results * 5)
    whole = markdown.render_report(report, budget=10**6)
    assert markdown.render_report(report, budget=len(whole)) == whole
    cut = markdown.render_report(report, budget=len(whole) - 1)
    assert "more outcomes: `--format text` lists them all." in cut
    # The table starts after a blank line: right after the summary it would be its text.
    assert cut.splitlines()[:7] == [
        "<!-- imgix-reconciler:apply -->",
        "### imgix-reconciler apply",
        "",
        "Apply: 5 applied, 5 failed. 5 not attempted (waiting for a failed action). "
        "5 not attempted (stopped by SIGTERM). Run apply again to continue: it plans afresh.",
        "",
        "| outcome | action | source | id | error |",
        "|---|---|---|---|---|",
    ]


@pytest.mark.parametrize(("first_row", "rows_shown"), [(8_000, 2), (8_001, 1)])
def test_rows_stop_only_once_a_section_holds_more_than_eight_thousand_characters(
    first_row: int, rows_shown: int
) -> None:
    def rows_of(changes: list[Change]) -> list[str]:
        action = one_patch(destructive=False).model_copy(update={"changes": changes})
        output = render(patches(1).model_copy(update={"actions": [action]}), "markdown")
        return [line for line in output.splitlines() if line.startswith("| ")][3:]

    probe = len(rows_of([Change(path="p", before=True, after=False)])[0])
    # A path is shown whole: one long enough makes the first row exactly `first_row` long.
    first = Change(path="p" * (1 + first_row - probe), before=True, after=False)
    rows = rows_of([first, Change(path="enabled", before=True, after=False)])
    assert len(rows[0]) == first_row
    assert len(rows) == 2
    assert rows[1].startswith(
        "| <code>enabled</code>" if rows_shown == 2 else "| … and 1 more change "
    )


def test_an_unknown_format_is_refused_with_the_formats_there_are(the_plan: Plan) -> None:
    with pytest.raises(ValueError) as plan_error:
        render(the_plan, "yaml")
    assert str(plan_error.value) == "unknown plan format 'yaml' (use one of text, markdown, json)"
    with pytest.raises(ValueError) as report_error:
        render_report(_report(), "yaml")
    assert str(report_error.value) == (
        "unknown report format 'yaml' (use one of text, markdown, json)"
    )


def test_the_markdown_report_lists_every_reason_a_source_was_not_seen_deployed() -> None:
    # No source still deploying: the reasons after the first are listed all the same.
    applied = [
        ActionResult("patch", f"S{n}", f"id:{n}", "applied", source_id=f"{n}") for n in range(25)
    ]
    report = ApplyReport(
        applied,
        writes=25,
        still_deploying=[f"{n}" for n in range(23)],
        given_up={**{f"{n}": "gone" for n in range(21)}, "21": "unknown", "22": "unknown"},
    )
    lines = render_report(report, "markdown").splitlines()
    gone = ", ".join(f"<code>{n}</code>" for n in range(20))
    assert lines[-2:] == [
        f"- gone (the API answers 404): {gone} and 1 more.",
        "- unknown (its poll failed: see --wait gave up on stderr): "
        "<code>21</code>, <code>22</code>.",
    ]
    twenty = replace(report, still_deploying=[f"{n}" for n in range(20)])
    assert render_report(twenty, "markdown").endswith(f"- gone (the API answers 404): {gone}.\n")


def test_a_cut_markdown_report_keeps_the_rows_of_what_did_not_apply() -> None:
    applied = [
        ActionResult("patch", f"S{n}", f"id:{n}", "applied", source_id=f"{n}") for n in range(200)
    ]
    failed = ActionResult("patch", "Broken", "id:x", "failed", source_id="x", error="HTTP 500")
    skipped = ActionResult("create", "New", "new:new", "skipped")
    report = ApplyReport([*applied, failed, skipped], writes=200)
    lines = markdown.render_report(report, budget=3_000).splitlines()
    assert (
        "| failed | patch | <code>Broken</code> | <code>x</code> | <code>HTTP 500</code> |" in lines
    )
    # A create never made has no id: its cell is empty.
    assert "| skipped | create | <code>New</code> |  |  |" in lines
    rows = [line for line in lines if line.startswith("| applied |")]
    assert len(set(rows)) == len(rows) > 0
    assert lines[-1] == f"… and {200 - len(rows)} more outcomes: `--format text` lists them all."
