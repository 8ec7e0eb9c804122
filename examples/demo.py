"""`make demo`: one JSON policy applied to a torch CNN and to its Flax (nnx) port.

Prints both reports and a side-by-side summary per parameter: the rule each framework
matched, the plan (which must agree after the layout mapping) and the measured std against
the exact one. Then the catalog table: every example spec planned and sampled with NumPy.
"""

from __future__ import annotations

import json
import pathlib
import sys

import numpy as np

import initspec

HERE = pathlib.Path(__file__).parent


def torch_model():
    import torch
    from torch import nn

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(3, 32, 3)
            self.conv2 = nn.Conv2d(32, 64, 3, groups=2)
            self.norm = nn.LayerNorm(256)
            self.fc1 = nn.Linear(64 * 4 * 4, 256)
            self.head = nn.Linear(256, 10)

    torch.manual_seed(0)
    return Net()


def flax_model():
    from flax import nnx

    class Net(nnx.Module):
        def __init__(self, rngs: nnx.Rngs) -> None:
            self.conv1 = nnx.Conv(3, 32, (3, 3), rngs=rngs)
            self.conv2 = nnx.Conv(32, 64, (3, 3), feature_group_count=2, rngs=rngs)
            self.norm = nnx.LayerNorm(256, rngs=rngs)
            self.fc1 = nnx.Linear(64 * 4 * 4, 256, rngs=rngs)
            self.head = nnx.Linear(256, 10, rngs=rngs)

    return Net(nnx.Rngs(0))


def table(rows: list[tuple[str, ...]], head: tuple[str, ...]) -> str:
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
        for r in [head, *rows]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def port_summary() -> str:
    import initspec_jax
    import initspec_torch
    from flax import nnx

    policy = initspec.load_policy(str(HERE / "demo_policy.json"))
    tmodel, fmodel = torch_model(), flax_model()
    treport = initspec_torch.apply(policy, tmodel, seed=0)
    freport = initspec_jax.apply_nnx(policy, fmodel, seed=0)
    print(f"== policy {policy.name!r} on the torch model\n{treport.table()}\n")
    print(f"== the same policy on the Flax (nnx) port\n{freport.table()}\n")

    fvalues = {
        ".".join(map(str, path)): np.asarray(v[...])
        for path, v in nnx.iter_graph(fmodel)
        if isinstance(v, nnx.Param)
    }
    # Parameters paired by name (conv1.weight is conv1.kernel), rule and distribution
    # compared, and the measured std of each side beside the exact one.
    comparison = initspec.compare(
        treport,
        freport,
        values_a=dict(tmodel.named_parameters()),
        values_b=fvalues,
        labels=("torch", "flax"),
    )
    assert not any(comparison.unpaired), comparison.unpaired
    return comparison.table()


def catalog_table() -> str:
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
    return table(
        rows, ("example", "shape", "layout", "fan_in/out", "plan", "mean", "exact", "std", "exact")
    )


def main() -> int:
    print(port_summary())
    print("\n== every example spec, planned and sampled with NumPy (examples/specs/)")
    print(catalog_table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
