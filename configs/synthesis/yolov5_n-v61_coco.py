# Stage I only: a task-specific calibration set from the float YOLOv5n
#   python tools/synthesize.py configs/synthesis/yolov5_n-v61_coco.py
# (Stage II configs carry the same train_dataloader.dataset block.)
_base_ = ['../yolov5/yolov5_n-v61_fp_coco.py',
          '../zsq/_base_/synthesis_yolov5.py']
custom_imports = dict(imports=['mmzsq'], allow_failed_imports=False)

teacher_checkpoint = '{{$MMZSQ_YOLOV5N_MMYOLO:work_dirs/weights/yolov5n_mmyolo.pth}}'  # noqa: E501
train_dataloader = dict(dataset=dict(
    _delete_=True,
    type='mmzsq.SyntheticDetDataset',
    data_root='work_dirs/zsq_sets/yolov5n_coco_als/',
    ann_file='annotations.json',
    data_prefix=dict(img='images/'),
    synthesis=dict(**_base_.synthesis, teacher=_base_.model,
                   teacher_checkpoint=teacher_checkpoint),
    pipeline=_base_.train_pipeline))
