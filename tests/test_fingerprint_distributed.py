"""torch.distributed: an FSDP2 model's fingerprint, computed shard-locally, is the unsharded one.

gloo on 127.0.0.1. The model of ``fingerprint_twins`` is built on the meta device, sharded
with ``fully_shard`` (``Shard(0)``: the 51-row embedding splits unevenly, and on 4 ranks the
6-row conv weight leaves one rank an empty shard), materialized and initialized per shard
with ``rng="portable"``; then each rank fingerprints its local shards and one all-reduce
(counted) adds the sums. On 4 processes also
HSDP (a 2 x 2 mesh: ``Replicate`` x ``Shard(0)``, each replica counted once). The digests must
equal the fingerprint of the same model initialized whole on one process, and of its Flax
twin (tests/test_fingerprint.py). The native stream (torch's generator, seeded per
parameter) gives other numbers when the tensor is sharded: its fingerprint differs.

The processes run in a fresh interpreter (this file as a script), as in
tests/test_portable_distributed.py.
"""

from __future__ import annotations

import json
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

JOIN_TIMEOUT_S = 150
SEED = 7


def _worker(rank: int, world: int, port: int, out_dir: str) -> None:
    import fingerprint_twins as twins
    import initspec_torch
    import torch
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard
    from torch.distributed.tensor import DTensor, Partial

    import initspec

    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=world,
        timeout=timedelta(seconds=60),
    )
    calls = [0]
    all_reduce = dist.all_reduce

    def counting_all_reduce(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        return all_reduce(*args, **kwargs)

    dist.all_reduce = counting_all_reduce  # type: ignore[assignment]

    def sharded(mesh_shape: tuple[int, ...], rng: str) -> dict[str, Any]:
        with torch.device("meta"):
            model = twins.torch_model()
        names = ("replicate", "shard")[-len(mesh_shape) :]
        mesh = init_device_mesh("cpu", mesh_shape, mesh_dim_names=names)
        for layer in model.children():
            fully_shard(layer, mesh=mesh)
        fully_shard(model, mesh=mesh)
        model.to_empty(device="cpu")
        initspec_torch.apply(twins.POLICY, model, seed=SEED, rng=rng)
        params = dict(model.named_parameters())
        calls[0] = 0
        fp = initspec_torch.fingerprint(model)
        return {
            "digest": fp.digest,
            "params": {k: p.digest for k, p in fp.params.items()},
            "all_reduces": calls[0],
            "local_numel": {k: p.to_local().numel() for k, p in params.items()},
            "all_dtensor": all(isinstance(p, DTensor) for p in params.values()),
            "placements": sorted({str(getattr(p, "placements", None)) for p in params.values()}),
        }

    results: dict[str, Any] = {
        "fsdp2_portable": sharded((world,), "portable"),
        "fsdp2_native": sharded((world,), "native"),
    }
    if world == 4:
        results["hsdp_portable"] = sharded((2, 2), "portable")
    # a Partial placement does not hold the values themselves: refused, naming the parameter
    holder = torch.nn.Module()
    mesh = init_device_mesh("cpu", (world,))
    holder.w = torch.nn.Parameter(DTensor.from_local(torch.zeros(3, 3), mesh, [Partial()]))
    try:
        initspec_torch.fingerprint(holder)
        results["partial"] = "accepted"
    except initspec.BackendError as exc:
        results["partial"] = str(exc)
    dist.barrier()
    dist.destroy_process_group()
    Path(out_dir, f"rank{rank}.json").write_text(json.dumps(results))


def _run_world(world: int, out_dir: Path) -> list[dict[str, Any]]:
    import initspec_torch  # noqa: F401

    # Imported once before forking (DTensor's first operation imports torch._dynamo).
    import torch._dynamo  # noqa: F401
    import torch.distributed.fsdp  # noqa: F401
    import torch.distributed.tensor  # noqa: F401
    from gloo_world import run_world

    return run_world(_worker, world, out_dir, JOIN_TIMEOUT_S)


def main() -> None:
    import tempfile

    sys.path.insert(0, str(Path(__file__).parent))
    from gloo_world import print_results

    world = int(sys.argv[1])
    with tempfile.TemporaryDirectory() as tmp:
        ranks = _run_world(world, Path(tmp))
    print_results(ranks)


def run_world(world: int) -> list[dict[str, Any]]:
    """Every rank's results on ``world`` gloo processes (a subprocess)."""
    from gloo_world import results_of

    ranks: list[dict[str, Any]] = results_of(
        __file__, str(world), needs="torch.distributed.fsdp", timeout_s=JOIN_TIMEOUT_S + 60
    )
    return ranks


def unsharded(rng: str) -> Any:
    import fingerprint_twins as twins
    import initspec_torch

    model = twins.torch_model()
    initspec_torch.apply(twins.POLICY, model, seed=SEED, rng=rng)
    return initspec_torch.fingerprint(model)


def check_world(world: int) -> None:
    import fingerprint_twins as twins

    ranks = run_world(world)
    assert len(ranks) == world
    whole = unsharded("portable")
    cases = ["fsdp2_portable"] + (["hsdp_portable"] if world == 4 else [])
    for case in cases:
        for rank, res in enumerate(ranks):
            assert res[case]["all_dtensor"], (case, rank)
            assert res[case]["all_reduces"] == 1, (case, rank, res[case]["all_reduces"])
            # every rank has the same, unsharded fingerprint, parameter by parameter
            assert res[case]["params"] == {k: p.digest for k, p in whole.params.items()}, case
            assert res[case]["digest"] == whole.digest, (case, rank)
    if world == 4:  # HSDP: each shard held by two ranks, counted once
        assert ranks[0]["hsdp_portable"]["placements"] == ["(Replicate(), Shard(dim=0))"]
    # the weights really were split: the shards partition each FSDP2 parameter
    numel = {k: v.numel() for k, v in twins.torch_model().named_parameters()}
    local = [r["fsdp2_portable"]["local_numel"] for r in ranks]
    for name, n in numel.items():
        assert sum(lo[name] for lo in local) == n, name
        assert max(lo[name] for lo in local) < n, name
    for res in ranks:
        assert (
            res["partial"].startswith("parameter 'w': ")
            and "P(sum) is not supported" in res["partial"]
        ), res
    # the native stream: torch's generator per shard, not the unsharded tensor's numbers
    native = {r["fsdp2_native"]["digest"] for r in ranks}
    assert len(native) == 1  # the ranks still agree on the fingerprint they computed together
    assert native != {unsharded("native").digest}
    assert native != {whole.digest}


def test_fsdp2_on_2_processes_has_the_unsharded_fingerprint() -> None:
    check_world(2)


@pytest.mark.slow
def test_fsdp2_and_hsdp_on_4_processes_have_the_unsharded_fingerprint() -> None:
    check_world(4)


if __name__ == "__main__":
    main()
