"""Writing a file so that a reader sees the old content or the new, never half of either."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path


def write_atomically(path: Path, text: str) -> None:
    """Replace `path` with `text` atomically; an error names `path`, never the temporary file.

    The temporary file sits beside `path` (same file system, so the rename is atomic) and
    is created with mode 0600: saved plans and emulator states are not for other users.
    A pipe or a device at `path` (`--out >(gzip > plan.gz)`, `/dev/null`) is written
    through instead: replacing it would hide the text from its reader, and as root would
    put a regular file where the machine's `/dev/null` was. `text` is written as it is, its
    line ends untranslated (`fmt` keeps a file's own).
    """
    try:
        mode = os.stat(path).st_mode
    except OSError:
        mode = stat.S_IFREG  # nothing there yet (or a dangling link): a new file
    if stat.S_ISFIFO(mode) or stat.S_ISCHR(mode) or stat.S_ISSOCK(mode):
        try:
            with open(path, "w", encoding="utf-8", newline="") as handle:
                handle.write(text)
        except OSError as error:
            raise OSError(error.errno, error.strerror, str(path)) from None
        return
    _through_temporary(path, text, lambda temporary: os.replace(temporary, path))


def write_new(path: Path, text: str) -> None:
    """Write `text` to `path` only if nothing is there: `FileExistsError` otherwise.

    Decided when the file appears, not before: a file (or a link) created at `path` while
    the caller worked is never replaced. The complete file appears at once (a hard link to
    the temporary file), or, where links are not supported, is created exclusively. It gets
    the mode any new file of the user's gets (0666 less the umask): an exported file holds
    references, never a secret, and is the user's to commit and share.
    """

    def link(temporary: str) -> None:
        try:
            os.link(temporary, path)
        except FileExistsError:
            raise
        except OSError:
            # No hard links here (some network and FUSE file systems): exclusive creation.
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
            created = os.open(path, flags, 0o666)  # less the umask, as any new file
            try:
                with os.fdopen(created, "w", encoding="utf-8", newline="") as handle:
                    handle.write(text)
            except BaseException:
                os.unlink(path)  # ours, and incomplete
                raise
        os.unlink(temporary)

    umask = os.umask(0o077)  # read, then put back at once: there is no other way to read it
    os.umask(umask)
    _through_temporary(path, text, link, mode=0o666 & ~umask)


# The temporary's name holds this much of the file's: any name the file system takes
# leaves room for the dot, the random part and the suffix (14 bytes).
_NAME_KEPT = 128


def _through_temporary(
    path: Path, text: str, publish: Callable[[str], None], mode: int | None = None
) -> None:
    """Write `text` to a temporary file beside `path` (mode 0600, else `mode`), publish it."""
    # Cut as bytes, the file system's measure; a character cut in two stays as its bytes.
    kept = os.fsdecode(os.fsencode(path.name)[:_NAME_KEPT])
    try:
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{kept}.", suffix=".tmp")
    except OSError as error:
        raise OSError(error.errno, error.strerror, str(path)) from None
    try:
        if mode is not None:
            os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        publish(temporary)
    except FileExistsError:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(path)) from None
    except OSError as error:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise OSError(error.errno, error.strerror, str(path)) from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
