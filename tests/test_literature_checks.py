import importlib.util
import sys
from pathlib import Path

import pandas as pd
import pytest

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


def write_table(results: Path, rows: list[tuple], suite: str = "mlp", machines: list[str] | None = None,
                **columns: list[float]) -> None:
    """A leaderboard.csv of (method, setting, mean, std, seeds) rows, in the table the suite's
    checks read; `columns` adds per-row columns (size_KiB, compression_x, flops)."""
    table = pd.DataFrame(rows, columns=["method", "setting", "accuracy_mean_%", "accuracy_std_%", "seeds"])
    table["data_source"], table["device"] = checks.SUITES[suite]
    table["size_KiB"], table["compression_x"], table["flops_M"], table["flops_effective_M"] = 100.0, 1.0, 1.0, 1.0
    for name, values in columns.items():
        table[name] = values
    if machines:
        table["machines"] = machines
    (results / suite).mkdir(parents=True, exist_ok=True)
    table.to_csv(results / suite / "leaderboard.csv", index=False)


def verdicts(results: Path) -> dict[tuple[str, str], "checks.Verdict"]:
    return {(v.claim, v.suite): v for v in checks.run(results)}


def test_holm_adjusts_as_holm_1979():
    # sorted: 0.005 x 4, 0.01 x 3, 0.03 x 2, 0.04 x 1 -> 0.02, 0.03, 0.06, then kept non-decreasing
    assert checks.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert checks.holm([0.5, 0.9]) == [1.0, 1.0]


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
