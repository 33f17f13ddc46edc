# Convert an Ultralytics YOLO11 .pt (detection, any scale) to an mmzsq
# checkpoint for configs/yolo11/yolo11_{n,s,m,l}_coco.py, without the
# Ultralytics source.  The output loads with torch.load(weights_only=True).
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))

import torch  # noqa: E402

from mmzsq.converters.yolo11 import convert_yolo11  # noqa: E402


def main():
    parser = argparse.ArgumentParser(
        description='Ultralytics YOLO11 .pt -> mmzsq/mmyolo checkpoint')
    parser.add_argument('src', help='Ultralytics YOLO11 .pt')
    parser.add_argument('dst', help='output .pth')
    args = parser.parse_args()
    try:
        ckpt = convert_yolo11(args.src)
    except (FileNotFoundError, ValueError) as e:
        sys.exit(f'error: {e}')
    os.makedirs(osp.dirname(osp.abspath(args.dst)), exist_ok=True)
    tmp = args.dst + '.tmp'
    torch.save(ckpt, tmp)
    os.replace(tmp, args.dst)
    arch = ckpt['meta']['arch']
    print(f'converted {len(ckpt["state_dict"])} tensors (YOLO11-'
          f'{arch["scale"]}, {arch["num_classes"]} classes) -> {args.dst}; '
          f'config: configs/yolo11/yolo11_{arch["scale"]}_coco.py')


if __name__ == '__main__':
    main()
