"""Atomicity (issue 10 item 4, issue 21 item 1): a failure while parameters are being
written leaves the model exactly as it was (``atomic="backup"``, and for what the default
backs up), or names every parameter it left with new values (the default's in-place
writes, for failures no check can foresee); a Ctrl-C (SIGINT, sent with ``os.kill`` from
inside the k-th write) is deferred until every write is done.

A sampler is replaced by one that fails on the k-th parameter (the first, the second, the
last), either before it writes anything or after writing half of that parameter (a failure
in the middle of a fill, as a device error in a rejection loop would be). Afterwards the
injected exception must have reached the caller and every tensor of the state (parameters
and buffers) must be bit-identical to before (backup) or changed only where the error says
(default): compared as raw bytes, so -0.0 / 0.0 and NaN payloads count.

Before ``apply`` every parameter and buffer is set to a random pattern, so that whatever
``apply`` writes (ones for a norm scale, zeros for a bias) differs from it.

- torch: ``initspec_torch.apply`` (native and portable streams);
- Flax: ``initspec_jax.apply`` (linen trees, functional: the input tree must be untouched
  and nothing returned) and ``initspec_jax.apply_nnx`` (nnx modules, in place).
"""

from __future__ import annotations

import os
import re
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any

import initspec_torch
import initspec_torch.backend
import initspec_torch.portable
import numpy as np
import pytest
import torch
from torch import nn

from initspec import PartialWriteError

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
def test_torch_backup_failure_while_writing_leaves_state_bit_identical(
    rng: str, midway: bool, k: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    net = torch_net()
    before = torch_state(net)
    module, name = SEAMS[rng]
    failing = FailOn(getattr(module, name), k, midway)
    monkeypatch.setattr(module, name, failing)
    with pytest.raises(Exception) as info:  # noqa: B017 - any type, checked just below
        initspec_torch.apply("torch-defaults", net, seed=SEED, rng=rng, atomic="backup")
    assert failing.fired, f"the seam {name} was not reached {k} times"
    assert caused_by_injection(info.value), f"the injected failure was replaced: {info.value!r}"
    assert_bit_identical(torch_state(net), before)


def named_in(error: BaseException) -> dict[str, str]:
    """``{path: what}`` from the lines of a ``PartialWriteError`` (or a note)."""
    text = "\n".join([str(error), *getattr(error, "__notes__", [])])
    return dict(re.findall(r"^  (\S+): (.+)$", text, flags=re.M))


@pytest.mark.parametrize(("rng", "midway", "k"), list(torch_params()))
def test_torch_default_failure_names_every_parameter_it_changed(
    rng: str, midway: bool, k: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In place, a failure after the checks cannot be undone: the error names the k - 1
    parameters written and the k-th (whose write failed); nothing else changed."""
    net = torch_net()
    before = torch_state(net)
    module, name = SEAMS[rng]
    failing = FailOn(getattr(module, name), k, midway)
    monkeypatch.setattr(module, name, failing)
    with pytest.raises(PartialWriteError) as info:
        initspec_torch.apply("torch-defaults", net, seed=SEED, rng=rng)
    assert failing.fired and caused_by_injection(info.value)
    named = named_in(info.value)
    assert len(named) == k
    assert list(named.values()) == ["written in place"] * (k - 1) + [
        "its write failed (it may hold part of the new values)"
    ]
    after = torch_state(net)
    changed = {n for n in before if after[n] != before[n]}
    assert changed <= set(named)
    assert len(changed) == k - 1 + midway  # the k-th changed only if it was half written


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
        initspec_torch.apply("torch-defaults", net, seed=SEED, atomic="backup")
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
    with pytest.raises(InitSpecError, match="not restored") as info:
        initspec_torch.apply("torch-defaults", net, seed=SEED, atomic="backup")
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
def test_torch_keyboard_interrupt_raised_midway(rng: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A KeyboardInterrupt raised by code in the middle of the 5th parameter's fill (not a
    signal, so not deferred): undone with backups; in place, it reaches the caller as it
    is, with a note naming the five parameters concerned."""
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
        initspec_torch.apply("torch-defaults", net, seed=SEED, rng=rng, atomic="backup")
    assert calls["n"] == 5
    assert_bit_identical(torch_state(net), before)
    calls["n"] = 0
    with pytest.raises(KeyboardInterrupt) as info:
        initspec_torch.apply("torch-defaults", net, seed=SEED, rng=rng)
    assert len(named_in(info.value)) == 5 and calls["n"] == 5


def test_torch_apply_after_a_failure_equals_a_clean_apply(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever a failed apply left, applying again gives exactly the clean result."""
    clean = torch_net()
    initspec_torch.apply("torch-defaults", clean, seed=SEED)
    net = torch_net()
    with monkeypatch.context() as mp:
        seam = initspec_torch.backend
        mp.setattr(seam, "TorchNative", FailOn(seam.TorchNative, 4))
        with pytest.raises(PartialWriteError):
            initspec_torch.apply("torch-defaults", net, seed=SEED)
    initspec_torch.apply("torch-defaults", net, seed=SEED)
    assert_bit_identical(torch_state(net), torch_state(clean))


class SigintOn:
    """Wraps ``real``; the k-th call sends SIGINT to this process (``os.kill``) and then
    goes on writing, as a Ctrl-C arriving in the middle of the write phase."""

    def __init__(self, real: Callable[..., Any], k: int) -> None:
        self.real, self.k, self.calls = real, k, 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if self.calls == self.k:
            os.kill(os.getpid(), signal.SIGINT)
        return self.real(*args, **kwargs)


def clean_torch_state(rng: str) -> dict[str, Any]:
    clean = torch_net()
    initspec_torch.apply("torch-defaults", clean, seed=SEED, rng=rng)
    return torch_state(clean)


@pytest.mark.parametrize("atomic", [True, "backup"])
@pytest.mark.parametrize("rng", ["native", "portable"])
def test_torch_sigint_during_the_writes_is_deferred(
    rng: str, atomic: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGINT from inside the 3rd write: every parameter is written (the state equals a
    clean apply's), then KeyboardInterrupt; the previous SIGINT handler is back."""
    module, name = SEAMS[rng]
    hook = SigintOn(getattr(module, name), 3)
    monkeypatch.setattr(module, name, hook)
    net = torch_net()
    previous = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        initspec_torch.apply("torch-defaults", net, seed=SEED, rng=rng, atomic=atomic)
    assert hook.calls == 11
    assert signal.getsignal(signal.SIGINT) is previous
    monkeypatch.undo()
    assert_bit_identical(torch_state(net), clean_torch_state(rng))


def test_torch_sigint_without_deferral_interrupts(monkeypatch: pytest.MonkeyPatch) -> None:
    """atomic=False defers nothing: the same SIGINT stops apply in the middle (what the
    test above would see if the deferral did not work)."""
    hook = SigintOn(initspec_torch.backend.TorchNative, 3)
    monkeypatch.setattr(initspec_torch.backend, "TorchNative", hook)
    with pytest.raises(KeyboardInterrupt):
        initspec_torch.apply("torch-defaults", torch_net(), seed=SEED, atomic=False)
    assert hook.calls < 11


def test_torch_sigint_during_the_checks_writes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Ctrl-C before the write phase raises at once; nothing is written."""
    real = initspec_torch.backend.TorchBackend.unwritable

    def unwritable(self: Any, target: torch.Tensor, job: Any) -> str | None:
        os.kill(os.getpid(), signal.SIGINT)
        return real(self, target, job)

    monkeypatch.setattr(initspec_torch.backend.TorchBackend, "unwritable", unwritable)
    net = torch_net()
    before = torch_state(net)
    with pytest.raises(KeyboardInterrupt):
        initspec_torch.apply("torch-defaults", net, seed=SEED)
    assert_bit_identical(torch_state(net), before)


class OpaqueParam(nn.Parameter):
    """A parameter subclass initspec knows nothing of (as a quantized wrapper would be)."""


def with_opaque_weight() -> TorchNet:
    net = torch_net()
    net.fc.weight = OpaqueParam(net.fc.weight.detach().clone())
    return net


def test_torch_default_backs_up_unknown_subclasses_and_reports_them() -> None:
    net = with_opaque_weight()
    report = initspec_torch.apply("torch-defaults", net, seed=SEED)
    assert len(report.resolution.backed_up) == 1
    assert report.resolution.backed_up[0].startswith("fc.weight: a ")
    assert "OpaqueParam (a tensor subclass initspec cannot vouch for)" in str(report)
    assert report.to_dict()["backed_up"] == report.resolution.backed_up


def test_torch_default_undoes_a_failing_unknown_subclass(monkeypatch: pytest.MonkeyPatch) -> None:
    """The subclass's write fails midway: it was written first, with a backup, so the
    whole state is as before and the failure itself reaches the caller."""
    net = with_opaque_weight()
    before = torch_state(net)
    real = initspec_torch.backend.TorchNative
    calls = []

    def native(tensor: torch.Tensor, *args: Any) -> Any:
        calls.append(type(tensor))
        if isinstance(tensor, OpaqueParam):
            with torch.no_grad():
                tensor.view(-1)[:3] = 5.0
            raise Injected("the subclass refused the write")
        return real(tensor, *args)

    monkeypatch.setattr(initspec_torch.backend, "TorchNative", native)
    with pytest.raises(Injected):
        initspec_torch.apply("torch-defaults", net, seed=SEED)
    assert calls == [OpaqueParam]
    assert_bit_identical(torch_state(net), before)


def test_torch_apply_in_a_thread_and_nested(monkeypatch: pytest.MonkeyPatch) -> None:
    """From a worker thread (no handler can be installed there, none is needed) apply
    writes everything and leaves the handler alone; an apply nested in another's write
    phase (from a hook) defers to the outer one, which delivers the SIGINT once, at its
    end, after both wrote everything."""
    previous = signal.getsignal(signal.SIGINT)
    nets = [torch_net(), torch_net()]
    errors: list[BaseException] = []

    def work(net: nn.Module) -> None:
        try:
            initspec_torch.apply("torch-defaults", net, seed=SEED)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in nets]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and signal.getsignal(signal.SIGINT) is previous
    clean = clean_torch_state("native")
    for net in nets:
        assert_bit_identical(torch_state(net), clean)

    inner = torch_net()
    real = initspec_torch.backend.TorchNative
    calls = {"n": 0}

    def nesting(tensor: torch.Tensor, *args: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 2:
            monkeypatch.setattr(initspec_torch.backend, "TorchNative", SigintOn(real, 1))
            initspec_torch.apply("torch-defaults", inner, seed=SEED)  # SIGINT in its 1st write
            monkeypatch.setattr(initspec_torch.backend, "TorchNative", nesting)
        return real(tensor, *args)

    monkeypatch.setattr(initspec_torch.backend, "TorchNative", nesting)
    outer = torch_net()
    with pytest.raises(KeyboardInterrupt):
        initspec_torch.apply("torch-defaults", outer, seed=SEED)
    assert calls["n"] == 11 and signal.getsignal(signal.SIGINT) is previous
    monkeypatch.undo()
    assert_bit_identical(torch_state(outer), clean)
    assert_bit_identical(torch_state(inner), clean)


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
def test_nnx_backup_failure_while_sampling_leaves_module_bit_identical(
    k: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = tiny_nnx()
    before = jax_state(nnx.state(module))
    failing = JaxFailOn(policy_apply_jax.sample_like, k)
    monkeypatch.setattr(policy_apply_jax, "sample_like", failing)
    with pytest.raises(Exception) as info:  # noqa: B017 - any type, checked just below
        initspec_jax.apply_nnx("flax-defaults", module, seed=SEED, atomic="backup")
    assert failing.calls == k and caused_by_injection(info.value)
    assert_bit_identical(jax_state(nnx.state(module)), before)


@requires_flax
@pytest.mark.parametrize("k", [1, 2, N_JAX])
def test_nnx_default_failure_names_every_variable_it_assigned(
    k: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Assigned as sampled (each old array released): a failure on the k-th leaves the
    k - 1 before it assigned, and the error names them (and the k-th, not assigned)."""
    module = tiny_nnx()
    before = jax_state(nnx.state(module))
    failing = JaxFailOn(policy_apply_jax.sample_like, k)
    monkeypatch.setattr(policy_apply_jax, "sample_like", failing)
    with pytest.raises(PartialWriteError) as info:
        initspec_jax.apply_nnx("flax-defaults", module, seed=SEED)
    assert caused_by_injection(info.value)
    named = named_in(info.value)
    assert len(named) == k
    after = jax_state(nnx.state(module))
    changed = [n for n in before if after[n] != before[n]]
    assert len(changed) == k - 1
    # state keys spell paths as ['emb']['embedding'], the error as emb.embedding
    spelled = {".".join(re.findall(r"\['?([^'\]]+)'?\]", n)) for n in changed}
    assert spelled <= set(named)


@requires_flax
@pytest.mark.parametrize("k", [2, N_JAX])
def test_nnx_failing_assignment_restores_the_assigned(
    k: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The k-th ``set_value`` raises (after earlier variables were assigned): with backups
    every variable gets its previous value back; in place, the error names the k - 1."""
    real = nnx.Param.set_value
    calls = {"n": 0}

    def set_value(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == k:
            raise Injected(f"set_value failed on variable {k}")
        return real(self, *args, **kwargs)

    module = tiny_nnx()
    before = jax_state(nnx.state(module))
    monkeypatch.setattr(nnx.Param, "set_value", set_value)
    with pytest.raises(Injected):
        initspec_jax.apply_nnx("flax-defaults", module, seed=SEED, atomic="backup")
    monkeypatch.undo()
    assert calls["n"] >= k
    assert_bit_identical(jax_state(nnx.state(module)), before)
    calls["n"] = 0
    monkeypatch.setattr(nnx.Param, "set_value", set_value)
    with pytest.raises(PartialWriteError) as info:
        initspec_jax.apply_nnx("flax-defaults", module, seed=SEED)
    monkeypatch.undo()
    assert len(named_in(info.value)) == k and calls["n"] == k


def clean_nnx_state() -> dict[str, Any]:
    clean = tiny_nnx()
    initspec_jax.apply_nnx("flax-defaults", clean, seed=SEED)
    return jax_state(nnx.state(clean))


@requires_flax
@pytest.mark.parametrize("atomic", [True, "backup"])
def test_nnx_sigint_during_the_writes_is_deferred(
    atomic: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    hook = SigintOn(policy_apply_jax.sample_like, 2)
    monkeypatch.setattr(policy_apply_jax, "sample_like", hook)
    module = tiny_nnx()
    previous = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        initspec_jax.apply_nnx("flax-defaults", module, seed=SEED, atomic=atomic)
    assert hook.calls == N_JAX and signal.getsignal(signal.SIGINT) is previous
    monkeypatch.undo()
    assert_bit_identical(jax_state(nnx.state(module)), clean_nnx_state())


@requires_flax
def test_nnx_param_subclass_is_backed_up_and_restored(monkeypatch: pytest.MonkeyPatch) -> None:
    """A variable of an nnx.Param subclass is assigned first, its old array kept: when its
    assignment fails, the module is as before; when it succeeds, the report names it."""

    class Opaque(nnx.Param):  # type: ignore[type-arg]
        pass

    def with_opaque() -> Any:
        module = tiny_nnx()
        module.fc.kernel = Opaque(module.fc.kernel[...])
        return module

    module = with_opaque()
    report = initspec_jax.apply_nnx("flax-defaults", module, seed=SEED)
    assert [b.split(":")[0] for b in report.resolution.backed_up] == ["fc.kernel"]
    module = with_opaque()
    before = jax_state(nnx.state(module))

    real = Opaque.set_value
    calls = {"n": 0}

    def refuse(self: Any, *args: Any, **kwargs: Any) -> Any:  # the 1st: the new value
        calls["n"] += 1
        if calls["n"] == 1:
            raise Injected("the subclass refused the assignment")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Opaque, "set_value", refuse)
    with pytest.raises(Injected):
        initspec_jax.apply_nnx("flax-defaults", module, seed=SEED)
    monkeypatch.undo()
    assert calls["n"] == 2  # refused, then the restore
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


@requires_flax
def test_linen_sigint_while_sampling_returns_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """linen is functional: nothing to protect, nothing deferred; a Ctrl-C stops it and
    the input tree is as it was."""
    model = tiny_linen()
    variables = model.init(jax.random.key(SEED), jnp.zeros((1, 2), jnp.int32))
    before = jax_state(variables)
    hook = SigintOn(policy_apply_jax.sample_like, 2)
    monkeypatch.setattr(policy_apply_jax, "sample_like", hook)
    with pytest.raises(KeyboardInterrupt):
        initspec_jax.apply("flax-defaults", variables, seed=SEED, model=model)
    assert hook.calls < N_JAX
    assert_bit_identical(jax_state(variables), before)
