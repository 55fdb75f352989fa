"""Time rendering every spec under specs/ to SVG (target: under 1 s per spec).

Usage: ``python benchmarks/bench_render.py [--repeat N] [SPEC_DIR_OR_FILE ...]``

Per spec it prints the best of N in-process runs of each stage: analyse (read + validate + expand),
DOT generation, and ``dot -Tsvg``, their sum, the ratio of that sum to the 1 s target, and the wall
time of the whole ``archspec render SPEC -o FILE.svg`` command in a fresh interpreter (which adds
Python start-up).  There is no hand-written baseline for diagrams, so the target is the reference.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from archspec.api import analyze
from archspec.render import RenderOptions, dot_to_image, gallery_sources, to_dot

ROOT = Path(__file__).resolve().parent.parent
TARGET_S = 1.0


def best_of(n: int, fn: Callable[[], Any]) -> tuple[float, Any]:
    """The fastest of ``n`` runs of ``fn`` (seconds) and its last result."""
    best, result = float("inf"), None
    for _ in range(n):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def main() -> int:
    """Run the benchmark and print one row per spec; exit 1 if any spec misses the target."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("paths", nargs="*", default=[str(ROOT / "specs")])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    opts = RenderOptions()
    header = f"{'spec':36} {'nodes':>5} {'analyse':>8} {'dot-gen':>8} {'dot-svg':>8} {'total':>8} {'/target':>8} {'CLI':>8}"
    print(header)
    print("-" * len(header))
    worst = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for spec, stem, shown in gallery_sources(args.paths):
            try:
                t_an, graph = best_of(args.repeat, lambda s=spec: analyze(s))
            except Exception as exc:  # a block library or a broken spec: report and go on
                print(f"{shown:36} skipped: {str(exc).splitlines()[0][:80]}")
                continue
            t_dot, text = best_of(args.repeat, lambda g=graph: to_dot(g, opts))
            t_svg, _ = best_of(args.repeat, lambda t=text: dot_to_image(t, "svg"))
            out = Path(tmp) / (stem.replace("/", "_") + ".svg")
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "archspec", "render", str(spec), "-o", str(out)], check=True)
            t_cli = time.perf_counter() - t0
            total = t_an + t_dot + t_svg
            worst = max(worst, total, t_cli)
            print(f"{shown:36} {len(graph.nodes):5d} {t_an:8.3f} {t_dot:8.3f} {t_svg:8.3f} {total:8.3f} "
                  f"{total / TARGET_S:8.2f} {t_cli:8.3f}")
    print(f"worst: {worst:.3f} s ({worst / TARGET_S:.2f} of the {TARGET_S:.0f} s target)")
    return 0 if worst < TARGET_S else 1


if __name__ == "__main__":
    raise SystemExit(main())
