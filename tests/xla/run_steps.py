"3 RL steps of the main job's configuration on one device; prints one JSON line (metrics per step, compile counts)."
import json, os, sys, time
from openvlthinker_nb.train import train
from openvlthinker_nb.trainer.config import TrainConfig
from openvlthinker_nb import xla

device, out, steps = sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 3
compiles = []
t0 = time.time()
res = train(TrainConfig(device=device, max_steps=steps, output_dir=out, eval_limit=1, eval_k=0, progress=False, copy_figures=False, save_every=0),
            on_step=lambda s, m: compiles.append(xla.compile_count()))
metrics = [json.loads(l) for l in open(os.path.join(res['output_dir'], 'metrics.jsonl'))]
print('RESULT ' + json.dumps({'device': device, 'compiles': compiles, 'metrics': metrics, 'before': res['before'], 'after': res['after'],
                              'seconds': time.time() - t0}))
