"""MMEngine DDP on CPU-only machines (gloo).

MMEngine 0.10's ``init_dist('pytorch')`` calls ``torch.cuda.set_device`` and
its DDP wrapper passes ``device_ids=[LOCAL_RANK]``; both fail without CUDA,
as does ``sync_bn`` (mmyolo configs set it; it is dropped on CPU).
:func:`prepare_cpu_distributed` (called by ``tools/train.py`` /
``tools/test.py`` through ``build_runner``) starts the gloo process group
from the torchrun environment itself and selects
:class:`CPUDistributedDataParallel`, so ``tools/dist_train.sh`` works on CPU.
On CUDA machines nothing changes.
"""
import torch
import torch.distributed as dist
from mmengine.model import MMDistributedDataParallel
from mmengine.registry import MODEL_WRAPPERS


@MODEL_WRAPPERS.register_module()
class CPUDistributedDataParallel(MMDistributedDataParallel):
    """``MMDistributedDataParallel`` that drops ``device_ids`` on CPU."""

    def __init__(self, module, device_ids=None, **kwargs):
        if not torch.cuda.is_available():
            device_ids = None
        super().__init__(module=module, device_ids=device_ids, **kwargs)


def prepare_cpu_distributed(cfg) -> None:
    if cfg.get('launcher', 'none') == 'none' or torch.cuda.is_available():
        return
    if not dist.is_initialized():
        dist.init_process_group(backend='gloo')  # env:// (torchrun)
    if cfg.get('sync_bn', None):  # SyncBatchNorm is GPU-only
        cfg.sync_bn = None
    if cfg.get('model_wrapper_cfg', None) is None:
        cfg.model_wrapper_cfg = dict(type='CPUDistributedDataParallel')
