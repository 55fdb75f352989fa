"""The networks of issues 14 and 15 in the PyTorch ecosystem: compile, export, ONNX, ejected Python, diagrams.

Every network spec added for them in ``specs/imagenet/`` (the ``*_family.yaml`` libraries are not
networks) is checked, at 3×32×32 (Inception v3 at 3×75×75, the smallest it takes), batch 2–3:

* Dynamo captures it whole: one graph and no graph break in eval mode (a single capture serves as
  ``torch._dynamo.explain`` and as ``torch.compile(fullgraph=True, backend="aot_eager")``, whose
  outputs must equal eager's) and in train mode (``torch._dynamo.explain``);
* ``torch.export.export`` with a dynamic batch, traced at batch 2, runs batch 3 with eager's outputs;
* ``archspec.export.export_onnx`` writes a model whose batch stays dynamic: onnxruntime runs it at
  batch 3 with eager's outputs;
* ``archspec build SPEC --emit-python`` writes torch-only source that compiles, imports and, with the
  built model's ``state_dict``, computes the same outputs;
* ``archspec render --format dot`` and ``archspec summary`` succeed on the spec.

Swin-T runs at full width: at 32×32 its stages are 8×8 (shifted windows over a grid padded to 14×14),
4×4 (one padded window, no shift), 2×2 and 1×1, every branch of its window attention.  ViT-B/16's
ecosystem checks live in ``tests/test_tokens.py``; the compiled-output comparison it lacks is here.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
import torch._dynamo as dynamo
from torch import nn

import archspec
from archspec.cli import main
from archspec.ir import Graph
from conftest import SPECS
from helpers_emit import assert_emitted_equals_build, load_emitted
from test_emit_python import _imports

pytestmark = pytest.mark.usefixtures("two_threads")

NETWORKS = ["convnext_tiny", "efficientnet_b0", "inception_v3", "mnasnet1_0", "mobilenet_v2", "mobilenet_v3_large",
            "mobilenet_v3_small", "regnet_y_400mf", "resnext50_32x4d", "shufflenet_v2_x1_0", "squeezenet1_0",
            "squeezenet1_1", "swin_t", "wide_resnet50_2"]
#: The input each network runs at: 3×32×32, except Inception v3 (its stem and grid reductions need 75×75).
INPUTS = {name: (3, 75, 75) if name == "inception_v3" else (3, 32, 32) for name in NETWORKS}


def _spec(name: str) -> Path:
    return SPECS / "imagenet" / f"{name}.yaml"


@functools.cache
def _graph(name: str) -> Graph:
    return archspec.analyze(_spec(name), input_shape=INPUTS[name])


def _model(name: str) -> nn.Module:
    torch.manual_seed(0)
    return archspec.build(_graph(name)).eval()


def _input(name: str, batch: int) -> torch.Tensor:
    return torch.randn(batch, *INPUTS[name], generator=torch.Generator().manual_seed(batch))


def test_every_new_network_spec_is_checked() -> None:
    """NETWORKS is every network spec in specs/imagenet/ but the ones that came before issues 14 and 15 and ViT-B/16."""
    earlier = {"alexnet", "densenet121", "densenet161", "googlenet", "resnet18", "resnet34", "resnet50", "resnet101",
               "vgg11", "vgg11_bn", "vgg16"}
    specs = {p.stem for p in (SPECS / "imagenet").glob("*.yaml") if not p.stem.endswith("_family")}
    assert sorted(specs - earlier - {"vit_b_16"}) == NETWORKS


# ------------------------------------------------------------------ Dynamo, torch.compile, torch.export


class _Recorder:
    """A torch.compile back end that records each graph Dynamo hands over, then runs it with ``aot_eager``."""

    def __init__(self) -> None:
        self.graphs: list[torch.fx.GraphModule] = []

    def __call__(self, gm: torch.fx.GraphModule, example_inputs: list[torch.Tensor]) -> Callable[..., Any]:
        from torch._dynamo.backends.debugging import aot_eager

        self.graphs.append(gm)
        return aot_eager(gm, example_inputs)


@pytest.mark.parametrize("name", NETWORKS)
def test_dynamo_captures_one_graph_and_aot_eager_matches(name: str) -> None:
    model = _model(name)
    x = _input(name, 2)
    dynamo.reset()
    recorder = _Recorder()
    compiled = torch.compile(model, fullgraph=True, backend=recorder)  # fullgraph: a graph break raises
    with torch.no_grad():
        got = compiled(x)
        expected = model(x)
    assert len(recorder.graphs) == 1
    torch.testing.assert_close(got, expected)
    model.train()
    dynamo.reset()
    explained = dynamo.explain(model)(x)
    assert explained.graph_break_count == 0 and explained.graph_count == 1, explained.break_reasons
    dynamo.reset()


@pytest.mark.parametrize("name", NETWORKS)
def test_torch_export_keeps_the_batch_dynamic(name: str) -> None:
    model = _model(name)
    program = torch.export.export(model, (_input(name, 2),), dynamic_shapes=({0: torch.export.Dim("batch")},))
    y = _input(name, 3)
    with torch.no_grad():
        torch.testing.assert_close(program.module()(y), model(y), rtol=1e-5, atol=1e-6)


def test_compiled_vit_matches_eager_in_eval_and_train() -> None:
    """ViT-B/16 (small, as in test_tokens.py): aot_eager's outputs are eager's (dropout 0: train mode is deterministic)."""
    from test_tokens import SMALL, SMALL_INPUT, VIT

    torch.manual_seed(0)
    model = archspec.build(VIT, input_shape=SMALL_INPUT, **SMALL)
    x = torch.randn(2, *SMALL_INPUT)
    for training in (False, True):
        model.train(training)
        dynamo.reset()
        compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
        with torch.no_grad():
            torch.testing.assert_close(compiled(x), model(x))
    dynamo.reset()


# ------------------------------------------------------------------ ONNX


@pytest.mark.parametrize("name", NETWORKS)
def test_onnx_export_runs_at_another_batch(name: str, tmp_path: Path) -> None:
    import onnxruntime as ort

    from archspec.export import export_onnx

    model = _model(name)
    out = tmp_path / f"{name}.onnx"
    export_onnx(_graph(name), out, model=model)  # the default request, batch 1 (traced with 2)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape == ["batch", *INPUTS[name]]
    x = _input(name, 3)
    (got,) = session.run(None, {"input": x.numpy()})
    del session
    out.unlink()  # (wide_resnet50_2 writes 276 MB)
    with torch.no_grad():
        expected = model(x)
    # Inception v3 as torchvision initialises it has logits near 1e8, where float32 rounding differs by hundreds
    # (eager float32 is as far from float64): the absolute tolerance follows the output's scale.
    scale = max(1.0, expected.abs().max().item())
    torch.testing.assert_close(torch.from_numpy(got), expected, rtol=1e-4, atol=1e-5 * scale)


SWIN_LIKE = """\
archspec: 1
name: swin_like
input: [3, 32, 32]
layers:
  - conv: {out: 8, k: 4, stride: 4}          # an 8×8 grid of tokens
  - to-tokens
  - window-attention: {heads: 2, shift: 3}   # padded to 14×14: four shifted windows, then cropped
  - linear: {out: 8}
  - merge-patches                            # 4×4
  - window-attention: {heads: 2, shift: 3}   # padded to 7×7: one window, so no shift
  - linear: {out: 64}
  - gelu
  - linear: {out: 16}
  - merge-patches                            # 2×2
  - merge-patches                            # 1×1
  - window-attention: {heads: 2}             # one token padded to 7×7
  - linear: {out: 8}
  - mean-tokens
  - linear: {out: 5}
"""


def test_window_attention_exports_from_a_batch_of_one_with_the_batch_dynamic(tmp_path: Path) -> None:
    """torch's ONNX exporter traced at batch 1 (as a user calling it directly may) keeps Swin's batch dynamic.

    Cropping the padded grid and broadcasting one window's bias over the batch used to make torch ask
    whether the batch is 1, which fixed it in the exported graph (onnxruntime refused other batches).
    """
    import contextlib
    import io
    import warnings

    import onnxruntime as ort

    graph = archspec.analyze(SWIN_LIKE)
    torch.manual_seed(0)
    model = archspec.build(graph).eval()
    out = tmp_path / "swin_like.onnx"
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        program = torch.onnx.export(model, (torch.randn(1, 3, 32, 32),), input_names=["input"], dynamo=True,
                                    dynamic_shapes=({0: torch.export.Dim("batch")},))
    program.save(str(out))
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape == ["batch", 3, 32, 32]
    x = torch.randn(3, 3, 32, 32)
    (got,) = session.run(None, {"input": x.numpy()})
    with torch.no_grad():
        torch.testing.assert_close(torch.from_numpy(got), model(x), rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------ ejected Python, render, summary


@pytest.mark.parametrize("name", NETWORKS)
def test_emitted_python_computes_the_same(name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / f"emitted_{name}.py"
    size = ",".join(map(str, INPUTS[name]))
    assert main(["build", str(_spec(name)), "--input", size, "--emit-python", str(out)]) == 0
    assert str(out) in capsys.readouterr().err
    text = out.read_text(encoding="utf-8")
    compile(text, str(out), "exec")
    assert _imports(text) == {"torch"}
    _, cls = load_emitted(text, out)
    torch.manual_seed(0)
    assert_emitted_equals_build(_graph(name), cls)  # same state_dict layout; with its weights, the same outputs


@pytest.mark.parametrize("name", NETWORKS)
def test_render_and_summary(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    graph = archspec.analyze(_spec(name))
    assert main(["render", str(_spec(name)), "--format", "dot"]) == 0
    dot = capsys.readouterr().out
    assert dot.startswith(f'digraph "{name}" {{') and dot.rstrip().endswith("}")
    assert f"{graph.total.params:,} params" in dot
    assert main(["summary", str(_spec(name))]) == 0
    table = capsys.readouterr().out
    assert f"{graph.total.params:,}" in table and f"{graph.total.macs:,}" in table
