"""Shared fixtures: the real data folder, and a `bench` runner in a subprocess.

The tests use the real MNIST (small subsets). The data folder is $BENCH_DATA_DIR, else the shared
offline copies beside the checkout; a machine with neither fails loudly rather than skipping.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def data_root() -> Path:
    return Path(os.environ.get("BENCH_DATA_DIR", ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    path = data_root()
    assert (path / "MNIST" / "raw").is_dir(), (
        f"the tests need the real MNIST under {path}/MNIST/raw; set BENCH_DATA_DIR")
    return path


@pytest.fixture(scope="session")
def cifar_dir() -> Path:
    """A data folder holding CIFAR-10 (official layout or the JPEG copy); the GPU tests need
    only this, so that a GPU machine is sent CIFAR-10 alone."""
    path = data_root()
    assert (path / "cifar10-jpeg" / "train").is_dir() or (path / "cifar-10-batches-py").is_dir(), (
        f"the cifar tests need CIFAR-10 under {path} (cifar-10-batches-py or cifar10-jpeg); set BENCH_DATA_DIR")
    return path


def run_bench(args: list[str], *, pythonpath: list[Path] = (), env: dict[str, str] | None = None,
              timeout: int = 600) -> subprocess.CompletedProcess:
    """Run `python -m bench ARGS` in a fresh process, as a user would."""
    full_env = {**os.environ, **(env or {})}
    full_env["PYTHONPATH"] = os.pathsep.join([*map(str, pythonpath), str(ROOT),
                                              full_env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-m", "bench", *args], capture_output=True, text=True,
                          timeout=timeout, env=full_env, cwd=ROOT)


def make_distribution(folder: Path, name: str, code: str, entry_points: dict[str, str]) -> Path:
    """A fake installed distribution: a module plus a .dist-info with `bench.methods` entry points,
    found by importlib.metadata once `folder` is on sys.path."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.py").write_text(textwrap.dedent(code))
    info = folder / f"{name}-0.1.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    lines = "\n".join(f"{k} = {v}" for k, v in entry_points.items())
    (info / "entry_points.txt").write_text(f"[bench.methods]\n{lines}\n")
    return folder


@pytest.fixture(scope="session")
def mnist(data_dir):
    """The real MNIST, loaded once per test session (CPU tensors)."""
    from bench.data import load_dataset
    from bench.suite import load_suite

    return load_dataset(load_suite("mlp").data, data_dir)


@pytest.fixture
def make_context(data_dir, tmp_path, mnist):
    """make_context(suite="mlp", seed=0, limit_train=2000, limit_test=1000, epochs=1,
    finetune_epochs=1, **budget) -> a bench Context on a small real subset, on CPU, whose dense
    model is trained on first use; for calling a method's run(ctx) directly in a test."""
    from bench.context import Context
    from bench.data import Dataset, default_tensor_cache, load_dataset
    from bench.suite import load_suite

    def make(suite: str = "mlp", seed: int = 0, limit_train: int = 2000, limit_test: int = 1000,
             epochs: int = 1, finetune_epochs: int = 1, **budget):
        s = load_suite(suite).with_budget(epochs=epochs, finetune_epochs=finetune_epochs,
                                          limit_train=limit_train, limit_test=limit_test, **budget)
        full = mnist if s.data.dataset == "MNIST" else load_dataset(s.data, data_dir, default_tensor_cache())
        data = Dataset(full.train.subset(limit_train), full.test.subset(limit_test), full.source, full.num_classes)
        return Context(s, data, torch.device("cpu"), seed, log=lambda msg: None)

    return make
