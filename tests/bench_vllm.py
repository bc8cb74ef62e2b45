"""Benchmark (prints figures, asserts nothing): rollout throughput of the `vllm` and `hf` engines on the same prompts and
sampling settings, in one run. Needs vLLM: on the CPU, run it in the test environment (`bash tests/vllm_cpu/run.sh` builds it):

    .venv-vllm/bin/python tests/bench_vllm.py [--model default] [--prompts 16] [--n 8] [--max-new-tokens 48] [--device cpu] [--threads 1]

With --device cuda and a real model (the `vllm` extra installed) it measures the GPU; --max-new-tokens sets the response cap,
--min-tokens forces every response to that length (so both engines decode the same number of tokens).
"""
import argparse, time

import torch

from openvlthinker_nb.tasks.data import load_onethinker
from openvlthinker_nb.tasks.synthetic import default_split
from openvlthinker_nb.policy.load import DEFAULT_MODEL, load_policy
from openvlthinker_nb.policy.rollout import rollout
from openvlthinker_nb.policy import vllm as vllm_engine


def _time(fn, repeats:int)->tuple:
    "(seconds per call, responses per call, tokens per call) of `fn(seed)` over `repeats` calls after one warm-up."
    fn(0)
    t0, R, T = time.perf_counter(), 0, 0
    for s in range(1, repeats + 1):
        ro = fn(s); R += len(ro); T += int(ro.n_tokens.sum())
    dt = (time.perf_counter() - t0) / repeats
    return dt, R / repeats, T / repeats


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--model', default=str(DEFAULT_MODEL)); p.add_argument('--device', default='cpu')
    p.add_argument('--prompts', type=int, default=16); p.add_argument('--n', type=int, default=8)
    p.add_argument('--max-new-tokens', type=int, default=48); p.add_argument('--temperature', type=float, default=1.0)
    p.add_argument('--repeats', type=int, default=3); p.add_argument('--dtype', default='float32')
    p.add_argument('--kv-cache-gib', type=float, default=0.0); p.add_argument('--max-model-len', type=int, default=0)
    p.add_argument('--threads', type=int, default=None, help='torch CPU threads (default: leave as is)')
    a = p.parse_args(argv)
    if a.threads: torch.set_num_threads(a.threads)
    import vllm
    model, processor = load_policy(a.model, dtype=a.dtype, device=a.device)
    t0 = time.perf_counter()
    vllm_engine.attach(model, processor, vllm_engine.VLLMSettings(kv_cache_gib=a.kv_cache_gib, max_model_len=a.max_model_len))
    t_attach = time.perf_counter() - t0
    ds = load_onethinker(default_split('test'))
    records = [ds[i * len(ds) // a.prompts] for i in range(a.prompts)]   # every family, one image each
    print(f"torch {torch.__version__}, vllm {vllm.__version__}, {torch.get_num_threads()} threads, device {a.device}, model {a.model}")
    print(f"{a.prompts} prompts x {a.n} responses, temperature {a.temperature}, max_new_tokens {a.max_new_tokens}, {a.repeats} timed calls each after one warm-up")
    print(f"vllm engine built and weights pushed in {t_attach:.1f} s")
    rows = []
    for name in ('hf', 'vllm'):
        fn = lambda s: rollout(model, processor, records, n=a.n, temperature=a.temperature, max_new_tokens=a.max_new_tokens, seed=s, engine=name)
        dt, R, T = _time(fn, a.repeats)
        rows.append((name, dt, R / dt, T / dt, T / R))
    t0 = time.perf_counter(); vllm_engine.push_weights(model); t_push = time.perf_counter() - t0
    print(f"\n{'engine':8}{'s/call':>10}{'responses/s':>14}{'tokens/s':>12}{'tokens/response':>17}")
    for name, dt, rps, tps, tpr in rows: print(f"{name:8}{dt:10.2f}{rps:14.1f}{tps:12.1f}{tpr:17.1f}")
    print(f"\nvllm / hf tokens/s: {rows[1][3] / rows[0][3]:.2f}x; one weight push: {t_push:.2f} s")


if __name__ == '__main__':
    main()
