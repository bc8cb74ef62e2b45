"Tests of openvlthinker_nb.tasks.rewards and openvlthinker_nb.algos.shaping beyond the notebooks: larger fuzzing, threads and processes, the benchmark script."
import math, multiprocessing, threading, time, warnings
import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st, HealthCheck

from openvlthinker_nb.tasks import rewards as R
from openvlthinker_nb.algos import shaping as S
from openvlthinker_nb.eval import scorers as B

# ---------------------------------------------------------------- fixtures (made up, OneThinker schema)

def rec(problem_type, answer, options=(), task_type='general_vqa_science_stem', pid=7):
    return {'problem_id': pid, 'problem': '<image> q', 'data_type': 'image', 'problem_type': problem_type, 'options': list(options),
            'data_source': 'fixture', 'answer': f'<answer>{answer}</answer>', 'images': ['a.png'], 'task_type': task_type}

def resp(answer, thinking='because'):
    return f'<thinking>{thinking}</thinking><answer>{answer}</answer>'

FIXTURES = [
    rec('multiple choice', 'B', ['A. red square', 'B. blue circle', 'C. green bar'], 'spatial_reasoning'),
    rec('multiple choice', 'A', ['Unable to determine.', 'It would increase.'], 'math_reasoning'),
    rec('numerical', '40.33', task_type='chart_figure_qa'), rec('numerical', '-7', task_type='spatial_reasoning'),
    rec('regression', '2.57', task_type='spatial_reasoning'), rec('regression', '0.0', task_type='spatial_reasoning'),
    rec('OCR', 'Menus may use the\nculinary terms', task_type='ocr'),
    rec('math', '$$\\pi $$', task_type='math_reasoning'), rec('math', '8657', task_type='math_reasoning'),
    rec('spatial grounding', '{"boxes": [577, 232, 899, 786]}', task_type='spatial_grounding'),
    rec('spatial grounding', '{"boxes": [[0, 0, 10, 10], [500, 500, 600, 600]]}', task_type='spatial_grounding'),
    rec('yes/no', 'yes'), rec('free-form', 'a red circle'),
]
FRAGMENTS = ['<thinking>', '</thinking>', '<answer>', '</answer>', '<think>', '</think>', '<Answer>', ' ', '\n', '\t', 'B', '(b)',
             'The answer is ', 'blue circle', '{"boxes": [577, 232, 899, 786]}', '{"bbox_2d": [', '[{"bbox_2d": [1, 2, 3, 4]}]',
             '{"boxes": [NaN, 1, 2, 3]}', '[[[[', ']]', '}', '1e400', '-1e-400', '9' * 500, '0.0', '40.33', '2,000', '\\frac{1}{2}',
             '\\pi', '\\sqrt{', '\\boxed{', '$', '$$', 'yes', 'NO', 'culinary terms', '\x00', '\u202e', '🙂', '日本語', '\\', '"', "'"]
RESPONSES = st.lists(st.one_of(st.text(max_size=40), st.sampled_from(FRAGMENTS)), max_size=40).map(''.join)

def check_scores(r, length=False):
    keys = ['accuracy', 'format', 'structure'] + (['length'] if length else []) + ['overall']
    assert list(r) == keys
    for k in keys[:-1]: assert type(r[k]) is float and 0.0 <= r[k] <= 1.0, (k, r)
    assert type(r['overall']) is float and math.isfinite(r['overall']) and 0.0 <= r['overall'] <= 1.5, r

# ---------------------------------------------------------------- robustness: model output never breaks scoring

@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(response=RESPONSES, i=st.integers(0, len(FIXTURES) - 1), n=st.integers(-5, 10**7), v1=st.booleans())
def test_fuzz_score(response, i, n, v1):
    tags = ('think', 'answer') if v1 else ('thinking', 'answer')
    check_scores(R.score(response, FIXTURES[i], tags=tags))
    check_scores(R.score(response, FIXTURES[i], length_weight=0.1, n_tokens=n, tags=tags), length=True)

@settings(max_examples=1500, deadline=None)
@given(text=st.one_of(st.text(max_size=200), RESPONSES))
def test_fuzz_parsers_never_raise(text):
    x = R.parse_number(text); assert x is None or (type(x) is float and math.isfinite(x))
    boxes = R.parse_boxes(text)
    assert all(len(b) == 4 and all(type(v) is float and math.isfinite(v) for v in b) for b in boxes)
    letter = R.parse_option_letter(text, FIXTURES[0]['options']); assert letter is None or (len(letter) == 1 and letter.isupper())
    assert R.parse_yes_no(text) in (None, 'yes', 'no')
    a = R.extract_answer(text); assert a is None or isinstance(a, str)
    assert R.format_ok(text) in (True, False)
    assert isinstance(R.normalize_text(text), str)
    assert 0.0 <= R.accuracy_ocr(text, 'culinary terms', FIXTURES[6]) <= 1.0
    for fn in B.BENCHMARK_SCORERS.values():
        assert fn(text, ['stop sign', '12%', '{"boxes": [0, 0, 10, 10]}', 'B']) in (0.0, 1.0) or fn is B.anls
    assert 0.0 <= B.anls(text, ['stop sign', text[:5]]) <= 1.0

ADVERSARIAL = ['', ' ', '<answer></answer>', '<thinking></thinking><answer></answer>', '<answer>' * 50_000, '</answer>' * 50_000,
               '<thinking>' + 'x' * 500_000 + '</thinking><answer>B</answer>', '<answer>' + '9' * 300_000 + '</answer>',
               '<answer>' + '[' * 300_000 + '</answer>', '<answer>' + '{"boxes": [' + '1, ' * 100_000 + '1]}</answer>',
               '<answer>' + '[1, 2, 3, 4], ' * 20_000 + '</answer>', '<answer>[' + '[1, 2, 3, 4], ' * 20_000 + '[1, 2, 3, 4]]</answer>',
               '<answer>' + 'word ' * 100_000 + '</answer>', '<answer>\\frac{' * 10_000 + '</answer>', '<answer>' + '🙂' * 100_000 + '</answer>',
               resp('9^{9^{9^{9}}}'), resp('1e400'), resp('-0'), resp('nan'), resp('{"boxes": [1e308, -1e308, 1e308, 1e308]}')]

def test_adversarial_responses_are_scored_quickly():
    t0 = time.perf_counter()
    for r in ADVERSARIAL:
        for f in FIXTURES: check_scores(R.score(r, f))
    assert time.perf_counter() - t0 < 60, 'adversarial responses should take seconds, not minutes'

def test_unknown_problem_type_warns_once_and_scores_zero():
    R.WARNED_PROBLEM_TYPES.discard(repr('video qa'))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        out = R.score_batch([resp('x')] * 5, [rec('video qa', 'x')] * 5)
    assert [str(w.message).count("'video qa'") for w in caught] == [1]
    assert out['accuracy'].tolist() == [0.0] * 5 and out['format'].tolist() == [1.0] * 5
    with pytest.raises(ValueError, match="unknown problem_type 'video qa'"): R.normalize_problem_type('video qa')

# ---------------------------------------------------------------- worked values

@pytest.mark.parametrize('response,i,expected', [
    (resp('B'), 0, (1.0, 1.0, 0.5, 1.5)), (resp('blue circle'), 0, (1.0, 1.0, 0.5, 1.5)), (resp('C'), 0, (0.0, 1.0, 0.5, 0.6)),
    ('<answer>b</answer>', 0, (1.0, 0.0, 0.0, 0.9)), (resp('A'), 1, (1.0, 1.0, 0.5, 1.5)),
    (resp('40.334'), 2, (1.0, 1.0, 0.5, 1.5)), (resp('40.2'), 2, (0.0, 1.0, 0.5, 0.6)),
    (resp('2.0'), 4, (0.6, 1.0, 0.5, 0.9 * 0.6 + 0.6)),   # relative error 0.57 / 2.57 = 0.222 < 1 - t for t = 0.50..0.75: 6 of 10
    (resp('Menus may use culinary terms'), 6, (5 / 6, 1.0, 0.5, 0.9 * 5 / 6 + 0.6)),
    (resp('\\pi'), 7, (1.0, 1.0, 0.5, 1.5)), (resp('8,657'), 8, (1.0, 1.0, 0.5, 1.5)),
    (resp('{"boxes": [577, 232, 899, 786]}'), 9, (1.0, 1.0, 0.5, 1.5)),
    (resp('[{"bbox_2d": [0, 0, 10, 10]}]'), 10, (0.5, 1.0, 0.5, 1.05)),  # one of two boxes found
    (resp('0 0 10 10'), 10, (0.0, 1.0, 0.0, 0.1)),
    (resp('Yes.'), 11, (1.0, 1.0, 0.5, 1.5)), (resp('Red circle!'), 12, (1.0, 1.0, 0.5, 1.5)),
])
def test_worked_scores(response, i, expected):
    r = R.score(response, FIXTURES[i])
    assert [r[k] for k in ('accuracy', 'format', 'structure', 'overall')] == pytest.approx(list(expected), abs=1e-9)

def test_mra_boundaries():
    assert R.mean_relative_accuracy(8, 10) == pytest.approx(0.6)      # error 0.2 fails t = 0.80 (strict <)
    assert R.mean_relative_accuracy(7.5, 10) == pytest.approx(0.5)    # error 0.25 fails t = 0.75
    assert R.mean_relative_accuracy(10.49, 10) == pytest.approx(1.0)  # error 0.049 passes t = 0.95
    assert R.mean_relative_accuracy(10.5, 10) == pytest.approx(0.9)   # error 0.05 fails t = 0.95
    assert R.mean_relative_accuracy(0.0, 0.0) == 1.0 and R.mean_relative_accuracy(1e-9, 0.0) == 0.0

def test_length_shaping_in_score():
    g = FIXTURES[9]
    env = S.DEFAULT_ENVELOPES['spatial_grounding']
    for n, want in [(env[0], 0.0), (env[1], 1.0), (env[2], 1.0), ((env[2] + env[3]) / 2, 0.5), (env[3] + 1, 0.0)]:
        r = R.score(resp('{"boxes": [577, 232, 899, 786]}'), g, format_weight=0.1, length_weight=0.1, n_tokens=n)
        assert r['length'] == pytest.approx(want) and r['overall'] == pytest.approx(0.8 + 0.1 + 0.5 + 0.1 * want)

def test_check_record_and_bad_ground_truth():
    for f in FIXTURES: R.check_record(f)
    for bad, msg in [(rec('numerical', 'many'), 'is not a number'), (rec('regression', ''), 'is not a number'),
                     (rec('multiple choice', 'blue'), 'not an option letter'), (rec('spatial grounding', '[1, 2]'), 'holds no box'),
                     (rec('yes/no', 'maybe'), 'neither yes nor no'), (rec('OCR', ' '), 'OCR ground truth is empty')]:
        with pytest.raises(ValueError, match=msg) as e: R.check_record(bad)
        assert '7' in str(e.value)   # names the record

# ---------------------------------------------------------------- batch scoring

@settings(max_examples=60, deadline=None)
@given(items=st.lists(st.tuples(RESPONSES, st.integers(0, len(FIXTURES) - 1), st.integers(0, 200)), max_size=40),
       w_len=st.sampled_from([0.0, 0.1, 0.3]))
def test_score_batch_equals_score(items, w_len):
    responses = [r for r, _, _ in items]; records = [FIXTURES[i] for _, i, _ in items]; ns = [n for _, _, n in items]
    out = R.score_batch(responses, records, length_weight=w_len, n_tokens=ns if w_len else None)
    for j, (r, f, n) in enumerate(zip(responses, records, ns)):
        one = R.score(r, f, length_weight=w_len, n_tokens=n if w_len else None)
        assert list(out) == list(one)
        for k in one: assert out[k][j] == pytest.approx(one[k], abs=1e-12)

def test_bench_script_prints_throughput(capsys):
    import bench_rewards
    out = bench_rewards.main(['--prompts', '6', '--group', '4', '--repeats', '1'])
    printed = capsys.readouterr().out
    assert printed.count('responses/s') == 3 and all(v > 0 for v in out.values())

# ---------------------------------------------------------------- math-verify time limit, threads, processes

def test_math_time_limit_main_thread():
    mv = R.MathVerifier(timeout=1.0)
    try:
        assert mv('\\frac{6}{4}', '1.5') == 1.0
        t0 = time.perf_counter(); assert mv('9^{9^{9^{9}}}', '1') == 0.0; dt = time.perf_counter() - t0
        assert dt < 3.0 and mv.n_timeouts == 1
        assert mv('(1+\\sqrt{2})^2', '3+2\\sqrt{2}') == 1.0   # the restarted helper works
    finally: mv.close()

def test_math_time_limit_in_threads():
    mv, results = R.MathVerifier(timeout=1.0), {}
    pairs = {'slow': ('2^{2^{2^{2^{2^{2}}}}}', '5'), 'a': ('\\frac{1}{2}', '0.5'), 'b': ('\\sqrt{2}^2', '2'), 'c': ('3', '4')}
    def work(k): results[k] = mv(*pairs[k])
    threads = [threading.Thread(target=work, args=(k,)) for k in pairs]
    t0 = time.perf_counter()
    try:
        for t in threads: t.start()
        for t in threads: t.join(30)
        assert results == {'slow': 0.0, 'a': 1.0, 'b': 1.0, 'c': 0.0} and time.perf_counter() - t0 < 15
    finally: mv.close()

def _child(q):
    q.put(R.accuracy_math('\\frac{10}{4}', '2.5', {}))

def test_math_verifier_in_forked_child():
    assert R.accuracy_math('\\frac{9}{3}', '3', {}) == 1.0   # the parent's helper is running
    ctx = multiprocessing.get_context('fork')
    q = ctx.Queue(); p = ctx.Process(target=_child, args=(q,)); p.start()
    got = q.get(timeout=60); p.join(30)
    assert got == 1.0 and p.exitcode == 0
    assert R.accuracy_math('\\frac{12}{3}', '4', {}) == 1.0  # and the parent's is untouched

# ---------------------------------------------------------------- benchmark scorers

def test_benchmark_worked_cases():
    assert B.anls('Kitten', ['sitting', 'kitchen']) == pytest.approx(1 - 2 / 7)   # kitchen: 2 edits over 7
    assert B.anls('abc', 'xyz') == 0.0 and B.anls('1,000', '1000') == pytest.approx(0.8)
    assert B.relaxed_accuracy('0.96', '1') == 1.0 and B.relaxed_accuracy('0.949', '1') == 0.0 and B.relaxed_accuracy('-105', '-100') == 1.0
    assert B.relaxed_accuracy('Bar', 'bar') == 1.0 and B.relaxed_accuracy('10', 'ten') == 0.0
    assert B.iou_at_05([0, 0, 100, 100], [[500, 500, 600, 600], [0, 0, 100, 199]]) == 1.0   # IoU 100*100 / 100*199 = 0.5025
    assert B.iou_at_05([0, 0, 100, 100], [0, 0, 100, 201]) == 0.0                          # 0.4975
    assert B.ocrbench_contains('Total: $12.50', ['12.50']) == 1.0 and B.ocrbench_contains('12.5', '12.50') == 0.0
    assert B.option_letter_match('(d) fish', 'D') == 1.0 and B.option_letter_match('Answer: B', ['C']) == 0.0

@settings(max_examples=500, deadline=None)
@given(a=st.lists(st.floats(-1e3, 2e3), min_size=4, max_size=4), b=st.lists(st.floats(-1e3, 2e3), min_size=4, max_size=4))
def test_iou_implementations_agree(a, b):
    m = R._iou_matrix(np.array([a]), np.array([b]))[0, 0]
    assert R.box_iou(a, b) == pytest.approx(m, abs=1e-9) and 0.0 <= m <= 1.0 + 1e-12
    assert R.box_iou(a, b) == pytest.approx(R.box_iou(b, a), abs=1e-12)

# ---------------------------------------------------------------- shaping

ENVS = st.lists(st.integers(0, 5000), min_size=4, max_size=4, unique=True).map(sorted)

@settings(max_examples=1000, deadline=None)
@given(env=ENVS, n=st.integers(-100, 6000), triangle=st.booleans())
def test_length_reward_properties(env, n, triangle):
    if triangle: env = [env[0], env[1], env[1], env[3]]
    r = S.length_reward(n, env)
    assert 0.0 <= r <= 1.0 and (r == 1.0) == (env[1] <= n <= env[2]) and (r == 0.0) == (n <= env[0] or n >= env[3])
    if n < env[1]: assert S.length_reward(n + 1, env) >= r
    if n > env[2]: assert S.length_reward(n - 1, env) >= r
    t = S.length_reward(torch.tensor([n, n]), env); assert t.shape == (2,) and t[0].item() == pytest.approx(r, abs=1e-6)

def test_entropy_penalty_gradcheck_per_task_bounds():
    g = torch.Generator().manual_seed(3)
    ent = (torch.rand(10, 7, generator=g, dtype=torch.float64) * 2).requires_grad_()
    mask = (torch.rand(10, 7, generator=g) > 0.3).double(); mask[:, 0] = 1
    tid = torch.tensor([5, 0, 2, 5, 0, 1, 1, 2, 5, 3])
    lo, hi = torch.linspace(0.1, 0.6, 6, dtype=torch.float64), torch.linspace(0.5, 1.4, 6, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda e: S.entropy_penalty(e, mask, tid, lo, hi), (ent,))
    lo2, hi2 = lo.clone().requires_grad_(), hi.clone().requires_grad_()   # bounds can be learned too
    assert torch.autograd.gradcheck(lambda a, b: S.entropy_penalty(ent.detach(), mask, tid, a, b), (lo2, hi2))

@settings(max_examples=300, deadline=None)
@given(B=st.integers(1, 20), T=st.integers(1, 12), K=st.integers(1, 6), seed=st.integers(0, 2**31 - 1))
def test_entropy_penalty_matches_loop(B, T, K, seed):
    g = torch.Generator().manual_seed(seed)
    ent = torch.rand(B, T, generator=g, dtype=torch.float64) * 1.5
    mask = (torch.rand(B, T, generator=g) > 0.5)
    tid = torch.randint(0, K, (B,), generator=g)
    want = 0.0
    for k in range(K):
        toks = ent[tid == k][mask[tid == k]]
        if toks.numel(): H = toks.mean().item(); want += max(0.0, H - 0.6) + max(0.0, 0.2 - H)
    assert S.entropy_penalty(ent, mask, tid, 0.2, 0.6, n_tasks=K).item() == pytest.approx(want, abs=1e-9)
    H, present = S.task_mean_entropy(ent, mask, tid, K)
    assert present.tolist() == [bool(mask[tid == k].any()) for k in range(K)]

def test_entropy_estimators_agree_in_expectation():
    torch.manual_seed(0)
    logits = torch.randn(3, 5, 11) * 3
    y = torch.distributions.Categorical(logits=logits).sample((100_000,))   # (S, 3, 5)
    logp = torch.log_softmax(logits, -1).expand(100_000, -1, -1, -1).gather(-1, y.unsqueeze(-1)).squeeze(-1)
    exact = S.ENTROPY_ESTIMATORS['exact'](logits)
    assert torch.allclose(S.ENTROPY_ESTIMATORS['sampled'](logp).mean(0), exact, atol=0.04)

@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device')
def test_shaping_on_cuda():
    dev = torch.device('cuda')
    logits = torch.randn(4, 6, 32, device=dev, requires_grad=True)
    ent = S.entropy_from_logits(logits)
    mask = torch.ones(4, 6, device=dev); tid = torch.tensor([0, 1, 1, 3], device=dev)
    pen = S.entropy_penalty(ent, mask, tid, torch.full((4,), 0.2, device=dev), torch.full((4,), 0.6, device=dev))
    pen.backward()
    cpu = S.entropy_penalty(ent.detach().cpu(), mask.cpu(), tid.cpu(), 0.2, 0.6, n_tasks=4)
    assert pen.device.type == 'cuda' and abs(pen.item() - cpu.item()) < 1e-5 and torch.isfinite(logits.grad).all()
    lr = S.length_reward(torch.tensor([3, 30, 300], device=dev), (4, 8, 40, 80))
    assert lr.device.type == 'cuda' and lr.tolist() == [0.0, 1.0, 0.0]
