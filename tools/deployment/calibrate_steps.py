"""PTQ-initialise a quantized student: LSQ step sizes from one batch.

    python tools/deployment/calibrate_steps.py CONFIG FLOAT_CKPT --out CKPT

Builds the config's algorithm from a float checkpoint and runs one batch
(``--batch-size`` images of the config's ``--split`` dataloader) through the
student, so every LSQ quantizer takes its initial step size
(``2*mean|x|/sqrt(Qp)``) from real activations -- no training.  The result
is a checkpoint ``export_onnx.py`` accepts (for deployment tests and
latency measurements; train with tools/train.py for accuracy).
"""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))
from tools._common import (config_parser, import_mmzsq,  # noqa: E402
                           load_tool_config)

import_mmzsq()

from mmzsq.utils.cli import check_checkpoint, exit_on_user_error  # noqa


def main(argv=None):
    p = config_parser('mmzsq: PTQ-init step sizes',
                      'the configs/zsq config to calibrate')
    p.add_argument('float_checkpoint')
    p.add_argument('--out', required=True)
    p.add_argument('--split', default='train',
                   choices=['train', 'val', 'test'])
    p.add_argument('--batch-size', type=int, default=8)
    args = p.parse_args(argv)
    import torch
    from mmdet.apis import init_detector

    from mmzsq.deployment.data import build_loader, preprocessed
    with exit_on_user_error():
        check_checkpoint(args.float_checkpoint)
        cfg = load_tool_config(args.config, args.cfg_options)
        cfg.model.init_checkpoint = args.float_checkpoint
        cfg.model.teacher_checkpoint = None
        cfg[f'{args.split}_dataloader'].batch_size = args.batch_size
        # the float weights come in through the algorithm's init_weights
        alg = init_detector(cfg, device='cpu', cfg_options={})
        alg.init_weights()
        alg.eval()
        loader = build_loader(cfg, args.split)
        for x in preprocessed(alg.architecture, loader, 1):
            with torch.no_grad():
                alg.architecture._forward(x)
        torch.save({'state_dict': alg.state_dict(),
                    'meta': dict(mmzsq_ptq_init=dict(
                        split=args.split, images=int(x.shape[0])))},
                   args.out)
    print(f'step sizes from {x.shape[0]} {args.split} images; saved to '
          f'{args.out}')


if __name__ == '__main__':
    main()
