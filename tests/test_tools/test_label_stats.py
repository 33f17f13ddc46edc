"""Label statistics of the tools (tools/_common/label_stats): the class-
frequency correlation the harness and label_distribution.py report."""
import json


def _coco(path, cats, boxes):
    """``cats``: {id: name}; ``boxes``: category ids, one box each."""
    json.dump(dict(
        images=[dict(id=1, file_name='a.png', width=8, height=8)],
        categories=[dict(id=i, name=n) for i, n in cats.items()],
        annotations=[dict(id=k, image_id=1, category_id=c,
                          bbox=[0, 0, 2, 2], area=4, iscrowd=0)
                     for k, c in enumerate(boxes)]), open(path, 'w'))
    return json.load(open(path))


def test_class_frequency_correlation_matches_by_name(tmp_path):
    from tools._common.label_stats import class_frequency_correlation
    real = _coco(tmp_path / 'real.json', {1: 'person', 3: 'car', 5: 'dog'},
                 [1, 1, 1, 1, 3, 3, 5])
    # same distribution under other ids (a set numbers classes 0..C-1)
    same = _coco(tmp_path / 'same.json', {0: 'person', 2: 'car', 4: 'dog'},
                 [0, 0, 0, 0, 2, 2, 4])
    assert abs(class_frequency_correlation(same, real) - 1.0) < 1e-9
    flipped = _coco(tmp_path / 'flip.json',
                    {0: 'person', 2: 'car', 4: 'dog'}, [0, 4, 4, 4, 4])
    assert class_frequency_correlation(flipped, real) < 0
    # a real class the set never drew counts as 0
    partial = _coco(tmp_path / 'part.json', {0: 'person', 2: 'car'},
                    [0, 0, 0, 2, 2])
    assert 0.9 < class_frequency_correlation(partial, real) < 1.0
