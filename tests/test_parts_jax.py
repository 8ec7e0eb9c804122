"""Fused parameters, pipeline stages and expert shards in JAX / Flax (issue 20, items 1-2):
with ``rng="portable"`` a blocked parameter sharded over an 8-device CPU mesh equals the
unsharded one (and keeps its sharding); a model initialized stage by stage (``path_map``)
or expert shard by expert shard (``GlobalShard``) equals the whole model; stacked experts
in Flax's (E, in, out) equal torch's (E, out, in), transposed, bit for bit.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import warnings
from typing import Any

import numpy as np
import pytest

import initspec
from initspec import GlobalShard, InitSpecWarning

jax = pytest.importorskip("jax")
initspec_jax = pytest.importorskip("initspec_jax")

E, D, H, LAYERS = 8, 16, 24, 4
SEED = 5

FLAX_POLICY: dict[str, Any] = {
    "initspec": 1,
    "rules": [
        {
            "match": {"path": ["*.wqkv.kernel"]},
            "init": {"kind": "xavier_uniform"},
            "blocks": {"split": [["q", 16], ["k", 8], ["v", 8]]},
        },
        {
            "match": {"path": ["*.moe.w1"]},
            "layout": {"in": [1], "out": [2], "batch": [0]},  # Flax: (E, in, out)
            "init": {"kind": "kaiming_normal"},
            "blocks": {"experts": E},
        },
        {
            "match": {"path": ["layers.*.wo.kernel"]},
            "init": {"kind": "trunc_normal", "std": 0.02},
            "depth_scale": {"layer_id": "layers.{layer_id}.*", "factor": 2, "offset": 1},
        },
        {"match": {}, "init": {"kind": "lecun_normal"}},
    ],
}


def quiet(fn: Any, *args: Any, **kwargs: Any) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InitSpecWarning)
        return fn(*args, **kwargs)


def tree(layers: range) -> dict[str, Any]:
    """A linen-style parameter tree of ``len(layers)`` layers named ``layers.0`` .. locally."""
    z = np.zeros
    return {
        "layers": {
            str(j): {
                "wqkv": {"kernel": z((D, 32), np.float32)},
                "wo": {"kernel": z((16, D), np.float32)},
                "moe": {"w1": z((E, D, H), np.float32)},
            }
            for j, _ in enumerate(layers)
        }
    }


def leaves(t: dict[str, Any], prefix: str = "", raw: bool = False) -> dict[str, Any]:
    """Dotted name -> leaf (as a NumPy array unless ``raw``)."""
    out = {}
    for k, v in t.items():
        name = f"{prefix}.{k}" if prefix else k
        if isinstance(v, dict):
            out.update(leaves(v, name, raw))
        else:
            out[name] = v if raw else np.asarray(v)
    return out


def test_stages_with_path_map_equal_the_whole_model() -> None:
    whole, _ = quiet(initspec_jax.apply, FLAX_POLICY, tree(range(LAYERS)), SEED, rng="portable")
    ref = leaves(whole)
    for first in (0, 2):  # two stages of two layers

        def to_global(local: str, first: int = first) -> str:
            head, j, rest = local.split(".", 2)
            return f"{head}.{int(j) + first}.{rest}"

        stage, report = quiet(
            initspec_jax.apply,
            FLAX_POLICY,
            tree(range(first, first + 2)),
            SEED,
            rng="portable",
            path_map=to_global,
        )
        for name, value in leaves(stage).items():
            assert np.array_equal(value, ref[to_global(name)]), name
        # the depth-scaled rule sees the global layer id
        wo = {r["path"]: r["plan"] for r in report.rows()}[f"layers.{first + 1}.wo.kernel"]
        assert f"std={0.02 / np.sqrt(2 * (first + 2)):.4g}" in wo


def test_expert_shards_and_the_torch_twin_equal_the_whole_stack() -> None:
    whole, report = quiet(initspec_jax.apply, FLAX_POLICY, tree(range(1)), SEED, rng="portable")
    stack = np.asarray(whole["layers"]["0"]["moe"]["w1"])
    assert {r["path"]: r["fans"] for r in report.rows()}["layers.0.moe.w1.5"] == [D, H]
    for a, b in ((0, 2), (2, 6), (7, 8)):
        part = {"layers": {"0": {"moe": {"w1": np.zeros((b - a, D, H), np.float32)}}}}
        shard = GlobalShard("layers.0.moe.w1", (E, D, H), (a, 0, 0))
        new, _ = quiet(
            initspec_jax.apply,
            FLAX_POLICY,
            part,
            SEED,
            rng="portable",
            path_map={"layers.0.moe.w1": shard},
        )
        assert np.array_equal(np.asarray(new["layers"]["0"]["moe"]["w1"]), stack[a:b])
    torch = pytest.importorskip("torch")
    import initspec_torch

    m = torch.nn.Module()
    m.layers = torch.nn.ModuleList([torch.nn.Module()])
    m.layers[0].moe = torch.nn.Module()
    m.layers[0].moe.w1 = torch.nn.Parameter(torch.empty(E, H, D))  # torch: (E, out, in)
    torch_policy = initspec.load_policy(FLAX_POLICY).model_dump(mode="json", exclude_none=True)
    torch_policy["rules"][1]["layout"] = {"in": [2], "out": [1], "batch": [0]}
    quiet(initspec_torch.apply, torch_policy, m, SEED, rng="portable")
    assert np.array_equal(m.layers[0].moe.w1.detach().numpy().transpose(0, 2, 1), stack)


MESH_SCRIPT = textwrap.dedent(
    """
    import json, sys, warnings
    import jax, numpy as np
    from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
    sys.path.insert(0, sys.argv[1])
    import initspec_jax
    from test_parts_jax import FLAX_POLICY, SEED, tree, leaves
    warnings.simplefilter("ignore")
    assert len(jax.devices()) == 8
    mesh = Mesh(np.array(jax.devices()), ("x",))
    plain = tree(range(1))
    whole, _ = initspec_jax.apply(FLAX_POLICY, plain, SEED, rng="portable")
    specs = {"wqkv": P(None, "x"), "wo": P("x", None), "moe": P("x", None, None)}
    sharded = {"layers": {"0": {
        k: {leaf: jax.device_put(v, NamedSharding(mesh, specs[k])) for leaf, v in d.items()}
        for k, d in plain["layers"]["0"].items()}}}
    new, _ = initspec_jax.apply(FLAX_POLICY, sharded, SEED, rng="portable")
    for name, value in leaves(new, raw=True).items():
        ok = np.array_equal(np.asarray(value), leaves(whole)[name])
        kept = value.sharding.is_equivalent_to(
            NamedSharding(mesh, specs[name.split(".")[2]]), value.ndim)
        print("ok" if ok and kept else "BAD", name, flush=True)
    """
)


@pytest.fixture(scope="module", autouse=True)
def mesh_run() -> Any:
    """The 8-device run, started when this module starts: it runs on the other core while
    the in-process tests run, and the mesh test collects it."""
    env = {
        **os.environ,
        "XLA_FLAGS": "--xla_force_host_platform_device_count=8",
        "JAX_PLATFORMS": "cpu",
    }
    here = os.path.dirname(os.path.abspath(__file__))
    proc = subprocess.Popen(
        [sys.executable, "-c", MESH_SCRIPT, here],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    yield proc
    if proc.poll() is None:
        proc.kill()
        proc.communicate()


def test_blocked_parameters_sharded_over_an_8_device_mesh_equal_the_unsharded_ones(
    mesh_run: Any,
) -> None:
    stdout, stderr = mesh_run.communicate(timeout=300)
    assert mesh_run.returncode == 0, stdout[-3000:] + stderr[-6000:]
    lines = stdout.split("\n")
    assert sum(ln.startswith("ok ") for ln in lines) == 3, stdout
    assert not any(ln.startswith("BAD") for ln in lines), stdout
