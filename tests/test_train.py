"The trainer end to end on the embedded tiny model: a short run, resume equality, two processes under torchrun, bad parameters."
import json, os, subprocess, sys
from pathlib import Path
import numpy as np
import pytest
from openvlthinker_nb.paths import REPO_ROOT
from openvlthinker_nb.policy.load import DEFAULT_MODEL, load_policy
from openvlthinker_nb.tasks.vocab import TASK_TYPES
from openvlthinker_nb.tasks.synthetic import default_split
from openvlthinker_nb.trainer.config import TrainConfig

# tiny settings: 6 prompts (one per family) x 2 responses of <= 10 tokens, 1 held-out record per family
from openvlthinker_nb.trainer.loop import train, param_digest
from openvlthinker_nb.trainer.checkpoints import last_checkpoint
from openvlthinker_nb.trainer import loop as loop_module
TINY = dict(num_threads=1, max_steps=3, batch_prompts=6, n=2, max_new_tokens=10, eval_limit=1, eval_max_new_tokens=10, micro_batch=6,
            save_every=1, grad_share_every=2, filter_rounds=2, progress=False, copy_figures=False)
TIME_KEYS = lambda m: {k: v for k, v in m.items() if not k.startswith('time/') and k != 'seconds'}

def _env():
    "Environment for child processes: the repo importable whatever the install mode, one thread each."
    env = dict(os.environ, OMP_NUM_THREADS='1', MPLBACKEND='Agg', TOKENIZERS_PARALLELISM='false', HF_HUB_OFFLINE='1')
    env['PYTHONPATH'] = os.pathsep.join([str(REPO_ROOT)] + [p for p in env.get('PYTHONPATH', '').split(os.pathsep) if p])
    return env

def _metrics(out): return [json.loads(l) for l in (Path(out)/'metrics.jsonl').read_text().splitlines() if l]

@pytest.fixture(scope='module')
def full_run(tmp_path_factory):
    "An uninterrupted 3-step run."
    out = tmp_path_factory.mktemp('full')
    return out, train(TrainConfig(**TINY, output_dir=str(out)))

def test_short_run_writes_everything(full_run):
    out, res = full_run
    cfg = json.loads((out/'config.json').read_text())
    assert cfg['max_steps'] == 3 and cfg['algorithm'] == 'g2rpo' and cfg['resolved']['world_size'] == 1
    ms = _metrics(out)
    assert [m['step'] for m in ms] == [1, 2, 3]
    for t in TASK_TYPES:
        for k in ('reward', 'accuracy', 'length', 'entropy', 'adv_std', 'grad_share'): assert f'{k}/{t}' in ms[0], (k, t)
    for k in ('reward/mean', 'clip_frac', 'clip_frac_high', 'clip_frac_low', 'clip_frac_dual', 'filter/kept_groups',
              'filter/dropped_groups', 'seconds', 'time/generate', 'time/score', 'time/logprobs', 'time/update'):
        assert k in ms[0], k
    assert all(m['seconds'] > 0 for m in ms)
    shares = [ms[0][f'grad_share/{t}'] for t in TASK_TYPES]   # measured at steps 1 and 3 (every 2)
    if ms[0]['filter/kept_groups'] > 0: assert abs(sum(shares) - 1) < 1e-6, shares
    assert ms[1][f'grad_share/{TASK_TYPES[0]}'] is None
    ev = json.loads((out/'eval.json').read_text())
    assert set(ev) == {'protocol', 'before', 'after', 'delta'} and ev['protocol']['k'] == 4 and ev['protocol']['records'] == 6
    assert set(ev['before']) == {'greedy', 'sampled', 'pass@4', 'se', 'n'} and set(ev['delta']) == {'greedy', 'sampled', 'pass@4', 'se'}
    assert set(ev['before']['greedy']) == set(TASK_TYPES) | {'mean'} and ev['before']['n'] == {t: 1 for t in TASK_TYPES}
    for f in ('heldout_before.csv', 'heldout_after.csv'): assert len((out/f).read_text().splitlines()) == 7, f
    ck = last_checkpoint(out)
    assert ck.name == 'step_000003'
    for f in ('dcp', 'rng0.safetensors', 'rng0.json', 'state.json'): assert (ck/f).exists(), f
    assert len(list((out/'checkpoints').glob('step_*'))) == 2   # keep_checkpoints
    for name in ('train_reward_accuracy', 'train_entropy_length', 'train_grad_share'):
        for ext in ('png', 'pdf'): assert (out/'figures'/f'{name}.{ext}').stat().st_size > 0
    log = (out/'train.log').read_text()
    assert 0 <= log.find('memory plan: ') < log.find('before: '), log[:500]   # the plan, made before the run's log existed, reaches it
    model, _ = load_policy(out/'final')   # the final policy loads through the Auto classes
    assert param_digest(model) == res['param_digest']

class Killed(Exception): pass

def test_resume_after_kill_matches_uninterrupted(full_run, tmp_path):
    out_a, res_a = full_run
    def kill(step, m):
        if step == 2: raise Killed()
    with pytest.raises(Killed): train(TrainConfig(**TINY, output_dir=str(tmp_path)), on_step=kill)
    assert len(_metrics(tmp_path)) == 2 and last_checkpoint(tmp_path).name == 'step_000002'
    res_b = train(TrainConfig(**TINY, output_dir=str(tmp_path), resume=True))
    assert [TIME_KEYS(m) for m in _metrics(tmp_path)] == [TIME_KEYS(m) for m in _metrics(out_a)]
    assert res_b['after'] == res_a['after'] and res_b['before'] == res_a['before']
    assert res_b['param_digest'] == res_a['param_digest']

def test_two_processes_agree(tmp_path):
    "torchrun, 2 CPU processes (gloo), two steps: every process ends with the same weights, which moved."
    over = {**TINY, 'max_steps': 2, 'output_dir': str(tmp_path), 'online_filter': False}
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2', '-m', 'openvlthinker_nb.train',
           '--overrides', *[f'{k}={json.dumps(v)}' for k, v in over.items()]]
    p = subprocess.run(cmd, cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    ranks = [json.loads((tmp_path/'ranks'/f'rank{r}.json').read_text()) for r in (0, 1)]
    assert ranks[0]['param_digest'] == ranks[1]['param_digest']
    assert ranks[0]['after'] == ranks[1]['after']
    start, _ = load_policy(DEFAULT_MODEL)
    assert ranks[0]['param_digest'] != param_digest(start)   # the update did something
    ms = _metrics(tmp_path)
    assert [m['step'] for m in ms] == [1, 2] and ms[0]['filter/prompts_drawn'] == 6
    assert json.loads((tmp_path/'config.json').read_text())['resolved']['world_size'] == 2

@pytest.mark.parametrize('params,needle', [({'lrr': 1e-4}, 'unknown parameter `lrr`; did you mean `lr`?'),
                                           ({'algorithm': 'ppo'}, 'bad parameter `algorithm`'),
                                           ({'max_steps': '10'}, 'bad parameter `max_steps`'),
                                           ({'batch_prompts': 0}, 'bad parameter `batch_prompts`'),
                                           ({'train_data': 'missing.jsonl'}, 'bad parameter `train_data`'),
                                           ({'c_dual': 1.1}, 'bad parameter `c_dual`')])
def test_bad_parameters_fail(params, needle):
    with pytest.raises((ValueError, TypeError)) as e: TrainConfig.from_dict(params)
    assert needle in str(e.value)

def _papermill_main_job(tmp_path, *params):
    "Run nbs/05_train.ipynb under papermill with `-p` pairs, output_dir pointed at tmp_path/'never'; return (process, output_dir)."
    out = tmp_path/'never'
    cmd = [sys.executable, '-m', 'papermill', str(REPO_ROOT/'nbs'/'05_train.ipynb'), str(tmp_path/'out.ipynb'),
           '-p', 'output_dir', str(out), *params, '--no-progress-bar']
    return subprocess.run(cmd, cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=600), out

def test_bad_parameter_stops_the_notebook_before_work(tmp_path):
    "papermill with a misspelt parameter fails at the config cell, naming it; nothing is trained or written."
    p, out = _papermill_main_job(tmp_path, '-p', 'max_step', '3')
    assert p.returncode != 0
    assert 'unknown parameter `max_step`; did you mean `max_steps`?' in p.stdout + p.stderr
    assert not out.exists()


def test_parameter_outside_the_short_cell_reaches_the_config(tmp_path):
    "A TrainConfig field that the notebook's parameters cell does not list still reaches the config (here: refused as invalid)."
    p, out = _papermill_main_job(tmp_path, '-p', 'eval_temperature', '-1')
    assert p.returncode != 0 and 'eval_temperature' in p.stdout + p.stderr and '> 0' in p.stdout + p.stderr
    assert not out.exists()


def test_entropy_surrogates_gradients():
    "Summed exactly over the vocabulary, the score surrogate's expected gradient is dH/dz; the released one's is 0."
    import torch
    from openvlthinker_nb.algos.shaping import entropy_from_logits
    from openvlthinker_nb.trainer.config import ENTROPY_SOURCES, ENTROPY_SURROGATES
    assert set(ENTROPY_SURROGATES) == set(ENTROPY_SOURCES)
    z = torch.tensor([0.9, -1.2, 0.4, 2.0], dtype=torch.float64, requires_grad=True)
    def expected_grad(name):
        lp = torch.log_softmax(z, -1); p = lp.exp().detach()
        s = sum(p[y] * ENTROPY_SURROGATES[name](lp[y], entropy_from_logits(z)) for y in range(4))
        return torch.autograd.grad(s, z)[0]
    true = torch.autograd.grad(entropy_from_logits(z), z)[0]
    assert torch.allclose(expected_grad('exact'), true)
    assert torch.allclose(expected_grad('score'), true)
    assert torch.allclose(expected_grad('sampled'), torch.zeros(4, dtype=torch.float64), atol=1e-12)
    assert true.abs().max() > 0.1


def test_first_update_ratio_is_one(full_run):
    "Sampling and training log-probs agree: with one optimizer step per batch, every step's mean ratio is 1 within 1e-3."
    out, _ = full_run
    ms = _metrics(out)
    assert json.loads((out/'config.json').read_text())['updates_per_step'] == 1
    updated = [m for m in ms if m['skipped_updates'] == 0]   # a step whose filter kept no group takes no update
    assert updated
    for m in updated:
        assert abs(m['ratio_mean'] - 1) < 1e-3, m['ratio_mean']
        assert m['approx_kl'] < 1e-4 and m['clip_frac'] == 0.0



def _all_A_run(tmp_path, **over)->list:
    "Train 30 steps on the RL split's multiple-choice records, every answer relabelled 'A'; the sampled training accuracy of each step."
    src = default_split('rl')
    recs = [json.loads(l) for l in src.read_text().splitlines()]
    mc = [r for r in recs if r['problem_type'] == 'multiple choice']
    assert len(mc) >= 500
    (tmp_path/'all_A.jsonl').write_text(''.join(json.dumps({**r, 'answer': '<answer>A</answer>'}) + '\n' for r in mc))
    out = tmp_path/'run'
    train(TrainConfig(train_data=str(tmp_path/'all_A.jsonl'), image_root=str(src.parent), output_dir=str(out), max_steps=30,
                      eval_limit=1, eval_k=0, save_every=0, progress=False, copy_figures=False, **over))
    return [m['accuracy/mean'] for m in _metrics(out)]   # sampled training accuracy of each step's rollouts (kept groups)


def test_trivial_reward_is_learned(tmp_path):
    "Sanity: with every multiple-choice answer of the RL split relabelled 'A', the default config learns to answer 'A' within 30 steps."
    acc = _all_A_run(tmp_path)
    assert len(acc) == 30 and np.mean(acc[:3]) < 0.5, acc
    assert np.mean(acc[-3:]) >= 0.8, acc
    eta = [l for l in (tmp_path/'run'/'train.log').read_text().splitlines() if 'expected: ' in l]   # the run's own time estimate, once
    assert len(eta) == 1 and 'over the first 5; 25 steps to go' in eta[0], eta


def test_trivial_reward_is_learned_with_lora(tmp_path):
    """The same sanity check with LoRA (r = 8 on the language model's projections, vision frozen), at CI's size: 8 prompts x 4
    responses a step, one thread, no gradient-share passes (~40 s on two busy cores; seeds 0 and 1 reach 0.99)."""
    acc = _all_A_run(tmp_path, lora_rank=8, lora_alpha=16.0, lr=2e-3, batch_prompts=8, n=4, grad_share_every=0, num_threads=1)
    assert len(acc) == 30 and np.mean(acc[:3]) < 0.5, acc
    assert np.mean(acc[-3:]) >= 0.8, acc


def test_lora_run_resumes_and_exports_the_merged_model_and_the_adapter(tmp_path):
    "LoRA with kl_coef > 0 (reference: the base with the adapters off): kill and resume equals the uninterrupted run; final/ loads through the Auto classes and gives the trainer's log-probs."
    from lora_export import assert_lora_export
    lora = dict(**{**TINY, 'max_steps': 2}, lora_rank=8, lora_alpha=16.0, lr=1e-2, kl_coef=0.05)
    out = tmp_path/'lora'
    res = train(TrainConfig(**lora, output_dir=str(out)))
    def kill(step, m):
        if step == 1: raise Killed()
    with pytest.raises(Killed): train(TrainConfig(**lora, output_dir=str(tmp_path/'killed')), on_step=kill)
    res_b = train(TrainConfig(**lora, output_dir=str(tmp_path/'killed'), resume=True))
    assert res_b['param_digest'] == res['param_digest'] and res_b['after'] == res['after']
    assert (out/'final'/'adapter'/'adapter_model.safetensors').exists() and (out/'final'/'model.safetensors').exists()
    assert_lora_export(out/'final', res['param_digest'])
    ms = _metrics(out)
    assert [m['step'] for m in ms] == [1, 2] and all(m['kl'] is not None for m in ms)


def test_memory_plan_refuses_before_loading_weights(tmp_path, monkeypatch):
    "A run whose plan cannot fit this machine's RAM stops before any weights load, naming what is over and what would fit; memory_check=false goes on."
    from openvlthinker_nb.trainer.memory import MemoryPlanError
    class Loaded(Exception): pass
    def no_weights(*a, **k): raise Loaded()
    monkeypatch.setattr(loop_module, 'load_policy', no_weights)
    big = {**TINY, 'output_dir': str(tmp_path/'big'), 'max_new_tokens': 10**7}   # a rollout of ~420 GB per process
    with pytest.raises(MemoryPlanError) as e: train(TrainConfig(**big))
    msg = str(e.value)
    assert 'kv_cache' in msg and 'These settings would fit' in msg and 'max_new_tokens=' in msg and 'memory_check=false' in msg, msg
    with pytest.raises(Loaded): train(TrainConfig(**big, memory_check=False))   # the override reaches the loading


def test_rollout_batch_splits_generate_calls(tmp_path, monkeypatch):
    "rollout_batch = 2: each process's 6 prompts go to generate in calls of 2; every prompt keeps its own group."
    from openvlthinker_nb.trainer import collect as collect_module
    sizes, real = [], collect_module.rollout
    def counting(model, processor, records, **kw): sizes.append(len(records)); return real(model, processor, records, **kw)
    monkeypatch.setattr(collect_module, 'rollout', counting)
    train(TrainConfig(**{**TINY, 'max_steps': 1, 'online_filter': False, 'eval_k': 0}, output_dir=str(tmp_path), rollout_batch=2))
    assert sizes == [2, 2, 2], sizes
    m = _metrics(tmp_path)[0]
    assert m['filter/prompts_drawn'] == 6 and m['filter/kept_groups'] == 6   # six distinct groups, none merged


def test_short_run_leaves_repo_figures_alone(tmp_path):
    "A 3-step run with non-default parameters keeps its figures in its output folder, even with copy_figures on."
    from openvlthinker_nb.paths import FIGURES_DIR
    repo_figs = {p: p.read_bytes() for p in FIGURES_DIR.glob('train_*.png')}
    out = tmp_path/'run'
    train(TrainConfig(**{**TINY, 'copy_figures': True}, output_dir=str(out)))
    assert (out/'figures'/'train_reward_accuracy.png').exists()
    assert {p: p.read_bytes() for p in FIGURES_DIR.glob('train_*.png')} == repo_figs


def test_trl_bench_needs_only_its_extra(monkeypatch):
    "tests/bench_trl.py imports without TRL; run without it, it says which extra installs it. Its micro-batch split is exact."
    import bench_trl
    monkeypatch.setitem(sys.modules, 'trl', None)   # as if trl were not installed
    with pytest.raises(SystemExit, match=r'pip install -e "\.\[bench\]"'): bench_trl.require_trl()
    assert bench_trl.micro_batch_for(128, 36) == 32 and bench_trl.micro_batch_for(16, 36) == 16 and bench_trl.micro_batch_for(7, 4) == 1


def test_shared_engine_trains(tmp_path):
    "Two steps with the `shared` engine: the update's log-probs equal the rollout's (ratio 1 before the step), metrics written."
    train(TrainConfig(**{**TINY, 'max_steps': 2, 'grad_share_every': 0, 'save_every': 0, 'online_filter': False}, rollout_engine='shared', output_dir=str(tmp_path)))
    ms = _metrics(tmp_path)
    assert [m['step'] for m in ms] == [1, 2]
    kept = [m for m in ms if m['filter/kept_groups'] > 0]
    assert len(kept) == 2   # the filter is off: every group trained on
    for m in kept: assert abs(m['ratio_mean'] - 1) < 1e-5 and m['clip_frac'] == 0, (m['ratio_mean'], m['clip_frac'])
    assert json.loads((tmp_path/'config.json').read_text())['rollout_engine'] == 'shared'

def test_eval_cache_reuses_the_starting_scores(full_run, tmp_path, monkeypatch):
    "With `eval_cache`, a run from the same policy, records and protocol copies the starting scores instead of scoring; another seed does not."
    calls = []
    real = loop_module.score_records
    monkeypatch.setattr(loop_module, 'score_records', lambda *a, **k: calls.append(1) or real(*a, **k))
    one = {**TINY, 'max_steps': 1, 'save_every': 0, 'grad_share_every': 0, 'eval_cache': str(tmp_path/'cache')}
    train(TrainConfig(**one, output_dir=str(tmp_path/'a')))
    assert len(calls) == 2 and len(list((tmp_path/'cache').glob('*.csv'))) == 1
    before = lambda run: (tmp_path/run/'heldout_before.csv').read_bytes()
    assert before('a') == (full_run[0]/'heldout_before.csv').read_bytes()   # scored as a run without the cache scores
    train(TrainConfig(**{**one, 'algorithm': 'grpo'}, output_dir=str(tmp_path/'b')))   # another estimator, the same start
    assert len(calls) == 3, 'the second run scored its starting policy again'
    assert 'reused from' in (tmp_path/'b'/'train.log').read_text()
    assert before('b') == before('a')
    ev = lambda run: json.loads((tmp_path/run/'eval.json').read_text())['before']
    assert ev('b') == ev('a') == json.loads((full_run[0]/'eval.json').read_text())['before']
    train(TrainConfig(**{**one, 'seed': 1}, output_dir=str(tmp_path/'c')))   # another seed: other samples, scored afresh
    assert len(calls) == 5 and len(list((tmp_path/'cache').glob('*.csv'))) == 2
    assert not list((tmp_path/'cache').glob('.*'))   # no temporary file left behind
    import shutil
    model = tmp_path/'model'; shutil.copytree(DEFAULT_MODEL, model)
    train(TrainConfig(**{**one, 'model': str(model)}, output_dir=str(tmp_path/'d')))   # the same files elsewhere: the same key
    assert len(calls) == 6 and before('d') == before('a')
    (model/'sft_log.json').write_text('{}')   # any file of the model's folder besides its weights is part of the key
    train(TrainConfig(**{**one, 'model': str(model)}, output_dir=str(tmp_path/'e')))
    assert len(calls) == 8 and len(list((tmp_path/'cache').glob('*.csv'))) == 3
