"""A local imgix Management API for Sources: for the demo, the tests and users' own tests.

`SourceStore` holds the state and every rule; `create_app(store)` is its ASGI app (use it
with `httpx.ASGITransport`); `running_emulator(store)` serves it over real HTTP.
"""

from reconciler.emulator.app import create_app
from reconciler.emulator.errors import ApiProblem
from reconciler.emulator.limits import Faults, ManualClock, RateLimits
from reconciler.emulator.seed import seeded_store
from reconciler.emulator.server import running_app, running_emulator, serve
from reconciler.emulator.store import EMULATOR_API_KEY, LoggedRequest, SourceStore, StoredSource

__all__ = [
    "EMULATOR_API_KEY",
    "ApiProblem",
    "Faults",
    "LoggedRequest",
    "ManualClock",
    "RateLimits",
    "SourceStore",
    "StoredSource",
    "create_app",
    "running_app",
    "running_emulator",
    "seeded_store",
    "serve",
]
