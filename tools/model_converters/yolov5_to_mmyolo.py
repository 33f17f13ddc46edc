# Convert an Ultralytics YOLOv5 .pt (P5 or P6) to an mmyolo checkpoint
# without the Ultralytics source.  The output loads with weights_only=True.
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))
from tools._common import import_mmzsq  # noqa: E402
from tools._common.converter import convert_main  # noqa: E402

import_mmzsq()

from mmzsq.converters.yolov5 import convert_yolov5  # noqa: E402


def describe(ckpt, dst):
    meta = ckpt['meta']
    return (f'converted {len(ckpt["state_dict"])} tensors ({meta["arch"]}, '
            f'{meta["num_classes"]} classes) -> {dst}')


def main(argv=None):
    convert_main(convert_yolov5, 'Ultralytics YOLOv5 .pt -> mmyolo '
                 'checkpoint', 'Ultralytics YOLOv5 .pt', describe, argv)


if __name__ == '__main__':
    main()
