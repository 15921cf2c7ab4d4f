"""Text from outside stays on its line and never forges a workflow command."""

from __future__ import annotations

import pytest

from reconciler.untrusted import escaped, json_shown, quoted


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("plain", "plain"),
        ("a\nb\r\n", "a\\nb\\r\\n"),
        ("\x1b[31mred", "\\u001b[31mred"),
        ("back\\slash", "back\\\\slash"),
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
