"""Run records: one JSON file per (suite, method, parameters, seed, budget, data source).

A record holds everything needed to rebuild a leaderboard and to judge a number: the resolved
configuration and its hash, metrics, status and error, timings, and the environment. Records are
written atomically (temporary file + rename), so a killed run leaves either the whole record or
none, and a rerun can skip what is finished.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import platform
import subprocess
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any, BinaryIO, Callable

import torch

SCHEMA_VERSION = 1
PACKAGES = ("torch", "torchvision", "timm", "numpy", "pandas", "torch-pruning", "torchao", "scikit-learn")


def config_hash(config: dict[str, Any]) -> str:
    """A stable hash of a JSON-able configuration (sorted keys, fixed separators)."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def run_config(suite: Any, method: str, params: dict[str, Any], seed: int, source: str) -> dict[str, Any]:
    """The identity of a run: its resolved configuration, which the record is keyed by (as
    `config_hash(run_config(...))`). `suite` is a bench.suite.Suite, budget overrides applied."""
    return {
        "suite": suite.name, "suite_version": suite.version, "method": method,
        "params": params, "seed": seed, "data_source": source,
        "model": dataclasses.asdict(suite.model), "data": dataclasses.asdict(suite.data),
        "budget": dataclasses.asdict(suite.training),
    }


# Budget fields that do not change the dense model: runs that differ only in them share it.
NOT_DENSE = ("finetune_epochs", "finetune_lr", "limit_test")


def dense_config(suite: Any, seed: int, source: str) -> dict[str, Any]:
    """The identity of the dense model a seed's runs start from: the `dense` run's identity
    without the budget fields that only later stages use."""
    config = run_config(suite, "dense", {}, seed, source)
    config["budget"] = {k: v for k, v in config["budget"].items() if k not in NOT_DENSE}
    return config


def record_path(results_dir: Path, suite: str, method: str, seed: int, digest: str) -> Path:
    return Path(results_dir) / suite / "runs" / f"{method}-{digest[:12]}-s{seed}.json"


def atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Write a file so that readers see the old file or the whole new one, never a part.

    The bytes go to a temporary file beside `path`, are flushed to disk, and the file is renamed
    into place with the user's normal permissions (umask), so results folders can be shared. On
    any failure (a full disk, an interrupt) the temporary file is removed and the error raised.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    atomic_write(path, lambda f: f.write(text.encode()))


def write_text_atomic(path: Path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text.encode()))


def read_record(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError):
        return None


def load_records(results_dir: Path, suite: str) -> list[dict[str, Any]]:
    """Every readable record of a suite, in file-name order."""
    folder = Path(results_dir) / suite / "runs"
    records = [read_record(p) for p in sorted(folder.glob("*.json"))]
    return [r for r in records if r is not None and r.get("schema") == SCHEMA_VERSION]


class ProvenanceError(ValueError):
    """Standard-budget records would come from code that no commit names."""


def git_commit() -> str | None:
    """The checkout's commit; $BENCH_GIT_COMMIT where the code travelled without its .git
    (a copy sent to a GPU machine), so that records made there still name their code."""
    here = Path(__file__).resolve().parent
    if os.environ.get("BENCH_GIT_COMMIT"):
        return os.environ["BENCH_GIT_COMMIT"]
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def _cpu_name() -> str:
    """The processor's model name, with its vendor, family, model and stepping: virtual machines
    report generic names ("Intel(R) Xeon(R) Processor", "AMD EPYC"), and results from different
    processors must not be mistaken for one machine's."""
    info: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            info.setdefault(key.strip(), value.strip())
            if not line.strip():
                break  # the first processor describes them all
    except OSError:
        return platform.processor() or platform.machine()
    name = info.get("model name") or platform.processor() or platform.machine()
    ids = [info.get("vendor_id")] + [f"{k} {info[k]}" for k in ("cpu family", "model", "stepping") if k in info]
    ids = [i for i in ids if i]
    return f"{name} [{' '.join(ids)}]" if ids else name


def device_name(device: torch.device) -> str:
    """The exact model of the processor or GPU, so that figures from different ones never mix."""
    return torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_name()


def environment(device: torch.device) -> dict[str, Any]:
    """Where a run happened: versions, device, threads, git commit."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    cuda = device.type == "cuda"
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda if cuda else None,
        "device": str(device),
        "device_name": device_name(device),
        "threads": torch.get_num_threads(),
        "git_commit": git_commit(),
        "packages": versions,
    }
