#!/usr/bin/env bash
# Post BODY_FILE as the workflow's plan comment on pull request NUMBER, or update the one
# posted before: the comment of the same caller workflow (its bot's), found by the marker
# on the body's first line, which names the caller's key. With no comment of that key, an
# unkeyed one (posted by an older version) is taken over, so an upgrade adds no comment.
# Fails when the token may not write (a fork's pull request gets a read-only one).
#
# Usage: upsert-comment.sh NUMBER BODY_FILE. Needs GH_TOKEN and GITHUB_REPOSITORY. With
# KEEP_PLAN_NEWER_THAN (an ISO 8601 time in UTC), a comment holding a plan (its digest
# lines) updated after that time is kept as it is.
set -euo pipefail

fail() {
  echo "::error title=imgix-reconciler::$1"
  exit 1
}

(($# == 2)) || fail "Usage: upsert-comment.sh NUMBER BODY_FILE"
number="$1"
body="$2"
legacy="<!-- imgix-reconciler:plan -->"
bot="github-actions[bot]"
[[ "$number" =~ ^[0-9]+$ ]] || fail "no pull request number"
[[ -f "$body" && -r "$body" ]] || fail "no body file ${body@Q}"
[[ -n "${GITHUB_REPOSITORY:-}" ]] || fail "GITHUB_REPOSITORY is not set"
keep="${KEEP_PLAN_NEWER_THAN:-}"
# Compared as text below, and printed: only a time of exactly that form.
if [[ -n "$keep" && ! "$keep" =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$ ]]; then
  fail "KEEP_PLAN_NEWER_THAN is not a time (YYYY-MM-DDTHH:MM:SSZ)"
fi
# The first line, which must end in a line break (the search below looks for marker + LF);
# read from the file, so a path like `--help` is never an option.
IFS= read -r marker < "$body" || marker=""
# The key goes into a jq program below: only a strictly checked one.
if [[ ! "$marker" =~ ^"<!-- imgix-reconciler:plan key="[A-Za-z0-9._-]{1,64}" -->"$ && "$marker" != "$legacy" ]]; then
  fail "the comment does not start with a plan marker"
fi

# The bot's marked comments of this key, then the unkeyed ones: id, last update, whether it
# holds a plan. The last of this key's, else the last unkeyed one, is updated. A failed
# listing fails the script (never a second comment).
found="$(gh api --paginate "repos/$GITHUB_REPOSITORY/issues/$number/comments" \
  --jq ".[] | select(.user.login == \"$bot\")
    | (if (.body | startswith(\"$marker\n\")) then \"own\"
       elif (.body | startswith(\"$legacy\n\")) then \"old\" else empty end) as \$kind
    | [\$kind, .id, .updated_at, (.body | contains(\"<!-- imgix-reconciler:digest \"))] | @tsv")"
latest="$(grep '^own' <<< "$found" | tail -n 1 || true)"
[[ -n "$latest" ]] || latest="$(grep '^old' <<< "$found" | tail -n 1 || true)"
IFS=$'\t' read -r _ existing updated planned <<< "$latest"
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
