"""Checks of the committed leaderboards against published results, decided over the seeds.

The issues name what the standard leaderboards must show (Han et al. 2015 at 92% sparsity,
random below magnitude, the lottery-ticket effect, SNIP's and Deep Compression's published
figures, int8 within 0.5 pts of dense, ...). A difference between two means is only a result
when the seeds say so, so every accuracy check is a one-sided Welch t-test at 5% over the seeds
of the leaderboard rows (mean, sample std and seed count from `leaderboard.csv`):

- "A above B":             pass if A > B is significant, miss if A < B is, else inconclusive;
- "A within m pts of B":   pass if A > B - m is significant (non-inferiority), miss if
                           A < B - m is, else inconclusive;
- "near a published value": pass if the 95% confidence interval of the mean lies within the
                           tolerance, miss if it lies wholly outside, else inconclusive.

Rows made on different machine models (the leaderboard's `machines` column) differ by up to
0.18 pts for the same code and seed (README, Literature checks), more than the seeds do: a
comparison across machines must clear MACHINE_MARGIN more, in the direction of its verdict, and
says so. A row with one seed cannot decide anything: inconclusive. Sizes are deterministic and
compared plainly. A missing row is "not run yet". It trains nothing.

    python benchmarks/literature_checks.py [--results results]
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from scipy import stats
from tabulate import tabulate

ALPHA = 0.05
# pts: the largest offset measured between two CPU models (0.18, dense on mlp, README), rounded
# up; applied to any two machine models, a CPU and a GPU included, until one is measured there
MACHINE_MARGIN = 0.2
CALIBRATION = 1024  # the one-shot methods' default calibration images (methods/sparsegpt.py says why)


@dataclass(frozen=True)
class Figure:
    """A leaderboard cell over seeds: mean, sample standard deviation and number of seeds."""

    mean: float
    std: float
    n: int
    machines: frozenset[str] = frozenset()

    def __str__(self) -> str:
        return f"{self.mean:.2f} ± {self.std:.2f} (n={self.n})"


def pick(table: pd.DataFrame, method: str, **params: object) -> pd.Series | None:
    """The one row of `method` whose setting has every `key=value` given (None if none)."""
    wanted = [f"{key}={value}" for key, value in params.items()]
    has = table.setting.str.split(", ").map(lambda parts: all(w in parts for w in wanted))
    rows = table[(table.method == method) & has.astype(bool)]
    if len(rows) > 1:
        raise ValueError(f"{method} {params}: {len(rows)} rows match, expected one")
    return None if rows.empty else rows.iloc[0]


def accuracy(table: pd.DataFrame, method: str, **params: object) -> Figure | None:
    row = pick(table, method, **params)
    return None if row is None else figure(row)


def figure(row: pd.Series) -> Figure:
    """A leaderboard row's accuracy over seeds, with the machines that trained them."""
    machines = row.get("machines")  # leaderboards written before the column: unknown, taken as one
    return Figure(float(row["accuracy_mean_%"]), float(row["accuracy_std_%"]), int(row["seeds"]),
                  frozenset(machines.split("; ")) if isinstance(machines, str) else frozenset())


def across_machines(*figures: Figure) -> bool:
    """Whether the figures' seeds were trained on more than one machine model: then the offset
    between machines, larger than the seeds' spread, could make or undo the difference."""
    return len(frozenset().union(*(f.machines for f in figures))) > 1


def size(table: pd.DataFrame, method: str, **params: object) -> float | None:
    row = pick(table, method, **params)
    return None if row is None else float(row["size_KiB"])


def welch_p(a: Figure, b: Figure, shift: float, alternative: str) -> float | None:
    """p-value of the one-sided Welch test of a.mean + shift against b.mean; None when a side
    has one seed (no variance to test with)."""
    if a.n < 2 or b.n < 2:
        return None
    if a.std == 0 and b.std == 0:  # identical seeds: the sign of the difference decides
        d = a.mean + shift - b.mean
        return 0.0 if (d > 0 if alternative == "greater" else d < 0) else 1.0
    return float(stats.ttest_ind_from_stats(a.mean + shift, a.std, a.n, b.mean, b.std, b.n,
                                            equal_var=False, alternative=alternative).pvalue)


def above(a: Figure | None, b: Figure | None, margin: float = 0.0) -> tuple[str, str]:
    """(verdict, criterion) of "a > b - margin" over the seeds."""
    if a is None or b is None:
        return "not run yet", "-"
    slack = MACHINE_MARGIN if across_machines(a, b) else 0.0
    greater, less = welch_p(a, b, margin - slack, "greater"), welch_p(a, b, margin + slack, "less")
    if greater is None:
        return "inconclusive", "one seed: no test"
    note = f", across machines: {slack} pts more" if slack else ""
    if greater < ALPHA:
        return "pass", f"Welch one-sided p={greater:.3f}{note}"
    if less < ALPHA:
        return "miss", f"Welch one-sided p={less:.3f} the other way{note}"
    return "inconclusive", f"Welch one-sided p={greater:.3f}{note}"


def near(a: Figure | None, target: float, tolerance: float, of=lambda m: m) -> tuple[str, str]:
    """(verdict, criterion) of "of(mean) within tolerance of target", by the 95% t interval."""
    if a is None:
        return "not run yet", "-"
    if a.n < 2:
        return "inconclusive", "one seed: no interval"
    half = stats.t.ppf(0.975, a.n - 1) * a.std / math.sqrt(a.n)
    low, high = sorted((of(a.mean - half), of(a.mean + half)))
    criterion = f"95% CI [{low:.2f}, {high:.2f}]"
    if target - tolerance <= low and high <= target + tolerance:
        return "pass", criterion
    if high < target - tolerance or low > target + tolerance:
        return "miss", criterion
    return "inconclusive", criterion


def shrinks(gap: tuple[Figure | None, Figure | None], later: tuple[Figure | None, Figure | None]) -> tuple[str, str]:
    """(verdict, criterion) of "the accuracy gap a - b is smaller in `later` than in `gap`": a
    one-sided t-test on the difference of the two differences, with Welch-Satterthwaite degrees
    of freedom (3 seeds a row: a normal approximation would pass too easily)."""
    figures = [*gap, *later]
    if any(f is None for f in figures):
        return "not run yet", "-"
    if any(f.n < 2 for f in figures):
        return "inconclusive", "one seed: no test"
    (a, b), (c, d) = gap, later
    diff = (a.mean - b.mean) - (c.mean - d.mean)
    # a difference of two differences can carry the offset between machines twice
    slack = 2 * MACHINE_MARGIN if across_machines(*figures) else 0.0
    note = f", across machines: {slack:.1f} pts more" if slack else ""
    parts = [f.std ** 2 / f.n for f in figures]
    se = math.sqrt(sum(parts))
    if se == 0:
        return ("pass" if diff > slack else "miss" if diff < -slack else "inconclusive"), "identical seeds" + note
    df = se ** 4 / sum(v ** 2 / (f.n - 1) for v, f in zip(parts, figures))  # Welch-Satterthwaite
    critical = float(stats.t.ppf(1 - ALPHA, df))
    t_pass, t_miss = (diff - slack) / se, (diff + slack) / se
    verdict = "pass" if t_pass > critical else "miss" if t_miss < -critical else "inconclusive"
    t = t_miss if verdict == "miss" else t_pass
    return verdict, f"t={t:.2f} (one-sided 5%: {critical:.2f}, df={df:.1f}){note}"


def checks(results: Path) -> list[list[str]]:
    rows: list[list[str]] = []

    def add(check: str, suite: str, measured: str, target: str, decided: tuple[str, str]) -> None:
        rows.append([check, suite, measured, target, decided[1], decided[0]])

    def show(*figures: Figure | None) -> str:
        return " vs ".join("-" if f is None else str(f) for f in figures)

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
                show(a, dense), "> dense - 0.3", above(a, dense, 0.3))
        for s in (0.95, 0.98):
            r, m = accuracy(t, "random", sparsity=s), accuracy(t, "magnitude", sparsity=s)
            add(f"random below magnitude at {s:.0%}", suite, show(r, m), "random < magnitude", above(m, r))
        for s in (0.95, 0.98):
            lot = accuracy(t, "lottery", sparsity=s, reinit=False)
            ctl = accuracy(t, "lottery", sparsity=s, reinit=True)
            add(f"lottery above its reinit control at {s:.0%} (Frankle & Carbin 2019)", suite,
                show(lot, ctl), "rewound > reinit", above(lot, ctl))
        lot = accuracy(t, "lottery", sparsity=0.95, reinit=False)
        add("lottery ticket at 95% (5% of weights) within 0.5 pts of dense (Frankle & Carbin 2019: "
            "LeNet-300-100 tickets keep it down to ~3.5%)", suite, show(lot, dense), "> dense - 0.5",
            above(lot, dense, 0.5))
        snip = {"mlp": ((0.95, 1.6), (0.98, 2.4)), "mnist": ((0.98, 0.8), (0.99, 1.1))}[suite]
        for s, err in snip:
            a = accuracy(t, "snip", sparsity=s)
            add(f"SNIP error at {s:.0%} near the published {err}% (Lee et al. 2019)", suite,
                "-" if a is None else f"{100 - a.mean:.2f}% error (n={a.n})", f"within 0.5 pts of {err}%",
                near(a, err, 0.5, of=lambda m: 100 - m))
        ratio, err = {"mlp": (40, 1.58), "mnist": (39, 0.74)}[suite]
        dc = t[(t.method == "deep-compression") & (t["compression_x"] >= ratio)]
        best = None if dc.empty else dc.sort_values("accuracy_mean_%").iloc[-1]
        a = None if best is None else figure(best)
        add(f"Deep Compression at {ratio}x or more: error near the published {err}% (Han et al. 2016)",
            suite, "-" if a is None else f"{100 - a.mean:.2f}% error at {best['compression_x']:.0f}x (n={a.n})",
            f"within 0.5 pts of {err}%", near(a, err, 0.5, of=lambda m: 100 - m))
        for method in ("ptq-int8", "qat"):
            a = accuracy(t, method)
            add(f"{method} within 0.5 pts of dense", suite, show(a, dense), "> dense - 0.5", above(a, dense, 0.5))
        a = accuracy(t, "uniform", bits=4)
        add("uniform 4-bit within 1 pt of dense", suite, show(a, dense), "> dense - 1", above(a, dense, 1.0))
        kd, student = accuracy(t, "kd"), accuracy(t, "student")
        add("kd above the student trained alone", suite, show(kd, student), "kd > student", above(kd, student))
        one_shot = {"finetune": False, "n": 0}
        calibrated = {"calibration_samples": CALIBRATION}
        for s in (0.5, 0.8, 0.9):
            base = accuracy(t, "magnitude-oneshot", sparsity=s, **one_shot)
            for method, paper in (("sparsegpt", "Frantar & Alistarh 2023"), ("wanda", "Sun et al. 2024")):
                a = accuracy(t, method, sparsity=s, **one_shot, **calibrated)
                add(f"{method} above one-shot magnitude at {s:.0%}, no fine-tuning ({paper})", suite,
                    show(a, base), f"{method} > magnitude", above(a, base))
        few, many = (accuracy(t, "sparsegpt", sparsity=0.9, **one_shot, calibration_samples=n) for n in (128, CALIBRATION))
        add(f"sparsegpt at 90%: {CALIBRATION} calibration images above 128", suite, show(many, few),
            f"{CALIBRATION} > 128", above(many, few))
        base = accuracy(t, "magnitude-oneshot", n=2, m=4, finetune=False)
        for method in ("sparsegpt", "wanda"):
            a = accuracy(t, method, n=2, m=4, finetune=False, **calibrated)
            add(f"{method} above one-shot magnitude at 2:4, no fine-tuning", suite, show(a, base),
                f"{method} > magnitude", above(a, base))
        g = accuracy(t, "gptq", bits=3, finetune=False, **calibrated)
        r = accuracy(t, "rtn", bits=3, finetune=False)
        add("gptq above round-to-nearest at 3 bits (Frantar et al. 2023)", suite, show(g, r), "gptq > rtn", above(g, r))
        pairs = [accuracy(t, m, sparsity=0.8, n=0, finetune=ft, **(calibrated if m == "sparsegpt" else {}))
                 for ft in (False, True) for m in ("sparsegpt", "magnitude-oneshot")]
        add("fine-tuning shrinks sparsegpt's lead over one-shot magnitude at 80%", suite,
            " / ".join("-" if f is None else f"{f.mean:.2f}" for f in pairs), "gap with < gap without",
            shrinks((pairs[0], pairs[1]), (pairs[2], pairs[3])))
        for s in (0.9, 0.95):
            chain = size(t, "magnitude+ptq-int8", **{"magnitude.sparsity": s})
            alone, int8 = size(t, "magnitude", sparsity=s), size(t, "ptq-int8")
            if None in (chain, alone, int8):
                add(f"magnitude+ptq-int8 at {s:.0%} smaller than either link", suite, "-", "chain < both",
                    ("not run yet", "-"))
                continue
            add(f"magnitude+ptq-int8 at {s:.0%} smaller than either link", suite,
                f"{chain:.0f} vs {alone:.0f} / {int8:.0f} KiB", "chain < both",
                ("pass" if chain < min(alone, int8) else "miss", "sizes are deterministic"))
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--results", type=Path, default=Path("results"))
    args = p.parse_args()
    print(tabulate(checks(args.results), headers=["check", "suite", "measured", "target", "criterion", "verdict"],
                   tablefmt="pipe"))


if __name__ == "__main__":
    main()
