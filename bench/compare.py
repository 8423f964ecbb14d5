"""`bench compare A B`: did a change help, beyond the noise between seeds?

In the manner of `asv compare`: two sets of records (results folders, or the results of two
commits), and per row that both hold (same suite, method, parameters, budget, data source,
device type: `bench.records.row_id`), the change in mean accuracy from A to B with its 95%
confidence interval, Welch's t over the seeds of each side (unequal variances, no pairing: a
row's seeds need not be the same on both sides), and the two-sided p of that test. A row with
fewer than two seeds on a side has no spread to judge, and says so. Counts that should not move
(bench.records.EXACT) are listed wherever their mean changed.

Many rows: a comparison judges every row it pairs (58 in a cifar sweep), and at 95% each row on
its own one unchanged row in twenty reads `better` or `worse` by chance, which `--fail-on
regression` would fail on. So the rows of one comparison, all suites together, are one family:
Holm's step-down procedure (`holm`) adjusts their p-values, and the verdict is `better` or `worse`
where the adjusted p < 5%, so that the chance of any wrong `better` or `worse` in the whole comparison
is at most 5%, whatever the dependence between rows (many share a dense model). A row whose own p is
below 5% but whose adjusted p is not says `unclear (after Holm)`; else `not significant` (NOT_SIGNIFICANT:
a test that did not reject, not a finding that nothing moved). The interval
printed is the row's own (unadjusted): a description of the change, not the verdict's test.

Machines: the same code and seeds move accuracy between two processor models by more than between
seeds (README, Checks against published results), an offset no side's seeds sample. So where the
two sides' records do not all come from one and the same machine model (`env.device_name`; a side
from several counts as a model of its own, as a leaderboard row does in the literature checks), the
interval must clear bench.records.MACHINE_MARGIN (0.2 pts) for `better` or `worse` (the p is that of
the test against the margin on the estimate's side); one that excludes zero but not the margin says
`unclear (machines differ)`. A committed record made on an Intel Xeon
against its rerun on an AMD EPYC read `better` (dense on mlp, +0.13 [+0.04, +0.22], p 0.016) without it,
compared alone (among mlp's 137 rows, Holm's correction alone leaves it unclear).

`bench compare A --methods X,Y` (`across_methods`) asks the same of two methods in one set of
records: per row of X, each row of Y with the same suite, budget, data source and device type
whose parameters agree where both have them (magnitude and wanda at sparsity 0.9), Y's accuracy
against X's, with the same interval and verdict (its rows, all suites, one Holm family). A side
may fix parameters (`MethodSpec`, `sparsegpt[finetune=false]`): it keeps its rows of those values,
so that one method at two settings is compared, and the pairing leaves the fixed parameters out;
`--ignore PARAM` leaves a parameter out of the pairing alone (magnitude's scope is global,
magnitude-oneshot's layer: they pair nowhere without it).

`--methods X,Y --match compression` (`across_sizes`) pairs the two methods' rows by size instead,
whatever their parameters: which keeps more accuracy at the same size, where no parameter is
shared (filter-l1's ratio against magnitude's sparsity). In one table, rows at most `--within`
(10%) apart in mean compression pair one-to-one, nearest first; the rows left over are named.

Both are pure functions of the records, so that they can be tested on planted ones. Where the
records come from is below them (`sides`): a results folder as it is, or a git commit's record
files written out to a scratch folder, read without unpacking anything else.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import statistics
import subprocess
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Iterator

from bench import layout, provenance, records
from bench.bounds import brief
from bench.errors import ParameterError, counted, printable
from bench.board import table_budget
from bench.records import MACHINE_MARGIN, Record, Status, machine
from bench.plan import flat_params, setting_label
from bench.suite import is_plain_name, parameter_value

LEVEL = 0.95


@dataclass(frozen=True)
class RowChange:
    """One row held by both sides: accuracy in points (mean per side), the change B - A with its
    confidence interval (None without a spread on both sides), the verdict, and the exact
    figures whose mean moved: name -> (A, B). `p` is the row's own two-sided p (against the
    machines' margin where it has one), `p_holm` that adjusted over the comparison's rows (both
    None without a spread). Between two methods, `setting` is the parameters they share, and
    `others` each one's other parameters (A's, B's), and `other_params` the same as flat
    parameters, from which a table drops those of one value in every row (bench.cli_compare)."""

    suite: str
    method: str
    setting: str
    budget: str  # its table's heading (bench.board.table_budget)
    seeds: tuple[int, int]
    accuracy: tuple[float, float]
    change: float
    ci: tuple[float, float] | None
    verdict: str
    exact_changes: dict[str, tuple[float, float]]
    others: tuple[str, str] = ("", "")
    other_params: tuple[dict[str, Any], dict[str, Any]] = ({}, {})
    machine_margin: float = 0.0  # what the interval had to clear: the sides' machine models differ
    compression: tuple[float | None, float | None] = (None, None)  # each side's mean, None where unrecorded
    p: float | None = None
    p_holm: float | None = None


UNCLEAR = "unclear (machines differ)"  # beyond zero, within the machines' margin
CHANCE = "unclear (after Holm)"  # significant on its own, not among the comparison's rows
# not significant on its own either: "no change" read as a finding (wanda 32 pts below one-shot
# magnitude on mlp at 92%, seeds far apart, p 0.055, said it)
NOT_SIGNIFICANT = "not significant"
MOVED = ("better", "worse", UNCLEAR, CHANCE)  # the verdicts of a row that may have moved


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


def welch_p(a: list[float], b: list[float], margin: float = 0.0) -> float | None:
    """The two-sided p of Welch's t for "mean(b) - mean(a) lies beyond ±margin" on the side of
    the estimate (twice the smaller one-sided p against +margin and against -margin, capped at 1):
    below 1 - level exactly where `welch_interval` clears the margin. None where a side has fewer
    than two values; two sides without spread give 0 beyond the margin, else 1."""
    from scipy.stats import ttest_ind

    if len(a) < 2 or len(b) < 2:
        return None
    if statistics.variance(a) + statistics.variance(b) == 0:
        return 0.0 if abs(statistics.fmean(b) - statistics.fmean(a)) > margin else 1.0
    above = ttest_ind([x - margin for x in b], a, equal_var=False, alternative="greater").pvalue
    below = ttest_ind([x + margin for x in b], a, equal_var=False, alternative="less").pvalue
    return min(1.0, 2 * float(min(above, below)))


def holm(p: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values (Holm 1979, "A simple sequentially rejective multiple
    test procedure", Scand. J. Statist. 6:65-70): the i-th smallest of m p-values times m - i + 1,
    made non-decreasing in that order, capped at 1. Rejecting where the adjusted p < alpha keeps
    the chance of any false rejection in the family at alpha or less, under any dependence. The
    same as statsmodels' multipletests(method="holm"), which the project does not install for
    these ten lines (scipy has only false_discovery_control, which bounds another rate)."""
    adjusted = [0.0] * len(p)
    running = 0.0
    for rank, i in enumerate(sorted(range(len(p)), key=p.__getitem__)):
        running = max(running, min(1.0, (len(p) - rank) * p[i]))
        adjusted[i] = running
    return adjusted


def decimals_on_side(p: float, least: int, alpha: float = round(1 - LEVEL, 9)) -> int | None:
    """The fewest decimals, `least` or more, at which `p` rounds on its own side of `alpha`, where
    verdicts change (0.04996 is a rejection, and 0.050 beside it would read as none); None within
    1e-15 of it."""
    return next((d for d in range(least, 16) if (round(p, d) < alpha) == (p < alpha)), None)


def p_text(p: float | None, alpha: float = round(1 - LEVEL, 9)) -> str:
    """A p-value as bench compare and the literature checks print it: three decimals, or as many
    more as put it on its side of `alpha` (`decimals_on_side`), at most six."""
    if p is None:
        return "-"
    if p < 0.001:
        return "<0.001"
    decimals = decimals_on_side(p, 3, alpha)
    return f"<{alpha:g}" if decimals is None or decimals > 6 else f"{p:.{decimals}f}"  # else within 1e-6 below it


def compare(a: list[dict[str, Any]], b: list[dict[str, Any]], level: float = LEVEL) -> list[RowChange]:
    """Every row with finished records on both sides (of any suites: one Holm family), in
    (suite, method, setting) order."""
    rows_a, rows_b = records.rows(a), records.rows(b)
    out = []
    for key in rows_a.keys() & rows_b.keys():
        ra, rb = rows_a[key], rows_b[key]
        c = ra[0]["config"]
        out.append(_change(ra, rb, c["method"], setting_label(c["params"]), level, exact=True))
    return _judged(_ordered(out), level)


@dataclass(frozen=True)
class MethodSpec:
    """One side of `compare --methods`: a method (or chain) and the parameters it is fixed at, by
    their own or their flat name (`sparsity`, `magnitude.sparsity`), in the order given: the rows
    of that method with those values. The same method at two settings is one question a reader
    asks (does fine-tuning after SparseGPT help?), which two plain names cannot put."""

    method: str
    fixed: tuple[tuple[str, Any], ...] = ()

    @property
    def label(self) -> str:
        """How the tables name the side: `sparsegpt[finetune=False]`, values as a setting shows them."""
        return self.method + (f"[{', '.join(f'{k}={v}' for k, v in self.fixed)}]" if self.fixed else "")

    def holds(self, flat: dict[str, Any]) -> bool:
        """Whether a row of this method with flat parameters `flat` has the fixed values (true is
        not 1: a flag is not a count)."""
        return all(_typed(param_value(flat, name)) == _typed(value) for name, value in self.fixed)


_MISSING = object()


def param_value(flat: dict[str, Any], name: str) -> Any:
    """A row's parameter by its flat name, else by its own (a chain link's `sparsity`); _MISSING
    where it has none, or two links have it under that name."""
    if name in flat:
        return flat[name]
    own = _by_own_name(flat)
    return own[name][1] if name in own else _MISSING


def _typed(value: Any) -> tuple[bool, Any]:
    return isinstance(value, bool), value


SPEC_FORM = "METHOD or METHOD[PARAM=VALUE,...]"


def method_pair(text: str) -> tuple[MethodSpec, MethodSpec]:
    """X and Y of `--methods X,Y`, each a method name or a method with fixed parameters
    (`sparsegpt[finetune=false]`, values read as `bench run --set` reads them), split at the commas
    outside brackets. Refused: a malformed side, a parameter fixed twice, and one method on both
    sides (the same side twice too) without a parameter fixed apart (their rows would overlap, and a
    row compared with itself reads `not significant`)."""
    parts, depth, start = [], 0, 0
    for i, char in enumerate(text + ","):
        depth += {"[": 1, "]": -1}.get(char, 0)
        if depth not in (0, 1):
            raise ParameterError(f"--methods {brief(text)}: unbalanced brackets; expected {SPEC_FORM}, twice: X,Y")
        if char == "," and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    if depth or len(parts) != 2:
        raise ParameterError(f"--methods {brief(text)}: expected two methods, X,Y, each {SPEC_FORM}")
    x, y = (_method_spec(part, text) for part in parts)
    if x.method == y.method and not any(name == other and _typed(value) != _typed(theirs)
                                        for name, value in x.fixed for other, theirs in y.fixed):
        raise ParameterError(f"--methods {brief(text)}: {brief(x.method)} on both sides needs a parameter fixed to "
                             f"a different value on each{_fixed_apart(x.method)}")
    return x, y


def _fixed_apart(method: str) -> str:
    """The example of `method_pair`'s refusal, with a parameter `method` has (read from its source,
    bench.catalog): a true/false one, else the one its sweep varies, else its first. The example
    was sparsegpt's `finetune` for every method, which magnitude has not."""
    from bench.catalog import catalog

    info = next((i for i in catalog() if i.name == method and i.problem is None), None)
    if info is None:
        return ""
    if not info.parameters:
        return f": {method} has none, so compare it with another method"
    name = next((k for k, v in info.parameters.items() if isinstance(v, bool)),
                info.sweep if info.sweep in info.parameters else next(iter(info.parameters)))
    values = ("false", "true") if isinstance(info.parameters[name], bool) else (info.parameters[name], "...")
    return f", e.g. {method}[{name}={values[0]}],{method}[{name}={values[1]}]"


def _method_spec(part: str, text: str) -> MethodSpec:
    """One side of `method_pair`'s `text`: METHOD, or METHOD[PARAM=VALUE,...]."""
    method, bracket, rest = part.partition("[")
    method = method.strip()
    if not method or (bracket and not rest.endswith("]")) or "]" in method:
        raise ParameterError(f"--methods {brief(text)}: {brief(part)} is no {SPEC_FORM}")
    fixed: dict[str, Any] = {}
    for item in rest[:-1].split(",") if bracket else ():
        name, eq, value = (x.strip() for x in item.partition("="))
        if not (name and eq and value):
            raise ParameterError(f"--methods {brief(text)}: {brief(item.strip())} in {brief(part)} is no PARAM=VALUE")
        if name in fixed:
            raise ParameterError(f"--methods {brief(text)}: {brief(name)} is fixed twice in {brief(part)}")
        fixed[name] = parameter_value(value, f"--methods {method}[{name}]")
    return MethodSpec(method, tuple(fixed.items()))


def check_parameters(recs: list[dict[str, Any]], x: MethodSpec, y: MethodSpec, ignore: list[str]) -> None:
    """Refuse a parameter that `across_methods` would look for in vain: one fixed on a side whose
    method's rows do not have it, or have it at other values only, and an --ignore that neither
    method has; each named, with the parameters (or values) there are. Without this, a misspelt
    name selects no row, or pairs as if it were not given."""
    params = {spec.method: [flat_params(g[0]["config"]["params"]) for g in records.rows(recs).values()
                            if g[0]["config"]["method"] == spec.method] for spec in (x, y)}

    def names(method: str) -> list[str]:
        return sorted({name for flat in params[method] for name in (*flat, *_by_own_name(flat))})

    for spec in (x, y):
        for name, value in spec.fixed:
            found = {f"{v}" for flat in params[spec.method] if (v := param_value(flat, name)) is not _MISSING}
            if not found:
                raise ParameterError(printable(
                    f"--methods {spec.label}: no finished run of {spec.method} has a parameter {name!r} (its "
                    f"parameters: {', '.join(names(spec.method)) or 'none'})"))
            if not any(spec.holds(flat) for flat in params[spec.method]):
                raise ParameterError(printable(
                    f"--methods {spec.label}: no finished run of {spec.method} has {name}={value} together with "
                    f"the other values fixed (its values of {name}: {', '.join(sorted(found))})"))
    for name in ignore:
        if all(name not in names(spec.method) for spec in (x, y)):
            raise ParameterError(printable(
                f"--ignore {name}: neither {x.method} nor {y.method} has a parameter {name!r} (theirs: "
                f"{', '.join(sorted({*names(x.method), *names(y.method)})) or 'none'})"))


def _unpaired(x: MethodSpec, y: MethodSpec, ignore: list[str] | tuple[str, ...]) -> set[str]:
    """The own names of the parameters left out of the pairing: --ignore's and those fixed on a side."""
    return {name.rsplit(".", 1)[-1] for name in (*ignore, *(n for spec in (x, y) for n, _ in spec.fixed))}


def across_methods(recs: list[dict[str, Any]], method_a: str | MethodSpec, method_b: str | MethodSpec,
                   level: float = LEVEL, ignore: list[str] | tuple[str, ...] = ()) -> list[RowChange]:
    """Rows of `method_b` against rows of `method_a` in one set of records, paired where all but
    the method and its parameters is the same and the parameters both have are equal; the
    setting shown is those shared parameters. A chain's parameter counts by its own name
    (`magnitude.sparsity` is `sparsity`), unless two links have it. Two rows that both have
    parameters but share none are not paired (no setting to hold equal); a method without any
    (dense, dynamic-int8) is set beside every row of the other. Counts are not compared: they
    differ by design. A side's fixed parameters keep its rows of those values, and they and
    `ignore` are left out of the pairing (shown among each side's others): rows whose shared
    parameters are all left out pair, as the reader asked."""
    a, b = (m if isinstance(m, MethodSpec) else MethodSpec(m) for m in (method_a, method_b))
    left_out = _unpaired(a, b, ignore)
    out = []
    side_b = _method_rows(recs, b)
    for ra, key, pa in _method_rows(recs, a):
        for rb, _, pb in (row for row in side_b if row[1] == key):
            na, nb = _by_own_name(pa), _by_own_name(pb)
            common = na.keys() & nb.keys()
            shared = {name: na[name][1] for name in sorted(common - left_out)}
            if (pa and pb and not common) or any(na[name][1] != nb[name][1] for name in shared):
                continue
            change = _change(ra, rb, f"{b.label} vs {a.label}", setting_label(shared), level, exact=False)
            other_params = tuple({k: v for k, v in params.items() if k not in {n[k][0] for k in shared}}
                                 for params, n in ((pa, na), (pb, nb)))
            out.append(dataclasses.replace(change, others=tuple(map(setting_label, other_params)),
                                           other_params=other_params))
    return _judged(_ordered(out), level)


def against_best(best: list[dict[str, Any]], rows: list[list[dict[str, Any]]],
                 level: float = LEVEL) -> list[RowChange]:
    """Each of `rows` (a row's records) against `best`, the most accurate row of a leaderboard's
    size band: the change in accuracy from the best to the row, judged as `compare` judges a row
    (Welch's t over the seeds, two-sided; the machines' margin where their machine models differ),
    the rows one Holm family. Two-sided, as `bench compare --methods` would test the same pair,
    so that the two never disagree on one comparison taken alone; against the one-sided test it
    halves the level (2.5% on the side that matters), which leans towards calling a row tied:
    the best is picked as the top mean after the fact, and its lead over the runner-up is
    biased upwards by that pick. bench.ties reads the verdicts: `worse` is below the best, CHANCE
    and UNCLEAR unclear, `too few seeds` unjudged, the rest (its own test does not reject) tied.
    scipy's warning of precision lost on seeds that are equal but for float rounding (a collapsed
    row at 11.35% on every seed) is silenced: its p is what such seeds give, and the site's build
    printed it."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Precision loss occurred", RuntimeWarning)
        return _judged([_change(best, recs, recs[0]["config"]["method"], setting_label(recs[0]["config"]["params"]),
                                level, exact=False) for recs in rows], level)


WITHIN = 0.10  # `--match compression`'s default tolerance: rows at most 10% apart in compression pair


def size_apart(c1: float, c2: float) -> float:
    """How far apart two compressions are: the larger over the smaller, less one (0.1: 10% apart).
    The same in either order, and a monotone function of |ln c1 - ln c2|: nearest by it is nearest
    on a log scale, where 2x against 2.2x is as far apart as 20x against 22x (a difference in x
    would call the second pair ten times farther)."""
    return max(c1, c2) / min(c1, c2) - 1


def within_reach(c1: float, c2: float, within: float) -> bool:
    """Whether two compressions are at most `within` apart (`size_apart`), up to float rounding:
    10x against 11x is 10% apart, which the division puts 1e-16 beyond 0.1. False for a NaN."""
    return size_apart(c1, c2) <= within + 1e-9


@dataclass(frozen=True)
class Unpaired:
    """A row that `across_sizes` paired with none: its side (0: X, 1: Y), suite, budget, setting and
    mean compression (None: unrecorded), and the other side's nearest row in its table by compression
    (setting, compression; None where the other side has none there with a compression). Where that
    nearest lies within the tolerance, every row within it was paired with a nearer row first."""

    side: int
    suite: str
    budget: str
    setting: str
    compression: float | None
    nearest: tuple[str, float] | None


def across_sizes(recs: list[dict[str, Any]], method_a: str | MethodSpec, method_b: str | MethodSpec,
                 within: float = WITHIN, level: float = LEVEL) -> tuple[list[RowChange], list[Unpaired]]:
    """Rows of `method_b` against rows of `method_a` paired by size rather than by parameters
    (`compare --methods X,Y --match compression`): two methods whose knobs differ (filter-l1's
    ratio, magnitude's sparsity; qat against ptq-int8 at other bits) hold no parameter to agree
    on, and "which keeps more accuracy at the same size" asks for rows of one size. In one table
    (suite, budget, data source, device type), each pair of rows at most `within` apart in mean
    compression (`size_apart`) is a candidate, and they are taken nearest first, each row at most
    once (greedy one-to-one nearest-neighbour matching with a caliper): a row compared twice
    would count twice in the Holm family and tie its tests together. Judged as `across_methods`
    judges its pairs (Welch's t, the machines' margin, Holm over all the pairs), in order of X's
    compression; `others` holds each row's whole setting. Returned with the rows left unpaired
    (`Unpaired`), which the caller names: a row without a partner is not a row that agrees."""
    a, b = (m if isinstance(m, MethodSpec) else MethodSpec(m) for m in (method_a, method_b))
    sides = [_sized_rows(recs, spec) for spec in (a, b)]
    candidates = sorted((size_apart(ca, cb), i, j) for i, (_, ka, ca) in enumerate(sides[0]) if ca is not None
                        for j, (_, kb, cb) in enumerate(sides[1])
                        if cb is not None and ka == kb and within_reach(ca, cb, within))
    used: tuple[set[int], set[int]] = (set(), set())
    out = []
    for _, i, j in candidates:
        if i not in used[0] and j not in used[1]:
            used[0].add(i)
            used[1].add(j)
            (ra, _, _), (rb, _, _) = sides[0][i], sides[1][j]
            change = _change(ra, rb, f"{b.label} vs {a.label}", setting_label({}), level, exact=False)
            other_params = (flat_params(ra[0]["config"]["params"]), flat_params(rb[0]["config"]["params"]))
            out.append(dataclasses.replace(change, others=tuple(map(setting_label, other_params)),
                                           other_params=other_params))
    unpaired = sorted((_unpaired_row(side, row, sides[1 - side]) for side in (0, 1)
                       for n, row in enumerate(sides[side]) if n not in used[side]),
                      key=lambda u: (u.side, u.suite, u.budget, u.compression is None, u.compression or 0.0, u.setting))
    return _judged(sorted(out, key=lambda c: (c.suite, c.budget, c.compression[0] or 0.0)), level), unpaired


def _sized_rows(recs: list[dict[str, Any]], spec: MethodSpec) -> list[tuple[list[dict[str, Any]], str, float | None]]:
    """Each row of `spec` (`_method_rows`) with its mean compression (None where unrecorded, or not
    above 0, which no size can be), smallest first per table: a fixed order, which breaks ties
    between pairs equally far apart the same way on every run."""
    rows = []
    for g, key, _ in _method_rows(recs, spec):
        c = _mean_compression(g)
        rows.append((g, key, c if c is not None and c > 0 else None))
    return sorted(rows, key=lambda row: (row[1], row[2] is None, row[2] or 0.0,
                                         setting_label(row[0][0]["config"]["params"])))


def _unpaired_row(side: int, row: tuple[list[dict[str, Any]], str, float | None],
                  others: list[tuple[list[dict[str, Any]], str, float | None]]) -> Unpaired:
    """`row` of `side`, left unpaired, with the nearest of the other side's rows in its table."""
    g, key, c = row
    near = [(size_apart(c, co), setting_label(go[0]["config"]["params"]), co)
            for go, ko, co in others if c is not None and co is not None and ko == key]
    nearest = min(near)[1:] if near else None
    config = g[0]["config"]
    return Unpaired(side, config["suite"], table_budget(config), setting_label(config["params"]), c, nearest)


def _method_rows(recs: list[dict[str, Any]], spec: MethodSpec) -> list[tuple[list[dict[str, Any]], str, dict[str, Any]]]:
    """Each row of `spec`'s method at its fixed values: its records, its id without the method and
    parameters, its flat parameters."""
    rows = [(g, records.row_id({**g[0], "config": {**g[0]["config"], "method": None, "params": None}}),
             flat_params(g[0]["config"]["params"]))
            for g in records.rows(recs).values() if g[0]["config"]["method"] == spec.method]
    return [row for row in rows if spec.holds(row[2])]


def unpaired_why(recs: list[dict[str, Any]], method_a: str | MethodSpec, method_b: str | MethodSpec,
                 ignore: list[str] | tuple[str, ...] = ()) -> str | None:
    """Where `across_methods` pairs no row of the two methods although some of their rows share a
    table (budget, data source, device type): the shared parameters that never agree, with each
    method's values ("scope: magnitude global, magnitude-oneshot layer"), so that the reader
    knows what kept them apart; None where no two rows share a table (the caller says that).
    Printable: the values are a record's text."""
    a, b = (m if isinstance(m, MethodSpec) else MethodSpec(m) for m in (method_a, method_b))
    left_out = _unpaired(a, b, ignore)
    rows_b = _method_rows(recs, b)
    values: dict[str, tuple[set[str], set[str]]] = {}
    for _, key, pa in _method_rows(recs, a):
        for _, _, pb in (row for row in rows_b if row[1] == key):
            na, nb = _by_own_name(pa), _by_own_name(pb)
            for name in (na.keys() & nb.keys()) - left_out:
                seen = values.setdefault(name, (set(), set()))
                seen[0].add(f"{na[name][1]}")
                seen[1].add(f"{nb[name][1]}")
    if not values:
        return None
    apart = {name: v for name, v in sorted(values.items()) if not v[0] & v[1]}
    return printable("; ".join(f"{name}: {a.label} {', '.join(sorted(va))}, {b.label} {', '.join(sorted(vb))}"
                               for name, (va, vb) in apart.items())) or None


def _by_own_name(flat: dict[str, Any]) -> dict[str, tuple[str, Any]]:
    """A run's flat parameters by their own names ("magnitude.sparsity" -> "sparsity"), each with
    its flat name; a name that two links of a chain have is left out (it would be ambiguous)."""
    own: dict[str, list[tuple[str, Any]]] = {}
    for name, value in flat.items():
        own.setdefault(name.rsplit(".", 1)[-1], []).append((name, value))
    return {name: found[0] for name, found in own.items() if len(found) == 1}


def _change(ra: list[dict[str, Any]], rb: list[dict[str, Any]], method: str, setting: str, level: float,
            *, exact: bool) -> RowChange:
    """B's seeds against A's: the change in mean accuracy, its interval and p (against the
    machine margin where the sides' machine models differ), and (with `exact`) the counts whose
    mean moved. The verdict waits for the other rows (`_judged`), but for too few seeds."""
    acc_a = [100 * r["metrics"]["accuracy"] for r in ra]
    acc_b = [100 * r["metrics"]["accuracy"] for r in rb]
    ci = welch_interval(acc_a, acc_b, level)
    margin = machine_margin(ra, rb)
    moved = {}
    for figure in records.EXACT if exact else ():
        va = [r["metrics"][figure] for r in ra if r["metrics"].get(figure) is not None]
        vb = [r["metrics"][figure] for r in rb if r["metrics"].get(figure) is not None]
        if va and vb and statistics.fmean(va) != statistics.fmean(vb):
            moved[figure] = (statistics.fmean(va), statistics.fmean(vb))
    c = ra[0]["config"]
    return RowChange(c["suite"], method, setting, table_budget(c), (len(ra), len(rb)),
                     (statistics.fmean(acc_a), statistics.fmean(acc_b)),
                     statistics.fmean(acc_b) - statistics.fmean(acc_a), ci, "too few seeds", moved,
                     machine_margin=margin, p=welch_p(acc_a, acc_b, margin),
                     compression=(_mean_compression(ra), _mean_compression(rb)))


def _mean_compression(recs: list[dict[str, Any]]) -> float | None:
    """A side's mean compression (x smaller than dense), None where no record has it: two methods
    paired at one sparsity can differ in size several times over (deep-compression's 18.6x against
    magnitude+ptq-int8's 11.1x at 80% on mnist), which an accuracy verdict alone hid."""
    values = [r["metrics"]["compression"] for r in recs if r["metrics"].get("compression") is not None]
    return statistics.fmean(values) if values else None


def _judged(changes: list[RowChange], level: float) -> list[RowChange]:
    """The rows with their verdicts, Holm-adjusted over those with a p (module docstring):
    `better` or `worse` where the adjusted p clears 1 - level, CHANCE where only the row's own
    does, UNCLEAR where the interval excludes zero but not the machines' margin."""
    adjusted = iter(holm([c.p for c in changes if c.p is not None]))
    out = []
    for c in changes:
        if c.p is None or c.ci is None:  # (the same rows: fewer than two seeds on a side)
            out.append(c)
            continue
        p_holm = next(adjusted)
        if p_holm < 1 - level:
            verdict = "better" if c.change > 0 else "worse"
        elif c.p < 1 - level:
            verdict = CHANCE
        else:
            verdict = UNCLEAR if c.ci[0] > 0 or c.ci[1] < 0 else NOT_SIGNIFICANT
        out.append(dataclasses.replace(c, verdict=verdict, p_holm=p_holm))
    return out


def machine_margin(ra: list[dict[str, Any]], rb: list[dict[str, Any]]) -> float:
    """0 where both sides' records come from one and the same machine model, else MACHINE_MARGIN
    (a side from several models is a model of its own: its offset is its own mix)."""
    models = [{machine(r) for r in side} for side in (ra, rb)]
    return 0.0 if len(models[0]) == 1 and models[0] == models[1] else MACHINE_MARGIN


def machines_note(changes: list[RowChange], noun: str) -> str:
    """The line saying how many rows compare records of different machine models, and what their
    verdicts had to clear: without it "not significant" there reads as the seeds' verdict alone."""
    n = sum(c.machine_margin > 0 for c in changes)
    if not n:
        return ""
    return (f"{n} of {counted(len(changes), noun)} with records from different machine models: accuracy moves "
            f"between models by more than between seeds, so better or worse there needs the interval beyond "
            f"±{MACHINE_MARGIN:g} pts (unclear: beyond zero only)")


def chance_note(changes: list[RowChange], noun: str) -> str:
    """The line for the rows significant on their own but not after Holm's correction: without
    it, "0 rows worse" beside a row whose interval lies below zero reads as a contradiction."""
    n = sum(c.verdict == CHANCE for c in changes)
    if not n:
        return ""
    judged = sum(c.p is not None for c in changes)
    return (f"{n} of {counted(len(changes), noun)} {CHANCE}: significant on {'its' if n == 1 else 'their'} own, not "
            f"among the {judged} judged (at 95%, one unchanged {noun} in twenty is significant on its own by chance); "
            "more seeds tell them apart")


def unjudged_note(changes: list[RowChange], noun: str) -> str:
    """The line after a comparison's count of worse rows, where some rows could not be judged:
    "0 of 6 settings worse", when each side has one seed, reads as a verdict that there was no
    regression, whatever the change (a one-seed quick run, 81 points down, said just that)."""
    n = sum(c.verdict == "too few seeds" for c in changes)
    if not n:
        return ""
    return (f"{n} of {counted(len(changes), noun)} not judged (too few seeds): a side has one seed, which gives "
            "no spread to tell a change from noise; run two or more (--seeds 0,1,2) for an interval")


def _ordered(changes: list[RowChange]) -> list[RowChange]:
    return sorted(changes, key=lambda r: (r.suite, r.method, r.setting, r.others, r.budget))


def unshared(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> tuple[int, int]:
    """How many rows only A, and only B, holds: left out of the comparison."""
    rows_a, rows_b = records.rows(a), records.rows(b)
    return len(rows_a.keys() - rows_b.keys()), len(rows_b.keys() - rows_a.keys())


def apart(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> str | None:
    """Why no row of A pairs with a row of B, where A's and B's finished records differ in all
    of their budgets, data sources or device types (a quick run's records against the committed
    ones), or in all of their combinations of the three (A's quick runs on the CPU and full runs
    on a GPU, B's the other way round): named, since an empty table alone reads as two sets of
    results that agree. Printable: the names are a record's text."""
    a, b = [r for r in a if r["status"] == Status.OK], [r for r in b if r["status"] == Status.OK]
    if not a or not b:
        return None
    keys = {"budgets": lambda r: table_budget(r["config"]),
            "data sources": lambda r: r["config"]["data_source"],
            "devices": lambda r: r["env"]["device"].split(":")[0]}
    parts = []
    for what, of in keys.items():
        in_a, in_b = sorted({of(r) for r in a}), sorted({of(r) for r in b})
        if not set(in_a) & set(in_b):
            parts.append(f"A's {what}: {'; '.join(in_a)}, B's: {'; '.join(in_b)}")
    if not parts:
        def combos(recs: list[dict[str, Any]]) -> set[str]:
            return {" / ".join(of(r) for of in keys.values()) for r in recs}
        if not combos(a) & combos(b):
            parts.append(f"A's budget / data source / device: {'; '.join(sorted(combos(a)))}, "
                         f"B's: {'; '.join(sorted(combos(b)))}")
    return printable("; ".join(parts)) or None


# The most bytes of records `bench compare` writes out from one commit (each file counted as at
# least a block of disk): a commit is small in git however much it unpacks to (a 15 GB file of
# zeros packs to a few MB), and thousands of records of a few KB stay far below it.
MAX_COMMIT_RECORDS_BYTES = 256 * 2**20
_BLOCK = 4096


@dataclass(frozen=True)
class Side:
    """One side of a comparison: the results folder its records are read from, what it is for
    the user (the `A = ...` line), and what its files are called in warnings where the folder is
    a scratch copy of a commit's records (None: the user's own folder, named as it is)."""

    folder: Path
    what: str
    shown_as: str | None = None

    def load(self, suite: str) -> list[Record]:
        """The suite's usable records. Each file left out is named with why, as the leaderboard
        names its own (records.reported_records): a row must not lose a seed unnoticed."""
        return [r for _, r in records.reported_records(self.folder, suite, "the comparison", self.shown_as)]


@contextlib.contextmanager
def sides(specs: list[str], suite: str | None) -> Iterator[list[Side]]:
    """Each of `specs` (A, then B) as a Side (`results_of`), A's refusal first. A commit's records
    are written out to a scratch folder that lives as long as the comparison reads it and is
    removed afterwards, whatever happens: nothing is left in /tmp."""
    with tempfile.TemporaryDirectory(prefix="bench-compare-") as tmp:
        yield [results_of(spec, Path(tmp) / side, suite) for spec, side in zip(specs, "ab")]


def results_of(spec: str, scratch: Path, suite: str | None) -> Side:
    """The side named by `spec`, with what it is, for the user: a results folder itself, or the
    records of a git commit (of `suite`, or of every suite) written out under `scratch`, so that
    the working tree is never touched. A commit is looked up in the git repository of the
    current folder, else in bench's own checkout: the user names a commit of where they are."""
    if Path(spec).is_dir():
        return Side(Path(spec), f"{spec}: a results folder")
    if why := layout.no_quick_results_yet(spec):
        raise ParameterError(why)
    top = provenance.git_toplevel(Path.cwd()) or provenance.git_toplevel(Path(__file__).resolve().parent)
    if top is None:
        raise ParameterError(f"{brief(spec)} is neither a results folder nor a git commit (no git repository "
                             "here, and bench runs from no git checkout)")
    git = ["git", "-C", top]
    found = subprocess.run([*git, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{spec}^{{commit}}"],
                           capture_output=True, text=True)
    if found.returncode != 0:
        raise ParameterError(f"{brief(spec)} is neither a results folder nor a git commit of {top}")
    sha = found.stdout.strip()
    what = f"{spec}: commit {sha[:12]} of {top}"
    if subprocess.run([*git, "cat-file", "-t", f"{sha}:results"], capture_output=True, text=True).stdout != "tree\n":
        raise ParameterError(f"commit {spec} of {top} has no results/ folder")
    wanted = _record_blobs(git, sha, suite, what)
    scratch.mkdir(parents=True)
    with subprocess.Popen([*git, "cat-file", "--batch"], stdin=subprocess.PIPE, stdout=subprocess.PIPE) as cat:
        assert cat.stdin is not None and cat.stdout is not None
        for path, oid, size in wanted:
            cat.stdin.write(oid + b"\n")
            cat.stdin.flush()
            header = cat.stdout.readline(200).split()
            if header[1:] != [b"blob", str(size).encode()]:
                raise ParameterError(f"{what}: git gave no blob of {size} bytes for results/{path}")
            data = cat.stdout.read(size + 1)[:size]  # the blob and the newline after it
            (scratch / path).parent.mkdir(parents=True, exist_ok=True)
            (scratch / path).write_bytes(data)
        cat.stdin.close()
    return Side(scratch, what, shown_as=f"{what}: results")


def _record_blobs(git: list[str], sha: str, suite: str | None, what: str) -> list[tuple[str, bytes, int]]:
    """(path under results/, blob id, size) of each record file `bench compare` reads from commit
    `sha`: SUITE/runs/NAME.json, of `suite` or of every suite. git lists them without unpacking
    any, and the list is read a block at a time: memory stays bounded whatever the commit holds.
    A record over records.MAX_RECORD_BYTES, or that is no regular file, is left out with a warning
    naming it, as a results folder's is; more than MAX_COMMIT_RECORDS_BYTES of them is refused."""
    wanted: list[tuple[str, bytes, int]] = []
    total = 0
    listing = [*git, "ls-tree", "-r", "-l", "-z", f"{sha}:results", *(["--", f"{suite}/runs/"] if suite else [])]
    with subprocess.Popen(listing, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL) as ls:
        assert ls.stdout is not None
        for entry in _nul_ended(ls.stdout, what):
            fields, _, name = entry.partition(b"\t")
            mode, _, oid, size = fields.split()
            path = os.fsdecode(name)
            parts = path.split("/")
            if len(parts) != 3 or parts[1] != "runs" or not parts[2].endswith(".json") or not is_plain_name(parts[0]):
                continue
            if mode not in (b"100644", b"100755"):  # (a file's name is a committer's text: printable)
                print(printable(f"bench: warning: {what}: results/{path} left out: not a regular file"), file=sys.stderr)
            elif int(size) > records.MAX_RECORD_BYTES:
                print(printable(f"bench: warning: {what}: results/{path} left out: larger than "
                                f"{records.MAX_RECORD_BYTES:,} bytes"), file=sys.stderr)
            else:
                total += max(int(size), _BLOCK)
                if total > MAX_COMMIT_RECORDS_BYTES:
                    raise ParameterError(
                        f"{what}: its records{f' of suite {suite}' if suite else ''} hold more than "
                        f"{MAX_COMMIT_RECORDS_BYTES:,} bytes, more than bench compare writes out from a commit")
                wanted.append((path, oid, int(size)))
    if ls.returncode != 0:
        raise ParameterError(f"{what}: git could not list its results/ folder")
    return wanted


def _nul_ended(stream: IO[bytes], what: str) -> Iterator[bytes]:
    """The NUL-ended entries of git's -z output, read a block at a time; an entry longer than a
    block (a path of megabytes, which no record has) is refused rather than held in memory."""
    pending = b""
    while block := stream.read(2**16):
        *entries, pending = (pending + block).split(b"\0")
        yield from entries
        if len(pending) > 2**16:
            raise ParameterError(f"{what}: its results/ folder lists a path of over {2**16:,} bytes")
