"""Plot what a policy gave a model: per-parameter histograms against the planned density,
and the planned and measured std of every layer.

    python examples/plot_init.py                  # writes init_histograms.png, init_std.png
    python examples/plot_init.py --out /tmp/plots --policy gpt2 --model gpt2

Needs matplotlib (``pip install 'initspec[plot]'``). The models are those of
``policy_to_torch.py``; the figures come from ``initspec.plot``.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

import initspec_torch
from policy_to_torch import DEFAULT_MODEL, MODELS, POLICIES

import initspec
import initspec.plot


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--policy",
        default=str(POLICIES / "relu_mlp.json"),
        help="a policy file or preset name (default: examples/policies/relu_mlp.json)",
    )
    parser.add_argument("--model", choices=sorted(MODELS), help="default: the policy's model")
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("."), help="folder")
    parser.add_argument("--seed", type=int, default=0, help="the seed (default: 0)")
    parser.add_argument("--small", action="store_true", help="the small model")
    args = parser.parse_args(argv)
    source = pathlib.Path(args.policy)
    policy = initspec.load_policy(source if source.suffix == ".json" else args.policy)
    model = MODELS[args.model or DEFAULT_MODEL.get(source.stem, "mlp")](args.small)
    report = initspec_torch.apply(policy, model, seed=args.seed)
    values = dict(model.named_parameters())
    args.out.mkdir(parents=True, exist_ok=True)
    hist = args.out / "init_histograms.png"
    initspec.plot.histograms(report, values, max_plots=12).savefig(hist, dpi=80)
    std = args.out / "init_std.png"
    initspec.plot.std_chart(report, values).savefig(std, dpi=80)
    print(report.table())
    print(f"wrote {hist} and {std}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
