"""Batch 32 at 224×224 against torchvision's own models: forward, training step, training memory, torch.compile.

    python benchmarks/bench_batch32.py [--quick] [--nets resnet50,mobilenet_v2,densenet121,efficientnet_b0]
                                       [--parts forward,train,memory,compile] [--compile-nets resnet18,mobilenet_v2]
                                       [--profile NET:forward|NET:train]

The baseline is torchvision's model code itself (``tests/tv.py``: ``tv.build("resnet50")``), random
weights loaded into the archspec model through the spec's torchvision key mapping
(``archspec.mapping.import_state_dict``); the two are checked to compute the same function (eval, batch
2, rtol/atol 1e-4) before anything is timed.  A net whose spec does not exist (efficientnet_b0 is being
written) or does not analyse is skipped with a note.  Every comparison is interleaved in one process
(random A/B order per round, ``benchmarks/common.py``), 2 threads, and reports the median of the per-round
ratios archspec / torchvision.

* **forward**: eval mode, ``torch.inference_mode``, batch 32, 3×224×224. Target ≤ 1.02.
* **train**: one step = forward, cross-entropy, backward, SGD (lr 0.01, momentum 0.9), train mode,
  batch 32; each side has its own optimiser. Target ≤ 1.02.
* **memory** (deterministic, measured once): *peak* = the most bytes the CPU allocator held above the
  step's start during one training step at batch 32 (after a warm-up step, so the momentum buffers
  exist and are not counted as new), from the allocation events of ``torch.profiler`` with
  ``profile_memory=True``; *saved* = the bytes of the distinct storages autograd saves for backward
  in that step's forward (``torch.autograd.graph.saved_tensors_hooks``). Target ≤ 1.02 for both.
* **compile**: ``torch.compile`` (Inductor, CPU) of the eval model, forward under ``torch.no_grad``.
  *compile time* = first call minus one steady-state call, each measured in a fresh process with an
  empty Inductor cache directory (``TORCHINDUCTOR_CACHE_DIR``), processes alternating A/B in random
  order per round; *compiled forward* = steady-state calls of both compiled models at batch 32,
  interleaved in this process. Graph breaks are counted with ``torch._dynamo.explain``. Targets
  ≤ 1.1 (compile time) and ≤ 1.03 (compiled forward).

``--profile resnet50:train`` prints the ``torch.profiler`` operator table (self CPU time) of both sides
for one call, to see where the time goes.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import common

NETS = ["resnet50", "mobilenet_v2", "densenet121", "efficientnet_b0"]
COMPILE_NETS = ["resnet18", "mobilenet_v2"]
PARTS = ["forward", "train", "memory", "compile"]
BATCH = 32
SHAPE = (3, 224, 224)
TARGET = 1.02
COMPILE_TIME_TARGET = 1.1
COMPILED_FORWARD_TARGET = 1.03
IMAGENET = common.SPECS / "imagenet"
HEADERS = ["case", "archspec", "torchvision", "wall ratio", "min–max", "cpu ratio", "cpu min–max", "target"]


def _load() -> str:
    return "load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def _pair(name: str, *, check: bool = True) -> tuple[Any, Any]:
    """(archspec model, torchvision model) with the same weights, checked to compute the same function."""
    import torch

    import archspec
    import tv
    from archspec.mapping import import_state_dict

    spec = IMAGENET / f"{name}.yaml"
    torch.manual_seed(0)
    theirs = tv.build(name)
    ours = archspec.build(spec)
    ours.load_state_dict(import_state_dict(spec, theirs.state_dict()), strict=True)
    if check:
        x = torch.randn(2, *SHAPE)
        with torch.inference_mode():
            torch.testing.assert_close(ours.eval()(x), theirs.eval()(x), rtol=1e-4, atol=1e-4)
    return ours, theirs


def _available(name: str) -> str | None:
    """None when the net can be measured, else why not."""
    spec = IMAGENET / f"{name}.yaml"
    if not spec.exists():
        return f"{spec.relative_to(common.ROOT)} does not exist"
    import archspec
    from archspec.errors import ArchspecError

    try:
        archspec.analyze(spec)
    except ArchspecError as exc:
        return f"{spec.relative_to(common.ROOT)} does not analyse: {str(exc).splitlines()[0]}"
    return None


def _stepper(model: Any, x: Any, y: Any) -> Callable[[], None]:
    import torch

    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = torch.nn.CrossEntropyLoss()

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        opt.step()

    return step


def _saved_bytes(model: Any, x: Any, y: Any) -> int:
    """Bytes of the distinct storages autograd saves for backward in one forward (train mode)."""
    import torch

    storages: dict[int, int] = {}

    def pack(t: Any) -> Any:
        s = t.untyped_storage()
        storages[s.data_ptr()] = s.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    model.zero_grad(set_to_none=True)
    return sum(storages.values())


def _peak_bytes(step: Callable[[], None]) -> int:
    """Most bytes the CPU allocator held above the starting point during ``step()`` (profiler allocation events)."""
    import torch
    from torch._C._profiler import _EventType

    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    events = []
    stack = list(prof.profiler.kineto_results.experimental_event_tree())
    while stack:
        e = stack.pop()
        stack.extend(e.children)
        if e.typed[0] == _EventType.Allocation:
            events.append((e.start_time_ns, e.typed[1].alloc_size))
    live = peak = 0
    for _, size in sorted(events):
        live += size
        peak = max(peak, live)
    return peak


def _mib(n: float) -> str:
    return f"{n / 2**20:,.1f} MiB"


def _compile_worker(name: str, side: str, out: str) -> None:
    """In a fresh process: compile one side's eval model and write the compile time to ``out`` (JSON)."""
    common.setup_torch()
    import torch

    ours, theirs = _pair(name, check=False)
    model = (ours if side == "archspec" else theirs).eval()
    x = torch.randn(BATCH, *SHAPE)
    compiled = torch.compile(model)
    with torch.no_grad():
        t0 = time.perf_counter()
        compiled(x)
        first = time.perf_counter() - t0
        steady = []
        for _ in range(2):
            t0 = time.perf_counter()
            compiled(x)
            steady.append(time.perf_counter() - t0)
    Path(out).write_text(json.dumps({"first": first, "steady": min(steady), "compile": first - min(steady)}))


def _compile_times(name: str, rounds: int, seed: int = 0) -> common.Comparison:
    """Compile time of both sides, each in a fresh process with an empty Inductor cache, interleaved."""
    rng = random.Random(seed)
    times: dict[str, list[float]] = {"archspec": [], "torchvision": []}
    with tempfile.TemporaryDirectory(prefix="bench_compile_") as tmp:
        for r in range(rounds):
            order = ["archspec", "torchvision"]
            rng.shuffle(order)
            for side in order:
                out = Path(tmp) / f"{name}_{side}_{r}.json"
                env = dict(os.environ, TORCHINDUCTOR_CACHE_DIR=str(Path(tmp) / f"cache_{side}_{r}"))
                subprocess.run([sys.executable, __file__, "--compile-worker", name, side, str(out)], check=True, env=env)
                times[side].append(json.loads(out.read_text())["compile"])
                print(f"  compile {name} {side} round {r + 1}: {times[side][-1]:.1f} s ({_load()})", flush=True)
    return common.Comparison(f"{name} compile time", times["archspec"], times["torchvision"])


def _graph_breaks(model: Any, x: Any) -> int:
    import torch

    torch._dynamo.reset()
    with torch.no_grad():
        n = torch._dynamo.explain(model)(x).graph_break_count
    torch._dynamo.reset()
    return n


def _profile(name: str, mode: str) -> None:
    """Print the operator table of one forward (eval) or training step of both sides."""
    import torch

    ours, theirs = _pair(name)
    x = torch.randn(BATCH, *SHAPE)
    y = torch.randint(0, 1000, (BATCH,))
    for label, model in (("archspec", ours), ("torchvision", theirs)):
        if mode == "forward":
            model.eval()

            def run(m: Any = model) -> None:
                with torch.inference_mode():
                    m(x)
        else:
            model.train()
            run = _stepper(model, x, y)
        run()  # warm-up
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            run()
        print(f"\n### {label}: {name} {mode} b{BATCH} (torch.profiler, self CPU time)\n")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=14))


def main() -> None:
    """Run the selected parts and print the tables."""
    p = common.parser(__doc__ or "")
    p.add_argument("--nets", default=",".join(NETS), help="comma-separated nets for forward, train and memory")
    p.add_argument("--compile-nets", default=",".join(COMPILE_NETS), help="comma-separated nets for torch.compile")
    p.add_argument("--parts", default=",".join(PARTS), help="comma-separated subset of " + ",".join(PARTS))
    p.add_argument("--profile", metavar="NET:MODE", help="only print the profiler tables of NET for forward or train")
    p.add_argument("--compile-worker", nargs=3, metavar=("NET", "SIDE", "OUT"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.compile_worker:
        _compile_worker(*args.compile_worker)
        return
    with tempfile.TemporaryDirectory(prefix="bench_batch32_") as tmp:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = tmp  # this process's compiled kernels: not the user's cache
        _run(args, p)


def _run(args: argparse.Namespace, p: argparse.ArgumentParser) -> None:
    """The measurements of :func:`main`."""
    common.setup_torch()
    import torch

    if args.profile:
        name, _, mode = args.profile.partition(":")
        if mode not in ("forward", "train"):
            p.error("--profile takes NET:forward or NET:train")
        _profile(name, mode)
        return
    parts = set(args.parts.split(","))
    if parts - set(PARTS):
        p.error(f"unknown part(s): {', '.join(sorted(parts - set(PARTS)))}")
    print(f"torch {torch.__version__}, {common.THREADS} threads, batch {BATCH}, {'×'.join(map(str, SHAPE))}; "
          f"start: {_load()}", flush=True)
    rows: list[list[str]] = []
    mem_rows: list[list[str]] = []
    compile_rows: list[list[str]] = []
    notes: list[str] = []
    x = torch.randn(BATCH, *SHAPE)
    y = torch.randint(0, 1000, (BATCH,))
    for name in args.nets.split(",") if parts & {"forward", "train", "memory"} else []:
        why = _available(name)
        if why is not None:
            notes.append(f"{name}: skipped, {why}")
            print(notes[-1], flush=True)
            continue
        ours, theirs = _pair(name)
        if "forward" in parts:
            ours.eval()
            theirs.eval()
            with torch.inference_mode():
                c = common.interleave(f"{name} forward b{BATCH}", lambda m=ours: m(x), lambda m=theirs: m(x),
                                      rounds=5 if args.quick else 11, warmup=1)
            rows.append(common.comparison_row(c, TARGET))
            print(" ".join(rows[-1]), f"({_load()})", flush=True)
        if parts & {"train", "memory"}:
            ours.train()
            theirs.train()
            a, b = _stepper(ours, x, y), _stepper(theirs, x, y)
            if "train" in parts:
                c = common.interleave(f"{name} train step b{BATCH}", a, b, rounds=3 if args.quick else 7, warmup=1)
                rows.append(common.comparison_row(c, TARGET))
                print(" ".join(rows[-1]), f"({_load()})", flush=True)
            if "memory" in parts:
                a()  # the momentum buffers exist before the measured step (if train did not already run)
                b()
                for what, mine, other in (("peak of a training step", _peak_bytes(a), _peak_bytes(b)),
                                          ("saved for backward", _saved_bytes(ours, x, y), _saved_bytes(theirs, x, y))):
                    ratio = mine / other
                    mem_rows.append([f"{name} {what} b{BATCH}", _mib(mine), _mib(other), f"{ratio:.3f}",
                                     "ok" if ratio <= TARGET else "MISS"])
                    print(" ".join(mem_rows[-1]), flush=True)
        del ours, theirs
    if "compile" in parts:
        for name in args.compile_nets.split(","):
            ours, theirs = _pair(name)
            ours.eval()
            theirs.eval()
            breaks = (_graph_breaks(ours, x[:1]), _graph_breaks(theirs, x[:1]))
            notes.append(f"{name}: graph breaks archspec {breaks[0]}, torchvision {breaks[1]}")
            print(notes[-1], flush=True)
            c = _compile_times(name, rounds=2 if args.quick else 4)
            lo, hi = c.spread
            compile_rows.append([c.label, f"{c.median_a:.1f} s", f"{c.median_b:.1f} s", f"{c.ratio:.3f}",
                                 f"{lo:.3f}–{hi:.3f}", "ok" if c.ratio <= COMPILE_TIME_TARGET else "MISS"])
            print(" ".join(compile_rows[-1]), flush=True)
            torch._dynamo.reset()
            a_c, b_c = torch.compile(ours), torch.compile(theirs)
            with torch.no_grad():
                c = common.interleave(f"{name} compiled forward b{BATCH}", lambda m=a_c: m(x), lambda m=b_c: m(x),
                                      rounds=5 if args.quick else 11, warmup=2)
            rows.append(common.comparison_row(c, COMPILED_FORWARD_TARGET))
            print(" ".join(rows[-1]), f"({_load()})", flush=True)
            torch._dynamo.reset()
            del ours, theirs, a_c, b_c
    print(f"\nend: {_load()}\n")
    if rows:
        print(f"time, {common.THREADS} threads; ratio = archspec / torchvision (median of per-round ratios); "
              f"target {TARGET} (compiled forward {COMPILED_FORWARD_TARGET})")
        common.print_table(HEADERS, rows)
    if mem_rows:
        print(f"\nmemory of a training step (CPU); target {TARGET}")
        common.print_table(["case", "archspec", "torchvision", "ratio", "target"], mem_rows)
    if compile_rows:
        print(f"\ntorch.compile (inductor) compile time, fresh process and empty cache per sample; target {COMPILE_TIME_TARGET}")
        common.print_table(["case", "archspec", "torchvision", "ratio", "min–max", "target"], compile_rows)
    for note in notes:
        print(f"note: {note}")
    misses = [r[0] for r in rows + mem_rows + compile_rows if r[-1] == "MISS"]
    if misses:
        print(f"missed: {', '.join(misses)} (median per-round ratios; see the load average above)")


if __name__ == "__main__":
    main()
