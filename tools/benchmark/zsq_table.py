# The paper's comparison on what we can run: one detector, several
# bit-widths, side by side (FP, PTQ on synthetic data, LSQ on N real images,
# ZSQ without L_detect, ZSQ with Tile / MultiSample labels, ZSQ with adaptive
# label sampling), same image count N, same QAT iterations, same val set.
#
#   python tools/benchmark/zsq_table.py --preset cpu-small
#   python tools/benchmark/zsq_table.py --preset gpu --bits w8a8 w4a8
#
# Every run is a short generated config that `_base_`s the shipped one
# (configs/zsq/yolov5_n_*.py), executed through tools/synthesize.py,
# tools/train.py and tools/test.py, so the table measures exactly what users
# run.  Finished steps are skipped on a rerun (results.json is the record).
# Output: <work-dir>/table.md and <work-dir>/results.json.
import argparse
import datetime
import os
import os.path as osp
import platform
import subprocess
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(
    __file__)))))

from tools._common import import_mmzsq  # noqa: E402

import_mmzsq()

from tools._common.assets import coco_val_root, shared_path  # noqa: E402
from tools._common.experiment import (METHOD_NAMES, METHODS,  # noqa: E402
                                      PRESETS, ROOT, SWITCH_SETS,
                                      Experiment)


def main():
    ap = argparse.ArgumentParser(description='ZSQ side-by-side table')
    ap.add_argument('--preset', choices=list(PRESETS), default='cpu-small')
    ap.add_argument('--bits', nargs='+',
                    default=['w8a8', 'w6a6', 'w4a8', 'w4a4'])
    # default: the paper's table; the [Beyond] switches on request
    ap.add_argument('--methods', nargs='+', default=[
        m for m in METHODS if m not in SWITCH_SETS], choices=METHODS)
    ap.add_argument('--checkpoint', help='Ultralytics yolov5n.pt (v6.1)')
    ap.add_argument('--coco-root', help='COCO val folder for mAP')
    ap.add_argument('--real-root', default=shared_path('data', 'coco128'),
                    help='COCO-format train folder for LSQ real-N')
    ap.add_argument('--seeds', nargs='+', type=int, default=[0],
                    help='Stage II seeds (randomness.seed, the configs\' '
                    'default is 0); with several, a cell gives the mean and '
                    'the range')
    ap.add_argument('--work-dir', default=None)
    args = ap.parse_args()
    coco = coco_val_root(args.coco_root)
    if coco is None:
        sys.exit('error: no COCO val folder; give --coco-root')
    p = PRESETS[args.preset]
    exp = Experiment(p, args.work_dir or f'work_dirs/benchmark_{args.preset}',
                     coco, args.checkpoint, args.real_root)
    exp.fp()
    # Stage I: one synthetic set per label source, shared by all bit-widths
    if set(args.methods) & {'ptq', 'no-det', 'zsq'}:
        exp.synthesize('als')
    for name in sorted(set(args.methods) & {'tile', 'multisample'}):
        exp.synthesize(name)
    # Stage II: every method at every bit-width, then tools/test.py
    for bits in args.bits:
        for method in args.methods:
            for seed in args.seeds:
                exp.quantize(method, bits, *seed_variant(seed))
                write_table(args, p, exp.wd, exp.results, quiet=True)
    write_table(args, p, exp.wd, exp.results)


def seed_variant(seed):
    """(variant, config lines) of a Stage II seed; the configs' own seed 0
    is the plain run (key ``<method>:<bits>``)."""
    if seed == 0:
        return None, ''
    return f'seed{seed}', f'randomness = dict(seed={seed})\n'


def cell(results, key, seeds, fp):
    """One table cell: mAP / mAP50 (retention), over the seeds run."""
    rs = [results[k] for k in (
        key + (f'+{v}' if v else '') for v, _ in map(seed_variant, seeds))
        if k in results]
    if not rs:
        return '—'
    ap = [r['mAP'] for r in rs]
    mean = sum(ap) / len(ap)
    text = (f'{mean:.3f} / {sum(r["mAP50"] for r in rs) / len(rs):.3f} '
            f'({100 * mean / fp["mAP"]:.1f} %)')
    if len(rs) > 1:
        text += f', {min(ap):.3f}–{max(ap):.3f} over {len(rs)} seeds'
    return text


def write_table(args, p, wd, results, quiet=False):
    fp = results['fp']
    commit = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'],
                            cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    lines = [
        f'### YOLOv5n, preset `{args.preset}`',
        '',
        f'- command: `python tools/benchmark/zsq_table.py --preset '
        f'{args.preset} --bits {" ".join(args.bits)}'
        + (f' --seeds {" ".join(map(str, args.seeds))}'
           if args.seeds != [0] else '') + '`',
        f'- date: {datetime.date.today()}; machine: {platform.machine()}, '
        f'{os.cpu_count()} cores{gpu_name()}; commit {commit}',
        f'- N = {p["num_images"]} images for every method; Stage I: '
        f'labels {p["label_res"]} px x {p["label_iters"]} it (ALS only), '
        f'images {p["image_res"]} px x {p["image_iters"]} it; Stage II: '
        f'{p["qat_iters"]} QAT iterations ({p["ptq_iters"]} for PTQ) at '
        f'{p["qat_res"]} px, batch {p["qat_batch"]}; eval: 640 px on '
        f'`{osp.basename(osp.normpath(coco_val_root(args.coco_root)))}`',
        '',
        '| method | ' + ' | '.join(
            f'{b.upper()} mAP / mAP50 (retention)' for b in args.bits) + ' |',
        '|---|' + '---|' * len(args.bits),
        f'| {METHOD_NAMES["fp"]} | ' + ' | '.join(
            f'{fp["mAP"]:.3f} / {fp["mAP50"]:.3f}' for _ in args.bits) + ' |']
    for m in args.methods:
        cells = [cell(results, f'{m}:{b}', args.seeds, fp)
                 for b in args.bits]
        lines.append(f'| {METHOD_NAMES[m]} | ' + ' | '.join(cells) + ' |')
    lines += ['', '| Stage I set | images | boxes/img | classes | '
              'class-freq. corr. (real N) | img-it/s | wall (s) |',
              '|---|---|---|---|---|---|---|']
    for k, v in sorted(results.items()):
        if k.startswith('set:'):
            lines.append(
                f'| {k[4:]} | {v["images"]} | {v["boxes_per_image"]:.2f} | '
                f'{v["classes"]} | '
                f'{v.get("class_corr_real", float("nan")):.2f} | '
                f'{v["img_iter_per_s"]:.1f} | {v["wall_s"]} |')
    train = [v.get('train_s', 0) for k, v in results.items()
             if ':' in k and not k.startswith('set:')]
    lines += ['', f'Stage II wall time: {sum(train)} s over {len(train)} '
              f'runs (mean {sum(train) / max(len(train), 1):.0f} s).']
    table = '\n'.join(lines) + '\n'
    with open(osp.join(wd, 'table.md'), 'w') as f:
        f.write(table)
    if not quiet:
        print('\n' + table)


def gpu_name():
    try:
        import torch
        if torch.cuda.is_available():
            return ', ' + torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return ', no GPU'


if __name__ == '__main__':
    main()
