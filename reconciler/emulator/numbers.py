"""Numbers the API can carry: finite, and integers within JSON's safe range.

Python's json module reads `1e999` as infinity, `NaN` as a float and integers of any
length, none of which the API can serve back: JSON has no infinity, and most JSON parsers
round integers past 2**53. The emulator refuses them on the way in, so it never stores a
value that would break every later answer.
"""

from __future__ import annotations

import math
from typing import Any

# Number.MAX_SAFE_INTEGER: the largest integer every JSON parser reads exactly.
MAX_SAFE_INTEGER = 2**53 - 1
SAFE_RANGE = f"finite, and integers within ±{MAX_SAFE_INTEGER}"


def unsafe_number(value: Any, path: str = "") -> str | None:
    """The path of the first number in `value` JSON cannot carry safely, else None."""
    # Iterative: a body nested as deep as json.loads allows must not exhaust the stack.
    pending: list[tuple[str, Any]] = [(path, value)]
    while pending:
        where, item = pending.pop()
        if isinstance(item, bool):
            continue
        if isinstance(item, int) and abs(item) > MAX_SAFE_INTEGER:
            return where
        if isinstance(item, float) and not math.isfinite(item):
            return where
        if isinstance(item, dict):
            children = [(f"{where}.{key}" if where else str(key), v) for key, v in item.items()]
        elif isinstance(item, list):
            children = [(f"{where}[{index}]", v) for index, v in enumerate(item)]
        else:
            continue
        pending.extend(reversed(children))
    return None
