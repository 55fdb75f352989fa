"""The spec's small expression language, evaluated by archspec itself (never Python ``eval``).

A string value is an expression when it starts with ``$``:

* ``$name`` — the value of parameter ``name`` (``$in.c`` reads the inferred input's channels);
* ``${ ... }`` — an arithmetic expression over parameters, e.g. ``${in.c // 2}``, ``${2 * c}``,
  ``${max(8, c * width)}``, ``${stride == 1 and in.c == c}``.

Allowed: integer/float/bool literals, parameter names, ``in.c``/``in.h``/``in.w``/``in.features``/
``in.shape``/``in.rank``, ``+ - * / // % **``, comparisons, ``and or not``, ``x if cond else y``,
list literals and indexing, and the functions in :data:`FUNCTIONS`.  The text is parsed with
:func:`ast.parse` and walked over an allow-list of node types; no name can reach Python's builtins,
attributes other than ``in``'s, imports or calls outside the list.
"""

from __future__ import annotations

import ast
import math
import operator
import re
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

__all__ = ["FUNCTIONS", "ExprError", "InputShape", "evaluate", "is_expression", "make_divisible", "references"]

#: The longest expression accepted, in characters.
MAX_EXPR_CHARS = 400
#: Results whose magnitude exceeds this are refused as "too large to be a real layer".
MAX_MAGNITUDE = 2**53

_IN_NAME = "__in__"
_IN_RE = re.compile(r"(?<![A-Za-z0-9_.])in\s*\.")
_NAME_RE = re.compile(r"^\$([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)?)$")


class ExprError(Exception):
    """An expression could not be parsed or evaluated; the message is user-facing."""


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round ``value`` to the nearest multiple of ``divisor`` without going down by more than 10%.

    The channel rounding of MobileNet (torchvision's ``_make_divisible``).
    """
    if divisor <= 0:
        raise ExprError("make_divisible: divisor must be positive")
    if min_value is None:
        min_value = divisor
    new_v = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * value:
        new_v += divisor
    return new_v


#: The longest text ``int()`` converts inside an expression, in characters.
MAX_INT_TEXT = 100
#: The largest ``ndigits`` of ``round(x, ndigits)`` (``round(5, -10**9)`` would compute 10**(10**9)).
MAX_ROUND_DIGITS = 32


def _int(value: Any, *base: Any) -> int:
    """``int()`` with its input bounded: a long digit string never reaches Python's conversion."""
    if isinstance(value, str) and len(value.strip()) > MAX_INT_TEXT:
        raise ExprError(f"int(): the text is longer than {MAX_INT_TEXT} characters")
    if base and not isinstance(value, str):
        raise ExprError("int(x, base) needs a string x")
    return int(value, *base)


def _round(value: Any, *ndigits: Any) -> Any:
    """``round()`` with ``ndigits`` bounded, so no huge power of ten is ever computed."""
    if ndigits:
        n = ndigits[0]
        if not isinstance(n, int) or isinstance(n, bool) or abs(n) > MAX_ROUND_DIGITS:
            raise ExprError(f"round(x, ndigits): ndigits is a whole number from -{MAX_ROUND_DIGITS} to {MAX_ROUND_DIGITS}")
    return round(value, *ndigits)


#: Functions callable from expressions.
FUNCTIONS: dict[str, Callable[..., Any]] = {
    "min": min,
    "max": max,
    "abs": abs,
    "int": _int,
    "round": _round,
    "ceil": math.ceil,
    "floor": math.floor,
    "make_divisible": make_divisible,
}


@dataclass(frozen=True, slots=True)
class InputShape:
    """What ``in`` means inside an expression: the shape of the tensor flowing into the item."""

    shape: tuple[int, ...]

    @property
    def rank(self) -> int:
        """Number of dimensions, batch excluded (3 for C×H×W, 2 for L×D tokens, 1 for features)."""
        return len(self.shape)

    @property
    def c(self) -> int:
        """Channels (or features, for a flat tensor; the features D of every token, for L×D tokens)."""
        return self.shape[1] if len(self.shape) == 2 else self.shape[0]

    @property
    def tokens(self) -> int:
        """The number of tokens L of an L×D token sequence; an error for other shapes."""
        if len(self.shape) != 2:
            raise ExprError(f"'in.tokens' needs a token sequence (L×D), but the input is {list(self.shape)}")
        return self.shape[0]

    @property
    def features(self) -> int:
        """Total number of elements per sample (channels for a flat tensor)."""
        return math.prod(self.shape)

    @property
    def h(self) -> int:
        """Height; an error for a flat tensor or tokens."""
        if len(self.shape) < 3:
            raise ExprError(f"'in.h' needs a C×H×W input, but the input is {_kind(self.shape)} {list(self.shape)}")
        return self.shape[1]

    @property
    def w(self) -> int:
        """Width; an error for a flat tensor or tokens."""
        if len(self.shape) < 3:
            raise ExprError(f"'in.w' needs a C×H×W input, but the input is {_kind(self.shape)} {list(self.shape)}")
        return self.shape[2]


def _kind(shape: tuple[int, ...]) -> str:
    return "tokens" if len(shape) == 2 else "flat"


_IN_ATTRS = ("c", "h", "w", "features", "shape", "rank", "tokens")


def is_expression(value: Any) -> bool:
    """True for a string that the spec language treats as an expression (starts with ``$``)."""
    return isinstance(value, str) and value.startswith("$")


@lru_cache(maxsize=4096)
def _parse(text: str) -> ast.expr:
    if len(text) > MAX_EXPR_CHARS:
        raise ExprError(f"expression is longer than {MAX_EXPR_CHARS} characters")
    m = _NAME_RE.match(text)
    if m:
        body = m.group(1)
    elif text.startswith("${") and text.endswith("}"):
        body = text[2:-1].strip()
        if not body:
            raise ExprError("empty expression '${}'")
    else:
        raise ExprError(
            f"'{text}' is not a valid expression: write '$name' or '${{ expression }}'"
        )
    # 'in' is a Python keyword: read 'in.c' as an attribute of a reserved name before parsing.
    body = _IN_RE.sub(_IN_NAME + ".", body)
    shown = body.replace(_IN_NAME, "in")
    try:
        with warnings.catch_warnings():  # e.g. SyntaxWarning for '\d' in a string: the text is data, not code
            warnings.simplefilter("ignore")
            tree = ast.parse(body, mode="eval")
    except SyntaxError as exc:
        raise ExprError(f"syntax error in expression '{shown}': {exc.msg}") from None
    except (RecursionError, MemoryError):
        raise ExprError(f"expression '{shown}' is too complex") from None
    except ValueError:  # e.g. a NUL character (Python < 3.12)
        raise ExprError(f"expression '{shown}' contains a character that is not allowed") from None
    return tree.body


def references(text: str) -> set[str]:
    """The top-level names an expression reads (``in`` included when it reads the input shape)."""
    tree = _parse(text)
    return {"in" if n.id == _IN_NAME else n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}


def evaluate(text: str, env: Mapping[str, Any], input_shape: InputShape | None = None) -> Any:
    """Evaluate expression ``text`` with parameter values ``env`` and, if given, the input shape.

    Raises :class:`ExprError` with a user-facing message on any problem.
    """
    tree = _parse(text)
    try:
        return _check(_Eval(env, input_shape).visit(tree), deep=True)
    except ExprError:
        raise
    except ZeroDivisionError:
        raise ExprError("division by zero") from None
    except (OverflowError, MemoryError):
        raise ExprError("number too large") from None
    except RecursionError:
        raise ExprError("expression is too deeply nested") from None
    except (TypeError, ValueError, IndexError) as exc:
        raise ExprError(f"cannot evaluate '{text}': {exc}") from None
    except Exception as exc:  # the contract: evaluating an expression raises ExprError and nothing else
        raise ExprError(f"cannot evaluate '{text}': {type(exc).__name__}") from None


def _check(value: Any, *, deep: bool = False) -> Any:
    """Refuse a complex number, a non-finite float or a magnitude above MAX_MAGNITUDE (in lists too when ``deep``)."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        if value > MAX_MAGNITUDE or value < -MAX_MAGNITUDE:
            raise ExprError("number too large" + (f" ({value:.3g})" if value.bit_length() < 1000 else ""))
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ExprError("expression result is not a finite number")
        if abs(value) > MAX_MAGNITUDE:
            raise ExprError(f"number too large ({value:.3g})")
    elif isinstance(value, complex):
        raise ExprError("expression result is a complex number, not a real one")
    elif deep and isinstance(value, (list, tuple)):
        for item in value:
            _check(item, deep=True)
    return value


def _check_power(base: Any, exponent: Any) -> None:
    """Refuse ``base ** exponent`` before computing it when the result would be huge or complex."""
    if base < 0 and isinstance(exponent, float) and not exponent.is_integer():
        raise ExprError("a negative number to a fractional power is not a real number")
    if base in (0, 1, -1) or (exponent <= 0 and abs(base) >= 1):
        return  # 0, ±1, or a magnitude that does not grow (0 ** -1 is a division by zero)
    bits = float(exponent) * math.log2(abs(base))  # log2 of the result's magnitude
    if bits > math.log2(MAX_MAGNITUDE) + 1:
        about = f" ({float(base) ** float(exponent):.3g})" if bits < 1000 else ""
        raise ExprError(f"number too large{about}")


_BINOPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_CMPOPS: dict[type, Callable[[Any, Any], bool]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
}


class _Eval:
    def __init__(self, env: Mapping[str, Any], input_shape: InputShape | None) -> None:
        self.env = env
        self.input_shape = input_shape

    def visit(self, node: ast.AST) -> Any:
        method = getattr(self, "visit_" + type(node).__name__, None)
        if method is None:
            raise ExprError(f"'{_describe(node)}' is not allowed in an expression")
        return method(node)

    def visit_Constant(self, node: ast.Constant) -> Any:
        if isinstance(node.value, (int, float, bool, str)) or node.value is None:
            return _check(node.value)
        raise ExprError("only numbers, booleans and strings are allowed as literals")

    def visit_Name(self, node: ast.Name) -> Any:
        if node.id == _IN_NAME:
            raise ExprError("'in' is the input shape: use in.c, in.h, in.w, in.features or in.shape")
        if node.id in self.env:
            return self.env[node.id]
        if node.id in ("true", "True"):
            return True
        if node.id in ("false", "False"):
            return False
        from .errors import did_you_mean

        hint = did_you_mean(node.id, list(self.env))
        raise ExprError(f"unknown name '{node.id}'" + (f"; {hint}" if hint else ""))

    def visit_Attribute(self, node: ast.Attribute) -> Any:
        if not (isinstance(node.value, ast.Name) and node.value.id == _IN_NAME):
            raise ExprError("attributes are only available on 'in' (e.g. in.c)")
        if self.input_shape is None:
            raise ExprError("'in' (the input shape) is not available here")
        if node.attr not in _IN_ATTRS:
            raise ExprError(f"'in.{node.attr}' is unknown; use one of " + ", ".join(f"in.{a}" for a in _IN_ATTRS))
        value = getattr(self.input_shape, node.attr)
        return list(value) if isinstance(value, tuple) else value

    def visit_BinOp(self, node: ast.BinOp) -> Any:
        fn = _BINOPS.get(type(node.op))
        if fn is None:
            raise ExprError("only + - * / // % ** are allowed")
        left, right = self.visit(node.left), self.visit(node.right)
        for v in (left, right):
            if not isinstance(v, (int, float)):
                raise ExprError(f"arithmetic needs numbers, got {_short(v)}")
            _check(v)  # operands are bounded before any work, not only results
        if isinstance(node.op, ast.Pow):
            _check_power(left, right)
        return _check(fn(left, right))

    def visit_UnaryOp(self, node: ast.UnaryOp) -> Any:
        v = self.visit(node.operand)
        if isinstance(node.op, ast.Not):
            return not v
        if isinstance(node.op, ast.USub):
            return -v
        if isinstance(node.op, ast.UAdd):
            return +v
        raise ExprError("'~' is not allowed")

    def visit_BoolOp(self, node: ast.BoolOp) -> Any:
        if isinstance(node.op, ast.And):
            result: Any = True
            for v in node.values:
                result = self.visit(v)
                if not result:
                    return result
            return result
        result = False
        for v in node.values:
            result = self.visit(v)
            if result:
                return result
        return result

    def visit_Compare(self, node: ast.Compare) -> Any:
        left = self.visit(node.left)
        for op, comp in zip(node.ops, node.comparators, strict=True):
            fn = _CMPOPS.get(type(op))
            if fn is None:
                raise ExprError("only == != < <= > >= comparisons are allowed")
            right = self.visit(comp)
            if not fn(left, right):
                return False
            left = right
        return True

    def visit_IfExp(self, node: ast.IfExp) -> Any:
        return self.visit(node.body) if self.visit(node.test) else self.visit(node.orelse)

    def visit_List(self, node: ast.List) -> Any:
        return [self.visit(e) for e in node.elts]

    visit_Tuple = visit_List

    def visit_Subscript(self, node: ast.Subscript) -> Any:
        seq = self.visit(node.value)
        index = self.visit(node.slice)
        if not isinstance(seq, list) or not isinstance(index, int) or isinstance(index, bool):
            raise ExprError("indexing needs a list and an integer index")
        if not -len(seq) <= index < len(seq):
            raise ExprError(f"index {index} is out of range for a list of {len(seq)}")
        return seq[index]

    def visit_Call(self, node: ast.Call) -> Any:
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
            name = node.func.id if isinstance(node.func, ast.Name) else _describe(node.func)
            raise ExprError(f"unknown function '{name}'; available: " + ", ".join(sorted(FUNCTIONS)))
        if node.keywords:
            raise ExprError("keyword arguments are not allowed in expressions")
        args = [self.visit(a) for a in node.args]
        return _check(FUNCTIONS[node.func.id](*args))


def _short(value: Any) -> str:
    """A value for a message, cut short (a list parameter may be long)."""
    text = repr(value) if not isinstance(value, (list, tuple)) or len(value) <= 8 else f"a list of {len(value)} items"
    return text if len(text) <= 60 else text[:57] + "..."


def _describe(node: ast.AST) -> str:
    try:
        return ast.unparse(node)
    except Exception:  # pragma: no cover - unparse of an allow-listed tree does not fail
        return type(node).__name__
