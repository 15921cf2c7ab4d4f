"""Python's cycle collector, paused while a large plan is built or drawn.

Planning and rendering make no reference cycles, but allocate enough to set off full
collections, each of which walks every object the caller holds (all the live sources,
the specs and the plan). At 10,000 sources they took about a third of the planner's CPU,
and made drawing a plan's text grow faster than the plan (14.6x the time for 10x the
actions, 10x with the collector paused: `bench/render.py`).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def paused() -> Iterator[None]:
    """Pause the cycle collector for the block; it is as it was afterwards."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
