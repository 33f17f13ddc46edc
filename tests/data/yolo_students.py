"""Small real YOLO students for the Stage II switch tests: YOLOv5 at widen
0.125 and YOLO11n, randomly initialised, in a QuantDistillAlgorithm."""
import copy
import os.path as osp

import torch
from mmengine.config import Config

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
KINDS = ('yolov5', 'yolo11')


def yolo_model(kind: str):
    """The model dict of a tiny YOLOv5 or of YOLO11n (configs/yolo11/)."""
    if kind == 'yolov5':
        from tests.data.stage_one import tiny_yolo
        return tiny_yolo()
    # (a ConfigDict: mmyolo's YOLOv8Head reads train_cfg.assigner)
    return Config.fromfile(osp.join(
        ROOT, 'configs/yolo11/yolo11_n_coco.py')).model


def student_algo(kind: str, **kw):
    """A W4A8 QuantDistillAlgorithm of ``kind``, student and teacher from
    the same random init, in train mode."""
    from mmengine.registry import init_default_scope

    from mmzsq.registry import MODELS
    init_default_scope('mmyolo')
    torch.manual_seed(0)
    cfg = dict(type='mmzsq.QuantDistillAlgorithm',
               architecture=dict(yolo_model(kind), use_syncbn=False),
               quantizer=dict(type='mmzsq.EagerLSQQuantizer', w_bits=4,
                              a_bits=8),
               loss_weights=dict(det=0.04, kd=0.1, feat=1.0),
               kd_loss=dict(type='mmzsq.YOLOKDLoss' if kind == 'yolov5'
                            else 'mmzsq.YOLOv8KDLoss'))
    cfg.update(copy.deepcopy(kw))
    algo = MODELS.build(cfg)
    algo.init_weights()
    return algo.train()


def yolo_batch(algo, rows, size=64, n=2, seed=0):
    """A preprocessed yolov5_collate batch: ``n`` random images and the box
    rows ``(image, class, x1, y1, x2, y2)``."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, size, size, generator=g) * 255
    ds = dict(bboxes_labels=torch.tensor(rows, dtype=torch.float),
              img_metas=[dict(batch_input_shape=(size, size))] * n)
    return algo.data_preprocessor(dict(inputs=x, data_samples=ds), True)


def blind_teacher(algo, cls: int, logit: float = -30.):
    """The teacher's class-``cls`` logits pushed to ``logit`` everywhere:
    it can no longer see that class."""
    mod = algo.teacher.bbox_head.head_module
    with torch.no_grad():
        if hasattr(mod, 'convs_pred'):  # YOLOv5: per prior 4 + 1 + C
            for conv in mod.convs_pred:
                conv.bias.view(mod.num_base_priors, -1)[:, 5 + cls] = logit
        else:  # YOLOv8 / YOLO11: cls_preds[i][2] -> C logits
            for seq in mod.cls_preds:
                seq[2].bias[cls] = logit
