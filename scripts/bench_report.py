"""Markdown table and PNG plot of an lsm benchmark run.

Usage::

    python scripts/bench_report.py RESULTS.json [--out DIR]

Reads ``lsm bench`` or ``pytest --benchmark-json`` output and writes ``<name>.md`` and
``<name>.png`` (throughput as a fraction of a same-run copy against the input shape, one line per
implementation, one panel per op and dtype). Needs matplotlib (``pip install 'lsm[bench]'``).
See ``lsm/bench/report.py``.
"""

import sys

from lsm.bench.report import main

if __name__ == "__main__":
    sys.exit(main())
