"""How many runs per hour does each executor setting deliver on a fixed sweep?

It runs the same sweep (one `bench run` command, a fresh results folder each time, the dense
models copied in from a first warm-up so that only method runs are timed) once per setting and
repeat, the settings interleaved (every setting once, then again), so that drift in the
machine's speed hits all alike, and prints the median wall time, runs per hour and the ratio to
the first setting. Nothing else should run on the machine meanwhile.

    # CPU (the executor issue's benchmark): serial vs --jobs 2, and Ray's overhead per run
    python benchmarks/sweep_throughput.py --settings "--jobs 1" "--jobs 2" "--executor ray"
    # fused training (README: Fused training): one run per task vs four fused
    python benchmarks/sweep_throughput.py --settings "--fuse 1" "--fuse 4" --repeats 3
    # one GPU: 1, 2, 4 and 8 runs at once
    python benchmarks/sweep_throughput.py --suite cifar --device cuda --finetune-epochs 2 \\
        --settings "--jobs-per-gpu 1" "--jobs-per-gpu 2" "--jobs-per-gpu 4" "--jobs-per-gpu 8"
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tabulate import tabulate

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import layout  # noqa: E402
from bench.suite import load_suite  # noqa: E402


def bench(args: list[str], results: Path) -> float:
    """Wall seconds of one `bench run` into `results`; fails loudly if it does."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "bench", "run", *args, "--results-dir", str(results)],
                          cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"bench run {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--suite", default="mlp")
    p.add_argument("--methods", default="magnitude,random,snip",
                   help="methods of the fixed sweep (each at every sparsity of the suite)")
    p.add_argument("--seeds", default="0")
    p.add_argument("--device", default="cpu")
    p.add_argument("--epochs", default="2", help="dense epochs (the dense stage is not timed)")
    p.add_argument("--finetune-epochs", default="2")
    p.add_argument("--limit-train", default=None)
    p.add_argument("--settings", nargs="+", default=["--jobs 1", "--jobs 2"],
                   help="executor options to compare, one string each")
    p.add_argument("--repeats", type=lambda v: max(1, int(v)), default=1, help="runs of each setting, interleaved (the median counts)")
    args = p.parse_args()
    sweep = ["--suite", args.suite, "--methods", args.methods, "--seeds", args.seeds, "--device", args.device,
             "--epochs", args.epochs, "--finetune-epochs", args.finetune_epochs,
             *(["--limit-train", args.limit_train] if args.limit_train else [])]
    name = load_suite(args.suite).name  # its results folder (--suite may be a file)
    work = Path(tempfile.mkdtemp(prefix="sweep-throughput-"))
    try:
        warm = work / "warm-up"
        bench([*sweep, "--methods", "dense"], warm)  # trains and caches the dense models
        runs = None
        seconds: dict[str, list[float]] = {setting: [] for setting in args.settings}
        fused: dict[str, list[int]] = {setting: [] for setting in args.settings}  # runs trained fused, per repeat
        for repeat in range(args.repeats):
            for i, setting in enumerate(args.settings):
                results = work / f"run-{repeat}-{i}"
                shutil.copytree(layout.cache_dir(warm, name), layout.cache_dir(results, name))
                seconds[setting].append(bench([*sweep, *shlex.split(setting)], results))
                made = [json.loads(p.read_text()) for p in layout.runs_dir(results, name).glob("*.json")]
                done = len(made)
                runs = runs or done
                assert done == runs, f"{setting}: {done} runs, expected {runs}"
                fused[setting].append(sum(r["metrics"].get("fused_with", 1) > 1 for r in made))
                shutil.rmtree(results)
        medians = {setting: statistics.median(times) for setting, times in seconds.items()}
        base = medians[args.settings[0]]
        rows = [[setting, runs, " ".join(map(str, fused[setting])), f"{wall:.1f}", " ".join(f"{t:.1f}" for t in seconds[setting]),
                 f"{3600 * runs / wall:,.0f}", f"{wall / runs:.2f}", f"{base / wall:.2f}x"]
                for setting, wall in medians.items()]
        print(f"sweep: {' '.join(sweep)}; cpu cores: {os.cpu_count()}")
        print(f"median of {args.repeats} interleaved repeat(s)")
        print(tabulate(rows, headers=["setting", "runs", "fused (each repeat)", "wall (s)", "each repeat (s)", "runs/hour", "s per run",
                                      "vs first"]))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
