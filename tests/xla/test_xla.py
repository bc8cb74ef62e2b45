"""The `device='xla'` path on torch-xla's CPU runtime (PJRT_DEVICE=CPU), in its own environment: `bash tests/xla/run.sh`.
Skipped (not failed) in the main torch-2.15 environment, which has no torch_xla."""
import json, os, subprocess, sys
from pathlib import Path
import pytest

pytest.importorskip('torch_xla')
pytestmark = pytest.mark.skipif(os.environ.get('PJRT_DEVICE') != 'CPU', reason='run with PJRT_DEVICE=CPU (tests/xla/run.sh)')
HERE, ROOT = Path(__file__).parent, Path(__file__).parents[2]
STEPS = 3
TOL = {'reward/mean': 1e-6, 'accuracy/mean': 1e-6, 'length/mean': 1e-6, 'pg_loss': 1e-3, 'grad_norm': 1e-3, 'ratio_mean': 1e-3}  # see test_three_steps_agree

def _run(device:str, out:Path, steps:int=STEPS, static:bool=False)->dict:
    env = {**os.environ, 'OPENVLTHINKER_STATIC_SHAPES': '1' if static else '0'}
    p = subprocess.run([sys.executable, str(HERE/'run_steps.py'), device, str(out), str(steps)], env=env, cwd=ROOT,
                       capture_output=True, text=True, timeout=3600)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    line = [l for l in p.stdout.splitlines() if l.startswith('RESULT ')][-1]
    return json.loads(line[len('RESULT '):])

@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    "The same 3 steps on XLA and eagerly on the CPU, both through the fixed-shape passes (same sampling noise)."
    tmp = tmp_path_factory.mktemp('xla')
    return {'xla': _run('xla', tmp/'xla'), 'cpu': _run('cpu', tmp/'cpu', static=True)}

def test_three_steps_agree(runs):
    """Sampled responses, rewards and lengths are identical (same logits up to float noise -> same Gumbel-max draws);
    loss, gradient norm and ratio agree to 1e-3 (XLA's CPU compiler fuses and reorders float32 arithmetic)."""
    xs, cs = runs['xla']['metrics'], runs['cpu']['metrics']
    assert len(xs) == len(cs) == STEPS
    for mx, mc in zip(xs, cs):
        assert mx['filter/kept_groups'] == mc['filter/kept_groups'] and mx['filter/prompts_drawn'] == mc['filter/prompts_drawn']
        for k, tol in TOL.items():
            assert abs(mx[k] - mc[k]) <= tol * max(1.0, abs(mc[k])), (mx['step'], k, mx[k], mc[k])
    assert runs['xla']['after'] == runs['cpu']['after']

def test_compilations_stop_growing(runs):
    "After the first step (warm-up: both filter rounds' shapes seen) XLA compiles nothing new."
    c = runs['xla']['compiles']
    assert len(c) == STEPS and c[0] > 0, c
    assert c[-1] == c[1], c

def test_heldout_on_xla():
    "Evaluation (heldout.score_records) runs with device=xla and gives the eager CPU fixed-shape result."
    code = """
import json, os
from openvlthinker_nb import policy
from openvlthinker_nb.heldout import EvalProtocol, score_records
from openvlthinker_nb.data import load_onethinker
from openvlthinker_nb.trainer.config import resolve_data
ds = load_onethinker(resolve_data('default', 'test')).select(list(range(6)))
m, p = policy.load_policy(device=os.environ['DEV'])
df = score_records(m, p, ds, EvalProtocol(k=2, temperature=0.7, top_p=0.95, max_new_tokens=24, seed=0), batch_size=6, progress=False)
print('RESULT ' + df.to_json())
"""
    out = {}
    for dev in ('xla', 'cpu'):
        env = {**os.environ, 'DEV': dev, 'OPENVLTHINKER_STATIC_SHAPES': '1'}
        p = subprocess.run([sys.executable, '-c', code], env=env, cwd=ROOT, capture_output=True, text=True, timeout=1800)
        assert p.returncode == 0, p.stderr[-3000:]
        out[dev] = json.loads([l for l in p.stdout.splitlines() if l.startswith('RESULT ')][-1][7:])
    assert out['xla'] == out['cpu']
    assert len(out['xla']['greedy']) == 6

def test_papermill_notebook_on_xla(tmp_path):
    "The experiment notebook runs with `-p device xla -p max_steps 2` (evaluation cut to one record per family to fit CI)."
    out = tmp_path/'out.ipynb'
    p = subprocess.run(['papermill', 'nbs/05_train.ipynb', str(out), '-p', 'device', 'xla', '-p', 'max_steps', '2',
                        '-p', 'eval_limit', '1', '-p', 'eval_k', '0', '-p', 'output_dir', str(tmp_path/'run'), '-p', 'copy_figures', 'False',
                        '--log-level', 'WARNING'], cwd=ROOT, capture_output=True, text=True, timeout=3600)
    assert p.returncode == 0, p.stderr[-3000:]
    metrics = [json.loads(l) for l in (tmp_path/'run'/'metrics.jsonl').read_text().splitlines() if l]
    assert [m['step'] for m in metrics] == [1, 2]
    assert json.loads((tmp_path/'run'/'config.json').read_text())['resolved']['device'].startswith('xla')
