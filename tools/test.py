# Evaluate a (float or mmzsq-quantized) detector checkpoint, e.g. its COCO mAP.
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from tools._common import (add_runner_arguments, import_mmzsq,  # noqa: E402
                           runner_config)

import_mmzsq()  # (applies the compat patches, registries)

from mmzsq.utils.cli import (build_runner, check_checkpoint,  # noqa: E402
                             check_runner_checkpoint, exit_on_user_error,
                             finish_distributed)
from mmzsq.utils.data_roots import check_coco_data  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='mmzsq: test a model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--out', help='dump predictions to a pickle file for offline eval')
    parser.add_argument(
        '--show-dir', help='save painted predictions into this directory '
        '(relative to the run dir)')
    return add_runner_arguments(parser).parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    with exit_on_user_error():
        check_checkpoint(args.checkpoint)
        cfg = runner_config(args)
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
