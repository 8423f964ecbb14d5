"""benchmarks/fused_gpu.py, the first step of a GPU window, in the parts a CPU can run: a way that
fails must cost its cell, not the window (gpu_session.sh kills the bench after its budget plus
two minutes, and then nothing of it is written)."""

from __future__ import annotations

import dataclasses
import importlib.util
import itertools
import os
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


def test_fusion_is_chosen_only_where_it_beats_one_run_alone_by_the_margin_and_the_unfused_sweep():
    """The sweep's --fuse comes from the bench's rates (epochs per second): fused must beat one
    run alone by the margin, and the rate four processes (the sweep without fusion) reached."""
    rate = {("alone", 1): 1.0, ("fused", 1): 0.9, ("fused", 4): 1.3, ("fused", 8): 1.1, ("processes", 4): 2.6}
    assert fused_gpu.choose(rate, 1.2) is None  # 1.3x one alone, but half of four processes
    assert fused_gpu.choose({**rate, ("fused", 8): 3.0}, 1.2) == (8, "model")
    assert fused_gpu.choose({**rate, ("processes", 4): "RuntimeError: out of memory"}, 1.2) == (4, "model")  # not measured
    assert fused_gpu.choose({**rate, ("processes", 4): 1.0}, 1.2) == (4, "model")
    assert fused_gpu.choose({**rate, ("processes", 4): 1.0, ("fused", 4): 1.15, ("fused", 8): 1.1}, 1.2) is None
    assert fused_gpu.choose({**rate, ("alone", 1): "skipped: time budget spent"}, 1.2) is None
    assert fused_gpu.choose({("alone", 1): 1.0, ("fused", 4): "RuntimeError: capture failed"}, 1.2) is None
    # a session given --jobs-per-gpu 2 runs two processes without fusion: fused must beat those
    assert fused_gpu.choose({**rate, ("processes", 2): 1.9}, 1.2, unfused_jobs=2) is None
    assert fused_gpu.choose({**rate, ("processes", 2): 1.2}, 1.2, unfused_jobs=2) == (4, "model")
    # K=32 fastest, but a task of 32 runs would not end within the window's last two minutes
    assert fused_gpu.choose({**rate, ("fused", 8): 3.0, ("fused", 32): 5.0}, 1.2) == (8, "model")
    assert fused_gpu.choose({**rate, ("fused", 8): 3.0, ("fused", 32): 5.0}, 1.2, max_fuse=32) == (32, "model")
    # stacked NCHW faster (cuDNN's channels-last grouped convolutions): the sweep takes that layout;
    # the CUDA graph way, which the sweep cannot take, is never chosen
    assert fused_gpu.choose({**rate, ("fused nchw", 8): 3.5, ("fused", 8): 3.0}, 1.2) == (8, "nchw")
    assert fused_gpu.choose({**rate, ("graph", 8): 9.0}, 1.2) is None


def test_the_processes_way_times_processes_that_succeed(data_dir):
    seconds = fused_gpu.time_processes(load_suite("mlp"), data_dir, 256, torch.device("cpu"), 2)
    assert 0 < seconds < 60


def test_the_bench_reads_the_images_from_the_tensor_cache_the_session_filled(tmp_path, cifar_dir, monkeypatch):
    """gpu_session.sh decodes the JPEGs into the tensor cache before the steps that start
    processes; the bench, and each process of its `processes` way (K at a time, for every K
    and repeat), decoded its 10,240 images again, minutes of the window's budget for cells."""
    from bench import data
    from test_gpu_session import small_cifar

    root = small_cifar(cifar_dir, tmp_path / "data", per_class=10)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    suite = load_suite("cifar")
    data.load_dataset(suite.data, root, data.default_tensor_cache())  # what the session's set-up does
    decoded = data.load_dataset(suite.data, root, None, 50, 256)

    def no_decoding(images, i):
        raise AssertionError("decoded an image that the tensor cache holds")

    monkeypatch.setattr(data, "_decode", no_decoding)
    got = fused_gpu.data_for(suite, root, 50, torch.device("cpu"))
    assert torch.equal(got.train.x, decoded.train.x) and torch.equal(got.test.y, decoded.test.y)


def test_each_fused_k_is_timed_after_a_warm_up_of_its_own(tmp_path, monkeypatch):
    """On a GPU (cudnn.benchmark) the first use of every new convolution shape autotunes it, and
    each K's grouped convolutions are new shapes: the fused cells timed that in their first
    repeat (with two repeats, half of the median), which the sweep pays once per worker. Here
    the first call at each K and layout costs 10 s, later ones 1 s: the rate is the 1 s one."""
    import json

    from bench.data import Dataset, Split

    first: set = set()

    def time_fused(batch, device, keep_layout):
        key = (len(batch), keep_layout)
        seconds = 1.0 if key in first else 10.0
        first.add(key)
        return seconds

    split = Split(torch.zeros(8, 3, 32, 32, dtype=torch.uint8), torch.zeros(8, dtype=torch.long))
    monkeypatch.setattr(fused_gpu, "data_for", lambda *args: Dataset(split, split, "test", 10))
    monkeypatch.setattr(fused_gpu, "calls", lambda suite, data, device, k, layout: [data] * k)
    monkeypatch.setattr(fused_gpu, "time_alone", lambda batch, device: 1.0)
    monkeypatch.setattr(fused_gpu, "time_fused", time_fused)
    monkeypatch.setattr(fused_gpu, "check_fused", lambda suite, data, device, layout="channels-last": "ok")
    monkeypatch.setattr(sys, "argv", ["fused_gpu.py", "--quick", "--out", str(tmp_path / "bench.json")])
    fused_gpu.main()
    rates = json.loads((tmp_path / "bench.json").read_text())["rates"]
    one = rates["alone K=1"]
    assert rates["fused K=1"] == pytest.approx(one) and rates["fused K=2"] == pytest.approx(2 * one), rates
    assert rates["fused nchw K=2"] == pytest.approx(2 * one), rates


def test_a_bf16_suite_that_cannot_fuse_here_times_its_fused_ways_in_fp32_and_never_chooses_them(tmp_path, monkeypatch,
                                                                                                 capsys):
    """Where autocast does not reach vmapped operators, bench.fused trains a bf16 suite's calls
    alone (fused they would train in fp32): the bench would only have timed errors. It times the
    fused ways in fp32 instead, named so, for what a window can learn, and chooses no fusion."""
    import json

    from bench.data import Dataset, Split

    precisions = set()

    def calls(suite, data, device, k, layout):
        precisions.add(suite.training.precision)
        return [data] * k

    split = Split(torch.zeros(8, 1, 28, 28, dtype=torch.uint8), torch.zeros(8, dtype=torch.long))
    monkeypatch.setattr(fused_gpu, "data_for", lambda *args: Dataset(split, split, "test", 10))
    monkeypatch.setattr(fused_gpu, "calls", calls)
    monkeypatch.setattr(fused_gpu, "time_alone", lambda batch, device: 1.0)
    monkeypatch.setattr(fused_gpu, "time_fused", lambda batch, device, keep_layout: 0.1)  # fast: yet not chosen
    monkeypatch.setattr(fused_gpu, "check_fused", lambda suite, data, device, layout="channels-last": "ok")
    monkeypatch.setattr(fused_gpu, "autocast_reaches_vmap", lambda device_type: False)
    monkeypatch.setattr(sys, "argv", ["fused_gpu.py", "--suite", "mnist", "--ks", "1,2", "--limit-train", "8",
                                      "--repeats", "1", "--out", str(tmp_path / "bench.json")])
    fused_gpu.main()
    bench = json.loads((tmp_path / "bench.json").read_text())
    assert {"fused fp32 K=2", "fused fp32 nchw K=2"} <= bench["rates"].keys() and "fused K=2" not in bench["rates"]
    assert bench["fusable"] is False and bench["fuse"] is None and precisions == {"bf16", "fp32"}  # alone: bf16
    assert bench["check"] == bench["check_nchw"] == "ok"  # fast and checked: not chosen all the same
    out = capsys.readouterr().out
    assert "the sweep cannot fuse mnist" in out and "(a bf16 suite does not fuse on this device)" in out


def test_a_bench_cut_short_leaves_the_rates_it_measured_and_their_choice(tmp_path, monkeypatch):
    """gpu_session.sh kills a bench past its time limit: the JSON, written only at the end, was
    then missing, and the sweep ran unfused whatever the bench had measured. Here the last cell,
    fused NCHW at K=2, never returns (a kill, as a BaseException that no cell catches)."""
    import json

    from bench.data import Dataset, Split

    class Killed(BaseException):
        pass

    timed = []

    def time_fused(batch, device, keep_layout):
        timed.append(len(batch))
        if len(timed) > 6:  # a warm-up and a timed call each: fused K=1, fused nchw K=1, fused K=2
            raise Killed
        return 0.5

    split = Split(torch.zeros(8, 3, 32, 32, dtype=torch.uint8), torch.zeros(8, dtype=torch.long))
    monkeypatch.setattr(fused_gpu, "data_for", lambda *args: Dataset(split, split, "test", 10))
    monkeypatch.setattr(fused_gpu, "calls", lambda suite, data, device, k, layout: [data] * k)
    monkeypatch.setattr(fused_gpu, "time_alone", lambda batch, device: 1.0)
    monkeypatch.setattr(fused_gpu, "time_fused", time_fused)
    monkeypatch.setattr(fused_gpu, "check_fused", lambda suite, data, device, layout="channels-last": "ok")
    monkeypatch.setattr(sys, "argv", ["fused_gpu.py", "--quick", "--out", str(tmp_path / "bench.json"),
                                      "--margin", "1.5"])
    with pytest.raises(Killed):
        fused_gpu.main()
    got = json.loads((tmp_path / "bench.json").read_text())
    assert got["complete"] is False
    assert set(got["rates"]) == {"alone K=1", "fused K=1", "fused nchw K=1", "fused K=2"}
    assert got["rates"]["fused K=2"] == pytest.approx(4 * got["rates"]["alone K=1"])
    assert got["fuse"] == 2  # what was measured supports it (on the CPU there is no `processes` way to wait for)



def _random_cifar(n: int):
    from bench.data import Dataset, Split

    g = torch.Generator().manual_seed(0)
    split = Split(torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g),
                  torch.randint(0, 10, (n,), generator=g))
    return Dataset(split, split, "random", 10)


def test_the_check_passes_fused_runs_that_train_their_own_models_and_fails_a_silent_mix_up(monkeypatch, capsys):
    """A fused path that gives wrong models raises nothing, and the sweep would rank them: on the
    GPU, where it had never run, the bench checks it before it may choose fusion. Here each run
    is given the other's logits in training (the probe's few images pass), a mix-up that trains
    without an error."""
    from bench import fused

    suite, data = load_suite("cifar"), _random_cifar(32)  # two steps of 16 images
    assert fused_gpu.check_fused(suite, data, torch.device("cpu")) == "ok"
    # stacked NCHW too: in fp32 its rounding, amplified by BatchNorm's backward, lay 0.28 of the
    # training's move away on this CPU and failed the check; in float64 only a fault can
    assert fused_gpu.check_fused(suite, data, torch.device("cpu"), "nchw") == "ok"
    real = fused._fused_forward

    def mixed_up(template, params, buffers, x, holdings=None):
        out = real(template, params, buffers, x, holdings)
        return out.roll(1, 0) if x.shape[1] > 4 else out

    monkeypatch.setattr(fused, "_fused_forward", mixed_up)
    assert "from its own training's" in fused_gpu.check_fused(suite, data, torch.device("cpu"))

    def refused(template, params, buffers, x, holdings=None):  # as a kernel that only the GPU runs might
        if x.shape[1] > 4:
            raise RuntimeError("CUDA error: simulated kernel refusal")
        return real(template, params, buffers, x, holdings)

    monkeypatch.setattr(fused, "_fused_forward", refused)
    got = fused_gpu.cell(lambda: fused_gpu.check_fused(suite, data, torch.device("cpu")), 60.0, {})
    assert got.startswith("FusedStepError: fused training failed in code the runs share"), got
    assert "RuntimeError: CUDA error: simulated kernel refusal" in capsys.readouterr().err  # the cause's traceback


def test_fused_runs_that_fail_the_check_are_not_chosen_however_fast(tmp_path, monkeypatch, capsys):
    import json

    split = _random_cifar(8).train
    from bench.data import Dataset

    monkeypatch.setattr(fused_gpu, "data_for", lambda *args: Dataset(split, split, "test", 10))
    monkeypatch.setattr(fused_gpu, "calls", lambda suite, data, device, k, layout: [data] * k)
    monkeypatch.setattr(fused_gpu, "time_alone", lambda batch, device: 1.0)
    monkeypatch.setattr(fused_gpu, "time_fused", lambda batch, device, keep_layout: 0.1)
    monkeypatch.setattr(fused_gpu, "check_fused",
                        lambda suite, data, device, layout="channels-last": "run 1's fc.weight lies 1 from ...")
    monkeypatch.setattr(sys, "argv", ["fused_gpu.py", "--quick", "--out", str(tmp_path / "bench.json")])
    fused_gpu.main()
    got = json.loads((tmp_path / "bench.json").read_text())
    assert got["fuse"] is None and got["check"].startswith("run 1's fc.weight")
    assert "choice for the sweep: no fusion (the fused runs failed the check: fused, fused nchw left out)" in \
        capsys.readouterr().out


def test_a_layout_whose_fused_runs_fail_the_check_is_not_chosen_however_fast(tmp_path, monkeypatch, capsys):
    """`choose` picks a layout as well as K: the check ran the channels-last stacking only, so
    a faster NCHW stacking that gave wrong models would have been the sweep's. Each layout is
    checked; one that fails is left out of the choice, the other still chosen."""
    import json

    split = _random_cifar(8).train
    from bench.data import Dataset

    monkeypatch.setattr(fused_gpu, "data_for", lambda *args: Dataset(split, split, "test", 10))
    monkeypatch.setattr(fused_gpu, "calls", lambda suite, data, device, k, layout: [data] * k)
    monkeypatch.setattr(fused_gpu, "time_alone", lambda batch, device: 1.0)
    monkeypatch.setattr(fused_gpu, "time_fused", lambda batch, device, keep_layout: 0.2 if keep_layout else 0.1)
    monkeypatch.setattr(fused_gpu, "check_fused", lambda suite, data, device, layout="channels-last":
                        "ok" if layout == "channels-last" else "run 0's stem.0.weight lies 1 from ...")
    monkeypatch.setattr(sys, "argv", ["fused_gpu.py", "--quick", "--out", str(tmp_path / "bench.json")])
    fused_gpu.main()
    got = json.loads((tmp_path / "bench.json").read_text())
    assert (got["fuse"], got["fuse_layout"]) == (2, "model"), got
    assert got["check"] == "ok" and got["check_nchw"].startswith("run 0's stem.0.weight")
    assert "(the fused runs failed the check: fused nchw left out)" in capsys.readouterr().out


def test_a_cell_that_fails_prints_its_traceback_for_the_sessions_log(capsys):
    def fails() -> float:
        raise RuntimeError("CUDA error: an illegal memory access was encountered\nmore")

    assert fused_gpu.cell(fails, 60.0, {}) == "RuntimeError: CUDA error: an illegal memory access was encountered"
    err = capsys.readouterr().err
    assert "Traceback" in err and "in fails" in err


def test_a_kept_bench_gives_its_choice_only_where_it_was_measured_whole_on_the_same_terms(tmp_path, monkeypatch):
    """gpu_session.sh keeps a whole bench's result, and a later window reuses its choice instead of
    spending two minutes timing it again: only where it was measured on the same GPU, torch and
    code, suite and choice settings; a bench cut short, or one of other terms, is timed again."""
    import argparse
    import shutil

    args = argparse.Namespace(margin=1.2, unfused_jobs=4, max_fuse=8, quick=False, ks="1,4,8,16,32")
    suite = load_suite("cifar")
    present = fused_gpu.measured_on(suite, torch.device("cpu"), args)
    saved = {"complete": True, "measured_on": present, "fuse": 8, "fuse_layout": "nchw"}
    assert fused_gpu.reused_choice(saved, present) == "8 nchw"
    assert fused_gpu.reused_choice({**saved, "fuse": None, "fuse_layout": None}, present) == "1 model"  # no fusion
    with pytest.raises(ValueError, match="cut short"):
        fused_gpu.reused_choice({**saved, "complete": False}, present)
    with pytest.raises(ValueError, match="does not say"):
        fused_gpu.reused_choice({"complete": True, "fuse": 8}, present)
    with pytest.raises(ValueError, match="device 'NVIDIA H100 80GB HBM3', now 'cpu'"):
        fused_gpu.reused_choice({**saved, "measured_on": {**present, "device": "NVIDIA H100 80GB HBM3"}}, present)
    with pytest.raises(ValueError, match="unfused_jobs 4, now 2"):
        fused_gpu.reused_choice(saved, fused_gpu.measured_on(suite, torch.device("cpu"), argparse.Namespace(
            **{**vars(args), "unfused_jobs": 2})))
    with pytest.raises(ValueError, match="quick True, now False"):  # a --quick dry run's choice, on a CPU
        fused_gpu.reused_choice({**saved, "measured_on": {**present, "quick": True}}, present)
    with pytest.raises(ValueError, match="code"):  # another suite budget
        fused_gpu.reused_choice(saved, fused_gpu.measured_on(suite.with_budget(precision="fp32"), torch.device("cpu"),
                                                             args))
    # fused training's code changed: measured again
    for name in fused_gpu.SPEED_CODE:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, tmp_path / name)
    monkeypatch.setattr(fused_gpu, "ROOT", tmp_path)
    assert fused_gpu.measured_on(suite, torch.device("cpu"), args) == present
    with (tmp_path / "bench" / "fused.py").open("a") as f:
        f.write("# changed\n")
    with pytest.raises(ValueError, match="code"):
        fused_gpu.reused_choice(saved, fused_gpu.measured_on(suite, torch.device("cpu"), args))


def test_a_kept_bench_whose_choice_is_no_fuse_k_and_layout_is_not_reused():
    """gpu_session.sh reads the kept choice into shell words, compares K with [[ -gt ]] (which runs a
    `$(...)` in an array index) and passes both to bench run: a kept file (committed with the
    results, carried to the GPU) whose choice is no K in 1..max_fuse or no sweep layout is timed
    again, never handed on."""
    import argparse

    args = argparse.Namespace(margin=1.2, unfused_jobs=4, max_fuse=8, quick=False, ks="1,4,8,16,32")
    present = fused_gpu.measured_on(load_suite("cifar"), torch.device("cpu"), args)
    saved = {"complete": True, "measured_on": present}
    assert fused_gpu.reused_choice({**saved, "fuse": 8, "fuse_layout": "nchw"}, present) == "8 nchw"
    for fuse, layout in (("x[$(touch /tmp/pwned)]", "model"), (True, "model"), (2.0, "model"), (-3, "model"),
                         (9, "model"), (4, "model; rm -rf ~"), (4, "a b")):
        with pytest.raises(ValueError, match="no --fuse"):
            fused_gpu.reused_choice({**saved, "fuse": fuse, "fuse_layout": layout}, present)


def test_choice_of_reads_a_windows_own_bench_cut_short_or_whole_and_refuses_a_choice_that_is_no_k(tmp_path):
    """gpu_session.sh reads the bench it just ran with `--choice-of`, cut short or not (its choice
    stands, and the log says so): the same check as a kept bench's, one way of reading the file,
    where a one-liner of its own repeated the defaults and checked nothing."""
    import json
    import subprocess

    def choice(saved: object) -> subprocess.CompletedProcess:
        (tmp_path / "bench.json").write_text(json.dumps(saved))
        return subprocess.run([sys.executable, str(ROOT / "benchmarks" / "fused_gpu.py"), "--choice-of",
                               str(tmp_path / "bench.json")], capture_output=True, text=True, timeout=120)

    assert fused_gpu.choice_of({"fuse": 4, "fuse_layout": "nchw"}) == "4 nchw"
    assert fused_gpu.choice_of({"fuse": None}) == "1 model"
    with pytest.raises(ValueError, match="no --fuse 1..4"):
        fused_gpu.choice_of({"fuse": 8}, limit=4)
    cut = choice({"complete": False, "fuse": 2, "fuse_layout": "model"})
    assert (cut.returncode, cut.stdout) == (0, "2 model False\n"), cut.stderr
    assert choice({"complete": True, "fuse": None, "fuse_layout": None}).stdout == "1 model True\n"
    hostile = choice({"complete": True, "fuse": "x[$(touch /tmp/pwned)]", "fuse_layout": "model"})
    assert hostile.returncode == 1 and hostile.stdout == "" and "no choice: the saved choice is no --fuse" in hostile.stderr
    assert choice([1, 2]).returncode == 1  # JSON, but no bench's object


def test_a_kept_bench_that_is_no_regular_file_of_bounded_json_is_named_and_not_reused(tmp_path):
    """`--reuse` reads a file of the results folder (committed, carried to the window): JSON
    nested deeper than the parser goes ended it with a RecursionError traceback, a FIFO was
    waited on until gpu_session.sh's timeout, and a huge file was read into memory whole. Each
    is named in one line, exit 1, and the bench is timed again."""
    import subprocess

    deep, fifo, huge = tmp_path / "deep.json", tmp_path / "fifo.json", tmp_path / "huge.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    os.mkfifo(fifo)
    huge.write_text(" " * 2**20 + "{}")  # a kept bench is a few KB: a MiB is plenty
    for (path, why), (option, refusal) in itertools.product(
            ((deep, "nested too deeply"), (fifo, "refused: a FIFO, not a regular file"),
             (huge, f"refused: larger than {2**20:,} bytes")),
            (("--reuse", "not reused"), ("--choice-of", "no choice"))):  # (the window's own bench: read the same way)
        proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "fused_gpu.py"), option, str(path), "--quick"],
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 1 and proc.stdout == "", proc.stdout + proc.stderr
        assert proc.stderr.strip().splitlines() == [f"{path}: {refusal}: {why}"], proc.stderr
