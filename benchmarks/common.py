"""Side-by-side timing: alternate A and B, several repeats, report medians and their ratio."""

from __future__ import annotations

import gc
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class Pair:
    name: str
    a_label: str
    b_label: str
    a: list[float]
    b: list[float]
    goal: str = ""

    @property
    def ratio(self) -> float:
        return statistics.median(self.a) / statistics.median(self.b)

    def row(self) -> str:
        ma, mb = statistics.median(self.a), statistics.median(self.b)
        return f"| {self.name} | {self.a_label} | {ma * 1e3:.1f} ms | {self.b_label} | {mb * 1e3:.1f} ms | **{self.ratio:.3f}** | {self.goal} |"


HEADER = "| scenario | A | A median | B | B median | A / B | goal |\n|---|---|---|---|---|---|---|"


def compare(
    name: str,
    a_label: str,
    a: Callable[[], object],
    b_label: str,
    b: Callable[[], object],
    repeats: int = 5,
    goal: str = "",
    setup: Callable[[], object] | None = None,
) -> Pair:
    """Run ``a`` and ``b`` alternately (B first on odd rounds), ``repeats`` times each."""
    ta: list[float] = []
    tb: list[float] = []
    a(), b()  # warm-up: allocator, lazy imports, jit caches
    for i in range(repeats):
        order = ((a, ta), (b, tb)) if i % 2 == 0 else ((b, tb), (a, ta))
        for fn, out in order:
            if setup is not None:
                setup()
            gc.collect()
            start = time.perf_counter()
            fn()
            out.append(time.perf_counter() - start)
    return Pair(name, a_label, b_label, ta, tb, goal)


def machine() -> str:
    try:
        import torch

        torch_v = torch.__version__
        threads = torch.get_num_threads()
    except ImportError:  # pragma: no cover
        torch_v, threads = "-", 0
    try:
        import jax

        jax_v = jax.__version__
    except ImportError:  # pragma: no cover
        jax_v = "-"
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores (torch threads {threads}); Python {platform.python_version()}, torch {torch_v}, jax {jax_v}"


def peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
