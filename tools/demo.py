# The main job in one command (`make demo`): convert the YOLOv5n checkpoint,
# evaluate it, and print a table.  Stage I / Stage II steps are added here as
# they land (see README).
import argparse
import json
import os
import os.path as osp
import subprocess
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)

from mmzsq.utils.assets import coco_val_root, yolov5n_checkpoint  # noqa


def run_tool(args, env=None):
    cmd = [sys.executable] + args
    print('+', ' '.join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT, env={**os.environ, **(env or {})})


def last_metrics(work_dir):
    runs = sorted(d for d in os.listdir(work_dir)
                  if osp.isfile(osp.join(work_dir, d, f'{d}.json')))
    with open(osp.join(work_dir, runs[-1], f'{runs[-1]}.json')) as f:
        return json.load(f)


def main():
    p = argparse.ArgumentParser(description='mmzsq demo on YOLOv5n')
    p.add_argument('--checkpoint', help='Ultralytics yolov5n.pt (v6.1)')
    p.add_argument('--coco-root', help='COCO-format val folder')
    p.add_argument('--work-dir', default='work_dirs/demo')
    args = p.parse_args()
    os.makedirs(args.work_dir, exist_ok=True)
    try:
        pt = yolov5n_checkpoint(args.checkpoint,
                                osp.join(args.work_dir, 'weights'))
        coco = coco_val_root(args.coco_root)
    except (FileNotFoundError, RuntimeError) as e:
        sys.exit(f'error: {e}')
    fp_ckpt = osp.join(args.work_dir, 'yolov5n_fp.pth')
    t0 = time.time()
    run_tool(['tools/model_converters/yolov5_to_mmyolo.py', pt, fp_ckpt])
    rows = []
    if coco is None:
        print('no COCO val folder found: evaluation skipped '
              '(give --coco-root or $MMZSQ_COCO_ROOT)')
    else:
        wd = osp.join(args.work_dir, 'eval_fp')
        run_tool(['tools/test.py', 'configs/yolov5/yolov5_n-v61_fp_coco.py',
                  fp_ckpt, '--work-dir', wd], env=dict(MMZSQ_COCO_ROOT=coco))
        m = last_metrics(wd)
        rows.append(('FP32', m['coco/bbox_mAP'], m['coco/bbox_mAP_50'],
                     osp.getsize(fp_ckpt) / 2**20, time.time() - t0))
    print('\n| model | mAP | mAP50 | size (MiB) | time (s) |')
    print('|---|---|---|---|---|')
    for name, ap, ap50, size, sec in rows:
        print(f'| {name} | {ap:.3f} | {ap50:.3f} | {size:.1f} | {sec:.0f} |')


if __name__ == '__main__':
    main()
