# Synthetic images with their labels drawn (mmdet DetLocalVisualizer), as one
# PNG grid.
#   python tools/analysis/browse_synthetic.py work_dirs/zsq_sets/x \
#       --out grid.png --num 16 --cols 4
import argparse
import json
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(
    __file__)))))
import mmzsq  # noqa: E402,F401


def make_grid(set_dir: str, num: int = 16, cols: int = 4,
              cell: int = 320):
    """The first ``num`` images of the set with their labels drawn, in a
    ``cols``-wide grid of ``cell`` px tiles (RGB uint8)."""
    import mmcv
    import numpy as np
    import torch
    from mmdet.structures import DetDataSample
    from mmdet.visualization import DetLocalVisualizer
    from mmengine.structures import InstanceData
    ann = osp.join(set_dir, 'annotations.json')
    if not osp.exists(ann):
        raise FileNotFoundError(f'{ann} not found; run tools/synthesize.py '
                                'first (or point at a synthetic set dir)')
    with open(ann) as f:
        coco = json.load(f)
    cats = sorted(coco['categories'], key=lambda c: c['id'])
    vis = DetLocalVisualizer(name=f'browse_{id(coco)}')
    vis.dataset_meta = dict(classes=[c['name'] for c in cats])
    per_img = {}
    for a in coco['annotations']:
        per_img.setdefault(a['image_id'], []).append(a)
    tiles = []
    for im in coco['images'][:num]:
        img = mmcv.imread(osp.join(set_dir, 'images', im['file_name']),
                          channel_order='rgb')
        anns = per_img.get(im['id'], [])
        boxes = torch.tensor([[a['bbox'][0], a['bbox'][1],
                               a['bbox'][0] + a['bbox'][2],
                               a['bbox'][1] + a['bbox'][3]] for a in anns],
                             dtype=torch.float).reshape(-1, 4)
        ds = DetDataSample()
        ds.gt_instances = InstanceData(
            bboxes=boxes,
            labels=torch.tensor([a['category_id'] for a in anns],
                                dtype=torch.long))
        vis.add_datasample(im['file_name'], img, ds, draw_pred=False,
                           show=False)
        tiles.append(mmcv.imresize(vis.get_image(), (cell, cell)))
    if not tiles:
        raise ValueError(f'{set_dir} has no images')
    rows = (len(tiles) + cols - 1) // cols
    grid = np.zeros((rows * cell, cols * cell, 3), np.uint8)
    for i, t in enumerate(tiles):
        r, c = divmod(i, cols)
        grid[r * cell:(r + 1) * cell, c * cell:(c + 1) * cell] = t
    return grid


def main(argv=None):
    p = argparse.ArgumentParser(description='grid of synthetic images with '
                                'their labels')
    p.add_argument('set_dir')
    p.add_argument('--out', default=None, help='PNG (default '
                   '<set>/browse.png)')
    p.add_argument('--num', type=int, default=16)
    p.add_argument('--cols', type=int, default=4)
    p.add_argument('--cell', type=int, default=320)
    args = p.parse_args(argv)
    import mmcv
    try:
        grid = make_grid(args.set_dir, args.num, args.cols, args.cell)
    except (FileNotFoundError, ValueError) as e:
        sys.exit(f'error: {e}')
    out = args.out or osp.join(args.set_dir, 'browse.png')
    mmcv.imwrite(mmcv.rgb2bgr(grid), out)
    print(out)


if __name__ == '__main__':
    main()
