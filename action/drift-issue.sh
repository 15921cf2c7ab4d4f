#!/usr/bin/env bash
# Keep one issue in step with the scheduled drift check: opened (or updated) with the
# report while any account drifted, closed once every account is back in sync. An account
# whose check failed, or whose job left no result at all (timed out, cancelled), leaves the
# issue as it is and fails the job.
#
# Needs: RESULTS (folder of the accounts' result folders), ACCOUNTS (the workflow's JSON
# list of accounts), IMGIX_RECONCILER_VENV, GH_TOKEN, GITHUB_REPOSITORY.
set -euo pipefail

marker="<!-- imgix-reconciler:drift -->"
bot="github-actions[bot]"
title="imgix drift: live sources differ from the files"
venv="${IMGIX_RECONCILER_VENV:?}"

shopt -s nullglob
folders=("${RESULTS:?}"/*/)
((${#folders[@]})) || { echo "::error title=imgix-reconciler::no account produced a result"; exit 1; }
codes="$(cat "${folders[@]/%/result.json}" | jq -s '[.[].exit_code] | unique | join(" ")' -r)"
reported="$(jq -r .account "${folders[@]/%/result.json}")"
missing="$(jq -r '.[].name' <<< "${ACCOUNTS:?}" | grep -vxF -f <(printf '%s\n' "$reported") || true)"
body="${RUNNER_TEMP:?}/imgix-reconciler-drift.md"
run_url="${GITHUB_SERVER_URL:-https://github.com}/$GITHUB_REPOSITORY/actions/runs/${GITHUB_RUN_ID:-0}"
"$venv/bin/python" -I -m reconciler.github combine --view drift --run-url "$run_url" \
  --accounts "$ACCOUNTS" "${folders[@]}" > "$body"
cat "$body" >> "${GITHUB_STEP_SUMMARY:-/dev/null}"

# `sed -n 1p`, not `head -n 1`: it reads all, so gh never writes into a closed pipe (a
# SIGPIPE that pipefail would turn into a failed job when two issues match).
open="$(gh api --paginate "repos/$GITHUB_REPOSITORY/issues?state=open" \
  --jq ".[] | select(.user.login == \"$bot\" and (.body // \"\" | startswith(\"$marker\"))) | .number" \
  | sed -n 1p)"

if [[ -n "$missing" ]]; then
  # Its sources were not checked: neither drift nor "back in sync" can be said.
  echo "::error title=imgix-reconciler::no result from account ${missing//$'\n'/, } (its job failed or was cancelled)"
  exit 1
elif [[ " $codes " == *" 1 "* ]]; then
  echo "::error title=imgix-reconciler::the drift check failed for an account (see its job)"
  exit 1
elif [[ " $codes " == *" 2 "* ]]; then
  if [[ -n "$open" ]]; then
    gh api --method PATCH "repos/$GITHUB_REPOSITORY/issues/$open" -F "body=@$body" > /dev/null
  else
    gh api --method POST "repos/$GITHUB_REPOSITORY/issues" -f "title=$title" -F "body=@$body" \
      > /dev/null
  fi
  echo "::warning title=imgix-reconciler::live sources drifted from the files (see the issue)"
elif [[ -n "$open" ]]; then
  gh api --method POST "repos/$GITHUB_REPOSITORY/issues/$open/comments" \
    -f "body=Back in sync: every account's live sources match the files ($run_url)." > /dev/null
  gh api --method PATCH "repos/$GITHUB_REPOSITORY/issues/$open" -f state=closed \
    -f state_reason=completed > /dev/null
fi
