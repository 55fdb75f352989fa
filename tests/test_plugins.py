"""Custom ops without patching archspec: the ``archspec.ops`` entry point group and :func:`register_op`.

The example plugin package lives in tests/plugin_pkg; the ``demo_plugin`` fixture (conftest.py)
installs it for these tests only.
"""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import entry_points
from typing import Any

import pytest
import torch
from pydantic import Field, StrictFloat

import archspec
from archspec.errors import ArchspecError
from archspec.ops import OPS, Op, OpParams, Shape, register_op
from archspec.plugins import ENTRY_POINT_GROUP, load_plugins

UPSAMPLER = """\
archspec: 1
name: upsampler
input: [3, 8, 8]
layers:
  - conv: {out: 12, k: 3, pad: 1}
  - pixel-shuffle: {factor: 2}
"""


pytestmark = pytest.mark.usefixtures("demo_plugin")


def _plugin_installed() -> bool:
    return any(ep.name == "demo" for ep in entry_points(group=ENTRY_POINT_GROUP))


def test_demo_plugin_is_installed_for_these_tests() -> None:
    assert _plugin_installed()


def test_entry_point_op_is_used_by_name() -> None:
    graph = archspec.analyze(UPSAMPLER)
    node = graph.nodes[graph.output]
    assert node.op == "pixel-shuffle"
    assert graph.output_shape == (3, 16, 16)
    assert node.label == "pixel-shuffle ×2"
    model = archspec.build(UPSAMPLER)
    assert isinstance(model.get_submodule(graph.output), torch.nn.PixelShuffle)
    assert tuple(model(torch.randn(2, 3, 8, 8)).shape) == (2, 3, 16, 16)
    assert any("pixel-shuffle" in info.ops for info in load_plugins())


def test_plugin_params_and_shape_rule_are_checked() -> None:
    with pytest.raises(ArchspecError) as exc:
        archspec.analyze(UPSAMPLER.replace("out: 12", "out: 10"))
    assert "divisible by 4, got 10" in str(exc.value)
    with pytest.raises(ArchspecError) as exc:
        archspec.analyze(UPSAMPLER.replace("factor: 2", "factr: 2"))
    assert exc.value.diagnostics[0].code == "E-UNKNOWN-KEY"
    assert exc.value.diagnostics[0].span.line == 6


def test_plugin_loads_lazily_in_a_fresh_process(tmp_path) -> None:
    """Built-in specs never import plugins; the first unknown op name does, and the CLI uses it."""
    code = (
        "import sys, archspec\n"
        "archspec.analyze('specs/lenet.yaml')\n"
        "assert 'archspec_demo_plugin.ops' not in sys.modules\n"
        "from archspec.cli import main\n"
        "sys.exit(main(['validate', sys.argv[1]]))\n"
    )
    from conftest import ROOT

    spec = tmp_path / "upsampler.yaml"
    spec.write_text(UPSAMPLER)
    run = subprocess.run([sys.executable, "-c", code, str(spec)], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "upsampler: ok" in run.stdout and "3×16×16" in run.stdout


def test_unregistered_op_is_unknown() -> None:
    text = UPSAMPLER.replace("pixel-shuffle: {factor: 2}", "pixel-unshuffle: {factor: 2}")
    with pytest.raises(ArchspecError) as exc:
        archspec.analyze(text)
    assert exc.value.diagnostics[0].code == "E-UNKNOWN-OP"
    assert "did you mean 'pixel-shuffle'" in (exc.value.diagnostics[0].hint or "")
    # A spec cannot name a module to import: a dotted path is just an unknown op.
    with pytest.raises(ArchspecError) as exc:
        archspec.analyze(UPSAMPLER.replace("pixel-shuffle", "archspec_demo_plugin.ops:PixelShuffle"))
    assert exc.value.diagnostics[0].code == "E-UNKNOWN-OP"


class _ScaleParams(OpParams):
    """Parameters of the test-only scale op."""

    by: StrictFloat = Field(description="Multiplier.")


class _Scale(Op):
    name = "test-scale"
    params_model = _ScaleParams
    summary = "Multiply by a constant."

    def lower(self, p: _ScaleParams, inputs: list[Shape], out: Shape) -> Any:
        class Scale(torch.nn.Module):
            def forward(self, x: torch.Tensor) -> torch.Tensor:
                return x * p.by

        return Scale()


def test_register_op_call_from_user_code() -> None:
    text = "archspec: 1\nname: s\ninput: [4]\nlayers:\n  - test-scale: {by: 2.0}\n"
    with pytest.raises(ArchspecError):
        archspec.analyze(text)
    register_op(_Scale)
    try:
        model = archspec.build(text)
        x = torch.randn(2, 4)
        torch.testing.assert_close(model(x), 2 * x)
    finally:
        del OPS["test-scale"]


def test_broken_plugin_is_a_diagnostic(monkeypatch: pytest.MonkeyPatch) -> None:
    from importlib.metadata import EntryPoint

    import archspec.plugins as plugins

    broken = EntryPoint("broken", "archspec_no_such_module_xyz", ENTRY_POINT_GROUP)
    monkeypatch.setattr(plugins, "entry_points", lambda group: [broken])
    monkeypatch.setattr(plugins, "_loaded", None)
    with pytest.raises(ArchspecError) as exc:
        load_plugins()
    diag = exc.value.diagnostics[0]
    assert diag.code == "E-PLUGIN" and "broken" in diag.message and "ModuleNotFoundError" in diag.message
    assert plugins._loaded is None


def test_block_may_share_a_plugin_ops_name_whether_or_not_plugins_are_loaded(tmp_path) -> None:
    """Only built-in op names are reserved for blocks: a spec must not turn invalid because some
    package is installed, or because another spec in the process happened to load the plugins."""
    spec = tmp_path / "net.yaml"
    spec.write_text("archspec: 1\nname: net\ninput: [4, 8, 8]\nblocks:\n  pixel_shuffle:\n    layers:\n"
                    "      - relu\nlayers:\n  - pixel_shuffle\n", encoding="utf-8")
    code = ("import sys, archspec\nfrom archspec.plugins import load_plugins\n"
            "if sys.argv[2] == 'loaded':\n    load_plugins()\n"
            "g = archspec.analyze(sys.argv[1])\nprint(sorted({n.op for n in g.nodes.values()}))")
    for state in ("fresh", "loaded"):
        out = subprocess.run([sys.executable, "-c", code, str(spec), state], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == "['relu']", state  # the block, not the plugin op
    bad = tmp_path / "bad.yaml"
    bad.write_text(spec.read_text(encoding="utf-8").replace("pixel_shuffle", "relu"), encoding="utf-8")
    with pytest.raises(ArchspecError, match="shadows the built-in op"):
        archspec.analyze(bad)
