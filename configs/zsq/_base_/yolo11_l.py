# YOLO11-l (configs/yolo11/yolo11_l_coco.py: YOLO11-s at scale 'l'):
# student and FP teacher start from this checkpoint.  No official mmyolo
# YOLO11 weights exist: convert Ultralytics' yolo11l.pt (https://github.com/
# ultralytics/assets/releases/download/v8.3.0/yolo11l.pt) with
#   python tools/model_converters/yolo11_to_mmyolo.py yolo11l.pt \
#       work_dirs/weights/yolo11l_mmyolo.pth
# or pass another path: --cfg-options model.init_checkpoint=...
# Its own Stage I set (a set made by another teacher is refused).
_base_ = './yolo11_zsq.py'
(deepen_factor, widen_factor, last_stage_out_channels,
 c3k_everywhere) = _base_.yolo11_scales.l
model = dict(architecture=_base_.yolo11_archs.l, init_checkpoint='work_dirs/weights/yolo11l_mmyolo.pth')  # noqa: E501
train_dataloader = dict(dataset=dict(data_root='work_dirs/zsq_sets/yolo11_l/'))
