# Label-image agreement of a synthetic set: mAP50 of the float teacher's
# detections on the synthetic images against the synthetic labels.
#   python tools/analysis/label_agreement.py work_dirs/zsq_sets/x \
#       configs/yolov5/yolov5_n-v61_fp_coco.py work_dirs/weights/yolov5n.pth
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(
    __file__)))))
from tools._common import import_mmzsq  # noqa: E402

import_mmzsq()

from mmzsq.utils.cli import exit_on_user_error, load_config  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument('set_dir')
    p.add_argument('config', help='config whose `model` is the teacher')
    p.add_argument('checkpoint')
    args = p.parse_args(argv)
    from mmdet.apis import init_detector

    from mmzsq.synthesis import DetectorAdapter
    from tools._common.label_agreement import label_image_agreement
    if not osp.exists(osp.join(args.set_dir, 'annotations.json')):
        sys.exit(f'error: {args.set_dir} has no annotations.json; run '
                 'tools/synthesize.py first')
    with exit_on_user_error():
        model = init_detector(load_config(args.config), args.checkpoint,
                              device='cpu', cfg_options={})
        res = label_image_agreement(DetectorAdapter(model), args.set_dir)
    print(' '.join(f'{k}={v:.3f}' for k, v in res.items()))


if __name__ == '__main__':
    main()
