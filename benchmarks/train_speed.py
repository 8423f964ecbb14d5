"""How fast is the harness's training epoch next to the loops a user would write?

In one process, on the same data, model and batch size, it times one training epoch of:
  harness    bench.train.fit: uint8 data on the device, index-slice batches, batched normalization
             and augmentation, no host sync in the step loop;
  reference  the loop from the tutorials: a torchvision dataset with ToTensor() and Normalize,
             a DataLoader (shuffle, no workers), a plain fp32 SGD step;
  minimal    a hand-written loop over pre-normalized in-memory float tensors: the floor for the
             plain approach.
It prints images/s, ms per epoch and the ratios harness/reference and harness/minimal. With
--results it also prints, from a results folder's records, the share of a `bench run`'s wall time
spent outside training (measurement and bookkeeping).

    python benchmarks/train_speed.py --data-dir ../shared/data [--suites mlp,mnist] [--limit-train N]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision
from tabulate import tabulate

from bench import layout, records
from bench.data import Preprocess, Split, default_tensor_cache, load_dataset
from bench.models import build_model
from bench.suite import load_suite
from bench.train import fit, make_optimizer


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def model_for(suite, device: torch.device) -> torch.nn.Module:
    torch.manual_seed(0)
    channels = len(suite.data.mean)
    return build_model(suite.model.name, dict(suite.model.kwargs), 10, channels).to(device)


def time_harness(suite, split: Split, device: torch.device, compile: str | None = None) -> float:
    model = model_for(suite, device).to(memory_format=torch.channels_last)  # as Context builds it
    pre = Preprocess(suite.data, device)
    data = split.to(device)
    g = torch.Generator(device=device).manual_seed(0)
    fit(model, data.subset(suite.training.batch_size * 4), pre, suite.training, epochs=1,
        lr=suite.training.lr, generator=g, log=lambda _: None)  # warm-up
    sync(device)
    result = fit(model, data, pre, suite.training, epochs=1, lr=suite.training.lr, generator=g,
                 log=lambda _: None, compile=compile)
    if compile:
        print(f"{suite.name}: compilation ({compile}, first step) took {result.compile_seconds:.1f} s, not counted")
    sync(device)
    return result.seconds


def time_reference(suite, n: int, data_dir: Path, device: torch.device) -> float:
    transform = torchvision.transforms.Compose([
        *([torchvision.transforms.RandomCrop(32, padding=suite.data.crop_padding)] if suite.data.crop_padding else []),
        *([torchvision.transforms.RandomHorizontalFlip()] if suite.data.flip else []),
        torchvision.transforms.ToTensor(),
        torchvision.transforms.Normalize(suite.data.mean, suite.data.std)])
    if suite.data.dataset == "MNIST":
        ds = torchvision.datasets.MNIST(str(data_dir), train=True, transform=transform)
    else:
        ds = torchvision.datasets.ImageFolder(str(data_dir / suite.data.image_folder / "train"), transform=transform)
    ds = torch.utils.data.Subset(ds, range(min(n, len(ds))))
    loader = torch.utils.data.DataLoader(ds, batch_size=suite.training.batch_size, shuffle=True, drop_last=True)
    model = model_for(suite, device)
    opt = torch.optim.SGD(model.parameters(), lr=suite.training.lr, momentum=suite.training.momentum)
    sync(device)
    start = time.perf_counter()
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    sync(device)
    return time.perf_counter() - start


def time_minimal(suite, split: Split, device: torch.device) -> float:
    pre = Preprocess(suite.data, device)
    x_all = pre.normalize(split.x.to(device)).contiguous()  # plain NCHW, as users write it
    y_all = split.y.to(device)
    model = model_for(suite, device)
    opt = make_optimizer(model.parameters(), suite.training, suite.training.lr, device)
    bs = suite.training.batch_size
    sync(device)
    start = time.perf_counter()
    perm = torch.randperm(len(y_all), device=device)
    for i in range(len(y_all) // bs):
        idx = perm[i * bs:(i + 1) * bs]
        loss = F.cross_entropy(model(x_all[idx]), y_all[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    sync(device)
    return time.perf_counter() - start


def outside_training_share(results: Path) -> list[list]:
    """Per suite of `results`, the finished runs' time and the part of it spent measuring. The
    records are read as every reader reads them (bench.records): a file that is no usable record
    (cut short, malformed, a FIFO or a link) is named on stderr and left out, not a traceback."""
    rows = []
    for suite in layout.suites_with_records(results):
        recs = [r for _, r in records.reported_records(results, suite, "the outside-training share")]
        recs = [r for r in recs if r["status"] == "ok" and "measure_time_s" in r and "run_time_s" in r]
        total = sum(r["run_time_s"] for r in recs)
        measuring = sum(r["measure_time_s"] for r in recs)
        if total:
            rows.append([suite, len(recs), f"{total:.0f}", f"{measuring:.0f}",
                         f"{100 * measuring / total:.1f}%"])
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", type=Path, default=os.environ.get("BENCH_DATA_DIR"), required=False)
    p.add_argument("--suites", default="mlp,mnist")
    p.add_argument("--limit-train", type=int, help="images per epoch (default: the whole training set)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--compile", nargs="?", const="default", choices=["default", "reduce-overhead", "max-autotune"],
                   help="time the harness with torch.compile in this mode")
    p.add_argument("--loops", default="harness,reference,minimal",
                   help="which loops to time (the reference decodes every image per epoch: slow on JPEG copies)")
    p.add_argument("--results", type=Path, help="a results folder, for the outside-training share")
    args = p.parse_args()
    device = torch.device(args.device)
    rows = []
    for name in args.suites.split(","):
        suite = load_suite(name)
        split = load_dataset(suite.data, args.data_dir, default_tensor_cache(), args.limit_train).train
        n = len(split)
        loops = args.loops.split(",")
        harness = time_harness(suite, split, device, args.compile)
        reference = time_reference(suite, n, args.data_dir, device) if "reference" in loops else None
        minimal = time_minimal(suite, split, device) if "minimal" in loops else None

        def ms(t: float | None) -> str:
            return f"{1e3 * t:,.0f}" if t else "-"

        def ratio(t: float | None) -> str:
            return f"{t / harness:.2f}x" if t else "-"

        rows.append([name, suite.model.name, n, suite.training.batch_size, suite.training.precision,
                     f"{n / harness:,.0f}", ms(harness), ms(reference), ms(minimal),
                     ratio(reference), ratio(minimal)])
    print(f"device: {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'}), "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(tabulate(rows, headers=["suite", "model", "images", "batch", "precision", "harness img/s", "harness ms/epoch",
                                  "reference ms/epoch", "minimal ms/epoch", "harness vs reference",
                                  "harness vs minimal"]))
    if args.results:
        print()
        print(tabulate(outside_training_share(args.results),
                       headers=["suite", "runs", "run time (s)", "measuring (s)", "outside training"]))


if __name__ == "__main__":
    main()
