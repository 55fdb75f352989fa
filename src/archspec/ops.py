"""The primitive operations and their registry.

One class per op holds its shape rule, counts, diagram label and PyTorch lowering, and names its
parameter model (a Pydantic class from :mod:`archspec.models`).  Adding a built-in op means adding
one class here and its parameter model in :mod:`archspec.models`; no other file has a list of ops.
Code outside archspec adds ops with :func:`register_op` (see :mod:`archspec.plugins` for loading
them from installed packages).

Following one op from YAML to PyTorch: ``- conv: {out: 64, k: 3}`` is parsed into an item by
:mod:`archspec.spec`; :mod:`archspec.expand` looks the name up with :func:`get_op`, validates the
arguments with ``Conv.params_model`` (:class:`~archspec.models.ConvParams`) and calls
:meth:`Conv.infer` and :meth:`Conv.count`; :mod:`archspec.lower_torch` calls :meth:`Conv.lower`,
which returns the ``nn.Conv2d``.

Shapes exclude the batch dimension and are plain tuples whose length says their *kind*
(:func:`shape_kind`): ``(C, H, W)`` an image, ``(L, D)`` a token sequence (L tokens of D features),
``(F,)`` flat features.  Every op declares the kinds it accepts (:attr:`Op.accepts`); an input of
another kind is a :class:`ShapeError` naming the kind it got (:func:`check_kinds`).
Nothing in this module imports torch at import time; :meth:`Op.lower` imports it when called.
Dependencies point down only: this module imports :mod:`archspec.models`, never the reverse.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel

from .models import (
    MAX_WIDTH,
    MAX_WINDOW,
    AdaptivePoolParams,
    AttentionParams,
    AvgPoolParams,
    BatchNormParams,
    ChannelShuffleParams,
    ConvParams,
    ConvTransposeParams,
    DropoutParams,
    GeluParams,
    GroupNormParams,
    HardtanhParams,
    LayerNormParams,
    LayerScaleParams,
    LeakyReluParams,
    LinearParams,
    MaxPoolParams,
    MergePatchesParams,
    NoParams,
    OpParams,
    PosEmbeddingParams,
    PReluParams,
    SelectTokenParams,
    SliceParams,
    SoftmaxParams,
    StochasticDepthParams,
    ToImageParams,
    UpsampleParams,
    WindowAttentionParams,
)

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = [
    "ALL_KINDS",
    "BUILTIN_OPS",
    "FLAT",
    "IMAGE",
    "MAX_WIDTH",
    "MAX_WINDOW",
    "OPS",
    "TOKENS",
    "Counts",
    "Emit",
    "Op",
    "OpParams",
    "Shape",
    "ShapeError",
    "canonical_op_name",
    "check_kinds",
    "describe_shape",
    "fmt_shape",
    "get_op",
    "is_builtin",
    "register_op",
    "shape_kind",
]

Shape = tuple[int, ...]


class ShapeError(Exception):
    """A shape rule failed; ``message`` names the shapes, ``hint`` says what to change."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


@dataclass(frozen=True, slots=True)
class Counts:
    """Static cost of one node: trainable parameters, buffer elements, multiply-accumulates.

    ``int_buffers`` is the part of ``buffers`` stored as int64 whatever the model's dtype
    (BatchNorm's ``num_batches_tracked``); the rest are floating point like the parameters.
    """

    params: int = 0
    buffers: int = 0
    macs: int = 0
    int_buffers: int = 0


def fmt_shape(shape: Shape | None) -> str:
    """``(64, 24, 24)`` → ``64×24×24``; ``(197, 768)`` (tokens) → ``197×768``; ``(10,)`` → ``10``."""
    if shape is None:
        return "?"
    return "×".join(str(d) for d in shape)


# --------------------------------------------------------------------------------------------------
# Shape kinds.  A shape's length says what it is; the three kinds have three different lengths, so a
# shape stays a plain tuple (hashable, a JSON list, the same for plugins) and its kind is never stored.

#: ``(C, H, W)``: channels of an H×W grid.
IMAGE = "image"
#: ``(L, D)``: a sequence of L tokens with D features each (a transformer's activations).
TOKENS = "tokens"
#: ``(F,)``: one vector of F features.
FLAT = "flat"
#: Every kind: what element-wise ops accept.
ALL_KINDS: frozenset[str] = frozenset({IMAGE, TOKENS, FLAT})
_KIND_OF_RANK = {3: IMAGE, 2: TOKENS, 1: FLAT}
_IMAGE_ONLY: frozenset[str] = frozenset({IMAGE})
_TOKENS_ONLY: frozenset[str] = frozenset({TOKENS})
_PER_FEATURE: frozenset[str] = frozenset({TOKENS, FLAT})


def shape_kind(shape: Shape) -> str:
    """:data:`IMAGE` for ``(C, H, W)``, :data:`TOKENS` for ``(L, D)``, :data:`FLAT` for ``(F,)``."""
    kind = _KIND_OF_RANK.get(len(shape))
    if kind is None:
        raise ShapeError(f"a shape has 1 (F), 2 (L×D tokens) or 3 (C×H×W) dimensions, got {fmt_shape(shape)}")
    return kind


def describe_shape(shape: Shape) -> str:
    """A shape with its kind, for messages: ``64×5×5``, ``flat (400 features)``, ``197×768 tokens``."""
    kind = _KIND_OF_RANK.get(len(shape))
    if kind == FLAT:
        return f"flat ({shape[0]} features)"
    if kind == TOKENS:
        return f"{fmt_shape(shape)} tokens"
    return fmt_shape(shape)


def _features(shape: Shape) -> int:
    """The width every position carries: channels of C×H×W, features of F, features D of L×D tokens."""
    return shape[1] if len(shape) == 2 else shape[0]


_KIND_NEEDS = {IMAGE: "C×H×W", FLAT: "flat", TOKENS: "token-sequence (L×D)"}
_KIND_HINTS = {
    IMAGE: "turn tokens back into an image with 'to-image' (e.g. to-image: {h: 14, w: 14})",
    FLAT: "reduce the tokens to one vector first: 'select-token' (e.g. the class token) or 'mean-tokens'",
    TOKENS: "make tokens first: 'to-tokens' turns a C×H×W image into H·W tokens of C features "
            "(after a strided conv: the patch embedding)",
}


def check_kinds(op: Op, inputs: list[Shape]) -> None:
    """Raise :class:`ShapeError` if an input's kind is not one ``op`` accepts (:attr:`Op.accepts`).

    The message names the op, the kinds it accepts and the kind it got (``conv needs a C×H×W input,
    but the input is 197×768 tokens``); the hint says how to get an accepted kind.
    """
    accepts = getattr(op, "accepts", Op.accepts)
    for shape in inputs:
        kind = shape_kind(shape)
        if kind in accepts:
            continue
        if kind == FLAT and IMAGE in accepts:  # (the messages archspec always gave for these two cases)
            raise ShapeError(f"{op.name} needs a C×H×W input, but the input is {describe_shape(shape)}",
                             hint="image ops cannot follow 'flatten' or 'linear'")
        if kind == IMAGE and FLAT in accepts:
            raise ShapeError(f"{op.name} needs a flat input, but the input is {fmt_shape(shape)}",
                             hint=f"add 'flatten' (or 'gap' then 'flatten') before '{op.name}'")
        needs = " or ".join(_KIND_NEEDS[k] for k in (IMAGE, TOKENS, FLAT) if k in accepts)
        hint = _KIND_HINTS[next(k for k in (TOKENS, IMAGE, FLAT) if k in accepts)]
        raise ShapeError(f"{op.name} needs a {needs} input, but the input is {describe_shape(shape)}", hint=hint)


def pair(v: int | tuple[int, int]) -> tuple[int, int]:
    """Normalise an int-or-pair parameter to a pair."""
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _fmt_pair(v: tuple[int, int]) -> str:
    return str(v[0]) if v[0] == v[1] else f"{v[0]}×{v[1]}"


def _need_image(op: str, shape: Shape) -> tuple[int, int, int]:
    if len(shape) != 3:
        raise ShapeError(
            f"{op} needs a C×H×W input, but the input is {describe_shape(shape)}",
            hint="image ops cannot follow 'flatten' or 'linear'" if len(shape) == 1 else _KIND_HINTS[IMAGE],
        )
    return shape[0], shape[1], shape[2]


def _window_out(size: int, k: int, s: int, p: int, d: int, ceil_mode: bool) -> int:
    """PyTorch's output-size formula for convolution and pooling (incl. ceil_mode's last-window rule)."""
    span = size + 2 * p - d * (k - 1) - 1
    if ceil_mode:  # rounding up lets the window overhang the padded input by up to stride − 1, as in PyTorch
        out = (span + s - 1) // s + 1
        if out > 0 and (out - 1) * s >= size + p:
            out -= 1
        return max(out, 0)
    if span < 0:
        return 0
    return span // s + 1


@dataclass(frozen=True)
class Emit:
    """How ``archspec build --emit-python`` writes one node of an op: what :meth:`Op.emit` returns.

    The ejected ``__init__`` gets ``self.<node> = <call>(<args>, <kwargs>)``:

    * ``call`` — the class (or factory function) to call: ``"nn.PixelShuffle"`` for a ``torch.nn``
      class, or the name of a class copied into the file through ``definitions`` (``"GatedSum"``).
      A dotted name of identifiers whose first part is ``nn``, ``torch``, ``F`` or a definition.
    * ``args``, ``kwargs`` — its arguments, plain data only (None, bool, int, float, str, and
      tuples/lists of them); archspec writes them as Python literals (``repr``), so a spec value
      never becomes code.  Anything else is an ``E-EMIT`` error.
    * ``definitions`` — the module-level classes and functions the call needs, helpers before the
      classes using them.  archspec copies each one's source (``inspect.getsource``) into the ejected
      file once.  Their code may use ``torch``, ``nn``, ``F`` (``torch.nn.functional``), ``Tensor``
      and each other, nothing else of their own module: the ejected file imports only torch.
    """

    call: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    definitions: tuple[Any, ...] = ()


class Op:
    """Base class of an operation: one primitive of the spec language (built in, or from a plugin).

    A subclass sets the class attributes below and overrides the hooks it needs; register it with
    :func:`register_op`.  The full guide, with a worked two-input example, is ``docs/plugins.md``.

    Class attributes: :attr:`name` (the spec name), :attr:`params_model` (a Pydantic
    :class:`~archspec.models.OpParams` subclass validating the node's parameters), :attr:`arity`
    (how many inputs), :attr:`accepts` (the shape kinds it takes), :attr:`summary`, :attr:`category`
    (diagram colour and fusion).

    Hooks, all called with ``p``, the validated parameters (an instance of :attr:`params_model`),
    and shapes without the batch dimension (``(C, H, W)``, ``(L, D)`` tokens or ``(F,)``), each of a
    kind in :attr:`accepts` (checked before :meth:`infer` is called):

    * :meth:`infer` ``(p, inputs) -> Shape`` — the static shape rule (never imports torch);
    * :meth:`count` ``(p, inputs, out) -> Counts`` — parameters, buffer elements, MACs;
    * :meth:`label` ``(p) -> str`` — the text in diagrams and tables;
    * :meth:`lower` ``(p, inputs, out) -> torch.nn.Module`` — the module; its ``forward`` receives
      the node's inputs as positional arguments, in the order the spec lists them;
    * :meth:`emit` ``(p, inputs, out) -> Emit | None`` — how ``--emit-python`` writes the module.

    For ops that do not come from archspec itself, any exception other than :class:`ShapeError`
    raised by a hook (or by the parameter model) is reported as an ``E-PLUGIN`` diagnostic naming
    the op and the plugin, and a built module whose parameter or buffer elements differ from
    :meth:`count` is refused (``E-PLUGIN``) rather than mis-reported.
    """

    #: The name used in specs (hyphenated; ``_`` is accepted in its place).
    name: ClassVar[str] = ""
    #: The Pydantic model (an :class:`~archspec.models.OpParams` subclass) of the op's parameters.
    params_model: ClassVar[type[BaseModel]] = NoParams
    #: How many inputs: ``1`` (the default) for ops on one tensor; a fixed ``N`` ≥ 2 for ops taking
    #: exactly N (``from: [a, b]``, or ``op: [a, b]`` when no parameter is needed); ``None`` for
    #: merges taking two or more.  ``lower``'s module gets them as ``forward(a, b, ...)``.
    arity: ClassVar[int | None] = 1
    #: One sentence for the docs and the JSON Schema.
    summary: ClassVar[str] = ""
    #: Diagram/summary category: "conv", "pool", "linear", "act", "norm", "reg", "shape", "merge" or
    #: "other" (the default).  It picks the box colour in diagrams; "act" and "norm" ops with one
    #: input are drawn inside their producer's box (``conv 3×3, 64 + bn + relu``).
    category: ClassVar[str] = "other"
    #: The shape kinds the op takes (:data:`IMAGE`, :data:`TOKENS`, :data:`FLAT`); an input of another
    #: kind is an ``E-SHAPE`` error naming it, raised before :meth:`infer` runs.  The default, C×H×W and
    #: flat, is what every op took before token sequences existed; an op that also works per token
    #: (element-wise, or on the last dimension) lists :data:`TOKENS` too.
    accepts: ClassVar[frozenset[str]] = frozenset({IMAGE, FLAT})

    @classmethod
    def validate_params(cls, args: Any) -> Any:
        """The validated parameters (an instance of :attr:`params_model`); raises ``pydantic.ValidationError``."""
        return cls.params_model.model_validate(args)

    @classmethod
    def param_names(cls) -> list[str]:
        """The op's parameter names, in declaration order."""
        return list(cls.params_model.model_fields)

    @classmethod
    def required_params(cls) -> list[str]:
        """The parameters that have no default."""
        return [k for k, f in cls.params_model.model_fields.items() if f.is_required()]

    def infer(self, p: Any, inputs: list[Shape]) -> Shape:
        """Output shape for these parameters and input shapes; raise :class:`ShapeError` if invalid.

        The default keeps the first input's shape.  Must not import torch.
        """
        return inputs[0]

    def count(self, p: Any, inputs: list[Shape], out: Shape) -> Counts:
        """Parameters, buffer elements and MACs (multiply-accumulates of conv/linear weights).

        The default is all zero: an op whose module has parameters or buffers must override it.
        ``params`` and ``buffers`` count elements (``numel``) of the module's parameters and
        buffers; ``macs`` counts, per sample, the multiply-accumulates of conv, transposed-conv and
        linear weights only (torchvision's convention: no bias, norm or element-wise work).
        """
        return Counts()

    def label(self, p: Any) -> str:
        """Short text for diagrams and summaries, e.g. ``conv 3×3/2, 64``; the default is the name."""
        return self.name

    def lower(self, p: Any, inputs: list[Shape], out: Shape) -> torch.nn.Module:
        """The ``torch.nn.Module`` computing this op (imports torch).

        Its ``forward`` takes one positional argument per input (batched tensors) and returns one
        tensor of shape ``(batch, *out)``.
        """
        raise NotImplementedError(f"op '{self.name}' has no PyTorch lowering")

    def emit(self, p: Any, inputs: list[Shape], out: Shape) -> Emit | None:
        """How ``--emit-python`` writes this op's module (an :class:`Emit`), or None.

        None (the default) lets archspec read the constructor call back from the module
        :meth:`lower` returns, which works for ``torch.nn`` modules (and archspec's own layers);
        any other module needs this hook, or ejecting a spec that uses the op is an ``E-EMIT`` error.
        """
        return None


def is_builtin(op: Op) -> bool:
    """Whether ``op`` is one of archspec's own ops (not a plugin's or a subclass defined elsewhere)."""
    return type(op).__module__ == __name__


#: Registry of ops by canonical name.
OPS: dict[str, Op] = {}


def canonical_op_name(name: str) -> str:
    """Spec op names accept ``_`` for ``-``: ``leaky_relu`` → ``leaky-relu``."""
    return name.replace("_", "-")


def register_op(cls: type[Op]) -> type[Op]:
    """Class decorator adding an op to :data:`OPS` (also how plugins add their ops).

    Raises TypeError/ValueError for a class that is not a well-formed :class:`Op` subclass (no
    ``name``, a ``params_model`` that is not a Pydantic model, an ``arity`` that is not None or ≥ 1).
    """
    if not (isinstance(cls, type) and issubclass(cls, Op)):
        raise TypeError(f"register_op takes an Op subclass, got {cls!r}")
    if not cls.name or not isinstance(cls.name, str):
        raise ValueError(f"{cls.__qualname__}: an Op subclass must set 'name' (the op's name in specs)")
    if not (isinstance(cls.params_model, type) and issubclass(cls.params_model, BaseModel)):
        raise TypeError(f"{cls.__qualname__}: 'params_model' must be a pydantic model class (an OpParams subclass), "
                        f"got {cls.params_model!r}")
    if cls.arity is not None and (not isinstance(cls.arity, int) or isinstance(cls.arity, bool) or cls.arity < 1):
        raise ValueError(f"{cls.__qualname__}: 'arity' must be None (two or more inputs) or a whole number ≥ 1, "
                         f"got {cls.arity!r}")
    OPS[canonical_op_name(cls.name)] = cls()
    clear = getattr(sys.modules.get("archspec.api"), "clear_cache", None)
    if clear is not None:  # graphs analysed (and lowerings prepared) with a replaced op are stale
        clear()
    return cls


def get_op(name: str) -> Op | None:
    """The op registered under ``name`` (``-``/``_`` insensitive), or None.

    This looks in the registry only; :func:`archspec.plugins.find_op` also loads the installed
    plugins for a name that is not registered.
    """
    return OPS.get(canonical_op_name(name))


# --------------------------------------------------------------------------------------------------
# Convolution, linear


def _conv_padding(p: ConvParams) -> tuple[tuple[int, int], tuple[int, int]]:
    """Total padding per side as ((top, bottom), (left, right))."""
    k, d = pair(p.k), pair(p.dilation)
    if p.pad == "valid":
        return (0, 0), (0, 0)
    if p.pad == "same":
        tot = [d[i] * (k[i] - 1) for i in range(2)]
        return (tot[0] // 2, tot[0] - tot[0] // 2), (tot[1] // 2, tot[1] - tot[1] // 2)
    pp = pair(p.pad)
    return (pp[0], pp[0]), (pp[1], pp[1])


@register_op
class Conv(Op):
    name = "conv"
    params_model = ConvParams
    summary = "2-D convolution (torch.nn.Conv2d)."
    category = "conv"
    accepts = _IMAGE_ONLY

    def infer(self, p: ConvParams, inputs: list[Shape]) -> Shape:
        c, h, w = _need_image("conv", inputs[0])
        if c % p.groups:
            raise ShapeError(f"conv with groups={p.groups} needs input channels divisible by it, got {c}")
        if p.out % p.groups:
            raise ShapeError(f"conv with groups={p.groups} needs 'out' divisible by it, got {p.out}")
        k, s, d = pair(p.k), pair(p.stride), pair(p.dilation)
        if p.pad == "same" and s != (1, 1):
            raise ShapeError("pad: same needs stride 1 (as in PyTorch)", hint="give the padding as a number")
        (pt, pb), (pl, pr) = _conv_padding(p)
        sizes = []
        for dim, size, lo, hi in (("height", h, pt, pb), ("width", w, pl, pr)):
            i = 0 if dim == "height" else 1
            eff = d[i] * (k[i] - 1) + 1
            if size + lo + hi < eff:
                raise ShapeError(
                    f"conv kernel {eff} is larger than the padded input {dim} {size + lo + hi} "
                    f"(input {fmt_shape(inputs[0])})",
                    hint="the feature map has shrunk too far: reduce strides/pooling earlier or use a larger input",
                )
            sizes.append((size + lo + hi - eff) // s[i] + 1)
        return (p.out, sizes[0], sizes[1])

    def count(self, p: ConvParams, inputs: list[Shape], out: Shape) -> Counts:
        k = pair(p.k)
        per_out = inputs[0][0] // p.groups * k[0] * k[1]
        weights = p.out * per_out
        return Counts(params=weights + (p.out if p.bias else 0), macs=weights // p.out * out[0] * out[1] * out[2])

    def label(self, p: ConvParams) -> str:
        text = f"conv {_fmt_pair(pair(p.k))}"
        s = pair(p.stride)
        if s != (1, 1):
            text += f"/{_fmt_pair(s)}"
        text += f", {p.out}"
        if p.groups > 1:
            text += f", g{p.groups}"
        d = pair(p.dilation)
        if d != (1, 1):
            text += f", d{_fmt_pair(d)}"
        return text

    def lower(self, p: ConvParams, inputs: list[Shape], out: Shape) -> torch.nn.Module:
        from torch import nn

        (pt, pb), (pl, pr) = _conv_padding(p)
        padding: Any = (pt, pl) if (pt, pl) == (pb, pr) else p.pad
        return nn.Conv2d(
            inputs[0][0], p.out, pair(p.k), stride=pair(p.stride), padding=padding,
            dilation=pair(p.dilation), groups=p.groups, bias=p.bias,
        )


@register_op
class Linear(Op):
    name = "linear"
    params_model = LinearParams
    summary = "Fully connected layer (torch.nn.Linear) on a flat input, or on every token of a token sequence."
    category = "linear"
    accepts = _PER_FEATURE

    def infer(self, p: LinearParams, inputs: list[Shape]) -> Shape:
        if len(inputs[0]) == 3:
            raise ShapeError(
                f"linear needs a flat input, but the input is {fmt_shape(inputs[0])}",
                hint="add 'flatten' (or 'gap' then 'flatten') before 'linear'",
            )
        return (*inputs[0][:-1], p.out)  # L×D tokens → L×out: the same layer on every token

    def count(self, p: LinearParams, inputs: list[Shape], out: Shape) -> Counts:
        weights = inputs[0][-1] * p.out
        return Counts(params=weights + (p.out if p.bias else 0), macs=weights * math.prod(inputs[0][:-1]))

    def label(self, p: LinearParams) -> str:
        return f"linear {p.out}"

    def lower(self, p: LinearParams, inputs: list[Shape], out: Shape) -> torch.nn.Module:
        from torch import nn

        return nn.Linear(inputs[0][-1], p.out, bias=p.bias)


# --------------------------------------------------------------------------------------------------
# Pooling


class _Pool(Op):
    category = "pool"
    accepts = _IMAGE_ONLY

    def infer(self, p: Any, inputs: list[Shape]) -> Shape:
        c, h, w = _need_image(self.name, inputs[0])
        k, pp = pair(p.k), pair(p.pad)
        s = pair(p.stride) if p.stride is not None else k
        d = pair(getattr(p, "dilation", 1))
        for i in range(2):
            if pp[i] * 2 > k[i]:
                raise ShapeError(f"{self.name} padding {pp[i]} is more than half the window {k[i]}")
        sizes = []
        for i, (dim, size) in enumerate((("height", h), ("width", w))):
            eff = d[i] * (k[i] - 1) + 1
            if _window_out(size, k[i], s[i], pp[i], d[i], p.ceil_mode) < 1:
                raise ShapeError(
                    f"{self.name} window {eff} is larger than the padded input {dim} {size + 2 * pp[i]} "
                    f"(input {fmt_shape(inputs[0])})",
                    hint="the feature map has shrunk too far: reduce strides/pooling earlier or use a larger input",
                )
            sizes.append(_window_out(size, k[i], s[i], pp[i], d[i], p.ceil_mode))
        return (c, sizes[0], sizes[1])

    def label(self, p: Any) -> str:
        k = pair(p.k)
        s = pair(p.stride) if p.stride is not None else k
        text = f"{self.name} {_fmt_pair(k)}"
        if s != (1, 1):
            text += f"/{_fmt_pair(s)}"
        if p.ceil_mode:
            text += " ceil"
        return text


@register_op
class MaxPool(_Pool):
    name = "maxpool"
    params_model = MaxPoolParams
    summary = "2-D max pooling (torch.nn.MaxPool2d)."

    def lower(self, p: MaxPoolParams, inputs: list[Shape], out: Shape) -> torch.nn.Module:
        from torch import nn

        return nn.MaxPool2d(
            pair(p.k), stride=pair(p.stride) if p.stride is not None else None, padding=pair(p.pad),
            dilation=pair(p.dilation), ceil_mode=p.ceil_mode,
        )


@register_op
class AvgPool(_Pool):
    name = "avgpool"
    params_model = AvgPoolParams
    summary = "2-D average pooling (torch.nn.AvgPool2d)."

    def lower(self, p: AvgPoolParams, inputs: list[Shape], out: Shape) -> torch.nn.Module:
        from torch import nn

        return nn.AvgPool2d(
            pair(p.k), stride=pair(p.stride) if p.stride is not None else None, padding=pair(p.pad),
            ceil_mode=p.ceil_mode, count_include_pad=p.count_include_pad,
        )


class _AdaptivePool(Op):
    params_model = AdaptivePoolParams
    category = "pool"
    accepts = _IMAGE_ONLY

    def infer(self, p: Any, inputs: list[Shape]) -> Shape:
        c, _, _ = _need_image(self.name, inputs[0])
        size = pair(getattr(p, "size", 1))
        return (c, size[0], size[1])

    def label(self, p: Any) -> str:
        return f"{self.name} {_fmt_pair(pair(getattr(p, 'size', 1)))}"


@register_op
class AdaptiveAvgPool(_AdaptivePool):
    name = "adaptive-avgpool"
    summary = "Adaptive average pooling to a fixed output size (torch.nn.AdaptiveAvgPool2d)."

    def lower(self, p: AdaptivePoolParams, inputs: list[Shape], out: Shape) -> torch.nn.Module:
        from torch import nn

        return nn.AdaptiveAvgPool2d(pair(p.size))


@register_op
class AdaptiveMaxPool(_AdaptivePool):
    name = "adaptive-maxpool"
    summary = "Adaptive max pooling to a fixed output size (torch.nn.AdaptiveMaxPool2d)."

    def lower(self, p: AdaptivePoolParams, inputs: list[Shape], out: Shape) -> torch.nn.Module:
        from torch import nn

        return nn.AdaptiveMaxPool2d(pair(p.size))


@register_op
class GlobalAvgPool(_AdaptivePool):
    name = "gap"
    params_model = NoParams
    summary = "Global average pooling: C×H×W → C×1×1 (torch.nn.AdaptiveAvgPool2d(1))."

    def label(self, p: Any) -> str:
        return "global avgpool"

    def lower(self, p: Any, inputs: list[Shape], out: Shape) -> torch.nn.Module:
        from torch import nn

        return nn.AdaptiveAvgPool2d(1)


# --------------------------------------------------------------------------------------------------
# Activations


def _activation(name: str, summary: str, factory: Callable[[Any], Any], model: Any = None,
                infer: Callable[[Any, Any, list[Shape]], Shape] | None = None) -> None:
    attrs: dict[str, Any] = {
        "name": name,
        "params_model": model or NoParams,
        "summary": summary,
        "category": "act",
        "accepts": ALL_KINDS,
        "lower": lambda self, p, inputs, out: factory(p),
        "__doc__": summary,
    }
    if infer is not None:
        attrs["infer"] = infer
    cls = type(name.replace("-", "_").title().replace("_", ""), (Op,), attrs)
    register_op(cls)


def _softmax_infer(self: Op, p: Any, inputs: list[Shape]) -> Shape:
    """Softmax keeps the shape; its ``dim`` must name a dimension of the batched tensor."""
    rank = len(inputs[0]) + 1
    if not -rank <= p.dim < rank:
        raise ShapeError(
            f"softmax dim {p.dim} is out of range for a {rank}-D tensor (batch included; valid: {-rank}..{rank - 1})",
            hint="dim 1 is the tokens and dim 2 (or -1) their features" if len(inputs[0]) == 2
            else "dim 1 is the channels (or features)",
        )
    return inputs[0]


def _nn(name: str, *args: Any, **kwargs: Any) -> Any:
    from torch import nn

    return getattr(nn, name)(*args, **kwargs)


_activation("relu", "Rectified linear unit (torch.nn.ReLU).", lambda p: _nn("ReLU"))
_activation("relu6", "ReLU clipped at 6 (torch.nn.ReLU6).", lambda p: _nn("ReLU6"))
_activation("sigmoid", "Logistic sigmoid (torch.nn.Sigmoid).", lambda p: _nn("Sigmoid"))
_activation("tanh", "Hyperbolic tangent (torch.nn.Tanh).", lambda p: _nn("Tanh"))
_activation("silu", "SiLU / swish (torch.nn.SiLU).", lambda p: _nn("SiLU"))
_activation("hardswish", "Hard swish (torch.nn.Hardswish).", lambda p: _nn("Hardswish"))
_activation("gelu", "Gaussian error linear unit (torch.nn.GELU).", lambda p: _nn("GELU", approximate=p.approximate),
            GeluParams)
_activation("leaky-relu", "Leaky ReLU (torch.nn.LeakyReLU).", lambda p: _nn("LeakyReLU", p.slope),
            LeakyReluParams)
_activation("softmax", "Softmax over a dimension (torch.nn.Softmax).", lambda p: _nn("Softmax", dim=p.dim),
            SoftmaxParams, _softmax_infer)
_activation("hardsigmoid", "Hard sigmoid (torch.nn.Hardsigmoid), the gate of MobileNetV3's squeeze-excitation.",
            lambda p: _nn("Hardsigmoid"))
_activation("mish", "Mish (torch.nn.Mish).", lambda p: _nn("Mish"))
_activation("hardtanh", "Clamp to [min, max] (torch.nn.Hardtanh).", lambda p: _nn("Hardtanh", p.min, p.max),
            HardtanhParams)


# --------------------------------------------------------------------------------------------------
# Normalisation, regularisation, reshaping


@register_op
class BatchNorm(Op):
    name = "bn"
    params_model = BatchNormParams
    summary = "Batch normalisation: BatchNorm2d on C×H×W, BatchNorm1d on flat features."
    category = "norm"

    def count(self, p: BatchNormParams, inputs: list[Shape], out: Shape) -> Counts:
        c = inputs[0][0]
        return Counts(params=2 * c if p.affine else 0, buffers=2 * c + 1, int_buffers=1)  # + num_batches_tracked

    def label(self, p: BatchNormParams) -> str:
        return "batchnorm"

    def lower(self, p: BatchNormParams, inputs: list[Shape], out: Shape) -> torch.nn.Module:
        from torch import nn

        cls = nn.BatchNorm2d if len(inputs[0]) == 3 else nn.BatchNorm1d
        return cls(inputs[0][0], eps=p.eps, momentum=p.momentum, affine=p.affine)


@register_op
class Dropout(Op):
    name = "dropout"
    params_model = DropoutParams
    summary = "Dropout (torch.nn.Dropout); the identity in eval mode."
    category = "reg"
    accepts = ALL_KINDS

    def label(self, p: DropoutParams) -> str:
        return f"dropout {p.p:g}"

    def lower(self, p: DropoutParams, inputs: list[Shape], out: Shape) -> torch.nn.Module:
        from torch import nn

        return nn.Dropout(p.p)


@register_op
class Flatten(Op):
    name = "flatten"
    summary = "Flatten C×H×W to C·H·W features, or L×D tokens to L·D features (torch.nn.Flatten)."
    category = "shape"
    accepts = ALL_KINDS

    def infer(self, p: Any, inputs: list[Shape]) -> Shape:
        return (math.prod(inputs[0]),)

    def lower(self, p: Any, inputs: list[Shape], out: Shape) -> torch.nn.Module:
        from torch import nn

        return nn.Flatten()


@register_op
class Identity(Op):
    name = "identity"
    summary = "Passes its input through unchanged (torch.nn.Identity)."
    category = "shape"
    accepts = ALL_KINDS

    def lower(self, p: Any, inputs: list[Shape], out: Shape) -> torch.nn.Module:
        from torch import nn

        return nn.Identity()


# --------------------------------------------------------------------------------------------------
# Merges: these lower to plain function calls in the generated forward, not to modules.


@register_op
class Add(Op):
    name = "add"
    arity = None
    summary = "Element-wise sum of two or more tensors of the same shape."
    category = "merge"
    accepts = ALL_KINDS

    def infer(self, p: Any, inputs: list[Shape]) -> Shape:
        first = inputs[0]
        for other in inputs[1:]:
            if other != first:
                raise ShapeError(
                    "cannot add tensors of different shapes: " + " + ".join(fmt_shape(s) for s in inputs),
                    hint="give the shortcut a projection ('shortcut: auto' or a 1×1 conv) so the shapes agree",
                )
        return first

    def label(self, p: Any) -> str:
        return "add"


@register_op
class Concat(Op):
    name = "concat"
    arity = None
    summary = ("Concatenation on channels (or features) of tensors with the same spatial size; "
               "on token sequences, of the tokens (sequences with the same features).")
    category = "merge"
    accepts = ALL_KINDS

    def infer(self, p: Any, inputs: list[Shape]) -> Shape:
        ranks = {len(s) for s in inputs}
        if len(ranks) > 1:
            if 2 in ranks:
                raise ShapeError("cannot concatenate tensors of different kinds: "
                                 + ", ".join(describe_shape(s) for s in inputs),
                                 hint="turn images into tokens with 'to-tokens' (or tokens into an image with 'to-image') "
                                 "first")
            raise ShapeError("cannot concatenate flat and C×H×W tensors: " + ", ".join(fmt_shape(s) for s in inputs))
        if ranks == {2}:
            if len({s[1] for s in inputs}) > 1:
                raise ShapeError(
                    "cannot concatenate token sequences with different features: "
                    + ", ".join(describe_shape(s) for s in inputs),
                    hint="'concat' joins the tokens of sequences with the same features (L1×D + L2×D → (L1+L2)×D); "
                    "'concat-features' joins the features of sequences of the same length",
                )
            return (sum(s[0] for s in inputs), inputs[0][1])
        spatial = {s[1:] for s in inputs}
        if len(spatial) > 1:
            raise ShapeError(
                "cannot concatenate tensors of different spatial sizes: " + ", ".join(fmt_shape(s) for s in inputs),
                hint="every branch must keep the same height and width (check strides and padding)",
            )
        return (sum(s[0] for s in inputs), *inputs[0][1:])

    def label(self, p: Any) -> str:
        return "concat"


# --------------------------------------------------------------------------------------------------
# The vocabulary of the post-2017 families (issue 14): MobileNetV3, EfficientNet, ShuffleNetV2,
# ConvNeXt, RegNet, MnasNet and U-Net.  Modules without an exact torch.nn equivalent come from
# archspec.layers (torch only).


def _dim_names(rank: int) -> tuple[str, ...]:
    return {3: ("channels", "height", "width"), 2: ("tokens", "features")}.get(rank, ("features",))


def _units(shape: Shape) -> str:
    """``channels`` for a C×H×W shape, ``tokens`` for an L×D one (what dimension 1 holds), ``features`` for a flat one."""
    return {3: "channels", 2: "tokens"}.get(len(shape), "features")


@register_op
class Mul(Op):
    name = "mul"
    arity = None
    summary = ("Element-wise product of two or more tensors, broadcasting dimensions of size 1 "
               "(a C×1×1 gate scales a C×H×W tensor: squeeze-excitation).")
    category = "merge"
    accepts = ALL_KINDS

    def infer(self, p: Any, inputs: list[Shape]) -> Shape:
        shown = " * ".join(fmt_shape(s) for s in inputs)
        if any(len(s) == 2 for s in inputs) and len({len(s) for s in inputs}) > 1:
            raise ShapeError(
                "cannot multiply tensors of different kinds: " + " * ".join(describe_shape(s) for s in inputs),
                hint="a factor for L×D tokens is L×D, 1×D (one per feature) or L×1 (one per token)",
            )
        if len({len(s) for s in inputs}) > 1:
            raise ShapeError(
                f"cannot multiply flat and C×H×W tensors: {shown}",
                hint="a gate for a C×H×W tensor must be C×1×1: use 'gap' (not 'flatten') and 1×1 convs to compute it",
            )
        out = list(inputs[0])
        for other in inputs[1:]:
            for i, (a, b) in enumerate(zip(out, other, strict=True)):
                if a == b or b == 1:
                    continue
                if a == 1:
                    out[i] = b
                    continue
                dim = _dim_names(len(out))[i]
                raise ShapeError(
                    f"cannot multiply tensors of shapes {shown}: their {dim} differ ({a} and {b}); "
                    "each dimension must agree or be 1",
                    hint="a factor for L×D tokens is L×D, 1×D (one per feature) or L×1 (one per token)" if len(out) == 2
                    else "a squeeze-excitation gate must have the channels of the tensor it scales (C×1×1)",
                )
        return tuple(out)

    def label(self, p: Any) -> str:
        return "mul"


@register_op
class PRelu(Op):
    name = "prelu"
    params_model = PReluParams
    summary = "ReLU with a learned negative slope, shared or per channel (torch.nn.PReLU)."
    category = "act"

    def count(self, p: PReluParams, inputs: list[Shape], out: Shape) -> Counts:
        return Counts(params=inputs[0][0] if p.per_channel else 1)

    def lower(self, p: PReluParams, inputs: list[Shape], out: Shape) -> torch.nn.Module:
        from torch import nn

        return nn.PReLU(inputs[0][0] if p.per_channel else 1, init=float(p.init))


@register_op
class LayerNorm(Op):
    name = "layernorm"
    params_model = LayerNormParams
    summary = ("Layer normalisation over the channels at each position of C×H×W (ConvNeXt's LayerNorm2d), "
               "or over the features of F or of every token of L×D (torch.nn.LayerNorm).")
    category = "norm"
    accepts = ALL_KINDS

    def count(self, p: LayerNormParams, inputs: list[Shape], out: Shape) -> Counts:
        return Counts(params=2 * _features(inputs[0]) if p.affine else 0)

    def label(self, p: LayerNormParams) -> str:
        return "layernorm"

    def lower(self, p: LayerNormParams, inputs: list[Shape], out: Shape) -> torch.nn.Module:
        from torch import nn

        from .layers import LayerNorm2d

        cls = LayerNorm2d if len(inputs[0]) == 3 else nn.LayerNorm
        return cls(_features(inputs[0]), eps=p.eps, elementwise_affine=p.affine)


@register_op
class GroupNorm(Op):
    name = "groupnorm"
    params_model = GroupNormParams
    summary = "Group normalisation (torch.nn.GroupNorm): channels in groups, each normalised over its channels and H×W."
    category = "norm"

    def infer(self, p: GroupNormParams, inputs: list[Shape]) -> Shape:
        c = inputs[0][0]
        if c % p.groups:
            raise ShapeError(
                f"groupnorm with groups={p.groups} needs {_units(inputs[0])} divisible by it, got {c}",
                hint=f"choose a number of groups that divides {c}",
            )
        return inputs[0]

    def count(self, p: GroupNormParams, inputs: list[Shape], out: Shape) -> Counts:
        return Counts(params=2 * inputs[0][0] if p.affine else 0)

    def label(self, p: GroupNormParams) -> str:
        return f"groupnorm g{p.groups}"

    def lower(self, p: GroupNormParams, inputs: list[Shape], out: Shape) -> torch.nn.Module:
        from torch import nn

        return nn.GroupNorm(p.groups, inputs[0][0], eps=p.eps, affine=p.affine)


@register_op
class ConvTranspose(Op):
    name = "conv-transpose"
    params_model = ConvTransposeParams
    summary = "2-D transposed convolution (torch.nn.ConvTranspose2d), e.g. a U-Net's 2×2 stride-2 up-convolution."
    category = "conv"
    accepts = _IMAGE_ONLY

    def infer(self, p: ConvTransposeParams, inputs: list[Shape]) -> Shape:
        c, h, w = _need_image("conv-transpose", inputs[0])
        if c % p.groups:
            raise ShapeError(f"conv-transpose with groups={p.groups} needs input channels divisible by it, got {c}")
        if p.out % p.groups:
            raise ShapeError(f"conv-transpose with groups={p.groups} needs 'out' divisible by it, got {p.out}")
        k, s, pp, op_, d = pair(p.k), pair(p.stride), pair(p.pad), pair(p.output_pad), pair(p.dilation)
        sizes = []
        for i, (dim, size) in enumerate((("height", h), ("width", w))):
            if op_[i] >= s[i] and op_[i] >= d[i]:
                raise ShapeError(
                    f"conv-transpose output_pad {op_[i]} must be smaller than the stride ({s[i]}) or the dilation "
                    f"({d[i]}) ({dim})",
                    hint="output_pad only picks between the output sizes a stride allows; use at most stride - 1",
                )
            full = (size - 1) * s[i] + d[i] * (k[i] - 1) + op_[i] + 1
            if full - 2 * pp[i] <= 0:
                raise ShapeError(
                    f"conv-transpose padding {pp[i]} removes the whole output {dim} {full} (input {fmt_shape(inputs[0])})",
                    hint="pad removes that many rows/columns from each side of the output: reduce it",
                )
            sizes.append(full - 2 * pp[i])
        return (p.out, sizes[0], sizes[1])

    def count(self, p: ConvTransposeParams, inputs: list[Shape], out: Shape) -> Counts:
        k = pair(p.k)
        c, h, w = inputs[0]
        weights = c * (p.out // p.groups) * k[0] * k[1]
        return Counts(params=weights + (p.out if p.bias else 0), macs=weights * h * w)

    def label(self, p: ConvTransposeParams) -> str:
        text = f"conv-transpose {_fmt_pair(pair(p.k))}"
        s = pair(p.stride)
        if s != (1, 1):
            text += f"/{_fmt_pair(s)}"
        text += f", {p.out}"
        if p.groups > 1:
            text += f", g{p.groups}"
        return text

    def lower(self, p: ConvTransposeParams, inputs: list[Shape], out: Shape) -> torch.nn.Module:
        from torch import nn

        return nn.ConvTranspose2d(
            inputs[0][0], p.out, pair(p.k), stride=pair(p.stride), padding=pair(p.pad),
            output_padding=pair(p.output_pad), groups=p.groups, bias=p.bias, dilation=pair(p.dilation),
        )


@register_op
class Upsample(Op):
    name = "upsample"
    params_model = UpsampleParams
    summary = "Upsampling by an integer scale or to a size, nearest or bilinear (torch.nn.Upsample)."
    category = "pool"
    accepts = _IMAGE_ONLY

    def infer(self, p: UpsampleParams, inputs: list[Shape]) -> Shape:
        c, h, w = _need_image("upsample", inputs[0])
        if p.size is not None:
            size = pair(p.size)
            return (c, size[0], size[1])
        if p.scale is None:
            raise ShapeError("upsample needs 'scale' or 'size'", hint="e.g. upsample: {scale: 2}")
        s = pair(p.scale)
        if h * s[0] > MAX_WIDTH or w * s[1] > MAX_WIDTH:
            raise ShapeError(f"upsample by {_fmt_pair(s)} makes the {fmt_shape(inputs[0])} input larger than "
                             f"{MAX_WIDTH:,} pixels a side")
        return (c, h * s[0], w * s[1])

    def label(self, p: UpsampleParams) -> str:
        how = f"×{_fmt_pair(pair(p.scale))}" if p.scale is not None else f"to {fmt_shape(pair(p.size or 1))}"
        return f"upsample {how} {p.mode}"

    def lower(self, p: UpsampleParams, inputs: list[Shape], out: Shape) -> torch.nn.Module:
        from torch import nn

        align = bool(p.align_corners) if p.mode == "bilinear" else None
        if p.size is not None:
            return nn.Upsample(size=pair(p.size), mode=p.mode, align_corners=align)
        s = pair(p.scale if p.scale is not None else 1)
        return nn.Upsample(scale_factor=float(s[0]) if s[0] == s[1] else (float(s[0]), float(s[1])),
                           mode=p.mode, align_corners=align)


def _slice_bounds(p: SliceParams, shape: Shape) -> tuple[int, int]:
    """``(start, end)`` of a slice as non-negative channel indices; raise :class:`ShapeError` if out of range."""
    c, units = shape[0], _units(shape)
    start = p.start + c if p.start < 0 else p.start
    if not 0 <= start < c:
        raise ShapeError(
            f"slice start {p.start} is out of range for an input of {c} {units} ({fmt_shape(shape)}; valid: {-c}..{c - 1})",
            hint=f"{units} are numbered 0..{c - 1}; negative numbers count from the end",
        )
    if p.end is None:
        end = c
    else:
        end = p.end + c if p.end < 0 else p.end
        if not 0 <= end <= c:
            raise ShapeError(
                f"slice end {p.end} is out of range for an input of {c} {units} ({fmt_shape(shape)}; valid: {-c}..{c})",
                hint=f"'end' is exclusive: {c} (or no 'end') takes through the last of the {c} {units}",
            )
    if end <= start:
        raise ShapeError(
            f"slice {p.start}:{p.end} of {c} {units} is empty ({units} {start} up to {end}, end exclusive)",
            hint="'end' must come after 'start'",
        )
    return start, end


@register_op
class Slice(Op):
    name = "slice"
    params_model = SliceParams
    summary = ("Channels start..end (end exclusive) of a C×H×W input, features of an F input, or tokens of an L×D "
               "input; two slices of one input split it (ShuffleNetV2).")
    category = "shape"
    accepts = ALL_KINDS

    def infer(self, p: SliceParams, inputs: list[Shape]) -> Shape:
        start, end = _slice_bounds(p, inputs[0])
        return (end - start, *inputs[0][1:])

    def label(self, p: SliceParams) -> str:
        return f"slice {p.start}:{'' if p.end is None else p.end}"

    def lower(self, p: SliceParams, inputs: list[Shape], out: Shape) -> torch.nn.Module:
        from .layers import ChannelSlice

        return ChannelSlice(*_slice_bounds(p, inputs[0]))


@register_op
class ChannelShuffle(Op):
    name = "channel-shuffle"
    params_model = ChannelShuffleParams
    summary = "Interleaves the channels of equal groups (ShuffleNet's channel_shuffle)."
    category = "shape"
    accepts = _IMAGE_ONLY

    def infer(self, p: ChannelShuffleParams, inputs: list[Shape]) -> Shape:
        c, _, _ = _need_image("channel-shuffle", inputs[0])
        if c % p.groups:
            raise ShapeError(
                f"channel-shuffle with groups={p.groups} needs channels divisible by it, got {c}",
                hint=f"choose a number of groups that divides {c}",
            )
        return inputs[0]

    def label(self, p: ChannelShuffleParams) -> str:
        return f"channel-shuffle g{p.groups}"

    def lower(self, p: ChannelShuffleParams, inputs: list[Shape], out: Shape) -> torch.nn.Module:
        from .layers import ChannelShuffle as Module

        return Module(p.groups)


@register_op
class LayerScale(Op):
    name = "layer-scale"
    params_model = LayerScaleParams
    summary = ("A learned factor per channel (shape C×1×1) or per feature (F; D for L×D tokens), starting at 'init' "
               "(ConvNeXt, CaiT).")
    category = "norm"
    accepts = ALL_KINDS

    def count(self, p: LayerScaleParams, inputs: list[Shape], out: Shape) -> Counts:
        return Counts(params=_features(inputs[0]))

    def label(self, p: LayerScaleParams) -> str:
        return f"layer-scale {p.init:g}"

    def lower(self, p: LayerScaleParams, inputs: list[Shape], out: Shape) -> torch.nn.Module:
        from .layers import LayerScale as Module

        c = _features(inputs[0])
        return Module((c, 1, 1) if len(inputs[0]) == 3 else (c,), float(p.init))


@register_op
class StochasticDepth(Op):
    name = "stochastic-depth"
    params_model = StochasticDepthParams
    summary = "Stochastic depth (torchvision.ops.StochasticDepth): drops the input per sample or per batch; identity in eval."
    category = "reg"
    accepts = ALL_KINDS

    def label(self, p: StochasticDepthParams) -> str:
        return f"stochastic-depth {p.p:g} {p.mode}"

    def lower(self, p: StochasticDepthParams, inputs: list[Shape], out: Shape) -> torch.nn.Module:
        from .layers import StochasticDepth as Module

        return Module(float(p.p), p.mode)


@register_op
class ChannelLinear(Op):
    name = "channel-linear"
    params_model = LinearParams
    summary = ("nn.Linear over the channels at every position of C×H×W (ConvNeXt's pointwise layers): "
               "a 1×1 conv with nn.Linear's weight layout.")
    category = "linear"
    accepts = _IMAGE_ONLY

    def infer(self, p: LinearParams, inputs: list[Shape]) -> Shape:
        _, h, w = _need_image("channel-linear", inputs[0])
        return (p.out, h, w)

    def count(self, p: LinearParams, inputs: list[Shape], out: Shape) -> Counts:
        c, h, w = inputs[0]
        weights = c * p.out
        return Counts(params=weights + (p.out if p.bias else 0), macs=weights * h * w)

    def label(self, p: LinearParams) -> str:
        return f"channel-linear {p.out}"

    def lower(self, p: LinearParams, inputs: list[Shape], out: Shape) -> torch.nn.Module:
        from .layers import ChannelLinear as Module

        return Module(inputs[0][0], p.out, bias=p.bias)


# --------------------------------------------------------------------------------------------------
# Token sequences (issue 15): L×D shapes, the ops between images and tokens, the learned tensors of a
# vision transformer and multi-head self-attention.  Modules come from archspec.layers.


@register_op
class ToTokens(Op):
    name = "to-tokens"
    summary = ("C×H×W → (H·W)×C: every position of an image becomes a token of C features, in row-major order "
               "(after a strided conv: a ViT's patch embedding).")
    category = "shape"
    accepts = _IMAGE_ONLY

    def infer(self, p: Any, inputs: list[Shape]) -> Shape:
        c, h, w = inputs[0]
        return (h * w, c)

    def lower(self, p: Any, inputs: list[Shape], out: Shape) -> torch.nn.Module:
        from .layers import ToTokens as Module

        return Module()


def _grid(op: str, h: int | None, w: int | None, shape: Shape) -> tuple[int, int]:
    """The (h, w) grid an op reads L×D tokens as (given, or h = w = √L); raise :class:`ShapeError` unless h·w = L."""
    length = shape[0]
    if h is None and w is None:
        side = math.isqrt(length)
        if side * side != length:
            raise ShapeError(
                f"{op} without 'h' and 'w' needs a square number of tokens, but the input is {describe_shape(shape)}",
                hint=f"give the grid as {op}: {{h: ..., w: ...}} with h·w equal to the number of tokens "
                "(a class token must be removed first: slice: {start: 1})",
            )
        return side, side
    if h is None or w is None:
        given, name = (h, "h") if h is not None else (w, "w")
        assert given is not None
        if length % given:
            raise ShapeError(
                f"{op} with {name}={given} needs a number of tokens divisible by it, but the input is "
                f"{describe_shape(shape)}",
                hint=f"h·w must equal the {length} tokens",
            )
        return (given, length // given) if name == "h" else (length // given, given)
    if h * w != length:
        raise ShapeError(
            f"{op} {h}×{w} needs {h * w} tokens, but the input is {describe_shape(shape)}",
            hint=f"h·w must equal the {length} tokens",
        )
    return h, w


def _image_size(p: ToImageParams, shape: Shape) -> tuple[int, int]:
    """(h, w) of to-image for an L×D input; raise :class:`ShapeError` unless h·w = L."""
    return _grid("to-image", p.h, p.w, shape)


@register_op
class ToImage(Op):
    name = "to-image"
    params_model = ToImageParams
    summary = "L×D tokens → D×h×w: the tokens, in row-major order, back onto an h×w grid (h·w = L; the inverse of to-tokens)."
    category = "shape"
    accepts = _TOKENS_ONLY

    def infer(self, p: ToImageParams, inputs: list[Shape]) -> Shape:
        h, w = _image_size(p, inputs[0])
        return (inputs[0][1], h, w)

    def label(self, p: ToImageParams) -> str:
        if p.h is not None and p.w is not None:
            return f"to-image {p.h}×{p.w}"
        return "to-image" + (f" h={p.h}" if p.h is not None else "") + (f" w={p.w}" if p.w is not None else "")

    def lower(self, p: ToImageParams, inputs: list[Shape], out: Shape) -> torch.nn.Module:
        from .layers import ToImage as Module

        return Module(out[1], out[2])


@register_op
class ClassToken(Op):
    name = "class-token"
    summary = ("Prepends a learned token: L×D → (L+1)×D; parameter 'class_token' of shape (1, 1, D), starting at zero "
               "(torchvision's ViT).")
    category = "other"
    accepts = _TOKENS_ONLY

    def infer(self, p: Any, inputs: list[Shape]) -> Shape:
        length, d = inputs[0]
        return (length + 1, d)

    def count(self, p: Any, inputs: list[Shape], out: Shape) -> Counts:
        return Counts(params=inputs[0][1])

    def lower(self, p: Any, inputs: list[Shape], out: Shape) -> torch.nn.Module:
        from .layers import ClassToken as Module

        return Module(inputs[0][1])


@register_op
class PosEmbedding(Op):
    name = "pos-embedding"
    params_model = PosEmbeddingParams
    summary = ("Adds a learned position embedding: parameter 'pos_embedding' of shape (1, L, D), drawn from "
               "N(0, std²) (torchvision's ViT).")
    category = "other"
    accepts = _TOKENS_ONLY

    def count(self, p: PosEmbeddingParams, inputs: list[Shape], out: Shape) -> Counts:
        return Counts(params=inputs[0][0] * inputs[0][1])

    def lower(self, p: PosEmbeddingParams, inputs: list[Shape], out: Shape) -> torch.nn.Module:
        from .layers import PosEmbedding as Module

        return Module(inputs[0][0], inputs[0][1], float(p.std))


def _token_index(p: SelectTokenParams, shape: Shape) -> int:
    length = shape[0]
    index = p.index + length if p.index < 0 else p.index
    if not 0 <= index < length:
        raise ShapeError(
            f"select-token index {p.index} is out of range for {describe_shape(shape)} (valid: {-length}..{length - 1})",
            hint="tokens are numbered 0..L-1 (the class token is 0); negative numbers count from the end",
        )
    return index


@register_op
class SelectToken(Op):
    name = "select-token"
    params_model = SelectTokenParams
    summary = "One token of L×D as a flat D vector, x[:, index] (a ViT's head reads the class token, index 0)."
    category = "shape"
    accepts = _TOKENS_ONLY

    def infer(self, p: SelectTokenParams, inputs: list[Shape]) -> Shape:
        _token_index(p, inputs[0])
        return (inputs[0][1],)

    def label(self, p: SelectTokenParams) -> str:
        return f"select-token {p.index}"

    def lower(self, p: SelectTokenParams, inputs: list[Shape], out: Shape) -> torch.nn.Module:
        from .layers import SelectToken as Module

        return Module(p.index)


@register_op
class MeanTokens(Op):
    name = "mean-tokens"
    summary = "The mean of the tokens: L×D → D (global average pooling of a token sequence)."
    category = "pool"
    accepts = _TOKENS_ONLY

    def infer(self, p: Any, inputs: list[Shape]) -> Shape:
        return (inputs[0][1],)

    def lower(self, p: Any, inputs: list[Shape], out: Shape) -> torch.nn.Module:
        from .layers import MeanTokens as Module

        return Module()


def _divisors_near(n: int, k: int) -> str:
    """The divisors of ``n`` closest to ``k`` (at most two), for hints."""
    divs = [d for d in range(1, min(n, 4 * k + 64) + 1) if n % d == 0]
    best = sorted(divs, key=lambda d: (abs(d - k), d))[:2]
    return " or ".join(str(d) for d in sorted(best))


@register_op
class Attention(Op):
    name = "attention"
    params_model = AttentionParams
    summary = ("Multi-head self-attention over L×D tokens (torch.nn.MultiheadAttention, batch_first, with "
               "query = key = value); D must divide by 'heads'. MACs: the q/k/v and output projections and "
               "the two attention products.")
    category = "linear"
    accepts = _TOKENS_ONLY

    def infer(self, p: AttentionParams, inputs: list[Shape]) -> Shape:
        d = inputs[0][1]
        if d % p.heads:
            raise ShapeError(
                f"attention with heads={p.heads} needs a token width divisible by it, but the input is "
                f"{describe_shape(inputs[0])} ({d} features)",
                hint=f"each head takes D / heads features: choose heads dividing {d} (e.g. {_divisors_near(d, p.heads)})",
            )
        return inputs[0]

    def count(self, p: AttentionParams, inputs: list[Shape], out: Shape) -> Counts:
        length, d = inputs[0]
        projections = 4 * d * d  # q, k, v (in_proj_weight: 3D×D) and the output projection (D×D)
        # per token each projection; then Q·Kᵀ (L×L scores, D MACs each) and scores·V (L×D outputs, L MACs each)
        return Counts(params=projections + (4 * d if p.bias else 0), macs=projections * length + 2 * length * length * d)

    def label(self, p: AttentionParams) -> str:
        return f"attention {p.heads} head{'s' if p.heads != 1 else ''}"

    def lower(self, p: AttentionParams, inputs: list[Shape], out: Shape) -> torch.nn.Module:
        from .layers import SelfAttention

        return SelfAttention(inputs[0][1], p.heads, dropout=float(p.dropout), bias=p.bias)


def _grid_label(text: str, h: int | None, w: int | None) -> str:
    if h is not None and w is not None:
        return f"{text} {h}×{w}"
    return text + (f" h={h}" if h is not None else "") + (f" w={w}" if w is not None else "")


@register_op
class MergePatches(Op):
    name = "merge-patches"
    params_model = MergePatchesParams
    summary = ("Each 2×2 neighbourhood of an h×w token grid becomes one token: L×C → (⌈h/2⌉·⌈w/2⌉)×4C, in "
               "torchvision's PatchMerging order (Swin's patch merging is this, a layernorm and a linear to 2C).")
    category = "shape"
    accepts = _TOKENS_ONLY

    def infer(self, p: MergePatchesParams, inputs: list[Shape]) -> Shape:
        h, w = _grid("merge-patches", p.h, p.w, inputs[0])
        return (-(-h // 2) * -(-w // 2), 4 * inputs[0][1])

    def label(self, p: MergePatchesParams) -> str:
        return _grid_label("merge-patches", p.h, p.w)

    def lower(self, p: MergePatchesParams, inputs: list[Shape], out: Shape) -> torch.nn.Module:
        from .layers import MergePatches as Module

        return Module(*_grid("merge-patches", p.h, p.w, inputs[0]))


def _windows(p: WindowAttentionParams, shape: Shape) -> tuple[int, int, int, int, int, int]:
    """(h, w, padded h, padded w, window h, window w) of window-attention; raise :class:`ShapeError` if invalid."""
    h, w = _grid("window-attention", p.h, p.w, shape)
    d = shape[1]
    if d % p.heads:
        raise ShapeError(
            f"window-attention with heads={p.heads} needs a token width divisible by it, but the input is "
            f"{describe_shape(shape)} ({d} features)",
            hint=f"each head takes D / heads features: choose heads dividing {d} (e.g. {_divisors_near(d, p.heads)})",
        )
    (wh, ww), (sh, sw) = pair(p.window), pair(p.shift)
    if sh >= wh or sw >= ww:
        raise ShapeError(f"window-attention shift {_fmt_pair((sh, sw))} must be smaller than the window "
                         f"{_fmt_pair((wh, ww))}", hint="Swin shifts by half a window: shift = window // 2")
    return h, w, -(-h // wh) * wh, -(-w // ww) * ww, wh, ww


@register_op
class WindowAttention(Op):
    name = "window-attention"
    params_model = WindowAttentionParams
    summary = ("Multi-head self-attention within windows of an h×w token grid, optionally cyclically shifted, with a "
               "learned relative position bias (Swin; torchvision's ShiftedWindowAttention). MACs: the projections "
               "and the two attention products in every window.")
    category = "linear"
    accepts = _TOKENS_ONLY

    def infer(self, p: WindowAttentionParams, inputs: list[Shape]) -> Shape:
        _windows(p, inputs[0])
        return inputs[0]

    def count(self, p: WindowAttentionParams, inputs: list[Shape], out: Shape) -> Counts:
        d = inputs[0][1]
        _, _, ph, pw, wh, ww = _windows(p, inputs[0])
        tokens, size = ph * pw, wh * ww  # padded grid; tokens per window
        table = (2 * wh - 1) * (2 * ww - 1) * p.heads
        params = 4 * d * d + (4 * d if p.bias else 0) + table
        # q/k/v and output projections on every (padded) token; Q·Kᵀ and weights·V in every window
        macs = 4 * d * d * tokens + 2 * tokens * size * d
        return Counts(params=params, buffers=size * size, macs=macs, int_buffers=size * size)

    def label(self, p: WindowAttentionParams) -> str:
        text = f"window-attention {_fmt_pair(pair(p.window))}, {p.heads} head{'s' if p.heads != 1 else ''}"
        return text + (f", shift {_fmt_pair(pair(p.shift))}" if pair(p.shift) != (0, 0) else "")

    def lower(self, p: WindowAttentionParams, inputs: list[Shape], out: Shape) -> torch.nn.Module:
        from .layers import WindowAttention as Module

        h, w, *_ = _windows(p, inputs[0])
        return Module(inputs[0][1], p.heads, h, w, pair(p.window), pair(p.shift), dropout=float(p.dropout), bias=p.bias)


@register_op
class ConcatFeatures(Op):
    name = "concat-features"
    arity = None
    summary = "Concatenation of the features of token sequences of the same length: L×D1 + L×D2 → L×(D1+D2)."
    category = "shape"  # a module (torch.cat on the last dimension), not one of the merges written as expressions
    accepts = _TOKENS_ONLY

    def infer(self, p: Any, inputs: list[Shape]) -> Shape:
        if len({s[0] for s in inputs}) > 1:
            raise ShapeError(
                "cannot concatenate the features of token sequences of different lengths: "
                + ", ".join(describe_shape(s) for s in inputs),
                hint="'concat-features' needs the same number of tokens in every input; 'concat' joins the tokens",
            )
        return (inputs[0][0], sum(s[1] for s in inputs))

    def lower(self, p: Any, inputs: list[Shape], out: Shape) -> torch.nn.Module:
        from .layers import ConcatFeatures as Module

        return Module()


#: The ops archspec itself defines (a block may not take one of these names; plugin op names are
#: not reserved: a spec must not become invalid because some package is installed).
BUILTIN_OPS: frozenset[str] = frozenset(OPS)

