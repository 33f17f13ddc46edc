"""Stage I driver: synthesise a calibration set with a loaded teacher.

:func:`synthesize_set` runs a :class:`~mmzsq.engine.SynthesisLoop` over this
rank's batches inside the caller's Runner (its logger, message hub, hooks
and device), on the teacher the caller hands in; rank 0 merges the COCO
index after a barrier.  It builds no Runner and no model:
:class:`~mmzsq.engine.ZSQTrainLoop` calls it with the algorithm's own
teacher before Stage II, ``tools/synthesize.py`` through the same loop.
"""
import copy
import hashlib
import time
from typing import Optional

import torch
import torch.nn as nn
from mmengine.dist import barrier, broadcast_object_list, get_dist_info

from mmzsq.utils.errors import ConfigError, SynthesisInterrupted
from .detector_adapter import DetectorAdapter
from .synthetic_set import SyntheticSet

REQUIRED = ('num_images', 'batch_size', 'stages')
# synthesis keys the SynthesisLoop takes as they are
LOOP_KEYS = ('label_sampler', 'det_loss_weight', 'prior_loss', 'tv_loss',
             'l2_loss', 'lr', 'betas', 'eta_min', 'init_mean', 'init_std',
             'cutout', 'jitter', 'flip', 'low_pass_filter', 'amp',
             'channels_last', 'size_divisor', 'log_interval', 'progress_bar',
             'keep_best', 'resolution_scaled_terms', 'compile')
# synthesis keys that describe the run, not the loop
RUN_KEYS = ('num_images', 'batch_size', 'seed', 'stages', 'als',
            'loop_type', 'sample_format', 'teacher_checkpoint')


def teacher_hash(model: nn.Module) -> str:
    """sha256 (first 16 hex) of a teacher's weights and buffers: names,
    shapes, dtypes and values, fake-quant state excepted.  A set records
    it; a set made by other weights is refused."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        if 'fake_quant' in name:
            continue
        t = t.detach().cpu().contiguous()
        h.update(f'{name}:{tuple(t.shape)}:{t.dtype};'.encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def plain(obj):
    """Config dicts / tuples as plain JSON-able Python values."""
    from mmengine.config import ConfigDict
    if isinstance(obj, (dict, ConfigDict)):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    if isinstance(obj, (int, float, str, bool)) or obj is None:
        return obj
    return repr(obj)


def set_meta(synthesis: dict, teacher_hash: str, classes=None,
             teacher_checkpoint: Optional[str] = None) -> dict:
    """What ``meta.json`` fixes about a set (see ``SyntheticSet``)."""
    res = synthesis['stages'][-1]['resolution']
    meta = dict(
        teacher_checkpoint=str(teacher_checkpoint),
        teacher_hash=teacher_hash,
        resolution=list(res) if isinstance(res, (list, tuple)) else [res,
                                                                     res],
        num_images=int(synthesis['num_images']),
        batch_size=int(synthesis['batch_size']),
        seed=int(synthesis.get('seed', 0)))
    if classes is not None:
        meta['num_classes'] = len(classes)
        meta['classes'] = list(classes)
    return meta


def check_synthesis(synthesis: dict) -> dict:
    """A plain copy of ``synthesis``; unknown or missing keys are a
    :class:`ConfigError` naming the fix."""
    synthesis = copy.deepcopy(plain(synthesis))
    missing = [k for k in REQUIRED if synthesis.get(k) is None]
    if missing:
        raise ConfigError(
            f'train_cfg.synthesis lacks {missing}: start from '
            'configs/zsq/_base_/synthesis.py (num_images, batch_size, '
            'stages)')
    unknown = sorted(set(synthesis) - set(LOOP_KEYS) - set(RUN_KEYS))
    if unknown:
        raise ConfigError(
            f'train_cfg.synthesis has unknown keys {unknown}; the teacher is '
            "the algorithm's (drop teacher=), known keys: "
            f'{", ".join(sorted(LOOP_KEYS + RUN_KEYS))}')
    return synthesis


def synthesize_set(runner, teacher: nn.Module, synthesis: dict,
                   set_dir: str, teacher_checkpoint: Optional[str] = None,
                   weights_hash: Optional[str] = None) -> dict:
    """Synthesise (or finish) the set at ``set_dir`` with ``teacher`` (a
    loaded float detector) inside ``runner``; returns ``dict(coco=<the COCO
    index, every rank>, stats=...)``.  ``weights_hash``: the teacher's
    :func:`teacher_hash` when the caller has it already.

    Ctrl-C raises :class:`SynthesisInterrupted` (a ``KeyboardInterrupt``)
    whose message says how many batches are finished and kept."""
    synthesis = check_synthesis(synthesis)
    store = SyntheticSet(set_dir)
    try:
        return _synthesize(runner, teacher, synthesis, store,
                           teacher_checkpoint,
                           weights_hash or teacher_hash(teacher))
    except SynthesisInterrupted:
        raise
    except KeyboardInterrupt:
        bs = int(synthesis['batch_size'])
        total = (int(synthesis['num_images']) + bs - 1) // bs
        raise SynthesisInterrupted(
            f'interrupted: {store.count_done(total)} of {total} batches of '
            f'{set_dir} are finished and kept; rerun the same command to '
            'resume') from None


def _synthesize(runner, teacher, synthesis, store, teacher_checkpoint,
                weights_hash):
    rank, world = get_dist_info()
    adapter = DetectorAdapter(teacher, synthesis.get('sample_format',
                                                     'auto'))
    meta = set_meta(synthesis, weights_hash, adapter.classes,
                    teacher_checkpoint)
    store.open(meta, rank)
    barrier()
    store.check_meta(meta)
    num_batches = -(-meta['num_images'] // meta['batch_size'])
    mine = [k for k in range(num_batches) if k % world == rank]
    loop = _build_loop(runner, adapter, store, synthesis, meta, mine)
    runner.logger.info(f'Stage I: synthesising {len(mine)} of {num_batches} '
                       f'batches (rank {rank}/{world}) into {store.set_dir}')
    t0 = time.time()
    loop.run()
    elapsed = time.time() - t0
    barrier()
    coco = None
    if rank == 0:
        coco = _merge(runner, store, synthesis, meta, adapter.classes,
                      dict(world_size=world, elapsed_s_rank0=elapsed))
    barrier()
    if world > 1:
        objs = [coco]
        broadcast_object_list(objs, src=0)
        coco = objs[0]
    stats = dict(elapsed_s=elapsed, iters=loop.iter,
                 done_batches=loop.done_batches,
                 skipped_batches=loop.skipped_batches)
    return dict(coco=coco, stats=stats)


def _build_loop(runner, adapter, store, synthesis, meta, batches):
    from mmzsq.registry import HOOKS, LOOPS
    hooks = []
    if synthesis.get('als'):
        als = dict(synthesis['als'])
        als.setdefault('type', 'mmzsq.AdaptiveLabelSamplingHook')
        hooks.append(HOOKS.build(als))
    cfg = dict(type=synthesis.get('loop_type', 'mmzsq.SynthesisLoop'),
               adapter=adapter, writer=store, batches=batches,
               num_images=meta['num_images'], batch_size=meta['batch_size'],
               stages=synthesis['stages'], seed=meta['seed'], hooks=hooks,
               **{k: synthesis[k] for k in LOOP_KEYS if k in synthesis})
    return LOOPS.build(cfg, default_args=dict(runner=runner,
                                              dataloader=None))


def _merge(runner, store, synthesis, meta, classes, extra):
    info = dict(
        description='mmzsq task-specific synthetic calibration set',
        teacher_checkpoint=meta['teacher_checkpoint'],
        teacher_hash=meta['teacher_hash'], seed=meta['seed'],
        stages=synthesis['stages'], config=synthesis, **extra)
    num_batches = -(-meta['num_images'] // meta['batch_size'])
    coco = store.merge(num_batches, classes, info)
    n_img = max(len(coco['images']), 1)
    runner.logger.info(
        f'synthetic set {store.set_dir}: {len(coco["images"])} images, '
        f'{len(coco["annotations"]) / n_img:.2f} boxes/image, '
        f'{len({a["category_id"] for a in coco["annotations"]})} classes; '
        f'{extra["elapsed_s_rank0"]:.1f}s on rank 0')
    return coco
