"""The plan as a pull-request comment: summary first, one collapsible section per source.

GitHub refuses comments over 65,536 characters, so sections are added in plan order until
a budget is reached, and a note says how many were left out. The output depends only on
the plan, so the same plan always gives the same comment.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from reconciler import deferred, redact
from reconciler.github import COMMENT_BUDGET
from reconciler.plan import (
    NOT_RETURNED,
    Action,
    Adoption,
    Change,
    Notice,
    ObservedSource,
    OwnedElsewhere,
    Plan,
    UnmanagedSource,
)
from reconciler.render.values import (
    DISABLES,
    NOT_DEPLOYED_WHY,
    WAIT_LEFT,
    View,
    action_flags,
    adoption_names,
    blast_radius_warning,
    cost_line,
    counted,
    headline,
    report_summary,
    shown,
    shown_error,
    shown_outcome,
    source_names,
    waits_for,
)
from reconciler.untrusted import json_shown, markdown_text

if TYPE_CHECKING:
    from reconciler.report import ActionResult, ApplyReport

MARKER = "<!-- imgix-reconciler:plan -->"
# A scheduled drift check may post to an issue: its own marker, so it updates its own.
DRIFT_MARKER = "<!-- imgix-reconciler:drift -->"
REPORT_MARKER = "<!-- imgix-reconciler:apply -->"
# A plan is a pull request's comment: the room GitHub leaves it (`github.COMMENT_BUDGET`).
BUDGET = COMMENT_BUDGET
MAX_CELL = 300
MAX_NAMED = 20
# Characters of markdown one name takes in a list of names (the destructive sources, the
# sources owned elsewhere, the adoption notice): 20 of them stay a few thousand, whatever
# the names hold (escaping can make one character eight).
MAX_LISTED_NAME = 200
# Characters of attribute rows one source's section shows: a source with hundreds of long
# values (its `default_params`) must not take the whole comment and hide the sources after it.
MAX_SECTION_ROWS = 8_000
# Space kept for each list after the sources (observed sources, notices, unmanaged sources)
# when the sources alone would fill the comment.
TAIL_SHARE = 5_000

_SIGN = {"create": "+", "patch": "~"}
_DIGEST = deferred.pattern(__name__, "_DIGEST", r"sha256:[0-9a-f]{64}")


def render(
    plan: Plan, *, budget: int = BUDGET, view: View = "plan", drifted: bool | None = None
) -> str:
    """The plan as GitHub-flavoured markdown, at most `budget` characters plus short notes."""
    marker = DRIFT_MARKER if view == "drift" else MARKER
    head = [
        marker,
        f"### imgix-reconciler {view}",
        "",
        headline(plan, view, drifted),
        "",
        *_summary(plan),
    ]
    if plan.actions and plan.cost is not None:
        head += ["", cost_line(plan.cost)]
    head += _destructive(plan)
    warning = blast_radius_warning(plan)
    if warning is not None:
        head += ["", f"> **⚠ {markdown_text(warning)}**"]
    if plan.owned_elsewhere:
        head += ["", _OWNED, *(_owned(o) for o in plan.owned_elsewhere[:MAX_NAMED])]
        if len(plan.owned_elsewhere) > MAX_NAMED:
            head.append(f"- … and {len(plan.owned_elsewhere) - MAX_NAMED} more")
    foot = ["", f"Digest: {_digest(plan.digest)}"] if plan.actions else []

    parts = ["\n".join(head) + "\n"]
    used = len(parts[0]) + len("\n".join(foot)) + 1
    notices = [_adoption(plan.adoption)] if plan.adoption else []
    notices += [_notice(n) for n in plan.notices]
    lists = [
        ("observed source", [_observed(o) for o in plan.observed], _OBSERVED),
        ("notice", notices, "\n#### Notices\n\n"),
        ("unmanaged source", [_unmanaged(u) for u in plan.unmanaged], _UNMANAGED),
    ]
    # Sources come first, but each list after them keeps a share of the space: its title
    # and sections, up to TAIL_SHARE.
    shares = [
        min(len(title) + sum(map(len, sections)), TAIL_SHARE) if sections else 0
        for _, sections, title in lists
    ]
    names = source_names(plan)
    if plan.actions:
        sources = (_action(names, a) for a in plan.actions)
        text, used = _fit(sources, len(plan.actions), "", "source", used, budget - sum(shares))
        parts.append(text)
    for position, (what, sections, title) in enumerate(lists):
        if sections:
            reserve = sum(shares[position + 1 :])
            text, used = _fit(iter(sections), len(sections), title, what, used, budget - reserve)
            parts.append(text)
    return "".join(parts) + "\n".join(foot) + "\n"


def _destructive(plan: Plan) -> list[str]:
    names = [a.source for a in plan.actions if a.destructive]
    if not names:
        return []
    listed = ", ".join(_listed(n) for n in names[:MAX_NAMED])
    if len(names) > MAX_NAMED:
        listed += f" and {len(names) - MAX_NAMED} more"
    verb = "disables" if len(names) == 1 else "disable"
    return [
        "",
        f"> **⚠ Destructive: {len(names)} of these actions {verb} a live source ({listed}); "
        "apply needs `--allow-disable`.**",
    ]


_OBSERVED = "\n#### Observed sources (mode: observe; never written)\n"
_OWNED = (
    "**Owned elsewhere** (their marker names another owner; never written, "
    "`--take-over` takes over):"
)
_UNMANAGED = "\n#### Unmanaged sources (live, matched by no source; never touched)\n\n"


def _fit(
    sections: Iterator[str], count: int, title: str, what: str, used: int, budget: int
) -> tuple[str, int]:
    """As many sections as the budget allows, then an "N more" note, and the budget used.

    Sections are made lazily: a 10,000-source plan renders only what fits. The note is
    one of the short notes allowed past the budget: it takes no room from the lists after.
    """
    out = [title]
    used += len(title)
    for shown_count, section in enumerate(sections):
        if used + len(section) > budget:
            hidden = count - shown_count
            more = counted(hidden, "more " + what)
            out.append(f"\n… and {more} not shown (see the JSON plan).\n")
            return "".join(out), used
        out.append(section)
        used += len(section)
    return "".join(out), used


def _summary(plan: Plan) -> list[str]:
    s = plan.summary
    return [
        "| create | patch | unchanged | unmanaged |",
        "|---:|---:|---:|---:|",
        f"| {s.create} | {s.patch} | {s.unchanged} | {s.unmanaged} |",
    ]


def _short(value: str) -> str:
    # Masked before the cut: a cut ending inside a secret leaves a part no mask matches.
    value = redact.scrub(value)
    return value if len(value) <= MAX_CELL else value[: MAX_CELL - 1] + "…"


def _listed(name: str, limit: int = MAX_LISTED_NAME) -> str:
    """`name` as inert markdown of at most `limit` characters, cut with "…" when longer."""
    name = redact.scrub(name)  # before the cut, as in `_short`
    shown = markdown_text(name)
    kept = len(name)
    while len(shown) > limit:
        # Escaping lengthens some characters: keep the share of the text that fits.
        kept = min(kept - 1, kept * (limit - 1) // len(shown))
        shown = markdown_text(name[:kept]) + "…"
    return shown


def _cell(value: str) -> str:
    return _code(_short(value))


def _code(text: str) -> str:
    return f"<code>{markdown_text(text)}</code>"


# The redaction point masks registered values as this renderer spells them, too: as
# text, and inside the JSON of a value cell.
redact.mask_form(markdown_text)
redact.mask_form(lambda value: markdown_text(json_shown(value)[1:-1]))


def _digest(digest: str) -> str:
    # A code span shows entities literally, so only a well-formed digest goes in one.
    return f"`{digest}`" if _DIGEST.fullmatch(digest) else _code(digest)


def _action(names: dict[str, str], action: Action) -> str:
    summary = f"<b>{_SIGN[action.action]} {action.action}</b> {_listed(action.source)}"
    if action.id:
        summary += f" ({_code(action.id)})"
    if action.destructive:
        summary += " ⚠"
    lines = ["", f"<details><summary>{summary}</summary>", ""]
    if action.destructive:
        lines += [f"**⚠ {DISABLES}**", ""]
    for flag in action_flags(action):
        lines += [f"**⚠ {_listed(flag, 2 * MAX_LISTED_NAME)}**", ""]
    for name in waits_for(names, action):
        lines += [f"Applied after {_listed(name)} (it releases a hostname this claims).", ""]
    lines += ["| attribute | before | after |", "|---|---|---|"]
    lines += _rows(action.changes, creates=action.action == "create")
    lines += ["", "</details>", ""]
    return "\n".join(lines)


def _rows(changes: list[Change], *, creates: bool) -> list[str]:
    """A table row per change, until about `MAX_SECTION_ROWS` characters; then how many more."""
    rows: list[str] = []
    size = 0
    for count, change in enumerate(changes):
        if size > MAX_SECTION_ROWS:
            left = len(changes) - count
            more = f"{left} more change{'s' if left != 1 else ''}"
            rows.append(f"| … and {more} (see the JSON plan) | | |")
            break
        before = "" if creates else _cell(shown(change.before))
        rows.append(f"| {_code(change.path)} | {before} | {_cell(shown(change.after))} |")
        size += len(rows[-1])
    return rows


def _observed(observed: ObservedSource) -> str:
    summary = f"<b>= observed</b> {_listed(observed.source)}"
    if observed.id:
        summary += f" ({_code(observed.id)})"
    lines = ["", f"<details><summary>{summary}</summary>", ""]
    lines += ["| attribute | live | file |", "|---|---|---|"]
    lines += _rows(observed.changes, creates=observed.action == "create")
    lines += ["", "</details>", ""]
    return "\n".join(lines)


def _owned(owned: OwnedElsewhere) -> str:
    source, where, owner = _listed(owned.source), _listed(owned.id), _listed(owned.owner)
    return f"- {source} (<code>{where}</code>): owned by <code>{owner}</code>"


def _notice(notice: Notice) -> str:
    where = f" ({_code(notice.id)})" if notice.id else ""
    return f"- **{markdown_text(notice.source)}**{where}: {markdown_text(notice.detail)}\n"


def _adoption(adoption: Adoption) -> str:
    names, hidden = adoption_names(adoption)
    listed = ", ".join(f"**{_listed(name)}**" for name in names)
    more = f" and {hidden} more" if hidden else ""
    return f"- {markdown_text(adoption.detail)}: {listed}{more}\n"


def _unmanaged(source: UnmanagedSource) -> str:
    name = source.name if source.name == NOT_RETURNED else markdown_text(source.name)
    return f"- {name} ({_code(source.id)})\n"


def render_report(report: ApplyReport, budget: int = BUDGET) -> str:
    """The apply report as markdown: a table of every action's outcome, then the summary.

    Like a plan, it fits a comment: past the budget, the rows of actions that did not
    apply come first, and a line says how many rows were left out.
    """
    head = [REPORT_MARKER, "### imgix-reconciler apply", "", report_summary(report)]
    tail = []
    if report.still_deploying:
        tail = ["", f"{WAIT_LEFT}:", "", *_not_deployed(report)]
    table = []
    if report.results:
        header = ["", "| outcome | action | source | id | error |", "|---|---|---|---|---|"]
        room = budget - sum(len(line) + 1 for line in [*head, *header, *tail])
        table = [*header, *_outcome_rows(report.results, room)]
    return "\n".join([*head, *table, *tail]) + "\n"


# Room kept for the line that says how many rows were left out.
_LEFT_OUT_LINE = 100


def _not_deployed(report: ApplyReport) -> list[str]:
    """A line per reason --wait did not see sources deployed, naming at most `MAX_NAMED`."""
    by_why: dict[str, list[str]] = {}
    for source_id in report.still_deploying:
        by_why.setdefault(report.why_not_deployed(source_id), []).append(source_id)
    lines = []
    for why, words in NOT_DEPLOYED_WHY.items():
        source_ids = by_why.get(why, [])
        if not source_ids:
            continue
        ids = ", ".join(_cell(source_id) for source_id in source_ids[:MAX_NAMED])
        if len(source_ids) > MAX_NAMED:
            ids += f" and {len(source_ids) - MAX_NAMED} more"
        lines.append(f"- {words}: {ids}.")
    return lines


def _outcome_rows(results: list[ActionResult], room: int) -> list[str]:
    """A table row per result, or as many as `room` holds and a line for the others.

    Rows are made only until the room is full: 100,000 actions cost a comment's worth.
    """
    from reconciler.report import DONE

    rows = _rows_within(results, range(len(results)), room)
    if len(rows) == len(results):
        return rows
    # Cut: what did not apply is what a reader must see.
    undone = [n for n, result in enumerate(results) if result.outcome not in DONE]
    done = [n for n, result in enumerate(results) if result.outcome in DONE]
    kept = _rows_within(results, undone + done, room - _LEFT_OUT_LINE)
    left = len(results) - len(kept)
    return [*kept, "", f"… and {left} more outcomes: `--format text` lists them all."]


def _rows_within(results: list[ActionResult], order: Iterable[int], room: int) -> list[str]:
    rows = []
    for n in order:
        row = _outcome_row(results[n])
        room -= len(row) + 1
        if room < 0:
            break
        rows.append(row)
    return rows


def _outcome_row(result: ActionResult) -> str:
    cells = (
        shown_outcome(result.outcome),
        result.action,
        _cell(result.source),
        _cell(result.source_id) if result.source_id else "",
        _cell(shown_error(result)) if result.error else "",
    )
    return "| " + " | ".join(cells) + " |"
