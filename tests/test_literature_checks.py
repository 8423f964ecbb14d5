import dataclasses
import importlib.util
import statistics
import sys
from pathlib import Path

import pytest
import yaml
from scipy import stats

from bench import board, files, records

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "literature_checks.py"
spec = importlib.util.spec_from_file_location("literature_checks", SCRIPT)
checks = importlib.util.module_from_spec(spec)
sys.modules["literature_checks"] = checks  # dataclasses look their module up there
spec.loader.exec_module(checks)

HAN = "magnitude at 92% = dense ± 0.3"
SHRINK = "fine-tuning shrinks sparsegpt's lead over magnitude at 80%"
ONE_SHOT_80 = [  # sparsegpt leads by 2 pts without fine-tuning, by 0.1 with it
    ("sparsegpt", "calibration_samples=1024, finetune=False, m=0, n=0, sparsity=0.8", 96.0, 0.1, 3),
    ("magnitude-oneshot", "finetune=False, m=0, n=0, scope=layer, sparsity=0.8", 94.0, 0.1, 3),
    ("sparsegpt", "calibration_samples=1024, finetune=True, m=0, n=0, sparsity=0.8", 98.1, 0.1, 3),
    ("magnitude-oneshot", "finetune=True, m=0, n=0, scope=layer, sparsity=0.8", 98.0, 0.1, 3)]


def seed_values(mean: float, std: float, n: int) -> list[float]:
    """n accuracies (%) whose mean and sample std are exactly `mean` and `std`."""
    if n == 1:
        return [mean]
    z = [i - (n - 1) / 2 for i in range(n)]
    return [mean + std * v / statistics.stdev(z) for v in z]


def params_of(setting: str) -> dict:
    """A leaderboard setting label parsed back into a record's parameters (YAML scalars)."""
    return {} if setting == "-" else {k: yaml.safe_load(v) for k, v in (p.split("=") for p in setting.split(", "))}


def write_table(results: Path, rows: list[tuple], suite: str = "mlp", machines: list[str] | None = None,
                **columns: list[float]) -> None:
    """Records of (method, setting, mean, std, seeds) rows (or (method, setting, accuracies)), and the leaderboard.csv
    `bench leaderboard` builds from them, in the table the suite's checks read; `columns` gives a
    row's size_KiB, compression_x, flops_M or flops_effective_M."""
    source, device = checks.SUITES[suite]
    scale = {"size_KiB": ("size_bytes", 1024), "compression_x": ("compression", 1),
             "flops_M": ("flops", 1e6), "flops_effective_M": ("flops_effective", 1e6)}
    for old in (results / suite / "runs").glob("*.json"):
        old.unlink()
    recs = []
    for i, (method, setting, mean, *spread) in enumerate(rows):
        std, n = spread or (None, None)
        metrics = {"size_bytes": 102400, "compression": 1.0, "flops": 1e6, "flops_effective": 1e6}
        metrics.update({scale[name][0]: values[i] * scale[name][1] for name, values in columns.items()})
        if isinstance(mean, list):  # the seeds' accuracies themselves
            values = mean
        else:
            values = seed_values(mean, std, n)
            values = values[i % n:] + values[:i % n]  # rows' seeds do not all move together
        for seed, accuracy in enumerate(values):
            config = {"suite": suite, "suite_version": 1, "method": method, "params": params_of(setting), "seed": seed,
                      "data_source": source,
                      "budget": {"epochs": 20, "finetune_epochs": 10}, "model": {"name": "lenet300"}}
            env = {"device": device, "device_name": machines[i] if machines else "Test CPU", "torch": "2.x",
                   "threads": 1}
            recs.append({"schema": records.SCHEMA_VERSION, "config": config, "config_hash": f"{i}-{seed}", "status": "ok",
                         "standard_budget": True,
                         "metrics": {**metrics, "accuracy": accuracy / 100}, "env": env})
            files.write_json_atomic(results / suite / "runs" / f"{method}-{i}-s{seed}.json", recs[-1])
    cols = board.table_columns(recs)
    files.write_text_atomic(results / suite / "leaderboard.csv",
                              board.csv_text(board.aggregate(board.frame(recs, cols), cols)))


def verdicts(results: Path) -> dict[tuple[str, str], "checks.Verdict"]:
    return {(v.claim, v.suite): v for v in checks.run(results)}


def test_holm_turns_a_marginal_pass_into_inconclusive(tmp_path):
    """Lottery 0.1 pts above its control (one-sided p about 0.006) passes when it is the only
    check with rows; with ten clear checks printed beside it, the family's correction leaves it
    inconclusive, its raw p unchanged."""
    lottery = [("lottery", "reinit=False, rounds=5, sparsity=0.95", 97.60, 0.03, 3),
               ("lottery", "reinit=True, rounds=5, sparsity=0.95", 97.50, 0.03, 3)]
    write_table(tmp_path / "alone", lottery)
    alone = verdicts(tmp_path / "alone")[("lottery > reinit control at 95%", "mlp")]
    assert alone.verdict == "pass" and 0.001 < alone.p < 0.025

    clear = [("dense", "-", 98.30, 0.01, 3), ("ptq-int8", "calibration_batches=4", 98.30, 0.01, 3),
             ("qat", "-", 98.30, 0.01, 3), ("uniform", "bits=4", 98.30, 0.01, 3),
             ("magnitude", "scope=global, sparsity=0.92", 98.30, 0.01, 3),
             ("imp", "rounds=5, sparsity=0.92", 98.30, 0.01, 3), ("gmp", "sparsity=0.92", 98.30, 0.01, 3),
             ("magnitude", "scope=global, sparsity=0.95", 98.0, 0.01, 3), ("random", "sparsity=0.95", 90.0, 0.01, 3),
             ("magnitude", "scope=global, sparsity=0.98", 97.0, 0.01, 3), ("random", "sparsity=0.98", 60.0, 0.01, 3)]
    write_table(tmp_path / "family", lottery + clear)
    v = verdicts(tmp_path / "family")
    marginal = v[("lottery > reinit control at 95%", "mlp")]
    assert marginal.p == pytest.approx(alone.p) and marginal.p_holm > checks.ALPHA
    assert marginal.verdict == "inconclusive"
    assert v[("magnitude > random at 98%", "mlp")].verdict == "pass"
    assert v[(HAN, "mlp")].verdict == "pass"


def test_an_inconclusive_check_says_when_it_points_the_wrong_way(tmp_path):
    write_table(tmp_path, [("kd", "-", 98.28, 0.11, 3), ("student", "-", 98.45, 0.09, 3),  # kd below
                           ("gptq", "bits=3, calibration_samples=1024, finetune=False", 98.43, 0.05, 3),
                           ("rtn", "bits=3, finetune=False", 98.40, 0.09, 3)])  # gptq above, in the noise
    v = verdicts(tmp_path)
    kd = v[("kd > student trained alone", "mlp")]
    assert kd.verdict == "inconclusive (wrong way)"
    assert kd.estimate == pytest.approx(-0.17) and kd.ci[0] < 0 < kd.ci[1]
    assert "-0.17 [" in checks.table(list(v.values()))
    assert kd.p_is_miss and f"| {checks.p_text(kd.p_holm)} (miss) | inconclusive (wrong way)" in checks.table([kd])
    assert v[("gptq > round-to-nearest at 3 bits", "mlp")].verdict == "inconclusive"


def test_equivalence_is_tost_and_non_inferiority_one_sided(tmp_path):
    """ptq-int8 equal to dense with tight seeds: equivalent. qat equal on average but noisy: not
    shown equivalent. uniform 4-bit 1.5 pts above dense: not equivalent either (a miss), while the
    lottery ticket as far above dense passes its one-sided claim."""
    write_table(tmp_path, [("dense", "-", 98.30, 0.02, 3), ("ptq-int8", "calibration_batches=4", 98.30, 0.02, 3),
                           ("qat", "-", 98.30, 0.40, 3), ("uniform", "bits=4", 99.80, 0.02, 3),
                           ("lottery", "reinit=False, rounds=5, sparsity=0.95", 99.80, 0.02, 3)])
    v = verdicts(tmp_path)
    ptq, qat = v[("ptq-int8 = dense ± 0.5", "mlp")], v[("qat = dense ± 0.5", "mlp")]
    assert ptq.kind == "equivalence" and ptq.verdict == "pass"
    assert qat.verdict == "inconclusive" and qat.p > checks.ALPHA
    assert v[("uniform 4-bit = dense ± 1", "mlp")].verdict == "miss"
    ticket = v[("lottery at 95% >= dense - 0.5", "mlp")]
    assert ticket.kind == "non-inferiority" and ticket.verdict == "pass"


def test_deep_compression_is_taken_at_the_target_compression_not_the_best_accuracy(tmp_path):
    """mlp's target is 40x: the 45x row is the least compressed one reaching it, whatever the
    accuracy of the 36x (short of the target) and 60x rows."""
    dc = "conv_bits=8, fc_bits=5, prune_epochs_fraction=0.5, sparsity="
    write_table(tmp_path, [("deep-compression", dc + "0.9", 98.50, 0.02, 3),
                           ("deep-compression", dc + "0.92", 97.00, 0.02, 3),
                           ("deep-compression", dc + "0.95", 98.40, 0.02, 3)],
                compression_x=[36.0, 45.0, 60.0])
    v = verdicts(tmp_path)[("Deep Compression error at 39-40x = published ± 0.5", "mlp")]
    assert "3.00% error (n=3) at 45x (sparsity=0.92)" in v.measured
    assert v.estimate == pytest.approx(3.00 - 1.58) and v.verdict == "miss"


def test_cifar_prints_no_rows_until_its_rows_exist(tmp_path):
    write_table(tmp_path, [("dense", "-", 98.30, 0.02, 3)])
    v = checks.run(tmp_path)
    cifar = [x for x in v if x.suite == "cifar"]
    assert len(cifar) == 8 and all(x.verdict == "no rows" for x in cifar)
    assert any(x.suite == "mnist" and x.verdict == "no rows" for x in v)  # no leaderboard at all
    # today's cifar table: dense, deep-compression and filter-l1 at one seed, nothing to compare
    write_table(tmp_path, [("dense", "-", 87.99, 0.0, 1), ("filter-l1", "ratio=0.5", 83.43, 0.0, 1),
                           ("deep-compression", "sparsity=0.9", 84.16, 0.0, 1)], suite="cifar")
    assert all(x.verdict == "no rows" for x in checks.run(tmp_path) if x.suite == "cifar")
    assert any("cifar" in line and "kd > student" in line and line.rstrip(" |").endswith("no rows")
               for line in checks.table(v).splitlines())


def test_cifar_checks_run_once_rows_exist(tmp_path):
    """filter-l1 (20 MFLOPs) meets the least sparse magnitude row within its FLOPs (90%: 12),
    not the closer-in-accuracy 50% row (41 MFLOPs); Deep Compression's size is a plain ratio."""
    rows = [("dense", "-", 88.0, 0.1, 3), ("filter-l1", "ratio=0.5", 84.0, 0.1, 3),
            ("magnitude", "scope=global, sparsity=0.5", 88.0, 0.1, 3),
            ("magnitude", "scope=global, sparsity=0.9", 86.0, 0.1, 3),
            ("magnitude", "scope=global, sparsity=0.95", 83.0, 0.1, 3),
            ("random", "sparsity=0.9", 70.0, 0.1, 3), ("deep-compression", "sparsity=0.9", 85.5, 0.1, 3),
            ("lottery", "reinit=False, rounds=2, sparsity=0.9", 86.0, 1.0, 1)]
    write_table(tmp_path, rows, suite="cifar", flops_M=[81.6, 20.6, 81.6, 81.6, 81.6, 81.6, 81.6, 81.6],
                flops_effective_M=[81.6, 20.6, 41.0, 12.0, 7.0, 8.0, 12.0, 12.0],
                size_KiB=[1107.0, 308.0, 600.0, 140.0, 80.0, 140.0, 40.0, 140.0])
    v = verdicts(tmp_path)
    structured = v[("magnitude > filter-l1 at no more FLOPs", "cifar")]
    assert structured.measured.endswith("(magnitude at sparsity=0.9)")
    assert structured.estimate == pytest.approx(2.0) and structured.verdict == "pass"
    assert v[("magnitude > random at 90%", "cifar")].verdict == "pass"
    assert v[("magnitude at 50% = dense ± 0.5", "cifar")].verdict == "pass"
    size = v[("Deep Compression at 90% >= 3x smaller than magnitude at 90%", "cifar")]
    assert size.estimate == pytest.approx(3.5) and size.verdict == "pass" and size.p is None
    assert v[("lottery > reinit control at 90%", "cifar")].verdict == "no rows"  # no control yet


def test_one_seed_cannot_decide(tmp_path):
    write_table(tmp_path, [("kd", "-", 98.5, 0.0, 1), ("student", "-", 98.4, 0.0, 1)])
    kd = verdicts(tmp_path)[("kd > student trained alone", "mlp")]
    assert kd.verdict == "inconclusive (one seed)" and kd.p is None and kd.estimate == pytest.approx(0.1)


def test_one_machine_rule_for_every_comparison(tmp_path):
    """The same rows on one machine, then with one row trained on another: a difference the 0.2-pt
    offset between machines could make or undo is no longer decided; a large one still is, and the
    four-row shrink check takes the margin once when one row moved (the others shift together)."""
    rows = [("dense", "-", 98.30, 0.01, 3),
            ("magnitude", "scope=global, sparsity=0.92", 98.05, 0.01, 3),  # 0.25 below: within 0.3
            ("magnitude", "scope=global, sparsity=0.95", 98.0, 0.01, 3), ("random", "sparsity=0.95", 90.0, 0.01, 3),
            *ONE_SHOT_80]
    write_table(tmp_path / "one", rows, machines=["Intel"] * len(rows))
    one = verdicts(tmp_path / "one")
    assert one[(HAN, "mlp")].verdict == "pass" and one[(HAN, "mlp")].machine_margin == 0
    write_table(tmp_path / "two", rows, machines=["AMD"] + ["Intel"] * (len(rows) - 1))
    two = verdicts(tmp_path / "two")
    assert two[(HAN, "mlp")].verdict == "inconclusive" and two[(HAN, "mlp")].machine_margin == pytest.approx(0.2)
    assert "machines: 0.2 pts" in checks.table(list(two.values()))
    random = two[("magnitude > random at 95%", "mlp")]
    assert random.verdict == "pass" and random.machine_margin == 0  # both rows from one machine
    assert one[(SHRINK, "mlp")].verdict == "pass" and one[(SHRINK, "mlp")].machine_margin == 0
    write_table(tmp_path / "mixed", rows, machines=["Intel"] * (len(rows) - 1) + ["AMD; Intel"])
    shrink = verdicts(tmp_path / "mixed")[(SHRINK, "mlp")]
    assert shrink.verdict == "pass" and shrink.machine_margin == pytest.approx(0.2)  # a 1.9-pt shrink still is


def test_the_readme_block_is_refreshed_and_checked(tmp_path, capsys):
    write_table(tmp_path, [("dense", "-", 98.30, 0.02, 3), ("ptq-int8", "calibration_batches=4", 98.30, 0.02, 3)])
    readme = tmp_path / "README.md"
    begin, end = checks.blocks.markers(checks.BLOCK)
    readme.write_text(f"# prose before\n\n{begin}\nold verdicts\n{end}\n\nprose after\n")
    args = ["--results", str(tmp_path), "--readme", str(readme)]
    assert checks.main([*args, "--check-readme"]) == 1
    assert f"block {checks.BLOCK} is stale" in capsys.readouterr().err
    assert checks.main([*args, "--write-readme"]) == 0
    text = readme.read_text()
    assert text.startswith(f"# prose before\n\n{begin}\n") and text.endswith(f"\n{end}\n\nprose after\n")
    assert "old verdicts" not in text and "| ptq-int8 = dense ± 0.5" in text
    assert checks.main([*args, "--check-readme"]) == 0
    write_table(tmp_path, [("dense", "-", 98.30, 0.02, 3), ("ptq-int8", "calibration_batches=4", 97.00, 0.02, 3)])
    assert checks.main([*args, "--check-readme"]) == 1  # the results moved on, the README did not
    assert checks.BLOCK in capsys.readouterr().err


def test_the_committed_readme_block_is_up_to_date():
    assert checks.main(["--check-readme"]) == 0


def test_p_values_are_welchs_for_two_rows_and_paired_by_seed_for_the_four_row_contrast(tmp_path):
    """Two rows: scipy's Welch test on the records' seed accuracies, at full precision. The shrink
    contrast (+1, -1, -1, +1 over four rows that share each seed's dense model) is tested per seed,
    a one-sample t: here its seeds move together, and it passes although each row's spread is wide."""
    kd, student = [98.52, 98.71, 98.60], [98.21, 98.64, 98.33]
    lead = [[96.0, 97.0, 95.0], [94.0, 95.1, 92.9], [98.0, 99.0, 97.0], [97.9, 98.8, 97.05]]
    write_table(tmp_path, [("kd", "-", kd), ("student", "-", student),
                           *((m, setting, values) for (m, setting, *_), values in zip(ONE_SHOT_80, lead))])
    v = verdicts(tmp_path)
    two = v[("kd > student trained alone", "mlp")]
    welch = stats.ttest_ind(kd, student, equal_var=False, alternative="greater")
    assert two.p == pytest.approx(welch.pvalue, rel=1e-9)
    interval = stats.ttest_ind(kd, student, equal_var=False).confidence_interval(0.90)
    assert two.ci == pytest.approx((interval.low, interval.high), rel=1e-9)
    shrink = v[(SHRINK, "mlp")]
    per_seed = [a - b - c + d for a, b, c, d in zip(*lead)]
    assert shrink.p == pytest.approx(stats.ttest_1samp(per_seed, 0, alternative="greater").pvalue, rel=1e-9)
    assert shrink.verdict == "pass"


def test_rows_whose_seeds_agree_exactly_are_not_decided(tmp_path):
    """No spread, no variance to test against: a p of 0 from three identical seeds would pass
    anything."""
    write_table(tmp_path, [("kd", "-", [98.5, 98.5, 98.5]), ("student", "-", [98.0, 98.0, 98.0])])
    kd = verdicts(tmp_path)[("kd > student trained alone", "mlp")]
    assert kd.verdict == "inconclusive (no spread)" and kd.p is None and kd.estimate == pytest.approx(0.5)


def test_a_leaderboard_older_than_its_records_is_refused_naming_the_command(tmp_path):
    """The checks pick rows from leaderboard.csv and take their seeds from the records: a table
    not rebuilt since a record went would pair rows with the wrong seeds."""
    write_table(tmp_path, [("kd", "-", 98.5, 0.1, 3), ("student", "-", 98.4, 0.1, 3)])
    next((tmp_path / "mlp" / "runs").glob("kd-*-s2.json")).unlink()
    with pytest.raises(SystemExit, match="rows whose records changed since it was written \\(kd -\\): rebuild it first "
                                         "with: bench leaderboard --suite mlp"):
        checks.run(tmp_path)


def test_a_paired_contrast_without_two_shared_seeds_says_so_not_one_seed():
    """Four rows of three seeds each, but no seed common to all of them: the per-seed contrast
    has no seeds to test over. Every row has three seeds, so "one seed" would misreport why."""
    def fig(seeds: list[int], values: list[float]) -> "checks.Figure":
        return checks.Figure(tuple(zip(seeds, values)), "Test CPU")

    rows = [fig([0, 1, 2], [96.0, 97.0, 95.0]), fig([0, 1, 2], [94.0, 95.1, 92.9]),
            fig([3, 4, 5], [98.0, 99.0, 97.0]), fig([3, 4, 5], [97.9, 98.8, 97.05])]
    d = checks.paired_difference(list(zip([1.0, -1.0, -1.0, 1.0], rows)))
    assert d.se is None
    check = checks.Check("mlp", SHRINK, "superiority", 0.0, "reasoning: retraining", "-", d)
    assert checks.decide([check])[0].verdict == "inconclusive (under 2 shared seeds)"
    one = checks.paired_difference([(1.0, fig([0], [96.0])), (-1.0, fig([0, 1, 2], [94.0, 95.1, 92.9]))])
    assert checks.decide([dataclasses.replace(check, difference=one)])[0].verdict == "inconclusive (one seed)"


def test_the_hand_written_tests_match_statsmodels_and_scipy():
    """difference, one_sided_tests and decide's Holm family are written out by hand (Welch-Satterthwaite,
    TOST, a one-sample t against a published figure), so they are pinned to the libraries' values on
    rows of unequal sizes and spreads: a wrong tail, df or family shows here, not only in a verdict.
    The reference numbers were computed with scipy 1.17.1 and statsmodels 0.15.0 (not installed here)."""
    def fig(values: list[float]) -> "checks.Figure":
        return checks.Figure(tuple(enumerate(values)), "Test CPU")

    a, b = fig([98.10, 98.35, 98.22]), fig([98.44, 98.47, 98.50, 98.46])
    family = [checks.compare("mlp", "equivalence", "equivalence", "-", a, b, 0.3),
              checks.compare("mlp", "non-inferiority", "non-inferiority", "-", a, b, 0.5),
              checks.compare("mlp", "superiority", "superiority", "-", a, b),
              checks.published_error("mlp", "published", "-", fig([97.60, 97.75, 97.58]), 1.6)]
    d = family[0].difference
    # scipy.stats.ttest_ind(a, b, equal_var=False): statistic, df
    assert d.estimate / d.se == pytest.approx(-3.332774783927565, rel=1e-9)
    assert d.df == pytest.approx(2.1204631937453517, rel=1e-9)
    expected = [
        # statsmodels.stats.weightstats.ttost_ind(a, b, -0.3, 0.3, usevar="unequal")[0]; then
        # scipy.stats.ttest_ind(a + 0.3, b, equal_var=False, alternative="less") and (a - 0.3, ..., "greater")
        {"pass": 0.2608273002876926, "miss low": 0.7391726997123453, "miss high": 0.9925119347300765},
        # scipy.stats.ttest_ind(a + 0.5, b, equal_var=False, alternative="greater" / "less")
        {"pass": 0.03359803305245103, "miss low": 0.966401966947549},
        # scipy.stats.ttest_ind(a, b, equal_var=False, alternative="greater" / "less")
        {"pass": 0.9633382944890219, "miss low": 0.03666170551097815},
        # error = 100 - accuracy: DescrStatsW(error).ttost_mean(1.1, 2.1)[0]; then
        # scipy.stats.ttest_1samp(error, 1.1, alternative="less") and (error, 2.1, alternative="greater")
        {"pass": 0.9794925837732983, "miss low": 0.9990913389091104, "miss high": 0.020507416226701682}]
    for check, want in zip(family, expected):
        assert checks.one_sided_tests(check) == pytest.approx(want, rel=1e-9), check.claim
    # statsmodels.stats.multitest.multipletests(the ten p above, method="holm")[1], at each check's
    # side: superiority's 0.0367 x 8 = 0.293 is raised to non-inferiority's 0.0336 x 9 (monotone)
    verdicts = checks.decide(family)
    assert [v.p_holm for v in verdicts] == pytest.approx([1.0, 0.30238229747205925, 0.30238229747205925,
                                                          0.20507416226701683], rel=1e-9)
    assert [(v.verdict, v.p_is_miss) for v in verdicts] == [
        ("inconclusive", False), ("inconclusive", False), ("inconclusive (wrong way)", True),
        ("inconclusive (wrong way)", True)]
    # scipy.stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.90): CI_LEVEL, with the one-sided tests
    assert verdicts[0].ci == pytest.approx((-0.4500296087673939, -0.03830372456597847), rel=1e-9)


def test_the_interval_clears_an_edge_exactly_where_the_raw_one_sided_p_is_below_alpha():
    """The printed interval is the one that goes with the raw p beside it: the tests are one-sided
    at ALPHA (TOST: two of them), so a 1 - 2 ALPHA (90%) interval lies beyond an edge of the
    claimed region (moved by the machines' margin) exactly where that edge's one-sided p < ALPHA.
    A 95% interval printed p 0.028 beside [-0.02, +0.75] (mlp, lottery > reinit at 95%): it
    read as a contradiction."""
    def fig(values: list[float], group: str = "Test CPU") -> "checks.Figure":
        return checks.Figure(tuple(enumerate(values)), group)

    a, b = fig([98.10, 98.35, 98.22]), fig([98.44, 98.47, 98.50, 98.46])
    lottery = fig([98.34, 98.36, 98.32]), fig([97.80, 98.10, 98.01])  # raw one-sided p about 0.03
    family = [checks.compare("mlp", "equivalence", "equivalence", "-", a, b, 0.3),
              checks.compare("mlp", "non-inferiority", "non-inferiority", "-", a, b, 0.5),
              checks.compare("mlp", "superiority", "superiority", "-", a, b),
              checks.compare("mlp", "lottery", "superiority", "-", *lottery),
              checks.compare("mlp", "machines", "superiority", "-", lottery[0], fig([97.80, 98.10, 98.01], "Other")),
              checks.published_error("mlp", "published", "-", fig([97.60, 97.75, 97.58]), 1.6)]
    verdicts = checks.decide(family)
    assert sum(0.025 < v.p < checks.ALPHA for v in verdicts) >= 3  # where a 95% interval disagrees
    for check, v in zip(family, verdicts):
        low, high = (e + s * check.difference.slack for e, s in zip(v.region, (1, -1) if not v.p_is_miss else (-1, 1)))
        if not v.p_is_miss:  # the pass test: the interval inside the region, the margin taken off
            clears = v.ci[0] > low and v.ci[1] < high
        else:  # a miss test: the interval beyond the edge on the estimate's side, the margin added
            clears = v.ci[1] < low if v.estimate <= v.region[0] else v.ci[0] > high
        assert clears == (v.p < checks.ALPHA), (check.claim, v.ci, v.p)
    assert "90% CI" in checks.CI_HEADER
