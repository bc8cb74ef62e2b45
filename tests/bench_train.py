"""Benchmark: throughput of one RL step of the main job's configuration (default model, CPU) and where its time goes.

    python tests/bench_train.py [--steps 2] [name=value ...]   # overrides are TrainConfig fields

Runs `train.setup` and `train.rl_step` directly (no evaluation), one warm-up step, then the timed ones.
The machine is shared: numbers taken while other jobs run are pessimistic.
"""
import argparse, json, tempfile, time
import torch
from openvlthinker_nb.trainer.config import TrainConfig
from openvlthinker_nb.trainer.loop import setup, rl_step, parse_override

PHASES = ('generate', 'score', 'logprobs', 'update')

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--steps', type=int, default=2, help='timed steps (after one warm-up step)')
    ap.add_argument('overrides', nargs='*', help='name=value TrainConfig overrides')
    a = ap.parse_args()
    over = dict(parse_override(kv) for kv in a.overrides)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = TrainConfig.from_dict({'device': 'cpu', **over, 'output_dir': tmp, 'progress': False, 'max_steps': a.steps + 1})
        t0 = time.perf_counter(); run = setup(cfg); t_setup = time.perf_counter() - t0
        rl_step(run)   # warm-up
        ms = [rl_step(run) for _ in range(a.steps)]
    print(f"config: batch_prompts={cfg.batch_prompts} n={cfg.n} max_new_tokens={cfg.max_new_tokens} micro_batch={cfg.micro_batch} "
          f"online_filter={cfg.online_filter} torch threads={torch.get_num_threads()}; setup {t_setup:.1f}s")
    for m in ms:
        n_resp = m['filter/prompts_drawn'] * cfg.n
        n_tok = m['length/mean'] * n_resp
        sec = m['seconds']
        parts = {p: m[f'time/{p}'] for p in PHASES}
        parts['other'] = sec - sum(parts.values())
        print(f"step {m['step']}: {n_resp} responses, {n_tok:.0f} response tokens in {sec:.2f}s -> {n_resp/sec:.2f} responses/s, "
              f"{n_tok/sec:.1f} tokens/s (generation alone: {n_tok/m['time/generate']:.1f} tokens/s)")
        print('   ' + ', '.join(f"{p} {t:.2f}s ({100*t/sec:.0f}%)" for p, t in parts.items()))
    print(json.dumps({'responses_per_s': sum(m['filter/prompts_drawn'] * cfg.n for m in ms) / sum(m['seconds'] for m in ms),
                      'tokens_per_s': sum(m['length/mean'] * m['filter/prompts_drawn'] * cfg.n for m in ms) / sum(m['seconds'] for m in ms),
                      **{f'share_{p}': sum(m[f'time/{p}'] for m in ms) / sum(m['seconds'] for m in ms) for p in PHASES}}))

if __name__ == '__main__': main()
