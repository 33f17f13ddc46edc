"""Test-only hook (imported by configs through ``custom_imports``)."""
import os.path as osp

import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module(force=True)
class DumpQuantStateHook(Hook):
    """Save this rank's step sizes at the end of training."""

    def after_train(self, runner):
        model = runner.model.module if hasattr(runner.model, 'module') \
            else runner.model
        state = {k: v.detach().clone() for k, v in model.state_dict().items()
                 if k.endswith('fake_quant.scale')}
        torch.save(dict(iter=runner.iter, scales=state),
                   osp.join(runner.work_dir, f'scales_rank{get_rank()}.pth'))
