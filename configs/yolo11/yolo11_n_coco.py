# Float YOLO11-n: yolo11_s_coco.py at Ultralytics scale 'n'
# ([depth, width, max_channels] = [0.50, 0.25, 1024]), as mmyolo's YOLOv8-n
# is YOLOv8-s with a smaller width.  Official weights (not downloadable here):
#   https://github.com/ultralytics/assets/releases/download/v8.3.0/yolo11n.pt
_base_ = './yolo11_s_coco.py'

widen_factor = 0.25

model = dict(
    backbone=dict(widen_factor=widen_factor),
    neck=dict(widen_factor=widen_factor),
    bbox_head=dict(head_module=dict(widen_factor=widen_factor)))
