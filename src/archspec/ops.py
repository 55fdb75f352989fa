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

Shapes exclude the batch dimension: ``(C, H, W)`` for images, ``(F,)`` for flat features.
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
    NoParams,
    OpParams,
    PReluParams,
    SliceParams,
    SoftmaxParams,
    StochasticDepthParams,
    UpsampleParams,
)

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = [
    "BUILTIN_OPS",
    "MAX_WIDTH",
    "MAX_WINDOW",
    "OPS",
    "Counts",
    "Emit",
    "Op",
    "OpParams",
    "Shape",
    "ShapeError",
    "canonical_op_name",
    "fmt_shape",
    "get_op",
    "is_builtin",
    "register_op",
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
    """``(64, 24, 24)`` → ``64×24×24``; ``(10,)`` → ``10``."""
    if shape is None:
        return "?"
    return "×".join(str(d) for d in shape)


def pair(v: int | tuple[int, int]) -> tuple[int, int]:
    """Normalise an int-or-pair parameter to a pair."""
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _fmt_pair(v: tuple[int, int]) -> str:
    return str(v[0]) if v[0] == v[1] else f"{v[0]}×{v[1]}"


def _need_image(op: str, shape: Shape) -> tuple[int, int, int]:
    if len(shape) != 3:
        raise ShapeError(
            f"{op} needs a C×H×W input, but the input is flat ({fmt_shape(shape)} features)",
            hint="image ops cannot follow 'flatten' or 'linear'",
        )
    return shape[0], shape[1], shape[2]


def _window_out(size: int, k: int, s: int, p: int, d: int, ceil_mode: bool) -> int:
    """PyTorch's output-size formula for convolution and pooling (incl. ceil_mode's last-window rule)."""
    span = size + 2 * p - d * (k - 1) - 1
    if span < 0:
        return 0
    if ceil_mode:
        out = -(-span // s) + 1
        if (out - 1) * s >= size + p:
            out -= 1
        return out
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
    (how many inputs), :attr:`summary`, :attr:`category` (diagram colour and fusion).

    Hooks, all called with ``p``, the validated parameters (an instance of :attr:`params_model`),
    and shapes without the batch dimension (``(C, H, W)`` or ``(F,)``):

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
    summary = "Fully connected layer (torch.nn.Linear) on a flat input."
    category = "linear"

    def infer(self, p: LinearParams, inputs: list[Shape]) -> Shape:
        if len(inputs[0]) != 1:
            raise ShapeError(
                f"linear needs a flat input, but the input is {fmt_shape(inputs[0])}",
                hint="add 'flatten' (or 'gap' then 'flatten') before 'linear'",
            )
        return (p.out,)

    def count(self, p: LinearParams, inputs: list[Shape], out: Shape) -> Counts:
        weights = inputs[0][0] * p.out
        return Counts(params=weights + (p.out if p.bias else 0), macs=weights)

    def label(self, p: LinearParams) -> str:
        return f"linear {p.out}"

    def lower(self, p: LinearParams, inputs: list[Shape], out: Shape) -> torch.nn.Module:
        from torch import nn

        return nn.Linear(inputs[0][0], p.out, bias=p.bias)


# --------------------------------------------------------------------------------------------------
# Pooling


class _Pool(Op):
    category = "pool"

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
            if size + 2 * pp[i] < eff:
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
            hint="dim 1 is the channels (or features)",
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

    def label(self, p: DropoutParams) -> str:
        return f"dropout {p.p:g}"

    def lower(self, p: DropoutParams, inputs: list[Shape], out: Shape) -> torch.nn.Module:
        from torch import nn

        return nn.Dropout(p.p)


@register_op
class Flatten(Op):
    name = "flatten"
    summary = "Flatten C×H×W to C·H·W features (torch.nn.Flatten)."
    category = "shape"

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
    summary = "Concatenation on channels (or features) of tensors with the same spatial size."
    category = "merge"

    def infer(self, p: Any, inputs: list[Shape]) -> Shape:
        ranks = {len(s) for s in inputs}
        if len(ranks) > 1:
            raise ShapeError("cannot concatenate flat and C×H×W tensors: " + ", ".join(fmt_shape(s) for s in inputs))
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
    return ("channels", "height", "width") if rank == 3 else ("features",)


def _units(shape: Shape) -> str:
    """``channels`` for a C×H×W shape, ``features`` for a flat one."""
    return "channels" if len(shape) == 3 else "features"


@register_op
class Mul(Op):
    name = "mul"
    arity = None
    summary = ("Element-wise product of two or more tensors, broadcasting dimensions of size 1 "
               "(a C×1×1 gate scales a C×H×W tensor: squeeze-excitation).")
    category = "merge"

    def infer(self, p: Any, inputs: list[Shape]) -> Shape:
        shown = " * ".join(fmt_shape(s) for s in inputs)
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
                    hint="a squeeze-excitation gate must have the channels of the tensor it scales (C×1×1)",
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
               "or over the features of F (torch.nn.LayerNorm).")
    category = "norm"

    def count(self, p: LayerNormParams, inputs: list[Shape], out: Shape) -> Counts:
        return Counts(params=2 * inputs[0][0] if p.affine else 0)

    def label(self, p: LayerNormParams) -> str:
        return "layernorm"

    def lower(self, p: LayerNormParams, inputs: list[Shape], out: Shape) -> torch.nn.Module:
        from torch import nn

        from .layers import LayerNorm2d

        cls = LayerNorm2d if len(inputs[0]) == 3 else nn.LayerNorm
        return cls(inputs[0][0], eps=p.eps, elementwise_affine=p.affine)


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
    summary = ("Channels start..end (end exclusive) of a C×H×W input, or features of an F input; "
               "two slices of one input split it (ShuffleNetV2).")
    category = "shape"

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
    summary = "A learned factor per channel (shape C×1×1) or per feature (F), starting at 'init' (ConvNeXt)."
    category = "norm"

    def count(self, p: LayerScaleParams, inputs: list[Shape], out: Shape) -> Counts:
        return Counts(params=inputs[0][0])

    def label(self, p: LayerScaleParams) -> str:
        return f"layer-scale {p.init:g}"

    def lower(self, p: LayerScaleParams, inputs: list[Shape], out: Shape) -> torch.nn.Module:
        from .layers import LayerScale as Module

        c = inputs[0][0]
        return Module((c, 1, 1) if len(inputs[0]) == 3 else (c,), float(p.init))


@register_op
class StochasticDepth(Op):
    name = "stochastic-depth"
    params_model = StochasticDepthParams
    summary = "Stochastic depth (torchvision.ops.StochasticDepth): drops the input per sample or per batch; identity in eval."
    category = "reg"

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


#: The ops archspec itself defines (a block may not take one of these names; plugin op names are
#: not reserved: a spec must not become invalid because some package is installed).
BUILTIN_OPS: frozenset[str] = frozenset(OPS)

