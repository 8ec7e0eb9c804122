"""Zero, small random N(0, 0.01), Xavier and He initialization: measured, not claimed.

    python examples/four_techniques.py                 # full run, about a minute on 2 CPU cores
    python examples/four_techniques.py --small         # the smoke test: a few seconds
    python examples/four_techniques.py --out /tmp/figs

Three experiments, every technique written as an initspec spec and applied with
``initspec_torch.apply``:

1. the variances: the formulas with numbers, and sample variances measured from initspec;
2. signal propagation: the std of the activations at every layer of a 30-layer MLP, tanh and
   ReLU; a plot (``signal_propagation.png``) and a table;
3. training: an MLP 64-64-64-10 on scikit-learn's bundled digits (8x8 images, no download),
   plain SGD, three seeds per technique, tanh and ReLU; loss curves
   (``training_loss.png``), final test accuracy, and the symmetry of zero init measured on
   the trained weights.

Every number printed is measured in this run; the text around them only names them.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import pathlib
import sys
import time

import initspec_torch
import numpy as np
import torch
from torch import nn

import initspec

HERE = pathlib.Path(__file__).parent

# The four techniques, as initspec specs for the weight matrices (biases are zero in all).
TECHNIQUES: dict[str, dict[str, object]] = {
    "zero": {"kind": "zeros"},
    "N(0, 0.01)": {"kind": "normal", "std": 0.01},
    "Xavier": {"kind": "xavier_normal"},  # Glorot & Bengio 2010: Var = 2 / (fan_in + fan_out)
    "He": {"kind": "kaiming_normal", "nonlinearity": "relu"},  # He et al. 2015: Var = 2 / fan_in
}
CONSTANT_NAME = "constant 0.05"
LOSS_MARK = 0.5  # "how fast": the first epoch whose mean training loss is below this
COLORS = {"zero": "tab:gray", "N(0, 0.01)": "tab:orange", "Xavier": "tab:blue", "He": "tab:red"}
ACTIVATIONS = {"tanh": torch.tanh, "relu": torch.relu}


def policy(spec: dict[str, object], name: str) -> initspec.Policy:
    """Every Linear weight gets ``spec``, every bias zero; nothing may be left unmatched."""
    return initspec.load_policy(
        {
            "initspec": 1,
            "name": name,
            "unmatched": "error",
            "rules": [
                {"name": "weights", "match": {"role": ["kernel"]}, "init": spec},
                {"name": "biases", "match": {"role": ["bias"]}, "init": {"kind": "zeros"}},
            ],
        }
    )


def mlp(sizes: list[int]) -> nn.ModuleList:
    return nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:], strict=True))


def forward(
    layers: nn.ModuleList, x: torch.Tensor, act: str
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Logits and the hidden activations (after the nonlinearity) of every hidden layer."""
    hidden = []
    for layer in layers[:-1]:
        x = ACTIVATIONS[act](layer(x))
        hidden.append(x)
    return layers[-1](x), hidden


def table(head: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    lines = [
        "  ".join(
            c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in [head, *rows]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


# 1. Variances -----------------------------------------------------------------------------


def variances(seed: int) -> dict[str, dict[str, float]]:
    fan_in, fan_out = 256, 64
    shape = (fan_out, fan_in)  # a torch Linear(256, 64).weight
    n_draws = 40
    print("1. THE VARIANCES")
    print(
        "A common misstatement gives Xavier (Glorot) initialization a variance of 1/n. It is\n"
        "2 / (fan_in + fan_out): Glorot & Bengio (2010) average the forward condition\n"
        "(fan_in * Var = 1) and the backward one (fan_out * Var = 1). 1/fan_in is LeCun's\n"
        "(1998); He (2015) doubles it to 2/fan_in for ReLU, which zeroes half its inputs. The\n"
        "'standard' U(+-1/sqrt(n)) the Glorot paper argues against has Var = 1/(3n); it is still\n"
        "PyTorch's Linear default (torch_linear_weight)."
    )
    print(
        f"For a torch Linear({fan_in}, {fan_out}).weight, shape {shape} (fan_in={fan_in}, "
        f"fan_out={fan_out}); sample variance over {n_draws} draws of the whole matrix "
        f"({n_draws * fan_in * fan_out:,} values, initspec's NumPy sampler):"
    )
    cases = [
        (
            "Xavier / Glorot",
            "2/(fan_in+fan_out)",
            2 / (fan_in + fan_out),
            {"kind": "xavier_normal"},
        ),
        ("LeCun", "1/fan_in", 1 / fan_in, {"kind": "lecun_normal"}),
        (
            "He / Kaiming",
            "2/fan_in",
            2 / fan_in,
            {"kind": "kaiming_normal", "nonlinearity": "relu"},
        ),
        ("torch Linear default", "1/(3 fan_in)", 1 / (3 * fan_in), {"kind": "torch_linear_weight"}),
        ("'1/n' (misstatement)", "1/fan_in", 1 / fan_in, None),
    ]
    rows = []
    measured: dict[str, dict[str, float]] = {}
    for name, formula, exact, spec in cases:
        if spec is None:
            rows.append((name, formula, f"{exact:.6f}", "-", "-", "-", "-"))
            continue
        parsed = initspec.parse(spec)
        plan = parsed.plan(shape, "torch")
        draws = np.stack(
            [
                initspec.sample(parsed, shape, "torch", seed=seed + i, dtype="float64", path="w")
                for i in range(n_draws)
            ]
        )
        var = draws.var()
        # s.e. of a sample variance: Var * sqrt((kurtosis - 1) / n), from the sample's own kurtosis
        kurt = ((draws - draws.mean()) ** 4).mean() / var**2
        se = var * math.sqrt((kurt - 1) / draws.size)
        measured[name] = {"formula": exact, "plan": plan.std**2, "measured": float(var), "se": se}
        rows.append(
            (
                name,
                formula,
                f"{exact:.6f}",
                f"{plan.std**2:.6f}",
                f"{var:.6f}",
                f"{se:.6f}",
                f"{(var - exact) / se:+.1f}",
            )
        )
    print(
        table(
            ("technique", "formula", "Var (formula)", "Var (plan)", "Var (measured)", "s.e.", "z"),
            rows,
        )
    )
    xavier, lecun = 2 / (fan_in + fan_out), 1 / fan_in
    print(
        f"Xavier's variance here is {xavier:.6f} = 2/({fan_in}+{fan_out}), not 1/n = 1/{fan_in} = "
        f"{lecun:.6f} (that is LeCun's) and not 1/{fan_out} = {1 / fan_out:.6f}; the two agree only "
        f"when fan_in == fan_out."
    )
    print(
        "lecun_normal is the jax/keras spelling, a normal cut at 2 sigma whose std is divided by\n"
        "0.8796, so that the variance after truncation is exactly 1/fan_in, as measured above.\n"
    )
    return measured


# 2. Signal propagation --------------------------------------------------------------------


@dataclasses.dataclass
class Signal:
    act_std: np.ndarray  # std of the activations after the nonlinearity, per hidden layer
    grad_norm: (
        np.ndarray
    )  # |dL/dW| (Frobenius, in float64: squares of tiny float32 values underflow)
    saturated: float  # fraction of tanh outputs with |a| > 0.99 at the last hidden layer


def signal_propagation(
    depth: int, width: int, batch: int, seed: int
) -> dict[tuple[str, str], Signal]:
    """Forward: activation std at each of ``depth`` hidden layers; backward: the norm of each
    layer's weight gradient for a cross-entropy loss on random labels."""
    x0 = torch.randn(batch, width, generator=torch.Generator().manual_seed(seed))
    labels = torch.randint(0, 10, (batch,), generator=torch.Generator().manual_seed(seed + 1))
    out: dict[tuple[str, str], Signal] = {}
    for act in ACTIVATIONS:
        for name, spec in TECHNIQUES.items():
            layers = mlp([width] * (depth + 1) + [10])
            initspec_torch.apply(policy(spec, name), layers, seed=seed)
            logits, hidden = forward(layers, x0, act)
            nn.functional.cross_entropy(logits, labels).backward()
            last = hidden[-1].detach()
            out[act, name] = Signal(
                np.array([h.detach().std().item() for h in hidden]),
                np.array([layer.weight.grad.double().norm().item() for layer in layers[:-1]]),
                (last.abs() > 0.99).double().mean().item() if act == "tanh" else float("nan"),
            )
    return out


def report_signal(sig: dict[tuple[str, str], Signal], depth: int, width: int, batch: int) -> None:
    print(
        f"2. SIGNAL PROPAGATION: {depth} hidden layers of width {width} (+ a 10-way output), zero "
        f"biases, {batch} inputs ~ N(0, 1), cross-entropy on random labels"
    )
    print(
        "Forward: std of the activations after the nonlinearity at layers 1, 10, 20, 30 (input std 1).\n"
        "Backward: norm of the weight gradient |dL/dW| at layer 1 and at layer 30."
    )
    marks = [m for m in (1, 10, 20, 30) if m <= depth]
    if depth not in marks:
        marks.append(depth)
    rows = []
    for (act, name), s in sig.items():
        a, g = s.act_std, s.grad_norm
        rows.append(
            (
                act,
                name,
                *(f"{a[m - 1]:.3g}" for m in marks),
                f"{a[-1] / a[0]:.3g}" if a[0] > 0 else "0/0",
                f"{g[0]:.3g}",
                f"{g[-1]:.3g}",
            )
        )
    head = (
        "act",
        "init",
        *(f"std L{m}" for m in marks),
        f"std L{depth}/L1",
        "|dW| L1",
        f"|dW| L{depth}",
    )
    print(table(head, rows))
    he, small = sig["relu", "He"].act_std, sig["relu", "N(0, 0.01)"].act_std
    xav_r = sig["relu", "Xavier"].act_std
    xt, ht = sig["tanh", "Xavier"], sig["tanh", "He"]
    zero = max(sig[a, "zero"].act_std.max() for a in ACTIVATIONS)
    zero_g = max(sig[a, "zero"].grad_norm.max() for a in ACTIVATIONS)
    print(
        f"measured: zero init: max activation std over all layers {zero:.3g}, max weight "
        f"gradient norm {zero_g:.3g}: nothing flows either way."
    )
    print(
        f"measured: ReLU + He: activation std {he[0]:.3f} at layer 1, {he[-1]:.3f} at layer {depth} "
        f"(ratio {he[-1] / he[0]:.2f}): He keeps the ReLU signal alive."
    )
    print(
        f"measured: ReLU + N(0, 0.01): activation std {small[0]:.3g} -> {small[-1]:.3g}, collapsed by a "
        f"factor of {small[0] / small[-1]:.3g}; each layer multiplies it by about "
        f"0.01 * sqrt({width} / 2) = {0.01 * math.sqrt(width / 2):.3f}."
    )
    print(
        f"measured: N(0, 0.01): the largest weight gradient norm of any layer is "
        f"{sig['tanh', 'N(0, 0.01)'].grad_norm.max():.3g} (tanh) and "
        f"{sig['relu', 'N(0, 0.01)'].grad_norm.max():.3g} (ReLU): the gradients vanish too."
    )
    print(
        f"measured: ReLU + Xavier: activation std {xav_r[0]:.3g} -> {xav_r[-1]:.3g}, down by "
        f"{xav_r[0] / xav_r[-1]:.3g} (the prediction: Xavier has gain 1 and ReLU zeroes half the "
        f"variance, 1/sqrt(2) per layer, {2 ** ((depth - 1) / 2):.3g} over {depth - 1} layers)."
    )
    spread = lambda g: g.max() / g.min()  # noqa: E731
    print(
        f"measured: tanh + Xavier: activation std {xt.act_std[0]:.3f} -> {xt.act_std[-1]:.3f}; "
        f"weight gradient norms within a factor {spread(xt.grad_norm):.2f} across all {depth} "
        f"layers (layer 1: {xt.grad_norm[0]:.3g}, layer {depth}: {xt.grad_norm[-1]:.3g})."
    )
    print(
        f"measured: tanh + He: activation std {ht.act_std[0]:.3f} -> {ht.act_std[-1]:.3f}, "
        f"{100 * ht.saturated:.1f}% of the last layer's outputs beyond |0.99|; weight gradient norms "
        f"spread by a factor {spread(ht.grad_norm):.2f} (layer 1: {ht.grad_norm[0]:.3g}, layer "
        f"{depth}: {ht.grad_norm[-1]:.3g}): gain sqrt(2) makes tanh's gradients grow towards the input."
    )
    print()


def plot_signal(sig: dict[tuple[str, str], Signal], out: pathlib.Path, width: int) -> pathlib.Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 8), sharex=True)
    for col, act in enumerate(ACTIVATIONS):
        for row, (field, ylabel) in enumerate(
            (("act_std", "activation std (log scale)"), ("grad_norm", "|dL/dW| (log scale)"))
        ):
            ax = axes[row, col]
            for name in TECHNIQUES:
                y = getattr(sig[act, name], field)
                if np.all(y == 0):  # a log axis cannot show 0: say so in the legend
                    ax.plot(
                        [],
                        [],
                        color=COLORS[name],
                        ls="--",
                        label=f"{name}: exactly 0 at every layer",
                    )
                    continue
                ax.semilogy(
                    np.arange(1, len(y) + 1), y, marker="o", ms=3, color=COLORS[name], label=name
                )
            depth = len(y)
            what = "forward: activation std" if row == 0 else "backward: weight-gradient norm"
            ax.set_title(f"{act}, {what}")
            ax.set_ylabel(ylabel)
            ax.grid(True, which="major", alpha=0.3)
            ax.legend(fontsize=8, loc="lower left" if row == 0 else "best")
            if row == 1:
                ax.set_xlabel("hidden layer")
    fig.suptitle(
        f"Signal propagation in a {depth}-layer MLP (width {width}, zero biases, inputs ~ N(0, 1))"
    )
    fig.tight_layout()
    path = out / "signal_propagation.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# 3. Training ------------------------------------------------------------------------------


@dataclasses.dataclass
class Run:
    act: str
    technique: str
    seed: int
    losses: list[float]  # mean training loss per epoch
    accuracy: float  # final test accuracy
    unit_spread: list[float]  # per hidden layer: max |w_i - w_j| over its units' incoming weights
    weight_change: list[float]  # per hidden layer: max |W_final - W_init|
    dead_fraction: float  # hidden ReLU units that output 0 for every test input


def digits(seed: int = 0) -> tuple[torch.Tensor, ...]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.25, random_state=seed, stratify=y)
    mean, std = x_tr.mean(0), x_tr.std(0) + 1e-8  # standardize with the training statistics
    f = lambda a: torch.tensor((a - mean) / std, dtype=torch.float32)  # noqa: E731
    return f(x_tr), torch.tensor(y_tr), f(x_te), torch.tensor(y_te)


def unit_spread(weight: torch.Tensor) -> float:
    """The largest difference between two units' incoming weight vectors (rows of a torch
    Linear weight), over all pairs: 0 exactly when all units of the layer are identical."""
    return (weight.max(dim=0).values - weight.min(dim=0).values).abs().max().item()


def train(
    act: str,
    technique: str,
    spec: dict[str, object],
    seed: int,
    data: tuple[torch.Tensor, ...],
    epochs: int,
    hidden: list[int],
    lr: float,
    batch: int,
) -> Run:
    x_tr, y_tr, x_te, y_te = data
    layers = mlp([x_tr.shape[1], *hidden, 10])
    initspec_torch.apply(policy(spec, technique), layers, seed=seed)
    start = [layer.weight.detach().clone() for layer in layers[:-1]]
    params = list(layers.parameters())
    # SGD with momentum 0.9, as torch.optim.SGD computes it (written out: importing
    # torch.optim costs seconds, more than training these models)
    velocity = [torch.zeros_like(p) for p in params]
    order = torch.Generator().manual_seed(seed)
    losses = []
    for _ in range(epochs):
        perm = torch.randperm(len(x_tr), generator=order)
        total = 0.0
        for i in range(0, len(x_tr), batch):
            idx = perm[i : i + batch]
            logits, _ = forward(layers, x_tr[idx], act)
            loss = nn.functional.cross_entropy(logits, y_tr[idx])
            grads = torch.autograd.grad(loss, params)
            with torch.no_grad():
                for p, v, g in zip(params, velocity, grads, strict=True):
                    v.mul_(0.9).add_(g)
                    p.sub_(lr * v)
            total += loss.item() * len(idx)
        losses.append(total / len(x_tr))
    with torch.no_grad():
        logits, acts = forward(layers, x_te, act)
        accuracy = (logits.argmax(1) == y_te).float().mean().item()
        dead = (
            sum(int((h <= 0).all(0).sum()) for h in acts) / sum(h.shape[1] for h in acts)
            if act == "relu"
            else float("nan")
        )
    return Run(
        act,
        technique,
        seed,
        losses,
        accuracy,
        [unit_spread(layer.weight.detach()) for layer in layers[:-1]],
        [
            (layer.weight.detach() - w0).abs().max().item()
            for layer, w0 in zip(layers[:-1], start, strict=True)
        ],
        dead,
    )


def report_training(
    runs: list[Run],
    constant: list[Run],
    epochs: int,
    hidden: list[int],
    lr: float,
    batch: int,
    n_train: int,
    n_test: int,
) -> None:
    seeds = sorted({r.seed for r in runs})
    print(
        f"3. TRAINING: MLP 64-{'-'.join(map(str, hidden))}-10 on sklearn digits "
        f"({n_train} train / {n_test} test images), SGD lr {lr} momentum 0.9, batch {batch}, "
        f"{epochs} epochs, seeds {seeds}"
    )
    rows = []
    for act in ACTIVATIONS:
        for name in TECHNIQUES:
            rs = [r for r in runs if r.act == act and r.technique == name]
            acc = np.array([r.accuracy for r in rs]) * 100
            loss = np.array([r.losses[-1] for r in rs])
            reach = [
                next((i + 1 for i, v in enumerate(r.losses) if v < LOSS_MARK), None) for r in rs
            ]
            dead = np.mean([r.dead_fraction for r in rs]) if act == "relu" else float("nan")
            rows.append(
                (
                    act,
                    name,
                    f"{acc.mean():.1f} +- {acc.std(ddof=1) if len(acc) > 1 else 0.0:.1f}",
                    f"{loss.mean():.3g}",
                    " ".join("-" if e is None else str(e) for e in reach),
                    "-" if math.isnan(dead) else f"{100 * dead:.0f}%",
                )
            )
    print(
        table(
            (
                "act",
                "init",
                "test accuracy % (mean +- std)",
                "final train loss",
                f"epoch loss < {LOSS_MARK} (per seed)",
                "dead ReLU units",
            ),
            rows,
        )
    )
    print(
        f"(std over seeds, ddof=1; '-': loss never below {LOSS_MARK}; a dead unit outputs 0 for "
        "every test image)"
    )
    print()
    print("Symmetry: the largest difference between two hidden units' incoming weight vectors of a")
    print(
        "layer (0: all units of the layer are identical), after training, over all layers and seeds;"
    )
    print(
        f"'{CONSTANT_NAME}' is an extra run, every weight 0.05, to see symmetry with weights that move:"
    )
    rows = []
    for act in ACTIVATIONS:
        for name in [*TECHNIQUES, CONSTANT_NAME]:
            rs = [r for r in [*runs, *constant] if r.act == act and r.technique == name]
            spread = max(max(r.unit_spread) for r in rs)
            change = max(max(r.weight_change) for r in rs)
            acc = np.mean([r.accuracy for r in rs]) * 100
            rows.append((act, name, f"{spread:.3g}", f"{change:.3g}", f"{acc:.1f}"))
    print(
        table(
            ("act", "init", "max unit difference", "max |W_trained - W_init|", "test acc %"), rows
        )
    )
    zero = [r for r in runs if r.technique == "zero"]
    spread = max(max(r.unit_spread) for r in zero)
    change = max(max(r.weight_change) for r in zero)
    best = max(r.accuracy for r in zero) * 100
    print(
        f"measured: zero init symmetry: max unit difference after training = {spread!r} "
        f"(all hidden layers, {len(zero)} runs); hidden weights moved by {change!r}; "
        f"best test accuracy {best:.1f}% (chance: 10%)."
    )
    print(
        "  With zero weights every hidden unit computes the same output and gets the same\n"
        "  gradient - here exactly 0, as each layer's gradient passes through the zero weights\n"
        "  above it - so only the output bias learns: the model predicts class frequencies."
    )
    c_spread = max(max(r.unit_spread) for r in constant)
    c_change = max(max(r.weight_change) for r in constant)
    c_acc = np.mean([r.accuracy for r in constant]) * 100
    print(
        f"measured: constant init symmetry: max unit difference after training = {c_spread!r}, "
        f"while the weights moved by up to {c_change:.3g}: each layer trains as a single unit "
        f"copied {hidden[0]} times (mean test accuracy {c_acc:.1f}%)."
    )
    for act in ACTIVATIONS:
        acc = {
            n: np.mean([r.accuracy for r in runs if r.act == act and r.technique == n]) * 100
            for n in TECHNIQUES
        }
        print(
            f"measured: {act}, mean test accuracy: "
            + ", ".join(f"{n} {a:.1f}%" for n, a in acc.items())
        )
    print()


def plot_training(runs: list[Run], out: pathlib.Path, epochs: int) -> pathlib.Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    ep = np.arange(1, epochs + 1)
    for ax, act in zip(axes, ACTIVATIONS, strict=True):
        for name in TECHNIQUES:
            curves = np.array([r.losses for r in runs if r.act == act and r.technique == name])
            acc = np.mean([r.accuracy for r in runs if r.act == act and r.technique == name]) * 100
            ax.plot(ep, curves.mean(0), color=COLORS[name], label=f"{name} (test acc {acc:.1f}%)")
            ax.fill_between(ep, curves.min(0), curves.max(0), color=COLORS[name], alpha=0.2)
        ax.set_title(f"{act}: MLP 64-64-64-10 on digits, {len(curves)} seeds")
        ax.set_xlabel("epoch")
        ax.set_yscale("log")
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("training loss (cross-entropy, log scale)")
    fig.suptitle("Training loss by initialization: mean over seeds, band = min..max")
    fig.tight_layout()
    path = out / "training_loss.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--out",
        type=pathlib.Path,
        default=HERE / "output",
        help="where the PNGs go (default examples/output/)",
    )
    parser.add_argument(
        "--small", action="store_true", help="tiny sizes and epochs, for the smoke test"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # tiny matrices: one thread is fastest (and avoids oversubscription)
    t0 = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)

    var = variances(args.seed)

    depth = 30
    width, batch = (128, 256) if args.small else (256, 1000)
    sig = signal_propagation(depth, width, batch, args.seed)
    report_signal(sig, depth, width, batch)

    data = digits()
    hidden = [64, 64]
    epochs, lr, mb = (2, 0.05, 64) if args.small else (40, 0.05, 64)
    seeds = [args.seed + i for i in range(3)]
    runs = [
        train(act, name, spec, s, data, epochs, hidden, lr, mb)
        for act in ACTIVATIONS
        for name, spec in TECHNIQUES.items()
        for s in seeds
    ]
    constant = [
        train(
            act, CONSTANT_NAME, {"kind": "constant", "value": 0.05}, s, data, epochs, hidden, lr, mb
        )
        for act in ACTIVATIONS
        for s in seeds
    ]
    report_training(runs, constant, epochs, hidden, lr, mb, len(data[0]), len(data[2]))

    paths = [plot_signal(sig, args.out, width), plot_training(runs, args.out, epochs)]
    summary = {
        "variances": var,
        "signal": {
            f"{act}/{name}": {"act_std": s.act_std.tolist(), "grad_norm": s.grad_norm.tolist()}
            for (act, name), s in sig.items()
        },
        "training": [
            {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()}
            for row in map(dataclasses.asdict, [*runs, *constant])
        ],
    }
    paths.append(args.out / "four_techniques.json")
    paths[-1].write_text(json.dumps(summary, indent=1))
    for p in paths:
        print(f"wrote {p}")
    print(f"done in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
