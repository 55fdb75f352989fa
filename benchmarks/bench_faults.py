"""Page faults and time per call, one model per fresh process: what the order of frees does.

    python benchmarks/bench_faults.py                                  # mobilenet_v3_large forward, batch 32
    python benchmarks/bench_faults.py --net densenet121 --mode train --processes 3
    python benchmarks/bench_faults.py --variants torchvision,archspec,last-reader
    python benchmarks/bench_faults.py --quick                          # smoke run

``bench_torchvision.py`` runs both sides in one process, so each inherits the heap the other left; here
every sample is its own process (variants alternate), which shows how much of a batch-32 call is
glibc faulting memory in again (``ru_minflt``) and how that varies from process to process.  Each
process builds one model, makes ``--warmup`` calls, then reports the minor faults and wall time per call
over ``--calls`` calls and its peak resident memory (``ru_maxrss``).

Variants:

* ``torchvision``: torchvision's own model code (``tests/tv.py``);
* ``archspec``: ``archspec.build(specs/imagenet/NET.yaml)`` as shipped: each intermediate is released
  when the block that reads it last returns, as in a hand-written module tree
  (``archspec.lower_torch.release_points``);
* ``last-reader``: the same model with the forward regenerated to release every value right after its
  last reader, the order archspec used before (for comparison only).

A forward runs in eval mode under ``torch.inference_mode``; a training step is forward, cross-entropy,
backward and SGD with momentum, in train mode.  Weights are random (the timing does not depend on them).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from typing import Any

from common import SPECS, setup_torch

VARIANTS = ("torchvision", "archspec", "last-reader")


def _last_reader(steps: Any, output: str) -> dict[int, list[str]]:
    """Release each value right after its last reader (the order archspec used before)."""
    last: dict[str, int] = {}
    for i, (_, _, inputs, _) in enumerate(steps):
        for name in inputs:
            last[name] = i
    out: dict[int, list[str]] = {}
    for i, (_, _, inputs, _) in enumerate(steps):
        dead = [a for a in dict.fromkeys(inputs) if last.get(a) == i and a != output]
        if dead:
            out[i] = dead
    return out


def child(variant: str, net: str, mode: str, batch: int, warmup: int, calls: int) -> dict[str, Any]:
    """One sample: build the model in this process, run it, and measure."""
    setup_torch()
    import torch

    if variant == "torchvision":
        import tv

        model = tv.build(net)
    else:
        import archspec
        from archspec import lower_torch

        if variant == "last-reader":
            lower_torch.release_points = _last_reader  # type: ignore[assignment]
        model = archspec.build(SPECS / "imagenet" / f"{net}.yaml")
    x = torch.randn(batch, 3, 224, 224)
    if mode == "forward":
        model.eval()

        def call() -> None:
            with torch.inference_mode():
                model(x)
    else:
        model.train()
        target = torch.randint(0, 1000, (batch,))
        optimiser = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

        def call() -> None:
            optimiser.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(model(x), target).backward()
            optimiser.step()
    for _ in range(warmup):
        call()
    before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    for _ in range(calls):
        call()
    after, end = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    return {"variant": variant, "faults": (after.ru_minflt - before.ru_minflt) / calls,
            "ms": (end - start) / calls * 1e3, "maxrss_mb": after.ru_maxrss / 1024}


def main(argv: list[str] | None = None) -> None:
    """Run ``--processes`` fresh processes per variant, alternating, and print a table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--net", default="mobilenet_v3_large")
    parser.add_argument("--mode", choices=("forward", "train"), default="forward")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--processes", type=int, default=6, help="processes per variant")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--calls", type=int, default=5)
    parser.add_argument("--variants", default="torchvision,archspec",
                        help="comma-separated, from " + ", ".join(VARIANTS))
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: 1 process per variant, batch 2, 1 warm-up, 1 call")
    parser.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.processes, args.batch, args.warmup, args.calls = 1, 2, 1, 1
    if args.child:
        print(json.dumps(child(args.child, args.net, args.mode, args.batch, args.warmup, args.calls)))
        return
    variants = args.variants.split(",")
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
    print(f"{args.net} {args.mode} b{args.batch}: {args.processes} processes per variant, "
          f"{args.calls} calls after {args.warmup} warm-up(s); load average {os.getloadavg()[0]:.2f}", flush=True)
    samples: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
    for _ in range(args.processes):
        for variant in variants:
            command = [sys.executable, __file__, "--child", variant, "--net", args.net, "--mode", args.mode,
                       "--batch", str(args.batch), "--warmup", str(args.warmup), "--calls", str(args.calls)]
            done = subprocess.run(command, capture_output=True, text=True, check=True)
            sample = json.loads(done.stdout.strip().splitlines()[-1])
            samples[variant].append(sample)
            print(f"  {variant}: {sample['faults']:,.0f} faults, {sample['ms']:.1f} ms per call, "
                  f"peak RSS {sample['maxrss_mb']:.0f} MB", flush=True)
    print()
    print("| variant | faults per call (min–max, median) | ms per call (min–max, median) | peak RSS MB |")
    print("|---|---|---|---|")
    for variant, rows in samples.items():
        def cell(key: str, fmt: str, rows: list[dict[str, Any]] = rows) -> str:
            values = [r[key] for r in rows]
            return f"{min(values):{fmt}}–{max(values):{fmt}} ({statistics.median(values):{fmt}})"
        print(f"| {variant} | {cell('faults', ',.0f')} | {cell('ms', '.0f')} | {cell('maxrss_mb', '.0f')} |")


if __name__ == "__main__":
    main()
