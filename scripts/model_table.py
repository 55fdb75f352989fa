"""Print a Markdown table of spec names, parameter counts and multiply-accumulates, computed by archspec.

    python scripts/model_table.py                 # every network spec under specs/imagenet
    python scripts/model_table.py specs/*.yaml    # any specs or folders

GFLOPS follows torchvision's convention: multiply-accumulates of the conv and linear layers for one
input of the spec's own shape, in billions.  Block libraries (files without a network) are skipped.
Static analysis only: no torch import, no weights allocated.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterable
from pathlib import Path

from archspec import analyze
from archspec.errors import ArchspecError
from archspec.ops import fmt_shape

ROOT = Path(__file__).resolve().parent.parent
DEFAULT = ROOT / "specs" / "imagenet"


def spec_files(paths: Iterable[str | Path]) -> list[Path]:
    """The YAML files named, with folders searched (not recursively: mapping files live below)."""
    out: list[Path] = []
    for p in map(Path, paths):
        out.extend(sorted(p.glob("*.yaml"), key=_natural) if p.is_dir() else [p])
    return out


def _natural(path: Path) -> list[object]:
    """Sort resnet18 before resnet101."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name)]


def model_table(paths: Iterable[str | Path]) -> str:
    """The Markdown table for the given specs and folders, one row per network spec."""
    rows = ["| model | input | parameters | GFLOPS (MACs) | spec |", "|---|---|---:|---:|---|"]
    for path in spec_files(paths):
        try:
            graph = analyze(path)
        except ArchspecError as exc:
            if exc.errors and all(d.code == "E-LIBRARY" for d in exc.errors):
                continue
            raise
        total = graph.total
        shown = path.resolve().relative_to(ROOT).as_posix() if path.resolve().is_relative_to(ROOT) else path.as_posix()
        rows.append(f"| {graph.name} | {fmt_shape(graph.input_shape)} | {total.params:,} | {total.macs / 1e9:.3f} "
                    f"| `{shown}` |")
    return "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: print the table; diagnostics go to stderr with exit status 1."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", default=[str(DEFAULT)], help="spec files or folders")
    args = parser.parse_args(argv)
    try:
        sys.stdout.write(model_table(args.paths))
    except ArchspecError as exc:
        print(exc.format(), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
