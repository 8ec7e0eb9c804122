"""Importing timm (with torchvision) and torchtitan 0.3.0 on this machine's CPU torch, for the
tests that check presets against those packages' own init code.

Two packages do not import as they are beside the CPU build of torch 2.13 that the Makefile
installs; each workaround below is confined to this module (nothing in initspec depends on
it) and to the test process that calls it:

- **torchvision** (imported by timm). PyPI's torchvision 0.28.0 wheel is built against the CUDA
  build of torch: its ``_C.so`` needs ``libc10_cuda.so``, so ``torch.ops.load_library`` fails
  (quietly: ``torchvision.extension._has_ops()`` is False) and none of the ``torchvision::``
  operators is defined. ``torchvision/_meta_registrations.py`` then calls
  ``torch.library.register_fake("torchvision::nms")`` (and ``qnms``) unconditionally at import
  time, which raises ``RuntimeError: operator torchvision::nms does not exist``.

  Installed in the venv's site-packages, that breaks more than timm: transformers imports
  torchvision whenever it finds it (``transformers.image_utils``, reached from
  ``modeling_utils``), so ``from transformers import GPT2LMHeadModel`` fails in every process.
  The Makefile therefore installs timm and torchvision into their own folder,
  ``.venv/timm-torchvision`` (``VISION_DIR``), which is not on the import path: nothing else
  sees them. ``import_timm`` defines the two schemas (as the C++ extension declares them) with
  ``torch.library``, then appends that folder to ``sys.path`` and imports timm; torchvision's
  fake registrations attach to the schemas, and a later torchvision import by transformers in
  the same process works too. No kernel is registered: calling ``torchvision.ops.nms`` still
  fails loudly, and the other operators stay undefined (torchvision's own
  ``_assert_has_ops()`` refuses them; it registers their fake and autograd kernels only when
  ``_has_ops()``). timm's models and init code use none of them. Where torchvision's ``_C``
  does load (a matching build), nothing is defined.
- **triton** (imported by torchtitan). torchtitan 0.3.0 imports ``triton`` at module level in
  ``distributed/minimal_async_ep/kernels.py`` (expert-parallel MoE kernels, reached from
  ``torchtitan.models.common.token_dispatcher``) and in two opt-in ``overrides`` modules, for
  GPU kernels a CPU model never runs. Triton is not installed (a CUDA compiler; installing it
  would also change what torch's inductor does in the rest of the suite). A stub ``triton`` in
  ``sys.modules`` does not work: the same import pulls in ``torch._inductor``, which imports
  ``triton.compiler`` when ``import triton`` succeeds, and torch caches what it found. So
  instead those torchtitan modules themselves (``TORCHTITAN_TRITON_MODULES``) are put in
  ``sys.modules`` as stubs whose every function raises if called; ``import triton`` still fails
  everywhere, torch sees no triton, and the model code is torchtitan's own.

torchtitan is installed with ``--no-deps`` (see the Makefile): its declared dependencies
include datasets, wandb and tensorboard (and datasets would downgrade huggingface_hub), none of
which building a model needs. ``TORCHTITAN_DEPS`` below lists what the model code imports.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import pathlib
import sys
import types
from typing import Any

import pytest

# Where the Makefile installs timm and torchvision (see the module docstring).
VISION_DIR = pathlib.Path(sys.prefix) / "timm-torchvision"

# What `import torchtitan.models.llama3` needs besides torch (in the dev extras).
TORCHTITAN_DEPS = ("spmd_types", "torch_checkpointing", "einops", "tyro")

_TORCHVISION_SCHEMAS = {
    # torchvision/csrc/ops/nms.cpp and quantized/cpu/qnms_kernel.cpp (TORCH_LIBRARY_FRAGMENT)
    "nms": "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms": "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
}
_torchvision_lib: Any = None  # the torch.library.Library holding the schemas (kept alive)


def _define_torchvision_schemas() -> None:
    global _torchvision_lib
    import torch.library

    if _torchvision_lib is not None:
        return
    missing = [name for name in _TORCHVISION_SCHEMAS if not _op_exists(f"torchvision::{name}")]
    if not missing:
        return  # a working torchvision build (or a previous import) defined them
    lib = torch.library.Library("torchvision", "FRAGMENT")
    for name in missing:
        lib.define(_TORCHVISION_SCHEMAS[name])
    _torchvision_lib = lib


def _op_exists(qualname: str) -> bool:
    import torch

    try:
        torch._C._dispatch_find_schema_or_throw(qualname, "")
    except RuntimeError:
        return False
    return True


def _torchvision_extension_loads() -> bool:
    """Load torchvision's _C as torchvision.extension does, without importing torchvision
    (whose __init__ is what fails): True if it loads (the operators are then defined)."""
    import torch

    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        return False
    finder = importlib.machinery.FileFinder(
        list(spec.submodule_search_locations)[0],
        (importlib.machinery.ExtensionFileLoader, importlib.machinery.EXTENSION_SUFFIXES),
    )
    ext = finder.find_spec("_C")
    if ext is None or ext.origin is None:
        return False
    try:
        torch.ops.load_library(ext.origin)
    except OSError:  # e.g. libc10_cuda.so: cannot open shared object file
        return False
    return True


def import_timm() -> types.ModuleType:
    """timm (and torchvision) from ``VISION_DIR``, importable beside this CPU torch (see the
    module docstring); skips the test with the reason if it cannot be imported."""
    pytest.importorskip("torch")
    if "timm" in sys.modules:
        return sys.modules["timm"]
    added = False
    if importlib.util.find_spec("timm") is None and VISION_DIR.is_dir():
        sys.path.append(str(VISION_DIR))  # appended: it never shadows the venv's packages
        importlib.invalidate_caches()
        added = True
    if importlib.util.find_spec("timm") is None or importlib.util.find_spec("torchvision") is None:
        pytest.skip(
            f"timm and torchvision are not installed (the Makefile puts them in {VISION_DIR})"
        )
    if "torchvision" not in sys.modules and not _torchvision_extension_loads():
        _define_torchvision_schemas()
    try:
        return importlib.import_module("timm")
    except Exception as exc:  # ImportError, or torchvision's RuntimeError from its op registry
        if added:  # leave no half-importable torchvision for transformers to find
            sys.path.remove(str(VISION_DIR))
            importlib.invalidate_caches()
        pytest.skip(f"timm cannot be imported here: {type(exc).__name__}: {exc}")


# torchtitan's modules that import triton at module level (torchtitan 0.3.0). Only the first is
# reached from torchtitan.models.llama3 (torchtitan.models.common.token_dispatcher imports
# torchtitan.distributed.minimal_async_ep, whose api imports these kernels); the two override
# modules are opt-in (--override.imports) and never imported here.
TORCHTITAN_TRITON_MODULES = (
    "torchtitan.distributed.minimal_async_ep.kernels",
    "torchtitan.overrides.fused_mla",
    "torchtitan.overrides.fused_swiglu",
)


class _KernelStubModule(types.ModuleType):
    """Stands in for a torchtitan module of triton kernels: any name imported from it is a
    function that raises when called."""

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(attr)
        module = self.__name__

        def refuse(*args: Any, **kwargs: Any) -> Any:
            raise RuntimeError(
                f"{module}.{attr} is a triton kernel, stubbed by tests/real_packages.py: "
                "triton is not installed, and a CPU test must not reach GPU kernels"
            )

        refuse.__name__ = attr
        return refuse


def _stub_torchtitan_triton_modules() -> None:
    if importlib.util.find_spec("triton") is not None:
        return  # a real triton: torchtitan imports as it is
    for name in TORCHTITAN_TRITON_MODULES:
        sys.modules.setdefault(name, _KernelStubModule(name))


def import_torchtitan_llama3() -> types.ModuleType:
    """torchtitan.models.llama3 (torchtitan 0.3.0), imported with the triton stub (see the
    module docstring); skips the test with the reason if it cannot be imported."""
    pytest.importorskip("torch")
    if "torchtitan.models.llama3" in sys.modules:
        return sys.modules["torchtitan.models.llama3"]
    if importlib.util.find_spec("torchtitan") is None:
        pytest.skip("torchtitan is not installed (the Makefile installs it with --no-deps)")
    for dep in TORCHTITAN_DEPS:
        if importlib.util.find_spec(dep) is None:
            pytest.skip(f"torchtitan needs {dep}, which is not installed")
    try:
        _stub_torchtitan_triton_modules()
        return importlib.import_module("torchtitan.models.llama3")
    except Exception as exc:
        pytest.skip(f"torchtitan cannot be imported here: {type(exc).__name__}: {exc}")


def torchtitan_llama3_config(
    *,
    dim: int,
    n_layers: int,
    n_heads: int,
    n_kv_heads: int,
    vocab: int,
    tied: bool = False,
    fuse_qkv: bool = False,
    multiple_of: int = 256,
    ffn_dim_multiplier: float | None = None,
    max_seq_len: int = 2048,
) -> Any:
    """torchtitan 0.3.0's Llama 3 config, built as its own ``llama3_configs`` entries are
    (torchtitan/models/llama3/__init__.py: the same builders and param_init dicts), at the
    given size; ``_1b``'s tied form (``enable_weight_tying`` with ``_EMBEDDING_SKIP_INIT``)
    when ``tied``."""
    ll = import_torchtitan_llama3()
    from torchtitan.models.common import (
        ComplexRoPE,
        Embedding,
        Linear,
        RMSNorm,
        compute_ffn_hidden_dim,
    )

    return ll.Llama3Model.Config(
        dim=dim,
        vocab_size=vocab,
        enable_weight_tying=tied,
        tok_embeddings=Embedding.Config(
            num_embeddings=vocab,
            embedding_dim=dim,
            param_init=ll._EMBEDDING_SKIP_INIT if tied else ll._EMBEDDING_INIT,
        ),
        norm=RMSNorm.Config(normalized_shape=dim, param_init=ll._NORM_INIT),
        lm_head=Linear.Config(
            in_features=dim, out_features=vocab, param_init=ll._output_linear_init(dim)
        ),
        layers=ll._build_llama3_layers(
            fuse_qkv=fuse_qkv,
            n_layers=n_layers,
            dim=dim,
            n_heads=n_heads,
            n_kv_heads=n_kv_heads,
            hidden_dim=compute_ffn_hidden_dim(
                dim, multiple_of=multiple_of, ffn_dim_multiplier=ffn_dim_multiplier
            ),
            rope=ComplexRoPE.Config(
                dim=dim // n_heads, max_seq_len=max_seq_len, theta=500000, scaling="llama"
            ),
            attn_backend="flex",
        ),
    )
