"""The GPU session script, dry-run on the CPU with tiny budgets: the same steps a GPU window
takes (set-up, gpu tests, training speed, the sweep, the archive), so a window is never spent
finding a broken script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile

import pytest

from conftest import ROOT


@pytest.mark.session
@pytest.mark.stack
def test_gpu_session_dry_run_on_cpu(tmp_path, cifar_dir):
    out, results = tmp_path / "out", tmp_path / "results"
    proc = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu_session.sh"), "--out", str(out), "--data", str(cifar_dir),
         "--results", str(results), "--minutes", "10", "--methods", "dense,magnitude", "--speed", "eager",
         "--quick"], capture_output=True, text=True, timeout=600, env={**os.environ, "PYTHON": sys.executable})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["env.txt", "gpu-tests.log", "results.tar.gz", "session.log",
                                                      "sweep.log", "train-speed.log"]
    assert "skipped" in (out / "gpu-tests.log").read_text()  # no CUDA here: skipped, with the reason
    assert "needs a CUDA device" in (out / "gpu-tests.log").read_text()
    assert "harness ms/epoch" in (out / "train-speed.log").read_text()
    session = (out / "session.log").read_text()
    assert "--order breadth --max-minutes" in session and "bench run: exit 0 (4 runs finished)" in session
    with tarfile.open(out / "results.tar.gz") as tar:
        names = tar.getnames()
        recs = [json.load(tar.extractfile(n)) for n in names if n.startswith("cifar/runs/") and n.endswith(".json")]
    assert sorted(r["config"]["method"] for r in recs) == ["dense", "magnitude", "magnitude", "magnitude"]
    assert all(r["status"] == "ok" for r in recs)
    assert any(n.startswith("cifar/cache/dense-s0-") for n in names)  # the dense model travels back
