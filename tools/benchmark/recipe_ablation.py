# Stage II recipe ablation at one bit-width: each recipe change of [Recipe]
# alone against the shipped recipe, and all of them together (the official
# recipe), with our Stage II loss on N real images (`kd-real`, no Stage I)
# or on the Stage I set (`zsq`).
#   python tools/benchmark/recipe_ablation.py --bits w4a8 --iters 300
# Every run is a generated config that `_base_`s the shipped one, through
# tools/train.py and tools/test.py (see tools/_common/experiment.py); a rerun
# skips finished runs.  Output: <work-dir>/results.json and ablation.md.
import argparse
import datetime
import os.path as osp
import platform
import subprocess
import sys

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, ROOT)

from tools._common import import_mmzsq  # noqa: E402

import_mmzsq()

from tools._common.assets import coco_val_root, shared_path  # noqa: E402
from tools._common.experiment import PRESETS, Experiment  # noqa: E402

WARMUP = 100
# one recipe change each: config lines appended to the run's config (after
# its `model = dict(init_checkpoint=...)`, hence `model.update`)
CHANGES = {
    'lr1e-4-warmup': (
        'weights at the official Adam 1e-4 (lr_mult 1), linear warmup over '
        '100 iterations (a third of shorter runs)',
        "optim_wrapper = dict(paramwise_cfg=dict(custom_keys={{"
        "'.weight': dict(lr_mult=1.0), '.bias': dict(lr_mult=1.0)}}))\n"
        "param_scheduler = [dict(type='LinearLR', start_factor=0.01, "
        "by_epoch=False, begin=0, end={warmup}),\n"
        "    dict(type='CosineAnnealingLR', by_epoch=False, "
        "begin={warmup}, eta_min=1e-6)]\n"),
    'lr1e-5': (
        'weights at lr/10 (Adam 1e-5), no warmup: the W6 / W8 recipe',
        "optim_wrapper = dict(paramwise_cfg=dict(custom_keys={{"
        "'.weight': dict(lr_mult=0.1), '.bias': dict(lr_mult=0.1)}}))\n"
        "param_scheduler = [dict(type='CosineAnnealingLR', by_epoch=False, "
        "eta_min=1e-6)]\n"),
    'bn-train': ('student BN in train mode, momentum 0.03',
                 "model.update(bn_mode='train', bn_momentum=0.03)\n"),
    'bn-reestimate': ('student BN re-estimated on 8 batches, then frozen',
                      "model.update(bn_mode='reestimate')\n"
                      "custom_hooks = [dict(type='mmzsq.BNReestimateHook', "
                      "num_batches=8)]\n"),
    'taps-all': ('feature MSE on every Conv2d and BN output',
                 "model.update(feat_layers=[], "
                 "feat_types=['Conv2d', 'BatchNorm2d'])\n"),
    'init-4': ('activation step sizes initialised over 4 batches (32 '
               'images)', "model.update(quantizer=dict(a_init_batches=4))\n"),
    'kd-image': ('KD normalised per image (Eq. 7)',
                 "model.update(kd_loss=dict(reduction='image'))\n"),
    'bf16': ('forward and losses in CPU bf16 autocast (`tools/train.py '
             '--amp` on CPU)',
             "optim_wrapper = dict(type='mmzsq.CPUAutocastOptimWrapper', "
             "dtype='bfloat16')\n"),
}
OFFICIAL = ('lr1e-4-warmup', 'bn-train', 'taps-all', 'init-4', 'kd-image')


def variants(names, warmup):
    out = {'shipped': ('the shipped recipe', '')}
    if set(OFFICIAL) <= set(names):  # (run second: the headline row)
        out['official'] = ('all of ' + ', '.join(OFFICIAL),
                           merged(OFFICIAL, warmup))
    for n in names:
        out[n] = (CHANGES[n][0], CHANGES[n][1].format(warmup=warmup))
    return out


def merged(names, warmup):
    """The config lines of several changes (each updates ``model`` or sets
    its own keys)."""
    return ''.join(CHANGES[n][1].format(warmup=warmup) for n in names)


def main():
    ap = argparse.ArgumentParser(description='Stage II recipe ablation')
    ap.add_argument('--bits', default='w4a8')
    ap.add_argument('--method', default='kd-real',
                    choices=['kd-real', 'zsq'])
    ap.add_argument('--preset', default='cpu-small', choices=list(PRESETS))
    ap.add_argument('--iters', type=int, default=300)
    ap.add_argument('--res', type=int, default=256)
    ap.add_argument('--num-images', type=int, default=128)
    ap.add_argument('--changes', nargs='+', default=list(CHANGES),
                    choices=list(CHANGES))
    ap.add_argument('--checkpoint', help='Ultralytics yolov5n.pt (v6.1)')
    ap.add_argument('--coco-root', help='COCO val folder for mAP')
    ap.add_argument('--real-root', default=shared_path('data', 'coco128'))
    ap.add_argument('--work-dir', default='work_dirs/recipe_ablation')
    args = ap.parse_args()
    coco = coco_val_root(args.coco_root)
    if coco is None:
        sys.exit('error: no COCO val folder; give --coco-root')
    p = dict(PRESETS[args.preset], qat_iters=args.iters, qat_res=args.res,
             num_images=args.num_images)
    exp = Experiment(p, args.work_dir, coco, args.checkpoint, args.real_root)
    exp.fp()
    if args.method == 'zsq':
        exp.synthesize('als')
    rows = variants(args.changes, min(WARMUP, max(1, args.iters // 3)))
    for name, (_, extra) in rows.items():
        exp.quantize(args.method, args.bits, None if name == 'shipped'
                     else name, extra)
        write_table(args, p, exp, rows)


def write_table(args, p, exp, rows):
    fp = exp.results['fp']['mAP']
    commit = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'],
                            cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    lines = [
        f'### Stage II recipe ablation, YOLOv5n {args.bits.upper()}, '
        f'`{args.method}`', '',
        f'- command: `python tools/benchmark/recipe_ablation.py --bits '
        f'{args.bits} --method {args.method} --iters {args.iters} --res '
        f'{args.res} --num-images {args.num_images}`',
        f'- date: {datetime.date.today()}; machine: {platform.machine()}; '
        f'commit {commit}',
        f'- N = {p["num_images"]} images, {p["qat_iters"]} iterations at '
        f'{p["qat_res"]} px, batch {p["qat_batch"]}; eval 640 px; FP '
        f'{fp:.3f}', '',
        '| recipe | change | mAP / mAP50 (retention) | train (s) |',
        '|---|---|---|---|']
    for name, (what, _) in rows.items():
        key = f'{args.method}:{args.bits}' + (
            '' if name == 'shipped' else f'+{name}')
        r = exp.results.get(key)
        cell = '—' if r is None else (
            f'{r["mAP"]:.3f} / {r["mAP50"]:.3f} ({100 * r["mAP"] / fp:.1f} '
            f'%) | {r["train_s"]}')
        lines.append(f'| {name} | {what} | {cell}' + (' | — |' if r is None
                                                      else ' |'))
    with open(osp.join(exp.wd, 'ablation.md'), 'w') as f:
        f.write('\n'.join(lines) + '\n')
    print('\n'.join(lines), flush=True)


if __name__ == '__main__':
    main()
