#!/usr/bin/env bash
# The device='xla' tests on torch-xla's CPU runtime, in their own environment (.venv-xla: torch 2.9 + torch-xla 2.9, which
# cannot share the main environment's torch 2.15), created and installed from the project's own files.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PJRT_DEVICE=CPU HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false MPLBACKEND=Agg
venv=${XLA_VENV:-.venv-xla}
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  # made here: with TEST_VENV_DISPOSE=1 (CI) it goes once the tests have run, whatever their outcome
  if [ "${TEST_VENV_DISPOSE:-0}" = 1 ]; then trap 'rm -rf "$venv"; echo "== removed $venv; disk: $(df -h --output=avail . | tail -1) free"' EXIT; fi
fi
"$venv/bin/python" -m pip install -q -e ".[xla]" -r tests/xla/requirements.txt
PATH="$PWD/$venv/bin:$PATH" python -m pytest -q tests/xla
