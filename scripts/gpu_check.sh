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
#   sanitizer-*.txt  compute-sanitizer's memcheck, racecheck and synccheck over the kernel-path
#                    tests (tests/test_cuda_paths.py on CuPy), when compute-sanitizer is on PATH
#   devices.txt      with two GPUs or more: every op on CuPy arrays of the second device, while
#                    the first is current, against the host result
#   bench.log        lsm bench --backend cuda: every op and dtype on CuPy arrays, sizes up to
#                    1e7 elements (pass --large for 1e8), beside a same-run device copy,
#                    cupyx.scipy.special and torch; the table for benchmarks/RESULTS.md
#   lsm-bench-cuda.json, .md, .png   its results (pytest-benchmark's layout), table and plot
#   row-sweep.log, row-sweep/   lsm bench --backend cuda --row-sweep: reduced lengths 32 to
#                    262144 (2^24 elements each, float16 and float32, axis -1 and 0) and the
#                    cliffs between neighbouring lengths (issue 19's "no cliff over 25%")
#   bench-torch.log, lsm-bench-cuda-torch.*   with torch's CUDA build: lsm --backend cuda-torch,
#                    torch CUDA tensors in bfloat16, float16 and float32 (CuPy has no bfloat16),
#                    lsm beside torch's own kernels and a same-run copy_
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

if command -v compute-sanitizer > /dev/null; then
    for tool in memcheck racecheck synccheck; do
        compute-sanitizer --tool "$tool" --error-exitcode 9 \
            python -m pytest tests/test_cuda_paths.py -q -p no:cacheprovider -k "cuda and float32" \
            > "$OUT/sanitizer-$tool.txt" 2>&1 || status=$?
    done
else
    echo "gpu_check: compute-sanitizer not found, sanitizer runs skipped" | tee "$OUT/sanitizer-skipped.txt"
fi

if [ "$(python -c 'import cupy; print(cupy.cuda.runtime.getDeviceCount())')" -ge 2 ]; then
    python - > "$OUT/devices.txt" 2>&1 <<'PY' || status=$?
import cupy, numpy as np, lsm
x = np.random.default_rng(0).standard_normal((64, 1000))
target = np.arange(64) % 1000
with cupy.cuda.Device(1):
    dx, dt = cupy.asarray(x), cupy.asarray(target)
for name, call in [
    ("log_softmax", lambda a, t: lsm.log_softmax(a)),
    ("logsumexp", lambda a, t: lsm.logsumexp(a, axis=0)),
    ("cross_entropy", lambda a, t: lsm.cross_entropy(a, t, return_grad=True)[1]),
]:
    got = call(dx, dt)
    assert got.device.id == 1, name
    np.testing.assert_allclose(cupy.asnumpy(got), call(x, target), rtol=1e-12, atol=1e-12)
    print(name, "on device 1: ok")
PY
fi

python -m lsm bench --backend cuda --out "$OUT" "$@" 2>&1 | tee "$OUT/bench.log"
# reduced lengths 32 to 262144 at 2^24 elements each, float16 and float32, rows and columns, and
# the cliffs (a step of more than 25%) between neighbouring lengths
python -m lsm bench --backend cuda --row-sweep --dtype float16 float32 --no-plot --out "$OUT/row-sweep" 2>&1 \
    | tee "$OUT/row-sweep.log"
if python -c "import sys, torch; sys.exit(not torch.cuda.is_available())" 2>/dev/null; then
    python -m lsm bench --backend cuda-torch --dtype bfloat16 float16 float32 --out "$OUT" "$@" 2>&1 \
        | tee "$OUT/bench-torch.log"
fi
exit "$status"
