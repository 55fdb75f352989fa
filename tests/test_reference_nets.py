"""Checks of the hand-written d2l reference nets and of `copy_weights`.

The reference nets are what archspec's compiled specs are compared against, so
they are first checked against the published d2l facts in REFERENCE.md:
parameter and buffer counts, and the per-block output shapes d2l prints.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator

import pytest
import torch
from torch import nn

from reference_nets import (
    BUFFER_COUNTS,
    REFERENCE_NETS,
    DenseBlock,
    Inception,
    lenet,
    transition_block,
)
from weight_transfer import copy_weights, execution_order

NAMES = list(REFERENCE_NETS)

# Output shape (without batch) of each top-level child of the reference net, skipping
# the shape-preserving activations and dropouts, as printed by d2l (REFERENCE.md).
BLOCK_SHAPES: dict[str, list[tuple[int, ...]]] = {
    "lenet": [
        (6, 28, 28), (6, 14, 14), (16, 10, 10), (16, 5, 5), (400,), (120,), (84,), (10,),
    ],
    "alexnet": [
        (96, 54, 54), (96, 26, 26), (256, 26, 26), (256, 12, 12), (384, 12, 12),
        (384, 12, 12), (256, 12, 12), (256, 5, 5), (6400,), (4096,), (4096,), (10,),
    ],
    "vgg11": [
        (64, 112, 112), (128, 56, 56), (256, 28, 28), (512, 14, 14), (512, 7, 7),
        (25088,), (4096,), (4096,), (10,),
    ],
    "nin": [
        (96, 54, 54), (96, 26, 26), (256, 26, 26), (256, 12, 12), (384, 12, 12),
        (384, 5, 5), (10, 5, 5), (10, 1, 1), (10,),
    ],
    "googlenet": [(64, 24, 24), (192, 12, 12), (480, 6, 6), (832, 3, 3), (1024,), (10,)],
    "resnet18": [(64, 24, 24), (64, 24, 24), (128, 12, 12), (256, 6, 6), (512, 3, 3), (10,)],
}
SHAPE_PRESERVING = (nn.ReLU, nn.Sigmoid, nn.Dropout)
GOOGLENET_INCEPTION_CHANNELS = [256, 480, 512, 512, 512, 528, 832, 832, 1024]


pytestmark = pytest.mark.usefixtures("two_threads")


@functools.cache
def _shared_net(name: str) -> nn.Module:
    """One instance per net, built once, for the tests that only read it."""
    torch.manual_seed(0)
    return REFERENCE_NETS[name][0]().eval()


def _example(name: str, seed: int = 1) -> torch.Tensor:
    """A batch-1 random input of the net's published input shape."""
    shape = REFERENCE_NETS[name][1]
    return torch.randn(1, *shape, generator=torch.Generator().manual_seed(seed))


def _numel(tensors: Iterator[torch.Tensor]) -> int:
    return sum(t.numel() for t in tensors)


# ------------------------------------------------------------------------- counts
@pytest.mark.parametrize("name", NAMES)
def test_parameter_count(name: str) -> None:
    net = _shared_net(name)
    assert _numel(net.parameters()) == REFERENCE_NETS[name][2]


@pytest.mark.parametrize("name", NAMES)
def test_buffer_count(name: str) -> None:
    # Nets without BatchNorm must have no buffers at all.
    net = _shared_net(name)
    assert _numel(net.buffers()) == BUFFER_COUNTS.get(name, 0)


# ------------------------------------------------------------------------- shapes
@pytest.mark.parametrize("name", NAMES)
def test_output_is_ten_logits(name: str) -> None:
    with torch.no_grad():
        out = _shared_net(name)(_example(name))
    assert out.shape == (1, 10)


@pytest.mark.parametrize("name", sorted(BLOCK_SHAPES))
def test_block_shapes_match_d2l(name: str) -> None:
    net = _shared_net(name)
    assert isinstance(net, nn.Sequential)
    x = _example(name)
    shapes = []
    with torch.no_grad():
        for child in net:
            x = child(x)
            if not isinstance(child, SHAPE_PRESERVING):
                shapes.append(tuple(x.shape[1:]))
    assert shapes == BLOCK_SHAPES[name]


def test_googlenet_inception_channels() -> None:
    net = _shared_net("googlenet")
    channels: list[int] = []
    handles = [
        m.register_forward_hook(lambda _m, _i, out: channels.append(out.shape[1]))
        for m in net.modules()
        if isinstance(m, Inception)
    ]
    try:
        with torch.no_grad():
            net(_example("googlenet"))
    finally:
        for h in handles:
            h.remove()
    assert channels == GOOGLENET_INCEPTION_CHANNELS


def test_dense_block_and_transition_shapes() -> None:
    blk = DenseBlock(2, 3, 10).eval()
    with torch.no_grad():
        y = blk(torch.randn(1, 3, 8, 8))
        assert y.shape == (1, 23, 8, 8)
        assert transition_block(23, 10).eval()(y).shape == (1, 10, 4, 4)


# ---------------------------------------------------------------- weight transfer
@pytest.mark.parametrize("name", NAMES)
def test_copy_weights_makes_outputs_identical(name: str) -> None:
    src = _shared_net(name)
    torch.manual_seed(12345)
    dst = REFERENCE_NETS[name][0]().eval()
    assert any(
        not torch.equal(a, b) for a, b in zip(src.parameters(), dst.parameters(), strict=False)
    ), "two independent initialisations should differ"
    if BUFFER_COUNTS.get(name):
        # Make the copied BatchNorm statistics matter for the eval-mode output.
        with torch.no_grad():
            for m in src.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.running_mean.uniform_(-0.1, 0.1)
                    m.running_var.uniform_(0.5, 1.5)

    x = _example(name)
    copy_weights(src, dst, x)

    for (key, a), b in zip(src.state_dict().items(), dst.state_dict().values(), strict=False):
        assert torch.equal(a, b), key
    with torch.no_grad():
        assert torch.allclose(src(x), dst(x))


class _RenamedLeNet(nn.Module):
    """LeNet with different submodule names and nesting than `reference_nets.lenet`."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.ModuleDict({"fc1": nn.Linear(400, 120), "fc2": nn.Linear(120, 84)})
        self.out = nn.Linear(84, 10)  # registered before the convs, called after them
        self.features = nn.ModuleList(
            [nn.Conv2d(1, 6, kernel_size=5, padding=2), nn.Conv2d(6, 16, kernel_size=5)]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv in self.features:
            x = nn.functional.avg_pool2d(torch.sigmoid(conv(x)), 2)
        x = torch.sigmoid(self.head["fc1"](x.flatten(1)))
        return self.out(torch.sigmoid(self.head["fc2"](x)))


def test_copy_weights_pairs_by_call_order_not_by_name() -> None:
    src = _shared_net("lenet")
    dst = _RenamedLeNet()
    x = _example("lenet")
    assert [c.qualname for c in execution_order(dst, x)] == [
        "features.0", "features.1", "head.fc1", "head.fc2", "out",
    ]
    copy_weights(src, dst, x)
    with torch.no_grad():
        assert torch.allclose(src(x), dst(x))


def test_execution_order_leaves_mode_and_running_stats_alone() -> None:
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2)).train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    calls = execution_order(net, torch.randn(1, 1, 5, 5))
    assert [c.type_name for c in calls] == ["Conv2d", "BatchNorm2d"]
    assert all(m.training for m in net.modules())
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_copy_weights_rejects_lenet_into_alexnet() -> None:
    src = _shared_net("lenet")
    # Resize so alexnet accepts the lenet example; the Upsample holds no weights.
    dst = nn.Sequential(nn.Upsample(size=(224, 224)), _shared_net("alexnet"))
    with pytest.raises(AssertionError, match=r"'0' \(Conv2d\).*'1\.0' \(Conv2d\)") as err:
        copy_weights(src, dst, _example("lenet"))
    message = str(err.value)
    assert "weight: [6, 1, 5, 5]" in message
    assert "weight: [96, 1, 11, 11]" in message
    assert "src calls 5 stateful modules, dst calls 8" in message


def test_copy_weights_rejects_shape_mismatch_and_leaves_dst_unchanged() -> None:
    src = _shared_net("lenet")
    dst = lenet(num_classes=5)
    before = {k: v.clone() for k, v in dst.state_dict().items()}
    with pytest.raises(AssertionError, match=r"#4 \(Linear\) differs in tensors") as err:
        copy_weights(src, dst, _example("lenet"))
    assert "weight: [10, 84]" in str(err.value)
    assert "weight: [5, 84]" in str(err.value)
    # The four matching pairs before the mismatch were not copied either.
    assert all(torch.equal(before[k], v) for k, v in dst.state_dict().items())


def test_copy_weights_rejects_type_mismatch() -> None:
    dst = nn.Sequential(nn.Flatten(), nn.Linear(784, 6))
    with pytest.raises(AssertionError, match=r"#0 differs in type.*'0' \(Conv2d\).*'1' \(Linear\)"):
        copy_weights(_shared_net("lenet"), dst, _example("lenet"))


def test_copy_weights_rejects_extra_modules() -> None:
    dst = nn.Sequential(lenet(), nn.Linear(10, 10))
    with pytest.raises(AssertionError, match=r"5 .* dst calls 6.*dst also calls: '1' \(Linear\)"):
        copy_weights(_shared_net("lenet"), dst, _example("lenet"))


class _SkipsALayer(nn.Module):
    """Owns two Linear layers but only ever calls one of them."""

    def __init__(self) -> None:
        super().__init__()
        self.used = nn.Linear(4, 4)
        self.unused = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.used(x)


def test_copy_weights_rejects_module_never_called() -> None:
    with pytest.raises(AssertionError, match=r"never called.*\['unused'\]"):
        copy_weights(nn.Linear(4, 4), _SkipsALayer(), torch.randn(1, 4))
