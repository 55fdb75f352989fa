"""The seven seed specs equal the d2l networks: parameters, per-block shapes, and function."""

from __future__ import annotations

import pytest
import torch

import archspec
from conftest import SEEDS, SPECS
from reference_nets import BUFFER_COUNTS, REFERENCE_NETS
from weight_transfer import copy_weights

pytestmark = pytest.mark.usefixtures("two_threads")


@pytest.mark.parametrize("name", SEEDS)
def test_static_counts_match_reference(name: str) -> None:
    graph = archspec.analyze(SPECS / f"{name}.yaml")
    _, shape, params = REFERENCE_NETS[name]
    assert graph.input_shape == shape
    assert graph.total.params == params
    assert graph.total.buffers == BUFFER_COUNTS.get(name, 0)
    assert graph.output_shape == (10,)


@pytest.mark.parametrize("name", SEEDS)
def test_compiled_module_equals_hand_written(name: str) -> None:
    """Copy the hand-written net's weights into the compiled one; outputs must agree (eval mode)."""
    torch.manual_seed(0)
    ctor, shape, params = REFERENCE_NETS[name]
    ref = ctor().eval()
    model = archspec.build(SPECS / f"{name}.yaml").eval()
    assert sum(p.numel() for p in model.parameters()) == params
    assert sum(b.numel() for b in model.buffers()) == sum(b.numel() for b in ref.buffers())
    x = torch.randn(2, *shape)
    # Give BatchNorm non-trivial running statistics so copying them matters.
    with torch.no_grad():
        for m in ref.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 1.5)
    copy_weights(ref, model, x[:1])
    with torch.no_grad():
        expected, got = ref(x), model(x)
    assert got.shape == expected.shape == (2, 10)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", SEEDS)
def test_static_shapes_equal_runtime_shapes(name: str) -> None:
    """Every node's inferred shape equals the shape PyTorch produces (checked on the meta device)."""
    graph = archspec.analyze(SPECS / f"{name}.yaml")
    model = archspec.build(graph, device="meta")
    x = torch.empty(2, *graph.input_shape, device="meta")
    seen = {name: tuple(t.shape[1:]) for name, t in model.intermediates(x).items()}
    assert tuple(model(x).shape[1:]) == graph.output_shape
    assert set(seen) == set(graph.nodes)
    for node in graph.nodes.values():
        assert seen[node.name] == node.shape, node.name


PUBLISHED_BLOCK_SHAPES = {
    "googlenet": {"b1": (64, 24, 24), "b2": (192, 12, 12), "b3": (480, 6, 6), "b4": (832, 3, 3), "b5": (1024,)},
    "resnet18": {"b1": (64, 24, 24), "stage1": (64, 24, 24), "stage2": (128, 12, 12), "stage3": (256, 6, 6),
                 "stage4": (512, 3, 3)},
    "vgg11": {"vgg_block1": (64, 112, 112), "vgg_block2": (128, 56, 56), "vgg_block3": (256, 28, 28),
              "vgg_block4": (512, 14, 14), "vgg_block5": (512, 7, 7)},
    "nin": {"nin_block1": (96, 54, 54), "maxpool1": (96, 26, 26), "nin_block2": (256, 26, 26),
            "maxpool2": (256, 12, 12), "nin_block3": (384, 12, 12), "maxpool3": (384, 5, 5),
            "nin_block4": (10, 5, 5), "gap1": (10, 1, 1), "flatten1": (10,)},
}


@pytest.mark.parametrize("name", sorted(PUBLISHED_BLOCK_SHAPES))
def test_published_block_shapes(name: str) -> None:
    graph = archspec.analyze(SPECS / f"{name}.yaml")
    for part, shape in PUBLISHED_BLOCK_SHAPES[name].items():
        out = graph.groups[part].output if part in graph.groups else part
        assert graph.shape_of(out) == shape, part


def test_googlenet_inception_widths() -> None:
    graph = archspec.analyze(SPECS / "googlenet.yaml")
    widths = [graph.shape_of(g.output)[0] for g in graph.groups.values() if g.block == "inception"]
    assert widths == [256, 480, 512, 512, 512, 528, 832, 832, 1024]


def test_densenet_blocks_on_small_input() -> None:
    """d2l: DenseBlock(2 convs, growth 10) on 3×8×8 → 23×8×8; transition(10) → 10×4×4."""
    spec = """
archspec: 1
name: dense_small
input: [3, 8, 8]
blocks:
  conv_block:
    params: {c: null}
    layers: [bn, relu, conv: {out: $c, k: 3, pad: 1}]
layers:
  - dense-concat: [conv_block: {c: 10}]
    repeat: 2
    name: dense
  - sequence: [bn, relu, conv: {out: 10, k: 1}, avgpool: {k: 2, stride: 2}]
    name: transition
"""
    graph = archspec.analyze(spec)
    assert graph.shape_of(graph.groups["dense"].output) == (23, 8, 8)
    assert graph.output_shape == (10, 4, 4)


def test_state_dict_keys_read_like_the_spec() -> None:
    model = archspec.build(SPECS / "googlenet.yaml")
    keys = list(model.state_dict())
    assert keys[0] == "b1.conv1.weight"
    assert "b3.inception1.inception_branch1.branch2.conv2.weight" in keys
    assert "linear1.bias" == keys[-1]
    assert "Inception(" in str(model)
