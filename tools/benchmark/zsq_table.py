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
import json
import os
import os.path as osp
import platform
import subprocess
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, ROOT)

from mmzsq.utils.assets import (coco_val_root, shared_path,  # noqa: E402
                                yolov5n_checkpoint)

PRESETS = {
    # whole table <= 60 min on 2 CPU cores
    'cpu-small': dict(num_images=64, synth_batch=16, label_res=160,
                      label_iters=120, image_res=256, image_iters=120,
                      als_interval=10, synth_lr=0.2, qat_res=320,
                      qat_iters=60, ptq_iters=8, qat_batch=8),
    # YOLOv5n at 640 px, N = 512, >= 2000 synthesis iterations, one GPU
    'gpu': dict(num_images=512, synth_batch=128, label_res=160,
                label_iters=2000, image_res=640, image_iters=2000,
                als_interval=50, synth_lr=0.2, qat_res=640, qat_iters=2000,
                ptq_iters=50, qat_batch=32),
}
METHODS = ('ptq', 'lsq-real', 'no-det', 'tile', 'multisample', 'zsq')
METHOD_NAMES = {
    'fp': 'FP (teacher)', 'ptq': 'PTQ (synthetic)',
    'lsq-real': 'LSQ real-N', 'no-det': 'ZSQ w/o L_detect',
    'tile': 'ZSQ Tile', 'multisample': 'ZSQ MultiSample',
    'zsq': '**ZSQ (ours)**'}
LABEL_SOURCES = {
    'als': dict(type='mmzsq.RandomBoxSampler'),
    'tile': dict(type='mmzsq.TileBoxSampler'),
    'multisample': dict(type='mmzsq.MultiBoxSampler'),
}


def sh(args, log, env=None):
    """Run a tool, its output to ``log``; raise with the log's tail."""
    cmd = [sys.executable] + args
    print('+', ' '.join(cmd), flush=True)
    with open(log, 'w') as f:
        ret = subprocess.run(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT,
                             env={**os.environ, **(env or {})})
    if ret.returncode:
        with open(log) as f:
            tail = f.read()[-3000:]
        raise RuntimeError(f'{" ".join(args[:2])} failed (log: {log}):\n'
                           f'{tail}')


def write_cfg(path, base, body):
    with open(path, 'w') as f:
        f.write(f'_base_ = [{osp.join(ROOT, base)!r}]\n{body}')
    return path


def set_cfg(p, wd, name, fp_ckpt):
    """Stage I config of one label source (ALS: two stages; the baselines'
    labels never change, so they only get the full-resolution stage)."""
    stages = [dict(resolution=p['image_res'], iters=p['image_iters'],
                   label_sampling=False, reinit_images=True)]
    if name == 'als':
        stages.insert(0, dict(resolution=p['label_res'],
                              iters=p['label_iters'], label_sampling=True))
    body = f"""
train_dataloader = dict(dataset=dict(
    data_root={osp.join(wd, 'sets', name) + '/'!r},
    synthesis=dict(
        num_images={p['num_images']}, batch_size={p['synth_batch']},
        lr={p['synth_lr']}, label_sampler={LABEL_SOURCES[name]!r},
        stages={stages!r},
        als=dict(interval={p['als_interval']}))))
model = dict(init_checkpoint={fp_ckpt!r})
"""
    return write_cfg(osp.join(wd, 'configs', f'set_{name}.py'),
                     'configs/zsq/yolov5_n_w8a8.py', body)


def run_cfg(p, wd, method, bits, fp_ckpt, real_root):
    base = {'ptq': f'configs/zsq/yolov5_n_ptq_{bits}.py',
            'lsq-real': f'configs/zsq/yolov5_n_lsq-real_{bits}.py',
            'no-det': f'configs/zsq/yolov5_n_no-det_{bits}.py'}.get(
                method, f'configs/zsq/yolov5_n_{bits}.py')
    iters = p['ptq_iters'] if method == 'ptq' else p['qat_iters']
    res = p['qat_res']
    data = ''
    if method == 'lsq-real':
        data = (f"    data_root={real_root!r}, "
                f"indices={p['num_images']},\n")
    else:
        src = method if method in ('tile', 'multisample') else 'als'
        data = (f"    data_root={osp.join(wd, 'sets', src) + '/'!r},\n"
                '    synthesis=None,\n')
    body = f"""
model = dict(init_checkpoint={fp_ckpt!r})
train_dataloader = dict(batch_size={p['qat_batch']}, dataset=dict(
{data}    pipeline=[
        dict(type='LoadImageFromFile', backend_args=None),
        dict(type='LoadAnnotations', with_bbox=True),
        dict(type='YOLOv5KeepRatioResize', scale=({res}, {res})),
        dict(type='LetterResize', scale=({res}, {res}),
             allow_scale_up=False, pad_val=dict(img=114)),
        dict(type='mmdet.RandomFlip', prob=0.5),
        dict(type='mmdet.PackDetInputs',
             meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                        'flip', 'flip_direction', 'scale_factor',
                        'pad_param'))]))
train_cfg = dict(max_iters={iters}, val_interval={iters + 1})
param_scheduler = [dict(type='CosineAnnealingLR', by_epoch=False,
                        T_max={iters}, eta_min=1e-6)]
default_hooks = dict(checkpoint=dict(interval={iters}, max_keep_ckpts=1))
"""
    return write_cfg(osp.join(wd, 'configs', f'{method}_{bits}.py'), base,
                     body)


def metrics_of(test_wd):
    runs = sorted(d for d in os.listdir(test_wd)
                  if osp.isfile(osp.join(test_wd, d, f'{d}.json')))
    with open(osp.join(test_wd, runs[-1], f'{runs[-1]}.json')) as f:
        m = json.load(f)
    return dict(mAP=m['coco/bbox_mAP'], mAP50=m['coco/bbox_mAP_50'])


def synthesis_stats(set_dir):
    with open(osp.join(set_dir, 'annotations.json')) as f:
        coco = json.load(f)
    info = coco.get('info', {})
    n = len(coco['images'])
    iters = sum(st['iters'] for st in info.get('stages', []))
    secs = info.get('elapsed_s_rank0') or float('nan')
    return dict(images=n, boxes_per_image=len(coco['annotations']) / max(n, 1),
                classes=len({a['category_id'] for a in coco['annotations']}),
                img_iter_per_s=n * iters / secs, synth_s=round(secs))


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument('--preset', choices=list(PRESETS), default='cpu-small')
    ap.add_argument('--bits', nargs='+',
                    default=['w8a8', 'w6a6', 'w4a8', 'w4a4'])
    ap.add_argument('--methods', nargs='+', default=list(METHODS),
                    choices=METHODS)
    ap.add_argument('--checkpoint', help='Ultralytics yolov5n.pt (v6.1)')
    ap.add_argument('--coco-root', help='COCO val folder for mAP')
    ap.add_argument('--real-root', default=shared_path('data', 'coco128'),
                    help='COCO-format train folder for LSQ real-N')
    ap.add_argument('--work-dir', default=None)
    args = ap.parse_args()
    p = PRESETS[args.preset]
    wd = osp.abspath(args.work_dir or f'work_dirs/benchmark_{args.preset}')
    for d in ('configs', 'logs', 'runs', 'sets'):
        os.makedirs(osp.join(wd, d), exist_ok=True)
    res_file = osp.join(wd, 'results.json')
    results = json.load(open(res_file)) if osp.isfile(res_file) else {}

    def save():
        with open(res_file + '.tmp', 'w') as f:
            json.dump(results, f, indent=1)
        os.replace(res_file + '.tmp', res_file)

    coco = coco_val_root(args.coco_root)
    if coco is None:
        sys.exit('error: no COCO val folder; give --coco-root')
    env = dict(MMZSQ_COCO_ROOT=coco)
    fp_ckpt = osp.join(wd, 'yolov5n_fp.pth')
    if not osp.isfile(fp_ckpt):
        sh(['tools/model_converters/yolov5_to_mmyolo.py',
            yolov5n_checkpoint(args.checkpoint), fp_ckpt],
           osp.join(wd, 'logs', 'convert.log'))

    def evaluate(key, cfg, ckpt):
        """tools/test.py -> mAP / mAP50 of ``ckpt``."""
        test_wd = osp.join(wd, 'runs', key, 'test')
        sh(['tools/test.py', cfg, ckpt, '--work-dir', test_wd],
           osp.join(wd, 'logs', f'{key}_test.log'), env)
        return metrics_of(test_wd)

    if 'fp' not in results:
        results['fp'] = evaluate('fp', 'configs/yolov5/yolov5_n-v61_fp_coco.py',
                                 fp_ckpt)
        save()

    # Stage I: one synthetic set per label source, shared by all bit-widths
    sources = {'als'} if set(args.methods) & {'ptq', 'no-det', 'zsq'} \
        else set()
    sources |= set(args.methods) & {'tile', 'multisample'}
    for name in sorted(sources):
        key = f'set:{name}'
        if key not in results:
            t = time.time()
            sh(['tools/synthesize.py', set_cfg(p, wd, name, fp_ckpt)],
               osp.join(wd, 'logs', f'set_{name}.log'))
            results[key] = dict(synthesis_stats(osp.join(wd, 'sets', name)),
                                wall_s=round(time.time() - t))
            save()

    # Stage II: every method at every bit-width, then tools/test.py
    for bits in args.bits:
        for method in args.methods:
            key = f'{method}:{bits}'
            if key in results:
                continue
            name = f'{method}_{bits}'
            run_wd = osp.join(wd, 'runs', name)
            cfg = run_cfg(p, wd, method, bits, fp_ckpt, args.real_root)
            t = time.time()
            sh(['tools/train.py', cfg, '--work-dir', run_wd],
               osp.join(wd, 'logs', f'{name}_train.log'), env)
            train_s = round(time.time() - t)
            ckpt = osp.join(run_wd, sorted(
                f for f in os.listdir(run_wd) if f.endswith('.pth'))[-1])
            results[key] = dict(evaluate(name, cfg, ckpt), train_s=train_s)
            save()
    write_table(args, p, wd, results)


def write_table(args, p, wd, results):
    fp = results['fp']
    commit = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'],
                            cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    lines = [
        f'### YOLOv5n, preset `{args.preset}`',
        '',
        f'- command: `python tools/benchmark/zsq_table.py --preset '
        f'{args.preset} --bits {" ".join(args.bits)}`',
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
        cells = []
        for b in args.bits:
            r = results.get(f'{m}:{b}')
            cells.append('—' if r is None else
                         f'{r["mAP"]:.3f} / {r["mAP50"]:.3f} '
                         f'({100 * r["mAP"] / fp["mAP"]:.1f} %)')
        lines.append(f'| {METHOD_NAMES[m]} | ' + ' | '.join(cells) + ' |')
    lines += ['', '| Stage I set | images | boxes/img | classes | '
              'img-it/s | wall (s) |', '|---|---|---|---|---|---|']
    for k, v in sorted(results.items()):
        if k.startswith('set:'):
            lines.append(
                f'| {k[4:]} | {v["images"]} | {v["boxes_per_image"]:.2f} | '
                f'{v["classes"]} | '
                f'{v["img_iter_per_s"]:.1f} | {v["wall_s"]} |')
    train = [v.get('train_s', 0) for k, v in results.items()
             if ':' in k and not k.startswith('set:')]
    lines += ['', f'Stage II wall time: {sum(train)} s over {len(train)} '
              f'runs (mean {sum(train) / max(len(train), 1):.0f} s).']
    table = '\n'.join(lines) + '\n'
    with open(osp.join(wd, 'table.md'), 'w') as f:
        f.write(table)
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
