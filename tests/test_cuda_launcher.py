"""Every launch of the GPU backend passes numba-cuda's real argument marshalling (no GPU needed).

The CUDA simulator calls kernels as Python functions and ``compile_ptx`` never launches, so
neither sees numba-cuda's launcher, which marshals only arrays, numbers, booleans, records,
tuples, enum members and pointers (``_Kernel._prepare_args``) and raises ``NotImplementedError``
for anything else, ``None`` included. Here the driver boundary (``lsm.cuda._numba``: device
memory, streams, availability, the launch itself) is replaced by stand-ins over host memory, the
whole GPU backend runs its Python side (planning, kernel choice, grids, conversions, copies,
checks) for calls that take every kernel path with and without each optional operand, and each
launch's arguments go through the real ``_Kernel._prepare_args`` with the kernel's own launcher
extensions. The kernels themselves do not run, so results are not checked (the simulator run
does that).
"""

import contextlib
import ctypes
import inspect
import os
import sys
import types as pytypes
import warnings

import ml_dtypes
import numpy as np
import pytest

pytest.importorskip("numba_cuda", reason="numba-cuda is not installed (pip install -e '.[test]')")
if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":  # the simulator replaces numba-cuda's launcher
    pytest.skip("the real launcher is tested in the normal run", allow_module_level=True)

import numba
from numba import types
from numba.cuda import types as cuda_types
from numba.cuda.cudadrv import devices
from numba.cuda.cudadrv.devicearray import DeviceNDArray
from numba.cuda.dispatcher import _Kernel
from numba.cuda.typing.typeof import Purpose, typeof

import lsm
from lsm.cuda import _backward, _config, _copy, _forward, _losses, _numba
from lsm.cuda._backend import CudaBackend
from lsm.cuda._reduce import WARP


class DeviceStandIn:
    """Host memory posing as a device array (``__cuda_array_interface__``, and ``dtype`` as torch
    and JAX arrays have it, which says what a ``<V2`` type string is); ``stream`` is the handle
    its producer names (None: none)."""

    def __init__(self, array, stream=None):
        self.array = array
        self.__cuda_array_interface__ = {
            "shape": array.shape,
            "strides": array.strides,
            "typestr": array.dtype.str,
            "data": (array.__array_interface__["data"][0], False),
            "version": 3,
            "stream": stream,
        }

    @property
    def shape(self):
        return self.array.shape

    @property
    def dtype(self):
        return self.array.dtype


class CopiedArray:
    """What ``as_device`` gives a copy to the host: a description (there is no device memory)."""

    def __init__(self, shape, strides, dtype):
        self.shape, self.strides, self.dtype = tuple(shape), tuple(strides), np.dtype(dtype)


def _marshal(kernel, ty, value):
    """The kernel arguments numba-cuda's launcher makes of ``value`` typed ``ty`` for ``kernel``
    (``_Kernel._prepare_args`` with the kernel's launcher extensions)."""
    marshaller = pytypes.SimpleNamespace(extensions=kernel.targetoptions.get("extensions") or [])
    marshaller._prepare_args = lambda *rest: _Kernel._prepare_args(marshaller, *rest)
    kernelargs = []
    marshaller._prepare_args(ty, value, 0, [], kernelargs)
    return kernelargs


def _kernel_name(kernel):
    return kernel.py_func.__name__


SHARED_WITHOUT_OPT_IN = 48 * 1024


class Launches:
    """The launches of the calls made under the stand-in driver, checked as they happen: which
    kernels ran, on which device and stream, and which streams were made to wait for others."""

    def __init__(self):
        self.names = set()
        self.devices = [None]  # the stack of devices made current (None: Numba's current one)
        self.places = set()  # (device, stream) of each launch
        self.shared = {}  # kernel name -> the bytes of dynamic shared memory of its launches
        self.waits = []  # (producer, consumer)
        self.streams = {}

    def stream(self, handle):
        return self.streams.setdefault(handle, f"stream {handle}")

    @contextlib.contextmanager
    def on_device(self, device):
        self.devices.append(device if device is not None else self.devices[-1])
        try:
            yield
        finally:
            self.devices.pop()

    def __call__(self, kernel, blocks, threads, stream, *args, shared=0):
        # dynamic shared memory: a launch option (not marshalled), an int within what a block
        # may have without opting in to a larger carve-out (48 KiB, the static scratch included)
        assert type(shared) is int and 0 <= shared <= SHARED_WITHOUT_OPT_IN - 256, shared
        with warnings.catch_warnings():  # numba-cuda's own launch configuration, as _numba.launch
            warnings.filterwarnings("ignore", "Grid size")  # makes it (the warning of small grids)
            assert kernel[blocks, threads, 0, shared].sharedmem == shared
        self.shared.setdefault(_kernel_name(kernel), set()).add(shared)
        parameters = inspect.signature(kernel.py_func).parameters
        assert len(args) == len(parameters), f"{_kernel_name(kernel)}: {len(args)} arguments"
        for name, value in zip(parameters, args, strict=True):
            ty = typeof(value, Purpose.argument)  # as the dispatcher types it
            # arrays are lsm's kernel arrays, marshalled without touching memory
            assert type(value) is _numba.KernelArray or not isinstance(ty, types.Array), name
            try:
                _marshal(kernel, ty, value)
            except NotImplementedError as error:
                raise AssertionError(
                    f"numba-cuda's launcher rejects argument {name!r} = {value!r} of "
                    f"{_kernel_name(kernel)}: {error!r}"
                ) from error
        assert 0 < blocks and 0 < threads <= 1024
        bounds = kernel.targetoptions.get("launch_bounds")  # a larger block fails to launch
        assert bounds is None or threads <= bounds[0], (_kernel_name(kernel), threads, bounds)
        self.names.add(_kernel_name(kernel))
        self.places.add((self.devices[-1], stream))


_NO_ERRORS = np.array([2.0**53, 0, 0])


def _verdict_without_errors(array, stream):
    """What the device checks of a loss copy back when nothing is wrong (no kernel runs here):
    no bad target, no bad weight, a total of 0.0."""
    assert array.shape == (3,) and array.dtype == np.float64
    return _NO_ERRORS.copy()


@pytest.fixture
def launches(monkeypatch):
    """Stand-ins for everything of ``lsm.cuda._numba`` that needs a driver; the launches seen.
    (``is_numba_device_array`` needs none and stays real: ``cuda.is_cuda_array`` in its place
    took every stand-in for a Numba array and launched on Numba's default stream instead of the
    stream the interface names, which ``test_operands_from_other_streams_are_waited_for``
    catches.)"""
    seen = Launches()
    monkeypatch.setattr(_numba, "is_available", lambda: True)
    monkeypatch.setattr(_numba, "stream", seen.stream)
    monkeypatch.setattr(_numba, "on_device", seen.on_device)
    monkeypatch.setattr(_numba, "wait", lambda producer, consumer: seen.waits.append((producer, consumer)))
    monkeypatch.setattr(
        _numba, "device_array", lambda shape, dtype, stream: DeviceStandIn(np.zeros(shape, dtype))
    )
    monkeypatch.setattr(_numba, "to_host", _verdict_without_errors)
    monkeypatch.setattr(
        _numba, "as_device", lambda owner, pointer, shape, strides, dtype: CopiedArray(shape, strides, dtype)
    )
    monkeypatch.setattr(_numba, "launch", seen)
    return seen


def _device(array):
    return DeviceStandIn(np.ascontiguousarray(array))


RNG = np.random.default_rng(0)
BFLOAT16 = np.dtype(ml_dtypes.bfloat16)
FLOATS = ["float16", "bfloat16", "float32", "float64"]
SHAPES = {  # canonical shapes that take each kernel family with the default tunables
    "warp": ((4, 50), -1),
    "shared": ((3, 2000), -1),
    "block": ((3, 9000), -1),
    "split": ((2, 70_000), -1),
    "columns": ((6, 5, 7), 1),
}


def _forward_calls(x, axis, where, weights):
    yield lambda: lsm.log_softmax(x, axis)
    yield lambda: lsm.softmax(x, axis, where=where)
    yield lambda: lsm.logsumexp(x, axis)
    yield lambda: lsm.logsumexp(x, axis, b=weights, where=where, return_sign=True)


def _floats(shape, dtype):
    return RNG.standard_normal(shape).astype(BFLOAT16 if dtype == "bfloat16" else dtype)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("path", list(SHAPES))
def test_forward_launches(launches, path, dtype):
    shape, axis = SHAPES[path]
    x = _device(_floats(shape, dtype))
    where, weights = _device(RNG.random(shape) < 0.8), _device(RNG.random(shape))
    for call in _forward_calls(x, axis, where, weights):
        call()
    kinds = {
        "columns": "columns",
        "warp": "rows_warp",
        "shared": "rows_shared",
        "block": "rows_block",
        "split": "rows_partials",
    }
    assert any(kinds[path] in name for name in launches.names), sorted(launches.names)
    # the shared-memory row kernels, and only they, get one row's bytes in x's dtype (bfloat16
    # kept as float32)
    itemsize = 4 if dtype == "bfloat16" else np.dtype(dtype).itemsize
    for name, sizes in launches.shared.items():
        if "shared" not in name:
            assert sizes == {0}, name
        elif path == "shared":
            assert sizes == {shape[-1] * itemsize}, name


def test_conversions_and_scattered_outputs(launches):
    x = _device(RNG.integers(0, 9, (4, 6)))  # integers: converted on the device
    out = DeviceStandIn(np.zeros((6, 4)).T)  # strides the canonical view cannot take
    lsm.softmax(x, out=out)
    lsm.logsumexp(_device(np.zeros((2, 3, 4))), axis=2, out=DeviceStandIn(np.zeros((3, 2)).T))
    assert launches.names >= {"copy3"}


@pytest.mark.parametrize("axis", [-1, 1], ids=["rows", "columns"])
@pytest.mark.parametrize("masked", [False, True], ids=["no-mask", "mask"])
def test_backward_launches(launches, axis, masked):
    # rows of 5 (a warp each, in its stretch of shared memory) or columns of 6; along the last
    # axis also longer rows (a block each)
    for shape in [(4, 6, 5)] + [(2, 1, 3000)] * (axis == -1):
        grad, y = _device(RNG.standard_normal(shape)), _device(RNG.standard_normal(shape))
        where = _device(RNG.random(shape) < 0.8) if masked else None
        lsm.log_softmax_backward(grad, y, axis, where=where)
        lsm.softmax_backward(grad, y, axis, out=grad, where=where)
    if axis == -1:  # float64 rows: g of 5 (log_softmax) and g, y of 5 (softmax) for each warp of
        # a block, then g of 3000
        warps = _config.WARPS_PER_BLOCK
        assert launches.shared["backward_rows_warp"] == {warps * 5 * 8, warps * 2 * 5 * 8}
        assert launches.shared["backward_rows_shared"] == {3000 * 8}
        assert launches.shared["backward_rows"] == {0}  # g, y of 3000: 6000 > SHARED_ROW_MAX_FLOAT64


@pytest.mark.parametrize("axis", [-1, 1], ids=["rows", "columns"])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("dtype", FLOATS)
def test_loss_launches(launches, axis, weighted, dtype):
    shape = (4, 6, 5)
    logits = _device(_floats(shape, dtype))
    kept = (4, 5) if axis == 1 else (4, 6)
    target = _device(RNG.integers(0, shape[axis], kept))
    probs = _device(np.abs(_floats(shape, dtype)))
    weight = _device(RNG.random(shape[axis])) if weighted else None
    lsm.cross_entropy(logits, target, axis, weight=weight)
    lsm.cross_entropy(
        logits, target, axis, weight=weight, reduction="none", return_grad=True, grad_out=logits
    )
    lsm.cross_entropy(logits, probs, axis, weight=weight, label_smoothing=0.1, return_grad=True)
    lsm.nll_loss(logits, target, axis, weight=weight, reduction="sum")


def test_cross_entropy_rows_take_a_block_a_warp_or_a_segment(launches):
    """Rows of more classes than ``WARP_ROW_MAX`` go to ``cross_entropy_rows`` (a block per
    row), rows of 17 up to it to ``cross_entropy_rows_warp`` (a warp per row), shorter ones to
    ``cross_entropy_rows_lanes<k>`` (``k`` lanes a row, the fewest of ``ROW_LANES`` that hold it)."""
    cases = [
        (_config.WARP_ROW_MAX + 1, "cross_entropy_rows"),
        (17, "cross_entropy_rows_warp"),
        (6, "cross_entropy_rows_lanes8"),
    ]
    cases += [(lanes, f"cross_entropy_rows_lanes{lanes}") for lanes in _forward.ROW_LANES]
    for n_classes, kernel in cases:
        logits = _device(_floats((3, n_classes), "float32"))
        target = _device(RNG.integers(0, n_classes, 3))
        lsm.cross_entropy(logits, target, return_grad=True)
        assert kernel in launches.names


def _all_kernels():
    acc = numba.float32
    kernels = [*_forward.build_rows(acc).values(), *_forward.build_columns(acc).values()]
    for slots in _forward.WARP_SLOTS:
        kernels += _forward.build_warp_rows(acc, slots, _config.WARPS_PER_BLOCK).values()
    for lanes in _forward.ROW_LANES:
        kernels += _forward.build_warp_rows(acc, 1, _config.WARPS_PER_BLOCK, lanes).values()
    kernels += [*_backward.build(acc).values(), *_losses.build(acc).values()]
    kernels += [_losses.check_classes, _losses.reduce_loss]
    kernels += [_copy.copy3]
    return {_kernel_name(kernel) for kernel in kernels if hasattr(kernel, "targetoptions")}


def test_every_kernel_is_launched_by_the_tests_above(launches):
    """The calls of this file reach every kernel of the backend (run together in one session)."""
    for path in SHAPES:
        test_forward_launches(launches, path, "float32")
    x = RNG.standard_normal((2, 1024)).astype("float32")
    for slots in _forward.WARP_SLOTS:  # the warp-per-row kernels of every bucket
        for call in _forward_calls(_device(x[:, : slots * WARP]), -1, None, None):
            call()
    for lanes in _forward.ROW_LANES:  # and the rows sharing a warp, of every width
        for call in _forward_calls(_device(x[:, :lanes]), -1, None, None):
            call()
    test_conversions_and_scattered_outputs(launches)
    for axis in (-1, 1):
        test_backward_launches(launches, axis, True)
        test_loss_launches(launches, axis, True, "float32")
    test_cross_entropy_rows_take_a_block_a_warp_or_a_segment(launches)
    assert launches.names == _all_kernels(), sorted(_all_kernels() - launches.names)


def test_an_absent_operand_is_marshalled_as_a_null_pointer():
    marshaller = pytypes.SimpleNamespace(extensions=list(_numba.LAUNCH_EXTENSIONS))
    kernelargs = []
    _Kernel._prepare_args(marshaller, types.none, None, 0, [], kernelargs)
    assert kernelargs == [0]
    bare = pytypes.SimpleNamespace(extensions=[])
    with pytest.raises(NotImplementedError):  # what the launcher does without the extension
        _Kernel._prepare_args(bare, types.none, None, 0, [], [])


def test_a_tensor_that_hides_its_memory_gets_lsms_error(launches):
    """torch raises RuntimeError from ``__cuda_array_interface__`` for a tensor that requires grad."""

    class RequiresGrad:
        @property
        def __cuda_array_interface__(self):
            raise RuntimeError("Can't get __cuda_array_interface__ on Variable that requires grad.")

    with pytest.raises(TypeError, match=r"softmax: argument 'x' .* does not expose its memory.*detach"):
        lsm.softmax(RequiresGrad())


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_a_loss_call_waits_for_the_device_once(launches, monkeypatch, weighted):
    """The target and weight checks copy one verdict back (one synchronisation), and every
    buffer comes from the caller's allocator (here the Numba kind's ``device_array``)."""
    copies, allocations = [], []
    monkeypatch.setattr(
        _numba,
        "to_host",
        lambda array, stream: copies.append(array) or _verdict_without_errors(array, stream),
    )
    allocate = _numba.device_array
    monkeypatch.setattr(_numba, "device_array", lambda *args: allocations.append(args) or allocate(*args))
    logits, target = _device(RNG.standard_normal((8, 5))), _device(RNG.integers(0, 5, 8))
    weight = _device(RNG.random(5)) if weighted else None
    lsm.cross_entropy(logits, target, weight=weight, return_grad=True)
    lsm.nll_loss(logits, target, weight=weight)
    assert len(copies) == 2  # one per call
    assert allocations  # the verdict, the per-item weights and losses, the results


class FakeCupy:
    """A stand-in for the parts of CuPy lsm uses: devices, their current streams, allocation."""

    def __init__(self):
        self.device = 0
        self.allocated_on = []
        self.cuda = pytypes.SimpleNamespace(Device=self.Device, get_current_stream=self.current_stream)

    @contextlib.contextmanager
    def Device(self, index):
        previous, self.device = self.device, index
        try:
            yield
        finally:
            self.device = previous

    def current_stream(self):
        return pytypes.SimpleNamespace(ptr=1000 + self.device)  # each device has its own

    def empty(self, shape, dtype):
        self.allocated_on.append(self.device)
        return cupy_array(np.zeros(shape, dtype), self.device, 1000 + self.device)


def cupy_array(array, device, stream):
    """A device array that lsm takes for CuPy's (its type's module is ``cupy``) on ``device``."""
    kind = type("ndarray", (DeviceStandIn,), {"__module__": "cupy._core.core"})
    made = kind(array, stream)
    made.device = pytypes.SimpleNamespace(id=device)
    made.data = pytypes.SimpleNamespace(ptr=made.__cuda_array_interface__["data"][0])  # its memory
    return made


def test_an_array_on_another_device_is_computed_there(launches, monkeypatch):
    """A CuPy array on device 1 while device 0 is current: allocations, launches and the
    stream are device 1's."""
    fake = FakeCupy()
    monkeypatch.setitem(sys.modules, "cupy", fake)
    x = cupy_array(RNG.standard_normal((4, 50)), device=1, stream=1001)
    result = lsm.log_softmax(x)
    lsm.cross_entropy(x, cupy_array(RNG.integers(0, 50, 4), device=1, stream=1001), return_grad=True)
    assert type(result).__module__.startswith("cupy") and result.device.id == 1
    assert set(fake.allocated_on) == {1}
    assert launches.places == {(1, "stream 1001")}
    assert launches.waits == []  # every operand comes from the call's own stream


def test_operands_from_other_streams_are_waited_for(launches):
    """``__cuda_array_interface__`` v3: the consumer orders its work after each operand's
    producer stream, once per stream, and never waits for its own stream."""
    shape = (4, 50)
    x = DeviceStandIn(RNG.standard_normal(shape), stream=7)
    where = DeviceStandIn(RNG.random(shape) < 0.5, stream=9)
    b = DeviceStandIn(RNG.random(shape), stream=9)
    out = DeviceStandIn(np.zeros(4), stream=11)
    lsm.logsumexp(x, axis=-1, where=where, b=b, out=out)
    assert launches.places == {(None, "stream 7")}
    assert launches.waits == [("stream 9", "stream 7"), ("stream 11", "stream 7")]


class CountedReads(DeviceStandIn):
    """A stand-in whose interface is a property that counts its reads (CuPy's builds a new dict
    on every read, so each costs)."""

    def __init__(self, array, stream=None):
        self.array = array
        self._interface = DeviceStandIn(array, stream).__cuda_array_interface__
        self.reads = 0

    @property
    def __cuda_array_interface__(self):
        self.reads += 1
        return self._interface


@pytest.mark.parametrize("in_place", [False, True], ids=["out", "in-place"])
def test_each_operand_interface_is_read_once_a_call(launches, in_place):
    """Issue 19, item 5: a call reads each operand's interface once (the backend remembers what
    it read for the rest of the call), however many steps look at the operand."""
    x = CountedReads(RNG.standard_normal((4, 50)), stream=7)
    where = CountedReads(RNG.random((4, 50)) < 0.5, stream=9)
    out = x if in_place else CountedReads(np.zeros((4, 50)), stream=7)
    lsm.softmax(x, where=where, out=out)
    assert (x.reads, where.reads, out.reads) == (1, 1, 1)
    assert launches.places == {(None, "stream 7")}
    assert launches.waits == [("stream 9", "stream 7")]


@pytest.mark.parametrize("dtype", [np.float32, np.int64, ml_dtypes.bfloat16], ids=str)
def test_torch_allocations_give_their_pointer_without_the_interface(dtype):
    """A torch result's pointer comes from ``data_ptr()``, not from torch's Python
    ``__cuda_array_interface__`` property (about ten times the cost, read once per allocation
    before). Checked with the torch kind on the host, where the same allocator call and
    ``data_ptr()`` run: the pointer is the tensor's memory, and the description is C-contiguous."""
    torch = pytest.importorskip("torch")
    from lsm.cuda._kinds import _TorchKind

    kind = _TorchKind(torch.empty(1))  # a CPU tensor: allocations on the host, no stream asked
    dtype = np.dtype(dtype)
    array, pointer = kind.empty((3, 5), dtype)
    assert array.dtype == getattr(torch, str(dtype)) and tuple(array.shape) == (3, 5)
    assert pointer == array.untyped_storage().data_ptr() != 0
    backend = CudaBackend.__new__(CudaBackend)  # only its allocation step, with this kind
    backend.kind = kind
    _, described = backend.empty((3, 5), dtype)
    assert described.pointer != pointer  # a second allocation
    assert described.strides == (5 * dtype.itemsize, dtype.itemsize) and described.dtype == dtype


class _DeviceMemoryStandIn:
    """The device memory of a Numba device array made without a driver (never read here)."""

    def __init__(self, pointer=None):
        self.device_ctypes_pointer = None if pointer is None else ctypes.c_void_p(pointer)

    def view(self, start, stop=None):
        return self


def test_bfloat16_operands_reach_the_kernels_as_bfloat16(monkeypatch):
    """``as_device`` (the real one, over a stand-in for the driver's array maker) types a bfloat16
    view as numba-cuda's bfloat16, whose loads and stores the kernels convert (``_elements``);
    the interface's ``<V2`` alone would make it two opaque bytes, which no kernel takes."""

    def from_interface(description, owner, sync):
        shape, strides, dtype = description["shape"], description["strides"], np.dtype(description["typestr"])
        return DeviceNDArray(shape, strides, dtype, gpu_data=_DeviceMemoryStandIn())

    monkeypatch.setattr(_numba.cuda, "from_cuda_array_interface", from_interface)
    array = _numba.as_device(None, 0, (4, 3), (6, 2), BFLOAT16)
    assert array._numba_type_ == types.Array(cuda_types.bfloat16, 2, "C")
    assert _numba.as_device(None, 0, (4, 3), (12, 4), np.dtype(np.float32)).dtype == np.float32


def test_two_opaque_bytes_are_bfloat16_only_where_the_array_says_so(launches):
    x = DeviceStandIn(np.zeros((2, 3), dtype="V2"))  # a record of two bytes: dtype says void16
    with pytest.raises(TypeError, match=r"'<V2'\) and its dtype does not say bfloat16"):
        lsm.softmax(x)
    lsm.softmax(DeviceStandIn(np.zeros((2, 3), dtype=BFLOAT16)))
    assert "softmax_rows_lanes4" in launches.names


def _layouts():
    """``(shape, strides, dtype)`` cases: contiguous both ways, transposed, strided, reversed,
    broadcast (zero strides, also along axes of length 1), empty, every float and bool dtype."""
    rng = np.random.default_rng(7)
    for dtype in [*FLOATS, "bool"]:
        dtype = BFLOAT16 if dtype == "bfloat16" else np.dtype(dtype)
        size = dtype.itemsize
        yield (5,), (size,), dtype
        yield (4, 3), (3 * size, size), dtype
        yield (4, 3), (size, 4 * size), dtype  # F
        yield (4, 1, 3), (3 * size, 0, size), dtype  # a zero stride on a length-1 axis: 'A'
        yield (4, 3), (0, size), dtype
        yield (1, 3), (0, size), dtype
        yield (0, 3), (3 * size, size), dtype
        yield (3, 0, 2), (0, 8 * size, size), dtype
        for _ in range(12):
            shape = tuple(int(n) for n in rng.integers(1, 5, rng.integers(1, 4)))
            strides = tuple(int(s) * size for s in rng.integers(-6, 7, len(shape)))
            yield shape, strides, dtype


def test_kernel_arrays_are_typed_and_marshalled_as_numbas_device_arrays(monkeypatch):
    """What lets a launch skip making Numba device arrays (issue 19, item 5): for every layout,
    lsm's ``KernelArray`` has the type the dispatcher gives Numba's own device array over the
    same memory (so the same compiled kernel runs), and numba-cuda's launcher, with lsm's
    extensions, makes the same kernel arguments of it as of Numba's array."""
    monkeypatch.setattr(devices, "get_context", lambda: None)  # what an empty array asks for
    kernel = _forward.build_rows(numba.float32)["softmax_rows_block"]  # its launcher extensions
    pointer = 0x7F00_0000_1000
    for shape, strides, dtype in _layouts():
        numbas = DeviceNDArray(shape, strides, dtype, gpu_data=_DeviceMemoryStandIn(pointer))
        ours = _numba.KernelArray(None, pointer, shape, strides, dtype)
        expected = typeof(numbas, Purpose.argument)
        assert typeof(ours, Purpose.argument) == expected, (shape, strides, dtype)
        arguments = _marshal(kernel, expected, ours)
        assert arguments == _marshal(kernel, expected, numbas), (shape, strides, dtype)
        assert len(arguments) == 5 + 2 * len(shape)


def test_kernel_array_fields_follow_numbas_array_data_model():
    """The fields a ``KernelArray`` passes are the members of Numba's array data model in order,
    each one pointer-sized value (shape and strides one per axis)."""
    ty = types.Array(types.float32, 2, "A")
    model = numba.core.datamodel.default_manager.lookup(ty)
    assert model._fields == ("meminfo", "parent", "nitems", "itemsize", "data", "shape", "strides")
    ours = _numba.KernelArray(None, 4096, (4, 3), (24, 4), np.dtype(np.float32))
    assert ours.fields == (0, 0, 12, 4, 4096, 4, 3, 24, 4)
