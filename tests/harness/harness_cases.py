"""Differential cases for the benchmark scorers: hand-picked edge cases plus seeded random perturbations (JSON-ready)."""
import json, random, string

WORDS = ['cat', 'dog', 'red', 'blue', 'fish', 'bird', 'tree', 'car', 'apple', 'the sun', 'New York', 'ITC', 'May 1, 1998',
         'Total', '3.5 kg', 'x-ray', 'Über', 'straße', 'A', 'a', 'b', 'none', '']
NUMS = ['0', '0.0', '1', '5', '45', '45%', '0.45', '12.5', '-3', '1,000', '1000', '3.14', '2.0', '100%', '0.05', '7e3', '1e-3']

def _typo(rng, s):
    "One random edit: insert, delete, replace or case-flip a character."
    if not s: return rng.choice(string.ascii_letters)
    i, op = rng.randrange(len(s)), rng.randrange(4)
    c = rng.choice(string.ascii_letters + ' .,%')
    return [s[:i] + c + s[i:], s[:i] + s[i+1:], s[:i] + c + s[i+1:], s[:i] + s[i].swapcase() + s[i+1:]][op]

def _spaces(rng, s):
    return rng.choice([' ' + s, s + ' ', s.replace(' ', '   '), '\t' + s + '\n', s.replace(' ', '\n'), s])

def text_cases(rng, n):
    "ANLS / OCRBench style: a reference list and a perturbed prediction."
    out = [dict(pred='ITC   x', refs=['ITC']), dict(pred='ab', refs=['abcd']), dict(pred='abcd', refs=['ab']),
           dict(pred='', refs=['']), dict(pred='', refs=['x']), dict(pred='x', refs=['']), dict(pred='ß', refs=['ss']),
           dict(pred='straße', refs=['STRASSE']), dict(pred='  May 1, 1998 ', refs=['May 1, 1998']), dict(pred='abc', refs=['abd', 'xyz'])]
    for _ in range(n):
        refs = [rng.choice(WORDS[:-1]) for _ in range(rng.randint(1, 3))]
        p = rng.choice(refs)
        for _ in range(rng.randint(0, 4)): p = _typo(rng, p) if rng.random() < .6 else _spaces(rng, p)
        if rng.random() < .2: p = f"The answer is {p}"
        if rng.random() < .1: p = p.upper()
        out.append(dict(pred=p, refs=refs))
    return out

def number_cases(rng, n):
    "ChartQA style: a reference and a prediction near it in value or form."
    out = [dict(pred='45%', refs=['45']), dict(pred='0.45', refs=['45%']), dict(pred='0.0', refs=['0']), dict(pred='1,000', refs=['1000']),
           dict(pred='1000', refs=['1,000']), dict(pred=' 45 ', refs=['45']), dict(pred='nan', refs=['nan']), dict(pred='inf', refs=['5']),
           dict(pred='Yes', refs=['yes']), dict(pred='1_000', refs=['1000']), dict(pred='47', refs=['45']), dict(pred='48', refs=['45'])]
    for _ in range(n):
        t = rng.choice(NUMS + WORDS[:6])
        try:
            x = float(t.rstrip('%').replace(',', '')) * (1 + rng.choice([0, 0, .01, -.04, .05, .06, -.2, 1]))
            p = rng.choice([f'{x:g}', f'{x:.2f}', f'{x}%', f'{x / 100:g}', f'{x:,.0f}', f' {x:g} ', f'{x:.0f}'])
        except ValueError: p = rng.choice([t, t.upper(), _typo(rng, t), f' {t}'])
        out.append(dict(pred=p, refs=[t]))
    return out

LETTER_TEMPLATES = ['{L}', '({L})', '{L}.', '{L}. {T}', '{l}', 'I choose {L}', '{L} is correct', '{L}, because it is {T}', 'The answer is {L}',
                    'answer is **{L}**', 'The correct answer is ({L}) {T}.', '{T}', 'The answer is {T}', 'It is {T}.', 'Option {L}', '{L} or {M}',
                    'Between {L} and {M}, I pick {M}', 'Cannot determine the answer', 'Z', '', '{L}: {T}', '[{L}]', 'Answer: {L}',
                    'The image shows {T}, so the answer is {L}.', '{T} ({L})', 'Final answer: {L}', 'Looking at the options carefully, it must be {L} here',
                    '**{L}**', '{L}\n', 'The answer is a {T}', '\\boxed{{{L}}}', '{L}){T}', 'none of them']

def option_cases(rng, n):
    "Multiple-choice answers: options, the reference letter and a templated answer."
    out = []
    for _ in range(n):
        k = rng.randint(2, 6)
        texts = rng.sample(['cat', 'dog', 'red', 'blue', 'a fish', 'bird', 'tree', 'car', '12', '3.5', 'New York', 'none of the above', 'the sun'], k)
        letters = string.ascii_uppercase[:k]
        gt, said, other = rng.choice(letters), rng.choice(letters), rng.choice(letters)
        p = rng.choice(LETTER_TEMPLATES).format(L=said, l=said.lower(), M=other, T=texts[letters.index(said)])
        if rng.random() < .1: p = _typo(rng, p)
        out.append(dict(pred=p, choices=dict(zip(letters, texts)), answer=gt))
    return out

def open_cases(rng, n):
    "MMMU open answers: a reference and a sentence around a near value."
    out = [dict(pred='The answer is 5', refs=['5']), dict(pred='5 m', refs=['5']), dict(pred='x = 5.001', refs=['5']),
           dict(pred='1,000', refs=['1000']), dict(pred='so the result is 3.14', refs=['3.14159']), dict(pred='cat', refs=['a'])]
    for _ in range(n):
        r = rng.choice(NUMS[:14] + ['Paris', 'mitochondria', 'B', 'x^2', '24/7'])
        v = r
        try: v = rng.choice([r, f'{float(r.rstrip("%").replace(",", "")) + rng.choice([0, .001, .01, 1]):g}'])
        except ValueError: v = rng.choice([r, r.lower(), _typo(rng, r)])
        p = rng.choice(['{v}', 'The answer is {v}', '{v} m', 'Therefore, x = {v}.', 'so {v}', 'It is about {v} units', 'final answer: {v}\nDone',
                        'I think it could be {v}', '{v}.', 'Result {v}'] ).format(v=v)
        out.append(dict(pred=p, refs=[r]))
    return out

def mathvista_cases(rng, n):
    "MathVista: metadata, answer and an answer text (what lmms-eval extracts without its judge)."
    out = []
    for _ in range(n):
        kind = rng.choice(['mc', 'integer', 'float1', 'float2', 'list'])
        if kind == 'mc':
            ch = rng.sample(['12', '24', '48', '3/5', '8/11', 'yes', 'no', '2.5', 'A cat'], rng.randint(2, 5))
            meta = dict(question_type='multi_choice', answer_type='text', precision=None, choices=ch)
            ans = rng.choice(ch); said = rng.choice(ch)
            p = rng.choice([said, chr(65 + ch.index(said)), f'({chr(65 + ch.index(said))})', f'({chr(65 + ch.index(said))}) {said}', said + ' ', _typo(rng, said), 'Z'])
        elif kind == 'list':
            meta = dict(question_type='free_form', answer_type='list', precision=None, choices=None)
            ans = rng.choice(['[2007, 2008]', '[1, 2, 3]']); p = rng.choice([ans, ans.replace(' ', ''), '[2007,2008]'])
        else:
            prec = {'integer': None, 'float1': 1.0, 'float2': 2.0}[kind]
            meta = dict(question_type='free_form', answer_type='integer' if kind == 'integer' else 'float', precision=prec, choices=None)
            x = rng.choice([3, 14, 0.5, 1.45, 2.25, 12.0, 0.333, 100])
            ans = str(int(x)) if kind == 'integer' else f'{x:.{int(prec)}f}'
            y = x + rng.choice([0, 0, 0.004, 0.05, 1, -0.6])
            p = rng.choice([f'{y}', f'{y:g}', f'{y:.3f}', str(int(y)), f' {y} ', f'{y:.1f}', f'{y}%', 'nan', 'inf', ''])
        out.append(dict(pred=p, meta=meta, answer=ans))
    return out

def box_cases(rng, n):
    "RefCOCO: image size, pixel ground truth (x1, y1, x2, y2) and a box answer at one of three scales."
    out = [dict(pred='The box is [100, 100, 400, 500].', gt=[20, 10, 80, 50], w=200, h=100),
           dict(pred='[[100, 100, 400, 500], [0, 0, 10, 10]]', gt=[20, 10, 80, 50], w=200, h=100),
           dict(pred='[-50, 100, 1400, 500]', gt=[0, 10, 200, 50], w=200, h=100)]
    for _ in range(n):
        w, h = rng.choice([(200, 100), (640, 480), (1200, 900)])
        x1, y1 = rng.uniform(0, w * .7), rng.uniform(0, h * .7)
        gt = [x1, y1, x1 + rng.uniform(5, w * .3), y1 + rng.uniform(5, h * .3)]
        j = [v * (1 + rng.choice([0, .05, -.1, .3, -.5])) for v in gt]
        scale = rng.choice(['px', 'grid', 'frac'])
        b = [j[0] / w, j[1] / h, j[2] / w, j[3] / h]
        b = {'px': j, 'grid': [1000 * v for v in b], 'frac': b}[scale]
        nums = [f'{v:.0f}' if scale != 'frac' else f'{v:.3f}' for v in b]
        if rng.random() < .2: nums = [nums[2], nums[3], nums[0], nums[1]]
        p = rng.choice(['[{}, {}, {}, {}]', '{{"bbox_2d": [{}, {}, {}, {}]}}', 'The box is [{}, {}, {}, {}].', '({}, {}), ({}, {})',
                        '[{} {} {} {}]', 'x1={} y1={} x2={} y2={}', '[{}, {}, {}]']).format(*nums)
        out.append(dict(pred=p, gt=gt, w=w, h=h))
    return out

def point_cases(rng, n):
    "RefSpatial / RoboSpatial: image size and a points answer in one of the forms the parser reads."
    out = [dict(pred='[(0.3, 0.3), (0.25, 0.4)]', w=64, h=48), dict(pred='[(0.3, 0.3), (20, 12)]', w=64, h=48),
           dict(pred='```json\n[{"point_2d": [300, 250], "label": "p"}]\n```', w=64, h=48), dict(pred='(8, 6, 12, 9)', w=64, h=48),
           dict(pred='[{"point": [0.5, 0.5]}]', w=64, h=48), dict(pred='no points', w=64, h=48)]
    for _ in range(n):
        w, h = rng.choice([(64, 48), (640, 480)])
        pts = []
        for _ in range(rng.randint(1, 4)):
            fx, fy = rng.uniform(-.1, 1.1), rng.uniform(-.1, 1.1)
            s = rng.choice(['frac', 'grid', 'px'])
            pts.append({'frac': (round(fx, 3), round(fy, 3)), 'grid': (round(1000 * fx), round(1000 * fy)), 'px': (round(fx * w), round(fy * h))}[s])
        form = rng.choice(['tuples', 'json', 'jsonpoint', 'box', 'fence'])
        if form == 'tuples': p = '[' + ', '.join(f'({x}, {y})' for x, y in pts) + ']'
        elif form == 'box': p = f'({pts[0][0]}, {pts[0][1]}, {pts[-1][0]}, {pts[-1][1]})'
        else:
            key = 'point' if form == 'jsonpoint' else 'point_2d'
            p = json.dumps([{key: [x, y], 'label': f'p{i}'} for i, (x, y) in enumerate(pts)])
            if form == 'fence': p = f'```json\n{p}\n```'
        out.append(dict(pred=p, w=w, h=h))
    return out

def yes_no_cases(rng, n):
    out = []
    for _ in range(n):
        gt = rng.choice(['Yes', 'No', 'yes', 'no'])
        p = rng.choice(['yes', 'Yes.', 'no', 'No, it is not.', 'Answer: yes', 'The answer is no', ' yes', 'nope', 'none', 'YES', '', 'Yes and no'])
        out.append(dict(pred=p, answer=gt))
    return out

def response_cases(rng, n):
    "Whole responses in the kit's format (and near it), for the reasoning-tag stripping an lmms-eval run is given."
    out = []
    for _ in range(n):
        think = rng.choice(['Looking at the image.', 'Step 1: count.\nStep 2: add.', '', 'The bars are 3 and 4, so 7.'])
        ans = rng.choice(['B', '45%', ' 7 ', '{"boxes": [1, 2, 3, 4]}', '[(0.3, 0.3)]', 'yes', 'May 1, 1998', ''])
        sep = rng.choice(['', '\n', ' ', '\n\n'])
        out.append(dict(response=f'<thinking>{think}</thinking>{sep}<answer>{ans}</answer>' + rng.choice(['', '\n', ' '])))
    return out

def all_cases(seed:int=0, n:int=400)->dict:
    "Scorer family -> cases."
    rng = random.Random(seed)
    return {'anls': text_cases(rng, n), 'relaxed': number_cases(rng, n), 'ocrbench': text_cases(rng, n), 'option': option_cases(rng, 2 * n),
            'mmmu_open': open_cases(rng, n), 'mathvista': mathvista_cases(rng, n), 'refcoco': box_cases(rng, n), 'points': point_cases(rng, n),
            'yes_no': yes_no_cases(rng, n // 4), 'response': response_cases(rng, n // 2)}
