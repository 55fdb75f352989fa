"""The Pydantic models of the spec language: the single source of truth for what a spec may say.

Every spec field and every built-in op parameter is declared (with its type, bounds, default and
description) here.  They serve three purposes:

* the JSON Schema (``archspec schema``) is generated from them;
* the validators the pipeline runs are compiled from them: ``scripts/gen_core_schemas.py`` writes
  their Pydantic core schemas into :mod:`archspec._core_schemas`, which :mod:`archspec.compiled`
  hands straight to ``pydantic_core``.  Checking a spec therefore costs neither the import of
  Pydantic's model machinery nor its schema generation (about 60 ms per process), while the errors
  are Pydantic's own, word for word.  ``tests/test_compiled.py`` fails if the file is stale;
* plugin authors subclass :class:`OpParams` for their own ops' parameters.

Importing this module imports ``pydantic.BaseModel``; the static pipeline does not import it
unless a plugin op or the JSON Schema needs it.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt

from .ops import MAX_WIDTH, MAX_WINDOW

__all__ = [
    "AdaptivePoolParams",
    "AvgPoolParams",
    "BatchNormParams",
    "BlockDef",
    "ConvParams",
    "DropoutParams",
    "GeluParams",
    "LeakyReluParams",
    "LinearParams",
    "MaxPoolParams",
    "NoParams",
    "OpParams",
    "PoolParams",
    "SoftmaxParams",
    "SpecDocument",
    "compiled_schemas",
]

PosInt = Annotated[StrictInt, Field(gt=0, le=MAX_WIDTH)]
Window = Annotated[StrictInt, Field(gt=0, le=MAX_WINDOW)]
NonNeg = Annotated[StrictInt, Field(ge=0, le=MAX_WINDOW)]
Pair = Window | tuple[Window, Window]
NonNegPair = NonNeg | tuple[NonNeg, NonNeg]
Prob = Annotated[StrictFloat | StrictInt, Field(ge=0, lt=1)]
PosFloat = Annotated[StrictFloat | StrictInt, Field(gt=0)]


# --------------------------------------------------------------------------------------------------
# Op parameters


class OpParams(BaseModel):
    """Base of every op's parameter model: frozen, unknown keys rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)  # schemas built on first use


class NoParams(OpParams):
    """This op takes no parameters."""


class ConvParams(OpParams):
    """Parameters of a 2-D convolution (``in_channels`` is inferred)."""

    out: PosInt = Field(description="Output channels.")
    k: Pair = Field(description="Kernel size: an int or [height, width].")
    stride: Pair = Field(1, description="Stride: an int or [height, width].")
    pad: NonNegPair | Literal["same", "valid"] = Field(
        0, description="Zero padding: an int, [height, width], 'same' (stride 1 only) or 'valid' (= 0)."
    )
    dilation: Pair = Field(1, description="Kernel dilation: an int or [height, width].")
    groups: PosInt = Field(1, description="Number of groups; input and output channels must divide by it.")
    bias: StrictBool = Field(True, description="Whether the convolution adds a learned bias.")


class LinearParams(OpParams):
    """Parameters of a fully connected layer (``in_features`` is inferred)."""

    out: PosInt = Field(description="Output features.")
    bias: StrictBool = Field(True, description="Whether the layer adds a learned bias.")


class PoolParams(OpParams):
    """Parameters of max or average pooling."""

    k: Pair = Field(description="Window size: an int or [height, width].")
    stride: Pair | None = Field(None, description="Stride; defaults to the window size.")
    pad: NonNegPair = Field(0, description="Implicit padding on both sides; at most half the window.")
    ceil_mode: StrictBool = Field(False, description="Round the output size up instead of down.")


class MaxPoolParams(PoolParams):
    """Parameters of max pooling."""

    dilation: Pair = Field(1, description="Window dilation.")


class AvgPoolParams(PoolParams):
    """Parameters of average pooling."""

    count_include_pad: StrictBool = Field(True, description="Whether padded zeros count in the average.")


class AdaptivePoolParams(OpParams):
    """Parameters of adaptive pooling."""

    size: Pair = Field(1, description="Output size: an int or [height, width].")


class LeakyReluParams(OpParams):
    """Parameters of leaky ReLU."""

    slope: Annotated[StrictFloat | StrictInt, Field(ge=0)] = Field(0.01, description="Slope for negative inputs.")


class GeluParams(OpParams):
    """Parameters of GELU."""

    approximate: Literal["none", "tanh"] = Field("none", description="'none' (exact erf) or 'tanh' approximation.")


class SoftmaxParams(OpParams):
    """Parameters of softmax."""

    dim: StrictInt = Field(1, description="Dimension (batch is 0, channels 1) the softmax normalises over.")


class BatchNormParams(OpParams):
    """Parameters of batch normalisation (``num_features`` is inferred)."""

    eps: PosFloat = Field(1e-5, description="Added to the variance for numerical stability.")
    momentum: Annotated[StrictFloat | StrictInt, Field(ge=0, le=1)] = Field(
        0.1, description="Running statistics momentum."
    )
    affine: StrictBool = Field(True, description="Learn a per-channel scale and shift.")


class DropoutParams(OpParams):
    """Parameters of dropout."""

    p: Prob = Field(0.5, description="Probability of zeroing an element during training.")


# --------------------------------------------------------------------------------------------------
# The spec document


Ident = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class BlockDef(_Model):
    """A reusable, parameterised block: a body of layers (or a graph) with named parameters."""

    description: str | None = Field(None, description="What the block is, for docs and diagrams.")
    params: dict[Ident, Any] = Field(
        default_factory=dict,
        description="Parameter names with their defaults; `null` makes a parameter required.",
    )
    layers: list[Any] | None = Field(None, description="The body as a sequence of items, run in order.")
    graph: dict[Ident, Any] | None = Field(
        None, description="The body as named nodes with explicit inputs (`from`); an alternative to `layers`."
    )
    output: Ident | None = Field(None, description="With `graph` (or named layers): the node whose value is returned.")


class SpecDocument(_Model):
    """A whole archspec file."""

    archspec: int = Field(description="Spec format version; must be 1.")
    name: Ident | None = Field(
        None, description="Model name; the generated PyTorch class is named after it (required unless a block library)."
    )
    description: str | None = Field(None, description="Free text shown in summaries and diagrams.")
    imports: list[str] = Field(
        default_factory=list,
        description="Spec files (relative to this one) whose blocks this file can use, e.g. [resnet_family.yaml].",
    )
    input: list[Annotated[StrictInt, Field(gt=0, le=MAX_WIDTH)]] | None = Field(
        None,
        description="Input shape without the batch dimension: [C, H, W] for images or [F] for features "
        "(required unless a block library).",
    )
    params: dict[Ident, Any] = Field(
        default_factory=dict, description="Top-level parameters with defaults, overridable with `--set NAME=VALUE`."
    )
    blocks: dict[Ident, BlockDef] = Field(default_factory=dict, description="Reusable parameterised blocks by name.")
    layers: list[Any] | None = Field(None, description="The network as a sequence of items.")
    graph: dict[Ident, Any] | None = Field(None, description="The network as named nodes with explicit inputs.")
    output: Ident | None = Field(None, description="The node whose value is the network's output (default: the last).")


# --------------------------------------------------------------------------------------------------
# Compiled core schemas

#: Models whose core schemas are compiled into :mod:`archspec._core_schemas`.
COMPILED_MODELS: tuple[type[BaseModel], ...] = (
    SpecDocument, BlockDef, NoParams, ConvParams, LinearParams, MaxPoolParams, AvgPoolParams,
    AdaptivePoolParams, LeakyReluParams, GeluParams, SoftmaxParams, BatchNormParams, DropoutParams,
)
_DROP_KEYS = frozenset({"metadata", "ref", "post_init", "serialization"})
_FACTORIES: dict[Any, str] = {dict: "@dict", list: "@list"}
#: Pydantic's bound checks on unions (``Annotated[float | int, Field(ge=0)]``), by function name.
_BOUNDS = {"greater_than_validator": "gt", "greater_than_or_equal_validator": "ge",
           "less_than_validator": "lt", "less_than_or_equal_validator": "le"}


def _plain(schema: Any) -> Any:
    """A core schema as plain data: classes and factories become ``"@name"``; docs/refs dropped."""
    if isinstance(schema, dict):
        out: dict[str, Any] = {}
        for key, value in schema.items():
            if key in _DROP_KEYS:
                continue
            if key == "cls":
                out[key] = "@" + value.__name__
            elif key == "default_factory":
                if value not in _FACTORIES:
                    raise TypeError(f"cannot compile default_factory {value!r}")
                out[key] = _FACTORIES[value]
            else:
                out[key] = _plain(value)
        return out
    if isinstance(schema, list):
        return [_plain(v) for v in schema]
    if isinstance(schema, tuple):
        return tuple(_plain(v) for v in schema)
    if isinstance(schema, str) and schema.startswith("@"):
        raise TypeError(f"cannot compile the string {schema!r}: '@' marks classes and functions in compiled schemas")
    if schema is None or isinstance(schema, (str, int, float, bool)):
        return schema
    func = getattr(schema, "func", None)  # functools.partial(greater_than_validator, gt=0)
    keywords = getattr(schema, "keywords", None) or {}
    if getattr(func, "__name__", None) in _BOUNDS and list(keywords) == [_BOUNDS[func.__name__]]:
        kind = _BOUNDS[func.__name__]
        limit = keywords[kind]
        if isinstance(limit, (int, float)) and not isinstance(limit, bool):
            return f"@bound:{kind}:{limit!r}"
    raise TypeError(f"cannot compile {schema!r} in a core schema")


def compiled_schemas() -> dict[str, Any]:
    """The plain-data core schema of every model in :data:`COMPILED_MODELS`, by class name.

    This is what ``scripts/gen_core_schemas.py`` writes to :mod:`archspec._core_schemas`.
    """
    out: dict[str, Any] = {}
    for model in COMPILED_MODELS:
        model.model_rebuild()
        out[model.__name__] = _plain(model.__pydantic_core_schema__)
    return out
