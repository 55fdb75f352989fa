"""Initialisation (issue 19): the ``init:`` section, presets, precedence, and each source's own initialisation.

The shipped specs are compared with their sources layer by layer: torchvision's constructors (through the
specs' key mappings) and the d2l networks of ``reference_nets.py`` with d2l's ``init_cnn`` applied as the
book's training code applies it.  For every pair of tensors: constants must be equal exactly; random
tensors must agree in mean and standard deviation within sampling error, in kurtosis (uniform 1.8 vs
normal 3) for large ones, and stay within the source's range where its values are bounded.
"""

from __future__ import annotations

import math
import re
import sys
import textwrap
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import archspec
import tv
from archspec.cli import main
from archspec.emit_python import emit_python
from archspec.errors import ArchspecError
from archspec.init import (
    PRESETS,
    WEIGHTED_OPS,
    TensorInit,
    _node_tensors,
    _rule_tensors,
    preset_spec,
    state_digest,
    torch_call,
)
from archspec.mapping import KeyMapping, export_state_dict
from conftest import ROOT, SPECS
from helpers_emit import load_emitted
from reference_nets import REFERENCE_NETS
from weight_transfer import execution_order

pytestmark = pytest.mark.usefixtures("one_thread")  # why: see conftest.one_thread


IMAGENET = SPECS / "imagenet"


def write(tmp: Path, name: str, text: str) -> Path:
    path = tmp / name
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


def kurtosis(x: torch.Tensor) -> float:
    d = x - x.mean()
    return float((d**4).mean() / (d**2).mean() ** 2)


#: Statistics are computed on at most this many evenly spaced elements of a tensor (its values are i.i.d.).
SAMPLE = 1 << 16


def same_distribution(a: torch.Tensor, b: torch.Tensor, where: str) -> None:
    """``a`` (archspec) is drawn as ``b`` (the source) is: exact constants, else matching statistics."""
    assert a.shape == b.shape, where
    if not b.is_floating_point():
        return  # num_batches_tracked
    full_x, full_y = a.detach().flatten(), b.detach().flatten()
    if bool(full_y.min() == full_y.max()):
        assert torch.equal(a, b), f"{where}: the source starts at the constant {full_y[0].item()}, archspec at " \
                                  f"mean {full_x.mean().item():.4g} std {full_x.std().item() if a.numel() > 1 else 0:.4g}"
        return
    assert bool(full_x.min() < full_x.max()), f"{where}: the source draws random values, archspec a constant"
    pick = torch.arange(SAMPLE) * (full_x.numel() // SAMPLE) if full_x.numel() > SAMPLE else slice(None)
    x, y = full_x[pick].double(), full_y[pick].double()
    n = x.numel()
    sx, sy = x.std().item(), y.std().item()
    assert abs(sx / sy - 1) <= 5 / math.sqrt(n) + 0.02, f"{where}: std {sx:.5g}, the source's {sy:.5g} (n={n})"
    assert abs(x.mean().item() - y.mean().item()) <= 5 * sy * math.sqrt(2 / n) + 1e-12, \
        f"{where}: mean {x.mean().item():.5g}, the source's {y.mean().item():.5g} (std {sy:.4g}, n={n})"
    if n >= 4096:
        kx, ky = kurtosis(x), kurtosis(y)
        assert abs(kx - ky) <= 0.5, f"{where}: kurtosis {kx:.2f}, the source's {ky:.2f} (uniform 1.8, normal 3)"
        if ky < 2.4:  # bounded (uniform-like): archspec's values must stay within the source's range
            bound = full_y.abs().max().item()
            assert full_x.abs().max().item() <= bound * (1 + 20 / full_y.numel()), f"{where}: beyond ±{bound:.4g}"


def compare_state(ours: dict[str, torch.Tensor], theirs: dict[str, torch.Tensor], name: str) -> int:
    assert ours.keys() == theirs.keys(), name
    for key, b in theirs.items():
        same_distribution(ours[key], b, f"{name}: {key}")
    return len(theirs)


# --------------------------------------------------------------------------------------------------
# The spec language: parsing, validation, precedence


NET = """
archspec: 1
name: net
input: [3, 8, 8]
{init}
blocks:
  unit:
{block_init}
    layers: [conv: {{out: 4, k: 3, pad: 1, bias: false}}, bn, relu, conv: {{out: 4, k: 3, pad: 1}}, bn]
layers: [unit, unit, gap, flatten, linear: {{out: 10}}]
"""


def schemes(source: Any, **kwargs: Any) -> dict[str, str]:
    """node.tensor → the chosen scheme (only tensors that do not keep PyTorch's default)."""
    graph = archspec.analyze(source, **kwargs)
    return {f"{n}.{t}": ti.describe() for n, d in graph.init.items() for t, ti in d.items()}


def test_no_init_keeps_pytorch_defaults(tmp_path: Path) -> None:
    assert schemes(write(tmp_path, "n.yaml", NET.format(init="", block_init=""))) == {}


def test_preset_op_rules_and_node_patterns(tmp_path: Path) -> None:
    init = """init:
      preset: torchvision-resnet
      ops:
        linear: {weight: {scheme: normal, std: 0.01}, bias: 0}
        bn: {bias: 0.5}
      nodes:
        "*.bn2": {weight: 0}
        unit2: {bias: 0.25}
        "unit2.conv*": {scheme: xavier_uniform, gain: 2}
        "unit1.conv*": {weight: ones}
        unit1.conv2: {weight: zeros}"""
    got = schemes(write(tmp_path, "n.yaml", NET.format(init=textwrap.dedent(init), block_init="")))
    assert got["unit1.conv1.weight"] == "ones" and got["unit1.conv2.weight"] == "zeros"  # the last pattern written wins
    assert "unit1.conv2.bias" not in got                                               # the preset: conv bias default
    assert got["unit1.bn1.weight"] == "constant(1)" and got["unit1.bn1.bias"] == "constant(0.5)"  # preset; op > preset
    assert got["unit1.bn2.weight"] == "constant(0)" and got["unit1.bn2.bias"] == "constant(0.5)"  # node > op, per tensor
    assert got["unit2.conv1.weight"] == "xavier_uniform(gain=2)"
    # a pattern naming a block covers its nodes: here their biases
    assert got["unit2.conv2.bias"] == got["unit2.bn1.bias"] == got["unit2.bn2.bias"] == "constant(0.25)"
    assert got["unit2.bn1.weight"] == "constant(1)" and got["unit2.bn2.weight"] == "constant(0)"
    assert got["linear1.weight"] == "normal(std=0.01)" and got["linear1.bias"] == "constant(0)"


def test_block_init_is_relative_to_the_instance_and_below_the_spec(tmp_path: Path) -> None:
    block = "    init: {preset: d2l-xavier, nodes: {bn2: {weight: 0}, conv1: zeros}}"
    got = schemes(write(tmp_path, "n.yaml", NET.format(init="", block_init=block)))
    assert got["unit1.bn2.weight"] == got["unit2.bn2.weight"] == "constant(0)"
    assert got["unit1.conv1.weight"] == "zeros" and got["unit1.conv2.weight"] == "xavier_uniform"
    assert "linear1.weight" not in got  # outside the block: the block's init does not reach it
    # the spec's own rules come first at each level: its node pattern beats the block's, its preset the block's
    spec_init = 'init: {preset: pytorch, nodes: {"unit1.bn2": {weight: 1}}}'
    got = schemes(write(tmp_path, "m.yaml", NET.format(init=spec_init, block_init=block)))
    assert got["unit1.bn2.weight"] == "constant(1)" and got["unit2.bn2.weight"] == "constant(0)"
    assert got["unit1.conv1.weight"] == "zeros"               # the block's node rule beats the spec's preset
    assert "unit1.conv2.weight" not in got                     # the spec's preset (pytorch) beats the block's


def test_library_init_is_inherited_through_imports_and_overridden_by_the_spec(tmp_path: Path) -> None:
    write(tmp_path, "lib.yaml", """
        archspec: 1
        init: {preset: torchvision-vgg, nodes: {bn1: {bias: 0.5}, "*.bn9": zeros}}
        blocks:
          cbr:
            params: {c: null}
            layers: [conv: {out: $c, k: 3, pad: 1}, bn, relu]
        """)
    spec = """
        archspec: 1
        name: net
        imports: [lib.yaml]
        input: [3, 8, 8]
        {init}
        layers: [cbr: {{c: 4}}, cbr: {{c: 8}}, conv: {{out: 2, k: 1}}]
        """
    graph = archspec.analyze(write(tmp_path, "a.yaml", spec.format(init="")))
    assert graph.warnings == []  # a library's own patterns may target blocks a spec does not use: not reported
    got = schemes(graph)
    assert got["cbr1.conv1.weight"] == "kaiming_normal(mode=fan_out, nonlinearity=relu)"
    assert got["cbr2.conv1.bias"] == "constant(0)" and got["cbr2.bn1.weight"] == "constant(1)"
    assert got["cbr2.bn1.bias"] == "constant(0.5)"  # the library's pattern, relative to the instance
    assert not any(k.startswith("conv1.") for k in got)  # the spec's own node: the library's init does not reach it
    got = schemes(write(tmp_path, "b.yaml", spec.format(init="init: d2l-xavier")))
    assert got["cbr1.conv1.weight"] == got["conv1.weight"] == "xavier_uniform"
    assert "cbr1.conv1.bias" not in got and "cbr1.bn1.weight" not in got  # d2l-xavier: everything else default


def test_rules_and_presets_validate() -> None:
    for name, preset in PRESETS.items():
        spec = preset_spec(name)
        assert set(spec.ops) <= {*WEIGHTED_OPS, "*"}, name
        assert spec.ops["*"] is not None and preset.description and preset.source


ERRORS = [
    ("init: torchvision-resnt", "E-INIT", 4, 7, "unknown preset 'torchvision-resnt'", "did you mean 'torchvision-resnet'"),
    ("init: {preset: nope}", "E-INIT", 4, 16, "unknown preset 'nope'", "presets: pytorch, d2l-xavier"),
    ("init: {ops: {convv: zeros}}", "E-INIT", 4, 14, "unknown op kind 'convv'", "did you mean 'conv'"),
    ("init: {ops: {relu: zeros}}", "E-INIT", 4, 14, "op 'relu' has no weights", "op kinds with weights"),
    ("init: {ops: {conv: {scheme: kaiming}}}", "E-TYPE", 4, 29, "input should be 'default'", None),
    ("init: {ops: {conv: {scheme: normal, mode: fan_in}}}", "E-TYPE", 4, 43, "scheme 'normal' takes no 'mode'", None),
    ("init: {ops: {conv: {scheme: constant}}}", "E-TYPE", 4, 20, "scheme 'constant' needs 'value'", None),
    ("init: {ops: {conv: {scheme: uniform, a: 1, b: 0}}}", "E-TYPE", 4, 20, "the bounds must satisfy a ≤ b", None),
    ("init: {ops: {conv: {scheme: zeros, weight: 1}}}", "E-TYPE", 4, 44, "either 'scheme'", None),
    ("init: {ops: {bn: {weight: {scheme: kaiming_normal}}}}", "E-INIT", 4, 18, "reads the fans of a tensor", None),
    ("init: {conv: zeros}", "E-UNKNOWN-KEY", 4, 8, "unknown key 'conv' in init", "allowed: preset, ops, nodes"),
]


@pytest.mark.parametrize(("init", "code", "line", "col", "message", "hint"), ERRORS, ids=[e[0] for e in ERRORS])
def test_errors_are_located(tmp_path: Path, init: str, code: str, line: int, col: int, message: str,
                            hint: str | None) -> None:
    path = write(tmp_path, "n.yaml", NET.format(init=init, block_init=""))
    with pytest.raises(ArchspecError) as exc:
        archspec.analyze(path)
    [d] = exc.value.errors
    assert (d.code, d.span.path, d.span.line, d.span.column) == (code, str(path), line, col), d.format()
    assert message in d.message, d.format()
    if hint is not None:
        assert hint in (d.hint or ""), d.format()


def test_pattern_matching_nothing_is_a_warning(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    block = "    init: {nodes: {bn9: zeros}}"
    path = write(tmp_path, "n.yaml", NET.format(init='init: {nodes: {"*.bn3": {weight: 0}, "*.bn2": {weight: 0}}}',
                                                block_init=block))
    graph = archspec.analyze(path)
    found = sorted((d.code, d.span.line, d.message) for d in graph.warnings)
    assert found == [("W-INIT-UNUSED", 4, "init pattern '*.bn3' matches no node with weights"),
                     ("W-INIT-UNUSED", 7, "init pattern 'bn9' matches no node with weights")]
    assert main(["validate", str(path)]) == 0
    assert "warning: init pattern '*.bn3'" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------------
# Schemes: each is torch.nn.init's function with the same arguments (the same numbers, given the same seed)


CASES: list[tuple[dict[str, Any], Any]] = [
    ({"scheme": "zeros"}, lambda t: nn.init.zeros_(t)),
    ({"scheme": "ones"}, lambda t: nn.init.ones_(t)),
    ({"scheme": "constant", "value": 0.25}, lambda t: nn.init.constant_(t, 0.25)),
    ({"scheme": "normal", "mean": 1, "std": 0.5}, lambda t: nn.init.normal_(t, 1, 0.5)),
    ({"scheme": "trunc_normal", "std": 2, "a": -1, "b": 0.5}, lambda t: nn.init.trunc_normal_(t, std=2, a=-1, b=0.5)),
    ({"scheme": "uniform", "a": -3, "b": 2}, lambda t: nn.init.uniform_(t, -3, 2)),
    ({"scheme": "kaiming_normal", "mode": "fan_out", "nonlinearity": "relu"},
     lambda t: nn.init.kaiming_normal_(t, mode="fan_out", nonlinearity="relu")),
    ({"scheme": "kaiming_uniform", "a": 0.1}, lambda t: nn.init.kaiming_uniform_(t, a=0.1)),
    ({"scheme": "xavier_normal", "gain": 2}, lambda t: nn.init.xavier_normal_(t, gain=2)),
    ({"scheme": "xavier_uniform"}, lambda t: nn.init.xavier_uniform_(t)),
    ({"scheme": "uniform", "a": -1, "b": 1, "scale": "fan_out"}, lambda t: nn.init.uniform_(t, -1 / 8, 1 / 8)),
    ({"scheme": "normal", "std": 3, "scale": "fan_in"}, lambda t: nn.init.normal_(t, 0, 3 / math.sqrt(4 * 9))),
]


@pytest.mark.parametrize(("rule", "reference"), CASES, ids=[c[0]["scheme"] + str(len(c[0])) for c in CASES])
def test_scheme_is_torch_nn_init(rule: dict[str, Any], reference: Any) -> None:
    from archspec.init import _choice
    from archspec.models import InitScheme

    ti = _choice(InitScheme.model_validate(rule), "test", None)
    ours, theirs = torch.empty(64, 4, 3, 3), torch.empty(64, 4, 3, 3)  # fan_in 36, fan_out 576 (√576 = 24)
    if rule.get("scale") == "fan_out":
        ours, theirs = torch.empty(64, 36), torch.empty(64, 36)  # a linear: fan_out = 64
    call = torch_call(ti, tuple(ours.shape))
    assert call is not None
    fn, args, kwargs = call
    torch.manual_seed(7)
    getattr(nn.init, fn)(ours, *args, **kwargs)
    torch.manual_seed(7)
    reference(theirs)
    assert torch.equal(ours, theirs)
    if rule["scheme"] == "trunc_normal":
        assert ours.min() >= -1 and ours.max() <= 0.5  # the cut-offs are absolute


def test_default_scheme_does_nothing() -> None:
    assert torch_call(TensorInit("default", (), "test"), (4, 4)) is None


# --------------------------------------------------------------------------------------------------
# The shipped specs start as their sources do


#: The preset every tensor of each shipped spec takes, where it is not PyTorch's default (None: all default).
SHIPPED: dict[str, str | None] = {
    "lenet": "d2l-xavier", "alexnet": None, "vgg11": "d2l-xavier", "nin": "d2l-xavier", "googlenet": "d2l-xavier",
    "resnet18": "d2l-xavier", "densenet": None, "unet": None,
    "imagenet/alexnet": None, "imagenet/vgg11": "torchvision-vgg", "imagenet/vgg11_bn": "torchvision-vgg",
    "imagenet/vgg16": "torchvision-vgg", "imagenet/googlenet": "torchvision-googlenet",
    "imagenet/inception_v3": "torchvision-inception", "imagenet/resnet18": "torchvision-resnet",
    "imagenet/resnet34": "torchvision-resnet", "imagenet/resnet50": "torchvision-resnet",
    "imagenet/resnet101": "torchvision-resnet", "imagenet/resnext50_32x4d": "torchvision-resnet",
    "imagenet/wide_resnet50_2": "torchvision-resnet", "imagenet/densenet121": "torchvision-densenet",
    "imagenet/densenet161": "torchvision-densenet", "imagenet/mobilenet_v2": "torchvision-mobilenet",
    "imagenet/mobilenet_v3_small": "torchvision-mobilenet", "imagenet/mobilenet_v3_large": "torchvision-mobilenet",
    "imagenet/efficientnet_b0": "torchvision-efficientnet", "imagenet/mnasnet1_0": "torchvision-mnasnet",
    "imagenet/regnet_y_400mf": "torchvision-regnet", "imagenet/shufflenet_v2_x1_0": None,
    "imagenet/squeezenet1_0": "torchvision-squeezenet", "imagenet/squeezenet1_1": "torchvision-squeezenet",
    "imagenet/convnext_tiny": "torchvision-convnext", "imagenet/vit_b_16": "torchvision-vit",
    "imagenet/swin_t": "torchvision-swin",
}
#: Tensors set by a node rule instead of the preset: (spec, node) → the rule.
NODE_RULES = {("imagenet/squeezenet1_0", "head.classifier.conv1"), ("imagenet/squeezenet1_1", "head.classifier.conv1"),
              ("imagenet/vit_b_16", "heads.linear1")}


def _shipped() -> list[str]:
    names = [p.stem for p in sorted(SPECS.glob("*.yaml"))]
    names += [f"imagenet/{p.stem}" for p in sorted(IMAGENET.glob("*.yaml")) if not p.stem.endswith("_family")]
    return names


@pytest.mark.parametrize("name", _shipped())
def test_every_shipped_spec_sets_its_sources_init(name: str) -> None:
    assert name in SHIPPED, f"{name}: a new spec — add the preset its source's initialisation needs to SHIPPED"
    graph = archspec.analyze(SPECS / f"{name}.yaml")
    assert not graph.warnings
    preset = SHIPPED[name]
    if preset is None:
        assert graph.init == {}
        return
    rules = preset_spec(preset).ops
    covered = 0
    for node in graph.nodes.values():
        chosen = graph.init.get(node.name, {})
        if (name, node.name) in NODE_RULES:
            assert not chosen["weight"].origin.startswith("preset"), node.name
            continue
        assert all(ti.origin.startswith(f"preset {preset}: ") for ti in chosen.values()), (node.name, chosen)
        # every tensor the preset sets for this op kind is set (the tensors the node has)
        named = _rule_tensors(rules[node.op], "", None) if node.op in rules else {}
        expected = {t for t, ti in named.items() if ti.scheme != "default" and t in _node_tensors(node)}
        assert expected <= set(chosen), (node.name, expected, chosen)
        covered += bool(expected)
    assert covered, "the preset sets no tensor of this network"


#: torchvision models compared at full size: spec name → (torchvision constructor arguments, overrides).
TORCHVISION: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "resnet18": ({}, {}),
    "resnet50": ({}, {}),
    "densenet121": ({}, {}),
    "mobilenet_v2": ({}, {}),
    "googlenet": ({"aux_logits": False, "init_weights": True}, {}),
    "alexnet": ({"num_classes": 10}, {"classes": 10}),
    "vgg11_bn": ({"num_classes": 10}, {"classes": 10}),
    "mobilenet_v3_small": ({}, {}),
    "efficientnet_b0": ({}, {}),
    "mnasnet1_0": ({}, {}),
    "regnet_y_400mf": ({}, {}),
    "shufflenet_v2_x1_0": ({}, {}),
    "squeezenet1_1": ({}, {}),
}


@pytest.mark.parametrize("name", TORCHVISION)
def test_imagenet_spec_starts_as_torchvision_leaves_it(name: str) -> None:
    kwargs, overrides = TORCHVISION[name]
    spec = IMAGENET / f"{name}.yaml"
    ours = archspec.build(spec, seed=0, **overrides)
    torch.manual_seed(1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        theirs = tv.build(name, **kwargs)
    compare_state(export_state_dict(spec, ours.state_dict(), **overrides), theirs.state_dict(), name)


def test_comparison_fails_for_another_initialisation(tmp_path: Path) -> None:
    """The check above can fail: MobileNetV2 with PyTorch's defaults is not torchvision's MobileNetV2."""
    text = (IMAGENET / "mobilenet_v2.yaml").read_text(encoding="utf-8")
    assert "\ninit: torchvision-mobilenet" in text
    spec = tmp_path / "mobilenet_v2.yaml"
    spec.write_text(text.replace("\ninit: torchvision-mobilenet", "\ninit: pytorch"), encoding="utf-8")
    ours = archspec.build(spec, seed=0)
    theirs = tv.build("mobilenet_v2")
    mapping = KeyMapping.load(IMAGENET / "mappings" / "mobilenet_v2.yaml")
    with pytest.raises(AssertionError, match=r"features\.0\.0\.weight: std"):
        compare_state(export_state_dict(spec, ours.state_dict(), mapping=mapping), theirs.state_dict(), "mobilenet_v2")


def test_convnext_blocks_start_as_torchvision_leaves_them(tmp_path: Path) -> None:
    """ConvNeXt's family blocks with convnext_tiny's init, at a small size (torchvision's ConvNeXt takes any stages)."""
    spec = write(tmp_path, "small.yaml", """
        archspec: 1
        name: small
        imports: [archspec:imagenet/convnext_family.yaml]
        input: [3, 32, 32]
        init: torchvision-convnext
        layers:
          - sequence:
              - sequence: [conv: {out: 16, k: 4, stride: 4}, layernorm: {eps: 1e-6}]
                name: stem
              - sequence: [cnblock: {}, cnblock: {}]
                name: stage1
              - downsample: {out: 32}
              - sequence: [cnblock: {}]
                name: stage2
            name: features
          - gap
          - sequence: [layernorm: {eps: 1e-6}, flatten, linear: {out: 10}]
            name: classifier
        """)
    convnext = tv.torchvision_models().convnext
    theirs = convnext.ConvNeXt([convnext.CNBlockConfig(16, 32, 2), convnext.CNBlockConfig(32, None, 1)], num_classes=10)
    ours = archspec.build(spec, seed=0)
    mapping = KeyMapping.load(IMAGENET / "mappings" / "convnext.yaml")
    assert compare_state(export_state_dict(spec, ours.state_dict(), mapping=mapping), theirs.state_dict(), "convnext") > 20


def test_vit_starts_as_torchvision_leaves_it() -> None:
    """vit_b_16.yaml at a small size (its parameters set the depth and widths), against torchvision's class."""
    sizes = {"patch": 16, "layers": 2, "heads": 2, "hidden": 32, "mlp": 64, "classes": 10}
    spec = IMAGENET / "vit_b_16.yaml"
    ours = archspec.build(spec, input_shape=(3, 32, 32), seed=0, **sizes)
    vit = tv.torchvision_models().vision_transformer
    theirs = vit.VisionTransformer(image_size=32, patch_size=16, num_layers=2, num_heads=2, hidden_dim=32, mlp_dim=64,
                                   num_classes=10)
    compare_state(export_state_dict(spec, ours.state_dict(), **sizes), theirs.state_dict(), "vit")


def compare_by_shape(ours: dict[str, torch.Tensor], theirs: dict[str, torch.Tensor], name: str) -> int:
    """Pair tensors without a key mapping: each of the source's with the next unused one of the same shape and
    tensor name (``weight``, ``bias``, ...); within such a class every tensor is drawn alike."""
    left = list(ours.items())
    for key, b in theirs.items():
        i = next(i for i, (k, a) in enumerate(left) if a.shape == b.shape and k.rsplit(".", 1)[-1] == key.rsplit(".", 1)[-1])
        same_distribution(left.pop(i)[1], b, f"{name}: {key}")
    assert not left, [k for k, _ in left]
    return len(theirs)


def test_swin_blocks_start_as_torchvision_leaves_them(tmp_path: Path) -> None:
    """swin_t.yaml's blocks with its init at a small size, against torchvision's SwinTransformer class."""
    spec = write(tmp_path, "small.yaml", """
        archspec: 1
        name: small
        imports: [archspec:imagenet/swin_t.yaml]
        input: [3, 56, 56]
        init: torchvision-swin
        layers:
          - sequence:
              - sequence: [conv: {out: 8, k: 4, stride: 4}, to-tokens, layernorm: {}]
                name: stem
              - sequence: [swin_block: {heads: 1}, swin_block: {heads: 1, shifted: true}]
                name: stage1
              - patch_merging: {}
              - sequence: [swin_block: {heads: 2}, swin_block: {heads: 2, shifted: true}]
                name: stage2
            name: features
          - layernorm: {}
          - mean-tokens
          - linear: {out: 10}
        """)
    swin = tv.torchvision_models().swin_transformer
    theirs = swin.SwinTransformer(patch_size=[4, 4], embed_dim=8, depths=[2, 2], num_heads=[1, 2], window_size=[7, 7],
                                  num_classes=10)
    ours = archspec.build(spec, seed=0)
    assert compare_by_shape(ours.state_dict(), theirs.state_dict(), "swin") > 40


def test_inception_v3_starts_as_torchvision_leaves_it() -> None:
    """Inception v3 at full size (torchvision's class has no smaller configuration): std 0.1 truncated normal."""
    ours = archspec.build(IMAGENET / "inception_v3.yaml", seed=0, classes=10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        theirs = tv.build("inception_v3", aux_logits=False, init_weights=True, num_classes=10)
    sd = export_state_dict(IMAGENET / "inception_v3.yaml", ours.state_dict(), classes=10)
    compare_state(sd, theirs.state_dict(), "inception_v3")


def init_cnn(module: nn.Module) -> None:
    """d2l's ``init_cnn`` (d2l/torch.py, "Defined in :numref:`sec_lenet`"), verbatim."""
    if type(module) == nn.Linear or type(module) == nn.Conv2d:  # noqa: E721 - d2l's exact test
        nn.init.xavier_uniform_(module.weight)


#: How d2l's PyTorch training code initialises each network: ``model.apply_init([X], d2l.init_cnn)`` after a
#: forward pass has materialised the lazy layers (LeNet, VGG, NiN, GoogLeNet, ResNet), or only
#: ``self.net.apply(d2l.init_cnn)`` in the constructor (AlexNet, DenseNet), where the layers are still
#: ``LazyConv2d``/``LazyLinear``, so the exact type test fails and they keep PyTorch's default.
D2L_APPLIES_INIT_CNN = {"lenet": True, "alexnet": False, "vgg11": True, "nin": True, "googlenet": True,
                        "resnet18": True, "densenet": False}


def test_init_cnn_on_lazy_layers_does_nothing() -> None:
    """Why d2l's AlexNet and DenseNet train from PyTorch's defaults: init_cnn skips layers that are still lazy."""
    net = nn.Sequential(nn.LazyConv2d(4, 3), nn.Flatten(), nn.LazyLinear(2))
    net.apply(init_cnn)  # the constructor's call: both layers are still lazy
    torch.manual_seed(0)
    net(torch.zeros(1, 1, 6, 6))  # materialises them with reset_parameters(): PyTorch's default
    torch.manual_seed(0)
    plain = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.Linear(64, 2))
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), plain.state_dict().values(), strict=True))


@pytest.mark.parametrize("name", ["lenet", "nin", "googlenet", "resnet18", "densenet"])
def test_seed_starts_as_d2l_trains_it(name: str) -> None:
    ctor, shape, _ = REFERENCE_NETS[name]
    torch.manual_seed(1)
    ref = ctor()
    if D2L_APPLIES_INIT_CNN[name]:
        ref.apply(init_cnn)
    ours = archspec.build(SPECS / f"{name}.yaml", seed=0)
    x = torch.zeros(1, *shape)
    pairs = list(zip(execution_order(ref, x), execution_order(ours, x), strict=True))
    for r, o in pairs:
        for tensor, value in dict(r.module.named_parameters(recurse=False)).items():
            same_distribution(getattr(o.module, tensor), value, f"{name}: {r.qualname}.{tensor} / {o.qualname}")
    assert any(isinstance(r.module, nn.Conv2d) for r, _ in pairs)


# --------------------------------------------------------------------------------------------------
# Reproducibility, --emit-python, the CLI, summary and render


def test_seed_makes_a_build_reproducible() -> None:
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    a = archspec.build("imagenet/resnet18", seed=5)
    assert torch.equal(torch.random.get_rng_state(), before)  # the global generator is left as it was
    b = archspec.build("imagenet/resnet18", seed=5)
    c = archspec.build("imagenet/resnet18", seed=6)
    assert state_digest(a) == state_digest(b) != state_digest(c)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
    with pytest.raises(ValueError, match="seed"):
        archspec.build("lenet", seed=-1)


@pytest.mark.parametrize("name", ["imagenet/mobilenet_v2", "imagenet/squeezenet1_1", "googlenet"])
def test_emitted_source_initialises_as_build(name: str, tmp_path: Path) -> None:
    graph = archspec.analyze(SPECS / f"{name}.yaml")
    text = emit_python(graph)
    assert "nn.init." in text
    _, cls = load_emitted(text, tmp_path / f"emitted_{name.replace('/', '_')}.py")
    torch.manual_seed(3)
    ejected = cls()
    built = archspec.build(graph, seed=3)
    # The same statements in the same order: equal seeds give the very same weights.
    assert state_digest(ejected) == state_digest(built)
    if name == "imagenet/squeezenet1_1":  # the node rule is written out too
        assert "nn.init.normal_(self.classifier.conv1.weight, mean=0, std=0.01)" in text


def test_emitted_init_lines_read_like_torchvision() -> None:
    text = emit_python(archspec.analyze(IMAGENET / "resnet18.yaml"))
    assert ("nn.init.kaiming_normal_(self.residual_add1.conv1.weight, mode='fan_out', nonlinearity='relu')  "
            "# preset torchvision-resnet: conv") in text
    assert "nn.init.constant_(self.residual_add1.bn1.weight, 1)" in text


def test_cli_seed_prints_a_digest(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["build", "lenet", "--seed", "4"]) == 0
    first = capsys.readouterr().err
    assert main(["build", "lenet", "--seed", "4", "--json"]) == 0
    again = capsys.readouterr().err
    digest = state_digest(archspec.build("lenet", seed=4))
    assert f"initial weights (seed 4): state_dict sha256 {digest}" in first and digest in again
    assert main(["build", "lenet", "--seed", "5"]) == 0
    assert digest not in capsys.readouterr().err
    assert main(["build", "lenet", "--seed", "-3"]) == 2
    assert "--seed takes a whole number" in capsys.readouterr().err


def test_summary_and_render_show_the_scheme(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["summary", "imagenet/resnet18", "--init", "--depth", "2"]) == 0
    out = capsys.readouterr().out
    head = next(line for line in out.splitlines() if line.startswith("layer"))
    assert head.split()[-1] == "init"
    assert "weight kaiming_normal(mode=fan_out, nonlinearity=relu)" in out
    assert "weight constant(1); bias constant(0)" in out
    assert main(["summary", "imagenet/resnet18"]) == 0
    assert "kaiming" not in capsys.readouterr().out  # only on request
    assert main(["summary", "lenet", "--init", "--json"]) == 0
    import json

    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)["rows"]}
    assert rows["conv1"]["init"] == {"weight": "xavier_uniform", "bias": "default"} and "init" not in rows["sigmoid1"]
    assert main(["render", "imagenet/resnet18", "--init", "--format", "dot", "--depth", "all"]) == 0
    dot = capsys.readouterr().out
    assert "conv: weight kaiming_normal(fan_out, relu)" in dot and "bn: weight 1, bias 0" in dot
    assert main(["render", "imagenet/resnet18", "--format", "dot", "--depth", "all"]) == 0
    assert "kaiming" not in capsys.readouterr().out


def test_init_display_does_not_import_torch() -> None:
    """summary --init and render --init stay in the static pipeline."""
    import subprocess

    probe = ("import sys; from archspec.cli import main; s = main(sys.argv[1:]); "
             "print('torch' in sys.modules, s)")
    for argv in (["summary", "imagenet/resnet18", "--init"], ["render", "imagenet/resnet18", "--init", "--format", "dot"]):
        proc = subprocess.run([sys.executable, "-c", probe, *argv], capture_output=True, text=True, timeout=120)
        assert proc.stdout.strip().splitlines()[-1] == "False 0", (argv, proc.stderr[-2000:])


def test_readme_documents_the_presets_and_its_example_builds() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Initialisation", 1)[1].split("\n## ", 1)[0]
    for name in PRESETS:
        assert f"| `{name}` |" in section, name
    [example] = [b for b in re.findall(r"```yaml\n(.*?)```", section, flags=re.S) if "preset:" in b]
    spec = "archspec: 1\nname: net\ninput: [3, 8, 8]\n" + example + textwrap.dedent("""
        layers:
          - residual-add:
              body: [conv: {out: 3, k: 1}, bn, relu, conv: {out: 3, k: 1}, bn, relu, conv: {out: 3, k: 1}, bn]
          - flatten
          - linear: {out: 10}
            name: fc
        """)
    got = schemes(spec)
    assert got["residual_add1.bn3.weight"] == "constant(0)" and got["residual_add1.bn1.weight"] == "constant(1)"
    assert got["residual_add1.conv1.weight"] == "kaiming_normal(mode=fan_out, nonlinearity=relu)"
    assert got["fc.weight"] == "normal(std=0.01)" and got["fc.bias"] == "zeros"  # the node rule beats the op rule
