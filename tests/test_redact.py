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
