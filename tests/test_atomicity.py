"""Atomicity (issue 10, item 4): a failure while parameters are being written leaves the
model exactly as it was.

A sampler is replaced by one that fails on the k-th parameter (the first, the second, the
last), either before it writes anything or after writing half of that parameter (a failure
in the middle of a fill, as a device error in a rejection loop would be). Afterwards the
injected exception must have reached the caller and every tensor of the state (parameters
and buffers) must be bit-identical to before: compared as raw bytes, so -0.0 / 0.0 and NaN
payloads count.

Before ``apply`` every parameter and buffer is set to a random pattern, so that whatever
``apply`` writes (ones for a norm scale, zeros for a bias) differs from it.

- torch: ``initspec_torch.apply`` (native and portable streams);
- Flax: ``initspec_jax.apply`` (linen trees, functional: the input tree must be untouched
  and nothing returned) and ``initspec_jax.apply_nnx`` (nnx modules, in place).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import initspec_torch
import initspec_torch.backend
import initspec_torch.portable
import numpy as np
import pytest
import torch
from torch import nn

SEED = 31337


class Injected(RuntimeError):
    """The failure the tests inject."""


def caused_by_injection(exc: BaseException) -> bool:
    """The injected exception is ``exc`` or in its cause/context chain (an adapter may wrap
    it in its own error; it must not swallow it)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, Injected):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class FailOn:
    """Wraps ``real``; the k-th call (1-based) fails, after half-writing its tensor if
    ``midway``. ``calls`` counts every call, ``fired`` says whether the failure happened."""

    def __init__(self, real: Callable[..., Any], k: int | None, midway: bool = False) -> None:
        self.real, self.k, self.midway = real, k, midway
        self.calls = 0
        self.fired = False

    def __call__(self, tensor: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if self.calls == self.k:
            self.fired = True
            if self.midway:
                with torch.no_grad():
                    # half the elements in storage order (a channels_last tensor has no view(-1))
                    flat = tensor.as_strided((tensor.numel(),), (1,))
                    flat[: max(1, flat.numel() // 2)] = 123.0
            raise Injected(f"injected failure at parameter {self.k}")
        return self.real(tensor, *args, **kwargs)


# torch ------------------------------------------------------------------------------------


class TorchNet(nn.Module):
    """Every write path: in-place fills (float32, contiguous), a float64 layer, a bfloat16
    layer (sampled into a temporary and copied), a channels_last conv (copied by logical
    index), buffers that apply must not touch."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(11, 6)
        self.conv = nn.Conv2d(6, 8, 3).to(memory_format=torch.channels_last)
        self.bn = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8, 5)
        self.fc64 = nn.Linear(5, 4).double()
        self.half = nn.Linear(4, 3).to(torch.bfloat16)


def torch_net() -> TorchNet:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        net = TorchNet()
    gen = torch.Generator().manual_seed(SEED)
    with torch.no_grad():
        for tensor in net.state_dict().values():
            if tensor.is_floating_point():
                tensor.copy_(torch.randn(tensor.shape, generator=gen, dtype=torch.float64))
            else:
                tensor.fill_(7)
    return net


def torch_state(module: nn.Module) -> dict[str, tuple[str, tuple[int, ...], bytes]]:
    """Every state_dict tensor as (dtype, shape, raw bytes in logical order)."""
    out = {}
    for name, t in module.state_dict().items():
        raw = t.detach().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
        out[name] = (str(t.dtype), tuple(t.shape), raw)
    return out


def assert_bit_identical(after: dict[str, Any], before: dict[str, Any]) -> None:
    assert after.keys() == before.keys()
    changed = [name for name in before if after[name] != before[name]]
    assert not changed, f"changed by a failed apply: {changed}"


# The seams apply writes through, per stream: (module, attribute). The native sampler is
# built once per parameter, with the tensor it writes into.
SEAMS = {
    "native": (initspec_torch.backend, "TorchNative"),
    "portable": (initspec_torch.portable, "write_"),
}


def parameters_written(rng: str) -> int:
    """How many times a successful apply goes through the seam: one call per parameter.
    Also checks that it changes every parameter's bytes and no buffer's, so that the
    comparisons of the failure tests can fail."""
    module, name = SEAMS[rng]
    counter = FailOn(getattr(module, name), k=None)
    net = torch_net()
    before = torch_state(net)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(module, name, counter)
        report = initspec_torch.apply("torch-defaults", net, seed=SEED, rng=rng)
    assert counter.calls == len(report.resolution.to_sample()) >= 8
    after = torch_state(net)
    params = {n for n, _ in net.named_parameters()}
    assert all(after[n] != before[n] for n in params)
    assert all(after[n] == before[n] for n in before if n not in params)  # buffers
    return counter.calls


def torch_params() -> Iterator[Any]:
    n = 11  # checked by test_injection_points_are_one_call_per_parameter
    for rng in ("native", "portable"):
        for midway in (False, True):
            for k in (1, 2, n):
                stage = "midway" if midway else "before"
                yield pytest.param(rng, midway, k, id=f"{rng}-{stage}-k{k}")


def test_injection_points_are_one_call_per_parameter() -> None:
    assert parameters_written("native") == parameters_written("portable") == 11


@pytest.mark.parametrize(("rng", "midway", "k"), list(torch_params()))
def test_torch_failure_while_writing_leaves_state_bit_identical(
    rng: str, midway: bool, k: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    net = torch_net()
    before = torch_state(net)
    module, name = SEAMS[rng]
    failing = FailOn(getattr(module, name), k, midway)
    monkeypatch.setattr(module, name, failing)
    with pytest.raises(Exception) as info:  # noqa: B017 - any type, checked just below
        initspec_torch.apply("torch-defaults", net, seed=SEED, rng=rng)
    assert failing.fired, f"the seam {name} was not reached {k} times"
    assert caused_by_injection(info.value), f"the injected failure was replaced: {info.value!r}"
    assert_bit_identical(torch_state(net), before)


def test_torch_sampler_failing_on_the_third_parameter(monkeypatch: pytest.MonkeyPatch) -> None:
    """The sampler's primitives themselves fail (not the seam above), on the 3rd call."""
    from initspec_torch.sampler import TorchNative

    calls = {"n": 0}

    def failing(real: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            calls["n"] += 1
            if calls["n"] == 3:
                raise Injected("sampler failed on the 3rd parameter")
            return real(*args, **kwargs)

        return wrapper

    for primitive in ("constant", "uniform", "normal", "truncated_normal", "orthogonal"):
        monkeypatch.setattr(TorchNative, primitive, failing(getattr(TorchNative, primitive)))
    net = torch_net()
    before = torch_state(net)
    with pytest.raises(Exception) as info:  # noqa: B017 - any type, checked just below
        initspec_torch.apply("torch-defaults", net, seed=SEED)
    assert calls["n"] == 3 and caused_by_injection(info.value)
    assert_bit_identical(torch_state(net), before)


def test_torch_a_failed_restore_does_not_stop_the_others(monkeypatch: pytest.MonkeyPatch) -> None:
    """The 5th write fails and the restore of the 2nd parameter fails too: every other
    parameter gets its values back, and the error names the one that could not be restored
    (the injected failure stays in its cause chain)."""
    from initspec_torch.backend import TorchBackend

    from initspec import InitSpecError

    net = torch_net()
    before = torch_state(net)
    order = [name for name, _ in net.named_parameters()]
    second = dict(net.named_parameters())[order[1]]
    real_restore = TorchBackend.restore

    def restore(self: Any, target: torch.Tensor, snapshot: Any) -> None:
        if target is second:
            raise Injected("restore failed")
        real_restore(self, target, snapshot)

    monkeypatch.setattr(TorchBackend, "restore", restore)
    monkeypatch.setattr(
        initspec_torch.backend, "TorchNative", FailOn(initspec_torch.backend.TorchNative, 5)
    )
    with pytest.raises(InitSpecError, match="could not be restored") as info:
        initspec_torch.apply("torch-defaults", net, seed=SEED)
    assert order[1] in str(info.value) and caused_by_injection(info.value)
    after = torch_state(net)
    changed = [name for name in before if after[name] != before[name]]
    assert changed == [order[1]]


@pytest.mark.parametrize("case", ["expanded", "inference", "sparse", "lazy"])
def test_torch_unwritable_parameters_are_refused_before_any_write(case: str) -> None:
    """Parameters torch cannot write in place are found by the checks, before the first
    write, so a later one cannot leave earlier ones overwritten."""
    from initspec import ResolutionError

    net = torch_net()
    if case == "expanded":
        net.extra = nn.Linear(4, 3)
        net.extra.weight = nn.Parameter(torch.zeros(1, 4).expand(3, 4))
    elif case == "inference":
        with torch.inference_mode():
            net.extra = nn.Linear(4, 4)
    elif case == "sparse":
        net.extra = nn.Embedding(5, 4, sparse=True)
        net.extra.weight = nn.Parameter(torch.eye(5, 4).to_sparse())
    else:
        net.extra = nn.LazyLinear(4)
    extra = net.extra
    del net.extra  # the state of the others (a sparse or lazy tensor has no raw bytes)
    before = torch_state(net)
    net.extra = extra
    with pytest.raises(ResolutionError, match="extra"):
        initspec_torch.apply("torch-defaults", net, seed=SEED)
    del net.extra
    assert_bit_identical(torch_state(net), before)


@pytest.mark.parametrize("rng", ["native", "portable"])
def test_torch_keyboard_interrupt_midway_restores(
    rng: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C in the middle of the 5th parameter's fill: not an Exception, still undone."""
    module, name = SEAMS[rng]
    real = getattr(module, name)
    calls = {"n": 0}

    def interrupted(tensor: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 5:
            with torch.no_grad():
                tensor.as_strided((tensor.numel(),), (1,))[:1] = 99.0
            raise KeyboardInterrupt
        return real(tensor, *args, **kwargs)

    monkeypatch.setattr(module, name, interrupted)
    net = torch_net()
    before = torch_state(net)
    with pytest.raises(KeyboardInterrupt):
        initspec_torch.apply("torch-defaults", net, seed=SEED, rng=rng)
    assert calls["n"] == 5
    assert_bit_identical(torch_state(net), before)


def test_torch_apply_after_a_failure_equals_a_clean_apply(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever a failed apply left, applying again gives exactly the clean result."""
    clean = torch_net()
    initspec_torch.apply("torch-defaults", clean, seed=SEED)
    net = torch_net()
    with monkeypatch.context() as mp:
        seam = initspec_torch.backend
        mp.setattr(seam, "TorchNative", FailOn(seam.TorchNative, 4))
        with pytest.raises(Injected):
            initspec_torch.apply("torch-defaults", net, seed=SEED)
    initspec_torch.apply("torch-defaults", net, seed=SEED)
    assert_bit_identical(torch_state(net), torch_state(clean))


# Flax -------------------------------------------------------------------------------------

try:
    import initspec_jax
    import initspec_jax.policy_apply as policy_apply_jax  # apply / apply_nnx
    import jax
    import jax.numpy as jnp
    from flax import linen, nnx
except ImportError:  # the jax extra is not installed: the torch tests above still run
    HAVE_FLAX = False
else:
    HAVE_FLAX = True

requires_flax = pytest.mark.skipif(not HAVE_FLAX, reason="needs jax and flax (initspec[jax])")


def jax_state(tree: Any) -> dict[str, tuple[str, tuple[int, ...], bytes]]:
    leaves = jax.tree_util.tree_leaves_with_path(tree)
    return {
        jax.tree_util.keystr(path): (str(leaf.dtype), tuple(leaf.shape), np.asarray(leaf).tobytes())
        for path, leaf in leaves
    }


class JaxFailOn:
    """``sample_like`` failing on its k-th call (the k-th parameter)."""

    def __init__(self, real: Callable[..., Any], k: int) -> None:
        self.real, self.k, self.calls = real, k, 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if self.calls == self.k:
            raise Injected(f"injected failure at parameter {self.k}")
        return self.real(*args, **kwargs)


N_JAX = 7  # parameters of Tiny and of TinyLinen


def tiny_nnx() -> Any:
    class Tiny(nnx.Module):
        def __init__(self, rngs: Any) -> None:
            self.emb = nnx.Embed(11, 6, rngs=rngs)
            self.fc = nnx.Linear(6, 5, rngs=rngs)
            self.norm = nnx.LayerNorm(5, rngs=rngs)
            self.out = nnx.Linear(5, 3, rngs=rngs, param_dtype=jnp.bfloat16)

    module = Tiny(nnx.Rngs(SEED))
    # a random pattern in every variable: what apply writes (ones, zeros) differs from it
    rng = np.random.default_rng(SEED)
    for _, variable in nnx.iter_graph(module):
        if isinstance(variable, nnx.Param):
            value = variable[...]
            noise = rng.standard_normal(value.shape).astype(np.float32)
            variable.set_value(jnp.asarray(noise).astype(value.dtype))
    return module


@requires_flax
@pytest.mark.parametrize("k", [1, 2, N_JAX])
def test_nnx_failure_while_sampling_leaves_module_bit_identical(
    k: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = tiny_nnx()
    before = jax_state(nnx.state(module))
    failing = JaxFailOn(policy_apply_jax.sample_like, k)
    monkeypatch.setattr(policy_apply_jax, "sample_like", failing)
    with pytest.raises(Exception) as info:  # noqa: B017 - any type, checked just below
        initspec_jax.apply_nnx("flax-defaults", module, seed=SEED)
    assert failing.calls == k and caused_by_injection(info.value)
    assert_bit_identical(jax_state(nnx.state(module)), before)


@requires_flax
@pytest.mark.parametrize("k", [2, N_JAX])
def test_nnx_failing_assignment_restores_the_assigned(
    k: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The k-th ``set_value`` raises (after earlier variables were assigned): every variable
    gets its previous value back."""
    module = tiny_nnx()
    before = jax_state(nnx.state(module))
    real = nnx.Param.set_value
    calls = {"n": 0}

    def set_value(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == k:
            raise Injected(f"set_value failed on variable {k}")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(nnx.Param, "set_value", set_value)
    with pytest.raises(Injected):
        initspec_jax.apply_nnx("flax-defaults", module, seed=SEED)
    monkeypatch.undo()
    assert calls["n"] >= k
    assert_bit_identical(jax_state(nnx.state(module)), before)


@requires_flax
def test_nnx_injection_counts_one_call_per_parameter(monkeypatch: pytest.MonkeyPatch) -> None:
    counter = JaxFailOn(policy_apply_jax.sample_like, k=0)
    monkeypatch.setattr(policy_apply_jax, "sample_like", counter)
    module = tiny_nnx()
    before = jax_state(nnx.state(module))
    report = initspec_jax.apply_nnx("flax-defaults", module, seed=SEED)
    assert counter.calls == len(report.resolution.to_sample()) == N_JAX
    # and a successful apply does change every parameter (so the comparisons above can fail)
    after = jax_state(nnx.state(module))
    assert all(after[name] != before[name] for name in before)


def tiny_linen() -> Any:
    class TinyLinen(linen.Module):
        @linen.compact
        def __call__(self, tokens: Any) -> Any:
            h = linen.Embed(11, 6)(tokens)
            h = linen.LayerNorm()(linen.Dense(5)(h))
            return linen.Dense(3, param_dtype=jnp.bfloat16)(h)

    return TinyLinen()


@requires_flax
@pytest.mark.parametrize("k", [1, N_JAX])
def test_linen_failure_leaves_input_tree_bit_identical(
    k: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = tiny_linen()
    variables = model.init(jax.random.key(SEED), jnp.zeros((1, 2), jnp.int32))
    before = jax_state(variables)
    failing = JaxFailOn(policy_apply_jax.sample_like, k)
    monkeypatch.setattr(policy_apply_jax, "sample_like", failing)
    with pytest.raises(Exception) as info:  # noqa: B017 - any type, checked just below
        initspec_jax.apply("flax-defaults", variables, seed=SEED, model=model)
    assert failing.calls == k and caused_by_injection(info.value)
    assert_bit_identical(jax_state(variables), before)
