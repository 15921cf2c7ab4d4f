"""The plan document itself (`--format json`), as `schemas/plan.schema.json` describes it."""

from __future__ import annotations

from reconciler.plan import Plan


def render(plan: Plan) -> str:
    """The plan document, ending with a newline."""
    return plan.to_json() + "\n"
