"""``apply``: initialize a whole ``nn.Module`` from a policy, all or nothing.

The core's orchestration (``initspec.engine.run_policy``) on torch's description of the
module (``initspec_torch.describe``) and torch's backend (``initspec_torch.backend``).
"""

from __future__ import annotations

from torch import nn

from initspec.backend import Atomic, Rng
from initspec.engine import run_policy
from initspec.pathmap import PathMap
from initspec.policy import PolicyLike
from initspec.progress import ProgressLike
from initspec.resolve import Report
from initspec_torch.backend import TorchBackend
from initspec_torch.describe import describe


def apply(
    policy: PolicyLike,
    module: nn.Module,
    seed: int | None = None,
    *,
    rng: Rng = "native",
    stream: int = 1,
    atomic: Atomic = True,
    strict: bool | None = None,
    path_map: PathMap | None = None,
    progress: ProgressLike = None,
) -> Report:
    """Initialize ``module``'s parameters in place from ``policy``; return the report.

    ``policy``: a ``Policy``, a dict, a JSON string, a policy file or a preset name (e.g.
    ``"torch-defaults"``). ``seed``: the run's seed; ``None`` takes the policy's ``seed``,
    else 0. Each parameter's generator is seeded with ``derive_seed(seed, path)``, so adding
    a layer does not change the others, and torch's global RNG state is not touched.

    Before anything is written, every parameter is resolved and checked: values that would
    overflow its dtype, bounds its dtype has no value in, parameters torch cannot write in
    place (lazy, sparse, expanded with stride 0, inference tensors), a padding row outside
    the table. Any problem raises one ``ResolutionError`` listing every parameter concerned.

    All or nothing, without a copy (``atomic=True``, the default): every check above is
    made for every parameter before the first write, so the writes that follow do not fail
    on anything torch could refuse; they are made in place, and a Ctrl-C (SIGINT) arriving
    while they run is deferred until they are all done, then raised as
    ``KeyboardInterrupt`` (``initspec.interrupts``: from the main thread; in other threads
    SIGINT does not interrupt Python code at all). A Ctrl-C before the writes raises at
    once, with nothing written. A parameter of a tensor subclass initspec cannot vouch
    for (anything but ``torch.Tensor``, ``nn.Parameter`` and DTensor) is copied and
    written first, so that a failure of its write is undone before any other parameter is
    touched; the report names it (``report.resolution.backed_up``). What no check can
    foresee (running out of memory, a device error) in an in-place write cannot be undone:
    a ``PartialWriteError`` then names every parameter that holds new values.

    ``atomic="backup"``: a copy of every parameter before it is written (held until
    ``apply`` returns: the model's size once more), and any failure restores them all,
    going on past a restore that fails (an ``InitSpecError`` then names it).
    ``atomic=False``: in place, Ctrl-C not deferred, no copy (as a hand-written loop).

    Threads: on the CPU, with the native stream, a model of 2**20 elements or more is drawn
    on ``torch.get_num_threads()`` threads at once (at most 8; ``torch.set_num_threads(1)``
    for one). Each parameter has a generator of its own, so the values are the same bits
    as on one thread; progress callbacks still run on the calling thread. A temporary of
    256 MiB or more (a bfloat16 parameter drawn in float32) is made by one thread at a
    time, so the peak memory is that of one thread. One thread under
    ``torch.inference_mode()`` or a torch function/dispatch mode (they are per thread),
    for the portable stream (it threads each large tensor itself), on CUDA.

    ``rng="portable"``: every parameter from the counter-based stream ``stream``
    (docs/portable-random.md), keyed by (seed, canonical path) and indexed in the layout's
    canonical order: the same values as the Flax twin under ``initspec_jax.apply`` with the
    same policy and seed. DTensor parameters (FSDP2 ``fully_shard``, tensor parallel) compute
    only their local shard, from its global indices, and equal the unsharded values.

    Rules that matched no parameter and parameters no rule matched are named in an
    ``initspec.InitSpecWarning``; ``strict=True`` (or the policy's ``"strict": true``)
    raises a ``ResolutionError`` for them instead, before anything is written.

    Tied parameters are initialized once and match a rule under any of their names (of
    the rules matching any name, the first in the policy wins); the report lists every
    name. ``path_map``: the module is a part of a larger model (a pipeline stage, an
    expert shard): its local names (and shards, ``initspec.GlobalShard``) mapped to the
    model's, so each parameter gets the values it has in the whole model
    (``initspec.pathmap``; with ``rng="portable"``, bit for bit). Rules blocks and slices
    (``initspec.policy.Blocks``) write a fused parameter block by block. Meta parameters are resolved and reported as ``meta`` but not written: after
    ``module.to_empty(device=...)``, ``apply`` again initializes them fully.

    ``progress``: None (default) shows a tqdm bar when tqdm is installed and the apply
    writes at least 10**8 elements; True always, False never; a callable is called as
    ``progress(done, total, path)`` (elements) after each tensor (``initspec.progress``).
    What apply decided is logged on the ``initspec`` logger (INFO; DEBUG per parameter).
    """
    params = describe(module)
    tensors = {p.info.path: p.tensor for p in params}
    magnitudes = {id(p.tensor): p.magnitude for p in params if p.magnitude is not None}
    resolution = run_policy(
        TorchBackend(atomic=atomic, magnitudes=magnitudes),
        policy,
        [p.info for p in params],
        tensors,
        seed,
        rng=rng,
        stream=stream,
        strict=strict,
        path_map=path_map,
        progress=progress,
    )
    return resolution.report()
