"""Fans against the installed torch and jax, gains against torch.nn.init.calculate_gain."""

from __future__ import annotations

import math

import pytest

import initspec

torch = pytest.importorskip("torch")
nn = torch.nn


def torch_fans(w) -> tuple[int, int]:
    return nn.init._calculate_fan_in_and_fan_out(w)


CHEAT_SHEET = [
    # (module, layout, our fans): the reference's cheat-sheet, checked against torch here
    (nn.Linear(5, 3), "torch", (5, 3)),
    (nn.Conv2d(8, 16, 3), "torch", (72, 144)),
    (nn.Conv2d(8, 16, 3, groups=4), "torch", (18, 144)),
    (nn.Conv2d(8, 8, 3, groups=8), "torch", (9, 72)),
    (nn.Embedding(10, 4), "embedding", (4, 10)),
    (nn.Conv1d(4, 6, 5), "torch", (20, 30)),
    (nn.Conv3d(2, 3, (1, 2, 3)), "torch", (12, 18)),
]


@pytest.mark.parametrize("module,layout,expected", CHEAT_SHEET, ids=lambda v: str(v)[:30])
def test_fans_equal_torch(module, layout, expected) -> None:
    assert (
        initspec.fans(tuple(module.weight.shape), layout) == expected == torch_fans(module.weight)
    )


def test_conv_transpose_fans() -> None:
    w = nn.ConvTranspose2d(8, 16, 3).weight  # (in, out, k, k) = (8, 16, 3, 3)
    # torch reads dim 1 (output channels) as fan_in; the torch layout reproduces that,
    assert initspec.fans(tuple(w.shape), "torch") == torch_fans(w) == (144, 72)
    # torch_transposed labels the axes by meaning and agrees with Flax's default kernel.
    assert initspec.fans(tuple(w.shape), "torch_transposed") == (72, 144)
    assert initspec.fans((3, 3, 8, 16), "flax") == (72, 144)
    assert initspec.fans((3, 3, 16, 8), "flax_transposed") == (72, 144)
    wg = nn.ConvTranspose2d(8, 16, 3, groups=4).weight  # (8, 4, 3, 3)
    assert initspec.fans(tuple(wg.shape), "torch") == torch_fans(wg) == (36, 72)


def test_mha_packed_in_proj() -> None:
    w = nn.MultiheadAttention(8, 2).in_proj_weight
    assert initspec.fans(tuple(w.shape), "torch") == torch_fans(w) == (8, 24)


def test_flax_and_torch_layouts_agree_on_the_same_layer() -> None:
    assert initspec.fans((10, 784), "torch") == initspec.fans((784, 10), "flax") == (784, 10)
    assert (
        initspec.fans((16, 2, 3, 3), "torch") == initspec.fans((3, 3, 2, 16), "flax") == (18, 144)
    )


def test_fans_equal_jax_compute_fans() -> None:
    jinit = pytest.importorskip("jax._src.nn.initializers")
    cases = [
        ((5, 3), {}, "flax"),
        ((3, 3, 8, 16), {}, "flax"),
        ((3, 3, 2, 16), {}, "flax"),
        ((512, 8, 64), {"in_axis": 0, "out_axis": (1, 2)}, {"in": [0], "out": [1, 2]}),
        (
            (4, 6, 7, 5),
            {"in_axis": 1, "out_axis": 3, "batch_axis": 0},
            {"in": [1], "out": [3], "batch": [0]},
        ),
    ]
    for shape, kw, layout in cases:
        fi, fo = jinit._compute_fans(shape, **kw)
        assert initspec.fans(shape, layout) == (int(fi), int(fo))


@pytest.mark.parametrize("shape", [(), (7,)])
@pytest.mark.parametrize("layout", ["torch", "flax"])
def test_too_few_dims_names_shape_and_layout(shape, layout) -> None:
    with pytest.raises(initspec.ShapeError) as err:
        initspec.fans(shape, layout)
    assert str(shape) in str(err.value) and layout in str(err.value)
    with pytest.raises(initspec.ShapeError, match="kaiming_normal"):
        initspec.parse({"kind": "kaiming_normal"}).plan(shape, layout)


def test_explicit_axes_allow_one_dim() -> None:
    # As jax's variance_scaling(in_axis=0, out_axis=()) on a (5,) shape.
    assert initspec.fans((5,), {"in": [0], "out": []}) == (5, 1)


def test_bad_layouts() -> None:
    with pytest.raises(initspec.SpecError, match="allowed: torch"):
        initspec.fans((3, 3), "pytorch")
    with pytest.raises(initspec.ShapeError, match="twice"):
        initspec.fans((3, 3), {"in": [0], "out": [0]})
    with pytest.raises(initspec.SpecError, match=r"\$\.layout\.in"):
        initspec.fans((3, 3), {"in": "zero", "out": [1]})


def test_zero_size_shapes_follow_one_rule() -> None:
    # Fans are computed as usual; a zero fan (only possible with no elements) is clamped
    # to 1 in plans; sampling gives an empty array, never a ZeroDivisionError or NaN.
    assert initspec.fans((0, 5), "torch") == (5, 0)
    assert initspec.fans((0, 0), "torch") == (0, 0)
    for kind in sorted(initspec.SPEC_CLASSES):
        spec = initspec.parse({"kind": kind})
        for shape in [(0, 5), (5, 0), (0, 0)] + (
            [(4, 0, 3, 3)] if kind in ("dirac", "delta_orthogonal") else []
        ):
            if kind in ("dirac", "delta_orthogonal") and len(shape) == 2:
                continue
            ctx = initspec.PlanContext(weight_fans=(0, 0), hidden_size=4)
            plan = spec.plan(shape, context=ctx)
            assert math.isfinite(plan.mean) and math.isfinite(plan.var), kind
            x = initspec.sample(spec, shape, context=ctx)
            assert x.shape == shape and x.size == 0


# Gains ----------------------------------------------------------------------------------

NAMES = [
    "linear",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
    "sigmoid",
    "tanh",
    "relu",
    "leaky_relu",
    "selu",
]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("param", [None, 0, 0.2, 1, math.sqrt(5), 10])
def test_calculate_gain_equals_torch(name, param) -> None:
    ours = initspec.calculate_gain(name, param)
    theirs = nn.init.calculate_gain(name, param)
    assert ours == theirs and type(ours) is type(theirs)


def test_calculate_gain_known_values() -> None:
    assert initspec.calculate_gain("leaky_relu") == 1.4141428569978354  # default slope 0.01
    assert initspec.calculate_gain("selu") == 0.75
    assert initspec.calculate_gain("relu", 5) == math.sqrt(2)  # param ignored


@pytest.mark.parametrize(
    "name,param", [("identity", None), ("gelu", None), ("leaky_relu", True), ("leaky_relu", "0.1")]
)
def test_calculate_gain_errors_like_torch(name, param) -> None:
    with pytest.raises(ValueError) as theirs:
        nn.init.calculate_gain(name, param)
    with pytest.raises(initspec.InitSpecError) as ours:
        initspec.calculate_gain(name, param)
    assert str(theirs.value).split(";")[0] in str(ours.value)
