"""JupyterLab, where the kit's users read and edit the notebooks: it starts headless, serves the main job's notebook, and,
with nbdev's hooks installed (`nbdev_install_hooks`, as the README says), saving a notebook as JupyterLab does leaves git clean."""
import json, os, secrets, shutil, socket, subprocess, sys, time, urllib.request, urllib.error
import pytest
from openvlthinker_nb.paths import REPO_ROOT


def _free_port()->int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]


@pytest.fixture(scope='module')
def lab(tmp_path_factory):
    "A headless JupyterLab on the repository, its user configuration (a temporary HOME) holding nbdev's save hook."
    home = tmp_path_factory.mktemp('home')
    env = dict(os.environ, HOME=str(home), JUPYTER_CONFIG_DIR=str(home/'.jupyter'), JUPYTER_DATA_DIR=str(home/'data'),
               JUPYTER_RUNTIME_DIR=str(home/'runtime'))
    hooks = subprocess.run([shutil.which('nbdev_install_hooks', path=os.path.dirname(sys.executable)) or 'nbdev_install_hooks'],
                           cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    assert hooks.returncode == 0, hooks.stderr
    port, token = _free_port(), secrets.token_hex(16)
    cmd = [sys.executable, '-m', 'jupyterlab', '--no-browser', '--ip=127.0.0.1', f'--port={port}', f'--IdentityProvider.token={token}',
           f'--ServerApp.root_dir={REPO_ROOT}', '--ServerApp.port_retries=0', '--allow-root']
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f'http://127.0.0.1:{port}'
    try:
        deadline = time.time() + 90
        while time.time() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f'{base}/api/status?token={token}', timeout=5): break
            except (urllib.error.URLError, ConnectionError): time.sleep(0.5)
        else: pytest.fail(f"JupyterLab did not answer on port {port}: {proc.stdout.read1().decode() if proc.poll() is not None else 'still starting'}")
        yield base, token
    finally:
        proc.terminate()
        try: proc.wait(timeout=20)
        except subprocess.TimeoutExpired: proc.kill(); proc.wait()


def _api(lab, path, body=None):
    base, token = lab
    req = urllib.request.Request(f'{base}/api/contents/{path}', method='PUT' if body is not None else 'GET',
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={'Authorization': f'token {token}', 'Content-Type': 'application/json'})
    with urllib.request.urlopen(req, timeout=30) as r: return json.loads(r.read())


def test_jupyterlab_serves_the_train_notebook(lab):
    body = _api(lab, 'nbs/05_train.ipynb')
    assert body['type'] == 'notebook' and body['path'] == 'nbs/05_train.ipynb'
    cells = body['content']['cells']
    assert any('parameters' in c['metadata'].get('tags', []) for c in cells)   # papermill's parameters cell survives
    with urllib.request.urlopen(f'{lab[0]}/lab?token={lab[1]}', timeout=10) as r: assert r.status == 200


@pytest.mark.parametrize('nb', ['nbs/05_train.ipynb', 'nbs/api/02_algos/00_advantages.ipynb'])
def test_saving_as_jupyterlab_does_changes_nothing(lab, nb):
    "JupyterLab rewrites the kernelspec's display name and adds language_info when it opens a notebook; the save hook undoes both."
    before = (REPO_ROOT/nb).read_bytes()
    model = _api(lab, nb)['content']
    model['metadata']['kernelspec'] = {'display_name': 'Python 3 (ipykernel)', 'language': 'python', 'name': 'python3'}
    model['metadata']['language_info'] = {'codemirror_mode': {'name': 'ipython', 'version': 3}, 'file_extension': '.py',
                                          'mimetype': 'text/x-python', 'name': 'python', 'nbconvert_exporter': 'python',
                                          'pygments_lexer': 'ipython3', 'version': '3.11.2'}
    for c in model['cells']:
        if c['cell_type'] == 'code': c['execution_count'] = 7   # and a run leaves execution counts
    try:
        _api(lab, nb, {'type': 'notebook', 'format': 'json', 'content': model})
        after = (REPO_ROOT/nb).read_bytes()
    finally: (REPO_ROOT/nb).write_bytes(before)
    assert after == before, f"saving {nb} through JupyterLab changed it: {len(before)} -> {len(after)} bytes"
