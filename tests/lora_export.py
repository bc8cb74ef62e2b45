"A check shared by the LoRA tests of test_train.py (one process) and test_parallel.py (two): what a LoRA run's final/ holds."
import torch

def assert_lora_export(final, # the run's final/ folder
                       digest:str, # the trainer's `param_digest` of its policy at the end
                      ):
    "final/adapter reloads as the trainer's policy, final/ is a plain merged model with the same log-probs, and the adapters moved the policy."
    from peft import PeftModel
    from openvlthinker_nb.policy.load import DEFAULT_MODEL, load_policy
    from openvlthinker_nb.policy.rollout import rollout, response_logprobs
    from openvlthinker_nb.tasks.data import load_onethinker
    from openvlthinker_nb.tasks.synthetic import default_split
    from openvlthinker_nb.trainer.loop import param_digest
    trained = PeftModel.from_pretrained(load_policy(DEFAULT_MODEL)[0], final/'adapter')
    assert param_digest(trained) == digest                       # the saved adapter is the trainer's policy
    merged, proc = load_policy(final)                            # AutoModelForImageTextToText, base parameter names
    assert not any('lora' in n or 'base_layer' in n for n, _ in merged.named_parameters())
    ds = load_onethinker(default_split('test'))
    ro = rollout(merged, proc, [ds[i] for i in range(4)], n=2, max_new_tokens=8, seed=0)
    with torch.no_grad():
        lp_m = response_logprobs(merged, ro, with_entropy=False)[0]
        lp_t = response_logprobs(trained, ro, with_entropy=False)[0]
        with trained.disable_adapter(): lp_0 = response_logprobs(trained, ro, with_entropy=False)[0]
    assert (lp_m - lp_t).abs().max() < 1e-4, (lp_m - lp_t).abs().max()
    assert (lp_t - lp_0).abs().max() > 1e-3                       # the adapters moved the policy
