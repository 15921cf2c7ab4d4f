"""The API client against the emulator: in-process (ASGI) and over real HTTP.

Time is a `FakeClock` shared by the emulator (its rate limiter and deploy delay) and the
client (its pacer and backoff), so nothing sleeps for real and both sides agree on time.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import logging
import math
import random
import re
import socket
import ssl
import tracemalloc
import zlib
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime, timezone
from typing import Any, TypeVar
from urllib.parse import parse_qs

import httpx
import pytest
from conftest import FakeClock
from hostile_server import HostileApi, _source, serving
from hypothesis import example, given, settings
from hypothesis import strategies as st

from reconciler import redact
from reconciler.client import (
    BUDGET_WAITS,
    CERTIFICATE_REFUSED_HINT,
    LIST_CONCURRENCY,
    MAX_SHOWN_DETAIL,
    ApiError,
    AuthError,
    ClientError,
    DeadlineExceeded,
    ImgixClient,
    LimitExceeded,
    Pacing,
    RetryPolicy,
    TransportError,
)
from reconciler.emulator import (
    EMULATOR_API_KEY,
    Faults,
    RateLimits,
    SourceStore,
    create_app,
    running_emulator,
)
from reconciler.live import LiveSource
from reconciler.pacing import NotStarted, Stop, continuing_action

T = TypeVar("T")

NO_PACING = Pacing(per_second=None, creates_per_hour=None, updates_per_hour=None)
NO_LIMITS = RateLimits(per_second=None, creates_per_hour=None, updates_per_hour=None)
SECRET = "s3cr3t-Value-that-must-not-leak"
OTHER_KEY = "ak_" + "f" * 64


def s3_attributes(n: int, *, secret: str = SECRET) -> dict[str, Any]:
    return {
        "name": f"Source {n}",
        "deployment": {
            "type": "s3",
            "imgix_subdomains": [f"acme-{n}"],
            "s3_access_key": "AKIAEXAMPLE",
            "s3_bucket": f"bucket-{n}",
            "s3_secret_key": secret,
        },
    }


def make_store(clock: FakeClock, **options: Any) -> SourceStore:
    options.setdefault("limits", NO_LIMITS)
    options.setdefault("rng", random.Random(1234))
    return SourceStore(clock=clock, **options)


def seed(store: SourceStore, count: int) -> list[str]:
    """Add `count` sources straight into the store; their ids in listing order."""
    store.load_json({"version": 1, "sources": [s3_attributes(n) for n in range(count)]})
    return list(store.sources)


def make_client(
    clock: FakeClock,
    store: SourceStore | None = None,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    base_url: str = "http://emulator.test",
    pacing: Pacing = NO_PACING,
    retry: RetryPolicy | None = None,
    api_key: str = EMULATOR_API_KEY,
    on_notice: Callable[[str], None] | None = None,
    **bounds: int,
) -> ImgixClient:
    if transport is None and store is not None:
        transport = httpx.ASGITransport(app=create_app(store))
    told = {} if on_notice is None else {"on_notice": on_notice}
    return ImgixClient(
        api_key=api_key,
        base_url=base_url,
        transport=transport,
        pacing=pacing,
        retry=retry or RetryPolicy(jitter=random.Random(99)),
        sleep=clock.sleep,
        clock=clock.time,
        **told,
        **bounds,
    )


def run(client: ImgixClient, call: Callable[[ImgixClient], Awaitable[T]]) -> T:
    async def main() -> T:
        async with client:
            return await call(client)

    return asyncio.run(main())


@contextlib.contextmanager
def served(store: SourceStore, how: str) -> Iterator[tuple[str, httpx.AsyncBaseTransport | None]]:
    """The emulator in-process or on a real socket: (base URL, transport)."""
    if how == "asgi":
        yield "http://emulator.test", httpx.ASGITransport(app=create_app(store))
    else:
        with running_emulator(store) as url:
            yield url, None


def requests_of(store: SourceStore, method: str) -> list[Any]:
    return [entry for entry in store.request_log if entry.method == method]


def query_of(entry: Any) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(entry.query).items()}


# --------------------------------------------------------------------------- basics


@pytest.mark.parametrize("how", ["asgi", "http"])
def test_create_get_update_list_round_trip(fake_clock: FakeClock, how: str) -> None:
    store = make_store(fake_clock)
    with served(store, how) as (url, transport):
        client = make_client(fake_clock, transport=transport, base_url=url)

        async def scenario(client: ImgixClient) -> tuple[LiveSource, ...]:
            created = await client.create_source(s3_attributes(1))
            fetched = await client.get_source(created.id)
            updated = await client.update_source(created.id, {"enabled": False})
            listed = await client.list_sources()
            return created, fetched, updated, *listed

        created, fetched, updated, *listed = run(client, scenario)

    assert created.name == "Source 1" and created.type == "s3"
    assert created.hostnames == {"acme-1"}
    assert "s3_secret_key" not in created.deployment
    assert fetched == created
    assert updated.enabled is False and updated.deployment_status == "disabled"
    assert listed == [updated]
    # The secret went out in the create body, and the API key in a header the store checked.
    assert (
        requests_of(store, "POST")[0].body["data"]["attributes"]["deployment"]["s3_secret_key"]
        == SECRET
    )
    assert requests_of(store, "PATCH")[0].body == {
        "data": {"id": created.id, "type": "sources", "attributes": {"enabled": False}}
    }


def _with_unknown_keys(document: dict[str, Any]) -> dict[str, Any]:
    """`document` with a key nobody knows added at every level the API may grow."""
    grown = {**document, "links": {"self": "/x"}, "future": [1]}
    grown["meta"] = {**document.get("meta", {}), "future": {"x": 1}}
    if "pagination" in grown["meta"]:
        grown["meta"]["pagination"] = {**grown["meta"]["pagination"], "cursor": "abc"}
    data = document["data"]
    resources = data if isinstance(data, list) else [data]
    for resource in resources:
        resource["relationships"] = {"account": {"data": None}}
        resource["attributes"]["future_attribute"] = {"nested": True}
        resource["attributes"]["deployment"]["future_setting"] = "on"
    return grown


def test_unknown_keys_at_every_level_are_ignored(fake_clock: FakeClock) -> None:
    # api-notes.md "Transport": the API adds fields over time; clients ignore them.
    store = make_store(fake_clock, max_page_size=2)
    inner = httpx.ASGITransport(app=create_app(store))

    class Growing(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            response = await inner.handle_async_request(request)
            await response.aread()
            if not response.is_success:
                return response
            grown = _with_unknown_keys(response.json())
            return httpx.Response(response.status_code, json=grown)

    async def scenario(client: ImgixClient) -> tuple[LiveSource, ...]:
        created = [await client.create_source(s3_attributes(n)) for n in range(3)]
        updated = await client.update_source(created[0].id, {"name": "Renamed"})
        fetched = await client.get_source(created[0].id)
        return updated, fetched, *await client.list_sources()

    updated, fetched, *listed = run(make_client(fake_clock, transport=Growing()), scenario)

    assert updated == fetched and fetched.name == "Renamed"
    assert [source.name for source in listed] == ["Renamed", "Source 1", "Source 2"]
    assert listed[0].deployment["future_setting"] == "on"  # kept, never compared
    assert len(requests_of(store, "GET")) == 1 + 2  # the get, then both pages


@pytest.mark.parametrize("suffix", ["", "/"])
def test_base_url_is_the_root_with_or_without_trailing_slash(
    fake_clock: FakeClock, suffix: str
) -> None:
    store = make_store(fake_clock)
    seed(store, 3)
    client = make_client(fake_clock, store, base_url="http://emulator.test" + suffix)

    assert len(run(client, lambda c: c.list_sources())) == 3
    assert {entry.path for entry in store.request_log} == {"/api/v1/sources"}


def test_sends_json_api_headers_and_bearer_key(fake_clock: FakeClock) -> None:
    store = make_store(fake_clock)
    seen: list[httpx.Request] = []
    inner = httpx.ASGITransport(app=create_app(store))

    class Spy(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            seen.append(request)
            return await inner.handle_async_request(request)

    run(make_client(fake_clock, transport=Spy()), lambda c: c.create_source(s3_attributes(1)))

    headers = seen[0].headers
    assert headers["authorization"] == f"Bearer {EMULATOR_API_KEY}"
    assert headers["accept"] == "application/vnd.api+json"
    assert headers["content-type"] == "application/vnd.api+json"
    assert headers["accept-encoding"] == "gzip, deflate"  # only what it decodes itself
    assert headers["user-agent"] == "imgix-reconciler"  # who calls, in the API's logs


def test_repr_shows_where_the_client_talks_to_and_not_its_key(fake_clock: FakeClock) -> None:
    client = make_client(fake_clock, make_store(fake_clock))

    assert repr(client) == "ImgixClient(base_url='http://emulator.test/api/v1/')"
    asyncio.run(client.aclose())


@pytest.mark.parametrize(("status", "title"), [(418, "I'm a Teapot"), (499, "Error")])
def test_an_error_without_a_title_is_named_by_its_status(
    fake_clock: FakeClock, status: int, title: str
) -> None:
    # HTTP's own phrase when the status has one; a status HTTP does not name still reads
    # as an error, not as an empty title.
    transport = httpx.MockTransport(lambda request: httpx.Response(status, text="nope"))

    with pytest.raises(ApiError) as caught:
        run(make_client(fake_clock, transport=transport), lambda c: c.list_sources())

    assert str(caught.value) == f"imgix API {status} {title}"


def test_the_api_key_is_masked_in_what_a_server_echoes_of_it(fake_clock: FakeClock) -> None:
    # A key of this test's own, so no other test has registered it for masking already.
    key = "ak_" + "0123456789abcdef" * 4 + "echoed"

    def echo(request: httpx.Request) -> httpx.Response:
        said = f"bad header {request.headers['authorization']}"
        return httpx.Response(400, json={"errors": [{"title": "Bad Request", "detail": said}]})

    client = make_client(fake_clock, transport=httpx.MockTransport(echo), api_key=key)

    with pytest.raises(ApiError) as caught:
        run(client, lambda c: c.get_source(SOURCE_0))

    assert str(caught.value) == (
        f"imgix API 400 Bad Request for source {SOURCE_0}: bad header Bearer {redact.MASK}"
    )


# --------------------------------------------------------------------------- errors


def test_unknown_source_is_an_api_error_with_the_request_id(fake_clock: FakeClock) -> None:
    store = make_store(fake_clock)
    missing = "0" * 24

    with pytest.raises(ApiError) as caught:
        run(make_client(fake_clock, store), lambda c: c.get_source(missing))

    error = caught.value
    assert not isinstance(error, AuthError)
    assert (error.status, error.title, error.source_id) == (404, "Not Found", missing)
    assert error.detail == f"No source with id {missing}."
    assert error.request_id and len(error.request_id) == 32
    assert str(error) == (
        f"imgix API 404 Not Found for source {missing}: No source with id {missing}. "
        f"(request id {error.request_id})"
    )
    assert len(store.request_log) == 1  # a 404 is not retried
    assert repr(error) == (
        f"ApiError(status=404, title='Not Found', detail='No source with id {missing}.', "
        f"request_id='{error.request_id}', source_id='{missing}')"
    )


def test_validation_error_is_not_retried_and_never_echoes_secrets(
    fake_clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    store = make_store(fake_clock)
    bad = s3_attributes(1)
    bad["deployment"]["cache_ttl_value"] = 60

    with (
        caplog.at_level(logging.DEBUG, logger="reconciler.client"),
        pytest.raises(ApiError) as caught,
    ):
        run(make_client(fake_clock, store), lambda c: c.create_source(bad))

    assert caught.value.status == 400
    assert str(caught.value).startswith("imgix API 400 Bad Request: ")
    assert len(store.request_log) == 1
    for text in (str(caught.value), repr(caught.value), caplog.text):
        assert SECRET not in text
        assert EMULATOR_API_KEY not in text
    assert "POST sources: 400 (attempt 1)" in caplog.text


def test_debug_logs_say_each_attempt_each_retry_and_the_lost_create_found(
    fake_clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    # What `--debug` shows of a create whose answer was lost: the attempt and why it
    # failed, the wait before the next, the lookup's request and what it found.
    attempts: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        attempts.append(request.method)
        if request.method == "POST":
            raise httpx.ReadError("connection reset", request=request)
        mine = {**_source(0), "attributes": s3_attributes(1)}
        return httpx.Response(200, json={"data": [mine], "meta": {"pagination": {"totalPages": 1}}})

    client = make_client(fake_clock, transport=httpx.MockTransport(answer))
    with caplog.at_level(logging.DEBUG, logger="reconciler.client"):
        created = run(client, lambda c: c.create_source(s3_attributes(1)))

    assert created.id == SOURCE_0
    assert attempts == ["POST", "GET"]
    assert [record.name for record in caplog.records] == ["reconciler.client"] * 4
    posted, retrying, listed, found = caplog.messages
    assert posted == "POST sources: ReadError (attempt 1)"
    assert re.fullmatch(r"POST sources: retrying in \d\.\d\ds \(attempt 1 of 8\)", retrying)
    assert listed == "GET sources: 200 (attempt 1)"
    assert found == f"found the source a lost create made: {SOURCE_0}"


def test_debug_logs_say_why_a_listing_stopped_at_a_page_of_repeats(
    fake_clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    # Without meta, a full page 1 that only repeats page 0 ends that read (it is then
    # read again, having moved); `--debug` says where and why it stopped.
    def page(read: int, number: int) -> dict[str, Any]:
        listed = [0, 1] if number == 0 or read == 0 else []
        return {"data": [_source(n) for n in listed]}

    transport, asked = _scripted_listing(page)

    with caplog.at_level(logging.DEBUG, logger="reconciler.client"):
        listed = run(make_client(fake_clock, transport=transport), lambda c: c.list_sources())

    assert [source.id for source in listed] == hostile_ids(range(2))
    assert asked == [0, 1, 0, 1]
    assert "page 1 held only sources already seen: stopping" in caplog.messages


@pytest.mark.parametrize("status", [400, 405, 409, 422])
@pytest.mark.parametrize("id_in", ["body", "header"])
def test_a_refusal_is_not_retried_and_names_its_request_id(
    fake_clock: FakeClock, status: int, id_in: str
) -> None:
    # api-notes.md "Transport": errors are JSON:API bodies whose `id` support asks for;
    # 409 and 422 are not documented, but a refusal of any 4xx is final.
    sent: list[httpx.Request] = []

    def refuse(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        error = {"status": str(status), "title": "Refused", "detail": "hostname taken"}
        if id_in == "body":
            error["id"] = "req-1"
        headers = {"X-Request-Id": "req-1"} if id_in == "header" else {}
        return httpx.Response(
            status,
            json={"errors": [error]},
            headers={**headers, "Content-Type": "application/vnd.api+json"},
        )

    client = make_client(fake_clock, transport=httpx.MockTransport(refuse))
    with pytest.raises(ApiError) as caught:
        run(client, lambda c: c.update_source("a" * 24, {"name": "x"}))

    assert len(sent) == 1
    assert (caught.value.status, caught.value.request_id) == (status, "req-1")
    assert str(caught.value) == (
        f"imgix API {status} Refused for source {'a' * 24}: hostname taken (request id req-1)"
    )


def test_an_echoed_secret_is_redacted(fake_clock: FakeClock) -> None:
    # A server that quotes the request back must not make the client print a secret.
    def echo(request: httpx.Request) -> httpx.Response:
        errors = [
            {"id": "r1", "status": "400", "title": "Bad Request", "detail": str(request.content)}
        ]
        return httpx.Response(400, json={"errors": errors})

    client = make_client(fake_clock, transport=httpx.MockTransport(echo))

    with pytest.raises(ApiError) as caught:
        run(client, lambda c: c.create_source(s3_attributes(1)))

    assert SECRET not in str(caught.value)
    assert redact.MASK in str(caught.value)


def test_a_secret_an_update_sends_and_the_server_echoes_is_redacted(
    fake_clock: FakeClock,
) -> None:
    # A secret of its own: sent by this update only, never registered by another test.
    secret = "update-only-s3cr3t-" + "q" * 12

    def echo(request: httpx.Request) -> httpx.Response:
        errors = [{"title": "Bad Request", "detail": request.content.decode()}]
        return httpx.Response(400, json={"errors": errors})

    client = make_client(fake_clock, transport=httpx.MockTransport(echo))

    with pytest.raises(ApiError) as caught:
        run(client, lambda c: c.update_source(SOURCE_0, s3_attributes(1, secret=secret)))

    assert secret not in str(caught.value)
    assert redact.MASK in str(caught.value)


def test_writes_answered_without_a_source_say_which_write_its_status_and_an_unknown_outcome(
    fake_clock: FakeClock,
) -> None:
    # The status quoted is the one received (a 202 or a 201), not a 200 made up for it.
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(202 if request.method == "PATCH" else 201, json={"data": {}})

    client = make_client(fake_clock, transport=httpx.MockTransport(answer))
    unknown = "; whether it was applied is unknown: the next plan will tell"

    with pytest.raises(ApiError) as updated:
        run(client, lambda c: c.update_source(SOURCE_0, {"name": "renamed"}))
    assert str(updated.value) == (
        f"imgix API 202 Invalid Response for source {SOURCE_0}: PATCH: no source resource "
        f"in the response{unknown}"
    )
    assert updated.value.status == 202

    client = make_client(fake_clock, transport=httpx.MockTransport(answer))
    with pytest.raises(ApiError) as created:
        run(client, lambda c: c.create_source(s3_attributes(1)))
    assert str(created.value) == (
        f"imgix API 201 Invalid Response: POST: no source resource in the response{unknown}"
    )
    assert created.value.status == 201


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (_source(7), "the answer is about source"),
        ({**_source(0), "attributes": ["name"]}, "the attributes of a source"),
        ({**_source(0), "attributes": {"name": 5}}, "name: "),
        ({**_source(0), "attributes": {"date_deployed": math.inf}}, "a number is out of range"),
        ({"type": "sources"}, "no source resource"),
    ],
    ids=["another source", "attributes not an object", "wrong type", "out of range", "no id"],
)
def test_a_write_answered_with_a_source_it_cannot_take_names_the_status_received(
    fake_clock: FakeClock, data: dict[str, Any], problem: str
) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        # json.dumps spells math.inf `Infinity`, which the client's JSON parser reads back.
        body = json.dumps({"data": data}).encode()
        return httpx.Response(203, content=body, headers={"Content-Type": "application/json"})

    client = make_client(fake_clock, transport=httpx.MockTransport(answer))

    with pytest.raises(ApiError) as caught:
        run(client, lambda c: c.update_source(SOURCE_0, {"name": "renamed"}))

    assert str(caught.value).startswith(
        f"imgix API 203 Invalid Response for source {SOURCE_0}: PATCH: {problem}"
    )
    assert caught.value.status == 203


def test_creates_are_paced_to_their_hourly_budget(fake_clock: FakeClock) -> None:
    store = make_store(fake_clock)
    client = make_client(fake_clock, store, pacing=Pacing(per_second=None, creates_per_hour=1))

    async def two_creates(client: ImgixClient) -> None:
        await client.create_source(s3_attributes(1))
        await client.create_source(s3_attributes(2))

    run(client, two_creates)

    assert [entry.status for entry in requests_of(store, "POST")] == [201, 201]
    assert fake_clock.elapsed >= 3000.0  # the second create waited for the hour


def test_values_a_create_sends_that_are_no_secret_are_shown_when_echoed(
    fake_clock: FakeClock,
) -> None:
    # Only secrets are masked: a message naming the bucket must still say which bucket.
    def echo(request: httpx.Request) -> httpx.Response:
        errors = [{"title": "Bad Request", "detail": "no bucket shown-bucket-4e1d here"}]
        return httpx.Response(400, json={"errors": errors})

    client = make_client(fake_clock, transport=httpx.MockTransport(echo))
    attributes = s3_attributes(1)
    attributes["deployment"]["s3_bucket"] = "shown-bucket-4e1d"

    with pytest.raises(ApiError) as caught:
        run(client, lambda c: c.create_source(attributes))

    assert str(caught.value) == "imgix API 400 Bad Request: no bucket shown-bucket-4e1d here"


@pytest.mark.parametrize(
    ("source_id", "shown"),
    [("z" * 40, "'" + "z" * 40 + "'"), ("z" * 41, "'" + "z" * 40 + "\\u2026'")],
    ids=["forty", "forty-one"],
)
def test_a_bad_source_id_is_shown_whole_up_to_forty_characters_then_clipped(
    fake_clock: FakeClock, source_id: str, shown: str
) -> None:
    client = make_client(fake_clock, transport=httpx.MockTransport(lambda r: httpx.Response(500)))

    with pytest.raises(ClientError) as caught:
        run(client, lambda c: c.get_source(source_id))

    assert str(caught.value) == (
        f"Refusing to send a request for the source id {shown}: "
        "imgix source ids are 24 lowercase hex characters."
    )


def test_a_rejected_key_is_one_sentence(fake_clock: FakeClock) -> None:
    store = make_store(fake_clock)
    client = make_client(fake_clock, store, api_key="ak_not-a-key")

    with pytest.raises(AuthError) as caught:
        run(client, lambda c: c.list_sources())

    assert str(caught.value) == "The API key was rejected (401): set IMGIX_API_KEY to a valid key."
    assert caught.value.status == 401
    assert "ak_not-a-key" not in repr(caught.value)
    assert len(store.request_log) == 1


def test_a_key_without_the_sources_permission_is_one_sentence(fake_clock: FakeClock) -> None:
    store = make_store(fake_clock)
    store.unprivileged_keys.add(OTHER_KEY)

    with pytest.raises(AuthError) as caught:
        run(make_client(fake_clock, store, api_key=OTHER_KEY), lambda c: c.list_sources())

    assert str(caught.value) == "The API key lacks the Sources permission (403)."
    assert caught.value.status == 403


def test_errors_stay_errors_until_attempts_run_out(fake_clock: FakeClock) -> None:
    store = make_store(fake_clock, faults=Faults(error_rate=1.0))
    client = make_client(fake_clock, store, retry=RetryPolicy(attempts=3, jitter=random.Random(1)))

    with pytest.raises(ApiError) as caught:
        run(client, lambda c: c.get_source("a" * 24))

    assert caught.value.status == 500
    assert "(request id " in str(caught.value)
    assert len(store.request_log) == 3


def test_retrying_past_the_deadline_raises_deadline_exceeded(fake_clock: FakeClock) -> None:
    store = make_store(fake_clock, faults=Faults(error_rate=1.0))
    retry = RetryPolicy(attempts=100, base=1.0, cap=4.0, deadline=20.0, jitter=random.Random(2))

    with pytest.raises(DeadlineExceeded) as caught:
        run(make_client(fake_clock, store, retry=retry), lambda c: c.list_sources())

    assert fake_clock.elapsed <= 20.0
    assert isinstance(caught.value.last_error, ApiError)
    assert caught.value.last_error.status == 500
    assert "20s deadline" in str(caught.value)


def test_a_listing_longer_than_the_deadline_gives_each_page_the_whole_deadline(
    fake_clock: FakeClock,
) -> None:
    store = make_store(fake_clock, max_page_size=10, faults=Faults(error_rate=0.2))
    seed(store, 200)
    retry = RetryPolicy(base=0.1, cap=0.5, deadline=3.0, jitter=random.Random(4))
    client = make_client(fake_clock, store, pacing=Pacing(), retry=retry)

    assert len(run(client, lambda c: c.list_sources())) == 200
    assert fake_clock.elapsed > 3.0
    assert 500 in [entry.status for entry in store.request_log]


def test_no_server_is_a_transport_error_after_retries(fake_clock: FakeClock) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Nothing listens on `port` now: every connection is refused.
    client = ImgixClient(
        api_key=EMULATOR_API_KEY,
        base_url=f"http://127.0.0.1:{port}",
        pacing=NO_PACING,
        retry=RetryPolicy(attempts=3, jitter=random.Random(3)),
        sleep=fake_clock.sleep,
        clock=fake_clock.time,
    )

    with pytest.raises(TransportError) as caught:
        run(client, lambda c: c.list_sources())

    message = str(caught.value)
    assert message.startswith("No response from the imgix API at 127.0.0.1 for GET /api/v1/sources")
    assert EMULATOR_API_KEY not in message
    assert len(fake_clock.sleeps) == 2  # three attempts, two waits


def test_a_connection_lost_without_a_word_says_no_detail(fake_clock: FakeClock) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadError("")

    client = make_client(
        fake_clock,
        transport=httpx.MockTransport(answer),
        retry=RetryPolicy(attempts=1, jitter=random.Random(3)),
    )

    with pytest.raises(TransportError) as caught:
        run(client, lambda c: c.list_sources())

    assert str(caught.value) == (
        "No response from the imgix API at emulator.test for GET /api/v1/sources: "
        "ReadError (no detail)"
    )


@pytest.mark.parametrize("key", ["", "   ", "ak_abc\nInjected: header", "ak_\u00e9"])
def test_an_unsendable_key_is_refused_before_any_request(key: str) -> None:
    with pytest.raises(ClientError) as caught:
        ImgixClient(api_key=key, transport=httpx.MockTransport(lambda r: httpx.Response(500)))

    assert str(caught.value) == (
        "The API key is empty or holds characters an HTTP header cannot carry: "
        "set IMGIX_API_KEY to a valid key."
    )


@pytest.mark.parametrize(
    "bounds",
    [{"timeout": 0.0}, {"max_response_bytes": 0}, {"max_pages": 0}, {"max_sources": 0}],
    ids=["timeout", "bytes", "pages", "sources"],
)
def test_a_bound_that_is_not_positive_is_refused_and_one_is_the_least(
    bounds: dict[str, float],
) -> None:
    with pytest.raises(ValueError, match="must be positive"):
        ImgixClient(api_key=EMULATOR_API_KEY, **bounds)  # type: ignore[arg-type]
    least = {name: 0.001 if name == "timeout" else 1 for name in bounds}
    asyncio.run(ImgixClient(api_key=EMULATOR_API_KEY, **least).aclose())  # type: ignore[arg-type]


def test_surrounding_whitespace_of_the_key_is_ignored(fake_clock: FakeClock) -> None:
    store = make_store(fake_clock)
    client = make_client(fake_clock, store, api_key=f"  {EMULATOR_API_KEY}\n")

    assert run(client, lambda c: c.list_sources()) == []


def test_a_url_that_is_not_http_fails_at_once(fake_clock: FakeClock) -> None:
    client = ImgixClient(
        api_key=EMULATOR_API_KEY,
        base_url="ftp://127.0.0.1",
        sleep=fake_clock.sleep,
        clock=fake_clock.time,
    )

    with pytest.raises(TransportError, match="UnsupportedProtocol"):
        run(client, lambda c: c.list_sources())
    assert fake_clock.sleeps == []


def test_an_unreadable_success_body_is_an_api_error(fake_clock: FakeClock) -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(200, text="<html>"))

    with pytest.raises(ApiError, match="Invalid Response"):
        run(make_client(fake_clock, transport=transport), lambda c: c.list_sources())


def test_a_success_without_a_content_type_is_an_invalid_response_saying_so(
    fake_clock: FakeClock,
) -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(200, content=b"{}"))

    with pytest.raises(ApiError) as caught:
        run(make_client(fake_clock, transport=transport), lambda c: c.get_source(f"{0:024x}"))

    assert str(caught.value) == (
        "imgix API 200 Invalid Response: GET: the body is no content type, not JSON"
    )


@pytest.mark.parametrize(
    ("body", "media_type", "problem"),
    [
        (b"<html>created</html>", "text/html", "the body is text/html, not JSON"),
        (b"[]", "application/vnd.api+json", "the body is not a JSON object"),
    ],
    ids=["html", "not an object"],
)
def test_a_create_answered_201_unreadably_names_the_status_and_leaves_the_outcome_unknown(
    fake_clock: FakeClock, body: bytes, media_type: str, problem: str
) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(201, content=body, headers={"Content-Type": media_type})

    client = make_client(fake_clock, transport=httpx.MockTransport(answer))

    with pytest.raises(ApiError) as caught:
        run(client, lambda c: c.create_source(s3_attributes(1)))

    assert str(caught.value) == (
        f"imgix API 201 Invalid Response: POST: {problem}; whether it "
        "was applied is unknown: the next plan will tell"
    )
    assert caught.value.status == 201


def test_every_error_is_a_client_error() -> None:
    for error in (ApiError, AuthError, TransportError, DeadlineExceeded):
        assert issubclass(error, ClientError)


@pytest.mark.parametrize(
    "source_id", ["..", ".", "../../x", "", "A" * 24, "a" * 23, "a" * 24 + "\n", "%2e%2e"]
)
@pytest.mark.parametrize("method", ["get", "update"])
def test_an_id_that_is_not_24_lowercase_hex_is_refused_before_any_request(
    fake_clock: FakeClock, source_id: str, method: str
) -> None:
    # A hostile or broken server could list such an id; `..` would PATCH /api/v1 itself.
    sent: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, json={"data": {"id": "a" * 24, "attributes": {}}})

    client = make_client(fake_clock, transport=httpx.MockTransport(record))

    async def call(c: ImgixClient) -> LiveSource:
        if method == "get":
            return await c.get_source(source_id)
        return await c.update_source(source_id, {"enabled": False})

    with pytest.raises(ClientError) as caught:
        run(client, call)
    assert sent == []
    message = str(caught.value)
    assert message.startswith("Refusing to send a request for the source id ")
    assert message.endswith(": imgix source ids are 24 lowercase hex characters.")
    assert "\n" not in message


def test_an_id_from_the_listing_is_used_as_one_path_segment(fake_clock: FakeClock) -> None:
    store = make_store(fake_clock)
    (source_id,) = seed(store, 1)

    run(make_client(fake_clock, store), lambda c: c.update_source(source_id, {"enabled": False}))

    assert [entry.path for entry in requests_of(store, "PATCH")] == [f"/api/v1/sources/{source_id}"]


# --------------------------------------------------------------------------- listing


@pytest.mark.parametrize("meta", [True, False], ids=["with-meta", "without-meta"])
@pytest.mark.parametrize("how", ["asgi", "http"])
def test_thousand_sources_with_clamped_pages_are_each_seen_once(
    fake_clock: FakeClock, meta: bool, how: str
) -> None:
    store = make_store(fake_clock, max_page_size=50, pagination_meta=meta)
    ids = seed(store, 1000)
    with served(store, how) as (url, transport):
        listed = run(
            make_client(fake_clock, transport=transport, base_url=url),
            lambda c: c.list_sources(),
        )

    assert [source.id for source in listed] == ids
    gets = requests_of(store, "GET")
    assert all(query_of(entry)["page[size]"] == "100" for entry in gets)
    numbers = sorted(int(query_of(entry)["page[number]"]) for entry in gets)
    # Without meta the client cannot know page 19 is the last until page 20 comes back empty.
    assert numbers == list(range(20 if meta else 21))


@settings(max_examples=30, deadline=None)
@given(
    count=st.integers(0, 260),
    max_page_size=st.integers(1, 120),
    meta=st.booleans(),
)
@example(count=30, max_page_size=100, meta=False)
@example(count=100, max_page_size=100, meta=False)
@example(count=101, max_page_size=150, meta=True)
@example(count=51, max_page_size=50, meta=False)
@example(count=0, max_page_size=5, meta=False)
def test_any_account_is_listed_whole_in_the_fewest_requests(
    count: int, max_page_size: int, meta: bool
) -> None:
    clock = FakeClock()
    store = make_store(clock, max_page_size=max_page_size, pagination_meta=meta)
    ids = seed(store, count)

    listed = run(make_client(clock, store), lambda c: c.list_sources())

    assert [source.id for source in listed] == ids
    size = min(100, max_page_size)
    pages = max(1, math.ceil(count / size))
    # Without meta only a page shorter than the first, or an empty one, is surely the last.
    extra = 0 if meta or count == 0 or (count > size and count % size) else 1
    assert len(store.request_log) == pages + extra


def test_a_short_first_page_is_not_the_end_without_meta(fake_clock: FakeClock) -> None:
    store = make_store(fake_clock, max_page_size=7, pagination_meta=False)
    ids = seed(store, 20)

    listed = run(make_client(fake_clock, store), lambda c: c.list_sources())

    assert [source.id for source in listed] == ids
    assert len(requests_of(store, "GET")) == 3  # 7 + 7 + 6, the short page ends it


def test_a_page_shorter_than_its_declared_size_is_the_last_without_asking_for_another(
    fake_clock: FakeClock,
) -> None:
    # Pagination that gives the page size but neither hasNextPage nor totalPages: a page
    # holding fewer sources than its size says is the end, not a reason for one more GET.
    def page(read: int, number: int) -> dict[str, Any]:
        data = [_source(n) for n in range(3)] if number == 0 else []
        return {"data": data, "meta": {"pagination": {"pageSize": 20, "currentPage": number}}}

    transport, asked = _scripted_listing(page)

    listed = run(make_client(fake_clock, transport=transport), lambda c: c.list_sources())

    assert [source.id for source in listed] == hostile_ids(range(3))
    assert asked == [0]


@pytest.mark.parametrize("meta", [True, False], ids=["with-meta", "without-meta"])
def test_an_empty_account_lists_nothing(fake_clock: FakeClock, meta: bool) -> None:
    store = make_store(fake_clock, pagination_meta=meta)

    assert run(make_client(fake_clock, store), lambda c: c.list_sources()) == []
    assert len(store.request_log) == 1


def test_a_source_created_mid_listing_shifts_pages_and_the_list_is_read_again(
    fake_clock: FakeClock,
) -> None:
    store = make_store(fake_clock, max_page_size=10)
    ids = seed(store, 30)
    inner = httpx.ASGITransport(app=create_app(store))
    created: list[str] = []
    notices: list[str] = []

    class NewSourceAfterFirstPage(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            response = await inner.handle_async_request(request)
            if not created:
                # As if the listing were newest first: the new source pushes every other
                # one a place down, onto the next page and past the announced last page.
                new = store.create_source(s3_attributes(99))
                created.append(new["id"])
                store.sources = {new["id"]: store.sources.pop(new["id"]), **store.sources}
            return response

    client = make_client(fake_clock, transport=NewSourceAfterFirstPage(), on_notice=notices.append)
    listed = run(client, lambda c: c.list_sources())

    # The first read missed the newcomer and listed the last source of page 0 again on
    # page 1; the second, on a quiet account, lists every source once, the newcomer first.
    assert [source.id for source in listed] == created + ids
    assert notices == [
        "the list of sources changed while it was read (30 then 31 announced, 30 read, "
        "1 listed twice); reading it again"
    ]
    # 3 announced pages and one past their end, then the 4 pages of 31 sources.
    assert len(requests_of(store, "GET")) == 4 + 4


# ------------------------------------------------------------- a list that moved


def hostile_ids(numbers: Iterator[int] | range | list[int]) -> list[str]:
    """The ids the hostile server gives the sources of these numbers."""
    return [f"{n:024x}" for n in numbers]


def list_hostile(
    clock: FakeClock, api: HostileApi, url: str | None = None
) -> tuple[list[LiveSource] | ApiError, list[str]]:
    """List the hostile server's sources (in-process, or at `url`): the list or the
    error, and the notices the client gave."""
    transport = None if url else httpx.ASGITransport(app=api)
    notices: list[str] = []
    client = make_client(
        clock,
        transport=transport,
        base_url=url or "http://hostile.test",
        on_notice=notices.append,
    )
    try:
        return run(client, lambda c: c.list_sources()), notices
    except ApiError as error:
        return error, notices


def test_a_source_removed_after_page_0_hides_none_over_real_http(fake_clock: FakeClock) -> None:
    api = HostileApi(attack="moving", move="remove", records=250)
    with serving(api) as url:
        listed, notices = list_hostile(fake_clock, api, url)

    # The first read missed source 100 (it slid onto page 0, read already); the second
    # lists every source left.
    assert isinstance(listed, list)
    assert [source.id for source in listed] == hostile_ids(range(1, 250))
    assert notices == [
        "the list of sources changed while it was read (250 then 249 announced, 249 read); "
        "reading it again"
    ]
    assert [request.query["page[number]"] for request in api.received] == ["0", "1", "2"] * 2


def test_a_source_inserted_after_page_0_is_listed_on_the_second_read(
    fake_clock: FakeClock,
) -> None:
    api = HostileApi(attack="moving", move="insert", records=250)

    listed, notices = list_hostile(fake_clock, api)

    assert isinstance(listed, list)
    assert [source.id for source in listed] == hostile_ids([1_000_000, *range(250)])
    assert notices == [
        "the list of sources changed while it was read (250 then 251 announced, 250 read, "
        "1 listed twice); reading it again"
    ]
    assert len(api.received) == 3 + 3


def test_without_meta_an_insertion_shows_by_its_repeat(fake_clock: FakeClock) -> None:
    api = HostileApi(attack="moving", move="insert", records=250, meta=False)

    listed, notices = list_hostile(fake_clock, api)

    assert isinstance(listed, list)
    assert [source.id for source in listed] == hostile_ids([1_000_000, *range(250)])
    assert notices == [
        "the list of sources changed while it was read (250 read, 1 listed twice); reading it again"
    ]


def test_without_meta_a_removal_cannot_be_seen(fake_clock: FakeClock) -> None:
    # The documented limit: pages that announce nothing cannot show a source they hid.
    api = HostileApi(attack="moving", move="remove", records=250, meta=False)

    listed, notices = list_hostile(fake_clock, api)

    assert isinstance(listed, list)
    assert [source.id for source in listed] == hostile_ids([*range(100), *range(101, 250)])
    assert notices == []
    assert len(api.received) == 3


def test_a_list_that_keeps_moving_is_an_invalid_response_after_three_reads(
    fake_clock: FakeClock,
) -> None:
    api = HostileApi(attack="moving", move="remove", records=250, moves=3)

    error, notices = list_hostile(fake_clock, api)

    assert isinstance(error, ApiError) and error.title == "Invalid Response"
    assert str(error) == (
        "imgix API 200 Invalid Response: GET: the list of sources kept changing while it "
        "was read (248 then 247 announced, 247 read), 3 times in a row; no plan is made "
        "from a list known to be incomplete: try again when the account is quiet"
    )
    assert len(notices) == 2
    assert len(api.received) == 3 * 3


def test_a_server_answering_past_its_last_page_with_that_page_is_not_followed(
    fake_clock: FakeClock,
) -> None:
    # No meta, and every page number past the last gets the last (full) page again: a
    # page of sources seen already ends the read, which does not walk to the page bound.
    asked: list[int] = []

    def answer(request: httpx.Request) -> httpx.Response:
        number = min(int(request.url.params["page[number]"]), 1)
        asked.append(int(request.url.params["page[number]"]))
        held = [_source(n) for n in range(2 * number, 2 * number + 2)]
        return httpx.Response(200, json={"data": held})

    client = make_client(fake_clock, transport=httpx.MockTransport(answer))

    with pytest.raises(ApiError, match="kept changing while it was read"):
        run(client, lambda c: c.list_sources())

    assert asked == [0, 1, 2] * 3


@pytest.mark.parametrize(
    "data",
    [{"id": f"{0:024x}", "type": "sources"}, [{"id": 7, "type": "sources"}], ["sources"]],
    ids=["an-object", "a-numeric-id", "a-string"],
)
def test_a_page_that_is_not_a_list_of_resources_is_an_invalid_response(
    fake_clock: FakeClock, data: Any
) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"data": data})

    client = make_client(fake_clock, transport=httpx.MockTransport(answer))

    with pytest.raises(ApiError) as caught:
        run(client, lambda c: c.list_sources())

    assert str(caught.value) == (
        "imgix API 200 Invalid Response: GET: the list of sources is not a list of resources"
    )


def test_a_list_that_settles_on_the_third_read_is_listed(fake_clock: FakeClock) -> None:
    api = HostileApi(attack="moving", move="remove", records=250, moves=2)

    listed, notices = list_hostile(fake_clock, api)

    assert isinstance(listed, list)
    assert [source.id for source in listed] == hostile_ids(range(2, 250))
    assert len(notices) == 2 and len(api.received) == 3 * 3


def test_pages_that_disagree_on_the_total_are_refused(fake_clock: FakeClock) -> None:
    # A list that stays put, on pages that never agree on its length: nothing to trust.
    api = HostileApi(attack="moving", records=250, moves=0, disagree=True)

    error, notices = list_hostile(fake_clock, api)

    assert isinstance(error, ApiError)
    assert "kept changing while it was read (250 then 251 then 252 announced, 250 read)" in (
        str(error)
    )
    assert len(notices) == 2 and len(api.received) == 3 * 3


def test_a_length_announced_anew_on_every_page_is_not_quoted_whole(
    fake_clock: FakeClock,
) -> None:
    # A hostile server can announce another length on each of thousands of pages.
    api = HostileApi(attack="moving", records=1200, moves=0, disagree=True)

    error, _ = list_hostile(fake_clock, api)

    assert isinstance(error, ApiError)
    assert "(1200 then 1201 then … (9 more) then 1211 announced, 1200 read)" in str(error)


@pytest.mark.parametrize(
    ("records", "quoted"),
    [
        (350, "(350 then 351 then 352 then 353 announced, 350 read)"),
        (450, "(450 then 451 then … (2 more) then 454 announced, 450 read)"),
    ],
)
def test_four_announced_lengths_are_quoted_whole_and_five_are_not(
    fake_clock: FakeClock, records: int, quoted: str
) -> None:
    api = HostileApi(attack="moving", records=records, moves=0, disagree=True)

    error, _ = list_hostile(fake_clock, api)

    assert isinstance(error, ApiError)
    assert quoted in str(error)


def _scripted_listing(
    page: Callable[[int, int], dict[str, Any]],
) -> tuple[httpx.MockTransport, list[int]]:
    """A server answering a list's page `n` of its read `r` (from 0) with `page(r, n)`;
    the page numbers it was asked for, in order."""
    asked: list[int] = []

    def answer(request: httpx.Request) -> httpx.Response:
        number = int(request.url.params["page[number]"])
        asked.append(number)
        return httpx.Response(200, json=page(asked.count(0) - 1, number))

    return httpx.MockTransport(answer), asked


def _pages_of(listed: list[int], size: int, number: int, **announced: Any) -> dict[str, Any]:
    """Page `number` of the sources `listed`, `size` a page, with `announced` as its
    pagination."""
    data = [_source(n) for n in listed[size * number : size * number + size]]
    return {"data": data, "meta": {"pagination": announced}}


@pytest.mark.parametrize(
    ("empty", "announced"),
    [
        (0, {"totalPages": 3}),
        (0, {"hasNextPage": True}),
        (0, {"totalPages": 2, "hasNextPage": False}),  # the least total saying more
        (1, {"totalPages": 3}),
        (1, {"hasNextPage": True}),
    ],
    ids=[
        "page 0, total",
        "page 0, has next",
        "page 0, total but no next",
        "page 1, total",
        "page 1, has next",
    ],
)
def test_an_empty_page_that_announces_more_is_an_invalid_response_not_a_short_list(
    fake_clock: FakeClock, empty: int, announced: dict[str, Any]
) -> None:
    # Pages are slices of one list: a page holding no sources can only be its end. One that
    # says more follow contradicts itself, and read on (or stopped at) it would leave out a
    # page of sources, each then planned as missing: a duplicate create.
    def page(read: int, number: int) -> dict[str, Any]:
        listed = _pages_of(list(range(6)), 2, number, **announced)
        if number == empty:
            listed["data"] = []
        return listed

    transport, asked = _scripted_listing(page)

    with pytest.raises(ApiError) as caught:
        run(make_client(fake_clock, transport=transport), lambda c: c.list_sources())

    assert str(caught.value) == (
        f"imgix API 200 Invalid Response: GET: page {empty} of the list holds no sources, "
        "yet the API says more pages follow"
    )
    assert asked.count(0) == 1  # not read again: the same answer would say the same


@pytest.mark.parametrize(
    "announced",
    [
        {"totalPages": 1, "hasNextPage": False},
        {"totalPages": 0},
        {"hasNextPage": False},
        {},
    ],
    ids=["one page", "no pages", "no next page", "no meta"],
)
def test_an_empty_last_page_ends_the_list(fake_clock: FakeClock, announced: dict[str, Any]) -> None:
    def page(read: int, number: int) -> dict[str, Any]:
        return _pages_of([], 2, number, **announced)

    transport, asked = _scripted_listing(page)

    assert run(make_client(fake_clock, transport=transport), lambda c: c.list_sources()) == []
    assert asked == [0]


@pytest.mark.parametrize("total", [-1, "2", True, 2.0], ids=repr)
def test_a_total_that_is_not_a_count_is_not_taken_for_the_lists_length(
    fake_clock: FakeClock, total: Any
) -> None:
    def page(read: int, number: int) -> dict[str, Any]:
        return _pages_of([0, 1], 20, number, totalRecords=total, hasNextPage=False)

    transport, asked = _scripted_listing(page)
    notices: list[str] = []
    client = make_client(fake_clock, transport=transport, on_notice=notices.append)

    listed = run(client, lambda c: c.list_sources())

    assert [source.id for source in listed] == hostile_ids(range(2))
    assert (asked, notices) == ([0], [])


def test_a_total_of_zero_over_listed_sources_is_a_count_that_is_off(fake_clock: FakeClock) -> None:
    def page(read: int, number: int) -> dict[str, Any]:
        return _pages_of([0, 1], 20, number, totalRecords=0, hasNextPage=False)

    transport, asked = _scripted_listing(page)
    notices: list[str] = []
    client = make_client(fake_clock, transport=transport, on_notice=notices.append)

    listed = run(client, lambda c: c.list_sources())

    assert [source.id for source in listed] == hostile_ids(range(2))
    assert asked == [0, 0]
    assert notices[-1] == (
        "the imgix API announces 0 sources but lists 2, on two reads alike; going by what it lists"
    )


def test_full_pages_under_total_pages_alone_end_at_the_last_announced(
    fake_clock: FakeClock,
) -> None:
    # No hasNextPage: totalPages is the server's word, even when the last page is full.
    def page(read: int, number: int) -> dict[str, Any]:
        return _pages_of([0, 1, 2, 3], 2, number, pageSize=2, totalPages=2)

    transport, asked = _scripted_listing(page)

    listed = run(make_client(fake_clock, transport=transport), lambda c: c.list_sources())

    assert [source.id for source in listed] == hostile_ids(range(4))
    assert asked == [0, 1]


def test_a_list_that_grows_a_page_under_total_pages_alone_is_followed_then_read_again(
    fake_clock: FakeClock,
) -> None:
    # Source 9 is created, newest first, once page 0 is served: the list grows onto a
    # third page, which page 1 announces and the read follows before reading again.
    listed = [0, 1, 2, 3]

    def page(read: int, number: int) -> dict[str, Any]:
        served = _pages_of(listed, 2, number, pageSize=2, totalPages=-(-len(listed) // 2))
        if read == 0 and number == 0:
            listed.insert(0, 9)
        return served

    transport, asked = _scripted_listing(page)
    notices: list[str] = []
    client = make_client(fake_clock, transport=transport, on_notice=notices.append)

    sources = run(client, lambda c: c.list_sources())

    assert [source.id for source in sources] == hostile_ids([9, 0, 1, 2, 3])
    assert asked == [0, 1, 2, 0, 1, 2]
    assert notices == [
        "the list of sources changed while it was read (4 read, 1 listed twice); reading it again"
    ]


@pytest.mark.parametrize(
    ("sources", "size", "bounds", "refused"),
    [
        (5, 20, {"max_sources": 5}, None),
        (6, 20, {"max_sources": 5}, "lists more than 5 sources"),
        (4, 2, {"max_sources": 4}, None),
        (5, 2, {"max_sources": 4}, "announces 3 pages of 2 sources, more than the 4"),
        (3, 2, {"max_sources": 2}, "announces 2 pages of 2 sources, more than the 2"),
        (6, 2, {"max_pages": 3}, None),
        (7, 2, {"max_pages": 3}, "announces a list of 4 pages, more than the 3"),
    ],
    ids=[
        "sources at the bound",
        "sources past it",
        "announced sources at it",
        "announced sources past it",
        "two announced pages past it",
        "announced pages at it",
        "announced pages past it",
    ],
)
def test_a_listing_at_its_bounds_is_read_and_one_past_them_is_refused_at_once(
    fake_clock: FakeClock, sources: int, size: int, bounds: dict[str, int], refused: str | None
) -> None:
    def page(read: int, number: int) -> dict[str, Any]:
        pages = -(-sources // size)
        return _pages_of(list(range(sources)), size, number, pageSize=size, totalPages=pages)

    transport, asked = _scripted_listing(page)
    client = make_client(fake_clock, transport=transport, **bounds)

    if refused is None:
        listed = run(client, lambda c: c.list_sources())
        assert [source.id for source in listed] == hostile_ids(range(sources))
    else:
        with pytest.raises(LimitExceeded, match=refused):
            run(client, lambda c: c.list_sources())
        # Refused on the first page's word, before asking for any other.
        assert asked == [0]


def test_a_listed_source_of_the_wrong_shape_is_refused_by_its_field_not_its_value(
    fake_clock: FakeClock,
) -> None:
    broken = _source(1)
    broken["attributes"]["enabled"] = "maybe-not-a-secret-either"

    def page(read: int, number: int) -> dict[str, Any]:
        return {"data": [_source(0), broken] if number == 0 else []}

    transport, _ = _scripted_listing(page)

    with pytest.raises(ApiError) as caught:
        run(make_client(fake_clock, transport=transport), lambda c: c.list_sources())

    message = str(caught.value)
    assert message.startswith(
        f"imgix API 200 Invalid Response for source {broken['id']}: GET: enabled: "
    ), message
    assert "maybe" not in message


def test_a_listed_source_of_the_wrong_shape_is_named_by_its_id_when_it_is_one(
    fake_clock: FakeClock,
) -> None:
    # Was: "GET: deployment_status: Input should be a valid string", in an account of
    # hundreds of sources, with nothing to say which one.
    broken, hostile = _source(1), _source(2)
    broken["attributes"]["deployment_status"] = 3
    hostile["id"], hostile["attributes"]["enabled"] = "../x\n::error::", "maybe"

    for listed, shown in ((broken, f"for source {broken['id']}"), (hostile, "")):

        def page(read: int, number: int, listed: Any = listed) -> dict[str, Any]:
            return {"data": [_source(0), listed] if number == 0 else []}

        transport, _ = _scripted_listing(page)
        with pytest.raises(ApiError) as caught:
            run(make_client(fake_clock, transport=transport), lambda c: c.list_sources())
        assert str(caught.value).startswith(
            f"imgix API 200 Invalid Response{' ' if shown else ''}{shown}: GET: "
        ), caught.value


def test_a_page_that_only_repeats_yet_promises_more_is_one_invalid_response(
    fake_clock: FakeClock,
) -> None:
    def page(read: int, number: int) -> dict[str, Any]:
        return _pages_of([0, 1], 20, 0, hasNextPage=True)

    transport, asked = _scripted_listing(page)

    with pytest.raises(ApiError) as caught:
        run(make_client(fake_clock, transport=transport), lambda c: c.list_sources())

    assert str(caught.value) == (
        "imgix API 200 Invalid Response: GET: page 1 of the list repeats only sources of "
        "earlier pages, yet the API says more pages follow"
    )
    assert asked == [0, 1]


def test_two_reads_that_announce_alike_but_list_other_sources_are_not_alike(
    fake_clock: FakeClock,
) -> None:
    # Each read announces 3 and lists 2, but another second source each time: the
    # list moves (a source created as another is removed), no count the API keeps.
    def page(read: int, number: int) -> dict[str, Any]:
        pagination = {"totalRecords": 3, "totalPages": 1, "hasNextPage": False}
        return {"data": [_source(0), _source(10 + read)], "meta": {"pagination": pagination}}

    transport, asked = _scripted_listing(page)
    client = make_client(fake_clock, transport=transport, on_notice=lambda _: None)

    with pytest.raises(ApiError) as caught:
        run(client, lambda c: c.list_sources())

    assert "kept changing while it was read (3 announced, 2 read), 3 times in a row" in str(
        caught.value
    )
    assert asked == [0, 0, 0]


def test_a_removal_announced_only_by_total_pages_is_read_again(fake_clock: FakeClock) -> None:
    # No totalRecords: a page count that shrinks mid-read is all that shows source 2 was
    # hidden (it slid onto page 0, read already, when source 0 was removed).
    listed = list(range(5))

    def page(read: int, number: int) -> dict[str, Any]:
        held = listed[2 * number : 2 * number + 2]
        pages = -(-len(listed) // 2)
        if read == 0 and number == 0:
            del listed[0]
        pagination = {"pageSize": 2, "totalPages": pages, "hasNextPage": number + 1 < pages}
        return {"data": [_source(n) for n in held], "meta": {"pagination": pagination}}

    transport, asked = _scripted_listing(page)
    notices: list[str] = []
    client = make_client(fake_clock, transport=transport, on_notice=notices.append)

    sources = run(client, lambda c: c.list_sources())

    assert [source.id for source in sources] == hostile_ids([1, 2, 3, 4])
    assert notices == ["the list of sources changed while it was read (4 read); reading it again"]
    assert asked == [0, 1, 2, 0, 1]


def test_a_total_that_is_off_on_two_reads_alike_is_taken_as_the_apis_count(
    fake_clock: FakeClock,
) -> None:
    api = HostileApi(attack="moving", records=250, moves=0, records_off=1)

    listed, notices = list_hostile(fake_clock, api)

    assert isinstance(listed, list)
    assert [source.id for source in listed] == hostile_ids(range(250))
    assert notices == [
        "the list of sources changed while it was read (251 announced, 250 read); reading it again",
        "the imgix API announces 251 sources but lists 250, on two reads alike; going by "
        "what it lists",
    ]
    assert len(api.received) == 3 + 3


def test_a_quiet_list_is_read_once_and_says_nothing(
    fake_clock: FakeClock, capsys: pytest.CaptureFixture[str]
) -> None:
    api = HostileApi(attack="moving", records=250, moves=0)
    client = make_client(
        fake_clock, transport=httpx.ASGITransport(app=api), base_url="http://hostile.test"
    )

    listed = run(client, lambda c: c.list_sources())

    assert [source.id for source in listed] == hostile_ids(range(250))
    assert len(api.received) == 3
    assert capsys.readouterr() == ("", "")


def test_a_list_read_again_is_said_on_stderr_by_default(
    fake_clock: FakeClock, capsys: pytest.CaptureFixture[str]
) -> None:
    api = HostileApi(attack="moving", move="remove", records=250)
    client = make_client(
        fake_clock, transport=httpx.ASGITransport(app=api), base_url="http://hostile.test"
    )

    run(client, lambda c: c.list_sources())

    out, err = capsys.readouterr()
    assert out == ""
    assert err == (
        "the list of sources changed while it was read (250 then 249 announced, 249 read); "
        "reading it again\n"
    )


def test_a_list_read_again_is_the_last_reads(fake_clock: FakeClock) -> None:
    api = HostileApi(attack="moving", move="remove", records=250)
    client = make_client(
        fake_clock,
        transport=httpx.ASGITransport(app=api),
        base_url="http://hostile.test",
        on_notice=lambda message: None,
    )

    listed = run(client, lambda c: c.list_sources())

    assert [source.id for source in listed] == hostile_ids(range(1, 250))


def test_pages_after_the_first_are_fetched_concurrently(fake_clock: FakeClock) -> None:
    store = make_store(fake_clock, max_page_size=10)
    seed(store, 100)
    in_flight = most = 0

    with running_emulator(store) as url:
        inner = httpx.AsyncHTTPTransport()

        class Gauge(httpx.AsyncBaseTransport):
            async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
                nonlocal in_flight, most
                in_flight += 1
                most = max(most, in_flight)
                try:
                    response = await inner.handle_async_request(request)
                    await response.aread()
                    return response
                finally:
                    in_flight -= 1

            async def aclose(self) -> None:
                await inner.aclose()

        listed = run(
            make_client(fake_clock, transport=Gauge(), base_url=url), lambda c: c.list_sources()
        )

    assert len(listed) == 100
    assert most > 1


def test_a_page_that_fails_for_good_ends_the_listing_with_its_error_and_no_more_requests(
    fake_clock: FakeClock,
) -> None:
    # 20 announced pages; page 3 is refused (a 404 is no reason to retry) while the other
    # workers' pages are still under way: they are cancelled, none takes another page,
    # and the error the caller gets is the 404, not a cancellation.
    asked: list[int] = []

    async def answer(request: httpx.Request) -> httpx.Response:
        number = int(request.url.params["page[number]"])
        asked.append(number)
        if number == 3:
            return httpx.Response(404, json={"errors": [{"status": "404", "title": "Gone"}]})
        if number:
            for _ in range(5):
                await asyncio.sleep(0)
        pagination = {"pageSize": 1, "totalPages": 20, "hasNextPage": number < 19}
        return httpx.Response(
            200, json={"data": [_source(number)], "meta": {"pagination": pagination}}
        )

    client = make_client(fake_clock, transport=httpx.MockTransport(answer))
    left_running: set[asyncio.Task[Any]] = set()

    async def listing(client: ImgixClient) -> list[LiveSource]:
        try:
            return await client.list_sources()
        finally:
            # No worker outlives the listing's failure: the caller's next step is alone.
            left_running.update(asyncio.all_tasks() - {asyncio.current_task()})

    with pytest.raises(ApiError, match=r"^imgix API 404 Gone$"):
        run(client, listing)

    assert left_running == set()
    # Page 0, then one page for each of the workers at most.
    assert sorted(asked) == list(range(1 + LIST_CONCURRENCY))


class _TrackedBody(httpx.AsyncByteStream):
    """A response body that says whether it was closed. Closing it takes a few turns of the
    event loop, as closing a real connection does; with `stall` it stops after its chunks
    until that event is set."""

    def __init__(self, chunks: list[bytes], stall: asyncio.Event | None = None) -> None:
        self.chunks = chunks
        self.stall = stall
        self.streaming = asyncio.Event()
        self.closed = False

    async def __aiter__(self) -> Any:
        for chunk in self.chunks:
            yield chunk
        self.streaming.set()
        if self.stall is not None:
            await self.stall.wait()

    async def aclose(self) -> None:
        for _ in range(5):
            await asyncio.sleep(0)
        self.closed = True


def test_a_page_cut_off_by_another_pages_failure_is_closed_before_the_error_is_raised(
    fake_clock: FakeClock,
) -> None:
    # Page 2's body is under way when page 1 fails for good: page 2 is cancelled, and its
    # connection is closed before the caller hears of the failure, not after the caller
    # has moved on (or closed the client under it).
    page_2 = _TrackedBody([b'{"data": ['], stall=asyncio.Event())

    async def answer(request: httpx.Request) -> httpx.Response:
        number = int(request.url.params["page[number]"])
        if number == 1:
            await page_2.streaming.wait()
            return httpx.Response(404, json={"errors": [{"status": "404", "title": "Gone"}]})
        if number == 2:
            return httpx.Response(200, stream=page_2, headers={"Content-Type": "application/json"})
        pagination = {"pageSize": 1, "totalPages": 3}
        return httpx.Response(200, json={"data": [_source(0)], "meta": {"pagination": pagination}})

    closed_when_raised: list[bool] = []

    async def listing(client: ImgixClient) -> list[LiveSource]:
        try:
            return await client.list_sources()
        finally:
            closed_when_raised.append(page_2.closed)

    with pytest.raises(ApiError, match=r"^imgix API 404 Gone$"):
        run(make_client(fake_clock, transport=httpx.MockTransport(answer)), listing)

    assert closed_when_raised == [True]


EXTRA_TEXT = "x" * 20_000


def test_each_listed_page_is_decoded_as_it_arrives_and_its_raw_text_let_go(
    fake_clock: FakeClock,
) -> None:
    # 1,000 sources, each with 20 kB of an attribute the client does not keep (20 MB in
    # all): a listing holds that text only for the pages under way, not for the whole
    # account until the last page is in (bench/memory.py measures the real sizes).
    pages, size = 100, 10

    def answer(request: httpx.Request) -> httpx.Response:
        number = int(request.url.params["page[number]"])
        data = [_source(n) for n in range(number * size, number * size + size)]
        for source in data:
            source["attributes"]["not_kept"] = EXTRA_TEXT
        pagination = {"pageSize": size, "totalPages": pages}
        return httpx.Response(200, json={"data": data, "meta": {"pagination": pagination}})

    client = make_client(fake_clock, transport=httpx.MockTransport(answer))

    tracemalloc.start()
    try:
        listed = run(client, lambda c: c.list_sources())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert [source.id for source in listed] == hostile_ids(range(pages * size))
    assert peak < pages * size * len(EXTRA_TEXT) / 2, peak


def test_listing_is_paced_to_four_requests_per_second(fake_clock: FakeClock) -> None:
    store = make_store(fake_clock, max_page_size=10, limits=RateLimits())
    seed(store, 200)
    pacing = Pacing(headroom=0.0)

    listed = run(make_client(fake_clock, store, pacing=pacing), lambda c: c.list_sources())

    assert len(listed) == 200
    assert [entry.status for entry in store.request_log] == [200] * 20
    # 20 pages at 4 per second: the 17th..20th wait for the 4th second.
    assert fake_clock.elapsed == pytest.approx(math.ceil(20 / 4) - 1)


# --------------------------------------------------------------------------- faults


def test_lost_create_response_finds_the_source_instead_of_creating_twice(
    fake_clock: FakeClock,
) -> None:
    store = make_store(fake_clock, faults=Faults(lost_response_rate=1.0))

    created = run(make_client(fake_clock, store), lambda c: c.create_source(s3_attributes(7)))

    assert list(store.sources) == [created.id]
    assert [entry.method for entry in store.request_log] == ["POST", "GET"]
    assert query_of(store.request_log[1])["filter[deployment.imgix_subdomains]"] == "acme-7"


@pytest.mark.parametrize("how", ["asgi", "http"])
def test_errors_and_lost_responses_still_give_one_source_per_create(
    fake_clock: FakeClock, how: str
) -> None:
    store = make_store(
        fake_clock,
        faults=Faults(error_rate=0.3, lost_response_rate=0.3),
        rng=random.Random(2024),
    )
    count = 40

    async def create_all(client: ImgixClient) -> list[LiveSource]:
        return list(
            await asyncio.gather(*(client.create_source(s3_attributes(n)) for n in range(count)))
        )

    with served(store, how) as (url, transport):
        created = run(make_client(fake_clock, transport=transport, base_url=url), create_all)

    by_subdomain = {sorted(source.hostnames)[0]: source.id for source in created}
    assert sorted(by_subdomain) == sorted(f"acme-{n}" for n in range(count))
    assert sorted(store.sources) == sorted(by_subdomain.values())
    statuses = [entry.status for entry in store.request_log]
    assert 500 in statuses and 504 in statuses  # the faults did happen


# api-notes.md: a taken subdomain "fails (status unconfirmed; emulate 400)": the client
# must find its lost create whichever refusal the real API uses.
@pytest.mark.parametrize("taken_status", [400, 409, 422])
def test_a_create_refused_after_a_lost_response_is_found_not_failed(
    fake_clock: FakeClock, taken_status: int
) -> None:
    # The lost create did land, but the first lookup misses it (a lagging replica): the
    # retry is refused for the taken subdomain, and a second lookup finds the source.
    store = make_store(fake_clock)
    inner = httpx.ASGITransport(app=create_app(store))
    lookups = 0

    class LaggingReplica(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            nonlocal lookups
            response = await inner.handle_async_request(request)
            if request.method == "POST" and len(store.sources) == 1 and not lookups:
                return httpx.Response(504, text="<html>504 Gateway Time-out</html>")
            if request.method == "GET":
                lookups += 1
                if lookups == 1:
                    return httpx.Response(200, json={"data": [], "meta": {}})
            if request.method == "POST" and response.status_code == 400:
                await response.aread()
                return httpx.Response(
                    taken_status, headers=response.headers, content=response.content
                )
            return response

    created = run(
        make_client(fake_clock, transport=LaggingReplica()),
        lambda c: c.create_source(s3_attributes(3)),
    )

    assert list(store.sources) == [created.id]
    assert [(e.method, e.status) for e in store.request_log] == [
        ("POST", 201),  # its answer lost on the way
        ("GET", 200),  # the lookup, answered by the lagging replica: nothing
        ("POST", 400),  # the subdomain is taken
        ("GET", 200),  # found
    ]


def test_updates_are_retried_through_faults(fake_clock: FakeClock) -> None:
    store = make_store(fake_clock, faults=Faults(error_rate=0.3, lost_response_rate=0.3))
    ids = seed(store, 10)

    async def disable_all(client: ImgixClient) -> list[LiveSource]:
        return list(
            await asyncio.gather(*(client.update_source(i, {"enabled": False}) for i in ids))
        )

    updated = run(make_client(fake_clock, store), disable_all)

    assert all(source.enabled is False for source in updated)
    assert not any(source.enabled for source in store.sources.values())


def test_a_429_storm_is_paced_and_every_request_succeeds_before_the_deadline(
    fake_clock: FakeClock,
) -> None:
    # The server allows 2 requests per second; the client believes 10 are fine.
    store = make_store(fake_clock, limits=RateLimits(per_second=2))
    ids = seed(store, 30)
    retry = RetryPolicy(deadline=60.0, jitter=random.Random(5))
    client = make_client(fake_clock, store, pacing=Pacing(per_second=10.0), retry=retry)

    async def fetch_all(client: ImgixClient) -> list[LiveSource]:
        return list(await asyncio.gather(*(client.get_source(i) for i in ids)))

    fetched = run(client, fetch_all)

    assert [source.id for source in fetched] == ids
    statuses = [entry.status for entry in store.request_log]
    assert statuses.count(200) == 30
    assert 429 in statuses
    assert fake_clock.elapsed < 60.0
    # After a 429 every task holds back for its Retry-After: the storm does not feed itself.
    assert statuses.count(429) < 30


def test_retry_after_holds_back_every_later_request(fake_clock: FakeClock) -> None:
    store = make_store(fake_clock, limits=RateLimits(per_second=3))
    ids = seed(store, 20)
    inner = httpx.ASGITransport(app=create_app(store))
    events: list[tuple[str, float, float]] = []

    class Timeline(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            events.append(("send", fake_clock.time(), 0.0))
            response = await inner.handle_async_request(request)
            if response.status_code == 429:
                events.append(("429", fake_clock.time(), float(response.headers["retry-after"])))
            return response

    client = make_client(fake_clock, transport=Timeline(), pacing=Pacing(per_second=None))

    async def fetch_all(client: ImgixClient) -> list[LiveSource]:
        return list(await asyncio.gather(*(client.get_source(i) for i in ids)))

    assert len(run(client, fetch_all)) == 20
    refusals = [(n, at + wait) for n, (kind, at, wait) in enumerate(events) if kind == "429"]
    assert refusals
    for index, not_before in refusals:
        later_sends = [at for kind, at, _ in events[index:] if kind == "send"]
        assert all(at >= not_before for at in later_sends)


def test_paced_requests_meet_no_429(fake_clock: FakeClock) -> None:
    store = make_store(fake_clock, limits=RateLimits(per_second=4, updates_per_hour=5))
    ids = seed(store, 12)

    async def touch_all(client: ImgixClient) -> None:
        await asyncio.gather(
            *(client.get_source(i) for i in ids),
            *(client.update_source(i, {"name": f"renamed {i}"}) for i in ids[:8]),
        )

    run(make_client(fake_clock, store, pacing=Pacing(updates_per_hour=5)), touch_all)

    assert {entry.status for entry in store.request_log} == {200}
    assert fake_clock.elapsed >= 3600.0  # the sixth update waited for the hour


def test_retry_after_without_header_backs_off_with_jitter(fake_clock: FakeClock) -> None:
    store = make_store(fake_clock, limits=RateLimits(per_second=1, retry_after=False))
    ids = seed(store, 6)

    async def fetch_all(client: ImgixClient) -> list[LiveSource]:
        return list(await asyncio.gather(*(client.get_source(i) for i in ids)))

    fetched = run(make_client(fake_clock, store), fetch_all)

    assert len(fetched) == 6
    assert 429 in [entry.status for entry in store.request_log]
    waits = [s for s in fake_clock.sleeps if s > 0]
    assert waits and len(set(waits)) == len(waits)  # jittered, not in lockstep


HEADERS_NOT_RETRY_AFTER = RateLimits(per_second=1, retry_after=False, rate_limit_headers=True)


def test_x_ratelimit_reset_is_honoured_when_retry_after_is_absent(fake_clock: FakeClock) -> None:
    # api-notes.md: whether a 429 carries Retry-After or X-RateLimit-* is unconfirmed,
    # "honour one when present": the reset is waited for whole, not guessed at with jitter.
    store = make_store(fake_clock, limits=HEADERS_NOT_RETRY_AFTER)
    ids = seed(store, 6)

    async def fetch_all(client: ImgixClient) -> list[LiveSource]:
        return list(await asyncio.gather(*(client.get_source(i) for i in ids)))

    with served(store, "http") as (url, _):
        fetched = run(make_client(fake_clock, base_url=url), fetch_all)

    assert len(fetched) == 6
    assert 429 in [entry.status for entry in store.request_log]
    assert {s for s in fake_clock.sleeps if s > 0} == {1.0}  # the reset, not a jittered guess


def test_an_x_ratelimit_reset_past_the_deadline_fails_fast(fake_clock: FakeClock) -> None:
    limits = HEADERS_NOT_RETRY_AFTER._replace(per_second=None, updates_per_hour=1)
    store = make_store(fake_clock, limits=limits)
    (source_id,) = seed(store, 1)

    async def update_twice(client: ImgixClient) -> None:
        await client.update_source(source_id, {"name": "first"})
        await client.update_source(source_id, {"name": "second"})

    with served(store, "http") as (url, _), pytest.raises(DeadlineExceeded) as stopped:
        run(make_client(fake_clock, base_url=url), update_twice)

    assert "waiting 3600.0s more" in str(stopped.value)
    assert [e.status for e in requests_of(store, "PATCH")] == [200, 429]  # not retried
    assert fake_clock.elapsed < 1.0


@pytest.mark.parametrize("skew", [-3600.0, 3600.0], ids=["runner_behind", "runner_ahead"])
def test_a_retry_after_date_is_read_on_the_servers_clock_not_the_runners(
    fake_clock: FakeClock, skew: float
) -> None:
    # A runner whose clock is off by an hour (a VM restored from a snapshot, a clock that
    # jumped) read the server's "retry at 12:00:02" against its own time. Was: behind, the
    # wait was an hour and the read gave up at once; ahead, it was retried at once.
    from email.utils import formatdate

    store = make_store(fake_clock)
    (source_id,) = seed(store, 1)
    inner = httpx.ASGITransport(app=create_app(store))
    refused: list[httpx.Request] = []

    class ServerClockOff(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            if refused:
                return await inner.handle_async_request(request)
            refused.append(request)
            server_now = datetime.now(timezone.utc).timestamp() + skew
            headers = {
                "date": formatdate(server_now, usegmt=True),
                "retry-after": formatdate(server_now + 2, usegmt=True),
                "content-type": "application/vnd.api+json",
            }
            body = {"errors": [{"status": "429", "title": "Too Many Requests"}]}
            return httpx.Response(429, headers=headers, json=body)

    client = make_client(fake_clock, transport=ServerClockOff())
    source = run(client, lambda c: c.get_source(source_id))

    assert source.id == source_id
    waits = [s for s in fake_clock.sleeps if s > 0]
    assert len(waits) == 1 and 1.0 <= waits[0] <= 2.0, waits


# --------------------------------------------------------------------------- write budget


def test_writes_refused_with_429_do_not_spend_the_hourly_budget(fake_clock: FakeClock) -> None:
    # The server refuses bursts past 1 request/s; the client does not pace per second, so
    # some creates meet a 429. Only the ones the server accepted count against 60/h.
    store = make_store(fake_clock, limits=RateLimits(per_second=1, creates_per_hour=6))
    client = make_client(fake_clock, store, pacing=Pacing(per_second=None, creates_per_hour=6))

    async def create_all(client: ImgixClient) -> None:
        await asyncio.gather(*(client.create_source(s3_attributes(n)) for n in range(6)))

    run(client, create_all)

    statuses = [entry.status for entry in store.request_log]
    assert 429 in statuses and statuses.count(201) == 6
    assert fake_clock.elapsed < 600.0  # no wait for an hour the server never counted


def test_a_write_that_never_connected_does_not_spend_the_hourly_budget(
    fake_clock: FakeClock,
) -> None:
    # The first attempt finds no server: it was never sent, so the server counted one
    # update of two this hour, and the second update goes out at once.
    statuses: list[int | str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        if not statuses:
            statuses.append("refused")
            raise httpx.ConnectError("connection refused")
        statuses.append(200)
        # The source written: an answer about another one fails the update.
        return httpx.Response(200, json={"data": _source(int(request.url.path[-24:], 16))})

    client = make_client(
        fake_clock,
        transport=httpx.MockTransport(answer),
        pacing=Pacing(per_second=None, updates_per_hour=2),
    )

    async def two_updates(client: ImgixClient) -> None:
        for n in range(2):
            await client.update_source(f"{n:024x}", {"name": "renamed"})

    run(client, two_updates)

    assert statuses == ["refused", 200, 200]
    assert fake_clock.elapsed < 600.0  # no wait for an hour the server never counted


@pytest.mark.parametrize("status", [400, 404, 499])
def test_a_write_refused_with_a_4xx_does_not_spend_the_hourly_budget(
    fake_clock: FakeClock, status: int
) -> None:
    # The refusal did nothing: the one update this hour is still free for the next write.
    statuses: list[int] = []

    def answer(request: httpx.Request) -> httpx.Response:
        statuses.append(status if not statuses else 200)
        if statuses[-1] == status:
            return httpx.Response(status, json={"errors": [{"detail": "refused"}]})
        return httpx.Response(200, json={"data": _source(1)})

    client = make_client(
        fake_clock,
        transport=httpx.MockTransport(answer),
        pacing=Pacing(per_second=None, updates_per_hour=1),
    )

    async def refused_then_sent(client: ImgixClient) -> None:
        with pytest.raises(ApiError):
            await client.update_source(f"{0:024x}", {"name": "renamed"})
        await client.update_source(f"{1:024x}", {"name": "renamed"})

    run(client, refused_then_sent)

    assert statuses == [status, 200]
    assert fake_clock.elapsed < 600.0


def test_a_write_answered_500_spends_the_hourly_budget(fake_clock: FakeClock) -> None:
    # A 500 may have come after the write landed: the hour's one update counts as used.
    statuses: list[int] = []

    def answer(request: httpx.Request) -> httpx.Response:
        statuses.append(500 if not statuses else 200)
        if statuses[-1] == 500:
            return httpx.Response(500)
        return httpx.Response(200, json={"data": _source(1)})

    client = make_client(
        fake_clock,
        transport=httpx.MockTransport(answer),
        pacing=Pacing(per_second=None, updates_per_hour=1),
        retry=RetryPolicy(attempts=1, jitter=random.Random(1)),
    )

    async def failed_then_sent(client: ImgixClient) -> None:
        with pytest.raises(ApiError, match="whether it was applied is unknown"):
            await client.update_source(f"{0:024x}", {"name": "renamed"})
        await client.update_source(f"{1:024x}", {"name": "renamed"})

    run(client, failed_then_sent)

    assert statuses == [500, 200]
    assert fake_clock.elapsed >= 3000.0  # the next write waited for the hour


def test_a_retry_after_past_the_deadline_fails_fast_and_holds_no_one(
    fake_clock: FakeClock,
) -> None:
    # The account's update budget is spent elsewhere (the dashboard): the server asks for
    # about an hour, far past the retry deadline.
    store = make_store(fake_clock, limits=RateLimits(updates_per_hour=1))
    ids = seed(store, 3)
    store.update_source(ids[0], {"name": "spent by the dashboard"})
    client = make_client(fake_clock, store, retry=RetryPolicy(deadline=120.0))

    async def touch(client: ImgixClient) -> list[object]:
        return list(
            await asyncio.gather(
                client.update_source(ids[1], {"name": "renamed"}),
                *(client.get_source(i) for i in ids),
                return_exceptions=True,
            )
        )

    outcomes = run(client, touch)

    assert isinstance(outcomes[0], DeadlineExceeded)
    assert "deadline" in str(outcomes[0])
    assert all(isinstance(outcome, LiveSource) for outcome in outcomes[1:])
    assert fake_clock.elapsed < 120.0


def test_a_write_refused_without_end_waits_three_hourly_windows_then_fails(
    fake_clock: FakeClock,
) -> None:
    # A server that answers every update 429 and never says how long (found by fuzzing):
    # the pacer's count of refusals in a row and the write's own budget waits each added
    # a window for the same refusals, five hours in all, then a misleading deadline error.
    requests: list[str] = []

    def refuse(request: httpx.Request) -> httpx.Response:
        requests.append(request.method)
        return httpx.Response(429, json={"errors": [{"detail": "rate limited"}]})

    client = make_client(
        fake_clock,
        transport=httpx.MockTransport(refuse),
        pacing=Pacing(),  # the documented 60 updates an hour
        retry=RetryPolicy(attempts=4, jitter=random.Random(0)),
    )
    with pytest.raises(ClientError, match=r"^imgix API 429"):
        run(client, lambda c: c.update_source("0" * 24, {"name": "renamed"}))

    assert BUDGET_WAITS == 3
    # Four tries per round, a round before each of the three waits and one after them.
    assert requests == ["PATCH"] * 4 * (BUDGET_WAITS + 1)
    assert 3 * 3600 <= fake_clock.elapsed < 4 * 3600


def test_after_a_budget_wait_the_retry_deadline_is_renewed_once(fake_clock: FakeClock) -> None:
    # The hourly budget is spent elsewhere (429s that never say how long): the write
    # waits a window, then meets 503s asking 50s each. The wait gives it a new 60s
    # deadline, once: its second 503 gives up, it does not renew at every attempt.
    requests: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        requests.append(request.method)
        if len(requests) <= 4:
            return httpx.Response(429, json={"errors": [{"detail": "rate limited"}]})
        return httpx.Response(503, headers={"Retry-After": "50"})

    client = make_client(
        fake_clock,
        transport=httpx.MockTransport(answer),
        pacing=Pacing(),  # the documented 60 updates an hour
        retry=RetryPolicy(attempts=4, deadline=60.0, jitter=random.Random(0)),
    )
    with pytest.raises(DeadlineExceeded):
        run(client, lambda c: c.update_source("0" * 24, {"name": "renamed"}))

    assert requests == ["PATCH"] * (4 + 2)
    assert 3600 <= fake_clock.elapsed < 3600 + 120


def test_refusals_without_end_after_a_failed_attempt_hold_later_writes_a_window(
    fake_clock: FakeClock,
) -> None:
    # A write's first attempt fails (503), so it waits for no budget itself; its eight
    # 429s that never say how long still tell the pacer the hourly budget is spent: the
    # next write waits a window rather than meeting the same refusals.
    sent_at: list[float] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent_at.append(fake_clock.elapsed)
        if len(sent_at) == 1:
            return httpx.Response(503)
        if len(sent_at) <= 9:
            return httpx.Response(429, json={"errors": [{"detail": "rate limited"}]})
        return httpx.Response(200, json={"data": _source(0)})

    client = make_client(
        fake_clock,
        transport=httpx.MockTransport(answer),
        pacing=Pacing(),  # the documented 60 updates an hour
        retry=RetryPolicy(attempts=9, deadline=600.0, jitter=random.Random(0)),
    )

    async def two_updates(c: ImgixClient) -> LiveSource:
        with pytest.raises(ApiError, match=r"^imgix API 429"):
            await c.update_source(f"{0:024x}", {"name": "first"})
        return await c.update_source(f"{0:024x}", {"name": "second"})

    run(client, two_updates)

    assert len(sent_at) == 10
    assert sent_at[9] - sent_at[8] >= 3000


class _StopOn429(httpx.AsyncBaseTransport):
    """The emulator, with a signal arriving as a 429 comes back (the run is stopping)."""

    def __init__(self, inner: httpx.AsyncBaseTransport, stop: Stop) -> None:
        self.inner = inner
        self.stop = stop

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if response.status_code == 429:
            self.stop.request("stopped by SIGINT")
        return response


def test_a_write_refused_with_429_is_not_sent_again_after_a_stop(fake_clock: FakeClock) -> None:
    # The budget is spent elsewhere; the server asks for an hour, within the deadline.
    store = make_store(fake_clock, limits=RateLimits(updates_per_hour=1))
    ids = seed(store, 2)
    store.update_source(ids[0], {"name": "spent by the dashboard"})
    stop = Stop()
    transport = _StopOn429(httpx.ASGITransport(app=create_app(store)), stop)
    client = make_client(fake_clock, transport=transport, retry=RetryPolicy(deadline=7200.0))
    client.pacer.stop = stop
    mark = len(store.request_log)

    with pytest.raises(NotStarted, match="stopped by SIGINT"):
        run(client, lambda c: c.update_source(ids[1], {"name": "renamed"}))

    # Refused, so it did nothing: the report says "not attempted", not "unknown".
    assert [entry.status for entry in store.request_log[mark:]] == [429]
    assert store.sources[ids[1]].name == "Source 1"


def test_a_write_retry_past_max_duration_is_refused_before_its_wait(
    fake_clock: FakeClock,
) -> None:
    # A 503 asks for 30s; --max-duration ends in 10s: the run stops now, not after 30s.
    sent: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request.method)
        return httpx.Response(503, headers={"Retry-After": "30"})

    client = make_client(
        fake_clock, transport=httpx.MockTransport(answer), retry=RetryPolicy(deadline=120.0)
    )
    client.pacer.stop = Stop(deadline=fake_clock.time() + 10.0, clock=fake_clock.time)

    with pytest.raises(ClientError, match="could not finish within --max-duration") as caught:
        run(client, lambda c: c.update_source("a" * 24, {"name": "renamed"}))

    assert "whether the earlier attempt was applied is unknown" in str(caught.value)
    assert sent == ["PATCH"]
    assert fake_clock.elapsed < 1.0


def test_a_write_retry_that_ends_within_max_duration_is_sent(fake_clock: FakeClock) -> None:
    # The retry finishes work already under way: it needs only its wait (2s) before
    # --max-duration (2.5s), not the time a new write would take on top of it.
    sent: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request.method)
        if len(sent) == 1:
            return httpx.Response(503, headers={"Retry-After": "2"})
        return httpx.Response(200, json={"data": _source(0)})

    client = make_client(
        fake_clock, transport=httpx.MockTransport(answer), retry=RetryPolicy(deadline=120.0)
    )
    client.pacer.stop = Stop(deadline=fake_clock.time() + 2.5, clock=fake_clock.time)

    updated = run(client, lambda c: c.update_source(f"{0:024x}", {"name": "renamed"}))

    assert updated.id == f"{0:024x}"
    assert sent == ["PATCH", "PATCH"]


def test_a_refused_write_that_could_not_finish_within_max_duration_is_not_started(
    fake_clock: FakeClock,
) -> None:
    # Refused (429) so far, the write starts anew when retried: its 2s wait and the time
    # a write takes do not fit before --max-duration (2.5s): not started, and no wait.
    sent: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request.method)
        if len(sent) == 1:
            return httpx.Response(429, headers={"Retry-After": "2"})
        return httpx.Response(200, json={"data": _source(0)})

    client = make_client(
        fake_clock, transport=httpx.MockTransport(answer), retry=RetryPolicy(deadline=120.0)
    )
    client.pacer.stop = Stop(deadline=fake_clock.time() + 2.5, clock=fake_clock.time)

    with pytest.raises(NotStarted, match="could not finish within --max-duration"):
        run(client, lambda c: c.update_source(f"{0:024x}", {"name": "renamed"}))

    assert sent == ["PATCH"]
    assert fake_clock.elapsed < 1.0


def test_a_read_is_retried_after_a_signal_and_its_failure_claims_nothing_written(
    fake_clock: FakeClock,
) -> None:
    # A stop holds back writes only: the 503 a read meets as the signal comes is retried.
    stop = Stop()
    answers = iter([httpx.Response(503)])

    def answer(request: httpx.Request) -> httpx.Response:
        stop.request("stopped by SIGINT")
        return next(answers, None) or httpx.Response(200, json={"data": _source(0)})

    client = make_client(fake_clock, transport=httpx.MockTransport(answer))
    client.pacer.stop = stop

    assert run(client, lambda c: c.get_source(f"{0:024x}")).id == f"{0:024x}"

    # A read that fails for good says so, and nothing of whether it was applied.
    failing = make_client(
        fake_clock,
        transport=httpx.MockTransport(lambda request: httpx.Response(503)),
        retry=RetryPolicy(attempts=2, jitter=random.Random(1)),
    )
    with pytest.raises(ApiError) as caught:
        run(failing, lambda c: c.get_source(f"{0:024x}"))
    assert str(caught.value) == (f"imgix API 503 Service Unavailable for source {0:024x}")


def test_a_wait_of_exactly_a_day_is_quoted_past_the_deadline(fake_clock: FakeClock) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, headers={"Retry-After": "86400"})

    client = make_client(fake_clock, transport=httpx.MockTransport(answer))

    with pytest.raises(DeadlineExceeded) as caught:
        run(client, lambda c: c.get_source(f"{0:024x}"))

    assert "after 1 attempts: waiting 86400.0s more would pass the 120s deadline." in str(
        caught.value
    )


def test_each_page_of_a_lost_creates_lookup_has_its_own_retries(fake_clock: FakeClock) -> None:
    # The create's answer is lost; the lookup's server ignores the filter and lists
    # three pages, each failing once: two attempts per page suffice, not two in all.
    failed: set[int] = set()

    def answer(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(504, text="<html>504 Gateway Time-out</html>")
        number = int(request.url.params["page[number]"])
        if number not in failed:
            failed.add(number)
            return httpx.Response(503)
        pagination = {"pageSize": 2, "totalPages": 3, "hasNextPage": number < 2}
        held = [_source(n) for n in range(2 * number, 2 * number + 2)]
        return httpx.Response(200, json={"data": held, "meta": {"pagination": pagination}})

    client = make_client(
        fake_clock,
        transport=httpx.MockTransport(answer),
        retry=RetryPolicy(attempts=2, deadline=120.0, jitter=random.Random(1)),
    )

    created = run(client, lambda c: c.create_source(_source(5)["attributes"]))

    assert created.id == f"{5:024x}"
    assert failed == {0, 1, 2}


def test_the_lookup_after_a_lost_create_keeps_within_the_creates_deadline(
    fake_clock: FakeClock,
) -> None:
    # The create's answer is lost 40 s in; its lookup meets 503s asking 40 s each: the
    # create's 100 s leave room for one wait, not for a deadline of the lookup's own.
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            504 if request.method == "POST" else 503, headers={"Retry-After": "40"}
        )

    transport = httpx.MockTransport(answer)
    sent: list[str] = []

    class Recording(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            sent.append(request.method)
            return await transport.handle_async_request(request)

    client = make_client(
        fake_clock,
        transport=Recording(),
        retry=RetryPolicy(attempts=8, deadline=100.0, jitter=random.Random(1)),
    )

    with pytest.raises(DeadlineExceeded, match="whether it was applied is unknown"):
        run(client, lambda c: c.create_source(_source(5)["attributes"]))

    assert sent == ["POST", "GET", "GET"]
    assert fake_clock.elapsed == pytest.approx(80.0)


def test_a_retry_after_that_ends_exactly_at_the_deadline_is_waited(fake_clock: FakeClock) -> None:
    answers = iter([httpx.Response(503, headers={"Retry-After": "10"})])

    def answer(request: httpx.Request) -> httpx.Response:
        return next(answers, None) or httpx.Response(200, json={"data": _source(0)})

    client = make_client(
        fake_clock,
        transport=httpx.MockTransport(answer),
        retry=RetryPolicy(deadline=10.0, jitter=random.Random(1)),
    )

    assert run(client, lambda c: c.get_source(f"{0:024x}")).id == f"{0:024x}"
    assert fake_clock.elapsed == pytest.approx(10.0)


def test_a_lost_create_is_not_taken_for_a_source_of_another_name_on_its_subdomain(
    fake_clock: FakeClock,
) -> None:
    # The create's answer is lost, then its subdomain is taken: the lookup finds it on a
    # source named otherwise (made meanwhile in the dashboard), which is not this create's.
    attributes = _source(5)["attributes"]
    theirs = _source(7)
    theirs["attributes"]["name"] = "Made in the dashboard"
    theirs["attributes"]["deployment"] = dict(attributes["deployment"])
    posts: list[int] = []

    def answer(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            posts.append(500 if not posts else 409)
            return httpx.Response(posts[-1], json={"errors": [{"title": "Taken"}]})
        data = [theirs] if request.url.params["page[number]"] == "0" else []
        return httpx.Response(200, json={"data": data})

    client = make_client(
        fake_clock,
        transport=httpx.MockTransport(answer),
        retry=RetryPolicy(jitter=random.Random(1)),
    )

    with pytest.raises(ApiError) as caught:
        run(client, lambda c: c.create_source(attributes))

    assert caught.value.status == 409
    assert posts == [500, 409]


def test_a_lost_create_is_found_with_its_hostnames_reordered_and_a_value_not_listed(
    fake_clock: FakeClock,
) -> None:
    # The listing shows the subdomains in its own order and leaves out a value sent
    # (`s3_prefix`): neither says the source is another's.
    attributes = s3_attributes(1)
    attributes["deployment"]["imgix_subdomains"] = ["acme-1", "acme-1b"]
    attributes["deployment"]["s3_prefix"] = "images/"
    listed = dict(attributes["deployment"])
    del listed["s3_secret_key"], listed["s3_prefix"]
    listed["imgix_subdomains"] = ["acme-1b", "acme-1"]
    mine = {"id": SOURCE_0, "type": "sources", "attributes": {**attributes, "deployment": listed}}
    posts: list[int] = []

    def answer(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            posts.append(502)
            return httpx.Response(502)
        data = [mine] if request.url.params["page[number]"] == "0" else []
        return httpx.Response(200, json={"data": data})

    client = make_client(
        fake_clock,
        transport=httpx.MockTransport(answer),
        retry=RetryPolicy(jitter=random.Random(1)),
    )

    created = run(client, lambda c: c.create_source(attributes))

    assert created.id == SOURCE_0
    assert posts == [502]


def test_a_create_without_a_subdomain_is_sent_and_its_refusal_reported(
    fake_clock: FakeClock,
) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, json={"errors": [{"title": "Bad Request"}]})

    client = make_client(fake_clock, transport=httpx.MockTransport(answer))
    attributes = s3_attributes(1)
    attributes["deployment"]["imgix_subdomains"] = []

    with pytest.raises(ApiError, match=r"^imgix API 400 Bad Request$"):
        run(client, lambda c: c.create_source(attributes))


def test_a_write_is_not_retried_after_a_signal(fake_clock: FakeClock) -> None:
    # A signal arrives as a 503 comes back: its retry, even a short one, would be a write
    # started after the signal, and CI kills the job soon after it.
    stop = Stop()
    sent: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request.method)
        stop.request("stopped by SIGTERM")
        return httpx.Response(503, headers={"Retry-After": "1"})

    client = make_client(fake_clock, transport=httpx.MockTransport(answer))
    client.pacer.stop = stop

    with pytest.raises(ClientError, match=r"Stopped retrying PATCH .*\(stopped by SIGTERM\)"):
        run(client, lambda c: c.update_source(f"{0:024x}", {"name": "renamed"}))

    assert sent == ["PATCH"]


class _SignalWhileWaiting:
    """The fake clock, with a signal arriving during the first wait."""

    def __init__(self, clock: FakeClock, stop: Stop) -> None:
        self.clock, self.stop = clock, stop
        self.time = clock.time

    async def sleep(self, seconds: float) -> None:
        self.stop.request("stopped by SIGTERM")
        await self.clock.sleep(seconds)


def test_a_write_refused_then_stopped_while_waiting_is_reported_not_started(
    fake_clock: FakeClock,
) -> None:
    # A 429 did nothing; the signal comes during its wait: not sent again, and reported
    # as not attempted (NotStarted), not as an outcome unknown.
    stop = Stop()
    sent: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request.method)
        return httpx.Response(429, headers={"Retry-After": "1"})

    client = make_client(
        _SignalWhileWaiting(fake_clock, stop),  # type: ignore[arg-type]
        transport=httpx.MockTransport(answer),
    )
    client.pacer.stop = stop

    with pytest.raises(NotStarted, match="stopped by SIGTERM"):
        run(client, lambda c: c.update_source(f"{0:024x}", {"name": "renamed"}))

    assert sent == ["PATCH"]


def test_a_write_after_a_signal_is_not_started(fake_clock: FakeClock) -> None:
    sent: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request.method)
        return httpx.Response(200, json={"data": _source(0)})

    client = make_client(fake_clock, transport=httpx.MockTransport(answer))
    client.pacer.stop.request("stopped by SIGTERM")

    with pytest.raises(NotStarted, match="stopped by SIGTERM"):
        run(client, lambda c: c.update_source(f"{0:024x}", {"name": "renamed"}))

    assert sent == []


def test_a_later_write_of_an_action_under_way_goes_out_after_a_signal(
    fake_clock: FakeClock,
) -> None:
    # The applier marks writes that finish an action already begun: a stop lets them
    # through, or the source is left half written.
    sent: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request.method)
        return httpx.Response(200, json={"data": _source(0)})

    client = make_client(fake_clock, transport=httpx.MockTransport(answer))
    client.pacer.stop.request("stopped by SIGTERM")
    token = continuing_action.set(True)
    try:
        run(client, lambda c: c.update_source(f"{0:024x}", {"name": "renamed"}))
    finally:
        continuing_action.reset(token)

    assert sent == ["PATCH"]


def test_a_request_that_starts_after_a_signal_has_the_grace_period_not_its_timeout(
    fake_clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # CI kills the job soon after its first signal: a read that starts then and stalls is
    # cut after the grace period (made short here), not after its whole timeout.
    monkeypatch.setattr("reconciler.client.STOP_GRACE", 0.05)

    async def stall(request: httpx.Request) -> httpx.Response:
        await asyncio.Event().wait()
        raise AssertionError("never answered")

    client = ImgixClient(
        api_key=EMULATOR_API_KEY,
        transport=httpx.MockTransport(stall),
        pacing=NO_PACING,
        retry=RetryPolicy(attempts=1),
        sleep=fake_clock.sleep,
        clock=fake_clock.time,
        # An hour: a request left its whole timeout would outlast the guard below.
        timeout=3600.0,
    )
    client.pacer.stop.request("stopped by SIGTERM")

    async def guarded(client: ImgixClient) -> LiveSource:
        return await asyncio.wait_for(client.get_source(f"{0:024x}"), 60.0)

    with pytest.raises(TransportError, match=r"within 0\.05s of being stopped by SIGTERM"):
        run(client, guarded)


def test_a_stop_requested_after_the_requests_ended_touches_none_of_them(
    fake_clock: FakeClock,
) -> None:
    # A signal may come once the event loop is gone (the CLI's handler stays installed):
    # finished requests must not still listen for it.
    stop = Stop()
    client = make_client(
        fake_clock, transport=httpx.MockTransport(lambda r: httpx.Response(200, json={"data": []}))
    )
    client.pacer.stop = stop

    assert run(client, lambda c: c.list_sources()) == []

    stop.request("stopped by SIGTERM")
    assert stop.reason == "stopped by SIGTERM"


def test_a_request_that_answers_within_the_grace_after_a_signal_is_read(
    fake_clock: FakeClock,
) -> None:
    # The grace is a deadline ahead of the signal, not one already past: an answer that
    # comes after a pause (the server's await) is still read.
    async def answer(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0)
        return httpx.Response(200, json={"data": _source(0)})

    client = make_client(
        fake_clock,
        transport=httpx.MockTransport(answer),
        retry=RetryPolicy(attempts=1, jitter=random.Random(1)),
    )
    client.pacer.stop.request("stopped by SIGTERM")

    assert run(client, lambda c: c.get_source(f"{0:024x}")).id == f"{0:024x}"


class _Oversleeping:
    """The fake clock on a loaded machine: every sleep lasts 10s longer than asked."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.time = clock.time

    async def sleep(self, seconds: float) -> None:
        await self.clock.sleep(seconds + 10.0 if seconds > 0 else seconds)


def test_a_write_retry_that_woke_past_max_duration_is_not_sent(fake_clock: FakeClock) -> None:
    # The 503's 1s wait fit before --max-duration (5s), but the sleep lasted 11s: the
    # retry is not sent, and the outcome of the first attempt is unknown.
    sent: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request.method)
        return httpx.Response(503, headers={"Retry-After": "1"})

    client = make_client(
        _Oversleeping(fake_clock),  # type: ignore[arg-type]
        transport=httpx.MockTransport(answer),
        retry=RetryPolicy(attempts=2, deadline=120.0),
    )
    client.pacer.stop = Stop(deadline=fake_clock.time() + 5.0, clock=fake_clock.time)

    with pytest.raises(ClientError, match=r"^Stopped retrying PATCH .*--max-duration"):
        run(client, lambda c: c.update_source(f"{0:024x}", {"name": "renamed"}))

    assert sent == ["PATCH"]


def test_the_retry_deadline_counts_from_the_first_attempt_not_its_answer(
    fake_clock: FakeClock,
) -> None:
    # The first answer takes 50s of the 60s deadline: a 20s Retry-After passes it.
    sent: list[str] = []

    async def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request.method)
        await fake_clock.sleep(50.0)
        return httpx.Response(503, headers={"Retry-After": "20"})

    client = make_client(
        fake_clock, transport=httpx.MockTransport(answer), retry=RetryPolicy(deadline=60.0)
    )

    with pytest.raises(DeadlineExceeded):
        run(client, lambda c: c.get_source(f"{0:024x}"))

    assert sent == ["GET"]


# --------------------------------------------------------------------------- echoed secrets


def _echoing(build: Callable[[str], httpx.Response]) -> httpx.MockTransport:
    """A server that answers a create with `build(the s3_secret_key it was sent)`."""

    def answer(request: httpx.Request) -> httpx.Response:
        import json

        sent = json.loads(request.content)["data"]["attributes"]["deployment"]["s3_secret_key"]
        return build(sent)

    return httpx.MockTransport(answer)


def _message_of(fake_clock: FakeClock, transport: httpx.MockTransport) -> str:
    client = make_client(fake_clock, transport=transport, retry=RetryPolicy(attempts=1))
    with pytest.raises(ClientError) as caught:
        run(client, lambda c: c.create_source(s3_attributes(1, secret=MIXED_SECRET)))
    return f"{caught.value}\n{caught.value!r}"


# Mixed case and a backslash: a form changed by lower(), repr() or a second escaping.
MIXED_SECRET = "Wj4lrX\\UtnFEMI/K7MDENG+bPxRfiCY"


def _leaked_part(text: str) -> str | None:
    """The longest run of 6+ characters of MIXED_SECRET, in any case, found in `text`."""
    lowered = text.lower()
    secret = MIXED_SECRET.lower()
    for size in range(len(secret), 5, -1):
        for start in range(len(secret) - size + 1):
            if secret[start : start + size] in lowered:
                return secret[start : start + size]
    return None


def test_a_request_id_echoing_a_secret_shows_no_part_of_it(fake_clock: FakeClock) -> None:
    # The id is clipped at 80 characters: clipped before redaction, the first part stayed.
    def build(sent: str) -> httpx.Response:
        errors = [{"id": "r" * 70 + sent, "status": "400", "title": "Bad", "detail": "no"}]
        return httpx.Response(400, json={"errors": errors})

    message = _message_of(fake_clock, _echoing(build))
    assert "request id" in message
    assert _leaked_part(message) is None, message


def test_a_request_id_header_echoing_a_secret_shows_no_part_of_it(fake_clock: FakeClock) -> None:
    def build(sent: str) -> httpx.Response:
        return httpx.Response(400, json={"errors": []}, headers={"X-Request-Id": "r" * 70 + sent})

    message = _message_of(fake_clock, _echoing(build))
    assert "request id" in message
    assert _leaked_part(message) is None, message


def test_a_content_type_echoing_a_secret_shows_no_part_of_it(fake_clock: FakeClock) -> None:
    # The media type is lowered and clipped before it is shown: no longer the secret's form.
    def build(sent: str) -> httpx.Response:
        return httpx.Response(201, content=b"{}", headers={"Content-Type": "text/" + sent})

    message = _message_of(fake_clock, _echoing(build))
    assert "not JSON" in message
    assert _leaked_part(message) is None, message


def test_a_long_content_type_is_shown_clipped_to_sixty_characters(fake_clock: FakeClock) -> None:
    media_type = "text/" + "abcdefghij" * 10

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"{}", headers={"Content-Type": media_type})

    client = make_client(fake_clock, transport=httpx.MockTransport(answer))

    with pytest.raises(ApiError) as caught:
        run(client, lambda c: c.get_source(f"{0:024x}"))

    assert str(caught.value).endswith(f"GET: the body is {media_type[:60]}, not JSON")


def test_a_content_encoding_echoing_a_secret_shows_no_part_of_it(fake_clock: FakeClock) -> None:
    # Escaped, clipped, quoted with repr() and escaped again: a form of its own.
    def build(sent: str) -> httpx.Response:
        async def body() -> Any:
            yield b"{}"

        headers = {"Content-Type": "application/json", "Content-Encoding": "x-" + sent}
        return httpx.Response(201, content=body(), headers=headers)

    message = _message_of(fake_clock, _echoing(build))
    assert "content encoding" in message
    assert _leaked_part(message) is None, message


def test_a_source_id_holding_a_secret_is_refused_without_any_part_of_it(
    fake_clock: FakeClock,
) -> None:
    # An id comes from the listing; `ascii()` and the clip at 40 would respell a secret.
    redact.register(MIXED_SECRET)
    client = make_client(fake_clock, transport=httpx.MockTransport(lambda r: httpx.Response(500)))
    with pytest.raises(ClientError, match="Refusing") as caught:
        run(client, lambda c: c.update_source("id-" + MIXED_SECRET + "é", {"name": "x"}))
    assert _leaked_part(str(caught.value)) is None, str(caught.value)


def test_an_error_detail_at_the_shown_length_is_whole_and_one_more_is_clipped(
    fake_clock: FakeClock,
) -> None:
    def message(detail: str) -> str:
        def answer(request: httpx.Request) -> httpx.Response:
            return httpx.Response(400, json={"errors": [{"title": "Bad", "detail": detail}]})

        client = make_client(fake_clock, transport=httpx.MockTransport(answer))
        with pytest.raises(ApiError) as caught:
            run(client, lambda c: c.list_sources())
        return str(caught.value)

    whole = "d" * MAX_SHOWN_DETAIL
    assert message(whole) == f"imgix API 400 Bad: {whole}"
    assert message(whole + "e") == f"imgix API 400 Bad: {whole}… (1 more characters)"


def test_an_api_error_clipped_inside_a_secret_shows_no_part_of_it() -> None:
    # ApiError is public: whoever builds one, a secret its detail holds is masked before
    # the clip, which would otherwise cut it where the mask no longer knows it.
    redact.register(MIXED_SECRET)
    detail = "x" * (MAX_SHOWN_DETAIL - 10) + MIXED_SECRET + "y" * 100

    message = str(ApiError(400, "Bad Request", detail, None))

    assert "more characters" in message
    assert _leaked_part(message) is None, message


def test_a_body_at_the_size_bound_is_read_and_one_byte_more_is_refused(
    fake_clock: FakeClock,
) -> None:
    document = json.dumps({"data": _source(0)}).encode()

    def get(body: bytes) -> LiveSource:
        def answer(request: httpx.Request) -> httpx.Response:
            return httpx.Response(200, content=body, headers={"Content-Type": "application/json"})

        client = make_client(
            fake_clock, transport=httpx.MockTransport(answer), max_response_bytes=len(document)
        )
        return run(client, lambda c: c.get_source(f"{0:024x}"))

    assert get(document).id == f"{0:024x}"
    with pytest.raises(LimitExceeded, match="larger than"):
        get(document + b" ")


def test_a_declared_length_past_the_bound_is_refused_before_its_body_is_read(
    fake_clock: FakeClock,
) -> None:
    chunks_read = 0

    async def body() -> Any:
        nonlocal chunks_read
        for _ in range(4):
            chunks_read += 1
            yield b"x" * 100

    def answer(request: httpx.Request) -> httpx.Response:
        headers = {"Content-Type": "application/json", "Content-Length": "400"}
        return httpx.Response(200, content=body(), headers=headers)

    client = make_client(fake_clock, transport=httpx.MockTransport(answer), max_response_bytes=399)

    with pytest.raises(LimitExceeded, match="larger than 399 bytes"):
        run(client, lambda c: c.get_source(f"{0:024x}"))

    assert chunks_read == 0


def test_a_body_streamed_at_its_declared_length_of_the_bound_is_read(fake_clock: FakeClock) -> None:
    document = json.dumps({"data": _source(0)}).encode()

    async def body() -> Any:
        yield document

    def answer(request: httpx.Request) -> httpx.Response:
        headers = {"Content-Type": "application/json", "Content-Length": str(len(document))}
        return httpx.Response(200, content=body(), headers=headers)

    client = make_client(
        fake_clock, transport=httpx.MockTransport(answer), max_response_bytes=len(document)
    )

    assert run(client, lambda c: c.get_source(f"{0:024x}")).id == f"{0:024x}"


def test_an_error_body_in_an_encoding_not_asked_for_names_the_errors_status(
    fake_clock: FakeClock,
) -> None:
    async def body() -> Any:
        yield b"\x00\x01"

    def answer(request: httpx.Request) -> httpx.Response:
        headers = {"Content-Type": "application/json", "Content-Encoding": "br"}
        return httpx.Response(404, content=body(), headers=headers)

    client = make_client(fake_clock, transport=httpx.MockTransport(answer))

    with pytest.raises(ApiError) as caught:
        run(client, lambda c: c.get_source(f"{0:024x}"))

    assert str(caught.value) == (
        "imgix API 404 Invalid Response: GET: the body cannot be decoded "
        "(content encoding 'br' was not asked for)"
    )


# What a proxy or a failing server may put in a 5xx's body: none of it can be decoded.
UNDECODABLE_BODIES = {
    "html from a proxy": ({"Content-Type": "text/html"}, b"<html><h1>502 Bad Gateway</h1>"),
    "broken gzip": (
        {"Content-Type": "application/json", "Content-Encoding": "gzip"},
        b"<html>not gzip at all</html>",
    ),
    "encoding not asked for": (
        {"Content-Type": "application/json", "Content-Encoding": "br"},
        b"\x00\x01",
    ),
    "past the size bound": ({"Content-Type": "text/html"}, b"x" * 5000),
}


def _failing_then(
    status: int, headers: dict[str, str], body: bytes, *, failures: int = 1
) -> tuple[httpx.MockTransport, list[str]]:
    """A server answering `failures` requests with `status` and an undecodable `body`
    (streamed: read by the client itself), then every other as the emulator's source 0
    would be; the methods it was asked, in order."""
    asked: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        asked.append(request.method)
        if len(asked) <= failures:

            async def chunks() -> Any:
                yield body

            return httpx.Response(status, content=chunks(), headers=headers)
        if "filter[deployment.imgix_subdomains]" in request.url.params:
            return httpx.Response(200, json={"data": []})  # the lookup after a lost create
        return httpx.Response(201 if request.method == "POST" else 200, json={"data": _source(0)})

    return httpx.MockTransport(answer), asked


@pytest.mark.parametrize("body", list(UNDECODABLE_BODIES))
@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_a_read_answered_5xx_is_retried_whatever_its_body(
    fake_clock: FakeClock, status: int, body: str
) -> None:
    transport, asked = _failing_then(status, *UNDECODABLE_BODIES[body])
    client = make_client(fake_clock, transport=transport, max_response_bytes=4096)

    assert run(client, lambda c: c.get_source(SOURCE_0)).id == SOURCE_0
    assert asked == ["GET", "GET"]


@pytest.mark.parametrize("body", list(UNDECODABLE_BODIES))
def test_writes_answered_5xx_undecodably_are_retried_as_any_5xx_would_be(
    fake_clock: FakeClock, body: str
) -> None:
    # A patch is sent again; a create first looks for what it may have made, then is sent
    # again: the body does not change what the status says.
    transport, asked = _failing_then(502, *UNDECODABLE_BODIES[body])
    client = make_client(fake_clock, transport=transport, max_response_bytes=4096)
    assert run(client, lambda c: c.update_source(SOURCE_0, {"name": "x"})).id == SOURCE_0
    assert asked == ["PATCH", "PATCH"]

    transport, asked = _failing_then(502, *UNDECODABLE_BODIES[body])
    client = make_client(fake_clock, transport=transport, max_response_bytes=4096)
    created = s3_attributes(1)
    created["deployment"]["imgix_subdomains"] = ["hostile-0"]  # the source answered
    assert run(client, lambda c: c.create_source(created)).id == SOURCE_0
    assert asked == ["POST", "GET", "POST"]


def test_a_5xx_undecodable_until_the_retries_run_out_names_its_status(
    fake_clock: FakeClock,
) -> None:
    transport, asked = _failing_then(503, *UNDECODABLE_BODIES["broken gzip"], failures=99)
    client = make_client(
        fake_clock, transport=transport, retry=RetryPolicy(attempts=3, jitter=random.Random(1))
    )

    with pytest.raises(ApiError) as caught:
        run(client, lambda c: c.get_source(SOURCE_0))

    assert str(caught.value) == f"imgix API 503 Service Unavailable for source {SOURCE_0}"
    assert asked == ["GET"] * 3


@pytest.mark.parametrize("encoding", ["identity", "x-gzip", "GZIP, identity", "deflate"])
def test_a_body_in_an_encoding_asked_for_or_none_is_read(
    fake_clock: FakeClock, encoding: str
) -> None:
    document = json.dumps({"data": _source(0)}).encode()
    coding = encoding.split(",")[0].lower()
    if coding in ("gzip", "x-gzip"):
        document = gzip.compress(document)
    elif coding == "deflate":
        document = zlib.compress(document)

    async def body() -> Any:
        yield document

    def answer(request: httpx.Request) -> httpx.Response:
        headers = {"Content-Type": "application/json", "Content-Encoding": encoding}
        return httpx.Response(200, content=body(), headers=headers)

    client = make_client(fake_clock, transport=httpx.MockTransport(answer))

    assert run(client, lambda c: c.get_source(f"{0:024x}")).id == f"{0:024x}"


def test_a_long_content_encoding_is_shown_clipped_to_sixty_characters(
    fake_clock: FakeClock,
) -> None:
    encoding = "x-" + "abcdefghij" * 10

    async def body() -> Any:
        yield b"{}"

    def answer(request: httpx.Request) -> httpx.Response:
        headers = {"Content-Type": "application/json", "Content-Encoding": encoding}
        return httpx.Response(200, content=body(), headers=headers)

    client = make_client(fake_clock, transport=httpx.MockTransport(answer))

    with pytest.raises(ApiError) as caught:
        run(client, lambda c: c.get_source(f"{0:024x}"))

    assert f"(content encoding '{encoding[:60]}' was not asked for)" in str(caught.value)


def test_a_compressed_body_is_never_inflated_past_its_bound_in_memory(
    fake_clock: FakeClock,
) -> None:
    # Half the bound in a first piece, then a bomb: what is inflated of the bomb is only
    # the room the bound leaves, not another whole bound on top of the first half.
    bound = 8 * 1024 * 1024
    deflater = zlib.compressobj(wbits=31)
    first = deflater.compress(b"a" * (bound // 2)) + deflater.flush(zlib.Z_SYNC_FLUSH)
    bomb = deflater.compress(bytes(8 * bound)) + deflater.flush()

    async def body() -> Any:
        yield first
        yield bomb

    def answer(request: httpx.Request) -> httpx.Response:
        headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
        return httpx.Response(200, content=body(), headers=headers)

    client = make_client(
        fake_clock, transport=httpx.MockTransport(answer), max_response_bytes=bound
    )

    tracemalloc.start()
    try:
        with pytest.raises(LimitExceeded, match="larger than 8,388,608 bytes once decoded"):
            run(client, lambda c: c.get_source(f"{0:024x}"))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    # The first half, the half left and zlib's buffer while inflating it (about 1.5
    # bounds): not the bomb inflated a bound past the first half (about 3.5).
    assert peak < 2 * bound


SOURCE_0 = f"{0:024x}"


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b'{"data": []}', "no source resource in the response"),
        (
            b'{"data": {"id": "%s", "attributes": [1]}}' % SOURCE_0.encode(),
            "the attributes of a source are not an object",
        ),
        (
            b'{"data": {"id": "%s", "attributes": {"date_deployed": 1e400}}}' % SOURCE_0.encode(),
            "a number is out of range",
        ),
        (
            b'{"data": {"id": "%s", "attributes": {"name": 5, "enabled": "no-such-word"}}}'
            % SOURCE_0.encode(),
            "name: Input should be a valid string; enabled: Input should be a valid boolean, "
            "unable to interpret input",
        ),
    ],
    ids=["no resource", "attributes not an object", "number out of range", "two fields"],
)
def test_a_source_the_answer_cannot_hold_is_an_invalid_response_about_that_source(
    fake_clock: FakeClock, body: bytes, problem: str
) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body, headers={"Content-Type": "application/json"})

    client = make_client(fake_clock, transport=httpx.MockTransport(answer))

    with pytest.raises(ApiError) as caught:
        run(client, lambda c: c.get_source(SOURCE_0))

    assert str(caught.value) == (
        f"imgix API 200 Invalid Response for source {SOURCE_0}: GET: {problem}"
    )
    assert caught.value.source_id == SOURCE_0


def test_a_refused_certificate_says_what_to_check_on_the_runner(fake_clock: FakeClock) -> None:
    # A runner's clock far off, or a network whose proxy inspects TLS with its own CA, are
    # what turns a good certificate into a refused one: the error names both.
    sent: list[httpx.Request] = []

    def refuse(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        cause = ssl.SSLCertVerificationError(
            1, "certificate verify failed: certificate has expired"
        )
        raise httpx.ConnectError(str(cause), request=request) from cause

    client = make_client(fake_clock, transport=httpx.MockTransport(refuse))
    with pytest.raises(TransportError) as caught:
        run(client, lambda c: c.list_sources())

    assert len(sent) == 1  # not retried: every attempt is refused alike
    message = str(caught.value)
    assert "certificate has expired" in message
    assert message.endswith(CERTIFICATE_REFUSED_HINT)
    assert "clock" in CERTIFICATE_REFUSED_HINT and "SSL_CERT_FILE" in CERTIFICATE_REFUSED_HINT


def test_a_connection_refused_gets_no_certificate_hint(fake_clock: FakeClock) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    client = make_client(
        fake_clock, transport=httpx.MockTransport(refuse), retry=RetryPolicy(attempts=1)
    )
    with pytest.raises(TransportError) as caught:
        run(client, lambda c: c.list_sources())

    assert "Connection refused" in str(caught.value)
    assert CERTIFICATE_REFUSED_HINT not in str(caught.value)
