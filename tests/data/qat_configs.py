"""Small-config helpers shared by the Stage II (QAT) tests."""
import copy
import os.path as osp

from mmengine.config import Config

from tests.conftest import COCO128, COCO_TINY


def yolo_pipelines(res):
    train = [
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations', with_bbox=True),
        dict(type='YOLOv5KeepRatioResize', scale=(res, res)),
        dict(type='LetterResize', scale=(res, res), allow_scale_up=False,
             pad_val=dict(img=114)),
        dict(type='mmdet.PackDetInputs',
             meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                        'scale_factor', 'pad_param'))]
    test = [
        dict(type='LoadImageFromFile'),
        dict(type='YOLOv5KeepRatioResize', scale=(res, res)),
        dict(type='LetterResize', scale=(res, res), allow_scale_up=False,
             pad_val=dict(img=114)),
        dict(type='LoadAnnotations', with_bbox=True, _scope_='mmdet'),
        dict(type='mmdet.PackDetInputs',
             meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                        'scale_factor', 'pad_param'))]
    return train, test


def small_yolo_cfg(config, work_dir, ckpt=None, res=160, iters=2,
                   n_train=8, n_val=8, batch=2, val=True, keep_val=False):
    """A zsq YOLOv5 config shrunk for CPU tests: coco128 as the train set
    (stand-in for the synthetic set), coco_tiny (first ``n_val``) as val."""
    cfg = Config.fromfile(config)
    train, test = yolo_pipelines(res)
    cfg.work_dir = str(work_dir)
    cfg.model.init_checkpoint = ckpt
    cfg.model.teacher_checkpoint = None
    cfg.train_dataloader.batch_size = batch
    cfg.train_dataloader.num_workers = 0
    cfg.train_dataloader.persistent_workers = False
    cfg.train_dataloader.dataset = dict(
        type='YOLOv5CocoDataset', data_root=COCO128 + '/',
        ann_file='annotations/instances_train2017.json',
        data_prefix=dict(img='train2017/'), indices=n_train,
        filter_cfg=dict(filter_empty_gt=True, min_size=2), pipeline=train)
    val_ds = dict(
        type='YOLOv5CocoDataset', data_root=COCO_TINY + '/',
        ann_file='annotations/instances_val2017.json',
        data_prefix=dict(img='val2017/'), indices=n_val, test_mode=True,
        batch_shapes_cfg=None, pipeline=test)
    for key in ('val_dataloader', 'test_dataloader'):
        if keep_val:
            break
        cfg[key] = dict(batch_size=2, num_workers=0, persistent_workers=False,
                        drop_last=False,
                        sampler=dict(type='DefaultSampler', shuffle=False),
                        dataset=copy.deepcopy(val_ds))
    ev = dict(type='mmdet.CocoMetric', proposal_nums=(100, 1, 10),
              ann_file=osp.join(COCO_TINY, 'annotations',
                                'instances_val2017.json'),
              metric='bbox')
    if not keep_val:
        cfg.val_evaluator = ev
        cfg.test_evaluator = copy.deepcopy(ev)
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=iters,
                         val_interval=iters if val else iters + 1)
    cfg.param_scheduler = []
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', by_epoch=False,
                                        interval=iters)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=1)
    cfg.default_hooks.visualization = dict(type='mmdet.DetVisualizationHook')
    cfg.env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo'),
                       mp_cfg=dict(mp_start_method='fork'))
    cfg.randomness = dict(seed=0)
    cfg.visualizer = dict(type='mmdet.DetLocalVisualizer',
                          vis_backends=[dict(type='LocalVisBackend')])
    return cfg


def tiny_two_stage(model):
    """Shrink an mmdet Mask R-CNN model dict (R50 or Swin) in place."""
    bb = model['backbone']
    if bb['type'] == 'SwinTransformer':
        bb.update(embed_dims=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1],
                  window_size=4, init_cfg=None)
        in_ch = [16, 32, 64, 128]
    else:
        bb.update(depth=18, init_cfg=None)
        in_ch = [64, 128, 256, 512]
    model['neck'].update(in_channels=in_ch, out_channels=16)
    model['rpn_head'].update(in_channels=16, feat_channels=16)
    roi = model['roi_head']
    roi['bbox_roi_extractor'].update(out_channels=16)
    roi['bbox_head'].update(in_channels=16, fc_out_channels=32,
                            num_classes=3)
    roi['mask_roi_extractor'].update(out_channels=16)
    roi['mask_head'].update(in_channels=16, conv_out_channels=16,
                            num_classes=3)
    model['train_cfg']['rpn']['sampler']['num'] = 32
    model['train_cfg']['rcnn']['sampler']['num'] = 16
    return model


def two_stage_batch(model, size=96, n=2):
    """A preprocessed (inputs, data_samples) batch with boxes and masks."""
    import torch
    from mmdet.structures import DetDataSample
    from mmdet.structures.mask import BitmapMasks
    from mmengine.structures import InstanceData
    torch.manual_seed(0)
    samples = []
    for i in range(n):
        ds = DetDataSample(metainfo=dict(
            img_shape=(size, size), ori_shape=(size, size),
            batch_input_shape=(size, size), pad_shape=(size, size),
            scale_factor=(1., 1.)))
        gt = InstanceData()
        gt.bboxes = torch.tensor([[8., 8., 60., 70.], [30., 20., 90., 88.]])
        gt.labels = torch.tensor([0, 2 - i])
        m = torch.zeros(2, size, size, dtype=torch.uint8)
        for j, (x1, y1, x2, y2) in enumerate(gt.bboxes.int().tolist()):
            m[j, y1:y2, x1:x2] = 1
        gt.masks = BitmapMasks(m.numpy(), size, size)
        ds.gt_instances = gt
        samples.append(ds)
    inputs = torch.rand(n, 3, size, size) * 255
    data = model.data_preprocessor(dict(inputs=list(inputs),
                                        data_samples=samples), True)
    return data


def upstream_cfg(name):
    """``Config`` of an upstream config given as ``'mmdet::path.py'``."""
    import importlib
    pkg, rel = name.split('::')
    root = osp.dirname(importlib.import_module(pkg).__file__)
    return Config.fromfile(osp.join(root, '.mim', 'configs', rel))
