#!/usr/bin/env bash
# Install the project with every direct dependency at the lowest version pyproject.toml
# admits, in a throwaway virtual environment outside the repository, print what was
# installed, and run the type checker, the linters and the test suite there: a range
# whose lower bound no longer works fails here, not on a user's machine.
#
#   scripts/check-lowest.sh                      # python3, the whole suite
#   PYTHON=python3.10 scripts/check-lowest.sh    # another interpreter
#   scripts/check-lowest.sh tests/test_cli.py -x # arguments go to pytest
#
# LOWEST_VENV names the environment (default: /tmp/imgix-reconciler-lowest-<python
# version>); it is made anew on every run. Needs the package registry (uv and the
# dependencies are downloaded); the extras installed are those of `.[dev,github-lint]`
# (what .ci/run installs; actionlint comes from .ci/tools as there).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

python=${PYTHON:-python3}
version=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
venv=${LOWEST_VENV:-/tmp/imgix-reconciler-lowest-$version}

rm -rf "$venv"
"$python" -m venv "$venv"
# uv resolves the direct dependencies to their lowest admitted versions (pip cannot);
# it lives in the throwaway environment only.
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check 'uv>=0.5,<1'
"$venv/bin/uv" pip install --quiet --python "$venv/bin/python" \
  --resolution lowest-direct -e '.[dev,github-lint]'

echo "Installed at the lowest admitted versions (Python $version, $venv):"
"$venv/bin/uv" pip freeze --python "$venv/bin/python" --exclude-editable | sed 's/^/  /'

"$venv/bin/ruff" check --no-cache .
"$venv/bin/ruff" format --check --no-cache .
# No cache either: .ci/run runs this beside the repository's own mypy, whose cache it is.
"$venv/bin/mypy" --strict --no-incremental --cache-dir=/dev/null reconciler
# No cache directory: the repository's .pytest_cache belongs to its own .venv's runs.
"$venv/bin/python" -m pytest -p no:cacheprovider "$@"
