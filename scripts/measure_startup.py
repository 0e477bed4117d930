"""Startup cost of lsm (issue 3, goal 8): import + first call in a fresh process, warm and cold.

Usage::

    python scripts/measure_startup.py                      # every op, 3 warm processes each
    python scripts/measure_startup.py --op log_softmax --no-cold --json startup.json

For each op, on a small float32 array: the median time of ``import lsm`` plus the first call in
fresh processes with the kernel cache warm (the goal: <= 1 s), and the same with an empty
``NUMBA_CACHE_DIR`` (every kernel the call needs compiled). See ``lsm/bench/startup.py``.
"""

import sys

from lsm.bench.startup import main

if __name__ == "__main__":
    sys.exit(main())
