# Train (QAT) a detector with mmzsq.  For a zero-shot config the Runner's
# train loop (mmzsq.ZSQTrainLoop) runs Stage I (the synthetic calibration set,
# made on first use, resumed if interrupted) and then Stage II.
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
try:
    import mmzsq  # noqa: F401  (applies the compat patches, registries)
except ImportError as e:  # pragma: no cover - exercised from the shell
    sys.exit(f'error: mmzsq is not importable ({e}); run `make install` '
             'in the mmzsq checkout, or `pip install -e .` there.')

from mmengine.config import DictAction  # noqa: E402

from mmzsq.utils.cli import (build_runner,  # noqa: E402
                             check_runner_checkpoint, exit_on_user_error,
                             finish_distributed, load_config)
from mmzsq.utils.data_roots import check_coco_data  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='mmzsq: train a model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--amp', action='store_true', help='enable automatic mixed precision')
    parser.add_argument(
        '--resume', nargs='?', type=str, const='auto',
        help='resume from this checkpoint, or (no value) from the latest '
        'checkpoint in the work dir')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings in the config, key=value format')
    parser.add_argument(
        '--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def main(argv=None):
    args = parse_args(argv)
    with exit_on_user_error():
        cfg = load_config(args.config)
        cfg.launcher = args.launcher
        if args.cfg_options is not None:
            cfg.merge_from_dict(args.cfg_options)
        if args.work_dir is not None:
            cfg.work_dir = args.work_dir
        elif cfg.get('work_dir', None) is None:
            cfg.work_dir = osp.join(
                './work_dirs', osp.splitext(osp.basename(args.config))[0])
        if args.amp:
            cfg.optim_wrapper.type = 'AmpOptimWrapper'
            cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
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
