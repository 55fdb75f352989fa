"""ONNX export (``archspec export SPEC --format onnx -o model.onnx``).

The ``test`` extra installs the ``onnx`` extra's packages, so these tests always run.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

import archspec
from archspec.cli import main
from archspec.export import export_onnx
from conftest import SPECS


def test_missing_extra_is_a_clear_message(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "onnx", None)  # makes 'import onnx' raise ImportError
    out = tmp_path / "m.onnx"
    assert main(["export", str(SPECS / "lenet.yaml"), "--format", "onnx", "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert "needs the optional 'onnx' extra (missing: onnx" in err and "pip install 'archspec[onnx]'" in err
    assert "Traceback" not in err and not out.exists()


def test_export_requires_output(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["export", str(SPECS / "lenet.yaml")])
    assert exc.value.code == 2


def test_cli_export_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import onnx
    import onnxruntime as ort
    out = tmp_path / "lenet.onnx"
    assert main(["export", str(SPECS / "lenet.yaml"), "--format", "onnx", "-o", str(out)]) == 0
    assert str(out) in capsys.readouterr().out
    proto = onnx.load(str(out))
    onnx.checker.check_model(proto)
    assert [i.name for i in proto.graph.input] == ["input"]
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"input": torch.randn(5, 1, 28, 28).numpy()})
    assert got.shape == (5, 10)


@pytest.mark.parametrize("name", ["resnet18", "googlenet"])
def test_onnx_runs_with_same_outputs(name: str, tmp_path: Path) -> None:
    import onnxruntime as ort
    graph = archspec.analyze(SPECS / f"{name}.yaml")
    torch.manual_seed(0)
    model = archspec.build(graph)
    out = tmp_path / f"{name}.onnx"
    assert export_onnx(graph, out, model=model) == out.stat().st_size
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    x = torch.randn(3, *graph.input_shape)  # batch 3: the batch dimension is dynamic
    (got,) = session.run(None, {"input": x.numpy()})
    with torch.no_grad():
        torch.testing.assert_close(torch.from_numpy(got), model.eval()(x), rtol=1e-4, atol=1e-5)
