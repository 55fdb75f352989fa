"""A spec whose weights would need over 100 GB: validate and ``build --json`` allocate nothing.

    python benchmarks/bench_huge.py [--quick]

The spec is VGG-11 with every width ×16 (convs 1024–8192 channels, classifier 65,536 wide):
about 33 billion parameters, 132 GB of float32 weights.  Each command runs as a fresh process
(``python -m archspec ...``); wall time and the child's peak RSS (ru_maxrss) are recorded, median
over the runs.  Targets: under 2 s and under 500 MB each.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import common

SPEC = """archspec: 1
name: vgg11_x16
description: VGG-11 with 16x widths (about 33 billion parameters; never allocated).
input: [1, 224, 224]
params: {classes: 10}
blocks:
  vgg_block:
    params: {convs: null, c: null}
    layers:
      - sequence: [conv: {out: $c, k: 3, pad: 1}, relu]
        repeat: $convs
      - maxpool: {k: 2, stride: 2}
layers:
  - vgg_block: {convs: 1, c: 1024}
  - vgg_block: {convs: 1, c: 2048}
  - vgg_block: {convs: 2, c: 4096}
  - vgg_block: {convs: 2, c: 8192}
  - vgg_block: {convs: 2, c: 8192}
  - flatten
  - sequence: [linear: {out: 65536}, relu, dropout: {p: 0.5}]
    repeat: 2
  - linear: {out: $classes}
"""

CHILD = r"""
import resource, subprocess, sys, time
t0 = time.perf_counter()
p = subprocess.run(sys.argv[1:], capture_output=True, text=True)
wall = time.perf_counter() - t0
print(p.returncode, wall, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, len(p.stdout))
sys.stderr.write(p.stderr)
"""


def run(cmd: list[str]) -> tuple[int, float, int]:
    """Run ``cmd`` under a fresh wrapper process; return (exit status, wall seconds, peak RSS KiB)."""
    out = subprocess.run([sys.executable, "-c", CHILD, *cmd], capture_output=True, text=True, check=True)
    code, wall, rss, _ = out.stdout.split()
    return int(code), float(wall), int(rss)


def main() -> None:
    """Measure validate and build --json on the huge spec and print the table."""
    args = common.parser(__doc__ or "").parse_args()
    runs = 3 if args.quick else 9
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "vgg11_x16.yaml"
        path.write_text(SPEC, encoding="utf-8")
        info = subprocess.run([sys.executable, "-m", "archspec", "build", "--json", str(path)],
                              capture_output=True, text=True, check=True)
        params = json.loads(info.stdout)["params"]
        rows = []
        for label, extra in (("validate", ["validate"]), ("build --json", ["build", "--json"])):
            cmd = [sys.executable, "-m", "archspec", *extra, str(path)]
            res = [run(cmd) for _ in range(runs)]
            assert all(code == 0 for code, _, _ in res), res
            walls = [w for _, w, _ in res]
            rss = [r / 1024 for _, _, r in res]
            rows.append([label, common.fmt_time(statistics.median(walls)),
                         f"{common.fmt_time(min(walls))}–{common.fmt_time(max(walls))}",
                         f"{statistics.median(rss):.0f} MB", "ok" if statistics.median(walls) < 2 and max(rss) < 500
                         else "MISS"])
    print(f"vgg11 ×16 widths: {params:,} parameters = {params * 4 / 1e9:,.0f} GB of float32 weights; "
          f"{runs} fresh processes each")
    common.print_table(["command", "wall (median)", "min–max", "peak RSS", "< 2 s, < 500 MB"], rows)


if __name__ == "__main__":
    main()
