"""`parallel=fsdp` against `parallel=ddp` on two CPU processes (gloo, torchrun), exact kill-and-resume under fsdp, a
two-process checkpoint resumed in one process, and the exported final folder. About 5 minutes on two cores (eight
torchrun launches of the tiny model; tests/dist_driver.py is what each process runs). LoRA on two processes (under
ddp and fsdp) against one, and its kill-and-resume and export under fsdp: about 2 more minutes (seven launches)."""
import json, os, shutil, subprocess, sys
from pathlib import Path
import pytest
import torch
from safetensors.torch import load_file
from openvlthinker_nb.paths import REPO_ROOT

# 6 prompts (one per family) x 4 responses of <= 10 tokens, online filter on (two rounds), per-family gradients at steps 1 and 3
TINY = dict(num_threads=1, max_steps=3, batch_prompts=6, n=4, max_new_tokens=10, eval_limit=1, eval_max_new_tokens=10, micro_batch=8,
            save_every=1, grad_share_every=2, filter_rounds=2, progress=False, copy_figures=False)
DRIVER = REPO_ROOT/'tests'/'dist_driver.py'
SAME_ROLLOUTS = ('reward/mean', 'accuracy/mean', 'length/mean', 'filter/kept_groups', 'filter/prompts_drawn', 'filter/rounds')

def _env():
    env = dict(os.environ, OMP_NUM_THREADS='1', MPLBACKEND='Agg', TOKENIZERS_PARALLELISM='false', HF_HUB_OFFLINE='1')
    env['PYTHONPATH'] = os.pathsep.join([str(REPO_ROOT)] + [p for p in env.get('PYTHONPATH', '').split(os.pathsep) if p])
    return env

def drive(procs:int, cmd:str, cfg:dict, arg:str='', ok:bool=True):
    "Run tests/dist_driver.py in `procs` processes (torchrun when more than one)."
    launch = [sys.executable] + (['-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', str(procs)] if procs > 1 else [])
    p = subprocess.run(launch + [str(DRIVER), cmd, json.dumps(cfg)] + ([arg] if arg else []), env=_env(), capture_output=True, text=True, timeout=900)
    if ok: assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    return p

def _metrics(out): return [json.loads(l) for l in (Path(out)/'metrics.jsonl').read_text().splitlines() if l]
def _results(m): return {k: v for k, v in m.items() if not k.startswith('time/') and k != 'seconds'}
def _rank0(out): return json.loads((Path(out)/'ranks'/'rank0.json').read_text())

@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    "Three uninterrupted steps on two processes under each setting."
    out = {}
    for par in ('fsdp', 'ddp'):
        out[par] = tmp_path_factory.mktemp(par)
        drive(2, 'train', {**TINY, 'parallel': par, 'output_dir': str(out[par])})
    return out

def test_fsdp_matches_ddp(runs):
    "Same seeds: identical rollouts, every metric within 1e-4 relative, final weights within 1e-4."
    ms_f, ms_d = _metrics(runs['fsdp']), _metrics(runs['ddp'])
    assert [m['step'] for m in ms_f] == [m['step'] for m in ms_d] == [1, 2, 3]
    assert sum(m['filter/kept_groups'] for m in ms_f) > 0 and ms_f[0]['grad_norm/task/' + 'spatial_grounding'] is not None
    for a, b in zip(ms_f, ms_d):
        for k in SAME_ROLLOUTS: assert a[k] == b[k], (a['step'], k, a[k], b[k])
        for k, v in _results(a).items():
            if isinstance(v, float) and isinstance(b[k], float): assert abs(v - b[k]) <= 1e-4 * max(abs(v), abs(b[k])) + 1e-7, (a['step'], k, v, b[k])
            else: assert v == b[k], (a['step'], k, v, b[k])
    wf, wd = load_file(str(runs['fsdp']/'final'/'model.safetensors')), load_file(str(runs['ddp']/'final'/'model.safetensors'))
    assert set(wf) == set(wd)
    assert max(float((wf[k] - wd[k]).abs().max()) for k in wf) < 1e-4
    start = load_file(str(REPO_ROOT/'data'/'tiny-qwen3-vl'/'model.safetensors'))
    assert max(float((wf[k] - start[k]).abs().max()) for k in start) > 1e-6   # the updates did something
    ef, ed = (json.loads((runs[p]/'eval.json').read_text()) for p in ('fsdp', 'ddp'))
    assert ef['before'] == ed['before']   # held-out evaluation of the same starting weights

def test_fsdp_resume_after_kill_matches_uninterrupted(runs, tmp_path):
    "Killed after step 2 and resumed, both on two processes: the same metrics, evaluation and weights, bit for bit."
    cfg = {**TINY, 'parallel': 'fsdp', 'output_dir': str(tmp_path/'run')}
    p = drive(2, 'train', cfg, '2', ok=False)
    assert p.returncode != 0 and 'killed after step 2' in p.stderr
    shutil.copytree(tmp_path/'run', tmp_path/'one')   # the same checkpoint, for the one-process resume below
    drive(2, 'train', {**cfg, 'resume': True})
    assert [_results(m) for m in _metrics(tmp_path/'run')] == [_results(m) for m in _metrics(runs['fsdp'])]
    assert json.loads((tmp_path/'run'/'eval.json').read_text()) == json.loads((runs['fsdp']/'eval.json').read_text())
    assert _rank0(tmp_path/'run')['param_digest'] == _rank0(runs['fsdp'])['param_digest']
    # the two-process checkpoint of step 2 goes on in one plain process
    drive(1, 'train', {**cfg, 'output_dir': str(tmp_path/'one'), 'parallel': 'ddp', 'resume': True})
    ms = _metrics(tmp_path/'one')
    assert [m['step'] for m in ms] == [1, 2, 3] and [_results(m) for m in ms[:2]] == [_results(m) for m in _metrics(runs['fsdp'])[:2]]
    assert json.loads((tmp_path/'one'/'config.json').read_text())['resolved']['world_size'] == 2   # the run it continued

def test_two_process_checkpoint_restores_in_one_process(runs, tmp_path):
    "The newest checkpoint of the fsdp run, loaded by two processes and by one (sharded and plain): the same weights and AdamW moments."
    got = {}
    for procs, par in ((2, 'fsdp'), (1, 'fsdp'), (1, 'ddp')):
        f = tmp_path/f'{procs}{par}.json'
        drive(procs, 'restore', {**TINY, 'parallel': par, 'output_dir': str(runs['fsdp'])}, str(f))
        got[procs, par] = json.loads(f.read_text())
    assert {(g['step'], g['params'], g['optimizer']) for g in got.values()} == {(3, _rank0(runs['fsdp'])['param_digest'], got[2, 'fsdp']['optimizer'])}
    assert [g['world'] for g in got.values()] == [2, 1, 1]

def test_exported_folder_gives_the_trainers_logprobs(runs, tmp_path):
    "final/ loads through AutoModelForImageTextToText and scores a rollout as the sharded trainer does."
    from transformers import AutoModelForImageTextToText
    from openvlthinker_nb.policy.rollout import response_logprobs
    drive(2, 'logprobs', {**TINY, 'parallel': 'fsdp', 'output_dir': str(runs['fsdp'])}, str(tmp_path/'lp.pt'))
    ref = torch.load(tmp_path/'lp.pt', weights_only=False)
    m = AutoModelForImageTextToText.from_pretrained(runs['fsdp']/'final').eval()
    assert json.loads((runs['fsdp']/'final'/'config.json').read_text())['architectures'] == ['Qwen3VLForConditionalGeneration']
    with torch.no_grad(): lp, _ = response_logprobs(m, ref['rollout'], with_entropy=False)
    assert ref['rollout'].response_mask.sum() > 0
    assert float((lp - ref['logprobs']).abs().max()) < 1e-5


# LoRA (PEFT) on several processes: r = 8 on every projection of the language model, the KL to the adapter-off policy on
LORA = dict(lora_rank=8, lora_alpha=16.0, lr=1e-2, kl_coef=0.05)
LORA_SUMS = ('pg_loss', 'kl', 'grad_norm', 'clip_frac', 'ratio_mean', 'approx_kl', 'entropy_penalty')

@pytest.fixture(scope='module')
def lora_one(tmp_path_factory):
    "Three updates of one lone process on the fixed batch of tests/dist_driver.py `update` (both halves)."
    f = tmp_path_factory.mktemp('lora1')/'one.pt'
    drive(1, 'update', {**TINY, **LORA, 'parallel': 'ddp', 'output_dir': str(f.parent)}, str(f))
    return torch.load(f, weights_only=False)

def _rel(a:float, b:float)->float: return abs(a - b) / max(abs(a), abs(b), 1e-12)

@pytest.mark.parametrize('par', ['ddp', 'fsdp'])
def test_lora_on_two_processes_matches_one(lora_one, par, tmp_path):
    "Each of two processes takes half of the batch one process takes whole: the same starting adapters, every update's statistics within 1e-4, the merged weights within 1e-5."
    f = tmp_path/'two.pt'
    drive(2, 'update', {**TINY, **LORA, 'parallel': par, 'output_dir': str(tmp_path)}, str(f))
    one, two = lora_one, torch.load(f, weights_only=False)
    assert (one['world'], two['world']) == (1, 2)
    assert one['texts'] == two['texts'] and torch.equal(one['table'], two['table'])   # the same batch
    assert len(one['start']) == 2 * 7 * 2 and all(torch.equal(v, two['start'][k]) for k, v in one['start'].items())   # 2 layers x 7 projections x (A, B)
    assert all(float(v.abs().max()) == 0 for k, v in one['start'].items() if 'lora_B' in k)
    assert len(one['stats']) == len(two['stats']) == 3
    for step, (a, b) in enumerate(zip(one['stats'], two['stats'])):
        for k in LORA_SUMS: assert _rel(a[k], b[k]) <= 1e-4, (step, k, a[k], b[k])
        assert a['tokens'] == b['tokens']
        for k in ('entropy_by_family', 'entropy_sampled_by_family'):
            assert all((x is None and y is None) or _rel(x, y) <= 1e-4 for x, y in zip(a[k], b[k])), (step, k, a[k], b[k])
    fam_a, fam_b = one['stats'][0]['grad_norm_by_family'], two['stats'][0]['grad_norm_by_family']   # the adapters' gradients per family
    assert any(v > 0 for v in fam_a['task']) and all(_rel(x, y) <= 1e-4 for x, y in zip(fam_a['task'], fam_b['task'])), (fam_a, fam_b)
    assert one['stats'][-1]['kl'] > 0 and one['stats'][-1]['grad_norm'] > 0   # the policy left the adapter-off reference
    assert one['merged'].keys() == two['merged'].keys() and not any('lora_' in k or 'base_layer' in k for k in one['merged'])
    assert max(float((v - two['merged'][k]).abs().max()) for k, v in one['merged'].items()) < 1e-5
    moved = max(float((one['weights'][k] - v).abs().max()) for k, v in one['start'].items())
    assert moved > 1e-3, moved   # the adapters trained

def test_lora_fsdp_resume_after_kill_and_export(tmp_path):
    """LoRA under fsdp on two processes: killed after step 1 and resumed equals the uninterrupted run bit for bit; the
    two-process checkpoint goes on in one plain process; final/ holds the merged model (Auto classes) and the adapter,
    which give the same log-probs."""
    from lora_export import assert_lora_export
    cfg = {**TINY, **LORA, 'max_steps': 2, 'parallel': 'fsdp'}
    drive(2, 'train', {**cfg, 'output_dir': str(tmp_path/'full')})
    p = drive(2, 'train', {**cfg, 'output_dir': str(tmp_path/'run')}, '1', ok=False)
    assert p.returncode != 0 and 'killed after step 1' in p.stderr
    shutil.copytree(tmp_path/'run', tmp_path/'one')
    import torch.distributed.checkpoint as dcp
    saved = dcp.FileSystemReader(str(tmp_path/'run'/'checkpoints'/'step_000001'/'dcp')).read_metadata().state_dict_metadata
    held = [k for k in saved if k.startswith('model.')]
    assert len(held) == 2 * 7 * 2 and all('.lora_' in k for k in held)   # the adapters only: the frozen base is the model's files
    drive(2, 'train', {**cfg, 'output_dir': str(tmp_path/'run'), 'resume': True})
    full, run = _metrics(tmp_path/'full'), _metrics(tmp_path/'run')
    assert [m['step'] for m in full] == [1, 2] and [_results(m) for m in run] == [_results(m) for m in full]
    assert all(m['kl'] is not None for m in full) and full[-1]['kl'] > 0
    assert json.loads((tmp_path/'run'/'eval.json').read_text()) == json.loads((tmp_path/'full'/'eval.json').read_text())
    assert _rank0(tmp_path/'run')['param_digest'] == _rank0(tmp_path/'full')['param_digest']
    drive(1, 'train', {**cfg, 'output_dir': str(tmp_path/'one'), 'parallel': 'ddp', 'resume': True})   # the same checkpoint, one plain process
    ms = _metrics(tmp_path/'one')
    assert [m['step'] for m in ms] == [1, 2] and _results(ms[0]) == _results(full[0])
    assert_lora_export(tmp_path/'full'/'final', _rank0(tmp_path/'full')['param_digest'])
