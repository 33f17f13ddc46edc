"""Label-image agreement of a synthetic set: mAP of the float teacher's
detections on the synthetic images, scored against the synthetic labels.
(Tools-side: the analysis tools' own Runner, not part of the library.)
High = the images really show the labelled objects.

The teacher runs through ``Runner.test``: mmdet's ``CocoDataset`` over the
set (images as written, no resizing), the teacher's own
``data_preprocessor`` and ``predict``, and mmdet's ``CocoMetric``.
"""
import json
import os.path as osp
import tempfile
from typing import Dict

import torch.nn as nn

from mmzsq.utils.errors import SetMismatchError


def _set_dataloader(set_dir: str, coco: dict, batch_size: int) -> dict:
    """A test dataloader over the set's images as they are: a no-op resize
    to their common size only records ``scale_factor`` = 1 for the
    heads' ``rescale``."""
    sizes = {(im['width'], im['height']) for im in coco['images']}
    if len(sizes) != 1:
        raise SetMismatchError(
            f'synthetic set {set_dir} has images of {len(sizes)} sizes '
            f'({sorted(sizes)[:3]}); a set is written at one resolution: '
            'delete it and synthesise it anew')
    classes = tuple(c['name'] for c in sorted(coco['categories'],
                                              key=lambda c: c['id']))
    pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='Resize', scale=sizes.pop(), keep_ratio=False),
        dict(type='PackDetInputs',
             meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                        'scale_factor'))]
    return dict(
        batch_size=batch_size, num_workers=0, drop_last=False,
        sampler=dict(type='DefaultSampler', shuffle=False),
        dataset=dict(type='CocoDataset', data_root=set_dir,
                     ann_file='annotations.json',
                     data_prefix=dict(img='images/'), test_mode=True,
                     metainfo=dict(classes=classes), pipeline=pipeline))


def label_image_agreement(adapter, set_dir: str, batch_size: int = 8
                          ) -> Dict[str, float]:
    """COCO bbox metrics of ``adapter.model`` (the teacher, a
    :class:`~mmzsq.synthesis.DetectorAdapter`'s) on the set at
    ``set_dir`` against its labels."""
    from mmengine.runner import Runner
    ann = osp.join(set_dir, 'annotations.json')
    with open(ann) as f:
        coco = json.load(f)
    model: nn.Module = adapter.model
    with tempfile.TemporaryDirectory() as work_dir:
        runner = Runner(
            model=model, work_dir=work_dir, test_cfg=dict(type='TestLoop'),
            test_dataloader=_set_dataloader(set_dir, coco, batch_size),
            test_evaluator=dict(type='CocoMetric', ann_file=ann,
                                metric='bbox'),
            default_scope='mmdet', log_level='WARNING',
            env_cfg=dict(cudnn_benchmark=False),
            experiment_name=f'label_agreement_{osp.basename(set_dir)}')
        res = runner.test()
    return {k.replace('coco/', ''): float(v) for k, v in res.items()}
