#!/usr/bin/env bash
# GPU check for the PyTorch adapter, in one go: the CUDA-marked tests (native and portable
# stream), a short timing of initspec_torch.init_ against torch.nn.init on a 4096x4096 CUDA
# tensor (native and portable), then benchmark scenarios 1, 3, 6 and 7 on CUDA
# (benchmarks/run.py --device cuda: GPT-2, the meta-device Llama, the micro-benchmarks with
# orthogonal_ at 4096 and 1024, the zoo against each model's own init), written to
# $OUT/benchmarks-cuda.md (or /tmp).
#
# Usage (from anywhere): scripts/gpu-check.sh
# Uses the repository's .venv if there is one, else python3 on PATH. Exits non-zero if there
# is no CUDA device or a test fails; the timing is informational (ratios, no thresholds).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="$ROOT/.venv/bin/python"
[ -x "$PY" ] || PY="$(command -v python3)"

"$PY" - <<'PYEOF'
import sys
import torch
if not torch.cuda.is_available():
    sys.exit("gpu-check: torch sees no CUDA device (torch " + torch.__version__ + ")")
print(f"gpu-check: torch {torch.__version__}, {torch.cuda.get_device_name(0)}")
PYEOF

echo "== pytest -m cuda (torch adapter)"
"$PY" -m pytest -m cuda -q -p no:cacheprovider tests/test_torch*.py tests/test_portable_torch.py

echo "== timing: init_ vs torch.nn.init, 4096x4096 on cuda (median of 20 runs, after warm-up)"
"$PY" - <<'PYEOF'
import statistics

import torch
from torch import nn

from initspec_torch import init_

SHAPE = (4096, 4096)
CASES = [
    # (label, dtype, initspec spec, the torch.nn.init call it matches)
    ("uniform", torch.float32, {"kind": "uniform", "low": -0.1, "high": 0.1},
     lambda t, g: nn.init.uniform_(t, -0.1, 0.1, generator=g)),
    ("kaiming_normal", torch.float32, {"kind": "kaiming_normal", "nonlinearity": "relu"},
     lambda t, g: nn.init.kaiming_normal_(t, nonlinearity="relu", generator=g)),
    ("trunc_normal 2sigma", torch.float32,
     {"kind": "truncated_normal", "std": 0.02, "low": -0.04, "high": 0.04},
     lambda t, g: nn.init.trunc_normal_(t, std=0.02, a=-0.04, b=0.04, generator=g)),
    ("trunc_normal 2sigma bf16", torch.bfloat16,
     {"kind": "truncated_normal", "std": 0.02, "low": -0.04, "high": 0.04},
     lambda t, g: nn.init.trunc_normal_(t, std=0.02, a=-0.04, b=0.04, generator=g)),
    ("orthogonal", torch.float32, {"kind": "orthogonal"},
     lambda t, g: nn.init.orthogonal_(t, generator=g)),
]


def median_ms(fn, runs=20):
    fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(runs):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


print(f"{'case':<26} {'init_ ms':>10} {'torch ms':>10} {'ratio':>7} {'portable ms':>12} {'ratio':>7}")
for label, dtype, spec, torch_fn in CASES:
    t = torch.empty(SHAPE, device="cuda", dtype=dtype)
    gen = torch.Generator(device="cuda")
    gen.manual_seed(0)
    runs = 5 if label == "orthogonal" else 20
    ours = median_ms(lambda: init_(t, spec, generator=gen), runs)
    theirs = median_ms(lambda: torch_fn(t, gen), runs)
    portable = median_ms(lambda: init_(t, spec, seed=0, path="w", rng="portable"), runs)
    print(f"{label:<26} {ours:>10.2f} {theirs:>10.2f} {ours / theirs:>7.2f} "
          f"{portable:>12.2f} {portable / theirs:>7.2f}")
print(f"peak memory allocated: {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB "
      f"(the 4096x4096 float32 tensor itself: {4096 * 4096 * 4 / 2**20:.0f} MiB)")
PYEOF

echo "== benchmarks/run.py --device cuda (scenarios 1, 3, 6, 7)"
"$PY" benchmarks/run.py --isolate --device cuda --repeats 3 --out "${OUT:-/tmp}/benchmarks-cuda.md"
