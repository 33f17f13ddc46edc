# Stage I alone: synthesise the task-specific calibration set a config's
# train_dataloader.dataset (type='mmzsq.SyntheticDetDataset') describes.
#   python tools/synthesize.py configs/synthesis/yolov5_n-v61_coco.py
#   torchrun --nproc_per_node 8 tools/synthesize.py CFG --launcher pytorch
# Resumes: finished batches are kept; a set made with other settings is
# refused.
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

from mmzsq.utils.cli import (UserError, exit_on_user_error,  # noqa: E402
                             finish_distributed, load_config)
from mmzsq.utils.zsq_config import fill_synthesis_teacher  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description='mmzsq Stage I: synthesise a calibration set')
    p.add_argument('config', help='config whose train_dataloader.dataset '
                   'carries synthesis=dict(...)')
    p.add_argument('--set-dir', help='output set directory (default: the '
                   "dataset's data_root)")
    p.add_argument('--work-dir', help='logs (default: <set>/logs)')
    p.add_argument('--num-images', type=int, help='override num_images')
    p.add_argument('--cfg-options', nargs='+', action=DictAction,
                   help='override config settings, key=value')
    p.add_argument('--launcher', choices=['none', 'pytorch'],
                   default='none', help='job launcher')
    p.add_argument('--local_rank', '--local-rank', type=int, default=0)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    from mmzsq.synthesis import SetMismatchError, generate_synthetic_set
    with exit_on_user_error():
        if not osp.isfile(args.config):
            raise UserError(f'config not found: {args.config}')
        cfg = load_config(args.config)
        if args.cfg_options:
            cfg.merge_from_dict(args.cfg_options)
        fill_synthesis_teacher(cfg)
        ds = cfg.get('train_dataloader', {}).get('dataset', {})
        synthesis = ds.get('synthesis')
        if not synthesis:
            raise UserError(
                f'{args.config}: train_dataloader.dataset has no synthesis='
                "dict(...); use type='mmzsq.SyntheticDetDataset' with "
                "synthesis=dict(**_base_.synthesis, teacher=..., "
                'teacher_checkpoint=...)')
        synthesis = synthesis.to_dict() if hasattr(synthesis, 'to_dict') \
            else dict(synthesis)
        if args.num_images:
            synthesis['num_images'] = args.num_images
        set_dir = args.set_dir or ds.get('data_root')
        if not set_dir:
            raise UserError('no set directory: give the dataset a data_root '
                            'or pass --set-dir')
        if args.launcher != 'none':
            from mmengine.dist import init_dist
            init_dist(args.launcher, backend='gloo' if not
                      __import__('torch').cuda.is_available() else 'nccl')
        try:
            out = generate_synthetic_set(synthesis, set_dir,
                                         work_dir=args.work_dir,
                                         progress_bar=True)
        except SetMismatchError as e:
            raise UserError(str(e)) from None
        except ValueError as e:  # bad settings: one line naming the fix
            raise UserError(str(e)) from None
        coco = out['coco']
        print(f'\n{set_dir}: {len(coco["images"])} images, '
              f'{len(coco["annotations"])} boxes, '
              f'{out["stats"]["elapsed_s"]:.1f}s')
        finish_distributed()


if __name__ == '__main__':
    main()
