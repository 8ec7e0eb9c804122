"""Pipeline stages and expert shards (issue 20, item 2) on torch.distributed, gloo on
127.0.0.1, 2 processes (4 in the slow run): every rank initializes only its part of a small
Llama-like model with ``rng="portable"`` and gets exactly the values of the whole model
initialized at once on one process.

- pipeline: rank r holds layers [r*L/w, (r+1)*L/w) under local names ``layers.0`` ..
  (rank 0 the embedding, the last rank the head); ``path_map`` (a function) renames them to
  the model's; the depth-scaled rule (``layer_id``) sees the global layer ids. The ranks'
  global names, gathered, are every parameter of the model once.
- experts: a stacked (E, out, in) expert weight as a DTensor ``Shard(0)`` (each rank
  computing the Threefry words of its own experts only, counted) and as a plain local tensor
  of experts [a, b) named by a ``GlobalShard``; a fused (q | k | v) weight as a DTensor
  ``Shard(0)`` (shards crossing block boundaries) and ``Shard(1)``.

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
D, HIDDEN, LAYERS, VOCAB, EXPERTS = 16, 24, 4, 32, 8
NQ, NKV = 16, 8  # grouped-query q | k | v rows of wqkv

POLICY: dict[str, Any] = {
    "initspec": 1,
    "rules": [
        {
            "match": {"path": ["*.wqkv.weight"]},
            "init": {"kind": "xavier_uniform"},
            "blocks": {"split": [["q", NQ], ["k", NKV], ["v", NKV]]},
        },
        {
            "match": {"path": ["*.w13.weight"]},
            "init": {"kind": "trunc_normal", "std": 0.02},
            "blocks": {"split": ["gate", "up"]},
        },
        {
            "match": {"path": ["layers.*.wo.weight", "layers.*.w2.weight"]},
            "init": {"kind": "trunc_normal", "std": 0.02},
            "depth_scale": {"layer_id": "layers.{layer_id}.*", "factor": 2, "offset": 1},
        },
        {
            "match": {"path": ["moe.w1"]},
            "layout": {"in": [2], "out": [1], "batch": [0]},
            "init": {"kind": "kaiming_normal"},
            "blocks": {"experts": EXPERTS},
        },
        {"match": {"role": ["embedding"]}, "init": {"kind": "normal", "std": 1.0}},
        {"match": {"role": ["scale"]}, "init": {"kind": "ones"}},
        {"match": {"kind": ["linear"]}, "init": {"kind": "lecun_normal"}},
    ],
}


def _build(layers: range, embed: bool, head: bool) -> Any:
    """The model (all layers, embedding and head) or a stage of it, layers named locally."""
    from torch import nn

    class Layer(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.norm = nn.LayerNorm(D, bias=False)
            self.wqkv = nn.Linear(D, NQ + 2 * NKV, bias=False)
            self.wo = nn.Linear(NQ, D, bias=False)
            self.w13 = nn.Linear(D, 2 * HIDDEN, bias=False)
            self.w2 = nn.Linear(HIDDEN, D, bias=False)

    model = nn.Module()
    if embed:
        model.embed = nn.Embedding(VOCAB, D)
    model.layers = nn.ModuleList(Layer() for _ in layers)
    if head:
        model.head = nn.Linear(D, VOCAB, bias=False)
    return model


def _stage_map(first: int) -> Any:
    def to_global(local: str) -> str | None:
        parts = local.split(".")
        if parts[0] != "layers":
            return None
        return ".".join(["layers", str(int(parts[1]) + first), *parts[2:]])

    return to_global


def _worker(rank: int, world: int, port: int, out_dir: str) -> None:
    import initspec_torch
    import torch
    import torch.distributed as dist
    import torch.distributed.tensor as dtensor
    from initspec_torch import portable
    from torch import nn
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import Shard

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
    fill_compiled, words = portable.ref.fill_compiled, portable.words

    def counting_fill(out: Any, *args: Any, **kwargs: Any) -> bool:
        done = fill_compiled(out, *args, **kwargs)
        computed[0] += out.size if done else 0
        return done

    def counting_words(key: Any, counters: torch.Tensor, tmp: Any = None) -> Any:
        computed[0] += counters.numel()
        return words(key, counters, tmp)

    portable.ref.fill_compiled = counting_fill  # type: ignore[assignment]
    portable.words = counting_words  # type: ignore[assignment]
    results: list[dict[str, Any]] = []
    quiet = {"category": initspec.InitSpecWarning}
    import warnings

    warnings.filterwarnings("ignore", **quiet)

    # The whole model, on this process: the reference.
    whole = _build(range(LAYERS), True, True)
    initspec_torch.apply(POLICY, whole, seed=11, rng="portable")
    reference = {k: v.detach() for k, v in whole.named_parameters()}

    # Pipeline: this rank's stage, local names mapped to global ones.
    per = LAYERS // world
    first = rank * per
    stage = _build(range(first, first + per), rank == 0, rank == world - 1)
    report = initspec_torch.apply(
        POLICY, stage, seed=11, rng="portable", path_map=_stage_map(first)
    )
    names = [r["path"] for r in report.rows() if "block_of" not in r]
    stage_map = _stage_map(first)
    equal = all(torch.equal(p, reference[stage_map(n) or n]) for n, p in stage.named_parameters())
    gathered: list[Any] = [None] * world
    dist.all_gather_object(gathered, names)
    flat = [n for g in gathered for n in g]
    results.append(
        {
            "case": "pipeline",
            "rank": rank,
            "equal": equal,
            "covers": sorted(flat) == sorted(reference) and len(flat) == len(set(flat)),
        }
    )

    # Experts: the stacked weight as a DTensor Shard(0), words counted per rank.
    mesh = init_device_mesh("cpu", (world,))
    moe_whole = nn.Module()
    moe_whole.moe = nn.Module()
    moe_whole.moe.w1 = nn.Parameter(torch.empty(EXPERTS, HIDDEN, D))
    initspec_torch.apply(POLICY, moe_whole, seed=11, rng="portable")
    moe = nn.Module()
    moe.moe = nn.Module()
    moe.moe.w1 = nn.Parameter(
        dtensor.empty((EXPERTS, HIDDEN, D), device_mesh=mesh, placements=[Shard(0)])
    )
    computed[0] = 0
    initspec_torch.apply(POLICY, moe, seed=11, rng="portable")
    local = moe.moe.w1.to_local()
    results.append(
        {
            "case": "experts_dtensor",
            "rank": rank,
            "equal": bool(torch.equal(moe.moe.w1.full_tensor(), moe_whole.moe.w1.detach())),
            "local_only": computed[0] == local.numel(),
        }
    )

    # Experts [a, b) as a plain local tensor, named by a GlobalShard.
    a, b = rank * EXPERTS // world, (rank + 1) * EXPERTS // world
    part = nn.Module()
    part.moe = nn.Module()
    part.moe.w1 = nn.Parameter(torch.empty(b - a, HIDDEN, D))
    shard = initspec.GlobalShard("moe.w1", (EXPERTS, HIDDEN, D), (a, 0, 0))
    initspec_torch.apply(POLICY, part, seed=11, rng="portable", path_map={"moe.w1": shard})
    results.append(
        {
            "case": "experts_global_shard",
            "rank": rank,
            "equal": bool(torch.equal(part.moe.w1, moe_whole.moe.w1[a:b])),
        }
    )

    # A fused q | k | v weight as a DTensor, sharded along its rows (crossing the block
    # boundaries) and its columns.
    for dim in (0, 1):
        fused = nn.Module()
        fused.layers = nn.ModuleList([nn.Module()])
        fused.layers[0].wqkv = nn.Linear(D, NQ + 2 * NKV, bias=False)
        fused.layers[0].wqkv.weight = nn.Parameter(
            dtensor.empty((NQ + 2 * NKV, D), device_mesh=mesh, placements=[Shard(dim)])
        )
        computed[0] = 0
        initspec_torch.apply(POLICY, fused, seed=11, rng="portable")
        w = fused.layers[0].wqkv.weight
        results.append(
            {
                "case": f"fused_dtensor_shard{dim}",
                "rank": rank,
                "equal": bool(torch.equal(w.full_tensor(), reference["layers.0.wqkv.weight"])),
                "local_only": computed[0] == w.to_local().numel(),
            }
        )
    dist.barrier()
    dist.destroy_process_group()
    Path(out_dir, f"rank{rank}.json").write_text(json.dumps(results))


def _run_world(world: int, out_dir: Path) -> list[dict[str, Any]]:
    import initspec_torch  # noqa: F401
    import torch._dynamo  # noqa: F401 - once before forking (DTensor imports it)
    import torch.distributed.tensor  # noqa: F401
    from gloo_world import run_world

    return [row for rows in run_world(_worker, world, out_dir, JOIN_TIMEOUT_S) for row in rows]


def main() -> None:
    import tempfile

    from gloo_world import print_results

    with tempfile.TemporaryDirectory() as tmp:
        rows = _run_world(int(sys.argv[1]), Path(tmp))
    print_results(rows)


def _results(world: int) -> list[dict[str, Any]]:
    from gloo_world import results_of

    rows: list[dict[str, Any]] = results_of(
        __file__, str(world), needs="torch.distributed.tensor", timeout_s=JOIN_TIMEOUT_S + 60
    )
    return rows


CASES = (
    "pipeline",
    "experts_dtensor",
    "experts_global_shard",
    "fused_dtensor_shard0",
    "fused_dtensor_shard1",
)


def _check(rows: list[dict[str, Any]], world: int) -> None:
    for case in CASES:
        mine = [r for r in rows if r["case"] == case]
        assert len(mine) == world, (case, rows)
        for row in mine:
            assert row["equal"], row
            assert row.get("covers", True), row  # the stages hold every parameter once
            assert row.get("local_only", True), row  # a rank computes its own elements only


def test_stages_and_expert_shards_on_2_processes_equal_the_whole_model() -> None:
    _check(_results(2), 2)


@pytest.mark.slow
def test_stages_and_expert_shards_on_4_processes_equal_the_whole_model() -> None:
    _check(_results(4), 4)


if __name__ == "__main__":
    main()
