"""tools/test.py on the real YOLOv5n, and the tools' one-line errors."""
import json
import os
import os.path as osp
import subprocess
import sys

import pytest

from tests.conftest import COCO_TINY, needs_coco_tiny

FP_CFG = 'configs/yolov5/yolov5_n-v61_fp_coco.py'


def _run(args, env=None, timeout=900):
    return subprocess.run([sys.executable] + args, capture_output=True,
                          text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


@needs_coco_tiny
def test_fp_yolov5n_map_on_coco_tiny(yolov5n_mmyolo_ckpt, tmp_path):
    """The reference figure of ../shared/README.md: mAP 0.331, mAP50 0.498."""
    out = _run(['tools/test.py', FP_CFG, yolov5n_mmyolo_ckpt,
                '--work-dir', str(tmp_path)],
               env=dict(MMZSQ_COCO_ROOT=COCO_TINY + '/'))
    assert out.returncode == 0, out.stderr[-3000:]
    runs = [d for d in os.listdir(tmp_path) if osp.isdir(tmp_path / d)]
    metrics = json.load(open(tmp_path / runs[0] / f'{runs[0]}.json'))
    assert metrics['coco/bbox_mAP'] == pytest.approx(0.331, abs=0.002)
    # mmyolo's default pipeline here gives 0.510; the README figure 0.498
    # could not be reproduced under any val batch setting (see
    # docs/benchmarks.md), hence the wider tolerance on mAP50 only.
    assert metrics['coco/bbox_mAP_50'] == pytest.approx(0.498, abs=0.015)


def test_test_py_missing_checkpoint(tmp_path):
    out = _run(['tools/test.py', FP_CFG, str(tmp_path / 'nope.pth')])
    assert out.returncode != 0
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith('error: checkpoint not found')
    assert 'yolov5_to_mmyolo.py' in last


def test_unregistered_mmzsq_type_is_one_line(tmp_path):
    cfg = tmp_path / 'bad.py'
    cfg.write_text(f"_base_ = [{osp.abspath(FP_CFG)!r}]\n"
                   "model = dict(_delete_=True, type='mmzsq.NoSuchModel')\n")
    ckpt = tmp_path / 'c.pth'
    ckpt.write_bytes(b'')
    out = _run(['tools/test.py', str(cfg), str(ckpt)])
    assert out.returncode != 0
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith('error: ') and 'NoSuchModel' in last


@pytest.mark.parametrize('tool', [
    'tools/test.py', 'tools/deployment/export_onnx.py', 'tools/demo.py',
    'tools/model_converters/yolov5_to_mmyolo.py'])
def test_tools_without_mmzsq_importable_name_the_fix(tool):
    """tools/*.py run by a Python that cannot import mmzsq."""
    code = ('import sys, runpy; sys.modules["mmzsq"] = None; '
            f'sys.argv = ["{tool}", "x.py", "y.pth"]; '
            f'runpy.run_path("{tool}", run_name="__main__")')
    out = _run(['-c', code])
    assert out.returncode != 0
    last = out.stderr.strip().splitlines()[-1]
    assert 'mmzsq is not importable' in last and 'make install' in last


def _teacher_labelled_set(root, ckpt, n=6, res=320):
    """``n`` coco_tiny images at ``res`` px as a synthetic set whose labels
    are YOLOv5n's own detections (score >= 0.25) on them."""
    import mmcv
    import torch
    from mmdet.apis import init_detector

    from mmzsq.synthesis import DetectorAdapter
    adapter = DetectorAdapter(init_detector(FP_CFG, ckpt, device='cpu'))
    os.makedirs(osp.join(root, 'images'))
    src = osp.join(COCO_TINY, 'val2017')
    images, anns = [], []
    for i, f in enumerate(sorted(os.listdir(src))[:n]):
        img = mmcv.imresize(mmcv.imread(osp.join(src, f)), (res, res))
        mmcv.imwrite(img, osp.join(root, 'images', f'{i:05d}.png'))
        images.append(dict(id=i, file_name=f'{i:05d}.png', width=res,
                           height=res))
        x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255
        det = adapter.predict(x)[0]
        for (x1, y1, x2, y2), s, c in zip(det.bboxes.tolist(),
                                          det.scores.tolist(),
                                          det.labels.tolist()):
            if s >= 0.25:
                anns.append(dict(id=len(anns) + 1, image_id=i,
                                 category_id=c, iscrowd=0,
                                 bbox=[x1, y1, x2 - x1, y2 - y1],
                                 area=(x2 - x1) * (y2 - y1)))
    coco = dict(images=images, annotations=anns, categories=[
        dict(id=i, name=c) for i, c in enumerate(adapter.classes)])
    return coco


@needs_coco_tiny
def test_label_agreement_tool(yolov5n_mmyolo_ckpt, tmp_path):
    """tools/analysis/label_agreement.py (Runner.test + CocoMetric): the
    teacher agrees with labels that are its own detections, not with the
    same labels moved to other images."""
    root = str(tmp_path / 'set')
    coco = _teacher_labelled_set(root, yolov5n_mmyolo_ckpt)
    assert len(coco['annotations']) >= 10

    def agreement(coco):
        with open(osp.join(root, 'annotations.json'), 'w') as f:
            json.dump(coco, f)
        out = _run(['tools/analysis/label_agreement.py', root, FP_CFG,
                    yolov5n_mmyolo_ckpt])
        assert out.returncode == 0, out.stderr[-3000:]
        return dict(kv.split('=') for kv in
                    out.stdout.strip().splitlines()[-1].split())

    own = agreement(coco)
    assert float(own['bbox_mAP_50']) > 0.95, own
    n = len(coco['images'])
    for a in coco['annotations']:  # every label on the next image
        a['image_id'] = (a['image_id'] + 1) % n
    moved = agreement(coco)
    assert float(moved['bbox_mAP_50']) < 0.3, moved


def test_asset_download_checks_the_sha256(tmp_path):
    """tools/_common/assets.download (torch.hub.download_url_to_file): the
    file only when its sha256 matches, one-line errors otherwise."""
    import hashlib

    from tools._common.assets import download
    src = tmp_path / 'src.bin'
    src.write_bytes(b'mmzsq' * 1000)
    sha = hashlib.sha256(src.read_bytes()).hexdigest()
    got = download(src.as_uri(), str(tmp_path / 'dl' / 'ok.bin'), sha)
    assert open(got, 'rb').read() == src.read_bytes()
    with pytest.raises(RuntimeError, match='checksum mismatch'):
        download(src.as_uri(), str(tmp_path / 'dl' / 'bad.bin'), '0' * 64)
    with pytest.raises(RuntimeError, match='Offline'):
        download((tmp_path / 'absent.bin').as_uri(),
                 str(tmp_path / 'dl' / 'absent.bin'))
    assert sorted(os.listdir(tmp_path / 'dl')) == ['ok.bin']
