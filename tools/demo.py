# The main job in one command (`make demo`): from the official YOLOv5n
# checkpoint alone, synthesise a small task-specific calibration set (Stage I,
# adaptive label sampling), quantize to W8A8 and W4A8 on it (Stage II: PTQ of
# the step sizes, then LSQ QAT with distillation), evaluate float and
# quantized models, print a table and
# draw the synthetic images and their label statistics.
#   python tools/demo.py [--checkpoint yolov5n.pt] [--coco-root DIR]
# Weights: --checkpoint, $MMZSQ_YOLOV5N, ../shared/weights/yolov5n-v6.1.pt,
# else the official release asset is downloaded.  Eval set: --coco-root,
# $MMZSQ_COCO_ROOT, ../shared/data/coco_tiny_val2017; without one the models
# are still quantized and evaluation is skipped.  A rerun resumes.
import argparse
import os.path as osp
import subprocess
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)

from tools._common import import_mmzsq  # noqa: E402

import_mmzsq()

from tools._common.assets import coco_val_root, shared_path  # noqa: E402
from tools._common.experiment import (PRESETS, Experiment,  # noqa: E402
                                      model_size_mib, sh)


def main():
    p = argparse.ArgumentParser(description='mmzsq demo on YOLOv5n')
    p.add_argument('--checkpoint', help='Ultralytics yolov5n.pt (v6.1)')
    p.add_argument('--coco-root', help='COCO-format val folder')
    p.add_argument('--work-dir', default='work_dirs/demo')
    p.add_argument('--preset', default='demo', choices=list(PRESETS))
    p.add_argument('--bits', nargs='+', default=['w8a8', 'w4a8'])
    args = p.parse_args()
    t0 = time.time()
    try:
        coco = coco_val_root(args.coco_root)
        exp = Experiment(PRESETS[args.preset], args.work_dir, coco,
                         args.checkpoint)
    except (FileNotFoundError, RuntimeError) as e:
        sys.exit(f'error: {e}')
    if coco is None:
        print('no COCO val folder found (--coco-root / $MMZSQ_COCO_ROOT): '
              'quantizing without evaluation')
    steps = 2 + 2 * len(args.bits)
    print(f'[1/{steps}] float YOLOv5n', flush=True)
    rows = [('FP32', exp.fp(), model_size_mib(exp.fp_ckpt), time.time() - t0)]
    print(f'[2/{steps}] Stage I: synthetic calibration set', flush=True)
    t = time.time()
    stats = exp.synthesize('als')
    set_dir = exp.set_dir('als')
    pictures(set_dir, exp.wd)
    print(f'    {stats["images"]} images, {stats["boxes_per_image"]:.2f} '
          f'boxes/image, {stats["classes"]} classes, '
          f'{stats["img_iter_per_s"]:.1f} image-iterations/s, '
          f'{time.time() - t:.0f} s', flush=True)
    step = 3
    for bits in args.bits:
        # PTQ on the same set first: what QAT adds is the difference
        for method, what in (('ptq', 'PTQ (step sizes only)'),
                             ('zsq', 'zero-shot QAT')):
            print(f'[{step}/{steps}] Stage II: {bits.upper()} {what}',
                  flush=True)
            step += 1
            t = time.time()
            r = exp.quantize(method, bits)
            rows.append((f'{bits.upper()} {method.upper()}',
                         r if 'mAP' in r else None,
                         model_size_mib(r['checkpoint']), time.time() - t))
    print('\n| model | mAP | mAP50 | size (MiB) | time (s) |')
    print('|---|---|---|---|---|')
    for name, m, size, sec in rows:
        ap = f'{m["mAP"]:.3f} | {m["mAP50"]:.3f}' if m else 'skipped | skipped'
        print(f'| {name} | {ap} | {size:.2f} | {sec:.0f} |')
    print(f'\ntotal {time.time() - t0:.0f} s; work dir {exp.wd} (pictures: '
          'synthetic_grid.png, label_*.png)')


def pictures(set_dir, out_dir):
    """Synthetic images with their labels, and label statistics (PNG)."""
    ref = shared_path('data', 'coco128', 'annotations',
                      'instances_train2017.json')
    try:
        sh(['tools/analysis/browse_synthetic.py', set_dir, '--out',
            osp.join(out_dir, 'synthetic_grid.png')],
           osp.join(out_dir, 'logs', 'browse.log'))
        sh(['tools/analysis/label_distribution.py', set_dir, '--out', out_dir]
           + (['--ref', ref] if osp.isfile(ref) else []),
           osp.join(out_dir, 'logs', 'label_distribution.log'))
    except (RuntimeError, subprocess.SubprocessError) as e:
        print(f'    (pictures skipped: {str(e).splitlines()[0]})')


if __name__ == '__main__':
    main()
