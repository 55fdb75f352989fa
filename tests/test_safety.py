"""Safety: hostile YAML, resource limits, the parameter guard, atomic output and no eval of spec text."""

from __future__ import annotations

import json
import os
import re
import tracemalloc
from pathlib import Path

import pytest

import archspec
from archspec import expand as expand_mod
from archspec.api import DEFAULT_MAX_PARAMS
from archspec.cli import main
from archspec.errors import ArchspecError
from archspec.fsutil import write_atomic
from archspec.source import MAX_DEPTH, MAX_YAML_NODES, load_yaml_text

SRC = Path(archspec.__file__).parent
HEAD = "archspec: 1\nname: t\ninput: [3, 16, 16]\n"


def _codes(exc: pytest.ExceptionInfo[ArchspecError]) -> list[str]:
    return [d.code for d in exc.value.diagnostics]


# ------------------------------------------------------------------ YAML tags


@pytest.mark.parametrize(
    "value",
    [
        '!!python/object/apply:os.system ["touch {marker}"]',
        "!!python/object/new:os.system [touch {marker}]",
        '!!python/name:os.system ""',
        "!!python/module:os ''",
        "!!python/object:archspec.ir.Graph {{}}",
        "!!binary aGVsbG8=",
        "!!set {{a, b}}",
        "!custom {{out: 8}}",
    ],
)
def test_object_constructing_tags_are_rejected(value: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tags that would construct Python objects (or any non-plain data) are errors; nothing runs."""
    marker = tmp_path / "pwned"
    calls: list[object] = []
    monkeypatch.setattr(os, "system", lambda *a: calls.append(a) or 0)
    text = HEAD + "description: " + value.format(marker=marker) + "\nlayers: [relu]\n"
    with pytest.raises(ArchspecError) as exc:
        archspec.analyze(text)
    assert _codes(exc) == ["E-YAML-TAG"]
    assert exc.value.diagnostics[0].span is not None and exc.value.diagnostics[0].span.line == 4
    assert not calls and not marker.exists()


def test_tag_inside_layers_is_rejected() -> None:
    """A tag anywhere in the document is refused, not only at the top level."""
    text = HEAD + "layers:\n  - conv: !!python/object/apply:builtins.dict {kwds: {out: 8, k: 3}}\n"
    with pytest.raises(ArchspecError) as exc:
        archspec.analyze(text)
    assert _codes(exc) == ["E-YAML-TAG"]
    assert "!!python/object/apply:builtins.dict" in exc.value.diagnostics[0].message


def test_dates_stay_text() -> None:
    """YAML's implicit timestamp is not an object: a date in a description is read as text."""
    graph = archspec.analyze(HEAD + "description: 2024-05-01\nlayers: [relu]\n")
    assert graph.description == "2024-05-01"


# ------------------------------------------------------------------ alias bombs and limits


def _laughs(levels: int, fan: int = 9) -> str:
    lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels + 1):
        lines.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * fan) + "]")
    return "\n".join(lines) + "\n"


def test_billion_laughs_is_refused_with_bounded_memory() -> None:
    """9^10 (3.5 billion) strings by aliases: refused before expansion, using little memory."""
    text = _laughs(10)
    tracemalloc.start()
    try:
        with pytest.raises(ArchspecError) as exc:
            load_yaml_text(text, "bomb.yaml")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert _codes(exc) == ["E-LIMIT"]
    assert "alias" in (exc.value.diagnostics[0].hint or "")
    assert peak < 20 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB"


def test_alias_bomb_through_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The CLI reports the bomb as an ordinary diagnostic, exit 1."""
    spec = tmp_path / "bomb.yaml"
    spec.write_text(HEAD + "layers: [relu]\n" + _laughs(12), encoding="utf-8")
    assert main(["validate", str(spec)]) == 1
    err = capsys.readouterr().err
    assert "[E-LIMIT]" in err and "Traceback" not in err


def test_self_referencing_alias_is_refused() -> None:
    """A recursive alias (a list containing itself) cannot be built into plain data."""
    with pytest.raises(ArchspecError) as exc:
        load_yaml_text("a: &x [1, *x]\n", "self.yaml")
    assert _codes(exc)[0] in {"E-LIMIT", "E-YAML"}


def test_aliases_below_the_limit_are_fine() -> None:
    """Ordinary anchors and merge keys still work (the guard counts, it does not forbid)."""
    text = (HEAD + "params: {c: 8}\nblocks:\n  b:\n    params: &p {c: 8}\n    layers: [conv: {out: $c, k: 3, pad: 1}]\n"
            "layers:\n  - b: *p\n  - b: {<<: *p}\n")
    graph = archspec.analyze(text)
    assert graph.output_shape == (8, 16, 16)
    assert MAX_YAML_NODES >= 1_000_000


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 5_000, 200_000])
def test_deep_flow_nesting_is_an_error_not_a_crash(depth: int) -> None:
    """Nesting past MAX_DEPTH is E-LIMIT, even far deeper than the C parser's stack could take."""
    text = HEAD + "description: " + "[" * depth + "]" * depth + "\nlayers: [relu]\n"
    with pytest.raises(ArchspecError) as exc:
        archspec.analyze(text)
    assert _codes(exc) == ["E-LIMIT"]
    assert f"{MAX_DEPTH} levels" in exc.value.diagnostics[0].message


def test_deep_block_nesting_is_an_error() -> None:
    """Indentation-nested mappings too."""
    text = HEAD + "description:\n" + "".join("  " * i + f"k{i}:\n" for i in range(1, 400)) + "layers: [relu]\n"
    with pytest.raises(ArchspecError) as exc:
        archspec.analyze(text)
    assert _codes(exc) == ["E-LIMIT"]


def test_long_chain_of_blocks_hits_the_nesting_limit() -> None:
    """3000 blocks each using the next: E-LIMIT at MAX_NESTING, no RecursionError anywhere."""
    n = 3000
    blocks = "".join(f"  b{i}:\n    layers: [b{i + 1}]\n" for i in range(n)) + f"  b{n}:\n    layers: [relu]\n"
    with pytest.raises(ArchspecError) as exc:
        archspec.analyze(HEAD + "blocks:\n" + blocks + "layers: [b0]\n")
    assert _codes(exc) == ["E-LIMIT"]
    assert f"deeper than {expand_mod.MAX_NESTING}" in exc.value.diagnostics[0].message


def test_long_block_cycle_is_reported() -> None:
    """A cycle through 3000 blocks is found without recursion."""
    n = 3000
    blocks = "".join(f"  b{i}:\n    layers: [b{(i + 1) % n}]\n" for i in range(n))
    with pytest.raises(ArchspecError) as exc:
        archspec.analyze(HEAD + "blocks:\n" + blocks + "layers: [b0]\n")
    assert _codes(exc) == ["E-RECURSION"]


def test_deep_composite_nesting_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """Composites nested past MAX_NESTING give E-LIMIT (the limit lowered to stay within YAML's depth)."""
    monkeypatch.setattr(expand_mod, "MAX_NESTING", 10)
    levels = 12
    layers = "[{sequence: " * levels + "[relu]" + "}]" * levels
    with pytest.raises(ArchspecError) as exc:
        archspec.analyze(HEAD + "layers: " + layers + "\n")
    assert "E-LIMIT" in _codes(exc)


@pytest.mark.parametrize("repeat", ["1000000000", "${10 ** 12}", "${2 ** 60}"])
def test_huge_repeat_counts_are_refused(repeat: str) -> None:
    """A repeat count past the node limit is refused up front, not expanded."""
    text = HEAD + f"layers:\n  - relu: null\n    repeat: \"{repeat}\"\n".replace('"1000000000"', "1000000000")
    with pytest.raises(ArchspecError) as exc:
        archspec.analyze(text)
    assert set(_codes(exc)) <= {"E-LIMIT", "E-EXPR"}


def test_node_limit_applies_to_nested_repeats(monkeypatch: pytest.MonkeyPatch) -> None:
    """Repeats multiplied through blocks stop at MAX_NODES with E-LIMIT."""
    monkeypatch.setattr(expand_mod, "MAX_NODES", 500)
    text = HEAD + "blocks:\n  b:\n    layers:\n      - relu: null\n        repeat: 40\nlayers:\n  - b: null\n    repeat: 40\n"
    with pytest.raises(ArchspecError) as exc:
        archspec.analyze(text)
    assert "E-LIMIT" in _codes(exc)
    assert "500" in exc.value.diagnostics[-1].message


def test_default_node_limit_is_reasonable() -> None:
    """Large enough for any real CNN, small enough to expand in seconds."""
    assert 10_000 <= expand_mod.MAX_NODES <= 1_000_000


def test_long_expression_is_refused() -> None:
    """Expressions have a length limit (no pathological parse)."""
    expr = "${" + "1+" * 1000 + "1}"
    with pytest.raises(ArchspecError) as exc:
        archspec.analyze(HEAD + f"layers: [{{conv: {{out: '{expr}', k: 3}}}}]\n")
    assert _codes(exc) == ["E-EXPR"]


# ------------------------------------------------------------------ the parameter guard

BIG = "archspec: 1\nname: big\ninput: [3, 64, 64]\nlayers:\n  - flatten\n  - linear: {out: 4194304}\n  - relu\n" \
      "  - linear: {out: 10}\n"


@pytest.fixture
def big_spec(tmp_path: Path) -> Path:
    """A ~51.6-billion-parameter model (about 206 GB of float32 weights)."""
    path = tmp_path / "big.yaml"
    path.write_text(BIG, encoding="utf-8")
    return path


def test_build_refuses_huge_model(big_spec: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`archspec build` refuses before allocating, naming the largest layer and its line."""
    assert main(["build", str(big_spec)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert re.match(rf"^{re.escape(str(big_spec))}:6:5: error: the model has 51,585,744,906 parameters, more than "
                    r"the limit of 2,000,000,000; the largest layer is 'linear1' .*\[E-TOO-LARGE\]$", err.splitlines()[0])
    assert "--max-params" in err


def test_build_json_inspects_huge_model_without_allocating(big_spec: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`build --json` prints shapes and counts of the 206-GB model (meta device, nothing allocated)."""
    assert main(["build", str(big_spec), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["params"] == 51_585_744_906
    assert data["output_shape"] == [10]


def test_validate_works_for_huge_model(big_spec: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Static validation never allocates, so the size limit does not apply."""
    assert main(["validate", str(big_spec)]) == 0
    assert "51,585,744,906 params" in capsys.readouterr().out


def test_max_params_override(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--max-params lowers or raises the limit."""
    spec = tmp_path / "small.yaml"
    spec.write_text(HEAD + "layers: [conv: {out: 8, k: 3}]\n", encoding="utf-8")  # 224 params
    assert main(["build", str(spec), "--max-params", "100"]) == 1
    assert "more than the limit of 100" in capsys.readouterr().err
    assert main(["build", str(spec), "--max-params", "224"]) == 0


def test_python_api_guard(big_spec: Path) -> None:
    """archspec.build raises E-TOO-LARGE; device='meta' builds the structure without memory."""
    assert DEFAULT_MAX_PARAMS == 2_000_000_000
    with pytest.raises(ArchspecError) as exc:
        archspec.build(big_spec)
    assert _codes(exc) == ["E-TOO-LARGE"]
    model = archspec.build(big_spec, device="meta")
    assert sum(p.numel() for p in model.parameters()) == 51_585_744_906
    assert all(p.is_meta for p in model.parameters())
    with pytest.raises(ArchspecError):
        archspec.build(HEAD + "layers: [conv: {out: 8, k: 3}]\n", max_params=10)


# ------------------------------------------------------------------ atomic output


def test_write_atomic_replaces_whole_file(tmp_path: Path) -> None:
    """The target holds the new content and no temporary file is left beside it."""
    target = tmp_path / "out.dot"
    target.write_text("old", encoding="utf-8")
    write_atomic(target, "new content")
    assert target.read_text(encoding="utf-8") == "new content"
    assert [p.name for p in tmp_path.iterdir()] == ["out.dot"]


def test_write_atomic_failure_leaves_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """If the final rename fails, the old file is untouched and the temporary file is removed."""
    target = tmp_path / "out.svg"
    target.write_text("old", encoding="utf-8")

    def fail(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(ArchspecError) as exc:
        write_atomic(target, b"x" * 10_000)
    assert _codes(exc) == ["E-IO"]
    assert target.read_text(encoding="utf-8") == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.svg"]


def test_write_atomic_failure_while_writing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A failure during the write itself also leaves no partial file."""
    target = tmp_path / "new.json"
    real_fdopen = os.fdopen

    class Broken:
        def __init__(self, fh: object) -> None:
            self.fh = fh

        def __enter__(self) -> Broken:
            return self

        def __exit__(self, *exc: object) -> None:
            self.fh.close()  # type: ignore[attr-defined]

        def write(self, data: bytes) -> None:
            raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fdopen", lambda fd, mode: Broken(real_fdopen(fd, mode)))
    with pytest.raises(ArchspecError):
        write_atomic(target, "{}")
    assert list(tmp_path.iterdir()) == []


def test_write_atomic_never_touches_the_input_spec(tmp_path: Path) -> None:
    """Writing output over the spec being compiled is refused."""
    spec = tmp_path / "model.yaml"
    spec.write_text(HEAD + "layers: [relu]\n", encoding="utf-8")
    with pytest.raises(ArchspecError) as exc:
        write_atomic(spec, "digraph {}", protect=(spec,))
    assert _codes(exc) == ["E-IO"]
    assert spec.read_text(encoding="utf-8") == HEAD + "layers: [relu]\n"


def test_write_atomic_into_missing_directory(tmp_path: Path) -> None:
    """An unwritable destination is an E-IO diagnostic, not an OSError."""
    with pytest.raises(ArchspecError) as exc:
        write_atomic(tmp_path / "no" / "such" / "dir" / "x.dot", "x")
    assert _codes(exc) == ["E-IO"]


# ------------------------------------------------------------------ no eval / exec / import of spec text

_FORBIDDEN = [
    (re.compile(r"(?<![\w.])eval\s*\("), "eval("),
    (re.compile(r"(?<![\w.])exec\s*\("), "exec("),
    (re.compile(r"__import__"), "__import__"),
    (re.compile(r"\bimportlib\b|\bimport_module\b"), "importlib"),
    (re.compile(r"(?<![\w.])compile\s*\("), "compile("),
    (re.compile(r"yaml\.(load|load_all|full_load|unsafe_load)\s*\("), "unsafe yaml load"),
    (re.compile(r"\b(Unsafe|Full)?Loader\b(?<!SafeLoader)"), "non-safe YAML loader"),
    (re.compile(r"\bpickle\b|\bmarshal\b"), "pickle/marshal"),
]


def _code_lines(path: Path) -> list[tuple[int, str]]:
    """Source lines outside docstrings and comments (good enough for a grep-style check)."""
    out = []
    in_doc = False
    for no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        stripped = line.strip()
        quotes = stripped.count('"""') + stripped.count("'''")
        if in_doc:
            if quotes % 2:
                in_doc = False
            continue
        if stripped.startswith(('"""', "'''")):
            in_doc = quotes % 2 == 1
            continue
        code = line.split("#", 1)[0]
        out.append((no, code))
    return out


#: Reviewed exceptions: (file, exact code line).  plugins.py loads the ``archspec.ops`` entry points of
#: *installed* packages (importlib.metadata); no spec text ever names what is imported.
#: lower_torch.py compiles the forward it generates (as torch.fx does); spec names reach that source only
#: as sanitised identifiers, repr() literals and printable comments (tests/test_lowering.py checks its AST).
_ALLOWED = {
    ("plugins.py", "from importlib.metadata import EntryPoint, entry_points"),
    ("lower_torch.py", 'exec(compile(source, filename, "exec"), namespace)'),
    # emit_python.py parses the file it wrote to prove it compiles; nothing is executed.
    ("emit_python.py", 'compile(text, f"{model_name}.py", "exec")'),
    # testing.py (check_op) rebuilds a layer from the source --emit-python generates for it, to prove
    # the ejected code builds the same module; spec strings reach that source only as repr() literals.
    ("testing.py", 'exec(compile("from __future__ import annotations\\n" + source, f"<emitted {name}>", "exec"), namespace)'),
    ("testing.py", 'rebuilt = eval(compile(expr, "<emitted call>", "eval"), namespace)'),
}
#: Whole files allowed one forbidden kind: plugins.py imports the plugin modules the *user* names
#: (``--plugin FILE|MODULE``, ``archspec.load_plugin``) and installed entry points; a spec never names code.
_ALLOWED_KINDS = {("plugins.py", "importlib")}


def test_source_never_evaluates_or_imports_spec_text() -> None:
    """No eval/exec/__import__/importlib/compile, no unsafe YAML loading anywhere in src/archspec."""
    files = sorted(SRC.rglob("*.py"))
    assert len(files) >= 10
    problems = []
    for path in files:
        for no, code in _code_lines(path):
            if (str(path.relative_to(SRC)), code.strip()) in _ALLOWED:
                continue
            for pattern, what in _FORBIDDEN:
                if pattern.search(code) and (str(path.relative_to(SRC)), what) not in _ALLOWED_KINDS:
                    problems.append(f"{path.relative_to(SRC)}:{no}: {what}: {code.strip()}")
    assert problems == []


@pytest.mark.parametrize("op", ["json.tool", "xml.dom.minidom", "http.server:HTTPServer", "antigravity"])
def test_op_names_never_import_modules(op: str) -> None:
    """An op name that looks like a module is an unknown op; nothing gets imported."""
    import sys

    before = set(sys.modules)
    with pytest.raises(ArchspecError) as exc:
        archspec.analyze(HEAD + f"layers:\n  - '{op}'\n")
    assert _codes(exc) == ["E-UNKNOWN-OP"]
    assert op.split(":")[0] not in set(sys.modules) - before


def test_yaml_loading_uses_a_safe_loader() -> None:
    """Every YAML load goes through SafeLoader/CSafeLoader or yaml.safe_load."""
    for path in sorted(SRC.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        for m in re.finditer(r"yaml\.(\w+)\(", text):
            assert m.group(1) in {"safe_load", "compose", "safe_dump", "dump", "parse"} or not m.group(1).startswith(
                ("load", "full_load", "unsafe")
            ), f"{path.name}: yaml.{m.group(1)}"
        for m in re.finditer(r"\b(\w*Loader)\b", text):
            if path.name == "plugins.py" and m.group(1) == "SourceFileLoader":
                continue  # importlib's loader for a plugin file the user names, not YAML
            assert m.group(1) in {"SafeLoader", "CSafeLoader", "_Loader"}, f"{path.name}: {m.group(1)}"


def test_the_grep_check_would_catch_eval() -> None:
    """The forbidden patterns do match the things they are meant to catch (and not 'evaluate(')."""
    hits = {what for pattern, what in _FORBIDDEN for text in (
        "x = eval(s)", "exec(code)", "__import__('os')", "importlib.import_module(n)", "yaml.load(t)",
        "yaml.Loader", "compile(src, 'f', 'exec')",
    ) if pattern.search(text)}
    assert {"eval(", "exec(", "__import__", "importlib", "unsafe yaml load", "non-safe YAML loader", "compile("} <= hits
    assert not any(p.search("evaluate(text)") or p.search("literal_eval(x)") for p, _ in _FORBIDDEN[:2])


def test_expression_cannot_reach_python() -> None:
    """Expressions that try to escape into Python are ordinary E-EXPR diagnostics."""
    for expr in ("${__import__('os').system('true')}", "${().__class__}", "${open('/etc/passwd')}",
                 "${[c for c in [1]]}", "${lambda: 1}", "${in.__class__}"):
        with pytest.raises(ArchspecError) as exc:
            archspec.analyze(HEAD + f'layers: [{{conv: {{out: "{expr}", k: 3}}}}]\n')
        assert _codes(exc) == ["E-EXPR"], expr


# ------------------------------------------------------------------ names that become code or submodules


@pytest.mark.parametrize("key", ["3x3", "''", '"a\\n"', "1", "concat", "input", "in", "a.b", '"a b"', '"é"', "-x",
                                 "\"x'](x)#\""])
def test_inception_branch_keys_are_identifiers(key: str, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """A mapping key names the branch's group: an identifier (fullmatch), or E-NAME at the key; no crash in build."""
    text = HEAD + f"layers:\n  - inception-branch:\n      {key}: [conv: {{out: 4, k: 1}}]\n      b: [relu]\n"
    with pytest.raises(ArchspecError) as exc:
        archspec.analyze(text)
    assert _codes(exc) == ["E-NAME"]
    span = exc.value.diagnostics[0].span
    assert span is not None and (span.line, span.column) == (6, 7)
    spec = tmp_path / "branch.yaml"
    spec.write_text(text, encoding="utf-8")
    for command in ("validate", "build"):
        assert main([command, str(spec)]) == 1
        err = capsys.readouterr().err
        assert "[E-NAME]" in err and "Traceback" not in err


def test_inception_branch_identifier_keys_still_work() -> None:
    """Keys that are identifiers (keywords included) name the branches as before."""
    text = HEAD + "layers:\n  - inception-branch: {b3x3: [conv: {out: 4, k: 3, pad: 1}], pool: [relu], None: [relu]}\n"
    graph = archspec.analyze(text)
    assert {"inception_branch1.b3x3.conv1", "inception_branch1.pool.relu1", "inception_branch1.None.relu1"} <= set(
        graph.nodes)


@pytest.mark.parametrize("where", [
    "layers:\n  - conv: {{out: 4, k: 1}}\n    name: {n}\n",
    "graph:\n  {n}: {{conv: {{out: 4, k: 1}}, from: input}}\n",
    "layers:\n  - relu: null\n    name: {n}\n    repeat: 2\n",
    "layers:\n  - inception-branch: {{{n}: [relu], b: [relu]}}\n",
    "blocks:\n  blk:\n    layers: [{{relu: null, name: {n}}}]\nlayers: [blk]\n",
])
@pytest.mark.parametrize("name", ["forward", "eval", "to", "training", "kind", "code", "_modules", "__class__",
                                  "__anything__", "state_dict"])
def test_names_that_clash_with_module_attributes(where: str, name: str, capsys: pytest.CaptureFixture[str],
                                                  tmp_path: Path) -> None:
    """A node named like a torch.nn.Module attribute cannot be a submodule: E-NAME, never a KeyError in build."""
    text = HEAD + where.format(n=name)
    with pytest.raises(ArchspecError) as exc:
        archspec.analyze(text)
    assert _codes(exc) == ["E-NAME"] and f"'{name}'" in exc.value.diagnostics[0].message
    assert exc.value.diagnostics[0].span is not None and exc.value.diagnostics[0].span.line >= 4
    spec = tmp_path / "clash.yaml"
    spec.write_text(text, encoding="utf-8")
    assert main(["build", str(spec)]) == 1
    err = capsys.readouterr().err
    assert "[E-NAME]" in err and "Traceback" not in err


@pytest.mark.parametrize("position", ["description", "block-arg", "block-default", "param-default"])
def test_emitted_python_never_runs_spec_text(position: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`build --emit-python` over spec text that closes a docstring or string: importing the file runs nothing."""
    import importlib.util
    import sys

    sentinel = tmp_path / "pwned"
    payload = json.dumps(f'"""\'\'\'\n__import__("pathlib").Path({str(sentinel)!r}).touch()\n#"""\'\'\'\\')
    values = {"description": "x", "arg": '"x"', "default": '"x"', "param": '"x"'}
    values[{"description": "description", "block-arg": "arg", "block-default": "default",
            "param-default": "param"}[position]] = payload
    arg = "$s" if position == "param-default" else values["arg"]
    text = (f"archspec: 1\nname: t\ndescription: {values['description']}\ninput: [1, 8, 8]\n"
            f"params: {{s: {values['param']}}}\nblocks:\n  b:\n    params: {{t: {values['default']}}}\n"
            f"    layers: [conv: {{out: 2, k: 1}}]\nlayers: [b: {{t: {arg}}}, b]\n")
    spec = tmp_path / "inject.yaml"
    spec.write_text(text, encoding="utf-8")
    out = tmp_path / "inject_model.py"
    assert main(["build", str(spec), "--emit-python", str(out)]) == 0
    capsys.readouterr()
    module_spec = importlib.util.spec_from_file_location("inject_model", out)
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    sys.modules["inject_model"] = module
    try:
        module_spec.loader.exec_module(module)
        module.T()
    finally:
        del sys.modules["inject_model"]
    assert not sentinel.exists()
    value = json.loads(payload)  # the text stays exactly what the spec says, in a docstring
    if position == "description":
        assert f"\n\n{value}\n\n" in (module.__doc__ or "") and module.T.__doc__ == value
    else:
        assert any(f"t={value!r}" in (cls.__doc__ or "") for cls in vars(module).values() if isinstance(cls, type))
