"""Which way of training K ResNet-20 runs at once fills a GPU best? The first step of a GPU window.

One suite (cifar by default), its model, budget and precision, a slice of its training set on the
device, timed as aggregate epochs per second (K runs' epochs over the wall time) for each K in
--ks and each way:
  alone      the K runs one after another with bench.train.fit (timed at K=1: its rate is K's);
  fused      one fit_group call (bench.fused: vmap over stacked weights, grouped convolutions),
             with the models channels-last, and again NCHW (each K warmed up first, untimed, on
             two batches: cuDNN autotunes its grouped convolutions' new shapes);
  graph      the fused forward and backward captured once in a CUDA graph and replayed (per-run
             optimizers step eagerly), channels-last;
  streams    K models in one process, each one's training step captured in its own CUDA graph
             and replayed on its own stream: concurrency without grouped convolutions;
  processes  K processes at once, each training one run (the time after all of them have
             loaded, from a barrier to the last one's end): what --jobs-per-gpu K gets (K <= 8).
Before the cells, `check`: do two runs trained fused, in each layout the sweep may stack them in,
get the models their own training gives?
The fused path had never run on CUDA, and a wrong model (another run's batches or BatchNorm
statistics) raises nothing: where they differ, the sweep does not fuse in that layout.
A way that fails (a capture that does not work, out of memory) prints why, with its traceback,
and is left out; each cell has a time budget. The result is printed as a table and written as JSON (--out, after every
cell, `complete` false until the last: a bench cut short leaves what it measured), with the
choice for the sweep (`choose`): the fastest K of `fused` or `fused nchw` up to --max-fuse (with its layout, the
sweep's --fuse-layout) if its layout's check passed and it beats `alone` by --margin and what the sweep gets without fusion,
`processes` at K=4, else none (bench.fused.DEFAULT_FUSE is set from such figures, by hand, in a commit that cites
them).

The JSON also says what the choice was measured under (`measured_on`: the device, torch and CUDA,
a hash of the code and suite that fused training runs, and the choice's settings). `--reuse FILE`
prints a saved bench's choice ("K LAYOUT") where it was measured whole under the same, and exits 1
naming what differs otherwise: gpu_session.sh keeps a window's choice in the results folder, so that
later windows on that GPU spend the bench's minutes on the sweep.

    python benchmarks/fused_gpu.py --data-dir DIR [--suite cifar] [--ks 1,4,8,16,32] [--out fused.json]
        [--quick]   # a CPU dry run: 256 images, K 1 and 2, fp32, no CUDA ways
    python benchmarks/fused_gpu.py --reuse fused.json [--unfused-jobs 4] [--quick]
    python benchmarks/fused_gpu.py --choice-of fused.json
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import multiprocessing as mp
import os
import queue
import statistics
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fused_throughput import calls, sync, time_alone, time_fused, time_graphed  # noqa: E402

from bench import files  # noqa: E402
from bench.fused import FusedResult, autocast_reaches_vmap, fit_group  # noqa: E402
from bench.data import Dataset, Preprocess, Split, default_tensor_cache, load_dataset  # noqa: E402
from bench.suite import Suite, load_suite  # noqa: E402


def data_for(suite: Suite, root: Path | None, limit: int, device: torch.device) -> Dataset:
    # From the tensor cache that gpu_session.sh fills (or the images, where it holds none).
    return load_dataset(suite.data, root, default_tensor_cache(), limit_train=limit, limit_test=256).to(device)


def time_streams(suite: Suite, data: Dataset, device: torch.device, k: int) -> float:
    """K runs in one process, each step of each run captured in its own CUDA graph and replayed
    on its own stream (the optimizer step inside the graph: capturable SGD)."""
    batch = calls(suite, data, device, k, "channels-last")
    bs = min(suite.training.batch_size, len(data.train))
    steps = len(data.train) // bs
    streams = [torch.cuda.Stream() for _ in batch]
    graphs, inputs = [], []
    for c, stream in zip(batch, streams):
        opt = torch.optim.SGD(c.model.parameters(), lr=c.lr, momentum=suite.training.momentum, nesterov=True,
                              weight_decay=suite.training.weight_decay)
        x = c.preprocess.normalize(c.data.x[:bs]).clone()
        y = c.data.y[:bs].clone()

        def step(model=c.model, opt=opt, x=x, y=y) -> None:
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=suite.training.precision == "bf16"):
                loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=False)

        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(3):
                step()
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, stream=stream):
            step()
        graphs.append(graph)
        inputs.append((x, y))
    sync(device)
    start = time.perf_counter()
    orders = [torch.randperm(len(c.data), device=device, generator=c.generator) for c in batch]
    for stream in streams:  # the permutations are made on this stream, and read on those
        stream.wait_stream(torch.cuda.current_stream())
    for i in range(steps):
        for c, stream, graph, (x, y), order in zip(batch, streams, graphs, inputs, orders):
            with torch.cuda.stream(stream):
                idx = order[i * bs:(i + 1) * bs]
                x.copy_(c.preprocess.augment(c.preprocess.normalize(c.data.x[idx]), c.generator))
                y.copy_(c.data.y[idx])
                graph.replay()
    sync(device)
    return time.perf_counter() - start


def _process(suite_name: str, root: str | None, limit: int, device: str, barrier, results) -> None:
    suite = load_suite(suite_name)
    dev = torch.device(device)
    torch.backends.cudnn.benchmark = dev.type == "cuda"  # as main() and a sweep's worker set it
    data = data_for(suite, Path(root) if root else None, limit, dev)
    time_alone(calls(suite, data, dev, 1, "channels-last"), dev)  # warm-up (cuDNN autotuning)
    (call,) = calls(suite, data, dev, 1, "channels-last")
    barrier.wait()
    start = time.time()
    time_alone([call], dev)
    results.put((start, time.time()))


def time_processes(suite: Suite, root: Path | None, limit: int, device: torch.device, k: int,
                   timeout_s: float = 120.0) -> float:
    """K processes, each training one run's epoch; from the barrier to the last end. A process
    that dies (its traceback goes to stderr) or a way that outlasts `timeout_s` raises at once,
    the others killed: they would wait at the barrier, and this for their results, forever."""
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(k), ctx.Queue()
    procs = [ctx.Process(target=_process, args=(suite.name, str(root) if root else None, limit, str(device),
                                                barrier, results)) for _ in range(k)]
    for p in procs:
        p.start()
    deadline = time.monotonic() + timeout_s
    times = []
    try:
        while len(times) < k:
            try:
                times.append(results.get(timeout=1.0))
            except queue.Empty:
                if failed := [p.exitcode for p in procs if p.exitcode not in (None, 0)]:
                    raise RuntimeError(f"a process ended with exit code {failed[0]}") from None
                if time.monotonic() > deadline:
                    raise TimeoutError(f"not done after {timeout_s:.0f} s") from None
    finally:
        for p in procs:
            if p.is_alive() and len(times) < k:
                p.kill()
            p.join()
    return max(end for _, end in times) - min(start for start, _ in times)


# How far a fused run's tensors may lie from its own training's, relative to how far that training
# moved them (the largest change of each tensor). In fp32 the kernels' summation orders differ,
# and BatchNorm's backward over tiny batches amplifies that: on the development CPU (cifar's
# ResNet-20, two runs, two steps of 64 images, a constant rate) up to 0.022 stacked channels-last
# and 0.28 stacked NCHW, where a run given the other's batches lay 2.3 away; no fp32 tolerance
# tells both layouts' rounding from a fault on a GPU none has measured. In float64 the same
# comparison gave 2e-13 in both layouts (a small ResNet on mnist, development run): the check runs
# there, so that only a fault of the fused path, not rounding, can fail it.
CHECK_TOLERANCE = 1e-6


class _Float64(Preprocess):
    """The suite's preprocessing, its images in float64, for the check's float64 training."""

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return super().normalize(x).double()


def check_fused(suite: Suite, data: Dataset, device: torch.device, layout: str = "channels-last") -> str:
    """'ok' if two runs trained fused (fit_group, stacked in `layout`: the `fused` way's
    channels-last or the `fused nchw` way's NCHW) end where their own training (fit) does after
    two steps of the suite's model, in float64 (models and images; see CHECK_TOLERANCE) at the
    suite's rate held constant (its warm-up would start at a thousandth of it, and nothing would
    move), each tensor within CHECK_TOLERANCE of how far it moved; else the first that differs. A
    run that did not train fused raises its error (`cell` reports it, with the traceback of its
    cause). On a GPU, TF32 is off meanwhile (float64 has no TF32 path, so that is belt and braces)."""
    suite = suite.with_budget(precision="fp32", schedule="constant")
    bs = min(suite.training.batch_size, len(data.train) // 2) or 1
    data = dataclasses.replace(data, train=Split(data.train.x[:2 * bs], data.train.y[:2 * bs]))
    suite = suite.with_budget(batch_size=bs)
    tf32 = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        fused, alone = calls(suite, data, device, 2, layout), calls(suite, data, device, 2, layout)
        for c in (*fused, *alone):
            c.model, c.preprocess = c.model.double(), _Float64(suite.data, device)
        start = [{n: t.detach().clone() for n, t in c.model.state_dict().items()} for c in alone]
        results = fit_group(fused, keep_layout=layout == "channels-last")
        for c in alone:
            c.fit_alone()
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = tf32
    if failed := [r for r in results if not isinstance(r, FusedResult)]:
        raise failed[0]  # (the cell reports it, and prints its traceback)
    for k, (f, a) in enumerate(zip(fused, alone)):
        mine, own = f.model.state_dict(), a.model.state_dict()
        for name, t in own.items():
            moved = (t - start[k][name]).abs().max().item() if t.is_floating_point() else 0.0
            off = (mine[name].double() - t.double()).abs().max().item()
            if not off <= CHECK_TOLERANCE * moved and off > 0:
                return f"run {k}'s {name} lies {off:.3g} from its own training's, which moved it {moved:.3g}"
    return "ok"


UNFUSED_JOBS = 4  # gpu_session.sh's --jobs-per-gpu for a sweep without fusion, unless it is given one
# The largest --fuse the sweep gets, whatever K measured fastest. A fused task's records come back
# only when all of its runs have ended, and gpu_session.sh ends the sweep about two minutes after
# it stops starting tasks: a task still running then is lost whole. Estimated from the H100
# window's figures (benchmarks/RESULTS.md, GPU: a cifar epoch 1.77 s alone, about 2.6 s of
# measurement a run), a task of 8 fine-tunings of 10 epochs, fused at 2-3x the rate of one run,
# takes 70-90 s, and one of 16 about 2-2.5 minutes, past that margin.
MAX_FUSE = 8


# The fused ways the sweep can take, by the --fuse-layout that takes them (cuDNN's grouped
# convolutions may be faster NCHW than channels-last: pytorch/pytorch#70954)
SWEEP_LAYOUTS = {"fused": "model", "fused nchw": "nchw"}


def choose(rate: dict[tuple[str, int], float | str], margin: float, unfused_jobs: int = UNFUSED_JOBS,
           max_fuse: int = MAX_FUSE) -> tuple[int, str] | None:
    """The sweep's --fuse and --fuse-layout: the K up to `max_fuse` and the layout whose fused rate
    (`fused`, `fused nchw`) is highest, where it beats one run alone by `margin` (the noise
    between cells) and the rate the sweep would get without fusion, the `processes` way at
    `unfused_jobs` (its --jobs-per-gpu) where it was measured; else None. Judged against one run
    alone only, fusion at 1.3x its rate would have been chosen over four processes at 2.6x, and
    the sweep would have run at half the speed it could. (A fused sweep runs two fused tasks a
    GPU: at least the rate of one.)"""
    fused = {(k, SWEEP_LAYOUTS[way]): r for (way, k), r in rate.items()
             if way in SWEEP_LAYOUTS and 1 < k <= max_fuse and isinstance(r, float)}
    alone = rate.get(("alone", 1))
    if not fused or not isinstance(alone, float):
        return None
    best = max(fused, key=fused.get)
    unfused = rate.get(("processes", unfused_jobs))
    floor = max(margin * alone, unfused if isinstance(unfused, float) else 0.0)
    return best if fused[best] > floor else None


def rates(seconds: dict[tuple[str, int], list[float | str]], epoch_share: float) -> dict[tuple[str, int], float | str]:
    """Aggregate epochs per second per (way, K): K runs' share of an epoch each over the median of
    the cell's timed seconds, or why it has none (its first error or skip)."""
    out: dict[tuple[str, int], float | str] = {}
    for (way, k), got in seconds.items():
        numbers = [s for s in got if isinstance(s, float)]
        out[(way, k)] = k * epoch_share / statistics.median(numbers) if numbers else got[0]
    return out


def cell(fn: Callable[[], float | str], budget_s: float, spent: dict[str, float]) -> float | str:
    """fn's seconds, or why there are none (an error, or the way's time budget already spent)."""
    if spent.get("total", 0.0) > budget_s:
        return "skipped: time budget spent"
    start = time.perf_counter()
    try:
        result = fn()
    except Exception as e:  # noqa: BLE001 - report it, go on with the other ways
        result = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:120]
        traceback.print_exc()  # into the session's fused-bench.log: what a GPU window's failure was
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    if torch.cuda.is_available():
        # Every cell starts on the default stream: a capture that failed in `torch.cuda.graph`
        # left its capture stream current, and every later cell would have run there (torch 2.11,
        # the GPU machines': its __exit__ raises in capture_end before it restores the stream;
        # torch 2.15 restores it whatever happens).
        torch.cuda.set_stream(torch.cuda.default_stream())
    spent["total"] = spent.get("total", 0.0) + time.perf_counter() - start
    return result


ROOT = Path(__file__).resolve().parent.parent
# The code that a fused task's speed and its check come from: changed, the saved choice is measured again.
SPEED_CODE = ("bench/fused.py", "bench/train.py", "bench/models.py", "bench/data.py", "benchmarks/fused_gpu.py",
              "benchmarks/fused_throughput.py")


def measured_on(suite: Suite, device: torch.device, args: argparse.Namespace) -> dict[str, object]:
    """What a bench's choice holds for: the device, torch and CUDA (kernels, vmap's batch rules and
    autocast), the code and suite that fused training runs (SPEED_CODE, hashed with the suite as
    loaded), and the settings the choice is judged by (the Ks timed, a --quick dry run's or not).
    A window under the same can reuse it."""
    code = hashlib.sha256()
    for name in SPEED_CODE:
        code.update(name.encode() + b"\0" + (ROOT / name).read_bytes() + b"\0")
    code.update(json.dumps(dataclasses.asdict(suite), sort_keys=True, default=str).encode())
    return {"device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu", "torch": torch.__version__,
            "cuda": torch.version.cuda, "code": code.hexdigest()[:16], "quick": args.quick, "ks": args.ks,
            "margin": args.margin, "unfused_jobs": args.unfused_jobs, "max_fuse": args.max_fuse}


MAX_KEPT_BYTES = 2**20  # a kept bench's JSON is a few KB; --reuse reads no more than this


def read_kept(path: Path, refusal: str) -> Any:
    """A bench's JSON, read as a file of the results folder (committed, carried to the window):
    a regular file (no FIFO waited on) of at most MAX_KEPT_BYTES; else exit 1 with one line,
    `refusal` and why (no file, or bench.files.read_json's reason)."""
    try:
        return files.read_json(path, MAX_KEPT_BYTES)
    except FileNotFoundError:
        sys.exit(f"{path}: {refusal}: no such file")
    except files.UnreadableFile as e:
        sys.exit(f"{path}: {refusal}: {e}")


def reused_choice(saved: dict[str, object], present: dict[str, object]) -> str:
    """A saved bench's choice as `--fuse` and `--fuse-layout` ("K LAYOUT"; "1 model": no fusion),
    where it was measured whole (a bench cut short chose from part of its cells) under `present`;
    else ValueError naming what differs."""
    if not saved.get("complete"):
        raise ValueError("the saved bench was cut short")
    was = saved.get("measured_on")
    if not isinstance(was, dict):
        raise ValueError("the saved bench does not say what it was measured on")
    if differs := [f"{key} {was.get(key)!r}, now {value!r}" for key, value in present.items() if was.get(key) != value]:
        raise ValueError(f"measured on other terms: {'; '.join(differs)}")
    return choice_of(saved, present.get("max_fuse") if isinstance(present.get("max_fuse"), int) else MAX_FUSE)


def choice_of(saved: dict[str, object], limit: int = MAX_FUSE) -> str:
    """A bench's choice as `--fuse` and `--fuse-layout` ("K LAYOUT"; "1 model": no fusion), checked,
    whatever it was measured on and whether it ran whole: what gpu_session.sh reads into shell
    words, compares arithmetically and passes to bench run. A file in the results folder
    (committed, carried) is no code, and must not become any; ValueError otherwise."""
    k, layout = saved.get("fuse") or 1, saved.get("fuse_layout") or "model"
    if type(k) is not int or not 1 <= k <= limit or layout not in SWEEP_LAYOUTS.values():
        raise ValueError(f"the saved choice is no --fuse 1..{limit} and --fuse-layout "
                         f"{'/'.join(SWEEP_LAYOUTS.values())}: {str(saved.get('fuse'))[:40]!r} {str(saved.get('fuse_layout'))[:40]!r}")
    return f"{k} {layout}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", type=Path, default=os.environ.get("BENCH_DATA_DIR"))
    ap.add_argument("--suite", default="cifar")
    ap.add_argument("--ks", default="1,4,8,16,32")
    ap.add_argument("--limit-train", type=int, default=10240, help="training images per run and epoch")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--budget", type=float, default=120.0, help="seconds for all cells together")
    ap.add_argument("--margin", type=float, default=1.2, help="fused must beat alone by this factor to be chosen")
    ap.add_argument("--unfused-jobs", type=int, default=UNFUSED_JOBS,
                    help="runs at once on the GPU in the sweep without fusion (its --jobs-per-gpu): fused must beat "
                         "that many processes, which are timed too")
    ap.add_argument("--max-fuse", type=int, default=MAX_FUSE,
                    help="the largest K the sweep may get (a fused task's records come back when all its runs end)")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--quick", action="store_true", help="a CPU dry run: 256 images, K 1 and 2, fp32")
    ap.add_argument("--reuse", type=Path, metavar="FILE",
                    help="time nothing: print FILE's choice (K LAYOUT) where it was measured under the same device, "
                         "torch, code, suite and settings, else exit 1 saying what differs")
    ap.add_argument("--choice-of", type=Path, metavar="FILE",
                    help="time nothing: print FILE's choice and whether its bench ran whole (K LAYOUT True|False), "
                         "whatever it was measured on: a window's own bench, which may have been cut short")
    args = ap.parse_args()
    if args.choice_of:
        saved = read_kept(args.choice_of, "no choice")
        try:
            print(choice_of(saved, args.max_fuse), saved.get("complete") is True)
        except (ValueError, AttributeError) as e:  # not a bench's object
            sys.exit(f"{args.choice_of}: no choice: {e}")
        return
    device = torch.device("cuda" if torch.cuda.is_available() and not args.quick else "cpu")
    if args.quick:
        args.ks, args.limit_train, args.repeats = "1,2", 256, 1
    torch.backends.cudnn.benchmark = device.type == "cuda"
    suite = load_suite(args.suite)
    if args.quick:  # bf16 autocast on a CPU without bf16 units is slow, and checks nothing more
        suite = suite.with_budget(precision="fp32")
    present = measured_on(suite, device, args)
    if args.reuse:
        saved = read_kept(args.reuse, "not reused")
        try:
            print(reused_choice(saved, present))
        except (ValueError, AttributeError) as e:  # not a bench's object
            sys.exit(f"{args.reuse}: not reused: {e}")
        return
    data = data_for(suite, args.data_dir, args.limit_train, device)
    ks = sorted({int(k) for k in args.ks.split(",")} | ({args.unfused_jobs} if device.type == "cuda" else set()))
    epoch_share = args.limit_train / 50000 if args.suite == "cifar" else args.limit_train / 60000
    # Two batches per run, the shapes of the timed epoch: cuDNN (benchmark mode) autotunes every new
    # convolution shape at its first use, and each K's grouped convolutions are new; `alone` is
    # warmed up below, `graph` and `streams` before their capture, `processes` before the barrier.
    bs = min(suite.training.batch_size, len(data.train))
    warm_data = dataclasses.replace(data, train=Split(data.train.x[:2 * bs], data.train.y[:2 * bs]))
    warmed: set[tuple[str, int]] = set()
    # A bf16 suite fuses only where autocast reaches the operators under vmap (bench.fused
    # refuses it elsewhere: its runs would train in fp32): there the fused ways are timed in fp32,
    # named so, for what a window can learn of fusion's speed, and never chosen for the sweep.
    try:
        fusable = suite.training.precision != "bf16" or autocast_reaches_vmap(device.type)
    except Exception:  # noqa: BLE001 - the probe's fault must not cost the window its bench
        traceback.print_exc()
        fusable = False
    fused_suite, tag = (suite, "") if fusable else (suite.with_budget(precision="fp32"), " fp32")
    if not fusable:
        print(f"bf16 autocast does not reach operators under vmap on {device.type} (torch {torch.__version__}): "
              f"the sweep cannot fuse {args.suite}; the fused ways are timed in fp32, for information", flush=True)

    def fused(layout: str, k: int) -> Callable[[], float | str]:
        def timed() -> float:
            if (layout, k) not in warmed:  # in the cell (its budget, its error), not in its seconds
                time_fused(calls(fused_suite, warm_data, device, k, layout), device, layout == "channels-last")
                warmed.add((layout, k))
            return time_fused(calls(fused_suite, data, device, k, layout), device, layout == "channels-last")
        return timed

    ways: dict[str, Callable[[int], Callable[[], float | str]]] = {
        f"fused{tag}": lambda k: fused("channels-last", k),
        f"fused{tag} nchw": lambda k: fused("nchw", k),
    }
    if device.type == "cuda":
        ways[f"graph{tag}"] = lambda k: lambda: time_graphed(calls(fused_suite, data, device, k, "channels-last"),
                                                             device, True)
        ways["streams"] = lambda k: lambda: time_streams(suite, data, device, k)
        ways["processes"] = lambda k: (lambda: time_processes(suite, args.data_dir, args.limit_train, device, k)) \
            if k <= 8 else (lambda: "not timed above K=8: each process holds a CUDA context")
    time_alone(calls(suite, data, device, 1, "channels-last"), device)  # warm-up
    name = present["device"]
    spent: dict[str, float] = {}
    seconds: dict[tuple[str, int], list[float | str]] = {}
    # each fused way the sweep can take is checked in its own layout: `choose` may pick either
    checks = {way: cell(lambda layout=layout: check_fused(suite, data, device, layout), args.budget, spent)
              for way, layout in (("fused", "channels-last"), ("fused nchw", "nchw"))}
    check = checks["fused"]

    def report(complete: bool) -> tuple[dict[tuple[str, int], float | str], tuple[int, str] | None]:
        """The rates so far and the choice they support, written (--out) after every cell: a bench
        that the session's time limit cuts short leaves what it measured (it left no file, and the
        sweep ran unfused). A partial choice waits for the unfused sweep's rate (`processes` at
        --unfused-jobs), without which fusion is judged against one run alone (`choose`). Fused runs
        that differ from their own training (`check`) are not chosen, however fast."""
        rate = rates(seconds, epoch_share)
        judged = complete or "processes" not in ways or ("processes", args.unfused_jobs) in rate
        checked = {key: r for key, r in rate.items() if checks.get(key[0], "ok") == "ok"}
        choice = choose(checked, args.margin, args.unfused_jobs, args.max_fuse) if judged else None
        if args.out:
            files.write_json_atomic(args.out, {"device": name, "suite": args.suite, "measured_on": present,
                                               "fusable": fusable,
                                               "fuse": choice and choice[0],
                                               "fuse_layout": choice and choice[1], "complete": complete,
                                               "check": check, "check_nchw": checks["fused nchw"], "rates": {f"{w} K={k}": r for (w, k), r in rate.items()}})
        return rate, choice

    for _ in range(args.repeats):
        seconds.setdefault(("alone", 1), []).append(
            cell(lambda: time_alone(calls(suite, data, device, 1, "channels-last"), device), args.budget, spent))
        report(False)
        for k in ks:
            for way, make in ways.items():
                seconds.setdefault((way, k), []).append(cell(make(k), args.budget, spent))
                report(False)
    rate, choice = report(True)
    alone = rate[("alone", 1)]
    rows = [[way, k, f"{r:.4g}" if isinstance(r, float) else r,
             f"{r / alone:.2f}x" if isinstance(r, float) and isinstance(alone, float) else "-"]
            for (way, k), r in rate.items()]
    from tabulate import tabulate

    print(f"{args.suite} ({suite.model.name}, {suite.training.precision}) on {name}: aggregate epochs per second, "
          f"{args.limit_train} images per run and epoch, median of {args.repeats}; {spent['total']:.0f} s spent")
    print(tabulate(rows, headers=["way", "K", "epochs/s", "vs one alone"]))
    print(f"fused runs against their own training: {check}; stacked NCHW: {checks['fused nchw']}")
    failed = ", ".join(way for way, result in checks.items() if result != "ok")
    print(f"choice for the sweep: {f'--fuse {choice[0]} --fuse-layout {choice[1]}' if choice else 'no fusion'}"
          f"{f' (the fused runs failed the check: {failed} left out)' if failed else ''}"
          f"{'' if fusable else f' (a {suite.training.precision} suite does not fuse on this device)'}")

if __name__ == "__main__":
    main()
