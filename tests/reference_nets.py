"""Hand-written PyTorch versions of the seven d2l CNNs, independent of archspec.

These follow "Dive into Deep Learning" (PyTorch edition) for Fashion-MNIST
(1 input channel, 10 classes): the same layer order and the same helper names
(`vgg_block`, `nin_block`, `Inception`, `Residual`, `conv_block`, `DenseBlock`,
`transition_block`). The top-level layout is the current edition's (for ResNet
and DenseNet a final `last` Sequential); the one deliberate departure is that
every `nn.LazyConv2d`/`nn.LazyLinear`/`nn.LazyBatchNorm2d` is replaced by its
eager counterpart with an explicit input size, as in the book's first edition,
so the weights exist as soon as a net is constructed.

They are the ground truth that the specs in `specs/` are compared with: same
parameter count, same per-block shapes, and (via `weight_transfer.copy_weights`)
the same outputs once the weights are copied across.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

__all__ = [
    "BUFFER_COUNTS",
    "REFERENCE_NETS",
    "DenseBlock",
    "Inception",
    "Residual",
    "alexnet",
    "conv_block",
    "densenet",
    "googlenet",
    "lenet",
    "nin",
    "nin_block",
    "resnet18",
    "transition_block",
    "vgg11",
    "vgg_block",
]

NUM_CLASSES = 10
IN_CHANNELS = 1


# --------------------------------------------------------------------------- LeNet
def lenet(num_classes: int = NUM_CLASSES) -> nn.Sequential:
    """LeNet-5 with sigmoid activations and average pooling (d2l 7.6), for 1×28×28."""
    return nn.Sequential(
        nn.Conv2d(IN_CHANNELS, 6, kernel_size=5, padding=2), nn.Sigmoid(),
        nn.AvgPool2d(kernel_size=2, stride=2),
        nn.Conv2d(6, 16, kernel_size=5), nn.Sigmoid(),
        nn.AvgPool2d(kernel_size=2, stride=2),
        nn.Flatten(),
        nn.Linear(16 * 5 * 5, 120), nn.Sigmoid(),
        nn.Linear(120, 84), nn.Sigmoid(),
        nn.Linear(84, num_classes),
    )


# ------------------------------------------------------------------------- AlexNet
def alexnet(num_classes: int = NUM_CLASSES) -> nn.Sequential:
    """AlexNet as adapted by d2l 8.1 (one input channel, 224×224 input)."""
    return nn.Sequential(
        nn.Conv2d(IN_CHANNELS, 96, kernel_size=11, stride=4, padding=1), nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(96, 256, kernel_size=5, padding=2), nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(256, 384, kernel_size=3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 384, kernel_size=3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 256, kernel_size=3, padding=1), nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2), nn.Flatten(),
        nn.Linear(256 * 5 * 5, 4096), nn.ReLU(), nn.Dropout(p=0.5),
        nn.Linear(4096, 4096), nn.ReLU(), nn.Dropout(p=0.5),
        nn.Linear(4096, num_classes),
    )


# ----------------------------------------------------------------------------- VGG
def vgg_block(num_convs: int, in_channels: int, out_channels: int) -> nn.Sequential:
    """`num_convs` × (3×3 conv, ReLU), then a 2×2 max-pool that halves H and W."""
    layers: list[nn.Module] = []
    for _ in range(num_convs):
        layers.append(nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1))
        layers.append(nn.ReLU())
        in_channels = out_channels
    layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
    return nn.Sequential(*layers)


VGG11_ARCH: tuple[tuple[int, int], ...] = ((1, 64), (1, 128), (2, 256), (2, 512), (2, 512))


def vgg11(num_classes: int = NUM_CLASSES) -> nn.Sequential:
    """VGG-11 (d2l 8.2): five VGG blocks then a three-layer classifier, for 224×224."""
    conv_blks: list[nn.Module] = []
    in_channels = IN_CHANNELS
    for num_convs, out_channels in VGG11_ARCH:
        conv_blks.append(vgg_block(num_convs, in_channels, out_channels))
        in_channels = out_channels
    return nn.Sequential(
        *conv_blks, nn.Flatten(),
        nn.Linear(in_channels * 7 * 7, 4096), nn.ReLU(), nn.Dropout(0.5),
        nn.Linear(4096, 4096), nn.ReLU(), nn.Dropout(0.5),
        nn.Linear(4096, num_classes),
    )


# ----------------------------------------------------------------------------- NiN
def nin_block(
    in_channels: int, out_channels: int, kernel_size: int, strides: int, padding: int
) -> nn.Sequential:
    """A k×k conv followed by two 1×1 convs, each followed by ReLU (d2l 8.3)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, strides, padding), nn.ReLU(),
        nn.Conv2d(out_channels, out_channels, kernel_size=1), nn.ReLU(),
        nn.Conv2d(out_channels, out_channels, kernel_size=1), nn.ReLU(),
    )


def nin(num_classes: int = NUM_CLASSES) -> nn.Sequential:
    """Network in Network (d2l 8.3): no linear layers, global average pool at the end."""
    return nn.Sequential(
        nin_block(IN_CHANNELS, 96, kernel_size=11, strides=4, padding=0),
        nn.MaxPool2d(3, stride=2),
        nin_block(96, 256, kernel_size=5, strides=1, padding=2),
        nn.MaxPool2d(3, stride=2),
        nin_block(256, 384, kernel_size=3, strides=1, padding=1),
        nn.MaxPool2d(3, stride=2),
        nn.Dropout(0.5),
        nin_block(384, num_classes, kernel_size=3, strides=1, padding=1),
        nn.AdaptiveAvgPool2d((1, 1)),
        nn.Flatten(),
    )


# ----------------------------------------------------------------------- GoogLeNet
class Inception(nn.Module):
    """The four-path Inception block of d2l 8.4; paths are concatenated on channels.

    `c1`..`c4` are the output channels of each path: path 1 is a 1×1 conv, paths 2
    and 3 are a 1×1 conv then a 3×3 / 5×5 conv (`c2`/`c3` give both widths), path 4
    is a 3×3 max-pool then a 1×1 conv.
    """

    def __init__(
        self,
        in_channels: int,
        c1: int,
        c2: tuple[int, int],
        c3: tuple[int, int],
        c4: int,
    ) -> None:
        super().__init__()
        self.p1_1 = nn.Conv2d(in_channels, c1, kernel_size=1)
        self.p2_1 = nn.Conv2d(in_channels, c2[0], kernel_size=1)
        self.p2_2 = nn.Conv2d(c2[0], c2[1], kernel_size=3, padding=1)
        self.p3_1 = nn.Conv2d(in_channels, c3[0], kernel_size=1)
        self.p3_2 = nn.Conv2d(c3[0], c3[1], kernel_size=5, padding=2)
        self.p4_1 = nn.MaxPool2d(kernel_size=3, stride=1, padding=1)
        self.p4_2 = nn.Conv2d(in_channels, c4, kernel_size=1)
        self.out_channels = c1 + c2[1] + c3[1] + c4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Run the four paths on `x` and concatenate (p1, p2, p3, p4) on dim 1."""
        p1 = F.relu(self.p1_1(x))
        p2 = F.relu(self.p2_2(F.relu(self.p2_1(x))))
        p3 = F.relu(self.p3_2(F.relu(self.p3_1(x))))
        p4 = F.relu(self.p4_2(self.p4_1(x)))
        return torch.cat((p1, p2, p3, p4), dim=1)


def googlenet(num_classes: int = NUM_CLASSES) -> nn.Sequential:
    """GoogLeNet (d2l 8.4) for 96×96 input: blocks b1..b5 then a linear classifier."""
    b1 = nn.Sequential(
        nn.Conv2d(IN_CHANNELS, 64, kernel_size=7, stride=2, padding=3), nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
    )
    b2 = nn.Sequential(
        nn.Conv2d(64, 64, kernel_size=1), nn.ReLU(),
        nn.Conv2d(64, 192, kernel_size=3, padding=1), nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
    )
    b3 = nn.Sequential(
        Inception(192, 64, (96, 128), (16, 32), 32),
        Inception(256, 128, (128, 192), (32, 96), 64),
        nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
    )
    b4 = nn.Sequential(
        Inception(480, 192, (96, 208), (16, 48), 64),
        Inception(512, 160, (112, 224), (24, 64), 64),
        Inception(512, 128, (128, 256), (24, 64), 64),
        Inception(512, 112, (144, 288), (32, 64), 64),
        Inception(528, 256, (160, 320), (32, 128), 128),
        nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
    )
    b5 = nn.Sequential(
        Inception(832, 256, (160, 320), (32, 128), 128),
        Inception(832, 384, (192, 384), (48, 128), 128),
        nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(),
    )
    return nn.Sequential(b1, b2, b3, b4, b5, nn.Linear(1024, num_classes))


# -------------------------------------------------------------------------- ResNet
class Residual(nn.Module):
    """The residual block of d2l 8.6: two 3×3 conv+BN, an optional 1×1 conv shortcut."""

    def __init__(
        self,
        input_channels: int,
        num_channels: int,
        use_1x1conv: bool = False,
        strides: int = 1,
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(
            input_channels, num_channels, kernel_size=3, padding=1, stride=strides
        )
        self.conv2 = nn.Conv2d(num_channels, num_channels, kernel_size=3, padding=1)
        self.conv3: nn.Conv2d | None
        if use_1x1conv:
            self.conv3 = nn.Conv2d(input_channels, num_channels, kernel_size=1, stride=strides)
        else:
            self.conv3 = None
        self.bn1 = nn.BatchNorm2d(num_channels)
        self.bn2 = nn.BatchNorm2d(num_channels)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        """relu(bn2(conv2(relu(bn1(conv1(X))))) + shortcut(X)), in d2l's call order."""
        Y = F.relu(self.bn1(self.conv1(X)))
        Y = self.bn2(self.conv2(Y))
        if self.conv3 is not None:
            X = self.conv3(X)
        Y += X
        return F.relu(Y)


def _stem() -> nn.Sequential:
    """The b1 stem shared by ResNet and DenseNet: 7×7/2 conv, BN, ReLU, 3×3/2 max-pool."""
    return nn.Sequential(
        nn.Conv2d(IN_CHANNELS, 64, kernel_size=7, stride=2, padding=3),
        nn.BatchNorm2d(64), nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
    )


def resnet_block(
    input_channels: int, num_channels: int, num_residuals: int, first_block: bool = False
) -> nn.Sequential:
    """A stage of `num_residuals` residuals; all but the first stage open with a 1×1/2 one."""
    blk: list[nn.Module] = []
    for i in range(num_residuals):
        if i == 0 and not first_block:
            blk.append(Residual(input_channels, num_channels, use_1x1conv=True, strides=2))
        else:
            blk.append(Residual(num_channels, num_channels))
    return nn.Sequential(*blk)


RESNET18_ARCH: tuple[tuple[int, int], ...] = ((2, 64), (2, 128), (2, 256), (2, 512))


def resnet18(num_classes: int = NUM_CLASSES) -> nn.Sequential:
    """ResNet-18 (d2l 8.6) for 96×96: children b1, b2..b5 and `last` (pool, flatten, fc)."""
    net = nn.Sequential(_stem())
    in_channels = 64
    for i, (num_residuals, num_channels) in enumerate(RESNET18_ARCH):
        net.add_module(
            f"b{i + 2}",
            resnet_block(in_channels, num_channels, num_residuals, first_block=(i == 0)),
        )
        in_channels = num_channels
    net.add_module(
        "last",
        nn.Sequential(
            nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(), nn.Linear(in_channels, num_classes)
        ),
    )
    return net


# ------------------------------------------------------------------------ DenseNet
def conv_block(input_channels: int, num_channels: int) -> nn.Sequential:
    """DenseNet's pre-activation unit (d2l 8.7): BN, ReLU, 3×3 conv."""
    return nn.Sequential(
        nn.BatchNorm2d(input_channels), nn.ReLU(),
        nn.Conv2d(input_channels, num_channels, kernel_size=3, padding=1),
    )


class DenseBlock(nn.Module):
    """`num_convs` conv_blocks; each one's output is concatenated onto its input."""

    def __init__(self, num_convs: int, input_channels: int, num_channels: int) -> None:
        super().__init__()
        layer = [
            conv_block(num_channels * i + input_channels, num_channels)
            for i in range(num_convs)
        ]
        self.net = nn.Sequential(*layer)
        self.out_channels = input_channels + num_convs * num_channels

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        """Grow `X` by `num_channels` channels per conv_block."""
        for blk in self.net:
            Y = blk(X)
            X = torch.cat((X, Y), dim=1)
        return X


def transition_block(input_channels: int, num_channels: int) -> nn.Sequential:
    """BN, ReLU, 1×1 conv to `num_channels`, then a 2×2 average pool (d2l 8.7)."""
    return nn.Sequential(
        nn.BatchNorm2d(input_channels), nn.ReLU(),
        nn.Conv2d(input_channels, num_channels, kernel_size=1),
        nn.AvgPool2d(kernel_size=2, stride=2),
    )


def densenet(
    num_channels: int = 64,
    growth_rate: int = 32,
    arch: tuple[int, ...] = (4, 4, 4, 4),
    num_classes: int = NUM_CLASSES,
) -> nn.Sequential:
    """DenseNet (d2l 8.7) for 96×96: b1, dense blocks with halving transitions, `last`."""
    net = nn.Sequential(_stem())
    for i, num_convs in enumerate(arch):
        net.add_module(f"dense_blk{i + 1}", DenseBlock(num_convs, num_channels, growth_rate))
        num_channels += num_convs * growth_rate
        if i != len(arch) - 1:
            net.add_module(
                f"tran_blk{i + 1}", transition_block(num_channels, num_channels // 2)
            )
            num_channels //= 2
    net.add_module(
        "last",
        nn.Sequential(
            nn.BatchNorm2d(num_channels), nn.ReLU(),
            nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(),
            nn.Linear(num_channels, num_classes),
        ),
    )
    return net


# ------------------------------------------------------------------------ registry
REFERENCE_NETS: dict[str, tuple[Callable[[], nn.Module], tuple[int, int, int], int]] = {
    "lenet": (lenet, (1, 28, 28), 61_706),
    "alexnet": (alexnet, (1, 224, 224), 46_764_746),
    "vgg11": (vgg11, (1, 224, 224), 128_806_154),
    "nin": (nin, (1, 224, 224), 1_992_166),
    "googlenet": (googlenet, (1, 96, 96), 5_977_530),
    "resnet18": (resnet18, (1, 96, 96), 11_178_378),
    "densenet": (densenet, (1, 96, 96), 758_226),
}
"""Spec name → (constructor, input shape (C, H, W), parameter count), from REFERENCE.md."""

BUFFER_COUNTS: dict[str, int] = {
    "resnet18": 7_825,
    "densenet": 6_629,
}
"""Spec name → total elements of all buffers (BatchNorm running stats and batch counters)."""
