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
from pathlib import Path

import httpx
import pytest

from reconciler.emulator import EMULATOR_API_KEY, SourceStore, running_emulator, seeded_store
from reconciler.emulator.server import _listen, write_state

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
    with running_emulator(seeded_store()) as url:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url)
        listed = httpx.get(url + "/api/v1/sources", headers=AUTH).json()
        assert len(listed["data"]) == 4
    with pytest.raises(httpx.ConnectError):
        httpx.get(url + "/api/v1/sources", headers=AUTH)


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


def _start(state: Path) -> tuple[subprocess.Popen[str], str]:
    command = [sys.executable, "-m", "reconciler", "emulator", "--port", "0", "--state", str(state)]
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


def test_a_port_in_use_raises_and_leaks_no_socket() -> None:
    """A failed bind closes its socket (an unclosed one warns, and warnings are errors)."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(OSError):
            _listen(taken.getsockname()[1])
        gc.collect()
