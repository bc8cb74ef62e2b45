"The memory plan on the paper-scale parameter files: what they ask for fits the hardware they are written for (no weights, no GPU needed)."
from types import SimpleNamespace
import pytest
from openvlthinker_nb.paths import REPO_ROOT
from openvlthinker_nb.trainer.memory import (GiB, USABLE, MemoryPlanError, check_memory, largest_rollout_batch, param_counts,
                                              plan_config, plan_settings)

def _params(name:str)->SimpleNamespace:
    import yaml
    return SimpleNamespace(**yaml.safe_load((REPO_ROOT/'nbs'/'params'/name).read_text()))

def _lora(p:SimpleNamespace)->dict|None:
    "The file's adapters as the trainer reads them (`lora_settings`; targets and alpha default as in TrainConfig)."
    from openvlthinker_nb.policy.adapters import LORA_TARGETS, lora_settings
    return lora_settings(getattr(p, 'lora_rank', 0), getattr(p, 'lora_alpha', 16.), getattr(p, 'lora_targets', LORA_TARGETS), 0)

@pytest.mark.parametrize('name,world', [('paper_qwen3vl_8b.yaml', 8), ('paper_qwen3vl_8b_lora.yaml', 1)])
def test_paper_scale_files_fit_80gb_gpus(name, world):
    "The 8B file on eight 80 GB GPUs (fsdp) and the LoRA file on one: the plan fits, with room for the rollout batch they set."
    p = _params(name)
    config, s = plan_config(p.model), plan_settings(p, world, _lora(p))
    assert s.parallel == ('fsdp' if world > 1 else 'ddp') and s.gradient_checkpointing and s.dtype == 'bfloat16'
    plan = check_memory(config, s, 80 * GiB, 'an 80 GB GPU')   # raises MemoryPlanError if it does not fit
    print(name, {k: round(v / GiB, 2) if isinstance(v, float | int) else v for k, v in plan.items()})
    assert plan['peak'] <= USABLE * 80 * GiB
    assert s.rollout_batch <= largest_rollout_batch(config, s, 80 * GiB, param_counts(config, s.lora_rank, s.lora_targets))

def test_full_8b_on_one_gpu_is_refused():
    "The full-parameter 8B file in one process: 8 bytes a parameter alone is 65 GiB; the refusal points at LoRA or sharding."
    p = _params('paper_qwen3vl_8b.yaml')
    with pytest.raises(MemoryPlanError) as e: check_memory(plan_config(p.model), plan_settings(p, 1, _lora(p)), 80 * GiB, 'cuda:0')
    assert 'optimizer' in str(e.value) and 'lora_rank=64' in str(e.value), str(e.value)

def test_readme_plan_table_is_the_plan():
    "The table in nbs/index.ipynb's paper-scale section is what `plan_table` gives today (~20 s: three meta-device models)."
    import json
    from openvlthinker_nb.trainer.memory import plan_markdown, plan_table
    text = ''.join(''.join(c['source']) for c in json.loads((REPO_ROOT/'nbs'/'index.ipynb').read_text())['cells'] if c['cell_type'] == 'markdown')
    assert plan_markdown(plan_table()) in text

def _per_core(p:SimpleNamespace, cores:int=32):
    "An XLA SPMD run (one process, `cores` devices, batch rows split over them when they divide evenly) as the plan's per-device settings."
    import math
    from dataclasses import replace
    s = plan_settings(p, cores, _lora(p))
    on_a_core = lambda rows: rows // cores if rows % cores == 0 else rows   # rows that do not divide stay whole on every core
    prompts = lambda rows, per_prompt: math.ceil(on_a_core(rows) / per_prompt)   # as the plan counts them: whole prompts
    return replace(s, micro_batch=on_a_core(p.micro_batch), rollout_batch=prompts(p.rollout_batch * p.n, p.n),
                   eval_batch_size=prompts(p.eval_batch_size * (1 + s.eval_k), 1 + s.eval_k))

def test_trn1_file_fits_a_trn1_32xlarge():
    "nbs/params/trn1_32xlarge.yaml on 32 NeuronCores of 16 GiB: the plan fits; with the paper's 4096 new tokens it does not (the file's header says why)."
    p = _params('trn1_32xlarge.yaml')
    assert p.device == 'xla' and p.parallel == 'fsdp' and p.batch_prompts == 512 and p.n == 8
    config, s = plan_config(p.model), _per_core(p)
    assert (s.micro_batch, s.rollout_batch, s.eval_batch_size) == (1, 1, 1), s   # one response, eight rows, one prompt per core
    plan = check_memory(config, s, 16 * GiB, 'a 16 GiB NeuronCore')   # raises MemoryPlanError if it does not fit
    assert plan['peak'] <= USABLE * 16 * GiB
    from dataclasses import replace
    with pytest.raises(MemoryPlanError) as e: check_memory(config, replace(s, max_new_tokens=4096), 16 * GiB, 'a 16 GiB NeuronCore')
    assert 'max_new_tokens' in str(e.value), str(e.value)
