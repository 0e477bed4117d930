"""Tunables of the CUDA backend, in one place.

The launch code reads them at every call, so tests can shrink them (``monkeypatch.setattr``) to
reach the multi-block, block-per-row and split-row paths with tiny inputs in the simulator.
The warp-per-row kernels are compiled per bucket of row elements per lane (1, 2, 4, ... 32, the
smallest that holds the row: ``_launch.warp_slots``), so ``WARP_ROW_MAX`` (at most 1024) only
bounds the rows that take them; ``WARPS_PER_BLOCK`` is compiled into them as their launch bounds
(once per value).
"""

# Rows up to this length: one warp per row, a lane's elements in registers (up to 8 of them) or
# in dynamic shared memory (16 or 32: _forward.row_in_shared).
WARP_ROW_MAX = 1024
# ... for float64 rows: a block of 4 warps would keep 32 KiB of a row of 1024 (64 KiB with
# logsumexp's weights), beyond the 48 KiB a block may take without opting in (see below).
WARP_ROW_MAX_FLOAT64 = 512
# Rows longer than a warp's share but up to this length (float32 accumulation: float16 and float32
# rows; float64 rows: the second) take one block per row with the row kept in dynamic shared
# memory, stored in its own dtype: x is read once. The bound is 32 KiB of float32 (16 KiB of
# float16) or of float64 per block, well within the 48 KiB a block may use without opting in
# to a larger carve-out (cudaFuncSetAttribute, which numba-cuda's launch does not do), with room
# for the reductions' static scratch; four such blocks of BLOCK_THREADS = 512 (an SM's 2048
# threads) take 4 x 33 KiB with the 1 KiB per block the driver reserves, within an H100's
# 228 KiB and an A100's 164 KiB, so shared memory never limits occupancy below the threads'.
SHARED_ROW_MAX = 8192
SHARED_ROW_MAX_FLOAT64 = 4096
# rows (warps) per block in the warp-per-row kernels: 4 warps (128 threads) in 8 blocks per SM
# make the 32 resident warps (50%) their launch bounds ask ptxas to keep registers for
WARPS_PER_BLOCK = 4
BLOCK_THREADS = 512  # threads per block in the block-per-row, split-row and copy kernels
# threads per block in the kernels with one thread per item: nll_loss, a loss's checks, the split
# rows' merge
ITEM_THREADS = 256
# The column kernels (softmax, log_softmax, logsumexp, their gradients and cross-entropy over a
# non-last axis) split each column's reduced axis among up to this many warps of a block (tiles
# of 32 columns, so blocks of up to 256 threads; _tiles.COLUMN_MAX_PARTS bounds it), keeping at
# least COLUMN_PART_MIN elements per thread: (64, 1000, 49) over axis 1 runs 25,088 threads
# instead of 3,136.
COLUMN_PARTS = 8
COLUMN_PART_MIN = 16
SPLIT_MIN_LENGTH = 65536  # rows at least this long ...
SPLIT_MAX_ROWS = 256  # ... in a call with fewer rows than this are split across blocks
SPLIT_CHUNK = 16384  # row elements per block in the split-row path
MAX_BLOCKS = 65536  # grid size cap; every kernel loops (grid-stride) over the rest
# Grids have at least this many blocks, those beyond the work finding nothing to do: numba-cuda
# warns about every launch of fewer than 128 blocks ("low occupancy"), which small inputs would
# otherwise trigger on each call. Idle blocks cost the GPU next to nothing.
MIN_BLOCKS = 128
