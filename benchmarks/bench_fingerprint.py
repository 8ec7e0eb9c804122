"""Fingerprint throughput (``initspec.fingerprints``) on one CPU core, in GB/s of values read.

A: the fingerprint sum of one tensor (``shard_sum``, the compiled kernel on one thread);
B: a NumPy sum of the same bytes (``x.view(uint).sum(dtype=uint64)``: one pass over the
memory with one integer add per element), as a reference for what reading the bytes costs.
float32 and bfloat16 (its bits as uint16, as torch gives them), in torch's layout (counters
in memory order) and in Flax's (a kernel (in, out): counters strided); the NumPy code alone
(an install without a C compiler) on a smaller tensor; and ``initspec_torch.fingerprint`` of
a GPT-2-shaped torch model (threads=1) against the same NumPy sum over its parameters.

    python -m benchmarks.bench_fingerprint [scale]

``benchmarks/run.py`` (scenario ``fingerprint``) calls ``table(scale)``.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks.common import Pair, compare, machine

GOAL = "A: >= 1 GB/s per core (table below)"
COLS = 4096


def _bytes_sum(bits: np.ndarray) -> int:
    return int(bits.sum(dtype=np.uint64))


Case = tuple[Pair, int, float, float]  # pair, bytes, CPU seconds of A, of B (medians)


def _cpu(fn: Callable[[], object], repeats: int) -> float:
    """Median CPU time of ``fn`` on this thread: what one core spends, whatever else runs
    on the machine (wall times on a loaded machine measure the other processes too)."""
    times = []
    for _ in range(repeats):
        start = time.thread_time()
        fn()
        times.append(time.thread_time() - start)
    return statistics.median(times)


def _case(
    name: str, nbytes: int, fp: Callable[[], object], ref: Callable[[], object], repeats: int
) -> Case:
    pair = compare(name, "fingerprint", fp, "NumPy sum of the bytes", ref, repeats, GOAL)
    return pair, nbytes, _cpu(fp, repeats), _cpu(ref, repeats)


def _tensor_cases(nbytes: int, repeats: int) -> list[Case]:
    from initspec import fingerprints as fpr

    rng = np.random.default_rng(0)
    out = []
    for dtype, uint in (("float32", np.uint32), ("bfloat16", np.uint16)):
        size = np.dtype(uint).itemsize
        rows = max(1, nbytes // (size * COLS))
        if dtype == "float32":
            bits = rng.standard_normal((rows, COLS), dtype=np.float32).view(uint)
        else:  # the high half of float32 values: bfloat16 bits, rounded toward zero
            wide = rng.standard_normal((rows, COLS), dtype=np.float32).view(np.uint32)
            bits = (wide >> np.uint32(16)).astype(np.uint16)
        for layout, shape in (("torch", (rows, COLS)), ("flax", (rows, COLS))):

            def fp(
                bits: np.ndarray = bits,
                layout: str = layout,
                shape: Any = shape,
                dtype: str = dtype,
            ) -> int:
                return fpr.shard_sum(bits, shape, layout, dtype=dtype, compiled=True, threads=1)

            label = f"{dtype} {rows}x{COLS}, {layout} layout"
            out.append(_case(label, bits.nbytes, fp, lambda b=bits: _bytes_sum(b), repeats))
    small = rng.standard_normal((max(1, nbytes // (64 * COLS)), COLS), dtype=np.float32)
    out.append(
        _case(
            f"float32 {small.shape[0]}x{COLS}, NumPy code (no compiled kernel)",
            small.nbytes,
            lambda: fpr.shard_sum(small, small.shape, "torch", compiled=False),
            lambda: _bytes_sum(small.view(np.uint32)),
            repeats,
        )
    )
    return out


def _torch_case(scale: float, repeats: int) -> list[Case]:
    try:
        import initspec_torch

        from benchmarks.models_torch import GPT2
    except ImportError:  # pragma: no cover
        return []
    layers = max(1, round(12 * scale))
    vocab = max(1024, int(50257 * scale))
    width = max(64, int(768 * min(1.0, scale)))
    model = GPT2(n_layer=layers, d=width, vocab=vocab, n_pos=max(64, int(1024 * scale)))
    params = [p.detach().numpy().view(np.uint32) for p in dict(model.named_parameters()).values()]
    nbytes = sum(p.nbytes for p in params)
    n = sum(p.numel() for p in dict(model.named_parameters()).values())
    return [
        _case(
            f"initspec_torch.fingerprint, GPT-2-shaped ({layers} layers, {n / 1e6:.1f}M params)",
            nbytes,
            lambda: initspec_torch.fingerprint(model, threads=1),
            lambda: sum(_bytes_sum(p) for p in params),
            repeats,
        )
    ]


def _gbs(nbytes: int, seconds: list[float]) -> float:
    return nbytes / statistics.median(seconds) / 1e9


def markdown(cases: list[Case]) -> str:
    lines = [
        "| case | MB | fingerprint GB/s (wall) | fingerprint GB/s per CPU second | "
        "NumPy sum GB/s per CPU second | fingerprint / sum |",
        "|---|---|---|---|---|---|",
    ]
    for pair, nbytes, cpu_a, cpu_b in cases:
        wall = _gbs(nbytes, pair.a)
        a, b = nbytes / cpu_a / 1e9, nbytes / cpu_b / 1e9
        lines.append(
            f"| {pair.name} | {nbytes / 1e6:.0f} | {wall:.2f} | {a:.2f} | {b:.2f} | {a / b:.2f} |"
        )
    return "\n".join(lines)


def table(scale: float = 1.0, repeats: int = 5) -> tuple[list[Pair], str]:
    """The ``fingerprint`` scenario of ``benchmarks/run.py``: 128 MB tensors at scale 1."""
    nbytes = max(1 << 16, int((1 << 27) * scale))
    cases = _tensor_cases(nbytes, repeats) + _torch_case(scale, repeats)
    return [c[0] for c in cases], markdown(cases)


def main() -> None:
    scale = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
    print(machine())
    pairs, note = table(scale)
    print(note)


if __name__ == "__main__":
    main()
