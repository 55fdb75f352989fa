"""specs/unet.yaml: a U-Net written with blocks of two inputs, against a hand-written PyTorch U-Net.

The reference is the structure of milesial/Pytorch-UNet (``UNet(n_channels=3, n_classes, bilinear=False)``):
``DoubleConv`` = (3×3 conv without bias → BN → ReLU) × 2, ``Down`` = 2×2 max-pool → DoubleConv,
``Up`` = 2×2 transposed conv (stride 2) of the lower level → ``cat([skip, up])`` → DoubleConv, and a 1×1
output conv.  Written here independently of the spec, so the two can only agree by computing the same thing.
Models run at 1×3×32×32 (the smallest size the four poolings and skips allow is 16×16).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from torch import nn

import archspec
from archspec import ArchspecError
from archspec.emit_python import emit_python
from archspec.render import to_dot
from archspec.summary import summary_table
from conftest import SPECS
from helpers_emit import assert_emitted_equals_build, load_emitted
from weight_transfer import copy_weights

pytestmark = pytest.mark.usefixtures("two_threads")

UNET = SPECS / "unet.yaml"
SMALL = (3, 32, 32)


class DoubleConv(nn.Module):
    """(3×3 conv, no bias → BN → ReLU) twice."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.double_conv = nn.Sequential(
            nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.double_conv(x)


class Down(nn.Module):
    """2×2 max-pool, then a double conv."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.maxpool_conv = nn.Sequential(nn.MaxPool2d(2), DoubleConv(cin, cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.maxpool_conv(x)


class Up(nn.Module):
    """2×2 transposed conv of the lower level, concatenated after the skip, then a double conv."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(cin, cin // 2, kernel_size=2, stride=2)
        self.conv = DoubleConv(cin, cout)

    def forward(self, low: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([skip, self.up(low)], dim=1))


class UNet(nn.Module):
    """milesial/Pytorch-UNet's UNet with bilinear=False."""

    def __init__(self, n_channels: int = 3, n_classes: int = 2) -> None:
        super().__init__()
        self.inc = DoubleConv(n_channels, 64)
        self.down1, self.down2 = Down(64, 128), Down(128, 256)
        self.down3, self.down4 = Down(256, 512), Down(512, 1024)
        self.up1, self.up2 = Up(1024, 512), Up(512, 256)
        self.up3, self.up4 = Up(256, 128), Up(128, 64)
        self.outc = nn.Conv2d(64, n_classes, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.inc(x)
        x2 = self.down1(x1)
        x3 = self.down2(x2)
        x4 = self.down3(x3)
        x5 = self.down4(x4)
        x = self.up1(x5, x4)
        x = self.up2(x, x3)
        x = self.up3(x, x2)
        x = self.up4(x, x1)
        return self.outc(x)


def _n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_static_shapes_at_every_level() -> None:
    g = archspec.analyze(UNET)
    assert g.input_shape == (3, 256, 256) and g.output_shape == (2, 256, 256)
    levels = {"inc": (64, 256, 256), "down1": (128, 128, 128), "down2": (256, 64, 64), "down3": (512, 32, 32),
              "down4": (1024, 16, 16), "up1": (512, 32, 32), "up2": (256, 64, 64), "up3": (128, 128, 128),
              "up4": (64, 256, 256)}
    for name, shape in levels.items():
        assert g.shape_of(g.groups[name].output) == shape, name
    # Each up step is one instance of block 'up' reading the level below and the skip of its own level.
    for i, (low, skip) in enumerate([("down4", "down3"), ("up1", "down2"), ("up2", "down1"), ("up3", "inc")], start=1):
        up = g.groups[f"up{i}"]
        assert up.kind == "block" and up.block == "up" and up.input == g.groups[low].output
        assert g.nodes[f"up{i}.up"].inputs == (g.groups[low].output,)
        assert g.nodes[f"up{i}.cat"].inputs == (g.groups[skip].output, f"up{i}.up")
        assert g.nodes[f"up{i}.cat"].shape == (2 * levels[skip][0], *levels[skip][1:])
    assert [grp.block for grp in g.groups.values() if grp.parent == ""] == ["double_conv"] + ["down"] * 4 + ["up"] * 4
    assert g.nodes["outc"].shape == (2, 256, 256)


def test_classes_parameter_and_input_size() -> None:
    assert archspec.analyze(UNET, {"classes": 5}).output_shape == (5, 256, 256)
    assert archspec.analyze(UNET, input_shape=(1, 64, 48)).output_shape == (2, 64, 48)


def test_same_parameter_count_as_the_reference() -> None:
    g = archspec.analyze(UNET)
    ref = UNet(3, 2)
    assert g.total.params == _n_params(ref)
    assert g.total.buffers == sum(b.numel() for b in ref.buffers())  # BN running statistics and batch counters
    model = archspec.build(UNET, device="meta")
    assert _n_params(model) == g.total.params
    assert archspec.analyze(UNET, {"classes": 7}).total.params == _n_params(UNet(3, 7))


def test_same_function_with_copied_weights() -> None:
    torch.manual_seed(0)
    ref = UNet(3, 2)
    model = archspec.build(UNET, input_shape=SMALL)
    x = torch.randn(1, *SMALL)
    for m in ref.modules():  # non-trivial BN statistics, so that eval mode is really compared
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 1.5)
    copy_weights(ref, model, x)  # pairs the layers by call order, checking each pair's type and tensor shapes
    ref.eval()
    model.eval()
    with torch.no_grad():
        want = ref(x)
        got = model(x)
    assert got.shape == (1, 2, 32, 32)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def test_emit_python_render_and_summary_handle_two_input_blocks(tmp_path: Path) -> None:
    graph = archspec.analyze(UNET, input_shape=SMALL)
    module, cls = load_emitted(emit_python(graph), tmp_path / "emitted_unet.py")
    assert cls is module.Unet
    torch.manual_seed(0)
    assert_emitted_equals_build(graph, cls)
    # The diagram draws each up step as a cluster (or box) with both of its inputs wired in.
    dot = to_dot(graph)
    for i in range(1, 5):
        assert f"up{i}" in dot
    table = summary_table(graph)
    assert re.search(r"^up1\s+up\s+512×4×4", table, re.MULTILINE), table
    assert "31,037,698" in table


def _instance_line(name: str) -> int:
    lines = UNET.read_text(encoding="utf-8").splitlines()
    return next(i for i, line in enumerate(lines, start=1) if line.strip() == f"name: {name}") - 1


def test_input_size_that_does_not_divide_by_16_is_a_clear_shape_error() -> None:
    with pytest.raises(ArchspecError) as exc:
        archspec.analyze(UNET, input_shape=(3, 100, 100))
    (d,) = exc.value.diagnostics
    # 100 → 50 → 25 → 12 → 6: up1 meets 12×12 and 12×12, up2 brings 24×24 to the 25×25 skip.
    assert d.code == "E-SHAPE" and "up2.cat" in d.message
    assert "256×25×25" in d.message and "256×24×24" in d.message
    (note,) = d.notes
    assert note.span is not None and note.span.line == _instance_line("up2")
    assert "low = up1 (512×12×12)" in note.message and "skip = down2 (256×25×25)" in note.message


def test_skip_of_the_wrong_level_is_reported_at_its_instance() -> None:
    text = UNET.read_text(encoding="utf-8")
    bad = text.replace("from: [up2, down1]", "from: [up2, down2]")
    assert bad != text
    with pytest.raises(ArchspecError) as exc:
        archspec.analyze(bad)
    (d,) = exc.value.diagnostics
    assert d.code == "E-SHAPE" and "up3.cat" in d.message
    assert "256×64×64" in d.message and "128×128×128" in d.message
    assert d.notes[0].span is not None and d.notes[0].span.line == _instance_line("up3")
    assert "skip = down2 (256×64×64)" in d.notes[0].message


def test_by_name_binding_builds_the_same_network() -> None:
    text = UNET.read_text(encoding="utf-8")
    named = text.replace("from: [down4, down3]", "from: {skip: down3, low: down4}")
    assert named != text
    a, b = archspec.analyze(text), archspec.analyze(named)
    assert [(n.name, n.inputs, n.shape) for n in a.nodes.values()] == [(n.name, n.inputs, n.shape) for n in b.nodes.values()]
