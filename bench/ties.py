"""Which rows of a size band are tied with its most accurate row, which fall below it, and which
the seeds leave unclear.

A reader asks "I need a model at least 8x smaller than dense: which method keeps the most
accuracy, and is its lead real?". The most accurate row of the band (`ranked`) leads by its mean
over seeds, and the rows just below it may differ from it by no more than the seeds' noise. Each
other row of the band is compared with the best by bench.compare's machinery
(`compare.against_best`: Welch's t over the two rows' seeds, the machines' margin where their
machine models differ, Holm's correction over the band's comparisons, at compare.LEVEL): a row
significantly less accurate after the correction is below the best; one less accurate on its own
test but not after the correction, or not beyond the machines' margin, is unclear; a row its own
test does not tell from the best is tied with it (the reader chooses between them by size, speed
or method); and a row with one seed (or every row, where the best has one) gives no spread to
judge: it is unjudged, never called tied or beaten. Unclear is kept apart from tied because the
correction over a wide band (62 rows of mlp at >= 8x, three seeds each) clears few rows: wanda at
92% sparsity, 42.63% against the best's 98.54%, was called tied with it. The site's best at
each size (bench.site) and `leaderboard --show --min-compression` (bench.render,
bench.cli_leaderboard) show these.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Hashable

import pandas as pd

from bench import board, compare
from bench.errors import counted
from bench.records import MACHINE_MARGIN, Record

BEST, TIED, UNCLEAR, BELOW, UNJUDGED = "best", "tied", "unclear", "below", "unjudged"
STATUS = {"worse": BELOW, compare.CHANCE: UNCLEAR, compare.UNCLEAR: UNCLEAR, "too few seeds": UNJUDGED}  # else TIED


@dataclass(frozen=True)
class Standing:
    """A row of a band against the band's best: its status (BEST, TIED, UNCLEAR, BELOW or UNJUDGED), and
    the comparison that gave it (None for the best itself)."""

    status: str
    change: compare.RowChange | None = None


def ranked(t: pd.DataFrame) -> pd.DataFrame:
    """`t`'s rows, most accurate first as the tables show accuracy (2 decimals: a hair's
    difference picks no winner); rows that read alike: the smaller, then by method and setting.
    (A table whose records hold a compression but no size, as a hand-made record may, has no
    `size_KiB` column: its rows that read alike are ordered by method and setting alone.)"""
    return t.assign(_key=-board.as_shown(t["accuracy_mean_%"], "accuracy")).sort_values(
        ["_key", *(["size_KiB"] if "size_KiB" in t else []), "method", "setting"]).drop(columns="_key")


def standings(t: pd.DataFrame, recs: list[Record], level: float = compare.LEVEL) -> dict[Hashable, Standing]:
    """Per row of `t` (by index: the rows of one table group in one band, which `recs` hold the
    records of), its Standing against `t`'s most accurate row; the rows one Holm family."""
    if t.empty:
        return {}
    order = list(ranked(t).index)
    by_row = board.records_by_row(recs)
    rows = [by_row[tuple(t.loc[i, k] for k in board.ROW)] for i in order]
    out = {order[0]: Standing(BEST)}
    for i, change in zip(order[1:], compare.against_best(rows[0], rows[1:], level)):
        out[i] = Standing(STATUS.get(change.verdict, TIED), change)
    return out


def at_least(t: pd.DataFrame, recs: list[Record], min_compression: float) -> dict[tuple, dict[Hashable, Standing]]:
    """Per table group of `t` (by its `board.TABLE` key), the standings of its rows at least
    `min_compression` times smaller than the dense model, as the tables show their compression (as
    `board.select` keeps them): the rows `leaderboard --show --min-compression` lists."""
    if "compression_x" not in t:
        return {}
    inside = t[board.as_shown(t["compression_x"], "compression") >= min_compression]
    return {key: standings(g, recs) for key, g in inside.groupby(board.TABLE, sort=True)}


def p_shown(p: float, decimals: int = 4) -> float:
    """A Holm-adjusted p as the files give it (`vs_best_p_holm`): at `decimals`, or at as many more
    as keep it on its side of the test's alpha (1 - compare.LEVEL), where the verdict changes: a
    row `below` the best at p 0.049996 read p 0.05 beside it (compare.p_text's rule)."""
    shown = compare.decimals_on_side(p, decimals)
    return p if shown is None else round(p, shown)


# How a row is judged, for the views' notes.
TEST = (f"Welch's t over the seeds against the best, {compare.LEVEL:.0%}, beyond {MACHINE_MARGIN:g} pts where their "
        "machine models differ; below: less accurate after Holm's correction over the band's rows; unclear: less "
        "accurate on its own test, not after the correction (or within the machines' margin); tied: its own test "
        "does not tell it from the best")


def summary(found: dict[Hashable, Standing], band: str) -> str:
    """One line on a band's standings: how many of its other rows tie with the best, how many are
    unclear, below it, and could not be judged ("2 of 5 other rows at ≥ 8x tied with the best, ...")."""
    n = {s: sum(f.status == s for f in found.values()) for s in (TIED, UNCLEAR, BELOW, UNJUDGED)}
    others = len(found) - 1
    if not others:
        return f"at {band}: the best is the only row"
    text = (f"{n[TIED]} of {counted(others, 'other row')} at {band} tied with the best, "
            + (f"{n[UNCLEAR]} unclear, " if n[UNCLEAR] else "") + f"{n[BELOW]} below it")
    if n[UNJUDGED]:
        text += f", {n[UNJUDGED]} not judged ({unjudged_why(found)})"
    return text


def unjudged_why(found: dict[Hashable, Standing]) -> str:
    """Why a band's unjudged rows are: "the best has one seed" (then no row of the band can be
    judged), else "one seed" (each such row's own)."""
    best_seeds = next((f.change.seeds[0] for f in found.values() if f.change is not None), 0)
    return "the best has one seed" if best_seeds < 2 else "one seed"
