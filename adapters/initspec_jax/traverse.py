"""Find the parameters of a Flax model and describe each (``initspec_jax.describe``).

``describe_linen`` walks a linen parameter tree (with the module instances, when the model
is given); ``describe_nnx`` walks an ``nnx.Module``. Both return ``FlaxParam`` records: the
neutral ``ParamInfo`` a policy is resolved against, the framework path, and the value (an
array or a ``jax.ShapeDtypeStruct``) whose dtype and sharding the new value keeps.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections import OrderedDict
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, replace
from typing import Any, cast

import jax
import numpy as np

from initspec.errors import BackendError, require
from initspec.resolve import ParamInfo
from initspec_jax.describe import (
    Owner,
    canonical_linen_path,
    canonical_nnx_path,
    describe_param,
    module_types,
)

_AUTO_NAME = re.compile(r"^(.+)_(\d+)$")
Path = tuple[Any, ...]


@dataclass(frozen=True)
class FlaxParam:
    """One parameter: its description, its path in the framework, its current value (boxes
    removed) and, for nnx, the ``nnx.Param`` that holds it."""

    info: ParamInfo
    path: Path
    value: Any
    variable: Any = None


def _device_label(value: Any) -> str:
    sharding = getattr(value, "sharding", None)
    if sharding is None:
        return "abstract" if isinstance(value, jax.ShapeDtypeStruct) else "host"
    devices = sorted(sharding.device_set, key=lambda d: d.id)
    if len(devices) == 1:
        return f"{devices[0].platform}:{devices[0].id}"
    return f"{devices[0].platform} x{len(devices)}"


def _is_array_like(value: Any) -> bool:
    return hasattr(value, "shape") and hasattr(value, "dtype")


def _array(value: Any) -> Any:
    """An nnx variable's value as an array: ``nnx.Param(3.0)`` holds a Python number, a
    0-d parameter of JAX's default float dtype."""
    if _is_array_like(value):
        return value
    import jax.numpy as jnp

    try:
        return jnp.asarray(value)
    except TypeError:
        raise BackendError(
            f"an nnx.Param holds a {type(value).__name__}, not an array or a number"
        ) from None


def walk(tree: Mapping[str, Any], prefix: Path = ()) -> list[tuple[Path, Any]]:
    """(path, leaf) for every leaf of a nested mapping, in insertion order."""
    out: list[tuple[Path, Any]] = []
    for name, value in tree.items():
        if isinstance(value, Mapping):
            out.extend(walk(value, (*prefix, name)))
        else:
            out.append(((*prefix, name), value))
    return out


def unbox(value: Any) -> Any:
    from flax.core import meta

    return value.unbox() if isinstance(value, meta.AxisMetadata) else value


def _setup_child(module: Any, name: str) -> Any:
    """The submodule ``name`` of a bound linen module, if setup defines it (``layers_0`` is
    element 0 of the list attribute ``layers``); None for compact submodules."""
    import flax.linen as nn

    try:
        child = getattr(module, name)
    except Exception:  # setup-less or compact modules have no such attribute
        child = None
    if isinstance(child, nn.Module):
        return child
    match = _AUTO_NAME.match(name)
    if match:
        try:
            seq = getattr(module, match.group(1))
        except Exception:
            return None
        index = int(match.group(2))
        if (
            isinstance(seq, (list, tuple))
            and index < len(seq)
            and isinstance(seq[index], nn.Module)
        ):
            return seq[index]
    return None


_TRACE_CACHE: OrderedDict[Hashable, dict[Path, Any]] = OrderedDict()
_TRACE_CACHE_SIZE = 8
_TRACE_LOCK = threading.Lock()


def _leaf_key(leaf: Any) -> Hashable:
    """Abstract values (``jax.ShapeDtypeStruct``, tracers) by shape and dtype; concrete
    arrays and NumPy scalars also by a digest of their values, since ``model.init`` may
    branch on them (``if use_conv:`` with ``np.bool_(True)``); anything else as itself."""
    if not _is_array_like(leaf):
        return cast(Hashable, leaf)
    head = (tuple(leaf.shape), str(leaf.dtype))
    if isinstance(leaf, (jax.ShapeDtypeStruct, jax.core.Tracer)):
        return ("abstract", *head)
    digest = hashlib.blake2b(np.ascontiguousarray(np.asarray(leaf)).tobytes(), digest_size=16)
    return ("value", *head, digest.hexdigest())


def _signature(model: Any, model_args: tuple[Any, ...]) -> Hashable | None:
    """What the traced module types depend on: the model's configuration (linen modules
    compare and hash by their fields and class) and the arguments (``_leaf_key``); None when
    something is not hashable (no caching then)."""
    leaves, treedef = jax.tree_util.tree_flatten(model_args)
    key = (model, treedef, tuple(_leaf_key(leaf) for leaf in leaves))
    try:
        hash(key)
    except TypeError:
        return None
    return key


def _traced_modules(model: Any, model_args: tuple[Any, ...]) -> dict[Path, Any]:
    """Every module ``model.init(key, *model_args)`` calls, by path, recorded with
    ``nn.intercept_methods`` during an abstract ``jax.eval_shape`` of it.

    The trace costs as much as tracing ``model.init`` (0.5 s for GPT-2 small), so the result
    is cached per model configuration and arguments, as ``jax.jit`` caches its traces:
    applying a policy again to the same model skips it. The modules kept are deep unbound
    clones (submodules passed as fields included: no reference to the trace's scopes or
    tracers, so ``jax.checking_leaks`` passes); only their types and attributes are read.
    """
    import flax.linen as nn

    sig = _signature(model, model_args)
    if sig is not None:
        with _TRACE_LOCK:
            cached = _TRACE_CACHE.get(sig)
            if cached is not None:
                _TRACE_CACHE.move_to_end(sig)
                return cached
    found: dict[Path, Any] = {}

    def record(next_fun: Any, args: Any, kwargs: Any, context: Any) -> Any:
        path = tuple(context.module.path)
        if path not in found:
            # an unbound copy: the bound module holds the trace's scope and tracers
            found[path] = context.module.clone(parent=None, _deep_clone=True)
        return next_fun(*args, **kwargs)

    key = jax.random.key(0)
    try:
        with nn.intercept_methods(record):
            jax.eval_shape(lambda: model.init(key, *model_args))
    except Exception as exc:
        raise BackendError(
            f"model.init(key, *model_args) failed while looking up module types: "
            f"{type(exc).__name__}: {exc}"
        ) from None
    if sig is not None:
        with _TRACE_LOCK:
            _TRACE_CACHE[sig] = found
            if len(_TRACE_CACHE) > _TRACE_CACHE_SIZE:
                _TRACE_CACHE.popitem(last=False)
    return found


def linen_modules(
    model: Any, params: Mapping[str, Any], model_args: tuple[Any, ...] | None
) -> dict[Path, Any]:
    """Module instances by path (tuples of names) for the parameters' owners.

    With ``model_args`` (example inputs, arrays or ``jax.ShapeDtypeStruct``), every module
    that ``model.init`` calls is recorded with ``nn.intercept_methods`` during an abstract
    ``jax.eval_shape`` of it: complete, compact modules included. Without them, modules
    defined in ``setup`` are found by attribute on ``model.bind``; compact submodules are then
    classified by name (``initspec_jax.describe``).
    """
    import flax.linen as nn

    if model is None:
        return {}
    if not isinstance(model, nn.Module):
        raise BackendError(f"model must be a flax.linen Module, got {type(model).__name__}")
    if model_args is not None:
        return dict(_traced_modules(model, model_args))
    found: dict[Path, Any] = {}
    bound = model.bind({"params": params})
    found[()] = bound
    for path, _ in walk(params):
        module = bound
        for depth, name in enumerate(path[:-1], start=1):
            module = _setup_child(module, str(name)) if module is not None else None
            if module is not None:
                found.setdefault(tuple(path[:depth]), module)
    return found


def split_collections(variables: Any) -> tuple[Mapping[str, Any], bool]:
    """The params collection, and whether ``variables`` held collections around it."""
    if not isinstance(variables, Mapping):
        raise BackendError(
            f"expected a Flax parameter tree (a mapping), got {type(variables).__name__}"
        )
    params = variables.get("params")
    if isinstance(params, Mapping):
        return params, True
    return variables, False


def _describe_all(
    entries: list[tuple[Path, Any, Any]],
    modules: Mapping[Path, Any],
    canonical: Any,
) -> list[FlaxParam]:
    """``FlaxParam`` for (path, value, variable) entries, owners looked up in ``modules``."""
    by_owner: dict[Path, dict[str, Any]] = {}
    for path, value, _ in entries:
        by_owner.setdefault(path[:-1], {})[str(path[-1])] = value
    out: list[FlaxParam] = []
    seen: dict[str, Path] = {}
    for path, value, variable in entries:
        owner_path = path[:-1]
        owner = Owner(
            modules.get(owner_path),
            str(owner_path[-1]) if owner_path else "",
            modules.get(owner_path[:-1]) if owner_path else None,
        )
        name = canonical(path)
        framework_path = "/".join(map(str, path))
        if name in seen:
            raise BackendError(
                f"{framework_path} and {'/'.join(map(str, seen[name]))} have the same "
                f"canonical path {name!r}; rename one of the modules"
            )
        seen[name] = path
        info = describe_param(
            path, name, framework_path, owner, by_owner[owner_path], _device_label(value)
        )
        ancestors = tuple(
            (canonical((*path[:i], "x")).rpartition(".")[0], module_types(modules[path[:i]]))
            for i in range(len(owner_path) + 1)
            if path[:i] in modules
        )
        out.append(FlaxParam(replace(info, ancestors=ancestors), path, value, variable))
    return out


def describe_linen(
    params: Any, model: Any = None, *, model_args: tuple[Any, ...] | None = None
) -> list[FlaxParam]:
    """Every parameter of a linen tree (``model.init``'s variables or their ``params``
    collection), in the tree's order, described; see ``linen_modules`` for ``model`` and
    ``model_args``."""
    require("flax", "flax", "initspec_jax.apply")  # the extra to install, not a bare ImportError
    tree, _ = split_collections(params)
    leaves = [(path, unbox(value)) for path, value in walk(tree)]
    for path, value in leaves:
        if not _is_array_like(value):
            raise BackendError(f"{'/'.join(map(str, path))}: not an array ({type(value).__name__})")
    modules = linen_modules(model, tree, model_args)
    return _describe_all(
        [(p, v, None) for p, v in leaves], modules, lambda p: canonical_linen_path(p)
    )


def describe_nnx(module: Any) -> list[FlaxParam]:
    """Every ``nnx.Param`` of ``module``, in ``nnx.iter_graph`` order, described; a variable
    reachable under several paths appears once, under the first."""
    nnx = require("flax.nnx", "flax", "initspec_jax.apply_nnx")

    if not isinstance(module, nnx.Module):
        raise BackendError(f"expected an nnx.Module, got {type(module).__name__}")
    nodes = [(tuple(p), n) for p, n in nnx.iter_graph(module)]
    modules = {p: n for p, n in nodes if isinstance(n, nnx.Module)}
    entries = [(p, _array(n.get_value()), n) for p, n in nodes if isinstance(n, nnx.Param)]
    return _describe_all(entries, modules, canonical_nnx_path)
