"""Apply progress (reconciler/progress.py): lines, budget waits, heartbeat; a fake clock."""

from __future__ import annotations

import asyncio
import io

import pytest
from conftest import FakeClock

from reconciler import redact
from reconciler.applier import ActionResult
from reconciler.live import LiveSource
from reconciler.pacing import BudgetWait
from reconciler.progress import ApplyProgress
from reconciler.redact import RedactingStream


def result(name: str, outcome: str = "applied") -> ActionResult:
    return ActionResult("patch", name, name, outcome, "64f1c2a9e4b0a1d2c3e4f500")  # type: ignore[arg-type]


def test_each_finished_action_is_one_counted_line(fake_clock: FakeClock) -> None:
    out = io.StringIO()
    progress = ApplyProgress(2, clock=fake_clock, stream=out)

    progress.action_done(result("Blog"))
    progress.action_done(result("Shop\n::error::forged", "failed"))

    lines = out.getvalue().splitlines()
    assert lines == [
        "[1/2] applied: patch Blog (64f1c2a9e4b0a1d2c3e4f500)",
        "[2/2] failed: patch Shop\\n::error::forged (64f1c2a9e4b0a1d2c3e4f500)",
    ]


def test_a_budget_wait_says_how_long_how_far_and_how_much_is_left(fake_clock: FakeClock) -> None:
    out = io.StringIO()
    progress = ApplyProgress(120, clock=fake_clock, stream=out)
    for n in range(38):
        progress.action_done(result(f"s{n}"))

    progress.budget_wait(BudgetWait("update", 14 * 60.0, 60))

    # 82 left: this wait, then one more hourly batch for the last 22.
    assert out.getvalue().splitlines()[-1] == (
        "waiting 14 min for the hourly update budget (60/h), 38 of 120 done, about 1 h 14 min left"
    )


def test_the_heartbeat_prints_at_least_once_a_minute_while_quiet(fake_clock: FakeClock) -> None:
    out = io.StringIO()
    progress = ApplyProgress(3, clock=fake_clock, stream=out)

    async def scenario() -> None:
        beating = asyncio.ensure_future(progress.heartbeat(fake_clock.sleep))
        progress.budget_wait(BudgetWait("create", 3600.0, 60))
        await fake_clock.sleep(30 * 60.0)
        beating.cancel()
        await asyncio.gather(beating, return_exceptions=True)

    asyncio.run(scenario())

    lines = out.getvalue().splitlines()
    beats = [line for line in lines if line.startswith("still working")]
    assert len(beats) >= 29
    assert beats[0] == (
        "still working: 0 of 3 done, 59 min more for the hourly create budget (1 min elapsed)"
    )
    assert "31 min more for the hourly create budget (29 min elapsed)" in beats[-1]
    assert fake_clock.sleeps and max(fake_clock.sleeps[1:]) <= 60.0
    assert len(fake_clock.sleeps) < 40  # it sleeps until a line is due, not in small steps


def test_no_heartbeat_while_lines_keep_coming(fake_clock: FakeClock) -> None:
    out = io.StringIO()
    progress = ApplyProgress(100, clock=fake_clock, stream=out)
    for n in range(100):
        fake_clock.advance(30.0)
        progress.action_done(result(f"s{n}"))
        progress.beat()

    assert not any(line.startswith("still working") for line in out.getvalue().splitlines())


def test_deploy_status_is_printed_when_it_changes(fake_clock: FakeClock) -> None:
    out = io.StringIO()
    progress = ApplyProgress(1, clock=fake_clock, stream=out)
    source = LiveSource(id="64f1c2a9e4b0a1d2c3e4f500", name="Blog", deployment_status="deploying")

    progress.deploy_status(source)
    progress.deploy_status(source)
    progress.deploy_status(source.model_copy(update={"deployment_status": "deployed"}))

    assert out.getvalue().splitlines() == ["  Blog: deploying", "  Blog: deployed"]


def test_a_status_the_listing_omits_reads_as_not_listed_never_none(
    fake_clock: FakeClock,
) -> None:
    # Real listings omit keys that have no value: `--wait` printed "Blog: None".
    out = io.StringIO()
    progress = ApplyProgress(1, clock=fake_clock, stream=out)
    source = LiveSource.from_resource(
        {"id": "64f1c2a9e4b0a1d2c3e4f500", "attributes": {"name": "Blog"}}
    )

    progress.deploy_status(source)
    progress.deploy_status(source.model_copy(update={"deployment_status": "deployed"}))

    assert out.getvalue().splitlines() == ["  Blog: (no status listed)", "  Blog: deployed"]


def test_on_a_terminal_a_live_bar_keeps_the_lines(fake_clock: FakeClock) -> None:
    out = io.StringIO()
    with ApplyProgress(2, clock=fake_clock, stream=out, live=True) as progress:
        progress.action_done(result("Blog"))
        progress.budget_wait(BudgetWait("update", 120.0, 60))
        progress.action_done(result("Shop"))

    text = out.getvalue()
    assert "applied: patch Blog" in text and "applied: patch Shop" in text
    assert "2/2" in text


def test_on_a_terminal_the_bar_counts_the_actions_and_names_the_wait(fake_clock: FakeClock) -> None:
    # The bar's last frame stays on the terminal: it must say where the run stopped.
    out = io.StringIO()
    with ApplyProgress(3, clock=fake_clock, stream=out, live=True) as progress:
        progress.action_done(result("Blog"))
        progress.budget_wait(BudgetWait("update", 120.0, 60))
    waiting = out.getvalue().splitlines()[-1]
    assert waiting.startswith("waiting for the hourly update budget ━") and waiting.endswith(" 1/3")

    out = io.StringIO()
    with ApplyProgress(3, clock=fake_clock, stream=out, live=True) as progress:
        progress.budget_wait(BudgetWait("create", 120.0, 60))
        progress.action_done(result("Blog"))
        progress.action_done(result("Shop"))
    applying = out.getvalue().splitlines()[-1]
    assert applying.startswith("applying ━") and applying.endswith(" 2/3")


def test_a_heartbeat_before_any_line_counts_from_the_start(fake_clock: FakeClock) -> None:
    out = io.StringIO()
    progress = ApplyProgress(3, clock=fake_clock, stream=out)
    fake_clock.advance(59.0)
    progress.beat()
    fake_clock.advance(1.0)
    progress.beat()  # a minute without a line: due now
    assert out.getvalue() == "still working: 0 of 3 done (1 min elapsed)\n"


def test_a_finished_budget_wait_is_no_longer_mentioned(fake_clock: FakeClock) -> None:
    out = io.StringIO()
    progress = ApplyProgress(3, clock=fake_clock, stream=out)
    progress.budget_wait(BudgetWait("create", 120.0, 60))
    fake_clock.advance(180.0)
    progress.beat()
    assert out.getvalue().splitlines()[-1] == "still working: 0 of 3 done (3 min elapsed)"


def test_without_a_heartbeat_nothing_beats(fake_clock: FakeClock) -> None:
    out = io.StringIO()
    progress = ApplyProgress(3, clock=fake_clock, stream=out, heartbeat=None)
    fake_clock.advance(3600.0)
    progress.beat()
    asyncio.run(progress.heartbeat(fake_clock.sleep))  # returns at once
    assert out.getvalue() == ""


def test_notes_and_lines_go_to_stderr_by_default(
    fake_clock: FakeClock, capsys: pytest.CaptureFixture[str]
) -> None:
    progress = ApplyProgress(1, clock=fake_clock)
    progress.note("stopping after the writes in flight")
    progress.action_done(result("Blog"))
    assert capsys.readouterr().err.splitlines() == [
        "stopping after the writes in flight",
        "[1/1] applied: patch Blog (64f1c2a9e4b0a1d2c3e4f500)",
    ]


def test_the_last_budget_wait_leaves_only_itself(fake_clock: FakeClock) -> None:
    out = io.StringIO()
    progress = ApplyProgress(3, clock=fake_clock, stream=out)
    progress.budget_wait(BudgetWait("update", 120.0, 60))
    assert out.getvalue().endswith("0 of 3 done, about 2 min left\n")


def test_the_bar_prints_outside_text_as_it_is(fake_clock: FakeClock) -> None:
    # No rich markup, emoji codes or highlighting from a source's name.
    out = io.StringIO()
    with ApplyProgress(1, clock=fake_clock, stream=out, live=True) as progress:
        progress.action_done(result("[bold]Blog[/bold] :smile:"))
    assert "applied: patch [bold]Blog[/bold] :smile: (" in out.getvalue()


class _Flushed(io.StringIO):
    flushes = 0

    def flush(self) -> None:
        self.flushes += 1


def test_each_line_is_flushed_so_a_ci_log_shows_it_at_once(fake_clock: FakeClock) -> None:
    out = _Flushed()
    progress = ApplyProgress(2, clock=fake_clock, stream=out)
    progress.action_done(result("Blog"))
    progress.note("a note")
    assert out.flushes == 2


def test_on_a_narrow_terminal_a_masked_name_is_not_wrapped_into_pieces_the_mask_misses(
    fake_clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `COLUMNS=22`: rich wrapped the line inside a secret the name holds, and each piece
    # of it, on a line of its own, escaped the redaction point.
    secret = "hunter2-secret-value-XYZ"
    redact.register(secret)
    monkeypatch.setenv("COLUMNS", "22")
    out = io.StringIO()
    with ApplyProgress(1, clock=fake_clock, stream=RedactingStream(out), live=True) as progress:
        progress.action_done(result(f"Site {secret} end"))

    text = out.getvalue()
    assert "applied: patch Site *** end (" in text
    assert "hunter2" not in text and "XYZ" not in text
