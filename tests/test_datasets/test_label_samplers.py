"""Label samplers: Random (Table 6), Tile, MultiSample, COCO labels."""
import json
import os.path as osp

import torch


def test_label_samplers(tmp_path):
    from mmzsq.registry import TASK_UTILS
    g = torch.Generator().manual_seed(0)
    rnd = TASK_UTILS.build(dict(type='mmzsq.RandomBoxSampler'))(500, 80, g)
    b = torch.cat([x for x, _ in rnd])
    wh = b[:, 2:] - b[:, :2]
    assert all(len(x) == 1 for x, _ in rnd)
    assert wh.min() >= 0.2 - 1e-6 and wh.max() <= 0.8 + 1e-6
    assert b.min() >= 0 and b.max() <= 1
    cls = torch.cat([c for _, c in rnd])
    assert cls.min() >= 0 and cls.max() < 80 and len(cls.unique()) > 60
    tile = TASK_UTILS.build(dict(type='mmzsq.TileBoxSampler',
                                 grid=(2, 3)))(4, 80, g)
    assert all(len(x) == 6 for x, _ in tile)
    tb = tile[0][0]  # one box inside each cell
    cx = (tb[:, 0] + tb[:, 2]) / 2
    assert sorted((cx * 3).floor().long().tolist()) == [0, 0, 1, 1, 2, 2]
    ood = TASK_UTILS.build(dict(type='mmzsq.MultiBoxSampler', count_hist=None,
                                count_range=(3, 5)))(50, 80, g)
    assert {len(x) for x, _ in ood} <= {3, 4, 5}
    ind = TASK_UTILS.build(dict(type='mmzsq.MultiBoxSampler',
                                count_hist=[0., 1.]))(20, 80, g)
    assert {len(x) for x, _ in ind} == {2}
    from tests.conftest import COCO128
    if osp.exists(COCO128):
        hist = TASK_UTILS.build(dict(
            type='mmzsq.MultiBoxSampler', count_hist=osp.join(
                COCO128, 'annotations/instances_train2017.json'))).count_hist
        from mmzsq.datasets.label_samplers.multi_box_sampler import \
            COCO_BOXES_PER_IMAGE
        assert torch.allclose(hist, torch.tensor(COCO_BOXES_PER_IMAGE),
                              atol=1e-3)
    ann = dict(images=[dict(id=1, width=100, height=50)],
               categories=[dict(id=i + 1, name=str(i)) for i in range(80)],
               annotations=[dict(image_id=1, bbox=[10, 5, 50, 20],
                                 category_id=2, iscrowd=0)])
    p = tmp_path / 'a.json'
    p.write_text(json.dumps(ann))
    real = TASK_UTILS.build(dict(type='mmzsq.CocoLabelSampler',
                                 ann_file=str(p)))(2, 80, g)
    assert torch.allclose(real[0][0], torch.tensor([[0.1, 0.1, 0.6, 0.5]]))
    assert real[0][1].tolist() == [1]
