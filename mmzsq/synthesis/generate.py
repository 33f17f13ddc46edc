"""Stage I driver: synthesise a calibration set from a ``synthesis`` dict.

Builds an MMEngine Runner for the frozen teacher (logging, hooks, message
hub), a :class:`SynthesisLoop` over this rank's batches and the
:class:`AdaptiveLabelSamplingHook`; rank 0 merges the index after a barrier.
"""
import copy
import functools
import hashlib
import json
import os
import os.path as osp
import time
from typing import Optional

from mmengine.dist import barrier, broadcast_object_list, get_dist_info

from mmzsq.utils.errors import ConfigError, SynthesisInterrupted
from .synthetic_set import SyntheticSet

REQUIRED = ('teacher', 'num_images', 'batch_size', 'stages')


def teacher_hash(synthesis: dict) -> str:
    """sha256 of the checkpoint file (first 16 hex), of its URL/path string
    when not local, or of the model config for randomly initialised
    teachers."""
    ckpt = synthesis.get('teacher_checkpoint')
    h = hashlib.sha256()
    if ckpt and osp.isfile(ckpt):
        st = os.stat(ckpt)
        return _file_hash(osp.realpath(ckpt), st.st_size, st.st_mtime_ns)
    elif ckpt:
        h.update(str(ckpt).encode())
    else:
        h.update(('random:' + json.dumps(_plain(synthesis['teacher']),
                                         sort_keys=True)).encode())
    return h.hexdigest()[:16]


@functools.lru_cache(maxsize=16)
def _file_hash(path: str, size: int, mtime_ns: int) -> str:
    """sha256 (first 16 hex) of a file; cached per (path, size, mtime):
    the tools and the dataset ask for the same checkpoint several times."""
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()[:16]


def _plain(obj):
    from mmengine.config import ConfigDict
    if isinstance(obj, (dict, ConfigDict)):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, (int, float, str, bool)) or obj is None:
        return obj
    return repr(obj)


def set_meta(synthesis: dict, classes=None) -> dict:
    stages = synthesis['stages']
    res = stages[-1]['resolution']
    meta = dict(
        teacher_checkpoint=str(synthesis.get('teacher_checkpoint')),
        teacher_hash=teacher_hash(synthesis),
        resolution=list(res) if isinstance(res, (list, tuple)) else [res,
                                                                     res],
        num_images=int(synthesis['num_images']),
        batch_size=int(synthesis['batch_size']),
        seed=int(synthesis.get('seed', 0)))
    if classes is not None:
        meta['num_classes'] = len(classes)
    return meta


def _validate(synthesis: dict) -> None:
    missing = [k for k in REQUIRED if synthesis.get(k) is None]
    if missing:
        raise ConfigError(
            f'synthesis config lacks {missing}: start from '
            'configs/zsq/_base_/synthesis_<family>.py and set teacher=<model '
            'cfg> and teacher_checkpoint=<path>')
    ckpt = synthesis.get('teacher_checkpoint')
    if ckpt and '://' not in str(ckpt) and not osp.isfile(ckpt):
        raise FileNotFoundError(
            f'teacher_checkpoint {ckpt} not found; convert the weights first '
            '(tools/model_converters/yolov5_to_mmyolo.py for YOLOv5) or fix '
            'the path')


def _default_scope(teacher: dict) -> str:
    t = teacher.get('type', '')
    if isinstance(t, str) and '.' in t:
        return t.split('.')[0]
    try:
        import mmyolo.models  # noqa: F401
        from mmyolo.registry import MODELS as YM
        if t in YM._module_dict:
            return 'mmyolo'
    except ImportError:  # pragma: no cover
        pass
    return 'mmdet'


class _KeepCurrentInstances:
    """A nested Runner must not leave its scope/hub/logger/visualizer as the
    'current' global instances of an outer Runner."""

    def __enter__(self):
        from mmengine.logging import MessageHub, MMLogger
        from mmengine.registry import DefaultScope
        from mmengine.visualization import Visualizer
        self.saved = []
        for cls in (DefaultScope, MessageHub, MMLogger, Visualizer):
            d = cls._instance_dict
            if d:
                self.saved.append((cls, next(iter(reversed(d)))))
        return self

    def __exit__(self, *exc):
        for cls, name in self.saved:
            d = cls._instance_dict
            if name in d:
                d[name] = d.pop(name)


def generate_synthetic_set(synthesis: dict, set_dir: str,
                           work_dir: Optional[str] = None,
                           progress_bar: bool = False,
                           log_level: str = 'INFO') -> dict:
    """Synthesise (or finish) the set at ``set_dir``; returns the COCO
    index (every rank).

    Ctrl-C raises :class:`SynthesisInterrupted` (a ``KeyboardInterrupt``)
    whose message says how many batches are finished and kept."""
    try:
        return _generate(synthesis, set_dir, work_dir, progress_bar,
                         log_level)
    except SynthesisInterrupted:
        raise
    except KeyboardInterrupt:
        try:
            bs = int(synthesis['batch_size'])
            total = (int(synthesis['num_images']) + bs - 1) // bs
            done = SyntheticSet(set_dir).count_done(total)
            what = f'{done} of {total} batches'
        except Exception:  # pragma: no cover - bad settings
            what = 'the finished batches'
        raise SynthesisInterrupted(
            f'interrupted: {what} of {set_dir} are finished and kept; rerun '
            'the same command to resume') from None


def _generate(synthesis: dict, set_dir: str, work_dir: Optional[str],
              progress_bar: bool, log_level: str) -> dict:
    from mmengine.config import ConfigDict
    from mmengine.runner import Runner

    from mmzsq.registry import LOOPS
    from .detector_adapter import DetectorAdapter
    synthesis = copy.deepcopy(_plain(synthesis))
    _validate(synthesis)
    rank, world = get_dist_info()
    store = SyntheticSet(set_dir)
    # cheap check before building anything
    store.check_meta(set_meta(synthesis))
    teacher = synthesis['teacher']
    scope = synthesis.get('default_scope') or _default_scope(teacher)
    work_dir = work_dir or osp.join(set_dir, 'logs')
    with _KeepCurrentInstances():
        runner = Runner(
            model=ConfigDict(teacher),  # heads read test_cfg.attr
            work_dir=work_dir,
            experiment_name=f'synthesis_{osp.basename(osp.normpath(set_dir))}'
            f'_{time.time_ns()}',
            default_scope=scope,
            load_from=None,
            launcher='none',  # rank/world come from torch.distributed
            env_cfg=dict(cudnn_benchmark=False,
                         dist_cfg=dict(backend='gloo')),
            randomness=dict(seed=int(synthesis.get('seed', 0))),
            default_hooks=dict(
                runtime_info=None, param_scheduler=None, checkpoint=None,
                sampler_seed=None,
                timer=dict(type='IterTimerHook'),
                logger=dict(type='LoggerHook',
                            interval=synthesis.get('log_interval', 50))),
            custom_hooks=[dict(synthesis['als'],
                               type=synthesis['als'].get(
                                   'type', 'mmzsq.AdaptiveLabelSamplingHook'))]
            if synthesis.get('als') else [],
            log_processor=dict(by_epoch=False, window_size=10),
            log_level=log_level)
        ckpt = synthesis.get('teacher_checkpoint')
        if ckpt:  # strict: a teacher with random weights synthesises junk
            from mmzsq.utils.checkpoint import load_checked
            load_checked(
                runner.model, ckpt, 'the Stage I teacher (synthesis.teacher)',
                'set synthesis.teacher_checkpoint to the float checkpoint of '
                'this detector (same size and class count), or '
                'synthesis.teacher to the model it was trained as')
        model = runner.model
        adapter = DetectorAdapter(model, synthesis.get('sample_format',
                                                       'auto'))
        meta = set_meta(synthesis, adapter.classes)
        meta['classes'] = adapter.classes
        store.open(meta, rank)
        barrier()
        store.check_meta(meta)
        num_images, bs = meta['num_images'], meta['batch_size']
        num_batches = (num_images + bs - 1) // bs
        mine = [k for k in range(num_batches) if k % world == rank]
        loop_keys = ('label_sampler', 'det_loss_weight', 'prior_loss',
                     'tv_loss', 'l2_loss', 'lr', 'betas', 'eta_min',
                     'init_mean', 'init_std', 'cutout', 'jitter', 'flip',
                     'low_pass_filter', 'amp', 'channels_last',
                     'size_divisor')
        loop_cfg = dict(type=synthesis.get('loop_type', 'mmzsq.SynthesisLoop'),
                        adapter=adapter, writer=store, batches=mine,
                        num_images=num_images, batch_size=bs,
                        stages=synthesis['stages'],
                        seed=meta['seed'], progress_bar=progress_bar,
                        **{k: synthesis[k] for k in loop_keys
                           if k in synthesis})
        loop = LOOPS.build(loop_cfg, default_args=dict(runner=runner,
                                                       dataloader=None))
        runner._train_loop = loop
        t0 = time.time()
        runner.logger.info(
            f'synthesising {len(mine)} of {num_batches} batches '
            f'(rank {rank}/{world}) into {set_dir}')
        loop.run()
        elapsed = time.time() - t0
        barrier()
        coco = None
        if rank == 0:
            info = dict(
                description='mmzsq task-specific synthetic calibration set',
                teacher_checkpoint=meta['teacher_checkpoint'],
                teacher_hash=meta['teacher_hash'], seed=meta['seed'],
                stages=synthesis['stages'], world_size=world,
                config={k: v for k, v in synthesis.items()
                        if k != 'teacher'},
                teacher=synthesis['teacher'],
                elapsed_s_rank0=elapsed)
            coco = store.merge(num_batches, adapter.classes, info)
            n_box = len(coco['annotations'])
            runner.logger.info(
                f'synthetic set {set_dir}: {len(coco["images"])} images, '
                f'{n_box / max(len(coco["images"]), 1):.2f} boxes/image, '
                f'{len({a["category_id"] for a in coco["annotations"]})} '
                f'classes; {elapsed:.1f}s on rank 0')
        barrier()
        if world > 1:
            objs = [coco]
            broadcast_object_list(objs, src=0)
            coco = objs[0]
        stats = dict(elapsed_s=elapsed, iters=loop.iter,
                     done_batches=loop.done_batches,
                     skipped_batches=loop.skipped_batches)
    return dict(coco=coco, stats=stats)
