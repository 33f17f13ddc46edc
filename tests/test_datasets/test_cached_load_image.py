"""``mmzsq.CachedLoadImageFromFile``: the decoded image of
``LoadImageFromFile``, decoded once, a fresh copy per call."""
import cv2
import numpy as np
import pytest

from mmzsq.registry import TRANSFORMS


@pytest.fixture
def pngs(tmp_path):
    rng = np.random.default_rng(0)
    paths = []
    for i in range(3):
        img = rng.integers(0, 256, (6 + i, 5, 3), dtype=np.uint8)
        paths.append(str(tmp_path / f'{i}.png'))
        cv2.imwrite(paths[-1], img)
    return paths


def test_the_same_image_as_load_image_from_file_decoded_once(
        pngs, monkeypatch):
    from mmcv.transforms import LoadImageFromFile
    load = TRANSFORMS.build(dict(type='mmzsq.CachedLoadImageFromFile'))
    plain = LoadImageFromFile()
    decodes = []
    real = LoadImageFromFile.transform

    def counted(self, results):
        decodes.append(results['img_path'])
        return real(self, results)

    monkeypatch.setattr(LoadImageFromFile, 'transform', counted)
    for _ in range(3):
        for p in pngs:
            got = load(dict(img_path=p))
            want = real(plain, dict(img_path=p))
            np.testing.assert_array_equal(got['img'], want['img'])
            assert got['img_shape'] == got['ori_shape'] == want['img_shape']
    assert decodes == pngs  # each file once
    # a copy per call: changing one does not change the next
    first = load(dict(img_path=pngs[0]))
    first['img'][:] = 0
    assert load(dict(img_path=pngs[0]))['img'].any()


def test_beyond_the_budget_images_are_decoded_every_time(pngs):
    one = cv2.imread(pngs[0]).nbytes
    load = TRANSFORMS.build(dict(type='mmzsq.CachedLoadImageFromFile',
                                 max_cache_mb=one / 2**20))
    for p in pngs:
        load(dict(img_path=p))
    assert list(load._cache) == [pngs[0]]
    np.testing.assert_array_equal(load(dict(img_path=pngs[2]))['img'],
                                  cv2.imread(pngs[2]))
    assert 'max_cache_mb=' in repr(load)
    with pytest.raises(ValueError, match='max_cache_mb'):
        TRANSFORMS.build(dict(type='mmzsq.CachedLoadImageFromFile',
                              max_cache_mb=-1))
