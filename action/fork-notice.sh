#!/usr/bin/env bash
# After the plan workflow ran for a pull request from a fork (read-only token, no secrets),
# post the plan comment that says how its files fared and how a maintainer plans it.
#
# Runs in a `workflow_run` job, which holds a write token: so it reads nothing the fork's
# run produced (no artifact, no log, no checkout) and takes from the event only values it
# checks the shape of. The comment is built from the run's conclusion and link alone.
#
# Needs: IMGIX_RECONCILER_VENV, GH_TOKEN, GITHUB_REPOSITORY, PLAN_WORKFLOW (the caller's
# name, from the default branch) and, from the event's workflow_run: RUN_ID, RUN_STARTED,
# CONCLUSION, HEAD_OWNER, HEAD_BRANCH, HEAD_SHA, and PLAN_WORKFLOW_PATH (its path, which
# keys the notice as the plan run keys its comment: it replaces that caller's comment only).
set -euo pipefail

venv="${IMGIX_RECONCILER_VENV:?}"
[[ "${RUN_ID:?}" =~ ^[0-9]+$ ]] || { echo "::error title=imgix-reconciler::not a run id"; exit 1; }
[[ "${HEAD_SHA:?}" =~ ^[0-9a-f]{40}$ ]] || { echo "::error title=imgix-reconciler::not a commit"; exit 1; }
[[ "${HEAD_OWNER:?}" =~ ^[A-Za-z0-9-]{1,39}$ ]] || { echo "::error title=imgix-reconciler::not an owner"; exit 1; }
[[ "${RUN_STARTED:?}" =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$ ]] || { echo "::error title=imgix-reconciler::not a time"; exit 1; }
[[ "${CONCLUSION:-}" =~ ^[a-z_]{0,20}$ ]] || CONCLUSION=unknown

# The pull request whose head is this branch of the fork at exactly this commit. The branch
# name is the fork's text: it only ever travels as a query parameter.
number="$(gh api --method GET "repos/${GITHUB_REPOSITORY:?}/pulls" \
  -f state=open -f "head=$HEAD_OWNER:${HEAD_BRANCH:?}" \
  --jq ".[] | select(.head.sha == \"$HEAD_SHA\") | .number" | sed -n 1p)"
if [[ ! "$number" =~ ^[0-9]+$ ]]; then
  echo "::notice title=imgix-reconciler::no open pull request has this run's commit (pushed again since?): nothing to post"
  exit 0
fi

body="${RUNNER_TEMP:?}/imgix-reconciler-fork-notice.md"
run_url="${GITHUB_SERVER_URL:-https://github.com}/$GITHUB_REPOSITORY/actions/runs/$RUN_ID"
key="$("$venv/bin/python" -I -m reconciler.github comment-key -- "${PLAN_WORKFLOW_PATH:?}")"
"$venv/bin/python" -I -m reconciler.github fork-notice --key "$key" \
  --conclusion "$CONCLUSION" --run-url "$run_url" --workflow "${PLAN_WORKFLOW:?}" > "$body"
echo "comment-file=$body" >> "${GITHUB_OUTPUT:-/dev/null}"
# A maintainer's plan made after this run started is of this commit or a later one: its
# digest is what a merge applies, so the notice never replaces it.
KEEP_PLAN_NEWER_THAN="$RUN_STARTED" \
  bash "$(dirname "${BASH_SOURCE[0]}")/upsert-comment.sh" "$number" "$body"
