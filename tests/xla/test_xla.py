"""The `device='xla'` path on torch-xla's CPU runtime (PJRT_DEVICE=CPU), in its own environment: `bash tests/xla/run.sh`.
Skipped (not failed) in the main torch-2.15 environment, which has no torch_xla.

Scale (sized for CI: 2 cores, XLA's CPU runtime, the whole suite with its environment in about 10 minutes): RL steps of
4 prompts x 2 responses, 16 new tokens, one micro-batch, without the online filter, on the rl split minus spatial_grounding
(one 128-token prompt bucket), held-out evaluation on one record per family, greedy only (tests/xla/run_steps.py, SMALL);
the papermill run: 2 steps of the same size with the online filter on, on the default data. The main job's 16 x 8 x 48
configuration is not run here (minutes per step on XLA's CPU runtime). No 2-process run on the xla backend."""
import json, os, subprocess, sys
from pathlib import Path
import pytest

pytest.importorskip('torch_xla')
pytestmark = pytest.mark.skipif(os.environ.get('PJRT_DEVICE') != 'CPU', reason='run with PJRT_DEVICE=CPU (tests/xla/run.sh)')
HERE, ROOT = Path(__file__).parent, Path(__file__).parents[2]
STEPS = 4     # step 1 compiles everything, step 2 AdamW's steady-state step (step 1 creates its state); 3 and 4 must compile nothing
LP_TOL = 1e-4   # per-token log-probs, XLA vs CPU eager; measured <= 1.8e-5 over the 4 steps
REL_TOL = 1e-4  # pg_loss, grad_norm (relative); measured <= 4e-6
PARAM_TOL = 1e-3  # final parameters after 4 AdamW steps (lr 1e-4; Adam's normalisation amplifies float noise); measured 2.8e-5

def _run(device:str, out:Path, steps:int=STEPS, static:bool=False)->dict:
    p = subprocess.run([sys.executable, str(HERE/'run_steps.py'), device, str(out), str(steps), 'static' if static else 'auto'], cwd=ROOT,
                       capture_output=True, text=True, timeout=1800)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    line = [l for l in p.stdout.splitlines() if l.startswith('RESULT ')][-1]
    return {**json.loads(line[len('RESULT '):]), 'out': out}

@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    "The same steps on XLA and eagerly on the CPU, both through the fixed-shape passes (same sampling noise)."
    tmp = tmp_path_factory.mktemp('xla')
    return {'xla': _run('xla', tmp/'xla'), 'cpu': _run('cpu', tmp/'cpu', static=True)}

def _close(a, b, tol): return abs(a - b) <= tol * max(1.0, abs(b))

def test_steps_agree(runs):
    """XLA against CPU eager on the same fixed-shape path. Sampled tokens are identical while the logits agree (same host
    noise, Gumbel-max); a token whose top two candidates are closer than the float noise could flip and make the runs
    diverge from there, so: at least 90% of all rollout rows (held-out greedy rollouts included) identical, and every
    rollout up to the first differing one agrees per token (log-probs within LP_TOL), with the steps' rewards, lengths,
    losses and gradient norms (REL_TOL) and, when nothing diverged, the final parameters (PARAM_TOL)."""
    import torch
    from safetensors.torch import load_file
    xs, cs = runs['xla']['metrics'], runs['cpu']['metrics']
    assert len(xs) == len(cs) == STEPS
    rx, rc = (torch.load(runs[d]['out']/'rollouts.pt') for d in ('xla', 'cpu'))
    assert len(rx) == len(rc) == STEPS + 2   # held-out before, the steps, held-out after
    same = [(a['response_ids'] == b['response_ids']).all(1) for a, b in zip(rx, rc)]
    n_same, n = sum(int(s.sum()) for s in same), sum(len(s) for s in same)
    assert n_same >= 0.9 * n, f"only {n_same}/{n} rollout rows identical"
    first = next((i for i, s in enumerate(same) if not s.all()), len(same))
    assert first >= 2, f"rollouts differ already at {first} (held-out before, or step 1 from identical weights)"
    for a, b in zip(rx[:first], rc[:first]):
        m = a['response_mask'].bool()
        assert torch.equal(a['response_mask'], b['response_mask'])
        assert (a['logprobs'] - b['logprobs'])[m].abs().max() <= LP_TOL
    for mx, mc in zip(xs[:first - 1], cs[:first - 1]):   # step s used rollout s (rollout 0 is the held-out before)
        for k in ('reward/mean', 'accuracy/mean', 'length/mean'): assert mx[k] == mc[k], (mx['step'], k, mx[k], mc[k])
        for k in ('pg_loss', 'grad_norm', 'ratio_mean'): assert _close(mx[k], mc[k], REL_TOL), (mx['step'], k, mx[k], mc[k])
    assert any(m['grad_norm'] > 0 for m in cs), "no step had a gradient: nothing compared"
    if first == len(same):
        px, pc = (load_file(str(runs[d]['out']/'final'/'model.safetensors')) for d in ('xla', 'cpu'))
        assert set(px) == set(pc)   # tied embeddings saved once, as on the CPU
        assert max(float((px[k] - pc[k]).abs().max()) for k in pc) <= PARAM_TOL
        assert runs['xla']['after'] == runs['cpu']['after']

def test_compilations_stop_growing(runs):
    "After warm-up (steps 1-2, see STEPS) XLA compiles nothing new: steps 3 and 4 reuse every graph."
    c = runs['xla']['compiles']
    assert len(c) == STEPS and c[0] > 0, c
    assert c[1] == c[2] == c[3], c

def test_gradients_agree():
    "One backward pass through the fixed-shape log-probs: every parameter's gradient on XLA equals CPU eager's (relative 1e-4; measured 1e-5), weights tied on both."
    code = """
import torch, torch_xla
from openvlthinker_nb.policy import static as xla
from openvlthinker_nb.policy.load import load_policy
from openvlthinker_nb.tasks.data import load_onethinker
from openvlthinker_nb.paths import resolve_data
ds = load_onethinker(resolve_data('default', 'rl'))
recs = [ds[i] for i in (1, 2, 3, 4)]
m0, p0 = load_policy(device='cpu'); ro = xla.static_rollout(m0, p0, recs, n=2, max_new_tokens=16, seed=0)
grads = {}
for dev in ('xla', 'cpu'):   # XLA first: the autograd engine fails when a CPU backward ran before the XLA device existed
    m, p = load_policy(device=dev)
    assert m.lm_head.weight is m.model.language_model.embed_tokens.weight, dev
    m.train()
    lp, _ = xla.static_response_logprobs(m, ro, micro_batch=8, with_entropy=False)
    (lp * ro.response_mask.to(lp.device)).sum().backward(); xla.sync(m.device)
    grads[dev] = {k: v.grad.detach().cpu() for k, v in m.named_parameters() if v.grad is not None}
assert set(grads['xla']) == set(grads['cpu'])
rel = {k: float((grads['xla'][k] - g).norm() / (g.norm() + 1e-12)) for k, g in grads['cpu'].items()}
print('RESULT', max(rel.values()), max(rel, key=rel.get))
"""
    p = subprocess.run([sys.executable, '-c', code], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stderr[-3000:]
    worst = [l for l in p.stdout.splitlines() if l.startswith('RESULT ')][-1].split()
    assert float(worst[1]) <= 1e-4, worst

def test_heldout_on_xla():
    "Evaluation (heldout.score_records) runs with device=xla and scores like eager CPU on the fixed-shape path (at most one record differs, a flipped token; measured: none)."
    code = """
import json, os
from openvlthinker_nb.policy.load import load_policy
from openvlthinker_nb.eval.heldout import EvalProtocol, score_records
from openvlthinker_nb.tasks.data import load_onethinker
from openvlthinker_nb.paths import resolve_data
ds = load_onethinker(resolve_data('default', 'test')).select(list(range(6)))
m, p = load_policy(device=os.environ['DEV'])
df = score_records(m, p, ds, EvalProtocol(k=2, temperature=0.7, top_p=0.95, max_new_tokens=16, seed=0), batch_size=6, progress=False, engine='static')
print('RESULT ' + df.to_json(orient='records'))
"""
    out = {}
    for dev in ('xla', 'cpu'):
        env = {**os.environ, 'DEV': dev}
        p = subprocess.run([sys.executable, '-c', code], env=env, cwd=ROOT, capture_output=True, text=True, timeout=900)
        assert p.returncode == 0, p.stderr[-3000:]
        out[dev] = json.loads([l for l in p.stdout.splitlines() if l.startswith('RESULT ')][-1][7:])
    assert len(out['xla']) == len(out['cpu']) == 6
    assert sum(a != b for a, b in zip(out['xla'], out['cpu'])) <= 1, (out['xla'], out['cpu'])

def test_papermill_notebook_on_xla(tmp_path):
    "The experiment notebook runs with `-p device xla -p max_steps 2` at the small scale (see the module docstring; online filter on)."
    out = tmp_path/'out.ipynb'
    small = dict(batch_prompts=4, n=2, max_new_tokens=16, micro_batch=8, eval_limit=1, eval_k=0, copy_figures=False)
    args = [a for k, v in small.items() for a in ('-p', k, str(v))]
    p = subprocess.run(['papermill', 'nbs/05_train.ipynb', str(out), '-p', 'device', 'xla', '-p', 'max_steps', '2', *args,
                        '-p', 'output_dir', str(tmp_path/'run'), '--log-level', 'WARNING'], cwd=ROOT, capture_output=True, text=True, timeout=1800)
    assert p.returncode == 0, p.stderr[-3000:]
    metrics = [json.loads(l) for l in (tmp_path/'run'/'metrics.jsonl').read_text().splitlines() if l]
    assert [m['step'] for m in metrics] == [1, 2]
    assert json.loads((tmp_path/'run'/'config.json').read_text())['resolved']['device'].startswith('xla')
    assert (tmp_path/'run'/'final'/'model.safetensors').exists()
