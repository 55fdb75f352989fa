"""Compiled specs behave like hand-written modules in the PyTorch ecosystem.

torch.compile (zero graph breaks, same outputs), torch.export, torch.jit.trace, deepcopy, pickle,
state_dict round trips, dtype conversion, train/eval and the meta device.

``torch.compile`` with the default Inductor back end takes 5–80 s per 224×224 seed on two cores, so
every seed is checked with ``torch._dynamo.explain`` and compiled with ``fullgraph=True`` on the
``aot_eager`` back end (Dynamo capture + AOTAutograd, no code generation), and LeNet is also
compiled end to end with Inductor.  ``torch.jit.trace`` (deprecated upstream) is checked on three seeds.
"""

from __future__ import annotations

import copy
import io
import pickle

import pytest
import torch

import archspec
from conftest import SEEDS, SPECS

INDUCTOR_SEEDS = ["lenet"]
TRACE_SEEDS = ["lenet", "googlenet", "resnet18"]


pytestmark = pytest.mark.usefixtures("two_threads")


def _model_and_input(name: str, batch: int = 1) -> tuple[torch.nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    model = archspec.build(SPECS / f"{name}.yaml").eval()
    shape = archspec.analyze(SPECS / f"{name}.yaml").input_shape
    return model, torch.randn(batch, *shape)


@pytest.mark.parametrize("name", SEEDS)
def test_dynamo_no_graph_breaks_and_same_outputs(name: str) -> None:
    model, x = _model_and_input(name)
    torch._dynamo.reset()
    explanation = torch._dynamo.explain(model)(x)
    assert explanation.graph_break_count == 0, explanation.break_reasons
    assert explanation.graph_count == 1
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    with torch.no_grad():
        expected = model(x)
        got = compiled(x)
    torch.testing.assert_close(got, expected)


@pytest.mark.parametrize("name", INDUCTOR_SEEDS)
def test_inductor_compile_same_outputs(name: str) -> None:
    model, x = _model_and_input(name, batch=2)
    torch._dynamo.reset()
    compiled = torch.compile(model, fullgraph=True)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", SEEDS)
def test_torch_export(name: str) -> None:
    model, x = _model_and_input(name)
    exported = torch.export.export(model, (x,))
    with torch.no_grad():
        torch.testing.assert_close(exported.module()(x), model(x))


@pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")
@pytest.mark.parametrize("name", TRACE_SEEDS)
def test_jit_trace(name: str) -> None:
    model, x = _model_and_input(name)
    with torch.no_grad():
        expected = model(x)
        traced = torch.jit.trace(model, (x,), check_trace=False)
        torch.testing.assert_close(traced(x), expected)
        other = torch.randn_like(x)
        torch.testing.assert_close(traced(other), model(other))


@pytest.mark.parametrize("name", ["lenet", "resnet18", "googlenet"])
def test_deepcopy_pickle_state_dict(name: str) -> None:
    model, x = _model_and_input(name)
    with torch.no_grad():
        expected = model(x)
        clone = copy.deepcopy(model)
        assert clone is not model
        torch.testing.assert_close(clone(x), expected)
        restored = pickle.loads(pickle.dumps(model))
        torch.testing.assert_close(restored(x), expected)
        assert [k for k, _ in restored.named_modules()] == [k for k, _ in model.named_modules()]
        assert list(restored.state_dict()) == list(model.state_dict())

        buf = io.BytesIO()
        torch.save(model.state_dict(), buf)
        buf.seek(0)
        fresh = archspec.build(SPECS / f"{name}.yaml").eval()
        assert not torch.equal(fresh(x), expected)  # a different random initialisation
        fresh.load_state_dict(torch.load(buf, weights_only=True))
        torch.testing.assert_close(fresh(x), expected)
        # Weights are independent copies: changing the clone leaves the original alone.
        next(clone.parameters()).add_(1.0)
        torch.testing.assert_close(model(x), expected)


@pytest.mark.parametrize("name", ["lenet", "resnet18"])
def test_dtype_and_train_eval(name: str) -> None:
    model, x = _model_and_input(name, batch=2)
    with torch.no_grad():
        expected = model(x)
        double = copy.deepcopy(model).to(torch.float64)
        assert all(p.dtype == torch.float64 for p in double.parameters())
        torch.testing.assert_close(double(x.double()).float(), expected, rtol=1e-4, atol=1e-5)
        built = archspec.build(SPECS / f"{name}.yaml", dtype=torch.float64)
        assert all(p.dtype == torch.float64 for p in built.parameters())

    model.train()
    assert all(m.training for m in model.modules())
    model.eval()
    assert not any(m.training for m in model.modules())
    # In train mode a gradient flows to every parameter.
    model.train()
    model(x).sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_train_mode_changes_batchnorm_statistics() -> None:
    model, x = _model_and_input("resnet18", batch=2)
    bn = model.get_submodule("b1.bn1")
    before = bn.running_mean.clone()
    model.eval()
    with torch.no_grad():
        model(x)
    assert torch.equal(bn.running_mean, before)
    model.train()
    with torch.no_grad():
        model(x)
    assert not torch.equal(bn.running_mean, before)


@pytest.mark.parametrize("name", SEEDS)
def test_meta_device(name: str) -> None:
    model = archspec.build(SPECS / f"{name}.yaml", device="meta")
    assert all(p.is_meta for p in model.parameters())
    shape = archspec.analyze(SPECS / f"{name}.yaml").input_shape
    out = model(torch.empty(2, *shape, device="meta"))
    assert out.is_meta and tuple(out.shape) == (2, 10)
    # Materialise on the CPU and initialise, as with any meta-built module.
    real = model.to_empty(device="cpu")
    for m in real.modules():
        if hasattr(m, "reset_parameters"):
            m.reset_parameters()
    assert all(torch.isfinite(p).all() for p in real.parameters())
    assert tuple(real(torch.randn(1, *shape)).shape) == (1, 10)
