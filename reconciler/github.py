"""Speaking GitHub Actions: annotations, the step summary, masks, and the action's helpers.

When `GITHUB_ACTIONS=true` (GitHub sets it in every step), the CLI also:

- writes every located error as an `::error file=,line=,col=::` workflow command, so the
  pull request shows it on the line of the changed file;
- appends the plan (markdown) to the file named by `$GITHUB_STEP_SUMMARY`;
- announces every secret value it reads with `::add-mask::` the moment it is read, before
  anything could print it, so the runner masks it in every later log line of the job.

Workflow commands go to the process's real stderr (stdout carries the plan, which a
workflow may redirect to a file). Their values are encoded the way the runner decodes them
(`%`, CR and LF in data; `:` and `,` too in properties), after `reconciler.untrusted` made
outside text inert.

The command group at the bottom (`python -m reconciler.github ...`) holds what the
composite action (`action.yml`) needs beyond the CLI: one comment for many accounts, the
digest a merged pull request's comment recorded, and what is left of a reviewed plan.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import click
from pydantic import BaseModel, ConfigDict, ValidationError

from reconciler import deferred
from reconciler.untrusted import escaped

if TYPE_CHECKING:
    from reconciler.loader import LocatedError
    from reconciler.plan import Action, Plan

TITLE = "imgix-reconciler"
# Hidden line of the multi-account comment that `apply` reads back after the merge.
DIGEST_LINE = deferred.pattern(
    __name__,
    "DIGEST_LINE",
    r"^<!-- imgix-reconciler:digest account=([A-Za-z0-9._-]+) (sha256:[0-9a-f]{64}) -->$",
    re.MULTILINE,
)
# An account's name, and a caller workflow's key: never text that could close the HTML
# comment they are written in (no `>`, no space).
_NAME = r"[A-Za-z0-9._-]{1,64}"
ACCOUNT_NAME = deferred.pattern(__name__, "ACCOUNT_NAME", _NAME)
# The caller workflow a plan comment or drift issue belongs to, named in its marker line:
# two caller workflows planning one pull request keep a comment each.
COMMENT_KEY = deferred.pattern(__name__, "COMMENT_KEY", _NAME)
KEYED_PLAN_MARKER = deferred.pattern(
    __name__, "KEYED_PLAN_MARKER", f"<!-- imgix-reconciler:plan key={_NAME} -->"
)
# GitHub refuses comments and issue bodies over 65,536 characters; the per-account plans
# share what is left once the header and table are written, less room for their notes.
COMMENT_LIMIT = 65_536
# What a comment's content may take: the rest is room for the notes and closing lines
# added once the budget is hit.
COMMENT_BUDGET = 60_000
# The one login whose comments are trusted to hold a reviewed digest: anyone can post a
# comment that starts with the marker, only the workflow's token posts as this user.
BOT_LOGIN = "github-actions[bot]"


def active(environ: Mapping[str, str] | None = None) -> bool:
    """Whether this process runs as a GitHub Actions step."""
    return (os.environ if environ is None else environ).get("GITHUB_ACTIONS") == "true"


def command_data(text: str) -> str:
    """`text` as the data of a workflow command (after `::`), encoded as the runner decodes."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def command_property(text: str) -> str:
    """`text` as a property value of a workflow command (`file=`, `title=`)."""
    return command_data(text).replace(":", "%3A").replace(",", "%2C")


def _real_stderr() -> TextIO:
    # The unwrapped stream: a mask written through the redaction point would reach the
    # runner as `***`, which masks nothing.
    return sys.__stderr__ or sys.stderr


def announce_secret(value: str, *, stream: TextIO | None = None) -> None:
    """Ask the runner to mask `value` (each of its lines too) in the job's logs."""
    if not active():
        return
    out = stream or _real_stderr()
    lines = [value, *(line for line in value.splitlines() if line.strip() and line != value)]
    # A log that cannot be written (stderr on a full disk) shows nothing to mask, and must
    # not fail the run: the outputs mask the value themselves.
    with contextlib.suppress(OSError):
        for line in lines:
            out.write(f"::add-mask::{command_data(line)}\n")
        out.flush()


def error_annotation(error: LocatedError) -> str:
    """One `::error` command for a located error, pointing at its file, line and column."""
    where = f"{error.file}:{error.line}:{error.column}: "
    text = str(error)
    message = text[len(where) :] if text.startswith(where) else text
    properties = (
        f"file={command_property(escaped(_from_workspace(error.file)))},line={error.line},"
        f"col={error.column},title={command_property(TITLE)}"
    )
    return f"::error {properties}::{command_data(escaped(message))}"


def _from_workspace(file: str) -> str:
    # GitHub places an annotation by its path from the repository root; the files may have
    # been named from a working directory below it, or absolutely.
    workspace = os.environ.get("GITHUB_WORKSPACE")
    if not workspace:
        return file
    try:
        return Path(file).resolve().relative_to(Path(workspace).resolve()).as_posix()
    except (OSError, ValueError, RuntimeError):  # RuntimeError: a symlink loop (Python < 3.13)
        return file


def annotate(errors: Iterable[LocatedError]) -> None:
    """Located errors as annotations on the files, when running in GitHub Actions."""
    if active():
        for error in errors:
            click.echo(error_annotation(error), err=True)


def annotate_message(message: str) -> None:
    """An error without a place as an annotation, when running in GitHub Actions."""
    if active():
        title = command_property(TITLE)
        click.echo(f"::error title={title}::{command_data(escaped(message))}", err=True)


def write_step_summary(markdown: str, environ: Mapping[str, str] | None = None) -> None:
    """Append `markdown` to the job summary (`$GITHUB_STEP_SUMMARY`), secrets masked."""
    from reconciler import redact

    env = os.environ if environ is None else environ
    path = env.get("GITHUB_STEP_SUMMARY")
    if not active(env) or not path:
        return
    try:
        with open(path, "a", encoding="utf-8") as summary:
            summary.write(redact.scrub(markdown.rstrip("\n") + "\n\n"))
    except OSError as error:
        # The plan itself went to stdout; a summary that cannot be written is said, not fatal.
        click.echo(f"warning: cannot write the step summary: {error.strerror or error}", err=True)


def comment_key(workflow: str) -> str:
    """The key of a caller workflow, from its ref (`GITHUB_WORKFLOW_REF`) or its path.

    Its file name without `.yml` when that is a plain name, else a hash of the file name:
    the same for `o/r/.github/workflows/x.yml@refs/pull/1/merge` and `.github/workflows/x.yml`.
    """
    path, found, _ = workflow.partition("@refs/")
    if not found:
        path = workflow.rpartition("@")[0] or workflow
    name = path.rpartition("/")[2]
    stem = re.sub(r"\.ya?ml\Z", "", name)
    if COMMENT_KEY.fullmatch(stem):
        return stem
    return "sha256-" + hashlib.sha256(name.encode("utf-8", "replace")).hexdigest()[:16]


def keyed_marker(marker: str, key: str | None) -> str:
    """`marker` naming the caller workflow `key`; unkeyed (an older version's) for None."""
    if key is None:
        return marker
    if not COMMENT_KEY.fullmatch(key):
        raise ValueError(f"a comment key is letters, digits, '.', '_' or '-': {key!r}")
    return marker.removesuffix(" -->") + f" key={key} -->"


# --------------------------------------------------------------------------- many accounts


class AccountResult(BaseModel):
    """What one account's job of the plan or drift workflow left for the gathering job."""

    # Built when first used: only the action's `combine` helper reads one.
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    account: str
    command: str
    exit_code: int
    # False when the job had no API key (a fork's pull request): only validated.
    planned: bool = True
    # False for an account of the workflow's list whose job left no result (it timed out,
    # was cancelled, or its environment refused it): never taken for "in sync".
    reported: bool = True


def combined_comment(
    results: Sequence[tuple[AccountResult, Plan | None]],
    *,
    view: str = "plan",
    budget: int = COMMENT_BUDGET,
    run_url: str | None = None,
    key: str | None = None,
) -> str:
    """One comment for every account: a table, hidden digest lines, then each plan.

    The plans share the budget equally, so the comment stays one comment under GitHub's
    limit however many accounts and sources there are; each plan says what it left out.
    """
    from reconciler.render import markdown

    is_drift = view == "drift"
    marker = keyed_marker(markdown.DRIFT_MARKER if is_drift else markdown.MARKER, key)
    accounts = [result for result, _ in results]
    for result in accounts:
        if not ACCOUNT_NAME.fullmatch(result.account):
            raise ValueError(
                f"account names are letters, digits, '.', '_' or '-': {result.account!r}"
            )
    head = [
        marker,
        f"### imgix-reconciler {view}: {_accounts(len(accounts))}",
        "",
        "| account | result | create | patch | unchanged | unmanaged |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for result, plan in results:
        head.append(_row(result, plan, is_drift))
    unplanned = [result.account for result in accounts if not result.planned]
    if unplanned and not is_drift:
        head += ["", *_maintainer_note(unplanned)]
    if run_url:
        head += ["", f"[Logs and JSON plans]({run_url})"]
    head += [
        f"<!-- imgix-reconciler:digest account={result.account} {plan.digest} -->"
        for result, plan in results
        # An account without changes too: its apply then checks that it still has none.
        if plan is not None and result.exit_code in (0, 2)
    ]
    text = "\n".join(head) + "\n"
    shown = [(result, plan) for result, plan in results if plan is not None]
    share = (budget - len(text)) // max(1, len(shown))
    used = len(text)
    sections = []
    for count, (result, plan) in enumerate(shown):
        assert plan is not None
        body = markdown.render(
            plan,
            budget=share,
            view="drift" if is_drift else "plan",
            drifted=(result.exit_code == 2) if is_drift else None,
        )
        # The per-account plan's marker and title are the comment's, said once above.
        section = f"\n#### Account `{result.account}`\n" + body.split("\n", 2)[2]
        if used + len(section) > budget + (COMMENT_LIMIT - COMMENT_BUDGET) // 2:
            # So many accounts that even their summaries do not fit: the table has them all.
            left = len(shown) - count
            sections.append(f"\n… and {_accounts(left)} not shown (see the artifacts).\n")
            break
        sections.append(section)
        used += len(section)
    return text + "".join(sections)


def _accounts(count: int) -> str:
    return f"{count} account{'s' if count != 1 else ''}"


def _row(result: AccountResult, plan: Plan | None, is_drift: bool) -> str:
    if not result.reported:
        verdict = "no result (its job failed or was cancelled)"
    elif not result.planned:
        verdict = "validated only (no API key)" if result.exit_code == 0 else "invalid files"
    elif result.exit_code == 1 or plan is None:
        verdict = "error (see the logs)"
    elif is_drift:
        verdict = "drift" if result.exit_code == 2 else "in sync"
    else:
        verdict = "changes" if plan.actions else "no changes"
    if plan is None:
        return f"| `{result.account}` | {verdict} | | | | |"
    s = plan.summary
    return (
        f"| `{result.account}` | {verdict} | {s.create} | {s.patch} | {s.unchanged} "
        f"| {s.unmanaged} |"
    )


def _maintainer_note(
    accounts: Sequence[str] | None = None, workflow: str = "this workflow"
) -> list[str]:
    whose = "this pull request's jobs"
    if accounts is not None:
        whose = "this job for " + ", ".join(f"`{name}`" for name in accounts)
    return [
        f"No API key was available to {whose} (a pull request from a fork gets "
        "no secrets), so the files were validated but not planned. A maintainer who has read "
        f"the change runs the plan from the Actions tab: run {workflow} with "
        "`pull-request` set to this pull request's number. It plans the pull request's "
        "files with the default branch's workflow and action, so none of the fork's code "
        "runs with the secrets.",
    ]


# What a finished run's conclusion says about the files, in the fork notice.
RUN_VERDICTS = {
    "success": "passed",
    "failure": "failed (the run's annotations show where)",
    "cancelled": "cancelled",
    "timed_out": "timed out",
}


def fork_notice(conclusion: str, run_url: str, workflow: str, key: str | None = None) -> str:
    """The plan comment of a fork's pull request: how its files were checked, how to plan it.

    Posted by a workflow that holds a write token, so it is built from the run's conclusion
    and link only: no text of the fork's run reaches it.
    """
    from reconciler.render.markdown import MARKER

    verdict = RUN_VERDICTS.get(conclusion, "unknown")
    return "\n".join(
        [
            keyed_marker(MARKER, key),
            "### imgix-reconciler plan: not run (a pull request from a fork)",
            "",
            f"Validation of the desired-state files: **{verdict}** ([the run]({run_url})).",
            "",
            *_maintainer_note(workflow=f"the `{workflow}` workflow"),
            "",
        ]
    )


def reviewed_digest(comments: Iterable[Mapping[str, object]], account: str) -> str | None:
    """The digest a merged pull request's plan comment recorded for `account`, if any.

    Only the workflows' own comments count (author `github-actions[bot]`, first line a plan
    marker, keyed or not). Each caller workflow keeps one comment, so the account's digest
    is in whichever records it: the most recently updated such comment wins.
    """
    from reconciler.render.markdown import MARKER

    found: str | None = None
    newest = ""
    for comment in comments:
        user = comment.get("user")
        login = user.get("login") if isinstance(user, Mapping) else None
        body = comment.get("body")
        if login != BOT_LOGIN or not isinstance(body, str):
            continue
        first = body.partition("\n")[0]
        if first != MARKER and not KEYED_PLAN_MARKER.fullmatch(first):
            continue
        updated = comment.get("updated_at")
        stamp = updated if isinstance(updated, str) else ""
        for name, digest in DIGEST_LINE.findall(body):
            # ISO 8601 times in UTC compare as text; a tie goes to the later comment.
            if name == account and stamp >= newest:
                found, newest = digest, stamp
    return found


def remaining_digest(reviewed: Plan, fresh: Plan) -> str | None:
    """The fresh plan's digest when each of its actions was in the reviewed plan, else None.

    After an apply stopped by `--max-duration`, planning again gives what is left. That is
    still what was reviewed only if every remaining action is one the reviewer saw,
    unchanged; anything new (a change made since, outside or in git) refuses.
    """
    from reconciler.plan import compute_digest

    if reviewed.api_url != fresh.api_url:
        return None

    # An action is compared without its waits: one whose hostname's release was applied
    # before the stop waits for nothing now. It may wait for less, never for another.
    def unordered(action: Action) -> str:
        return compute_digest([action.model_copy(update={"depends_on": []})])

    seen = {unordered(action): set(action.depends_on) for action in reviewed.actions}
    for action in fresh.actions:
        waits = seen.get(unordered(action))
        if waits is None or not waits.issuperset(action.depends_on):
            return None
    return fresh.digest


def missing_accounts(accounts_json: str, reported: Iterable[str]) -> list[str]:
    """The names of the workflow's accounts list (JSON) that left no result, in its order."""
    accounts = json.loads(accounts_json)
    if not isinstance(accounts, list) or not all(
        isinstance(account, dict) and isinstance(account.get("name"), str) for account in accounts
    ):
        raise ValueError('--accounts is not a JSON list of {"name": ...} objects')
    seen = set(reported)
    return [account["name"] for account in accounts if account["name"] not in seen]


# --------------------------------------------------------------------------- action helpers


@click.group()
def main() -> None:
    """Helpers of the composite action (action.yml); not a user command."""


@main.command()
@click.argument("directories", nargs=-1, type=click.Path(file_okay=False, path_type=Path))
@click.option("--view", type=click.Choice(["plan", "drift"]), default="plan")
@click.option("--run-url", help="Link to the workflow run, shown in the comment.")
@click.option(
    "--accounts",
    "expected",
    help="The workflow's accounts (its JSON list): each one without a result gets a row.",
)
@click.option("--key", help="The caller workflow's key (see `comment-key`), named in the marker.")
def combine(
    directories: tuple[Path, ...],
    view: str,
    run_url: str | None,
    expected: str | None,
    key: str | None,
) -> None:
    """Print one markdown comment from the per-account result directories."""
    from reconciler.errors import PlanFileError
    from reconciler.reconcile import read_plan_document

    results: list[tuple[AccountResult, Plan | None]] = []
    try:
        for directory in sorted(directories):
            result = AccountResult.model_validate_json((directory / "result.json").read_bytes())
            plan_path = directory / "plan.json"
            # Shown, never applied: the comment job holds no key to check a MAC with.
            plan = read_plan_document(plan_path) if plan_path.is_file() else None
            results.append((result, plan))
        reported = {result.account for result, _ in results}
        for name in missing_accounts(expected, reported) if expected is not None else []:
            missing = AccountResult(account=name, command=view, exit_code=1, reported=False)
            results.append((missing, None))
        click.echo(combined_comment(results, view=view, run_url=run_url, key=key), nl=False)
    except (OSError, ValueError, ValidationError, PlanFileError) as error:
        click.echo(f"error: cannot gather the account results: {escaped(str(error))}", err=True)
        raise SystemExit(1) from None


@main.command("fork-notice")
@click.option("--conclusion", required=True, help="The fork's run conclusion (success, ...).")
@click.option("--run-url", required=True, help="Link to the fork's run.")
@click.option("--workflow", required=True, help="The workflow a maintainer runs to plan.")
@click.option("--key", help="The plan caller workflow's key (see `comment-key`).")
def fork_notice_command(conclusion: str, run_url: str, workflow: str, key: str | None) -> None:
    """Print the plan comment for a pull request from a fork."""
    if not re.fullmatch(
        r"https://[A-Za-z0-9.-]+(:\d{1,5})?/[\w.-]+/[\w.-]+/actions/runs/\d+", run_url
    ):
        click.echo("error: --run-url is not the link of a workflow run", err=True)
        raise SystemExit(1)
    if not re.fullmatch(r"[\w .-]{1,100}", workflow):
        click.echo("error: --workflow is not a workflow name", err=True)
        raise SystemExit(1)
    if key is not None and not COMMENT_KEY.fullmatch(key):
        click.echo("error: --key is not a comment key", err=True)
        raise SystemExit(1)
    click.echo(fork_notice(conclusion, run_url, workflow, key), nl=False)


@main.command("comment-key")
@click.argument("workflow")
def comment_key_command(workflow: str) -> None:
    """Print the key of the caller WORKFLOW (its ref or path) for its comment's marker."""
    click.echo(comment_key(workflow))


@main.command("reviewed-digest")
@click.argument("comments", type=click.File("r", encoding="utf-8"))
@click.argument("account")
def reviewed_digest_command(comments: TextIO, account: str) -> None:
    """Print the digest recorded for ACCOUNT in COMMENTS (JSON lines of issue comments)."""
    try:
        parsed = [json.loads(line) for line in comments if line.strip()]
    except ValueError as error:
        click.echo(f"error: the comments are not JSON lines: {error}", err=True)
        raise SystemExit(1) from None
    digest = reviewed_digest([c for c in parsed if isinstance(c, dict)], account)
    if digest is None:
        click.echo(
            f"error: no plan comment of {BOT_LOGIN} records a digest for account {account}: "
            "the change was not reviewed through a pull request with a plan comment",
            err=True,
        )
        raise SystemExit(1)
    click.echo(digest)


@main.command("remaining-digest")
@click.argument("reviewed", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("fresh", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--api-url", help="The API both plans were made against (as for apply).")
@click.option("--emulator", is_flag=True, hidden=True)
def remaining_digest_command(
    reviewed: Path, fresh: Path, api_url: str | None, emulator: bool
) -> None:
    """Print FRESH's digest when all its actions were in the REVIEWED plan; else exit 4.

    Both are saved plans checked like `apply` checks one: made with this job's key for
    this API, so an artifact edited on the way cannot widen what gets applied.
    """
    from reconciler.errors import ConfigurationError, PlanFileError
    from reconciler.reconcile import (
        connect,
        read_plan_file,
    )

    try:
        connection = connect(api_url, emulator=emulator)
        digest = remaining_digest(
            read_plan_file(reviewed, connection), read_plan_file(fresh, connection)
        )
    except (PlanFileError, ConfigurationError) as error:
        click.echo(f"error: {error}", err=True)
        raise SystemExit(1) from None
    if digest is None:
        click.echo(
            "error: the plan now holds actions the reviewed plan did not: "
            "review a new pull request",
            err=True,
        )
        raise SystemExit(4)
    click.echo(digest)


if __name__ == "__main__":  # pragma: no cover - `python -m reconciler.github`
    main()
