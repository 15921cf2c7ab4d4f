"""`{env: NAME}` and `{file: path}` references: parsing, confinement, reading, schema.

A desired-state file may come from anyone who can open a pull request, so the value
behind a reference is never shown: it is read here, under limits, registered for
redaction before anything can echo it, and described everywhere by its reference. A
`{file:}` path is relative and resolves inside the repository (the nearest enclosing
directory holding `.git`, or the desired-state file's own directory when there is none),
through no symlink that leaves it, outside `.git` itself, to a regular file. The loader
and the applier (a saved plan's placeholders) both read through `read`/`read_located`, so
both refuse the same things.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

from reconciler import redact
from reconciler.untrusted import is_text

# `{env: NAME}` reads an environment variable, `{file: path}` a file of the repository.
REFERENCE_KINDS = ("env", "file")
# A referenced value is a key or a short text; the cap keeps /dev/zero-like files out.
MAX_REFERENCED_BYTES = 64 * 1024
# Shorter values cannot be masked in outputs without masking ordinary words as well.
MIN_LENGTH = redact.MIN_LENGTH


class UnreadableReference(Exception):
    """A reference whose value cannot be used; the message names the reference, never a value."""


class MissingReference(UnreadableReference):
    """The value is not there (variable unset or empty, file absent or empty): a plan made
    without the secrets (a pull request from a fork) may go on without it."""

    def __init__(self, message: str, locator: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.locator = dict(locator or {})


# A NamedTuple, not a frozen dataclass: defining one costs a sixth of the time, at every start.
class Reference(NamedTuple):
    """A reference as written in the file: `kind` is `env` or `file`, `name` what follows."""

    kind: str
    name: str

    def __str__(self) -> str:
        return f"{{{self.kind}: {self.name}}}"

    def as_written(self) -> dict[str, str]:
        """`{"env": NAME}`: what plans show instead of the value."""
        return {self.kind: self.name}


def parse(value: Any) -> Reference | None:
    """The reference `value` spells (`{env: NAME}` or `{file: path}`), else None."""
    if not isinstance(value, dict) or len(value) != 1:
        return None
    ((kind, name),) = value.items()
    if kind in REFERENCE_KINDS and isinstance(name, str) and name:
        return Reference(kind, name)
    return None


def anchors(desired_file: str) -> tuple[Path, Path]:
    """Where `{file:}` paths of `desired_file` start, and the folder they must stay in.

    A desired-state file that is no file on disk (`plan <(generate)`, a FIFO) has no folder
    of its own: its paths start in the working directory, as the shell's user means them.
    """
    try:
        on_disk = stat.S_ISREG(os.stat(desired_file).st_mode)
    except OSError:
        on_disk = True  # the loader says why it cannot read the file
    if not on_disk:
        with contextlib.suppress(OSError):  # a working directory deleted under the run
            here = Path(os.getcwd())
            return here, _repository_of(here.resolve())
    return Path(os.path.abspath(desired_file)).parent, repository_root(desired_file)


def repository_root(desired_file: str | os.PathLike[str]) -> Path:
    """Where `{file:}` references of `desired_file` must stay: its repository, else its folder."""
    return _repository_of(Path(os.path.realpath(desired_file)).parent)


def _repository_of(folder: Path) -> Path:
    for candidate in (folder, *folder.parents):
        if (candidate / ".git").exists():
            return candidate
    return folder


def confined_path(name: str, *, base: Path, root: Path) -> str:
    """The real path `name` (relative to `base`) names, refused unless it stays in `root`."""
    if "\0" in name:
        raise UnreadableReference("{file: ...}: the path holds a NUL character")
    if os.path.isabs(name):
        raise UnreadableReference(f"{{file: {name}}}: the path must be relative")
    real = os.path.realpath(base / name)
    if os.path.commonpath([real, str(root)]) != str(root):
        raise UnreadableReference(
            f"{{file: {name}}}: the path leads outside the repository ({root})"
        )
    # A checkout that keeps its credentials holds the job's token in .git/config. Any case:
    # on macOS and Windows `.GIT` is the same folder.
    if any(part.casefold() == ".git" for part in Path(os.path.relpath(real, root)).parts):
        raise UnreadableReference(
            f"{{file: {name}}}: the path leads into Git's own files (.git), which may hold "
            "the checkout's credentials"
        )
    return real


def read(
    reference: Reference,
    *,
    environ: Mapping[str, str],
    base: Path,
    root: Path,
) -> tuple[str, dict[str, str]]:
    """The value behind `reference` and where to read it again (its locator).

    The locator of a file is its confined real path, so a saved plan applied later reads
    the very file that was checked (`read_located` refuses it if a symlink appeared).
    """
    if reference.kind == "env":
        locator = {"env": reference.name}
    else:
        locator = {"file": confined_path(reference.name, base=base, root=root)}
    try:
        return read_located(locator, environ=environ, shown_as=reference.name), locator
    except MissingReference as exc:
        raise MissingReference(str(exc), locator) from None


def read_located(
    locator: Mapping[str, Any], *, environ: Mapping[str, str], shown_as: str | None = None
) -> str:
    """The value at `{"env": NAME}` or `{"file": REAL_PATH}`, registered for redaction.

    Refused: unset or empty values, values that are not UTF-8, files that are not regular,
    too large or reached through a symlink, and values too short to be masked or blank.
    """
    if len(locator) != 1 or next(iter(locator)) not in REFERENCE_KINDS:
        raise UnreadableReference(f"unknown reference {sorted(map(str, locator))}")
    ((kind, target),) = locator.items()
    if not isinstance(target, str) or not target or "\0" in target:
        raise UnreadableReference("malformed reference")
    shown = shown_as or target
    value = _environment(target, environ) if kind == "env" else _file(target, shown)
    if len(value) < MIN_LENGTH:
        raise UnreadableReference(
            f"{Reference(kind, shown)} holds fewer than {MIN_LENGTH} characters: a value "
            "that short cannot be masked in outputs"
        )
    if value.isspace():
        raise UnreadableReference(
            f"{Reference(kind, shown)} holds only blanks (spaces, tabs): a secret set by "
            "mistake? A value of blanks would mask every run of them in the outputs"
        )
    redact.register(value)
    return value


# Variables holding the tool's own credentials and settings (the API key, the fingerprint
# key, the action's bundle of source secrets) and the runner's tokens: a file that
# referenced one would have it written into a source, where the dashboard or any other
# API key of the account reads it back (an `annotation`, a `default_params` value).
RESERVED_VARIABLES = frozenset(
    {"IMGIX_API_KEY", "IMGIX_SOURCE_SECRETS", "GITHUB_TOKEN", "GH_TOKEN"}
)
RESERVED_PREFIXES = ("IMGIX_RECONCILER_", "ACTIONS_")


def reserved_variable(name: str) -> bool:
    """Whether `{env: name}` would read a credential of the tool or of the CI runner."""
    return name in RESERVED_VARIABLES or name.startswith(RESERVED_PREFIXES)


def _environment(name: str, environ: Mapping[str, str]) -> str:
    if reserved_variable(name):
        raise UnreadableReference(
            f"environment variable {name} holds a credential of imgix-reconciler or of the "
            "CI runner, which a desired-state file may not reference: use a variable of its own"
        )
    if name not in environ:
        raise MissingReference(f"environment variable {name} is not set")
    value = environ[name]
    if not value:
        raise MissingReference(f"environment variable {name} is empty")
    if not is_text(value):
        raise UnreadableReference(f"environment variable {name} is not readable as UTF-8 text")
    return value


# How a file tracked by Git LFS reads in a checkout that did not fetch its content (the
# default of actions/checkout): https://github.com/git-lfs/git-lfs/blob/main/docs/spec.md
LFS_POINTER_START = "version https://git-lfs.github.com/spec/"


def _file(path: str, shown: str) -> str:
    if not os.path.isabs(path) or os.path.realpath(path) != path:
        # A locator is a checked real path: anything else was edited or swapped since.
        raise UnreadableReference(f"cannot read {shown}: the path is not the one checked")
    try:
        raw = read_limited(path, MAX_REFERENCED_BYTES, regular_only=True)
    except Unreadable as exc:
        problem = MissingReference if exc.missing else UnreadableReference
        raise problem(f"cannot read {shown}: {exc.reason}") from None
    try:
        # A byte order mark (Notepad's, PowerShell's) is no part of the value either.
        value = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UnreadableReference(f"cannot read {shown}: not readable as UTF-8 text") from None
    # Editors end files with a newline that is not part of the value.
    value = value.rstrip("\r\n")
    if not value:
        raise MissingReference(f"file {shown} is empty")
    if value.startswith(LFS_POINTER_START):
        raise UnreadableReference(
            f"cannot read {shown}: it is a Git LFS pointer, not the file's content: fetch the "
            "LFS files first (actions/checkout with `lfs: true`, or `git lfs pull`)"
        )
    return value


def linked_out_of(file: str) -> str | None:
    """The repository `file` is named in, when a symlink leads the file out of it.

    The repository is the nearest folder above the path as given that holds `.git`, as
    a checkout has, and is not itself a symlink: a linked folder leading into another
    checkout is a way out, not a repository. A path in no repository (`/dev/stdin`,
    `validate <(generate)`) is the user's own choice, read wherever it leads.
    """
    folder = Path(os.path.abspath(file)).parent
    root = next(
        (c for c in (folder, *folder.parents) if (c / ".git").exists() and not c.is_symlink()),
        None,
    )
    if root is None:
        return None
    real_root = os.path.realpath(root)
    if os.path.commonpath([os.path.realpath(file), real_root]) == real_root:
        return None
    return str(root)


class Unreadable(Exception):
    """A file that cannot be read within the limits; `reason` says why."""

    def __init__(self, reason: str, *, missing: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.missing = missing


def read_limited(path: str, limit: int, *, regular_only: bool) -> bytes:
    """The bytes of `path`, refusing more than `limit` (and, if asked, anything but a
    regular file reached without a final symlink)."""
    # O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer.
    flags = os.O_RDONLY | (os.O_NONBLOCK | os.O_NOFOLLOW if regular_only else 0)
    try:
        descriptor = os.open(path, flags)
        try:
            if regular_only and not stat.S_ISREG(os.fstat(descriptor).st_mode):
                raise Unreadable("not a regular file")
            data = read_up_to(descriptor, limit + 1)
        finally:
            os.close(descriptor)
    except OSError as exc:
        missing = exc.errno == errno.ENOENT
        raise Unreadable(exc.strerror or type(exc).__name__, missing=missing) from None
    return within_limit(data, limit)


def within_limit(data: bytes, limit: int) -> bytes:
    """`data`, read with one byte to spare, unless it is more than `limit`."""
    if len(data) > limit:
        raise Unreadable(f"larger than {_size(limit)}")
    return data


def read_up_to(descriptor: int, size: int) -> bytes:
    """At most `size` bytes from `descriptor`, fewer only at its end (a pipe reads in parts)."""
    chunks: list[bytes] = []
    while size > 0 and (chunk := os.read(descriptor, size)):
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _size(limit: int) -> str:
    for unit, factor in (("MiB", 1024 * 1024), ("KiB", 1024)):
        if limit % factor == 0:
            return f"{limit // factor} {unit}"
    return f"{limit} bytes"


def schema(title: str, description: str) -> dict[str, Any]:
    """The JSON Schema of a reference: one of `{env: NAME}` or `{file: path}`."""
    return {
        "title": title,
        "description": description,
        "oneOf": [
            {
                "type": "object",
                "properties": {kind: {"type": "string", "minLength": 1}},
                "required": [kind],
                "additionalProperties": False,
            }
            for kind in REFERENCE_KINDS
        ],
    }
