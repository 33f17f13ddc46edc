"""Preprocessed batches from a config's dataloaders (calibration, eval)."""
import itertools
from typing import Iterator

import torch

from mmzsq.utils.errors import UserError


def build_loader(cfg, split: str = 'test'):
    """The config's ``{split}_dataloader`` (num_workers 0: small runs)."""
    import copy

    from mmengine.runner import Runner
    key = f'{split}_dataloader'
    if key not in cfg:
        raise UserError(f'the config has no {key}')
    dl = copy.deepcopy(cfg[key])
    dl.num_workers, dl.persistent_workers = 0, False
    if isinstance(dl.get('collate_fn'), dict):  # a function takes no scope
        dl.collate_fn.pop('_scope_', None)
    try:
        return Runner.build_dataloader(dl)
    except FileNotFoundError as e:
        raise UserError(f'{split} data not found ({e}); generate it or '
                        f'point the config at a COCO-format folder (e.g. '
                        '$MMZSQ_COCO_ROOT for val/test)') from None


def preprocessed_batches(detector, loader, n_batches: int) -> Iterator[dict]:
    """The first ``n_batches`` batches after the detector's
    ``data_preprocessor`` (eval mode): ``dict(inputs, data_samples)``."""
    for batch in itertools.islice(loader, n_batches):
        # yolov5_collate (mmyolo train loaders) packs the samples as a dict,
        # which only the preprocessor's training branch reads
        train_fmt = isinstance(batch.get('data_samples'), dict)
        with torch.no_grad():
            data = detector.data_preprocessor(batch, train_fmt)
        yield data


def preprocessed(detector, loader, n_batches: int) -> Iterator[torch.Tensor]:
    """The first ``n_batches`` input tensors after the detector's
    ``data_preprocessor`` (eval mode)."""
    for data in preprocessed_batches(detector, loader, n_batches):
        yield data['inputs']
