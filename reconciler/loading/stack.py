"""The stack desired-state files are parsed on, whichever thread parses them.

The loader's depth bound (`loader.MAX_C_NESTING`) is measured against glibc's default
stack, 8 MiB. The main thread's stack is what `ulimit -s` left (at 1 MiB, a file nested
5,000 levels crashed `validate` with no word), and a thread's default is the C library's
(musl, on Alpine, gives 128 KiB: 400 levels crashed `plan`): so parsing runs on a thread
of its own with that stack, reserved and used only as deep as parsing goes.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

LOAD_STACK_BYTES = 8 * 1024 * 1024


def start_on_load_stack(run: Callable[[], None]) -> threading.Thread:
    """A daemon thread, started on `run`, with the stack files are parsed on."""
    previous = threading.stack_size(LOAD_STACK_BYTES)
    try:
        thread = threading.Thread(target=run, name="load", daemon=True)
        thread.start()
    finally:
        threading.stack_size(previous)
    return thread


def on_load_stack(function: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """`function(*args, **kwargs)` run on the stack files are parsed on; its error raised here."""
    outcome: list[tuple[T | None, BaseException | None]] = []
    context = contextvars.copy_context()  # what the caller sees, as `asyncio.to_thread` does

    def run() -> None:
        try:
            outcome.append((context.run(function, *args, **kwargs), None))
        except BaseException as error:  # raised again by the waiting thread
            outcome.append((None, error))

    # A daemon, joined: Ctrl-C ends the wait, and the process then ends without it.
    start_on_load_stack(run).join()
    result, error = outcome[0]
    if error is not None:
        raise error
    return result  # type: ignore[return-value]
