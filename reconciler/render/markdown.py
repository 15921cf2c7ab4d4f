"""The plan as a pull-request comment: summary first, one collapsible section per source.

GitHub refuses comments over 65,536 characters, so sections are added in plan order until
a budget is reached, and a note says how many were left out. The output depends only on
the plan, so the same plan always gives the same comment.
"""

from __future__ import annotations

import html
from collections.abc import Iterator

from reconciler.plan import Action, Notice, Plan, UnmanagedSource
from reconciler.render.values import (
    DISABLES,
    View,
    headline,
    shown,
    source_names,
    waits_for,
)

MARKER = "<!-- imgix-reconciler:plan -->"
# A scheduled drift check may post to an issue: its own marker, so it updates its own.
DRIFT_MARKER = "<!-- imgix-reconciler:drift -->"
GITHUB_LIMIT = 65_536
# Room under GitHub's limit for the notes and closing lines added after the budget is hit.
BUDGET = 60_000
MAX_CELL = 300
MAX_NAMED = 20
# Space kept for each of the notices and unmanaged lists when sources alone would fill it.
TAIL_SHARE = 5_000

_SIGN = {"create": "+", "patch": "~"}


def render(plan: Plan, *, budget: int = BUDGET, view: View = "plan") -> str:
    """The plan as GitHub-flavoured markdown, at most `budget` characters plus short notes."""
    marker = DRIFT_MARKER if view == "drift" else MARKER
    head = [marker, f"### imgix-reconciler {view}", "", headline(plan, view), "", *_summary(plan)]
    head += _destructive(plan)
    foot = ["", f"Digest: `{plan.digest}`"] if plan.actions else []

    parts = ["\n".join(head) + "\n"]
    used = len(parts[0]) + len("\n".join(foot)) + 1
    notices = [_notice(n) for n in plan.notices]
    unmanaged = [_unmanaged(u) for u in plan.unmanaged]
    # Sources come first, but notices and unmanaged sources keep a share of the space.
    tail = min(sum(map(len, notices)), TAIL_SHARE) + min(sum(map(len, unmanaged)), TAIL_SHARE)
    names = source_names(plan)
    blocks: list[tuple[str, int, Iterator[str], str, int]] = [
        ("sources", len(plan.actions), (_action(names, a) for a in plan.actions), "", tail),
        (
            "notices",
            len(notices),
            iter(notices),
            "\n#### Notices\n\n",
            min(sum(map(len, unmanaged)), TAIL_SHARE),
        ),
        ("unmanaged sources", len(unmanaged), iter(unmanaged), _UNMANAGED, 0),
    ]
    for what, count, sections, title, reserve in blocks:
        if count:
            text, used = _fit(sections, count, title, what, used, budget - reserve)
            parts.append(text)
    return "".join(parts) + "\n".join(foot) + "\n"


def _destructive(plan: Plan) -> list[str]:
    names = [a.source for a in plan.actions if a.destructive]
    if not names:
        return []
    listed = ", ".join(_name(n) for n in names[:MAX_NAMED])
    if len(names) > MAX_NAMED:
        listed += f" and {len(names) - MAX_NAMED} more"
    return [
        "",
        f"> **⚠ Destructive: {len(names)} of these actions disable a live source "
        f"({listed}); apply needs `--allow-disable`.**",
    ]


_UNMANAGED = "\n#### Unmanaged sources (live, matched by no source; never touched)\n\n"


def _fit(
    sections: Iterator[str], count: int, title: str, what: str, used: int, budget: int
) -> tuple[str, int]:
    """As many sections as the budget allows, then an "N more" note.

    Sections are made lazily: a 10,000-source plan renders only what fits.
    """
    out = [title]
    used += len(title)
    for shown_count, section in enumerate(sections):
        if used + len(section) > budget:
            hidden = count - shown_count
            note = f"\n… and {hidden} more {what} not shown (see the JSON plan).\n"
            out.append(note)
            return "".join(out), used + len(note)
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


def _cell(value: str) -> str:
    if len(value) > MAX_CELL:
        value = value[: MAX_CELL - 1] + "…"
    return "<code>" + _name(value).replace("\n", " ") + "</code>"


def _name(text: str) -> str:
    return html.escape(text, quote=False).replace("|", "&#124;")


def _action(names: dict[str, str], action: Action) -> str:
    summary = f"<b>{_SIGN[action.action]} {action.action}</b> {_name(action.source)}"
    if action.id:
        summary += f" (<code>{action.id}</code>)"
    if action.destructive:
        summary += " ⚠"
    lines = ["", f"<details><summary>{summary}</summary>", ""]
    if action.destructive:
        lines += [f"**⚠ {DISABLES}**", ""]
    for name in waits_for(names, action):
        lines += [f"Applied after {_name(name)} (it releases a hostname this claims).", ""]
    lines += ["| attribute | before | after |", "|---|---|---|"]
    for change in action.changes:
        before = "" if action.action == "create" else _cell(shown(change.before))
        after = _cell(shown(change.after))
        lines.append(f"| <code>{_name(change.path)}</code> | {before} | {after} |")
    lines += ["", "</details>", ""]
    return "\n".join(lines)


def _notice(notice: Notice) -> str:
    where = f" (<code>{notice.id}</code>)" if notice.id else ""
    return f"- **{_name(notice.source)}**{where}: {_name(notice.detail)}\n"


def _unmanaged(source: UnmanagedSource) -> str:
    return f"- {_name(source.name)} (<code>{source.id}</code>)\n"
