"""Command line: ``archspec build|validate|render|summary|schema|export ...``.

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
    if not over:
        from .lower_torch import lower

        # Compiling checks the lowering.  An over-limit model (only reachable with --json) is summarised
        # statically instead: no torch import, nothing allocated, so a 100 GB spec costs what validate does.
        lower(graph)
    if args.json:
        print(json.dumps(graph_json(graph), indent=2))
    else:
        print(graph_table(graph))
    if args.emit_python:
        from .emit_python import emit_python_to

        emit_python_to(graph, args.emit_python, protect=(args.spec,))
        print(f"wrote {args.emit_python} (standalone PyTorch source of '{graph.name}')", file=sys.stderr)
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


def _parse_depth(text: str) -> int | None:
    if text.lower() in ("all", "full"):
        return None
    try:
        depth = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"takes a whole number ≥ 0 or 'all', got '{text}'") from None
    if depth < 0:
        raise argparse.ArgumentTypeError(f"takes a whole number ≥ 0 or 'all', got '{text}'")
    return depth


def _cmd_render(args: argparse.Namespace) -> int:
    from .render import RenderOptions, format_for, gallery, render

    fold = frozenset(n.strip() for n in (args.fold or "").split(",") if n.strip())
    opts = RenderOptions(depth=args.depth, direction=args.direction, theme=args.theme, fold=fold, fuse=not args.no_fuse)
    overrides = _parse_sets(args.set)
    if args.gallery is not None:
        if args.output or args.format or overrides or args.input:
            raise _UsageError("--gallery writes <name>.dot and <name>.svg per spec; it takes no -o, --format, --set or --input")
        for path in gallery(args.specs, args.gallery, opts):
            print(path)
        return EXIT_OK
    if len(args.specs) != 1:
        raise _UsageError("render takes one SPEC (or several with --gallery DIR)")
    fmt = format_for(args.output, args.format)
    if args.output is None and fmt in ("png", "pdf"):
        raise _UsageError(f"--format {fmt} writes a binary file: give -o FILE")
    graph = analyze(args.specs[0], overrides, input_shape=_parse_input(args.input) if args.input else None)
    _print_diags(graph.warnings)
    data = render(graph, args.output, fmt=fmt, options=opts, protect=(args.specs[0],))
    if args.output is None:
        sys.stdout.write(data.decode("utf-8"))
    return EXIT_OK


def _cmd_schema(args: argparse.Namespace) -> int:
    from .schema import schema_text

    sys.stdout.write(schema_text(include_plugins=args.plugins))
    return EXIT_OK


def _cmd_summary(args: argparse.Namespace) -> int:
    from .summary import summary_json, summary_markdown, summary_table

    if args.batch_size <= 0:
        raise _UsageError(f"--batch-size takes a positive integer, got {args.batch_size}")
    if args.depth == 0:
        raise _UsageError("summary --depth takes a whole number ≥ 1 or 'all'")
    graph = analyze(args.spec, _parse_sets(args.set), input_shape=_parse_input(args.input) if args.input else None)
    _print_diags(graph.warnings)
    opts = {"depth": args.depth, "batch_size": args.batch_size, "dtype": args.dtype}
    if args.json:
        print(json.dumps(summary_json(graph, **opts), indent=2))
    elif args.markdown:
        print(summary_markdown(graph, **opts))
    else:
        print(summary_table(graph, **opts))
    return EXIT_OK


def _cmd_export(args: argparse.Namespace) -> int:
    from .export import export_onnx

    if args.batch_size <= 0:
        raise _UsageError(f"--batch-size takes a positive integer, got {args.batch_size}")
    graph = analyze(args.spec, _parse_sets(args.set), input_shape=_parse_input(args.input) if args.input else None)
    _print_diags(graph.warnings)
    size = export_onnx(graph, args.output, batch_size=args.batch_size, dynamic_batch=not args.static_batch,
                       opset=args.opset, protect=(args.spec,))
    print(f"wrote {args.output} ({args.format}, {size:,} bytes)")
    return EXIT_OK


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
    p.add_argument("--emit-python", metavar="FILE",
                   help="also write standalone, readable PyTorch source (imports only torch) to FILE")
    p.set_defaults(func=_cmd_build)

    p = sub.add_parser("validate", help="static checks only (no torch import); one line per file")
    p.add_argument("specs", nargs="+", metavar="SPEC", help="spec files")
    p.add_argument("--set", metavar="NAME=VALUE", action="append", default=[], help="override a top-level parameter")
    p.set_defaults(func=_cmd_validate)

    from .render import DEFAULT_DEPTH, DIRECTIONS, FORMATS, THEMES

    p = sub.add_parser("render", help="draw the network as a Graphviz diagram (DOT, SVG, PNG or PDF; no torch import)")
    p.add_argument("specs", nargs="+", metavar="SPEC", help="the spec file (several files or directories with --gallery)")
    p.add_argument("-o", "--output", metavar="FILE", help="output file (default: DOT or SVG text on stdout)")
    p.add_argument("--format", choices=FORMATS, help="output format (default: from the -o extension, else dot)")
    p.add_argument("--depth", type=_parse_depth, default=DEFAULT_DEPTH, metavar="N",
                   help=f"block levels drawn as clusters; deeper block instances collapse to one node "
                        f"(default {DEFAULT_DEPTH}; 'all' = no collapsing)")
    p.add_argument("--direction", choices=DIRECTIONS, default="TB", help="top-to-bottom or left-to-right (default TB)")
    p.add_argument("--theme", choices=sorted(THEMES), default="light", help="colours (default light)")
    p.add_argument("--fold", nargs="?", const="*", metavar="NAMES",
                   help="fold consecutive instances of the same block into one ×N node; optionally only the "
                        "comma-separated block (or composite) NAMES")
    p.add_argument("--no-fuse", action="store_true", help="draw activations as their own nodes")
    p.add_argument("--set", metavar="NAME=VALUE", action="append", default=[], help="override a top-level parameter")
    p.add_argument("--input", metavar="C,H,W", help="override the spec's input shape")
    p.add_argument("--gallery", metavar="DIR",
                   help="write DIR/<name>.dot, DIR/<name>.svg and DIR/index.md for every SPEC (directories: **/*.yaml)")
    p.set_defaults(func=_cmd_render)

    p = sub.add_parser("schema", help="print the JSON Schema of the spec language (for editors)")
    p.add_argument("--plugins", action="store_true", help="also describe ops from installed plugins")
    p.set_defaults(func=_cmd_schema)

    p = sub.add_parser("summary", help="hierarchical table of shapes, parameters, MACs and memory (no torch import)")
    p.add_argument("spec", help="the spec file (YAML)")
    p.add_argument("--depth", type=_parse_depth, default=3, metavar="N",
                   help="block levels shown; deeper layers fold into their block's row (default 3; 'all')")
    p.add_argument("--batch-size", type=int, default=1, metavar="N", help="batch size for MACs and memory (default 1)")
    p.add_argument("--dtype", choices=["float32", "float16", "bfloat16", "float64"], default="float32",
                   help="element type for the memory estimates (default float32)")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print one JSON object")
    fmt.add_argument("--markdown", action="store_true", help="print a Markdown table (for docs)")
    p.add_argument("--set", metavar="NAME=VALUE", action="append", default=[], help="override a top-level parameter")
    p.add_argument("--input", metavar="C,H,W", help="override the spec's input shape")
    p.set_defaults(func=_cmd_summary)

    p = sub.add_parser("export", help="export the compiled model (ONNX; needs the 'onnx' extra)")
    p.add_argument("spec", help="the spec file (YAML)")
    p.add_argument("--format", choices=["onnx"], default="onnx", help="output format (default onnx)")
    p.add_argument("-o", "--output", metavar="FILE", required=True, help="output file")
    p.add_argument("--batch-size", type=int, default=1, metavar="N", help="batch size of the example input (default 1)")
    p.add_argument("--static-batch", action="store_true", help="fix the batch dimension instead of keeping it dynamic")
    p.add_argument("--opset", type=int, metavar="N", help="ONNX opset version (default: the exporter's)")
    p.add_argument("--set", metavar="NAME=VALUE", action="append", default=[], help="override a top-level parameter")
    p.add_argument("--input", metavar="C,H,W", help="override the spec's input shape")
    p.set_defaults(func=_cmd_export)
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
