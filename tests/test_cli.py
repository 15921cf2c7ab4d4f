"""The console program end to end: every exit code of product.md, over real HTTP.

Each exit code is shown at least once by running `python -m reconciler` in a subprocess
against the emulator on 127.0.0.1; in-process runs (`invoke`) set up state or check
details where a subprocess would add nothing.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import pty
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from conftest import FakeClock
from console import (
    CANARY_ENV,
    apply_directly,
    child_env,
    invoke,
    run_cli,
    sources_yaml,
    stopped_at_loading,
    waiting_on,
    write_sources,
    writes_since,
)

from reconciler.emulator import SourceStore
from reconciler.live import LiveSource
from reconciler.plan import Plan
from reconciler.schema import render_sources_schema

pytestmark = pytest.mark.e2e

PRODUCTS_WIRE: dict[str, Any] = {
    "name": "Products",
    "deployment": {
        "type": "s3",
        "imgix_subdomains": ["e2e-products"],
        "s3_bucket": "e2e-products",
        "s3_access_key": "AKIAE2EEXAMPLEKEY01",
        "s3_secret_key": CANARY_ENV["E2E_S3_SECRET_KEY"],
    },
}
PRODUCTS_YAML = """\
version: 1
sources:
  - name: Products
    enabled: {enabled}
    deployment:
      type: s3
      imgix_subdomains: [e2e-products]
      s3_bucket: e2e-products
      s3_access_key: AKIAE2EEXAMPLEKEY01
      s3_secret_key: {{env: E2E_S3_SECRET_KEY}}
      cache_ttl_value: {ttl}
"""
TAKEN_YAML = """\
  - name: Taken
    deployment:
      type: webfolder
      imgix_subdomains: [e2e-taken]
      webfolder_base_url: https://taken.e2e.example/
"""
INVALID_YAML = """\
version: 1
sources:
  - name: Products
    deployment:
      type: s3
      imgix_subdomains: [e2e-products]
      s3_bucket: e2e-products
      s3_access_key: AKIAE2EEXAMPLEKEY01
      s3_secret_key: {env: E2E_S3_SECRET_KEY}
      cache_ttl_value: 60
"""
TWO = ("Products", "Blog")
LOCATED = re.compile(r"^\S+\.yaml:\d+:\d+: ", re.MULTILINE)


@pytest.fixture
def store(emulator_store: SourceStore) -> SourceStore:
    """The test's emulated account: sources deploy at once, rate limits off."""
    emulator_store.deploy_delay = 0
    return emulator_store


@pytest.fixture
def sources(tmp_path: Path) -> Path:
    """Two sources, with secrets from env and from files (few requests: the CLI paces)."""
    return write_sources(tmp_path, sources_yaml(*TWO))


@pytest.fixture
def applied(store: SourceStore, emulator_url: str, sources: Path) -> SourceStore:
    """The account after applying `sources`."""
    apply_directly(emulator_url, sources, CANARY_ENV)
    assert sorted(s.name for s in store.sources.values()) == sorted(TWO)
    return store


def products_file(directory: Path, *, enabled: bool = True, ttl: int = 31536000) -> Path:
    path = directory / "products.yaml"
    path.write_text(PRODUCTS_YAML.format(enabled=str(enabled).lower(), ttl=ttl))
    return path


def source_id(store: SourceStore, name: str) -> str:
    (found,) = [s.id for s in store.sources.values() if s.name == name]
    return found


def assert_one_clear_error(stderr: str, *words: str) -> None:
    """A failure tells the user in one `error:` sentence, with no traceback."""
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ")
    for word in words:
        assert word in lines[0]


# --------------------------------------------------------------------------- validate, schema


def test_validate_exits_0_for_a_valid_file_and_1_for_an_invalid_one(
    sources: Path, tmp_path: Path
) -> None:
    valid = run_cli("validate", sources, env=CANARY_ENV)
    assert valid.returncode == 0, valid.stderr
    assert valid.stderr == f"{sources}: 2 sources valid\n"

    invalid = tmp_path / "invalid.yaml"
    invalid.write_text(INVALID_YAML)
    result = run_cli("validate", invalid, env=CANARY_ENV)
    assert result.returncode == 1
    assert f"{invalid}:10:24: deployment.cache_ttl_value: must be >= 1800" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_a_valid_file_given_twice_under_two_names_is_counted_once(tmp_path: Path) -> None:
    # The second name was checked once with the first, then said "0 sources valid".
    file = write_sources(tmp_path, sources_yaml(*TWO))
    linked = tmp_path / "linked.yaml"
    linked.symlink_to(file.name)
    result = invoke("validate", "--no-resolve", file, f"{tmp_path}/./{file.name}", linked)
    assert result.exit_code == 0
    assert result.stderr == f"{file}: 2 sources valid\n"


def test_schema_prints_the_generated_json_schema_and_exits_0() -> None:
    result = run_cli("schema")
    assert result.returncode == 0, result.stderr
    assert result.stdout == render_sources_schema()
    assert json.loads(result.stdout)["type"] == "object"


# --------------------------------------------------------------------------- plan


def test_saved_plan_is_applied_then_the_next_plan_is_empty(
    store: SourceStore, emulator_url: str, sources: Path, tmp_path: Path
) -> None:
    saved = tmp_path / "plan.json"
    planned = run_cli("plan", sources, "--out", saved, "--api-url", emulator_url, env=CANARY_ENV)
    assert planned.returncode == 0, planned.stderr  # changes, but no --detailed-exitcode
    assert planned.stdout.startswith("Plan: 2 to create, 0 to patch")
    document = Plan.model_validate_json(saved.read_text())
    assert saved.read_text().endswith("}\n")  # a text file, whole: diffs and cat show it so
    assert [a.source for a in document.actions] == sorted(TWO)
    assert f"Digest: {document.digest}" in planned.stdout

    detailed = run_cli(
        "plan", sources, "--detailed-exitcode", "--format", "json", "--api-url", emulator_url,
        env=CANARY_ENV,
    )  # fmt: skip
    assert detailed.returncode == 2, detailed.stderr
    # The same document, but only the saved one carries the MAC that makes it applicable.
    assert json.loads(detailed.stdout) == {
        k: v for k, v in json.loads(saved.read_text()).items() if k != "mac"
    }
    assert json.loads(saved.read_text())["mac"].startswith("hmac-sha256:")
    assert writes_since(store, 0) == []

    mark = len(store.request_log)
    result = run_cli("apply", saved, "--auto-approve", "--api-url", emulator_url, env=CANARY_ENV)
    assert result.returncode == 0, result.stderr
    assert "Apply: 2 applied, 0 failed." in result.stdout
    assert sorted(s.name for s in store.sources.values()) == sorted(TWO)

    # Applied again (a resumed run), the saved plan skips what is already in effect.
    mark = len(store.request_log)
    twice = invoke("apply", saved, "--auto-approve", "--api-url", emulator_url, env=CANARY_ENV)
    assert twice.exit_code == 0, twice.output
    assert "2 already in effect (skipped)" in twice.stdout
    assert writes_since(store, mark) == []

    again = run_cli(
        "plan", sources, "--detailed-exitcode", "--api-url", emulator_url, env=CANARY_ENV
    )
    assert again.returncode == 0, again.stdout
    assert again.stdout.startswith("No changes: 2 unchanged")

    mark = len(store.request_log)
    nothing = run_cli("apply", sources, "--auto-approve", "--api-url", emulator_url, env=CANARY_ENV)
    assert nothing.returncode == 0, nothing.stderr
    assert "Nothing to do." in nothing.stderr
    assert writes_since(store, mark) == []


def test_apply_reads_a_saved_plan_or_a_file_through_a_pipe(
    store: SourceStore, emulator_url: str, tmp_path: Path
) -> None:
    # `apply <(cat plan.json)`: the input was read twice, the pipe's first bytes lost, and
    # the plan refused as "the file must be a mapping with 'version: 1'".
    sources = write_sources(tmp_path, sources_yaml("Products", "Uploads"))
    saved = tmp_path / "plan.json"
    assert run_cli("plan", sources, "--out", saved, "--api-url", emulator_url).returncode == 0
    applied = _through_bash_pipe(saved, emulator_url)
    assert applied.returncode == 0, applied.stderr
    assert "Apply: 2 applied, 0 failed." in applied.stdout
    assert sorted(s.name for s in store.sources.values()) == ["Products", "Uploads"]

    # A desired-state file through a pipe, as `validate <(generate-sources)` reads one.
    sources.write_text(sources_yaml("Products", "Uploads").replace("604800", "86400"))
    mark = len(store.request_log)
    again = _through_bash_pipe(sources, emulator_url)
    assert again.returncode == 0, again.stderr
    assert "Apply: 1 applied, 0 failed." in again.stdout
    assert len(writes_since(store, mark)) == 1


def _through_bash_pipe(path: Path, api_url: str) -> subprocess.CompletedProcess[str]:
    command = 'exec "$0" -m reconciler apply --auto-approve --api-url "$2" <(cat "$1")'
    return subprocess.run(
        ["bash", "-c", command, sys.executable, str(path), api_url],
        env=child_env(CANARY_ENV),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_plan_of_an_invalid_file_exits_1_with_located_errors_before_a_write_or_second_page(
    store: SourceStore, emulator_url: str, tmp_path: Path
) -> None:
    invalid = tmp_path / "invalid.yaml"
    invalid.write_text(INVALID_YAML)
    result = run_cli("plan", invalid, "--api-url", emulator_url, env=CANARY_ENV)
    assert result.returncode == 1
    assert LOCATED.search(result.stderr), result.stderr
    assert "must be >= 1800" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    assert stopped_at_loading(store)


def test_plan_with_a_rejected_api_key_exits_1_with_one_sentence(
    store: SourceStore, emulator_url: str, sources: Path
) -> None:
    env = {**CANARY_ENV, "IMGIX_API_KEY": "ak_not-a-key"}
    result = run_cli("plan", sources, "--api-url", emulator_url, env=env)
    assert result.returncode == 1
    assert_one_clear_error(result.stderr, "401", "IMGIX_API_KEY")
    assert "ak_not-a-key" not in result.stderr
    assert result.stdout == ""
    assert [e.status for e in store.request_log] == [401]


def test_plan_against_a_closed_port_exits_1_naming_the_address(sources: Path) -> None:
    with socket.socket() as probe:  # a port nobody listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # The default retry deadline (120 s, full-jitter backoff) would keep a test waiting
    # for many seconds; a CI job that prefers failing fast does the same.
    env = {**CANARY_ENV, "IMGIX_RECONCILER_RETRY_DEADLINE": "0"}
    result = run_cli("plan", sources, "--api-url", f"http://127.0.0.1:{port}", env=env)
    assert result.returncode == 1
    assert_one_clear_error(result.stderr, "127.0.0.1", "No response")


def test_plan_target_plans_only_the_named_source(
    store: SourceStore, emulator_url: str, sources: Path
) -> None:
    result = invoke(
        "plan", sources, "--target", "Blog", "--format", "json", "--api-url", emulator_url,
        env=CANARY_ENV,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert [a["source"] for a in json.loads(result.stdout)["actions"]] == ["Blog"]

    applied = invoke(
        "apply", sources, "--target", "Products", "--auto-approve", "--api-url", emulator_url,
        env=CANARY_ENV,
    )  # fmt: skip
    assert applied.exit_code == 0, applied.output
    assert [s.name for s in store.sources.values()] == ["Products"]

    unknown = invoke("plan", sources, "--target", "Nope", "--api-url", emulator_url, env=CANARY_ENV)
    assert unknown.exit_code == 1
    assert '"Nope"' in unknown.stderr


def test_plan_adopt_plans_the_writes_that_adopt_a_source_made_in_the_dashboard(
    store: SourceStore, emulator_url: str, tmp_path: Path
) -> None:
    store.create_source(PRODUCTS_WIRE)  # no imgix-reconciler marker
    file = products_file(tmp_path)
    file.write_text(file.read_text().replace("      cache_ttl_value: 31536000\n", ""))

    plain = invoke("plan", file, "--format", "json", "--api-url", emulator_url, env=CANARY_ENV)
    assert plain.exit_code == 0, plain.output
    assert json.loads(plain.stdout)["actions"] == []

    adopting = invoke(
        "plan", file, "--adopt", "--format", "json", "--api-url", emulator_url, env=CANARY_ENV
    )
    assert adopting.exit_code == 0, adopting.output
    (action,) = json.loads(adopting.stdout)["actions"]
    assert (action["action"], action["source"]) == ("patch", "Products")


def test_apply_adopt_writes_the_adopting_patch_and_plain_apply_writes_nothing(
    store: SourceStore, emulator_url: str, tmp_path: Path
) -> None:
    made_in_the_dashboard = store.create_source(PRODUCTS_WIRE)["id"]  # no marker
    file = products_file(tmp_path)
    file.write_text(file.read_text().replace("      cache_ttl_value: 31536000\n", ""))
    mark = len(store.request_log)

    plain = invoke("apply", file, "--auto-approve", "--api-url", emulator_url, env=CANARY_ENV)
    assert plain.exit_code == 0, plain.output
    assert "Nothing to do." in plain.stderr
    assert writes_since(store, mark) == []

    adopting = invoke(
        "apply", file, "--adopt", "--auto-approve", "--api-url", emulator_url, env=CANARY_ENV
    )
    assert adopting.exit_code == 0, adopting.output
    assert "Apply: 1 applied, 0 failed." in adopting.stdout
    written = [(e.method, e.path) for e in writes_since(store, mark)]
    assert written == [("PATCH", f"/api/v1/sources/{made_in_the_dashboard}")]


# The CLI, then a signal once it has returned (CI's second one, or a late Ctrl-C).
_SIGNALLED_AFTER_THE_COMMAND = """
import os, sys
from reconciler.cli import run

number = int(sys.argv[1])
sys.argv[1:] = sys.argv[2:]
try:
    run(prog_name="imgix-reconciler")
finally:
    os.kill(os.getpid(), number)
    print("still running after the signal", file=sys.stderr)
"""


@pytest.mark.parametrize("number", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_after_the_command_ends_the_process_at_once_without_a_traceback(
    number: signal.Signals, tmp_path: Path
) -> None:
    file = products_file(tmp_path)
    done = subprocess.run(
        [sys.executable, "-c", _SIGNALLED_AFTER_THE_COMMAND, str(int(number)), "validate",
         "--no-resolve", file],
        env=child_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )  # fmt: skip
    assert "1 source valid" in done.stderr
    assert done.returncode == -number, done.stderr
    assert "Traceback" not in done.stderr
    assert "KeyboardInterrupt" not in done.stderr
    assert "still running" not in done.stderr


# The CLI, SIGTERM arriving while it loads the files (CI cancelling the job).
_TERMINATED_WHILE_LOADING = """
import signal, sys
import reconciler.loader
from reconciler.cli import run

loaded = reconciler.loader.load

def terminated(*args, **kwargs):
    signal.raise_signal(signal.SIGTERM)
    return loaded(*args, **kwargs)

reconciler.loader.load = terminated
run(prog_name="imgix-reconciler")
"""


def test_sigterm_ends_a_command_as_ctrl_c_does(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _TERMINATED_WHILE_LOADING, "validate", "--no-resolve",
         products_file(tmp_path)],
        env=child_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )  # fmt: skip
    # Not SIGTERM's silent death (-15): CI reads one line and exit 1.
    assert (done.returncode, done.stderr.strip()) == (1, "Aborted.")


def test_usage_names_the_program_as_installed_not_as_run() -> None:
    done = run_cli("validate")
    assert done.returncode == 1
    assert done.stderr.startswith("Usage: imgix-reconciler validate "), done.stderr


def test_drift_in_actions_writes_its_report_as_the_step_summary(
    applied: SourceStore, emulator_url: str, sources: Path, tmp_path: Path
) -> None:
    sources.write_text(
        sources.read_text().replace("cache_ttl_value: 604800", "cache_ttl_value: 86400")
    )
    summary = tmp_path / "summary.md"
    env = {**CANARY_ENV, "GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary)}
    result = invoke("drift", sources, "--format", "markdown", "--api-url", emulator_url, env=env)
    assert result.exit_code == 2, result.output
    # The summary is the drift report itself, not a plan of the same changes.
    assert summary.read_text("utf-8").strip() == result.stdout.strip()
    assert result.stdout.startswith("<!-- imgix-reconciler:drift -->")


def test_apply_in_actions_writes_the_plan_it_applies_as_the_step_summary(
    store: SourceStore, emulator_url: str, sources: Path, tmp_path: Path
) -> None:
    planned = invoke("plan", sources, "--format", "markdown", "--api-url", emulator_url,
                     env=CANARY_ENV)  # fmt: skip
    summary = tmp_path / "summary.md"
    env = {**CANARY_ENV, "GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary)}
    result = invoke("apply", sources, "--auto-approve", "--api-url", emulator_url, env=env)
    assert result.exit_code == 0, result.output
    assert summary.read_text("utf-8").strip() == planned.stdout.strip()


def test_apply_with_nothing_to_do_reports_the_plans_digest_in_json(
    applied: SourceStore, emulator_url: str, sources: Path
) -> None:
    planned = invoke("plan", sources, "--format", "json", "--api-url", emulator_url,
                     env=CANARY_ENV)  # fmt: skip
    result = invoke(
        "apply", sources, "--auto-approve", "--format", "json", "--api-url", emulator_url,
        env=CANARY_ENV,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Nothing to do." in result.stderr
    assert json.loads(result.stdout)["digest"] == json.loads(planned.stdout)["digest"]
    assert not result.stdout.endswith("\n\n")


# --------------------------------------------------------------------------- apply


# The CLI, with a signal raised as the report is about to be drawn: the writes are over.
_SIGNALLED_AT_THE_REPORT = """
import importlib, signal, sys
from reconciler.cli import run

render = importlib.import_module("reconciler.render")
drawn, number = render.render_report, int(sys.argv[1])

def signalled(*args, **kwargs):
    signal.raise_signal(number)
    return drawn(*args, **kwargs)

render.render_report = signalled
sys.argv[1:] = sys.argv[2:]
run(prog_name="imgix-reconciler")
"""


@pytest.mark.parametrize("number", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_after_the_writes_does_not_cut_the_report_short(
    number: signal.Signals, store: SourceStore, emulator_url: str, sources: Path
) -> None:
    # Removing apply's handlers restored SIGTERM's default action: a CI cancel landing
    # between the last write and the report ended the process silently (-15), its writes
    # made and reported nowhere.
    done = subprocess.run(
        [sys.executable, "-c", _SIGNALLED_AT_THE_REPORT, str(int(number)), "apply", sources,
         "--auto-approve", "--api-url", emulator_url],
        env=child_env(CANARY_ENV),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Apply: 2 applied, 0 failed." in done.stdout
    assert "Traceback" not in done.stderr
    assert sorted(s.name for s in store.sources.values()) == sorted(TWO)


@contextlib.contextmanager
def _first_write_held(store: SourceStore) -> Iterator[threading.Event]:
    """The first write is committed but not answered until the block ends: one under way.

    Yields an event set once that write is held. The emulator answers nothing meanwhile:
    apply one source, or a write sent meanwhile lands in the next test's store.
    """
    held, release = threading.Event(), threading.Event()

    def hold(store: SourceStore) -> None:
        if not held.is_set():
            held.set()
            release.wait(timeout=60)

    store.on_commit = hold
    try:
        yield held
    finally:
        release.set()
        store.on_commit = None


def test_a_second_signal_ends_apply_at_once_with_a_line_saying_so_exit_3_and_no_report(
    store: SourceStore, emulator_url: str, tmp_path: Path
) -> None:
    # README: "A second signal ends the process at once, with a line saying so and exit 3
    # ..., without the report." CI sends SIGTERM 7.5 s after its SIGINT.
    with _first_write_held(store) as held:
        process = subprocess.Popen(
            [sys.executable, "-m", "reconciler", "apply", str(products_file(tmp_path)),
             "--auto-approve", "--api-url", emulator_url],
            env=child_env(CANARY_ENV),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        try:
            assert held.wait(timeout=60)
            process.send_signal(signal.SIGINT)
            assert process.stderr is not None
            seen = [process.stderr.readline()]
            while seen[-1] and not seen[-1].startswith("SIGINT received"):
                seen.append(process.stderr.readline())
            assert seen[-1].startswith("SIGINT received: starting no more writes"), seen
            process.send_signal(signal.SIGTERM)
            stdout, stderr = process.communicate(timeout=30)
        finally:
            process.kill()
    assert process.returncode == 3, stderr
    assert stderr == (
        "SIGTERM received again: stopping at once, without a report; a write under way "
        "may or may not have been applied (the next plan tells)\n"
    )
    # The plan shown before the writes stays; no report follows it.
    assert stdout.startswith("Plan: 1 to create"), stdout
    assert "Apply:" not in stdout and "applied" not in stdout
    assert len(store.sources) == 1  # the write held when the signals came was committed


@pytest.mark.parametrize("reader", ["pipe", "terminal"])
def test_signals_stop_apply_even_once_its_stderr_reader_is_gone(
    store: SourceStore, emulator_url: str, tmp_path: Path, reader: str
) -> None:
    # `apply ... 2>&1 | tee log`: Ctrl-C ends tee too, and the apply's lines about the
    # signal then cannot be written (nor a closed terminal's progress bar stopped). The
    # signals must still stop it, the second at once.
    controller, terminal = pty.openpty()
    with _first_write_held(store) as held:
        process = subprocess.Popen(
            [sys.executable, "-m", "reconciler", "apply", str(products_file(tmp_path)),
             "--auto-approve", "--api-url", emulator_url],
            env=child_env({**CANARY_ENV, "TERM": "xterm-256color"}),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=terminal if reader == "terminal" else subprocess.PIPE,
        )  # fmt: skip
        os.close(terminal)
        try:
            assert held.wait(timeout=60)
            if process.stderr is not None:
                process.stderr.close()
            os.close(controller)
            process.send_signal(signal.SIGINT)
            process.send_signal(signal.SIGTERM)
            # Ended while its write is still held: at once, not once the write is over.
            returncode = process.wait(timeout=30)
        finally:
            process.kill()
    assert returncode == 3


def test_a_signal_stops_apply_and_it_reports_even_once_its_stderr_reader_is_gone(
    store: SourceStore, emulator_url: str, sources: Path
) -> None:
    # One signal, no write under way: the second create waits an hour for its budget.
    process = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "apply", str(sources), "--auto-approve",
         "--api-url", emulator_url],
        env=child_env({**CANARY_ENV, "IMGIX_RECONCILER_CREATES_PER_HOUR": "1"}),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert process.stderr is not None
        seen = [process.stderr.readline()]
        while seen[-1] and not seen[-1].startswith("waiting "):
            seen.append(process.stderr.readline())
        assert seen[-1].startswith("waiting 1 h 00 min for the hourly create budget"), seen
        process.stderr.close()
        process.send_signal(signal.SIGTERM)
        stdout, _ = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 3, stdout
    assert "1 not attempted (stopped by SIGTERM)" in stdout
    assert len(store.sources) == 1


def test_a_second_signal_on_a_terminal_gives_the_cursor_back(
    store: SourceStore, emulator_url: str, tmp_path: Path
) -> None:
    # The progress bar hides the terminal's cursor while it draws: ending at once must not
    # leave the user's shell without one.
    show_cursor, hide_cursor = "\x1b[?25h", "\x1b[?25l"
    controller, terminal = pty.openpty()
    shown = ""
    try:
        with _first_write_held(store) as held:
            process = subprocess.Popen(
                [sys.executable, "-m", "reconciler", "apply", str(products_file(tmp_path)),
                 "--auto-approve", "--api-url", emulator_url],
                env=child_env({**CANARY_ENV, "TERM": "xterm-256color"}),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=terminal,
            )  # fmt: skip
            os.close(terminal)
            try:
                assert held.wait(timeout=60)
                process.send_signal(signal.SIGINT)
                while "SIGINT received" not in shown:
                    shown += os.read(controller, 65536).decode(errors="replace")
                process.send_signal(signal.SIGTERM)
                with contextlib.suppress(OSError):  # EIO once the program has ended
                    while chunk := os.read(controller, 65536):
                        shown += chunk.decode(errors="replace")
                returncode = process.wait(timeout=30)
            finally:
                process.kill()
    finally:
        os.close(controller)
    assert returncode == 3, shown
    assert "SIGTERM received again: stopping at once" in shown
    assert hide_cursor in shown
    assert shown.rindex(show_cursor) > shown.rindex(hide_cursor), repr(shown[-300:])


def test_apply_leaves_the_signal_handlers_of_its_caller_as_they_were(
    store: SourceStore, emulator_url: str, sources: Path
) -> None:
    # Apply ignores signals once its writes are over; a program (or test) that runs the
    # command in its own process must get its Ctrl-C back afterwards.
    def callers(number: int, frame: object) -> None:
        raise AssertionError("no signal is sent")

    previous = signal.signal(signal.SIGINT, callers), signal.signal(signal.SIGTERM, callers)
    try:
        result = invoke(
            "apply", sources, "--auto-approve", "--api-url", emulator_url, env=CANARY_ENV
        )
        handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    finally:
        signal.signal(signal.SIGINT, previous[0])
        signal.signal(signal.SIGTERM, previous[1])
    assert result.exit_code == 0, result.output
    assert handlers == (callers, callers)


def test_apply_runs_in_a_thread_other_than_the_main_one(
    store: SourceStore, emulator_url: str, sources: Path
) -> None:
    # A program may run the command in a worker thread, where no signal handler can be set
    # nor restored: the apply still runs and reports.
    results: list[Result] = []

    def apply() -> None:
        args = ("apply", sources, "--auto-approve", "--api-url", emulator_url)
        results.append(invoke(*args, env=CANARY_ENV))

    worker = threading.Thread(target=apply)
    worker.start()
    worker.join(timeout=120)
    (result,) = results
    assert result.exit_code == 0, result.output
    assert "Apply: 2 applied, 0 failed." in result.stdout
    assert sorted(s.name for s in store.sources.values()) == sorted(TWO)


def test_apply_without_a_terminal_or_auto_approve_exits_1_and_writes_nothing(
    store: SourceStore, emulator_url: str, sources: Path
) -> None:
    result = run_cli("apply", sources, "--api-url", emulator_url, env=CANARY_ENV)
    assert result.returncode == 1
    assert "without a terminal" in result.stderr
    assert "--auto-approve" in result.stderr
    assert writes_since(store, 0) == []
    assert store.sources == {}


def _apply_answering(
    sources: Path, emulator_url: str, answer: bytes, env: dict[str, str] | None = None
) -> tuple[int, str, str]:
    """`apply` with a terminal on stdin that types `answer`: exit code, stdout, stderr."""
    controller, terminal = pty.openpty()
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "reconciler", "apply", str(sources), "--api-url", emulator_url],
            env=child_env({**CANARY_ENV, **(env or {})}),
            stdin=terminal,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        os.write(controller, answer)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        os.close(controller)
        os.close(terminal)
    return process.returncode, stdout, stderr


def test_apply_asks_on_a_terminal_and_a_no_writes_nothing(
    store: SourceStore, emulator_url: str, sources: Path
) -> None:
    code, stdout, stderr = _apply_answering(sources, emulator_url, b"n\n")
    assert code == 1, stderr
    assert "Apply 2 actions? [y/N]" in stderr
    assert "cancelled" in stderr
    assert "Plan: 2 to create" in stdout
    assert writes_since(store, 0) == []


@pytest.mark.parametrize("answer", [b"\x04", b"\xff\n\x04"], ids=["ctrl-d", "garbage then ctrl-d"])
def test_apply_asked_on_a_terminal_and_given_end_of_input_is_cancelled_not_an_internal_error(
    store: SourceStore, emulator_url: str, sources: Path, answer: bytes
) -> None:
    # Ctrl-D at the prompt: "internal error: Abort:  (... please report it)".
    code, _, stderr = _apply_answering(sources, emulator_url, answer)
    assert code == 1, stderr
    assert "internal error" not in stderr
    assert stderr.rstrip().endswith("error: apply cancelled; nothing was written")
    assert writes_since(store, 0) == []


def test_an_answer_the_input_encoding_cannot_read_is_no_not_an_internal_error(
    store: SourceStore, emulator_url: str, sources: Path
) -> None:
    # `PYTHONIOENCODING=ascii` and "s\u00ed" typed at the prompt: "internal error:
    # UnicodeDecodeError".
    env = {"PYTHONIOENCODING": "ascii"}
    code, _, stderr = _apply_answering(sources, emulator_url, "s\u00ed\n".encode(), env)
    assert code == 1, stderr
    assert "internal error" not in stderr
    assert stderr.rstrip().endswith("error: apply cancelled; nothing was written")
    assert writes_since(store, 0) == []


def test_apply_that_disables_a_source_needs_allow_disable(
    store: SourceStore, emulator_url: str, tmp_path: Path
) -> None:
    live_id = store.create_source(PRODUCTS_WIRE)["id"]
    mark = len(store.request_log)
    disabled = products_file(tmp_path, enabled=False)
    refused = run_cli(
        "apply", disabled, "--auto-approve", "--api-url", emulator_url, env=CANARY_ENV
    )
    assert refused.returncode == 1
    assert "--allow-disable" in refused.stderr
    assert "Products" in refused.stderr
    assert writes_since(store, mark) == []
    assert store.sources[live_id].enabled

    allowed = invoke(
        "apply", disabled, "--auto-approve", "--allow-disable", "--api-url", emulator_url,
        env=CANARY_ENV,
    )  # fmt: skip
    assert allowed.exit_code == 0, allowed.output
    assert not store.sources[live_id].enabled


def test_apply_with_a_secret_variable_unset_exits_1_and_writes_nothing(
    store: SourceStore, emulator_url: str, sources: Path, tmp_path: Path
) -> None:
    env = {**CANARY_ENV, "E2E_BLOG_PASSWORD": None}
    result = run_cli("apply", sources, "--auto-approve", "--api-url", emulator_url, env=env)
    assert result.returncode == 1
    assert LOCATED.search(result.stderr), result.stderr
    assert "E2E_BLOG_PASSWORD" in result.stderr
    assert writes_since(store, 0) == []

    # A saved plan resolves its references at apply time: the same refusal, no write.
    saved = tmp_path / "plan.json"
    planned = invoke("plan", sources, "--out", saved, "--api-url", emulator_url, env=CANARY_ENV)
    assert planned.exit_code == 0, planned.output
    refused = invoke("apply", saved, "--auto-approve", "--api-url", emulator_url, env=env)
    assert refused.exit_code == 1
    assert "E2E_BLOG_PASSWORD is not set" in refused.stderr
    assert writes_since(store, 0) == []


def test_apply_with_a_failing_action_exits_3_and_names_it(
    store: SourceStore, emulator_url: str, tmp_path: Path
) -> None:
    live_id = store.create_source(PRODUCTS_WIRE)["id"]
    store.foreign_hostnames.add("e2e-taken")  # another account holds it
    file = products_file(tmp_path, ttl=604800)
    file.write_text(file.read_text() + TAKEN_YAML)

    result = run_cli("apply", file, "--auto-approve", "--api-url", emulator_url, env=CANARY_ENV)
    assert result.returncode == 3, result.stderr
    assert f"applied: patch Products ({live_id})" in result.stdout
    failed = [line for line in result.stdout.splitlines() if line.startswith("failed:")]
    assert len(failed) == 1
    assert failed[0].startswith("failed: create Taken: imgix API 400")
    assert "e2e-taken" in failed[0]
    assert "Apply: 1 applied, 1 failed." in result.stdout
    assert store.sources[live_id].deployment["cache_ttl_value"] == 604800
    assert list(store.sources) == [live_id]


def test_apply_of_a_stale_saved_plan_exits_4_and_writes_nothing(
    applied: SourceStore, emulator_url: str, sources: Path, tmp_path: Path
) -> None:
    sources.write_text(
        sources.read_text().replace("cache_ttl_value: 604800", "cache_ttl_value: 86400")
    )
    saved = tmp_path / "plan.json"
    planned = run_cli("plan", sources, "--out", saved, "--api-url", emulator_url, env=CANARY_ENV)
    assert planned.returncode == 0, planned.stderr
    assert [(a.action, a.source) for a in Plan.model_validate_json(saved.read_text()).actions] == [
        ("patch", "Products")
    ]
    mark = len(applied.request_log)
    applied.dashboard_redeploy(source_id(applied, "Products"), {"cache_ttl_error": 600})

    result = run_cli("apply", saved, "--auto-approve", "--api-url", emulator_url, env=CANARY_ENV)
    assert result.returncode == 4, result.stderr
    assert "stale" in result.stderr
    assert "Products" in result.stderr
    assert "Traceback" not in result.stderr
    assert writes_since(applied, mark) == []


def test_apply_expect_digest_refuses_another_plan_and_applies_the_reviewed_one(
    store: SourceStore, emulator_url: str, tmp_path: Path
) -> None:
    sources = products_file(tmp_path)
    reviewed = invoke(
        "plan", sources, "--format", "json", "--api-url", emulator_url, env=CANARY_ENV
    )
    digest = json.loads(reviewed.stdout)["digest"]

    other = "sha256:" + "0" * 64
    refused = run_cli(
        "apply", sources, "--auto-approve", "--expect-digest", other, "--api-url", emulator_url,
        env=CANARY_ENV,
    )  # fmt: skip
    assert refused.returncode == 4
    assert digest in refused.stderr
    assert other in refused.stderr
    assert writes_since(store, 0) == []

    accepted = run_cli(
        "apply", sources, "--auto-approve", "--expect-digest", digest, "--wait",
        "--api-url", emulator_url, env=CANARY_ENV,
    )  # fmt: skip
    assert accepted.returncode == 0, accepted.stderr
    assert "Apply: 1 applied, 0 failed." in accepted.stdout
    # --wait polled the new source until the emulator said it was deployed.
    (created,) = store.sources
    assert f"GET /api/v1/sources/{created}" in [f"{e.method} {e.path}" for e in store.request_log]
    assert "  Products: deployed" in accepted.stderr


@pytest.fixture
def on_fake_clock(emulator_store: SourceStore, fake_clock: FakeClock) -> Iterator[SourceStore]:
    """`--emulator` serves `emulator_store`, the command's connection sleeping on `fake_clock`."""
    with waiting_on(emulator_store, fake_clock):
        yield emulator_store


@pytest.mark.parametrize("wait", [True, False])
def test_apply_wait_returns_only_once_the_created_source_is_deployed(
    on_fake_clock: SourceStore, fake_clock: FakeClock, tmp_path: Path, wait: bool
) -> None:
    on_fake_clock.deploy_delay = 45
    options = ["--wait"] if wait else []
    result = invoke(
        "apply", products_file(tmp_path), "--emulator", "--auto-approve", *options,
        env=CANARY_ENV,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Apply: 1 applied, 0 failed." in result.stdout
    (created,) = on_fake_clock.sources
    status = on_fake_clock.get_source(created)["attributes"]["deployment_status"]
    if wait:
        # It polled through the 45 s of deploying, on the clock it was given.
        assert status == "deployed"
        assert fake_clock.elapsed >= 45
        assert "  Products: deployed" in result.stderr
    else:
        assert status == "deploying"
        assert fake_clock.elapsed < 45
        assert "deployed" not in result.stderr


@pytest.mark.parametrize("garbled", ["", "SHA256:ABC", "sha256:" + "0" * 63, "sha256:" + "A" * 64])
def test_a_garbled_expect_digest_is_a_mistake_in_the_command_not_a_changed_plan(
    store: SourceStore, emulator_url: str, tmp_path: Path, garbled: str
) -> None:
    # An unset CI variable must not read as exit 4, "the plan changed since review".
    result = invoke(
        "apply", products_file(tmp_path), "--auto-approve", "--expect-digest", garbled,
        "--api-url", emulator_url, env=CANARY_ENV,
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    assert "--expect-digest" in result.stderr
    assert f"expected sha256:<64 lowercase hex>, got {garbled!r}" in result.stderr
    assert writes_since(store, 0) == []


def test_apply_of_a_saved_plan_refuses_planning_options(
    store: SourceStore, emulator_url: str, sources: Path, tmp_path: Path
) -> None:
    saved = tmp_path / "plan.json"
    invoke("plan", sources, "--out", saved, "--api-url", emulator_url, env=CANARY_ENV)
    for option in (["--target", "Blog"], ["--resend-secrets"]):
        result = invoke(
            "apply", saved, *option, "--auto-approve", "--api-url", emulator_url, env=CANARY_ENV
        )
        assert result.exit_code == 1, result.output
        assert option[0] in result.stderr
        assert writes_since(store, 0) == []


@pytest.mark.parametrize(
    ("duration", "seconds"),
    [("5h30m", 19800), ("90m", 5400), ("45s", 45), ("1h1m1s", 3661), (" 2h ", 7200), ("1s", 1)],
)
def test_max_duration_counts_hours_minutes_and_seconds(duration: str, seconds: int) -> None:
    # What --max-duration hands the applier as its budget (checked before any request:
    # the end-to-end runs show the budget stopping writes).
    from reconciler.cli import _duration

    assert _duration(duration) == seconds
    assert _duration(None) is None


@pytest.mark.parametrize(
    ("duration", "reason"),
    [
        ("soon", "expected a duration such as 5h30m, 90m or 45s, got 'soon'"),
        ("  ", "expected a duration such as 5h30m, 90m or 45s, got '  '"),
        ("0h0m0s", "must be longer than zero, got '0h0m0s'"),
    ],
)
def test_a_bad_max_duration_says_what_it_expected(duration: str, reason: str) -> None:
    result = invoke("apply", "sources.yaml", "--max-duration", duration)
    assert result.exit_code == 1, result.output
    assert reason in result.stderr


# --------------------------------------------------------------------------- drift


def test_drift_exits_0_in_sync_2_on_drift_and_1_on_error(
    applied: SourceStore, emulator_url: str, sources: Path, tmp_path: Path
) -> None:
    in_sync = run_cli("drift", sources, "--api-url", emulator_url, env=CANARY_ENV)
    assert in_sync.returncode == 0, in_sync.stderr
    assert "In sync" in in_sync.stderr

    applied.dashboard_redeploy(source_id(applied, "Blog"), {"cache_ttl_value": 86400})
    drifted = run_cli(
        "drift", sources, "--format", "json", "--api-url", emulator_url, env=CANARY_ENV
    )
    assert drifted.returncode == 2, drifted.stderr
    assert "patch Blog" in drifted.stderr
    (action,) = json.loads(drifted.stdout)["actions"]
    assert action["source"] == "Blog"
    assert {"path": "deployment.cache_ttl_value", "before": 86400, "after": 31536000} in action[
        "changes"
    ]

    invalid = tmp_path / "invalid.yaml"
    invalid.write_text(INVALID_YAML)
    error = run_cli("drift", invalid, "--api-url", emulator_url, env=CANARY_ENV)
    assert error.returncode == 1
    assert LOCATED.search(error.stderr), error.stderr


def test_drift_takes_a_parameter_listed_as_text_for_the_files_value(
    store: SourceStore, emulator_url: str, tmp_path: Path
) -> None:
    # A listing may give `default_params` values as text (as a dashboard form saves them):
    # "75" is the file's 75 in an image URL, so a scheduled drift stays quiet instead of
    # failing on every run.
    path = tmp_path / "params.yaml"
    path.write_text(
        "version: 1\nsources:\n  - name: Params\n    deployment:\n      type: webfolder\n"
        "      imgix_subdomains: [e2e-params]\n"
        "      webfolder_base_url: https://params.e2e.example/\n"
        "      default_params: {q: 75, lossless: true}\n"
    )
    apply_directly(emulator_url, path, CANARY_ENV)
    params = source_id(store, "Params")
    # Written through the API with the marker kept (a dashboard edit rewrites the
    # annotation, itself a drift): as an API that keeps the values as text lists them.
    marked = LiveSource.from_resource(store.get_source(params)).deployment["annotation"]
    as_text = {"q": "75", "lossless": "true"}
    store.update_source(params, {"deployment": {"default_params": as_text, "annotation": marked}})
    quiet = run_cli("drift", path, "--api-url", emulator_url, env=CANARY_ENV)
    assert quiet.returncode == 0, quiet.stdout + quiet.stderr

    moved = {"default_params": {**as_text, "q": "80"}, "annotation": marked}
    store.update_source(params, {"deployment": moved})
    drifted = run_cli("drift", path, "--format", "json", "--api-url", emulator_url, env=CANARY_ENV)
    assert drifted.returncode == 2, drifted.stderr
    (action,) = json.loads(drifted.stdout)["actions"]
    assert action["changes"] == [
        {"path": "deployment.default_params.q", "before": "80", "after": 75}
    ]


def test_drift_with_require_marker_and_allow_unadopted_exits_1_before_any_request(
    store: SourceStore, emulator_url: str, sources: Path
) -> None:
    # A scheduled job must not read the contradiction as "in sync" (0) or "drift" (2).
    result = invoke(
        "drift", sources, "--require-marker", "--allow-unadopted", "--api-url", emulator_url
    )
    assert result.exit_code == 1, result.output
    assert_one_clear_error(result.stderr, "--require-marker", "--allow-unadopted")
    assert result.stdout == ""
    assert store.request_log == []
    # Each flag alone is accepted (the old one is the default now): jobs keep running.
    for flag in ("--require-marker", "--allow-unadopted"):
        alone = invoke("drift", sources, flag, "--api-url", emulator_url, env=CANARY_ENV)
        assert alone.exit_code == 2, alone.output  # the sources are not created yet


# --------------------------------------------------------------------------- export


@pytest.mark.parametrize("omitting", [False, True], ids=["full-listings", "omitting-listings"])
def test_export_writes_a_file_that_plans_to_no_changes_without_secrets(
    store: SourceStore, emulator_url: str, tmp_path: Path, omitting: bool
) -> None:
    # Real listings leave out keys without a value (robots.txt unset, no prefix...).
    store.omit_unset = omitting
    apply_directly(emulator_url, write_sources(tmp_path), CANARY_ENV)  # all six types
    legacy = store.create_source(
        {
            "name": "Legacy",
            "enabled": False,
            "deployment": {
                "type": "webfolder",
                "imgix_subdomains": ["e2e-legacy"],
                "custom_domains": ["img.legacy.e2e.example"],
                "webfolder_base_url": "https://legacy.e2e.example/",
                "default_params": {"auto": "format", "q": 60},
                "cache_ttl_behavior": "override_origin",
                "robots.txt": "disallow-all",
            },
        }
    )
    exported = tmp_path / "exported.yaml"
    result = run_cli("export", "--out", exported, "--api-url", emulator_url)
    assert result.returncode == 0, result.stderr
    text = exported.read_text()
    assert legacy["id"] in text
    assert "env:" in text  # secrets are references with generated names
    assert text.count("robots.txt") == 1  # exported where the API has a value, never invented

    # Not one secret variable is set: the plan still has nothing to change.
    plan = run_cli("plan", exported, "--detailed-exitcode", "--api-url", emulator_url)
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert plan.stdout.startswith("No changes: 7 unchanged, 0 unmanaged.")


@pytest.mark.parametrize("command", [["export", "--out"], ["emulator", "--port", "0", "--state"]])
def test_a_file_to_write_in_a_deleted_directory_says_the_directory_is_gone(
    tmp_path: Path, command: list[str]
) -> None:
    # A CI step whose working directory an earlier step removed: export said "No such
    # file or directory: exported.yaml", naming a file that was never there to find.
    gone = tmp_path / "checkout"
    gone.mkdir()
    run = ('cd "$1" && rmdir "$1" && shift && exec "$@"', "sh", str(gone), sys.executable)
    arguments = ("-m", "reconciler", *command, "exported.yaml", "--emulator")
    done = subprocess.run(
        ["sh", "-c", *run, *arguments[: -1 if command[0] == "emulator" else None]],
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1] == (
        "error: the current directory no longer exists, so exported.yaml cannot be reached "
        "(give an absolute path, or run from a directory that exists)"
    )


def test_export_exits_1_when_the_key_is_rejected_or_the_file_cannot_be_written(
    store: SourceStore, emulator_url: str, tmp_path: Path
) -> None:
    env = {"IMGIX_API_KEY": "ak_" + "f" * 63}
    result = run_cli("export", "--api-url", emulator_url, env=env)
    assert result.returncode == 1
    assert_one_clear_error(result.stderr, "401")
    assert result.stdout == ""

    unwritable = tmp_path / "missing" / "exported.yaml"
    unwritten = invoke("export", "--out", unwritable, "--api-url", emulator_url)
    assert unwritten.exit_code == 1
    # The path the user gave, refused before the listing (tests/test_export_e2e.py has
    # the other paths that can only fail; test_atomic.py, the error once writing).
    assert unwritten.stderr == (
        f"error: --out {unwritable}: the folder {unwritable.parent} does not exist\n"
    )


# --------------------------------------------------------------------------- emulator


def start_emulator(state: Path) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "emulator", "--port", "0", "--state", str(state)],
        env=child_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    announced = re.search(r"on (http://127\.0\.0\.1:(\d+))", process.stderr.readline())
    assert announced, "the emulator announces its URL first"
    # The socket listens before the URL is announced: a client may connect at once.
    return process, announced[1]


def stop_emulator(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=20)
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr
    return stderr


def test_emulator_exits_0_on_ctrl_c_and_keeps_its_sources_in_the_state_file(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state.json"
    file = products_file(tmp_path)
    process, url = start_emulator(state)
    try:
        result = invoke("apply", file, "--auto-approve", "--api-url", url, env=CANARY_ENV)
        assert result.exit_code == 0, result.output
    finally:
        stop_emulator(process)
    assert [s["name"] for s in json.loads(state.read_text())["sources"]] == ["Products"]

    process, url = start_emulator(state)
    try:
        again = invoke("plan", file, "--detailed-exitcode", "--api-url", url, env=CANARY_ENV)
        assert again.exit_code == 0, again.output
        assert again.stdout.startswith("No changes: 1 unchanged")
    finally:
        stop_emulator(process)


def test_emulator_exits_1_with_one_sentence_on_a_bad_state_file_or_a_taken_port(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state.json"
    state.write_text('{"version": 1, "sources": [')
    corrupt = invoke("emulator", "--port", "0", "--state", state)
    assert corrupt.exit_code == 1
    assert_one_clear_error(corrupt.stderr, str(state), "not an emulator state file")

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        # A subprocess: `serve` leaves the socket it failed to bind for the GC to close.
        busy = run_cli("emulator", "--port", port)
    assert busy.returncode == 1
    assert_one_clear_error(busy.stderr, f"127.0.0.1:{port}")


@pytest.mark.parametrize(
    "document",
    [
        "[]",
        "null",
        '"sources"',
        '{"version": 1, "sources": [1]}',
        '{"version": 1, "sources": [{"name": "X", "deployment": 5}]}',
        '{"version": 1, "sources": {"name": "X"}}',
    ],
)
def test_an_emulator_state_of_another_shape_is_one_clear_error(
    tmp_path: Path, document: str
) -> None:
    # A JSON array ended in a traceback (AttributeError: 'list' object has no attribute 'get').
    state = tmp_path / "state.json"
    state.write_text(document)
    refused = invoke("emulator", "--port", "0", "--state", state)
    assert refused.exit_code == 1
    assert_one_clear_error(refused.stderr, str(state), "not an emulator state file")


def test_an_unexpected_error_is_one_line_and_exit_1_never_a_traceback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from click.testing import CliRunner

    from reconciler import cli

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("planner bug")

    # The command imports the step where it runs it.
    monkeypatch.setattr("reconciler.reconcile.connect", broken)
    result = CliRunner().invoke(cli.main, ["plan", "examples/sources.yaml", "--emulator"])
    assert result.exit_code == 1
    assert "internal error: RuntimeError: planner bug" in result.stderr
    assert "Traceback" not in result.output + result.stderr


NO_THREAD = "can't start new thread"


@pytest.mark.parametrize(
    ("target", "failure", "shown"),
    [
        ("reconciler.reconcile.connect", MemoryError(), "memory"),
        ("threading.Thread.start", RuntimeError(NO_THREAD), NO_THREAD),
    ],
    ids=["memory", "thread"],
)
def test_a_run_out_of_memory_or_threads_says_so_and_is_no_internal_error(
    monkeypatch: pytest.MonkeyPatch, target: str, failure: BaseException, shown: str
) -> None:
    # `ulimit -v` (about 70 MB here) or a container's limit: these read "internal error:
    # MemoryError:  (... please report it)", a bug to report and no hint of the cause.
    from click.testing import CliRunner

    from reconciler import cli

    def exhausted(*args: object, **kwargs: object) -> None:
        raise failure

    monkeypatch.setattr(target, exhausted)
    result = CliRunner().invoke(cli.main, ["plan", "examples/sources.yaml", "--emulator"])
    assert result.exit_code == 1
    assert result.stderr == (
        f"error: out of resources: {shown} (a memory or process limit of this machine or "
        "container, such as ulimit -v, is too low for this run)\n"
    )


def test_debug_logs_the_traceback_of_an_unexpected_error(monkeypatch: pytest.MonkeyPatch) -> None:
    # The one-line error sends the user to --debug for details: they must be there.
    from click.testing import CliRunner

    from reconciler import cli

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("planner bug")

    monkeypatch.setattr("reconciler.reconcile.connect", broken)
    result = CliRunner().invoke(
        cli.main, ["--debug", "plan", "examples/sources.yaml", "--emulator"]
    )
    assert result.exit_code == 1
    assert "DEBUG reconciler.cli: unexpected error" in result.stderr
    assert "Traceback" in result.stderr
    assert 'raise RuntimeError("planner bug")' in result.stderr
    assert result.stderr.rstrip().endswith(
        "internal error: RuntimeError: planner bug "
        "(re-run with --debug for details, and please report it)"
    )


def test_debug_logs_only_its_own_run_when_main_runs_again_in_the_same_process(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A library caller (or a test) may call `main` several times in one process: each
    # --debug run logs each request once, and a run without --debug logs nothing.
    from reconciler import cli

    monkeypatch.delenv("IMGIX_API_URL", raising=False)
    request_line = "DEBUG reconciler.client: GET sources: 200 (attempt 1)"

    def stderr_of(*debug: str) -> str:
        with pytest.raises(SystemExit) as exited:
            cli.main([*debug, "plan", "examples/sources.yaml", "--emulator"])
        assert exited.value.code == 0
        return capsys.readouterr().err

    assert stderr_of("--debug").count(request_line) == 1
    assert stderr_of("--debug").count(request_line) == 1
    assert "DEBUG" not in stderr_of()


def test_a_debug_run_leaves_a_callers_logging_as_it_found_it(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A caller that logs warnings through the root logger (logging.basicConfig's way: the
    # root at WARNING, its handler at every level) must not receive the tool's debug
    # records in a later run that did not ask for them.
    import logging

    from reconciler import cli

    received: list[logging.LogRecord] = []

    class CallersHandler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            received.append(record)

    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [*root.handlers, CallersHandler()])
    monkeypatch.delenv("IMGIX_API_URL", raising=False)
    logging.getLogger("reconciler").setLevel(logging.NOTSET)  # as before any --debug run

    for debug in (["--debug"], []):
        received.clear()
        with pytest.raises(SystemExit) as exited:
            cli.main([*debug, "plan", "examples/sources.yaml", "--emulator"])
        assert exited.value.code == 0
    assert [record.getMessage() for record in received] == []
    assert not logging.getLogger("reconciler.client").isEnabledFor(logging.DEBUG)
    capsys.readouterr()


@pytest.mark.parametrize(
    "args",
    [
        ["drift", "sources.yaml", "--bogus"],
        ["drift"],
        ["plan", "sources.yaml", "--detailed-exitcode", "--format", "html"],
        ["validate"],
        ["apply", "sources.yaml", "--api-key", "x"],
        ["apply", "sources.yaml", "--expect-digest", ""],
        ["apply", "sources.yaml", "--expect-digest", "SHA256:ABC"],
    ],
)
def test_a_mistyped_command_exits_1_never_2_which_means_changes_or_drift(
    args: list[str],
) -> None:
    result = invoke(*args)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("command", ["plan", "drift", "apply"])
def test_an_unknown_format_is_refused_naming_the_formats(command: str) -> None:
    example = Path(__file__).parents[1] / "examples" / "sources.yaml"
    result = invoke(command, example, "--emulator", "--format", "html")
    assert result.exit_code == 1, result.output
    assert "'html' is not one of 'text', 'markdown', 'json'" in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(
    "args",
    [
        ["validate"],
        ["fmt"],
        ["plan", "--emulator"],
        ["drift", "--emulator"],
        ["apply", "--emulator"],
    ],
    ids=["validate", "fmt", "plan", "drift", "apply"],
)
def test_a_command_given_no_file_exits_1_naming_the_missing_argument(args: list[str]) -> None:
    # Not "in sync" with nothing: a scheduled job whose file list came out empty must fail.
    result = invoke(*args)
    assert result.exit_code == 1, result.output
    assert "Missing argument" in result.stderr
    assert result.stdout == ""


def test_version_prints_the_installed_version_and_h_is_help() -> None:
    from importlib.metadata import version

    shown = run_cli("--version")
    assert (shown.returncode, shown.stderr) == (0, "")
    assert shown.stdout == f"imgix-reconciler, version {version('imgix-reconciler')}\n"
    short, long = run_cli("-h"), run_cli("--help")
    assert short.returncode == long.returncode == 0, short.stderr
    assert short.stdout == long.stdout
    assert short.stdout.startswith("Usage: imgix-reconciler [OPTIONS] COMMAND [ARGS]...")


def test_validate_given_a_folder_reports_it_located_and_checks_the_other_files(
    tmp_path: Path,
) -> None:
    # A folder is one more file that cannot be read, not a usage error stopping the run.
    folder = tmp_path / "sources.d"
    folder.mkdir()
    result = invoke("validate", folder, "examples/sources.yaml", "--no-resolve")
    assert result.exit_code == 1, result.output
    assert result.stderr.splitlines() == [
        f"{folder}:1:1: cannot read the file: Is a directory",
        "1 error in 1 of 2 files",
    ]


def test_output_that_cannot_be_written_is_one_line_and_exit_1() -> None:
    with open("/dev/full", "w") as full:
        done = subprocess.run(
            [sys.executable, "-m", "reconciler", "schema"],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            env=child_env(),
        )
    assert done.returncode == 1
    assert done.stderr.strip() == "error: cannot write the output: No space left on device"


@pytest.mark.parametrize(
    ("failure", "expected"),
    [
        # A file that cannot be made is named: it is no broken stdout.
        (
            OSError(errno.ENOSPC, "No space left on device", "plan.json"),
            "error: No space left on device: plan.json",
        ),
        # Neither a file nor a full output: the reason alone.
        (OSError(errno.EACCES, "Permission denied"), "error: Permission denied"),
    ],
    ids=["a-file", "no-file"],
)
def test_a_file_that_cannot_be_written_is_named_in_one_line(
    monkeypatch: pytest.MonkeyPatch, sources: Path, failure: OSError, expected: str
) -> None:
    def failing(path: Path, text: str) -> None:
        raise failure

    # The command imports its steps where it runs them.
    monkeypatch.setattr("reconciler.atomic.write_atomically", failing)
    result = invoke("plan", sources, "--out", "plan.json", "--emulator")
    assert result.exit_code == 1, result.output
    assert result.stderr.strip() == expected


def test_apply_takes_a_desired_state_file_written_in_json_style(
    store: SourceStore, emulator_url: str, tmp_path: Path
) -> None:
    flow = tmp_path / "sources.yaml"
    flow.write_text(
        '{"version": 1, "sources": [{"name": "J", "deployment": {"type": "webfolder",'
        ' "imgix_subdomains": ["json-1"], "webfolder_base_url": "https://j.example/"}}]}\n'
    )
    result = invoke("apply", flow, "--auto-approve", "--api-url", emulator_url)
    assert result.exit_code == 0, result.output
    assert "applied: create J" in result.output


def test_plan_resend_secrets_plans_every_secret_again(
    applied: SourceStore, emulator_url: str, sources: Path
) -> None:
    quiet = invoke("plan", sources, "--format", "json", "--api-url", emulator_url, env=CANARY_ENV)
    loud = invoke(
        "plan", sources, "--resend-secrets", "--format", "json", "--api-url", emulator_url,
        env=CANARY_ENV,
    )  # fmt: skip
    assert quiet.exit_code == loud.exit_code == 0, loud.output
    assert json.loads(quiet.stdout)["actions"] == []
    sent = {c["path"] for a in json.loads(loud.stdout)["actions"] for c in a["changes"]}
    assert "deployment.s3_secret_key" in sent


def test_apply_resend_secrets_sends_every_secret_again_and_reports_in_one_json_document(
    applied: SourceStore, emulator_url: str, sources: Path
) -> None:
    mark = len(applied.request_log)
    result = invoke(
        "apply", sources, "--format", "json", "--resend-secrets", "--auto-approve",
        "--api-url", emulator_url, env=CANARY_ENV,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    sent = {
        key
        for write in writes_since(applied, mark)
        if write.method == "PATCH"
        for key in write.body["data"]["attributes"].get("deployment", {})
    }
    assert "s3_secret_key" in sent
    # The report is the one document on stdout, as a pipe to `jq` needs it.
    report = json.loads(result.stdout)
    assert [line["outcome"] for line in report["results"]] == ["applied", "applied"]
    assert result.stdout.endswith("}\n") and not result.stdout.endswith("\n\n")


def test_a_saved_plan_applies_only_to_the_api_it_was_made_against(
    store: SourceStore, emulator_url: str, sources: Path, tmp_path: Path
) -> None:
    saved = tmp_path / "plan.json"
    made = invoke("plan", sources, "--out", saved, "--api-url", emulator_url, env=CANARY_ENV)
    assert made.exit_code == 0, made.output
    assert json.loads(saved.read_text())["api_url"] == emulator_url
    mark = len(store.request_log)
    elsewhere = invoke("apply", saved, "--auto-approve", "--emulator", env=CANARY_ENV)
    assert elsewhere.exit_code == 1
    assert f"made against {emulator_url}, not http://emulator" in elsewhere.stderr
    assert writes_since(store, mark) == []


@pytest.mark.parametrize(("value", "coloured"), [(None, True), ("", True), ("1", False)])
def test_colour_only_on_a_terminal_and_no_color_honoured_when_non_empty(
    monkeypatch: pytest.MonkeyPatch, value: str | None, coloured: bool
) -> None:
    from reconciler import cli

    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    if value is None:
        monkeypatch.delenv("NO_COLOR", raising=False)
    else:
        monkeypatch.setenv("NO_COLOR", value)
    assert cli._color() is coloured


def _stdout_on_a_terminal(*args: str | Path, env: dict[str, str]) -> tuple[int, str]:
    """Run the program with stdout on a pseudo-terminal; its exit code and what it showed."""
    controller, terminal = pty.openpty()
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "reconciler", *map(str, args)],
            env=child_env(env),
            stdin=subprocess.DEVNULL,
            stdout=terminal,
            stderr=subprocess.DEVNULL,
        )
        os.close(terminal)
        shown = b""
        with contextlib.suppress(OSError):  # EIO once the program has closed the terminal
            while chunk := os.read(controller, 65536):
                shown += chunk
        returncode = process.wait(timeout=60)
    finally:
        os.close(controller)
    return returncode, shown.decode()


@pytest.mark.parametrize(
    ("command", "code"),
    [(("plan",), 0), (("drift",), 2), (("apply",), 1)],
    ids=["plan", "drift", "apply"],
)
def test_plans_are_coloured_on_a_terminal_unless_no_color_is_set(
    store: SourceStore, emulator_url: str, sources: Path, command: tuple[str, ...], code: int
) -> None:
    env = {**CANARY_ENV, "TERM": "xterm-256color"}
    args: tuple[str | Path, ...] = (*command, sources, "--api-url", emulator_url)
    returncode, shown = _stdout_on_a_terminal(*args, env=env)
    assert returncode == code
    assert "create" in shown and "\x1b[" in shown
    returncode, shown = _stdout_on_a_terminal(*args, env={**env, "NO_COLOR": "1"})
    assert returncode == code
    assert "create" in shown and "\x1b[" not in shown


def test_a_saved_plan_given_with_other_files_is_named_a_saved_plan_in_one_error(
    store: SourceStore, emulator_url: str, sources: Path, tmp_path: Path
) -> None:
    # `apply "$PLAN" sources.yaml`, `apply plan.json plan.json`, `validate plan.json`: the
    # plan was read as a desired-state file, fifteen "unknown key" errors about its fields.
    saved = tmp_path / "plan.json"
    planned = invoke("plan", sources, "--out", saved, "--api-url", emulator_url, env=CANARY_ENV)
    assert planned.exit_code == 0, planned.stderr
    said = (
        f"{saved}:1:1: a saved plan (`plan --out`), not a desired-state file: apply it alone "
        "(`apply PLAN`)\n1 error in 1 of 2 files\n"
    )
    for args in ((saved, sources), (sources, saved)):
        result = invoke("apply", *args, "--auto-approve", "--api-url", emulator_url,
                        env=CANARY_ENV)  # fmt: skip
        assert (result.exit_code, result.stderr) == (1, said)
    result = invoke("validate", saved)
    assert (result.exit_code, result.stderr) == (1, said.replace("2 files", "1 file"))
    assert writes_since(store, 0) == []


def test_a_dumb_terminal_gets_the_plan_without_colour(
    store: SourceStore, emulator_url: str, sources: Path
) -> None:
    # `TERM=dumb` (Emacs' shell, some CI runners' pseudo-terminals) shows escape sequences
    # as text: the plan came with them, as on any terminal.
    env = {**CANARY_ENV, "TERM": "dumb"}
    returncode, shown = _stdout_on_a_terminal("plan", sources, "--api-url", emulator_url, env=env)
    assert returncode == 0
    assert "create" in shown and "\x1b" not in shown


def test_a_bad_api_url_from_the_environment_is_blamed_on_the_variable(sources: Path) -> None:
    result = invoke("plan", sources, env={"IMGIX_API_URL": "ftp://x"})
    assert result.exit_code == 1
    assert "IMGIX_API_URL" in result.stderr and "--api-url" not in result.stderr


def test_an_empty_api_url_option_is_refused_not_taken_for_another_api(
    store: SourceStore, emulator_url: str, sources: Path
) -> None:
    # `--api-url "$STAGING_URL"` with the variable unset fell back to IMGIX_API_URL (here
    # the emulator; in CI perhaps production), as if the option had not been given.
    result = invoke("plan", sources, "--api-url", "", env={"IMGIX_API_URL": emulator_url})
    assert result.exit_code == 1
    assert result.stderr.startswith("error: --api-url is empty")
    assert store.request_log == []


@pytest.mark.parametrize("variable", ["HTTP_PROXY", "http_proxy", "ALL_PROXY"])
def test_plain_http_to_this_machine_goes_direct_never_through_a_proxy(
    store: SourceStore, emulator_url: str, sources: Path, variable: str
) -> None:
    # The environment's proxy got the request, API key in clear, off this machine: the
    # loopback rule for plain http was bypassed (and the listing failed, blamed on 127.0.0.1).
    with socket.socket() as proxy:
        proxy.bind(("127.0.0.1", 0))
        proxy.listen()
        proxy.setblocking(False)
        proxy_url = f"http://127.0.0.1:{proxy.getsockname()[1]}"
        quick = {"IMGIX_RECONCILER_REQUEST_TIMEOUT": "2", "IMGIX_RECONCILER_RETRY_DEADLINE": "0"}
        result = invoke(
            "plan", sources, "--api-url", emulator_url, env={variable: proxy_url, **quick}
        )
        try:
            reached, _ = proxy.accept()
        except BlockingIOError:
            reached = None
        else:
            reached.close()
    assert reached is None, "the proxy was sent the request"
    assert result.exit_code == 0, result.stderr
    assert store.request_log != []


@pytest.mark.parametrize(
    ("variable", "proxy"),
    [
        ("ALL_PROXY", "socks5://127.0.0.1:9"),
        ("HTTPS_PROXY", "ftp://127.0.0.1:9"),
        ("HTTPS_PROXY", "http://user:proxy-password@proxy.corp:port"),
        ("HTTPS_PROXY", "http://user:proxy-password@[::1"),
        ("https_proxy", "http://user:proxy-password@127.0.0.1:99999"),
    ],
)
def test_a_proxy_httpx_cannot_use_is_one_clear_error(
    sources: Path, variable: str, proxy: str
) -> None:
    # "internal error: ImportError: Using SOCKS proxy, but the 'socksio' package is not
    # installed" (or ValueError: Unknown scheme for proxy URL), raised making the client;
    # a port that is no number, "internal error: InvalidURL"; one out of range,
    # "internal error: ExceptionGroup" (an OverflowError as it connects).
    result = run_cli("plan", sources, "--api-url", "https://127.0.0.1:9", env={variable: proxy})
    assert result.returncode == 1
    assert_one_clear_error(result.stderr, "proxy", variable.upper())
    assert "proxy-password" not in result.stderr


@pytest.mark.parametrize("no_proxy", ["localhost,fd00::/8", "[fd00::1]"])
def test_an_ipv6_entry_of_no_proxy_matters_only_with_a_proxy_and_is_then_named(
    sources: Path, no_proxy: str
) -> None:
    # Kubernetes runners list their IPv6 ranges, which httpx cannot read: every command
    # talking to an https API was "internal error: InvalidURL", even with no proxy set.
    unproxied = run_cli(
        "plan", sources, "--api-url", "https://127.0.0.1:9", env={"no_proxy": no_proxy}
    )
    assert_one_clear_error(unproxied.stderr, "No response from the imgix API at 127.0.0.1")
    proxied = run_cli(
        "plan", sources, "--api-url", "https://127.0.0.1:9",
        env={"NO_PROXY": no_proxy, "HTTPS_PROXY": "http://127.0.0.1:9"},
    )  # fmt: skip
    assert proxied.returncode == 1
    assert_one_clear_error(proxied.stderr, "NO_PROXY", "IPv6")


@pytest.mark.parametrize("url", ["https://127.0.0.1:9", "http://127.0.0.1:9"])
def test_a_missing_certificate_file_the_environment_names_is_named(sources: Path, url: str) -> None:
    # It said "error: No such file or directory", naming neither the file nor the variable
    # (still so for plain http to this machine, which makes its own transport).
    result = run_cli("plan", sources, "--api-url", url, env={"SSL_CERT_FILE": "/no/ca.pem"})
    assert result.returncode == 1
    assert_one_clear_error(result.stderr, "SSL_CERT_FILE", "No such file or directory")


def test_apply_progress_and_report_cannot_be_forged_by_a_source_name(
    store: SourceStore, emulator_url: str, tmp_path: Path
) -> None:
    evil = tmp_path / "sources.yaml"
    evil.write_text(
        "version: 1\nsources:\n"
        '  - name: "Evil\\e]0;pwned\\a\\nApply: 0 applied, 0 failed."\n'
        "    deployment:\n      type: webfolder\n      imgix_subdomains: [evil-1]\n"
        "      webfolder_base_url: https://evil.example/\n"
    )
    result = invoke("apply", evil, "--auto-approve", "--api-url", emulator_url)
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.output + result.stderr
    assert [line for line in result.stdout.splitlines() if line.startswith("Apply:")] == [
        "Apply: 1 applied, 0 failed."
    ]


@pytest.mark.parametrize("edit", ["retarget", "delete"])
def test_a_saved_plan_whose_api_url_was_edited_is_refused(
    store: SourceStore, emulator_url: str, sources: Path, tmp_path: Path, edit: str
) -> None:
    saved = tmp_path / "plan.json"
    assert (
        invoke("plan", sources, "--out", saved, "--api-url", emulator_url, env=CANARY_ENV).exit_code
        == 0
    )
    document = json.loads(saved.read_text())
    if edit == "retarget":
        document["api_url"] = "http://emulator"
    else:
        del document["api_url"]
    saved.write_text(json.dumps(document))
    mark = len(store.request_log)
    result = invoke("apply", saved, "--auto-approve", "--emulator", env=CANARY_ENV)
    assert result.exit_code == 1
    assert "the plan's MAC does not match its content" in result.stderr
    assert writes_since(store, mark) == []


def test_a_secret_reused_in_a_plain_attribute_never_reaches_a_saved_plan(
    store: SourceStore, emulator_url: str, tmp_path: Path
) -> None:
    reused = tmp_path / "sources.yaml"
    reused.write_text(
        "version: 1\nsources:\n  - name: Reused\n    deployment:\n      type: webfolder\n"
        "      imgix_subdomains: [reused-1]\n      webfolder_base_url: https://r.example/\n"
        "      username: {env: REUSED_SECRET}\n      password: {env: REUSED_SECRET}\n"
    )
    saved = tmp_path / "plan.json"
    env = {"REUSED_SECRET": "reused-canary-4471"}
    made = invoke("plan", reused, "--out", saved, "--api-url", emulator_url, env=env)
    assert made.exit_code == 0, made.output
    assert "reused-canary-4471" not in saved.read_text() + made.output + made.stderr
    # The plan holds placeholders, not a masked value: it stays valid and applies.
    applied = invoke("apply", saved, "--auto-approve", "--api-url", emulator_url, env=env)
    assert applied.exit_code == 0, applied.stderr
    assert "reused-canary-4471" not in applied.output + applied.stderr
    (source,) = store.sources.values()
    assert source.deployment["username"] == "reused-canary-4471"


def test_plan_never_overwrites_a_file_it_plans(sources: Path) -> None:
    before = sources.read_text()
    result = invoke("plan", sources, "--out", sources, "--emulator")
    assert result.exit_code == 1
    assert "is one of the files to plan" in result.stderr
    assert sources.read_text() == before


def test_a_plan_without_the_secrets_says_which_creates_apply_must_read() -> None:
    example = Path(__file__).parents[1] / "examples" / "sources.yaml"
    result = invoke("plan", example, "--emulator", "--format", "json")
    assert result.exit_code == 0, result.output
    details = {n["source"]: n["detail"] for n in json.loads(result.stdout)["notices"]}
    assert details["Product images"] == (
        "s3_secret_key not available to this plan: apply must be able to read it to create "
        "the source"
    )


def test_plan_out_dash_is_refused_with_a_pointer_to_format_json(sources: Path) -> None:
    result = invoke("plan", sources, "--out", "-", "--emulator")
    assert result.exit_code == 1
    assert "--format json" in result.stderr
    assert not Path("-").exists()


def test_plan_out_writes_a_saved_plan_through_a_pipe(
    store: SourceStore, emulator_url: str, sources: Path, tmp_path: Path
) -> None:
    # `plan --out >(gzip > plan.json.gz)`: "error: No such file or directory: /dev/fd/63",
    # since the temporary file of an atomic write cannot sit beside a pipe's name.
    kept = tmp_path / "piped.json"
    # `wait $!` waits for the reader: the last process substitution is `$!`.
    command = (
        '"$0" -m reconciler plan "$1" --api-url "$2" --out >(cat > "$3"); s=$?; wait $!; exit $s'
    )
    planned = subprocess.run(
        ["bash", "-c", command, sys.executable, str(sources), emulator_url, str(kept)],
        env=child_env(CANARY_ENV),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert planned.returncode == 0, planned.stderr
    applied = run_cli("apply", kept, "--auto-approve", "--api-url", emulator_url, env=CANARY_ENV)
    assert applied.returncode == 0, applied.stderr
    assert sorted(s.name for s in store.sources.values()) == sorted(TWO)


def test_a_symlink_loop_for_the_file_or_out_is_a_located_error_not_an_internal_one(
    store: SourceStore, emulator_url: str, sources: Path, tmp_path: Path
) -> None:
    # A pull request may commit `sources.yaml -> sources.yaml`. Path.resolve raises
    # RuntimeError on a loop (Python < 3.13): "internal error: RuntimeError: Symlink loop".
    loop = tmp_path / "loop.yaml"
    loop.symlink_to(loop.name)
    planned = run_cli("plan", loop, "--out", tmp_path / "plan.json", "--api-url", emulator_url)
    assert planned.returncode == 1
    assert planned.stderr.startswith(f"{loop}:1:1: cannot read the file: Too many levels")
    assert "internal error" not in planned.stderr

    # As --out, the loop is a name that leads nowhere, replaced as a dangling link is.
    out = tmp_path / "out.json"
    out.symlink_to(out.name)
    saved = run_cli("plan", sources, "--out", out, "--api-url", emulator_url, env=CANARY_ENV)
    assert saved.returncode == 0, saved.stderr
    assert json.loads(out.read_text())["format_version"] == 2

    # In GitHub Actions its annotation is placed from the workspace: a traceback there.
    actions = {"GITHUB_ACTIONS": "true", "GITHUB_WORKSPACE": str(tmp_path)}
    checked = run_cli("validate", loop, env=actions)
    assert checked.returncode == 1 and "Traceback" not in checked.stderr
    assert f"::error file={loop},line=1,col=1," in checked.stderr


@pytest.mark.parametrize("out", ["", "folder"])
def test_plan_out_naming_a_folder_is_refused_in_one_line_before_the_plan(
    sources: Path, tmp_path: Path, out: str
) -> None:
    # `--out "$PLAN"` with the variable unset named the current folder: "error: Device or
    # resource busy: ." once the plan was made.
    if out:
        out = str(tmp_path / out)
        Path(out).mkdir()
    result = invoke("plan", sources, "--out", out, "--emulator")
    assert result.exit_code == 1
    assert_one_clear_error(result.stderr, "is a folder: name a file")
    assert result.stdout == ""


def test_plan_of_an_invalid_file_closes_with_a_summary_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nsources:\n  - name: A\n    deployment: {type: s3}\n")
    result = invoke("plan", bad, "--emulator")
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == "4 errors in 1 of 1 file"


@pytest.mark.parametrize(
    ("attribute", "variable"),
    [
        ("annotation", "IMGIX_API_KEY"),
        ("annotation", "IMGIX_RECONCILER_FINGERPRINT_KEY"),
        ("password", "IMGIX_SOURCE_SECRETS"),
        ("password", "ACTIONS_ID_TOKEN_REQUEST_TOKEN"),
    ],
)
def test_a_file_never_writes_a_credential_of_the_tool_or_the_runner_into_a_source(
    store: SourceStore, emulator_url: str, tmp_path: Path, attribute: str, variable: str
) -> None:
    # A pull request's file: merged, its apply would put the value where the dashboard,
    # or any other key of the account, reads it back.
    file = tmp_path / "sources.yaml"
    file.write_text(
        "version: 1\nsources:\n  - name: Leak\n    deployment:\n      type: webfolder\n"
        "      imgix_subdomains: [e2e-leak]\n      webfolder_base_url: https://leak.example/\n"
        f"      {attribute}: {{env: {variable}}}\n"
    )
    value = "credential-value-0f3e9a7c51"
    env = {variable: value, "IMGIX_SOURCE_SECRETS": f"X={value}"}
    mark = len(store.request_log)

    for command, *options in (("plan",), ("apply", "--auto-approve")):
        result = invoke(command, file, *options, "--api-url", emulator_url, env=env)
        assert result.exit_code == 1, result.output
        assert result.stderr.startswith(
            f"{file}:8:{len(attribute) + 9}: deployment.{attribute}: environment variable "
            f"{variable} holds a credential of imgix-reconciler or of the CI runner"
        )
        assert value not in result.output + result.stderr
    assert writes_since(store, mark) == []


def test_apply_without_its_secrets_says_to_provide_them_not_to_skip_them(
    store: SourceStore, emulator_url: str, sources: Path
) -> None:
    result = invoke("apply", sources, "--auto-approve", "--api-url", emulator_url)
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert any(line.endswith("environment variable E2E_S3_SECRET_KEY is not set") for line in lines)
    assert lines[-1].endswith("(set each variable and create each file these references name)")
    assert "--no-resolve" not in result.stderr  # validate's way round them is no fix for apply
    assert writes_since(store, 0) == []


def test_a_spec_whose_subdomains_belong_to_two_live_sources_asks_for_an_id(
    store: SourceStore, emulator_url: str, tmp_path: Path
) -> None:
    # product.md: such a spec is an error that asks for an `id`, at its place in the file.
    store.load_json(
        {
            "version": 1,
            "sources": [
                {"id": f"64f1c2a9e4b0a1d2c3e4f5{n}0", "name": f"Live {n}", "enabled": True,
                 "deployment": {"type": "webproxy", "imgix_subdomains": [f"acme-{n}"]}}
                for n in (1, 2)
            ],
        }
    )  # fmt: skip
    sources = tmp_path / "sources.yaml"
    sources.write_text(
        "version: 1\nsources:\n  - name: Both\n"
        "    deployment: {type: webproxy, imgix_subdomains: [acme-1, acme-2]}\n"
    )
    result = invoke("plan", sources, "--api-url", emulator_url)
    assert result.exit_code == 1
    assert result.stderr.startswith(f"{sources}:3:")
    assert "belong to 2 live sources" in result.stderr and "add `id:`" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_saved_plan_with_another_digest_than_the_reviewed_one_exits_4(
    store: SourceStore, emulator_url: str, sources: Path, tmp_path: Path
) -> None:
    saved = tmp_path / "plan.json"
    planned = invoke("plan", sources, "--out", saved, "--api-url", emulator_url, env=CANARY_ENV)
    assert planned.exit_code == 0, planned.output
    other = "sha256:" + "0" * 64
    refused = invoke(
        "apply", saved, "--auto-approve", "--expect-digest", other, "--api-url", emulator_url,
        env=CANARY_ENV,
    )  # fmt: skip
    assert refused.exit_code == 4
    assert other in refused.stderr
    assert writes_since(store, 0) == []
    digest = json.loads(saved.read_text())["digest"]
    accepted = invoke(
        "apply", saved, "--auto-approve", "--expect-digest", digest, "--api-url", emulator_url,
        env=CANARY_ENV,
    )  # fmt: skip
    assert accepted.exit_code == 0, accepted.output


def _minimal_sources_and_an_unwritable_output(directory: Path, stdout: str) -> int:
    """A valid sources.yaml in `directory`, and a descriptor whose writes fail as `stdout`
    says: /dev/full (a full disk), or a pipe whose reader is gone (`... | head -n 1`)."""
    (directory / "sources.yaml").write_text(
        (Path(__file__).parent / "fixtures" / "valid_minimal.yaml").read_text()
    )
    if stdout == "/dev/full":
        return os.open("/dev/full", os.O_WRONLY)
    reader, output = os.pipe()
    os.close(reader)
    return output


@pytest.mark.parametrize(
    "command", [["plan", "sources.yaml"], ["drift", "sources.yaml"], ["export"]]
)
@pytest.mark.parametrize("stdout", ["/dev/full", "a closed pipe", "closed"])
def test_a_report_that_cannot_be_written_says_so_in_one_line_and_exits_1(
    tmp_path: Path, command: list[str], stdout: str
) -> None:
    # These said "error: Broken pipe:" or "error: No space left on device:", naming
    # nothing; drift's exit 1 (not 2) tells a CI job the check did not complete.
    output = _minimal_sources_and_an_unwritable_output(tmp_path, stdout)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "reconciler", *command, "--emulator"],
            stdout=output,
            stderr=subprocess.PIPE,
            text=True,
            env=child_env(),
            cwd=tmp_path,
            timeout=60,
            # `... >&-`: was an internal error (AttributeError) from plan and drift.
            preexec_fn=(lambda: os.close(1)) if stdout == "closed" else None,
        )
    finally:
        os.close(output)
    assert done.returncode == 1, done.stderr
    reasons = {"/dev/full": "No space left on device", "closed": "standard output is closed"}
    reason = reasons.get(stdout, "Broken pipe")
    assert done.stderr.strip() == f"error: cannot write the output: {reason}"


@pytest.mark.parametrize("stdout", ["/dev/full", "a closed pipe"])
def test_an_apply_report_that_cannot_be_written_still_exits_by_what_the_apply_did(
    tmp_path: Path, stdout: str
) -> None:
    # The JSON report is apply's first output on stdout, written after the writes: it
    # exited 1, which tells a CI job that nothing was written.
    output = _minimal_sources_and_an_unwritable_output(tmp_path, stdout)
    command = ["apply", "sources.yaml", "--emulator", "--auto-approve", "--format", "json"]
    try:
        done = subprocess.run(
            [sys.executable, "-m", "reconciler", *command],
            stdout=output,
            stderr=subprocess.PIPE,
            text=True,
            env=child_env(),
            cwd=tmp_path,
            timeout=60,
        )
    finally:
        os.close(output)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert lines[-2].startswith("[1/1] applied: create ")
    reason = "No space left on device" if stdout == "/dev/full" else "Broken pipe"
    assert lines[-1] == (
        f"error: cannot write the report: {reason} (the writes were made: the lines "
        "above give each action's outcome, and the exit code the apply's)"
    )


@pytest.mark.parametrize(
    ("command", "fixture", "code", "printed"),
    [
        (["validate", "--no-resolve"], "valid_minimal.yaml", 0, ""),
        (["validate", "--no-resolve"], "invalid_cache_ttl.yaml", 1, ""),
        (["apply", "--emulator", "--auto-approve"], "valid_minimal.yaml", 0, "Apply: 1 applied"),
    ],
    ids=["validate valid", "validate invalid", "apply"],
)
def test_a_command_started_with_stderr_closed_still_exits_by_what_it_did(
    command: list[str], fixture: str, code: int, printed: str
) -> None:
    # `2>&-`: every validate was an internal error (exit 1), valid file or not; so was
    # every apply (its progress writes to stderr).
    path = Path(__file__).parent / "fixtures" / fixture
    done = subprocess.run(
        [sys.executable, "-m", "reconciler", command[0], path, *command[1:]],
        stdout=subprocess.PIPE,
        text=True,
        env=child_env(),
        timeout=60,
        preexec_fn=lambda: os.close(2),
    )
    assert done.returncode == code, done.stdout
    assert printed in done.stdout


@pytest.mark.parametrize("unbuffered", ["1", None], ids=["PYTHONUNBUFFERED=1", "buffered"])
@pytest.mark.parametrize("fmt", ["text", "json", "markdown"])
def test_an_output_file_cut_short_by_the_disk_is_exit_1_in_one_line(
    tmp_path: Path, fmt: str, unbuffered: str | None
) -> None:
    # A nearly full disk (here a file size limit) takes the first part of a write and
    # refuses the rest. Unbuffered (PYTHONUNBUFFERED=1, set in many CI images) a plan
    # was cut at the limit and the run exited 0; buffered, a text plan exited 120 with
    # "Exception ignored in: <_io.TextIOWrapper name='<stdout>'...".
    import resource

    limit = 512
    fixture = Path(__file__).parent / "fixtures" / "valid_minimal.yaml"
    with (tmp_path / "plan.out").open("wb") as output:
        done = subprocess.run(
            [sys.executable, "-m", "reconciler", "plan", fixture, "--emulator", "--format", fmt],
            stdout=output,
            stderr=subprocess.PIPE,
            text=True,
            env=child_env({"PYTHONUNBUFFERED": unbuffered}),
            timeout=60,
            preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit)),
        )
    assert (tmp_path / "plan.out").stat().st_size == limit
    assert done.returncode == 1, done.stderr
    assert done.stderr == "error: cannot write the output: File too large\n"


@pytest.mark.parametrize("unbuffered", ["1", None], ids=["PYTHONUNBUFFERED=1", "buffered"])
def test_a_plan_to_a_pipe_left_non_blocking_waits_for_its_reader(
    tmp_path: Path, unbuffered: str | None
) -> None:
    # Another program of the job (node, a log streamer) may leave a shared pipe
    # O_NONBLOCK: once the reader fell 64 KiB behind, a plan ended in "error: Resource
    # temporarily unavailable", exit 1.
    import fcntl
    import termios

    sources = tmp_path / "sources.yaml"
    sources.write_text(
        "version: 1\nsources:\n"
        + "".join(
            f"  - name: Site {n}\n    deployment:\n      type: webfolder\n"
            f"      imgix_subdomains: [site-{n}]\n"
            f"      webfolder_base_url: https://site-{n}.example/\n"
            for n in range(200)
        )
    )
    reader, writer = os.pipe()
    fcntl.fcntl(writer, fcntl.F_SETFL, fcntl.fcntl(writer, fcntl.F_GETFL) | os.O_NONBLOCK)
    child = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "plan", sources, "--emulator", "--format", "json"],
        stdout=writer,
        stderr=subprocess.PIPE,
        env=child_env({"PYTHONUNBUFFERED": unbuffered}),
    )
    os.close(writer)

    def waiting() -> int:
        return int.from_bytes(fcntl.ioctl(reader, termios.FIONREAD, b"\0\0\0\0"), "little")

    # The reader falls behind: nothing is read until the pipe is full (or the plan ended).
    for _ in range(6000):
        if waiting() >= 65536:
            break
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=0.01)
            break
    with os.fdopen(reader, "rb") as pipe:
        document = pipe.read()
    _, errors = child.communicate(timeout=60)
    assert child.returncode == 0, errors
    assert len(json.loads(document)["actions"]) == 200


@pytest.mark.parametrize("unbuffered", ["1", None], ids=["PYTHONUNBUFFERED=1", "buffered"])
@pytest.mark.parametrize(
    ("command", "fixture", "code", "printed"),
    [
        (["validate", "--no-resolve"], "valid_minimal.yaml", 0, ""),
        (["validate", "--no-resolve"], "invalid_cache_ttl.yaml", 1, ""),
        (["plan", "--emulator", "--detailed-exitcode"], "valid_minimal.yaml", 2, "Plan: 1"),
        (["apply", "--emulator", "--auto-approve"], "valid_minimal.yaml", 0, "Apply: 1 applied"),
    ],
    ids=["validate valid", "validate invalid", "plan", "apply"],
)
def test_a_command_whose_log_cannot_be_written_still_exits_by_what_it_did(
    command: list[str], fixture: str, code: int, printed: str, unbuffered: str | None
) -> None:
    # `2> job.log` on a full disk: stderr is the log, and losing it changed the outcome.
    # A valid file, a plan of changes and an apply that wrote everything exited 120
    # ("Exception ignored" at exit) or 1 (unbuffered), as if they had failed.
    path = Path(__file__).parent / "fixtures" / fixture
    with open("/dev/full", "w") as full:
        done = subprocess.run(
            [sys.executable, "-m", "reconciler", command[0], path, *command[1:]],
            stdout=subprocess.PIPE,
            stderr=full,
            text=True,
            env=child_env({"PYTHONUNBUFFERED": unbuffered}),
            timeout=60,
        )
    assert done.returncode == code, done.stdout
    assert printed in done.stdout


@pytest.mark.parametrize("unbuffered", ["1", None], ids=["PYTHONUNBUFFERED=1", "buffered"])
def test_a_plan_under_github_actions_whose_log_cannot_be_written_still_prints_the_plan(
    unbuffered: str | None,
) -> None:
    # Under GitHub Actions each secret read is announced (`::add-mask::`) on the log before
    # any output: on a full disk that announcement failed the run, exit 1 and no plan.
    examples = Path(__file__).parent.parent / "examples" / "sources.yaml"
    with open("/dev/full", "w") as full:
        done = subprocess.run(
            [sys.executable, "-m", "reconciler", "plan", examples, "--emulator"],
            stdout=subprocess.PIPE,
            stderr=full,
            text=True,
            env=child_env({"GITHUB_ACTIONS": "true", "PYTHONUNBUFFERED": unbuffered}),
            timeout=60,
        )
    assert done.returncode == 0, done.stdout
    assert "Plan: " in done.stdout


@pytest.mark.parametrize("encoding", ["ascii", "latin-1"])
def test_an_output_encoding_short_of_a_names_characters_shows_them_escaped(
    tmp_path: Path, encoding: str
) -> None:
    # `PYTHONIOENCODING=ascii`, or a locale that is not UTF-8: plan was an internal error
    # (UnicodeEncodeError) at the first name it could not encode.
    text = (
        'version: 1\nsources:\n  - name: "Caf\u00e9 \u2615"\n    deployment:\n'
        "      type: webfolder\n      imgix_subdomains: [cafe]\n"
        "      webfolder_base_url: https://cafe.example/\n"
    )
    valid, invalid = tmp_path / "valid.yaml", tmp_path / "invalid.yaml"
    valid.write_text(text, encoding="utf-8")
    invalid.write_text(text + "      cache_ttl_value: \u2615\n", encoding="utf-8")
    # What the encoding lacks, escaped as JSON writes it (latin-1 has the é).
    shown = ("Caf\\u00e9" if encoding == "ascii" else "Caf\u00e9") + " \\u2615"

    def run(*args: str | Path) -> tuple[int, str, str]:
        command = [sys.executable, "-m", "reconciler", *args]
        env = child_env({"PYTHONIOENCODING": encoding})
        done = subprocess.run(command, capture_output=True, env=env, timeout=60)
        return done.returncode, done.stdout.decode(encoding), done.stderr.decode(encoding)

    code, out, err = run("plan", valid, "--emulator")
    assert (code, err) == (0, ""), err
    assert f'+ create "{shown}"' in out.splitlines()
    code, out, _ = run("plan", valid, "--emulator", "--format", "json")
    assert json.loads(out)["actions"][0]["source"] == "Caf\u00e9 \u2615"
    code, _, err = run("validate", invalid)
    assert code == 1
    assert "deployment.cache_ttl_value: must be an integer (got '\\u2615')" in err


@pytest.mark.parametrize(
    "command", [["plan"], ["drift"], ["apply", "--auto-approve"]], ids=["plan", "drift", "apply"]
)
def test_a_json_document_to_an_output_of_another_encoding_is_still_utf_8(
    tmp_path: Path, command: list[str]
) -> None:
    # A legacy agent's `LANG=de_DE.ISO-8859-1`: the JSON came out in latin-1 (`é` one byte,
    # 0xe9), which JSON's readers, UTF-8 by the standard, refuse or garble. Escaped, it is
    # ASCII: the same document in either encoding.
    path = tmp_path / "valid.yaml"
    path.write_text(
        'version: 1\nsources:\n  - name: "Caf\u00e9 \u2615"\n    deployment:\n'
        "      type: webfolder\n      imgix_subdomains: [cafe]\n"
        "      webfolder_base_url: https://cafe.example/\n",
        encoding="utf-8",
    )
    done = subprocess.run(
        [sys.executable, "-m", "reconciler", *command, path, "--emulator", "--format", "json"],
        capture_output=True,
        env=child_env({"PYTHONIOENCODING": "latin-1"}),
        timeout=60,
        check=False,
    )
    assert done.returncode in (0, 2), done.stderr
    assert done.stdout.isascii()
    document = json.loads(done.stdout.decode("utf-8"))
    assert "Caf\u00e9 \u2615" in json.dumps(document, ensure_ascii=False)


def test_apply_started_with_stdin_closed_refuses_for_want_of_a_terminal() -> None:
    # `<&-`: was an internal error (AttributeError) where it asks for confirmation.
    path = Path(__file__).parent / "fixtures" / "valid_minimal.yaml"
    done = subprocess.run(
        [sys.executable, "-m", "reconciler", "apply", path, "--emulator"],
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=60,
        preexec_fn=lambda: os.close(0),
    )
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1].startswith(
        "error: refusing to apply without a terminal to confirm on"
    )


# A signal landing while a task of an anyio task group runs (as httpx's do during a
# listing): the command must end as after Ctrl-C, with nothing else on stderr.
_SIGNALLED_IN_A_TASK = """
import signal, sys
import anyio
from reconciler.cli import run_async, terminate_as_interrupt

number, sigint, own = sys.argv[1:]
if sigint == "ignored":
    signal.signal(signal.SIGINT, signal.SIG_IGN)
terminate_as_interrupt()

async def listing():
    with anyio.CancelScope():
        await anyio.sleep(0)
        signal.raise_signal(int(number))
        await anyio.sleep(30)

async def main():
    async with anyio.create_task_group() as group:
        group.start_soon(listing)
        await anyio.sleep(30)

try:
    run_async(main(), own_sigint=own == "own")
except KeyboardInterrupt:
    print("Aborted.")
"""


@pytest.mark.parametrize("own", ["own", "native"])
@pytest.mark.parametrize("number", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_inside_a_task_ends_the_run_as_ctrl_c_does(
    number: signal.Signals, own: str
) -> None:
    # SIGTERM handled as a KeyboardInterrupt raised in the running task printed "unhandled
    # exception during asyncio.run() shutdown" and a traceback (or a cancel scope error),
    # and so did SIGINT on Python 3.10, whose asyncio.run `run_async` completes ("own").
    if own == "native" and sys.version_info < (3, 11):
        pytest.skip("Python 3.10's asyncio.run does not cancel the main task on SIGINT")
    result = _signalled_in_a_task(number, "handled", own)
    assert (result.stdout, result.stderr) == ("Aborted.\n", "")


@pytest.mark.parametrize("own", ["own", "native"])
def test_sigterm_ends_the_run_when_sigint_is_ignored(own: str) -> None:
    # A job started in the background ignores SIGINT: SIGTERM must not be lost with it, nor
    # end the run with a traceback ("unhandled exception during asyncio.run() shutdown"),
    # as it did when it came while a task ran: asyncio.run then handles no SIGINT at all.
    result = _signalled_in_a_task(signal.SIGTERM, "ignored", own)
    assert (result.stdout, result.stderr) == ("Aborted.\n", "")


def _signalled_in_a_task(
    number: signal.Signals, sigint: str, own: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _SIGNALLED_IN_A_TASK, str(int(number)), sigint, own],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("key", [None, "", " \t "])
def test_plan_without_an_api_key_exits_1_before_any_request(
    store: SourceStore, emulator_url: str, sources: Path, key: str | None
) -> None:
    result = invoke("plan", sources, "--api-url", emulator_url, env={"IMGIX_API_KEY": key})
    assert result.exit_code == 1
    assert_one_clear_error(result.stderr, "IMGIX_API_KEY is not set")
    assert result.stdout == ""
    assert store.request_log == []


@pytest.mark.parametrize("debug", [[], ["--debug"]], ids=["plain", "--debug"])
def test_a_secret_that_reaches_the_output_anyway_is_masked_by_the_redaction_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, debug: list[str]
) -> None:
    # The last line of defence: every other layer keeps secrets out of what is printed;
    # should a bug print one, the command's stdout, stderr and --debug log still mask it.
    import logging

    from reconciler import loader

    secret = CANARY_ENV["E2E_S3_SECRET_KEY"]
    path = write_sources(tmp_path, sources_yaml("Products"))
    load = loader.load

    def leaking(*args: Any, **kwargs: Any) -> Any:
        loaded = load(*args, **kwargs)  # registers the values its references read
        print(f"stdout leak {secret}")
        print(f"stderr leak {secret}", file=sys.stderr)
        logging.getLogger("reconciler.loader").debug("log leak %s", secret)
        logging.getLogger("httpx").debug("another library's record")
        return loaded

    monkeypatch.setattr(loader, "load", leaking)
    result = invoke(*debug, "validate", path, env={"E2E_S3_SECRET_KEY": secret})
    assert result.exit_code == 0, result.output
    assert secret not in result.stdout + result.stderr
    assert "stdout leak ***" in result.stdout
    assert "stderr leak ***" in result.stderr
    if debug:
        assert "DEBUG reconciler.loader: log leak ***" in result.stderr
        # --debug logs the tool's own decisions, not every library's.
        assert "another library's record" not in result.stderr


def test_an_action_stopped_by_max_duration_says_not_attempted_once(
    emulator_store: SourceStore, emulator_url: str, tmp_path: Path
) -> None:
    # Was: "not attempted: create Second: not attempted: it could not finish ...".
    file = tmp_path / "sources.yaml"
    file.write_text(
        "version: 1\nsources:\n"
        + "".join(
            f"  - name: {name}\n    deployment: {{type: webfolder, imgix_subdomains: "
            f"[{name.lower()}], webfolder_base_url: 'https://{name.lower()}.example/'}}\n"
            for name in ("First", "Second")
        )
    )
    result = invoke(
        "apply", file, "--auto-approve", "--max-duration", "1m", "--api-url", emulator_url,
        env={"IMGIX_RECONCILER_CREATES_PER_HOUR": "1"},
    )  # fmt: skip

    assert result.exit_code == 3, result.stderr
    outcomes = ("applied: ", "not attempted: ")
    stopped = [line for line in result.stdout.splitlines() if line.startswith(outcomes)][1:]
    assert len(stopped) == 1
    assert stopped[0].startswith(
        "not attempted: create Second: it could not finish within --max-duration ("
    ), stopped
