"""initspec_jax.apply (Flax linen) and apply_nnx: description, paths, seeds, all-or-nothing,
presets against Flax's own init and the torch twin.

Statistical checks: two-sample KS between our values and Flax's own ``model.init`` values for
each random parameter (>= 12_288 values each), pass when p > 1e-4, as in
tests/test_jax_initializer.py; constants are compared exactly.
"""

from __future__ import annotations

# ruff: noqa: E402
import os

# These tests compile ~80 small XLA programs (one per kind of primitive, shape and dtype) and
# run each once; XLA's CPU optimization passes only lengthen the compiles (halving them
# here). Set before JAX starts its backend, unless the caller set XLA_FLAGS; results are
# unaffected beyond the rounding of fused operations.
os.environ.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0")


import flax.linen as nn
import initspec_jax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from flax.core import FrozenDict
from initspec_jax.policy_apply import typed_key
from moments import KS_P, plan_check
from scipy import stats

import initspec
from initspec import BackendError, InitSpecError, ResolutionError, derive_seed


class Block(nn.Module):
    """Compact: an explicitly named Dense, an auto-named LayerNorm and DenseGeneral."""

    @nn.compact
    def __call__(self, x):
        x = nn.Dense(8, name="fc1")(x)
        x = nn.LayerNorm()(x)
        return nn.DenseGeneral((2, 4))(x).reshape(x.shape)


class Net(nn.Module):
    """Setup: a list of blocks (auto-named layers_0, layers_1), Embed, attention, a
    ConvTranspose with transpose_kernel, a BatchNorm (batch_stats collection)."""

    def setup(self):
        self.layers = [Block() for _ in range(2)]
        self.emb = nn.Embed(10, 8)
        self.attn = nn.MultiHeadDotProductAttention(num_heads=2)
        self.up = nn.ConvTranspose(4, (3,), transpose_kernel=True)
        self.bn = nn.BatchNorm(use_running_average=True)

    def __call__(self, tokens):
        h = self.emb(tokens)
        for layer in self.layers:
            h = layer(h)
        return self.bn(self.up(self.attn(h)))


TOKENS = jnp.zeros((1, 3), jnp.int32)


@pytest.fixture(scope="module")
def net_variables():
    """Abstract (jax.ShapeDtypeStruct leaves): describing needs shapes and dtypes only."""
    return jax.eval_shape(Net().init, jax.random.key(0), TOKENS)


def _rows(report) -> dict[str, dict]:
    return {r["path"]: r for r in report.rows()}


def _linen_report(policy, variables, model=None, model_args=None):
    """What apply would do, without sampling (describe, then resolve)."""
    described = initspec_jax.describe_linen(variables, model, model_args=model_args)
    return initspec_jax.resolve_params(policy, described).report()


def test_description_with_model_and_example_inputs(net_variables) -> None:
    report = _linen_report("flax-defaults", net_variables, Net(), (TOKENS,))
    rows = _rows(report)
    expected = {
        # canonical path: (framework path, kind, role, layout, fans)
        "layers.0.fc1.kernel": ("layers_0/fc1/kernel", "linear", "kernel", "flax", [8, 8]),
        "layers.0.fc1.bias": ("layers_0/fc1/bias", "linear", "bias", "flax", None),
        "layers.1.LayerNorm.0.scale": ("layers_1/LayerNorm_0/scale", "norm", "scale", "flax", None),
        "layers.1.DenseGeneral.0.kernel": (
            "layers_1/DenseGeneral_0/kernel", "linear", "kernel", "in=[0] out=[1, 2] batch=[]", [8, 8]),
        "emb.embedding": ("emb/embedding", "embedding", "embedding", "embedding", [8, 10]),
        "attn.query.kernel": ("attn/query/kernel", "attention", "kernel", "in=[0] out=[1, 2] batch=[]", [8, 8]),
        "attn.out.kernel": ("attn/out/kernel", "linear", "kernel", "in=[0, 1] out=[2] batch=[]", [8, 8]),
        # transpose_kernel=True: (k, out, in) = (3, 4, 8), fans from the true in (8) and out (4)
        "up.kernel": ("up/kernel", "conv_transpose", "kernel", "flax_transposed", [24, 12]),
        "bn.scale": ("bn/scale", "norm", "scale", "flax", None),
    }
    for path, (framework_path, kind, role, layout, fan) in expected.items():
        row = rows[path]
        assert (row["framework_path"], row["kind"], row["role"], row["layout"]) == (
            framework_path, kind, role, layout), path
        if fan is not None:
            assert row["fans"] == fan, path
    assert report.unmatched == 0 and len(rows) == 25
    assert not any(p.startswith("bn.mean") or p.startswith("bn.var") for p in rows)


class Counted(nn.Module):
    """Counts its traces: each ``model.init`` (abstract or not) runs ``__call__`` once."""

    features: int = 8

    @nn.compact
    def __call__(self, x, tags=frozenset()):
        COUNTED_TRACES.append(self.features)
        return nn.Dense(self.features, name="fc")(nn.LayerNorm()(x))


COUNTED_TRACES: list[int] = []


def test_module_lookup_is_traced_once_per_model_and_input_signature() -> None:
    """The eval_shape trace of ``model.init`` is cached like a jit trace: per model
    configuration (fields and class) and the inputs' shapes, dtypes and values (an equal
    input, another array, hits the cache)."""
    x = jnp.ones((1, 4))
    variables = jax.eval_shape(Counted().init, jax.random.key(0), x)
    wide = jax.eval_shape(Counted(features=6).init, jax.random.key(0), x)
    COUNTED_TRACES.clear()
    with jax.checking_leaks():  # what is kept holds no tracer of the trace
        first = _rows(_linen_report("flax-defaults", variables, Counted(), (x,)))
    again = _rows(_linen_report("flax-defaults", variables, Counted(), (jnp.ones((1, 4)),)))
    assert first == again and first["fc.kernel"]["kind"] == "linear"
    assert first["LayerNorm.0.scale"]["kind"] == "norm"
    assert len(COUNTED_TRACES) == 1
    # another configuration, input shape, input dtype, static argument: traced again
    assert _rows(_linen_report("flax-defaults", wide, Counted(features=6), (x,)))[
        "fc.kernel"]["fans"] == [4, 6]
    _linen_report("flax-defaults", variables, Counted(), (jnp.ones((2, 4)),))
    _linen_report("flax-defaults", variables, Counted(), (jnp.ones((1, 4), jnp.bfloat16),))
    _linen_report("flax-defaults", variables, Counted(), (x, frozenset({"a"})))
    assert len(COUNTED_TRACES) == 5
    # an unhashable static argument: nothing cached, traced each time
    _linen_report("flax-defaults", variables, Counted(), (x, {"a"}))
    _linen_report("flax-defaults", variables, Counted(), (x, {"a"}))
    assert len(COUNTED_TRACES) == 7


class Switch(nn.Module):
    """Branches on the value of an argument: Conv or DenseGeneral under the same name."""

    @nn.compact
    def __call__(self, x, use_conv):
        if use_conv:
            return nn.Conv(4, (3,), name="proj")(x)
        return nn.DenseGeneral((2, 2), name="proj")(x)


class Wrap(nn.Module):
    """Holds a submodule as a field (bound to it during the trace)."""

    inner: nn.Module

    @nn.compact
    def __call__(self, x):
        return self.inner(x)


def test_module_lookup_cache_keys_concrete_values_and_keeps_no_tracer() -> None:
    """Concrete inputs are part of the cache key by value (model.init may branch on them);
    a submodule passed as a field is kept as an unbound copy too."""
    x = jnp.ones((1, 5, 3))
    for flag in (np.bool_(False), np.bool_(True), np.bool_(False)):
        variables = jax.eval_shape(lambda f=flag: Switch().init(jax.random.key(0), x, f))
        kind = _rows(_linen_report("flax-defaults", variables, Switch(), (x, flag)))[
            "proj.kernel"]["kind"]
        assert kind == ("conv" if flag else "linear"), flag
    model = Wrap(nn.Dense(4))
    y = jnp.ones((1, 3))
    variables = jax.eval_shape(model.init, jax.random.key(0), y)
    with jax.checking_leaks():
        rows = _rows(_linen_report("flax-defaults", variables, model, (y,)))
    assert rows["inner.kernel"]["kind"] == "linear"


def test_description_from_names_alone_and_from_setup_attributes(net_variables) -> None:
    """Without the model: 2-D kernels are linear, 3-D kernels of unknown modules are 'other'
    (DenseGeneral and attention look like convolutions); with the model but no inputs,
    setup-defined modules are known (attn, up) and compact ones fall back to names."""
    rows = _rows(_linen_report("flax-defaults", net_variables))
    assert rows["layers.0.fc1.kernel"]["kind"] == "linear"
    assert rows["layers.0.LayerNorm.0.scale"]["kind"] == "norm"
    assert rows["emb.embedding"]["kind"] == "embedding"
    assert rows["attn.query.kernel"]["kind"] == "other"
    assert rows["up.kernel"]["kind"] == "other"
    rows = _rows(_linen_report("flax-defaults", net_variables, Net()))
    assert rows["up.kernel"]["layout"] == "flax_transposed"
    assert rows["layers.0.DenseGeneral.0.kernel"]["kind"] == "other"  # compact, name only


class Small(nn.Module):
    """Dense + BatchNorm: a params and a batch_stats collection, few distinct shapes."""

    @nn.compact
    def __call__(self, x):
        return nn.BatchNorm(use_running_average=True)(nn.Dense(16, name="fc1")(x))


def test_functional_structure_dtypes_and_other_collections() -> None:
    variables = jax.jit(Small().init)(jax.random.key(0), jnp.ones((1, 16)))
    before = jax.tree_util.tree_map(np.asarray, variables)
    new, report = initspec_jax.apply("torch-defaults", variables, seed=3, model=Small(),
                                     model_args=(jnp.ones((1, 16)),))
    assert jax.tree_util.tree_structure(new) == jax.tree_util.tree_structure(variables)
    for a, b in zip(jax.tree_util.tree_leaves(new), jax.tree_util.tree_leaves(variables),
                    strict=True):
        assert a.shape == b.shape and a.dtype == b.dtype
    # the input is untouched, batch_stats are carried over as they were
    for a, b in zip(jax.tree_util.tree_leaves(before),
                    jax.tree_util.tree_leaves(variables), strict=True):
        np.testing.assert_array_equal(a, b)
    assert new["batch_stats"] is variables["batch_stats"]
    # torch's Linear default on fc1: U(+-1/sqrt(16)), and a changed kernel
    kernel = np.asarray(new["params"]["fc1"]["kernel"])
    assert np.abs(kernel).max() <= 0.25
    assert not np.array_equal(kernel, np.asarray(variables["params"]["fc1"]["kernel"]))
    assert (np.asarray(new["params"]["BatchNorm_0"]["scale"]) == 1).all()
    assert report.resolution.seed == 3


# Seeds -------------------------------------------------------------------------------------


class MLP(nn.Module):
    depth: int

    def setup(self):
        self.layers = [nn.Dense(16) for _ in range(self.depth)]

    def __call__(self, x):
        for layer in self.layers:
            x = layer(x)
        return x


def _mlp_params(depth: int):
    return MLP(depth).init(jax.random.key(depth), jnp.ones((1, 16)))


def test_each_parameter_keyed_by_seed_and_canonical_path() -> None:
    """A parameter's values are the plan sampled with the threefry key of
    derive_seed(seed, canonical path), whatever else the model holds."""
    policy = {"initspec": 1, "rules": [{"match": {"role": "kernel"}, "init": {"kind": "orthogonal"}},
                        {"match": {"role": "bias"}, "init": {"kind": "normal", "std": 0.1}}]}
    two, _ = initspec_jax.apply(policy, _mlp_params(2), seed=5)
    three, _ = initspec_jax.apply(policy, _mlp_params(3), seed=5)
    again, _ = initspec_jax.apply(policy, _mlp_params(2), seed=5)
    other, _ = initspec_jax.apply(policy, _mlp_params(2), seed=6)
    for name in ("layers_0", "layers_1"):
        for leaf in ("kernel", "bias"):
            a = np.asarray(two["params"][name][leaf])
            np.testing.assert_array_equal(a, np.asarray(three["params"][name][leaf]))
            np.testing.assert_array_equal(a, np.asarray(again["params"][name][leaf]))
            assert not np.array_equal(a, np.asarray(other["params"][name][leaf]))
    path = "layers.1.bias"
    plan = initspec.parse({"kind": "normal", "std": 0.1}).plan((16,), "flax")
    expected = initspec_jax.sample_plan(plan, typed_key(derive_seed(5, path)), jnp.float32)
    np.testing.assert_array_equal(np.asarray(two["params"]["layers_1"]["bias"]), np.asarray(expected))


def test_params_collection_alone_and_frozen_dicts() -> None:
    params = _mlp_params(2)["params"]
    new, _ = initspec_jax.apply("flax-defaults", params, seed=1)
    frozen, _ = initspec_jax.apply("flax-defaults", FrozenDict(params), seed=1)
    assert isinstance(frozen, FrozenDict) and not isinstance(new, FrozenDict)
    for a, b in zip(jax.tree_util.tree_leaves(new), jax.tree_util.tree_leaves(frozen), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_param_key_uses_all_64_bits() -> None:
    s = (0x12345678 << 32) | 0x9ABCDEF0
    data = np.asarray(jax.random.key_data(typed_key(s)))
    assert data.tolist() == [0x12345678, 0x9ABCDEF0]
    assert typed_key(2**64 - 1) is not None


def test_dotted_globs_port_from_the_torch_twin() -> None:
    """torch MLP params are layers.0.weight, layers.1.weight...; a glob written for them
    selects the same layers in the Flax twin (layers_1 -> layers.1)."""
    policy = {"initspec": 1, "rules": [{"match": {"path": "layers.1.*", "role": "kernel"}, "init": {"kind": "zeros"}},
                        {"match": {"kind": "linear"}, "init": {"kind": "ones"}}]}
    new, report = initspec_jax.apply(policy, _mlp_params(3))
    p = new["params"]
    assert not np.asarray(p["layers_1"]["kernel"]).any()
    assert (np.asarray(p["layers_0"]["kernel"]) == 1).all()
    assert (np.asarray(p["layers_1"]["bias"]) == 1).all()
    assert _rows(report)["layers.1.kernel"]["rule_index"] == 0


# Presets -----------------------------------------------------------------------------------


class Zoo(nn.Module):
    """One of each layer kind, each random parameter >= 12_288 values; shapes repeat where
    they can (one compiled program per kind and shape)."""

    @nn.compact
    def __call__(self, tokens, image):
        h = nn.Embed(1000, 128)(tokens)
        h = nn.MultiHeadDotProductAttention(num_heads=8)(h)
        h = nn.Dense(128)(h)
        h = nn.LayerNorm()(h)
        y = nn.Conv(48, (3, 3))(image)
        y = nn.ConvTranspose(48, (3, 3))(y)
        return h, y


ZOO_ARGS = (jnp.zeros((1, 4), jnp.int32), jnp.zeros((1, 8, 8, 48)))


def test_flax_defaults_reproduce_flax_model_init() -> None:
    """Our flax-defaults and Flax's own init: same kinds of values for every parameter."""
    variables = jax.jit(Zoo().init)(jax.random.key(1), *ZOO_ARGS)
    new, report = initspec_jax.apply("flax-defaults", variables, seed=2, model=Zoo(),
                                     model_args=ZOO_ARGS)
    assert report.unmatched == 0
    ours = dict(jax.tree_util.tree_leaves_with_path(new))
    flax_own = dict(jax.tree_util.tree_leaves_with_path(variables))
    checked = 0
    for path, theirs in flax_own.items():
        a, b = np.asarray(ours[path]), np.asarray(theirs)
        assert a.shape == b.shape and a.dtype == b.dtype
        if np.all(b == b.flat[0]):  # zeros / ones
            np.testing.assert_array_equal(a, b)
        else:
            assert b.size >= 12_288, path
            assert stats.ks_2samp(a.ravel(), b.ravel()).pvalue > KS_P, path
            checked += 1
    assert checked == 8  # embedding, q/k/v/out kernels, dense, conv, conv_transpose kernels


def test_torch_defaults_give_the_flax_twin_the_plans_of_the_torch_model() -> None:
    """The rule and plan each Flax parameter gets equal those of its torch twin's parameter
    (torch shapes, torch layouts) under the same policy."""
    abstract = jax.eval_shape(Zoo().init, jax.random.key(1), *ZOO_ARGS)
    rows = _rows(_linen_report("torch-defaults", abstract, Zoo(), ZOO_ARGS))
    twins = {  # flax path: (torch shape, torch layout) of the twin parameter
        "Dense.0.kernel": ((128, 128), "torch"),
        "Conv.0.kernel": ((48, 48, 3, 3), "torch"),
        "ConvTranspose.0.kernel": ((48, 48, 3, 3), "torch_transposed"),
        "Embed.0.embedding": ((1000, 128), "embedding"),
    }
    policy = initspec.preset("torch-defaults")
    for path, (shape, layout) in twins.items():
        row = rows[path]
        spec = policy.rules[row["rule_index"]].init
        assert row["plan"] == spec.plan(shape, layout).describe(), path
    # torch's Linear bias: U(+-1/sqrt(fan_in of the weight))
    assert rows["Dense.0.bias"]["plan"].startswith("uniform(low=-0.08839, high=0.08839)")
    assert rows["Conv.0.bias"]["plan"].startswith("uniform(low=-0.04811, high=0.04811)")


# nnx ---------------------------------------------------------------------------------------


class NnxNet(nnx.Module):
    def __init__(self, rngs: nnx.Rngs, dtype=jnp.float32):
        self.layers = nnx.List([nnx.Linear(16, 16, param_dtype=dtype, rngs=rngs) for _ in range(2)])
        self.emb = nnx.Embed(10, 16, rngs=rngs)
        self.attn = nnx.MultiHeadAttention(num_heads=2, in_features=16, decode=False, rngs=rngs)
        self.up = nnx.ConvTranspose(8, 4, (3,), transpose_kernel=True, rngs=rngs)
        self.general = nnx.LinearGeneral((4, 4), 6, axis=(-2, -1), rngs=rngs)
        self.norm = nnx.LayerNorm(16, rngs=rngs)
        self.cell = nnx.LSTMCell(4, 6, rngs=rngs)


def _abstract_net(dtype=jnp.float32) -> NnxNet:
    """The module with jax.ShapeDtypeStruct values (nnx.eval_shape): nothing is computed
    until apply_nnx writes every parameter."""
    return nnx.eval_shape(lambda: NnxNet(nnx.Rngs(0), dtype=dtype))


def _param_values(net: nnx.Module) -> list:
    return [v.get_value() for _, v in nnx.iter_graph(net) if isinstance(v, nnx.Param)]


def test_describe_nnx_kinds_roles_layouts() -> None:
    net = _abstract_net()
    report = initspec_jax.resolve_params("torch-defaults", initspec_jax.describe_nnx(net)).report()
    rows = _rows(report)
    expected = {
        "layers.1.kernel": ("layers/1/kernel", "linear", "kernel", "flax", [16, 16]),
        "attn.value.kernel": ("attn/value/kernel", "attention", "kernel", "in=[0] out=[1, 2] batch=[]", [16, 16]),
        "attn.out.kernel": ("attn/out/kernel", "linear", "kernel", "in=[0, 1] out=[2] batch=[]", [16, 16]),
        "up.kernel": ("up/kernel", "conv_transpose", "kernel", "flax_transposed", [24, 12]),
        "general.kernel": ("general/kernel", "linear", "kernel", "in=[0, 1] out=[2] batch=[]", [16, 6]),
        "emb.embedding": ("emb/embedding", "embedding", "embedding", "embedding", [16, 10]),
        "norm.scale": ("norm/scale", "norm", "scale", "flax", None),
        "cell.hi.kernel": ("cell/hi/kernel", "rnn", "kernel", "flax", [6, 6]),
    }
    for path, (framework_path, kind, role, layout, fan) in expected.items():
        row = rows[path]
        assert (row["framework_path"], row["kind"], row["role"], row["layout"]) == (
            framework_path, kind, role, layout), path
        if fan is not None:
            assert row["fans"] == fan, path
    assert rows["cell.hi.kernel"]["plan"].startswith("uniform(low=-0.4082")  # 1/sqrt(hidden 6)
    assert report.unmatched == 0


class NnxMLP(nnx.Module):
    def __init__(self, rngs: nnx.Rngs, dtype=jnp.float32):
        self.layers = nnx.List([nnx.Linear(16, 16, param_dtype=dtype, rngs=rngs) for _ in range(2)])


def test_apply_nnx_initializes_in_place_keeping_dtypes() -> None:
    net = nnx.eval_shape(lambda: NnxMLP(nnx.Rngs(0), jnp.bfloat16))
    initspec_jax.apply_nnx("torch-defaults", net, seed=4)
    kernel = net.layers[1].kernel[...]
    assert isinstance(kernel, jax.Array) and kernel.dtype == jnp.bfloat16
    assert np.abs(np.asarray(kernel.astype(jnp.float32))).max() <= 0.25  # U(+-1/sqrt(16))
    concrete = NnxMLP(nnx.Rngs(0))
    old = np.asarray(concrete.layers[0].kernel[...])
    initspec_jax.apply_nnx("torch-defaults", concrete, seed=4)
    assert not np.array_equal(old, np.asarray(concrete.layers[0].kernel[...]))


def test_apply_nnx_same_seed_same_values_as_linen_keying() -> None:
    a = nnx.eval_shape(lambda: NnxMLP(nnx.Rngs(0)))
    b = nnx.eval_shape(lambda: NnxMLP(nnx.Rngs(1)))
    initspec_jax.apply_nnx("flax-defaults", a, seed=9)
    initspec_jax.apply_nnx("flax-defaults", b, seed=9)
    np.testing.assert_array_equal(np.asarray(a.layers[0].kernel[...]), np.asarray(b.layers[0].kernel[...]))
    plan = initspec.parse({"kind": "lecun_normal"}).plan((16, 16), "flax")
    expected = initspec_jax.sample_plan(plan, typed_key(derive_seed(9, "layers.0.kernel")))
    np.testing.assert_array_equal(np.asarray(a.layers[0].kernel[...]), np.asarray(expected))


def test_apply_nnx_values_follow_the_plan() -> None:
    layer = nnx.eval_shape(lambda: nnx.Linear(400, 500, rngs=nnx.Rngs(0)))
    report = initspec_jax.apply_nnx({"initspec": 1, "rules": [{"match": {"role": "kernel"},
                                                "init": {"kind": "kaiming_normal"}}]}, layer)
    (kernel,) = [p for p in report.resolution.params if p.info.path == "kernel"]
    plan = kernel.plan
    assert plan_check(np.asarray(layer.kernel[...]), plan).ok


# All or nothing ----------------------------------------------------------------------------

ERROR_POLICIES = [
    # a kind the model lacks, and unmatched parameters refused
    ({"initspec": 1, "unmatched": "error", "rules": [{"match": {"kind": "rnn"}, "init": {"kind": "zeros"}}]},
     "no rule matches"),
    # a fan-based spec on 1-D biases
    ({"initspec": 1, "rules": [{"match": {"role": "bias"}, "init": {"kind": "lecun_normal"}}]}, "too few"),
]


@pytest.mark.parametrize(("policy", "message"), ERROR_POLICIES)
def test_linen_errors_name_every_parameter_and_return_nothing(policy, message) -> None:
    params = _mlp_params(2)
    with pytest.raises(ResolutionError, match=message) as info:
        initspec_jax.apply(policy, params)
    assert any("layers.1.bias" in p for p in info.value.problems)


@pytest.mark.parametrize(("policy", "message"), ERROR_POLICIES)
def test_nnx_errors_leave_the_module_untouched(policy, message) -> None:
    net = _abstract_net()
    with pytest.raises(InitSpecError, match=message):
        initspec_jax.apply_nnx(policy, net)
    assert all(isinstance(v, jax.ShapeDtypeStruct) for v in _param_values(net))


def test_values_the_dtype_cannot_hold_are_refused_before_sampling() -> None:
    params = MLP(2).init(jax.random.key(0), jnp.ones((1, 16), jnp.float16))
    params = jax.tree_util.tree_map(lambda x: x.astype(jnp.float16), params)
    policy = {"initspec": 1, "rules": [{"match": {"role": "bias"}, "init": {"kind": "constant", "value": 1e5}}]}
    with pytest.raises(ResolutionError, match="float16") as info:
        initspec_jax.apply(policy, params)
    assert len(info.value.problems) == 2  # both biases named


def test_bad_arguments_are_initspec_errors() -> None:
    with pytest.raises(BackendError):
        initspec_jax.apply("flax-defaults", [1, 2, 3])
    with pytest.raises(BackendError):
        initspec_jax.apply("flax-defaults", {"params": {"w": "not an array"}})
    with pytest.raises(BackendError):
        initspec_jax.apply("flax-defaults", _mlp_params(1), model="not a module")
    with pytest.raises(BackendError):
        initspec_jax.apply_nnx("flax-defaults", {"not": "a module"})
    with pytest.raises(InitSpecError):
        initspec_jax.apply("no-such-preset", _mlp_params(1))
    with pytest.raises(BackendError, match="model_args"):
        initspec_jax.apply("flax-defaults", _mlp_params(1), model=MLP(1), model_args=("text",))


# Abstract and boxed parameters -------------------------------------------------------------


def test_abstract_params_are_materialized_and_boxed_params_stay_boxed() -> None:
    class Sharded(nn.Module):
        @nn.compact
        def __call__(self, x):
            init = nn.with_partitioning(nn.initializers.lecun_normal(), (None, "model"))
            return nn.Dense(16, kernel_init=init)(x)

    abstract = jax.eval_shape(Sharded().init, jax.random.key(0), jnp.ones((1, 8)))
    kernel_box = abstract["params"]["Dense_0"]["kernel"]
    assert isinstance(kernel_box, nn.Partitioned)
    new, report = initspec_jax.apply("flax-defaults", abstract)
    box = new["params"]["Dense_0"]["kernel"]
    assert isinstance(box, nn.Partitioned) and box.names == (None, "model")
    assert isinstance(box.value, jax.Array) and box.value.shape == (8, 16)
    assert _rows(report)["Dense.0.kernel"]["device"] == "abstract"


def test_lazy_names_stay_functions_after_their_submodule_is_imported() -> None:
    """``initspec_jax.explain`` is the function on every access, although a submodule of
    the same name is imported to provide it."""
    import importlib

    importlib.import_module("initspec_jax.explain")
    for _ in range(2):
        assert callable(initspec_jax.explain) and initspec_jax.explain.__name__ == "explain"
