"""Stage I and Stage II in one training Runner."""
import copy
import os.path as osp
from typing import Optional

import torch
from mmengine.model import is_model_wrapper
from mmengine.runner import IterBasedTrainLoop

from mmzsq.registry import LOOPS
from mmzsq.utils.errors import ConfigError

SET_LAYOUT = dict(ann_file='annotations.json', img_prefix='images/')


@LOOPS.register_module()
class ZSQTrainLoop(IterBasedTrainLoop):
    """An ``IterBasedTrainLoop`` whose training set is made by Stage I.

    Built by ``runner.train()`` (or ``runner.build_train_loop``), before
    the dataloader: if the set at ``train_dataloader.dataset.data_root`` is
    missing or incomplete, ``synthesis`` (the Stage I settings, see
    ``configs/zsq/_base_/synthesis.py``) synthesises it with the teacher of
    the Runner's model, on every rank (batches sharded by rank, each batch
    written atomically, a rerun resumes).  A set made by another teacher or
    with other settings is refused.  The dataloader is then built as usual
    on the set: a plain mmdet / mmyolo COCO dataset, whose classes default
    to the set's (the teacher's).  ``synthesis=None``: no Stage I, a plain
    ``IterBasedTrainLoop`` (the real-data baselines).

    The teacher: the algorithm's ``load_teacher()`` (one frozen teacher,
    shared with Stage II); for a plain detector (Stage I alone,
    ``tools/synthesize.py``), the model itself with
    ``synthesis.teacher_checkpoint`` loaded into it.

    ``train_dataloader.num_workers='auto'`` (the shipped configs): none
    without CUDA, 2 with (:func:`resolve_num_workers`).

    MMEngine's ``compile`` key (``compile=True`` or ``torch.compile``
    arguments) compiles ``model.train_step``, optimizer step included,
    which dynamo cannot trace; for a model with ``set_compile`` (Stage II's
    algorithm) it becomes ``model.compile``: the student's network is
    compiled, the loop around it stays eager.  ``model.compile='auto'``
    (the YOLOv5 configs) is decided here, by ``max_iters``
    (:func:`resolve_auto_compile`).
    """

    def __init__(self, runner, dataloader, max_iters: int,
                 synthesis: Optional[dict] = None, **kwargs):
        compile_to_model(runner)
        resolve_auto_compile(runner, max_iters)
        self.synthesis_stats = None
        if isinstance(dataloader, dict):
            dataloader = resolve_num_workers(copy.deepcopy(dataloader))
        if synthesis is not None:
            self.synthesis_stats = prepare_synthetic_set(
                runner, dataloader['dataset'], synthesis)
        super().__init__(runner, dataloader, max_iters, **kwargs)


#: ``train_dataloader.num_workers='auto'`` with a GPU
AUTO_WORKERS_CUDA = 2


def resolve_num_workers(dataloader: dict) -> dict:
    """``num_workers='auto'``: no worker process on a machine without
    CUDA, where the training step itself runs on every core (a worker
    preparing the next batch stalls the step's OpenMP threads: YOLOv5n
    W4A8 at 160 px on 2 cores, ours / floor 0.82-0.83 with none vs 0.78
    with 2, the step itself as fast, decoded images cached), else
    :data:`AUTO_WORKERS_CUDA`, so loading overlaps the GPU's work."""
    if dataloader.get('num_workers') != 'auto':
        return dataloader
    n = AUTO_WORKERS_CUDA if torch.cuda.is_available() else 0
    dataloader['num_workers'] = n
    if n == 0:
        dataloader['persistent_workers'] = False
    return dataloader


def compile_to_model(runner):
    """Move MMEngine's ``compile`` config key to the model's
    ``set_compile`` (see :class:`ZSQTrainLoop`)."""
    options = runner.cfg.get('compile')
    model = runner.model.module if is_model_wrapper(runner.model) \
        else runner.model
    if not options or not hasattr(model, 'set_compile'):
        return
    model.set_compile(options)
    runner.cfg.compile = False  # MMEngine's train_step stays eager
    runner.logger.info(
        'compile: the student network is compiled for training '
        '(model.compile), not train_step with its optimizer step')


def resolve_auto_compile(runner, max_iters: int):
    """``model.compile='auto'``: compiled for runs of at least
    :data:`~mmzsq.models.utils.compiled_parts.AUTO_MIN_STEPS`
    iterations."""
    model = runner.model.module if is_model_wrapper(runner.model) \
        else runner.model
    if getattr(model, 'compile_option', None) != 'auto':
        return
    if model.resolve_compile(max_iters):
        runner.logger.info(
            f"model.compile='auto': the student and teacher networks run "
            f'compiled ({max_iters} iterations)')


def set_dir_of(dataset: dict) -> str:
    """The set folder of a dataset config, which must use the layout Stage
    I writes (``annotations.json`` + ``images/``)."""
    root = dataset.get('data_root')
    ann = dataset.get('ann_file', SET_LAYOUT['ann_file'])
    img = (dataset.get('data_prefix') or {}).get('img',
                                                 SET_LAYOUT['img_prefix'])
    if not root:
        raise ConfigError(
            'train_dataloader.dataset.data_root is not set: it names the '
            'folder Stage I writes the synthetic set to')
    if ann != SET_LAYOUT['ann_file'] or img.rstrip('/') != 'images':
        raise ConfigError(
            f'train_dataloader.dataset reads {ann!r} and {img!r}, but Stage '
            "I writes 'annotations.json' and 'images/': set ann_file="
            "'annotations.json', data_prefix=dict(img='images/')")
    return root


def stage_one_teacher(runner, synthesis: dict):
    """``(teacher module, checkpoint name)`` of the Runner's model."""
    from mmzsq.utils.checkpoint import load_checked
    model = runner.model.module if is_model_wrapper(runner.model) \
        else runner.model
    if hasattr(model, 'load_teacher'):
        if synthesis.get('teacher_checkpoint'):
            raise ConfigError(
                'train_cfg.synthesis.teacher_checkpoint is set, but Stage I '
                "uses the algorithm's teacher: set model.teacher_checkpoint "
                '(or model.init_checkpoint) instead')
        return model.load_teacher(), model.teacher_checkpoint
    ckpt = synthesis.get('teacher_checkpoint')
    if ckpt:  # strict: a teacher with random weights synthesises junk
        load_checked(
            model, ckpt, 'the Stage I teacher (the model)',
            'set train_cfg.synthesis.teacher_checkpoint to the float '
            'checkpoint of this detector (same size and class count)')
    else:
        runner.logger.warning('Stage I: no train_cfg.synthesis.'
                              'teacher_checkpoint, the teacher has random '
                              'weights')
    return model, ckpt


def prepare_synthetic_set(runner, dataset: dict, synthesis: dict) -> dict:
    """Make sure the set ``dataset`` reads exists (synthesising what is
    missing), check it against the teacher and give ``dataset`` the set's
    classes unless it names its own.  Returns Stage I's stats (``None``
    when the set was complete)."""
    from mmzsq.synthesis import (DetectorAdapter, SyntheticSet,
                                 check_synthesis, set_meta, synthesize_set,
                                 teacher_hash)
    synthesis = check_synthesis(synthesis)
    set_dir = set_dir_of(dataset)
    teacher, ckpt = stage_one_teacher(runner, synthesis)
    store = SyntheticSet(set_dir)
    meta = set_meta(synthesis, teacher_hash(teacher),
                    DetectorAdapter(teacher).classes, ckpt)
    store.check_meta(meta)  # settings, class count, teacher weights
    store.check_expect(meta)  # the same, for a set without meta.json
    stats = None
    if not store.is_complete(int(synthesis['num_images']), repairable=True):
        stats = synthesize_set(runner, teacher, synthesis, set_dir, ckpt,
                               weights_hash=meta['teacher_hash'])['stats']
    else:
        runner.logger.info(f'Stage I: reusing the complete set {set_dir}')
    if dataset.get('metainfo') is None:
        dataset['metainfo'] = dict(classes=tuple(store.classes()))
    if not osp.isabs(set_dir):
        runner.logger.info(f'Stage II trains on {osp.abspath(set_dir)}')
    return stats
