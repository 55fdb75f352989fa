"""Command line: ``archspec build|validate ...``.

Diagnostics go to stderr as ``path:line:col: error: message``; exit status 0 on success, 1 for an
invalid spec (or unreadable file), 2 for a usage error.  No spec problem ever shows a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

import yaml

from .api import DEFAULT_MAX_PARAMS, analyze
from .errors import ArchspecError, Diagnostic
from .summary import graph_json, graph_table, one_line

__all__ = ["main"]

EXIT_OK, EXIT_INVALID, EXIT_USAGE = 0, 1, 2


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # exit 2 with argparse's usage text, as usual
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _parse_input(text: str) -> tuple[int, ...]:
    try:
        dims = tuple(int(p) for p in text.replace("x", ",").replace("×", ",").split(","))
    except ValueError:
        raise _UsageError(f"--input takes C,H,W (or F) positive integers, got '{text}'") from None
    if len(dims) not in (1, 3) or any(d <= 0 for d in dims):
        raise _UsageError(f"--input takes C,H,W (or F) positive integers, got '{text}'")
    return dims


def _parse_sets(items: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        name, sep, raw = item.partition("=")
        if not sep or not name.strip():
            raise _UsageError(f"--set takes NAME=VALUE, got '{item}'")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            raise _UsageError(f"--set {name}: cannot read value '{raw}'") from None
        if isinstance(value, dict):
            raise _UsageError(f"--set {name}: a value is a number, string, boolean or list")
        out[name.strip()] = value
    return out


def _print_diags(diags: Sequence[Diagnostic]) -> None:
    for d in diags:
        print(d.format(), file=sys.stderr)


def _cmd_build(args: argparse.Namespace) -> int:
    overrides = _parse_sets(args.set)
    shape = _parse_input(args.input) if args.input else None
    graph = analyze(args.spec, overrides, input_shape=shape)
    _print_diags(graph.warnings)
    total = graph.total.params
    over = args.max_params is not None and total > args.max_params
    if over and not args.json:
        from .api import build

        build(graph, max_params=args.max_params)  # raises the E-TOO-LARGE diagnostic
    from .lower_torch import lower

    # Compiling checks the lowering; an over-limit model is compiled on the meta device (nothing allocated).
    lower(graph, device="meta" if over else None)
    if args.json:
        print(json.dumps(graph_json(graph), indent=2))
    else:
        print(graph_table(graph))
    return EXIT_OK


def _cmd_validate(args: argparse.Namespace) -> int:
    status = EXIT_OK
    overrides = _parse_sets(args.set)
    for path in args.specs:
        try:
            graph = analyze(path, overrides)
        except ArchspecError as exc:
            _print_diags(exc.diagnostics)
            n = len(exc.errors)
            print(f"{path}: invalid ({n} error{'s' if n != 1 else ''})")
            status = EXIT_INVALID
            continue
        _print_diags(graph.warnings)
        print(f"{path}: {one_line(graph)}")
    return status


def make_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for documentation and tests)."""
    from . import __version__

    parser = _Parser(prog="archspec", description="Compile YAML network specs to checked PyTorch models and diagrams.")
    parser.add_argument("--version", action="version", version=f"archspec {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    p = sub.add_parser("build", help="validate, infer shapes, compile to PyTorch and print a per-node table")
    p.add_argument("spec", help="the spec file (YAML)")
    p.add_argument("--input", metavar="C,H,W", help="override the spec's input shape")
    p.add_argument("--set", metavar="NAME=VALUE", action="append", default=[], help="override a top-level parameter")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    p.add_argument("--max-params", type=int, default=DEFAULT_MAX_PARAMS, metavar="N",
                   help=f"refuse to allocate models with more parameters (default {DEFAULT_MAX_PARAMS:,})")
    p.set_defaults(func=_cmd_build)

    p = sub.add_parser("validate", help="static checks only (no torch import); one line per file")
    p.add_argument("specs", nargs="+", metavar="SPEC", help="spec files")
    p.add_argument("--set", metavar="NAME=VALUE", action="append", default=[], help="override a top-level parameter")
    p.set_defaults(func=_cmd_validate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit status."""
    parser = make_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except _UsageError as exc:
        parser.print_usage(sys.stderr)
        print(f"archspec: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ArchspecError as exc:
        _print_diags(exc.diagnostics)
        return EXIT_INVALID
    except KeyboardInterrupt:  # pragma: no cover
        return 130
    except BrokenPipeError:  # pragma: no cover - e.g. `archspec build x | head`
        return EXIT_OK
