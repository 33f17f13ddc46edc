"""Config plumbing shared by tools/train.py, tools/synthesize.py and the
benchmark: the Stage I teacher is, unless a config says otherwise, the float
model that Stage II quantizes."""
from mmengine.config import Config, ConfigDict


def fill_synthesis_teacher(cfg: Config) -> Config:
    """Default ``train_dataloader.dataset.synthesis.teacher`` /
    ``teacher_checkpoint`` to the algorithm's ``architecture`` /
    ``init_checkpoint``, so zero-shot configs state the float model once.

    Call it after ``--cfg-options`` are merged (an overridden
    ``model.init_checkpoint`` then reaches Stage I too).  Returns ``cfg``.
    """
    ds = cfg.get('train_dataloader', {}).get('dataset', {})
    synthesis = ds.get('synthesis') if isinstance(ds, dict) else None
    model = cfg.get('model', {})
    if not synthesis or 'architecture' not in model:
        return cfg
    if synthesis.get('teacher') is None:
        synthesis['teacher'] = ConfigDict(model['architecture'])
    if synthesis.get('teacher_checkpoint') is None:
        synthesis['teacher_checkpoint'] = model.get('init_checkpoint')
    return cfg
