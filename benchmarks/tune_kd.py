"""Choose `kd`'s learning-rate scale per suite by one procedure, on held-out training data.

Distillation's soft term can make the suite's cross-entropy rate too high (LeNet-5 diverged at
the mnist suite's rate), so each suite sets `methods.kd.lr_scale`. This script is the one
procedure both suites' values come from; the test split is never read:

1. Split the suite's training set with a fixed permutation: the last `--holdout` images (10,000)
   are held out, the rest train.
2. Train the dense teacher on the rest with the suite's budget, seed 0.
3. For each candidate scale (1.0, 0.5, 0.2, 0.1 by default), distill the student with `kd` on the
   rest (the suite's dense + fine-tuning epochs), seed 0, and measure it on the held-out images.
4. Choose the scale with the highest held-out accuracy; a diverged candidate is out. Candidates
   within `--tie` points of the best (one seed cannot separate them) go to the largest scale,
   the one nearest the suite's own rate.

    python benchmarks/tune_kd.py --suites mlp,mnist --data-dir ../shared/data

It prints each candidate's held-out accuracy and the choice per suite; the suite files carry the
choice, and the README the printed table (benchmarks/RESULTS.md).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from tabulate import tabulate

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import registry  # noqa: E402
from bench.context import Context, train_dense  # noqa: E402
from bench.data import Dataset, Split, load_dataset  # noqa: E402
from bench.suite import load_suite  # noqa: E402
from bench.train import DivergedError  # noqa: E402


def held_out(data: Dataset, holdout: int) -> Dataset:
    """Training images split by a fixed permutation: the rest train, `holdout` are the 'test'."""
    order = torch.randperm(len(data.train), generator=torch.Generator().manual_seed(0))
    rest, out = order[:-holdout].sort().values, order[-holdout:].sort().values
    split = data.train
    return Dataset(Split(split.x[rest], split.y[rest]), Split(split.x[out], split.y[out]),
                   data.source + f" (held out: {holdout} training images)", data.num_classes)


def tune(suite_name: str, data_dir: Path | None, scales: list[float], holdout: int, tie: float) -> tuple[list, float]:
    suite = load_suite(suite_name)
    device = torch.device("cpu")
    data = held_out(load_dataset(suite.data, data_dir), holdout).to(device)
    quiet = lambda _: None  # noqa: E731
    start = time.perf_counter()
    teacher = train_dense(Context(suite, data, device, seed=0, log=quiet))
    print(f"{suite_name}: teacher {100 * teacher.meta['accuracy']:.2f}% held out "
          f"({time.perf_counter() - start:.0f} s)", flush=True)
    kd = registry.METHODS["kd"]
    rows = []
    for scale in scales:
        ctx = Context(suite, data, device, seed=0, dense=teacher, log=quiet)
        start = time.perf_counter()
        try:
            accuracy = 100 * ctx.evaluate(kd(lr_scale=scale).run(ctx))
        except DivergedError:
            accuracy = float("nan")
        rows.append([suite_name, scale, accuracy, time.perf_counter() - start])
        print(f"  lr_scale {scale}: {accuracy:.2f}% held out", flush=True)
    finite = [r for r in rows if r[2] == r[2]]
    best = max(r[2] for r in finite)
    chosen = max(r[1] for r in finite if r[2] >= best - tie)
    return rows, chosen


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--suites", default="mlp,mnist")
    p.add_argument("--data-dir", type=Path, default=None)
    p.add_argument("--scales", default="1.0,0.5,0.2,0.1")
    p.add_argument("--holdout", type=int, default=10_000)
    p.add_argument("--tie", type=float, default=0.1, help="points within which candidates tie")
    args = p.parse_args()
    registry.discover()
    table, chosen = [], {}
    for name in args.suites.split(","):
        rows, chosen[name] = tune(name, args.data_dir, [float(s) for s in args.scales.split(",")],
                                  args.holdout, args.tie)
        table += rows
    print(tabulate([[s, f"{k:g}", f"{a:.2f}", f"{t:.0f}", "chosen" if chosen[s] == k else ""]
                    for s, k, a, t in table],
                   headers=["suite", "lr_scale", "held-out accuracy (%)", "seconds", ""], tablefmt="pipe"))


if __name__ == "__main__":
    main()
