"""Executors, as a user runs them: `--jobs`, Ray, killed workers, `--dry-run` and `--max-minutes`,
all on a quick real MNIST sweep. The driver runs in this process; its workers are real processes.
Concurrent commands on one results folder are in test_faults.py."""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import re
import signal
import subprocess
import sys
import time
import types
from multiprocessing import forkserver
from pathlib import Path

import pytest
import torch

from conftest import FAST, ROOT, make_distribution, run_bench

from bench import runner

pytestmark = pytest.mark.xdist_group("processes")  # worker processes and timing: one at a time

# Six runs (dense, magnitude and random at 90%, two seeds) of LeNet-300-100 on 3,000 images.
QUICK = ["run", "--suite", str(FAST), "--methods", "dense,magnitude,random", "--seeds", "0,1",
         "--set", "magnitude.sparsity=0.9", "--set", "random.sparsity=0.9",
         "--epochs", "2", "--finetune-epochs", "1", "--limit-train", "3000", "--limit-test", "1000"]
COMPARED = ("accuracy", "nonzeros", "size_bytes", "flops", "flops_effective", "params", "train_epochs")


def metrics(results) -> dict[str, dict]:
    out = {}
    for p in sorted((results / "mlp-fast" / "runs").glob("*.json")):
        r = json.loads(p.read_text())
        out[p.name] = {k: r["metrics"].get(k) for k in COMPARED} if r["status"] == "ok" else r["status"]
    return out


@pytest.fixture(scope="module")
def serial(tmp_path_factory, data_dir):
    """The quick sweep run in this process in one thread: the reference every executor must match."""
    from bench.cli import main

    results = tmp_path_factory.mktemp("serial")
    threads = torch.get_num_threads()
    try:
        assert main([*QUICK, "--threads", "1", "--executor", "inline", "--data-dir", str(data_dir),
                     "--results-dir", str(results)]) == 0
    finally:
        torch.set_num_threads(threads)  # --threads sets this process's torch threads
    assert {r["env"]["executor"] for r in records_of(results)} == {"in this process, 1 thread"}
    return results


def records_of(results: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in (results / "mlp-fast" / "runs").glob("*.json")]


def test_jobs_give_the_same_records_as_serial(serial, tmp_path, data_dir, bench):
    proc = bench([*QUICK, "--jobs", "2", "--data-dir", str(data_dir), "--results-dir", str(tmp_path)])
    assert proc.returncode == 0, proc.stderr
    assert "2 local worker processes on the CPU, 1 thread each" in proc.stdout
    reference = metrics(serial)
    assert len(reference) == 6 and metrics(tmp_path) == reference
    logs = sorted(p.name for p in (tmp_path / "mlp-fast" / "logs").glob("*.log"))
    assert len(logs) == 8  # six runs and two dense models, each with its own log
    assert "epoch   1/1" in (tmp_path / "mlp-fast" / "logs" / logs[-1]).read_text()
    assert not (tmp_path / "mlp-fast" / "claims").exists()  # a clean exit leaves no claim behind
    assert {r["env"]["threads"] for r in records_of(tmp_path)} == {1}


@pytest.mark.parametrize("stacked", ["model", "nchw"])
def test_fused_runs_give_the_records_of_runs_trained_alone_and_say_so(serial, tmp_path, data_dir, bench, stacked):
    """--fuse 4: the runs go to the worker four at a time and their fine-tunings train as one
    model (bench.fused). Counts and sizes are those of the runs trained alone, accuracy within
    one test image of 1,000 (weights agree to about 1e-8: the batched products sum in another
    order); each record says how many runs it trained with, and a layout other than the models'
    (--fuse-layout nchw, for a GPU's grouped convolutions) is in the records and logs."""
    proc = bench([*QUICK, "--threads", "1", "--fuse", "4", "--fuse-layout", stacked, "--data-dir", str(data_dir),
                  "--results-dir", str(tmp_path)])
    assert proc.returncode == 0, proc.stderr
    alone, fused = metrics(serial), metrics(tmp_path)
    assert fused.keys() == alone.keys()
    for name in alone:
        for key in COMPARED:
            if key == "accuracy":
                assert abs(fused[name][key] - alone[name][key]) <= 0.001, name
            else:
                assert fused[name][key] == alone[name][key], (name, key)
    by_method = {}
    for r in records_of(tmp_path):
        by_method.setdefault(r["config"]["method"], set()).add(r["metrics"].get("fused_with"))
    assert by_method == {"dense": {None}, "magnitude": {4}, "random": {4}}  # the four pruned fine-tunings, one task
    said = "training fused with 3 other run(s)" + (", stacked NCHW" if stacked == "nchw" else "\n")
    assert said in (tmp_path / "mlp-fast" / "logs" / next(
        p.name for p in (tmp_path / "mlp-fast" / "logs").glob("random-*.log"))).read_text()
    assert {r["env"].get("fuse_layout") for r in records_of(tmp_path) if r["config"]["method"] != "dense"} == \
        {None if stacked == "model" else "nchw"}


def test_a_fused_task_takes_runs_of_one_method_across_seeds_not_the_next_in_plan_order(tmp_path, data_dir, bench):
    """Breadth first, the plan alternates methods (magnitude, random, magnitude-oneshot at seed 0,
    then at seed 1): fused tasks of two took the next two, and magnitude at seed 1 shared its task
    with magnitude-oneshot, which trains nothing, so it trained alone. A task takes the runs of its
    first run's method from the queue first, across the seeds whose dense model is ready, then
    others of its class (bench.plan.fusion_key); a setting that fine-tunes nothing is a class of
    its own."""
    proc = bench([*QUICK, "--methods", "magnitude,random,magnitude-oneshot", "--order", "breadth", "--fuse", "2",
                  "--set", "magnitude-oneshot.sparsity=0.9", "--data-dir", str(data_dir), "--results-dir", str(tmp_path)])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    fused = {(r["config"]["method"], r["config"]["seed"]): r["metrics"].get("fused_with") for r in records_of(tmp_path)}
    assert fused == {("magnitude", 0): 2, ("magnitude", 1): 2, ("random", 0): 2, ("random", 1): 2,
                     ("magnitude-oneshot", 0): None, ("magnitude-oneshot", 1): None}, fused  # it trains nothing
    started = [[line.split("] ")[1].split(" ")[0], line.split(" ")[-1]] for line in proc.stdout.splitlines()
               if re.match(r"\[\d/6\] .* seed=\d$", line)]
    assert started == [[m, f"seed={seed}"] for m in ("magnitude", "random", "magnitude-oneshot") for seed in (0, 1)], \
        proc.stdout


KILLER = '''
    import os, signal
    from bench import Method, register_method

    @register_method("killer")
    class Killer(Method):
        """Kills its own process in the middle of a run."""

        def run(self, ctx):
            ctx.pretrained()
            os.kill(os.getpid(), signal.SIGKILL)
'''


def test_a_killed_worker_is_a_failed_row_and_the_sweep_goes_on(tmp_path, data_dir, bench, plugins):
    plugins(make_distribution(tmp_path / "site", "killer_plugin", KILLER, {"killer": "killer_plugin"}))
    # QUICK without its --set of random, which this command does not select
    proc = bench([*QUICK[:4], "killer,dense,magnitude", *QUICK[5:9], *QUICK[11:], "--jobs", "2",
                  "--data-dir", str(data_dir), "--results-dir", str(tmp_path / "results")])
    assert proc.returncode == 1, proc.stderr
    assert "2 of 6 runs did not finish:" in proc.stderr
    logs = re.findall(r"^  killer - seed \d: failed, WorkerDied: .* \(log: (.*)\)$", proc.stderr, flags=re.M)
    assert len(logs) == 2 and all(Path(log).exists() for log in logs), proc.stderr  # the logs it names
    recs = records_of(tmp_path / "results")
    killed = [r for r in recs if r["config"]["method"] == "killer"]
    assert len(recs) == 6 and len(killed) == 2
    assert all("killed by SIGKILL" in r["error"] for r in killed)
    assert all(r["status"] == "ok" for r in recs if r["config"]["method"] != "killer")
    table = (tmp_path / "results" / "mlp-fast" / "leaderboard-custom.md").read_text()
    assert "WorkerDied: the worker process running this task was killed by SIGKILL" in table


def test_dry_run_prints_the_plan_and_writes_nothing(serial, tmp_path, data_dir, bench):
    fresh = tmp_path / "fresh"
    proc = bench([*QUICK, "--dry-run", "--data-dir", str(data_dir), "--results-dir", str(fresh)])
    assert proc.returncode == 0, proc.stderr
    assert "6 runs: 6 to run, 0 finished before" in proc.stdout
    assert "dense models to train: seed 0, seed 1 (2 epochs each)" in proc.stdout
    assert "expected: 8 epochs" in proc.stdout  # the dense stage 2 x 2 once, the others 4 x 1 fine-tuning
    oneshot = bench([*QUICK[:4], "dense,magnitude-oneshot", *QUICK[5:7], *QUICK[11:], "--dry-run", "--data-dir",
                     str(data_dir), "--results-dir", str(fresh)])
    assert "expected: 4 epochs" in oneshot.stdout, oneshot.stdout  # the dense stage: finetune=False trains nothing
    assert not fresh.exists()
    before = sorted(p.relative_to(serial) for p in serial.rglob("*"))
    again = bench([*QUICK, "--force", "--dry-run", "--data-dir", str(data_dir), "--results-dir", str(serial)])
    assert again.returncode == 0, again.stderr
    assert "6 runs: 6 to run" in again.stdout  # timed from records, in seconds under a minute and a half
    assert re.search(r"expected: \d+ epochs, about (\d+ s|\d+ minutes?) in one job", again.stdout), again.stdout
    assert "about 0 minutes" not in again.stdout
    assert sorted(p.relative_to(serial) for p in serial.rglob("*")) == before
    done = bench([*QUICK, "--dry-run", "--data-dir", str(data_dir), "--results-dir", str(serial)])
    assert "0 to run, 6 finished before\n  nothing to run: every run has its record" in done.stdout, done.stdout
    assert "time unknown" not in done.stdout and "dense models" not in done.stdout  # (it said both)
    # times only from records of the same budget; a method without records is extrapolated, and says so
    snip = bench([*QUICK[:4], "dense,magnitude,random,snip", *QUICK[5:], "--dry-run", "--data-dir", str(data_dir),
                  "--results-dir", str(serial)])
    assert "4 runs (~) without a record of their own: unknown, extrapolated" in snip.stdout, snip.stdout
    other = list(QUICK)
    other[other.index("--epochs") + 1] = "3"
    longer = bench([*other, "--dry-run", "--data-dir", str(data_dir), "--results-dir", str(serial)])
    assert "time unknown: no dense record of this suite at this budget" in longer.stdout, longer.stdout


def test_a_run_without_records_is_estimated_with_its_measurement(serial, tmp_path, data_dir, bench, monkeypatch):
    """A method without records of its own was estimated from its epochs alone, but every run is
    also measured (on a CPU, 5 s of a quick mlp run's 7 in its runtimes): a new method's quick
    sweep was planned at a third of what it took. Its estimate adds the records' median
    measurement time, planted here at 300 s."""
    runs = tmp_path / "mlp-fast" / "runs"
    runs.mkdir(parents=True)
    for path in (serial / "mlp-fast" / "runs").glob("*.json"):
        record = json.loads(path.read_text())
        record["measure_time_s"] = 300.0
        (runs / path.name).write_text(json.dumps(record))
    snip = bench([*QUICK[:4], "snip", *QUICK[5:7], *QUICK[11:], "--dry-run", "--data-dir", str(data_dir),
                  "--results-dir", str(tmp_path)])
    assert snip.returncode == 0, snip.stderr
    shown = re.findall(r"^snip .* ~(\d+)$", snip.stdout, flags=re.M)
    assert len(shown) == 4 and all(300 <= int(s) < 360 for s in shown), snip.stdout  # 3 epochs + 300 s each
    assert "plus a measurement (300.0 s, the records' median)" in snip.stdout
    assert re.search(r"about 2[01] minutes in one job", snip.stdout), snip.stdout  # 4 x 300 s and the epochs
    # in two jobs the sweep's schedule, not one job's sum: 2 x 300 s on each, on 2 cores (pinned:
    # the estimate caps the jobs at this machine's cores); on 1 core, no faster than one job
    monkeypatch.setattr(runner, "cores", lambda: 2)
    args = [*QUICK[:4], "snip", *QUICK[5:7], *QUICK[11:], "--jobs", "2", "--dry-run", "--data-dir", str(data_dir),
            "--results-dir", str(tmp_path)]
    two = bench(args)
    assert re.search(r"about 2[01] minutes in one job, about 1[01] minutes in 2 jobs \(", two.stdout), two.stdout
    monkeypatch.setattr(runner, "cores", lambda: 1)
    one_core = bench(args)
    assert re.search(r"about 2[01] minutes in one job, about 2[01] minutes in 2 jobs \(no faster than 1: 1 core\)",
                     one_core.stdout), one_core.stdout


def test_a_fused_plan_is_priced_from_fused_records_or_says_it_is_not(serial, tmp_path, data_dir, bench):
    """With --fuse the estimate prices a run from its records trained fused (their share of each
    fused step, planted here at 100 s for magnitude); a run with only records trained alone is
    priced from those, and the plan says that fusion's gain is not in the estimate. A plan
    without --fuse says so of a run priced from fused records."""
    runs = tmp_path / "mlp-fast" / "runs"
    runs.mkdir(parents=True)
    for path in (serial / "mlp-fast" / "runs").glob("*.json"):
        record = json.loads(path.read_text())
        if record["config"]["method"] == "magnitude":
            record["metrics"]["fused_with"], record["run_time_s"] = 2, 100.0
        (runs / path.name).write_text(json.dumps(record))
    args = [*QUICK, "--force", "--dry-run", "--data-dir", str(data_dir), "--results-dir", str(tmp_path)]
    fused = bench([*args, "--fuse", "2"])
    assert fused.returncode == 0, fused.stderr
    assert re.findall(r"^magnitude .* (\d+)$", fused.stdout, flags=re.M) == ["100", "100"], fused.stdout
    # random's 2 runs; not dense's, which train nothing and so lose nothing to fusion
    assert "2 runs priced from records trained alone: fusion's gain or loss here is not in the estimate" in fused.stdout
    alone = bench(args)
    assert re.findall(r"^magnitude .* (\d+)$", alone.stdout, flags=re.M) == ["100", "100"], alone.stdout
    assert "2 runs priced from records trained fused with others (their share of each fused step)" in alone.stdout
    assert "trained alone" not in alone.stdout


def test_a_gpu_plan_in_several_jobs_says_that_jobs_sharing_a_gpu_are_slower(serial, tmp_path, data_dir, bench):
    """--jobs-per-gpu K divides the records' times between K jobs, but K jobs on one GPU each run
    slower than alone (four made 2.6x one job's epochs, not 4x): the plan says where its wall
    time holds. Planned from a machine without a GPU too (any GPU's records)."""
    runs = tmp_path / "mlp-fast" / "runs"
    runs.mkdir(parents=True)
    for path in (serial / "mlp-fast" / "runs").glob("*.json"):
        record = json.loads(path.read_text())
        record["env"]["device"], record["env"]["device_name"] = "cuda", "Some GPU"
        (runs / path.name).write_text(json.dumps(record))
    plan = bench([*QUICK, "--force", "--device", "cuda", "--jobs-per-gpu", "2", "--dry-run", "--data-dir",
                  str(data_dir), "--results-dir", str(tmp_path)])
    assert plan.returncode == 0, plan.stderr
    assert re.search(r"in one job, about .* in \d+ jobs \(", plan.stdout), plan.stdout
    assert "jobs that share a GPU each run slower than alone" in plan.stdout, plan.stdout


def test_a_first_plan_on_a_new_machine_is_timed_from_other_machines_and_says_so(serial, tmp_path, data_dir, bench):
    """A newcomer's first dry run, on a machine that made no records, gave no time at all: it is
    now estimated from the records of other machines of its device type, which it names."""
    runs = tmp_path / "mlp-fast" / "runs"
    runs.mkdir(parents=True)
    for path in (serial / "mlp-fast" / "runs").glob("*.json"):
        record = json.loads(path.read_text())
        record["env"]["device_name"] = "Another CPU [family 99]"
        (runs / path.name).write_text(json.dumps(record))
    plan = bench([*QUICK, "--force", "--dry-run", "--data-dir", str(data_dir), "--results-dir", str(tmp_path)])
    assert plan.returncode == 0, plan.stderr
    assert re.search(r"expected: \d+ epochs, about (\d+ s|\d+ minutes?) in one job \(dense stage from 2 dense records "
                     r"at [\d.]+ s per epoch; timed on Another CPU \[family 99\], not on this machine", plan.stdout), plan.stdout
    assert "time unknown" not in plan.stdout


def test_max_minutes_stops_starting_runs_and_a_rerun_resumes(tmp_path, data_dir, bench):
    args = [*QUICK, "--max-minutes", "0.001", "--data-dir", str(data_dir), "--results-dir", str(tmp_path)]
    first = bench(args)
    assert first.returncode == 0, first.stderr
    assert "runs remain; rerun the same command to continue" in first.stdout
    assert len(metrics(tmp_path)) < 6
    second = bench([*QUICK, "--data-dir", str(data_dir), "--results-dir", str(tmp_path)])
    assert second.returncode == 0, second.stderr
    assert "dense model, seed 0: from cache" in second.stdout
    assert len(metrics(tmp_path)) == 6


def test_breadth_order_runs_every_setting_at_the_first_seed_first(tmp_path, data_dir, bench):
    proc = bench([*QUICK, "--order", "breadth", "--dry-run", "--data-dir", str(data_dir),
                  "--results-dir", str(tmp_path)])
    rows = [line.split() for line in proc.stdout.splitlines() if line.startswith(("dense ", "magnitude ", "random "))]
    assert [(r[0], r[-3]) for r in rows] == [("dense", "0"), ("magnitude", "0"), ("random", "0"),
                                             ("dense", "1"), ("magnitude", "1"), ("random", "1")]


def test_a_claim_held_by_a_killed_process_is_taken_over(tmp_path):
    from bench.locks import Claim

    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; sys.path.insert(0, sys.argv[1]); from bench.locks import Claim; "
        "assert Claim(sys.argv[2], 'run').acquire(); print('held', flush=True); time.sleep(60)"),
        str(ROOT), str(tmp_path)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    claim = Claim(tmp_path, "run")
    assert not claim.acquire()  # a live holder keeps it
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert claim.acquire()  # the kernel released the dead holder's lock
    claim.release()
    assert not (tmp_path / "run.lock").exists()


def test_a_claim_survives_another_command_removing_the_empty_claims_folder(tmp_path):
    """A command that ends removes the claims folder when it is empty; another command's claim
    between making the folder and opening its file in it failed with FileNotFoundError, which
    stopped its sweep. Here a second process removes the empty folder as fast as it can while
    this one claims and releases: within a second the old code met it (after ~100 claims)."""
    from bench.locks import Claim

    folder = tmp_path / "claims"
    remover = subprocess.Popen([sys.executable, "-c", (
        "import contextlib, os, sys, time\n"
        "end = time.monotonic() + 5\n"
        "while time.monotonic() < end:\n"
        "    with contextlib.suppress(OSError):\n"
        "        os.rmdir(sys.argv[1])\n"), str(folder)])
    claim, claims = Claim(folder, "run"), 0
    try:
        while remover.poll() is None:
            assert claim.acquire()
            claim.release()
            claims += 1
    finally:
        remover.kill()
    assert claims > 100


def test_a_worker_idle_at_the_end_exits_by_itself(data_dir, monkeypatch):
    """At the end of a command an idle worker is not terminated: it ends by itself, running its
    exit handlers. A terminated worker leaves what its libraries registered with multiprocessing's
    resource tracker (torch.onnx's export makes a tqdm lock, a semaphore), and the tracker then
    warned of a leaked semaphore as every `bench run` of a shipped suite exited. Closed again (an
    interrupted sweep closes its executor, then the command does), it signals no process: the
    stopped worker's process group id may be another's by then."""
    from bench.data import find_source
    from bench.executors import LocalExecutor
    from bench.plan import RunSpec
    from bench.suite import load_suite
    from bench.worker import Task

    suite = load_suite(str(FAST)).with_budget(limit_train=1000, limit_test=200)
    task = Task("runs", suite, (RunSpec("dense", {}, 0),), find_source(suite.data, data_dir), str(data_dir), "cpu",
                None, None, (None,), dense={0: "not trained in this test"})
    executor = LocalExecutor(1, None, 1)
    ticket = executor.submit(task)
    done = []
    while not done:
        done = executor.wait(60)
    assert done[0][0] == ticket and done[0][1][0].result["status"] == "failed"  # it ran the task
    process = executor._workers[0].process
    executor.close()
    assert process.exitcode == 0
    signalled = []
    monkeypatch.setattr(os, "killpg", lambda *args: signalled.append(args))
    monkeypatch.setattr(os, "kill", lambda *args: signalled.append(args))
    executor.close()
    assert signalled == []


def test_a_killed_fork_server_is_named_and_a_new_one_serves_the_next_task(data_dir):
    """CPU workers are forked from a fork server; killed (by the OOM killer, or by hand), it takes
    its workers with it. Their runs fail naming the server, and the next task starts a new one."""
    from bench.data import find_source
    from bench.executors import LocalExecutor
    from bench.plan import RunSpec
    from bench.suite import load_suite
    from bench.worker import Task

    suite = load_suite(str(FAST)).with_budget(limit_train=1000, limit_test=200)
    task = Task("runs", suite, (RunSpec("dense", {}, 0),), find_source(suite.data, data_dir), str(data_dir), "cpu",
                None, None, (None,), dense={0: "not trained in this test"})
    executor = LocalExecutor(1, None, 1)
    try:
        executor.submit(task)
        os.kill(forkserver._forkserver._forkserver_pid, signal.SIGKILL)  # while its worker starts
        (_, (outcome,)), = executor.wait(60)
        assert outcome.result["error"].startswith("WorkerDied: the worker process running this task ended with "
                                                  "the fork server that started it"), outcome.result["error"]
        executor.submit(task)
        (_, (outcome,)), = executor.wait(60)
        assert "not trained in this test" in outcome.result["error"], outcome.result["error"]  # it ran
    finally:
        executor.close()


REPORTS = '''
    import os
    from bench import Method, register_method

    @register_method("reports")
    class Reports(Method):
        """Fails with what its worker process sees."""

        def run(self, ctx):
            raise RuntimeError(f"saw {os.environ.get('BENCH_TEST_MARK')} and {os.environ.get('BENCH_TEST_GONE')} "
                               f"in {os.getcwd()}")
'''


def test_a_worker_sees_the_environment_import_path_and_folder_of_the_command_at_its_start(
        tmp_path, data_dir, bench, plugins, monkeypatch):
    """On the CPU, workers are forked from a fork server that the first worker of this process
    started. A later worker still sees the command's environment variables (not one removed since
    the server started), import path (a plugin installed since) and working folder, as a freshly
    spawned process would (multiprocessing passes the last two; the harness, the environment)."""
    tiny = ["run", "--suite", str(FAST), "--seeds", "0", "--epochs", "1", "--limit-train", "1000", "--limit-test",
            "200", "--threads", "1", "--executor", "local", "--data-dir", str(data_dir), "--results-dir", str(tmp_path)]
    monkeypatch.setenv("BENCH_TEST_GONE", "there when the fork server started")
    forkserver._forkserver._stop()  # (CPython's own tests' way) the next worker starts a new one, with the variable
    assert bench([*tiny, "--methods", "dense"]).returncode == 0  # the fork server runs from here on
    plugins(make_distribution(tmp_path / "site", "reporter", REPORTS, {"reports": "reporter"}))
    monkeypatch.setenv("BENCH_TEST_MARK", "the mark")
    monkeypatch.delenv("BENCH_TEST_GONE")
    (tmp_path / "here").mkdir()
    monkeypatch.chdir(tmp_path / "here")
    assert bench([*tiny, "--methods", "reports"]).returncode == 1
    (record,) = [r for r in records_of(tmp_path) if r["config"]["method"] == "reports"]
    assert record["error"].startswith(f"RuntimeError: saw the mark and None in {tmp_path / 'here'}\n"), record["error"]


def test_with_gpus_workers_are_spawned_afresh():
    """Nothing may touch CUDA before a worker picks its GPU: a fork server's imports could."""
    from bench.executors import LocalExecutor

    assert LocalExecutor(2, ["0", "1"])._ctx.get_start_method() == "spawn"
    assert LocalExecutor(2, None)._ctx.get_start_method() == "forkserver"


def test_a_worker_spawned_as_on_a_gpu_ranks_its_first_runs(tmp_path, data_dir, bench, monkeypatch):
    """With GPUs a worker starts bare (spawned), not from the CPU's fork server, which has
    imported torch._dynamo before any worker runs. A worker notes torch's and the harness's
    functions as its task starts and fails a run after which one is bound anew (bench.worker.
    _put_back); Dynamo wraps torch.manual_seed when it is first imported, which an optimizer's
    first step does. The note must come after that import (bench.data imports torchvision, which
    imports Dynamo), or every GPU worker's first runs fail with 'the method rebound
    torch.manual_seed', as no CPU run shows. Here, on the CPU, the GPU's way: the first task of a
    spawned worker runs methods (its dense model cached), and they are ok."""
    import multiprocessing as mp

    from bench import executors

    tiny = ["run", "--suite", str(FAST), "--seeds", "0", "--epochs", "1", "--finetune-epochs", "1",
            "--limit-train", "1000", "--limit-test", "200", "--threads", "1", "--data-dir", str(data_dir),
            "--results-dir", str(tmp_path)]
    assert bench([*tiny, "--methods", "dense"]).returncode == 0  # inline: the dense model cached
    monkeypatch.setattr(executors, "_start_method", lambda gpus: mp.get_context("spawn"))
    ran = bench([*tiny, "--methods", "magnitude", "--executor", "local", "--jobs", "1", "--fuse", "2"])
    assert ran.returncode == 0, ran.stdout + ran.stderr
    got = sorted((r["config"]["method"], r["status"], r["metrics"].get("fused_with")) for r in records_of(tmp_path))
    assert got == [("dense", "ok", None), ("magnitude", "ok", 2), ("magnitude", "ok", 2)], \
        [r["error"] for r in records_of(tmp_path)]  # its first task: two runs, fused


@pytest.mark.ray
def test_ray_on_a_two_node_cluster_gives_the_same_records(serial, tmp_path, data_dir):
    """Two Ray nodes started here (Ray's own cluster utilities), one CPU each, so the runs
    spread over both; the records match the serial ones."""
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)
    try:
        start = time.time()
        proc = run_bench([*QUICK, "--executor", "ray", "--ray-address", cluster.address, "--cpus-per-run", "1",
                          "--data-dir", str(data_dir), "--results-dir", str(tmp_path)])
        assert proc.returncode == 0, proc.stderr
        assert "ray, 2 nodes, 0 GPUs and 1 CPUs per run" in proc.stdout, proc.stdout
        assert metrics(tmp_path) == metrics(serial)
        assert len(list((tmp_path / "mlp-fast" / "logs").glob("*.log"))) == 8  # logs came back through Ray
        print(f"ray sweep: {time.time() - start:.1f}s")
    finally:
        ray.shutdown()
        cluster.shutdown()


def running(pid: int) -> bool:
    """Whether process `pid` runs (a zombie does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.ray
def test_closing_the_ray_executor_stops_its_tasks_on_a_joined_cluster(tmp_path, data_dir, monkeypatch):
    """An interrupted sweep closes its executor, then releases its runs' claims: a task still
    running on the cluster would go on writing (or holding its GPU) while another command takes
    its run. Ray ends a departed driver's tasks only once it notices the driver gone, after close
    returned (at once on one machine, or later), so the driver's leaving is left out here
    (shutdown does nothing until the end): close itself must stop the task, a 1 s sleep that then
    writes a file. Closed again, it does nothing."""
    import ray
    from ray.cluster_utils import Cluster

    from bench.data import find_source
    from bench.executors import RayExecutor
    from bench.plan import RunSpec
    from bench.suite import load_suite
    from bench.worker import Task

    def sleeper(task, seeds, *dense, started=str(tmp_path / "started"), ended=str(tmp_path / "ended")):
        Path(started).write_text(str(os.getpid()))
        time.sleep(1)
        Path(ended).write_text("")

    suite = load_suite(str(FAST))
    task = Task("runs", suite, (RunSpec("dense", {}, 0),), find_source(suite.data, data_dir), str(data_dir), "cpu",
                None, None, (None,), dense={0: "not trained in this test"})
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    shutdown = ray.shutdown
    try:
        executor = RayExecutor(cluster.address, 0, 1)
        executor._remote = ray.remote(num_cpus=1)(sleeper)
        executor.submit(task)
        deadline = time.monotonic() + 60
        while not (tmp_path / "started").exists():
            assert time.monotonic() < deadline, "the task never started"
            time.sleep(0.05)
        monkeypatch.setattr(ray, "shutdown", lambda **kwargs: None)
        executor.close()
        executor.close()
        # Ray's forced cancel kills the worker process; on a loaded machine it may take a moment to
        # die after close returns (CI's Ray tier, beside other tests): well within the sleeper's 1 s
        pid, gone_by = int((tmp_path / "started").read_text()), time.monotonic() + 0.5
        while running(pid) and time.monotonic() < gone_by:
            time.sleep(0.02)
        assert not running(pid)
        time.sleep(2)
        assert not (tmp_path / "ended").exists()
    finally:
        shutdown()
        cluster.shutdown()


@pytest.mark.ray
def test_closing_the_ray_executor_after_its_ray_session_ended_raises_nothing_and_starts_no_ray(monkeypatch):
    """A task of a Ray session that has ended (Ray shut down, then started again in this process)
    is unknown to the new one, which refuses to cancel it: the close goes on, as that task ended
    with its session. With Ray shut down and not started again, close calls no Ray function, any
    of which would start a new local Ray."""
    import ray
    from ray.cluster_utils import Cluster

    from bench.executors import RayExecutor

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    try:
        for restarted in (True, False):
            executor = RayExecutor(cluster.address, 0, 1)
            executor._refs[ray.remote(num_cpus=1)(lambda: time.sleep(60)).remote()] = (0, None, float("inf"))
            ray.shutdown()
            if restarted:
                ray.init(address=cluster.address, log_to_driver=False)
            else:
                monkeypatch.setattr(ray, "init", lambda *args, **kwargs: pytest.fail("close started a Ray"))
            executor.close()
            assert not ray.is_initialized()
    finally:
        ray.shutdown()
        cluster.shutdown()


def test_a_capped_log_echoes_its_note_whole_even_after_lines_past_the_limit_were_shown(tmp_path, monkeypatch):
    """With one job, the console shows a run's log as it grows. Lines past the limit may have
    been echoed before the driver's next poll cuts them: the note that replaces them is still
    echoed, whole and once, and the lines the run writes after the cut are not."""
    from types import SimpleNamespace

    from bench import executors

    monkeypatch.setattr(executors, "LOG_LIMIT", 100)
    log = tmp_path / "run.log"
    worker = object.__new__(executors._Worker)  # its log bookkeeping only: no process
    worker.task, worker.shown, worker.capped = SimpleNamespace(log_paths=[log]), {}, {}
    shown: list[str] = []
    lines = [f"line {i:03d}" for i in range(30)]  # 9 bytes each with its newline: 270 in all
    log.write_text("\n".join(lines[:20]) + "\n")
    worker.echo_logs(shown.append)
    assert shown == lines[:20]
    worker.cap_logs()
    with log.open("a") as f:
        f.write("\n".join(lines[20:]) + "\n")
    worker.cap_logs()
    worker.echo_logs(shown.append)
    note = "[bench: this log reached its limit of 9.53674e-05 MiB here; what the run wrote after that is left out]"
    assert shown == [*lines[:20], "", note]
    assert log.read_text() == "\n".join(lines[:20])[:100] + "\n" + note + "\n"


def test_a_worker_spawned_for_a_gpu_sees_only_its_gpu_from_its_first_import(monkeypatch):
    """A spawned worker imports bench.executors (torch.utils.benchmark with it, which asks
    torch.cuda.is_available() as it loads) before its main function runs; CUDA reads
    CUDA_VISIBLE_DEVICES at that first question and never again. Set only in the main function,
    it came too late: on a machine with several GPUs every worker trained on the first. The
    variable must be in the environment the worker process starts with (/proc/PID/environ)."""
    from bench.executors import LocalExecutor

    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    executor = LocalExecutor(2, ["5", "7"], 1)
    workers = [executor._start_worker(slot) for slot in (0, 1)]
    try:
        for worker, gpu in zip(workers, ("5", "7")):
            assert worker.conn.poll(60) and worker.conn.recv() == "ready"  # started: no longer mid-exec
            environ = Path(f"/proc/{worker.process.pid}/environ").read_bytes().split(b"\0")
            assert f"CUDA_VISIBLE_DEVICES={gpu}".encode() in environ
        assert "CUDA_VISIBLE_DEVICES" not in os.environ  # the driver's own is as it was
    finally:
        for worker in workers:
            worker.conn.close()
            worker.stop(grace=10.0)


def test_after_a_failed_run_a_gpu_worker_is_retired_and_the_next_task_gets_a_fresh_one(data_dir):
    """A failed run on a GPU may have broken its worker's CUDA context for good. The worker
    checked that itself and ended after reporting; but the driver, handed the outcomes, had given
    the idle worker its next task by then, and that task was lost with it (`WorkerDied ... exited
    with code 0`). Now the driver retires the worker as it takes the outcomes: the slot's next
    task starts a fresh worker. (An executor for a GPU: its workers are spawned with it visible,
    and the tasks here run on the CPU.)"""
    from bench.data import find_source
    from bench.executors import LocalExecutor
    from bench.plan import RunSpec
    from bench.suite import load_suite
    from bench.worker import Task

    suite = load_suite(str(FAST)).with_budget(limit_train=1000, limit_test=200)
    task = Task("runs", suite, (RunSpec("dense", {}, 0),), find_source(suite.data, data_dir), str(data_dir), "cpu",
                None, None, (None,), dense={0: "not trained in this test"})
    executor = LocalExecutor(1, ["0"], 1)
    try:
        executor.submit(task)
        (_, (outcome,)), = executor.wait(120)
        assert "not trained in this test" in outcome.result["error"], outcome.result["error"]  # it ran, and failed
        assert executor._workers[0] is None  # retired as its outcomes came: no task goes to it
        executor.submit(task)
        (_, (outcome,)), = executor.wait(120)
        assert "not trained in this test" in outcome.result["error"], outcome.result["error"]  # a fresh one ran it
    finally:
        executor.close()


class _FakeWorker:
    """What LocalExecutor._wait_once reads of a worker: its process, pipe and task ticket."""

    def __init__(self, process, conn, ticket: int):
        self.process, self.conn, self.ticket, self.task = process, conn, ticket, None
        self.started, self.deadline = False, float("inf")

    def cap_logs(self) -> None:
        pass


def _reports_and_ends(conn) -> None:
    from bench.executors import READY

    conn.send(READY)
    conn.send(["the outcomes"])


def test_a_worker_that_dies_as_it_starts_loses_no_outcome_another_worker_sent_meanwhile():
    """A replacement worker that cannot start (the code changed on disk mid-sweep) stops the
    sweep, but only after the outcomes another worker sent in the same wait are handed over (and
    so recorded): raised at once, they were dropped, and a finished run ran again."""
    import multiprocessing as mp

    from bench.errors import ExecutorError
    from bench.executors import LocalExecutor

    fork = mp.get_context("fork")
    executor = LocalExecutor(jobs=2, gpus=None)
    finished_end, child = fork.Pipe()
    finished = fork.Process(target=_reports_and_ends, args=(child,))
    broken_end, broken_child = fork.Pipe()
    broken = fork.Process(target=sys.exit, args=(1,))
    for p in (finished, broken):
        p.start()
        p.join()
    child.close()
    broken_child.close()
    executor._workers = [_FakeWorker(finished, finished_end, 7), _FakeWorker(broken, broken_end, 8)]
    assert executor._wait_once(5.0) == [(7, ["the outcomes"])]
    with pytest.raises(ExecutorError, match="a worker process ended as it started"):
        executor._wait_once(5.0)


@dataclasses.dataclass
class _RayTask:
    """What RayExecutor.submit reads of a task."""

    dense: dict
    timeout_s: float | None = None


class _Weights:
    """A dense model's weights as submit sees them: an object it must put in Ray's store once."""


def test_the_ray_executor_never_sends_a_freed_models_weights_for_a_new_model_at_its_address():
    """Ray's object store gets each dense model once, keyed by the model's id(). A model freed
    while the executor lives gives its id to the next object made, and a new model that got it was
    sent as the old one's weights: the executor holds every model it has put."""
    from bench.executors import RayExecutor

    stored = itertools.count()
    executor = RayExecutor.__new__(RayExecutor)
    executor._ray = types.SimpleNamespace(put=lambda weights: f"ref {next(stored)}")  # holds no weights
    sent = []
    executor._remote = types.SimpleNamespace(remote=lambda task, seeds, *refs: sent.append(refs) or object())
    executor._dense_refs, executor._refs, executor._tickets = {}, {}, itertools.count()
    for _ in range(20):  # CPython hands a freed object's address to the next of its size
        executor.submit(_RayTask({0: _Weights()}))
        executor._refs.clear()  # the task came back (wait), and with it went its model
    assert sent == [(f"ref {i}",) for i in range(20)]
    weights = _Weights()
    executor.submit(_RayTask({0: weights}))
    executor.submit(_RayTask({0: weights}))
    assert sent[-2:] == [("ref 20",), ("ref 20",)]  # one put per model


def test_a_ray_task_whose_process_died_is_a_worker_death_and_another_error_is_itself():
    """Ray reports a task whose process died (after its retries) as WorkerCrashedError, and one
    whose node died as NodeDiedError: they are what a local worker's death is (WorkerDied), so
    that the runner counts them and runs a fused task's runs again alone; the plugin's own error
    stays as Ray gave it."""
    from bench.executors import RayExecutor

    class WorkerCrashedError(Exception):
        pass

    class RayTaskError(Exception):
        pass

    raised = {"crashed": WorkerCrashedError("The worker died unexpectedly\nwhile executing"),
              "raised": RayTaskError("ValueError: the plugin's own")}
    executor = RayExecutor.__new__(RayExecutor)

    def get(ref):
        raise raised[ref]

    executor._ray = types.SimpleNamespace(wait=lambda refs, **_: (refs, []), get=get,
                                          exceptions=types.SimpleNamespace(WorkerCrashedError=WorkerCrashedError))
    task = types.SimpleNamespace(specs=("a", "b"), device="cpu", threads=1)
    executor._refs = {"crashed": (1, task, float("inf")), "raised": (2, task, float("inf"))}
    errors = {ticket: [o.result["error"] for o in outcomes] for ticket, outcomes in executor.wait(0.0)}
    assert errors == {1: ["WorkerDied: Ray lost the task's process, after its retries (WorkerCrashedError: The worker "
                          "died unexpectedly)"] * 2,
                      2: ["RayTaskError: ValueError: the plugin's own"] * 2}
