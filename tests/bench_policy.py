"""Benchmark (prints figures, asserts nothing): rollout throughput of the default model on this machine, and the SFT time.

    python tests/bench_policy.py [--prompts 32] [--n 8] [--max-new-tokens 128] [--device cpu] [--threads N] [--sft-steps 5]

On a CPU shared with other busy processes, compare --threads 1 with the default: oversubscribed OpenMP threads can
make everything an order of magnitude slower.
"""
import argparse, json, time

import torch

from openvlthinker_nb.tasks.data import load_onethinker
from openvlthinker_nb.tasks.synthetic import default_split
from openvlthinker_nb.policy.load import DEFAULT_MODEL, load_policy
from openvlthinker_nb.policy.rollout import response_logprobs, rollout
from openvlthinker_nb.trainer.sft import build_model, sft, torch_threads


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--prompts', type=int, default=32); p.add_argument('--n', type=int, default=8)
    p.add_argument('--max-new-tokens', type=int, default=128); p.add_argument('--device', default='cpu')
    p.add_argument('--micro-batch', type=int, default=32); p.add_argument('--sft-steps', type=int, default=5)
    p.add_argument('--threads', type=int, default=None, help='torch CPU threads (default: leave as is)')
    a = p.parse_args(argv)
    if a.threads: torch.set_num_threads(a.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {a.device}")
    model, processor = load_policy(DEFAULT_MODEL, device=a.device)
    ds = load_onethinker(default_split('test'))
    records = [ds[i * len(ds) // a.prompts] for i in range(a.prompts)]   # every family
    rollout(model, processor, records[:2], n=2, max_new_tokens=8, seed=0)  # warm-up
    t = time.perf_counter()
    ro = rollout(model, processor, records, n=a.n, temperature=1.0, max_new_tokens=a.max_new_tokens, seed=0)
    dt = time.perf_counter() - t
    N, toks = len(ro), int(ro.n_tokens.sum())
    print(f"rollout: {a.prompts} prompts x n={a.n} = {N} responses, {toks} response tokens "
          f"(mean {toks / N:.1f}, longest {ro.response_ids.shape[1]}) in {dt:.2f} s: "
          f"{N / dt:.1f} responses/s, {toks / dt:.0f} tokens/s")
    t = time.perf_counter()
    logp, ent = response_logprobs(model, ro, micro_batch=a.micro_batch)
    (logp.sum() + ent.sum()).backward()
    dt = time.perf_counter() - t
    print(f"response_logprobs forward+backward (micro-batch {a.micro_batch}): {dt:.2f} s, {N / dt:.1f} responses/s, {toks / dt:.0f} tokens/s")
    log = json.loads((DEFAULT_MODEL/'sft_log.json').read_text())
    print(f"SFT of the shipped model (recorded in sft_log.json): {log['steps']} steps x batch {log['batch_size']} in "
          f"{log['sft_seconds']:.0f} s ({log['sft_seconds'] / log['steps']:.2f} s/step, {log['torch_threads']} threads); "
          f"data preparation {log['prep_seconds']:.0f} s, test evaluation {log['eval_seconds']:.0f} s")
    if a.sft_steps:
        train = load_onethinker(default_split('train'))
        m = build_model(processor.tokenizer, seed=0, **log['sizes'])
        with torch_threads(log['torch_threads']):
            t = time.perf_counter()
            sft(m, processor, train, steps=a.sft_steps, batch_size=log['batch_size'], lr=log['lr'], progress=False)
            dt = time.perf_counter() - t
        print(f"SFT now ({log['torch_threads']} threads): {a.sft_steps} steps in {dt:.1f} s ({dt / a.sft_steps:.2f} s/step) -> {log['steps']} steps would take "
              f"{dt / a.sft_steps * log['steps']:.0f} s on this machine now")


if __name__ == '__main__': main()
