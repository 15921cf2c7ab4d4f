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


# Each range of characters that drive a terminal, reorder a line or show nothing, by its
# ends (and NEL inside the C1 range): a range shortened by one lets its end through raw.
HIDDEN_OR_ACTIVE = [
    *("\x7f", "\x80", "\x85", "\x9f", "\xad", "\u061c", "\u180e", "\u200b", "\u200e"),
    *("\u200f", "\u2028", "\u2029", "\u202a", "\u202e", "\u2060", "\u2069", "\u206a"),
    *("\u206f", "\ufeff", "\ufff9", "\ufffb", "\U000e0000", "\U000e0001", "\U000e007f"),
]
# Their neighbours are letters, spaces and symbols a name may hold: they read as written
# (the zero-width joiners among them, which scripts and emoji need).
SHOWN_AS_WRITTEN = [
    *("\xa0", "\xac", "\xae", "\u061b", "\u061d", "\u180d", "\u180f", "\u200a", "\u200c"),
    *("\u200d", "\u2027", "\u202f", "\u205f", "\u2070", "\ufefe", "\ufff8", "\ufffc"),
    *("\U000dffff", "\U000e0080"),
]


@pytest.mark.parametrize("char", ["\x00", "\x01", "\x1e", "\x1f"], ids=lambda c: f"U+{ord(c):04X}")
def test_the_ends_of_the_c0_controls_are_escaped_where_a_text_is_shown(char: str) -> None:
    text = f"name{char}x"
    shown = f"name\\u{ord(char):04x}x"
    assert escaped(text) == one_line(text) == shown
    assert quoted(text) == f'"{shown}"'
    assert untrusted.markdown_text(text) == shown.replace("\\", "&#92;")


@pytest.mark.parametrize("char", HIDDEN_OR_ACTIVE, ids=lambda char: f"U+{ord(char):04X}")
def test_every_invisible_or_reordering_character_is_escaped_in_every_output(char: str) -> None:
    text = f"name{char}x"
    # JSON's escape: a character past U+FFFF as its surrogate pair, as JSON reads it back.
    shown = "name" + json.dumps(char)[1:-1] + "x"
    assert escaped(text) == shown
    assert one_line(text) == shown
    assert quoted(text) == f'"{shown}"'
    assert untrusted.markdown_text(text) == shown.replace("\\", "&#92;")
    document = json.dumps({"name": text}, ensure_ascii=False)
    assert untrusted.json_document(document) == '{"name": "' + shown + '"}'
    assert json.loads(untrusted.json_document(document)) == {"name": text}
    assert json_shown(text) == f'"{shown}"'
    # YAML's double quotes read no surrogate pair: one `\U` escape instead.
    wide = f"\\U{ord(char):08x}" if ord(char) > 0xFFFF else json.dumps(char)[1:-1]
    assert untrusted.yaml_document(f'"{text}"') == f'"name{wide}x"'


@pytest.mark.parametrize("char", SHOWN_AS_WRITTEN, ids=lambda char: f"U+{ord(char):04X}")
def test_the_neighbours_of_those_characters_read_as_written(char: str) -> None:
    text = f"name{char}x"
    assert escaped(text) == one_line(text) == untrusted.markdown_text(text) == text
    assert untrusted.json_document(f'"{text}"') == untrusted.yaml_document(f'"{text}"')
    assert untrusted.json_document(f'"{text}"') == f'"{text}"'


# The ends of each block of combining marks a "Zalgo" stack is made of.
STACKING_MARKS = [
    *("\u0300", "\u036f", "\u0483", "\u0489", "\u1ab0", "\u1aff", "\u1dc0", "\u1dff"),
    *("\u20d0", "\u20ff", "\ufe20", "\ufe2f"),
]
# Their neighbours are letters and symbols: six in a row is a word, never a stack.
NOT_STACKING = [
    *("\u02ff", "\u0370", "\u0482", "\u048a", "\u1aaf", "\u1b00", "\u1dbf", "\u1e00"),
    *("\u20cf", "\u2100", "\ufe1f", "\ufe30"),
]


@pytest.mark.parametrize("mark", STACKING_MARKS, ids=lambda char: f"U+{ord(char):04X}")
def test_a_comment_draws_four_combining_marks_on_a_letter_and_shows_the_rest_escaped(
    mark: str,
) -> None:
    escape = f"&#92;u{ord(mark):04x}"  # `\u0301`, its backslash an entity
    assert untrusted.markdown_text("e" + mark * 4 + " x") == "e" + mark * 4 + " x"
    assert untrusted.markdown_text("e" + mark * 5 + " x") == "e" + mark * 4 + escape + " x"
    assert untrusted.markdown_text("e" + mark * 7) == "e" + mark * 4 + escape * 3
    # A terminal draws one or two: only a comment's text is unstacked.
    assert escaped("e" + mark * 7) == "e" + mark * 7


@pytest.mark.parametrize("char", NOT_STACKING, ids=lambda char: f"U+{ord(char):04X}")
def test_a_row_of_characters_beside_the_combining_blocks_reads_as_written(char: str) -> None:
    assert untrusted.markdown_text("e" + char * 6) == "e" + char * 6


@pytest.mark.parametrize(
    ("raw", "inert"),
    [
        # Either end of a word can open or close emphasis, with text of ours around it too.
        ("word_ next", "word&#95; next"),
        ("_word_", "&#95;word&#95;"),
        ("__init__", "&#95;&#95;init&#95;&#95;"),
        # Inside a word an underscore is a letter to GitHub: parameter names read as written.
        ("cache_ttl_value", "cache_ttl_value"),
        ("a_b_ c", "a_b&#95; c"),
    ],
)
def test_an_underscore_at_either_end_of_a_word_is_inert_in_a_comment(raw: str, inert: str) -> None:
    assert untrusted.markdown_text(raw) == inert


def test_an_output_short_of_a_character_writes_it_as_json_does_and_reading_stays_strict() -> None:
    # The CLI sets this handler on an output whose encoding lacks a name's characters
    # (tests/test_cli.py runs it so); a character past U+FFFF is JSON's surrogate pair.
    text = 'Caf\u00e9 "\u2615" \U0001f600'
    written = text.encode("ascii", untrusted.JSON_ESCAPES)
    assert written == b'Caf\\u00e9 "\\u2615" \\ud83d\\ude00'
    assert json.loads(b'"' + written.replace(b'"', b'\\"') + b'"') == text
    # Only writing is its business: bytes that are not text still fail to decode.
    with pytest.raises(UnicodeDecodeError):
        b"caf\xe9".decode("utf-8", untrusted.JSON_ESCAPES)


def test_the_module_makes_up_no_attribute_but_its_log_formatter() -> None:
    # The formatter is defined at its first use; any other missing name stays missing.
    assert issubclass(untrusted.LogFormatter, logging.Formatter)
    assert not hasattr(untrusted, "LogFormater")
    with pytest.raises(AttributeError, match="has no attribute 'escape'"):
        untrusted.escape  # noqa: B018


# The runner also reads the legacy form of a workflow command, `##[name]data`, anywhere in
# a line: `##[error]` forges an annotation, and `##[stop-commands]token` stops the runner
# reading every later command of the step, the `::add-mask::` of a secret among them.
@pytest.mark.parametrize(
    "raw", ["##[stop-commands]t", "name ##[error]forged", "###[add-mask]x", "a##[##[b"]
)
def test_no_output_carries_the_legacy_command_form_anywhere_in_a_line(raw: str) -> None:
    for shown in (escaped(raw), one_line(raw), quoted(raw), json_shown({raw: raw})):
        assert "##[" not in shown, shown
    assert json.loads(quoted(raw)) == raw
    assert json.loads(json_shown({raw: [raw]})) == {raw: [raw]}
    document = json.dumps({"name": raw}, ensure_ascii=False)
    assert "##[" not in untrusted.json_document(document)
    assert json.loads(untrusted.json_document(document)) == {"name": raw}
    assert "##[" not in untrusted.yaml_document(f'"{raw}"')
    assert "##[" not in untrusted.markdown_text(raw)


@pytest.mark.parametrize("blank", ["\xa0", "\u1680", "\u2003", "\u3000"])
def test_a_command_after_unicode_blanks_is_still_broken(blank: str) -> None:
    # The runner trims every Unicode blank before it reads `::`, not only spaces.
    assert escaped(f"{blank}::error::x") == f"{blank}\\u003a:error::x"
    assert one_line(f"{blank * 2}::add-mask::x") == f"{blank * 2}\\u003a:add-mask::x"


def test_an_upper_case_surrogate_escape_is_found_as_well() -> None:
    # JSON's `\uD800` is the same lone surrogate as `\ud800`.
    assert untrusted.may_hold_lone_surrogates(b'{"n": "a\\uD800"}')
    assert untrusted.may_hold_lone_surrogates(b'{"n": "a\\ud800"}')


def test_the_log_formatter_is_one_class_however_often_it_is_asked_for() -> None:
    assert untrusted.LogFormatter is untrusted.LogFormatter is LogFormatter
