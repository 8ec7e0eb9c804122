"""The same initial weights from NumPy, PyTorch and JAX: the portable random stream.

    python examples/portable_seed.py
    python examples/portable_seed.py --seed 7

initspec has two random streams (docs/reproducibility.md). ``rng="native"`` (the default)
draws from each backend's own generator: the same distribution everywhere, different numbers.
``rng="portable"`` draws from a counter-based stream (Threefry-2x32-20, keyed by the seed and
the parameter's path, element i keyed by its index in the layout's canonical order): the same
numbers in NumPy, torch and JAX, in every layout, and any shard computable on its own.

For a few specs the script draws each parameter in every backend that supports the portable
stream and counts the elements that agree bit for bit; then it shows that a Flax-layout
kernel is the torch-layout tensor transposed, that a shard equals the slice of the whole, and
that the native streams differ in values but not in moments.
"""

from __future__ import annotations

import argparse
import inspect
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

import initspec

# (path, spec, torch-layout shape, dtype)
CASES: list[tuple[str, dict[str, Any], tuple[int, ...], str]] = [
    ("fc.weight", {"kind": "normal", "std": 0.02}, (256, 128), "float32"),
    ("conv.weight", {"kind": "kaiming_uniform", "nonlinearity": "relu"}, (64, 32, 3, 3), "float32"),
    (
        "attn.weight",
        {"kind": "trunc_normal_", "std": 0.02, "a": -0.04, "b": 0.04},
        (192, 64),
        "float32",
    ),
    ("head.weight", {"kind": "xavier_normal"}, (10, 512), "float32"),
    ("fc.weight (float16)", {"kind": "normal", "std": 0.02}, (256, 128), "float16"),
]


def to_flax(shape: tuple[int, ...]) -> tuple[int, ...]:
    """torch (out, in, *k) -> Flax (*k, in, out)."""
    return (*shape[2:], shape[1], shape[0])


def from_flax(a: np.ndarray) -> np.ndarray:
    """A Flax-layout array in torch's layout: (*k, in, out) -> (out, in, *k)."""
    return a.transpose(a.ndim - 1, a.ndim - 2, *range(a.ndim - 2))


def param_key(path: str) -> str:
    return path.split(" ")[0]


# Backends -------------------------------------------------------------------------------------


def numpy_portable(
    spec: Any, shape: tuple[int, ...], dtype: str, seed: int, path: str
) -> np.ndarray:
    return initspec.sample(spec, shape, "torch", seed=seed, dtype=dtype, path=path, rng="portable")


def torch_portable() -> tuple[Callable[..., np.ndarray] | None, str]:
    """``initspec_torch.init_(..., rng="portable")`` if this version of the adapter has it."""
    try:
        import initspec_torch
        import torch
    except ImportError as exc:
        return None, f"not installed ({exc})"
    if "rng" not in inspect.signature(initspec_torch.init_).parameters:
        return None, "pending: initspec_torch.init_ has no rng='portable' yet"

    def draw(spec: Any, shape: tuple[int, ...], dtype: str, seed: int, path: str) -> np.ndarray:
        t = torch.empty(shape, dtype=getattr(torch, dtype))
        initspec_torch.init_(t, spec, "torch", seed=seed, path=path, rng="portable")
        return t.numpy()

    return draw, "initspec_torch.init_(tensor, spec, seed=..., path=..., rng='portable')"


def jax_portable() -> tuple[Callable[..., np.ndarray] | None, str]:
    """The JAX adapter's portable stream, if this version has it: ``initspec_jax.initializer(
    spec, layout, rng="portable", seed=..., path=...)`` drawn in Flax's layout."""
    try:
        import initspec_jax
        import jax
    except ImportError as exc:
        return None, f"not installed ({exc})"
    params = inspect.signature(initspec_jax.initializer).parameters
    if not {"rng", "seed", "path"} <= set(params):
        return None, "pending: initspec_jax.initializer has no rng='portable' yet"

    def draw(spec: Any, shape: tuple[int, ...], dtype: str, seed: int, path: str) -> np.ndarray:
        init = initspec_jax.initializer(spec, "flax", rng="portable", seed=seed, path=path)  # type: ignore[call-arg]
        return np.ascontiguousarray(
            from_flax(np.asarray(init(jax.random.key(0), to_flax(shape), dtype)))
        )

    return (
        draw,
        "initspec_jax.initializer(spec, 'flax', rng='portable', seed=..., path=...) in Flax's layout",
    )


# Comparing ------------------------------------------------------------------------------------


def ulps(a: np.ndarray, b: np.ndarray) -> int:
    """Largest distance between a and b in units in the last place (same dtype, finite)."""
    if a.size == 0:
        return 0
    ints = {2: np.int16, 4: np.int32, 8: np.int64}[a.dtype.itemsize]

    def ordered(x: np.ndarray) -> np.ndarray:  # IEEE bits as integers ordered like the values
        i = x.view(ints).astype(np.int64)
        return np.where(i < 0, np.iinfo(ints).min - i, i)

    return int(np.abs(ordered(a) - ordered(b)).max())


def table(head: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
        for r in [head, *rows]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--small", action="store_true", help="accepted for symmetry with the other examples"
    )
    args = parser.parse_args(argv)
    seed = args.seed

    backends: dict[str, Callable[..., np.ndarray]] = {"numpy": numpy_portable}
    print("portable stream v1, seed", seed)
    print(
        "  numpy: initspec.sample(spec, shape, layout, seed=..., path=..., rng='portable') (the reference)"
    )
    for name, probe in (("torch", torch_portable), ("jax", jax_portable)):
        draw, how = probe()
        print(f"  {name}: {how}")
        if draw is not None:
            backends[name] = draw
    print()

    rows = []
    all_equal = True
    for path, spec, shape, dtype in CASES:
        key = param_key(path)
        ref = numpy_portable(spec, shape, dtype, seed, key)
        row = [
            path,
            initspec.parse(spec).plan(shape, "torch").describe().split("  fan_in")[0],
            "x".join(map(str, shape)),
            dtype,
        ]
        for name, draw in backends.items():
            if name == "numpy":
                continue
            got = draw(spec, shape, dtype, seed, key)
            same = int(
                (
                    got.view(np.uint8).reshape(got.size, -1)
                    == ref.view(np.uint8).reshape(ref.size, -1)
                )
                .all(1)
                .sum()
            )
            all_equal &= same == ref.size
            row.append(f"{same}/{ref.size} bit-identical, max {ulps(got, ref)} ulp")
        rows.append(tuple(row))
    others = [n for n in backends if n != "numpy"]
    print(table(("parameter", "plan", "shape", "dtype", *(f"{n} vs numpy" for n in others)), rows))
    missing = [n for n in ("torch", "jax") if n not in backends]
    if others:
        verdict = "every element identical" if all_equal else "NOT all identical"
        print(f"measured: {', '.join(others)} vs numpy: {verdict}")
    if missing:
        print(f"pending: {', '.join(missing)} (its adapter has no portable stream in this version)")
    print()

    # Layouts: the same logical parameter, stored two ways, gets the same numbers.
    path, spec, shape, dtype = CASES[1]
    t = numpy_portable(spec, shape, dtype, seed, path)
    f = initspec.sample(
        spec, to_flax(shape), "flax", seed=seed, dtype=dtype, path=path, rng="portable"
    )
    print(
        f"layouts: {path} drawn as torch {shape} and as Flax {to_flax(shape)}: "
        f"max |torch - flax transposed| = {float(np.abs(t - from_flax(f)).max())!r}"
    )

    # Shards: rows 64:128 computed alone equal the same rows of the whole tensor.
    path, spec, shape, dtype = CASES[0]
    full = numpy_portable(spec, shape, dtype, seed, path)
    index = (slice(64, 128), slice(None))
    shard = initspec.sample(
        spec, shape, "torch", seed=seed, dtype=dtype, path=path, rng="portable", index=index
    )
    print(
        f"shards: {path}[64:128] computed from its global indices alone, {shard.shape}: "
        f"max |shard - full[64:128]| = {float(np.abs(shard - full[64:128]).max())!r}"
    )
    if "torch" in backends:
        import initspec_torch
        import torch

        if hasattr(initspec_torch, "init_shard_"):
            local = torch.empty(shard.shape)
            initspec_torch.init_shard_(local, spec, shape, index, "torch", seed=seed, path=path)
            print(
                f"shards: the same shard in torch (initspec_torch.init_shard_): "
                f"max |torch shard - numpy full[64:128]| = {float(np.abs(local.numpy() - full[64:128]).max())!r}"
            )

    # Native streams: the same distribution, other numbers.
    native = initspec.sample(spec, shape, "torch", seed=seed, dtype=dtype, path=path)
    line = (
        f"native: numpy's own generator for {path}: std {native.std():.5f} (portable: {full.std():.5f}, "
        f"exact {initspec.parse(spec).plan(shape).std:.5f}); max |native - portable| = "
        f"{float(np.abs(native - full).max()):.3g}"
    )
    if "torch" in backends:
        import initspec_torch
        import torch

        tn = initspec_torch.init_(torch.empty(shape), spec, "torch", seed=seed, path=path).numpy()
        line += f"; torch native std {tn.std():.5f}, max |torch native - numpy native| = {float(np.abs(tn - native).max()):.3g}"
    print(line)
    return 0 if all_equal else 1


if __name__ == "__main__":
    sys.exit(main())
