#!/usr/bin/env bash
# Post the plan of every account as one pull-request comment, or update the one posted
# before (upsert-comment.sh).
#
# A run whose pull request has moved to another commit since (a push while it ran) leaves
# the comment to the run of that commit: an older run finishing last never replaces it.
#
# Needs: RESULTS (folder of the accounts' result folders), ACCOUNTS (the workflow's JSON
# list of accounts), IMGIX_RECONCILER_VENV, GH_TOKEN, GITHUB_REPOSITORY, and the pull
# request: PULL_REQUEST, else the event payload's. PLANNED_HEAD: the pull request's head
# commit the run planned (default: the event payload's). GITHUB_WORKFLOW_REF (the caller
# workflow's, which GitHub sets) keys the comment: each caller workflow keeps its own.
set -euo pipefail

venv="${IMGIX_RECONCILER_VENV:?}"
number="${PULL_REQUEST:-}"
if [[ -z "$number" ]]; then
  number="$(jq -r '.pull_request.number // empty' "${GITHUB_EVENT_PATH:?}")"
fi
[[ "$number" =~ ^[0-9]+$ ]] || { echo "::error title=imgix-reconciler::no pull request number"; exit 1; }

shopt -s nullglob
folders=("${RESULTS:?}"/*/)
((${#folders[@]})) || { echo "::error title=imgix-reconciler::no account produced a result"; exit 1; }
body="${RUNNER_TEMP:?}/imgix-reconciler-comment.md"
run_url="${GITHUB_SERVER_URL:-https://github.com}/$GITHUB_REPOSITORY/actions/runs/${GITHUB_RUN_ID:-0}"
key="$("$venv/bin/python" -I -m reconciler.github comment-key -- "${GITHUB_WORKFLOW_REF:?}")"
"$venv/bin/python" -I -m reconciler.github combine --run-url "$run_url" --key "$key" \
  --accounts "${ACCOUNTS:?}" -- "${folders[@]}" > "$body"
echo "comment-file=$body" >> "${GITHUB_OUTPUT:-/dev/null}"

planned="${PLANNED_HEAD:-}"
[[ -n "$planned" ]] || planned="$(jq -r '.pull_request.head.sha // empty' "$GITHUB_EVENT_PATH")"
if [[ "$planned" =~ ^[0-9a-f]{40}$ ]]; then
  # A failed look-up is no reason to withhold the plan: the comment is posted.
  head="$(gh api "repos/$GITHUB_REPOSITORY/pulls/$number" --jq '.head.sha' 2> /dev/null)" || head=""
  if [[ "$head" =~ ^[0-9a-f]{40}$ && "$planned" != "$head" ]]; then
    echo "::notice title=imgix-reconciler::pull request #$number is at $head now, this run planned $planned: the run of $head comments"
    exit 0
  fi
fi

if ! bash "$(dirname "${BASH_SOURCE[0]}")/upsert-comment.sh" "$number" "$body"; then
  cat "$body" >> "${GITHUB_STEP_SUMMARY:-/dev/null}"
  # A fork's pull request gets a read-only token (GitHub's doing, not an error); a null
  # head repository is a deleted fork; Dependabot's runs are treated as a fork's. Any other
  # run needs the comment: it records the digest the merge applies, so not posting it
  # fails the job, with gh's reason above.
  fork="$(jq -r 'if .pull_request == null then false
    else .pull_request.head.repo.full_name != .pull_request.base.repo.full_name end' \
    "$GITHUB_EVENT_PATH")"
  [[ "${GITHUB_ACTOR:-}" == "dependabot[bot]" ]] && fork=true
  if [[ -z "${PULL_REQUEST:-}" && "$fork" == true ]]; then
    echo "::warning title=imgix-reconciler::cannot comment on pull request #$number (a fork's or Dependabot's) with its read-only token: the plan is in the job summary"
  else
    echo "::error title=imgix-reconciler::cannot post the plan comment on pull request #$number (gh's error above; does the caller's job grant pull-requests: write?): the plan is in the job summary, and without the comment the merge applies nothing"
    exit 1
  fi
fi
