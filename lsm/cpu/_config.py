"""The CPU backend's tunables (the CUDA backend's are in ``lsm/cuda/_config.py``)."""

# Below this many elements a call runs on the calling thread: waking the pool costs more than it
# saves. scripts/measure_overhead.py puts the crossover between 1,024 elements (rows of 32) and
# 4,096 (rows of 1,024) on 2 cores; see benchmarks/RESULTS.md.
PARALLEL_MIN_ELEMENTS = 4096
# Softmax keeps its exponentials in per-worker scratch rows (rather than computing them twice)
# only while the rows together stay this small.
EXPS_BUFFER_BYTES = 32 * 2**20
