"""The demo account `--emulator` runs against: the live state shipped in `examples/`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from reconciler.emulator.store import SourceStore

EXAMPLE_STATE = Path(__file__).resolve().parents[2] / "examples" / "live-state.json"


def seeded_store(**options: Any) -> SourceStore:
    """A store holding the example live state; `options` go to `SourceStore`."""
    store = SourceStore(**options)
    store.load_json(json.loads(EXAMPLE_STATE.read_text(encoding="utf-8")))
    return store
