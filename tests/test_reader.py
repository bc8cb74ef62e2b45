"""What a reader of the experiment notebooks sees: parameters cells papermill parses, one live progress line in the
terminal running papermill, and executed notebooks without warnings or per-step floods."""
import json, logging, os, subprocess, sys
import nbformat
import papermill as pm
import pytest
from openvlthinker_nb.paths import REPO_ROOT

EXPERIMENTS = ['05_train', '06_eval', '07_ablations', '07b_lab', '08_results']
NOISE = ('TqdmWarning', 'IProgress not found', 'without encryption')


@pytest.mark.parametrize('name', EXPERIMENTS + ['api/04_trainer/08_sft', 'api/02_algos/00_advantages'])
def test_parameters_cell_parses(name, caplog):
    "papermill reads every parameter's name and default (a semicolon in a comment once made it skip the line and warn)."
    path = REPO_ROOT/'nbs'/f'{name}.ipynb'
    with caplog.at_level(logging.WARNING, logger='papermill'):
        params = pm.inspect_notebook(str(path))
    assert not [r.getMessage() for r in caplog.records], f"{path}: papermill could not parse its parameters cell"
    cell = next(c for c in nbformat.read(path, as_version=4).cells if 'parameters' in c.metadata.get('tags', []))
    names = [l.split('=')[0].strip() for l in cell.source.splitlines() if '=' in l and not l.lstrip().startswith('#')]
    assert sorted(params) == sorted(names), f"{path}: papermill sees {sorted(params)}, the cell sets {sorted(names)}"


def test_papermill_shows_one_live_line(tmp_path):
    "The kit's progress line reaches the terminal running papermill, and the executed notebook keeps only its last state."
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import time\nfrom openvlthinker_nb.progress import Progress\n"
                                          "with Progress(6, 'RL steps', every=0.) as p:\n"
                                          "    for i in range(6): time.sleep(0.05); p.update(1, reward=i / 10)")]
    nb.metadata['kernelspec'] = {'name': 'python3', 'display_name': 'python3', 'language': 'python'}
    src, out = tmp_path/'in.ipynb', tmp_path/'out.ipynb'
    nbformat.write(nb, src)
    env = {k: v for k, v in os.environ.items() if k != 'PYTEST_CURRENT_TEST'}   # ipykernel leaves stderr alone under pytest
    r = subprocess.run([sys.executable, '-m', 'papermill', str(src), str(out)], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    assert 'RL steps 3/6 (50%) reward 0.200' in r.stderr and 'RL steps 6/6 (100%) reward 0.500' in r.stderr, r.stderr
    assert not any(n in r.stderr for n in NOISE), r.stderr
    outputs = nbformat.read(out, as_version=4).cells[0].outputs
    assert len(outputs) == 1 and outputs[0].output_type == 'display_data', outputs
    assert outputs[0].data['text/plain'].startswith('RL steps 6/6 (100%) reward 0.500 | '), outputs


@pytest.mark.parametrize('name', EXPERIMENTS)
def test_committed_outputs_are_clean(name):
    "Committed experiment notebooks carry no widget warnings, no embedded images and no per-step stderr floods."
    nb = nbformat.read(REPO_ROOT/'nbs'/f'{name}.ipynb', as_version=4)
    outs = [o for c in nb.cells if c.cell_type == 'code' for o in c.outputs]
    text = json.dumps(outs)
    assert not any(n in text for n in NOISE), f"{name}: warnings in its outputs"
    assert not any('image/png' in o.get('data', {}) for o in outs), f"{name}: an embedded image (show figures with paths.show_figure)"
    assert sum(o.output_type == 'stream' and o.name == 'stderr' for o in outs) <= 5, f"{name}: stderr floods its outputs"


# Each experiment notebook committed with outputs, and the tables under figures/tables/ the same run wrote (columns compared).
COMMITTED_RUNS = {
    '05_train': [('main_job_sampled.csv', ['before', 'after', 'change (points)']), ('main_job_greedy.csv', ['before', 'after', 'change (points)'])],
    '06_eval': [('eval_synthetic.csv', None)],
    '07_ablations': [(f'ablation_{t}.csv', None) for t in ('sampled', 'greedy', 'grad_share', 'vs_paper_t4', 'power')],
    '07b_lab': [(f'lab_{t}.csv', None) for t in ('final_accuracy', 'grad_share', 'wrong_positive', 'symmetry', 'steps_to_target')],
    '08_results': [(f'{t}.csv', None) for t in ('headroom', 'main_job_sampled', 'main_job_greedy', 'trials')],
}


def _cells(csv, cols):
    import pandas as pd
    tab = pd.read_csv(REPO_ROOT/'figures'/'tables'/csv, index_col=0, dtype=str)
    return [(str(i), c, str(v).replace('+', '')) for i, row in tab[cols or list(tab.columns)].iterrows() for c, v in row.items() if pd.notna(v)]


@pytest.mark.parametrize('name', sorted(COMMITTED_RUNS))
def test_committed_outputs_agree_with_tables(name):
    "The executed notebook shows the numbers of the tables its run wrote: every cell of each table appears in its outputs."
    nb = nbformat.read(REPO_ROOT/'nbs'/f'{name}.ipynb', as_version=4)
    text = ' '.join(str(v) for c in nb.cells if c.cell_type == 'code' for o in c.outputs
                    for v in ([o.get('text', '')] + list(o.get('data', {}).values()))).replace('+', '')
    assert text.strip(), f"nbs/{name}.ipynb has no outputs: commit it executed (papermill nbs/{name}.ipynb nbs/{name}.ipynb --cwd nbs)"
    for csv, cols in COMMITTED_RUNS[name]:
        missing = [(r, c, v) for r, c, v in _cells(csv, cols) if v not in text]
        assert not missing, f"nbs/{name}.ipynb does not show these cells of figures/tables/{csv}: {missing[:5]}"
