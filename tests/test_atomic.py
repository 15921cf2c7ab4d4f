import os
import stat
from pathlib import Path

import pytest

from reconciler.atomic import write_atomically


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
