"""Scores of lmms-eval 0.7.3's own scoring functions on the differential cases (run inside the lean harness venv).

Reads {'reasoning_tags': CLI value, 'cases': {family: [case, ...]}} as JSON on stdin, writes {family: [score, ...]} on stdout. Only lmms-eval's scoring
functions are imported; the modules around them that pull in its model and API stack are replaced by stubs.
"""
import json, random, sys, types, pathlib
import lmms_eval

def _stub_imports():
    "Register bare package shells and no-op stand-ins so lmms-eval's task utilities import without its heavy stack."
    root = pathlib.Path(lmms_eval.__file__).parent
    for name, sub in (('lmms_eval.tasks', 'tasks'), ('lmms_eval.api', 'api')):
        m = types.ModuleType(name); m.__path__ = [str(root/sub)]; sys.modules[name] = m
    reg = types.ModuleType('lmms_eval.api.registry')
    reg.register_aggregation = reg.register_metric = lambda *a, **k: (lambda f: f)
    sys.modules['lmms_eval.api.registry'] = reg
    sys.modules['sacrebleu'] = types.ModuleType('sacrebleu')
    judge = types.ModuleType('lmms_eval.llm_judge')
    judge.Request = judge.ServerConfig = lambda *a, **k: None
    judge.get_server = lambda **k: None
    sys.modules['lmms_eval.llm_judge'] = judge

_stub_imports()
from lmms_eval.api.metrics import anls
from lmms_eval.tasks.chartqa.utils import relaxed_correctness
from lmms_eval.tasks.ocrbench.utils import ocrbench_process_results
from lmms_eval.tasks._task_utils import mmmu_mcq_utils
from lmms_eval.tasks.mmmu.utils import parse_multi_choice_response, parse_open_response, eval_multi_choice, eval_open
from lmms_eval.tasks.mathvista.mathvista_evals import MathVistaEvaluator
from lmms_eval.api.reasoning import strip_reasoning_tags, parse_reasoning_tags_config

class _NoGuess:
    "In place of `random`: the MMMU parser's random guess becomes a sentinel that never matches."
    @staticmethod
    def choice(seq): return '<guess>'
mmmu_mcq_utils.random = _NoGuess

def mathvista(c):
    "lmms-eval's MathVista path without its judge: quick extraction, normalisation, safe_equal (None where it would call the judge)."
    ev, m = MathVistaEvaluator(), c['meta']
    prob = {**m, 'query': '', 'answer': c['answer']}
    resp = c['pred'].strip()
    if not resp: ext = ''
    elif m['question_type'] == 'multi_choice' and resp in m['choices']: ext = resp
    else:
        ext = None
        for kind, conv in (('integer', lambda s: str(int(s))), ('float', lambda s: str(float(s)))):
            if m['answer_type'] == kind:
                try: ext = conv(resp)
                except ValueError: pass
        if ext is None: return None
    prec = int(m['precision']) if m['precision'] is not None else 0   # int: their round(x, 2.0) raises on the published float64
    return float(ev.safe_equal(ev.normalize_extracted_answer(ext, m['choices'], m['question_type'], m['answer_type'], prec), c['answer']))

SCORERS = {
    'anls': lambda c: anls(c['refs'], [c['pred']])['anls'],
    'relaxed': lambda c: float(any(relaxed_correctness(c['pred'].strip(), r) for r in c['refs'])),
    'ocrbench': lambda c: float(ocrbench_process_results({'answer': c['refs'], 'dataset': 'IIIT5K', 'question_type': 'x'}, [c['pred']])['ocrbench_accuracy']['score']),
    'option': lambda c: (lambda p: None if p == '<guess>' else p)(parse_multi_choice_response(c['pred'], list(c['choices']), c['choices'])),
    'mmmu_open': lambda c: float(eval_open(c['refs'], parse_open_response(c['pred']))),
    'mathvista': mathvista,
    'response': lambda c: strip_reasoning_tags(c['response'], parse_reasoning_tags_config(cli_value=TAGS)),
}

if __name__ == '__main__':
    payload = json.load(sys.stdin)
    TAGS, cases = payload['reasoning_tags'], payload['cases']
    json.dump({k: [SCORERS[k](c) for c in v] for k, v in cases.items() if k in SCORERS}, sys.stdout)
