"""Resolve a policy against a model's parameters, all of them, before anything is written.

Adapters describe each parameter in neutral terms (``ParamInfo``), call ``resolve``, and only
then sample the plans it returns. ``resolve`` raises one ``ResolutionError`` listing every
parameter it cannot handle, so a bad policy leaves the model untouched. The same code serves
torch and Flax; the report is the same for both.
"""

from __future__ import annotations

import json
import math
import sys
import warnings
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from initspec.blocks import ResolvedBlock, block_layout, regions, slice_region
from initspec.errors import InitSpecError, InitSpecWarning, printable
from initspec.layout import LayoutLike, fans, resolve_layout
from initspec.numeric import FLOAT_DTYPES
from initspec.plans import ConstantPlan, Plan
from initspec.policy import Policy, PolicyLike, Rule, load_policy
from initspec.reporting import numbers
from initspec.reporting import spread as _spread
from initspec.seeding import FLAX_TO_TORCH_LEAF, derive_seed
from initspec.specs import PlanContext, SpecBase
from initspec.width import WidthInfo, width_info

# The smallest positive normal number of each dtype: a random plan whose std is below it
# would write (mostly) zeros and subnormals, so resolve refuses it.
SMALLEST_NORMAL = {
    "float16": 2.0**-14,
    "bfloat16": 2.0**-126,
    "float32": 2.0**-126,
    "float64": 2.0**-1022,
}

Status = Literal["init", "skip", "unmatched", "meta"]


@dataclass(frozen=True)
class ParamInfo:
    """One parameter, described by an adapter.

    ``path``: canonical dotted path (``encoder.layers.0.fc1.weight``); ``framework_path``:
    the framework's own (``encoder/layers_0/fc1/kernel``); ``module_types``: the owning
    module's class name and its base classes' names; ``dtype``: a name from
    ``FLOAT_DTYPES`` or the framework's name of a non-float type (refused).
    ``shared_with`` / ``aliases``: the other names of a tied parameter, and each of them
    described by its own module (a rule may match under any of them); ``ancestors``:
    ``(canonical path, class names)`` of every enclosing module, the root first and the
    owner last (``match.within``).
    """

    path: str
    shape: tuple[int, ...]
    kind: str
    role: str
    layout: LayoutLike
    dtype: str
    framework_path: str = ""
    module_types: tuple[str, ...] = ()
    device: str = "cpu"
    context: PlanContext = PlanContext()
    shared_with: tuple[str, ...] = ()
    aliases: tuple[ParamInfo, ...] = ()
    ancestors: tuple[tuple[str, tuple[str, ...]], ...] = ()
    # The local tensor is this part (one slice per dimension) of the parameter of global
    # ``shape`` (``path_map`` with an ``initspec.GlobalShard``: an expert shard).
    shard: tuple[slice, ...] | None = None


@dataclass
class ResolvedParam:
    """One parameter after resolution: its ``status`` (init, skip, keep, meta, ...), the
    rule that decided it (``rule_index``, ``rule``), the spec, the plan and the seed."""

    info: ParamInfo
    status: Status
    rule_index: int | None = None
    rule: Rule | None = None
    spec: SpecBase | None = None
    plan: Plan | None = None
    seed: int = 0
    zero_row: int | None = None  # a padding row to zero after sampling (embeddings)
    # A rule's blocks (plan None: the blocks cover the parameter) and slices, in order.
    blocks: list[ResolvedBlock] = field(default_factory=list)
    # The rule's scaling of the spec's plan: gain, and depth_scale's 1 / sqrt(factor * n)
    # with the n found for this parameter (None without depth_scale).
    gain: float = 1.0
    depth_factor: float | None = None
    depth_n: int | None = None


class ResolutionError(InitSpecError):
    """Parameters the policy cannot handle; ``problems`` lists them all."""

    def __init__(self, problems: list[str]) -> None:
        problems = [printable(p) for p in problems]
        self.problems = problems
        shown = "\n  ".join(problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        super().__init__(
            f"policy cannot be applied ({len(problems)} problem(s)); nothing was written:\n  {shown}{more}"
        )


@dataclass
class Resolution:
    """A policy resolved against a model's parameters (``resolve``), before sampling:
    ``to_sample()`` is what a backend writes, ``report()`` what the user sees."""

    policy: Policy
    seed: int
    params: list[ResolvedParam]
    unused_rules: list[str] = field(default_factory=list)
    # muP (the policy's ``width``): each parameter's width dimensions and multipliers
    width: dict[str, WidthInfo] = field(default_factory=dict)
    # "path: why" for each parameter backed up before it was written (engine.write_all)
    backed_up: list[str] = field(default_factory=list)

    def to_sample(self) -> list[ResolvedParam]:
        return [p for p in self.params if p.status == "init"]

    def report(self) -> Report:
        return Report(self)


class _RuleFinder:
    """The first rule matching each parameter. Most conditions (kind, module, role, ndim)
    are the same for many parameters, so the rules passing them are listed once per
    combination; only path conditions are checked per parameter."""

    def __init__(self, policy: Policy) -> None:
        self.rules = policy.rules
        self._candidates: dict[tuple[Any, ...], list[int]] = {}

    def _candidates_for(self, info: ParamInfo) -> list[int]:
        ndim = len(info.shape)
        signature = (info.kind, tuple(info.module_types), info.role, ndim)
        candidates = self._candidates.get(signature)
        if candidates is None:
            candidates = [
                i
                for i, rule in enumerate(self.rules)
                if rule.match.matches_attributes(info.kind, info.module_types, info.role, ndim)
            ]
            self._candidates[signature] = candidates
        return candidates

    def find(self, info: ParamInfo) -> tuple[int, Rule, str, ParamInfo] | None:
        """``(index, rule, the name it matched, the description it matched)``: the first
        rule, in policy order, that matches the parameter under any of its names
        (``match_names``), each name described by its own module (``aliases``: a tied
        parameter is an embedding under one name, a Linear weight under another)."""
        best: tuple[int, Rule, str, ParamInfo] | None = None
        for desc in (info, *info.aliases):
            names = match_names(desc)
            for i in self._candidates_for(desc):
                if best is not None and i >= best[0]:
                    break
                match = self.rules[i].match
                name = next((n for n in names if match.matches_path(n)), None)
                if name is not None and match.matches_within(desc.ancestors):
                    best = (i, self.rules[i], name, desc)
                    break
        return best


# A leaf's spelling in the other framework, by role: torch ``weight`` is Flax's ``kernel``
# (linear, conv), ``scale`` (norms) or ``embedding`` (tables); every Flax one is ``weight``.
_FLAX_LEAF = {"kernel": "kernel", "scale": "scale", "embedding": "embedding"}


def neutral_role(kind: str, leaf: str, ndim: int) -> str:
    """The role of a parameter of a module described by a policy's ``modules``, from its
    leaf name: the adapters' rules, for any framework's spelling."""
    if leaf == "bias" or leaf.startswith("bias_") or leaf.endswith("_bias"):
        return "bias"
    if kind == "norm":
        return "scale" if leaf in ("weight", "scale") else "other"
    if kind == "embedding":
        return "embedding" if leaf in ("weight", "embedding") else "other"
    weightlike = leaf in ("weight", "kernel") or leaf.startswith("weight_") or leaf.endswith("_weight")
    return "kernel" if weightlike and ndim >= 2 else "other"


def _described(params: list[ParamInfo], policy: Policy) -> list[ParamInfo]:
    """Parameters of modules the policy's ``modules`` describes, as it describes them (the
    kind; the role from the leaf name; the layout of a kernel or table; a bias's context
    from its sibling kernel in that layout). Others unchanged."""
    if not policy.modules:
        return params
    out = []
    for info in params:
        desc = next((policy.modules[t] for t in info.module_types if t in policy.modules), None)
        if desc is None:
            out.append(info)
            continue
        leaf = info.path.rpartition(".")[2]
        role = neutral_role(desc.kind, leaf, len(info.shape))
        layout = desc.layout if desc.layout is not None and role in ("kernel", "embedding") else info.layout
        out.append(replace(info, kind=desc.kind, role=role, layout=layout))
    by_path = {p.path: p for p in out}
    for i, info in enumerate(out):
        if info is params[i] or info.role != "bias":
            continue
        head = info.path.rpartition(".")[0]
        kernel = by_path.get(f"{head}.weight") or by_path.get(f"{head}.kernel")
        if kernel is not None and len(kernel.shape) >= 2:
            try:
                weight_fans: tuple[int, int] | None = fans(kernel.shape, kernel.layout)
            except InitSpecError:
                weight_fans = None
            out[i] = replace(info, context=replace(info.context, weight_fans=weight_fans))
    return out


def match_names(info: ParamInfo) -> tuple[str, ...]:
    """Every name a policy may match the parameter by: its canonical path, the other names
    of a tied parameter, and each of those with its leaf in the other framework's spelling
    (``fc.weight`` <-> ``fc.kernel``): one vocabulary for torch and Flax."""
    out: list[str] = []
    for name in (info.path,) if info.aliases else (info.path, *info.shared_with):
        head, sep, leaf = name.rpartition(".")
        other = FLAX_TO_TORCH_LEAF.get(leaf)
        if other is None and leaf == "weight":
            other = _FLAX_LEAF.get(info.role)
        for candidate in (name, f"{head}{sep}{other}" if other else None):
            if candidate is not None and candidate not in out:
                out.append(candidate)
    return tuple(out)


def _base_plan(memo: dict[Any, Plan], index: int, rule: Rule, info: ParamInfo) -> Plan:
    """``rule``'s plan for ``info`` before gain and depth scaling, computed once per rule,
    shape, layout and context (a deep model repeats a few shapes many times)."""
    assert rule.init is not None
    layout = info.layout
    key: tuple[Any, ...] | None = (index, tuple(info.shape), layout, info.context)
    try:  # a dict layout or a context built with lists is not hashable: not memoized
        if key in memo:
            return memo[key]
    except TypeError:
        key = None
    resolve_layout(layout)
    plan = rule.init.plan(info.shape, layout, info.context)
    if key is not None:
        memo[key] = plan
    return plan


def _parts(rule: Rule, info: ParamInfo, factor: float, seed: int) -> list[ResolvedBlock]:
    """The rule's blocks and then its slices on ``info``, each planned on its own shape
    (errors name the block, its spec and the numbers)."""
    found = []
    if rule.blocks is not None:
        for region in regions(rule.blocks, info.shape, info.layout):
            spec = rule.blocks.init.get(region.name, rule.init)
            assert spec is not None
            found.append((region, spec))
    for sl in rule.slices or ():
        found.append((slice_region(sl, info.shape, info.layout), sl.init))
    out = []
    for region, spec in found:
        what = "slice" if region.overlay else "block"
        try:
            layout = block_layout(info.layout, region)
            base = plan = spec.plan(region.block_shape, layout, info.context)
            if factor != 1.0:
                plan = plan.scaled(factor)
            _check_spread(base, plan, factor, info.dtype)
        except InitSpecError as exc:
            raise InitSpecError(
                f"{what} {region.name!r} (shape {region.block_shape}, {spec.kind_name()}): {exc}"
            ) from None
        key = region.key_path(info.path)
        out.append(ResolvedBlock(region, layout, spec, plan, derive_seed(seed, key)))
    return out


def _width(pol: Policy, info: ParamInfo, by_path: dict[str, ParamInfo]) -> WidthInfo:
    """muP for ``info`` (``initspec.width``): a bias is read with its sibling weight."""
    assert pol.width is not None
    sibling = None
    if info.role == "bias":
        head = info.path.rpartition(".")[0]
        weight = by_path.get(f"{head}.weight") or by_path.get(f"{head}.kernel")
        if weight is not None:
            sibling = (match_names(weight), tuple(weight.shape), weight.layout)
    return width_info(
        pol.width,
        info.path,
        match_names(info),
        tuple(info.shape),
        info.layout,
        info.kind,
        info.role,
        sibling,
    )


def _where(info: ParamInfo) -> str:
    return printable(f"{info.path} (shape {tuple(info.shape)}, {info.kind}/{info.role})")


def _check_spread(base: Plan, plan: Plan, factor: float, dtype: str) -> None:
    """Refuse a plan whose moments are not finite, or a random plan whose std underflowed
    (a gain of 5e-324, a depth_scale factor of 1e308) below what ``dtype`` can hold."""
    mean, std = _spread(plan)
    scaling = "" if factor == 1.0 else f"gain and depth_scale (x{factor:.4g}) make "
    try:
        var = float(plan.var)
    except (OverflowError, ValueError, ZeroDivisionError):
        var = math.nan
    if not (math.isfinite(mean) and math.isfinite(std) and math.isfinite(var)):
        raise InitSpecError(f"{scaling}{plan.describe()} has no finite float64 moments")
    tiny = SMALLEST_NORMAL.get(dtype, SMALLEST_NORMAL["float64"])
    base_std = std if base is plan else _spread(base)[1]
    if base_std > 0 and std < tiny:
        raise InitSpecError(
            f"{scaling}{plan.describe()} has std {std:.4g}, below the smallest normal "
            f"{dtype} ({tiny:.4g}): it would write (mostly) zeros"
        )


def resolve(
    policy: PolicyLike, params: list[ParamInfo], seed: int | None = None, strict: bool | None = None
) -> Resolution:
    """Match every parameter to its rule and plan it; raise before anything is sampled.

    Rules that matched no parameter and parameters no rule matched (kept as they are) are
    named in one ``InitSpecWarning``; with ``strict`` (default: the policy's ``strict``)
    they are problems of the ``ResolutionError`` instead.
    """
    resolution, problems = resolve_all(policy, params, seed, strict)
    if problems:
        raise ResolutionError(problems)
    return resolution


def resolve_all(
    policy: PolicyLike, params: list[ParamInfo], seed: int | None = None, strict: bool | None = None
) -> tuple[Resolution, list[str]]:
    """``resolve``, returning its problems instead of raising them, with the resolution of
    the parameters that have none: the engine adds its own checks' problems, so one
    ``ResolutionError`` names everything. The warning is given only when there are none."""
    pol = load_policy(policy)
    strict = pol.strict if strict is None else strict
    seed = seed if seed is not None else (pol.seed if pol.seed is not None else 0)
    derive_seed(seed)  # validates the seed's type and range
    if isinstance(params, (str, bytes)) or not isinstance(params, (list, tuple)):
        raise InitSpecError(f"params must be a list of ParamInfo, got {type(params).__name__}")
    for i, p in enumerate(params):
        if not isinstance(p, ParamInfo):
            raise InitSpecError(f"params[{i}] is a {type(p).__name__}, not a ParamInfo")
        if not isinstance(p.path, str):
            raise InitSpecError(f"params[{i}].path is a {type(p.path).__name__}, not a str")
    params = _described(list(params), pol)
    all_paths = [p.path for p in params]
    problems: list[str] = []
    out: list[ResolvedParam] = []
    used: set[int] = set()
    finder = _RuleFinder(pol)
    plans: dict[Any, Plan] = {}
    widths: dict[str, WidthInfo] = {}
    by_path = {p.path: p for p in params}
    counted: dict[int, int | None] = {}  # rule index -> its "count:" n (the same for all)
    for info in params:
        found = finder.find(info)
        if pol.width is not None:
            label = printable(found[1].label(found[0])) if found is not None else "(none)"
            try:
                widths[info.path] = _width(pol, info, by_path)
            except InitSpecError as exc:
                problems.append(f"{_where(info)}: rule {label}: {exc}")
                continue
        if found is None:
            if pol.unmatched == "error":
                problems.append(
                    f"{_where(info)}: no rule matches and the policy says unmatched='error'"
                )
            out.append(ResolvedParam(info, "unmatched"))
            continue
        index, rule, matched, described = found
        if described is not info:  # a tied parameter, planned as the name that matched
            info = replace(
                described,
                path=info.path,
                framework_path=info.framework_path,
                shared_with=info.shared_with,
                aliases=info.aliases,
            )
        if rule.layout is not None:
            info = replace(info, layout=rule.layout)
        used.add(index)
        label = printable(rule.label(index))
        if rule.skip:
            out.append(ResolvedParam(info, "skip", index, rule))
            continue
        if info.dtype not in FLOAT_DTYPES:
            problems.append(
                f"{_where(info)}: rule {label} would initialize a {info.dtype} parameter; "
                f"only {', '.join(FLOAT_DTYPES)} can be initialized (add a skip rule for it)"
            )
            continue
        try:
            factor = rule.gain
            depth: tuple[float, int] | None = None
            if rule.depth_scale is not None:
                ds = rule.depth_scale
                if isinstance(ds.n_layers, str):  # counted over all paths: once per rule
                    if index not in counted:
                        counted[index] = ds.n_for(matched, all_paths)
                    n = counted[index]
                else:
                    n = ds.n_for(matched, all_paths)
                if n is None or n < 1:
                    what = "finds no layer id or layer count" if n is None else f"finds n = {n}"
                    raise InitSpecError(
                        f"depth_scale {what} for this path (1 / sqrt(factor * n) needs n >= 1; "
                        f"{printable(str(rule.depth_scale.model_dump(exclude_none=True)))})"
                    )
                denominator = rule.depth_scale.factor * n
                if not math.isfinite(denominator):
                    raise InitSpecError(
                        f"depth_scale: factor * n = {rule.depth_scale.factor:.4g} * {n} "
                        f"is not a finite float64"
                    )
                factor /= math.sqrt(denominator)
                depth = (1.0 / math.sqrt(denominator), n)
            wi = widths.get(info.path)
            zero = wi is not None and pol.width is not None and pol.width.readout_zero_init
            zero = zero and wi is not None and wi.kind in ("output", "output_bias")
            if wi is not None:
                factor *= wi.init_factor
            plan: Plan | None = None
            if rule.blocks is None:
                assert rule.init is not None
                base = plan = _base_plan(plans, index, rule, info)
                if zero:  # MuReadout(readout_zero_init=True)
                    base = plan = ConstantPlan(tuple(info.shape), 0.0, fans=plan.fans)
                    factor = 1.0
                elif factor != 1.0:
                    plan = plan.scaled(factor)
                _check_spread(base, plan, factor, info.dtype)
        except InitSpecError as exc:
            kind = rule.init.kind_name() if rule.init is not None else "blocks"
            problems.append(f"{_where(info)}: rule {label} ({kind}): {exc}")
            continue
        try:
            parts = _parts(rule, info, factor, seed)
        except InitSpecError as exc:
            problems.append(f"{_where(info)}: rule {label}: {exc}")
            continue
        zero_row = info.context.padding_idx if rule.zero_padding_row else None
        out.append(
            ResolvedParam(
                info,
                "init",
                index,
                rule,
                rule.init,
                plan,
                derive_seed(seed, info.path),
                zero_row,
                parts,
                gain=rule.gain,
                depth_factor=None if depth is None else depth[0],
                depth_n=None if depth is None else depth[1],
            )
        )  # fmt: skip
    unused = [r.label(i) for i, r in enumerate(pol.rules) if i not in used]
    loud = [r.label(i) for i, r in enumerate(pol.rules) if i not in used and not r.optional]
    kept = [p.info.path for p in out if p.status == "unmatched"]
    if strict:
        problems += [f"rule {printable(label)} matched no parameter (strict)" for label in loud]
        if pol.unmatched != "error":
            problems += [f"{printable(path)}: no rule matches (strict)" for path in kept]
    if not problems:
        _warn(loud, kept)
    return Resolution(pol, seed, out, unused, widths), problems


def _warn(unused: list[str], kept: list[str]) -> None:
    """One ``InitSpecWarning`` naming what the policy did not do (silent is wrong)."""
    lines = []
    if unused:
        shown = ", ".join(printable(u) for u in unused[:10])
        more = f" and {len(unused) - 10} more" if len(unused) > 10 else ""
        lines.append(f"{len(unused)} rule(s) matched no parameter: {shown}{more}")
    if kept:
        shown = ", ".join(printable(k) for k in kept[:10])
        more = f" and {len(kept) - 10} more" if len(kept) > 10 else ""
        lines.append(f"{len(kept)} parameter(s) matched no rule and were kept: {shown}{more}")
    if lines:
        warnings.warn(
            "; ".join(lines) + " (strict=True makes this an error)",
            InitSpecWarning,
            stacklevel=_caller_level(),
        )


def _caller_level() -> int:
    """The ``stacklevel`` of the first frame outside initspec and its adapters, so a
    warning points at the user's ``apply`` / ``explain`` call."""
    frame, level = sys._getframe(1), 1
    while frame.f_back is not None and frame.f_globals.get("__name__", "").startswith(
        ("initspec.", "initspec_torch", "initspec_jax")
    ):
        frame, level = frame.f_back, level + 1
    return level


def _block_rows(row: dict[str, Any], p: ResolvedParam) -> list[dict[str, Any]]:
    """A row per block and slice of a parameter, after its own: ``path`` is the key path
    (``h.0.attn.c_attn.weight.q``), ``block_of`` the parameter, ``region`` where it lies."""
    out = []
    for b in p.blocks:
        r = b.region
        try:
            fan: list[int] | None = list(fans(r.block_shape, b.layout))
        except InitSpecError:
            fan = None
        out.append(
            {
                **row,
                "path": r.key_path(p.info.path),
                "framework_path": f"{row['framework_path']}.{r.name}",
                "shape": list(r.block_shape),
                "fans": fan,
                "spec": b.spec.model_dump(mode="json"),
                "plan": b.plan.describe(),
                "block_of": p.info.path,
                "region": {
                    "axis": r.axis,
                    "start": r.start,
                    "stop": r.stop,
                    "squeeze": r.squeeze,
                    "overlay": r.overlay,
                },
            }
        )
    return out


class Report:
    """What each parameter received: printable as an aligned table (``table()``), as data
    (``rows()``, ``to_dict()``, ``to_json()``, ``to_pandas()``), as HTML in a notebook;
    ``initspec.compare`` sets two side by side, ``initspec.plot`` draws one."""

    def __init__(self, resolution: Resolution) -> None:
        self.resolution = resolution

    @property
    def unmatched(self) -> int:
        return sum(p.status == "unmatched" for p in self.resolution.params)

    @property
    def warnings(self) -> list[str]:
        """The rules that matched no parameter, as the ``InitSpecWarning`` names them (not
        the optional ones; ``unmatched`` counts the parameters no rule matched)."""
        rules = self.resolution.policy.rules
        optional = {r.label(i) for i, r in enumerate(rules) if r.optional}
        return [
            f"rule {printable(label)} matched no parameter"
            for label in self.resolution.unused_rules
            if label not in optional
        ]

    def rows(self) -> list[dict[str, Any]]:
        """One dict per parameter (``initspec.reporting.ROW_FIELDS`` describes every key):
        both paths, shape, dtype, kind, role, layout, status, the rule, the plan as text and
        as numbers: exact mean, std, low and high (bounded plans), fans, numel, the rule's
        gain and depth factor ``1 / sqrt(factor * n)`` with its ``n``. Numbers that float64
        cannot hold are None."""
        rows = []
        for p in self.resolution.params:
            info = p.info
            try:
                layout = resolve_layout(info.layout).label()
            except InitSpecError:  # a parameter the policy skipped or left unmatched
                layout = "?"
            try:
                fan: tuple[int, int] | None = fans(info.shape, info.layout)
            except InitSpecError:
                fan = None
            rows.append(
                {
                    "path": info.path,
                    "framework_path": info.framework_path or info.path,
                    "shape": list(info.shape),
                    "dtype": info.dtype,
                    "device": info.device,
                    "kind": info.kind,
                    "role": info.role,
                    "layout": layout,
                    "fans": list(fan) if fan else None,
                    "status": p.status,
                    "rule_index": p.rule_index,
                    "rule_name": p.rule.name if p.rule else None,
                    "spec": p.spec.model_dump(mode="json") if p.spec else None,
                    "plan": p.plan.describe() if p.plan else None,
                    "shared_with": list(info.shared_with),
                    "names": list(match_names(info)),
                    **numbers(p),
                }
            )
            rows.extend(_block_rows(rows[-1], p))
        return rows

    def shapes(self) -> dict[str, list[int]]:
        """Each parameter's canonical path -> its stored shape: the ``width.base`` of a
        muP policy when this is the report of the base model."""
        return {p.info.path: list(p.info.shape) for p in self.resolution.params}

    def lr_multipliers(self, optimizer: str = "adam") -> dict[str, dict[str, float | None]]:
        """muP's per-parameter factors (the policy's ``width``), as ``mup``'s ``MuAdam``
        (``optimizer="adam"``, AdamW alike) or ``MuSGD`` (``"sgd"``) apply them: path ->
        ``{"lr": ..., "weight_decay": ..., "output_mult": ...}`` (the base learning rate
        and weight decay times these; ``output_mult``: the factor ``MuReadout`` applies to
        an output layer's input, None for other parameters). ``initspec.width`` gives the
        rules."""
        if optimizer not in ("adam", "sgd"):
            raise InitSpecError(f"optimizer {optimizer!r} is not known; allowed: adam, sgd")
        if self.resolution.policy.width is None:
            raise InitSpecError("lr_multipliers need a policy with a 'width' section (muP)")
        out: dict[str, dict[str, float | None]] = {}
        for path, w in self.resolution.width.items():
            lr, wd = (w.lr_adam, w.wd_adam) if optimizer == "adam" else (w.lr_sgd, w.wd_sgd)
            out[path] = {"lr": lr, "weight_decay": wd, "output_mult": w.output_mult}
        return out

    def to_dict(self) -> dict[str, Any]:
        res = self.resolution
        return {
            "policy": res.policy.name,
            "seed": res.seed,
            "parameters": self.rows(),
            "unmatched": self.unmatched,
            "warnings": self.warnings,
            "backed_up": list(res.backed_up),
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    def to_pandas(self) -> Any:
        """``rows()`` as a ``pandas.DataFrame``, one row per parameter (needs pandas)."""
        from initspec.reporting import to_pandas

        return to_pandas(self.rows())

    def _repr_html_(self) -> str:
        """The table in a notebook (Jupyter, VS Code): one row per parameter, escaped."""
        from initspec.reporting import report_html

        return report_html(self)

    def table(self) -> str:
        head = ("parameter", "shape", "dtype", "rule", "plan")
        body = []
        for r in self.rows():
            rule = (
                "-"
                if r["rule_index"] is None
                else f"#{r['rule_index']}" + (f" {r['rule_name']}" if r["rule_name"] else "")
            )
            what = {
                "init": r["plan"] or "blocks (below)",
                "skip": "skipped (kept)",
                "unmatched": "no rule (kept)",
                "meta": f"meta, not written: {r['plan']}",
            }[r["status"]]
            name = r["path"] + (f" (= {', '.join(r['shared_with'])})" if r["shared_with"] else "")
            cells = (name, "x".join(map(str, r["shape"])) or "()", r["dtype"], rule, str(what))
            # Paths come from models and names from policies: no cell may carry a terminal
            # escape, a carriage return or a newline that would erase or forge rows.
            body.append(tuple(printable(str(c)) for c in cells))
        widths = [max(len(str(row[i])) for row in [head, *body]) for i in range(len(head))]
        lines = [
            "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=False)).rstrip()
            for row in [head, *body]
        ]
        lines.insert(1, "  ".join("-" * w for w in widths))
        blocks = sum(1 for r in self.rows() if "block_of" in r)
        lines.append(
            f"{len(body) - blocks} parameters"
            + (f" ({blocks} blocks)" if blocks else "")
            + f", {self.unmatched} unmatched"
        )
        lines.extend(f"warning: {printable(w)}" for w in self.warnings)
        lines.extend(f"backed up before writing: {printable(b)}" for b in self.resolution.backed_up)
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()
