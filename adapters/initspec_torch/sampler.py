"""The plan primitives drawn with torch, on the tensor's device, in a working dtype.

One function per primitive of ``initspec.plans``; ``sample_plan`` dispatches on the plan type.
Elementwise primitives fill a given tensor in place (``fill_*_``); structural ones return a
new tensor of the plan's stored shape. All draw only from ``generator`` (``None`` means torch's default generator, as
``torch.nn.init``). The algorithms mirror the NumPy reference (``initspec.numpy_backend``);
the result is cast to the target dtype by ``initspec_torch.casting``, not here.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from initspec.errors import BackendError
from initspec.plans import (
    ConstantPlan,
    DiracPlan,
    IdentityPlan,
    NormalPlan,
    OrthogonalPlan,
    Plan,
    SparsePlan,
    TruncatedNormalPlan,
    UniformPlan,
    normal_mass,
)

# Branch threshold of the truncated-normal sampler: normal proposals above this mass, as
# torch >= 2.12 and the NumPy reference.
_NORMAL_PROPOSAL_MASS = 0.3


def fill_constant_(out: torch.Tensor, plan: ConstantPlan) -> torch.Tensor:
    """Every element ``plan.value``."""
    return out.fill_(plan.value)


def fill_uniform_(
    out: torch.Tensor, plan: UniformPlan, generator: torch.Generator | None
) -> torch.Tensor:
    """U[low, high): torch's ``uniform_``, i.e. low + (high - low) * u with u ~ U[0, 1).

    Rounding can land on ``high``; the final cast clips to the dtype's values below it.
    """
    return out.uniform_(plan.low, plan.high, generator=generator)


def fill_normal_(
    out: torch.Tensor, plan: NormalPlan, generator: torch.Generator | None
) -> torch.Tensor:
    """N(loc, scale**2), untruncated: torch's ``normal_``."""
    return out.normal_(plan.loc, plan.scale, generator=generator)


def standard_truncated_normal(
    n: int,
    a: float,
    b: float,
    dtype: torch.dtype,
    device: torch.device,
    generator: torch.Generator | None,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """n draws of N(0, 1) restricted to [a, b], exactly, by rejection on ``device``.

    The same three proposals as ``initspec.numpy_backend.standard_truncated_normal``:

    - mass Phi(b) - Phi(a) > 0.3: N(0, 1) proposals, keep those inside [a, b]
      (acceptance = mass);
    - otherwise, reflected so that b > 0: a uniform proposal on [a, b] accepted with
      exp((m^2 - x^2) / 2), m the point of [a, b] nearest 0, when the interval is narrow
      ((b - a) * a <= 1; acceptance = sqrt(2 pi) exp(m^2 / 2) mass / (b - a));
    - for a wide interval in the tail, Robert's (1995) exponential proposal a + Exp(rate),
      rate = (a + sqrt(a^2 + 4)) / 2, accepted with exp(-(x - rate)^2 / 2) and x <= b.

    No inverse CDF, so narrow intervals far in the tail neither pile up nor overflow. Each
    round draws enough proposals for the expected acceptance (re-estimated from the previous
    round), so a round trip to the host happens only a few times per call. ``out``: a 1-D
    tensor of n elements (of ``dtype`` on ``device``) to write into instead of a new one.
    """
    if out is None:
        out = torch.empty(n, dtype=dtype, device=device)
    if n == 0:
        return out
    flip = b <= 0
    if flip:
        a, b = -b, -a
    mass = normal_mass(a, b)
    nearest = rate = 0.0
    if mass > _NORMAL_PROPOSAL_MASS:
        branch, acceptance = "normal", mass
    elif a <= 0 or (b - a) * a <= 1.0:
        nearest = 0.0 if a <= 0 else a
        branch = "uniform"
        acceptance = math.sqrt(2.0 * math.pi) * math.exp(0.5 * nearest * nearest) * mass / (b - a)
    else:
        rate = 0.5 * (a + math.sqrt(a * a + 4.0))
        # Robert's acceptance without the upper cut is above 0.75; the cut at b lowers it.
        branch, acceptance = "exponential", 0.5

    if branch == "normal":
        # As torch >= 2.12: fill with N(0, 1), then redraw only what fell outside. Each
        # element is a normal redrawn until it lands in [a, b]: exactly the truncated normal,
        # at the cost of one normal_ and one comparison pass when the bounds are wide.
        out.normal_(generator=generator)
        lo, hi = torch.aminmax(out)  # one read pass: wide bounds usually reject nothing
        if lo >= a and hi <= b:
            return out.neg_() if flip else out
        idx = ((out < a) | (out > b)).nonzero().squeeze(1)
        while idx.numel():
            x = torch.randn(idx.numel(), dtype=dtype, device=device, generator=generator)
            out[idx] = x
            idx = idx[(x < a) | (x > b)]
        return out.neg_() if flip else out

    filled = 0
    while filled < n:
        need = n - filled
        # 10% more than the expected need, plus a few so tiny requests finish in one round.
        m = int(need / max(acceptance, 0.01) * 1.1) + 64
        if branch == "uniform":
            x = torch.empty(m, dtype=dtype, device=device).uniform_(a, b, generator=generator)
            u = torch.rand(m, dtype=dtype, device=device, generator=generator)
            keep = u <= torch.exp(0.5 * (nearest * nearest - x * x))
        else:
            x = torch.empty(m, dtype=dtype, device=device).exponential_(rate, generator=generator)
            x.add_(a)
            u = torch.rand(m, dtype=dtype, device=device, generator=generator)
            keep = (u <= torch.exp(-0.5 * (x - rate) ** 2)) & (x <= b)
        accepted = x[keep]
        got = accepted.numel()
        take = min(got, need)
        out[filled : filled + take] = accepted[:take]
        filled += take
        if got:
            acceptance = got / m
    return out.neg_() if flip else out


def fill_truncated_normal_(
    out: torch.Tensor, plan: TruncatedNormalPlan, generator: torch.Generator | None
) -> torch.Tensor:
    """N(loc, scale**2) restricted to [low, high]: loc + scale * z, z a standard TN on
    [alpha, beta]. ``out`` must be contiguous. Rounding in the affine step can step just
    outside [low, high]; the final cast clips to the dtype's values inside."""
    flat = out.view(-1)
    standard_truncated_normal(
        flat.numel(), plan.alpha, plan.beta, out.dtype, out.device, generator, out=flat
    )
    flat.mul_(plan.scale)
    if plan.loc != 0.0:
        flat.add_(plan.loc)
    return out


ELEMENTWISE = (ConstantPlan, UniformPlan, NormalPlan, TruncatedNormalPlan)


def fill_elementwise_(
    out: torch.Tensor,
    plan: ConstantPlan | UniformPlan | NormalPlan | TruncatedNormalPlan,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """Fill a contiguous ``out`` with an elementwise plan, in ``out``'s dtype, in place."""
    if isinstance(plan, ConstantPlan):
        return fill_constant_(out, plan)
    if isinstance(plan, UniformPlan):
        return fill_uniform_(out, plan, generator)
    if isinstance(plan, NormalPlan):
        return fill_normal_(out, plan, generator)
    return fill_truncated_normal_(out, plan, generator)


def orthogonal_matrix(
    rows: int,
    cols: int,
    device: torch.device,
    generator: torch.Generator | None,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """Haar-random (rows, cols) matrix with orthonormal rows or columns, in ``dtype``.

    The distribution of torch's ``orthogonal_`` (Q of the QR of an N(0, 1) matrix of shape
    (m, n) = (max, min), columns multiplied by sign(diag R), Mezzadri 2007; transposed back
    if rows < cols), drawn as Stewart (1980) does: Householder QR reflects column k, once the
    first k - 1 reflections are applied, onto beta_k e_k; by the rotational invariance of the
    Gaussian that column's trailing m - k + 1 entries are a fresh N(0, I) vector, so they are
    drawn directly (entries k.. of column k of one N(0, 1) matrix), each reflector built from
    its own as LAPACK's ``larfg`` does (beta = -sign(alpha) |x|, tau = (beta - alpha) / beta,
    v = x / (alpha - beta), v_1 = 1), and only their product is formed
    (``householder_product``, LAPACK ``orgqr``): half the flops of a QR then its Q. R's
    diagonal is beta; a zero alpha (probability 0) counts as positive.

    Callers pass float64: a float32 Q (torch's) misses W W^T = gain^2 I at atol 1e-6 once
    gain is 2, and bfloat16/float16 (which torch's QR refuses) are cast once from the float64
    result. At 4096 x 4096 on the CPU this costs ~1.3x torch's float32 ``orthogonal_`` (a
    float64 QR: 1.8x).
    """
    if rows * cols == 0:
        return torch.zeros(rows, cols, dtype=dtype, device=device)
    m, n = max(rows, cols), min(rows, cols)
    gauss = torch.randn(m, n, dtype=dtype, device=device, generator=generator)
    x = torch.tril(gauss)  # column k: the Gaussian vector reflected at step k
    alpha = torch.diagonal(gauss)
    sign = torch.where(alpha < 0, -1.0, 1.0).to(dtype)
    beta = -sign * torch.linalg.vector_norm(x, dim=0)
    tau = (beta - alpha) / beta
    v = x / (alpha - beta)
    v.diagonal().fill_(1.0)
    q = torch.linalg.householder_product(v, tau) * -sign  # sign(beta) = -sign(alpha)
    return q.transpose(0, 1) if rows < cols else q


def orthogonal(
    plan: OrthogonalPlan,
    dtype: torch.dtype,
    device: torch.device,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """gain * Q, Q of ``orthogonal_matrix(rows, cols)`` in float64, moved to the stored
    layout (``dtype`` is ignored: the caller casts once)."""
    q = orthogonal_matrix(plan.rows, plan.cols, device, generator, torch.float64).mul_(plan.gain)
    return q.reshape(plan.permuted_shape).permute(plan.inverse_perm)


def identity(plan: IdentityPlan, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """gain * eye(rows, cols) of the 2-D shape (torch's ``eye_`` when gain is 1)."""
    rows, cols = plan.shape
    return torch.eye(rows, cols, dtype=dtype, device=device).mul_(plan.gain)


def dirac(
    plan: DiracPlan,
    dtype: torch.dtype,
    device: torch.device,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """A conv kernel that is a matrix M at its spatial centre, zero elsewhere.

    Canonical (out, in, *k). ``matrix="identity"`` (torch's ``dirac_``):
    ``w[g * out_per_group + d, d, *center] = gain`` for g < groups, d < min(out_per_group, in).
    ``matrix="orthogonal"`` (jax's ``delta_orthogonal``): ``w[:, :, *center] = gain * Q``, Q a
    Haar-random (out, in) matrix built in ``dtype``. Permuted back to the stored layout.
    """
    out_ch, in_ch = plan.canonical_shape[:2]
    # An orthogonal centre stays in float64 so that it is rounded once, by the caller.
    if plan.matrix == "orthogonal":
        dtype = torch.float64
    w = torch.zeros(plan.canonical_shape, dtype=dtype, device=device)
    if plan.numel:
        if plan.matrix == "orthogonal":
            q = orthogonal_matrix(out_ch, in_ch, device, generator, torch.float64).mul_(plan.gain)
            at_center: tuple[Any, ...] = (slice(None), slice(None), *plan.center)
            w[at_center] = q
        else:
            opg = plan.out_per_group
            d = torch.arange(min(opg, in_ch), device=device)
            starts = torch.arange(plan.groups, device=device) * opg
            out_idx = (starts[:, None] + d[None, :]).reshape(-1)
            in_idx = d.repeat(plan.groups)
            ones_at: tuple[Any, ...] = (out_idx, in_idx, *plan.center)
            w[ones_at] = plan.gain
    return w.permute(plan.inverse_perm)


def sparse(
    plan: SparsePlan,
    dtype: torch.dtype,
    device: torch.device,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """torch's ``sparse_``: N(0, sigma**2) in canonical (rows, cols), then in every column
    ``zeros_per_column`` = ceil(sparsity * rows) distinct random rows set to 0.

    torch draws each column's rows with ``randperm`` and ignores ``generator`` there; here
    the rows are the first ``zeros_per_column`` of a uniformly random permutation per column,
    the argsort of float64 uniforms (ties, which would bias the choice, have probability
    ~rows^2 / 2^54), all from ``generator`` and on ``device``, in one pass over the columns.
    """
    rows, cols = plan.canonical_shape
    w = torch.empty(rows, cols, dtype=dtype, device=device).normal_(
        0.0, plan.sigma, generator=generator
    )
    zeros = plan.zeros_per_column
    if zeros and rows * cols:
        keys = torch.rand(rows, cols, dtype=torch.float64, device=device, generator=generator)
        chosen = keys.argsort(dim=0)[:zeros]
        w.scatter_(0, chosen, 0.0)
    return w.permute(plan.inverse_perm)


def sample_plan(
    plan: Plan,
    dtype: torch.dtype,
    device: torch.device,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """Draw ``plan`` in its stored shape on ``device``.

    Elementwise plans come back in ``dtype``; orthogonal and delta-orthogonal plans in
    float64 (their QR runs in float64, and casting once is the caller's job).
    """
    if isinstance(plan, ELEMENTWISE):
        out = torch.empty(plan.shape, dtype=dtype, device=device)
        return fill_elementwise_(out, plan, generator)
    if isinstance(plan, OrthogonalPlan):
        return orthogonal(plan, dtype, device, generator)
    if isinstance(plan, IdentityPlan):
        return identity(plan, dtype, device)
    if isinstance(plan, DiracPlan):
        return dirac(plan, dtype, device, generator)
    if isinstance(plan, SparsePlan):
        return sparse(plan, dtype, device, generator)
    raise BackendError(f"initspec_torch: no sampler for plan {type(plan).__name__}")
