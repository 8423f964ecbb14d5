"""Micro-benchmarks of the harness's hot paths, with pytest-benchmark: training steps of each
shipped suite's model, batch preparation, each measurement function, and CLI startup.

They run apart from the unit tests (pytest collects tests/ only) and assert nothing about
speed: they print figures and save them, so that two commits compare as ratios.

    .venv/bin/python -m pytest benchmarks/test_hot_paths.py --benchmark-autosave   # saves .benchmarks/
    .venv/bin/python -m pytest benchmarks/test_hot_paths.py --benchmark-compare    # against the last save
    .venv/bin/python -m pytest benchmarks/test_hot_paths.py -k cli                 # one group

Inputs are random tensors of each suite's image shape (the speed of a step does not depend on
the pixels), so no dataset is needed. Run them on an idle machine: a figure taken beside
another job is not a figure.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bench import measure
from bench.data import Preprocess, Split
from bench.models import build_model
from bench.suite import load_suite
from bench.train import fit

ROOT = Path(__file__).resolve().parent.parent
SUITES = ["mlp", "mnist", "cifar"]
BATCH = 128
STEPS = 8
SHAPES = {"MNIST": (1, 28, 28), "CIFAR10": (3, 32, 32)}


def suite_inputs(name: str, n: int = BATCH):
    """The suite's model, its preprocessing and `n` uint8 images of its image shape, on the CPU."""
    suite = load_suite(name)
    shape = SHAPES[suite.data.dataset]
    model = build_model(suite.model.name, suite.model.kwargs, 10, shape[0])
    model = model.to(memory_format=torch.channels_last)
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, *shape), dtype=torch.uint8, generator=generator)
    labels = torch.randint(0, 10, (n,), generator=generator)
    return suite, model, Preprocess(suite.data, torch.device("cpu")), images, labels


@pytest.mark.parametrize("name", SUITES)
def test_training_steps(benchmark, name):
    """One epoch over BATCH * STEPS images of the suite's own loop (bench.train.fit: its batch
    size, optimizer, schedule, precision and augmentation), so that a change to the loop shows."""
    suite, model, pre, images, labels = suite_inputs(name, BATCH * STEPS)
    data = Split(images, labels)
    generator = torch.Generator().manual_seed(1)
    benchmark.group = f"training: an epoch of {BATCH * STEPS} images"
    benchmark.pedantic(fit, args=(model, data, pre, suite.training),
                       kwargs={"epochs": 1, "lr": suite.training.lr, "generator": generator, "log": lambda _: None},
                       rounds=5, warmup_rounds=1)


@pytest.mark.parametrize("name", SUITES)
def test_batch_preparation(benchmark, name):
    """uint8 images to normalized, augmented, channels-last floats."""
    _, _, pre, images, _ = suite_inputs(name)
    generator = torch.Generator().manual_seed(1)
    benchmark.group = "batch preparation (batch 128)"
    benchmark(lambda: pre.augment(pre.normalize(images), generator))


MEASUREMENTS = {
    "count_nonzeros": lambda model, example: measure.count_nonzeros(model),
    "flops": lambda model, example: measure.flops(model, example),
    "size_bytes": lambda model, example: measure.size_bytes(model),
    "peak_inference_memory": lambda model, example: measure.peak_inference_memory(model, example),
}


@pytest.mark.parametrize("what", sorted(MEASUREMENTS))
@pytest.mark.parametrize("name", SUITES)
def test_measurement(benchmark, name, what):
    """A measurement function on the suite's model with 90% of its weights zeroed."""
    _, model, pre, images, _ = suite_inputs(name)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.mul_(torch.rand(p.shape, generator=torch.Generator().manual_seed(2)) > 0.9)
    model.eval()
    example = pre.normalize(images[:1])
    benchmark.group = f"measurement: {what}"
    benchmark.pedantic(MEASUREMENTS[what], args=(model, example), rounds=5, warmup_rounds=1)


@pytest.mark.parametrize("command", [["--help"], ["list", "methods"], ["list", "suites"],
                                     ["leaderboard", "--show", "--suite", "mlp"]], ids=" ".join)
def test_cli_startup(benchmark, command):
    """Wall time of a `bench` command in a fresh interpreter, as a user waits for it."""
    def run():
        subprocess.run([sys.executable, "-m", "bench", *command], cwd=ROOT, check=True, capture_output=True)

    benchmark.group = "CLI (fresh process)"
    benchmark.pedantic(run, rounds=5, warmup_rounds=1)
