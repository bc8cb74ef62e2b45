"The memory plan on the paper-scale parameter files: what they ask for fits the hardware they are written for (no weights, no GPU needed)."
from types import SimpleNamespace
import pytest
from openvlthinker_nb.paths import REPO_ROOT
from openvlthinker_nb.trainer.memory import (GiB, USABLE, MemoryPlanError, check_memory, largest_rollout_batch, param_counts,
                                              plan_config, plan_settings)

def _params(name:str)->SimpleNamespace:
    import yaml
    return SimpleNamespace(**yaml.safe_load((REPO_ROOT/'nbs'/'params'/name).read_text()))

@pytest.mark.parametrize('name,world', [('paper_qwen3vl_8b.yaml', 8), ('paper_qwen3vl_8b_lora.yaml', 1)])
def test_paper_scale_files_fit_80gb_gpus(name, world):
    "The 8B file on eight 80 GB GPUs (fsdp) and the LoRA file on one: the plan fits, with room for the rollout batch they set."
    p = _params(name)
    config, s = plan_config(p.model), plan_settings(p, world)
    assert s.parallel == ('fsdp' if world > 1 else 'ddp') and s.gradient_checkpointing and s.dtype == 'bfloat16'
    plan = check_memory(config, s, 80 * GiB, 'an 80 GB GPU')   # raises MemoryPlanError if it does not fit
    print(name, {k: round(v / GiB, 2) if isinstance(v, float | int) else v for k, v in plan.items()})
    assert plan['peak'] <= USABLE * 80 * GiB
    assert s.rollout_batch <= largest_rollout_batch(config, s, 80 * GiB, param_counts(config, s.lora_rank, s.lora_targets))

def test_full_8b_on_one_gpu_is_refused():
    "The full-parameter 8B file in one process: 8 bytes a parameter alone is 65 GiB; the refusal points at LoRA or sharding."
    p = _params('paper_qwen3vl_8b.yaml')
    with pytest.raises(MemoryPlanError) as e: check_memory(plan_config(p.model), plan_settings(p, 1), 80 * GiB, 'cuda:0')
    assert 'optimizer' in str(e.value) and 'lora_rank=64' in str(e.value), str(e.value)

def test_readme_plan_table_is_the_plan():
    "The table in nbs/index.ipynb's paper-scale section is what `plan_table` gives today (~20 s: three meta-device models)."
    import json
    from openvlthinker_nb.trainer.memory import plan_markdown, plan_table
    text = ''.join(''.join(c['source']) for c in json.loads((REPO_ROOT/'nbs'/'index.ipynb').read_text())['cells'] if c['cell_type'] == 'markdown')
    assert plan_markdown(plan_table()) in text
