"""The stack desired-state files are parsed on (`reconciler/loading/stack.py`)."""

from __future__ import annotations

import resource
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from console import child_env

from reconciler.loading.stack import LOAD_STACK_BYTES, on_load_stack


def test_on_load_stack_hands_back_the_result_and_raises_the_error_where_it_is_awaited() -> None:
    def where() -> str:
        return threading.current_thread().name

    assert on_load_stack(where) == "load"
    with pytest.raises(KeyError, match="missing"):
        on_load_stack({}.__getitem__, "missing")


def test_on_load_stack_leaves_other_threads_stacks_as_they_were() -> None:
    before = threading.stack_size()
    on_load_stack(len, "x")
    assert threading.stack_size() == before != LOAD_STACK_BYTES


@pytest.mark.parametrize("command", ["validate", "fmt"])
def test_a_main_thread_stack_cut_by_ulimit_gives_a_nested_file_a_located_error(
    tmp_path: Path, command: str
) -> None:
    # `ulimit -s 1024` (a runner's or a container's limit) sizes the main thread's stack:
    # validate and fmt parsed there, and a file nested 5,000 levels, within the loader's
    # bound, ended them in a segfault with no word.
    sources = tmp_path / "sources.yaml"
    sources.write_text("version: 1\nsources: " + "[" * 5000 + "]" * 5000 + "\n")

    def small_stack() -> None:
        hard = resource.getrlimit(resource.RLIMIT_STACK)[1]
        resource.setrlimit(resource.RLIMIT_STACK, (1024 * 1024, hard))

    result = subprocess.run(
        [sys.executable, "-m", "reconciler", command, str(sources)],
        preexec_fn=small_stack,
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=120,
        check=False,
    )
    assert result.returncode == 1, result.returncode  # was -11
    assert result.stderr.startswith(f"{sources}:")
    assert "recursive or too deeply nested YAML is not supported" in result.stderr
