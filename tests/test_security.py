"""What a results folder, a cache, a record, a suite file or a plugin may hold must never take the
harness over: no code runs from a planted file, no markup from a record reaches a page as markup,
a malformed record is named and skipped, a figure that JSON cannot hold fails its run only, the
harness's lock files stay its own, YAML stays within bounds, and no plugin silently shadows a
method. The sweeps run in this process on a small suite timed in PyTorch eager alone.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import torch

from bench import records, registry
from bench.cli import main
from bench.data import find_source
from bench.suite import load_suite

registry.discover()  # the plugins' import warnings belong to no test's output

FAST_SUITE = """\
version: 1
name: sec
description: a small suite, timed in PyTorch eager only
data: {dataset: MNIST, mean: [0.1307], std: [0.3081]}
model: {name: lenet300, kwargs: {hidden: [32, 16]}}
training: {epochs: 1, finetune_epochs: 1, batch_size: 128, lr: 0.05, finetune_lr: 0.01}
seeds: [0]
sparsities: [0.5]
latency_batches: [1, 8]
runtimes: [torch]
"""
LIMITS = ["--limit-train", "1000", "--limit-test", "200"]


@pytest.fixture
def fast_suite(tmp_path) -> Path:
    path = tmp_path / "sec.yaml"
    path.write_text(FAST_SUITE)
    return path


def run(suite: Path, methods: str, data_dir: Path, results: Path, *extra: str) -> int:
    return main(["run", "--suite", str(suite), "--methods", methods, *LIMITS, "--data-dir", str(data_dir),
                 "--results-dir", str(results), *extra])


def dense_cache(suite: Path, data_dir: Path, results: Path, seed: int = 0) -> Path:
    """Where `bench run` caches the dense model of `seed` under LIMITS (bench.runner)."""
    s = load_suite(str(suite)).with_budget(limit_train=1000, limit_test=200)
    key = records.config_hash(records.dense_config(s, seed, find_source(s.data, data_dir)))
    return results / s.name / "cache" / f"dense-s{seed}-{key}.pt"


class Planted:
    """A pickle that creates `marker` when it is unpickled by a loader that runs code."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


# -- 1. nothing loaded from a results folder or a cache executes code ----------------------------


def test_planted_pickles_in_the_dense_cache_and_its_checkpoint_run_no_code(tmp_path, fast_suite, data_dir, capsys):
    results, marker = tmp_path / "results", tmp_path / "pwned"
    cache = dense_cache(fast_suite, data_dir, results)
    cache.parent.mkdir(parents=True)
    for path in (cache, cache.with_suffix(".ckpt")):
        torch.save({"state_dict": Planted(marker), "meta": Planted(marker), "model": Planted(marker)}, path)

    assert run(fast_suite, "dense", data_dir, results) == 0
    out = capsys.readouterr().out
    assert not marker.exists()
    assert f"the cache file {cache} is unreadable (" in out
    assert f"the checkpoint {cache.with_suffix('.ckpt')} cannot be resumed from (" in out
    assert "training from the first epoch" in out
    assert not cache.with_suffix(".ckpt").exists()
    (record,) = records.load_records(results, "sec")
    assert record["status"] == "ok"


def test_a_planted_tensor_cache_of_decoded_images_runs_no_code(tmp_path, capsys):
    from PIL import Image

    from bench.data import _image_folder_split

    folder = tmp_path / "images" / "train"
    for label in ("a", "b"):
        (folder / label).mkdir(parents=True)
        Image.new("L", (4, 4), color=17 if label == "a" else 99).save(folder / label / "0.png")
    cache, marker = tmp_path / "tensors", tmp_path / "pwned"
    first = _image_folder_split(folder, cache)  # decodes the images and caches them
    (cached,) = cache.glob("*.pt")
    torch.save((Planted(marker), Planted(marker)), cached)

    again = _image_folder_split(folder, cache)
    assert not marker.exists()
    assert f"bench: warning: the tensor cache {cached} is unusable (" in capsys.readouterr().err
    assert torch.equal(again.x, first.x) and torch.equal(again.y, first.y)
    assert torch.equal(_image_folder_split(folder, cache).x, first.x)  # cached anew, and read back
