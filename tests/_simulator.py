"""A thread-block barrier for Numba's CUDA simulator that waits instead of polling.

The simulator runs each CUDA thread of a block as a Python thread. Its block manager finds out
that every thread has reached ``cuda.syncthreads()`` by polling: its main thread loops over the
block's threads (``is_alive()`` and a flag each) until all are blocked or finished, holding the
GIL for most of its turns while the threads that still have work wait for it (the test suite ran
the stock simulator with a 10 us thread switch interval to limit that: ``tests/test_cuda_paths.py
::test_every_path_with_mask_and_weights`` took 72 s; with this barrier and the interpreter's
default interval, 25 s).

:func:`install` replaces the poll with a condition variable: a thread that reaches the barrier or
finishes counts itself, and wakes the main thread only when it completes the count (every live
thread blocked: release them all; one failed: abort the block and raise its exception, as the
simulator does). The kernels run exactly as before, thread by thread; only the waiting changes.
It reaches into three members of ``numba.cuda.simulator.kernel`` (``BlockManager.run``,
``BlockThread.run`` and ``BlockThread.syncthreads``) and installs nothing if their shape differs
from the one it was written for (numba-cuda 0.30): the stock simulator then runs the tests,
slower; ``tests/test_cuda_sim.py`` says which one ran.
"""

import inspect
import threading

import numpy as np

_EXPECTED_THREAD_ARGUMENTS = ["self", "f", "manager", "blockIdx", "threadIdx", "debug"]


def _fits(kernel):
    """Whether the simulator's block classes have the members this barrier replaces."""
    thread = getattr(kernel, "BlockThread", None)
    manager = getattr(kernel, "BlockManager", None)
    if thread is None or manager is None:
        return False
    if list(inspect.signature(thread.__init__).parameters) != _EXPECTED_THREAD_ARGUMENTS:
        return False
    return all(
        callable(getattr(cls, name, None)) for cls, name in [(manager, "run"), (thread, "syncthreads")]
    )


def install():
    """Make the simulator's blocks wait on a condition variable; True if installed."""
    from numba.cuda.simulator import kernel

    if getattr(kernel.BlockManager, "waits_instead_of_polling", False):
        return True
    if not _fits(kernel):
        return False
    thread_run = kernel.BlockThread.run  # runs the kernel, keeping its exception in .exception

    def arrive(manager, blocked=0, finished=0, failed=False):
        """Count a thread in at the barrier or out of the block; wake the block's manager when
        every live thread has arrived or one failed."""
        with manager.barrier:
            manager.blocked += blocked
            manager.live -= finished
            manager.failed |= failed
            if manager.failed or manager.blocked == manager.live:
                manager.barrier.notify()

    def syncthreads(self):
        if self.abort:
            raise RuntimeError("abort flag set on syncthreads call")
        self.syncthreads_blocked = True
        arrive(self._manager, blocked=1)
        self.syncthreads_event.wait()
        self.syncthreads_event.clear()
        if self.abort:
            raise RuntimeError("abort flag set on syncthreads clear")

    def run_thread(self):
        try:
            thread_run(self)
        finally:
            arrive(self._manager, finished=1, failed=self.exception is not None)

    def run_block(self, grid_point, *args):
        def target():
            self._f(*args)

        threads = [
            kernel.BlockThread(target, self, grid_point, point, self._debug)
            for point in np.ndindex(*self._block_dim)
        ]
        self.barrier = threading.Condition()
        self.blocked, self.live, self.failed = 0, len(threads), False
        for thread in threads:
            thread.start()
        with self.barrier:
            while True:
                self.barrier.wait_for(lambda: self.failed or self.blocked == self.live)
                if self.failed:
                    failed = next(thread for thread in threads if thread.exception)
                    for thread in threads:  # as the simulator does: abort the others
                        thread.abort = True
                        thread.syncthreads_blocked = False
                        thread.syncthreads_event.set()
                    raise failed.exception[0].with_traceback(failed.exception[1])
                if self.live == 0:
                    return
                self.blocked = 0
                for thread in threads:
                    if thread.syncthreads_blocked:
                        thread.syncthreads_blocked = False
                        thread.syncthreads_event.set()

    kernel.BlockThread.syncthreads = syncthreads
    kernel.BlockThread.run = run_thread
    kernel.BlockManager.run = run_block
    kernel.BlockManager.waits_instead_of_polling = True
    return True
