"""Label statistics of COCO-format sets (synthetic or real), shared by
tools/analysis/label_distribution.py and the benchmark harness."""
import json
import os.path as osp

import numpy as np


def load(path):
    if osp.isdir(path):
        path = osp.join(path, 'annotations.json')
    if not osp.exists(path):
        raise FileNotFoundError(f'{path} not found; pass a synthetic set dir '
                                'or a COCO json')
    with open(path) as f:
        return json.load(f)


def stats(coco, names):
    """Category frequencies (over ``names``), sqrt(box area / image area),
    boxes per image."""
    id2name = {c['id']: c['name'] for c in coco['categories']}
    idx = {n: i for i, n in enumerate(names)}
    imgs = {im['id']: im for im in coco['images']}
    freq = np.zeros(len(names))
    sizes, per_img = [], {i: 0 for i in imgs}
    for a in coco['annotations']:
        if a.get('iscrowd', 0):
            continue
        n = id2name[a['category_id']]
        if n in idx:
            freq[idx[n]] += 1
        im = imgs[a['image_id']]
        sizes.append(np.sqrt(max(a['bbox'][2] * a['bbox'][3], 0) /
                             (im['width'] * im['height'])))
        per_img[a['image_id']] += 1
    return freq, np.array(sizes), np.array(list(per_img.values()))


def kl_divergence(p, q, eps=1e-6):
    p = (p + eps) / (p + eps).sum()
    q = (q + eps) / (q + eps).sum()
    return float((p * np.log(p / q)).sum())


def class_frequency_correlation(syn, ref) -> float:
    """Pearson correlation between the per-class box counts of ``syn`` and
    of ``ref`` (COCO dicts), classes matched by name over ``ref``'s (a class
    absent from ``syn`` counts 0) -- paper Fig. 3b."""
    names = [c['name'] for c in sorted(ref['categories'],
                                       key=lambda c: c['id'])]
    a, b = stats(syn, names)[0], stats(ref, names)[0]
    if a.std() == 0 or b.std() == 0:
        return float('nan')
    return float(np.corrcoef(a, b)[0, 1])
