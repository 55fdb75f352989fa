"""Weight initialisation: the ``init:`` section of a spec (and of a block), its presets, and applying it.

A spec says how its weights start with rules at three levels of precedence, for each tensor (a
node's ``weight`` and ``bias`` separately):

1. ``nodes`` — rules for the nodes (or blocks) whose dotted names match a shell-style pattern;
2. ``ops`` — rules per op kind (``conv``, ``linear``, ``bn``, ... or ``*`` for every op with weights);
3. ``preset`` — a named preset (:data:`PRESETS`), itself rules per op kind;

and PyTorch's default (what the module's constructor did) for a tensor no rule mentions.  ``init``
may appear at the top of a spec, at the top of a block library (the default of its blocks) and in
a block definition (its nodes, patterns relative to the instance).  Within each precedence level the
spec's own section comes first, then the sections of the block instances enclosing the node from the
outermost inwards (a block's own ``init`` before that of the file defining it).

The static part — :data:`PRESETS`, :func:`check_section` (validation, called by :mod:`archspec.spec`),
:func:`resolve` (every tensor's scheme, stored in :attr:`archspec.ir.Graph.init`), :func:`tensor_inits`
and :func:`init_text` (for ``summary --init`` and ``render --init``) — never imports torch.
:func:`torch_call`, :func:`apply_inits`, :func:`source_lines` and :func:`seeded` serve
:mod:`archspec.lower_torch` and :mod:`archspec.emit_python` (torch is imported when they are called),
so a built model and its emitted source make the same calls in the same order.
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fnmatch import translate
from typing import TYPE_CHECKING, Any

from .errors import ArchspecError, Diagnostic, Span, did_you_mean
from .ir import Graph, Node
from .models import INIT_SCHEME_ARGS, InitRule, InitScheme, InitSpec, SpecDocument
from .ops import OPS, canonical_op_name, get_op, is_builtin
from .source import LocMap, span_of

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = [
    "CONSTRUCTOR_CONSTANTS",
    "PRESETS",
    "WEIGHTED_OPS",
    "ModuleInit",
    "Preset",
    "TensorInit",
    "apply_inits",
    "check_section",
    "init_text",
    "module_init",
    "module_inits",
    "op_kinds",
    "preset_spec",
    "resolve",
    "seeded",
    "source_lines",
    "state_digest",
    "tensor_attrs",
    "tensor_inits",
    "torch_call",
]

#: Built-in ops with learned tensors: op → {tensor name in rules → the attribute paths in the lowered module}.
#: An attention op's ``weight`` is each of its projection matrices, its ``bias`` each projection's bias.
#: (A new built-in op with weights is added here; plugin ops are taken to have ``weight`` and ``bias``.)
WEIGHTED_OPS: dict[str, dict[str, tuple[str, ...]]] = {
    "conv": {"weight": ("weight",), "bias": ("bias",)},
    "conv-transpose": {"weight": ("weight",), "bias": ("bias",)},
    "linear": {"weight": ("weight",), "bias": ("bias",)},
    "channel-linear": {"weight": ("weight",), "bias": ("bias",)},
    "bn": {"weight": ("weight",), "bias": ("bias",)},
    "layernorm": {"weight": ("weight",), "bias": ("bias",)},
    "groupnorm": {"weight": ("weight",), "bias": ("bias",)},
    "prelu": {"weight": ("weight",)},
    "layer-scale": {"weight": ("layer_scale",)},
    "attention": {"weight": ("in_proj_weight", "out_proj.weight"), "bias": ("in_proj_bias", "out_proj.bias")},
    "window-attention": {"weight": ("qkv.weight", "proj.weight"), "bias": ("qkv.bias", "proj.bias")},
}
_PLUGIN_TENSORS = {"weight": ("weight",), "bias": ("bias",)}
#: Schemes that need a tensor of two or more dimensions (they read its fans).
_FAN_SCHEMES = frozenset({"kaiming_normal", "kaiming_uniform", "xavier_normal", "xavier_uniform"})


@dataclass(frozen=True)
class Preset:
    """A named initialisation: rules per op kind, as in an ``init: {ops: ...}`` section."""

    description: str
    source: str
    ops: dict[str, Any]


_KAIMING_OUT_RELU = {"scheme": "kaiming_normal", "mode": "fan_out", "nonlinearity": "relu"}
_BN_1_0 = {"weight": 1, "bias": 0}
_DEFAULT = {"weight": "default", "bias": "default"}

#: The named presets.  Each sets every op kind (``*``: PyTorch's default for what it does not name), so
#: a preset stands for exactly its source's initialisation.  Read from each source's code.
PRESETS: dict[str, Preset] = {
    "pytorch": Preset("every tensor keeps PyTorch's default (what the module's constructor did)",
                      "torch.nn; torchvision's AlexNet and ShuffleNetV2 add nothing", {"*": _DEFAULT}),
    "d2l-xavier": Preset(
        "Xavier-uniform weights on every conv and linear; biases and norms keep PyTorch's default",
        "d2l.init_cnn (Dive into Deep Learning, PyTorch): nn.init.xavier_uniform_ on nn.Conv2d and nn.Linear weights",
        {"conv": {"weight": "xavier_uniform"}, "linear": {"weight": "xavier_uniform"}, "*": _DEFAULT}),
    "torchvision-resnet": Preset(
        "conv weights Kaiming-normal (fan_out, relu); BatchNorm/GroupNorm weight 1, bias 0; linear default",
        "torchvision.models.ResNet (resnet*, resnext*, wide_resnet*; zero_init_residual=False)",
        {"conv": {"weight": _KAIMING_OUT_RELU}, "bn": _BN_1_0, "groupnorm": _BN_1_0, "*": _DEFAULT}),
    "torchvision-densenet": Preset(
        "conv weights Kaiming-normal (fan_in); BatchNorm weight 1, bias 0; linear bias 0 (weight default)",
        "torchvision.models.DenseNet",
        {"conv": {"weight": "kaiming_normal"}, "bn": _BN_1_0, "linear": {"bias": 0}, "*": _DEFAULT}),
    "torchvision-vgg": Preset(
        "conv weights Kaiming-normal (fan_out, relu), bias 0; BatchNorm 1/0; linear weights normal(0, 0.01), bias 0",
        "torchvision.models.VGG (init_weights=True)",
        {"conv": {"weight": _KAIMING_OUT_RELU, "bias": 0}, "bn": _BN_1_0,
         "linear": {"weight": {"scheme": "normal", "mean": 0, "std": 0.01}, "bias": 0}, "*": _DEFAULT}),
    "torchvision-googlenet": Preset(
        "conv and linear weights truncated normal (std 0.01, cut at ±2); BatchNorm 1/0; biases default",
        "torchvision.models.GoogLeNet (init_weights=True)",
        {"conv": {"weight": {"scheme": "trunc_normal", "mean": 0, "std": 0.01, "a": -2, "b": 2}},
         "linear": {"weight": {"scheme": "trunc_normal", "mean": 0, "std": 0.01, "a": -2, "b": 2}},
         "bn": _BN_1_0, "*": _DEFAULT}),
    "torchvision-inception": Preset(
        "conv and linear weights truncated normal (std 0.1, cut at ±2); BatchNorm 1/0; biases default "
        "(the auxiliary head's conv1 std 0.01 and fc std 0.001 need node rules)",
        "torchvision.models.Inception3 (inception_v3, init_weights=True)",
        {"conv": {"weight": {"scheme": "trunc_normal", "mean": 0, "std": 0.1, "a": -2, "b": 2}},
         "linear": {"weight": {"scheme": "trunc_normal", "mean": 0, "std": 0.1, "a": -2, "b": 2}},
         "bn": _BN_1_0, "*": _DEFAULT}),
    "torchvision-mobilenet": Preset(
        "conv weights Kaiming-normal (fan_out), bias 0; BatchNorm/GroupNorm 1/0; linear weights normal(0, 0.01), bias 0",
        "torchvision.models.MobileNetV2 and MobileNetV3",
        {"conv": {"weight": {"scheme": "kaiming_normal", "mode": "fan_out"}, "bias": "zeros"},
         "bn": {"weight": "ones", "bias": "zeros"}, "groupnorm": {"weight": "ones", "bias": "zeros"},
         "linear": {"weight": {"scheme": "normal", "mean": 0, "std": 0.01}, "bias": "zeros"}, "*": _DEFAULT}),
    "torchvision-efficientnet": Preset(
        "conv weights Kaiming-normal (fan_out), bias 0; BatchNorm/GroupNorm 1/0; linear weights uniform(±1/√out), bias 0",
        "torchvision.models.EfficientNet (efficientnet_b*, efficientnet_v2_*)",
        {"conv": {"weight": {"scheme": "kaiming_normal", "mode": "fan_out"}, "bias": "zeros"},
         "bn": {"weight": "ones", "bias": "zeros"}, "groupnorm": {"weight": "ones", "bias": "zeros"},
         "linear": {"weight": {"scheme": "uniform", "a": -1, "b": 1, "scale": "fan_out"}, "bias": "zeros"},
         "*": _DEFAULT}),
    "torchvision-mnasnet": Preset(
        "conv weights Kaiming-normal (fan_out, relu), bias 0; BatchNorm 1/0; linear Kaiming-uniform (fan_out, sigmoid), "
        "bias 0",
        "torchvision.models.MNASNet",
        {"conv": {"weight": _KAIMING_OUT_RELU, "bias": "zeros"}, "bn": {"weight": "ones", "bias": "zeros"},
         "linear": {"weight": {"scheme": "kaiming_uniform", "mode": "fan_out", "nonlinearity": "sigmoid"},
                    "bias": "zeros"}, "*": _DEFAULT}),
    "torchvision-regnet": Preset(
        "conv weights normal(0, √(2/fan_out)) (= Kaiming-normal fan_out, relu), conv biases default; BatchNorm 1/0; "
        "linear weights normal(0, 0.01), bias 0",
        "torchvision.models.RegNet",
        {"conv": {"weight": _KAIMING_OUT_RELU}, "bn": {"weight": "ones", "bias": "zeros"},
         "linear": {"weight": {"scheme": "normal", "mean": 0, "std": 0.01}, "bias": "zeros"}, "*": _DEFAULT}),
    "torchvision-squeezenet": Preset(
        "conv weights Kaiming-uniform (fan_in), bias 0; the final conv normal(0, 0.01) needs a node rule",
        "torchvision.models.SqueezeNet",
        {"conv": {"weight": "kaiming_uniform", "bias": 0}, "*": _DEFAULT}),
    "torchvision-vit": Preset(
        "conv (the patch embedding) weights truncated normal (std 1/√fan_in), bias 0; linear (the MLPs) weights "
        "Xavier-uniform, biases normal(0, 1e-6); attention, class token, position embedding as built; the "
        "classifier head is zeroed by a node rule in the spec",
        "torchvision.models.VisionTransformer and its MLPBlock",
        {"conv": {"weight": {"scheme": "trunc_normal", "std": 1, "scale": "fan_in"}, "bias": "zeros"},
         "linear": {"weight": "xavier_uniform", "bias": {"scheme": "normal", "std": 1e-6}}, "*": _DEFAULT}),
    "torchvision-swin": Preset(
        "linear weights (the MLPs, patch merging, head, and the attention's qkv and proj) truncated normal "
        "(std 0.02), biases 0; the patch-embedding conv and the norms default; relative position bias as built",
        "torchvision.models.SwinTransformer (its final loop over every nn.Linear overrides the MLPBlock's Xavier)",
        {"linear": {"weight": {"scheme": "trunc_normal", "std": 0.02}, "bias": "zeros"},
         "window-attention": {"weight": {"scheme": "trunc_normal", "std": 0.02}, "bias": "zeros"}, "*": _DEFAULT}),
    "torchvision-convnext": Preset(
        "conv and linear (also channel-linear) weights truncated normal (std 0.02), bias 0; LayerNorm default",
        "torchvision.models.ConvNeXt",
        {"conv": {"weight": {"scheme": "trunc_normal", "std": 0.02}, "bias": "zeros"},
         "linear": {"weight": {"scheme": "trunc_normal", "std": 0.02}, "bias": "zeros"},
         "channel-linear": {"weight": {"scheme": "trunc_normal", "std": 0.02}, "bias": "zeros"}, "*": _DEFAULT}),
}


@dataclass(frozen=True, slots=True)
class TensorInit:
    """The initialisation chosen for one tensor: a scheme, its explicit arguments, and the rule it came from."""

    scheme: str
    args: tuple[tuple[str, Any], ...]
    origin: str
    span: Span | None = None

    def describe(self) -> str:
        """``kaiming_normal(mode=fan_out, nonlinearity=relu)``, ``constant(1)``, ``zeros``."""
        if self.scheme == "constant":
            return f"constant({_num(dict(self.args)['value'])})"
        if not self.args:
            return self.scheme
        return f"{self.scheme}(" + ", ".join(f"{k}={_num(v)}" for k, v in self.args) + ")"


def _num(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def init_text(graph: Graph, node: Node) -> str:
    """A compact line for diagrams: ``weight kaiming_normal(fan_out, relu)``, ``weight 1, bias 0``; empty when default."""
    chosen = graph.init.get(node.name)
    if not chosen:
        return ""
    parts = []
    for t, ti in chosen.items():
        values = [_num(v) for _, v in ti.args]
        text = values[0] if ti.scheme == "constant" else ti.scheme + (f"({', '.join(values)})" if values else "")
        parts.append(f"{t} {text}")
    return ", ".join(parts)


def tensor_inits(graph: Graph, node: Node) -> dict[str, str]:
    """Each learned tensor of ``node`` → its scheme (``default`` for PyTorch's); empty for a node without weights."""
    chosen = graph.init.get(node.name, {})
    return {t: chosen[t].describe() if t in chosen else "default" for t in _node_tensors(node)}


# --------------------------------------------------------------------------------------------------
# Validation of one ``init`` value (called by archspec.spec for each file)


def op_kinds() -> list[str]:
    """The op kinds an ``ops`` rule may name (built-in ops with weights, and plugin ops)."""
    return sorted({*WEIGHTED_OPS, *(n for n, op in OPS.items() if not is_builtin(op))})


def check_section(model: Any, located: Any, holder: Any, key: str, errors: list[Diagnostic]) -> None:
    """Check an ``init`` value the models accepted: preset names and op kinds (``holder[key]`` is ``located``)."""
    if model is None:
        return
    if isinstance(model, str):
        _check_preset(model, span_of(holder, key), errors)
        return
    assert isinstance(model, InitSpec)
    if model.preset is not None:
        _check_preset(model.preset, span_of(located, "preset"), errors)
    ops = located.get("ops") if isinstance(located, LocMap) else None
    for kind in model.ops:
        if kind == "*":
            continue
        name = canonical_op_name(kind)
        op = get_op(name)
        if op is None:
            from .plugins import find_op  # loads installed plugins for a name not registered yet

            op = find_op(name)
        where = span_of(ops, kind, key_position=True) if ops is not None else span_of(located)
        if op is None:
            hint = did_you_mean(kind, op_kinds())
            errors.append(Diagnostic("E-INIT", f"init: unknown op kind '{kind}'", where,
                                     (hint + " " if hint else "") + "op kinds with weights: " + ", ".join(op_kinds())
                                     + "; '*' is every one of them; rules for named nodes go under 'nodes:'"))
        elif is_builtin(op) and op.name not in WEIGHTED_OPS:
            errors.append(Diagnostic("E-INIT", f"init: op '{op.name}' has no weights to initialise", where,
                                     "op kinds with weights: " + ", ".join(op_kinds())))


def _check_preset(name: str, where: Span | None, errors: list[Diagnostic]) -> None:
    if name in PRESETS:
        return
    hint = did_you_mean(name, PRESETS)
    errors.append(Diagnostic("E-INIT", f"init: unknown preset '{name}'", where,
                             (hint + " " if hint else "") + "presets: " + ", ".join(PRESETS)))


# --------------------------------------------------------------------------------------------------
# Resolution: every tensor's scheme (static)


@dataclass
class _Pattern:
    text: str
    regex: re.Pattern[str]
    tensors: dict[str, TensorInit]
    span: Span | None
    matched: bool = False


@dataclass
class _Rules:
    """One ``init`` value compiled: its rules per precedence level."""

    preset: dict[str, dict[str, TensorInit]] = field(default_factory=dict)
    ops: dict[str, dict[str, TensorInit]] = field(default_factory=dict)
    nodes: list[_Pattern] = field(default_factory=list)
    warn: bool = True  # report patterns matching no node


_preset_specs: dict[str, InitSpec] = {}


def preset_spec(name: str) -> InitSpec:
    """The validated ``init`` section of preset ``name`` (a KeyError for an unknown one)."""
    spec = _preset_specs.get(name)
    if spec is None:
        spec = _preset_specs[name] = InitSpec.model_validate({"ops": PRESETS[name].ops})
    return spec


def _choice(value: Any, origin: str, span: Span | None) -> TensorInit:
    """A tensor's initialisation from what a rule wrote: a scheme mapping, a scheme name or a number."""
    if isinstance(value, InitScheme):
        scheme = value.scheme
        assert scheme is not None
        args = tuple((k, getattr(value, k)) for k in INIT_SCHEME_ARGS[scheme] if getattr(value, k) is not None)
        return TensorInit(scheme, args, origin, span)
    if isinstance(value, str):
        return TensorInit(value, (), origin, span)
    return TensorInit("constant", (("value", value),), origin, span)


def _rule_tensors(value: Any, origin: str, span: Span | None) -> dict[str, TensorInit]:
    if isinstance(value, InitRule):
        out: dict[str, TensorInit] = {}
        if value.scheme is not None:
            out["weight"] = _choice(value, origin, span)
        elif value.weight is not None:
            out["weight"] = _choice(value.weight, origin, span)
        if value.bias is not None:
            out["bias"] = _choice(value.bias, origin, span)
        return out
    return {"weight": _choice(value, origin, span)}


def _ops_rules(spec: InitSpec, located: Any, origin: str, span: Span | None) -> dict[str, dict[str, TensorInit]]:
    ops = located.get("ops") if isinstance(located, LocMap) else None
    return {canonical_op_name(k) if k != "*" else k:
            _rule_tensors(v, f"{origin}{k}", span if ops is None else span_of(ops, k)) for k, v in spec.ops.items()}


def _compile(model: Any, located: Any, span: Span | None, where: str) -> _Rules:
    """Compile an ``init`` value (a preset name or an :class:`InitSpec`); ``span`` is where it is written."""
    rules = _Rules()
    if isinstance(model, str):
        rules.preset = _ops_rules(preset_spec(model), None, f"preset {model}: ", span)
        return rules
    assert isinstance(model, InitSpec)
    if model.preset is not None:
        rules.preset = _ops_rules(preset_spec(model.preset), None, f"preset {model.preset}: ",
                                  span_of(located, "preset"))
    rules.ops = _ops_rules(model, located, f"{where}ops.", None)
    nodes = located.get("nodes") if isinstance(located, LocMap) else None
    for text, value in model.nodes.items():
        span = span_of(nodes, text, key_position=True) if nodes is not None else None
        rules.nodes.append(_Pattern(text, re.compile(translate(text)), _rule_tensors(value, f"{where}nodes['{text}']",
                                                                                     span), span))
    return rules


@dataclass(frozen=True, slots=True)
class _Level:
    rules: _Rules
    base: str  # the group the patterns are relative to ("" = the whole network)


def _node_tensors(node: Node) -> dict[str, int | None]:
    """The node's learned tensors that exist, by rule name, with their number of dimensions (None: unknown)."""
    p = node.params
    if node.op in WEIGHTED_OPS:
        if node.op in ("bn", "layernorm", "groupnorm"):
            return {"weight": 1, "bias": 1} if getattr(p, "affine", True) else {}
        if node.op == "prelu":
            return {"weight": 1}
        if node.op == "layer-scale":
            return {"weight": len(node.shape)}
        ndim = 4 if node.op in ("conv", "conv-transpose") else 2  # attention: its projection matrices
        return {"weight": ndim, "bias": 1} if getattr(p, "bias", True) else {"weight": ndim}
    op = get_op(node.op)
    if op is None or is_builtin(op) or node.counts.params == 0:
        return {}
    return dict.fromkeys(_PLUGIN_TENSORS)


def tensor_attrs(op: str, tensor: str) -> tuple[str, ...]:
    """The attribute paths in an op's lowered module of the rule's ``tensor`` (``layer-scale``'s weight: ``layer_scale``)."""
    return WEIGHTED_OPS.get(op, _PLUGIN_TENSORS).get(tensor, (tensor,))


def resolve(graph: Graph, doc: SpecDocument, data: Any) -> None:
    """Choose every tensor's initialisation and store it in ``graph.init`` (node → tensor → :class:`TensorInit`).

    Only tensors that do not keep PyTorch's default are stored.  A ``nodes`` pattern that matches no
    node with weights is a ``W-INIT-UNUSED`` warning (appended to ``graph.warnings``; patterns in the
    top-level ``init`` of an imported library are not reported: they may target blocks a spec does not
    use).  A scheme that needs a tensor's fans given a one-dimensional tensor is an ``E-INIT`` error.
    """
    compiled: dict[int, tuple[Any, _Rules]] = {}

    def rules_of(model: Any, located: Any, span: Span | None, where: str, warn: bool) -> _Rules | None:
        if model is None:
            return None
        ident = id(located)
        hit = compiled.get(ident)
        if hit is not None and hit[0] is located:
            return hit[1]
        rules = _compile(model, located, span, where)
        rules.warn = warn
        compiled[ident] = (located, rules)
        return rules

    root = rules_of(doc.init, data.get("init") if isinstance(data, LocMap) else None, span_of(data, "init"), "init.",
                    True)
    chains: dict[str, tuple[_Level, ...]] = {"": (_Level(root, ""),) if root is not None else ()}

    def levels_of(group: str) -> tuple[_Level, ...]:
        todo = []
        g = group
        while g not in chains:
            todo.append(g)
            g = graph.groups[g].parent
        levels = chains[g]
        for name in reversed(todo):
            grp = graph.groups[name]
            if grp.kind == "block" and grp.block is not None and grp.block in doc.blocks:
                source = doc.block_source(grp.block)
                own = rules_of(doc.blocks[grp.block].init, source.get("init"), span_of(source, "init"),
                               f"blocks.{grp.block}.init.", True)
                extra = [_Level(own, name)] if own is not None else []
                file_init = doc.block_file_init(grp.block)
                if file_init is not None:
                    lib = rules_of(*file_init, "init.", False)
                    if lib is not None:
                        extra.append(_Level(lib, name))
                levels = (*levels, *extra)
            chains[name] = levels
        return levels

    errors: dict[tuple[Span | None, str, str], tuple[TensorInit, list[str]]] = {}  # (rule, op, tensor) → nodes
    init: dict[str, dict[str, Any]] = {}
    for node in graph.nodes.values():
        if node.counts.params == 0:
            continue
        levels = levels_of(node.group)
        if not levels:
            continue
        tensors = _node_tensors(node)
        matching = [_matches(lv, node.name) for lv in levels]
        chosen: dict[str, TensorInit] = {}
        for tensor, ndim in tensors.items():
            ti = _pick(levels, matching, node.op, tensor)
            if ti is None or ti.scheme == "default":
                continue
            fans = ti.scheme in _FAN_SCHEMES or any(k == "scale" for k, _ in ti.args)
            if fans and ndim is not None and ndim < 2:
                errors.setdefault((ti.span, node.op, tensor), (ti, []))[1].append(node.name)
                continue
            chosen[tensor] = ti
        if chosen:
            init[node.name] = chosen
    if errors:
        diags = []
        for (span, op, tensor), (ti, names) in errors.items():
            more = f" and {len(names) - 1:,} more" if len(names) > 1 else ""
            diags.append(Diagnostic(
                "E-INIT", f"{ti.describe()} reads the fans of a tensor of two or more dimensions, but the {tensor} "
                f"of a '{op}' node has one ({names[0]}{more}; {ti.origin})", span,
                hint="give this tensor a scheme without fans (constant, normal, uniform, ...), or narrow the rule"))
        raise ArchspecError(sorted(diags, key=Diagnostic.sort_key) + list(graph.warnings))
    graph.init = init
    for _, rules in compiled.values():
        if not rules.warn:
            continue
        for pat in rules.nodes:
            if not pat.matched:
                graph.warnings.append(Diagnostic(
                    "W-INIT-UNUSED", f"init pattern '{pat.text}' matches no node with weights", pat.span,
                    hint="patterns match dotted node names ('*' also matches dots), inside a block relative to "
                    "its instance; 'archspec build --json' lists the names", severity="warning"))


def _matches(level: _Level, name: str) -> list[_Pattern]:
    """The patterns of ``level`` matching the node ``name`` or a block around it, in written order."""
    if not level.rules.nodes:
        return []
    if level.base:
        if not name.startswith(level.base + "."):
            return []
        name = name[len(level.base) + 1:]
    parts = name.split(".")
    candidates = [".".join(parts[: i + 1]) for i in range(len(parts))]
    out = []
    for pat in level.rules.nodes:
        if any(pat.regex.match(c) for c in candidates):
            pat.matched = True
            out.append(pat)
    return out


def _pick(levels: tuple[_Level, ...], matching: list[list[_Pattern]], op: str, tensor: str) -> TensorInit | None:
    for pats in matching:  # nodes: the spec's own rules first, then each enclosing block's, outside in
        for pat in reversed(pats):  # the last pattern written wins
            if tensor in pat.tensors:
                return pat.tensors[tensor]
    for attr in ("ops", "preset"):
        for lv in levels:
            table: dict[str, dict[str, TensorInit]] = getattr(lv.rules, attr)
            for kind in (op, "*"):
                rule = table.get(kind)
                if rule is not None and tensor in rule:
                    return rule[tensor]
    return None


# --------------------------------------------------------------------------------------------------
# Applying (torch, imported lazily)


def _fan(shape: tuple[int, ...], mode: str) -> int:
    """``torch.nn.init``'s fan: ``fan_in = shape[1] · receptive field``, ``fan_out = shape[0] · receptive field``."""
    receptive = math.prod(shape[2:])
    return (shape[1] if mode == "fan_in" else shape[0]) * receptive


def torch_call(ti: TensorInit, shape: tuple[int, ...]) -> tuple[str, tuple[Any, ...], dict[str, Any]] | None:
    """The ``torch.nn.init`` call for a tensor of ``shape``: (function name, positional args, keyword args).

    None for ``default``.  ``scale`` is worked out here (it is not an argument of torch's functions), so
    the emitted source and a built model use the very same numbers.
    """
    args = dict(ti.args)
    scheme = ti.scheme
    if scheme == "default":
        return None
    if scheme in ("zeros", "ones"):
        return scheme + "_", (), {}
    if scheme == "constant":
        return "constant_", (args["value"],), {}
    scale = args.pop("scale", None)
    if scale is not None:
        factor = 1 / math.sqrt(_fan(shape, scale))
        if scheme == "uniform":
            args["a"] = args.get("a", 0.0) * factor
            args["b"] = args.get("b", 1.0) * factor
        else:
            args["std"] = args.get("std", 1.0) * factor
    return scheme + "_", (), args


def module_inits(graph: Graph, node: Node) -> tuple[tuple[str, TensorInit], ...]:
    """The non-default initialisations of a node as (attribute path in its module, :class:`TensorInit`) pairs."""
    chosen = graph.init.get(node.name)
    if not chosen:
        return ()
    return tuple((attr, ti) for t, ti in chosen.items() for attr in tensor_attrs(node.op, t))


def _tensor_at(module: Any, path: str) -> Any:
    """``module.a.b`` for the path ``a.b``; None where a part is missing (e.g. a bias built with ``bias=False``)."""
    for part in path.split("."):
        module = getattr(module, part, None)
        if module is None:
            return None
    return module


#: What a built-in layer's constructor already sets a tensor to: (op, tensor) → value.  A rule setting that
#: same constant (torchvision's BatchNorm ``weight 1, bias 0``) is not applied again when building (the
#: result is the same, no random number is drawn either way); summaries and ejected source still show it.
CONSTRUCTOR_CONSTANTS: dict[tuple[str, str], float] = {
    (op, t): v for op in ("bn", "layernorm", "groupnorm") for t, v in (("weight", 1.0), ("bias", 0.0))
}


def _redundant(op: str, tensor: str, ti: TensorInit) -> bool:
    value = CONSTRUCTOR_CONSTANTS.get((op, tensor))
    if value is None:
        return False
    given = {"zeros": 0.0, "ones": 1.0}.get(ti.scheme, dict(ti.args).get("value") if ti.scheme == "constant" else None)
    return given is not None and float(given) == value


class ModuleInit:
    """The initialisation of one node's module, applied right after the module is made (see :func:`module_init`).

    The ``torch.nn.init`` calls are worked out from the first module's tensor shapes and reused for every
    later build of the same graph (the shapes do not change), so re-initialising costs what the calls cost.
    """

    __slots__ = ("_calls", "items", "name")

    def __init__(self, name: str, items: tuple[tuple[str, TensorInit], ...]) -> None:
        self.name = name
        self.items = items
        self._calls: list[tuple[tuple[str, ...], Any, tuple[Any, ...], dict[str, Any], TensorInit]] | None = None

    def apply(self, module: torch.nn.Module) -> None:
        """Initialise ``module``'s tensors in place (a tensor it does not have, e.g. with ``bias=False``, is skipped)."""
        calls = self._calls
        if calls is None:
            calls = self._calls = self._plan(module)
        for path, fn, args, kwargs, ti in calls:
            tensor = _fast_tensor(module, path)
            if tensor is None or tensor.is_meta:
                continue
            try:
                fn(tensor, *args, **kwargs)
            except (ValueError, RuntimeError) as exc:
                raise ArchspecError.single("E-INIT", f"{self.name}: cannot initialise {'.'.join(path)} with "
                                           f"{ti.describe()}: {exc}", ti.span) from None

    def _plan(self, module: torch.nn.Module) -> list[tuple[tuple[str, ...], Any, tuple[Any, ...], dict[str, Any], TensorInit]]:
        from torch.nn import init as nn_init

        calls = []
        for attr, ti in self.items:
            tensor = _tensor_at(module, attr)
            call = torch_call(ti, tuple(tensor.shape)) if tensor is not None else None
            if call is not None:
                fn, args, kwargs = call
                calls.append((tuple(attr.split(".")), getattr(nn_init, fn), args, kwargs, ti))
        return calls


def _fast_tensor(module: Any, path: tuple[str, ...]) -> Any:
    """``_tensor_at`` through the modules' own dicts (no ``nn.Module.__getattr__``): the build's hot path."""
    for part in path[:-1]:
        module = module._modules.get(part)
        if module is None:
            return None
    leaf = path[-1]
    tensor = module._parameters.get(leaf)
    return tensor if tensor is not None or leaf in module._parameters else getattr(module, leaf, None)


def module_init(graph: Graph, node: Node) -> ModuleInit | None:
    """What building ``node``'s module must do after constructing it, or None (PyTorch's default throughout)."""
    chosen = graph.init.get(node.name)
    if not chosen:
        return None
    items = tuple((attr, ti) for t, ti in chosen.items() if not _redundant(node.op, t, ti)
                  for attr in tensor_attrs(node.op, t))
    return ModuleInit(node.name, items) if items else None


def apply_inits(module: torch.nn.Module, inits: tuple[tuple[str, TensorInit], ...], name: str) -> None:
    """Initialise ``module``'s tensors in place as ``inits`` (from :func:`module_inits`) say."""
    ModuleInit(name, inits).apply(module)


def source_lines(graph: Graph, node: Node, target: str, module: Any, literal: Callable[[Any], str],
                 comment: Callable[[str], str]) -> list[str]:
    """``--emit-python``'s statements initialising ``node``'s module (the expression ``target``), as :func:`apply_inits` does.

    ``module`` is the lowered module (on any device: only shapes are read); ``literal`` writes a value as a
    Python literal, ``comment`` makes text safe for a ``#`` comment.
    """
    out = []
    for attr, ti in module_inits(graph, node):
        tensor = _tensor_at(module, attr)
        call = torch_call(ti, tuple(tensor.shape)) if tensor is not None else None
        if call is None:
            continue
        fn, args, kwargs = call
        parts = [f"{target}.{attr}", *(literal(a) for a in args), *(f"{k}={literal(v)}" for k, v in kwargs.items())]
        out.append(f"nn.init.{fn}({', '.join(parts)})  # {comment(ti.origin)}")
    return out


def state_digest(model: torch.nn.Module) -> str:
    """A SHA-256 of the model's ``state_dict`` (names, dtypes, shapes and bytes): equal for equal weights."""
    import ctypes
    import hashlib

    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        if t.numel():
            digest.update(ctypes.string_at(t.data_ptr(), t.numel() * t.element_size()))
    return digest.hexdigest()


@contextlib.contextmanager
def seeded(seed: int | None, device: Any = None) -> Iterator[None]:
    """Draw from a generator seeded with ``seed`` inside, leaving the global random state as it was.

    ``None`` does nothing (the global generator is used, as by any PyTorch constructor).
    """
    if seed is None:
        yield
        return
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**64:
        raise ValueError(f"seed must be a whole number from 0 to 2**64 - 1, got {seed!r}")
    import torch

    dev = torch.device(device) if device is not None else torch.empty(0).device
    devices = [dev.index if dev.index is not None else torch.cuda.current_device()] if dev.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield
