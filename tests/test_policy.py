"The policy: loading through the Auto classes, errors, rollouts, masks, log-prob agreement and determinism."
import copy, json

import numpy as np
import pytest
import torch
from transformers import AutoModelForImageTextToText, AutoProcessor

from openvlthinker_nb.tasks.vocab import TASK_TYPES

from openvlthinker_nb.tasks.data import load_onethinker
from openvlthinker_nb.tasks.synthetic import default_split
from openvlthinker_nb.policy.device import pick_device
from openvlthinker_nb.policy.load import DEFAULT_MODEL, load_policy, vision_tower
from openvlthinker_nb.policy.core import pad_id, prompt_inputs, shared_prompt_inputs, stop_ids, suppress_ids, takes_encoded_images
from openvlthinker_nb.policy.rollout import response_logprobs, rollout
from openvlthinker_nb.trainer.sft import build_model, build_processor, build_tokenizer


@pytest.fixture(scope='module')
def records():
    ds = load_onethinker(default_split('test'))
    step = len(ds) // 6
    return [ds[i * step + k] for i in range(6) for k in range(1)] + [ds[1], ds[2]]


@pytest.fixture(scope='module')
def policy():
    return load_policy(DEFAULT_MODEL, device='cpu')


@pytest.fixture(scope='module')
def random_policy(tmp_path_factory, records):
    "An untrained tiny Qwen3-VL saved and reloaded like a checkpoint: its responses are long and varied."
    d = tmp_path_factory.mktemp('random-vl')
    texts = [x['text'] for r in records for x in r['messages'][0]['content'] if x['type'] == 'text']
    tok = build_tokenizer(texts * 3, vocab_size=400)
    build_model(tok, seed=1, hidden_size=64, num_layers=1, intermediate_size=128, vision_hidden_size=32).save_pretrained(d)
    build_processor(tok).save_pretrained(d)
    return load_policy(d, device='cpu')


def test_default_model_loads_through_auto_classes(records):
    model = AutoModelForImageTextToText.from_pretrained(DEFAULT_MODEL)
    processor = AutoProcessor.from_pretrained(DEFAULT_MODEL)
    assert type(model).__name__ == 'Qwen3VLForConditionalGeneration'
    assert type(processor).__name__ == 'Qwen3VLProcessor'
    assert (DEFAULT_MODEL/'model.safetensors').stat().st_size <= 25e6
    enc = processor.apply_chat_template(records[0]['messages'], add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors='pt')
    out = model.generate(**enc, max_new_tokens=40, do_sample=False)
    text = processor.decode(out[0, enc['input_ids'].shape[1]:], skip_special_tokens=True)
    assert '<answer>' in text and '</answer>' in text, text


def test_shipped_headroom_table():
    "The shipped model's eval.json: the headroom protocol on all 200 test records per family, and room left for RL."
    ev = json.loads((DEFAULT_MODEL/'eval.json').read_text())
    assert ev['protocol']['k'] == 8 and ev['protocol']['temperature'] == 1.0
    assert ev['summary']['n'] == {t: 200 for t in TASK_TYPES}
    room = ev['headroom']
    assert list(room) == list(TASK_TYPES)
    assert all(r['greedy'] <= 0.85 for r in room.values()), room                   # every family leaves room
    assert sum(r['pass@8 - sampled'] >= 0.20 for r in room.values()) >= 4, room    # samples hold answers RL can promote
    assert ev['summary']['greedy']['mean'] >= 0.2, ev['summary']['greedy']


def test_shipped_headroom_rescored():
    "Rescoring the first 50 test records with the shipped model reproduces its headroom.csv (same protocol, same batch seed)."
    from openvlthinker_nb.eval.heldout import PROTOCOLS, score_records
    import pandas as pd
    saved = pd.read_csv(DEFAULT_MODEL/'headroom.csv').head(50)
    model, proc = load_policy(DEFAULT_MODEL)
    ds = load_onethinker(default_split('test'))
    rows = score_records(model, proc, [ds[i] for i in range(50)], PROTOCOLS['headroom'], progress=False)
    assert list(rows['problem_id']) == list(saved['problem_id'])
    assert (rows['greedy'] == saved['greedy']).mean() >= 0.96
    assert abs(rows['sampled'].mean() - saved['sampled'].mean()) <= 0.05


def test_bad_paths_and_non_vlm(tmp_path):
    with pytest.raises(FileNotFoundError, match='does not exist'): load_policy(tmp_path/'missing')
    with pytest.raises(FileNotFoundError, match='does not exist'): load_policy('./no/such/folder')
    with pytest.raises(FileNotFoundError, match='has no config.json'): load_policy(tmp_path)
    (tmp_path/'weights.bin').write_bytes(b'')
    with pytest.raises(NotADirectoryError, match='is a file'): load_policy(tmp_path/'weights.bin')
    (tmp_path/'config.json').write_text(json.dumps({'model_type': 'qwen3', 'vocab_size': 32, 'hidden_size': 16, 'num_hidden_layers': 1,
                                                   'num_attention_heads': 2, 'num_key_value_heads': 1, 'intermediate_size': 32}))
    with pytest.raises(ValueError, match="'qwen3' model, not a vision-language model"): load_policy(tmp_path)
    (tmp_path/'config.json').write_text('{"hidden_size": 3}')
    with pytest.raises(ValueError, match='cannot read the config'): load_policy(tmp_path)
    with pytest.raises(ValueError, match="unknown dtype"): load_policy(DEFAULT_MODEL, dtype='int8')


def test_pick_device():
    assert pick_device('cpu') == torch.device('cpu')
    with pytest.raises(ValueError, match='unknown device'): pick_device('gpu')
    if not torch.cuda.is_available():
        assert pick_device('auto') == torch.device('cpu')
        with pytest.raises(RuntimeError, match='cuda'): pick_device('cuda')


def test_load_options():
    model, _ = load_policy(DEFAULT_MODEL, dtype='bfloat16', device='cpu', freeze_vision=True, gradient_checkpointing=True)
    assert next(model.parameters()).dtype == torch.bfloat16
    assert not any(p.requires_grad for p in vision_tower(model).parameters())
    assert all(p.requires_grad for p in model.model.language_model.parameters())
    assert model.is_activation_checkpointing


def test_rollout_shapes_and_masks(random_policy, records):
    model, processor = random_policy
    P, n, cap = 3, 4, 24
    ro = rollout(model, processor, records[:P], n=n, max_new_tokens=cap, seed=0)
    N, T = ro.response_ids.shape
    assert N == P * n and T <= cap and len(ro.texts) == N and len(ro) == N
    assert ro.prompt_idx.tolist() == [p for p in range(P) for _ in range(n)]
    for t in (ro.response_mask, ro.logprobs): assert t.shape == (N, T)
    assert ro.prompt_ids.shape == ro.prompt_mask.shape == ro.mm_token_type_ids.shape and ro.prompt_ids.shape[0] == P
    assert ro.image_grid_thw.shape == (P, 3) and ro.images_per_prompt.tolist() == [1] * P
    assert (ro.n_tokens == ro.response_mask.sum(1)).all() and (ro.n_tokens >= 1).all()
    # left padding: padding is at the start of prompts, and every prompt ends with the opened assistant turn
    lens = ro.prompt_mask.sum(1)
    for p in range(P):
        assert ro.prompt_mask[p, -lens[p]:].all() and not ro.prompt_mask[p, :-lens[p]].any()
    tail = processor.tokenizer('<|im_start|>assistant\n', add_special_tokens=False)['input_ids']
    assert (ro.prompt_ids[:, -len(tail):] == torch.tensor(tail)).all()
    # response mask: a prefix ending at the first stop token (or the cap); padding after it is the pad token
    stops = torch.tensor(stop_ids(model, processor))
    for ids, m, k in zip(ro.response_ids, ro.response_mask, ro.n_tokens):
        assert m[:k].all() and not m[k:].any()
        assert not torch.isin(ids[:k - 1], stops).any()
        assert torch.isin(ids[k - 1], stops) or k == T
        assert (ids[k:] == pad_id(model, processor)).all()
    assert (ro.logprobs[ro.response_mask == 0] == 0).all() and (ro.logprobs[ro.response_mask == 1] < 0).all()
    # prompt tokens never appear in the response: no image pads, no chat markers in the decoded texts
    assert not torch.isin(ro.response_ids, torch.tensor(suppress_ids(processor))).any()   # no vision placeholders
    assert all('<|im_start|>' not in t for t in ro.texts)


def test_prompt_inputs_regathers_images(random_policy, records):
    model, processor = random_policy
    ro = rollout(model, processor, records[:3], n=2, max_new_tokens=4, seed=0)
    inp = prompt_inputs(ro, torch.tensor([2, 0, 2]))
    per = ro.pixel_values.shape[0] // 3
    assert torch.equal(inp['pixel_values'], torch.cat([ro.pixel_values[2*per:], ro.pixel_values[:per], ro.pixel_values[2*per:]]))
    assert torch.equal(inp['input_ids'], ro.prompt_ids[[2, 0, 2]])


def test_shared_images_equal_per_row_pixels(random_policy, records):
    "Each distinct prompt's images encoded once: the logits and vision gradients of per-row pixels, in any row order."
    model, processor = random_policy
    assert takes_encoded_images(model)
    ro = rollout(model, processor, records[:3], n=2, max_new_tokens=4, seed=0)
    pidx = torch.tensor([2, 0, 2, 1, 0])
    shared = shared_prompt_inputs(model, ro, pidx)
    assert 'pixel_values' not in shared and len(shared['mm_encoder_outputs']['image'].pooler_output) == 5
    assert torch.equal(shared['image_grid_thw'], prompt_inputs(ro, pidx)['image_grid_thw'])
    weights = torch.linspace(-1, 1, model.config.text_config.vocab_size)
    outs, grads = [], []
    for inp in (prompt_inputs(ro, pidx), shared):
        model.zero_grad()
        logits = model(**inp, use_cache=False).logits
        (logits * weights).sum().backward()
        outs.append(logits.detach())
        grads.append(torch.cat([p.grad.flatten() for p in vision_tower(model).parameters() if p.grad is not None]))
    model.zero_grad()
    assert torch.allclose(outs[1], outs[0], atol=1e-4), (outs[1] - outs[0]).abs().max()
    assert grads[0].abs().max() > 0 and torch.allclose(grads[1], grads[0], atol=1e-5 * float(grads[0].abs().max()))


@pytest.mark.parametrize('which', ['random_policy', 'policy'])
def test_logprob_agreement_sampling_vs_recompute(which, request, records):
    "Same weights, temperature 1: the log-probs recorded while sampling equal a full forward pass's."
    model, processor = request.getfixturevalue(which)
    ro = rollout(model, processor, records[:5], n=4, temperature=1.0, max_new_tokens=32, seed=3)
    logp, ent = response_logprobs(model, ro, micro_batch=7)
    m = ro.response_mask.bool()
    assert logp.requires_grad and ent.requires_grad
    assert torch.allclose(logp[m], ro.logprobs[m], atol=1e-3), (logp[m] - ro.logprobs[m]).abs().max()
    assert (logp[~m] == 0).all() and (ent[~m] == 0).all() and (ent[m] >= 0).all()
    # the 'forward' source and a different micro-batch size agree too
    ro_f = rollout(model, processor, records[:5], n=4, temperature=1.0, max_new_tokens=32, seed=3, logprobs='forward')
    assert torch.equal(ro_f.response_ids, ro.response_ids)
    assert torch.allclose(ro_f.logprobs, ro.logprobs, atol=1e-3)
    with torch.no_grad(): assert torch.allclose(response_logprobs(model, ro, micro_batch=20)[0], logp.detach(), atol=1e-4)


def test_logprobs_at_other_temperature(random_policy, records):
    model, processor = random_policy
    ro = rollout(model, processor, records[:2], n=3, temperature=0.7, max_new_tokens=16, seed=0)
    with torch.no_grad(): logp, _ = response_logprobs(model, ro)
    m = ro.response_mask.bool()
    assert torch.allclose(logp[m], ro.logprobs[m], atol=1e-3)


def test_recompute_ignores_padding_and_has_gradients(random_policy, records):
    model, processor = random_policy
    ro = rollout(model, processor, records[:2], n=3, max_new_tokens=24, seed=1)
    if ro.response_mask.all(): ro.response_mask[:, -3:] = 0   # force some padding
    with torch.no_grad(): ref = response_logprobs(model, ro)[0]
    ro2 = copy.copy(ro); ro2.response_ids = ro.response_ids.clone()
    ro2.response_ids[ro.response_mask == 0] = 11
    with torch.no_grad(): assert torch.allclose(response_logprobs(model, ro2)[0], ref, atol=1e-5)
    model.zero_grad()
    logp, ent = response_logprobs(model, ro, micro_batch=2)
    (logp.sum() + ent.sum()).backward()
    assert model.lm_head.weight.grad.abs().sum() > 0
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in vision_tower(model).parameters())
    model.zero_grad()


def test_determinism_for_a_seed(random_policy, records):
    model, processor = random_policy
    state = torch.random.get_rng_state()
    a = rollout(model, processor, records[:3], n=4, max_new_tokens=20, seed=7)
    b = rollout(model, processor, records[:3], n=4, max_new_tokens=20, seed=7)
    c = rollout(model, processor, records[:3], n=4, max_new_tokens=20, seed=8)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert torch.equal(a.response_ids, b.response_ids) and a.texts == b.texts and torch.equal(a.logprobs, b.logprobs)
    assert a.texts != c.texts


def test_greedy_and_top_p(policy, records):
    model, processor = policy
    g1 = rollout(model, processor, records[:4], n=2, temperature=0.0, max_new_tokens=48)
    assert g1.texts[0::2] == g1.texts[1::2]          # greedy: the n copies agree
    g2 = rollout(model, processor, records[:4], n=1, temperature=0.0, max_new_tokens=48, seed=5)
    assert g1.texts[0::2] == g2.texts
    ro = rollout(model, processor, records[:2], n=4, temperature=1.0, top_p=0.5, max_new_tokens=48, seed=0)
    assert (ro.logprobs[ro.response_mask == 1] <= 0).all()


def test_bad_rollout_arguments(policy, records):
    model, processor = policy
    with pytest.raises(ValueError, match='unknown logprobs source'): rollout(model, processor, records[:1], logprobs='x')
    with pytest.raises(ValueError, match='n and max_new_tokens'): rollout(model, processor, records[:1], n=0)
    with pytest.raises(ValueError, match='top_p'): rollout(model, processor, records[:1], top_p=0)
    with pytest.raises(KeyError, match="has no 'messages'"): rollout(model, processor, [{'problem_id': 1}])


def test_qwen2_5_vl_loads_rolls_out_and_recomputes(tmp_path, records):
    "A tiny Qwen2.5-VL (its own config, processor and 14 px patches) goes through the same loading, rollout and log-prob path."
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLProcessor, Qwen2VLImageProcessor, Qwen2VLVideoProcessor
    from openvlthinker_nb.trainer.sft import CHAT_TEMPLATE
    texts = [x['text'] for r in records for x in r['messages'][0]['content'] if x['type'] == 'text']
    tok = build_tokenizer(texts * 3, vocab_size=400)
    ids = tok.convert_tokens_to_ids
    geometry = dict(patch_size=14, merge_size=2, temporal_patch_size=2)
    proc = Qwen2_5_VLProcessor(image_processor=Qwen2VLImageProcessor(**geometry, size={'shortest_edge': 28*28, 'longest_edge': 112*112}),
                               video_processor=Qwen2VLVideoProcessor(**geometry), tokenizer=tok, chat_template=CHAT_TEMPLATE)
    cfg = Qwen2_5_VLConfig(text_config=dict(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=1, num_attention_heads=4,
                                            num_key_value_heads=2, max_position_embeddings=2048, pad_token_id=tok.pad_token_id,
                                            eos_token_id=tok.eos_token_id, rope_scaling={'type': 'mrope', 'mrope_section': [2, 3, 3]}),
                           vision_config=dict(depth=1, hidden_size=32, intermediate_size=64, num_heads=2, patch_size=14, spatial_merge_size=2,
                                              temporal_patch_size=2, out_hidden_size=64, window_size=56, fullatt_block_indexes=[0]),
                           image_token_id=ids('<|image_pad|>'), video_token_id=ids('<|video_pad|>'),
                           vision_start_token_id=ids('<|vision_start|>'), vision_end_token_id=ids('<|vision_end|>'))
    torch.manual_seed(0)
    Qwen2_5_VLForConditionalGeneration(cfg).save_pretrained(tmp_path); proc.save_pretrained(tmp_path)
    model, processor = load_policy(tmp_path, device='cpu', freeze_vision=True)
    assert type(model).__name__ == 'Qwen2_5_VLForConditionalGeneration'
    assert not any(p.requires_grad for p in vision_tower(model).parameters())
    ro = rollout(model, processor, records[:2], n=2, max_new_tokens=8, seed=0)
    assert ro.response_ids.shape == ro.response_mask.shape == ro.logprobs.shape and ro.response_ids.shape[0] == 4
    assert len(ro.texts) == 4 and bool((ro.response_mask.sum(1) >= 1).all())
    lp, _ = response_logprobs(model, ro, micro_batch=2)
    m = ro.response_mask.bool()
    assert takes_encoded_images(model)   # Qwen2.5-VL's images are shared too, and give the per-row logits
    pidx = torch.tensor([1, 0, 1])
    with torch.no_grad():
        torch.testing.assert_close(model(**shared_prompt_inputs(model, ro, pidx)).logits, model(**prompt_inputs(ro, pidx)).logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(lp[m], ro.logprobs[m], atol=1e-4, rtol=1e-4)
