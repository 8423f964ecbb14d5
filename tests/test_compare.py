"""`bench compare A B`: per shared row, the change in accuracy with Welch's 95% CI and a verdict."""

import os
import re
import subprocess
from pathlib import Path

import pytest
from conftest import FAST

from bench import compare, files, layout, records, registry

ENV = {"device_name": "Test CPU", "device": "cpu", "torch": "2.x", "threads": 1}
BUDGET = {"epochs": 20, "finetune_epochs": 10, "limit_train": None, "limit_test": None}


def record(method, sparsity, seed, accuracy, nonzeros=100):
    config = {"suite": "mlp", "suite_version": 1, "method": method, "params": {"sparsity": sparsity}, "seed": seed, "budget": BUDGET,
              "data_source": "torchvision:MNIST", "model": {"name": "lenet300", "kwargs": {}}}
    return {"schema": records.SCHEMA_VERSION, "config": config, "config_hash": records.config_hash(config),
            "status": "ok", "error": None, "standard_budget": True, "env": ENV,
            "metrics": {"accuracy": accuracy, "params": 1000, "nonzeros": nonzeros}}


def write(folder, recs):
    for r in recs:
        c = r["config"]
        files.write_json_atomic(layout.record_path(folder, "mlp", c["method"], c["seed"], r["config_hash"]), r)
    return folder


def test_welch_interval_matches_the_textbook_value():
    low, high = compare.welch_interval([1.0, 2.0, 3.0], [4.0, 5.0, 6.0])
    # difference 3, standard error sqrt(2/3), 4 degrees of freedom: t(0.975, 4) = 2.7764
    assert low == pytest.approx(3 - 2.7764 * (2 / 3) ** 0.5, abs=1e-3)
    assert high == pytest.approx(3 + 2.7764 * (2 / 3) ** 0.5, abs=1e-3)
    assert compare.welch_interval([1.0], [2.0, 3.0]) is None  # one seed: no spread


def test_welch_p_is_the_textbook_value_and_agrees_with_the_interval():
    # difference 3, standard error sqrt(2/3), 4 degrees of freedom: t = 3.674, two-sided p = 0.0213
    assert compare.welch_p([1.0, 2.0, 3.0], [4.0, 5.0, 6.0]) == pytest.approx(0.0213, abs=1e-4)
    assert compare.welch_p([1.0], [2.0, 3.0]) is None
    assert compare.welch_p([1.0, 1.0], [2.0, 2.0]) == 0.0 and compare.welch_p([1.0, 1.0], [1.1, 1.1], 0.2) == 1.0
    for a, b, margin in [([97.0, 97.2, 97.1], [96.7, 96.9, 96.8], 0.0), ([97.0, 97.2, 97.1], [96.7, 96.9, 96.8], 0.2),
                         ([97.0, 97.4, 97.1], [97.3, 97.9, 97.6], 0.0), ([97.0, 97.4, 97.1], [97.3, 97.9, 97.6], 0.2),
                         ([1.0, 2.0, 3.0], [4.0, 5.0, 6.0], 2.5)]:
        low, high = compare.welch_interval(a, b)
        assert (compare.welch_p(a, b, margin) < 0.05) == (low > margin or high < -margin), (a, b, margin)


def test_holm_adjusts_as_holm_1979():
    # sorted: 0.005 x 4, 0.01 x 3, 0.03 x 2, 0.04 x 1 -> 0.02, 0.03, 0.06, then kept non-decreasing
    assert compare.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert compare.holm([0.5, 0.9]) == [1.0, 1.0] and compare.holm([]) == []


def test_a_p_value_prints_on_the_side_of_the_level_it_falls():
    """Three decimals, or more where three would cross 0.05: a rejection at 0.04996 beside a
    printed "0.050" read as none."""
    assert [compare.p_text(p) for p in (None, 0.0004, 0.123, 0.04949, 0.0495, 0.04996, 0.05, 0.0504)] == [
        "-", "<0.001", "0.123", "0.049", "0.0495", "0.04996", "0.050", "0.050"]
    assert compare.p_text(0.0499999999) == "<0.05"


def test_welch_p_against_the_machines_margin_and_holm_with_ties_match_statsmodels():
    """welch_p's p against a margin and holm's handling of tied p-values are hand-written, so they
    are pinned to the library values (statsmodels 0.15.0, not installed here): a margin applied on the
    wrong side or ties ranked apart would move them."""
    a, b = [97.0, 97.4, 97.1], [97.5, 97.9, 97.8]
    # CompareMeans(DescrStatsW(b), DescrStatsW(a)).ttest_ind(alternative="larger", usevar="unequal",
    # value=0.2)[1] = 0.04859259259259546, doubled; and .ttest_ind(usevar="unequal")[1] without the margin
    assert compare.welch_p(a, b, 0.2) == pytest.approx(0.09718518518519093, rel=1e-9)
    assert compare.welch_p(a, b) == pytest.approx(0.028998039442817924, rel=1e-9)
    assert compare.welch_p(b, a, 0.2) == pytest.approx(0.09718518518519093, rel=1e-9)  # a loss: the other side
    # CompareMeans(...).tconfint_diff(alpha=0.05, usevar="unequal")
    assert compare.welch_interval(a, b) == pytest.approx((0.09476174100589874, 1.038571592327427), rel=1e-9)
    # statsmodels.stats.multitest.multipletests(p, method="holm")[1]
    assert compare.holm([0.01, 0.02, 0.02, 0.04, 0.3]) == pytest.approx([0.05, 0.08, 0.08, 0.08, 0.3])
    assert compare.holm([0.004, 0.03, 0.03, 0.0125, 0.6, 0.012]) == pytest.approx([0.024, 0.09, 0.09, 0.06, 0.6, 0.06])


def test_a_row_significant_alone_is_unclear_among_many_and_fails_no_regression_check(tmp_path, bench):
    """magnitude 0.3 pts down with seeds 0.1 apart (p 0.021) is worse compared alone; beside two
    unchanged rows, Holm's correction (p x 3) leaves it unclear, which --only-changed still shows and
    --fail-on regression does not fail on, while a 3-point drop stays worse in any company."""
    accs = (0.970, 0.972, 0.971)
    a = [record(m, 0.9, s, acc) for m in ("magnitude", "random", "snip", "gmp") for s, acc in enumerate(accs)]
    slight = [record("magnitude", 0.9, s, acc - 0.003) for s, acc in enumerate(accs)]
    same = [record(m, 0.9, s, acc) for m in ("random", "snip") for s, acc in enumerate(accs)]
    alone = compare.compare(a, slight)
    assert [c.verdict for c in alone] == ["worse"] and alone[0].p == alone[0].p_holm == pytest.approx(0.021, abs=1e-3)
    among = {c.method: c for c in compare.compare(a, slight + same)}
    assert among["magnitude"].verdict == compare.CHANCE and among["magnitude"].p == pytest.approx(alone[0].p)
    assert among["magnitude"].p_holm == pytest.approx(3 * alone[0].p)
    assert among["magnitude"].ci[1] < 0  # the row's own interval, unadjusted

    b = write(tmp_path / "b", slight + same)
    ran = bench(["compare", write(tmp_path / "a", a), b, "--fail-on", "regression", "--only-changed"])
    assert ran.returncode == 0, ran.stderr
    assert "0 rows significantly worse in B, 0 better (Welch's t over seeds, 95%, Holm's correction over the 3 rows judged" in ran.stdout
    assert "1 of 3 rows unclear (after Holm): significant on its own, not among the 3 judged" in ran.stdout
    shown = [line for line in ran.stdout.splitlines() if line.startswith("magnitude")]
    assert len(shown) == 1 and "0.021 / 0.064" in shown[0] and "unclear (after Holm)" in shown[0]
    assert "random " not in ran.stdout  # unchanged rows: counted, not shown

    write(tmp_path / "b", [record("gmp", 0.9, s, acc - 0.03) for s, acc in enumerate(accs)])
    failed = bench(["compare", tmp_path / "a", b, "--fail-on", "regression"])
    assert failed.returncode == 1 and "1 row significantly worse in B" in failed.stdout, failed.stdout
    assert "over the 4 rows judged" in failed.stdout


def test_the_lines_under_the_table_claim_no_more_than_holm_gives_and_agree_in_number(tmp_path, bench):
    """Holm bounds the chance of a wrong better or worse, not of a wrong "not significant" (a real change
    the seeds cannot show reads so); and two rows unclear after Holm are significant on their own."""
    accs = (0.970, 0.972, 0.971)
    a = [record(m, 0.9, s, acc) for m in ("magnitude", "random", "snip", "gmp") for s, acc in enumerate(accs)]
    b = [record(m, 0.9, s, acc - 0.003) for m in ("magnitude", "random") for s, acc in enumerate(accs)]
    b += [record(m, 0.9, s, acc) for m in ("snip", "gmp") for s, acc in enumerate(accs)]
    changes = compare.compare(a, b)
    assert [c.verdict for c in changes].count(compare.CHANCE) == 2
    note = compare.chance_note(changes, "setting")
    assert note.startswith("2 of 4 settings unclear (after Holm): significant on their own, not among the 4 judged")
    assert "one unchanged setting in twenty" in note
    assert "significant on its own, not" in compare.chance_note(changes[:1] + changes[2:], "row")
    ran = bench(["compare", write(tmp_path / "a", a), write(tmp_path / "b", b)])
    assert "the chance of any wrong better or worse among them is at most 5%" in ran.stdout, ran.stdout
    assert "any wrong verdict" not in ran.stdout


def test_a_planted_regression_is_worse_noise_is_no_change_and_moved_counts_are_listed():
    a = [record("magnitude", 0.9, s, acc) for s, acc in enumerate((0.970, 0.972, 0.971))]
    a += [record("random", 0.9, s, acc) for s, acc in enumerate((0.950, 0.960, 0.955))]
    a += [record("snip", 0.9, 0, 0.96)]
    b = [record("magnitude", 0.9, s, acc, nonzeros=120) for s, acc in enumerate((0.940, 0.942, 0.941))]
    b += [record("random", 0.9, s, acc) for s, acc in enumerate((0.952, 0.961, 0.954))]
    b += [record("magnitude", 0.5, 0, 0.98)]
    changes = {c.method: c for c in compare.compare(a, b)}
    assert set(changes) == {"magnitude", "random"}
    assert changes["magnitude"].verdict == "worse" and changes["magnitude"].change == pytest.approx(-3.0)
    assert changes["magnitude"].ci[1] < 0
    assert changes["magnitude"].exact_changes == {"nonzeros": (100, 120)}
    assert changes["random"].verdict == "not significant" and changes["random"].exact_changes == {}
    assert compare.unshared(a, b) == (1, 1)
    improved = {c.method: c.verdict for c in compare.compare(b, a)}
    assert improved["magnitude"] == "better"


def test_rows_of_one_suite_with_and_without_its_dense_layers_rule_pair_apart_and_are_headed_apart():
    """A suite's `dense_layers` rule makes other rows (the records' configs differ): each pairs
    with its own, and its heading names the kept layers, as the leaderboard's tables do."""
    def kept(r):
        config = {**r["config"], "dense_layers": ["classifier"]}
        return {**r, "config": config, "config_hash": records.config_hash(config)}

    plain = [record("magnitude", 0.9, s, acc) for s, acc in enumerate((0.970, 0.972, 0.971))]
    rule = [kept(record("magnitude", 0.9, s, acc)) for s, acc in enumerate((0.980, 0.982, 0.981))]
    changes = compare.compare(plain + rule, plain + rule)
    assert sorted(c.budget for c in changes) == ["20+10 epochs", "20+10 epochs, dense classifier"]
    assert all(c.change == 0 for c in changes)


def test_bench_compare_fails_on_a_regression_and_passes_an_unchanged_rerun(tmp_path, bench):
    base = [record("magnitude", 0.9, s, acc) for s, acc in enumerate((0.970, 0.972, 0.971))]
    a = write(tmp_path / "a", base)
    same = write(tmp_path / "same", base)
    worse = write(tmp_path / "worse", [record("magnitude", 0.9, s, acc - 0.02) for s, acc in
                                       enumerate((0.970, 0.972, 0.971))])
    ok = bench(["compare", a, same, "--fail-on", "regression"])
    assert ok.returncode == 0, ok.stderr
    assert "not significant" in ok.stdout and "0 rows significantly worse" in ok.stdout
    assert "Holm's correction over the 1 row judged" in ok.stdout
    quiet = bench(["compare", a, same, "--only-changed"])  # nothing moved: a count, no header over no rows
    assert "1 row without a significant change" in quiet.stdout and "acc A (%)" not in quiet.stdout
    bad = bench(["compare", a, worse, "--fail-on", "regression"])
    assert bad.returncode == 1
    assert "worse" in bad.stdout and "-2.00" in bad.stdout
    assert bench(["compare", a, worse]).returncode == 0  # reported, not failed, without --fail-on
    refused = bench(["compare", a, tmp_path / "nowhere"])
    assert refused.returncode == 2 and "neither a results folder nor a git commit" in refused.stderr


def test_only_changed_shows_the_rows_that_moved_and_counts_the_rest(tmp_path, bench):
    """A worse row, a row whose counts moved at the same accuracy, and an unchanged one: with
    --only-changed the first two are shown and the third is counted."""
    accs = (0.970, 0.972, 0.971)
    a = write(tmp_path / "a", [record(m, 0.9, s, acc) for m in ("magnitude", "random", "snip") for s, acc in enumerate(accs)])
    b = write(tmp_path / "b", [record("magnitude", 0.9, s, acc - 0.02) for s, acc in enumerate(accs)]
              + [record("random", 0.9, s, acc, nonzeros=120) for s, acc in enumerate(accs)]
              + [record("snip", 0.9, s, acc) for s, acc in enumerate(accs)])
    full, only = bench(["compare", a, b]), bench(["compare", a, b, "--only-changed"])
    assert full.returncode == only.returncode == 0, only.stderr
    rows = [line.split()[0] for line in only.stdout.splitlines() if line.startswith(("magnitude", "random", "snip"))]
    assert rows == ["magnitude", "random"] and "nonzeros 100 -> 120" in only.stdout
    assert "1 row without a significant change in accuracy or a moved exact figure not shown" in only.stdout
    assert "snip " in full.stdout and "not shown" not in full.stdout
    assert "1 row significantly worse in B" in only.stdout


def test_a_moved_exact_figure_prints_two_different_numbers(tmp_path, bench):
    """A Huffman-coded row's compression is a mean over seeds that moves in its seventh digit
    between two sets of records of the same sizes (1caf9de^ against results on mlp): the column
    "exact figures that moved" printed `compression 116.92 -> 116.92`, a move that reads as none.
    Each pair is printed with as many digits as tell the two means apart."""
    accs = (0.970, 0.972, 0.971)

    def at(r, compression):
        return {**r, "metrics": {**r["metrics"], "compression": compression}}

    a = write(tmp_path / "a", [at(record("deep-compression", 0.98, s, acc), 116.92) for s, acc in enumerate(accs)])
    b = write(tmp_path / "b", [at(record("deep-compression", 0.98, s, acc), c)
                               for (s, acc), c in zip(enumerate(accs), (116.92, 116.92, 116.9200009))])
    out = bench(["compare", a, b]).stdout
    moved = re.search(r"compression (\S+) -> (\S+)", out)
    assert moved and moved.group(1) != moved.group(2), out
    assert moved.group(1) == "116.92" and float(moved.group(2)) > 116.92
    same_digits = write(tmp_path / "c", [record("deep-compression", 0.98, s, acc, nonzeros=120)
                                         for s, acc in enumerate(accs)])
    assert "nonzeros 100 -> 120" in bench(["compare", write(tmp_path / "d", [
        record("deep-compression", 0.98, s, acc) for s, acc in enumerate(accs)]), same_digits]).stdout


def test_results_at_other_budgets_pair_up_with_none_and_say_so(tmp_path, bench):
    """A quick run's records against the committed ones: no row pairs up, and the empty table
    says why (the budgets), rather than reading as results that agree."""
    def quick(r):
        config = {**r["config"], "budget": {**BUDGET, "epochs": 2, "finetune_epochs": 1, "limit_train": 4000}}
        return {**r, "config": config, "config_hash": records.config_hash(config), "standard_budget": False}

    base = [record("magnitude", 0.9, s, 0.97) for s in range(3)]
    a, b = write(tmp_path / "a", base), write(tmp_path / "b", [quick(r) for r in base])
    ran = bench(["compare", a, b])
    assert ran.returncode == 0, ran.stderr
    assert "# mlp: 0 rows in both; 1 only in A, 1 only in B" in ran.stdout
    assert ("no row is in both: rows pair up at one budget, data source and device; A's budgets: 20+10 epochs, "
            "B's: 2+1 epochs, limit_train=4000\n") in ran.stdout, ran.stdout
    assert "no row is in both" not in bench(["compare", a, a]).stdout


def test_results_whose_budgets_and_devices_pair_up_only_crosswise_say_so(tmp_path, bench):
    """A holds quick runs on the CPU and full ones on a GPU, B the other way round: each budget
    and each device is on both sides, yet no row pairs up, and the line names the combinations."""
    def moved(r, quick, device):
        budget = {**BUDGET, "epochs": 2, "finetune_epochs": 1} if quick else BUDGET
        config = {**r["config"], "budget": budget}
        return {**r, "config": config, "config_hash": records.config_hash(config),
                "standard_budget": not quick, "env": {**ENV, "device": device}}

    a_recs = [moved(record("magnitude", 0.9, 0, 0.97), True, "cpu"), moved(record("snip", 0.9, 0, 0.97), False, "cuda:0")]
    b_recs = [moved(record("magnitude", 0.9, 0, 0.97), False, "cpu"), moved(record("snip", 0.9, 0, 0.97), True, "cuda:0")]
    ran = bench(["compare", write(tmp_path / "a", a_recs), write(tmp_path / "b", b_recs)])
    assert ran.returncode == 0, ran.stderr
    assert ("no row is in both: rows pair up at one budget, data source and device; A's budget / data source / "
            "device: 2+1 epochs / torchvision:MNIST / cpu; 20+10 epochs / torchvision:MNIST / cuda, "
            "B's: 2+1 epochs / torchvision:MNIST / cuda; 20+10 epochs / torchvision:MNIST / cpu\n") in ran.stdout, ran.stdout


def test_bench_compare_reads_a_commits_results(bench):
    """HEAD's committed records against themselves, read through git: every shared row unchanged."""
    ran = bench(["compare", "HEAD", "HEAD", "--suite", "mlp", "--fail-on", "regression"])
    assert ran.returncode == 0, ran.stderr
    tables = ran.stdout.split("significantly worse in B")[0]  # (the line after them names "better or worse")
    assert " 0 only in A, 0 only in B" in tables and "better" not in tables


def git(repo, *args):
    return subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *args],
                          capture_output=True, text=True, check=True).stdout.strip()


def committed(repo, recs):
    """A new git repository at `repo` whose commit, on branch main, holds `recs` in results/."""
    git(repo.parent, "init", "-q", "-b", "main", repo.name)
    write(repo / "results", recs)
    git(repo, "add", "results")
    git(repo, "commit", "-qm", "records")
    return repo


BASE = [record("magnitude", 0.9, s, acc) for s, acc in enumerate((0.970, 0.972, 0.971))]


def test_bench_compare_reads_commits_of_the_repository_it_is_run_in(tmp_path, monkeypatch, bench):
    """In another repository, a commit is looked up there, not in bench's own checkout, and the
    output names the repository; outside any repository, bench's own checkout is read."""
    repo = committed(tmp_path / "repo", BASE)
    git(repo, "checkout", "-qb", "only-here")
    write(repo / "results", [record("magnitude", 0.9, s, acc - 0.02) for s, acc in enumerate((0.970, 0.972, 0.971))])
    git(repo, "commit", "-qam", "worse")
    monkeypatch.chdir(repo)
    ran = bench(["compare", "main", "only-here", "--fail-on", "regression"])
    assert ran.returncode == 1, ran.stderr
    assert f"B = only-here: commit {git(repo, 'rev-parse', 'HEAD')[:12]} of {repo}" in ran.stdout
    assert "1 row significantly worse in B" in ran.stdout
    refused = bench(["compare", "main", "nowhere"])
    assert refused.returncode == 2 and f"'nowhere' is neither a results folder nor a git commit of {repo}" in refused.stderr

    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))  # no repository above it either
    own = git(Path(__file__).parent, "rev-parse", "--show-toplevel")
    ran = bench(["compare", "HEAD", "HEAD", "--suite", "mlp"])
    assert ran.returncode == 0, ran.stderr
    assert f"A = HEAD: commit {git(own, 'rev-parse', 'HEAD')[:12]} of {own}" in ran.stdout


def test_without_git_a_side_that_is_no_results_folder_is_refused_as_bad_input(tmp_path, monkeypatch, bench):
    """On a machine without git, a side that is no results folder is refused as input (exit 2),
    saying what it is not: not a fault (exit 1) naming the missing program."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path / "no-programs-here"))
    refused = bench(["compare", "nowhere", "HEAD"])
    assert refused.returncode == 2, refused.stderr
    assert "'nowhere' is neither a results folder nor a git commit" in refused.stderr


def test_a_commit_gives_only_its_record_files_and_leaves_out_an_oversized_one(tmp_path, monkeypatch, bench):
    """A commit's records are read without unpacking anything else: a record file over the
    records' size limit (a huge file of zeros packs small in git) is left out with a warning
    naming it, as in a results folder, and is never written out; nor are the other files, the
    other suites' records (with --suite) or a symbolic link."""
    monkeypatch.setattr(records, "MAX_RECORD_BYTES", 2**16)
    repo = committed(tmp_path / "repo", BASE)
    results = repo / "results"
    (results / "mlp/runs/zzz.json").write_bytes(bytes(2**16 + 1))
    (results / "mlp/leaderboard.md").write_bytes(bytes(2**16))
    (results / "mlp/runs/deeper").mkdir()
    (results / "mlp/runs/deeper/x.json").write_text("{}")
    os.symlink("../leaderboard.md", results / "mlp/runs/link.json")
    (results / "cifar/runs").mkdir(parents=True)
    (results / "cifar/runs/c.json").write_text("{}")
    git(repo, "add", "results")
    git(repo, "commit", "-qm", "more")
    monkeypatch.chdir(repo)

    ran = bench(["compare", "HEAD~1", "HEAD", "--suite", "mlp", "--fail-on", "regression"])
    assert ran.returncode == 0, ran.stderr
    assert "results/mlp/runs/zzz.json left out: larger than 65,536 bytes" in ran.stderr
    assert "results/mlp/runs/link.json left out: not a regular file" in ran.stderr
    assert "# mlp: 1 row in both; 0 only in A, 0 only in B" in ran.stdout

    scratch = compare.results_of("HEAD", tmp_path / "scratch", "mlp").folder
    written = sorted(str(p.relative_to(scratch)) for p in scratch.rglob("*") if p.is_file())
    assert written == sorted(str(p.relative_to(results)) for p in layout.runs_dir(results, "mlp").glob("magnitude-*.json"))
    assert [p.read_bytes() for p in sorted(layout.runs_dir(scratch, "mlp").glob("*"))] == [
        p.read_bytes() for p in sorted(layout.runs_dir(results, "mlp").glob("magnitude-*.json"))]


def test_a_commit_with_more_records_than_compare_writes_out_is_refused(tmp_path, monkeypatch, bench):
    """Records that each pass the size limit may still be too many to write out (one blob under
    thousands of names packs small): past MAX_COMMIT_RECORDS_BYTES, compare refuses, naming the
    commit, before it writes any."""
    monkeypatch.setattr(compare, "MAX_COMMIT_RECORDS_BYTES", 2 * 4096)
    committed(tmp_path / "repo", BASE)
    monkeypatch.chdir(tmp_path / "repo")
    ran = bench(["compare", "HEAD", "HEAD"])
    assert ran.returncode == 2
    assert f"HEAD: commit {git(tmp_path / 'repo', 'rev-parse', 'HEAD')[:12]} of {tmp_path / 'repo'}: its records hold " \
           "more than 8,192 bytes, more than bench compare writes out from a commit" in ran.stderr
    with pytest.raises(registry.ParameterError):
        compare.results_of("HEAD", tmp_path / "scratch", None)
    assert not (tmp_path / "scratch").exists()


def test_bench_compare_names_each_record_it_leaves_out_and_why(tmp_path, monkeypatch, bench):
    """A record file that compare cannot use (truncated, not a record) is left out with a warning
    naming it and why, as `bench leaderboard` warns, on either side and with --methods; a
    commit's is named by its path in the commit, not by the scratch copy compare reads."""
    a = write(tmp_path / "a", BASE)
    b = write(tmp_path / "b", BASE + [record("random", 0.9, s, acc) for s, acc in enumerate((0.950, 0.952, 0.951))])
    runs = layout.runs_dir(b, "mlp")
    (runs / "truncated.json").write_text('{"schema": 1, ')
    (runs / "notes.json").write_text("{}")
    truncated = f"bench: warning: left out of the comparison: {runs / 'truncated.json'}: unreadable (JSONDecodeError"
    notes = f"bench: warning: left out of the comparison: {runs / 'notes.json'}: not a run record"
    ran = bench(["compare", a, b, "--fail-on", "regression"])
    assert ran.returncode == 0, ran.stderr
    assert truncated in ran.stderr and notes in ran.stderr
    assert "# mlp: 1 row in both; 0 only in A, 1 only in B" in ran.stdout
    methods = bench(["compare", b, "--methods", "magnitude,random"])
    assert methods.returncode == 0, methods.stderr
    assert truncated in methods.stderr and notes in methods.stderr

    repo = committed(tmp_path / "repo", BASE)
    (repo / "results/mlp/runs/truncated.json").write_text('{"schema": 1, ')
    git(repo, "add", "results")
    git(repo, "commit", "-qm", "a truncated record")
    monkeypatch.chdir(repo)
    ran = bench(["compare", "HEAD~1", "HEAD", "--suite", "mlp"])
    assert ran.returncode == 0, ran.stderr
    assert (f"bench: warning: left out of the comparison: HEAD: commit {git(repo, 'rev-parse', 'HEAD')[:12]} of {repo}: "
            "results/mlp/runs/truncated.json: unreadable (JSONDecodeError") in ran.stderr
    assert "bench-compare-" not in ran.stderr  # the scratch copy, removed by now, is not what the user has


def with_params(r, **params):
    """The record `r` with other method parameters (its hash follows)."""
    config = {**r["config"], "params": {**r["config"]["params"], **params}}
    return {**r, "config": config, "config_hash": records.config_hash(config)}


def test_two_methods_are_paired_where_their_shared_parameters_agree():
    magnitude = [record("magnitude", sp, s, acc) for sp in (0.5, 0.9) for s, acc in enumerate((0.970, 0.972, 0.971))]
    wanda = [with_params(record("wanda", 0.9, s, acc, nonzeros=5), calibration_samples=128)
             for s, acc in enumerate((0.940, 0.942, 0.941))]
    other_budget = [{**r, "config": {**r["config"], "budget": {**BUDGET, "epochs": 1}}} for r in wanda]
    other_scope = [with_params(record("wanda", 0.5, s, 0.99), scope="layer") for s in range(3)]
    magnitude = [with_params(r, scope="global") for r in magnitude]
    (change,) = compare.across_methods(magnitude + wanda + other_budget + other_scope, "magnitude", "wanda")
    assert (change.method, change.setting, change.others) == ("wanda vs magnitude", "sparsity=0.9",
                                                              ("scope=global", "calibration_samples=128"))
    assert change.verdict == "worse" and change.change == pytest.approx(-3.0) and change.seeds == (3, 3)
    assert change.exact_changes == {}  # counts differ between methods by design: not listed
    (back,) = compare.across_methods(magnitude + wanda, "wanda", "magnitude")
    assert back.verdict == "better" and back.change == pytest.approx(3.0)
    assert compare.across_methods(magnitude, "magnitude", "wanda") == []


def test_a_chain_is_paired_by_its_links_parameters_and_rows_sharing_none_are_not():
    """A chain's `magnitude.sparsity` is the `sparsity` magnitude has: paired at equal sparsity
    only, never every row with every row."""
    def chain(sparsity, seed, accuracy):
        r = record("magnitude+ptq-int8", sparsity, seed, accuracy)
        return with_params({**r, "config": {**r["config"], "params": {}}},
                           magnitude={"sparsity": sparsity}, **{"ptq-int8": {"calibration_batches": 4}})

    magnitude = [record("magnitude", sp, s, 0.97 - sp / 10) for sp in (0.5, 0.9) for s in range(3)]
    chains = [chain(sp, s, 0.96 - sp / 10) for sp in (0.5, 0.9) for s in range(3)]
    changes = compare.across_methods(magnitude + chains, "magnitude", "magnitude+ptq-int8")
    assert [(c.setting, c.others, round(c.change, 6)) for c in changes] == [
        ("sparsity=0.5", ("-", "ptq-int8.calibration_batches=4"), -1.0),
        ("sparsity=0.9", ("-", "ptq-int8.calibration_batches=4"), -1.0)]
    bits = [with_params({**r, "config": {**r["config"], "params": {}}}, bits=4)
            for r in (record("uniform", 0.0, s, 0.9) for s in range(3))]
    assert compare.across_methods(magnitude + bits, "magnitude", "uniform") == []  # nothing to hold equal
    dense = [{**r, "config": {**r["config"], "params": {}}} for r in (record("dense", 0.0, s, 0.98) for s in range(3))]
    assert [c.setting for c in compare.across_methods(magnitude + dense, "dense", "magnitude")] == [
        "-", "-"]  # a method without parameters beside every row of the other


def test_bench_compare_methods_within_one_results_folder(tmp_path, bench):
    folder = write(tmp_path / "r", [record("magnitude", 0.9, s, acc) for s, acc in enumerate((0.970, 0.972, 0.971))]
                   + [record("random", 0.9, s, acc) for s, acc in enumerate((0.950, 0.952, 0.951))]
                   + [record("snip", 0.5, 0, 0.96)])
    ran = bench(["compare", folder, "--methods", "magnitude,random"])
    assert ran.returncode == 0, ran.stderr
    assert "# mlp: random against magnitude, 1 setting both have" in ran.stdout
    assert "-2.00" in ran.stdout and "worse" in ran.stdout
    assert "random significantly worse than magnitude in 1 of 1 setting" in ran.stdout
    assert bench(["compare", folder, "--methods", "magnitude,random", "--fail-on", "regression"]).returncode == 1
    assert bench(["compare", folder, "--methods", "random,magnitude", "--fail-on", "regression"]).returncode == 0
    same = write(tmp_path / "same", [record(m, 0.9, s, acc) for m in ("magnitude", "gmp")
                                     for s, acc in enumerate((0.970, 0.972, 0.971))])
    quiet = bench(["compare", same, "--methods", "magnitude,gmp", "--only-changed"])
    assert "1 setting without a significant change in accuracy or a moved exact figure not shown" in quiet.stdout
    for args, why in ((["--methods", "magnitude"], "expected two methods, X,Y"),
                      (["--methods", "magnitude,snip"], "holds no finished rows of magnitude and snip"),  # 0.9, 0.5
                      (["--methods", "magnitude,randm"], f"--methods: {folder} holds no finished run of 'randm'; did you "
                                                         "mean random? (methods with finished runs there: magnitude, "
                                                         "random, snip)"),
                      ([folder, "--methods", "magnitude,random"], "give A alone"),
                      ([], "needs B")):
        refused = bench(["compare", folder, *args])
        assert refused.returncode == 2 and why in refused.stderr, (args, refused.stderr)
        if "randm" in args:  # refused before the heading of a comparison that does not happen
            assert "A = " not in refused.stdout, refused.stdout


def test_the_summary_counts_the_settings_where_y_wins_as_well_as_those_it_loses(tmp_path, bench):
    """A reader choosing between two methods asks which wins: "0 of 1 setting worse" alone hid a
    setting where Y was significantly better; both directions are counted, in both commands."""
    accs = (0.970, 0.972, 0.971)
    folder = write(tmp_path / "r", [record("random", 0.9, s, acc - 0.02) for s, acc in enumerate(accs)]
                   + [record("magnitude", 0.9, s, acc) for s, acc in enumerate(accs)])
    ran = bench(["compare", folder, "--methods", "random,magnitude"])
    assert ran.returncode == 0, ran.stderr
    assert "magnitude significantly worse than random in 0 of 1 setting, better in 1 (" in ran.stdout, ran.stdout
    worse = write(tmp_path / "worse", [record("magnitude", 0.9, s, acc - 0.02) for s, acc in enumerate(accs)])
    ran = bench(["compare", worse, folder])
    assert "0 rows significantly worse in B, 1 better (" in ran.stdout, ran.stdout


def test_two_methods_paired_at_one_sparsity_show_each_ones_compression(tmp_path, bench):
    """deep-compression and magnitude+ptq-int8 pair at equal sparsity, where one is 18.6x and the
    other 11.1x smaller than dense: "no change" in accuracy alone hid the size a reader chooses by."""
    def sized(r, compression):
        return {**r, "metrics": {**r["metrics"], "compression": compression}}

    accs = (0.970, 0.972, 0.971)
    folder = write(tmp_path / "r", [sized(record("magnitude", 0.9, s, acc), 10.0) for s, acc in enumerate(accs)]
                   + [sized(record("random", 0.9, s, acc), 12.5) for s, acc in enumerate(accs)])
    (change,) = compare.across_methods(records.load_records(folder, "mlp"), "magnitude", "random")
    assert change.compression == (10.0, 12.5)
    ran = bench(["compare", folder, "--methods", "magnitude,random"])
    assert re.search(r"^.* compression \(x\) .*\n.* magnitude/ +\[95% CI\]\n.* random$", ran.stdout, flags=re.M), \
        ran.stdout
    assert re.search(r"^sparsity=0.9 .* 97.10 +97.10 +10.0/12.5 +\+0.00 ", ran.stdout, flags=re.M), ran.stdout


def test_two_methods_that_pair_nowhere_are_told_which_shared_parameter_kept_them_apart(tmp_path, bench):
    """magnitude (scope global) against magnitude-oneshot (scope layer) at the same sparsities paired
    nowhere, and the refusal named budget, data, device and "shared parameters" alike: the reader
    could not tell that one parameter's default did it."""
    layer = [with_params(record("magnitude-oneshot", sp, s, 0.9), scope="layer") for sp in (0.5, 0.9) for s in range(3)]
    glob = [with_params(record("magnitude", sp, s, 0.97), scope="global") for sp in (0.5, 0.9) for s in range(3)]
    assert compare.unpaired_why(glob + layer, "magnitude", "magnitude-oneshot") == (
        "scope: magnitude global, magnitude-oneshot layer")
    assert compare.unpaired_why(glob, "magnitude", "magnitude-oneshot") is None  # no row of the other at all
    refused = bench(["compare", write(tmp_path / "r", glob + layer), "--methods", "magnitude,magnitude-oneshot"])
    assert refused.returncode == 2
    assert "the parameters both have never agree (scope: magnitude global, magnitude-oneshot layer)" in refused.stderr


def test_rows_with_one_seed_are_counted_as_not_judged_not_as_no_regression(tmp_path, bench):
    """A quick run has one seed: "0 of 1 setting worse" alone read as no regression, for a drop of
    40 points. The summary says how many rows no interval could judge, and how to get one."""
    one = write(tmp_path / "one", [record("magnitude", 0.9, 0, 0.97), record("random", 0.9, 0, 0.57)])
    ran = bench(["compare", one, "--methods", "magnitude,random"])
    assert ran.returncode == 0, ran.stderr
    assert "random significantly worse than magnitude in 0 of 1 setting" in ran.stdout
    assert "1 of 1 setting not judged (too few seeds)" in ran.stdout and "--seeds 0,1,2" in ran.stdout
    other = write(tmp_path / "other", [record("magnitude", 0.9, 0, 0.57)])
    ran = bench(["compare", one, other])
    assert "0 rows significantly worse in B" in ran.stdout
    assert "1 of 1 row not judged (too few seeds)" in ran.stdout, ran.stdout
    three = write(tmp_path / "three", [record(m, 0.9, s, acc - s / 1000) for s in range(3)
                                        for m, acc in (("magnitude", 0.97), ("random", 0.57))])
    assert "not judged" not in bench(["compare", three, "--methods", "magnitude,random"]).stdout


def test_only_changed_shows_a_row_of_one_seed_whose_accuracy_moved(tmp_path, bench):
    """A quick run of one seed against another, 40 points down: --only-changed hid the row as one
    "without a significant change" (no interval can judge one seed), so the table a reader skims
    for what moved was empty above "1 of 1 row not judged". An unjudged row whose mean moved is
    shown; one whose mean did not is counted with the others."""
    a = write(tmp_path / "a", [record("magnitude", 0.9, 0, 0.97), record("random", 0.9, 0, 0.57)])
    b = write(tmp_path / "b", [record("magnitude", 0.9, 0, 0.57), record("random", 0.9, 0, 0.57)])
    out = bench(["compare", a, b, "--only-changed"]).stdout
    rows = [line.split()[0] for line in out.splitlines() if line.startswith(("magnitude", "random"))]
    assert rows == ["magnitude"] and "-40.00" in out and "too few seeds" in out, out
    assert "1 row without a significant change in accuracy or a moved exact figure not shown" in out


def test_a_suite_or_a_side_without_records_is_refused_not_compared_as_nothing(tmp_path, bench, data_dir):
    """A misspelt --suite printed an empty table, "0 rows significantly worse", and exit 0, which
    --fail-on regression passed; a side without records (an empty folder) said that the sides
    share no suite. Each is refused (exit 2), naming the side and, for --suite, the suites there."""
    results = tmp_path / "results"
    ran = bench(["run", "--suite", FAST, "--methods", "dense", "--seeds", "0", "--epochs", "1", "--limit-train", "512",
                 "--limit-test", "200", "--data-dir", data_dir, "--results-dir", results])
    assert ran.returncode == 0, ran.stderr
    why = (f"bench: error: --suite mlp-fats: {results} holds no run records of it; did you mean --suite mlp-fast? "
           "(suites with records there: mlp-fast)\n")
    for args in ([results, "--fail-on", "regression"], ["--methods", "dense,dense-ft"]):
        typo = bench(["compare", results, *args, "--suite", "mlp-fats"])
        assert typo.returncode == 2 and typo.stderr == why, (args, typo.stderr)
    (tmp_path / "empty").mkdir()
    for args in ([tmp_path / "empty", results], [tmp_path / "empty", "--methods", "dense,dense-ft"]):
        empty = bench(["compare", *args])
        assert empty.returncode == 2 and empty.stderr == (
            f"bench: error: {tmp_path / 'empty'} holds no run records (a results folder holds SUITE/runs/*.json)\n")
    assert bench(["compare", results, results, "--suite", "mlp-fast", "--fail-on", "regression"]).returncode == 0


def test_why_no_row_pairs_up_is_printable(tmp_path, bench):
    """The line saying why no row pairs up names A's and B's data sources and devices, a record's
    text: a tampered record's escape sequences (ESC ] 0 ; ... BEL retitles the terminal) are shown
    as `?`, as in compare's table and warnings, not sent to the terminal."""
    def moved(r):
        config = {**r["config"], "data_source": "torchvision:MNIST\x1b]0;owned\x07"}
        return {**r, "config": config, "config_hash": records.config_hash(config),
                "env": {**ENV, "device": "cpu\x1b[2J"}}

    base = [record("magnitude", 0.9, s, 0.97) for s in range(3)]
    a, b = write(tmp_path / "a", base), write(tmp_path / "b", [moved(r) for r in base])
    ran = bench(["compare", a, b])
    assert ran.returncode == 0, ran.stderr
    assert "\x1b" not in ran.stdout and "\x07" not in ran.stdout, ran.stdout
    assert "A's data sources: torchvision:MNIST, B's: torchvision:MNIST?]0;owned?" in ran.stdout, ran.stdout


def on(r, machine):
    return {**r, "env": {**r["env"], "device_name": machine}}


def test_a_change_between_machine_models_must_clear_their_offset(tmp_path, bench):
    """The dense rows of mlp, committed on an Intel Xeon (git show 1caf9de^) and rerun on an AMD
    EPYC from the same seeds, read "better", +0.13 [+0.04, +0.22]: the offset between the two
    processors, which no side's seeds sample (README). Across machine models a verdict must clear
    0.2 pts, as the literature checks' do; on one model the seeds alone decide, as before."""
    intel = [record("dense", 0.0, s, acc) for s, acc in enumerate((0.9831, 0.9839, 0.9833))]
    amd = [record("dense", 0.0, s, acc) for s, acc in enumerate((0.9850, 0.9846, 0.9846))]
    (same,) = compare.compare(intel, amd)  # all on one machine model (ENV's)
    assert same.verdict == "better" and same.machine_margin == 0 and same.ci[0] > 0
    (moved,) = compare.compare([on(r, "Intel Xeon") for r in intel], [on(r, "AMD EPYC") for r in amd])
    assert moved.verdict == "unclear (machines differ)" and moved.ci == same.ci and 0 < moved.ci[0] < 0.2
    assert moved.machine_margin == pytest.approx(0.2)
    far = [record("dense", 0.0, s, acc - 0.01) for s, acc in enumerate((0.9850, 0.9846, 0.9846))]
    (worse,) = compare.compare([on(r, "AMD EPYC") for r in amd], [on(r, "Intel Xeon") for r in far])
    assert worse.verdict == "worse"  # a point down clears the margin
    mixed = [on(r, "AMD EPYC" if r["config"]["seed"] else "Intel Xeon") for r in amd]
    (both,) = compare.compare(mixed, mixed)
    assert both.machine_margin == pytest.approx(0.2) and both.verdict == "not significant"
    (methods,) = compare.across_methods([on(r, "Intel Xeon") for r in intel]
                                        + [on({**r, "config": {**r["config"], "method": "magnitude"}}, "AMD EPYC")
                                           for r in amd], "dense", "magnitude")
    assert methods.verdict == "unclear (machines differ)"

    a = write(tmp_path / "a", [on(r, "Intel Xeon") for r in intel])
    b = write(tmp_path / "b", [on(r, "AMD EPYC") for r in amd])
    ran = bench(["compare", a, b, "--fail-on", "regression"])
    assert ran.returncode == 0, ran.stderr
    assert "unclear (machines differ)" in ran.stdout
    assert "1 of 1 row with records from different machine models" in ran.stdout and "±0.2 pts" in ran.stdout
    only = bench(["compare", a, b, "--only-changed"])  # it may have moved: shown, not counted away
    assert "unclear (machines differ)" in only.stdout and "0 rows without a significant change" in only.stdout
    assert "machine models" not in bench(["compare", b, b]).stdout


def test_one_method_at_two_settings_is_compared_by_fixing_a_parameter_on_each_side(tmp_path, bench):
    """"Does fine-tuning after SparseGPT help?" is one method at two settings: --methods
    sparsegpt,sparsegpt was refused, and no pair of names could put it. Each side keeps its rows of
    the fixed values, the pairing leaves the fixed parameter out, and the rows at other values
    (calibration_samples 128, which only the one-shot side has) pair with nothing."""
    def sgpt(finetune, sparsity, seed, accuracy, samples=1024):
        return with_params(record("sparsegpt", sparsity, seed, accuracy), finetune=finetune,
                           calibration_samples=samples)

    accs = (0.970, 0.972, 0.971)
    recs = ([sgpt(False, sp, s, acc - 0.02) for sp in (0.5, 0.8) for s, acc in enumerate(accs)]
            + [sgpt(False, 0.8, s, acc - 0.05, samples=128) for s, acc in enumerate(accs)]
            + [sgpt(True, 0.8, s, acc) for s, acc in enumerate(accs)])
    x, y = compare.method_pair("sparsegpt[finetune=false], sparsegpt[finetune=true]")
    assert (x.label, y.label) == ("sparsegpt[finetune=False]", "sparsegpt[finetune=True]")
    (change,) = compare.across_methods(recs, x, y)
    assert (change.setting, change.others) == ("calibration_samples=1024, sparsity=0.8",
                                               ("finetune=False", "finetune=True"))
    assert change.verdict == "better" and change.change == pytest.approx(2.0)
    assert change.method == "sparsegpt[finetune=True] vs sparsegpt[finetune=False]"

    folder = write(tmp_path / "r", recs)
    ran = bench(["compare", folder, "--methods", "sparsegpt[finetune=false],sparsegpt[finetune=true]",
                 "--fail-on", "regression"])
    assert ran.returncode == 0, ran.stderr
    assert ("# mlp: sparsegpt[finetune=True] against sparsegpt[finetune=False], 1 setting both have; "
            "paired whatever their finetune") in ran.stdout, ran.stdout
    assert re.search(r"^calibration_samples=1024, sparsity=0.8 +finetune=False +finetune=True .* \+2\.00 .* better$",
                     ran.stdout, flags=re.M), ran.stdout
    assert "sparsegpt[finetune=True] significantly worse than sparsegpt[finetune=False] in 0 of 1 setting, " \
           "better in 1 (Welch's t over seeds, 95%, Holm's correction over the 1 setting judged" in ran.stdout
    back = bench(["compare", folder, "--methods", "sparsegpt[finetune=true],sparsegpt[finetune=false]",
                  "--fail-on", "regression"])
    assert back.returncode == 1 and "worse" in back.stdout, back.stdout  # --fail-on as for any comparison


def test_ignore_pairs_methods_whose_defaults_differ_and_shows_the_values_beside(tmp_path, bench):
    """magnitude (scope global) and magnitude-oneshot (scope layer) paired nowhere; --ignore scope
    pairs them by sparsity, each one's scope among its others, and the heading says so. Where a
    machine differs, the margin applies as anywhere."""
    accs = (0.970, 0.972, 0.971)
    glob = [with_params(record("magnitude", sp, s, acc), scope="global") for sp in (0.5, 0.9) for s, acc in enumerate(accs)]
    layer = [on(with_params(record("magnitude-oneshot", sp, s, acc - sp / 10), scope="layer"), "AMD EPYC")
             for sp in (0.5, 0.9) for s, acc in enumerate(accs)]
    assert compare.across_methods(glob + layer, "magnitude", "magnitude-oneshot") == []
    changes = compare.across_methods(glob + layer, "magnitude", "magnitude-oneshot", ignore=["scope"])
    assert [(c.setting, c.others, round(c.change, 6), c.verdict) for c in changes] == [
        ("sparsity=0.5", ("scope=global", "scope=layer"), -5.0, "worse"),
        ("sparsity=0.9", ("scope=global", "scope=layer"), -9.0, "worse")]
    assert all(c.machine_margin == pytest.approx(0.2) for c in changes)
    ran = bench(["compare", write(tmp_path / "r", glob + layer), "--methods", "magnitude,magnitude-oneshot",
                 "--ignore", "scope"])
    assert ran.returncode == 0, ran.stderr
    assert "# mlp: magnitude-oneshot against magnitude, 2 settings both have; paired whatever their scope" in ran.stdout
    assert ("in every row: magnitude scope=global; magnitude-oneshot scope=layer; budget 20+10 epochs; "
            "seeds magnitude/magnitude-oneshot 3/3\n") in ran.stdout, ran.stdout
    assert re.search(r"^sparsity=0.9 +97.", ran.stdout, flags=re.M), ran.stdout
    assert "2 of 2 settings with records from different machine models" in ran.stdout
    # a row missing a seed: the seeds column varies, so it stays in the table, and is not said above
    fewer = bench(["compare", write(tmp_path / "fewer", glob + layer[:-1]), "--methods", "magnitude,magnitude-oneshot",
                   "--ignore", "scope"])
    assert "in every row: magnitude scope=global; magnitude-oneshot scope=layer; budget 20+10 epochs\n" in fewer.stdout
    assert re.search(r"^sparsity=0.9 +3/2 +97.", fewer.stdout, flags=re.M), fewer.stdout
    refused = bench(["compare", tmp_path / "r", "--methods", "magnitude,magnitude-oneshot"])
    assert refused.returncode == 2 and "or --ignore PARAM pairs them whatever its value" in refused.stderr


def test_a_malformed_method_spec_or_a_parameter_no_side_has_is_refused_by_name(tmp_path, bench):
    """A misspelt parameter selected no row, or paired as if it were not given: each is refused,
    naming it and the parameters (or values) there are."""
    recs = [with_params(record("sparsegpt", 0.8, s, 0.97), finetune=ft) for s in range(2) for ft in (False, True)]
    recs += [with_params(record("magnitude", 0.8, s, 0.97), scope="global") for s in range(2)]
    folder = write(tmp_path / "r", recs)
    for methods, extra, why in (
            ("sparsegpt,sparsegpt", [], "'sparsegpt' on both sides needs a parameter fixed to a different value on "
                                        "each, e.g. sparsegpt[finetune=false],sparsegpt[finetune=true]"),
            ("sparsegpt[finetune=true],sparsegpt", [], "'sparsegpt' on both sides needs a parameter fixed"),
            # the example names a parameter the method has (it was sparsegpt's finetune for every method)
            ("magnitude,magnitude", [], "'magnitude' on both sides needs a parameter fixed to a different value on "
                                        "each, e.g. magnitude[sparsity=0.9],magnitude[sparsity=...]"),
            ("dense,dense", [], "a different value on each: dense has none, so compare it with another method"),
            ("sparsegpt[finetune],magnitude", [], "'finetune' in 'sparsegpt[finetune]' is no PARAM=VALUE"),
            ("sparsegpt[finetune=true,finetune=false],magnitude", [], "'finetune' is fixed twice"),
            ("sparsegpt[finetune=true,magnitude", [], "expected two methods, X,Y, each METHOD or METHOD[PARAM=VALUE,...]"),
            ("sparsegpt]finetune=true[,magnitude", [], "unbalanced brackets"),
            ("sparsegpt[finetune=true]x,magnitude", [], "is no METHOD or METHOD[PARAM=VALUE,...]"),
            ("sparsegpt[finetune=*a],magnitude", [], "--methods sparsegpt[finetune]: the value is no YAML scalar: anchors"),
            ("sparsegpt[finetun=true],magnitude", [], "--methods sparsegpt[finetun=True]: no finished run of sparsegpt "
                                                      "has a parameter 'finetun' (its parameters: finetune, sparsity)"),
            ("sparsegpt[finetune=2],magnitude", [], "no finished run of sparsegpt has finetune=2 together with the other "
                                                    "values fixed (its values of finetune: False, True)"),
            ("sparsegpt[finetune=1],magnitude", [], "has finetune=1"),  # a flag is not a count
            ("sparsegpt,magnitude", ["--ignore", "scop"], "--ignore scop: neither sparsegpt nor magnitude has a "
                                                          "parameter 'scop' (theirs: finetune, scope, sparsity)")):
        refused = bench(["compare", folder, "--methods", methods, *extra])
        assert refused.returncode == 2 and why in refused.stderr, (methods, refused.stderr)
    refused = bench(["compare", folder, folder, "--ignore", "scope"])
    assert refused.returncode == 2 and "with --methods X,Y" in refused.stderr


def test_a_row_against_the_best_of_its_band_is_tied_within_noise_below_beyond_it_and_unjudged_with_one_seed():
    """The site's best at each size said only that differences within a std are noise: each row of
    a band is now judged against the band's best as bench compare judges a pair (Welch, Holm over
    the band). A clearly worse row is below it, one within the seeds' noise tied, a one-seed row
    unjudged (neither tied nor beaten), and 0.15 pts below with no spread is significant on one
    machine model but not across two, where the interval must clear the 0.2 pts margin."""
    best = [record("magnitude", 0.9, s, a) for s, a in ((0, 0.9700), (1, 0.9701), (2, 0.9702))]
    noise = [record("gmp", 0.9, s, a) for s, a in ((0, 0.9699), (1, 0.9703), (2, 0.9700))]
    worse = [record("snip", 0.9, s, a) for s, a in ((0, 0.900), (1, 0.901), (2, 0.902))]
    one_seed = [record("set", 0.9, 0, 0.95)]
    close = [record("rigl", 0.9, s, a) for s, a in ((0, 0.96850), (1, 0.96860), (2, 0.96870))]
    elsewhere = [{**r, "env": {**r["env"], "device_name": "Other CPU"}} for r in close]
    judged = compare.against_best(best, [noise, worse, one_seed, close])
    assert [c.verdict for c in judged] == ["not significant", "worse", "too few seeds", "worse"]
    assert [c.p_holm is None for c in judged] == [False, False, True, False]
    across = compare.against_best(best, [noise, worse, one_seed, elsewhere])
    assert across[3].machine_margin == records.MACHINE_MARGIN and across[3].verdict == compare.UNCLEAR
    assert across[3].ci[1] < 0  # below on its own interval, yet within the machines' margin


def sized(r, compression, **params):
    """The record `r` with a measured compression, and other method parameters where given."""
    r = with_params(r, **params) if params else r
    return {**r, "metrics": {**r["metrics"], "compression": compression}}


def filter_l1_against_magnitude():
    """Planted rows of two methods whose knobs differ: filter-l1 at three ratios (2.0x, 4.0x, 8.0x)
    and magnitude at four sparsities (2.1x, 3.8x, 4.1x, 20x), seeds 0.1 pts apart; magnitude 3 pts
    below filter-l1 at 4.1x, level with it at 2.1x; one magnitude row of another budget at 8.0x and
    one filter-l1 row without a recorded compression."""
    accs = (0.970, 0.972, 0.971)

    def filt(ratio, compression, drop=0.0):
        return [sized({**r, "config": {**r["config"], "params": {}}}, compression, ratio=ratio)
                for r in (record("filter-l1", 0.0, s, acc - drop) for s, acc in enumerate(accs))]

    def mag(sparsity, compression, drop=0.0):
        return [sized(record("magnitude", sparsity, s, acc - drop), compression) for s, acc in enumerate(accs)]

    other_budget = [{**r, "config": {**r["config"], "budget": {**BUDGET, "epochs": 1}}} for r in mag(0.87, 8.0)]
    unsized = [{**r, "metrics": {k: v for k, v in r["metrics"].items() if k != "compression"}}
               for r in filt(0.1, 1.0)]
    return (filt(0.5, 2.0) + filt(0.75, 4.0) + filt(0.875, 8.0) + unsized
            + mag(0.5, 2.1) + mag(0.7, 3.8) + mag(0.8, 4.1, drop=0.03) + mag(0.95, 20.0) + other_budget)


def test_two_methods_pair_by_size_one_to_one_nearest_first_within_the_tolerance():
    """Y's rows are paired with X's by mean compression (log scale), nearest first, each row once:
    magnitude at 3.8x is 5.3% from filter-l1's 4.0x, but 4.1x is nearer and takes it; the pairs are
    judged as any comparison's (Welch, Holm over the pairs), and every row left over is returned
    with its nearest partner (or none: another budget, no compression recorded)."""
    assert compare.size_apart(2.0, 2.2) == pytest.approx(compare.size_apart(22.0, 20.0)) == pytest.approx(0.1)
    changes, unpaired = compare.across_sizes(filter_l1_against_magnitude(), "filter-l1", "magnitude")
    assert [(c.others, c.compression, round(c.change, 6), c.verdict) for c in changes] == [
        (("ratio=0.5", "sparsity=0.5"), (2.0, 2.1), 0.0, "not significant"),
        (("ratio=0.75", "sparsity=0.8"), (4.0, 4.1), -3.0, "worse")]
    assert changes[1].method == "magnitude vs filter-l1" and changes[1].p_holm == pytest.approx(2 * changes[1].p)
    assert [(u.side, u.setting, u.compression and round(u.compression, 9), u.nearest) for u in unpaired] == [
        (0, "ratio=0.875", 8.0, ("sparsity=0.8", 4.1)),  # 8.0x against 20x and 4.1x: too far either way
        (0, "ratio=0.1", None, None),  # no compression recorded
        (1, "sparsity=0.87", 8.0, None),  # another budget (1+10 epochs): filter-l1 has no row there
        (1, "sparsity=0.7", 3.8, ("ratio=0.75", 4.0)),  # within 10%, taken by the nearer 4.1x
        (1, "sparsity=0.95", 20.0, ("ratio=0.875", 8.0))]
    (only,), _ = compare.across_sizes(filter_l1_against_magnitude(), "filter-l1", "magnitude", within=0.03)
    assert only.compression == (4.0, 4.1)  # 2.0x against 2.1x is 5% apart
    wide, _ = compare.across_sizes(filter_l1_against_magnitude(), "filter-l1", "magnitude", within=1.5)
    assert [tuple(round(v, 9) for v in c.compression) for c in wide] == [
        (2.0, 2.1), (4.0, 4.1), (8.0, 3.8)]  # one-to-one: 8.0x takes 3.8x (110.5% apart), 20x (150%) is left
    tenth = [sized(record(m, sp, s, 0.97), c) for m, sp, c in (("magnitude", 0.5, 10.0), ("random", 0.9, 11.0))
             for s in range(2)]
    assert len(compare.across_sizes(tenth, "magnitude", "random", within=0.1)[0]) == 1  # 10% apart: within 10%


def test_a_pair_by_size_across_machine_models_must_clear_their_offset():
    """The machines' margin applies to pairs by size as to any: 0.1 pts with no spread between an
    Intel and an AMD row is `unclear (machines differ)`, not `worse`."""
    x = [on(sized(record("magnitude", 0.9, s, 0.971), 7.4), "Intel Xeon") for s in range(3)]
    y = [on(sized(with_params(record("uniform", 0.0, s, 0.970), bits=4), 7.9), "AMD EPYC") for s in range(3)]
    (change,), unpaired = compare.across_sizes(x + y, "magnitude", "uniform")
    assert change.machine_margin == pytest.approx(0.2) and change.verdict == compare.UNCLEAR and unpaired == []


def test_bench_compare_match_compression_shows_both_settings_sizes_and_names_the_unpaired(tmp_path, bench):
    """The table shows each row's whole setting, both compressions and how far apart they are; the
    rows left unpaired are named with why; --fail-on regression fails on a pair where Y is worse."""
    folder = write(tmp_path / "r", filter_l1_against_magnitude())
    ran = bench(["compare", folder, "--methods", "filter-l1,magnitude", "--match", "compression"])
    assert ran.returncode == 0, ran.stderr
    out = ran.stdout
    assert ("# mlp: magnitude against filter-l1 by compression, 2 pairs of rows at most 10% apart "
            "(one-to-one, nearest first)") in out, out
    assert re.search(r"^.* compression \(x\) +apart .*\n.* filter-l1/ +\[95% CI\]\n.* magnitude$", out, flags=re.M), out
    # the budget and seeds of every row are said once above the table, not in a column each
    assert "in every row: budget 20+10 epochs; seeds filter-l1/magnitude 3/3\n" in out, out
    assert re.search(r"^ratio=0.75 +sparsity=0.8 +97.10 +94.10 +4.00/4.10 +2.5% +-3.00 .* worse$", out, flags=re.M), out
    assert re.search(r"^ratio=0.5 +sparsity=0.5 .* 2.00/2.10 +5% .* not significant$", out, flags=re.M), out
    assert "5 rows without a partner within 10%, not compared:" in out
    for line in ("filter-l1 ratio=0.875 (20+10 epochs) at 8.00x: its nearest, magnitude sparsity=0.8 at 4.10x, "
                 "95.1% apart",
                 "filter-l1 ratio=0.1 (20+10 epochs): no compression recorded",
                 "magnitude sparsity=0.7 (20+10 epochs) at 3.80x: each row of filter-l1 within 10% paired with a "
                 "nearer row (its nearest: filter-l1 ratio=0.75 at 4.00x, 5.3% apart)",
                 "magnitude sparsity=0.87 (1+10 epochs) at 8.00x: no row of filter-l1 with a compression at its "
                 "budget, data source and device type"):
        assert f"\n  {line}\n" in out, (line, out)
    assert "magnitude significantly worse than filter-l1 in 1 of 2 pairs, better in 0 (Welch's t over seeds, 95%, " \
           "Holm's correction over the 2 pairs judged" in out
    assert "the pairs' compressions differ by up to 5% (apart)" in out
    assert "5 rows of filter-l1 or magnitude unpaired (above): not compared" in out
    failed = bench(["compare", folder, "--methods", "filter-l1,magnitude", "--match", "compression",
                    "--fail-on", "regression"])
    assert failed.returncode == 1
    narrow = bench(["compare", folder, "--methods", "filter-l1,magnitude", "--match", "compression", "--within", "0.03"])
    assert "1 pair of rows at most 3% apart" in narrow.stdout and "7 rows without a partner within 3%" in narrow.stdout


def test_match_compression_is_refused_where_it_cannot_pair_and_says_how_near_it_came(tmp_path, bench):
    """--match without --methods, an unknown --match, --within without --match compression, --ignore
    beside it (no parameter pairs there), and rows none of which lie within the tolerance: each
    refused by name, the last with the nearest two rows and the --within that would pair them."""
    folder = write(tmp_path / "r", filter_l1_against_magnitude())
    for args, why in (
            (["--match", "compression"], "--match: pairs the rows of two methods within A, with --methods X,Y"),
            (["--within", "0.2"], "--within: pairs the rows of two methods within A, with --methods X,Y"),
            (["--methods", "filter-l1,magnitude", "--match", "size"], "invalid choice: 'size'"),
            (["--methods", "filter-l1,magnitude", "--within", "0.2"], "--within: the tolerance of --match compression"),
            (["--methods", "filter-l1,magnitude", "--match", "compression", "--within", "nan"], "--within: expected a number"),
            (["--methods", "filter-l1,magnitude", "--match", "compression", "--ignore", "sparsity"],
             "--ignore 'sparsity': leaves a parameter out of a pairing by parameters; --match compression pairs rows by "
             "size whatever their parameters"),
            (["--methods", "filter-l1,magnitude", "--match", "compression", "--within", "0.01"],
             "no row of magnitude is within 1% of a row of filter-l1 in compression; the nearest two: filter-l1 "
             "ratio=0.75 at 4.00x and magnitude sparsity=0.8 at 4.10x, 2.5% apart (mlp, 20+10 epochs; --within 0.03 "
             "pairs them)")):
        refused = bench(["compare", folder, *args])
        assert refused.returncode == 2 and why in refused.stderr, (args, refused.stderr)
    unsized = write(tmp_path / "unsized", [record(m, 0.9, s, 0.97) for m in ("magnitude", "random") for s in range(2)])
    refused = bench(["compare", unsized, "--methods", "magnitude,random", "--match", "compression"])
    assert refused.returncode == 2 and "no rows of magnitude and random with a compression recorded" in refused.stderr


def test_match_compression_on_the_committed_records(bench):
    """filter-l1 (ratio 0.5) against magnitude: on mnist 3.92x pairs with magnitude's 4.27x at 80%
    sparsity, the other five magnitude rows named unpaired; on mlp its 2.11x is 12.8% from
    magnitude's 1.87x, beyond the default 10%, and the refusal says so."""
    results = Path(__file__).resolve().parents[1] / "results"
    ran = bench(["compare", results, "--suite", "mnist", "--methods", "filter-l1,magnitude", "--match", "compression"])
    assert ran.returncode == 0, ran.stderr
    assert re.search(r"^ratio=0.5 +scope=global, sparsity=0.8 +12\+6 epochs +3/3 +99.28 +99.32 +3.92/4.27 +8.8% .* "
                     r"not significant$", ran.stdout, flags=re.M), ran.stdout
    assert "5 rows without a partner within 10%" in ran.stdout
    refused = bench(["compare", results, "--suite", "mlp", "--methods", "filter-l1,magnitude", "--match", "compression"])
    assert refused.returncode == 2
    assert ("the nearest two: filter-l1 ratio=0.5 at 2.11x and magnitude scope=global, sparsity=0.5 at 1.87x, "
            "12.8% apart") in refused.stderr and "--within 0.13 pairs them" in refused.stderr
    paired = bench(["compare", results, "--suite", "mlp", "--methods", "deep-compression,magnitude+ptq-int8",
                    "--match", "compression"])
    assert "in every row: deep-compression conv_bits=8, fc_bits=5, prune_epochs_fraction=0.5; magnitude+ptq-int8 " \
           "magnitude.scope=global, ptq-int8.calibration_batches=" in paired.stdout, paired.stdout
    rows = re.findall(r"^(sparsity=\S+) +(magnitude.sparsity=\S+) .* (\S+/\S+) +(\S+%) ", paired.stdout, flags=re.M)
    assert rows == [("sparsity=0.5", "magnitude.sparsity=0.8", "10.43/11.21", "7.4%"),
                    ("sparsity=0.8", "magnitude.sparsity=0.98", "21.50/22.54", "4.9%")], paired.stdout


def test_a_large_change_the_seeds_cannot_show_is_not_called_no_change():
    """wanda at 92% on mlp, 32 pts below one-shot magnitude with seeds far apart (p 0.055): the
    verdict said `no change`, which reads as a finding that nothing moved; it is a test that did
    not reject, and says so."""
    a = [record("magnitude", 0.9, s, acc) for s, acc in enumerate((0.80, 0.78, 0.78))]
    b = [record("magnitude", 0.9, s, acc) for s, acc in enumerate((0.70, 0.40, 0.29))]
    (change,) = compare.compare(a, b)
    assert change.change < -20 and change.p > 0.05 and change.ci[0] < 0 < change.ci[1]
    assert change.verdict == compare.NOT_SIGNIFICANT == "not significant"


def test_a_distance_in_size_that_rounds_to_none_is_not_called_none():
    """`--within 0` left a row 0.03% from its nearest unpaired, and the note read "0% apart",
    which is what would have paired it: a distance under a tenth of a percent reads "<0.1%"."""
    from bench.cli_compare import _percent

    assert [_percent(f) for f in (0.0, 0.0003, 0.0005, 0.1, 0.128)] == ["0%", "<0.1%", "0.1%", "10%", "12.8%"]
