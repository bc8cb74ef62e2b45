#!/usr/bin/env bash
# The device='xla' tests on torch-xla's CPU runtime, in their own environment (.venv-xla: torch 2.9 + torch-xla 2.9, which
# cannot share the main environment's torch 2.15), created and installed from the project's own files.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PJRT_DEVICE=CPU HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false MPLBACKEND=Agg
venv=${XLA_VENV:-.venv-xla}
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q -e ".[xla]" -r tests/xla/requirements.txt
PATH="$PWD/$venv/bin:$PATH" python -m pytest -q tests/xla
