"""initspec_torch.init_: parity with torch.nn.init, dtypes, seeds, meta tensors, bad input, CUDA.

Statistical checks use fixed seeds and one of two criteria:
- a two-sample Kolmogorov-Smirnov test against torch's own function, passing at p > 1e-4 as
  PyTorch's test/nn/test_init.py does, on shapes whose dims are 20-50 (2-D and 4-D);
- sample moments against the plan's exact moments, within Z_SE = 5 standard errors (a false
  alarm has probability ~6e-7 per check), with SE(mean) = sigma / sqrt(n) and
  SE(var) = sigma^2 sqrt((kurtosis - 1) / n), the large-n standard error of the sample
  variance (Var(s^2) = (mu_4 - sigma^4) / n). ``test_moment_check_catches_2_percent_std``
  shows that this check fails on a 2% error in std at the 4-D size used here.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from initspec_torch import init_
from initspec_torch.sampler import standard_truncated_normal
from scipy import stats  # type: ignore[import-untyped]
from torch import nn

from initspec import BackendError, InitSpecError, PlanContext, ShapeError, SpecError, fans, parse
from initspec.plans import Plan, TruncatedNormalPlan, UniformPlan, normal_mass

Z_SE = 5.0
KS_P_MIN = 1e-4
SHAPES = [(37, 45), (20, 23, 21, 22)]
SEED = 1234

requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


# Helpers ---------------------------------------------------------------------------------


def torch_generator(seed: int, device: str | torch.device = "cpu") -> torch.Generator:
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    return gen


def as_numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().to("cpu", torch.float64).numpy().ravel()


def plan_of(spec: dict[str, Any], shape: tuple[int, ...], **kw: Any) -> Plan:
    return parse(spec).plan(shape, **kw)


def assert_moments(values: torch.Tensor, plan: Plan) -> None:
    """Sample mean and variance within Z_SE standard errors of the plan's exact moments."""
    x = as_numpy(values)
    n = x.size
    sd_mean = plan.std / math.sqrt(n)
    assert abs(x.mean() - plan.mean) <= Z_SE * sd_mean, (x.mean(), plan.mean, sd_mean)
    se_var = plan.var * math.sqrt((plan.kurtosis - 1.0) / n)
    assert abs(x.var() - plan.var) <= Z_SE * se_var, (x.var(), plan.var, se_var)


def assert_ks_same(ours: torch.Tensor, theirs: torch.Tensor) -> None:
    p = stats.ks_2samp(as_numpy(ours), as_numpy(theirs)).pvalue
    assert p > KS_P_MIN, p


# Parity with torch.nn.init: random specs ---------------------------------------------------

TorchInit = Callable[[torch.Tensor, torch.Generator], Any]

RANDOM_PARITY: dict[str, tuple[dict[str, Any], TorchInit]] = {
    "uniform": (
        {"kind": "uniform_", "a": -0.3, "b": 0.7},
        lambda t, g: nn.init.uniform_(t, -0.3, 0.7, generator=g),
    ),
    "normal": (
        {"kind": "normal_", "mean": 0.1, "std": 0.5},
        lambda t, g: nn.init.normal_(t, 0.1, 0.5, generator=g),
    ),
    # One case per branch of the truncated-normal sampler: normal proposals (mass > 0.3),
    # uniform proposals around 0, uniform proposals in the tail, exponential proposals.
    "trunc_normal_default": (
        {"kind": "trunc_normal_"},
        lambda t, g: nn.init.trunc_normal_(t, generator=g),
    ),
    "trunc_normal_narrow": (
        {"kind": "trunc_normal_", "a": -0.2, "b": 0.3},
        lambda t, g: nn.init.trunc_normal_(t, a=-0.2, b=0.3, generator=g),
    ),
    "trunc_normal_tail": (
        {"kind": "trunc_normal_", "mean": 0.5, "std": 2.0, "a": 2.5, "b": 4.1},
        lambda t, g: nn.init.trunc_normal_(t, 0.5, 2.0, 2.5, 4.1, generator=g),
    ),
    "trunc_normal_far_tail": (
        {"kind": "trunc_normal_", "a": -3.5, "b": -2.5},
        lambda t, g: nn.init.trunc_normal_(t, a=-3.5, b=-2.5, generator=g),
    ),
    "xavier_uniform": (
        {"kind": "xavier_uniform_", "gain": 2.0},
        lambda t, g: nn.init.xavier_uniform_(t, gain=2.0, generator=g),
    ),
    "xavier_normal": (
        {"kind": "xavier_normal_", "gain": 0.5},
        lambda t, g: nn.init.xavier_normal_(t, gain=0.5, generator=g),
    ),
    "kaiming_uniform_default": (
        {"kind": "kaiming_uniform_"},
        lambda t, g: nn.init.kaiming_uniform_(t, generator=g),
    ),
    "kaiming_uniform_leaky_fan_out": (
        {"kind": "kaiming_uniform_", "a": 0.2, "mode": "fan_out"},
        lambda t, g: nn.init.kaiming_uniform_(t, a=0.2, mode="fan_out", generator=g),
    ),
    "kaiming_normal_relu": (
        {"kind": "kaiming_normal_", "nonlinearity": "relu"},
        lambda t, g: nn.init.kaiming_normal_(t, nonlinearity="relu", generator=g),
    ),
    "kaiming_normal_tanh_fan_out": (
        {"kind": "kaiming_normal_", "mode": "fan_out", "nonlinearity": "tanh"},
        lambda t, g: nn.init.kaiming_normal_(t, mode="fan_out", nonlinearity="tanh", generator=g),
    ),
    "kaiming_normal_leaky_slope": (
        {"kind": "kaiming_normal", "negative_slope": 0.3},
        lambda t, g: nn.init.kaiming_normal_(t, a=0.3, generator=g),
    ),
    "orthogonal": (
        {"kind": "orthogonal_", "gain": 1.5},
        lambda t, g: nn.init.orthogonal_(t, gain=1.5, generator=g),
    ),
}


# torch warns when the mean lies more than 2 std outside [a, b] (the far-tail case).
@pytest.mark.filterwarnings("ignore:mean is more than 2 std")
@pytest.mark.parametrize("shape", SHAPES, ids=["2d", "4d"])
@pytest.mark.parametrize("name", sorted(RANDOM_PARITY))
def test_random_parity_with_torch(name: str, shape: tuple[int, ...]) -> None:
    spec, torch_fn = RANDOM_PARITY[name]
    ours = init_(torch.empty(shape), spec, seed=SEED, path=name)
    theirs = torch.empty(shape)
    torch_fn(theirs, torch_generator(SEED))
    assert_ks_same(ours, theirs)
    plan = plan_of(spec, shape)
    if math.isfinite(plan.kurtosis):
        assert_moments(ours, plan)


def test_moment_check_catches_2_percent_std() -> None:
    """At the 4-D size, SE(var) / var = sqrt(2 / 212520) = 0.0031, so 5 SE = 1.5% of the
    variance, while a 2% error in std is a 4.04% error in variance."""
    spec = {"kind": "kaiming_normal", "nonlinearity": "relu"}
    shape = SHAPES[1]
    ours = init_(torch.empty(shape), spec, seed=SEED)
    plan = plan_of(spec, shape)
    assert_moments(ours, plan)
    with pytest.raises(AssertionError):
        assert_moments(ours * 1.02, plan)
    with pytest.raises(AssertionError):
        assert_moments(ours * 0.98, plan)


@pytest.mark.parametrize(
    ("a", "b"),
    [(-2.0, 2.0), (-0.2, 0.3), (1.0, 1.8), (3.0, 6.0), (-6.0, -3.0), (8.0, 8.01), (-1.0, 30.0)],
)
def test_standard_truncated_normal_matches_exact_cdf(a: float, b: float) -> None:
    """One-sample KS against the exact truncated-normal CDF, for every proposal branch.

    The CDF is (Phi(x) - Phi(a)) / (Phi(b) - Phi(a)) through the core's tail-accurate
    ``normal_mass``: Phi itself rounds to 1 near x = 8 and would make the CDF useless there.
    """
    n = 20000
    z = standard_truncated_normal(n, a, b, torch.float64, torch.device("cpu"), torch_generator(7))
    assert z.shape == (n,) and bool((z >= a).all()) and bool((z <= b).all())
    mass = normal_mass(a, b)
    cdf = np.vectorize(lambda x: normal_mass(a, min(max(x, a), b)) / mass)
    assert stats.kstest(z.numpy(), cdf).pvalue > KS_P_MIN


def test_rejection_masks_in_chunks_give_the_same_draws(monkeypatch: pytest.MonkeyPatch) -> None:
    """The out-of-bounds indices are found chunk by chunk (bounded memory for a large
    table): the same indices in the same order, so the same redraws, bit for bit."""
    import initspec_torch.sampler as sampler

    n, a, b = 50_000, -1.0, 1.5  # about 25% outside: many redraw rounds
    whole = standard_truncated_normal(n, a, b, torch.float32, torch.device("cpu"), torch_generator(3))
    monkeypatch.setattr(sampler, "OUTSIDE_CHUNK", 777)  # uneven: a short last chunk
    chunked = standard_truncated_normal(n, a, b, torch.float32, torch.device("cpu"), torch_generator(3))
    assert torch.equal(whole, chunked) and bool(((whole >= a) & (whole <= b)).all())
    x = torch.randn(5000, generator=torch_generator(4))
    direct = ((x < a) | (x > b)).nonzero().squeeze(1)
    assert direct.numel() > 100 and torch.equal(sampler._outside(x, a, b), direct)


# Parity: orthogonal, sparse, deterministic specs --------------------------------------------


@pytest.mark.parametrize("shape", [(3, 4), (4, 3), (20, 2, 3, 4), (2, 3, 4, 5), (37, 45), (45, 37)])
@pytest.mark.parametrize("gain", [1.0, 0.5, 2.0])
def test_orthogonal_rows_or_columns_orthonormal(shape: tuple[int, ...], gain: float) -> None:
    """W W^T = gain^2 I (rows <= cols) or W^T W = gain^2 I, to atol 1e-6 in float32, as
    PyTorch's test. The product is taken in float64, so only W's own rounding counts."""
    w = init_(torch.empty(shape), {"kind": "orthogonal", "gain": gain}, seed=SEED)
    flat = w.reshape(shape[0], -1).double()
    rows, cols = flat.shape
    gram = flat @ flat.T if rows <= cols else flat.T @ flat
    eye = gain**2 * torch.eye(min(rows, cols), dtype=torch.float64)
    torch.testing.assert_close(gram, eye, atol=1e-6, rtol=0)


@pytest.mark.parametrize(("shape", "block"), [((4, 4), 4), ((3, 5), 3), ((5, 3), 3)])
def test_orthogonal_is_haar(shape: tuple[int, int], block: int) -> None:
    """The trace t of the leading block x block corner of 3,000 draws, against Haar
    moments. A Haar Q of O(m) is invariant under sign flips of its rows, so E[Q_ii Q_jj] = 0
    (i != j) and E[Q_ii^2] = 1/m: E[t] = 0 and E[t^2] = block / m; for the full 4 x 4 trace
    the moments are those of N(0, 1) up to order 4 (Diaconis & Shahshahani 1994), so
    Var(t^2) = 2. Tolerances: 5 standard errors, sqrt(Var/N), with Var(t) = block / m and
    Var(t^2) = 2 for the square case or the sample variance of t^2 otherwise. Dropping the
    sign(diag R) correction moves E[t] to -1.6 (measured), far outside."""
    m = max(shape)
    gen = torch.Generator().manual_seed(SEED)
    n = 3000
    t = torch.tensor(
        [float(torch.trace(init_(torch.empty(shape, dtype=torch.float64),
                                 {"kind": "orthogonal"}, generator=gen)[:block, :block]))
         for _ in range(n)],
        dtype=torch.float64,
    )
    assert abs(float(t.mean())) <= 5 * math.sqrt(block / m / n)
    t2 = t**2
    var_t2 = 2.0 if shape == (4, 4) else float(t2.var())
    assert abs(float(t2.mean()) - block / m) <= 5 * math.sqrt(var_t2 / n)


@pytest.mark.parametrize(
    ("m", "n", "block"),
    [(300, 300, 256), (320, 290, 256), (60, 40, 7), (9, 9, 1), (1, 1, 256)],
)
def test_blocked_householder_product_is_lapacks(
    m: int, n: int, block: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """householder_q (blocked UT transform) forms the same Q as LAPACK's orgqr
    (torch.linalg.householder_product) from the same reflectors, to float64 rounding, for
    one block, many blocks and a last block shorter than the others: the values, hence the
    distribution, of orthogonal_matrix do not depend on how the product is formed."""
    from initspec_torch import sampler

    monkeypatch.setattr(sampler, "HOUSEHOLDER_BLOCK", block)
    gen = torch.Generator().manual_seed(SEED)
    gauss = torch.randn(m, n, dtype=torch.float64, generator=gen)
    v = torch.tril(gauss)
    alpha = torch.diagonal(gauss)
    beta = -torch.where(alpha < 0, -1.0, 1.0).double() * torch.linalg.vector_norm(v, dim=0)
    tau = (beta - alpha) / beta
    v /= alpha - beta
    v.diagonal().fill_(1.0)
    ours = sampler.householder_q(v, tau)
    torch.testing.assert_close(ours, torch.linalg.householder_product(v, tau), atol=1e-12, rtol=0)


@pytest.mark.parametrize("shape", [(600, 600), (300, 700), (700, 300)])
@pytest.mark.parametrize("gain", [1.0, 2.0])
def test_orthogonal_over_several_blocks_is_orthonormal_in_float32(
    shape: tuple[int, int], gain: float
) -> None:
    """Past one block of reflectors (256), W W^T = gain^2 I (or W^T W) to atol 1e-6 in
    float32, the product taken in float64 so only W's own rounding counts."""
    w = init_(torch.empty(shape), {"kind": "orthogonal", "gain": gain}, seed=SEED).double()
    rows, cols = shape
    gram = w @ w.T if rows <= cols else w.T @ w
    eye = gain**2 * torch.eye(min(rows, cols), dtype=torch.float64)
    torch.testing.assert_close(gram, eye, atol=1e-6, rtol=0)


@pytest.mark.slow  # ~10 s; the equality with LAPACK's product above implies it
def test_orthogonal_is_haar_across_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """The Haar moments of test_orthogonal_is_haar (4 x 4 trace: E[t] = 0, E[t^2] = 1,
    Var(t^2) = 2, 5 standard errors over 2,000 draws) with two reflectors per block, so
    that householder_q crosses a block boundary."""
    from initspec_torch import sampler

    monkeypatch.setattr(sampler, "HOUSEHOLDER_BLOCK", 2)
    gen = torch.Generator().manual_seed(SEED)
    n = 2000
    t = torch.tensor(
        [float(torch.trace(init_(torch.empty(4, 4, dtype=torch.float64),
                                 {"kind": "orthogonal"}, generator=gen)))
         for _ in range(n)],
        dtype=torch.float64,
    )
    assert abs(float(t.mean())) <= 5 * math.sqrt(1 / n)
    assert abs(float((t**2).mean()) - 1.0) <= 5 * math.sqrt(2.0 / n)


@pytest.mark.parametrize("shape", [(40, 50), (50, 30)])
@pytest.mark.parametrize("sparsity", [0.1, 0.35])
def test_sparse_parity(shape: tuple[int, int], sparsity: float) -> None:
    """Exactly ceil(sparsity * rows) zeros per column; the non-zeros are N(0, std^2) like
    torch's sparse_ (KS on the non-zeros)."""
    spec = {"kind": "sparse_", "sparsity": sparsity, "std": 0.03}
    ours = init_(torch.empty(shape), spec, seed=SEED)
    theirs = torch.empty(shape)
    with torch.random.fork_rng():
        # torch's sparse_ draws its zero rows from the global generator: pin it too.
        torch.manual_seed(SEED)
        nn.init.sparse_(theirs, sparsity, std=0.03, generator=torch_generator(SEED))
    zeros = math.ceil(sparsity * shape[0])
    assert ((ours == 0).sum(dim=0) == zeros).all()
    assert_ks_same(ours[ours != 0], theirs[theirs != 0])
    nonzero = ours[ours != 0]
    assert_moments(nonzero, plan_of({"kind": "normal", "std": 0.03}, tuple(nonzero.shape)))


DETERMINISTIC_PARITY: dict[str, tuple[dict[str, Any], Callable[[torch.Tensor], Any]]] = {
    "zeros": ({"kind": "zeros_"}, nn.init.zeros_),
    "ones": ({"kind": "ones_"}, nn.init.ones_),
    "constant": ({"kind": "constant_", "val": -0.75}, lambda t: nn.init.constant_(t, -0.75)),
}


@pytest.mark.parametrize("shape", SHAPES, ids=["2d", "4d"])
@pytest.mark.parametrize("name", sorted(DETERMINISTIC_PARITY))
def test_constant_parity(name: str, shape: tuple[int, ...]) -> None:
    spec, torch_fn = DETERMINISTIC_PARITY[name]
    theirs = torch.empty(shape)
    torch_fn(theirs)
    assert torch.equal(init_(torch.empty(shape), spec), theirs)


@pytest.mark.parametrize("shape", [(37, 45), (45, 37), (5, 5), (2, 3)])
def test_eye_parity(shape: tuple[int, int]) -> None:
    theirs = nn.init.eye_(torch.empty(shape))
    assert torch.equal(init_(torch.empty(shape), {"kind": "eye_"}), theirs)


@pytest.mark.parametrize(
    "shape", [(6, 4, 3), (6, 4, 5, 5), (12, 5, 3, 3), (9, 2, 4, 4), (6, 4, 3, 3, 3)]
)
@pytest.mark.parametrize("groups", [1, 3])
def test_dirac_parity(shape: tuple[int, ...], groups: int) -> None:
    theirs = nn.init.dirac_(torch.empty(shape), groups=groups)
    assert torch.equal(init_(torch.empty(shape), {"kind": "dirac_", "groups": groups}), theirs)


@pytest.mark.parametrize("groups", [1, 3])
@pytest.mark.parametrize("out_per_group", [4, 6])
@pytest.mark.parametrize("conv_dims", [1, 2])
def test_dirac_convolution_reproduces_input(
    groups: int, out_per_group: int, conv_dims: int
) -> None:
    """With a dirac kernel, output channel g*opg + d is input channel g*ipg + d (d < ipg) and
    the extra output channels are zero, exactly (each output is 1*x plus zeros)."""
    in_per_group, k = 4, 3
    weight = torch.empty(groups * out_per_group, in_per_group, *([k] * conv_dims))
    init_(weight, {"kind": "dirac", "groups": groups})
    x = torch.randn(2, groups * in_per_group, *([9] * conv_dims), generator=torch_generator(3))
    conv = F.conv1d if conv_dims == 1 else F.conv2d
    y = conv(x, weight, padding=k // 2, groups=groups)
    for g in range(groups):
        for d in range(out_per_group):
            out = y[:, g * out_per_group + d]
            if d < in_per_group:
                assert torch.equal(out, x[:, g * in_per_group + d])
            else:
                assert not out.any()


# What nn.Linear, nn.Conv2d, nn.ConvTranspose2d and nn.Embedding do in reset_parameters ------


def fresh(factory: Callable[[], nn.Module], seed: int) -> nn.Module:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return factory()


LAYERS: dict[str, tuple[Callable[[], nn.Module], str, str]] = {
    # name: (layer factory, layout of its weight, mode that reproduces torch's fan_in)
    "linear": (lambda: nn.Linear(400, 500), "torch", "fan_in"),
    "conv2d": (lambda: nn.Conv2d(64, 128, 3), "torch", "fan_in"),
    "conv2d_groups": (lambda: nn.Conv2d(64, 128, 3, groups=4), "torch", "fan_in"),
    # torch reads a ConvTranspose weight (in, out/groups, *k) with dim 1 as fan_in: in the
    # torch_transposed layout that is fan_out.
    "conv_transpose2d": (lambda: nn.ConvTranspose2d(64, 32, 3), "torch_transposed", "fan_out"),
}


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_torch_layer_defaults(name: str) -> None:
    factory, layout, mode = LAYERS[name]
    layer = fresh(factory, SEED)
    weight, bias = layer.weight, layer.bias
    assert isinstance(weight, torch.Tensor) and isinstance(bias, torch.Tensor)
    torch_fan_in = nn.init._calculate_fan_in_and_fan_out(weight)[0]
    bound = 1.0 / math.sqrt(torch_fan_in)

    w_spec = {"kind": "torch_linear_weight", "mode": mode}
    w_plan = plan_of(w_spec, tuple(weight.shape), layout=layout)
    assert isinstance(w_plan, UniformPlan)
    assert math.isclose(w_plan.high, bound, rel_tol=1e-12) and math.isclose(w_plan.low, -bound)
    ours_w = init_(torch.empty_like(weight), w_spec, layout=layout, seed=SEED, path="w")
    assert_ks_same(ours_w, weight)
    assert_moments(ours_w, w_plan)
    assert float(ours_w.abs().max()) < bound

    context = PlanContext(weight_fans=fans(tuple(weight.shape), layout))
    b_spec = {"kind": "torch_linear_bias", "mode": mode}
    b_plan = plan_of(b_spec, tuple(bias.shape), context=context)
    assert isinstance(b_plan, UniformPlan)
    assert math.isclose(b_plan.high, bound, rel_tol=1e-12)
    ours_b = init_(torch.empty_like(bias), b_spec, seed=SEED, path="b", context=context)
    assert_ks_same(ours_b, bias)
    assert float(ours_b.abs().max()) < bound


def test_embedding_default_is_standard_normal() -> None:
    layer = fresh(lambda: nn.Embedding(2000, 64), SEED)
    assert isinstance(layer, nn.Embedding)
    spec = {"kind": "normal", "mean": 0.0, "std": 1.0}
    ours = init_(torch.empty_like(layer.weight), spec, layout="embedding", seed=SEED)
    assert_ks_same(ours, layer.weight)
    assert_moments(ours, plan_of(spec, tuple(layer.weight.shape)))


# Dtypes -----------------------------------------------------------------------------------

DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64]
DTYPE_IDS = ["fp16", "bf16", "fp32", "fp64"]

BOUNDED_SPECS: dict[str, dict[str, Any]] = {
    "uniform": {"kind": "uniform", "low": -1.0, "high": 1.0},
    "uniform_offset": {"kind": "uniform", "low": 0.1, "high": 0.3},
    "torch_linear_weight": {"kind": "torch_linear_weight"},
    "trunc_normal_2sigma": {"kind": "truncated_normal", "std": 0.02, "low": -0.04, "high": 0.04},
    "trunc_normal_tail": {"kind": "truncated_normal", "low": 2.0, "high": 3.0},
    "lecun_normal": {"kind": "lecun_normal"},
}


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("name", sorted(BOUNDED_SPECS))
def test_bounds_hold_after_cast(name: str, dtype: torch.dtype) -> None:
    """Values stay in [low, high] ([low, high) for uniforms) after rounding to the dtype, and
    the moments stay those of the plan (rounding to bf16 adds a relative error below 2^-9,
    far inside 5 SE at this size)."""
    shape = (250, 400)
    spec = BOUNDED_SPECS[name]
    plan = plan_of(spec, shape)
    assert isinstance(plan, (UniformPlan, TruncatedNormalPlan))
    t = init_(torch.empty(shape, dtype=dtype), spec, seed=SEED)
    assert t.dtype == dtype
    x = as_numpy(t)
    assert x.min() >= plan.low
    assert x.max() < plan.high if isinstance(plan, UniformPlan) else x.max() <= plan.high
    assert_moments(t, plan)


CPU_UNIFORM = [(torch.float32, np.float32, 24), (torch.float64, np.float64, 53)]


def nearest(q: Fraction, dtype: Any) -> Fraction:
    """``q`` rounded exactly to the nearest ``dtype`` value, ties to even."""
    guess = dtype(float(q))
    steps = (np.nextafter(guess, dtype(-np.inf)), guess, np.nextafter(guess, dtype(np.inf)))
    uint = np.uint32 if dtype == np.float32 else np.uint64
    best = min(steps, key=lambda c: (abs(Fraction(float(c)) - q), int(c.view(uint)) & 1))
    return Fraction(float(best))


@pytest.mark.parametrize(("dtype", "np_dtype", "digits"), CPU_UNIFORM, ids=["f32", "f64"])
@pytest.mark.parametrize("bounds", [(-0.0371, 0.0521), (-1.0, 6e-8), (2.0, 1024.0)], ids=str)
def test_cpu_uniform_formula_is_the_one_uniform_inside_relies_on(
    dtype: torch.dtype, np_dtype: Any, digits: int, bounds: tuple[float, float]
) -> None:
    """initspec_torch.casting.uniform_inside_ skips its clamp on the CPU because torch's
    uniform_(lo, hi) is x * fl(hi - lo) + lo, fused or not, with x = k 2^-p in [0, 1):
    pinned here, element by element, against uniform_(0, 1) from the same generator state
    (if torch changes its kernel, this fails and the clamp must come back)."""
    lo, hi = (float(np_dtype(b)) for b in bounds)
    n = 4096
    x = torch.empty(n, dtype=dtype).uniform_(0, 1, generator=torch.Generator().manual_seed(3))
    y = torch.empty(n, dtype=dtype).uniform_(lo, hi, generator=torch.Generator().manual_seed(3))
    k = x.double().numpy() * 2.0**digits
    assert np.all(k == np.floor(k)) and k.max() <= 2.0**digits - 1
    d = nearest(Fraction(hi) - Fraction(lo), np_dtype)
    xs = [Fraction(float(v)) for v in x.numpy()]
    ys = [Fraction(float(v)) for v in y.numpy()]
    fused = [nearest(v * d + Fraction(lo), np_dtype) for v in xs]
    unfused = [nearest(nearest(v * d, np_dtype) + Fraction(lo), np_dtype) for v in xs]
    assert ys == fused or ys == unfused


@pytest.mark.parametrize(("dtype", "np_dtype", "digits"), CPU_UNIFORM, ids=["f32", "f64"])
def test_cpu_uniform_largest_value_never_passes_high(
    dtype: torch.dtype, np_dtype: Any, digits: int
) -> None:
    """The inequality uniform_inside_'s docstring proves, checked exactly at the largest x
    for 3,000 bound pairs of mixed magnitudes, powers of two and subnormal ranges; and the
    function keeps every value inside (its clamp is skipped)."""
    rng = np.random.default_rng(0)
    x_max = 1 - Fraction(1, 2**digits)
    pairs = [(-(2.0**e), 2.0**e) for e in range(-20, 20)] + [(0.0, 1e-39), (-1.0, 6e-8)]
    for _ in range(3000):
        a, w = rng.uniform(-4, 4), 10.0 ** rng.uniform(-9, 3)
        pairs.append((a * 10.0 ** rng.integers(-6, 6), a + w))
    for low, high in pairs:
        lo, hi = np_dtype(low), np_dtype(high)
        if not lo < hi or not np.isfinite(hi - lo):
            continue
        flo, fhi = Fraction(float(lo)), Fraction(float(hi))
        d = nearest(fhi - flo, np_dtype)
        assert nearest(x_max * d + flo, np_dtype) <= fhi, (lo, hi)
        assert nearest(nearest(x_max * d, np_dtype) + flo, np_dtype) <= fhi, (lo, hi)
    from initspec_torch.casting import uniform_inside_

    plan = UniformPlan((500, 400), -0.05, 0.05)
    t = uniform_inside_(torch.empty(plan.shape, dtype=dtype), plan, torch.Generator().manual_seed(1))
    assert float(t.min()) >= -0.05 and float(t.max()) < 0.05


def grid_values(dtype: torch.dtype, low: float, high: float) -> np.ndarray:
    """Every finite value of a 16-bit float dtype in [low, high], sorted."""
    bits = torch.arange(-(2**15), 2**15, dtype=torch.int32).to(torch.int16)
    values = np.unique(as_numpy(bits.view(dtype)))
    inside: np.ndarray = values[np.isfinite(values) & (values >= low) & (values <= high)]
    return inside


def rounding_cells(plan: TruncatedNormalPlan, dtype: torch.dtype) -> tuple[np.ndarray, np.ndarray]:
    """The dtype's values inside [low, high] and the probability that a draw ends on each.

    A draw x rounds to the nearest value; those rounding outside [low, high] are clipped to
    the extreme inside values. So value v_i receives the draws in [m_(i-1), m_i], m the
    midpoints between neighbours, with the first cell starting at low and the last ending at
    high. (Draws are float32 first, whose spacing is 2^16 times finer: negligible here.)
    """
    values = grid_values(dtype, plan.low, plan.high)
    edges = np.concatenate([[plan.low], (values[1:] + values[:-1]) / 2, [plan.high]])
    return values, np.diff(plan.cdf(edges))


def check_no_pile_up(x: torch.Tensor, plan: TruncatedNormalPlan) -> None:
    """The counts at the two extreme values and the number of distinct values agree with the
    exact rounding model within Z_SE standard errors.

    Count at a value: Binomial(n, p), SE sqrt(n p (1 - p)). Distinct values: sum over values
    of the indicator "hit at least once", mean sum(1 - (1 - p)^n); multinomial indicators are
    negatively correlated, so the variance is at most sum(q (1 - q)), q = 1 - (1 - p)^n.
    """
    values, p = rounding_cells(plan, x.dtype)
    sample = as_numpy(x)
    n = sample.size
    for i in (0, len(values) - 1):
        count = int((sample == values[i]).sum())
        expected = n * p[i]
        assert abs(count - expected) <= Z_SE * math.sqrt(expected * (1 - p[i])), (
            i,
            count,
            expected,
        )
    q = 1.0 - (1.0 - p) ** n
    distinct = len(np.unique(sample))
    assert abs(distinct - q.sum()) <= Z_SE * math.sqrt((q * (1 - q)).sum()), (distinct, q.sum())


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
def test_low_precision_truncated_normal_has_no_pile_up(dtype: torch.dtype) -> None:
    """bf16/fp16 TN with std 0.02 and +-2 sigma bounds, against the exact rounding model."""
    spec = {"kind": "truncated_normal", "std": 0.02, "low": -0.04, "high": 0.04}
    shape = (250, 400)
    plan = plan_of(spec, shape)
    assert isinstance(plan, TruncatedNormalPlan)
    check_no_pile_up(init_(torch.empty(shape, dtype=dtype), spec, seed=SEED), plan)
    # The check can fail: a normal clamped to the dtype's extreme values inside the bounds
    # (the classic shortcut) piles 2.3% of the draws on each of them.
    inside = grid_values(dtype, plan.low, plan.high)
    clamped = torch.randn(shape, generator=torch_generator(SEED)).mul_(0.02).to(dtype)
    with pytest.raises(AssertionError):
        check_no_pile_up(clamped.clamp_(float(inside[0]), float(inside[-1])), plan)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
@pytest.mark.parametrize("shape", [(64, 48), (48, 64), (16, 8, 3, 3)])
def test_low_precision_orthogonal(dtype: torch.dtype, shape: tuple[int, ...]) -> None:
    """Each entry is the float64 value rounded once, relative error <= u (2^-8 bf16, 2^-11
    fp16, the unit roundoff); by Cauchy-Schwarz |(W W^T)_ij - gain^2 d_ij| <= (2u + u^2) gain^2."""
    gain = 1.5
    w = init_(torch.empty(shape, dtype=dtype), {"kind": "orthogonal", "gain": gain}, seed=SEED)
    assert w.dtype == dtype
    flat = w.reshape(shape[0], -1).double()
    rows, cols = flat.shape
    gram = flat @ flat.T if rows <= cols else flat.T @ flat
    u = 2.0 ** (-8 if dtype == torch.bfloat16 else -11)
    eye = gain**2 * torch.eye(min(rows, cols), dtype=torch.float64)
    torch.testing.assert_close(gram, eye, atol=(2 * u + u * u) * gain**2, rtol=0)


# Seeds, generators and global RNG state ---------------------------------------------------

SEEDED_SPECS: list[dict[str, Any]] = [
    {"kind": "uniform", "low": -1.0, "high": 1.0},
    {"kind": "normal", "std": 0.1},
    {"kind": "truncated_normal", "std": 0.02, "low": -0.04, "high": 0.04},
    {"kind": "truncated_normal", "low": 3.0, "high": 6.0},
    {"kind": "kaiming_uniform"},
    {"kind": "orthogonal"},
    {"kind": "sparse", "sparsity": 0.3},
    {"kind": "delta_orthogonal"},
]
SEEDED_SHAPE = (24, 16, 3, 3)


def seeded_shape(spec: dict[str, Any]) -> tuple[int, ...]:
    return (24, 16) if spec["kind"] == "sparse" else SEEDED_SHAPE


@pytest.mark.parametrize("spec", SEEDED_SPECS, ids=lambda s: s["kind"])
def test_same_seed_same_bits_and_paths_differ(spec: dict[str, Any]) -> None:
    shape = seeded_shape(spec)
    a = init_(torch.empty(shape), spec, seed=7, path="block.0.weight")
    b = init_(torch.empty(shape), spec, seed=7, path="block.0.weight")
    c = init_(torch.empty(shape), spec, seed=7, path="block.1.weight")
    d = init_(torch.empty(shape), spec, seed=8, path="block.0.weight")
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert not torch.equal(a, d)


@pytest.mark.parametrize("spec", SEEDED_SPECS, ids=lambda s: s["kind"])
def test_global_rng_state_untouched(spec: dict[str, Any]) -> None:
    before = torch.get_rng_state()
    init_(torch.empty(seeded_shape(spec)), spec, seed=3, path="w")
    init_(torch.empty(seeded_shape(spec)), spec, generator=torch_generator(3))
    assert torch.equal(torch.get_rng_state(), before)


def test_explicit_generator_and_default_generator() -> None:
    spec = {"kind": "kaiming_normal"}
    a = init_(torch.empty(30, 40), spec, generator=torch_generator(11))
    b = init_(torch.empty(30, 40), spec, generator=torch_generator(11))
    assert torch.equal(a, b)
    # Neither generator nor seed: torch's global generator, as torch.nn.init.
    with torch.random.fork_rng():
        torch.manual_seed(11)
        c = init_(torch.empty(30, 40), spec)
        torch.manual_seed(11)
        d = init_(torch.empty(30, 40), spec)
        e = init_(torch.empty(30, 40), spec)
    assert torch.equal(c, d) and not torch.equal(d, e)


@pytest.mark.parametrize(
    "spec",
    [{"kind": "orthogonal"}, {"kind": "uniform", "low": -0.1, "high": 0.1},
     {"kind": "kaiming_uniform"}, {"kind": "trunc_normal", "std": 0.02}, {"kind": "normal"}],
    ids=lambda s: s["kind"],
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16], ids=str)
def test_memory_format_does_not_change_values(spec: dict[str, Any], dtype: torch.dtype) -> None:
    dense = init_(torch.empty(8, 4, 3, 3, dtype=dtype), spec, seed=1)
    strided = torch.empty(8, 4, 3, 3, dtype=dtype).to(memory_format=torch.channels_last)
    init_(strided, spec, seed=1)
    assert strided.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(dense, strided)


def test_parameter_stays_a_leaf_parameter() -> None:
    p = nn.Parameter(torch.zeros(10, 20))
    out = init_(p, {"kind": "xavier_uniform"}, seed=0)
    assert out is p and isinstance(out, nn.Parameter)
    assert p.requires_grad and p.grad_fn is None and bool(p.ne(0).any())


def test_meta_tensor_untouched_but_checked() -> None:
    t = torch.empty(64, 32, device="meta")
    assert init_(t, {"kind": "orthogonal"}, seed=0) is t
    assert t.is_meta and t.shape == (64, 32)
    with pytest.raises(ShapeError):
        init_(torch.empty(64, device="meta"), {"kind": "kaiming_normal"}, seed=0)


def test_wide_bounds_that_are_never_reached_fit() -> None:
    """A truncated normal's bounds may lie beyond float16's range: its values (within 40 std
    of the mode) do not, so it is accepted, and the values are those of N(0, 1)."""
    spec = {"kind": "truncated_normal", "low": -1e6, "high": 1e6}
    t = init_(torch.empty(250, 400, dtype=torch.float16), spec, seed=SEED)
    assert_moments(t, plan_of({"kind": "normal"}, (250, 400)))


@pytest.mark.parametrize("shape", [(0, 5), (5, 0), (0,)])
def test_empty_tensor(shape: tuple[int, ...]) -> None:
    spec = {"kind": "uniform"} if len(shape) == 1 else {"kind": "orthogonal"}
    assert init_(torch.empty(shape), spec, seed=0).shape == shape


# Bad input: the right InitSpecError, naming the parameter, and nothing modified --------------

BAD_INPUT: dict[
    str, tuple[Callable[[], Any], dict[str, Any], dict[str, Any], type[Exception], str]
] = {
    # name: (tensor factory, spec, extra kwargs, error class, fragment of the message)
    "int64": (
        lambda: torch.arange(12).reshape(3, 4),
        {"kind": "normal"},
        {},
        BackendError,
        "int64",
    ),
    "bool": (
        lambda: torch.ones(3, 4, dtype=torch.bool),
        {"kind": "zeros"},
        {},
        BackendError,
        "bool",
    ),
    "complex": (
        lambda: torch.ones(3, 4, dtype=torch.complex64),
        {"kind": "normal"},
        {},
        BackendError,
        "complex64",
    ),
    "ndarray": (lambda: np.ones((3, 4)), {"kind": "normal"}, {}, BackendError, "ndarray"),
    "list": (lambda: [[1.0, 2.0]], {"kind": "normal"}, {}, BackendError, "list"),
    "fan_based_on_1d": (
        lambda: torch.ones(10),
        {"kind": "kaiming_normal"},
        {},
        ShapeError,
        "(10,)",
    ),
    "orthogonal_on_1d": (
        lambda: torch.ones(10),
        {"kind": "orthogonal"},
        {},
        ShapeError,
        "at least 2",
    ),
    "dirac_groups": (
        lambda: torch.ones(16, 4, 3, 3),
        {"kind": "dirac", "groups": 3},
        {},
        ShapeError,
        "divisible by groups",
    ),
    "dirac_on_2d": (lambda: torch.ones(16, 4), {"kind": "dirac"}, {}, ShapeError, "3 or 4 or 5-D"),
    "fp16_constant_overflow": (
        lambda: torch.ones(3, 4, dtype=torch.float16),
        {"kind": "constant", "value": 1e5},
        {},
        BackendError,
        "overflow",
    ),
    "fp16_normal_overflow": (
        lambda: torch.ones(30, 40, dtype=torch.float16),
        {"kind": "normal", "std": 1e6},
        {},
        BackendError,
        "overflow",
    ),
    # Deterministic, before sampling: clipping to the bounds must not hide values that
    # overflow (they would pile up on float16's largest value, 65504).
    "fp16_uniform_overflow": (
        lambda: torch.ones(3, 4, dtype=torch.float16),
        {"kind": "uniform", "low": 0.0, "high": 1e5},
        {},
        BackendError,
        "overflow",
    ),
    "bf16_interval_too_narrow": (
        lambda: torch.ones(3, 4, dtype=torch.bfloat16),
        {"kind": "uniform", "low": 1.001, "high": 1.002},
        {},
        BackendError,
        "has no value",
    ),
    "bias_without_weight_fans": (
        lambda: torch.ones(10),
        {"kind": "torch_linear_bias"},
        {},
        InitSpecError,
        "weight_fans",
    ),
    "bad_spec": (lambda: torch.ones(3, 4), {"kind": "normal", "std": -1.0}, {}, SpecError, "std"),
    "seed_and_generator": (
        lambda: torch.ones(3, 4),
        {"kind": "normal"},
        {"seed": 1, "generator": torch.Generator()},
        BackendError,
        "not both",
    ),
}


@pytest.mark.parametrize("name", sorted(BAD_INPUT))
def test_bad_input_raises_and_modifies_nothing(name: str) -> None:
    factory, spec, kwargs, error, fragment = BAD_INPUT[name]
    target = factory()
    before = target.clone() if isinstance(target, torch.Tensor) else None
    with pytest.raises(error) as info:
        init_(target, spec, path="net.fc.weight", **kwargs)
    message = str(info.value)
    assert fragment in message
    if error is not SpecError:
        assert "'net.fc.weight'" in message
    if before is not None:
        assert torch.equal(target, before)


# CUDA ---------------------------------------------------------------------------------------


@pytest.mark.cuda
@requires_cuda
class TestCuda:
    """Run by scripts/gpu-check.sh (``pytest -m cuda``) on a machine with a GPU."""

    @pytest.mark.filterwarnings("ignore:mean is more than 2 std")
    @pytest.mark.parametrize(
        "name",
        [
            "normal",
            "trunc_normal_default",
            "trunc_normal_far_tail",
            "kaiming_uniform_default",
            "orthogonal",
        ],
    )
    def test_parity_on_device(self, name: str) -> None:
        spec, torch_fn = RANDOM_PARITY[name]
        shape = SHAPES[1]
        ours = init_(torch.empty(shape, device="cuda"), spec, seed=SEED, path=name)
        assert ours.is_cuda
        theirs = torch.empty(shape, device="cuda")
        torch_fn(theirs, torch_generator(SEED, "cuda"))
        assert_ks_same(ours, theirs)

    @pytest.mark.parametrize("spec", SEEDED_SPECS, ids=lambda s: s["kind"])
    def test_sampled_on_device_only(self, spec: dict[str, Any]) -> None:
        """No CPU tensor bigger than a scalar is created: nothing is sampled on the host."""
        from torch.utils._python_dispatch import TorchDispatchMode

        big_host: list[str] = []

        class Watch(TorchDispatchMode):  # type: ignore[no-untyped-call]
            def __torch_dispatch__(
                self, func: Any, types: Any, args: Any = (), kwargs: Any = None
            ) -> Any:
                out = func(*args, **(kwargs or {}))
                for t in out if isinstance(out, (tuple, list)) else [out]:
                    if isinstance(t, torch.Tensor) and t.device.type == "cpu" and t.numel() > 1:
                        big_host.append(str(func))
                return out

        t = torch.empty(seeded_shape(spec), device="cuda", dtype=torch.bfloat16)
        with Watch():  # type: ignore[no-untyped-call]
            init_(t, spec, seed=0, path="w")
        assert not big_host, big_host

    @pytest.mark.parametrize("spec", SEEDED_SPECS, ids=lambda s: s["kind"])
    def test_seeds_and_rng_state_on_device(self, spec: dict[str, Any]) -> None:
        shape = seeded_shape(spec)
        before_cpu, before_cuda = torch.get_rng_state(), torch.cuda.get_rng_state()
        a = init_(torch.empty(shape, device="cuda"), spec, seed=7, path="w")
        b = init_(torch.empty(shape, device="cuda"), spec, seed=7, path="w")
        c = init_(torch.empty(shape, device="cuda"), spec, seed=7, path="v")
        assert torch.equal(a, b) and not torch.equal(a, c)
        assert torch.equal(torch.get_rng_state(), before_cpu)
        assert torch.equal(torch.cuda.get_rng_state(), before_cuda)

    @pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
    def test_low_precision_truncated_normal(self, dtype: torch.dtype) -> None:
        spec = {"kind": "truncated_normal", "std": 0.02, "low": -0.04, "high": 0.04}
        shape = (250, 400)
        plan = plan_of(spec, shape)
        assert isinstance(plan, TruncatedNormalPlan)
        t = init_(torch.empty(shape, device="cuda", dtype=dtype), spec, seed=SEED)
        assert t.is_cuda and t.dtype == dtype
        check_no_pile_up(t, plan)
        assert_moments(t, plan)

    def test_bf16_orthogonal_on_device(self) -> None:
        w = init_(
            torch.empty(256, 512, device="cuda", dtype=torch.bfloat16),
            {"kind": "orthogonal"},
            seed=0,
        )
        gram = w.double() @ w.double().T
        u = 2.0**-8
        eye = torch.eye(256, dtype=torch.float64, device="cuda")
        torch.testing.assert_close(gram, eye, atol=2 * u + u * u, rtol=0)

    def test_cpu_generator_for_cuda_tensor_refused(self) -> None:
        t = torch.zeros(4, 5, device="cuda")
        with pytest.raises(BackendError, match="generator"):
            init_(t, {"kind": "normal"}, generator=torch_generator(0), path="w")
        assert not t.any()
