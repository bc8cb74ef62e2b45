"The whole pipeline at smoke scale: `python -m openvlthinker_nb.reproduce --quick` runs every notebook, then skips them all."
import json, os, subprocess, sys
from openvlthinker_nb.paths import REPO_ROOT
from openvlthinker_nb.pipeline.reproduce import PIPELINE, step_params

QUICK = REPO_ROOT/'runs'/'quick'


def _git_status(*paths):
    return subprocess.run(['git', 'status', '--porcelain', '--', *paths], cwd=REPO_ROOT, capture_output=True, text=True).stdout


def _reproduce_quick():
    env = {**os.environ, 'MPLBACKEND': 'Agg', 'HF_HUB_OFFLINE': '1', 'TOKENIZERS_PARALLELISM': 'false'}
    env.pop('OPENVLTHINKER_FIGURES_DIR', None)
    return subprocess.run([sys.executable, '-m', 'openvlthinker_nb.reproduce', '--quick'], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=1200)


def test_reproduce_quick_runs_everything_then_nothing():
    before = _git_status('figures', 'README.md', 'data', 'nbs')
    first = _reproduce_quick()
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    steps = [s.name for s in PIPELINE if step_params(s, quick=True) is not None]
    for i, name in enumerate(steps, 1):
        line = f"[{i}/{len(steps)}] {name}: "
        assert line + 'done in' in first.stdout or line + 'up to date' in first.stdout, (name, first.stdout[-2000:])
        if (QUICK/'notebooks'/f'{name}.ipynb').exists() or line + 'done in' in first.stdout:
            assert (QUICK/'notebooks'/f'{name}.ipynb').exists(), name          # the executed copy is kept
    # every figure the derivation notebooks drew went to runs/quick/figures, with its maker in the manifest
    manifest = json.loads((QUICK/'figures'/'MANIFEST.json').read_text())
    assert 'advantage_distributions.png' in manifest and manifest['advantage_distributions.png']['step'] == '00_advantages'
    assert manifest['advantage_distributions.png']['code_version']['package_sha256']
    # the smoke-scale runs wrote their results under runs/quick, and the tables came from them
    assert (QUICK/'g2rpo_tiny'/'eval.json').exists() and (QUICK/'eval'/'summary.csv').exists()
    assert (QUICK/'ablations'/'grpo'/'seed0'/'eval.json').exists()
    for t in ('headroom', 'main_job_sampled', 'main_job_greedy', 'trials'):
        assert (QUICK/'tables'/f'{t}.md').exists(), t
    # nothing committed was touched
    assert _git_status('figures', 'README.md', 'data', 'nbs') == before
    # a second run finds everything up to date
    second = _reproduce_quick()
    assert second.returncode == 0, second.stdout[-2000:]
    assert second.stdout.count('up to date') == len(steps), second.stdout
    assert 'done in' not in second.stdout
