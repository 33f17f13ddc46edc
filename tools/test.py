# Evaluate a (float or mmzsq-quantized) detector checkpoint, e.g. its COCO mAP.
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

from mmzsq.utils.cli import (build_runner, check_checkpoint,  # noqa: E402
                             check_runner_checkpoint, exit_on_user_error,
                             finish_distributed, load_config)
from mmzsq.utils.data_roots import check_coco_data  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='mmzsq: test a model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the dir to save metrics and logs')
    parser.add_argument(
        '--out', help='dump predictions to a pickle file for offline eval')
    parser.add_argument(
        '--show-dir', help='save painted predictions into this directory '
        '(relative to the run dir)')
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
        check_checkpoint(args.checkpoint)
        cfg = load_config(args.config)
        cfg.launcher = args.launcher
        if args.cfg_options is not None:
            cfg.merge_from_dict(args.cfg_options)
        if args.work_dir is not None:
            cfg.work_dir = args.work_dir
        elif cfg.get('work_dir', None) is None:
            cfg.work_dir = osp.join(
                './work_dirs', osp.splitext(osp.basename(args.config))[0])
        cfg.load_from = args.checkpoint
        if args.show_dir:
            from mmdet.engine.hooks.utils import trigger_visualization_hook
            args.show, args.wait_time = False, 0
            cfg = trigger_visualization_hook(cfg, args)
        runner = build_runner(cfg)
        # before testing: load_from is loaded with strict=False
        check_runner_checkpoint(runner, args.checkpoint, args.config)
        check_coco_data(cfg, ('test', ))
        if args.out is not None:
            from mmdet.evaluation import DumpDetResults
            runner.test_evaluator.metrics.append(
                DumpDetResults(out_file_path=args.out))
        runner.test()
        finish_distributed()


if __name__ == '__main__':
    main()
