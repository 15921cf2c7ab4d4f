"""The demo account `--emulator` runs against: the live state shipped in `examples/`.

The file lives in the package (so an installed wheel has it) and `examples/live-state.json`
is a link to it, beside the `examples/sources.yaml` it is meant to be planned against.
"""

from __future__ import annotations

import json
import random
from typing import Any

from reconciler import shipped
from reconciler.emulator.store import SourceStore

# Read through `reconciler.shipped`: importlib.resources' readers cost start-up time.
EXAMPLE_STATE = "emulator/live-state.json"


def seeded_store(**options: Any) -> SourceStore:
    """A store holding the example live state; `options` go to `SourceStore`.

    Its random choices (ids, `*_encrypted` values) are seeded, so two processes running
    `--emulator` see the same account: a plan saved in one still applies in the next.
    """
    options.setdefault("rng", random.Random(0))
    store = SourceStore(**options)
    state = shipped.read(EXAMPLE_STATE)
    if state is None:
        raise FileNotFoundError(f"{EXAMPLE_STATE} (the package's loader cannot read it)")
    store.load_json(json.loads(state.decode("utf-8")))
    return store
