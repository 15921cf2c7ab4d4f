"""Every error the package raises for the user, under one root, with the exit code it means.

    ReconcilerError                      exit 1 unless a subclass says otherwise
    ├── ConfigurationError               the command cannot start (a missing key, a bad URL)
    ├── LoadError (loader)               invalid desired-state files; `.errors` located
    ├── PlanError                        desired and live states cannot be reconciled
    ├── PlanFileError                    a saved plan unreadable, edited or not ours
    ├── ExportError                      live sources the file format cannot express
    ├── ApplyRefused                     nothing written: the rails or the user refused
    ├── StalePlan                        exit 4: live sources changed since the plan
    └── ClientError (client)             the API could not be used
        ├── ApiError                     the API answered with an error
        │   └── AuthError                the key was rejected or lacks the permission
        ├── TransportError               no response, after every retry
        ├── DeadlineExceeded             retrying would pass the retry deadline
        └── LimitExceeded                an answer passed one of the client's bounds

The classes that carry data of their module's (located errors, HTTP status)
live there; the rest live here. The CLI maps the whole tree to exit codes in one place.
Every message is one sentence that may be printed: it names references, never values.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from reconciler.loader import LocatedError
    from reconciler.rails import Refusal

# product.md's exit codes.
EXIT_OK, EXIT_ERROR, EXIT_CHANGES, EXIT_PARTIAL, EXIT_STALE = 0, 1, 2, 3, 4


class ReconcilerError(Exception):
    """Anything the package raises for the user; `exit_code` is the exit it means.

    `located` holds the problems that have a place in the desired-state files.
    """

    exit_code: ClassVar[int] = EXIT_ERROR
    located: Sequence[LocatedError] = ()

    @property
    def problems(self) -> Sequence[str]:
        """The problems to print, one `error:` line each: the message, unless it holds several."""
        return (str(self),)


class ConfigurationError(ReconcilerError):
    """The command cannot start: a missing key, a bad URL (exit 1)."""


class PlanError(ReconcilerError):
    """The desired and live states cannot be reconciled as they are.

    `spec_indices` are the positions in `DesiredState.sources` of the sources concerned,
    so the CLI can point at their place in the file.
    """

    def __init__(self, message: str, *, spec_indices: Iterable[int] = ()) -> None:
        super().__init__(message)
        self.spec_indices = tuple(spec_indices)


class PlanFileError(ReconcilerError):
    """A saved plan that cannot be read, or that `plan --out` did not make with our key (exit 1)."""


class ExportError(ReconcilerError):
    """Live sources the file format cannot express, or a file export must not write (exit 1).

    Export reports every source's problem at once, each a sentence of its own.
    """

    def __init__(self, *problems: str) -> None:
        super().__init__("\n".join(problems))
        self._problems = problems

    @property
    def problems(self) -> Sequence[str]:
        return self._problems


class ApplyRefused(ReconcilerError):
    """Nothing was written: the plan may not be applied as it is (exit 1).

    `refusals` are the rails that refused it (empty for other reasons); `located` holds
    them as errors at the sources' places in the files, when the plan was made from files.
    """

    def __init__(
        self,
        message: str,
        refusals: Sequence[Refusal] = (),
        located: Sequence[LocatedError] = (),
    ) -> None:
        super().__init__(message)
        self.refusals = tuple(refusals)
        self.located = tuple(located)


class StalePlan(ReconcilerError):
    """Nothing was written: live sources changed since the plan was made (exit 4)."""

    exit_code = EXIT_STALE
