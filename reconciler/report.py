"""The apply report: each action's outcome, as the applier returns it and renderers show it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

# skipped: a dependency did not apply; stopped: not attempted, the run was stopping;
# in effect: an action that an earlier run (or someone) already applied; stale: not
# applied, its source changed (or went) since the plan, which must be made again.
Outcome = Literal["applied", "failed", "skipped", "stopped", "in effect", "stale"]
DONE: frozenset[Outcome] = frozenset({"applied", "in effect"})
# Why --wait did not see a source deployed: still deploying when the wait ended, its
# status deleted, gone (the API answered 404), or unknown (its poll failed).
NotDeployed = Literal["deploying", "deleted", "gone", "unknown"]


@dataclass(frozen=True)
class ActionResult:
    """What happened to one action."""

    action: str
    source: str
    key: str
    outcome: Outcome
    source_id: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class ApplyReport:
    """Every action's outcome, in plan order."""

    results: list[ActionResult] = field(default_factory=list)
    writes: int = 0
    # With --wait: ids of touched sources not seen deployed (or disabled) when the wait
    # ended: still deploying, deleted meanwhile, or unknown after a failed poll.
    still_deploying: list[str] = field(default_factory=list)
    # Of those, the ones the wait gave up on before it ended, and why; the rest were still
    # deploying. Kept apart so that a report made with `still_deploying` alone reads right.
    given_up: dict[str, NotDeployed] = field(default_factory=dict)

    # Why the run stopped early (a signal, --max-duration), if it did.
    stopped: str | None = None

    @property
    def failed(self) -> list[ActionResult]:
        """Actions that did not fully apply (failed, stale, skipped, or not attempted)."""
        return [r for r in self.results if r.outcome not in DONE]

    @property
    def ok(self) -> bool:
        """Whether every action applied (and, when waited for, deployed)."""
        return not self.failed and not self.still_deploying

    def why_not_deployed(self, source_id: str) -> NotDeployed:
        """Why `--wait` did not see a source of `still_deploying` deployed."""
        return self.given_up.get(source_id, "deploying")

    @property
    def not_deployed(self) -> dict[str, NotDeployed]:
        """Each source `--wait` did not see deployed, in report order, and why."""
        return {i: self.why_not_deployed(i) for i in self.still_deploying}

    @property
    def touched_ids(self) -> list[str]:
        """Ids of the sources that were written."""
        return [r.source_id for r in self.results if r.source_id and r.outcome == "applied"]
