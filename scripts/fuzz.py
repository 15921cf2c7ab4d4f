#!/usr/bin/env python3
"""Coverage-guided fuzzing (atheris) of every parser of untrusted input.

    scripts/fuzz.py TARGET [-max_total_time=N] [libFuzzer flags] [CORPUS_DIR ...]
    scripts/fuzz.py seed TARGET DIR      # write TARGET's seed corpus into DIR
    scripts/fuzz.py list                 # the targets

Each target feeds bytes to one parser and asserts its contract: it succeeds, or raises
only its documented error type; anything else (another exception, a failed assertion,
a hang past `-timeout`) is a finding. Findings are minimised with libFuzzer's
`-minimize_crash=1` and saved under `tests/fixtures/fuzz/TARGET/`, which
`tests/test_fuzz_corpus.py` replays through these same functions without atheris.

This file is the one home of the targets: the test imports it by path, so atheris is
imported only when a campaign runs (`pip install -e '.[fuzz]'`).
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import math
import os
import random
import re
import sys
import tempfile
import zlib
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx

REPOSITORY = Path(__file__).resolve().parent.parent
if str(REPOSITORY) not in sys.path:
    sys.path.insert(0, str(REPOSITORY))


def _instrumented() -> contextlib.AbstractContextManager[object]:
    """A campaign's coverage: of the package's own code, instrumented as it is imported."""
    if __name__ != "__main__" or sys.argv[1:2] in ([], ["seed"], ["list"]):
        return contextlib.nullcontext()
    import atheris  # the `fuzz` extra: only a campaign needs it

    instrumentation: contextlib.AbstractContextManager[object]
    instrumentation = atheris.instrument_imports(include=["reconciler"])
    return instrumentation


with _instrumented():
    from reconciler import untrusted
    from reconciler.client import (
        BUDGET_WAITS,
        LISTING_REREADS,
        ClientError,
        ImgixClient,
        Pacing,
        RetryPolicy,
    )
    from reconciler.errors import ApplyRefused, PlanFileError
    from reconciler.live import LiveSource
    from reconciler.loader import LoadError, load
    from reconciler.marker import compose_annotation, parse_annotation
    from reconciler.pacing import LONGEST_BUDGET_WAIT
    from reconciler.plan import Plan, compute_digest
    from reconciler.reconcile import (
        Connection,
        authenticate_plan,
        read_plan_document,
        read_plan_file,
    )

FIXTURES = REPOSITORY / "tests" / "fixtures"
# Inputs a campaign found a bug with, and seeds worth keeping: tests/test_fuzz_corpus.py.
FINDINGS = FIXTURES / "fuzz"

# Values no error may show: one read through `{env:}`, one through `{file:}`.
ENV_CANARY = "fuzz-env-canary-7f3a9c"
FILE_CANARY = "fuzz-file-canary-2b81e4"
ENVIRON = {"FUZZ_SECRET": ENV_CANARY, "FUZZ_SECRET_2": ENV_CANARY + "-two"}
API_URL = "https://api.imgix.com"
API_KEY = "ak_" + "0123456789abcdef" * 4
UNPACED = Pacing(per_second=None, creates_per_hour=None, updates_per_hour=None)
PLAN_ENVIRON = {"IMGIX_RECONCILER_FINGERPRINT_KEY": "fuzz-fingerprint-key-4c1d9e7a20b35f68"}
# What `reconciler.untrusted` promises never to leave in its output.
UNSAFE_CHARS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")
COMMAND_START = re.compile(r"^\s*::")


class _Scratch:
    """A folder made once per process: the desired-state file, a secret file beside it."""

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = folder or Path(tempfile.mkdtemp(prefix="imgix-reconciler-fuzz-"))
        (self.folder / "secret.txt").write_text(FILE_CANARY)
        self.desired = self.folder / "sources.yaml"
        self.plan = self.folder / "plan.json"


_scratch: _Scratch | None = None


def scratch(folder: Path | None = None) -> _Scratch:
    """The scratch folder; `folder` replaces it (a test's temporary directory)."""
    global _scratch
    if _scratch is None or folder is not None:
        _scratch = _Scratch(folder)
    return _scratch


def text_of(data: bytes) -> str:
    """Bytes as any text, lone surrogates included: the first byte picks the decoding."""
    if not data:
        return ""
    if data[0] & 1:
        body = data[1:]
        return body[: len(body) // 2 * 2].decode("utf-16-le", "surrogatepass")
    return data[1:].decode("utf-8", "replace")


# --------------------------------------------------------------------------- targets


def desired_state(data: bytes) -> None:
    """The desired-state file as `load` reads it: loaded, or `LoadError` naming no secret."""
    files = scratch()
    files.desired.write_bytes(data)
    for resolve in (True, False):
        try:
            load([files.desired], resolve=resolve, environ=ENVIRON)
        except LoadError as error:
            assert error.errors, "a LoadError without errors"
            shown = "\n".join([str(error), *(str(located) for located in error.errors)])
            for located in error.errors:
                assert located.line >= 1 and located.column >= 1, located
        else:
            shown = ""
        for canary in (ENV_CANARY, FILE_CANARY):
            if canary.encode() not in data:
                assert canary not in shown, f"a referenced value in an error: {shown!r}"


class _Streamed(httpx.AsyncByteStream):
    """A body that arrives as over the network: in two chunks, read by the client itself."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    async def __aiter__(self) -> AsyncIterator[bytes]:
        half = len(self._body) // 2
        yield self._body[:half]
        yield self._body[half:]


def _answer_of(data: bytes) -> tuple[int, dict[str, str], bytes]:
    """The status and headers the first two bytes pick, and the body the rest is."""
    statuses = (200, 200, 200, 201, 400, 401, 403, 404, 409, 422, 418, 499, 500)
    types = (
        "application/vnd.api+json",
        "application/json",
        "application/problem+json; charset=utf-8",
        "text/html",
        "",
    )
    if len(data) < 2:
        return 200, {"content-type": types[0]}, data
    status, choice, body = statuses[data[0] % len(statuses)], data[1], data[2:]
    headers = {"content-type": types[choice % len(types)]} if choice % len(types) < 4 else {}
    encoding = ("", "gzip", "deflate", "br")[choice // 5 % 4]
    if encoding:
        headers["content-encoding"] = encoding
    if choice // 20 % 2:
        headers["content-length"] = str(len(body))
    return status, headers, body


def api_response(data: bytes) -> None:
    """A page of the list and a source's answer, as the client reads and decodes them.

    The first two bytes pick the status, content type, encoding and length header, the
    rest is the body of every answer: `LiveSource`s, or a `ClientError` whose message is
    one escaped line.
    """
    status, headers, body = _answer_of(data)

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, headers=headers, stream=_Streamed(body))

    async def run() -> None:
        async with ImgixClient(
            api_key=API_KEY,
            transport=httpx.MockTransport(answer),
            pacing=Pacing(per_second=None, creates_per_hour=None, updates_per_hour=None),
            retry=RetryPolicy(attempts=1),
            max_pages=4,
            max_sources=1000,
            on_notice=lambda message: None,
        ) as client:
            for call in (client.list_sources, lambda: client.get_source("0" * 24)):
                try:
                    result = await call()
                except ClientError as error:
                    message = str(error)
                    assert not UNSAFE_CHARS.search(message), f"unescaped: {message!r}"
                    assert not COMMAND_START.match(message), message
                    assert API_KEY not in message and API_KEY not in repr(error)
                else:
                    for live in result if isinstance(result, list) else [result]:
                        _read_live(live)

    asyncio.run(run())


class _Clock:
    """Time that moves only when the client sleeps: a campaign never waits, and counts."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0
        self.slept = 0.0
        self.longest = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        # Recorded, not asserted here: the pacer sleeps in a task of its own, whose
        # exception nobody reads.
        self.longest = max(self.longest, seconds) if seconds == seconds else math.inf
        self.now += seconds
        self.slept += seconds
        await asyncio.sleep(0)


# `headers`: the status lines and header values the first bytes choose among.
STATUS_LINES = (
    b"HTTP/1.1 200 OK",
    b"HTTP/1.1 429 Too Many Requests",
    b"HTTP/1.1 503 Service Unavailable",
    b"HTTP/1.1 500 ",
    b"HTTP/1.1 200 \xff\x1b[31m::error::",
    b"HTTP/1.1 204 No Content",
    b"HTTP/1.1 304 Not Modified",
    b"HTTP/1.1 301 Moved",
    b"HTTP/1.1 401 Unauthorized",
    b"HTTP/1.1 999 Nine",
    b"HTTP/1.0 200 OK",
    b"HTTP/1.1 103 Early Hints\r\n\r\nHTTP/1.1 200 OK",
)
RETRY_AFTERS = (
    None,
    b"0",
    b"1",
    b"31536000",  # a year
    b"-5",
    b"1e400",
    b"nan",
    b"inf",
    b"  7  ",
    b"Fri, 31 Dec 9999 23:59:59 GMT",
    b"Mon, 01 Jan 1990 00:00:00 GMT",
    b"Sun, 06 Nov 1994 08:49:37",
    b"1, 2",
    b"\xd9\xa1\xd9\xa2",  # Arabic-Indic digits, which float() reads
)
CONTENT_TYPES = (
    b"application/vnd.api+json",
    b"application/json; charset=utf-16",
    b"text/html",
    None,
    b"application/vnd.api+json, text/html",
    b"\xff/json",
)
CONTENT_ENCODINGS = (
    None,
    b"gzip",
    b"deflate",
    b"br",
    b"gzip, gzip",
    b"identity",
    b"zstd",
    b"x-gzip",
)
# Pagination that lies: more pages than it holds, fewer records than listed, none at all.
PAGINATIONS: tuple[object, ...] = (
    {"totalRecords": 1, "totalPages": 1},
    {"totalRecords": 10**30, "totalPages": 10**30, "hasNextPage": True},
    {"totalRecords": 0, "totalPages": 0, "hasNextPage": False},
    {"totalRecords": -1, "totalPages": "x", "hasNextPage": "yes"},
    {"totalRecords": 1e400, "totalPages": 2, "pageSize": 0},
    None,
)


def _header_answer(data: bytes) -> bytes:
    """An HTTP/1.1 answer as bytes on the wire: the first six bytes choose its parts."""
    picks, rest = (data + bytes(6))[:6], data[6:]
    status = STATUS_LINES[picks[0] % len(STATUS_LINES)]
    headers: list[tuple[bytes, bytes]] = []
    retry = RETRY_AFTERS[picks[1] % len(RETRY_AFTERS)]
    if picks[1] // 16 % 2 and rest:  # a value of the input's own, whatever it holds
        retry = rest[: picks[1] // 32 + 1]
    if retry is not None:
        headers.append((b"Retry-After", retry))
    if picks[1] // 64 % 2:
        headers.append((b"Retry-After", b"3"))  # stacked
    content_type = CONTENT_TYPES[picks[2] % len(CONTENT_TYPES)]
    if content_type is not None:
        headers.append((b"Content-Type", content_type))
    pagination = PAGINATIONS[picks[4] % len(PAGINATIONS)]
    resource = {"id": "0" * 24, "type": "sources", "attributes": {"name": "x"}}
    document: dict[str, object] = {"data": [resource] if picks[4] // 8 % 2 else []}
    if pagination is not None:
        document["meta"] = {"pagination": pagination}
    body = json.dumps(document).encode() if picks[5] % 2 == 0 else rest
    encoding = CONTENT_ENCODINGS[picks[3] % len(CONTENT_ENCODINGS)]
    if encoding is not None:
        headers.append((b"Content-Encoding", encoding))
        if picks[3] // 8 % 2 == 0:  # encoded as said, else a lie
            for coding in encoding.split(b","):
                if coding.strip() in (b"gzip", b"x-gzip"):
                    body = gzip.compress(body, mtime=0)
                elif coding.strip() == b"deflate":
                    body = zlib.compress(body)
    lengths = (len(body), len(body) + 10, max(0, len(body) - 3), None, -1, 10**20, "abc")
    length = lengths[picks[5] // 2 % len(lengths)]
    if length is not None:
        headers.append((b"Content-Length", str(length).encode()))
    if picks[5] // 16 % 2 and length is not None:
        headers.append((b"Content-Length", b"0"))  # contradicting itself
    head = b"".join(b"\r\n" + name + b": " + value for name, value in headers)
    return status + head + b"\r\n\r\n" + body


def headers(data: bytes) -> None:
    """A hostile server's status line and headers on a real socket, through the client.

    `Retry-After` in every form, absurd or contradictory `Content-Length`, unknown or
    stacked `Content-Encoding`, a wrong `Content-Type`, pagination that lies: a listing,
    a read and a write end in `LiveSource`s or a `ClientError` on one escaped line, and
    the waits the client asks of its (injected) clock stay within what it promises: each
    call's retries within `RetryPolicy.deadline`, a write's waits for an hourly budget
    at most BUDGET_WAITS of LONGEST_BUDGET_WAIT.
    """
    answer = _header_answer(data)
    policy = RetryPolicy(attempts=4, deadline=120.0, jitter=random.Random(0))

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # One answer a connection, then the close: a body shorter than its stated length
        # ends there, instead of holding the client to its timeout (real seconds).
        # Cancelled when the campaign's server closes: not an error of the client's.
        with contextlib.suppress(OSError, asyncio.IncompleteReadError, asyncio.CancelledError):
            request = await reader.readuntil(b"\r\n\r\n")
            sent = re.search(rb"(?i)content-length: *(\d+)", request)
            if sent:
                await reader.readexactly(int(sent.group(1)))
            writer.write(answer)
            await writer.drain()
        writer.close()

    async def run() -> None:
        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        calls: list[tuple[str, float]] = [
            ("list", policy.deadline * (LISTING_REREADS + 1)),
            ("get", policy.deadline),
            # A write may also wait for hourly budgets (README: 429s with no wait said, or
            # asked up to about an hour): BUDGET_WAITS windows at most, each round of
            # retries around them within the deadline. Never a year's.
            (
                "update",
                BUDGET_WAITS * LONGEST_BUDGET_WAIT + (BUDGET_WAITS + 1) * policy.deadline,
            ),
        ]
        try:
            for call, bound in calls:
                clock = _Clock()
                async with ImgixClient(
                    api_key=API_KEY,
                    base_url=f"http://127.0.0.1:{port}",
                    pacing=Pacing() if call == "update" else UNPACED,
                    retry=policy,
                    clock=clock,
                    sleep=clock.sleep,
                    timeout=5.0,
                    max_response_bytes=64 * 1024,
                    max_pages=8,
                    max_sources=100,
                    on_notice=lambda message: None,
                ) as client:
                    try:
                        if call == "list":
                            for live in await client.list_sources():
                                _read_live(live)
                        elif call == "get":
                            _read_live(await client.get_source("0" * 24))
                        else:
                            _read_live(await client.update_source("0" * 24, {"name": "y"}))
                    except ClientError as error:
                        message = str(error)
                        assert not UNSAFE_CHARS.search(message), f"unescaped: {message!r}"
                        assert not COMMAND_START.match(message), message
                        assert API_KEY not in message and API_KEY not in repr(error)
                longest = clock.longest
                assert 0 <= longest <= LONGEST_BUDGET_WAIT, f"asked to sleep {longest!r}"
                waited = f"{call} waited {clock.slept:.0f}s (bound {bound:.0f}s)"
                assert clock.slept <= bound, waited
        finally:
            server.close()
            await server.wait_closed()

    asyncio.run(run())


def _read_live(live: LiveSource) -> None:
    """What the planner reads of a live source: none of it may raise."""
    assert isinstance(live.id, str)
    _ = live.type, live.hostnames, live.annotation
    assert live.fingerprint().startswith("sha256:")


def live_source(data: bytes) -> None:
    """One listed source as `LiveSource` reads it: built and read, or pydantic's refusal.

    The client turns ValidationError, TypeError and ArithmeticError into an invalid
    response (`ImgixClient._live`, `_read_sources`); nothing else may escape.
    """
    try:
        resource = json.loads(data)
    except (ValueError, RecursionError):
        return
    if not isinstance(resource, dict) or not isinstance(resource.get("id"), str):
        return
    if not isinstance(resource.get("attributes") or {}, dict):
        return
    from pydantic import ValidationError

    try:
        live = LiveSource.from_resource(resource)
    except (ValidationError, ArithmeticError):
        return
    _read_live(live)


def annotation(data: bytes) -> None:
    """A live annotation split into text and marker: never raises, and round-trips."""
    text = text_of(data)
    parsed = parse_annotation(text)
    if parsed.marker is None:
        assert parsed.text == (text or None)
        return
    rendered = parsed.marker.render()
    assert parse_annotation(rendered) == (None, parsed.marker), rendered
    again = parse_annotation(compose_annotation(parsed.text, parsed.marker))
    assert again == parsed, (again, parsed)


def plan_file(data: bytes) -> None:
    """A saved plan as `apply PLANFILE` reads it: a Plan, or `PlanFileError` and no traceback.

    A document that parses is then authenticated with the run's key, as `plan --out` would,
    and must read back as the same plan.
    """
    files = scratch()
    files.plan.write_bytes(data)
    connection = Connection(API_URL, API_KEY)
    for read in (
        lambda: read_plan_document(files.plan),
        lambda: read_plan_file(files.plan, connection, PLAN_ENVIRON),
    ):
        try:
            read()
        except (PlanFileError, ApplyRefused) as error:
            assert not UNSAFE_CHARS.search(str(error)), str(error)
    try:
        parsed = Plan.model_validate_json(data)
    except (ValueError, RecursionError):
        return
    digested = parsed.model_copy(
        update={"digest": compute_digest(parsed.actions, API_URL), "api_url": API_URL}
    )
    saved = authenticate_plan(digested, connection, PLAN_ENVIRON)
    files.plan.write_text(saved.to_json())
    assert read_plan_file(files.plan, connection, PLAN_ENVIRON).to_json() == saved.to_json()


def neutraliser(data: bytes) -> None:
    """`reconciler.untrusted`: no control character, no workflow command, no ping survives."""
    text = text_of(data)
    for shown in (
        untrusted.escaped(text),
        untrusted.one_line(text),
        untrusted.quoted(text),
        untrusted.markdown_text(text),
        untrusted.json_shown(text),
        untrusted.json_shown({text: [text]}),
    ):
        assert not UNSAFE_CHARS.search(shown), shown
        assert not COMMAND_START.match(shown), shown
    assert json.loads(untrusted.quoted(text)) == text
    assert json.loads(untrusted.json_shown({text: [text]})) == {text: [text]}
    markdown = untrusted.markdown_text(text)
    assert not re.search(r"[<>]", markdown), markdown
    unlinked = re.sub(r"[@#]&#8203;|&#\d+;|&(?:amp|lt|gt);", "", markdown)
    assert not re.search("[@#]", unlinked), markdown


TARGETS: dict[str, Callable[[bytes], None]] = {
    "desired_state": desired_state,
    "api_response": api_response,
    "live_source": live_source,
    "annotation": annotation,
    "plan_file": plan_file,
    "neutraliser": neutraliser,
    "headers": headers,
}


# --------------------------------------------------------------------------- seeds


def seeds(target: str) -> Iterator[bytes]:
    """The starting corpus of `target`: the suite's fixtures and the emulator's outputs."""
    live = json.loads((REPOSITORY / "reconciler/emulator/live-state.json").read_text())
    resources = [
        {"id": s["id"], "type": "sources", "attributes": {k: v for k, v in s.items() if k != "id"}}
        for s in live["sources"]
    ]
    if target == "desired_state":
        # Not the billion laughs: its 200,000 alias values take seconds once instrumented.
        files = [*FIXTURES.glob("*.yaml"), REPOSITORY / "examples/sources.yaml"]
        for path in sorted(files):
            if "laughs" not in path.name:
                yield path.read_bytes()
        yield (
            b"version: 1\nsources:\n  - name: Ref\n    deployment:\n      type: s3\n"
            b"      s3_bucket: b\n      s3_access_key: {env: FUZZ_SECRET}\n"
            b"      s3_secret_key: {file: secret.txt}\n      imgix_subdomains: [fuzz-ref]\n"
        )
    elif target in ("api_response", "live_source"):
        page = {
            "data": resources,
            "meta": {"pagination": {"totalRecords": len(resources), "totalPages": 1}},
        }
        if target == "api_response":
            yield b"\x00\x00" + json.dumps(page).encode()
            yield b"\x00\x05" + gzip.compress(json.dumps(page).encode())  # gzip, streamed
            yield b"\x00\x00" + json.dumps({"data": resources[0]}).encode()
            error = {"errors": [{"title": "Bad", "detail": "no\n::error::x", "id": "r1"}]}
            yield b"\x04\x00" + json.dumps(error).encode()
            yield b"\x05\x01" + json.dumps(error).encode()
        else:
            for resource in resources:
                yield json.dumps(resource).encode()
    elif target == "annotation":
        yield b"\x00Managed in git [imgix-reconciler v1 fp.s3_secret_key=3f0c owner.name=a/b]"
        yield b"\x00[imgix-reconciler v1 enc.password=9a pending.enabled=false]\n"
        yield b"\x00text [imgix-reconciler v1"
    elif target == "plan_file":
        for name in ("plan.json", "plan.saved.json"):
            yield (REPOSITORY / "tests/golden" / name).read_bytes()
    elif target == "headers":
        # Status, Retry-After, Content-Type, Content-Encoding, pagination, body and length.
        for picks in (
            b"\x00\x00\x00\x00\x08\x00",  # a page of one source, as it should be
            b"\x01\x03\x00\x00\x00\x00",  # 429, Retry-After: a year
            b"\x02\x09\x00\x01\x00\x00",  # 503, a date in 9999, deflate
            b"\x01\x05\x00\x00\x00\x00",  # 429, Retry-After: 1e400
            b"\x02\x0a\x00\x00\x00\x00",  # 503, a date in the past
            b"\x00\x00\x00\x0b\x09\x02",  # gzip said but not done, too long a length
            b"\x00\x00\x00\x04\x01\x00",  # gzip twice; pagination of 10**30 pages
            b"\x00\x00\x02\x06\x03\x00",  # text/html, zstd, nonsense pagination
            b"\x00\x00\x00\x00\x04\x08",  # a length of -1; 1e400 records
            b"\x04\x00\x00\x00\x00\x10",  # a reason phrase of escapes; two lengths
            b"\x0b\x0d\x00\x00\x00\x00",  # 103 then 200; Arabic-Indic digits
            b"\x01\x50\x00\x00\x00\x01",  # 429 with a Retry-After of the body's bytes
        ):
            yield picks + b"1e9\r\nX-Injected: 1 \x00\xff"
    elif target == "neutraliser":
        yield "\x00::add-mask::x\n\x1b[31m@user #12 https://e.x <b>\u202e".encode()
        yield b"\x01" + "  ::error::\u2028x".encode("utf-16-le")


# Words each target's input is made of, for libFuzzer's `-dict`: byte mutations alone
# seldom spell a key of the format.
WORDS: dict[str, list[str]] = {
    "desired_state": [
        "version: 1\n",
        "sources:\n",
        "  - name: ",
        "    deployment:\n",
        "      type: ",
        "s3",
        "gcs",
        "azure",
        "webfolder",
        "webproxy",
        "imgix_subdomains",
        "custom_domains",
        "s3_bucket",
        "s3_access_key",
        "s3_secret_key",
        "password",
        "default_params",
        "cache_ttl_value",
        "annotation",
        "enabled",
        "owner: ",
        "safety:",
        "id: ",
        "{env: FUZZ_SECRET}",
        "{file: secret.txt}",
        "{file: ../x}",
        "{env: ",
        "{file: ",
        "&a ",
        "*a",
        "<<: ",
        "!!str ",
        "!!binary ",
        "? ",
        "---\n",
        "...\n",
        "[",
        "]",
        "{",
        "}",
        "|\n",
        ">-\n",
        "'",
        '"',
        "\\u0000",
        '"\\UFFFFFFFF"',
        "\\x",
        "\t",
        "1e400",
        "0x",
        "~",
        ".inf",
    ],
    "annotation": [
        "[imgix-reconciler v1",
        "]",
        " fp.",
        " enc.",
        " owner.name=",
        " pending.enabled=false",
        "=",
        "\n",
        " ",
    ],
    "live_source": [
        '"id"',
        '"attributes"',
        '"deployment"',
        '"name"',
        '"enabled"',
        '"date_deployed"',
        '"deployment_status"',
        '"imgix_subdomains"',
        '"custom_domains"',
        '"annotation"',
        '"type"',
        "null",
        "true",
        "1e400",
        "NaN",
        "-Infinity",
        "[",
        "]",
        "{",
        "}",
        ":",
        ",",
    ],
    "plan_file": [
        '"format_version"',
        '"digest"',
        '"mac"',
        '"summary"',
        '"actions"',
        '"api_url"',
        '"changes"',
        '"writes"',
        '"marker"',
        '"kind"',
        '"source_id"',
        '"path"',
        '"before"',
        '"after"',
        '"live_fingerprint"',
        '"deployment"',
        '"annotation"',
        "null",
        "1e400",
        "[",
        "]",
        "{",
        "}",
    ],
}
WORDS["api_response"] = [
    *WORDS["live_source"],
    '"data"',
    '"meta"',
    '"pagination"',
    '"totalRecords"',
    '"totalPages"',
    '"hasNextPage"',
    '"pageSize"',
    '"errors"',
    '"title"',
    '"detail"',
]


def _dictionary(target: str) -> str:
    """A libFuzzer dictionary file of `target`'s words."""
    path = Path(tempfile.mkstemp(prefix=f"fuzz-{target}-", suffix=".dict")[1])

    def spelled(word: str) -> str:  # libFuzzer's escapes: \\, \" and \xNN only
        return "".join(
            chr(byte) if 0x20 <= byte < 0x7F and byte not in b'"\\' else f"\\x{byte:02x}"
            for byte in word.encode()
        )

    path.write_text("".join(f'"{spelled(word)}"\n' for word in WORDS[target]))
    return str(path)


# --------------------------------------------------------------------------- main


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in (*TARGETS, "seed", "list"):
        print(__doc__.strip(), "\ntargets:", ", ".join(TARGETS), file=sys.stderr)
        return 2
    if argv[0] == "list":
        print("\n".join(TARGETS))
        return 0
    if argv[0] == "seed":
        target, folder = argv[1], Path(argv[2])
        folder.mkdir(parents=True, exist_ok=True)
        for number, seed in enumerate(seeds(target)):
            (folder / f"seed-{number:03d}").write_bytes(seed)
        return 0
    import atheris

    target = TARGETS[argv[0]]
    # A hang is a finding too: libFuzzer's default timeout is 20 minutes.
    flags = [arg for arg in argv[1:] if arg.startswith("-")]
    if not any(flag.startswith("-timeout=") for flag in flags):
        flags.append("-timeout=10")
    if argv[0] in WORDS and not any(flag.startswith("-dict=") for flag in flags):
        flags.append(f"-dict={_dictionary(argv[0])}")
    atheris.Setup([sys.argv[0], *flags, *(a for a in argv[1:] if not a.startswith("-"))], target)
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    os.environ.setdefault("NO_COLOR", "1")
    sys.exit(main(sys.argv[1:]))
