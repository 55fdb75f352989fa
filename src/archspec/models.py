"""The Pydantic models of the spec language: the single definition of what a spec may say.

Every spec field and every built-in op parameter is declared here, with its type, bounds, default
and description.  The pipeline validates with these models directly (``SpecDocument.model_validate``,
``ConvParams.model_validate``), the JSON Schema (``archspec schema``) is generated from them, and
plugin authors subclass :class:`OpParams` for their own ops' parameters.  Validated values are
instances of these models: ``graph.nodes["conv1"].params`` is a :class:`ConvParams`.

This module depends on Pydantic only; :mod:`archspec.ops` builds on it.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    StrictBool,
    StrictFloat,
    StrictInt,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

__all__ = [
    "MAX_WIDTH",
    "MAX_WINDOW",
    "AdaptivePoolParams",
    "AvgPoolParams",
    "BatchNormParams",
    "BlockDef",
    "ChannelShuffleParams",
    "ConvParams",
    "ConvTransposeParams",
    "DropoutParams",
    "GeluParams",
    "GroupNormParams",
    "HardtanhParams",
    "LayerNormParams",
    "LayerScaleParams",
    "LeakyReluParams",
    "LinearParams",
    "MaxPoolParams",
    "NoParams",
    "OpParams",
    "PReluParams",
    "PoolParams",
    "SliceParams",
    "SoftmaxParams",
    "SpecDocument",
    "StochasticDepthParams",
    "UpsampleParams",
]

#: Upper bound on a channel or feature count: anything larger is a typo, not a layer.
MAX_WIDTH = 1 << 22
#: Upper bound on a kernel, stride, padding or dilation.
MAX_WINDOW = 1 << 12

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

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)  # schema built on first use


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


# New in issue 14: the vocabulary of MobileNetV3, EfficientNet, ShuffleNetV2, ConvNeXt, RegNet, MnasNet, U-Net.

Finite = Annotated[StrictFloat, Field(allow_inf_nan=False)] | StrictInt
Index = Annotated[StrictInt, Field(ge=-MAX_WIDTH, le=MAX_WIDTH)]


class HardtanhParams(OpParams):
    """Parameters of hardtanh (clamping to [min, max])."""

    min: Finite = Field(-1.0, description="Lower bound of the output.")
    max: Finite = Field(1.0, description="Upper bound of the output; must be greater than 'min'.")

    @field_validator("max")
    @classmethod
    def _above_min(cls, v: float, info: ValidationInfo) -> float:
        low = info.data.get("min")
        if low is not None and v <= low:
            raise PydanticCustomError("bounds", "must be greater than min ({low})", {"low": low})
        return v


class PReluParams(OpParams):
    """Parameters of PReLU (a ReLU whose negative slope is learned)."""

    per_channel: StrictBool = Field(
        False, description="Learn one slope per channel (or feature) instead of one slope shared by all."
    )
    init: Finite = Field(0.25, description="Initial value of the learned slope(s).")


class LayerNormParams(OpParams):
    """Parameters of layer normalisation (over channels at each position of C×H×W, or over F features)."""

    eps: PosFloat = Field(1e-5, description="Added to the variance for numerical stability.")
    affine: StrictBool = Field(True, description="Learn a per-channel (per-feature) scale and shift.")


class GroupNormParams(OpParams):
    """Parameters of group normalisation (``num_channels`` is inferred)."""

    groups: PosInt = Field(description="Number of groups the channels are split into; the channels must divide by it.")
    eps: PosFloat = Field(1e-5, description="Added to the variance for numerical stability.")
    affine: StrictBool = Field(True, description="Learn a per-channel scale and shift.")


class ConvTransposeParams(OpParams):
    """Parameters of a 2-D transposed convolution (``in_channels`` is inferred)."""

    out: PosInt = Field(description="Output channels.")
    k: Pair = Field(description="Kernel size: an int or [height, width].")
    stride: Pair = Field(1, description="Stride (the upsampling factor): an int or [height, width].")
    pad: NonNegPair = Field(
        0, description="Rows/columns removed from each side of the full output (nn.ConvTranspose2d's padding): "
        "an int or [height, width]."
    )
    output_pad: NonNegPair = Field(
        0, description="Extra rows/columns added to one side of the output (nn.ConvTranspose2d's output_padding); "
        "must be smaller than the stride or the dilation."
    )
    dilation: Pair = Field(1, description="Kernel dilation: an int or [height, width].")
    groups: PosInt = Field(1, description="Number of groups; input and output channels must divide by it.")
    bias: StrictBool = Field(True, description="Whether the layer adds a learned bias.")


class UpsampleParams(OpParams):
    """Parameters of upsampling (exactly one of ``scale`` and ``size``)."""

    scale: Pair | None = Field(
        None, description="Integer scale factor: an int or [height, width]; the output is input size × scale."
    )
    size: Annotated[StrictInt, Field(gt=0, le=MAX_WIDTH)] | tuple[
        Annotated[StrictInt, Field(gt=0, le=MAX_WIDTH)], Annotated[StrictInt, Field(gt=0, le=MAX_WIDTH)]
    ] | None = Field(None, description="Output size: an int or [height, width] (instead of 'scale').")
    mode: Literal["nearest", "bilinear"] = Field("nearest", description="Interpolation: 'nearest' or 'bilinear'.")
    align_corners: StrictBool | None = Field(
        None, description="Bilinear only: align the corner pixels of input and output (default false)."
    )

    @field_validator("size")
    @classmethod
    def _not_both(cls, v: Any, info: ValidationInfo) -> Any:
        if v is not None and info.data.get("scale") is not None:
            raise PydanticCustomError("exclusive", "give either 'scale' or 'size', not both")
        return v

    @field_validator("align_corners")
    @classmethod
    def _bilinear_only(cls, v: Any, info: ValidationInfo) -> Any:
        if v is not None and info.data.get("mode", "nearest") != "bilinear":
            raise PydanticCustomError("bilinear_only", "'align_corners' applies to mode: bilinear only")
        return v


class SliceParams(OpParams):
    """Parameters of a channel (or feature) slice: channels ``start`` to ``end`` (exclusive), as ``x[:, start:end]``."""

    start: Index = Field(0, description="First channel taken (0-based; negative counts from the end, -1 is the last).")
    end: Index | None = Field(
        None, description="Channel after the last one taken (exclusive; negative counts from the end); "
        "default: through the last channel."
    )


class ChannelShuffleParams(OpParams):
    """Parameters of channel shuffle (ShuffleNet)."""

    groups: PosInt = Field(description="Number of groups the channels are interleaved from; the channels must divide by it.")


class LayerScaleParams(OpParams):
    """Parameters of layer scale: a learned per-channel (per-feature) factor (ConvNeXt, CaiT)."""

    init: Finite = Field(1e-6, description="Initial value of every scale factor.")


class StochasticDepthParams(OpParams):
    """Parameters of stochastic depth (torchvision.ops.StochasticDepth); the identity in eval mode."""

    p: Annotated[StrictFloat | StrictInt, Field(ge=0, le=1)] = Field(
        description="Probability of zeroing the input (then the survivors are scaled by 1/(1-p)) during training."
    )
    mode: Literal["row", "batch"] = Field(
        "row", description="'row': drop each sample of the batch independently; 'batch': drop the whole batch at once."
    )


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
    """A whole archspec file.

    After validation (:func:`archspec.spec.validate_document`) ``blocks`` holds every visible block,
    the file's own and imported ones, and :meth:`block_source` gives each one's located YAML.
    """

    archspec: StrictInt = Field(description="Spec format version; must be 1.")
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

    #: Located YAML definition of every visible block (set by validation; may point into imported files).
    _block_sources: dict[str, Any] = PrivateAttr(default_factory=dict)

    def block_source(self, name: str) -> Any:
        """The located YAML definition (a :class:`~archspec.source.LocMap`) of block ``name``."""
        return self._block_sources[name]
