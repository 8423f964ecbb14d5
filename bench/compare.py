"""`bench compare A B`: did a change help, beyond the noise between seeds?

In the manner of `asv compare`: two sets of records (results folders, or the results of two
commits), and per row that both hold (same suite, method, parameters, budget, data source,
device type: `bench.reproduce.row_id`), the change in mean accuracy from A to B with its 95%
confidence interval, Welch's t over the seeds of each side (unequal variances, no pairing: a
row's seeds need not be the same on both sides). The verdict is `better` or `worse` when the
interval excludes zero, else `no change`; a row with fewer than two seeds on a side has no
spread to judge, and says so. Counts that should not move (bench.reproduce.EXACT) are listed
wherever their mean changed. A pure function of the records, so that it can be tested on
planted ones.

`bench compare A --methods X,Y` (`across_methods`) asks the same of two methods in one set of
records: per row of X, each row of Y with the same suite, budget, data source and device type
whose parameters agree where both have them (magnitude and wanda at sparsity 0.9), Y's accuracy
against X's, with the same interval and verdict.
"""

from __future__ import annotations

import dataclasses
import statistics
from dataclasses import dataclass
from typing import Any

from bench.plan import flat_params, setting_label
from bench.reproduce import EXACT, row_id, rows

LEVEL = 0.95


@dataclass(frozen=True)
class RowChange:
    """One row held by both sides: accuracy in points (mean per side), the change B - A with its
    confidence interval (None without a spread on both sides), the verdict, and the exact
    figures whose mean moved: name -> (A, B). Between two methods, `setting` is the parameters
    they share, and `others` each one's other parameters (A's, B's)."""

    suite: str
    method: str
    setting: str
    budget: dict[str, Any]
    seeds: tuple[int, int]
    accuracy: tuple[float, float]
    change: float
    ci: tuple[float, float] | None
    verdict: str
    exact_changes: dict[str, tuple[float, float]]
    others: tuple[str, str] = ("", "")


def welch_interval(a: list[float], b: list[float], level: float = LEVEL) -> tuple[float, float] | None:
    """The `level` confidence interval of mean(b) - mean(a) by Welch's t (scipy's), or None when a
    side has fewer than two values. Two sides without spread give the difference itself (scipy's
    interval is undefined there)."""
    from scipy.stats import ttest_ind

    if len(a) < 2 or len(b) < 2:
        return None
    if statistics.variance(a) + statistics.variance(b) == 0:
        diff = statistics.fmean(b) - statistics.fmean(a)
        return diff, diff
    ci = ttest_ind(b, a, equal_var=False).confidence_interval(level)
    return float(ci.low), float(ci.high)


def compare(a: list[dict[str, Any]], b: list[dict[str, Any]], level: float = LEVEL) -> list[RowChange]:
    """Every row with finished records on both sides, in (suite, method, setting) order."""
    rows_a, rows_b = rows(a), rows(b)
    out = []
    for key in rows_a.keys() & rows_b.keys():
        ra, rb = rows_a[key], rows_b[key]
        c = ra[0]["config"]
        out.append(_change(ra, rb, c["method"], setting_label(c["params"]), level, exact=True))
    return _ordered(out)


def across_methods(recs: list[dict[str, Any]], method_a: str, method_b: str, level: float = LEVEL) -> list[RowChange]:
    """Rows of `method_b` against rows of `method_a` in one set of records, paired where all but
    the method and its parameters is the same and the parameters both have are equal; the
    setting shown is those shared parameters. A chain's parameter counts by its own name
    (`magnitude.sparsity` is `sparsity`), unless two links have it. Two rows that both have
    parameters but share none are not paired (no setting to hold equal); a method without any
    (dense, dynamic-int8) is set beside every row of the other. Counts are not compared: they
    differ by design."""
    def side(method: str) -> list[tuple[list[dict[str, Any]], str, dict[str, Any]]]:
        """Each row of `method`: its records, its id without the method and parameters, its flat parameters."""
        return [(g, row_id({**g[0], "config": {**g[0]["config"], "method": None, "params": None}}),
                 flat_params(g[0]["config"]["params"])) for g in rows(recs).values() if g[0]["config"]["method"] == method]

    out = []
    side_b = side(method_b)
    for ra, key, pa in side(method_a):
        for rb, _, pb in (b for b in side_b if b[1] == key):
            na, nb = _by_own_name(pa), _by_own_name(pb)
            shared = {name: na[name][1] for name in sorted(na.keys() & nb.keys())}
            if (pa and pb and not shared) or any(na[name][1] != nb[name][1] for name in shared):
                continue
            change = _change(ra, rb, f"{method_b} vs {method_a}", setting_label(shared), level, exact=False)
            others = tuple(setting_label({k: v for k, v in params.items() if k not in {n[k][0] for k in shared}})
                           for params, n in ((pa, na), (pb, nb)))
            out.append(dataclasses.replace(change, others=others))
    return _ordered(out)


def _by_own_name(flat: dict[str, Any]) -> dict[str, tuple[str, Any]]:
    """A run's flat parameters by their own names ("magnitude.sparsity" -> "sparsity"), each with
    its flat name; a name that two links of a chain have is left out (it would be ambiguous)."""
    own: dict[str, list[tuple[str, Any]]] = {}
    for name, value in flat.items():
        own.setdefault(name.rsplit(".", 1)[-1], []).append((name, value))
    return {name: found[0] for name, found in own.items() if len(found) == 1}


def _change(ra: list[dict[str, Any]], rb: list[dict[str, Any]], method: str, setting: str, level: float,
            *, exact: bool) -> RowChange:
    """B's seeds against A's: the change in mean accuracy, its interval and verdict, and (with
    `exact`) the counts whose mean moved."""
    acc_a = [100 * r["metrics"]["accuracy"] for r in ra]
    acc_b = [100 * r["metrics"]["accuracy"] for r in rb]
    ci = welch_interval(acc_a, acc_b, level)
    if ci is None:
        verdict = "too few seeds"
    else:
        verdict = "better" if ci[0] > 0 else "worse" if ci[1] < 0 else "no change"
    moved = {}
    for figure in EXACT if exact else ():
        va = [r["metrics"][figure] for r in ra if r["metrics"].get(figure) is not None]
        vb = [r["metrics"][figure] for r in rb if r["metrics"].get(figure) is not None]
        if va and vb and statistics.fmean(va) != statistics.fmean(vb):
            moved[figure] = (statistics.fmean(va), statistics.fmean(vb))
    c = ra[0]["config"]
    return RowChange(c["suite"], method, setting, c["budget"], (len(ra), len(rb)),
                     (statistics.fmean(acc_a), statistics.fmean(acc_b)),
                     statistics.fmean(acc_b) - statistics.fmean(acc_a), ci, verdict, moved)


def _ordered(changes: list[RowChange]) -> list[RowChange]:
    return sorted(changes, key=lambda r: (r.suite, r.method, r.setting, r.others, sorted(r.budget.items(), key=str)))


def unshared(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> tuple[int, int]:
    """How many rows only A, and only B, holds: left out of the comparison."""
    rows_a, rows_b = rows(a), rows(b)
    return len(rows_a.keys() - rows_b.keys()), len(rows_b.keys() - rows_a.keys())
