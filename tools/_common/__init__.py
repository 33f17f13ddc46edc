"""Code the command-line tools share and the library does not need: the
demo / benchmark runner (:mod:`.experiment`), its assets (:mod:`.assets`),
and the scripts' start-up (:func:`import_mmzsq`)."""
import sys


def import_mmzsq():
    """``import mmzsq`` (compat patches, registries), or one ``error:`` line
    naming the fix when this Python cannot import it."""
    try:
        import mmzsq  # noqa: F401
    except ImportError as e:  # pragma: no cover - exercised from the shell
        sys.exit(f'error: mmzsq is not importable ({e}); run `make install` '
                 'in the mmzsq checkout, or `pip install -e .` there.')


def load_tool_config(path: str, cfg_options=None):
    """The config at ``path`` (:func:`mmzsq.utils.cli.load_config`) with
    ``--cfg-options`` merged and its default scope set."""
    from mmengine.registry import init_default_scope

    from mmzsq.utils.cli import load_config
    cfg = load_config(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmyolo'))
    return cfg


def config_parser(description: str, config_help: str):
    """An ``ArgumentParser`` taking the config (positional) and
    ``--cfg-options`` (merged by :func:`load_tool_config`)."""
    import argparse

    from mmengine.config import DictAction
    p = argparse.ArgumentParser(description=description)
    p.add_argument('config', help=config_help)
    p.add_argument('--cfg-options', nargs='+', action=DictAction,
                   help='override config keys, e.g. model.x=1')
    return p


def add_runner_arguments(parser):
    """The arguments every Runner tool takes, as mmdet's tools: a work dir,
    ``--cfg-options``, the launcher and the local rank."""
    from mmengine.config import DictAction
    parser.add_argument('--work-dir', help='the dir to save logs, metrics '
                        'and checkpoints')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings in the config, key=value format')
    parser.add_argument(
        '--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    return parser


def runner_config(args):
    """The config of ``args.config`` as a Runner tool uses it: options
    merged, launcher and work dir set (default ``work_dirs/<config
    name>``); ``LOCAL_RANK`` exported for the launcher."""
    import os
    import os.path as osp

    from mmzsq.utils.cli import load_config
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    cfg = load_config(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join(
            './work_dirs', osp.splitext(osp.basename(args.config))[0])
    return cfg
