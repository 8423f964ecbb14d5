import subprocess
import sys
from pathlib import Path

import pandas as pd

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "literature_checks.py"


def verdicts(results: Path) -> dict[tuple[str, str], str]:
    out = subprocess.run([sys.executable, str(SCRIPT), "--results", str(results)],
                         capture_output=True, text=True, check=True).stdout
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in out.splitlines()[2:]]
    return {(check, suite): verdict for check, suite, _, _, verdict in rows}


def test_checks_read_the_leaderboard_and_tell_pass_miss_and_missing_rows(tmp_path):
    rows = [("dense", "-", 98.3), ("magnitude", "scope=global, sparsity=0.92", 98.1),
            ("magnitude", "scope=global, sparsity=0.9", 90.0),  # must not be taken for 0.92
            ("imp", "rounds=5, sparsity=0.92", 97.9),  # 0.4 pts below dense: a miss
            ("random", "sparsity=0.95", 90.0), ("magnitude", "scope=global, sparsity=0.95", 98.0),
            ("lottery", "reinit=False, rounds=5, sparsity=0.95", 97.5),
            ("lottery", "reinit=True, rounds=5, sparsity=0.95", 97.8)]  # control wins: a miss
    table = pd.DataFrame(rows, columns=["method", "setting", "accuracy_mean_%"])
    table["data_source"], table["size_KiB"] = "torchvision:MNIST", 100.0
    (tmp_path / "mlp").mkdir()
    table.to_csv(tmp_path / "mlp" / "leaderboard.csv", index=False)
    v = verdicts(tmp_path)
    han = "at 92% within 0.3 pts of dense (Han et al. 2015: 1.59% vs 1.64% error)"
    assert v[(f"magnitude {han}", "mlp")] == "pass"
    assert v[(f"imp {han}", "mlp")] == "miss"
    assert v[(f"gmp {han}", "mlp")] == "not run yet"
    assert v[("random below magnitude at 95%", "mlp")] == "pass"
    assert v[("lottery above its reinit control at 95% (Frankle & Carbin 2019)", "mlp")] == "miss"
    assert not any(suite == "mnist" for _, suite in v)  # no leaderboard, no rows
