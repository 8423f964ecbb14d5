"""What moves the CSR speedup of a pruned LeNet-300-100: sparsity, batch, threads, or load?

The committed mlp records give `torch_csr` 4.1-4.6x over dense at 98% sparsity and batch 256 (AMD
EPYC family 25, one thread per run); an audit on another CPU got 2.5-3.2x, while 90% agreed
(1.6-1.8x). This times the harness's own measurement (bench.deploy's torch and torch_csr sessions,
bench.measure.paired_speedup: dense and CSR blocks interleaved) on LeNet-300-100 pruned by global
magnitude (torch.nn.utils.prune) at each sparsity, with 1 and 2 torch threads, at each batch size,
on an idle machine and beside a busy process (one thread of dense GEMMs, as another job's training
would be). Every setting is timed once per round, the settings in a fixed interleaved order, so
that a machine's drift hits all of them; the table gives the median over rounds and the range.

    python benchmarks/csr_speedup.py [--rounds 5] [--sparsities 0.9,0.98] [--batches 1,256] [--threads 1,2]

Run it on an otherwise quiet machine: the load it adds is the only load meant to be there.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from tabulate import tabulate
from torch import nn
from torch.nn.utils import prune

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import deploy, measure  # noqa: E402
from bench.models import build_model  # noqa: E402
from bench.records import device_name  # noqa: E402

BUSY = ("import torch; torch.set_num_threads(1); a = torch.randn(512, 512)\n"
        "while True: a @ a")  # another job's training, on one core


def pruned(sparsity: float) -> nn.Module:
    """LeNet-300-100 (seeded initialization), global magnitude pruning across its Linear layers."""
    torch.manual_seed(0)
    model = build_model("lenet300", {}, num_classes=10, in_channels=1).eval()
    layers = [(m, "weight") for m in model.modules() if isinstance(m, nn.Linear)]
    prune.global_unstructured(layers, pruning_method=prune.L1Unstructured, amount=sparsity)
    for module, name in layers:
        prune.remove(module, name)
    return model


def speedup(model: nn.Module, dense: nn.Module, batch: int, pairs: int) -> float:
    """The harness's figure: CSR session against the dense eager session, timed side by side."""
    x = torch.randn(batch, 1, 28, 28)
    csr = deploy.load_torch_csr(model, x, None, False)
    eager = deploy.load_torch_csr(dense, x, None, True)  # as measure_runtimes builds the baseline
    return measure.paired_speedup(deploy.timed(eager, x), deploy.timed(csr, x), pairs=pairs,
                                  block_s=deploy.BLOCK_S).speedup


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--pairs", type=int, default=deploy.PAIRS, help="pairs of blocks per figure (the harness: 10)")
    p.add_argument("--sparsities", default="0.9,0.98")
    p.add_argument("--batches", default="1,256")
    p.add_argument("--threads", default="1,2")
    args = p.parse_args()
    sparsities = [float(s) for s in args.sparsities.split(",")]
    batches = [int(b) for b in args.batches.split(",")]
    threads = [int(t) for t in args.threads.split(",")]
    dense = pruned(0.0)
    models = {s: pruned(s) for s in sparsities}
    figures: dict[tuple, list[float]] = {}
    for _ in range(args.rounds):
        for load in ("idle", "busy"):
            busy = subprocess.Popen([sys.executable, "-c", BUSY]) if load == "busy" else None
            try:
                time.sleep(2 if busy else 0)  # the busy process imports torch and starts multiplying
                for t in threads:
                    torch.set_num_threads(t)
                    for s in sparsities:
                        for b in batches:
                            figures.setdefault((s, b, t, load), []).append(speedup(models[s], dense, b, args.pairs))
            finally:
                if busy:
                    busy.kill()
                    busy.wait()
    print(f"{device_name(torch.device('cpu'))}, torch {torch.__version__}, {args.rounds} rounds of "
          f"{args.pairs} pairs; CSR speedup over dense eager (median over rounds, range)")
    rows = [[f"{s:.0%}", b, t, load, f"{statistics.median(v):.2f}x", f"{min(v):.2f}-{max(v):.2f}"]
            for (s, b, t, load), v in sorted(figures.items())]
    print(tabulate(rows, headers=["sparsity", "batch", "threads", "machine", "speedup", "range"]))


if __name__ == "__main__":
    main()
