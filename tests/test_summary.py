"""``archspec summary``: a torchinfo/Keras-style table with hierarchy, shapes, counts, totals and memory."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
import torch

import archspec
from archspec.cli import main
from archspec.summary import summary_json, summary_rows
from conftest import ROOT, SEEDS, SPECS


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("name", SEEDS)
def test_totals_match_the_built_model(name: str) -> None:
    graph = archspec.analyze(SPECS / f"{name}.yaml")
    data = summary_json(graph, batch_size=4)
    model = archspec.build(graph, device="meta")
    params = sum(p.numel() for p in model.parameters())
    buffers = sum(b.numel() for b in model.buffers())
    t = data["totals"]
    assert (t["params"], t["trainable_params"], t["non_trainable_params"]) == (params, params, 0)
    assert t["buffers"] == buffers
    assert t["macs_batch"] == 4 * t["macs"] > 0
    mem = t["memory_bytes"]
    assert mem["params"] == 4 * params and mem["input"] == 4 * 4 * math.prod(graph.input_shape)
    assert mem["total"] == mem["params"] + mem["buffers"] + mem["input"] + mem["activations"]
    # Top-level rows add up to the totals.
    top = [r for r in data["rows"] if r["depth"] == 1]
    assert sum(r["params"] for r in top) == params
    assert sum(r["macs"] for r in top) == t["macs"]
    assert top[-1]["output_shape"] == [10]


@pytest.mark.parametrize(("spec", "dtype"), [("lenet.yaml", "float32"), ("resnet18.yaml", "float32"),
                                           ("densenet.yaml", "float16"), ("imagenet/resnet50.yaml", "float32"),
                                           ("imagenet/mobilenet_v2.yaml", "bfloat16"),
                                           ("imagenet/googlenet.yaml", "float64")])
def test_weight_bytes_equal_the_state_dict(spec: str, dtype: str) -> None:
    """Parameters and float buffers take ``dtype``; BatchNorm's num_batches_tracked stays int64 (8 bytes)."""
    graph = archspec.analyze(SPECS / spec)
    t = summary_json(graph, dtype=dtype)["totals"]
    model = archspec.build(graph, device="meta").to(getattr(torch, dtype))
    state = model.state_dict().values()
    assert t["memory_bytes"]["state_dict"] == sum(v.numel() * v.element_size() for v in state)
    by_dtype: dict[str, int] = {}
    for v in state:
        name = str(v.dtype).removeprefix("torch.")
        by_dtype[name] = by_dtype.get(name, 0) + v.numel() * v.element_size()
    assert t["state_dict_by_dtype"] == by_dtype
    assert t["int64_buffers"] == sum(v.numel() for v in state if v.dtype == torch.int64)
    assert t["memory_bytes"]["params"] == sum(v.numel() * v.element_size() for v in model.parameters())


def test_activation_memory_matches_a_forward_pass() -> None:
    """Forward activations = the bytes of every node output, as recorded by forward hooks."""
    graph = archspec.analyze(SPECS / "resnet18.yaml")
    model = archspec.build(graph, device="meta").eval()
    seen: list[int] = []
    leaves = [m for m in model.modules() if not list(m.children())]
    handles = [m.register_forward_hook(lambda _m, _i, o: seen.append(o.numel() * o.element_size())) for m in leaves]
    model(torch.empty(8, *graph.input_shape, device="meta"))
    for h in handles:
        h.remove()
    merges = sum(math.prod(n.shape) * 8 * 4 for n in graph.nodes.values() if n.op in ("add", "concat"))
    assert summary_json(graph, batch_size=8)["totals"]["memory_bytes"]["activations"] == sum(seen) + merges


def test_depth_folds_rows() -> None:
    graph = archspec.analyze(SPECS / "resnet18.yaml")
    deep = summary_rows(graph, None)
    one = summary_rows(graph, 1)
    two = summary_rows(graph, 2)
    assert [r["name"] for r in one] == ["b1", "stage1", "stage2", "stage3", "stage4", "gap1", "flatten1", "linear1"]
    assert len(one) < len(two) < len(deep)
    assert {r["name"] for r in deep} >= set(graph.nodes)
    stage2 = next(r for r in one if r["name"] == "stage2")
    assert stage2["type"] == "stage" and stage2["kind"] == "block" and stage2["output_shape"] == [128, 12, 12]
    assert stage2["params"] == sum(r["params"] for r in two if r["name"].startswith("stage2."))


def test_repeated_layers_have_distinct_names_in_tables_and_modules() -> None:
    """dense_concat2 holds conv_block2 (not a second conv_block1): rows and state_dict keys tell them apart."""
    graph = archspec.analyze(SPECS / "densenet.yaml")
    rows = [r["name"] for r in summary_rows(graph, 3) if r["type"] == "conv_block"]
    assert rows[:4] == [f"dense_block1.dense_concat{i}.conv_block{i}" for i in range(1, 5)]
    keys = archspec.build(graph, device="meta").state_dict()
    assert "dense_block1.dense_concat2.conv_block2.conv1.weight" in keys
    assert not any(".dense_concat2.conv_block1." in k for k in keys)


def test_cli_table_is_aligned(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "summary", str(SPECS / "googlenet.yaml"), "--depth", "2", "--batch-size", "16")
    assert code == 0
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("layer"))
    assert lines[header].split() == ["layer", "type", "output", "params", "buffers", "MACs"]
    body = lines[header + 2: next(i for i in range(header + 2, len(lines)) if lines[i].startswith("==="))]
    assert any(line.startswith("  inception1") for line in body)  # hierarchy is indented
    ends = {len(line) for line in body}
    assert len(ends) == 1  # right-aligned numbers end in one column
    assert "Total params: 5,977,530" in out
    assert "per batch of 16" in out and "Forward activations (batch 16, float32)" in out and "Estimated total" in out


def test_units_are_labelled(capsys: pytest.CaptureFixture[str]) -> None:
    """Binary units are called MiB (resnet50's 102,441,032 bytes are 97.70 MiB, not "97.70 MB")."""
    code, out, _ = _run(capsys, "summary", str(SPECS / "imagenet" / "resnet50.yaml"), "--depth", "1")
    assert code == 0
    assert "Weights (state_dict, float32): 97.70 MiB = 102,441,032 bytes (float32 102,440,608, int64 424)" in out
    assert "Buffers: 53,173 elements (53,120 float32 BatchNorm statistics, 53 int64 num_batches_tracked)" in out
    assert " MB" not in out.replace("1.048576 MB", "")
    code, out, _ = _run(capsys, "summary", str(SPECS / "lenet.yaml"), "--dtype", "float16")
    assert code == 0 and "Input (batch 1, float16): 1.53 KiB" in out  # 784 × 2 bytes


def test_cli_json_and_markdown(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "summary", str(SPECS / "lenet.yaml"), "--json", "--dtype", "float16")
    assert code == 0
    data = json.loads(out)
    assert data["totals"]["params"] == 61_706 and data["totals"]["memory_bytes"]["params"] == 2 * 61_706
    assert data["rows"][0] == {"name": "conv1", "depth": 1, "kind": "op", "type": "conv 5, 6",
                               "output_shape": [6, 28, 28], "params": 156, "buffers": 0, "macs": 117_600}
    code, out, _ = _run(capsys, "summary", str(SPECS / "lenet.yaml"), "--markdown")
    assert code == 0
    assert "| layer | type | output | params | buffers | MACs |" in out
    assert "| conv1 | conv 5, 6 | 6×28×28 | 156 | 0 | 117,600 |" in out
    assert "- Total params: 61,706" in out


def test_cli_usage_and_spec_errors(capsys: pytest.CaptureFixture[str], tmp_path) -> None:
    assert _run(capsys, "summary", str(SPECS / "lenet.yaml"), "--batch-size", "0")[0] == 2
    assert _run(capsys, "summary", str(SPECS / "lenet.yaml"), "--depth", "0")[0] == 2
    with pytest.raises(SystemExit) as exc:
        main(["summary", str(SPECS / "lenet.yaml"), "--depth", "x"])
    assert exc.value.code == 2
    bad = tmp_path / "bad.yaml"
    bad.write_text("archspec: 1\nname: bad\ninput: [1, 8, 8]\nlayers:\n  - conv: {out: 4, k: 9}\n")
    code, _, err = _run(capsys, "summary", str(bad))
    assert code == 1 and f"{bad}:5:" in err and "Traceback" not in err


def test_summary_does_not_import_torch() -> None:
    code = ("import sys; from archspec.cli import main; rc = main(['summary', 'specs/resnet18.yaml']); "
            "assert 'torch' not in sys.modules, 'torch imported'; sys.exit(rc)")
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
