"""Resource guards that count everything, and expansion that never answers wrongly in silence.

Attacks issue 13 (sections 3 and 5) as classes:

* work that produces few or no nodes (nested repeats of empty groups, ``repeat: 0``, ``when: false``,
  blocks whose bodies are pass-throughs, fan-out of block instances) is bounded by the expansion-step
  limit, and nested repeat counts are multiplied and refused *before* expanding;
* large values (aliased lists as block arguments, expressions building lists, overrides) are
  bounded before they are bound or copied, and binding them counts toward the limit;
* the parameter guard counts buffers, refuses before allocating, and ``build --json`` allocates nothing;
* an item with several inputs and ``repeat``, a ``layers`` item reading a later one, cycle messages,
  and node names from every source are explicit errors, never a silent wrong graph;
* random small specs (items, repeats, ``from``, ``when``, blocks) either analyse or raise
  ArchspecError, quickly (hypothesis).
"""

from __future__ import annotations

import itertools
import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import archspec
from archspec import ArchspecError
from archspec import expand as expand_mod
from archspec.cli import main
from archspec.ops import OPS, Identity, canonical_op_name

HEAD = "archspec: 1\nname: t\ninput: [3, 8, 8]\n"


def _codes(exc: pytest.ExceptionInfo[ArchspecError]) -> list[str]:
    return [d.code for d in exc.value.diagnostics]


def _analyze_error(text: str, overrides: dict[str, Any] | None = None, *, within: float | None = None) -> ArchspecError:
    """The error ``analyze`` raises for ``text``; with ``within``, it must raise it within that many seconds."""
    start = time.perf_counter()
    with pytest.raises(ArchspecError) as exc:
        archspec.analyze(text, overrides)
    if within is not None:
        assert time.perf_counter() - start < within
    return exc.value


def _line_of(text: str, needle: str, nth: int = 0) -> int:
    """1-based line of the ``nth`` line of ``text`` containing ``needle``."""
    return [i + 1 for i, line in enumerate(text.splitlines()) if needle in line][nth]


# ------------------------------------------------------------------ work that makes few nodes


def _nested(levels: list[int], inner: str, *, named: bool = False) -> str:
    """``levels`` nested sequences (outermost first), each repeated, around the items ``inner``."""
    text = inner
    for depth, n in enumerate(reversed(levels)):
        pad = "  " * (len(levels) - depth - 1)
        body = "\n".join(pad + "    " + line for line in text.splitlines())
        name = f"\n{pad}  name: s{depth}" if named else ""
        text = f"{pad}- sequence:\n{body}\n{pad}  repeat: {n}{name}"
    return text


EMPTY_BODIES = {
    "repeat 0": "- relu: {}\n  repeat: 0",
    "when false": "- relu: {}\n  when: false",
    "when expression false": "- relu: {}\n  when: ${in.c == 0}",
}


@pytest.mark.parametrize("named", [False, True])
@pytest.mark.parametrize("inner", sorted(EMPTY_BODIES))
def test_nested_repeats_of_empty_groups_are_refused_before_expanding(inner: str, named: bool) -> None:
    """Three repeats of 1,000 around a pass-through: refused at the repeat that makes the product too big."""
    body = _nested([1000, 1000, 1000], EMPTY_BODIES[inner], named=named)
    text = HEAD + "layers:\n" + "\n".join("  " + line for line in body.splitlines()) + "\n"
    err = _analyze_error(text, within=5)
    assert [d.code for d in err.diagnostics] == ["E-LIMIT"]
    diag = err.diagnostics[0]
    # The innermost sequence's repeat makes 10^9 copies; its line is the first 'repeat: 1000' in the text.
    assert diag.span is not None and diag.span.line == _line_of(text, "repeat: 1000")
    assert "1,000,000,000 copies" in diag.message


def test_nested_repeats_through_blocks_multiply() -> None:
    """Repeats multiply through block instances too (a block whose body is a pass-through)."""
    text = HEAD + """blocks:
  empty:
    layers:
      - relu: {}
        repeat: 0
  mid:
    layers:
      - empty: {}
        repeat: 2000
layers:
  - mid: {}
    repeat: 1000
"""
    err = _analyze_error(text, within=5)
    assert [d.code for d in err.diagnostics] == ["E-LIMIT"]
    assert err.diagnostics[0].span is not None and err.diagnostics[0].span.line == _line_of(text, "repeat: 2000")


def test_product_within_the_limit_is_allowed() -> None:
    """Nested repeats whose product fits are expanded (and make no node here)."""
    text = HEAD + "layers:\n" + "\n".join("  " + ln for ln in _nested([30, 30], EMPTY_BODIES["repeat 0"]).splitlines())
    graph = archspec.analyze(text + "\n  - relu\n")
    assert list(graph.nodes) == ["relu1"]


@pytest.mark.parametrize("kind", ["blocks", "sequences", "named repeats"])
def test_every_expansion_step_counts(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Work without nodes and without large repeat products still hits the step limit (lowered here)."""
    monkeypatch.setattr(expand_mod, "MAX_STEPS", 20_000)
    if kind == "blocks":  # fan-out: 8^5 instances of a block whose body is a pass-through, no repeat at all
        blocks = "  b0:\n    layers:\n      - relu: {}\n        when: false\n"
        blocks += "".join(f"  b{i}:\n    layers: [{', '.join([f'b{i - 1}'] * 8)}]\n" for i in range(1, 6))
        text = HEAD + "blocks:\n" + blocks + "layers: [b5]\n"
    elif kind == "sequences":  # 10,000 copies of an empty sequence: the product (10^4) is under the limit
        text = HEAD + "layers:\n  - sequence:\n      - relu: {}\n        repeat: 0\n    repeat: 10000\n"
    else:
        text = HEAD + "layers:\n  - sequence:\n      - relu: {}\n        repeat: 0\n    repeat: 10000\n    name: s\n"
    err = _analyze_error(text)
    assert [d.code for d in err.diagnostics] == ["E-LIMIT"]
    assert "20,000 expansion steps" in err.diagnostics[0].message


def test_step_limit_leaves_room_for_real_networks() -> None:
    """Real networks take under 8 steps per node (tests/test_scaling_smoke.py measures it per family)."""
    assert expand_mod.MAX_STEPS >= 8 * expand_mod.MAX_NODES


# ------------------------------------------------------------------ large values


def _big_list(n: int) -> str:
    return "[" + ", ".join(["1"] * n) + "]"


def test_large_alias_as_block_argument_is_refused() -> None:
    """A 100,000-element aliased list bound to a block parameter in 1,000 copies: refused before binding."""
    text = HEAD + f"""blocks:
  b:
    params: {{v: []}}
    layers: [relu]
layers:
  - b: {{v: &big {_big_list(100_000)}}}
    name: first
  - b: {{v: *big}}
    repeat: 1000
"""
    err = _analyze_error(text, within=10)
    assert {d.code for d in err.diagnostics} == {"E-LIMIT"}
    assert "10,000 elements" in err.diagnostics[0].message
    assert err.diagnostics[0].span is not None and err.diagnostics[0].span.line == _line_of(text, "name: first") - 1


def test_binding_cost_counts_toward_the_limit() -> None:
    """Values under the per-value bound still cost their size in every copy: 5,000 × 1,000 is refused."""
    text = HEAD + f"""blocks:
  b:
    params: {{v: []}}
    layers: [relu]
layers:
  - b: {{v: {_big_list(5_000)}}}
    repeat: 1000
"""
    err = _analyze_error(text, within=10)
    assert [d.code for d in err.diagnostics] == ["E-LIMIT"]
    assert "expansion steps" in err.diagnostics[0].message
    graph = archspec.analyze(text.replace("repeat: 1000", "repeat: 3"))  # a few copies are fine
    assert graph.groups["b1"].args["v"] == [1] * 5_000


@pytest.mark.parametrize(
    ("params", "arg"),
    [
        ({"a": "[" + ", ".join(["1"] * 4_000) + "]"}, '"${[a, a, a]}"'),  # an expression building a large list
        ({"a": "[" + ", ".join(["[1, 2, 3]"] * 3_000) + "]"}, "$a"),  # nested elements count too
        ({"a": "{" + ", ".join(f"k{i}: {i}" for i in range(12_000)) + "}"}, "$a"),  # mapping entries count
    ],
)
def test_large_values_are_refused_everywhere(params: dict[str, str], arg: str) -> None:
    """Top-level parameters, expressions building lists, nested lists and mappings are all bounded."""
    text = HEAD + "params: {" + ", ".join(f"{k}: {v}" for k, v in params.items()) + "}\n" + f"""blocks:
  b:
    params: {{v: null}}
    layers: [relu]
layers:
  - b: {{v: {arg}}}
"""
    err = _analyze_error(text)
    assert [d.code for d in err.diagnostics] == ["E-LIMIT"]


def test_large_and_recursive_overrides_are_refused() -> None:
    """Python overrides are bounded before they are substituted (a self-containing list too)."""
    text = HEAD + "params: {v: []}\nlayers: [relu]\n"
    assert [d.code for d in _analyze_error(text, {"v": list(range(20_000))}).diagnostics] == ["E-LIMIT"]
    loop: list[Any] = []
    loop.append(loop)
    assert [d.code for d in _analyze_error(text, {"v": loop}).diagnostics] == ["E-LIMIT"]
    assert archspec.analyze(text, {"v": list(range(100))}).params["v"] == list(range(100))


def test_large_op_argument_is_refused_before_copying() -> None:
    """An op argument is bounded too (here a huge kernel list), in every copy of a repeat."""
    text = HEAD + f"layers:\n  - conv: {{out: 4, k: {_big_list(50_000)}}}\n    repeat: 1000\n"
    err = _analyze_error(text, within=10)
    assert "E-LIMIT" in {d.code for d in err.diagnostics}


def test_messages_about_large_values_stay_short() -> None:
    """A wrongly typed large argument is reported without printing the whole value."""
    text = HEAD + f"""blocks:
  b:
    params: {{v: 1}}
    layers: [relu]
layers:
  - b: {{v: {_big_list(9_000)}}}
"""
    err = _analyze_error(text)
    assert [d.code for d in err.diagnostics] == ["E-PARAM-TYPE"]
    assert len(err.diagnostics[0].message) < 300


# ------------------------------------------------------------------ the parameter guard counts buffers

BN_HEAD = "archspec: 1\nname: bns\ninput: [4000000]\n"


def _write(tmp_path: Path, text: str, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def no_allocation(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Make any real (non-meta) construction of a model fail loudly instead of allocating gigabytes."""
    from archspec import lower_torch

    devices: list[Any] = []
    real_build = lower_torch.Lowering.build

    def guarded(self: Any, *, device: Any = None, **kwargs: Any) -> Any:
        devices.append(device)
        if str(device) != "meta":
            raise AssertionError(f"a model of {self.elements:,} elements was about to be allocated on {device}")
        return real_build(self, device=device, **kwargs)

    monkeypatch.setattr(lower_torch.Lowering, "build", guarded)
    return devices


@pytest.mark.parametrize("affine", [True, False])
def test_huge_bn_is_refused_before_allocation(affine: bool, no_allocation: list[Any]) -> None:
    """600 bn layers on 4M features: 4.8 G buffer elements (and as many parameters when affine)."""
    text = BN_HEAD + f"layers:\n  - bn: {{affine: {str(affine).lower()}}}\n    repeat: 600\n"
    graph = archspec.analyze(text)
    assert graph.total.params == (600 * 8_000_000 if affine else 0)
    assert graph.total.buffers == 600 * 8_000_001
    with pytest.raises(ArchspecError) as exc:
        archspec.build(text)
    assert _codes(exc) == ["E-TOO-LARGE"]
    message = exc.value.diagnostics[0].message
    assert "4,800,000,600 buffer elements" in message and "the largest layer is 'bn1'" in message
    assert no_allocation == []


def test_max_params_counts_buffers(no_allocation: list[Any]) -> None:
    """The limit is on parameters plus buffers: a bn of 4 channels has 8 parameters and 9 buffer elements."""
    text = "archspec: 1\nname: t\ninput: [4, 2, 2]\nlayers: [bn]\n"
    for limit in (8, 16):
        with pytest.raises(ArchspecError) as exc:
            archspec.build(text, max_params=limit)
        assert _codes(exc) == ["E-TOO-LARGE"]
        assert "8 parameters and 9 buffer elements (17 in all)" in exc.value.diagnostics[0].message
    assert archspec.build(text, max_params=16, device="meta") is not None  # meta allocates nothing
    assert no_allocation == ["meta"]


def test_max_params_counts_buffers_for_real_builds() -> None:
    """At the exact limit a small model builds."""
    model = archspec.build("archspec: 1\nname: t\ninput: [4, 2, 2]\nlayers: [bn]\n", max_params=17)
    assert sum(p.numel() for p in model.parameters()) + sum(b.numel() for b in model.buffers()) == 17


def test_cli_build_refuses_huge_buffers(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                        no_allocation: list[Any]) -> None:
    """`archspec build` (no --json) refuses an over-limit model of buffers before allocating."""
    spec = _write(tmp_path, BN_HEAD + "layers:\n  - bn: {affine: false}\n    repeat: 600\n")
    assert main(["build", str(spec)]) == 1
    out, err = capsys.readouterr()
    assert out == "" and "[E-TOO-LARGE]" in err and "Traceback" not in err
    assert no_allocation == []


@pytest.mark.parametrize(
    "layers",
    [
        "  - bn: {affine: false}\n    repeat: 200\n",  # 1.6 G buffer elements: under the limit, 6.4 GB if allocated
        "  - linear: {out: 400}\n",  # 1.6 G parameters
        "  - bn: {}\n    repeat: 600\n",  # over the limit: summarised statically
    ],
)
def test_build_json_allocates_nothing(layers: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                      no_allocation: list[Any]) -> None:
    """`archspec build --json` inspects on the meta device (or statically): never a real allocation, never a crash."""
    spec = _write(tmp_path, BN_HEAD + "layers:\n" + layers)
    assert main(["build", str(spec), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    graph = archspec.analyze(spec)
    assert (data["params"], data["buffers"]) == (graph.total.params, graph.total.buffers)
    assert set(no_allocation) <= {"meta"}


def test_lower_applies_the_guard() -> None:
    """archspec.lower_torch.lower refuses too (export uses it); the meta device is always allowed."""
    from archspec.lower_torch import lower

    graph = archspec.analyze(BN_HEAD + "layers:\n  - bn: {affine: false}\n    repeat: 600\n")
    with pytest.raises(ArchspecError) as exc:
        lower(graph)
    assert _codes(exc) == ["E-TOO-LARGE"]
    model = lower(graph, device="meta")
    assert sum(b.numel() for b in model.buffers()) == graph.total.buffers


def test_out_of_memory_is_a_diagnostic(monkeypatch: pytest.MonkeyPatch) -> None:
    """Running out of memory while allocating (under the limit) is E-TOO-LARGE, not a traceback."""
    from archspec.ops import BatchNorm

    def no_memory(self: Any, *args: Any) -> Any:
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't allocate memory")

    monkeypatch.setattr(BatchNorm, "lower", no_memory)
    with pytest.raises(ArchspecError) as exc:
        archspec.build(HEAD + "layers: [bn]\n")
    assert _codes(exc) == ["E-TOO-LARGE"]
    assert "out of memory" in exc.value.diagnostics[0].message


# ------------------------------------------------------------------ several inputs and repeat


TWO = HEAD + """layers:
  - conv: {out: 3, k: 1}
    name: a
  - conv: {out: 3, k: 1}
    name: b
"""


@pytest.mark.parametrize("name", ["", "\n    name: c"])
@pytest.mark.parametrize("item", ["- conv: {out: 3, k: 1}\n    from: [a, b]", "- add: [a, b]", "- concat: [a, b]",
                                  "- sequence: [relu]\n    from: [a, b]"])
def test_an_item_with_several_inputs_cannot_be_repeated(item: str, name: str) -> None:
    """repeat > 1 with several inputs is E-REPEAT, with or without a name (the name only groups copies)."""
    text = TWO + f"  {item}{name}\n    repeat: 2\n"
    err = _analyze_error(text)
    assert [d.code for d in err.diagnostics] == ["E-REPEAT"]
    assert "2 inputs cannot be repeated" in err.diagnostics[0].message
    assert err.diagnostics[0].span is not None and err.diagnostics[0].span.line == _line_of(text, "repeat: 2")


@pytest.mark.parametrize("name", ["", "\n    name: c"])
def test_a_single_copy_reads_every_input(name: str) -> None:
    """repeat: 1 with a name reads all inputs (the named group used to read only the first)."""
    graph = archspec.analyze(TWO + f"  - add: [a, b]{name}\n    repeat: 1\n")
    merge = graph.nodes[graph.output]
    assert merge.inputs == ("a", "b")
    for op in ("conv: {out: 3, k: 1}", "sequence: [relu]"):
        err = _analyze_error(TWO + f"  - {op}\n    from: [a, b]{name}\n    repeat: 1\n")
        assert [d.code for d in err.diagnostics] == ["E-FROM"]
        assert "got 2" in err.diagnostics[0].message


def test_named_repeat_reads_from_its_input() -> None:
    """A named repeat with one explicit input reads that input, not the previous item."""
    graph = archspec.analyze(TWO + "  - relu: {}\n    from: a\n    name: r\n    repeat: 2\n  - add: [r, b]\n")
    assert graph.nodes["r.relu1"].inputs == ("a",)
    assert graph.nodes["r.relu2"].inputs == ("r.relu1",)


# ------------------------------------------------------------------ layers read only earlier items


@pytest.mark.parametrize("where", ["top", "sequence", "block", "residual body"])
def test_layers_item_cannot_read_a_later_item(where: str) -> None:
    """In every 'layers' list (top level, composites, blocks) reading a later item is E-FROM."""
    items = ["- relu: {}\n  name: x\n  from: y", "- conv: {out: 3, k: 1}\n  name: y", "- add: [x, y]"]
    body = "\n".join(items)
    if where == "top":
        text = HEAD + "layers:\n" + "\n".join("  " + ln for ln in body.splitlines()) + "\n"
    elif where == "sequence":
        text = HEAD + "layers:\n  - sequence:\n" + "\n".join("      " + ln for ln in body.splitlines()) + "\n"
    elif where == "block":
        text = HEAD + "blocks:\n  b:\n    layers:\n" + "\n".join("      " + ln for ln in body.splitlines()) + \
            "\nlayers: [b]\n"
    else:
        text = HEAD + "layers:\n  - residual-add:\n      body:\n" + \
            "\n".join("        " + ln for ln in body.splitlines()) + "\n"
    err = _analyze_error(text)
    assert [d.code for d in err.diagnostics] == ["E-FROM"]
    assert "'y', which comes later" in err.diagnostics[0].message
    assert err.diagnostics[0].span is not None and err.diagnostics[0].span.line == _line_of(text, "from: y")


def test_layers_item_cannot_read_itself_but_graph_may_reorder() -> None:
    """Reading itself is E-FROM in layers; the graph form still accepts any written order."""
    err = _analyze_error(HEAD + "layers:\n  - relu: {}\n    name: x\n    from: x\n")
    assert [d.code for d in err.diagnostics] == ["E-FROM"] and "its own output" in err.diagnostics[0].message
    graph = archspec.analyze(HEAD + "graph:\n  x: {relu: {}, from: y}\n  y: {conv: {out: 3, k: 1}, from: input}\n"
                             "output: x\n")
    assert list(graph.nodes) == ["y", "x"]


# ------------------------------------------------------------------ cycles name exactly their members


def _reported_cycles(err: ArchspecError) -> list[list[str]]:
    cycles = []
    for d in err.diagnostics:
        assert d.code == "E-CYCLE"
        match = re.fullmatch(r"the graph has a cycle: (.+)", d.message)
        assert match, d.message
        cycles.append(match.group(1).split(" → "))
    return cycles


def test_cycle_message_lists_only_the_cycle() -> None:
    """Nodes downstream of the cycle (d, e) are not listed; the cycle is closed and in data-flow order."""
    text = HEAD + """graph:
  d: {relu: {}, from: c}
  a: {relu: {}, from: c}
  b: {relu: {}, from: a}
  c: {relu: {}, from: b}
  e: {add: [d, input]}
output: e
"""
    cycles = _reported_cycles(_analyze_error(text))
    assert cycles == [["a", "b", "c", "a"]]


def test_independent_cycles_are_each_reported() -> None:
    err = _analyze_error(HEAD + "graph:\n  a: {relu: {}, from: b}\n  b: {relu: {}, from: a}\n"
                         "  x: {relu: {}, from: x}\n  s: {add: [a, x]}\noutput: s\n")
    assert _reported_cycles(err) == [["a", "b", "a"], ["x", "x"]]


@settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(2, 9).flatmap(lambda n: st.tuples(
    st.just(n), st.lists(st.lists(st.integers(-1, n - 1), min_size=1, max_size=3, unique=True), min_size=n, max_size=n))))
def test_reported_cycles_are_real_cycles(case: tuple[int, list[list[int]]]) -> None:
    """Random graphs: every reported cycle exists (each node reads the one before), repeats no node."""
    n, reads = case
    names = [f"n{i}" for i in range(n)]
    graph: dict[str, Any] = {}
    for i, srcs in enumerate(reads):
        inputs = ["input" if j < 0 else names[j] for j in srcs]
        graph[names[i]] = {"add": inputs} if len(inputs) > 1 else {"relu": {}, "from": inputs[0]}
    text = HEAD + yaml.safe_dump({"graph": graph, "output": names[-1]}, sort_keys=False)
    try:
        archspec.analyze(text)
        return
    except ArchspecError as exc:
        cycle_diags = [d for d in exc.diagnostics if d.code == "E-CYCLE"]
        if not cycle_diags:
            return
        err = ArchspecError(cycle_diags)
    reads_of = {names[i]: {("input" if j < 0 else names[j]) for j in srcs} for i, srcs in enumerate(reads)}
    for cycle in _reported_cycles(err):
        assert cycle[0] == cycle[-1] and len(set(cycle[:-1])) == len(cycle) - 1
        for before, after in itertools.pairwise(cycle):
            assert before in reads_of[after], (cycle, reads_of)


def test_long_cycle_is_found_without_recursion_and_shown_short() -> None:
    """A 20,000-node ring: one E-CYCLE, its ends listed, the middle counted, in seconds."""
    n = 20_000
    text = HEAD + "graph:\n" + "".join(f"  n{i}: {{relu: {{}}, from: n{(i + 1) % n}}}\n" for i in range(n))
    err = _analyze_error(text, within=30)
    [diag] = err.diagnostics
    assert diag.code == "E-CYCLE" and "(19,960 more)" in diag.message and len(diag.message) < 1_000
    assert diag.message.startswith("the graph has a cycle: n0 → n19999 → n19998")


def test_many_unknown_references_cost_linear_time() -> None:
    """10,000 nodes each reading an unknown one: every error is reported, hints stay short, no quadratic work."""
    n = 10_000
    text = HEAD + "graph:\n" + "".join(f"  n{i}: {{relu: {{}}, from: m{i}}}\n" for i in range(n))
    err = _analyze_error(text, within=30)
    assert len(err.diagnostics) == n and {d.code for d in err.diagnostics} == {"E-UNKNOWN-NODE"}
    assert all(len(d.hint or "") < 400 for d in err.diagnostics)
    assert "(9,981 more)" in (err.diagnostics[0].hint or "")


# ------------------------------------------------------------------ node names from every source


@pytest.mark.parametrize("key", ["''", "3x3", "1", '"a b"', '"a.b"', '"a\\n"', '"é"'])
def test_branch_keys_must_be_identifiers(key: str) -> None:
    """Inception branch keys name groups: any that is not an identifier is E-NAME (never a crash later)."""
    text = HEAD + f"layers:\n  - inception-branch: {{{key}: [relu], ok: [relu]}}\n"
    err = _analyze_error(text)
    assert [d.code for d in err.diagnostics] == ["E-NAME"]


@pytest.mark.parametrize("key", ['"a\\n"', '"a.b"', "''"])
def test_graph_keys_must_be_identifiers(key: str) -> None:
    err = _analyze_error(HEAD + f"graph:\n  {key}: {{relu: {{}}, from: input}}\n")
    assert "E-NAME" in [d.code for d in err.diagnostics] or "E-TYPE" in [d.code for d in err.diagnostics]


@pytest.mark.parametrize("op_name", ["x.y", "9lives", "sp ace"])
def test_automatic_names_are_checked_too(op_name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A plugin op whose name makes no identifier cannot produce a malformed automatic node name."""

    class Odd(Identity):
        name = op_name

    monkeypatch.setitem(OPS, canonical_op_name(op_name), Odd())
    archspec.api.clear_cache()
    err = _analyze_error(HEAD + f"layers:\n  - {json.dumps(op_name)}\n")
    assert [d.code for d in err.diagnostics] == ["E-NAME"]
    assert "not an identifier" in err.diagnostics[0].message
    graph = archspec.analyze(HEAD + f"layers:\n  - {json.dumps(op_name)}: {{}}\n    name: fine\n")
    assert list(graph.nodes) == ["fine"]


def test_unknown_input_cascades_no_new_error() -> None:
    """An item skipped after an earlier error reports nothing of its own (its repeat reads 'in')."""
    err = _analyze_error(HEAD + "layers:\n  - conv: {out: 3, k: 50}\n  - relu: {}\n    repeat: ${in.c}\n")
    assert [d.code for d in err.diagnostics] == ["E-SHAPE"]


# ------------------------------------------------------------------ random small specs: never a crash, never slow

ODD_NAMES = ["input", "in", "", "3x", "a b", "a.b", "a\n", "forward", "concat", "x" * 40]
REPEATS = st.one_of(st.integers(0, 3), st.integers(0, 3), st.sampled_from(
    [10, 1000, 10**6, 10**9, -1, 1.5, True, "$n", "${n * n}", "${in.c}", "x", None, [1, 2]]))
WHENS = st.sampled_from([True, False, "${in.c > 2}", "$flag", "${in.rank == 1}", 1, "maybe", None])
PRIMITIVES = st.sampled_from(["relu", "bn", "identity", "relu", {"conv": {"out": 2, "k": 1}},
                              {"conv": {"out": "$n", "k": 1}}, {"conv": {"out": 3, "k": 1}}, {"maxpool": {"k": 2}},
                              "flatten", {"linear": {"out": 3}}, {"conv": {"out": 2, "k": 9}}])


def _odd(draw: st.DrawFn, bad: bool) -> bool:
    """Whether to inject a mistake here: only in broken specs, and rarely, so most of each spec is sound."""
    return bad and draw(st.integers(0, 7)) == 0


@st.composite
def _ref(draw: st.DrawFn, earlier: list[str], later: list[str], bad: bool) -> str:
    """A node reference: 'input' or an earlier name; in broken specs sometimes a later, unknown or odd one."""
    if _odd(draw, bad):
        return draw(st.sampled_from([*later, "nope", *ODD_NAMES[:3]]))
    return draw(st.sampled_from(["input", *earlier, *earlier, *earlier]))


@st.composite
def _items(draw: st.DrawFn, depth: int, blocks: tuple[str, ...], bad: bool) -> list[Any]:
    count = draw(st.integers(1, 4))
    names = [f"n{depth}_{i}" for i in range(count)]
    named = [draw(st.booleans()) for _ in range(count)]
    earlier = [[n for n, has in zip(names[:i], named, strict=False) if has] for i in range(count)]
    items: list[Any] = []
    for i in range(count):
        kinds = ["primitive", "primitive", "merge", "sequence", "composite", "block"]
        kind = draw(st.sampled_from(kinds[: 6 if depth < 2 else 3]))
        if kind == "primitive":
            op = "nosuchop" if _odd(draw, bad) else draw(PRIMITIVES)
            item: dict[str, Any] = dict(op) if isinstance(op, dict) else {op: {}}
        elif kind == "merge":
            refs = draw(st.lists(_ref(earlier[i], names[i:], bad), min_size=1 if bad else 2, max_size=3))
            item = {draw(st.sampled_from(["add", "concat"])): refs}
        elif kind == "sequence":
            item = {"sequence": draw(_items(depth + 1, blocks, bad))}
        elif kind == "composite":
            comp = draw(st.sampled_from(["dense-concat", "residual-add", "inception-branch"]))
            if comp == "dense-concat":
                item = {comp: draw(_items(depth + 1, blocks, bad))}
            elif comp == "residual-add":
                item = {comp: {"body": draw(_items(depth + 1, blocks, bad)),
                               "shortcut": draw(st.sampled_from(["auto", "auto", "identity"]))}}
            else:
                branches = draw(st.lists(_items(depth + 1, blocks, bad), min_size=1, max_size=3))
                keys = [draw(st.sampled_from(ODD_NAMES)) + str(j) if _odd(draw, bad) else f"br{j}"
                        for j in range(len(branches))]
                item = {comp: dict(zip(keys, branches, strict=True)) if draw(st.booleans()) else branches}
        elif blocks:
            item = {draw(st.sampled_from(blocks)): draw(st.sampled_from([{}, {"k": 2}, {"k": "$n"}, {"k": [1] * 50}]))}
        else:
            item = {"relu": {}}
        if named[i]:
            item["name"] = draw(st.sampled_from(ODD_NAMES)) if _odd(draw, bad) else names[i]
        if draw(st.integers(0, 2)) == 0:
            item["repeat"] = draw(REPEATS) if bad else draw(st.integers(0, 3))
        if draw(st.integers(0, 4)) == 0:
            refs = draw(st.lists(_ref(earlier[i], names[i:], bad), min_size=1, max_size=2 if bad else 1))
            item["from"] = refs[0] if len(refs) == 1 and draw(st.booleans()) else refs
        if draw(st.integers(0, 4)) == 0:
            item["when"] = draw(WHENS) if bad else draw(st.sampled_from([True, False, "$flag", "${in.c > 2}"]))
        items.append(item)
    return items


@st.composite
def random_specs(draw: st.DrawFn) -> dict[str, Any]:
    bad = draw(st.integers(0, 2)) == 0  # a third of the specs carry mistakes; the rest are mostly sound
    n_blocks = draw(st.integers(0, 3))
    names = tuple(f"blk{i}" for i in range(n_blocks))
    blocks = {}
    for i, bname in enumerate(names):
        # A block may use only blocks defined after it (and sometimes itself: recursion must be an error).
        usable = names[i + 1:] + ((bname,) if _odd(draw, bad) else ())
        body = draw(_items(0, usable, bad))
        blocks[bname] = {"params": {"k": draw(st.sampled_from([1, None, [], "${in.c}"]))}, "layers": body}
    spec: dict[str, Any] = {"archspec": 1, "name": "fuzz", "input": draw(st.sampled_from([[3, 8, 8], [2, 4, 4], [6]])),
                            "params": {"n": draw(st.sampled_from([1, 2, 1000])), "flag": draw(st.booleans())}}
    if blocks:
        spec["blocks"] = blocks
    if draw(st.booleans()):
        spec["layers"] = draw(_items(0, names, bad))
    else:  # the graph form: items keyed by their names (which 'from' and merges refer to)
        items = draw(_items(0, names, bad))
        spec["graph"] = {f"n0_{i}": item for i, item in enumerate(items)}
        for item in spec["graph"].values():
            item.pop("name", None)
        if draw(st.booleans()):
            spec["output"] = "nope" if _odd(draw, bad) else draw(st.sampled_from(list(spec["graph"])))
    return spec


@settings(max_examples=200, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(random_specs())
def test_random_structures_analyse_or_fail_cleanly(spec: dict[str, Any]) -> None:
    """analyze() returns or raises ArchspecError for any structure, quickly, with the limits lowered."""
    text = yaml.safe_dump(spec, sort_keys=False, allow_unicode=True)
    start = time.perf_counter()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(expand_mod, "MAX_STEPS", 20_000)
        mp.setattr(expand_mod, "MAX_NODES", 2_000)
        try:
            graph = archspec.analyze(text)
        except ArchspecError as exc:
            assert exc.diagnostics and all(d.code for d in exc.diagnostics)
            graph = None
    assert time.perf_counter() - start < 10
    if graph is None:
        return
    graph.lint()
    for name in [*graph.nodes, *graph.groups]:
        assert all(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", part) for part in name.split(".")), name
    archspec.build(graph, device="meta")  # lowering never raises anything else either


@pytest.mark.parametrize("value", [10**5000, [1, [10**5000]], {"a": -(10**400)}], ids=["int", "nested", "mapping"])
def test_huge_numbers_in_python_overrides_are_a_limit(value: object) -> None:
    with pytest.raises(ArchspecError) as exc:
        archspec.analyze(Path(__file__).resolve().parent.parent / "specs" / "lenet.yaml", {"classes": value})
    assert exc.value.diagnostics[0].code == "E-LIMIT"


def test_a_long_override_is_not_echoed_in_full() -> None:
    with pytest.raises(ArchspecError) as exc:
        archspec.analyze(Path(__file__).resolve().parent.parent / "specs" / "lenet.yaml", {"classes": "x" * 5000})
    assert exc.value.diagnostics[0].code == "E-PARAM-TYPE" and len(str(exc.value)) < 400
