"""Imported first by the package: without torch, ``import initspec_torch`` says which extra
to install (``pip install 'initspec[torch]'``) instead of a bare ModuleNotFoundError."""

from initspec.errors import require

require("torch", "torch", "initspec_torch")
