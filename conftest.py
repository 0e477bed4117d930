"""Collection rules for the whole test run (``tests``, the doctests of ``lsm``, ``benchmarks``)."""

import importlib.util

# lsm.torch imports torch, which is optional: without it, its doctests are not collected (the
# module's tests in tests/test_torch_adapter.py skip themselves).
collect_ignore = [] if importlib.util.find_spec("torch") else ["lsm/torch.py"]
