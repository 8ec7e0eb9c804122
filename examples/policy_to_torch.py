"""Load a JSON init policy, apply it to a PyTorch model, print what every parameter received.

    python examples/policy_to_torch.py                       # every policy in examples/policies/
    python examples/policy_to_torch.py examples/policies/relu_mlp.json
    python examples/policy_to_torch.py my_policy.json --model gpt2 --json

Each policy in examples/policies/ is paired with a small model it is written for (``MODELS``
below; ``--model`` picks another). After ``initspec_torch.apply`` the script measures every
initialized tensor and compares its mean and std with the exact moments of its plan: a
policy's report says what each parameter received, the check shows it did.
"""

from __future__ import annotations

import argparse
import math
import pathlib
import sys
from collections.abc import Callable

import initspec_torch
import torch
from torch import nn

import initspec

HERE = pathlib.Path(__file__).parent
POLICIES = HERE / "policies"


# Models ----------------------------------------------------------------------------------


def mlp(width: int) -> nn.Module:
    """784 -> width -> width -> 10 with ReLUs; the output layer is called ``head``."""
    model = nn.Sequential()
    model.add_module("fc1", nn.Linear(784, width))
    model.add_module("act1", nn.ReLU())
    model.add_module("fc2", nn.Linear(width, width))
    model.add_module("act2", nn.ReLU())
    model.add_module("head", nn.Linear(width, 10))
    return model


class Block(nn.Module):
    """A GPT-2 block with HF's names (Linear in place of HF's Conv1D)."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(d)
        self.attn = nn.Module()
        self.attn.c_attn = nn.Linear(d, 3 * d)
        self.attn.c_proj = nn.Linear(d, d)
        self.ln_2 = nn.LayerNorm(d)
        self.mlp = nn.Module()
        self.mlp.c_fc = nn.Linear(d, 4 * d)
        self.mlp.c_proj = nn.Linear(4 * d, d)


class GPT2Like(nn.Module):
    """The parameter structure of GPT-2 (no forward: only the weights matter here).

    ``lm_head`` is tied to ``transformer.wte``, as in GPT-2: the report shows it once.
    """

    def __init__(self, n_layer: int = 12, d: int = 768, vocab: int = 50257, ctx: int = 1024):
        super().__init__()
        self.transformer = nn.Module()
        self.transformer.wte = nn.Embedding(vocab, d)
        self.transformer.wpe = nn.Embedding(ctx, d)
        self.transformer.h = nn.ModuleList(Block(d) for _ in range(n_layer))
        self.transformer.ln_f = nn.LayerNorm(d)
        self.lm_head = nn.Linear(d, vocab, bias=False)
        self.lm_head.weight = self.transformer.wte.weight


def gpt2(small: bool = False) -> nn.Module:
    return (
        GPT2Like(n_layer=2, d=64, vocab=512, ctx=64)
        if small
        else GPT2Like(n_layer=6, d=256, vocab=8192, ctx=256)
    )


class BasicBlock(nn.Module):
    """torchvision's ResNet BasicBlock (conv-bn-relu-conv-bn + identity)."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(x + self.bn2(self.conv2(out)))


def small_resnet(small: bool = False) -> nn.Module:
    c = 16 if small else 64
    return nn.Sequential(
        nn.Conv2d(3, c, 3, padding=1, bias=False),
        nn.BatchNorm2d(c),
        nn.ReLU(),
        BasicBlock(c),
        BasicBlock(c),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(c, 10),
    )


MODELS: dict[str, Callable[[bool], nn.Module]] = {
    "mlp": lambda small: mlp(64 if small else 256),
    "gpt2": gpt2,
    "resnet": small_resnet,
}
DEFAULT_MODEL = {
    "relu_mlp": "mlp",
    "gpt2_depth_scaled": "gpt2",
    "resnet_zero_residual": "resnet",
}


# Checking what was written ----------------------------------------------------------------


def check(report: initspec.Report, model: nn.Module) -> tuple[int, list[str]]:
    """Compare each written tensor's mean and std with its plan's exact moments.

    Tolerance: 5 standard errors of the sample mean / sample std at the tensor's size
    (std of the sample std ~ sigma * sqrt((kurtosis - 1) / (4 n)); kurtosis <= 3 for the
    plans used here, so sigma / sqrt(2 n) bounds it), plus float32 rounding.
    """
    tensors = dict(model.named_parameters(remove_duplicate=False))
    bad: list[str] = []
    checked = 0
    for row in report.rows():  # the exact mean and std of each plan, as numbers
        if row["status"] != "init":
            continue
        t = tensors[row["path"]].detach().double()
        n = t.numel()
        mean, std = t.mean().item(), (t.std(correction=0).item() if n > 1 else 0.0)
        tol_mean = 5 * row["std"] / math.sqrt(n) + 1e-6
        tol_std = 5 * row["std"] / math.sqrt(2 * n) + 1e-6 * max(row["std"], 1.0)
        checked += 1
        if abs(mean - row["mean"]) > tol_mean or abs(std - row["std"]) > tol_std:
            bad.append(
                f"{row['path']}: mean {mean:.4g} std {std:.4g}, "
                f"plan mean {row['mean']:.4g} std {row['std']:.4g}"
            )
    return checked, bad


def run(policy_path: pathlib.Path, model_name: str, seed: int, small: bool, as_json: bool) -> int:
    policy = initspec.load_policy(policy_path)
    model = MODELS[model_name](small)
    n_params = sum(p.numel() for p in model.parameters())
    report = initspec_torch.apply(policy, model, seed=seed)
    print(
        f"== policy {policy.name!r} ({policy_path.name}) on model {model_name!r}, "
        f"{n_params:,} parameters, seed {report.resolution.seed}"
    )
    if policy.description:
        print(f"   {policy.description}")
    print(report.to_json() if as_json else report.table())
    checked, bad = check(report, model)
    if bad:
        print(f"check: {len(bad)} of {checked} initialized tensors are off their plan:")
        for line in bad:
            print(f"  {line}")
        return 1
    print(
        f"check: all {checked} initialized tensors match their plan's mean and std "
        f"(within 5 standard errors)"
    )
    print()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "policies",
        nargs="*",
        type=pathlib.Path,
        help="policy files (default: examples/policies/*.json)",
    )
    parser.add_argument("--model", choices=sorted(MODELS), help="the model to apply them to")
    parser.add_argument("--seed", type=int, default=None, help="default: the policy's seed, else 0")
    parser.add_argument("--small", action="store_true", help="small models (for the smoke test)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    paths = args.policies or sorted(POLICIES.glob("*.json"))
    status = 0
    for path in paths:
        name = args.model or DEFAULT_MODEL.get(path.stem, "mlp")
        try:
            status |= run(path, name, args.seed, args.small, args.json)
        except initspec.InitSpecError as exc:
            print(f"error: {path}: {exc}", file=sys.stderr)
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
