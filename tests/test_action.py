"""The composite action's shell steps (`action/*.sh`), run with bash as the runner would.

Each run gets a fake GitHub environment (workspace, event payload, output and summary
files, RUNNER_TEMP) and talks to the emulator over real HTTP. The pull-request flow is
followed end to end: plan, the gathered comment, the digest read back from it after the
merge, and the apply decision for a matching and a stale digest.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from console import CANARY_ENV, CANARY_FILES, child_env, sources_yaml, write_sources, writes_since

from reconciler.emulator import SourceStore
from reconciler.render.markdown import MARKER

# The comment of the caller workflow `.github/workflows/imgix.yml` (FakeGitHub.env's).
KEYED = "<!-- imgix-reconciler:plan key=imgix -->"

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).parent.parent
HELPER = [sys.executable, "-m", "reconciler.github"]
BOT = "github-actions[bot]"


@dataclass
class Step:
    """One finished run of the action's step: exit status, outputs, summary, printed lines."""

    returncode: int
    outputs: dict[str, str]
    summary: str
    stdout: str
    stderr: str


class FakeRunner:
    """A GitHub runner's environment for one job, in a temporary directory."""

    def __init__(self, root: Path, emulator_url: str) -> None:
        self.workspace = root / "workspace"
        self.temp = root / "runner-temp"
        self.workspace.mkdir()
        self.temp.mkdir()
        self.emulator_url = emulator_url
        self.event = root / "event.json"
        self.event.write_text(json.dumps({"pull_request": {"number": 7}}), encoding="utf-8")
        self.runs = 0

    def step(self, extra_env: Mapping[str, str | None] | None = None, **inputs: str) -> Step:
        """Run action/run.sh with the inputs (`expect_digest=` for `expect-digest`)."""
        return self.script("run.sh", extra_env, **inputs)

    def script(
        self, name: str, extra_env: Mapping[str, str | None] | None = None, **inputs: str
    ) -> Step:
        """Run one of the action's scripts (`action/NAME`) as a step of this job."""
        self.runs += 1
        output = self.temp / f"output-{self.runs}"
        summary = self.temp / f"summary-{self.runs}"
        output.touch()
        summary.touch()
        env: dict[str, str | None] = {
            "GITHUB_ACTIONS": "true",
            "GITHUB_REPOSITORY": "acme/images",
            "GITHUB_SHA": "f" * 40,
            "GITHUB_RUN_ID": "1234",
            "GITHUB_WORKSPACE": str(self.workspace),
            "GITHUB_EVENT_NAME": "pull_request",
            "GITHUB_EVENT_PATH": str(self.event),
            "GITHUB_OUTPUT": str(output),
            "GITHUB_STEP_SUMMARY": str(summary),
            "RUNNER_TEMP": str(self.temp),
            "IMGIX_RECONCILER_VENV": sys.prefix,
            "INPUT_API_URL": self.emulator_url,
            **{f"INPUT_{name.upper()}": value for name, value in inputs.items()},
            **(extra_env or {}),
        }
        done = subprocess.run(
            ["bash", str(ROOT / "action" / name)],
            cwd=self.workspace,
            env={**child_env(env), "PYTHONPATH": str(ROOT)},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        outputs = dict(
            line.split("=", 1) for line in output.read_text("utf-8").splitlines() if "=" in line
        )
        return Step(done.returncode, outputs, summary.read_text("utf-8"), done.stdout, done.stderr)


@pytest.fixture
def runner(tmp_path: Path, emulator_url: str) -> FakeRunner:
    return FakeRunner(tmp_path, emulator_url)


def _sources(runner: FakeRunner, *names: str) -> None:
    write_sources(runner.workspace, sources_yaml(*names))


def _comment(runner: FakeRunner, *steps: Step) -> str:
    """The gathering job: one comment from the accounts' result folders."""
    folders = [step.outputs["result-directory"] for step in steps]
    done = subprocess.run(
        [*HELPER, "combine", *folders],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    return done.stdout


def _reviewed_digest(tmp: Path, comments: list[dict[str, object]], account: str) -> str:
    """The apply job's look-up of the merged pull request's comment."""
    lines = tmp / "comments.jsonl"
    lines.write_text("".join(json.dumps(c) + "\n" for c in comments), encoding="utf-8")
    done = subprocess.run(
        [*HELPER, "reviewed-digest", str(lines), account],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.strip()


def test_plan_comment_then_apply_with_the_reviewed_digest(
    runner: FakeRunner, emulator_store: SourceStore, tmp_path: Path
) -> None:
    _sources(runner, "Products", "Marketing")
    plan = runner.step({**CANARY_ENV}, command="plan", files="sources.yaml", account="main")

    assert plan.returncode == 0, plan.stderr  # changes are not a failure of the step
    assert plan.outputs["exit-code"] == "2"
    assert plan.outputs["has-changes"] == "true"
    assert plan.outputs["planned"] == "true"
    digest = plan.outputs["digest"]
    assert digest.startswith("sha256:")
    markdown = Path(plan.outputs["markdown-plan"]).read_text("utf-8")
    assert markdown.startswith(MARKER + "\n")
    assert json.loads(Path(plan.outputs["json-plan"]).read_text("utf-8"))["digest"] == digest
    assert plan.summary.startswith(MARKER)  # the job summary shows the plan too
    printed = plan.stdout + plan.stderr + markdown + plan.summary
    secrets = [*CANARY_ENV.values(), *CANARY_FILES.values()]
    masked = printed.replace("".join(f"::add-mask::{v}\n" for v in secrets), "")
    assert "::add-mask::" + CANARY_ENV["E2E_S3_SECRET_KEY"] in plan.stderr
    assert not any(value in masked.split("::add-mask::")[0] for value in secrets)

    comment = _comment(runner, plan)
    assert comment.startswith(MARKER + "\n### imgix-reconciler plan: 1 account")
    assert "| `main` | changes | 2 | 0 | 0 | 0 |" in comment
    assert f"<!-- imgix-reconciler:digest account=main {digest} -->" in comment

    # After the merge: a forged comment by someone else does not count.
    forged = comment.replace(digest, "sha256:" + "0" * 64)
    comments = [
        {"user": {"login": BOT}, "body": comment},
        {"user": {"login": "someone"}, "body": forged},
    ]
    reviewed = _reviewed_digest(tmp_path, comments, "main")
    assert reviewed == digest

    mark = len(emulator_store.request_log)
    apply = runner.step(
        {**CANARY_ENV},
        command="apply",
        files="sources.yaml",
        account="main",
        expect_digest=reviewed,
    )
    assert apply.returncode == 0, apply.stdout + apply.stderr
    assert apply.outputs["exit-code"] == "0"
    assert len(writes_since(emulator_store, mark)) >= 2
    assert {s.name for s in emulator_store.sources.values()} >= {"Products", "Marketing"}


def test_a_stale_digest_applies_nothing_and_puts_the_new_plan_in_the_summary(
    runner: FakeRunner, emulator_store: SourceStore
) -> None:
    _sources(runner, "Products")
    plan = runner.step({**CANARY_ENV}, command="plan", files="sources.yaml", account="main")
    reviewed = plan.outputs["digest"]
    # Another pull request merged first: the file now holds one more source.
    _sources(runner, "Products", "Marketing")

    mark = len(emulator_store.request_log)
    apply = runner.step(
        {**CANARY_ENV},
        command="apply",
        files="sources.yaml",
        account="main",
        expect_digest=reviewed,
    )
    assert apply.returncode == 4
    assert apply.outputs["exit-code"] == "4"
    assert writes_since(emulator_store, mark) == []
    assert "::error title=imgix-reconciler::the plan's digest is sha256:" in apply.stderr
    assert apply.summary.startswith(MARKER)
    assert "Marketing" in apply.summary and "| 2 | 0 | 0 | 0 |" in apply.summary


def test_apply_without_a_reviewed_digest_refuses(runner: FakeRunner) -> None:
    _sources(runner, "Products")
    apply = runner.step({**CANARY_ENV}, command="apply", files="sources.yaml")
    assert apply.returncode == 1
    assert "apply needs expect-digest" in apply.stdout


def test_a_follow_up_applies_what_is_left_of_the_reviewed_plan_only(
    runner: FakeRunner, emulator_store: SourceStore, emulator_url: str
) -> None:
    _sources(runner, "Products", "Marketing", "Uploads")
    first = runner.step({**CANARY_ENV}, command="plan", files="sources.yaml", account="main")
    reviewed_plan = runner.temp / "reviewed.json"
    reviewed_plan.write_text(Path(first.outputs["json-plan"]).read_text("utf-8"))
    # The first apply stopped for time after one source (here: --target does the stopping).
    subprocess.run(
        [
            sys.executable,
            "-m",
            "reconciler",
            "apply",
            "sources.yaml",
            "--target",
            "Products",
            "--auto-approve",
            "--api-url",
            emulator_url,
        ],
        cwd=runner.workspace,
        env=child_env(CANARY_ENV),
        capture_output=True,
        check=True,
        timeout=60,
    )
    follow_up = runner.step(
        {**CANARY_ENV}, command="apply", files="sources.yaml", reviewed_plan=str(reviewed_plan)
    )
    assert follow_up.returncode == 0, follow_up.stdout + follow_up.stderr
    assert {s.name for s in emulator_store.sources.values()} == {"Products", "Marketing", "Uploads"}

    # Something the reviewer never saw is refused, with nothing written.
    _sources(runner, "Products", "Marketing", "Uploads", "Archive")
    mark = len(emulator_store.request_log)
    refused = runner.step(
        {**CANARY_ENV}, command="apply", files="sources.yaml", reviewed_plan=str(reviewed_plan)
    )
    assert refused.returncode == 4
    assert "actions the reviewed plan did not" in refused.stderr
    assert writes_since(emulator_store, mark) == []


def test_a_job_without_api_key_validates_with_annotations(runner: FakeRunner) -> None:
    (runner.workspace / "sources.yaml").write_text(
        (ROOT / "tests" / "fixtures" / "invalid_cache_ttl.yaml").read_text("utf-8")
    )
    step = runner.step({"IMGIX_API_KEY": None}, command="plan", files="sources.yaml", account="eu")
    assert step.returncode == 1
    assert step.outputs["planned"] == "false"
    assert step.outputs["exit-code"] == "1"
    assert "::error file=sources.yaml,line=10,col=24," in step.stderr
    result = json.loads(Path(step.outputs["result-directory"], "result.json").read_text())
    assert result == {"account": "eu", "command": "plan", "exit_code": 1, "planned": False}


def test_drift_reports_through_outputs_and_a_markdown_report(
    runner: FakeRunner, emulator_store: SourceStore
) -> None:
    _sources(runner, "Products")
    step = runner.step({**CANARY_ENV}, command="drift", files="sources.yaml", account="main")
    assert step.returncode == 0, step.stderr
    assert (step.outputs["exit-code"], step.outputs["has-changes"]) == ("2", "true")
    report = Path(step.outputs["markdown-plan"]).read_text("utf-8")
    assert report.startswith("<!-- imgix-reconciler:drift -->\n")
    assert "| `main` | drift | 1 | 0 | 0 | 0 |" in report


def test_source_secrets_come_from_one_multi_line_secret(runner: FakeRunner) -> None:
    _sources(runner, "Products")
    lines = "\n".join(f"{name}={value}" for name, value in CANARY_ENV.items())
    unreviewed = "sha256:" + "0" * 64
    step = runner.step(
        {"IMGIX_SOURCE_SECRETS": lines},
        command="apply",
        files="sources.yaml",
        expect_digest=unreviewed,
    )
    # apply needs every secret: it got them, planned, and only the digest refused it.
    assert step.returncode == 4, step.stderr
    assert "::add-mask::" + CANARY_ENV["E2E_S3_SECRET_KEY"] in step.stderr
    # Saved from a Windows editor: each line ends in CR LF, and the CR is no part of a value.
    windows = "\r\n".join(f"{name}={value}" for name, value in CANARY_ENV.items()) + "\r\n"
    step = runner.step(
        {"IMGIX_SOURCE_SECRETS": windows},
        command="apply",
        files="sources.yaml",
        expect_digest=unreviewed,
    )
    assert step.returncode == 4, step.stderr
    assert "::add-mask::" + CANARY_ENV["E2E_S3_SECRET_KEY"] + "\n" in step.stderr
    assert "%0D" not in step.stderr  # no value was read with the CR (masked as `value%0D`)
    bad = runner.step({"IMGIX_SOURCE_SECRETS": "PATH=/tmp"}, command="plan", files="sources.yaml")
    assert bad.returncode == 1 and "may not set PATH" in bad.stdout


# --------------------------------------------------------------------------- talking to GitHub


class FakeGitHub:
    """`gh` on PATH answering from a state file (tests/fake_gh.py): comments and issues."""

    def __init__(self, root: Path) -> None:
        self.bin = root / "fake-bin"
        self.bin.mkdir()
        gh = self.bin / "gh"
        gh.write_text(
            f'#!/bin/sh\nexec "{sys.executable}" "{Path(__file__).parent / "fake_gh.py"}" "$@"\n'
        )
        gh.chmod(0o755)
        self.state_path = root / "github-state.json"
        self.save({"comments": {}, "issues": [], "pulls": [], "calls": [], "next_id": 100})

    @property
    def state(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.state_path.read_text("utf-8"))
        return loaded

    def save(self, state: dict[str, Any]) -> None:
        self.state_path.write_text(json.dumps(state), encoding="utf-8")

    def env(self, runner: FakeRunner, **extra: str) -> dict[str, str | None]:
        return {
            "PATH": f"{self.bin}{os.pathsep}{os.environ['PATH']}",
            "FAKE_GH_STATE": str(self.state_path),
            "GH_TOKEN": "fake-token",
            "RESULTS": str(runner.temp / "imgix-reconciler"),
            "ACCOUNTS": '[{"name": "main", "files": "sources.yaml"}]',
            "GITHUB_WORKFLOW_REF": "acme/images/.github/workflows/imgix.yml@refs/pull/7/merge",
            **extra,
        }


@pytest.fixture
def github(tmp_path: Path) -> FakeGitHub:
    if shutil.which("jq") is None:
        message = "jq is not installed (bash .ci/run installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return FakeGitHub(tmp_path)


def test_one_comment_per_pull_request_updated_in_place(
    runner: FakeRunner, github: FakeGitHub
) -> None:
    _sources(runner, "Products")
    runner.step({**CANARY_ENV}, command="plan", files="sources.yaml", account="main")
    # Someone else's comment that starts with the marker is never the one updated.
    state = github.state
    state["comments"]["7"] = [{"id": 1, "user": {"login": "mallory"}, "body": MARKER + "\nfake"}]
    github.save(state)
    env = github.env(runner)

    first = runner.script("comment.sh", env)
    assert first.returncode == 0, first.stderr
    _sources(runner, "Products", "Marketing")
    runner.step({**CANARY_ENV}, command="plan", files="sources.yaml", account="main")
    second = runner.script("comment.sh", env)
    assert second.returncode == 0, second.stderr

    thread = github.state["comments"]["7"]  # the event payload's pull request
    assert [c["id"] for c in thread] == [1, 101]
    assert thread[0]["body"] == MARKER + "\nfake"
    body = thread[1]["body"]
    assert body.startswith(KEYED + "\n### imgix-reconciler plan: 1 account")
    assert "| `main` | changes | 2 | 0 | 0 | 0 |" in body
    assert "https://github.com/acme/images/actions/runs/1234" in body
    writes = [c["method"] for c in github.state["calls"] if c["method"] != "GET"]
    assert writes == ["POST", "PATCH"]


def test_a_read_only_token_puts_the_comment_in_the_summary(
    runner: FakeRunner, github: FakeGitHub
) -> None:
    (runner.workspace / "sources.yaml").write_text(sources_yaml("Products"))
    runner.step({"IMGIX_API_KEY": None}, command="plan", files="sources.yaml", account="main")
    fork = {"head": {"repo": {"full_name": "mallory/images"}}, "base": {"repo": BASE_REPO}}
    runner.event.write_text(json.dumps({"pull_request": {"number": 7, **fork}}), "utf-8")
    state = github.state
    state["read_only"] = True
    github.save(state)
    step = runner.script("comment.sh", github.env(runner))
    assert step.returncode == 0, step.stderr
    assert "::warning title=imgix-reconciler::cannot comment on pull request #7" in step.stdout
    assert "validated only (no API key)" in step.summary
    assert "a maintainer runs the plan" not in step.summary  # worded for the reader
    assert "`pull-request` set to this pull request's number" in step.summary


def test_a_comment_that_cannot_be_posted_on_a_pull_request_of_the_repository_fails_saying_why(
    runner: FakeRunner, github: FakeGitHub
) -> None:
    # Not a fork: the caller's job lacks `pull-requests: write`, or GitHub refused the
    # write. Without the comment no digest is recorded and the merge would apply nothing.
    _sources(runner, "Products")
    runner.step({**CANARY_ENV}, command="plan", files="sources.yaml", account="main")
    same = {"head": {"repo": BASE_REPO}, "base": {"repo": BASE_REPO}}
    runner.event.write_text(json.dumps({"pull_request": {"number": 7, **same}}), "utf-8")
    state = github.state
    state["read_only"] = True
    github.save(state)
    step = runner.script("comment.sh", github.env(runner))
    assert step.returncode == 1
    assert "HTTP 403: Resource not accessible by integration" in step.stderr  # gh's reason
    assert "::error title=imgix-reconciler::cannot post the plan comment on pull request #7" in (
        step.stdout
    )
    assert "pull-requests: write" in step.stdout and "fork" not in step.stdout
    assert "| `main` | changes |" in step.summary  # the plan is still there to read
    assert "fake-token" not in step.stdout + step.stderr + step.summary
    # Dependabot's pull requests run like a fork's: a read-only token, GitHub's doing.
    dependabot = runner.script("comment.sh", github.env(runner, GITHUB_ACTOR="dependabot[bot]"))
    assert dependabot.returncode == 0, dependabot.stdout
    assert "::warning title=imgix-reconciler::cannot comment on pull request #7" in (
        dependabot.stdout
    )


BASE_REPO = {"full_name": "acme/images"}
FORK_SHA = "ab" * 20


def _fork_run(github: FakeGitHub, runner: FakeRunner, **event: str) -> dict[str, str | None]:
    """The fork notice job's environment: the finished run of a fork's pull request."""
    run = {
        "RUN_ID": "555",
        "RUN_STARTED": "2026-11-30T01:00:00Z",
        "CONCLUSION": "failure",
        "HEAD_OWNER": "mallory",
        "HEAD_BRANCH": "patch-1",
        "HEAD_SHA": FORK_SHA,
        "PLAN_WORKFLOW": "imgix",
        "PLAN_WORKFLOW_PATH": ".github/workflows/imgix.yml",
        **{name.upper(): value for name, value in event.items()},
    }
    return {**github.env(runner), **run, "IMGIX_RECONCILER_VENV": sys.prefix}


def _fork_pull_open(github: FakeGitHub, label: str = "mallory:patch-1", number: int = 9) -> None:
    """A pull request from a fork is open, its head at FORK_SHA."""
    state = github.state
    state["open_pulls"] = [{"number": number, "head": {"label": label, "sha": FORK_SHA}}]
    github.save(state)


def test_a_forks_pull_request_gets_the_notice_then_the_maintainers_plan_in_one_comment(
    runner: FakeRunner, github: FakeGitHub
) -> None:
    _fork_pull_open(github)

    notice = runner.script("fork-notice.sh", _fork_run(github, runner))
    assert notice.returncode == 0, notice.stderr
    [posted] = github.state["comments"]["9"]
    assert posted["body"].startswith(KEYED + "\n### imgix-reconciler plan: not run")
    assert "**failed (the run's annotations show where)**" in posted["body"]
    assert "(https://github.com/acme/images/actions/runs/555)" in posted["body"]
    assert "run the `imgix` workflow with `pull-request` set to" in posted["body"]
    [lookup] = [c for c in github.state["calls"] if c["path"].endswith("/pulls")]
    assert lookup["fields"] == {"state": "open", "head": "mallory:patch-1"}

    # The maintainer's run (`pull-request: 9`) replaces the notice with the plan.
    _sources(runner, "Products")
    runner.step({**CANARY_ENV}, command="plan", files="sources.yaml", account="main")
    planned = runner.script("comment.sh", {**github.env(runner), "PULL_REQUEST": "9"})
    assert planned.returncode == 0, planned.stderr
    [updated] = github.state["comments"]["9"]
    assert updated["id"] == posted["id"]
    assert "| `main` | changes | 1 | 0 | 0 | 0 |" in updated["body"]


def test_the_fork_notice_never_replaces_a_maintainers_plan_made_after_the_run_started(
    runner: FakeRunner, github: FakeGitHub
) -> None:
    state = github.state
    state["open_pulls"] = [{"number": 9, "head": {"label": "mallory:patch-1", "sha": FORK_SHA}}]
    state["now"] = "2026-11-30T01:05:00Z"  # the maintainer planned while the fork's run ran
    github.save(state)
    _sources(runner, "Products")
    runner.step({**CANARY_ENV}, command="plan", files="sources.yaml", account="main")
    assert runner.script("comment.sh", {**github.env(runner), "PULL_REQUEST": "9"}).returncode == 0
    [planned] = github.state["comments"]["9"]

    kept = runner.script("fork-notice.sh", _fork_run(github, runner))  # run started 01:00
    assert kept.returncode == 0 and "newer than this run: kept" in kept.stdout
    assert github.state["comments"]["9"] == [planned]

    # A run of a later push (started after the plan): the plan is of an older commit.
    later = runner.script(
        "fork-notice.sh", _fork_run(github, runner, run_started="2026-11-30T02:00:00Z")
    )
    assert later.returncode == 0, later.stderr
    [replaced] = github.state["comments"]["9"]
    assert replaced["id"] == planned["id"] and "plan: not run" in replaced["body"]
    bad_time = runner.script("fork-notice.sh", _fork_run(github, runner, run_started="soon"))
    assert bad_time.returncode == 1 and "not a time" in bad_time.stdout


def test_the_fork_notice_takes_nothing_from_the_fork_but_checked_values(
    runner: FakeRunner, github: FakeGitHub, tmp_path: Path
) -> None:
    hostile = 'x";touch "$PWNED";echo "$(touch $PWNED)`touch $PWNED`'
    _fork_pull_open(github, f"mallory:{hostile}")
    pwned = tmp_path / "pwned"

    branch = runner.script(
        "fork-notice.sh", {**_fork_run(github, runner, head_branch=hostile), "PWNED": str(pwned)}
    )
    assert branch.returncode == 0, branch.stderr
    assert not pwned.exists()
    [posted] = github.state["comments"]["9"]
    assert hostile not in posted["body"] and "mallory" not in posted["body"]

    # A conclusion GitHub never sends is "unknown"; malformed ids and commits stop the job.
    odd_conclusion = {"head_branch": hostile, "conclusion": "**pwned** [x](y)"}
    odd = runner.script("fork-notice.sh", _fork_run(github, runner, **odd_conclusion))
    assert odd.returncode == 0 and "**unknown**" in github.state["comments"]["9"][0]["body"]
    for field, value in [("run_id", "1 2"), ("head_sha", "HEAD"), ("head_owner", "a/b")]:
        malformed = {"head_branch": hostile, field: value}
        refused = runner.script("fork-notice.sh", _fork_run(github, runner, **malformed))
        assert refused.returncode == 1 and "::error title=imgix-reconciler::" in refused.stdout

    # Pushed again since the run: no open pull request has that commit, nothing is posted.
    writes = len([c for c in github.state["calls"] if c["method"] != "GET"])
    pushed_again = {"head_branch": hostile, "head_sha": "cd" * 20}
    stale = runner.script("fork-notice.sh", _fork_run(github, runner, **pushed_again))
    assert stale.returncode == 0 and "nothing to post" in stale.stdout
    assert len([c for c in github.state["calls"] if c["method"] != "GET"]) == writes


def test_the_reviewed_digest_is_read_from_the_merged_pull_request(
    runner: FakeRunner, github: FakeGitHub
) -> None:
    _sources(runner, "Products")
    plan = runner.step({**CANARY_ENV}, command="plan", files="sources.yaml", account="main")
    env = github.env(runner)
    assert runner.script("comment.sh", env).returncode == 0
    state = github.state
    state["pulls"] = [{"number": 7, "merged_at": "2026-11-30T05:00:00Z"}]
    github.save(state)
    install = {"IMGIX_RECONCILER_VENV": sys.prefix, "ACCOUNT": "main"}
    found = runner.script("reviewed-digest.sh", {**env, **install})
    assert (found.returncode, found.stdout.strip()) == (0, plan.outputs["digest"])
    state["pulls"] = []
    github.save(state)
    unreviewed = runner.script("reviewed-digest.sh", {**env, **install})
    assert unreviewed.returncode == 1 and "came from no merged pull request" in unreviewed.stdout


def test_drift_opens_updates_then_closes_one_issue(
    runner: FakeRunner, github: FakeGitHub, emulator_url: str
) -> None:
    _sources(runner, "Products")
    env = github.env(runner)
    runner.step({**CANARY_ENV}, command="drift", files="sources.yaml", account="main")
    assert runner.script("drift-issue.sh", env).returncode == 0
    assert runner.script("drift-issue.sh", env).returncode == 0  # the next day: still drifted
    (issue,) = github.state["issues"]
    assert issue["state"] == "open" and issue["body"].startswith(
        "<!-- imgix-reconciler:drift key=imgix -->\n### imgix-reconciler drift: 1 account"
    )

    # Back in sync once the missing source is made.
    subprocess.run(
        [sys.executable, "-m", "reconciler", "apply", "sources.yaml", "--auto-approve",
         "--api-url", emulator_url],
        cwd=runner.workspace, env=child_env(CANARY_ENV), capture_output=True, check=True,
        timeout=60,
    )  # fmt: skip
    runner.step({**CANARY_ENV}, command="drift", files="sources.yaml", account="main")
    closed = runner.script("drift-issue.sh", env)
    assert closed.returncode == 0, closed.stderr
    (issue,) = github.state["issues"]
    assert issue["state"] == "closed"
    assert github.state["comments"][str(issue["number"])][0]["body"].startswith("Back in sync")


def test_no_action_script_pipes_into_a_reader_that_stops_early() -> None:
    # Under pipefail, `gh api --paginate ... | head -n 1` fails the job when head closes
    # the pipe before gh is done (gh, a Go program, dies of the SIGPIPE): with two drift
    # issues open, or a long page. Our fake gh (Python) cannot show it, so the scripts
    # are read: a reader that consumes all (`sed -n 1p`) is used instead.
    for script in sorted((ROOT / "action").glob("*.sh")):
        text = script.read_text("utf-8")
        assert "pipefail" in text, script.name
        for number, line in enumerate(text.splitlines(), 1):
            code = line.split("#", 1)[0]
            stops_early = re.search(r"(?<!\|)\|\s*(head|grep -m|grep -q)\s", code)
            assert not stops_early, f"{script.name}:{number}"


# What a pull request from a fork can hold at the root of its files: modules named like the
# tool's and the standard library's. A maintainer's plan of it runs the action in that
# checkout, with the account's secrets in the environment.
PLANTED = {
    "reconciler/__init__.py": "",
    "reconciler/__main__.py": "import os\nopen('pwned', 'w').write(os.environ['IMGIX_API_KEY'])\n",
    "reconciler/github.py": "import os\nopen('pwned', 'w').write(os.environ['IMGIX_API_KEY'])\n",
    "json.py": "import os\nopen('pwned', 'w').write(os.environ['IMGIX_API_KEY'])\n",
}


def test_modules_in_the_planned_checkout_never_run_in_place_of_the_tool(
    runner: FakeRunner,
) -> None:
    _sources(runner, "Products")
    for name, text in PLANTED.items():
        (runner.workspace / name).parent.mkdir(exist_ok=True)
        (runner.workspace / name).write_text(text, encoding="utf-8")

    plan = runner.step({**CANARY_ENV}, command="plan", files="sources.yaml", account="main")

    assert not (runner.workspace / "pwned").exists()
    assert plan.returncode == 0, plan.stderr
    assert plan.outputs["exit-code"] == "2"
    assert plan.outputs["digest"].startswith("sha256:")


def test_every_python_the_action_starts_is_isolated_from_the_working_directory() -> None:
    # `python -m` and `python -c` put the working directory (the checked-out files) first
    # on the module path; `-I` leaves it out.
    for script in sorted((ROOT / "action").glob("*.sh")):
        for number, line in enumerate(script.read_text("utf-8").splitlines(), 1):
            code = line.split("#", 1)[0]
            for start in ("python3 -", 'python" -', "python -"):
                at = code.find(start)
                if at >= 0:
                    flags = code[at + len(start) - 1 :].split()
                    assert flags[0] == "-I", f"{script.name}:{number}: {line.strip()}"


def test_an_account_whose_job_left_no_result_never_counts_as_in_sync(
    runner: FakeRunner, github: FakeGitHub, emulator_url: str
) -> None:
    # The schedule's `eu` job timed out (or was cancelled, or its environment refused it)
    # before writing a result; `main` is back in sync. The drift issue stays open.
    _sources(runner, "Products")
    both = '[{"name": "main", "files": "sources.yaml"}, {"name": "eu", "files": "eu.yaml"}]'
    env = github.env(runner, ACCOUNTS=both)
    runner.step({**CANARY_ENV}, command="drift", files="sources.yaml", account="main")
    assert runner.script("drift-issue.sh", env).returncode == 1  # eu: no result
    state = github.state
    issue = {"number": 5, "user": {"login": BOT}, "state": "open"}
    state["issues"] = [{**issue, "body": "<!-- imgix-reconciler:drift -->\nold"}]
    github.save(state)
    subprocess.run(
        [sys.executable, "-m", "reconciler", "apply", "sources.yaml", "--auto-approve",
         "--api-url", emulator_url],
        cwd=runner.workspace, env=child_env(CANARY_ENV), capture_output=True, check=True,
        timeout=60,
    )  # fmt: skip
    runner.step({**CANARY_ENV}, command="drift", files="sources.yaml", account="main")
    done = runner.script("drift-issue.sh", env)
    assert done.returncode == 1
    assert "::error title=imgix-reconciler::no result from account eu" in done.stdout
    assert "| `eu` | no result (its job failed or was cancelled) |" in done.summary
    (issue,) = github.state["issues"]
    assert issue["state"] == "open" and "5" not in github.state["comments"]


def test_the_plan_comment_names_an_account_whose_job_left_no_result(
    runner: FakeRunner, github: FakeGitHub
) -> None:
    _sources(runner, "Products")
    runner.step({**CANARY_ENV}, command="plan", files="sources.yaml", account="main")
    both = '[{"name": "main", "files": "sources.yaml"}, {"name": "eu", "files": "eu.yaml"}]'
    done = runner.script("comment.sh", github.env(runner, ACCOUNTS=both))
    assert done.returncode == 0, done.stderr
    (comment,) = github.state["comments"]["7"]
    assert "### imgix-reconciler plan: 2 accounts" in comment["body"]
    assert "| `eu` | no result (its job failed or was cancelled) |" in comment["body"]
    assert "account=eu" not in comment["body"]  # no digest: its apply refuses


def test_a_plan_of_a_commit_the_pull_request_moved_past_never_replaces_the_comment(
    runner: FakeRunner, github: FakeGitHub
) -> None:
    # Two pushes in a row: the run of the first finishes last. Its plan is of a commit
    # the pull request no longer has, so it leaves the newer run's comment alone.
    old, new = "a" * 40, "b" * 40
    event = {"pull_request": {"number": 7, "head": {"sha": old}}}
    runner.event.write_text(json.dumps(event), encoding="utf-8")
    state = github.state
    state["pull_heads"] = {"7": new}
    github.save(state)
    _sources(runner, "Products")
    runner.step({**CANARY_ENV}, command="plan", files="sources.yaml", account="main")
    stale = runner.script("comment.sh", github.env(runner))
    assert stale.returncode == 0, stale.stderr
    assert f"pull request #7 is at {new} now, this run planned {old}" in stale.stdout
    assert [c["method"] for c in github.state["calls"] if c["method"] != "GET"] == []
    state = github.state
    state["pull_heads"] = {"7": old}
    github.save(state)
    current = runner.script("comment.sh", github.env(runner))
    assert current.returncode == 0, current.stderr
    assert len(github.state["comments"]["7"]) == 1


def test_a_maintainers_plan_of_a_commit_the_fork_moved_past_never_replaces_the_comment(
    runner: FakeRunner, github: FakeGitHub
) -> None:
    # The maintainer's run planned the head its first job resolved; the fork pushed since.
    old, new = "c" * 40, "d" * 40
    runner.event.write_text(json.dumps({"inputs": {"pull-request": "7"}}), encoding="utf-8")
    state = github.state
    state["pull_heads"] = {"7": new}
    github.save(state)
    _sources(runner, "Products")
    runner.step({**CANARY_ENV}, command="plan", files="sources.yaml", account="main")
    dispatch = github.env(runner, PULL_REQUEST="7", PLANNED_HEAD=old)
    stale = runner.script("comment.sh", dispatch)
    assert stale.returncode == 0, stale.stderr
    assert f"pull request #7 is at {new} now, this run planned {old}" in stale.stdout
    assert "7" not in github.state["comments"]
    current = runner.script("comment.sh", {**dispatch, "PLANNED_HEAD": new})
    assert current.returncode == 0, current.stderr
    assert len(github.state["comments"]["7"]) == 1


# --------------------------------------------------------------------------- two caller workflows

PROD_REF = "acme/images/.github/workflows/imgix-prod.yml@refs/pull/7/merge"
STAGING_REF = "acme/images/.github/workflows/imgix-staging.yml@refs/pull/7/merge"


def _caller_plan(
    runner: FakeRunner, github: FakeGitHub, workflow_ref: str, account: str, *names: str
) -> tuple[Step, dict[str, str | None]]:
    """One caller workflow's plan of pull request 7: its account's job, then its comment env."""
    _sources(runner, *names)
    plan = runner.step({**CANARY_ENV}, command="plan", files="sources.yaml", account=account)
    assert plan.returncode == 0, plan.stderr
    # Each caller's comment job downloads only its own accounts' results.
    results = runner.temp / f"results-{account}"
    shutil.rmtree(results, ignore_errors=True)
    shutil.copytree(plan.outputs["result-directory"], results / account)
    env = github.env(
        runner,
        RESULTS=str(results),
        ACCOUNTS=json.dumps([{"name": account, "files": "sources.yaml"}]),
        GITHUB_WORKFLOW_REF=workflow_ref,
    )
    return plan, env


def _at(github: FakeGitHub, now: str) -> None:
    state = github.state
    state["now"] = now
    github.save(state)


def test_two_caller_workflows_keep_a_comment_each_and_each_apply_finds_its_digest(
    runner: FakeRunner, github: FakeGitHub
) -> None:
    _at(github, "2026-11-30T01:00:00Z")
    prod, prod_env = _caller_plan(runner, github, PROD_REF, "prod", "Products")
    assert runner.script("comment.sh", prod_env).returncode == 0
    _at(github, "2026-11-30T01:01:00Z")
    staging, staging_env = _caller_plan(
        runner, github, STAGING_REF, "staging", "Products", "Marketing"
    )
    assert runner.script("comment.sh", staging_env).returncode == 0

    # A push: each caller plans again and updates its own comment, never the other's.
    _at(github, "2026-11-30T02:00:00Z")
    prod, prod_env = _caller_plan(runner, github, PROD_REF, "prod", "Products", "Blog")
    assert runner.script("comment.sh", prod_env).returncode == 0
    _at(github, "2026-11-30T02:01:00Z")
    staging, staging_env = _caller_plan(runner, github, STAGING_REF, "staging", "Products")
    assert runner.script("comment.sh", staging_env).returncode == 0

    first, second = github.state["comments"]["7"]
    assert (first["id"], second["id"]) == (101, 102)
    assert first["body"].startswith("<!-- imgix-reconciler:plan key=imgix-prod -->\n")
    assert second["body"].startswith("<!-- imgix-reconciler:plan key=imgix-staging -->\n")
    assert "| `prod` | changes | 2 | 0 | 0 | 0 |" in first["body"]
    assert "| `staging` | changes | 1 | 0 | 0 | 0 |" in second["body"]
    writes = [c["method"] for c in github.state["calls"] if c["method"] != "GET"]
    assert writes == ["POST", "POST", "PATCH", "PATCH"]

    # After the merge, each apply finds its account's digest, though it is not in the
    # last comment (prod's) or the last-updated one (staging's).
    state = github.state
    state["pulls"] = [{"number": 7, "merged_at": "2026-11-30T05:00:00Z"}]
    github.save(state)
    for account, plan in [("prod", prod), ("staging", staging)]:
        apply_env = {**github.env(runner), "IMGIX_RECONCILER_VENV": sys.prefix, "ACCOUNT": account}
        found = runner.script("reviewed-digest.sh", apply_env)
        assert (found.returncode, found.stdout.strip()) == (0, plan.outputs["digest"])
    assert prod.outputs["digest"] != staging.outputs["digest"]


def test_an_unkeyed_comment_of_an_older_version_is_updated_not_doubled(
    runner: FakeRunner, github: FakeGitHub
) -> None:
    state = github.state
    older = {"id": 50, "user": {"login": BOT}, "body": MARKER + "\nthe plan of an older version"}
    state["comments"]["7"] = [older]
    github.save(state)
    _, prod_env = _caller_plan(runner, github, PROD_REF, "prod", "Products")
    assert runner.script("comment.sh", prod_env).returncode == 0
    [updated] = github.state["comments"]["7"]
    assert updated["id"] == 50
    assert updated["body"].startswith("<!-- imgix-reconciler:plan key=imgix-prod -->\n")

    # A second caller added later posts a comment of its own: the first keeps its one.
    _, staging_env = _caller_plan(runner, github, STAGING_REF, "staging", "Products")
    assert runner.script("comment.sh", staging_env).returncode == 0
    ids = [c["id"] for c in github.state["comments"]["7"]]
    assert ids == [50, 101]
    assert "key=imgix-prod" in github.state["comments"]["7"][0]["body"]


def test_a_forged_key_cannot_break_out_of_the_html_comment(
    runner: FakeRunner, github: FakeGitHub
) -> None:
    hostile = 'acme/images/.github/workflows/x --><img src=x onerror="y">.yml@refs/heads/main'
    _, env = _caller_plan(runner, github, hostile, "prod", "Products")
    assert runner.script("comment.sh", env).returncode == 0
    [posted] = github.state["comments"]["7"]
    first_line = posted["body"].split("\n", 1)[0]
    assert re.fullmatch(r"<!-- imgix-reconciler:plan key=sha256-[0-9a-f]{16} -->", first_line)
    assert "onerror" not in posted["body"] and "<img" not in posted["body"]

    # A body whose first line is no checked marker is never posted (its key would reach jq).
    forged = runner.temp / "forged.md"
    forged.write_text('<!-- imgix-reconciler:plan key=a") | halt --> -->\nx\n', "utf-8")
    refused = _upsert(runner, github, forged)
    assert refused.returncode == 1 and "does not start with a plan marker" in refused.stdout
    assert len(github.state["comments"]["7"]) == 1


def _upsert(runner: FakeRunner, github: FakeGitHub, body: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(ROOT / "action" / "upsert-comment.sh"), "7", str(body)],
        env=child_env({**github.env(runner), "GITHUB_REPOSITORY": "acme/images"}),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_fork_notice_replaces_only_its_own_callers_comment(
    runner: FakeRunner, github: FakeGitHub
) -> None:
    _fork_pull_open(github, number=7)
    _, prod_env = _caller_plan(runner, github, PROD_REF, "prod", "Products")
    assert runner.script("comment.sh", {**prod_env, "PULL_REQUEST": "7"}).returncode == 0
    run = _fork_run(
        github, runner, plan_workflow_path=".github/workflows/imgix-staging.yml",
        run_started="2026-11-30T02:00:00Z",
    )  # fmt: skip
    notice = runner.script("fork-notice.sh", run)
    assert notice.returncode == 0, notice.stderr
    plan, staging_notice = github.state["comments"]["7"]
    assert plan["body"].startswith("<!-- imgix-reconciler:plan key=imgix-prod -->\n")
    assert "account=prod" in plan["body"]
    assert staging_notice["body"].startswith(
        "<!-- imgix-reconciler:plan key=imgix-staging -->\n### imgix-reconciler plan: not run"
    )


def test_two_drift_callers_keep_an_issue_each(
    runner: FakeRunner, github: FakeGitHub, emulator_url: str
) -> None:
    # Staging drifted; prod is in sync: prod's check never closes staging's issue.
    _sources(runner, "Products")
    runner.step({**CANARY_ENV}, command="drift", files="sources.yaml", account="main")
    staging = github.env(runner, GITHUB_WORKFLOW_REF=STAGING_REF)
    assert runner.script("drift-issue.sh", staging).returncode == 0
    (issue,) = github.state["issues"]
    assert issue["body"].startswith("<!-- imgix-reconciler:drift key=imgix-staging -->\n")
    assert issue["title"].endswith("(imgix-staging)")

    subprocess.run(
        [sys.executable, "-m", "reconciler", "apply", "sources.yaml", "--auto-approve",
         "--api-url", emulator_url],
        cwd=runner.workspace, env=child_env(CANARY_ENV), capture_output=True, check=True,
        timeout=60,
    )  # fmt: skip
    runner.step({**CANARY_ENV}, command="drift", files="sources.yaml", account="main")
    prod = github.env(runner, GITHUB_WORKFLOW_REF=PROD_REF)
    assert runner.script("drift-issue.sh", prod).returncode == 0
    (issue,) = github.state["issues"]
    assert issue["state"] == "open" and str(issue["number"]) not in github.state["comments"]

    # An unkeyed issue of an older version is taken over by the next check that drifts.
    state = github.state
    state["issues"] = [{"number": 5, "user": {"login": BOT}, "state": "open",
                        "body": "<!-- imgix-reconciler:drift -->\nold"}]  # fmt: skip
    github.save(state)
    _sources(runner, "Products", "Marketing")
    runner.step({**CANARY_ENV}, command="drift", files="sources.yaml", account="main")
    assert runner.script("drift-issue.sh", prod).returncode == 0
    (issue,) = github.state["issues"]
    assert issue["number"] == 5
    assert issue["body"].startswith("<!-- imgix-reconciler:drift key=imgix-prod -->\n")


# --------------------------------------------------------------------------- hostile text

# Text a pull request's author (source names) or the imgix API can put before the scripts:
# each one would run, split, glob or become a workflow command if handled raw.
HOSTILE = [
    "$(touch pwned)",
    "`touch pwned`",
    "x'; touch pwned; echo '",
    'x" && touch pwned && echo "',
    "--help",
    "-F body=@/etc/passwd",
    "* ? [a-z] ~",
    "::warning::forged",
    "a\n::error::forged",
    "a\r::error::forged",
    "%0A::error::forged",
    "<!-- imgix-reconciler:drift key=imgix -->",
    "L" * 3000,
]


def _no_forged_command(step: Step) -> None:
    """No line the runner reads (it ends lines at CR too) is a command the text made."""
    for line in re.split(r"\r\n|\r|\n", step.stdout + step.stderr):
        assert not (line.lstrip().startswith("::") and "forged" in line), line


def _hostile_yaml(*names: str) -> str:
    """A file of one source per name (a JSON string is a YAML scalar: each arrives as it is)."""
    block = sources_yaml("Products").removeprefix("version: 1\nsources:\n")
    return "version: 1\nsources:\n" + "".join(
        block.replace("name: Products", f"name: {json.dumps(name)}").replace(
            "e2e-products", f"e2e-products-{n}"
        )
        for n, name in enumerate(names)
    )


def test_a_drift_issue_of_hostile_source_names_holds_them_as_text(
    runner: FakeRunner, github: FakeGitHub
) -> None:
    # All the names in one file, one run: each would be a test of its own at 3 s apiece.
    write_sources(runner.workspace, _hostile_yaml(*HOSTILE))
    drift = runner.step({**CANARY_ENV}, command="drift", files="sources.yaml", account="main")
    _no_forged_command(drift)
    assert drift.outputs["exit-code"] == "2", drift.stdout  # any text is a source's name
    done = runner.script("drift-issue.sh", github.env(runner))
    assert done.returncode == 0, done.stderr
    _no_forged_command(done)
    assert not (runner.workspace / "pwned").exists() and not (runner.temp / "pwned").exists()
    (issue,) = github.state["issues"]
    assert "\n" not in issue["title"] and "\r" not in issue["title"]
    assert issue["title"] == "imgix drift: live sources differ from the files (imgix)"
    assert issue["body"].startswith("<!-- imgix-reconciler:drift key=imgix -->\n")
    # The body went whole through a file: the field holds it, no argument was split off.
    assert issue["body"] == (runner.temp / "imgix-reconciler-drift.md").read_text("utf-8")
    assert all(v not in issue["body"] for v in CANARY_ENV.values())
    # Shown, not run; `$` as an entity, so GitHub draws no math of it either.
    assert "<b>+ create</b> &#36;(touch pwned)</summary>" in issue["body"]
    assert f"| `main` | drift | {len(HOSTILE)} |" in issue["body"]

    # The next day the same issue is found (the name never confuses the search).
    assert runner.script("drift-issue.sh", github.env(runner)).returncode == 0
    assert len(github.state["issues"]) == 1


HOSTILE_REFS = [
    "acme/images/.github/workflows/--help@refs/heads/main",
    "--help",
    "-x",
    "acme/images/.github/workflows/$(touch pwned).yml@refs/heads/main",
    "acme/images/.github/workflows/`touch pwned`.yml@refs/heads/main",
    'acme/images/.github/workflows/a" | halt_error.yml@refs/heads/main',
    "acme/images/.github/workflows/a\n::error::forged.yml@refs/heads/main",
    "acme/images/.github/workflows/a\r::error::forged.yml@refs/heads/main",
    "acme/images/.github/workflows/*.yml@refs/heads/main",
    "acme/images/.github/workflows/" + "w" * 3000 + ".yml@refs/heads/main",
]


def test_a_hostile_workflow_ref_keys_one_issue_with_a_checked_name(
    runner: FakeRunner, github: FakeGitHub
) -> None:
    _sources(runner, "Products")
    runner.step({**CANARY_ENV}, command="drift", files="sources.yaml", account="main")
    for ref in HOSTILE_REFS:
        _one_issue_of_a_checked_key(runner, github, ref)


def _one_issue_of_a_checked_key(runner: FakeRunner, github: FakeGitHub, ref: str) -> None:
    state = github.state
    state["issues"] = []
    github.save(state)
    env = github.env(runner, GITHUB_WORKFLOW_REF=ref)
    for _ in range(2):  # opened, then found and updated
        done = runner.script("drift-issue.sh", env)
        assert done.returncode == 0, (ref, done.stderr)
        _no_forged_command(done)
    assert not (runner.workspace / "pwned").exists()
    (issue,) = github.state["issues"]
    key = re.fullmatch(
        r"imgix drift: live sources differ from the files \(([^()]*)\)", issue["title"]
    )
    assert key and re.fullmatch(r"[A-Za-z0-9._-]{1,64}", key[1]), issue["title"]
    assert issue["body"].startswith(f"<!-- imgix-reconciler:drift key={key[1]} -->\n")


def test_the_drift_issue_found_is_the_one_its_marker_opens_not_one_that_quotes_it(
    runner: FakeRunner, github: FakeGitHub
) -> None:
    own = "<!-- imgix-reconciler:drift key=imgix -->"
    decoys = [
        # Titles and bodies that hold this caller's search text, but not as their first line.
        {"title": f"imgix drift: live sources differ from the files (imgix) {own}",
         "body": f"<!-- imgix-reconciler:drift key=imgix-prod -->\n{own}\n"},
        {"title": "imgix drift: live sources differ from the files (imgix)",
         "body": f"quoted: {own}\n"},
        {"title": "(imgix)", "body": f"{own}-x\n"},
        {"title": own, "body": f"{own} \n"},
        {"title": "a user's", "body": f"{own}\nforged", "user": {"login": "mallory"}},
    ]  # fmt: skip
    state = github.state
    state["issues"] = [
        {"number": 10 + n, "user": {"login": BOT}, "state": "open", **d}
        for n, d in enumerate(decoys)
    ]
    state["issues"].append(
        {"number": 42, "user": {"login": BOT}, "state": "open", "title": "x",
         "body": f"{own}\nold report"}
    )  # fmt: skip
    github.save(state)
    bodies = {i["number"]: i["body"] for i in state["issues"]}
    _sources(runner, "Products")
    runner.step({**CANARY_ENV}, command="drift", files="sources.yaml", account="main")
    assert runner.script("drift-issue.sh", github.env(runner)).returncode == 0
    after = {i["number"]: i for i in github.state["issues"]}
    assert after[42]["body"].startswith(own + "\n### imgix-reconciler drift")
    assert all(after[n]["body"] == bodies[n] for n in bodies if n != 42)
    assert len(after) == len(bodies)  # updated, not opened anew


@pytest.mark.parametrize(
    "name", ["a\r::error::forged", "b%0D::error::forged", "c\n::warning::forged"]
)
def test_a_missing_account_with_a_hostile_name_is_refused_not_echoed(
    runner: FakeRunner, github: FakeGitHub, name: str
) -> None:
    _sources(runner, "Products")
    accounts = json.dumps([{"name": "main", "files": "sources.yaml"}, {"name": name}])
    runner.step({**CANARY_ENV}, command="drift", files="sources.yaml", account="main")
    done = runner.script("drift-issue.sh", github.env(runner, ACCOUNTS=accounts))
    # Refused before any message names it (the names are checked): the issue is left alone.
    assert done.returncode == 1 and "account names are letters" in done.stderr
    _no_forged_command(done)
    assert github.state["issues"] == [] and "Traceback" not in done.stderr


@pytest.mark.parametrize("account", ["--help", "-x", "$(touch pwned)"])
def test_the_reviewed_digest_of_a_flag_like_account_is_none(
    runner: FakeRunner, github: FakeGitHub, account: str
) -> None:
    state = github.state
    state["pulls"] = [{"number": 7, "merged_at": "2026-11-30T00:00:00Z"}]
    state["comments"]["7"] = [
        {"id": 1, "user": {"login": BOT}, "updated_at": "2026-11-30T00:00:00Z",
         "body": "<!-- imgix-reconciler:plan -->\nno digest\n"}
    ]  # fmt: skip
    github.save(state)
    done = runner.script("reviewed-digest.sh", github.env(runner, ACCOUNT=account))
    assert "Usage:" not in done.stdout and not (runner.workspace / "pwned").exists()
    assert done.stdout.strip() == "" or done.returncode != 0


def test_a_plan_comment_of_hostile_source_names_holds_them_as_text(
    runner: FakeRunner, github: FakeGitHub
) -> None:
    write_sources(runner.workspace, _hostile_yaml(*HOSTILE))
    plan = runner.step({**CANARY_ENV}, command="plan", files="sources.yaml", account="main")
    assert plan.outputs["exit-code"] == "2", plan.stdout
    for _ in range(2):  # posted, then found and updated in place
        done = runner.script("comment.sh", github.env(runner))
        assert done.returncode == 0, done.stderr
        _no_forged_command(done)
    assert not (runner.workspace / "pwned").exists() and not (runner.temp / "pwned").exists()
    (comment,) = github.state["comments"]["7"]
    assert comment["body"] == (runner.temp / "imgix-reconciler-comment.md").read_text("utf-8")
    assert comment["body"].startswith(KEYED + "\n")


@pytest.mark.parametrize(
    "event",
    [
        {"head_branch": "--help"},
        {"head_branch": "-F body=@/etc/passwd"},
        {"head_branch": "a\n::error::forged"},
        {"head_branch": "* [x]"},
        {"plan_workflow_path": "--help"},
        {"plan_workflow_path": ".github/workflows/$(touch pwned).yml"},
        {"plan_workflow": "--help"},
    ],
    ids=range(7),
)
def test_the_fork_notice_of_odd_event_values_posts_once_with_a_checked_key(
    runner: FakeRunner, github: FakeGitHub, event: dict[str, str]
) -> None:
    label = "mallory:" + event.get("head_branch", "patch-1")
    _fork_pull_open(github, label)
    done = runner.script("fork-notice.sh", _fork_run(github, runner, **event))
    assert done.returncode == 0, done.stderr
    _no_forged_command(done)
    assert not (runner.workspace / "pwned").exists()
    [lookup] = [c for c in github.state["calls"] if c["path"].endswith("/pulls")]
    assert lookup["fields"] == {"state": "open", "head": label}
    [posted] = github.state["comments"]["9"]
    first = posted["body"].split("\n", 1)[0]
    assert re.fullmatch(r"<!-- imgix-reconciler:plan key=[A-Za-z0-9._-]{1,64} -->", first)
    assert "Usage:" not in posted["body"]


def test_a_workflow_name_no_workflow_has_stops_the_fork_notice_unposted(
    runner: FakeRunner, github: FakeGitHub
) -> None:
    _fork_pull_open(github)
    odd = {"plan_workflow": "a\r::error::forged `touch pwned`"}
    done = runner.script("fork-notice.sh", _fork_run(github, runner, **odd))
    assert done.returncode == 1 and "--workflow is not a workflow name" in done.stderr
    _no_forged_command(done)
    assert "9" not in github.state["comments"] and not (runner.workspace / "pwned").exists()


@pytest.mark.parametrize("ref", ["--help", "-x"])
def test_a_flag_like_workflow_ref_keys_the_plan_comment_as_a_name(
    runner: FakeRunner, github: FakeGitHub, ref: str
) -> None:
    _sources(runner, "Products")
    runner.step({**CANARY_ENV}, command="plan", files="sources.yaml", account="main")
    done = runner.script("comment.sh", github.env(runner, GITHUB_WORKFLOW_REF=ref))
    assert done.returncode == 0, done.stderr
    (comment,) = github.state["comments"]["7"]
    assert comment["body"].startswith(f"<!-- imgix-reconciler:plan key={ref} -->\n")


# --------------------------------------------------------------------------- run.sh and
# upsert-comment.sh taken on their own, and the scripts' other paths


def _made_by_the_text(text: str) -> list[str]:
    """Lines the runner would read as a command the hostile text began (it ends lines at CR).

    An annotation of our own may name the text in its data or escaped properties; only a
    line that starts with the text's own command is a forged one.
    """
    lines = re.split(r"\r\n|\r|\n", text)
    return [line for line in lines if re.match(r"\s*::(error|warning|notice)::forged", line)]


def _unrun(*folders: Path) -> None:
    """No hostile text ran as code: `touch pwned` left nothing in any folder."""
    assert not any((folder / "pwned").exists() for folder in folders)


@pytest.mark.parametrize("name", ["IMGIX_RECONCILER_VENV", "RUNNER_TEMP", "GITHUB_OUTPUT"])
@pytest.mark.parametrize("value", [None, ""], ids=["unset", "empty"])
def test_run_without_a_value_the_runner_sets_stops_before_running_anything(
    runner: FakeRunner, name: str, value: str | None
) -> None:
    _sources(runner, "Products")
    step = runner.step({**CANARY_ENV, name: value}, command="validate", files="sources.yaml")
    assert step.returncode == 1
    assert f"::error title=imgix-reconciler::{name} is not set" in step.stdout
    assert "sources.yaml" not in step.stdout + step.stderr  # the tool never ran
    assert list(runner.temp.rglob("result.json")) == []


@pytest.mark.parametrize(
    ("field", "refusal"),
    [("command", "command must be plan"), ("account", "account must be letters")],
)
def test_run_refuses_a_hostile_command_or_account_before_running_anything(
    runner: FakeRunner, field: str, refusal: str
) -> None:
    _sources(runner, "Products")
    # `.` and `..` are letters of the pattern, but as a folder name they are another folder
    # (`--help` is a name: a folder, and a value after `--` to the gathering helper).
    odd = [v for v in HOSTILE if not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", v)]
    for value in [*odd, ".", "..", "a" * 65, "main\n", " main"]:
        step = runner.step(
            {**CANARY_ENV}, **{"command": "validate", "files": "sources.yaml", field: value}
        )
        assert step.returncode == 1, (value, step.stdout)
        assert step.stdout.startswith(f"::error title=imgix-reconciler::{refusal}"), value
        assert _made_by_the_text(step.stdout + step.stderr) == []
        assert "sources.yaml" not in step.stdout + step.stderr  # the tool never ran
        _unrun(runner.workspace, runner.temp)
        assert list(runner.temp.rglob("result.json")) == [], value


def test_run_reads_hostile_file_names_as_names(runner: FakeRunner) -> None:
    _sources(runner, "Products")
    for value in [*HOSTILE, "-h", "--version sources.yaml", "sources.yaml --no-resolve"]:
        step = runner.step(command="validate", files=value)
        printed = step.stdout + step.stderr
        assert step.returncode == 1, (value, printed)
        assert "cannot read the file" in printed, value
        assert "Usage:" not in printed and "Traceback" not in printed, value
        assert _made_by_the_text(printed) == [], value
        _unrun(runner.workspace, runner.temp)
    empty = runner.step(command="validate", files=" \n\t")
    assert empty.returncode == 1
    assert "::error title=imgix-reconciler::no files given" in empty.stdout


def test_every_command_takes_a_flag_like_file_and_plan_as_files(
    runner: FakeRunner, emulator_store: SourceStore
) -> None:
    # A file named like an option is a file to each of the tool's commands, and to the
    # follow-up's look-up and copy of the reviewed plan.
    write_sources(runner.workspace, sources_yaml("Products"), name="--help")
    valid = runner.step({**CANARY_ENV}, command="validate", files="--help")
    assert valid.returncode == 0 and "Usage:" not in valid.stdout, valid.stdout + valid.stderr
    unplanned = runner.step({"IMGIX_API_KEY": None}, command="plan", files="--help")
    assert (unplanned.returncode, unplanned.outputs["planned"]) == (0, "false")
    assert "--help: 1 source valid" in unplanned.stderr
    plan = runner.step({**CANARY_ENV}, command="plan", files="--help", account="main")
    assert (plan.returncode, plan.outputs["exit-code"]) == (0, "2"), plan.stderr
    assert "Usage:" not in Path(plan.outputs["markdown-plan"]).read_text("utf-8")
    reviewed = runner.workspace / "-r"
    reviewed.write_text(Path(plan.outputs["json-plan"]).read_text("utf-8"), encoding="utf-8")

    mark = len(emulator_store.request_log)
    apply = runner.step({**CANARY_ENV}, command="apply", files="--help", reviewed_plan="-r")
    assert apply.returncode == 0, apply.stdout + apply.stderr
    assert "Usage:" not in apply.stdout + apply.stderr
    assert len(writes_since(emulator_store, mark)) >= 1
    assert {s.name for s in emulator_store.sources.values()} >= {"Products"}
    assert apply.outputs["digest"] == plan.outputs["digest"]  # the reviewed plan, copied

    drift = runner.step({**CANARY_ENV}, command="drift", files="--help", account="main")
    assert (drift.returncode, drift.outputs["exit-code"]) == (0, "0"), drift.stderr
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", drift.outputs["digest"])  # a digest kept


def test_a_reviewed_plan_never_writes_a_step_output_of_its_own(runner: FakeRunner) -> None:
    # The plan document's digest goes into $GITHUB_OUTPUT: a line break in it would add
    # outputs (a later `exit-code=0` overrides the step's own).
    _sources(runner, "Products")
    forged = runner.workspace / "reviewed.json"
    digest = "sha256:" + "0" * 64 + "\nexit-code=0\nhas-changes=false"
    forged.write_text(json.dumps({"digest": digest, "actions": []}), encoding="utf-8")
    step = runner.step({**CANARY_ENV}, command="apply", files="sources.yaml",
                       reviewed_plan="reviewed.json")  # fmt: skip
    assert step.returncode == 1  # the follow-up refuses a document it did not make
    written = Path(runner.temp / f"output-{runner.runs}").read_text("utf-8").splitlines()
    assert [line.split("=", 1)[0] for line in written] == [
        "exit-code", "has-changes", "digest", "planned", "markdown-plan", "json-plan",
        "result-directory",
    ]  # fmt: skip
    assert step.outputs["exit-code"] == "1" and step.outputs["digest"] == ""


def test_run_passes_hostile_option_values_as_values(
    runner: FakeRunner, emulator_store: SourceStore
) -> None:
    _sources(runner, "Products")
    for value in [v for v in HOSTILE if "touch" in v or "forged" in v or v[0] in "-L"]:
        step = runner.step({**CANARY_ENV}, command="drift", files="sources.yaml", api_url=value)
        printed = step.stdout + step.stderr
        assert step.returncode == 1 and "--api-url" in printed, (value, printed)
        assert "Show this message and exit" not in printed and "Traceback" not in printed
        assert _made_by_the_text(printed) == []
    mark = len(emulator_store.request_log)
    for inputs in [
        {"expect_digest": "--help"},
        {"expect_digest": "a\n::error::forged"},
        {"expect_digest": "sha256:" + "0" * 64, "max_duration": "--help"},
        {"expect_digest": "$(touch pwned)", "max_duration": "`touch pwned`", "wait": "true;x"},
    ]:
        step = runner.step({**CANARY_ENV}, command="apply", files="sources.yaml", **inputs)
        printed = step.stdout + step.stderr
        assert step.returncode in (1, 4), (inputs, printed)
        # Refused as a value (click shows its usage line then), never taken as an option.
        assert "Show this message and exit" not in printed and "Traceback" not in printed
        assert _made_by_the_text(printed) == []
    # A plan that fails stops the apply before it starts.
    unread = runner.step({**CANARY_ENV}, command="apply", files="missing.yaml",
                         expect_digest="sha256:" + "0" * 64)  # fmt: skip
    assert unread.returncode == 1 and "cannot read the file" in unread.stderr
    assert not (Path(unread.outputs["result-directory"]) / "apply.txt").exists()
    assert writes_since(emulator_store, mark) == []
    _unrun(runner.workspace, runner.temp)


def test_hostile_source_secrets_lines_are_refused_or_kept_as_text(runner: FakeRunner) -> None:
    _sources(runner, "Products")
    for line in ["$(touch pwned)", "-x=1", "a\r::error::forged", "BASH_ENV=pwned", "=x"]:
        step = runner.step(
            {**CANARY_ENV, "IMGIX_SOURCE_SECRETS": line}, command="validate", files="sources.yaml"
        )
        assert step.returncode == 1, (line, step.stdout)
        assert step.stdout.startswith("::error title=imgix-reconciler::IMGIX_SOURCE_SECRETS")
        assert _made_by_the_text(step.stdout + step.stderr) == []
    # A value is text: exported as it is (the file's reference reads it), never run; blank
    # and # lines are skipped.
    value = "$(touch pwned)`touch pwned`"
    kept = f"# a comment\n\n  \nE2E_S3_SECRET_KEY={value}\n"
    others = {name: v for name, v in CANARY_ENV.items() if name != "E2E_S3_SECRET_KEY"}
    step = runner.step(
        {**others, "IMGIX_SOURCE_SECRETS": kept}, command="validate", files="sources.yaml"
    )
    assert step.returncode == 0, step.stdout + step.stderr
    assert "sources.yaml: 1 source valid" in step.stderr
    _unrun(runner.workspace, runner.temp)


def _upsert_in(
    runner: FakeRunner, github: FakeGitHub, *args: str, **env: str | None
) -> subprocess.CompletedProcess[str]:
    """Run upsert-comment.sh ARGS from the workspace (relative body paths are there)."""
    return subprocess.run(
        ["bash", str(ROOT / "action" / "upsert-comment.sh"), *args],
        cwd=runner.workspace,
        env=child_env({**github.env(runner), "GITHUB_REPOSITORY": "acme/images", **env}),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _writes(github: FakeGitHub) -> list[dict[str, Any]]:
    return [c for c in github.state["calls"] if c["method"] != "GET"]


# Every byte a comment body can hold that a shell, gh or the runner could read as more than
# text: it must arrive exactly as the file holds it.
HOSTILE_BODY = (
    KEYED + "\n" + "\n".join(HOSTILE) + "\r\nCR LF\r\n@/etc/passwd\ntrue\n{owner}/{repo}\n"
    "body=@x\n\\n\\t%0D%25\n\n\n"
)


def test_upsert_posts_then_updates_a_hostile_body_byte_for_byte(
    runner: FakeRunner, github: FakeGitHub
) -> None:
    # Named like options, substitutions, globs and lines: each path is a file to read.
    for n, name in enumerate(["--help", "-n", "$(touch pwned)", "* ?", "a\n::error::forged"]):
        body = runner.workspace / name
        body.write_bytes((HOSTILE_BODY + f"run {n}\n").encode("utf-8"))
        done = _upsert_in(runner, github, "7", name)
        assert done.returncode == 0, (name, done.stdout + done.stderr)
        assert _made_by_the_text(done.stdout + done.stderr) == []
        (comment,) = github.state["comments"]["7"]  # posted once, then updated in place
        assert comment["body"] == body.read_bytes().decode("utf-8"), name
    assert [c["method"] for c in _writes(github)] == ["POST"] + ["PATCH"] * 4
    _unrun(runner.workspace, runner.temp)


def test_upsert_without_its_values_says_which_and_posts_nothing(
    runner: FakeRunner, github: FakeGitHub
) -> None:
    body = runner.workspace / "body.md"
    body.write_text(KEYED + "\nplan\n", encoding="utf-8")
    cases: list[tuple[tuple[str, ...], dict[str, str | None], str]] = [
        ((), {}, "Usage: upsert-comment.sh NUMBER BODY_FILE"),
        (("7",), {}, "Usage: upsert-comment.sh NUMBER BODY_FILE"),
        (("7", "missing.md"), {}, "no body file 'missing.md'"),
        (("7", "body.md"), {"GITHUB_REPOSITORY": None}, "GITHUB_REPOSITORY is not set"),
        (("7", "body.md"), {"GH_TOKEN": None}, "GH_TOKEN"),
    ]
    for value in [*HOSTILE, "", "7 8", "-7", "0x7", "\uff17"]:
        cases.append(((value, "body.md"), {}, "no pull request number"))
    for args, env, says in cases:
        done = _upsert_in(runner, github, *args, **env)
        assert done.returncode != 0, (args, env)
        assert says in done.stdout + done.stderr, (args, env, done.stdout + done.stderr)
        assert _made_by_the_text(done.stdout + done.stderr) == []
        assert "unbound variable" not in done.stderr
    assert _writes(github) == [] and github.state["comments"] == {}
    _unrun(runner.workspace, runner.temp)


def test_upsert_refuses_a_body_without_a_marker_line(
    runner: FakeRunner, github: FakeGitHub
) -> None:
    for text in ["", "\n" + KEYED + "\n", KEYED + "\r\nplan\n", " " + KEYED + "\n", KEYED]:
        body = runner.workspace / "body.md"
        body.write_bytes(text.encode("utf-8"))
        done = _upsert_in(runner, github, "7", "body.md")
        assert done.returncode == 1, repr(text)
        assert "does not start with a plan marker" in done.stdout, repr(text)
    assert _writes(github) == []


def test_upsert_keeps_a_newer_plan_only_and_checks_the_time_it_is_given(
    runner: FakeRunner, github: FakeGitHub
) -> None:
    body = runner.workspace / "notice.md"
    body.write_text(KEYED + "\nnot run\n", encoding="utf-8")
    newer = {"id": 60, "user": {"login": BOT}, "updated_at": "2026-11-30T03:00:00Z"}
    state = github.state
    state["comments"]["7"] = [{**newer, "body": KEYED + "\na notice, no digest\n"}]
    github.save(state)
    keep = {"KEEP_PLAN_NEWER_THAN": "2026-11-30T02:00:00Z"}
    # A newer comment that holds no plan (an earlier notice) is replaced.
    replaced = _upsert_in(runner, github, "7", "notice.md", **keep)
    assert replaced.returncode == 0, replaced.stderr
    assert [c["body"] for c in github.state["comments"]["7"]] == [KEYED + "\nnot run\n"]

    plan = KEYED + "\n<!-- imgix-reconciler:digest account=main sha256:" + "1" * 64 + " -->\n"
    state = github.state
    state["comments"]["7"] = [{**newer, "body": plan}]
    github.save(state)
    kept = _upsert_in(runner, github, "7", "notice.md", **keep)
    assert kept.returncode == 0 and "newer than this run: kept" in kept.stdout
    assert [c["body"] for c in github.state["comments"]["7"]] == [plan]

    # A time that is no time is refused before anything is compared or printed with it.
    for odd in ["\n::error::forged", "2026-11-30T02:00:00Z\r::error::forged", "later", "-1"]:
        done = _upsert_in(runner, github, "7", "notice.md", KEEP_PLAN_NEWER_THAN=odd)
        assert done.returncode == 1, repr(odd)
        assert "KEEP_PLAN_NEWER_THAN is not a time" in done.stdout
        assert _made_by_the_text(done.stdout + done.stderr) == []
    assert [c["body"] for c in github.state["comments"]["7"]] == [plan]


def test_upsert_that_cannot_list_the_comments_posts_none(
    runner: FakeRunner, github: FakeGitHub
) -> None:
    body = runner.workspace / "body.md"
    body.write_text(KEYED + "\nplan\n", encoding="utf-8")
    state = github.state
    state["down"] = True
    github.save(state)
    done = _upsert_in(runner, github, "7", "body.md")
    assert done.returncode != 0 and "HTTP 502" in done.stderr
    assert _writes(github) == []  # never a second comment for want of finding the first


# --------------------------------------------------------------------------- drift issue paths


def _drift_results(runner: FakeRunner, **codes: int) -> None:
    """The accounts' result folders as run.sh leaves them (no report: shown as a row)."""
    results = runner.temp / "imgix-reconciler"
    shutil.rmtree(results, ignore_errors=True)
    for account, code in codes.items():
        (results / account).mkdir(parents=True)
        result = {"account": account, "command": "drift", "exit_code": code, "planned": True}
        (results / account / "result.json").write_text(json.dumps(result), encoding="utf-8")


OWN_DRIFT = "<!-- imgix-reconciler:drift key=imgix -->"


def test_a_pull_request_with_the_drift_marker_is_never_taken_for_the_issue(
    runner: FakeRunner, github: FakeGitHub
) -> None:
    # GitHub's issue listing holds pull requests too: one the bot opened (another workflow
    # with the default token) whose body starts with the marker, newest first.
    pull = {"user": {"login": BOT}, "state": "open", "title": "chore: sync",
            "pull_request": {"url": "https://api.github.com/repos/acme/images/pulls"}}  # fmt: skip
    decoys = [
        {**pull, "number": 30, "body": f"{OWN_DRIFT}\nquoted report\n"},
        {**pull, "number": 31, "body": "<!-- imgix-reconciler:drift -->\nold report\n"},
    ]
    state = github.state
    state["issues"] = [*decoys, {"number": 12, "user": {"login": BOT}, "state": "open",
                                 "title": "t", "body": f"{OWN_DRIFT}\nold\n"}]  # fmt: skip
    github.save(state)
    env = github.env(runner)

    _drift_results(runner, main=2)
    assert runner.script("drift-issue.sh", env).returncode == 0
    issues = {i["number"]: i for i in github.state["issues"]}
    assert issues[12]["body"].startswith(OWN_DRIFT + "\n### imgix-reconciler drift")

    # The issue closed by hand: a new one is opened, never a pull request updated.
    state = github.state
    state["issues"] = decoys
    github.save(state)
    assert runner.script("drift-issue.sh", env).returncode == 0
    opened = github.state["issues"][-1]
    assert "pull_request" not in opened and opened["body"].startswith(OWN_DRIFT + "\n")

    # Back in sync: that issue is closed; neither pull request is closed or commented on.
    _drift_results(runner, main=0)
    assert runner.script("drift-issue.sh", env).returncode == 0
    assert github.state["issues"][:2] == decoys
    assert github.state["issues"][2]["state"] == "closed"
    assert set(github.state["comments"]) == {str(opened["number"])}
    touched = {c["path"].rsplit("/issues/", 1)[-1].split("/")[0] for c in _writes(github)}
    assert not touched & {"30", "31"}


def test_drift_issue_without_results_or_with_a_failed_check_leaves_the_issue(
    runner: FakeRunner, github: FakeGitHub
) -> None:
    state = github.state
    state["issues"] = [{"number": 12, "user": {"login": BOT}, "state": "open", "title": "t",
                        "body": f"{OWN_DRIFT}\nold\n"}]  # fmt: skip
    github.save(state)
    env = github.env(runner)
    nothing = runner.script("drift-issue.sh", env)
    assert nothing.returncode == 1 and "no account produced a result" in nothing.stdout

    both = json.dumps([{"name": "main"}, {"name": "eu"}])
    _drift_results(runner, main=2, eu=1)
    failed = runner.script("drift-issue.sh", {**env, "ACCOUNTS": both})
    assert failed.returncode == 1
    assert "::error title=imgix-reconciler::the drift check failed for an account" in (
        failed.stdout
    )

    # A folder with no result in it (a job that stopped before writing one), or a list of
    # accounts that is no JSON: stopped, saying which, before anything is written.
    (runner.temp / "imgix-reconciler" / "eu" / "result.json").unlink()
    empty = runner.script("drift-issue.sh", {**env, "ACCOUNTS": both})
    assert empty.returncode != 0 and "eu/result.json" in empty.stderr
    _drift_results(runner, main=2)
    unlisted = runner.script("drift-issue.sh", {**env, "ACCOUNTS": "[main"})
    assert unlisted.returncode != 0 and "Traceback" not in unlisted.stderr
    assert _writes(github) == [] and github.state["issues"][0]["body"] == f"{OWN_DRIFT}\nold\n"


def test_drift_in_sync_with_no_issue_open_writes_nothing(
    runner: FakeRunner, github: FakeGitHub
) -> None:
    _drift_results(runner, main=0)
    done = runner.script("drift-issue.sh", github.env(runner))
    assert done.returncode == 0, done.stderr
    assert _writes(github) == [] and github.state["issues"] == []
    assert "### imgix-reconciler drift" in done.summary


# --------------------------------------------------------------------------- the other paths

# What each script needs from the job; the step's outputs and summary file are optional.
_GITHUB = ["GITHUB_REPOSITORY", "GH_TOKEN"]
NEEDS = {
    "comment.sh": ["IMGIX_RECONCILER_VENV", "RESULTS", "ACCOUNTS", "RUNNER_TEMP",
                   "GITHUB_WORKFLOW_REF", "GITHUB_EVENT_PATH", *_GITHUB],
    "drift-issue.sh": ["IMGIX_RECONCILER_VENV", "RESULTS", "ACCOUNTS", "RUNNER_TEMP",
                       "GITHUB_WORKFLOW_REF", *_GITHUB],
    "fork-notice.sh": ["IMGIX_RECONCILER_VENV", "RUN_ID", "RUN_STARTED", "HEAD_OWNER",
                       "HEAD_BRANCH", "HEAD_SHA", "PLAN_WORKFLOW", "PLAN_WORKFLOW_PATH",
                       "RUNNER_TEMP", *_GITHUB],
    "reviewed-digest.sh": ["IMGIX_RECONCILER_VENV", "GITHUB_SHA", "RUNNER_TEMP", "ACCOUNT",
                           *_GITHUB],
    "install.sh": ["RUNNER_TEMP", "GITHUB_OUTPUT"],
}  # fmt: skip


@pytest.mark.parametrize("script", sorted(NEEDS))
def test_a_script_missing_a_value_it_needs_names_it_and_writes_nothing(
    runner: FakeRunner, github: FakeGitHub, script: str
) -> None:
    _drift_results(runner, main=2)
    venv = runner.temp / "imgix-reconciler-venv" / "bin"
    venv.mkdir(parents=True)
    (venv / "imgix-reconciler").touch(mode=0o755)  # install.sh: installed by an earlier step
    _fork_pull_open(github)
    state = github.state
    state["pulls"] = [{"number": 7, "merged_at": "2026-11-30T00:00:00Z"}]
    github.save(state)
    full = {**_fork_run(github, runner), "ACCOUNT": "main", "GITHUB_ACTION_PATH": str(ROOT)}
    assert runner.script(script, full).returncode in (0, 1)  # it runs with all of them
    writes = len(_writes(github))
    for name in NEEDS[script]:
        done = runner.script(script, {**full, name: None})
        assert done.returncode != 0, (script, name)
        assert name in done.stdout + done.stderr, (script, name)
        assert len(_writes(github)) == writes, (script, name)


def test_install_reuses_the_environment_an_earlier_step_made(runner: FakeRunner) -> None:
    venv = runner.temp / "imgix-reconciler-venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "imgix-reconciler").touch(mode=0o755)
    # No GITHUB_ACTION_PATH: nothing is installed again, so it is never read.
    done = runner.script("install.sh", {"GITHUB_ACTION_PATH": None})
    assert done.returncode == 0, done.stderr
    assert done.outputs == {"venv": str(venv)}


@pytest.mark.parametrize("number", ["--help", "7 8", "$(touch pwned)", "a\n::error::forged"])
def test_comment_refuses_a_pull_request_number_that_is_no_number(
    runner: FakeRunner, github: FakeGitHub, number: str
) -> None:
    _drift_results(runner, main=2)
    done = runner.script("comment.sh", github.env(runner, PULL_REQUEST=number))
    assert done.returncode == 1 and "no pull request number" in done.stdout
    assert _made_by_the_text(done.stdout + done.stderr) == []
    assert github.state["calls"] == []
    _unrun(runner.workspace, runner.temp)


def test_comment_paths_without_a_number_results_or_a_head(
    runner: FakeRunner, github: FakeGitHub
) -> None:
    env = github.env(runner)
    runner.event.write_text(json.dumps({"schedule": "0 6 * * *"}), encoding="utf-8")
    no_number = runner.script("comment.sh", env)
    assert no_number.returncode == 1 and "no pull request number" in no_number.stdout
    runner.event.write_text(json.dumps({"pull_request": {"number": 7}}), encoding="utf-8")
    no_results = runner.script("comment.sh", env)
    assert no_results.returncode == 1 and "no account produced a result" in no_results.stdout
    assert github.state["calls"] == []

    # The head look-up fails (GitHub has no such pull request answer): posted all the same.
    _drift_results(runner, main=0)
    event = {"pull_request": {"number": 7, "head": {"sha": "a" * 40}}}
    runner.event.write_text(json.dumps(event), encoding="utf-8")
    posted = runner.script("comment.sh", env)
    assert posted.returncode == 0, posted.stderr
    (comment,) = github.state["comments"]["7"]
    assert comment["body"].startswith(KEYED + "\n")
    # A planned head that is no commit is no reason to withhold it either.
    again = runner.script("comment.sh", {**env, "PLANNED_HEAD": "--help $(touch pwned)"})
    assert again.returncode == 0, again.stderr
    assert len(github.state["comments"]["7"]) == 1
    _unrun(runner.workspace, runner.temp)


def test_reviewed_digest_fails_when_github_does_not_answer(
    runner: FakeRunner, github: FakeGitHub
) -> None:
    state = github.state
    state["down"] = True
    github.save(state)
    done = runner.script("reviewed-digest.sh", github.env(runner, ACCOUNT="main"))
    assert done.returncode != 0 and done.stdout == "" and "HTTP 502" in done.stderr
