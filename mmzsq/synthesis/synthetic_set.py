"""On-disk synthetic calibration set: ``<set>/images/*.png`` +
``<set>/annotations.json`` (COCO, categories 0..C-1 = the teacher's classes,
an ``info`` block).

Every batch is written atomically (each PNG and the batch record go to a
temporary name, then ``os.replace``), the batch record last, so a batch
counts as done only when it was written completely; a rerun skips done
batches.  ``meta.json`` fixes what the set was made from (teacher hash,
class count, resolution, ...); a set made with different settings is
refused rather than silently mixed.
"""
import json
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence

import numpy as np

from mmzsq.utils.errors import SetMismatchError  # noqa: F401

META = 'meta.json'
ANN = 'annotations.json'
BATCH_DIR = 'batches'
IMG_DIR = 'images'
# fields of meta.json that must match for a set to be reused
MATCH_KEYS = ('teacher_hash', 'num_classes', 'resolution', 'num_images',
              'batch_size', 'seed')


def atomic_write_bytes(path: str, data: bytes) -> None:
    tmp = f'{path}.tmp{os.getpid()}'
    with open(tmp, 'wb') as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def atomic_write_json(path: str, obj) -> None:
    atomic_write_bytes(path, json.dumps(obj, indent=1).encode())


def _fix_hint(set_dir: str) -> str:
    return (f'delete {set_dir} (or point data_root / --set-dir to a new '
            'directory) to synthesise a fresh set')


class SyntheticSet:

    def __init__(self, set_dir: str):
        self.set_dir = set_dir
        self.img_dir = osp.join(set_dir, IMG_DIR)
        self.batch_dir = osp.join(set_dir, BATCH_DIR)

    # -- meta -----------------------------------------------------------------
    def read_meta(self) -> Optional[dict]:
        p = osp.join(self.set_dir, META)
        if not osp.exists(p):
            return None
        try:
            with open(p) as f:
                return json.load(f)
        except (OSError, ValueError) as e:
            raise SetMismatchError(
                f'synthetic set {self.set_dir}: unreadable {META} ({e}); '
                f'{_fix_hint(self.set_dir)}') from None

    def check_meta(self, meta: dict) -> None:
        old = self.read_meta()
        if old is None:
            return
        bad = [k for k in MATCH_KEYS
               if k in meta and _norm(old.get(k)) != _norm(meta[k])]
        if bad:
            diff = ', '.join(f'{k}: set has {old.get(k)!r}, config wants '
                             f'{meta[k]!r}' for k in bad)
            raise SetMismatchError(
                f'synthetic set {self.set_dir} was made with other settings '
                f'({diff}); {_fix_hint(self.set_dir)}')

    def open(self, meta: dict, rank: int = 0) -> None:
        """Check (or record) ``meta``; create the directories."""
        self.check_meta(meta)
        if rank == 0:
            os.makedirs(self.img_dir, exist_ok=True)
            os.makedirs(self.batch_dir, exist_ok=True)
            if self.read_meta() is None:
                atomic_write_json(osp.join(self.set_dir, META), meta)

    # -- batches --------------------------------------------------------------
    def batch_path(self, k: int) -> str:
        return osp.join(self.batch_dir, f'{k:05d}.json')

    def read_batch(self, k: int) -> Optional[dict]:
        p = self.batch_path(k)
        if not osp.exists(p):
            return None
        try:
            with open(p) as f:
                rec = json.load(f)
        except (OSError, ValueError) as e:
            raise SetMismatchError(
                f'synthetic set {self.set_dir}: corrupt batch record {p} '
                f'({e}); delete that file to regenerate the batch') from None
        for im in rec['images']:
            if not osp.exists(osp.join(self.img_dir, im['file_name'])):
                return None  # image lost: redo the batch
        return rec

    def batch_done(self, k: int) -> bool:
        return self.read_batch(k) is not None

    def write_batch(self, k: int, images: Sequence[np.ndarray],
                    labels: Sequence, losses: Sequence[float],
                    extra: Optional[dict] = None) -> None:
        """``images``: HxWx3 uint8 BGR; ``labels``: (boxes [n,4] pixel xyxy,
        classes [n]) per image."""
        import cv2
        os.makedirs(self.img_dir, exist_ok=True)
        os.makedirs(self.batch_dir, exist_ok=True)
        recs = []
        for i, (img, (boxes, cls), loss) in enumerate(
                zip(images, labels, losses)):
            name = f'{k:05d}_{i:03d}.png'
            ok, buf = cv2.imencode('.png', img)
            assert ok, 'PNG encoding failed'
            atomic_write_bytes(osp.join(self.img_dir, name), buf.tobytes())
            h, w = img.shape[:2]
            recs.append(dict(
                file_name=name, height=h, width=w, loss=float(loss),
                boxes=[[float(v) for v in b] for b in np.asarray(boxes)],
                labels=[int(c) for c in np.asarray(cls)]))
        atomic_write_json(self.batch_path(k), dict(batch=k, images=recs,
                                                   **(extra or {})))

    # -- index ----------------------------------------------------------------
    def merge(self, num_batches: int, classes: List[str],
              info: Dict) -> dict:
        """Write ``annotations.json`` from all batch records (rank 0)."""
        images, anns = [], []
        per_image_loss = {}
        for k in range(num_batches):
            rec = self.read_batch(k)
            if rec is None:
                raise SetMismatchError(
                    f'synthetic set {self.set_dir}: batch {k} missing; rerun '
                    'the synthesis (it resumes) to finish the set')
            for im in rec['images']:
                img_id = len(images)
                images.append(dict(id=img_id, file_name=im['file_name'],
                                   height=im['height'], width=im['width']))
                per_image_loss[im['file_name']] = im['loss']
                for b, c in zip(im['boxes'], im['labels']):
                    x1, y1, x2, y2 = b
                    w, h = max(x2 - x1, 0.), max(y2 - y1, 0.)
                    anns.append(dict(id=len(anns), image_id=img_id,
                                     category_id=int(c),
                                     bbox=[x1, y1, w, h], area=w * h,
                                     iscrowd=0))
        info = dict(info, num_images=len(images),
                    per_image_final_loss=per_image_loss)
        coco = dict(info=info, images=images, annotations=anns,
                    categories=[dict(id=i, name=n)
                                for i, n in enumerate(classes)])
        atomic_write_json(osp.join(self.set_dir, ANN), coco)
        return coco

    def is_complete(self, num_images: Optional[int] = None) -> bool:
        p = osp.join(self.set_dir, ANN)
        if not osp.exists(p):
            return False
        try:
            with open(p) as f:
                coco = json.load(f)
        except (OSError, ValueError) as e:
            raise SetMismatchError(
                f'synthetic set {self.set_dir}: corrupt {ANN} ({e}); delete '
                'it and rerun the synthesis (finished batches are kept)'
            ) from None
        n = len(coco.get('images', []))
        if num_images is not None and n != num_images:
            return False
        for im in coco['images']:
            if not osp.exists(osp.join(self.img_dir, im['file_name'])):
                raise SetMismatchError(
                    f'synthetic set {self.set_dir}: {im["file_name"]} listed '
                    f'in {ANN} is missing; delete {ANN} and rerun the '
                    'synthesis to regenerate lost batches')
        return True


def _norm(v):
    return json.loads(json.dumps(v))
