"""Speed of G2RPO (scope='group_then_task') against the usual per-group Python loop and against one torch.sort.

Run from anywhere: `python tests/bench_advantages.py` (options: --help). It prints timings and ratios measured in one
run; it is a benchmark, not a timed test. Targets: at least 50x faster than the loop, at most 5x one sort.
By default it runs with one torch thread: torch.sort of a float tensor is single-threaded on CPU, so that is the
like-for-like comparison (and on a quiet machine the conservative one). `--threads 1 2` runs once per thread count;
on a machine whose cores are busy with other jobs, multi-threaded runs mostly measure scheduling stalls.
"""
import argparse, time
import torch
from openvlthinker_nb.algos.advantages import g2rpo, simulate_batch, TIE_QUANTUM, REWARD_TOPOLOGIES

def _buckets(ids):
    "Indices of each distinct id, the way a loop implementation usually gets them: one sort, then a Python list."
    order = torch.argsort(ids, stable=True)
    counts = torch.unique_consecutive(ids[order], return_counts=True)[1]
    return torch.split(order, counts.tolist())

def _gauss_one_set(v):
    "Tie-averaged N(0,1) grid quantiles of one set's values, with torch ops: (n,) -> (n,) float64."
    n = v.numel()
    _, inv, cnt = torch.unique(v, return_inverse=True, return_counts=True)
    q = torch.special.ndtri((torch.arange(n, dtype=torch.float64) + 0.5) / n)
    csum = torch.cat([q.new_zeros(1), q.cumsum(0)])
    end = cnt.cumsum(0)
    return ((csum[end] - csum[end - cnt]) / cnt)[inv]

def loop_g2rpo(rewards, group_ids, task_ids):
    "G2RPO group_then_task written the usual way: a Python loop over groups, then over tasks, torch ops inside."
    x = rewards.double()
    stage1 = torch.empty_like(x)
    for idx in _buckets(group_ids): stage1[idx] = _gauss_one_set(x[idx])
    stage1 = torch.round(stage1 / TIE_QUANTUM)               # stage-one scores tie when they round alike
    out = torch.empty_like(x)
    for idx in _buckets(task_ids): out[idx] = _gauss_one_set(stage1[idx])
    return out.to(rewards.dtype)

def _best(fn, repeats, warmup):
    "Best wall time of `repeats` calls after `warmup` calls, in seconds."
    for _ in range(warmup): fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter(); fn(); times.append(time.perf_counter() - t0)
    return min(times)

def run_benchmark(n_groups:int=8192, # prompt groups
                  group_size:int=8, # responses per group
                  n_tasks:int=6, # tasks (reward topologies of the simulator, at most 6)
                  repeats:int=100, # timed calls of g2rpo and of torch.sort (best one counts)
                  loop_repeats:int=3, # timed calls of the loop version
                  seed:int=0, # simulator seed
                  threads:int|None=None, # torch CPU threads during the run (restored after); None: leave as is
                 )->dict:
    "Time g2rpo(group_then_task), the per-group loop and one torch.sort on one simulated batch; return the numbers."
    if threads is not None:
        before = torch.get_num_threads(); torch.set_num_threads(threads)
        try: return run_benchmark(n_groups, group_size, n_tasks, repeats, loop_repeats, seed)
        finally: torch.set_num_threads(before)
    b = simulate_batch(n_groups, group_size, seed=seed, topologies=tuple(REWARD_TOPOLOGIES)[:n_tasks])
    r, g, t = b['rewards'], b['group_ids'], b['task_ids']
    fast = lambda: g2rpo(r, g, t, 'group_then_task')
    sort = lambda: torch.sort(r)
    diff = (fast().double() - loop_g2rpo(r, g, t).double()).abs().max().item()
    for _ in range(3): fast(); sort()                         # warm-up, then interleave so both see the same load
    t_fast, t_sort = [], []
    for _ in range(repeats):
        t_fast.append(_best(fast, 1, 0)); t_sort.append(_best(sort, 1, 0))
    t_loop = _best(lambda: loop_g2rpo(r, g, t), loop_repeats, 1)
    res = dict(B=r.numel(), n_groups=n_groups, group_size=group_size, n_tasks=len(b['topologies']),
               threads=torch.get_num_threads(), repeats=repeats, loop_repeats=loop_repeats,
               g2rpo_s=min(t_fast), sort_s=min(t_sort), loop_s=t_loop, max_abs_diff=diff)
    res['speedup_vs_loop'] = res['loop_s'] / res['g2rpo_s']
    res['ratio_vs_sort'] = res['g2rpo_s'] / res['sort_s']
    return res

def report(res:dict, # what `run_benchmark` returned
          ):
    "Print the benchmark's numbers and ratios."
    ms = lambda s: f"{1e3*s:9.2f} ms"
    print(f"G2RPO speed: B={res['B']:,} responses ({res['n_groups']:,} groups of {res['group_size']}, {res['n_tasks']} tasks), "
          f"float32 rewards, torch {torch.__version__}, CPU, {res['threads']} thread(s)")
    print(f"  g2rpo(scope='group_then_task')  best of {res['repeats']:>3}: {ms(res['g2rpo_s'])}")
    print(f"  per-group Python loop           best of {res['loop_repeats']:>3}: {ms(res['loop_s'])}"
          f"  -> g2rpo is {res['speedup_vs_loop']:.1f}x faster than the loop (target >= 50x)")
    print(f"  one torch.sort of the rewards   best of {res['repeats']:>3}: {ms(res['sort_s'])}"
          f"  -> g2rpo costs {res['ratio_vs_sort']:.2f}x one sort (target <= 5x)")
    print(f"  loop and g2rpo agree: max |difference| = {res['max_abs_diff']:.1e}")

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--n-groups', type=int, default=8192)
    p.add_argument('--group-size', type=int, default=8)
    p.add_argument('--n-tasks', type=int, default=6)
    p.add_argument('--repeats', type=int, default=100)
    p.add_argument('--loop-repeats', type=int, default=3)
    p.add_argument('--threads', type=int, nargs='*', default=None,
                   help="torch CPU thread counts to run with, one run each (default: 1)")
    a = p.parse_args(argv)
    threads = a.threads or [1]
    results = []
    for n in threads:
        results.append(run_benchmark(a.n_groups, a.group_size, a.n_tasks, a.repeats, a.loop_repeats, threads=n))
        report(results[-1])
    return results

if __name__ == '__main__': main()
