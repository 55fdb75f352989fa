"""MobileNetV3, EfficientNet-B0, ShuffleNetV2 and ConvNeXt-Tiny as archspec specs, checked against torchvision.

The oracle is torchvision's own model code (``tests/tv.py``): the specs must have its parameter and
buffer counts, conv+linear MACs that round to its published GFLOPS, a key mapping under which its
(randomised) state dict loads with ``strict=True``, and the same outputs in eval mode and — with the
same random numbers — in training mode, where stochastic depth and dropout act.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import archspec
import tv
from archspec import analyze
from archspec.mapping import export_state_dict, import_state_dict
from conftest import ROOT
from helpers_models import (
    assert_counts_match,
    assert_family_library,
    assert_module_paths,
    assert_same_in_eval_and_train,
    family_member,
)

IMAGENET = ROOT / "specs" / "imagenet"


pytestmark = pytest.mark.usefixtures("one_thread")  # why: see conftest.one_thread


#: name → (torchvision's parameter count, its weights enum entry). The published figures are read
#: from torchvision's weight metadata (offline: no download).
MODELS: dict[str, tuple[int, str]] = {
    "mobilenet_v3_small": (2_542_856, "MobileNet_V3_Small_Weights.IMAGENET1K_V1"),
    "mobilenet_v3_large": (5_483_032, "MobileNet_V3_Large_Weights.IMAGENET1K_V1"),
    "efficientnet_b0": (5_288_548, "EfficientNet_B0_Weights.IMAGENET1K_V1"),
    "shufflenet_v2_x1_0": (2_278_604, "ShuffleNet_V2_X1_0_Weights.IMAGENET1K_V1"),
    "convnext_tiny": (28_589_128, "ConvNeXt_Tiny_Weights.IMAGENET1K_V1"),
}
#: Each spec's top-level stochastic-depth parameter and torchvision's constructor argument for it.
STOCHASTIC_DEPTH = {"efficientnet_b0": "sd_prob", "convnext_tiny": "sd_prob"}


def spec(name: str) -> Path:
    return IMAGENET / f"{name}.yaml"


def reference(name: str, **kwargs: Any) -> nn.Module:
    """torchvision's model ``name``, in eval mode."""
    return tv.build(name, **kwargs).eval()


def random_state(model: nn.Module, seed: int = 0) -> dict[str, torch.Tensor]:
    """A random state dict for ``model`` (which may live on the meta device): conv and linear weights with
    standard deviation 1/√fan-in, and random values for everything torchvision initialises to constants
    (biases, norm weights, BatchNorm statistics, ConvNeXt's layer scale of 1e-6), so that no mis-wired
    tensor can go unnoticed."""
    gen = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}
    for key, tensor in model.state_dict().items():
        leaf, shape = key.rsplit(".", 1)[-1], tensor.shape
        if not tensor.dtype.is_floating_point:  # num_batches_tracked
            value = torch.randint(0, 100, shape, generator=gen, dtype=tensor.dtype)
        elif leaf in ("running_var", "layer_scale") or (leaf == "weight" and tensor.ndim == 1):
            value = torch.rand(shape, generator=gen) + 0.5
        elif leaf in ("bias", "running_mean"):
            value = torch.randn(shape, generator=gen) * 0.1
        else:
            value = torch.randn(shape, generator=gen) / shape[1:].numel() ** 0.5
        state[key] = value
    return state


def materialize(model: nn.Module, state: dict[str, torch.Tensor]) -> nn.Module:
    """Load ``state`` strictly into ``model`` (built on the meta device: no initialisation cost), in eval mode."""
    result = model.load_state_dict(state, strict=True, assign=True)
    assert not result.missing_keys and not result.unexpected_keys
    assert not any(t.is_meta for t in [*model.parameters(), *model.buffers()])
    return model.eval()


# --------------------------------------------------------------------------------------------------
# Published numbers (static analysis; torchvision on the meta device)


@pytest.mark.parametrize("name", MODELS)
def test_counts_match_torchvision(name: str) -> None:
    params, weights = MODELS[name]
    meta = tv.torchvision_models().get_weight(weights).meta
    graph = analyze(spec(name))
    assert graph.name == name
    assert graph.input_shape == (3, 224, 224) and graph.output_shape == (1000,)
    assert graph.total.params == params == meta["num_params"]
    gflops = meta["_ops"]  # e.g. 0.217: compare at the published number of decimals
    decimals = len(repr(gflops).split(".")[1])
    assert round(graph.total.macs / 1e9, decimals) == gflops
    with torch.device("meta"):
        ref = reference(name)
    assert_counts_match(graph, ref)


def _norms(model: nn.Module) -> list[tuple[str, float, float | None]]:
    return [(type(m).__name__.replace("2d", ""), m.eps, getattr(m, "momentum", None))
            for m in model.modules() if isinstance(m, (nn.BatchNorm2d, nn.LayerNorm))]


def _drop_probabilities(model: nn.Module) -> list[float]:
    """The stochastic-depth probabilities of the residual branches, in order."""
    if any(type(m).__name__ in ("MBConv", "CNBlock") for m in model.modules()):  # torchvision
        return [m.stochastic_depth.p for m in model.modules() if type(m).__name__ in ("MBConv", "CNBlock")
                and getattr(m, "use_res_connect", True)]  # MBConv ignores its stochastic depth without a residual
    return [m.p for m in model.modules() if type(m).__name__ == "StochasticDepth"]


@pytest.mark.parametrize("name", MODELS)
def test_norm_settings_and_drop_probabilities_match_torchvision(name: str) -> None:
    """What eval-mode outputs cannot show: BatchNorm momentum, norm eps, stochastic-depth probabilities."""
    with torch.device("meta"):
        ref = reference(name)
    model = archspec.build(spec(name), device="meta")
    assert _norms(model) == _norms(ref)
    if name.startswith("mobilenet_v3"):
        assert {n[1:] for n in _norms(model)} == {(0.001, 0.01)}
    drops = _drop_probabilities(model)
    assert drops == _drop_probabilities(ref)
    assert bool(drops) == (name in STOCHASTIC_DEPTH)
    if name == "convnext_tiny":
        assert len(drops) == 18 and drops[0] == 0.0 and drops[-1] == pytest.approx(0.1)


# --------------------------------------------------------------------------------------------------
# torchvision's state dict loads through the mapping, and the functions agree


@pytest.mark.parametrize("name", MODELS)
def test_torchvision_state_dict_loads_and_outputs_match(name: str) -> None:
    drop = {}
    if name in STOCHASTIC_DEPTH:  # a high probability, so that training mode drops branches
        drop = {STOCHASTIC_DEPTH[name]: 0.5}
    with torch.device("meta"):
        ref = reference(name, **({"stochastic_depth_prob": 0.5} if drop else {}))
    tv_state = random_state(ref)
    ref = materialize(ref, tv_state)
    size = 64
    model = materialize(archspec.build(spec(name), input_shape=(3, size, size), device="meta", **drop),
                        import_state_dict(spec(name), tv_state, **drop))
    # and back: archspec's state dict, renamed to torchvision's keys, is the state dict it came from
    back = export_state_dict(spec(name), model.state_dict())
    assert back.keys() == tv_state.keys() and all(torch.equal(back[k], tv_state[k]) for k in tv_state)
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1))
    # eval mode, then training mode: batch statistics, dropout and stochastic depth draw the same random numbers
    expected = assert_same_in_eval_and_train(model, ref, x, rtol=1e-4, atol=1e-5)
    assert expected.abs().max() > 0.1  # the check means something: no vanishing activations


#: name → {archspec module path: torchvision's}, for a few modules of each model.
MODULE_PATHS: dict[str, dict[str, str]] = {
    "mobilenet_v3_large": {
        "features.conv_bn_act1.conv1": "features.0.0",
        "features.bneck1.ir.residual_add1.block.conv_bn_act1.conv1": "features.1.block.0.0",  # no expansion
        "features.bneck5.ir.residual_add1.block.squeeze_excitation1.fc1": "features.5.block.2.fc1",
        "features.bneck15.ir.residual_add1.block.conv_bn_act3.bn1": "features.15.block.3.1",
        "classifier.linear2": "classifier.3",
    },
    "efficientnet_b0": {
        "features.stage6.efficientnet_mbconv4.ir.residual_add1.block.squeeze_excitation1.fc2": "features.6.3.block.2.fc2",
        "features.conv_bn_act2.bn1": "features.8.1",
    },
    "shufflenet_v2_x1_0": {
        "shufflenet.stage2.shuffle_down1.inception_branch1.branch1.conv2": "stage2.0.branch1.2",
        "shufflenet.stage3.shuffle_unit7.branch2.bn3": "stage3.7.branch2.6",
        "shufflenet.conv5.conv1": "conv5.0",
    },
    "convnext_tiny": {
        "features.stage3.cnblock9.residual_add1.layer_scale1": "features.5.8",
        "features.stage1.cnblock1.residual_add1.block.linear2": "features.1.0.block.5",
        "features.downsample3.conv1": "features.6.1",
        "classifier.linear1": "classifier.2",
    },
}


@pytest.mark.parametrize("name", MODULE_PATHS)
def test_module_paths_read_like_torchvision(name: str) -> None:
    assert_module_paths(spec(name), name, MODULE_PATHS[name])


# --------------------------------------------------------------------------------------------------
# The block libraries


@pytest.mark.parametrize(("library", "members"), [
    ("mbconv_family", ["mobilenet_v3_small", "mobilenet_v3_large", "efficientnet_b0"]),
    ("shufflenet_v2_family", ["shufflenet_v2_x1_0"]),
    ("convnext_family", ["convnext_tiny"]),
])
def test_libraries_describe_no_network_and_members_import_them(library: str, members: list[str]) -> None:
    assert_family_library(library, members)


def test_shufflenet_family_builds_the_other_widths(tmp_path: Path) -> None:
    """The family block with torchvision's ×0.5 and ×2.0 stage widths is torchvision's model."""
    for tv_name, channels in [("shufflenet_v2_x0_5", [24, 48, 96, 192, 1024]),
                              ("shufflenet_v2_x2_0", [24, 244, 488, 976, 2048])]:
        path = family_member(tmp_path, tv_name, "shufflenet_v2_family", f"shufflenet_v2: {{channels: {channels}}}",
                             "shufflenet")
        with torch.device("meta"):
            ref = reference(tv_name)
        assert_counts_match(analyze(path), ref)


def test_overrides_reach_the_blocks() -> None:
    small = analyze(spec("mobilenet_v3_small"), {"classes": 10})
    assert small.output_shape == (10,) and small.total.params == MODELS["mobilenet_v3_small"][0] - 1025 * 990
    graph = analyze(spec("efficientnet_b0"), {"sd_prob": 0.4})
    drops = [n.params.p for n in graph.nodes.values() if n.op == "stochastic-depth"]
    assert drops == [0.4 * i / 16 for i in (2, 4, 6, 7, 9, 10, 12, 13, 14)]
