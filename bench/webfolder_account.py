"""The account `memory.py` and `plan_wall.py` plan: webfolder sources numbered n, live in
the emulator and desired in YAML, every tenth with another cache TTL live (a patch)."""

from __future__ import annotations

from collections.abc import Iterable

from reconciler.emulator import SourceStore
from reconciler.emulator.store import STATE_VERSION


def seed(store: SourceStore, numbers: Iterable[int]) -> SourceStore:
    """Load the live sources `numbers` into `store` (ids and all, no API calls)."""
    sources = [
        {
            "id": f"{n:024x}",
            "name": f"Bench {n:06d}",
            "deployment": {
                "type": "webfolder",
                "imgix_subdomains": [f"bench-{n}"],
                "webfolder_base_url": f"https://origin.example/{n}/",
                "cache_ttl_value": 31536000 if n % 10 else 86400,
            },
        }
        for n in numbers
    ]
    store.load_json({"version": STATE_VERSION, "sources": sources})
    return store


def sources_yaml(numbers: Iterable[int]) -> str:
    """The desired-state file of the sources `numbers`, all with the one-year cache TTL."""
    blocks = [
        f"""\
  - name: Bench {n:06d}
    deployment:
      type: webfolder
      imgix_subdomains: [bench-{n}]
      webfolder_base_url: https://origin.example/{n}/
      cache_ttl_value: 31536000
"""
        for n in numbers
    ]
    return "version: 1\nsources:\n" + "".join(blocks)
