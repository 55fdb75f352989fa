"""Shared helpers for the benchmark scripts: thread setup, interleaved A/B timing, tables.

Every comparison runs both sides in the same process, alternating A and B (in a random order per
round, so drift in clock speed or caches hits both equally), and reports the median time of each
side plus the median and min–max of the per-round ratios A/B.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
THREADS = 2

if str(ROOT / "tests") not in sys.path:  # the hand-written baselines live with the tests
    sys.path.insert(0, str(ROOT / "tests"))


def setup_torch(threads: int = THREADS) -> None:
    """Use the same number of intra-op threads for every measurement (and both sides)."""
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)


def reference_nets() -> dict[str, tuple[Callable[[], object], tuple[int, ...], int]]:
    """The hand-written baselines: name → (constructor, input shape, parameter count)."""
    from reference_nets import REFERENCE_NETS

    return REFERENCE_NETS


@dataclass
class Comparison:
    """The outcome of an interleaved A/B measurement (times in seconds per call)."""

    label: str
    a: list[float]
    b: list[float]
    a_cpu: list[float] | None = None
    b_cpu: list[float] | None = None

    def cpu(self) -> Comparison:
        """The same comparison on process CPU time (robust to other load on a shared machine)."""
        if self.a_cpu is None or self.b_cpu is None:
            raise ValueError("no CPU times recorded")
        return Comparison(self.label + " (cpu)", self.a_cpu, self.b_cpu)

    @property
    def ratios(self) -> list[float]:
        """Per-round ratio A/B."""
        return [x / y for x, y in zip(self.a, self.b, strict=True)]

    @property
    def median_a(self) -> float:
        """Median time of side A."""
        return statistics.median(self.a)

    @property
    def median_b(self) -> float:
        """Median time of side B."""
        return statistics.median(self.b)

    @property
    def ratio(self) -> float:
        """Median of the per-round ratios."""
        return statistics.median(self.ratios)

    @property
    def spread(self) -> tuple[float, float]:
        """Min and max of the per-round ratios."""
        r = self.ratios
        return min(r), max(r)


def _time_calls(fn: Callable[[], object], number: int) -> float:
    return _time_both(fn, number)[0]


def _time_both(fn: Callable[[], object], number: int) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) per call, over ``number`` calls."""
    c0 = time.process_time()
    t0 = time.perf_counter()
    for _ in range(number):
        fn()
    t1 = time.perf_counter()
    c1 = time.process_time()
    return (t1 - t0) / number, (c1 - c0) / number


def interleave(label: str, a: Callable[[], object], b: Callable[[], object], *, rounds: int, number: int = 1,
               warmup: int = 1, seed: int = 0, cleanup: Callable[[], object] | None = None) -> Comparison:
    """Time ``a`` and ``b`` alternately: ``rounds`` rounds, each timing ``number`` calls of both sides.

    The order within each round is random (seeded), so neither side always runs first.  ``cleanup``
    runs, untimed, after every sample of either side.
    """
    def sample(fn: Callable[[], object]) -> tuple[float, float]:
        t = _time_both(fn, number)
        if cleanup is not None:
            cleanup()
        return t

    for _ in range(warmup):
        a()
        b()
        if cleanup is not None:
            cleanup()
    rng = random.Random(seed)
    ta: list[tuple[float, float]] = []
    tb: list[tuple[float, float]] = []
    for _ in range(rounds):
        if rng.random() < 0.5:
            ta.append(sample(a))
            tb.append(sample(b))
        else:
            tb.append(sample(b))
            ta.append(sample(a))
    return Comparison(label, [w for w, _ in ta], [w for w, _ in tb], [c for _, c in ta], [c for _, c in tb])


def fmt_time(seconds: float) -> str:
    """A time with a unit that keeps 3 significant digits."""
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.3f} s"


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Print a Markdown table (pasteable into benchmarks/README.md)."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |")


def comparison_row(c: Comparison, target: float) -> list[str]:
    """Table cells for one comparison: label, medians, wall ratio and spread, CPU ratio and spread, verdict.

    The verdict is on the wall-time median ratio.
    """
    lo, hi = c.spread
    row = [c.label, fmt_time(c.median_a), fmt_time(c.median_b), f"{c.ratio:.3f}", f"{lo:.3f}–{hi:.3f}"]
    if c.a_cpu is not None:
        cpu = c.cpu()
        row += [f"{cpu.ratio:.3f}", "{:.3f}–{:.3f}".format(*cpu.spread)]
    else:
        row += ["", ""]
    return [*row, "ok" if c.ratio <= target else "MISS"]


COMPARISON_HEADERS = ["case", "archspec", "hand-written", "wall ratio", "min–max", "cpu ratio", "cpu min–max", "target"]


def parser(description: str) -> argparse.ArgumentParser:
    """An argument parser with the shared ``--quick`` flag."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="a short run (fewer rounds and cases) for smoke testing")
    return p


def parse_args(description: str, nets: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the shared options (``--quick``, and ``--nets`` when ``nets`` gives the default list)."""
    p = parser(description)
    if nets is not None:
        p.add_argument("--nets", default=",".join(nets), help="comma-separated subset of the nets")
    return p.parse_args()
