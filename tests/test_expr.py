"""The expression evaluator: what it computes, and what it refuses."""

from __future__ import annotations

import pytest

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
