"""Presets against the installed packages' own models and init code (#16 item 5): torchtitan
0.3.0's Llama 3 (tied and untied embeddings, fused and unfused q/k/v) for `torchtitan-llama3`,
timm 1.0.31's ViT and DeiT-distilled in jax mode for `vit-jax`, and HF BERT's padding row for
`bert`. Models are built small from configs (never pretrained weights).

Per preset, three checks:
1. the plan of every parameter equals what the package's init code calls, read from the
   installed source (torchtitan: each module's own `param_init` functions, cross-checked against
   the formulas; timm: init_weights_vit_jax's formulas, written out);
2. our values follow the plan (the report's `plan`), and so do the package's own values: a
   family of tests per parameter (one-sample KS against the plan's exact CDF, z tests of the
   sample mean and variance against the plan's exact moments), Holm's correction over the whole
   family at level 1e-4; constants exactly;
3. our values and the package's own values have the same distribution: two-sample KS per
   parameter, Holm at 1e-4.

The tests can fail: `test_a_two_percent_std_error_is_caught` scales one parameter by 1.02.
"""

from __future__ import annotations

import copy
import functools
import inspect
import math
import warnings

import numpy as np
import pytest
from scipy import stats

from initspec import InitSpecWarning
from initspec.plans import ConstantPlan, NormalPlan, TruncatedNormalPlan, UniformPlan

torch = pytest.importorskip("torch")
nn = torch.nn
initspec_torch = pytest.importorskip("initspec_torch")

from real_packages import import_timm, torchtitan_llama3_config  # noqa: E402

ALPHA = 1e-4  # family-wise level (PyTorch's own init tests use KS p > 1e-4 per test)

# ---------------------------------------------------------------------------------------------
# Statistics
#
# Standard errors at n iid draws from a plan with std sigma and kurtosis kappa (fourth
# standardized moment): sample mean sigma / sqrt(n); sample variance
# sigma^2 sqrt((kappa - 1) / n) (Var[s^2] = (mu_4 - sigma^4) / n + O(1/n^2)). Each z is turned
# into a two-sided normal p-value and joins the KS p-values in one family; Holm's step-down
# keeps the chance of any false rejection at ALPHA for the whole model. With ~100 tests in a
# family the smallest p must stay above ~1e-6, i.e. |z| < ~4.9. So the variance test alone
# detects a 2% std error (4.04% in variance) where 0.0404 / sqrt((kappa - 1) / n) is well above
# 4.9: n >= ~30,000 for a normal (kappa 3); at the 131,072 elements of the tiny Llama's
# embedding and head it is 10 standard errors. KS is the weaker test for a scale error (its
# statistic moves by ~0.02 * max|x phi(x)| = 0.005, which needs n ~ 300,000 at this level), but
# it sees a wrong shape (uniform for normal, a missing or extra truncation).
# ---------------------------------------------------------------------------------------------


def holm(pvalues: dict[str, float], alpha: float = ALPHA) -> dict[str, float]:
    """Holm's step-down procedure: the hypotheses rejected at family-wise level alpha."""
    ordered = sorted(pvalues.items(), key=lambda kv: kv[1])
    m = len(ordered)
    rejected: dict[str, float] = {}
    for i, (name, p) in enumerate(ordered):
        if p > alpha / (m - i):
            break
        rejected[name] = p
    return rejected


def _as64(t) -> np.ndarray:
    return t.detach().to(torch.float64).flatten().numpy()


def plan_family(
    values: dict[str, np.ndarray], plans: dict, label: str, check_bounds: bool = True
) -> dict[str, float]:
    """p-values of every random parameter against its plan (KS, mean, variance); constant
    plans and the bounds of bounded plans are checked exactly here (assertions, not
    p-values)."""
    out: dict[str, float] = {}
    for name, x in values.items():
        plan = plans[name]
        if isinstance(plan, ConstantPlan):
            np.testing.assert_array_equal(x, plan.value, err_msg=f"{name} ({label})")
            continue
        n = x.size
        out[f"{label} {name}: KS vs {plan.describe()}"] = stats.kstest(x, plan.cdf).pvalue
        z_mean = (x.mean() - plan.mean) / (plan.std / math.sqrt(n))
        z_var = (x.var() - plan.var) / (plan.var * math.sqrt((plan.kurtosis - 1.0) / n))
        out[f"{label} {name}: mean z={z_mean:.2f}"] = 2 * stats.norm.sf(abs(z_mean))
        out[f"{label} {name}: var z={z_var:.2f} (std ratio {x.std() / plan.std:.4f})"] = (
            2 * stats.norm.sf(abs(z_var))
        )
        if check_bounds and plan.bounds is not None:
            low, high = plan.bounds
            assert low <= x.min() and x.max() <= high, f"{name} ({label}) outside {low}, {high}"
    return out


def two_sample_family(ours: dict[str, np.ndarray], theirs: dict[str, np.ndarray], plans) -> dict:
    out = {}
    for name, x in ours.items():
        if isinstance(plans[name], ConstantPlan):
            np.testing.assert_array_equal(x, theirs[name], err_msg=name)
            continue
        out[f"{name}: KS ours vs theirs"] = stats.ks_2samp(x, theirs[name]).pvalue
    return out


def values_of(model: nn.Module) -> dict[str, np.ndarray]:
    return {name: _as64(p) for name, p in model.named_parameters()}


def plans_of(report) -> dict:
    """path -> plan, under every name of a tied parameter."""
    out = {}
    for rp in report.resolution.params:
        assert rp.status == "init", f"{rp.info.path}: {rp.status}"
        for name in (rp.info.path, *rp.info.shared_with):
            out[name] = rp.plan
    return out


def assert_follows(ours: nn.Module, theirs: nn.Module, report) -> None:
    plans = plans_of(report)
    a, b = values_of(ours), values_of(theirs)
    assert a.keys() == b.keys()
    family = {
        **plan_family(a, plans, "ours"),
        **plan_family(b, plans, "theirs"),
        **two_sample_family(a, b, plans),
    }
    rejected = holm(family)
    assert not rejected, "rejected (Holm, family-wise 1e-4):\n" + "\n".join(
        f"  p={p:.2e}  {k}" for k, p in rejected.items()
    )


def nan_fill(model: nn.Module) -> None:
    """Every parameter must then be written by the preset."""
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(float("nan"))


# ---------------------------------------------------------------------------------------------
# What a package's init call means, as (kind, parameters), and our plan against it
# ---------------------------------------------------------------------------------------------

_TN_DEFAULTS = {
    k: v.default for k, v in inspect.signature(nn.init.trunc_normal_).parameters.items()
}
_N_DEFAULTS = {k: v.default for k, v in inspect.signature(nn.init.normal_).parameters.items()}
UNTRUNCATED = 37.0  # Phi(-37) ~ 6e-300: a bound this many std out changes no float64 value


def trunc_normal(mean: float, std: float, a: float, b: float) -> tuple:
    return ("trunc_normal", mean, std, a, b)


def assert_plan_is(name: str, plan, spec: tuple) -> float:
    """Our plan is the distribution `spec` (what the package calls); returns the ratio of our
    plan's std to the std of the package's distribution (exact moments, not samples)."""
    kind = spec[0]
    close = functools.partial(math.isclose, rel_tol=1e-12, abs_tol=0.0)
    if kind == "constant":
        assert isinstance(plan, ConstantPlan) and plan.value == spec[1], (name, plan, spec)
        return 1.0
    if kind == "normal":
        _, mean, std = spec
        assert isinstance(plan, NormalPlan), (name, plan.describe(), spec)
        assert close(plan.loc, mean) and close(plan.scale, std), (name, plan.describe(), spec)
        return plan.std / std
    if kind == "uniform":
        _, low, high = spec
        assert isinstance(plan, UniformPlan), (name, plan.describe(), spec)
        assert close(plan.low, low) and close(plan.high, high), (name, plan.describe(), spec)
        return plan.std / ((high - low) / math.sqrt(12))
    assert kind == "trunc_normal", spec
    _, mean, std, a, b = spec
    assert isinstance(plan, TruncatedNormalPlan), (name, plan.describe(), spec)
    assert close(plan.loc, mean) and close(plan.scale, std), (name, plan.describe(), spec)
    for ours, theirs in ((plan.low, a), (plan.high, b)):
        # the same bound, or both so far out that neither truncates anything in float64
        # (torch's trunc_normal_ keeps a = -2, b = 2 absolute under any std; a depth-scaled
        # plan scales its bounds with its std: +-2 at std 0.02 becomes +-0.707 at 0.00707)
        far = abs(ours - mean) > UNTRUNCATED * std and abs(theirs - mean) > UNTRUNCATED * std
        assert close(ours, theirs) or far, (name, plan.describe(), spec)
    exact = TruncatedNormalPlan(plan.shape, loc=mean, scale=std, low=a, high=b)
    assert close(plan.std, exact.std), (name, plan.std, exact.std)
    return plan.std / exact.std


# ---------------------------------------------------------------------------------------------
# torchtitan 0.3.0: Llama 3
# ---------------------------------------------------------------------------------------------

DIM, N_HEADS, N_KV_HEADS, N_LAYERS, VOCAB = 64, 4, 2, 3, 2048


def llama3_config(*, tied: bool, fuse_qkv: bool):
    """torchtitan's own `_debugmodel` (torchtitan/models/llama3/__init__.py), smaller: the
    same builders and param_init dicts; `_1b`'s tied form when tied."""
    return torchtitan_llama3_config(
        dim=DIM, n_layers=N_LAYERS, n_heads=N_HEADS, n_kv_heads=N_KV_HEADS, vocab=VOCAB,
        tied=tied, fuse_qkv=fuse_qkv, multiple_of=64, max_seq_len=128,
    )  # fmt: skip


def _init_fn_spec(fn) -> tuple:
    """What one of torchtitan's param_init functions draws."""
    from torchtitan.models.common.param_init import skip_param_init

    if fn is skip_param_init:
        return ("skip",)
    if fn is nn.init.ones_:
        return ("constant", 1.0)
    if fn is nn.init.zeros_:
        return ("constant", 0.0)
    if isinstance(fn, functools.partial) and not fn.args:
        kw = fn.keywords
        if fn.func is nn.init.trunc_normal_:
            d = {**_TN_DEFAULTS, **kw}
            return trunc_normal(d["mean"], d["std"], d["a"], d["b"])
        if fn.func is nn.init.normal_:
            d = {**_N_DEFAULTS, **kw}
            return ("normal", d["mean"], d["std"])
    # config_utils._fused_qkv_param_init: q, k and v drawn separately by the same base_init,
    # then concatenated, so the fused weight is iid from base_init's distribution.
    if getattr(fn, "__qualname__", "").startswith("_fused_qkv_param_init."):
        (base,) = [c.cell_contents for c in fn.__closure__ or () if callable(c.cell_contents)]
        return _init_fn_spec(base)
    raise AssertionError(f"unrecognized torchtitan param_init function {fn!r}")


def torchtitan_init_specs(model: nn.Module) -> dict[str, tuple]:
    """Per parameter name (every name of a tied one), what torchtitan's init_states draws:
    each module's own `_param_init[name]` (protocols/module.py `_init_self_parameters`); a tied
    parameter gets the one init that is not skip_param_init."""
    by_id: dict[int, list[tuple]] = {}
    names: dict[int, list[str]] = {}
    for mod_name, mod in model.named_modules():
        for pname, p in mod.named_parameters(recurse=False):
            full = f"{mod_name}.{pname}" if mod_name else pname
            assert mod._param_init is not None, f"{full}: no param_init (reset_parameters)"
            by_id.setdefault(id(p), []).append(_init_fn_spec(mod._param_init[pname]))
            names.setdefault(id(p), []).append(full)
    for full, p in model.named_parameters(remove_duplicate=False):
        if full not in names.get(id(p), []):
            names.setdefault(id(p), []).append(full)  # a tie outside the module tree walk
    out = {}
    for pid, specs in by_id.items():
        drawn = [s for s in specs if s[0] != "skip"]
        assert len(drawn) == 1, (names[pid], specs)
        for full in names[pid]:
            out[full] = drawn[0]
    return out


def expected_torchtitan_formula(name: str) -> tuple:
    """torchtitan 0.3.0's llama3 init, written out from its source: `_LINEAR_INIT` =
    trunc_normal_(std=0.02) (torch's default a=-2, b=2, absolute); `_depth_init(layer_id)` =
    trunc_normal_(std=depth_scaled_std(0.02, layer_id)), depth_scaled_std = base / sqrt(2
    (layer_id + 1)) for wo, w2 and w3; `_output_linear_init(dim)`: s = dim**-0.5,
    trunc_normal_(std=s, a=-3s, b=3s); `_EMBEDDING_INIT` normal_(std=1.0); `_NORM_INIT` ones_."""
    parts = name.split(".")
    if name == "lm_head.weight":
        s = DIM**-0.5
        return trunc_normal(0.0, s, -3 * s, 3 * s)
    if name == "tok_embeddings.weight":
        return ("normal", 0.0, 1.0)
    if name.endswith("norm.weight"):
        return ("constant", 1.0)
    layer_id = int(parts[1])
    if parts[-2] in ("wo", "w2", "w3"):
        return trunc_normal(0.0, 0.02 / math.sqrt(2 * (layer_id + 1)), -2.0, 2.0)
    assert parts[-2] in ("wqkv", "wq", "wk", "wv", "w1"), name
    return trunc_normal(0.0, 0.02, -2.0, 2.0)


LLAMA_CASES = [
    pytest.param(False, True, id="untied-fused_qkv"),
    pytest.param(False, False, id="untied-separate_qkv"),
    pytest.param(True, True, id="tied-fused_qkv"),
]


@functools.cache  # built once per case; the tests only read the models
def _llama_pair(tied: bool, fuse_qkv: bool, seed: int = 0):
    cfg = llama3_config(tied=tied, fuse_qkv=fuse_qkv)
    torch.manual_seed(seed)
    theirs = cfg.build()
    theirs.init_states()  # torchtitan's own init
    ours = cfg.build()
    nan_fill(ours)
    with warnings.catch_warnings():
        # the rules a Llama leaves unused (checked in the test): InitSpecWarning
        warnings.simplefilter("ignore", InitSpecWarning)
        report = initspec_torch.apply("torchtitan-llama3", ours, seed=seed + 1)
    return ours, theirs, report


@pytest.mark.parametrize(("tied", "fuse_qkv"), LLAMA_CASES)
def test_torchtitan_llama3_plans_are_torchtitans_init(tied: bool, fuse_qkv: bool) -> None:
    ours, theirs, report = _llama_pair(tied, fuse_qkv)
    assert report.unmatched == 0, report.table()
    # Llama has no biases; a tied weight is the head's (torchtitan skips tok_embeddings)
    unused = {"#2 bias", "#4 tok_embeddings"} if tied else {"#2 bias"}
    assert set(report.resolution.unused_rules) == unused, report.resolution.unused_rules
    specs = torchtitan_init_specs(theirs)
    plans = plans_of(report)
    assert set(specs) == set(plans) == set(dict(theirs.named_parameters(remove_duplicate=False)))
    ratios = {}
    for name, spec in specs.items():
        # tied: torchtitan skips tok_embeddings; the shared weight gets the head's init
        formula = expected_torchtitan_formula(
            name.replace("tok_embeddings", "lm_head") if tied else name
        )
        assert spec[0] == formula[0] and np.allclose(spec[1:], formula[1:], rtol=1e-15, atol=0), (
            f"{name}: torchtitan's param_init {spec} is not the formula {formula}"
        )
        ratios[name] = assert_plan_is(name, plans[name], spec)
    assert all(abs(r - 1.0) < 1e-12 for r in ratios.values()), ratios
    # the head rule matched the name torchtitan 0.3.0 uses (lm_head; a tied weight under
    # either of its names)
    (head,) = [
        rp
        for rp in report.resolution.params
        if "lm_head.weight" in (rp.info.path, *rp.info.shared_with)
    ]
    assert head.rule is not None and head.rule.name == "head", head


@pytest.mark.parametrize(("tied", "fuse_qkv"), LLAMA_CASES)
def test_torchtitan_llama3_values_follow_torchtitan(tied: bool, fuse_qkv: bool) -> None:
    ours, theirs, report = _llama_pair(tied, fuse_qkv)
    assert not any(torch.isnan(p).any() for p in ours.parameters())
    if tied:
        assert ours.tok_embeddings.weight is ours.lm_head.weight
    assert_follows(ours, theirs, report)


def test_a_two_percent_std_error_is_caught() -> None:
    """The family above rejects one parameter whose std is 2% off (the head, truncated normal
    at 3 sigma, and the embedding, normal: 131,072 elements each, ~10 standard errors of the
    variance; see the comment on the statistics), in our values and in torchtitan's, and
    nothing else."""
    ours, theirs, report = _llama_pair(tied=False, fuse_qkv=True)
    plans = plans_of(report)
    for label, model in (("ours", ours), ("theirs", theirs)):
        values = values_of(model)
        family = plan_family(values, plans, label)
        assert not holm(family)  # the control
        for target in ("lm_head.weight", "tok_embeddings.weight"):
            # the target's tests redone on its values x 1.02, the rest of the family as it was;
            # the statistics alone (a scaled truncated normal also leaves its bounds)
            off = plan_family({target: values[target] * 1.02}, plans, label, check_bounds=False)
            rest = {k: p for k, p in family.items() if f" {target}: " not in k}
            rejected = holm({**rest, **off})
            assert rejected, f"{label}: a 2% std error on {target} was not caught"
            assert all(f" {target}: " in k for k in rejected), rejected
            assert any("var z" in k for k in rejected), rejected


# ---------------------------------------------------------------------------------------------
# timm 1.0.31: ViT and DeiT-distilled, weight_init="jax"
# ---------------------------------------------------------------------------------------------

VIT_KW = dict(img_size=32, patch_size=8, depth=2, num_classes=100)
VIT_CASES = [
    pytest.param("vit_tiny_patch16_224", (("reg_tokens", 2),), id="vit_tiny-reg_tokens"),
    pytest.param("deit_tiny_distilled_patch16_224", (), id="deit_tiny_distilled"),
]


def timm_jax_specs(model: nn.Module) -> dict[str, tuple]:
    """What timm's VisionTransformer.init_weights('jax') draws, written out from
    timm/models/vision_transformer.py (init_weights, init_weights_vit_jax, applied by
    named_apply with each module's dotted name), timm/models/deit.py (dist_token) and
    timm/layers/weight_init.py (trunc_normal_ with absolute bounds; lecun_normal_ =
    variance_scaling_(fan_in, truncated_normal): trunc_normal_tf_ with std sqrt(1/fan_in) /
    .87962566103423978, bounds -2, 2 in std units; torch's fans)."""
    specs: dict[str, tuple] = {}
    for token in ("pos_embed", "dist_token"):
        if getattr(model, token, None) is not None:
            specs[token] = trunc_normal(0.0, 0.02, -2.0, 2.0)
    for token in ("cls_token", "reg_token"):
        if getattr(model, token, None) is not None:
            specs[token] = ("normal", 0.0, 1e-6)
    for name, m in model.named_modules():
        if not name:
            continue
        if isinstance(m, nn.Linear):
            fan_out, fan_in = m.weight.shape
            if name.startswith("head"):
                specs[f"{name}.weight"] = ("constant", 0.0)
                specs[f"{name}.bias"] = ("constant", 0.0)  # head_bias, 0 unless 'jax_nlhb'
            else:
                bound = math.sqrt(6.0 / (fan_in + fan_out))  # xavier_uniform_, gain 1
                specs[f"{name}.weight"] = ("uniform", -bound, bound)
                if m.bias is not None:
                    specs[f"{name}.bias"] = (
                        ("normal", 0.0, 1e-6) if "mlp" in name else ("constant", 0.0)
                    )
        elif isinstance(m, nn.Conv2d):
            fan_in = m.weight.shape[1] * m.weight.shape[2] * m.weight.shape[3]
            std = math.sqrt(1.0 / fan_in) / 0.87962566103423978
            specs[f"{name}.weight"] = trunc_normal(0.0, std, -2 * std, 2 * std)
            if m.bias is not None:
                specs[f"{name}.bias"] = ("constant", 0.0)
        elif isinstance(m, nn.LayerNorm):  # not re-initialized: its construction 1 / 0
            specs[f"{name}.weight"] = ("constant", 1.0)
            specs[f"{name}.bias"] = ("constant", 0.0)
    return specs


@functools.cache
def _vit_pair(name: str, extra: tuple, seed: int = 0):
    timm = import_timm()
    torch.manual_seed(seed)
    theirs = timm.create_model(name, pretrained=False, weight_init="jax", **VIT_KW, **dict(extra))
    ours = copy.deepcopy(theirs)
    nan_fill(ours)
    with warnings.catch_warnings():
        warnings.simplefilter("error", InitSpecWarning)  # no unused rule, no kept parameter
        report = initspec_torch.apply("vit-jax", ours, seed=seed + 1)
    return ours, theirs, report


@pytest.mark.parametrize(("name", "extra"), VIT_CASES)
def test_vit_jax_plans_are_timms_init(name: str, extra: tuple) -> None:
    ours, theirs, report = _vit_pair(name, extra)
    assert report.unmatched == 0, report.table()
    specs = timm_jax_specs(theirs)
    plans = plans_of(report)
    assert set(specs) == set(plans) == set(dict(theirs.named_parameters())), set(plans) ^ set(specs)
    for pname, spec in specs.items():
        assert abs(assert_plan_is(pname, plans[pname], spec) - 1.0) < 1e-12, pname
    heads = [p for p in plans if p.startswith("head")]
    assert len(heads) == (4 if "distilled" in name else 2), heads


@pytest.mark.parametrize(("name", "extra"), VIT_CASES)
def test_vit_jax_values_follow_timm(name: str, extra: tuple) -> None:
    ours, theirs, report = _vit_pair(name, extra)
    assert not any(torch.isnan(p).any() for p in ours.parameters())
    for pname, p in ours.named_parameters():
        if pname.startswith("head"):  # head, head_dist: zeros exactly, ours and timm's
            assert torch.equal(p, torch.zeros_like(p)), pname
            assert torch.equal(dict(theirs.named_parameters())[pname], p), pname
    assert_follows(ours, theirs, report)


# ---------------------------------------------------------------------------------------------
# HF BERT: the padding row
# ---------------------------------------------------------------------------------------------


def test_bert_preset_zeroes_the_padding_row_as_hf_does() -> None:
    """BertPreTrainedModel._init_weights (PreTrainedModel._init_weights in transformers 5):
    nn.Embedding N(0, initializer_range), then its padding_idx row zeroed; BertConfig's
    pad_token_id is 0, so word_embeddings row 0 is zero. The preset says so and does so."""
    pytest.importorskip("transformers")
    from transformers import BertConfig, BertModel

    import initspec

    description = initspec.preset("bert").description
    assert "padding row" in description and "not expressed" not in description
    cfg = BertConfig(
        num_hidden_layers=1,
        hidden_size=64,
        num_attention_heads=2,
        intermediate_size=128,
        vocab_size=1000,
        max_position_embeddings=64,
    )
    assert cfg.pad_token_id == 0
    torch.manual_seed(0)
    theirs = BertModel(cfg)
    ours = copy.deepcopy(theirs)
    nan_fill(ours)
    report = initspec_torch.apply("bert", ours, seed=3)
    assert report.unmatched == 0, report.table()
    w_ours, w_theirs = (
        ours.embeddings.word_embeddings.weight,
        theirs.embeddings.word_embeddings.weight,
    )
    assert torch.equal(w_theirs[0], torch.zeros(64)) and torch.equal(w_ours[0], torch.zeros(64))
    plan = plans_of(report)["embeddings.word_embeddings.weight"]
    family = {
        f"{label}: KS": stats.kstest(_as64(w[1:]), plan.cdf).pvalue
        for label, w in (("ours", w_ours), ("theirs", w_theirs))
    }
    assert not holm(family), family
