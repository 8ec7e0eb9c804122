"""The plan primitives drawn with torch's own generators, on the tensor's device.

``TorchNative`` is this backend's native ``Sampler`` (``initspec.backend``): one method per
primitive of ``initspec.plans``, each writing its values into the target tensor, drawn
only from ``generator`` (``None`` means torch's default generator, as ``torch.nn.init``).
float16 and bfloat16 targets are drawn in float32 (``casting.work_dtype``) and rounded once;
orthogonal, delta-orthogonal and sparse plans are drawn in float64 and rounded once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch

from initspec.plans import (
    ConstantPlan,
    DiracPlan,
    IdentityPlan,
    NormalPlan,
    OrthogonalPlan,
    Plan,
    Rejection,
    SparsePlan,
    TruncatedNormalPlan,
    UniformPlan,
)
from initspec_torch.casting import clip_to_bounds_, uniform_inside_, work_dtype

Generator = torch.Generator | None

LARGE_TEMPORARY = 256 << 20
"""Bytes from which a temporary (a bfloat16 parameter drawn in float32, an orthogonal
matrix in float64) is made by one writer thread at a time (``large_temporary``)."""

_LARGE = threading.RLock()


@contextmanager
def large_temporary(nbytes: int) -> Iterator[None]:
    """Hold the one slot for temporaries of ``LARGE_TEMPORARY`` bytes or more while a value
    of ``nbytes`` is drawn and copied: with parameters written on several threads
    (``TorchBackend.threads``) the peak memory stays one large temporary (the largest
    parameter's), as on one thread, instead of one per thread; smaller ones go side by
    side. Re-entrant, so a write nested in a write cannot wait on itself."""
    if nbytes < LARGE_TEMPORARY:
        yield
        return
    with _LARGE:
        yield


def standard_truncated_normal(
    n: int,
    a: float,
    b: float,
    dtype: torch.dtype,
    device: torch.device,
    generator: Generator,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """n draws of N(0, 1) restricted to [a, b], exactly, by rejection on ``device``, with
    the proposal ``initspec.plans.Rejection`` chooses (as the NumPy reference).

    Each round draws enough proposals for the expected acceptance (re-estimated from the
    previous round), so a round trip to the host happens only a few times per call.
    ``out``: a 1-D tensor of n elements (of ``dtype`` on ``device``) to write into.
    """
    if out is None:
        out = torch.empty(n, dtype=dtype, device=device)
    if n == 0:
        return out
    rej = Rejection.for_interval(a, b)
    a, b, flip = rej.a, rej.b, rej.flip
    if rej.proposal == "normal":
        # As torch >= 2.12: fill with N(0, 1), then redraw only what fell outside. Each
        # element is a normal redrawn until it lands in [a, b]: exactly the truncated normal,
        # at the cost of one normal_ and one comparison pass when the bounds are wide.
        out.normal_(generator=generator)
        lo, hi = torch.aminmax(out)  # one read pass: wide bounds usually reject nothing
        if lo >= a and hi <= b:
            return out.neg_() if flip else out
        idx = _outside(out, a, b)
        while idx.numel():
            x = torch.randn(idx.numel(), dtype=dtype, device=device, generator=generator)
            out[idx] = x
            idx = idx[(x < a) | (x > b)]
        return out.neg_() if flip else out

    acceptance = rej.acceptance
    filled = 0
    while filled < n:
        need = n - filled
        # 10% more than the expected need, plus a few so tiny requests finish in one round.
        m = int(need / max(acceptance, 0.01) * 1.1) + 64
        u = None
        if rej.proposal == "uniform":
            x = torch.empty(m, dtype=dtype, device=device).uniform_(a, b, generator=generator)
            u = torch.rand(m, dtype=dtype, device=device, generator=generator)
            keep = u <= torch.exp(0.5 * (rej.nearest * rej.nearest - x * x))
        else:
            x = torch.empty(m, dtype=dtype, device=device).exponential_(
                rej.rate, generator=generator
            )
            x.add_(a)
            u = torch.rand(m, dtype=dtype, device=device, generator=generator)
            keep = (u <= torch.exp(-0.5 * (x - rej.rate) ** 2)) & (x <= b)
        accepted = x[keep]
        got = accepted.numel()
        take = min(got, need)
        out[filled : filled + take] = accepted[:take]
        filled += take
        if got:
            acceptance = got / m
    return out.neg_() if flip else out


OUTSIDE_CHUNK = 1 << 22
"""Elements whose bounds are compared at once in ``_outside``: its masks stay at 12 MiB
(three bytes an element) whatever the tensor's size, instead of three quarters of a
float32 tensor's bytes (a 1 GB embedding table would need 750 MB more)."""


def _outside(flat: torch.Tensor, a: float, b: float) -> torch.Tensor:
    """The indices of the elements of 1-D ``flat`` outside [a, b], in increasing order."""
    n = flat.numel()
    if n <= OUTSIDE_CHUNK:
        return ((flat < a) | (flat > b)).nonzero().squeeze(1)
    parts = []
    for start in range(0, n, OUTSIDE_CHUNK):
        part = flat[start : start + OUTSIDE_CHUNK]
        parts.append(((part < a) | (part > b)).nonzero().squeeze(1) + start)
    return torch.cat(parts)


def fill_truncated_normal_(
    out: torch.Tensor, plan: TruncatedNormalPlan, generator: Generator
) -> torch.Tensor:
    """N(loc, scale**2) restricted to [low, high]: loc + scale * z, z a standard TN on
    [alpha, beta]. ``out`` must be contiguous. Rounding in the affine step can step just
    outside [low, high]; the caller clips to the dtype's values inside."""
    flat = out.view(-1)
    standard_truncated_normal(
        flat.numel(), plan.alpha, plan.beta, out.dtype, out.device, generator, out=flat
    )
    flat.mul_(plan.scale)
    if plan.loc != 0.0:
        flat.add_(plan.loc)
    return out


def orthogonal_matrix(
    rows: int,
    cols: int,
    device: torch.device,
    generator: Generator,
    dtype: torch.dtype = torch.float64,
    gain: float = 1.0,
    draw: torch.dtype | None = None,
) -> torch.Tensor:
    """Haar-random (rows, cols) matrix with orthonormal rows or columns, times ``gain``, in
    ``dtype``.

    The distribution of torch's ``orthogonal_`` (Q of the QR of an N(0, 1) matrix of shape
    (m, n) = (max, min), columns multiplied by sign(diag R), Mezzadri 2007; transposed back
    if rows < cols), drawn as Stewart (1980) does: Householder QR reflects column k, once the
    first k - 1 reflections are applied, onto beta_k e_k; by the rotational invariance of the
    Gaussian that column's trailing m - k + 1 entries are a fresh N(0, I) vector, so they are
    drawn directly (entries k.. of column k of one N(0, 1) matrix), each reflector built from
    its own as LAPACK's ``larfg`` does (beta = -sign(alpha) |x|, tau = (beta - alpha) / beta,
    v = x / (alpha - beta), v_1 = 1), and only their product Q = H_1 ... H_n is formed: half
    the flops of a QR then its Q. R's diagonal is beta; a zero alpha (probability 0) counts
    as positive.

    ``draw``: the dtype the Gaussian is drawn in (default ``dtype``), as torch's
    ``orthogonal_`` draws it in the tensor's own dtype: a float32 target's Gaussian is
    float32 (torch's float64 ``normal_`` is not vectorized: 5x the time of the float32 one),
    the reflectors and their product float64.

    The product is formed block by block (``householder_q``): the same Q as LAPACK's
    ``orgqr`` (``torch.linalg.householder_product``) to float64 rounding (tested), in
    larger matrix products.

    Callers pass float64: a float32 Q (torch's) misses W W^T = gain^2 I at atol 1e-6 once
    gain is 2, and bfloat16/float16 (which torch's QR refuses) are cast once from the float64
    result.
    """
    if rows * cols == 0:
        return torch.zeros(rows, cols, dtype=dtype, device=device)
    m, n = max(rows, cols), min(rows, cols)
    gauss = torch.randn(m, n, dtype=draw or dtype, device=device, generator=generator)
    v = gauss.to(dtype)  # the same tensor when drawn in dtype
    alpha = v.diagonal().clone()
    v.tril_()  # column k: the Gaussian vector reflected at step k
    sign = torch.where(alpha < 0, -1.0, 1.0).to(dtype)
    beta = -sign * torch.linalg.vector_norm(v, dim=0)
    tau = (beta - alpha) / beta
    v /= alpha - beta
    v.diagonal().fill_(1.0)
    q = householder_q(v, tau).mul_(sign.mul_(-gain))  # sign(beta) = -sign(alpha); exact
    return q.transpose(0, 1) if rows < cols else q


HOUSEHOLDER_BLOCK = 256
"""Reflectors per block in ``householder_q``: products of (m, 256) panels run at the speed
of a large matrix product; LAPACK's ``orgqr`` uses panels of 32."""


def householder_q(v: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
    """The first n columns of H_1 ... H_n, H_i = I - tau_i v_i v_i^T, for the (m, n) unit
    lower-trapezoidal V of the reflectors (``torch.linalg.householder_product(v, tau)``).

    Blocked as LAPACK's ``orgqr``: starting from I, the blocks of ``HOUSEHOLDER_BLOCK``
    reflectors are applied last to first, each to the trailing rows and columns it touches
    (columns before the block are still unit vectors there), so the flops are orgqr's
    (4/3 n^3 for a square matrix). A block's product is I - V_k S_k^{-1} V_k^T with the
    upper triangular S_k = striu(V_k^T V_k) + diag(1 / tau_k), the UT transform (Joffrain,
    Low, Quintana-Orti, van de Geijn 2006; Puglisi 1992), applied by a triangular solve.
    The block's own columns of the trailing matrix are still those of I: V_k^T times them
    is the top of V_k^T, and only the columns after the block take a product.
    """
    m, n = v.shape
    b = HOUSEHOLDER_BLOCK
    if n <= b:  # one block: LAPACK's own (fewer calls for the many small matrices)
        one: torch.Tensor = torch.linalg.householder_product(v, tau)
        return one
    q = torch.zeros(m, n, dtype=v.dtype, device=v.device)
    q.diagonal().fill_(1.0)
    for start in reversed(range(0, n, b)):
        end = min(start + b, n)
        vk = v[start:, start:end]
        s = vk.T @ vk  # only its upper triangle is read by the solve (no triu pass)
        s.diagonal().copy_(tau[start:end].reciprocal())
        trailing = q[start:, start:]
        w = torch.empty(end - start, n - start, dtype=v.dtype, device=v.device)
        w[:, : end - start] = vk[: end - start].T  # V_k^T I
        torch.mm(vk.T, trailing[:, end - start :], out=w[:, end - start :])
        trailing.addmm_(vk, torch.linalg.solve_triangular(s, w, upper=True), alpha=-1.0)
    return q


class TorchNative:
    """torch's native stream into ``out``: a ``Sampler[torch.Tensor]`` that writes the
    plan's values into ``out`` (any strides; rounded once to its dtype) and returns it.

    A contiguous ``out`` whose dtype is the work dtype takes an elementwise plan in place;
    everything else is drawn into a temporary and copied (``copy_`` writes by logical
    index, so a channels_last or strided tensor gets the values of a contiguous one).
    """

    def __init__(self, out: torch.Tensor, generator: Generator) -> None:
        self.out, self.generator = out, generator

    def _elementwise(self, plan: Plan, fill: Callable[[torch.Tensor], object]) -> torch.Tensor:
        out = self.out
        work = work_dtype(plan, out.dtype)
        if work == out.dtype and out.is_contiguous():
            fill(out)
            return clip_to_bounds_(out, plan)
        with large_temporary(plan.numel * torch.finfo(work).bits // 8):
            raw = torch.empty(plan.shape, dtype=work, device=out.device)
            fill(raw)
            return self._copy(plan, raw)

    def _copy(self, plan: Plan, x: torch.Tensor) -> torch.Tensor:
        # copy_ rounds to the dtype as .to does (cast_once), then the clip in that dtype:
        # the same values, without a temporary in the target dtype
        return clip_to_bounds_(self.out.copy_(x), plan)

    def constant(self, plan: ConstantPlan) -> torch.Tensor:
        return self._elementwise(plan, lambda t: t.fill_(plan.value))

    def uniform(self, plan: UniformPlan) -> torch.Tensor:
        out = self.out
        if work_dtype(plan, out.dtype) != out.dtype:
            gen = self.generator
            return self._elementwise(plan, lambda t: t.uniform_(plan.low, plan.high, generator=gen))
        # strided: drawn contiguous, then copied by logical index (same values)
        tmp = out if out.is_contiguous() else torch.empty(out.shape, dtype=out.dtype, device=out.device)
        uniform_inside_(tmp, plan, self.generator)
        return out if tmp is out else out.copy_(tmp)

    def normal(self, plan: NormalPlan) -> torch.Tensor:
        gen = self.generator
        return self._elementwise(plan, lambda t: t.normal_(plan.loc, plan.scale, generator=gen))

    def truncated_normal(self, plan: TruncatedNormalPlan) -> torch.Tensor:
        return self._elementwise(plan, lambda t: fill_truncated_normal_(t, plan, self.generator))

    def orthogonal(self, plan: OrthogonalPlan) -> torch.Tensor:
        out = self.out
        draw = torch.float64 if out.dtype == torch.float64 else torch.float32
        with large_temporary(plan.numel * 8 * 3):  # the Gaussian, V and Q, in float64
            q = orthogonal_matrix(
                plan.rows, plan.cols, out.device, self.generator, gain=plan.gain, draw=draw
            )
            return self._copy(plan, q.reshape(plan.permuted_shape).permute(plan.inverse_perm))

    def identity(self, plan: IdentityPlan) -> torch.Tensor:
        return self._copy(plan, torch.from_numpy(plan.build()).to(self.out.device))

    def dirac(self, plan: DiracPlan) -> torch.Tensor:
        device = self.out.device
        if plan.matrix == "identity":
            return self._copy(plan, torch.from_numpy(plan.build()).to(device))
        centre = plan.centre_matrix
        w = torch.zeros(plan.canonical_shape, dtype=torch.float64, device=device)
        if plan.numel:
            q = orthogonal_matrix(centre.rows, centre.cols, device, self.generator)
            w[plan.centre_index] = q.mul_(centre.gain)
        return self._copy(plan, w.permute(plan.inverse_perm))

    def sparse(self, plan: SparsePlan) -> torch.Tensor:
        """torch's ``sparse_``: N(0, sigma**2) in canonical (rows, cols), then in every column
        ``zeros_per_column`` = ceil(sparsity * rows) distinct random rows set to 0.

        torch draws each column's rows with ``randperm`` and ignores ``generator`` there; here
        the rows are the first ``zeros_per_column`` of a uniformly random permutation per column,
        the argsort of float64 uniforms (ties, which would bias the choice, have probability
        ~rows^2 / 2^54), all from ``generator`` and on ``device``, in one pass over the columns.
        """
        rows, cols = plan.canonical_shape
        device, generator = self.out.device, self.generator
        dtype = work_dtype(plan, self.out.dtype)
        # the values, the float64 keys and their int64 argsort
        with large_temporary(plan.numel * (torch.finfo(dtype).bits // 8 + 16)):
            w = torch.empty(rows, cols, dtype=dtype, device=device).normal_(
                0.0, plan.sigma, generator=generator
            )
            zeros = plan.zeros_per_column
            if zeros and rows * cols:
                keys = torch.rand(
                    rows, cols, dtype=torch.float64, device=device, generator=generator
                )
                chosen = keys.argsort(dim=0)[:zeros]
                w.scatter_(0, chosen, 0.0)
            return self._copy(plan, w.permute(plan.inverse_perm))


def write_plan(tensor: torch.Tensor, plan: Plan, generator: Generator) -> torch.Tensor:
    """Draw ``plan`` into ``tensor`` (no grad) with torch's native stream (``TorchNative``);
    meta and empty tensors are returned unchanged: nothing to write."""
    if tensor.is_meta or tensor.numel() == 0:
        return tensor
    with torch.no_grad():
        plan.draw(TorchNative(tensor, generator))
    return tensor
