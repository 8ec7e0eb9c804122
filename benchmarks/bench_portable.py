"""Portable stream vs each backend's native generator: elements per second, side by side.

For NumPy (``initspec.sample``; with the compiled kernel, and without it as an install
without a C compiler runs), torch CPU (``initspec_torch.init_`` into a preallocated
float32 tensor) and JAX CPU (``initspec_jax.initializer``, result blocked on), the native
and the portable call of the same spec and shape run alternately (``benchmarks.common
.compare``: warm-up first, so JAX's compilation is not timed; medians of the repeats).

    python -m benchmarks.bench_portable [n_elements]

``benchmarks/run.py`` (scenario 5) calls ``table(scale)``: the same measurements as A/B
pairs (A portable, B native: a time ratio A / B of 2 is half the native throughput).
"""

from __future__ import annotations

import statistics
import sys
from collections.abc import Callable

from benchmarks.common import Pair, compare, machine

# (backend, distribution, native elements/s, portable elements/s, portable / native)
Row = tuple[str, str, float, float, float]

SPECS: dict[str, dict[str, object]] = {
    "uniform": {"kind": "uniform", "low": -1.0, "high": 1.0},
    "normal": {"kind": "normal", "std": 0.02},
    "truncated normal": {"kind": "trunc_normal_", "std": 0.02},
}


GOAL = "<= 2 (>= 0.5x native elements/s)"


def _pair(
    backend: str,
    distribution: str,
    n: int,
    native: Callable[[], object],
    portable: Callable[[], object],
    repeats: int,
) -> Pair:
    return compare(
        f"{backend} {distribution} ({n} elements)",
        "portable",
        portable,
        "native",
        native,
        repeats,
        GOAL,
    )


def _row(backend: str, distribution: str, n: int, pair: Pair) -> Row:
    portable_eps = n / statistics.median(pair.a)
    native_eps = n / statistics.median(pair.b)
    return backend, distribution, native_eps, portable_eps, portable_eps / native_eps


def _numpy_pairs(n: int, repeats: int, kernel: bool = True) -> list[tuple[str, str, Pair]]:
    """NumPy, with the compiled kernel, or (``kernel=False``) with the NumPy code alone, as
    an install without a C compiler runs it."""
    import initspec
    from initspec import portable

    def sample_portable(spec: dict[str, object]) -> object:
        saved = portable._kernel
        if not kernel:
            portable._kernel = None
        try:
            return initspec.sample(spec, (n,), seed=0, path="w", rng="portable")
        finally:
            portable._kernel = saved

    rows = []
    for name, spec in SPECS.items():
        rows.append(
            _named(
                "NumPy" if kernel else "NumPy, no compiled kernel",
                name,
                n,
                lambda spec=spec: initspec.sample(spec, (n,), seed=0, path="w"),
                lambda spec=spec: sample_portable(spec),
                repeats,
            )
        )
    return rows


def _torch_pairs(n: int, repeats: int) -> list[tuple[str, str, Pair]]:
    import initspec_torch
    import torch

    t = torch.empty(n)
    rows = []
    for name, spec in SPECS.items():
        rows.append(
            _named(
                "torch CPU",
                name,
                n,
                lambda spec=spec: initspec_torch.init_(t, spec, seed=0, path="w"),
                lambda spec=spec: initspec_torch.init_(t, spec, seed=0, path="w", rng="portable"),
                repeats,
            )
        )
    return rows


def _jax_pairs(n: int, repeats: int) -> list[tuple[str, str, Pair]]:
    import jax
    from initspec_jax import initializer

    key = jax.random.key(0)
    rows = []
    for name, spec in SPECS.items():
        native = initializer(spec)
        portable = initializer(spec, rng="portable", seed=0, path="w")
        rows.append(
            _named(
                "JAX CPU",
                name,
                n,
                lambda native=native: native(key, (n,)).block_until_ready(),
                lambda portable=portable: portable(key, (n,)).block_until_ready(),
                repeats,
            )
        )
    return rows


def _jax_own_function(n: int, repeats: int) -> Pair:
    """The portable normal against ``jax.random.normal`` as users call it: JAX's own CPU
    lowering of threefry (a rolled loop), which the native stream no longer uses."""
    import jax
    from initspec_jax import initializer

    key = jax.random.key(0)
    portable = initializer(SPECS["normal"], rng="portable", seed=0, path="w")
    own = jax.jit(lambda k: 0.02 * jax.random.normal(k, (n,)))
    return compare(
        f"JAX CPU normal ({n} elements), against JAX's own function",
        "portable",
        lambda: portable(key, (n,)).block_until_ready(),
        "jit(0.02 * jax.random.normal)",
        lambda: own(key).block_until_ready(),
        repeats,
        "(for comparison)",
    )


def _named(
    backend: str,
    distribution: str,
    n: int,
    native: Callable[[], object],
    portable: Callable[[], object],
    repeats: int,
) -> tuple[str, str, Pair]:
    return backend, distribution, _pair(backend, distribution, n, native, portable, repeats)


def _all_pairs(n: int, repeats: int) -> list[tuple[str, str, Pair]]:
    return (
        _numpy_pairs(n, repeats)
        + _torch_pairs(n, repeats)
        + _jax_pairs(n, repeats)
        + _numpy_pairs(n, repeats, kernel=False)
    )


def portable_vs_native(n_elements: int = 1 << 22, repeats: int = 5) -> list[Row]:
    """Rows of (backend, distribution, native elements/s, portable elements/s, portable /
    native) for NumPy, torch CPU and JAX CPU, float32, ``n_elements`` per call."""
    return [_row(b, d, n_elements, p) for b, d, p in _all_pairs(n_elements, repeats)]


def markdown(rows: list[Row]) -> str:
    lines = [
        "| backend | distribution | native elements/s | portable elements/s | portable / native |",
        "|---|---|---|---|---|",
    ]
    for backend, dist, native, portable, ratio in rows:
        lines.append(f"| {backend} | {dist} | {native:.3g} | {portable:.3g} | {ratio:.2f} |")
    return "\n".join(lines)


def table(scale: float = 1.0, repeats: int = 5) -> tuple[list[Pair], str]:
    """Scenario 5 of ``benchmarks/run.py``: A/B pairs (A portable, B native) on
    ``2**22 * scale`` elements, and the elements/s table as the note."""
    n = max(1 << 12, int((1 << 22) * scale))
    named = _all_pairs(n, repeats)
    rows = [_row(b, d, n, p) for b, d, p in named]
    return [p for _, _, p in named] + [_jax_own_function(n, repeats)], markdown(rows)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1 << 22
    print(machine())
    print(f"{n} float32 elements per call, median of 5 alternating repeats\n")
    print(markdown(portable_vs_native(n)))


if __name__ == "__main__":
    main()
