#!/usr/bin/env bash
# Every GPU check and the GPU benchmark, in under 5 minutes on one H100: run it whenever a GPU is lent.
#   bash benchmarks/gpu_check.sh            (from the repository root; needs `pip install -e ".[gpu,test]"`)
# Prints what the machine has, runs tests/test_gpu.py (GPU tests skip with their reason where CuPy finds no GPU or
# TensorRT does not import), the daemon's pipeline tests on whatever frontend and engine `auto` picks, and
# benchmarks/gpu_speed.py. Exit status: non-zero when a test fails.
set -uo pipefail
cd "$(dirname "$0")/.."
export STREAMGENRE_CACHE="${STREAMGENRE_CACHE:-$(mktemp -d)}"  # plans built here are thrown away
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | head -2
python3 - <<'PY'
import importlib
for name in ("cupy", "tensorrt", "onnxruntime", "torch", "librosa", "av", "websockets"):
    try:
        print(f"{name:12} {importlib.import_module(name).__version__}")
    except Exception as e:  # report, do not stop: the tests say what they skip
        print(f"{name:12} missing ({type(e).__name__}: {e})")
PY
status=0
timeout 180 python3 -m pytest -q -p no:cacheprovider -rs tests/test_gpu.py tests/test_pipeline.py || status=$?
timeout 100 python3 benchmarks/gpu_speed.py --batches 1 1024 --seconds 1.0 || status=$?
exit $status
