"""Command line: parse options, call the steps, map outcomes to exit codes.

Each command is thin: the logic it calls lives in the module of its step, mostly in
`reconciler.reconcile`. Plans go to stdout; logs, progress and errors to stderr. Every
command runs inside the redaction point (`reconciler.redact`), so no secret value it
resolved can be printed, not even in a traceback.
"""

from __future__ import annotations

import codecs
import contextlib
import errno
import gc
import io
import os
import re
import select
import stat
import sys
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TextIO, TypeVar

import click

from reconciler.endpoint import DEFAULT_API_URL
from reconciler.errors import (
    EXIT_CHANGES,
    EXIT_ERROR,
    EXIT_OK,
    EXIT_PARTIAL,
    ReconcilerError,
)
from reconciler.render import FORMATS

# Each command imports the steps it runs where it runs them: `validate` never loads the
# HTTP client, rich or the emulator's server stack, and start-up pays only for what is used;
# `--help` and usage errors load neither the models nor logging nor the redaction point.
if TYPE_CHECKING:
    from reconciler.applier import Listing
    from reconciler.pacing import Stop
    from reconciler.plan import Plan
    from reconciler.rails import Permissions
    from reconciler.reconcile import Connection
    from reconciler.report import ApplyReport

# httpx imports its own command line, and with it rich and pygments, whenever rich is
# installed; this program never runs it, and rich is for a terminal only.
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
# Pydantic plugins would be handed every value validated, referenced values included, and
# finding them scans every installed distribution's entry points when the first model is
# built: the CLI runs without them, unless PYDANTIC_DISABLE_PLUGINS is set otherwise.
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")

INSECURE_HTTP = "reconciler.allow_insecure_http"
T = TypeVar("T")


class CommandGroup(click.Group):
    """The command group, with product.md's exit codes for click's own errors.

    Click exits 2 on a usage mistake, but here 2 means "changes" (plan) or "drift": a typo
    in a scheduled job must not read as drift, so usage errors exit 1. Output that cannot
    be written (a full disk, a closed pipe) is one line and exit 1, not a traceback.
    """

    def main(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["standalone_mode"] = False
        # Started with stdin or stderr closed (`<&-`, `2>&-`), Python leaves it None, which
        # the confirmation, the progress and the logging cannot use: a null device instead.
        # Messages then have nowhere to go; the exit code still tells the job what happened.
        if sys.stdin is None:
            sys.stdin = open(os.devnull)  # noqa: SIM115 (for the whole process)
        if sys.stderr is None:
            sys.stderr = open(os.devnull, "w")  # noqa: SIM115
        for stream in (sys.stdout, sys.stderr):
            # An output encoding short of a name's characters (`PYTHONIOENCODING=ascii`, a
            # non-UTF-8 locale) shows them escaped JSON-style (`Caf\u00e9`, still valid in
            # a JSON plan) rather than failing the run.
            if (
                isinstance(stream, io.TextIOWrapper)
                and codecs.lookup(stream.encoding).name != "utf-8"
            ):
                from reconciler.untrusted import JSON_ESCAPES

                stream.reconfigure(errors=JSON_ESCAPES)
        if sys.stdout is None:
            # Started with its output closed (`... >&-`): Python leaves sys.stdout None,
            # and click would drop every line of a plan or a report without a word.
            with contextlib.suppress(OSError, AttributeError):
                click.echo("error: cannot write the output: standard output is closed", err=True)
            sys.exit(EXIT_ERROR)
        _write_whole()
        try:
            result = super().main(*args, **kwargs)
        except click.ClickException as error:
            # Its message may quote an argument, and arguments may come from a pull request
            # (file names); recent click declares the attribute Final (8.2.0 does not) but
            # reads it when showing.
            from reconciler.untrusted import one_line

            error.message = one_line(error.message)  # type: ignore[misc, unused-ignore]
            error.show()
            sys.exit(EXIT_ERROR if isinstance(error, click.UsageError) else error.exit_code)
        except click.Abort:
            click.echo("Aborted.", err=True)
            sys.exit(EXIT_ERROR)
        except OSError as error:
            with contextlib.suppress(OSError):
                click.echo(f"error: cannot write the output: {error.strerror or error}", err=True)
            sys.exit(EXIT_ERROR)
        sys.exit(result if isinstance(result, int) else EXIT_OK)


class _WholeWrites(io.RawIOBase):
    """A standard stream's descriptor: each write goes out whole or fails, once, for good.

    A nearly full disk (or a file size limit) takes the first part of a write and refuses
    the rest. Python's unbuffered streams (`PYTHONUNBUFFERED`, set in many CI images)
    dropped the rest without a word, a plan cut short and exit 0; buffered ones kept it to
    fail again at exit, which then printed "Exception ignored" and exited 120. Here the
    rest is written until the refusal, which stdout raises (the command exits 1 saying
    so) and stderr drops: it is the log, and a log that cannot be written must not turn a
    valid file or a complete apply into a failure. Later writes go nowhere.
    """

    def __init__(self, descriptor: int, *, raises: bool) -> None:
        super().__init__()
        self._descriptor = descriptor
        self._raises = raises
        self._failed = False

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._descriptor

    def isatty(self) -> bool:
        return os.isatty(self._descriptor)

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        if self._failed:
            return len(view)
        written = 0
        try:
            while written < len(view):
                try:
                    written += os.write(self._descriptor, view[written:])
                except BlockingIOError:
                    # Left O_NONBLOCK by another program sharing it (node, a log streamer):
                    # wait for the reader as a blocking write would.
                    select.select([], [self._descriptor], [])
        except OSError:
            self._failed = True
            if self._raises:
                raise
        return len(view)


def _write_whole() -> None:
    """Put `_WholeWrites` under the process's own stdout and stderr."""
    # Only the CLI's own process: a caller of `main` (a test runner) keeps its streams.
    if _own_process:
        sys.stdout = _whole(sys.stdout, sys.__stdout__, raises=True)
        sys.stderr = _whole(sys.stderr, sys.__stderr__, raises=False)


def _whole(stream: TextIO, original: TextIO | None, *, raises: bool) -> TextIO:
    """`stream` over `_WholeWrites`, its text settings kept; as it is if not the original."""
    if stream is not original or not isinstance(stream, io.TextIOWrapper):
        return stream
    try:
        descriptor = stream.fileno()
        stream.flush()
    except (OSError, ValueError):
        return stream
    raw = _WholeWrites(descriptor, raises=raises)
    # Unbuffered (`PYTHONUNBUFFERED`) as it was: the raw descriptor under the text.
    binary: Any = raw if isinstance(stream.buffer, io.RawIOBase) else io.BufferedWriter(raw)
    return io.TextIOWrapper(
        binary,
        encoding=stream.encoding,
        errors=stream.errors,
        line_buffering=stream.line_buffering,
        write_through=stream.write_through,
    )


@click.group(cls=CommandGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="imgix-reconciler")
@click.option("--debug", is_flag=True, help="Log requests and decisions to stderr.")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """Keep imgix Sources in git: validate, plan, apply and detect drift."""
    if ctx.invoked_subcommand in _READS_NOTHING:
        return
    from reconciler import redact

    if debug:
        import logging

        from reconciler.untrusted import LogFormatter

        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(LogFormatter("%(levelname)s %(name)s: %(message)s"))
        handler.addFilter(redact.RedactingFilter())
        package_logger = logging.getLogger("reconciler")
        level_before = package_logger.level
        package_logger.addHandler(handler)
        package_logger.setLevel(logging.DEBUG)

        def end_debug_log() -> None:
            # A caller running `main` again in its process (a library user, a test) must
            # not get this run's records in its own handlers, asked for or not.
            package_logger.removeHandler(handler)
            package_logger.setLevel(level_before)

        ctx.call_on_close(end_debug_log)
    ctx.with_resource(redact.redacted_output())


# Commands that print only what the package ships: no secret or outside text reaches
# them, so they skip the redaction point and the logging it installs (a fifth of `schema`'s
# start-up).
_READS_NOTHING = frozenset({"schema"})


# Set by `run`: this process is the CLI's own, so what start-up made may be frozen out of
# the cycle collector's passes for good. A caller of `main` in its own process (a test, a
# library user) keeps its collector as it was: `gc.unfreeze` cannot undo only our part.
_own_process = False


def terminate_as_interrupt() -> None:
    """Handle SIGTERM as SIGINT: the command ends as after Ctrl-C."""
    import signal

    def interrupt(number: int, frame: object) -> None:
        # Raised again as SIGINT, whose handler inside `asyncio.run` cancels the main task;
        # a KeyboardInterrupt raised in whatever task was running instead left a traceback
        # ("unhandled exception during asyncio.run() shutdown") or a misnested cancel scope.
        if signal.getsignal(signal.SIGINT) in (signal.SIG_IGN, signal.SIG_DFL, None):
            raise KeyboardInterrupt  # SIGINT ignored (a background job): ends all the same
        signal.raise_signal(signal.SIGINT)

    signal.signal(signal.SIGTERM, interrupt)


# Python 3.11's `asyncio.run` cancels the main task on SIGINT itself.
OWN_SIGINT = sys.version_info < (3, 11)


def run_async(main: Coroutine[Any, Any, T], *, own_sigint: bool = OWN_SIGINT) -> T:
    """`asyncio.run`, where Ctrl-C cancels the main task (Python 3.10 too), and SIGTERM
    does when SIGINT is ignored."""
    import asyncio
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return asyncio.run(main)
    sigint = signal.getsignal(signal.SIGINT)
    # A job started in the background ignores SIGINT, and `asyncio.run` then handles none:
    # SIGTERM, which `terminate_as_interrupt` would raise in whichever task runs, cancels
    # the main task here instead.
    number = signal.SIGTERM if sigint is signal.SIG_IGN else signal.SIGINT
    if number == signal.SIGINT and not (own_sigint and sigint is signal.default_int_handler):
        return asyncio.run(main)
    # Python 3.11's `asyncio.run`, backported: the first SIGINT cancels the main task, and
    # so every task it awaits, instead of raising KeyboardInterrupt in whichever runs.
    interrupted: list[int] = []

    async def cancellable() -> T:
        task, loop = asyncio.current_task(), asyncio.get_running_loop()
        assert task is not None

        def on_signal(received: int, frame: object) -> None:
            if interrupted:
                raise KeyboardInterrupt  # a second Ctrl-C: at once
            interrupted.append(received)
            loop.call_soon_threadsafe(task.cancel)

        before = signal.signal(number, on_signal)
        try:
            return await main
        finally:
            # Unless `main` set its own since (apply's, once its writes are over), as 3.11 does.
            if signal.getsignal(number) is on_signal:
                signal.signal(number, signal.SIG_DFL if before is None else before)

    try:
        return asyncio.run(cancellable())
    except asyncio.CancelledError:
        if interrupted:
            raise KeyboardInterrupt from None
        raise


def run(prog_name: str | None = None) -> None:
    """The console script and `python -m reconciler`: the command group, then a quick exit."""
    global _own_process
    _own_process = True
    # CI cancels a job with SIGINT, then SIGTERM: both end a command the same way ("Aborted.",
    # exit 1, a --out file complete or absent), not SIGTERM's silent death that left a
    # temporary file beside --out. Apply and --wait catch both to stop cleanly.
    terminate_as_interrupt()
    try:
        main(prog_name=prog_name)
    finally:
        # Done, its output out: a signal now (CI's second one) ends the process at once,
        # not as a KeyboardInterrupt traceback printed from the interpreter's shutdown.
        import signal

        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        # All that is left lives until the process ends: frozen, it is not walked once more
        # by the interpreter's last collection (about 20 ms of `validate`, more of `plan`).
        gc.freeze()


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=True))
@click.option(
    "--no-resolve",
    is_flag=True,
    help="Do not read {env: ...} and {file: ...} references (check the file alone).",
)
def validate(files: tuple[str, ...], no_resolve: bool) -> None:
    """Check desired-state FILEs offline; exit 1 listing every error."""
    from reconciler.loader import load
    from reconciler.loading.stack import on_load_stack

    with _exit_codes([Path(file) for file in files]):
        loaded = on_load_stack(load, files, resolve=not no_resolve)
    # A file given twice (under two names, or through a link) was checked once, as its
    # first name: the others would say "0 sources valid".
    first_names = {os.path.realpath(file): file for file in reversed(files)}
    for file in sorted(first_names.values(), key=files.index):
        places = [*loaded.locations, *loaded.unresolved]
        count = sum(1 for location in places if location.file == file)
        _stderr_line(f"{file}: {count} source{'s' if count != 1 else ''} valid")


@main.command()
def schema() -> None:
    """Print the JSON Schema of the desired-state file format."""
    from reconciler.schema import shipped_sources_schema

    click.echo(shipped_sources_schema(), nl=False)


@main.command()
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8787,
    show_default=True,
    help="Port on 127.0.0.1 (0 picks a free one).",
)
@click.option(
    "--state",
    "state_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Keep the sources in this JSON file (kept across restarts).",
)
@click.option("--seed", is_flag=True, help="Start a new state from the example live state.")
@click.option(
    "--omit-unset",
    is_flag=True,
    help="Answer like real listings: leave out deployment keys that have no value "
    "(null, empty list or map).",
)
def emulator(port: int, state_file: Path | None, seed: bool, omit_unset: bool) -> None:
    """Serve the built-in imgix API emulator on 127.0.0.1 until Ctrl-C."""
    from reconciler.emulator import EMULATOR_API_KEY, ApiProblem, serve

    def announce(url: str) -> None:
        click.echo(f"imgix API emulator on {url} (use --api-url {url})", err=True)
        click.echo(f"API key: IMGIX_API_KEY={EMULATOR_API_KEY} (any ak_<64 hex> works)", err=True)

    try:
        serve(port, state_file, seed=seed, omit_unset=omit_unset, announce=announce)
    except OSError as error:
        if (name := _relative_name(error.filename)) and _working_directory_is_gone():
            _stderr_line(_directory_gone(name, "reached"))
        elif error.filename:
            _stderr_line(f"error: {error.strerror or error}: {error.filename}")
        else:
            _stderr_line(f"error: cannot serve on 127.0.0.1:{port}: {error.strerror or error}")
        raise SystemExit(EXIT_ERROR) from None
    except (ValueError, KeyError, TypeError, RecursionError, ApiProblem) as error:
        # Raised while loading --state, before serving: the file is not a state we wrote.
        reason = f"missing {error}" if isinstance(error, KeyError) else str(error)
        _stderr_line(f"error: {state_file}: not an emulator state file ({reason})")
        raise SystemExit(EXIT_ERROR) from None


# --------------------------------------------------------------------------- talking to the API


def connection_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """`--api-url`, `--emulator` and `--allow-insecure-http`, written after the command name."""
    # Read back by `_connect`, so the commands' signatures need not carry it.
    command = click.option(
        "--allow-insecure-http",
        is_flag=True,
        expose_value=False,
        callback=lambda ctx, param, value: ctx.meta.__setitem__(INSECURE_HTTP, value),
        help="Allow a plain http:// API URL to a host other than this machine "
        "(the API key then crosses the network in clear).",
    )(command)
    command = click.option(
        "--emulator",
        is_flag=True,
        help="Run against the built-in emulator, seeded with the example live state.",
    )(command)
    # IMGIX_API_URL is read by `connect`, which can then name it in its errors.
    return click.option(
        "--api-url",
        metavar="URL",
        help=f"Root of the imgix API (default: $IMGIX_API_URL, else {DEFAULT_API_URL}).",
    )(command)


def adopt_option(command: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--adopt",
        is_flag=True,
        help="Adopt managed sources without the imgix-reconciler marker: send the "
        "secrets the file holds and write the marker.",
    )(command)


def _connect(api_url: str | None, emulator: bool) -> Connection:
    from reconciler.reconcile import connect

    allowed = bool(click.get_current_context().meta.get(INSECURE_HTTP))
    return connect(api_url, emulator=emulator, allow_insecure_http=allowed)


def format_option(command: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(FORMATS),
        default="text",
        show_default=True,
    )(command)


def _stdout_is_utf_8() -> bool:
    encoding = getattr(sys.stdout, "encoding", None) or "utf-8"
    return codecs.lookup(encoding).name == "utf-8"


def _for_stdout(text: str, fmt: str) -> str:
    """`text` as printed in `fmt`: a JSON document in ASCII when stdout is not UTF-8.

    JSON's readers read UTF-8 (RFC 8259): a document in latin-1 (a legacy agent's
    `LANG=de_DE.ISO-8859-1`) is refused or garbled. Outside strings a document is ASCII
    already, and inside them `\\u00e9` means the same character.
    """
    if fmt != "json" or text.isascii() or _stdout_is_utf_8():
        return text
    import json

    return re.sub(r"[^\x00-\x7f]", lambda found: json.dumps(found.group())[1:-1], text)


def _color() -> bool:
    # no-color.org: NO_COLOR counts when set to a non-empty value. A dumb terminal shows
    # escape sequences as text.
    return (
        sys.stdout.isatty() and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"
    )


def _stderr_line(message: str) -> None:
    # Errors quote file names, file contents and API answers: each stays one inert line.
    from reconciler.untrusted import one_line

    click.echo(one_line(message), err=True)


def _write_step_summary(markdown: Callable[[], str]) -> None:
    # Rendered only in GitHub Actions, which `github.active()` tells; it is false without
    # the variable, and the module is not imported then (about 1 ms of start-up).
    if "GITHUB_ACTIONS" not in os.environ:
        return
    from reconciler import github

    if github.active():
        github.write_step_summary(markdown())


def _directory_gone(relative: str, done: str) -> str:
    return (
        "error: the current directory no longer exists"
        + (f", so {relative} cannot be {done}" if relative else "")
        + " (give an absolute path, or run from a directory that exists)"
    )


def _relative_name(filename: object) -> str | None:
    """`filename` of an OSError when it is a relative path (found through the directory)."""
    if isinstance(filename, (str, bytes)) and filename and not os.path.isabs(filename):
        return os.fsdecode(filename)
    return None


def _working_directory_is_gone() -> bool:
    try:
        os.getcwd()
    except FileNotFoundError:
        return True
    return False


_OUTPUT_ERRNOS = frozenset({errno.EPIPE, errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO})

# GitHub shows 10 error annotations per step: a file of 300,000 errors annotates these
# and says how many more the log lists, instead of writing 300,000 `::error` lines.
MAX_ANNOTATIONS = 10


@contextlib.contextmanager
def _exit_codes(files: Sequence[Path] = ()) -> Iterator[None]:
    """Map every failure to a message on stderr and product.md's exit code: no tracebacks."""
    from reconciler.loader import LoadError, summarize

    # What start-up made (modules, classes, the models' validators) lives until exit:
    # frozen, it is left out of the cycle collector's passes during the command, each of
    # which walked all of it (about 15 ms of `plan`'s start-up, set off by the first large
    # allocation such as parsing the rendering-parameter catalogue).
    if _own_process:
        gc.freeze()
    try:
        yield
    except ReconcilerError as error:
        # Each problem at its place in the files first, then one closing line.
        for located in error.located:
            _stderr_line(str(located))
        from reconciler import github

        github.annotate(error.located[:MAX_ANNOTATIONS])
        if len(error.located) > MAX_ANNOTATIONS:
            more = len(error.located) - MAX_ANNOTATIONS
            github.annotate_message(f"{more} more error(s) not annotated: the log lists them all")
        if isinstance(error, LoadError):
            if files:
                context = click.get_current_context(silent=True)
                command = context.info_name if context and context.info_name else "validate"
                _stderr_line(summarize(error.errors, [str(f) for f in files], command=command))
        else:
            for problem in error.problems:
                _stderr_line(f"error: {problem}")
            github.annotate_message(str(error))
        raise SystemExit(error.exit_code) from None
    except OSError as error:
        if error.filename is None and error.errno in _OUTPUT_ERRNOS:
            # Stdout: a full disk, or a reader that went away (`plan ... | head -n 1`).
            _stderr_line(f"error: cannot write the output: {error.strerror or error}")
        elif error.filename is None and _working_directory_is_gone():
            # A relative path is read from a directory an earlier CI step removed.
            relative = ", ".join(str(file) for file in files if not file.is_absolute())
            _stderr_line(_directory_gone(relative, "found"))
        elif (name := _relative_name(error.filename)) and _working_directory_is_gone():
            # Created beside it, a new file fails as "No such file": the file is not at fault.
            _stderr_line(_directory_gone(name, "reached"))
        else:
            _stderr_line(f"error: {error.strerror or error}: {error.filename or ''}".rstrip(": "))
        raise SystemExit(EXIT_ERROR) from None
    except (MemoryError, RuntimeError) as error:
        # A runner's limits, not a bug to report: Python says "can't start new thread"
        # when the system refuses one (memory, or a process limit).
        if isinstance(error, RuntimeError) and str(error) != "can't start new thread":
            _internal_error(error)
        what = "memory" if isinstance(error, MemoryError) else str(error)
        _stderr_line(
            f"error: out of resources: {what} (a memory or process limit of this machine or "
            "container, such as ulimit -v, is too low for this run)"
        )
        raise SystemExit(EXIT_ERROR) from None
    except Exception as error:
        _internal_error(error)


def _internal_error(error: Exception) -> NoReturn:
    """A bug, not bad input: one line for CI logs, the traceback only with --debug."""
    import logging

    # Called in an `except` block: the traceback logged is the error's.
    logging.getLogger(__name__).debug("unexpected error", exc_info=True)
    _stderr_line(
        f"internal error: {type(error).__name__}: {error} "
        "(re-run with --debug for details, and please report it)"
    )
    raise SystemExit(EXIT_ERROR) from None


@main.command("plan")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), help="Save the plan document here.")
@format_option
@click.option(
    "--detailed-exitcode", is_flag=True, help="Exit 0 when there are no changes, 2 when there are."
)
@click.option("--target", "targets", multiple=True, metavar="NAME", help="Plan only this source.")
@click.option("--resend-secrets", is_flag=True, help="Plan to send every secret again (see apply).")
@click.option(
    "--take-over",
    is_flag=True,
    help="Plan writes to sources whose marker names another owner (see apply).",
)
@adopt_option
@connection_options
def plan_command(
    files: tuple[Path, ...],
    out: Path | None,
    fmt: str,
    detailed_exitcode: bool,
    targets: tuple[str, ...],
    resend_secrets: bool,
    take_over: bool,
    adopt: bool,
    api_url: str | None,
    emulator: bool,
) -> None:
    """Show what apply would change."""

    from reconciler.atomic import write_atomically
    from reconciler.errors import ConfigurationError
    from reconciler.reconcile import authenticate_plan, check_ownership, plan_files
    from reconciler.render import render

    with _exit_codes(files):
        if out is not None and str(out) == "-":
            raise ConfigurationError(
                "--out takes a file name; for the plan on stdout use --format json"
            )
        if out is not None and out.is_dir():
            # Also `--out ""` (an unset variable), which click makes the current folder.
            raise ConfigurationError(f"--out {out} is a folder: name a file in it")
        # realpath, not Path.resolve: that raises RuntimeError on a symlink loop before
        # Python 3.13, and a loop is for the loader (or the write) to report, located.
        if out is not None and any(
            os.path.realpath(out) == os.path.realpath(file) for file in files
        ):
            raise ConfigurationError(f"--out {out} is one of the files to plan: choose another")
        connection = _connect(api_url, emulator)
        result = run_async(
            plan_files(
                files,
                connection,
                targets=targets,
                resend_secrets=resend_secrets,
                take_over=take_over,
                adopt=adopt,
            )
        )
        if out is not None:
            # Written as is: no referenced value enters a plan (placeholders stand for
            # them), so masking could only corrupt a valid plan.
            saved = authenticate_plan(result.plan, connection)
            write_atomically(out, saved.to_json() + "\n")
        click.echo(_for_stdout(render(result.plan, fmt, color=_color()), fmt))
        _write_step_summary(lambda: render(result.plan, "markdown"))
        check_ownership(result)
    if detailed_exitcode and result.plan.has_changes:
        raise SystemExit(EXIT_CHANGES)


@main.command("drift")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@format_option
@click.option(
    "--allow-unadopted",
    is_flag=True,
    help="Do not count managed sources without the imgix-reconciler marker as drift "
    "(during an adoption).",
)
# The default since sources without a marker are drift; accepted so existing jobs run.
@click.option("--require-marker", is_flag=True, hidden=True)
@connection_options
def drift_command(
    files: tuple[Path, ...],
    fmt: str,
    allow_unadopted: bool,
    require_marker: bool,
    api_url: str | None,
    emulator: bool,
) -> None:
    """Check that live sources still match the files (exit 2 when they do not)."""

    from reconciler.errors import ConfigurationError
    from reconciler.reconcile import check_ownership, drift_findings, drift_summary, plan_files
    from reconciler.render import render

    with _exit_codes(files):
        if require_marker and allow_unadopted:
            raise ConfigurationError("--require-marker and --allow-unadopted contradict each other")
        connection = _connect(api_url, emulator)
        result = run_async(plan_files(files, connection))
        drift = drift_findings(result.plan, allow_unadopted=allow_unadopted)
        shown = render(result.plan, fmt, color=_color(), view="drift", drifted=bool(drift))
        click.echo(_for_stdout(shown, fmt))
        _write_step_summary(
            lambda: render(result.plan, "markdown", view="drift", drifted=bool(drift))
        )
        check_ownership(result)
        if drift:
            _stderr_line(drift_summary(drift))
        else:
            click.echo("In sync: live sources match the files.", err=True)
    if drift:
        raise SystemExit(EXIT_CHANGES)


@main.command("apply")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--auto-approve", is_flag=True, help="Apply without asking.")
@click.option("--allow-disable", is_flag=True, help="Let the plan disable live sources.")
@click.option(
    "--allow-large-change",
    is_flag=True,
    help="Apply a plan over the blast-radius threshold (safety: in the file).",
)
@click.option(
    "--allow-protected-change",
    is_flag=True,
    help="Let the plan disable, or move the origin of, a source with mode: protect.",
)
@click.option(
    "--take-over",
    is_flag=True,
    help="Write sources whose marker names another owner, recording this file's owner.",
)
@click.option("--resend-secrets", is_flag=True, help="Send every secret again.")
@click.option("--wait", is_flag=True, help="Wait until touched sources are deployed.")
@click.option(
    "--expect-digest",
    metavar="DIGEST",
    callback=lambda ctx, param, value: _digest(value),
    help="Refuse unless the plan has this digest (sha256:<64 hex>).",
)
@click.option("--target", "targets", multiple=True, metavar="NAME", help="Apply only this source.")
@adopt_option
@format_option
@click.option(
    "--max-duration",
    metavar="DURATION",
    callback=lambda ctx, param, value: _duration(value),
    help="Start no write that cannot finish within DURATION of the start (5h30m, 90m, 45s).",
)
@connection_options
def apply_command(
    inputs: tuple[Path, ...],
    auto_approve: bool,
    allow_disable: bool,
    allow_large_change: bool,
    allow_protected_change: bool,
    take_over: bool,
    resend_secrets: bool,
    adopt: bool,
    wait: bool,
    expect_digest: str | None,
    targets: tuple[str, ...],
    fmt: str,
    max_duration: float | None,
    api_url: str | None,
    emulator: bool,
) -> None:
    """Apply the files (planning first) or a plan saved by `plan --out`."""

    from reconciler.pacing import Stop
    from reconciler.rails import Permissions
    from reconciler.reconcile import ApplyRequest, check_apply_policy, plan_to_apply
    from reconciler.render import render, render_report
    from reconciler.report import ApplyReport

    started = time.monotonic()
    with _exit_codes(inputs):
        connection = _connect(api_url, emulator)
        request = ApplyRequest(
            Permissions(
                allow_disable=allow_disable,
                allow_large_change=allow_large_change,
                allow_protected_change=allow_protected_change,
                take_over=take_over,
            ),
            targets=targets,
            resend_secrets=resend_secrets,
            adopt=adopt,
            expect_digest=expect_digest,
        )
        # A patch starting long after this listing (a slow answer at the prompt, the hourly
        # budget) reads its source again first.
        listed_at = connection.clock()
        to_apply = run_async(plan_to_apply(inputs, connection, request))
        plan = to_apply.plan
        if fmt == "json":
            # The report is the one document on stdout; the plan is still shown, on stderr.
            click.echo(render(plan, "text"), err=True)
        else:
            click.echo(_for_stdout(render(plan, fmt, color=_color()), fmt))
        _write_step_summary(lambda: render(plan, "markdown"))
        if not check_apply_policy(to_apply, request):
            click.echo("Nothing to do.", err=True)
            if fmt == "json":
                shown = render_report(ApplyReport(), fmt, digest=plan.digest)
                click.echo(_for_stdout(shown, fmt), nl=False)
            return
        _confirm(plan, auto_approve)
        deadline = None if max_duration is None else started + max_duration
        stop = Stop(deadline=deadline, clock=connection.clock)
        listing = None
        if to_apply.made is not None:
            from reconciler.applier import Listing

            listing = Listing(to_apply.made.live, listed_at)
        with _signals_restored():
            report = run_async(
                _apply_until_stopped(
                    plan, connection, stop, request.permissions, to_apply.saved, wait, listing
                )
            )
            shown = render_report(report, fmt, digest=plan.digest)
            try:
                click.echo(_for_stdout(shown, fmt), nl=False)
            except OSError as error:
                if error.errno not in _OUTPUT_ERRNOS:
                    raise
                # Exit 1 says nothing was written: the exit code is the apply's instead.
                _stderr_line(
                    f"error: cannot write the report: {error.strerror or error} (the writes "
                    "were made: the lines above give each action's outcome, and the exit "
                    "code the apply's)"
                )
    if not report.ok:
        raise SystemExit(EXIT_PARTIAL)


def _digest(value: str | None) -> str | None:
    # An empty or garbled value (an unset CI variable) is a mistake in the command (exit 1),
    # not a plan that changed since review (exit 4).
    if value is not None and not re.fullmatch(r"sha256:[0-9a-f]{64}", value):
        raise click.BadParameter(f"expected sha256:<64 lowercase hex>, got {value!r}")
    return value


def _confirm(plan: Plan, auto_approve: bool) -> None:
    from reconciler.errors import ApplyRefused

    if auto_approve:
        return
    if not sys.stdin.isatty():
        raise ApplyRefused(
            "refusing to apply without a terminal to confirm on: pass --auto-approve "
            "(after reviewing the plan, e.g. with --expect-digest)"
        )
    count = len(plan.actions)
    try:
        confirmed = click.confirm(f"Apply {count} action{'s' if count != 1 else ''}?", err=True)
    except click.Abort:  # end of input (Ctrl-D) at the prompt: no is the answer
        click.echo(err=True)
        confirmed = False
    except UnicodeDecodeError:  # typed in what the input's encoding lacks: no "yes" either
        confirmed = False
    if not confirmed:
        raise ApplyRefused("apply cancelled; nothing was written")


def _duration(value: str | None) -> float | None:
    """Seconds in `5h30m`, `90m`, `45s` (units in that order, each at most once)."""
    if value is None:
        return None
    match = re.fullmatch(r"(?:(\d{1,6})h)?(?:(\d{1,6})m)?(?:(\d{1,6})s)?", value.strip())
    if not value.strip() or match is None:
        raise click.BadParameter(f"expected a duration such as 5h30m, 90m or 45s, got {value!r}")
    hours, minutes, seconds = (int(part or 0) for part in match.groups())
    total = hours * 3600.0 + minutes * 60.0 + seconds
    if total <= 0:
        raise click.BadParameter(f"must be longer than zero, got {value!r}")
    return total


@contextlib.contextmanager
def _signals_restored() -> Iterator[None]:
    """SIGINT's and SIGTERM's handlers as they were before the block, whatever it set."""
    import signal

    before = {each: signal.getsignal(each) for each in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        with contextlib.suppress(ValueError, TypeError):
            for each, handler in before.items():
                signal.signal(each, handler)


async def _apply_until_stopped(
    plan: Plan,
    connection: Connection,
    stop: Stop,
    permissions: Permissions,
    saved: bool,
    wait: bool,
    listing: Listing | None = None,
) -> ApplyReport:
    """Apply with SIGINT and SIGTERM stopping it cleanly: no new write, a full report.

    A second signal ends the process at once, exit 3: writes may have been made, so it is
    not the 1 of an error before any write.
    """
    import asyncio
    import signal

    from reconciler.progress import ApplyProgress
    from reconciler.reconcile import apply_with_report

    loop = asyncio.get_running_loop()
    caught: list[int] = []

    def on_signal(number: int) -> None:
        name = signal.Signals(number).name
        if caught:
            progress.note(
                f"{name} received again: stopping at once, without a report; a write under "
                "way may or may not have been applied (the next plan tells)"
            )
            with contextlib.suppress(OSError, ValueError):
                progress.__exit__(None, None, None)  # a terminal's bar, its cursor restored
                sys.stdout.flush()
                sys.stderr.flush()
            os._exit(EXIT_PARTIAL)
        caught.append(number)
        progress.note(
            f"{name} received: starting no more writes, letting those under way finish "
            "(send it again to stop at once)"
        )
        stop.request(f"stopped by {name}")

    with ApplyProgress(
        len(plan.actions), clock=connection.clock, live=sys.stderr.isatty()
    ) as progress:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            for each in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(each, on_signal, each)
        try:
            return await apply_with_report(
                plan,
                connection,
                permissions=permissions,
                saved=saved,
                wait=wait,
                stop=stop,
                progress=progress,
                listing=listing,
            )
        finally:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                for each in (signal.SIGINT, signal.SIGTERM):
                    loop.remove_signal_handler(each)
            # The writes are over: a signal now stops nothing, and must not cut the report
            # short (removing the loop's handler restored SIGTERM's silent default action).
            with contextlib.suppress(ValueError):  # not the main thread: none was installed
                for each in (signal.SIGINT, signal.SIGTERM):
                    signal.signal(each, signal.SIG_IGN)


@main.command("export")
@click.option("--out", type=click.Path(path_type=Path), help="Write a new file here, not stdout.")
@click.option(
    "--merge",
    type=click.Path(path_type=Path),
    metavar="FILE",
    help="Add the live sources FILE lacks to it, keeping everything it holds.",
)
@connection_options
def export_command(
    out: Path | None, merge: Path | None, api_url: str | None, emulator: bool
) -> None:
    """Write the live sources as a desired-state file (never over an existing one)."""

    from reconciler.atomic import write_new
    from reconciler.canonical import decoded, in_style_of
    from reconciler.errors import ConfigurationError
    from reconciler.export import check_new_file, export_yaml, merged_yaml, out_exists
    from reconciler.loader import load
    from reconciler.reconcile import list_live
    from reconciler.redact import scrub

    if out is not None and str(out) == "-":
        out = None  # stdout, as `-` means to most tools (`./-` names a file)
    with _exit_codes([merge] if merge else []):
        if out is not None and merge is not None:
            raise ConfigurationError("--out and --merge exclude each other: choose one")
        if out is not None:
            check_new_file(out)
        if merge is not None:
            if merge.exists() and not merge.is_file() and not merge.is_dir():
                # A pipe (`--merge <(...)`) is empty when read again and cannot be rewritten.
                raise ConfigurationError(
                    f"--merge {merge} is not a regular file (a pipe?): --merge rewrites the "
                    "file it is given"
                )
            load([merge], resolve=False)  # only a valid file is merged into
            data = merge.read_bytes()
            text = decoded(data)
        connection = _connect(api_url, emulator)
        live = run_async(list_live(connection))
        if merge is not None:
            exported = merged_yaml(text, live)
            if not exported.added:
                _stderr_line(f"Nothing to add: every live source is in {merge}.")
                return
            if merge.read_text(encoding="utf-8") != text:
                # Edited while the sources were listed: writing would lose that edit.
                raise ConfigurationError(
                    f"{merge} changed while export listed the live sources, and --merge "
                    "never loses an edit: nothing was written; run export --merge again"
                )
            _rewrite(merge, in_style_of(data, scrub(exported.text)))
            _stderr_line(f"Added {_sources(exported.added)} to {merge}.")
        elif out is None:
            exported = export_yaml(live, ascii_only=not _stdout_is_utf_8())
            click.echo(exported.text, nl=False)
        else:
            exported = export_yaml(live)
            try:
                # Checked again as the file appears: one made while listing is kept.
                write_new(out, scrub(exported.text))
            except FileExistsError:
                raise out_exists(out) from None
            _stderr_line(f"Wrote {_sources(exported.added)} to {out}.")
        if exported.variables:
            click.echo(
                "Set these environment variables before apply: "
                + ", ".join(exported.variables)
                + ".",
                err=True,
            )


def _rewrite(path: Path, text: str) -> None:
    """Replace a user's file atomically, keeping its permissions (the temporary is 0600).

    A link is kept and its target rewritten (the loader has checked that it stays in the
    repository): replacing the link would leave a copy in its place and the target as it was.
    """
    from reconciler.atomic import write_atomically

    target = path.resolve(strict=True)
    mode = stat.S_IMODE(target.stat().st_mode)
    write_atomically(target, text)
    target.chmod(mode)


def _sources(count: int) -> str:
    return f"{count} source{'s' if count != 1 else ''}"


@main.command("fmt")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--check", is_flag=True, help="Change nothing; exit 1 if a file would change.")
def fmt_command(files: tuple[Path, ...], check: bool) -> None:
    """Rewrite desired-state FILEs in the canonical order and style, keeping comments."""
    from reconciler import references
    from reconciler.canonical import formatted_file
    from reconciler.errors import ConfigurationError
    from reconciler.loader import MAX_FILE_BYTES, LoadError, load
    from reconciler.loading.stack import on_load_stack

    with _exit_codes(files):
        # Each file is read once, checked and formatted from those bytes: a pipe
        # (`fmt --check <(git show HEAD:sources.yaml)`) has nothing left for a second read.
        read: dict[Path, bytes] = {}
        for file in dict.fromkeys(files):
            if references.linked_out_of(str(file)) is not None:
                continue  # refused by the loader, unread
            with contextlib.suppress(references.Unreadable):  # the loader says why, located
                read[file] = references.read_limited(str(file), MAX_FILE_BYTES, regular_only=False)
        # Only valid files are rewritten. Each is checked on its own: formatting two files
        # that describe the same sources (a copy, a branch) is no error.
        errors = []
        for file in dict.fromkeys(files):
            try:
                on_load_stack(
                    load,
                    [file],
                    resolve=False,
                    read_already={str(file): read[file]} if file in read else None,
                )
            except LoadError as error:
                errors += error.errors
        if errors:
            raise LoadError(errors)
        changed = []
        for file in dict.fromkeys(files):
            wanted = formatted_file(read[file], str(file))
            if wanted == read[file]:
                continue
            changed.append(file)
            if check:
                click.echo(f"{file}: would be reformatted", err=True)
            else:
                if not os.path.isfile(os.path.realpath(file)):
                    raise ConfigurationError(
                        f"{file} is not a regular file (a pipe?), so fmt cannot rewrite it: "
                        "fmt --check reads it"
                    )
                _rewrite(file, wanted.decode("utf-8"))
                click.echo(f"{file}: reformatted", err=True)
    if check and changed:
        raise SystemExit(EXIT_ERROR)
