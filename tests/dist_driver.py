"""What tests/test_parallel.py runs under `torchrun` (every process runs it): a training run that may be killed,
the weights and optimizer state a checkpoint restores, and the trainer's log-probs of a fixed rollout.

    python -m torch.distributed.run --standalone --nproc_per_node 2 tests/dist_driver.py train '{"parallel": "fsdp", ...}' [kill_at]
    ... tests/dist_driver.py restore '{...}' OUT.json      # digests of a run's newest checkpoint, loaded into this process count
    ... tests/dist_driver.py logprobs '{...}' OUT.pt       # log-probs of a fixed rollout under the newest checkpoint's weights
"""
import hashlib, json, sys
import torch
from torch.distributed.tensor import DTensor
from openvlthinker_nb.trainer.config import TrainConfig
from openvlthinker_nb.trainer.loop import train, setup, param_digest
from openvlthinker_nb.trainer.checkpoints import last_checkpoint, load_checkpoint
from openvlthinker_nb.policy.rollout import rollout, response_logprobs

class Killed(Exception): pass

def _full(t): return t.full_tensor() if isinstance(t, DTensor) else t

def optimizer_digest(opt)->str:
    "SHA-256 of every AdamW moment (gathered whole), in parameter order."
    h = hashlib.sha256()
    for g in opt.param_groups:
        for p in g['params']:
            st = opt.state.get(p, {})
            for k in ('exp_avg', 'exp_avg_sq'):
                if k in st: h.update(_full(st[k]).detach().cpu().float().numpy().tobytes())
    return h.hexdigest()

def main(cmd:str, cfg_json:str, arg:str|None=None):
    cfg = TrainConfig.from_dict(json.loads(cfg_json))
    if cmd == 'train':
        kill_at = int(arg) if arg else 0
        def on_step(step, m):
            if step == kill_at: raise Killed(f"killed after step {step}")
        train(cfg, on_step=on_step)
        return
    run = setup(cfg)
    run.step = load_checkpoint(last_checkpoint(run.out), run.model, run.opt, run.sched, run.sampler, run.d)
    if cmd == 'restore':
        res = {'step': run.step, 'params': param_digest(run.model), 'optimizer': optimizer_digest(run.opt), 'world': run.d.world}
        if run.d.main: open(arg, 'w').write(json.dumps(res))
    elif cmd == 'logprobs':   # every process scores the same rollout (a sharded forward is a collective)
        ro = rollout(run.model, run.processor, [run.eval_ds[i] for i in range(3)], n=2, temperature=1.0, max_new_tokens=8, seed=3)
        with torch.no_grad(): lp, _ = response_logprobs(run.model, ro, with_entropy=False)
        if run.d.main: torch.save({'rollout': ro, 'logprobs': lp.cpu()}, arg)
    else: raise ValueError(f"unknown command {cmd!r}: train, restore or logprobs")

if __name__ == '__main__': main(*sys.argv[1:])
