"""Do repeated latency measurements of the same model agree across separate processes?

Runs bench.measure.latency_ms (torch.utils.benchmark's blocked_autorange, about 1 s per model)
on each suite's freshly built model, on random NCHW inputs, in N fresh processes and prints the
medians and the spread (max/min - 1) per model and batch size. The issue's targets: within 10% on
this CPU, within 5% on a GPU. It is the repeatability of one model's latency over long runs, not
of the records' figures: a record's latency is the compressed model's median over the 10 blocks of
~20 ms of bench.measure.paired_speedup, channels-last where it has convolutions, and its speedup
the median ratio to the dense model's neighbouring blocks.

    python benchmarks/latency_stability.py [--processes 3] [--suites mlp,mnist,cifar] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from tabulate import tabulate

CHILD = """
import json, sys, torch
from bench.measure import latency_ms
from bench.models import build_model
from bench.suite import load_suite
suite = load_suite(sys.argv[1]); device = torch.device(sys.argv[2])
torch.manual_seed(0)
channels = len(suite.data.mean); size = 32 if suite.data.dataset.startswith("CIFAR") else 28
model = build_model(suite.model.name, dict(suite.model.kwargs), 10, channels).to(device)
out = {}
for batch in suite.latency_batches:
    x = torch.randn(batch, channels, size, size, device=device)
    out[batch] = latency_ms(model, x)
print(json.dumps(out))
"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--processes", type=int, default=3)
    p.add_argument("--suites", default="mlp,mnist,cifar")
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    rows = []
    for suite in args.suites.split(","):
        runs = [json.loads(subprocess.run([sys.executable, "-c", CHILD, suite, args.device],
                                          capture_output=True, text=True, check=True).stdout.splitlines()[-1])
                for _ in range(args.processes)]
        for batch in runs[0]:
            medians = [r[batch][0] for r in runs]
            iqrs = [r[batch][1] for r in runs]
            rows.append([suite, batch, *[f"{m:.4f}" for m in medians], f"{max(iqrs):.4f}",
                         f"{100 * (max(medians) / min(medians) - 1):.1f}%"])
    headers = ["suite", "batch", *[f"process {i + 1} median (ms)" for i in range(args.processes)],
               "max IQR (ms)", "spread (max/min - 1)"]
    print(tabulate(rows, headers=headers))


if __name__ == "__main__":
    main()
