"""Fingerprints of a torch module's parameters (``initspec.fingerprints``), shard-locally.

Each parameter is numbered by the layout ``describe`` gives it (the portable stream's
counters), so the fingerprint of a torch model equals that of its Flax twin holding the same
values. A DTensor (FSDP2's ``fully_shard``, tensor parallelism with ``Shard`` /
``Replicate`` placements) contributes the sum of its local shard, from the shard's global
indices; the ranks' sums are added in one all-reduce, so no rank gathers a tensor.
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np
import torch
from torch import nn

from initspec.errors import BackendError
from initspec.fingerprints import (
    M64,
    Fingerprint,
    ParamFingerprint,
    assemble,
    param_fingerprint,
    shard_sum,
)
from initspec_torch.casting import dtype_name
from initspec_torch.describe import describe
from initspec_torch.portable import dtensor_shard

_INT = {2: torch.int16, 4: torch.int32, 8: torch.int64}
_UINT = {2: np.uint16, 4: np.uint32, 8: np.uint64}
_M32 = 0xFFFFFFFF


def _bits(tensor: torch.Tensor, path: str) -> np.ndarray:
    """The tensor's elements as unsigned integers of their size, on the host (contiguous)."""
    local = tensor.detach()
    if local.device.type != "cpu":
        local = local.cpu()
    size = local.element_size()
    if size not in _INT:
        raise BackendError(f"parameter {path!r}: a {local.dtype} tensor has no fingerprint")
    ints = local.contiguous().view(_INT[size])
    return np.asarray(ints.numpy().view(_UINT[size]))


def _contributes(tensor: Any) -> bool:
    """Whether this rank's copy of a DTensor's local shard counts: the first along each mesh
    dimension it is replicated over (its other copies are the same elements)."""
    from torch.distributed.tensor import Replicate

    coordinate = tensor.device_mesh.get_coordinate()
    if coordinate is None:
        return False
    return all(
        coordinate[dim] == 0 for dim, p in enumerate(tensor.placements) if isinstance(p, Replicate)
    )


def fingerprint(module: nn.Module, *, threads: int | None = None) -> Fingerprint:
    """The fingerprint of ``module``'s parameters (``initspec.fingerprints``).

    The parameters are those ``describe`` gives: tied ones once, under their first name;
    weight_norm's magnitude ``g`` left out (set from ``v``, which is fingerprinted). Plain
    tensors are read whole, on the host; a DTensor only its local shard. If any parameter is
    a DTensor, every rank must call this (collectively, like any ``torch.distributed``
    operation): one all-reduce over the default process group, which the DTensors' meshes
    must span, adds the ranks' sums (as 32-bit halves in int64, so no sum overflows), and
    every rank returns the same fingerprint. ``threads``: the kernel's threads per tensor
    (default: ``torch.get_num_threads()``).

    ``BackendError`` for a meta tensor (no values), a DTensor placement whose local tensor
    is not one slice per dimension (``Partial``, ``_StridedShard``), a non-float dtype.
    """
    nthreads = torch.get_num_threads() if threads is None else threads
    local: list[tuple[Any, int]] = []  # (info, sum) of plain tensors
    sharded: list[tuple[Any, int]] = []  # (info, this rank's share) of DTensors
    meshes: list[Any] = []
    for param in describe(module):
        info, tensor = param.info, param.tensor
        if tensor.is_meta:
            raise BackendError(
                f"parameter {info.path!r}: a meta tensor has no values to fingerprint; "
                f"materialize it (to_empty) and initialize it first"
            )
        try:
            shard = dtensor_shard(tensor)
        except BackendError as exc:  # dtensor_shard speaks of the stream's writes
            reason = str(exc).removeprefix("portable stream: ")
            raise BackendError(
                f"parameter {info.path!r}: a fingerprint reads each rank's local shard: {reason}"
            ) from None
        name = dtype_name(tensor.dtype)
        if shard is None:
            bits = _bits(tensor, info.path)
            total = shard_sum(
                bits, info.shape, info.layout, dtype=name, path=info.path, threads=nthreads
            )
            local.append((info, total))
            continue
        values, index = shard
        share = 0
        if _contributes(tensor):
            bits = _bits(values, info.path)
            share = shard_sum(
                bits, info.shape, info.layout, index, dtype=name, path=info.path, threads=nthreads
            )
        sharded.append((info, share))
        meshes.append(cast(Any, tensor).device_mesh)
    if sharded:  # one all-reduce for all of them
        totals = _all_reduce([share for _, share in sharded], meshes)
        sharded = [(info, total) for (info, _), total in zip(sharded, totals, strict=True)]
    out: list[ParamFingerprint] = [
        param_fingerprint(info.path, info.dtype, info.shape, info.layout, total)
        for info, total in local + sharded
    ]
    return assemble(out)


def _all_reduce(shares: list[int], meshes: list[Any]) -> list[int]:
    """The sums over ranks of each rank's ``shares``, modulo 2**64, in one all-reduce.

    Each share travels as its two 32-bit halves in int64: summed over fewer than 2**31
    ranks, neither half can overflow (torch's int64 SUM would wrap in practice, but signed
    overflow is undefined behaviour in the C++ that computes it; nothing here relies on it).
    """
    import torch.distributed as dist

    if not dist.is_available() or not dist.is_initialized():
        raise BackendError("DTensor parameters need an initialized torch.distributed process group")
    world = dist.get_world_size()
    device_types = {m.device_type for m in meshes}
    for mesh in meshes:
        if mesh.size() != world:
            raise BackendError(
                f"a DTensor's mesh spans {mesh.size()} of the {world} ranks; the fingerprint's "
                f"all-reduce runs over the default process group, which the meshes must span"
            )
    if len(device_types) != 1:
        raise BackendError(f"DTensor parameters on meshes of several device types: {device_types}")
    device_type = device_types.pop()
    device = torch.device(device_type)
    if device_type != "cpu":
        module = getattr(torch, device_type, None)
        if module is not None and hasattr(module, "current_device"):
            device = torch.device(device_type, module.current_device())
    halves = torch.tensor([[s & _M32, s >> 32] for s in shares], dtype=torch.int64, device=device)
    dist.all_reduce(halves, op=dist.ReduceOp.SUM)
    return [(int(lo) + (int(hi) << 32)) & M64 for lo, hi in halves.cpu().tolist()]
