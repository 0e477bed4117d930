"""Throughput tracking for lsm: the engine of ``lsm bench`` and of the suite under ``benchmarks/``.

- :mod:`~lsm.bench.cases`: the comparison table (ops, dtypes, shapes, axes) and the result check;
- :mod:`~lsm.bench.backends`: CPU and CUDA backends, their implementations and memory copy;
- :mod:`~lsm.bench.runner`: a case as a timed call, and its copy-normalised figures;
- :mod:`~lsm.bench.timing`: the timing loop and pytest-benchmark's statistics;
- :mod:`~lsm.bench.results`: results in pytest-benchmark's JSON layout, machine and commit info;
- :mod:`~lsm.bench.report`: markdown table and PNG plot; :mod:`~lsm.bench.compare`: the regression gate;
- :mod:`~lsm.bench.sweep`: the ``lsm bench`` command;
- :mod:`~lsm.bench.goals`: issue 3's speed goals as cases and a goal-by-goal table;
  :mod:`~lsm.bench.startup`: import and first call in a fresh process (goal 8).

None of it is imported by ``import lsm``. The progress bar (tqdm) and the plot (matplotlib) come
with ``pip install 'lsm[bench]'``.
"""
