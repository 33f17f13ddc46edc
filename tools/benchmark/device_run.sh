#!/usr/bin/env bash
# The one command for the lent GPU machine (H200; it starts bare: Python 3.12,
# torch 2.11 + CUDA 13, torchvision 0.26, no OpenMMLab, no network, 15 min
# per session including its start).  It
#   1. installs the OpenMMLab stack from wheels carried in .speed_device/
#      (ignored by git) into /tmp/mmzsq_site, and provides mmcv 2.0.1 (below);
#   2. measures our Stage I / Stage II loops against the network's floor
#      (tools/benchmark/synthesis_speed.py at 160 and 640 px, FLOPs counted);
#   3. runs the `gpu` preset of tools/benchmark/zsq_table.py (W4A8, ZSQ) with
#      its iterations scaled to fit --budget seconds at the rates of step 2
#      (tools/benchmark/budget_table.py; 512 images and 640 px are kept);
#   4. writes to --out: table.md, results.json (the table's), summary.md /
#      summary.json (Stage I img-it/s, GFLOP per image-iteration, share of
#      the H200's 989 TFLOP/s dense bf16), speed_*.json, run.log.
#
# Here, once (PyPI only; about 9 MB of wheels + 18 MB copied from ../shared):
#   bash tools/benchmark/device_run.sh --prepare
# which runs
#   pip download --no-deps --only-binary=:all: --python-version 3.12 \
#     --implementation cp --platform manylinux_2_28_x86_64 \
#     --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#     -d .speed_device/wheels mmengine==0.10.7 mmdet==3.3.0 mmyolo==0.6.0 \
#     mmrazor==1.0.0 addict yapf platformdirs termcolor terminaltables \
#     ordered-set prettytable wcwidth shapely pycocotools
#   pip download --no-deps --no-binary :all: mmcv==2.0.1   # the sdist, then
#   MMCV_WITH_OPS=0 pip wheel --no-deps --no-build-isolation mmcv-2.0.1.tar.gz
#     # -> mmcv_lite-2.0.1-py2.py3-none-any.whl (pure Python)
# and copies ../shared/weights/yolov5n-v6.1.pt and
# ../shared/data/coco_tiny_val2017 to .speed_device/shared/ (read there
# through $MMZSQ_SHARED; the device gets nothing from ../shared).
# The rest (numpy, scipy, matplotlib, opencv-python-headless, pyyaml, rich,
# six, tqdm, onnx, onnxruntime) is on the device already.
#
# Then on the device (the `run` tool): command
#   bash tools/benchmark/device_run.sh --out $OUT
# with carry ['.speed_device'] and timeout_s 600.
#
# mmcv 2.0.1 there: its CUDA ops take far longer than the ~4 minutes allowed
# to compile on 16 cores (and its kernels predate CUDA 13); its CPU ops about
# 2-3 minutes and 80 MB, and buy YOLOv5 nothing on a GPU.  So, in order:
#   a. a compiled mmcv-2.0.1-cp312-*.whl carried in .speed_device/wheels;
#   b. --mmcv-build cpu|cuda: build the sdist's ops there (timeout
#      $MMCV_BUILD_S, 200 s); not expected to fit, opt-in only;
#   c. (the default, the one expected to work) mmcv-lite (no compiled ops)
#      plus tools/benchmark/mmcv_ext_shim.py as mmcv/_ext.py: nms and
#      roi_align on torchvision's CPU/CUDA kernels, other ops raise when
#      called, so mmcv.ops, mmdet and mmyolo import as usual.
#   a or b without CUDA ops also get the shim (it calls the compiled
#   library for CPU tensors).
#
#   bash tools/benchmark/device_run.sh --dry-run --out DIR
# runs the same pipeline here at toy sizes in the current Python ($PYTHON,
# default python3) without installing anything: the shim checked against
# the compiled mmcv, synthesis_speed.py at 64 px, the `toy` preset
# (W4A8, ZSQ; 4 val images) through budget_table.py.
#   --install-only: steps 1 only (with $SPEED_DEVICE_DIR, $MMZSQ_SITE and
#   $PYTHON it also checks the install path c on a CPU machine).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
CARRY=${SPEED_DEVICE_DIR:-$ROOT/.speed_device}
SITE=${MMZSQ_SITE:-/tmp/mmzsq_site}
OUT= DRY=0 PREPARE=0 INSTALL_ONLY=0 MMCV_BUILD=none BUDGET=360
while [ $# -gt 0 ]; do
  case $1 in
    --out) OUT=$2; shift 2 ;;
    --dry-run) DRY=1; shift ;;
    --prepare) PREPARE=1; shift ;;
    --install-only) INSTALL_ONLY=1; shift ;;
    --mmcv-build) MMCV_BUILD=$2; shift 2 ;;
    --budget) BUDGET=$2; shift 2 ;;
    *) echo "error: unknown argument $1; use --out DIR [--dry-run]" \
         "[--prepare] [--install-only] [--mmcv-build none|cpu|cuda]" \
         "[--budget S]" >&2; exit 2 ;;
  esac
done
PY=${PYTHON:-python3}
SHARED_SRC=${MMZSQ_SHARED:-$ROOT/../shared}

prepare() {
  local w=$CARRY/wheels
  mkdir -p "$w" "$CARRY/shared/weights" "$CARRY/shared/data"
  "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d "$w" \
    mmengine==0.10.7 mmdet==3.3.0 mmyolo==0.6.0 mmrazor==1.0.0 addict yapf \
    platformdirs termcolor terminaltables ordered-set prettytable wcwidth \
    shapely pycocotools
  local b; b=$(mktemp -d)
  "$PY" -m pip download -q --no-deps --no-binary :all: -d "$b" mmcv==2.0.1
  MMCV_WITH_OPS=0 "$PY" -m pip wheel -q --no-deps --no-build-isolation \
    -w "$w" "$b"/mmcv-2.0.1.tar.gz
  cp "$b"/mmcv-2.0.1.tar.gz "$w"/ && rm -rf "$b"
  cp "$SHARED_SRC/weights/yolov5n-v6.1.pt" "$CARRY/shared/weights/"
  rm -rf "$CARRY/shared/data/coco_tiny_val2017"
  cp -r "$SHARED_SRC/data/coco_tiny_val2017" "$CARRY/shared/data/"
  du -sh "$CARRY"
}

install_stack() {  # -> $SITE on PYTHONPATH, mmcv importable
  local w=$CARRY/wheels
  ls "$w"/mmengine-*.whl >/dev/null 2>&1 || {
    echo "error: no wheels in $w; run 'bash tools/benchmark/device_run.sh" \
         "--prepare' here and carry .speed_device" >&2; exit 2; }
  local compiled; compiled=$(ls "$w"/mmcv-2.0.1-cp312-*.whl 2>/dev/null | head -1 || true)
  local wheels; wheels=$(ls "$w"/*.whl | grep -v '/mmcv')
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
    --upgrade --target "$SITE" $wheels
  export PYTHONPATH=$SITE:$ROOT
  if [ -n "$compiled" ]; then
    echo "[mmcv] a: carried compiled wheel $(basename "$compiled")"
    "$PY" -m pip install -q --no-index --no-deps --target "$SITE" "$compiled"
  elif [ "$MMCV_BUILD" != none ] && build_mmcv; then
    echo "[mmcv] b: built with $MMCV_BUILD ops"
  else
    echo "[mmcv] c: mmcv-lite + torchvision shim for nms / roi_align"
    "$PY" -m pip install -q --no-index --no-deps --target "$SITE" \
      "$w"/mmcv_lite-2.0.1-*.whl
  fi
  cuda_ops || shim "$SITE/mmcv"
  "$PY" -c "import mmzsq, mmcv, mmcv.ops, mmdet.models, mmyolo.models, mmrazor.models; print('[install] ok: mmcv', mmcv.__version__)"
}

cuda_ops() {  # does the installed mmcv run nms on a CUDA tensor?
  "$PY" - <<'EOF' 2>/dev/null
import torch
from mmcv.ops import nms
b = torch.tensor([[0., 0, 10, 10], [1, 1, 10, 10]], device='cuda')
nms(b, torch.tensor([0.9, 0.8], device='cuda'), 0.5)
EOF
}

build_mmcv() {  # b: the sdist's ops, within $MMCV_BUILD_S seconds
  local src; src=$(mktemp -d)
  tar -xzf "$CARRY/wheels/mmcv-2.0.1.tar.gz" -C "$src"
  sed -i 's/c++14/c++17/g' "$src/mmcv-2.0.1/setup.py"
  local force=0; [ "$MMCV_BUILD" = cuda ] && force=1
  (cd "$src/mmcv-2.0.1" && MMCV_WITH_OPS=1 FORCE_CUDA=$force MAX_JOBS=$(nproc) \
    timeout "${MMCV_BUILD_S:-200}" "$PY" setup.py -q build_ext --inplace \
    >>"$OUT/run.log" 2>&1) || return 1
  rm -rf "$SITE/mmcv" && cp -r "$src/mmcv-2.0.1/mmcv" "$SITE/mmcv"
}

shim() {  # $1: an mmcv package folder; keeps a compiled _ext as _ext_native
  local d=$1 so
  so=$(ls "$d"/_ext.*.so 2>/dev/null | head -1 || true)
  [ -n "$so" ] && mv "$so" "$d/_ext_native.so.bin"
  cp "$ROOT/tools/benchmark/mmcv_ext_shim.py" "$d/_ext.py"
  echo "[mmcv] shim: $d/_ext.py (nms / roi_align on torchvision)"
}

speed() {  # $1: name, then synthesis_speed.py arguments
  local name=$1; shift
  "$PY" tools/benchmark/synthesis_speed.py --json "$@" \
    >"$OUT/speed_$name.json" 2>"$OUT/speed.log" || { tail -20 "$OUT/speed.log"; exit 1; }
  cat "$OUT/speed.log" >>"$OUT/run.log" && rm "$OUT/speed.log"
  echo "[speed $name] $(tail -1 "$OUT/speed_$name.json")"
}

[ "$PREPARE" = 1 ] && { prepare; exit 0; }
[ -n "$OUT" ] || { echo "error: give --out DIR" >&2; exit 2; }
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
cd "$ROOT"
export PYTHONUNBUFFERED=1
T0=$(date +%s)
exec > >(tee -a "$OUT/run.log") 2>&1
if [ "$DRY" = 1 ]; then
  export PYTHONPATH=$ROOT${PYTHONPATH:+:$PYTHONPATH}
  mmcv_dir=$("$PY" -c "import mmcv, os; print(os.path.dirname(mmcv.__file__))")
  native=$(ls "$mmcv_dir"/_ext.*.so | head -1)
  overlay=$OUT/overlay
  rm -rf "$overlay" && mkdir -p "$overlay"
  cp -r "$mmcv_dir" "$overlay/mmcv" && rm -f "$overlay"/mmcv/_ext.*.so
  shim "$overlay/mmcv"
  PYTHONPATH=$overlay:$PYTHONPATH "$PY" -c \
    "import sys, mmcv._ext as m; m._check(sys.argv[1])" "$native"
  rm -rf "$overlay"
  # the toy preset's sizes: Stage I batch 4 at 64 px, Stage II batch 2
  common=(--checkpoint random --res 64 --iters 2 --warmup 1 --flops --no-compile)
  speed lo --batch 4 --stages 1 "${common[@]}"
  speed hi --batch 4 --stages 1 "${common[@]}"
  speed s2 --batch 2 "${common[@]}"
  # four val images: the FP and quantized evaluations take seconds
  "$PY" - "$OUT/mini_val" <<'EOF'
import json, os, os.path as osp, sys
from tools._common.assets import coco_val_root
src, dst = coco_val_root(), sys.argv[1]
if src is None:
    sys.exit('error: no COCO val folder (../shared/data/coco_tiny_val2017)')
coco = json.load(open(osp.join(src, 'annotations/instances_val2017.json')))
coco['images'] = coco['images'][:4]
ids = {i['id'] for i in coco['images']}
coco['annotations'] = [a for a in coco['annotations'] if a['image_id'] in ids]
os.makedirs(osp.join(dst, 'annotations'), exist_ok=True)
os.makedirs(osp.join(dst, 'val2017'), exist_ok=True)
json.dump(coco, open(osp.join(dst, 'annotations/instances_val2017.json'), 'w'))
for i in coco['images']:
    link = osp.join(dst, 'val2017', i['file_name'])
    if not osp.exists(link):
        os.symlink(osp.join(src, 'val2017', i['file_name']), link)
EOF
  "$PY" tools/benchmark/budget_table.py --preset toy \
    --speed "$OUT"/speed_{lo,hi,s2}.json --budget "$BUDGET" --out "$OUT" \
    --work-dir "$OUT/work" --coco-root "$OUT/mini_val"
  rm -rf "$OUT/work" "$OUT/mini_val"
else
  export MMZSQ_SHARED=$CARRY/shared
  nvidia-smi --query-gpu=name,clocks.sm,memory.used --format=csv || true
  install_stack
  echo "[time] install: $(( $(date +%s) - T0 )) s"
  [ "$INSTALL_ONLY" = 1 ] && exit 0
  # the gpu preset's Stage I batch at its label / image resolutions (bf16,
  # as train_cfg.synthesis.amp), and its Stage II batch at the QAT
  # resolution (fp32, as tools/train.py runs it for the table); eager, as
  # the preset's runs (torch.compile with Triton: not measured yet, and a
  # compile per size would eat the device budget)
  speed lo --res 160 --batch 128 --iters 20 --warmup 5 --stages 1 --flops --no-compile
  speed hi --res 640 --batch 128 --iters 20 --warmup 5 --stages 1 --flops --no-compile
  speed s2 --res 640 --batch 32 --iters 20 --warmup 5 --flops --no-compile
  echo "[time] speed: $(( $(date +%s) - T0 )) s"
  "$PY" tools/benchmark/budget_table.py --preset gpu \
    --speed "$OUT"/speed_{lo,hi,s2}.json --budget "$BUDGET" --out "$OUT" \
    --work-dir /tmp/zsq_gpu
fi
echo "[time] total: $(( $(date +%s) - T0 )) s"
