"""torch.distributed: sharded parameters initialized shard-locally equal the unsharded ones.

gloo on 127.0.0.1, 2 and 4 processes. Each case is a DTensor (``Shard(0)``, ``Shard(1)``,
a 2-D mesh, ``Replicate``) or an FSDP2 model (``fully_shard``, built on the meta device,
materialized with ``to_empty(device="cpu")``) initialized with ``rng="portable"``; every
rank computes only its local shard, from the shard's global indices (the test counts the
Threefry words each rank computes), and the gathered tensor equals the same parameter
initialized whole on one process.

The processes run in a fresh interpreter (this file as a script), so that forking them does
not inherit the test process's threads (JAX's, torch's pools).
"""

from __future__ import annotations

import json
import math
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

WORLD_SIZES = (2, 4)
JOIN_TIMEOUT_S = 150


def _cases(world: int) -> list[dict[str, Any]]:
    """(name, global shape, dtype, spec, mesh shape, placements) of the DTensor cases."""
    cases: list[dict[str, Any]] = [
        {
            "name": "shard0",
            "shape": [10, 7],
            "spec": {"kind": "normal"},
            "mesh": [world],
            "placements": [["shard", 0]],
        },
        {
            "name": "shard1",
            "shape": [10, 7],
            "spec": {"kind": "normal"},
            "mesh": [world],
            "placements": [["shard", 1]],
        },
        {
            "name": "shard1_bf16_truncnorm",
            "shape": [9, 13],
            "dtype": "bfloat16",
            "spec": {"kind": "trunc_normal_", "std": 0.02},
            "mesh": [world],
            "placements": [["shard", 1]],
        },
        {
            "name": "shard3_he_uniform_flax",
            "shape": [3, 3, 6, 10],
            "layout": "flax",
            "spec": {"kind": "he_uniform"},
            "mesh": [world],
            "placements": [["shard", 3]],
        },
        {
            "name": "shard1_orthogonal",
            "shape": [12, 9],
            "spec": {"kind": "orthogonal"},
            "mesh": [world],
            "placements": [["shard", 1]],
            "structural": True,
        },
    ]
    if world == 4:
        cases += [
            {
                "name": "mesh2x2_shard0_shard1",
                "shape": [10, 7],
                "spec": {"kind": "normal"},
                "mesh": [2, 2],
                "placements": [["shard", 0], ["shard", 1]],
            },
            {
                "name": "mesh2x2_replicate_shard1",
                "shape": [10, 7],
                "spec": {"kind": "uniform"},
                "mesh": [2, 2],
                "placements": [["replicate"], ["shard", 1]],
            },
        ]
    return cases


def _worker(rank: int, world: int, port: int, out_dir: str) -> None:
    """One rank: every case, then FSDP2; results as JSON in ``out_dir``."""
    import initspec_torch
    import torch
    import torch.distributed as dist
    import torch.distributed.tensor as dtensor
    from initspec_torch import portable
    from torch import nn
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard
    from torch.distributed.tensor import DTensor, Partial, Replicate, Shard

    import initspec

    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=world,
        timeout=timedelta(seconds=60),
    )
    computed = [0]
    words = portable.words

    def counting_words(key: Any, counters: torch.Tensor, tmp: Any = None) -> Any:
        computed[0] += counters.numel()
        return words(key, counters, tmp)

    portable.words = counting_words  # type: ignore[assignment]
    fill_compiled = portable.ref.fill_compiled

    def counting_fill(out: Any, *args: Any, **kwargs: Any) -> bool:  # the compiled kernel
        done = fill_compiled(out, *args, **kwargs)
        computed[0] += out.size if done else 0
        return done

    portable.ref.fill_compiled = counting_fill  # type: ignore[assignment]
    results: list[dict[str, Any]] = []
    meshes: dict[tuple[int, ...], Any] = {}
    for case in _cases(world):
        mesh_shape = tuple(case["mesh"])
        if mesh_shape not in meshes:
            names = ("a", "b")[: len(mesh_shape)]
            meshes[mesh_shape] = init_device_mesh("cpu", mesh_shape, mesh_dim_names=names)
        placements = [Shard(p[1]) if p[0] == "shard" else Replicate() for p in case["placements"]]
        dtype = getattr(torch, case.get("dtype", "float32"))
        layout = case.get("layout", "torch")
        x = dtensor.empty(
            tuple(case["shape"]), dtype=dtype, device_mesh=meshes[mesh_shape], placements=placements
        )
        computed[0] = 0
        initspec_torch.init_(x, case["spec"], layout, seed=3, path="p.w", rng="portable")
        local_numel = x.to_local().numel()
        local_computed = computed[0]
        whole = torch.empty(tuple(case["shape"]), dtype=dtype)
        initspec_torch.init_(whole, case["spec"], layout, seed=3, path="p.w", rng="portable")
        results.append(
            {
                "case": case["name"],
                "rank": rank,
                "equal": bool(torch.equal(x.full_tensor(), whole)),
                "local_numel": local_numel,
                "computed": local_computed,
                "structural": bool(case.get("structural", False)),
            }
        )

    # FSDP2: built on the meta device, sharded, materialized, then initialized per shard.
    def make() -> nn.Module:
        return nn.Sequential(nn.Linear(16, 10), nn.ReLU(), nn.Linear(10, 3), nn.LayerNorm(3))

    with torch.device("meta"):
        model = make()
    mesh = init_device_mesh("cpu", (world,))
    for layer in model:
        if isinstance(layer, nn.Linear):
            fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)
    model.to_empty(device="cpu")
    initspec_torch.apply("torch-defaults", model, seed=5, rng="portable")
    plain = make()
    initspec_torch.apply("torch-defaults", plain, seed=5, rng="portable")
    plain_params = dict(plain.named_parameters())
    for name, p in model.named_parameters():
        results.append(
            {
                "case": f"fsdp2:{name}",
                "rank": rank,
                "equal": isinstance(p, DTensor)
                and bool(torch.equal(p.full_tensor(), plain_params[name].detach())),
                "local_numel": p.to_local().numel() if isinstance(p, DTensor) else -1,
                "computed": -1,
                "structural": False,
            }
        )

    # A Partial placement does not hold the values themselves: refused.
    part = DTensor.from_local(torch.zeros(3, 3), mesh, [Partial()])
    try:
        initspec_torch.init_(part, {"kind": "normal"}, rng="portable")
        refused = False
    except initspec.BackendError:
        refused = True
    results.append(
        {
            "case": "partial_refused",
            "rank": rank,
            "equal": refused,
            "local_numel": -1,
            "computed": -1,
            "structural": False,
        }
    )
    dist.barrier()
    dist.destroy_process_group()
    Path(out_dir, f"rank{rank}.json").write_text(json.dumps(results))


def _run_world(world: int, out_dir: Path) -> list[dict[str, Any]]:
    import initspec_torch  # noqa: F401

    # Imported once here, before forking: DTensor's first operation imports torch._dynamo
    # (~4 s), which every rank would otherwise repeat.
    import torch._dynamo  # noqa: F401
    import torch.distributed.fsdp  # noqa: F401
    import torch.distributed.tensor  # noqa: F401
    from gloo_world import run_world

    ranks = run_world(_worker, world, out_dir, JOIN_TIMEOUT_S)
    return [{**row, "world": world} for rows in ranks for row in rows]


def main() -> None:
    import tempfile

    from gloo_world import print_results

    rows: list[dict[str, Any]] = []
    for world in map(int, sys.argv[1:]):
        with tempfile.TemporaryDirectory() as tmp:
            rows += _run_world(world, Path(tmp))
    print_results(rows)


@pytest.fixture(scope="module")
def results() -> list[dict[str, Any]]:
    from gloo_world import results_of

    rows: list[dict[str, Any]] = results_of(
        __file__, *map(str, WORLD_SIZES), needs="torch.distributed.fsdp",
        timeout_s=2 * JOIN_TIMEOUT_S + 60,
    )  # fmt: skip
    return rows


def _rows(results: list[dict[str, Any]], world: int, prefix: str) -> list[dict[str, Any]]:
    rows = [r for r in results if r["world"] == world and r["case"].startswith(prefix)]
    assert rows, f"no result for {prefix!r} on {world} processes"
    return rows


@pytest.mark.parametrize("world", WORLD_SIZES)
@pytest.mark.parametrize("case", [c["name"] for c in _cases(4)])
def test_dtensor_shards_equal_the_unsharded_tensor(results, world, case) -> None:
    if case not in {c["name"] for c in _cases(world)}:
        pytest.skip(f"{case} needs 4 processes")
    rows = [r for r in _rows(results, world, case) if r["case"] == case]
    assert len(rows) == world
    for row in rows:
        assert row["equal"], row
        if not row["structural"]:
            # shard-local: a rank computes the words of its own elements and no others
            assert row["computed"] == row["local_numel"], row
    if case.startswith("shard"):
        # the shards partition the tensor (uneven sizes included): nothing computed twice
        shape = next(c["shape"] for c in _cases(world) if c["name"] == case)
        assert sum(r["local_numel"] for r in rows) == math.prod(shape)


@pytest.mark.parametrize("world", WORLD_SIZES)
def test_fsdp2_meta_model_equals_the_unsharded_model(results, world) -> None:
    rows = _rows(results, world, "fsdp2:")
    names = {r["case"] for r in rows}
    assert {"fsdp2:0.weight", "fsdp2:0.bias", "fsdp2:2.weight", "fsdp2:3.weight"} <= names
    for row in rows:
        assert row["equal"], row
    # the 10-row weight is split over the ranks, not replicated
    w = [r["local_numel"] for r in rows if r["case"] == "fsdp2:0.weight"]
    assert sum(w) == 10 * 16


@pytest.mark.parametrize("world", WORLD_SIZES)
def test_partial_placement_is_refused(results, world) -> None:
    for row in _rows(results, world, "partial_refused"):
        assert row["equal"], row


if __name__ == "__main__":
    main()
