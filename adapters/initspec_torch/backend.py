"""The engine's view of torch (``initspec.backend.Backend``): how a tensor is checked,
written in place with the native or the portable stream, and (when backed up) restored.

Everything else, resolving, the checks' order, the all-or-nothing loop and the report, is
the core's (``initspec.engine``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from initspec.backend import Atomic, Job, check_atomic, draw
from initspec.errors import BackendError
from initspec_torch import portable
from initspec_torch.casting import dtype_name
from initspec_torch.sampler import Generator, TorchNative

SEEDED: Any = object()
"""``TorchBackend(generator=SEEDED)``: a new generator per job, seeded with its seed."""


def unwritable(tensor: torch.Tensor) -> str | None:
    """Why an in-place write into ``tensor`` would fail, or None; decided before anything
    is written (torch would raise only when the write is attempted)."""
    from torch.nn.parameter import UninitializedParameter

    if isinstance(tensor, UninitializedParameter):
        return "an uninitialized (lazy) parameter: run a forward pass to materialize it first"
    if tensor.layout != torch.strided:
        return f"a {tensor.layout} tensor: initspec writes dense (strided) tensors only"
    if tensor.is_inference() and not torch.is_inference_mode_enabled():
        return (
            "an inference tensor (made under torch.inference_mode()): it cannot be written "
            "outside inference mode; build the module outside it, or clone the parameter"
        )
    if tensor.numel() > 1 and any(
        st == 0 and n > 1 for st, n in zip(tensor.stride(), tensor.shape, strict=True)
    ):
        return (
            "an expanded tensor (stride 0): its elements share memory and cannot take "
            "distinct values; materialize it with .clone() first"
        )
    return None


def _vouched() -> tuple[type, ...]:
    """The tensor types whose in-place writes cannot fail once ``unwritable`` passed:
    ``torch.Tensor``, ``nn.Parameter`` and DTensor (each shard a plain local tensor)."""
    types: list[type] = [torch.Tensor, torch.nn.Parameter]
    if torch.distributed.is_available():
        from torch.distributed.tensor import DTensor

        types.append(DTensor)
    return tuple(types)


_VOUCHED: tuple[type, ...] = ()

THREADED_FROM = 1 << 20
"""Elements an apply writes from which ``TorchBackend.threads`` allows more than one thread
(below it, starting threads costs more than it saves)."""

MAX_THREADS = 8
"""At most this many writing threads (each draw also runs on torch's intra-op threads)."""


def backup_reason(tensor: torch.Tensor) -> str | None:
    """Why ``tensor`` needs a backup under ``atomic=True``: a tensor subclass initspec cannot
    vouch for (its ``__torch_dispatch__`` may refuse or fail a write, e.g. a quantized or
    read-only wrapper), or None. The type itself, not ``isinstance``: a subclass of
    ``nn.Parameter`` may override anything."""
    global _VOUCHED
    if not _VOUCHED:
        _VOUCHED = _vouched()
    if type(tensor) in _VOUCHED:
        return None
    cls = type(tensor)
    return f"a {cls.__module__}.{cls.__qualname__} (a tensor subclass initspec cannot vouch for)"


class TorchBackend:
    """In-place writes into torch tensors, on their own devices, with no grad.

    ``generator``: ``SEEDED`` (a fresh ``torch.Generator`` per job, seeded with the job's
    seed: ``apply``), ``None`` (torch's default generator, as ``torch.nn.init``), or a
    generator to draw from. ``atomic``: how the engine writes (``initspec.backend.Atomic``:
    in place with Ctrl-C deferred, unknown subclasses backed up; ``"backup"``: a copy of
    each parameter before writing it; ``False``: plainly in place).
    """

    def __init__(
        self,
        generator: Generator = SEEDED,
        atomic: Atomic = True,
        magnitudes: dict[int, tuple[torch.Tensor, int]] | None = None,
    ) -> None:
        self.generator, self.atomic = generator, check_atomic(atomic)
        # weight_norm: id(v) -> (g, dim); g is set to the norm of v after v is written
        self.magnitudes = magnitudes or {}
        # tensors already copied: a fused parameter's blocks are one job each, and one
        # copy (the first, restored last) gives the parameter back
        self._copied: set[int] = set()

    def dtype(self, target: torch.Tensor) -> str:
        return dtype_name(target.dtype)

    def unwritable(self, target: torch.Tensor, job: Job) -> str | None:
        if job.region is not None and job.rng != "portable" and portable.dtensor_shard(target):
            return (
                f"block {job.region.name!r} of a DTensor needs rng='portable' (the native "
                f"stream is not shardable)"
            )
        return unwritable(target)

    def placeholder(self, target: torch.Tensor) -> bool:
        return bool(target.is_meta)

    def backup_reason(self, target: torch.Tensor) -> str | None:
        return backup_reason(target)

    def snapshot(self, target: torch.Tensor) -> Any:
        if id(target) in self._copied:  # another block of the same parameter
            return None
        self._copied.add(id(target))
        derived = self.magnitudes.get(id(target))
        with torch.no_grad():
            g = derived[0].detach().clone() if derived is not None else None
            return target.detach().clone(), g

    def restore(self, target: torch.Tensor, snapshot: Any) -> None:
        if snapshot is not None:
            old, g = snapshot
            with torch.no_grad():
                target.copy_(old)
                if g is not None:
                    self.magnitudes[id(target)][0].copy_(g)

    def threads(self, work: Sequence[tuple[Job, torch.Tensor]]) -> int:
        """``torch.get_num_threads()`` (at most ``MAX_THREADS``) for native-stream jobs with a
        generator each (``SEEDED``: the values do not depend on the order) into plain CPU
        tensors, from ``THREADED_FROM`` elements: torch's CPU draws hold the GIL for
        microseconds and a generator for the whole tensor, so parameters are drawn side by
        side. Else 1: a shared generator (``torch.nn.init``'s, or one passed in) draws in
        order; CUDA kernels are queued asynchronously anyway; the portable stream threads
        each large tensor itself; a DTensor's draw may need its mesh; and grad, inference
        and dispatch modes are per thread, so none may be active."""
        if (
            self.generator is not SEEDED
            or torch.get_num_threads() < 2
            or sum(job.plan.numel for job, _ in work) < THREADED_FROM
            or torch.is_inference_mode_enabled()
            or torch._C._len_torch_function_stack() > 0
            or torch._C._len_torch_dispatch_stack() > 0
        ):
            return 1
        plain = (torch.Tensor, torch.nn.Parameter)
        for job, target in work:
            if job.rng == "portable" or type(target) not in plain or target.device.type != "cpu":
                return 1
        return min(torch.get_num_threads(), MAX_THREADS)

    def write(self, target: torch.Tensor, job: Job) -> None:
        self._draw(target, job)
        derived = self.magnitudes.get(id(target))
        if derived is not None:  # as weight_norm sets g when it is applied
            g, dim = derived
            with torch.no_grad():
                g.copy_(torch.norm_except_dim(target, 2, dim))

    def _draw(self, target: torch.Tensor, job: Job) -> None:
        def zero_row(values: torch.Tensor, row: int) -> torch.Tensor:
            # on the tensor itself (a DTensor's row is a global index), as nn.Embedding
            target[row].zero_()
            return values

        if job.region is not None:
            self._draw_block(target, job)
            return
        with torch.no_grad():
            if job.rng == "portable":
                portable.write_(target, job.plan, job.key, job.perm, job.index)
                if job.zero_row is not None:
                    zero_row(target, job.zero_row)
                return
            if target.numel() == 0:
                return
            gen = self.generator
            if gen is SEEDED:
                gen = torch.Generator(device=target.device)
                gen.manual_seed(job.seed)
            draw(job, TorchNative(target, gen), zero_row)

    def _draw_block(self, target: torch.Tensor, job: Job) -> None:
        """One block of a parameter (``job.region``): the part the local tensor holds (a
        DTensor's shard, or the shard ``job.index`` of a plain tensor), drawn from the
        block's own key and its global indices inside the block."""
        assert job.region is not None
        shard = portable.dtensor_shard(target)
        if shard is not None and job.rng != "portable":
            raise BackendError(
                f"{job.path!r}: block {job.region.name!r} of a DTensor needs rng='portable' "
                f"(the native stream is not shardable)"
            )
        local, index = shard if shard is not None else (target, job.index)
        placed = job.region.locate(index)
        if placed is None:
            return
        where, inside = placed
        with torch.no_grad():
            view = local[where]
            if view.numel() == 0:
                return
            if job.rng == "portable":
                portable.write_(view, job.plan, job.key, job.perm, inside)
                return
            gen = self.generator
            if gen is SEEDED:
                gen = torch.Generator(device=view.device)
                gen.manual_seed(job.seed)
            draw(job, TorchNative(view, gen), lambda values, row: values)
