"""benchmarks/speedups.py: the theoretical beside the measured speedups, one table per data
source and budget, read from the committed records."""

import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import speedups  # noqa: E402


def test_a_tables_header_names_the_machines_of_its_own_runs_only(tmp_path):
    """A committed `mlp` record of the standard budget (AMD EPYC, one thread) beside one of another
    budget (`snip` at 100+0 epochs, from an Intel Xeon): the standard table's header named the
    Intel Xeon too, which made none of its rows."""
    runs = tmp_path / "mlp" / "runs"
    runs.mkdir(parents=True)
    for name in ("magnitude-*-s0.json", "snip-74c657d9e91f-s0.json"):
        src = sorted((ROOT / "results" / "mlp" / "runs").glob(name))[0]
        shutil.copy(src, runs / src.name)
    headers = [line for line in speedups.speed_tables(tmp_path, "mlp", []) if line.startswith("## ")]
    assert headers and headers[0].startswith("## mlp · torchvision:MNIST · 20+10 epochs · AMD EPYC")
    assert "Intel" not in headers[0]
