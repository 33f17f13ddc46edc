#!/usr/bin/env bash
# Install mmzsq and its pinned OpenMMLab stack into a virtual environment.
#
#   tools/misc/install.sh [VENV]     (default .venv; created if missing)
#
# - keeps an existing torch (e.g. a user's CUDA build); otherwise installs
#   torch==2.13.0 (the CPU wheel this project is tested with);
# - mmengine/mmdet/mmyolo/mmrazor with --no-deps (requirements/openmmlab.txt),
#   their runtime needs from requirements/runtime.txt;
# - mmcv 2.0.1 with ops, built once and cached (tools/misc/build_mmcv.sh);
# - mmzsq itself in editable mode, plus the test requirements (ultralytics,
#   test-only, --no-deps into $VENV/ultralytics-tests).
# Safe to re-run: finished steps are skipped in seconds.
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV=${1:-.venv}
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
PY="$VENV/bin/python"
pipi() { "$PY" -m pip install -q --disable-pip-version-check "$@" 2>&1 \
           | grep -vE "^WARNING: Location .* is ignored" || true; }

if ! "$PY" -c 'import torch' 2>/dev/null; then
  echo "[install] torch==2.13.0"
  pipi torch==2.13.0
fi
pipi -r requirements/build.txt
pipi -r requirements/runtime.txt -r requirements/deploy.txt -r requirements/tests.txt
pipi --no-deps -r requirements/openmmlab.txt
# test-only Ultralytics (YOLO11 converter check): --no-deps, in its own folder
# outside site-packages, so it can neither touch torch nor pull torchvision
[ -d "$VENV/ultralytics-tests/ultralytics" ] || pipi --no-deps \
  --target "$VENV/ultralytics-tests" -r requirements/tests-ultralytics.txt
bash tools/misc/build_mmcv.sh "$PY"
pipi --no-deps --no-build-isolation -e .
"$PY" - <<'PYEOF'
import torch, mmcv, mmcv.ops, mmdet, mmyolo, mmrazor, mmengine, mmzsq
import mmrazor.models  # needs mmzsq's compat patch on torch 2.x
print(f'[install] ok: torch {torch.__version__}, mmcv {mmcv.__version__}, '
      f'mmengine {mmengine.__version__}, mmdet {mmdet.__version__}, '
      f'mmyolo {mmyolo.__version__}, mmrazor {mmrazor.__version__}, '
      f'mmzsq {mmzsq.__version__}')
PYEOF
