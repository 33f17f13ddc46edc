"""Stage I for tests: a synthesis dict with its ``teacher`` (a detector
config) and ``teacher_checkpoint``, run through the library's
:func:`mmzsq.synthesis.synthesize_set` inside a Runner holding that
teacher (what ``ZSQTrainLoop`` does with the algorithm's teacher)."""
import os.path as osp
import time

import numpy as np

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def yolov5n_model() -> dict:
    """The float YOLOv5n model dict of configs/yolov5/."""
    from mmengine.config import Config
    return Config.fromfile(osp.join(
        ROOT, 'configs/yolov5/yolov5_n-v61_fp_coco.py')).model.to_dict()


def tiny_yolo() -> dict:
    """YOLOv5 at widen 0.125 (8 stem channels), random weights."""
    model = yolov5n_model()
    for k in ('backbone', 'neck'):
        model[k]['widen_factor'] = 0.125
    model['bbox_head']['head_module']['widen_factor'] = 0.125
    return model


def tiny_synthesis(**kw) -> dict:
    """Two 64 px images, one step, from the tiny random teacher."""
    syn = dict(teacher=tiny_yolo(), teacher_checkpoint=None, num_images=2,
               batch_size=2, seed=0, stages=[dict(resolution=64, iters=1)],
               als=None, amp=False, channels_last=False, lr=0.1,
               prior_loss=dict(type='mmzsq.BNStatisticsLoss',
                               loss_weight=0.01),
               log_interval=1)
    syn.update(kw)
    return syn


def hand_set(set_dir, classes=('a', 'b', 'c'), n=3, res=64, info=None):
    """A finished set written through SyntheticSet (no model)."""
    from mmzsq.synthesis import SyntheticSet
    s = SyntheticSet(set_dir)
    rng = np.random.default_rng(0)
    imgs = [rng.integers(0, 256, (res, res, 3), dtype=np.uint8)
            for _ in range(n)]
    labels = [(np.array([[4., 4., 40., 50.]]), np.array([i % len(classes)]))
              for i in range(n)]
    s.write_batch(0, imgs, labels, [0.1] * n)
    s.merge(1, list(classes), dict(info or {}, seed=0))
    return s


def scope_of(model_cfg: dict) -> str:
    t = str(model_cfg.get('type', ''))
    if '.' in t:
        return t.split('.')[0]
    from mmyolo.registry import MODELS
    return 'mmyolo' if MODELS.get(t) is not None and t in \
        MODELS._module_dict else 'mmdet'


def teacher_runner(teacher: dict, checkpoint=None, work_dir=None,
                   seed: int = 0, log_level: str = 'WARNING'):
    """A Runner (no training parts) whose model is ``teacher``, with
    ``checkpoint`` loaded strictly."""
    from mmengine.config import ConfigDict
    from mmengine.runner import Runner

    from mmzsq.utils.checkpoint import load_checked
    runner = Runner(
        model=ConfigDict(teacher), work_dir=work_dir,
        experiment_name=f'stage_one_{time.time_ns()}',
        default_scope=scope_of(teacher), launcher='none',
        env_cfg=dict(dist_cfg=dict(backend='gloo')),
        randomness=dict(seed=seed), log_level=log_level,
        default_hooks=dict(runtime_info=None, param_scheduler=None,
                           checkpoint=None, sampler_seed=None,
                           timer=None, logger=None))
    if checkpoint:
        load_checked(runner.model, checkpoint, 'the test teacher', 'fix it')
    return runner


def generate_synthetic_set(synthesis: dict, set_dir: str, work_dir=None,
                           log_level: str = 'WARNING', runner=None):
    """Synthesise ``set_dir``; returns ``dict(coco=, stats=)``."""
    from mmzsq.synthesis import synthesize_set
    syn = dict(synthesis)
    teacher = syn.pop('teacher')
    ckpt = syn.pop('teacher_checkpoint', None)
    if runner is None:
        runner = teacher_runner(teacher, ckpt,
                                work_dir or osp.join(set_dir, 'logs'),
                                int(syn.get('seed', 0)), log_level)
    return synthesize_set(runner, runner.model, syn, set_dir, ckpt)
