"""muP (issue 20, item 3) against the real ``mup`` package (1.0.0): a policy's ``width``
section gives every parameter of an MLP and of a small transformer the init distribution
``mup.set_base_shapes(model, base)`` leaves on a torch-default model (with ``MuReadout``
heads), and ``report.lr_multipliers`` gives ``MuAdam``'s and ``MuSGD``'s per-parameter
learning rates and weight decays; the Flax twin gets the same plans and multipliers.

Statistics: each parameter's values, ours and mup's, are tested against our plan's CDF
with a one-sample Kolmogorov-Smirnov test; the p-values of all parameters (both sources)
are corrected with Holm at a family-wise 1e-4 (as PyTorch's init tests use 1e-4). A 2%
error in std is caught (the control below).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pytest
from scipy import stats

import initspec
from initspec import InitSpecError, InitSpecWarning

torch = pytest.importorskip("torch")
mup = pytest.importorskip("mup")
initspec_torch = pytest.importorskip("initspec_torch")
nn = torch.nn

ALPHA = 1e-4
BASE, WIDE = 64, 256


class MLP(nn.Module):
    def __init__(self, width: int, head: type = nn.Linear, **head_kw: Any) -> None:
        super().__init__()
        self.fc1 = nn.Linear(32, width)
        self.fc2 = nn.Linear(width, width)
        self.out = head(width, 10, **head_kw)


class Block(nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(d)
        self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))
        self.ln2 = nn.LayerNorm(d)
        self.fc1 = nn.Linear(d, 4 * d)
        self.fc2 = nn.Linear(4 * d, d)


class Transformer(nn.Module):
    def __init__(self, d: int, head: type = nn.Linear, vocab: int = 50, layers: int = 2) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        self.blocks = nn.ModuleList(Block(d) for _ in range(layers))
        self.ln = nn.LayerNorm(d)
        self.head = head(d, vocab)


def policy_for(base: nn.Module, **width: Any) -> dict[str, Any]:
    """torch-defaults with a width section whose base is ``base``'s shapes."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InitSpecWarning)
        shapes = initspec_torch.explain("torch-defaults", base).shapes()
    return {"initspec": 1, "extends": "torch-defaults", "width": {"base": shapes, **width}}


def with_mup(make: Any, seed: int = 0) -> nn.Module:
    """mup's way: the model with MuReadout heads, torch's default init, set_base_shapes."""
    torch.manual_seed(seed)
    model = make(WIDE, mup.MuReadout)
    mup.set_base_shapes(model, make(BASE, mup.MuReadout))
    return model


def ours(make: Any, seed: int = 1) -> tuple[nn.Module, initspec.Report]:
    model = make(WIDE, nn.Linear)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InitSpecWarning)
        report = initspec_torch.apply(policy_for(make(BASE, nn.Linear)), model, seed)
    return model, report


def mup_std(model: nn.Module, name: str, p: torch.Tensor) -> float:
    """The std mup's model has for ``name``, from torch's default init and mup's rescaling
    (``set_base_shapes``: ``MuReadout`` weight and bias x sqrt(width_mult); other Linear
    biases x sqrt(weight.infshape[1].width_mult())), written out from mup's source."""
    owner = model.get_submodule(name.rpartition(".")[0])
    leaf = name.rpartition(".")[2]
    if isinstance(owner, nn.LayerNorm):
        return 0.0  # ones, zeros
    if isinstance(owner, nn.Embedding):
        return 1.0
    bound = 1 / math.sqrt(owner.weight.shape[1])  # torch Linear: weight and bias alike
    if leaf == "weight":
        bound = math.sqrt(6 / ((1 + 5) * owner.weight.shape[1]))  # kaiming_uniform(a=sqrt 5)
    if isinstance(owner, mup.MuReadout):
        bound *= math.sqrt(owner.weight.infshape.width_mult())
    elif leaf == "bias":
        bound *= math.sqrt(owner.weight.infshape[1].width_mult())
    return bound / math.sqrt(3)


MODELS = [pytest.param(MLP, id="mlp"), pytest.param(Transformer, id="transformer")]


@pytest.mark.parametrize("make", MODELS)
def test_every_parameter_has_mups_init_distribution(make: Any) -> None:
    theirs = with_mup(make)
    mine, report = ours(make)
    plans = {p.info.path: p.plan for p in report.resolution.params}
    pvalues = []
    for name, p in theirs.named_parameters():
        plan = plans[name]
        assert plan is not None
        assert plan.std == pytest.approx(mup_std(theirs, name, p), rel=1e-12), name
        if plan.std == 0:  # constants: equal exactly
            assert torch.equal(p, dict(mine.named_parameters())[name]), name
            continue
        for values in (p, dict(mine.named_parameters())[name]):
            x = values.detach().double().numpy().ravel()
            pvalues.append((stats.kstest(x, plan.cdf).pvalue, name))
    # Holm: the k-th smallest p-value against alpha / (n - k)
    ranked = sorted(pvalues)
    for k, (pv, name) in enumerate(ranked):
        assert pv > ALPHA / (len(ranked) - k), (name, pv)


def test_a_two_percent_std_error_is_caught() -> None:
    """Control: mup's 512-wide hidden weight (262,144 values) against our plan with a 2%
    larger std. For a uniform the KS distance is then about 0.02 / 2 = 0.0098, far above
    the 1e-4 critical value sqrt(ln(2 / 1e-4) / (2 n)) = 0.0044."""
    torch.manual_seed(0)
    model = MLP(512, mup.MuReadout)
    mup.set_base_shapes(model, MLP(BASE, mup.MuReadout))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InitSpecWarning)
        report = initspec_torch.explain(policy_for(MLP(BASE)), MLP(512))
    plan = next(p.plan for p in report.resolution.params if p.info.path == "fc2.weight")
    assert plan is not None
    x = model.fc2.weight.detach().double().numpy().ravel()
    assert stats.kstest(x, plan.cdf).pvalue > ALPHA
    assert stats.kstest(x, plan.scaled(1.02).cdf).pvalue < ALPHA


@pytest.mark.parametrize("make", MODELS)
@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_lr_multipliers_are_mups(make: Any, optimizer: str) -> None:
    theirs = with_mup(make)
    _, report = ours(make)
    opt = (mup.MuAdam if optimizer == "adam" else mup.MuSGD)(
        theirs.parameters(), lr=1.0, weight_decay=1.0
    )
    names = {id(p): n for n, p in theirs.named_parameters()}
    got = report.lr_multipliers(optimizer)
    seen = set()
    for group in opt.param_groups:
        for p in group["params"]:
            name = names[id(p)]
            seen.add(name)
            assert got[name]["lr"] == pytest.approx(group["lr"], rel=1e-15), name
            assert got[name]["weight_decay"] == pytest.approx(group["weight_decay"], rel=1e-15)
    assert seen == set(got)
    head = "out" if make is MLP else "head"
    # MuReadout's forward divides its input by width_mult
    assert got[f"{head}.weight"]["output_mult"] == 1 / theirs.get_submodule(head).width_mult()
    assert all(v["output_mult"] is None for k, v in got.items() if k != f"{head}.weight")


def test_readout_zero_init_is_mups() -> None:
    torch.manual_seed(0)
    theirs = MLP(WIDE, mup.MuReadout, readout_zero_init=True)
    mup.set_base_shapes(theirs, MLP(BASE, mup.MuReadout, readout_zero_init=True))
    mine = MLP(WIDE)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InitSpecWarning)
        initspec_torch.apply(policy_for(MLP(BASE), readout_zero_init=True), mine)
    assert torch.equal(mine.out.weight, theirs.out.weight) and not mine.out.weight.any()
    assert torch.equal(mine.out.bias, theirs.out.bias)
    assert mine.fc2.weight.any()


def test_flax_twin_gets_the_same_plans_and_multipliers() -> None:
    jax = pytest.importorskip("jax")
    import flax.linen as fnn
    import initspec_jax

    class FlaxMLP(fnn.Module):
        width: int

        @fnn.compact
        def __call__(self, x: Any) -> Any:
            x = fnn.Dense(self.width, name="fc1")(x)
            x = fnn.Dense(self.width, name="fc2")(x)
            return fnn.Dense(10, name="out")(x)

    x = np.ones((1, 32), np.float32)
    # shapes only: explain draws nothing
    base = jax.eval_shape(lambda: FlaxMLP(BASE).init(jax.random.key(0), x))
    wide = jax.eval_shape(lambda: FlaxMLP(WIDE).init(jax.random.key(0), x))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InitSpecWarning)
        shapes = initspec_jax.explain("torch-defaults", (FlaxMLP(BASE), base)).shapes()
        pol = {"initspec": 1, "extends": "torch-defaults", "width": {"base": shapes}}
        flax_report = initspec_jax.explain(pol, (FlaxMLP(WIDE), wide))
    _, torch_report = ours(MLP)
    torch_plans = {p.info.path: p.plan for p in torch_report.resolution.params}
    for p in flax_report.resolution.params:
        name = p.info.path.replace(".kernel", ".weight")
        assert p.plan is not None and p.plan.std == pytest.approx(torch_plans[name].std, rel=1e-12)
    for optimizer in ("adam", "sgd"):
        flax_m = {
            k.replace(".kernel", ".weight"): v
            for k, v in flax_report.lr_multipliers(optimizer).items()
        }
        assert flax_m == torch_report.lr_multipliers(optimizer)


def test_bad_width_input_names_rule_parameter_and_numbers_and_writes_nothing() -> None:
    model = MLP(96)
    before = {k: v.detach().numpy().tobytes() for k, v in model.state_dict().items()}
    cases = [
        (
            policy_for(MLP(BASE)),
            [
                "fc2.weight (shape (96, 96)",
                "rule #8 linear/conv weight",
                "96 is not a whole multiple of its base 64",
            ],
        ),
        (
            {**policy_for(MLP(BASE)), "width": {"base": {"fc1.weight": [64, 32]}}},
            ["fc1.bias", "width.base has no shape for 'fc1.bias'"],
        ),
        (
            {
                **policy_for(MLP(BASE)),
                "width": {"base": {**policy_for(MLP(96))["width"]["base"], "fc1.bias": [96, 1]}},
            },
            ["fc1.bias", "[96, 1] (2 dims)", "[96] (1 dims)"],
        ),
    ]
    for policy, needles in cases:
        with pytest.raises(InitSpecError) as err:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", InitSpecWarning)
                initspec_torch.apply(policy, model)
        for needle in needles:
            assert needle in str(err.value), (needle, str(err.value))
    after = {k: v.detach().numpy().tobytes() for k, v in model.state_dict().items()}
    assert after == before
    with pytest.raises(InitSpecError, match="allowed: adam, sgd"):
        ours(MLP)[1].lr_multipliers("lion")
    with pytest.raises(InitSpecError, match="need a policy with a 'width' section"):
        initspec_torch.explain("torch-defaults", MLP(8)).lr_multipliers()
