#!/usr/bin/env bash
# One command for a machine with a CUDA GPU: the GPU tests, then the benchmark sweep.
#
#   OUT=/path/to/results bash scripts/gpu_check.sh
#
# Needs lsm installed with the cuda and test extras (pip install -e ".[test,cuda]"; torch with
# CUDA is measured too when installed). Writes under $OUT (default ./gpu-results):
#   gpu.txt          nvidia-smi's view of the device
#   tests.txt        the GPU tests: compile_ptx of every kernel, the shared test bodies on CuPy
#                    arrays (the "cuda" backend), and the dispatch tests
#   bench.log        lsm bench --backend cuda: every op and dtype on CuPy arrays, sizes up to
#                    1e7 elements (pass --large for 1e8), beside a same-run device copy,
#                    cupyx.scipy.special and torch; the table for benchmarks/RESULTS.md
#   lsm-bench-cuda.json, .md, .png   its results (pytest-benchmark's layout), table and plot
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-$PWD/gpu-results}"
mkdir -p "$OUT"

if ! python -c "import cupy, numba_cuda" 2>/dev/null; then
    echo "gpu_check: CuPy and numba-cuda are needed: pip install -e '.[test,cuda]'" >&2
    exit 2
fi
nvidia-smi > "$OUT/gpu.txt" 2>&1 || true
python -c "from numba import cuda; assert cuda.is_available(), 'no CUDA GPU visible to Numba'"

# -k cuda: the compile tests, the shared bodies on the "cuda" backend, and the dispatch tests
status=0
python -m pytest tests -q -p no:cacheprovider -k "cuda or gpu or device" 2>&1 | tee "$OUT/tests.txt" || status=$?

python -m lsm bench --backend cuda --out "$OUT" "$@" 2>&1 | tee "$OUT/bench.log"
exit "$status"
