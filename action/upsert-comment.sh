#!/usr/bin/env bash
# Post BODY_FILE as the workflow's plan comment on pull request NUMBER, or update the one
# posted before: the workflow's own comment (its bot's), found by the marker on its first
# line. Fails when the token may not write (a fork's pull request gets a read-only one).
#
# Usage: upsert-comment.sh NUMBER BODY_FILE. Needs GH_TOKEN and GITHUB_REPOSITORY.
set -euo pipefail

number="$1"
body="$2"
marker="<!-- imgix-reconciler:plan -->"
bot="github-actions[bot]"
[[ "$number" =~ ^[0-9]+$ ]] || { echo "::error title=imgix-reconciler::no pull request number"; exit 1; }

existing="$(gh api --paginate "repos/${GITHUB_REPOSITORY:?}/issues/$number/comments" \
  --jq ".[] | select(.user.login == \"$bot\" and (.body | startswith(\"$marker\"))) | .id" \
  | tail -n 1)"
if [[ -n "$existing" ]]; then
  gh api --method PATCH "repos/$GITHUB_REPOSITORY/issues/comments/$existing" -F "body=@$body" > /dev/null
else
  gh api --method POST "repos/$GITHUB_REPOSITORY/issues/$number/comments" -F "body=@$body" > /dev/null
fi
