"""initspec: weight initialization as declarative, portable, verifiable data.

Spec (what the user declares) -> plan (resolved against a shape and layout) -> sample
(a backend draws the plan). The core depends on numpy and pydantic only.

This namespace holds what users call: specs (``parse``, ``schema``, ``to_json``, the spec
classes), sampling with NumPy (``sample``), fans and gains, policies (``load_policy``,
``preset``, ``presets``, ``policy_schema``), reports (``Report``; ``compare`` for a model
and its port; ``initspec.plot`` with matplotlib), the errors, and Keras interop. What
an adapter author needs (the backend protocol, the orchestration, plans, descriptions of
parameters) lives in ``initspec.backend``; the portable stream's constants in
``initspec.stream``.
"""

from initspec import plot  # matplotlib is imported by its functions only
from initspec.checker import CheckReport, InitCheckError, check
from initspec.errors import (
    BackendError,
    InitSpecError,
    InitSpecWarning,
    PartialWriteError,
    PolicyError,
    ShapeError,
    SpecError,
)
from initspec.fingerprints import Fingerprint, fingerprint
from initspec.gain import calculate_gain
from initspec.keras import KerasSeedWarning, from_keras, to_keras
from initspec.layout import LAYOUTS, fans
from initspec.numpy_backend import sample
from initspec.parse import parse, schema, to_json
from initspec.pathmap import GlobalShard
from initspec.policy import Match, Policy, Rule, load_policy, policy_schema, preset, presets
from initspec.policy import PolicyLike as PolicyLike  # the type of every policy argument
from initspec.reporting import Comparison, compare
from initspec.resolve import Report, ResolutionError
from initspec.seeding import derive_seed
from initspec.specs import SPEC_CLASSES, PlanContext, Spec, SpecBase

__version__ = "0.1.0"

__all__ = [
    "LAYOUTS",
    "SPEC_CLASSES",
    "BackendError",
    "CheckReport",
    "Comparison",
    "Fingerprint",
    "GlobalShard",
    "InitCheckError",
    "InitSpecError",
    "InitSpecWarning",
    "KerasSeedWarning",
    "Match",
    "PartialWriteError",
    "PlanContext",
    "Policy",
    "PolicyError",
    "PolicyLike",
    "Report",
    "ResolutionError",
    "Rule",
    "ShapeError",
    "Spec",
    "SpecBase",
    "SpecError",
    "calculate_gain",
    "check",
    "compare",
    "derive_seed",
    "fans",
    "fingerprint",
    "from_keras",
    "load_policy",
    "parse",
    "plot",
    "policy_schema",
    "preset",
    "presets",
    "sample",
    "schema",
    "to_json",
    "to_keras",
]
