"""benchmarks/fused_gpu.py, the first step of a GPU window, in the parts a CPU can run: a way that
fails must cost its cell, not the window (gpu_session.sh kills the bench after its budget plus
two minutes, and then nothing of it is written)."""

from __future__ import annotations

import dataclasses
import importlib.util
import sys
import time

import pytest
import torch

from bench.suite import load_suite
from conftest import ROOT

spec = importlib.util.spec_from_file_location("fused_gpu", ROOT / "benchmarks" / "fused_gpu.py")
fused_gpu = importlib.util.module_from_spec(spec)
sys.modules["fused_gpu"] = fused_gpu  # spawned processes unpickle their target from it
spec.loader.exec_module(fused_gpu)

pytestmark = pytest.mark.xdist_group("processes")  # it starts processes


def test_a_process_that_fails_ends_the_processes_way_at_once():
    """A process of the `processes` way that dies (here: before the barrier, as out of memory
    while loading would) made the others wait at the barrier and the bench wait 600 s for its
    result: past gpu_session.sh's limit, so the window got no fused-bench.json at all."""
    suite = dataclasses.replace(load_suite("mlp"), name="no-such-suite")  # each process fails to load it
    start = time.monotonic()
    with pytest.raises(RuntimeError, match="exit code 1"):
        fused_gpu.time_processes(suite, None, 64, torch.device("cpu"), 2)
    assert time.monotonic() - start < 120


def test_the_processes_way_times_processes_that_succeed(data_dir):
    seconds = fused_gpu.time_processes(load_suite("mlp"), data_dir, 256, torch.device("cpu"), 2)
    assert 0 < seconds < 60
