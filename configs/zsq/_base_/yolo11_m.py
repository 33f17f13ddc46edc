# YOLO11-m (configs/yolo11/yolo11_m_coco.py): student and FP teacher
# start from this checkpoint.  No official mmyolo YOLO11 weights exist:
# convert Ultralytics' yolo11m.pt (https://github.com/ultralytics/assets/
# releases/download/v8.3.0/yolo11m.pt) with
#   python tools/model_converters/yolo11_to_mmyolo.py yolo11m.pt \
#       work_dirs/weights/yolo11m_mmyolo.pth
# or pass another path: --cfg-options model.init_checkpoint=...
_base_ = './yolo11_zsq.py'
# Ultralytics scale 'm': [depth, width, max_channels] = [0.50, 1.00, 512]
deepen_factor, widen_factor = 0.5, 1.0
last_stage_out_channels = 512
c3k_everywhere = True  # m/l/x: every C3k2 uses C3k blocks
model = dict(
    init_checkpoint='work_dirs/weights/yolo11m_mmyolo.pth',
    architecture=dict(
        backbone=dict(deepen_factor=deepen_factor, widen_factor=widen_factor,
                      last_stage_out_channels=last_stage_out_channels,
                      c3k_everywhere=c3k_everywhere),
        neck=dict(deepen_factor=deepen_factor, widen_factor=widen_factor,
                  c3k_everywhere=c3k_everywhere,
                  in_channels=[512, 512, last_stage_out_channels],
                  out_channels=[256, 512, last_stage_out_channels]),
        bbox_head=dict(head_module=dict(
            widen_factor=widen_factor,
            in_channels=[256, 512, last_stage_out_channels]))))

# its own Stage I set (a set made by another teacher is refused)
train_dataloader = dict(
    dataset=dict(data_root='work_dirs/zsq_sets/yolo11_m/'))
