"""What an apply tells the user on stderr while it runs, so a log never looks hung.

On a terminal a live bar (rich) shows the actions done and what the run waits for. Off a
terminal (CI logs) each finished action is one line, every wait for the hourly budget
is announced with the counts and the time left, and a heartbeat line follows at least
once a minute while nothing else is printed. Time comes from an injected clock and
sleep, so tests drive the heartbeat without waiting.
"""

from __future__ import annotations

import contextlib
import math
import sys
from collections.abc import Awaitable, Callable
from typing import IO, TYPE_CHECKING

from reconciler.applier import ActionResult
from reconciler.live import LiveSource
from reconciler.pacing import HOUR, BudgetWait, Clock
from reconciler.render.values import duration
from reconciler.untrusted import escaped

if TYPE_CHECKING:
    from rich.progress import Progress

HEARTBEAT = 60.0


class ApplyProgress:
    """Progress of one apply: `live` draws a bar, otherwise lines with a heartbeat."""

    def __init__(
        self,
        total: int,
        *,
        clock: Clock,
        stream: IO[str] | None = None,
        live: bool = False,
        heartbeat: float | None = HEARTBEAT,
    ) -> None:
        self.total = total
        self.done = 0
        self._clock = clock
        self._stream = stream or sys.stderr
        self._heartbeat = heartbeat
        self._started = clock()
        self._last_line = self._started
        # What the run waits for, and until when (on the clock): shown by the heartbeat.
        self._waiting: tuple[str, float] | None = None
        self._statuses: dict[str, str | None] = {}
        self._bar: Progress | None = None
        self._task = None
        if live:
            # rich only for the bar on a terminal.
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

            console = Console(file=self._stream, highlight=False, markup=False, emoji=False)
            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                console=console,
                transient=False,
            )
            self._task = self._bar.add_task("applying", total=total)

    def __enter__(self) -> ApplyProgress:
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    # ------------------------------------------------------------------ events

    def action_done(self, result: ActionResult) -> None:
        """One action finished (applied, failed, or not attempted)."""
        self.done += 1
        line = f"[{self.done}/{self.total}] {result.outcome}: {result.action} "
        line += escaped(result.source)
        if result.source_id:
            line += f" ({escaped(result.source_id)})"
        self._say(line)
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, completed=self.done, description="applying")

    def budget_wait(self, wait: BudgetWait) -> None:
        """A write waits for its hourly budget: say for how long, and how long is left."""
        name = f"hourly {wait.kind} budget"
        remaining = self.total - self.done
        # After this wait, the rest goes at `limit` writes an hour at most.
        left = wait.seconds + HOUR * max(0, math.ceil(remaining / wait.limit) - 1)
        self._waiting = (name, self._clock() + wait.seconds)
        self._say(
            f"waiting {duration(wait.seconds)} for the {name} ({wait.limit}/h), "
            f"{self.done} of {self.total} done, about {duration(left)} left"
        )
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, description=f"waiting for the {name}")

    def deploy_status(self, source: LiveSource) -> None:
        """A touched source's deployment status, printed when it changes (`--wait`)."""
        # Its first status is printed whatever it is (an empty one too).
        if source.id in self._statuses and self._statuses[source.id] == source.deployment_status:
            return
        self._statuses[source.id] = source.deployment_status
        listed = source.deployment_status
        status = "(no status listed)" if listed is None else escaped(listed)
        self._say(f"  {escaped(source.name or source.id)}: {status}")

    def note(self, text: str) -> None:
        """Anything else the user should see now (a stop request...)."""
        self._say(text)

    # ------------------------------------------------------------------ heartbeat

    def beat(self) -> None:
        """Print a heartbeat line if nothing was printed for a heartbeat interval."""
        now = self._clock()
        if self._heartbeat is None or now - self._last_line < self._heartbeat:
            return
        line = f"still working: {self.done} of {self.total} done"
        if self._waiting is not None and self._waiting[1] > now:
            name, until = self._waiting
            line += f", {duration(until - now)} more for the {name}"
        line += f" ({duration(now - self._started)} elapsed)"
        self._say(line)

    async def heartbeat(self, sleep: Callable[[float], Awaitable[None]]) -> None:
        """Beat until cancelled: a line at least every heartbeat interval (None: never)."""
        while self._heartbeat is not None:
            due = self._last_line + self._heartbeat - self._clock()
            await sleep(max(due, 1.0))
            self.beat()

    def _say(self, line: str) -> None:
        self._last_line = self._clock()
        # Progress is for the eyes only: once stderr's reader is gone (Ctrl-C on
        # `apply ... 2>&1 | tee log` ends tee too), the run still stops cleanly and reports
        # on stdout, with the exit code of what it did.
        with contextlib.suppress(OSError, ValueError):
            if self._bar is not None:
                # Unwrapped (the terminal wraps it on screen): a line rich cut in two
                # could cut a secret the name holds, and neither piece would be masked.
                self._bar.console.print(line, soft_wrap=True)
            else:
                print(line, file=self._stream, flush=True)
