"Tests of openvlthinker_nb.data (the OneThinker loader, on hand-written fixtures) and openvlthinker_nb.synthetic (the suite generator)."
import hashlib, json, warnings
from pathlib import Path
import pytest
from PIL import Image
from openvlthinker_nb.tasks import synthetic as D
from openvlthinker_nb.tasks.data import load_onethinker, build_messages, summarize, SYSTEM_PROMPT, DataError
from openvlthinker_nb.tasks.vocab import TASK_TYPES
from openvlthinker_nb.tasks.synthetic import make_synthetic, default_split, SPLITS

# ---------------------------------------------------------------- fixtures

def _record(i, **kw):
    r = {'problem_id': i, 'problem': '<image> Which shape is red?', 'images': [f'pics/{i}.png'], 'data_type': 'image',
         'problem_type': 'multiple-choice', 'task_type': 'General VQA Science Stem', 'options': ['A. circle', 'B. square'],
         'answer': '<answer>B</answer>', 'data_source': 'test'}
    return {**r, **kw}

def _write(folder: Path, records, fmt='jsonl', extra_lines=(), image_root=None):
    root = image_root or folder
    folder.mkdir(parents=True, exist_ok=True)
    for r in records:
        for p in (r.get('images') or [] if isinstance(r, dict) else []):
            (root/p).parent.mkdir(parents=True, exist_ok=True)
            Image.new('RGB', (10, 20), (0, 0, 255)).save(root/p)
    if fmt == 'json':
        f = folder/'data.json'; f.write_text(json.dumps(records, indent=4))
    else:
        f = folder/'data.jsonl'; f.write_text('\n'.join([json.dumps(r) for r in records] + list(extra_lines)) + '\n')
    return f

def _tree_hash(folder: Path):
    h = hashlib.sha256()
    for p in sorted(folder.rglob('*')):
        if p.is_file(): h.update(str(p.relative_to(folder)).encode()); h.update(p.read_bytes())
    return h.hexdigest()

# ---------------------------------------------------------------- loader

def test_json_with_nan_and_extra_fields(tmp_path):
    recs = [_record(1, explanation=float('nan'), H=float('nan'), topic_difficulty='Hard'),
            _record(2, problem_type='Numerical', task_type='chart_figure_qa', options=float('nan'), answer='<answer>12.5</answer>')]
    f = _write(tmp_path, recs, fmt='json')
    assert 'NaN' in f.read_text()
    ds = load_onethinker(f)
    assert len(ds) == 2 and ds.report.n_read == 2 and ds.report.n_skipped == 0
    x = ds[0]
    assert x['explanation'] is None and x['H'] is None and x['topic_difficulty'] == 'Hard'
    assert x['problem_type'] == 'multiple choice' and x['task_type'] == 'general_vqa_science_stem'
    assert x['task_id'] == TASK_TYPES.index('general_vqa_science_stem') == 2
    assert x['answer_text'] == 'B' and x['answer'] == '<answer>B</answer>'
    assert x['images'][0].mode == 'RGB' and x['images'][0].size == (10, 20)
    y = ds[1]
    assert y['options'] == [] and y['problem_type'] == 'numerical' and y['answer_text'] == '12.5' and y['task_id'] == 4

def test_jsonl_equals_json_and_image_root(tmp_path):
    recs = [_record(i) for i in range(3)]
    fj = _write(tmp_path/'j', recs, fmt='json')
    fl = _write(tmp_path/'l', recs, fmt='jsonl', image_root=tmp_path/'imgs')
    dj, dl = load_onethinker(fj), load_onethinker(fl, image_root=tmp_path/'imgs')
    assert dj.records == dl.records
    assert [x['answer_text'] for x in dl] == ['B'] * 3
    with pytest.raises(DataError, match='image file not found'): load_onethinker(fl)   # default root is the file's folder

def test_images_are_decoded_lazily(tmp_path):
    f = _write(tmp_path, [_record(0)])
    ds = load_onethinker(f)
    assert ds.records[0]['images'] == ['pics/0.png']        # records hold paths
    Image.new('RGB', (7, 7), (255, 0, 0)).save(tmp_path/'pics'/'0.png')
    assert ds[0]['images'][0].size == (7, 7)                 # read at access time

def test_messages_structure(tmp_path):
    ds = load_onethinker(_write(tmp_path, [_record(0)]))
    (m,) = ds[0]['messages']
    assert m['role'] == 'user'
    assert [c['type'] for c in m['content']] == ['image', 'text']
    text = m['content'][1]['text']
    assert '<image>' not in text and text.startswith('Which shape is red?\nA. circle\nB. square\n')
    assert SYSTEM_PROMPT in text and '<thinking>' in text and '<answer>' in text
    img = Image.new('RGB', (4, 4))
    g = build_messages({'problem': '<image> Box the cat.', 'problem_type': 'spatial grounding', 'options': []}, [img])
    assert '{"boxes": [x1, y1, x2, y2]}' in g[0]['content'][1]['text'] and '0-1000' in g[0]['content'][1]['text']
    two = build_messages({'problem': 'Left <image> right <image>', 'problem_type': 'OCR'}, [img, img])
    assert [c['type'] for c in two[0]['content']] == ['text', 'image', 'text', 'image', 'text']

BAD = {  # reason -> (how to make the bad middle record, part of the expected message)
    'malformed_line': (None, 'line 3: malformed JSONL line'),
    'missing_answer': (lambda: {k: v for k, v in _record(5).items() if k != 'answer'}, "record 1 (line 2), problem_id=5: missing or empty 'answer'"),
    'unknown_problem_type': (lambda: _record(5, problem_type='haiku'), "problem_id=5: unknown problem_type 'haiku'"),
    'unknown_task_type': (lambda: _record(5, task_type='audio'), "problem_id=5: unknown task_type 'audio'"),
    'missing_image': (lambda: _record(5, images=['pics/gone.png']), 'problem_id=5: image file not found'),
    'corrupt_image': (lambda: _record(5, images=['pics/bad.png']), 'problem_id=5: unreadable image'),
}

@pytest.mark.parametrize('reason', list(BAD))
def test_bad_input_raises_or_is_skipped_and_counted(tmp_path, reason):
    make, msg = BAD[reason]
    good = [_record(4), _record(6)]
    if make is None: f = _write(tmp_path, good, extra_lines=['{"problem_id": 5, "answer": '])
    else: f = _write(tmp_path, [good[0], make(), good[1]])
    if reason == 'missing_image': (tmp_path/'pics'/'gone.png').unlink()
    if reason == 'corrupt_image': (tmp_path/'pics'/'bad.png').write_bytes(b'GIF89a garbage')
    with pytest.raises(DataError) as e: load_onethinker(f)
    assert msg in str(e.value) and str(f) in str(e.value) and e.value.reason == reason
    with pytest.warns(UserWarning, match='skipped 1 of 3'):
        ds = load_onethinker(f, on_error='skip')
    assert len(ds) == 2 and [r['problem_id'] for r in ds.records] == [4, 6]
    assert ds.report.counts == {reason: 1} and ds.report.n_kept == 2
    assert ds.report.skipped[reason] == ['line 3' if make is None else 5]
    assert str(f) in ds.report.messages[0]

def test_other_bad_inputs(tmp_path):
    (tmp_path/'x.json').write_text('[{"problem_id": 1}, ')
    with pytest.raises(DataError, match='x.json: not valid JSON'): load_onethinker(tmp_path/'x.json', on_error='skip')
    with pytest.raises(FileNotFoundError, match='missing.jsonl'): load_onethinker(tmp_path/'missing.jsonl')
    f = _write(tmp_path, [_record(0)])
    with pytest.raises(ValueError, match='on_error'): load_onethinker(f, on_error='drop')
    f = _write(tmp_path/'v', [_record(0, data_type='video'), _record(1, images=[]), [1, 2]])
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        ds = load_onethinker(f, on_error='skip')
    assert ds.report.counts == {'unsupported_data_type': 1, 'image_mismatch': 1, 'not_a_record': 1} and len(ds) == 0

def test_summarize(tmp_path):
    recs = [_record(0), _record(1), _record(2, problem_type='OCR', task_type='ocr', options=[], answer='<answer>hi</answer>')]
    s = summarize(load_onethinker(_write(tmp_path, recs)))
    assert s.loc['general_vqa_science_stem', 'multiple choice'] == 2 and s.loc['ocr', 'OCR'] == 1
    assert s.loc['ocr', 'multiple choice'] == 0 and s.loc['total', 'total'] == 3
    assert list(s.index) == ['general_vqa_science_stem', 'ocr', 'total']

# ---------------------------------------------------------------- generator

def test_generator_is_deterministic(tmp_path):
    for name, seed in [('a', 3), ('b', 3), ('c', 4)]: make_synthetic(tmp_path/name, 2, seed=seed, progress=False)
    assert _tree_hash(tmp_path/'a') == _tree_hash(tmp_path/'b')
    assert _tree_hash(tmp_path/'a') != _tree_hash(tmp_path/'c')
    assert (tmp_path/'a'/'train.jsonl').read_bytes() != (tmp_path/'c'/'train.jsonl').read_bytes()

SCHEMA = {'problem_id', 'problem', 'images', 'data_type', 'problem_type', 'task_type', 'options', 'answer', 'data_source', 'solution',
          'caption', 'difficulty'}

def test_generator_schema_families_and_loading(tmp_path):
    paths = make_synthetic(tmp_path, {'train': 10, 'val': 2, 'test': 3, 'rl': 2}, seed=0, progress=False)
    assert set(paths) == set(SPLITS)
    sizes = {'train': 10, 'val': 2, 'test': 3, 'rl': 2}
    raw = {s: [json.loads(l) for l in paths[s].read_text().splitlines()] for s in SPLITS}
    for s in SPLITS:
        assert len(raw[s]) == 6 * sizes[s]
        ds = load_onethinker(paths[s])
        assert len(ds) == len(raw[s]) and ds.report.n_skipped == 0
        for r in raw[s]:
            assert set(r) == SCHEMA and r['data_source'] == 'synthetic' and r['data_type'] == 'image'
            assert r['problem'].startswith('<image> ') and r['answer'].startswith('<answer>') and r['answer'].endswith('</answer>')
            assert len(r['images']) == 1 and not Path(r['images'][0]).is_absolute() and (tmp_path/r['images'][0]).is_file()
            assert r['solution'] and len(r['solution']) < 80 and r['caption'] and r['difficulty'] in ('easy', 'medium', 'hard')
    ids = [r['problem_id'] for s in SPLITS for r in raw[s]]
    assert len(ids) == len(set(ids))
    fam_types = {}
    for r in raw['train']: fam_types.setdefault(r['task_type'], set()).add(r['problem_type'])
    assert fam_types['spatial_grounding'] == {'spatial grounding'} and fam_types['ocr'] == {'OCR'}
    assert fam_types['general_vqa_science_stem'] == {'multiple choice'}
    assert fam_types['spatial_reasoning'] <= {'multiple choice', 'numerical'}
    assert fam_types['math_reasoning'] <= {'numerical', 'math'} and fam_types['chart_figure_qa'] <= {'numerical', 'multiple choice'}
    assert set(fam_types) == set(TASK_TYPES)
    ds = load_onethinker(paths['train'])
    for x in ds:
        assert x['images'][0].size == (128, 128) and x['images'][0].mode == 'RGB'
        c = x['messages'][0]['content']
        assert [i['type'] for i in c] == ['image', 'text'] and SYSTEM_PROMPT in c[1]['text']
        if x['problem_type'] == 'spatial grounding':
            b = json.loads(x['answer_text'])['boxes']
            assert len(b) == 4 and 0 <= b[0] < b[2] <= 1000 and 0 <= b[1] < b[3] <= 1000
        if x['problem_type'] == 'multiple choice':
            assert x['answer_text'] in [o.split('.')[0] for o in x['options']]
        if x['problem_type'] in ('numerical', 'math'): int(x['answer_text'])

def test_difficulty_and_bad_arguments(tmp_path):
    make_synthetic(tmp_path/'e', 1, seed=0, difficulty='easy', progress=False)
    make_synthetic(tmp_path/'m', 1, seed=0, difficulty='medium', progress=False)
    assert _tree_hash(tmp_path/'e') != _tree_hash(tmp_path/'m')
    make_synthetic(tmp_path/'x', 3, seed=0, progress=False)   # the default mixes the presets record by record
    assert [r['difficulty'] for r in load_onethinker(tmp_path/'x'/'test.jsonl').records[::6]] == ['easy', 'medium', 'hard']
    with pytest.raises(ValueError, match='nightmare'): make_synthetic(tmp_path/'x', 1, difficulty='nightmare')
    with pytest.raises(ValueError, match='n_per_family'): make_synthetic(tmp_path/'x', {'train': 1, 'val': 1})

def test_committed_default_suite_matches_the_generator(tmp_path):
    ds = load_onethinker(default_split('train'))
    assert len(ds) == 6 * D.DEFAULT_SIZES['train'] and ds.report.n_skipped == 0
    make_synthetic(tmp_path, 2, seed=D.DEFAULT_SEED, difficulty=D.DEFAULT_DIFFICULTY, progress=False)
    for s in SPLITS:
        committed = {r['problem_id']: r for r in load_onethinker(default_split(s), verify_images=False).records}
        assert len(committed) == 6 * D.DEFAULT_SIZES[s]
        for r in load_onethinker(tmp_path/f'{s}.jsonl').records:
            assert committed[r['problem_id']] == r
            assert (D.DEFAULT_DATA/r['images'][0]).read_bytes() == (tmp_path/r['images'][0]).read_bytes()
    with pytest.raises(ValueError, match='dev'): default_split('dev')

def test_rewards_score_the_suite_with_three_topologies(tmp_path):
    from openvlthinker_nb.tasks.rewards import score_batch, score
    ds = load_onethinker(make_synthetic(tmp_path, {'train': 6, 'val': 0, 'test': 0, 'rl': 0}, seed=5, progress=False)['train'])
    recs = list(ds)
    gold = [f"<thinking>{r['solution']}</thinking><answer>{r['answer_text']}</answer>" for r in recs]
    assert score_batch(gold, recs)['accuracy'].min() == 1.0
    wrap = lambda a: f'<thinking>.</thinking><answer>{a}</answer>'
    mc = next(r for r in recs if r['problem_type'] == 'multiple choice')
    assert score(wrap('B' if mc['answer_text'] == 'A' else 'A'), mc)['accuracy'] == 0.0        # binary
    g = next(r for r in recs if r['problem_type'] == 'spatial grounding')
    x1, y1, x2, y2 = json.loads(g['answer_text'])['boxes']
    acc = score(wrap(json.dumps({'boxes': [x1, y1, (x1 + x2) // 2, y2]})), g)['accuracy']         # continuous IoU
    assert 0.4 < acc < 0.6
    o = next(r for r in recs if r['problem_type'] == 'OCR' and len(r['answer_text'].split()) == 2)
    assert score(wrap(o['answer_text'].split()[1]), o)['accuracy'] == 0.5                         # partial credit
