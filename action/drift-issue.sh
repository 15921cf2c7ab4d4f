#!/usr/bin/env bash
# Keep one issue in step with the scheduled drift check: opened (or updated) with the
# report while any account drifted, closed once every account is back in sync. An account
# whose check failed, or whose job left no result at all (timed out, cancelled), leaves the
# issue as it is and fails the job.
#
# Needs: RESULTS (folder of the accounts' result folders), ACCOUNTS (the workflow's JSON
# list of accounts), IMGIX_RECONCILER_VENV, GH_TOKEN, GITHUB_REPOSITORY, and
# GITHUB_WORKFLOW_REF (the caller workflow's, which GitHub sets): each caller workflow keeps
# its own issue (its key in the marker), so one caller in sync never closes another's
# drift. With no open issue of its key, an unkeyed one (an older version's) is taken over.
set -euo pipefail

legacy="<!-- imgix-reconciler:drift -->"
bot="github-actions[bot]"
venv="${IMGIX_RECONCILER_VENV:?}"
key="$("$venv/bin/python" -I -m reconciler.github comment-key -- "${GITHUB_WORKFLOW_REF:?}")"
marker="<!-- imgix-reconciler:drift key=$key -->"
title="imgix drift: live sources differ from the files ($key)"

shopt -s nullglob
folders=("${RESULTS:?}"/*/)
((${#folders[@]})) || { echo "::error title=imgix-reconciler::no account produced a result"; exit 1; }
codes="$(cat "${folders[@]/%/result.json}" | jq -s '[.[].exit_code] | unique | join(" ")' -r)"
reported="$(jq -r .account "${folders[@]/%/result.json}")"
missing="$(jq -r '.[].name' <<< "${ACCOUNTS:?}" | grep -vxF -f <(printf '%s\n' "$reported") || true)"
body="${RUNNER_TEMP:?}/imgix-reconciler-drift.md"
run_url="${GITHUB_SERVER_URL:-https://github.com}/$GITHUB_REPOSITORY/actions/runs/${GITHUB_RUN_ID:-0}"
"$venv/bin/python" -I -m reconciler.github combine --view drift --key "$key" --run-url "$run_url" \
  --accounts "$ACCOUNTS" -- "${folders[@]}" > "$body"
cat "$body" >> "${GITHUB_STEP_SUMMARY:-/dev/null}"

# `sed -n 1p`, not `head -n 1`: it reads all, so gh never writes into a closed pipe (a
# SIGPIPE that pipefail would turn into a failed job when two issues match).
# The key is a checked name (comment-key): safe inside the jq program. The listing holds
# pull requests too (a `pull_request` key): one whose body quotes the marker is never
# updated or closed as the issue.
found="$(gh api --paginate "repos/$GITHUB_REPOSITORY/issues?state=open" \
  --jq ".[] | select(.user.login == \"$bot\" and .pull_request == null)
    | (.body // \"\") as \$body
    | if (\$body | startswith(\"$marker\n\")) then \"own \(.number)\"
      elif (\$body | startswith(\"$legacy\n\")) then \"old \(.number)\" else empty end")"
open="$({ grep '^own ' <<< "$found" || grep '^old ' <<< "$found" || true; } | sed -n '1s/^[a-z]* //p')"

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
