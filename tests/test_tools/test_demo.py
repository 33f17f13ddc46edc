"""The README's main job (tools/demo.py) end to end at toy scale: Stage I
synthesis with adaptive label sampling, Stage II QAT, evaluation, pictures."""
import json
import os.path as osp
import subprocess
import sys

from tests.conftest import COCO_TINY, needs_coco_tiny, needs_yolov5n


@needs_yolov5n
@needs_coco_tiny
def test_demo_pipeline_toy_scale(tmp_path):
    wd = tmp_path / 'demo'
    out = subprocess.run(
        [sys.executable, 'tools/demo.py', '--preset', 'toy', '--bits',
         'w8a8', '--work-dir', str(wd), '--coco-root', COCO_TINY],
        capture_output=True, text=True, timeout=1500)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    res = json.load(open(wd / 'results.json'))
    fp, q, ptq = res['fp'], res['zsq:w8a8'], res['ptq:w8a8']
    assert fp['mAP'] > 0.3
    # 2 QAT / PTQ iterations from the float weights: W8A8 stays close to FP
    for r in (q, ptq):
        assert 0.8 * fp['mAP'] < r['mAP'] <= fp['mAP'] + 0.02
    assert res['set:als']['images'] == 4
    for png in ('synthetic_grid.png', 'category_frequency.png'):
        assert osp.getsize(wd / png) > 1000, png
    table = out.stdout[out.stdout.index('| model |'):]
    assert '| FP32 |' in table and '| W8A8 ZSQ |' in table and \
        '| W8A8 PTQ |' in table
