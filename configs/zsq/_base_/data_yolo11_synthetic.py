# YOLO11 family: train data of Stage II (THE one place to edit it): Stage
# I's synthetic set, synthesised on first use (train_cfg.synthesis) into the
# dataset's data_root (per size: ./yolo11_*.py).  The float model and the
# val/test data are configs/yolo11/yolo11_s_coco.py's (./yolo11_{m,l}.py
# re-size it).
_base_ = ['../../yolo11/yolo11_s_coco.py', './zsq_runtime.py']

# mmyolo's YOLOv8 close-mosaic pipeline (letterbox, random affine scale,
# HSV, flip) as configs/yolo11/yolo11_s_coco.py has it (without Albu): no
# Mosaic; the synthetic images already are 640 x 640.  Each image is
# decoded once (mmzsq.CachedLoadImageFromFile).
zsq_train_pipeline = [
    dict(type='mmzsq.CachedLoadImageFromFile', backend_args=None),
    *_base_.train_pipeline_stage2[1:]]
# (collate_fn re-stated: the `mmyolo::` base tags it with `_scope_`)
train_dataloader = dict(
    _base_.zsq_train_dataloader,
    collate_fn=dict(_delete_=True, type='yolov5_collate'),
    dataset=dict(_delete_=True, type='YOLOv5CocoDataset', **_base_.zsq_set,
                 data_root='work_dirs/zsq_sets/yolo11/',
                 pipeline=zsq_train_pipeline))
# the YOLOv8 base switches to its close-mosaic pipeline at an epoch: no
# epochs here (iteration-based QAT), so no pipeline switch / EMA hooks
custom_hooks = []
