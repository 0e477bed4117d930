"""lsm.torch: lsm's kernels under torch's autograd.

Each function is checked against ``torch.autograd.gradcheck`` in float64 (finite differences of
the forward against the backward) and against ``torch.nn.functional`` in float32 and float64,
values and gradients, on several shapes and dims, on the adversarial inputs of
``tests/adversarial.py`` (NaN, infinities, huge and subnormal magnitudes, empty and 0-d arrays)
and, for cross_entropy, on -inf logits, huge ranges, ignored targets, zero weights and label
smoothing. The places where lsm and torch differ on purpose are tested as such.

Skipped without torch.
"""

import subprocess
import sys

import numpy as np
import pytest
from adversarial import adversarial_cases

import lsm

lt = pytest.importorskip("lsm.torch")  # imports torch: skips the module without it
import torch  # noqa: E402  (after the skip: torch is importable from here on)

F = torch.nn.functional
RNG = np.random.default_rng(16)
TORCH_DTYPES = {np.float32: torch.float32, np.float64: torch.float64}
# lsm and torch round differently (lsm's sums are compensated, torch's are not): the tolerance is
# a few units of the dtype on values of order 1, and absolute below that.
TOLERANCE = {torch.float32: {"rtol": 2e-5, "atol": 2e-6}, torch.float64: {"rtol": 1e-12, "atol": 1e-14}}


def _leaf(array, dtype=torch.float64):
    return torch.tensor(np.asarray(array), dtype=dtype, requires_grad=True)


def _close(got, want, dtype=None):
    assert got.dtype == want.dtype and got.device == want.device and got.shape == want.shape
    torch.testing.assert_close(got, want, equal_nan=True, **TOLERANCE[dtype or want.dtype])


def _value_and_grad(func, x, upstream):
    """``func(x)`` and the gradient of ``sum(upstream * func(x))`` with respect to ``x``."""
    leaf = x.detach().clone().requires_grad_(True)
    value = func(leaf)
    value.backward(upstream)
    return value.detach(), leaf.grad


def test_import_lsm_imports_neither_torch_nor_lsm_torch():
    code = "import sys, lsm; print(sorted(m for m in sys.modules if m in ('torch', 'lsm.torch')))"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300
    )
    assert done.stdout.strip() == "[]"


# --- gradcheck: float64 finite differences ---------------------------------------------------

DIMS = [-1, 0, 1, (0, 2), None]


@pytest.mark.parametrize("dim", DIMS, ids=str)
@pytest.mark.parametrize("name", ["log_softmax", "softmax"])
def test_gradcheck_softmax_family(name, dim):
    x = _leaf(RNG.standard_normal((3, 4, 5)))
    assert torch.autograd.gradcheck(lambda a: getattr(lt, name)(a, dim), (x,))


@pytest.mark.parametrize(
    ("dim", "keepdim"), [(None, False), (1, False), ((0, 2), False), (-1, True)], ids=str
)
def test_gradcheck_logsumexp(dim, keepdim):
    x = _leaf(RNG.standard_normal((3, 4, 5)))
    assert torch.autograd.gradcheck(lambda a: lt.logsumexp(a, dim, keepdim), (x,))


CROSS_ENTROPY_CASES = {
    "rows-mean": ((6, 7), "index", {}),
    "rows-everything-sum": (
        (6, 7),
        "index",
        {"weight": True, "ignore_index": 3, "label_smoothing": 0.2, "reduction": "sum"},
    ),
    "columns-none": ((3, 4, 5), "index", {"weight": True, "reduction": "none"}),
    "one-item": ((7,), "index", {"label_smoothing": 0.1}),
    "probabilities-mean": ((5, 6), "probs", {"weight": True, "label_smoothing": 0.3}),
    "probabilities-columns-none": ((3, 4, 5), "probs", {"reduction": "none"}),
}


def _problem(shape, kind, options, dtype=torch.float64, seed=0):
    """``(logits, target, kwargs)`` in torch's layout: classes on dim 1 (dim 0 of 1-d logits)."""
    rng = np.random.default_rng(seed)
    class_dim = 1 if len(shape) > 1 else 0
    n_classes = shape[class_dim]
    logits = torch.tensor(rng.standard_normal(shape) * 3, dtype=dtype)
    kwargs = dict(options)
    if kwargs.pop("weight", False):
        kwargs["weight"] = torch.tensor(rng.random(n_classes) + 0.1, dtype=dtype)
    if kind == "index":
        target = torch.tensor(rng.integers(0, n_classes, size=shape[:class_dim] + shape[class_dim + 1 :]))
        if "ignore_index" in kwargs and target.dim():
            target.view(-1)[::3] = kwargs["ignore_index"]
    else:
        target = torch.tensor(rng.random(shape), dtype=dtype).softmax(class_dim)
    return logits, target, kwargs


@pytest.mark.parametrize("case", CROSS_ENTROPY_CASES)
def test_gradcheck_cross_entropy(case):
    logits, target, kwargs = _problem(*CROSS_ENTROPY_CASES[case])
    assert torch.autograd.gradcheck(
        lambda a: lt.cross_entropy(a, target, **kwargs), (logits.requires_grad_(),)
    )


def test_gradcheck_cross_entropy_loss_module():
    logits, target, kwargs = _problem((6, 7), "index", {"weight": True, "ignore_index": 2})
    module = lt.CrossEntropyLoss(kwargs["weight"], ignore_index=2, label_smoothing=0.15)
    assert torch.autograd.gradcheck(lambda a: module(a, target), (logits.requires_grad_(),))


# --- against torch.nn.functional ----------------------------------------------------------------

SHAPES = [((6, 9), -1), ((6, 9), 0), ((4, 5, 70), 1), ((300,), 0), ((2, 3, 4), 2)]
TORCH_FORWARD = {"log_softmax": F.log_softmax, "softmax": F.softmax}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize(("shape", "dim"), SHAPES, ids=[f"{s}-dim{d}" for s, d in SHAPES])
@pytest.mark.parametrize("name", ["log_softmax", "softmax"])
def test_softmax_family_matches_torch(name, shape, dim, dtype):
    x = torch.tensor(RNG.standard_normal(shape) * 4, dtype=dtype)
    upstream = torch.tensor(RNG.standard_normal(shape), dtype=dtype)
    got = _value_and_grad(lambda a: getattr(lt, name)(a, dim), x, upstream)
    want = _value_and_grad(lambda a: TORCH_FORWARD[name](a, dim), x, upstream)
    for got_one, want_one in zip(got, want, strict=True):
        _close(got_one, want_one)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize(("dim", "keepdim"), [(1, False), ((0, 2), False), (-1, True), (0, True)], ids=str)
def test_logsumexp_matches_torch(dim, keepdim, dtype):
    x = torch.tensor(RNG.standard_normal((4, 5, 70)) * 4, dtype=dtype)
    upstream = torch.tensor(RNG.standard_normal(torch.logsumexp(x, dim, keepdim).shape), dtype=dtype)
    got = _value_and_grad(lambda a: lt.logsumexp(a, dim, keepdim), x, upstream)
    want = _value_and_grad(lambda a: torch.logsumexp(a, dim, keepdim), x, upstream)
    for got_one, want_one in zip(got, want, strict=True):
        _close(got_one, want_one)


def _adversarial(dtype):
    """The adversarial cases of ``dtype`` as torch tensors (native byte order, copied)."""
    for case in adversarial_cases(dtype):
        array = np.array(case.array, dtype=case.array.dtype.newbyteorder("="))
        yield pytest.param(torch.from_numpy(array), case.axis, id=f"{np.dtype(dtype).name}-{case.id}")


ADVERSARIAL = [case for dtype in (np.float32, np.float64) for case in _adversarial(dtype)]
SINGLE_AXIS = [case for case in ADVERSARIAL if isinstance(case.values[1], int)]


@pytest.mark.parametrize(("x", "dim"), SINGLE_AXIS)
@pytest.mark.parametrize("name", ["log_softmax", "softmax"])
def test_softmax_family_matches_torch_on_adversarial_inputs(name, x, dim):
    upstream = torch.tensor(RNG.standard_normal(x.shape), dtype=x.dtype)
    got = _value_and_grad(lambda a: getattr(lt, name)(a, dim), x, upstream)
    want = _value_and_grad(lambda a: TORCH_FORWARD[name](a, dim), x, upstream)
    for got_one, want_one in zip(got, want, strict=True):
        _close(got_one, want_one)


@pytest.mark.parametrize(("x", "dim"), ADVERSARIAL)
def test_logsumexp_matches_torch_on_adversarial_inputs(x, dim):
    """Equal values and gradients, with two differences.

    torch's gradient ``exp(x - result)`` carries the rounding of the result: a relative error of
    ``|result| * eps`` (1e-3 in float32 at a result of 1e4), which lsm's (a softmax, the maximum
    subtracted exactly) does not. So float32 inputs are compared with torch in float64, and
    float64 ones within that bound. And a group holding +inf has a NaN gradient at every
    position in lsm (the softmax of such a group is NaN), where torch gives 0 at the finite ones.
    """
    torch_dim = tuple(range(x.dim())) if dim is None else dim
    wide = x.double()
    reduced = torch.logsumexp(wide, torch_dim, keepdim=True)
    upstream = torch.tensor(RNG.standard_normal(torch.logsumexp(x, torch_dim).shape), dtype=x.dtype)
    value, grad = _value_and_grad(lambda a: lt.logsumexp(a, dim), x, upstream)
    want_value, want_grad = _value_and_grad(lambda a: torch.logsumexp(a, torch_dim), wide, upstream.double())
    want_grad = torch.where(reduced == torch.inf, torch.nan, want_grad)
    largest = reduced[reduced.isfinite()].abs().max().item() if reduced.isfinite().any() else 0.0
    rtol = max(TOLERANCE[x.dtype]["rtol"], 4 * torch.finfo(torch.float64).eps * largest)
    torch.testing.assert_close(value, want_value.to(x.dtype), equal_nan=True, **TOLERANCE[x.dtype])
    torch.testing.assert_close(
        grad, want_grad.to(x.dtype), equal_nan=True, rtol=rtol, atol=TOLERANCE[x.dtype]["atol"]
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_log_softmax_dtype_argument_computes_in_it_and_returns_the_inputs_dtype_gradient(dtype):
    x = torch.tensor(RNG.standard_normal((5, 40)), dtype=torch.float32)
    upstream = torch.tensor(RNG.standard_normal((5, 40)), dtype=dtype)
    got = _value_and_grad(lambda a: lt.log_softmax(a, 1, dtype=dtype), x, upstream)
    want = _value_and_grad(lambda a: F.log_softmax(a, 1, dtype=dtype), x, upstream)
    assert got[1].dtype == torch.float32
    _close(got[0], want[0])
    _close(got[1], want[1], dtype=torch.float32)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_16_bit_tensors_stay_16_bit(dtype):
    x = torch.tensor(RNG.standard_normal((4, 50)), dtype=torch.float32).to(dtype)
    upstream = torch.tensor(RNG.standard_normal((4, 50))).to(dtype)
    got = _value_and_grad(lambda a: lt.log_softmax(a, 1), x, upstream)
    want = _value_and_grad(lambda a: F.log_softmax(a.double(), 1), x.double(), upstream.double())
    for got_one, want_one in zip(got, want, strict=True):
        assert got_one.dtype == dtype
        torch.testing.assert_close(got_one.double(), want_one, rtol=1e-2, atol=2e-2)


def test_strided_input_and_expanded_upstream_gradient():
    """A transposed input and ``.sum()``'s expanded (stride 0) upstream gradient are read in place."""
    base = torch.tensor(RNG.standard_normal((30, 8)))
    got = _value_and_grad(lambda a: lt.softmax(a.T, 0)[:3].sum(), base, None)
    want = _value_and_grad(lambda a: F.softmax(a.T, 0)[:3].sum(), base, None)
    for got_one, want_one in zip(got, want, strict=True):
        _close(got_one, want_one)


# --- cross_entropy against torch ---------------------------------------------------------------

CE_OPTIONS = {
    "defaults": {},
    "weight": {"weight": True},
    "smoothing": {"label_smoothing": 0.25},
    "weight-smoothing-sum": {"weight": True, "label_smoothing": 0.1, "reduction": "sum"},
    "none-ignore": {"label_smoothing": 0.3, "reduction": "none", "ignore_index": 2},
    "weight-none": {"weight": True, "reduction": "none"},
}
CE_SHAPES = [(6, 9), (4, 5, 7), (11,)]


def _cross_entropy_pair(logits, target, kwargs, upstream):
    """lsm's and torch's (loss, dlogits) for the upstream gradient ``upstream`` of the loss."""
    got = _value_and_grad(lambda a: lt.cross_entropy(a, target, **kwargs), logits, upstream)
    want = _value_and_grad(lambda a: F.cross_entropy(a, target, **kwargs), logits, upstream)
    return got, want


def _upstream(loss_shape, dtype, kind):
    """1 (autograd's own seed for a scalar loss), another scale, or random per-item values."""
    if kind == "one":
        return torch.ones(loss_shape, dtype=dtype)
    if not loss_shape:
        return torch.tensor(0.75, dtype=dtype)
    return torch.tensor(RNG.standard_normal(loss_shape), dtype=dtype)


@pytest.mark.parametrize("upstream", ["one", "scaled"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("options", CE_OPTIONS)
@pytest.mark.parametrize("kind", ["index", "probs"])
@pytest.mark.parametrize("shape", CE_SHAPES, ids=str)
def test_cross_entropy_matches_torch(shape, kind, options, dtype, upstream):
    if kind == "probs" and "ignore_index" in CE_OPTIONS[options]:
        options = "smoothing"  # torch ignores ignore_index with probabilities: the same case
    logits, target, kwargs = _problem(shape, kind, CE_OPTIONS[options], dtype, seed=len(shape))
    loss_shape = F.cross_entropy(logits, target, **kwargs).shape
    got, want = _cross_entropy_pair(logits, target, kwargs, _upstream(loss_shape, dtype, upstream))
    for got_one, want_one in zip(got, want, strict=True):
        _close(got_one, want_one)


def _adversarial_logits(dtype):
    """(8, 6) logits with -inf entries away from the targets (classes 0, 3, 4, 5), and a huge
    range in two rows (a spread of 2e4; a sixteenth of the dtype's largest value, where the sum of
    a row's -log p stays finite: torch would overflow past that, see the test below)."""
    logits = torch.tensor(RNG.standard_normal((8, 6)) * 3, dtype=dtype)
    target = torch.tensor([0, 1, 2, 3, 4, 5, 0, 1])
    logits[0, 3:] = -torch.inf
    logits[1, 0] = -torch.inf
    logits[2] = torch.tensor([1e4, -1e4, 0.0, 1e4 - 1, -3e3, 5e3], dtype=dtype)
    logits[3] = torch.finfo(dtype).max / 16 * torch.tensor([1.0, -1.0, 0.5, 0.25, -0.5, 0.0], dtype=dtype)
    return logits, target


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize(
    "options",
    [
        {},
        {"ignore_index": 1},
        {"ignore_index": 1, "label_smoothing": 0.2},
        {"zero_weights": (2, 5)},
        {"zero_weights": (1, 2), "label_smoothing": 0.1},
    ],
    ids=["plain", "ignored", "ignored-smoothing", "zero-weights", "zero-weights-smoothing"],
)
def test_cross_entropy_matches_torch_on_adversarial_logits(options, reduction, dtype):
    """-inf logits (with label smoothing the loss of those rows is +inf in both), huge ranges,
    ignored targets, classes of weight 0 (with label smoothing only classes whose logits are
    finite: a weight of 0 at a -inf logit is the documented difference tested below)."""
    logits, target = _adversarial_logits(dtype)
    kwargs = {key: value for key, value in options.items() if key != "zero_weights"}
    if "zero_weights" in options:
        weight = torch.ones(6, dtype=dtype)
        weight[list(options["zero_weights"])] = 0.0
        kwargs["weight"] = weight
    upstream = _upstream(target.shape if reduction == "none" else (), dtype, "scaled")
    got, want = _cross_entropy_pair(logits, target, {**kwargs, "reduction": reduction}, upstream)
    for got_one, want_one in zip(got, want, strict=True):
        _close(got_one, want_one)


@pytest.mark.parametrize("weighted", [False, True], ids=["every-target-ignored", "every-weight-zero"])
def test_cross_entropy_mean_over_nothing_is_nan_as_in_torch(weighted):
    """0 / 0: NaN loss; the gradient is 0 at ignored items and NaN at zero-weight ones, as torch."""
    logits = torch.tensor(RNG.standard_normal((4, 3)))
    target = torch.tensor([1, 1, 1, 1]) if weighted else torch.full((4,), -100)
    kwargs = {"weight": torch.tensor([1.0, 0.0, 1.0], dtype=torch.float64)} if weighted else {}
    got, want = _cross_entropy_pair(logits, target, kwargs, torch.tensor(1.0, dtype=torch.float64))
    assert torch.isnan(got[0])
    for got_one, want_one in zip(got, want, strict=True):
        _close(got_one, want_one)


def test_cross_entropy_zero_probability_at_minus_infinity_is_zero_where_torch_gives_nan():
    """The documented difference (``lsm.cross_entropy``'s Notes): a term with q_c = 0 counts 0,
    where torch's 0 * -inf is NaN. The gradients agree (the -inf logit's is 0 in both)."""
    logits = torch.tensor([[-torch.inf, 0.0, 1.0]], dtype=torch.float64)
    target = torch.tensor([[0.0, 0.5, 0.5]], dtype=torch.float64)
    got, want = _cross_entropy_pair(logits, target, {}, torch.tensor(1.0, dtype=torch.float64))
    assert torch.isnan(want[0])
    _close(got[0], -0.5 * F.log_softmax(logits[0, 1:], 0).sum())
    _close(got[1], want[1])
    assert got[1][0, 0] == 0


@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
def test_cross_entropy_stays_finite_where_torchs_smoothing_sum_overflows(label_smoothing):
    """Logits of a quarter of float32's range: the smoothing term's sum of -log p overflows in
    torch's float32 (+inf) but not in lsm's float64 accumulation, which gives torch's float64
    loss rounded to float32."""
    logits = torch.finfo(torch.float32).max / 4 * torch.tensor([[1.0, -1.0, 0.5, 0.25, -0.5, 0.0]])
    target = torch.tensor([3])
    got = lt.cross_entropy(logits, target, label_smoothing=label_smoothing)
    wide = F.cross_entropy(logits.double(), target, label_smoothing=label_smoothing)
    _close(got, wide.float())
    assert torch.isinf(F.cross_entropy(logits, target, label_smoothing=label_smoothing)) == (
        label_smoothing > 0
    )


# --- autograd behaviour ------------------------------------------------------------------------


def _each_function():
    x = torch.tensor(RNG.standard_normal((4, 6)), requires_grad=True)
    target = torch.tensor([0, 5, 2, 1])
    return x, {
        "log_softmax": lambda: lt.log_softmax(x, 1),
        "softmax": lambda: lt.softmax(x, 1),
        "logsumexp": lambda: lt.logsumexp(x, 1),
        "cross_entropy": lambda: lt.cross_entropy(x, target, reduction="none"),
    }


@pytest.mark.parametrize(
    "upstream_requires_grad", [False, True], ids=["constant-upstream", "upstream-with-grad"]
)
@pytest.mark.parametrize("name", ["log_softmax", "softmax", "logsumexp", "cross_entropy"])
def test_double_backward_raises_naming_the_function(name, upstream_requires_grad):
    x, functions = _each_function()
    y = functions[name]()
    upstream = torch.ones_like(y, requires_grad=upstream_requires_grad)
    (grad,) = torch.autograd.grad(y, x, upstream, create_graph=True)
    expected = torch.autograd.grad(y, x, upstream, retain_graph=True)[0]
    torch.testing.assert_close(grad.detach(), expected)  # the first derivative itself is right
    with pytest.raises(RuntimeError, match=rf"lsm\.torch\.{name}: .*double backward"):
        grad.square().sum().backward()


def test_backward_twice_with_retain_graph_accumulates():
    """The saved gradient handed to autograd is copied when the graph is kept, so clearing x.grad
    does not clear what the second backward returns."""
    x = torch.tensor(RNG.standard_normal((4, 6)), requires_grad=True)
    loss = lt.cross_entropy(x, torch.tensor([0, 5, 2, 1]))
    loss.backward(retain_graph=True)
    first = x.grad.clone()
    x.grad.zero_()
    loss.backward(retain_graph=True)
    torch.testing.assert_close(x.grad, first)
    loss.backward()
    torch.testing.assert_close(x.grad, 2 * first)


def test_cross_entropy_computes_no_gradient_without_autograd(monkeypatch):
    calls = []
    lsm_cross_entropy = lt._cross_entropy

    def spy(*args, **kwargs):
        calls.append(kwargs["return_grad"])
        return lsm_cross_entropy(*args, **kwargs)

    monkeypatch.setattr(lt, "_cross_entropy", spy)
    x = torch.tensor(RNG.standard_normal((4, 6)), requires_grad=True)
    target = torch.tensor([0, 5, 2, 1])
    with torch.no_grad():
        assert not lt.cross_entropy(x, target).requires_grad
    lt.cross_entropy(x.detach(), target)
    assert lt.cross_entropy(x, target).requires_grad
    assert calls == [False, False, True]


def test_refusals():
    x = torch.zeros(4, 6, requires_grad=True)
    probabilities = torch.full((4, 6), 1 / 6, requires_grad=True)
    with pytest.raises(NotImplementedError, match=r"lsm\.torch\.cross_entropy: no gradient .* 'target'"):
        lt.cross_entropy(x, probabilities)
    with pytest.raises(NotImplementedError, match=r"'weight'; pass weight\.detach\(\)"):
        lt.cross_entropy(x, torch.zeros(4, dtype=torch.long), weight=torch.ones(6, requires_grad=True))
    with torch.no_grad():  # no gradient wanted: nothing to refuse
        lt.cross_entropy(x, probabilities)
    with pytest.raises(TypeError, match=r"lsm\.torch\.softmax: argument 'input' must be a torch tensor"):
        lt.softmax(np.zeros(3))
    with pytest.raises(TypeError, match=r"argument 'target' must be a torch tensor"):
        lt.cross_entropy(x, [0, 1, 2, 3])
    with pytest.raises(IndexError):  # lsm's own checks still apply
        lt.cross_entropy(x, torch.tensor([0, 6, 0, 0]))


def test_plain_functions_point_a_tensor_that_requires_grad_to_lsm_torch():
    with pytest.raises(TypeError, match=r"requires grad.*for autograd use lsm\.torch .*x\.detach\(\)"):
        lsm.log_softmax(torch.zeros(3, requires_grad=True))


def test_cross_entropy_loss_module_is_a_torch_cross_entropy_loss():
    weight = torch.tensor([1.0, 2.0, 0.5])
    module = lt.CrossEntropyLoss(weight, ignore_index=1, label_smoothing=0.1)
    assert isinstance(module, torch.nn.CrossEntropyLoss)
    assert torch.equal(module.state_dict()["weight"], weight)
    logits, target = torch.tensor(RNG.standard_normal((5, 3))), torch.tensor([0, 1, 2, 2, 0])
    reference = torch.nn.CrossEntropyLoss(weight.double(), ignore_index=1, label_smoothing=0.1)
    got = _value_and_grad(lambda a: module.double()(a, target), logits, None)
    want = _value_and_grad(lambda a: reference(a, target), logits, None)
    for got_one, want_one in zip(got, want, strict=True):
        _close(got_one, want_one)
    with pytest.warns(UserWarning):  # torch's deprecated arguments, turned into a reduction by torch
        assert lt.CrossEntropyLoss(size_average=False).reduction == "sum"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU and a CUDA build of torch")
def test_cuda_tensors_run_on_the_gpu_and_stay_there():
    pytest.importorskip("numba.cuda")
    logits, target, kwargs = _problem((64, 100), "index", {"weight": True, "label_smoothing": 0.1})
    logits, target, kwargs["weight"] = logits.cuda(), target.cuda(), kwargs["weight"].cuda()
    got = _value_and_grad(lambda a: lt.cross_entropy(a, target, **kwargs), logits, None)
    want = _value_and_grad(lambda a: F.cross_entropy(a, target, **kwargs), logits, None)
    for got_one, want_one in zip(got, want, strict=True):
        _close(got_one, want_one)
    upstream = torch.randn_like(logits)
    for name in ("log_softmax", "softmax"):
        got = _value_and_grad(lambda a, name=name: getattr(lt, name)(a, 1), logits, upstream)
        want = _value_and_grad(lambda a, name=name: TORCH_FORWARD[name](a, 1), logits, upstream)
        for got_one, want_one in zip(got, want, strict=True):
            _close(got_one, want_one)
