"""`device='xla' parallel='fsdp'`: the policy sharded over XLA devices with SPMD (policy.spmd), on torch-xla's CPU runtime
with two virtual devices (CPU_NUM_DEVICES=2), in the XLA environment: `bash tests/xla/run.sh`.

The scale of test_xla.py (tests/xla/run_steps.py, SMALL): 4 RL steps of 4 prompts x 2 responses, 16 new tokens. The
sharded run (conftest's `runs`, beside the unsharded one) is compared with the unsharded XLA run with the tolerances and
checks test_xla.py uses against the CPU; then resumed from its step-2 checkpoint in a fresh process (its folder as a kill
after that checkpoint leaves it) and compared with itself uninterrupted (RESUME_TOL); and the experiment notebook runs with
`-p parallel fsdp`."""
import json, os, shutil, subprocess
from pathlib import Path
import pytest

pytest.importorskip('torch_xla')
pytestmark = pytest.mark.skipif(os.environ.get('PJRT_DEVICE') != 'CPU', reason='run with PJRT_DEVICE=CPU (tests/xla/run.sh)')
from conftest import ROOT, STEPS, LP_TOL, SHARDED_ENV, assert_runs_agree, run_steps

def test_sharded_steps_agree_with_unsharded(runs):
    "Sharded over 2 devices against unsharded, same data and seeds: rollouts, metrics, final parameters and held-out result (conftest.assert_runs_agree)."
    assert_runs_agree(runs['fsdp'], runs['xla'])

def test_sharded_state_and_compiles(runs):
    "Every weight and AdamW moment stays split over the 2 devices, checkpoints are written shard by shard, and after warm-up (steps 1-2) nothing new compiles."
    f = runs['fsdp']
    c = f['compiles']
    assert len(c) == STEPS and c[0] > 0 and c[1] == c[2] == c[3], c
    s = f['sharding']
    assert s['devices'] == 2 and s['weights'] > 0 and s['weights_split'] == s['weights'], s
    assert s['moments'] == 2 * s['weights'] and s['moments_split'] == s['moments'], s
    ck = f['out']/'checkpoints'/'step_000002'
    assert (ck/'sharded').is_dir() and not (ck/'model.safetensors').exists() and (ck/'state.json').exists()

@pytest.fixture(scope='module')
def resumed(runs, tmp_path_factory):
    "The sharded run resumed in a fresh process from its folder as a kill right after the step-2 checkpoint leaves it."
    cut = tmp_path_factory.mktemp('resume')/'fsdp'
    shutil.copytree(runs['fsdp']['out'], cut)
    for name in ('final', 'figures', 'checkpoints/step_000004'): shutil.rmtree(cut/name, ignore_errors=True)
    for name in ('heldout_after.csv', 'rollouts.pt'): (cut/name).unlink(missing_ok=True)
    ev = json.loads((cut/'eval.json').read_text()); (cut/'eval.json').write_text(json.dumps({k: ev[k] for k in ('protocol', 'before')}))
    lines = [l for l in (cut/'metrics.jsonl').read_text().splitlines() if l and json.loads(l)['step'] <= 2]
    (cut/'metrics.jsonl').write_text(''.join(l + '\n' for l in lines))
    return run_steps('xla', cut, env=SHARDED_ENV, overrides=('parallel=fsdp', 'save_every=2', 'resume=true'))

RESUME_TOL = 1e-6  # resumed vs uninterrupted: the resumed process compiles its graphs anew, and its first step's differ at float
                   # noise (measured: entropies 1.4e-7 and ratio_mean 5e-8 relative at step 3, log-probs 1.4e-6, final weights 7.5e-9)

def test_kill_and_resume(runs, resumed):
    """Resumed after step 2: steps 3-4 sample the same tokens, with the same rewards and lengths, the other metrics, the
    log-probs and the final weights equal to float noise (RESUME_TOL, LP_TOL), and the held-out result is the same."""
    import torch
    from safetensors.torch import load_file
    full = runs['fsdp']
    assert [m['step'] for m in resumed['metrics']] == [1, 2, 3, 4]
    assert resumed['metrics'][:2] == full['metrics'][:2]   # kept from the checkpointed run's log
    for mr, mf in zip(resumed['metrics'][2:], full['metrics'][2:]):
        for k, v in mf.items():
            if k.startswith('time/') or k == 'seconds': continue
            if isinstance(v, float) and not any(k.startswith(e) for e in ('reward/', 'accuracy/', 'length/')):
                assert abs(mr[k] - v) <= RESUME_TOL * max(1.0, abs(v)), (mf['step'], k, mr[k], v)
            else: assert mr[k] == v, (mf['step'], k, mr[k], v)
    rf, rr = (torch.load(r['out']/'rollouts.pt') for r in (full, resumed))
    assert len(rr) == 3   # steps 3 and 4, held-out after
    for a, b in zip(rf[3:], rr):
        assert torch.equal(a['response_ids'], b['response_ids'])
        assert (a['logprobs'] - b['logprobs']).abs().max() <= LP_TOL
    pf, pr = (load_file(str(r['out']/'final'/'model.safetensors')) for r in (full, resumed))
    assert set(pf) == set(pr) and max(float((pf[k] - pr[k]).abs().max()) for k in pf) <= RESUME_TOL
    assert resumed['after'] == full['after']

def test_papermill_notebook_sharded(tmp_path):
    "`papermill nbs/05_train.ipynb -p device xla -p parallel fsdp -p max_steps 2` runs at the small scale (online filter on): a sharded checkpoint and the HF export."
    out = tmp_path/'out.ipynb'
    small = dict(batch_prompts=4, n=2, max_new_tokens=16, micro_batch=8, eval_limit=1, eval_k=0, copy_figures=False)
    args = [a for k, v in small.items() for a in ('-p', k, str(v))]
    p = subprocess.run(['papermill', 'nbs/05_train.ipynb', str(out), '-p', 'device', 'xla', '-p', 'parallel', 'fsdp', '-p', 'max_steps', '2', *args,
                        '-p', 'output_dir', str(tmp_path/'run'), '--log-level', 'WARNING'], cwd=ROOT, capture_output=True, text=True, timeout=1800,
                       env={**os.environ, **SHARDED_ENV})
    assert p.returncode == 0, p.stderr[-3000:]
    run = tmp_path/'run'
    assert [json.loads(l)['step'] for l in (run/'metrics.jsonl').read_text().splitlines() if l] == [1, 2]
    cfg = json.loads((run/'config.json').read_text())
    assert cfg['parallel'] == 'fsdp' and cfg['resolved']['device'].startswith('xla')
    assert (run/'checkpoints'/'step_000002'/'sharded').is_dir()
    from transformers import AutoConfig
    assert (run/'final'/'model.safetensors').exists() and AutoConfig.from_pretrained(run/'final').model_type == 'qwen3_vl'
