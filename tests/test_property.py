"""Property-based tests: random specs either compile with exact static shapes or fail with ArchspecError.

Hypothesis generates specs as Python data (sequences, composites, parameterised blocks and explicit
graphs, both sensible and broken), dumps them to YAML text and analyses them.  For every spec:

* analysing either succeeds or raises :class:`archspec.ArchspecError` — never any other exception;
* when it succeeds, the model is built and run on a small CPU input, and the static shape of every
  node equals the shape PyTorch produces.

Random edits of the YAML text itself (truncation, stray characters) check the reader the same way.
The default run uses a few hundred examples; ``pytest -m slow`` runs many more.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import archspec
from archspec.errors import ArchspecError

# CI runs a fixed (derandomized) set of examples so it cannot flake; the slow variant explores freely.
FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
SLOW = settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# ------------------------------------------------------------------ strategies
# Strategies are built once (cached by their arguments): constructing them per draw is what makes
# Hypothesis slow, not running the examples.

small = st.integers(1, 8)
window = st.integers(1, 4)
pair_or_int = st.one_of(window, st.tuples(window, window).map(list))
junk = st.one_of(
    st.integers(-3, 0), st.integers(10**7, 10**12), st.floats(-2, 2.5, allow_nan=False).filter(lambda f: f != int(f)),
    st.sampled_from(["", "abc", "$nope", "${1 / 0}", "${in.c / 2}", "${", "same", None, True, [], [1, 2, 3], {}]),
)
CONV_OUT = st.one_of(small, st.just("$c"), st.just("${in.c * 2}"), st.just("${max(1, in.c // 2)}"))
STRIDE = st.one_of(st.integers(1, 3), st.tuples(st.integers(1, 3), st.integers(1, 3)).map(list))
CONV_PAD = st.one_of(st.integers(0, 2), st.sampled_from(["same", "valid"]),
                     st.tuples(st.integers(0, 2), st.integers(0, 2)).map(list))
LINEAR_OUT = st.one_of(small, st.just("${in.features // 2 + 1}"))
WHEN = st.sampled_from([True, False, "${in.rank == 3}"])


@cache
def maybe_junk(value: st.SearchStrategy[Any], invalid: bool) -> st.SearchStrategy[Any]:
    """With ``invalid`` on, sometimes replace a good value by junk."""
    return st.one_of(value, value, value, junk) if invalid else value


@st.composite
def _conv(draw: st.DrawFn, invalid: bool) -> dict[str, Any]:
    args: dict[str, Any] = {"out": draw(maybe_junk(CONV_OUT, invalid)), "k": draw(maybe_junk(pair_or_int, invalid))}
    if draw(st.booleans()):
        args["stride"] = draw(maybe_junk(STRIDE, invalid))
    if draw(st.booleans()):
        args["pad"] = draw(maybe_junk(CONV_PAD, invalid))
    if draw(st.integers(0, 4)) == 0:
        args["dilation"] = draw(maybe_junk(st.integers(1, 2), invalid))
    if draw(st.integers(0, 4)) == 0:
        args["groups"] = draw(maybe_junk(st.integers(1, 2), invalid))
    if draw(st.integers(0, 4)) == 0:
        args["bias"] = draw(maybe_junk(st.booleans(), invalid))
    return {"conv": args}


@st.composite
def _pool(draw: st.DrawFn, invalid: bool) -> dict[str, Any]:
    op = draw(st.sampled_from(["maxpool", "avgpool"]))
    args: dict[str, Any] = {"k": draw(maybe_junk(pair_or_int, invalid))}
    if draw(st.booleans()):
        args["stride"] = draw(maybe_junk(st.integers(1, 3), invalid))
    if draw(st.booleans()):
        args["pad"] = draw(maybe_junk(st.integers(0, 2), invalid))
    if draw(st.booleans()):
        args["ceil_mode"] = draw(maybe_junk(st.booleans(), invalid))
    if op == "maxpool" and draw(st.integers(0, 3)) == 0:
        args["dilation"] = draw(maybe_junk(st.integers(1, 2), invalid))
    if op == "avgpool" and draw(st.integers(0, 3)) == 0:
        args["count_include_pad"] = draw(st.booleans())
    return {op: args}


ACTS = st.sampled_from(["relu", "sigmoid", "tanh", "silu", "gelu", "hardswish", "relu6", "leaky-relu", "bn",
                        "dropout", "identity"])


@cache
def simple(invalid: bool, rank: int) -> st.SearchStrategy[Any]:
    """A primitive op item for a tensor of ``rank`` (3: C×H×W, 1: flat; 0: any, meant to mismatch)."""
    image: list[st.SearchStrategy[Any]] = [
        _conv(invalid), _conv(invalid), _pool(invalid),
        st.builds(lambda n: {"adaptive-avgpool": {"size": n}}, maybe_junk(st.integers(1, 3), invalid)),
        st.builds(lambda n: {"adaptive-maxpool": {"size": n}}, maybe_junk(st.integers(1, 3), invalid)),
    ]
    flat: list[st.SearchStrategy[Any]] = [
        st.builds(lambda n: {"linear": {"out": n}}, maybe_junk(LINEAR_OUT, invalid)),
    ]
    shaping = [st.sampled_from(["gap", "flatten"])]
    options: list[st.SearchStrategy[Any]] = (
        image if rank == 3 else flat if rank == 1 else image + flat + shaping
    ) + [
        ACTS,
        st.builds(lambda p: {"dropout": {"p": p}}, maybe_junk(st.sampled_from([0, 0.1, 0.5]), invalid)),
        st.builds(lambda s: {"leaky-relu": {"slope": s}}, maybe_junk(st.sampled_from([0.01, 0.2, 0]), invalid)),
        st.builds(lambda d: {"softmax": {"dim": d}}, maybe_junk(st.integers(-4, 4), invalid)),
        st.builds(lambda a: {"gelu": {"approximate": a}}, maybe_junk(st.sampled_from(["none", "tanh"]), invalid)),
        st.builds(lambda e: {"bn": {"eps": e, "momentum": 0.1}}, maybe_junk(st.sampled_from([1e-5, 1e-3]), invalid)),
    ]
    if invalid:
        options.append(st.sampled_from(["rleu", "conv2d", {"conv": {"out": 4}}, {"linear": None}, 42, {"nope": {}},
                                        {"conv": {"out": 4, "k": 3, "kernel_size": 3}}]))
    return st.one_of(*options)


@cache
def items(invalid: bool, blocks: tuple[str, ...], depth: int, rank: int) -> st.SearchStrategy[list[Any]]:
    """A non-empty list of items, with composites and block uses nested up to ``depth``."""
    return st.lists(item(invalid, blocks, depth, rank), min_size=1, max_size=4)


@cache
def item(invalid: bool, blocks: tuple[str, ...], depth: int, rank: int) -> st.SearchStrategy[Any]:
    """One item: a primitive, a composite, or a block use, maybe with ``repeat`` or ``when``."""
    return _item(invalid, blocks, depth, rank)


@st.composite
def _item(draw: st.DrawFn, invalid: bool, blocks: tuple[str, ...], depth: int, rank: int) -> Any:
    if draw(st.integers(0, 12)) == 0:
        rank = 0  # now and then an op of the wrong rank, even in sensible specs
    choice = draw(st.integers(0, 9))
    if depth <= 0 or choice < 5:
        value = draw(simple(invalid, rank))
    elif choice == 5:
        value = {"sequence": draw(items(invalid, blocks, depth - 1, rank))}
    elif choice == 6:
        shortcut = draw(st.sampled_from(["auto", "identity", "layers"]))
        value = {"residual-add": {"body": draw(items(invalid, blocks, depth - 1, rank)),
                                  "shortcut": draw(items(invalid, blocks, depth - 1, rank)) if shortcut == "layers"
                                  else shortcut}}
    elif choice == 7:
        value = {"dense-concat": draw(items(invalid, blocks, depth - 1, rank))}
    elif choice == 8:
        value = {"inception-branch": [draw(items(invalid, blocks, depth - 1, rank)) for _ in range(draw(st.integers(1, 3)))]}
    elif not blocks or rank != 3:
        value = draw(simple(invalid, rank))
    else:
        name = draw(st.sampled_from(blocks))
        value = {name: {"c": draw(maybe_junk(small, invalid))}} if draw(st.booleans()) else {name: None}
        if invalid and draw(st.integers(0, 5)) == 0:
            value = {name: {"cc": 3}}
    if isinstance(value, dict) and len(value) == 1 and draw(st.integers(0, 5)) == 0:
        value = {**value, "repeat": draw(maybe_junk(st.integers(0, 3), invalid))}
    if isinstance(value, dict) and len(value) <= 2 and draw(st.integers(0, 8)) == 0:
        value = {**value, "when": draw(maybe_junk(WHEN, invalid))}
    return value


@st.composite
def graph_body(draw: st.DrawFn, invalid: bool, blocks: tuple[str, ...], rank: int) -> tuple[dict[str, Any], str]:
    """An explicit graph: each node reads 'input' or an earlier node; merges read two earlier nodes."""
    n = draw(st.integers(1, 6))
    nodes: dict[str, Any] = {}
    names: list[str] = []
    for i in range(n):
        name = f"n{i}"
        earlier = ["input", *names]
        if names and draw(st.integers(0, 3)) == 0:
            merge = draw(st.sampled_from(["add", "concat"]))
            refs = [draw(st.sampled_from(earlier)) for _ in range(draw(st.integers(2, 3)))]
            if invalid and draw(st.integers(0, 4)) == 0:
                refs[0] = draw(st.sampled_from([f"n{n + 3}", f"n{i}", "nowhere"]))  # unknown, self or later
            nodes[name] = {merge: refs}
        else:
            node = draw(item(invalid, blocks, 1, rank))
            if not isinstance(node, dict):
                node = {node: None} if isinstance(node, str) else {"identity": None}
            node = {k: v for k, v in node.items() if k != "repeat"} or {"identity": None}
            src = draw(st.sampled_from(earlier))
            if invalid and draw(st.integers(0, 5)) == 0:
                src = draw(st.sampled_from([f"n{n - 1}", "missing"]))
            nodes[name] = {**node, "from": src}
        names.append(name)
    output = names[-1]
    if invalid and draw(st.integers(0, 6)) == 0:
        output = "nothing"
    return nodes, output


@st.composite
def _spec(draw: st.DrawFn, invalid: bool) -> dict[str, Any]:
    image = draw(st.integers(0, 5)) > 0
    size = st.one_of(st.integers(1, 32), st.integers(12, 32))
    shape = [draw(st.integers(1, 3)), draw(size), draw(size)] if image else [draw(st.integers(1, 24))]
    rank = len(shape)
    doc: dict[str, Any] = {"archspec": 1, "name": "prop", "input": shape}
    if draw(st.integers(0, 3)) > 0:
        doc["params"] = {"c": draw(maybe_junk(st.integers(1, 6), invalid))}
    blocks: dict[str, Any] = {}
    for b in range(draw(st.integers(0, 2))):
        bname = f"blk{b}"
        body = draw(items(invalid, tuple(blocks), 1, 3))
        first = {"conv": {"out": "$c", "k": 1}} if image and draw(st.booleans()) else {"identity": None}
        blocks[bname] = {"params": {"c": draw(st.sampled_from([4, 8, None]))}, "layers": [first, *body]}
        if invalid and draw(st.integers(0, 6)) == 0:
            blocks[bname]["layers"].append(bname)  # a block using itself
    if blocks:
        doc["blocks"] = blocks
    if draw(st.integers(0, 3)) == 0:
        doc["graph"], doc["output"] = draw(graph_body(invalid, tuple(blocks), rank))
    else:
        doc["layers"] = draw(items(invalid, tuple(blocks), 2, rank))
        if image and draw(st.booleans()):  # a classifier head
            doc["layers"] += [draw(st.sampled_from(["gap", "flatten"])), "flatten", {"linear": {"out": 10}}]
    if invalid and draw(st.integers(0, 4)) == 0:
        key = draw(st.sampled_from(["name", "input", "archspec", "layer", "extra"]))
        doc[key] = draw(junk)
    return doc


@cache
def spec(invalid: bool) -> st.SearchStrategy[dict[str, Any]]:
    """A whole spec document as Python data (sensible, or with ``invalid`` random breakage)."""
    return _spec(invalid)


def dump(doc: dict[str, Any]) -> str:
    """YAML text for a spec (always with a newline, so archspec reads it as text, not a path)."""
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True) + "\n"


# ------------------------------------------------------------------ the property


def check(text: str) -> bool:
    """Analyse ``text``: an ArchspecError, or a model whose real shapes equal the static ones.

    Returns True when the spec compiled.  Any other exception fails the test.
    """
    try:
        graph = archspec.analyze(text)
    except ArchspecError as exc:
        assert exc.diagnostics, "an ArchspecError must carry diagnostics"
        assert all(d.code and d.message for d in exc.diagnostics)
        assert any(d.severity == "error" for d in exc.diagnostics)
        return False
    model = archspec.build(graph)
    model.eval()
    x = torch.randn(2, *graph.input_shape)
    with torch.no_grad():
        seen = {name: tuple(t.shape[1:]) for name, t in model.intermediates(x).items()}
        out = model(x)
    assert list(seen) == list(graph.nodes)
    for node in graph.nodes.values():
        assert seen[node.name] == node.shape, (node.name, node.op, seen[node.name], node.shape, text)
    assert tuple(out.shape[1:]) == graph.output_shape
    return True


@FAST
@given(spec(invalid=False))
def test_random_specs_compile_to_their_static_shapes(doc: dict[str, Any]) -> None:
    """Sensible random specs: ArchspecError (e.g. a collapsed feature map) or exact runtime shapes."""
    check(dump(doc))


@FAST
@given(spec(invalid=True))
def test_random_broken_specs_fail_cleanly(doc: dict[str, Any]) -> None:
    """Specs with random junk values, unknown names, bad references: only ArchspecError."""
    check(dump(doc))


@FAST
@given(spec(invalid=False), st.data())
def test_random_text_edits_fail_cleanly(doc: dict[str, Any], data: st.DataObject) -> None:
    """Truncated or corrupted YAML text: only ArchspecError (or a valid spec)."""
    text = dump(doc)
    cut = data.draw(st.integers(0, len(text)))
    junk_text = data.draw(st.sampled_from(["", ":", "- ", "{", "]", "\t", "'", "&a", "*a", "!!python/none ", "\x00",
                                           "\ufeff", "---\n", "<<: ", "? ", "%YAML 1.1\n", "|", "\n  "]))
    check(text[:cut] + junk_text + text[cut:] if data.draw(st.booleans()) else text[:cut] + "\n")


def test_generators_produce_both_outcomes() -> None:
    """The strategies are not degenerate: some valid specs compile, and broken ones fail."""
    compiled = failed = 0

    @settings(max_examples=120, deadline=None, database=None, derandomize=True)
    @given(spec(invalid=False))
    def run(doc: dict[str, Any]) -> None:
        nonlocal compiled, failed
        if check(dump(doc)):
            compiled += 1
        else:
            failed += 1

    run()
    assert compiled >= 20 and failed >= 5, (compiled, failed)


@pytest.mark.slow
@SLOW
@given(spec(invalid=False))
def test_random_specs_compile_to_their_static_shapes_slow(doc: dict[str, Any]) -> None:
    """The valid-spec property with many more examples (``pytest -m slow``)."""
    check(dump(doc))


@pytest.mark.slow
@SLOW
@given(spec(invalid=True))
def test_random_broken_specs_fail_cleanly_slow(doc: dict[str, Any]) -> None:
    """The broken-spec property with many more examples (``pytest -m slow``)."""
    check(dump(doc))
