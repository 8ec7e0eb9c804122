"""Per-parameter seeds: a stable hash of (seed, canonical path).

``derive_seed(seed, path) = int.from_bytes(blake2b(f"{seed}\\x00{path}", digest_size=8,
person=b"initspec-seed-v1").digest(), "little")``: a 64-bit integer that does not depend on
traversal order, process, platform or ``PYTHONHASHSEED``. Every backend seeds its own
generator for a parameter from it, so adding a layer never changes the others.
"""

from __future__ import annotations

import hashlib

from initspec.errors import SpecError


def derive_seed(seed: int, path: str = "") -> int:
    """64-bit seed for the parameter at ``path`` under the user's ``seed``."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise SpecError(("seed",), seed, "must be an integer")
    data = f"{seed}\x00{path}".encode("utf-8", "surrogatepass")
    digest = hashlib.blake2b(data, digest_size=8, person=b"initspec-seed-v1").digest()
    return int.from_bytes(digest, "little")
