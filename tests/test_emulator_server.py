"""Serving the emulator: the test server, the state file and the `emulator` command."""

from __future__ import annotations

import gc
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest
import uvicorn

from reconciler.emulator import (
    EMULATOR_API_KEY,
    SourceStore,
    create_app,
    running_app,
    running_emulator,
    seeded_store,
)
from reconciler.emulator.server import _listen, write_state
from reconciler.specs import DEPLOYMENT_TYPES

AUTH = {"Authorization": f"Bearer {EMULATOR_API_KEY}"}
NEW_SOURCE = {
    "data": {
        "type": "sources",
        "attributes": {
            "name": "Kept",
            "deployment": {
                "type": "webfolder",
                "webfolder_base_url": "https://kept.example/",
                "imgix_subdomains": ["kept"],
            },
        },
    }
}


def test_running_emulator_serves_then_stops() -> None:
    before = set(threading.enumerate())
    with running_emulator(seeded_store()) as url:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url)
        listed = httpx.get(url + "/api/v1/sources", headers=AUTH).json()
        assert len(listed["data"]) == 4
    with pytest.raises(httpx.ConnectError):
        httpx.get(url + "/api/v1/sources", headers=AUTH)
    # The server's thread has ended, not merely lost its socket.
    assert set(threading.enumerate()) <= before


def test_state_file_is_written_whole(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    write_state(seeded_store(), path)
    write_state(seeded_store(), path)
    assert os.listdir(tmp_path) == ["state.json"]
    restored = SourceStore()
    restored.load_json(json.loads(path.read_text()))
    assert {s.name for s in restored.sources.values()} == {
        "Marketing assets",
        "Blog",
        "Archive",
        "Legacy CDN",
    }


def _start(state: Path, *options: str) -> tuple[subprocess.Popen[str], str]:
    command = [
        sys.executable,
        "-m",
        "reconciler",
        "emulator",
        "--port",
        "0",
        "--state",
        str(state),
        *options,
    ]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True
    )
    assert process.stderr is not None
    first = process.stderr.readline()
    key_line = process.stderr.readline()
    match = re.search(r"http://127\.0\.0\.1:\d+", first)
    assert match, first
    assert EMULATOR_API_KEY in key_line
    return process, match.group()


def _stop(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGINT)
    stdout, _ = process.communicate(timeout=10)
    assert process.returncode == 0
    assert stdout == ""


def test_emulator_command_keeps_sources_across_restarts(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    process, url = _start(state)
    try:
        created = httpx.post(url + "/api/v1/sources", headers=AUTH, json=NEW_SOURCE)
        assert created.status_code == 201
    finally:
        _stop(process)
    process, url = _start(state)
    try:
        listed = httpx.get(url + "/api/v1/sources", headers=AUTH).json()["data"]
        assert [s["attributes"]["name"] for s in listed] == ["Kept"]
    finally:
        _stop(process)


def test_the_emulator_command_logs_requests_to_stderr_only(tmp_path: Path) -> None:
    process, url = _start(tmp_path / "state.json")
    try:
        assert httpx.get(url + "/api/v1/sources", headers=AUTH).status_code == 200
    finally:
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=10)
    assert stdout == ""
    assert '"GET /api/v1/sources HTTP/1.1" 200' in stderr


def test_an_existing_state_is_served_alone_even_with_seed(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    own = SourceStore()
    own.create_source(NEW_SOURCE["data"]["attributes"])
    write_state(own, state)
    process, url = _start(state, "--seed")
    try:
        listed = httpx.get(url + "/api/v1/sources", headers=AUTH).json()["data"]
        assert [s["attributes"]["name"] for s in listed] == ["Kept"]
    finally:
        _stop(process)


def test_a_server_thread_that_dies_before_serving_is_an_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # uvicorn returning at once (as it does when it cannot start) must not hang the caller.
    monkeypatch.setattr(uvicorn.Server, "run", lambda self, sockets=None: None)
    with (
        pytest.raises(RuntimeError, match="the emulator did not start"),
        running_app(create_app(SourceStore())),
    ):
        pass


def test_a_port_in_use_raises_and_leaks_no_socket() -> None:
    """A failed bind closes its socket (an unclosed one warns, and warnings are errors)."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(OSError):
            _listen(taken.getsockname()[1])
        gc.collect()


def test_seed_starts_a_new_state_from_the_example_and_an_existing_state_wins(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state.json"
    process, url = _start(state, "--seed")
    try:
        listed = httpx.get(url + "/api/v1/sources", headers=AUTH).json()["data"]
        assert len(listed) == 4
        assert httpx.post(url + "/api/v1/sources", headers=AUTH, json=NEW_SOURCE).status_code == 201
    finally:
        _stop(process)
    # The state kept is the one served, with the source added; the seed does not replace it.
    process, url = _start(state, "--seed")
    try:
        listed = httpx.get(url + "/api/v1/sources", headers=AUTH).json()["data"]
        assert len(listed) == 5
        assert "Kept" in [s["attributes"]["name"] for s in listed]
    finally:
        _stop(process)


def test_omit_unset_leaves_out_deployment_keys_without_a_value(tmp_path: Path) -> None:
    def deployment(url: str) -> dict[str, object]:
        listed = httpx.get(url + "/api/v1/sources", headers=AUTH).json()["data"]
        attributes: dict[str, dict[str, object]] = listed[0]["attributes"]
        return attributes["deployment"]

    state = tmp_path / "state.json"
    process, url = _start(state)
    try:
        assert httpx.post(url + "/api/v1/sources", headers=AUTH, json=NEW_SOURCE).status_code == 201
        full = deployment(url)
    finally:
        _stop(process)
    process, url = _start(state, "--omit-unset")
    try:
        omitting = deployment(url)
    finally:
        _stop(process)
    unset = {key for key, value in full.items() if value in (None, [], {})}
    assert unset, "the full listing names keys without a value"
    assert not unset & omitting.keys()
    assert omitting == {key: value for key, value in full.items() if key not in unset}


def _emulator(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reconciler", "emulator", *map(str, args)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_help_shows_the_documented_default_port() -> None:
    shown = _emulator("--help")
    assert shown.returncode == 0
    assert re.search(r"--port\b.*\[default: 8787", " ".join(shown.stdout.split()))


@pytest.mark.parametrize("port", ["65536", "-1"])
def test_a_port_out_of_range_is_a_usage_error_not_a_traceback(port: str) -> None:
    refused = _emulator("--port", port)
    assert refused.returncode == 1
    assert "Traceback" not in refused.stderr
    assert f"Invalid value for '--port': {port} is not in the range 0<=x<=65535" in refused.stderr


def test_a_state_file_lacking_a_key_names_what_is_missing(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    state.write_text('{"version": 1, "sources": [{"name": "No deployment"}]}')
    refused = _emulator("--port", "0", "--state", state)
    assert refused.returncode == 1
    assert refused.stderr == (
        f"error: {state}: not an emulator state file (missing 'deployment')\n"
    ), refused.stderr


def test_a_state_file_the_api_would_refuse_says_why(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    deployment = {"type": "ftp", "imgix_subdomains": ["a"]}
    state.write_text(
        json.dumps({"version": 1, "sources": [{"name": "x", "deployment": deployment}]})
    )
    refused = _emulator("--port", "0", "--state", state)
    assert refused.returncode == 1
    assert refused.stderr == (
        f"error: {state}: not an emulator state file "
        f"(deployment.type must be one of {', '.join(DEPLOYMENT_TYPES)}.)\n"
    ), refused.stderr


def test_a_state_file_in_a_missing_folder_is_one_error_naming_it(tmp_path: Path) -> None:
    state = tmp_path / "missing" / "state.json"
    refused = _emulator("--port", "0", "--state", state)
    assert refused.returncode == 1
    assert "Traceback" not in refused.stderr
    lines = refused.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: No such file or directory: ")
    assert str(tmp_path / "missing") in lines[0]


def test_a_port_in_use_is_one_error_line_with_the_system_s_reason() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        refused = _emulator("--port", str(port))
    assert refused.returncode == 1
    # The reason as the system words it, without Python's `[Errno 98]` prefix.
    assert refused.stderr == f"error: cannot serve on 127.0.0.1:{port}: Address already in use\n"
