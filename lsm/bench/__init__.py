"""Benchmarks of lsm against a memory copy and its peers: the engine of ``lsm bench``.

- :mod:`~lsm.bench.table`: the comparison table (ops, how lsm and each peer compute them, the
  float64 reference, the inputs) and its cases;
- :mod:`~lsm.bench.backends`: the CPU and CUDA backends, their implementations and memory copy;
- :mod:`~lsm.bench.engine`: the timing engine and the results in pytest-benchmark's JSON layout;
- :mod:`~lsm.bench.report`: markdown table and PNG plot; :mod:`~lsm.bench.compare`: the
  regression gate (``python -m lsm.bench.compare``); :mod:`~lsm.bench.cli`: ``lsm bench``.

None of it is imported by ``import lsm``, ``lsm demo`` or ``lsm info``. pytest-benchmark (the
statistics and layout), tqdm (the progress bar) and matplotlib (the plot) come with
``pip install 'lsm-kernels[bench]'``.
"""
