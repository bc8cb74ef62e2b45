"""Shared by the XLA tests: the small-scale runs of tests/xla/run_steps.py (started side by side), the tolerances they are
compared with, and the comparison itself."""
import json, os, subprocess, sys
from pathlib import Path
import pytest

HERE, ROOT = Path(__file__).parent, Path(__file__).parents[2]
STEPS = 4     # step 1 compiles everything, step 2 AdamW's steady-state step (step 1 creates its state); 3 and 4 must compile nothing
LP_TOL = 1e-4   # per-token log-probs, XLA vs CPU eager; measured <= 1.8e-5 over the 4 steps
REL_TOL = 1e-4  # pg_loss, grad_norm (relative); measured <= 4e-6
PARAM_TOL = 1e-3  # final parameters after 4 AdamW steps (lr 1e-4; Adam's normalisation amplifies float noise); measured 2.8e-5
SHARDED_ENV = {'CPU_NUM_DEVICES': '2'}   # two virtual devices of torch-xla's CPU runtime, for the runs with parallel=fsdp

def start_steps(device:str, out:Path, steps:int=STEPS, engine:str='auto', env:dict|None=None, overrides:tuple=())->tuple:
    "Start `run_steps.py` in a subprocess (its output in a file next to `out`); `finish_steps` waits for it."
    out.parent.mkdir(parents=True, exist_ok=True)
    log = open(out.parent/f'{out.name}.log', 'w+')
    p = subprocess.Popen([sys.executable, str(HERE/'run_steps.py'), device, str(out), str(steps), engine, *overrides], cwd=ROOT,
                         env={**os.environ, **(env or {})}, stdout=log, stderr=subprocess.STDOUT, text=True)
    return p, log, out

def finish_steps(started:tuple, timeout:int=1800)->dict:
    "The RESULT line of a run `start_steps` began, with its folder as 'out'."
    p, log, out = started
    rc = p.wait(timeout=timeout)
    log.seek(0); text = log.read(); log.close()
    assert rc == 0, text[-6000:]
    line = [l for l in text.splitlines() if l.startswith('RESULT ')][-1]
    return {**json.loads(line[len('RESULT '):]), 'out': out}

def run_steps(*args, **kwargs)->dict: return finish_steps(start_steps(*args, **kwargs))

@pytest.fixture(scope='session')
def runs(tmp_path_factory):
    """The same steps on XLA, eagerly on the CPU (both through the fixed-shape passes: same sampling noise), and on XLA
    sharded over two devices (parallel=fsdp, a checkpoint every 2 steps), the three side by side."""
    tmp = tmp_path_factory.mktemp('xla')
    started = {'xla': start_steps('xla', tmp/'xla'), 'cpu': start_steps('cpu', tmp/'cpu', engine='static'),
               'fsdp': start_steps('xla', tmp/'fsdp', env=SHARDED_ENV, overrides=('parallel=fsdp', 'save_every=2'))}
    return {k: finish_steps(s) for k, s in started.items()}

def _close(a, b, tol): return abs(a - b) <= tol * max(1.0, abs(b))

def assert_runs_agree(a:dict, b:dict):
    """Run `a` against run `b` (reference) on the same fixed-shape path. Sampled tokens are identical while the logits
    agree (same host noise, Gumbel-max); a token whose top two candidates are closer than the float noise could flip and
    make the runs diverge from there, so: at least 90% of all rollout rows (held-out greedy rollouts included) identical,
    and every rollout up to the first differing one agrees per token (log-probs within LP_TOL), with the steps' rewards,
    lengths, losses and gradient norms (REL_TOL) and, when nothing diverged, the final parameters (PARAM_TOL) and the
    held-out result."""
    import torch
    from safetensors.torch import load_file
    xs, cs = a['metrics'], b['metrics']
    assert len(xs) == len(cs) == STEPS
    rx, rc = (torch.load(r['out']/'rollouts.pt') for r in (a, b))
    assert len(rx) == len(rc) == STEPS + 2   # held-out before, the steps, held-out after
    same = [(u['response_ids'] == v['response_ids']).all(1) for u, v in zip(rx, rc)]
    n_same, n = sum(int(s.sum()) for s in same), sum(len(s) for s in same)
    assert n_same >= 0.9 * n, f"only {n_same}/{n} rollout rows identical"
    first = next((i for i, s in enumerate(same) if not s.all()), len(same))
    assert first >= 2, f"rollouts differ already at {first} (held-out before, or step 1 from identical weights)"
    for u, v in zip(rx[:first], rc[:first]):
        m = u['response_mask'].bool()
        assert torch.equal(u['response_mask'], v['response_mask'])
        assert (u['logprobs'] - v['logprobs'])[m].abs().max() <= LP_TOL
    for mx, mc in zip(xs[:first - 1], cs[:first - 1]):   # step s used rollout s (rollout 0 is the held-out before)
        for k in ('reward/mean', 'accuracy/mean', 'length/mean'): assert mx[k] == mc[k], (mx['step'], k, mx[k], mc[k])
        for k in ('pg_loss', 'grad_norm', 'ratio_mean'): assert _close(mx[k], mc[k], REL_TOL), (mx['step'], k, mx[k], mc[k])
    assert any(m['grad_norm'] > 0 for m in cs), "no step had a gradient: nothing compared"
    if first == len(same):
        px, pc = (load_file(str(r['out']/'final'/'model.safetensors')) for r in (a, b))
        assert set(px) == set(pc)   # tied embeddings saved once, as on the CPU
        assert max(float((px[k] - pc[k]).abs().max()) for k in pc) <= PARAM_TOL
        assert a['after'] == b['after']
