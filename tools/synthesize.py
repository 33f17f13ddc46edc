# Stage I alone: synthesise the task-specific calibration set of a config
# whose train_cfg is mmzsq.ZSQTrainLoop with a synthesis=dict(...).
#   python tools/synthesize.py configs/synthesis/yolov5_n-v61_coco.py
#   python tools/synthesize.py configs/zsq/yolov5_n_w4a8.py
#   torchrun --nproc_per_node 8 tools/synthesize.py CFG --launcher pytorch
# It builds the config's training Runner and its train loop (which runs Stage
# I), and stops before Stage II.  Resumes: finished batches are kept; a set
# made with other settings or by another teacher is refused.
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
try:
    import mmzsq  # noqa: F401
except ImportError as e:  # pragma: no cover
    sys.exit(f'error: mmzsq is not importable ({e}); run `make install` '
             'in the mmzsq checkout, or `pip install -e .` there.')

from mmengine.config import DictAction  # noqa: E402

from mmzsq.utils.cli import (UserError, build_runner,  # noqa: E402
                             exit_on_user_error, finish_distributed,
                             load_config)


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description='mmzsq Stage I: synthesise a calibration set')
    p.add_argument('config', help='config whose train_cfg carries '
                   'synthesis=dict(...)')
    p.add_argument('--set-dir', help='output set directory (default: '
                   "train_dataloader.dataset.data_root)")
    p.add_argument('--work-dir', help='logs (default: <set>/logs)')
    p.add_argument('--num-images', type=int, help='override num_images')
    p.add_argument('--cfg-options', nargs='+', action=DictAction,
                   help='override config settings, key=value')
    p.add_argument('--launcher', choices=['none', 'pytorch'],
                   default='none', help='job launcher')
    p.add_argument('--local_rank', '--local-rank', type=int, default=0)
    return p.parse_args(argv)


def stage_one_config(args):
    cfg = load_config(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    train_cfg = cfg.get('train_cfg') or {}
    if not train_cfg.get('synthesis'):
        raise UserError(
            f'{args.config}: train_cfg has no synthesis=dict(...); use '
            "train_cfg=dict(type='mmzsq.ZSQTrainLoop', synthesis=...) (see "
            'configs/synthesis/yolov5_n-v61_coco.py)')
    syn = train_cfg.synthesis
    syn.progress_bar = True
    if args.num_images:
        syn.num_images = args.num_images
    ds = cfg.train_dataloader.dataset
    if args.set_dir:
        ds.data_root = osp.join(args.set_dir, '')
    if not ds.get('data_root'):
        raise UserError('no set directory: give train_dataloader.dataset a '
                        'data_root or pass --set-dir')
    cfg.work_dir = args.work_dir or osp.join(ds.data_root, 'logs')
    cfg.launcher = args.launcher
    cfg.load_from, cfg.resume = None, False
    return cfg


def main(argv=None):
    args = parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    with exit_on_user_error():
        if not osp.isfile(args.config):
            raise UserError(f'config not found: {args.config}')
        cfg = stage_one_config(args)
        runner = build_runner(cfg)
        loop = runner.build_train_loop(cfg.train_cfg)  # runs Stage I
        from mmzsq.synthesis import SyntheticSet
        set_dir = cfg.train_dataloader.dataset.data_root
        coco = SyntheticSet(set_dir).read_index()
        stats = loop.synthesis_stats or {}
        print(f'\n{set_dir}: {len(coco["images"])} images, '
              f'{len(coco["annotations"])} boxes'
              + (f', {stats["elapsed_s"]:.1f}s' if stats else
                 ' (complete already)'))
        finish_distributed()


if __name__ == '__main__':
    main()
