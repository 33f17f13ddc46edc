#!/usr/bin/env bash
# Usage: tools/dist_train.sh CONFIG NPROC [train.py options]
exec bash "$(dirname "$0")/_common/dist_launch.sh" train.py "$2" "$1" \
    --launcher pytorch "${@:3}"
