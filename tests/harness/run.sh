#!/usr/bin/env bash
# The differential test of the benchmark scorers against lmms-eval's own scoring functions, in a lean environment of its
# own (.venv-harness: lmms-eval 0.7.3 without its dependencies, plus the six small packages its scoring modules import;
# about a minute to create, a few seconds to run). The kit's side runs in the main environment.
set -euo pipefail
cd "$(dirname "$0")/../.."
venv=${HARNESS_VENV:-.venv-harness}
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  # made here: with TEST_VENV_DISPOSE=1 (CI) it goes once the tests have run, whatever their outcome
  if [ "${TEST_VENV_DISPOSE:-0}" = 1 ]; then trap 'rm -rf "$venv"; echo "== removed $venv; disk: $(df -h --output=avail . | tail -1) free"' EXIT; fi
fi
"$venv/bin/python" -m pip install -q -r tests/harness/requirements.txt
"$venv/bin/python" -m pip install -q --no-deps lmms-eval==0.7.3
HARNESS_PYTHON="$PWD/$venv/bin/python" python -m pytest -q -s tests/harness
