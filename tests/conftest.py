"""Shared fixtures: the real data folder, `bench` in this process or in a subprocess, plugins.

The tests use the real MNIST (small subsets). The data folder is $BENCH_DATA_DIR, else the shared
offline copies beside the checkout; a machine with neither fails loudly rather than skipping.

Most commands run in this process (`bench.cli.main`, the fixture `bench`), their runs too (the
inline executor): a process pays about 7 s of imports before doing anything. Only the tests of process behaviour (kill -9, signals, a
worker's death, concurrent commands, exit codes seen from outside) start real processes
(`run_bench`). Most runs use tests/mlp-fast.yaml, the mlp suite measured in the torch runtime
alone; the tests of the deploy step use the shipped suites.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
FAST = ROOT / "tests" / "mlp-fast.yaml"  # --suite for runs that do not test deployment


@pytest.fixture(autouse=True)
def _no_terminal_width(monkeypatch):
    """xdist sets COLUMNS in its workers, which bench reads as a terminal's width (it wraps
    `bench list methods` then): a test runs as a piped command does, unless it sets a width."""
    monkeypatch.delenv("COLUMNS", raising=False)


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("PYTEST_XDIST_WORKER"):
        torch.set_num_threads(1)  # the cores are shared between the test workers


OPT_IN = {"ray": "-m ray", "session": "-m session"}  # tiers CI runs as their own step (README: Tests)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The opt-in tiers run only when `-m` names them; otherwise each is skipped with the command
    that runs it, so that no test is left out without saying so."""
    chosen = config.getoption("-m") or ""
    for item in items:
        for marker, option in OPT_IN.items():
            if marker in item.keywords and marker not in chosen:
                item.add_marker(pytest.mark.skip(reason=f"opt-in tier '{marker}': run it with pytest {option}"))


def data_root() -> Path:
    return Path(os.environ.get("BENCH_DATA_DIR", ROOT.parent / "shared" / "data")).resolve()


# CI sets a relative $BENCH_DATA_DIR; tests that change directory, and the subprocesses they
# start, would read it from elsewhere, so every test sees the absolute path.
os.environ["BENCH_DATA_DIR"] = str(data_root())


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
    full_env = {**{k: v for k, v in os.environ.items() if k != "COLUMNS"}, **(env or {})}  # xdist sets COLUMNS
    full_env["PYTHONPATH"] = os.pathsep.join([*map(str, pythonpath), str(ROOT),
                                              full_env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-m", "bench", *args], capture_output=True, text=True,
                          timeout=timeout, env=full_env, cwd=ROOT)


def as_from_a_terminal() -> None:
    """`preexec_fn` for a command a test sends Ctrl-C (SIGINT): a command started in the
    background of a non-interactive shell (`pytest ... &`) inherits SIGINT ignored, and Python
    then never raises KeyboardInterrupt; a terminal's foreground command has it default."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


@dataclass
class Ran:
    """What a `bench` command did, in the shape of subprocess.CompletedProcess."""

    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def plugins(monkeypatch):
    """plugins(folder, ...) makes the distributions in `folder` (see make_distribution) installed
    for this test, in this process, as if `pip install` had put them on sys.path: the registry
    discovers them, and forgets them, their modules and their broken imports after the test."""
    from bench import board, registry

    registry.discover()
    methods, sources, broken = dict(registry.METHODS), dict(registry.SOURCES), dict(registry.BROKEN)
    imported = set(registry._imported)
    folders: list[Path] = []

    def install(*sites: Path) -> None:
        for site in sites:
            monkeypatch.syspath_prepend(str(site))
            folders.append(Path(site).resolve())
        registry._discovered = False
        board._plugins.cache_clear()
        registry.discover()

    yield install
    registry.METHODS.clear()
    registry.METHODS.update(methods)
    registry.SOURCES.clear()
    registry.SOURCES.update(sources)
    registry.BROKEN.clear()
    registry.BROKEN.update(broken)
    registry._imported.clear()
    registry._imported.update(imported)
    registry._discovered = True
    board._plugins.cache_clear()
    for name, module in list(sys.modules.items()):
        where = getattr(module, "__file__", None)
        if where and any(Path(where).resolve().is_relative_to(f) for f in folders):
            del sys.modules[name]


@pytest.fixture
def pngs_not_drawn(monkeypatch):
    """For commands whose tests read no plot: the leaderboard's figures are built (the plotting
    code runs on the command's records) but not drawn into PNGs, which takes about 90% of
    rebuilding a small leaderboard (5 s per command on this machine). The PNGs are tested where
    they are read: test_leaderboard, test_site, and `bench leaderboard --check` on the committed
    results."""
    import matplotlib.pyplot as plt

    from bench import plots

    monkeypatch.setattr(plots, "save", lambda fig, path: plt.close(fig))


@pytest.fixture
def bench(capsys, monkeypatch, pngs_not_drawn):
    """bench(args) -> Ran: `bench ARGS` in this process (bench.cli.main), its output captured. Its
    runs execute in this process too (BENCH_EXECUTOR=inline) unless the arguments choose an
    executor: a worker process costs seconds of imports, and the tests of executors ask for one.
    The leaderboard's figures are built but not drawn (`pngs_not_drawn`)."""
    from bench.cli import main

    monkeypatch.setenv("BENCH_EXECUTOR", "inline")

    def call(args: list[str]) -> Ran:
        capsys.readouterr()
        threads = torch.get_num_threads()
        try:
            code = main([str(a) for a in args])
        except SystemExit as e:  # argparse's refusals
            code = e.code
        finally:
            torch.set_num_threads(threads)  # `--threads` sets this process's
        out, err = capsys.readouterr()
        return Ran(code, out, err)

    return call


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


_DENSE: dict[tuple, object] = {}  # the dense models of make_context, trained once per test process


@pytest.fixture
def make_context(data_dir, mnist):
    """make_context(suite="mlp", seed=0, limit_train=2000, limit_test=1000, epochs=1,
    finetune_epochs=1, precision="fp32", **budget) -> a bench Context on a small real subset, on
    CPU, for calling a method's run(ctx) directly in a test. Its dense model is trained once per
    test process for each suite, seed and dense budget, as the harness's dense stage does once
    per sweep. It trains in fp32 whatever the suite says (the tests of bf16 ask for it): a CPU
    without bf16 arithmetic runs bf16 several times slower."""
    from bench import records
    from bench.context import Context, train_dense
    from bench.data import Dataset, default_tensor_cache, load_dataset
    from bench.suite import load_suite

    def make(suite: str = "mlp", seed: int = 0, limit_train: int = 2000, limit_test: int = 1000,
             epochs: int = 1, finetune_epochs: int = 1, precision: str = "fp32", **budget):
        s = load_suite(suite).with_budget(epochs=epochs, finetune_epochs=finetune_epochs, limit_train=limit_train,
                                          limit_test=limit_test, precision=precision, **budget)
        if s.data.dataset == "MNIST":
            data = Dataset(mnist.train.subset(limit_train), mnist.test.subset(limit_test), mnist.source, mnist.num_classes)
        else:  # decodes only its images on a machine without the cached whole split
            data = load_dataset(s.data, data_dir, default_tensor_cache(), limit_train, limit_test)
        key = records.config_hash(records.dense_config(s, seed, data.source))
        if key not in _DENSE:
            with torch.random.fork_rng(devices=[]):
                _DENSE[key] = train_dense(Context(s, data, torch.device("cpu"), seed, log=lambda msg: None))
        return Context(s, data, torch.device("cpu"), seed, dense=_DENSE[key], log=lambda msg: None)

    return make
