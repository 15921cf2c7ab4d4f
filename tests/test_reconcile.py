"""reconciler/reconcile.py: which `--api-url` values a command may start with; apply's policy."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import io
import json
import os
import socket
import threading
import tracemalloc
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import FakeClock
from console import invoke
from hostile_server import loopback_listener

from reconciler import loader, reconcile, redact
from reconciler.client import REQUEST_TIMEOUT, ClientError
from reconciler.emulator import EMULATOR_API_KEY, SourceStore
from reconciler.emulator.listing import Page
from reconciler.errors import ApplyRefused, PlanError, StalePlan
from reconciler.loader import LoadedState, LoadError
from reconciler.pacing import Pacing, RetryPolicy, Stop
from reconciler.plan import (
    Action,
    Adoption,
    Change,
    Notice,
    ObservedSource,
    OwnedElsewhere,
    Plan,
    SourceRef,
    Summary,
    compute_digest,
)
from reconciler.rails import Permissions
from reconciler.reconcile import (
    API_URL_VARIABLE,
    CREATES_PER_HOUR_VARIABLE,
    REQUEST_TIMEOUT_VARIABLE,
    RETRY_DEADLINE_VARIABLE,
    UPDATES_PER_HOUR_VARIABLE,
    ApplyRequest,
    ConfigurationError,
    PlanFileError,
    PlanToApply,
    authenticate_plan,
    check_apply_policy,
    connect,
    plan_to_apply,
    read_plan_document,
)

KEY = "ak_" + "0" * 64
REPO = Path(__file__).resolve().parent.parent
DESIRED = REPO / "tests" / "fixtures" / "valid_minimal.yaml"
INVALID = REPO / "tests" / "fixtures" / "invalid_five_mistakes.yaml"
ENVIRON = {"IMGIX_API_KEY": KEY}


def refusal(api_url: str | None, environ: dict[str, str] = ENVIRON) -> str:
    with pytest.raises(ConfigurationError) as caught:
        connect(api_url, environ=environ)
    return str(caught.value)


@pytest.mark.parametrize(
    "api_url",
    [
        "https://api.imgix.com",
        "http://127.0.0.1:8080",
        "http://127.0.0.1:8080/",
        "https://proxy.example/imgix",
        "https://proxy.example/imgix/",
        "http://[::1]:65535",
        "http://127.0.0.1:1",
        "HTTPS://API.IMGIX.COM",
    ],
)
def test_an_http_url_with_or_without_a_path_prefix_is_accepted(api_url: str) -> None:
    assert connect(api_url, environ=ENVIRON).api_url == api_url


def test_the_url_comes_from_the_environment_when_no_option_is_given() -> None:
    connection = connect(None, environ={**ENVIRON, API_URL_VARIABLE: "http://127.0.0.1:9"})
    assert connection.api_url == "http://127.0.0.1:9"
    assert connect(None, environ=ENVIRON).api_url == "https://api.imgix.com"


@pytest.mark.parametrize("api_url", ["", " \n"])
def test_an_empty_api_url_is_refused_not_taken_for_the_environment_s(api_url: str) -> None:
    # `--api-url "$STAGING_URL"` with the variable unset: IMGIX_API_URL (perhaps
    # production) would be changed in its place.
    environ = {**ENVIRON, API_URL_VARIABLE: "http://127.0.0.1:9"}
    assert refusal(api_url, environ) == (
        "--api-url is empty (an unset variable?): give the API's root URL, or leave the "
        "option out to use IMGIX_API_URL or https://api.imgix.com"
    )


@pytest.mark.parametrize(
    ("api_url", "reason"),
    [
        ("http://127.0.0.1:99999", "port 99999 is out of range (1-65535)"),
        ("http://127.0.0.1:0", "port 0 is out of range (1-65535)"),
        ("http://127.0.0.1:65536", "port 65536 is out of range (1-65535)"),
        ("http://[::1", "it is not a valid URL (Invalid port: ':1')"),
        ("http://", "it names no host"),
        ("http:///api", "it names no host"),
        ("http://a b", "'a%20b' is not a valid host name"),
        ("https://api.imgix.com?region=eu", "it must not have a query (`?...`)"),
        ("https://api.imgix.com/?", "it must not have a query (`?...`)"),
        ("https://api.imgix.com#top", "it must not have a fragment (`#...`)"),
        ("ftp://api.imgix.com", "it must be an http(s) URL"),
        ("api.imgix.com", "it must be an http(s) URL"),
    ],
)
def test_a_bad_url_is_one_clear_sentence(api_url: str, reason: str) -> None:
    assert refusal(api_url) == f"--api-url {api_url!r} cannot be used: {reason}."


@pytest.mark.parametrize(
    "api_url",
    [
        "http://user:hunter2-pass@127.0.0.1:8080",
        "https://:hunter2-pass@proxy.example/imgix",
        "http://user:hunter2/pass@[::1",
    ],
)
def test_a_url_with_a_password_is_refused_without_echoing_it(api_url: str) -> None:
    # httpx would send the user info as Basic auth in place of the Bearer key.
    message = refusal(api_url)
    assert "hunter2" not in message
    assert message.startswith("--api-url ")


def test_a_user_name_is_refused_with_the_reason() -> None:
    assert refusal("http://user:pw@127.0.0.1:8080") == (
        "--api-url 'http://…@127.0.0.1:8080' cannot be used: it must not carry a user "
        "name or password (the API key is read from IMGIX_API_KEY only)."
    )


def test_a_url_invalid_only_in_its_password_is_refused_without_the_parser_s_words() -> None:
    # httpx names the bad character and its position: a clue to the password.
    assert refusal("http://user:hun\x7fter2@127.0.0.1:8080") == (
        "--api-url 'http://…@127.0.0.1:8080' cannot be used: it is not a valid URL."
    )


def test_a_url_that_is_not_utf8_is_refused_without_echoing_it() -> None:
    # Bytes that are not UTF-8 (kept by Python as lone surrogates): httpx's encoding of
    # the URL was an internal error.
    environ = {**ENVIRON, API_URL_VARIABLE: "http://127.0.0.1:9/secret-\udcff"}
    assert refusal(None, environ) == (
        "IMGIX_API_URL cannot be used: it is not readable as UTF-8 text."
    )


def test_a_bad_url_from_the_environment_names_the_variable() -> None:
    environ = {**ENVIRON, API_URL_VARIABLE: "http://127.0.0.1:99999"}
    assert refusal(None, environ) == (
        "IMGIX_API_URL 'http://127.0.0.1:99999' cannot be used: port 99999 is out of range "
        "(1-65535)."
    )


def test_surrounding_whitespace_of_the_url_is_ignored() -> None:
    assert connect(" http://127.0.0.1:8080\n", environ=ENVIRON).api_url == "http://127.0.0.1:8080"


def test_a_connection_s_repr_never_shows_the_api_key() -> None:
    # A repr lands in tracebacks, asyncio's debug output and a library user's logs.
    connection = connect("https://api.imgix.com", environ=ENVIRON)
    assert KEY not in repr(connection)
    assert "https://api.imgix.com" in repr(connection)


@pytest.mark.parametrize("key", [None, "", " \n"])
def test_a_missing_api_key_is_refused_naming_the_variable(key: str | None) -> None:
    environ = {} if key is None else {"IMGIX_API_KEY": key}
    assert refusal("https://api.imgix.com", environ) == (
        "IMGIX_API_KEY is not set: export an imgix API key with the Sources permission (it "
        "is read from the environment only, never from an option)"
    )


def test_the_url_is_checked_before_the_key() -> None:
    with pytest.raises(ConfigurationError, match="port 99999"):
        connect("http://127.0.0.1:99999", environ={})


@pytest.mark.parametrize(
    "api_url",
    [
        "http://api.imgix.com",
        "http://10.0.0.7:8080",
        "http://[2001:db8::1]/imgix",
        "http://localhost.example.com",
        "http://127.0.0.1.example.com",
        "http://[::ffff:127.0.0.1]:8080",
    ],
)
def test_plain_http_beyond_this_machine_is_refused_without_the_opt_in(api_url: str) -> None:
    # Refused in connect, before any client exists: no request can carry the key.
    message = refusal(api_url)
    assert message.startswith(f"--api-url {api_url!r} is plain http to ")
    assert message.endswith(
        "which would send the API key in clear: use https, or pass --allow-insecure-http "
        "if this network is trusted."
    )
    assert connect(api_url, allow_insecure_http=True, environ=ENVIRON).api_url == api_url


@pytest.mark.parametrize(
    "api_url",
    ["http://127.0.0.1:8787", "http://127.255.0.9", "http://localhost:8080", "http://[::1]:80"],
)
def test_plain_http_to_this_machine_needs_no_opt_in(api_url: str) -> None:
    assert connect(api_url, environ=ENVIRON).api_url == api_url


def test_plain_http_from_the_environment_is_refused_naming_the_variable() -> None:
    environ = {**ENVIRON, API_URL_VARIABLE: "http://api.imgix.com"}
    assert refusal(None, environ).startswith("IMGIX_API_URL 'http://api.imgix.com' is plain http")


@contextlib.contextmanager
def _hung_up_on() -> Iterator[tuple[str, list[bytes]]]:
    """A loopback listener that reads each connection's first bytes and hangs up; its URL,
    and the bytes each connection sent."""
    heard: list[bytes] = []

    def hang_up(connection: socket.socket) -> None:
        connection.settimeout(5)
        heard.append(connection.recv(4096))

    with loopback_listener(hang_up) as port:
        yield f"http://127.0.0.1:{port}", heard


def _proxies_only(monkeypatch: pytest.MonkeyPatch, **proxies: str) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    for name, url in proxies.items():
        monkeypatch.setenv(name, url)


def _list_once(connection: reconcile.Connection) -> None:
    connection = dataclasses.replace(connection, retry=RetryPolicy(deadline=0))
    with pytest.raises(ClientError):  # the listener hangs up: the one attempt fails
        asyncio.run(reconcile.list_live(connection))


def test_plain_http_to_this_machine_never_goes_through_the_environment_s_proxy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The proxy would carry the API key in clear off the machine.
    with _hung_up_on() as (api_url, api_heard), _hung_up_on() as (proxy_url, proxy_heard):
        _proxies_only(monkeypatch, HTTP_PROXY=proxy_url, ALL_PROXY=proxy_url)
        _list_once(connect(api_url, environ=ENVIRON))
    assert proxy_heard == []
    assert api_heard and api_heard[0].startswith(b"GET /api/v1/sources")


@pytest.mark.parametrize("variable", ["HTTPS_PROXY", "https_proxy", "ALL_PROXY"])
def test_https_goes_through_the_proxy_the_environment_names(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    # A runner behind a corporate proxy reaches the API only through it.
    with _hung_up_on() as (api_url, api_heard), _hung_up_on() as (proxy_url, proxy_heard):
        _proxies_only(monkeypatch, **{variable: proxy_url})
        api = api_url.replace("http://", "https://")
        _list_once(connect(api, environ=ENVIRON))
        _list_once(reconcile.Connection(api, KEY))  # a library user's, made directly
    assert api_heard == []
    assert [heard.startswith(f"CONNECT {api[8:]}".encode()) for heard in proxy_heard] == [
        True,
        True,
    ]


def test_plain_http_allowed_beyond_this_machine_goes_through_the_environment_s_proxy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # An IPv4-mapped address is not this machine to the loopback rule, yet reaches it.
    with _hung_up_on() as (api_url, api_heard), _hung_up_on() as (proxy_url, proxy_heard):
        _proxies_only(monkeypatch, HTTP_PROXY=proxy_url)
        api = api_url.replace("127.0.0.1", "[::ffff:127.0.0.1]")
        _list_once(connect(api, allow_insecure_http=True, environ=ENVIRON))
    assert api_heard == []
    # (httpx drops the brackets of the address in the request line: the Host is whole.)
    assert proxy_heard and proxy_heard[0].startswith(b"GET http://")
    assert f"Host: {api[7:]}".encode() in proxy_heard[0]


def test_an_ipv6_entry_of_no_proxy_without_a_proxy_is_no_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Kubernetes runners list their IPv6 ranges, which httpx cannot read.
    _proxies_only(monkeypatch, NO_PROXY="localhost,fd00::/8")
    connect("https://127.0.0.1:9", environ=ENVIRON).client()


@pytest.mark.parametrize(
    ("proxy", "port"),
    [
        ("http://user:proxy-password@127.0.0.1:99999", 99999),
        ("127.0.0.1:65536", 65536),  # httpx reads a proxy without a scheme as http
        ("http://127.0.0.1:0", 0),
    ],
)
def test_a_proxy_port_out_of_range_is_refused_as_the_client_is_made(
    monkeypatch: pytest.MonkeyPatch, proxy: str, port: int
) -> None:
    # httpx would fail only as it connects, with an OverflowError in a task group.
    _proxies_only(monkeypatch, HTTPS_PROXY=proxy)
    connection = connect("https://127.0.0.1:9", environ=ENVIRON)
    with pytest.raises(ConfigurationError) as refused:
        connection.client()
    assert str(refused.value) == (
        "cannot use the proxy the environment names (HTTPS_PROXY, HTTP_PROXY or ALL_PROXY): "
        f"port {port} is out of range (1-65535)"
    )


@pytest.mark.parametrize(
    ("variable", "proxy", "why"),
    [
        (
            "ALL_PROXY",
            "socks5://user:proxy-password@127.0.0.1:9",
            "a SOCKS proxy needs httpx's SOCKS support (pip install 'httpx[socks]')",
        ),
        (
            "HTTPS_PROXY",
            "ftp://user:proxy-password@127.0.0.1:9",
            "its scheme is none of http, https, socks5 or socks5h",
        ),
        (
            "HTTPS_PROXY",
            "http://user:proxy-password@proxy.corp:port",
            "its URL is not valid (its port or host?)",
        ),
    ],
)
def test_a_proxy_httpx_cannot_use_is_refused_saying_why(
    monkeypatch: pytest.MonkeyPatch, variable: str, proxy: str, why: str
) -> None:
    _proxies_only(monkeypatch, **{variable: proxy})
    with pytest.raises(ConfigurationError) as refused:
        connect("https://127.0.0.1:9", environ=ENVIRON).client()
    assert str(refused.value) == (
        "cannot use the proxy the environment names (HTTPS_PROXY, HTTP_PROXY or ALL_PROXY): " + why
    )


@pytest.mark.parametrize("proxy", ["http://127.0.0.1:1", "127.0.0.1:65535", "http://proxy.test"])
def test_a_proxy_port_in_range_or_none_is_accepted(
    monkeypatch: pytest.MonkeyPatch, proxy: str
) -> None:
    _proxies_only(monkeypatch, HTTPS_PROXY=proxy)
    connect("https://127.0.0.1:9", environ=ENVIRON).client()


def test_the_request_timeout_comes_from_the_environment() -> None:
    assert connect(None, environ=ENVIRON).request_timeout == REQUEST_TIMEOUT
    environ = {**ENVIRON, REQUEST_TIMEOUT_VARIABLE: " 2.5 "}
    assert connect(None, environ=environ).request_timeout == 2.5
    environ = {**ENVIRON, REQUEST_TIMEOUT_VARIABLE: "0.5"}
    assert connect(None, environ=environ).request_timeout == 0.5


def test_requests_keep_the_timeout_and_retry_deadline_of_the_environment() -> None:
    # Read and checked, then dropped on the way to the client, they would leave a stalling
    # API holding the run for the defaults' 30 s per request and 120 s of retries.
    clock = FakeClock()
    timeouts: list[object] = []

    def unavailable(request: httpx.Request) -> httpx.Response:
        timeouts.append(request.extensions["timeout"])
        return httpx.Response(503)

    environ = {**ENVIRON, REQUEST_TIMEOUT_VARIABLE: "2.5", RETRY_DEADLINE_VARIABLE: "0"}
    connection = dataclasses.replace(
        connect("https://api.imgix.com", environ=environ),
        transport=httpx.MockTransport(unavailable),
        clock=clock,
        sleep=clock.sleep,
    )
    with pytest.raises(ClientError, match="503"):
        asyncio.run(reconcile.list_live(connection))
    assert timeouts == [dict.fromkeys(("connect", "read", "write", "pool"), 2.5)]


def test_the_retry_deadline_is_counted_on_the_connection_s_clock() -> None:
    # A library user's injected clock (and the suite's) must bound the retries, or a
    # fake clock's time never reaches the deadline and every attempt is spent.
    clock = FakeClock()
    attempts: list[float] = []

    def unavailable(request: httpx.Request) -> httpx.Response:
        attempts.append(clock.elapsed)
        return httpx.Response(503, headers={"Retry-After": "1"})

    environ = {**ENVIRON, RETRY_DEADLINE_VARIABLE: "2.5"}
    connection = dataclasses.replace(
        connect("https://api.imgix.com", environ=environ),
        transport=httpx.MockTransport(unavailable),
        clock=clock,
        sleep=clock.sleep,
    )
    with pytest.raises(ClientError, match=r"would pass the 2\.5s deadline"):
        asyncio.run(reconcile.list_live(connection))
    assert attempts == [0.0, 1.0, 2.0]


@pytest.mark.parametrize("text", ["0", "-1", "nan", "inf", "soon", "3600.5", "1e300"])
def test_a_request_timeout_that_is_not_a_positive_number_up_to_an_hour_is_refused(
    text: str,
) -> None:
    # A huge timeout is no timeout: a server that accepts and sends nothing would hold
    # the run until CI kills it, which the timeout exists to prevent.
    environ = {**ENVIRON, REQUEST_TIMEOUT_VARIABLE: text}
    assert refusal(None, environ) == (
        "IMGIX_RECONCILER_REQUEST_TIMEOUT must be a number of seconds > 0 and at most 3600 "
        f"(got {text!r})"
    )


def test_a_request_timeout_of_an_hour_is_accepted() -> None:
    environ = {**ENVIRON, REQUEST_TIMEOUT_VARIABLE: "3600"}
    assert connect(None, environ=environ).request_timeout == 3600.0


def test_the_retry_deadline_comes_from_the_environment() -> None:
    assert connect(None, environ=ENVIRON).retry is None  # the client's own default
    for text, deadline in ((" 30 ", 30.0), ("0", 0.0), ("2.5", 2.5)):
        environ = {**ENVIRON, RETRY_DEADLINE_VARIABLE: text}
        assert connect(None, environ=environ).retry == RetryPolicy(deadline=deadline)


@pytest.mark.parametrize("text", ["-1", "nan", "soon", "-inf", "inf", "86401", "1e300"])
def test_a_retry_deadline_that_is_not_a_number_of_seconds_up_to_a_day_is_refused(
    text: str,
) -> None:
    # An endless deadline retries an outage until CI kills the job, with no error line.
    environ = {**ENVIRON, RETRY_DEADLINE_VARIABLE: text}
    assert refusal(None, environ) == (
        "IMGIX_RECONCILER_RETRY_DEADLINE must be a number of seconds >= 0 and at most 86400 "
        f"(got {text!r})"
    )


def test_a_retry_deadline_of_a_day_is_accepted() -> None:
    environ = {**ENVIRON, RETRY_DEADLINE_VARIABLE: "86400"}
    assert connect(None, environ=environ).retry == RetryPolicy(deadline=86400.0)


def test_the_hourly_write_budgets_come_from_the_environment() -> None:
    assert connect(None, environ=ENVIRON).pacing == Pacing()
    environ = {**ENVIRON, CREATES_PER_HOUR_VARIABLE: " 5 ", UPDATES_PER_HOUR_VARIABLE: "1"}
    for connection in (
        connect(None, environ=environ),
        connect(None, emulator=True, environ=environ),
    ):
        assert (connection.pacing.creates_per_hour, connection.pacing.updates_per_hour) == (5, 1)
        assert connection.pacing.per_second == Pacing().per_second
    only_updates = {**ENVIRON, UPDATES_PER_HOUR_VARIABLE: "7"}
    assert connect(None, environ=only_updates).pacing == Pacing(updates_per_hour=7)


@pytest.mark.parametrize("text", ["0", "-1", "1.5", "\u0663", "many"])
@pytest.mark.parametrize("variable", ["CREATES", "UPDATES"])
def test_an_hourly_budget_that_is_not_a_whole_number_above_zero_is_refused(
    variable: str, text: str
) -> None:
    name = f"IMGIX_RECONCILER_{variable}_PER_HOUR"
    assert refusal(None, {**ENVIRON, name: text}) == (
        f"{name} must be a whole number of writes per hour >= 1 (got {text!r})"
    )


def test_an_hourly_budget_of_thousands_of_digits_is_refused_as_too_large() -> None:
    # int() refuses past 4,300 digits: "internal error: ValueError: Exceeds the limit".
    name = "IMGIX_RECONCILER_CREATES_PER_HOUR"
    assert refusal(None, {**ENVIRON, name: "9" * 5000}) == (
        f"{name} is too large: a whole number of writes per hour up to 18 digits"
    )
    assert connect(None, environ={**ENVIRON, name: "9" * 18}).pacing.creates_per_hour == int(
        "9" * 18
    )


def test_an_accepted_path_prefix_reaches_the_api_under_it() -> None:
    seen: list[str] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(200, json={"data": [], "meta": {"pagination": {"totalPages": 1}}})

    connection = connect("https://proxy.example/imgix/", environ=ENVIRON)
    connection = type(connection)(
        connection.api_url, connection.api_key, transport=httpx.MockTransport(record)
    )

    async def listing() -> None:
        async with connection.client() as client:
            await client.list_sources()

    asyncio.run(listing())
    assert seen[0].startswith("https://proxy.example/imgix/api/v1/sources?")


# --------------------------------------------------------------------------- plan_files


def test_the_listing_starts_while_the_files_load_and_an_invalid_file_stops_it(
    emulator_url: str,
    emulator_store: SourceStore,
    fake_clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for n in range(250):  # three pages of 100
        emulator_store.create_source(
            {
                "name": f"Live {n}",
                "deployment": {
                    "type": "webfolder",
                    "imgix_subdomains": [f"live-{n}"],
                    "webfolder_base_url": "https://origin.example/",
                },
            }
        )
    listed, planned = threading.Event(), threading.Event()
    real_load, real_list = loader.load, emulator_store.list_sources

    def load_after_the_first_request(*args: Any, **kwargs: Any) -> LoadedState:
        # Loading cannot finish before the API has been asked: the two overlap.
        assert listed.wait(timeout=30), "the listing waited for the files"
        return real_load(*args, **kwargs)

    def list_sources(params: Mapping[str, str]) -> Page:
        listed.set()
        if failing:
            # The first page is answered only once the plan has ended: answered as the load
            # failed, it raced the failure, and with no pace (a fake clock) the pages after
            # it could be asked for before the listing was stopped.
            planned.wait(timeout=30)
        return real_list(params)

    failing = False
    monkeypatch.setattr(loader, "load", load_after_the_first_request)
    monkeypatch.setattr(emulator_store, "list_sources", list_sources)
    connection = reconcile.Connection(
        emulator_url, EMULATOR_API_KEY, clock=fake_clock.time, sleep=fake_clock.sleep
    )
    made = asyncio.run(reconcile.plan_files([DESIRED], connection, environ={}))
    assert len(made.live) == 250
    gets = [entry for entry in emulator_store.request_log if entry.method == "GET"]
    assert len(gets) == 3  # the first page says how many; nothing else is requested

    failing = True
    listed.clear()
    emulator_store.request_log.clear()
    try:
        with pytest.raises(LoadError):
            asyncio.run(reconcile.plan_files([INVALID], connection, environ={}))
    finally:
        planned.set()
    # The plan ended without waiting for the page in flight, and asked for no other.
    assert len(emulator_store.request_log) <= 1


def _rejected(clock: FakeClock) -> reconcile.Connection:
    """A connection to the emulator with a malformed key: the first page is a 401."""
    from reconciler.emulator import create_app

    return reconcile.Connection(
        "http://emulator.test",
        "ak_not-hex",
        httpx.ASGITransport(app=create_app(SourceStore(clock=clock))),
        clock=clock,
        sleep=clock.sleep,
    )


def _held_load(monkeypatch: pytest.MonkeyPatch) -> tuple[threading.Event, threading.Event]:
    """Loading waits until the first event is set (at most 5 s); the second says it ended."""
    released, ended = threading.Event(), threading.Event()
    real_load = loader.load

    def held(*args: Any, **kwargs: Any) -> LoadedState:
        released.wait(timeout=5)
        try:
            return real_load(*args, **kwargs)
        finally:
            ended.set()

    monkeypatch.setattr(loader, "load", held)
    return released, ended


def test_a_listing_that_fails_is_told_without_waiting_for_the_files_unless_they_fail_soon(
    fake_clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reconciler.client import AuthError

    monkeypatch.setattr(reconcile, "LOADING_GRACE_AFTER_LISTING_FAILED", 0.05)
    rejected = _rejected(fake_clock)
    real_load = loader.load
    released, loaded = _held_load(monkeypatch)  # a large file, still loading at the 401
    try:
        with pytest.raises(AuthError, match="401"):
            asyncio.run(reconcile.plan_files([DESIRED], rejected, environ={}))
        assert not loaded.is_set()
    finally:
        released.set()
    assert loaded.wait(timeout=5)

    # A file whose own errors come within the grace is told instead: they may explain it.
    # (A grace that a slow machine cannot outlast: the wait ends as the file fails.)
    monkeypatch.setattr(reconcile, "LOADING_GRACE_AFTER_LISTING_FAILED", 30.0)
    monkeypatch.setattr(loader, "load", real_load)
    with pytest.raises(LoadError):
        asyncio.run(reconcile.plan_files([INVALID], rejected, environ={}))


def test_a_load_that_fails_after_the_listing_failed_is_dropped_without_a_word(
    fake_clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Left pending, the load's task would end in an error nobody retrieves: asyncio logs
    # "Task exception was never retrieved" on stderr of a command that has its answer.
    import gc

    from reconciler.client import AuthError

    monkeypatch.setattr(reconcile, "LOADING_GRACE_AFTER_LISTING_FAILED", 0.01)
    rejected = _rejected(fake_clock)
    released, failed = _held_load(monkeypatch)
    unhandled: list[dict[str, Any]] = []

    async def plan_then_go_on() -> str:
        asyncio.get_running_loop().set_exception_handler(lambda _, c: unhandled.append(c))
        try:
            await reconcile.plan_files([INVALID], rejected, environ={})
        except AuthError as error:
            told = str(error)
        released.set()
        assert await asyncio.to_thread(failed.wait, 5)
        for _ in range(10):  # the load's outcome reaches the loop
            await asyncio.sleep(0)
        gc.collect()
        return told

    assert "401" in asyncio.run(plan_then_go_on())
    assert unhandled == []


def test_a_listing_of_several_pages_is_planned_as_from_scratch(
    emulator_url: str,
    emulator_store: SourceStore,
    fake_clock: FakeClock,
    tmp_path: Path,
) -> None:
    from reconciler import planner

    blocks = []
    for n in range(250):  # three pages of 100; every tenth source differs from the file
        deployment = {
            "type": "webfolder",
            "imgix_subdomains": [f"live-{n}"],
            "webfolder_base_url": "https://origin.example/",
        }
        emulator_store.create_source({"name": f"Live {n}", "deployment": deployment})
        ttl = 86400 if n % 10 == 0 else 31536000
        blocks.append(
            f"  - name: Live {n}\n    deployment:\n      type: webfolder\n"
            f"      imgix_subdomains: [live-{n}]\n"
            f"      webfolder_base_url: https://origin.example/\n      cache_ttl_value: {ttl}\n"
        )
    file = tmp_path / "sources.yaml"
    file.write_text("version: 1\nsources:\n" + "".join(blocks), encoding="utf-8")

    connection = reconcile.Connection(
        emulator_url, EMULATOR_API_KEY, clock=fake_clock.time, sleep=fake_clock.sleep
    )
    made = asyncio.run(reconcile.plan_files([file], connection, environ={}))
    assert len(made.live) == 250
    assert made.plan.summary.patch == 25 and made.plan.summary.unchanged == 225
    options = planner.PlanOptions(
        fingerprint_key=reconcile.fingerprint_key(connection, {}), api_url=connection.api_url
    )
    from_scratch = planner.plan(made.desired.state, made.live, options)
    assert made.plan.to_json() == from_scratch.to_json()


def test_the_fingerprint_key_derived_from_the_api_key_never_changes() -> None:
    # Markers written by earlier runs hold fingerprints made with it: another derivation
    # would see every secret of every source as changed, and resend them all.
    connection = reconcile.Connection("https://api.imgix.com", KEY)
    assert reconcile.fingerprint_key(connection, {}).hex() == (
        "662757eec0157d5d92e135d96a1f0368ced2e1ffafca858db8584c5152a5b5f4"
    )


def test_a_fingerprint_key_that_is_not_utf8_is_refused_without_echoing_it() -> None:
    # Was an internal error (UnicodeEncodeError) at the first fingerprint.
    connection = reconcile.Connection("https://api.imgix.com", EMULATOR_API_KEY)
    environ = {"IMGIX_RECONCILER_FINGERPRINT_KEY": "canary-key-\udcff-long-enough"}
    with pytest.raises(ConfigurationError) as refused:
        reconcile.fingerprint_key(connection, environ)
    assert str(refused.value) == "IMGIX_RECONCILER_FINGERPRINT_KEY is not readable as UTF-8 text"


def test_a_short_fingerprint_key_is_refused_without_echoing_it(
    emulator_url: str, tmp_path: Path
) -> None:
    # Markers are public to every key of the account: a short key can be guessed, and a
    # value under 8 characters would not be masked in outputs either.
    connection = reconcile.Connection(emulator_url, EMULATOR_API_KEY)
    with pytest.raises(ConfigurationError) as refused:
        reconcile.fingerprint_key(
            connection, {"IMGIX_RECONCILER_FINGERPRINT_KEY": "k3y-15-chars-ok"}
        )
    assert "k3y-15" not in str(refused.value)
    assert "fewer than 16 characters" in str(refused.value)
    assert (
        reconcile.fingerprint_key(
            connection, {"IMGIX_RECONCILER_FINGERPRINT_KEY": "k3y-16-chars-ok!"}
        )
        == b"k3y-16-chars-ok!"
    )
    # Accepted, it is a secret: masked in every output from then on.
    assert "k3y-16" not in redact.scrub("the key k3y-16-chars-ok! leaked")
    sources = tmp_path / "sources.yaml"
    sources.write_text("version: 1\nsources: []\n", encoding="utf-8")
    result = invoke(
        "plan", sources, "--api-url", emulator_url,
        env={"IMGIX_RECONCILER_FINGERPRINT_KEY": "k3y-15-chars-ok"},
    )  # fmt: skip
    assert result.exit_code == 1
    assert "fewer than 16 characters" in result.stderr
    assert "Traceback" not in result.stderr and "k3y-15" not in result.stdout + result.stderr


# --------------------------------------------------------------------------- apply policy

ONE_SITE = """\
version: 1
sources:
  - name: Policy Site
    deployment:
      type: webfolder
      imgix_subdomains: [policy-site]
      webfolder_base_url: https://policy.example/
"""
# The same site on S3, its secret key read from POLICY_S3_SECRET.
ONE_SECRET_SITE = ONE_SITE.replace(
    "      type: webfolder\n",
    "      type: s3\n      s3_access_key: AKIA\n      s3_bucket: b\n"
    "      s3_secret_key: {env: POLICY_S3_SECRET}\n",
).replace("      webfolder_base_url: https://policy.example/\n", "")


def _to_apply(tmp_path: Path, request: ApplyRequest, text: str = ONE_SITE) -> PlanToApply:
    file = tmp_path / "sources.yaml"
    file.write_text(text, encoding="utf-8")
    connection = connect(None, emulator=True, environ=ENVIRON)
    return asyncio.run(plan_to_apply([file], connection, request, environ=ENVIRON))


def test_a_plan_that_is_not_the_reviewed_one_is_stale_before_any_other_check(
    tmp_path: Path,
) -> None:
    request = ApplyRequest(expect_digest="sha256:" + "0" * 64)
    to_apply = _to_apply(tmp_path, request)
    assert to_apply.plan.has_changes and not to_apply.saved
    with pytest.raises(StalePlan, match="not the reviewed sha256:0000") as caught:
        check_apply_policy(to_apply, request)
    assert caught.value.exit_code == 4


def test_the_reviewed_plan_passes_and_an_empty_one_has_nothing_to_do(tmp_path: Path) -> None:
    to_apply = _to_apply(tmp_path, ApplyRequest())
    reviewed = ApplyRequest(expect_digest=to_apply.plan.digest)
    assert check_apply_policy(to_apply, reviewed) is True
    empty = _to_apply(tmp_path, ApplyRequest(), "version: 1\nsources: []\n")
    assert check_apply_policy(empty, ApplyRequest()) is False


def test_a_saved_plan_refuses_options_that_change_what_is_planned(tmp_path: Path) -> None:
    connection = connect(None, emulator=True, environ=ENVIRON)
    made = _to_apply(tmp_path, ApplyRequest())
    saved = tmp_path / "plan.json"
    saved.write_text(authenticate_plan(made.plan, connection, ENVIRON).to_json(), "utf-8")
    request = ApplyRequest(targets=("Policy Site",), adopt=True)
    with pytest.raises(ApplyRefused, match=r"^--target and --adopt change what is planned"):
        asyncio.run(plan_to_apply([saved], connection, request, environ=ENVIRON))
    again = asyncio.run(plan_to_apply([saved], connection, ApplyRequest(), environ=ENVIRON))
    assert again.saved and again.plan.digest == made.plan.digest
    with pytest.raises(ApplyRefused, match=r"^--resend-secrets changes what is planned"):
        request = ApplyRequest(resend_secrets=True)
        asyncio.run(plan_to_apply([saved], connection, request, environ=ENVIRON))


def test_a_plan_document_read_for_showing_is_checked_against_its_digest(tmp_path: Path) -> None:
    # What a pull-request comment shows of `plan --out`: the actions its digest covers.
    made = _to_apply(tmp_path, ApplyRequest()).plan
    document = tmp_path / "plan.json"
    document.write_text(made.to_json(), "utf-8")
    assert read_plan_document(document) == made
    edited = made.model_copy(update={"actions": made.actions[1:]})
    document.write_text(edited.to_json(), "utf-8")
    with pytest.raises(PlanFileError, match="do not match the plan's digest"):
        read_plan_document(document)
    document.write_text("version: 1\nsources: []\n", "utf-8")
    with pytest.raises(PlanFileError, match="not a plan document"):
        read_plan_document(document)


def test_an_authentic_saved_plan_whose_digest_is_not_its_actions_is_refused(
    tmp_path: Path,
) -> None:
    # The reviewer approves a digest (`--expect-digest`): it must be the actions applied.
    connection = connect(None, emulator=True, environ=ENVIRON)
    made = _to_apply(tmp_path, ApplyRequest()).plan
    misdigested = made.model_copy(update={"digest": "sha256:" + "0" * 64})
    saved = tmp_path / "plan.json"
    saved.write_text(authenticate_plan(misdigested, connection, ENVIRON).to_json(), "utf-8")
    with pytest.raises(PlanFileError, match="do not match the plan's digest"):
        asyncio.run(plan_to_apply([saved], connection, ApplyRequest(), environ=ENVIRON))


def test_a_saved_plan_made_against_another_api_is_refused(tmp_path: Path) -> None:
    # Same keys, another API (a staging proxy, say): the MAC passes, the plan is refused.
    connection = connect(None, emulator=True, environ=ENVIRON)
    made = _to_apply(tmp_path, ApplyRequest()).plan
    elsewhere = "https://staging.example/imgix"
    moved = made.model_copy(
        update={"api_url": elsewhere, "digest": compute_digest(made.actions, elsewhere)}
    )
    saved = tmp_path / "plan.json"
    saved.write_text(authenticate_plan(moved, connection, ENVIRON).to_json(), "utf-8")
    with pytest.raises(ApplyRefused, match=r"made against https://staging\.example/imgix, not "):
        asyncio.run(plan_to_apply([saved], connection, ApplyRequest(), environ=ENVIRON))


@pytest.mark.parametrize(
    "spelled",
    # `plan --out --api-url https://proxy/imgix/` then `apply --api-url https://proxy/imgix`;
    # a scheme or host in capitals, or the scheme's own port, names the same API too.
    ["http://emulator/", "HTTP://Emulator", "http://emulator:80"],
)
def test_a_saved_plan_is_applied_against_its_api_however_either_url_spells_it(
    tmp_path: Path, spelled: str
) -> None:
    bare = connect(None, emulator=True, environ=ENVIRON)
    other = dataclasses.replace(bare, api_url=spelled)
    made = _to_apply(tmp_path, ApplyRequest()).plan
    saved = tmp_path / "plan.json"
    for planned, applied in ((other, bare), (bare, other)):
        url = planned.api_url
        document = made.model_copy(
            update={"api_url": url, "digest": compute_digest(made.actions, url)}
        )
        saved.write_text(authenticate_plan(document, planned, ENVIRON).to_json(), "utf-8")
        to_apply = asyncio.run(plan_to_apply([saved], applied, ApplyRequest(), environ=ENVIRON))
        assert to_apply.saved and to_apply.plan.api_url == url


def test_a_saved_plan_under_a_path_prefix_applies_with_or_without_its_trailing_slash(
    tmp_path: Path,
) -> None:
    # `plan --out --api-url https://proxy/imgix/` then `apply --api-url https://proxy/imgix`;
    # another prefix on the same host is another API.
    made = _to_apply(tmp_path, ApplyRequest()).plan
    emulated = connect(None, emulator=True, environ=ENVIRON)
    planned = dataclasses.replace(emulated, api_url="http://emulator/imgix/")
    url = planned.api_url
    document = made.model_copy(update={"api_url": url, "digest": compute_digest(made.actions, url)})
    saved = tmp_path / "plan.json"
    saved.write_text(authenticate_plan(document, planned, ENVIRON).to_json(), "utf-8")
    applied = dataclasses.replace(emulated, api_url="http://emulator/imgix")
    assert asyncio.run(plan_to_apply([saved], applied, ApplyRequest(), environ=ENVIRON)).saved
    elsewhere = dataclasses.replace(emulated, api_url="http://emulator/other")
    with pytest.raises(ApplyRefused, match="made against http://emulator/imgix/, not "):
        asyncio.run(plan_to_apply([saved], elsewhere, ApplyRequest(), environ=ENVIRON))


def test_the_library_takes_the_fingerprint_key_from_the_process_environment_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("IMGIX_RECONCILER_FINGERPRINT_KEY", raising=False)
    connection = connect(None, emulator=True, environ=ENVIRON)
    made = _to_apply(tmp_path, ApplyRequest()).plan
    saved = tmp_path / "plan.json"
    saved.write_text(authenticate_plan(made, connection).to_json(), "utf-8")
    assert reconcile.read_plan_file(saved, connection) == authenticate_plan(made, connection)
    monkeypatch.setenv("IMGIX_RECONCILER_FINGERPRINT_KEY", "library-default-fingerprint-key")
    assert reconcile.fingerprint_key(connection) == b"library-default-fingerprint-key"
    with pytest.raises(PlanFileError, match="MAC does not match"):
        reconcile.read_plan_file(saved, connection)


def test_an_ownership_refusal_names_each_source_another_owner_manages_in_order(
    tmp_path: Path,
) -> None:
    made = _to_apply(tmp_path, ApplyRequest()).made
    assert made is not None
    owned = [
        OwnedElsewhere(source="Zeta", id="e" * 24, owner="acme/other"),
        OwnedElsewhere(source="Alpha", id="f" * 24, owner="acme/other"),
    ]
    claimed = made._replace(plan=made.plan.model_copy(update={"owned_elsewhere": owned}))
    with pytest.raises(ApplyRefused, match=r"another owner manages \(Alpha, Zeta\): they are"):
        reconcile.check_ownership(claimed)


def test_the_apply_policy_refuses_what_the_rails_stop(tmp_path: Path) -> None:
    made = _to_apply(tmp_path, ApplyRequest()).plan
    disabling = [action.model_copy(update={"destructive": True}) for action in made.actions]
    to_apply = PlanToApply(made.model_copy(update={"actions": disabling}))
    with pytest.raises(ApplyRefused, match="--allow-disable"):
        check_apply_policy(to_apply, ApplyRequest())
    allowed = ApplyRequest(permissions=Permissions(allow_disable=True))
    assert check_apply_policy(to_apply, allowed) is True


def test_a_plan_result_has_a_short_repr_whatever_its_size() -> None:
    # asyncio.run (Python 3.11) formats its result's repr when it restores the SIGINT
    # handler: a full repr of 100,000 sources cost seconds and hundreds of MB there.
    from reconciler.live import LiveSource
    from reconciler.planner import PlanOptions, plan
    from reconciler.reconcile import PlanResult, PlanToApply
    from reconciler.specs import DesiredState

    count = 500
    specs = [
        {
            "name": f"Source {n}",
            "deployment": {
                "type": "webfolder",
                "imgix_subdomains": [f"acme-{n}"],
                "webfolder_base_url": f"https://origin.example/{n}/",
            },
        }
        for n in range(count)
    ]
    state = DesiredState.model_validate({"version": 1, "sources": specs})
    live = [
        LiveSource(id=f"{n:024x}", name=f"Source {n}", deployment=dict(specs[n]["deployment"]))
        for n in range(0, count, 2)
    ]
    made = plan(state, live, PlanOptions(fingerprint_key=b"k"))
    result = PlanResult(made, LoadedState(state, []), live)
    assert (
        repr(result)
        == f"PlanResult({count // 2} actions, {count} specs, {count // 2} live sources)"
    )
    assert repr(PlanToApply(made, result)) == f"PlanToApply({count // 2} actions, {result!r})"
    assert repr(PlanToApply(made)) == f"PlanToApply({count // 2} actions, None)"


def test_a_path_that_is_no_plan_is_told_by_its_first_bytes(tmp_path: Path) -> None:
    # `apply /dev/zero` read the whole bound (1 GiB) before handing the path to the loader.
    # A regular file is not read past its first bytes; a device or pipe is read once, up
    # to the loader's bound, and handed over (it cannot be read again).
    from reconciler.loader import MAX_FILE_BYTES

    regular = tmp_path / "sources.yaml"
    regular.write_text("version: 1\nsources: []\n" + "# padding\n" * 100_000)
    tracemalloc.start()
    try:
        assert reconcile.read_single_input(regular) == reconcile.SingleInput()
        _, peak = tracemalloc.get_traced_memory()
        assert peak < 64 * 1024
        tracemalloc.reset_peak()
        device = reconcile.read_single_input(Path("/dev/zero"))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert device.plan is None
    assert device.desired is not None and len(device.desired) == MAX_FILE_BYTES + 1
    assert peak < 3 * MAX_FILE_BYTES
    assert not reconcile.is_plan_file(Path("/dev/zero"))


def test_a_plan_document_of_the_plan_bound_is_a_plan_and_one_byte_more_is_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Past the bound for a desired-state file, which is smaller than a plan's.
    monkeypatch.setattr(loader, "MAX_FILE_BYTES", 1000)
    monkeypatch.setattr(reconcile, "MAX_PLAN_BYTES", 5000)
    opening = b'{"format_version": 1, "padding": "'
    at_the_bound = opening + b"x" * (5000 - len(opening) - 2) + b'"}'
    document = tmp_path / "plan.json"
    document.write_bytes(at_the_bound)
    assert reconcile.read_single_input(document) == reconcile.SingleInput(plan=at_the_bound)
    past_it = at_the_bound[:-2] + b'x"}'
    document.write_bytes(past_it)
    assert reconcile.read_single_input(document) == reconcile.SingleInput(desired=past_it)


def _through_a_fifo(tmp_path: Path, content: bytes) -> Path:
    """A named pipe that gives `content` once, to the first reader."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)

    def write() -> None:
        with open(fifo, "wb") as end:
            end.write(content)

    threading.Thread(target=write, daemon=True).start()
    return fifo


@pytest.mark.parametrize("size", [10, 5000, 200_000])
def test_a_plan_or_a_file_through_a_pipe_is_read_once(tmp_path: Path, size: int) -> None:
    # `apply <(cat plan.json)`: the plan check took the pipe's first 4 KiB, then read the
    # rest as the plan (invalid), then the loader read nothing ("must be a mapping").
    plan = b'{"format_version": 1, "padding": "' + b"x" * size + b'"}'
    assert reconcile.read_single_input(_through_a_fifo(tmp_path, plan)).plan == plan
    (tmp_path / "pipe").unlink()
    desired = b"version: 1\nsources: []\n" + b"# padding\n" * size
    given = reconcile.read_single_input(_through_a_fifo(tmp_path, desired))
    assert given == reconcile.SingleInput(desired=desired)
    (tmp_path / "pipe").unlink()
    # YAML in JSON style is not a plan, and is handed over whole.
    flow = b'{"version": 1, "sources": [], "padding": "' + b"x" * size + b'"}'
    assert reconcile.read_single_input(_through_a_fifo(tmp_path, flow)).desired == flow
    # From a regular file too: read once to tell it from a plan, it is not read again.
    regular = tmp_path / "flow.yaml"
    regular.write_bytes(flow)
    assert reconcile.read_single_input(regular) == reconcile.SingleInput(desired=flow)


# --------------------------------------------------------------------------- reading inputs


def test_a_missing_path_or_a_directory_is_left_to_the_loader_to_explain(tmp_path: Path) -> None:
    assert reconcile.read_single_input(tmp_path / "missing.yaml") == reconcile.SingleInput()
    assert reconcile.read_single_input(tmp_path) == reconcile.SingleInput()  # EISDIR on read


def test_apply_of_a_plan_linked_out_of_the_repository_refuses_it_unread(tmp_path: Path) -> None:
    # A pull request can swap the input for a symlink to whatever the runner may read.
    connection = connect(None, emulator=True, environ=ENVIRON)
    made = _to_apply(tmp_path, ApplyRequest()).plan
    outside = tmp_path / "outside.json"
    outside.write_text(authenticate_plan(made, connection, ENVIRON).to_json(), "utf-8")
    repository = tmp_path / "repository"
    (repository / ".git").mkdir(parents=True)
    linked = repository / "plan.json"
    linked.symlink_to(outside)
    with pytest.raises(LoadError) as refused:
        asyncio.run(plan_to_apply([linked], connection, ApplyRequest(), environ=ENVIRON))
    assert [str(error) for error in refused.value.errors] == [
        f"{linked}:1:1: cannot read the file: it is a symlink that leads outside the "
        f"repository ({repository})"
    ]


def test_a_document_of_the_plan_s_format_that_is_no_plan_is_refused_in_one_line(
    tmp_path: Path,
) -> None:
    # The validation's own lines (each field, a URL to pydantic's site) are no help.
    document = tmp_path / "plan.json"
    document.write_text('{"format_version": 2, "actions": 7}', "utf-8")
    with pytest.raises(PlanFileError) as refused:
        read_plan_document(document)
    assert str(refused.value) == (
        f"{document}: not a plan document written by `plan --out` (3 validation errors for Plan)"
    )


def test_telling_a_plan_from_a_file_leaves_no_descriptor_open(tmp_path: Path) -> None:
    regular = tmp_path / "sources.yaml"
    regular.write_text("version: 1\nsources: []\n")
    plan = tmp_path / "plan.json"
    plan.write_text('{"format_version": 1}')
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(5):
        reconcile.read_single_input(regular)
        reconcile.read_single_input(plan)
        reconcile.read_single_input(tmp_path)
    assert len(os.listdir("/proc/self/fd")) == before


def test_a_plan_with_its_keys_reordered_is_a_plan_and_json_desired_state_is_not(
    tmp_path: Path,
) -> None:
    # `jq -S . plan.json` sorts the keys: still the plan `apply` must check, not a file
    # to plan. A desired-state file written as JSON is still one.
    connection = connect(None, emulator=True, environ=ENVIRON)
    made = _to_apply(tmp_path, ApplyRequest()).plan
    sorted_keys = json.dumps(
        json.loads(authenticate_plan(made, connection, ENVIRON).to_json()), sort_keys=True
    )
    plan = tmp_path / "sorted.json"
    plan.write_text(sorted_keys, "utf-8")
    assert reconcile.is_plan_file(plan)
    to_apply = asyncio.run(plan_to_apply([plan], connection, ApplyRequest(), environ=ENVIRON))
    assert to_apply.saved and to_apply.plan.digest == made.digest
    desired = tmp_path / "sources.json"
    desired.write_text('{"version": 1, "sources": []}', "utf-8")
    assert not reconcile.is_plan_file(desired)


def test_yaml_in_flow_style_that_is_not_json_is_a_desired_state_file(tmp_path: Path) -> None:
    flow = tmp_path / "flow.yaml"
    flow.write_bytes(b"{version: 1, sources: []}\n")
    assert reconcile.read_single_input(flow) == reconcile.SingleInput(
        desired=b"{version: 1, sources: []}\n"
    )
    assert not reconcile.is_plan_file(flow)
    plan = tmp_path / "plan.json"
    plan.write_bytes(b'  {"format_version": 1}')
    assert reconcile.is_plan_file(plan)


def test_a_plan_document_is_read_through_a_symlink_and_its_faults_are_told(
    tmp_path: Path,
) -> None:
    made = _to_apply(tmp_path, ApplyRequest()).plan
    document = tmp_path / "plan.json"
    document.write_text(made.to_json(), "utf-8")
    linked = tmp_path / "latest-plan.json"
    linked.symlink_to(document)
    assert read_plan_document(linked) == made
    with pytest.raises(PlanFileError, match=r"missing\.json: cannot read the plan: No such file"):
        read_plan_document(tmp_path / "missing.json")
    document.write_text('{"format_version": 1', "utf-8")
    with pytest.raises(PlanFileError, match=r"the plan is not valid JSON .*: was it cut short\?"):
        read_plan_document(document)


def test_a_saved_plan_without_a_mac_or_an_api_is_refused_naming_what_it_lacks(
    tmp_path: Path,
) -> None:
    connection = connect(None, emulator=True, environ=ENVIRON)
    made = _to_apply(tmp_path, ApplyRequest()).plan
    saved = tmp_path / "plan.json"
    saved.write_text(made.to_json(), "utf-8")  # `plan --format json`: no MAC
    with pytest.raises(PlanFileError, match=r"plan\.json: the plan carries no MAC"):
        asyncio.run(plan_to_apply([saved], connection, ApplyRequest(), environ=ENVIRON))
    nowhere = made.model_copy(update={"api_url": None, "digest": compute_digest(made.actions)})
    saved.write_text(authenticate_plan(nowhere, connection, ENVIRON).to_json(), "utf-8")
    with pytest.raises(PlanFileError, match=r"plan\.json: the plan records no API"):
        asyncio.run(plan_to_apply([saved], connection, ApplyRequest(), environ=ENVIRON))


def test_a_saved_plan_forged_or_saved_for_another_key_or_account_is_refused(
    tmp_path: Path,
) -> None:
    connection = connect(None, emulator=True, environ=ENVIRON)
    made = _to_apply(tmp_path, ApplyRequest()).plan
    saved = tmp_path / "plan.json"
    # A fingerprint key shared by two accounts: a plan made for one is no plan for the other.
    shared = {**ENVIRON, "IMGIX_RECONCILER_FINGERPRINT_KEY": "a-key-two-accounts-share"}
    other_account = dataclasses.replace(connection, api_key="ak_" + "1" * 64)
    forged = made.model_copy(update={"mac": "hmac-sha256:" + "0" * 64})
    for plan, environ in (
        (authenticate_plan(made, connection, shared), ENVIRON),
        (authenticate_plan(made, other_account, shared), shared),
        (forged, ENVIRON),
    ):
        saved.write_text(plan.to_json(), "utf-8")
        with pytest.raises(PlanFileError, match=r"plan\.json: the plan's MAC does not match"):
            asyncio.run(plan_to_apply([saved], connection, ApplyRequest(), environ=environ))
    saved.write_text(authenticate_plan(made, connection, shared).to_json(), "utf-8")
    again = asyncio.run(plan_to_apply([saved], connection, ApplyRequest(), environ=shared))
    assert again.saved and again.plan.digest == made.digest


def test_apply_plans_from_a_pipe_read_once_and_needs_every_secret(tmp_path: Path) -> None:
    # `apply <(cat sources.yaml)`: the pipe is read once, to tell it from a plan, and that
    # read is what is planned. A write needs every secret, where `plan` shows none missing.
    connection = connect(None, emulator=True, environ=ENVIRON)
    piped = tmp_path / "pipe"
    os.mkfifo(piped)

    def write_once() -> None:
        with open(piped, "w") as end:
            end.write(ONE_SITE)
        piped.unlink()  # the reader holds it open: a second read finds nothing to read

    threading.Thread(target=write_once, daemon=True).start()
    made = asyncio.run(plan_to_apply([piped], connection, ApplyRequest(), environ=ENVIRON))
    assert [action.source for action in made.plan.actions] == ["Policy Site"]
    file = tmp_path / "secret.yaml"
    file.write_text(ONE_SECRET_SITE, encoding="utf-8")
    with pytest.raises(LoadError) as caught:
        asyncio.run(plan_to_apply([file], connection, ApplyRequest(), environ=ENVIRON))
    [error] = caught.value.errors
    assert (error.line, error.message) == (8, "environment variable POLICY_S3_SECRET is not set")
    # The secrets are read from the environment the caller passes, not the process's.
    given = {**ENVIRON, "POLICY_S3_SECRET": "policy-s3-secret"}
    made = asyncio.run(plan_to_apply([file], connection, ApplyRequest(), environ=given))
    assert [action.action for action in made.plan.actions] == ["create"]


def test_a_plan_is_made_without_access_to_the_secrets(tmp_path: Path) -> None:
    # A fork's pull request has none: its plan still shows every other change.
    file = tmp_path / "secret.yaml"
    file.write_text(ONE_SECRET_SITE, encoding="utf-8")
    connection = connect(None, emulator=True, environ=ENVIRON)
    made = asyncio.run(reconcile.plan_files([file], connection, environ=ENVIRON))
    assert [action.action for action in made.plan.actions] == ["create"]


def test_a_secret_applied_is_not_planned_again_unless_asked(
    tmp_path: Path, fake_clock: FakeClock
) -> None:
    # The marker's fingerprint tells the secret is unchanged: by default nothing to send.
    file = tmp_path / "secret.yaml"
    file.write_text(ONE_SECRET_SITE, encoding="utf-8")
    _, connection = _emulated(fake_clock)
    given = {**ENVIRON, "POLICY_S3_SECRET": "policy-s3-secret"}
    made = asyncio.run(reconcile.plan_files([file], connection, environ=given))
    assert asyncio.run(reconcile.apply_with_report(made.plan, connection, environ=given)).ok
    again = asyncio.run(reconcile.plan_files([file], connection, environ=given))
    assert again.plan.actions == []
    resent = asyncio.run(
        reconcile.plan_files([file], connection, resend_secrets=True, environ=given)
    )
    assert [action.action for action in resent.plan.actions] == ["patch"]


def test_a_plan_saved_without_the_secrets_stamps_the_fingerprints_of_those_applied(
    tmp_path: Path, fake_clock: FakeClock
) -> None:
    # A fork's pull request plans without the secrets; the apply reads them. The marker
    # must hold the fingerprints of what was sent, or every later plan sends them again.
    file = tmp_path / "secret.yaml"
    file.write_text(ONE_SECRET_SITE, encoding="utf-8")
    _, connection = _emulated(fake_clock)
    made = asyncio.run(reconcile.plan_files([file], connection, environ=ENVIRON))
    saved = authenticate_plan(made.plan, connection, ENVIRON)
    given = {**ENVIRON, "POLICY_S3_SECRET": "policy-s3-secret"}
    report = asyncio.run(reconcile.apply_with_report(saved, connection, saved=True, environ=given))
    assert report.ok
    again = asyncio.run(reconcile.plan_files([file], connection, environ=given))
    assert again.plan.actions == []


def test_apply_of_a_saved_plan_through_a_pipe_reads_it_once(tmp_path: Path) -> None:
    # `apply <(gh run download ... plan.json)`: a second read would find the pipe empty.
    connection = connect(None, emulator=True, environ=ENVIRON)
    made = _to_apply(tmp_path, ApplyRequest()).plan
    saved = authenticate_plan(made, connection, ENVIRON).to_json()
    piped = tmp_path / "pipe"
    os.mkfifo(piped)

    def write_once() -> None:
        with open(piped, "w") as end:
            end.write(saved)
        piped.unlink()  # the reader holds it open: a second read finds nothing to read

    threading.Thread(target=write_once, daemon=True).start()
    to_apply = asyncio.run(plan_to_apply([piped], connection, ApplyRequest(), environ=ENVIRON))
    assert to_apply.saved and to_apply.plan == authenticate_plan(made, connection, ENVIRON)


def test_the_plan_s_write_cost_counts_on_the_hourly_budgets_of_the_environment(
    tmp_path: Path,
) -> None:
    # The time the plan announces for its writes is the time the apply's pacer will take.
    file = tmp_path / "sources.yaml"
    file.write_text(ONE_SITE, encoding="utf-8")
    environ = {**ENVIRON, CREATES_PER_HOUR_VARIABLE: "5", UPDATES_PER_HOUR_VARIABLE: "7"}
    connection = connect(None, emulator=True, environ=environ)
    made = asyncio.run(reconcile.plan_files([file], connection, environ=environ))
    cost = made.plan.cost
    assert (cost.creates, cost.creates_per_hour, cost.updates_per_hour) == (1, 5, 7)


def test_apply_plans_only_the_sources_its_targets_name(tmp_path: Path) -> None:
    two_sites = ONE_SITE + ONE_SITE.split("sources:\n", 1)[1].replace("olicy", "eer")
    to_apply = _to_apply(tmp_path, ApplyRequest(targets=("Peer Site",)), two_sites)
    assert [action.source for action in to_apply.plan.actions] == ["Peer Site"]


# --------------------------------------------------------------------------- apply and report


def _emulated(
    clock: FakeClock, pacing: Pacing | None = None
) -> tuple[SourceStore, reconcile.Connection]:
    from reconciler.emulator import RateLimits, create_app

    store = SourceStore(clock=clock, limits=RateLimits(per_second=None), deploy_delay=30.0)
    transport = httpx.ASGITransport(app=create_app(store))
    connection = reconcile.Connection(
        "http://emulator.test",
        EMULATOR_API_KEY,
        transport,
        pacing=pacing or Pacing(),
        clock=clock,
        sleep=clock.sleep,
    )
    return store, connection


def _made(
    tmp_path: Path, connection: reconcile.Connection, text: str = ONE_SITE
) -> reconcile.PlanResult:
    file = tmp_path / "sources.yaml"
    file.write_text(text, encoding="utf-8")
    return asyncio.run(reconcile.plan_files([file], connection, environ=ENVIRON))


def test_apply_with_report_tells_each_outcome_and_with_wait_each_status_until_deployed(
    tmp_path: Path, fake_clock: FakeClock
) -> None:
    store, connection = _emulated(fake_clock)
    made = _made(tmp_path, connection)
    results: list[Any] = []
    statuses: list[str] = []

    report = asyncio.run(
        reconcile.apply_with_report(
            made.plan,
            connection,
            wait=True,
            environ=ENVIRON,
            on_result=results.append,
            on_status=lambda live: statuses.append(live.deployment_status or ""),
        )
    )

    assert [(r.source, r.outcome) for r in results] == [("Policy Site", "applied")]
    assert report.results == results and report.ok and report.stopped is None
    assert statuses[0] == "deploying" and statuses[-1] == "deployed"
    assert fake_clock.elapsed >= 30.0
    assert [source.name for source in store.sources.values()] == ["Policy Site"]


def test_a_stopped_apply_writes_nothing_waits_for_nothing_and_leaves_the_pacer_as_it_was(
    tmp_path: Path, fake_clock: FakeClock
) -> None:
    store, connection = _emulated(fake_clock)
    made = _made(tmp_path, connection)
    stop = Stop()
    stop.request("stopped by SIGTERM")

    report = asyncio.run(
        reconcile.apply_with_report(made.plan, connection, wait=True, environ=ENVIRON, stop=stop)
    )

    assert [r.outcome for r in report.results] == ["stopped"]
    assert report.stopped == "stopped by SIGTERM" and not store.sources
    # The connection's next use (another command of the process) is not stopped.
    assert connection.pacer.stop is not stop and connection.pacer.stop.reason is None
    assert connection.pacer.on_budget_wait is None
    again = asyncio.run(reconcile.apply_with_report(made.plan, connection, environ=ENVIRON))
    assert [r.outcome for r in again.results] == ["applied"]


def test_a_saved_plan_without_its_mac_is_refused_before_any_write(
    tmp_path: Path, fake_clock: FakeClock
) -> None:
    store, connection = _emulated(fake_clock)
    made = _made(tmp_path, connection)
    with pytest.raises(PlanFileError, match="carries no MAC"):
        asyncio.run(reconcile.apply_with_report(made.plan, connection, saved=True))
    assert not store.sources
    signed = authenticate_plan(made.plan, connection, ENVIRON)
    report = asyncio.run(
        reconcile.apply_with_report(signed, connection, saved=True, environ=ENVIRON)
    )
    assert report.ok and len(store.sources) == 1
    assert fake_clock.elapsed < 30.0  # not waited for its deploy unless asked


def test_a_saved_plan_whose_source_changed_since_is_stale_and_writes_nothing(
    tmp_path: Path, fake_clock: FakeClock
) -> None:
    # Reviewed against the live source as it was: applied now, it would overwrite the
    # change made since with what the review never saw.
    store, connection = _emulated(fake_clock)
    asyncio.run(reconcile.apply_with_report(_made(tmp_path, connection).plan, connection))

    def planned(base_url: str) -> Plan:
        file = tmp_path / "sources.yaml"
        file.write_text(ONE_SITE.replace("https://policy.example/", base_url), "utf-8")
        return asyncio.run(reconcile.plan_files([file], connection, environ=ENVIRON)).plan

    reviewed = authenticate_plan(planned("https://policy.example/v2/"), connection, ENVIRON)
    asyncio.run(reconcile.apply_with_report(planned("https://elsewhere.example/"), connection))
    with pytest.raises(StalePlan, match="the saved plan is stale, nothing was written"):
        asyncio.run(reconcile.apply_with_report(reviewed, connection, saved=True, environ=ENVIRON))
    [source] = store.sources.values()
    assert source.deployment["webfolder_base_url"] == "https://elsewhere.example/"


def test_a_patch_starting_long_after_the_plan_s_listing_spares_a_dashboard_edit(
    tmp_path: Path, fake_clock: FakeClock
) -> None:
    # The reviewer took five minutes to confirm; meanwhile the source was edited in the
    # dashboard. The API has no conditional update: only a read before the write spares it.
    from reconciler.applier import Listing

    store, connection = _emulated(fake_clock)
    asyncio.run(reconcile.apply_with_report(_made(tmp_path, connection).plan, connection))
    file = tmp_path / "sources.yaml"
    file.write_text(ONE_SITE.replace("policy.example/", "policy.example/v2/"), "utf-8")
    listed_at = fake_clock.now
    made = asyncio.run(reconcile.plan_files([file], connection, environ=ENVIRON))
    fake_clock.advance(300.0)
    [source] = store.sources.values()
    source.deployment["webfolder_base_url"] = "https://dashboard.example/"

    report = asyncio.run(
        reconcile.apply_with_report(
            made.plan, connection, environ=ENVIRON, listing=Listing(made.live, listed_at)
        )
    )

    assert [r.outcome for r in report.results] == ["stale"]
    assert source.deployment["webfolder_base_url"] == "https://dashboard.example/"


def test_a_plan_leaves_a_source_another_owner_manages_unless_asked_to_take_it_over(
    tmp_path: Path, fake_clock: FakeClock
) -> None:
    _, connection = _emulated(fake_clock)
    file = tmp_path / "sources.yaml"
    file.write_text("owner: acme/team-a\n" + ONE_SITE, "utf-8")
    theirs = asyncio.run(reconcile.plan_files([file], connection, environ=ENVIRON))
    assert asyncio.run(reconcile.apply_with_report(theirs.plan, connection)).ok
    file.write_text("owner: acme/team-b\n" + ONE_SITE.replace("policy.example", "b.example"))

    ours = asyncio.run(reconcile.plan_files([file], connection, environ=ENVIRON)).plan
    assert ours.actions == [] and [o.source for o in ours.owned_elsewhere] == ["Policy Site"]
    taken = asyncio.run(
        reconcile.plan_files([file], connection, take_over=True, environ=ENVIRON)
    ).plan
    assert [action.action for action in taken.actions] == ["patch"]


def _disabling(tmp_path: Path, connection: reconcile.Connection) -> reconcile.PlanResult:
    """The site applied, then a plan of its file disabling it."""
    asyncio.run(reconcile.apply_with_report(_made(tmp_path, connection).plan, connection))
    file = tmp_path / "sources.yaml"
    file.write_text(ONE_SITE + "    enabled: false\n", encoding="utf-8")
    return asyncio.run(reconcile.plan_files([file], connection, environ=ENVIRON))


def test_a_refusal_of_a_plan_made_from_files_is_located_at_the_source_it_concerns(
    tmp_path: Path, fake_clock: FakeClock
) -> None:
    _, connection = _emulated(fake_clock)
    made = _disabling(tmp_path, connection)
    to_apply = PlanToApply(made.plan, made)

    with pytest.raises(ApplyRefused, match="--allow-disable") as caught:
        check_apply_policy(to_apply, ApplyRequest())

    [located] = caught.value.located
    assert (located.file, located.line) == (str(tmp_path / "sources.yaml"), 3)
    assert (
        located.message == 'source "Policy Site": the plan disables it; apply needs --allow-disable'
    )
    allowed = ApplyRequest(permissions=Permissions(allow_disable=True))
    assert check_apply_policy(to_apply, allowed) is True


def test_apply_progress_hears_each_action_and_status_and_falls_silent_after_the_report(
    tmp_path: Path, fake_clock: FakeClock
) -> None:
    from reconciler.progress import ApplyProgress

    _, connection = _emulated(fake_clock)
    made = _made(tmp_path, connection)
    stream = io.StringIO()
    progress = ApplyProgress(1, clock=fake_clock.time, stream=stream, heartbeat=10.0)

    async def apply_then_idle() -> str:
        await reconcile.apply_with_report(
            made.plan, connection, wait=True, environ=ENVIRON, progress=progress
        )
        told = stream.getvalue()
        await fake_clock.sleep(100.0)  # the rest of the command: no heartbeat any more
        return told

    told = asyncio.run(apply_then_idle())

    lines = told.splitlines()
    assert lines[0].startswith("[1/1] applied: create Policy Site (")
    assert "  Policy Site: deploying" in lines and lines[-1] == "  Policy Site: deployed"
    assert "still working: 1 of 1 done (10 s elapsed)" in lines
    assert stream.getvalue() == told
    assert connection.pacer.on_budget_wait is None


def test_a_signal_during_wait_ends_it_and_the_report_lists_what_still_deploys(
    tmp_path: Path, fake_clock: FakeClock
) -> None:
    _, connection = _emulated(fake_clock)
    made = _made(tmp_path, connection)
    stop = Stop()

    report = asyncio.run(
        reconcile.apply_with_report(
            made.plan,
            connection,
            wait=True,
            environ=ENVIRON,
            stop=stop,
            on_status=lambda live: stop.request("stopped by SIGINT"),
        )
    )

    assert report.still_deploying == [report.results[0].source_id]
    assert report.stopped == "stopped by SIGINT" and not report.ok


def test_a_wait_whose_poll_fails_is_given_up_and_progress_says_why(
    tmp_path: Path, fake_clock: FakeClock
) -> None:
    from reconciler.progress import ApplyProgress

    store, connection = _emulated(fake_clock)
    made = _made(tmp_path, connection)
    stream = io.StringIO()
    progress = ApplyProgress(1, clock=fake_clock.time, stream=stream, heartbeat=None)

    report = asyncio.run(
        reconcile.apply_with_report(
            made.plan,
            connection,
            wait=True,
            environ=ENVIRON,
            progress=progress,
            on_status=lambda live: store.sources.clear(),  # removed from the dashboard
        )
    )

    assert report.still_deploying == [report.results[0].source_id]
    assert "--wait gave up: imgix API 404" in stream.getvalue()


def test_a_wait_whose_poll_fails_without_progress_still_reports(
    tmp_path: Path, fake_clock: FakeClock
) -> None:
    store, connection = _emulated(fake_clock)
    made = _made(tmp_path, connection)

    report = asyncio.run(
        reconcile.apply_with_report(
            made.plan,
            connection,
            wait=True,
            environ=ENVIRON,
            on_status=lambda live: store.sources.clear(),
        )
    )

    assert report.still_deploying == [report.results[0].source_id]


TWO_SITES = ONE_SITE + ONE_SITE.split("sources:\n", 1)[1].replace("olicy", "ace").replace(
    "policy", "pace"
)


def test_apply_progress_says_when_a_write_waits_for_the_hourly_budget(
    tmp_path: Path, fake_clock: FakeClock
) -> None:
    # The line CI logs show while apply sits silent for up to an hour.
    from reconciler.progress import ApplyProgress

    store, connection = _emulated(fake_clock, Pacing(creates_per_hour=1))
    made = _made(tmp_path, connection, TWO_SITES)
    stream = io.StringIO()
    progress = ApplyProgress(2, clock=fake_clock.time, stream=stream, heartbeat=None)

    report = asyncio.run(
        reconcile.apply_with_report(made.plan, connection, environ=ENVIRON, progress=progress)
    )

    assert report.ok and len(store.sources) == 2
    waits = [line for line in stream.getvalue().splitlines() if line.startswith("waiting ")]
    assert waits == [
        "waiting 1 h 00 min for the hourly create budget (1/h), 1 of 2 done, about 1 h 00 min left"
    ]
    assert connection.pacer.on_budget_wait is None


def test_a_write_whose_budget_wait_would_pass_the_stop_deadline_is_not_started(
    tmp_path: Path, fake_clock: FakeClock
) -> None:
    # `apply --max-duration 10m` with the hourly create budget spent: the second create
    # would wait an hour, past the deadline, and is stopped at once, not after the hour.
    store, connection = _emulated(fake_clock, Pacing(creates_per_hour=1))
    made = _made(tmp_path, connection, TWO_SITES)
    stop = Stop(deadline=fake_clock.now + 600, clock=fake_clock)

    report = asyncio.run(
        reconcile.apply_with_report(made.plan, connection, environ=ENVIRON, stop=stop)
    )

    assert sorted(r.outcome for r in report.results) == ["applied", "stopped"]
    assert len(store.sources) == 1 and fake_clock.elapsed < 600


@pytest.mark.parametrize(
    "allowed",
    [{"allow_disable": True}, {"permissions": Permissions(allow_disable=True)}],
    ids=["allow_disable", "permissions"],
)
def test_apply_with_report_disables_a_source_only_when_allowed(
    tmp_path: Path, fake_clock: FakeClock, allowed: dict[str, Any]
) -> None:
    # The library's default is the CLI's: no --allow-disable, no disabling write.
    store, connection = _emulated(fake_clock)
    made = _disabling(tmp_path, connection)

    with pytest.raises(ApplyRefused, match="--allow-disable"):
        asyncio.run(reconcile.apply_with_report(made.plan, connection, environ=ENVIRON))
    [source] = store.sources.values()
    assert source.enabled

    report = asyncio.run(
        reconcile.apply_with_report(made.plan, connection, environ=ENVIRON, **allowed)
    )
    assert report.ok and not source.enabled


# --------------------------------------------------------------------------- drift


def _drifted(**parts: Any) -> Plan:
    return Plan(digest="d", summary=Summary(create=0, patch=0, unchanged=0, unmanaged=0), **parts)


def test_drift_names_each_difference_and_only_the_notices_that_are_drift() -> None:
    changed = [Change(path="enabled", before=True, after=False)]
    plan = _drifted(
        actions=[
            Action(action="create", source="New", id=None, changes=changed, writes=[]),
            Action(action="patch", source="Old", id="s1", changes=changed, writes=[]),
        ],
        observed=[ObservedSource(action="patch", source="Watched", id="s2", changes=changed)],
        notices=[
            Notice(source="Web", id="s3", kind="encrypted_changed", detail="password changed"),
            Notice(source="Key", id="s4", kind="cannot_compare", detail="secret not read"),
            Notice(source="Ren", id="s5", kind="possible_rename", detail="maybe renamed"),
        ],
    )
    assert reconcile.drift_findings(plan) == [
        "create New",
        "patch Old",
        "Watched differs (mode: observe, never written)",
        "Web: password changed",
    ]
    assert reconcile.drift_findings(_drifted(actions=[])) == []


def test_sources_not_adopted_are_drift_unless_allowed_or_adopted_by_the_plan() -> None:
    def adoption(planned: bool) -> Adoption:
        sources = [SourceRef(id="s1", name="One"), SourceRef(id="s2", name="Two")]
        return Adoption(
            count=2, sources=sources, planned=planned, updates=2, updates_per_hour=60, hours=1,
            detail="",
        )  # fmt: skip

    unadopted = _drifted(actions=[], adoption=adoption(planned=False))
    assert reconcile.drift_findings(unadopted) == [
        f"One (s1): {reconcile.UNADOPTED}",
        f"Two (s2): {reconcile.UNADOPTED}",
    ]
    assert reconcile.drift_findings(unadopted, allow_unadopted=True) == []
    assert reconcile.drift_findings(_drifted(actions=[], adoption=adoption(planned=True))) == []


def test_the_drift_verdict_names_twenty_findings_and_counts_the_rest() -> None:
    findings = [f"patch S{n}" for n in range(1, 23)]
    assert reconcile.drift_summary(findings[:1]) == "Drift: patch S1."
    twenty = reconcile.drift_summary(findings[:20])
    assert twenty == "Drift: " + "; ".join(findings[:20]) + "."
    assert reconcile.drift_summary(findings[:21]) == twenty[:-1] + "; and 1 more."
    assert reconcile.drift_summary(findings).endswith("; patch S20; and 2 more.")


def test_refusals_are_located_in_file_order_beside_a_source_still_to_create(
    tmp_path: Path, fake_clock: FakeClock
) -> None:
    _, connection = _emulated(fake_clock)
    zed = ONE_SITE.replace("Policy Site", "Zed").replace("policy-site", "zed")
    abe = ONE_SITE.split("sources:\n", 1)[1].replace("Policy Site", "Abe")
    file = tmp_path / "sources.yaml"
    file.write_text(zed + abe.replace("policy-site", "abe"), encoding="utf-8")
    made = asyncio.run(reconcile.plan_files([file], connection, environ=ENVIRON))
    asyncio.run(reconcile.apply_with_report(made.plan, connection, environ=ENVIRON))
    new = abe.replace("Abe", "New").replace("policy-site", "new")
    disabled = (
        zed + "    enabled: false\n",
        abe.replace("policy-site", "abe") + "    enabled: false\n",
    )
    file.write_text("".join(disabled) + new, encoding="utf-8")
    made = asyncio.run(reconcile.plan_files([file], connection, environ=ENVIRON))
    assert sorted(a.action for a in made.plan.actions) == ["create", "patch", "patch"]

    with pytest.raises(ApplyRefused) as caught:
        check_apply_policy(PlanToApply(made.plan, made), ApplyRequest())

    assert [(e.line, e.message) for e in caught.value.located] == [
        (3, 'source "Zed": the plan disables it; apply needs --allow-disable'),
        (9, 'source "Abe": the plan disables it; apply needs --allow-disable'),
    ]


def test_a_plan_error_about_sources_of_the_files_is_located_at_them(
    tmp_path: Path, fake_clock: FakeClock
) -> None:
    _, connection = _emulated(fake_clock)
    file = tmp_path / "sources.yaml"
    file.write_text(ONE_SITE + f"    id: {'a1' * 12}\n", encoding="utf-8")
    with pytest.raises(LoadError) as caught:
        asyncio.run(reconcile.plan_files([file], connection, environ=ENVIRON))
    [error] = caught.value.errors
    assert (error.file, error.line) == (str(file), 3)
    assert error.message.startswith(f'source "Policy Site": no live source has id {"a1" * 12}')
    # One about no source in particular is told as it is.
    file.write_text(ONE_SITE, encoding="utf-8")
    with pytest.raises(PlanError, match='--target names no source of the file: "Nope"'):
        asyncio.run(reconcile.plan_files([file], connection, targets=["Nope"], environ=ENVIRON))


def test_a_file_that_fails_to_load_leaves_no_listing_running(tmp_path: Path) -> None:
    answered = asyncio.Event()  # never set: the first page never comes

    async def never_answer(request: httpx.Request) -> httpx.Response:
        await answered.wait()
        raise AssertionError("unreachable")

    connection = reconcile.Connection(
        "http://emulator.test", EMULATOR_API_KEY, httpx.MockTransport(never_answer)
    )

    async def plan_invalid() -> set[asyncio.Task[Any]]:
        with pytest.raises(LoadError):
            await reconcile.plan_files([INVALID], connection, environ={})
        return asyncio.all_tasks() - {asyncio.current_task()}

    assert asyncio.run(plan_invalid()) == set()
