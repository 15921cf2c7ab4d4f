#!/usr/bin/env bash
# The action's one command: run imgix-reconciler, keep its outputs in a result folder and
# tell the workflow what happened ($GITHUB_OUTPUT). Inputs come as INPUT_* variables (see
# action.yml); IMGIX_RECONCILER_VENV is the environment install.sh made.
#
# The step fails on an error only: changes (plan) and drift exit 2, which the outputs
# report, so the workflow decides what they mean.
set -uo pipefail

fail() {
  echo "::error title=imgix-reconciler::$1"
  exit 1
}

# Checked before anything runs: without a place for the outputs, an apply would write to
# imgix and only then fail the step.
for name in IMGIX_RECONCILER_VENV RUNNER_TEMP GITHUB_OUTPUT; do
  [[ -n "${!name:-}" ]] || fail "$name is not set (the runner or the action's install step sets it)"
done
venv="$IMGIX_RECONCILER_VENV"
cli=("$venv/bin/python" -I -m reconciler)
helper=("$venv/bin/python" -I -m reconciler.github)
command="${INPUT_COMMAND:-}"
account="${INPUT_ACCOUNT:-default}"
# The account names a folder: `.` and `..` would be another one.
if [[ ! "$account" =~ ^[A-Za-z0-9._-]{1,64}$ || "$account" == . || "$account" == .. ]]; then
  fail "account must be letters, digits, '.', '_' or '-' (not . or ..)"
fi
# Split on blanks, never globbed. The files come after `--` on every command line below,
# so a name like `--help` is a file, not an option.
read -r -d '' -a files <<< "${INPUT_FILES:-}"
((${#files[@]})) || fail "no files given (input: files)"

out="$RUNNER_TEMP/imgix-reconciler/$account"
rm -rf "$out"
mkdir -p "$out"
markdown="$out/plan.md"
json="$out/plan.json"

connection=()
[[ -n "${INPUT_API_URL:-}" ]] && connection=(--api-url "$INPUT_API_URL")

# IMGIX_SOURCE_SECRETS holds the values of the files' {env: NAME} references, one
# NAME=value a line (one secret per account instead of one per reference). Names the
# runner or the tool relies on are refused.
if [[ -n "${IMGIX_SOURCE_SECRETS:-}" ]]; then
  while IFS= read -r line; do
    line="${line%$'\r'}"  # a secret saved with Windows line ends: the CR is no part of it
    [[ -z "${line//[[:space:]]/}" || "$line" == \#* ]] && continue
    if [[ "$line" =~ ^([A-Z_][A-Z0-9_]*)=(.*)$ ]]; then
      name="${BASH_REMATCH[1]}"
      case "$name" in
        PATH | HOME | GITHUB_* | RUNNER_* | IMGIX_* | INPUT_* | PYTHON* | BASH*)
          fail "IMGIX_SOURCE_SECRETS may not set $name" ;;
      esac
      export "$name=${BASH_REMATCH[2]}"
    else
      fail "IMGIX_SOURCE_SECRETS: a line is not NAME=value (NAME in capitals, digits and _)"
    fi
  done <<< "$IMGIX_SOURCE_SECRETS"
fi

planned=true
case "$command" in
  plan)
    if [[ -z "${IMGIX_API_KEY:-}" ]]; then
      # No secrets in this job (a fork's pull request): validate with annotations, plan later.
      planned=false
      echo "::notice title=imgix-reconciler::No IMGIX_API_KEY in this job: validating $account only; a maintainer runs the plan."
      "${cli[@]}" validate --no-resolve -- "${files[@]}"
      code=$?
    else
      "${cli[@]}" plan "${connection[@]}" --format markdown --out "$json" \
        --detailed-exitcode -- "${files[@]}" > "$markdown"
      code=$?
    fi
    ;;
  drift)
    "${cli[@]}" drift "${connection[@]}" --format json -- "${files[@]}" > "$json"
    code=$?
    ;;
  apply)
    if [[ -n "${INPUT_REVIEWED_PLAN:-}" ]]; then
      # A follow-up of an apply that stopped for time: only what is left of the reviewed plan.
      GITHUB_STEP_SUMMARY="" "${cli[@]}" plan "${connection[@]}" \
        --format json --out "$out/fresh.json" -- "${files[@]}" > /dev/null
      code=$?
      if ((code == 0)); then
        digest="$("${helper[@]}" remaining-digest "${connection[@]}" -- \
          "$INPUT_REVIEWED_PLAN" "$out/fresh.json")"
        code=$?
      fi
      cp -- "$INPUT_REVIEWED_PLAN" "$json"
    else
      digest="${INPUT_EXPECT_DIGEST:-}"
      [[ -n "$digest" ]] || fail "apply needs expect-digest (the digest of the reviewed plan)"
      # Kept for a follow-up run when the reviewed plan is the one planned now.
      GITHUB_STEP_SUMMARY="" "${cli[@]}" plan "${connection[@]}" \
        --format json --out "$json" -- "${files[@]}" > /dev/null
      code=$?
    fi
    if ((code == 0)); then
      options=(--auto-approve --expect-digest "$digest")
      [[ -n "${INPUT_MAX_DURATION:-}" ]] && options+=(--max-duration "$INPUT_MAX_DURATION")
      [[ "${INPUT_WAIT:-false}" == true ]] && options+=(--wait)
      "${cli[@]}" apply "${connection[@]}" "${options[@]}" -- "${files[@]}" | tee "$out/apply.txt"
      code=${PIPESTATUS[0]}
    fi
    ;;
  validate)
    "${cli[@]}" validate -- "${files[@]}"
    code=$?
    ;;
  *)
    fail "command must be plan, apply, drift or validate"
    ;;
esac

has_changes=false
if [[ "$command" == plan || "$command" == drift ]] && ((code == 2)); then
  has_changes=true
fi
digest_of_plan=""
if [[ -s "$json" ]]; then
  digest_of_plan="$("$venv/bin/python" -I -c 'import json, sys; print(json.load(open(sys.argv[1]))["digest"])' "$json" 2> /dev/null)" || digest_of_plan=""
fi
# A reviewed plan is a file from elsewhere: a line break in its digest would add outputs.
[[ "$digest_of_plan" =~ ^sha256:[0-9a-f]{64}$ ]] || digest_of_plan=""
printf '{"account": "%s", "command": "%s", "exit_code": %d, "planned": %s}\n' \
  "$account" "$command" "$code" "$planned" > "$out/result.json"
if [[ "$command" == drift && -s "$json" ]]; then
  # The drift report as markdown, from the document just written (one listing, not two).
  "${helper[@]}" combine --view drift "$out" > "$markdown" || rm -f "$markdown"
fi
[[ -s "$json" ]] || rm -f "$json"
[[ -s "$markdown" ]] || rm -f "$markdown"

{
  echo "exit-code=$code"
  echo "has-changes=$has_changes"
  echo "digest=$digest_of_plan"
  echo "planned=$planned"
  echo "markdown-plan=$([[ -f "$markdown" ]] && echo "$markdown")"
  echo "json-plan=$([[ -f "$json" ]] && echo "$json")"
  echo "result-directory=$out"
} >> "$GITHUB_OUTPUT"

case "$command:$code" in
  plan:0 | plan:2 | drift:0 | drift:2) exit 0 ;;
  *) exit "$code" ;;
esac
