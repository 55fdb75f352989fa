"""SqueezeNet, ResNeXt, Wide ResNet, Inception v3, RegNetY-400MF and MNASNet as archspec specs, checked
against torchvision.

The oracle is torchvision's own model code (``tests/tv.py``): each spec must have its parameter and
buffer counts, conv+linear MACs equal to the count over torchvision's modules (and so rounding to its
published GFLOPS), a key mapping under which its randomised state dict loads with ``strict=True``, and
the same outputs in eval mode and — with the same random numbers — in training mode (batch statistics,
dropout), where the running statistics must also come out the same.
"""

from __future__ import annotations

import itertools
import math
from collections import OrderedDict
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import archspec
import tv
from archspec import analyze
from archspec.errors import ArchspecError
from archspec.mapping import export_state_dict, import_state_dict
from archspec.testing import check_op
from conftest import ROOT
from helpers_models import (
    assert_counts_match,
    assert_family_library,
    assert_module_paths,
    assert_same_in_eval_and_train,
    family_member,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # why: see conftest.one_thread


IMAGENET = ROOT / "specs" / "imagenet"


#: name → (torchvision's parameter count, its weights enum entry, constructor arguments, test input size).
#: Inception v3's published count (27,161,264) includes the auxiliary classifier, which the spec leaves out.
MODELS: dict[str, tuple[int, str, dict[str, Any], int]] = {
    "squeezenet1_0": (1_248_424, "SqueezeNet1_0_Weights.IMAGENET1K_V1", {}, 64),
    "squeezenet1_1": (1_235_496, "SqueezeNet1_1_Weights.IMAGENET1K_V1", {}, 64),
    "resnext50_32x4d": (25_028_904, "ResNeXt50_32X4D_Weights.IMAGENET1K_V1", {}, 32),
    "wide_resnet50_2": (68_883_240, "Wide_ResNet50_2_Weights.IMAGENET1K_V1", {}, 32),
    "inception_v3": (23_834_568, "Inception_V3_Weights.IMAGENET1K_V1",
                     {"aux_logits": False, "transform_input": False, "init_weights": True}, 75),
    "regnet_y_400mf": (4_344_144, "RegNet_Y_400MF_Weights.IMAGENET1K_V1", {}, 32),
    "mnasnet1_0": (4_383_312, "MNASNet1_0_Weights.IMAGENET1K_V1", {}, 32),
}


def spec(name: str) -> Path:
    return IMAGENET / f"{name}.yaml"


def skeleton(name: str, **kwargs: Any) -> nn.Module:
    """torchvision's model ``name`` in eval mode, on the meta device (nothing allocated), except RegNets,
    whose constructor computes the stage widths with tensors (built on the CPU: 4-7M parameters)."""
    if name.startswith("regnet"):
        return tv.build(name, **kwargs).eval()
    with torch.device("meta"):
        return tv.build(name, **kwargs).eval()


def reference(name: str, seed: int | None = 0) -> nn.Module:
    """torchvision's model ``name`` as the spec describes it, in eval mode, on the CPU, randomised with
    ``seed`` (None: uninitialised, for loading a state dict).  Built on the meta device and then allocated,
    which skips torchvision's weight initialisation (seconds for Wide ResNet on a busy CPU)."""
    model = skeleton(name, **MODELS[name][2]).to_empty(device="cpu")
    if seed is not None:
        randomize(model, seed)
    return model


def randomize(model: nn.Module, seed: int = 0) -> None:
    """Random values for every tensor of the state dict, so that a mis-wired one cannot go unnoticed.

    Conv and linear weights are drawn with variance 1/fan-in (torchvision's own initialisations, such as
    Inception's std 0.1, blow up over a hundred layers once BatchNorm uses random statistics); biases,
    BatchNorm affine parameters and running statistics, which torchvision initialises to constants,
    are random too.
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for key, tensor in model.state_dict().items():
            if not tensor.dtype.is_floating_point:  # BatchNorm's num_batches_tracked
                tensor.zero_()
                continue
            leaf = key.rsplit(".", 1)[-1]
            if leaf == "weight" and tensor.ndim > 1:
                tensor.normal_(0.0, 1 / math.sqrt(tensor[0].numel()), generator=gen)
            elif leaf in ("running_var", "weight"):
                tensor.uniform_(0.5, 1.5, generator=gen)
            else:  # bias, running_mean
                tensor.normal_(0.0, 0.1, generator=gen)


def conv_linear_macs(model: nn.Module, size: int) -> int:
    """Multiply-accumulates of the conv and linear weights for one image, counted on torchvision's
    modules (on the meta device nothing is computed)."""
    total = 0

    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal total
        if isinstance(module, nn.Conv2d):
            total += output.numel() * module.weight[0].numel()
        else:
            total += output.numel() * module.in_features

    model = model.to("meta")
    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        model(torch.empty(1, 3, size, size, device="meta"))
    for handle in handles:
        handle.remove()
    return total


# --------------------------------------------------------------------------------------------------
# Published numbers (static analysis; torchvision on the meta device)


@pytest.mark.parametrize("name", MODELS)
def test_counts_match_torchvision(name: str) -> None:
    params, weights, _, _ = MODELS[name]
    meta = tv.torchvision_models().get_weight(weights).meta
    graph = analyze(spec(name))
    size = 299 if name == "inception_v3" else 224
    assert graph.name == name
    assert graph.input_shape == (3, size, size) and graph.output_shape == (1000,)
    assert graph.total.params == params
    if name != "inception_v3":
        assert params == meta["num_params"]
    gflops = meta["_ops"]  # e.g. 0.819: compare at the published number of decimals
    decimals = len(repr(gflops).split(".")[1])
    assert round(graph.total.macs / 1e9, decimals) == gflops
    ref = skeleton(name, **MODELS[name][2])
    assert_counts_match(graph, ref)
    assert graph.total.macs == conv_linear_macs(ref, size)


def _norms(model: nn.Module) -> list[tuple[float, float | None]]:
    return [(m.eps, m.momentum) for m in model.modules() if isinstance(m, nn.BatchNorm2d)]


@pytest.mark.parametrize("name", ["inception_v3", "mnasnet1_0", "regnet_y_400mf"])
def test_batchnorm_settings_match_torchvision(name: str) -> None:
    """What outputs cannot show: BatchNorm's eps (Inception: 0.001) and momentum (MNASNet: 1 − 0.9997)."""
    ref = skeleton(name, **MODELS[name][2])
    model = archspec.build(spec(name), device="meta")
    assert [(eps, pytest.approx(m, rel=1e-12)) for eps, m in _norms(model)] == _norms(ref)


# --------------------------------------------------------------------------------------------------
# torchvision's state dict loads through the mapping, and the functions agree


@pytest.mark.parametrize("name", MODELS)
def test_torchvision_state_dict_loads_and_outputs_match(name: str) -> None:
    ref = reference(name)
    size = MODELS[name][3]
    # allocated, not initialised: every tensor comes from the state dict
    model = archspec.build(spec(name), input_shape=(3, size, size), device="meta").to_empty(device="cpu").eval()
    result = model.load_state_dict(import_state_dict(spec(name), ref.state_dict()), strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    # and back: archspec's weights load into torchvision's module under torchvision's names, unchanged
    other = reference(name, seed=None)
    exported = OrderedDict(export_state_dict(spec(name), model.state_dict()))
    # torchvision's MNASNet reads its format version from the state dict's metadata (as torch.save keeps it)
    exported._metadata = ref.state_dict()._metadata  # type: ignore[attr-defined]
    other.load_state_dict(exported, strict=True)
    theirs = other.state_dict()
    for key, tensor in ref.state_dict().items():
        assert torch.equal(theirs[key], tensor), key
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1))
    # eval mode, then training mode: batch statistics, and dropout drawing the same random numbers
    expected = assert_same_in_eval_and_train(model, ref, x, rtol=1e-4, atol=1e-5)
    assert expected.abs().max() > 0.1 and expected.std() > 0.01  # the check means something
    # the running statistics moved the same way (BatchNorm momentum)
    moved = export_state_dict(spec(name), model.state_dict())
    for key, tensor in ref.named_buffers():
        torch.testing.assert_close(moved[key], tensor, rtol=1e-5, atol=1e-6, msg=key)


#: name → {archspec module path: torchvision's}, for a few modules of each model.
MODULE_PATHS: dict[str, dict[str, str]] = {
    "squeezenet1_0": {
        "features.fire1.expand3x3": "features.3.expand3x3",
        "features.fire8.squeeze": "features.12.squeeze",
        "head.classifier.conv1": "classifier.1",
    },
    "resnext50_32x4d": {
        "resnet.layer2.bottleneck1.residual_add1.shortcut.bn1": "layer2.0.downsample.1",
        "resnet.layer4.bottleneck3.residual_add1.conv2": "layer4.2.conv2",
    },
    "inception_v3": {
        "Mixed_6b.branch7x7dbl_4.conv": "Mixed_6b.branch7x7dbl_4.conv",
        "Mixed_7c.branch3x3dbl_3b.bn": "Mixed_7c.branch3x3dbl_3b.bn",
    },
    "regnet_y_400mf": {
        "regnet.stem.conv1": "stem.0",
        "regnet.trunk_output.block3.res_bottleneck6.f.se.fc2": "trunk_output.block3.block3-5.f.se.fc2",
        "regnet.trunk_output.block2.res_bottleneck1.proj.bn1": "trunk_output.block2.block2-0.proj.1",
        "regnet.trunk_output.block4.res_bottleneck2.f.b.conv1": "trunk_output.block4.block4-1.f.b.0",
    },
    "mnasnet1_0": {
        "layers.conv2": "layers.3",
        "layers.stack1.inverted_residual2.residual_add1.layers.conv2": "layers.8.1.layers.3",
        "layers.bn4": "layers.15",
        "classifier.linear1": "classifier.1",
    },
}


@pytest.mark.parametrize("name", MODULE_PATHS)
def test_module_paths_read_like_torchvision(name: str) -> None:
    assert_module_paths(spec(name), name, MODULE_PATHS[name])


# --------------------------------------------------------------------------------------------------
# Structure and the block libraries


def test_resnext_and_wide_resnet_reuse_the_resnet_bottleneck() -> None:
    for name in ("resnext50_32x4d", "wide_resnet50_2"):
        text = spec(name).read_text()
        assert "imports: [resnet_family.yaml]" in text and "\nblocks:" not in text
    resnext, wide, resnet50 = (analyze(spec(n)) for n in ("resnext50_32x4d", "wide_resnet50_2", "resnet50"))
    for graph, groups, width in [(resnext, 32, 128), (wide, 1, 128), (resnet50, 1, 64)]:  # layer1's 3×3 conv
        conv = graph.nodes["resnet.layer1.bottleneck1.residual_add1.conv2"]
        assert graph.groups["resnet.layer1.bottleneck1"].block == "bottleneck"
        assert (conv.params.groups, conv.shape[0]) == (groups, width)
    assert resnet50.total.params == 25_557_032  # unchanged by the new parameters


@pytest.mark.parametrize(("library", "members"), [
    ("squeezenet_family", ["squeezenet1_0", "squeezenet1_1"]),
    ("regnet_family", ["regnet_y_400mf"]),
    ("resnet_family", ["resnext50_32x4d", "wide_resnet50_2"]),
])
def test_libraries_describe_no_network_and_members_import_them(library: str, members: list[str]) -> None:
    assert_family_library(library, members)


@pytest.mark.parametrize(("tv_name", "args"), [
    ("regnet_x_400mf", "{widths: [32, 64, 160, 400], depths: [1, 2, 7, 12], group_width: 16}"),  # no SE
    ("regnet_y_800mf", "{widths: [64, 144, 320, 784], depths: [1, 3, 8, 2], group_width: 16, se_ratio: 0.25}"),
])
def test_regnet_family_builds_other_members(tmp_path: Path, tv_name: str, args: str) -> None:
    ref = skeleton(tv_name)
    graph = analyze(family_member(tmp_path, tv_name, "regnet_family", f"regnet: {args}", "regnet"))
    assert_counts_match(graph, ref)
    assert graph.total.macs == conv_linear_macs(ref, 224)


@pytest.mark.parametrize(("alpha", "tv_name"), [(0.5, "mnasnet0_5"), (0.75, "mnasnet0_75"), (1.3, "mnasnet1_3")])
def test_mnasnet_alpha_matches_torchvision(alpha: float, tv_name: str) -> None:
    graph = analyze(spec("mnasnet1_0"), {"alpha": alpha})
    ref = skeleton(tv_name)
    assert graph.total.params == sum(p.numel() for p in ref.parameters())
    assert graph.total.macs == conv_linear_macs(ref, 224)


def test_smallest_inputs() -> None:
    """torchvision's published minimum sizes are the smallest inputs the specs accept."""
    for name, smallest in [("inception_v3", 75), ("squeezenet1_0", 21), ("squeezenet1_1", 17)]:
        assert analyze(spec(name), input_shape=(3, smallest, smallest)).output_shape == (1000,)
        with pytest.raises(ArchspecError) as exc:
            analyze(spec(name), input_shape=(3, smallest - 1, smallest - 1))
        assert "E-SHAPE" in {d.code for d in exc.value.diagnostics}


# --------------------------------------------------------------------------------------------------
# Block parameters: a number and an [h, w] pair are one kind (Inception's 1×7 convs through basic_conv)


BLOCK = """
archspec: 1
name: net
input: [3, 16, 16]
blocks:
  unit:
    params: {{c: 4, k: {default}, pad: 0}}
    layers: [conv: {{out: $c, k: $k, pad: $pad}}]
layers:
  - unit: {args}
"""


@pytest.mark.parametrize(("default", "args", "shape"), [
    ("1", "{k: [1, 7], pad: [0, 3]}", (4, 16, 16)),
    ("1", "{k: 3}", (4, 14, 14)),
    ("[1, 7]", "{k: 3, pad: [1, 1]}", (4, 16, 16)),
    ("[1, 7]", "{}", (4, 16, 10)),
])
def test_a_number_parameter_takes_a_pair(default: str, args: str, shape: tuple[int, ...]) -> None:
    assert analyze(BLOCK.format(default=default, args=args)).output_shape == shape


@pytest.mark.parametrize(("default", "args", "code"), [
    ("1", "{k: [1.5, 7]}", "E-PARAM-TYPE"),      # an integer's pair holds integers
    ("1", "{k: [true, 7]}", "E-PARAM-TYPE"),
    ("1", "{k: [1, 2, 3]}", "E-PARAM-TYPE"),      # only pairs
    ("1", "{k: '3'}", "E-PARAM-TYPE"),
])
def test_other_kinds_are_still_refused(default: str, args: str, code: str) -> None:
    with pytest.raises(ArchspecError) as exc:
        analyze(BLOCK.format(default=default, args=args))
    assert code in {d.code for d in exc.value.diagnostics}


# --------------------------------------------------------------------------------------------------
# Pooling shapes: in ceil mode PyTorch lets the window overhang the input by up to stride − 1
# (SqueezeNet 1.0 at its published minimum, 21×21, ends with a 3×3/2 max-pool on a 2×2 map)


@pytest.mark.parametrize("op", ["maxpool", "avgpool"])
def test_pool_output_sizes_agree_with_pytorch(op: str) -> None:
    from archspec.ops import ShapeError, get_op

    pool = get_op(op)
    assert pool is not None
    function = torch.nn.functional.max_pool2d if op == "maxpool" else torch.nn.functional.avg_pool2d
    for size, k, s, pad, ceil in itertools.product(range(1, 9), range(1, 6), range(1, 4), range(3), (False, True)):
        if 2 * pad > k:
            continue
        try:
            expected = function(torch.zeros(1, 1, size, size), k, s, pad, ceil_mode=ceil).shape[1:]
        except RuntimeError:  # "Output size is too small"
            expected = None
        params = pool.params_model.model_validate({"k": k, "stride": s, "pad": pad, "ceil_mode": ceil})
        try:
            got = pool.infer(params, [(1, size, size)])
        except ShapeError:
            got = None
        assert got == expected, (size, k, s, pad, ceil)
    check_op(op, {"k": 3, "stride": 2, "ceil_mode": True}, [(4, 2, 2)])  # the module agrees with the table
