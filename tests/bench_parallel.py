"""Benchmark: step time and memory per process of `parallel=ddp` and `parallel=fsdp`, on 1 and 2 processes, for a
Qwen3-VL of about 100 M parameters built from a config (random weights; the tiny model's tokenizer and processor).

    python tests/bench_parallel.py [--steps 2] [--procs 1 2] [--parallel ddp fsdp] [name=value ...]   # overrides: TrainConfig fields

Each setting runs under `torchrun` (gloo on CPU): `train.setup`, one warm-up `rl_step`, then the timed steps. Per process it
reports the step time, the bytes of its weights, gradients and AdamW state as it holds them (its shards under fsdp), and its
peak resident memory (ru_maxrss: everything the process ever held, Python and the libraries included).
The machine is shared: times taken while other jobs run are pessimistic.
"""
import argparse, json, os, resource, shutil, subprocess, sys, tempfile, time
from pathlib import Path
import torch

CONFIG = {  # ~100 M parameters: 12 decoder layers of width 768, a 6-block vision tower of width 512
    'text': dict(hidden_size=768, intermediate_size=2048, num_hidden_layers=12, num_attention_heads=12, num_key_value_heads=4, head_dim=64),
    'vision': dict(hidden_size=512, intermediate_size=2048, depth=6, num_heads=8, out_hidden_size=768, deepstack_visual_indexes=[2]),
}

def build_model(folder:Path)->int:
    "Write a ~100 M-parameter Qwen3-VL (random weights, seeded) with the tiny model's processor into `folder`; returns its parameter count."
    from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor
    from openvlthinker_nb.policy.load import DEFAULT_MODEL
    cfg = AutoConfig.from_pretrained(DEFAULT_MODEL)
    for k, v in CONFIG['text'].items(): setattr(cfg.text_config, k, v)
    for k, v in CONFIG['vision'].items(): setattr(cfg.vision_config, k, v)
    torch.manual_seed(0)
    m = AutoModelForImageTextToText.from_config(cfg, dtype=torch.float32)
    m.generation_config = __import__('transformers').GenerationConfig.from_pretrained(DEFAULT_MODEL)
    m.save_pretrained(folder); AutoProcessor.from_pretrained(DEFAULT_MODEL).save_pretrained(folder)
    return sum(p.numel() for p in m.parameters())

def _local_bytes(ts)->int:
    "Bytes of the tensors as this process holds them (a DTensor: its shard)."
    from torch.distributed.tensor import DTensor
    return sum((t.to_local() if isinstance(t, DTensor) else t).nbytes for t in ts if t is not None)

def worker(cfg_json:str, steps:int, out:str):
    "One setting, in every process: setup, warm-up, timed steps; rank 0 writes every process's figures."
    from openvlthinker_nb.trainer.config import TrainConfig
    from openvlthinker_nb.trainer.loop import setup, rl_step
    import torch.distributed as tdist
    cfg = TrainConfig.from_dict(json.loads(cfg_json))
    t0 = time.perf_counter(); run = setup(cfg); t_setup = time.perf_counter() - t0
    rl_step(run)
    ms = [rl_step(run) for _ in range(steps)]
    params = [p for g in run.opt.param_groups for p in g['params']]
    row = {'rank': run.d.rank, 'setup_s': t_setup, 'step_s': sum(m['seconds'] for m in ms) / steps,
           'update_s': sum(m['time/update'] + m['time/logprobs'] for m in ms) / steps,
           'param_MB': _local_bytes(params) / 2**20,
           'grad_MB': _local_bytes(p.grad if p.grad is not None else torch.zeros_like(p) for p in params) / 2**20,   # set to None after each step: as held at their peak
           'adam_MB': _local_bytes(v for st in run.opt.state.values() for v in st.values() if torch.is_tensor(v) and v.dim() > 0) / 2**20,
           'peak_rss_MB': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10}
    rows = [None] * run.d.world
    if run.d.world > 1: tdist.all_gather_object(rows, row)
    else: rows = [row]
    if run.d.main: Path(out).write_text(json.dumps(rows))

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--steps', type=int, default=2, help='timed steps (after one warm-up step)')
    ap.add_argument('--procs', type=int, nargs='+', default=[1, 2])
    ap.add_argument('--parallel', nargs='+', default=['ddp', 'fsdp'])
    ap.add_argument('--worker', nargs=3, help=argparse.SUPPRESS)
    ap.add_argument('overrides', nargs='*', help='name=value TrainConfig overrides')
    a = ap.parse_args()
    if a.worker: return worker(a.worker[0], int(a.worker[1]), a.worker[2])
    from openvlthinker_nb.trainer.loop import parse_override
    over = dict(parse_override(kv) for kv in a.overrides)
    env = dict(os.environ, OMP_NUM_THREADS='1', TOKENIZERS_PARALLELISM='false', HF_HUB_OFFLINE='1', MPLBACKEND='Agg')
    env['PYTHONPATH'] = os.pathsep.join([str(Path(__file__).resolve().parents[1])] + [p for p in env.get('PYTHONPATH', '').split(os.pathsep) if p])
    with tempfile.TemporaryDirectory() as tmp:
        n = build_model(Path(tmp)/'model')
        print(f"model: Qwen3-VL from a config, {n/1e6:.1f} M parameters ({n*4/2**20:.0f} MB in float32); {a.steps} timed steps after one warm-up")
        base = dict(model=str(Path(tmp)/'model'), device='cpu', num_threads=1, batch_prompts=2, n=2, max_new_tokens=16, micro_batch=4,
                    online_filter=False, grad_share_every=0, eval_limit=1, progress=False, copy_figures=False, max_steps=a.steps + 1)
        print(f"{'setting':<14}{'rank':>5}{'step s':>9}{'update s':>10}{'weights MB':>12}{'grads MB':>10}{'AdamW MB':>10}{'peak RSS MB':>13}")
        for par in a.parallel:
            for k in a.procs:
                cfg = {**base, **over, 'parallel': par, 'output_dir': str(Path(tmp)/f'{par}{k}')}
                out = Path(tmp)/f'{par}{k}.json'
                cmd = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', str(k), __file__,
                       '--worker', json.dumps(cfg), str(a.steps), str(out)]
                p = subprocess.run(cmd, env=env, capture_output=True, text=True)
                if p.returncode: print(f"{par} x{k} failed:\n{p.stderr[-3000:]}"); continue
                for r in json.loads(out.read_text()):
                    print(f"{par + ' x' + str(k):<14}{r['rank']:>5}{r['step_s']:>9.2f}{r['update_s']:>10.2f}{r['param_MB']:>12.1f}{r['grad_MB']:>10.1f}"
                          f"{r['adam_MB']:>10.1f}{r['peak_rss_MB']:>13.0f}")

if __name__ == '__main__': main()
