"""The static pipeline never imports torch.

Each case runs the CLI (or the Python API) in a fresh interpreter and then looks for ``torch`` in
``sys.modules``: read, validate, expand, infer, render and summary must work without it, and so must
``build --json`` for a model over the parameter limit (summarised statically, nothing allocated).
A control case checks that ``build`` does import torch, so the probe itself can fail.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import SPECS

PROBE = r"""
import json, sys
from archspec.cli import main
status = main(sys.argv[1:])
print("\n" + json.dumps({"status": status, "torch": sorted(m for m in sys.modules if m == "torch" or m.startswith("torch."))}))
"""

HUGE = """archspec: 1
name: huge
input: [3, 224, 224]
layers:
  - conv: {out: 8192, k: 3, pad: 1}
  - flatten
  - linear: {out: 65536}
"""


def _probe(*argv: str) -> dict[str, object]:
    proc = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _commands() -> list[str]:
    from archspec.cli import make_parser

    parser = make_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    return list(sub.choices)  # type: ignore[attr-defined]


@pytest.mark.parametrize("argv", [
    ["validate", str(SPECS / "googlenet.yaml"), str(SPECS / "resnet18.yaml"), str(SPECS / "densenet.yaml")],
    ["render", str(SPECS / "googlenet.yaml"), "--format", "dot"],
    ["summary", str(SPECS / "resnet18.yaml")],
], ids=lambda argv: argv[0])
def test_static_commands_do_not_import_torch(argv: list[str]) -> None:
    if argv[0] not in _commands():  # render and summary are added by other features
        pytest.fail(f"the CLI has no '{argv[0]}' command")
    result = _probe(*argv)
    assert result["status"] == 0
    assert result["torch"] == [], f"'archspec {argv[0]}' imported {result['torch'][:5]}"


def test_build_json_over_the_limit_does_not_import_torch(tmp_path: Path) -> None:
    spec = tmp_path / "huge.yaml"
    spec.write_text(HUGE, encoding="utf-8")
    result = _probe("build", "--json", str(spec))
    assert result["status"] == 0
    assert result["torch"] == []


def test_analyze_api_does_not_import_torch() -> None:
    code = ("import sys, archspec; g = archspec.analyze(sys.argv[1]); "
            "print(len(g.nodes), any(m == 'torch' or m.startswith('torch.') for m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code, str(SPECS / "googlenet.yaml")], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    nodes, imported = proc.stdout.split()
    assert int(nodes) > 100
    assert imported == "False"


def test_probe_sees_torch_when_building() -> None:
    result = _probe("build", str(SPECS / "lenet.yaml"))
    assert result["status"] == 0
    assert "torch" in result["torch"]
