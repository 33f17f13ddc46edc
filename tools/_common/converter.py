"""The command line of the checkpoint converters
(tools/model_converters/*_to_mmyolo.py)."""
import argparse
import os
import os.path as osp
import sys
from typing import Callable


def convert_main(convert: Callable[[str], dict], description: str,
                 src_help: str, describe: Callable[[dict, str], str],
                 argv=None) -> None:
    """``SRC DST``: ``convert(SRC)`` saved atomically to ``DST`` (a one-line
    ``error:`` for a file the converter refuses), then
    ``describe(ckpt, DST)`` printed."""
    import torch
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument('src', help=src_help)
    parser.add_argument('dst', help='output .pth')
    args = parser.parse_args(argv)
    try:
        ckpt = convert(args.src)
    except (FileNotFoundError, ValueError) as e:
        sys.exit(f'error: {e}')
    os.makedirs(osp.dirname(osp.abspath(args.dst)), exist_ok=True)
    tmp = args.dst + '.tmp'
    torch.save(ckpt, tmp)
    os.replace(tmp, args.dst)
    print(describe(ckpt, args.dst))
