"""What moves the CSR speedup of a pruned LeNet-300-100: sparsity, pruning scope, batch, threads, load?

The committed mlp records give `torch_csr` about 4.0-4.5x over dense at 98% sparsity and batch 256
for the one-shot rows, about 3.5x for `magnitude` (AMD EPYC family 25, one thread per run;
benchmarks/RESULTS.md has the figures generated from them); an audit on another CPU got
2.5-3.2x, while 90% agreed (1.6-1.8x). This times the harness's own measurement
(bench.deploy's torch and torch_csr sessions, bench.measure.paired_speedup: dense and CSR blocks
interleaved) on a trained LeNet-300-100 (a dense model that `bench run` cached) pruned by
magnitude (torch.nn.utils.prune) across its layers (`global`, as the `magnitude` rows are before
fine-tuning, which keeps the mask) and per layer (`layer`, as the one-shot rows are), at each
sparsity, with 1 and 2 torch threads, at each batch size, on an idle machine and beside a busy
process (one thread of dense GEMMs, as another job's training would be; timing starts once it
multiplies). Every setting is timed once per round, the settings in a fixed interleaved order, so
that a machine's drift hits all of them; the table gives the median over rounds and the range.

    bench run --suite mlp --methods dense --seeds 0 --results-dir /tmp/csr   # a trained dense model
    python benchmarks/csr_speedup.py --dense /tmp/csr/mlp/cache/dense-s0-*.safetensors [--rounds 5]
        [--sparsities 0.9,0.98] [--scopes global,layer] [--batches 1,256] [--threads 1,2]

Run it on an otherwise quiet machine: the load it adds is the only load meant to be there.
"""

from __future__ import annotations

import argparse
import select
import statistics
import subprocess
import sys
from pathlib import Path

import torch
from tabulate import tabulate
from torch import nn
from torch.nn.utils import prune

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import deploy, measure  # noqa: E402
from bench.context import DenseWeights  # noqa: E402
from bench.models import build_model  # noqa: E402
from bench.provenance import device_name  # noqa: E402
from bench.sparsity import make_permanent, prunable_weights, prune_unstructured  # noqa: E402

BUSY = ("import torch; torch.set_num_threads(1); a = torch.randn(512, 512); a @ a; print('busy', flush=True)\n"
        "while True: a @ a")  # another job's training, on one core


def pruned(dense: DenseWeights, sparsity: float, scope: str) -> nn.Module:
    """The trained LeNet-300-100 pruned by magnitude across its Linear layers (`global`, as the
    `magnitude` rows: the last layer keeps most of its weights) or each layer alike (`layer`, as
    the one-shot rows of `magnitude-oneshot`, `wanda` and `sparsegpt`: every layer goes to CSR)."""
    model = build_model("lenet300", {}, num_classes=10, in_channels=1)
    model.load_state_dict(dense.state_dict)
    layers = prunable_weights(model)
    for group in ([layers] if scope == "global" else [[layer] for layer in layers]) if sparsity else []:
        prune_unstructured(group, prune.L1Unstructured, sparsity)  # the harness's own, as `magnitude` prunes
    return make_permanent(model).eval()


def layer_sparsities(model: nn.Module) -> str:
    return ", ".join(f"{(m.weight == 0).float().mean().item():.1%}" for m in model.modules() if isinstance(m, nn.Linear))


def speedup(model: nn.Module, dense: nn.Module, batch: int, pairs: int) -> float:
    """The harness's figure: CSR session against the dense eager session, timed side by side."""
    x = torch.randn(batch, 1, 28, 28)
    csr = deploy.load_torch_csr(model, x, None, False)
    eager = deploy.load_torch_csr(dense, x, None, True)  # as measure_runtimes builds the baseline
    return measure.paired_speedup(deploy.timed(eager, x), deploy.timed(csr, x), pairs=pairs,
                                  block_s=deploy.BLOCK_S).speedup


def started(busy: subprocess.Popen, timeout: float) -> bool:
    """Whether the busy process has imported torch and multiplies (it says so once), waiting at
    most `timeout` seconds: one that hangs or dies must not stall the benchmark."""
    ready, _, _ = select.select([busy.stdout], [], [], timeout)
    return bool(ready) and busy.stdout.readline() == "busy\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dense", type=Path, required=True,
                   help="a LeNet-300-100 dense model cached by `bench run --suite mlp` (RESULTS/mlp/cache/dense-s*.safetensors)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--pairs", type=int, default=deploy.PAIRS, help="pairs of blocks per figure (the harness: 10)")
    p.add_argument("--sparsities", default="0.9,0.98")
    p.add_argument("--batches", default="1,256")
    p.add_argument("--threads", default="1,2")
    p.add_argument("--scopes", default="global,layer", help="magnitude pruning across layers (global) or per layer")
    args = p.parse_args()
    sparsities = [float(s) for s in args.sparsities.split(",")]
    batches = [int(b) for b in args.batches.split(",")]
    threads = [int(t) for t in args.threads.split(",")]
    scopes = args.scopes.split(",")
    if not set(scopes) <= {"global", "layer"}:
        p.error(f"--scopes: expected global and/or layer, got {args.scopes}")
    if not args.dense.is_file():
        p.error(f"--dense {args.dense}: no such file")
    try:
        weights = DenseWeights.load(args.dense)
        dense = pruned(weights, 0.0, "global")
    except Exception as e:  # noqa: BLE001 - a foreign file, or another suite's model: say which and why
        p.error(f"--dense {args.dense}: not a LeNet-300-100 model that `bench run --suite mlp` cached: "
                f"{type(e).__name__}: {(str(e).splitlines() or [''])[0]}")
    models = {(s, scope): pruned(weights, s, scope) for s in sparsities for scope in scopes}
    figures: dict[tuple, list[float]] = {}
    for _ in range(args.rounds):
        for load in ("idle", "busy"):
            busy = subprocess.Popen([sys.executable, "-c", BUSY], stdout=subprocess.PIPE, text=True) if load == "busy" else None
            try:
                if busy and not started(busy, timeout=120):
                    raise RuntimeError("the busy process did not start multiplying within 2 minutes")
                for t in threads:
                    torch.set_num_threads(t)
                    for (s, scope), model in models.items():
                        for b in batches:
                            figures.setdefault((s, scope, b, t, load), []).append(speedup(model, dense, b, args.pairs))
            finally:
                if busy:
                    busy.kill()
                    busy.wait()
    print(f"{device_name(torch.device('cpu'))}, torch {torch.__version__}, {args.rounds} rounds of "
          f"{args.pairs} pairs; CSR speedup over dense eager (median over rounds, range)")
    print(f"dense model {args.dense.name} (test accuracy {weights.meta['accuracy']:.2%}, trained at commit "
          f"{weights.meta.get('git_commit')}); its Linear layers' sparsities: "
          + "; ".join(f"{s:.0%} {scope}: {layer_sparsities(m)}" for (s, scope), m in models.items()))
    rows = [[f"{s:.0%}", scope, b, t, load, f"{statistics.median(v):.2f}x", f"{min(v):.2f}-{max(v):.2f}"]
            for (s, scope, b, t, load), v in sorted(figures.items())]
    print(tabulate(rows, headers=["sparsity", "scope", "batch", "threads", "machine", "speedup", "range"]))


if __name__ == "__main__":
    main()
