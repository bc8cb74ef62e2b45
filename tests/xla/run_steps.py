"""A few RL steps at the XLA tests' small scale (see SMALL) on one device; prints one JSON line (metrics per step, compile
counts, held-out summaries) and saves every rollout's tokens and per-token log-probs to OUT_DIR/rollouts.pt. `python tests/xla/run_steps.py DEVICE OUT_DIR [STEPS [ENGINE [name=value ...]]]`
(the name=value pairs override TrainConfig fields, e.g. parallel=fsdp save_every=2 resume=true); with parallel=fsdp it
also reports how many weights and AdamW moments are split over the devices after the last step."""
import dataclasses, json, os, sys, time
import torch
from pathlib import Path
from openvlthinker_nb.trainer import loop
from openvlthinker_nb.trainer.loop import train, parse_override
from openvlthinker_nb.policy import spmd
from openvlthinker_nb.trainer.config import TrainConfig
from openvlthinker_nb.paths import resolve_data
from openvlthinker_nb.policy import static as xla
from openvlthinker_nb.policy import rollout as front

# The scale the XLA tests run at (CI: 2 cores, XLA's CPU runtime): 4 prompts x 2 responses, 16 new tokens, one micro-batch,
# one held-out record per family, greedy only. The main job (16 x 8, 48 tokens) takes minutes per step there. No online filter:
# with 2 responses most groups agree on accuracy and would be dropped, leaving an empty update (the papermill test keeps it on).
SMALL = dict(batch_prompts=4, n=2, max_new_tokens=16, micro_batch=8, online_filter=False, eval_limit=1, eval_k=0, progress=False,
             copy_figures=False, save_every=0)
# Training prompts: the rl split without spatial_grounding, whose prompts (129-256 tokens) are the only ones past the first
# 128-token bucket: every step then has the same shapes, so any compilation after warm-up is a real recompilation.
ONE_BUCKET = lambda r: r['task_type'] != 'spatial_grounding'

if __name__ == '__main__':
    device, out, steps = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else 3
    engine = sys.argv[4] if len(sys.argv) > 4 else 'auto'   # 'static': the fixed-shape passes on any device (CPU eager vs XLA)
    overrides = dict(parse_override(kv) for kv in sys.argv[5:])
    src = resolve_data('default', 'rl')
    data = out.parent/f'{out.name}_rl.jsonl'
    data.parent.mkdir(parents=True, exist_ok=True)
    data.write_text(''.join(l for l in src.read_text().splitlines(True) if l.strip() and ONE_BUCKET(json.loads(l))))
    compiles, rollouts, t0 = [], [], time.time()
    def recording(f):   # the training rollouts' tokens and per-token log-probs, for the agreement test
        def g(*a, **k):
            ro = f(*a, **k); rollouts.append({'response_ids': ro.response_ids, 'response_mask': ro.response_mask, 'logprobs': ro.logprobs}); return ro
        return g
    eng = front.ROLLOUT_ENGINES['static']
    front.ROLLOUT_ENGINES['static'] = dataclasses.replace(eng, rollout=recording(eng.rollout))
    cfg = TrainConfig(device=device, rollout_engine=engine, max_steps=steps, output_dir=str(out), train_data=str(data), image_root=str(src.parent),
                      **{**SMALL, **overrides})
    held, sharding = [], {}
    setup = loop.setup   # keep the run's model and optimizer to inspect their sharding
    loop.setup = lambda c: held.append(setup(c)) or held[-1]
    def on_step(s, m):
        compiles.append(xla.compile_count())
        if s == steps and spmd.spmd_on():   # before the final export moves the weights to the host
            import torch_xla.runtime as xr
            run = held[0]; split = lambda t: 'devices=' in spmd.sharding(t)
            ws = [p for p in run.model.parameters()]; ms = [st[k] for st in run.opt.state.values() for k in ('exp_avg', 'exp_avg_sq')]
            sharding.update(devices=xr.global_runtime_device_count(), weights=len(ws), weights_split=sum(map(split, ws)),
                            moments=len(ms), moments_split=sum(map(split, ms)))
    res = train(cfg, on_step=on_step)
    torch.save(rollouts, out/'rollouts.pt')
    metrics = [json.loads(l) for l in open(os.path.join(res['output_dir'], 'metrics.jsonl'))]
    print('RESULT ' + json.dumps({'device': device, 'compiles': compiles, 'sharding': sharding, 'metrics': metrics, 'before': res['before'], 'after': res['after'],
                                  'seconds': time.time() - t0}))
