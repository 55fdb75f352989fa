"""Fuzz: arbitrary strings in every text position of a spec never become code in ``--emit-python`` output.

Each example puts hypothesis-drawn text (mixed with quotes, backslashes, newlines, U+2028, NUL,
non-ASCII and ready-made injection payloads that would create a sentinel file) into the model name and
description, a block's name, description, parameter default and argument, a top-level parameter
default, item names, graph keys and inception-branch keys.  The result must be either a located
``ArchspecError``, or an emitted file that compiles, whose AST holds only the calls and imports the
generator writes, whose string constants are exactly the spec's strings, that runs nothing when
imported, and that builds the module :func:`archspec.build` builds (same ``state_dict`` keys and
shapes, same output).  The lowering's generated forward (``model.code``) is checked under the same specs.
"""

from __future__ import annotations

import ast
import itertools
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

import archspec
import helpers_emit
from archspec.emit_python import emit_python
from archspec.errors import ArchspecError
from archspec.expand import _module_attribute
from archspec.ir import Graph
from archspec.lower_torch import ArchspecModule, Block, _source
from test_lowering import _assert_safe

pytestmark = pytest.mark.usefixtures("two_threads")

FUZZ = settings(max_examples=25, deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

#: Replaced by the sentinel path of the running test: code that would create that file if it ever ran.
TOUCH = "__import__('pathlib').Path(SENTINEL).touch()"
PAYLOADS = [
    f'"""\n{TOUCH}\n"""', f"'''\n{TOUCH}\n'''", f"\n{TOUCH}\n", f"'); {TOUCH}; ('", f'"); {TOUCH}; ("',
    f"\\\n{TOUCH}", f"'](x)\n{TOUCH}#", f'"""; {TOUCH} #', f"{TOUCH}",
]
FRAGMENTS = ['"""', "'''", '"', "'", "\\", "\n", "\r", "\r\n", "\t", "\x0c", "\u2028", "\u2029", "\x85", "\x00",
             "\ufeff", "é", "ü.ö", "😀", "#", "C:\\new\\table", "\\x00", "\\N{BULLET}", "{}", "${", "$", ".", "-", " "]
KEYWORDISH = ["none", "None", "True", "class", "print", "self", "x", "inp", "torch", "nn", "getattr", "super", "float",
              "forward", "eval", "to", "training", "kind", "code", "concat", "input", "in", "_", "__init__", "match",
              "type", "T", "Net", "NoneNet", "Block", "a", "b", "b3x3", "3x3", "inception_branch1", "Conv2d", "lambda",
              "global", "add_module"]


def _texts(sentinel: str) -> st.SearchStrategy[str]:
    """Arbitrary text, biased towards the characters and payloads that break generated source."""
    pieces = st.one_of(st.sampled_from(FRAGMENTS), st.sampled_from([p.replace("SENTINEL", repr(sentinel))
                                                                   for p in PAYLOADS]), st.text(max_size=4))
    return st.lists(pieces, max_size=5).map("".join)


def _names(sentinel: str) -> st.SearchStrategy[str]:
    """Names: keywords, builtins and module attributes, identifiers, and arbitrary text."""
    return st.one_of(st.sampled_from(KEYWORDISH), st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,6}", fullmatch=True),
                     _texts(sentinel))


def _identifiers() -> st.SearchStrategy[str]:
    """Names the spec language accepts (Python keywords and builtins included)."""
    ok = [n for n in KEYWORDISH if n.isidentifier() and n.isascii() and n not in ("input", "in", "concat")
          and not _module_attribute(n)]
    ident = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,6}", fullmatch=True).filter(
        lambda n: n not in ("input", "in", "concat") and not _module_attribute(n))
    return st.one_of(st.sampled_from(ok), ident)


def q(text: str) -> str:
    """``text`` as a YAML double-quoted scalar (every non-printable or non-ASCII character escaped)."""
    out = []
    for ch in text:
        code = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif 0x20 <= code < 0x7F:
            out.append(ch)
        elif code <= 0xFF:
            out.append(f"\\x{code:02x}")
        elif code <= 0xFFFF:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    return '"' + "".join(out) + '"'


def _spec(s: dict[str, Any]) -> str:
    """A tiny spec (1×8×8 input, two 1×1 convs) with ``s``'s strings in every text position."""
    arg = "$s" if s["arg_from_param"] else q(s["arg"])
    branches = f"{{{q(s['k1'])}: [relu], {q(s['k2'])}: [conv: {{out: 1, k: 1}}]}}"
    head = (f"archspec: 1\nname: {q(s['model'])}\ndescription: {q(s['description'])}\ninput: [1, 8, 8]\n"
            f"params: {{s: {q(s['top_default'])}}}\n"
            f"blocks:\n  {q(s['block'])}:\n    description: {q(s['block_description'])}\n"
            f"    params: {{t: {q(s['default'])}}}\n"
            f"    layers:\n      - conv: {{out: 2, k: 1}}\n        name: {q(s['node'])}\n")
    if s["graph_form"]:
        return head + (f"graph:\n  {q(s['g1'])}: {{{q(s['block'])}: {{t: {arg}}}, from: input}}\n"
                       f"  {q(s['g2'])}: {{inception-branch: {branches}, from: {q(s['g1'])}}}\n")
    return head + (f"layers:\n  - {q(s['block'])}: {{t: {arg}}}\n    name: {q(s['g1'])}\n"
                   f"  - inception-branch: {branches}\n")


def _strings(names: st.SearchStrategy[str], texts: st.SearchStrategy[str]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({
        "model": names, "description": texts, "block": names, "block_description": texts, "default": texts,
        "top_default": texts, "arg": texts, "arg_from_param": st.booleans(), "node": names, "g1": names, "g2": names,
        "k1": names, "k2": names, "graph_form": st.booleans(),
    })


# ------------------------------------------------------------------ checks of one emitted file

_NN_MODULES = {n for n in dir(nn) if isinstance(getattr(nn, n), type) and issubclass(getattr(nn, n), nn.Module)}
_ALLOWED_NODES = (ast.Module, ast.Expr, ast.Import, ast.ImportFrom, ast.alias, ast.ClassDef, ast.FunctionDef,
                  ast.arguments, ast.arg, ast.Assign, ast.Return, ast.Call, ast.keyword, ast.Attribute, ast.Name,
                  ast.Constant, ast.List, ast.Tuple, ast.BinOp, ast.Add, ast.Mult, ast.UnaryOp, ast.USub, ast.Load, ast.Store)


def _segments(graph: Graph) -> set[str]:
    return {part for name in [*graph.nodes, *graph.groups] for part in name.split(".")}


def _is_self_path(node: ast.expr) -> bool:
    """``self``, ``self.a.b``, ``getattr(self.a, 'class')``: a submodule of ``self``."""
    while True:
        if isinstance(node, ast.Name):
            return node.id == "self"
        if isinstance(node, ast.Attribute):
            node = node.value
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "getattr"
              and len(node.args) == 2 and not node.keywords and isinstance(node.args[1], ast.Constant)):
            node = node.args[0]
        else:
            return False


def check_emitted(text: str, graph: Graph) -> list[str]:
    """Assert the emitted source is only what the generator writes; return the class names."""
    tree = ast.parse(text)
    compile(text, "emitted.py", "exec")
    segments = _segments(graph)
    body = tree.body
    assert isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
    assert ast.unparse(body[1]) == "import torch" and ast.unparse(body[2]) == "from torch import nn"
    classes: list[str] = []
    docstrings = {id(body[0].value)}
    for cls in body[3:]:
        assert isinstance(cls, ast.ClassDef) and not cls.decorator_list and not cls.keywords
        assert [ast.unparse(b) for b in cls.bases] == ["nn.Module"] and cls.name.isidentifier() and cls.name.isascii()
        assert cls.name not in classes, cls.name
        classes.append(cls.name)
        doc, init, fwd = cls.body
        assert isinstance(doc, ast.Expr) and isinstance(doc.value, ast.Constant) and isinstance(doc.value.value, str)
        docstrings.add(id(doc.value))
        assert isinstance(init, ast.FunctionDef) and init.name == "__init__"
        assert isinstance(fwd, ast.FunctionDef) and fwd.name == "forward" and not fwd.decorator_list
        local = {a.arg for a in fwd.args.args} | {t.id for s in fwd.body if isinstance(s, ast.Assign)
                                                  for t in s.targets if isinstance(t, ast.Name)}
        for node in ast.walk(init):
            if isinstance(node, ast.Name):
                assert node.id in {"self", "super", "getattr", "float", "nn", "None", *classes[:-1]}, node.id
        for node in ast.walk(fwd):
            if isinstance(node, ast.Name):
                assert node.id in {"getattr", "torch"} | local, node.id
    for node in ast.walk(tree):
        assert isinstance(node, _ALLOWED_NODES), ast.dump(node)
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name):
                assert func.id in {"super", "getattr", "float", *classes}, ast.dump(node)
                if func.id == "getattr":
                    assert _is_self_path(node.args[0]) and node.args[1].value in segments  # type: ignore[attr-defined]
                elif func.id == "float":
                    assert [a.value for a in node.args] in (["inf"], ["-inf"], ["nan"])  # type: ignore[attr-defined]
                else:
                    assert not node.args and not node.keywords
            elif isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == "nn":
                assert func.attr in _NN_MODULES
                for arg in [*node.args, *(k.value for k in node.keywords)]:
                    assert not any(isinstance(n, (ast.Call, ast.Name, ast.Attribute)) for n in ast.walk(arg)) or \
                        ast.unparse(arg) in ("float('inf')", "float('-inf')", "float('nan')"), ast.dump(arg)
            elif ast.unparse(func) in ("torch.cat", "super().__init__"):
                pass
            elif isinstance(func, ast.Attribute) and func.attr == "add_module":
                assert _is_self_path(func.value) and node.args[0].value in segments  # type: ignore[attr-defined]
            else:
                assert _is_self_path(func), ast.dump(node)
        if isinstance(node, ast.Import):
            assert [a.name for a in node.names] == ["torch"]
        if isinstance(node, ast.ImportFrom):
            assert node.module == "torch" and [a.name for a in node.names] == ["nn"]
        if isinstance(node, ast.Attribute):
            assert not node.attr.startswith("_") or node.attr in ("__init__",) or node.attr in segments, node.attr
    # Spec text appears only inside docstrings, exactly as the spec wrote it.
    module_doc = body[0].value.value
    assert module_doc.startswith(f"{graph.name}: standalone PyTorch model generated by archspec ")
    if graph.description:
        assert f"\n\n{graph.description}\n\n" in module_doc
        assert ast.get_docstring(body[-1], clean=False) == graph.description
    for group in graph.groups.values():
        for key, value in group.args.items():
            assert any(f"{key}={value!r}" in (ast.get_docstring(c, clean=False) or "") for c in body[3:-1])
    return classes


_counter = itertools.count()


def load_emitted(text: str, directory: Path) -> type[nn.Module]:
    """Import the emitted file (as a real module file, under a fresh name) and return its network class."""
    return helpers_emit.load_emitted(text, directory / f"archspec_fuzz_{next(_counter)}.py")[1]


def check_equivalent(graph: Graph, cls: type[nn.Module]) -> None:
    """The emitted class builds archspec.build's module: same state_dict keys and shapes, same output."""
    built = helpers_emit.assert_emitted_equals_build(graph, cls, equal_nan=True)
    # The lowering's own generated source (model.code) is whitelisted under the same names.
    assert isinstance(built, ArchspecModule)
    _assert_safe(built.code)
    _assert_safe(_source(type(built)._archspec_plan, keep=True))
    assert set(built.intermediates(torch.randn(1, *graph.input_shape))) == set(graph.nodes)


def run_one(text: str, directory: Path, sentinel: Path) -> Graph | ArchspecError:
    """Analyse, emit, check and import one spec; the error when the spec is refused (every diagnostic located)."""
    try:
        graph = archspec.analyze(text)
    except ArchspecError as exc:
        assert exc.diagnostics and all(d.span is not None and d.span.line >= 1 for d in exc.diagnostics), exc
        return exc
    emitted = emit_python(graph)
    check_emitted(emitted, graph)
    cls = load_emitted(emitted, directory)
    check_equivalent(graph, cls)
    assert not sentinel.exists(), "spec text ran as code"
    return graph


# ------------------------------------------------------------------ the fuzz tests

NAME_POSITIONS = ["model", "block", "node", "g1", "g2", "k1", "k2"]
TEXT_POSITIONS = ["description", "block_description", "default", "top_default", "arg"]


def _sentinel(tmp_path: Path) -> Path:
    return tmp_path / "injected-code-ran"


@FUZZ
@given(data=st.data())
def test_any_text_anywhere_is_refused_or_inert(data: st.DataObject, tmp_path: Path) -> None:
    """Arbitrary strings in every text position: a located error, or an emitted file that is only data.

    Free-text positions always get arbitrary text; one name position at a time (or none) gets an
    arbitrary string, the others valid names (else nearly every example would be refused), and when
    the spec is refused because of that name, an error points at a line holding it.
    """
    sentinel = _sentinel(tmp_path)
    strings = data.draw(_strings(_identifiers(), _texts(str(sentinel))))
    hostile = data.draw(st.sampled_from([None, *NAME_POSITIONS]))
    if hostile is not None:
        strings[hostile] = data.draw(_names(str(sentinel)))
    text = _spec(strings)
    outcome = run_one(text, tmp_path, sentinel)
    if isinstance(outcome, ArchspecError) and hostile is not None:
        try:
            archspec.analyze(_spec({**strings, hostile: "zz_fine"}))
        except ArchspecError:
            return  # refused for another reason too (names that clash, a '$' argument that is no expression)
        lines = [i for i, line in enumerate(text.splitlines(), 1) if q(strings[hostile]) in line]
        if hostile == "block":  # a malformed block name is reported at the block's body, the line below its key
            lines += [i + 1 for i in lines]
        assert any(d.span is not None and d.span.line in lines for d in outcome.diagnostics), (strings[hostile], outcome)


@FUZZ
@given(data=st.data())
def test_free_text_is_always_accepted_and_kept_exactly(data: st.DataObject, tmp_path: Path) -> None:
    """Descriptions and string arguments may hold anything; with valid names the spec always builds and emits."""
    sentinel = _sentinel(tmp_path)
    strings = data.draw(_strings(_identifiers(), _texts(str(sentinel))))
    if "$" in strings["arg"] + strings["top_default"] + strings["default"]:
        return  # an expression, not text
    plain = {**strings, **{k: "text" for k in TEXT_POSITIONS}}
    try:
        archspec.analyze(_spec(plain))
    except ArchspecError:
        return  # the names clash (two nodes named alike, a block named like an op): not what this test is about
    graph = run_one(_spec(strings), tmp_path, sentinel)
    assert isinstance(graph, Graph), graph
    assert graph.description == strings["description"]
    block = next(g for g in graph.groups.values() if g.kind == "block")
    assert block.args["t"] == (strings["top_default"] if strings["arg_from_param"] else strings["arg"])


def test_the_fuzz_specs_reach_every_position(tmp_path: Path) -> None:
    """The spec template really puts each string where the test says (a hand-picked hostile example)."""
    sentinel = _sentinel(tmp_path)
    payload = PAYLOADS[0].replace("SENTINEL", repr(str(sentinel)))
    strings = {"model": "none", "description": payload + 'C:\\new\\table"', "block": "class",
               "block_description": payload, "default": "\\", "top_default": "\u2028\x00", "arg": payload + "\\",
               "arg_from_param": False, "node": "print", "g1": "lambda", "g2": "g", "k1": "None", "k2": "b3x3",
               "graph_form": False}
    for graph_form, from_param in ((False, False), (True, True)):
        strings.update(graph_form=graph_form, arg_from_param=from_param)
        graph = run_one(_spec(strings), tmp_path, sentinel)
        assert isinstance(graph, Graph) and graph.name == "none" and graph.description == strings["description"]
        assert {"lambda.print", "inception_branch1.None.relu1", "inception_branch1.b3x3.conv1"} <= set(graph.nodes) \
            or {"lambda.print", "g.None.relu1", "g.b3x3.conv1"} <= set(graph.nodes)
        text = emit_python(graph)
        assert "class Class(nn.Module):" in text and "class None_(nn.Module):" in text


@pytest.mark.parametrize("where", ["item", "graph", "branch", "block"])
def test_hostile_names_are_located_errors(where: str, tmp_path: Path) -> None:
    """Names that cannot be identifiers are refused at the name's own line, in every name position."""
    for bad in ["3x3", "", "a\n", "a.b", "a b", "é", "x'](x)#", "forward", "__class__", "training", "in"]:
        if where == "block" and bad in ("forward", "__class__", "training"):
            continue  # a block's name only names its class and instances (``forward1``), never a submodule
        strings = {"model": "m", "description": "", "block": "blk", "block_description": "", "default": "",
                   "top_default": "", "arg": "", "arg_from_param": False, "node": "n", "g1": "g", "g2": "h",
                   "k1": "k1", "k2": "k2", "graph_form": where == "graph"}
        strings[{"item": "node", "graph": "g1", "branch": "k1", "block": "block"}[where]] = bad
        with pytest.raises(ArchspecError) as exc:
            archspec.analyze(_spec(strings))
        codes = {d.code for d in exc.value.diagnostics}
        assert codes & {"E-NAME", "E-TYPE", "E-UNKNOWN-KEY"} and all(d.span for d in exc.value.diagnostics), (bad, codes)


def test_module_attribute_names_cover_torch() -> None:
    """The static list of names a node may not take covers every attribute of the installed torch's modules."""
    from archspec.expand import MODULE_ATTRIBUTES

    model = archspec.build("archspec: 1\nname: t\ninput: [1, 8, 8]\nlayers: [conv: {out: 2, k: 1}]\n", device="meta")
    attrs = set(dir(nn.Module())) | set(dir(Block("k"))) | set(dir(type(model))) | set(vars(model))
    assert sorted(a for a in attrs if not _module_attribute(a)) == []
    assert {"forward", "eval", "to", "training", "kind", "code"} <= MODULE_ATTRIBUTES
