"""The expression evaluator: what it computes, and what it refuses."""

from __future__ import annotations

import math
import re
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from archspec.expr import ExprError, InputShape, evaluate, make_divisible, references


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$c", 64),
        ("${c * 2}", 128),
        ("${in.c // 2}", 48),
        ("${in.h + in.w}", 24),
        ("${c2[1]}", 192),
        ("${max(8, c // 16)}", 8),
        ("${stride == 1 and in.c == c}", False),
        ("${c if stride == 1 else c * 2}", 128),
        ("${-c + 1}", -63),
        ("${2 ** 10}", 1024),
        ("${c / 2}", 32.0),
        ("${in.shape}", [96, 12, 12]),
        ("${in.features}", 96 * 144),
        ("${make_divisible(32 * 0.75, 8)}", 24),
        ("$in.c", 96),
    ],
)
def test_evaluates(text: str, expected: object) -> None:
    env = {"c": 64, "stride": 2, "c2": [128, 192]}
    assert evaluate(text, env, InputShape((96, 12, 12))) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("${c // 0}", "division by zero"),
        ("${d}", "unknown name 'd'"),
        ("${cc}", "did you mean 'c'"),
        ("${__import__('os')}", "unknown function '__import__'"),
        ("${c.__class__}", "attributes are only available on 'in'"),
        ("${open('x')}", "unknown function 'open'"),
        ("${[x for x in c2]}", "is not allowed"),
        ("${lambda: 1}", "is not allowed"),
        ("${in.z}", "'in.z' is unknown"),
        ("${10 ** 100}", "number too large"),
        ("${2 ** 60 * 2 ** 60}", "number too large"),
        ("${c +}", "syntax error"),
        ("$", "not a valid expression"),
        ("${}", "empty expression"),
        ("${c2[5]}", "out of range"),
        ("${'a' * 3}", "arithmetic needs numbers"),
        ("${" + "(" * 500 + "1" + ")" * 500 + "}", "longer than"),
    ],
)
def test_refuses(text: str, message: str) -> None:
    with pytest.raises(ExprError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        evaluate(text, {"c": 64, "c2": [1, 2]}, InputShape((3, 8, 8)))


def test_in_unavailable_without_shape() -> None:
    with pytest.raises(ExprError, match="not available"):
        evaluate("${in.c}", {}, None)


def test_in_h_on_flat_input() -> None:
    with pytest.raises(ExprError, match="needs a C×H×W input"):
        evaluate("${in.h}", {}, InputShape((10,)))


def test_references() -> None:
    assert references("${in.c // width + c}") == {"in", "width", "c"}


def test_make_divisible_matches_torchvision() -> None:
    # torchvision's _make_divisible on MobileNetV2 widths with multiplier 1.0 and 0.5
    assert [make_divisible(c * 1.0, 8) for c in (32, 16, 24, 32, 64, 96, 160, 320)] == [32, 16, 24, 32, 64, 96, 160, 320]
    assert [make_divisible(c * 0.5, 8) for c in (32, 16, 24, 32, 64, 96, 160, 320)] == [16, 8, 16, 16, 32, 48, 80, 160]
    assert make_divisible(1280 * 0.35, 8) == 448


# ------------------------------------------------------------------ hostile expressions: bounded before the work

ENV = {"c": 64, "c2": [128, 192], "w": 0.5, "s": "relu"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("${(-1) ** 0.5}", "not a real number"),
        ("${(-8) ** (1 / 3)}", "not a real number"),
        ("${-c ** 0.5 if False else (-c) ** 0.5}", "not a real number"),
        ("${10 ** 10000}", "number too large"),
        ("${2 ** 2 ** 40}", "number too large"),
        ("${2 ** 2 ** 2 ** 2 ** 2}", "number too large"),
        ("${(2 ** 53) ** 2}", "number too large"),
        ("${0.5 ** -2000}", "number too large"),
        ("${1.5 ** 1000}", "number too large"),
        ("${2 ** 54}", "number too large"),
        ("${9007199254740993}", "number too large"),
        ("${1e308 * 10}", "number too large"),
        ("${1e16}", "number too large"),
        ("${[1] * 10 ** 9}", "arithmetic needs numbers"),
        ("${c2 * 10 ** 9}", "arithmetic needs numbers"),
        ("${[c2] + [c2]}", "arithmetic needs numbers"),
        ("${s * 10 ** 9}", "arithmetic needs numbers"),
        ("${round(5, -10 ** 9)}", "ndigits"),
        ("${round(5, 10 ** 9)}", "ndigits"),
        ("${round(1.5, 0.5)}", "ndigits"),
        ("${int('9' * 2)}", "arithmetic needs numbers"),
        ("${int('" + "9" * 200 + "')}", "longer than"),
        ("${int(1e300 * 1e300)}", "number too large"),
        ("${ceil(2 ** 60 / 1)}", "number too large"),
        ("${make_divisible(2 ** 52, 2 ** -1000)}", "number too large|not a finite number"),
        ("${0 ** -1}", "division by zero"),
        ("${1 % 0}", "division by zero"),
        ("${" + "-" * 390 + "1}", "too deeply nested|too complex|1"),
    ],
)
def test_hostile_expressions_are_refused(text: str, message: str) -> None:
    """Complex results, huge powers, products and repetitions are refused (before computing), fast."""
    start = time.perf_counter()
    try:
        result = evaluate(text, ENV, InputShape((3, 8, 8)))
    except ExprError as exc:
        assert re.search(message, str(exc)), str(exc)
    else:
        assert message.endswith("|1") and result == 1  # an even number of minus signs is just 1
    assert time.perf_counter() - start < 1


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (complex(0, 1), "complex"),
        (math.inf, "not a finite number"),
        (math.nan, "not a finite number"),
        (10**5000, "number too large"),
        ([1, math.inf], "not a finite number"),
        ([[1, complex(1, 1)]], "complex"),
    ],
    ids=["complex", "inf", "nan", "huge", "inf-in-list", "complex-in-nested-list"],
)
@pytest.mark.parametrize("text", ["$v", "${v}", "${[v]}", "${v if True else 0}", "${[0, v][1]}"])
def test_bad_values_from_parameters_never_come_out(value: object, message: str, text: str) -> None:
    """A parameter value (e.g. passed from Python) that is complex, infinite or huge never leaves an expression."""
    with pytest.raises(ExprError, match=message):
        evaluate(text, {"v": value})


@pytest.mark.parametrize("text", ["${v * v}", "${v + 1}", "${v ** 2}", "${-v * 2}", "${v // 3}", "${v % 7}"])
def test_huge_parameters_are_bounded_before_arithmetic(text: str) -> None:
    """A 10**1000000 parameter is refused as an operand, not multiplied first (which would take seconds)."""
    start = time.perf_counter()
    with pytest.raises(ExprError, match="number too large"):
        evaluate(text, {"v": 10**1_000_000})
    assert time.perf_counter() - start < 1


@pytest.mark.parametrize(("text", "expected"), [("${2 ** 53}", 2**53), ("${(-2) ** 3}", -8), ("${(-1) ** 1001}", -1),
                                                ("${1 ** 10 ** 15}", 1), ("${0.5 ** 10 ** 15}", 0.0),
                                                ("${2 ** -10 ** 15}", 0.0), ("${4 ** 0.5}", 2.0), ("${(-4.0) ** 2.0}", 16.0),
                                                ("${round(2.567, 2)}", 2.57), ("${round(1234, -2)}", 1200),
                                                ("${int('42')}", 42), ("${int('ff', 16)}", 255)])
def test_bounded_powers_and_functions_still_work(text: str, expected: object) -> None:
    assert evaluate(text, {}) == expected


# ------------------------------------------------------------------ property: only ExprError, always fast

_NUMBERS = st.one_of(
    st.sampled_from(["0", "1", "2", "-1", "0.5", "-0.5", "1.5", "10", "64", "1e15", "2 ** 53", "c", "w", "in.c"]),
    st.integers(-(2**60), 2**60).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
)
_OTHERS = st.sampled_from(["c2", "s", "in.h", "in.shape", "True", "None", "'a'", "[]", "[1, 2]", "x", "in", "in.q"])
_ATOMS = st.one_of(_NUMBERS, _NUMBERS, _NUMBERS, _OTHERS)
_BINARY = st.sampled_from(["+", "-", "*", "/", "//", "%", "**", "**", "**", "==", "<", "and", "or", "if 1 else", "if 0 else"])
_FUNCS = st.sampled_from(["min", "max", "abs", "int", "round", "ceil", "floor", "make_divisible", "open", "len"])


def _expressions() -> st.SearchStrategy[str]:
    return st.recursive(
        _ATOMS,
        lambda inner: st.one_of(
            st.tuples(inner, _BINARY, inner).map(lambda t: f"(({t[0]}) {t[1]} ({t[2]}))"),
            st.tuples(st.sampled_from(["-", "not ", "+", "~"]), inner).map(lambda t: f"{t[0]}({t[1]})"),
            st.tuples(_FUNCS, st.lists(inner, max_size=3)).map(lambda t: f"{t[0]}({', '.join(t[1])})"),
            st.tuples(inner, inner).map(lambda t: f"({t[0]})[{t[1]}]"),
            st.lists(inner, max_size=3).map(lambda xs: "[" + ", ".join(xs) + "]"),
        ),
        max_leaves=12,
    )


def _assert_only_expr_error(text: str) -> None:
    start = time.perf_counter()
    try:
        result = evaluate(text, ENV, InputShape((96, 12, 12)))
    except ExprError:
        pass
    else:
        pending = [result]
        while pending:  # a result is plain data: no complex, no inf/nan, nothing huge
            v = pending.pop()
            if isinstance(v, list):
                pending.extend(v)
            else:
                assert v is None or isinstance(v, (bool, int, float, str)), (text, v)
                if isinstance(v, (int, float)):
                    assert math.isfinite(v) and abs(v) <= 2**53, (text, v)
    assert time.perf_counter() - start < 0.5, text


def _arithmetic() -> st.SearchStrategy[str]:
    return st.recursive(
        _NUMBERS,
        lambda inner: st.one_of(
            st.tuples(inner, _BINARY, inner).map(lambda t: f"(({t[0]}) {t[1]} ({t[2]}))"),
            st.tuples(st.sampled_from(["-", "+", "abs", "int", "round", "ceil", "floor"]), inner)
            .map(lambda t: f"{t[0]}({t[1]})"),
        ),
        max_leaves=4,
    )


@settings(max_examples=400, deadline=None, database=None)
@given(_arithmetic())
def test_arithmetic_raises_only_expr_error(body: str) -> None:
    """Random arithmetic over numbers (powers of negatives, huge and tiny floats...): a finite real or ExprError."""
    _assert_only_expr_error("${" + body + "}")


@settings(max_examples=400, deadline=None, database=None)
@given(_expressions())
def test_structured_expressions_raise_only_expr_error(body: str) -> None:
    """Random well-formed expressions: a plain, bounded value or ExprError, and always fast."""
    _assert_only_expr_error("${" + body + "}")


@settings(max_examples=400, deadline=None, database=None)
@given(st.lists(st.sampled_from([*"0123456789.eE+-*/%()[],<>=!~&|^@ abcinorx_'\"\\${}:\n\x00", "**", "in.", "λ"]),
                max_size=60).map("".join))
def test_random_expression_text_raises_only_expr_error(body: str) -> None:
    """Arbitrary text, with or without the ${...} wrapper: never any exception but ExprError, never slow."""
    _assert_only_expr_error("${" + body + "}")
    _assert_only_expr_error("$" + body)
    _assert_only_expr_error(body)
