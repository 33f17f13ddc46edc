"""Generate and run the configs of a ZSQ experiment (Stage I sets, Stage II
runs, evaluation) through the user-facing tools; shared by
tools/benchmark/zsq_table.py and tools/demo.py.

Every run is a short generated config that ``_base_``s a shipped one
(configs/zsq/yolov5_n_*.py), executed with tools/synthesize.py,
tools/train.py and tools/test.py, so what is measured is exactly what users
run.  Results are recorded in ``<work_dir>/results.json`` after every step;
a rerun skips finished steps.
"""
import json
import os
import os.path as osp
import subprocess
import sys
import time

from tools._common.assets import yolov5n_checkpoint
from tools._common.label_stats import class_frequency_correlation, load

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

PRESETS = {
    # end-to-end check of the whole pipeline in a few minutes (tests, demo)
    'toy': dict(num_images=4, synth_batch=4, label_res=64, label_iters=6,
                image_res=64, image_iters=4, als_interval=2, synth_lr=0.2,
                qat_res=64, qat_iters=2, ptq_iters=2, qat_batch=2),
    # `make demo`: W8A8 + W4A8 on 16 images, <= 15 min on 2 CPU cores
    'demo': dict(num_images=16, synth_batch=16, label_res=160,
                 label_iters=60, image_res=256, image_iters=40,
                 als_interval=10, synth_lr=0.2, qat_res=256, qat_iters=300,
                 ptq_iters=8, qat_batch=8),
    # whole table <= 60 min on 2 CPU cores
    'cpu-small': dict(num_images=64, synth_batch=32, label_res=160,
                      label_iters=80, image_res=256, image_iters=60,
                      als_interval=10, synth_lr=0.2, qat_res=256,
                      qat_iters=30, ptq_iters=8, qat_batch=8),
    # [Recipe]'s benchmark, ~2.5-3 h on 2 idle CPU cores (resumable):
    # N = 64, labels 160 px x 2500 it (ALS), images 320 px x 500 it, QAT
    # 500 it at 320 px, batch 8
    'cpu-medium': dict(num_images=64, synth_batch=32, label_res=160,
                       label_iters=2500, image_res=320, image_iters=500,
                       als_interval=50, synth_lr=0.2, qat_res=320,
                       qat_iters=500, ptq_iters=50, qat_batch=8,
                       # Stage I's teacher compiled: a batch took 22
                       # instead of 31 min; Stage II runs stay eager in
                       # every preset (500 steps: a compile costs about
                       # what it saves)
                       compile=True),
    # YOLOv5n at 640 px, N = 512, >= 2000 synthesis iterations, one GPU
    'gpu': dict(num_images=512, synth_batch=128, label_res=160,
                label_iters=2000, image_res=640, image_iters=2000,
                als_interval=50, synth_lr=0.2, qat_res=640, qat_iters=2000,
                ptq_iters=50, qat_batch=32),
}
METHODS = ('ptq', 'lsq-real', 'kd-real', 'no-det', 'tile', 'multisample',
           'zsq', 'zsq-lowpass', 'zsq-softlabel', 'zsq-iou', 'zsq-pctinit')
METHOD_NAMES = {
    'fp': 'FP (teacher)', 'ptq': 'PTQ (synthetic)',
    'lsq-real': 'LSQ real-N', 'kd-real': 'our Stage II on real-N',
    'no-det': 'ZSQ w/o L_detect',
    'tile': 'ZSQ Tile', 'multisample': 'ZSQ MultiSample',
    'zsq': '**ZSQ (ours)**',
    'zsq-lowpass': 'ZSQ + low-pass Stage I images',
    'zsq-softlabel': 'ZSQ, L_detect only where the teacher sees the labels',
    'zsq-iou': 'ZSQ + decoded-box IoU term',
    'zsq-pctinit': 'ZSQ, activation steps from the 99.99th percentile'}
LABEL_SOURCES = {
    'als': dict(type='mmzsq.RandomBoxSampler'),
    'tile': dict(type='mmzsq.TileBoxSampler'),
    'multisample': dict(type='mmzsq.MultiBoxSampler'),
    'als-lowpass': dict(type='mmzsq.RandomBoxSampler'),
}
# label sources sampled by ALS (two stages: labels, then images)
ALS_SETS = ('als', 'als-lowpass')
# a set's Stage I keys beyond its label source
SET_SYNTHESIS = {
    'als-lowpass': dict(low_pass_filter=dict(d0=0.5, interval=50, start=0.0,
                                             stop=1.0)),
}
# [Beyond] switches: the `zsq` run on its own Stage I set
# (a Stage I switch) or on the `als` set plus its config lines
SWITCH_SETS = {'zsq-lowpass': 'als-lowpass', 'zsq-softlabel': 'als',
               'zsq-iou': 'als', 'zsq-pctinit': 'als'}
SWITCH_LINES = {
    'zsq-softlabel': "model.update(soft_label=dict(conf_thr=0.25))\n",
    'zsq-iou': ("model.update(loss_weights=dict(iou=1.0), iou_loss=dict("
                "type='mmzsq.DecodedBoxIoULoss', conf_thr=0.25))\n"),
    'zsq-pctinit': ("model.update(quantizer=dict(a_init='percentile', "
                    "a_percentile=0.9999))\n"),
}


def set_of(method):
    """The Stage I set a synthetic-data method trains on."""
    if method in ('tile', 'multisample'):
        return method
    return SWITCH_SETS.get(method, 'als')


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


def synthesis_body(p, name):
    """``train_cfg.synthesis`` overrides of one label source (ALS: two
    stages; the baselines' labels never change, so they only get the
    full-resolution stage)."""
    stages = [dict(resolution=p['image_res'], iters=p['image_iters'],
                   label_sampling=False, reinit_images=True)]
    if name in ALS_SETS:
        stages.insert(0, dict(resolution=p['label_res'],
                              iters=p['label_iters'], label_sampling=True))
    keys = dict(SET_SYNTHESIS.get(name, {}))
    # the teacher compiled or not as the preset says (not the configs'
    # 'auto'), so a preset's runs stay comparable
    keys['compile'] = bool(p.get('compile'))
    more = ''.join(f',\n        {k}={v!r}' for k, v in keys.items())
    return (f"dict(\n        num_images={p['num_images']}, "
            f"batch_size={p['synth_batch']},\n"
            f"        lr={p['synth_lr']}, "
            f"label_sampler={LABEL_SOURCES[name]!r},\n"
            f"        stages={stages!r},\n"
            f"        als=dict(interval={p['als_interval']}){more})")


def set_cfg(p, wd, name, fp_ckpt):
    """Stage I config of one label source (tools/synthesize.py)."""
    body = f"""
train_dataloader = dict(dataset=dict(
    data_root={osp.join(wd, 'sets', name) + '/'!r}))
train_cfg = dict(synthesis={synthesis_body(p, name)})
model = dict(init_checkpoint={fp_ckpt!r})
"""
    return write_cfg(osp.join(wd, 'configs', f'set_{name}.py'),
                     'configs/zsq/yolov5_n_w8a8.py', body)


BASES = {'ptq': 'configs/zsq/yolov5_n_ptq_{bits}.py',
         'lsq-real': 'configs/zsq/yolov5_n_lsq-real_{bits}.py',
         'kd-real': 'configs/zsq/yolov5_n_kd-real_{bits}.py',
         'no-det': 'configs/zsq/yolov5_n_no-det_{bits}.py'}
REAL = ('lsq-real', 'kd-real')


def run_cfg(p, wd, method, bits, fp_ckpt, real_root, extra='', name=None):
    """Stage II config of one method: real-data methods read N real images
    (no Stage I), the others the Stage I set of their label source (made
    already: the loop checks it against the teacher and reuses it)."""
    base = BASES.get(method, 'configs/zsq/yolov5_n_{bits}.py').format(
        bits=bits)
    iters = p['ptq_iters'] if method == 'ptq' else p['qat_iters']
    res = p['qat_res']
    warmup = fitted_warmup(base, iters)
    if method in REAL:
        data = (f"    data_root={real_root!r}, "
                f"indices={p['num_images']},\n")
        synthesis = 'None'
    else:
        src = set_of(method)
        data = f"    data_root={osp.join(wd, 'sets', src) + '/'!r},\n"
        synthesis = synthesis_body(p, src)
    extra = SWITCH_LINES.get(method, '') + extra
    # Stage II eager in every preset (measured so; not the configs' 'auto')
    body = f"""
model = dict(init_checkpoint={fp_ckpt!r}, compile=False)
{warmup}train_dataloader = dict(batch_size={p['qat_batch']}, dataset=dict(
{data}    pipeline=[
        dict(type='mmzsq.CachedLoadImageFromFile', backend_args=None),
        dict(type='LoadAnnotations', with_bbox=True),
        dict(type='YOLOv5KeepRatioResize', scale=({res}, {res})),
        dict(type='LetterResize', scale=({res}, {res}),
             allow_scale_up=False, pad_val=dict(img=114)),
        dict(type='mmdet.RandomFlip', prob=0.5),
        dict(type='mmdet.PackDetInputs',
             meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                        'flip', 'flip_direction', 'scale_factor',
                        'pad_param'))]))
train_cfg = dict(max_iters={iters}, val_interval={iters + 1},
                 synthesis={synthesis})
default_hooks = dict(checkpoint=dict(interval={iters}, max_keep_ckpts=1))
# evaluated once, afterwards, by tools/test.py on the saved checkpoint
val_dataloader = None
val_cfg = None
val_evaluator = None
{extra}"""
    return write_cfg(osp.join(wd, 'configs',
                              f'{name or method + "_" + bits}.py'), base,
                     body)


def fitted_warmup(base, iters):
    """``param_scheduler`` line of a run shorter than three times its base
    config's linear warmup (the W4 recipe warms up over 100 iterations):
    the warmup shrinks to a third of the run, the rest is unchanged; ''
    otherwise.  Without it a 30-iteration run never reaches its lr."""
    from mmengine.config import Config
    scheds = Config.fromfile(osp.join(ROOT, base)).get('param_scheduler')
    if not isinstance(scheds, list) or not any(
            s.get('type') == 'LinearLR' and s.get('end', 0) * 3 > iters
            for s in scheds):
        return ''
    fitted = [dict(s, end=max(1, iters // 3)) if s.get('type') == 'LinearLR'
              else dict(s) for s in scheds]
    return f'param_scheduler = {fitted!r}\n'


def metrics_of(test_wd):
    runs = sorted(d for d in os.listdir(test_wd)
                  if osp.isfile(osp.join(test_wd, d, f'{d}.json')))
    with open(osp.join(test_wd, runs[-1], f'{runs[-1]}.json')) as f:
        m = json.load(f)
    return dict(mAP=m['coco/bbox_mAP'], mAP50=m['coco/bbox_mAP_50'])


def real_ann_file(real_root):
    """The COCO annotation file of a real-image folder, or None."""
    if not real_root:
        return None
    path = osp.join(real_root, 'annotations', 'instances_train2017.json')
    return path if osp.isfile(path) else None


def synthesis_stats(set_dir, real_root=None):
    coco = load(set_dir)
    info = coco.get('info', {})
    n = len(coco['images'])
    iters = sum(st['iters'] for st in info.get('stages', []))
    secs = info.get('elapsed_s_rank0') or float('nan')
    out = dict(images=n,
               boxes_per_image=len(coco['annotations']) / max(n, 1),
               classes=len({a['category_id'] for a in coco['annotations']}),
               img_iter_per_s=n * iters / secs, synth_s=round(secs))
    real = real_ann_file(real_root)
    if real:
        out['class_corr_real'] = class_frequency_correlation(
            coco, load(real))
    return out


class Experiment:
    """One YOLOv5n experiment directory: sets, runs and ``results.json``."""

    def __init__(self, preset: dict, work_dir: str, coco_root=None,
                 checkpoint=None, real_root=None):
        """``coco_root=None``: nothing is evaluated (runs still train)."""
        self.p, self.wd, self.real_root = preset, osp.abspath(work_dir), \
            real_root
        for d in ('configs', 'logs', 'runs', 'sets'):
            os.makedirs(osp.join(self.wd, d), exist_ok=True)
        self.res_file = osp.join(self.wd, 'results.json')
        self.results = json.load(open(self.res_file)) \
            if osp.isfile(self.res_file) else {}
        self.coco_root = coco_root
        self.env = dict(MMZSQ_COCO_ROOT=coco_root) if coco_root else {}
        self.fp_ckpt = osp.join(self.wd, 'yolov5n_fp.pth')
        if not osp.isfile(self.fp_ckpt):
            sh(['tools/model_converters/yolov5_to_mmyolo.py',
                yolov5n_checkpoint(checkpoint), self.fp_ckpt],
               osp.join(self.wd, 'logs', 'convert.log'))

    def save(self):
        with open(self.res_file + '.tmp', 'w') as f:
            json.dump(self.results, f, indent=1)
        os.replace(self.res_file + '.tmp', self.res_file)

    def evaluate(self, name, cfg, ckpt):
        """tools/test.py -> mAP / mAP50 of ``ckpt``."""
        test_wd = osp.join(self.wd, 'runs', name, 'test')
        t = time.time()
        sh(['tools/test.py', cfg, ckpt, '--work-dir', test_wd],
           osp.join(self.wd, 'logs', f'{name}_test.log'), self.env)
        return dict(metrics_of(test_wd), test_s=round(time.time() - t))

    def fp(self):
        if self.coco_root is None:
            return None
        if 'fp' not in self.results:
            self.results['fp'] = self.evaluate(
                'fp', 'configs/yolov5/yolov5_n-v61_fp_coco.py', self.fp_ckpt)
            self.save()
        return self.results['fp']

    def synthesize(self, name):
        """Stage I set of one label source (als / tile / multisample /
        als-lowpass)."""
        key = f'set:{name}'
        if key not in self.results:
            t = time.time()
            sh(['tools/synthesize.py',
                set_cfg(self.p, self.wd, name, self.fp_ckpt)],
               osp.join(self.wd, 'logs', f'set_{name}.log'))
            self.results[key] = dict(
                synthesis_stats(self.set_dir(name), self.real_root),
                wall_s=round(time.time() - t))
            self.save()
        return self.results[key]

    def set_dir(self, name):
        return osp.join(self.wd, 'sets', name)

    def quantize(self, method, bits, variant=None, extra=''):
        """Stage II run + evaluation; returns its results entry.
        ``variant``: a named recipe change, ``extra`` its config lines
        (appended to the run's config; key ``<method>:<bits>+<variant>``)."""
        key = f'{method}:{bits}' + (f'+{variant}' if variant else '')
        if key not in self.results and method in SWITCH_SETS:
            self.synthesize(set_of(method))  # (its own `set:` key)
        if key not in self.results:
            name = f'{method}_{bits}' + (f'_{variant}' if variant else '')
            run_wd = osp.join(self.wd, 'runs', name)
            cfg = run_cfg(self.p, self.wd, method, bits, self.fp_ckpt,
                          self.real_root, extra, name)
            t = time.time()
            sh(['tools/train.py', cfg, '--work-dir', run_wd],
               osp.join(self.wd, 'logs', f'{name}_train.log'), self.env)
            train_s = round(time.time() - t)
            ckpt = osp.join(run_wd, sorted(
                f for f in os.listdir(run_wd) if f.endswith('.pth'))[-1])
            metrics = self.evaluate(name, cfg, ckpt) if self.coco_root \
                else {}
            self.results[key] = dict(metrics, train_s=train_s,
                                     checkpoint=ckpt)
            self.save()
        return self.results[key]


def model_size_mib(ckpt_path: str) -> float:
    """Storage size of a detector's parameters as deployed: weights of
    quantized layers at their bit-width, everything else in float32."""
    from mmzsq.utils.checkpoint import read_checkpoint, state_dict_of
    sd = state_dict_of(read_checkpoint(ckpt_path))
    prefix = 'architecture.' if any(k.startswith('architecture.')
                                    for k in sd) else ''
    bits = 0
    for k, v in sd.items():
        if not k.startswith(prefix) or 'fake_quant' in k or \
                not v.is_floating_point() or 'running_' in k:
            continue
        # LSQFakeQuantize keeps (bits, qmin, qmax) in its `qrange` buffer
        fq = k[:-len('weight')] + 'weight_fake_quant.qrange' \
            if k.endswith('.weight') else None
        b = int(sd[fq][0]) if fq and fq in sd else 32
        bits += b * v.numel()
    return bits / 8 / 2**20
