"Project-level checks: the README's commands, CI and the generated README stay consistent."
import re, configparser
from pathlib import Path
from openvlthinker_nb.paths import REPO_ROOT
from openvlthinker_nb.readme import notebook_to_markdown

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
    assert notebook_to_markdown(REPO_ROOT/'nbs'/'index.ipynb') == README, "run: python -m openvlthinker_nb.readme"

def test_readme_figures_exist():
    for target in re.findall(r'!\[[^\]]*\]\(([^)]+)\)', README):
        assert (REPO_ROOT/target).exists(), f"README links a missing figure: {target}"

def test_settings_keep_cell_tags_and_pins():
    cfg = configparser.ConfigParser(); cfg.read(REPO_ROOT/'settings.ini')
    d = cfg['DEFAULT']
    assert d['allowed_cell_metadata_keys'].strip() == 'tags'   # papermill's `parameters` tag survives nbdev_clean
    assert 'slow' in d['tst_flags']
    assert 'nbdev==2.4.14' in d['dev_requirements'] and 'execnb==0.1.14' in d['dev_requirements']
    assert 'torch==' in d['requirements'] and 'torchvision==' in d['requirements']
