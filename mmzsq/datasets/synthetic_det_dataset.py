"""A synthetic calibration set as an mmdet dataset."""
import json
import os.path as osp
from typing import Optional

from mmdet.datasets import CocoDataset

from mmzsq.registry import DATASETS


@DATASETS.register_module()
class SyntheticDetDataset(CocoDataset):
    """Reads ``<data_root>/annotations.json`` + ``<data_root>/images/``
    (written by Stage I) through the normal mmdet / mmyolo pipelines.

    If the set is missing or incomplete and ``synthesis`` is given (the
    ``synthesis = dict(...)`` of ``configs/zsq/_base_/synthesis_*.py`` plus
    ``teacher`` / ``teacher_checkpoint``), it is synthesised first (all ranks
    take part; finished batches are kept across interruptions).  A set made
    with other settings than ``synthesis`` is refused, and so is one with a
    missing or corrupt image (unless ``synthesis`` is given: its batch is
    then redone).

    ``expect``: what the model reading the set needs, ``dict(num_classes=,
    teacher_hash=, teacher_checkpoint=)`` (filled in from the model config
    by :func:`mmzsq.utils.zsq_config.fill_synthesis_teacher`, whatever the
    ``synthesis``).  A set recording another class count, or another
    teacher hash, is refused with :class:`SetMismatchError`.

    Classes default to the set's own categories (the teacher's class
    names), so any teacher works without a ``metainfo``.  Like mmyolo's
    datasets, training samples carry ``dataset=self`` for mix transforms
    (Mosaic, MixUp).
    """

    def __init__(self, *args, data_root: str = '',
                 ann_file: str = 'annotations.json',
                 data_prefix: dict = dict(img='images/'),
                 synthesis: Optional[dict] = None,
                 expect: Optional[dict] = None,
                 metainfo: Optional[dict] = None, **kwargs):
        from mmzsq.synthesis import SyntheticSet, set_meta
        set_dir = data_root or osp.dirname(ann_file)
        ann_path = ann_file if osp.isabs(ann_file) else osp.join(
            data_root, ann_file)
        store = SyntheticSet(set_dir)
        num_images = None
        if synthesis is not None:
            store.check_meta(set_meta(synthesis))
            num_images = int(synthesis['num_images'])
        store.check_expect(expect)  # what an earlier run recorded
        if not store.is_complete(num_images,
                                 repairable=synthesis is not None):
            if synthesis is None:
                raise FileNotFoundError(
                    f'synthetic set {set_dir} is missing or incomplete '
                    f'(no {ann_path}); run `python tools/synthesize.py '
                    '<config>` or give the dataset a synthesis=dict(...)')
            from mmzsq.synthesis import generate_synthetic_set
            generate_synthetic_set(synthesis, set_dir)
            store.check_expect(expect)
        if metainfo is None:
            with open(ann_path) as f:
                cats = json.load(f)['categories']
            metainfo = dict(classes=tuple(
                c['name'] for c in sorted(cats, key=lambda c: c['id'])))
        super().__init__(*args, data_root=data_root, ann_file=ann_file,
                         data_prefix=data_prefix, metainfo=metainfo,
                         **kwargs)

    def prepare_data(self, idx: int):
        if not self.test_mode:
            data_info = self.get_data_info(idx)
            data_info['dataset'] = self
            return self.pipeline(data_info)
        return super().prepare_data(idx)
