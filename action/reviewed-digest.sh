#!/usr/bin/env bash
# Print the digest of the plan reviewed on the pull request that brought GITHUB_SHA into
# the branch, for the account ACCOUNT: the newest of the plan comments (one per caller
# workflow) that records it.
#
# Needs: ACCOUNT, IMGIX_RECONCILER_VENV, GH_TOKEN, GITHUB_REPOSITORY, GITHUB_SHA.
set -euo pipefail

venv="${IMGIX_RECONCILER_VENV:?}"
number="$(gh api "repos/$GITHUB_REPOSITORY/commits/${GITHUB_SHA:?}/pulls" \
  --jq '[.[] | select(.merged_at != null)][0].number // empty')"
if [[ -z "$number" ]]; then
  echo "::error title=imgix-reconciler::commit $GITHUB_SHA came from no merged pull request: nothing reviewed to apply"
  exit 1
fi
comments="${RUNNER_TEMP:?}/imgix-reconciler-comments-$number.jsonl"
gh api --paginate "repos/$GITHUB_REPOSITORY/issues/$number/comments" \
  --jq '.[] | {user: {login: .user.login}, body: .body, updated_at: .updated_at} | tojson' > "$comments"
"$venv/bin/python" -I -m reconciler.github reviewed-digest -- "$comments" "${ACCOUNT:?}"
