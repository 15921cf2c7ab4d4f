"""The plan document itself (`--format json`), as `schemas/plan.schema.json` describes it."""

from __future__ import annotations

from reconciler.plan import Plan
from reconciler.untrusted import json_document


def render(plan: Plan) -> str:
    """The plan document, ending with a newline; printed, so made inert (same JSON)."""
    return json_document(plan.to_json()) + "\n"
