"""A tiny generated COCO-format folder: a few random images with boxes and
polygon masks under COCO's own 80 category names and ids, laid out as the
configs expect (``annotations/instances_{val,train}2017.json`` +
``{val,train}2017/``)."""
import json
import os
import os.path as osp

import numpy as np

# COCO's category ids (1..90 with gaps), in the order of mmdet's classes
COCO_IDS = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19,
            20, 21, 22, 23, 24, 25, 27, 28, 31, 32, 33, 34, 35, 36, 37, 38,
            39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55,
            56, 57, 58, 59, 60, 61, 62, 63, 64, 65, 67, 70, 72, 73, 74, 75,
            76, 77, 78, 79, 80, 81, 82, 84, 85, 86, 87, 88, 89, 90]


def _split(root, split, n, size, seed):
    import cv2
    from mmdet.datasets import CocoDataset
    names = CocoDataset.METAINFO['classes']
    rng = np.random.default_rng(seed)
    h, w = size
    img_dir = osp.join(root, f'{split}2017')
    os.makedirs(img_dir, exist_ok=True)
    images, anns = [], []
    for i in range(n):
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        name = f'{seed:03d}{i:09d}.jpg'
        cv2.imwrite(osp.join(img_dir, name), img)
        img_id = seed * 1000 + i + 1
        images.append(dict(id=img_id, file_name=name, height=h, width=w))
        # two boxes of at least 40 px (the real-data configs drop < 32 px)
        for x1, y1, bw, bh in ((4, 4, w // 2, h // 2 + 8),
                               (w // 3, h // 3, w // 2, h // 2)):
            poly = [x1, y1, x1 + bw, y1, x1 + bw, y1 + bh, x1, y1 + bh]
            cat = int(rng.integers(0, len(names)))
            anns.append(dict(id=len(anns) + 1, image_id=img_id,
                             category_id=COCO_IDS[cat],
                             bbox=[x1, y1, bw, bh], area=float(bw * bh),
                             segmentation=[[float(v) for v in poly]],
                             iscrowd=0))
    cats = [dict(id=i, name=n, supercategory='none')
            for i, n in zip(COCO_IDS, names)]
    os.makedirs(osp.join(root, 'annotations'), exist_ok=True)
    with open(osp.join(root, 'annotations', f'instances_{split}2017.json'),
              'w') as f:
        json.dump(dict(images=images, annotations=anns, categories=cats), f)


def make_tiny_coco(root, n_val=2, n_train=2, size=(96, 128)):
    """Write the folder at ``root`` (val and train splits); returns it with
    a trailing ``/``, as ``$MMZSQ_COCO_ROOT`` is given."""
    _split(root, 'val', n_val, size, seed=1)
    _split(root, 'train', n_train, size, seed=2)
    return osp.join(str(root), '')
