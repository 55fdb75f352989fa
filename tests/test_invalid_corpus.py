"""The invalid-spec corpus: every ``tests/invalid/NAME.yaml`` has a golden ``NAME.expected``.

The golden holds the exact stderr of ``archspec validate NAME.yaml`` (run from ``tests/invalid``):
``path:line:col: error: message [CODE]`` lines with their hints and notes.  ``archspec build`` must
print the same diagnostics.  A case whose golden has no ``error:`` line (only warnings) exits 0;
every other case exits 1.  No case may ever print a traceback.

Regenerate the goldens after an intended change of wording with::

    ARCHSPEC_UPDATE_GOLDENS=1 python -m pytest tests/test_invalid_corpus.py

and review every changed ``.expected`` by eye (``git diff tests/invalid``): a golden is what a
user should see, not whatever the code happens to print.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from archspec.cli import main

CORPUS = Path(__file__).parent / "invalid"
CASES = sorted(p.stem for p in CORPUS.glob("*.yaml"))
UPDATE = os.environ.get("ARCHSPEC_UPDATE_GOLDENS") == "1"

#: ``path:line:col: severity: message [CODE]`` — the first line of every diagnostic.
DIAG_RE = re.compile(r"^(?P<path>[^:\s]+):(?P<line>\d+):(?P<col>\d+): (?P<sev>error|warning): .+ \[(?P<code>[EW]-[A-Z0-9-]+)\]$")


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    status = main(argv)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def _expected_status(golden: str) -> int:
    return 1 if re.search(r"^\S+: error: ", golden, re.MULTILINE) else 0


def test_corpus_is_large_and_complete() -> None:
    """At least 60 cases, each with its golden and no orphan goldens."""
    assert len(CASES) >= 60
    goldens = {p.stem for p in CORPUS.glob("*.expected")}
    assert goldens == set(CASES) or UPDATE


@pytest.mark.parametrize("name", CASES)
def test_validate_matches_golden(name: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """``archspec validate`` prints exactly the golden diagnostics and exits 1 (0 for warnings only)."""
    monkeypatch.chdir(CORPUS)
    status, out, err = _run(["validate", f"{name}.yaml"], capsys)
    golden_path = CORPUS / f"{name}.expected"
    if UPDATE:
        golden_path.write_text(err, encoding="utf-8")
    golden = golden_path.read_text(encoding="utf-8")
    assert "Traceback" not in err + out
    assert err == golden
    assert status == _expected_status(golden)
    if status:
        assert out.startswith(f"{name}.yaml: invalid (")
    # Every diagnostic is positioned in the spec itself (never an internal file) and carries a code.
    firsts = [line for line in err.splitlines() if not line.startswith(("  hint:",)) and ": note: " not in line]
    assert firsts, "a case must produce at least one diagnostic"
    # Lines as an editor counts them (LF, CRLF, lone CR; never U+2028/U+2029/NEL): no position past the end.
    lines = re.split(rb"\r\n|\r|\n", (CORPUS / f"{name}.yaml").read_bytes())
    for line in firsts:
        m = DIAG_RE.match(line)
        assert m, line
        assert m["path"] == f"{name}.yaml"
        assert int(m["line"]) >= 1 and int(m["col"]) >= 1
        assert int(m["line"]) <= len(lines), line


@pytest.mark.parametrize("name", CASES)
def test_build_reports_the_same(name: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """``archspec build`` refuses the spec with the same diagnostics (and compiles warnings-only ones)."""
    monkeypatch.chdir(CORPUS)
    golden = (CORPUS / f"{name}.expected").read_text(encoding="utf-8")
    status, out, err = _run(["build", f"{name}.yaml", "--json"], capsys)
    assert "Traceback" not in err + out
    assert err == golden
    assert status == _expected_status(golden)
    if status:
        assert out == ""


def test_notes_give_instance_and_definition(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """An error inside a nested block points at the block definition and names every instance."""
    monkeypatch.chdir(CORPUS)
    _run(["validate", "error_in_nested_block.yaml"], capsys)
    golden = (CORPUS / "error_in_nested_block.expected").read_text(encoding="utf-8").splitlines()
    assert golden[0].startswith("error_in_nested_block.yaml:8:")  # the conv line inside block 'inner'
    assert "outer1.inner2.conv1" in golden[0]
    notes = [line for line in golden if ": note: " in line]
    assert any("'outer1.inner2'" in n and "block 'inner'" in n for n in notes)
    assert any("'outer1'," in n and "block 'outer'" in n for n in notes)


def test_several_errors_reported_in_one_run() -> None:
    """Files with several independent problems report all of them, not just the first."""
    for name, at_least in (("several_errors", 2), ("several_errors_graph", 2)):
        golden = (CORPUS / f"{name}.expected").read_text(encoding="utf-8")
        assert len(re.findall(r"^\S+: error: ", golden, re.MULTILINE)) >= at_least, name


def test_corpus_covers_the_codes() -> None:
    """The corpus exercises every diagnostic family the issue lists."""
    codes = set()
    for p in CORPUS.glob("*.expected"):
        codes |= set(re.findall(r"\[([EW]-[A-Z0-9-]+)\]", p.read_text(encoding="utf-8")))
    required = {
        "E-YAML", "E-EMPTY", "E-TOP", "E-ENCODING", "E-DUPLICATE-KEY", "E-UNKNOWN-KEY", "E-UNKNOWN-OP",
        "E-MISSING", "E-TYPE", "E-SHAPE", "E-BLOCK-PARAM", "E-PARAM-TYPE", "E-RECURSION", "E-CYCLE",
        "E-UNKNOWN-NODE", "E-DUP-NAME", "E-OUTPUT", "W-UNUSED", "E-EXPR", "E-LIMIT", "E-YAML-TAG",
    }
    assert required <= codes, required - codes
