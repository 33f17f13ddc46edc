#!/usr/bin/env bash
# Usage: tools/_common/dist_launch.sh TOOL NPROC [TOOL arguments]
# Runs tools/TOOL in NPROC processes with torch.distributed.run (the
# launcher of tools/dist_train.sh and tools/dist_test.sh); NNODES,
# NODE_RANK, PORT and MASTER_ADDR from the environment.
TOOLS="$(cd "$(dirname "$0")/.." && pwd)"
TOOL=$1
NPROC=$2
shift 2
PYTHONPATH="$TOOLS/..":$PYTHONPATH \
exec python -m torch.distributed.run \
    --nnodes="${NNODES:-1}" \
    --node_rank="${NODE_RANK:-0}" \
    --master_addr="${MASTER_ADDR:-127.0.0.1}" \
    --nproc_per_node="$NPROC" \
    --master_port="${PORT:-29500}" \
    "$TOOLS/$TOOL" "$@"
