"""Executing a plan: staleness checks, secret resolution, concurrent writes, the report.

The applier never re-plans: it sends exactly the writes the plan holds. Everything that
can refuse (a destructive action without permission, a stale saved plan, a secret that
cannot be read) is checked before the first write, so a refusal writes nothing.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from reconciler import redact, references
from reconciler.live import LiveSource
from reconciler.plan import Action, Plan
from reconciler.references import UnreadableReference
from reconciler.secrets import recording_annotation, stamp_fingerprints
from reconciler.specs import HOSTNAME_FIELDS, reference_value_problem, secret_value_problem


class ApplyRefused(Exception):
    """Nothing was written: the plan may not be applied as it is (exit 1)."""


class StalePlan(Exception):
    """Nothing was written: live sources changed since the plan was made (exit 4)."""


class SourcesApi(Protocol):
    """What the applier needs of the API client."""

    async def list_sources(self) -> list[LiveSource]: ...
    async def get_source(self, source_id: str) -> LiveSource: ...
    async def create_source(self, attributes: dict[str, Any]) -> LiveSource: ...
    async def update_source(self, source_id: str, attributes: dict[str, Any]) -> LiveSource: ...


Outcome = Literal["applied", "failed", "skipped"]


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
    # With --wait: ids of touched sources still deploying when the wait gave up.
    still_deploying: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[ActionResult]:
        """Actions that did not fully apply (failed, or skipped because a dependency failed)."""
        return [r for r in self.results if r.outcome != "applied"]

    @property
    def ok(self) -> bool:
        """Whether every action applied (and, when waited for, deployed)."""
        return not self.failed and not self.still_deploying

    @property
    def touched_ids(self) -> list[str]:
        """Ids of the sources that were written."""
        return [r.source_id for r in self.results if r.source_id and r.outcome == "applied"]


# --------------------------------------------------------------------------- preflight


def check_permissions(plan: Plan, *, allow_disable: bool) -> None:
    """Refuse a plan that disables live sources unless the user allowed it."""
    destructive = [a.source for a in plan.actions if a.destructive]
    if destructive and not allow_disable:
        names = ", ".join(sorted(destructive))
        raise ApplyRefused(
            f"the plan disables live sources ({names}); re-run with --allow-disable "
            "to let it, or set enabled: true in the file"
        )


def check_fresh(plan: Plan, live: Sequence[LiveSource]) -> None:
    """Refuse a saved plan whose touched sources changed, or whose claims were taken, since."""
    by_id = {source.id: source for source in live}
    owner = {host: source.id for source in live for host in source.hostnames}
    released = _released_hostnames(plan, by_id)
    stale: list[str] = []
    for action in plan.actions:
        if action.id is not None:
            now = by_id.get(action.id)
            if now is None:
                stale.append(f"{action.source} ({action.id}) no longer exists")
            elif now.fingerprint() != action.live_fingerprint:
                stale.append(f"{action.source} ({action.id}) changed")
        taken = sorted(
            host
            for host in _claimed_hostnames(action)
            if owner.get(host, action.id) != action.id and host not in released
        )
        if taken:
            stale.append(f"{action.source}: {', '.join(taken)} now taken")
    if stale:
        raise StalePlan(
            "the saved plan is stale, nothing was written: "
            + "; ".join(stale)
            + ". Run plan again and review the new plan."
        )


def _hostname_lists(action: Action) -> dict[str, set[str]]:
    """The hostname lists the action's writes set (a patch sends only the changed ones)."""
    lists: dict[str, set[str]] = {}
    for write in action.writes:
        deployment = write.get("deployment")
        if not isinstance(deployment, dict):
            continue
        for key in HOSTNAME_FIELDS:
            values = deployment.get(key)
            if isinstance(values, list):
                lists[key] = {v for v in values if isinstance(v, str)}
    return lists


def _claimed_hostnames(action: Action) -> set[str]:
    return set().union(*_hostname_lists(action).values())


def _released_hostnames(plan: Plan, by_id: Mapping[str, LiveSource]) -> set[str]:
    """Hostnames the plan's own patches give up: its other actions may claim them."""
    released: set[str] = set()
    for action in plan.actions:
        live = by_id.get(action.id) if action.id is not None else None
        if live is None:
            continue
        for key, wanted in _hostname_lists(action).items():
            released |= set(live.deployment.get(key) or []) - wanted
    return released


# --------------------------------------------------------------------------- secrets


class SecretResolver:
    """Reads a plan's placeholders (secrets and other referenced values) at send time."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = os.environ if environ is None else environ

    def value(self, locator: Mapping[str, Any]) -> str:
        """The value behind `{"env": NAME}` or `{"file": PATH}`; registered for redaction."""
        try:
            return references.read_located(locator, environ=self._environ)
        except UnreadableReference as error:
            raise ApplyRefused(f"{error} (a reference of the plan)") from None

    def resolve(self, body: Any, field: str | None = None) -> Any:
        """A copy of `body` with every placeholder replaced by its value.

        `{"secret": locator}` stands for a secret, `{"reference": locator}` for another
        attribute's referenced value (with a `suffix`, the marker after annotation text).
        Each value must pass its attribute's checks (a 32-character handshake, a URL...)
        here, before any write, as the loader would have checked it; the error names the
        reference, never the value.
        """
        if isinstance(body, dict):
            kind = next(iter(body), None)
            if kind in ("secret", "reference") and isinstance(body[kind], dict):
                return self._placeholder(body, kind, field)
            return {key: self.resolve(value, key) for key, value in body.items()}
        if isinstance(body, list):
            return [self.resolve(item) for item in body]
        return body

    def _placeholder(self, body: Mapping[str, Any], kind: str, field: str | None) -> str:
        extra = set(body) - {kind, "suffix"} if kind == "reference" else set(body) - {kind}
        if extra:
            raise ApplyRefused(f"malformed placeholder in the plan for {field}")
        locator = body[kind]
        value = self.value(locator)
        if field is not None:
            problem = (
                secret_value_problem(field, value)
                if kind == "secret"
                else reference_value_problem(field, value)
            )
            if problem:
                where = ", ".join(f"{k}: {v}" for k, v in locator.items())
                raise ApplyRefused(f"{field} (from {{{where}}}) {problem}")
        suffix = body.get("suffix", "")
        return value + suffix if isinstance(suffix, str) else value


# --------------------------------------------------------------------------- execution


def _stamped(body: dict[str, Any], key: bytes | None) -> dict[str, Any]:
    deployment = body.get("deployment")
    if key is None or not isinstance(deployment, dict):
        return body
    return {**body, "deployment": stamp_fingerprints(deployment, key)}


async def apply_plan(
    plan: Plan,
    api: SourcesApi,
    *,
    resolver: SecretResolver,
    fingerprint_key: bytes | None = None,
    allow_disable: bool = False,
    saved: bool = False,
    on_result: Callable[[ActionResult], None] | None = None,
) -> ApplyReport:
    """Apply `plan`; refusals raise before any write, per-action failures are reported.

    With `fingerprint_key`, each write's marker is re-stamped with the fingerprints of the
    secret values actually sent (they may differ from the plan's for a saved plan).
    """
    check_permissions(plan, allow_disable=allow_disable)
    bodies = {
        action.key: [_stamped(resolver.resolve(w), fingerprint_key) for w in action.writes]
        for action in plan.actions
    }
    if saved:
        check_fresh(plan, await api.list_sources())

    done: dict[str, asyncio.Event] = {a.key: asyncio.Event() for a in plan.actions}
    results: dict[str, ActionResult] = {}
    writes = 0

    async def run(action: Action) -> None:
        nonlocal writes
        for dependency in action.depends_on:
            if dependency in done:
                await done[dependency].wait()
        blocked = [d for d in action.depends_on if d in results and results[d].outcome != "applied"]
        if blocked:
            why = f"not attempted: it waits for {', '.join(blocked)}, which did not apply"
            result = _result(action, "skipped", action.id, why)
        else:
            result, made = await _execute(action, bodies[action.key], api)
            writes += made
        results[action.key] = result
        done[action.key].set()
        if on_result is not None:
            on_result(result)

    await asyncio.gather(*(run(action) for action in plan.actions))
    return ApplyReport([results[a.key] for a in plan.actions], writes)


async def _execute(
    action: Action, bodies: list[dict[str, Any]], api: SourcesApi
) -> tuple[ActionResult, int]:
    """Send one action's writes in order; the result and the number of writes made."""
    source_id, writes = action.id, 0
    try:
        for body in bodies:
            if source_id is None:
                returned = await api.create_source(body)
                source_id = returned.id
            else:
                returned = await api.update_source(source_id, body)
            writes += 1
            # A disabled source refuses the patch; enabling it only to record a hash
            # would serve traffic the file does not want: recorded once it is enabled.
            if action.record_encrypted and returned.enabled:
                writes += await _record_encrypted(api, returned)
    except Exception as error:  # one failed action must not stop the others
        message = redact.scrub(str(error)) or type(error).__name__
        return _result(action, "failed", source_id, message), writes
    return _result(action, "applied", source_id), writes


async def _record_encrypted(api: SourcesApi, source: LiveSource) -> int:
    """Record in the marker the `*_encrypted` values `source` came back with; writes made."""
    annotation = recording_annotation(source.deployment)
    if annotation is None:
        return 0
    await api.update_source(source.id, {"deployment": {"annotation": annotation}})
    return 1


def _result(
    action: Action, outcome: Outcome, source_id: str | None, error: str | None = None
) -> ActionResult:
    return ActionResult(
        action=action.action,
        source=action.source,
        key=action.key,
        outcome=outcome,
        source_id=source_id,
        error=error,
    )


async def wait_until_deployed(
    api: SourcesApi,
    source_ids: Sequence[str],
    *,
    interval: float = 2.0,
    timeout: float = 600.0,
    sleep: Callable[[float], Any] = asyncio.sleep,
    on_status: Callable[[LiveSource], None] | None = None,
) -> list[str]:
    """Poll while sources are deploying; return the ids still deploying when `timeout` ends."""
    pending = list(dict.fromkeys(source_ids))
    waited = 0.0
    while pending:
        sources = await asyncio.gather(*(api.get_source(source_id) for source_id in pending))
        for source in sources:
            if on_status is not None:
                on_status(source)
        pending = [s.id for s in sources if s.deployment_status == "deploying"]
        if not pending or waited >= timeout:
            break
        await sleep(interval)
        waited += interval
    return pending
