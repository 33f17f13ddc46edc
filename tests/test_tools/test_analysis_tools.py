"""The Stage I analysis tools: grid browser, label distribution."""
import json
import os.path as osp

import pytest

from tests.conftest import ROOT


def _hand_built_set(set_dir):
    import numpy as np
    from mmzsq.synthesis import SyntheticSet
    s = SyntheticSet(set_dir)
    imgs = [np.full((64, 64, 3), 40 * i, np.uint8) for i in range(3)]
    labels = [(np.array([[4., 4., 40., 50.]]), np.array([0])),
              (np.array([[1., 2., 30., 30.], [30., 30., 60., 60.]]),
               np.array([2, 0])),
              (np.array([[10., 10., 20., 20.]]), np.array([1]))]
    s.write_batch(0, imgs, labels, [0.1, 0.2, 0.3])
    return s.merge(1, ['person', 'bicycle', 'car'], dict(seed=0))


def test_analysis_tools(tmp_path, capsys):
    import importlib.util

    import cv2

    def load_tool(name):
        spec = importlib.util.spec_from_file_location(
            name, osp.join(ROOT, 'tools', 'analysis', f'{name}.py'))
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod

    browse_synthetic = load_tool('browse_synthetic')
    label_distribution = load_tool('label_distribution')
    set_dir = str(tmp_path / 'set')
    coco = _hand_built_set(set_dir)
    assert len(coco['annotations']) == 4
    out = str(tmp_path / 'grid.png')
    browse_synthetic.main([set_dir, '--out', out, '--cols', '2',
                           '--cell', '64'])
    assert cv2.imread(out).shape == (128, 128, 3)
    ref = dict(images=[dict(id=1, width=100, height=100)],
               categories=[dict(id=1, name='person'), dict(id=3,
                                                           name='car')],
               annotations=[dict(image_id=1, bbox=[0, 0, 10, 10],
                                 category_id=1, iscrowd=0)])
    (tmp_path / 'ref.json').write_text(json.dumps(ref))
    label_distribution.main([set_dir, '--ref', str(tmp_path / 'ref.json')])
    text = capsys.readouterr().out
    assert 'KL(reference || synthetic)' in text and '4 boxes on 3 images' \
        in text
    for f in ('category_frequency.png', 'box_size.png',
              'boxes_per_image.png'):
        assert osp.getsize(osp.join(set_dir, f)) > 1000
    import numpy as np
    assert label_distribution.kl_divergence(np.array([1., 1.]),
                                            np.array([1., 1.])) < 1e-9
    with pytest.raises(SystemExit, match='tools/synthesize.py'):
        browse_synthetic.main([str(tmp_path / 'nope')])
