"""Text from outside made safe to show: the one place it is neutralised.

Names, ids, values and error details come from the live API and the desired-state files
(a pull request's author may have written them), and they reach terminals, CI logs and
pull-request comments. Each such text passes here first:

- control characters, CR/LF, DEL, C1 controls, the Unicode line separators and the bidi
  controls are escaped JSON-style (`\\n`, `\\u001b`), so a text stays on its line and
  cannot drive a terminal or reorder what a reviewer reads;
- a line never starts with `::`, and no line holds `##[`, so a text cannot forge a GitHub
  workflow command (`::add-mask::`, `::error::`, or the legacy form the runner reads
  anywhere in a line, `##[error]`, `##[stop-commands]`) in a CI log;
- a JSON document printed (`--format json`) keeps its meaning, with what JSON leaves raw
  (C1 controls, line separators, bidi controls) escaped as well;
- a lone surrogate a JSON answer escapes (`"\\ud800"`), which no output, request or plan
  document can encode, becomes U+FFFD when the answer is decoded;
- in markdown (a pull-request comment), a text is inert: no HTML, no markdown syntax, and
  nothing GitHub turns into a ping or a link (`@user`, `@org/team`, `#12`, `org/repo#1`,
  `GH-12`, `https://...`, `www.example.com`, `someone@example.com`).
"""

from __future__ import annotations

import codecs
import json
import re
from typing import TYPE_CHECKING, Any

from reconciler import deferred

if TYPE_CHECKING:
    import logging


# What JSON leaves raw but a terminal or a log reader acts on: DEL, C1 controls (NEL
# among them), the Unicode line and paragraph separators, and the bidi controls (the
# Arabic letter mark among them); and the format characters that show nothing (zero-width
# space, word joiner, soft hyphen, byte order mark, tag characters...), by which one name
# reads as another or as none. The zero-width joiners stay: scripts and emoji need them.
# The patterns are compiled at first use (about 0.2 ms each): a command that shows no
# outside text (`schema`) compiles none, and the others only what they use.
_BEYOND_JSON = (
    "\x7f-\x9f\xad\u061c\u180e\u200b\u200e\u200f\u2028\u2029\u202a-\u202e"
    "\u2060-\u2069\u206a-\u206f\ufeff\ufff9-\ufffb\U000e0000-\U000e007f"
)
_RAW_AFTER_JSON = deferred.pattern(__name__, "_RAW_AFTER_JSON", f"[{_BEYOND_JSON}]")
_UNSAFE = deferred.pattern(__name__, "_UNSAFE", f"[\\\\\x00-\x1f{_BEYOND_JSON}]")
_CONTROL = deferred.pattern(__name__, "_CONTROL", f"[\x00-\x1f{_BEYOND_JSON}]")
# Combining marks past the fourth on one letter: a browser draws a stack of them over the
# lines above and below ("Zalgo" text), hiding what a reviewer of a pull-request comment
# reads there (a terminal draws one or two). Languages need fewer (Vietnamese two); the
# diacritical blocks are the ones such stacks are made of.
_MARK = "[\u0300-\u036f\u0483-\u0489\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]"
_STACK = deferred.pattern(__name__, "_STACK", f"{_MARK}{{5}}")
_STACKED = deferred.pattern(__name__, "_STACKED", f"(?<={_MARK}{{4}}){_MARK}")
_SHORT_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}
# GitHub reads a workflow command at the start of a line, leading blanks allowed.
_COMMAND_START = deferred.pattern(__name__, "_COMMAND_START", r"^(\s*):(?=:)")
# ...and its legacy form anywhere in a line. `\u005b` is `[` where JSON or YAML's double
# quotes read the text, and plain text shows it as `escaped` shows its other escapes.
_LEGACY_COMMAND = "##["
_LEGACY_INERT = "##\\u005b"


_LONE_SURROGATE = deferred.pattern(__name__, "_LONE_SURROGATE", "[\ud800-\udfff]")


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    # A character past U+FFFF is a surrogate pair in JSON's escapes, as JSON reads it back.
    return _SHORT_ESCAPES.get(char) or json.dumps(char)[1:-1]


def _json_escapes(error: UnicodeError) -> tuple[str, int]:
    if not isinstance(error, UnicodeEncodeError):
        raise error
    unencodable = error.object[error.start : error.end]
    return json.dumps(unencodable)[1:-1], error.end


# The error handler an output stream uses for characters its encoding lacks: `\u00e9`,
# as JSON writes them, so a JSON document stays valid and a text reads as `escaped` ones.
JSON_ESCAPES = "imgix-reconciler-json-escapes"
codecs.register_error(JSON_ESCAPES, _json_escapes)


def is_text(value: str) -> bool:
    """Whether `value` holds no lone surrogate, so UTF-8 (a request, an output, a hash)
    can carry it. Python keeps bytes that are not UTF-8 (an environment variable, an
    argument) as lone surrogates, and YAML's and JSON's `\\ud800` escape makes one."""
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def may_hold_lone_surrogates(body: bytes) -> bool:
    """Whether a JSON text escapes a surrogate (`\\ud800`): only then can its decoded
    strings hold a lone one."""
    return b"\\ud" in body or b"\\uD" in body


def without_lone_surrogates(value: Any) -> Any:
    """A decoded JSON value whose strings (keys too) hold no lone surrogate: each becomes
    U+FFFD, as a UTF-8 decoder does with bytes it cannot read."""
    if isinstance(value, str):
        return value if value.isascii() else _LONE_SURROGATE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {
            without_lone_surrogates(key): without_lone_surrogates(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [without_lone_surrogates(item) for item in value]
    return value


def _unstacked(text: str) -> str:
    """`text` with the combining marks past the fourth on a letter escaped (`\\u0301`)."""
    # After `escaped`, which would escape these escapes' backslashes again; the lookbehind
    # is slow, so only over a text that has such a stack.
    if text.isascii() or not _STACK.search(text):
        return text
    return _STACKED.sub(_escape, text)


def escaped(text: str) -> str:
    """`text` on one line: backslashes and control characters escaped JSON-style."""
    shown = _COMMAND_START.sub(r"\1\\u003a", _UNSAFE.sub(_escape, text))
    return shown.replace(_LEGACY_COMMAND, _LEGACY_INERT)


def one_line(text: str) -> str:
    """A message or log line kept on its line: `escaped`, but backslashes left alone.

    Messages already quote the values they hold (`repr`, JSON), so they read once; an
    outside text inside them still cannot break the line or start a workflow command.
    """
    shown = _COMMAND_START.sub(r"\1\\u003a", _CONTROL.sub(_escape, text))
    return shown.replace(_LEGACY_COMMAND, _LEGACY_INERT)


def quoted(text: str) -> str:
    """`text` as a JSON string literal that holds no control character at all."""
    inert = _UNSAFE.sub(_escape, text).replace(_LEGACY_COMMAND, _LEGACY_INERT)
    return '"' + inert.replace('"', '\\"') + '"'


def _yaml_escape(match: re.Match[str]) -> str:
    char = match.group()
    return f"\\U{ord(char):08x}" if ord(char) > 0xFFFF else _escape(match)


def yaml_document(text: str) -> str:
    """`json_document` for YAML's double-quoted text, which reads no surrogate pair: a
    character past U+FFFF is escaped as `\\UXXXXXXXX`."""
    return _RAW_AFTER_JSON.sub(_yaml_escape, text).replace(_LEGACY_COMMAND, _LEGACY_INERT)


def json_shown(value: object) -> str:
    """`value` as JSON on one line, with what JSON leaves raw escaped as well."""
    return json_document(json.dumps(value, ensure_ascii=False, separators=(", ", ": ")))


def json_document(text: str) -> str:
    """A JSON text with what JSON leaves raw escaped too: the same document, inert.

    Those characters, and `#`, can only occur inside strings, where `\\uXXXX` means the same.
    """
    return _RAW_AFTER_JSON.sub(_escape, text).replace(_LEGACY_COMMAND, _LEGACY_INERT)


# Inline markdown syntax (links and images, code spans, emphasis, strikethrough, table
# pipes, and `$`, by which GitHub draws LaTeX math) becomes HTML entities, which GitHub
# decodes in markdown and HTML blocks alike.
# Only what can start syntax is escaped, so `["a"]` and `cache_ttl_value` stay readable: a
# link needs `](` (a comment of ours defines no reference links) and emphasis an
# underscore at a word boundary.
_MARKDOWN_SYNTAX = r"[\\`*|~$]|\](?=\()|(?<![^\W_])_|_(?![^\W_])"
# What GitHub links or pings once rendered: mentions and e-mail addresses (`@`), issue and
# pull-request references (`#12`, `org/repo#12`, `GH-12`) and autolinks (`scheme://`,
# `www.`, also after `_` or `*`). A zero-width space right after the sigil breaks each
# pattern while the text reads the same; it goes in as an entity, which GitHub decodes
# before it looks for them.
_REFERENCE = r"[@#]|(?i:(?<![^\W_])gh-)(?=\d)|:(?=//)|(?i:(?<![^\W_])www)(?=\.)"
_MARKDOWN_UNSAFE = deferred.pattern(
    __name__,
    "_MARKDOWN_UNSAFE",
    f"(?P<html>[&<>])|(?P<syntax>{_MARKDOWN_SYNTAX})|(?P<reference>{_REFERENCE})",
)


def _markdown_inert(match: re.Match[str]) -> str:
    text = match.group()
    if match.lastgroup == "html":
        import html  # markdown only: other outputs start without it

        return html.escape(text, quote=False)
    if match.lastgroup == "syntax":
        return f"&#{ord(text)};"
    return text + "&#8203;"


def markdown_text(text: str) -> str:
    """`text` as inert markdown inline text: one line, no HTML, no syntax, no ping, no link,
    no stack of combining marks drawn over the lines around it."""
    return _MARKDOWN_UNSAFE.sub(_markdown_inert, _unstacked(escaped(text)))


def __getattr__(name: str) -> type[logging.Formatter]:
    # `LogFormatter` subclasses logging's formatter: defined at its first use (--debug),
    # so that commands that log nothing start without logging.
    if name != "LogFormatter":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import logging

    class LogFormatter(logging.Formatter):
        """Log records as `one_line`s: the message on one line, a traceback line by line."""

        def formatMessage(self, record: logging.LogRecord) -> str:
            return one_line(super().formatMessage(record))

        def format(self, record: logging.LogRecord) -> str:
            first, *rest = super().format(record).split("\n")
            return "\n".join([first, *map(one_line, rest)])

    globals()[name] = LogFormatter
    return LogFormatter
