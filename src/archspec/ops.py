"""The primitive operations: one class per op holds its shape rule, counts, diagram label and
PyTorch lowering, and names its parameter model.  Adding an op means adding one class here and its
parameter model in :mod:`archspec.models` (or registering both from your own package with
:func:`register_op`); no other file has a list of ops.

Built-in ops name their model with :class:`BuiltinParams`, so that checking a spec runs the model's
compiled validator (:mod:`archspec.compiled`) and never imports Pydantic's model machinery;
``Conv.params_model`` still gives the Pydantic class when asked for.  Plugin ops set
``params_model`` to their own :class:`OpParams` subclass.

Shapes exclude the batch dimension: ``(C, H, W)`` for images, ``(F,)`` for flat features.
Nothing in this module imports torch at import time; :meth:`Op.lower` imports it when called.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from .models import (
        AdaptivePoolParams,
        AvgPoolParams,
        BatchNormParams,
        ConvParams,
        DropoutParams,
        LinearParams,
        MaxPoolParams,
        OpParams,
    )

__all__ = [
    "BUILTIN_OPS",
    "OPS",
    "BuiltinParams",
    "Counts",
    "Op",
    "OpParams",
    "Shape",
    "ShapeError",
    "canonical_op_name",
    "fmt_shape",
    "get_op",
    "register_op",
]

Shape = tuple[int, ...]

#: Upper bound on a channel or feature count: anything larger is a typo, not a layer.
MAX_WIDTH = 1 << 22
#: Upper bound on a kernel, stride, padding or dilation.
MAX_WINDOW = 1 << 12



class ShapeError(Exception):
    """A shape rule failed; ``message`` names the shapes, ``hint`` says what to change."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


@dataclass(frozen=True, slots=True)
class Counts:
    """Static cost of one node: trainable parameters, buffer elements, multiply-accumulates."""

    params: int = 0
    buffers: int = 0
    macs: int = 0


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


class BuiltinParams:
    """``params_model`` of a built-in op: the name of its model in :mod:`archspec.models`.

    Reading ``Op.params_model`` imports that module and returns the Pydantic class;
    :meth:`Op.validate_params` uses the precompiled validator instead.
    """

    def __init__(self, model: str) -> None:
        self.model = model

    def __get__(self, obj: Any, owner: Any = None) -> type[OpParams]:
        from . import models

        cls: type[OpParams] = getattr(models, self.model)
        return cls


def _compiled_name(cls: type[Op]) -> str | None:
    """The compiled model name of ``cls``'s parameters, or None for a plugin's own Pydantic model."""
    for klass in cls.__mro__:
        attr = klass.__dict__.get("params_model")
        if attr is not None:
            return attr.model if isinstance(attr, BuiltinParams) else None
    return None


class Op:
    """Base class of an operation.

    Subclasses set :attr:`name`, :attr:`params_model`, and override :meth:`infer`, and usually
    :meth:`count`, :meth:`label` and :meth:`lower`.
    """

    #: The name used in specs (hyphenated; ``_`` is accepted in its place).
    name: ClassVar[str] = ""
    #: The Pydantic model of the op's parameters: a plugin sets its own :class:`OpParams` subclass;
    #: built-in ops name theirs in :mod:`archspec.models` with :class:`BuiltinParams`.
    params_model: ClassVar[Any] = BuiltinParams("NoParams")
    #: ``1`` for ops on one tensor, ``None`` for merges taking two or more.
    arity: ClassVar[int | None] = 1
    #: One sentence for the docs and the JSON Schema.
    summary: ClassVar[str] = ""
    #: Diagram/summary category: "conv", "pool", "linear", "act", "norm", "reg", "shape", "merge".
    category: ClassVar[str] = "other"

    @classmethod
    def validate_params(cls, args: Any) -> Any:
        """Validated parameters (attribute access: ``p.out``) or a ``pydantic_core.ValidationError``."""
        name = _compiled_name(cls)
        if name is None:
            return cls.params_model.model_validate(args)
        from .compiled import validator

        return validator(name).validate_python(args)

    @classmethod
    def param_names(cls) -> list[str]:
        """The op's parameter names, in declaration order."""
        name = _compiled_name(cls)
        if name is None:
            return list(cls.params_model.model_fields)
        from .compiled import field_names

        return field_names(name)

    @classmethod
    def required_params(cls) -> list[str]:
        """The parameters that have no default."""
        name = _compiled_name(cls)
        if name is None:
            return [k for k, f in cls.params_model.model_fields.items() if f.is_required()]
        from .compiled import required_fields

        return required_fields(name)

    @classmethod
    def params_schema(cls) -> Any:
        """What :func:`archspec.spec.pydantic_diagnostics` needs to explain an error in the parameters:
        the compiled model name, or the plugin's Pydantic class."""
        return _compiled_name(cls) or cls.params_model

    def infer(self, p: Any, inputs: list[Shape]) -> Shape:
        """Output shape for these parameters and input shapes; raise :class:`ShapeError` if invalid."""
        return inputs[0]

    def count(self, p: Any, inputs: list[Shape], out: Shape) -> Counts:
        """Parameters, buffer elements and MACs (multiply-accumulates of conv/linear weights)."""
        return Counts()

    def label(self, p: Any) -> str:
        """Short text for diagrams and summaries, e.g. ``conv 3×3/2, 64``."""
        return self.name

    def lower(self, p: Any, inputs: list[Shape], out: Shape) -> torch.nn.Module:
        """The ``torch.nn.Module`` computing this op (imports torch)."""
        raise NotImplementedError(f"op '{self.name}' has no PyTorch lowering")


#: Registry of ops by canonical name.
OPS: dict[str, Op] = {}


def canonical_op_name(name: str) -> str:
    """Spec op names accept ``_`` for ``-``: ``leaky_relu`` → ``leaky-relu``."""
    return name.replace("_", "-")


def register_op(cls: type[Op]) -> type[Op]:
    """Class decorator adding an op to :data:`OPS` (also the plugin entry point for custom ops)."""
    if not cls.name:
        raise ValueError("an Op subclass must set 'name'")
    OPS[canonical_op_name(cls.name)] = cls()
    clear = getattr(sys.modules.get("archspec.api"), "clear_cache", None)
    if clear is not None:  # graphs analysed (and lowerings prepared) with a replaced op are stale
        clear()
    return cls


def get_op(name: str) -> Op | None:
    """The op registered under ``name`` (``-``/``_`` insensitive), or None.

    An unknown name loads the installed ``archspec.ops`` entry points once (see :mod:`archspec.plugins`).
    """
    op = OPS.get(canonical_op_name(name))
    if op is None:
        from .plugins import load_plugins

        if load_plugins():
            op = OPS.get(canonical_op_name(name))
    return op


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
    params_model = BuiltinParams("ConvParams")
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
    params_model = BuiltinParams("LinearParams")
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
    params_model = BuiltinParams("MaxPoolParams")
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
    params_model = BuiltinParams("AvgPoolParams")
    summary = "2-D average pooling (torch.nn.AvgPool2d)."

    def lower(self, p: AvgPoolParams, inputs: list[Shape], out: Shape) -> torch.nn.Module:
        from torch import nn

        return nn.AvgPool2d(
            pair(p.k), stride=pair(p.stride) if p.stride is not None else None, padding=pair(p.pad),
            ceil_mode=p.ceil_mode, count_include_pad=p.count_include_pad,
        )


class _AdaptivePool(Op):
    params_model = BuiltinParams("AdaptivePoolParams")
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
    params_model = BuiltinParams("NoParams")
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
        "params_model": model or BuiltinParams("NoParams"),
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
            BuiltinParams("GeluParams"))
_activation("leaky-relu", "Leaky ReLU (torch.nn.LeakyReLU).", lambda p: _nn("LeakyReLU", p.slope),
            BuiltinParams("LeakyReluParams"))
_activation("softmax", "Softmax over a dimension (torch.nn.Softmax).", lambda p: _nn("Softmax", dim=p.dim),
            BuiltinParams("SoftmaxParams"), _softmax_infer)


# --------------------------------------------------------------------------------------------------
# Normalisation, regularisation, reshaping


@register_op
class BatchNorm(Op):
    name = "bn"
    params_model = BuiltinParams("BatchNormParams")
    summary = "Batch normalisation: BatchNorm2d on C×H×W, BatchNorm1d on flat features."
    category = "norm"

    def count(self, p: BatchNormParams, inputs: list[Shape], out: Shape) -> Counts:
        c = inputs[0][0]
        return Counts(params=2 * c if p.affine else 0, buffers=2 * c + 1)

    def label(self, p: BatchNormParams) -> str:
        return "batchnorm"

    def lower(self, p: BatchNormParams, inputs: list[Shape], out: Shape) -> torch.nn.Module:
        from torch import nn

        cls = nn.BatchNorm2d if len(inputs[0]) == 3 else nn.BatchNorm1d
        return cls(inputs[0][0], eps=p.eps, momentum=p.momentum, affine=p.affine)


@register_op
class Dropout(Op):
    name = "dropout"
    params_model = BuiltinParams("DropoutParams")
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


#: The ops archspec itself defines (a block may not take one of these names; plugin op names are
#: not reserved: a spec must not become invalid because some package is installed).
BUILTIN_OPS: frozenset[str] = frozenset(OPS)


def __getattr__(name: str) -> Any:
    """``archspec.ops.OpParams``, ``ConvParams``, …: the Pydantic models live in :mod:`archspec.models`."""
    if name.endswith("Params") and not name.startswith("_"):
        from . import models

        if hasattr(models, name):
            return getattr(models, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
