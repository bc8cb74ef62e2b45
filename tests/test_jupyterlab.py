"JupyterLab, where the kit's users read and edit the notebooks, starts headless and serves the main job's notebook."
import json, os, secrets, socket, subprocess, sys, time, urllib.request, urllib.error
from openvlthinker_nb.paths import REPO_ROOT


def _free_port()->int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]


def test_jupyterlab_serves_the_train_notebook(tmp_path):
    port, token = _free_port(), secrets.token_hex(16)
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(tmp_path/'config'), JUPYTER_DATA_DIR=str(tmp_path/'data'),
               JUPYTER_RUNTIME_DIR=str(tmp_path/'runtime'))
    cmd = [sys.executable, '-m', 'jupyterlab', '--no-browser', '--ip=127.0.0.1', f'--port={port}', f'--IdentityProvider.token={token}',
           f'--ServerApp.root_dir={REPO_ROOT}', '--ServerApp.port_retries=0', '--allow-root']
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f'http://127.0.0.1:{port}/api/contents/nbs/05_train.ipynb?token={token}'
    try:
        deadline, body = time.time() + 90, None
        while time.time() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(url, timeout=5) as r: body = json.loads(r.read()); break
            except (urllib.error.URLError, ConnectionError): time.sleep(0.5)
        assert body is not None, f"JupyterLab did not answer on port {port}: {proc.stdout.read1().decode() if proc.poll() is not None else 'still starting'}"
        assert body['type'] == 'notebook' and body['path'] == 'nbs/05_train.ipynb'
        cells = body['content']['cells']
        assert any('parameters' in c['metadata'].get('tags', []) for c in cells)   # papermill's parameters cell survives
        with urllib.request.urlopen(f'http://127.0.0.1:{port}/lab?token={token}', timeout=10) as r: assert r.status == 200
    finally:
        proc.terminate()
        try: proc.wait(timeout=20)
        except subprocess.TimeoutExpired: proc.kill(); proc.wait()
    assert proc.returncode is not None
