#!/usr/bin/env bash
# Build (once) and install mmcv 2.0.1 with compiled ops for the current torch.
#
# mmcv 2.0.1 is the only release inside mmyolo 0.6 (<2.1.0) and mmdet 3.3
# (<2.2.0) bounds.  PyPI ships only its sdist, whose setup.py forces
# -std=c++14; torch >= 2.1 headers need C++17.  We patch that, build a wheel
# and keep it in a cache keyed by python/torch/cuda so that later installs
# take seconds instead of ~18 minutes.
#
# Usage: tools/misc/build_mmcv.sh [PYTHON]     (default: python)
# Env:   MMZSQ_CACHE (default ~/.cache/mmzsq), MAX_JOBS (default: nproc)
set -euo pipefail
PY=$(command -v "${1:-python}")
PY=$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY")
MMCV_VERSION=2.0.1
CACHE=${MMZSQ_CACHE:-$HOME/.cache/mmzsq}

key=$("$PY" - <<'PYEOF'
import sys, torch
cuda = torch.version.cuda if torch.cuda.is_available() else None
print(f"py{sys.version_info.major}{sys.version_info.minor}-torch{torch.__version__.split('+')[0]}-"
      + (f"cu{cuda.replace('.', '')}" if cuda else "cpu"))
PYEOF
)
wheel_dir="$CACHE/wheels/mmcv-$MMCV_VERSION-$key"

if "$PY" -c "import mmcv, mmcv.ops, sys; sys.exit(mmcv.__version__ != '$MMCV_VERSION')" 2>/dev/null; then
  echo "[mmcv] mmcv $MMCV_VERSION with ops already installed"
  exit 0
fi

if ! ls "$wheel_dir"/mmcv-*.whl >/dev/null 2>&1; then
  echo "[mmcv] no cached wheel for $key: building mmcv $MMCV_VERSION from sdist (about 18 min on 2 cores)"
  build=$(mktemp -d)
  trap 'rm -rf "$build"' EXIT
  "$PY" -m pip download --no-deps --no-binary :all: --no-build-isolation -d "$build" "mmcv==$MMCV_VERSION"
  tar -xzf "$build"/mmcv-$MMCV_VERSION.tar.gz -C "$build"
  src="$build/mmcv-$MMCV_VERSION"
  sed -i 's/c++14/c++17/g' "$src/setup.py"
  "$PY" -m pip install -q 'setuptools<70' wheel ninja
  export MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-$(nproc)}
  if "$PY" -c "import torch,sys; sys.exit(not torch.cuda.is_available())"; then
    export FORCE_CUDA=1
  fi
  mkdir -p "$wheel_dir.tmp"
  (cd "$src" && "$PY" -m pip wheel --no-deps --no-build-isolation -w "$wheel_dir.tmp" .)
  rm -rf "$wheel_dir" && mv "$wheel_dir.tmp" "$wheel_dir"   # publish atomically
fi
echo "[mmcv] installing cached wheel from $wheel_dir"
"$PY" -m pip install -q --no-deps "$wheel_dir"/mmcv-*.whl
