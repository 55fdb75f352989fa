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
    Discriminator,
    Field,
    PrivateAttr,
    StrictBool,
    StrictFloat,
    StrictInt,
    Tag,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

__all__ = [
    "MAX_WIDTH",
    "MAX_WINDOW",
    "AdaptivePoolParams",
    "AttentionParams",
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
    "InitRule",
    "InitScheme",
    "InitSpec",
    "LayerNormParams",
    "LayerScaleParams",
    "LeakyReluParams",
    "LinearParams",
    "MaxPoolParams",
    "MergePatchesParams",
    "NoParams",
    "OpParams",
    "PReluParams",
    "PoolParams",
    "PosEmbeddingParams",
    "SelectTokenParams",
    "SliceParams",
    "SoftmaxParams",
    "SpecDocument",
    "StochasticDepthParams",
    "ToImageParams",
    "UpsampleParams",
    "WindowAttentionParams",
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


# New in issue 15: token sequences (L×D) and the vocabulary of vision transformers.


class ToImageParams(OpParams):
    """Parameters of to-image: an L×D token sequence back to a D×h×w image (h·w = L)."""

    h: PosInt | None = Field(None, description="Height of the image; default: L / w, or √L when neither is given.")
    w: PosInt | None = Field(None, description="Width of the image; default: L / h, or √L when neither is given.")


class PosEmbeddingParams(OpParams):
    """Parameters of a learned position embedding (a (1, L, D) tensor added to the tokens)."""

    std: Annotated[StrictFloat, Field(ge=0, allow_inf_nan=False)] | Annotated[StrictInt, Field(ge=0)] = Field(
        0.02, description="Standard deviation of the normal distribution the embedding starts from (torchvision: 0.02)."
    )


class SelectTokenParams(OpParams):
    """Parameters of select-token: one token of an L×D sequence as a flat D vector."""

    index: Index = Field(0, description="Which token (0-based; negative counts from the end, -1 is the last).")


class AttentionParams(OpParams):
    """Parameters of multi-head self-attention over the tokens (torch.nn.MultiheadAttention)."""

    heads: PosInt = Field(description="Number of attention heads; the token width D must divide by it.")
    bias: StrictBool = Field(True, description="Whether the q/k/v and output projections add a learned bias.")
    dropout: Prob = Field(0.0, description="Dropout on the attention weights during training.")


class MergePatchesParams(OpParams):
    """Parameters of merge-patches: each 2×2 neighbourhood of an h×w token grid becomes one token (Swin)."""

    h: PosInt | None = Field(None, description="Height of the token grid; default: L / w, or √L when neither is given.")
    w: PosInt | None = Field(None, description="Width of the token grid; default: L / h, or √L when neither is given.")


class WindowAttentionParams(OpParams):
    """Parameters of (shifted) window attention with a relative position bias over an h×w token grid (Swin)."""

    heads: PosInt = Field(description="Number of attention heads; the token width D must divide by it.")
    window: Pair = Field(7, description="Window size: an int or [height, width]; the grid is padded to whole windows.")
    shift: NonNegPair = Field(
        0, description="Cyclic shift of the grid before windowing (Swin's odd blocks: window // 2): an int or "
        "[height, width], smaller than the window; none along a side the window covers whole."
    )
    bias: StrictBool = Field(True, description="Whether the q/k/v and output projections add a learned bias.")
    dropout: Prob = Field(0.0, description="Dropout on the attention weights during training.")
    h: PosInt | None = Field(None, description="Height of the token grid; default: L / w, or √L when neither is given.")
    w: PosInt | None = Field(None, description="Width of the token grid; default: L / h, or √L when neither is given.")


# --------------------------------------------------------------------------------------------------
# The spec document


Ident = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


# --------------------------------------------------------------------------------------------------
# Weight initialisation: the ``init:`` section of a spec or block (applied by :mod:`archspec.init`)

#: The schemes an ``init`` rule may name: ``torch.nn.init``'s functions, plus ``default`` (keep what
#: the PyTorch module's constructor did).
InitSchemeName = Literal[
    "default", "zeros", "ones", "constant", "normal", "trunc_normal", "uniform",
    "kaiming_normal", "kaiming_uniform", "xavier_normal", "xavier_uniform",
]
#: The arguments each scheme takes (all optional except ``constant``'s ``value``; an omitted one
#: takes ``torch.nn.init``'s default).
INIT_SCHEME_ARGS: dict[str, tuple[str, ...]] = {
    "default": (), "zeros": (), "ones": (), "constant": ("value",),
    "normal": ("mean", "std", "scale"), "trunc_normal": ("mean", "std", "a", "b", "scale"),
    "uniform": ("a", "b", "scale"),
    "kaiming_normal": ("a", "mode", "nonlinearity"), "kaiming_uniform": ("a", "mode", "nonlinearity"),
    "xavier_normal": ("gain",), "xavier_uniform": ("gain",),
}
#: Default bounds of ``uniform`` and ``trunc_normal`` (those of ``torch.nn.init``).
INIT_BOUNDS: dict[str, tuple[float, float]] = {"uniform": (0.0, 1.0), "trunc_normal": (-2.0, 2.0)}
Nonlinearity = Literal[
    "linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
    "sigmoid", "tanh", "relu", "leaky_relu", "selu",
]
Fan = Literal["fan_in", "fan_out"]
NonNegFinite = Annotated[StrictFloat, Field(ge=0, allow_inf_nan=False)] | Annotated[StrictInt, Field(ge=0)]
PosFinite = Annotated[StrictFloat, Field(gt=0, allow_inf_nan=False)] | Annotated[StrictInt, Field(gt=0)]


def _init_kind(value: Any) -> str:
    """Which form of an initialisation value was written (tags contain '[' so error locations skip them)."""
    if isinstance(value, str):
        return "str[scheme]"
    if isinstance(value, (int, float)):  # a bool too: refused as "not a number"
        return "number[constant]"
    return "mapping[scheme]"


class InitScheme(_Model):
    """How one tensor starts: a scheme of ``torch.nn.init`` with its arguments (``torch.nn.init``'s defaults
    where omitted), e.g. ``{scheme: kaiming_normal, mode: fan_out, nonlinearity: relu}``."""

    scheme: InitSchemeName = Field(
        description="default (what the PyTorch module's constructor did), zeros, ones, constant, normal, trunc_normal, "
        "uniform, kaiming_normal, kaiming_uniform, xavier_normal or xavier_uniform (torch.nn.init's function of that name)."
    )
    value: Finite | None = Field(None, description="constant: the value of every element (required).")
    mean: Finite | None = Field(None, description="normal, trunc_normal: the mean (default 0).")
    std: NonNegFinite | None = Field(None, description="normal, trunc_normal: the standard deviation (default 1).")
    a: Finite | None = Field(
        None, description="uniform: the lower bound (default 0); trunc_normal: the lower cut-off (default -2, absolute, "
        "not in units of std); kaiming_*: the negative slope of leaky_relu (default 0)."
    )
    b: Finite | None = Field(
        None, description="uniform: the upper bound (default 1); trunc_normal: the upper cut-off (default 2, absolute)."
    )
    mode: Fan | None = Field(
        None, description="kaiming_*: fan_in (default; preserves the forward variance) or fan_out (the backward's)."
    )
    nonlinearity: Nonlinearity | None = Field(
        None, description="kaiming_*: the activation after the layer, for the gain (default leaky_relu, with slope 'a').",
    )
    gain: PosFinite | None = Field(None, description="xavier_*: the scaling factor (default 1).")
    scale: Fan | None = Field(
        None, description="normal, trunc_normal: divide std by √fan_in or √fan_out of the tensor; uniform: divide a and b "
        "by it (EfficientNet's linear: {scheme: uniform, a: -1, b: 1, scale: fan_out}). Default: no scaling.",
    )

    @field_validator("value", "mean", "std", "a", "b", "mode", "nonlinearity", "gain", "scale")
    @classmethod
    def _applies(cls, v: Any, info: ValidationInfo) -> Any:
        if v is None or "scheme" not in info.data:  # scheme invalid: already reported
            return v
        scheme = info.data["scheme"]
        if scheme is None:
            raise PydanticCustomError("init_arg", "'{arg}' is an argument of a scheme: give 'scheme' too",
                                      {"arg": info.field_name})
        takes = INIT_SCHEME_ARGS[scheme]
        if info.field_name not in takes:
            raise PydanticCustomError(
                "init_arg", "scheme '{scheme}' takes no '{arg}' ({takes})",
                {"scheme": scheme, "arg": info.field_name,
                 "takes": "arguments: " + ", ".join(takes) if takes else "it has no arguments"})
        return v

    @model_validator(mode="after")
    def _complete(self) -> InitScheme:
        if self.scheme == "constant" and self.value is None:
            raise PydanticCustomError("init_value", "scheme 'constant' needs 'value' (e.g. {scheme: constant, value: 0})")
        if self.scheme in INIT_BOUNDS:
            low, high = INIT_BOUNDS[self.scheme]
            a = low if self.a is None else self.a
            b = high if self.b is None else self.b
            if a > b or (a == b and self.scheme == "trunc_normal"):
                raise PydanticCustomError("init_bounds", "scheme '{scheme}': the bounds must satisfy a {op} b, got a = {a}, "
                                          "b = {b}", {"scheme": self.scheme, "a": a, "b": b,
                                                      "op": "<" if self.scheme == "trunc_normal" else "≤"})
        return self


#: One tensor's initialisation as written: a scheme mapping, a scheme name (``zeros``,
#: ``kaiming_normal`` with its defaults) or a number (a constant).
InitValue = Annotated[
    Annotated[InitScheme, Tag("mapping[scheme]")] | Annotated[InitSchemeName, Tag("str[scheme]")]
    | Annotated[Finite, Tag("number[constant]")],
    Discriminator(_init_kind),
]


class InitRule(InitScheme):
    """The initialisation of one op kind or of the nodes a pattern matches: ``weight`` and ``bias`` separately,
    or a scheme for the weight alone (``{scheme: xavier_uniform}``).  A tensor a rule does not mention is left to
    the rules below it (see the README, "Initialisation")."""

    scheme: InitSchemeName | None = Field(  # type: ignore[assignment]
        None, description="Shorthand for `weight: {scheme: ...}`: the weight's scheme, with its arguments beside it."
    )
    weight: InitValue | None = Field(
        None, description="The weight (for layer-scale: its factors; prelu: its slopes): a scheme mapping, a scheme "
        "name, or a number (a constant)."
    )
    bias: InitValue | None = Field(None, description="The bias: a scheme mapping, a scheme name, or a number (a constant).")

    @field_validator("weight")
    @classmethod
    def _one_weight(cls, v: Any, info: ValidationInfo) -> Any:
        if v is not None and info.data.get("scheme") is not None:
            raise PydanticCustomError("init_weight", "give either 'scheme' (the weight's scheme) or 'weight', not both")
        return v

    @model_validator(mode="after")
    def _something(self) -> InitRule:
        if self.scheme is None and self.weight is None and self.bias is None:
            raise PydanticCustomError("init_empty", "an init rule needs 'weight', 'bias' or 'scheme'")
        return self


def _rule_kind(value: Any) -> str:
    return "mapping[rule]" if _init_kind(value) == "mapping[scheme]" else _init_kind(value)


#: A rule as written: a mapping (:class:`InitRule`), or a scheme name or number for the weight alone.
InitRuleValue = Annotated[
    Annotated[InitRule, Tag("mapping[rule]")] | Annotated[InitSchemeName, Tag("str[scheme]")]
    | Annotated[Finite, Tag("number[constant]")],
    Discriminator(_rule_kind),
]


class InitSpec(_Model):
    """The ``init:`` section: how the weights start, as a named preset plus rules per op kind and per node.

    Precedence, for each tensor: a ``nodes`` rule, then an ``ops`` rule, then the ``preset``, then PyTorch's
    default; at each of these, the spec's own section comes before a block's, and an enclosing block's before
    the blocks inside it (README, "Initialisation")."""

    preset: str | None = Field(
        None, description="A named preset, e.g. torchvision-resnet or d2l-xavier ('archspec' README lists them); "
        "pytorch keeps every module's default."
    )
    ops: dict[str, InitRuleValue] = Field(
        default_factory=dict,
        description="Rules per op kind (conv, linear, bn, ...; '*' = every op with weights), e.g. "
        "{conv: {scheme: kaiming_normal, mode: fan_out, nonlinearity: relu}, bn: {weight: 1, bias: 0}}.",
    )
    nodes: dict[str, InitRuleValue] = Field(
        default_factory=dict,
        description="Rules per node or block path, shell-style patterns over dotted names ('*' also matches dots; in a "
        "block, relative to the instance), e.g. {'*.bn3': {weight: 0}}; a pattern naming a block covers its nodes.",
    )


def _section_kind(value: Any) -> str:
    return "str[preset]" if isinstance(value, str) else "mapping[init]"


#: An ``init:`` value: a preset's name, or a section with ``preset``, ``ops`` and ``nodes``.
InitSection = Annotated[
    Annotated[InitSpec, Tag("mapping[init]")] | Annotated[str, Tag("str[preset]")], Discriminator(_section_kind)
]


class BlockDef(_Model):
    """A reusable, parameterised block: a body of layers (or a graph) with named parameters."""

    description: str | None = Field(None, description="What the block is, for docs and diagrams.")
    params: dict[Ident, Any] = Field(
        default_factory=dict,
        description="Parameter names with their defaults; `null` makes a parameter required.",
    )
    inputs: Annotated[list[Ident], Field(min_length=1)] | None = Field(
        None,
        description="Names of the block's inputs, e.g. [low, skip]: inside the body each is a node (readable "
        "with `from` and in merges; `input` is the first), and an instance binds them in this order with "
        "`from: [a, b]` or by name with `from: {low: a, skip: b}`. Default: one unnamed input, `input`.",
    )
    layers: list[Any] | None = Field(None, description="The body as a sequence of items, run in order.")
    graph: dict[Ident, Any] | None = Field(
        None, description="The body as named nodes with explicit inputs (`from`); an alternative to `layers`."
    )
    output: Ident | None = Field(None, description="With `graph` (or named layers): the node whose value is returned.")
    init: InitSection | None = Field(
        None, description="How the weights of this block's nodes start (a preset name, or preset/ops/nodes rules; "
        "patterns relative to the instance); overrides the init of the file defining the block."
    )


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
    init: InitSection | None = Field(
        None, description="How the weights start: a preset name (e.g. torchvision-resnet, d2l-xavier, pytorch) or "
        "{preset, ops, nodes}; in a block library, the default of its blocks. Omitted: PyTorch's default."
    )

    #: Located YAML definition of every visible block (set by validation; may point into imported files).
    _block_sources: dict[str, Any] = PrivateAttr(default_factory=dict)
    #: Block name → (``init`` model, located ``init`` value, its span) of the file defining it, for blocks
    #: imported from a file with a top-level ``init`` (set by :func:`archspec.imports.load_document`).
    _file_inits: dict[str, tuple[Any, Any, Any]] = PrivateAttr(default_factory=dict)

    def block_source(self, name: str) -> Any:
        """The located YAML definition (a :class:`~archspec.source.LocMap`) of block ``name``."""
        return self._block_sources[name]

    def block_file_init(self, name: str) -> tuple[Any, Any, Any] | None:
        """The top-level ``init`` (model, located value, span) of the imported file defining block ``name``, or None."""
        return self._file_inits.get(name)
