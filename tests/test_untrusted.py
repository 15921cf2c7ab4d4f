"""Text from outside stays on its line and never forges a workflow command."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys

import pytest

from reconciler import untrusted
from reconciler.untrusted import LogFormatter, escaped, json_shown, one_line, quoted


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("plain", "plain"),
        ("a\nb\r\n", "a\\nb\\r\\n"),
        ("\x1b[31mred", "\\u001b[31mred"),
        ("back\\slash", "back\\\\slash"),
        ("tab\tbs\bff\f", "tab\\tbs\\bff\\f"),
        ("\u202eevil", "\\u202eevil"),
        ("::add-mask::x", "\\u003a:add-mask::x"),
        ("  ::error::x", "  \\u003a:error::x"),
        ("a ::b", "a ::b"),
    ],
)
def test_escaped_keeps_text_on_one_line_and_off_the_command_channel(raw: str, shown: str) -> None:
    assert escaped(raw) == shown


def test_a_text_that_escapes_into_a_new_line_cannot_start_a_command() -> None:
    assert "\n" not in escaped("detail\n::add-mask::secret")


def test_quoted_and_json_shown_escape_what_json_leaves_raw() -> None:
    assert quoted('say "hi"\n') == '"say \\"hi\\"\\n"'
    assert json_shown({"k": "\u2028"}) == '{"k": "\\u2028"}'


def test_one_line_escapes_controls_but_leaves_quoted_text_as_it_reads() -> None:
    assert one_line("unknown key 'a\\nb'\n::error::x") == "unknown key 'a\\nb'\\n::error::x"
    assert one_line(" ::add-mask::k\x1b[2J") == " \\u003a:add-mask::k\\u001b[2J"


def test_log_records_cannot_forge_lines_from_their_message_or_traceback() -> None:
    formatter = LogFormatter("%(levelname)s: %(message)s")
    try:
        raise ValueError("bad\n::error::forged")
    except ValueError:
        record = logging.LogRecord(
            "reconciler.client", logging.DEBUG, __file__, 1, "id %s", ("x\r\n::add-mask::k",),
            sys.exc_info(),
        )  # fmt: skip
    lines = formatter.format(record).splitlines()
    assert lines[0] == "DEBUG: id x\\r\\n::add-mask::k"
    assert lines[-2:] == ["ValueError: bad", "\\u003a:error::forged"]
    assert not any(line.lstrip().startswith("::") for line in lines)


def test_patterns_are_compiled_at_first_use_and_then_replace_the_placeholder() -> None:
    # A fresh process: this one's patterns were compiled by the tests above.
    probe = (
        "import re\n"
        "from reconciler import untrusted\n"
        "print(isinstance(untrusted._UNSAFE, re.Pattern))\n"
        "print(untrusted.escaped('a\\x1b'), isinstance(untrusted._UNSAFE, re.Pattern))\n"
        "print(isinstance(untrusted._MARKDOWN_UNSAFE, re.Pattern))\n"
        "untrusted.one_line('a'), untrusted.markdown_text('a'), untrusted.json_shown('a')\n"
        "print([isinstance(getattr(untrusted, name), re.Pattern) for name in (\n"
        "    '_RAW_AFTER_JSON', '_CONTROL', '_COMMAND_START', '_MARKDOWN_UNSAFE')])\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.splitlines() == [
        "False",
        "a\\u001b True",
        "False",
        "[True, True, True, True]",
    ]
    assert isinstance(untrusted._UNSAFE, re.Pattern)


def test_json_shown_keeps_letters_of_any_script_readable() -> None:
    # Only what a terminal acts on is escaped: a Japanese or accented name reads as written.
    assert json_shown({"name": "Café 東京"}) == '{"name": "Café 東京"}'


def test_a_lone_surrogate_in_decoded_json_becomes_a_replacement_character() -> None:
    # A pair (an emoji, escaped as two halves) is one character once decoded: kept.
    body = b'{"n\\ud800": ["a\\udc00b", "\\ud83d\\ude00", 1, null], "ok": "plain"}'
    assert untrusted.may_hold_lone_surrogates(body)
    assert untrusted.without_lone_surrogates(json.loads(body)) == {
        "n\ufffd": ["a\ufffdb", "\U0001f600", 1, None],
        "ok": "plain",
    }
    assert not untrusted.may_hold_lone_surrogates(b'{"n": "caf\\u00e9"}')
