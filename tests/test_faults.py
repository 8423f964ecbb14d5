"""Faults injected into real sweeps: plugins that exit, break or return garbage, kill -9 at random
points, a full disk (a small tmpfs), concurrent commands, truncated files. None may corrupt, hide
or fake a result: every finished record survives whole, nothing half-written stays behind, and
every failure is named where people look (console, failed-runs table, warnings).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import torch
import pytest

from bench import files, records, registry
from bench.cli import main
from bench.context import DenseWeights
from conftest import FAST, ROOT, as_from_a_terminal, make_distribution, run_bench

registry.discover()  # the plugins' import warnings belong to no test's output

TINY = ["--suite", str(FAST), "--seeds", "0", "--epochs", "1", "--finetune-epochs", "1",
        "--limit-train", "2000", "--limit-test", "500"]
INLINE = ["--executor", "inline"]  # runs in this process: these tests are of the files, not of processes
SUITE = "mlp-fast"  # the results folder of TINY's suite

FAULTY = '''
    import os, re, signal, sys, time

    import torch
    from torch import nn
    from tqdm import tqdm

    from bench import Method, NotApplicable, bounded, register_method

    @register_method("exits")
    class Exits(Method):
        """Calls sys.exit in run()."""

        def run(self, ctx):
            ctx.pretrained()
            sys.exit("giving up")

    @register_method("explodes")
    class Explodes(Method):
        """Raises inside run()."""

        def run(self, ctx):
            raise RuntimeError("the plugin blew up on purpose")

    @register_method("interrupts")
    class Interrupts(Method):
        """Raises KeyboardInterrupt itself: no one pressed Ctrl-C."""

        def run(self, ctx):
            raise KeyboardInterrupt

    class Halt(BaseException):
        """An exception that is no Exception."""

    @register_method("halts")
    class Halts(Method):
        """Raises its own BaseException."""

        def run(self, ctx):
            raise Halt("the plugin halted on purpose")

    @register_method("naps")
    class Naps(Method):
        """Sleeps in run(), where Ctrl-C can reach it."""

        def run(self, ctx):
            print("napping now", flush=True)
            time.sleep(600)

    @register_method("forgets-zeros")
    class ForgetsZeros(Method):
        """Sweeps a sparsity it never reaches, as a pruning method whose fine-tuning regrows the
        pruned weights: the dense model, returned as it is."""

        sweep = "sparsity"
        sparsity: float = 0.9

        def run(self, ctx):
            return ctx.pretrained()

    @register_method("chatters")
    class Chatters(Method):
        """Prints a KiB every millisecond for 2.5 s, then returns the dense model."""

        def run(self, ctx):
            end, line = time.monotonic() + 2.5, 0
            while time.monotonic() < end:
                print(f"chatter {line:08d} " + "x" * 1000, flush=True)
                line += 1
                time.sleep(0.001)
            return ctx.pretrained()

    @register_method("scribbles")
    class Scribbles(Method):
        """Overwrites the finished dense record in $SCRIBBLE_RUNS, then returns the dense model."""

        def run(self, ctx):
            for name in os.listdir(os.environ["SCRIBBLE_RUNS"]):
                if name.startswith("dense-"):
                    with open(os.path.join(os.environ["SCRIBBLE_RUNS"], name), "w") as f:
                        f.write("{}")
            return ctx.pretrained()

    @register_method("bigfig")
    class BigFigure(Method):
        """Records a figure of 100 kB."""

        def run(self, ctx):
            ctx.record(note="x" * 100_000)
            return ctx.pretrained()

    @register_method("diverges")
    class Diverges(Method):
        """Trains with a learning rate that overflows the loss."""

        def run(self, ctx):
            model = ctx.new_model()
            ctx.train(model, epochs=1, lr=1e12)
            return model

    @register_method("nan-weights")
    class NanWeights(Method):
        """Returns the dense model with one NaN weight."""

        def run(self, ctx):
            model = ctx.pretrained()
            with torch.no_grad():
                model[1].weight[0, 0] = float("nan")
            return model

    class Overflow(nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return self.inner(x) * float("inf")

    @register_method("inf-outputs")
    class InfOutputs(Method):
        """Returns a model with finite weights and infinite outputs."""

        def run(self, ctx):
            return Overflow(ctx.pretrained())

    @register_method("not-applicable")
    class NeedsBatchNorm(Method):
        """Cannot work on this suite."""

        def run(self, ctx):
            raise NotApplicable("the model has no BatchNorm layers")

    @register_method("stuck")
    class Stuck(Method):
        """Hangs in run() in a C call that holds the GIL (a regular expression that backtracks for
        ever), deaf to SIGTERM, as a plugin stuck in a C library can be; after a progress bar, as
        plugins show (and torch.fx makes when a model is deployed)."""

        def run(self, ctx):
            ctx.pretrained()
            for _ in tqdm(range(2), disable=True):
                pass
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            print("stuck now", flush=True)
            re.match(r"(a+)+$", "a" * 64 + "b")

    @register_method("widens")
    class Widens(Method):
        """Returns the dense model behind an extra layer: larger than the dense model, and valid."""

        def run(self, ctx):
            return nn.Sequential(ctx.pretrained(), nn.Linear(10, 10))

    @register_method("zeroes")
    class Zeroes(Method):
        """Zeroes every weight: a model that executes no FLOPs, which the harness still measures."""

        def run(self, ctx):
            model = ctx.pretrained()
            with torch.no_grad():
                for p in model.parameters():
                    p.zero_()
            return model

    @register_method("no-return")
    class NoReturn(Method):
        """Fine-tunes the dense model and forgets to return it."""

        def run(self, ctx):
            ctx.pretrained()

    @register_method("returns-pair")
    class ReturnsPair(Method):
        """Returns the model with a note beside it."""

        def run(self, ctx):
            return ctx.pretrained(), {"note": "pruned"}

    @register_method("returns-state")
    class ReturnsState(Method):
        """Returns the model's state_dict."""

        def run(self, ctx):
            return ctx.pretrained().state_dict()

    @register_method("ranged")
    class Ranged(Method):
        """Declares a range on its parameter."""

        amount: float = bounded(0.5, gt=0, le=1)

        def run(self, ctx):
            return ctx.pretrained()
'''

SYNTAX_ERROR = '''\
from bench import Method, register_method


@register_method("syntax")
class Syntax(Method)
    """Forgot a colon."""
'''


@pytest.fixture(scope="module")
def faulty(tmp_path_factory) -> Path:
    site = make_distribution(tmp_path_factory.mktemp("site"), "faulty", FAULTY, {
        name: "faulty" for name in ("exits", "explodes", "interrupts", "halts", "naps", "chatters", "scribbles", "bigfig", "diverges", "nan-weights", "inf-outputs",
                                    "not-applicable", "stuck", "ranged", "widens", "zeroes", "no-return", "returns-pair",
                                    "returns-state", "forgets-zeros")})
    make_distribution(site, "exit_at_import", "import sys\nsys.exit(3)\n", {"exit-import": "exit_at_import"})
    make_distribution(site, "missing_import", "import no_such_module_anywhere\n", {"missing": "missing_import"})
    make_distribution(site, "registers_nothing", "LEVEL = 0.9\n", {"hollow": "registers_nothing"})
    make_distribution(site, "syntax_plugin", "", {"syntax": "syntax_plugin"})
    (site / "syntax_plugin.py").write_text(SYNTAX_ERROR)
    return site


def statuses(results: Path) -> dict[str, str]:
    recs = [json.loads(p.read_text()) for p in (results / SUITE / "runs").glob("*.json")]
    return {r["config"]["method"]: r["status"] for r in recs}


def test_faulty_plugins_become_failed_or_invalid_rows_and_the_sweep_goes_on(tmp_path, data_dir, faulty, plugins,
                                                                            bench):
    plugins(faulty)
    results = tmp_path / "results"
    args = ["run", *TINY, "--data-dir", str(data_dir), "--results-dir", str(results)]
    proc = bench([*args, "--methods", "dense,syntax,exit-import,missing,exits,explodes,interrupts,halts,diverges,"
                                      "nan-weights,inf-outputs,not-applicable,widens,zeroes"])
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "10 of 14 runs did not finish" in proc.stderr  # a skipped run is no failure
    assert statuses(results) == {"dense": "ok", "widens": "ok", "zeroes": "ok", "syntax": "failed", "exit-import": "failed", "missing": "failed",
                                 "exits": "failed", "explodes": "failed", "interrupts": "failed", "halts": "failed",
                                 "diverges": "diverged",
                                 "nan-weights": "invalid", "inf-outputs": "invalid", "not-applicable": "skipped"}
    causes = ["FAILED: ImportError: plugin 'syntax' failed to import: SyntaxError: expected ':' (syntax_plugin.py, line 5)",
              "FAILED: ImportError: plugin 'exit-import' failed to import: SystemExit: the plugin called sys.exit(3)",
              "FAILED: ImportError: plugin 'missing' failed to import: ModuleNotFoundError: No module named "
              "'no_such_module_anywhere'",
              "FAILED: SystemExit: the plugin called sys.exit('giving up')",
              "FAILED: RuntimeError: the plugin blew up on purpose",
              "FAILED: KeyboardInterrupt: raised by the plugin's own code, not by Ctrl-C",
              "FAILED: Halt: the plugin halted on purpose",
              "DIVERGED: training diverged at epoch 1",
              "INVALID: the returned model holds non-finite values in '1.weight'",
              "INVALID: the returned model's outputs on 16 test images are not finite",
              "SKIPPED: not applicable: the model has no BatchNorm layers"]
    md = (results / SUITE / "leaderboard-custom.md").read_text()
    assert "## failed and skipped runs" in md
    for cause in causes:
        assert cause in proc.stdout, cause  # the console line of the run
        assert cause.split(": ", 1)[1] in md, cause  # the failed-runs table
    assert "| invalid |" in md.replace("  ", " ").replace("  ", " ")
    ranked = pd.read_csv(results / SUITE / "leaderboard-custom.csv")
    assert sorted(ranked.method) == ["dense", "widens", "zeroes"]  # invalid models are never ranked
    rows = ranked.set_index("method")
    assert rows.nonzeros["zeroes"] == 0 and pd.isna(rows["theoretical_speedup_x"]["zeroes"])  # no FLOPs: no ratio
    assert rows.nonzeros["widens"] == rows.nonzeros["dense"] + 110  # its extra layer, measured as such
    assert rows["sparsity_%"]["widens"] < 0
    assert re.search(r"widens .* -> accuracy [\d.]+%  sparsity -[\d.]+%  size [\d.]+ KiB \(1\.0x larger\)", proc.stdout)

    # A rerun changes no finished record (a skipped run is finished).
    before = {p.name: p.read_bytes() for p in (results / SUITE / "runs").glob("*.json")}
    again = bench([*args, "--methods", "dense,not-applicable"])
    assert again.returncode == 0, again.stderr
    assert "2 runs (dense, not-applicable; seeds [0]), 0 to run, 2 finished before" in again.stdout
    assert {p.name: p.read_bytes() for p in (results / SUITE / "runs").glob("*.json")} == before

    # The quick listing reads the plugins' source; --check imports them, as a run does.
    listed = bench(["list", "methods"])
    assert listed.returncode == 0, listed.stderr
    assert "UNREADABLE: SyntaxError: expected ':' (syntax_plugin.py, line 5)" in listed.stdout
    assert "UNREADABLE: exit_at_import.py registers no method in its source" in listed.stdout
    assert "amount=0.5" in listed.stdout
    checked = bench(["list", "methods", "--check"])
    assert checked.returncode == 0, checked.stderr
    assert "FAILED TO IMPORT: SyntaxError: expected ':' (syntax_plugin.py, line 5)" in checked.stdout
    assert "FAILED TO IMPORT: SystemExit: the plugin called sys.exit(3)" in checked.stdout
    assert "FAILED TO IMPORT: ModuleNotFoundError: No module named 'no_such_module_anywhere'" in checked.stdout
    assert "amount=0.5" in checked.stdout

    out_of_range = bench([*args, "--methods", "ranged", "--set", "ranged.amount=2"])
    assert out_of_range.returncode == 2
    assert "bench: error: --set: method 'ranged' parameter 'amount': expected a number in (0, 1], got 2.0" in out_of_range.stderr


def test_an_entry_point_whose_module_registers_no_method_is_named_so_by_every_command(tmp_path, data_dir, faulty,
                                                                                    plugins, bench):
    """An entry point whose module imports but never calls @register_method (the decorator left
    out): `bench list methods` names it from its source, and `--check` and a run, which import it,
    say the same, where --check left it out and a run called it an unknown method."""
    plugins(faulty)
    why = "its module registers_nothing imported, but registered no method: decorate its class with " \
          "@register_method('hollow')"
    checked = bench(["list", "methods", "--check"])
    assert checked.returncode == 0, checked.stderr
    assert f"FAILED TO IMPORT: PluginError: {why}" in checked.stdout, checked.stdout
    proc = bench(["run", *TINY, *INLINE, "--methods", "hollow", "--data-dir", str(data_dir),
                  "--results-dir", str(tmp_path)])
    assert proc.returncode == 1, proc.stderr
    assert f"FAILED: ImportError: plugin 'hollow' failed to import: PluginError: {why}" in proc.stdout, proc.stdout


def test_a_run_far_below_the_sparsity_it_was_given_says_what_most_likely_happened(tmp_path, data_dir, faulty,
                                                                                   plugins, bench):
    """A pruning plugin whose fine-tuning lets the pruned weights grow back has an ok row at
    about 0% sparsity under the label `sparsity=0.9`: its run's line says what was asked and
    what most likely happened."""
    plugins(faulty)
    proc = bench(["run", *TINY, *INLINE, "--methods", "forgets-zeros", "--set", "forgets-zeros.sparsity=0.9",
                  "--data-dir", str(data_dir), "--results-dir", str(tmp_path)])
    assert proc.returncode == 0, proc.stderr
    assert ("(asked for sparsity 90%: did its pruned weights grow back? ctx.finetune(model, hold_zeros=True) keeps "
            "them at zero)") in proc.stdout, proc.stdout
    pruned = bench(["run", *TINY, *INLINE, "--methods", "magnitude", "--set", "magnitude.sparsity=0.9",
                    "--data-dir", str(data_dir), "--results-dir", str(tmp_path)])
    assert pruned.returncode == 0 and "asked for sparsity" not in pruned.stdout, pruned.stdout


def test_a_run_that_returns_no_model_says_what_it_most_likely_meant(tmp_path, data_dir, faulty, plugins, bench):
    """A missing `return`, a (model, info) pair and a state_dict are the return values a plugin
    author gets wrong first; "returned NoneType, not an nn.Module" left the fix to guess."""
    plugins(faulty)
    proc = bench(["run", *TINY, *INLINE, "--methods", "no-return,returns-pair,returns-state",
                  "--data-dir", str(data_dir), "--results-dir", str(tmp_path)])
    assert proc.returncode == 1, proc.stderr
    for cause in ("TypeError: no-return.run() returned NoneType, not an nn.Module: does run() end with `return model`?",
                  "TypeError: returns-pair.run() returned tuple, not an nn.Module: return the model alone "
                  "(ctx.record(...) stores other figures in the record)",
                  "TypeError: returns-state.run() returned OrderedDict, not an nn.Module: return the model itself, "
                  "not its state_dict()"):
        assert f"FAILED: {cause}" in proc.stdout, cause


@pytest.mark.parametrize("fuse", ["2", "off"])
def test_a_harness_fault_around_one_run_fails_that_run_alone(tmp_path, data_dir, bench, monkeypatch, fuse):
    """A fault in the worker's steps around a method (here the reference model, for the first run
    of the task) is that run's failed row, fused or not: the task's other run and the sweep go on.
    (It once reached the driver as an exception in place of a result, and ended the sweep.)"""
    from bench import worker

    real, calls = worker._reference, []

    def first_fails(*args):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("the reference model could not be built")
        return real(*args)

    monkeypatch.setattr(worker, "_reference", first_fails)
    results = tmp_path / "results"
    proc = bench(["run", *TINY, *INLINE, "--methods", "magnitude", "--fuse", fuse, "--data-dir", str(data_dir),
                  "--results-dir", str(results)])
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr and "1 of 2 runs did not finish" in proc.stderr
    recs = [json.loads(p.read_text()) for p in (results / SUITE / "runs").glob("magnitude-*.json")]
    assert sorted(r["status"] for r in recs) == ["failed", "ok"]
    assert "RuntimeError: the reference model could not be built" in proc.stdout


@pytest.mark.xdist_group("processes")
def test_ctrl_c_and_kill_stop_a_sweep_within_seconds_keeping_finished_records(tmp_path, data_dir, faulty):
    """Real processes: Ctrl-C (SIGINT) and `kill` (SIGTERM) reach the command while a run hangs in
    its worker process, deaf to SIGTERM. Without waiting for it the command exits 130, the run in progress
    leaves no record, every finished record stays as it was, and the leaderboard is rebuilt. Then
    `kill -9` of the command: its hung worker (forked from a fork server, not from the command)
    dies with it within seconds, although it holds the GIL, and the command's output closes.
    The stop is quiet: no warning of semaphores the killed worker left behind."""
    results = tmp_path / "results"
    args = [sys.executable, "-m", "bench", "run", *TINY, "--methods", "dense,not-applicable,stuck",
            "--data-dir", str(data_dir), "--results-dir", str(results)]
    env = {**os.environ, "PYTHONPATH": f"{faulty}:{ROOT}"}
    env.pop("BENCH_EXECUTOR", None)
    before = None
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
        for log in (results / SUITE).glob("logs/stuck-*.log"):
            log.unlink()  # the last command's
        proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                preexec_fn=as_from_a_terminal)
        deadline = time.monotonic() + 300
        while not any("stuck now" in p.read_text() for p in (results / SUITE).glob("logs/stuck-*.log")):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.2)
        workers = children(proc.pid)
        sent = time.monotonic()
        proc.send_signal(sig)
        try:
            out, err = proc.communicate(timeout=90)  # returns once no process holds the command's output
            # The hung run never ends: a command waiting for it would time out above. The bound
            # is loose because stopping includes the worker's 3 s of grace and the leaderboard's
            # rebuild, which took 16 s on a 2-core machine busy with other test suites.
            assert time.monotonic() - sent < 60, f"{sig.name} took {time.monotonic() - sent:.0f} s to stop the command"
            assert not alive(workers, wait=5), f"workers outlived the command ({sig.name})"
        finally:  # a failure leaves no hung worker behind
            for pid in alive(workers, wait=0):
                os.kill(pid, signal.SIGKILL)
        if sig == signal.SIGKILL:
            assert proc.returncode == -signal.SIGKILL
        else:
            assert proc.returncode == 130, err
            assert "interrupted; finished runs are recorded" in err and "Traceback" not in err
            # the killed worker's progress bar had made a named semaphore (tqdm's lock): it leaves
            # nothing for the resource tracker to warn about
            assert "leaked semaphore" not in err, err
            last_out = out
        assert set(statuses(results)) == {"dense", "not-applicable"}  # nothing of the interrupted run
        assert "| dense " in (results / SUITE / "leaderboard-custom.md").read_text()
        now = {p.name: p.read_bytes() for p in (results / SUITE / "runs").glob("*.json")}
        assert before is None or now == before
        before = now
    assert "3 runs (dense, not-applicable, stuck; seeds [0]), 1 to run, 2 finished before" in last_out


@pytest.mark.xdist_group("processes")
def test_ctrl_c_at_a_terminal_while_the_workers_start_prints_no_traceback(tmp_path, data_dir):
    """A terminal's Ctrl-C reaches every process of its foreground group: the command, and the
    fork server it starts for its workers, which imports torch for seconds before it ignores
    SIGINT itself. Pressed then (as the sweep starts: a mistyped argument seen), it printed a
    KeyboardInterrupt traceback of torch's imports under the command's one-line message."""
    def own_group_as_from_a_terminal():
        as_from_a_terminal()
        os.setpgid(0, 0)

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("BENCH_EXECUTOR", None)
    argv = [sys.executable, "-m", "bench", *SWEEP, "--data-dir", str(data_dir), "--results-dir", str(tmp_path),
            "--executor", "local"]
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=own_group_as_from_a_terminal)
    try:
        deadline = time.monotonic() + 120
        while not any(b"forkserver" in Path(f"/proc/{pid}/cmdline").read_bytes()
                      for pid in children(proc.pid) if Path(f"/proc/{pid}").exists()):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.05)
        time.sleep(0.5)  # the fork server is importing torch (seconds)
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=90)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err
    assert "interrupted; finished runs are recorded" in err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err


@pytest.mark.xdist_group("processes")
def test_in_the_inline_executor_a_plugins_keyboard_interrupt_fails_its_run_and_ctrl_c_stops_the_sweep(
        tmp_path, data_dir, faulty):
    """A real process running every run in itself (--executor inline), where the plugin's code and
    Ctrl-C share one process: the KeyboardInterrupt a plugin raises is its failed row and the
    sweep goes on; the user's Ctrl-C, while the next run sleeps, stops the command (exit 130)
    with nothing recorded for that run."""
    results = tmp_path / "results"
    args = [sys.executable, "-m", "bench", "run", *TINY, *INLINE, "--methods", "dense,interrupts,naps",
            "--data-dir", str(data_dir), "--results-dir", str(results)]
    env = {**os.environ, "PYTHONPATH": f"{faulty}:{ROOT}"}
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=as_from_a_terminal)
    deadline, seen = time.monotonic() + 300, b""
    while b"napping now" not in seen:  # the inline executor echoes a run's prints to the console
        assert proc.poll() is None and time.monotonic() < deadline, (seen, proc.communicate())
        if select.select([proc.stdout], [], [], 1)[0]:
            seen += os.read(proc.stdout.fileno(), 1 << 16)
    proc.send_signal(signal.SIGINT)
    rest, err = proc.communicate(timeout=60)
    out, err = (seen + rest).decode(), err.decode()
    assert proc.returncode == 130, err
    assert "interrupted; finished runs are recorded" in err and "Traceback" not in err
    assert "FAILED: KeyboardInterrupt: raised by the plugin's own code, not by Ctrl-C" in out
    assert statuses(results) == {"dense": "ok", "interrupts": "failed"}


@pytest.mark.ray
def test_under_ray_a_plugins_keyboard_interrupt_fails_its_run_and_the_sweep_goes_on(tmp_path, data_dir, faulty):
    """A Ray worker keeps Python's SIGINT handler, where a KeyboardInterrupt counts as the user's
    Ctrl-C: the plugin's own ended its task as a Ray cancellation. Ctrl-C is the driver's there
    too, so it is the run's failure, named as in the other executors."""
    from conftest import run_bench

    results = tmp_path / "results"
    proc = run_bench(["run", *TINY, "--executor", "ray", "--cpus-per-run", "1", "--methods", "dense,interrupts,explodes",
                      "--data-dir", str(data_dir), "--results-dir", str(results)], pythonpath=[faulty])
    assert proc.returncode == 1, proc.stderr
    assert "FAILED: KeyboardInterrupt: raised by the plugin's own code, not by Ctrl-C" in proc.stdout, proc.stdout
    assert statuses(results) == {"dense": "ok", "interrupts": "failed", "explodes": "failed"}


def tmp_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.name.endswith(".tmp")]


def usable(folder: Path) -> dict[str, bytes]:
    """Every record file under `folder`, each checked to be a whole record."""
    out = {}
    for p in (folder / SUITE / "runs").glob("*.json"):
        assert records.read_record(p) is not None, f"{p} is not a whole record"
        out[p.name] = p.read_bytes()
    return out


SWEEP = ["run", "--suite", str(FAST), "--methods", "dense,magnitude,random", "--seeds", "0,1",
         "--set", "magnitude.sparsity=0.9", "--set", "random.sparsity=0.9", "--epochs", "1",
         "--finetune-epochs", "1", "--limit-train", "2000", "--limit-test", "500", "--threads", "1"]


def start(results: Path, data_dir: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    argv = [sys.executable, "-m", "bench", *SWEEP, "--data-dir", str(data_dir), "--results-dir", str(results), *extra]
    return subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def children(pid: int) -> list[int]:
    """Every process below `pid`: its workers and any process they started."""
    try:
        below = [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []
    return below + [g for c in below for g in children(c)]


def alive(pids: list[int], wait: float) -> list[int]:
    """Those of `pids` still running (zombies count as dead) after up to `wait` seconds. A
    worker killed with its driver dies at once; one still starting (importing torch) when the
    driver died finds its pipe closed and exits when it gets there."""
    deadline = time.monotonic() + wait
    while True:
        running = []
        for pid in pids:
            try:
                if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                    running.append(pid)
            except OSError:
                pass
        if not running or time.monotonic() > deadline:
            return running
        time.sleep(0.5)


@pytest.mark.xdist_group("processes")
def test_kill_9_at_random_points_loses_no_finished_record(tmp_path, data_dir):
    """Kill the command 5 times at random moments: once 0 to 2 more records exist than before, plus
    0 to 4 seconds, so the kills fall in the import, the dense stage, runs and writes. Three of
    the commands run their runs in their own process (--executor inline: the kill cuts a run or a
    write wherever it is), two in worker processes (one with --jobs 2), which must die with their
    driver. After each, every record is whole and every earlier one unchanged; the last command
    (in its own process) finishes the sweep."""
    rng = random.Random(15)
    kept: dict[str, bytes] = {}
    killed, progress, stale = 0, [], []
    for i in range(5):
        proc = start(tmp_path, data_dir, *{1: ["--jobs", "2"], 3: []}.get(i, ["--executor", "inline"]))
        target = len(kept) + rng.randint(0, 2)
        while proc.poll() is None and len(list((tmp_path / SUITE / "runs").glob("*.json"))) < target:
            time.sleep(0.2)
        time.sleep(rng.uniform(0, 4))
        workers = children(proc.pid)
        killed += proc.poll() is None
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        now = usable(tmp_path)
        assert {k: now[k] for k in kept} == kept, "a finished record was lost or rewritten"
        kept = now
        progress.append(str(len(kept)))
        stale += tmp_files(tmp_path)  # a write cut by kill -9: hidden, never read, removed by the next command
        assert not alive(workers, wait=60), "workers outlived their killed driver"
    final = start(tmp_path, data_dir, "--executor", "inline")
    out, err = final.communicate(timeout=600)
    assert final.returncode == 0, err
    done = usable(tmp_path)
    assert {k: done[k] for k in kept} == kept and len(done) == 6
    assert {json.loads(b)["status"] for b in done.values()} == {"ok"}
    assert not tmp_files(tmp_path) and not (tmp_path / SUITE / "claims").exists()
    print(f"kill -9: {killed} of 5 commands killed while running; records after each kill: "
          f"{', '.join(progress)}; after the last command: 6; none lost; {len(stale)} cut writes cleaned up")


@pytest.mark.xdist_group("processes")
def test_concurrent_commands_with_one_killed_run_everything_once(tmp_path, data_dir):
    """Three commands on one results folder (one running its runs in its own process, one with
    --jobs 2, the one to kill with a worker process); one is killed at a random moment; the others
    finish every run, each exactly once between them, and no record is half-written or
    duplicated."""
    procs = [start(tmp_path, data_dir, "--executor", "inline"), start(tmp_path, data_dir, "--jobs", "2"),
             start(tmp_path, data_dir, "--executor", "local")]
    time.sleep(random.Random(16).uniform(5, 15))
    assert procs[2].poll() is None, "the command to kill finished first: this machine is faster than assumed"
    procs[2].send_signal(signal.SIGKILL)
    outs = [p.communicate(timeout=900) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, -signal.SIGKILL], outs
    done = {name: json.loads(data) for name, data in usable(tmp_path).items()}
    assert len(done) == 6 and {r["status"] for r in done.values()} == {"ok"}
    by_survivors = [r for r in done.values() if not r["env"]["executor"].startswith("1 local worker")]
    assert outs[0][0].count(" -> accuracy") + outs[1][0].count(" -> accuracy") == len(by_survivors)
    assert not tmp_files(tmp_path) and not (tmp_path / SUITE / "claims").exists()


class _Polls:
    """bench.sweep's `time` for an in-process sweep: its poll (a sleep while every remaining
    run is held by another command) calls `at_poll` instead of sleeping."""

    def __init__(self, at_poll):
        self.at_poll, self.monotonic, self.strftime, self.polls = at_poll, time.monotonic, time.strftime, 0

    def sleep(self, seconds: float) -> None:
        self.polls += 1
        assert self.polls < 5, "the sweep is still waiting"
        self.at_poll()


def _sweep(results: Path, data_dir: Path, methods: str, log) -> list[dict]:
    from bench.executors import InlineExecutor
    from bench.runner import run_suite
    from bench.suite import load_suite

    return run_suite(load_suite(str(FAST)), registry.select(methods), seeds=[0], results_dir=results,
                     data_dir=data_dir, device="cpu", overrides={"magnitude": {"sparsity": 0.9}},
                     budget_overrides={"epochs": 1, "finetune_epochs": 1, "limit_train": 500, "limit_test": 200},
                     executor=InlineExecutor(echo=lambda _: None), log=log)


def test_a_sweep_waiting_for_another_commands_dense_model_says_so(tmp_path, data_dir, monkeypatch):
    """Another command trains seed 0's dense model (it holds its claim: here this process, on
    another descriptor): this command has nothing else to do, and said nothing while it waited,
    however long that training took. It now names what it waits for and who holds it, once;
    once the holder lets go, it trains the model itself and runs."""
    from bench import layout, sweep
    from bench.data import fetch
    from bench.locks import Claim
    from bench.suite import load_suite

    suite = load_suite(str(FAST)).with_budget(epochs=1, finetune_epochs=1, limit_train=500, limit_test=200)
    key = records.config_hash(records.dense_config(suite, 0, fetch(suite.data, data_dir)))
    other = Claim(layout.claims_dir(tmp_path, SUITE), layout.dense_path(tmp_path, SUITE, 0, key).stem)
    assert other.acquire()
    lines: list[str] = []
    said: list[bool] = []
    monkeypatch.setattr(sweep, "time", _Polls(lambda: (said.append(any(line.startswith("waiting") for line in lines)),
                                                        other.release())))
    done = _sweep(tmp_path, data_dir, "magnitude", lines.append)
    assert said == [True], lines
    (waiting,) = [line for line in lines if line.startswith("waiting")]
    assert f"another command (pid {os.getpid()})" in waiting and "dense model, seed 0" in waiting, waiting
    assert [r["status"] for r in done] == ["ok"]


def test_a_run_another_command_tried_meanwhile_is_not_run_again(tmp_path, data_dir, monkeypatch):
    """Two commands on one results folder: the other one holds a run, which fails there (its
    worker died) while this one waits for it. This one then ran it again, the run's work done
    twice, and wrote its record over the other's: a run that killed its worker in each command
    was counted as dying once (`worker_deaths` is read from the record seen when the command
    started), so a pair of commands never stopped retrying it. Now the other command's attempt
    stands, as a finished one does, and the next command retries it."""
    from bench import sweep
    from bench.locks import Claim

    runs = tmp_path / SUITE / "runs"
    assert [r["status"] for r in _sweep(tmp_path, data_dir, "magnitude", lambda _: None)] == ["ok"]
    (path,) = runs.glob("magnitude-*.json")
    failed = {**json.loads(path.read_text()), "status": "failed", "metrics": {}, "figures": {}, "worker_deaths": 1,
              "error": "WorkerDied: the worker process running this task was killed by SIGKILL"}
    path.unlink()
    other = Claim(tmp_path / SUITE / "claims", path.stem)
    assert other.acquire()

    def the_other_command_fails_it() -> None:
        files.write_json_atomic(path, failed)
        other.release()

    monkeypatch.setattr(sweep, "time", _Polls(the_other_command_fails_it))
    lines: list[str] = []
    done = _sweep(tmp_path, data_dir, "magnitude", lines.append)
    assert json.loads(path.read_text()) == failed, "the run was run again"
    assert [r["status"] for r in done] == ["failed"]
    assert any("magnitude" in line and "another command" in line and "WorkerDied" in line for line in lines), lines
    assert not any(" -> " in line for line in lines), lines


@pytest.mark.xdist_group("processes")
def test_two_leaderboard_rebuilds_at_once_end_with_every_record(tmp_path, data_dir, monkeypatch, capsys):
    """A command rebuilding the leaderboard reads the records, then draws and writes for seconds;
    another command that wrote one more record meanwhile and rebuilt its own leaderboard faster
    saw its table overwritten by the first one's, which lacks that record (until some later
    rebuild). Rebuilds of one suite now take turns, each reading the records once the one
    before has written: the last one holds every record."""
    from bench import leaderboard

    assert main(["run", *TINY, *INLINE, "--methods", "dense,magnitude", "--set", "magnitude.sparsity=0.9",
                 "--data-dir", str(data_dir), "--results-dir", str(tmp_path)]) == 0
    (late,) = (tmp_path / SUITE / "runs").glob("magnitude-*.json")
    data = late.read_bytes()
    late.unlink()
    other: list[subprocess.Popen] = []
    real_load = leaderboard.load

    def load(results_dir, suite):
        recs = real_load(results_dir, suite)  # this rebuild has read the records: dense alone
        if not other:  # another command writes its last record and rebuilds, in the meantime
            late.write_bytes(data)
            other.append(subprocess.Popen([sys.executable, "-m", "bench", "leaderboard", "--suite", SUITE,
                                           "--results-dir", str(tmp_path)], cwd=ROOT,
                                          env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE,
                                          stderr=subprocess.STDOUT, text=True))
            deadline = time.monotonic() + 120
            while other[0].poll() is None and not _waits_on_a_lock(other[0].pid):  # it ends, or it waits for us
                assert time.monotonic() < deadline
                time.sleep(0.1)
        return recs

    monkeypatch.setattr(leaderboard, "load", load)
    leaderboard.write(tmp_path, SUITE)
    out, _ = other[0].communicate(timeout=120)
    assert other[0].returncode == 0, out
    assert "| magnitude " in (tmp_path / SUITE / "leaderboard-custom.md").read_text()
    assert not (tmp_path / SUITE / "claims").exists()


def _waits_on_a_lock(pid: int) -> bool:
    """Whether process `pid` is blocked waiting for a file lock (a `->` line of /proc/locks)."""
    return any(line.split("->", 1)[1].split()[3] == str(pid)
               for line in Path("/proc/locks").read_text().splitlines() if "->" in line)


FILLER = '''
    import os
    from bench import Method, register_method

    @register_method("filler")
    class Filler(Method):
        """Fills the results disk in the middle of a sweep, as another program might."""

        def run(self, ctx):
            model = ctx.pretrained()
            if os.environ.get("FILL_PATH"):
                with open(os.environ["FILL_PATH"], "wb") as f:
                    try:
                        while True:
                            f.write(b"x" * 4096)
                            f.flush()
                    except OSError:
                        pass
            return model
'''


@pytest.fixture
def tmpfs(tmp_path):
    """mount_tmpfs(size, *options) -> a small filesystem of its own (root only; skipped elsewhere)."""
    mounted = []

    def mount(size: str, *options: str) -> Path:
        point = tmp_path / f"fs{len(mounted)}"
        point.mkdir()
        opts = ",".join([f"size={size}", *options])
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(point)], capture_output=True, text=True)
        if proc.returncode:
            pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
        mounted.append(point)
        return point

    yield mount
    for point in mounted:
        # Lazily: a process that still holds a file there must not leave the mount behind.
        subprocess.run(["umount", "--lazy", str(point)], check=False)


def test_the_log_a_failed_run_names_ends_with_its_error_and_traceback(tmp_path, data_dir, faulty, plugins, bench):
    """The console names a failed run's log beside the error's first line: the log then holds
    the traceback, down to the plugin's line that raised, after what the run printed; the
    console keeps one line per run."""
    plugins(faulty)
    results = tmp_path / "results"
    proc = bench(["run", *TINY, *INLINE, "--methods", "explodes,exits", "--data-dir", str(data_dir),
                  "--results-dir", str(results)])
    assert proc.returncode == 1, proc.stderr
    (log,) = (results / SUITE / "logs").glob("explodes-*.log")
    assert f"(log: {log})" in proc.stderr
    text = log.read_text()
    assert text.startswith("[bench: the run ended failed]\nRuntimeError: the plugin blew up on purpose\n"), text
    assert "Traceback (most recent call last)" in text and 'raise RuntimeError("the plugin blew up on purpose")' in text
    assert "SystemExit: the plugin called sys.exit('giving up')" in next((results / SUITE / "logs").glob("exits-*.log")).read_text()
    assert "Traceback" not in proc.stdout + proc.stderr
    assert not any("[bench: the run ended" in p.read_text() for p in (results / SUITE / "logs").glob("dense-*.log"))


def test_a_plugin_that_prints_without_end_fills_its_log_to_the_limit_and_no_further(tmp_path, data_dir, faulty,
                                                                                     plugins, monkeypatch, capsys):
    """A run's prints go to its log: past the limit the log is cut back, with a note saying so,
    at every poll of the driver and once more when the run ends. Here the limit is 64 KiB and
    the plugin writes up to 2.5 MiB over 2.5 s, across several polls."""
    from bench import executors

    plugins(faulty)
    monkeypatch.setattr(executors, "LOG_LIMIT", 64 * 1024)
    results = tmp_path / "results"
    assert main(["run", *TINY, "--methods", "dense,chatters", "--data-dir", str(data_dir),
                 "--results-dir", str(results)]) == 0, capsys.readouterr()
    (log,) = (results / SUITE / "logs").glob("chatters-*.log")
    text = log.read_bytes()
    note = b"\n[bench: this log reached its limit of 0.0625 MiB here; what the run wrote after that is left out]\n"
    assert text.count(note) == 1 and len(text) <= 64 * 1024 + len(note)
    assert text.index(note) == 64 * 1024 and b"chatter 00000000 " in text[:64 * 1024]
    assert statuses(results) == {"dense": "ok", "chatters": "ok"}


def test_a_plugin_that_rewrites_a_finished_record_is_named_in_a_warning(tmp_path, data_dir, faulty, plugins, bench,
                                                                         monkeypatch):
    """A plugin is code the user runs: the harness cannot stop it writing into the results
    folder, but a finished record changed during the command, not by it, is named in a
    warning with the run in flight at the time; the leaderboard then names it as malformed."""
    plugins(faulty)
    results = tmp_path / "results"
    monkeypatch.setenv("SCRIBBLE_RUNS", str(results / SUITE / "runs"))
    proc = bench(["run", *TINY, "--jobs", "1", "--methods", "dense,scribbles", "--data-dir", str(data_dir),
                  "--results-dir", str(results)])
    assert proc.returncode == 0, proc.stderr
    (dense,) = (results / SUITE / "runs").glob("dense-*.json")
    assert (f"warning: the finished record {dense} was changed during this command, not by it, while "
            "[2/2] scribbles") in proc.stdout, proc.stdout
    assert f"left out of the leaderboard: {dense}" in proc.stderr


def test_a_result_larger_than_a_record_may_be_is_a_failed_row_not_a_record_its_readers_refuse(
        tmp_path, data_dir, faulty, plugins, monkeypatch, capsys):
    """The writer holds records to the size their readers accept (here lowered to 64 KiB): a
    run recording more fails, naming the size, instead of writing a record that every reader
    then leaves out and every command reruns."""
    plugins(faulty)
    monkeypatch.setattr(records, "MAX_RECORD_BYTES", 64 * 1024)
    results = tmp_path / "results"
    assert main(["run", *TINY, "--methods", "dense,bigfig", "--data-dir", str(data_dir),
                 "--results-dir", str(results)]) == 1
    out = capsys.readouterr().out
    assert "bigfig - seed=0 -> FAILED: the run's result cannot be written as JSON: ValueError: " in out, out
    assert "bytes of JSON, more than the 65,536 its readers accept" in out
    assert statuses(results) == {"dense": "ok", "bigfig": "failed"}


def test_a_full_or_read_only_results_disk_is_refused_before_training(tmpfs, data_dir, capsys):
    for fs, reason in ((tmpfs("1m"), "only 1.0 MiB free on its disk, and a sweep needs at least 64 MiB"),
                       (tmpfs("100m", "ro"), "Read-only file system")):
        results = fs / "results"
        code = main(["run", *TINY, *INLINE, "--methods", "dense", "--data-dir", str(data_dir),
                     "--results-dir", str(results)])
        out, err = capsys.readouterr()
        assert code == 2 and err.startswith(f"bench: error: cannot write run records under {results / SUITE}: "), err
        assert reason in err and err.count("\n") == 1, err
        assert "training" not in out and list(fs.iterdir()) == []


def test_a_latency_batch_the_machine_cannot_hold_fails_its_runs_before_they_train(tmp_path, data_dir, capsys):
    """A suite's `latency_batches: [1, 10^12]` passes the schema, and each run failed only once it
    had trained, at its measurement (its input alone: 3 PB). The worker runs the largest batch
    through the suite's model before anything trains: the dense model is not trained, and the
    runs fail at once with the reason."""
    suite = tmp_path / "huge.yaml"
    suite.write_text(FAST.read_text().replace("latency_batches: [1, 16]", "latency_batches: [1, 1000000000000]"))
    code = main(["run", *TINY[2:], "--suite", str(suite), *INLINE, "--methods", "dense,magnitude",
                 "--data-dir", str(data_dir), "--results-dir", str(tmp_path / "results")])
    out = capsys.readouterr().out
    assert code == 1 and "epoch 1" not in out and "after 1 epoch" not in out, out
    why = "the suite's latency batch of 1,000,000,000,000 images cannot run through its model on cpu"
    assert f"dense model, seed 0: FAILED (RuntimeError: {why}" in out, out
    recs = [json.loads(p.read_text()) for p in (tmp_path / "results" / SUITE / "runs").glob("*.json")]
    assert {r["config"]["method"] for r in recs} == {"dense", "magnitude"}
    assert all(r["status"] == "failed" and why in r["error"] for r in recs)


class Gate:
    """A DeviceGate's two doors, noting when each is passed."""

    def __init__(self, events: list[str] | None = None):
        self.events = [] if events is None else events

    def pass_through(self) -> None:
        self.events.append("gate")

    @contextlib.contextmanager
    def alone(self):
        self.events.append("alone")
        yield
        self.events.append("end alone")


def test_the_latency_batch_check_passes_the_devices_gate_first(mnist, monkeypatch):
    """The check's forward pass of the largest batch is the harness's device work like a training
    step: it ran without the device's gate, so a task starting beside a run that timed its model
    ran a batch of 256 through its own, and inflated that run's latency. It runs alone on the
    device, so that two workers checking at once never count the same free memory."""
    from bench import worker
    from bench.context import Context
    from bench.suite import load_suite

    events = []

    class Model(torch.nn.Module):
        def forward(self, x):
            events.append(f"forward {len(x)}")
            return x.flatten(1)[:, :10]

    monkeypatch.setattr(Context, "new_model", lambda self: Model())
    worker._check_latency_batch(load_suite(str(FAST)), mnist, torch.device("cpu"), Gate(events))
    assert events == ["gate", "forward 1", "alone", "forward 16", "end alone"]  # FAST's latency_batches: [1, 16]


def test_a_cpu_latency_batch_beyond_the_free_memory_fails_the_check_not_the_machine(mnist, monkeypatch):
    """A CPU batch whose pages the machine cannot back (`[1, 5000000]`: 16 GB of input, twice,
    on a 23 GB machine) was no allocation error: the OOM killer took the worker, the command or
    another user's process. The check bounds its address space to what is free: here 200 MB, of
    which the batch of a million images (3 GB) cannot fit, so it fails naming the batch, and the
    process's limit is as it was after it."""
    import dataclasses
    import resource

    from bench import worker
    from bench.suite import load_suite

    real = worker._proc_kib
    monkeypatch.setattr(worker, "_proc_kib", lambda path, field: 200 * 1024 if field == "MemAvailable"
                        else real(path, field))
    suite = dataclasses.replace(load_suite(str(FAST)), latency_batches=[1, 1_000_000])
    before = resource.getrlimit(resource.RLIMIT_AS)
    with pytest.raises(RuntimeError, match="the suite's latency batch of 1,000,000 images cannot run through its model "
                                           "on cpu, so no model could be measured: .*can't allocate memory"):
        worker._check_latency_batch(suite, mnist, torch.device("cpu"), Gate())
    assert resource.getrlimit(resource.RLIMIT_AS) == before
    worker._check_latency_batch(load_suite(str(FAST)), mnist, torch.device("cpu"), Gate())  # [1, 16] fits


def test_a_model_that_cannot_take_the_data_is_not_called_a_batch_too_large(mnist, monkeypatch):
    """The latency batch check blamed the batch for any error of the model's forward pass: a
    suite whose model cannot take its data (another input size) read 'the suite's latency batch
    of 16 images cannot run through its model', as if the batch were too large. One image goes
    through first, and its error is the model's own."""
    from bench import worker
    from bench.context import Context
    from bench.suite import load_suite

    monkeypatch.setattr(Context, "new_model", lambda self: torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3, 10)))
    with pytest.raises(RuntimeError) as raised:
        worker._check_latency_batch(load_suite(str(FAST)), mnist, torch.device("cpu"), Gate())
    assert "shapes cannot be multiplied" in str(raised.value) and "latency batch" not in str(raised.value)


def test_a_disk_that_fills_mid_sweep_stops_it_clearly_and_a_rerun_loses_nothing(tmp_path, tmpfs, data_dir,
                                                                                  plugins, bench, monkeypatch):
    fs = tmpfs("80m")
    plugins(make_distribution(tmp_path / "site", "filler_plugin", FILLER, {"filler": "filler_plugin"}))
    results = fs / "results"
    args = ["run", *TINY, "--methods", "dense,filler,magnitude", "--set", "magnitude.sparsity=0.9",
            "--data-dir", str(data_dir), "--results-dir", str(results)]
    monkeypatch.setenv("FILL_PATH", str(fs / "fill"))
    proc = bench(args)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    filler_record = next(p for p in (results / SUITE / "logs").glob("filler-*.log")).with_suffix(".json").name
    assert (f"bench: error: [Errno 28] No space left on device: '{results / SUITE / 'runs' / filler_record}'\n"
            "bench: finished runs are recorded; fix the cause and rerun to resume") in proc.stderr
    assert "the leaderboard was not rebuilt (OSError: [Errno 28] No space left on device" in proc.stdout
    assert not tmp_files(results)
    assert list(usable(results)) == [p.name for p in (results / SUITE / "runs").glob("dense-*.json")]
    for table in (results / SUITE).glob("leaderboard*"):  # absent, or whole
        assert table.stat().st_size > 0 and table.read_text().endswith("\n")

    (fs / "fill").unlink()
    monkeypatch.delenv("FILL_PATH")
    again = bench(args)
    assert again.returncode == 0, again.stderr
    assert "3 runs (dense, filler, magnitude; seeds [0]), 2 to run, 1 finished before" in again.stdout
    assert set(statuses(results).values()) == {"ok"} and len(usable(results)) == 3


def test_a_write_that_fails_mid_group_still_writes_the_results_that_came_back_with_it(tmp_path, data_dir, bench,
                                                                                     monkeypatch):
    """Two runs trained as one task (--fuse 2) come back together: when the disk refuses the
    first one's record, the second's is written before the error stops the sweep, and a rerun
    runs only the first again."""
    import errno

    from bench import files

    real, refused = files.write_json_atomic, []

    def full_once(path, *args, **kwargs):
        if path.name.startswith("magnitude-") and not refused:
            refused.append(path)
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(files, "write_json_atomic", full_once)
    args = ["run", *TINY, "--methods", "magnitude", "--fuse", "2", "--data-dir", str(data_dir),
            "--results-dir", str(tmp_path)]
    ran = bench(args)
    assert ran.returncode == 1 and f"[Errno 28] No space left on device: '{refused[0]}'" in ran.stderr, ran.stderr
    written = [p.name for p in (tmp_path / SUITE / "runs").glob("magnitude-*.json")]
    assert len(written) == 1 and written != [refused[0].name]
    again = bench(args)
    assert again.returncode == 0, again.stderr
    assert "2 runs (magnitude; seeds [0]), 1 to run, 1 finished before" in again.stdout


def test_truncated_cache_and_record_files_are_named_and_redone(tmp_path, data_dir, capsys):
    args = ["run", *TINY, *INLINE, "--methods", "dense,magnitude", "--set", "magnitude.sparsity=0.9",
            "--data-dir", str(data_dir), "--results-dir", str(tmp_path)]
    assert main(args) == 0
    capsys.readouterr()
    (cache,) = (tmp_path / SUITE / "cache").glob("*.safetensors")
    cache.write_bytes(cache.read_bytes()[:1000])
    record = next((tmp_path / SUITE / "runs").glob("magnitude-*.json"))
    record.write_text(record.read_text()[:200])
    (tmp_path / SUITE / "runs" / "notes.json").write_text('{"not": "a record"}\n')

    assert main(["leaderboard", "--suite", SUITE, "--results-dir", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert f"bench: warning: left out of the leaderboard: {record}: unreadable (JSONDecodeError" in err
    assert f"bench: warning: left out of the leaderboard: {tmp_path / SUITE / 'runs' / 'notes.json'}: not a run record" in err

    assert main(args) == 0
    out = capsys.readouterr().out
    assert "2 runs (dense, magnitude; seeds [0]), 1 to run, 1 finished before" in out
    assert f"the cache file {cache} is unreadable (" in out and "training it again" in out
    assert records.read_record(record)["status"] == "ok" and DenseWeights.load(cache).meta["epochs"] == 1


def test_a_cached_dense_model_of_other_shapes_is_named_removed_and_trained_again(tmp_path, data_dir, capsys):
    """A readable cache file whose tensors fit no model of the suite (planted, or left by an
    older model definition) failed every run of its seed on every command: now the first run that
    meets it names it, the file goes, the model is trained again in the same command, and the
    failed run is retried by the next one."""
    args = ["run", *TINY, *INLINE, "--methods", "dense,magnitude", "--data-dir", str(data_dir),
            "--results-dir", str(tmp_path)]
    assert main([*args[:-4], "--methods", "dense", *args[-4:]]) == 0
    (cache,) = (tmp_path / SUITE / "cache").glob("*.safetensors")
    good = DenseWeights.load(cache)
    wrong = {k: (v[:, :5] if v.dim() == 2 else v).clone() for k, v in good.state_dict.items()}  # other shapes
    files.atomic_write(cache, DenseWeights(wrong, good.meta).save)  # (the loaded tensors map the old file)
    capsys.readouterr()
    assert main(args) == 1
    out = capsys.readouterr().out
    assert "DenseMismatch: the cached dense model does not fit the suite's model: Error(s) in loading state_dict" in out
    assert f"the cache file {cache} does not fit the suite's model: removed, to be trained again" in out
    assert "dense model, seed 0: training" in out and DenseWeights.load(cache).state_dict["1.weight"].shape[1] == 784
    statuses = sorted(json.loads(p.read_text())["status"] for p in (tmp_path / SUITE / "runs").glob("magnitude-*.json"))
    assert statuses == ["failed", "ok"]  # the run that met the file, the run after the retraining
    assert main(args) == 0  # the failed one, retried


def test_a_cached_dense_model_copied_over_another_seeds_is_named_and_trained_again(tmp_path, data_dir, capsys):
    """Seed 1's cache file copied over seed 0's fits the model, and was used as seed 0's: its
    runs started from seed 1's weights, the rows of seed 0 and 1 from one model. A cached model
    names the dense model it is, and a file that names another is trained again; the dry run's
    plan says so."""
    args = [*TINY, *INLINE, "--data-dir", str(data_dir), "--results-dir", str(tmp_path)]
    assert main(["run", *args, "--methods", "dense", "--seeds", "0,1"]) == 0
    zero, one = (next((tmp_path / SUITE / "cache").glob(f"dense-s{seed}-*.safetensors")) for seed in (0, 1))
    theirs = DenseWeights.load(one).sha256()
    zero.write_bytes(one.read_bytes())
    capsys.readouterr()
    assert main(["run", *args, "--methods", "magnitude", "--set", "magnitude.sparsity=0.9", "--dry-run"]) == 0
    planned = capsys.readouterr().out  # the plan counts it as to train, as the run will (it said "cached: 1")
    assert "dense models to train: seed 0 " in planned and f"the cache file {zero} holds another dense model" in planned
    assert zero.read_bytes() == one.read_bytes()  # a dry run changes nothing
    assert main(["run", *args, "--methods", "magnitude", "--set", "magnitude.sparsity=0.9"]) == 0
    out = capsys.readouterr().out
    assert f"dense model, seed 0: the cache file {zero} holds another dense model ({one.stem}: a file copied or " \
           "renamed?); training it again" in out, out
    (record,) = (tmp_path / SUITE / "runs").glob("magnitude-*.json")
    assert json.loads(record.read_text())["dense"]["sha256"] not in (theirs, None)
    assert DenseWeights.load(zero).meta["identity"] == zero.stem


def test_a_cached_dense_model_whose_metadata_is_mistyped_is_named_and_trained_again(tmp_path, data_dir, capsys):
    """The cache's metadata reaches the driver and the records (a results folder is committed, and
    may be tampered with): a commit that is no text stopped `--refresh device` with an
    AttributeError traceback, and without it every run's record named it as its dense model's
    commit, a record every reader left out as malformed, so each command ran it again. A
    compile time that is no number failed every run of the seed. Each is named, and the model
    trained again."""
    args = [*TINY, *INLINE, "--data-dir", str(data_dir), "--results-dir", str(tmp_path)]
    assert main(["run", *args, "--methods", "dense"]) == 0
    (cache,) = (tmp_path / SUITE / "cache").glob("*.safetensors")
    good = DenseWeights.load(cache)
    run = ["run", *args, "--methods", "magnitude", "--set", "magnitude.sparsity=0.9"]
    for key, value in (("git_commit", ["--output=x"]), ("compile_seconds", "1 s"), ("device_name", 5),
                       ("identity", None), ("commit_from_env", "no"), ("method_origin", 5),
                       ("method_commit", {"magnitude": 5})):  # (Here.made reads these two of a record)
        tampered = DenseWeights({k: v.clone() for k, v in good.state_dict.items()}, {**good.meta, key: value})
        files.atomic_write(cache, tampered.save)
        for made in (tmp_path / SUITE / "runs").glob("magnitude-*.json"):  # the last key's: a plan with nothing to
            made.unlink()  # run says nothing of the dense model (from a committed tree, its record is finished)
        capsys.readouterr()
        assert main([*run, "--refresh", "device", "--dry-run"]) == 0, key
        assert f"the cache file {cache} is unreadable (ValueError: {cache} holds a dense model whose metadata's " \
               f"{key} is " in capsys.readouterr().out, key
        assert main([*run, "--force"]) == 0, key
        assert "training it again" in capsys.readouterr().out, key
        (record,) = (tmp_path / SUITE / "runs").glob("magnitude-*.json")
        assert records.read_record(record)["status"] == "ok", key
        assert DenseWeights.load(cache).meta["git_commit"] != ["--output=x"]


def test_a_late_run_from_the_bad_dense_file_leaves_the_retrained_one(tmp_path, data_dir):
    """With two runs in flight on a bad cache file, the second can fail after the first's failure
    had the file retrained: that second failure names the old file, not the new one, which stays
    (removing it retrained the dense model once more for nothing)."""
    from bench.executors import InlineExecutor
    from bench.runner import run_suite
    from bench.suite import load_suite
    from bench.worker import perform

    class TwoAtOnce(InlineExecutor):
        """Two slots; the first wait returns nothing (so two runs are handed out), then the
        latest task finishes first: the second run, the dense retraining, the random runs, and
        last the first run."""
        slots = 2
        waited = False

        def wait(self, timeout: float):
            if not self.waited:
                self.waited = True
                return []
            ticket, task = self._pending.pop()
            return [(ticket, perform(task, echo=self.echo))]

    lines: list[str] = []
    sweep = dict(seeds=[0], results_dir=tmp_path, data_dir=data_dir, device="cpu", overrides={},
                 budget_overrides={"epochs": 1, "finetune_epochs": 1, "limit_train": 500, "limit_test": 200},
                 log=lines.append)
    run_suite(load_suite(str(FAST)), registry.select("dense"), executor=InlineExecutor(echo=lambda _: None), **sweep)
    (cache,) = (tmp_path / SUITE / "cache").glob("*.safetensors")
    good = DenseWeights.load(cache)
    wrong = {k: (v[:, :5] if v.dim() == 2 else v).clone() for k, v in good.state_dict.items()}
    files.atomic_write(cache, DenseWeights(wrong, good.meta).save)

    done = run_suite(load_suite(str(FAST)), registry.select("magnitude,random"),
                     executor=TwoAtOnce(echo=lambda _: None), **sweep)
    # both magnitude runs started from the bad file; the random runs, from the retrained one
    assert [(r["config"]["method"], r["status"]) for r in done] == [
        ("magnitude", "failed"), ("magnitude", "failed"), ("random", "ok"), ("random", "ok")]
    assert sum("does not fit the suite's model: removed" in line for line in lines) == 1
    assert sum(line.startswith("dense model, seed 0: training") for line in lines) == 2  # the first, the retraining
    assert DenseWeights.load(cache).state_dict["1.weight"].shape[1] == 784  # the retrained file stays


def test_an_interrupted_sweep_stops_its_workers_before_it_lets_go_of_their_runs(tmp_path, data_dir):
    """Ctrl-C released the claims of the tasks in flight while their workers still ran them, for
    the seconds the leaderboard's rebuild took: another command could start the same runs
    meanwhile. The sweep now closes its executor first (and a second close does nothing)."""
    from bench.executors import InlineExecutor
    from bench.runner import run_suite
    from bench.suite import load_suite

    claims = tmp_path / SUITE / "claims"

    class Interrupted(InlineExecutor):
        """Ctrl-C while the dense model trains; notes the claims held when it is closed."""
        held_at_close: list[list[str]] = []

        def wait(self, timeout: float):
            raise KeyboardInterrupt

        def close(self) -> None:
            self.held_at_close.append(sorted(p.name for p in claims.glob("*.lock")))

    executor = Interrupted(echo=lambda _: None)
    with pytest.raises(KeyboardInterrupt):
        run_suite(load_suite(str(FAST)), registry.select("dense"), executor=executor, seeds=[0], results_dir=tmp_path,
                  data_dir=data_dir, device="cpu", overrides={}, budget_overrides={"epochs": 1, "limit_train": 500},
                  log=lambda _: None)
    [[held]] = executor.held_at_close  # closed once, while the dense model's claim was still held
    assert held.startswith("dense-s0-"), held
    assert not list(claims.glob("*.lock"))  # then released


def test_an_executor_that_fails_to_close_leaves_the_interruption_the_error(tmp_path, data_dir):
    """The sweep closes its executor when it is interrupted; a close that raised (a Ray cluster
    gone) replaced the Ctrl-C with its own error, and the command exited 1 naming it instead of
    130. It is named in the log; the interruption is what propagates, and the claims still go."""
    from bench.executors import InlineExecutor
    from bench.runner import run_suite
    from bench.suite import load_suite

    class Unclosable(InlineExecutor):
        def wait(self, timeout: float):
            raise KeyboardInterrupt

        def close(self) -> None:
            raise RuntimeError("the cluster is gone")

    lines = []
    with pytest.raises(KeyboardInterrupt):
        run_suite(load_suite(str(FAST)), registry.select("dense"), executor=Unclosable(echo=lambda _: None), seeds=[0],
                  results_dir=tmp_path, data_dir=data_dir, device="cpu", overrides={},
                  budget_overrides={"epochs": 1, "limit_train": 500}, log=lines.append)
    assert any("RuntimeError: the cluster is gone" in line for line in lines), lines
    assert not list((tmp_path / SUITE / "claims").glob("*.lock"))


def test_records_are_flushed_before_the_rename_and_get_the_users_permissions(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(os, "fsync", lambda fd: calls.append("fsync"))
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda a, b: (calls.append("replace"), real_replace(a, b)))
    for umask, mode in ((0o022, 0o644), (0o002, 0o664)):
        old = os.umask(umask)
        try:
            files.write_json_atomic(tmp_path / f"r{umask}.json", {"schema": 1})
        finally:
            os.umask(old)
        assert (tmp_path / f"r{umask}.json").stat().st_mode & 0o777 == mode
    assert calls == ["fsync", "replace"] * 2
    with pytest.raises(OSError) as failed:
        files.atomic_write(tmp_path / "r.json", lambda f: (_ for _ in ()).throw(OSError(28, "No space left on device")))
    assert failed.value.filename == str(tmp_path / "r.json")  # the error names the file
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r18.json", "r2.json"]  # no temporary file left


def test_latency_is_timed_at_the_batch_it_is_labelled_with(make_context):
    """With --limit-test below a latency batch, the test images are repeated to fill the batch:
    a figure labelled batch 256 is never timed at batch 100."""
    from bench.worker import measure_input

    ctx = make_context(limit_test=100)
    x = measure_input(ctx, 256, ctx.device)
    assert x.shape[0] == 256 and torch.equal(x[100:200], x[:100])


def test_temporary_files_of_killed_writers_on_this_host_are_removed(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = socket.gethostname()
    names = {"dead": f".r.json.{host}.{dead.pid}.abc12345.tmp", "alive": f".r.json.{host}.{os.getpid()}.abc12345.tmp",
             "elsewhere": f".r.json.otherhost.{dead.pid}.abc12345.tmp", "not ours": ".notes.tmp"}
    for name in names.values():
        (tmp_path / name).write_text("")
    assert files.remove_stale_temporaries(tmp_path) == [tmp_path / names["dead"]]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(n for k, n in names.items() if k != "dead")


def test_free_slots_are_filled_at_once(tmp_path, data_dir):
    """Runs were handed out one task per pass of the sweep's loop, each pass then waiting up to a
    second for a result: with --jobs N, workers sat idle for N-1 seconds at the start and a
    second after each result that came back with another. Every free slot now gets a task
    before the sweep waits."""
    from bench.executors import InlineExecutor
    from bench.runner import run_suite
    from bench.suite import load_suite

    class ThreeSlots(InlineExecutor):
        """Three slots, run one at a time: notes how many tasks were handed out at each wait."""
        slots = 3

        def __init__(self, echo):
            super().__init__(echo)
            self.handed_out: list[int] = []

        def wait(self, timeout: float):
            self.handed_out.append(len(self._pending))
            return super().wait(timeout)

    executor = ThreeSlots(echo=lambda _: None)
    done = run_suite(load_suite(str(FAST)), registry.select("magnitude,random"), seeds=[0], results_dir=tmp_path,
                     data_dir=data_dir, device="cpu", overrides={}, executor=executor, log=lambda _: None,
                     budget_overrides={"epochs": 1, "finetune_epochs": 1, "limit_train": 500, "limit_test": 200})
    assert [r["status"] for r in done] == ["ok"] * 4
    assert executor.handed_out == [1, 3, 3, 2, 1], executor.handed_out  # the dense model, then four runs


def test_a_dense_model_whose_log_cannot_be_written_is_cached_all_the_same(tmp_path, monkeypatch):
    """A dense model that comes back with its log (a Ray node's) was cached only once its log was
    written: a log that could not be written lost the trained model with it (hours on a GPU).
    The model is cached first, as a run's record is written before its log; the log's error
    still stops the sweep."""
    import errno

    from bench import dense_stage, layout
    from bench.locks import Claim
    from bench.worker import Outcome

    d = dense_stage.Dense(0, layout.dense_path(tmp_path, SUITE, 0, "0" * 16), Claim(tmp_path / "claims", "dense"))
    assert d.claim.acquire()
    weights = DenseWeights({"w": torch.ones(2)}, {"epochs": 1, "seconds": 1.0, "compile_seconds": 0.0, "accuracy": 0.5})
    outcome = Outcome({"status": "ok", "error": None, "metrics": {}, "figures": {}, "run_time_s": 1.0},
                      {"device": "cpu", "device_name": "cpu", "threads": 1}, dense=weights, log="epoch 1/1")

    def refused(path, text):
        raise OSError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(files, "write_text_atomic", refused)
    with pytest.raises(OSError, match="Permission denied"):
        dense_stage.trained(d, outcome, lambda line: None, "abc")
    assert d.weights is weights and torch.equal(DenseWeights.load(d.path).state_dict["w"], torch.ones(2))


WORKING = '''
    from bench import Method, register_method


    @register_method("fragile")
    class Fragile(Method):
        """Magnitude-free pruning of nothing: the trained model as it is."""

        family = "pruning"
        keep: float = 1.0

        def run(self, ctx):
            return ctx.pretrained()
'''


def test_a_plugin_that_no_longer_imports_leaves_its_finished_records_as_they_are(tmp_path, data_dir):
    """A plugin's finished record, then a syntax error in the plugin: its run had no parameters to
    plan with, so it was planned as its defaults' run and named as their record, which it took for
    a copy (no identity to check without the plugin), ran again and overwrote with its failure.
    The record stands, and the command says at once that the plugin failed to import."""
    site = make_distribution(tmp_path / "site", "fragile_pkg", WORKING, {"fragile": "fragile_pkg"})
    args = ["run", *TINY, "--methods", "fragile", "--data-dir", str(data_dir), "--results-dir", str(tmp_path / "r")]
    first = run_bench(args, pythonpath=[site])
    assert first.returncode == 0, first.stderr
    (record,) = (tmp_path / "r" / SUITE / "runs").glob("fragile-*.json")
    finished = record.read_bytes()
    (site / "fragile_pkg.py").write_text("def broken(:\n")
    again = run_bench([*args, "--dry-run"], pythonpath=[site])
    assert ("bench: warning: plugin 'fragile' failed to import: SyntaxError: invalid syntax (fragile_pkg.py, line 1)"
            "; its runs fail, and its finished records stand") in again.stderr, again.stderr
    assert "0 to run, 1 finished before" in again.stdout, again.stdout
    assert run_bench(args, pythonpath=[site]).returncode == 0
    assert record.read_bytes() == finished


REFUSED_ON_THIS_DEVICE = """
from bench import fused

real = fused._fused_forward


def refused_on_this_device(template, params, buffers, x, holdings=None):
    if x.shape[1] > 4:  # a training batch; the probe's are of 4 images
        raise RuntimeError("CUDA error: simulated kernel refusal")
    return real(template, params, buffers, x, holdings)


fused._fused_forward = refused_on_this_device
"""


@pytest.mark.xdist_group("processes")
def test_in_worker_processes_runs_whose_fused_training_fails_run_again_alone_within_the_sweep(tmp_path, data_dir):
    """As a GPU window runs the sweep: worker processes (local executor), each task's logs
    written live by its worker. The stacked pass refuses in every process (patched as each
    interpreter starts, before bench takes note of its functions); the fused group's runs come
    back, run again alone in tasks of their own, and the command fuses nothing more."""
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(REFUSED_ON_THIS_DEVICE)
    results = tmp_path / "results"
    proc = run_bench(["run", *TINY, "--executor", "local", "--jobs", "1", "--methods", "magnitude,random",
                      "--fuse", "2", "--data-dir", str(data_dir), "--results-dir", str(results)],
                     pythonpath=[tmp_path / "site"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    recs = [json.loads(p.read_text()) for p in (results / SUITE / "runs").glob("*.json")]
    assert len(recs) == 4 and all(r["status"] == "ok" for r in recs), [r.get("error") for r in recs]
    assert all("fused_with" not in r["metrics"] for r in recs)
    assert proc.stdout.count("this command fuses no more runs") == 1, proc.stdout
    assert proc.stdout.count("it runs again alone") == 2, proc.stdout
    logs = [log.read_text() for log in (results / SUITE / "logs").glob("*.log") if "dense" not in log.name]
    faulted = [text for text in logs if "RuntimeError: CUDA error: simulated kernel refusal" in text]
    assert len(faulted) == 2 and all(t.index("to train again alone") < t.index("measuring") for t in faulted), logs


@pytest.mark.parametrize("logs_returned", [False, True], ids=["logs-written-live", "logs-returned"])
def test_runs_whose_fused_training_fails_in_the_stacked_pass_train_again_alone(tmp_path, data_dir, bench, monkeypatch,
                                                                                logs_returned):
    """The fused path has never run on CUDA: a kernel that refuses the stacked pass there (a vmap
    batch rule, a grouped convolution's layout, memory at K runs) must cost the time of the fused
    attempt, not the runs of a rare GPU window. Here the stacked forward pass of every training
    step raises, as such a kernel would (the probe's few images pass): the runs it hit go back to
    the driver, which runs each again alone in a task of its own (so that its record is written as
    it finishes, within the time limits and --max-minutes), fuses no later group (each would meet
    the fault again), and keeps the fused fault's traceback in the run's log: written live by a
    local worker, or returned by a remote one (Ray's, here the inline executor taken for one)."""
    from bench import executors, fused

    monkeypatch.setattr(executors.InlineExecutor, "local", not logs_returned)

    real = fused._fused_forward
    refused = []

    def refused_on_this_device(template, params, buffers, x, holdings=None):
        if x.shape[1] > 4:  # a training batch; the probe's are of 4 images
            refused.append(x.shape[0])
            raise RuntimeError("CUDA error: simulated kernel refusal")
        return real(template, params, buffers, x, holdings)

    monkeypatch.setattr(fused, "_fused_forward", refused_on_this_device)
    results = tmp_path / "results"
    proc = bench(["run", *TINY, *INLINE, "--methods", "magnitude,random", "--fuse", "2", "--data-dir", str(data_dir),
                  "--results-dir", str(results)])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    recs = [json.loads(p.read_text()) for p in (results / SUITE / "runs").glob("*.json")]
    assert len(recs) == 4 and all(r["status"] == "ok" for r in recs), [r.get("error") for r in recs]
    assert all("fused_with" not in r["metrics"] for r in recs)  # trained alone in the end
    assert refused == [2], refused  # one fused group tried; the second trained unfused from the start
    assert "this command fuses no more runs" in proc.stdout, proc.stdout
    assert proc.stdout.count("its fused training failed in code the runs share: it runs again alone") == 2, proc.stdout
    logs = {log.name: log.read_text() for log in (results / SUITE / "logs").glob("*.log") if "dense" not in log.name}
    fused_logs = {name for name, text in logs.items() if "FusedStepError" in text}
    assert len(logs) == 4 and len(fused_logs) == 2, sorted(logs)
    for name in fused_logs:  # the fused group's runs: the attempt's traceback, then the retry's lines
        text = logs[name]
        assert "FusedStepError: fused training failed in code the runs share" in text, text
        assert "Traceback" in text and "RuntimeError: CUDA error: simulated kernel refusal" in text, text
        assert text.index("to train again alone") < text.index("measuring"), text


def test_an_interrupted_force_says_the_same_command_would_not_resume(tmp_path, monkeypatch, capsys):
    """--force reruns finished runs: after Ctrl-C, rerunning the same command starts over rather
    than resuming, which the message said it would; without --force the rerun resumes."""
    from bench import cli_run

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_run, "cmd_run", interrupted)
    for extra, told in ((["--force"], "rerun without --force to resume"), ([], "rerun to resume")):
        assert main(["run", *TINY, "--methods", "dense", "--results-dir", str(tmp_path), *extra]) == 130
        err = capsys.readouterr().err
        assert f"finished runs are recorded, {told}" in err, err
    assert "without --force" not in err
