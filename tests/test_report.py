"""The apply report's verdicts, from plain results (the applier and the renderers are tested
apart)."""

from __future__ import annotations

import dataclasses

import pytest

from reconciler.report import ActionResult, ApplyReport, Outcome

NOT_DONE: list[Outcome] = ["failed", "skipped", "stopped", "stale"]


def result(outcome: Outcome, source: str = "Blog", source_id: str | None = "src-1") -> ActionResult:
    return ActionResult(
        action="patch", source=source, key=source, outcome=outcome, source_id=source_id
    )


def test_an_empty_report_is_ok_wrote_nothing_and_left_nothing_deploying() -> None:
    report = ApplyReport()
    assert report.ok
    assert (report.results, report.writes, report.stopped) == ([], 0, None)
    assert (report.failed, report.touched_ids, report.not_deployed) == ([], [], {})


def test_a_report_is_ok_when_every_action_applied_or_already_was_in_effect() -> None:
    report = ApplyReport([result("applied"), result("in effect", "Docs", "src-2")], writes=1)
    assert report.ok
    assert report.failed == []


@pytest.mark.parametrize("outcome", NOT_DONE)
def test_one_action_not_done_makes_the_report_not_ok_and_is_named_failed(
    outcome: Outcome,
) -> None:
    not_done = result(outcome, "Docs", "src-2")
    report = ApplyReport([result("applied"), not_done, result("in effect", "Web", "src-3")])
    assert not report.ok
    assert report.failed == [not_done]


def test_a_source_not_seen_deployed_makes_the_report_not_ok_though_all_applied() -> None:
    report = ApplyReport([result("applied")], writes=1, still_deploying=["src-1"])
    assert not report.ok
    assert report.failed == []


def test_a_source_not_seen_deployed_is_still_deploying_unless_the_wait_gave_up_on_it() -> None:
    report = ApplyReport(
        still_deploying=["src-3", "src-1", "src-2"], given_up={"src-1": "gone", "src-2": "unknown"}
    )
    assert report.why_not_deployed("src-3") == "deploying"
    assert report.why_not_deployed("src-1") == "gone"
    # In the report's order, which is the plan's.
    assert list(report.not_deployed.items()) == [
        ("src-3", "deploying"),
        ("src-1", "gone"),
        ("src-2", "unknown"),
    ]


def test_only_the_sources_this_run_wrote_are_waited_for() -> None:
    report = ApplyReport(
        [
            result("applied", "Blog", "src-1"),
            result("in effect", "Docs", "src-2"),  # written by another run, or earlier
            result("failed", "Web", "src-3"),
            result("applied", "Shop", "src-4"),
            result("stopped", "Cdn", None),
        ]
    )
    assert report.touched_ids == ["src-1", "src-4"]


def test_an_applied_action_without_a_source_id_is_not_waited_for() -> None:
    assert ApplyReport([result("applied", source_id=None)]).touched_ids == []
    assert ApplyReport([result("applied", source_id="")]).touched_ids == []


def test_a_report_and_its_results_cannot_be_altered_once_made() -> None:
    applied = result("applied")
    report = ApplyReport([applied])
    with pytest.raises(dataclasses.FrozenInstanceError):
        applied.outcome = "failed"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        report.writes = 3  # type: ignore[misc]
    # Each report gets lists of its own: a default shared between reports would carry one
    # run's sources into another's.
    assert ApplyReport().still_deploying is not ApplyReport().still_deploying
