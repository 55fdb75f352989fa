"""Whole-process cost of the static pipeline vs importing its two dependencies.

    python benchmarks/bench_static.py [--quick]

A = ``python -m archspec validate specs/googlenet.yaml`` (the same process the ``archspec`` console
script starts, without the pyenv/venv launcher in front), B = ``python -c "import yaml, pydantic"``.
Both run alternately as fresh processes; each sample records wall time and the child's CPU time
(user + sys, which is what the process itself costs on a shared, busy machine).
Target (issue 12): A's median whole-process time ≤ 0.35 s; the ratio A/B is printed beside it so
that a slow or busy machine shows as such.  The script also checks that the process never imports torch.

Bytecode: yaml and pydantic are installed with their ``__pycache__``; archspec is an editable install
and this machine sets PYTHONDONTWRITEBYTECODE=1, so without care every archspec module would be
recompiled from source in every process.  The script first byte-compiles ``src/archspec`` (into its
git-ignored ``__pycache__``) so both sides are measured as installed packages run.
"""

from __future__ import annotations

import random
import resource
import statistics
import subprocess
import sys
import time

import common

TARGET_SECONDS = 0.35
A_CMD = [sys.executable, "-m", "archspec", "validate", str(common.SPECS / "googlenet.yaml")]
B_CMD = [sys.executable, "-c", "import yaml, pydantic"]


def run(cmd: list[str]) -> tuple[float, float]:
    """Run a process to completion; return (wall seconds, CPU seconds of that child)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main() -> None:
    """Measure and print the table."""
    args = common.parser(__doc__ or "").parse_args()
    rounds = 8 if args.quick else 30
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(common.ROOT / "src" / "archspec")], check=True)
    check = subprocess.run([sys.executable, "-c", "import sys, archspec.cli as c; c.main(sys.argv[1:]); "
                            "print('torch' in sys.modules)", "validate", str(common.SPECS / "googlenet.yaml")],
                           capture_output=True, text=True, check=True)
    torch_imported = check.stdout.strip().splitlines()[-1]
    run(A_CMD)
    run(B_CMD)
    rng = random.Random(0)
    a_wall, a_cpu, b_wall, b_cpu = [], [], [], []
    for _ in range(rounds):
        order = [("a", A_CMD), ("b", B_CMD)]
        rng.shuffle(order)
        for side, cmd in order:
            wall, cpu = run(cmd)
            (a_wall if side == "a" else b_wall).append(wall)
            (a_cpu if side == "a" else b_cpu).append(cpu)
    rows = []
    for what, a, b in (("wall", a_wall, b_wall), ("cpu", a_cpu, b_cpu)):
        c = common.Comparison(what, a, b)
        lo, hi = c.spread
        rows.append([what, common.fmt_time(statistics.median(a)), common.fmt_time(statistics.median(b)),
                     f"{c.ratio:.3f}", f"{lo:.3f}–{hi:.3f}",
                     "ok" if statistics.median(a) <= TARGET_SECONDS else "MISS"])
    print(f"A = {' '.join(A_CMD[1:])}\nB = {' '.join(B_CMD[1:])}\n{rounds} rounds, alternating in random order")
    headers = ["time", "A: validate", "B: import yaml, pydantic", "ratio A/B", "min–max", f"A ≤ {TARGET_SECONDS} s"]
    common.print_table(headers, rows)
    print(f"torch in sys.modules after validate: {torch_imported}")


if __name__ == "__main__":
    main()
