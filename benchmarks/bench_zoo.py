"""Scenario 7: the real model zoo, the default ``apply`` (all or nothing, no copy) against
each model's own init code, side by side in one process; scenario 8: what all-or-nothing
costs (the default against ``atomic=False`` and ``atomic="backup"``: time, and peak RSS of
a 512 MiB model, each mode in a fresh process).

The models are the packages' own, built from configs (nothing downloaded): HF GPT-2 small,
an HF Llama of about 100M parameters, HF BERT-base, timm's ViT-B/16 (jax init), torchvision's
ResNet-50 and torchtitan 0.3.0's Llama 3 (meta -> ``to_empty``). timm, torchvision and
torchtitan are imported as the tests import them (``tests/real_packages.py``); a package
that does not import here gives a row saying so.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import warnings
from collections.abc import Callable
from typing import Any

import initspec_torch
import torch
from torch import nn

import initspec
from benchmarks.common import Pair, compare

TESTS = pathlib.Path(__file__).resolve().parents[1] / "tests"

# torchvision's ResNet.__init__ (torchvision/models/resnet.py): every Conv2d
# kaiming_normal_(mode="fan_out", nonlinearity="relu"), BatchNorm/GroupNorm 1 and 0; the fc
# keeps nn.Linear's own reset_parameters (torch-defaults' linear rules).
TORCHVISION_RESNET = {
    "initspec": 1,
    "name": "torchvision-resnet",
    "extends": "torch-defaults",
    "rules": [
        {
            "name": "conv",
            "match": {"kind": "conv", "role": "kernel"},
            "init": {"kind": "kaiming_normal", "mode": "fan_out", "nonlinearity": "relu"},
        }
    ],
}


def _import(name: str) -> Any:
    """timm, torchvision or torchtitan's llama3 as tests/real_packages.py imports them;
    raises ImportError with pytest's skip reason if they do not import here."""
    if str(TESTS) not in sys.path:
        sys.path.insert(0, str(TESTS))
    import pytest
    import real_packages

    try:
        if name == "timm":
            return real_packages.import_timm()
        if name == "torchvision":
            real_packages.import_timm()
            import torchvision

            return torchvision
        return real_packages.import_torchtitan_llama3()
    except pytest.skip.Exception as exc:
        raise ImportError(str(exc)) from None


def _hf_init(model: Any) -> Callable[[], None]:
    """The model's own init (``PreTrainedModel.init_weights``: every module's
    ``_init_weights``, then the ties). It skips modules flagged ``_is_hf_initialized``
    (set by the call itself), so the flags are cleared first, as on a fresh model."""

    def run() -> None:
        for m in model.modules():
            m.__dict__.pop("_is_hf_initialized", None)
        model.init_weights()

    return run


def _apply(policy: Any, model: nn.Module, **kw: Any) -> Callable[[], None]:
    parsed = initspec.load_policy(policy) if isinstance(policy, dict) else initspec.preset(policy)

    def run() -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", initspec.InitSpecWarning)  # optional rules
            initspec_torch.apply(parsed, model, **kw)

    return run


def _params(model: nn.Module) -> str:
    n = sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())
    return f"{n / 1e6:.1f}M params"


def hf_gpt2(scale: float) -> tuple[str, nn.Module, str, Callable[[], None], str]:
    from transformers import GPT2Config, GPT2LMHeadModel

    cfg = GPT2Config(
        n_layer=max(1, round(12 * scale)),
        n_embd=max(64, int(768 * scale) // 64 * 64),
        n_head=max(1, round(12 * scale)) if scale < 1 else 12,
        vocab_size=max(1000, int(50257 * scale)),
    )
    model = GPT2LMHeadModel(cfg)
    return "HF GPT-2 small", model, "gpt2", _hf_init(model), "init_weights()"


def hf_llama(scale: float) -> tuple[str, nn.Module, str, Callable[[], None], str]:
    from transformers import LlamaConfig, LlamaForCausalLM

    d = max(64, int(768 * scale) // 64 * 64)
    cfg = LlamaConfig(
        hidden_size=d,
        intermediate_size=max(128, int(2048 * scale)),
        num_hidden_layers=max(1, round(8 * scale)),
        num_attention_heads=max(1, d // 64),
        num_key_value_heads=max(1, d // 64),
        vocab_size=max(1000, int(32000 * scale)),
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(cfg)
    # HF's generic PreTrainedModel._init_weights, which Llama uses: the bert preset's rules
    return "HF Llama (from config)", model, "bert", _hf_init(model), "init_weights()"


def hf_bert(scale: float) -> tuple[str, nn.Module, str, Callable[[], None], str]:
    from transformers import BertConfig, BertModel

    d = max(64, int(768 * scale) // 64 * 64)
    cfg = BertConfig(
        hidden_size=d,
        num_hidden_layers=max(1, round(12 * scale)),
        num_attention_heads=max(1, d // 64),
        intermediate_size=4 * d,
        vocab_size=max(1000, int(30522 * scale)),
    )
    model = BertModel(cfg)
    return "HF BERT-base", model, "bert", _hf_init(model), "init_weights()"


def timm_vit(scale: float) -> tuple[str, nn.Module, str, Callable[[], None], str]:
    timm = _import("timm")
    kw = {} if scale >= 1 else {"depth": max(1, round(12 * scale)), "embed_dim": 64, "num_heads": 2}
    model = timm.create_model("vit_base_patch16_224", pretrained=False, weight_init="jax", **kw)
    return (
        "timm ViT-B/16 (jax init)",
        model,
        "vit-jax",
        lambda: model.init_weights("jax"),
        "init_weights('jax')",
    )


def torchvision_resnet50(scale: float) -> tuple[str, nn.Module, Any, Callable[[], None], str]:
    tv = _import("torchvision")
    model = tv.models.resnet50(width_per_group=max(8, int(64 * scale)))

    def own() -> None:  # the loop of ResNet.__init__, and the fc's own reset
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
        model.fc.reset_parameters()

    return "torchvision ResNet-50", model, TORCHVISION_RESNET, own, "its __init__ loop"


def torchtitan_config(dim: int, n_layers: int, n_heads: int, n_kv: int, vocab: int) -> Any:
    """torchtitan 0.3.0's Llama 3, built as its own ``llama3_configs`` entries are (the
    same builders and param_init dicts), at the given size (tests/real_packages.py)."""
    _import("torchtitan")
    from real_packages import torchtitan_llama3_config

    return torchtitan_llama3_config(
        dim=dim, n_layers=n_layers, n_heads=n_heads, n_kv_heads=n_kv, vocab=vocab,
        multiple_of=256, ffn_dim_multiplier=1.3,
    )  # fmt: skip


def torchtitan_meta(
    dim: int, n_layers: int, n_heads: int, n_kv: int, vocab: int, dtype: torch.dtype
) -> nn.Module:
    """The model built on the meta device, then ``to_empty`` on the CPU in ``dtype``."""
    cfg = torchtitan_config(dim, n_layers, n_heads, n_kv, vocab)
    with torch.device("meta"):
        model = cfg.build()
    model.to(dtype)
    model.to_empty(device="cpu")
    return model


def torchtitan_llama3(scale: float) -> tuple[str, nn.Module, str, Callable[[], None], str]:
    dim = max(64, int(1024 * scale) // 64 * 64)
    model = torchtitan_meta(
        dim, max(1, round(8 * scale)), max(2, dim // 64), max(1, dim // 128),
        max(1000, int(32768 * scale)), torch.float32,
    )
    return (
        "torchtitan Llama 3 (meta -> to_empty)",
        model,
        "torchtitan-llama3",
        model.init_states,
        "init_states()",
    )


ZOO = (hf_gpt2, hf_llama, hf_bert, timm_vit, torchvision_resnet50, torchtitan_llama3)
# the rows that were above 1.0 before the writes were threaded, also on one writer thread
ONE_WRITER = (timm_vit, torchvision_resnet50)


def zoo(scale: float = 1.0, repeats: int = 5, device: str = "cpu") -> tuple[list[Any], str]:
    """Scenario 7; on an accelerator (``device``) each model is moved there first (the
    torchtitan one is ``to_empty`` there) and both sides are timed to a synchronize."""
    from benchmarks.bench_torch import synced

    rows: list[Any] = []
    missing = []
    for build in ZOO:
        try:
            label, model, policy, own, own_label = build(scale)
        except ImportError as exc:
            missing.append(f"{build.__name__}: {exc}")
            continue
        if device != "cpu":
            if build is torchtitan_llama3:
                model.to_empty(device=device)
            else:
                model.to(device)
            label += f", {device}"
        rows.append(
            compare(
                f"7. {label} ({_params(model)})",
                f"apply({policy if isinstance(policy, str) else policy['name']})",
                synced(_apply(policy, model), device),
                own_label,
                synced(own, device),
                repeats,
                "<= 1.0",
            )
        )
        if device == "cpu" and build in ONE_WRITER:
            rows.append(
                compare(
                    f"7. {label} ({_params(model)}), writes on one thread",
                    "apply, MAX_THREADS = 1",
                    _one_writer(_apply(policy, model)),
                    own_label,
                    own,
                    repeats,
                    "(for comparison)",
                )
            )
        del model
    note = "not run here: " + "; ".join(missing) if missing else ""
    return rows, note


def _one_writer(run: Callable[[], None]) -> Callable[[], None]:
    """``run`` with the parameters written one after the other on the calling thread
    (``initspec_torch.backend.MAX_THREADS = 1``): what the threads add, side by side."""
    import initspec_torch.backend as backend

    def one() -> None:
        before, backend.MAX_THREADS = backend.MAX_THREADS, 1
        try:
            run()
        finally:
            backend.MAX_THREADS = before

    return one


# 8. what all or nothing costs ---------------------------------------------------------------


def atomic_cost(scale: float = 1.0, repeats: int = 5) -> tuple[list[Pair], str]:
    rows = []
    for build in (hf_llama, timm_vit, hf_gpt2):
        try:
            label, model, policy, _, _ = build(scale)
        except ImportError:
            continue
        rows.append(
            compare(
                f"8. {label} ({_params(model)})",
                f"apply({policy}) (default)",
                _apply(policy, model),
                "atomic=False",
                _apply(policy, model, atomic=False),
                repeats,
                "<= 1.05",
            )
        )
    mb = max(4, int(512 * scale))
    rss = {mode: rss_of(mode, mb) for mode in ("False", "True", "'backup'")}
    note = (
        f"peak RSS of apply (torch-defaults) on a {mb} MiB model (Linear layers, float32), "
        "each mode in a fresh process, beyond the RSS before apply: "
        + ", ".join(f"atomic={m}: {r['extra_mb']:+.0f} MiB" for m, r in rss.items())
    )
    return rows, note


_RSS_CHILD = """
import json, sys
from torch import nn
import initspec_torch
from benchmarks.bench_zoo import _rss_mb, _timed_peak

mb, atomic = int(sys.argv[1]), eval(sys.argv[2])
side = 4096 if mb >= 64 else 512  # Linear(4096, 4096) without bias: 64 MiB of float32
n = mb // 64 if mb >= 64 else mb
model = nn.Sequential(*[nn.Linear(side, side, bias=False) for _ in range(max(1, n))])
initspec_torch.apply("torch-defaults", nn.Linear(8, 8), seed=0, atomic=atomic)  # lazy imports
before = _rss_mb()
_, peak = _timed_peak(lambda: initspec_torch.apply("torch-defaults", model, seed=1, atomic=atomic))
size = sum(p.numel() * p.element_size() for p in model.parameters()) / 2**20
print(json.dumps({"before_mb": before, "peak_mb": peak, "model_mb": size, "extra_mb": peak - before}))
"""


def rss_of(atomic: str, mb: int) -> dict[str, float]:
    """Peak RSS of one apply on a model of ``mb`` MiB, in a fresh process that imports
    only initspec and torch: the RSS sampled every 5 ms during apply, less the RSS before."""
    repo = TESTS.parent
    path = [str(repo), str(repo / "adapters"), os.environ.get("PYTHONPATH", "")]
    out = subprocess.run(
        [sys.executable, "-c", _RSS_CHILD, str(mb), atomic],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in path if p)},
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


# 9. a 7B Llama-shaped model (BENCH_7B=1) ---------------------------------------------------


def _rss_mb() -> float:
    import resource

    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def _timed_peak(fn: Callable[[], object]) -> tuple[float, float]:
    """(seconds, peak RSS in MiB sampled every 5 ms by a thread) of one call of ``fn``."""
    import threading
    import time

    peak = [_rss_mb()]
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], _rss_mb())
            stop.wait(0.005)

    t = threading.Thread(target=watch)
    t.start()
    start = time.perf_counter()
    try:
        fn()
    finally:
        elapsed = time.perf_counter() - start
        stop.set()
        t.join()
    return elapsed, max(peak[0], _rss_mb())


def llama_7b(scale: float = 1.0, rounds: int = 1) -> tuple[list[Any], str]:
    """torchtitan 0.3.0's Llama 3 in the 7-8B class (dim 4096, 32 layers, 32 heads and kv
    heads, ffn 14336 as Llama 3 8B's multiplier 1.3 gives, vocab 32000: 8.05B parameters,
    15 GiB in bfloat16) on the meta device, ``to_empty`` on the CPU, then the default ``apply(torchtitan-llama3)`` and
    torchtitan's own ``init_states()`` alternately, ``rounds`` times each (minutes). The peak
    RSS of the first write includes the model's pages (``to_empty`` leaves them untouched);
    the pages are then touched (``zero_``) so that the timed runs do not pay for that."""
    import statistics

    if scale >= 1.0:
        dims = (4096, 32, 32, 32, 32000)
    else:
        dims = (max(64, int(4096 * scale) // 64 * 64), 2, 4, 4, max(1000, int(32000 * scale)))
    dim, n_layers, n_heads, n_kv, vocab = dims
    model = torchtitan_meta(dim, n_layers, n_heads, n_kv, vocab, torch.bfloat16)
    size_mb = sum(p.numel() * p.element_size() for p in model.parameters()) / 2**20
    largest_mb = max(p.numel() * p.element_size() for p in model.parameters()) / 2**20
    before = _rss_mb()
    ours = _apply("torchtitan-llama3", model)
    _, first_peak = _timed_peak(lambda: [p.detach().zero_() for p in model.parameters()])
    times: dict[str, list[float]] = {"apply": [], "init_states": []}
    peaks: dict[str, list[float]] = {"apply": [], "init_states": []}
    for i in range(rounds):
        order = (("apply", ours), ("init_states", model.init_states))
        for name, fn in order if i % 2 == 0 else order[::-1]:
            elapsed, peak = _timed_peak(fn)
            times[name].append(elapsed)
            peaks[name].append(peak - before - size_mb)
    n = sum(p.numel() for p in model.parameters())
    pair = Pair(
        f"9. torchtitan Llama 3, 7-8B class ({n / 1e9:.2f}B params, bfloat16, cpu)",
        "apply(torchtitan-llama3) (default)",
        "torchtitan init_states()",
        times["apply"],
        times["init_states"],
        "<= 1.0",
    )
    note = (
        f"model {size_mb:.0f} MiB, largest parameter {largest_mb:.0f} MiB; RSS before the "
        f"first write {before:.0f} MiB (to_empty maps pages it does not touch), after touching "
        f"every page {first_peak - before:+.0f} MiB; peak RSS beyond the RSS before and the "
        "model, per run: "
        + "; ".join(f"{k} {', '.join(f'{v:+.0f}' for v in vs)} MiB" for k, vs in peaks.items())
        + "; times (s): "
        + "; ".join(f"{k} {', '.join(f'{v:.1f}' for v in vs)}" for k, vs in times.items())
        + f" (median ratio {statistics.median(times['apply']) / statistics.median(times['init_states']):.3f})"
    )
    return [pair], note
