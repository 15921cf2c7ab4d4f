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

venv="${IMGIX_RECONCILER_VENV:?}"
cli=("$venv/bin/python" -I -m reconciler)
helper=("$venv/bin/python" -I -m reconciler.github)
command="${INPUT_COMMAND:-}"
account="${INPUT_ACCOUNT:-default}"
[[ "$account" =~ ^[A-Za-z0-9._-]{1,64}$ ]] || fail "account must be letters, digits, '.', '_' or '-'"
read -r -d '' -a files <<< "${INPUT_FILES:-}"
((${#files[@]})) || fail "no files given (input: files)"

out="${RUNNER_TEMP:?}/imgix-reconciler/$account"
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
      "${cli[@]}" validate --no-resolve "${files[@]}"
      code=$?
    else
      "${cli[@]}" plan "${files[@]}" "${connection[@]}" --format markdown --out "$json" \
        --detailed-exitcode > "$markdown"
      code=$?
    fi
    ;;
  drift)
    "${cli[@]}" drift "${files[@]}" "${connection[@]}" --format json > "$json"
    code=$?
    ;;
  apply)
    if [[ -n "${INPUT_REVIEWED_PLAN:-}" ]]; then
      # A follow-up of an apply that stopped for time: only what is left of the reviewed plan.
      GITHUB_STEP_SUMMARY="" "${cli[@]}" plan "${files[@]}" "${connection[@]}" \
        --format json --out "$out/fresh.json" > /dev/null
      code=$?
      if ((code == 0)); then
        digest="$("${helper[@]}" remaining-digest "$INPUT_REVIEWED_PLAN" "$out/fresh.json" \
          "${connection[@]}")"
        code=$?
      fi
      cp "$INPUT_REVIEWED_PLAN" "$json"
    else
      digest="${INPUT_EXPECT_DIGEST:-}"
      [[ -n "$digest" ]] || fail "apply needs expect-digest (the digest of the reviewed plan)"
      # Kept for a follow-up run when the reviewed plan is the one planned now.
      GITHUB_STEP_SUMMARY="" "${cli[@]}" plan "${files[@]}" "${connection[@]}" \
        --format json --out "$json" > /dev/null
      code=$?
    fi
    if ((code == 0)); then
      options=(--auto-approve --expect-digest "$digest")
      [[ -n "${INPUT_MAX_DURATION:-}" ]] && options+=(--max-duration "$INPUT_MAX_DURATION")
      [[ "${INPUT_WAIT:-false}" == true ]] && options+=(--wait)
      "${cli[@]}" apply "${files[@]}" "${connection[@]}" "${options[@]}" | tee "$out/apply.txt"
      code=${PIPESTATUS[0]}
    fi
    ;;
  validate)
    "${cli[@]}" validate "${files[@]}"
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
} >> "${GITHUB_OUTPUT:?}"

case "$command:$code" in
  plan:0 | plan:2 | drift:0 | drift:2) exit 0 ;;
  *) exit "$code" ;;
esac
