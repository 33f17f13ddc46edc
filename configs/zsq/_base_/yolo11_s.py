# YOLO11-s (configs/yolo11/yolo11_s_coco.py): student and FP teacher start
# from this checkpoint.  No official mmyolo YOLO11 weights exist: convert
# Ultralytics' yolo11s.pt (https://github.com/ultralytics/assets/releases/
# download/v8.3.0/yolo11s.pt) with
#   python tools/model_converters/yolo11_to_mmyolo.py yolo11s.pt \
#       work_dirs/weights/yolo11s_mmyolo.pth
# or pass another path: --cfg-options model.init_checkpoint=...
_base_ = './yolo11_zsq.py'
model = dict(init_checkpoint='work_dirs/weights/yolo11s_mmyolo.pth')

# its own Stage I set (a set made by another teacher is refused)
train_dataloader = dict(
    dataset=dict(data_root='work_dirs/zsq_sets/yolo11_s/'))
