"""Files shipped in the package, read through its loader."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler import shipped

PACKAGE = Path(__file__).resolve().parent.parent / "reconciler"


@pytest.mark.parametrize(
    "name", ["rendering_params.json", "sources.schema.json", "emulator/live-state.json"]
)
def test_a_shipped_file_reads_as_its_bytes(name: str) -> None:
    assert shipped.read(name) == (PACKAGE / name).read_bytes()


def test_a_missing_file_is_an_error_not_empty_data() -> None:
    with pytest.raises(FileNotFoundError):
        shipped.read("no-such-file.json")
