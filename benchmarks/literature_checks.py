"""Checks of the committed leaderboards against published results, decided over the seeds.

The issues name what the standard leaderboards must show (Han et al. 2015 at 92% sparsity, random
below magnitude, the lottery-ticket effect, SNIP's and Deep Compression's published figures, int8
near dense, ...). Each check claims where a difference d, in accuracy points, between leaderboard
rows (or between a row and a published figure) lies; its source or reasoning is written beside it:

- superiority      "A > B":      d = A - B > 0;
- non-inferiority  "A >= B - m": d > -m, where the source allows A above B (only a loss
                                 contradicts it): one one-sided test;
- equivalence      "A = B ± m":  -m < d < m, where the source reports a match (a large gain
                                 contradicts it as much as a large loss): TOST, two one-sided tests;
- size             "A r times smaller than B": sizes move by under 1% between seeds (Huffman codes
                                 depend on the weights), so the rows' mean sizes are compared
                                 plainly, no test.

Rows are picked from the suite's `leaderboard.csv`; each row's accuracies are its records', seed by
seed, at full precision (the table's rounded mean and std moved p-values up to 3x). A difference of
two rows is estimated with Welch's t (Welch-Satterthwaite degrees of freedom, as 3 seeds a row
need), which treats the rows' seeds as independent. They are not: seed s of every row starts from
seed s's dense model, initialization and data order. For A - B that makes Welch conservative as
long as a row's seeds move together with the other row's (a better dense model, a better pruned
one), which is why it is used there (2-4 degrees of freedom, where a paired test has 2). The bound
holds where the rows' spreads are alike: with 3 seeds a row and standard deviations tenfold apart,
Welch rejects more often than its level at the small levels Holm tests the first checks at, even
with correlated seeds (benchmarks/welch_error_rate.py simulates it). Read a pass whose rows'
spreads differ that much with this in mind; the leaderboard CSV gives each row's std. A contrast
of more rows with mixed signs has no such bound (the shared-seed covariances can add to its
variance), so it is tested paired: d per seed, over the seeds all its rows have, with a one-sample
t (n - 1 degrees of freedom). A comparison with a published figure is a one-sample t too. Rows whose
seeds agree exactly give no variance to test against: "inconclusive (no spread)", outside the family.

Verdicts. A check passes when the one-sided test(s) of its claim reject "the claim fails", and
misses when a one-sided test against it rejects "the claim holds" (d at or below the claimed
region's lower edge, or at or above its upper edge). The family is every one-sided test of every
check printed together, all suites, pass and miss sides alike: Holm's step-down procedure
(Holm 1979) adjusts their p-values, and a test rejects when its adjusted p < ALPHA, so the chance
of any wrong pass or miss in the whole table is at most 5%, whatever the dependence between the
checks (many share a dense row). Anything else is "inconclusive", and "inconclusive (wrong way)"
when the estimate lies outside the claimed region. A row with one seed has no variance:
"inconclusive (one seed)"; a per-seed contrast whose rows share fewer than 2 seeds has none either:
"inconclusive (under 2 shared seeds)". A row not in the leaderboard: "no rows". Per check the table prints the
estimate with its unadjusted two-sided 90% confidence interval, the one that goes with one-sided
tests at 5% (CI_LEVEL: it clears an edge of the claimed region, moved by the machines' margin,
exactly where the raw p of that edge's test is below 5%; a 95% one beside a raw p of 0.03 read as
a contradiction), not the verdict's test, which is Holm-adjusted; the raw p of the test on the estimate's
side (the pass test when the estimate lies in the claimed region, else the miss test on its side,
then marked "(miss)": its small p speaks against the claim) and that test's Holm-adjusted p.

Machines: one rule, for every check. The same code and seed moved by several seed standard
deviations between two CPU models (README, Checks against published results; a rerun whose records
were not kept), and one machine's seeds do not sample that offset. So the rows trained on one machine model (the
leaderboard's `machines` column; a row whose seeds come from several models counts as a model of
its own) may all sit up to MACHINE_MARGIN above or below the rows of any other, and a check must
clear the most that can move d, against whichever verdict it reaches: MACHINE_MARGIN times the
weight of d's rows on one side (A - B across two models: 0.2 pts; every row from one model: 0).
A published figure carries none: its setup differs anyway, which the check's tolerance covers.

Suites: `mlp` and `mnist` (MNIST, the CPU rows) and `cifar` (the JPEG copy of CIFAR-10, the GPU
rows), each read from its standard leaderboard; `cifar` has no published figures for its
ResNet-20, so its checks are relative within the suite. It trains nothing.

    python benchmarks/literature_checks.py [--results DIR] [--write-readme | --check-readme]

`--write-readme` refreshes README.md's block of verdicts (block BLOCK, see benchmarks/blocks.py)
and results/checks.json, the verdicts that `bench leaderboard --html` shows on each suite's page;
`--check-readme` exits 1 when either differs from what the results give. `run(results)` returns the verdicts
as `Verdict` rows, for other tools.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from scipy import stats
from tabulate import tabulate

sys.path.insert(0, str(Path(__file__).resolve().parent))

import blocks  # noqa: E402
from bench import board, records  # noqa: E402
from bench.compare import holm, p_text as p_text_of  # noqa: E402 - as bench compare tests and prints
from bench.layout import CHECKS  # noqa: E402 - the verdicts for the site, in the results folder
from bench.leaderboard import table_path  # noqa: E402

ALPHA = 0.05  # the family-wise error rate of the whole table
# pts: the offset the rows of two machine models may have (bench.records.MACHINE_MARGIN says why),
# the same that `bench compare` applies
MACHINE_MARGIN = records.MACHINE_MARGIN
CALIBRATION = 1024  # the one-shot methods' default calibration images (methods/sparsegpt.py says why)
# the leaderboard table each suite's checks read: (data source, device type); rows of one table
# may be compared (bench.board.TABLE)
SUITES = {"mlp": ("torchvision:MNIST", "cpu"), "mnist": ("torchvision:MNIST", "cpu"),
          "cifar": ("image-folder:cifar10-jpeg", "cuda")}
ROOT = Path(__file__).resolve().parents[1]
BLOCK = "literature-checks"  # the README's block of verdicts (benchmarks/blocks.py)
# The interval printed beside each check: 1 - 2 ALPHA, the one that goes with its one-sided tests at
# ALPHA (a 95% one printed p 0.028 beside [-0.02, +0.75]): it lies beyond an edge of the claimed
# region (moved by the machines' margin) exactly where that edge's raw one-sided p < ALPHA, and
# inside an equivalence region exactly where TOST's raw p is (Schuirmann 1987).
CI_LEVEL = 1 - 2 * ALPHA
CI_HEADER = f"d [unadjusted {CI_LEVEL:.0%} CI]"
# Lee et al. 2019 (SNIP), Table 1: LeNet-300-100 at 95 / 98% sparsity 1.6 / 2.4% error,
# LeNet-5-Caffe at 98 / 99% 0.8 / 1.1%: (sparsity, error %) per suite
SNIP_ERRORS = {"mlp": ((0.95, 1.6), (0.98, 2.4)), "mnist": ((0.98, 0.8), (0.99, 1.1))}
REGIONS = {"superiority": lambda m: (0.0, math.inf), "non-inferiority": lambda m: (-m, math.inf),
           "equivalence": lambda m: (-m, m), "size": lambda r: (r, math.inf)}


@dataclass(frozen=True)
class Figure:
    """A leaderboard row's accuracy (%) per seed, from its records at full precision (the table's
    mean and std are rounded to 0.01, which moved p-values up to 3x), and the machine group that
    trained them."""

    by_seed: tuple[tuple[int, float], ...]
    group: str

    @property
    def n(self) -> int:
        return len(self.by_seed)

    @property
    def mean(self) -> float:
        return statistics.fmean(a for _, a in self.by_seed)

    @property
    def std(self) -> float:
        return statistics.stdev(a for _, a in self.by_seed) if self.n > 1 else 0.0

    def __str__(self) -> str:
        return f"{self.mean:.2f} ± {self.std:.2f} (n={self.n})"


@dataclass(frozen=True)
class Difference:
    """d = a weighted sum of row means (plus a constant), in pts: its estimate, standard error and
    degrees of freedom (None and NaN when untestable, `untested` saying why) and the margin its
    rows' machines add."""

    estimate: float
    se: float | None
    df: float
    slack: float
    untested: str = "one seed"


@dataclass(frozen=True)
class Check:
    """One claim before the family's correction: what it compares and where d must lie."""

    suite: str
    claim: str
    kind: str  # a key of REGIONS
    margin: float  # equivalence and non-inferiority: m; size: the ratio r; superiority: 0
    source: str
    measured: str
    difference: Difference | None  # None: a row is missing

    @property
    def region(self) -> tuple[float, float]:
        return REGIONS[self.kind](self.margin)


@dataclass(frozen=True)
class Verdict:
    """A decided check, as the table prints it: d's estimate (size: the ratio) and unadjusted
    CI_LEVEL (90%) CI, the raw and Holm-adjusted p of the test on the estimate's side, the claimed region of d and
    the margin its machines added."""

    suite: str
    claim: str
    kind: str
    source: str
    measured: str
    estimate: float | None
    ci: tuple[float, float] | None
    p: float | None
    p_holm: float | None
    verdict: str
    region: tuple[float, float]
    machine_margin: float
    p_is_miss: bool  # p and p_holm are a miss test's: small speaks against the claim


def rows(table: pd.DataFrame, method: str, **params: object) -> pd.DataFrame:
    """The rows of `method` whose setting has every `key=value` given."""
    wanted = [f"{key}={value}" for key, value in params.items()]
    has = table.setting.str.split(", ").map(lambda parts: all(w in parts for w in wanted))
    return table[(table.method == method) & has.astype(bool)]


def pick(table: pd.DataFrame, method: str, **params: object) -> pd.Series | None:
    """The one row of `method` whose setting has every `key=value` given (None if none)."""
    found = rows(table, method, **params)
    if len(found) > 1:
        raise ValueError(f"{method} {params}: {len(found)} rows match, expected one")
    return None if found.empty else found.iloc[0]


def figure(row: pd.Series | None) -> Figure | None:
    """A row's accuracy over seeds. Its machine group: the one machine model that trained its
    seeds, or the row itself when they came from several (its offset is its own mix)."""
    if row is None:
        return None
    machines = row.get("machines")  # leaderboards written before the column: unknown, taken as one
    group = machines if isinstance(machines, str) else "?"
    if "; " in group:
        group = f"{group} ({row['method']}, {row['setting']})"
    return Figure(tuple(sorted(row["by_seed"].items())), group)


def sparsity(row: pd.Series) -> str:
    """The `sparsity=...` part of a row's setting, to say which row a check chose."""
    return next(part for part in row["setting"].split(", ") if part.startswith("sparsity="))


def accuracy(table: pd.DataFrame, method: str, **params: object) -> Figure | None:
    return figure(pick(table, method, **params))


def difference(terms: list[tuple[float, Figure]], constant: float = 0.0) -> Difference:
    """sum(weight * mean) + constant, with Welch-Satterthwaite degrees of freedom, and the machine
    margin: MACHINE_MARGIN times the smaller of the positive and negative weight sums over the
    machine groups (the most d moves when each group's rows shift together within the margin)."""
    estimate = sum(w * f.mean for w, f in terms) + constant
    by_group: dict[str, float] = {}
    for w, f in terms:
        by_group[f.group] = by_group.get(f.group, 0.0) + w
    slack = MACHINE_MARGIN * min(sum(w for w in by_group.values() if w > 0),
                                 -sum(w for w in by_group.values() if w < 0))
    if any(f.n < 2 for _, f in terms):
        return Difference(estimate, None, math.nan, slack)
    parts = [(w * f.std) ** 2 / f.n for w, f in terms]
    se = math.sqrt(sum(parts))
    df = se ** 4 / sum(v ** 2 / (f.n - 1) for v, (_, f) in zip(parts, terms)) if se > 0 else math.inf
    return Difference(estimate, se, df, slack)


def paired_difference(terms: list[tuple[float, Figure]]) -> Difference:
    """sum(weight * accuracy) per seed, over the seeds every row has: its mean, standard error and
    n - 1 degrees of freedom (a one-sample t), with `difference`'s machine margin."""
    common = set.intersection(*(set(dict(f.by_seed)) for _, f in terms))
    per_seed = [sum(w * dict(f.by_seed)[s] for w, f in terms) for s in sorted(common)]
    slack = difference(terms).slack
    if len(per_seed) < 2:
        # every row may have seeds to spare: say "one seed" only when one has
        why = "one seed" if any(f.n < 2 for _, f in terms) else "under 2 shared seeds"
        return Difference(sum(w * f.mean for w, f in terms), None, math.nan, slack, why)
    return Difference(statistics.fmean(per_seed), statistics.stdev(per_seed) / math.sqrt(len(per_seed)),
                      len(per_seed) - 1, slack)


def p_above(d: Difference, bound: float) -> float:
    """One-sided p of "d > bound" (null: d <= bound)."""
    return float(stats.t.sf((d.estimate - bound) / d.se, d.df))


def p_below(d: Difference, bound: float) -> float:
    """One-sided p of "d < bound" (null: d >= bound)."""
    return float(stats.t.cdf((d.estimate - bound) / d.se, d.df))


def one_sided_tests(check: Check) -> dict[str, float]:
    """The check's members of the family, by what a rejection means: "pass" (the claim; TOST's
    p is the larger of its two one-sided p), "miss low" and "miss high" (d beyond an edge of the
    claimed region). Each edge is moved by the machine margin against the verdict it decides."""
    d, (low, high) = check.difference, check.region
    tests = {"pass": max(p_above(d, low + d.slack) if low > -math.inf else 0.0,
                         p_below(d, high - d.slack) if high < math.inf else 0.0)}
    if low > -math.inf:
        tests["miss low"] = p_below(d, low - d.slack)
    if high < math.inf:
        tests["miss high"] = p_above(d, high + d.slack)
    return tests


def decide(checks: list[Check]) -> list[Verdict]:
    """The verdicts of all checks, tested as one family (module docstring)."""
    tested = [c.kind != "size" and c.difference is not None and bool(c.difference.se) for c in checks]
    family = [(i, side, p) for i, c in enumerate(checks) if tested[i] for side, p in one_sided_tests(c).items()]
    adjusted = dict(zip(((i, side) for i, side, _ in family), holm([p for _, _, p in family])))
    raw = {(i, side): p for i, side, p in family}
    verdicts = []
    for i, c in enumerate(checks):
        d, (low, high) = c.difference, c.region
        estimate = None if d is None else d.estimate
        inside = d is not None and low < d.estimate < high
        ci, p, p_holm = None, None, None
        if d is None:
            verdict = "no rows"
        elif c.kind == "size":
            verdict = "pass" if d.estimate >= low else "miss"
        elif not tested[i]:
            verdict = f"inconclusive ({d.untested})" if d.se is None else "inconclusive (no spread)"
        else:
            half = float(stats.t.ppf(1 - ALPHA, d.df)) * d.se  # CI_LEVEL, two-sided
            ci = (d.estimate - half, d.estimate + half)
            side = "pass" if inside else "miss low" if d.estimate <= low else "miss high"
            p, p_holm = raw[(i, side)], adjusted[(i, side)]
            if adjusted[(i, "pass")] < ALPHA:
                verdict = "pass"
            elif any(adjusted.get((i, s), 1.0) < ALPHA for s in ("miss low", "miss high")):
                verdict = "miss"
            else:
                verdict = "inconclusive" if inside else "inconclusive (wrong way)"
        verdicts.append(Verdict(c.suite, c.claim, c.kind, c.source, c.measured, estimate, ci, p, p_holm,
                                verdict, c.region, 0.0 if d is None else d.slack, p is not None and side != "pass"))
    return verdicts


def compare(suite: str, claim: str, kind: str, source: str, a: Figure | None, b: Figure | None,
            margin: float = 0.0, note: str = "") -> Check:
    """The check of d = a - b against `kind`'s region; `note` says which row was chosen."""
    measured = " vs ".join("-" if f is None else str(f) for f in (a, b)) + note
    d = None if a is None or b is None else difference([(1.0, a), (-1.0, b)])
    return Check(suite, claim, kind, margin, source, measured, d)


def published_error(suite: str, claim: str, source: str, a: Figure | None, error: float, where: str = "") -> Check:
    """Equivalence of a row's error (100 - accuracy) with a published error, within 0.5 pts: a
    reproduction of a number is two-sided, too low an error misses it as much as too high."""
    measured = "-" if a is None else f"{100 - a.mean:.2f}% error (n={a.n}){where} vs {error}%"
    d = None if a is None else difference([(-1.0, a)], constant=100 - error)
    return Check(suite, claim, "equivalence", 0.5, source, measured, d)


def mnist_checks(suite: str, t: pd.DataFrame) -> list[Check]:
    """The checks of the two MNIST suites, `mlp` (LeNet-300-100) and `mnist` (LeNet-5)."""
    checks: list[Check] = []
    dense = accuracy(t, "dense")
    for method in ("magnitude", "imp", "gmp"):
        # Han et al. 2015, Table 1: 92% of the weights pruned (12x), LeNet-300-100 at 1.59% error
        # vs 1.64% dense, LeNet-5 at 0.77% vs 0.80%. Equivalence: the paper reports a match, and a
        # pruned row far above its dense row would not reproduce it either (it would point at an
        # under-trained dense model). The margin, 0.3 pts, is the issue's.
        checks.append(compare(suite, f"{method} at 92% = dense ± 0.3", "equivalence", "Han et al. 2015, Table 1",
                              accuracy(t, method, sparsity=0.92), dense, 0.3))
    for s in (0.95, 0.98):
        # Reasoning: random pruning is the control every pruning criterion must beat (Blalock et
        # al. 2020 report criteria against it); at 95 and 98% pruning bites.
        checks.append(compare(suite, f"magnitude > random at {s:.0%}", "superiority", "reasoning: the control",
                              accuracy(t, "magnitude", sparsity=s), accuracy(t, "random", sparsity=s)))
    for s in (0.95, 0.98):
        # Frankle & Carbin 2019, Fig. 4: LeNet-300-100 tickets rewound to their initialization
        # learn faster and reach higher accuracy than the same masks reinitialized at random.
        checks.append(compare(suite, f"lottery > reinit control at {s:.0%}", "superiority",
                              "Frankle & Carbin 2019, Fig. 4", accuracy(t, "lottery", sparsity=s, reinit=False),
                              accuracy(t, "lottery", sparsity=s, reinit=True)))
    # Frankle & Carbin 2019, Sec. 2 and Fig. 3: LeNet-300-100 tickets learn faster and reach
    # higher accuracy than the dense network, and only at 3.6% of the weights fall back to its
    # accuracy. Non-inferiority: only a loss contradicts it.
    checks.append(compare(suite, "lottery at 95% >= dense - 0.5", "non-inferiority", "Frankle & Carbin 2019, Fig. 3",
                          accuracy(t, "lottery", sparsity=0.95, reinit=False), dense, 0.5))
    for s, error in SNIP_ERRORS[suite]:  # Lee et al. 2019, Table 1
        checks.append(published_error(suite, f"SNIP error at {s:.0%} = published ± 0.5", "Lee et al. 2019, Table 1",
                                      accuracy(t, "snip", sparsity=s), error))
    # Han et al. 2016, Table 1: Deep Compression takes LeNet-300-100 to 40x at 1.58% error and
    # LeNet-5 to 39x at 0.74%. The row: the least compressed one reaching the paper's compression,
    # chosen by compression alone (the most accurate such row would flatter the check).
    ratio, error = {"mlp": (40, 1.58), "mnist": (39, 0.74)}[suite]
    dc = t[(t.method == "deep-compression") & (t.compression_x >= ratio)]
    row = None if dc.empty else dc.sort_values("compression_x", kind="stable").iloc[0]
    where = "" if row is None else f" at {row['compression_x']:.0f}x ({sparsity(row)})"
    checks.append(published_error(suite, "Deep Compression error at 39-40x = published ± 0.5",
                                  "Han et al. 2016, Table 1", figure(row), error, where))
    for method, paper in (("ptq-int8", "Krishnamoorthi 2018"), ("qat", "Jacob et al. 2018")):
        # Krishnamoorthi 2018 (post-training int8 with per-channel scales) and Jacob et al. 2018
        # (quantization-aware training) report 8-bit integer models close to their float models'
        # accuracy; the margin, 0.5 pts, is the issue's. Equivalence: ptq-int8 is the dense model
        # rounded, qat the dense model fine-tuned through that rounding: a large gain would be as
        # suspect as a loss.
        checks.append(compare(suite, f"{method} = dense ± 0.5", "equivalence", paper, accuracy(t, method), dense, 0.5))
    # The target for 4-bit weights fine-tuned through the rounding (methods/uniform.py):
    # near dense, within 1 pt; equivalence for the same reason as int8.
    checks.append(compare(suite, "uniform 4-bit = dense ± 1", "equivalence", "the issue's target",
                          accuracy(t, "uniform", bits=4), dense, 1.0))
    # Hinton et al. 2015, Section 3: on MNIST a small net made 146 test errors trained alone and
    # 74 distilled from a large one.
    checks.append(compare(suite, "kd > student trained alone", "superiority", "Hinton et al. 2015, Sec. 3",
                          accuracy(t, "kd"), accuracy(t, "student")))
    one_shot = {"finetune": False, "n": 0}
    calibrated = {"calibration_samples": CALIBRATION}
    for s in (0.5, 0.8, 0.9):
        base = accuracy(t, "magnitude-oneshot", sparsity=s, **one_shot)
        # Frantar & Alistarh 2023 (SparseGPT) and Sun et al. 2024 (Wanda): one-shot, without
        # retraining, both well above magnitude pruning on OPT / LLaMA models at 50%; 80 and 90%
        # extend the claim beyond the sparsities the papers report on.
        for method, paper in (("sparsegpt", "Frantar & Alistarh 2023"), ("wanda", "Sun et al. 2024")):
            checks.append(compare(suite, f"{method} > one-shot magnitude at {s:.0%}", "superiority", paper,
                                  accuracy(t, method, sparsity=s, **one_shot, **calibrated), base))
    # Reasoning (README, One-shot post-training methods): 128 images leave a 784-input layer's
    # least-squares fit underdetermined, so 1,024 should reconstruct better.
    few, many = (accuracy(t, "sparsegpt", sparsity=0.9, **one_shot, calibration_samples=n) for n in (128, CALIBRATION))
    checks.append(compare(suite, f"sparsegpt at 90%: {CALIBRATION} > 128 calibration images", "superiority",
                          "reasoning: least squares", many, few))
    base = accuracy(t, "magnitude-oneshot", n=2, m=4, finetune=False)
    for method, paper in (("sparsegpt", "Frantar & Alistarh 2023"), ("wanda", "Sun et al. 2024")):
        # The same papers at 2:4, the pattern sparse tensor cores multiply.
        checks.append(compare(suite, f"{method} > one-shot magnitude at 2:4", "superiority", paper,
                              accuracy(t, method, n=2, m=4, finetune=False, **calibrated), base))
    # Frantar et al. 2023 (GPTQ): at 3 and 4 bits GPTQ stays far closer to the float model than
    # round-to-nearest on the same grid, most at 3 bits.
    checks.append(compare(suite, "gptq > round-to-nearest at 3 bits", "superiority", "Frantar et al. 2023",
                          accuracy(t, "gptq", bits=3, finetune=False, **calibrated),
                          accuracy(t, "rtn", bits=3, finetune=False)))
    # Reasoning: fine-tuning with the mask held repairs what either one-shot mask lost, so it
    # must shrink the lead SparseGPT's reconstruction gives (d = lead without - lead with).
    lead = [accuracy(t, m, sparsity=0.8, n=0, finetune=ft, **(calibrated if m == "sparsegpt" else {}))
            for ft in (False, True) for m in ("sparsegpt", "magnitude-oneshot")]
    measured = " / ".join("-" if f is None else f"{f.mean:.2f}" for f in lead)
    d = None if None in lead else paired_difference([(1.0, lead[0]), (-1.0, lead[1]), (-1.0, lead[2]),
                                                     (1.0, lead[3])])
    checks.append(Check(suite, "fine-tuning shrinks sparsegpt's lead over magnitude at 80%", "superiority", 0.0,
                        "reasoning: retraining", measured, d))
    # Han et al. 2016, Fig. 6: pruning and quantization combined lose no accuracy that pruning
    # alone keeps, down to a few percent of the size. Equivalence, as for int8 against dense: the
    # chain's int8 link rounds the pruned model. (This replaces "the chain is smaller than either
    # link", which int8 storage of a pruned model makes true by construction.)
    checks.append(compare(suite, "magnitude+ptq-int8 at 95% = magnitude ± 0.5", "equivalence",
                          "Han et al. 2016, Fig. 6", accuracy(t, "magnitude+ptq-int8", **{"magnitude.sparsity": 0.95}),
                          accuracy(t, "magnitude", sparsity=0.95), 0.5))
    return checks


def cifar_checks(t: pd.DataFrame) -> list[Check]:
    """The checks the JPEG copy of CIFAR-10 can support: no paper reports this ResNet-20 at these
    budgets, so each compares rows of the suite (sparsities 0.5, 0.9 and 0.95)."""
    suite, checks = "cifar", []
    dense = accuracy(t, "dense")
    # Han et al. 2015, Table 1 prune convolutional networks 9-13x without loss; ResNet-20 has far
    # fewer spare weights, so only the mildest level, 50%, is claimed to match dense, within the
    # int8 margin. Equivalence, as for the MNIST suites at 92%.
    checks.append(compare(suite, "magnitude at 50% = dense ± 0.5", "equivalence", "Han et al. 2015, Table 1",
                          accuracy(t, "magnitude", scope="global", sparsity=0.5), dense, 0.5))
    for s in (0.9, 0.95):
        # The control, as for the MNIST suites.
        checks.append(compare(suite, f"magnitude > random at {s:.0%}", "superiority", "reasoning: the control",
                              accuracy(t, "magnitude", scope="global", sparsity=s), accuracy(t, "random", sparsity=s)))
    for s in (0.9, 0.95):
        # Frankle et al. 2020 (linear mode connectivity): ResNet-20 on CIFAR-10 tickets rewound
        # early in training (the suite rewinds to epoch 2) beat the same masks reinitialized.
        checks.append(compare(suite, f"lottery > reinit control at {s:.0%}", "superiority", "Frankle et al. 2020",
                              accuracy(t, "lottery", sparsity=s, reinit=False),
                              accuracy(t, "lottery", sparsity=s, reinit=True)))
    # Hinton et al. 2015, as for the MNIST suites; the student is ResNet-20 at half width.
    checks.append(compare(suite, "kd > student trained alone", "superiority", "Hinton et al. 2015, Sec. 3",
                          accuracy(t, "kd"), accuracy(t, "student")))
    # Mao et al. 2017 (granularity of sparsity), Sec. 1, after Li et al. 2017: pruning whole
    # filters loses more accuracy than pruning single weights at equal density. filter-l1 at
    # ratio 0.5 keeps about a quarter of the FLOPs; the suite has no magnitude row at that FLOP
    # count, so the nearest fair comparison is the least sparse magnitude row whose effective
    # FLOPs do not exceed filter-l1's (chosen by FLOPs alone): magnitude is given no more compute,
    # so a pass cannot come from more FLOPs. Its FLOPs are counted, not realized: dense kernels
    # skip no zeros.
    structured = pick(t, "filter-l1", ratio=0.5)
    candidates = rows(t, "magnitude", scope="global")
    if structured is not None:
        candidates = candidates[candidates.flops_effective_M <= structured["flops_M"]]
    row = None if structured is None or candidates.empty else candidates.sort_values("flops_effective_M", kind="stable").iloc[-1]
    note = "" if row is None else f" (magnitude at {sparsity(row)})"
    checks.append(compare(suite, "magnitude > filter-l1 at no more FLOPs", "superiority", "Mao et al. 2017, Sec. 1",
                          figure(row), figure(structured), note=note))
    # Han et al. 2016, Table 1 vs Han et al. 2015, Table 1: quantization and Huffman coding take
    # pruning's 12x / 12x / 9x / 13x (LeNet-300-100, LeNet-5, AlexNet, VGG-16) to 40x / 39x / 35x
    # / 49x, at least 3.2x more; pruning's figures count weights, not stored bytes, so the gain over
    # a pruned model stored with its indices should be larger. At the suite's 90% level.
    pruned, dc = pick(t, "magnitude", scope="global", sparsity=0.9), pick(t, "deep-compression", sparsity=0.9)
    d = None if pruned is None or dc is None else Difference(pruned["size_KiB"] / dc["size_KiB"], None, math.nan, 0.0)
    measured = "-" if d is None else f"{dc['size_KiB']:.0f} vs {pruned['size_KiB']:.0f} KiB"
    checks.append(Check(suite, "Deep Compression at 90% >= 3x smaller than magnitude at 90%", "size", 3.0,
                        "Han et al. 2016, Table 1", measured, d))
    return checks


def leaderboard(results: Path, suite: str) -> pd.DataFrame:
    """The suite's standard-budget rows of its checked table, each with its seeds' accuracies
    (`by_seed`, from the records the table was built from); none when it has no leaderboard."""
    path = table_path(results, suite, True, "csv")
    if not path.exists():
        return pd.DataFrame(columns=["method", "setting", "seeds", "by_seed", "size_KiB", "compression_x", "flops_M",
                                     "flops_effective_M"])
    t = pd.read_csv(path)
    source, device = SUITES[suite]
    t = t[(t.data_source == source) & (t.device == device)].copy()
    recs = [r for r in board.load(results, suite) if r.get("standard_budget")]
    keys = [*board.TABLE, "method", "setting", "timed_on"]
    seeds: dict[tuple, dict[int, float]] = {}
    for _, r in board.frame(recs, board.table_columns(recs)).iterrows():
        seeds.setdefault(tuple(r[keys]), {})[int(r["seed"])] = float(r["accuracy_%"])
    stale = [f"{r['method']} {r['setting']}" for _, r in t.iterrows()
             if len(seeds.get(tuple(r[keys]), {})) != r["seeds"]]
    if stale:
        raise SystemExit(f"{path}: rows whose records changed since it was written ({', '.join(stale[:3])}): "
                         f"rebuild it first with: bench leaderboard --suite {suite}")
    t["by_seed"] = [seeds[tuple(r[keys])] for _, r in t.iterrows()]
    return t


def run(results: Path) -> list[Verdict]:
    """Every check of every suite, decided as one family."""
    checks = [c for suite in ("mlp", "mnist") for c in mnist_checks(suite, leaderboard(results, suite))]
    return decide(checks + cifar_checks(leaderboard(results, "cifar")))


def p_text(p: float | None, miss: bool = False) -> str:
    """A p-value as the tables print it, "(miss)" after a miss test's."""
    return p_text_of(p) + (" (miss)" if miss and p is not None else "")


def estimate_text(v: Verdict) -> str:
    if v.estimate is None:
        return "-"
    if v.kind == "size":
        return f"{v.estimate:.1f}x"
    if v.ci is None:
        return f"{v.estimate:+.2f}"
    return f"{v.estimate:+.2f} [{v.ci[0]:+.2f}, {v.ci[1]:+.2f}]"


def test_text(v: Verdict) -> str:
    low, high = v.region
    text = {"superiority": "d > 0", "non-inferiority": f"d > {low:g}", "equivalence": f"{low:g} < d < {high:g} (TOST)",
            "size": f"ratio >= {low:g}"}[v.kind]
    return text + (f", machines: {v.machine_margin:.1f} pts" if v.machine_margin else "")


def table(verdicts: list[Verdict]) -> str:
    """The full table: one line per check and suite."""
    lines = [[v.suite, v.claim, v.source, v.measured, test_text(v), estimate_text(v), p_text(v.p, v.p_is_miss),
              p_text(v.p_holm, v.p_is_miss), v.verdict] for v in verdicts]
    return tabulate(lines, headers=["suite", "claim", "source", "measured", "test", CI_HEADER, "p", "p Holm",
                                    "verdict"], tablefmt="pipe", disable_numparse=True)


def family_size(verdicts: list[Verdict]) -> int:
    """The one-sided tests Holm adjusted: per tested check its pass test and one per finite edge."""
    return sum(1 + sum(math.isfinite(e) for e in v.region) for v in verdicts if v.p is not None)


def pivot(verdicts: list[Verdict], suites: list[str]) -> str:
    """A claim a line (placed after the claim before it in its suite's order), a suite a column,
    each cell the verdict and its Holm-adjusted p."""
    def cell(v: Verdict) -> str:
        if v.p_holm is not None:
            return f"{v.verdict}, p {p_text(v.p_holm, v.p_is_miss)}"
        return f"{v.verdict}, {v.estimate:.1f}x" if v.kind == "size" and v.estimate is not None else v.verdict

    claims: list[str] = []
    sources: dict[str, list[str]] = {}
    previous: dict[str, str] = {}
    for v in (v for v in verdicts if v.suite in suites):
        if v.claim not in claims:
            claims.insert(claims.index(previous[v.suite]) + 1 if v.suite in previous else len(claims), v.claim)
        sources.setdefault(v.claim, [])
        if v.source not in sources[v.claim]:
            sources[v.claim].append(v.source)
        previous[v.suite] = v.claim
    cells = {(v.claim, v.suite): cell(v) for v in verdicts}
    lines = [[claim, "; ".join(sources[claim]), *(cells.get((claim, s), "") for s in suites)] for claim in claims]
    return tabulate(lines, headers=["claim", "source", *suites], tablefmt="pipe", disable_numparse=True)


def site_file(verdicts: list[Verdict], results: Path) -> str:
    """The verdicts for the leaderboard site (CHECKS, which `bench leaderboard --html` shows on
    each suite's page): every check's row as `table` prints it, and the hash of each suite's
    leaderboard.csv they were decided on, so that the site shows them only beside that table."""
    def digest(suite: str) -> str | None:
        path = table_path(results, suite, True, "csv")
        return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None

    return json.dumps({
        "about": f"Holm family: {family_size(verdicts)} one-sided tests, alpha {ALPHA}; written by "
                 "python benchmarks/literature_checks.py --write-readme",
        "leaderboards": {suite: digest(suite) for suite in SUITES},
        "columns": ["claim", "source", "measured", "test", CI_HEADER, "p", "p Holm", "verdict"],
        "checks": [{"suite": v.suite, "row": [v.claim, v.source, v.measured, test_text(v), estimate_text(v),
                                               p_text(v.p, v.p_is_miss), p_text(v.p_holm, v.p_is_miss), v.verdict]}
                   for v in verdicts],
    }, indent=1, ensure_ascii=False) + "\n"


def readme_block(verdicts: list[Verdict]) -> str:
    """The README's summary (the text of block BLOCK): the MNIST suites side by side, then cifar,
    whose checks differ."""
    tested = sum(v.p is not None for v in verdicts)
    intro = (f"Holm family: {family_size(verdicts)} one-sided tests from {tested} checks, alpha {ALPHA}. "
             "A cell gives the verdict and the Holm-adjusted p of the test on the estimate's side, \"(miss)\" "
             f"where that is a test against the claim (d, its unadjusted {CI_LEVEL:.0%} CI and the raw p: the "
             "script's output).")
    return "\n".join(["", intro, "", pivot(verdicts, ["mlp", "mnist"]), "", pivot(verdicts, ["cifar"]), ""])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--results", type=Path, default=ROOT / "results")
    p.add_argument("--readme", type=Path, default=ROOT / "README.md", help="the README with the generated block")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--write-readme", action="store_true",
                      help=f"refresh the README's block of verdicts and the site's (RESULTS/{CHECKS})")
    mode.add_argument("--check-readme", action="store_true", help="exit 1 when either is stale")
    args = p.parse_args(argv)
    verdicts = run(args.results)
    block = {BLOCK: readme_block(verdicts)}
    checks, for_site = args.results / CHECKS, site_file(verdicts, args.results)
    if args.check_readme:
        problems = blocks.stale(args.readme, block, "python benchmarks/literature_checks.py --write-readme")
        if not checks.exists() or checks.read_text() != for_site:
            problems.append(f"{checks}: stale; refresh it with: python benchmarks/literature_checks.py --write-readme")
        print("\n".join(problems) or f"{args.readme} and {checks}: the verdicts are up to date",
              file=sys.stderr if problems else sys.stdout)
        return 1 if problems else 0
    print(table(verdicts))
    if args.write_readme:
        try:
            blocks.write(args.readme, block)
        except ValueError as e:
            print(e, file=sys.stderr)
            return 1
        checks.write_text(for_site)
    return 0


if __name__ == "__main__":
    sys.exit(main())
