"""The ``pixel-shuffle`` op: C×H×W → (C/r²)×(H·r)×(W·r), lowered to ``torch.nn.PixelShuffle``.

Importing this module registers the op (archspec imports it through the ``archspec.ops`` entry point
the first time a spec names an op archspec does not know).  torch is imported only in ``lower``.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, StrictInt

from archspec.ops import Op, OpParams, Shape, ShapeError, fmt_shape, register_op


class PixelShuffleParams(OpParams):
    """Parameters of pixel shuffle."""

    factor: StrictInt = Field(gt=0, le=64, description="Upscaling factor r: channels shrink by r², height and width grow by r.")


@register_op
class PixelShuffle(Op):
    """Rearranges channels into space (sub-pixel convolution upsampling)."""

    name = "pixel-shuffle"
    params_model = PixelShuffleParams
    summary = "Rearrange C×H×W to (C/r²)×(H·r)×(W·r) (torch.nn.PixelShuffle)."
    category = "shape"

    def infer(self, p: PixelShuffleParams, inputs: list[Shape]) -> Shape:
        shape = inputs[0]
        if len(shape) != 3:
            raise ShapeError(f"pixel-shuffle needs a C×H×W input, got {fmt_shape(shape)}")
        c, h, w = shape
        r2 = p.factor * p.factor
        if c % r2:
            raise ShapeError(
                f"pixel-shuffle with factor {p.factor} needs channels divisible by {r2}, got {c}",
                hint=f"make the previous layer output a multiple of {r2} channels",
            )
        return (c // r2, h * p.factor, w * p.factor)

    def label(self, p: PixelShuffleParams) -> str:
        return f"pixel-shuffle ×{p.factor}"

    def lower(self, p: PixelShuffleParams, inputs: list[Shape], out: Shape) -> Any:
        from torch import nn

        return nn.PixelShuffle(p.factor)
