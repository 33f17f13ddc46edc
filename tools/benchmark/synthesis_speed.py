# How close our Stage I and Stage II loops come to the bare cost of the
# network, in one process, on the current device, at the same batch,
# resolution, precision and thread count:
#
#   Stage I floor: the teacher's forward + backward w.r.t. the input (no
#                  hooks, the summed head outputs as loss)
#   Stage I ours:  SynthesisLoop through mmzsq.synthesis.synthesize_set in a
#                  Runner holding the teacher (BN-statistics hooks, detection
#                  loss, priors, ALS, the host sync of every step; the PNG
#                  writing at the end of the batch is timed on its own)
#   Stage II floor: the float student's forward + backward + the teacher's
#                  forward, on a random batch (no data loading)
#   Stage II ours: runner.train() of a real zsq config (quantizers, L_det,
#                  L_KD, L_feat, Adam, hooks, the dataloader on the set that
#                  Stage I just wrote)
#
#   python tools/benchmark/synthesis_speed.py                 # a table
#   python tools/benchmark/synthesis_speed.py --json          # one line
#   python tools/benchmark/synthesis_speed.py --res 640 --batch 32 --flops
#   python tools/benchmark/synthesis_speed.py --no-compile  # both eager
#
# The loops run as the config runs them at its own length: the YOLOv5
# configs' compile='auto' compiles their 2000-step runs, so by default both
# loops are timed compiled (the first run of a size pays the compile in
# its warm-up: about 3 min on 2 cores, under a minute from inductor's disk
# cache).  Stage I is timed over whole ALS intervals (ALS at the config's
# rate); the floors over as many steps as ours.
#
# `*_over_floor` = our rate / the floor's rate: the share of the bare
# network's speed our loop reaches (1.0 = no overhead; [Speed]'s target is
# >= 0.8).  Warm-up iterations are excluded from every timing.
import argparse
import contextlib
import copy
import json
import os
import os.path as osp
import sys
import tempfile
import time

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, ROOT)
DEFAULT_CONFIG = 'configs/zsq/yolov5_n_w4a8.py'


def parse_args(argv=None):
    from mmengine.config import DictAction
    ap = argparse.ArgumentParser(
        description='Stage I / Stage II speed against the bare network')
    ap.add_argument('--config', default=DEFAULT_CONFIG,
                    help='a zsq config (Stage I settings: '
                    'train_cfg.synthesis; its model.architecture is the '
                    'teacher)')
    ap.add_argument('--cfg-options', nargs='+', action=DictAction,
                    help='override config keys first, e.g. '
                    'train_cfg.synthesis.prior_loss=None (an ablation)')
    ap.add_argument('--res', type=int, default=160,
                    help='resolution of both stages (multiple of 32)')
    ap.add_argument('--batch', type=int, default=8)
    ap.add_argument('--iters', type=int, default=20,
                    help='timed iterations (Stage I: rounded up to whole '
                    'ALS intervals of the config, 50 in the shipped ones)')
    ap.add_argument('--warmup', type=int, default=3,
                    help='untimed iterations first')
    ap.add_argument('--checkpoint', default=None,
                    help="Ultralytics yolov5n.pt (v6.1) or an mmyolo .pth; "
                    "default: the shared YOLOv5n if present, else random "
                    "weights; 'random': random weights")
    ap.add_argument('--device', choices=['cpu', 'cuda'], default=None,
                    help='default: cuda when available')
    ap.add_argument('--threads', type=int, default=None,
                    help='torch threads (default: torch\'s, i.e. '
                    '$OMP_NUM_THREADS)')
    ap.add_argument('--amp', action=argparse.BooleanOptionalAction,
                    default=None,
                    help='bf16 autocast for both stages (--no-amp: fp32 for '
                    'both); default: as users run them, Stage I by '
                    'train_cfg.synthesis.amp (bf16 on CUDA, '
                    'SynthesisLoop.amp), Stage II in fp32 (tools/train.py '
                    'without --amp).  CPU: Stage I always fp32 (its autocast '
                    'is CUDA-only); Stage II with --amp in CPU bf16 autocast '
                    '(the forward, as AmpOptimWrapper does on CUDA; '
                    'AmpOptimWrapper itself refuses CPUs)')
    ap.add_argument('--compile', action=argparse.BooleanOptionalAction,
                    default=None,
                    help='both loops with their networks compiled '
                    '(train_cfg.synthesis.compile and model.compile: the '
                    'teacher in Stage I, the quantized student and the '
                    'teacher in Stage II; the compile itself falls into the '
                    'warm-up); --no-compile: both eager; default: as the '
                    "config runs them, its 'auto' decided by the config's "
                    'own run length (YOLOv5: compiled)')
    ap.add_argument('--stages', nargs='+', choices=['1', '2'],
                    default=['1', '2'])
    ap.add_argument('--flops', action='store_true',
                    help='also count FLOPs of one Stage I floor iteration '
                    '(torch.utils.flop_counter)')
    ap.add_argument('--work-dir', default=None,
                    help='where the set and logs go (default: a temp dir)')
    ap.add_argument('--json', action='store_true',
                    help='print one JSON line instead of the table')
    args = ap.parse_args(argv)
    if args.res % 32 or args.res <= 0:
        ap.error(f'--res {args.res} is not a positive multiple of 32 (the '
                 'detector\'s largest stride): use e.g. 160, 320, 640')
    for k in ('batch', 'iters'):
        if getattr(args, k) < 1:
            ap.error(f'--{k} must be >= 1')
    if args.warmup < 0:
        ap.error('--warmup must be >= 0')
    return args


def mmyolo_checkpoint(path, work_dir):
    """``(mmyolo .pth, source)``, ``(None, None)`` for random weights; an
    Ultralytics ``.pt`` is converted into ``work_dir`` first."""
    from tools._common.assets import shared_path
    if path == 'random':
        return None, None
    if path is None:
        path = shared_path('weights', 'yolov5n-v6.1.pt')
        if not osp.isfile(path):
            return None, None
    if not osp.isfile(path):
        sys.exit(f'error: checkpoint not found: {path}; give an Ultralytics '
                 "yolov5n.pt, an mmyolo .pth or 'random'")
    if path.endswith('.pth'):
        return path, path
    import torch

    from mmzsq.converters.yolov5 import convert_yolov5
    dst = osp.join(work_dir, 'teacher_mmyolo.pth')
    try:
        ckpt = convert_yolov5(path)
    except (FileNotFoundError, ValueError) as e:
        sys.exit(f'error: {e}')
    torch.save(ckpt, dst)
    return dst, path


def now():
    """``perf_counter`` after the device finished its queued work."""
    import torch
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()
    return time.perf_counter()


def timestamp_hook():
    """A Runner hook noting the time after every Stage I step / Stage II
    iteration (``steps``) and after each Stage I batch was written
    (``batches``).  Both loops sync the device every step anyway."""
    from mmengine.hooks import Hook

    class Timestamps(Hook):
        priority = 'LOWEST'

        def __init__(self):
            self.t0, self.steps, self.batches = None, [], []

        def after_synthesis_iter(self, runner, loop):
            self.steps.append(now())

        def after_synthesis_batch(self, runner, loop, batch):
            self.batches.append(now())

        def before_train(self, runner):
            self.t0 = now()

        def after_train_iter(self, runner, batch_idx, data_batch=None,
                             outputs=None):
            self.steps.append(now())

        def rate(self, warmup, iters, batch, t0=None):
            """Images (x iterations) per second after ``warmup`` steps."""
            start = self.steps[warmup - 1] if warmup else t0
            return batch * iters / (self.steps[warmup + iters - 1] - start)

    return Timestamps()


def timed(fn, warmup, iters, batch):
    """img-it/s of ``fn()`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    t0 = now()
    for _ in range(iters):
        fn()
    return batch * iters / (now() - t0)


def summed(out):
    """The sum of every tensor in a (nested) model output."""
    import torch
    if torch.is_tensor(out):
        return out.float().sum()
    return sum(summed(o) for o in out)


def load_cfg(args):
    from tools._common import load_tool_config
    path = args.config if osp.isabs(args.config) else osp.join(ROOT,
                                                               args.config)
    if not osp.isfile(path):
        sys.exit(f'error: config not found: {args.config}')
    cfg = load_tool_config(path, args.cfg_options)
    if not (cfg.get('train_cfg') or {}).get('synthesis'):
        sys.exit(f'error: {args.config} has no train_cfg.synthesis; give a '
                 'zero-shot config such as ' + DEFAULT_CONFIG)
    args.stage1_compile, args.stage2_compile = compile_of(cfg, args)
    cfg.train_cfg.synthesis.compile = args.stage1_compile
    cfg.model.compile = args.stage2_compile
    if (args.stage1_compile or args.stage2_compile) and args.warmup < 2:
        sys.exit('error: compiled loops need --warmup >= 2 (Stage II '
                 'compiles at its second step, after the quantizers are '
                 'initialised); or give --no-compile')
    return cfg


def compile_of(cfg, args):
    """``(Stage I, Stage II)`` compile values: ``--compile`` /
    ``--no-compile``, else the config's, whose ``'auto'`` is decided by
    the config's own run length (its Stage I steps over the whole set,
    its ``max_iters``), as ``tools/train.py`` would decide it."""
    from mmzsq.models.utils.compiled_parts import CompiledParts
    if args.compile is not None:
        return args.compile, args.compile
    syn = cfg.train_cfg.synthesis
    batches = -(-int(syn.get('num_images', 1)) //
                int(syn.get('batch_size', 1)))
    steps = sum(int(st['iters']) for st in syn.get('stages', ())) * batches
    s1 = CompiledParts.resolve(syn.get('compile', False), steps)
    s2 = CompiledParts.resolve(cfg.model.get('compile', False),
                               int(cfg.train_cfg.get('max_iters', 0)))
    return s1, s2


def teacher_runner(cfg, ckpt, work_dir, hook):
    """A Runner (no training parts) holding the float teacher
    (``cfg.model.architecture``) with ``ckpt`` loaded strictly."""
    from mmengine.runner import Runner

    from mmzsq.utils.checkpoint import load_checked
    runner = Runner(
        model=copy.deepcopy(cfg.model.architecture), work_dir=work_dir,
        experiment_name=f'speed_stage1_{time.time_ns()}',
        default_scope=cfg.get('default_scope', 'mmyolo'), launcher='none',
        env_cfg=dict(dist_cfg=dict(backend='gloo')),
        randomness=dict(seed=0), log_level='ERROR',
        default_hooks=dict(runtime_info=None, param_scheduler=None,
                           checkpoint=None, sampler_seed=None, timer=None,
                           logger=None))
    runner.register_hook(hook)
    if ckpt:
        load_checked(runner.model, ckpt, 'the benchmark teacher',
                     'give --checkpoint a YOLOv5n of this config')
    return runner


def stage1_iters(syn, iters):
    """Timed Stage I steps: ``iters`` rounded up to whole ALS intervals, so
    that ALS (a no-grad detection pass every ``als.interval`` steps) weighs
    in the rate as often as in the config's runs (with 10 timed steps and
    ALS firing once in them, it weighed 5x its share at interval 50)."""
    als = syn.get('als')
    if not als:
        return iters
    every = int(als.get('interval', 50))
    return -(-iters // every) * every


def stage1_synthesis(cfg, args):
    """The config's Stage I settings on one batch, one label-sampling
    stage of ``warmup`` + :func:`stage1_iters` steps, ALS firing at the
    config's interval, once per interval inside the timed steps."""
    syn = copy.deepcopy(cfg.train_cfg.synthesis.to_dict())
    n = args.warmup + stage1_iters(syn, args.iters)
    syn.update(num_images=args.batch, batch_size=args.batch,
               stages=[dict(resolution=args.res, iters=n,
                            label_sampling=True)])
    if args.amp is not None:
        syn['amp'] = args.amp
    if syn.get('als'):  # from the first step (the stage is all timed)
        syn['als'].update(warmup=0, early_exit=n)
    return syn


def stage1_floor(args, iters, teacher, amp, channels_last, flops=False):
    """img-it/s of the teacher's fwd + bwd w.r.t. a random input; with
    ``flops``, also the FLOPs of one such image-iteration."""
    import torch
    teacher.eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    dev = next(teacher.parameters()).device
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    teacher.to(memory_format=fmt)
    x = torch.randn(args.batch, 3, args.res, args.res, device=dev)
    x = x.contiguous(memory_format=fmt).requires_grad_(True)

    def step():
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
            loss = summed(teacher(x, mode='tensor'))
        loss.backward()
        x.grad = None

    rate = timed(step, args.warmup, iters, args.batch)
    gflop = None
    if flops:
        from torch.utils.flop_counter import FlopCounterMode
        counter = FlopCounterMode(display=False)
        with counter:
            step()
        gflop = counter.get_total_flops() / args.batch / 1e9
    return rate, gflop


def stage_one(args, cfg, ckpt, wd, res):
    """Stage I floor and ours; returns the set folder ours wrote."""
    from mmzsq.synthesis import synthesize_set
    hook = timestamp_hook()
    runner = teacher_runner(cfg, ckpt, osp.join(wd, 'stage1'), hook)
    teacher = runner.model
    syn = stage1_synthesis(cfg, args)
    cuda = next(teacher.parameters()).is_cuda
    amp = bool(syn.get('amp', True)) and cuda  # as SynthesisLoop.amp
    cl = bool(syn.get('channels_last', True)) and cuda
    res['stage1_precision'] = 'bf16 autocast' if amp else 'fp32'
    # the floor over as many steps as ours
    res['stage1_iters'] = stage1_iters(syn, args.iters)
    res['stage1_floor_img_it_s'], gflop = stage1_floor(
        args, res['stage1_iters'], teacher, amp, cl, args.flops)
    if gflop is not None:
        res['stage1_gflop_per_img_it'] = gflop
    set_dir = osp.join(wd, 'set')
    synthesize_set(runner, teacher, syn, set_dir, ckpt)
    res['stage1_img_it_s'] = hook.rate(args.warmup, res['stage1_iters'],
                                       args.batch)
    res['stage1_write_s'] = hook.batches[0] - hook.steps[-1]
    res['stage1_over_floor'] = res['stage1_img_it_s'] / \
        res['stage1_floor_img_it_s']
    return set_dir


def stage2_cfg(cfg, args, ckpt, set_dir, wd):
    """The zsq config shrunk to ``warmup + iters`` Stage II iterations at
    ``res`` on the Stage I set, with the config's own dataloader (the
    shipped configs' InfiniteSampler never ends an epoch; an epoch end in
    MMEngine's iteration loop costs a 2 s sleep and new workers, and is
    measured like any other overhead)."""
    from mmengine.config import ConfigDict

    from mmzsq.synthesis import SyntheticSet
    cfg = copy.deepcopy(cfg)
    n = args.warmup + args.iters
    cfg.work_dir, cfg.launcher, cfg.log_level = osp.join(wd, 'stage2'), \
        'none', 'ERROR'
    cfg.model.init_checkpoint = ckpt
    cfg.train_cfg = ConfigDict(type='mmzsq.ZSQTrainLoop', max_iters=n,
                               val_interval=n + 1)
    ds = cfg.train_dataloader.dataset
    ds.data_root = set_dir + '/'
    ds.metainfo = dict(classes=tuple(SyntheticSet(set_dir).classes()))
    for t in ds.pipeline:
        if 'scale' in t:
            t.scale = (args.res, args.res)
    cfg.train_dataloader.batch_size = args.batch
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.default_hooks.checkpoint = None
    if stage2_amp(args) and args.device == 'cuda':
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.dtype = 'bfloat16'
    elif stage2_amp(args):
        cfg.optim_wrapper.type = 'mmzsq.CPUAutocastOptimWrapper'
    return cfg


def stage2_amp(args):
    """tools/train.py --amp (bf16 here): only with --amp."""
    return bool(args.amp)


def stage2_floor(args, algorithm, amp):
    """img-s of a float student's fwd + bwd + the teacher's forward."""
    import torch
    teacher = algorithm.teacher.eval()
    student = copy.deepcopy(teacher).train()
    for p in student.parameters():
        p.requires_grad_(True)
    dev = next(teacher.parameters()).device
    x = torch.randn(args.batch, 3, args.res, args.res, device=dev)

    def step():
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
            loss = summed(student(x, mode='tensor'))
            with torch.no_grad():
                teacher(x, mode='tensor')
        loss.backward()
        student.zero_grad(set_to_none=True)

    return timed(step, args.warmup, args.iters, args.batch)


def stage_two(args, cfg, ckpt, set_dir, wd, res):
    from mmzsq.utils.cli import build_runner
    runner = build_runner(stage2_cfg(cfg, args, ckpt, set_dir, wd))
    hook = timestamp_hook()
    runner.register_hook(hook)
    runner.train()
    res['stage2_img_s'] = hook.rate(args.warmup, args.iters, args.batch,
                                    hook.t0)
    amp = stage2_amp(args)
    res['stage2_precision'] = 'bf16 autocast' if amp else 'fp32'
    res['stage2_floor_img_s'] = stage2_floor(args, runner.model, amp)
    res['stage2_over_floor'] = res['stage2_img_s'] / \
        res['stage2_floor_img_s']


def machine(args):
    import torch
    dev = torch.cuda.get_device_name(0) if args.device == 'cuda' else \
        f'cpu ({os.cpu_count()} cores)'
    return dict(device=dev, torch=torch.__version__,
                threads=torch.get_num_threads(), res=args.res,
                batch=args.batch, iters=args.iters, warmup=args.warmup,
                compile='config' if args.compile is None else args.compile,
                stage1_compile=bool(args.stage1_compile),
                stage2_compile=bool(args.stage2_compile),
                loadavg_1min=round(os.getloadavg()[0], 2))


TABLE = [
    ('Stage I', 'floor: teacher fwd + bwd w.r.t. the input',
     'stage1_floor_img_it_s', 'img-it/s'),
    ('Stage I', 'ours: SynthesisLoop (BN hooks, L_det, priors, ALS)',
     'stage1_img_it_s', 'img-it/s'),
    ('Stage I', 'ours: writing the batch (once per batch)',
     'stage1_write_s', 's'),
    ('Stage II', 'floor: float student fwd + bwd + teacher fwd',
     'stage2_floor_img_s', 'img/s'),
    ('Stage II', 'ours: QAT train step through the Runner + data',
     'stage2_img_s', 'img/s'),
]


def print_table(res):
    s1 = res.get('stage1_iters', res['iters'])
    s1 = f' (Stage I {s1}: whole ALS intervals)' if s1 != res['iters'] \
        else ''
    print(f"{res['device']}, torch {res['torch']}, {res['threads']} "
          f"threads, load {res['loadavg_1min']}; {res['res']} px, batch "
          f"{res['batch']}, {res['iters']}{s1} timed + {res['warmup']} "
          f"warm-up iterations; compiled: Stage I "
          f"{'yes' if res['stage1_compile'] else 'no'}, Stage II "
          f"{'yes' if res['stage2_compile'] else 'no'}; "
          f"checkpoint: {res['checkpoint']}")
    print('| stage | what | precision | rate |')
    print('|---|---|---|---|')
    for stage, what, key, unit in TABLE:
        if key in res:
            prec = res[f"stage{stage.count('I')}_precision"]
            print(f'| {stage} | {what} | {prec} | {res[key]:.2f} {unit} |')
    for k in ('stage1', 'stage2'):
        if f'{k}_over_floor' in res:
            print(f"{k}: ours runs at {res[f'{k}_over_floor']:.2f} of the "
                  'floor\'s rate')
    if 'stage1_gflop_per_img_it' in res:
        print(f"Stage I floor: {res['stage1_gflop_per_img_it']:.2f} GFLOP "
              'per image-iteration')


def main(argv=None):
    args = parse_args(argv)
    if args.device == 'cpu':
        os.environ['CUDA_VISIBLE_DEVICES'] = ''
    import torch
    if args.device is None:
        args.device = 'cuda' if torch.cuda.is_available() else 'cpu'
    if args.device == 'cuda' and not torch.cuda.is_available():
        sys.exit('error: --device cuda, but torch sees no CUDA device; '
                 'use --device cpu')
    if args.threads:
        torch.set_num_threads(args.threads)
    from tools._common import import_mmzsq
    import_mmzsq()  # registries, compat patches
    from mmzsq.utils.cli import exit_on_user_error
    cfg = load_cfg(args)
    # logs (mmengine's go to sys.stdout) on stderr: stdout is the result
    with tempfile.TemporaryDirectory() as tmp, exit_on_user_error(), \
            contextlib.redirect_stdout(sys.stderr):
        wd = args.work_dir or tmp
        os.makedirs(wd, exist_ok=True)
        ckpt, src = mmyolo_checkpoint(args.checkpoint, wd)
        res = dict(machine(args), checkpoint=src or 'random weights')
        set_dir = None
        if '1' in args.stages or '2' in args.stages:
            set_dir = stage_one(args, cfg, ckpt, wd, res)
        if '2' in args.stages:
            stage_two(args, cfg, ckpt, set_dir, wd, res)
    if '1' not in args.stages:
        for k in [k for k in res if k.startswith('stage1')]:
            del res[k]
    if args.json:
        print(json.dumps(res))
    else:
        print_table(res)
    return res


if __name__ == '__main__':
    main()
