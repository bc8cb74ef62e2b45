"""What tests/test_parallel.py runs under `torchrun` (every process runs it): a training run that may be killed,
the weights and optimizer state a checkpoint restores, and the trainer's log-probs of a fixed rollout.

    python -m torch.distributed.run --standalone --nproc_per_node 2 tests/dist_driver.py train '{"parallel": "fsdp", ...}' [kill_at]
    ... tests/dist_driver.py restore '{...}' OUT.json      # digests of a run's newest checkpoint, loaded into this process count
    ... tests/dist_driver.py logprobs '{...}' OUT.pt       # log-probs of a fixed rollout under the newest checkpoint's weights
    ... tests/dist_driver.py update '{...}' OUT.pt         # optimizer steps on one fixed batch, whose halves are rank 0's and rank 1's
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

def fixed_batch_updates(cfg:TrainConfig, out:str, steps:int=3):
    """Roll out six training prompts as two halves (half r: seed 100 + r, rows of rank r of two), then `steps` updates on
    them. One process takes both halves, each of two processes its own: the same batch in total. Rank 0 saves the
    rollouts, the starting adapters, every update's statistics and the final weights (whole, and merged)."""
    from openvlthinker_nb.trainer.collect import Part, part_rows, reward_weights, batch_advantages, task_advantages
    from openvlthinker_nb.tasks.rewards import score_batch
    from openvlthinker_nb.trainer.batch import StepTable
    from openvlthinker_nb.trainer.config import needs_exact_entropy
    from openvlthinker_nb.trainer.dist import Dist, gather_rows
    from openvlthinker_nb.trainer.update import update
    from openvlthinker_nb.trainer.parallel import full_param, full_state_dict
    from openvlthinker_nb.policy.adapters import merged_state_dict
    run = setup(cfg); d = run.d
    assert d.world in (1, 2), d.world
    halves = [[run.train_ds[i] for i in range(r, 6, 2)] for r in (0, 1)]
    parts = []
    for r in ([0, 1] if d.world == 1 else [d.rank]):
        ro = rollout(run.model, run.processor, halves[r], n=cfg.n, temperature=cfg.temperature, max_new_tokens=cfg.max_new_tokens,
                     seed=100 + r, with_entropy=needs_exact_entropy(cfg), engine=cfg.rollout_engine)
        recs = [halves[r][i] for i in ro.prompt_idx.tolist()]
        sc = score_batch(ro.texts, recs, **reward_weights(cfg), n_tokens=ro.n_tokens.tolist())
        parts.append(Part(ro, halves[r], part_rows(ro, recs, sc, Dist(r, 2), 0, run.task_of)))
    full = StepTable.from_matrix(gather_rows(StepTable.cat([p.table for p in parts]).matrix(), d))
    mine = (full.rank == d.rank) if d.world == 2 else torch.ones(len(full), dtype=torch.bool)
    adv, adv_task = batch_advantages(full, cfg)[mine], task_advantages(full, cfg)[mine]
    start = {n: full_param(p).detach().clone() for n, p in run.model.named_parameters() if 'lora_' in n}
    stats = [update(run.model, run.opt, run.sched, parts, adv, cfg, d, adv_task if k == 0 else None, run.ref_model) for k in range(steps)]
    texts = [t for p in parts for t in p.ro.texts]
    if d.world == 2:
        box = [None, None]; torch.distributed.all_gather_object(box, texts); texts = box[0] + box[1]
    weights = full_state_dict(run.model)
    if d.main:
        torch.save({'texts': texts, 'table': full.matrix(), 'start': start, 'stats': stats, 'weights': weights,
                    'merged': merged_state_dict(run.model, weights), 'world': d.world}, out)

def main(cmd:str, cfg_json:str, arg:str|None=None):
    cfg = TrainConfig.from_dict(json.loads(cfg_json))
    if cmd == 'update': return fixed_batch_updates(cfg, arg)
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
    else: raise ValueError(f"unknown command {cmd!r}: train, restore, logprobs or update")

if __name__ == '__main__': main(*sys.argv[1:])
