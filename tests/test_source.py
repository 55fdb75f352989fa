"""Reading YAML (``archspec.source``) and command-line values: every guard, on every way values enter.

Values enter through a spec file, YAML text given to the API, an imported file and ``--set``; each
guard (number length, nesting, expanded size, recursive aliases) is attacked through each of them.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import archspec
from archspec import source
from archspec.cli import main
from archspec.errors import ArchspecError
from archspec.source import MAX_DEPTH, MAX_NUMBER_CHARS, LocMap, LocSeq, load_yaml_text, read_file, read_spec_bytes
from conftest import SPECS

HEAD = "archspec: 1\nname: t\ninput: [3, 8, 8]\n"


def _codes(exc: pytest.ExceptionInfo[ArchspecError]) -> list[str]:
    return [d.code for d in exc.value.diagnostics]


def _flow_bomb(levels: int = 8, fan: int = 10) -> str:
    """A one-line alias bomb: fan**levels values from a few hundred characters."""
    parts = ["&a0 [" + ", ".join(["1"] * fan) + "]"]
    parts += [f"&a{i} [" + ", ".join([f"*a{i - 1}"] * fan) + "]" for i in range(1, levels)]
    return "[" + ", ".join(parts) + "]"


# ------------------------------------------------------------------ every guard, every entry

#: (payload written as a YAML value, the code it must give)
PAYLOADS = {
    "5000-digit int": ("9" * 5000, "E-LIMIT"),
    "negative 5000-digit int": ("-" + "9" * 5000, "E-LIMIT"),
    "long hex int": ("0x" + "f" * 5000, "E-LIMIT"),
    "long float": ("1" * 5000 + ".5", "E-LIMIT"),
    "float overflow": ("1e999", "E-LIMIT"),
    "deep flow nesting": ("[" * 5000 + "]" * 5000, "E-LIMIT"),
    "very deep flow nesting": ("[" * 200_000 + "]" * 200_000, "E-LIMIT"),
    "deep mapping nesting": ("{a: " * 300 + "1" + "}" * 300, "E-LIMIT"),
    "alias bomb": (_flow_bomb(), "E-LIMIT"),
    "recursive alias": ("&x [1, *x]", "E-YAML"),
    "recursive mapping alias": ("&x {a: *x}", "E-YAML"),
    "leading zero": ("010", "E-YAML"),
    "object tag": ("!!python/object/apply:os.system [echo]", "E-YAML-TAG"),
}


def _via_text(payload: str, tmp_path: Path) -> None:
    archspec.analyze(HEAD + f"params:\n  x: {payload}\nlayers: [relu]\n")


def _via_file(payload: str, tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(HEAD + f"params:\n  x: {payload}\nlayers: [relu]\n", encoding="utf-8")
    archspec.analyze(spec)


def _via_import(payload: str, tmp_path: Path) -> None:
    (tmp_path / "lib.yaml").write_text(
        f"archspec: 1\nblocks:\n  b:\n    params:\n      c: {payload}\n    layers: [relu]\n", encoding="utf-8"
    )
    spec = tmp_path / "spec.yaml"
    spec.write_text(HEAD + "imports: [lib.yaml]\nlayers: [relu]\n", encoding="utf-8")
    archspec.analyze(spec)


ENTRIES: dict[str, Callable[[str, Path], None]] = {"text": _via_text, "file": _via_file, "import": _via_import}


@pytest.mark.parametrize("entry", sorted(ENTRIES))
@pytest.mark.parametrize("payload", sorted(PAYLOADS))
def test_every_guard_on_every_entry(entry: str, payload: str, tmp_path: Path) -> None:
    """Spec text, spec files and imported files refuse the same hostile values with the same code, quickly."""
    text, code = PAYLOADS[payload]
    start = time.perf_counter()
    with pytest.raises(ArchspecError) as exc:
        ENTRIES[entry](text, tmp_path)
    assert time.perf_counter() - start < 20
    assert _codes(exc)[0] == code, exc.value.format()
    span = exc.value.diagnostics[0].span
    assert span is not None
    if entry == "import":
        assert span.path.endswith("lib.yaml") and span.line == 5
    else:
        assert span.line == 5  # the 'x:' line, whatever the version of PyYAML


@pytest.mark.parametrize("payload", sorted(PAYLOADS))
def test_every_guard_on_set_values(payload: str, capsys: pytest.CaptureFixture[str]) -> None:
    """``--set`` values pass the same guards: a usage error naming the option and the code, never a traceback."""
    text, code = PAYLOADS[payload]
    status = main(["validate", str(SPECS / "lenet.yaml"), "--set", f"classes={text}"])
    out, err = capsys.readouterr()
    assert status == 2
    assert "Traceback" not in out + err
    assert "--set classes: " in err and f"[{code}]" in err
    assert len(err) < 2000  # the value itself is never echoed in full


def test_set_values_read_numbers_as_spec_files_do() -> None:
    """``--set`` reads 1e-6 as a float and 0o10 as 8, as a spec file does; a list stays a list."""
    from archspec.cli import _parse_sets

    values = _parse_sets(["eps=1e-6", "o=0o10", "h=0x10", "t=1:30", "l=[1, 2]", "s=relu", "e=", "b=true"])
    assert values == {"eps": 1e-6, "o": 8, "h": 16, "t": "1:30", "l": [1, 2], "s": "relu", "e": "", "b": True}
    assert isinstance(values["eps"], float) and values["b"] is True


def test_set_float_reaches_the_model(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """``--set eps=1e-6`` overrides a float parameter (YAML 1.1 would have read a string)."""
    spec = tmp_path / "bn.yaml"
    spec.write_text(HEAD + "params: {e: 0.001}\nlayers:\n  - bn: {eps: $e}\n", encoding="utf-8")
    status = main(["build", str(spec), "--set", "e=1e-6", "--json"])
    assert status == 0, capsys.readouterr().err
    assert archspec.analyze(spec, {"e": 1e-6}).nodes["bn1"].params.eps == 1e-6


@pytest.mark.parametrize(
    "value",
    ["", " ", ",", "3,,224", "0,1,1", "3,0,8", "-3,8,8", "1,2", "1,2,3,4", "3,8.0,8", "3,8,8,", "a,b,c",
     "3, 8, 99999999999999", "9" * 5000, "٣,8,8", "3;8;8", "0x3,8,8", "+3,8,8", "3_0,8,8", "4194305,1,1"],
)
@pytest.mark.parametrize("command", ["build", "summary", "render"])
def test_malformed_input_is_a_usage_error(command: str, value: str, capsys: pytest.CaptureFixture[str]) -> None:
    """``--input`` is C,H,W or F positive whole numbers up to MAX_WIDTH; anything else (even '') is exit 2."""
    status = main([command, str(SPECS / "lenet.yaml"), f"--input={value}"])
    out, err = capsys.readouterr()
    assert status == 2, (out, err)
    assert "--input takes C,H,W" in err and "Traceback" not in err
    assert out == "" and len(err) < 1000


@pytest.mark.parametrize(("value", "shape"), [("1x32x32", [1, 32, 32]), (" 1, 32 ,32 ", [1, 32, 32]),
                                              ("1×32×32", [1, 32, 32]), ("784", None)])
def test_wellformed_input_is_accepted(value: str, shape: list[int] | None, capsys: pytest.CaptureFixture[str]) -> None:
    """The accepted spellings of --input still work (a flat shape fails later, in the spec, with exit 1)."""
    status = main(["build", str(SPECS / "lenet.yaml"), "--input", value, "--json"])
    out, err = capsys.readouterr()
    if shape is None:
        assert status == 1 and "Traceback" not in err
    else:
        assert status == 0, err
        assert f'"input_shape": [\n    {shape[0]},' in out


# ------------------------------------------------------------------ counting everything


def test_alias_list_repeated_counts_expanded_values(monkeypatch: pytest.MonkeyPatch) -> None:
    """A list repeated through aliases counts every expanded value, not the few unique ones."""
    monkeypatch.setattr(source, "MAX_YAML_NODES", 5_000)
    base = "a: &a [" + ", ".join(["1"] * 100) + "]\n"
    load_yaml_text(base + "b: [" + ", ".join(["*a"] * 40) + "]\n")  # about 4,200 values: fine
    with pytest.raises(ArchspecError) as exc:
        load_yaml_text(base + "b: [" + ", ".join(["*a"] * 60) + "]\n")  # 6,200 values from 160 written ones
    assert _codes(exc) == ["E-LIMIT"]
    assert "alias bomb" in (exc.value.diagnostics[0].hint or "")
    assert exc.value.diagnostics[0].span is not None and exc.value.diagnostics[0].span.line == 2


def test_merge_keys_count_what_they_copy(monkeypatch: pytest.MonkeyPatch) -> None:
    """A big mapping merged again and again counts each copy."""
    monkeypatch.setattr(source, "MAX_YAML_NODES", 5_000)
    base = "base: &b {" + ", ".join(f"k{i}: {i}" for i in range(200)) + "}\n"
    with pytest.raises(ArchspecError) as exc:
        load_yaml_text(base + "l:\n" + "".join("  - {<<: *b}\n" for _ in range(30)))
    assert _codes(exc) == ["E-LIMIT"]


def test_plain_values_count_too(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without any alias the count still applies (with a hint that does not blame aliases)."""
    monkeypatch.setattr(source, "MAX_YAML_NODES", 1_000)
    with pytest.raises(ArchspecError) as exc:
        load_yaml_text("a: [" + ", ".join(["1"] * 2_000) + "]\n")
    assert _codes(exc) == ["E-LIMIT"] and "alias" not in (exc.value.diagnostics[0].hint or "")


def test_alias_bomb_memory_is_bounded() -> None:
    """A bomb of 10**12 values is refused with little memory, through the text API and --set alike."""
    import tracemalloc

    tracemalloc.start()
    try:
        with pytest.raises(ArchspecError) as exc:
            load_yaml_text("x: " + _flow_bomb(12), "bomb.yaml")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert _codes(exc) == ["E-LIMIT"]
    assert peak < 30 * 1024 * 1024


@pytest.mark.parametrize("depth", [MAX_DEPTH, MAX_DEPTH + 1])
def test_depth_limit_is_exact(depth: int) -> None:
    """MAX_DEPTH levels load; one more is E-LIMIT at the bracket that opens it."""
    text = "[" * depth + "]" * depth
    if depth <= MAX_DEPTH:
        value = load_yaml_text(text)
        for _ in range(depth - 1):
            value = value[0]
        assert value == []
        return
    with pytest.raises(ArchspecError) as exc:
        load_yaml_text(text, "deep.yaml")
    assert _codes(exc) == ["E-LIMIT"]
    span = exc.value.diagnostics[0].span
    assert span is not None and (span.line, span.column) == (1, MAX_DEPTH + 1)


@pytest.mark.parametrize("text", ["x: " + "[" * 5000 + "]" * 5000, "x: " + "[" * 200_000,
                                  "a: 1\nx: " + "[" * 3000 + "1" + "]" * 3000])
def test_libyaml_nesting_error_maps_to_the_same_e_limit(text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """PyYAML 6.0.4's libyaml stops flow nesting past 1000 in its scanner (a ScannerError); that gives the same
    E-LIMIT, at the same position, as the event count of older versions."""
    with pytest.raises(ArchspecError) as expected:
        load_yaml_text(text, "deep.yaml")
    assert _codes(expected) == ["E-LIMIT"]

    def scanner_stops(text: str, positions: Any) -> Any:
        mark = yaml.Mark("deep.yaml", 1003, 0, 1003, None, None)
        raise yaml.scanner.ScannerError("while increasing flow level", mark, "exceeded maximum nesting depth", mark)

    monkeypatch.setattr(source, "_load", scanner_stops)
    with pytest.raises(ArchspecError) as mapped:
        load_yaml_text(text, "deep.yaml")
    assert mapped.value.diagnostics == expected.value.diagnostics


def test_number_length_limit_is_exact() -> None:
    """A number of MAX_NUMBER_CHARS characters loads; one more is E-LIMIT, never Python's ValueError."""
    assert load_yaml_text("a: " + "1" * MAX_NUMBER_CHARS + "\n") == {"a": int("1" * MAX_NUMBER_CHARS)}
    with pytest.raises(ArchspecError) as exc:
        load_yaml_text("a: 1\nb: " + "1" * (MAX_NUMBER_CHARS + 1) + "\n", "n.yaml")
    assert _codes(exc) == ["E-LIMIT"]
    assert str(exc.value.diagnostics[0].span) == "n.yaml:2:4"


@pytest.mark.parametrize("key", ["9" * 5000, "0x" + "f" * 5000, "1" * 5000 + ".0"])
def test_huge_number_as_a_key(key: str) -> None:
    """Keys are scalars too: a huge numeric key is E-LIMIT, not a traceback."""
    with pytest.raises(ArchspecError) as exc:
        load_yaml_text(f"{key}: 1\n")
    assert _codes(exc) == ["E-LIMIT"]


def test_long_text_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """YAML text given to the API has the file size limit (checked before parsing)."""
    monkeypatch.setattr(source, "MAX_FILE_BYTES", 100)
    with pytest.raises(ArchspecError) as exc:
        load_yaml_text("a: " + "x" * 200 + "\n")
    assert _codes(exc) == ["E-LIMIT"]


def test_unpaired_surrogate_in_text() -> None:
    """A str with a lone surrogate (only possible through the API) is E-ENCODING, not UnicodeEncodeError."""
    with pytest.raises(ArchspecError) as exc:
        archspec.analyze(HEAD + "description: a\ud800b\nlayers: [relu]\n")
    assert _codes(exc) == ["E-ENCODING"]
    assert str(exc.value.diagnostics[0].span) == "<string>:4:15"


# ------------------------------------------------------------------ files that are not regular files


def _in_thread(fn: Callable[[], Any], timeout: float = 20) -> Any:
    """Run ``fn`` in a daemon thread; fail (instead of hanging the suite) if it blocks."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # handed back to the test
            box["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), "reading blocked"
    if "error" in box:
        raise box["error"]
    return box.get("value")


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "pipe.yaml"
    os.mkfifo(path)
    return path


def test_fifo_spec_is_refused_without_blocking(fifo: Path) -> None:
    """A FIFO (with no writer: opening it for reading would block forever) is refused at once."""
    with pytest.raises(ArchspecError) as exc:
        _in_thread(lambda: archspec.analyze(fifo))
    assert _codes(exc) == ["E-IO"]
    assert "FIFO" in exc.value.diagnostics[0].message


def test_fifo_import_is_refused_without_blocking(fifo: Path, tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(HEAD + f"imports: [{fifo.name}]\nlayers: [relu]\n", encoding="utf-8")
    with pytest.raises(ArchspecError) as exc:
        _in_thread(lambda: archspec.analyze(spec))
    assert "E-IO" in _codes(exc) or "E-IMPORT" in _codes(exc)


def test_fifo_through_build_and_the_cli(fifo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``archspec.build`` (its cache digests the file first) and ``archspec validate`` do not block either."""
    with pytest.raises(ArchspecError):
        _in_thread(lambda: archspec.build(fifo))
    assert _in_thread(lambda: main(["validate", str(fifo)])) == 1
    err = capsys.readouterr().err
    assert "[E-IO]" in err and "Traceback" not in err


def test_read_stops_after_the_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file that claims to be small (as /proc files do) is still read only up to the limit + 1 byte."""
    monkeypatch.setattr(source, "MAX_FILE_BYTES", 1000)
    big = tmp_path / "big.yaml"
    big.write_bytes(b"#" * 50_000)
    real_fstat, real_read = os.fstat, os.read
    read: list[int] = []

    class _Small:
        def __init__(self, st: os.stat_result) -> None:
            self.st_mode, self.st_size = st.st_mode, 0

    monkeypatch.setattr(source.os, "fstat", lambda fd: _Small(real_fstat(fd)))
    monkeypatch.setattr(source.os, "read", lambda fd, n: read.append(n) or real_read(fd, n))
    with pytest.raises(ArchspecError) as exc:
        read_spec_bytes(big)
    assert _codes(exc) == ["E-IO"]
    assert sum(read) <= 1001


def test_size_limit_from_stat(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(source, "MAX_FILE_BYTES", 100)
    big = tmp_path / "big.yaml"
    big.write_bytes(b"#" * 101)
    with pytest.raises(ArchspecError) as exc:
        read_file(big)
    assert _codes(exc) == ["E-IO"] and "limited to 100 bytes" in exc.value.diagnostics[0].message


@pytest.mark.parametrize("path", ["missing.yaml", ".", "a\x00b.yaml"])
def test_unreadable_paths(path: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A missing file, a directory and a NUL byte in the name are E-IO errors."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ArchspecError) as exc:
        read_file(path)
    assert _codes(exc) == ["E-IO"]


def test_a_file_descriptor_number_is_not_a_path() -> None:
    """``read_file(0)`` must not read standard input."""
    with pytest.raises(ArchspecError) as exc:
        read_file(0)  # type: ignore[arg-type]
    assert _codes(exc) == ["E-IO"]


# ------------------------------------------------------------------ numbers as users write them


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1e-6", 1e-6), ("1E6", 1e6), ("-2.5e+3", -2500.0), ("1.5", 1.5), (".5", 0.5), ("2.", 2.0), ("01.5", 1.5),
        ("1_000", 1000), ("1_000.5", 1000.5), ("0", 0), ("-0", 0), ("+7", 7), ("0o17", 15), ("0x1F", 31),
        ("-0x10", -16), ("0b101", 5), (".inf", math.inf), ("-.Inf", -math.inf),
        ("1:30", "1:30"), ("1:30:00", "1:30:00"), ("2024-05-01", "2024-05-01"), ("0x", "0x"), ("1__0", "1__0"),
        ("1_", "1_"), ("1e", "1e"), ("0O17", "0O17"), ("=", "="), ("'010'", "010"), ('"1"', "1"), ("'1e-6'", "1e-6"),
        ("true", True), ("False", False), ("yes", True), ("off", False), ("~", None), ("null", None), ("", None),
        ("! 5", "5"), ("!!str 5", "5"), ("!!int 5", 5), ("!!float 5", 5.0), ("!!float 1e-3", 1e-3), ("!!bool no", False),
    ],
)
def test_scalars(text: str, expected: Any) -> None:
    """YAML 1.2 numbers (1e-6 is a float, 0o17 octal, 1:30 text), YAML booleans and null, quoted text stays text."""
    value = load_yaml_text(f"v: {text}\n")["v"]
    assert value == expected and type(value) is type(expected)


def test_nan() -> None:
    assert math.isnan(load_yaml_text("v: .nan\n")["v"])


@pytest.mark.parametrize(("text", "value"), [("00", 0), ("07", 7), ("-07", -7), ("+0_5", 5), ("000", 0)])
def test_leading_zero_integers_that_read_the_same(text: str, value: int) -> None:
    """00 and 07 are the same number in YAML 1.1 (octal) and 1.2 (decimal): accepted."""
    assert load_yaml_text(f"v: {text}\n") == {"v": value}


@pytest.mark.parametrize("text", ["010", "-010", "+011", "0_10", "08", "09", "0123456789"])
def test_leading_zero_integers_are_refused(text: str) -> None:
    """010 is octal 8 in YAML 1.1 and 10 in YAML 1.2 (08 is text in 1.1): refused with a hint, never silently either."""
    with pytest.raises(ArchspecError) as exc:
        load_yaml_text(f"a: 1\nv: {text}\n", "z.yaml")
    d = exc.value.diagnostics[0]
    assert d.code == "E-YAML" and str(d.span) == "z.yaml:2:4"
    assert "leading zero" in d.message and "YAML 1.2 as " in d.message
    assert d.hint is not None and f"write {int(text.replace('_', ''))} for the decimal number" in d.hint


def test_leading_zero_octal_message() -> None:
    with pytest.raises(ArchspecError) as exc:
        load_yaml_text("v: 010\n")
    assert "YAML 1.1 reads it as octal (8), YAML 1.2 as 10" in exc.value.diagnostics[0].message


@pytest.mark.parametrize("text", ["!!int x", "!!int 1.5", "!!float abc", "!!bool maybe", "!!null 3"])
def test_explicit_tags_must_fit(text: str) -> None:
    with pytest.raises(ArchspecError) as exc:
        load_yaml_text(f"v: {text}\n")
    assert _codes(exc) == ["E-YAML"]


def test_eps_in_a_spec_is_a_float() -> None:
    """The number from issue 14: ``eps: 1e-6`` reaches the layer as a float."""
    graph = archspec.analyze(HEAD + "params: {e: 1e-6}\nlayers:\n  - bn: {eps: 1e-6}\n  - bn: {eps: $e}\n")
    assert graph.nodes["bn1"].params.eps == 1e-6 and graph.nodes["bn2"].params.eps == 1e-6


@pytest.mark.parametrize(("text", "value"), [("archspec: true", True), ('archspec: "1"', "1"), ("archspec: 1", 1),
                                             ("archspec: 1.0", 1.0), ("archspec: '1'", "1"), ("archspec: yes", True)])
def test_version_key_is_not_converted(text: str, value: Any) -> None:
    """Reading keeps the version key's type as written (the model refuses anything but the integer 1)."""
    loaded = load_yaml_text(text + "\n")["archspec"]
    assert loaded == value and type(loaded) is type(value)


@pytest.mark.parametrize("version", ["true", '"1"', "'1'", "1.0", "yes"])
def test_version_key_other_than_1_is_refused(version: str) -> None:
    with pytest.raises(ArchspecError):
        archspec.analyze(f"archspec: {version}\nname: t\ninput: [3, 8, 8]\nlayers: [relu]\n")


def test_keys_keep_their_text() -> None:
    """Boolean, null, float and leading-zero keys are their text; integer keys stay integers."""
    data = load_yaml_text("true: 1\nTrue: 2\nnull: 3\n1.5: 4\n010: 5\n7: 6\n'8': 7\n")
    assert list(data) == ["true", "True", "null", "1.5", "010", 7, "8"]


# ------------------------------------------------------------------ merge keys


def test_merge_key_with_override_and_positions() -> None:
    """``<<: *base`` copies keys not written in the mapping; explicit keys win; merged keys keep their position."""
    data = load_yaml_text("base: &b {out: 8, k: 3}\nuse: {<<: *b, out: 16}\nlate: {out: 4, <<: *b}\n", "m.yaml")
    assert data["use"] == {"out": 16, "k": 3} and data["late"] == {"out": 4, "k": 3}
    use = data["use"]
    assert str(use.value_spans["out"]) == "m.yaml:2:20"  # the explicit value
    assert str(use.key_spans["k"]) == "m.yaml:1:19"  # the merged key, where it is defined
    assert str(use.value_spans["k"]) == "m.yaml:1:22"


def test_merge_list_first_wins() -> None:
    data = load_yaml_text("a: &a {x: 1, y: 1}\nb: &b {y: 2, z: 2}\nc: {<<: [*a, *b], z: 3}\nd: {<<: {w: 0}}\n")
    assert data["c"] == {"x": 1, "y": 1, "z": 3} and data["d"] == {"w": 0}


def test_merge_in_a_spec() -> None:
    """Merge keys work in op arguments: the second conv reuses the first one's arguments with another width."""
    graph = archspec.analyze(HEAD + "layers:\n  - conv: &c3 {out: 8, k: 3, pad: 1}\n  - conv: {<<: *c3, out: 16}\n")
    assert graph.output_shape == (16, 8, 8)


def test_unknown_key_from_a_merge_points_at_its_definition() -> None:
    """An error about a merged key points at the line that defines it."""
    line = "  - conv: {<<: {out: 8, k: 3, strde: 1}, out: 4}"
    text = HEAD + "layers:\n  - conv: {out: 8, k: 3}\n" + line + "\n"
    with pytest.raises(ArchspecError) as exc:
        archspec.analyze(text)
    d = exc.value.diagnostics[0]
    assert d.code == "E-UNKNOWN-KEY" and d.span is not None
    assert (d.span.line, d.span.column) == (6, line.index("strde") + 1)


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("a: {<<: 1}\n", "E-YAML"),
        ("a: {<<: [1, 2]}\n", "E-YAML"),
        ("b: &b [1]\na: {<<: *b}\n", "E-YAML"),
        ("a: {<<: {x: 1}, <<: {y: 1}}\n", "E-DUPLICATE-KEY"),
        ("a: {<<: {x: 1}, y: 1, y: 2}\n", "E-DUPLICATE-KEY"),
    ],
)
def test_bad_merges(text: str, code: str) -> None:
    with pytest.raises(ArchspecError) as exc:
        load_yaml_text(text)
    assert _codes(exc) == [code]


def test_quoted_merge_key_is_a_plain_key() -> None:
    assert load_yaml_text("a: {'<<': {x: 1}}\nb: <<\n") == {"a": {"<<": {"x": 1}}, "b": "<<"}


# ------------------------------------------------------------------ line breaks editors do not show


@pytest.mark.parametrize("char", ["\u2028", "\u2029", "\x85"])
def test_unusual_line_breaks_do_not_shift_positions(char: str) -> None:
    """U+2028/U+2029/NEL in a string: YAML counts a line break, editors do not; positions follow the editor."""
    text = HEAD + f'description: "one{char}two{char}three"\nlayers:\n  - conv: {{out: 8, k: 3}}\n  - reluu\n'
    with pytest.raises(ArchspecError) as exc:
        archspec.analyze(text)
    d = exc.value.diagnostics[0]
    assert d.code == "E-UNKNOWN-OP" and d.span is not None
    assert (d.span.line, d.span.column) == (7, 5)
    assert text.split("\n")[d.span.line - 1].startswith("  - reluu")


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_ordinary_line_breaks(newline: str) -> None:
    """LF, CRLF and a lone CR (editors break lines at each) all count once."""
    data = load_yaml_text(f"a: 1{newline}b: 'x'{newline}c: [1, 2]{newline}", "n.yaml")
    assert str(data.value_spans["c"]) == "n.yaml:3:4" and str(data["c"].item_spans[1]) == "n.yaml:3:8"
    if newline != "\r":  # (a str without '\n' is a path to analyze())
        with pytest.raises(ArchspecError) as exc:
            archspec.analyze((HEAD + "description: x\nlayers:\n  - reluu\n").replace("\n", newline))
        d = exc.value.diagnostics[0]
        assert d.span is not None and (d.span.line, d.span.column) == (6, 5)


def test_unquoted_line_separator_gets_a_hint() -> None:
    """In a plain scalar, U+2028 breaks the YAML; the error says where the invisible character is."""
    text = HEAD + "description: one\u2028two\nlayers: [relu]\n"
    with pytest.raises(ArchspecError) as exc:
        archspec.analyze(text)
    d = exc.value.diagnostics[0]
    assert d.code == "E-YAML" and d.span is not None and d.span.line in (4, 5)
    assert d.hint is not None and "line 4, column 17 holds U+2028" in d.hint


def test_positions_after_line_separators_in_yaml_errors() -> None:
    """A syntax error after a U+2029 is reported on the line an editor shows."""
    text = 'a: "x\u2029y\u2029z"\nb: [1, 2\nc: 3\n'
    with pytest.raises(ArchspecError) as exc:
        load_yaml_text(text, "e.yaml")
    d = exc.value.diagnostics[0]
    assert d.code == "E-YAML" and d.span is not None and d.span.line <= 3
    assert "line 2, column 4" in d.message  # where the unclosed '[' started


# ------------------------------------------------------------------ structure


def test_locations_and_shared_aliases() -> None:
    data = load_yaml_text("a: &x [1, 2]\nb: *x\nc:\n  - d: 1\n", "p.yaml")
    assert isinstance(data, LocMap) and isinstance(data["a"], LocSeq)
    assert data["b"] == [1, 2]
    assert str(data.value_spans["b"]) == "p.yaml:2:4"
    assert str(data["c"][0].key_spans["d"]) == "p.yaml:4:5"
    assert str(data["a"].item_spans[1]) == "p.yaml:1:11"


@pytest.mark.parametrize(
    ("text", "code", "where"),
    [
        ("a: *nope\n", "E-YAML", "1:4"),
        ("a: &x 1\nb: &x 2\n", "E-YAML", "2:4"),
        ("a: 1\n---\nb: 2\n", "E-YAML", "2:1"),
        ("? [a]\n: 1\n", "E-YAML", "1:3"),
        ("a: !!set {x}\n", "E-YAML-TAG", "1:4"),
        ("a: !custom [1]\n", "E-YAML-TAG", "1:4"),
    ],
)
def test_structural_errors(text: str, code: str, where: str) -> None:
    with pytest.raises(ArchspecError) as exc:
        load_yaml_text(text, "s.yaml")
    assert _codes(exc) == [code]
    assert str(exc.value.diagnostics[0].span) == f"s.yaml:{where}"


def test_independent_reading_errors_are_reported_together() -> None:
    """Duplicate keys in different mappings, a tag and a leading zero: all reported in one run, in order."""
    text = "a: {x: 1, x: 2}\nb: 010\nc: !!binary aGk=\nd:\n  y: 1\n  y: 2\n"
    with pytest.raises(ArchspecError) as exc:
        load_yaml_text(text)
    assert _codes(exc) == ["E-DUPLICATE-KEY", "E-YAML", "E-YAML-TAG", "E-DUPLICATE-KEY"]
    assert [d.span.line for d in exc.value.diagnostics if d.span] == [1, 2, 3, 6]


def test_empty_and_comment_only() -> None:
    assert load_yaml_text("") is None and load_yaml_text("# nothing\n") is None and load_yaml_text("---\n") is None


# ------------------------------------------------------------------ random text


_YAML_CHARS = st.sampled_from([*"ab019 -.:_,[]{}&*!<>|#'\"?~=\n\t", "\u2028", "\x85", "\r", "é", "0x", "<<", "1e5"])


@settings(max_examples=300, deadline=2000, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_YAML_CHARS, max_size=80).map("".join))
def test_random_text_raises_only_archspec_errors(text: str) -> None:
    """Any text either loads, with every position inside the text, or raises ArchspecError."""
    try:
        data = load_yaml_text(text, "r.yaml")
    except ArchspecError as exc:
        assert exc.diagnostics
        for d in exc.diagnostics:
            assert d.span is None or (d.span.line >= 1 and d.span.column >= 1)
        return
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    stack = [data]
    while stack:
        item = stack.pop()
        spans = []
        if isinstance(item, LocMap):
            spans = [item.span, *item.key_spans.values(), *item.value_spans.values()]
            stack.extend(item.values())
        elif isinstance(item, LocSeq):
            spans = [item.span, *item.item_spans]
            stack.extend(item)
        for span in spans:  # inside the text, or (an empty value at the very end) just after it
            assert 1 <= span.line <= len(lines) + 1, (span, text)
            width = len(lines[span.line - 1]) if span.line <= len(lines) else 0
            assert 1 <= span.column <= width + 1, (span, text)


def test_pure_python_parser_reads_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without libyaml (PyYAML's pure-Python parser) the reader gives the same data, positions and errors."""
    text = "base: &b {out: 8, k: 3}\nuse: {<<: *b, out: 16}\ne: 1e-6\nd: \"a\u2028b\"\nl: [0o17, 1:30]\n"
    expected = load_yaml_text(text, "p.yaml")
    deep = "x: " + "[" * 300 + "]" * 300
    with pytest.raises(ArchspecError) as c_deep:
        load_yaml_text(deep, "p.yaml")
    pure = type("_PurePython", (yaml.SafeLoader,), {"yaml_implicit_resolvers": source._Loader.yaml_implicit_resolvers})
    monkeypatch.setattr(source, "_Loader", pure)
    data = load_yaml_text(text, "p.yaml")
    assert data == expected and data["e"] == 1e-6 and data["l"] == [15, "1:30"]
    assert data["use"].value_spans == expected["use"].value_spans and data.value_spans == expected.value_spans
    with pytest.raises(ArchspecError) as py_deep:
        load_yaml_text(deep, "p.yaml")
    assert py_deep.value.diagnostics == c_deep.value.diagnostics
