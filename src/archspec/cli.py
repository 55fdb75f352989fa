"""Command line: ``archspec build|validate|render|summary|schema|export|list ...``.

A SPEC is a spec file, or the name of a shipped model (``archspec build resnet50``; ``archspec list``
shows them): an existing path always wins over a name (see :mod:`archspec.shipped`).

Diagnostics go to stderr as ``path:line:col: error: message``; exit status 0 on success, 1 for an
invalid spec (or unreadable file), 2 for a usage error.  No spec problem ever shows a traceback.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from typing import Any

from .api import DEFAULT_MAX_PARAMS, analyze
from .errors import ArchspecError, Diagnostic
from .fsutil import check_output
from .ir import Graph
from .summary import graph_json, graph_table, one_line

__all__ = ["MAX_BATCH_SIZE", "MAX_OPSET", "main"]

EXIT_OK, EXIT_INVALID, EXIT_USAGE = 0, 1, 2
#: The largest ``--batch-size`` (summary, export): larger values are usage errors, not huge allocations.
MAX_BATCH_SIZE = 65_536
#: The largest ``--opset`` accepted (ONNX opsets are numbered in the tens).
MAX_OPSET = 1_000


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # exit 2 with argparse's usage text, as usual
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _parse_input(text: str) -> tuple[int, ...]:
    """``--input C,H,W`` (or ``F``; ``x`` and ``×`` also separate): positive whole numbers, each at most MAX_WIDTH.

    Anything else — an empty value, an empty or non-decimal part, zero, a huge number — is a usage error.
    """
    from .models import MAX_WIDTH

    shown = repr(text) if len(text) <= 40 else f"a value of {len(text):,} characters"
    usage = f"--input takes C,H,W (or F): positive whole numbers up to {MAX_WIDTH:,}, got {shown}"
    parts = [p.strip() for p in re.split(r"[,x×]", text)]
    if len(parts) not in (1, 3) or not all(re.fullmatch(r"[0-9]{1,12}", p) for p in parts):
        raise _UsageError(usage)
    dims = tuple(int(p) for p in parts)
    if any(d <= 0 or d > MAX_WIDTH for d in dims):
        raise _UsageError(usage)
    return dims


def _parse_sets(items: Sequence[str]) -> dict[str, Any]:
    """``--set NAME=VALUE`` values, read as YAML with every guard of a spec file (see :mod:`archspec.source`).

    A value that is not plain YAML data, too deep, too large or recursive is a usage error (exit 2)
    naming the option, the problem, its code and, when useful, its column in the value.
    """
    from .source import load_yaml_text

    out: dict[str, Any] = {}
    for item in items:
        name, sep, raw = item.partition("=")
        if not sep or not name.strip():
            raise _UsageError(f"--set takes NAME=VALUE, got '{item}'")
        name = name.strip()
        try:
            value = load_yaml_text(raw, f"--set {name}") if raw.strip() else ""
        except ArchspecError as exc:
            d = exc.diagnostics[0]
            where = f" (column {d.span.column} of the value)" if d.span is not None and d.span.column > 1 else ""
            hint = f"\n  hint: {d.hint}" if d.hint else ""
            raise _UsageError(f"--set {name}: cannot read the value: {d.message}{where} [{d.code}]{hint}") from None
        if isinstance(value, dict):
            raise _UsageError(f"--set {name}: a value is a number, string, boolean or list")
        out[name] = value
    return out


def _print_diags(diags: Sequence[Diagnostic]) -> None:
    for d in diags:
        print(d.format(), file=sys.stderr)


def _check_count(value: int | None, option: str, low: int, high: int | None = None) -> None:
    """A numeric option outside ``low..high`` is a usage error (exit 2), never a huge allocation."""
    if value is None or (value >= low and (high is None or value <= high)):
        return
    shown = str(value) if len(str(value)) <= 24 else f"a {len(str(abs(value)))}-digit number"
    limits = f"from {low:,} to {high:,}" if high is not None else f"≥ {low:,}"
    raise _UsageError(f"{option} takes a whole number {limits}, got {shown}")


def _analyze_inputs(args: argparse.Namespace, spec: str, outputs: Sequence[str | None]) -> tuple[Graph, tuple[str, ...]]:
    """Check the output files, analyse ``spec``, then check the outputs against every file it read.

    Returns the graph and the input files (the spec and everything it imports), which no output may
    overwrite.  All of this happens before anything is printed on stdout or computed further.
    """
    from .source import record_reads

    overrides = _parse_sets(args.set)  # usage errors first
    shape = _parse_input(args.input) if args.input is not None else None
    targets = [o for o in outputs if o is not None]
    for target in targets:  # cheap checks next: a bad -o costs no analysis
        check_output(target, protect=(spec,))
    with record_reads() as reads:
        graph = analyze(spec, overrides, input_shape=shape, import_roots=args.import_root)
    inputs = (spec, *dict.fromkeys(p for p, _ in reads))
    for target in targets:
        check_output(target, protect=inputs)
    return graph, inputs


def _cmd_build(args: argparse.Namespace) -> int:
    _check_count(args.max_params, "--max-params", 0)
    _check_count(args.seed, "--seed", 0, 2**64 - 1)
    graph, inputs = _analyze_inputs(args, args.spec, [args.emit_python])
    if args.weights is not None:  # --emit-python never overwrites the checkpoint either
        inputs = (*inputs, args.weights)
        if args.emit_python:
            check_output(args.emit_python, protect=inputs)
    _print_diags(graph.warnings)
    total = graph.total.params + graph.total.buffers  # the guard counts buffers too: building allocates both
    over = args.max_params is not None and total > args.max_params
    if over and (args.weights is not None or not args.json):
        from .api import build

        build(graph, max_params=args.max_params)  # raises the E-TOO-LARGE diagnostic
    loaded = seed_line = None
    if not over:
        from .lower_torch import lower

        # Compiling checks the lowering.  An over-limit model (only reachable with --json) is summarised
        # statically instead: no torch import, nothing allocated, so a 100 GB spec costs what validate does.
        # --json checks the lowering on the meta device (it allocates nothing), unless weights are to be loaded.
        meta = args.json and args.weights is None and args.seed is None
        model = lower(graph, device="meta" if meta else None, max_params=args.max_params, seed=args.seed)
        if args.seed is not None:  # the initial weights' fingerprint: equal seeds give equal digests
            from .init import state_digest

            seed_line = f"initial weights (seed {args.seed}): state_dict sha256 {state_digest(model)}"
        if args.weights is not None:
            from .zoo import load_weights

            loaded = load_weights(model, graph, args.weights)
    report = json.dumps(graph_json(graph), indent=2) if args.json else graph_table(graph)
    if args.emit_python:  # written before the report is printed: a failed write prints no success table
        from .emit_python import emit_python_to

        emit_python_to(graph, args.emit_python, protect=inputs)
    print(report)
    if seed_line is not None:
        print(seed_line, file=sys.stderr)
    if loaded is not None:
        through = f" through {loaded.mapping}" if loaded.mapping else ""
        print(f"loaded {loaded.tensors:,} tensors from {args.weights}{through}", file=sys.stderr)
    if args.emit_python:
        print(f"wrote {args.emit_python} (standalone PyTorch source of '{graph.name}')", file=sys.stderr)
    return EXIT_OK


def _cmd_list(args: argparse.Namespace) -> int:
    from .shipped import specs_root
    from .zoo import catalogue, models_table

    infos, problems = catalogue(args.patterns or ["*"])
    if args.json:
        print(json.dumps([{"name": i.name, "qualified_name": i.qualified, "family": i.family, "spec": i.path,
                           "input_shape": list(i.input_shape), "output_shape": list(i.output_shape),
                           "params": i.params, "macs": i.macs} for i in infos], indent=2))
    elif infos:
        print(models_table(infos))
        print(f"{len(infos)} model{'s' if len(infos) != 1 else ''}; specs in {specs_root()}")
    elif not problems:
        from .errors import did_you_mean
        from .shipped import list_models

        what = " matches " + " or ".join(repr(p) for p in args.patterns) if args.patterns else " is installed"
        close = [did_you_mean(p, list_models()) for p in args.patterns if not any(c in p for c in "*?[")]
        print(f"archspec: no shipped model{what}" + "".join(f"; {c}" for c in close if c), file=sys.stderr)
    _print_diags(problems)
    return EXIT_INVALID if problems or not infos else EXIT_OK


def _cmd_validate(args: argparse.Namespace) -> int:
    status = EXIT_OK
    overrides = _parse_sets(args.set)
    shape = _parse_input(args.input) if args.input is not None else None
    for path in args.specs:
        try:
            graph = analyze(path, overrides, input_shape=shape, import_roots=args.import_root)
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


def _parse_render_depth(text: str) -> int | str | None:
    """``render --depth``: a whole number, ``all``, or ``auto`` (the most detailed that fits the page)."""
    if text.lower() == "auto":
        return "auto"
    try:
        return _parse_depth(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"takes a whole number ≥ 0, 'all' or 'auto', got '{text}'") from None


def _cmd_render(args: argparse.Namespace) -> int:
    from .render import RenderOptions, format_for, gallery, render

    fold = frozenset() if args.no_fold else frozenset(n.strip() for n in (args.fold or "*").split(",") if n.strip())
    opts = RenderOptions(depth=args.depth, direction=args.direction, theme=args.theme, fold=fold, fuse=not args.no_fuse,
                         wrap=not args.no_wrap, init=args.init)
    overrides = _parse_sets(args.set)
    if args.gallery is not None:
        if args.output or args.format or overrides or args.input is not None:
            raise _UsageError("--gallery writes <name>.dot and <name>.svg per spec; it takes no -o, --format, --set or --input")
        for path in gallery(args.specs, args.gallery, opts, import_roots=args.import_root):
            print(path)
        return EXIT_OK
    if len(args.specs) != 1:
        raise _UsageError("render takes one SPEC (or several with --gallery DIR)")
    if args.output is not None:
        check_output(args.output, protect=args.specs)  # a folder as -o is an E-IO, not an unknown format
    fmt = format_for(args.output, args.format)
    if args.output is None and fmt in ("png", "pdf"):
        raise _UsageError(f"--format {fmt} writes a binary file: give -o FILE")
    graph, inputs = _analyze_inputs(args, args.specs[0], [args.output])
    _print_diags(graph.warnings)
    data = render(graph, args.output, fmt=fmt, options=opts, protect=inputs)
    if args.output is None:
        sys.stdout.write(data.decode("utf-8"))
    return EXIT_OK


def _cmd_schema(args: argparse.Namespace) -> int:
    from .schema import schema_text

    sys.stdout.write(schema_text(include_plugins=args.plugins or bool(args.plugin)))
    return EXIT_OK


def _cmd_summary(args: argparse.Namespace) -> int:
    from .summary import summary_json, summary_markdown, summary_table

    _check_count(args.batch_size, "--batch-size", 1, MAX_BATCH_SIZE)
    if args.depth == 0:
        raise _UsageError("summary --depth takes a whole number ≥ 1 or 'all'")
    graph = analyze(args.spec, _parse_sets(args.set), input_shape=_parse_input(args.input) if args.input is not None else None,
                    import_roots=args.import_root)
    _print_diags(graph.warnings)
    opts = {"depth": args.depth, "batch_size": args.batch_size, "dtype": args.dtype, "init": args.init}
    if args.json:
        print(json.dumps(summary_json(graph, **opts), indent=2))
    elif args.markdown:
        print(summary_markdown(graph, **opts))
    else:
        print(summary_table(graph, **opts))
    return EXIT_OK


def _cmd_export(args: argparse.Namespace) -> int:
    from .export import export_onnx

    _check_count(args.batch_size, "--batch-size", 1, MAX_BATCH_SIZE)
    _check_count(args.opset, "--opset", 1, MAX_OPSET)
    graph, inputs = _analyze_inputs(args, args.spec, [args.output])
    _print_diags(graph.warnings)
    size = export_onnx(graph, args.output, batch_size=args.batch_size, dynamic_batch=not args.static_batch,
                       opset=args.opset, protect=inputs)
    print(f"wrote {args.output} ({args.format}, {size:,} bytes)")
    return EXIT_OK


def _add_plugin_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--plugin", metavar="FILE|MODULE", action="append", default=[],
                   help="load custom ops from a .py file, a package folder or an importable module before reading "
                        "the spec (repeatable; see docs/plugins.md)")


def _load_plugins(args: argparse.Namespace) -> None:
    """Load the ``--plugin`` modules the user named (a spec itself never names code to run)."""
    if getattr(args, "plugin", None):
        from .plugins import load_plugin

        for target in args.plugin:
            load_plugin(target)


def make_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for documentation and tests)."""
    from . import __version__

    parser = _Parser(prog="archspec", description="Compile YAML network specs to checked PyTorch models and diagrams.")
    parser.add_argument("--version", action="version", version=f"archspec {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    spec_help = "the spec file (YAML), or a shipped model's name (see 'archspec list')"
    p = sub.add_parser("build", help="validate, infer shapes, compile to PyTorch and print a per-node table")
    p.add_argument("spec", help=spec_help)
    p.add_argument("--input", metavar="C,H,W", help="override the spec's input shape")
    p.add_argument("--set", metavar="NAME=VALUE", action="append", default=[], help="override a top-level parameter")
    p.add_argument("--import-root", metavar="DIR", action="append", default=[],
                   help="also allow the spec's imports to read from DIR (repeatable; default: the spec's folder tree only)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    p.add_argument("--max-params", type=int, default=DEFAULT_MAX_PARAMS, metavar="N",
                   help=f"refuse to allocate models with more parameter and buffer elements (default {DEFAULT_MAX_PARAMS:,})")
    p.add_argument("--emit-python", metavar="FILE",
                   help="also write standalone, readable PyTorch source (imports only torch) to FILE")
    p.add_argument("--weights", metavar="FILE",
                   help="load a checkpoint (a state dict saved with torch.save, e.g. torchvision's) strictly, "
                        "through the spec's key mapping")
    p.add_argument("--seed", type=int, metavar="N",
                   help="draw the initial weights (the spec's init) from a generator seeded with N, as "
                        "archspec.build(seed=N), and print a SHA-256 of the resulting state_dict")
    _add_plugin_option(p)
    p.set_defaults(func=_cmd_build)

    p = sub.add_parser("validate", help="static checks only (no torch import); one line per file")
    p.add_argument("specs", nargs="+", metavar="SPEC", help="spec files or shipped models' names")
    p.add_argument("--input", metavar="C,H,W", help="override the specs' input shape")
    p.add_argument("--set", metavar="NAME=VALUE", action="append", default=[], help="override a top-level parameter")
    p.add_argument("--import-root", metavar="DIR", action="append", default=[],
                   help="also allow the spec's imports to read from DIR (repeatable; default: the spec's folder tree only)")
    _add_plugin_option(p)
    p.set_defaults(func=_cmd_validate)

    from .themes import DEFAULT_DEPTH, DIRECTIONS, FORMATS, THEMES

    p = sub.add_parser("render", help="draw the network as a Graphviz diagram (DOT, SVG, PNG or PDF; no torch import)")
    p.add_argument("specs", nargs="+", metavar="SPEC",
                   help="the spec file or a shipped model's name (several files or directories with --gallery)")
    p.add_argument("-o", "--output", metavar="FILE", help="output file (default: DOT or SVG text on stdout)")
    p.add_argument("--format", choices=FORMATS, help="output format (default: from the -o extension, else dot)")
    p.add_argument("--depth", type=_parse_render_depth, default=DEFAULT_DEPTH, metavar="N",
                   help="block levels drawn as clusters; deeper block instances collapse to one node (default "
                        "'auto': the most detailed depth that fits a page; 'all' = no collapsing)")
    p.add_argument("--direction", choices=DIRECTIONS, default="TB", help="top-to-bottom or left-to-right (default TB)")
    p.add_argument("--theme", choices=sorted(THEMES), default="light", help="colours (default light)")
    p.add_argument("--fold", nargs="?", const="*", metavar="NAMES",
                   help="draw runs of identical consecutive instances once, titled ×N (the default for every block); "
                        "--fold=NAMES: only the comma-separated block (or composite) NAMES")
    p.add_argument("--no-fold", action="store_true", help="draw every instance of a repeated block")
    p.add_argument("--no-fuse", action="store_true", help="draw activations as their own nodes")
    p.add_argument("--no-wrap", action="store_true",
                   help="one long column (row with --direction LR) instead of wrapping to a page's width")
    p.add_argument("--init", action="store_true",
                   help="show each layer's initialisation (where the spec's init differs from PyTorch's default)")
    p.add_argument("--set", metavar="NAME=VALUE", action="append", default=[], help="override a top-level parameter")
    p.add_argument("--import-root", metavar="DIR", action="append", default=[],
                   help="also allow the spec's imports to read from DIR (repeatable; default: the spec's folder tree only)")
    p.add_argument("--input", metavar="C,H,W", help="override the spec's input shape")
    p.add_argument("--gallery", metavar="DIR",
                   help="write DIR/<name>.dot, DIR/<name>.svg and DIR/index.md for every SPEC (directories: **/*.yaml)")
    _add_plugin_option(p)
    p.set_defaults(func=_cmd_render)

    p = sub.add_parser("schema", help="print the JSON Schema of the spec language (for editors)")
    p.add_argument("--plugins", action="store_true", help="also describe ops from installed plugins")
    _add_plugin_option(p)
    p.set_defaults(func=_cmd_schema)

    p = sub.add_parser("summary", help="hierarchical table of shapes, parameters, MACs and memory (no torch import)")
    p.add_argument("spec", help=spec_help)
    p.add_argument("--depth", type=_parse_depth, default=3, metavar="N",
                   help="block levels shown; deeper layers fold into their block's row (default 3; 'all')")
    p.add_argument("--batch-size", type=int, default=1, metavar="N", help="batch size for MACs and memory (default 1)")
    p.add_argument("--dtype", choices=["float32", "float16", "bfloat16", "float64"], default="float32",
                   help="element type for the memory estimates (default float32)")
    p.add_argument("--init", action="store_true",
                   help="add a column with each layer's initialisation (the spec's init: scheme of weight and bias)")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print one JSON object")
    fmt.add_argument("--markdown", action="store_true", help="print a Markdown table (for docs)")
    p.add_argument("--set", metavar="NAME=VALUE", action="append", default=[], help="override a top-level parameter")
    p.add_argument("--import-root", metavar="DIR", action="append", default=[],
                   help="also allow the spec's imports to read from DIR (repeatable; default: the spec's folder tree only)")
    p.add_argument("--input", metavar="C,H,W", help="override the spec's input shape")
    _add_plugin_option(p)
    p.set_defaults(func=_cmd_summary)

    p = sub.add_parser("export", help="export the compiled model (ONNX; needs the 'onnx' extra)")
    p.add_argument("spec", help=spec_help)
    p.add_argument("--format", choices=["onnx"], default="onnx", help="output format (default onnx)")
    p.add_argument("-o", "--output", metavar="FILE", required=True, help="output file")
    p.add_argument("--batch-size", type=int, default=1, metavar="N",
                   help="batch size of the example input (default 1; a dynamic batch is traced with at least 2)")
    p.add_argument("--static-batch", action="store_true", help="fix the batch dimension instead of keeping it dynamic")
    p.add_argument("--opset", type=int, metavar="N", help="ONNX opset version (default: the exporter's)")
    p.add_argument("--set", metavar="NAME=VALUE", action="append", default=[], help="override a top-level parameter")
    p.add_argument("--import-root", metavar="DIR", action="append", default=[],
                   help="also allow the spec's imports to read from DIR (repeatable; default: the spec's folder tree only)")
    p.add_argument("--input", metavar="C,H,W", help="override the spec's input shape")
    _add_plugin_option(p)
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("list", help="the shipped models: name, family, input, parameters, GMACs (no torch import)")
    p.add_argument("patterns", nargs="*", metavar="PATTERN",
                   help="only models whose name matches a shell-style pattern, e.g. 'resnet*' or 'imagenet/*'")
    p.add_argument("--json", action="store_true", help="print a JSON list instead of the table")
    p.set_defaults(func=_cmd_list)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit status."""
    parser = make_parser()
    args = parser.parse_args(argv)
    try:
        _load_plugins(args)
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
