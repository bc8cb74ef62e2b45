"Checks of openvlthinker_nb.algos.advantages that are awkward inside the notebook: contract, structure, dtypes, the benchmark."
import ast, importlib.util, inspect, subprocess, sys, textwrap
import pytest, torch
from openvlthinker_nb.algos import advantages as adv
from openvlthinker_nb.paths import REPO_ROOT

BENCH = REPO_ROOT/'tests'/'bench_advantages.py'

def _load_bench():
    spec = importlib.util.spec_from_file_location('bench_advantages', BENCH)
    mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
    return mod

def test_registry_and_signatures_match_the_contract():
    assert list(adv.ADVANTAGES) == ['grpo', 'dr_grpo', 'gdpo', 'g2rpo']
    assert list(adv.SCOPES) == ['task', 'group', 'group_then_task', 'group_task_scaled']
    assert all(list(inspect.signature(f).parameters) == ['b'] for f in adv.ADVANTAGES.values())   # one signature: (AdvantageBatch)
    params = {k: inspect.signature(getattr(adv, k)).parameters for k in adv.ADVANTAGES}
    assert list(params['grpo'])[:3] == ['rewards', 'group_ids', 'eps'] and params['grpo']['eps'].default == 1e-6
    assert list(params['dr_grpo']) == ['rewards', 'group_ids']
    assert list(params['gdpo'])[:3] == ['components', 'group_ids', 'weights'] and params['gdpo']['weights'].default is None
    assert list(params['g2rpo']) == ['rewards', 'group_ids', 'task_ids', 'scope']
    assert params['g2rpo']['scope'].default == 'group_then_task'
    assert not any(p.kind == p.VAR_KEYWORD for ps in params.values() for p in ps.values())   # no **kwargs

# the estimators and their helpers must stay vectorized: no Python loop (for/while/comprehension) in their bodies
VECTORIZED = ['grpo', 'dr_grpo', 'gdpo', 'g2rpo', '_standardize', '_index', '_value_key', '_tie_blocks', '_grid_means',
              '_rank_scores', '_in_sets', '_scope_task', '_scope_group', '_scope_group_then_task', '_scope_group_task_scaled']
LOOPS = (ast.For, ast.While, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)

@pytest.mark.parametrize('name', VECTORIZED)
def test_no_python_loop_in_the_estimators(name):
    tree = ast.parse(textwrap.dedent(inspect.getsource(getattr(adv, name))))
    loops = [type(n).__name__ for n in ast.walk(tree) if isinstance(n, LOOPS)]
    assert not loops, f'{name} contains {loops}'

@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_every_estimator_keeps_dtype_and_shape(dtype):
    b = adv.simulate_batch(n_groups=36, group_size=5, seed=2)
    r, c, g, t = b['rewards'].to(dtype), b['components'].to(dtype), b['group_ids'], b['task_ids']
    outs = [adv.grpo(r, g), adv.dr_grpo(r, g), adv.gdpo(c, g)] + [adv.g2rpo(r, g, t, sc) for sc in adv.SCOPES]
    for a in outs:
        assert a.dtype == dtype and a.shape == r.shape and a.device == r.device
        assert torch.isfinite(a).all()

def test_g2rpo_is_equivariant_under_shuffling_and_relabelling():
    b = adv.simulate_batch(n_groups=60, group_size=6, seed=5)
    r, g, t = b['rewards'], b['group_ids'], b['task_ids']
    perm = torch.randperm(r.numel(), generator=torch.Generator().manual_seed(0))
    for sc in adv.SCOPES:
        a = adv.g2rpo(r, g, t, sc)
        # shuffle the batch and rename every group and task (order-reversing renames, huge ids): same advantages
        b2 = adv.g2rpo(r[perm], -g[perm]*10**9, 7 - 3*t[perm], sc)
        torch.testing.assert_close(b2, a[perm], rtol=0, atol=1e-6)

def test_library_import_stays_light():
    code = ("import sys, openvlthinker_nb.algos.advantages; "
            "print(sorted(m for m in ('matplotlib', 'hypothesis', 'pandas', 'seaborn') if m in sys.modules))")
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == '[]', out.stdout

def test_benchmark_runs_at_a_tiny_size_and_agrees_with_the_loop():
    res = _load_bench().run_benchmark(n_groups=48, group_size=4, n_tasks=3, repeats=2, loop_repeats=1)
    assert res['B'] == 192 and res['n_tasks'] == 3
    assert res['max_abs_diff'] < 1e-6
    assert min(res['g2rpo_s'], res['loop_s'], res['sort_s']) > 0
    assert res['speedup_vs_loop'] == pytest.approx(res['loop_s'] / res['g2rpo_s'])

def test_benchmark_command_line_prints_the_ratios():
    out = subprocess.run([sys.executable, str(BENCH), '--n-groups', '30', '--group-size', '4', '--repeats', '2',
                          '--loop-repeats', '1'], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert 'faster than the loop' in out.stdout and 'one sort' in out.stdout and 'B=120' in out.stdout
