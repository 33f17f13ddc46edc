#!/usr/bin/env bash
# Usage: tools/dist_test.sh CONFIG CHECKPOINT NPROC [test.py options]
exec bash "$(dirname "$0")/_common/dist_launch.sh" test.py "$3" "$1" "$2" \
    --launcher pytorch "${@:4}"
