"""Is training K runs fused (bench.fused.fit_group) faster than training them one at a time?

In one process, interleaved (for each repeat: every K, alone then fused), on the same real data
subset: one epoch of each of K runs (seeds 0..K-1, the suite's budget, model and precision,
models channels-last as Context builds them), trained
  alone   by K calls of bench.train.fit, one after the other;
  fused   by one fit_group call (its probe and stacking included in the time).
It prints epochs per second of both and the ratio fused/alone (above 1: fusion pays), the
median over the repeats. It also prints what fusion adds per step: the K optimizer steps (next
to one foreach step over the same tensors, what a fused optimizer would cost) and the checks
that notice hooks changing a model.

On CUDA, `--cuda-graph` adds a third column: the fused forward and backward of plain training
captured once in a CUDA graph and replayed, the per-run optimizers stepping eagerly. That path
is written for a GPU machine and has NOT been run (the development machine has no GPU); a
capture that fails prints why and leaves the column out.

    python benchmarks/fused_throughput.py --data-dir ../shared/data [--quick] [--device cuda]
        [--ks-mlp 1,2,4,8] [--ks-mnist 1,2,4] [--layout channels-last|nchw] [--cuda-graph]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
from tabulate import tabulate

from bench.data import Dataset, Preprocess, load_dataset
from bench.fused import FitCall, FusedResult, _fused_forward, _Group, _Run, _stack, fit_group
from bench.models import build_model
from bench.suite import load_suite
from bench.train import fit


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def new_model(suite, seed: int, device: torch.device, layout: str) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = build_model(suite.model.name, dict(suite.model.kwargs), 10, len(suite.data.mean)).to(device)
    return model.to(memory_format=torch.channels_last) if layout == "channels-last" else model


def calls(suite, data: Dataset, device: torch.device, k: int, layout: str) -> list[FitCall]:
    pre = Preprocess(suite.data, device)
    return [FitCall(new_model(suite, seed, device, layout), data.train, pre, suite.training, epochs=1,
                    lr=suite.training.lr, generator=torch.Generator(device=device).manual_seed(seed),
                    log=lambda _: None) for seed in range(k)]


def time_alone(batch: list[FitCall], device: torch.device) -> float:
    sync(device)
    start = time.perf_counter()
    for c in batch:
        fit(c.model, c.data, c.preprocess, c.budget, epochs=c.epochs, lr=c.lr, generator=c.generator, log=c.log)
    sync(device)
    return time.perf_counter() - start


def time_fused(batch: list[FitCall], device: torch.device, keep_layout: bool) -> float:
    """fit_group's wall time; K=1, which fit_group leaves to fit, as a stack of one through vmap
    (the fused path's own cost). A run that did not train fused raises its error (its cause and
    traceback with it: a GPU window's log has nothing else to go by)."""
    sync(device)
    start = time.perf_counter()
    if len(batch) == 1:
        _Group(batch, keep_layout).train()
    else:
        results = fit_group(batch, keep_layout=keep_layout)
        if failed := [r for r in results if not isinstance(r, FusedResult)]:
            raise failed[0]
    sync(device)
    return time.perf_counter() - start


def time_graphed(batch: list[FitCall], device: torch.device, keep_layout: bool) -> float | str:
    """One epoch of plain training with the fused forward+backward replayed from a CUDA graph
    (static input buffers; per-run optimizers and schedules step eagerly on views of the
    stacked gradient). Untested: returns the reason when capture fails."""
    runs = [_Run(c, len(batch)) for c in batch]
    template = batch[0].model
    params = {n: _stack([r.params[n] for r in runs], keep_layout).requires_grad_() for n in runs[0].params}
    buffers = {n: _stack([r.buffers[n] for r in runs], keep_layout) for n in runs[0].buffers}
    for k, r in enumerate(runs):
        for n, t in (*r.params.items(), *r.buffers.items()):
            t.data = (params if n in params else buffers)[n].detach()[k]
    bs, steps = runs[0].bs, runs[0].steps_per_epoch
    x = _stack([c.preprocess.normalize(c.data.x[:bs]) for c in batch], keep_layout)
    y = torch.stack([c.data.y[:bs] for c in batch])
    bf16 = batch[0].budget.precision == "bf16"

    def forward_backward() -> None:
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
            out = _fused_forward(template, params, buffers, x)
            loss = F.cross_entropy(out.flatten(0, 1), y.flatten(), reduction="sum") / bs
        loss.backward()

    try:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):  # warm-up on a side stream, as torch.cuda.graphs asks
                forward_backward()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        for p in params.values():
            p.grad = None
        with torch.cuda.graph(graph):
            forward_backward()
    except Exception as e:  # noqa: BLE001 - report, do not fail the benchmark
        return f"capture failed: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    sync(device)
    start = time.perf_counter()
    orders = [torch.randperm(len(c.data), device=device, generator=c.generator) for c in batch]
    for i in range(steps):
        for k, c in enumerate(batch):
            idx = orders[k][i * bs:(i + 1) * bs]
            x[k].copy_(c.preprocess.augment(c.preprocess.normalize(c.data.x[idx]), c.generator))
            y[k].copy_(c.data.y[idx])
        graph.replay()
        for k, r in enumerate(runs):
            for n, p in r.params.items():
                p.grad = params[n].grad[k]
            r.opt.step()
            r.schedule.step()
    sync(device)
    return time.perf_counter() - start


def step_overheads(batch: list[FitCall], device: torch.device) -> dict[str, float]:
    """Per-step costs fusion adds or keeps, in microseconds: K optimizer steps vs one foreach
    step over all K runs' tensors, and the fingerprint checks of K runs."""
    runs = [_Run(c, len(batch)) for c in batch]
    for r in runs:
        for p in r.params.values():
            p.grad = torch.randn_like(p)
    every = [p for r in runs for p in r.params.values()]
    one = torch.optim.SGD(every, lr=0.01, momentum=0.9, nesterov=True, weight_decay=1e-4,
                          **({"fused": True} if device.type == "cuda" else {"foreach": True}))

    def clock(fn, n: int = 50) -> float:
        fn()
        sync(device)
        start = time.perf_counter()
        for _ in range(n):
            fn()
        sync(device)
        return (time.perf_counter() - start) / n * 1e6

    return {"K optimizer steps": clock(lambda: [r.opt.step() for r in runs]),
            "one foreach step": clock(one.step),
            "K fingerprint checks": clock(lambda: [r.changed() for r in runs])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", type=Path, default=os.environ.get("BENCH_DATA_DIR"))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--ks-mlp", default="1,2,4,8", help="K values for the mlp suite (LeNet-300-100)")
    ap.add_argument("--ks-mnist", default="1,2,4", help="K values for the mnist suite (LeNet-5)")
    ap.add_argument("--limit-train", type=int, default=4096)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--layout", choices=["channels-last", "nchw"], default="channels-last",
                    help="the models' memory layout (fused stacks keep it)")
    ap.add_argument("--precision", choices=["suite", "fp32", "bf16"], default="suite")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--cuda-graph", action="store_true", help="also time a CUDA-graph-captured fused step (untested)")
    ap.add_argument("--quick", action="store_true", help="K up to 4 and 2, 512 images, one repeat")
    args = ap.parse_args()
    if args.quick:
        args.ks_mlp, args.ks_mnist, args.limit_train, args.repeats = "1,2,4", "1,2", 512, 1
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    keep_layout = args.layout == "channels-last"
    rows, overheads = [], []
    for suite_name, ks in (("mlp", args.ks_mlp), ("mnist", args.ks_mnist)):
        suite = load_suite(suite_name)
        if args.precision != "suite":
            suite = suite.with_budget(precision=args.precision)
        data = load_dataset(suite.data, args.data_dir, limit_train=args.limit_train).to(device)
        ks = [int(k) for k in ks.split(",")]
        time_alone(calls(suite, data, device, 1, args.layout), device)  # warm-up
        times: dict[tuple[int, str], list[float | str]] = {}
        for _ in range(args.repeats):
            for k in ks:
                new_calls = partial(calls, suite, data, device, k, args.layout)
                times.setdefault((k, "alone"), []).append(time_alone(new_calls(), device))
                times.setdefault((k, "fused"), []).append(time_fused(new_calls(), device, keep_layout))
                if args.cuda_graph and device.type == "cuda":
                    times.setdefault((k, "graph"), []).append(time_graphed(new_calls(), device, keep_layout))
        for k in ks:
            alone = statistics.median(times[(k, "alone")])
            fused = statistics.median(times[(k, "fused")])
            row = [suite_name, suite.model.name, suite.training.precision, k, f"{k / alone:.2f}", f"{k / fused:.2f}",
                   f"{alone / fused:.2f}x"]
            if (k, "graph") in times:
                graphed = [t for t in times[(k, "graph")] if isinstance(t, float)]
                row.append(f"{alone / statistics.median(graphed):.2f}x" if graphed else times[(k, "graph")][0])
            rows.append(row)
        k = max(ks)
        costs = step_overheads(calls(suite, data, device, k, args.layout), device)
        overheads.append([suite_name, k, *(f"{v:.0f}" for v in costs.values())])
    headers = ["suite", "model", "precision", "K", "alone epochs/s", "fused epochs/s", "fused / alone"]
    if args.cuda_graph and device.type == "cuda":
        headers.append("graphed / alone")
    print(f"device {device}, {args.threads} thread(s), {args.limit_train} training images, layout {args.layout}, "
          f"median of {args.repeats} interleaved repeat(s); fused K=1 is a stack of one through vmap")
    print(tabulate(rows, headers=headers))
    print("\nper step, microseconds:")
    print(tabulate(overheads, headers=["suite", "K", "K optimizer steps", "one foreach step over the same tensors",
                                       "K fingerprint checks"]))


if __name__ == "__main__":
    main()
