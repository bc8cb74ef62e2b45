"""Benchmark (prints figures, asserts nothing): one RL step of the main job with each rollout engine, side by side in one run.

    python tests/bench_engines.py [--engines hf shared] [--steps 4] [--threads 2] [--flops] [--compile-probe] [name=value ...]

One `setup` per engine (same config and seed), then their steps alternate (hf, shared, hf, shared, ...) so both see the
same machine load; the first step of each is a warm-up. Per step: wall-clock time per phase (rl_step's own timers), the
step's wall time and the process's CPU time (on a shared machine the CPU time is the steadier figure: with one thread
it is about the time the step takes on an idle core), responses drawn, and the load average. The engines sample
different (equally distributed) responses, so their online filters draw different numbers of prompts: responses per
second is the like-for-like rate, seconds per step what the main job feels.

--flops: the FLOPs of one step per engine (torch.utils.flop_counter) and a matmul's FLOP/s at the same thread count:
their ratio is the step's compute limit (all FLOPs at the matmul's rate).
--compile-probe: torch.compile of the shared engine's decode step (`shared.group_decode_step`, compaction off) against
the eager step on the same prompts: compile time, graphs compiled, recompilations after warm-up, rollout time.
"""
import argparse, json, os, statistics, tempfile, time
import torch
from openvlthinker_nb.trainer.config import TrainConfig
from openvlthinker_nb.trainer.loop import setup, rl_step, parse_override

PHASES = ('generate', 'score', 'logprobs', 'update')

def matmul_flops(threads:int, n:int=1024, reps:int=20)->float:
    "FLOP/s of an n x n x n float32 matmul, per second of process CPU time divided by threads (what `threads` idle cores give)."
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3): a @ b
    c = time.process_time()
    for _ in range(reps): a @ b
    return 2 * n**3 * reps / ((time.process_time() - c) / threads)

def step_flops(run)->float:
    "FLOPs of one rl_step (every matmul, convolution and attention the step runs)."
    from torch.utils.flop_counter import FlopCounterMode
    with FlopCounterMode(display=False) as fc: rl_step(run)
    return fc.get_total_flops()

def compile_probe(run, steps:int=3)->dict:
    "Eager vs torch.compile'd decode step of the shared engine on the same 16 prompts (compaction off; the cache's filled length grows each step: dynamic shapes)."
    import torch._dynamo
    from torch._dynamo.utils import counters
    from openvlthinker_nb.policy import shared
    cfg = run.cfg
    recs = [run.train_ds[i] for i in range(cfg.batch_prompts)]
    go = lambda step: shared.shared_rollout(run.model, run.processor, recs, n=cfg.n, max_new_tokens=cfg.max_new_tokens, seed=1, compact=0., step=step)
    def timed(step):
        c = time.process_time(); w = time.perf_counter(); ro = go(step); return time.process_time() - c, time.perf_counter() - w, ro
    eager = [timed(shared.group_decode_step) for _ in range(steps)]
    torch._dynamo.reset(); counters.clear()
    comp = torch.compile(shared.group_decode_step, dynamic=True)
    first = timed(comp)
    graphs = int(counters['stats']['unique_graphs'])
    warm = [timed(comp) for _ in range(steps)]
    return {'eager_cpu_s': statistics.median(e[0] for e in eager), 'compiled_cpu_s': statistics.median(w[0] for w in warm),
            'first_call_wall_s': first[1], 'graphs_at_warmup': graphs, 'recompiles_after_warmup': int(counters['stats']['unique_graphs']) - graphs,
            'same_tokens': bool(torch.equal(eager[0][2].response_ids, warm[-1][2].response_ids))}

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--engines', nargs='+', default=['hf', 'shared'], help='keys of policy.rollout.ROLLOUT_ENGINES')
    ap.add_argument('--steps', type=int, default=4, help='timed steps per engine (after one warm-up step each)')
    ap.add_argument('--threads', type=int, default=2, help='torch threads (the main job: 2)')
    ap.add_argument('--flops', action='store_true', help='count the FLOPs of one step per engine and state the compute limit')
    ap.add_argument('--compile-probe', action='store_true', help='time torch.compile of the shared engine decode step')
    ap.add_argument('overrides', nargs='*', help='name=value TrainConfig overrides')
    a = ap.parse_args()
    over = dict(parse_override(kv) for kv in a.overrides)
    runs, res = {}, {e: [] for e in a.engines}
    with tempfile.TemporaryDirectory() as tmp:
        for e in a.engines:
            cfg = TrainConfig.from_dict({'device': 'cpu', **over, 'rollout_engine': e, 'num_threads': a.threads,
                                         'output_dir': f'{tmp}/{e}', 'progress': False, 'max_steps': a.steps + 1 + a.flops})
            runs[e] = setup(cfg)
        for i in range(a.steps + 1):
            for e, run in runs.items():
                w0, c0 = time.perf_counter(), time.process_time()
                m = rl_step(run)
                w, c = time.perf_counter() - w0, time.process_time() - c0
                if i == 0: continue
                r = {'wall': w, 'cpu': c, 'responses': m['filter/prompts_drawn'] * run.cfg.n, 'load': os.getloadavg()[0], **{p: m[f'time/{p}'] for p in PHASES}}
                res[e].append(r)
                print(f"{e:8s} step {i}: {r['responses']} responses, wall {w:.2f}s (" + ', '.join(f'{p} {r[p]:.2f}' for p in PHASES) +
                      f"), CPU {c:.2f}s, load {r['load']:.1f}", flush=True)
        cfg = runs[a.engines[0]].cfg
        print(f"\nconfig: batch_prompts={cfg.batch_prompts} n={cfg.n} max_new_tokens={cfg.max_new_tokens} micro_batch={cfg.micro_batch} "
              f"online_filter={cfg.online_filter} threads={a.threads}; {os.cpu_count()} CPUs; medians over {a.steps} steps")
        med = {e: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for e, rs in res.items()}
        rate = {e: sum(r['responses'] for r in rs) / sum(r['wall'] for r in rs) for e, rs in res.items()}
        rate_cpu = {e: sum(r['responses'] for r in rs) / sum(r['cpu'] for r in rs) for e, rs in res.items()}
        print(f"{'engine':8s} " + ' '.join(f'{p:>9s}' for p in PHASES) + f" {'wall':>7s} {'CPU':>7s} {'resp/s':>7s} {'resp/CPU-s':>10s}")
        for e, md in med.items():
            print(f"{e:8s} " + ' '.join(f'{md[p]:9.2f}' for p in PHASES) + f" {md['wall']:7.2f} {md['cpu']:7.2f} {rate[e]:7.1f} {rate_cpu[e]:10.1f}")
        base = a.engines[0]
        for e in a.engines[1:]:
            print(f"{e} vs {base}: step wall x{med[base]['wall']/med[e]['wall']:.2f}, step CPU x{med[base]['cpu']/med[e]['cpu']:.2f}, "
                  f"responses/s x{rate[e]/rate[base]:.2f}, responses/CPU-s x{rate_cpu[e]/rate_cpu[base]:.2f}; per phase (wall) " +
                  ', '.join(f"{p} x{med[base][p]/max(med[e][p], 1e-9):.2f}" for p in ('generate', 'logprobs', 'update')))
        out = {'median': med, 'responses_per_s': rate, 'responses_per_cpu_s': rate_cpu}
        if a.flops:
            fl = matmul_flops(a.threads)
            out['matmul_flops_per_s'] = fl
            for e, run in runs.items():
                f = step_flops(run)
                out[f'step_flops_{e}'] = f
                print(f"{e}: {f/1e9:.1f} GFLOP per step; at the {a.threads}-thread matmul rate ({fl/1e9:.0f} GFLOP/s) that is {f/fl:.2f}s, "
                      f"the step's compute limit (measured median: {med[e]['cpu']/a.threads:.2f}s of CPU per thread)")
        if a.compile_probe:
            out['compile_probe'] = compile_probe(runs[a.engines[-1]])
            print('compile probe:', json.dumps(out['compile_probe']))
        print(json.dumps(out))

if __name__ == '__main__': main()
