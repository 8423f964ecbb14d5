import json
import os
import subprocess

import pytest

from bench import files, layout, provenance, records
from conftest import FAST


def test_config_hash_is_stable_and_order_free():
    a = records.config_hash({"x": 1, "y": [1, 2], "z": {"b": 2, "a": 1}})
    b = records.config_hash({"z": {"a": 1, "b": 2}, "y": [1, 2], "x": 1})
    assert a == b and len(a) == 16
    assert records.config_hash({"x": 2}) != records.config_hash({"x": 1})


def test_atomic_write_keeps_the_old_record_when_writing_fails(tmp_path):
    path = tmp_path / "runs" / "r.json"
    files.write_json_atomic(path, {"schema": 1, "status": "ok"})
    with pytest.raises(TypeError):
        files.write_json_atomic(path, {"schema": 1, "status": object()})  # not JSON-able
    assert json.loads(path.read_text()) == {"schema": 1, "status": "ok"}
    assert os.listdir(path.parent) == ["r.json"]  # no temporary file left behind


def test_standard_records_are_refused_from_uncommitted_code(tmp_path, data_dir, bench, monkeypatch):
    """Every standard leaderboard row must name the commit that made it: a dirty checkout is
    refused before anything runs (BENCH_GIT_COMMIT stands in for git here)."""
    monkeypatch.setenv("BENCH_GIT_COMMIT", "0123abc-dirty")
    proc = bench(["run", "--suite", FAST, "--methods", "dense", "--seeds", "0", "--data-dir", data_dir,
                  "--results-dir", tmp_path])
    assert proc.returncode == 2, proc.stderr
    assert "uncommitted changes (0123abc-dirty)" in proc.stderr and "--allow-dirty" in proc.stderr
    assert not (tmp_path / "mlp-fast" / "runs").exists()
    custom = bench(["run", "--suite", FAST, "--methods", "dense", "--seeds", "0", "--epochs", "1",
                    "--limit-train", "1000", "--data-dir", data_dir, "--results-dir", tmp_path])
    assert custom.returncode == 0, custom.stderr  # quick runs with overridden budgets stay allowed


def test_only_code_makes_a_checkout_dirty_not_the_results_a_sweep_writes(tmp_path, monkeypatch):
    """A sweep's first command rewrites results/*/leaderboard.md in the checkout; its next
    command must still see clean code, and a changed source file must not."""
    monkeypatch.delenv("BENCH_GIT_COMMIT", raising=False)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(tmp_path)]
    (tmp_path / "bench").mkdir()
    (tmp_path / "results" / "mlp").mkdir(parents=True)
    (tmp_path / "bench" / "code.py").write_text("x = 1\n")
    (tmp_path / "results" / "mlp" / "leaderboard.md").write_text("old\n")
    for cmd in (["init", "-q"], ["add", "."], ["commit", "-qm", "c"]):
        subprocess.run([*git, *cmd], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    (tmp_path / "results" / "mlp" / "leaderboard.md").write_text("rewritten by a sweep\n")
    assert provenance.git_commit(tmp_path / "bench") == head
    (tmp_path / "notes.txt").write_text("an untracked note is no code\n")
    assert provenance.git_commit(tmp_path / "bench") == head
    assert provenance.uncommitted(head, {}, here=tmp_path / "bench") is None
    (tmp_path / "bench" / "plugin.py").write_text("print('runs, but no commit holds it')\n")
    assert provenance.git_commit(tmp_path / "bench") == head + "-dirty"
    # the refusal names the files: a new plugin is an untracked file, not what one calls a change
    assert provenance.uncommitted(head + "-dirty", {}, here=tmp_path / "bench").startswith(
        f"the checkout has uncommitted changes ({head}-dirty: bench/plugin.py): standard-budget records")
    (tmp_path / "bench" / "plugin.py").unlink()
    (tmp_path / "bench" / "code.py").write_text("x = 2\n")
    assert provenance.git_commit(tmp_path / "bench") == head + "-dirty"
    assert f"({head}-dirty: bench/code.py)" in provenance.uncommitted(head + "-dirty", {}, here=tmp_path / "bench")


def test_refresh_reruns_only_records_another_commit_made_and_resumes(tmp_path, data_dir, bench, monkeypatch):
    """--refresh regenerates a leaderboard in as many commands as it takes: a record this commit
    made on this device is kept, one from another commit is rerun (BENCH_GIT_COMMIT names the
    commit here)."""
    args = ["run", "--suite", FAST, "--methods", "dense", "--seeds", "0", "--epochs", "1",
            "--limit-train", "1000", "--limit-test", "500", "--data-dir", data_dir, "--results-dir", tmp_path]

    def run(commit: str, *extra: str):
        monkeypatch.setenv("BENCH_GIT_COMMIT", commit)
        return bench([*args, *extra])

    first = run("aaa111")
    assert first.returncode == 0, first.stderr
    same = run("aaa111", "--refresh")
    assert same.returncode == 0 and "0 to run, 1 finished before" in same.stdout, same.stderr
    newer = run("bbb222", "--refresh")
    assert newer.returncode == 0 and "1 to run, 0 finished before" in newer.stdout, newer.stderr
    assert "was trained by aaa111" in newer.stdout and "--refresh trains it again" in newer.stdout
    [path] = (tmp_path / "mlp-fast" / "runs").glob("dense-*.json")
    assert json.loads(path.read_text())["env"]["git_commit"] == "bbb222"
    again = run("bbb222", "--refresh")
    assert "0 to run, 1 finished before" in again.stdout and "trains it again" not in again.stdout, again.stderr
    record = json.loads(path.read_text())
    record["env"]["device_name"] = "Another CPU"  # as if made on another machine with the same code
    path.write_text(json.dumps(record))
    elsewhere = run("bbb222", "--refresh")
    assert "1 to run, 0 finished before" in elsewhere.stdout, elsewhere.stderr
    dirty = run("bbb222-dirty", "--refresh")
    assert "1 to run, 0 finished before" in dirty.stdout, dirty.stderr  # uncommitted code matches nothing
    both = run("bbb222", "--refresh", "--force")
    assert both.returncode == 2 and "not allowed with argument" in both.stderr

    # --refresh device: any commit a checkout vouched for, made on this device, is kept
    (path,) = (tmp_path / "mlp-fast" / "runs").glob("dense-*.json")
    record = json.loads(path.read_text())
    verified = {**record, "env": {k: v for k, v in record["env"].items() if k != "commit_from_env"}}
    path.write_text(json.dumps({**verified, "env": {**verified["env"], "git_commit": "aaa111"}}))
    kept = run("ccc333", "--refresh", "device")
    assert "0 to run, 1 finished before" in kept.stdout, kept.stderr  # another commit, vouched for
    path.write_text(json.dumps({**verified, "env": {**verified["env"], "git_commit": "aaa111-dirty"}}))
    assert "1 to run, 0 finished before" in run("ccc333", "--refresh", "device").stdout  # uncommitted code
    assert json.loads(path.read_text())["env"]["commit_from_env"] is True  # the rerun, named by the variable
    unverified = run("ddd444", "--refresh", "device")
    assert "1 to run, 0 finished before" in unverified.stdout, unverified.stderr  # no checkout vouched for it


def test_recorded_plans_every_setting_the_records_hold_so_a_refresh_can_rerun_them_all(tmp_path, data_dir, bench):
    """Rows made with --set, and chains, are no part of the sweep `--methods` plans: --recorded
    adds them (a chain when all its links are selected), so that `--refresh --recorded` reruns
    every record of a leaderboard."""
    tiny = ["--suite", FAST, "--seeds", "0", "--epochs", "1", "--finetune-epochs", "1", "--limit-train", "1000",
            "--limit-test", "500", "--data-dir", data_dir, "--results-dir", tmp_path]
    for methods, setting in (("magnitude", "magnitude.sparsity=0.7"), ("magnitude+dynamic-int8", "magnitude.sparsity=0.9")):
        made = bench(["run", *tiny, "--methods", methods, "--set", setting])
        assert made.returncode == 0, made.stderr
        assert f"full leaderboard: {tmp_path}/mlp-fast/leaderboard-custom.md (overridden budgets)" in made.stdout
    sweep = bench(["run", *tiny, "--methods", "magnitude,dynamic-int8", "--dry-run"])
    assert "3 runs: 3 to run, 0 finished before" in sweep.stdout, sweep.stderr
    (older,) = [p for p in (tmp_path / "mlp-fast" / "runs").glob("magnitude-*.json")
                if json.loads(p.read_text())["config"]["params"]["sparsity"] == 0.7]
    record = json.loads(older.read_text())
    del record["config"]["budget"]["label_smoothing"]  # as a record made before the field existed
    older.write_text(json.dumps(record))
    every = bench(["run", *tiny, "--methods", "magnitude,dynamic-int8", "--recorded", "--dry-run"])
    assert "5 runs: 3 to run, 2 finished before" in every.stdout, every.stderr
    alone = bench(["run", *tiny, "--methods", "dynamic-int8", "--recorded", "--dry-run"])
    assert "1 run: 1 to run" in alone.stdout  # the chain's magnitude link is not selected
    assert "5 runs: 5 to run" in bench(["run", *tiny, "--methods", "magnitude,dynamic-int8", "--recorded", "--force",
                                        "--dry-run"]).stdout
    # a tampered record whose setting cannot run is named, not a KeyError or an unnamed refusal
    (chain,) = (tmp_path / "mlp-fast" / "runs").glob("magnitude+dynamic-int8-*.json")
    record = json.loads(chain.read_text())
    record["config"]["params"] = {"dense": {}, "dynamic-int8": {}}
    chain.write_text(json.dumps(record))
    (older,) = [p for p in (tmp_path / "mlp-fast" / "runs").glob("magnitude-*.json")
                if json.loads(p.read_text())["config"]["params"]["sparsity"] == 0.7]
    for path, why in ((chain, "chain magnitude+dynamic-int8: parameters are given for the links dense, dynamic-int8"),
                      (older, "expected a number in [0, 1), got 5.0")):
        if path == older:
            record = json.loads(older.read_text())
            record["config"]["params"]["sparsity"] = 5.0
            older.write_text(json.dumps(record))
        refused = bench(["run", *tiny, "--methods", "magnitude,dynamic-int8", "--recorded", "--dry-run"])
        assert refused.returncode == 2 and f"--recorded: the record {path.stem} names a setting that cannot run" \
            in refused.stderr and why in refused.stderr, refused.stderr
        chain.write_text(json.dumps({**json.loads(chain.read_text()), "config": {
            **json.loads(chain.read_text())["config"], "params": {"magnitude": {"sparsity": 0.9}, "dynamic-int8": {}}}}))


def test_the_driver_stamps_the_provenance_whichever_checkout_its_worker_runs_in(tmp_path, data_dir, monkeypatch):
    """A worker on another node may hold another checkout, or none: the records and the cached
    dense model name the commit the driver checked, never the worker's."""
    from bench import registry
    from bench.executors import InlineExecutor
    from bench.runner import run_suite
    from bench.suite import load_suite

    node = tmp_path / "node"
    subprocess.run(["git", "init", "-q", str(node)], check=True)

    class OnAnotherNode(InlineExecutor):
        def wait(self, timeout: float):
            with pytest.MonkeyPatch.context() as there:
                there.chdir(node)
                there.setenv("BENCH_GIT_COMMIT", "worker000")
                return super().wait(timeout)

    monkeypatch.setenv("BENCH_GIT_COMMIT", "driver111")
    done = run_suite(load_suite(str(FAST)), registry.select("dense,magnitude"), seeds=[0],
                     results_dir=tmp_path / "results", data_dir=data_dir, device="cpu", overrides={},
                     executor=OnAnotherNode(echo=lambda line: None),
                     budget_overrides={"epochs": 1, "finetune_epochs": 1, "limit_train": 500, "limit_test": 200},
                     log=lambda line: None)
    assert {r["status"] for r in done} == {"ok"} and {r["config"]["method"] for r in done} == {"dense", "magnitude"}
    assert {r["env"]["git_commit"] for r in done} == {"driver111"}
    assert {r["dense"]["commit"] for r in done} == {"driver111"}


def test_a_run_elsewhere_than_the_imported_checkout_warns(tmp_path, data_dir, bench, monkeypatch):
    """In a second clone, the editable install of the first still runs the first's code: say so."""
    subprocess.run(["git", "init", "-q", str(tmp_path / "clone")], check=True)
    (tmp_path / "clone" / "bench").mkdir()
    (tmp_path / "clone" / "bench" / "__init__.py").write_text("")
    monkeypatch.chdir(tmp_path / "clone")
    ran = bench(["run", "--suite", FAST, "--methods", "dense", "--seeds", "0", "--dry-run",
                 "--data-dir", data_dir, "--results-dir", tmp_path / "results"])
    assert ran.returncode == 0, ran.stderr
    assert f"this is the checkout {tmp_path / 'clone'}, but the bench package runs from" in ran.stderr
    monkeypatch.chdir(tmp_path)  # no checkout at all: nothing to warn about
    assert provenance.foreign_checkout(tmp_path) is None
    # Another project's checkout (a plugin's, whose tests call bench.testing.check_method) is no
    # clone of the harness: there is no "this checkout's" bench code to run instead.
    subprocess.run(["git", "init", "-q", str(tmp_path / "plugin")], check=True)
    assert provenance.foreign_checkout(tmp_path / "plugin") is None


def test_records_name_the_dense_model_they_started_from_and_its_costs(tmp_path, data_dir, bench, monkeypatch):
    """A run that reuses a cached dense model names the commit that trained it and the hash of
    its weights; its own time is apart from the dense stage's; its training FLOPs count the dense
    epochs and its own, at the same per-image cost for the same architecture."""
    from bench.context import DenseWeights

    args = ["run", "--suite", FAST, "--seeds", "0", "--epochs", "2", "--finetune-epochs", "1",
            "--limit-train", "512", "--limit-test", "200", "--data-dir", data_dir, "--results-dir", tmp_path]
    monkeypatch.setenv("BENCH_GIT_COMMIT", "aaa111")
    assert bench([*args, "--methods", "dense"]).returncode == 0
    monkeypatch.setenv("BENCH_GIT_COMMIT", "bbb222")
    ran = bench([*args, "--methods", "magnitude,gmp", "--set", "magnitude.sparsity=0.5", "--set", "gmp.sparsity=0.5"])
    assert ran.returncode == 0, ran.stderr
    recs = {r["config"]["method"]: r for r in (json.loads(p.read_text()) for p in (tmp_path / "mlp-fast" / "runs").glob("*.json"))}
    [cache] = (tmp_path / "mlp-fast" / "cache").glob("dense-s0-*.safetensors")
    weights = DenseWeights.load(cache)
    for method in ("dense", "magnitude"):
        assert recs[method]["dense"] == {"commit": "aaa111", "sha256": weights.sha256(),
                                         "train_time_s": weights.meta["seconds"]}
        m = recs[method]["metrics"]
        assert m["method_time_s"] == pytest.approx(m["train_time_s"] - weights.meta["seconds"])
    assert recs["magnitude"]["env"]["git_commit"] == "bbb222" and recs["magnitude"]["env"]["commit_from_env"]
    assert "dense" not in recs["gmp"] and recs["gmp"]["metrics"]["method_time_s"] == recs["gmp"]["metrics"]["train_time_s"]
    per_image = recs["dense"]["metrics"]["train_flops"] / (2 * 512)  # 2 epochs of 512 images
    assert 2 * recs["dense"]["metrics"]["flops"] < per_image <= 3 * recs["dense"]["metrics"]["flops"]  # fwd + bwd
    for r in recs.values():  # one architecture: every epoch costs the same, masked or not
        assert r["metrics"]["train_flops"] == r["metrics"]["train_epochs"] * 512 * per_image
    assert recs["magnitude"]["metrics"]["train_epochs"] == 3


def test_a_dense_model_trained_again_is_checked_against_the_one_recorded_runs_started_from(tmp_path, data_dir, bench,
                                                                                          monkeypatch):
    """Retrained the same way (same threads, same machine), the dense model is the one the
    records started from, bit for bit, and nothing is said; retrained into another model, the
    command warns that its rows differ from the recorded ones by their dense model too."""
    args = ["run", "--suite", FAST, "--seeds", "0", "--epochs", "1", "--finetune-epochs", "1", "--limit-train", "512",
            "--limit-test", "200", "--data-dir", data_dir, "--results-dir", tmp_path, "--threads", "1", "--force"]
    monkeypatch.setenv("BENCH_GIT_COMMIT", "aaa111")
    assert bench([*args, "--methods", "dense"]).returncode == 0
    [cache] = (tmp_path / "mlp-fast" / "cache").glob("dense-s0-*.safetensors")
    cache.unlink()
    again = bench([*args, "--methods", "magnitude", "--set", "magnitude.sparsity=0.5"])
    assert again.returncode == 0 and "dense model, seed 0: 1" not in again.stdout
    assert "warning" not in again.stdout + again.stderr
    for path in (tmp_path / "mlp-fast" / "runs").glob("*.json"):  # as if they had started from another model
        planted = json.loads(path.read_text())
        planted["dense"]["sha256"] = "0" * 64
        planted["env"]["device_name"] = "CPU\x1b]0;retitled\x07"  # a record's text: printed printable
        path.write_text(json.dumps(planted))
    cache.unlink()
    warned = bench([*args, "--methods", "magnitude", "--set", "magnitude.sparsity=0.5"])
    assert warned.returncode == 0
    assert ("dense model, seed 0: warning: not the model that 2 recorded runs of seed 0 started from (made with 1 thread "
            "on CPU?]0;retitled?; this one with 1 thread on ") in warned.stdout, warned.stdout


def test_compression_is_relative_to_the_trained_dense_model(tmp_path, data_dir, bench):
    """A model with BatchNorm encodes smaller untrained (its zero-initialized tensors take the
    bitmask form): the dense row must still be 1.0x, against its own trained weights. (Width 8:
    at width 4, oneDNN's channels-last convolution backward crashes the process on this CPU.)"""
    from bench.measure import size_bytes
    from bench.models import build_model

    suite = tmp_path / "resnet.yaml"
    suite.write_text(FAST.read_text().replace("name: mlp-fast", "name: resnet-fast")
                     .replace("  name: lenet300\nstudent:", "  name: resnet20\n  kwargs: {width: 8, depth: 8}\nstudent:"))
    ran = bench(["run", "--suite", suite, "--methods", "dense", "--seeds", "0", "--epochs", "1", "--limit-train", "256",
                 "--limit-test", "100", "--data-dir", data_dir, "--results-dir", tmp_path])
    assert ran.returncode == 0, ran.stderr
    [record] = [json.loads(p.read_text()) for p in (tmp_path / "resnet-fast" / "runs").glob("dense-*.json")]
    assert record["metrics"]["compression"] == 1.0
    untrained = build_model("resnet20", {"width": 8, "depth": 8}, 10, in_channels=1)
    assert size_bytes(untrained) != record["metrics"]["size_bytes"]  # the reference this test guards against


def test_a_parameter_added_with_a_default_keeps_finished_records_finished(tmp_path, data_dir, bench, monkeypatch):
    """A run's identity leaves out values equal to their defaults, so a method that gains a
    defaulted parameter, and records named before identities did so (by the hash of every
    value), still count as finished; setting the new parameter is a new run."""
    import dataclasses

    from bench import registry

    args = ["run", "--suite", FAST, "--methods", "magnitude", "--seeds", "0", "--set", "magnitude.sparsity=0.5",
            "--epochs", "1", "--finetune-epochs", "1", "--limit-train", "512", "--limit-test", "200",
            "--data-dir", data_dir, "--results-dir", tmp_path]
    assert bench(args).returncode == 0
    [path] = (tmp_path / "mlp-fast" / "runs").glob("magnitude-*.json")
    record = json.loads(path.read_text())  # named as before: by the hash of every value
    record["config_hash"] = records.config_hash(record["config"])
    path.unlink()
    legacy = layout.record_path(tmp_path, "mlp-fast", "magnitude", 0, record["config_hash"])
    legacy.write_text(json.dumps(record))

    registry.load(["magnitude"])
    grown = dataclasses.make_dataclass("Magnitude", [("warmup", int, dataclasses.field(default=0))],
                                       bases=(registry.METHODS["magnitude"],))
    monkeypatch.setitem(registry.METHODS, "magnitude", grown)
    again = bench(args)
    assert again.returncode == 0 and "0 to run, 1 finished before" in again.stdout, again.stdout + again.stderr
    changed = bench([*args, "--set", "magnitude.warmup=2", "--dry-run"])
    assert "1 to run, 0 finished before" in changed.stdout, changed.stdout + changed.stderr
