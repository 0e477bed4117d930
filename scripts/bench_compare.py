"""Regression gate for lsm's benchmarks: compare copy-normalised throughput case by case.

Usage::

    python scripts/bench_compare.py BASELINE.json CURRENT.json [--threshold 10%] [--impl lsm]

Both files come from ``lsm bench`` or ``pytest benchmarks --benchmark-enable --benchmark-json=...``.
Exits 1 naming each case whose ``fraction_of_copy`` fell by more than the threshold, 0 otherwise;
cases present on one side only are listed and ignored. See ``lsm/bench/compare.py``.
"""

import sys

from lsm.bench.compare import main

if __name__ == "__main__":
    sys.exit(main())
