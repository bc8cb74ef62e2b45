"Tests of the evaluation harness on the 18 benchmarks' fixtures: scores, missing data, malformed records, resume, a real model."
import json, shutil
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from openvlthinker_nb.eval import evaluate as ev
from openvlthinker_nb.eval.benchmarks.registry import BENCHMARKS, write_fixture


def _answers(folder, kind):
    "problem_id -> the fixture's right or wrong response, for every benchmark written under `folder`."
    return {(name, f['problem_id']): f[kind] for name in BENCHMARKS for f in write_fixture(name, folder/name, n=3, seed=2)}


class _Scripted:
    "A stand-in for `evaluate.draw`: the scripted response of each record, and a log of the batches it saw."
    def __init__(self, answers, fail_after=None):
        self.answers, self.fail_after, self.batches = answers, fail_after, []
    def __call__(self, model, processor, records, protocol, seed=None):
        if self.fail_after is not None and len(self.batches) >= self.fail_after: raise KeyboardInterrupt('stopped by the test')
        self.batches.append([r['problem_id'] for r in records])
        return [[self.answers[(r['benchmark'], r['problem_id'])]] * protocol.n for r in records]


def _run(monkeypatch, tmp_path, draw, names=None, batch_size=2):
    monkeypatch.setattr(ev, 'draw', draw)
    monkeypatch.setattr(ev, 'load_policy', lambda path, device='auto': (None, None))   # no model: `draw` is scripted
    sources, missing = ev.open_sources(names or list(BENCHMARKS), tmp_path/'data')
    return ev.evaluate_models({'m': 'unused'}, sources, ev.make_protocol('paper', n_samples=2), tmp_path/'out',
                              missing=missing, batch_size=batch_size, progress=False)


@pytest.mark.parametrize('kind,expected', [('right', 1.0), ('wrong', 0.0)])
def test_every_benchmark_scores_its_fixture(monkeypatch, tmp_path, kind, expected):
    summary = _run(monkeypatch, tmp_path, _Scripted(_answers(tmp_path/'data', kind)))
    assert list(summary['source']) == list(BENCHMARKS) and (summary['status'] == 'ok').all()
    for r in summary.itertuples():
        assert r.score == pytest.approx(expected * BENCHMARKS[r.source].scale), r.source   # OCRBench reports out of 1000
        assert r.n >= (2 if r.source == 'MMBench' else 3) and r.malformed == 0   # MMBench: 3 records, 2 questions (circular)
        assert r.scoring.startswith('rule-based') and r.reference
    assert (tmp_path/'out'/'summary.csv').exists()


def test_missing_benchmark_is_not_run_and_the_others_run(monkeypatch, tmp_path, capsys):
    answers = {k: v for k, v in _answers(tmp_path/'data', 'right').items()}
    shutil.rmtree(tmp_path/'data'/'DocVQA')
    summary = _run(monkeypatch, tmp_path, _Scripted(answers), names=['ChartQA', 'DocVQA', 'RefCOCO'])
    row = summary[summary.source == 'DocVQA'].iloc[0]
    assert row.status == 'not run' and 'DocVQA' in row.reason and str(tmp_path/'data'/'DocVQA') in row.reason
    assert any(p in row.reason for p in BENCHMARKS['DocVQA'].files), row.reason   # names the files it expected
    assert list(summary[summary.status == 'ok'].source) == ['ChartQA', 'RefCOCO']


def test_interrupted_run_resumes_where_it_stopped(monkeypatch, tmp_path):
    answers = _answers(tmp_path/'data', 'right')
    first = _Scripted(answers, fail_after=2)
    with pytest.raises(KeyboardInterrupt):
        _run(monkeypatch, tmp_path, first, names=['AI2D'], batch_size=1)
    log = tmp_path/'out'/'m'/'AI2D.jsonl'
    done = [json.loads(l)['problem_id'] for l in log.read_text().splitlines()]
    assert done == [b[0] for b in first.batches] and len(done) == 2   # the two finished batches are on disk
    second = _Scripted(answers)
    summary = _run(monkeypatch, tmp_path, second, names=['AI2D'], batch_size=1)
    redone = [p for b in second.batches for p in b]
    assert not set(redone) & set(done) and len(redone) + len(done) == summary.iloc[0].n   # only the rest was generated
    assert summary.iloc[0].score == pytest.approx(100.0)


def test_malformed_records_are_counted_and_named(monkeypatch, tmp_path, capsys):
    answers = _answers(tmp_path/'data', 'right')
    f = next((tmp_path/'data'/'ChartQA').rglob('*.parquet'))
    rows = pq.read_table(f).to_pylist()
    rows[0]['answer'] = None                                                       # malformed at load
    rows[1]['image'] = {'bytes': b'\x89PNG\r\n\x1a\n not a png', 'path': 'x.png'}  # malformed when read
    pq.write_table(pa.Table.from_pylist(rows), f)
    summary = _run(monkeypatch, tmp_path, _Scripted(answers), names=['ChartQA'])
    row = summary.iloc[0]
    assert row.malformed == 2 and row.n == len(rows) - 2 and row.score == pytest.approx(100.0)
    out = capsys.readouterr().out
    assert 'ChartQA: 2 malformed record(s)' in out and 'row 0' in out and 'row 1' in out


def test_real_model_on_fixtures(tmp_path):
    "The embedded model through the whole harness on three benchmarks (multi-image MMMU, grounding, masks), greedy."
    for name in ('MMMU', 'RefCOCO', 'RefSpatial'): write_fixture(name, tmp_path/'data'/name, n=2)
    sources, missing = ev.open_sources(['MMMU', 'RefCOCO', 'RefSpatial'], tmp_path/'data', limit=2)
    assert not missing
    summary = ev.evaluate_models(ev.default_models('no_such_run'), sources, ev.make_protocol('greedy', max_new_tokens=8),
                                 tmp_path/'out', batch_size=4, progress=False)
    assert list(summary.source) == ['MMMU', 'RefCOCO', 'RefSpatial'] and (summary.n == 2).all()
    assert ((summary.score >= 0) & (summary.score <= 100)).all() and (summary.samples_per_s > 0).all()
    lines = [json.loads(l) for l in (tmp_path/'out'/'tiny-qwen3-vl'/'MMMU.jsonl').read_text().splitlines()]
    assert len(lines) == 2 and all(len(l['responses']) == 1 and isinstance(l['responses'][0], str) for l in lines)


def test_mmbench_summary_counts_questions(monkeypatch, tmp_path):
    "An 'always A' model: per record it would score 1/2 on the fixture; circularly it scores 0 of its 2 questions."
    write_fixture('MMBench', tmp_path/'data'/'MMBench', n=4, seed=2)
    summary = _run(monkeypatch, tmp_path, lambda model, processor, records, protocol, seed=None: [['<answer>A</answer>'] * protocol.n for _ in records],
                   names=['MMBench'])
    row = summary.iloc[0]
    assert (row.n, row.score) == (2, 0.0)
    lines = [json.loads(l) for l in (tmp_path/'out'/'m'/'MMBench.jsonl').read_text().splitlines()]
    assert [l['unit'] for l in lines] == ['100', '100', '101', '101'] and [l['score'] for l in lines] == [1.0, 0.0, 0.0, 1.0]
