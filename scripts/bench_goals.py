"""The goal-by-goal table of issue 3's speed goals from a results file.

Usage::

    python -m pytest benchmarks/bench_goals.py --benchmark-enable --benchmark-json=goals.json
    python scripts/bench_goals.py goals.json

Reads ``lsm bench --goals`` or ``pytest --benchmark-json`` output and prints one markdown row
per goal and case: lsm's figure, the peer's, their ratio, the target and whether it is met.
See ``lsm/bench/goals.py``.
"""

import sys

from lsm.bench.goals import main

if __name__ == "__main__":
    sys.exit(main())
