"""Checks of the committed leaderboards against published results, printed as a table.

The pruning issue and the quantization issue name what the standard leaderboards must show
(Han et al. 2015 at 92% sparsity, random below magnitude, the lottery-ticket effect, SNIP's
published errors, int8 within 0.5 pts of dense, ...). This script reads
`results/<suite>/leaderboard.csv` and prints each check with the figures it compared and a
verdict: pass, miss, or "not run yet" while a sweep is unfinished. It trains nothing.

    python benchmarks/literature_checks.py [--results results]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import pandas as pd
from tabulate import tabulate


def pick(table: pd.DataFrame, column: str, method: str, **params: object) -> float | None:
    """`column` of the one row of `method` whose setting has every `key=value` given (None if none)."""
    wanted = [f"{key}={value}" for key, value in params.items()]
    has = table.setting.str.split(", ").map(lambda parts: all(w in parts for w in wanted))
    rows = table[(table.method == method) & has.astype(bool)]
    if len(rows) > 1:
        raise ValueError(f"{method} {params}: {len(rows)} rows match, expected one")
    return None if rows.empty else float(rows[column].iloc[0])


def accuracy(table: pd.DataFrame, method: str, **params: object) -> float | None:
    return pick(table, "accuracy_mean_%", method, **params)


def size(table: pd.DataFrame, method: str, **params: object) -> float | None:
    return pick(table, "size_KiB", method, **params)


def verdict(test: Callable[..., bool], *values: float | None) -> str:
    """"not run yet" while any compared figure is missing, else the test's pass or miss."""
    if any(v is None for v in values):
        return "not run yet"
    return "pass" if test(*values) else "miss"


def checks(results: Path) -> list[list[str]]:
    rows: list[list[str]] = []

    def add(check: str, suite: str, measured: str, target: str, result: str) -> None:
        rows.append([check, suite, measured, target, result])

    def pts(a: float | None) -> str:
        return "-" if a is None else f"{a:.2f}"

    for suite, paper in (("mlp", "1.59% vs 1.64% error"), ("mnist", "0.77% vs 0.80% error")):
        path = results / suite / "leaderboard.csv"
        if not path.exists():
            continue
        t = pd.read_csv(path)
        t = t[t.data_source == "torchvision:MNIST"]
        dense = accuracy(t, "dense")
        for method in ("magnitude", "imp", "gmp"):
            a = accuracy(t, method, sparsity=0.92)
            add(f"{method} at 92% within 0.3 pts of dense (Han et al. 2015: {paper})", suite,
                f"{pts(a)} vs dense {pts(dense)}", ">= dense - 0.3", verdict(lambda a, d: a >= d - 0.3, a, dense))
        for s in (0.95, 0.98):
            r, m = accuracy(t, "random", sparsity=s), accuracy(t, "magnitude", sparsity=s)
            add(f"random below magnitude at {s:.0%}", suite, f"{pts(r)} vs {pts(m)}", "random < magnitude",
                verdict(lambda r, m: r < m, r, m))
        for s in (0.95, 0.98):
            lot = accuracy(t, "lottery", sparsity=s, reinit=False)
            ctl = accuracy(t, "lottery", sparsity=s, reinit=True)
            add(f"lottery above its reinit control at {s:.0%} (Frankle & Carbin 2019)", suite,
                f"{pts(lot)} vs {pts(ctl)}", "rewound > reinit", verdict(lambda lot, ctl: lot > ctl, lot, ctl))
        if suite == "mlp":
            for s, err in ((0.95, 1.6), (0.98, 2.4)):
                a = accuracy(t, "snip", sparsity=s)
                add(f"SNIP error at {s:.0%} near the published {err}% (Lee et al. 2019)", suite,
                    "-" if a is None else f"{100 - a:.2f}% error", f"within 0.5 pts of {err}%",
                    verdict(lambda a: abs(100 - a - err) <= 0.5, a))
        for method in ("ptq-int8", "qat"):
            a = accuracy(t, method)
            add(f"{method} within 0.5 pts of dense", suite, f"{pts(a)} vs {pts(dense)}", ">= dense - 0.5",
                verdict(lambda a, d: a >= d - 0.5, a, dense))
        a = accuracy(t, "uniform", bits=4)
        add("uniform 4-bit within 1 pt of dense", suite, f"{pts(a)} vs {pts(dense)}", ">= dense - 1",
            verdict(lambda a, d: a >= d - 1, a, dense))
        kd, student = accuracy(t, "kd"), accuracy(t, "student")
        add("kd above the student trained alone", suite, f"{pts(kd)} vs {pts(student)}", "kd > student",
            verdict(lambda kd, student: kd > student, kd, student))
        for s in (0.9, 0.95):
            chain = size(t, "magnitude+ptq-int8", **{"magnitude.sparsity": s})
            alone, int8 = size(t, "magnitude", sparsity=s), size(t, "ptq-int8")
            result = verdict(lambda c, m, q: c < min(m, q), chain, alone, int8)
            add(f"magnitude+ptq-int8 at {s:.0%} smaller than either link", suite,
                "-" if result == "not run yet" else f"{chain:.0f} vs {alone:.0f} / {int8:.0f} KiB",
                "chain < both", result)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--results", type=Path, default=Path("results"))
    args = p.parse_args()
    print(tabulate(checks(args.results), headers=["check", "suite", "measured", "target", "verdict"],
                   tablefmt="pipe"))


if __name__ == "__main__":
    main()
