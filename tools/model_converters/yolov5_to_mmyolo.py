# Convert an Ultralytics YOLOv5 .pt (P5 or P6) to an mmyolo checkpoint
# without the Ultralytics source.  The output loads with weights_only=True.
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))

import torch  # noqa: E402

from mmzsq.converters.yolov5 import convert_yolov5  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__ or
                                     'YOLOv5 .pt -> mmyolo checkpoint')
    parser.add_argument('src', help='Ultralytics YOLOv5 .pt')
    parser.add_argument('dst', help='output mmyolo .pth')
    args = parser.parse_args()
    try:
        ckpt = convert_yolov5(args.src)
    except (FileNotFoundError, ValueError) as e:
        sys.exit(f'error: {e}')
    os.makedirs(osp.dirname(osp.abspath(args.dst)), exist_ok=True)
    tmp = args.dst + '.tmp'
    torch.save(ckpt, tmp)
    os.replace(tmp, args.dst)
    meta = ckpt['meta']
    print(f'converted {len(ckpt["state_dict"])} tensors ({meta["arch"]}, '
          f'{meta["num_classes"]} classes) -> {args.dst}')


if __name__ == '__main__':
    main()
