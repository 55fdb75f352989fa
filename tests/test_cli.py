"""The command line: the two main commands, exit codes, overrides, JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from archspec.cli import main
from conftest import SPECS


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_build_prints_table_and_totals(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "build", str(SPECS / "lenet.yaml"))
    assert code == 0, err
    assert "conv1" in out and "6×28×28" in out
    assert "61,706 parameters" in out


def test_build_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "build", str(SPECS / "googlenet.yaml"), "--json")
    assert code == 0
    data = json.loads(out)
    assert data["name"] == "googlenet"
    assert data["input_shape"] == [1, 96, 96] and data["output_shape"] == [10]
    assert data["params"] == 5_977_530
    assert data["params"] == sum(n["params"] for n in data["nodes"])
    assert data["macs"] == sum(n["macs"] for n in data["nodes"])
    assert {"name", "op", "output_shape", "params", "macs"} <= set(data["nodes"][0])


def test_build_set_and_input_overrides(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "build", str(SPECS / "resnet18.yaml"), "--set", "classes=100", "--input", "3,64,64", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["output_shape"] == [100] and data["input_shape"] == [3, 64, 64]


def test_validate_one_line_per_file(capsys: pytest.CaptureFixture[str]) -> None:
    files = sorted(str(p) for p in SPECS.glob("*.yaml"))
    code, out, _ = run(capsys, "validate", *files)
    assert code == 0
    assert len(out.strip().splitlines()) == len(files)
    assert all(": ok," in line for line in out.splitlines())


def test_validate_reports_each_bad_file_and_exits_1(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("archspec: 1\nname: b\ninput: [1, 8, 8]\nlayers: [conv: {out: 4, k: 3}, reluu]\n")
    code, out, err = run(capsys, "validate", str(SPECS / "lenet.yaml"), str(bad))
    assert code == 1
    assert f"{bad}:4:32: error: unknown op or block 'reluu' [E-UNKNOWN-OP]" in err
    assert "did you mean 'relu'?" in err
    assert out.splitlines()[1] == f"{bad}: invalid (1 error)"


@pytest.mark.parametrize(
    "argv",
    [
        ["build"],
        ["frobnicate"],
        ["build", "x.yaml", "--input", "a,b"],
        ["build", "x.yaml", "--input", "1,2"],
        ["build", "x.yaml", "--set", "novalue"],
        [],
    ],
)
def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        code = main(argv)
        raise SystemExit(code)
    assert exc.value.code == 2
    assert "Traceback" not in capsys.readouterr().err


def test_missing_file_and_unknown_override(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, "build", str(tmp_path / "nope.yaml"))
    assert code == 1 and "no such file" in err
    code, _, err = run(capsys, "build", str(SPECS / "lenet.yaml"), "--set", "clases=3")
    assert code == 1 and "no top-level parameter 'clases'" in err and "did you mean 'classes'?" in err
    code, _, err = run(capsys, "build", str(SPECS / "lenet.yaml"), "--set", "classes=[1]")
    assert code == 1 and "expected an integer" in err


def test_python_dash_m_and_console_script() -> None:
    proc = subprocess.run([sys.executable, "-m", "archspec", "validate", str(SPECS / "lenet.yaml")],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0 and "lenet: ok" in proc.stdout
