"""The memory plan against measurement: per-process bytes of one training step of a ~100 M-parameter Qwen3-VL built from a
config (CPU, gloo), one and two processes, ddp and fsdp, with and without gradient checkpointing, and LoRA.

    python tests/bench_memory.py            # ~10 min on 2 busy cores; prints the table (MiB per process)

Measured: parameter, gradient and AdamW-state bytes of each process (exact: local shards under fsdp), and the step's
transient peak above them (torch's CPU allocations recorded by the profiler through one forward, backward and optimizer
step). Predicted: `trainer.memory.memory_plan` from the config alone."""
import argparse, json, os, subprocess, sys
from dataclasses import replace
import torch

def small_config():
    "A Qwen3-VL of about 108 M parameters (78 M of them the tied 151,936-token embedding), as the real ones are shaped."
    from transformers import Qwen3VLConfig
    return Qwen3VLConfig(
        text_config=dict(hidden_size=512, intermediate_size=1536, num_hidden_layers=4, num_attention_heads=8, num_key_value_heads=4,
                         head_dim=64, vocab_size=151936, tie_word_embeddings=True, max_position_embeddings=4096,
                         rope_parameters=dict(rope_type='default', rope_theta=5e6, mrope_section=[12, 10, 10], mrope_interleaved=True)),
        vision_config=dict(depth=4, hidden_size=384, intermediate_size=1536, num_heads=6, out_hidden_size=512, patch_size=16,
                           spatial_merge_size=2, temporal_patch_size=2, deepstack_visual_indexes=[1, 2], num_position_embeddings=2304),
        tie_word_embeddings=True, image_token_id=151655, video_token_id=151656, vision_start_token_id=151652, vision_end_token_id=151653)

CASES = [  # (processes, parallel, gradient checkpointing, LoRA rank)
    (1, 'ddp', False, 0), (1, 'ddp', True, 0), (2, 'ddp', False, 0), (2, 'fsdp', False, 0), (2, 'fsdp', True, 0), (1, 'ddp', False, 8), (2, 'fsdp', False, 8)]
ROWS, PROMPT, RESP, IMG = 2, 96, 64, 16   # micro-batch rows, prompt tokens (16 of them image tokens), response tokens

def _local(t): return getattr(t, '_local_tensor', t)
def _nbytes(ts): return sum(_local(t).numel() * _local(t).element_size() for t in ts)

def worker(parallel:str, ckpt:bool, lora:int):
    "One process: build, shard or wrap, take two steps, measure the second; print one JSON line."
    import torch.distributed as dist
    import torch.nn.functional as F
    from torch.profiler import profile, ProfilerActivity
    from transformers import AutoModelForImageTextToText
    from openvlthinker_nb.policy.adapters import add_lora
    torch.set_num_threads(1)
    world, rank = int(os.environ.get('WORLD_SIZE', 1)), int(os.environ.get('RANK', 0))
    if world > 1: dist.init_process_group('gloo')
    cfg = small_config(); cfg._attn_implementation = 'sdpa'
    torch.manual_seed(0)
    model = AutoModelForImageTextToText.from_config(cfg, dtype=torch.float32)
    if ckpt: model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={'use_reentrant': False})
    if lora: model = add_lora(model, rank=lora, alpha=2 * lora)
    if parallel == 'fsdp' and world > 1:
        from torch.distributed.fsdp import fully_shard
        inner = model.get_base_model() if lora else model
        for unit in list(inner.model.language_model.layers) + list(inner.model.visual.blocks): fully_shard(unit)
        fully_shard(inner.model.visual); fully_shard(model)
    elif world > 1: model = torch.nn.parallel.DistributedDataParallel(model)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    g = torch.Generator().manual_seed(1)
    side = int(IMG ** 0.5)
    ids = torch.randint(0, 150000, (ROWS, PROMPT + RESP), generator=g)
    ids[:, 0], ids[:, 1:1 + IMG], ids[:, 1 + IMG] = cfg.vision_start_token_id, cfg.image_token_id, cfg.vision_end_token_id
    mm = torch.zeros_like(ids); mm[:, 1:1 + IMG] = 1
    inp = dict(input_ids=ids, attention_mask=torch.ones_like(ids), mm_token_type_ids=mm, image_grid_thw=torch.tensor([[1, 2*side, 2*side]] * ROWS),
               pixel_values=torch.randn(ROWS * 4 * IMG, 3 * 2 * 16 * 16, generator=g))
    def step():
        model.train()
        logits = model(**inp, use_cache=False, logits_to_keep=RESP + 1).logits[:, :-1]
        lp_all = F.log_softmax(logits.float(), -1)
        lp = lp_all.gather(-1, ids[:, PROMPT:].unsqueeze(-1)).squeeze(-1)
        loss = -lp.mean() + 0.01 * (lp_all.exp() * lp_all).sum(-1).mean()
        loss.backward(); opt.step(); opt.zero_grad(set_to_none=False)
    step()   # the optimizer state exists after one step
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof: step()
    cur = peak = 0
    for e in sorted((e for e in prof.events() if e.self_cpu_memory_usage), key=lambda e: e.time_range.start):
        cur += e.self_cpu_memory_usage; peak = max(peak, cur)
    trainable = [p for p in model.parameters() if p.requires_grad]
    res = {'rank': rank, 'params': _nbytes(model.parameters()), 'grads': _nbytes(p.grad for p in trainable if p.grad is not None),
           'optimizer': _nbytes(v for st in opt.state.values() for v in st.values() if torch.is_tensor(v) and v.dim() > 0), 'step_peak': peak}
    print('RESULT ' + json.dumps(res), flush=True)
    if world > 1: dist.destroy_process_group()

def predicted(world:int, parallel:str, ckpt:bool, lora:int)->dict:
    "The plan's bytes for one case (no rollout, no evaluation)."
    from openvlthinker_nb.trainer.memory import PlanSettings, memory_plan
    s = PlanSettings(dtype='float32', parallel=parallel, world=world, gradient_checkpointing=ckpt, lora_rank=lora, micro_batch=ROWS,
                     plan_prompt_tokens=PROMPT, plan_image_tokens=IMG, max_new_tokens=RESP, n=0, eval_batch_size=0)
    return memory_plan(small_config(), s)

def run_case(world:int, parallel:str, ckpt:bool, lora:int)->dict:
    "Run one case in fresh processes (torchrun for two); the first rank's measurement."
    args = [__file__, '--worker', parallel, str(int(ckpt)), str(lora)]
    cmd = [sys.executable] + (['-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', str(world)] if world > 1 else []) + args
    env = dict(os.environ, OMP_NUM_THREADS='1', TOKENIZERS_PARALLELISM='false')
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    lines = [l for l in p.stdout.splitlines() if l.startswith('RESULT ')]
    if p.returncode or not lines: raise RuntimeError(f"case {world} {parallel} ckpt={ckpt} lora={lora} failed:\n{p.stdout[-2000:]}\n{p.stderr[-3000:]}")
    return json.loads(lines[0][7:])

def main():
    import pandas as pd
    rows, MiB = [], 2**20
    for world, parallel, ckpt, lora in CASES:
        m, p = run_case(world, parallel, ckpt, lora), predicted(world, parallel, ckpt, lora)
        train = p['fsdp_gather'] + p['act_text'] + p['act_vision'] + p['act_logits']
        grads = p['gradients'] / (2 if parallel == 'ddp' and world > 1 else 1)   # ddp's bucket copy is in the measured step peak
        rows.append({'processes': world, 'parallel': parallel, 'ckpt': ckpt, 'lora': lora,
                     'params meas': m['params'] / MiB, 'params pred': p['weights'] / MiB,
                     'grads meas': m['grads'] / MiB, 'grads pred': grads / MiB,
                     'adam meas': m['optimizer'] / MiB, 'adam pred': p['optimizer'] / MiB,
                     'step peak meas': m['step_peak'] / MiB, 'step peak pred': (train + p['gradients'] - grads) / MiB,
                     'total meas': (m['params'] + m['grads'] + m['optimizer'] + m['step_peak']) / MiB,
                     'total pred': (p['weights'] + p['gradients'] + p['optimizer'] + train) / MiB})
        print(pd.DataFrame(rows[-1:]).round(1).to_string(index=False), flush=True)
    df = pd.DataFrame(rows)
    df['total pred / meas'] = df['total pred'] / df['total meas']
    print('\nMiB per process (measured: rank 0)\n' + df.round(2).to_string(index=False))

if __name__ == '__main__':
    if len(sys.argv) > 1 and sys.argv[1] == '--worker': worker(sys.argv[2], bool(int(sys.argv[3])), int(sys.argv[4]))
    else: main()
