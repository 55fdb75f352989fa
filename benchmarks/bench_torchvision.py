"""archspec's ImageNet specs against torchvision's own model code: forward, training step, memory, torch.compile.

    python benchmarks/bench_torchvision.py --preset batch32        # issue 18
    python benchmarks/bench_torchvision.py --preset modern-cnn     # issue 14
    python benchmarks/bench_torchvision.py --preset transformers   # issue 15
    python benchmarks/bench_torchvision.py [--preset P] [--quick] [--nets NET,...] [--batches 1,32] [--target 1.02]
                                           [--parts forward,train,memory,compile] [--compile-nets resnet18,mobilenet_v2]
                                           [--case-seconds 30] [--profile NET:forward|NET:train] [--keep-freed-memory]

Presets (explicit flags override a preset's values; without ``--preset`` the defaults are ``batch32``'s):

* ``batch32`` (issue 18): resnet50, mobilenet_v2, densenet121, efficientnet_b0 at batch 32, target 1.02,
  parts forward, train, memory, compile (resnet18 and mobilenet_v2).
* ``modern-cnn`` (issue 14): mobilenet_v3_large, efficientnet_b0, shufflenet_v2_x1_0, convnext_tiny at
  batches 1 and 32, target 1.03, parts forward and train.
* ``transformers`` (issue 15): vit_b_16, swin_t at batches 1 and 32, target 1.03, parts forward and train.

The baseline is torchvision's model code itself (``tests/tv.py``: ``tv.build("resnet50")``).  Every
parameter that torchvision initialises to all zeros (biases, BatchNorm shifts, ViT's head) is redrawn from
N(0, 0.02²) first, so that the outputs are not trivially equal; the weights are then loaded into the
archspec model (``specs/imagenet/NAME.yaml``) through the spec's torchvision key mapping
(``archspec.mapping.import_state_dict``, ``strict=True``), and the two are checked to compute the same
function (eval, batch 2, 224×224, rtol/atol 1e-4 — the same tolerance for the transformers, whose own test
passes at rtol 1e-4, atol 1e-5) before anything is timed.  A net whose spec does not exist or does not
analyse is skipped with a note.  Every comparison is interleaved in one process (random A/B order per
round, ``benchmarks/common.py``), 2 threads, and reports the median of the per-round ratios archspec /
torchvision.

* **forward**: eval mode, ``torch.inference_mode``, each batch of ``--batches``, 3×224×224.
* **train**: one step = forward, cross-entropy, backward, SGD (lr 0.01, momentum 0.9), train mode (dropout
  and stochastic depth active on both sides), each batch; each side has its own optimiser.
* **memory** (deterministic, measured once, at the largest batch): *peak* = the most bytes the CPU
  allocator held above the step's start during one training step (after a warm-up step, so the momentum
  buffers exist and are not counted as new), from the allocation events of ``torch.profiler`` with
  ``profile_memory=True``; *saved* = the bytes of the distinct storages autograd saves for backward in that
  step's forward (``torch.autograd.graph.saved_tensors_hooks``).  Target: ``--target``.
* **compile**: ``torch.compile`` (Inductor, CPU) of the eval model, forward under ``torch.no_grad``, at the
  largest batch.  *compile time* = first call minus one steady-state call, each measured in a fresh process
  with an empty Inductor cache directory (``TORCHINDUCTOR_CACHE_DIR``), processes alternating A/B in random
  order per round (2 to 4 rounds, as many as fit in 4 × ``--case-seconds`` per net); *compiled forward* =
  steady-state calls of both compiled models, interleaved in this process (compiled here from each side's
  Inductor cache of its last fresh-process round, which saves a second cold compile).  Graph breaks are counted with
  ``torch._dynamo.explain``.  Targets ≤ 1.1 (compile time) and ≤ 1.03 (compiled forward).

**Run length.**  Rounds adapt to the cost of a call: one warm-up call per side gives the per-call time;
each timed sample holds enough calls to last ≥ 0.1 s, and a case gets as many rounds as fit in
``--case-seconds`` (default 30 s), at least 5 and at most 31.  A case whose 5 rounds take longer (a transformer's
training step at batch 32 takes many seconds per call on 2 cores) takes that long.  The script
prints each case's plan and estimate before timing it, and the elapsed time with every row.  ``--quick``:
3 rounds of ≥ 20 ms samples, 1 compile round, for smoke testing.

**Allocator.**  On CPU at batch 32, much of a call's time is page faults: glibc's malloc maps every
large tensor afresh (``mmap``) and unmaps it when freed, so its pages are faulted in again on every call,
and how many faults a network takes depends on the order its tensors are freed in, not on its
arithmetic.  ``--keep-freed-memory`` re-runs the script with glibc told to keep freed memory (see
``KEEP_FREED_MEMORY``): no faults, both sides about twice as fast, and the ratio then compares the
work of the two models alone.  The default run keeps glibc's defaults, as a user's process has them.

``--profile resnet50:train`` prints the ``torch.profiler`` operator table (self CPU time) of both sides for
one call at each batch of ``--batches``, to see where the time goes.
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

PARTS = ["forward", "train", "memory", "compile"]
#: ``--keep-freed-memory``: glibc's malloc then neither serves large blocks by ``mmap`` nor returns freed
#: memory to the system, so a tensor allocated again reuses pages that are already mapped.  With the
#: defaults, every tensor above glibc's (adaptive, at most 32 MB) ``mmap`` threshold is mapped afresh and
#: page-faulted in on every call; at batch 32 that is about half of a forward's time on this machine,
#: and how much of it a network pays depends on the order in which its tensors are freed.
KEEP_FREED_MEMORY = {"MALLOC_MMAP_THRESHOLD_": "4294967296", "MALLOC_TRIM_THRESHOLD_": "4294967296"}
PRESETS: dict[str, dict[str, Any]] = {
    "batch32": {"nets": ["resnet50", "mobilenet_v2", "densenet121", "efficientnet_b0"], "batches": [32],
                "target": 1.02, "parts": ["forward", "train", "memory", "compile"]},
    "modern-cnn": {"nets": ["mobilenet_v3_large", "efficientnet_b0", "shufflenet_v2_x1_0", "convnext_tiny"],
                   "batches": [1, 32], "target": 1.03, "parts": ["forward", "train"]},
    "transformers": {"nets": ["vit_b_16", "swin_t"], "batches": [1, 32], "target": 1.03, "parts": ["forward", "train"]},
}
DEFAULT_PRESET = "batch32"
COMPILE_NETS = ["resnet18", "mobilenet_v2"]
SHAPE = (3, 224, 224)
COMPILE_TIME_TARGET = 1.1
COMPILED_FORWARD_TARGET = 1.03
CHECK_TOLERANCE = 1e-4  # rtol and atol of the equality check (eval, batch 2)
MIN_ROUNDS, MAX_ROUNDS, QUICK_ROUNDS = 5, 31, 3
SAMPLE_SECONDS, QUICK_SAMPLE_SECONDS = 0.1, 0.02
IMAGENET = common.SPECS / "imagenet"
HEADERS = ["case", "archspec", "torchvision", "wall ratio", "min–max", "cpu ratio", "cpu min–max", "target"]
_START = time.perf_counter()


def _load() -> str:
    return "load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def _elapsed() -> str:
    return f"elapsed {time.perf_counter() - _START:.0f} s"


def _randomise_zeros(model: Any) -> None:
    """Redraw every all-zero parameter from N(0, 0.02²): torchvision starts biases (and ViT's head) at zero."""
    import torch

    with torch.no_grad():
        for p in model.parameters():
            if not p.any():
                p.normal_(std=0.02)


def _pair(name: str, *, check: bool = True) -> tuple[Any, Any]:
    """(archspec model, torchvision model) with the same weights, checked to compute the same function."""
    import torch

    import archspec
    import tv
    from archspec.mapping import import_state_dict

    spec = IMAGENET / f"{name}.yaml"
    torch.manual_seed(0)
    theirs = tv.build(name)
    _randomise_zeros(theirs)
    ours = archspec.build(spec)
    ours.load_state_dict(import_state_dict(spec, theirs.state_dict()), strict=True)
    if check:
        x = torch.randn(2, *SHAPE)
        with torch.inference_mode():
            expected = theirs.eval()(x)
            if not expected.abs().max() > 0:
                raise SystemExit(f"{name}: torchvision's output is all zeros; the equality check would prove nothing")
            torch.testing.assert_close(ours.eval()(x), expected, rtol=CHECK_TOLERANCE, atol=CHECK_TOLERANCE)
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


def _timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _measure(label: str, a: Callable[[], object], b: Callable[[], object], *, quick: bool,
             case_seconds: float) -> common.Comparison:
    """Warm both sides up, plan rounds and calls per sample from the per-call time, then time them interleaved.

    The first call of each side is the warm-up and gives the per-call time; when both are short (< 1 s) a
    second call of each, now warm, gives a better one.
    """
    ta, tb = _timed(a), _timed(b)
    if ta + tb < 1.0:
        ta, tb = _timed(a), _timed(b)
    per_call = max(ta, tb)
    number = max(1, int((QUICK_SAMPLE_SECONDS if quick else SAMPLE_SECONDS) / per_call))
    if quick:
        rounds = QUICK_ROUNDS
    else:
        rounds = min(MAX_ROUNDS, max(MIN_ROUNDS, int(case_seconds / ((ta + tb) * number))))
    estimate = rounds * number * (ta + tb)
    print(f"  {label}: {common.fmt_time(ta)} / {common.fmt_time(tb)} per call (archspec / torchvision) → "
          f"{rounds} rounds × {number} call(s) per side ≈ {estimate:.1f} s ({_elapsed()})", flush=True)
    return common.interleave(label, a, b, rounds=rounds, number=number, warmup=0)


def _compile_worker(name: str, side: str, out: str, batch: int) -> None:
    """In a fresh process: compile one side's eval model and write the compile time to ``out`` (JSON)."""
    common.setup_torch()
    import torch

    ours, theirs = _pair(name, check=False)
    model = (ours if side == "archspec" else theirs).eval()
    x = torch.randn(batch, *SHAPE)
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


def _compile_times(name: str, batch: int, tmp: Path, *, min_rounds: int, max_rounds: int, budget: float,
                   seed: int = 0) -> tuple[common.Comparison, dict[str, Path]]:
    """Compile time of both sides, each in a fresh process with an empty Inductor cache, interleaved.

    Runs ``min_rounds`` rounds, then more (up to ``max_rounds``) while another round fits in ``budget`` seconds.
    Returns the comparison and, per side, the Inductor cache directory its last round filled (under ``tmp``).
    """
    rng = random.Random(seed)
    times: dict[str, list[float]] = {"archspec": [], "torchvision": []}
    caches: dict[str, Path] = {}
    start = time.perf_counter()
    for r in range(max_rounds):
        spent = time.perf_counter() - start
        if r >= min_rounds and spent + spent / r > budget:
            break
        order = ["archspec", "torchvision"]
        rng.shuffle(order)
        for side in order:
            out = tmp / f"{name}_{side}_{r}.json"
            caches[side] = tmp / f"cache_{name}_{side}_{r}"
            env = dict(os.environ, TORCHINDUCTOR_CACHE_DIR=str(caches[side]))
            subprocess.run([sys.executable, __file__, "--compile-worker", name, side, str(out), str(batch)],
                           check=True, env=env)
            times[side].append(json.loads(out.read_text())["compile"])
            print(f"  compile {name} {side} round {r + 1}: {times[side][-1]:.1f} s ({_load()}, {_elapsed()})", flush=True)
    return common.Comparison(f"{name} compile time b{batch}", times["archspec"], times["torchvision"]), caches


def _compile_from(model: Any, x: Any, cache: Path) -> Any:
    """``torch.compile(model)``, compiled by one call on ``x`` with Inductor's cache in ``cache`` (then restored)."""
    import torch

    before = os.environ["TORCHINDUCTOR_CACHE_DIR"]
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(cache)
    try:
        compiled = torch.compile(model)
        with torch.no_grad():
            compiled(x)
    finally:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = before
    return compiled


def _graph_breaks(model: Any, x: Any) -> int:
    import torch

    torch._dynamo.reset()
    with torch.no_grad():
        n = torch._dynamo.explain(model)(x).graph_break_count
    torch._dynamo.reset()
    return n


def _profile(name: str, mode: str, batches: list[int]) -> None:
    """Print the operator table of one forward (eval) or training step of both sides at each batch."""
    import torch

    ours, theirs = _pair(name)
    for batch in batches:
        x = torch.randn(batch, *SHAPE)
        y = torch.randint(0, 1000, (batch,))
        for label, model in (("archspec", ours), ("torchvision", theirs)):
            if mode == "forward":
                model.eval()

                def run(m: Any = model, x: Any = x) -> None:
                    with torch.inference_mode():
                        m(x)
            else:
                model.train()
                run = _stepper(model, x, y)
            run()  # warm-up
            with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
                run()
            print(f"\n### {label}: {name} {mode} b{batch} (torch.profiler, self CPU time)\n")
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=14))


def _names(text: str) -> list[str]:
    return [s for s in (t.strip() for t in text.split(",")) if s]


def _batches(text: str) -> list[int]:
    """``1,32`` → [1, 32] (argparse type: a bad list is a usage error)."""
    try:
        batches = [int(s) for s in _names(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated batch sizes, got {text!r}") from None
    if not batches or min(batches) < 1:
        raise argparse.ArgumentTypeError(f"batch sizes must be positive integers, got {text!r}")
    return sorted(set(batches))


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _options(argv: list[str] | None = None) -> tuple[argparse.Namespace, argparse.ArgumentParser]:
    """Parse the command line and fill what it leaves out from the preset (default: ``batch32``)."""
    p = common.parser(__doc__ or "")
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("--preset", choices=sorted(PRESETS), help=f"an issue's set of measurements (default values: {DEFAULT_PRESET})")
    p.add_argument("--nets", type=_names, help="comma-separated nets (specs/imagenet/NAME.yaml) for forward, train, memory")
    p.add_argument("--batches", type=_batches, help="comma-separated batch sizes for forward and train (memory and compile: "
                   "the largest); batch32 default: 32")
    p.add_argument("--target", type=_positive, help="target ratio for forward, train and memory (batch32 default: 1.02)")
    p.add_argument("--parts", type=_names, help="comma-separated subset of " + ",".join(PARTS))
    p.add_argument("--compile-nets", type=_names, default=COMPILE_NETS, help="comma-separated nets for torch.compile "
                   f"(default {','.join(COMPILE_NETS)})")
    p.add_argument("--case-seconds", type=_positive, default=30.0, help="time each timed case aims at: rounds adapt "
                   f"between {MIN_ROUNDS} and {MAX_ROUNDS} (default 30)")
    p.add_argument("--profile", metavar="NET:MODE", help="only print the profiler tables of NET for forward or train")
    p.add_argument("--keep-freed-memory", action="store_true", help="run with glibc's malloc keeping freed memory "
                   f"({' '.join(f'{k}={v}' for k, v in KEEP_FREED_MEMORY.items())}): no page faults for re-allocated tensors")
    p.add_argument("--compile-worker", nargs=4, metavar=("NET", "SIDE", "OUT", "BATCH"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    preset = PRESETS[args.preset or DEFAULT_PRESET]
    for key in ("nets", "batches", "target", "parts"):
        if getattr(args, key) is None:
            setattr(args, key, preset[key])
    unknown = set(args.parts) - set(PARTS)
    if unknown:
        p.error(f"unknown part(s): {', '.join(sorted(unknown))} (choose from {','.join(PARTS)})")
    if not args.nets:
        p.error("--nets is empty")
    if args.profile:
        name, _, mode = args.profile.partition(":")
        if not name or mode not in ("forward", "train"):
            p.error("--profile takes NET:forward or NET:train")
    return args, p


def main(argv: list[str] | None = None) -> None:
    """Run the selected parts and print the tables."""
    args, _ = _options(argv)
    if args.keep_freed_memory and any(os.environ.get(k) != v for k, v in KEEP_FREED_MEMORY.items()):
        # glibc reads these once, at start-up: run this script again in a process that has them
        env = {**os.environ, **KEEP_FREED_MEMORY}
        argv = sys.argv[1:] if argv is None else argv
        raise SystemExit(subprocess.run([sys.executable, __file__, *argv], env=env, check=False).returncode)
    if args.compile_worker:
        name, side, out, batch = args.compile_worker
        _compile_worker(name, side, out, int(batch))
        return
    with tempfile.TemporaryDirectory(prefix="bench_torchvision_") as tmp:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = tmp  # this process's compiled kernels: not the user's cache
        _run(args)


def _run(args: argparse.Namespace) -> None:
    """The measurements of :func:`main`."""
    common.setup_torch()
    import torch

    if args.profile:
        name, _, mode = args.profile.partition(":")
        why = _available(name)
        if why is not None:
            raise SystemExit(f"error: {name}: {why}")
        _profile(name, mode, args.batches)
        return
    parts = set(args.parts)
    target: float = args.target
    top = max(args.batches)
    print(f"torch {torch.__version__}, {common.THREADS} threads, {'×'.join(map(str, SHAPE))}; preset "
          f"{args.preset or '(none)'}: nets {','.join(args.nets)}, batches {','.join(map(str, args.batches))}, "
          f"parts {','.join(p for p in PARTS if p in parts)}, target {target}"
          f"{', quick' if args.quick else f', {args.case_seconds:g} s per case'}; start: {_load()}", flush=True)
    print("allocator: " + ("glibc malloc keeping freed memory (" + " ".join(f"{k}={v}" for k, v in KEEP_FREED_MEMORY.items())
                           + ")" if args.keep_freed_memory else "glibc malloc defaults"), flush=True)
    rows: list[list[str]] = []
    mem_rows: list[list[str]] = []
    compile_rows: list[list[str]] = []
    notes: list[str] = []
    y_all = torch.randint(0, 1000, (top,))
    x_all = torch.randn(top, *SHAPE)
    for name in args.nets if parts & {"forward", "train", "memory"} else []:
        why = _available(name)
        if why is not None:
            notes.append(f"{name}: skipped, {why}")
            print(notes[-1], flush=True)
            continue
        ours, theirs = _pair(name)
        print(f"{name}: outputs equal (eval, batch 2, rtol/atol {CHECK_TOLERANCE:g}) ({_elapsed()})", flush=True)
        for batch in args.batches if "forward" in parts else []:  # first, while the weights are the checked ones
            x = x_all[:batch]
            ours.eval()
            theirs.eval()
            with torch.inference_mode():
                c = _measure(f"{name} forward b{batch}", lambda m=ours, x=x: m(x), lambda m=theirs, x=x: m(x),
                             quick=args.quick, case_seconds=args.case_seconds)
            rows.append(common.comparison_row(c, target))
            print(" ".join(rows[-1]), f"({_load()}, {_elapsed()})", flush=True)
        for batch in args.batches:
            x, y = x_all[:batch], y_all[:batch]
            if "train" in parts or ("memory" in parts and batch == top):
                ours.train()
                theirs.train()
                a, b = _stepper(ours, x, y), _stepper(theirs, x, y)
                if "train" in parts:
                    c = _measure(f"{name} train step b{batch}", a, b, quick=args.quick, case_seconds=args.case_seconds)
                    rows.append(common.comparison_row(c, target))
                    print(" ".join(rows[-1]), f"({_load()}, {_elapsed()})", flush=True)
                if "memory" in parts and batch == top:
                    if "train" not in parts:  # the momentum buffers must exist before the measured step
                        a()
                        b()
                    for what, mine, other in (("peak of a training step", _peak_bytes(a), _peak_bytes(b)),
                                              ("saved for backward", _saved_bytes(ours, x, y), _saved_bytes(theirs, x, y))):
                        ratio = mine / other
                        mem_rows.append([f"{name} {what} b{batch}", _mib(mine), _mib(other), f"{ratio:.3f}",
                                         "ok" if ratio <= target else "MISS"])
                        print(" ".join(mem_rows[-1]), f"({_elapsed()})", flush=True)
                del a, b
        del ours, theirs
    if "compile" in parts:
        x = x_all
        for name in args.compile_nets:
            why = _available(name)
            if why is not None:
                notes.append(f"{name}: compile skipped, {why}")
                print(notes[-1], flush=True)
                continue
            ours, theirs = _pair(name)
            ours.eval()
            theirs.eval()
            breaks = (_graph_breaks(ours, x[:1]), _graph_breaks(theirs, x[:1]))
            notes.append(f"{name}: graph breaks archspec {breaks[0]}, torchvision {breaks[1]}")
            print(notes[-1], flush=True)
            with tempfile.TemporaryDirectory(prefix="bench_compile_") as tmp:
                c, caches = _compile_times(name, top, Path(tmp), min_rounds=1 if args.quick else 2,
                                           max_rounds=1 if args.quick else 4, budget=4 * args.case_seconds)
                lo, hi = c.spread
                compile_rows.append([c.label, f"{c.median_a:.1f} s", f"{c.median_b:.1f} s", f"{c.ratio:.3f}",
                                     f"{lo:.3f}–{hi:.3f}", "ok" if c.ratio <= COMPILE_TIME_TARGET else "MISS"])
                print(" ".join(compile_rows[-1]), flush=True)
                # The same compilation again, from each side's cache of its last fresh-process round (what it
                # costs is measured above); only the steady state is timed here.
                torch._dynamo.reset()
                t0 = time.perf_counter()
                a_c, b_c = _compile_from(ours, x, caches["archspec"]), _compile_from(theirs, x, caches["torchvision"])
                print(f"  {name}: both compiled again in this process from those caches in {time.perf_counter() - t0:.1f} s",
                      flush=True)
            with torch.no_grad():
                c = _measure(f"{name} compiled forward b{top}", lambda m=a_c: m(x), lambda m=b_c: m(x),
                             quick=args.quick, case_seconds=args.case_seconds)
            rows.append(common.comparison_row(c, COMPILED_FORWARD_TARGET))
            print(" ".join(rows[-1]), f"({_load()}, {_elapsed()})", flush=True)
            torch._dynamo.reset()
            del ours, theirs, a_c, b_c
    print(f"\nend: {_load()}, {_elapsed()}\n")
    if rows:
        print(f"time, {common.THREADS} threads; ratio = archspec / torchvision (median of per-round ratios); "
              f"target {target}" + (f" (compiled forward {COMPILED_FORWARD_TARGET})" if "compile" in parts else ""))
        common.print_table(HEADERS, rows)
    if mem_rows:
        print(f"\nmemory of a training step (CPU) at batch {top}; target {target}")
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
