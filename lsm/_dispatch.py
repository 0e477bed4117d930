"""Which pipeline runs a public call: a Dask graph, or the in-memory pipeline on its backend.

Dask collections are recognised by their module name, so Dask is imported only when a call
receives one; the Dask backend (``lsm.dask``) then builds a graph whose blocks run the in-memory
pipeline. Every other call runs :class:`lsm._pipeline.Pipeline` on the backend that owns its
arrays (``lsm._devices``). Both answer the same five methods with the same arguments:
``softmax``, ``logsumexp``, ``softmax_backward``, ``cross_entropy`` and ``nll_loss``.
"""

from . import _devices
from ._pipeline import Pipeline


def pipeline_for(func, **operands):
    """The pipeline of a call to ``func`` on these array arguments (by name; None skipped)."""
    for operand in operands.values():
        if _devices.package_of(type(operand)) == "dask":
            from .dask import BACKEND

            return BACKEND
    return Pipeline(_devices.backend_for(func, operands))
