"""Regular expressions compiled at their first use rather than at import.

Compiling a pattern costs 0.05 to 0.5 ms, at every start of every command: most of the
package's patterns serve one check that a given run may never make (a parameter form, a
custom domain, a marker), so a run compiles only those it uses.
"""

from __future__ import annotations

import re
import sys
from typing import Any


class _Deferred:
    """Stands for a module's pattern until first used, then puts the compiled one in its place.

    The module's functions look the name up at each call, so only the first goes through
    here. A name imported elsewhere with `from module import NAME` would keep this stand-in
    (still correct, but compiling at each use through re's cache): import the module.
    """

    __slots__ = ("_flags", "_module", "_name", "_source")

    def __init__(self, module: str, name: str, source: str, flags: int) -> None:
        self._module = module
        self._name = name
        self._source = source
        self._flags = flags

    def __getattr__(self, attribute: str) -> Any:
        compiled = re.compile(self._source, self._flags)
        sys.modules[self._module].__dict__[self._name] = compiled
        return getattr(compiled, attribute)

    def __repr__(self) -> str:
        return f"deferred({self._source!r})"


def pattern(module: str, name: str, source: str, flags: int = 0) -> re.Pattern[str]:
    """`re.compile(source, flags)` at the first use of `module.name`, which it then becomes."""
    return _Deferred(module, name, source, flags)  # type: ignore[return-value]
