"""``initspec check`` of a GPT-2-small checkpoint vs reading the file with safetensors and
computing each tensor's mean and std with NumPy: time side by side, peak memory apart.

The checkpoint (GPT-2 small's 148 tensors, 124M float32 values drawn as the ``gpt2``
preset says) is written once to a temporary directory. A: ``check(read_checkpoint(path),
"gpt2")``, every tensor read once and tested (mean, variance, KS, bounds). B: ``safe_open``
then ``get_tensor``, ``mean()`` and ``std()`` for each tensor. Peak RSS is measured in a
child process per side (``ru_maxrss`` after the check, minus the RSS before it), against
the goal: the largest tensor + 200 MB. The peak is the child's ``VmHWM`` (its high-water
resident set since ``exec``), not ``ru_maxrss``, which Linux carries over from the parent
process that forked it (here the one that just wrote 500 MB of tensors).

    python -m benchmarks.bench_check [scale]
"""

from __future__ import annotations

import json
import math
import pathlib
import subprocess
import sys
import tempfile

import numpy as np

from benchmarks.common import Pair, compare

REPO = pathlib.Path(__file__).resolve().parents[1]


def gpt2_shapes(scale: float = 1.0) -> dict[str, tuple[int, ...]]:
    """GPT-2 small's tensors (HF names, Conv1D weights stored (in, out)); ``scale``
    shrinks the width and the vocabulary."""
    d = max(16, int(768 * scale))
    vocab, ctx = max(64, int(50257 * scale)), max(16, int(1024 * scale))
    shapes: dict[str, tuple[int, ...]] = {
        "transformer.wte.weight": (vocab, d),
        "transformer.wpe.weight": (ctx, d),
    }
    for i in range(12):
        h = f"transformer.h.{i}"
        shapes.update(
            {
                f"{h}.ln_1.weight": (d,),
                f"{h}.ln_1.bias": (d,),
                f"{h}.attn.c_attn.weight": (d, 3 * d),
                f"{h}.attn.c_attn.bias": (3 * d,),
                f"{h}.attn.c_proj.weight": (d, d),
                f"{h}.attn.c_proj.bias": (d,),
                f"{h}.ln_2.weight": (d,),
                f"{h}.ln_2.bias": (d,),
                f"{h}.mlp.c_fc.weight": (d, 4 * d),
                f"{h}.mlp.c_fc.bias": (4 * d,),
                f"{h}.mlp.c_proj.weight": (4 * d, d),
                f"{h}.mlp.c_proj.bias": (d,),
            }
        )
    shapes["transformer.ln_f.weight"] = (d,)
    shapes["transformer.ln_f.bias"] = (d,)
    return shapes


def write_checkpoint(path: pathlib.Path, scale: float = 1.0) -> int:
    """The checkpoint, initialized as the gpt2 preset says; returns the largest tensor's
    size in bytes."""
    from safetensors.numpy import save_file

    rng = np.random.default_rng(0)
    tensors = {}
    for name, shape in gpt2_shapes(scale).items():
        if name.endswith("bias"):
            tensors[name] = np.zeros(shape, np.float32)
        elif len(shape) == 1:
            tensors[name] = np.ones(shape, np.float32)
        else:
            std = 0.02 / math.sqrt(24) if "c_proj" in name else 0.02
            tensors[name] = (rng.standard_normal(shape, dtype=np.float32) * std).astype(np.float32)
    save_file(tensors, str(path))
    return max(t.nbytes for t in tensors.values())


def run_check(path: str) -> bool:
    from initspec.checker import check
    from initspec.checkpoint import read_checkpoint

    return check(read_checkpoint(path), "gpt2").ok


def run_baseline(path: str) -> float:
    from safetensors import safe_open

    total = 0.0
    with safe_open(path, framework="numpy") as f:
        for key in f.keys():
            x = f.get_tensor(key)
            total += float(x.mean()) + float(x.std())
    return total


_CHILD = """
import json, sys
sys.path.insert(0, {repo!r})
import numpy, safetensors, initspec.checker, initspec.checkpoint, benchmarks.bench_check as b
def status_kb(field):
    for line in open('/proc/self/status'):
        if line.startswith(field + ':'):
            return int(line.split()[1])
before = status_kb('VmRSS')
result = b.run_{which}({path!r})
peak = status_kb('VmHWM')
print(json.dumps({{"before_kb": before, "peak_kb": peak, "result": bool(result)}}))
"""


def peak_rss_mb(which: str, path: str) -> tuple[float, bool]:
    """(MB the process grew by at its peak, the result) of ``run_<which>`` in a child."""
    code = _CHILD.format(repo=str(REPO), which=which, path=path)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    doc = json.loads(out.stdout.strip().splitlines()[-1])
    return (doc["peak_kb"] - doc["before_kb"]) / 1024.0, doc["result"]


def table(scale: float = 1.0, repeats: int = 3) -> tuple[list[Pair | str], str]:
    with tempfile.TemporaryDirectory() as tmp:
        path = pathlib.Path(tmp) / "gpt2.safetensors"
        largest = write_checkpoint(path, scale)
        size = path.stat().st_size
        p = str(path)
        assert run_check(p), "the checkpoint must pass its own preset"
        pair = compare(
            f"GPT-2 small checkpoint ({size / 1e6:.0f} MB, scale {scale})",
            "initspec check",
            lambda: run_check(p),
            "safetensors + mean/std",
            lambda: run_baseline(p),
            repeats,
            goal="<= 2 (>= 0.5x the speed)",
        )
        rss_check, ok = peak_rss_mb("check", p)
        rss_base, _ = peak_rss_mb("baseline", p)
    note = (
        f"Peak RSS growth in a fresh process: initspec check {rss_check:.0f} MB (verdict ok: {ok}), "
        f"safetensors + mean/std {rss_base:.0f} MB; largest tensor {largest / 1e6:.0f} MB, "
        f"goal <= largest + 200 MB = {largest / 1e6 + 200:.0f} MB."
    )
    return [pair], note


if __name__ == "__main__":
    pairs, note = table(float(sys.argv[1]) if len(sys.argv) > 1 else 1.0)
    from benchmarks.common import HEADER

    print(HEADER)
    for row in pairs:
        print(row.row() if isinstance(row, Pair) else row)
    print(note)
