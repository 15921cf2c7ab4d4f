"""A hostile or broken API (issue 8): every attack ends in one clear line and exit 1.

The server is `tests/hostile_server.py` under uvicorn on 127.0.0.1. Each attack runs the
CLI as a subprocess (what a CI job would see: exit code, stdout, stderr, the child's peak
memory), and the client directly where its bounds are worth showing with small values.
No output line may start with `::`, the start GitHub reads as a workflow command.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import math
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import FakeClock
from console import child_env, invoke, output_of, run_cli
from hostile_server import (
    FORGED,
    HOSTILE_TEXT,
    LOOKUP_IDS,
    HostileApi,
    Lookup,
    loopback_listener,
    serving,
)
from ruamel.yaml import YAML

from reconciler.client import (
    LIST_CONCURRENCY,
    MAX_PAGES,
    MAX_RESPONSE_BYTES,
    MAX_SHOWN_DETAIL,
    MAX_SOURCES,
    ApiError,
    ClientError,
    DeadlineExceeded,
    ImgixClient,
    LimitExceeded,
    Pacing,
    RetryPolicy,
    TransportError,
)
from reconciler.emulator import EMULATOR_API_KEY

FIXTURES = Path(__file__).parent / "fixtures"
DESIRED = FIXTURES / "valid_minimal.yaml"
UNPACED = Pacing(per_second=None, creates_per_hour=None, updates_per_hour=None)
# What a plan may use beyond an ordinary one. The attacks this bounds grew the client
# to 1 GB (`totalPages: 1000000000`) and 2 GB (a gzip bomb of 1 MiB).
MEMORY_SLACK = 64 * 1024 * 1024
# Fail fast where a test provokes a timeout: one attempt of half a second.
FAST_FAIL = {
    "IMGIX_RECONCILER_REQUEST_TIMEOUT": "0.5",
    "IMGIX_RECONCILER_RETRY_DEADLINE": "0",
}


@pytest.fixture(scope="module")
def _served() -> Iterator[tuple[HostileApi, str]]:
    # One uvicorn for the module; each test resets the app to its defaults.
    api = HostileApi()
    with serving(api) as url:
        yield api, url


@pytest.fixture
def hostile(_served: tuple[HostileApi, str]) -> tuple[HostileApi, str]:
    """The hostile server, reset (`attack="ok"`, nothing received), and its URL."""
    api, url = _served
    for spec in dataclasses.fields(HostileApi):
        setattr(api, spec.name, getattr(HostileApi(), spec.name))
    return api, url


def run_measured(
    *args: str | Path, env: dict[str, str | None] | None = None
) -> tuple[subprocess.CompletedProcess[str], int]:
    """`run_cli`, also returning the child's peak resident memory in bytes."""
    command = [sys.executable, "-m", "reconciler", *map(str, args)]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        process = subprocess.Popen(
            command, env=child_env(env), stdin=subprocess.DEVNULL, stdout=out, stderr=err
        )
        # wait4 reports this child's own peak memory; a hung child is killed, not waited on.
        killer = threading.Timer(60, process.kill)
        killer.start()
        try:
            _, status, usage = os.wait4(process.pid, 0)
        finally:
            killer.cancel()
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        result = subprocess.CompletedProcess(
            command, process.returncode, out.read().decode(), err.read().decode()
        )
    # Linux reports kilobytes, macOS bytes.
    peak = usage.ru_maxrss if sys.platform == "darwin" else usage.ru_maxrss * 1024
    return result, peak


@pytest.fixture(scope="module")
def ordinary_peak(_served: tuple[HostileApi, str]) -> int:
    """The peak memory of an ordinary `plan` against one page of sources."""
    api, url = _served
    api.attack = "ok"
    result, peak = run_measured("plan", DESIRED, "--api-url", url)
    assert result.returncode == 0, result.stderr
    return peak


def assert_one_error_line(result: subprocess.CompletedProcess[str], *parts: str) -> str:
    """Exit 1, nothing on stdout, one `error:` line on stderr holding `parts`; that line."""
    assert result.returncode == 1, output_of(result)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for part in parts:
        assert part in lines[0]
    assert "Traceback" not in result.stderr
    assert not any(line.lstrip().startswith("::") for line in output_of(result).splitlines())
    return lines[0]


def plan_against(url: str, **env: str) -> subprocess.CompletedProcess[str]:
    return run_cli("plan", DESIRED, "--api-url", url, env=dict(env))


def client_for(url: str, clock: FakeClock, **options: Any) -> ImgixClient:
    options.setdefault("pacing", UNPACED)
    return ImgixClient(
        api_key=EMULATOR_API_KEY, base_url=url, clock=clock, sleep=clock.sleep, **options
    )


def list_with(client: ImgixClient) -> Any:
    async def listing() -> Any:
        async with client:
            return await client.list_sources()

    return asyncio.run(listing())


# --------------------------------------------------------------------------- server text


def test_an_error_detail_cannot_forge_lines_or_workflow_commands(
    hostile: tuple[HostileApi, str],
) -> None:
    api, url = hostile
    api.attack = "forged_detail"

    line = assert_one_error_line(plan_against(url), "error: imgix API 400 Bad\\r\\n::add-mask::")
    # Title, detail and request id each arrive on the one line, escaped.
    assert line.count("\\r\\n::add-mask::hunter2\\n::error file=sources.yaml,line=1::") == 3
    assert "The request is invalid." in line


def test_the_client_keeps_the_server_text_but_its_message_is_one_line(
    hostile: tuple[HostileApi, str], fake_clock: FakeClock
) -> None:
    api, url = hostile
    api.attack = "forged_detail"

    with pytest.raises(ApiError) as caught:
        list_with(client_for(url, fake_clock))

    assert caught.value.detail == "The request is invalid." + FORGED
    message = str(caught.value)
    assert "\n" not in message and "\r" not in message


def test_a_mebibyte_of_error_text_is_clipped_to_a_readable_line(
    hostile: tuple[HostileApi, str],
) -> None:
    api, url = hostile
    api.attack = "huge_error"

    line = assert_one_error_line(plan_against(url), "error: imgix API 400 ")
    # Once for the title, the detail and the request id.
    assert line.count(" more characters)") == 3
    assert f"{(1 << 20) - MAX_SHOWN_DETAIL:,} more characters" in line
    assert len(line) < 2 * MAX_SHOWN_DETAIL


BROKEN_ATTRIBUTES = [
    ('"not an object"', "the attributes of a source are not an object"),
    ("[1, 2]", "the attributes of a source are not an object"),
    ('{"name": "x", "date_deployed": 1e400}', "a number is out of range"),
]


@pytest.mark.parametrize(("attributes", "problem"), BROKEN_ATTRIBUTES)
def test_a_source_whose_attributes_are_broken_is_one_clear_error(
    hostile: tuple[HostileApi, str], attributes: str, problem: str
) -> None:
    api, url = hostile
    api.attack = "broken_resource"
    api.broken_attributes = attributes

    assert_one_error_line(plan_against(url), "error: imgix API 200 Invalid Response", problem)


@pytest.mark.parametrize("attributes", [a for a, _ in BROKEN_ATTRIBUTES] + ['{"deployment": 7}'])
def test_a_broken_answer_to_the_lookup_after_a_lost_create_is_a_client_error(
    hostile: tuple[HostileApi, str], fake_clock: FakeClock, attributes: str
) -> None:
    api, url = hostile
    api.attack = "broken_resource"
    api.broken_attributes = attributes

    async def create() -> Any:
        async with client_for(url, fake_clock, retry=RetryPolicy(attempts=2)) as client:
            return await client.create_source({"deployment": {"imgix_subdomains": ["hostile-0"]}})

    with pytest.raises(ClientError):
        asyncio.run(create())
    assert [r.method for r in api.received] == ["POST", "GET", "POST"]


# --------------------------------------------------------------------------- export and drift

# Each attack that fails a listing: the server's settings, and what the error line says.
LISTING_FAILURES: dict[str, tuple[dict[str, Any], str]] = {
    "forged_detail": ({}, "imgix API 400 Bad\\r\\n::add-mask::hunter2"),
    "huge_error": ({}, f"{(1 << 20) - MAX_SHOWN_DETAIL:,} more characters"),
    "not_json": ({}, "GET: the body is not a JSON object"),
    "deep_json": ({}, "GET: the body is not a JSON object"),
    "wrong_type": ({}, "GET: the body is text/html, not JSON"),
    "wrong_encoding": ({}, "content encoding 'br' was not asked for"),
    "bad_hostnames": ({}, "deployment.imgix_subdomains must be a list of text"),
    "broken_resource": ({"broken_attributes": "[1, 2]"}, "the attributes of a source are not"),
    "repeat": ({}, "page 1 of the list repeats only sources of earlier pages"),
    "huge_total": ({}, "announces a list of 1000000000 pages"),
    "endless": ({}, "lists more than 250 sources"),  # the bound lowered, as a test may
    "gzip_bomb": ({}, f"larger than {MAX_RESPONSE_BYTES:,} bytes once decoded"),
    "drip": ({}, "no complete response within 0.5s"),
    "moving": ({"moves": 3, "records": 5, "page_size": 2}, "kept changing while it was read"),
}
# A notice a listing may print before its error (a list that moved, read again).
LISTING_NOTICE = "the list of sources changed while it was read"
# What a terminal or a GitHub log reader acts on, raw: no server text may bring it.
RAW_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


# Each command, once with --debug and once without (its log must stay as clean).
@pytest.mark.parametrize(
    ("command", "debug"),
    [
        ("export", False),
        ("export --out", True),
        ("export --merge", False),
        ("drift", False),
        ("drift", True),
    ],
)
@pytest.mark.parametrize("attack", LISTING_FAILURES)
def test_export_and_drift_end_a_failed_listing_with_one_clear_error_and_write_nothing(
    hostile: tuple[HostileApi, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    attack: Any,
    command: str,
    debug: bool,
) -> None:
    # drift's 2 means drift and 0 in sync: a listing that failed is neither, and prints no
    # verdict. A file export was asked for is never left half-written.
    api, url = hostile
    settings, problem = LISTING_FAILURES[attack]
    api.attack = attack
    for name, value in settings.items():
        setattr(api, name, value)
    api.__post_init__()  # the moving list, of its new size
    # 100,000 sources take seconds to serve and parse in one process: the same bound.
    monkeypatch.setitem(ImgixClient.__init__.__kwdefaults__, "max_sources", 250)
    out, merged = tmp_path / "exported.yaml", tmp_path / "merged.yaml"
    merged.write_bytes(DESIRED.read_bytes())
    arguments = {
        "export": ["export"],
        "export --out": ["export", "--out", out],
        "export --merge": ["export", "--merge", merged],
        "drift": ["drift", DESIRED],
    }[command]

    started = time.monotonic()
    # One attempt: a request the server keeps waiting ends at its own timeout, not 120s on.
    env = FAST_FAIL if attack == "drip" else {"IMGIX_RECONCILER_RETRY_DEADLINE": "0"}
    result = invoke(*(["--debug"] if debug else []), *arguments, "--api-url", url, env=env)

    assert time.monotonic() - started < 20
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[-1].startswith("error: ") and problem in lines[-1], result.stderr
    others = lines[:-1]
    if debug:
        others = [line for line in others if not line.startswith("DEBUG reconciler.")]
    assert all(LISTING_NOTICE in line for line in others), result.stderr
    assert "Traceback" not in result.stderr
    assert not RAW_CONTROL.search(result.stderr)
    assert not any(line.lstrip().startswith("::") for line in lines)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["merged.yaml"]
    assert merged.read_bytes() == DESIRED.read_bytes()


@pytest.mark.parametrize(
    ("arguments", "code"),
    [
        (["export"], 0),
        (["--debug", "export", "--out", "{out}"], 0),
        (["drift", DESIRED], 2),
        (["--debug", "drift", DESIRED, "--format", "markdown"], 2),
        (["drift", DESIRED, "--format", "json"], 2),
    ],
    ids=["export", "export --out", "drift", "drift markdown", "drift json"],
)
def test_server_text_in_a_listing_reaches_no_output_raw(
    hostile: tuple[HostileApi, str], tmp_path: Path, arguments: list[Any], code: int
) -> None:
    # Names and annotations the API holds (the dashboard takes any text) reach stdout,
    # stderr, --debug's log and the exported file inert, and read back the same.
    api, url = hostile
    api.attack, api.page_size = "hostile_text", 2
    out = tmp_path / "exported.yaml"
    arguments = [str(out) if part == "{out}" else part for part in arguments]

    result = invoke(*arguments, "--api-url", url)

    assert result.exit_code == code, result.output
    printed = f"{result.stdout}\n{result.stderr}"
    assert not RAW_CONTROL.search(printed)
    assert not any(line.lstrip().startswith("::") for line in printed.splitlines())
    assert "Traceback" not in printed
    names = [f"Hostile {n}{HOSTILE_TEXT}" for n in range(2)]
    if "export" in arguments:
        text = out.read_text(encoding="utf-8") if "--out" in arguments else result.stdout
        assert not RAW_CONTROL.search(text)
        assert [source["name"] for source in YAML(typ="safe").load(text)["sources"]] == names
    elif "json" in arguments:
        assert [source["name"] for source in json.loads(result.stdout)["unmanaged"]] == names


# --------------------------------------------------------------------------- time


def test_a_body_sent_a_byte_at_a_time_ends_at_the_request_deadline(
    hostile: tuple[HostileApi, str],
) -> None:
    api, url = hostile
    api.attack = "drip"  # a byte every 5 s: each httpx read would succeed

    assert_one_error_line(
        plan_against(url, **FAST_FAIL),
        "GET /api/v1/sources",
        "no complete response within 0.5s",
    )
    assert len(api.received) == 1


def test_a_dripping_body_is_retried_like_any_timeout_then_given_up(
    hostile: tuple[HostileApi, str], fake_clock: FakeClock
) -> None:
    api, url = hostile
    api.attack = "drip"
    api.drip_interval = 0.05
    retry = RetryPolicy(attempts=2, base=0.0, deadline=60.0)

    with pytest.raises(TransportError, match=r"no complete response within 0\.3s"):
        list_with(client_for(url, fake_clock, timeout=0.3, retry=retry))

    assert len(api.received) == 2


# --------------------------------------------------------------------------- size


def test_writes_the_server_stalls_end_soon_after_a_signal_and_are_reported(
    hostile: tuple[HostileApi, str], tmp_path: Path
) -> None:
    # GitHub cancels a job with SIGINT, then SIGTERM 7.5 s later, which ends the process
    # at once: the report must be out before. A stalled write used to get its 30 s
    # timeout, then retries, for up to two minutes after the signal.
    api, url = hostile
    api.attack, api.page_size = "stall_writes", 3
    desired = tmp_path / "sources.yaml"
    desired.write_text(
        "version: 1\nsources:\n"
        + "".join(
            f"  - name: Hostile {n}\n    deployment:\n      type: webfolder\n"
            f"      imgix_subdomains: [hostile-{n}]\n"
            "      webfolder_base_url: https://origin.example/\n      cache_ttl_value: 7200\n"
            for n in range(3)
        )
    )
    command = [sys.executable, "-m", "reconciler", "apply", str(desired), "--auto-approve"]
    process = subprocess.Popen(
        [*command, "--api-url", url],
        env=child_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        patches = 0
        while patches < 3 and process.poll() is None:  # every write is under way
            patches = sum(request.method == "PATCH" for request in api.received)
            threading.Event().wait(0.02)
        process.send_signal(signal.SIGINT)
        # Longer than the grace a write under way gets, shorter than its own timeout.
        stdout, stderr = process.communicate(timeout=20)
    finally:
        api.attack = "ok"  # the server's stalled answers end
        process.kill()
    assert process.returncode == 3, stderr
    assert "SIGINT received: starting no more writes" in stderr
    assert stdout.count("failed: patch Hostile") == 3
    assert stdout.count("Stopped retrying PATCH") == 3  # no write was sent again
    assert sum(request.method == "PATCH" for request in api.received) == 3
    assert "Traceback" not in stderr


def test_a_gzip_bomb_is_refused_past_the_size_bound_in_bounded_memory(
    hostile: tuple[HostileApi, str], ordinary_peak: int
) -> None:
    api, url = hostile
    api.attack = "gzip_bomb"  # 1 GiB once inflated

    result, peak = run_measured("plan", DESIRED, "--api-url", url)

    assert_one_error_line(
        result, f"answer to GET /api/v1/sources is larger than {MAX_RESPONSE_BYTES:,} bytes"
    )
    assert peak < ordinary_peak + MEMORY_SLACK


def test_the_client_inflates_no_more_than_its_bound_at_a_time(
    hostile: tuple[HostileApi, str], fake_clock: FakeClock
) -> None:
    api, url = hostile
    api.attack = "gzip_bomb"  # sent in 64 KiB pieces of about 64 MiB each
    bound = 1024 * 1024

    tracemalloc.start()
    try:
        with pytest.raises(LimitExceeded, match="larger than 1,048,576 bytes once decoded"):
            list_with(client_for(url, fake_clock, max_response_bytes=bound))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    # The bound, a copy while joining, and the server thread's own buffers: not 64 MiB.
    assert peak < 8 * bound


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_a_compressed_answer_within_the_bound_is_read(
    hostile: tuple[HostileApi, str], fake_clock: FakeClock, encoding: Any
) -> None:
    api, url = hostile
    api.attack = "compressed"
    api.content_encoding = encoding

    listed = list_with(client_for(url, fake_clock))

    assert len(listed) == api.page_size
    assert api.received[0].headers["accept-encoding"] == "gzip, deflate"


@pytest.mark.parametrize(
    ("attack", "reason"),
    [
        ("not_json", "GET: the body is not a JSON object"),
        ("deep_json", "GET: the body is not a JSON object"),
        ("wrong_type", "GET: the body is text/html, not JSON"),
        ("wrong_encoding", "the body cannot be decoded (content encoding 'br' was not asked for)"),
        ("bad_hostnames", "deployment.imgix_subdomains must be a list of text"),
    ],
)
def test_a_body_that_is_not_a_json_document_is_one_clear_error(
    hostile: tuple[HostileApi, str], attack: Any, reason: str
) -> None:
    api, url = hostile
    api.attack = attack
    # A listed source the answer cannot hold is named by its id.
    source = " for source " + "0" * 24 if attack == "bad_hostnames" else ""

    assert_one_error_line(plan_against(url), f"imgix API 200 Invalid Response{source}: ", reason)


def test_an_error_body_nested_past_the_stack_is_still_a_plain_api_error(
    hostile: tuple[HostileApi, str], fake_clock: FakeClock
) -> None:
    api, url = hostile
    api.attack = "deep_json"
    api.status = 404

    with pytest.raises(ApiError, match=r"^imgix API 404 Not Found$"):
        list_with(client_for(url, fake_clock))


# --------------------------------------------------------------------------- pagination


def test_a_billion_announced_pages_are_refused_before_any_other_request(
    hostile: tuple[HostileApi, str], ordinary_peak: int
) -> None:
    api, url = hostile
    api.attack = "huge_total"

    result, peak = run_measured("plan", DESIRED, "--api-url", url)

    assert_one_error_line(
        result, f"announces a list of 1000000000 pages, more than the {MAX_PAGES} this client"
    )
    assert len(api.received) == 1
    assert peak < ordinary_peak + MEMORY_SLACK


def test_a_page_repeated_forever_ends_the_listing_with_an_error(
    hostile: tuple[HostileApi, str],
) -> None:
    api, url = hostile
    api.attack = "repeat"

    assert_one_error_line(
        plan_against(url),
        "page 1 of the list repeats only sources of earlier pages, yet the API says more",
    )
    assert len(api.received) == 2


@pytest.mark.parametrize("announced", [2, MAX_PAGES])
def test_an_empty_first_page_announcing_more_pages_is_refused_without_reading_them(
    hostile: tuple[HostileApi, str], announced: int
) -> None:
    # An account is empty or its page 0 holds sources: a page 0 holding none that announces
    # more contradicts itself, and planning on it would create every source of the file
    # again. Before, every announced page was read (5,000 at the bound: twenty minutes).
    api, url = hostile
    api.attack = "pages"
    api.page_size = 0
    api.announced_pages = announced

    assert_one_error_line(
        plan_against(url),
        "error: imgix API 200 Invalid Response: GET: page 0 of the list holds no sources, "
        "yet the API says more pages follow",
    )
    assert len(api.received) == 1


@pytest.mark.parametrize(
    ("attack", "served", "bound", "problem", "requests"),
    [
        ("endless", {"page_size": 3}, {"max_pages": 5}, "goes on past 5 pages", 5),
        ("endless", {}, {"max_sources": 250}, "lists more than 250 sources", 3),
        # Refused at once: more announced than the bound allows.
        (
            "pages",
            {"announced_pages": 4},
            {"max_sources": 250},
            "announces 4 pages of 100 sources, more than the 250",
            1,
        ),
    ],
    ids=["endless pages at the page bound", "endless pages at the source bound", "announced"],
)
def test_a_listing_stops_at_its_bounds(
    hostile: tuple[HostileApi, str],
    fake_clock: FakeClock,
    attack: Any,
    served: dict[str, int],
    bound: dict[str, int],
    problem: str,
    requests: int,
) -> None:
    api, url = hostile
    api.attack = attack
    for name, value in served.items():
        setattr(api, name, value)

    with pytest.raises(LimitExceeded, match=problem):
        list_with(client_for(url, fake_clock, **bound))

    assert [request.query["page[number]"] for request in api.received] == [
        str(number) for number in range(requests)
    ]


def test_many_announced_pages_are_fetched_by_a_few_workers(
    hostile: tuple[HostileApi, str], fake_clock: FakeClock
) -> None:
    api, url = hostile
    api.attack = "pages"
    api.page_size = 2
    api.announced_pages = 60
    most_tasks = 0

    async def listing() -> int:
        nonlocal most_tasks

        async def watch() -> None:
            nonlocal most_tasks
            while True:
                most_tasks = max(most_tasks, len(asyncio.all_tasks()))
                await asyncio.sleep(0)

        watcher = asyncio.ensure_future(watch())
        try:
            async with client_for(url, fake_clock) as client:
                return len(await client.list_sources())
        finally:
            watcher.cancel()

    assert asyncio.run(listing()) == 120
    # The main task, the watcher, the workers and each one's connecting task (anyio's):
    # not a task per announced page.
    assert most_tasks <= 2 + 2 * LIST_CONCURRENCY < api.announced_pages


# --------------------------------------------------------------------------- plain http


def through_proxy(url: str) -> dict[str, str | None]:
    """Child environment sending every http request to `url` as its proxy."""
    unset = ("http_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy")
    return {"HTTP_PROXY": url, **dict.fromkeys(unset)}


@contextlib.contextmanager
def tls_server(certificate: Path, key: Path) -> Iterator[tuple[int, list[int]]]:
    """A TLS server on loopback that only shakes hands; the port, and each handshake seen."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificate, key)
    handshakes: list[int] = []

    def shake_hands(connection: socket.socket) -> None:
        handshakes.append(1)
        context.wrap_socket(connection, server_side=True).close()

    with loopback_listener(shake_hands) as port:
        yield port, handshakes


def test_a_certificate_the_runner_refuses_is_one_attempt_not_retried(tmp_path: Path) -> None:
    # An expired certificate (or one not yet valid to a runner whose clock is off, or a
    # TLS-inspecting proxy's) is refused on every attempt: plan tried 8 times over about
    # 45 seconds before saying so.
    tls = FIXTURES / "tls"
    with tls_server(tls / "expired.pem", tls / "expired.key") as (port, handshakes):
        result = run_cli(
            "plan", DESIRED, "--api-url", f"https://127.0.0.1:{port}",
            env={"SSL_CERT_FILE": str(tls / "ca.pem")},
        )  # fmt: skip

    assert_one_error_line(result, "certificate verify failed: certificate has expired")
    assert len(handshakes) == 1


def test_plain_http_to_another_host_is_refused_before_any_request(
    hostile: tuple[HostileApi, str],
) -> None:
    # Were the key sent, it would reach the hostile server, the child's http proxy: the
    # test never touches any address but loopback, even when the check is broken.
    api, url = hostile

    result = run_cli(
        "plan", DESIRED, "--api-url", "http://imgix-api.example.com", env=through_proxy(url)
    )

    assert_one_error_line(
        result,
        "--api-url 'http://imgix-api.example.com' is plain http to imgix-api.example.com",
        "pass --allow-insecure-http",
    )
    assert api.received == []


def test_plain_http_to_another_host_is_used_with_the_opt_in(
    hostile: tuple[HostileApi, str],
) -> None:
    api, url = hostile

    result = run_cli(
        "plan",
        DESIRED,
        "--api-url",
        "http://imgix-api.example.com",
        "--allow-insecure-http",
        env=through_proxy(url),
    )

    assert result.returncode == 0, result.stderr
    assert "Minimal" in result.stdout
    assert [request.headers["host"] for request in api.received] == ["imgix-api.example.com"]


def test_plain_http_from_the_environment_is_refused_too(hostile: tuple[HostileApi, str]) -> None:
    api, url = hostile
    env = {**through_proxy(url), "IMGIX_API_URL": "http://imgix-api.example.com"}

    result = run_cli("export", env=env)

    assert_one_error_line(result, "IMGIX_API_URL 'http://imgix-api.example.com' is plain http")
    assert api.received == []


def test_every_bound_is_a_client_error() -> None:
    assert issubclass(LimitExceeded, ClientError)


def test_endless_pages_end_the_command_at_the_source_bound(
    hostile: tuple[HostileApi, str],
) -> None:
    # Pages of 25,000 (a server may send more than asked): the bound in a few requests.
    api, url = hostile
    api.attack = "endless"
    api.page_size = 25_000

    assert_one_error_line(plan_against(url), f"lists more than {MAX_SOURCES} sources")
    assert len(api.received) == MAX_SOURCES // api.page_size + 1


# --------------------------------------------------------------------------- the two halves of plan


def _plan_of_a_stalled_file(url: str, tmp_path: Path) -> subprocess.Popen[str]:
    # A named pipe nobody writes to: the loading thread waits in open() for good, as on
    # `plan <(a-generator-that-hangs)`. (It stands for any long load, a large file's too.)
    fifo = tmp_path / "sources.yaml"
    os.mkfifo(fifo)
    command = [sys.executable, "-m", "reconciler", "plan", str(fifo), "--api-url", url]
    return subprocess.Popen(
        [*command, "--out", str(tmp_path / "saved.json")],
        env=child_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_listing_that_fails_is_reported_without_waiting_for_the_files_to_load(
    hostile: tuple[HostileApi, str], tmp_path: Path
) -> None:
    # The loading thread was awaited before the listing: its error waited for the whole
    # load (5.5 s of a 40,000-source file), and forever for a pipe with no writer.
    api, url = hostile
    api.attack = "not_json"
    process = _plan_of_a_stalled_file(url, tmp_path)
    try:
        stdout, stderr = process.communicate(timeout=20)
    finally:
        process.kill()
    assert process.returncode == 1, stderr
    assert stdout == ""
    assert stderr.count("error:") == 1 and "JSON" in stderr, stderr
    assert "Traceback" not in stderr and "Exception in thread" not in stderr
    assert not (tmp_path / "saved.json").exists()


@pytest.mark.parametrize("attack", ["drip", "ok"])
@pytest.mark.parametrize("number", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_while_the_files_load_ends_plan_at_once(
    hostile: tuple[HostileApi, str], tmp_path: Path, attack: str, number: signal.Signals
) -> None:
    # asyncio.run joined the loading thread on the way out: Ctrl-C (or CI's SIGINT) ended
    # plan only once the file was loaded, after CI's SIGTERM for a large one. SIGTERM
    # killed it silently (exit -15), leaving any temporary file beside --out.
    api, url = hostile
    api.attack = attack  # the listing still waiting, or done
    process = _plan_of_a_stalled_file(url, tmp_path)
    try:
        while not api.received and process.poll() is None:  # the listing has started
            threading.Event().wait(0.02)
        if attack == "ok":
            threading.Event().wait(0.3)  # its one page answered
        process.send_signal(number)
        stdout, stderr = process.communicate(timeout=20)
    finally:
        api.attack = "ok"
        process.kill()
    assert process.returncode == 1, stderr
    assert stdout == ""
    assert stderr.strip() == "Aborted."
    assert [path.name for path in tmp_path.iterdir()] == ["sources.yaml"]  # no --out file


# --------------------------------------------------------------------------- hostile writes

# The secret a created source references; a server that echoes it must not get it printed.
WRITE_SECRET = "CANARY-write-s3-secret-7c41e0"
WRITE_DESIRED = """\
version: 1
sources:
  - name: Hostile 0
    deployment:
      type: webfolder
      imgix_subdomains: [hostile-0]
      webfolder_base_url: https://origin.example/
      cache_ttl_value: 7200
  - name: Fresh
    deployment:
      type: s3
      s3_access_key: AKIAEXAMPLEFRESH
      s3_bucket: fresh
      s3_secret_key: {env: WRITE_S3_SECRET}
      imgix_subdomains: [fresh-images]
"""


def apply_against(url: str, tmp_path: Path, *extra: str, env: dict[str, str] | None = None) -> Any:
    desired = tmp_path / "sources.yaml"
    desired.write_text(WRITE_DESIRED, encoding="utf-8")
    env = {"WRITE_S3_SECRET": WRITE_SECRET, **(env or {})}
    return invoke("apply", desired, "--auto-approve", "--api-url", url, *extra, env=env)


OUTCOMES = "applied|in effect|failed|stale|skipped|stopped"
REPORTED = {
    "text": re.compile(rf"^({OUTCOMES}): (create|patch) (Fresh|Hostile 0)\b", re.M),
    "markdown": re.compile(
        rf"^\| ({OUTCOMES}) \| (create|patch) \| <code>(Fresh|Hostile 0)<", re.M
    ),
}


def reported(result: Any, report_format: str) -> list[tuple[str, str, str]]:
    """Each action's (outcome, action, source) in the report on stdout, sorted."""
    if report_format == "json":
        results = json.loads(result.stdout)["results"]
        return sorted((r["outcome"], r["action"], r["source"]) for r in results)
    return sorted(REPORTED[report_format].findall(result.stdout))


# Each attack on the writes: the server's settings, the client's environment, how each
# action ends and the text its error holds. One attempt each (no retry deadline), so a
# transient answer is given up at once rather than after two minutes of real backoff.
FORGED_WITH_SECRET = FORGED + "\u202eevil\u202c " + WRITE_SECRET
ONE_ATTEMPT = {"IMGIX_RECONCILER_RETRY_DEADLINE": "0"}
# A write the server may have acted on (a 5xx, an answer cut off) says so when it fails.
MAY_HAVE_LANDED = "; whether it was applied is unknown: the next plan will tell"
WRITE_ATTACKS: dict[str, tuple[dict[str, Any], dict[str, str], str | tuple[str, str], str]] = {
    "400 forged text": (
        {"write_attack": "error", "write_text": FORGED_WITH_SECRET},
        ONE_ATTEMPT,
        "failed",
        "imgix API 400 \\r\\n::add-mask::hunter2",
    ),
    "500 forged text": (
        {"write_attack": "error", "write_status": 500, "write_text": FORGED_WITH_SECRET},
        ONE_ATTEMPT,
        "failed",
        MAY_HAVE_LANDED,
    ),
    "400 mebibyte": (
        {"write_attack": "error", "write_text": "x" * (1 << 20)},
        ONE_ATTEMPT,
        "failed",
        f"{(1 << 20) - MAX_SHOWN_DETAIL:,} more characters",
    ),
    # The server said it did the write: its answer being unreadable does not undo it.
    "200 not json": (
        {"write_attack": "not_json"},
        ONE_ATTEMPT,
        "failed",
        f"not a JSON object{MAY_HAVE_LANDED}",
    ),
    "200 no id": (
        {"write_attack": "no_id"},
        ONE_ATTEMPT,
        "failed",
        f"no source resource in the response{MAY_HAVE_LANDED}",
    ),
    "201 drip": (
        {"write_attack": "drip", "drip_interval": 0.2},
        FAST_FAIL,
        "failed",
        f"no complete response within 0.5s){MAY_HAVE_LANDED}",
    ),
    "429 huge Retry-After": (
        {"write_attack": "retry_after", "retry_after": "1e999"},
        ONE_ATTEMPT,
        "failed",
        "imgix API 429 Too Many Requests",
    ),
    "429 negative Retry-After": (
        {"write_attack": "retry_after", "retry_after": "-5"},
        ONE_ATTEMPT,
        "failed",
        "imgix API 429 Too Many Requests",
    ),
    # Any id is new to a create, but not another source's hostnames; a patch answered with
    # another source may not have landed.
    "200 another source": (
        {"write_attack": "other_source"},
        ONE_ATTEMPT,
        "failed",
        "the answer is about source 0000000000000000000d9038, not the one written; whether",
    ),
    "200 echoing the secret": (
        {"write_attack": "echo", "write_text": FORGED_WITH_SECRET},
        {},
        "applied",
        "",
    ),
}


@pytest.mark.parametrize("report_format", ["text", "json", "markdown"])
@pytest.mark.parametrize("attack", WRITE_ATTACKS)
def test_apply_reports_every_write_a_hostile_server_answers_and_prints_nothing_raw(
    hostile: tuple[HostileApi, str], tmp_path: Path, attack: str, report_format: str
) -> None:
    # After a listing that went well, a create and a patch get the attack's answer: each
    # is reported (exit 3 when one failed, the writes being under way), each sent once,
    # and neither the server's text nor the secret the create sent reaches any output raw.
    api, url = hostile
    settings, env, outcomes, problem = WRITE_ATTACKS[attack]
    created, patched = (outcomes, outcomes) if isinstance(outcomes, str) else outcomes
    api.page_size = 2
    for name, value in settings.items():
        setattr(api, name, value)

    started = time.monotonic()
    result = apply_against(url, tmp_path, "--format", report_format, env=env)

    assert time.monotonic() - started < 5
    assert result.exit_code == (0 if created == patched == "applied" else 3), result.output
    assert reported(result, report_format) == sorted(
        [(created, "create", "Fresh"), (patched, "patch", "Hostile 0")]
    ), result.stdout
    assert [(r.method, r.path) for r in api.received if r.method != "GET"] == [
        ("POST", "/api/v1/sources"),
        ("PATCH", "/api/v1/sources/000000000000000000000000"),
    ]
    printed = output_of(result)
    if report_format == "json":
        results = json.loads(result.stdout)["results"]
        errors = [r["error"] or "" for r in results if r["outcome"] == "failed"]
        assert all(problem in error for error in errors), errors
    elif report_format == "text":  # markdown escapes it again for a comment
        failed = [created, patched].count("failed")
        assert result.stdout.count(problem) >= failed, result.stdout
    assert WRITE_SECRET not in printed
    assert not RAW_CONTROL.search(printed)
    assert not any(line.lstrip().startswith("::") for line in printed.splitlines())
    assert "Traceback" not in printed
    assert len(printed) < 64 * 1024  # a mebibyte of error text is clipped


def test_a_create_answered_with_another_sources_hostnames_is_unknown_and_not_followed(
    hostile: tuple[HostileApi, str], fake_clock: FakeClock
) -> None:
    # A 201 holding a source listed under other hostnames (a caching proxy, an API bug):
    # it was reported as the source created, and a create's later writes (recording a web
    # secret's hash, the disabling write) went to that other source's id.
    api, url = hostile
    api.write_attack = "other_source"

    async def create() -> Any:
        async with client_for(url, fake_clock) as client:
            deployment = {"type": "webfolder", "imgix_subdomains": ["fresh"]}
            return await client.create_source({"name": "Fresh", "deployment": deployment})

    with pytest.raises(ClientError) as caught:
        asyncio.run(create())
    assert str(caught.value) == (
        "imgix API 201 Invalid Response: POST: the answer is about source "
        "0000000000000000000d9038, not the one written; whether it was applied is unknown: "
        "the next plan will tell"
    )
    assert [request.method for request in api.received] == ["POST"]


@pytest.mark.parametrize(
    ("retry_after", "posts"),
    [("-5", 8), ("nan", 8), ("1e999", 1), ("99999999", 1)],
    ids=["negative", "nan", "infinite", "three years"],
)
def test_a_refused_create_asking_an_absurd_wait_gives_up_in_bounded_requests_and_time(
    hostile: tuple[HostileApi, str], fake_clock: FakeClock, retry_after: str, posts: int
) -> None:
    # A 429 did nothing, so sending again is safe; but a wait past the retry deadline is
    # not waited (nor slept, on any clock), and one asking for none is not a busy loop.
    api, url = hostile
    api.write_attack, api.retry_after = "retry_after", retry_after

    async def create() -> Any:
        async with client_for(url, fake_clock, pacing=Pacing(per_second=None)) as client:
            return await client.create_source({"deployment": {"imgix_subdomains": ["fresh"]}})

    with pytest.raises(ClientError, match="imgix API 429 Too Many Requests") as caught:
        asyncio.run(create())

    assert [request.method for request in api.received] == ["POST"] * posts
    assert fake_clock.elapsed < 3 * 3600
    message = str(caught.value)
    assert "unknown" not in message  # refused: it did not land
    # The asked wait is not echoed as `infs`, `nans` or three years in seconds.
    assert not re.search(r"\b(inf|nan)|99999999|-5", message, re.IGNORECASE), message
    if posts == 1:
        assert isinstance(caught.value, DeadlineExceeded)
        asked = (
            "without end" if retry_after == "1e999" else "more than a day, past the 120s deadline"
        )
        assert message.startswith(
            f"Gave up on POST /api/v1/sources after 1 attempts: the server asked to wait {asked}. "
            "Last error: imgix API 429 Too Many Requests"
        ), message


def test_an_endless_retry_after_is_not_waited_even_without_a_retry_deadline(
    hostile: tuple[HostileApi, str], fake_clock: FakeClock
) -> None:
    # IMGIX_RETRY_DEADLINE=inf is accepted; a wait that never ends still is not a hang.
    api, url = hostile
    api.write_attack, api.retry_after = "retry_after", "1e999"

    async def create() -> Any:
        retry = RetryPolicy(deadline=math.inf)
        async with client_for(url, fake_clock, retry=retry) as client:
            return await client.create_source({"deployment": {"imgix_subdomains": ["fresh"]}})

    with pytest.raises(DeadlineExceeded, match="the server asked to wait without end"):
        asyncio.run(create())
    assert [request.method for request in api.received] == ["POST"]
    assert fake_clock.elapsed < 1.0


# --------------------------------------------------------------------------- lost creates

FRESH_ONLY = WRITE_DESIRED[WRITE_DESIRED.index("  - name: Fresh") :]


@pytest.mark.parametrize("lookup", ["honest", "other_origin", "other_owner", "twice", "omitted"])
def test_a_lost_create_found_in_a_lying_listing_is_unknown_never_another_source(
    hostile: tuple[HostileApi, str], fake_clock: FakeClock, tmp_path: Path, lookup: Lookup
) -> None:
    # The create landed but its answer was lost; a retry is refused for the taken subdomain.
    # Only a listing that shows that source once, as sent, proves it applied: any other
    # answer leaves it unknown, and no write goes to a source the listing made up.
    from reconciler.reconcile import Connection, apply_with_report, plan_files

    api, url = hostile
    api.page_size, api.write_attack, api.lookup = 2, "lost_create", lookup
    desired = tmp_path / "sources.yaml"
    desired.write_text("version: 1\nsources:\n" + FRESH_ONLY, encoding="utf-8")
    environ = {"WRITE_S3_SECRET": WRITE_SECRET}
    connection = Connection(
        url, EMULATOR_API_KEY, pacing=UNPACED, clock=fake_clock, sleep=fake_clock.sleep
    )

    async def apply() -> Any:
        made = await plan_files([desired], connection, secrets_optional=False, environ=environ)
        return await apply_with_report(made.plan, connection, environ=environ)

    (result,) = asyncio.run(apply()).results

    writes = [(r.method, r.path) for r in api.received if r.method != "GET"]
    if lookup == "honest":
        assert (result.outcome, result.source_id, result.error) == ("applied", LOOKUP_IDS[0], None)
        assert writes == [("POST", "/api/v1/sources")]
        return
    assert result.outcome == "failed" and result.source_id is None, result
    assert result.error is not None and result.error.endswith(MAY_HAVE_LANDED), result.error
    assert writes == [("POST", "/api/v1/sources")] * 2  # the lost one, the refused retry
    assert WRITE_SECRET not in result.error


# --------------------------------------------------------------------------- odd listings


def listing_api(*resources: dict[str, Any]) -> Any:
    """An API listing `resources` in one page, refusing every write."""
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    def answer(body: object, status: int = 200) -> Response:
        return Response(json.dumps(body), status, media_type="application/vnd.api+json")

    async def sources(request: Any) -> Response:
        if request.method != "GET":
            return answer({"errors": [{"status": "400", "title": "Bad", "detail": "no"}]}, 400)
        page = {"totalRecords": len(resources), "totalPages": 1, "currentPage": 0}
        return answer({"data": list(resources), "meta": {"pagination": page}})

    return Starlette(routes=[Route("/api/v1/sources", sources, methods=["GET", "POST"])])


def test_a_listing_giving_null_for_unset_attributes_exports_a_file_in_sync(
    tmp_path: Path,
) -> None:
    # A listing may leave out a key that has no value (the emulator's --omit-unset), or
    # give it as null. Was: export refused the source ("cannot be exported as a valid
    # file: cache_ttl_value: Input should be a valid integer; ..."), and a file leaving
    # the keys out planned "null -> 31536000", "null -> []" on every run: endless drift.
    from reconciler.emulator.server import running_app

    unset = "cache_ttl_value cache_ttl_behavior custom_domains default_params secure_url_enabled"
    nulls = dict.fromkeys([*unset.split(), "image_error", "annotation", "robots.txt"])
    resource = {
        "type": "sources",
        "id": "a" * 24,
        "attributes": {
            "name": "Nulls",
            "enabled": True,
            "deployment_status": "deployed",
            "deployment": {
                "type": "webfolder",
                "imgix_subdomains": ["nulls"],
                "webfolder_base_url": "https://nulls.example/",
                **nulls,
            },
        },
    }
    out = tmp_path / "sources.yaml"
    with running_app(listing_api(resource)) as url:
        exported = invoke("export", "--out", out, "--api-url", url)
        planned = invoke("plan", out, "--format", "json", "--api-url", url)

    assert exported.exit_code == 0, exported.stderr
    assert YAML(typ="safe").load(out)["sources"][0]["deployment"] == {
        "type": "webfolder",
        "imgix_subdomains": ["nulls"],
        "webfolder_base_url": "https://nulls.example/",
    }
    assert planned.exit_code == 0, planned.stderr
    assert json.loads(planned.stdout)["actions"] == []


def test_an_empty_map_listed_as_an_empty_list_is_unset_like_the_files_empty_map(
    tmp_path: Path,
) -> None:
    # Some JSON encoders (PHP's, for one) write an empty map as `[]`. Was: export refused
    # the source ("default_params: Input should be a valid dictionary"), and every plan
    # wrote `default_params: {}` again ("[] -> {}"), which the next listing shows as `[]`.
    from reconciler.emulator.server import running_app

    deployment = {
        "type": "webfolder",
        "imgix_subdomains": ["empty-list"],
        "webfolder_base_url": "https://empty.example/",
        "default_params": [],
    }
    resource = {
        "type": "sources",
        "id": "b" * 24,
        "attributes": {"name": "Empty", "enabled": True, "deployment": deployment},
    }
    out = tmp_path / "sources.yaml"
    stated = tmp_path / "stated.yaml"
    with running_app(listing_api(resource)) as url:
        exported = invoke("export", "--out", out, "--api-url", url)
        stated.write_text(out.read_text() + "      default_params: {auto: format}\n")
        planned = invoke("plan", out, "--format", "json", "--api-url", url)
        changed = invoke("plan", stated, "--format", "json", "--api-url", url)

    assert exported.exit_code == 0, exported.stderr
    assert "default_params" not in out.read_text()
    assert planned.exit_code == 0, planned.stderr
    assert json.loads(planned.stdout)["actions"] == []
    assert changed.exit_code == 0, changed.stderr
    (action,) = json.loads(changed.stdout)["actions"]
    assert action["changes"] == [
        {"path": "deployment.default_params", "before": [], "after": {"auto": "format"}}
    ]
