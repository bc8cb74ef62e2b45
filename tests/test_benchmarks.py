"Tests of openvlthinker_nb.eval.benchmarks: every benchmark's fixture loads, builds prompts and scores; missing and malformed data are reported."
import base64, json
from pathlib import Path
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from openvlthinker_nb.eval.benchmarks.files import MissingBenchmarkData, MalformedRecord
from openvlthinker_nb.eval.benchmarks.registry import (BENCHMARKS, Benchmark, BenchmarkSet, load_benchmark, score_response, unit_scores,
                                                       write_fixture)
from openvlthinker_nb.tasks.data import ANSWER_HINTS
from openvlthinker_nb.paths import REPO_ROOT

PAPER_ORDER = ['MMMU', 'MMBench', 'MMStar', 'MathVista', 'MathVerse', 'MathVision', 'AI2D', 'ChartQA', 'CharXiv',
               'DocVQA', 'OCRBench', 'InfoVQA', 'EmbSpatial', 'RefSpatial', 'RoboSpatial', 'RefCOCO', 'RefCOCO+', 'RefCOCOg']
GROUPS = {'General', 'Math', 'Chart', 'Document', 'Spatial', 'Grounding'}


def test_registry_matches_the_paper():
    assert list(BENCHMARKS) == PAPER_ORDER
    paper = set(pd.read_csv(REPO_ROOT/'data'/'paper_results.csv')['benchmark'])
    assert set(BENCHMARKS) <= paper
    for name, b in BENCHMARKS.items():
        assert isinstance(b, Benchmark) and b.name == name and b.group in GROUPS and b.split and b.files and b.source
        assert b.scale == (1000 if name == 'OCRBench' else 100), name
    assert [b.name for b in BENCHMARKS.values() if b.group == 'Grounding'] == ['RefCOCO', 'RefCOCO+', 'RefCOCOg']


@pytest.mark.parametrize('name', PAPER_ORDER)
def test_fixture_loads_and_scores(name, tmp_path):
    fx = write_fixture(name, tmp_path/name, n=4, seed=1)
    assert len(fx) >= 4
    bs = load_benchmark(name, tmp_path)
    assert isinstance(bs, BenchmarkSet) and bs.bench is BENCHMARKS[name]
    assert len(bs) == len(fx) and bs.ids == [f['problem_id'] for f in fx] and len(set(bs.ids)) == len(bs.ids)
    assert bs.malformed == []
    for f, i in zip(fx, range(len(bs))):
        rec = bs[i]
        assert rec['problem_id'] == f['problem_id'] and rec['benchmark'] == name
        assert rec['problem_type'] in ANSWER_HINTS and rec['problem_type'] != 'regression'
        assert isinstance(rec['problem'], str) and rec['problem'] and isinstance(rec['options'], list)
        assert rec['refs'] is not None and isinstance(rec['meta'], dict)
        assert rec['images'] and all(im.mode == 'RGB' for im in rec['images'])
        assert rec['meta']['width'] == rec['images'][0].width and rec['meta']['height'] == rec['images'][0].height
        content = rec['messages'][0]['content']
        assert rec['messages'][0]['role'] == 'user' and [c['image'] for c in content if c['type'] == 'image'] == rec['images']
        assert ANSWER_HINTS[rec['problem_type']] in content[-1]['text']
        assert score_response(name, f['right'], rec) == 1.0, (name, f['right'])
        assert score_response(BENCHMARKS[name], f['wrong'], rec) == 0.0, (name, f['wrong'])
        for junk in ['', 'unclear', '<answer>]]]</answer>', '<answer>{"boxes": "x"}</answer>', '(inf, nan) [1e999, 2]']:
            assert score_response(name, junk, rec) == 0.0, (name, junk)


def test_limit_keeps_the_first_records(tmp_path):
    write_fixture('AI2D', tmp_path/'AI2D', n=5)
    assert load_benchmark('AI2D', tmp_path, limit=2).ids == ['0', '1']
    write_fixture('RefCOCO', tmp_path/'RefCOCO', n=3)   # two expressions per row
    assert load_benchmark('RefCOCO', tmp_path, limit=3).ids == ['0-0', '0-1', '1-0']


def test_refcoco_boxes_read_at_three_scales(tmp_path):
    "VLMEvalKit's RefCOCO rule: fractions (all <= 1.5), the 0-1000 grid (<= 1000) or pixels; the first box; IoU >= 0.5."
    write_fixture('RefCOCO+', tmp_path/'RefCOCO+', n=1)
    rec = load_benchmark('RefCOCO+', tmp_path)[0]
    assert (rec['meta']['width'], rec['meta']['height'], rec['meta']['bbox']) == (200, 100, [20., 10., 60., 40.])
    for box in ['{"boxes": [100, 100, 400, 500]}', 'The box is [100, 100, 400, 500].', '[0.1, 0.1, 0.4, 0.5]', '[[100, 100, 400, 500], [0, 0, 9, 9]]']:
        assert score_response('RefCOCO+', f'<answer>{box}</answer>', rec) == 1.0, box
    assert score_response('RefCOCO+', '<answer>[20, 10, 80, 50]</answer>', rec) == 0.0   # all <= 1000: read on the grid


def test_answers_without_tags_are_scored_whole(tmp_path):
    write_fixture('AI2D', tmp_path/'AI2D', n=1, seed=0)
    rec = load_benchmark('AI2D', tmp_path)[0]
    letter = rec['refs'][0]
    assert score_response('AI2D', f'The answer is {letter}.', rec) == 1.0


def test_missing_data_names_benchmark_folder_and_files(tmp_path):
    with pytest.raises(MissingBenchmarkData) as e:
        load_benchmark('ChartQA', tmp_path)
    msg = str(e.value)
    assert 'ChartQA' in msg and str(tmp_path/'ChartQA') in msg and 'data/test-*.parquet' in msg
    assert isinstance(e.value, FileNotFoundError)
    (tmp_path/'EmbSpatial').mkdir()
    (tmp_path/'EmbSpatial'/'notes.txt').write_text('nothing here')
    with pytest.raises(MissingBenchmarkData, match='embspatial_bench.json'):
        load_benchmark('EmbSpatial', tmp_path)


def test_unknown_benchmark_lists_known_names(tmp_path):
    with pytest.raises((KeyError, ValueError), match='MMMU'):
        load_benchmark('MMLU', tmp_path)
    with pytest.raises((KeyError, ValueError), match='RefCOCOg'):
        score_response('MMLU', 'x', {})


def test_malformed_parquet_rows_are_named_and_the_rest_load(tmp_path):
    write_fixture('ChartQA', tmp_path/'ChartQA', n=4)
    f = next((tmp_path/'ChartQA').rglob('*.parquet'))
    rows = pq.read_table(f).to_pylist()
    rows[1]['answer'] = None                                              # missing answer: malformed at load
    rows[2]['image'] = {'bytes': b'\x89PNG\r\n\x1a\n not a png', 'path': 'x.png'}   # undecodable: MalformedRecord when read
    pq.write_table(pa.Table.from_pylist(rows), f)
    bs = load_benchmark('ChartQA', tmp_path)
    assert bs.ids == ['0', '2', '3']
    assert len(bs.malformed) == 1
    ident, reason = bs.malformed[0]
    assert f.name in ident and 'row 1' in ident and 'answer' in reason
    assert bs[0]['problem_id'] == '0' and bs[2]['problem_id'] == '3'
    with pytest.raises(MalformedRecord) as e:
        bs[1]
    assert isinstance(e.value, ValueError) and f.name in str(e.value) and 'row 2' in str(e.value) and 'decode' in str(e.value)


def test_malformed_json_rows_are_named(tmp_path):
    write_fixture('EmbSpatial', tmp_path/'EmbSpatial', n=3)
    f = tmp_path/'EmbSpatial'/'embspatial_bench.json'
    rows = json.loads(f.read_text())
    assert isinstance(rows[0]['image'], str) and base64.b64decode(rows[0]['image'])[:4] == b'\x89PNG'   # base64 images, as released
    rows[0]['answer'] = 7                          # index outside the options
    rows[2]['image'] = 'bm90IGFuIGltYWdl'          # base64 of text, not an image
    f.write_text(json.dumps(rows))
    bs = load_benchmark('EmbSpatial', tmp_path)
    assert bs.ids == ['mp3d_1', 'mp3d_2'] and [m[0] for m in bs.malformed] == ['embspatial_bench.json row 0']
    assert 'outside' in bs.malformed[0][1]
    assert bs[0]['options'][0].startswith('A. ')
    with pytest.raises(MalformedRecord, match='row 2'):
        bs[1]


def test_mmbench_tsv_with_base64_images(tmp_path):
    fx = write_fixture('MMBench', tmp_path/'MMBench', pattern='MMBench_DEV_EN*.tsv')
    tsv = next((tmp_path/'MMBench').glob('*.tsv'))
    df = pd.read_csv(tsv, sep='\t')
    assert {'index', 'question', 'hint', 'A', 'B', 'C', 'D', 'answer', 'image'} <= set(df.columns)
    bs = load_benchmark('MMBench', tmp_path)
    assert bs.ids == [f['problem_id'] for f in fx]
    assert all(score_response('MMBench', f['right'], r) == 1.0 for f, r in zip(fx, bs))


def test_mmbench_is_scored_circularly(tmp_path):
    "A question counts only when it and its rotated copy are both right: 'always A' gets 1 of 2 records but 0 questions."
    fx = write_fixture('MMBench', tmp_path/'MMBench', n=4)
    bs = load_benchmark('MMBench', tmp_path)
    b = BENCHMARKS['MMBench']
    rows = pd.DataFrame([{'problem_id': r['problem_id'], 'group': 'MMBench', 'unit': b.unit(r), 'scores': [score_response(b, 'A', r)]} for r in bs])
    rows['score'] = rows['scores'].map(lambda s: s[0])
    assert rows['score'].tolist() == [1.0, 0.0, 0.0, 1.0]   # 100: red is A, D in its copy; 101: green is B, A in its copy
    units = unit_scores(rows)
    assert units['problem_id'].tolist() == ['100', '101'] and units['score'].tolist() == [0.0, 0.0]
    right = rows.assign(scores=[[score_response(b, f['right'], r)] for f, r in zip(fx, bs)])
    assert unit_scores(right)['score'].tolist() == [1.0, 1.0]


def test_judge_hook_only_for_judged_benchmarks(tmp_path):
    for name in ('CharXiv', 'ChartQA'): write_fixture(name, tmp_path/name, n=2)
    cx, cq = load_benchmark('CharXiv', tmp_path)[1], load_benchmark('ChartQA', tmp_path)[0]
    asked = []
    def judge(prompts): asked.extend(prompts); return ['{"extracted_answer": "Ours", "score": 1}'] * len(prompts)
    assert score_response('CharXiv', '<answer>the proposed one</answer>', cx) == 0.0                 # rule-based default
    assert score_response('CharXiv', '<answer>the proposed one</answer>', cx, judge=judge) == 1.0
    assert asked and 'the proposed one' in asked[0] and '{PREDICTION}' not in asked[0]
    assert score_response('ChartQA', '<answer>nonsense</answer>', cq, judge=judge) == 0.0 and len(asked) == 1
    assert BENCHMARKS['CharXiv'].scoring() == 'rule-based (reference harness: LLM judge)' and BENCHMARKS['ChartQA'].scoring(judge) == 'rule-based'
