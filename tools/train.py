# Train (QAT) a detector with mmzsq.  For a zero-shot config the Runner's
# train loop (mmzsq.ZSQTrainLoop) runs Stage I (the synthetic calibration set,
# made on first use, resumed if interrupted) and then Stage II.
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from tools._common import (add_runner_arguments, import_mmzsq,  # noqa: E402
                           runner_config)

import_mmzsq()  # (applies the compat patches, registries)

from mmzsq.utils.cli import (build_runner,  # noqa: E402
                             check_runner_checkpoint, exit_on_user_error,
                             finish_distributed)
from mmzsq.utils.data_roots import check_coco_data  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='mmzsq: train a model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument(
        '--amp', action='store_true', help='enable automatic mixed precision')
    parser.add_argument(
        '--resume', nargs='?', type=str, const='auto',
        help='resume from this checkpoint, or (no value) from the latest '
        'checkpoint in the work dir')
    return add_runner_arguments(parser).parse_args(argv)


def use_amp(cfg) -> None:
    """--amp: MMEngine's AmpOptimWrapper on a GPU; on CPU (which it
    refuses) bf16 autocast through mmzsq.CPUAutocastOptimWrapper."""
    import torch
    if torch.cuda.is_available():
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    else:
        cfg.optim_wrapper.type = 'mmzsq.CPUAutocastOptimWrapper'
        cfg.optim_wrapper.dtype = 'bfloat16'
        cfg.optim_wrapper.pop('loss_scale', None)


def main(argv=None):
    args = parse_args(argv)
    with exit_on_user_error():
        cfg = runner_config(args)
        if args.amp:
            use_amp(cfg)
        if args.resume == 'auto':
            cfg.resume = True
            cfg.load_from = None
        elif args.resume is not None:
            cfg.resume = True
            cfg.load_from = args.resume
        runner = build_runner(cfg)
        # load_from / --resume are loaded with strict=False: check first
        ckpt = cfg.get('load_from')
        if ckpt is None and cfg.get('resume'):
            from mmengine.runner import find_latest_checkpoint
            ckpt = find_latest_checkpoint(runner.work_dir)
        if ckpt:
            check_runner_checkpoint(runner, ckpt, args.config, use='train')
        # data checks before Stage I (which runs inside runner.train())
        check_coco_data(cfg, ('train', 'val'))
        runner.train()
        finish_distributed()


if __name__ == '__main__':
    main()
