"""benchmarks/migrate_dense.py names the dense model of older records only where retraining at
every commit involved gave identical weights, and leaves every other record as it was."""

import importlib.util
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bench import files, records
from bench.context import DenseWeights

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("migrate_dense", ROOT / "benchmarks" / "migrate_dense.py")
migrate_dense = importlib.util.module_from_spec(spec)
sys.modules["migrate_dense"] = migrate_dense
spec.loader.exec_module(migrate_dense)


def committed(method: str, seed: int = 1, **params: object) -> dict:
    """A committed mlp record of `method` (real figures), as a template."""
    for _, r in records.named_records(ROOT / "results", "mlp"):
        if r["config"]["method"] == method and r["config"]["seed"] == seed and r["standard_budget"] and all(
                r["config"]["params"].get(k) == v for k, v in params.items()):
            r.pop("dense", None)
            return r
    raise LookupError(method)


def git(repo: Path, *args: str, when: int = 0) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t", "GIT_COMMITTER_DATE": f"{1_700_000_000 + when} +0000",
           "GIT_AUTHOR_DATE": f"{1_700_000_000 + when} +0000"}
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True,
                          env=env).stdout.strip()


def commit(repo: Path, message: str, when: int) -> str:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message, when=when)
    return git(repo, "rev-parse", "HEAD")


def retrain(folder: Path, weights: DenseWeights, dense: dict) -> None:
    """What `bench run --methods dense --results-dir folder` leaves: the cached model and its record."""
    (folder / "mlp" / "cache").mkdir(parents=True)
    files.atomic_write(folder / "mlp" / "cache" / "dense-s1-0123.safetensors", weights.save)
    files.write_json_atomic(folder / "mlp" / "runs" / "dense-0123-s1.json", dense)


def history(tmp_path: Path, loaded_none: bool = False, dirty: bool = False
            ) -> tuple[Path, dict[str, str], list[str]]:
    """A checkout where Z came first, the trainer commit A trained the model, B changed code, W's
    runs name their dense model, and C committed the records: the dense record and a one-shot
    row by A, a one-shot and a fine-tuned row by B, a row by a commit never retrained, one by Z
    (before the model existed), one from another CPU, a from-scratch row, a one-shot row whose
    train time is less than the model's, a failed row, and a row by W that names its model.
    With `loaded_none`, also a row without `dense` by W (so that the rule of which runs load the
    dense model is wrong); with `dirty`, the one-shot row by A was made by uncommitted code on Z
    instead. Returns the checkout, each row's commit, and the commits to retrain at (Z, A, B, W)."""
    repo = tmp_path / "repo"
    (repo / "results" / "mlp" / "runs").mkdir(parents=True)
    git(repo, "init", "-q")
    (repo / "code.py").write_text("a = 0\n")
    z = commit(repo, "Z", 0)
    (repo / "code.py").write_text("a = 1\n")
    a = commit(repo, "A", 1)
    (repo / "code.py").write_text("a = 2\n")
    b = commit(repo, "B", 2)
    (repo / "bench").mkdir()
    (repo / "bench" / "worker.py").write_text('result["dense"] = {"commit": commit}\n')
    w = commit(repo, "W: runs name their dense model", 3)
    dense = committed("dense")
    seconds = dense["metrics"]["train_time_s"]
    rows = {"dense": (dense, a), "oneshot": (committed("magnitude-oneshot", sparsity=0.5, n=2), a),
            "oneshot-b": (committed("magnitude-oneshot", sparsity=0.9), b),  # a later user of the model
            "finetuned": (committed("magnitude", sparsity=0.95), b),
            "elsewhere": (committed("magnitude", sparsity=0.9), "f" * 40),
            "scratch": (committed("static", sparsity=0.5), b),
            "other-time": (committed("dynamic-int8"), b),
            "before": (committed("magnitude", sparsity=0.8), z),
            "other-cpu": (committed("magnitude", sparsity=0.5), b),
            "failed": (committed("magnitude", sparsity=0.98), b),
            "named": (committed("magnitude", sparsity=0.5), w)}
    rows["named"][0]["dense"] = {"commit": w, "sha256": "0" * 64, "train_time_s": 1.0}  # what W's runs write
    if loaded_none:
        rows["loaded-none"] = (committed("magnitude", sparsity=0.92), w)
    if dirty:
        rows["oneshot"] = (rows["oneshot"][0], z + "-dirty")
    rows["failed"][0].update(status="failed", error="stopped before it loaded the dense model")
    rows["other-cpu"][0]["env"]["device_name"] = "Some other CPU"
    rows["other-time"][0]["metrics"]["train_time_s"] = seconds - 1.0  # a model trained faster
    for name, (record, made_by) in rows.items():
        record["env"]["git_commit"] = made_by
        files.write_json_atomic(repo / "results" / "mlp" / "runs" / f"{name}.json", record)
    commit(repo, "C: records", 4)
    return repo, {name: made_by for name, (_, made_by) in rows.items()}, [z, a, b, w]


def weights(seed: int) -> DenseWeights:
    g = torch.Generator().manual_seed(seed)
    return DenseWeights({"fc.weight": torch.randn(30, 20, generator=g), "fc.bias": torch.zeros(30)},
                        {"epochs": 20, "seconds": 30.5, "accuracy": 0.98})


def run(repo: Path, retrained: Path, *extra: str) -> int:
    return migrate_dense.main(["--suite", "mlp", "--retrained", str(retrained), "--results", str(repo / "results"),
                               "--root", str(repo), *extra])


def test_identical_retrained_weights_name_the_trainer_in_the_rows_that_qualify(tmp_path, capsys):
    repo, made_by, retrained_at = history(tmp_path)
    a = retrained_at[1]
    dense = json.loads((repo / "results" / "mlp" / "runs" / "dense.json").read_text())
    for c in retrained_at:
        retrain(tmp_path / "retrained" / c, weights(0), dense)
    before = {p.name: p.read_bytes() for p in (repo / "results" / "mlp" / "runs").iterdir()}

    assert run(repo, tmp_path / "retrained") == 0
    assert {p.name: p.read_bytes() for p in (repo / "results" / "mlp" / "runs").iterdir()} == before  # a report only
    out = capsys.readouterr().out
    assert f"trained by {a[:12]} in {dense['metrics']['train_time_s']:.2f} s" in out
    assert "identical weights" in out and "4 would migrate" in out

    assert run(repo, tmp_path / "retrained", "--write") == 0
    got = {name: json.loads((repo / "results" / "mlp" / "runs" / f"{name}.json").read_text()) for name in made_by}
    for name in ("dense", "oneshot", "oneshot-b", "finetuned"):
        assert got[name]["dense"]["commit"] == a
        assert got[name]["dense"]["sha256"] == weights(0).sha256()
        assert got[name]["dense"]["train_time_s"] == dense["metrics"]["train_time_s"]
        assert got[name]["dense"]["migrated"]["retrained_at"] == sorted(retrained_at)
        assert records.record_problem(got[name]) is None
    for name in ("elsewhere", "scratch", "other-time", "before", "other-cpu", "failed"):
        assert (repo / "results" / "mlp" / "runs" / f"{name}.json").read_bytes() == before[f"{name}.json"]
    out = capsys.readouterr().out
    assert "its commit ffffffffffff was not retrained" in out and "so it started from another" in out
    assert "made before the trainer" in out and "made on another CPU, thread count or torch" in out

    assert run(repo, tmp_path / "retrained", "--write") == 0  # again: nothing more to do
    assert "5 already names its dense model" in capsys.readouterr().out


def test_different_retrained_weights_write_nothing_and_fail(tmp_path, capsys):
    repo, _, (z, a, b, w) = history(tmp_path)
    dense = json.loads((repo / "results" / "mlp" / "runs" / "dense.json").read_text())
    for c, seed in ((z, 0), (a, 0), (b, 1), (w, 0)):
        retrain(tmp_path / "retrained" / c, weights(seed), dense)
    before = {p.name: p.read_bytes() for p in (repo / "results" / "mlp" / "runs").iterdir()}

    assert run(repo, tmp_path / "retrained", "--write") == 1
    assert {p.name: p.read_bytes() for p in (repo / "results" / "mlp" / "runs").iterdir()} == before
    out = capsys.readouterr().out
    assert "DIFFERENT weights" in out and "the retrained models differ" in out


def test_an_old_cache_file_is_read_without_unpickling_code(tmp_path):
    path = tmp_path / "dense-s0-x.pt"  # as the harness cached dense models before safetensors
    torch.save({"state_dict": weights(0).state_dict, "meta": weights(0).meta}, path)
    assert migrate_dense.load_weights(path).sha256() == weights(0).sha256()

    class Planted:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "ran"),))

    torch.save({"state_dict": {}, "meta": Planted()}, tmp_path / "planted.pt")
    with pytest.raises(pickle.UnpicklingError, match="refused by torch's weights-only unpickler"):
        migrate_dense.load_weights(tmp_path / "planted.pt")
    assert not (tmp_path / "ran").exists()


def test_a_run_that_recorded_no_dense_model_where_the_rule_says_it_loaded_one_stops_the_migration(tmp_path, capsys):
    repo, _, retrained_at = history(tmp_path, loaded_none=True)
    dense = json.loads((repo / "results" / "mlp" / "runs" / "dense.json").read_text())
    for c in retrained_at:
        retrain(tmp_path / "retrained" / c, weights(0), dense)
    before = {p.name: p.read_bytes() for p in (repo / "results" / "mlp" / "runs").iterdir()}

    assert run(repo, tmp_path / "retrained", "--write") == 2
    assert {p.name: p.read_bytes() for p in (repo / "results" / "mlp" / "runs").iterdir()} == before
    assert ("loads_dense disagrees with what 1 runs recorded (mlp/loaded-none): nothing written"
            in capsys.readouterr().out)


def test_a_model_first_used_by_uncommitted_code_names_no_trainer(tmp_path):
    repo, _, retrained_at = history(tmp_path, dirty=True)
    dense = json.loads((repo / "results" / "mlp" / "runs" / "dense.json").read_text())
    for c in retrained_at:
        retrain(tmp_path / "retrained" / c, weights(0), dense)
    with pytest.raises(SystemExit, match=f"first used by uncommitted code on {retrained_at[0][:12]}"):
        run(repo, tmp_path / "retrained", "--write")


def test_a_commit_named_by_a_record_in_the_history_is_never_taken_for_a_git_option(tmp_path, capsys):
    """The trainer is found among the commits that the history's records name, each passed to
    git: a record naming `--output=FILE` as its commit had `git show` write FILE (any file the
    user may write) before the script stopped with a traceback. A name that is no commit is no
    trainer, and the migration goes on as without it."""
    repo, _, retrained_at = history(tmp_path)
    victim = tmp_path / "victim"
    victim.write_text("not the script's\n")
    planted = json.loads((repo / "results" / "mlp" / "runs" / "oneshot.json").read_text())  # the model's train time
    planted["env"]["git_commit"] = f"--output={victim}"
    files.write_json_atomic(repo / "results" / "mlp" / "runs" / "planted.json", planted)
    commit(repo, "D: a planted record", 5)
    dense = json.loads((repo / "results" / "mlp" / "runs" / "dense.json").read_text())
    for c in retrained_at:
        retrain(tmp_path / "retrained" / c, weights(0), dense)

    assert run(repo, tmp_path / "retrained") == 0
    assert victim.read_text() == "not the script's\n"
    out = capsys.readouterr().out
    assert f"trained by {retrained_at[1][:12]}" in out and "4 would migrate" in out, out
