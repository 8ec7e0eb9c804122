"""Imported first by the package: without JAX, ``import initspec_jax`` says which extra to
install (``pip install 'initspec[jax]'``) instead of a bare ModuleNotFoundError. Flax is
required by the functions that use it (``initspec[flax]``)."""

from initspec.errors import require

require("jax", "jax", "initspec_jax")
