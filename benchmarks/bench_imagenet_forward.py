"""ImageNet forward pass: archspec-compiled module vs torchvision's own module.

    python benchmarks/bench_imagenet_forward.py [--quick]

Cases: densenet121 and resnet50 at 3×64×64 (batch 1 and 8) and at 3×224×224 (batch 1), eval
mode, ``torch.inference_mode``, 2 threads.  The baselines are torchvision's model code itself, imported
through ``tests/tv.py`` (``tv.build("resnet50")``; DenseNet with torchvision's default
``memory_efficient=False``); their state dict is loaded into the archspec module through the spec's
torchvision key mapping (``archspec.mapping.import_state_dict``, ``strict=True``) and the outputs are
checked to agree before timing.  Target: median time ratio archspec / torchvision ≤ 1.02.
"""

from __future__ import annotations

import common

NETS = ["densenet121", "resnet50"]
CASES = [(64, 1), (64, 8), (224, 1)]
TARGET = 1.02


def main() -> None:
    """Run the comparison and print the table."""
    args = common.parse_args(__doc__ or "", NETS)
    common.setup_torch()
    import torch

    import archspec
    import tv  # tests/tv.py: benchmarks/common.py puts tests/ on sys.path
    from archspec.mapping import import_state_dict

    rows = []
    for name in args.nets.split(","):
        for size, batch in CASES:
            torch.manual_seed(0)
            shape = (3, size, size)
            spec = common.SPECS / "imagenet" / f"{name}.yaml"
            ours = archspec.build(spec, input_shape=shape).eval()
            theirs = tv.build(name).eval()
            ours.load_state_dict(import_state_dict(spec, theirs.state_dict()), strict=True)
            x = torch.randn(batch, *shape)
            with torch.inference_mode():
                torch.testing.assert_close(ours(x), theirs(x), rtol=1e-4, atol=1e-4)
                # Rough per-call cost decides how many calls one timed sample holds (≥ ~50 ms).
                one = common._time_calls(lambda m=theirs, x=x: m(x), 2)
                number = max(1, int(0.05 / one))
                rounds = 5 if args.quick else 15
                c = common.interleave(f"{name} {size}² b{batch}", lambda m=ours, x=x: m(x),
                                      lambda m=theirs, x=x: m(x), rounds=rounds, number=number, warmup=2)
            rows.append(common.comparison_row(c, TARGET))
            print(" ".join(rows[-1]), flush=True)
    print()
    print(f"forward, eval, inference_mode, {common.THREADS} threads; ratio = archspec / torchvision")
    common.print_table([*common.COMPARISON_HEADERS[:2], "torchvision", *common.COMPARISON_HEADERS[3:]], rows)


if __name__ == "__main__":
    main()
