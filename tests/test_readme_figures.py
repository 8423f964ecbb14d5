"""The figures README.md and benchmarks/RESULTS.md quote are what the committed records give
(benchmarks/readme_figures.py), and a record that changes makes the check name the block it moves."""

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "readme_figures.py"
spec = importlib.util.spec_from_file_location("readme_figures", SCRIPT)
figures = importlib.util.module_from_spec(spec)
sys.modules["readme_figures"] = figures
spec.loader.exec_module(figures)
blocks = figures.blocks


def test_the_committed_blocks_are_up_to_date(capsys):
    assert figures.main(["--check"]) == 0, capsys.readouterr().err


@pytest.fixture
def checkout(tmp_path):
    """A copy of the committed records, leaderboards and the two files with blocks."""
    for suite in ("mlp", "mnist", "cifar"):
        shutil.copytree(ROOT / "results" / suite / "runs", tmp_path / "results" / suite / "runs")
        for table in (ROOT / "results" / suite).glob("leaderboard*.csv"):
            shutil.copy(table, tmp_path / "results" / suite)
    for name in figures.FILES:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, tmp_path / name)
    return tmp_path


def args(root: Path, *flags: str) -> list[str]:
    return ["--results", str(root / "results"), "--root", str(root), *flags]


def plant_accuracy(path: Path, accuracy: float) -> None:
    record = json.loads(path.read_text())
    record["metrics"]["accuracy"] = accuracy
    path.write_text(json.dumps(record))


def test_a_changed_record_fails_the_check_naming_its_block_and_write_refreshes_it(checkout, capsys):
    # SparseGPT at 90% from 1,024 images on mlp, seed 0: the README's reason for the default
    runs = checkout / "results" / "mlp" / "runs"
    (path,) = [p for p in runs.glob("sparsegpt-*-s0.json")
               if (lambda c: c["params"]["sparsity"] == 0.9 and c["params"]["calibration_samples"] == 1024
                   and c["params"]["n"] == 0 and not c["params"]["finetune"])(json.loads(p.read_text())["config"])]
    plant_accuracy(path, 0.9001)
    capsys.readouterr()
    assert figures.main(args(checkout, "--check")) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0] == (f"{checkout / 'README.md'}: block sparsegpt-calibration is stale: "
                      "run python benchmarks/readme_figures.py --write")
    assert {line.split(": block ")[1].split()[0] for line in err[1:]} == {"one-shot-pruning", "sparsegpt-calibration"}
    assert all(line.startswith(str(checkout / "benchmarks" / "RESULTS.md")) for line in err[1:])  # the same row there
    before = (checkout / "README.md").read_text()
    assert figures.main(args(checkout, "--write")) == 0
    after = (checkout / "README.md").read_text()
    assert "93.52% from 1,024" in before and "90.01% from 1,024" in after
    begin, end = blocks.markers("sparsegpt-calibration")
    outside = lambda text: text.split(begin)[0] + text.split(end)[1]  # noqa: E731
    assert outside(after) == outside(before)  # only the block moved (the seed's figure and its row's)
    assert figures.main(args(checkout, "--check")) == 0


def test_a_changed_row_fails_the_check_in_results_md(checkout, capsys):
    """A row's record moves (a rerun): RESULTS.md's one-shot table quoting the row goes stale,
    README.md, which does not quote it, does not."""
    runs = checkout / "results" / "mnist" / "runs"
    (path,) = [p for p in runs.glob("gptq-*-s1.json")
               if (lambda c: c["params"]["bits"] == 3 and c["params"]["calibration_samples"] == 1024
                   and not c["params"]["finetune"])(json.loads(p.read_text())["config"])]
    plant_accuracy(path, 0.5)
    assert figures.main(args(checkout, "--check")) == 1
    err = capsys.readouterr().err
    assert "RESULTS.md: block one-shot-low-bit is stale" in err and "README.md" not in err


def test_a_block_without_its_markers_is_named_and_never_appended(tmp_path):
    path = tmp_path / "notes.md"
    begin, end = blocks.markers("x")
    path.write_text(f"a {begin}1{end} b\n")
    assert blocks.stale(path, {"x": "1"}, "cmd") == []
    assert blocks.stale(path, {"x": "2", "y": "3"}, "cmd") == [
        f"{path}: block x is stale: run cmd", f"{path}: no block y (between {' and '.join(blocks.markers('y'))})"]
    with pytest.raises(ValueError, match="no block y"):
        blocks.write(path, {"x": "2", "y": "3"})
    assert path.read_text() == f"a {begin}1{end} b\n"  # nothing written
    blocks.write(path, {"x": "22"})
    assert path.read_text() == f"a {begin}22{end} b\n"


def test_a_gpu_windows_record_rerun_elsewhere_asks_for_its_prose_to_be_rewritten(checkout, capsys):
    """RESULTS.md's first GPU window quotes its dense record under words about an H100; a later
    window on another GPU reruns that record. The script then names the window and what to
    rewrite, rather than quote the new record under the old window's words."""
    runs = checkout / "results" / "cifar" / "runs"
    (path,) = [p for p in runs.glob("dense-*-s0.json")
               if json.loads(p.read_text())["env"]["git_commit"].startswith(figures.FIRST_WINDOW)]
    record = json.loads(path.read_text())
    record["env"].update(git_commit="f" * 40, device_name="NVIDIA H200")
    path.write_text(json.dumps(record))
    capsys.readouterr()
    assert figures.main(args(checkout, "--check")) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"readme_figures: results/cifar/runs holds no dense record of the GPU window of commit "
                          f"{figures.FIRST_WINDOW} any more") and "Traceback" not in err


def test_a_gpu_window_whose_records_were_partly_rerun_elsewhere_asks_for_its_prose_too(checkout, capsys):
    """A later window cut short reruns some of a window's records: the first window's Deep
    Compression times were then the range of those left (3 of its 4), a figure of neither window,
    which --write put under the first window's words."""
    runs = checkout / "results" / "cifar" / "runs"
    path = next(p for p in sorted(runs.glob("deep-compression-*.json"))
                if json.loads(p.read_text())["env"]["git_commit"].startswith(figures.FIRST_WINDOW))
    record = json.loads(path.read_text())
    record["env"].update(git_commit="f" * 40, device_name="NVIDIA H200")
    path.write_text(json.dumps(record))
    before = (checkout / "benchmarks" / "RESULTS.md").read_text()
    capsys.readouterr()
    assert figures.main(args(checkout, "--write")) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"readme_figures: results/cifar/runs holds 3 of the 4 deep-compression records of the GPU "
                          f"window of commit {figures.FIRST_WINDOW} any more"), err
    assert (checkout / "benchmarks" / "RESULTS.md").read_text() == before


def test_a_speedup_quoted_at_one_decimal_is_rounded_once_from_the_records(checkout):
    """RESULTS.md quotes speedups at 1 decimal; read from the CSV's 3-decimal cells they were
    rounded twice: magnitude at 98% on mlp with a CSR speedup of 2.2504 at batch 256 (2.25 in the
    CSV, which rounds half to even) read 2.2, not the 2.3 it is."""
    from bench import leaderboard

    runs = checkout / "results" / "mlp" / "runs"
    for path in runs.glob("magnitude-*.json"):
        record = json.loads(path.read_text())
        if record["config"]["method"] == "magnitude" and record["config"]["params"]["sparsity"] == 0.98:
            record["metrics"]["speedup_torch_csr_b256"] = 2.2504
            path.write_text(json.dumps(record))
    leaderboard.write(checkout / "results", "mlp")
    assert ",2.25," in (checkout / "results" / "mlp" / "leaderboard.csv").read_text()
    assert figures.generated(checkout / "results")["benchmarks/RESULTS.md"]["speedup-csr-magnitude"] == "2.3"
