"""What a user sees on the console: no import noise, a version, tables that fit the terminal."""

import importlib
import json
import logging
import os
import re
import subprocess
import sys

import pytest

from conftest import FAST, ROOT


def test_importing_torch_and_every_plugin_prints_no_known_noise_but_other_warnings_still_show(tmp_path):
    # One fresh process: first what a worker imports (bench.executors, where its entry
    # point is, never the command line), then `bench list methods --check` (torchao and every
    # plugin); what either prints at import shows in the output.
    code = ("import bench.executors; from bench.cli import main; "
            "raise SystemExit(main(['list', 'methods', '--check']))")
    ran = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert ran.returncode == 0, ran.stderr
    assert "magnitude" in ran.stdout and "FAILED TO IMPORT" not in ran.stdout, ran.stdout
    assert "No CUDA runtime is found" not in ran.stdout + ran.stderr and "KernelPreference" not in ran.stderr
    importlib.import_module("bench")  # installs the filters, before torch in every process of the harness

    pytree = logging.getLogger("torch.utils._pytree")
    other = logging.LogRecord("torch.utils._pytree", logging.WARNING, "f", 1, "another warning", None, None)
    noise = logging.LogRecord("torch.utils._pytree", logging.WARNING, "f", 1,
                              "<enum 'KernelPreference'> is an Enum subclass and is now ...", None, None)
    assert pytree.filter(other) and not pytree.filter(noise)


def test_version_names_the_release_and_the_commit(bench):
    ran = bench(["--version"])
    assert ran.returncode == 0
    assert re.fullmatch(r"bench \S+, commit [0-9a-f]{40}(-dirty)?\n", ran.stdout), ran.stdout


@pytest.mark.parametrize("columns", [80, 120])
def test_list_methods_wraps_to_the_terminal_width(bench, monkeypatch, columns):
    monkeypatch.setenv("COLUMNS", str(columns))
    ran = bench(["list", "methods"])
    assert ran.returncode == 0, ran.stderr
    lines = ran.stdout.splitlines()
    assert max(map(len, lines)) <= columns
    assert any(line.startswith("magnitude ") for line in lines)


def test_list_methods_piped_keeps_a_line_per_method(bench, monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)  # not a terminal (pytest captures), no width asked for
    ran = bench(["list", "methods"])
    rows = {line.split()[0]: line for line in ran.stdout.splitlines()[2:]}
    assert "(swept: sparsity)" in rows["magnitude"] and "scope=global" in rows["magnitude"]


def test_list_with_a_methods_name_shows_its_parameters_ranges_and_how_to_set_them(bench):
    """A newcomer asking for one method's parameters (`bench list magnitude`) was refused as an
    invalid choice, and the table gives defaults only: a value out of range was learnt from the
    refusal of a run. Named, a method is shown in full: its docstring, and per parameter its
    default, the values it takes and whether it is swept, with the --set that changes one."""
    for args in (["list", "magnitude"], ["list", "methods", "magnitude"]):
        ran = bench(args)
        assert ran.returncode == 0, ran.stderr
        assert ran.stdout.startswith("magnitude (pruning; built in)"), ran.stdout
        assert "Han et al. set each layer's threshold" in ran.stdout  # the whole docstring, not its first line
        assert "--set magnitude.PARAM=VALUE, e.g. --set magnitude.sparsity=0.9" in ran.stdout
        rows = {line.split()[0]: line for line in ran.stdout.splitlines() if line.startswith("  ") and line.split()}
        assert "0.9" in rows["sparsity"] and "a number in [0, 1); swept" in rows["sparsity"]
        assert "global" in rows["scope"] and "one of global, layer" in rows["scope"]
    both = bench(["list", "gmp", "magnitude+ptq-int8"])  # several, a chain's links each
    assert re.findall(r"^(\S+) \([a-z -]+; built in\)", both.stdout, re.M) == ["gmp", "magnitude", "ptq-int8"]
    assert "an integer >= 1" in both.stdout  # gmp's dt
    typo = bench(["list", "magnitud"])
    assert typo.returncode == 2 and "did you mean magnitude" in typo.stderr
    wrong_list = bench(["list", "suite"])
    assert wrong_list.returncode == 2 and "did you mean bench list suites?" in wrong_list.stderr
    shouted = bench(["list", "SUITES"])
    assert shouted.returncode == 2 and "did you mean bench list suites?" in shouted.stderr
    assert bench(["list", "suites", "mlp"]).returncode == 2
    (entry,) = json.loads(bench(["list", "magnitude", "--json"]).stdout)
    assert entry["parameters"]["sparsity"] == {"default": 0.9, "required": False, "values": "a number in [0, 1)"}
    checked = bench(["list", "--check", "magnitude"])  # --check lists every plugin: the names were ignored
    assert checked.returncode == 2 and "give it no method names" in checked.stderr


def test_list_with_a_suites_name_says_it_is_a_suite(bench):
    """`bench list mlp`, a newcomer asking for a suite as `bench list magnitude` shows a method,
    was told "unknown method 'mlp'; did you mean imp, gmp?": it says where the suites and that
    suite's results are."""
    for args in (["list", "mlp"], ["list", "methods", "magnitude", "mnist"]):
        ran = bench(args)
        name = args[-1]
        assert ran.returncode == 2 and ran.stdout == "", ran.stdout
        assert ran.stderr == (f"bench list: error: '{name}' is a suite, not a method: bench list suites lists the "
                              f"suites, bench leaderboard --show --suite {name} shows its results\n")


def test_a_dense_model_of_one_epoch_is_said_in_the_singular(tmp_path, data_dir, bench):
    """`--epochs 1`, the quickest run there is, printed "1 epochs each" in its plan and "after 1
    epochs" under its dense model."""
    args = ["run", "--suite", FAST, "--methods", "dense", "--seeds", "0", "--epochs", "1", "--limit-train", "200",
            "--limit-test", "100", "--data-dir", data_dir, "--results-dir", tmp_path]
    planned = bench([*args, "--dry-run"])
    assert planned.returncode == 0 and "dense models to train: seed 0 (1 epoch each)" in planned.stdout, planned.stdout
    ran = bench(args)
    assert ran.returncode == 0 and re.search(r"dense model, seed 0: [\d.]+% after 1 epoch \(", ran.stdout), ran.stdout
    # none to train gives no epochs of each: "none (2 epochs each)" read as if something trained
    again = bench([*args, "--force", "--dry-run"])
    assert again.returncode == 0 and "dense models to train: none; cached: 1\n" in again.stdout, again.stdout


def test_a_quick_run_goes_to_the_git_ignored_scratch_folder(tmp_path, data_dir, bench, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BENCH_RESULTS_DIR", raising=False)
    ran = bench(["run", "--suite", FAST, "--methods", "dense", "--seeds", "0", "--epochs", "1", "--limit-train", "200",
                 "--limit-test", "100", "--data-dir", data_dir])
    assert ran.returncode == 0, ran.stderr
    assert len(list((tmp_path / "results-quick" / "mlp-fast" / "runs").glob("*.json"))) == 1
    assert not (tmp_path / "results").exists()
    assert "results-quick/" in (ROOT / ".gitignore").read_text().splitlines()


def test_a_run_says_when_its_measurement_starts(tmp_path, data_dir, bench):
    """Between a run's last epoch and its result line, measuring the model takes seconds per
    runtime: the console says what is going on rather than showing nothing."""
    ran = bench(["run", "--suite", FAST, "--methods", "dense", "--seeds", "0", "--epochs", "1", "--limit-train", "200",
                 "--limit-test", "100", "--data-dir", data_dir, "--results-dir", tmp_path])
    assert ran.returncode == 0, ran.stderr
    lines = ran.stdout.splitlines()
    measuring = next(i for i, line in enumerate(lines)
                     if line == "  measuring: accuracy, size, FLOPs, and latency beside the dense model in torch")
    assert lines[measuring - 1] == "[1/1] dense - seed=0"  # the run's start (dense trains nothing of its own)
    assert lines[measuring + 1].startswith("[1/1] dense - seed=0 -> accuracy")


def test_a_listing_piped_into_a_reader_that_stops_early_ends_quietly():
    """`bench list methods | head -1`: the reader closes the pipe; the command says nothing."""
    proc = subprocess.Popen([sys.executable, "-m", "bench", "list", "methods"], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    proc.stdout.close()  # before the command can write a line
    assert proc.wait(timeout=60) == 141
    assert proc.stderr.read() == ""


def test_a_runs_line_gives_its_size_against_the_dense_models():
    """Compression 1.0 (the dense row, a method that keeps every weight) reads as the dense
    model's size, not "1.0x smaller"; smaller and larger models read as such."""
    from bench.sweep import _summary

    def line(compression):
        return _summary({"status": "ok", "config": {"params": {}}, "metrics": {
            "accuracy": 0.98, "sparsity": 0.0, "size_bytes": 4096, "compression": compression, "train_epochs": 20}, "run_time_s": 7.0})

    assert "(the dense model's size)" in line(1.0) and "x smaller" not in line(1.0)
    assert "(4.0x smaller)" in line(4.0) and "(2.0x larger)" in line(0.5)
