"""Per-parameter seeds: a stable hash of (seed, canonical path).

``derive_seed(seed, path) = int.from_bytes(blake2b(f"{seed}\\x00{stream_path(path)}",
digest_size=8, person=b"initspec-seed-v1").digest(), "little")``: a 64-bit integer that does
not depend on traversal order, process, platform or ``PYTHONHASHSEED``. Every backend seeds
its own generator for a parameter from it, so adding a layer never changes the others.

``stream_path`` names the last path segment as torch does (Flax's ``kernel``, ``scale`` and
``embedding`` are torch's ``weight``), so a torch model and its Flax twin key each parameter
the same way: ``conv1.kernel`` and ``conv1.weight`` share a seed and a portable stream.
"""

from __future__ import annotations

import hashlib

from initspec.errors import SpecError

# Seeds are integers in torch.manual_seed's range, [-2**63, 2**64).
SEED_MIN = -(2**63)
SEED_MAX = 2**64

FLAX_TO_TORCH_LEAF = {"kernel": "weight", "scale": "weight", "embedding": "weight"}


def stream_path(path: str) -> str:
    """``path`` with a Flax leaf name replaced by torch's: ``fc1.kernel`` -> ``fc1.weight``."""
    head, sep, leaf = path.rpartition(".")
    leaf = FLAX_TO_TORCH_LEAF.get(leaf, leaf)
    return f"{head}{sep}{leaf}"


def derive_seed(seed: int, path: str = "") -> int:
    """64-bit seed for the parameter at ``path`` (see ``stream_path``) under ``seed``."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise SpecError(("seed",), seed, "must be an integer")
    if not SEED_MIN <= seed < SEED_MAX:
        raise SpecError(("seed",), seed, "must be an integer from -2**63 to 2**64 - 1")
    if not isinstance(path, str):
        raise SpecError(("path",), path, "must be a string (a dotted parameter path)")
    data = f"{seed}\x00{stream_path(path)}".encode("utf-8", "surrogatepass")
    digest = hashlib.blake2b(data, digest_size=8, person=b"initspec-seed-v1").digest()
    return int.from_bytes(digest, "little")
