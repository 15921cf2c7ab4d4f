"""The use cases end to end: connect, load, fetch, plan, apply.

The CLI is a thin shell over these functions, and a library user calls them the same way.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import httpx

from reconciler import redact
from reconciler.applier import (
    ActionResult,
    ApplyRefused,
    ApplyReport,
    SecretResolver,
    apply_plan,
    wait_until_deployed,
)
from reconciler.client import DEFAULT_API_URL, REQUEST_TIMEOUT, ImgixClient
from reconciler.live import LiveSource
from reconciler.loader import LoadedState, LoadError, load
from reconciler.pacing import Pacing, RetryPolicy
from reconciler.plan import Plan, compute_digest
from reconciler.planner import PlanError, PlanOptions, plan

API_KEY_VARIABLE = "IMGIX_API_KEY"
API_URL_VARIABLE = "IMGIX_API_URL"
FINGERPRINT_KEY_VARIABLE = "IMGIX_RECONCILER_FINGERPRINT_KEY"
# Seconds one request may spend retrying (default: RetryPolicy's); a CI job that would
# rather fail fast than wait out an outage lowers it.
RETRY_DEADLINE_VARIABLE = "IMGIX_RECONCILER_RETRY_DEADLINE"
# Seconds one request may take in all (connect, headers, body; default: the client's).
REQUEST_TIMEOUT_VARIABLE = "IMGIX_RECONCILER_REQUEST_TIMEOUT"


class ConfigurationError(Exception):
    """The command cannot start: a missing key, a bad URL (exit 1)."""


@dataclass(frozen=True)
class Connection:
    """Where the API is and how to reach it."""

    api_url: str
    api_key: str = field(repr=False)
    transport: httpx.AsyncBaseTransport | None = None
    pacing: Pacing = field(default_factory=Pacing)
    retry: RetryPolicy | None = None
    request_timeout: float = REQUEST_TIMEOUT

    def client(self) -> ImgixClient:
        """A new client for this connection (use it as an async context manager)."""
        return ImgixClient(
            api_key=self.api_key,
            base_url=self.api_url,
            transport=self.transport,
            pacing=self.pacing,
            retry=self.retry,
            timeout=self.request_timeout,
        )


def connect(
    api_url: str | None,
    *,
    emulator: bool = False,
    allow_insecure_http: bool = False,
    environ: Mapping[str, str] | None = None,
) -> Connection:
    """The connection a command asked for: the in-process emulator, or a real API URL.

    Plain http is refused for any host but loopback unless `allow_insecure_http`: the
    key would cross the network in clear. The check comes before any client exists.
    """
    environ = os.environ if environ is None else environ
    if emulator:
        from reconciler.emulator import EMULATOR_API_KEY, create_app, seeded_store

        app = create_app(seeded_store())
        return Connection("http://emulator", EMULATOR_API_KEY, httpx.ASGITransport(app=app))
    origin = "--api-url" if api_url else API_URL_VARIABLE
    url = _checked_api_url(api_url or environ.get(API_URL_VARIABLE) or DEFAULT_API_URL, origin)
    if not allow_insecure_http:
        _refuse_clear_text(url, origin)
    key = environ.get(API_KEY_VARIABLE, "").strip()
    if not key:
        raise ConfigurationError(
            f"{API_KEY_VARIABLE} is not set: export an imgix API key with the Sources "
            "permission (it is read from the environment only, never from an option)"
        )
    return Connection(
        url, key, retry=_retry_policy(environ), request_timeout=_request_timeout(environ)
    )


def _checked_api_url(text: str, origin: str) -> str:
    """`text` when the client can use it as the API root; else why not, in one sentence.

    The client appends `/api/v1/...` to the root, so a query or fragment would swallow
    the path, and httpx would send user info as Basic auth in place of the Bearer key.
    """
    text = text.strip()
    head, slashes, rest = text.partition("//")
    # User info may hold a password: never echo it, not even from a malformed URL.
    shown = head + slashes + "…" + rest[rest.rindex("@") :] if "@" in rest else text
    try:
        url = httpx.URL(text)
        reason = None
    except httpx.InvalidURL:
        try:
            httpx.URL(shown)
            reason = "it is not a valid URL"
        except httpx.InvalidURL as error:
            reason = f"it is not a valid URL ({error})"
    else:
        host = url.raw_host.decode("ascii", "replace")
        if url.scheme not in ("http", "https"):
            reason = "it must be an http(s) URL"
        elif url.userinfo:
            reason = (
                "it must not carry a user name or password "
                f"(the API key is read from {API_KEY_VARIABLE} only)"
            )
        elif not host:
            reason = "it names no host"
        elif not all(char.isascii() and (char.isalnum() or char in "._:-") for char in host):
            reason = f"{url.host!r} is not a valid host name"
        elif url.port is not None and not 1 <= url.port <= 65535:
            reason = f"port {url.port} is out of range (1-65535)"
        elif "?" in text:
            reason = "it must not have a query (`?...`)"
        elif "#" in text:
            reason = "it must not have a fragment (`#...`)"
    if reason is not None:
        raise ConfigurationError(f"{origin} {shown!r} cannot be used: {reason}.")
    return text


def _refuse_clear_text(url: str, origin: str) -> None:
    """Refuse plain http to anything but this machine (127.0.0.0/8, ::1, localhost)."""
    parsed = httpx.URL(url)
    if parsed.scheme != "http":
        return
    host = parsed.host.lower()
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ConfigurationError(
            f"{origin} {url!r} is plain http to {host}, which would send the API key in "
            "clear: use https, or pass --allow-insecure-http if this network is trusted."
        )


def _retry_policy(environ: Mapping[str, str]) -> RetryPolicy | None:
    text = environ.get(RETRY_DEADLINE_VARIABLE, "").strip()
    if not text:
        return None
    try:
        deadline = float(text)
    except ValueError:
        deadline = -1.0
    if not deadline >= 0:  # also false for NaN
        raise ConfigurationError(
            f"{RETRY_DEADLINE_VARIABLE} must be a number of seconds >= 0 (got {text!r})"
        )
    return RetryPolicy(deadline=deadline)


def _request_timeout(environ: Mapping[str, str]) -> float:
    text = environ.get(REQUEST_TIMEOUT_VARIABLE, "").strip()
    if not text:
        return REQUEST_TIMEOUT
    try:
        seconds = float(text)
    except ValueError:
        seconds = 0.0
    if not 0 < seconds < math.inf:  # also false for NaN
        raise ConfigurationError(
            f"{REQUEST_TIMEOUT_VARIABLE} must be a number of seconds > 0 (got {text!r})"
        )
    return seconds


def fingerprint_key(connection: Connection, environ: Mapping[str, str] | None = None) -> bytes:
    """The HMAC key for secret fingerprints.

    `IMGIX_RECONCILER_FINGERPRINT_KEY` when set; otherwise derived from the API key, which
    every run that writes already holds. The trade-off of the fallback: rotating the API
    key changes every fingerprint, so the next apply re-sends every secret once.
    """
    environ = os.environ if environ is None else environ
    explicit = environ.get(FINGERPRINT_KEY_VARIABLE)
    if explicit:
        redact.register(explicit)
        return explicit.encode()
    return hmac.new(
        connection.api_key.encode(), b"imgix-reconciler fingerprint key", hashlib.sha256
    ).digest()


@dataclass(frozen=True)
class PlanResult:
    """A plan with the inputs it was made from."""

    plan: Plan
    desired: LoadedState
    live: list[LiveSource]


async def plan_files(
    files: Sequence[Path],
    connection: Connection,
    *,
    targets: Sequence[str] = (),
    resend_secrets: bool = False,
    secrets_optional: bool = True,
    environ: Mapping[str, str] | None = None,
) -> PlanResult:
    """Load the files, list the live sources and plan.

    Secrets are optional by default: a plan without access to them still shows every
    other change and says "cannot compare" for them. `apply` asks for them all.
    """
    desired = load(files, environ=environ, secrets_optional=secrets_optional)
    async with connection.client() as client:
        live = await client.list_sources()
    options = PlanOptions(
        fingerprint_key=fingerprint_key(connection, environ),
        resend_secrets=resend_secrets,
        targets=frozenset(targets),
        api_url=connection.api_url,
    )
    try:
        made = plan(desired.state, live, options)
    except PlanError as error:
        if not error.spec_indices:
            raise
        places = [desired.locations[index] for index in error.spec_indices]
        raise LoadError([place.error("", str(error)) for place in places]) from None
    return PlanResult(made, desired, live)


async def list_live(connection: Connection) -> list[LiveSource]:
    """Every live source of the account."""
    async with connection.client() as client:
        return await client.list_sources()


class PlanFileError(Exception):
    """A saved plan that cannot be read or was edited after it was made (exit 1)."""


def is_plan_file(path: Path) -> bool:
    """Whether `path` holds a saved plan document rather than a desired-state file.

    Decided by content, not by a leading `{`: YAML written in JSON style is still YAML.
    """
    try:
        document = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return False
    return isinstance(document, dict) and "format_version" in document


def read_plan_file(path: Path) -> Plan:
    """A saved plan, checked against its own digest so an edited plan is never applied."""
    try:
        plan = Plan.model_validate_json(path.read_bytes())
    except ValueError as error:
        first = str(error).splitlines()[0]
        raise PlanFileError(
            f"{path}: not a plan document written by `plan --out` ({first})"
        ) from None
    if compute_digest(plan.actions, plan.api_url) != plan.digest:
        raise PlanFileError(f"{path}: the actions do not match the plan's digest (edited?)")
    return plan


def drift_findings(result: Plan, *, require_marker: bool = False) -> list[str]:
    """Why live state differs from the files; empty when in sync."""
    findings = [f"{action.action} {action.source}" for action in result.actions]
    for notice in result.notices:
        if notice.kind == "encrypted_changed" or (
            require_marker and notice.kind == "deployed_outside"
        ):
            findings.append(f"{notice.source}: {notice.detail}")
    return findings


def check_plan_target(saved: Plan, connection: Connection) -> None:
    """Refuse a saved plan made against another API (or the emulator): it describes there."""
    if saved.api_url is not None and saved.api_url.rstrip("/") != connection.api_url.rstrip("/"):
        raise ApplyRefused(
            f"the saved plan was made against {saved.api_url}, not {connection.api_url}: "
            "plan again against the API you mean to change"
        )


async def apply_with_report(
    result: Plan,
    connection: Connection,
    *,
    allow_disable: bool = False,
    saved: bool = False,
    wait: bool = False,
    environ: Mapping[str, str] | None = None,
    on_result: Callable[[ActionResult], None] | None = None,
    on_status: Callable[[LiveSource], None] | None = None,
) -> ApplyReport:
    """Apply a plan with one paced client; with `wait`, poll until touched sources deploy.

    A `saved` plan must have been made against this connection's API.
    """
    if saved:
        check_plan_target(result, connection)
    async with connection.client() as client:
        report = await apply_plan(
            result,
            client,
            resolver=SecretResolver(environ),
            fingerprint_key=fingerprint_key(connection, environ),
            allow_disable=allow_disable,
            saved=saved,
            on_result=on_result,
        )
        if wait and report.touched_ids:
            pending = await wait_until_deployed(client, report.touched_ids, on_status=on_status)
            report = replace(report, still_deploying=pending)
    return report
