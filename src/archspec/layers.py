"""Small ``torch.nn`` modules that some built-in ops lower to, where ``torch.nn`` has no exact equivalent.

Each mirrors the torchvision code it replaces, so a torchvision ``state_dict`` loads into it and it
computes the same function:

* :class:`LayerNorm2d` — torchvision's ``LayerNorm2d`` (``models/convnext.py``): ``nn.LayerNorm``
  over the channels of an NCHW tensor, with ``nn.LayerNorm``'s ``weight``/``bias``.
* :class:`ChannelLinear` — ``nn.Linear`` over the channels of an NCHW tensor (ConvNeXt's
  ``Permute → Linear → Permute``), with ``nn.Linear``'s ``weight``/``bias``.
* :class:`ChannelShuffle` — ``channel_shuffle`` of torchvision's ``models/shufflenetv2.py``.
* :class:`ChannelSlice` — ``x[:, start:end]`` (a view; ShuffleNetV2's ``x.chunk(2, dim=1)``).
* :class:`LayerScale` — a learned per-channel factor, the ``layer_scale`` parameter of torchvision's
  ``CNBlock`` (shape ``(C, 1, 1)`` on images, ``(F,)`` on flat features).
* :class:`StochasticDepth` — ``torchvision.ops.StochasticDepth``.

Token sequences (N, L, D), as torchvision's ``VisionTransformer`` computes them:

* :class:`ToTokens` / :class:`ToImage` — NCHW → (N, H·W, C) and back.
* :class:`ClassToken` — prepends the learned ``class_token`` of shape ``(1, 1, D)``.
* :class:`PosEmbedding` — adds the learned ``pos_embedding`` of shape ``(1, L, D)``.
* :class:`SelectToken`, :class:`MeanTokens` — one token, or the mean of the tokens, as an (N, D) tensor.
* :class:`SelfAttention` — multi-head self-attention with ``nn.MultiheadAttention``'s parameters
  (``in_proj_weight``, ``in_proj_bias``, ``out_proj``), computed with ``scaled_dot_product_attention``.
* :class:`ConcatFeatures` — ``torch.cat`` on the last (feature) dimension.
* :class:`WindowAttention` — torchvision's ``ShiftedWindowAttention`` (Swin) on the tokens of an
  h×w grid, with its ``qkv``, ``proj``, ``relative_position_bias_table`` and ``relative_position_index``.
* :class:`MergePatches` — the token rearrangement of torchvision's ``PatchMerging`` (``_patch_merging_pad``).

Every constructor argument is kept as an attribute of the same name (as ``torch.nn`` modules do), so
a module can be re-created from its attributes.  This module imports torch only, never archspec.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

__all__ = ["ChannelLinear", "ChannelShuffle", "ChannelSlice", "ClassToken", "ConcatFeatures", "LayerNorm2d", "LayerScale",
           "MeanTokens", "MergePatches", "PosEmbedding", "SelectToken", "SelfAttention", "StochasticDepth", "ToImage",
           "ToTokens", "WindowAttention", "channel_shuffle", "relative_position_index", "shifted_window_mask",
           "stochastic_depth"]


class LayerNorm2d(nn.LayerNorm):
    """Layer norm over the channels at every position of an NCHW tensor (torchvision's ``LayerNorm2d``)."""

    def forward(self, x: Tensor) -> Tensor:
        """Normalise ``x`` (N, C, H, W) over C."""
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class ChannelLinear(nn.Linear):
    """``nn.Linear`` applied to the channels at every position of an NCHW tensor (a 1×1 conv with Linear's weights)."""

    def forward(self, x: Tensor) -> Tensor:
        """(N, in_features, H, W) → (N, out_features, H, W)."""
        return F.linear(x.permute(0, 2, 3, 1), self.weight, self.bias).permute(0, 3, 1, 2)


def channel_shuffle(x: Tensor, groups: int) -> Tensor:
    """torchvision's ``channel_shuffle``: interleave the channels of ``groups`` equal groups."""
    batchsize, num_channels, height, width = x.size()
    channels_per_group = num_channels // groups
    x = x.reshape(batchsize, groups, channels_per_group, height, width)
    x = torch.transpose(x, 1, 2).contiguous()
    return x.view(batchsize, num_channels, height, width)


class ChannelShuffle(nn.Module):
    """Channel shuffle (ShuffleNet), computed as torchvision's ``channel_shuffle``."""

    def __init__(self, groups: int) -> None:
        super().__init__()
        self.groups = groups

    def forward(self, x: Tensor) -> Tensor:
        """Shuffle the channels of ``x`` (N, C, H, W)."""
        return channel_shuffle(x, self.groups)

    def extra_repr(self) -> str:
        return f"groups={self.groups}"


class ChannelSlice(nn.Module):
    """The channels ``start`` to ``end`` (exclusive) of a tensor: ``x[:, start:end]`` (a view, like ``chunk``)."""

    def __init__(self, start: int, end: int) -> None:
        super().__init__()
        self.start = start
        self.end = end

    def forward(self, x: Tensor) -> Tensor:
        """``x[:, start:end]``."""
        return x[:, self.start:self.end]

    def extra_repr(self) -> str:
        return f"start={self.start}, end={self.end}"


class LayerScale(nn.Module):
    """A learned factor per channel: ``x * layer_scale`` with ``layer_scale`` of shape ``(C, 1, 1)`` or ``(F,)``.

    ``shape`` is the parameter's shape, ``init`` the value every factor starts at.  The parameter is
    named as in torchvision's ``CNBlock`` (``layer_scale``).
    """

    def __init__(self, shape: tuple[int, ...], init: float) -> None:
        super().__init__()
        self.shape = tuple(shape)
        self.init = init
        self.layer_scale = nn.Parameter(torch.full(self.shape, float(init)))

    def forward(self, x: Tensor) -> Tensor:
        """Scale ``x`` channel-wise."""
        return self.layer_scale * x

    def extra_repr(self) -> str:
        return f"shape={self.shape}, init={self.init}"


def stochastic_depth(input: Tensor, p: float, mode: str, training: bool = True) -> Tensor:
    """``torchvision.ops.stochastic_depth``: zero whole samples (``row``) or the whole batch (``batch``)
    with probability ``p`` during training, scaling the survivors by ``1 / (1 - p)``; the identity otherwise."""
    if p < 0.0 or p > 1.0:
        raise ValueError(f"drop probability has to be between 0 and 1, but got {p}")
    if mode not in ["batch", "row"]:
        raise ValueError(f"mode has to be either 'batch' or 'row', but got {mode}")
    if not training or p == 0.0:
        return input
    survival_rate = 1.0 - p
    if mode == "row":
        size = [input.shape[0]] + [1] * (input.ndim - 1)
    else:
        size = [1] * input.ndim
    noise = torch.empty(size, dtype=input.dtype, device=input.device)
    noise = noise.bernoulli_(survival_rate)
    if survival_rate > 0.0:
        noise.div_(survival_rate)
    return input * noise


class StochasticDepth(nn.Module):
    """``torchvision.ops.StochasticDepth``: randomly drops whole residual branches while training."""

    def __init__(self, p: float, mode: str) -> None:
        super().__init__()
        self.p = p
        self.mode = mode

    def forward(self, input: Tensor) -> Tensor:
        """``stochastic_depth(input, p, mode, self.training)``."""
        return stochastic_depth(input, self.p, self.mode, self.training)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(p={self.p}, mode={self.mode})"


# --------------------------------------------------------------------------------------------------
# Token sequences: (N, L, D) tensors of L tokens with D features each (vision transformers).


class ToTokens(nn.Module):
    """(N, C, H, W) → (N, H·W, C): every position becomes a token (torchvision ViT's ``reshape`` + ``permute``)."""

    def forward(self, x: Tensor) -> Tensor:
        """Row-major positions as tokens, channels as their features."""
        return x.flatten(2).transpose(1, 2)


class ToImage(nn.Module):
    """(N, h·w, D) → (N, D, h, w): the inverse of :class:`ToTokens`."""

    def __init__(self, h: int, w: int) -> None:
        super().__init__()
        self.h = h
        self.w = w

    def forward(self, x: Tensor) -> Tensor:
        """Tokens in row-major order back onto an h×w grid.

        Unflattened before the permute (torchvision ConvNeXt's ``Permute``), so that a contiguous
        sequence becomes a channels-last image whose strides are canonical even for a batch of one:
        ``transpose(1, 2).unflatten(2, …)`` gives the same values, but at batch 1 strides that the
        next conv does not recognise as channels-last, and it then copies its input to NCHW.
        """
        return x.unflatten(1, (self.h, self.w)).permute(0, 3, 1, 2)

    def extra_repr(self) -> str:
        return f"h={self.h}, w={self.w}"


class ClassToken(nn.Module):
    """Prepends a learned token: (N, L, D) → (N, L + 1, D); the parameter ``class_token`` (1, 1, D) starts at zero."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.class_token = nn.Parameter(torch.zeros(1, 1, dim))

    def forward(self, x: Tensor) -> Tensor:
        """``cat([class_token, x], dim=1)``, the class token repeated over the batch."""
        return torch.cat([self.class_token.expand(x.shape[0], -1, -1), x], dim=1)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class PosEmbedding(nn.Module):
    """Adds a learned position embedding ``pos_embedding`` of shape (1, L, D), drawn from N(0, std²)."""

    def __init__(self, length: int, dim: int, std: float = 0.02) -> None:
        super().__init__()
        self.length = length
        self.dim = dim
        self.std = std
        self.pos_embedding = nn.Parameter(torch.empty(1, length, dim).normal_(std=std))

    def forward(self, x: Tensor) -> Tensor:
        """``x + pos_embedding``."""
        return x + self.pos_embedding

    def extra_repr(self) -> str:
        return f"length={self.length}, dim={self.dim}, std={self.std}"


class SelectToken(nn.Module):
    """One token of each sequence: (N, L, D) → (N, D), ``x[:, index]`` (ViT's class token: index 0)."""

    def __init__(self, index: int) -> None:
        super().__init__()
        self.index = index

    def forward(self, x: Tensor) -> Tensor:
        """``x[:, index]``."""
        return x[:, self.index]

    def extra_repr(self) -> str:
        return f"index={self.index}"


class MeanTokens(nn.Module):
    """The mean over the tokens: (N, L, D) → (N, D)."""

    def forward(self, x: Tensor) -> Tensor:
        """``x.mean(dim=1)``."""
        return x.mean(dim=1)


class SelfAttention(nn.MultiheadAttention):
    """Multi-head self-attention over (N, L, D) tokens: what ``nn.MultiheadAttention(batch_first=True)``
    computes as ``attn(x, x, x, need_weights=False)[0]``, with its parameters and their initialisation.

    The parameters are ``nn.MultiheadAttention``'s (``in_proj_weight`` (3D, D), ``in_proj_bias`` (3D),
    ``out_proj.weight``, ``out_proj.bias``), so torchvision's ``self_attention`` weights load as they are.
    The forward is the packed q/k/v projection, ``F.scaled_dot_product_attention`` (PyTorch's fused
    kernels) and the output projection: the computation of ``nn.MultiheadAttention``'s own training path,
    written so that it holds no size check on the batch (``torch.export`` keeps the batch dynamic even
    when traced with one sample) and ``torch.compile`` traces it whole.
    """

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True) -> None:
        super().__init__(embed_dim, num_heads, dropout=dropout, bias=bias, batch_first=True)

    @property
    def bias(self) -> Tensor | None:
        """The input projections' bias (None when built with ``bias=False``)."""
        return self.in_proj_bias

    def forward(self, x: Tensor) -> Tensor:  # type: ignore[override]
        """Attend from every token to every token of ``x`` (N, L, D); no weights are returned."""
        n, length, d = x.shape
        qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias)
        q, k, v = qkv.view(n, length, 3, self.num_heads, d // self.num_heads).permute(2, 0, 3, 1, 4).unbind(0)
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)
        return F.linear(y.transpose(1, 2).reshape(n, length, d), self.out_proj.weight, self.out_proj.bias)


class ConcatFeatures(nn.Module):
    """Concatenation on the last dimension: the features of token sequences of the same length."""

    def forward(self, *xs: Tensor) -> Tensor:
        """``torch.cat(xs, dim=-1)``."""
        return torch.cat(xs, dim=-1)


# --------------------------------------------------------------------------------------------------
# Swin: windows of an h×w token grid.  A token sequence (N, h·w, C) in row-major order has the memory
# layout of torchvision's (N, h, w, C) Swin activations, so these modules only view it as a grid.


def relative_position_index(wh: int, ww: int) -> Tensor:
    """torchvision's ``relative_position_index``: for each pair of positions of a wh×ww window, the row of the
    bias table holding their offset, as one flat int64 tensor of (wh·ww)² entries."""
    coords = torch.stack(torch.meshgrid(torch.arange(wh), torch.arange(ww), indexing="ij")).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0)
    return ((rel[:, :, 0] + wh - 1) * (2 * ww - 1) + rel[:, :, 1] + ww - 1).flatten()


def shifted_window_mask(ph: int, pw: int, wh: int, ww: int, sh: int, sw: int, x: Tensor) -> Tensor:
    """torchvision's attention mask for shifted windows, (windows, wh·ww, wh·ww): 0 within a region, -100 across
    the regions the cyclic shift brought together (same dtype and device as ``x``)."""
    mask = x.new_zeros((ph, pw))
    count = 0
    for h0, h1 in ((0, -wh), (-wh, -sh), (-sh, None)):
        for w0, w1 in ((0, -ww), (-ww, -sw), (-sw, None)):
            mask[h0:h1, w0:w1] = count
            count += 1
    mask = mask.view(ph // wh, wh, pw // ww, ww).permute(0, 2, 1, 3).reshape(-1, wh * ww)
    mask = mask.unsqueeze(1) - mask.unsqueeze(2)
    return mask.masked_fill(mask != 0, -100.0)


class WindowAttention(nn.Module):
    """Multi-head self-attention inside windows of an h×w token grid, with a learned relative position bias and an
    optional cyclic shift: torchvision's ``ShiftedWindowAttention`` on (N, h·w, C) tokens in row-major order.

    The grid is padded at the bottom and right to whole windows; a shift is dropped along a side that one
    window covers.  Parameters and buffer as torchvision's: ``qkv`` and ``proj`` (``nn.Linear``),
    ``relative_position_bias_table`` ((2·wh−1)(2·ww−1), heads) and ``relative_position_index`` (int64).
    The products run in ``F.scaled_dot_product_attention`` with the bias (and the shift mask) as its mask.
    """

    def __init__(self, dim: int, num_heads: int, h: int, w: int, window_size: tuple[int, int] = (7, 7),
                 shift_size: tuple[int, int] = (0, 0), dropout: float = 0.0, bias: bool = True) -> None:
        super().__init__()
        self.dim = dim
        self.num_heads = num_heads
        self.h = h
        self.w = w
        self.window_size = tuple(window_size)
        self.shift_size = tuple(shift_size)
        self.dropout = dropout
        self.qkv = nn.Linear(dim, 3 * dim, bias=bias)
        self.proj = nn.Linear(dim, dim, bias=bias)
        wh, ww = self.window_size
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * wh - 1) * (2 * ww - 1), num_heads))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        self.register_buffer("relative_position_index", relative_position_index(wh, ww))

    @property
    def bias(self) -> Tensor | None:
        """The q/k/v projection's bias (None when built with ``bias=False``)."""
        return self.qkv.bias

    def forward(self, x: Tensor) -> Tensor:
        """Attend within each window of the grid ``x`` (N, h·w, C) holds; same shape out."""
        n, _, c = x.shape
        (wh, ww), heads = self.window_size, self.num_heads
        ph, pw = -(-self.h // wh) * wh, -(-self.w // ww) * ww  # padded to whole windows
        sh = self.shift_size[0] if wh < ph else 0
        sw = self.shift_size[1] if ww < pw else 0
        x = x.view(n, self.h, self.w, c)
        if (ph, pw) != (self.h, self.w):
            x = F.pad(x, (0, 0, 0, pw - self.w, 0, ph - self.h))
        if sh or sw:
            x = torch.roll(x, shifts=(-sh, -sw), dims=(1, 2))
        nh, nw, size = ph // wh, pw // ww, wh * ww
        qkv = self.qkv(x)  # per token, so before the windows are cut out (as many tokens, same values)
        qkv = qkv.view(n, nh, wh, nw, ww, 3, heads, c // heads).permute(5, 0, 1, 3, 6, 2, 4, 7)
        q, k, v = qkv.contiguous().view(3, n * nh * nw, heads, size, c // heads).unbind(0)  # (a copy, as reshape's)
        mask = self.relative_position_bias_table[self.relative_position_index].view(size, size, heads)
        mask = mask.permute(2, 0, 1).unsqueeze(0)  # 1, heads, size, size
        if sh or sw:
            windows = shifted_window_mask(ph, pw, wh, ww, sh, sw, x).unsqueeze(1)  # windows, 1, size, size
            mask = (mask + windows).repeat(n, 1, 1, 1)  # the windows of every sample, in q's order
        elif nh * nw == 1:  # one window: its bias spelled out for every sample, as broadcasting would ask whether n == 1
            mask = mask.contiguous().expand(n, -1, -1, -1)  # (see the crop below; a view, no copy per sample)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0)
        y = y.view(n, nh, nw, heads, wh, ww, c // heads).permute(0, 1, 4, 2, 5, 3, 6).contiguous().view(n, ph, pw, c)
        x = self.proj(y)
        if sh or sw:
            x = torch.roll(x, shifts=(sh, sw), dims=(1, 2))
        if (ph, pw) != (self.h, self.w):
            # cropped into a contiguous copy: reshaping the cropped view would ask whether n == 1, and an export traced
            # with one sample (torch.onnx.export at batch 1) would then fix its batch to 1
            x = x[:, : self.h, : self.w].clone(memory_format=torch.contiguous_format)
        return x.reshape(n, self.h * self.w, c)

    def extra_repr(self) -> str:
        return (f"dim={self.dim}, num_heads={self.num_heads}, grid=({self.h}, {self.w}), window_size={self.window_size}, "
                f"shift_size={self.shift_size}")


class MergePatches(nn.Module):
    """Each 2×2 neighbourhood of an h×w token grid becomes one token: (N, h·w, C) → (N, ⌈h/2⌉·⌈w/2⌉, 4C), the
    four in torchvision's ``_patch_merging_pad`` order ((0, 0), (1, 0), (0, 1), (1, 1)); odd sides are padded."""

    def __init__(self, h: int, w: int) -> None:
        super().__init__()
        self.h = h
        self.w = w

    def forward(self, x: Tensor) -> Tensor:
        """Rearrange the tokens of ``x`` (N, h·w, C)."""
        n, _, c = x.shape
        x = x.view(n, self.h, self.w, c)
        if self.h % 2 or self.w % 2:
            x = F.pad(x, (0, 0, 0, self.w % 2, 0, self.h % 2))
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], -1)
        return x.reshape(n, -1, 4 * c)

    def extra_repr(self) -> str:
        return f"h={self.h}, w={self.w}"
