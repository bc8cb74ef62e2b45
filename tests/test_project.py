"Project-level checks: the README's commands, CI and the generated README stay consistent."
import re, sys, configparser
from pathlib import Path
from openvlthinker_nb.paths import REPO_ROOT
from openvlthinker_nb.report.readme import notebook_to_markdown

README = (REPO_ROOT/'README.md').read_text(encoding='utf-8')

def _sh_blocks(text): return re.findall(r'```sh\n(.*?)\n```', text, flags=re.S)

def test_readme_has_two_setup_commands():
    blocks = _sh_blocks(README)
    assert len(blocks) == 2, blocks
    install, tests = blocks
    assert 'pip install -e ".[dev]"' in install and 'papermill nbs/' in install
    assert 'nbdev_test' in tests and 'pytest' in tests

def test_ci_runs_the_readme_test_command():
    test_cmd = _sh_blocks(README)[1].strip()
    ci = (REPO_ROOT/'.ci'/'run').read_text().splitlines()
    assert ci[-1].strip() == test_cmd, (ci[-1], test_cmd)

def test_readme_is_generated_from_index():
    assert notebook_to_markdown(REPO_ROOT/'nbs'/'index.ipynb') == README, "run: python -m openvlthinker_nb.report.readme"

def test_readme_figures_exist():
    for target in re.findall(r'!\[[^\]]*\]\(([^)]+)\)', README):
        assert (REPO_ROOT/target).exists(), f"README links a missing figure: {target}"

def test_settings_keep_cell_tags_and_pins():
    cfg = configparser.ConfigParser(); cfg.read(REPO_ROOT/'settings.ini')
    d = cfg['DEFAULT']
    assert d['allowed_cell_metadata_keys'].strip() == 'tags'   # papermill's `parameters` tag survives nbdev_clean
    assert 'slow' in d['tst_flags']
    assert 'nbdev==2.4.14' in d['dev_requirements'] and 'execnb==0.1.14' in d['dev_requirements']
    assert 'torch==2.15.0' in d['dev_requirements'] and 'torchvision==0.29.2' in d['dev_requirements']   # the main environment's pair
    assert 'torch==2.9.0' in d['xla_requirements'] and 'torch-xla==2.9.0' in d['xla_requirements']         # the XLA environment's
    assert 'torch-neuronx==2.9' in d['neuron_requirements'] and 'neuronx-cc' in d['neuron_requirements']
    assert d['vllm_requirements'].split() == ['vllm==0.33.0']   # CUDA; it pins its own torch 2.14.0 (the CPU build: tests/vllm_cpu/run.sh)


def test_paper_results_in_repo():
    "The paper's published numbers live in the repository (data/paper_results.csv), with the citation in data/README.md."
    import pandas as pd
    df = pd.read_csv(REPO_ROOT/'data'/'paper_results.csv')
    assert list(df.columns) == ['table', 'model', 'benchmark', 'score']
    assert set(df['table']) == {'t1', 't2a', 't2b', 't3', 't4'} and df['score'].notna().all()
    assert 'arXiv 2604.08539' in (REPO_ROOT/'data'/'README.md').read_text()


def test_notebooks_cite_nothing_outside_the_repo():
    for nb in (REPO_ROOT/'nbs').rglob('*.ipynb'):
        text = nb.read_text(encoding='utf-8')
        assert 'METHOD.md' not in text and '../shared' not in text, nb.name


def test_every_import_is_declared():
    "Every third-party module the package imports is a declared requirement (torch_xla, vllm: optional engines, found lazily)."
    import ast
    dist = {'PIL': 'pillow', 'yaml': 'pyyaml', 'math_verify': 'math-verify'}
    cfg = configparser.ConfigParser(); cfg.read(REPO_ROOT/'settings.ini')
    declared = {re.split(r'[<>=\[ ]', r)[0].lower() for r in cfg['DEFAULT']['requirements'].split()}
    stdlib, optional = set(sys.stdlib_module_names), {'torch_xla', 'vllm'}
    for py in (REPO_ROOT/'openvlthinker_nb').rglob('*.py'):
        for node in ast.walk(ast.parse(py.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 else []
            for n in names:
                top = n.split('.')[0]
                if top in stdlib or top in optional or top == 'openvlthinker_nb': continue
                assert dist.get(top, top).lower() in declared, f"{py.name} imports {top}, which settings.ini's requirements do not declare"


def test_notebooks_stay_small():
    "Library notebooks keep their (small) outputs so they read without running; none is over 1 MB."
    sizes = {nb.name: nb.stat().st_size for nb in (REPO_ROOT/'nbs').rglob('*.ipynb')}
    assert max(sizes.values()) < 1_000_000, sizes
