"""Scaling of the static pipeline: read + validate + expand + infer for 1,000 to 100,000 nodes.

    python benchmarks/bench_scaling.py [--quick] [--sizes 1000,10000,100000] [--families residual,graph]

Each case runs in a fresh subprocess: the generated spec is written to a temporary file, then
``archspec.analyze(path)`` is timed (wall and process CPU time, best of 3 runs at every size), and
its peak memory is measured twice: the growth of the process's peak RSS (ru_maxrss) during the
timed runs, and the tracemalloc peak of a separate, traced run.  Targets: linear growth,
t(100k)/t(10k) ≤ 12, 100,000 nodes in under 10 s.  ``--quick`` runs 1k and 10k only.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import common
import specgen

CHILD = r"""
import gc, json, resource, sys, time, tracemalloc
sys.path.insert(0, sys.argv[3])
import archspec
path, expected = sys.argv[1], int(sys.argv[2])
archspec.analyze(sys.argv[4])  # warm up imports and the op models on a small spec
runs = 3  # best of 3 at every size, so that no size is compared cold against warm
wall = cpu = float("inf")
rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
for _ in range(runs):
    c0, t0 = time.process_time(), time.perf_counter()
    g = archspec.analyze(path)
    wall, cpu = min(wall, time.perf_counter() - t0), min(cpu, time.process_time() - c0)
    assert len(g.nodes) == expected, (len(g.nodes), expected)
    del g
    gc.collect()
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0
tracemalloc.start()
g = archspec.analyze(path)
peak = tracemalloc.get_traced_memory()[1]
print(json.dumps({"wall": wall, "cpu": cpu, "rss_kb": rss, "traced": peak}))
"""


def measure(gen: specgen.Generated, tmp: Path) -> dict[str, float]:
    """Run one case in a fresh interpreter; return its timings and memory peaks."""
    path = tmp / f"{gen.family}_{gen.nodes}.yaml"
    path.write_text(gen.text, encoding="utf-8")
    small = tmp / "small.yaml"
    small.write_text(specgen.generate(gen.family, 100).text, encoding="utf-8")
    out = subprocess.run([sys.executable, "-c", CHILD, str(path), str(gen.nodes), str(common.ROOT / "src"),
                          str(small)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    """Run every family at every size and print the table."""
    p = common.parser(__doc__ or "")
    p.add_argument("--sizes", default=None, help="comma-separated node counts (default 1000,10000,100000)")
    p.add_argument("--families", default=",".join(specgen.FAMILIES), help="comma-separated families")
    args = p.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else ([1000, 10000] if args.quick
                                                                           else [1000, 10000, 100000])
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for family in args.families.split(","):
            results = []
            for n in sizes:
                gen = specgen.generate(family, n)
                r = measure(gen, Path(d))
                results.append((gen, r))
                print(f"{family} {gen.nodes} nodes: {r}", file=sys.stderr, flush=True)
            for i, (gen, r) in enumerate(results):
                grow = "" if i == 0 else "{:.2f} / {:.2f}".format(
                    r["wall"] / results[i - 1][1]["wall"], r["cpu"] / results[i - 1][1]["cpu"])
                mgrow = "" if i == 0 else "{:.2f}".format(r["traced"] / results[i - 1][1]["traced"])
                rows.append([family, f"{gen.nodes:,}", common.fmt_time(r["wall"]), common.fmt_time(r["cpu"]),
                             f"{r['cpu'] / gen.nodes * 1e6:.1f} µs", grow, f"{r['traced'] / 2**20:.1f} MiB",
                             f"{r['rss_kb'] / 1024:.1f} MiB", mgrow])
    print("read + validate + expand + infer (archspec.analyze on a file), fresh process per case")
    common.print_table(["family", "nodes", "wall", "cpu", "cpu/node", "time ×prev (wall / cpu)",
                        "traced peak", "peak RSS growth", "memory ×prev"], rows)


if __name__ == "__main__":
    main()
