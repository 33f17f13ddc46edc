"""On-disk synthetic calibration set: ``<set>/images/*.png`` +
``<set>/annotations.json`` (COCO, categories 0..C-1 = the teacher's classes,
an ``info`` block).

Every batch is written atomically (each PNG and the batch record go to a
temporary name, then ``os.replace``), the batch record last, so a batch
counts as done only when it was written completely; a rerun skips done
batches.  ``meta.json`` fixes what the set was made from (teacher hash,
class count, resolution, ...); a set made with different settings is
refused rather than silently mixed.  Opening a set decode-checks its PNGs
(chunk CRCs, IEND), so a truncated image is caught before training reads
it; stale ``*.tmp<pid>`` files of killed runs are removed when a set is
opened for writing.
"""
import json
import os
import os.path as osp
import re
import struct
import zlib
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


PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
TMP_RE = re.compile(r'\.tmp(\d+)$')


def png_problem(path: str, height: Optional[int] = None,
                width: Optional[int] = None) -> Optional[str]:
    """Why the PNG at ``path`` is unusable, or ``None`` when it is intact.

    Walks the chunks and checks every CRC, the IHDR size (against
    ``height``/``width`` when given) and that the file ends with IEND: a
    truncated or bit-flipped file fails, at a fraction of a full decode's
    cost (no inflate)."""
    try:
        with open(path, 'rb') as f:
            data = f.read()
    except OSError as e:
        return f'unreadable ({e.strerror or e})'
    if not data.startswith(PNG_SIGNATURE):
        return 'not a PNG (bad signature)'
    pos, n, seen_ihdr = len(PNG_SIGNATURE), len(data), False
    while pos + 12 <= n:
        length, = struct.unpack_from('>I', data, pos)
        ctype = data[pos + 4:pos + 8]
        end = pos + 12 + length
        if end > n:
            return f'truncated ({n} bytes, chunk {ctype!r} needs {end})'
        crc, = struct.unpack_from('>I', data, end - 4)
        if zlib.crc32(data[pos + 4:end - 4]) != crc:
            return f'CRC error in chunk {ctype!r} at byte {pos}'
        if not seen_ihdr:
            if ctype != b'IHDR' or length < 8:
                return 'no IHDR chunk'
            w, h = struct.unpack_from('>II', data, pos + 8)
            if (height, width) != (None, None) and (h, w) != (height, width):
                return f'{w}x{h} px, the record says {width}x{height}'
            seen_ihdr = True
        if ctype == b'IEND':
            return None if end == n else 'data after IEND'
        pos = end
    return f'truncated ({n} bytes, no IEND chunk)'


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


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
    def _read_json(self, name: str, problem: str, fix: str):
        """``<set>/<name>`` parsed, ``None`` when absent; an unreadable file
        is a :class:`SetMismatchError` naming ``fix``."""
        p = osp.join(self.set_dir, name)
        if not osp.exists(p):
            return None
        try:
            with open(p) as f:
                return json.load(f)
        except (OSError, ValueError) as e:
            raise SetMismatchError(
                f'synthetic set {self.set_dir}: {problem} {name} ({e}); '
                f'{fix}') from None

    def read_meta(self) -> Optional[dict]:
        return self._read_json(META, 'unreadable', _fix_hint(self.set_dir))

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
        """Check (or record) ``meta``; create the directories; rank 0
        removes stale temporary files of killed runs.  Call it on every rank
        before a barrier that precedes any writing (the cleaning then cannot
        race this run's own temporary files)."""
        self.check_meta(meta)
        if rank == 0:
            os.makedirs(self.img_dir, exist_ok=True)
            os.makedirs(self.batch_dir, exist_ok=True)
            self.clean_stale_tmp()
            if self.read_meta() is None:
                atomic_write_json(osp.join(self.set_dir, META), meta)

    def clean_stale_tmp(self) -> List[str]:
        """Remove ``*.tmp<pid>`` files (half-written by a killed run) in the
        set root, ``images/`` and ``batches/`` whose writer ``pid`` is not
        alive on this host; returns the removed paths."""
        removed = []
        for d in (self.set_dir, self.img_dir, self.batch_dir):
            try:
                names = os.listdir(d)
            except OSError:
                continue
            for name in names:
                m = TMP_RE.search(name)
                if m is None or _pid_alive(int(m.group(1))):
                    continue
                path = osp.join(d, name)
                try:
                    os.remove(path)
                    removed.append(path)
                except OSError:  # pragma: no cover - a peer removed it
                    pass
        return removed

    # -- batches --------------------------------------------------------------
    def batch_path(self, k: int) -> str:
        return osp.join(self.batch_dir, f'{k:05d}.json')

    def read_batch(self, k: int, verify: bool = True) -> Optional[dict]:
        """The batch record, or ``None`` when the batch must be (re)done:
        no record, or one of its images missing or (``verify``) corrupt."""
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
            path = osp.join(self.img_dir, im['file_name'])
            if not osp.exists(path):
                return None  # image lost: redo the batch
            if verify and png_problem(path, im.get('height'),
                                      im.get('width')):
                return None  # image corrupt: redo the batch
        return rec

    def count_done(self, num_batches: int) -> int:
        """Batches with a record (cheap: no image checks)."""
        return sum(osp.exists(self.batch_path(k)) for k in range(num_batches))

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
            rec = self.read_batch(k, verify=False)  # checked by the loop
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

    def read_index(self) -> Optional[dict]:
        """``annotations.json``, or ``None`` when there is none yet."""
        return self._read_json(
            ANN, 'corrupt', 'delete it and rerun the synthesis (finished '
            'batches are kept)')

    def is_complete(self, num_images: Optional[int] = None,
                    repairable: bool = False) -> bool:
        """Whether ``annotations.json`` lists a whole set whose images are
        all present and intact (chunk CRCs checked).  A missing or corrupt
        image makes the set incomplete when ``repairable`` (synthesis can
        redo its batch: its record no longer counts as done) and is refused
        otherwise, naming the file and the fix."""
        coco = self.read_index()
        if coco is None:
            return False
        n = len(coco.get('images', []))
        if num_images is not None and n != num_images:
            return False
        for im in coco['images']:
            name = im['file_name']
            path = osp.join(self.img_dir, name)
            why = 'missing' if not osp.exists(path) else png_problem(
                path, im.get('height'), im.get('width'))
            if why is None:
                continue
            if repairable:
                return False
            stem = name.rsplit('_', 1)[0]
            batch = f'{BATCH_DIR}/{stem}.json' if stem.isdigit() else \
                f'{BATCH_DIR}/<its batch>.json'
            raise SetMismatchError(
                f'synthetic set {self.set_dir}: image {IMG_DIR}/{name} is '
                f'{why}; delete it and its batch record {batch}, then rerun '
                'tools/synthesize.py with the config that made the set (it '
                'resumes and redoes that batch)')
        return True

    def classes(self) -> List[str]:
        """The set's class names (its categories, by id)."""
        coco = self.read_index() or {}
        cats = sorted(coco.get('categories', []), key=lambda c: c['id'])
        return [c['name'] for c in cats]

    def recorded(self) -> dict:
        """What the set says it was made for: ``num_classes``,
        ``teacher_hash``, ``teacher_checkpoint`` from ``meta.json``, else
        from ``annotations.json`` (its categories and ``info``); missing
        entries are ``None``."""
        meta = self.read_meta() or {}
        keys = ('num_classes', 'teacher_hash', 'teacher_checkpoint')
        rec = {k: meta.get(k) for k in keys}
        if None in rec.values():
            coco = self.read_index() or {}
            info = coco.get('info') or {}
            if rec['num_classes'] is None and coco.get('categories'):
                rec['num_classes'] = len(coco['categories'])
            for k in ('teacher_hash', 'teacher_checkpoint'):
                if rec[k] is None:
                    rec[k] = info.get(k)
        return rec

    def check_expect(self, expect: Optional[dict]) -> None:
        """Refuse a set made for another model than the one reading it.

        ``expect``: ``num_classes`` (compared always, when the set records
        a class count), ``teacher_hash`` (compared when the set records one)
        and, for the message, ``teacher_checkpoint``."""
        if not expect:
            return
        got = self.recorded()
        bad = []
        want_c = expect.get('num_classes')
        if want_c is not None and got['num_classes'] is not None and \
                int(got['num_classes']) != int(want_c):
            bad.append(f'it has {got["num_classes"]} classes, the model '
                       f'{want_c}')
        want_h = expect.get('teacher_hash')
        if want_h and got['teacher_hash'] and got['teacher_hash'] != want_h:
            bad.append(
                f'its teacher_hash is {got["teacher_hash"]} (teacher '
                f'{got["teacher_checkpoint"]}), the model\'s {want_h} '
                f'(init_checkpoint {expect.get("teacher_checkpoint")})')
        if bad:
            raise SetMismatchError(
                f'synthetic set {self.set_dir} was made for another model: '
                f'{" and ".join(bad)}; point data_root to the set of this '
                'model, or delete the set and synthesise it with this '
                'model (tools/synthesize.py <config>)')


def _norm(v):
    return json.loads(json.dumps(v))
