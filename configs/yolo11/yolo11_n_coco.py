# Float YOLO11-n: yolo11_s_coco.py at Ultralytics scale 'n'
# ([depth, width, max_channels] = [0.50, 0.25, 1024]), as mmyolo's YOLOv8-n
# is YOLOv8-s with a smaller width.  Official weights (not downloadable here):
#   https://github.com/ultralytics/assets/releases/download/v8.3.0/yolo11n.pt
_base_ = './yolo11_s_coco.py'
(deepen_factor, widen_factor, last_stage_out_channels,
 c3k_everywhere) = _base_.yolo11_scales.n
model = _base_.yolo11_archs.n
