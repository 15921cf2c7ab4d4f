"""Executing a plan: staleness checks, secret resolution, concurrent writes, the report.

The applier never re-plans: it sends exactly the writes the plan holds. Everything that
can refuse (a destructive action without permission, a stale saved plan, a secret that
cannot be read) is checked before the first write, so a refusal writes nothing.

A `Stop` (a signal, `--max-duration`) ends the run early: no action starts after it,
actions under way finish, and the report names every action not attempted. A saved plan
applied again skips the actions already in effect, so a stopped run can be resumed.

A patch whose first write goes out long after the listing the plan was checked against
(it waited for the hourly budget, or for a confirmation) reads its source again first:
the API has no conditional update, and a dashboard edit made meanwhile would be
overwritten without a word. A source that changed is left as it is and reported `stale`.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, NamedTuple, Protocol

from reconciler import redact, references
from reconciler.client import HOSTNAME_TAKEN_STATUSES, ApiError
from reconciler.errors import ApplyRefused as ApplyRefused
from reconciler.errors import StalePlan
from reconciler.live import LiveSource
from reconciler.marker import Marker, compose_annotation, parse_annotation
from reconciler.pacing import NotStarted, Stop, before_write, continuing_action
from reconciler.plan import Action, Plan, same_json
from reconciler.rails import Permissions as Permissions
from reconciler.rails import check_permissions
from reconciler.references import UnreadableReference
from reconciler.report import DONE, NotDeployed, Outcome
from reconciler.report import ActionResult as ActionResult
from reconciler.report import ApplyReport as ApplyReport
from reconciler.secrets import recorded_encrypted, stamped
from reconciler.specs import HOSTNAME_FIELDS, reference_value_problem, secret_value_problem
from reconciler.untrusted import escaped


class SourcesApi(Protocol):
    """What the applier needs of the API client."""

    async def list_sources(self) -> list[LiveSource]: ...
    async def get_source(self, source_id: str) -> LiveSource: ...
    async def create_source(self, attributes: dict[str, Any]) -> LiveSource: ...
    async def update_source(self, source_id: str, attributes: dict[str, Any]) -> LiveSource: ...


# A patch whose first write starts this many seconds after the listing its plan was
# checked against reads its source again before it is sent. A read costs a quarter of a
# second of the 4/s pace, a write that waited for the hourly budget waited about a minute
# or more: re-reading those costs nothing that shows. Writes that go out at once (every
# one within the budget: 60 updates take 15 s at 4/s) are not slowed by a read each.
REREAD_AFTER = 60.0
# Changed attributes a stale action names; the rest are counted.
SHOWN_CHANGED_PATHS = 5


class Listing(NamedTuple):
    """Live sources as a listing returned them, and when it began (on the applier's clock)."""

    sources: Sequence[LiveSource]
    at: float


# --------------------------------------------------------------------------- preflight


def check_fresh(
    plan: Plan,
    live: Sequence[LiveSource],
    sending: Mapping[str, _Sending] | None = None,
) -> set[str]:
    """Keys of the saved plan's actions already in effect; refuse it if anything else moved.

    A touched source that changed since planning is stale, unless it now is what the
    action makes it (an earlier run of the same plan got that far). `sending`: each
    action's writes as sent, by action key: the values behind its references read, its
    marker stamped with the secrets read.
    """
    sending = sending or {}
    by_id = {source.id: source for source in live}
    owner = {host: source.id for source in live for host in source.hostnames}
    done = {
        action.key
        for action in plan.actions
        if _in_effect(action, by_id, owner, sending.get(action.key))
    }
    released = _released_hostnames(plan, by_id)
    stale: list[str] = []
    for action in plan.actions:
        if action.key in done:
            continue
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
    return done


def _in_effect(
    action: Action,
    by_id: Mapping[str, LiveSource],
    owner: Mapping[str, str],
    sending: _Sending | None = None,
) -> bool:
    """Whether the live source already is what the action's writes make it.

    `sending`: the writes as sent; without them, a referenced value is not known, so an
    action setting one is not in effect, and secrets are known by the plan's marker.
    """
    if action.id is not None:
        live = by_id.get(action.id)
    else:
        claimed = sorted(_claimed_hostnames(action))
        live = by_id.get(owner.get(claimed[0], "")) if claimed else None
    if live is None or (action.id is not None and live.fingerprint() == action.live_fingerprint):
        return False
    read = _by_path(sending.writes) if sending is not None else {}
    # A plan made without a secret cannot fingerprint it: the marker sent records it.
    marker = sending.marker if sending is not None else action.marker
    for path, value in _by_path(action.writes).items():
        if isinstance(value, dict) and set(value) == {"secret"}:
            continue  # write-only: the marker's fingerprints stand for it
        if isinstance(value, dict) and set(value) == {"reference"}:
            value = read.get(path, value)
        have = _live_value(live, path)
        if path == "deployment.annotation":
            if not _same_annotation(live, value, marker):
                return False
        elif not same_json(_comparable(have), _comparable(value)):
            return False
    return True


def _by_path(writes: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The values `writes` set, by attribute path (`name`, `deployment.cache_ttl_value`)."""
    wanted: dict[str, Any] = {}
    for write in writes:
        deployment = write.get("deployment")
        wanted.update({k: v for k, v in write.items() if k != "deployment"})
        if isinstance(deployment, dict):
            wanted.update({f"deployment.{k}": v for k, v in deployment.items()})
    return wanted


def _live_value(live: LiveSource, path: str) -> Any:
    if path == "name":
        return live.name
    if path == "enabled":
        return live.enabled
    return live.deployment.get(path.removeprefix("deployment."))


def _comparable(value: Any) -> Any:
    # The API may list hostnames in another order than they were sent.
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return sorted(value)
    return value


def _same_annotation(live: LiveSource, text: Any, marker: Marker | None) -> bool:
    """Same user text and secret fingerprints (`enc.` and pending records aside)."""
    if text is not None and not isinstance(text, str):
        return False  # referenced text: not known before it is read
    have = live.annotation
    if marker is None:
        return have == parse_annotation(text)
    return (
        have.marker is not None
        and have.text == (text or None)
        and have.marker.fingerprints == marker.fingerprints
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
        attribute's referenced value.
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
        if set(body) != {kind}:
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
        return value


# --------------------------------------------------------------------------- execution


@dataclass(frozen=True)
class _Sending:
    """An action's writes with every placeholder resolved, and the marker they set.

    The marker is rendered after each write's annotation text only here, at send time.
    """

    writes: list[dict[str, Any]]
    marker: Marker | None

    @classmethod
    def of(cls, action: Action, resolver: SecretResolver, key: bytes | None) -> _Sending:
        """`action`'s writes resolved; the marker fingerprints the secrets actually sent."""
        writes = [resolver.resolve(write) for write in action.writes]
        marker = action.marker
        if marker is not None and key is not None:
            for write in writes:
                deployment = write.get("deployment")
                if isinstance(deployment, dict):
                    marker = stamped(marker, deployment, key)
        return cls(writes, marker)

    def body(self, index: int, marker: Marker | None) -> dict[str, Any]:
        """Write `index` as sent, its annotation text followed by `marker`."""
        write = self.writes[index]
        annotation = self.annotation(index, marker)
        if annotation is None:
            return write
        return {**write, "deployment": {**write["deployment"], "annotation": annotation}}

    def annotation(self, index: int, marker: Marker | None) -> str | None:
        """The annotation write `index` sets with `marker` (None: it sets none)."""
        deployment = self.writes[index].get("deployment")
        if marker is None or not isinstance(deployment, dict) or "annotation" not in deployment:
            return None
        return compose_annotation(deployment["annotation"] or None, self._shown(index, marker))

    def recording(self, index: int, marker: Marker, returned: LiveSource) -> str:
        """The annotation that records `marker` after write `index` came back as `returned`:
        that write's text, or the live text when the write set none."""
        return self.annotation(index, marker) or compose_annotation(
            returned.annotation.text, self._shown(index, marker)
        )

    def _shown(self, index: int, marker: Marker) -> Marker:
        # A pending disable is recorded on every write but the last, which clears it.
        pending = marker.pending_disable and index < len(self.writes) - 1
        return replace(marker, pending_disable=pending)


async def apply_plan(
    plan: Plan,
    api: SourcesApi,
    *,
    resolver: SecretResolver,
    fingerprint_key: bytes | None = None,
    allow_disable: bool = False,
    permissions: Permissions | None = None,
    saved: bool = False,
    on_result: Callable[[ActionResult], None] | None = None,
    stop: Stop | None = None,
    listing: Listing | None = None,
    clock: Callable[[], float] = time.monotonic,
    reread_after: float = REREAD_AFTER,
) -> ApplyReport:
    """Apply `plan`; refusals raise before any write, per-action failures are reported.

    With `fingerprint_key`, each write's marker is re-stamped with the fingerprints of the
    secret values actually sent (they may differ from the plan's for a saved plan). Once
    `stop` is requested no further action starts. A patch starting `reread_after` seconds
    after `listing` (the one a fresh plan was made from; a saved plan's freshness check
    lists anew; none: the start of the apply) re-reads its source before its first write.
    """
    stop = stop or Stop()
    check_permissions(plan, allow_disable=allow_disable, permissions=permissions)
    bodies = {action.key: _Sending.of(action, resolver, fingerprint_key) for action in plan.actions}
    in_effect: set[str] = set()
    if saved:
        started = clock()
        listing = Listing(await api.list_sources(), started)
        in_effect = check_fresh(plan, listing.sources, bodies)
    elif listing is None:
        listing = Listing((), clock())
    seen = {source.id: source for source in listing.sources}
    holders = _Holders(api)

    done: dict[str, asyncio.Event] = {a.key: asyncio.Event() for a in plan.actions}
    results: dict[str, ActionResult] = {}
    writes = 0
    # An action a stop cut between its writes: failed, and the run stopped all the same.
    cut_short = False

    async def run(action: Action) -> None:
        nonlocal writes, cut_short
        for dependency in action.depends_on:
            if dependency in done:
                await done[dependency].wait()
        blocked = [d for d in action.depends_on if d in results and results[d].outcome not in DONE]
        if action.key in in_effect:
            result = _result(action, "in effect", action.id)
        elif stop.reason is not None:
            result = _result(action, "stopped", action.id, f"not attempted: {stop.reason}")
        elif blocked:
            why = f"not attempted: it waits for {', '.join(blocked)}, which did not apply"
            result = _result(action, "skipped", action.id, why)
        else:
            reread = None
            if action.id is not None:
                sent = bodies[action.key]
                listed = seen.get(action.id)
                reread = _Reread(action, api, listed, listing.at, clock, reread_after, sent)
            result, made, cut = await _execute(action, bodies[action.key], api, reread, holders)
            writes += made
            cut_short = cut_short or cut
        results[action.key] = result
        done[action.key].set()
        if on_result is not None:
            on_result(result)

    await asyncio.gather(*(run(action) for action in plan.actions))
    ordered = [results[a.key] for a in plan.actions]
    if stop.reason is None and (cut_short or any(r.outcome == "stopped" for r in ordered)):
        # A request, not only the report's word: what follows the writes (--wait) ends too.
        stop.request("stopped by --max-duration")
    return ApplyReport(ordered, writes, stopped=stop.reason)


class _NotWritten(Exception):
    """The re-read before a patch's first write found it should not go out."""

    def __init__(self, outcome: Outcome, why: str | None = None) -> None:
        super().__init__(why or outcome)
        self.outcome: Outcome = outcome
        self.why = why


class _Reread:
    """Before a patch's first write, once it starts late: its source read again.

    Awaited by the pacer when the write has its hourly budget (`before_write`). The source
    is compared with the one the plan was checked against: unchanged, the write goes out;
    already what the action makes it, the action is in effect; otherwise, or gone, or not
    readable, nothing is written and the action is reported.
    """

    def __init__(
        self,
        action: Action,
        api: SourcesApi,
        listed: LiveSource | None,
        listed_at: float,
        clock: Callable[[], float],
        after: float,
        sending: _Sending,
    ) -> None:
        self._action = action
        self._api = api
        self._listed = listed
        self._read_at = listed_at
        self._clock = clock
        self._after = after
        # The writes as sent: in effect is decided by the values behind their references
        # and the secrets' fingerprints, not by the plan's placeholders.
        self._sending = sending

    async def __call__(self) -> None:
        source_id, listed = self._action.id, self._listed
        if source_id is None or self._clock() - self._read_at < self._after:
            return
        # Hashed only now: most writes go out at once, and a plan may patch thousands.
        expected = self._action.live_fingerprint or (listed.fingerprint() if listed else None)
        if expected is None:
            return
        try:
            now = await self._api.get_source(source_id)
        except ApiError as error:
            if error.status == 404:
                raise _NotWritten(
                    "stale", "not applied: it no longer exists; run plan again"
                ) from None
            raise _NotWritten("failed", _unread(error)) from None
        except Exception as error:  # the write waits no longer: the action is reported
            raise _NotWritten("failed", _unread(error)) from None
        self._read_at = self._clock()
        if now.fingerprint() == expected:
            return
        if _in_effect(self._action, {now.id: now}, {}, self._sending):
            raise _NotWritten("in effect")
        what = "it changed since the plan"
        # The listed source names what changed, when it is the one the plan was made from.
        if listed is not None and listed.fingerprint() == expected:
            what += f" ({_named_paths(_changed_paths(listed, now))})"
        raise _NotWritten("stale", f"not applied: {what}; run plan again")


def _unread(error: Exception) -> str:
    detail = redact.scrub(str(error)) or type(error).__name__
    return f"not written: reading the source again before its write failed: {detail}"


def _changed_paths(before: LiveSource, after: LiveSource) -> list[str]:
    """The attribute paths whose values differ (a key one side lacks counts)."""
    paths = [path for path in ("name", "enabled") if getattr(before, path) != getattr(after, path)]
    missing = object()
    keys = sorted(set(before.deployment) | set(after.deployment))
    for key in keys:
        was, now = before.deployment.get(key, missing), after.deployment.get(key, missing)
        if was is missing or now is missing or not same_json(was, now):
            paths.append(f"deployment.{key}")
    return paths


def _named_paths(paths: Sequence[str]) -> str:
    """Paths for a message: the API's keys are outside text, clipped and made inert."""
    clipped = (redact.scrub(path) for path in paths)
    shown = [escaped(path if len(path) <= 80 else path[:79] + "…") for path in clipped]
    if len(shown) > SHOWN_CHANGED_PATHS:
        rest = len(shown) - SHOWN_CHANGED_PATHS
        return ", ".join(shown[:SHOWN_CHANGED_PATHS]) + f" and {rest} more"
    return ", ".join(shown) or "attributes not named"


async def _execute(
    action: Action,
    sending: _Sending,
    api: SourcesApi,
    reread: _Reread | None,
    holders: _Holders,
) -> tuple[ActionResult, int, bool]:
    """Send one action's writes in order: the result, the number of writes made, and whether
    a stop cut it between them."""
    source_id, writes = action.id, 0
    marker = sending.marker
    checking = before_write.set(reread)
    try:
        for index in range(len(sending.writes)):
            body = sending.body(index, marker)
            if source_id is None:
                returned = await api.create_source(body)
                source_id = returned.id
            else:
                returned = await api.update_source(source_id, body)
            writes += 1
            # Later writes finish this action: a stop lets them through.
            continuing_action.set(True)
            # A disabled source refuses the patch; enabling it only to record a hash
            # would serve traffic the file does not want: recorded once it is enabled.
            if action.record_encrypted and returned.enabled and marker is not None:
                recorded = recorded_encrypted(marker, returned.deployment)
                if recorded is not None:
                    annotation = sending.recording(index, recorded, returned)
                    await api.update_source(returned.id, {"deployment": {"annotation": annotation}})
                    marker, writes = recorded, writes + 1
    except _NotWritten as refused:
        return _result(action, refused.outcome, source_id, refused.why), writes, False
    except NotStarted as stopped:
        if writes == 0:
            return _result(action, "stopped", source_id, f"not attempted: {stopped}"), 0, False
        message = f"stopped after {writes} of {len(sending.writes)} writes: {stopped}"
        return _result(action, "failed", source_id, message), writes, True
    except Exception as error:  # one failed action must not stop the others
        if source_id is None and writes == 0 and _hostname_taken(error):
            made = await _made_meanwhile(action, sending, holders)
            if made is not None:
                return _result(action, "in effect", made), 0, False
        message = redact.scrub(str(error)) or type(error).__name__
        return _result(action, "failed", source_id, message), writes, False
    finally:
        continuing_action.set(False)
        before_write.reset(checking)
    return _result(action, "applied", source_id), writes, False


def _hostname_taken(error: Exception) -> bool:
    return isinstance(error, ApiError) and error.status in HOSTNAME_TAKEN_STATUSES


class _Holders:
    """The sources listed once a create was refused its hostname, shared by the creates
    refused alike: listed again only for a hostname the last listing does not show."""

    def __init__(self, api: SourcesApi) -> None:
        self._api = api
        self._lock = asyncio.Lock()
        self._listed: Sequence[LiveSource] | None = None

    async def holding(self, hostname: str) -> Sequence[LiveSource]:
        async with self._lock:
            listed = self._listed
            if listed is None or not any(hostname in s.hostnames for s in listed):
                listed = self._listed = await self._api.list_sources()
            return listed


async def _made_meanwhile(action: Action, sending: _Sending, holders: _Holders) -> str | None:
    """The id of the source a refused create's hostnames name, if it is what the create makes.

    Two applies of one plan at once (two jobs of one account, a job retried while the
    first still ran) both plan the create; the second is refused, its hostname taken by
    the source the first made. That source, marker and secrets' fingerprints alike, is
    the create in effect; any other keeps the refusal.
    """
    claimed = sorted(_claimed_hostnames(action))
    if not claimed:
        return None
    try:
        live = await holders.holding(claimed[0])
    except Exception:  # the refusal stands, and is what the report says
        return None
    by_id = {source.id: source for source in live}
    owner = {host: source.id for source in live for host in source.hostnames}
    if not _in_effect(action, by_id, owner, sending):
        return None
    return owner[claimed[0]]


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


# Of the statuses the API documents (deploying, deployed, disabled, deleted), those the
# wait ends on: a disabled source has nothing to deploy, a deleted one never will. Any
# other (none the API documents) is not taken for deployed: the source is polled on.
SETTLED_STATUSES = frozenset({"deployed", "disabled", "deleted"})


class WaitEnd(NamedTuple):
    """The sources `--wait` did not see deployed, and why it gave up on those it did."""

    still_deploying: list[str]
    given_up: dict[str, NotDeployed]


async def wait_until_deployed(
    api: SourcesApi,
    source_ids: Sequence[str],
    *,
    interval: float = 2.0,
    timeout: float = 600.0,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    on_status: Callable[[LiveSource], None] | None = None,
    on_gave_up: Callable[[str], None] | None = None,
    stop: Stop | None = None,
) -> WaitEnd:
    """Poll while sources are deploying; the ids not deployed at `timeout` or a stop.

    A poll that fails (the API down) ends the wait, not the run: the writes are made and
    their report must come out. A source gone (404) or deleted will never deploy: it is
    given up on, the others polled on. `on_gave_up` hears why; the ids not seen deployed
    (or disabled) are returned, with why for those given up on. Past the `stop`'s
    deadline the wait ends as a stop request would: `stop.reason` then says so.
    """
    stop = stop or Stop()
    pending = list(dict.fromkeys(source_ids))
    given_up: dict[str, NotDeployed] = {}
    waited = 0.0
    finished = asyncio.Event()
    while pending:
        polled = await asyncio.gather(
            *(api.get_source(source_id) for source_id in pending), return_exceptions=True
        )
        sources: list[LiveSource] = []
        failed: dict[str, Exception] = {}
        for source_id, answer in zip(pending, polled, strict=True):
            if not isinstance(answer, BaseException):
                sources.append(answer)
            elif not isinstance(answer, Exception):
                raise answer  # a cancellation, an exit: not the poll's to swallow
            elif isinstance(answer, ApiError) and answer.status == 404:
                given_up[source_id] = "gone"
                _tell(on_gave_up, answer)
            else:  # after the writes, nothing may swallow their report
                failed[source_id] = answer
        if failed:
            _tell(on_gave_up, next(iter(failed.values())))  # the API down: once is enough
        for source in sources:
            if on_status is not None:
                on_status(source)
        deleted = [s.id for s in sources if s.deployment_status == "deleted"]
        if deleted and on_gave_up is not None:
            on_gave_up(f"deleted while deploying: {', '.join(deleted)}")
        given_up.update(dict.fromkeys(deleted, "deleted"))
        given_up.update(dict.fromkeys(failed, "unknown"))
        pending = [s.id for s in sources if s.deployment_status not in SETTLED_STATUSES]
        pending += failed
        if failed or not pending or waited >= timeout or stop.reason is not None:
            break
        await stop.pause(sleep, interval, finished)
        waited += interval
        if stop.expired():
            stop.request("stopped by --max-duration")
        if stop.reason is not None:
            break
    left = {*given_up, *pending}
    ordered = [source_id for source_id in dict.fromkeys(source_ids) if source_id in left]
    return WaitEnd(ordered, {i: given_up[i] for i in ordered if i in given_up})


def _tell(on_gave_up: Callable[[str], None] | None, error: Exception) -> None:
    if on_gave_up is not None:
        on_gave_up(redact.scrub(str(error)) or type(error).__name__)
