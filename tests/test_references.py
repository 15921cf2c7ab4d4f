"""References (reconciler/references.py): parsing, confinement, reading limits, redaction."""

from __future__ import annotations

import array
import fcntl
import os
import termios
import threading
import time
from pathlib import Path

import pytest

from reconciler import redact, references
from reconciler.references import (
    MAX_REFERENCED_BYTES,
    MIN_LENGTH,
    MissingReference,
    Reference,
    UnreadableReference,
)


def read(tmp_path: Path, name: str, environ: dict[str, str] | None = None) -> str:
    value, _ = references.read(
        Reference("file", name), environ=environ or {}, base=tmp_path, root=tmp_path
    )
    return value


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"env": "NAME"}, Reference("env", "NAME")),
        ({"file": "a/b.txt"}, Reference("file", "a/b.txt")),
        ({"env": ""}, None),
        ({"env": 1}, None),
        ({"environment": "X"}, None),
        ({"env": "A", "file": "b"}, None),
        ("text", None),
    ],
)
def test_parse_knows_exactly_the_two_forms(value: object, expected: Reference | None) -> None:
    assert references.parse(value) == expected


def test_a_reference_shows_as_written() -> None:
    assert str(Reference("env", "S3_KEY")) == "{env: S3_KEY}"
    assert Reference("file", "k.txt").as_written() == {"file": "k.txt"}


def test_repository_root_is_the_nearest_folder_with_git(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / "config" / "imgix").mkdir(parents=True)
    desired = tmp_path / "config" / "imgix" / "sources.yaml"
    assert references.repository_root(desired) == tmp_path.resolve()


def test_without_a_repository_the_root_is_the_files_folder(tmp_path: Path) -> None:
    (tmp_path / "alone").mkdir()
    root = references.repository_root(tmp_path / "alone" / "sources.yaml")
    # tmp_path itself may sit in a repository; the folder is the root only when none does.
    assert root == (tmp_path / "alone").resolve() or (root / ".git").exists()


def test_a_file_in_a_sibling_folder_of_the_repository_is_readable(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / "secrets").mkdir()
    (tmp_path / "config").mkdir()
    (tmp_path / "secrets" / "key.txt").write_text("key-in-the-repository\n")
    value, locator = references.read(
        Reference("file", "../secrets/key.txt"),
        environ={},
        base=tmp_path / "config",
        root=tmp_path,
    )
    assert value == "key-in-the-repository"
    assert locator == {"file": str((tmp_path / "secrets" / "key.txt").resolve())}


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("/proc/self/environ", "the path must be relative"),
        ("/etc/passwd", "the path must be relative"),
        ("../outside.txt", "the path leads outside the repository"),
        ("inside/../../outside.txt", "the path leads outside the repository"),
        ("link-out.txt", "the path leads outside the repository"),
        ("dir-link/outside.txt", "the path leads outside the repository"),
    ],
)
def test_paths_leaving_the_repository_are_refused(tmp_path: Path, name: str, problem: str) -> None:
    repository = tmp_path / "repository"
    (repository / "inside").mkdir(parents=True)
    (tmp_path / "outside.txt").write_text("outside-canary-value\n")
    os.symlink(tmp_path / "outside.txt", repository / "link-out.txt")
    os.symlink(tmp_path, repository / "dir-link")
    with pytest.raises(UnreadableReference) as caught:
        read(repository, name)
    assert problem in str(caught.value)
    assert not isinstance(caught.value, MissingReference)
    assert "outside-canary-value" not in str(caught.value)


def test_a_symlink_inside_the_repository_is_followed(tmp_path: Path) -> None:
    (tmp_path / "real.txt").write_text("value-behind-a-link\n")
    os.symlink("real.txt", tmp_path / "alias.txt")
    assert read(tmp_path, "alias.txt") == "value-behind-a-link"


def test_a_locator_reached_through_a_symlink_is_refused(tmp_path: Path) -> None:
    # A saved plan's locator is a checked real path: a link put there since is refused.
    (tmp_path / "real.txt").write_text("value-behind-a-link\n")
    os.symlink(tmp_path / "real.txt", tmp_path / "swapped.txt")
    with pytest.raises(UnreadableReference, match="not the one checked"):
        references.read_located({"file": str(tmp_path / "swapped.txt")}, environ={})
    with pytest.raises(UnreadableReference, match="not the one checked"):
        references.read_located({"file": "relative.txt"}, environ={})


def test_special_and_oversized_files_are_refused(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(UnreadableReference, match="not a regular file"):
        read(tmp_path, "fifo")
    (tmp_path / "huge.txt").write_text("x" * (MAX_REFERENCED_BYTES + 1))
    with pytest.raises(UnreadableReference, match="larger than 64 KiB"):
        read(tmp_path, "huge.txt")
    (tmp_path / "binary.txt").write_bytes(b"\xff\xfe-not-utf-8-text")
    with pytest.raises(UnreadableReference, match="not readable as UTF-8"):
        read(tmp_path, "binary.txt")


def test_missing_values_are_told_apart_from_refused_ones(tmp_path: Path) -> None:
    # Only a missing value may be skipped by a plan made without the secrets.
    (tmp_path / "empty.txt").write_text("\n")
    for name in ("absent.txt", "empty.txt"):
        with pytest.raises(MissingReference):
            read(tmp_path, name)
    for environ in ({}, {"X": ""}):
        with pytest.raises(MissingReference):
            references.read(Reference("env", "X"), environ=environ, base=tmp_path, root=tmp_path)


def test_a_value_too_short_to_mask_is_refused_without_being_shown(tmp_path: Path) -> None:
    short = "k" * (MIN_LENGTH - 1)
    with pytest.raises(UnreadableReference) as caught:
        references.read_located({"env": "SHORT"}, environ={"SHORT": short})
    assert str(caught.value) == (
        f"{{env: SHORT}} holds fewer than {MIN_LENGTH} characters: a value that short cannot "
        "be masked in outputs"
    )
    assert not isinstance(caught.value, MissingReference)
    assert redact.scrub(f"a {short} b") == f"a {short} b"  # not registered either


@pytest.mark.parametrize("blank", [" " * MIN_LENGTH, "\t \u00a0" * MIN_LENGTH])
def test_a_value_of_only_blanks_is_refused_and_never_masks_the_outputs_indentation(
    blank: str,
) -> None:
    # A CI secret set to spaces was registered for redaction: every run of eight spaces
    # in the outputs became `***`, and `plan --format json` printed invalid JSON.
    with pytest.raises(UnreadableReference) as caught:
        references.read_located({"env": "BLANK"}, environ={"BLANK": blank})
    assert str(caught.value) == (
        "{env: BLANK} holds only blanks (spaces, tabs): a secret set by mistake? A value "
        "of blanks would mask every run of them in the outputs"
    )
    assert not isinstance(caught.value, MissingReference)
    assert redact.scrub(f"a{blank}b") == f"a{blank}b"


def test_a_value_read_is_registered_for_redaction_before_it_is_returned() -> None:
    value = references.read_located({"env": "V"}, environ={"V": "registered-canary-8c1"})
    assert redact.scrub(f"echo {value}") == f"echo {redact.MASK}"


def test_a_trailing_newline_is_not_part_of_a_file_value(tmp_path: Path) -> None:
    (tmp_path / "v.txt").write_text("value-with-newline\r\n")
    assert read(tmp_path, "v.txt") == "value-with-newline"


def test_a_git_lfs_pointer_is_refused_as_such_not_sent_as_the_value(tmp_path: Path) -> None:
    # actions/checkout fetches no LFS content unless `lfs: true`: a file tracked by LFS is
    # then its pointer, which would have been sent as the password or annotation.
    pointer = (
        "version https://git-lfs.github.com/spec/v1\n"
        "oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\n"
        "size 12345\n"
    )
    (tmp_path / "cert.pem").write_text(pointer)
    with pytest.raises(UnreadableReference) as refused:
        read(tmp_path, "cert.pem")
    assert str(refused.value) == (
        "cannot read cert.pem: it is a Git LFS pointer, not the file's content: fetch the "
        "LFS files first (actions/checkout with `lfs: true`, or `git lfs pull`)"
    )


def test_schema_fragment_accepts_exactly_one_kind() -> None:
    fragment = references.schema("Reference", "A reference.")
    assert [list(choice["properties"]) for choice in fragment["oneOf"]] == [["env"], ["file"]]
    assert all(choice["additionalProperties"] is False for choice in fragment["oneOf"])


def test_a_nul_character_in_a_path_is_an_error_not_a_crash(tmp_path: Path) -> None:
    with pytest.raises(UnreadableReference) as refused:
        read(tmp_path, "a\0b.txt")
    assert str(refused.value) == "{file: ...}: the path holds a NUL character"
    with pytest.raises(UnreadableReference, match="malformed"):
        references.read_located({"file": "/tmp/a\0b"}, environ={})


@pytest.mark.parametrize(
    "locator",
    [{"env": "A", "file": "/b"}, {"http": "https://x.example/"}, {}],
)
def test_a_locator_of_an_unknown_shape_is_refused_by_name(locator: dict[str, str]) -> None:
    # A saved plan carries locators: its text may have been edited.
    with pytest.raises(UnreadableReference, match=r"^unknown reference"):
        references.read_located(locator, environ={"A": "a-value-long-enough"})


@pytest.mark.parametrize("locator", [{"env": ""}, {"env": 5}, {"file": "/a\0b"}])
def test_a_malformed_locator_is_refused(locator: dict[str, object]) -> None:
    with pytest.raises(UnreadableReference, match=r"^malformed reference$"):
        references.read_located(locator, environ={"": "a-value-long-enough"})


def test_a_value_of_exactly_the_minimum_length_is_read() -> None:
    value = "k" * MIN_LENGTH
    assert references.read_located({"env": "V"}, environ={"V": value}) == value


@pytest.mark.parametrize(
    "name",
    ["IMGIX_API_KEY", "IMGIX_SOURCE_SECRETS", "GITHUB_TOKEN", "GH_TOKEN",
     "IMGIX_RECONCILER_FINGERPRINT_KEY", "ACTIONS_RUNTIME_TOKEN"],
)  # fmt: skip
def test_a_credential_of_the_tool_or_the_runner_is_never_read(name: str) -> None:
    with pytest.raises(UnreadableReference) as refused:
        references.read_located({"env": name}, environ={name: "credential-value-123"})
    assert str(refused.value).startswith(f"environment variable {name} holds a credential")
    assert not isinstance(refused.value, MissingReference)
    assert redact.scrub("credential-value-123") == "credential-value-123"  # never read


@pytest.mark.parametrize("name", ["MY_GITHUB_TOKEN", "IMGIX_API_KEY_2", "SOURCE_ACTIONS_KEY"])
def test_variables_that_only_look_like_credentials_are_read(name: str) -> None:
    assert references.read_located({"env": name}, environ={name: "own-value-123"}) == (
        "own-value-123"
    )


@pytest.mark.parametrize(
    ("content", "value"),
    [("ends-in-X\r\n", "ends-in-X"), ("ends-in-blanks \t\n", "ends-in-blanks \t")],
)
def test_only_the_line_ending_is_dropped_from_a_file_value(
    tmp_path: Path, content: str, value: str
) -> None:
    (tmp_path / "v.txt").write_bytes(content.encode())
    assert read(tmp_path, "v.txt") == value


def test_a_limit_that_is_not_a_whole_kibibyte_is_told_in_bytes(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"x" * 101)
    with pytest.raises(references.Unreadable, match=r"^larger than 100 bytes$"):
        references.read_limited(str(tmp_path / "f"), 100, regular_only=True)
    assert references.read_limited(str(tmp_path / "f"), 101, regular_only=False) == b"x" * 101


def test_a_missing_value_still_says_where_to_read_it_at_apply_time(tmp_path: Path) -> None:
    # A plan made without the secrets keeps the locator, for apply to read the value later.
    for reference, locator in (
        (Reference("env", "LATER"), {"env": "LATER"}),
        (Reference("file", "later.txt"), {"file": str(tmp_path.resolve() / "later.txt")}),
    ):
        with pytest.raises(MissingReference) as missing:
            references.read(reference, environ={}, base=tmp_path, root=tmp_path)
        assert missing.value.locator == locator


def test_reading_leaves_no_file_descriptor_open(tmp_path: Path) -> None:
    (tmp_path / "v.txt").write_text("a-value-long-enough")
    os.mkfifo(tmp_path / "fifo")
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(20):
        assert read(tmp_path, "v.txt") == "a-value-long-enough"
        with pytest.raises(UnreadableReference):
            read(tmp_path, "fifo")
    assert len(os.listdir("/proc/self/fd")) == before


def test_a_file_refused_for_what_it_is_is_not_taken_for_a_missing_one(tmp_path: Path) -> None:
    # A plan made without the secrets skips missing values: never a refused one.
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "huge.txt").write_text("x" * (MAX_REFERENCED_BYTES + 1))
    for name in ("fifo", "huge.txt"):
        with pytest.raises(UnreadableReference) as refused:
            read(tmp_path, name)
        assert not isinstance(refused.value, MissingReference), name


def test_each_refusal_names_the_reference_in_full(tmp_path: Path) -> None:
    # The messages users read: the reference and the reason, never the value.
    (tmp_path / "repository").mkdir()
    (tmp_path / "empty.txt").write_text("\n")
    (tmp_path / "binary.txt").write_bytes(b"\xff\xfe-not-utf-8-text")
    (tmp_path / "real.txt").write_text("value-behind-a-link\n")
    os.symlink(tmp_path / "real.txt", tmp_path / "swapped.txt")
    root = (tmp_path / "repository").resolve()
    cases = [
        (
            lambda: read(tmp_path / "repository", "../real.txt"),
            f"{{file: ../real.txt}}: the path leads outside the repository ({root})",
        ),
        (
            lambda: references.read_located({"env": "E"}, environ={"E": ""}),
            "environment variable E is empty",
        ),
        (
            lambda: references.read_located({"file": str(tmp_path / "swapped.txt")}, environ={}),
            f"cannot read {tmp_path / 'swapped.txt'}: the path is not the one checked",
        ),
        (lambda: read(tmp_path, "empty.txt"), "file empty.txt is empty"),
        (
            lambda: read(tmp_path, "binary.txt"),
            "cannot read binary.txt: not readable as UTF-8 text",
        ),
    ]
    for call, message in cases:
        with pytest.raises(UnreadableReference) as refused:
            call()
        assert str(refused.value) == message


def test_a_desired_state_file_given_as_a_pipe_is_read() -> None:
    # `plan <(generate-sources)`: the loader reads its file with `regular_only=False`, so a
    # pipe is read to its end (only a reference's value must be a regular file).
    reader, writer = os.pipe()
    try:
        os.write(writer, b"version: 1\n")
        os.close(writer)
        path = f"/dev/fd/{reader}"
        assert references.read_limited(path, 100, regular_only=False) == b"version: 1\n"
    finally:
        os.close(reader)


def test_an_endless_stream_is_refused_once_past_the_limit() -> None:
    # A desired-state file may be any path (`/dev/zero`, a named pipe): reading stops at the
    # first byte over the limit instead of reading on to an end that never comes.
    with pytest.raises(references.Unreadable, match=r"^larger than 100 bytes$"):
        references.read_limited("/dev/zero", 100, regular_only=False)


def _unread(descriptor: int) -> int:
    """The bytes waiting in the pipe `descriptor` is an end of."""
    waiting = array.array("i", [0])
    fcntl.ioctl(descriptor, termios.FIONREAD, waiting)
    return waiting[0]


def test_a_pipe_one_byte_over_the_limit_is_refused_at_that_byte_and_not_waited_on() -> None:
    # `plan <(generate-sources)`: a pipe arrives in parts. Here the bytes up to the limit
    # come in one part and the byte over it in the next, then the writer stalls with its end
    # open. Reading stops at that byte and refuses the file: it neither stops one byte
    # short (taking the file as within the limit) nor waits for a byte more.
    limit = 100
    reader, writer = os.pipe()
    outcome: list[bytes | str] = []

    def read_the_pipe() -> None:
        try:
            outcome.append(references.read_limited(f"/dev/fd/{reader}", limit, regular_only=False))
        except references.Unreadable as refused:
            outcome.append(refused.reason)

    reading = threading.Thread(target=read_the_pipe)
    try:
        os.write(writer, b"x" * limit)
        reading.start()
        deadline = time.monotonic() + 30
        while _unread(writer) and time.monotonic() < deadline:  # the first part is read
            time.sleep(0.001)
        os.write(writer, b"y")
        reading.join(timeout=10)
        assert not reading.is_alive(), "still waiting on a stalled pipe"
        assert outcome == ["larger than 100 bytes"]
    finally:
        os.close(writer)  # ends a reading still waiting
        reading.join()
        os.close(reader)


def test_each_refusal_of_an_environment_variable_or_a_file_says_why_in_full(
    tmp_path: Path,
) -> None:
    # The reason is all a user gets to fix the reference by: unset, not text, not a file,
    # too large, absent (the system's own words), each said exactly.
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "huge.txt").write_text("x" * (MAX_REFERENCED_BYTES + 1))
    cases = [
        (
            lambda: references.read_located({"env": "E"}, environ={}),
            "environment variable E is not set",
        ),
        (
            # Bytes that are not UTF-8 reach Python's environment as lone surrogates.
            lambda: references.read_located({"env": "E"}, environ={"E": "key-\udcff-bytes"}),
            "environment variable E is not readable as UTF-8 text",
        ),
        (lambda: read(tmp_path, "fifo"), "cannot read fifo: not a regular file"),
        (lambda: read(tmp_path, "huge.txt"), "cannot read huge.txt: larger than 64 KiB"),
        (lambda: read(tmp_path, "absent.txt"), "cannot read absent.txt: No such file or directory"),
    ]
    for call, message in cases:
        with pytest.raises(UnreadableReference) as refused:
            call()
        assert str(refused.value) == message


def test_a_limit_of_whole_mebibytes_is_told_in_mebibytes(tmp_path: Path) -> None:
    # The loader's and the plan reader's limits are MiB: "larger than 1048576 bytes" or
    # "1024 KiB" would be a needless sum for the user.
    (tmp_path / "big.yaml").write_bytes(b"x" * (1024 * 1024 + 1))
    with pytest.raises(references.Unreadable) as refused:
        references.read_limited(str(tmp_path / "big.yaml"), 1024 * 1024, regular_only=False)
    assert refused.value.reason == "larger than 1 MiB"


@pytest.mark.parametrize("value", ["x", ["env"], ("file",), 7, None])
def test_a_value_that_is_no_mapping_is_no_reference_whatever_its_length(value: object) -> None:
    # A one-character string or a one-item list is a plain value, not a malformed reference.
    assert references.parse(value) is None


def test_a_desired_file_that_does_not_exist_anchors_in_its_own_folder_not_the_working_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `plan missing.yaml` must reach the loader, which says the file is missing: anchoring
    # must neither fail on it (an internal error) nor take it for a pipe (the working folder).
    (tmp_path / ".git").mkdir()
    (tmp_path / "config").mkdir()
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")

    folder, repository = references.anchors(str(tmp_path / "config" / "missing.yaml"))

    assert (folder, repository) == (tmp_path / "config", tmp_path.resolve())


def test_a_desired_file_given_as_a_pipe_anchors_in_the_working_folder_and_its_repository(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `plan <(generate)`: the pipe's folder (/dev/fd) is no folder of the user's; their
    # `{file:}` paths mean the working folder, confined to the repository holding it.
    (tmp_path / ".git").mkdir()
    (tmp_path / "pipes").mkdir()
    (tmp_path / "work").mkdir()
    os.mkfifo(tmp_path / "pipes" / "sources.yaml")
    monkeypatch.chdir(tmp_path / "work")

    folder, repository = references.anchors(str(tmp_path / "pipes" / "sources.yaml"))

    assert (folder, repository) == (tmp_path / "work", tmp_path.resolve())


def test_a_checkout_reached_through_a_symlinked_folder_still_reads_its_own_files(
    tmp_path: Path,
) -> None:
    # A runner's work folder may be a link (macOS's /tmp is /private/tmp): the repository
    # is where the desired file really is, so its own files are inside it.
    (tmp_path / "real" / ".git").mkdir(parents=True)
    (tmp_path / "real" / "key.txt").write_text("a-value-long-enough\n")
    (tmp_path / "real" / "sources.yaml").write_text("version: 1\n")
    os.symlink(tmp_path / "real", tmp_path / "link")

    base, root = references.anchors(str(tmp_path / "link" / "sources.yaml"))
    value, _ = references.read(Reference("file", "key.txt"), environ={}, base=base, root=root)

    assert root == (tmp_path / "real").resolve()
    assert value == "a-value-long-enough"


def test_a_desired_file_named_relatively_from_a_subfolder_is_seen_linked_out_of_its_repository(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `plan sources.yaml` run in repository/config: the repository is above the working
    # folder, and a link from there to a file outside it is a way out all the same.
    (tmp_path / "repository" / ".git").mkdir(parents=True)
    (tmp_path / "repository" / "config").mkdir()
    (tmp_path / "outside.yaml").write_text("version: 1\n")
    os.symlink(tmp_path / "outside.yaml", tmp_path / "repository" / "config" / "sources.yaml")
    monkeypatch.chdir(tmp_path / "repository" / "config")

    assert references.linked_out_of("sources.yaml") == str(tmp_path / "repository")


@pytest.mark.parametrize(
    "name",
    [
        ".git/config",
        "config/../.git/config",
        "innocent.txt",
        ".GIT/config",
        ".Git/config",
        "sub/.git",
    ],
)
def test_gits_own_files_are_refused_though_inside_the_repository(tmp_path: Path, name: str) -> None:
    # actions/checkout keeps the job's token in .git/config: referencing it would write the
    # runner's token into a source, as `{env: GITHUB_TOKEN}` would (that one is refused too).
    (tmp_path / ".git").mkdir()
    (tmp_path / "config").mkdir()
    token = "AUTHORIZATION: basic eC1hY2Nlc3MtdG9rZW46Z2hzX2NhbmFyeQ=="
    (tmp_path / ".git" / "config").write_text(f'[http]\n\textraheader = "{token}"\n')
    os.symlink(".git/config", tmp_path / "innocent.txt")
    if not (tmp_path / ".GIT").exists():  # a case-sensitive file system: make the folder
        os.symlink(".git", tmp_path / ".GIT")
        # A folder of its own, named .git in another case: the same folder on macOS.
        (tmp_path / ".Git").mkdir()
        (tmp_path / ".Git" / "config").write_text(f"{token}\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / ".git").write_text("gitdir: ../.git/modules/sub\n")  # a submodule's

    with pytest.raises(UnreadableReference) as refused:
        read(tmp_path, name)

    assert str(refused.value) == (
        f"{{file: {name}}}: the path leads into Git's own files (.git), which may hold the "
        "checkout's credentials"
    )
    assert token not in str(refused.value)
    assert not isinstance(refused.value, MissingReference)


@pytest.mark.parametrize("name", [".gitignore", "keys.git/key.txt", "keys/.github"])
def test_files_named_like_git_but_not_its_folder_are_read(tmp_path: Path, name: str) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / name).write_text("a-value-long-enough\n")

    assert read(tmp_path, name) == "a-value-long-enough"


def test_an_empty_mapping_is_no_reference() -> None:
    # `default_params: {}` is a plain (empty) value, not a reference missing its kind.
    assert references.parse({}) is None


def test_a_desired_file_inside_its_repository_is_not_linked_out_of_it(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "sources.yaml").write_text("version: 1\n")
    os.symlink(tmp_path / "config" / "sources.yaml", tmp_path / "linked.yaml")

    assert references.linked_out_of(str(tmp_path / "config" / "sources.yaml")) is None
    assert references.linked_out_of(str(tmp_path / "linked.yaml")) is None


def test_a_locator_reached_through_a_linked_folder_is_refused(tmp_path: Path) -> None:
    # A saved plan's locator is a checked real path: a folder link put on its way since
    # (whatever the names' order) is refused before anything is opened.
    (tmp_path / "z-real").mkdir()
    (tmp_path / "z-real" / "key.txt").write_text("value-behind-a-link\n")
    os.symlink(tmp_path / "z-real", tmp_path / "a-link")

    with pytest.raises(UnreadableReference, match="not the one checked"):
        references.read_located({"file": str(tmp_path / "a-link" / "key.txt")}, environ={})
