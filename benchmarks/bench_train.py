"""Training step: archspec-compiled module vs the hand-written module, batch 32.

    python benchmarks/bench_train.py [--quick]

One step = forward, cross-entropy loss, backward, SGD step (lr 0.01, momentum 0.9), in train mode.
Both models start from the same weights (copied with tests/weight_transfer.py) and each side keeps
its own optimiser.  Target: median time ratio archspec / hand-written ≤ 1.02.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import common

NETS = ["lenet", "alexnet", "googlenet", "resnet18", "densenet"]
TARGET = 1.02
BATCH = 32


def _stepper(model: Any, x: Any, y: Any, loss_fn: Any) -> Callable[[], None]:
    import torch

    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        opt.step()

    return step


def main() -> None:
    """Run the training-step comparison and print the table."""
    args = common.parse_args(__doc__ or "", NETS)
    common.setup_torch()
    import torch
    from torch import nn

    import archspec
    from weight_transfer import copy_weights

    refs = common.reference_nets()
    rows = []
    for name in args.nets.split(","):
        ctor, shape, _ = refs[name]
        torch.manual_seed(0)
        theirs = ctor().train()
        ours = archspec.build(common.SPECS / f"{name}.yaml").train()
        copy_weights(theirs, ours, torch.randn(2, *shape))
        x = torch.randn(BATCH, *shape)
        y = torch.randint(0, 10, (BATCH,))
        loss_fn = nn.CrossEntropyLoss()

        a, b = _stepper(ours, x, y, loss_fn), _stepper(theirs, x, y, loss_fn)
        one = common._time_calls(b, 2)
        number = max(1, int(0.05 / one))
        rounds = (9 if name == "lenet" else 5) if args.quick else (41 if name == "lenet" else 11)
        c = common.interleave(f"{name} b{BATCH}", a, b, rounds=rounds, number=number, warmup=1)
        rows.append(common.comparison_row(c, TARGET))
        print(" ".join(rows[-1]), flush=True)
    print()
    print(f"training step (forward, loss, backward, SGD), batch {BATCH}, {common.THREADS} threads; "
          "ratio = archspec / hand-written")
    common.print_table(common.COMPARISON_HEADERS, rows)


if __name__ == "__main__":
    main()
