"""Port a model's initialization from PyTorch to Flax: one policy, two frameworks, same init.

    python examples/port_to_flax.py
    python examples/port_to_flax.py --policy examples/policies/relu_mlp.json --seed 3

A small conv net (conv1, conv2, global average pool, fc1, head) is written twice: in torch
(weights (out, in, kh, kw) and (out, in)) and as its Flax linen twin (kernels (kh, kw, in, out)
and (in, out)). For the example policy and for the ``torch-defaults`` preset the script

1. applies the policy to both (``initspec_torch.apply``, ``initspec_jax.apply``) with each
   framework's native generator, and prints each parameter's plan and the std measured in
   torch and in Flax side by side: the same distributions despite the different layouts;
2. draws the same parameters from the portable stream, which gives the same numbers in
   every framework for the same (seed, path), and prints the largest difference between the
   torch and Flax weights (after the layout transpose) and between the two models' outputs
   on one input batch: through the adapters' ``apply(..., rng="portable")`` when they have
   it, and with ``initspec.sample(..., rng="portable")`` per parameter, both twins keyed by
   the torch name.
"""

from __future__ import annotations

import argparse
import inspect
import math
import pathlib
import sys
from dataclasses import dataclass
from typing import Any

import flax.linen as fnn
import initspec_jax
import initspec_torch
import jax
import jax.numpy as jnp
import numpy as np
import torch
from torch import nn

import initspec

HERE = pathlib.Path(__file__).parent
DEFAULT_POLICY = HERE / "policies" / "relu_mlp.json"


# The model and its twin ----------------------------------------------------------------------


class TorchNet(nn.Module):
    def __init__(
        self, c_in: int = 3, c1: int = 16, c2: int = 32, hidden: int = 64, classes: int = 10
    ):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c1, 3, padding=1)
        self.conv2 = nn.Conv2d(c1, c2, 3, padding=1)
        self.fc1 = nn.Linear(c2, hidden)
        self.head = nn.Linear(hidden, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (N, C, H, W)
        x = torch.relu(self.conv1(x))
        x = torch.relu(self.conv2(x))
        x = x.mean(dim=(2, 3))
        return self.head(torch.relu(self.fc1(x)))


class FlaxNet(fnn.Module):
    c1: int = 16
    c2: int = 32
    hidden: int = 64
    classes: int = 10

    @fnn.compact
    def __call__(self, x: jax.Array) -> jax.Array:  # x: (N, H, W, C)
        x = fnn.relu(fnn.Conv(self.c1, (3, 3), padding="SAME", name="conv1")(x))
        x = fnn.relu(fnn.Conv(self.c2, (3, 3), padding="SAME", name="conv2")(x))
        x = x.mean(axis=(1, 2))
        return fnn.Dense(self.classes, name="head")(fnn.relu(fnn.Dense(self.hidden, name="fc1")(x)))


def torch_name(flax_canonical: str) -> str:
    """The torch twin of a Flax parameter: ``conv1.kernel`` -> ``conv1.weight``."""
    stem, _, leaf = flax_canonical.rpartition(".")
    return f"{stem}.{'weight' if leaf == 'kernel' else leaf}"


def to_torch_layout(a: np.ndarray) -> np.ndarray:
    """A Flax kernel in torch's layout: (*k, in, out) -> (out, in, *k); 1-D arrays as they are."""
    if a.ndim < 2:
        return a
    return a.transpose(a.ndim - 1, a.ndim - 2, *range(a.ndim - 2))


def flax_leaves(params: Any) -> dict[str, np.ndarray]:
    """Flax params by canonical dotted path (``conv1.kernel``)."""
    flat = jax.tree_util.tree_flatten_with_path(params["params"])[0]
    return {".".join(str(k.key) for k in path): np.asarray(v) for path, v in flat}


def set_flax_leaves(params: Any, values: dict[str, np.ndarray]) -> Any:
    def put(path: Any, leaf: Any) -> Any:
        name = ".".join(str(k.key) for k in path)
        return jnp.asarray(values[name], dtype=leaf.dtype) if name in values else leaf

    return {"params": jax.tree_util.tree_map_with_path(put, params["params"])}


# 1. Native streams: the same distributions ---------------------------------------------------


@dataclass
class Twins:
    """The two models' sizes, and an input batch in each framework's layout."""

    c_in: int
    c1: int
    c2: int
    hidden: int
    classes: int
    x_nchw: torch.Tensor

    @property
    def x_nhwc(self) -> jax.Array:
        return jnp.asarray(self.x_nchw.numpy().transpose(0, 2, 3, 1))

    def torch_model(self) -> TorchNet:
        return TorchNet(self.c_in, self.c1, self.c2, self.hidden, self.classes)

    def flax_model(self) -> tuple[FlaxNet, Any]:
        """The Flax twin and its (abstract) variables: ``jax.eval_shape`` gives shapes and
        dtypes without drawing Flax's own initialization, which the policy replaces."""
        model = FlaxNet(self.c1, self.c2, self.hidden, self.classes)
        return model, jax.eval_shape(lambda: model.init(jax.random.key(0), self.x_nhwc))


def side_by_side(policy: Any, seed: int, twins: Twins) -> tuple[initspec.Report, initspec.Report]:
    tmodel = twins.torch_model()
    fmodel, variables = twins.flax_model()
    x_nhwc = twins.x_nhwc
    t_report = initspec_torch.apply(policy, tmodel, seed=seed)
    f_params, f_report = initspec_jax.apply(
        policy, variables, seed=seed, model=fmodel, model_args=(x_nhwc,)
    )
    t_values = {n: p.detach().numpy() for n, p in tmodel.named_parameters()}
    f_values = flax_leaves(f_params)
    t_plans = {rp.info.path: rp for rp in t_report.resolution.params}
    rows = []
    worst = 0.0
    f_plans = {torch_name(rp.info.path): rp for rp in f_report.resolution.params}
    assert sorted(f_plans) == sorted(t_plans), "the twins must have the same parameters"
    for tpath, trp in t_plans.items():  # in torch's order
        rp = f_plans[tpath]
        fpath = rp.info.path
        t, f = t_values[tpath], f_values[fpath]
        assert trp.plan is not None and rp.plan is not None
        exact = trp.plan.std
        same_plan = trp.plan.describe() == rp.plan.describe()
        # tolerance for a sample std: sigma * sqrt(2 / n) is one standard error (kurtosis <= 3)
        se = exact * math.sqrt(2 / t.size) if t.size > 1 else 0.0
        z = max(abs(t.std() - exact), abs(f.std() - exact)) / se if se else 0.0
        worst = max(worst, z)
        rows.append(
            (
                tpath,
                "x".join(map(str, t.shape)),
                fpath,
                "x".join(map(str, f.shape)),
                trp.plan.describe().split("  fan_in")[0],
                "yes" if same_plan else "NO",
                f"{exact:.5f}",
                f"{t.std():.5f}",
                f"{f.std():.5f}",
            )
        )
    head = (
        "torch",
        "shape",
        "flax",
        "shape",
        "plan (torch)",
        "same plan",
        "exact std",
        "torch std",
        "flax std",
    )
    print(table(head, rows))
    print(
        f"largest deviation of a measured std from the plan: {worst:.2f} standard errors "
        f"(native streams: torch.Generator and jax.random draw different numbers)"
    )
    return t_report, f_report


# 2. Portable stream: the same numbers ---------------------------------------------------------


def adapters_have_portable() -> bool:
    """Whether both adapters accept ``rng="portable"`` in ``apply``."""
    t = "rng" in inspect.signature(initspec_torch.apply).parameters
    j = "rng" in inspect.signature(initspec_jax.apply).parameters
    return t and j


def portable_per_parameter(
    t_report: initspec.Report, f_report: initspec.Report, seed: int
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Each parameter drawn with ``initspec.sample(..., rng="portable")`` in its own layout.

    Both twins are keyed by the torch path (``conv1.weight`` for the Flax ``conv1/kernel``
    too): the stream's key is (seed, path), so twins need one name to draw the same numbers.
    """
    t_out: dict[str, np.ndarray] = {}
    f_out: dict[str, np.ndarray] = {}
    for report, out in ((t_report, t_out), (f_report, f_out)):
        for rp in report.resolution.to_sample():
            assert rp.rule is not None and rp.spec is not None
            if rp.rule.gain != 1.0 or rp.rule.depth_scale is not None:
                raise SystemExit(
                    f"{rp.info.path}: this example draws specs without gain / depth_scale"
                )
            info = rp.info
            out[info.path] = initspec.sample(
                rp.spec,
                info.shape,
                info.layout,
                seed=seed,
                dtype="float32",
                path=torch_name(info.path),
                context=info.context,
                rng="portable",
            )
    return t_out, f_out


def max_weight_diff(tmodel: TorchNet, f_params: Any) -> float:
    """The largest |torch - Flax| over all parameters, Flax kernels transposed to torch's layout."""
    t_values = {n: p.detach().numpy() for n, p in tmodel.named_parameters()}
    worst = 0.0
    for fpath, f in flax_leaves(f_params).items():
        t = t_values[torch_name(fpath)]
        if t.size:
            worst = max(worst, float(np.abs(to_torch_layout(f) - t).max()))
    return worst


def same_numbers(
    policy: Any, seed: int, twins: Twins, reports: tuple[initspec.Report, initspec.Report]
) -> None:
    x_nchw, x_nhwc = twins.x_nchw, twins.x_nhwc
    print("portable stream:")
    if adapters_have_portable():
        tmodel = twins.torch_model()
        fmodel, variables = twins.flax_model()
        initspec_torch.apply(policy, tmodel, seed=seed, rng="portable")  # type: ignore[call-arg]
        f_params, _ = initspec_jax.apply(  # type: ignore[call-arg]
            policy, variables, seed=seed, model=fmodel, model_args=(x_nhwc,), rng="portable"
        )
        diff = max_weight_diff(tmodel, f_params)
        print(
            f"  adapters (initspec_torch.apply / initspec_jax.apply, rng='portable'): "
            f"max |torch weight - flax weight| = {diff!r}"
        )
        if diff != 0.0:
            print(
                "    (each adapter keys a parameter by its own canonical path, torch "
                "'conv1.weight' and Flax 'conv1.kernel': different keys, different numbers)"
            )
    else:
        print("  adapters: the adapters' apply has no rng='portable' yet")
    # One key per pair of twins: each parameter drawn with initspec.sample in its own layout.
    tmodel = twins.torch_model()
    fmodel, variables = twins.flax_model()
    t_vals, f_vals = portable_per_parameter(*reports, seed)
    with torch.no_grad():
        for name, p in tmodel.named_parameters():
            if name in t_vals:
                p.copy_(torch.from_numpy(t_vals[name]))
    f_params = set_flax_leaves(variables, f_vals)
    diff = max_weight_diff(tmodel, f_params)
    print(
        f"  keyed by the torch name (initspec.sample(..., path=<torch name>, rng='portable') "
        f"in each layout): max |torch weight - flax weight| = {diff!r}"
    )
    with torch.no_grad():
        y_torch = tmodel(x_nchw).numpy()
    y_flax = np.asarray(jax.jit(fmodel.apply)(f_params, x_nhwc))
    out_diff = float(np.abs(y_torch - y_flax).max())
    scale = float(np.abs(y_torch).max())
    print(
        f"  with those weights, max |torch(x) - flax(x)| on a batch of {x_nchw.shape[0]} inputs: "
        f"{out_diff:.3g} (outputs up to {scale:.3g})"
    )


def table(head: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
        for r in [head, *rows]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--policy", type=pathlib.Path, default=DEFAULT_POLICY)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--small",
        action="store_true",
        help="a smaller model whose layers share shapes: fewer JAX programs to compile (smoke test)",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    # --small: every layer 8 wide, so that kernels and biases share shapes (JAX compiles one
    # sampling program per primitive and shape: compiling dominates the run time here)
    c_in, c1, c2, hidden, classes = (8, 8, 8, 8, 8) if args.small else (3, 16, 32, 64, 10)
    x = torch.randn(8, c_in, 16, 16, generator=torch.Generator().manual_seed(args.seed))
    twins = Twins(c_in, c1, c2, hidden, classes, x)
    for label, policy in (
        (f"policy {args.policy.name}", initspec.load_policy(args.policy)),
        ("preset torch-defaults", initspec.preset("torch-defaults")),
    ):
        print(f"== {label}: torch model and its Flax twin, seed {args.seed}")
        reports = side_by_side(policy, args.seed, twins)
        same_numbers(policy, args.seed, twins, reports)
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
