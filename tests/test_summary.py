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
    assert "per batch of 16" in out and "Forward activations (batch 16)" in out and "Estimated total" in out


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
