import io
import logging
import sys

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
