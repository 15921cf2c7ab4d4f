"""The plan document and the apply report as JSON (`--format json`), each with its schema.

`schemas/plan.schema.json` describes the plan, `schemas/apply-report.schema.json` the
report; tests keep both files equal to what the models generate.
"""

from __future__ import annotations

import functools
import json
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, JsonValue

from reconciler.plan import Plan
from reconciler.untrusted import json_document

# The report's types are imported with the first report (`_document_model`): `plan`
# renders none.
if TYPE_CHECKING:
    from reconciler.report import ApplyReport

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def render(plan: Plan) -> str:
    """The plan document, ending with a newline; printed, so made inert (same JSON)."""
    return json_document(_numbers_masked(plan.to_json())) + "\n"


def _numbers_masked(text: str) -> str:
    """`text` with each number that holds a secret (a numeric password) as a masked string.

    The redaction point masks a secret wherever it is printed: inside a string the JSON
    stays valid, but `"after": 31536000` would become `"after": ***`.
    """
    from reconciler import redact

    if not redact.holds(text):
        return text

    def masked(value: Any) -> Any:
        if isinstance(value, dict):
            return {key: masked(item) for key, item in value.items()}
        if isinstance(value, list):
            return [masked(item) for item in value]
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = json.dumps(value)
            return redact.scrub(number) if redact.holds(number) else value
        return value

    return json.dumps(masked(json.loads(text)), indent=2, ensure_ascii=False)


def render_report(report: ApplyReport, digest: str | None = None) -> str:
    """The apply report document, ending with a newline, made inert like the plan."""
    outcomes = [result.outcome for result in report.results]
    document = _document_model()(
        digest=digest,
        ok=report.ok,
        counts={outcome: outcomes.count(outcome) for outcome in dict.fromkeys(outcomes)},
        results=report.results,
        writes=report.writes,
        still_deploying=report.still_deploying,
        not_deployed=report.not_deployed,
        stopped=report.stopped,
    )
    return json_document(_numbers_masked(document.model_dump_json(indent=2))) + "\n"


def report_json_schema() -> dict[str, JsonValue]:
    """The JSON Schema of the apply report (`schemas/apply-report.schema.json`)."""
    return {"$schema": SCHEMA_DIALECT, **_document_model().model_json_schema()}


@functools.cache
def _document_model() -> type[BaseModel]:
    """The report document's model, defined with the report's types at the first report.

    `plan --format json` imports this module too, and even a deferred model collects its
    fields when defined (about 0.7 ms at every start).
    """
    from reconciler.report import ActionResult, NotDeployed, Outcome

    class ApplyReportDocument(BaseModel):
        """What `apply --format json` prints: every action's outcome, and whether all applied."""

        model_config = ConfigDict(extra="forbid", frozen=True)

        format_version: Literal[1] = 1
        # The digest of the plan applied: the one reviewed, when `--expect-digest` was given.
        digest: str | None
        ok: bool
        counts: dict[Outcome, int]
        results: list[ActionResult]
        writes: int
        still_deploying: list[str]
        # Why each of `still_deploying` was not seen deployed.
        not_deployed: dict[str, NotDeployed]
        stopped: str | None

    return ApplyReportDocument
