"""The comparison of G2RPO scopes (the released group_then_task, group, group_task_scaled): reads finished runs named <scope>_s<seed> under a folder (each one
`python -m openvlthinker_nb.train --overrides scope=<scope> seed=<seed> output_dir=<folder>/<scope>_s<seed> ...`) and
writes figures/tables/scope_comparison.csv and .md (run_tables.compare_runs: mean ± se over seeds).

    python tests/scope_comparison.py /work/runs25
"""
import argparse, json
from pathlib import Path
from openvlthinker_nb.report.paper_tables import to_markdown
from openvlthinker_nb.paths import FIGURES_DIR
from openvlthinker_nb.report.run_tables import compare_runs, _finished

def main(root:Path, out:Path):
    runs = sorted(p for p in root.glob('*_s[0-9]*') if p.is_dir())
    tab = compare_runs(runs)
    done = [r for r in runs if _finished(r)]
    cfg = json.loads((done[0]/'config.json').read_text())
    seeds = sorted({json.loads((r/'config.json').read_text())['seed'] for r in done})
    title = (f"**G2RPO scopes.** {cfg['max_steps']} RL steps of {cfg['batch_prompts']} prompts x {cfg['n']} responses "
             f"from {'data/tiny-qwen3-vl' if cfg['model'] == 'default' else cfg['model']}, lr {cfg['lr']:g}, seeds {seeds}; held-out: "
             f"{'all' if not cfg['eval_limit'] else 'first ' + str(cfg['eval_limit'])} test records per family; mean ± se over seeds "
             f"of each run's paired change (points), of each family's share of the update (task term, %) and of the share of wrong "
             f"answers (accuracy 0) whose advantage was positive (%, mean over steps).")
    out.mkdir(parents=True, exist_ok=True)
    flat = tab.reset_index()
    flat.to_csv(out/'scope_comparison.csv', index=False)
    md = flat.set_index(flat.columns[0])
    (out/'scope_comparison.md').write_text(to_markdown(md, title), encoding='utf-8')
    print(to_markdown(md, title))

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('root', type=Path, help='folder holding the <scope>_s<seed> run folders')
    ap.add_argument('--out', type=Path, default=FIGURES_DIR/'tables', help='where the table goes')
    a = ap.parse_args()
    main(a.root, a.out)
