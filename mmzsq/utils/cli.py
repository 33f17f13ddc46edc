"""Shared plumbing of the command-line tools: runner building and the
one-line, fix-naming errors users get for bad input."""
import contextlib
import re
import sys

from mmengine.config import Config

# re-exported for the tools (the library imports them from their modules)
from mmzsq.utils.checkpoint import check_checkpoint  # noqa: F401
from mmzsq.utils.errors import (ConfigError,  # noqa: F401
                                SynthesisInterrupted, UserError)

# what mmengine's registry prepends when it re-raises a build error
_BUILD_PREFIX = re.compile(r'^(class `\w+` in [\w./\\-]+(\.py)?: )+')


def load_config(path: str) -> Config:
    """``Config.fromfile`` for the tools: ``$MMZSQ_COCO_ROOT`` /
    ``$MMZSQ_COCO_TRAIN_ROOT`` normalised first, and no yapf pass over the
    config the Runner logs and dumps (3-6 s per Runner on 2 cores; mmengine
    0.10.7's ``fromfile`` drops its own ``format_python_code=False``)."""
    from mmzsq.utils.data_roots import normalize_root_env
    normalize_root_env()
    cfg = Config.fromfile(path)
    return Config(cfg.to_dict(), cfg_text=cfg.text, filename=cfg.filename,
                  env_variables=cfg.env_variables, format_python_code=False)


def check_runner_checkpoint(runner, path: str, config: str,
                            use: str = 'test') -> None:
    """Refuse, before testing / training, a checkpoint that does not set
    exactly the weights of ``runner.model`` (mmengine's ``load_from`` and
    ``--resume`` load with ``strict=False`` and would go on with random
    weights, e.g. testing to ``coco/bbox_mAP: 0.0000``)."""
    from mmzsq.utils.checkpoint import (check_state_dict, read_checkpoint,
                                        state_dict_of)
    check_state_dict(
        runner.model, state_dict_of(read_checkpoint(path)), path,
        f'the model of {config}',
        'the checkpoint is another detector, size or class count: use the '
        'config it was trained (tools/train.py) or converted '
        '(tools/model_converters/) for, or convert Ultralytics weights with '
        'tools/model_converters/yolov5_to_mmyolo.py or yolo11_to_mmyolo.py',
        config=config, use=use)


def build_runner(cfg: Config):
    """``Runner.from_cfg`` (or ``cfg.runner_type``) with mmzsq's errors."""
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner

    from mmzsq.engine.cpu_distributed import prepare_cpu_distributed
    prepare_cpu_distributed(cfg)
    try:
        if 'runner_type' in cfg:
            return RUNNERS.build(cfg)
        return Runner.from_cfg(cfg)
    except KeyError as e:
        msg = str(e).strip('"\'')
        if 'mmzsq' not in msg:
            raise
        from mmengine.registry import MODELS as ROOT
        if ROOT._search_child('mmzsq') is None:
            raise UserError(
                f'{msg}: mmzsq is not imported; add `custom_imports = '
                "dict(imports=['mmzsq'])` to the config") from None
        raise UserError(f'{msg}: not an mmzsq component; check the type '
                        'name in the config') from None


def finish_distributed():
    """Leave a distributed run cleanly: barrier, then destroy the process
    group(s).  Without it a rank can tear down its gloo group while a peer
    still has messages in flight, and the process aborts at exit
    ("terminate called without an active exception"; measured on a 2-rank
    CPU Stage I run: 3 of 12 runs without, 1 of 16 with only
    ``destroy_process_group``, 0 of 24 with barrier + destroy).  No-op when
    not distributed."""
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def one_line(e: BaseException) -> str:
    """``e``'s message without the registry's ``class `X` in y.py:``
    prefixes (an error raised while a component is built)."""
    return _BUILD_PREFIX.sub('', str(e))


@contextlib.contextmanager
def exit_on_user_error():
    """Turn :class:`UserError` (and a missing file) into ``error: ...``
    (exit 1), and a Ctrl-C during Stage I into its one-line ``interrupted:
    ...`` message (exit 130, as a shell reports SIGINT)."""
    try:
        yield
    except (UserError, FileNotFoundError) as e:
        sys.exit(f'error: {one_line(e)}')
    except SynthesisInterrupted as e:
        print(one_line(e), file=sys.stderr, flush=True)
        sys.exit(130)
