"""muP coordinate check: activation scales across widths 64 .. 1024 with a policy's width.

An MLP (32 -> w -> w -> w -> 10, ReLU) is initialized with ``torch-defaults`` plus a ``width``
section whose base is the width-64 model (muP), and with ``torch-defaults`` alone (the
standard parametrization, SP). For each width it records the mean absolute coordinate of
every layer's output (``x.abs().mean()``, mup's coord check statistic) on a fixed batch at
step 0 and after 3 Adam steps; muP trains with ``report.lr_multipliers("adam")`` as
parameter groups (``MuAdam``'s) and multiplies the readout's input by its ``output_mult``
(``MuReadout``'s forward). It prints, per layer and step, the slope of log(scale) against
log(width) (0: flat) and writes a plot.

What it shows (full run, 5 widths x 4 seeds): under muP every layer's scale is flat in
width at step 0 and after each of 3 Adam steps (|slope| < 0.1); under SP the step-0 layers
are flat too (1 / fan_in init), but one Adam step at the same learning rate makes the
hidden and readout outputs grow with width (the readout's by a factor of about 100 from
width 64 to 1024).

Run: ``python examples/mup_coord_check.py [--small] [--out coord_check.png]``.
"""

from __future__ import annotations

import argparse
import math
import warnings
from typing import Any

import initspec_torch
import numpy as np
import torch
from torch import nn

import initspec

LAYERS = ("fc1", "fc2", "fc3", "out")


class MLP(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(32, width)
        self.fc2 = nn.Linear(width, width)
        self.fc3 = nn.Linear(width, width)
        self.out = nn.Linear(width, 10)
        self.output_mult = 1.0  # MuReadout's input factor (1 in SP)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        acts = {}
        for name in LAYERS[:-1]:
            x = torch.relu(getattr(self, name)(x))
            acts[name] = x
        acts["out"] = self.out(x * self.output_mult)
        return acts


def build(width: int, mup: bool, seed: int) -> tuple[MLP, list[dict[str, Any]]]:
    """The model initialized (muP or SP) and its optimizer's parameter groups."""
    model = MLP(width)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", initspec.InitSpecWarning)
        if mup:
            base = initspec_torch.explain("torch-defaults", MLP(64)).shapes()
            policy = {"initspec": 1, "extends": "torch-defaults", "width": {"base": base}}
        else:
            policy = {"initspec": 1, "extends": "torch-defaults"}
        report = initspec_torch.apply(policy, model, seed=seed)
    if not mup:
        return model, [{"params": list(model.parameters())}]
    mults = report.lr_multipliers("adam")
    model.output_mult = float(mults["out.weight"]["output_mult"] or 1.0)
    groups = [
        {"params": [p], "lr": LR * float(mults[name]["lr"] or 1.0)}
        for name, p in model.named_parameters()
    ]
    return model, groups


LR = 1e-2


def scales(width: int, mup: bool, seed: int, steps: int) -> list[dict[str, float]]:
    """Mean |coordinate| of each layer's output at steps 0 .. ``steps``."""
    torch.manual_seed(1000 + seed)  # the batch and labels: the same for every width
    x = torch.randn(64, 32)
    y = torch.randint(0, 10, (64,))
    model, groups = build(width, mup, seed)
    opt = torch.optim.Adam(groups, lr=LR)
    out = []
    for step in range(steps + 1):
        acts = model(x)
        out.append({k: float(v.detach().abs().mean()) for k, v in acts.items()})
        if step < steps:
            opt.zero_grad()
            nn.functional.cross_entropy(acts["out"], y).backward()
            opt.step()
    return out


def slope(widths: list[int], values: list[float]) -> float:
    """Least-squares slope of log(value) against log(width)."""
    return float(np.polyfit(np.log(widths), np.log(values), 1)[0])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--small", action="store_true", help="widths 64..256, 2 seeds")
    ap.add_argument("--out", default="mup_coord_check.png")
    args = ap.parse_args()
    widths = [64, 128, 256] if args.small else [64, 128, 256, 512, 1024]
    seeds = 2 if args.small else 4
    steps = 3
    results: dict[str, Any] = {}
    for mup in (True, False):
        label = "muP" if mup else "SP"
        runs = [[scales(w, mup, s, steps) for s in range(seeds)] for w in widths]
        # mean over seeds: [width][step][layer]
        mean = [
            [
                {k: float(np.mean([r[t][k] for r in per_w])) for k in LAYERS}
                for t in range(steps + 1)
            ]
            for per_w in runs
        ]
        results[label] = mean
        for t in range(steps + 1):
            row = "  ".join(
                f"{k} {slope(widths, [mean[i][t][k] for i in range(len(widths))]):+.3f}"
                for k in LAYERS
            )
            print(f"{label} step {t}: slope of log scale vs log width: {row}")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot")
        return
    fig, axes = plt.subplots(2, steps + 1, figsize=(4 * (steps + 1), 7), sharey="row")
    for row, label in enumerate(("muP", "SP")):
        for t in range(steps + 1):
            ax = axes[row][t]
            for k in LAYERS:
                ax.plot(
                    widths, [results[label][i][t][k] for i in range(len(widths))], "o-", label=k
                )
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_title(f"{label}, step {t}")
            ax.set_xlabel("width")
        axes[row][0].set_ylabel("mean |activation|")
    axes[0][0].legend()
    fig.tight_layout()
    fig.savefig(args.out, dpi=90)
    print(f"wrote {args.out} ({math.prod((len(widths), seeds))} runs per parametrization)")


if __name__ == "__main__":
    main()
