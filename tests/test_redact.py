import io
import logging
import sys

import pytest

from reconciler import redact


def test_scrub_masks_registered_values_longest_first() -> None:
    redact.register("canary-secret-value")
    redact.register("canary-secret")
    assert redact.scrub("a canary-secret-value b canary-secret") == "a *** b ***"


def test_short_values_are_not_registered() -> None:
    redact.register("abc")
    assert redact.scrub("abc") == "abc"


def test_output_streams_and_logs_are_masked_while_a_command_runs(monkeypatch) -> None:
    out, err = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(sys, "stderr", err)
    handler = logging.StreamHandler(err)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        with redact.redacted_output():
            redact.register("planted-canary-1234")
            print("stdout planted-canary-1234")
            sys.stderr.write("stderr planted-canary-1234\n")
            logging.getLogger("reconciler.test").warning("log %s", "planted-canary-1234")
            try:
                raise ValueError("boom planted-canary-1234")
            except ValueError:
                logging.getLogger("reconciler.test").exception("failed")
    finally:
        root.removeHandler(handler)
    assert "planted-canary-1234" not in out.getvalue() + err.getvalue()
    assert "stdout ***" in out.getvalue()
    assert "log ***" in err.getvalue()
    assert "boom ***" in err.getvalue()
    assert sys.stdout is out  # restored


def test_values_are_masked_in_every_escaped_form_outputs_use() -> None:
    import html
    import json

    import reconciler.render.markdown  # noqa: F401 - registers the markdown forms
    from reconciler.untrusted import escaped, json_shown, markdown_text, quoted

    value = 'q"b\\<&>é-canary@org'
    redact.register(value)
    spelled = {
        value,
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
        escaped(value),
        quoted(value)[1:-1],
        json_shown(value)[1:-1],
        html.escape(value),
        markdown_text(value),
        markdown_text(json_shown(value)[1:-1]),
    }
    assert len(spelled) >= 5  # the forms really differ
    for form in spelled:
        assert redact.scrub(f"[{form}]") == f"[{redact.MASK}]", form


def test_the_minimum_length_is_the_one_references_enforce() -> None:
    from reconciler.references import MIN_LENGTH

    assert MIN_LENGTH == redact.MIN_LENGTH == 8
    redact.register("x" * 7)
    assert redact.scrub("x" * 7) == "x" * 7


@pytest.mark.parametrize(
    "value",
    [
        'back\\slash"ESC\x1b-quote',  # one_line keeps the backslash, repr the double quote
        "both'quotes\"and-BEL\x07",  # repr escapes the single quote, \x07 not \u0007
        "C1-\x9b-and-é-tab\t",  # repr: \x9b, and é kept; ascii(): \xe9
    ],
)
def test_an_error_quoting_a_value_is_masked_as_the_cli_prints_it(value: str) -> None:
    # The CLI prints an unexpected error as `internal error: KeyError: 'value'` through
    # `one_line`: repr() and one_line spell a value unlike JSON or `escaped`.
    from reconciler.untrusted import one_line

    redact.register(value)
    for error, quoted in (
        (KeyError(value), "'***'"),
        (ValueError(f"bad {value!r} here"), "bad '***' here"),
        (ValueError(f"bad {value!a} here"), "bad '***' here"),
        (ValueError(value), "***"),
    ):
        shown = redact.scrub(one_line(f"internal error: {type(error).__name__}: {error}"))
        assert shown == f"internal error: {type(error).__name__}: {quoted}", shown


def test_holds_finds_a_value_in_any_form_among_many() -> None:
    # Past a few dozen spellings, `holds` looks each place of the text up instead.
    many = [f"many-values-{n:05d}-\x1b" for n in range(200)]
    for value in many:
        redact.register(value)
    from reconciler.untrusted import escaped

    assert redact.holds(f"a note with {escaped(many[137])} inside")
    assert redact.holds(many[199])
    assert not redact.holds("many-values-00200-\\u001b and many-values-0013")
    assert redact.scrub(f"[{escaped(many[0])}]") == f"[{redact.MASK}]"
    # Longest first among many too: a value inside a longer one leaves no part behind.
    redact.register("many-values-00042-\x1b-and-more")
    assert redact.scrub("many-values-00042-\x1b-and-more!") == f"{redact.MASK}!"


def test_a_value_of_exactly_the_minimum_length_is_masked_anywhere_in_a_text() -> None:
    redact.register("8-chars!")
    assert redact.scrub("at the end: 8-chars!") == f"at the end: {redact.MASK}"
    assert redact.holds("at the end: 8-chars!")
    assert not redact.holds("8-chars")


def test_quotes_around_a_value_stay_visible() -> None:
    # Each form is the value as a renderer spells it *inside* quotes: a mask that took the
    # quotes too would garble the JSON or message around it.
    redact.register("plain-value-42")
    shown = redact.scrub("""["plain-value-42", 'plain-value-42', "x"]""")
    assert shown == """["***", '***', "x"]"""


@pytest.mark.parametrize("odd", ["\x85", "\u2028", "\x7f", "é"])
def test_every_json_and_html_spelling_of_a_value_is_masked(odd: str) -> None:
    # C1 controls and U+2028 are left raw by json.dumps(ensure_ascii=False) but escaped by
    # the other forms; `&quot;` exists only when quotes are escaped.
    import html
    import json

    value = f'odd{odd}"<value>'
    redact.register(value)
    for form in (
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
        html.escape(value, quote=False),
        html.escape(value, quote=True),
    ):
        assert redact.scrub(f"<{form}>") == f"<{redact.MASK}>", form


def test_a_form_added_later_masks_values_registered_before() -> None:
    redact.register("registered-before-the-form")
    redact.mask_form(lambda value: value.upper().replace("-", "_"))
    try:
        assert redact.scrub("REGISTERED_BEFORE_THE_FORM") == redact.MASK
        redact.register("registered-after-the-form")
        assert redact.scrub("REGISTERED_AFTER_THE_FORM") == redact.MASK
    finally:
        redact._forms.pop()


def test_holds_with_few_values() -> None:
    redact.register("one-few-value")
    assert redact.holds("see one-few-value here")
    assert not redact.holds("see one-few-valu here")


def test_many_values_are_found_at_the_very_end_of_a_text() -> None:
    for n in range(100):
        redact.register(f"end-value-{n:03d}")
    redact.register("8-chars?")
    for value in ("end-value-099", "8-chars?"):
        assert redact.holds(f"ends with {value}")
        assert redact.scrub(f"ends with {value}") == f"ends with {redact.MASK}"


@pytest.mark.parametrize("others", [0, 100])
def test_forgetting_values_edited_in_place_unmasks_them(others: int) -> None:
    # How tests forget what they registered (tests/conftest.py), with few values or many.
    for n in range(others):
        redact.register(f"other-value-{n:03d}")
    redact.register("kept-value-123")
    redact.register("forgotten-value-123")
    redact._values.discard("forgotten-value-123")
    redact._refresh()
    assert redact.scrub("kept-value-123 forgotten-value-123") == "*** forgotten-value-123"
    assert not redact.holds("forgotten-value-123")


def test_in_github_actions_each_value_is_announced_once_and_short_ones_never(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    redact.register("announced-value")
    redact.register("announced-value")
    redact.register("short")
    assert capfd.readouterr().err.splitlines() == ["::add-mask::announced-value"]


def test_nothing_is_announced_outside_github_actions(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    redact.register("not-announced-value")
    assert capfd.readouterr().err == ""


class _Terminal(io.StringIO):
    encoding = "cp1252"  # type: ignore[assignment]
    flushed = 0

    def isatty(self) -> bool:
        return True

    def fileno(self) -> int:
        return 7

    def flush(self) -> None:
        self.flushed += 1


def test_a_redacting_stream_behaves_as_the_terminal_it_wraps() -> None:
    # rich and click ask the stream whether it is a terminal and which encoding it takes.
    terminal = _Terminal()
    stream = redact.RedactingStream(terminal)
    redact.register("stream-secret-1")
    assert stream.write("a stream-secret-1 b") == len("a stream-secret-1 b")
    stream.flush()
    assert terminal.getvalue() == "a *** b"
    assert terminal.flushed == 1
    assert stream.isatty() and stream.fileno() == 7 and stream.encoding == "cp1252"
    assert redact.RedactingStream(io.BytesIO()).encoding == "utf-8"  # type: ignore[arg-type]


def test_a_log_handler_added_during_a_command_is_masked_and_filters_are_removed_after(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    err = io.StringIO()
    root = logging.getLogger()
    # One handler when the command starts; the one added later is called first, so no other
    # handler's filter masks the record for it.
    monkeypatch.setattr(root, "handlers", [logging.NullHandler()])
    before = list(root.filters), [list(h.filters) for h in root.handlers]
    with redact.redacted_output():
        handler = logging.StreamHandler(err)
        root.handlers.insert(0, handler)
        try:
            redact.register("late-handler-secret")
            root.warning("root says late-handler-secret")
        finally:
            root.removeHandler(handler)
    assert err.getvalue() == "root says ***\n"
    assert (list(root.filters), [list(h.filters) for h in root.handlers]) == before


def test_a_command_that_logs_nothing_starts_without_logging_and_still_masks_later_records() -> None:
    # Without logging imported there is no handler to wrap (validate runs so); a record
    # made once something imports it goes to logging's last resort, the wrapped stderr.
    import subprocess

    probe = (
        "import sys\n"
        "from reconciler import redact\n"
        "with redact.redacted_output():\n"
        "    print('logging' in sys.modules)\n"
        "    redact.register('planted-canary-1234')\n"
        "    import logging\n"
        "    logging.warning('root %s', 'planted-canary-1234')\n"
        "    try:\n"
        "        raise ValueError('boom planted-canary-1234')\n"
        "    except ValueError:\n"
        "        logging.getLogger('reconciler.test').exception('failed')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout == "False\n"
    assert "planted-canary-1234" not in done.stderr
    assert "root ***" in done.stderr
    assert "boom ***" in done.stderr


@pytest.mark.parametrize("others", [0, 100])
def test_a_value_that_ends_a_longer_one_leaves_no_part_of_the_longer_one(others: int) -> None:
    # Longest first whatever the spellings' order, with few values or many: masking the
    # inner value first would leave the start of the outer one readable.
    for n in range(others):
        redact.register(f"filler-value-{n:03d}")
    redact.register("inner-secret-42")
    redact.register("0-outer-then-inner-secret-42")
    shown = redact.scrub("[0-outer-then-inner-secret-42]")
    assert shown == f"[{redact.MASK}]"
    assert "outer" not in shown


def test_a_form_spelling_a_value_shorter_than_the_minimum_masks_no_ordinary_text() -> None:
    # A renderer's form may drop characters; what it leaves under the minimum would mask
    # ordinary words all over the output, and protects nothing.
    redact.mask_form(lambda value: value.split("-")[0])
    try:
        redact.register("long-enough-value")
        assert redact.scrub("so long, long-enough-value") == f"so long, {redact.MASK}"
        assert not redact.holds("so long")
    finally:
        redact._forms.pop()


def test_an_exception_logged_without_a_traceback_is_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    # `exc_info=error` with an error never raised: the record has no traceback to format.
    out, err, log = io.StringIO(), io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(sys, "stderr", err)
    monkeypatch.setattr(logging.getLogger(), "handlers", [logging.StreamHandler(log)])
    with redact.redacted_output():
        redact.register("unraised-canary-1234")
        error = ValueError("boom unraised-canary-1234")
        logging.getLogger("reconciler.test").error("failed", exc_info=error)
    shown = out.getvalue() + err.getvalue() + log.getvalue()
    assert "unraised-canary-1234" not in shown
    assert "ValueError: boom ***" in log.getvalue()


@pytest.mark.parametrize("others", [0, 100])
def test_a_text_holding_a_value_short_of_its_first_or_last_character_is_left_alone(
    others: int,
) -> None:
    # A spelling cut short would mask parts of ordinary text, and make the planner hide a
    # live value that only looks like a secret; with few values or many.
    for n in range(others):
        redact.register(f"filler-value-{n:03d}")
    redact.register("whole-secret-value")
    for part in ("hole-secret-value", "whole-secret-valu"):
        assert redact.scrub(f"[{part}]") == f"[{part}]"
        assert not redact.holds(f"[{part}]")


def test_a_value_is_masked_in_each_way_a_server_may_quote_it_in_a_url_or_form() -> None:
    # A refused request echoed back: a path keeps "/" or not, a form body spells " " as "+";
    # a value holding both a slash and a space has a different spelling in each.
    from urllib.parse import quote, quote_plus

    value = "sec/ret pass&word"
    redact.register(value)
    spellings = {quote(value, safe=""), quote(value, safe="/"), quote_plus(value, safe="")}
    assert len(spellings) == 3
    for spelled in spellings:
        assert redact.scrub(f"GET /x?p={spelled} 400") == f"GET /x?p={redact.MASK} 400", spelled
