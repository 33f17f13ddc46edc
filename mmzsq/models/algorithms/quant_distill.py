"""LSQ quantization-aware training with task-specific distillation.

The paper's Stage II (Eq. 9): a quantized student is trained with

    L = beta_det * L_detect + beta_kl * L_KD + beta_feat * L_feat

against a frozen float teacher (eval mode) initialised from the same
checkpoint.  ``predict`` / ``tensor`` modes run the quantized student, so
``tools/test.py <zsq config> <ckpt>`` reports the quantized mAP.
"""
import copy
import math
from typing import Dict, List, Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.logging import MessageHub, MMLogger
from mmrazor.models import BaseAlgorithm
from mmrazor.models.task_modules import RecorderManager
from torch.nn.modules.batchnorm import _BatchNorm

from mmzsq.models.fake_quants import LSQFakeQuantize
from mmzsq.models.losses.world_size_scaling import undo_world_size_scaling
from mmzsq.registry import MODELS
from mmzsq.utils.checkpoint import (FAKE_QUANT, check_state_dict,
                                    detector_state, read_checkpoint,
                                    state_dict_of)
from mmzsq.utils.errors import ConfigError, NonFiniteLossError

QUANT_MODES = ('qat', 'ptq')


def num_classes_of(model: nn.Module) -> Optional[int]:
    """Number of classes of an mmdet/mmyolo detector (None if unknown)."""
    head = getattr(model, 'roi_head', None)
    head = getattr(head, 'bbox_head', None) or getattr(model, 'bbox_head',
                                                       None)
    if isinstance(head, nn.ModuleList):  # cascade heads
        head = head[-1]
    return getattr(head, 'num_classes', None)


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
            term off (no teacher forward at all when kd = feat = 0).
        kd_loss (dict): per-head L_KD, e.g. ``mmzsq.YOLOKDLoss`` (YOLOv5),
            ``mmzsq.YOLOv8KDLoss`` (YOLOv8 / YOLO11) or
            ``mmzsq.TwoStageKDLoss`` (``tau`` default 4).
        feat_layers (list[str]): module names whose outputs (tensors or
            tuples of tensors) are matched with MSE, averaged over layers.
        freeze_bn_stats (bool): keep the student's BN running statistics
            fixed (BN affine parameters are still learned in QAT).
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
                 freeze_bn_stats: bool = True,
                 data_preprocessor: Optional[Dict] = None,
                 init_cfg: Optional[Dict] = None):
        if quant_mode not in QUANT_MODES:
            raise ValueError(f'quant_mode={quant_mode!r}: use one of '
                             f'{QUANT_MODES}')
        bad = set(loss_weights) - {'det', 'kd', 'feat'}
        if bad:
            raise ValueError(f'loss_weights keys {sorted(bad)} unknown; use '
                             'det, kd, feat')
        if teacher is None:
            if not isinstance(architecture, dict):
                raise ValueError('pass a teacher config when architecture '
                                 'is a built model')
            teacher = copy.deepcopy(architecture)
        teacher = MODELS.build(teacher) if isinstance(teacher, dict) \
            else teacher
        super().__init__(architecture, data_preprocessor, init_cfg)
        self.teacher = teacher
        nt, ns = num_classes_of(self.teacher), num_classes_of(
            self.architecture)
        if nt != ns:
            raise ConfigError(
                f'teacher has {nt} classes but the student {ns}; teacher and '
                'student must be the same detector (set the same num_classes '
                'in both model configs)')
        self.teacher.requires_grad_(False)
        self.teacher.eval()

        self.quantizer = MODELS.build(quantizer)
        self.quantizer.prepare(self.architecture)
        self.init_checkpoint = init_checkpoint
        self.teacher_checkpoint = teacher_checkpoint or init_checkpoint
        self.quant_mode = quant_mode
        self.freeze_bn_stats = freeze_bn_stats or quant_mode == 'ptq'
        if quant_mode == 'ptq':
            for m in self.architecture.modules():
                for p in m.parameters(recurse=False):
                    p.requires_grad_(isinstance(m, LSQFakeQuantize))

        self.loss_weights = dict(det=0.0, kd=0.0, feat=0.0)
        self.loss_weights.update(loss_weights)
        self.two_stage = hasattr(self.architecture, 'roi_head') and hasattr(
            self.architecture, 'rpn_head')
        if kd_loss is None:
            kd_loss = dict(type='mmzsq.TwoStageKDLoss' if self.two_stage
                           else 'mmzsq.YOLOKDLoss')
        self.kd_loss = MODELS.build(kd_loss)
        self.feat_layers = list(feat_layers)

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
        random_student = self.teacher_checkpoint is None  # = the teacher
        self.load_teacher()
        if self.init_checkpoint is None:
            if not random_student:
                self.architecture.init_weights()
            return
        self._load(self.architecture, self._read(self.init_checkpoint),
                   self.init_checkpoint, 'the student (model.architecture)')
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
        super().train(mode)
        self.teacher.eval()
        if mode and self.freeze_bn_stats:
            for m in self.architecture.modules():
                if isinstance(m, _BatchNorm):
                    m.eval()
        return self

    def loss(self, inputs, data_samples=None):
        w = self.loss_weights
        with self.student_recorders:
            det_losses = self.architecture(inputs, data_samples, mode='loss')
        det_losses = undo_world_size_scaling(self.architecture, det_losses)
        losses = {}
        for k, v in det_losses.items():
            if 'loss' in k:
                if w['det']:
                    v = sum(v) if isinstance(v, (list, tuple)) else v
                    losses[f'det_{k}'] = w['det'] * v
            else:
                losses[k] = v
        if w['kd'] or w['feat']:
            with torch.no_grad(), self.teacher_recorders:
                t_feats = self.teacher.extract_feat(inputs)
                if self.two_stage and w['kd']:
                    rois = self.student_recorders.get_recorder(
                        'rois').get_record_data(data_idx=1)
                    t_rpn = self.teacher.rpn_head(t_feats)
                    t_roi = self.teacher.roi_head._bbox_forward(
                        t_feats, rois)['cls_score']
                elif w['kd']:
                    t_head = self._teacher_head(t_feats)
            if w['kd']:
                sr = self.student_recorders
                if self.two_stage:
                    s_rpn = sr.get_recorder('rpn').get_record_data()
                    s_roi = sr.get_recorder('roi_cls').get_record_data()
                    kd = self.kd_loss(s_rpn[0], t_rpn[0], s_roi[0], t_roi)
                else:
                    kd = self.kd_loss(
                        sr.get_recorder('head').get_record_data(), t_head)
                losses['loss_kd'] = w['kd'] * kd
            if w['feat']:
                losses['loss_feat'] = w['feat'] * self._feat_loss()
        self._check_finite(losses)
        return losses

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
        per_layer = []
        for i, name in enumerate(self.feat_layers):
            s = self.student_recorders.get_recorder(
                f'feat{i}').get_record_data()
            t = self.teacher_recorders.get_recorder(
                f'feat{i}').get_record_data()
            s = list(s) if isinstance(s, (list, tuple)) else [s]
            t = list(t) if isinstance(t, (list, tuple)) else [t]
            per_layer.append(sum(
                F.mse_loss(a.float(), b.float()) for a, b in zip(s, t)) /
                len(s))
        return sum(per_layer) / len(per_layer)

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
