"""The `device='xla'` path on torch-xla's CPU runtime (PJRT_DEVICE=CPU), in its own environment: `bash tests/xla/run.sh`.
Skipped (not failed) in the main torch-2.15 environment, which has no torch_xla.

Scale (sized for CI: 2 cores, XLA's CPU runtime, the whole suite with its environment in about 10 minutes): RL steps of
4 prompts x 2 responses, 16 new tokens, one micro-batch, without the online filter, on the rl split minus spatial_grounding
(one 128-token prompt bucket), held-out evaluation on one record per family, greedy only (tests/xla/run_steps.py, SMALL);
the papermill run: 2 steps of the same size with the online filter on, on the default data. The main job's 16 x 8 x 48
configuration is not run here (minutes per step on XLA's CPU runtime). No 2-process run on the xla backend. The sharded
runs (parallel=fsdp, 2 virtual devices) are in test_xla_fsdp.py; conftest.py starts the runs side by side."""
import json, os, subprocess, sys
from pathlib import Path
import pytest

pytest.importorskip('torch_xla')
pytestmark = pytest.mark.skipif(os.environ.get('PJRT_DEVICE') != 'CPU', reason='run with PJRT_DEVICE=CPU (tests/xla/run.sh)')
from conftest import ROOT, STEPS, assert_runs_agree   # the runs (fixture `runs`), tolerances and comparison shared with test_xla_fsdp.py

def test_steps_agree(runs):
    "XLA against CPU eager on the same fixed-shape path, same sampling noise (conftest.assert_runs_agree says what is compared, with which tolerances)."
    assert_runs_agree(runs['xla'], runs['cpu'])

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
