"""The use cases end to end: connect, load, fetch, plan, apply.

The CLI is a thin shell over these functions, and a library user calls them the same way.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import contextvars
import hashlib
import hmac
import ipaddress
import json
import os
import stat
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

import httpx

from reconciler import redact, references
from reconciler.client import DEFAULT_API_URL, REQUEST_TIMEOUT, ImgixClient
from reconciler.errors import (
    ApplyRefused,
    ConfigurationError,
    PlanError,
    PlanFileError,
    StalePlan,
)
from reconciler.live import LiveSource
from reconciler.loading.stack import start_on_load_stack
from reconciler.pacing import Clock, Pacer, Pacing, RetryPolicy, Sleep, Stop
from reconciler.plan import PLAN_START, Plan, compute_digest
from reconciler.rails import Permissions, Refusal, check_permissions, ownership_refusals
from reconciler.untrusted import escaped, is_text, one_line, quoted

# The loader and the planner are imported by the loading thread, once the listing has
# asked for its first page (`plan_files`): that request does not wait for their import.
# The applier and the apply progress are imported by `apply_with_report` alone: `plan`
# and `drift` never apply.
if TYPE_CHECKING:
    from reconciler.applier import Listing
    from reconciler.loader import LoadedState, LocatedError
    from reconciler.progress import ApplyProgress
    from reconciler.report import ActionResult, ApplyReport

API_KEY_VARIABLE = "IMGIX_API_KEY"
API_URL_VARIABLE = "IMGIX_API_URL"
FINGERPRINT_KEY_VARIABLE = "IMGIX_RECONCILER_FINGERPRINT_KEY"
MIN_FINGERPRINT_KEY_LENGTH = 16
# Seconds one request may spend retrying (default: RetryPolicy's); a CI job that would
# rather fail fast than wait out an outage lowers it.
RETRY_DEADLINE_VARIABLE = "IMGIX_RECONCILER_RETRY_DEADLINE"
# Bounds on the two settings of time: past them a dead or stalling server holds the run
# until CI kills the job, with no error line, which the settings exist to prevent.
MAX_RETRY_DEADLINE = 86400
MAX_REQUEST_TIMEOUT = 3600
# Hourly write budgets, for accounts whose limits imgix raised (default: Pacing's).
CREATES_PER_HOUR_VARIABLE = "IMGIX_RECONCILER_CREATES_PER_HOUR"
UPDATES_PER_HOUR_VARIABLE = "IMGIX_RECONCILER_UPDATES_PER_HOUR"
MAX_BUDGET_DIGITS = 18
# Seconds one request may take in all (connect, headers, body; default: the client's).
REQUEST_TIMEOUT_VARIABLE = "IMGIX_RECONCILER_REQUEST_TIMEOUT"

T = TypeVar("T")


@dataclass(frozen=True)
class Connection:
    """Where the API is and how to reach it."""

    api_url: str
    api_key: str = field(repr=False)
    transport: httpx.AsyncBaseTransport | None = None
    pacing: Pacing = field(default_factory=Pacing)
    retry: RetryPolicy | None = None
    request_timeout: float = REQUEST_TIMEOUT
    # Plain http to this machine: never through a proxy the environment names
    # (HTTP_PROXY, ALL_PROXY), which would carry the API key in clear off the machine.
    direct: bool = False
    clock: Clock = time.monotonic
    sleep: Sleep = asyncio.sleep
    # One pacer for every client of the connection: the listing and the writes of a run
    # share the per-second pace, and the budgets count across them.
    pacer: Pacer = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "pacer", Pacer(self.pacing, clock=self.clock, sleep=self.sleep))

    def client(self) -> ImgixClient:
        """A new client for this connection (use it as an async context manager)."""
        transport = self.transport
        try:
            if transport is None and (self.direct or not _environment_proxies()):
                # httpx mounts the environment's proxies only when it makes the transport;
                # with none to mount, it would still read NO_PROXY, whose IPv6 entries it
                # fails on. Making it reads the certificates to trust.
                transport = httpx.AsyncHTTPTransport()
            why = _proxy_problem() if transport is None else None
            if why is not None:
                raise ConfigurationError(
                    "cannot use the proxy the environment names (HTTPS_PROXY, HTTP_PROXY or "
                    f"ALL_PROXY): {why}"
                )
            return ImgixClient(
                api_key=self.api_key,
                base_url=self.api_url,
                transport=transport,
                pacing=self.pacing,
                retry=self.retry,
                timeout=self.request_timeout,
                clock=self.clock,
                sleep=self.sleep,
                pacer=self.pacer,
            )
        except httpx.InvalidURL:
            # The proxies' URLs are checked above: what is left is an entry of NO_PROXY,
            # which httpx reads as a URL's host (`fd00::/8`, `[fd00::1]` are none).
            raise ConfigurationError(
                "cannot read NO_PROXY (or no_proxy), the hosts to reach without a proxy: "
                "httpx cannot read one of its entries (an IPv6 address or range?); remove "
                "it, or unset the variable for this command"
            ) from None
        except OSError as error:
            # The only file httpx reads as it makes the client: the certificates to trust.
            raise ConfigurationError(
                "cannot load the TLS certificates SSL_CERT_FILE or SSL_CERT_DIR names: "
                f"{error.strerror or error}"
            ) from None
        except (ImportError, ValueError) as error:
            # httpx mounts the environment's proxies as it makes the client. The proxy's
            # URL is not quoted: it may carry a password.
            if isinstance(error, ImportError) and "socks" in str(error).lower():
                why = "a SOCKS proxy needs httpx's SOCKS support (pip install 'httpx[socks]')"
            elif isinstance(error, ValueError) and "proxy" in str(error).lower():
                why = "its scheme is none of http, https, socks5 or socks5h"
            else:
                raise
            raise ConfigurationError(
                "cannot use the proxy the environment names (HTTPS_PROXY, HTTP_PROXY or "
                f"ALL_PROXY): {why}"
            ) from None


def _environment_proxies() -> dict[str, str]:
    """The proxy URLs the environment names that httpx reads, by scheme."""
    from urllib.request import getproxies  # how httpx reads them (and their lowercase)

    return {k: v for k, v in getproxies().items() if k in ("http", "https", "all") and v}


def _proxy_problem() -> str | None:
    """Why a proxy URL the environment names is unusable, or None: httpx fails on a port
    that is no number as it makes the client ("InvalidURL"), and on one out of range only
    as it connects (an OverflowError in a task group). The URL is never quoted: it may
    carry a password."""
    for value in _environment_proxies().values():
        try:
            port = httpx.URL(value if "://" in value else f"http://{value}").port
        except httpx.InvalidURL:
            return "its URL is not valid (its port or host?)"
        if port is not None and not 1 <= port <= 65535:
            return f"port {port} is out of range (1-65535)"
    return None


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
        transport = httpx.ASGITransport(app=app)
        return Connection("http://emulator", EMULATOR_API_KEY, transport, pacing=_pacing(environ))
    if api_url is not None and not api_url.strip():
        # An unset variable (`--api-url "$STAGING_URL"`): falling back to IMGIX_API_URL or
        # the default would change another API than the one the command names.
        raise ConfigurationError(
            "--api-url is empty (an unset variable?): give the API's root URL, or leave "
            f"the option out to use {API_URL_VARIABLE} or {DEFAULT_API_URL}"
        )
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
        url,
        key,
        pacing=_pacing(environ),
        retry=_retry_policy(environ),
        request_timeout=_request_timeout(environ),
        direct=_plain_http_to_this_machine(url),
    )


def _checked_api_url(text: str, origin: str) -> str:
    """`text` when the client can use it as the API root; else why not, in one sentence.

    The client appends `/api/v1/...` to the root, so a query or fragment would swallow
    the path, and httpx would send user info as Basic auth in place of the Bearer key.
    """
    text = text.strip()
    if not is_text(text):
        raise ConfigurationError(f"{origin} cannot be used: it is not readable as UTF-8 text.")
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


def _plain_http_to_this_machine(url: str) -> bool:
    """Whether `url` is plain http to 127.0.0.0/8, ::1 or localhost."""
    parsed = httpx.URL(url)
    if parsed.scheme != "http":
        return False
    host = parsed.host.lower()
    try:
        address = ipaddress.ip_address(host)
        # Python 3.13 counts an IPv4-mapped IPv6 address (`::ffff:127.0.0.1`) as loopback
        # and earlier versions do not: refused on every version, the plain forms suffice.
        mapped = isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None
        return address.is_loopback and not mapped
    except ValueError:
        return host == "localhost"


def _refuse_clear_text(url: str, origin: str) -> None:
    """Refuse plain http to anything but this machine (127.0.0.0/8, ::1, localhost)."""
    if httpx.URL(url).scheme == "http" and not _plain_http_to_this_machine(url):
        host = httpx.URL(url).host.lower()
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
    if not 0 <= deadline <= MAX_RETRY_DEADLINE:  # also false for NaN
        raise ConfigurationError(
            f"{RETRY_DEADLINE_VARIABLE} must be a number of seconds >= 0 and at most "
            f"{MAX_RETRY_DEADLINE} (got {text!r})"
        )
    return RetryPolicy(deadline=deadline)


def _pacing(environ: Mapping[str, str]) -> Pacing:
    """imgix's documented limits, with the hourly budgets the environment raises or lowers."""
    budgets: dict[str, int] = {}
    for variable, name in (
        (CREATES_PER_HOUR_VARIABLE, "creates_per_hour"),
        (UPDATES_PER_HOUR_VARIABLE, "updates_per_hour"),
    ):
        text = environ.get(variable, "").strip()
        if not text:
            continue
        if text.isascii() and text.isdigit() and len(text) > MAX_BUDGET_DIGITS:
            # int() refuses thousands of digits; no budget needs more than a few.
            raise ConfigurationError(
                f"{variable} is too large: a whole number of writes per hour up to "
                f"{MAX_BUDGET_DIGITS} digits"
            )
        if not text.isascii() or not text.isdigit() or int(text) < 1:
            raise ConfigurationError(
                f"{variable} must be a whole number of writes per hour >= 1 (got {text[:40]!r})"
            )
        budgets[name] = int(text)
    return Pacing(**budgets)


def _request_timeout(environ: Mapping[str, str]) -> float:
    text = environ.get(REQUEST_TIMEOUT_VARIABLE, "").strip()
    if not text:
        return REQUEST_TIMEOUT
    try:
        seconds = float(text)
    except ValueError:
        seconds = 0.0
    if not 0 < seconds <= MAX_REQUEST_TIMEOUT:  # also false for NaN
        raise ConfigurationError(
            f"{REQUEST_TIMEOUT_VARIABLE} must be a number of seconds > 0 and at most "
            f"{MAX_REQUEST_TIMEOUT} (got {text!r})"
        )
    return seconds


def fingerprint_key(connection: Connection, environ: Mapping[str, str] | None = None) -> bytes:
    """The HMAC key for secret fingerprints.

    `IMGIX_RECONCILER_FINGERPRINT_KEY` when set; otherwise derived from the API key, which
    every run that writes already holds. The trade-off of the fallback: rotating the API
    key changes every fingerprint, so the next apply re-sends every secret once.
    """
    environ = os.environ if environ is None else environ
    # Whitespace around it ignored, as around the API key: a secret pasted with its line's
    # newline is the same key as one read without it, or every secret would be re-sent.
    explicit = environ.get(FINGERPRINT_KEY_VARIABLE, "").strip()
    if explicit:
        if len(explicit) < MIN_FINGERPRINT_KEY_LENGTH:
            # Markers are public to every key of the account: a short key lets anyone
            # guess it, then test guesses of each secret against its fingerprint offline.
            # (Too short to be masked in outputs, too.)
            raise ConfigurationError(
                f"{FINGERPRINT_KEY_VARIABLE} holds fewer than {MIN_FINGERPRINT_KEY_LENGTH} "
                "characters: set it to a long random string, e.g. from "
                "`python3 -c 'import secrets; print(secrets.token_urlsafe(48))'`"
            )
        if not is_text(explicit):
            raise ConfigurationError(f"{FINGERPRINT_KEY_VARIABLE} is not readable as UTF-8 text")
        redact.register(explicit)
        return explicit.encode()
    return hmac.new(
        connection.api_key.encode(), b"imgix-reconciler fingerprint key", hashlib.sha256
    ).digest()


# NamedTuples where nothing needs a dataclass's features: a frozen dataclass costs about
# 0.4 ms to define at start-up, a NamedTuple about 0.05.
class PlanResult(NamedTuple):
    """A plan with the inputs it was made from."""

    plan: Plan
    desired: LoadedState
    live: list[LiveSource]

    def __repr__(self) -> str:
        # Short: Python 3.11's asyncio.run formats the repr of its result when it restores
        # the SIGINT handler, which took 6 s and 330 MB for every source of a 100,000.
        return (
            f"PlanResult({len(self.plan.actions)} actions, "
            f"{len(self.desired.state.sources)} specs, {len(self.live)} live sources)"
        )


# Seconds: well within the 7.5 s CI leaves between its SIGINT and SIGTERM.
LOADING_GRACE_AFTER_LISTING_FAILED = 1.0


async def plan_files(
    files: Sequence[Path],
    connection: Connection,
    *,
    targets: Sequence[str] = (),
    resend_secrets: bool = False,
    take_over: bool = False,
    adopt: bool = False,
    secrets_optional: bool = True,
    environ: Mapping[str, str] | None = None,
    read_already: Mapping[str, bytes] | None = None,
) -> PlanResult:
    """Load the files while the live sources are listed, then plan.

    Secrets are optional by default: a plan without access to them still shows every
    other change and says "cannot compare" for them. `apply` asks for them all.
    `read_already` holds the bytes of files read before (a pipe cannot be read twice).
    """
    async with connection.client() as client:
        # The listing waits on the API's pace, the loading on the CPU: overlapped, a plan
        # takes about the longer of the two. A file with errors stops the listing. The plan
        # is computed once both are done (comparing each page as it came cost more CPU in
        # all than it saved after the last page: bench/plan.py).
        listing = asyncio.create_task(client.list_sources())
        loading = asyncio.ensure_future(
            _in_daemon_thread(
                _load_to_plan,
                files,
                environ=environ,
                secrets_optional=secrets_optional,
                read_already=read_already,
            )
        )
        try:
            await asyncio.wait((listing, loading), return_when=asyncio.FIRST_EXCEPTION)
            if listing.done() and listing.exception() is not None and not loading.done():
                # A listing that fails (401, a 5xx storm, an invalid answer) is reported
                # without waiting for a large file to load; the file's own errors, which
                # may explain it (a credential in the file), first if they come soon.
                await asyncio.wait((loading,), timeout=LOADING_GRACE_AFTER_LISTING_FAILED)
                if not loading.done() or loading.exception() is None:
                    listing.result()
            desired = await loading
            from reconciler.planner import PlanOptions, plan

            options = PlanOptions(
                fingerprint_key=fingerprint_key(connection, environ),
                resend_secrets=resend_secrets,
                targets=frozenset(targets),
                api_url=connection.api_url,
                take_over=take_over,
                adopt=adopt,
                creates_per_hour=connection.pacing.creates_per_hour,
                updates_per_hour=connection.pacing.updates_per_hour,
            )
        except BaseException:
            loading.cancel()
            listing.cancel()
            with contextlib.suppress(BaseException):
                await listing
            raise
        live = await listing
    from reconciler.loader import LoadError

    try:
        made = plan(desired.state, live, options)
    except PlanError as error:
        if not error.spec_indices:
            raise
        places = [desired.locations[index] for index in error.spec_indices]
        raise LoadError([place.error("", str(error)) for place in places]) from None
    return PlanResult(made, desired, live)


async def _in_daemon_thread(function: Callable[..., T], /, *args: object, **kwargs: object) -> T:
    """Run function in a daemon thread of its own, on the load stack, its result awaited.

    Not `asyncio.to_thread`: `asyncio.run` and the interpreter's exit join the default
    executor's threads, so a signal or a listing error while a large file loads ended the
    process only once the file was loaded, seconds later (CI's SIGKILL may come first).
    Cancelled, the thread runs on unawaited and its result or error is dropped.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()
    context = contextvars.copy_context()

    def settle(result: T | None, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    def run() -> None:
        try:
            result = context.run(function, *args, **kwargs)
        except BaseException as error:  # handed to the awaiting task, raised there
            outcome: tuple[T | None, BaseException | None] = (None, error)
        else:
            outcome = (result, None)
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody awaits it
            loop.call_soon_threadsafe(settle, *outcome)

    start_on_load_stack(run)
    return await future


def _load_to_plan(
    files: Sequence[Path],
    *,
    environ: Mapping[str, str] | None,
    secrets_optional: bool,
    read_already: Mapping[str, bytes] | None,
) -> LoadedState:
    from reconciler import loader, planner  # noqa: F401 (the planner: imported meanwhile)

    return loader.load(
        files, environ=environ, secrets_optional=secrets_optional, read_already=read_already
    )


async def list_live(connection: Connection) -> list[LiveSource]:
    """Every live source of the account."""
    async with connection.client() as client:
        return await client.list_sources()


def _saved_plan_key(connection: Connection, environ: Mapping[str, str] | None) -> bytes:
    # Derived from the fingerprint key rather than equal to it, so a MAC of one kind can
    # never pass for the other; and from the API key, which stands for the account (the
    # API names none): a fingerprint key shared by several accounts must not let a plan
    # made for one apply to another.
    account = hashlib.sha256(connection.api_key.encode()).digest()
    return hmac.new(
        fingerprint_key(connection, environ),
        b"imgix-reconciler saved plan\0" + account,
        hashlib.sha256,
    ).digest()


def authenticate_plan(
    made: Plan, connection: Connection, environ: Mapping[str, str] | None = None
) -> Plan:
    """`made` with the MAC that lets `apply` trust it as a saved plan (`plan --out`)."""
    return made.authenticated(_saved_plan_key(connection, environ))


@dataclass(frozen=True)
class SingleInput:
    """What `apply`'s one input holds, read once: a pipe (`apply <(cat plan.json)`)
    cannot be read twice."""

    # A saved plan document's bytes.
    plan: bytes | None = None
    # A desired-state file's bytes when they were read already (a pipe, or a file that
    # starts like a plan); None when the loader reads it itself.
    desired: bytes | None = None


# A saved plan of 100,000 sources is a few hundred MiB: past this bound a file is no plan,
# and a path such as /dev/zero is refused instead of filling memory.
MAX_PLAN_BYTES = 1024 * 1024 * 1024


def read_single_input(path: Path) -> SingleInput:
    """Whether `path` holds a saved plan document or a desired-state file, read once.

    Decided by content, not by a leading `{` alone: YAML written in JSON style is still YAML.
    """
    if references.linked_out_of(str(path)) is not None:
        return SingleInput()  # the loader refuses it unread, located (a pipe would block)
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except OSError:
        return SingleInput()  # the loader says why, located
    try:
        regular = stat.S_ISREG(os.fstat(descriptor).st_mode)
        head = references.read_up_to(descriptor, 4096)
        # A plan is a JSON object: anything else (a desired-state file in block style,
        # `/dev/zero`) is told by its first bytes, not read up to the plan's bound.
        maybe_plan = head.removeprefix(codecs.BOM_UTF8).lstrip().startswith(b"{")
        if regular and not maybe_plan:
            return SingleInput()
        if maybe_plan:
            limit = MAX_PLAN_BYTES
        else:
            from reconciler.loader import MAX_FILE_BYTES as limit
        data = head + references.read_up_to(descriptor, limit + 1 - len(head))
    except OSError:
        return SingleInput()
    finally:
        os.close(descriptor)
    if maybe_plan and len(data) <= MAX_PLAN_BYTES:
        # A byte order mark (a Windows editor's, PowerShell's) is no part of the JSON.
        text = data.removeprefix(codecs.BOM_UTF8)
        # How every saved plan starts (so a plan is parsed once, by `_parsed_plan`), yet
        # perhaps not JSON: a plan cut short, called so. Another start is parsed here.
        if PLAN_START.match(text) or _is_plan_document(text):
            return SingleInput(plan=data)
    # Handed on, not read again: YAML in JSON style starts like a plan.
    return SingleInput(desired=data)


def is_plan_file(path: Path) -> bool:
    """Whether `path` holds a saved plan document rather than a desired-state file."""
    return read_single_input(path).plan is not None


def _is_plan_document(data: bytes) -> bool:
    try:
        document = json.loads(data)
    except (ValueError, RecursionError):
        return False
    return isinstance(document, dict) and "format_version" in document


def read_plan_document(path: Path) -> Plan:
    """A plan document, for reading only: its digest checked, its MAC not (never apply it)."""
    document = _parsed_plan(path)
    _check_digest(path, document)
    return document


def read_plan_file(
    path: Path,
    connection: Connection,
    environ: Mapping[str, str] | None = None,
    *,
    read_already: bytes | None = None,
) -> Plan:
    """A saved plan that `plan --out` made with this key for this connection's API.

    Anything else (edited, forged, made with another key, or for another API) is refused
    before a single request is sent. `read_already`: the file's bytes, read before.
    """
    saved = _parsed_plan(path, read_already)
    try:
        check_saved_plan(saved, connection, environ)
    except PlanFileError as error:
        raise PlanFileError(f"{path}: {error}") from None
    _check_digest(path, saved)
    return saved


def _parsed_plan(path: Path, read_already: bytes | None = None) -> Plan:
    try:
        document = (
            references.read_limited(str(path), MAX_PLAN_BYTES, regular_only=False)
            if read_already is None
            else read_already
        )
    except references.Unreadable as error:
        raise PlanFileError(f"{path}: cannot read the plan: {error.reason}") from None
    document = document.removeprefix(codecs.BOM_UTF8)
    try:
        return Plan.model_validate_json(document)
    except (ValueError, RecursionError) as error:
        raise _not_a_plan(path, document, error) from None


def _not_a_plan(path: Path, document: bytes, error: Exception) -> PlanFileError:
    """Why `document` is refused: cut short, of another format version, or no plan at all."""
    parsed: Any = None
    try:
        parsed = json.loads(document)
    except json.JSONDecodeError as syntax:
        if PLAN_START.match(document):
            return PlanFileError(
                f"{path}: the plan is not valid JSON ({syntax.msg} at line {syntax.lineno}, "
                f"column {syntax.colno}): was it cut short? Plan again with `plan --out`"
            )
    except (ValueError, RecursionError):
        pass
    version = parsed.get("format_version") if isinstance(parsed, dict) else None
    applied: int = Plan.model_fields["format_version"].default
    if type(version) is int and version != applied:
        return PlanFileError(
            f"{path}: a plan of format_version {version}, which this version of "
            f"imgix-reconciler does not apply (it applies format_version {applied}): plan "
            "again with `plan --out`"
        )
    first = str(error).splitlines()[0] if str(error) else type(error).__name__
    return PlanFileError(f"{path}: not a plan document written by `plan --out` ({first})")


def _check_digest(path: Path, document: Plan) -> None:
    if compute_digest(document.actions, document.api_url) != document.digest:
        raise PlanFileError(f"{path}: the actions do not match the plan's digest (edited?)")


def check_saved_plan(
    saved: Plan, connection: Connection, environ: Mapping[str, str] | None = None
) -> None:
    """Refuse a saved plan not authenticated with this run's key, or made for another API."""
    if saved.mac is None:
        raise PlanFileError(
            "the plan carries no MAC: only a plan saved by `plan --out` can be applied "
            "(`--format json` prints one for reading)"
        )
    if not saved.is_authentic(_saved_plan_key(connection, environ)):
        raise PlanFileError(
            "the plan's MAC does not match its content: it was edited or forged after "
            f"`plan --out`, or saved with another key ({FINGERPRINT_KEY_VARIABLE}, or "
            f"{API_KEY_VARIABLE} when that is unset) or for another API key (another "
            "account); nothing was written"
        )
    if saved.api_url is None:
        raise PlanFileError("the plan records no API (`api_url`): plan again with `plan --out`")
    if _api_named(saved.api_url) != _api_named(connection.api_url):
        raise ApplyRefused(
            f"the saved plan was made against {saved.api_url}, not {connection.api_url}: "
            "plan again against the API you mean to change"
        )


def _api_named(url: str) -> tuple[str, str, int | None, str]:
    """The API a URL names, however it is spelled: the scheme and host in any case, the
    scheme's own port given or not, a trailing slash or not."""
    parsed = httpx.URL(url)
    return parsed.scheme, parsed.host, parsed.port, parsed.path.rstrip("/")


# Findings named one by one in the drift verdict; the rest are counted.
MAX_NAMED_FINDINGS = 20
UNADOPTED = "changed outside git, or not adopted yet"


def drift_findings(result: Plan, *, allow_unadopted: bool = False) -> list[str]:
    """Why live state differs from the files; empty when in sync.

    A managed source without the marker is drift: the tool keeps no state, so a marker a
    dashboard edit dropped (and a secret changed with it) looks like one never written.
    `allow_unadopted` tolerates those while an adoption is under way.
    """
    findings = [f"{action.action} {action.source}" for action in result.actions]
    findings += [f"{o.source} differs (mode: observe, never written)" for o in result.observed]
    for notice in result.notices:
        if notice.kind == "encrypted_changed":
            findings.append(f"{notice.source}: {notice.detail}")
    adoption = result.adoption
    if adoption is not None and not adoption.planned and not allow_unadopted:
        findings += [f"{source.name} ({source.id}): {UNADOPTED}" for source in adoption.sources]
    return findings


def drift_summary(findings: Sequence[str]) -> str:
    """The drift verdict in one line, naming at most `MAX_NAMED_FINDINGS` findings."""
    shown = "; ".join(findings[:MAX_NAMED_FINDINGS])
    hidden = len(findings) - MAX_NAMED_FINDINGS
    return f"Drift: {shown}" + (f"; and {hidden} more." if hidden > 0 else ".")


class ApplyRequest(NamedTuple):
    """What `apply` was asked beyond the plan: the flags that let it write, the reviewed digest."""

    permissions: Permissions = Permissions()
    targets: tuple[str, ...] = ()
    resend_secrets: bool = False
    adopt: bool = False
    expect_digest: str | None = None


class PlanToApply(NamedTuple):
    """The plan `apply` would apply, and the files it was made from (None: a saved plan)."""

    plan: Plan
    made: PlanResult | None = None

    def __repr__(self) -> str:
        # Short, as PlanResult's: asyncio.run may format it.
        return f"PlanToApply({len(self.plan.actions)} actions, {self.made!r})"

    @property
    def saved(self) -> bool:
        """Whether the plan was saved by `plan --out` (and must carry its MAC)."""
        return self.made is None


async def plan_to_apply(
    inputs: Sequence[Path],
    connection: Connection,
    request: ApplyRequest,
    environ: Mapping[str, str] | None = None,
) -> PlanToApply:
    """The saved plan `inputs` names, or a fresh plan of the files with every secret read."""
    given = read_single_input(inputs[0]) if len(inputs) == 1 else SingleInput()
    if given.plan is not None:
        _refuse_planning_options(request)
        return PlanToApply(read_plan_file(inputs[0], connection, environ, read_already=given.plan))
    made = await plan_files(
        inputs,
        connection,
        targets=request.targets,
        resend_secrets=request.resend_secrets,
        take_over=request.permissions.take_over,
        adopt=request.adopt,
        secrets_optional=False,
        environ=environ,
        read_already={} if given.desired is None else {str(inputs[0]): given.desired},
    )
    return PlanToApply(made.plan, made)


def _refuse_planning_options(request: ApplyRequest) -> None:
    # A saved plan was planned already: silently ignoring these would apply something
    # other than what the user asked for.
    options = (
        ("--target", bool(request.targets)),
        ("--resend-secrets", request.resend_secrets),
        ("--adopt", request.adopt),
    )
    given = [name for name, on in options if on]
    if given:
        raise ApplyRefused(
            f"{' and '.join(given)} {'changes' if len(given) == 1 else 'change'} what is "
            "planned, and a saved plan is applied as it was planned: pass "
            f"{' and '.join(given)} to `plan --out` instead"
        )


def check_apply_policy(to_apply: PlanToApply, request: ApplyRequest) -> bool:
    """Refuse, before any write, what may not be applied; False when there is nothing to do.

    A plan that is not the reviewed one (`expect_digest`) is stale (exit 4); what the
    rails stop is refused, each refusal located in the files when the plan was made
    from them.
    """
    plan = to_apply.plan
    if request.expect_digest is not None and plan.digest != request.expect_digest:
        raise StalePlan(
            f"the plan's digest is {plan.digest}, not the reviewed {request.expect_digest}: "
            "live sources or the files changed since review"
        )
    if not plan.has_changes and not plan.owned_elsewhere:
        return False
    try:
        check_permissions(plan, permissions=request.permissions)
    except ApplyRefused as error:
        if to_apply.made is None:
            raise
        located = located_refusals(error.refusals, to_apply.made)
        raise ApplyRefused(str(error), error.refusals, located) from None
    return True


def check_ownership(made: PlanResult) -> None:
    """Refuse a plan whose specs match sources another owner's files manage (exit 1)."""
    found = ownership_refusals(made.plan)
    if found:
        names = ", ".join(sorted({escaped(name) for r in found for _, name, _ in r.sources}))
        raise ApplyRefused(
            f"the files describe live sources that another owner manages ({names}): they are "
            "never written; re-run with --take-over to take them over, or remove them",
            found,
            located_refusals(found, made),
        )


def located_refusals(refusals: Sequence[Refusal], made: PlanResult) -> list[LocatedError]:
    """Each refused source as an error at its place in the files, in file order."""
    from reconciler.planner import match_sources

    places = {}
    for match in match_sources(made.desired.state.sources, made.live):
        key = (
            match.live.id
            if match.live is not None
            else f"new:{match.spec.deployment.imgix_subdomains[0]}"
        )
        places[key] = made.desired.locations[match.index]
    located = [
        places[key].error("", f"source {quoted(name)}: {detail}")
        for refusal in refusals
        for key, name, detail in refusal.sources
        if key in places
    ]
    return sorted(located, key=lambda e: (e.file, e.line, e.column))


async def apply_with_report(
    result: Plan,
    connection: Connection,
    *,
    allow_disable: bool = False,
    permissions: Permissions | None = None,
    saved: bool = False,
    wait: bool = False,
    environ: Mapping[str, str] | None = None,
    on_result: Callable[[ActionResult], None] | None = None,
    on_status: Callable[[LiveSource], None] | None = None,
    stop: Stop | None = None,
    progress: ApplyProgress | None = None,
    listing: Listing | None = None,
) -> ApplyReport:
    """Apply a plan with the connection's pacer; with `wait`, poll until touched sources deploy.

    A `saved` plan must carry the MAC of `plan --out` and have been made against this
    connection's API. Once `stop` is requested no write starts and `wait` ends;
    `progress` hears of every action, budget wait and status, and beats while the run
    is quiet. A fresh plan's `listing` (its sources, and when they were listed on the
    connection's clock) is what a patch starting late compares its source with.
    """
    from reconciler.applier import SecretResolver, apply_plan, wait_until_deployed

    if saved:
        check_saved_plan(result, connection, environ)
    stop = stop or Stop()
    pacer = connection.pacer
    pacer.stop = stop
    results = _Listeners([on_result] if on_result else [])
    statuses = _Listeners([on_status] if on_status else [])
    heartbeat: asyncio.Task[None] | None = None
    if progress is not None:
        results.append(progress.action_done)
        statuses.append(progress.deploy_status)
        pacer.on_budget_wait = progress.budget_wait
        heartbeat = asyncio.create_task(progress.heartbeat(connection.sleep))
    try:
        async with connection.client() as client:
            report = await apply_plan(
                result,
                client,
                resolver=SecretResolver(environ),
                fingerprint_key=fingerprint_key(connection, environ),
                allow_disable=allow_disable,
                permissions=permissions,
                saved=saved,
                on_result=results,
                stop=stop,
                listing=listing,
                clock=connection.clock,
            )
            if wait and report.touched_ids and stop.reason is None:
                left, given_up = await wait_until_deployed(
                    client,
                    report.touched_ids,
                    on_status=statuses,
                    on_gave_up=_gave_up(progress),
                    sleep=connection.sleep,
                    stop=stop,
                )
                report = replace(
                    report, still_deploying=left, given_up=given_up, stopped=stop.reason
                )
    finally:
        pacer.on_budget_wait = None
        pacer.stop = Stop()
        if heartbeat is not None:
            heartbeat.cancel()
            await asyncio.gather(heartbeat, return_exceptions=True)
    return report


def _gave_up(progress: ApplyProgress | None) -> Callable[[str], None] | None:
    """Tell the user why `--wait` stopped polling (the report lists what is not deployed)."""
    if progress is None:
        return None
    return lambda why: progress.note(f"--wait gave up: {one_line(why)}")


class _Listeners(list[Callable[[T], None]]):
    """Several callbacks called as one."""

    def __call__(self, event: T) -> None:
        for listener in self:
            listener(event)
