"""Benchmark (prints figures, asserts nothing): one RL step of ours beside one of TRL's `GRPOTrainer`, same model, prompts and sizes.

    pip install -e ".[bench]"      # TRL is an optional extra: nothing else in the repo needs it
    python tests/bench_trl.py [--prompts 16] [--n 8] [--max-new-tokens 48] [--steps 3] [--warmup 1] [--threads 2] [--no-filter-row]

Both trainers get the default model (data/tiny-qwen3-vl through the Auto classes, float32, CPU), the same prompts of the
synthetic suite's rl split, with their images, in the same order (TRL's dataset is the sequence our sampler draws,
unshuffled), the same group size, response cap, temperature, reward (`rewards.score_batch`'s overall reward, format
weight of the main job), optimizer (AdamW, lr, betas, weight decay, clip 1.0) and micro-batch size, in one process with
the same torch threads. Each does one generation and one optimizer step per RL step: TRL with num_iterations=1 and
steps_per_generation = gradient_accumulation_steps (so it computes no separate old log-probs), ours with
updates_per_step=1 and ppo_epochs=1. The steps alternate (TRL, ours, TRL, ours, ...) so both see the same machine load;
the first `--warmup` steps of each are not timed. Ours runs the main job's configuration with the online filter off
(every group trained on, as TRL does); a third row (off with --no-filter-row) is the main job exactly as it runs, online
filter on, where responses/s counts every response drawn, including those of dropped groups.

Where the time goes: ours from `rl_step`'s own timers; TRL from its own profiling timers (`trl.extras.profiling`,
captured instead of sent to a tracker), plus wall-clock around `training_step` and the optimizer step callbacks.
"""
import argparse, contextlib, json, statistics, sys, tempfile, time, warnings
from pathlib import Path

import torch

from openvlthinker_nb.trainer.config import TrainConfig

from openvlthinker_nb.trainer.loop import setup, rl_step
from openvlthinker_nb.tasks.data import FamilySampler
from openvlthinker_nb.tasks.vocab import TASK_TYPES
from openvlthinker_nb.tasks.rewards import score_batch
from openvlthinker_nb.policy.load import DEFAULT_MODEL
from openvlthinker_nb.policy.core import suppress_ids

TRL_VERSION = '1.16.0'   # the version settings.ini's `bench` extra pins; checked with transformers 5.x here
PHASES = ('generate', 'score', 'forward', 'loss_backward_step', 'other')
PHASE_NAMES = {'generate': 'generation', 'score': 'scoring', 'forward': 'log-prob forward',
               'loss_backward_step': 'loss + backward + optimizer', 'other': 'other'}


def require_trl():
    "Import trl, or fail with the command that installs it."
    try:
        import trl
    except ImportError as e:
        raise SystemExit(f'bench_trl needs TRL, an optional extra: pip install -e ".[bench]"  ({e})') from None
    if trl.__version__ != TRL_VERSION:
        warnings.warn(f"bench_trl was written against trl=={TRL_VERSION}; found {trl.__version__}")
    return trl


def micro_batch_for(total:int, cap:int)->int:
    "The largest divisor of `total` (responses per step) not above `cap` (TRL needs an exact split)."
    return max(d for d in range(1, min(total, cap) + 1) if total % d == 0)


def our_config(a, tmp:str, filter_on:bool, micro:int)->TrainConfig:
    "The main job's TrainConfig at the benchmark's sizes (CPU; no evaluation is run)."
    return TrainConfig.from_dict({'device': 'cpu', 'batch_prompts': a.prompts, 'n': a.n, 'max_new_tokens': a.max_new_tokens,
                                  'online_filter': filter_on, 'micro_batch': micro, 'num_threads': a.threads, 'rollout_engine': a.engine,
                                  'output_dir': tmp, 'progress': False, 'max_steps': a.warmup + a.steps})


def trl_prompt(record:dict)->tuple:
    "(prompt with `{'type': 'image'}` placeholders, its images) in TRL's conversational multimodal format."
    msgs, images = [], []
    for m in record['messages']:
        if isinstance(m['content'], str): msgs.append(dict(m)); continue
        content = []
        for part in m['content']:
            if part.get('type') == 'image': images.append(part['image']); content.append({'type': 'image'})
            else: content.append(dict(part))
        msgs.append({'role': m['role'], 'content': content})
    return msgs, images


def trl_dataset(run, n_prompts:int):
    "The first `n_prompts` prompts our sampler draws (a fresh sampler with the run's seed), as a TRL dataset in that order; and that sampler."
    from datasets import Dataset
    sampler = FamilySampler([TASK_TYPES.index(r['task_type']) for r in run.train_ds.records], run.cfg.seed)
    idx = sampler.draw(n_prompts)
    rows = []
    for i in idx:
        prompt, images = trl_prompt(run.train_ds[i])
        rows.append({'prompt': prompt, 'images': images, 'record': i})
    return Dataset.from_list(rows), sampler


def trl_reward(run):
    "TRL reward function: our overall reward of each completion against its record."
    cache = {}
    def overall(completions, record, **kw):
        texts = [c[-1]['content'] if isinstance(c, list) else c for c in completions]
        recs = [cache.setdefault(i, run.train_ds[i]) for i in record]
        return score_batch(texts, recs, format_weight=run.cfg.format_weight)['overall'].tolist()
    return overall


@contextlib.contextmanager
def trl_timers():
    "Collect TRL's own profiling timers (normally sent to wandb/mlflow/trackio) as (name, seconds) pairs."
    from trl.extras import profiling
    got, orig = [], profiling.ProfilingContext._log_metrics
    profiling.ProfilingContext._log_metrics = lambda self, duration: got.append((self.name.split('.', 1)[1], duration))
    try: yield got
    finally: profiling.ProfilingContext._log_metrics = orig


def build_trl(run, a, tmp:str, micro:int, callbacks:list):
    "TRL's GRPOTrainer on a fresh copy of the same model, with settings matched to `run.cfg` (see the module docstring)."
    from transformers import AutoModelForImageTextToText, AutoProcessor
    from trl import GRPOConfig, GRPOTrainer
    cfg = run.cfg
    src = str(DEFAULT_MODEL)
    model = AutoModelForImageTextToText.from_pretrained(src, dtype=torch.float32)
    processor = AutoProcessor.from_pretrained(src)
    processor.tokenizer.padding_side = 'left'
    total = a.prompts * a.n
    ds, sampler = trl_dataset(run, a.prompts * (a.warmup + a.steps))
    args = GRPOConfig(
        output_dir=tmp, use_cpu=True, bf16=False, fp16=False, gradient_checkpointing=False, seed=cfg.seed,
        max_steps=a.warmup + a.steps, per_device_train_batch_size=micro, gradient_accumulation_steps=total // micro,
        steps_per_generation=total // micro, num_iterations=1, num_generations=a.n, shuffle_dataset=False,
        max_completion_length=a.max_new_tokens, temperature=cfg.temperature, top_p=cfg.top_p, top_k=0,
        generation_kwargs={'suppress_tokens': list(suppress_ids(processor))},
        beta=cfg.kl_coef, epsilon=cfg.eps_low, epsilon_high=cfg.eps_high, loss_type='dapo', scale_rewards='group',
        learning_rate=cfg.lr, weight_decay=cfg.weight_decay, adam_beta1=cfg.adam_beta1, adam_beta2=cfg.adam_beta2,
        max_grad_norm=cfg.max_grad_norm, lr_scheduler_type='constant', warmup_steps=0, optim='adamw_torch',
        logging_strategy='no', save_strategy='no', eval_strategy='no', report_to='none', disable_tqdm=True,
        log_completions=False, remove_unused_columns=False, dataloader_num_workers=0)
    tr = GRPOTrainer(model=model, processing_class=processor, reward_funcs=[trl_reward(run)], args=args, train_dataset=ds,
                     callbacks=callbacks)
    return tr, sampler


class Alternate:
    "A TrainerCallback body: times each TRL step (between step ends, so the data loading counts) and runs our steps between them."
    def __init__(self, runs:dict, total:int):
        self.runs, self.total = runs, total
        self.trl = []                     # per TRL step: dict of seconds
        self.ours = {k: [] for k in runs}  # per run: metrics lines
        self.acc = {'training_step': 0.0, 'optimizer': 0.0}
        self.timers = self.trainer = None

    def on_train_begin(self, args, state, control, **kw): self.mark = time.perf_counter(); self.n_timers = 0
    def on_pre_optimizer_step(self, args, state, control, **kw): self.t_opt = time.perf_counter()
    def on_optimizer_step(self, args, state, control, **kw): self.acc['optimizer'] += time.perf_counter() - self.t_opt

    def on_step_end(self, args, state, control, **kw):
        now = time.perf_counter()
        prof = {}
        for name, sec in self.timers[self.n_timers:]: prof[name] = prof.get(name, 0.0) + sec
        self.n_timers = len(self.timers)
        mean_len = self.trainer._metrics['train']['completions/mean_length'][-1]   # TRL's own record of this step's generation
        self.trl.append({'seconds': now - self.mark, **self.acc, **prof, 'mean_length': mean_len, 'threads': torch.get_num_threads()})
        self.acc = {'training_step': 0.0, 'optimizer': 0.0}
        for k, run in self.runs.items():
            if len(self.ours[k]) < self.total: self.ours[k].append(rl_step(run))
        self.mark = time.perf_counter()


def trl_split(s:dict)->dict:
    "A TRL step's seconds in the common phases."
    gen = s.get('transformers.generate', 0.0) + s.get('transformers.generate_batch', 0.0)
    fwd = s.get('_get_per_token_logps_and_entropies', 0.0)
    backward = s['training_step'] - s.get('_prepare_inputs', 0.0) - s.get('compute_loss', 0.0)
    out = {'generate': gen, 'score': s.get('_calculate_rewards', 0.0), 'forward': fwd,
           'loss_backward_step': s.get('compute_loss', 0.0) - fwd + backward + s['optimizer']}
    out['other'] = s['seconds'] - sum(out.values())
    return out


def our_split(m:dict)->dict:
    "One of our steps' seconds in the common phases."
    out = {'generate': m['time/generate'], 'score': m['time/score'], 'forward': m['time/logprobs'], 'loss_backward_step': m['time/update']}
    out['other'] = m['seconds'] - sum(out.values())
    return out


def summarize(name:str, steps:list, n_resp:list, n_tok:list)->dict:
    "Totals over the timed steps: responses/s (all steps; and the median step's, robust to a busy neighbour), tokens/s, mean length, phase shares."
    sec = sum(s['seconds'] for s in steps)
    ph = {p: sum(s[p] for s in steps) for p in PHASES}
    return {'trainer': name, 'steps': len(steps), 'responses': sum(n_resp), 'seconds': sec,
            'responses_per_s': sum(n_resp) / sec, 'responses_per_s_median_step': statistics.median(r / s['seconds'] for r, s in zip(n_resp, steps)), 'tokens_per_s': sum(n_tok) / sec, 'mean_tokens': sum(n_tok) / max(sum(n_resp), 1),
            **{f'share_{p}': ph[p] / sec for p in PHASES}}


def markdown(rows:list, ref:str)->str:
    "The comparison as a markdown table (ratio against the row named `ref`)."
    base = next(r for r in rows if r['trainer'] == ref)
    head = ('| trainer | responses/s | vs TRL | median step: responses/s | vs TRL | tokens/s | mean length | '
            + ' | '.join(PHASE_NAMES[p] for p in PHASES) + ' |')
    lines = [head, '|' + '---|' * (7 + len(PHASES))]
    for r in rows:
        lines.append(f"| {r['trainer']} | {r['responses_per_s']:.1f} | {r['responses_per_s'] / base['responses_per_s']:.2f}x | "
                     f"{r['responses_per_s_median_step']:.1f} | {r['responses_per_s_median_step'] / base['responses_per_s_median_step']:.2f}x | {r['tokens_per_s']:.0f} | "
                     f"{r['mean_tokens']:.1f} | " + ' | '.join(f"{100 * r[f'share_{p}']:.0f}%" for p in PHASES) + ' |')
    return '\n'.join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--prompts', type=int, default=16, help='prompts per step (the main job: 16)')
    ap.add_argument('--n', type=int, default=8, help='responses per prompt (the main job: 8)')
    ap.add_argument('--max-new-tokens', type=int, default=48, help='response cap (the main job: 48)')
    ap.add_argument('--steps', type=int, default=3, help='timed steps of each trainer')
    ap.add_argument('--warmup', type=int, default=1, help='untimed steps of each trainer first')
    ap.add_argument('--threads', type=int, default=2, help='torch CPU threads for both (the main job: 2)')
    ap.add_argument('--engine', default='auto', help="our rollout engine (TrainConfig.rollout_engine): 'auto' (hf on CPU) or 'shared'")
    ap.add_argument('--no-filter-row', action='store_true', help='skip the row of the main job with its online filter on')
    ap.add_argument('--out', default=None, help='also write the table (markdown, with its setting) to this file, e.g. figures/tables/throughput_trl.md')
    a = ap.parse_args(argv)
    require_trl()
    from transformers import TrainerCallback
    from transformers.utils import logging as hf_logging
    hf_logging.set_verbosity_error()
    with tempfile.TemporaryDirectory() as tmp:
        micro = micro_batch_for(a.prompts * a.n, TrainConfig.micro_batch)
        runs = {'ours': setup(our_config(a, f'{tmp}/ours', False, micro))}
        if not a.no_filter_row: runs['ours, online filter on (main job as run)'] = setup(our_config(a, f'{tmp}/ours_f', True, micro))
        alt = Alternate(runs, a.warmup + a.steps)
        cb = type('AlternateCallback', (TrainerCallback,), {k: getattr(alt, k) for k in
                  ('on_train_begin', 'on_pre_optimizer_step', 'on_optimizer_step', 'on_step_end')})()
        tr, sampler = build_trl(runs['ours'], a, f'{tmp}/trl', micro, [cb])
        alt.trainer = tr
        step_fn = tr.training_step
        def timed_step(*args, **kw):
            t = time.perf_counter(); out = step_fn(*args, **kw); alt.acc['training_step'] += time.perf_counter() - t; return out
        tr.training_step = timed_step
        with trl_timers() as timers:
            alt.timers = timers
            tr.train()
    # the same prompts: our run's sampler drew exactly the sequence TRL's dataset holds (it ends where the fresh one did)
    same = runs['ours'].sampler.state_dict() == sampler.state_dict()
    if not same: raise RuntimeError("bench_trl: our run drew other prompts than TRL's dataset holds")
    print(f"torch {torch.__version__}, threads {sorted({s['threads'] for s in alt.trl})} during TRL steps, "
          f"{torch.get_num_threads()} at the end; {a.prompts} prompts x {a.n} responses, max_new_tokens {a.max_new_tokens}, "
          f"micro-batch {micro} for both, {a.warmup} warm-up + {a.steps} timed steps each, interleaved; "
          f"same prompts in the same order: {same}")
    W = a.warmup
    trl_steps = [{**trl_split(s), 'seconds': s['seconds']} for s in alt.trl[W:]]
    per = a.prompts * a.n
    rows = [summarize('TRL GRPOTrainer', trl_steps, [per] * len(trl_steps), [s['mean_length'] * per for s in alt.trl[W:]])]
    for k, ms in alt.ours.items():
        rows.append(summarize(k, [{**our_split(m), 'seconds': m['seconds']} for m in ms[W:]],
                              [m['filter/prompts_drawn'] * a.n for m in ms[W:]], [m['length/mean'] * m['filter/prompts_drawn'] * a.n for m in ms[W:]]))
    for i, s in enumerate(alt.trl):
        print(f"TRL step {i}{' (warm-up)' if i < W else ''}: {s['seconds']:.2f}s; " + ', '.join(f"{k} {v:.2f}" for k, v in s.items() if k not in ('seconds', 'threads', 'mean_length')))
    for k, ms in alt.ours.items():
        for i, m in enumerate(ms):
            print(f"{k} step {i}{' (warm-up)' if i < W else ''}: {m['seconds']:.2f}s; " + ', '.join(f"{p} {v:.2f}" for p, v in our_split(m).items()))
    print()
    print(markdown(rows, 'TRL GRPOTrainer'))
    if a.out:
        import trl
        title = (f"**Throughput beside TRL {trl.__version__}** (`python tests/bench_trl.py{'' if a.engine == 'auto' else ' --engine ' + a.engine}`: ours on the `{'hf' if a.engine == 'auto' else a.engine}` rollout engine, {a.prompts} prompts x {a.n} responses, "
                 f"max {a.max_new_tokens} new tokens, same model, prompts, reward, optimizer and micro-batch ({micro}), float32 on "
                 f"{a.threads} CPU threads, steps interleaved, {a.warmup} warm-up + {a.steps} timed steps; {time.strftime('%Y-%m-%d')}).")
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(title + '\n\n' + markdown(rows, 'TRL GRPOTrainer') + '\n')
    print(json.dumps({'config': vars(a), 'micro_batch': micro, 'rows': rows}))


if __name__ == '__main__': main()
