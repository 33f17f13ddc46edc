# zsq_table.py with a preset sized to a time budget, from rates measured on
# this machine by synthesis_speed.py, then a summary of Stage I's speed
# against the device's peak (used by tools/benchmark/device_run.sh).
#
#   python tools/benchmark/budget_table.py --preset gpu \
#       --speed lo.json hi.json s2.json --budget 360 --out OUT \
#       --work-dir WD --bits w4a8 --methods zsq
#
# lo.json / hi.json: `synthesis_speed.py --json --flops` at the preset's
# label and image resolutions (Stage I batch); s2.json: at its QAT
# resolution and batch (Stage II).  The preset keeps its image count and
# resolutions; the Stage I iterations (and the ALS interval, so ALS fires as
# often) and the QAT iterations are scaled down together until the
# estimated time fits (never up).  Output in OUT: table.md, results.json,
# summary.json, summary.md.
import argparse
import json
import os
import os.path as osp
import runpy
import shutil
import sys
import tempfile

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, ROOT)
# dense bf16 tensor-core peak (FLOP/s) of the devices we are lent
PEAK_BF16 = {'H200': 989e12, 'H100': 989e12}
STAGE1_SHARE = 0.6  # of the budget left after the fixed costs
FIXED_S = 90  # conversion, FP and quantized evaluation, 5 tool start-ups


def parse_args(argv=None):
    ap = argparse.ArgumentParser(
        description='zsq_table.py with a preset sized to a time budget')
    ap.add_argument('--preset', default='gpu')
    ap.add_argument('--speed', nargs=3, required=True,
                    metavar=('LO_JSON', 'HI_JSON', 'S2_JSON'))
    ap.add_argument('--budget', type=float, default=360,
                    help='seconds for the whole table')
    ap.add_argument('--out', required=True)
    ap.add_argument('--work-dir', required=True)
    ap.add_argument('--bits', nargs='+', default=['w4a8'])
    ap.add_argument('--methods', nargs='+', default=['zsq'])
    ap.add_argument('--coco-root', default=None)
    return ap.parse_args(argv)


def read_json(path):
    with open(path) as f:
        return json.loads(f.read().strip().splitlines()[-1])


def sized(p, lo, hi, s2, budget):
    """A copy of preset ``p`` whose Stage I and Stage II fit ``budget``
    seconds at the measured rates (img-it/s, img/s), and the estimates."""
    p = dict(p)
    n = p['num_images']
    t1 = n * (p['label_iters'] / lo['stage1_img_it_s'] +
              p['image_iters'] / hi['stage1_img_it_s'])
    t2 = p['qat_iters'] * p['qat_batch'] / s2['stage2_img_s']
    left = max(budget - FIXED_S, 1.)
    f1 = min(1., STAGE1_SHARE * left / t1)
    f2 = min(1., (1 - STAGE1_SHARE) * left / t2)
    for k in ('label_iters', 'image_iters', 'als_interval'):
        p[k] = max(1, round(p[k] * f1))
    p['qat_iters'] = max(1, round(p['qat_iters'] * f2))
    est = dict(stage1_s=t1 * f1, stage2_s=t2 * f2, stage1_scale=f1,
               stage2_scale=f2)
    return p, est


def writes_train_cfg_synthesis(p):
    """Whether experiment.set_cfg writes Stage I settings where
    ZSQTrainLoop reads them (``train_cfg.synthesis``)."""
    from tools._common.experiment import set_cfg
    with tempfile.TemporaryDirectory() as d:
        os.makedirs(osp.join(d, 'configs'))
        with open(set_cfg(p, d, 'als', 'fp.pth')) as f:
            text = f.read()
    return 'train_cfg' in text


def run_table(args, preset):
    from tools._common import experiment
    if not writes_train_cfg_synthesis(preset):
        sys.exit('error: tools/_common/experiment.py set_cfg writes the Stage '
                 'I settings under train_dataloader.dataset.synthesis, but '
                 'ZSQTrainLoop reads train_cfg.synthesis: the preset would '
                 'be ignored (2048 images x 5000 steps); update set_cfg / '
                 'run_cfg to the train_cfg.synthesis schema first')
    experiment.PRESETS[args.preset] = preset
    argv = ['zsq_table.py', '--preset', args.preset, '--work-dir',
            args.work_dir, '--bits', *args.bits, '--methods', *args.methods]
    if args.coco_root:
        argv += ['--coco-root', args.coco_root]
    old, sys.argv = sys.argv, argv
    try:
        runpy.run_path(osp.join(ROOT, 'tools/benchmark/zsq_table.py'),
                       run_name='__main__')
    finally:
        sys.argv = old


def peak_of(device):
    return next((v for k, v in PEAK_BF16.items() if k in device), None)


def summary(preset, lo, hi, s2, est, results):
    """Stage I's measured rate and FLOP/s against the device's peak."""
    st = results.get('set:als', {})
    li, ii = preset['label_iters'], preset['image_iters']
    gflop = (li * lo['stage1_gflop_per_img_it'] +
             ii * hi['stage1_gflop_per_img_it']) / (li + ii)
    rate = st.get('img_iter_per_s')
    peak = peak_of(hi['device'])
    out = dict(device=hi['device'], preset=preset, estimate=est,
               stage1_img_it_s=rate, stage1_gflop_per_img_it=gflop,
               peak_bf16_flop_s=peak, floor_vs_ours={
                   f"{d['res']}px_b{d['batch']}": {
                       k: d[k] for k in d if k.startswith(('stage1_',
                                                           'stage2_'))}
                   for d in (lo, hi, s2)})
    if rate:
        out['stage1_tflop_s'] = rate * gflop / 1e3
        if peak:
            out['stage1_share_of_peak'] = rate * gflop * 1e9 / peak
    f640 = hi['stage1_floor_img_it_s'] * hi['stage1_gflop_per_img_it']
    out['stage1_floor_tflop_s_hi'] = f640 / 1e3
    if peak:
        out['stage1_floor_share_of_peak_hi'] = f640 * 1e9 / peak
    return out


def summary_md(s):
    lines = [f"### Stage I speed on {s['device']}", '',
             f"- Stage I (set:als of the table): "
             f"{s['stage1_img_it_s'] or float('nan'):.1f} img-it/s x "
             f"{s['stage1_gflop_per_img_it']:.2f} GFLOP/img-it "
             f"(fwd + bwd w.r.t. the input, iteration-weighted over the "
             f"label and image resolutions)"]
    if 'stage1_tflop_s' in s:
        lines.append(f"- = {s['stage1_tflop_s']:.3g} TFLOP/s" + (
            f", {100 * s['stage1_share_of_peak']:.2f} % of the "
            f"{s['peak_bf16_flop_s'] / 1e12:.0f} TFLOP/s dense bf16 peak"
            if 'stage1_share_of_peak' in s else ''))
    lines += [f"- preset used: `{json.dumps(s['preset'])}`",
              f"- estimate: `{json.dumps(s['estimate'])}`", '',
              '| size | Stage I floor / ours (img-it/s) | ours/floor | '
              'Stage II floor / ours (img/s) | ours/floor |',
              '|---|---|---|---|---|']
    for k, d in s['floor_vs_ours'].items():
        c1 = (f"{d['stage1_floor_img_it_s']:.1f} / "
              f"{d['stage1_img_it_s']:.1f} | {d['stage1_over_floor']:.2f}"
              if 'stage1_img_it_s' in d else '— | —')
        c2 = (f"{d['stage2_floor_img_s']:.1f} / {d['stage2_img_s']:.1f} | "
              f"{d['stage2_over_floor']:.2f}" if 'stage2_img_s' in d
              else '— | —')
        lines.append(f'| {k} | {c1} | {c2} |')
    return '\n'.join(lines) + '\n'


def main(argv=None):
    args = parse_args(argv)
    from tools._common import import_mmzsq
    import_mmzsq()
    from tools._common.experiment import PRESETS
    if args.preset not in PRESETS:
        sys.exit(f'error: no preset {args.preset!r}; one of {list(PRESETS)}')
    lo, hi, s2 = (read_json(p) for p in args.speed)
    p = PRESETS[args.preset]
    for name, d, res, batch in (
            ('LO_JSON', lo, p['label_res'], p['synth_batch']),
            ('HI_JSON', hi, p['image_res'], p['synth_batch']),
            ('S2_JSON', s2, p['qat_res'], p['qat_batch'])):
        if (d['res'], d['batch']) != (res, batch):
            print(f"warning: {name} was measured at {d['res']} px, batch "
                  f"{d['batch']}; preset {args.preset} runs {res} px, "
                  f'batch {batch}: the sizing is a guess', flush=True)
    preset, est = sized(PRESETS[args.preset], lo, hi, s2, args.budget)
    print(f'sized preset {args.preset}: {preset} (estimate {est})',
          flush=True)
    run_table(args, preset)
    os.makedirs(args.out, exist_ok=True)
    for f in ('table.md', 'results.json'):
        shutil.copy(osp.join(args.work_dir, f), osp.join(args.out, f))
    with open(osp.join(args.work_dir, 'results.json')) as f:
        results = json.load(f)
    s = summary(preset, lo, hi, s2, est, results)
    with open(osp.join(args.out, 'summary.json'), 'w') as f:
        json.dump(s, f, indent=1)
    with open(osp.join(args.out, 'summary.md'), 'w') as f:
        f.write(summary_md(s))
    print(summary_md(s))


if __name__ == '__main__':
    main()
