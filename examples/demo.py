"""`make demo`: load every example spec, plan it, sample it with NumPy, compare moments.

Each file in examples/specs/ holds {"spec": ..., "shape": [...], "layout": "..."}.
"""

from __future__ import annotations

import json
import pathlib
import sys

import initspec

HERE = pathlib.Path(__file__).parent


def main() -> int:
    rows = []
    for path in sorted((HERE / "specs").glob("*.json")):
        doc = json.loads(path.read_text())
        spec = initspec.parse(doc["spec"])
        shape = tuple(doc["shape"])
        layout = doc["layout"]
        plan = spec.plan(shape, layout)
        x = initspec.sample(spec, shape, layout, seed=0, dtype="float64", path=path.stem)
        fi, fo = initspec.fans(shape, layout)
        rows.append(
            (
                path.stem,
                "x".join(map(str, shape)),
                layout,
                f"{fi}/{fo}",
                plan.describe().split("  fan_in")[0],
                f"{x.mean():+.5f}",
                f"{plan.mean:+.5f}",
                f"{x.std():.5f}",
                f"{plan.std:.5f}",
            )
        )
    head = ("example", "shape", "layout", "fan_in/out", "plan", "mean", "exact", "std", "exact")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    for r in [head, tuple("-" * w for w in widths), *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)).rstrip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
