"""The one redaction point: every output stream, log record and error message passes here.

Secret values enter the process in two places only (the loader resolving references, the
applier resolving a saved plan's placeholders); both register them here. While a command
runs, stdout, stderr and logging are wrapped so that a registered value cannot be printed,
not even inside an exception message or a traceback.
"""

from __future__ import annotations

import contextlib
import io
import logging
import sys
from collections.abc import Iterator
from typing import TextIO

from reconciler import github

MASK = "***"
# Shorter values would mask ordinary words and numbers all over the output; a secret that
# short offers no protection anyway, and the loader's constraints reject most of them.
MIN_LENGTH = 4

_values: set[str] = set()


def register(value: str) -> None:
    """Never print `value` from now on."""
    if len(value) >= MIN_LENGTH:
        github.announce_secret(value)  # in GitHub Actions, the runner masks it in the logs too
        _values.add(value)


def scrub(text: str) -> str:
    """`text` with every registered secret value masked."""
    for value in sorted(_values, key=len, reverse=True):
        if value in text:
            text = text.replace(value, MASK)
    return text


class RedactingStream(io.TextIOBase):
    """A text stream that masks registered secrets before writing to the real one."""

    def __init__(self, inner: TextIO) -> None:
        self._inner = inner

    def write(self, text: str) -> int:
        self._inner.write(scrub(text))
        return len(text)

    def flush(self) -> None:
        self._inner.flush()

    def isatty(self) -> bool:
        return self._inner.isatty()

    def fileno(self) -> int:
        return self._inner.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self._inner, "encoding", "utf-8")


class RedactingFilter(logging.Filter):
    """Masks registered secrets in log records, arguments included."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = scrub(record.getMessage())
        record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = scrub(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


@contextlib.contextmanager
def redacted_output() -> Iterator[None]:
    """Wrap stdout, stderr and the root logger's handlers for the duration of a command."""
    saved = sys.stdout, sys.stderr
    sys.stdout = RedactingStream(sys.stdout)
    sys.stderr = RedactingStream(sys.stderr)
    log_filter = RedactingFilter()
    root = logging.getLogger()
    root.addFilter(log_filter)
    handlers = list(root.handlers)
    for handler in handlers:
        handler.addFilter(log_filter)
    try:
        yield
    finally:
        for handler in handlers:
            handler.removeFilter(log_filter)
        root.removeFilter(log_filter)
        sys.stdout, sys.stderr = saved
