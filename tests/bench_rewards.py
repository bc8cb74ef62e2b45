"""Throughput of `rewards.score_batch` on the B x G responses of a training step (prints responses/s).

    python tests/bench_rewards.py                     # B=64 prompts x G=8 responses, every task family
    python tests/bench_rewards.py --prompts 128 --group 16 --repeats 5

Three batches are timed: (1) every response distinct, (2) half of each group repeating an earlier response of
the same group (what a converging policy produces), (3) math only, with LaTeX answers that go to math-verify
(the worst case; answers are new each repeat so the verifier's cache does not help). Records and responses are
made up here in the OneThinker format; nothing is read from disk.
"""
import argparse, random, time
from openvlthinker_nb.tasks.mathverify import MATH_VERIFIER
from openvlthinker_nb.tasks.rewards import score_batch

WORDS = 'the red blue green circle square triangle is at left right top bottom of above below bar value reads so'.split()

def make_record(family:str, i:int, rng:random.Random)->dict:
    "A made-up OneThinker-style record of one task family with its correct answer."
    base = {'problem_id': i, 'problem': '<image> question', 'data_type': 'image', 'images': ['x.png'], 'data_source': 'bench'}
    if family == 'spatial_grounding':
        x, y = rng.randint(0, 600), rng.randint(0, 600)
        ans = f'{{"boxes": [{x}, {y}, {x + rng.randint(50, 400)}, {y + rng.randint(50, 400)}]}}'
        return {**base, 'problem_type': 'spatial grounding', 'task_type': family, 'options': [], 'answer': f'<answer>{ans}</answer>'}
    if family in ('spatial_reasoning', 'general_vqa_science_stem'):
        return {**base, 'problem_type': 'multiple choice', 'task_type': family, 'options': ['A. red', 'B. blue', 'C. green', 'D. yellow'],
                'answer': f'<answer>{rng.choice("ABCD")}</answer>'}
    if family == 'math_reasoning':
        return {**base, 'problem_type': 'math', 'task_type': family, 'options': [], 'answer': f'<answer>{rng.randint(0, 99)}</answer>'}
    if family == 'chart_figure_qa':
        return {**base, 'problem_type': 'numerical', 'task_type': family, 'options': [], 'answer': f'<answer>{rng.randint(0, 50)}</answer>'}
    return {**base, 'problem_type': 'OCR', 'task_type': 'ocr', 'options': [], 'answer': f'<answer>{" ".join(rng.sample(WORDS, 3))}</answer>'}

FAMILIES = ('spatial_grounding', 'spatial_reasoning', 'general_vqa_science_stem', 'math_reasoning', 'chart_figure_qa', 'ocr')

def make_response(record:dict, rng:random.Random, latex:bool=False)->str:
    "A plausible response: mostly well formed, right or slightly wrong, sometimes broken."
    truth = record['answer'][len('<answer>'):-len('</answer>')]
    thinking = ' '.join(rng.choice(WORDS) for _ in range(rng.randint(3, 40)))
    u = rng.random()
    if latex: ans = rf'\frac{{{rng.randint(1, 10**6)}}}{{{rng.randint(1, 99)}}}'
    elif u < 0.5: ans = truth
    elif record['problem_type'] == 'spatial grounding': ans = truth.replace('[', f'[{rng.randint(1, 9)}', 1)
    elif record['problem_type'] == 'OCR': ans = ' '.join(rng.sample(WORDS, 3))
    elif record['problem_type'] == 'multiple choice': ans = rng.choice(['A', 'B', 'C', 'D', '(b)', 'The answer is C'])
    else: ans = str(rng.randint(0, 99))
    if rng.random() < 0.1: return f'{thinking} <answer>{ans}'        # broken format
    return f'<thinking>{thinking}</thinking>\n<answer>{ans}</answer>'

def make_batch(prompts:int, group:int, seed:int, dup:float=0.0, latex:bool=False, families=FAMILIES)->tuple:
    "B x G responses with their records (each prompt's record object repeated G times, as the trainer does)."
    rng = random.Random(seed)
    recs = [make_record(families[i % len(families)], i, rng) for i in range(prompts)]
    responses, records = [], []
    for r in recs:
        group_resps = []
        for _ in range(group):
            group_resps.append(rng.choice(group_resps) if group_resps and rng.random() < dup else make_response(r, rng, latex))
        responses += group_resps; records += [r] * group
    return responses, records

def bench(name:str, prompts:int, group:int, repeats:int, **kw)->float:
    "Time score_batch on fresh batches; print and return responses/s."
    batches = [make_batch(prompts, group, seed=1000 + i, **kw) for i in range(repeats)]
    score_batch(*make_batch(prompts, group, seed=1, **kw))   # warm-up (starts the math helper)
    t0 = time.perf_counter()
    for responses, records in batches: score_batch(responses, records, length_weight=0.1, n_tokens=[len(s) // 4 for s in responses])
    dt = time.perf_counter() - t0
    n = prompts * group * repeats
    print(f'{name:<44} {prompts} x {group} = {prompts * group} responses x {repeats}: {dt:7.3f} s -> {n / dt:9.0f} responses/s')
    return n / dt

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--prompts', type=int, default=64, help='prompts per step (B)')
    p.add_argument('--group', type=int, default=8, help='responses per prompt (G)')
    p.add_argument('--repeats', type=int, default=3, help='batches timed per case')
    a = p.parse_args(argv)
    out = {'distinct': bench('all families, distinct responses', a.prompts, a.group, a.repeats),
           'dup': bench('all families, half repeated within a group', a.prompts, a.group, a.repeats, dup=0.5),
           'math': bench('math only, LaTeX answers (math-verify)', a.prompts, a.group, a.repeats, latex=True, families=('math_reasoning',))}
    print(f'math-verify helper: {MATH_VERIFIER.n_calls} calls, {MATH_VERIFIER.n_timeouts} timeouts')
    return out

if __name__ == '__main__': main()
