#!/usr/bin/env bash
# Install imgix-reconciler from the action's own checkout (the ref the workflow chose) into
# a virtual environment of its own, so no package index has to serve the tool and the
# job's Python packages are left alone.
set -euo pipefail

venv="${RUNNER_TEMP:?}/imgix-reconciler-venv"
if [[ ! -x "$venv/bin/imgix-reconciler" ]]; then
  python3 -I -m venv "$venv"
  "$venv/bin/python" -I -m pip install --quiet --disable-pip-version-check "${GITHUB_ACTION_PATH:?}"
fi
echo "venv=$venv" >> "${GITHUB_OUTPUT:?}"
