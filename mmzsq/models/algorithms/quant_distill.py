"""LSQ quantization-aware training with task-specific distillation.

The paper's Stage II (Eq. 9): a quantized student is trained with

    L = beta_det * L_detect + beta_kl * L_KD + beta_feat * L_feat

against a frozen float teacher (eval mode) initialised from the same
checkpoint.  ``predict`` / ``tensor`` modes run the quantized student, so
``tools/test.py <zsq config> <ckpt>`` reports the quantized mAP.
"""
import copy
import math
import re
from typing import Dict, Iterable, List, Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.dist import all_reduce
from mmengine.logging import MessageHub, MMLogger
from mmrazor.models import BaseAlgorithm
from mmrazor.models.task_modules import RecorderManager
from torch.nn.modules.batchnorm import _BatchNorm

from mmzsq.models.fake_quants import LSQFakeQuantize
from mmzsq.models.losses.world_size_scaling import undo_world_size_scaling
from mmzsq.models.utils.compiled_parts import CompiledParts
from mmzsq.models.utils.yolo_predictions import check_yolo_head
from mmzsq.registry import MODELS
from mmzsq.utils.checkpoint import (FAKE_QUANT, check_state_dict,
                                    detector_state, read_checkpoint,
                                    state_dict_of)
from mmzsq.utils.errors import ConfigError, NonFiniteLossError
from .soft_label import SoftLabel

QUANT_MODES = ('qat', 'ptq')
BN_MODES = ('frozen', 'train', 'reestimate')


def num_classes_of(model: nn.Module) -> Optional[int]:
    """Number of classes of an mmdet/mmyolo detector (None if unknown)."""
    head = getattr(model, 'roi_head', None)
    head = getattr(head, 'bbox_head', None) or getattr(model, 'bbox_head',
                                                       None)
    if isinstance(head, nn.ModuleList):  # cascade heads
        head = head[-1]
    return getattr(head, 'num_classes', None)


def resolve_bn_mode(bn_mode, bn_momentum, freeze_bn_stats, quant_mode):
    """The student's BN mode from ``bn_mode`` and its former alias
    ``freeze_bn_stats``; contradictions are a :class:`ConfigError`."""
    if quant_mode not in QUANT_MODES:
        raise ValueError(f'quant_mode={quant_mode!r}: use one of '
                         f'{QUANT_MODES}')
    if freeze_bn_stats is not None:
        alias = 'frozen' if freeze_bn_stats else 'train'
        if bn_mode not in (None, alias):
            raise ConfigError(
                f'freeze_bn_stats={freeze_bn_stats} contradicts bn_mode='
                f'{bn_mode!r}; drop freeze_bn_stats (bn_mode replaces it)')
        bn_mode = alias
    bn_mode = bn_mode or 'frozen'
    if bn_mode not in BN_MODES:
        raise ConfigError(f'bn_mode={bn_mode!r} unknown; use one of '
                          f'{BN_MODES}')
    if quant_mode == 'ptq' and bn_mode != 'frozen':
        raise ConfigError(
            f"bn_mode={bn_mode!r} with quant_mode='ptq': PTQ keeps the "
            "weights and BN frozen; set bn_mode='frozen' (or quant_mode="
            "'qat')")
    if bn_momentum is not None and bn_mode != 'train':
        raise ConfigError(
            f"bn_momentum={bn_momentum} needs bn_mode='train' (got "
            f'{bn_mode!r}); drop bn_momentum or set bn_mode')
    return bn_mode


def _mse(s, t, name):
    """Mean MSE over the tensors of one recorded output."""
    s = list(s) if isinstance(s, (list, tuple)) else [s]
    t = list(t) if isinstance(t, (list, tuple)) else [t]
    if [a.shape for a in s] != [b.shape for b in t]:
        raise ConfigError(f'feature tap {name!r}: student and teacher '
                          'outputs differ in shape; add it to feat_exclude')
    return sum(F.mse_loss(a.float(), b.float())
               for a, b in zip(s, t)) / len(s)


def _under(name, prefix):
    return name == prefix or name.startswith(prefix + '.')


def feat_taps(student, teacher, names, types=(), exclude=()) -> List[str]:
    """Module names whose outputs L_feat compares: ``names`` plus every
    student module with a class named in ``types`` (anywhere in its MRO),
    minus those matching an ``exclude`` regex; each must exist, by name, in
    both student and teacher."""
    taps = list(names)
    found = set()
    for n, m in student.named_modules():
        hit = {c.__name__ for c in type(m).__mro__} & set(types)
        found |= hit
        if n and hit and n not in taps:
            taps.append(n)
    if set(types) - found:
        raise ConfigError(
            f'feat_types {sorted(set(types) - found)} match no module of the '
            "student; use class names such as 'Conv2d', 'BatchNorm2d'")
    drop = [re.compile(p) for p in exclude]
    taps = [n for n in taps if not any(p.search(n) for p in drop)]
    s_mods, t_mods = dict(student.named_modules()), dict(
        teacher.named_modules())
    missing = [n for n in taps if n not in s_mods or n not in t_mods]
    if missing:
        raise ConfigError(
            f'feat_layers {missing[:3]} are not modules of both student and '
            'teacher; name modules of the detector (e.g. backbone, neck, '
            'backbone.stage1)')
    return taps


@MODELS.register_module()
class QuantDistillAlgorithm(BaseAlgorithm):
    """Quantized student + frozen float teacher, Eq. 9 of the paper.

    Args:
        architecture (dict): the detector (student) config.
        quantizer (dict): e.g. ``dict(type='mmzsq.EagerLSQQuantizer',
            w_bits=4, a_bits=8)``.
        teacher (dict, optional): teacher detector config; default: the
            architecture's (same network, float).
        init_checkpoint (str, optional): float checkpoint both student and
            teacher start from (local path or URL).  Loaded by
            ``init_weights`` (i.e. at the start of training only).
        teacher_checkpoint (str, optional): teacher weights if they differ
            from ``init_checkpoint``.
        quant_mode (str): ``'qat'`` (weights + step sizes learned) or
            ``'ptq'`` (only step sizes/offsets learned; weights and BN frozen).
        loss_weights (dict): ``det``, ``kd``, ``feat`` betas; 0 switches a
            term off (no teacher forward at all when kd = feat = 0); ``iou``
            (default 0, off) weighs ``iou_loss``.
        kd_loss (dict): per-head L_KD, e.g. ``mmzsq.YOLOKDLoss`` (YOLOv5),
            ``mmzsq.YOLOv8KDLoss`` (YOLOv8 / YOLO11) or
            ``mmzsq.TwoStageKDLoss`` (``tau`` default 4).
        feat_layers (list[str]): module names whose outputs (tensors or
            tuples of tensors) are matched with MSE (L_feat).
        feat_types (list[str]): also tap every student module of these
            classes (class names anywhere in its MRO, e.g. ``['Conv2d',
            'BatchNorm2d']``: every conv and BN output, the official
            recipe's taps), matched with the same-named teacher module.
        feat_exclude (list[str]): regexes (``re.search`` on the name) of
            taps to drop.  L_feat is the mean over the taps.
        bn_mode (str): the student's BatchNorm during QAT: ``'frozen'``
            (running statistics fixed, eval mode; affine parameters still
            learned), ``'train'`` (train mode, statistics updated with
            ``bn_momentum``) or ``'reestimate'`` (frozen, after
            :meth:`reestimate_bn` re-estimated them on the quantized
            student).  PTQ needs ``'frozen'``.  Default ``'frozen'``.
        bn_momentum (float, optional): BN momentum in ``bn_mode='train'``
            (the official recipe: 0.03); default: the detector's own.
        freeze_bn_stats (bool, optional): the former switch, an alias:
            True = ``bn_mode='frozen'``, False = ``'train'``.
        soft_label (dict, optional): e.g. ``dict(conf_thr=0.25)``: L_detect
            only on the images whose every label the teacher sees with at
            least ``conf_thr`` (:class:`SoftLabel`; the others keep L_KD and
            L_feat), the fraction of the others logged as ``hard_frac``.
            Single-stage YOLO heads; default None (off).
        iou_loss (dict, optional): the loss ``loss_weights.iou`` weighs,
            default ``dict(type='mmzsq.DecodedBoxIoULoss')`` (1 - IoU of the
            student's and the teacher's decoded boxes where the teacher is
            confident); single-stage YOLO heads.
        compile (bool | dict): ``torch.compile`` the student's backbone,
            neck and dense-head module, the teacher's, L_KD and the IoU
            term, for the training steps (``dict``: ``torch.compile``'s
            arguments), once every fake quantizer is initialised:
            BatchNorm, activation and fake quantizers fuse into one graph
            per direction (YOLOv5n W4A8, 160 px, 1 thread: the student's
            forward + backward 232 -> 186 ms, as fast as the float
            student's eager 176 ms; the teacher's no-grad forward, 2
            threads: 26 -> 16 ms).  The first
            compiled step pays the compile (about 2-4 min on 2 CPU cores,
            seconds from inductor's disk cache), so it pays off in long
            runs; where it fails, one warning and training goes on
            eagerly.  ``'auto'`` (the YOLOv5 configs): on for runs of at
            least :data:`~mmzsq.models.utils.compiled_parts.AUTO_MIN_STEPS`
            iterations, decided by :class:`~mmzsq.engine.ZSQTrainLoop`
            (eager elsewhere).  MMEngine's own ``compile=True`` (which
            would compile ``train_step`` and the optimizer with it) is
            turned into this.  Default False.
    """

    def __init__(self,
                 architecture: Union[Dict, nn.Module],
                 quantizer: Dict,
                 teacher: Optional[Dict] = None,
                 init_checkpoint: Optional[str] = None,
                 teacher_checkpoint: Optional[str] = None,
                 quant_mode: str = 'qat',
                 loss_weights: Dict = dict(det=1.0, kd=1.0, feat=1.0),
                 kd_loss: Optional[Dict] = None,
                 feat_layers: Sequence[str] = ('backbone', 'neck'),
                 feat_types: Sequence[str] = (),
                 feat_exclude: Sequence[str] = (),
                 bn_mode: Optional[str] = None,
                 bn_momentum: Optional[float] = None,
                 freeze_bn_stats: Optional[bool] = None,
                 soft_label: Optional[Dict] = None,
                 iou_loss: Optional[Dict] = None,
                 compile: Union[bool, Dict, str] = False,
                 data_preprocessor: Optional[Dict] = None,
                 init_cfg: Optional[Dict] = None):
        bn_mode = resolve_bn_mode(bn_mode, bn_momentum, freeze_bn_stats,
                                  quant_mode)
        bad = set(loss_weights) - {'det', 'kd', 'feat', 'iou'}
        if bad:
            raise ValueError(f'loss_weights keys {sorted(bad)} unknown; use '
                             'det, kd, feat, iou')
        teacher = self._build_teacher(architecture, teacher)
        super().__init__(architecture, data_preprocessor, init_cfg)
        self.teacher, self.bn_mode = teacher, bn_mode
        self._check_same_classes()
        self.init_checkpoint = init_checkpoint
        self.teacher_checkpoint = teacher_checkpoint or init_checkpoint
        self._quantize(quantizer, quant_mode)
        if bn_momentum is not None:
            for m in self.architecture.modules():
                if isinstance(m, _BatchNorm):
                    m.momentum = bn_momentum
        self.loss_weights = dict(det=0.0, kd=0.0, feat=0.0, iou=0.0)
        self.loss_weights.update(loss_weights)
        self.two_stage = hasattr(self.architecture, 'roi_head') and hasattr(
            self.architecture, 'rpn_head')
        self._build_switches(soft_label, iou_loss)
        if kd_loss is None:
            kd_loss = dict(type='mmzsq.TwoStageKDLoss' if self.two_stage
                           else 'mmzsq.YOLOKDLoss')
        self.kd_loss = MODELS.build(kd_loss)
        self.feat_layers = feat_taps(self.architecture, self.teacher,
                                     feat_layers, feat_types, feat_exclude)
        if self.loss_weights['feat'] and not self.feat_layers:
            raise ConfigError('loss_weights.feat > 0 but no feature taps; '
                              'set feat_layers or feat_types (or feat=0)')
        self._build_recorders()
        self.compiled_parts = None
        self.set_compile(compile)

    def set_compile(self, options: Union[bool, Dict, str]):
        """Compile the student's parts for training (``True`` or
        ``torch.compile`` arguments) or not (``False``); ``'auto'``: not
        until :meth:`resolve_compile` knows the run's length."""
        self.compile_option = options
        self._build_compiled_parts(False if options == 'auto' else options)

    def resolve_compile(self, max_iters: int) -> bool:
        """``compile='auto'`` for a run of ``max_iters`` iterations (see
        :data:`~mmzsq.models.utils.compiled_parts.AUTO_MIN_STEPS`); whether
        the training steps run compiled."""
        if self.compile_option == 'auto':
            self._build_compiled_parts(
                CompiledParts.resolve('auto', max_iters))
        return self.compiled_parts is not None

    def _build_compiled_parts(self, options: Union[bool, Dict]):
        # the teacher's parts too: its no-grad forward compiles to an
        # inference graph (YOLOv5n, 160 px, batch 8, 2 threads: 26 -> 16 ms)
        self.compiled_parts = CompiledParts.build(
            [self.architecture, self.teacher], options, 'model.compile')
        # checked before every compiled step
        self._fake_quants = [m for m in self.architecture.modules()
                             if isinstance(m, LSQFakeQuantize)]

    def _compiled_parts(self):
        """The student's compiled parts when this step can use them:
        training with gradients, every fake quantizer initialised, fake
        quantization on and no observer running (what their traced step
        assumes)."""
        parts = self.compiled_parts
        if parts is None or not parts.enabled or \
                not torch.is_grad_enabled() or not self.training:
            return None
        for m in self._fake_quants:
            if not m._flag('initialized') or m._flag('static_enabled') or \
                    not m._flag('fake_quant_enabled'):
                return None
        return parts

    def _build_switches(self, soft_label, iou_loss):
        """``soft_label`` and the ``iou`` term: single-stage YOLO heads
        only, each a ConfigError naming the fix otherwise."""
        self.soft_label = SoftLabel.build(soft_label)
        if self.soft_label is not None:
            self._yolo_head('model.soft_label')
            if not self.loss_weights['det']:
                raise ConfigError(
                    'model.soft_label masks L_detect, but loss_weights.det '
                    'is 0: set loss_weights.det > 0 or soft_label=None')
        self.iou_loss = None
        if self.loss_weights['iou']:
            self._yolo_head('loss_weights.iou')
            self.iou_loss = MODELS.build(
                iou_loss or dict(type='mmzsq.DecodedBoxIoULoss'))
        elif iou_loss is not None:
            raise ConfigError(
                'model.iou_loss is set but loss_weights.iou is 0: set '
                'loss_weights.iou > 0 (or drop iou_loss)')

    def _yolo_head(self, switch):
        head = getattr(self.architecture, 'bbox_head', None)
        if self.two_stage or not isinstance(head, nn.Module):
            raise ConfigError(
                f'{switch} is for single-stage YOLO heads (mmyolo YOLOv5 / '
                f'YOLOv8 / YOLO11), not the two-stage '
                f'{type(self.architecture).__name__}; drop it from this '
                'config')
        check_yolo_head(head, switch)
        return head

    @staticmethod
    def _build_teacher(architecture, teacher):
        if teacher is None:
            if not isinstance(architecture, dict):
                raise ValueError('pass a teacher config when architecture '
                                 'is a built model')
            teacher = copy.deepcopy(architecture)
        teacher = MODELS.build(teacher) if isinstance(teacher, dict) \
            else teacher
        teacher.requires_grad_(False)
        return teacher.eval()

    def _check_same_classes(self):
        nt, ns = num_classes_of(self.teacher), num_classes_of(
            self.architecture)
        if nt != ns:
            raise ConfigError(
                f'teacher has {nt} classes but the student {ns}; teacher and '
                'student must be the same detector (set the same num_classes '
                'in both model configs)')

    def _quantize(self, quantizer, quant_mode):
        """Insert the fake quantizers; PTQ learns only their parameters."""
        self.quantizer = MODELS.build(quantizer)
        self.quantizer.prepare(self.architecture)
        self.quant_mode = quant_mode
        if quant_mode == 'ptq':
            for m in self.architecture.modules():
                for p in m.parameters(recurse=False):
                    p.requires_grad_(isinstance(m, LSQFakeQuantize))

    def _build_recorders(self):
        """MMRazor recorders: the feature taps (student and teacher) and
        the student outputs L_KD compares."""
        rec = {f'feat{i}': dict(type='mmrazor.ModuleOutputs', source=name)
               for i, name in enumerate(self.feat_layers)}
        s_rec = dict(rec)
        if self.two_stage:
            s_rec['rpn'] = dict(type='mmrazor.ModuleOutputs',
                                source='rpn_head')
            s_rec['rois'] = dict(type='mmrazor.ModuleInputs',
                                 source='roi_head.bbox_roi_extractor')
            s_rec['roi_cls'] = dict(type='mmrazor.ModuleOutputs',
                                    source='roi_head.bbox_head')
        else:
            s_rec['head'] = dict(type='mmrazor.ModuleOutputs',
                                 source='bbox_head.head_module')
        self.student_recorders = RecorderManager(s_rec)
        self.student_recorders.initialize(self.architecture)
        self.teacher_recorders = RecorderManager(rec)
        self.teacher_recorders.initialize(self.teacher)
        # taps past backbone + neck need the teacher's head run
        self._head_taps = any(
            not _under(n, 'backbone') and not _under(n, 'neck')
            for n in self.feat_layers)

    @property
    def _teacher_head_needed(self) -> bool:
        """Whether the teacher runs its head: L_KD, a tap in a head, the
        soft-label rule or the IoU term."""
        return bool(self.loss_weights['kd'] or self._head_taps
                    or self.soft_label is not None
                    or self.iou_loss is not None)

    @property
    def freeze_bn_stats(self) -> bool:
        """Former switch: whether the student's BN statistics are fixed
        during training (``bn_mode`` ``'frozen'`` or ``'reestimate'``)."""
        return self.bn_mode != 'train'

    # ------------------------------------------------------------ weights
    def load_teacher(self) -> nn.Module:
        """The frozen float teacher with its weights loaded (once).

        Stage I (:class:`mmzsq.ZSQTrainLoop`) asks for it when the train
        loop is built, before the Runner initialises the weights; without a
        checkpoint the teacher is the randomly initialised student (and the
        student keeps that initialisation)."""
        if getattr(self, '_teacher_loaded', False):
            return self.teacher
        logger = MMLogger.get_current_instance()
        if self.teacher_checkpoint is None:
            self.architecture.init_weights()
            self._load(self.teacher, self._float_state(self.architecture),
                       'the student init', 'the teacher')
            logger.info('QuantDistillAlgorithm: no init_checkpoint, teacher '
                        '= randomly initialised student')
        else:
            self._load(self.teacher, self._read(self.teacher_checkpoint),
                       self.teacher_checkpoint, 'the teacher')
        self._teacher_loaded = True
        return self.teacher

    def init_weights(self):
        """Load the float checkpoint into student and teacher (training
        start only; tools/test.py and --resume load quantized checkpoints
        over the model instead)."""
        if self.init_checkpoint is None:
            random_student = self.teacher_checkpoint is None  # = teacher
            self.load_teacher()
            if not random_student:
                self.architecture.init_weights()
            return
        # the student first: its checkpoint is the one the user set
        self._load(self.architecture, self._read(self.init_checkpoint),
                   self.init_checkpoint, 'the student (model.architecture)')
        self.load_teacher()
        MMLogger.get_current_instance().info(
            f'QuantDistillAlgorithm: student from {self.init_checkpoint}, '
            f'teacher from {self.teacher_checkpoint}')

    @staticmethod
    def _float_state(model):
        return {k: v for k, v in model.state_dict().items()
                if 'fake_quant.' not in k}

    @staticmethod
    def _read(path):
        """The float detector weights in a float or an mmzsq checkpoint."""
        return detector_state(state_dict_of(read_checkpoint(path)))

    @staticmethod
    def _load(model, state, src, role):
        """Load ``state`` into the student or teacher; every weight must be
        set, with its shape, and nothing left over (fake-quant state
        excepted: float checkpoints have none)."""
        check_state_dict(
            model, state, src, role,
            'the checkpoint is another detector, size or class count: set '
            'model.init_checkpoint (and teacher_checkpoint) to the float '
            'checkpoint of this architecture (same num_classes; convert '
            'Ultralytics weights with tools/model_converters/'
            'yolov5_to_mmyolo.py or yolo11_to_mmyolo.py), or pick the '
            'configs/zsq/ config of that detector', ignore=FAKE_QUANT)
        model.load_state_dict(state, strict=False)

    # -------------------------------------------------------------- modes
    def train(self, mode: bool = True):
        # nn.Module.train without the teacher (mmengine's train loop calls
        # this every iteration: the teacher's ~550 modules were set to
        # train and back to eval each time); it stays in eval mode
        if not isinstance(mode, bool):
            raise ValueError('training mode is expected to be boolean')
        # every iteration's call finds the flags as the last one left them
        # (unless e.g. a validation ran): checking them is 40 us, setting
        # them again 2.9 ms (YOLOv5n W4A8, 803 modules; 2 % of a compiled
        # 160-px step)
        last = self.__dict__.get('_mode_flags')
        if last is not None and last[0] is mode and all(
                m.training is flag for m, flag in last[1]):
            return self
        self.training = mode
        for child in self.children():
            if child is not self.teacher:
                child.train(mode)
        if any(m.training for m in self.teacher.modules()):
            self.teacher.eval()
        if mode and self.bn_mode != 'train':
            for m in self.architecture.modules():
                if isinstance(m, _BatchNorm):
                    m.eval()
        # (in __dict__ directly: a plain list, no submodule registration)
        self.__dict__['_mode_flags'] = (mode, [(m, m.training)
                                               for m in self.modules()])
        return self

    @torch.no_grad()
    def reestimate_bn(self, batches: Iterable[Dict]) -> int:
        """Re-estimate the student's BN running statistics (``bn_mode=
        'reestimate'``): a no-grad pass of the *quantized* student over
        ``batches`` (dataloader batches) with BN in train mode and
        ``momentum=None`` (cumulative average), averaged over ranks; BN is
        frozen again afterwards.  Returns the number of batches used."""
        bns = [m for m in self.architecture.modules()
               if isinstance(m, _BatchNorm) and m.track_running_stats]
        saved = [(m.momentum, copy.deepcopy(m.state_dict())) for m in bns]
        was_training = self.training
        self.architecture.eval()
        for m in bns:
            m.reset_running_stats()
            m.momentum = None
            m.train()
        n = 0
        try:
            for batch in batches:
                # mmyolo's yolov5_collate batches (dict samples) take the
                # training path of its preprocessor; lists of samples either
                data = self.data_preprocessor(
                    batch, isinstance(batch.get('data_samples'), dict))
                self.architecture(data['inputs'], mode='tensor')
                n += 1
        finally:
            for m, (momentum, state) in zip(bns, saved):
                m.momentum = momentum
                if n == 0:
                    m.load_state_dict(state)
            self.train(was_training)
        if n == 0:
            raise ConfigError('reestimate_bn got no batches; give it k >= 1 '
                              'training batches')
        for m in bns:
            all_reduce(m.running_mean, op='mean')
            all_reduce(m.running_var, op='mean')
        return n

    def loss(self, inputs, data_samples=None):
        parts = self._compiled_parts()
        if parts is None:
            return self._loss(inputs, data_samples)
        return parts.run(self._loss, inputs, data_samples)

    def _loss(self, inputs, data_samples=None):
        w = self.loss_weights
        t_out = None
        if self.soft_label is not None:
            # the teacher first: its head outputs pick the easy images
            t_out = self._teacher_forward(inputs)
            with self.student_recorders:
                det_losses = self._soft_label_det_loss(inputs, data_samples,
                                                       t_out)
        else:
            with self.student_recorders:
                det_losses = self.architecture(inputs, data_samples,
                                               mode='loss')
        det_losses = undo_world_size_scaling(self.architecture, det_losses)
        # one tensor per term (mmengine sums lists, e.g. per-level RPN terms)
        det_losses = self.parse_losses(det_losses)[1]
        det_losses.pop('loss')  # their total
        losses = {}
        for k, v in det_losses.items():
            if 'loss' not in k:
                losses[k] = v
            elif w['det']:
                losses[f'det_{k}'] = w['det'] * v
        if w['kd'] or w['feat'] or self.iou_loss is not None:
            if t_out is None:
                t_out = self._teacher_forward(inputs)
            if w['kd']:
                losses['loss_kd'] = w['kd'] * self._kd_loss(t_out)
            if w['feat']:
                losses['loss_feat'] = w['feat'] * self._feat_loss()
            if self.iou_loss is not None:
                losses['loss_iou'] = w['iou'] * self._compiled(
                    self.iou_loss)(self.student_recorders.get_recorder(
                        'head').get_record_data(), t_out,
                    self.architecture.bbox_head)
        self._check_finite(losses)
        return losses

    def _soft_label_det_loss(self, inputs, data_samples, t_out):
        """The student's forward (``extract_feat`` + head, once, on the
        whole batch: its recorders see every image) and its L_detect terms
        on the easy images (:meth:`SoftLabel.det_loss`)."""
        arch = self.architecture
        outs = arch.bbox_head(arch.extract_feat(inputs))
        return self.soft_label.det_loss(arch.bbox_head, outs, data_samples,
                                        t_out)

    @torch.no_grad()
    def _teacher_forward(self, inputs):
        """Teacher pass (its recorders catch the feature taps): the head
        outputs L_KD compares, when L_KD is on or a tap lies in a head."""
        with self.teacher_recorders:
            t_feats = self.teacher.extract_feat(inputs)
            if not self._teacher_head_needed:
                return None
            if self.two_stage:
                rois = self.student_recorders.get_recorder(
                    'rois').get_record_data(data_idx=1)
                t_rpn = self.teacher.rpn_head(t_feats)
                t_roi = self.teacher.roi_head._bbox_forward(
                    t_feats, rois)['cls_score']
                return t_rpn, t_roi
            return self._teacher_head(t_feats)

    def _kd_loss(self, t_out):
        sr = self.student_recorders
        if self.two_stage:
            t_rpn, t_roi = t_out
            s_rpn = sr.get_recorder('rpn').get_record_data()
            s_roi = sr.get_recorder('roi_cls').get_record_data()
            return self._compiled(self.kd_loss)(s_rpn[0], t_rpn[0],
                                                s_roi[0], t_roi)
        return self._compiled(self.kd_loss)(
            sr.get_recorder('head').get_record_data(), t_out)

    def _compiled(self, loss: nn.Module):
        """``loss`` compiled too in a compiled step (L_KD, the IoU term:
        their elementwise passes and backward fused)."""
        parts = self.compiled_parts
        return parts.function(loss) if parts is not None and \
            parts.active else loss

    def _teacher_head(self, feats):
        """Teacher head-module outputs in the student's (training) format.

        Only the head module's own ``training`` flag follows the student's
        (its BN layers stay in eval mode): heads that return extra outputs
        when training, e.g. YOLOv8 / YOLO11's DFL ``bbox_dist_preds``, then
        give the teacher's too.  A no-op for YOLOv5.
        """
        t_mod = self.teacher.bbox_head.head_module
        s_mod = self.architecture.bbox_head.head_module
        was = t_mod.training
        t_mod.training = s_mod.training
        try:
            return t_mod(feats)
        finally:
            t_mod.training = was

    def _feat_loss(self):
        """MSE per tap (mean over its output tensors and calls), averaged
        over taps."""
        per_tap = []
        for i, name in enumerate(self.feat_layers):
            s_rec = self.student_recorders.get_recorder(
                f'feat{i}').data_buffer
            t_rec = self.teacher_recorders.get_recorder(
                f'feat{i}').data_buffer
            if len(s_rec) != len(t_rec) or not s_rec:
                raise ConfigError(
                    f'feature tap {name!r} ran {len(s_rec)} times in the '
                    f'student but {len(t_rec)} in the teacher (the teacher '
                    'runs backbone, neck and the L_KD head only); add it to '
                    'feat_exclude')
            per_call = [_mse(s, t, name) for s, t in zip(s_rec, t_rec)]
            per_tap.append(sum(per_call) / len(per_call))
        return sum(per_tap) / len(per_tap)

    @staticmethod
    def _check_finite(losses):
        for k, v in losses.items():
            if torch.is_tensor(v) and 'loss' in k and \
                    not math.isfinite(float(v.detach().sum())):
                step = MessageHub.get_current_instance().get_info('iter', 0)
                raise NonFiniteLossError(
                    f'loss term {k} is {float(v.detach().sum())} at step '
                    f'{step}; lower the learning rate or its beta, or check '
                    'the training data')

    def quant_state(self) -> List:
        """(name, bits, scale, offset) of every fake quantizer."""
        return [(n, m.bits, m.scale.detach().clone(),
                 m.zero_point.detach().clone())
                for n, m in self.architecture.named_modules()
                if isinstance(m, LSQFakeQuantize)]
