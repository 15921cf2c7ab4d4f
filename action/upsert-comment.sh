#!/usr/bin/env bash
# Post BODY_FILE as the workflow's plan comment on pull request NUMBER, or update the one
# posted before: the workflow's own comment (its bot's), found by the marker on its first
# line. Fails when the token may not write (a fork's pull request gets a read-only one).
#
# Usage: upsert-comment.sh NUMBER BODY_FILE. Needs GH_TOKEN and GITHUB_REPOSITORY. With
# KEEP_PLAN_NEWER_THAN (an ISO 8601 time in UTC), a comment holding a plan (its digest
# lines) updated after that time is kept as it is.
set -euo pipefail

number="$1"
body="$2"
marker="<!-- imgix-reconciler:plan -->"
bot="github-actions[bot]"
[[ "$number" =~ ^[0-9]+$ ]] || { echo "::error title=imgix-reconciler::no pull request number"; exit 1; }

# The last of the bot's marked comments: id, last update, whether it holds a plan. A failed
# listing fails the script (never a second comment).
latest="$(gh api --paginate "repos/${GITHUB_REPOSITORY:?}/issues/$number/comments" \
  --jq ".[] | select(.user.login == \"$bot\" and (.body | startswith(\"$marker\")))
    | [.id, .updated_at, (.body | contains(\"<!-- imgix-reconciler:digest \"))] | @tsv" \
  | tail -n 1)"
IFS=$'\t' read -r existing updated planned <<< "$latest"
keep="${KEEP_PLAN_NEWER_THAN:-}"
# ISO 8601 times in UTC compare as text.
if [[ -n "$keep" && "${planned:-}" == true && "${updated:-}" > "$keep" ]]; then
  echo "::notice title=imgix-reconciler::pull request #$number has a plan updated after $keep, newer than this run: kept"
  exit 0
fi
if [[ -n "$existing" ]]; then
  gh api --method PATCH "repos/$GITHUB_REPOSITORY/issues/comments/$existing" -F "body=@$body" > /dev/null
else
  gh api --method POST "repos/$GITHUB_REPOSITORY/issues/$number/comments" -F "body=@$body" > /dev/null
fi
