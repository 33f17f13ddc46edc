"""Quick CPU measurement: YOLOv5n FP vs PTQ-only vs short QAT (mmzsq).

Trains on a COCO-format train folder (default ../shared/data/coco128, a
stand-in for the synthetic set), evaluates on $MMZSQ_COCO_ROOT with the FP
config's 640 pipeline.  Example:
  MMZSQ_COCO_ROOT=../shared/data/coco_tiny_val2017/ PYTHONPATH=. python \
    tools/misc/yolov5n_qat_benchmark.py /tmp/yolov5n.pth \
    --runs w8a8:ptq,w8a8:qat,w4a8:ptq,w4a8:qat --iters 20 --ptq-iters 10 \
    --res 256 --batch 4
(the yolov5n.pth from tools/model_converters/yolov5_to_mmyolo.py).
"""
import argparse
import json
import os.path as osp
import sys
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))
import mmzsq  # noqa: E402,F401
from mmzsq.utils.cli import build_runner  # noqa: E402
from tests.zsq_utils import small_yolo_cfg  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument('checkpoint')
    p.add_argument('--runs', default='w8a8:ptq,w8a8:qat,w4a8:ptq,w4a8:qat')
    p.add_argument('--iters', type=int, default=40)
    p.add_argument('--ptq-iters', type=int, default=20)
    p.add_argument('--res', type=int, default=320)
    p.add_argument('--batch', type=int, default=8)
    p.add_argument('--n-train', type=int, default=128)
    p.add_argument('--work-dir', default='work_dirs/yolov5n_qat_benchmark')
    a = p.parse_args()
    results = {}
    for run in a.runs.split(','):
        bits, mode = run.split(':')
        cfg_file = f'configs/zsq/yolov5_n_{"ptq_" if mode == "ptq" else ""}' \
            f'{bits}.py'
        iters = a.ptq_iters if mode == 'ptq' else a.iters
        cfg = small_yolo_cfg(cfg_file, osp.join(a.work_dir, run.replace(
            ':', '_')), a.checkpoint, res=a.res, iters=iters,
            n_train=a.n_train, batch=a.batch, keep_val=True)
        t = time.time()
        runner = build_runner(cfg)
        runner.train()
        m = runner.message_hub.get_scalar("val/coco/bbox_mAP").current()
        m = {"coco/bbox_mAP": m}
        results[run] = dict(mAP=m['coco/bbox_mAP'], iters=iters,
                            seconds=round(time.time() - t))
        print('RESULT', run, results[run], flush=True)
    print('RESULTS', json.dumps(results))


if __name__ == '__main__':
    main()
