"""Forward pass: archspec-compiled module vs the hand-written module, eval mode, batch 1 and 32.

    python benchmarks/bench_forward.py [--quick]

Target: median time ratio archspec / hand-written ≤ 1.02 for every net and batch.
"""

from __future__ import annotations

import common

NETS = ["lenet", "alexnet", "googlenet", "resnet18", "densenet"]
TARGET = 1.02


def main() -> None:
    """Run the forward comparison and print the table."""
    args = common.parse_args(__doc__ or "", NETS)
    common.setup_torch()
    import torch

    import archspec

    refs = common.reference_nets()
    rows = []
    for name in args.nets.split(","):
        ctor, shape, _ = refs[name]
        for batch in (1, 32):
            torch.manual_seed(0)
            ours = archspec.build(common.SPECS / f"{name}.yaml").eval()
            theirs = ctor().eval()
            x = torch.randn(batch, *shape)
            # Rough per-call cost decides how many calls one timed sample holds (≥ ~20 ms).
            with torch.inference_mode():
                one = common._time_calls(lambda m=theirs, x=x: m(x), 3)
                number = max(1, int(0.02 / one))
                rounds = 7 if args.quick else (31 if batch == 1 or name == "lenet" else 15)
                if args.quick and batch == 32 and name != "lenet":
                    rounds = 5
                c = common.interleave(f"{name} b{batch}", lambda m=ours, x=x: m(x), lambda m=theirs, x=x: m(x),
                                      rounds=rounds, number=number, warmup=2)
            rows.append(common.comparison_row(c, TARGET))
            print(" ".join(rows[-1]), flush=True)
    print()
    print(f"forward, eval, inference_mode, {common.THREADS} threads; ratio = archspec / hand-written")
    common.print_table(common.COMPARISON_HEADERS, rows)


if __name__ == "__main__":
    main()
