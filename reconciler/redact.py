"""The one redaction point: every output stream, log record and error message passes here.

Referenced values enter the process in one place only (`reconciler.references`, for the
loader and for the applier resolving a saved plan's placeholders), which registers them
here. While a command runs, stdout, stderr and logging are wrapped so that a registered
value cannot be printed, not even inside an exception message or a traceback, in any of
the forms outputs use: raw, JSON-escaped, quoted by `repr`, and as the renderers escape
text (the markdown renderer adds its own form with `mask_form`). Structured outputs (a
saved plan) are never scrubbed: no referenced value enters them (a live value that holds
one, e.g. a password pasted into an annotation, is hidden by the planner, see `holds`),
so they stay valid whatever the values are.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, TextIO

from reconciler.untrusted import escaped, json_shown, one_line, quoted

if TYPE_CHECKING:
    import logging

MASK = "***"
# Shorter values would mask ordinary words and numbers all over the output; a value that
# short offers no protection anyway. `reconciler.references` refuses them at load.
MIN_LENGTH = 8

_values: set[str] = set()
# Every way an output may spell a value, besides the value itself.
_forms: list[Callable[[str], str]] = [
    lambda value: json.dumps(value)[1:-1],
    lambda value: json.dumps(value, ensure_ascii=False)[1:-1],
    escaped,
    lambda value: quoted(value)[1:-1],
    lambda value: json_shown(value)[1:-1],
    lambda value: _html_escaped(value, quote=False),
    lambda value: _html_escaped(value, quote=True),
    # How messages quote a value (`{value!r}`, a KeyError, `ascii()`), and how the CLI
    # prints a message (`one_line`, which keeps backslashes): an error quoting a value
    # unexpectedly must not slip past the mask either.
    lambda value: repr(value)[1:-1],
    lambda value: ascii(value)[1:-1],
    one_line,
    # How a server may quote the request it refused: a URL (`/` kept or not), a form body.
    # (No base64: a value's base64 inside a longer text depends on where it starts.)
    lambda value: _url_quoted(value, safe=""),
    lambda value: _url_quoted(value, safe="/"),
    lambda value: _url_quoted(value, safe="", plus=True),
]
# Every spelling of every value, and the same by its first MIN_LENGTH characters (what
# `holds` looks up). Kept as values come: recomputing every value's forms at each one made
# registering 10,000 values take minutes.
_spelled: set[str] = set()
_by_start: dict[str, list[str]] = {}
_masked: list[str] = []  # `_spelled`, longest first: sorted again only when it grew
_stale = False


def _html_escaped(value: str, *, quote: bool) -> str:
    import html  # needed once a value is registered: start-up does without it

    return html.escape(value, quote=quote)


def _url_quoted(value: str, *, safe: str, plus: bool = False) -> str:
    from urllib.parse import quote, quote_plus

    return (quote_plus if plus else quote)(value, safe=safe)


def register(value: str) -> None:
    """Never print `value` (in any form an output uses) from now on."""
    if len(value) >= MIN_LENGTH and value not in _values:
        # In GitHub Actions, the runner masks it in the logs too. `github.active()` is false
        # without the variable: outside Actions, start-up is spared the module (about 1 ms).
        if "GITHUB_ACTIONS" in os.environ:
            from reconciler import github

            github.announce_secret(value)
        _values.add(value)
        _spell(value, _forms)


def mask_form(form: Callable[[str], str]) -> None:
    """Also mask each value as `form` spells it (a renderer's own escaping)."""
    _forms.append(form)
    for value in _values:
        _spell(value, [form])


def _spell(value: str, forms: Iterable[Callable[[str], str]]) -> None:
    global _stale
    for spelled in {value, *(form(value) for form in forms)}:
        if len(spelled) >= MIN_LENGTH and spelled not in _spelled:
            _spelled.add(spelled)
            _by_start.setdefault(spelled[:MIN_LENGTH], []).append(spelled)
            _stale = True


def _refresh() -> None:
    """Spell every registered value again (after `_values` was edited in place)."""
    global _stale
    _spelled.clear()
    _by_start.clear()
    for value in _values:
        _spell(value, _forms)
    _masked.clear()
    _stale = True


def _masks() -> list[str]:
    global _stale
    if _stale:
        _masked[:] = sorted(_spelled, key=len, reverse=True)
        _stale = False
    return _masked


def holds(text: str) -> bool:
    """Whether `text` holds a registered value, in any form."""
    if len(_spelled) <= _FEW:
        return any(spelled in text for spelled in _spelled)
    return any(_found(text))


def _found(text: str) -> Iterator[str]:
    # Many values: each place of `text` is looked up once, not each value searched for.
    starts = _by_start
    return (
        spelled
        for i in range(len(text) - MIN_LENGTH + 1)
        if text[i : i + MIN_LENGTH] in starts
        for spelled in starts[text[i : i + MIN_LENGTH]]
        if text.startswith(spelled, i)
    )


# Up to this many spellings, searching for each is faster than looking up each place.
_FEW = 64


def scrub(text: str) -> str:
    """`text` with every registered value masked, in every form."""
    masks = _masks()
    if len(masks) > _FEW:
        masks = sorted(set(_found(text)), key=len, reverse=True)
    for spelled in masks:
        if spelled in text:
            text = text.replace(spelled, MASK)
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


class RedactingFilter:
    """Masks registered secrets in log records, arguments included.

    A log filter is anything with this method: not subclassing `logging.Filter` spares
    importing logging in commands that log nothing.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        import logging

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
    # Not yet imported, logging has no handler to wrap: a record made later reaches only
    # the handlers the command adds (--debug's, which masks) or logging's last resort,
    # which writes to the stderr wrapped above. So `validate` runs without logging
    # (about 2 ms at start-up with the modules it imports).
    logging = sys.modules.get("logging")
    root = None if logging is None else logging.getLogger()
    handlers = [] if root is None else list(root.handlers)
    if root is not None:
        root.addFilter(log_filter)
    for handler in handlers:
        handler.addFilter(log_filter)
    try:
        yield
    finally:
        for handler in handlers:
            handler.removeFilter(log_filter)
        if root is not None:
            root.removeFilter(log_filter)
        sys.stdout, sys.stderr = saved
