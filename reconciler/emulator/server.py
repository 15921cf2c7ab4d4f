"""Serving the emulator over real HTTP: in a thread for tests, in the foreground for the CLI."""

from __future__ import annotations

import copy
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from uvicorn.config import LOGGING_CONFIG

from reconciler.atomic import write_atomically
from reconciler.emulator.app import create_app
from reconciler.emulator.seed import seeded_store
from reconciler.emulator.store import SourceStore

HOST = "127.0.0.1"
STARTUP_TIMEOUT = 10.0


@contextmanager
def running_emulator(store: SourceStore) -> Iterator[str]:
    """Serve `store` with uvicorn in a thread on 127.0.0.1 (a free port); yield the base URL."""
    with running_app(create_app(store)) as url:
        yield url


@contextmanager
def running_app(app: Starlette) -> Iterator[str]:
    """Serve an emulator app in a thread on 127.0.0.1 until the block ends; yield its URL."""
    sock = _listen(0)
    config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="off", ws="none")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        _wait_started(server, thread)
        yield f"http://{HOST}:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(STARTUP_TIMEOUT)
        sock.close()


def serve(
    port: int,
    state_file: Path | None = None,
    *,
    seed: bool = False,
    omit_unset: bool = False,
    announce: Callable[[str], None] = print,
) -> None:
    """Serve the emulator in the foreground until Ctrl-C, persisting to `state_file`."""
    store = seeded_store() if seed else SourceStore()
    if state_file is not None:
        if state_file.exists():
            store = SourceStore()
            store.load_json(json.loads(state_file.read_text(encoding="utf-8")))
        store.on_commit = lambda committed: write_state(committed, state_file)
        write_state(store, state_file)
    store.omit_unset = omit_unset
    sock = _listen(port)
    announce(f"http://{HOST}:{sock.getsockname()[1]}")
    config = uvicorn.Config(
        create_app(store), log_config=_stderr_logging(), lifespan="off", ws="none"
    )
    server = uvicorn.Server(config)
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        # uvicorn shuts down cleanly on Ctrl-C, then re-raises the signal it captured.
        pass
    finally:
        sock.close()


def _stderr_logging() -> dict[str, Any]:
    # stdout belongs to output users pipe; uvicorn's access log goes there by default.
    config = copy.deepcopy(LOGGING_CONFIG)
    config["handlers"]["access"]["stream"] = "ext://sys.stderr"
    return config


def write_state(store: SourceStore, path: Path) -> None:
    """Save the store's state atomically: a reader sees the old file or the new, never half."""
    write_atomically(path, json.dumps(store.to_json(), indent=2, sort_keys=True))


BACKLOG = 128


def _listen(port: int) -> socket.socket:
    # An explicit IPPROTO_TCP makes asyncio set TCP_NODELAY on accepted connections;
    # without it every response waits 40 ms for a delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((HOST, port))
        # Listen before announcing the URL: a client that connects at once waits in the
        # backlog until uvicorn accepts, instead of being refused.
        sock.listen(BACKLOG)
    except OSError:
        sock.close()
        raise
    return sock


def _wait_started(server: uvicorn.Server, thread: threading.Thread) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the emulator did not start")
        time.sleep(0.005)
