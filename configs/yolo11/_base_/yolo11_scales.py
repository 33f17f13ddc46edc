# YOLO11 scales in mmyolo terms (Ultralytics [depth, width, max_channels],
# and whether every C3k2 uses C3k blocks: m/l/x), as deltas of the model of
# ../yolo11_s_coco.py; yolo11_{n,m,l}_coco.py and configs/zsq/_base_/
# yolo11_{m,l}.py apply them.  Variables only (no upstream base).
yolo11_scales = dict(
    n=(0.50, 0.25, 1024, False),
    s=(0.50, 0.50, 1024, False),
    m=(0.50, 1.00, 512, True),
    l=(1.00, 1.00, 512, True))
yolo11_archs = {
    k: dict(
        backbone=dict(deepen_factor=d, widen_factor=w,
                      last_stage_out_channels=c, c3k_everywhere=c3k),
        neck=dict(deepen_factor=d, widen_factor=w, c3k_everywhere=c3k,
                  # backbone P3 is 512 wide in YOLO11 (256 in YOLOv8)
                  in_channels=[512, 512, c], out_channels=[256, 512, c]),
        bbox_head=dict(head_module=dict(widen_factor=w,
                                        in_channels=[256, 512, c])))
    for k, (d, w, c, c3k) in yolo11_scales.items()}
