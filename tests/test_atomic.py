import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from reconciler.atomic import write_atomically, write_new


def test_writes_the_text_privately_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "plan.json"
    target.write_text("old")
    write_atomically(target, "new")
    assert target.read_text() == "new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert os.listdir(tmp_path) == ["plan.json"]


@pytest.mark.parametrize("where", ["a directory", "a missing directory"])
def test_an_error_names_the_path_asked_for_and_cleans_up(tmp_path: Path, where: str) -> None:
    target = tmp_path / "out" if where == "a directory" else tmp_path / "missing" / "plan.json"
    if where == "a directory":
        target.mkdir()
    with pytest.raises(OSError) as caught:
        write_atomically(target, "text")
    assert caught.value.filename == str(target)
    assert sorted(os.listdir(tmp_path)) == (["out"] if where == "a directory" else [])


@pytest.mark.parametrize(("umask", "mode"), [(0o027, 0o640), (0o002, 0o664)])
@pytest.mark.parametrize("links", ["hard links", "no hard links"])
def test_a_new_file_never_replaces_what_is_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, links: str, umask: int, mode: int
) -> None:
    if links == "no hard links":

        def unsupported(*args: object, **kwargs: object) -> None:
            raise PermissionError(1, "Operation not permitted")

        monkeypatch.setattr(os, "link", unsupported)
    target = tmp_path / "sources.yaml"
    users = os.umask(umask)
    try:
        write_new(target, "new")
    finally:
        os.umask(users)
    assert target.read_text() == "new"
    # What any new file of the user's gets (an export is theirs to commit), not 0600.
    assert stat.S_IMODE(target.stat().st_mode) == mode

    dangling = tmp_path / "dangling.yaml"
    dangling.symlink_to(tmp_path / "nowhere")
    for there in (target, dangling):
        with pytest.raises(FileExistsError) as caught:
            write_new(there, "other")
        assert caught.value.filename == str(there)
    assert target.read_text() == "new" and not (tmp_path / "nowhere").exists()
    assert sorted(os.listdir(tmp_path)) == ["dangling.yaml", "sources.yaml"]


@pytest.mark.parametrize("write", [write_atomically, write_new])
def test_the_whole_text_is_on_disk_when_it_is_synced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, write: Callable[[Path, str], None]
) -> None:
    # Durable before it is published: a crash after the rename never leaves a short file.
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(
        os, "fsync", lambda fd: (synced.append(os.fstat(fd).st_size), real_fsync(fd))[1]
    )
    write(tmp_path / "plan.json", "x" * 1000)
    assert synced == [1000]


def test_an_interrupted_write_leaves_nothing_behind_and_is_not_swallowed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Ctrl-C while publishing: the temporary goes, the interrupt goes on.
    temporaries: list[str] = []

    def interrupted(temporary: str, path: object) -> None:
        temporaries.append(temporary)
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_atomically(tmp_path / "plan.json", "text")
    assert os.listdir(tmp_path) == []
    # Hidden beside the target while it is written (on its file system, so the rename is
    # atomic), and recognisably temporary.
    (temporary,) = temporaries
    assert os.path.dirname(temporary) == str(tmp_path)
    name = os.path.basename(temporary)
    assert name.startswith(".plan.json.") and name.endswith(".tmp")


def test_without_hard_links_a_failed_write_removes_the_incomplete_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unsupported(*args: object, **kwargs: object) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "link", unsupported)
    real_fdopen = os.fdopen
    opened: list[int] = []

    def failing_second_fdopen(fd: int, *args: object, **kwargs: object) -> object:
        opened.append(fd)
        if len(opened) == 2:  # the exclusive file at the target, after the temporary
            os.close(fd)
            raise OSError(28, "No space left on device")
        return real_fdopen(fd, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(os, "fdopen", failing_second_fdopen)
    target = tmp_path / "sources.yaml"
    with pytest.raises(OSError) as caught:
        write_new(target, "text")
    assert (caught.value.errno, caught.value.filename) == (28, str(target))
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("name", ["p" * 255, "é" * 127 + "p"])  # 255 bytes, cut mid-character
@pytest.mark.parametrize("write", [write_atomically, write_new])
def test_a_name_of_the_longest_length_is_written(
    tmp_path: Path, name: str, write: Callable[[Path, str], None]
) -> None:
    # The temporary took the whole name plus 14 bytes: past what the file system takes.
    target = tmp_path / name
    write(target, "text")
    assert target.read_text() == "text"
    assert os.listdir(tmp_path) == [name]


def test_a_pipe_at_the_path_is_written_through_and_stays_a_pipe(tmp_path: Path) -> None:
    # It was replaced by a regular file: the reader waited for ever, and as root
    # `plan --out /dev/null` left a regular file where the machine's null device was.
    fifo = tmp_path / "plan.json"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # so that opening to write returns
    try:
        write_atomically(fifo, "text")
        assert os.read(reader, 100) == b"text"
    finally:
        os.close(reader)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert os.listdir(tmp_path) == ["plan.json"]


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full here")
def test_a_device_that_refuses_the_text_is_an_error_naming_it() -> None:
    # `plan --out /dev/full`, or a pipe whose reader went: the write fails, said of the path.
    with pytest.raises(OSError) as caught:
        write_atomically(Path("/dev/full"), "text")
    assert (caught.value.errno, caught.value.filename) == (28, "/dev/full")
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)
