"""Config plumbing shared by tools/train.py, tools/synthesize.py and the
benchmark: the Stage I teacher is, unless a config says otherwise, the float
model that Stage II quantizes, and a synthetic set is checked against the
model that reads it."""
import copy
from typing import Optional

from mmengine.config import Config, ConfigDict


def fill_synthesis_teacher(cfg: Config) -> Config:
    """Default ``train_dataloader.dataset.synthesis.teacher`` /
    ``teacher_checkpoint`` to the algorithm's ``architecture`` /
    ``init_checkpoint``, so zero-shot configs state the float model once;
    give a ``SyntheticDetDataset`` the expectations of that model
    (``expect=dict(num_classes=, teacher_hash=, teacher_checkpoint=)``, see
    :func:`set_expectations`), whether or not it carries a ``synthesis``.

    Call it after ``--cfg-options`` are merged (an overridden
    ``model.init_checkpoint`` then reaches Stage I too).  Returns ``cfg``.
    """
    ds = cfg.get('train_dataloader', {}).get('dataset', {})
    if not isinstance(ds, dict):
        return cfg
    synthesis = ds.get('synthesis')
    model = cfg.get('model', {})
    if synthesis and 'architecture' in model:
        if synthesis.get('teacher') is None:
            # a copy: building the student mutates nested dicts of
            # ``architecture`` (e.g. bbox_head.train_cfg), which would change
            # the teacher hash between this check and Stage I
            synthesis['teacher'] = copy.deepcopy(
                ConfigDict(model['architecture']))
        if synthesis.get('teacher_checkpoint') is None:
            synthesis['teacher_checkpoint'] = model.get('init_checkpoint')
    if is_synthetic_dataset(ds):
        expect = set_expectations(model, synthesis)
        expect.update(ds.get('expect') or {})  # the config's own win
        ds['expect'] = ConfigDict(expect)
    return cfg


def is_synthetic_dataset(ds: dict) -> bool:
    t = ds.get('type')
    name = t if isinstance(t, str) else getattr(t, '__name__', '')
    return name.split('.')[-1] == 'SyntheticDetDataset'


def model_num_classes(model: dict) -> Optional[int]:
    """The class count of a detector config (``bbox_head[.head_module]``
    or ``roi_head.bbox_head``), ``None`` when it has none."""
    if not isinstance(model, dict):
        return None
    heads = [model.get('bbox_head')]
    roi = model.get('roi_head')
    if isinstance(roi, dict):
        heads.append(roi.get('bbox_head'))
    for h in heads:
        if isinstance(h, (list, tuple)) and h:  # cascade: the first stage
            h = h[0]
        if not isinstance(h, dict):
            continue
        for d in (h, h.get('head_module')):
            if isinstance(d, dict) and d.get('num_classes') is not None:
                return int(d['num_classes'])
    return None


def set_expectations(model: dict, synthesis: Optional[dict] = None) -> dict:
    """What a synthetic set read by ``model`` (an algorithm config with
    ``architecture`` / ``init_checkpoint``, or a plain detector config) must
    have been made for: its class count and, for an algorithm, the
    teacher hash Stage I records (:func:`mmzsq.synthesis.teacher_hash` of
    the synthesis teacher when the dataset has a ``synthesis``, else of the
    float model)."""
    from mmzsq.synthesis.generate import teacher_hash
    arch = model.get('architecture', model) if isinstance(model, dict) \
        else {}
    expect = dict(num_classes=model_num_classes(arch))
    if synthesis and synthesis.get('teacher') is not None:
        teacher = dict(teacher=synthesis['teacher'],
                       teacher_checkpoint=synthesis.get(
                           'teacher_checkpoint'))
    elif isinstance(model, dict) and 'architecture' in model:
        teacher = dict(teacher=model['architecture'],
                       teacher_checkpoint=model.get('init_checkpoint'))
    else:
        return expect
    expect.update(teacher_hash=teacher_hash(teacher),
                  teacher_checkpoint=str(teacher['teacher_checkpoint']))
    return expect
