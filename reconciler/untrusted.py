"""Text from outside made safe to show: the one place it is neutralised.

Names, ids, values and error details come from the live API and the desired-state files
(a pull request's author may have written them), and they reach terminals, CI logs and
pull-request comments. Each such text passes here first:

- control characters, CR/LF, DEL, C1 controls, the Unicode line separators and the bidi
  controls are escaped JSON-style (`\\n`, `\\u001b`), so a text stays on its line and
  cannot drive a terminal or reorder what a reviewer reads;
- a line never starts with `::`, so a text cannot forge a GitHub workflow command
  (`::add-mask::`, `::error::`) in a CI log.
"""

from __future__ import annotations

import json
import re

# What JSON leaves raw but a terminal or a log reader acts on: DEL, C1 controls (NEL
# among them), the Unicode line and paragraph separators, and the bidi controls.
_BEYOND_JSON = "\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069"
_RAW_AFTER_JSON = re.compile(f"[{_BEYOND_JSON}]")
_UNSAFE = re.compile(f"[\\\\\x00-\x1f{_BEYOND_JSON}]")
_SHORT_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}
# GitHub reads a workflow command at the start of a line, leading blanks allowed.
_COMMAND_START = re.compile(r"^(\s*):(?=:)")


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    return _SHORT_ESCAPES.get(char) or f"\\u{ord(char):04x}"


def escaped(text: str) -> str:
    """`text` on one line: backslashes and control characters escaped JSON-style."""
    return _COMMAND_START.sub(r"\1\\u003a", _UNSAFE.sub(_escape, text))


def quoted(text: str) -> str:
    """`text` as a JSON string literal that holds no control character at all."""
    return '"' + _UNSAFE.sub(_escape, text).replace('"', '\\"') + '"'


def json_shown(value: object) -> str:
    """`value` as JSON on one line, with what JSON leaves raw escaped as well."""
    return _RAW_AFTER_JSON.sub(
        _escape, json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
    )
