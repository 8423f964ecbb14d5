"""The leaderboard table: run records in, one aggregated row per method and setting out.

A pure function of the records. Rows are one method and setting (e.g. each sparsity) in one
table (data source, budget, device type), aggregated over seeds: the mean, the median for the
metrics that say so, the std of accuracy and its change against `dense` and `dense-ft`. Columns,
their scale and rounding come from the metric registry (bench.metrics). Each row keeps its
parameters as a mapping (`setting_params`): labels are made from them for reading, never parsed back.
The renderers (bench.render: Markdown, the terminal; bench.site), the plots (bench.plots) and
the files (bench.leaderboard) all start from here.
"""

from __future__ import annotations

import difflib
import functools
import math
from pathlib import Path
from typing import Any, Collection, Iterable

import numpy as np
import pandas as pd

from bench import metrics, records
from bench.errors import ParameterError, counted, first_line, printable
from bench.metrics import Column
from bench.plan import flat_params, setting_label
from bench.records import Record, Status


def budget_label(budget: dict[str, Any]) -> str:
    """A budget in a few words, as the tables head it: '20+10 epochs, limit_train=4000'."""
    text = f"{budget['epochs']}+{budget['finetune_epochs']} epochs"
    for key in ("limit_train", "limit_test"):
        if budget.get(key) is not None:
            text += f", {key}={budget[key]}"
    return text


def table_budget(config: dict[str, Any]) -> str:
    """A run's table heading: its budget's label, and the layers its suite kept dense where it kept
    any (`dense_layers`), so that one suite's records with and without that rule, which are
    different rows, are told apart wherever their rows are shown."""
    kept = config.get("dense_layers")
    return budget_label(config["budget"]) + (f", dense {'+'.join(kept)}" if kept else "")


def table_columns(recs: list[Record]) -> list[Column]:
    """The registered metrics that the successful records hold."""
    return metrics.columns({k for r in recs if r["status"] == Status.OK for k in r["metrics"]})


def row_key(r: Record) -> dict[str, Any]:
    """What places a record in a leaderboard: its table (data source, budget, device type),
    method, setting, seed and the device its speed was timed on. The table's heading names the
    layers the suite kept dense (table_budget), so that the records of one suite file run with and
    without that rule make tables of their own instead of pooling in a row."""
    c = r["config"]
    device = r["env"]["device"].split(":")[0]
    return {"data_source": c["data_source"], "budget": table_budget(c), "device": device,
            "method": c["method"], "setting": setting_label(c["params"]), "seed": c["seed"],
            "timed_on": r.get("measured_on", {}).get("device", device)}


def _shown_key(r: Record) -> dict[str, Any]:
    """A record's `row_key` as the table holds it: its text printable, so that a record's control
    characters never reach a view."""
    return {k: printable(v) if isinstance(v, str) else v for k, v in row_key(r).items()}


def frame(recs: list[Record], cols: list[Column]) -> pd.DataFrame:
    """One row per successful record, with its parameters (`flat_params`) and the columns of the
    recorded metrics in `cols`."""
    rows = []
    for r in recs:
        if r["status"] != Status.OK:
            continue
        m = r["metrics"]
        row = _shown_key(r)
        row.update(setting_params=flat_params(r["config"]["params"]), machine=records.machine(r))
        for col in cols:
            if col.column and col.spec.recorded:
                row[col.column] = None if m.get(col.key) is None else m[col.key] * col.spec.scale
        rows.append(row)
    return pd.DataFrame(rows)


TABLE = ["data_source", "budget", "device"]  # one table each: rows that may be compared
ROW = [*TABLE, "method", "setting", "timed_on"]  # one row each: the seeds a row's mean is over


REFERENCES = {"dense": 0, "dense-ft": 1}  # listed first; accuracy changes are taken against both


def aggregate(df: pd.DataFrame, cols: list[Column]) -> pd.DataFrame:
    """Mean over seeds per (data source, budget, device type, method, setting, device timed on),
    the median for metrics that say so (wall times and the speedups and latencies timed like them,
    which one run on a busy machine would move), a wall time with its lowest and highest seed
    beside it (`<column>_min`, `<column>_max`: the slow seed the median leaves out);
    accuracy also gets its std and its change versus the `dense` row of the same table
    (delta_acc) and versus the matched-budget `dense-ft` row (delta_ft): a method's effect, told
    apart from the effect of its extra training. `partial_seeds` maps each figure that only some of
    the row's seeds hold (records made before the harness recorded it) to how many: the mean of one
    seed read as the row's (an `own time` of 56 s beside a median train time of 51 s over three).
    `machines` names the processors or GPUs that
    trained the row's seeds: accuracy moves between machine models by more than between seeds
    (README, Literature checks), so rows compare fairly within one. Unrounded: `rounded` gives
    the CSV's decimals."""
    keys = ROW
    values = [c for c in df.columns if c not in keys + ["seed", "machine", "setting_params"]]
    grouped = df.groupby(keys, sort=True)
    how = {c.column: c.spec.aggregate for c in cols if c.column}
    out = grouped[values].agg({v: how.get(v, "mean") for v in values})
    for c in cols:  # a median's lowest and highest seed, beside it
        if c.spec.seed_range and c.column in out:
            at = out.columns.get_loc(c.column) + 1
            out.insert(at, f"{c.column}_min", grouped[c.column].min())
            out.insert(at + 1, f"{c.column}_max", grouped[c.column].max())
    out["setting_params"] = grouped["setting_params"].first()  # one setting, one mapping: the label is made from it
    held, seeds = grouped[values].count(), grouped.size()
    out["partial_seeds"] = [{c: int(n) for c, n in held.loc[k].items() if 0 < n < seeds.loc[k]} for k in out.index]
    out.insert(0, "seeds", seeds)
    out.insert(1, "machines", grouped["machine"].agg(lambda m: "; ".join(sorted(set(m)))))
    out.insert(3, "accuracy_std_%", grouped["accuracy_%"].std(ddof=1).fillna(0.0))
    out = out.rename(columns={"accuracy_%": "accuracy_mean_%"}).reset_index()
    for reference, column, at in (("dense", "delta_acc_pts", 4), ("dense-ft", "delta_ft_pts", 5)):
        base = out[out.method == reference].set_index(TABLE)["accuracy_mean_%"]
        base = base[~base.index.duplicated()]
        out.insert(len(keys) + at, column, [base.get(tuple(r[TABLE]), None) for _, r in out.iterrows()])
        out[column] = out["accuracy_mean_%"] - out[column].astype(float)
    out["_order"] = out["method"].map(lambda m: REFERENCES.get(m, len(REFERENCES)))
    out = out.sort_values([*TABLE, "_order", "method", "setting"]).drop(columns="_order")
    return out.reset_index(drop=True)


def records_by_row(recs: list[Record]) -> dict[tuple, list[Record]]:
    """(table, method, setting, timed_on) of each aggregated row (`ROW`) -> its finished records,
    the seeds its mean is over."""
    out: dict[tuple, list[Record]] = {}
    for r in recs:
        if r["status"] == Status.OK:
            key = _shown_key(r)
            out.setdefault(tuple(key[k] for k in ROW), []).append(r)
    return out


def machines_by_row(recs: list[Record]) -> dict[tuple, set[str]]:
    """(table, method, setting, timed_on) of each aggregated row (`ROW`) -> the machine models that
    trained its seeds."""
    return {key: {records.machine(r) for r in rows} for key, rows in records_by_row(recs).items()}


def machine_labels(t: pd.DataFrame, machines: dict[tuple, set[str]]) -> tuple[dict[tuple, str], list[str]]:
    """Where the rows of one table `t` were trained on more than one machine model, each row's
    models as short names ("M1", "M1, M2"; by its `ROW` key) and the legend ("M1: AMD EPYC ...
    (120 rows)"); ({}, []) where one model trained them all. Accuracy and train time move between
    models (an `mnist` lottery setting trained on another processor read 280 s beside 780 s), so
    the Markdown and the site mark each row with them."""
    rows = {tuple(r[k] for k in ROW): sorted(machines.get(tuple(r[k] for k in ROW), ())) for _, r in t.iterrows()}
    models = sorted({m for ms in rows.values() for m in ms})
    if len(models) < 2:
        return {}, []
    name = {m: f"M{i + 1}" for i, m in enumerate(models)}
    return ({key: ", ".join(name[m] for m in ms) for key, ms in rows.items()},
            [f"{name[m]}: {m} ({counted(sum(m in ms for ms in rows.values()), 'row')})" for m in models])


def measured_columns(t: pd.DataFrame, cols: list[Column]) -> list[Column]:
    """The measured speedup columns with a value in `t`."""
    return [c for c in cols
            if c.spec.name == "speedup{runtime}_b{batch}" and c.column in t and t[c.column].notna().any()]


def best_speedups(t: pd.DataFrame, cols: list[Column]) -> list[tuple[Column, str]]:
    """The suite's best runtime at batch 1 and at its largest batch: per batch, the runtime whose
    median measured speedup over the compressed rows is highest. (column, label) each, batch 1 first.
    One runtime for the whole table, the plots', the site's and the terminal's: picked row by row it
    would flatter each, and one fixed runtime (eager) reads an int8 model, which eager runs through
    fake quantization, as 0.15x."""
    compressed = t[~t.method.isin(REFERENCES)]
    by_batch: dict[int, list[Column]] = {}
    for col in measured_columns(t, cols):
        by_batch.setdefault(col.batch, []).append(col)
    if not by_batch:
        return []
    def median(col: Column) -> float:  # a runtime that timed no compressed row ranks last: max() kept a NaN it met first
        value = compressed[col.column].median(skipna=True)
        return -math.inf if pd.isna(value) else float(value)

    out = []
    for batch in sorted({min(by_batch), max(by_batch)}):
        best = max(by_batch[batch], key=lambda c: (median(c), c.column))
        out.append((best, f"{best.runtime}, batch {batch}"))
    return out


def at_decimals(value: Any, decimals: int) -> float:
    """`value` rounded to `decimals` as `rounded` rounds the CSV's columns (numpy's rounding: the
    value scaled, then half to even), -0.0 made 0.0. Every view rounds a figure it shows so, once:
    a cell shown at the CSV's decimals then reads as the CSV does. Python's round and format
    round the binary value instead, and differ at a half: the mean of two seeds at 97.02 and
    97.03% is 97.02 in the CSV and read 97.03 in the Markdown, the terminal and the site."""
    return float(np.round(float(value), decimals)) + 0.0


def as_shown(values: pd.Series, metric: str) -> pd.Series:
    """`metric`'s values at the decimals every view shows it (`at_decimals`), for the rules of the
    views that pick or group rows (the site's best at each size and pivot, the frontier): rows a
    reader sees as equally accurate are equal there, a hair's difference picks no winner, and a
    compression shown as 4.0 counts as 4x."""
    shown = metrics.spec_of(metric).shown
    return values.astype(float).map(lambda v: at_decimals(v, shown))


def rounded(table: pd.DataFrame, cols: list[Column]) -> pd.DataFrame:
    """The table at the decimals each metric declares for the CSV (its `decimals`), as files and
    tools get it. The views that show fewer (Markdown's `shown`, the site) format the unrounded
    table instead (`at_decimals`, which rounds as this does): rounding twice showed a compression
    of 4.2546, 4.25 in the CSV, as 4.2."""
    out = table.copy()
    decimals = {col.column + end: col.spec.decimals for col in cols if col.column
                for end in ("", *(("_min", "_max") if col.spec.seed_range else ()))}
    decimals.update({"accuracy_mean_%": 2, "accuracy_std_%": 2})
    for col, d in decimals.items():
        if col in out:
            out[col] = out[col].astype(float).round(d) + 0.0  # + 0.0 turns -0.0 into 0.0
            if d == 0:
                out[col] = out[col].astype("Int64")
    return out


def table(recs: list[Record]) -> tuple[pd.DataFrame, list[Column]]:
    """The leaderboard of `recs` (`aggregate` of their `frame`; empty without a finished run) and
    its columns: what every view of the records starts from."""
    cols = table_columns(recs)
    df = frame(recs, cols)
    return (aggregate(df, cols) if len(df) else pd.DataFrame()), cols


def file_columns(table: pd.DataFrame) -> pd.DataFrame:
    """The table's columns as files give them (the CSV, `--show --format csv|json|markdown`): the
    parameters' mapping left out, which the `setting` column spells out, and the figures that only
    some of a row's seeds hold (`partial_seeds`) as text, each with how many ("own_time_s 1"): a
    tool reading the CSV took one seed's figure for the row's mean over its `seeds`."""
    out = table.drop(columns="setting_params", errors="ignore")
    if "partial_seeds" in out:  # beside `machines`: what a row's seeds hold, before its figures
        held = out.pop("partial_seeds").map(
            lambda held: ", ".join(f"{c} {n}" for c, n in sorted(held.items())) if isinstance(held, dict) else "")
        out.insert(out.columns.get_loc("machines") + 1 if "machines" in out else len(out.columns), "partial_seeds", held)
    return out


def csv_text(table: pd.DataFrame) -> str:
    """The (`rounded`) table as the leaderboard's CSV (`file_columns`)."""
    table = file_columns(table)
    text = [c for c in table.columns if table[c].map(lambda v: isinstance(v, str)).any()]
    return table.assign(**{c: table[c].map(_inert) for c in text}).to_csv(index=False, lineterminator="\n")


def _inert(value: Any) -> Any:
    """A text cell a spreadsheet will not run: one that starts as a formula does (`=HYPERLINK(...)`,
    `+`, `-`, `@`), also after spaces or tabs (which an importer that trims them drops), gets a leading
    `'`, as OWASP advises for CSV files; numbers stay numbers."""
    runs = isinstance(value, str) and len(value) > 1 and (value[0] in "\t\r" or value.lstrip()[:1] in tuple("=+-@"))
    return f"'{value}" if runs else value


def family_of(method: str, families: dict[str, str]) -> str:
    """A method's family; a chain is "combined"; a method the catalog does not know, "other"."""
    return families.get(method, "combined" if "+" in method else "other")


def setting_sparsity(params: dict[str, Any]) -> float | None:
    """The sparsity a row's parameters name: its own, or its first chain link's; None if none."""
    for key, value in params.items():
        if key.split(".")[-1] == "sparsity":
            return level(value)
    return None


def level(value: Any) -> float | None:
    """A swept parameter's value as a level, None where it is no number: a record may hold any
    JSON value there (null, text), which a table shows and no pivot or filter can place."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def distinct_settings(t: pd.DataFrame) -> pd.Series:
    """Per row, what tells it apart from its method's other rows: the parameters that differ
    between them, of those its row shows (`shown_params`: the swept one, and the others where
    they are not the default; of two rows that differ in a parameter, at most one has its
    default), the swept one first, so that a terminal that narrows the column shows it first;
    printable (a record's values are a tamperer's text); "-" for none."""
    out = {}
    for method, m in t.groupby("method", sort=True):
        params = {i: {k: str(v) for k, v in p.items()} for i, p in zip(m.index, m.setting_params)}
        keys = {k for p in params.values() for k in p}
        varying = [k for k in keys if len({p.get(k) for p in params.values()}) > 1] if len(m) > 1 else keys
        keep = sorted(varying, key=lambda k: (not is_swept(method, k), k))
        for i, p in zip(m.index, m.setting_params):
            shown = shown_params(method, p)
            out[i] = printable(", ".join(f"{k}={params[i][k]}" for k in keep if k in shown)) or "-"
    return pd.Series(out).reindex(t.index)


def unavailable_runtimes(recs: list[Record]) -> list[list[str]]:
    """(method, setting, runtime, reason) of each runtime that could not take a model."""
    return [list(e) for e in sorted({
        (r["config"]["method"], record_setting(r), runtime, note["reason"])
        for r in recs if r["status"] == Status.OK
        for runtime, note in r.get("figures", {}).get("deploy", {}).get("runtimes", {}).items()
        if note["status"] != "ok"})]


def failed_runs(recs: list[Record]) -> list[tuple[list[Any], Record]]:
    """([method, setting, seed, status, error], record) of each run that did not finish ok, sorted
    by content, not file name: a record's name holds its config hash, so seeds of one setting
    would otherwise appear in hash order."""
    rows = [([r["config"]["method"], record_setting(r), r["config"]["seed"], r["status"],
              first_line(r.get("error"), 160)], r) for r in recs if r["status"] != Status.OK]
    return sorted(rows, key=lambda row: [str(v) for v in row[0]])


def environment(r: Record) -> str:
    """Where a run ran, as one line."""
    env = r["env"]
    return f"{env['device_name']} ({env['device']}), torch {env['torch']}, {env['threads']} threads"


def code_of(r: Record) -> str:
    """The code that made a run: its commit, whether the checkout had uncommitted changes (then no
    commit holds that code and the row cannot be reproduced from it), and whether the commit was
    only named by $BENCH_GIT_COMMIT (code sent without its .git: no checkout vouched for it)."""
    commit = r["env"].get("git_commit")
    if not commit:  # a run that failed before its worker could say (its env is partial)
        return "unknown commit"
    dirty = commit.endswith("-dirty")
    named = " (named by $BENCH_GIT_COMMIT, unverified)" if r["env"].get("commit_from_env") else ""
    return commit.removesuffix("-dirty")[:12] + (" with uncommitted changes" if dirty else "") + named


def select(table: pd.DataFrame, cols: list[Column], families: dict[str, str], sparsity: float | None = None,
           family: str | None = None, sort: str | None = None, methods: Collection[str] | None = None,
           min_compression: float | None = None) -> pd.DataFrame:
    """The rows of an aggregated table that `leaderboard --show` asks for: those of the `family`,
    `sparsity` and `methods` asked for, at least `min_compression` times smaller than the dense
    model as the tables show it (3.97x reads 4.0: at least 4x, as the site's best at each size
    counts it; a size budget is how a reader asks, "at least 10x smaller"), and the references
    (`dense`, `dense-ft`) always; sorted by the column `sort`, best first by the metric's direction
    (lowest first where lower is better or no direction is registered), the references first in
    each table, in their fixed order."""
    reference = table.method.isin(REFERENCES)
    keep = pd.Series(True, index=table.index)
    if min_compression is not None:
        compression = (as_shown(table["compression_x"], "compression") if "compression_x" in table
                       else pd.Series(float("nan"), index=table.index))  # no size recorded: no row qualifies
        keep &= compression >= min_compression
    if family:
        keep &= table.method.map(lambda m: family_of(m, families)) == family
    if methods is not None:
        keep &= table.method.isin(methods)
    if sparsity is not None:
        levels = table.setting_params.map(setting_sparsity)
        keep &= levels.map(lambda level: level is not None and abs(level - sparsity) < 1e-9)
    table = table[keep | reference]
    if sort is None:
        return table
    higher = {c.column: c.spec.higher_is_better for c in cols if c.column}
    higher["accuracy_mean_%"] = True
    if sort not in table.columns or sort not in higher:
        choices = [c for c in table.columns if c in higher]
        close = difflib.get_close_matches(sort, choices, n=1, cutoff=0.6)
        raise ParameterError(f"--sort {sort!r}: {f'did you mean {close[0]}? ' if close else ''}expected a column "
                             f"of the table: {', '.join(choices)}")
    order = table.method.map(lambda m: REFERENCES.get(m, len(REFERENCES)))
    return table.assign(_order=order).sort_values(
        ["_order", sort], ascending=[True, not higher[sort]], kind="stable").drop(columns="_order")


def main_rows(table: pd.DataFrame) -> pd.DataFrame:
    """The largest table group (data source, budget, device type): what one plot compares, and
    what the site's headline reads."""
    sizes = table.groupby(TABLE, sort=True).size()
    return table[(table[TABLE] == pd.Series(sizes.idxmax(), index=TABLE)).all(axis=1)] if len(sizes) > 1 else table


def plot_frame(table: pd.DataFrame, known: dict[str, str] | None = None) -> tuple[pd.DataFrame, str]:
    """The rows the plots draw (`main_rows`) with what bench.plots needs beside the table's
    columns: size in bytes, family, reference flag, a label (method and short setting) and a
    series (one plot line: method and non-default settings other than the swept one); and the
    y column: the change against dense, or the accuracy where the table has no dense row.
    `known`: method -> family (`families(recs)`; by default the plugins')."""
    known = known if known is not None else families()
    t = main_rows(table)
    size = t["size_KiB"].astype(float) * 1024 if "size_KiB" in t else pd.Series(float("nan"), index=t.index)
    short = [short_setting(m, p) for m, p in zip(t.method, t.setting_params)]
    t = t.assign(size_bytes=size, family=t.method.map(lambda m: family_of(m, known)),
                 reference=t.method.isin(REFERENCES),
                 label=[m + ("" if s == "-" else f" {s}") for m, s in zip(t.method, short)],
                 series=[series_label(m, p) for m, p in zip(t.method, t.setting_params)])
    return t, "delta_acc_pts" if (t.method == "dense").any() else "accuracy_mean_%"


def series_label(method: str, params: dict[str, Any]) -> str:
    """A plot line's name: the method and its non-default settings (`short_setting`) other than
    its swept parameter, so that lottery and its reinit control are "lottery" and
    "lottery (reinit=True)" and each line gathers its sparsity levels."""
    rest = [f"{k}={v}" for k, v in shown_params(method, params).items() if not is_swept(method, k)]
    return method + (f" ({', '.join(rest)})" if rest else "")


def load(results_dir: Path, suite: str) -> list[Record]:
    """A suite's records, each with its file name under "_stem" (what the site links to); a file
    that cannot be read is named in a warning, never dropped silently."""
    return [{**r, "_stem": stem} for stem, r in records.reported_records(results_dir, suite, "the leaderboard")]


@functools.cache
def _plugins() -> dict[str, Any]:
    """Method -> its bench.catalog.PluginInfo, read from the plugins' source: no plugin (and no
    torch) is imported. Read once per process: a rebuild asks per suite, budget and site page."""
    from bench.catalog import catalog

    return {info.name: info for info in catalog() if info.problem is None}


def families(recs: Iterable[Record] = ()) -> dict[str, str]:
    """Method -> family: what `recs` say (a record names its method's family since the harness
    stored it), else what the plugin's source says today."""
    known = {name: info.family for name, info in _plugins().items()}
    for r in recs:
        family = (r.get("method_info") or {}).get("family")
        if isinstance(family, str):
            known[r["config"]["method"]] = family
    return known


def method_sweeps() -> dict[str, str]:
    """Method -> the parameter the harness sweeps over the suite's sparsities, for those that have one."""
    return {name: info.sweep for name, info in _plugins().items() if info.sweep}


def is_swept(method: str, key: str) -> bool:
    """Whether a setting's parameter (`sparsity`, or a chain link's `magnitude.sparsity`) is the
    one the harness sweeps for its method or link."""
    link, _, name = key.rpartition(".")
    return method_sweeps().get(link or method) == name


def shown_params(method: str, params: dict[str, Any]) -> dict[str, Any]:
    """The parameters a reader wants to see of a row (`flat_params`): the swept one and those that
    differ from the method's defaults (a chain's link parameters against that link's defaults),
    so that a row reads "sparsity=0.9, calibration_samples=128" rather than seven parameters, five
    of them defaults. Display only: rows are still grouped, and records keyed, by every
    parameter. A parameter of a method the catalog does not know is always shown."""
    plugins = _plugins()
    shown = {}
    for key, value in params.items():
        link, _, name = key.rpartition(".")
        info = plugins.get(link or method)
        known = info is not None and name in info.parameters
        if not known or is_swept(method, key) or str(info.parameters[name]) != str(value):
            shown[key] = value
    return shown


def short_setting(method: str, params: dict[str, Any]) -> str:
    """A row's setting as text: its `shown_params`, or "-" for none."""
    return ", ".join(f"{k}={v}" for k, v in shown_params(method, params).items()) or "-"


def record_setting(r: Record) -> str:
    """A record's setting as its row shows it (`short_setting`)."""
    return short_setting(r["config"]["method"], flat_params(r["config"]["params"]))
