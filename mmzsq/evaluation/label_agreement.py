"""Label-image agreement of a synthetic set: mAP of the float teacher's
detections on the synthetic images, scored (mmdet ``CocoMetric``) against
the synthetic labels.  High = the images really show the labelled objects."""
import json
import os.path as osp
from typing import Dict

import torch


@torch.no_grad()
def label_image_agreement(adapter, set_dir: str, batch_size: int = 8
                          ) -> Dict[str, float]:
    import cv2
    from mmdet.evaluation import CocoMetric
    ann = osp.join(set_dir, 'annotations.json')
    with open(ann) as f:
        coco = json.load(f)
    metric = CocoMetric(ann_file=ann, metric='bbox', format_only=False)
    metric.dataset_meta = dict(classes=[c['name'] for c in sorted(
        coco['categories'], key=lambda c: c['id'])])
    ims = coco['images']
    for i in range(0, len(ims), batch_size):
        chunk = ims[i:i + batch_size]
        arrs = [cv2.imread(osp.join(set_dir, 'images', im['file_name']))
                for im in chunk]
        x = torch.stack([torch.from_numpy(a).permute(2, 0, 1)
                         for a in arrs]).float().div(255).to(adapter.device)
        preds = adapter.predict(x)
        samples = []
        for im, p in zip(chunk, preds):
            samples.append(dict(
                img_id=im['id'], ori_shape=(im['height'], im['width']),
                pred_instances=dict(bboxes=p.bboxes.cpu(),
                                    scores=p.scores.cpu(),
                                    labels=p.labels.cpu())))
        metric.process({}, samples)
    res = metric.evaluate(len(ims))
    return {k.replace('coco/', ''): float(v) for k, v in res.items()}
