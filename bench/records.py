"""Run records: one JSON file per (suite, method, parameters, seed, budget, data source).

A record holds everything needed to rebuild a leaderboard and to judge a number: the resolved
configuration and its hash, metrics, status and error, timings, and the environment. Records are
written atomically (temporary file + rename), so a killed run leaves either the whole record or
none, and a rerun can skip what is finished.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import platform
import socket
import subprocess
import tempfile
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Callable, Iterator

if TYPE_CHECKING:
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


@contextlib.contextmanager
def naming_file(path: Path | str) -> Iterator[None]:
    """Make an OSError raised inside name `path` when it names no file: a failed write (a full
    disk) says only "No space left on device", and the user needs to know where."""
    try:
        yield
    except OSError as e:
        if e.filename is None:
            e.filename = str(path)
        raise


def atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Write a file so that readers see the old file or the whole new one, never a part.

    The bytes go to a temporary file beside `path`, are flushed to disk, and the file is renamed
    into place with the user's normal permissions (umask), so results folders can be shared. On
    any failure (a full disk, an interrupt) the temporary file is removed and the error raised,
    naming `path` when the error names no file (a failed write names none).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{_writer()}.", suffix=".tmp")
    try:
        with naming_file(path), os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _writer() -> str:
    """Who writes a temporary file, as part of its name: this host and process."""
    return f"{socket.gethostname()}.{os.getpid()}"


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Remove the temporary files under `folder` that a writer on this host left when it was
    killed mid-write (kill -9 runs no clean-up); a live writer's are kept. Returns those removed."""
    host, removed = socket.gethostname(), []
    for tmp in Path(folder).rglob(".*.tmp"):
        parts = tmp.name.rsplit(".", 3)  # .<name>.<host>, <pid>, <random>, tmp
        if len(parts) < 4 or not parts[0].endswith(f".{host}") or not parts[1].isdigit() or _alive(int(parts[1])):
            continue
        tmp.unlink(missing_ok=True)
        removed.append(tmp)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def load_tensors(path: Path, map_location: Any = "cpu") -> Any:
    """What torch.save wrote to `path` (a cached dense model, a training checkpoint, decoded
    images), read by torch's weights-only unpickler: tensors, numbers, strings and containers of
    them load, and a planted pickle that would run code is refused. Every file the harness reads
    back from a results folder or a cache is loaded here. A refusal raises
    pickle.UnpicklingError with its reason on one line: torch's own message spans a screen and
    suggests loading the file unsafely."""
    import pickle

    import torch

    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        _, found, detail = str(e).partition("WeightsUnpickler error:")
        reason = detail.strip().split("\n", 1)[0].split(". ")[0] if found else str(e).split("\n", 1)[0]
        raise pickle.UnpicklingError(f"refused by torch's weights-only unpickler: {reason}") from None


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    atomic_write(path, lambda f: f.write(text.encode()))


def write_text_atomic(path: Path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text.encode()))


# What every record holds, whatever its status: a file without them is no record.
REQUIRED_KEYS = ("schema", "config", "status", "metrics", "env", "standard_budget")


def read_record(path: Path) -> dict[str, Any] | None:
    """The record stored at `path`, or None if there is none or it cannot be used."""
    record, _ = _read(Path(path))
    return record


def _read(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    """(the record, None), or (None, why it is unusable); (None, None) when there is no file."""
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        return None, None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        return None, f"unreadable ({type(e).__name__}: {e})"
    if not isinstance(record, dict) or any(k not in record for k in REQUIRED_KEYS):
        return None, f"not a run record (it lacks one of {', '.join(REQUIRED_KEYS)})"
    if record["schema"] != SCHEMA_VERSION:
        return None, f"schema {record['schema']!r}, and this harness reads schema {SCHEMA_VERSION}"
    return record, None


def load_records(results_dir: Path, suite: str, problems: list[str] | None = None) -> list[dict[str, Any]]:
    """Every usable record of a suite, in file-name order. A file that cannot be used (truncated,
    not a record, another schema) is left out, and with `problems` a line naming it and why is
    appended there, so that a leaderboard never drops a run without saying so."""
    return [record for _, record in named_records(results_dir, suite, problems)]


def named_records(results_dir: Path, suite: str, problems: list[str] | None = None
                  ) -> list[tuple[str, dict[str, Any]]]:
    """load_records with each record's file name (without .json): the name a site links to."""
    out = []
    for path in sorted((Path(results_dir) / suite / "runs").glob("*.json")):
        record, why = _read(path)
        if record is not None:
            out.append((path.stem, record))
        elif why and problems is not None:
            problems.append(f"{path}: {why}")
    return out


class ProvenanceError(ValueError):
    """Standard-budget records would come from code that no commit names."""


def git_commit(here: Path | None = None) -> str | None:
    """The commit of the checkout holding `here` (this package by default), "-dirty" when its
    code differs from it; $BENCH_GIT_COMMIT where the code travelled without its .git (a copy
    sent to a GPU machine), so that records made there still name their code."""
    here = here or Path(__file__).resolve().parent
    if os.environ.get("BENCH_GIT_COMMIT"):
        return os.environ["BENCH_GIT_COMMIT"]
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
        # The code's state: results/ holds the records and leaderboards a sweep writes as it goes,
        # which must not make the next command of the same sweep look like uncommitted code.
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ":/",
                                ":(top,exclude)results"], cwd=here, capture_output=True, text=True,
                               timeout=10).stdout.strip()
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
    import torch

    return torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_name()


def environment(device: torch.device) -> dict[str, Any]:
    """Where a run happened: versions, device, threads, git commit."""
    import torch

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
