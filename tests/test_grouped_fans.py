"""timm's grouped-conv fans (#16 item 3): ``fan_out_per_group`` reproduces
``_init_weight_goog`` (EfficientNet, MobileNet, MixNet: fan_out = k * k * out // groups),
tested against timm's own EfficientNet init."""

from __future__ import annotations

import math

import initspec_torch
import numpy as np
import pytest
import torch
from real_packages import import_timm
from scipy import stats
from torch import nn

import initspec
from initspec.specs import PlanContext

GOOG = {"kind": "kaiming_normal", "mode": "fan_out", "nonlinearity": "relu", "fan_out_per_group": True}


def test_fan_out_per_group_divides_by_the_groups() -> None:
    spec = initspec.parse(GOOG)
    depthwise = spec.plan((32, 1, 3, 3), "torch", PlanContext(groups=32))
    assert depthwise.fans == (9, 9) and math.isclose(depthwise.std, math.sqrt(2 / 9))
    plain = initspec.parse({**GOOG, "fan_out_per_group": False}).plan(
        (32, 1, 3, 3), "torch", PlanContext(groups=32)
    )
    assert plain.fans == (9, 288)  # torch's own fan_out: 32x too large, std sqrt(32)x too small
    with pytest.raises(initspec.SpecError, match="Keras has no initializer"):
        spec.to_keras()


def test_the_adapters_give_the_groups() -> None:
    conv = nn.Conv2d(16, 16, 3, groups=16)
    rows = initspec_torch.explain({"initspec": 1, "rules": [
        {"match": {"kind": "conv", "role": "kernel"}, "init": GOOG}, {"init": {"kind": "zeros"}},
    ]}, conv).rows()  # fmt: skip
    assert rows[0]["plan"].endswith("fan_in=9 fan_out=9")
    pytest.importorskip("flax")
    import initspec_jax
    from flax import nnx

    class Net(nnx.Module):
        def __init__(self) -> None:
            self.conv = nnx.Conv(16, 16, (3, 3), feature_group_count=16, rngs=nnx.Rngs(0))

    report = initspec_jax.explain({"initspec": 1, "rules": [
        {"match": {"kind": "conv", "role": "kernel"}, "init": GOOG}, {"init": {"kind": "zeros"}},
    ]}, Net())  # fmt: skip
    flax_rows = {r["path"]: r["plan"] for r in report.rows()}
    assert flax_rows["conv.kernel"] == rows[0]["plan"]


def test_timm_efficientnet_convs_follow_goog_init() -> None:
    """Every conv of a small timm EfficientNet: our plan's std equals timm's
    sqrt(2 / (k*k*out // groups)) (the depthwise convs included: torch's fans would make
    them 5-12x too small here), and our values and timm's own follow it (KS against the
    plan's CDF, Holm over the convs at 1e-4)."""
    timm = import_timm()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        theirs = timm.create_model("efficientnet_b0", pretrained=False, num_classes=10)
        ours = timm.create_model("efficientnet_b0", pretrained=False, num_classes=10)
    policy = {"initspec": 1, "rules": [
        {"match": {"kind": "conv", "role": "kernel"}, "init": GOOG},
        {"init": {"kind": "zeros"}, "match": {"kind": "conv"}},
    ]}  # fmt: skip
    report = initspec_torch.apply(policy, ours, seed=3)
    plans = {r.info.path: r.plan for r in report.resolution.params if r.plan is not None}
    modules = dict(theirs.named_modules())
    pvalues, grouped = [], 0
    for path, param in theirs.named_parameters():
        module = modules[path.rpartition(".")[0]]
        if not (isinstance(module, nn.Conv2d) and path.endswith("weight")):
            continue
        fan_out = module.kernel_size[0] * module.kernel_size[1] * module.out_channels
        fan_out //= module.groups
        grouped += module.groups > 1
        plan = plans[path]
        assert math.isclose(plan.std, math.sqrt(2.0 / fan_out), rel_tol=1e-12), path
        if param.numel() >= 200:
            mine = dict(ours.named_parameters())[path].detach().double().numpy().ravel()
            for values in (mine, param.detach().double().numpy().ravel()):
                pvalues.append(stats.kstest(values, plan.cdf).pvalue)
    assert grouped >= 10  # the depthwise convs this is about
    # Holm: the smallest of m p-values must exceed 1e-4 / m, and so on up.
    ordered = np.sort(pvalues)
    m = len(ordered)
    assert all(p > 1e-4 / (m - i) for i, p in enumerate(ordered)), ordered[:5]
