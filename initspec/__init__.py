"""initspec: weight initialization as declarative, portable, verifiable data.

Spec (what the user declares) -> plan (resolved against a shape and layout) -> sample
(a backend draws the plan). The core depends on numpy and pydantic only.
"""

from initspec.errors import BackendError, InitSpecError, PolicyError, ShapeError, SpecError
from initspec.gain import calculate_gain
from initspec.keras import KerasSeedWarning, from_keras, to_keras
from initspec.layout import LAYOUTS, Layout, fans, resolve_layout
from initspec.numpy_backend import sample
from initspec.parse import parse, schema, to_json
from initspec.plans import Plan
from initspec.policy import Match, Policy, Rule, load_policy, policy_schema, preset, presets
from initspec.resolve import ParamInfo, Report, Resolution, ResolutionError, resolve
from initspec.seeding import derive_seed
from initspec.specs import SPEC_CLASSES, PlanContext, Spec, SpecBase

__version__ = "0.1.0"

__all__ = [
    "BackendError",
    "InitSpecError",
    "KerasSeedWarning",
    "LAYOUTS",
    "Match",
    "ParamInfo",
    "Policy",
    "Report",
    "Resolution",
    "ResolutionError",
    "Rule",
    "load_policy",
    "policy_schema",
    "preset",
    "presets",
    "resolve",
    "Layout",
    "Plan",
    "PlanContext",
    "PolicyError",
    "SPEC_CLASSES",
    "ShapeError",
    "Spec",
    "SpecBase",
    "SpecError",
    "calculate_gain",
    "derive_seed",
    "fans",
    "from_keras",
    "to_keras",
    "parse",
    "resolve_layout",
    "sample",
    "schema",
    "to_json",
]
