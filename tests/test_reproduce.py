"""`bench reproduce`: a seeded sample of stored records rerun and judged figure by figure."""

import json
import re

import pytest

from conftest import FAST

from bench import reproduce


def stored(method, seed, accuracy, nonzeros, run_time_s=10.0, size_bytes=500):
    config = {"suite": "mlp", "method": method, "params": {"sparsity": 0.9}, "seed": seed,
              "budget": {"epochs": 20}, "data_source": "torchvision:MNIST"}
    return {"config": config, "config_hash": f"{method}-{seed}", "status": "ok", "run_time_s": run_time_s,
            "env": {"device": "cpu"}, "metrics": {"accuracy": accuracy, "params": 1000, "nonzeros": nonzeros,
                                                  "size_bytes": size_bytes, "train_time_s": 9.0}}


def test_the_sample_is_seeded_and_draws_cheap_records_of_one_seed_in_rows_with_a_spread():
    recs = [stored(m, s, 0.97, 100) for m in ("magnitude", "random") for s in range(3)]
    recs += [stored("slow", s, 0.97, 100, run_time_s=600) for s in range(3)]
    recs += [stored("alone", 0, 0.97, 100)]  # one seed: no noise to judge it against
    first = reproduce.sample(recs, 2, seed=7)
    assert first == reproduce.sample(recs, 2, seed=7)
    assert {r["config"]["method"] for r in first} == {"magnitude", "random"}
    assert len({r["config"]["seed"] for r in first}) == 1  # one dense model to train
    drawn = [reproduce.sample(recs, 1, seed=s)[0]["config"]["seed"] for s in range(20)]
    assert set(drawn) == {0, 1, 2}
    assert len(reproduce.sample(recs, 3, seed=7, max_seconds=1000)) == 3
    try:
        reproduce.sample(recs, 3, seed=7)
    except reproduce.ReproduceError as e:
        assert "no training seed has 3 finished records" in str(e) and "(the most a seed has: 2)" in str(e)
        assert str(e).endswith("or allow longer runs (--max-seconds 600 draws 3)")  # slow's 600 s runs
    else:
        raise AssertionError("a sample larger than the pool was drawn")



def test_records_of_one_seed_each_are_refused_with_the_seeds_to_run_not_with_fewer_or_longer():
    """A quick run's records (--seeds 0) were refused with "ask for fewer (--sample) or allow
    longer runs (--max-seconds)", which neither helps: no row had the spread a rerun is judged by."""
    recs = [stored(m, 0, 0.97, 100) for m in ("magnitude", "taylor")]
    with pytest.raises(reproduce.ReproduceError) as refused:
        reproduce.sample(recs, 1, seed=0)
    assert str(refused.value) == ("every row of these records has one seed (a quick run's --seeds 0, say): a rerun is "
                                  "judged against its row's spread over seeds; run two or more seeds (--seeds 0,1) first")


def test_records_none_of_which_finished_are_refused_as_such_not_as_rows_of_one_seed():
    """`bench reproduce --methods random`, where random's two seeds both failed, was told "every
    row of these records has one seed ... run two or more seeds": true of no row at all."""
    recs = [{**stored("random", s, 0.97, 100), "status": status} for s, status in enumerate(("failed", "failed", "skipped"))]
    with pytest.raises(reproduce.ReproduceError) as refused:
        reproduce.sample(recs, 1, seed=0)
    assert str(refused.value) == ("none of these 3 records finished (2 failed, 1 skipped): only a finished run has "
                                  "figures to judge a rerun by")


def test_the_rerun_says_what_its_records_took_with_their_seeds_dense_training():
    recs = [stored("magnitude", s, 0.97, 100, run_time_s=20.0) for s in range(2)]
    recs += [stored("dense", s, 0.98, 1000, run_time_s=5.0) for s in range(2)]  # trained for 9 s (train_time_s)
    chosen = [recs[0], stored("random", 0, 0.9, 100, run_time_s=30.0)]
    assert reproduce.stored_seconds(chosen, recs) == 20 + 30 + 9  # seed 0's dense model, once
    assert reproduce.stored_seconds(chosen, recs[:2]) is None  # no dense record: its time is unknown
    named = {**recs[0], "dense": {"sha256": "0" * 64, "train_time_s": 7.0}}  # the run's record names it
    assert reproduce.stored_seconds([named], recs[:2]) == 20 + 7
    assert reproduce.stored_seconds([{**recs[0], "run_time_s": None}], recs) is None


def test_the_rerun_counts_the_training_of_each_dense_model_its_records_start_from():
    """A sample of one seed can hold rows of two budgets (a custom row beside the standard ones),
    and the scratch folder trains a dense model for each: the first record's alone was counted.
    Budgets that differ in the fine-tuning alone share one dense model, counted once."""
    def at(method, epochs, finetune_epochs=10, run_time_s=20.0, train_time_s=9.0):
        r = stored(method, 0, 0.97, 100, run_time_s=run_time_s)
        r["config"]["budget"] = {"epochs": epochs, "finetune_epochs": finetune_epochs}
        r["metrics"]["train_time_s"] = train_time_s
        return r

    recs = [at("dense", 20, run_time_s=5.0, train_time_s=100.0), at("dense", 2, run_time_s=5.0, train_time_s=10.0)]
    chosen = [at("magnitude", 20), at("magnitude", 2), at("random", 2, finetune_epochs=1)]
    assert reproduce.stored_seconds(chosen, recs) == 3 * 20 + 100 + 10
    assert reproduce.stored_seconds(chosen[1:], recs) == 2 * 20 + 10


def test_exact_figures_must_match_and_accuracy_must_lie_within_the_rows_noise():
    row = [stored("magnitude", s, a, 100, size_bytes=500 + s) for s, a in ((0, 0.970), (1, 0.972), (2, 0.974))]
    verdict = {c.figure: c for c in reproduce.judge(row[0], stored("magnitude", 0, 0.971, 100, size_bytes=501), row)}
    assert all(c.ok for c in verdict.values())
    assert verdict["nonzeros"].verdict == "exact"
    assert "seeds differ" in verdict["size_bytes"].verdict  # a count that depends on the weights
    # noise: 3 seed stds (0.2 pts) + 0.2 pts of machine margin = 0.8 pts
    assert "±0.80" in verdict["accuracy"].verdict
    far = {c.figure: c for c in reproduce.judge(row[0], stored("magnitude", 0, 0.979, 101, size_bytes=530), row)}
    assert not far["accuracy"].ok and "OUTSIDE" in far["accuracy"].verdict
    assert not far["nonzeros"].ok and "DIFFERS" in far["nonzeros"].verdict
    assert not far["size_bytes"].ok
    older = [*row[1:], {**row[0], "metrics": {k: v for k, v in row[0]["metrics"].items() if k != "size_bytes"}}]
    mixed = {c.figure: c for c in reproduce.judge(row[1], stored("magnitude", 1, 0.972, 100, size_bytes=501), older)}
    assert mixed["size_bytes"].ok  # a seed recorded before the figure existed leaves the spread to the others
    failed = {**row[0], "status": "failed", "error": "RuntimeError: boom\ntrace"}
    [check] = reproduce.judge(row[0], failed, row)
    assert not check.ok and check.verdict == "failed: RuntimeError: boom"


def test_reproduce_reruns_stored_records_and_flags_a_planted_difference(tmp_path, data_dir, bench):
    results = tmp_path / "results"
    made = bench(["run", "--suite", FAST, "--methods", "magnitude,random", "--set", "magnitude.sparsity=0.9",
                  "--set", "random.sparsity=0.9", "--seeds", "0,1", "--epochs", "1", "--finetune-epochs", "1", "--limit-train", "500",
                  "--limit-test", "200", "--data-dir", data_dir, "--results-dir", results])
    assert made.returncode == 0, made.stderr
    args = ["reproduce", "--suite", FAST, "--sample", "1", "--max-seconds", "600", "--methods", "mag*", "--data-dir",
            data_dir, "--results-dir", results, "--into", tmp_path / "scratch"]  # runs take longer on a busy machine
    typo = bench([*args[:8], "magnitud", *args[9:]])
    assert typo.returncode == 2 and "no record's method matches 'magnitud'; did you mean magnitude?" in typo.stderr
    again = bench(args)
    assert again.returncode == 0, again.stderr
    assert "1 of 1 records reproduced" in again.stdout
    assert re.search(r"into \S+: they took about \d+ s to make on .+, their dense model's training included", again.stdout)
    # the run line: accuracy, size and compression; latency is the leaderboard's, beside its spread
    assert re.search(r"-> accuracy [\d.]+%  sparsity [\d.]+%  size [\d.]+ KiB \([\d.]+x smaller\)", again.stdout)
    assert "nonzeros" in again.stdout and "exact" in again.stdout and "within noise" in again.stdout
    # the draw's seed named as the draw's (the dense model's training seed is another), the noise defined
    assert "(drawn with --seed 0)" in again.stdout and not re.search(r"\b1 threads", again.stdout)
    assert "noise: 3 standard deviations of the figure over the stored row's seeds" in again.stdout
    assert [p.name.split("-")[0] for p in (tmp_path / "scratch" / "mlp-fast" / "runs").glob("*.json")] == ["magnitude"]
    assert "magnitude" in again.stdout.split("the stored rows")[1]  # the leaderboard of the drawn rows
    assert f"({results}/mlp-fast/leaderboard-custom.md has them all)" in again.stdout  # a quick run's table

    paths = sorted((results / "mlp-fast" / "runs").glob("*.json"))
    for path in paths:  # both seeds agree on the wrong count: a count that must be exact
        record = json.loads(path.read_text())
        record["metrics"]["nonzeros"] += 1
        record["env"]["device_name"] += "\x1b]0;retitled\x07"  # a terminal escape, printed as text
        path.write_text(json.dumps(record))
    planted = bench(args)  # into the same scratch folder, which holds the last rerun: it reruns again
    assert planted.returncode == 1
    assert "DIFFERS (must be exact)" in planted.stdout and "0 of 1 records reproduced" in planted.stdout
    assert "\x1b" not in planted.stdout and "?]0;retitled?, " in planted.stdout
    assert "1 to run, 0 finished before" in planted.stdout
    # into the results folder, the rerun would replace (or, found finished, certify) the planted record
    into_results = bench(args[:-1] + [results / "scratch"])
    assert into_results.returncode == 2 and "inside the results folder" in into_results.stderr

    for path in paths:
        record = json.loads(path.read_text())
        record["config"]["params"]["sparsity"] = 0.8  # no longer what its hash says
        path.write_text(json.dumps(record))
    refused = bench(["reproduce", "--suite", FAST, "--sample", "1", "--data-dir", data_dir,
                     "--results-dir", results])
    assert refused.returncode == 2
    assert "cannot be rerun as recorded" in refused.stderr


def test_a_record_claiming_a_huge_budget_reruns_under_a_time_limit_and_one_below_the_floors_is_malformed(
        tmp_path, data_dir, bench):
    """A record is a file anyone can edit: one claiming 10^15 epochs (renamed to its new hash, so
    that it passes as the run it names) set a time limit that grew with its epochs, and the rerun
    trained for ever. The limit now follows the record's own run time or --run-timeout. A budget
    below what `bench run` accepts (limit_train 0) makes the record malformed: left out, named."""
    import time

    from bench import layout
    from bench.plan import run_key

    results = tmp_path / "results"
    made = bench(["run", "--suite", FAST, "--methods", "magnitude", "--set", "magnitude.sparsity=0.9",
                  "--seeds", "0,1", "--epochs", "1", "--finetune-epochs", "1", "--limit-train", "500",
                  "--limit-test", "200", "--data-dir", data_dir, "--results-dir", results])
    assert made.returncode == 0, made.stderr
    for path in sorted((results / "mlp-fast" / "runs").glob("*.json")):
        record = json.loads(path.read_text())
        record["config"]["budget"]["epochs"] = 10**15
        record["config_hash"] = run_key(record["config"])
        path.unlink()
        c = record["config"]
        path = layout.record_path(results, "mlp-fast", c["method"], c["seed"], record["config_hash"])
        path.write_text(json.dumps(record))
    start = time.monotonic()
    rerun = bench(["reproduce", "--suite", FAST, "--sample", "1", "--data-dir", data_dir, "--results-dir", results,
                   "--run-timeout", "0.1", "--executor", "local"])  # the inline executor has no time limits
    assert time.monotonic() - start < 120, rerun.stdout
    assert rerun.returncode == 1 and "0 of 1 records reproduced" in rerun.stdout, rerun.stdout + rerun.stderr
    assert "TimedOut" in rerun.stdout, rerun.stdout
    assert "; each stops after about 6 s (--run-timeout)" in rerun.stdout, rerun.stdout  # said before it trains

    (path, _) = sorted((results / "mlp-fast" / "runs").glob("*.json"))
    record = json.loads(path.read_text())
    record["config"]["budget"]["limit_train"] = 0
    path.write_text(json.dumps(record))
    shown = bench(["leaderboard", "--results-dir", results])
    assert f"left out of the leaderboard: {path}: malformed record: config.budget.limit_train is 0, below 1" \
        in shown.stderr, shown.stderr


def test_reproduce_names_each_stored_file_it_cannot_use(tmp_path, bench):
    """A record left out of the sample unnoticed would be a reproduction that checked less than
    the user thinks: each file is named with why, as the leaderboard names it."""
    junk = tmp_path / "mlp-fast" / "runs" / "magnitude-0123456789ab-s0.json"
    junk.parent.mkdir(parents=True)
    junk.write_text("{")
    ran = bench(["reproduce", "--suite", FAST, "--results-dir", tmp_path])
    assert ran.returncode == 2, ran.stdout
    assert f"bench: warning: left out of the reproduction: {junk}: " in ran.stderr, ran.stderr
    assert f"no usable run records for suite 'mlp-fast' in {junk.parent}" in ran.stderr


def test_reproduce_outside_the_checkout_says_where_to_run_it(tmp_path, bench, monkeypatch):
    """`bench reproduce --suite mlp` in another folder than the checkout said "no records of suite
    'mlp' under results/mlp/runs", not that there is no results folder there, nor what to do, as
    `bench leaderboard` says; a suite the folder has no records of is told from those it has."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BENCH_RESULTS_DIR", raising=False)
    ran = bench(["reproduce", "--suite", "mlp"])
    assert ran.returncode == 2
    assert (f"no results folder {tmp_path.resolve()}/results: run bench where the results folder is (the checkout), "
            "or pass --results-dir") in ran.stderr, ran.stderr
    (tmp_path / "results" / "mnist" / "runs").mkdir(parents=True)
    (tmp_path / "results" / "mnist" / "runs" / "x.json").write_text("{}")
    other = bench(["reproduce", "--suite", "mlp"])
    assert other.returncode == 2 and "(suites with records there: mnist)" in other.stderr, other.stderr


def test_the_default_rerun_limit_covers_the_dense_training_and_is_bounded():
    """A dense row's run is its measurement (15 s) while its training took 599 s: the limit,
    which also bounds the rerun's dense training, counts both. A record claiming more than a
    day gets a day."""
    dense_row = stored("dense", 0, 0.98, 100, run_time_s=15.0)
    dense_row["metrics"]["train_time_s"] = 599.0
    assert reproduce.default_timeout(dense_row) == 10 * (15 + 599) / 60
    assert reproduce.default_timeout(stored("magnitude", 0, 0.98, 100, run_time_s=1.0)) == 15.0
    huge = stored("magnitude", 0, 0.98, 100, run_time_s=1.0)
    huge["metrics"]["train_time_s"] = 1e15
    assert reproduce.default_timeout(huge) == 24 * 60


def test_the_limit_a_named_records_rerun_trains_to_is_said_before_it_trains():
    """`--record NAME` draws no sample, so no --max-seconds filter applies (it is refused beside
    --record: a named record is any row a reader doubts, minutes long on mnist): a tampered record
    claiming 10**15 epochs trained until the limit its own times give, up to a day, with no word
    of it. The line before the reruns says the limit, whoever set it."""
    tampered = stored("magnitude", 0, 0.98, 100, run_time_s=1e9)
    assert reproduce.limit_note([stored("magnitude", 1, 0.98, 100, run_time_s=1.0), tampered], None) == (
        "; each stops after at most about 1440 minutes, ten times what its record says it took, 15 minutes at "
        "least (--run-timeout sets another limit)")
    assert reproduce.limit_note([tampered], 2.0) == "; each stops after about 2 minutes (--run-timeout)"


def test_a_record_named_is_the_one_rerun_and_names_no_record_has_are_refused():
    """A reader who doubts one row could only draw at random (on mnist, --max-seconds 30 drew
    nothing); --record names the file. Its name with or without .json, or its path, finds it; a
    typo gets the nearest name; a record of a row with one seed, or that failed, has nothing to
    be judged against."""
    found = [(f"magnitude-{s}", stored("magnitude", s, 0.97, 100)) for s in range(3)]
    found += [("alone-0", stored("alone", 0, 0.97, 100)),
              ("random-0", {**stored("random", 0, 0.97, 100), "status": "failed"})]
    picked = reproduce.named(found, ["magnitude-1.json", "results/mlp/runs/magnitude-2.json", "magnitude-1"])
    assert [r["config"]["seed"] for r in picked] == [1, 2]  # a name given twice reruns once
    for names, why in ((["magnitde-1"], "no stored record has that name; did you mean magnitude-1?"),
                       (["alone-0"], "its row has one seed"), (["random-0"], "its run failed")):
        with pytest.raises(reproduce.ReproduceError, match=re.escape(why)):
            reproduce.named(found, names)


def test_record_and_the_options_of_a_random_draw_are_refused_together(tmp_path, bench):
    refused = bench(["reproduce", "--suite", FAST, "--record", "magnitude-0", "--methods", "mag*",
                     "--results-dir", tmp_path])
    assert refused.returncode == 2 and "--record names the records to rerun; --methods shape a random draw" in refused.stderr
