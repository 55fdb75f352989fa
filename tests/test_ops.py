"""Every built-in op: its static shape rule, parameter/buffer counts and MACs agree with the PyTorch module
it lowers to (archspec.testing.check_op), its errors are precise, and the ops added for the post-2017
families compute exactly what torchvision's code computes."""

from __future__ import annotations

import re
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from torch import nn
from torch.nn import functional as F

import archspec
import tv
from archspec import ArchspecError
from archspec.models import OpParams
from archspec.ops import BUILTIN_OPS, OPS, Conv, Counts, ShapeError, get_op
from archspec.testing import check_op, torch_macs
from conftest import ROOT
from helpers_models import assert_one_graph_in_train_and_eval, assert_same_in_eval_and_train

pytestmark = pytest.mark.usefixtures("two_threads")

Case = tuple[dict[str, Any], list[tuple[int, ...]]]

_ACT: list[Case] = [({}, [(3, 4, 5)]), ({}, [(7,)])]

#: Parameter sets and input shapes per op; every built-in op must have an entry (a new op without
#: one fails test_static_rules_agree_with_torch).
CASES: dict[str, list[Case]] = {
    "conv": [
        ({"out": 8, "k": 3, "pad": 1}, [(3, 9, 9)]),
        ({"out": 6, "k": [1, 3], "stride": 2, "groups": 3, "bias": False, "dilation": [1, 2]}, [(3, 11, 12)]),
        ({"out": 4, "k": 3, "pad": "same", "dilation": 2}, [(2, 7, 8)]),
        ({"out": 4, "k": 4, "pad": "same"}, [(2, 7, 8)]),
        ({"out": 4, "k": [3, 2], "stride": [1, 2], "pad": "valid"}, [(2, 5, 6)]),
    ],
    "linear": [({"out": 5}, [(7,)]), ({"out": 3, "bias": False}, [(4,)])],
    "maxpool": [
        ({"k": 3, "stride": 2, "pad": 1}, [(3, 9, 9)]),
        ({"k": 3, "stride": 2, "ceil_mode": True}, [(2, 8, 8)]),
        ({"k": [2, 3], "dilation": 2}, [(2, 9, 10)]),
    ],
    "avgpool": [
        ({"k": 2}, [(3, 8, 8)]),
        ({"k": 3, "stride": 2, "pad": 1, "ceil_mode": True, "count_include_pad": False}, [(2, 8, 7)]),
    ],
    "adaptive-avgpool": [({}, [(3, 5, 5)]), ({"size": [2, 3]}, [(3, 7, 8)])],
    "adaptive-maxpool": [({}, [(3, 5, 5)]), ({"size": 2}, [(3, 7, 8)])],
    "gap": [({}, [(4, 5, 6)])],
    "relu": _ACT, "relu6": _ACT, "sigmoid": _ACT, "tanh": _ACT, "silu": _ACT, "hardswish": _ACT,
    "hardsigmoid": _ACT, "mish": _ACT,
    "gelu": [*_ACT, ({"approximate": "tanh"}, [(3, 4, 4)])],
    "leaky-relu": [*_ACT, ({"slope": 0.2}, [(3, 4, 4)])],
    "softmax": [({}, [(3, 4, 4)]), ({"dim": -1}, [(5,)]), ({"dim": 2}, [(2, 3, 4)])],
    "hardtanh": [*_ACT, ({"min": 0, "max": 6}, [(3, 4, 4)]), ({"min": -0.5, "max": 2.5}, [(6,)])],
    "prelu": [({}, [(3, 4, 4)]), ({"per_channel": True, "init": 0.1}, [(3, 4, 4)]), ({"per_channel": True}, [(6,)])],
    "bn": [({}, [(3, 4, 4)]), ({"affine": False, "eps": 1e-3, "momentum": 0.01}, [(5,)])],
    "layernorm": [({}, [(3, 4, 4)]), ({"eps": 1e-6, "affine": False}, [(6,)]), ({}, [(8, 1, 1)]), ({}, [(5,)])],
    "groupnorm": [({"groups": 2}, [(4, 3, 3)]), ({"groups": 1, "affine": False}, [(3, 2, 2)]),
                  ({"groups": 3, "eps": 1e-3}, [(6,)]), ({"groups": 6}, [(6, 2, 3)])],
    "dropout": [({}, [(3, 4, 4)]), ({"p": 0.3}, [(5,)])],
    "stochastic-depth": [({"p": 0.5}, [(3, 4, 4)]), ({"p": 0.2, "mode": "batch"}, [(5,)]), ({"p": 1}, [(2, 2, 2)]),
                         ({"p": 0}, [(3, 2, 2)])],
    "flatten": [({}, [(3, 4, 5)])],
    "identity": [({}, [(3, 4, 5)]), ({}, [(4,)])],
    "add": [({}, [(3, 4, 4)] * 2), ({}, [(5,)] * 3)],
    "concat": [({}, [(3, 4, 4), (5, 4, 4)]), ({}, [(2,), (3,), (4,)])],
    "mul": [({}, [(3, 4, 4), (3, 1, 1)]), ({}, [(3, 1, 1), (3, 4, 4)]), ({}, [(5,), (5,), (1,)]),
            ({}, [(1, 4, 1), (3, 1, 5)]), ({}, [(2, 3, 3)] * 2)],
    "conv-transpose": [
        ({"out": 4, "k": 2, "stride": 2}, [(6, 5, 5)]),
        ({"out": 6, "k": [3, 2], "stride": [2, 3], "pad": 1, "output_pad": [1, 2], "groups": 2, "bias": False},
         [(4, 5, 6)]),
        ({"out": 2, "k": 3, "dilation": 2, "output_pad": 1}, [(2, 4, 4)]),
        ({"out": 3, "k": 1}, [(3, 1, 1)]),
    ],
    "upsample": [
        ({"scale": 2}, [(3, 4, 5)]),
        ({"scale": [2, 3], "mode": "bilinear", "align_corners": True}, [(2, 3, 4)]),
        ({"size": [7, 9], "mode": "bilinear"}, [(2, 4, 4)]),
        ({"size": 3}, [(2, 5, 5)]),
    ],
    "slice": [({"start": 0, "end": 2}, [(5, 3, 3)]), ({"start": -2}, [(5, 3, 3)]), ({"start": 1, "end": -1}, [(6,)]),
              ({"start": 4}, [(5, 1, 1)])],
    "channel-shuffle": [({"groups": 2}, [(6, 3, 3)]), ({"groups": 3}, [(6, 2, 2)]), ({"groups": 1}, [(4, 2, 2)])],
    "layer-scale": [({}, [(4, 3, 3)]), ({"init": 0.5}, [(5,)])],
    "channel-linear": [({"out": 5}, [(3, 4, 4)]), ({"out": 2, "bias": False}, [(4, 1, 1)])],
    # token sequences (L×D): the ops between images and tokens, a ViT's learned tensors, attention
    "to-tokens": [({}, [(6, 3, 4)]), ({}, [(5, 1, 1)])],
    "to-image": [({"h": 3, "w": 4}, [(12, 5)]), ({}, [(9, 2)]), ({"w": 2}, [(6, 3)]), ({"h": 1}, [(4, 3)])],
    "class-token": [({}, [(6, 8)]), ({}, [(1, 3)])],
    "pos-embedding": [({}, [(7, 8)]), ({"std": 0.5}, [(2, 3)])],
    "select-token": [({}, [(7, 8)]), ({"index": -1}, [(7, 8)]), ({"index": 3}, [(4, 2)])],
    "mean-tokens": [({}, [(7, 8)])],
    "attention": [({"heads": 2}, [(7, 8)]), ({"heads": 4, "bias": False, "dropout": 0.1}, [(5, 8)]),
                  ({"heads": 1}, [(1, 3)]), ({"heads": 3}, [(10, 12)])],
    "concat-features": [({}, [(5, 8), (5, 3)]), ({}, [(2, 1), (2, 2), (2, 3)])],
    "window-attention": [({"heads": 2, "window": 4}, [(64, 8)]), ({"heads": 2, "window": 4, "shift": 2}, [(64, 8)]),
                         ({"heads": 2, "window": [3, 4], "shift": [1, 2], "h": 5}, [(45, 8)]),
                         ({"heads": 1, "window": 7, "shift": 3, "bias": False, "dropout": 0.2}, [(16, 4)])],
    "merge-patches": [({}, [(16, 4)]), ({"h": 5}, [(35, 3)]), ({"w": 1}, [(3, 2)])],
}
_TOKEN_CASES: dict[str, list[Case]] = {  # ops on images or flat features that also work on tokens
    "linear": [({"out": 5}, [(6, 7)]), ({"out": 3, "bias": False}, [(1, 4)])],
    "layernorm": [({"eps": 1e-6}, [(5, 8)]), ({"affine": False}, [(3, 4)])],
    "layer-scale": [({"init": 0.1}, [(5, 8)])],
    "softmax": [({"dim": -1}, [(4, 6)]), ({}, [(4, 6)])],
    "gelu": [({}, [(4, 6)])], "relu": [({}, [(4, 6)])], "hardtanh": [({"min": 0, "max": 6}, [(4, 6)])],
    "dropout": [({"p": 0.2}, [(5, 8)])],
    "stochastic-depth": [({"p": 0.5}, [(5, 8)]), ({"p": 0.5, "mode": "batch"}, [(5, 8)])],
    "flatten": [({}, [(5, 8)])],
    "identity": [({}, [(5, 8)])],
    "slice": [({"start": 1}, [(7, 8)]), ({"end": -1}, [(7, 8)])],
    "add": [({}, [(5, 8)] * 2)],
    "mul": [({}, [(5, 8), (1, 8)]), ({}, [(5, 8), (5, 1)]), ({}, [(5, 8)] * 2)],
    "concat": [({}, [(1, 8), (6, 8)]), ({}, [(2, 3), (2, 3), (4, 3)])],
}
for _name, _cases in _TOKEN_CASES.items():
    CASES[_name] = [*CASES[_name], *_cases]


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel lengths")
@pytest.mark.parametrize("name", sorted(BUILTIN_OPS))
def test_static_rules_agree_with_torch(name: str) -> None:
    assert name in CASES, f"built-in op '{name}' has no case in tests/test_ops.py CASES: add some"
    assert CASES[name], name
    for params, shapes in CASES[name]:
        check_op(name, params, shapes)
        check_op(OPS[name], params, shapes, batch=3, seed=1)


def test_cases_name_only_builtin_ops() -> None:
    assert set(CASES) <= BUILTIN_OPS


def test_underscore_spelling_reaches_the_same_op() -> None:
    for name in BUILTIN_OPS:
        assert get_op(name.replace("-", "_")) is OPS[name]


def test_every_parameter_is_described_and_bounded() -> None:
    for name in BUILTIN_OPS:
        model = OPS[name].params_model
        assert issubclass(model, OpParams), name
        for field, info in model.model_fields.items():
            assert info.description, f"{name}.{field} has no description"
        with pytest.raises(ValidationError):
            model.model_validate({"no_such_parameter": 1})


def test_readme_documents_every_op_and_parameter() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Ops", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    for name in BUILTIN_OPS:
        row = next((r for r in rows if f"`{name}`" in r.split("|")[1]), None)
        assert row is not None, f"README's Ops table has no row for '{name}'"
        for param in OPS[name].param_names():
            assert f"`{param}`" in row.split("|")[2], f"README's row for '{name}' does not document '{param}'"


# ------------------------------------------------------------------ check_op itself can fail


class _WrongCount(Conv):
    def count(self, p: Any, inputs: list[tuple[int, ...]], out: tuple[int, ...]) -> Counts:
        c = super().count(p, inputs, out)
        return Counts(params=c.params + 1, buffers=c.buffers, macs=c.macs)


class _WrongShape(Conv):
    def infer(self, p: Any, inputs: list[tuple[int, ...]]) -> tuple[int, ...]:
        c, h, w = super().infer(p, inputs)
        return (c, h + 1, w)


class _WrongMacs(Conv):
    def count(self, p: Any, inputs: list[tuple[int, ...]], out: tuple[int, ...]) -> Counts:
        c = super().count(p, inputs, out)
        return Counts(params=c.params, buffers=c.buffers, macs=c.macs * 2)


class _WrongBuffers(Conv):
    def count(self, p: Any, inputs: list[tuple[int, ...]], out: tuple[int, ...]) -> Counts:
        c = super().count(p, inputs, out)
        return Counts(params=c.params, buffers=1, macs=c.macs)


@pytest.mark.parametrize(("op", "message"), [
    (_WrongCount(), "static parameter count 225 but the module has 224"),
    (_WrongShape(), r"static shape 8×10×9 but PyTorch gives 8×9×9"),
    (_WrongMacs(), r"static MACs 34,992 but PyTorch's conv/linear weights do 17,496 per sample"),
    (_WrongBuffers(), "static buffer count 1 but the module has 0"),
])
def test_check_op_reports_a_disagreement(op: Conv, message: str) -> None:
    with pytest.raises(AssertionError, match=message):
        check_op(op, {"out": 8, "k": 3, "pad": 1}, [(3, 9, 9)])


def test_check_op_refuses_wrong_arity_and_unknown_ops() -> None:
    with pytest.raises(AssertionError, match="merges two or more"):
        check_op("mul", {}, [(3, 4, 4)])
    with pytest.raises(AssertionError, match="takes 1 input"):
        check_op("relu", {}, [(3, 4, 4), (3, 4, 4)])
    with pytest.raises(AssertionError, match="no op named"):
        check_op("no-such-op", {}, [(3,)])
    with pytest.raises(ValidationError):
        check_op("conv", {"out": 0, "k": 3}, [(3, 4, 4)])
    with pytest.raises(ShapeError):
        check_op("conv", {"out": 2, "k": 5}, [(3, 4, 4)])


def test_check_op_skips_macs_only_when_asked() -> None:
    """An op whose MACs come from a module the hooks do not see is reported unless macs=False."""

    class Bilinear(Conv):
        name = "bilinear-demo"

        def lower(self, p: Any, inputs: list[tuple[int, ...]], out: tuple[int, ...]) -> nn.Module:
            conv = super().lower(p, inputs, out)

            class Wrapped(nn.Module):
                def __init__(self) -> None:
                    super().__init__()
                    self.weight = conv.weight
                    self.bias = conv.bias
                    self.stride, self.padding = conv.stride, conv.padding

                def forward(self, x: torch.Tensor) -> torch.Tensor:
                    return F.conv2d(x, self.weight, self.bias, self.stride, self.padding)

            return Wrapped()

    with pytest.raises(AssertionError, match="static MACs"):
        check_op(Bilinear(), {"out": 4, "k": 3, "pad": 1}, [(2, 5, 5)])
    assert check_op(Bilinear(), {"out": 4, "k": 3, "pad": 1}, [(2, 5, 5)], macs=False).shape == (4, 5, 5)


def test_torch_macs_counts_conv_transpose_and_channel_linear() -> None:
    ct = nn.ConvTranspose2d(4, 6, (3, 2), stride=2, groups=2)
    assert torch_macs(ct, torch.randn(2, 4, 5, 7)) == 4 * 3 * 3 * 2 * 5 * 7
    lin = nn.Linear(3, 5)
    assert torch_macs(lin, torch.randn(2, 3)) == 15


# ------------------------------------------------------------------ property tests


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    cin_per=st.integers(1, 3), groups=st.integers(1, 2), out_per=st.integers(1, 3),
    k=st.tuples(st.integers(1, 4), st.integers(1, 4)), stride=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    pad=st.tuples(st.integers(0, 3), st.integers(0, 3)), output_pad=st.tuples(st.integers(0, 2), st.integers(0, 2)),
    dilation=st.tuples(st.integers(1, 2), st.integers(1, 2)), h=st.integers(1, 6), w=st.integers(1, 6),
    bias=st.booleans(),
)
def test_conv_transpose_matches_torch_everywhere(cin_per: int, groups: int, out_per: int, k: tuple[int, int],
                                                 stride: tuple[int, int], pad: tuple[int, int],
                                                 output_pad: tuple[int, int], dilation: tuple[int, int],
                                                 h: int, w: int, bias: bool) -> None:
    """Valid statically ⇔ PyTorch gives a non-empty output; then the shape, parameters and MACs agree.

    (PyTorch raises for an output size below 1, except that a grouped transposed conv returns an
    empty tensor instead; archspec refuses both.)
    """
    cin, out = cin_per * groups, out_per * groups
    params = {"out": out, "k": list(k), "stride": list(stride), "pad": list(pad), "output_pad": list(output_pad),
              "dilation": list(dilation), "groups": groups, "bias": bias}
    try:
        check_op("conv-transpose", params, [(cin, h, w)], batch=1)
    except ShapeError:
        layer = nn.ConvTranspose2d(cin, out, k, stride, pad, output_pad, groups, bias, dilation)
        try:
            y = layer(torch.randn(1, cin, h, w))
        except RuntimeError:
            return
        assert y.numel() == 0, f"archspec refused a transposed conv PyTorch computes as {tuple(y.shape)}"


dims = st.sampled_from([1, 2, 3])


@settings(max_examples=80, deadline=None)
@given(shapes=st.lists(st.tuples(dims, dims, dims), min_size=2, max_size=3))
def test_mul_broadcasts_exactly_as_torch(shapes: list[tuple[int, int, int]]) -> None:
    try:
        expected = tuple(torch.broadcast_shapes(*[(2, *s) for s in shapes]))
    except RuntimeError:
        with pytest.raises(ShapeError, match="cannot multiply tensors of shapes"):
            check_op("mul", {}, shapes)
        return
    assert (2, *check_op("mul", {}, shapes).shape) == expected


@settings(max_examples=80, deadline=None)
@given(c=st.integers(1, 6), start=st.integers(-8, 8), end=st.one_of(st.none(), st.integers(-8, 8)))
def test_slice_takes_what_python_slicing_takes(c: int, start: int, end: int | None) -> None:
    """A valid slice is ``x[:, start:end]`` with Python's meaning; out-of-range or empty ones are errors."""
    taken = list(range(c))[start:end]
    in_range = -c <= start < c and (end is None or -c <= end <= c)
    params: dict[str, Any] = {"start": start} if end is None else {"start": start, "end": end}
    if not in_range or not taken:
        with pytest.raises(ShapeError, match=r"out of range|is empty"):
            check_op("slice", params, [(c, 2, 2)])
        return
    result = check_op("slice", params, [(c, 2, 2)])
    assert result.shape == (len(taken), 2, 2)
    x = torch.arange(c, dtype=torch.float32).reshape(1, c, 1, 1).expand(1, c, 2, 2)
    assert result.module(x)[0, :, 0, 0].tolist() == taken


@settings(max_examples=40, deadline=None)
@given(c=st.integers(1, 4), h=st.integers(1, 5), w=st.integers(1, 5), use_size=st.booleans(),
       a=st.integers(1, 4), b=st.integers(1, 4), bilinear=st.booleans())
def test_upsample_shapes_match_torch(c: int, h: int, w: int, use_size: bool, a: int, b: int, bilinear: bool) -> None:
    params: dict[str, Any] = {"size": [a * 2, b * 3]} if use_size else {"scale": [a, b]}
    params["mode"] = "bilinear" if bilinear else "nearest"
    result = check_op("upsample", params, [(c, h, w)])
    x = torch.randn(2, c, h, w)
    kw: dict[str, Any] = {"size": (a * 2, b * 3)} if use_size else {"scale_factor": (float(a), float(b))}
    expected = F.interpolate(x, mode=params["mode"], align_corners=False if bilinear else None, **kw)
    torch.testing.assert_close(result.module(x), expected, rtol=0, atol=0)


@pytest.mark.parametrize("c", [1, 2, 3, 4, 6, 8, 9])
@pytest.mark.parametrize("groups", [1, 2, 3, 4])
def test_divisibility_rules_match_torch(c: int, groups: int) -> None:
    """groupnorm and channel-shuffle are valid exactly when PyTorch accepts the channel count."""
    ok = c % groups == 0
    for name in ("groupnorm", "channel-shuffle"):
        if ok:
            check_op(name, {"groups": groups}, [(c, 2, 2)])
        else:
            with pytest.raises(ShapeError, match=f"{name} with groups={groups} needs channels divisible by it, got {c}"):
                check_op(name, {"groups": groups}, [(c, 2, 2)])
    if not ok:
        with pytest.raises(ValueError):
            nn.GroupNorm(groups, c)
        with pytest.raises(RuntimeError):
            nn.ChannelShuffle(groups)(torch.randn(1, c, 2, 2))


# ------------------------------------------------------------------ errors in specs

_ERRORS = [
    ("mul: [input, part]", "E-SHAPE", "cannot multiply tensors of shapes 16×8×8 * 8×8×8: their channels differ (16 and 8)"),
    ("mul: [input, flat]", "E-SHAPE", "cannot multiply flat and C×H×W tensors: 16×8×8 * 1024"),
    ("mul: [input]", "E-FROM", "'mul' merges two or more inputs, got 1"),
    ("upsample", "E-SHAPE", "upsample needs 'scale' or 'size'"),
    ("upsample: {scale: 2, size: 4}", "E-TYPE", "'size': give either 'scale' or 'size', not both"),
    ("upsample: {align_corners: true}", "E-TYPE", "'align_corners': 'align_corners' applies to mode: bilinear only"),
    ("upsample: {scale: 0}", "E-TYPE", "'scale'"),
    ("upsample: {scale: 2, mode: bicubic}", "E-TYPE", "'mode': input should be 'nearest' or 'bilinear'"),
    ("hardtanh: {min: 1, max: 0}", "E-TYPE", "'max': must be greater than min (1)"),
    ("slice: {start: 20}", "E-SHAPE", "slice start 20 is out of range for an input of 16 channels (16×8×8; valid: -16..15)"),
    ("slice: {start: -17}", "E-SHAPE", "slice start -17 is out of range"),
    ("slice: {end: 17}", "E-SHAPE", "slice end 17 is out of range for an input of 16 channels (16×8×8; valid: -16..16)"),
    ("slice: {start: 4, end: 2}", "E-SHAPE", "slice 4:2 of 16 channels is empty"),
    ("slice: {start: 4, end: -12}", "E-SHAPE", "slice 4:-12 of 16 channels is empty"),
    ("slice: {start: 1.5}", "E-TYPE", "'start'"),
    ("groupnorm", "E-MISSING", "missing required key 'groups'"),
    ("groupnorm: {groups: 3}", "E-SHAPE", "groupnorm with groups=3 needs channels divisible by it, got 16"),
    ("groupnorm: {groups: 0}", "E-TYPE", "'groups'"),
    ("channel-shuffle: {groups: 3}", "E-SHAPE", "channel-shuffle with groups=3 needs channels divisible by it, got 16"),
    ("conv-transpose: {out: 4, k: 2, stride: 2, output_pad: 2}", "E-SHAPE",
     "conv-transpose output_pad 2 must be smaller than the stride (2) or the dilation (1)"),
    ("conv-transpose: {out: 4, k: 1, pad: 5}", "E-SHAPE", "conv-transpose padding 5 removes the whole output height 8"),
    ("conv-transpose: {out: 4, k: 1, groups: 3}", "E-SHAPE", "needs input channels divisible by it, got 16"),
    ("conv-transpose: {out: 5, k: 1, groups: 2}", "E-SHAPE", "needs 'out' divisible by it, got 5"),
    ("conv-transpose: {out: 4, k: 2, pad: same}", "E-TYPE", "'pad'"),
    ("conv-transpose: {k: 2}", "E-MISSING", "missing required key 'out'"),
    ("stochastic-depth: {p: 1.5}", "E-TYPE", "'p': input should be less than or equal to 1"),
    ("stochastic-depth: {p: 0.1, mode: rows}", "E-TYPE", "'mode': input should be 'row' or 'batch'"),
    ("stochastic-depth", "E-MISSING", "missing required key 'p'"),
    ("layer-scale: {init: .inf}", "E-TYPE", "'init': input should be a finite number"),
    ("layernorm: {eps: 0}", "E-TYPE", "'eps'"),
    ("layernorm: {affine: 1}", "E-TYPE", "'affine'"),
    ("prelu: {per_channel: yes please}", "E-TYPE", "'per_channel'"),
    ("channel-linear: {out: 4}", "E-SHAPE", "channel-linear needs a C×H×W input, but the input is flat (1024 features)"),
    ("channel-shuffle: {groups: 2}", "E-SHAPE", "channel-shuffle needs a C×H×W input, but the input is flat"),
    ("upsample: {scale: 2}", "E-SHAPE", "upsample needs a C×H×W input, but the input is flat"),
]


@pytest.mark.parametrize(("item", "code", "message"), _ERRORS, ids=[e[0] for e in _ERRORS])
def test_errors_of_the_new_ops(item: str, code: str, message: str) -> None:
    flat_first = "needs a C×H×W input" in message
    text = ("archspec: 1\nname: t\ninput: [16, 8, 8]\ngraph:\n"
            "  part: {slice: {end: 8}, from: input}\n"
            "  flat: {flatten: {}, from: input}\n"
            f"  x: {{{item}}}\n" if item.startswith("mul") else
            "archspec: 1\nname: t\ninput: [16, 8, 8]\nlayers:\n" + ("  - flatten\n" if flat_first else "")
            + f"  - {item}\n")
    with pytest.raises(ArchspecError) as exc:
        archspec.analyze(text)
    diags = [d for d in exc.value.diagnostics if d.severity == "error"]
    assert len(diags) == 1, [d.message for d in diags]
    assert diags[0].code == code, diags[0]
    assert message in diags[0].message, diags[0].message
    assert diags[0].span is not None


# ------------------------------------------------------------------ equivalence with torchvision's code
# (torchvision's own functions and modules, imported through tests/tv.py)


def _lower(name: str, params: dict[str, Any], shape: tuple[int, ...]) -> nn.Module:
    return check_op(name, params, [shape]).module


def _load(model: nn.Module, reference: nn.Module, keys: dict[str, str]) -> None:
    """Load ``reference``'s weights into ``model``; ``keys`` maps model keys to reference keys."""
    ref = reference.state_dict()
    assert set(keys.values()) == set(ref), sorted(ref)
    model.load_state_dict({k: ref[v] for k, v in keys.items()}, strict=True)


def test_layernorm_over_channels_is_torchvisions_layernorm2d() -> None:
    ours = _lower("layernorm", {"eps": 1e-6}, (6, 5, 4))
    ref = tv.module("models.convnext").LayerNorm2d(6, eps=1e-6)
    with torch.no_grad():
        ref.weight.normal_()
        ref.bias.normal_()
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in ref.state_dict().items()}
    ours.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(3, 6, 5, 4)
    torch.testing.assert_close(ours(x), ref(x), rtol=0, atol=0)
    # and over the channels only: each position is normalised on its own
    y = ours(x).detach()
    manual = F.layer_norm(x.permute(0, 2, 3, 1), (6,), ref.weight, ref.bias, 1e-6).permute(0, 3, 1, 2)
    torch.testing.assert_close(y, manual, rtol=0, atol=0)


def test_layernorm_on_features_is_nn_layernorm() -> None:
    ours = _lower("layernorm", {"affine": False}, (7,))
    x = torch.randn(4, 7)
    torch.testing.assert_close(ours(x), F.layer_norm(x, (7,)), rtol=0, atol=0)
    assert not list(ours.parameters())


def test_groupnorm_is_f_group_norm() -> None:
    ours = _lower("groupnorm", {"groups": 3, "eps": 1e-3}, (6, 4, 4))
    with torch.no_grad():
        ours.weight.normal_()
        ours.bias.normal_()
    x = torch.randn(2, 6, 4, 4)
    torch.testing.assert_close(ours(x), F.group_norm(x, 3, ours.weight, ours.bias, 1e-3), rtol=0, atol=0)


@pytest.mark.parametrize(("c", "groups"), [(4, 2), (6, 3), (116, 2), (12, 4)])
def test_channel_shuffle_is_torchvisions(c: int, groups: int) -> None:
    ours = _lower("channel-shuffle", {"groups": groups}, (c, 3, 5))
    channel_shuffle = tv.module("models.shufflenetv2").channel_shuffle
    x = torch.randn(2, c, 3, 5)
    torch.testing.assert_close(ours(x), channel_shuffle(x, groups), rtol=0, atol=0)
    torch.testing.assert_close(ours(x), nn.ChannelShuffle(groups)(x), rtol=0, atol=0)
    # channels-last memory (which torchvision's view would refuse) is shuffled the same way
    xl = x.contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(ours(xl), channel_shuffle(x, groups), rtol=0, atol=0)


def test_two_slices_are_chunk_and_concat_restores() -> None:
    x = torch.randn(2, 10, 3, 3)
    first = _lower("slice", {"end": 5}, (10, 3, 3))
    second = _lower("slice", {"start": 5}, (10, 3, 3))
    a, b = x.chunk(2, dim=1)
    assert torch.equal(first(x), a) and torch.equal(second(x), b)
    assert torch.equal(torch.cat((first(x), second(x)), 1), x)
    tail = _lower("slice", {"start": -3}, (10, 3, 3))
    assert torch.equal(tail(x), x[:, -3:])


@pytest.mark.parametrize("mode", ["row", "batch"])
def test_stochastic_depth_is_torchvisions(mode: str) -> None:
    sd = _lower("stochastic-depth", {"p": 0.4, "mode": mode}, (3, 2, 2))
    stochastic_depth = tv.module("ops").stochastic_depth
    x = torch.randn(64, 3, 2, 2)
    sd.eval()
    assert sd(x) is x  # the identity in eval mode, as torchvision's
    sd.train()
    for seed in range(5):
        torch.manual_seed(seed)
        got = sd(x)
        torch.manual_seed(seed)
        torch.testing.assert_close(got, stochastic_depth(x, 0.4, mode, True), rtol=0, atol=0)
    torch.manual_seed(0)
    got = sd(x)
    kept = [bool(got[i].abs().sum() > 0) for i in range(64)]
    for i, keep in enumerate(kept):
        torch.testing.assert_close(got[i], x[i] / 0.6 if keep else torch.zeros_like(x[i]))
    if mode == "row":
        assert 0 < sum(kept) < 64  # samples are dropped independently
    else:
        assert len(set(kept)) == 1  # the whole batch at once
    never = _lower("stochastic-depth", {"p": 0}, (3,)).train()
    assert torch.equal(never(x[:, :, 0, 0]), x[:, :, 0, 0])
    always = _lower("stochastic-depth", {"p": 1}, (3, 2, 2)).train()
    assert torch.equal(always(x), torch.zeros_like(x))


def test_layer_scale_has_torchvisions_parameter() -> None:
    ls = _lower("layer-scale", {"init": 1e-6}, (8, 3, 3))
    sd = ls.state_dict()
    assert list(sd) == ["layer_scale"] and sd["layer_scale"].shape == (8, 1, 1)
    assert torch.equal(sd["layer_scale"], torch.ones(8, 1, 1) * 1e-6)
    flat = _lower("layer-scale", {"init": 0.5}, (5,))
    assert flat.layer_scale.shape == (5,)
    x = torch.randn(2, 5)
    torch.testing.assert_close(flat(x), x * 0.5)


def test_channel_linear_is_linear_on_channels_and_a_1x1_conv() -> None:
    lin = _lower("channel-linear", {"out": 7}, (4, 3, 5))
    assert {k: tuple(v.shape) for k, v in lin.state_dict().items()} == {"weight": (7, 4), "bias": (7,)}
    permute = tv.module("ops.misc").Permute
    x = torch.randn(2, 4, 3, 5)
    ref = permute([0, 3, 1, 2])(F.linear(permute([0, 2, 3, 1])(x), lin.weight, lin.bias))
    torch.testing.assert_close(lin(x), ref, rtol=0, atol=0)
    conv = F.conv2d(x, lin.weight[:, :, None, None], lin.bias)
    torch.testing.assert_close(lin(x), conv, rtol=1e-5, atol=1e-6)


def test_conv_transpose_and_upsample_are_torch_layers() -> None:
    up = _lower("conv-transpose", {"out": 3, "k": 2, "stride": 2}, (6, 4, 4))
    assert isinstance(up, nn.ConvTranspose2d) and up.weight.shape == (6, 3, 2, 2)
    x = torch.randn(2, 6, 4, 4)
    torch.testing.assert_close(up(x), F.conv_transpose2d(x, up.weight, up.bias, stride=2), rtol=0, atol=0)
    bil = _lower("upsample", {"scale": 2, "mode": "bilinear", "align_corners": True}, (6, 4, 4))
    torch.testing.assert_close(bil(x), F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True))


def test_activations_are_torchs() -> None:
    x = torch.linspace(-8, 8, 97).reshape(1, 97)
    torch.testing.assert_close(_lower("hardsigmoid", {}, (97,))(x), F.hardsigmoid(x), rtol=0, atol=0)
    torch.testing.assert_close(_lower("mish", {}, (97,))(x), F.mish(x), rtol=0, atol=0)
    torch.testing.assert_close(_lower("hardtanh", {"min": 0, "max": 6}, (97,))(x), F.relu6(x), rtol=0, atol=0)
    prelu = _lower("prelu", {"per_channel": True, "init": 0.1}, (97,))
    assert prelu.weight.shape == (97,) and torch.allclose(prelu.weight, torch.full((97,), 0.1))
    torch.testing.assert_close(prelu(x), torch.where(x > 0, x, 0.1 * x))


# ------------------------------------------------------------------ the ops in specs, against torchvision's blocks


SE_SPEC = """\
archspec: 1
name: se_demo
input: [16, 7, 7]
blocks:
  se:
    params: {squeeze: null, c: "${in.c}"}
    graph:
      pool: {gap: {}, from: input}
      fc1: {conv: {out: $squeeze, k: 1}}
      act: {relu: {}}
      fc2: {conv: {out: $c, k: 1}}
      hard: {hardsigmoid: {}}
      out: {mul: [input, hard]}
    output: out
layers:
  - se: {squeeze: 8}
"""


def test_squeeze_excitation_block_is_torchvisions() -> None:
    model = archspec.build(SE_SPEC)
    assert "se1_out = x * se1_hard" in model.code  # the merge is an expression, not a module
    ref = tv.module("ops.misc").SqueezeExcitation(16, 8, scale_activation=nn.Hardsigmoid)
    _load(model, ref, {f"se1.{a}.{t}": f"{a}.{t}" for a in ("fc1", "fc2") for t in ("weight", "bias")})
    x = torch.randn(2, 16, 7, 7)
    torch.testing.assert_close(model(x), ref(x), rtol=0, atol=0)
    graph = archspec.analyze(SE_SPEC)
    assert graph.nodes["se1.out"].shape == (16, 7, 7) and graph.nodes["se1.out"].counts == Counts()


CONVNEXT_SPEC = """\
archspec: 1
name: cnblock_demo
input: [8, 9, 9]
blocks:
  cnblock:
    params: {c: "${in.c}", p: 0.0}
    layers:
      - residual-add:
          body:
            - conv: {out: $c, k: 7, pad: 3, groups: $c}
            - layernorm: {eps: 0.000001}
            - channel-linear: {out: "${4 * c}"}
            - gelu
            - channel-linear: {out: $c}
            - layer-scale: {init: 0.000001}
            - stochastic-depth: {p: $p}
          shortcut: identity
layers:
  - cnblock: {p: 0.1}
"""


def test_convnext_block_is_torchvisions_cnblock() -> None:
    model = archspec.build(CONVNEXT_SPEC)
    ref = tv.module("models.convnext").CNBlock(8, 1e-6, 0.1)
    with torch.no_grad():
        ref.layer_scale.normal_()  # a non-trivial scale, so the branch matters
    names = {"conv1": "block.0", "layernorm1": "block.2", "channel_linear1": "block.3", "channel_linear2": "block.5"}
    keys = {f"cnblock1.residual_add1.{a}.{t}": f"{b}.{t}" for a, b in names.items() for t in ("weight", "bias")}
    keys["cnblock1.residual_add1.layer_scale1.layer_scale"] = "layer_scale"
    _load(model, ref, keys)
    graph = archspec.analyze(CONVNEXT_SPEC)
    assert graph.total.params == sum(p.numel() for p in ref.parameters())
    # eval mode, and training mode, where stochastic depth drops the same samples
    assert_same_in_eval_and_train(model, ref, torch.randn(2, 8, 9, 9), rtol=1e-5, atol=1e-6, seed=3)


def _readme_shufflenet_example() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```yaml\n(.*?)```", text, flags=re.S)
    found = [b for b in blocks if "shuffle_unit" in b]
    assert len(found) == 1, "README should show one ShuffleNetV2 example (block 'shuffle_unit')"
    return found[0]


def test_readme_shufflenet_example_is_torchvisions_unit() -> None:
    spec = _readme_shufflenet_example()
    graph = archspec.analyze(spec, input_shape=(24, 6, 6))
    model = archspec.build(spec, input_shape=(24, 6, 6))
    # torchvision's ShuffleNetV2 unit with stride 1 (InvertedResidual), three times, then its SE block
    refs: list[nn.Module] = [tv.module("models.shufflenetv2").InvertedResidual(24, 24, 1) for _ in range(3)]
    refs.append(tv.module("ops.misc").SqueezeExcitation(24, 16, scale_activation=nn.Hardsigmoid))  # the example's 'se'
    for ref in refs:
        with torch.no_grad():
            for m in ref.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.running_mean.normal_()
                    m.running_var.uniform_(0.5, 2)
                    m.weight.normal_()
                    m.bias.normal_()
    ours = list(model.state_dict())
    merged = {f"{i}.{k}": v for i, r in enumerate(refs) for k, v in r.state_dict().items()}
    assert len(ours) == len(merged)
    assert [k.rsplit(".", 1)[1] for k in ours] == [k.rsplit(".", 1)[1] for k in merged]
    model.load_state_dict(dict(zip(ours, merged.values(), strict=True)), strict=True)
    reference = nn.Sequential(*refs).eval()
    model.eval()
    x = torch.randn(2, 24, 6, 6)
    torch.testing.assert_close(model(x), reference(x), rtol=1e-5, atol=1e-5)
    assert graph.total.params == sum(p.numel() for p in reference.parameters())


def test_new_ops_trace_without_graph_breaks() -> None:
    """torch.compile sees one graph through every new layer (torch._dynamo.explain; nothing is compiled)."""
    text = """\
archspec: 1
name: all_new
input: [8, 6, 6]
graph:
  a: {slice: {end: 4}, from: input}
  b: {slice: {start: 4}, from: input}
  bb: {conv: {out: 4, k: 3, pad: 1}, from: b}
  cat: {concat: [a, bb]}
  sh: {channel-shuffle: {groups: 2}}
  pool: {gap: {}}
  gate: {hardsigmoid: {}}
  se: {mul: [sh, gate]}
  ln: {layernorm: {}}
  lin: {channel-linear: {out: 16}}
  act: {mish: {}}
  clamp: {hardtanh: {min: 0, max: 6}}
  pr: {prelu: {per_channel: true}}
  ls: {layer-scale: {init: 0.1}}
  sd: {stochastic-depth: {p: 0.2}}
  up: {conv-transpose: {out: 8, k: 2, stride: 2}}
  gn: {groupnorm: {groups: 4}}
  us: {upsample: {scale: 2, mode: bilinear}}
output: us
"""
    assert_one_graph_in_train_and_eval(archspec.build(text), torch.randn(2, 8, 6, 6))


def test_mul_is_an_expression_everywhere_merges_are() -> None:
    """Every back end that writes merges as expressions knows mul: the generated forward, --emit-python, mappings."""
    from archspec import mapping
    from archspec.emit_python import emit_python
    from archspec.lower_torch import FUNCTIONAL_OPS

    assert set(FUNCTIONAL_OPS) == mapping._FUNCTIONAL == {n for n in BUILTIN_OPS if OPS[n].category == "merge"}
    graph = archspec.analyze(SE_SPEC)
    model = archspec.build(SE_SPEC)
    source = emit_python(graph)
    assert "x * " in source or "inp * " in source
    namespace: dict[str, Any] = {}
    exec(compile(source, "<emitted>", "exec"), namespace)  # archspec's own output for a spec written above
    emitted = namespace["SeDemo"]()
    emitted.load_state_dict(model.state_dict(), strict=True)
    x = torch.randn(2, 16, 7, 7)
    torch.testing.assert_close(emitted(x), model(x), rtol=0, atol=0)
