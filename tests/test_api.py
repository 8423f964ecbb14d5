"""The Python API: bench.run returns the records of a run, bench.load_results a DataFrame."""

import pytest

import bench
from conftest import FAST

pytestmark = pytest.mark.usefixtures("pngs_not_drawn")  # no test here reads a plot


def test_run_returns_its_records_and_load_results_reads_them_as_a_table(tmp_path, data_dir, monkeypatch, capsys):
    monkeypatch.setenv("BENCH_EXECUTOR", "inline")
    recs = bench.run(suite=FAST, methods=["magnitude", "dense"], seeds=[0, 1], epochs=1, finetune_epochs=1,
                     limit_train=500, limit_test=200, data_dir=data_dir, results_dir=tmp_path,
                     set={"magnitude": {"sparsity": 0.9}})
    assert [(r["config"]["method"], r["config"]["seed"]) for r in recs] == [
        ("magnitude", 0), ("magnitude", 1), ("dense", 0), ("dense", 1)]
    assert all(r["status"] == "ok" and r["config"]["budget"]["epochs"] == 1 for r in recs)
    assert recs[0]["config"]["params"]["sparsity"] == 0.9

    table = bench.load_results(tmp_path, "mlp-fast", budget="custom")
    assert list(table.method) == ["dense", "magnitude"]  # the leaderboard's order, the reference first
    assert list(table.seeds) == [2, 2]
    magnitude = table.set_index("method").loc["magnitude"]
    mean = sum(r["metrics"]["accuracy"] for r in recs[:2]) / 2
    assert magnitude["accuracy_mean_%"] == pytest.approx(100 * mean, abs=0.01)
    assert magnitude["sparsity_%"] == pytest.approx(90, abs=0.5)
    runs = bench.load_results(tmp_path, "mlp-fast", budget="custom", per="run")
    assert len(runs) == 4 and set(runs.seed) == {0, 1}
    assert bench.load_results(tmp_path, "mlp-fast").empty  # nothing ran at the standard budget
    assert len(bench.load_results(tmp_path, "mlp-fast", budget="all", per="run")) == 4
    junk = tmp_path / "mlp-fast" / "runs" / "junk.json"  # a file no record: named, as the leaderboard names it
    junk.write_text("{")
    capsys.readouterr()
    assert len(bench.load_results(tmp_path, "mlp-fast", budget="all", per="run")) == 4
    assert f"bench: warning: left out of the results: {junk}: " in capsys.readouterr().err


def test_run_json_prints_the_commands_records_alone_on_stdout(tmp_path, data_dir, monkeypatch, capsys):
    """`bench run --json`: stdout is the JSON list of the command's records (finished ones
    included), the progress is on stderr."""
    import json

    from bench.cli import main

    monkeypatch.setenv("BENCH_EXECUTOR", "inline")
    args = ["run", "--suite", str(FAST), "--methods", "dense", "--seeds", "0", "--epochs", "1", "--limit-train", "300",
            "--limit-test", "100", "--data-dir", str(data_dir), "--results-dir", str(tmp_path), "--json"]
    for _ in range(2):  # a fresh run, then the same run finished before
        assert main(args) == 0
        out, err = capsys.readouterr()
        (record,) = json.loads(out)
        assert record["status"] == "ok" and record["config"]["method"] == "dense"
        assert "suite mlp-fast: 1 run " in err


def test_bad_options_raise_the_command_lines_message(data_dir):
    with pytest.raises(ValueError, match="--epochs: .*1"):
        bench.run(suite=FAST, methods="dense", epochs=0, data_dir=data_dir, dry_run=True)
    with pytest.raises(ValueError, match="unrecognized arguments: --nonsense=1"):
        bench.run(suite=FAST, methods="dense", nonsense=1, dry_run=True)
    with pytest.raises(ValueError, match=r"^unrecognized arguments: --sparsity=0.9; a method's parameter is set with "
                                         r"--set METHOD.sparsity=VALUE \(e.g. --set magnitude.sparsity=0.9\)"):
        bench.run(suite=FAST, methods="magnitude", sparsity=0.9, dry_run=True)  # the run's, not the top level's
    with pytest.raises(ValueError, match="per is row or run"):
        bench.load_results("results", "mlp", per="seed")


def test_load_results_of_a_missing_folder_raises_rather_than_read_as_no_records(tmp_path):
    """A script run outside the checkout: "results" is no folder there, which an empty table
    would hide until a column was missing (KeyError: 'accuracy_mean_%')."""
    with pytest.raises(FileNotFoundError, match=f"no results folder {tmp_path / 'results'}: "):
        bench.load_results(tmp_path / "results", "mlp")
    assert bench.load_results(tmp_path, "mlp").empty  # a folder without the suite's records: no rows


@pytest.mark.xdist_group("processes")
def test_a_script_without_the_main_guard_stops_at_once_with_the_fix_and_blames_no_run(tmp_path, data_dir):
    """Each worker process imports the script that started the sweep: unguarded, the script's
    bench.run ran a second sweep there, which waited for the first one's claims while the first
    waited for its worker (a hang). Now the import refuses, the driver names the fix, and no run
    gets a failed record that a corrected script would then skip."""
    import subprocess
    import sys

    call = (f"bench.run(suite={str(FAST)!r}, methods='dense', seeds=[0], epochs=1, limit_train=300, limit_test=100, "
            f"data_dir={str(data_dir)!r}, results_dir={str(tmp_path)!r}, jobs=1)")
    script = tmp_path / "sweep.py"
    script.write_text(f"import bench\n{call}\n")
    unguarded = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert unguarded.returncode == 1
    assert 'A script that calls bench.run must do so under `if __name__ == "__main__":`' in unguarded.stderr
    assert not list(tmp_path.glob("*/runs/*.json"))
    script.write_text(f"import bench\n\nif __name__ == '__main__':\n    {call}\n")
    guarded = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert guarded.returncode == 0, guarded.stderr
    assert len(list(tmp_path.glob("*/runs/dense-*.json"))) == 1
