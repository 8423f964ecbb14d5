"""The GPU session script, dry-run on the CPU with tiny budgets: the same steps a GPU window
takes (set-up, gpu tests, training speed, the sweep, the archive), so a window is never spent
finding a broken script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from conftest import ROOT


def small_cifar(cifar_dir: Path, into: Path, per_class: int = 60) -> Path:
    """A CIFAR-10 JPEG copy of `per_class` images per class and split, linked from the full one:
    the script's steps are the same, without decoding 60,000 images first. The official layout
    needs no decoding, so it is used whole."""
    full = cifar_dir / "cifar10-jpeg"
    if (cifar_dir / "cifar-10-batches-py").is_dir() or not full.is_dir():
        return cifar_dir
    for split in ("train", "test"):
        for cls in sorted(p for p in (full / split).iterdir() if p.is_dir()):
            (into / "cifar10-jpeg" / split / cls.name).mkdir(parents=True)
            for image in sorted(cls.iterdir())[:per_class]:
                (into / "cifar10-jpeg" / split / cls.name / image.name).symlink_to(image)
    return into


@pytest.mark.session
@pytest.mark.stack
def test_gpu_session_dry_run_on_cpu(tmp_path, cifar_dir):
    out, results = tmp_path / "out", tmp_path / "results"
    data = small_cifar(cifar_dir, tmp_path / "data")
    proc = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu_session.sh"), "--out", str(out), "--data", str(data),
         "--results", str(results), "--minutes", "10", "--methods", "dense,magnitude", "--seeds", "0", "--quick"],
        capture_output=True, text=True, timeout=900, env={**os.environ, "PYTHON": sys.executable})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["env.txt", "fused-bench.json", "fused-bench.log", "results.tar.gz",
                                                      "session.log", "sweep.log"]
    bench = json.loads((out / "fused-bench.json").read_text())
    assert {"alone K=1", "fused K=2", "fused nchw K=2"} <= bench["rates"].keys()
    assert "choice for the sweep:" in (out / "fused-bench.log").read_text()
    session = (out / "session.log").read_text()
    assert "--order breadth --max-minutes" in session and f"--fuse {bench['fuse'] or 1}" in session
    assert "bench run: exit 0 (4 runs finished)" in session
    with tarfile.open(out / "results.tar.gz") as tar:
        names = tar.getnames()
        recs = [json.load(tar.extractfile(n)) for n in names if n.startswith("cifar/runs/") and n.endswith(".json")]
    assert sorted(r["config"]["method"] for r in recs) == ["dense", "magnitude", "magnitude", "magnitude"]
    assert all(r["status"] == "ok" for r in recs)
    assert any(n.startswith("cifar/cache/dense-s0-") and n.endswith(".safetensors") for n in names)  # it travels back
