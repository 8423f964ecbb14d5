"""How often Welch's one-sided t rejects a true null with 3 seeds a row, against its level.

The literature checks (literature_checks.py) test a difference of two rows by Welch's t over
their seeds and correct the family by Holm, whose first tests run at levels near 0.05 / 128.
Welch's df is an approximation that small samples strain: this simulation draws two rows of
3 seeds with equal means, standard deviations `ratio` apart and seed-wise correlation `rho`
(a row's seed s shares seed s's dense model with the other row's), and prints the share of
draws that reject at each level, divided by the level (1.00: exact; above 1: too many passes).

    python benchmarks/welch_error_rate.py [--draws N] [--seed S]
"""

from __future__ import annotations

import argparse

import numpy as np
from scipy import stats
from tabulate import tabulate

LEVELS = (0.05, 0.005, 0.001, 0.0004)  # 0.0004 ~ 0.05 / 128, the first level of the checks' Holm
SEEDS = 3


def rates(ratio: float, rho: float, draws: int, rng: np.random.Generator) -> list[float]:
    """Rejections of "A <= B" at each level, over the level, for rows of equal means."""
    a = rng.standard_normal((draws, SEEDS))
    b = ratio * (rho * a + np.sqrt(1 - rho ** 2) * rng.standard_normal((draws, SEEDS)))
    p = stats.ttest_ind(a, b, axis=1, equal_var=False, alternative="greater").pvalue
    return [float(np.mean(p < level) / level) for level in LEVELS]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    rows = [[ratio, rho, *(f"{r:.2f}" for r in rates(ratio, rho, args.draws, rng))]
            for rho in (0.0, 0.5) for ratio in (1, 3, 10)]
    print(tabulate(rows, headers=["sd ratio", "seed correlation", *(f"at {level:g}" for level in LEVELS)]))
    print(f"\n{args.draws:,} draws each; a value above 1 is a test that passes more often than its level says")


if __name__ == "__main__":
    main()
