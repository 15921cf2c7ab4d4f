"""The CLI in GitHub Actions: annotations, step summary, masks; the action's helpers."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from console import CANARY_ENV, CANARY_FILES, invoke, run_cli, sources_yaml, write_sources
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette

from reconciler import github, redact
from reconciler.emulator import RateLimits, SourceStore
from reconciler.loader import LocatedError
from reconciler.plan import Action, Change, Plan, Summary, compute_digest
from reconciler.reconcile import read_plan_document
from reconciler.render.markdown import DRIFT_MARKER, MARKER, REPORT_MARKER, render_report
from reconciler.report import ActionResult, ApplyReport

FIXTURES = Path(__file__).parent / "fixtures"
IN_ACTIONS = {"GITHUB_ACTIONS": "true"}
NO_LIMITS = RateLimits(per_second=None, creates_per_hour=None, updates_per_hour=None)


# --------------------------------------------------------------------------- encoding


def test_command_data_encodes_what_the_runner_decodes() -> None:
    assert github.command_data("50% off\r\nnext") == "50%25 off%0D%0Anext"


def test_command_property_also_encodes_colon_and_comma() -> None:
    assert github.command_property("a:b,c%\n") == "a%3Ab%2Cc%25%0A"


def test_error_annotation_points_at_the_place_and_cannot_start_a_second_command() -> None:
    error = LocatedError("dir,x/s:1.yaml", 14, 7, "name", "bad\n::add-mask::x 100%")
    line = github.error_annotation(error)
    assert line.startswith(
        "::error file=dir%2Cx/s%3A1.yaml,line=14,col=7,title=imgix-reconciler::name: bad"
    )
    assert "\n" not in line and "%0A" not in line.split("::", 2)[2].replace("\\n", "")
    assert line.endswith("100%25")


def test_announce_secret_masks_the_value_and_each_of_its_lines(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    out = io.StringIO()
    github.announce_secret("line-one\n  \nline%two", stream=out)
    # A blank line is no mask: the runner would hide every run of spaces in the log.
    assert out.getvalue().splitlines() == [
        "::add-mask::line-one%0A  %0Aline%25two",
        "::add-mask::line-one",
        "::add-mask::line%25two",
    ]


def test_nothing_is_announced_outside_github_actions(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    out = io.StringIO()
    github.announce_secret("a-secret-value", stream=out)
    assert out.getvalue() == ""


# --------------------------------------------------------------------------- the CLI, end to end


def test_validate_in_actions_annotates_each_error_on_its_line(tmp_path: Path) -> None:
    env = {**IN_ACTIONS, "GITHUB_WORKSPACE": str(FIXTURES.parent.parent)}
    result = run_cli("validate", "--no-resolve", FIXTURES / "invalid_cache_ttl.yaml", env=env)
    assert result.returncode == 1
    annotations = [line for line in result.stderr.splitlines() if line.startswith("::error ")]
    assert len(annotations) == 1
    assert (
        "line=10,col=24,title=imgix-reconciler::deployment.cache_ttl_value: must be"
        in (annotations[0])
    )
    # Placed by its path from the repository root, as GitHub needs.
    assert annotations[0].startswith("::error file=tests/fixtures/invalid_cache_ttl.yaml,")
    # Outside GitHub Actions the same run prints no workflow command.
    plain = run_cli("validate", "--no-resolve", FIXTURES / "invalid_cache_ttl.yaml")
    assert "::" not in plain.stderr


def test_plan_in_actions_masks_secrets_before_any_output_and_writes_the_summary(
    emulator_url: str, tmp_path: Path
) -> None:
    sources = write_sources(tmp_path)
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n", encoding="utf-8")
    env = {**CANARY_ENV, **IN_ACTIONS, "GITHUB_STEP_SUMMARY": str(summary)}
    result = run_cli("plan", sources, "--api-url", emulator_url, env=env)
    assert result.returncode == 0, result.stderr
    masks = [line for line in result.stderr.splitlines() if line.startswith("::add-mask::")]
    assert {m.removeprefix("::add-mask::") for m in masks} >= {
        *CANARY_ENV.values(),
        *CANARY_FILES.values(),
    }
    # The masks come first; nothing else printed holds a secret.
    lines = result.stderr.splitlines()
    assert lines[: len(masks)] == masks
    rest = "\n".join([result.stdout, *lines[len(masks) :], summary.read_text("utf-8")])
    assert not any(value in rest for value in [*CANARY_ENV.values(), *CANARY_FILES.values()])
    written = summary.read_text("utf-8")
    assert written.startswith("earlier step\n" + MARKER + "\n")
    assert "| 6 | 0 | 0 | 0 |" in written


def test_an_error_without_a_place_is_one_annotation_that_keeps_the_key_masked(
    emulator_url: str, tmp_path: Path
) -> None:
    sources = write_sources(tmp_path, sources_yaml("Products"))
    env = {**IN_ACTIONS, "IMGIX_API_KEY": "ak_not-a-key"}
    result = run_cli("plan", sources, "--api-url", emulator_url, env=env)
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert lines[0] == "::add-mask::ak_not-a-key"
    errors = [line for line in lines if line.startswith("::error ")]
    assert len(errors) == 1 and errors[0].startswith("::error title=imgix-reconciler::")
    assert "401" in errors[0] and "ak_not-a-key" not in "\n".join(lines[1:])


# --------------------------------------------------------------------------- many accounts


def _plan(creates: int, prefix: str) -> Plan:
    actions = [
        Action(
            action="create",
            source=f"{prefix} source {index}",
            id=None,
            changes=[
                Change(path="name", after=f"{prefix} source {index}"),
                Change(path="deployment.type", after="s3"),
                Change(path="deployment.imgix_subdomains", after=[f"{prefix}-{index}"]),
                Change(path="deployment.s3_bucket", after=f"{prefix}-bucket-{index}"),
                Change(path="deployment.s3_secret_key", after="(write-only, will be sent)"),
            ],
            writes=[{"name": f"{prefix} source {index}"}],
        )
        for index in range(creates)
    ]
    return Plan(
        digest=compute_digest(actions),
        summary=Summary(create=creates, patch=0, unchanged=0, unmanaged=0),
        actions=actions,
    )


def test_five_thousand_sources_in_ten_accounts_make_one_comment_under_the_limit() -> None:
    results = [
        (
            github.AccountResult(account=f"account-{n}", command="plan", exit_code=2),
            _plan(500, f"a{n}"),
        )
        for n in range(10)
    ]
    comment = github.combined_comment(results, run_url="https://github.com/o/r/actions/runs/1")
    assert len(comment) < github.COMMENT_LIMIT
    assert comment.startswith(MARKER + "\n### imgix-reconciler plan: 10 accounts")
    for n, (_, plan) in enumerate(results):
        assert f"#### Account `account-{n}`" in comment
        assert f"| `account-{n}` | changes | 500 | 0 | 0 | 0 |" in comment
        assert github.reviewed_digest([{"user": {"login": github.BOT_LOGIN}, "body": comment}],
                                      f"account-{n}") == plan.digest  # fmt: skip
    assert comment.count("not shown (see the JSON plan)") == 10


def test_a_hundred_accounts_still_make_one_comment_under_the_limit() -> None:
    results = [
        (github.AccountResult(account=f"acct-{n}", command="plan", exit_code=2), _plan(50, f"a{n}"))
        for n in range(100)
    ]
    comment = github.combined_comment(results)
    assert len(comment) < github.COMMENT_LIMIT
    # Every account keeps its row and its digest, whatever its section had to leave out.
    assert all(f"| `acct-{n}` | changes | 50 |" in comment for n in range(100))
    assert comment.count("<!-- imgix-reconciler:digest account=") == 100
    # The budget left after the table is shared, so every account still has its section.
    assert comment.count("\n#### Account `") == 100
    assert "not shown (see the artifacts)" not in comment


def test_one_account_has_the_whole_budget_to_itself() -> None:
    result = github.AccountResult(account="only", command="plan", exit_code=2)
    comment = github.combined_comment([(result, _plan(500, "o"))])
    assert github.COMMENT_BUDGET * 0.9 < len(comment) < github.COMMENT_LIMIT


def test_the_comment_says_how_a_maintainer_plans_a_fork() -> None:
    fork = github.AccountResult(account="eu", command="plan", exit_code=0, planned=False)
    comment = github.combined_comment([(fork, None)])
    assert "\n### imgix-reconciler plan: 1 account\n" in comment
    assert "| `eu` | validated only (no API key) |" in comment
    assert "the Actions tab: run this workflow with `pull-request` set to this" in comment
    assert "imgix-reconciler:digest" not in comment


def test_an_account_without_changes_records_its_digest_too() -> None:
    quiet = _plan(0, "q")
    result = github.AccountResult(account="quiet", command="plan", exit_code=0)
    comment = github.combined_comment([(result, quiet)])
    assert "| `quiet` | no changes | 0 | 0 | 0 | 0 |" in comment
    assert f"<!-- imgix-reconciler:digest account=quiet {quiet.digest} -->" in comment


def test_account_names_cannot_inject_markdown() -> None:
    bad = github.AccountResult(account="x` -->", command="plan", exit_code=0)
    with pytest.raises(ValueError, match=r"^account names are letters, digits, '\.', '_' or '-': "):
        github.combined_comment([(bad, None)])


def test_only_the_bots_marked_comment_gives_the_reviewed_digest() -> None:
    real = "sha256:" + "a" * 64
    forged = "sha256:" + "b" * 64
    comment = f"{MARKER}\n<!-- imgix-reconciler:digest account=eu {real} -->\n"
    forged_comment = f"{MARKER}\n<!-- imgix-reconciler:digest account=eu {forged} -->\n"
    comments = [
        # The login the workflows' GITHUB_TOKEN posts as.
        {"user": {"login": "github-actions[bot]"}, "body": comment},
        {"user": {"login": "mallory"}, "body": forged_comment},
        {"user": {"login": github.BOT_LOGIN}, "body": "quoted:\n" + forged_comment},
    ]
    assert github.reviewed_digest(comments, "eu") == real
    assert github.reviewed_digest(comments, "us") is None


def test_comments_listed_before_the_plan_comment_never_hide_its_digest() -> None:
    # A pull request's conversation lists comments oldest first: people's remarks and the
    # bot's other comments (an apply report) usually come before the updated plan comment.
    digest = "sha256:" + "a" * 64
    plan_comment = f"{MARKER}\n<!-- imgix-reconciler:digest account=eu {digest} -->\n"
    comments = [
        {"user": {"login": "octocat"}, "body": "Looks good to me"},
        {"user": None, "body": "a comment of a deleted account"},
        {"user": {"login": github.BOT_LOGIN}, "body": f"{REPORT_MARKER}\n### applied\n"},
        {"user": {"login": github.BOT_LOGIN}, "body": plan_comment},
    ]
    assert github.reviewed_digest(comments, "eu") == digest


def test_the_reviewed_digest_is_the_newest_of_the_caller_workflows_comments() -> None:
    old, new, other = ("sha256:" + c * 64 for c in "abc")

    def comment(first_line: str, account: str, digest: str, updated: str) -> dict[str, object]:
        body = f"{first_line}\n<!-- imgix-reconciler:digest account={account} {digest} -->\n"
        return {"user": {"login": github.BOT_LOGIN}, "body": body, "updated_at": updated}

    prod = github.keyed_marker(MARKER, "imgix-prod")
    staging = github.keyed_marker(MARKER, "imgix-staging")
    comments = [
        comment(MARKER, "eu", old, "2026-11-30T01:00:00Z"),  # an older version's, unkeyed
        comment(prod, "eu", new, "2026-11-30T03:00:00Z"),
        comment(staging, "us", other, "2026-11-30T02:00:00Z"),  # the last, not eu's
        # A first line that is no checked marker is no plan comment, however new.
        comment(prod + "<b>x</b>", "eu", other, "2026-11-30T09:00:00Z"),
        comment(MARKER.replace("plan", "plan key=a b"), "eu", other, "2026-11-30T09:00:00Z"),
    ]
    assert github.reviewed_digest(comments, "eu") == new
    assert github.reviewed_digest(comments, "us") == other
    assert github.reviewed_digest(comments[:1], "eu") == old


@pytest.mark.parametrize(
    ("workflow", "key"),
    [
        ("acme/images/.github/workflows/imgix-prod.yml@refs/pull/7/merge", "imgix-prod"),
        ("acme/images/.github/workflows/imgix-prod.yml@refs/heads/main", "imgix-prod"),
        (".github/workflows/imgix-prod.yml", "imgix-prod"),  # a workflow_run's path
        ("acme/images/.github/workflows/a.b_c.yaml@refs/heads/x@y", "a.b_c"),
        ("acme/images/.github/workflows/imgix-prod.yml@0123abc", "imgix-prod"),  # at a commit
    ],
)
def test_a_caller_workflow_is_keyed_by_its_file_name(workflow: str, key: str) -> None:
    assert github.comment_key(workflow) == key


def test_a_caller_whose_file_name_is_no_plain_name_is_keyed_by_a_hash() -> None:
    hostile = "o/r/.github/workflows/x --><b>y</b>.yml@refs/heads/main"
    key = github.comment_key(hostile)
    assert re.fullmatch(r"sha256-[0-9a-f]{16}", key)
    # A name that is no valid UTF-8 (bytes of the environment): still a key, never a crash.
    assert re.fullmatch(r"sha256-[0-9a-f]{16}", github.comment_key("x\udcff.yml@refs/heads/m"))
    assert key == github.comment_key(".github/workflows/x --><b>y</b>.yml")
    assert github.keyed_marker(MARKER, key) == f"<!-- imgix-reconciler:plan key={key} -->"
    with pytest.raises(ValueError, match=r"^a comment key is letters, digits, '\.', '_' or '-': "):
        github.keyed_marker(MARKER, "x --><b>")


def test_what_is_left_of_a_reviewed_plan_keeps_only_reviewed_actions() -> None:
    reviewed = _plan(3, "r")
    left = Plan(
        digest=compute_digest(reviewed.actions[1:]),
        summary=Summary(create=2, patch=0, unchanged=0, unmanaged=0),
        actions=reviewed.actions[1:],
    )
    assert github.remaining_digest(reviewed, left) == left.digest
    other = _plan(1, "new")
    grown = left.model_copy(update={"actions": [*left.actions, *other.actions]})
    assert github.remaining_digest(reviewed, grown) is None


def test_what_is_left_after_a_hostname_was_released_is_still_the_reviewed_create(
    emulator_store: SourceStore, emulator_url: str, tmp_path: Path
) -> None:
    # The reviewed create waited for the patch that releases its hostname; an apply cut
    # short after that patch leaves the same create, waiting for nothing now. Was: the
    # follow-up refused it as an action the review never saw (exit 4).
    webfolder = (
        "    deployment: {{type: webfolder, imgix_subdomains: [{}], webfolder_base_url: {}}}\n"
    )
    before = tmp_path / "before.yaml"
    before.write_text(
        "version: 1\nsources:\n  - name: Old\n"
        + webfolder.format("old-one, shared-host", "https://a.example/")
    )
    assert invoke("apply", before, "--auto-approve", "--api-url", emulator_url).exit_code == 0
    (old_id,) = emulator_store.sources
    after = tmp_path / "after.yaml"
    after.write_text(
        f"version: 1\nsources:\n  - name: Old\n    id: {old_id}\n"
        + webfolder.format("old-one", "https://a.example/")
        + "  - name: New\n"
        + webfolder.format("shared-host", "https://b.example/")
    )
    reviewed, fresh = tmp_path / "reviewed.json", tmp_path / "fresh.json"
    assert invoke("plan", after, "--out", reviewed, "--api-url", emulator_url).exit_code == 0
    cut_short = invoke(
        "apply", after, "--target", "Old", "--auto-approve", "--api-url", emulator_url
    )
    assert cut_short.exit_code == 0, cut_short.stderr
    assert invoke("plan", after, "--out", fresh, "--api-url", emulator_url).exit_code == 0

    reviewed_plan, left = read_plan_document(reviewed), read_plan_document(fresh)
    assert reviewed_plan.actions[1].depends_on == [reviewed_plan.actions[0].key]
    assert [(a.action, a.source, a.depends_on) for a in left.actions] == [("create", "New", [])]
    assert github.remaining_digest(reviewed_plan, left) == left.digest
    # A wait the review never saw is still refused.
    waiting = left.model_copy(
        update={"actions": [left.actions[0].model_copy(update={"depends_on": ["other"]})]}
    )
    assert github.remaining_digest(reviewed_plan, waiting) is None


def test_what_is_left_of_a_plan_for_another_api_is_never_taken_as_reviewed() -> None:
    reviewed = _plan(2, "r")
    elsewhere = reviewed.model_copy(update={"api_url": "https://api.example.net"})
    assert reviewed.api_url != elsewhere.api_url
    assert github.remaining_digest(reviewed, elsewhere) is None
    assert github.remaining_digest(reviewed, reviewed) == reviewed.digest


def test_reviewed_digest_command_reads_comment_json_lines(tmp_path: Path) -> None:
    digest = "sha256:" + "c" * 64
    comments = tmp_path / "comments.jsonl"
    body = f"{MARKER}\n<!-- imgix-reconciler:digest account=main {digest} -->\n"
    comments.write_text(json.dumps({"user": {"login": github.BOT_LOGIN}, "body": body}) + "\n")
    found = run_cli_module("reviewed-digest", comments, "main")
    assert (found.returncode, found.stdout.strip()) == (0, digest)
    missing = run_cli_module("reviewed-digest", comments, "other")
    assert missing.returncode == 1 and "not reviewed" in missing.stderr


def run_cli_module(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reconciler.github", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


# Python decodes and encodes files by the locale when told no encoding; this is the locale
# of a runner image with no UTF-8 one set (coercion off), where that means ASCII.
ASCII_LOCALE = {"LC_ALL": "C", "PYTHONCOERCECLOCALE": "0", "PYTHONUTF8": "0"}


def test_the_helpers_read_and_write_utf_8_whatever_the_locale(tmp_path: Path) -> None:
    digest = "sha256:" + "c" * 64
    body = f"{MARKER}\n### Café … ✓\n<!-- imgix-reconciler:digest account=eu {digest} -->\n"
    comments = tmp_path / "comments.jsonl"
    comments.write_text(
        json.dumps({"user": {"login": github.BOT_LOGIN}, "body": body}, ensure_ascii=False) + "\n",
        encoding="utf-8",
    )
    env = {**os.environ, **ASCII_LOCALE}
    found = subprocess.run(
        [sys.executable, "-m", "reconciler.github", "reviewed-digest", str(comments), "eu"],
        capture_output=True, text=True, timeout=60, check=False, env=env,
    )  # fmt: skip
    assert (found.returncode, found.stdout) == (0, digest + "\n"), found.stderr
    summary = tmp_path / "summary.md"
    plan = tmp_path / "plan.md"
    plan.write_text("### Café … ✓", encoding="utf-8")
    write = (
        "import sys; from pathlib import Path; from reconciler import github; "
        "github.write_step_summary(Path(sys.argv[1]).read_text('utf-8'), "
        "{'GITHUB_ACTIONS': 'true', 'GITHUB_STEP_SUMMARY': sys.argv[2]})"
    )
    written = subprocess.run(
        [sys.executable, "-c", write, str(plan), str(summary)],
        capture_output=True, text=True, timeout=60, check=False, env=env,
    )  # fmt: skip
    assert written.returncode == 0, written.stderr
    assert summary.read_text("utf-8") == "### Café … ✓\n\n"


def test_the_fork_notice_links_only_to_a_workflow_run() -> None:
    def notice(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "reconciler.github", "fork-notice", *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)

    run = "https://github.com/acme/images/actions/runs/55"
    done = notice("--conclusion", "success", "--run-url", run, "--workflow", "imgix")
    assert done.returncode == 0 and done.stdout.startswith(MARKER + "\n")
    assert f"**passed** ([the run]({run}))" in done.stdout
    for url in ["javascript:alert(1)//actions/runs/1", run + ") [click](https://evil"]:
        refused = notice("--conclusion", "success", "--run-url", url, "--workflow", "imgix")
        assert refused.returncode == 1 and "not the link of a workflow run" in refused.stderr
    odd = notice("--conclusion", "success", "--run-url", run, "--workflow", "im`gix")
    assert odd.returncode == 1 and "not a workflow name" in odd.stderr
    # GitHub Enterprise Server may be served on a port of its own.
    enterprise = "https://ghe.acme.example:8443/acme/images/actions/runs/55"
    done = notice("--conclusion", "success", "--run-url", enterprise, "--workflow", "imgix")
    assert done.returncode == 0 and f"([the run]({enterprise}))" in done.stdout
    for port in [":", ":0x1", ":123456", ":8443@evil.example"]:
        url = f"https://ghe.acme.example{port}/acme/images/actions/runs/55"
        refused = notice("--conclusion", "success", "--run-url", url, "--workflow", "imgix")
        assert refused.returncode == 1 and "not the link of a workflow run" in refused.stderr


def test_missing_accounts_are_the_listed_ones_without_a_result() -> None:
    listed = '[{"name": "eu", "files": "a.yaml"}, {"name": "us", "files": "b.yaml"}]'
    assert github.missing_accounts(listed, ["us"]) == ["eu"]
    assert github.missing_accounts(listed, ["eu", "us"]) == []
    with pytest.raises(ValueError, match="JSON list"):
        github.missing_accounts('{"name": "eu"}', [])


def test_combine_refuses_an_accounts_list_it_cannot_read(tmp_path: Path) -> None:
    for bad in ("[{", '[{"files": "a.yaml"}]', '[{"name": "x` -->"}]'):
        done = run_cli_module("combine", "--accounts", bad)
        assert done.returncode == 1 and "Traceback" not in done.stderr, bad
        assert done.stderr.startswith("error: cannot gather the account results"), bad


def test_combine_refuses_a_view_other_than_plan_or_drift(tmp_path: Path) -> None:
    # A typo in a workflow must not post a comment titled by it under the plan marker.
    from click.testing import CliRunner

    done = CliRunner().invoke(github.main, ["combine", "--view", "apply", str(tmp_path)])
    assert (done.exit_code, done.stdout) == (2, "")
    assert "'apply' is not one of 'plan', 'drift'" in done.stderr


# --------------------------------------------------------------------------- in-process helpers


class _Flushed(io.StringIO):
    flushes = 0

    def flush(self) -> None:
        self.flushes += 1


def test_a_mask_goes_to_the_real_stderr_at_once(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    # Before any later output can print the value: the runner reads stderr as it comes.
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    github.announce_secret("mask-me-please")
    assert capfd.readouterr().err == "::add-mask::mask-me-please\n"
    flushed = _Flushed()
    github.announce_secret("mask-me-please", stream=flushed)
    assert flushed.flushes == 1


@pytest.mark.parametrize("actions", [True, False])
def test_annotations_are_printed_only_in_github_actions(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], actions: bool
) -> None:
    monkeypatch.setenv("GITHUB_ACTIONS", "true" if actions else "false")
    github.annotate([LocatedError("s.yaml", 3, 5, "name", "bad")])
    github.annotate_message("no key\n::error::forged")
    expected = [
        "::error file=s.yaml,line=3,col=5,title=imgix-reconciler::name: bad",
        "::error title=imgix-reconciler::no key\\n::error::forged",
    ]
    assert capsys.readouterr().err.splitlines() == (expected if actions else [])


def test_the_step_summary_is_appended_only_in_github_actions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    github.write_step_summary(
        "## plan X\n\n\n", {**IN_ACTIONS, "GITHUB_STEP_SUMMARY": str(summary)}
    )
    github.write_step_summary("## ignored", {"GITHUB_STEP_SUMMARY": str(summary)})
    github.write_step_summary("## ignored", IN_ACTIONS)
    assert summary.read_text() == "earlier step\n## plan X\n\n"
    missing = tmp_path / "missing" / "summary.md"
    github.write_step_summary("## plan", {**IN_ACTIONS, "GITHUB_STEP_SUMMARY": str(missing)})
    assert capsys.readouterr().err == (
        "warning: cannot write the step summary: No such file or directory\n"
    )


def test_the_comment_links_the_run_when_given_one() -> None:
    result = github.AccountResult(account="main", command="plan", exit_code=0)
    url = "https://github.com/o/r/actions/runs/7"
    assert f"[Logs and JSON plans]({url})" in github.combined_comment(
        [(result, _plan(0, "q"))], run_url=url
    )
    assert "Logs and JSON plans" not in github.combined_comment([(result, _plan(0, "q"))])


def test_the_action_helpers_answer_in_process(tmp_path: Path) -> None:
    # The same commands as the subprocess tests above, where a mutation audit can see them.
    from click.testing import CliRunner

    runner = CliRunner()
    run = "https://github.com/acme/images/actions/runs/55"
    notice = ["fork-notice", "--conclusion", "failure", "--run-url", run, "--workflow", "imgix"]
    done = runner.invoke(github.main, notice)
    assert (done.exit_code, done.output) == (0, github.fork_notice("failure", run, "imgix"))
    assert "**failed (the run's annotations show where)**" in done.output
    bad_url = runner.invoke(github.main, [*notice[:4], "http://x", *notice[5:]])
    assert (bad_url.exit_code, bad_url.output) == (
        1,
        "error: --run-url is not the link of a workflow run\n",
    )
    bad_name = runner.invoke(github.main, [*notice[:6], "a`b"])
    assert (bad_name.exit_code, bad_name.output) == (
        1,
        "error: --workflow is not a workflow name\n",
    )
    for conclusion, verdict in [
        ("success", "passed"),
        ("cancelled", "cancelled"),
        ("timed_out", "timed out"),
        ("neutral", "unknown"),
    ]:
        assert f"files: **{verdict}** ([the run]" in github.fork_notice(conclusion, run, "imgix")
    assert "No API key was available to this pull request's jobs" in done.output

    digest = "sha256:" + "d" * 64
    comments = tmp_path / "comments.jsonl"
    body = f"{MARKER}\n<!-- imgix-reconciler:digest account=main {digest} -->\n"
    comments.write_text(json.dumps({"user": {"login": github.BOT_LOGIN}, "body": body}) + "\n")
    found = runner.invoke(github.main, ["reviewed-digest", str(comments), "main"])
    assert (found.exit_code, found.output) == (0, digest + "\n")
    missing = runner.invoke(github.main, ["reviewed-digest", str(comments), "other"])
    assert (missing.exit_code, missing.stdout) == (1, "")
    assert missing.stderr == (
        f"error: no plan comment of {github.BOT_LOGIN} records a digest for account other: "
        "the change was not reviewed through a pull request with a plan comment\n"
    )
    comments.write_text("{not json\n")
    garbled = runner.invoke(github.main, ["reviewed-digest", str(comments), "main"])
    assert garbled.exit_code == 1 and garbled.stdout == ""
    assert garbled.stderr.startswith("error: the comments are not JSON lines: ")
    assert isinstance(garbled.exception, SystemExit)  # said, not a crash


def test_a_mask_announced_while_output_is_redacted_still_names_the_value(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    # Through the redacting stderr the runner would read `::add-mask::***`, masking nothing.
    from reconciler import redact

    redact.register("already-registered-value")
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    with redact.redacted_output():
        github.announce_secret("already-registered-value")
    assert capfd.readouterr().err == "::add-mask::already-registered-value\n"


def test_an_annotation_names_the_file_from_the_workspace_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "infra").mkdir()
    monkeypatch.setenv("GITHUB_WORKSPACE", str(tmp_path))
    error = LocatedError(str(tmp_path / "infra" / "s.yaml"), 1, 2, "name", "bad")
    assert github.error_annotation(error).startswith("::error file=infra/s.yaml,line=1,col=2,")
    outside = LocatedError("/elsewhere/s.yaml", 1, 2, "name", "bad")
    assert github.error_annotation(outside).startswith("::error file=/elsewhere/s.yaml,")


def test_a_drift_comment_has_no_note_about_planning_a_fork() -> None:
    fork = github.AccountResult(account="eu", command="drift", exit_code=0, planned=False)
    assert "No API key was available" not in github.combined_comment([(fork, None)], view="drift")
    assert "No API key was available" in github.combined_comment([(fork, None)], view="plan")
    planned = github.AccountResult(account="eu", command="plan", exit_code=0)
    assert "No API key" not in github.combined_comment([(planned, _plan(0, "q"))])


def test_the_fork_note_names_the_accounts_without_a_key() -> None:
    forks = [
        (github.AccountResult(account=name, command="plan", exit_code=0, planned=False), None)
        for name in ("eu", "us")
    ]
    assert "No API key was available to this job for `eu`, `us` (a pull request" in (
        github.combined_comment(forks)
    )


@pytest.mark.parametrize(
    "listed", ['[{"files": "a.yaml"}]', "[1]", '[{"name": 5}]', "{}", "5", '""']
)
def test_an_accounts_list_of_the_wrong_shape_is_refused(listed: str) -> None:
    with pytest.raises(
        ValueError, match=r'^--accounts is not a JSON list of \{"name": \.\.\.\} objects$'
    ):
        github.missing_accounts(listed, [])


def test_combine_gives_every_listed_account_a_row(tmp_path: Path) -> None:
    from click.testing import CliRunner

    folder = tmp_path / "eu"
    folder.mkdir()
    result = github.AccountResult(account="eu", command="plan", exit_code=0, planned=False)
    (folder / "result.json").write_text(result.model_dump_json())
    listed = '[{"name": "eu"}, {"name": "us"}]'
    done = CliRunner().invoke(github.main, ["combine", str(folder), "--accounts", listed])
    assert done.exit_code == 0
    table = "| account | result | create | patch | unchanged | unmanaged |\n|---|---|---:|"
    assert f"### imgix-reconciler plan: 2 accounts\n\n{table}" in done.output
    # A result that is not what the plan job writes (here a field of its own) is refused.
    (folder / "result.json").write_text(result.model_dump_json()[:-1] + ', "verdict": "ok"}')
    broken = CliRunner().invoke(github.main, ["combine", str(folder)])
    assert broken.exit_code == 1 and isinstance(broken.exception, SystemExit)
    assert broken.stdout == ""
    assert broken.stderr.startswith("error: cannot gather the account results: ")
    assert "| `eu` | validated only (no API key) |" in done.output
    assert "| `us` | no result (its job failed or was cancelled) |" in done.output


def test_combine_keys_the_comment_to_its_caller_workflow_and_links_the_run(
    tmp_path: Path,
) -> None:
    # The key is what keeps two caller workflows' comments apart on one pull request.
    from click.testing import CliRunner

    folder = tmp_path / "eu"
    folder.mkdir()
    result = github.AccountResult(account="eu", command="plan", exit_code=0, planned=False)
    (folder / "result.json").write_text(result.model_dump_json())
    run = "https://github.com/acme/images/actions/runs/55"
    args = ["combine", str(folder), "--key", "imgix-prod", "--run-url", run]
    done = CliRunner().invoke(github.main, args)
    assert done.exit_code == 0, done.output
    assert done.stdout.startswith("<!-- imgix-reconciler:plan key=imgix-prod -->\n### ")
    assert f"\n[Logs and JSON plans]({run})\n" in done.stdout


def test_when_even_the_summaries_do_not_fit_the_table_still_has_every_account() -> None:
    results = [
        (github.AccountResult(account=f"a{n}", command="plan", exit_code=2), _plan(1, f"p{n}"))
        for n in range(150)
    ]
    comment = github.combined_comment(results)
    assert len(comment) < github.COMMENT_LIMIT
    assert all(f"| `a{n}` | changes | 1 |" in comment for n in range(150))
    shown = comment.count("\n#### Account `")
    assert 0 < shown < 150
    # Sections fill the budget and half the room kept below GitHub's limit, no more.
    soft_limit = (github.COMMENT_BUDGET + github.COMMENT_LIMIT) // 2
    sections, _, _ = comment.rpartition("\n… and ")
    last_section = len(sections) - sections.rindex("\n#### Account `")
    # The next section, as long as the last one shown (give or take a digit), did not fit.
    assert soft_limit - last_section - 5 < len(sections) <= soft_limit
    assert comment.endswith(f"\n… and {150 - shown} accounts not shown (see the artifacts).\n")


def test_a_bot_comment_without_a_body_is_skipped() -> None:
    digest = "sha256:" + "e" * 64
    body = f"{MARKER}\n<!-- imgix-reconciler:digest account=eu {digest} -->\n"
    comments = [
        {"user": {"login": github.BOT_LOGIN}, "body": body},
        {"user": {"login": github.BOT_LOGIN}, "body": None},
        {"user": "not a mapping", "body": body},
    ]
    assert github.reviewed_digest(comments, "eu") == digest


def test_a_drift_comment_says_which_accounts_drifted() -> None:
    results = [
        (github.AccountResult(account="eu", command="drift", exit_code=2), _plan(1, "d")),
        (github.AccountResult(account="us", command="drift", exit_code=0), _plan(0, "s")),
        (github.AccountResult(account="ap", command="drift", exit_code=1), None),
    ]
    comment = github.combined_comment(results, view="drift")
    assert comment.startswith(
        "<!-- imgix-reconciler:drift -->\n### imgix-reconciler drift: 3 accounts\n"
    )
    assert "| `eu` | drift | 1 | 0 | 0 | 0 |" in comment
    assert "| `us` | in sync | 0 | 0 | 0 | 0 |" in comment
    assert "| `ap` | error (see the logs) | | | | |" in comment
    # Each account's section follows the one before as a block of its own, and says the
    # drift verdict of its job.
    assert "\n\n#### Account `us`\n" in comment
    eu, us = comment.split("\n#### Account `")[1:]
    assert "Drift: 1 missing from imgix, 0 differing from the files" in eu
    assert "In sync: 0 sources match the files" in us
    invalid = github.AccountResult(account="v", command="plan", exit_code=1, planned=False)
    assert "| `v` | invalid files |" in github.combined_comment([(invalid, None)])


def test_the_remaining_digest_command_prints_what_is_left_or_refuses_more(tmp_path: Path) -> None:
    from click.testing import CliRunner

    def plan(name: str, *sources: str) -> Path:
        saved = tmp_path / f"{name}.json"
        file = write_sources(tmp_path, sources_yaml(*sources), name=f"{name}.yaml")
        made = invoke("plan", file, "--out", saved, "--emulator", env=CANARY_ENV)
        assert saved.is_file(), made.output
        return saved

    reviewed = plan("reviewed", "Products", "Marketing")
    left = plan("left", "Products")
    grown = plan("grown", "Products", "Marketing", "Blog")
    runner = CliRunner()

    done = runner.invoke(github.main, ["remaining-digest", str(reviewed), str(left), "--emulator"])
    assert (done.exit_code, done.output) == (0, json.loads(left.read_text())["digest"] + "\n")
    refused = runner.invoke(
        github.main, ["remaining-digest", str(reviewed), str(grown), "--emulator"]
    )
    assert (refused.exit_code, refused.stdout) == (4, "")
    assert refused.stderr == (
        "error: the plan now holds actions the reviewed plan did not: review a new pull request\n"
    )
    # Checked with another key than the one it was made with: refused, not compared.
    elsewhere = runner.invoke(
        github.main,
        ["remaining-digest", str(reviewed), str(left), "--api-url", "https://api.example.test"],
        env={"IMGIX_API_KEY": "some-key"},
    )
    assert (elsewhere.exit_code, elsewhere.stdout) == (1, "")
    assert isinstance(elsewhere.exception, SystemExit)
    for folder in ([str(tmp_path), str(left)], [str(reviewed), str(tmp_path)]):
        usage = runner.invoke(github.main, ["remaining-digest", *folder, "--emulator"])
        assert (usage.exit_code, usage.stdout) == (2, "")
        assert "is a directory" in usage.stderr
    assert elsewhere.stderr.startswith(f"error: {reviewed}: the plan's MAC does not match")


def test_the_comment_key_and_fork_notice_commands_print_the_keyed_marker() -> None:
    from click.testing import CliRunner

    runner = CliRunner()
    keyed = runner.invoke(github.main, ["comment-key", "o/r/.github/workflows/imgix.yml@refs/x"])
    assert (keyed.exit_code, keyed.output) == (0, "imgix\n")
    run = "https://github.com/acme/images/actions/runs/55"
    notice = ["fork-notice", "--conclusion", "success", "--run-url", run, "--workflow", "imgix"]
    done = runner.invoke(github.main, [*notice, "--key", "imgix"])
    assert done.exit_code == 0
    assert done.output.startswith("<!-- imgix-reconciler:plan key=imgix -->\n")
    hostile = runner.invoke(github.main, [*notice, "--key", "x --><b>"])
    assert (hostile.exit_code, hostile.output) == (1, "error: --key is not a comment key\n")
    assert isinstance(hostile.exception, SystemExit)  # said, not a crash


def test_the_notes_under_the_table_are_paragraphs_of_their_own() -> None:
    # A line right under a markdown table is read as one more row of it.
    fork = github.AccountResult(account="eu", command="plan", exit_code=0, planned=False)
    url = "https://github.com/o/r/actions/runs/7"
    comment = github.combined_comment([(fork, None)], run_url=url)
    assert "| |\n\nNo API key was available to this job for `eu`" in comment
    assert f"runs with the secrets.\n\n[Logs and JSON plans]({url})\n" in comment


def test_an_account_whose_job_failed_is_an_error_whatever_it_left() -> None:
    # Never "in sync", never a reviewed digest: a failed job's plan was not the whole story.
    failed = github.AccountResult(account="eu", command="drift", exit_code=1)
    no_plan = github.AccountResult(account="us", command="drift", exit_code=0)
    plan = _plan(1, "f")
    drift = github.combined_comment([(failed, plan), (no_plan, None)], view="drift")
    assert "| `eu` | error (see the logs) | 1 | 0 | 0 | 0 |" in drift
    assert "| `us` | error (see the logs) | | | | |" in drift
    failed_plan = github.AccountResult(account="eu", command="plan", exit_code=1)
    comment = github.combined_comment([(failed_plan, plan)])
    assert "| `eu` | error (see the logs) |" in comment
    assert "imgix-reconciler:digest" not in comment


def test_the_fork_notice_says_exactly_how_the_files_were_checked() -> None:
    run = "https://github.com/acme/images/actions/runs/55"
    assert github.fork_notice("timed_out", run, "imgix plan") == (
        "<!-- imgix-reconciler:plan -->\n"
        "### imgix-reconciler plan: not run (a pull request from a fork)\n"
        "\n"
        f"Validation of the desired-state files: **timed out** ([the run]({run})).\n"
        "\n"
        "No API key was available to this pull request's jobs (a pull request from a fork gets "
        "no secrets), so the files were validated but not planned. A maintainer who has read "
        "the change runs the plan from the Actions tab: run the `imgix plan` workflow with "
        "`pull-request` set to this pull request's number. It plans the pull request's "
        "files with the default branch's workflow and action, so none of the fork's code "
        "runs with the secrets.\n"
    )


def test_the_newest_comment_wins_in_whatever_order_they_are_listed() -> None:
    old, new = ("sha256:" + c * 64 for c in "ab")

    def comment(digest: str, updated: str | None) -> dict[str, object]:
        body = f"{MARKER}\n<!-- imgix-reconciler:digest account=eu {digest} -->\n"
        return {"user": {"login": github.BOT_LOGIN}, "body": body, "updated_at": updated}

    newest = comment(new, "2026-11-30T03:00:00Z")
    assert github.reviewed_digest([newest, comment(old, "2026-11-30T01:00:00Z")], "eu") == new
    # A comment without a time is the oldest, not the newest.
    assert github.reviewed_digest([newest, comment(old, None)], "eu") == new


def test_the_action_helpers_print_errors_to_stderr_and_results_to_stdout(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from reconciler.reconcile import read_plan_document

    runner = CliRunner()
    run = "https://github.com/acme/images/actions/runs/55"
    notice = ["fork-notice", "--conclusion", "success", "--run-url", run, "--workflow", "imgix"]
    for args in (
        [*notice[:4], "http://x", *notice[5:]],
        [*notice[:6], "a`b"],
        [*notice, "--key", "a b"],
        ["reviewed-digest", "-", "eu"],
    ):
        refused = runner.invoke(github.main, args, input="")
        assert refused.exit_code == 1
        assert refused.stdout == "" and refused.stderr.startswith("error: ")

    folder = tmp_path / "eu"
    folder.mkdir()
    result = github.AccountResult(account="eu", command="plan", exit_code=2)
    (folder / "result.json").write_text(result.model_dump_json())
    sources = write_sources(tmp_path, sources_yaml("Products"))
    made = invoke("plan", sources, "--out", folder / "plan.json", "--emulator", env=CANARY_ENV)
    assert (folder / "plan.json").is_file(), made.output
    done = runner.invoke(github.main, ["combine", str(folder)])
    assert done.exit_code == 0 and done.stderr == ""
    # The account's saved plan is read: its counts and its section are in the comment.
    assert "| `eu` | changes | 1 | 0 |" in done.stdout
    assert "\n#### Account `eu`\n" in done.stdout
    # Printed as written, for the action to post: no newline added after its last line.
    saved = read_plan_document(folder / "plan.json")
    assert done.stdout == github.combined_comment([(result, saved)])
    drift = runner.invoke(github.main, ["combine", str(folder), "--view", "drift"])
    assert drift.stdout == github.combined_comment([(result, saved)], view="drift")
    # Only directories hold results: a file is a usage error, said before anything is read.
    not_a_folder = runner.invoke(github.main, ["combine", str(folder / "plan.json")])
    assert (not_a_folder.exit_code, not_a_folder.stdout) == (2, "")
    assert "is a file" in not_a_folder.stderr


def test_each_pattern_is_compiled_once_and_kept_under_its_name() -> None:
    # Through `reconciler.deferred`: compiled at first use, then in the module's place.
    digest = "sha256:" + "f" * 64
    body = f"{MARKER}\n<!-- imgix-reconciler:digest account=eu {digest} -->\n"
    github.reviewed_digest([{"user": {"login": github.BOT_LOGIN}, "body": body}], "eu")
    github.reviewed_digest([{"user": {"login": github.BOT_LOGIN}, "body": "x"}], "eu")
    result = github.AccountResult(account="eu", command="plan", exit_code=0)
    github.combined_comment([(result, None)], key="imgix")
    github.reviewed_digest(
        [{"user": {"login": github.BOT_LOGIN}, "body": github.keyed_marker(MARKER, "k")}], "eu"
    )
    for name in ("DIGEST_LINE", "ACCOUNT_NAME", "COMMENT_KEY", "KEYED_PLAN_MARKER"):
        assert isinstance(getattr(github, name), re.Pattern), name


@pytest.mark.parametrize("option", ["--conclusion", "--run-url", "--workflow"])
def test_the_fork_notice_needs_each_of_its_options(option: str) -> None:
    from click.testing import CliRunner

    given = {
        "--conclusion": "success",
        "--run-url": "https://github.com/acme/images/actions/runs/55",
        "--workflow": "imgix",
    }
    args = [part for name, value in given.items() if name != option for part in (name, value)]
    done = CliRunner().invoke(github.main, ["fork-notice", *args])
    assert (done.exit_code, done.stdout) == (2, "")
    assert f"Missing option '{option}'" in done.stderr


def test_the_emulator_flag_of_remaining_digest_is_for_tests_only() -> None:
    from click.testing import CliRunner

    shown = CliRunner().invoke(github.main, ["remaining-digest", "--help"])
    assert shown.exit_code == 0 and "--api-url" in shown.stdout
    assert "--emulator" not in shown.stdout


# --------------------------------------------------------------------------- hostile text
#
# Names and values come from a pull request's file and from the API's listing; both reach
# the comment, the job summary and the workflow commands. Whatever they hold, each output
# keeps its shape and nothing in them acts.

# Pieces that mean something to GitHub, to markdown, to HTML or to the runner.
HOSTILE_PIECES = [
    "@octocat",
    "@acme/security",
    "#12",
    "acme/infra#3",
    "GH-7",
    "https://evil.example/x",
    "www.evil.example",
    "admin@evil.example",
    "<details>",
    "</details>",
    "<summary>",
    "</summary>",
    "</code>",
    "<img src=x onerror=alert(1)>",
    "<!--",
    "-->",
    "<!-- imgix-reconciler:plan -->",
    f"<!-- imgix-reconciler:digest account=prod sha256:{'0' * 64} -->",
    "```",
    "`",
    "~~~",
    "|",
    "[x](https://evil.example)",
    "![i](http://evil.example/i.png)",
    "*",
    "_",
    "\\",
    "&#64;",
    "&lt;",
    "%0A",
    "::error::forged",
    "::add-mask::hunter2",
    "::warning file=a,line=1::w",
    "::set-output name=x::y",
    "\n",
    "\r\n",
    "\n::error::x",
    "\u2028",
    "\u202e",
    "\u2066",
    "\x1b[2J",
    "\x85",
    "\t",
    " ",
    "é",
    "名",
]
hostile_text = (
    st.lists(
        st.one_of(st.sampled_from(HOSTILE_PIECES), st.text(max_size=8)), min_size=1, max_size=12
    )
    .map("".join)
    .filter(str.strip)
)
# Shrinking a failure takes minutes here (each example plans over HTTP): a quick look at
# what fails may skip it (IMGIX_RECONCILER_HOSTILE_SHRINK=0).
PHASES = [
    phase
    for phase in Phase
    if phase is not Phase.shrink or os.environ.get("IMGIX_RECONCILER_HOSTILE_SHRINK") != "0"
]
# Huge text is made inside the tests (a piece repeated): Hypothesis would print it whole.
HUGE_REPEATS = 4_000

# The HTML our markdown writes; anything else is text that got through as markup.
OUR_TAGS = {"details", "summary", "b", "code", "br"}
TAG = re.compile(r"<(/?)([A-Za-z][\w-]*)")
COMMAND = re.compile(r"^\s*::", re.MULTILINE)
OUR_COMMAND = re.compile(
    r"::add-mask::[^\r\n]*"
    r"|::error file=[^:,\r\n]*,line=\d+,col=\d+,title=imgix-reconciler::[^\r\n]*"
    r"|::error title=imgix-reconciler::[^\r\n]*"
)
CANARY = "CANARY-gh-hostile-5e1f"


def assert_one_of_ours(line: str) -> None:
    """`line` is a whole workflow command we write, whose message the runner shows on one line."""
    assert OUR_COMMAND.fullmatch(line), line
    data = line.split("::", 2)[2]
    # How the runner decodes a command's data.
    shown = data.replace("%0D", "\r").replace("%0A", "\n").replace("%25", "%")
    assert "\r" not in shown and "\n" not in shown, line


def assert_well_formed_comment(
    markdown: str, digests: list[tuple[str, str]] | None, marker: str = MARKER
) -> None:
    """The comment's shape, whatever its text: markers, HTML, fences, tables, no ping."""
    from test_hostile_output import assert_inert, links_in

    assert len(markdown) <= github.COMMENT_LIMIT
    assert links_in(markdown) == []
    assert_inert(markdown)
    lines = markdown.split("\n")
    assert lines[0] in (marker, github.keyed_marker(marker, "prod"))
    comments = [line for line in lines if "<!--" in line or "-->" in line]
    assert comments == [
        lines[0],
        *(line for line in comments[1:] if github.DIGEST_LINE.match(line)),
    ]
    if digests is not None:
        assert github.DIGEST_LINE.findall(markdown) == digests
    depth: dict[str, int] = {}
    for closing, tag in TAG.findall(markdown):
        assert tag in OUR_TAGS, tag
        depth[tag] = depth.get(tag, 0) + (-1 if closing else 1)
        assert depth[tag] >= 0, f"</{tag}> closes nothing"
    assert all(count == 0 for count in depth.values()), depth
    assert sum(line.startswith(("```", "~~~")) for line in lines) % 2 == 0
    # Each table keeps its columns: hostile pipes are entities.
    table: list[int] = []
    for line in [*lines, ""]:
        if line.startswith("|"):
            table.append(line.count("|"))
        elif table:
            assert len(set(table)) == 1, table
            table = []
    assert CANARY not in markdown


def hostile_account(store: SourceStore, live_name: str, live_note: str, unmanaged: str) -> str:
    """A managed source whose live name and annotation are hostile, and a hostile stranger."""
    site = {"type": "webfolder", "webfolder_base_url": "https://site.example/"}
    managed = store.create_source(
        {"name": live_name, "deployment": {**site, "imgix_subdomains": ["gh-managed"]}}
    )
    store.dashboard_redeploy(managed["id"], {"annotation": live_note})
    store.create_source({"name": unmanaged, "deployment": {**site, "imgix_subdomains": ["gh-x"]}})
    return str(managed["id"])


def yaml_scalar(text: str) -> str:
    """`text` as a YAML double-quoted scalar (JSON's, with YAML's escape past the BMP)."""
    return "".join(
        f"\\U{ord(char):08x}" if ord(char) > 0xFFFF else json.dumps(char)[1:-1] for char in text
    ).join('""')


def hostile_file(path: Path, managed_id: str, name: str, note: str, new_name: str) -> None:
    path.write_text(
        "version: 1\nsources:\n"
        f"  - name: {yaml_scalar(name)}\n    id: {managed_id}\n    deployment:\n"
        "      type: webfolder\n      imgix_subdomains: [gh-managed]\n"
        "      webfolder_base_url: https://site.example/\n"
        f"      annotation: {yaml_scalar(note)}\n"
        f"  - name: {yaml_scalar(new_name)}\n    deployment:\n      type: webfolder\n"
        "      imgix_subdomains: [gh-new]\n      webfolder_base_url: https://site.example/\n"
        "      username: imgix\n      password: {env: GH_HOSTILE_PASSWORD}\n",
        encoding="utf-8",
    )


@settings(
    max_examples=int(os.environ.get("IMGIX_RECONCILER_HOSTILE_EXAMPLES", "15")),
    deadline=None,
    phases=PHASES,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    name=hostile_text,
    note=hostile_text,
    new_name=hostile_text,
    live_name=hostile_text,
    live_note=hostile_text,
    unmanaged=hostile_text,
    huge=st.sampled_from([None, None, None, "name", "note", "live_name", "unmanaged"]),
)
def test_hostile_names_and_values_keep_the_comment_summary_and_commands_in_shape(
    _emulator_server: tuple[Starlette, str],
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    name: str,
    note: str,
    new_name: str,
    live_name: str,
    live_note: str,
    unmanaged: str,
    huge: str | None,
) -> None:
    texts = {"name": name, "note": note, "live_name": live_name, "unmanaged": unmanaged}
    if huge is not None:
        texts[huge] *= HUGE_REPEATS
    name, note, live_name, unmanaged = texts.values()
    assume(name != new_name)
    # A fresh process each time, as in CI: the secret is announced when first read.
    redact._values.discard(CANARY)
    app, url = _emulator_server
    store = SourceStore(deploy_delay=0, limits=NO_LIMITS)
    app.state.store = store
    managed_id = hostile_account(store, live_name, live_note, unmanaged)
    file = tmp_path / "sources.yaml"
    hostile_file(file, managed_id, name, note, new_name)
    summary = tmp_path / "summary.md"
    summary.write_text("", encoding="utf-8")
    saved = tmp_path / "plan.json"
    saved.unlink(missing_ok=True)
    env = {
        **IN_ACTIONS,
        "GITHUB_STEP_SUMMARY": str(summary),
        "GH_HOSTILE_PASSWORD": CANARY,
        "IMGIX_RECONCILER_FINGERPRINT_KEY": "a-fingerprint-key-for-the-tests",
    }
    capfd.readouterr()

    result = invoke("plan", file, "--format", "markdown", "--out", saved, "--api-url", url, env=env)
    commands = capfd.readouterr().err  # the masks go to the real stderr

    assert result.exit_code == 0, result.output + result.stderr
    assert_well_formed_comment(result.stdout, None)
    assert_well_formed_comment(summary.read_text("utf-8").rstrip("\n") + "\n", None)
    # The comment of the action's gathering job, from the saved plan as it reads it.
    plan = read_plan_document(saved)
    account = github.AccountResult(account="prod", command="plan", exit_code=2)
    comment = github.combined_comment([(account, plan)], key="prod")
    assert_well_formed_comment(comment, [("prod", plan.digest)])
    # The drift issue's body, from the same document (drift saves the plan it checked).
    drifted = github.AccountResult(account="prod", command="drift", exit_code=2)
    issue = github.combined_comment([(drifted, plan)], view="drift", key="prod")
    assert_well_formed_comment(issue, [("prod", plan.digest)], DRIFT_MARKER)
    # Every workflow command is one of ours, whole on its line; the secret is only masked.
    for output in (commands, result.stderr):
        for line in output.splitlines():
            if COMMAND.match(line):
                assert_one_of_ours(line)
            if CANARY in line:
                assert line == f"::add-mask::{CANARY}", line
    assert f"::add-mask::{CANARY}" in commands.splitlines()
    assert CANARY not in saved.read_text("utf-8")


@settings(
    max_examples=int(os.environ.get("IMGIX_RECONCILER_HOSTILE_EXAMPLES", "25")),
    deadline=None,
    phases=PHASES,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    key=hostile_text,
    name=hostile_text,
    file_name=st.text(
        st.characters(blacklist_characters="/\x00", blacklist_categories=("Cs",)),
        min_size=1,
        max_size=60,
    ),
)
def test_hostile_file_text_in_errors_makes_only_whole_error_annotations(
    tmp_path: Path, key: str, name: str, file_name: str
) -> None:
    directory = tmp_path / "hostile"
    directory.mkdir(exist_ok=True)
    try:
        file = directory / (file_name + ".yaml")
        file.write_text("", encoding="utf-8")
    except (OSError, UnicodeEncodeError):
        return  # a name this file system refuses
    try:
        # An unknown key and the same name twice: two errors that quote the file's text.
        file.write_text(
            "version: 1\nsources:\n"
            + "".join(
                f"  - name: {yaml_scalar(name)}\n    deployment:\n      type: webfolder\n"
                f"      imgix_subdomains: [gh-{n}]\n"
                "      webfolder_base_url: https://site.example/\n"
                f"      {yaml_scalar(key)}: 1\n"
                for n in range(2)
            ),
            encoding="utf-8",
        )
        result = invoke("validate", file, env={**IN_ACTIONS, "GITHUB_WORKSPACE": str(tmp_path)})
    finally:
        file.unlink(missing_ok=True)

    assert result.exit_code == 1, result.output
    annotations = [line for line in result.stderr.splitlines() if COMMAND.match(line)]
    assert annotations, result.stderr
    for line in annotations:
        assert_one_of_ours(line)
        assert line.startswith("::error file=hostile/"), line
    assert "Traceback" not in result.stderr


OUTCOMES = ["applied", "failed", "skipped", "stopped", "in effect", "stale"]


@settings(
    max_examples=int(os.environ.get("IMGIX_RECONCILER_HOSTILE_EXAMPLES", "25")),
    deadline=None,
    phases=PHASES,
)
@given(
    results=st.lists(
        st.tuples(
            st.sampled_from(["create", "patch"]),
            hostile_text,
            st.sampled_from(OUTCOMES),
            st.none() | hostile_text,
            st.none() | hostile_text,
        ),
        min_size=1,
        max_size=6,
    ),
    still_deploying=st.lists(hostile_text, max_size=3),
    huge=st.sampled_from([None, None, "source", "error", "id"]),
    copies=st.sampled_from([1, 1, 1, 2_000]),
)
def test_hostile_names_and_api_errors_keep_the_apply_report_in_shape(
    results: list[tuple[str, str, str, str | None, str | None]],
    still_deploying: list[str],
    huge: str | None,
    copies: int,
) -> None:
    # Names come from the file and the listing, errors from the API (its details are
    # clipped, but a hostile server picks every character), ids from the API too; an
    # apply of thousands of sources makes as many rows.
    redact.register(CANARY)
    rows = []
    for action, source, outcome, source_id, error in results:
        texts = {"source": source, "id": source_id, "error": error}
        if huge is not None and texts[huge] is not None:
            texts[huge] = str(texts[huge]) * HUGE_REPEATS
        error = texts["error"] and texts["error"] + " " + CANARY  # a secret echoed back
        rows.append(ActionResult(action, texts["source"] or "", "k", outcome, texts["id"], error))  # type: ignore[arg-type]
    report = ApplyReport(results=rows * copies, writes=len(rows), still_deploying=still_deploying)

    assert_well_formed_comment(render_report(report), None, REPORT_MARKER)


@given(workflow=hostile_text)
def test_a_hostile_workflow_name_keys_the_drift_issue_with_a_plain_name(workflow: str) -> None:
    # The drift issue's title and marker hold the key (action/drift-issue.sh): whatever
    # the caller's file is called, the key is a plain name that ends no comment.
    for ref in (workflow, f"o/r/.github/workflows/{workflow}.yml@refs/heads/main"):
        key = github.comment_key(ref)
        assert github.COMMENT_KEY.fullmatch(key), key
        assert github.keyed_marker(DRIFT_MARKER, key).count("-->") == 1


def test_an_apply_report_of_thousands_of_actions_fits_a_comment_and_shows_failures_first() -> None:
    # Every row used to be written: this report took 415,471 characters.
    applied = ActionResult("patch", "Site", "k", "applied", "a" * 24)
    failed = ActionResult("patch", "Broken", "k", "failed", "b" * 24, "imgix API 400 " + "x" * 300)
    waiting = ["c" * 24] * 50 + ["d" * 1_000]
    report = ApplyReport(
        results=[applied] * 4_999 + [failed], writes=5_000, still_deploying=waiting
    )

    markdown = render_report(report)

    assert len(markdown) <= github.COMMENT_BUDGET
    rows = [line for line in markdown.splitlines() if line.startswith("| ")][1:]
    assert rows[0].startswith("| failed | patch | <code>Broken</code> |")
    assert (
        f"\n\n… and {5_000 - len(rows)} more outcomes: `--format text` lists them all.\n\n"
        in markdown
    )
    assert markdown.count("<code>cccccccccccccccccccccccc</code>") == 20
    assert "<code>cccccccccccccccccccccccc</code> and 31 more." in markdown
    assert render_report(ApplyReport(results=[applied, failed])).count("\n| ") == 3  # all fit
