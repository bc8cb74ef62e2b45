"""The kit's benchmark scorers against lmms-eval 0.7.3's own scoring functions on the same generated cases.

Run by `bash tests/harness/run.sh` (it sets HARNESS_PYTHON to the lean environment that has lmms-eval); skipped
otherwise. Each family must agree on at least 99 % of its cases; the table of agreement is printed.
"""
import json, os, subprocess, sys
from pathlib import Path
import pytest
sys.path.insert(0, str(Path(__file__).parent))
from harness_cases import all_cases
from openvlthinker_nb.eval.scorers import anls, relaxed_accuracy, ocrbench_contains
from openvlthinker_nb.eval.benchmarks.options import mmmu_option
from openvlthinker_nb.eval.benchmarks.scoring import mmmu_open_match, mathvista_quick_extract, mathvista_match
from openvlthinker_nb.eval.benchmarks.registry import LMMS_EVAL_REASONING_TAGS
from openvlthinker_nb.tasks.rewards import extract_answer

HARNESS = os.environ.get('HARNESS_PYTHON')
pytestmark = pytest.mark.skipif(not HARNESS, reason='needs lmms-eval in a lean environment: bash tests/harness/run.sh')

def _mathvista(c):
    "The kit's MathVista score where lmms-eval decides without its judge; None where lmms-eval would ask it."
    x = mathvista_quick_extract(c['pred'].strip(), c['meta'])
    return None if x is None else mathvista_match(x, c['meta'], c['answer'])

KIT = {'anls': (lambda c: anls(c['pred'], c['refs']), 'ANLS (DocVQA, InfoVQA)'),
       'relaxed': (lambda c: relaxed_accuracy(c['pred'], c['refs']), 'relaxed accuracy (ChartQA)'),
       'ocrbench': (lambda c: ocrbench_contains(c['pred'], c['refs']), 'containment (OCRBench)'),
       'option': (lambda c: mmmu_option(c['pred'], c['choices']), 'option letter (MMMU)'),
       'mmmu_open': (lambda c: mmmu_open_match(c['pred'], c['refs']), 'open answers (MMMU)'),
       'mathvista': (_mathvista, 'MathVista without the judge'),
       'response': (lambda c: extract_answer(c['response']), 'kit response -> scored text')}

def _same(a, b): return a == b or (isinstance(a, float) and isinstance(b, (int, float)) and abs(a - b) < 1e-9)

@pytest.fixture(scope='module')
def scored():
    cases = {k: v for k, v in all_cases(seed=0, n=400).items() if k in KIT}
    out = subprocess.run([HARNESS, str(Path(__file__).parent/'lmms_scores.py')], input=json.dumps({'reasoning_tags': LMMS_EVAL_REASONING_TAGS, 'cases': cases}), capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return cases, json.loads(out.stdout)

@pytest.mark.parametrize('family', list(KIT))
def test_agrees_with_lmms_eval(scored, family):
    cases, ref = scored
    fn, label = KIT[family]
    kit = [fn(c) for c in cases[family]]
    diff = [(c['pred'], k, r) for c, k, r in zip(cases[family], kit, ref[family]) if not _same(k, r)]
    share = 1 - len(diff) / len(kit)
    print(f"\n{label:32s} {len(kit):5d} cases  agreement with lmms-eval 0.7.3: {100 * share:6.2f} %")
    assert share >= .99, diff[:10]
