# Float YOLO11-l (Ultralytics 8.3+) in mmyolo: YOLO11-s (yolo11_s_coco.py)
# at Ultralytics scale 'l' ([depth, width, max_channels] = [1.00, 1.00, 512],
# every C3k2 with C3k blocks: ./_base_/yolo11_scales.py); loss, assigner,
# data pipeline, schedule and test_cfg are YOLO11-s's (YOLOv8-s's).
# Official weights (not downloadable here):
#   https://github.com/ultralytics/assets/releases/download/v8.3.0/yolo11l.pt
_base_ = './yolo11_s_coco.py'
(deepen_factor, widen_factor, last_stage_out_channels,
 c3k_everywhere) = _base_.yolo11_scales.l
model = _base_.yolo11_archs.l
