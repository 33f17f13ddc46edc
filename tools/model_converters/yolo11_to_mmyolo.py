# Convert an Ultralytics YOLO11 .pt (detection, any scale) to an mmzsq
# checkpoint for configs/yolo11/yolo11_{n,s,m,l}_coco.py, without the
# Ultralytics source.  The output loads with torch.load(weights_only=True).
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))
from tools._common import import_mmzsq  # noqa: E402
from tools._common.converter import convert_main  # noqa: E402

import_mmzsq()

from mmzsq.converters.yolo11 import convert_yolo11  # noqa: E402


def describe(ckpt, dst):
    arch = ckpt['meta']['arch']
    return (f'converted {len(ckpt["state_dict"])} tensors (YOLO11-'
            f'{arch["scale"]}, {arch["num_classes"]} classes) -> {dst}; '
            f'config: configs/yolo11/yolo11_{arch["scale"]}_coco.py')


def main(argv=None):
    convert_main(convert_yolo11,
                 'Ultralytics YOLO11 .pt -> mmzsq/mmyolo checkpoint',
                 'Ultralytics YOLO11 .pt', describe, argv)


if __name__ == '__main__':
    main()
