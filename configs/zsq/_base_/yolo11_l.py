# YOLO11-l (configs/yolo11/yolo11_l_coco.py): student and FP teacher
# start from this checkpoint.  No official mmyolo YOLO11 weights exist:
# convert Ultralytics' yolo11l.pt (https://github.com/ultralytics/assets/
# releases/download/v8.3.0/yolo11l.pt) with
#   python tools/model_converters/yolo11_to_mmyolo.py yolo11l.pt \
#       work_dirs/weights/yolo11l_mmyolo.pth
# or pass another path: --cfg-options model.init_checkpoint=...
# YOLO11-m's network twice as deep (Ultralytics scale 'l': [depth, width,
# max_channels] = [1.00, 1.00, 512]).
_base_ = './yolo11_m.py'
deepen_factor = 1.0
model = dict(
    init_checkpoint='work_dirs/weights/yolo11l_mmyolo.pth',
    architecture=dict(backbone=dict(deepen_factor=deepen_factor),
                      neck=dict(deepen_factor=deepen_factor)))

# its own Stage I set (a set made by another teacher is refused)
train_dataloader = dict(
    dataset=dict(data_root='work_dirs/zsq_sets/yolo11_l/'))
