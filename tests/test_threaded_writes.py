"""Writes on several threads (issue 21 item 2): the default ``apply`` draws the parameters of
a large CPU model side by side (``TorchBackend.threads``, ``engine.write_all``), with a
generator of its own per parameter, so the values are bit for bit those of one thread;
what all-or-nothing promises (every check first, Ctrl-C deferred, a failure naming what it
changed) holds on threads as on one; progress is reported on the calling thread.

``THREADED_FROM`` is lowered for the small models here (the threads are the same whatever
the size) and torch is given two threads, as on the 2-core CI machine.
"""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import initspec_torch
import initspec_torch.backend as backend_mod
import pytest
import torch
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

import initspec
from initspec import PartialWriteError
from initspec.backend import ConstantPlan, Job
from initspec.engine import _spread, write_all

SEED = 4242
WRITER = "initspec-write-"
REAL_NATIVE = backend_mod.TorchNative


class Net(nn.Module):
    """Every write path of the torch backend: float32 fills, float64, bfloat16 (drawn into a
    temporary), channels_last, an embedding's padding row, weight_norm (g set from v)."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(40, 16, padding_idx=3)
        self.conv = nn.Conv2d(16, 24, 3).to(memory_format=torch.channels_last)
        self.bn = nn.BatchNorm2d(24)
        self.fc1 = nn.Linear(24, 48)
        self.fc2 = weight_norm(nn.Linear(48, 32))
        self.fc64 = nn.Linear(32, 16).double()
        self.half = nn.Linear(16, 8).to(torch.bfloat16)
        self.fused = nn.Linear(16, 3 * 16, bias=False)


POLICY = {
    "initspec": 1,
    "extends": "torch-defaults",
    "rules": [
        {
            "match": {"path": ["fused.weight"]},
            "init": {"kind": "xavier_normal"},
            "blocks": {"axis": "out", "split": ["q", "k", "v"], "init": {"k": {"kind": "zeros"}}},
        },
        {
            "match": {"path": ["emb.weight"]},
            "init": {"kind": "normal", "std": 0.5},
            "zero_padding_row": True,
        },
    ],
}


def net() -> Net:
    """A Net whose every floating tensor holds a pattern no apply writes."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        model = Net()
    gen = torch.Generator().manual_seed(SEED)
    with torch.no_grad():
        for tensor in model.state_dict().values():
            if tensor.is_floating_point():
                tensor.copy_(torch.randn(tensor.shape, generator=gen, dtype=torch.float64))
    return model


def state(module: nn.Module) -> dict[str, bytes]:
    return {
        k: v.detach().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
        for k, v in module.state_dict().items()
    }


@pytest.fixture
def threaded(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Two torch threads and no size threshold, restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    monkeypatch.setattr(backend_mod, "THREADED_FROM", 0)
    yield
    torch.set_num_threads(before)


class Seam:
    """Wraps the native sampler's constructor (one call per parameter or block written):
    records the writing thread's name; the k-th call runs ``on_call`` first."""

    def __init__(self, k: int | None = None, on_call: Callable[[torch.Tensor], None] | None = None):
        self.real = REAL_NATIVE
        self.k, self.on_call = k, on_call
        self.lock = threading.Lock()
        self.threads: list[str] = []

    def __call__(self, tensor: torch.Tensor, *args: Any) -> Any:
        with self.lock:
            self.threads.append(threading.current_thread().name)
            calls = len(self.threads)
        if calls == self.k and self.on_call is not None:
            self.on_call(tensor)
        return self.real(tensor, *args)


def apply(model: nn.Module, **kw: Any) -> initspec.Report:
    return initspec_torch.apply(POLICY, model, seed=SEED, **kw)


def threads_chosen(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Records what ``TorchBackend.threads`` decides at each apply."""
    chosen: list[int] = []
    real = backend_mod.TorchBackend.threads

    def spy(self: Any, work: Any) -> int:
        chosen.append(real(self, work))
        return chosen[-1]

    monkeypatch.setattr(backend_mod.TorchBackend, "threads", spy)
    return chosen


def test_threads_write_the_values_one_thread_writes(
    threaded: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    one, two = net(), net()
    monkeypatch.setattr(backend_mod, "MAX_THREADS", 1)
    seam = Seam()
    monkeypatch.setattr(backend_mod, "TorchNative", seam)
    apply(one)
    assert set(seam.threads) == {"MainThread"}

    monkeypatch.setattr(backend_mod, "MAX_THREADS", 8)
    seam = Seam()
    monkeypatch.setattr(backend_mod, "TorchNative", seam)
    report = apply(two)
    writers = {name for name in seam.threads if name.startswith(WRITER)}
    assert len(writers) == 2
    assert "MainThread" not in seam.threads
    assert state(one) == state(two)
    assert state(two) != state(net())  # the comparison above can fail
    # the padding row, the zero block and g = ||v|| are there on threads too
    assert not two.emb.weight[3].any() and not two.fused.weight[16:32].any()
    g = two.fc2.parametrizations.weight.original0
    v = two.fc2.parametrizations.weight.original1
    torch.testing.assert_close(g, torch.norm_except_dim(v, 2, 0), rtol=0, atol=0)
    assert report.resolution.backed_up == []


def test_a_large_model_is_written_on_torch_threads_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the fixture: a model over ``THREADED_FROM`` elements gets
    ``torch.get_num_threads()`` writers, a small one the calling thread."""
    chosen = threads_chosen(monkeypatch)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        big = nn.Sequential(nn.Linear(1024, 1024), nn.Linear(1024, 1024))
        initspec_torch.apply("torch-defaults", big, seed=SEED)
        initspec_torch.apply("torch-defaults", net(), seed=SEED)
    finally:
        torch.set_num_threads(before)
    assert backend_mod.THREADED_FROM <= 2 * 1024 * 1024 < sum(p.numel() for p in big.parameters())
    assert chosen == [2, 1]


class Watching(torch.overrides.TorchFunctionMode):
    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        return func(*args, **(kwargs or {}))


def test_one_thread_where_order_or_thread_local_state_matters(
    threaded: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The portable stream (it threads each large tensor itself), one torch thread, a torch
    function mode (per thread: the writers would not see it), inference mode."""
    chosen = threads_chosen(monkeypatch)
    apply(net(), rng="portable")
    torch.set_num_threads(1)
    apply(net())
    torch.set_num_threads(2)
    with Watching():
        apply(net())
    with torch.inference_mode():
        model = net()  # inference tensors: written only in inference mode
    with torch.inference_mode():
        apply(model)
    apply(net())
    assert chosen == [1, 1, 1, 1, 2]


def test_progress_is_reported_on_the_calling_thread(threaded: None) -> None:
    calls: list[tuple[int, int, str, str]] = []

    def progress(done: int, total: int, path: str) -> None:
        calls.append((done, total, path, threading.current_thread().name))

    model = net()
    report = apply(model, progress=progress)
    written = [row for row in report.resolution.to_sample()]
    assert {c[3] for c in calls} == {"MainThread"}
    total = sum(p.numel() for n, p in model.named_parameters() if not n.endswith("original0"))
    assert [c[1] for c in calls] == [total] * len(calls)
    dones = [c[0] for c in calls]
    assert dones == sorted(dones) and dones[-1] == total
    # one call per job: each parameter's own, and one per block of the fused weight
    assert len(calls) == sum((rp.plan is not None) + len(rp.blocks) for rp in written) > len(written)
    assert {c[2] for c in calls} == {rp.info.path for rp in written}


def named_in(error: BaseException) -> dict[str, str]:
    text = "\n".join([str(error), *getattr(error, "__notes__", [])])
    return dict(re.findall(r"^  (\S+): (.+)$", text, flags=re.M))


class Injected(RuntimeError):
    pass


@pytest.mark.parametrize("k", [1, 4])
def test_a_failing_write_on_a_thread_names_what_changed(
    threaded: None, monkeypatch: pytest.MonkeyPatch, k: int
) -> None:
    """The k-th write (on one of the writers) fails: the other writer stops at its next
    parameter; the error names the failing parameter and every one written, which are
    exactly the ones that changed."""

    def fail(tensor: torch.Tensor) -> None:
        raise Injected(f"injected at write {k}")

    seam = Seam(k, fail)
    monkeypatch.setattr(backend_mod, "TorchNative", seam)
    model = net()
    before = state(model)
    with pytest.raises(PartialWriteError) as info:
        apply(model)
    assert isinstance(info.value.__cause__, Injected)
    named = named_in(info.value)
    failing = [p for p, what in named.items() if what.startswith("its write failed")]
    written = {p for p, what in named.items() if what == "written in place"}
    assert len(failing) == 1 and len(named) == len(written) + 1
    after = state(model)
    changed = {n.replace(".parametrizations.weight.original1", ".weight")
               for n in before if after[n] != before[n] and not n.endswith("original0")}  # fmt: skip
    assert changed == written
    assert not any(t.name.startswith(WRITER) for t in threading.enumerate())


def test_sigint_on_a_writer_is_deferred_until_every_parameter_is_written(
    threaded: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    seam = Seam(2, lambda tensor: os.kill(os.getpid(), signal.SIGINT))
    monkeypatch.setattr(backend_mod, "TorchNative", seam)
    model = net()
    previous = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        apply(model)
    assert signal.getsignal(signal.SIGINT) is previous
    assert any(name.startswith(WRITER) for name in seam.threads)
    monkeypatch.setattr(backend_mod, "TorchNative", seam.real)
    clean = net()
    apply(clean)
    assert state(model) == state(clean)


def test_without_deferral_sigint_stops_the_writers_before_apply_returns(
    threaded: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """atomic=False: the Ctrl-C reaches the waiting caller at once; the writers stop at
    their next parameter and are joined before KeyboardInterrupt leaves apply (nothing is
    written after it)."""

    def interrupt_then_dawdle(tensor: torch.Tensor) -> None:
        time.sleep(0.1)  # the caller has started every writer and waits for them
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.2)  # the caller takes the interrupt while this write is under way

    seam = Seam(1, interrupt_then_dawdle)
    monkeypatch.setattr(backend_mod, "TorchNative", seam)
    model = net()
    with pytest.raises(KeyboardInterrupt):
        apply(model, atomic=False)
    assert not any(t.name.startswith(WRITER) for t in threading.enumerate())
    after = state(model)
    time.sleep(0.05)
    assert state(model) == after
    every = Seam()
    monkeypatch.setattr(backend_mod, "TorchNative", every)
    apply(net(), atomic=False)
    # the interrupted writer stopped after the parameter it was writing
    assert seam.threads.count(WRITER + "0") == 1 < every.threads.count(WRITER + "0")


class OpaqueParam(nn.Parameter):
    """A parameter subclass initspec cannot vouch for: backed up, and written first."""


def test_a_backed_up_subclass_is_written_first_on_the_calling_thread(
    threaded: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = net()
    model.fc1.weight = OpaqueParam(model.fc1.weight.detach().clone())
    order: list[tuple[type, str]] = []
    real = REAL_NATIVE

    def seam(tensor: torch.Tensor, *args: Any) -> Any:
        order.append((type(tensor), threading.current_thread().name))
        return real(tensor, *args)

    monkeypatch.setattr(backend_mod, "TorchNative", seam)
    report = apply(model)
    assert order[0] == (OpaqueParam, "MainThread")
    assert all(name.startswith(WRITER) for _, name in order[1:])
    assert [b.split(":")[0] for b in report.resolution.backed_up] == ["fc1.weight"]


# The core's spreading and write loop, with a backend of plain Python objects --------------


def job(path: str, n: int) -> Job:
    return Job(path, ConstantPlan((n,), value=1.0), "torch", 0)


def test_spread_keeps_each_targets_jobs_together_and_in_order() -> None:
    targets = [object() for _ in range(5)]
    sizes = [50, 10, 40, 30, 20]
    work = []
    for i, (t, n) in enumerate(zip(targets, sizes, strict=True)):
        work.append((job(f"p{i}", n), t))
        if i == 2:  # a block after its parameter's own job
            work.append((job(f"p{i}", 5), t))
    parts = _spread(work, 2)
    assert sorted((j.path, j.plan.numel) for p in parts for j, _ in p) == sorted(
        (j.path, j.plan.numel) for j, _ in work
    )
    for part in parts:
        paths = [j.path for j, _ in part]
        if "p2" in paths:
            i = paths.index("p2")
            assert [j.plan.numel for j, _ in part[i : i + 2]] == [40, 5]
    loads = sorted(sum(j.plan.numel for j, _ in p) for p in parts)
    # largest first, each to the lighter part: 50 | 45 (40 + 5), then 30 -> 75, 20 -> 70, 10 -> 80
    assert loads == [75, 80]
    assert _spread(work, 8).__len__() == 5  # never more parts than targets


class ListBackend:
    """Targets are lists; a write puts the job's path in; ``fail`` makes that path raise."""

    atomic: Any = True

    def __init__(self, threads: int, fail: str | None = None) -> None:
        self.n, self.fail = threads, fail

    def dtype(self, target: list[str]) -> str:
        return "float32"

    def unwritable(self, target: list[str], job: Job) -> str | None:
        return None

    def placeholder(self, target: list[str]) -> bool:
        return False

    def backup_reason(self, target: list[str]) -> str | None:
        return None

    def snapshot(self, target: list[str]) -> Any:
        return list(target)

    def restore(self, target: list[str], snapshot: Any) -> None:
        target[:] = snapshot

    def threads(self, work: Any) -> int:
        return self.n

    def write(self, target: list[str], job: Job) -> None:
        if job.path == self.fail:
            raise Injected(job.path)
        time.sleep(0.001)
        target.append(job.path)


def test_write_all_on_threads_ticks_on_the_caller_and_writes_everything() -> None:
    targets: list[list[str]] = [[] for _ in range(12)]
    work = [(job(f"p{i}", i + 1), t) for i, t in enumerate(targets)]
    ticks: list[tuple[str, str]] = []
    seen_threads: set[str] = set()
    backend = ListBackend(3)
    real_write = backend.write

    def write(target: list[str], j: Job) -> None:
        seen_threads.add(threading.current_thread().name)
        real_write(target, j)

    backend.write = write  # type: ignore[method-assign]
    write_all(backend, work, lambda j: ticks.append((j.path, threading.current_thread().name)))
    assert targets == [[f"p{i}"] for i in range(12)]
    assert sorted(p for p, _ in ticks) == sorted(f"p{i}" for i in range(12))
    assert {name for _, name in ticks} == {threading.current_thread().name}
    assert len(seen_threads) == 3 and all(n.startswith(WRITER) for n in seen_threads)


def test_write_all_on_threads_reports_the_failure_and_what_was_written() -> None:
    targets: list[list[str]] = [[] for _ in range(40)]
    work = [(job(f"p{i}", 1), t) for i, t in enumerate(targets)]
    with pytest.raises(PartialWriteError) as info:
        write_all(ListBackend(2, fail="p5"), work)
    named = named_in(info.value)
    assert named.pop("p5").startswith("its write failed")
    assert set(named.values()) <= {"written in place"}
    assert set(named) == {f"p{i}" for i, t in enumerate(targets) if t}
    assert len(named) < 39  # the other writer stopped


def test_write_all_with_every_target_backed_up_restores_them_and_raises_the_error_itself() -> None:
    backend = ListBackend(2, fail="p0")
    backend.atomic = "backup"
    targets: list[list[str]] = [["old"] for _ in range(4)]
    with pytest.raises(Injected):
        write_all(backend, [(job(f"p{i}", 1), t) for i, t in enumerate(targets)])
    assert targets == [["old"]] * 4


def test_large_temporaries_are_made_one_at_a_time(
    threaded: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """bfloat16 weights are drawn in float32 temporaries: from ``LARGE_TEMPORARY`` bytes one
    writer at a time holds one (the peak memory of one thread), smaller ones side by side.
    Without the limit the two writers do hold two at once, so the count below can fail."""
    import initspec_torch.sampler as sampler

    lock = threading.Lock()
    count = {"inside": 0, "peak": 0}
    real = sampler.TorchNative._copy

    def copy(self: Any, plan: Any, x: torch.Tensor) -> torch.Tensor:
        large = x.numel() == 64 * 64  # a weight's float32 temporary, not a bias's
        with lock:
            count["inside"] += large
            count["peak"] = max(count["peak"], count["inside"])
        time.sleep(0.01)  # long enough for the other writer to reach its own
        try:
            return real(self, plan, x)
        finally:
            with lock:
                count["inside"] -= large

    monkeypatch.setattr(sampler.TorchNative, "_copy", copy)
    chosen = threads_chosen(monkeypatch)
    model = nn.Sequential(*[nn.Linear(64, 64) for _ in range(8)]).to(torch.bfloat16)
    monkeypatch.setattr(sampler, "LARGE_TEMPORARY", 4096)  # each weight's 16 KiB, no bias
    initspec_torch.apply("torch-defaults", model, seed=SEED)
    assert count["peak"] == 1 and chosen == [2]
    one = state(model)
    monkeypatch.setattr(sampler, "LARGE_TEMPORARY", 1 << 40)
    count["peak"] = 0
    initspec_torch.apply("torch-defaults", model, seed=SEED)
    assert count["peak"] == 2 and state(model) == one
