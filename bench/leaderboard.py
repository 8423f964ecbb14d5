"""Leaderboards as a pure function of the run records: CSV, Markdown, a terminal view, and plots
(bench.plots: the accuracy-size frontier, family panels, measured against theoretical speedup).

Rows are one method and setting (e.g. each sparsity), aggregated over seeds (mean, and std for
accuracy). Columns, their order, scale and number formats come from the metric registry
(bench.metrics); the Markdown has a main table and a speed table per data source and budget.
Standard-budget runs go to leaderboard.{csv,md}; runs with overridden budgets go to
leaderboard-custom.{csv,md}, keyed by their budget, so the two never mix. Within a file, each data
source is its own table. Sorting and number formats are fixed, so the same records always give
the same bytes.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Any, Iterable

import pandas as pd
from tabulate import tabulate

from bench import metrics, plots, records
from bench.records import Status
from bench.metrics import Column
from bench.plan import setting_label
from bench.registry import ParameterError


def _budget_label(budget: dict[str, Any]) -> str:
    text = f"{budget['epochs']}+{budget['finetune_epochs']} epochs"
    for key in ("limit_train", "limit_test"):
        if budget.get(key) is not None:
            text += f", {key}={budget[key]}"
    return text


def table_columns(recs: list[dict[str, Any]]) -> list[Column]:
    """The registered metrics that the successful records hold."""
    return metrics.columns({k for r in recs if r["status"] == Status.OK for k in r["metrics"]})


def row_key(r: dict[str, Any]) -> dict[str, Any]:
    """What places a record in a leaderboard: its table (data source, budget, device type),
    method, setting, seed and the device its speed was timed on."""
    c = r["config"]
    device = r["env"]["device"].split(":")[0]
    return {"data_source": c["data_source"], "budget": _budget_label(c["budget"]), "device": device,
            "method": c["method"], "setting": setting_label(c["params"]), "seed": c["seed"],
            "timed_on": r.get("measured_on", {}).get("device", device)}


def frame(recs: list[dict[str, Any]], cols: list[Column]) -> pd.DataFrame:
    """One row per successful record, with the columns of the recorded metrics in `cols`."""
    rows = []
    for r in recs:
        if r["status"] != Status.OK:
            continue
        m = r["metrics"]
        row = {**row_key(r), "machine": r["env"].get("device_name", "?")}
        for col in cols:
            if col.column and col.spec.recorded:
                row[col.column] = None if m.get(col.key) is None else m[col.key] * col.spec.scale
        rows.append(row)
    return pd.DataFrame(rows)


TABLE = ["data_source", "budget", "device"]  # one table each: rows that may be compared
REFERENCES = {"dense": 0, "dense-ft": 1}  # listed first; accuracy changes are taken against both


def aggregate(df: pd.DataFrame, cols: list[Column]) -> pd.DataFrame:
    """Mean over seeds per (data source, budget, device type, method, setting, device timed on),
    the median for metrics that say so (wall times, which one run on a busy machine would move);
    accuracy also gets its std and its change versus the `dense` row of the same table
    (delta_acc) and versus the matched-budget `dense-ft` row (delta_ft): a method's effect, told
    apart from the effect of its extra training. `machines` names the processors or GPUs that
    trained the row's seeds: accuracy moves between machine models by more than between seeds
    (README, Literature checks), so rows compare fairly within one."""
    keys = [*TABLE, "method", "setting", "timed_on"]
    values = [c for c in df.columns if c not in keys + ["seed", "machine"]]
    grouped = df.groupby(keys, sort=True)
    how = {c.column: c.spec.aggregate for c in cols if c.column}
    out = grouped[values].agg({v: how.get(v, "mean") for v in values})
    out.insert(0, "seeds", grouped.size())
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
    decimals = {col.column: col.spec.decimals for col in cols if col.column}
    decimals.update({"accuracy_mean_%": 2, "accuracy_std_%": 2})
    for col, d in decimals.items():
        if col in out:
            out[col] = out[col].astype(float).round(d) + 0.0  # + 0.0 turns -0.0 into 0.0
            if d == 0:
                out[col] = out[col].astype("Int64")
    return out.reset_index(drop=True)


def _fmt(value: Any, decimals: int) -> str:
    if value is None or pd.isna(value):
        return ""
    return f"{value:,.{decimals}f}" if decimals else f"{int(round(value)):,}"


def cell(row: pd.Series, col: Column) -> str:
    """A Markdown cell: accuracy as mean ± std, a metric with a spread as value (spread)."""
    if col.key == "accuracy":
        text = _fmt(row["accuracy_mean_%"], col.spec.shown)
        return text + f" ± {_fmt(row['accuracy_std_%'], col.spec.shown)}" if row["seeds"] > 1 else text
    text = _fmt(row[col.column], col.spec.shown)
    if text and col.spread_column and not pd.isna(row.get(col.spread_column)):
        text += f" ({_fmt(row[col.spread_column], col.spec.shown)})"
    return text


def displayed(cols: list[Column], t: pd.DataFrame, table: str) -> list[Column]:
    """The columns of Markdown table `table` ("main" or "speed") that hold a value in `t`:
    a column empty for every row of a table (Δ vs dense-ft where no dense-ft ran) is left out."""
    return [c for c in cols if c.spec.table == table and
            (c.key == "accuracy" or (c.column in t and t[c.column].notna().any()))]


def family_of(method: str, families: dict[str, str]) -> str:
    """A method's family; a chain is "combined"; a method the catalog does not know, "other"."""
    return families.get(method, "combined" if "+" in method else "other")


def first_line(text: str | None, width: int = 160) -> str:
    """The first line of an error, cut to `width` characters ('' for none or an empty one)."""
    return (text or "").strip().split("\n")[0][:width]


def setting_params(setting: str) -> dict[str, str]:
    """The parameters of a setting label (`setting_label`), as text: {"sparsity": "0.9"};
    a chain's link parameters keep their prefix ({"magnitude.sparsity": "0.9", ...})."""
    pairs = (part.partition("=") for part in setting.split(", ") if "=" in part)
    return {k: v for k, _, v in pairs}


def setting_sparsity(setting: str) -> float | None:
    """The sparsity a setting names: its own, or its first chain link's; None if none."""
    for key, value in setting_params(setting).items():
        if key.split(".")[-1] == "sparsity":
            try:
                return float(value)
            except ValueError:
                return None
    return None


def distinct_settings(t: pd.DataFrame) -> pd.Series:
    """Per row, the parameters that differ between the rows of its method (all of them for a
    method with one row, "-" for none): what tells a method's rows apart."""
    out = {}
    for _, m in t.groupby("method", sort=True):
        params = {i: setting_params(s) for i, s in zip(m.index, m.setting)}
        keys = {k for p in params.values() for k in p}
        varying = [k for k in keys if len({p.get(k) for p in params.values()}) > 1] if len(m) > 1 else keys
        keep = sorted(varying)
        for i, p in params.items():
            out[i] = ", ".join(f"{k}={p[k]}" for k in keep if k in p) or "-"
    return pd.Series(out).reindex(t.index)


def timed_label(method: str, timed_on: str, device: str) -> str:
    """A row's method name, marked when its speed was timed on another device than its run's."""
    return method + (f" (timed on {timed_on.upper()})" if timed_on != device else "")


def unavailable_runtimes(recs: list[dict[str, Any]]) -> list[list[str]]:
    """(method, setting, runtime, reason) of each runtime that could not take a model."""
    return [list(e) for e in sorted({
        (r["config"]["method"], short_setting(r["config"]["method"], setting_label(r["config"]["params"])), runtime,
         note["reason"])
        for r in recs if r["status"] == Status.OK
        for runtime, note in r.get("figures", {}).get("deploy", {}).get("runtimes", {}).items()
        if note["status"] != "ok"})]


def failed_runs(recs: list[dict[str, Any]]) -> list[tuple[list[Any], dict[str, Any]]]:
    """([method, setting, seed, status, error], record) of each run that did not finish ok, sorted
    by content, not file name: a record's name holds its config hash, so seeds of one setting
    would otherwise appear in hash order."""
    rows = [([r["config"]["method"], short_setting(r["config"]["method"], setting_label(r["config"]["params"])),
              r["config"]["seed"], r["status"],
              first_line(r.get("error"))], r) for r in recs if r["status"] != Status.OK]
    return sorted(rows, key=lambda row: [str(v) for v in row[0]])


def environment(r: dict[str, Any]) -> str:
    """Where a run ran, as one line."""
    env = r["env"]
    return f"{env['device_name']} ({env['device']}), torch {env['torch']}, {env['threads']} threads"


def code_of(r: dict[str, Any]) -> str:
    """The code that made a run: its commit, whether the checkout had uncommitted changes (then no
    commit holds that code and the row cannot be reproduced from it), and whether the commit was
    only named by $BENCH_GIT_COMMIT (code sent without its .git: no checkout vouched for it)."""
    commit = r["env"].get("git_commit")
    if not commit:  # a run that failed before its worker could say (its env is partial)
        return "unknown commit"
    dirty = commit.endswith("-dirty")
    named = " (named by $BENCH_GIT_COMMIT, unverified)" if r["env"].get("commit_from_env") else ""
    return commit.removesuffix("-dirty")[:12] + (" with uncommitted changes" if dirty else "") + named


def _runs(n: int) -> str:
    return f"{n} run" + ("" if n == 1 else "s")


# Standard-budget runs and overridden budgets: never in one table.
PARTS = ((True, "leaderboard", "standard budget"),
         (False, "leaderboard-custom", "overridden budgets (not comparable with the standard leaderboard)"))


SPEED_INTRO = ("Speed: theoretical speedup (dense FLOPs / effective FLOPs) and, per runtime and batch "
               "size, the measured speedup over the dense model in the same runtime, timed side by side "
               "(median of interleaved pairs; in parentheses their interquartile range); an empty cell "
               "is a runtime that could not take the model (reasons below). Files: the deployed "
               "artifact per runtime, beside the compressed encoding's `size`.")


def markdown(table: pd.DataFrame, cols: list[Column], recs: list[dict[str, Any]], suite: str,
             title: str) -> str:
    """The Markdown leaderboard: per (data source, budget) a main table and a speed table; then
    the runtimes that could not take a model, failed and skipped runs, and environments."""
    lines = [f"# {suite}: {title}", "",
             "Mean over seeds (accuracy: mean ± std). Definitions of every column: README.md, "
             "section Metrics. A setting names the swept parameter and those that differ from the method's "
             "defaults (`bench list methods`); the CSV has every parameter. Regenerate with "
             "`bench leaderboard --suite " + suite + "`.", ""]
    tables = table.groupby(TABLE, sort=True) if len(table) else []
    for (source, budget, device), t in tables:
        lines += [f"## data: {md_text(source)} · budget: {md_text(budget)} · runs on: {md_text(device.upper())}", ""]
        main, speed = displayed(cols, t, "main"), displayed(cols, t, "speed")
        rows = [[r["method"], short_setting(r["method"], r["setting"]), int(r["seeds"]), *[cell(r, c) for c in main]]
                for _, r in t.iterrows()]
        lines += [_pipe_table(rows, ["method", "setting", "seeds", *[c.header for c in main]]), ""]
        if speed:
            elsewhere = t.timed_on != device
            rows = [[timed_label(r["method"], r["timed_on"], device), short_setting(r["method"], r["setting"]),
                     *[cell(r, c) for c in speed]]
                    for _, r in t.iterrows()]
            lines += [SPEED_INTRO + (f" A row marked with another device was timed there, not on the "
                                     f"{device.upper()}: its figures compare with that device's only."
                                     if elsewhere.any() else ""), "",
                      _pipe_table(rows, ["method", "setting", *[c.header for c in speed]]), ""]
            lines += _machines_note([r for r in recs if r["status"] == Status.OK and
                                     tuple(row_key(r)[k] for k in TABLE) == (source, budget, device)])
    empty = unavailable_runtimes(recs)
    if empty:
        lines += ["## runtimes that could not take a model", "",
                  _pipe_table(empty, ["method", "setting", "runtime", "reason"]), ""]
    failed = failed_runs(recs)
    if failed:
        lines += ["## failed and skipped runs", "",
                  _pipe_table([row for row, _ in failed], ["method", "setting", "seed", "status", "error"]), ""]
    envs = pd.Series([environment(r) for r in recs]).value_counts().sort_index()
    lines += ["## where the runs ran", ""] + [f"- {md_text(env)}: {_runs(n)}" for env, n in envs.items()]
    codes = pd.Series([code_of(r) for r in recs]).value_counts().sort_index()
    lines += ["", "## the code that made them", ""] + [f"- {md_text(code)}: {_runs(n)}" for code, n in codes.items()]
    return "\n".join(lines).rstrip() + "\n"


def md_text(value: Any) -> str:
    """A value as Markdown text on one line: line breaks made spaces and `|` escaped, so that a
    record's value (an error, a parameter, a device name) never splits a table row, nor starts a
    row or a heading of its own; `<` escaped too, so that it is never markup (Markdown passes
    HTML through, and GitHub drops what looks like a tag: an error's `<OpOverload(...)>`), and
    `\\` first, so that each escape means what it says."""
    text = str(value).replace("\\", "\\\\").replace("|", "\\|").replace("<", "\\<")
    return " ".join(text.splitlines())


def _pipe_table(rows: list[list[Any]], headers: list[str]) -> str:
    """A Markdown table of `rows`: their text through md_text, their numbers as they are."""
    return tabulate([[md_text(c) if isinstance(c, str) else c for c in row] for row in rows], headers=headers,
                    tablefmt="pipe", disable_numparse=True)


def _machines_note(recs: list[dict[str, Any]]) -> list[str]:
    """Where a table's rows were timed on more than one machine model, which rows where: absolute
    latencies compare within a machine only (each speedup is against the dense model timed
    beside it, on its own machine)."""
    where: dict[str, set[str]] = {}
    for r in recs:
        name = r.get("measured_on", {}).get("device_name", r["env"]["device_name"])
        where.setdefault(name, set()).add(r["config"]["method"])
    if len(where) < 2:
        return []
    return [md_text("Timed on more than one machine: absolute latencies compare only between rows of one "
                    "machine; each measured speedup is against the dense model timed beside it on its own "
                    "machine. " + "; ".join(f"{name}: {', '.join(sorted(methods))}"
                                            for name, methods in sorted(where.items())) + "."), ""]


# The terminal's columns, most important first; the table drops them from the end to fit.
FIRST = ["accuracy_%", "delta_acc_pts", "delta_ft_pts", "sparsity_%", "size_KiB", "compression_x",
         "theoretical_speedup_x", "speedup_b1_x"]
SETTING_WIDTH = 36


def select(table: pd.DataFrame, cols: list[Column], families: dict[str, str], sparsity: float | None = None,
           family: str | None = None, sort: str | None = None) -> pd.DataFrame:
    """The rows of an aggregated table that `leaderboard --show` asks for: those of the `family`
    and `sparsity` asked for, and the references (`dense`, `dense-ft`) always; sorted by the
    column `sort`, best first by the metric's direction (lowest first where lower is better or
    no direction is registered), the references first in each table, in their fixed order."""
    reference = table.method.isin(REFERENCES)
    keep = pd.Series(True, index=table.index)
    if family:
        keep &= table.method.map(lambda m: family_of(m, families)) == family
    if sparsity is not None:
        levels = table.setting.map(setting_sparsity)
        keep &= levels.map(lambda level: level is not None and abs(level - sparsity) < 1e-9)
    table = table[keep | reference]
    if sort is None:
        return table
    higher = {c.column: c.spec.higher_is_better for c in cols if c.column}
    higher["accuracy_mean_%"] = True
    if sort not in table.columns or sort not in higher:
        raise ParameterError(f"--sort {sort!r}: expected a column of the table: "
                         f"{', '.join(c for c in table.columns if c in higher)}")
    order = table.method.map(lambda m: REFERENCES.get(m, len(REFERENCES)))
    return table.assign(_order=order).sort_values(
        ["_order", sort], ascending=[True, not higher[sort]], kind="stable").drop(columns="_order")


def terminal(recs: list[dict[str, Any]], width: int, families: dict[str, str],
             sparsity: float | None = None, family: str | None = None, sort: str | None = None) -> str:
    """The aggregated tables of `recs` (mean ± std over seeds) for a terminal `width` characters
    wide: one per data source, budget and device type, `dense` and `dense-ft` first, then the
    rows of the `family` and `sparsity` asked for (sorted by `sort`: see `select`). A row's
    setting shows only the parameters that differ between its method's rows; columns are
    dropped, least important first, rather than wrapped."""
    cols = table_columns(recs)
    df = frame(recs, cols)
    if df.empty:
        return "no finished runs"
    table = aggregate(df, cols)
    table["shown_setting"] = distinct_settings(table).map(_shorten)  # told apart among all rows, not the filtered
    table = select(table, cols, families, sparsity, family, sort)
    out = []
    for (source, budget, device), t in table.groupby(TABLE, sort=True):
        by_column = {c.column: c for c in displayed(cols, t, "main") + displayed(cols, t, "speed")}
        order = [c for c in FIRST if c in by_column] + [c for c in by_column if c not in FIRST]
        order.sort(key=lambda c: c != sort)  # the column the rows are sorted by is dropped last
        shown = list(order)
        while True:
            rows = [[timed_label(r["method"], r["timed_on"], device), r["shown_setting"], int(r["seeds"]),
                     *[cell(r, by_column[c]) for c in shown]] for _, r in t.iterrows()]
            headers = ["method", "setting", "seeds", *[by_column[c].header for c in shown]]
            text = tabulate(rows, headers=headers, disable_numparse=True)
            if len(shown) <= 1 or max(map(len, text.splitlines())) <= width:
                break
            shown.pop()
        dropped = len(order) - len(shown)
        out += [f"{source} · {budget} · {device.upper()}" + (f" ({dropped} columns not shown: widen the "
                                                                "terminal or read the .md)" if dropped else ""),
                text, ""]
    return "\n".join(out).rstrip() or "no finished runs"


def _shorten(setting: str) -> str:
    return setting if len(setting) <= SETTING_WIDTH else setting[:SETTING_WIDTH - 1] + "…"


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
    short = [short_setting(m, s) for m, s in zip(t.method, t.setting)]
    t = t.assign(size_bytes=size, family=t.method.map(lambda m: family_of(m, known)),
                 reference=t.method.isin(REFERENCES),
                 label=[m + ("" if s == "-" else f" {s}") for m, s in zip(t.method, short)],
                 series=[series_label(m, s) for m, s in zip(t.method, short)])
    return t, "delta_acc_pts" if (t.method == "dense").any() else "accuracy_mean_%"


def series_label(method: str, short: str) -> str:
    """A plot line's name: the method and its non-default settings (`short_setting`) other than
    its swept parameter, so that lottery and its reinit control are "lottery" and
    "lottery (reinit=True)" and each line gathers its sparsity levels."""
    rest = [f"{k}={v}" for k, v in setting_params(short).items() if not is_swept(method, k)]
    return method + (f" ({', '.join(rest)})" if rest else "")


PLOTS = ("frontier", "pareto", "speedup")
# What `write` makes in a suite's folder, as globs: `bench leaderboard --check` compares exactly these.
OUTPUTS = ("leaderboard*.csv", "leaderboard*.md", *(f"{name}*.png" for name in PLOTS))


def write(results_dir: Path, suite: str) -> list[Path]:
    """Rebuild a suite's leaderboard files from its records; returns the files written. Each
    file is replaced atomically, and a plot the records no longer give is removed; a record
    file that cannot be read is named in a warning."""
    recs = load(results_dir, suite)
    folder = Path(results_dir) / suite
    written = []
    for standard, stem, title in PARTS:
        suffix = "" if standard else "-custom"
        part = [r for r in recs if r.get("standard_budget") is standard]
        paths = {name: folder / f"{name}{suffix}.png" for name in PLOTS}
        if part:
            cols = table_columns(part)
            df = frame(part, cols)
            table = aggregate(df, cols) if len(df) else pd.DataFrame()
            folder.mkdir(parents=True, exist_ok=True)
            csv = folder / f"{stem}.csv"
            records.write_text_atomic(csv, table.to_csv(index=False, lineterminator="\n"))
            md = folder / f"{stem}.md"
            records.write_text_atomic(md, markdown(table, cols, part, suite, title))
            written += [csv, md]
            if len(table):
                plot_title = plot_heading(table, part, suite, title)
                by_method = families(part)
                t, ycol = plot_frame(table, by_method)
                known = sorted(by_method)
                drawn = frontier(table, cols, part, suite, title)
                figures = {"frontier": drawn and drawn[0],
                           "pareto": plots.family_figure(t, ycol, known, plot_title),
                           "speedup": plots.speedup_figure(t, cols, known, plot_title)}
                for name, fig in figures.items():
                    if fig is not None:
                        plots.save(fig, paths[name])
                        written.append(paths[name])
        for path in paths.values():  # a plot these records no longer give
            if path not in written:
                path.unlink(missing_ok=True)
    return written


def plot_heading(table: pd.DataFrame, recs: list[dict[str, Any]], suite: str, title: str) -> str:
    """A plot's title: the suite, the part (standard budget or overridden budgets) and the table
    group it draws, with its seeds."""
    group = main_rows(table).iloc[0]
    seeds = sorted({r["config"]["seed"] for r in recs if r["status"] == Status.OK
                    and tuple(row_key(r)[k] for k in TABLE) == tuple(group[TABLE])})
    return (f"{suite} ({title.split(' (')[0]}): {group['data_source']}, {group['budget']}, "
            f"{group['device'].upper()}, seeds {','.join(map(str, seeds))}")


def frontier(table: pd.DataFrame, cols: list[Column], recs: list[dict[str, Any]], suite: str,
             title: str) -> tuple[Any, pd.DataFrame] | None:
    """The frontier figure of a part's table and its rows' markers (bench.plots.frontier_figure):
    what write saves, and what the site lays its links over."""
    known = families(recs)
    t, ycol = plot_frame(table, known)
    return plots.frontier_figure(t, ycol, cols, sorted(known), plot_heading(table, recs, suite, title))


def load(results_dir: Path, suite: str) -> list[dict[str, Any]]:
    """A suite's records, each with its file name under "_stem" (what the site links to); a file
    that cannot be read is named in a warning, never dropped silently."""
    problems: list[str] = []
    recs = [{**r, "_stem": stem} for stem, r in records.named_records(results_dir, suite, problems)]
    for problem in problems:
        print(f"bench: warning: left out of the leaderboard: {problem}", file=sys.stderr)
    return recs


@functools.cache
def _plugins() -> dict[str, Any]:
    """Method -> its bench.catalog.PluginInfo, read from the plugins' source: no plugin (and no
    torch) is imported. Read once per process: a rebuild asks per suite, budget and site page."""
    from bench.catalog import catalog

    return {info.name: info for info in catalog() if info.problem is None}


def families(recs: Iterable[dict[str, Any]] = ()) -> dict[str, str]:
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


def short_setting(method: str, setting: str) -> str:
    """A setting as a reader wants it: the swept parameter and the parameters that differ from the
    method's defaults ("sparsity=0.9, calibration_samples=128" rather than seven parameters, five
    of them defaults); a chain's link parameters against that link's defaults. Display only: rows
    are still grouped, and records keyed, by every parameter. A parameter of a method the catalog
    does not know is always shown."""
    plugins = _plugins()
    shown = []
    for key, value in setting_params(setting).items():
        link, _, name = key.rpartition(".")
        info = plugins.get(link or method)
        if info is None or is_swept(method, key) or name not in info.parameters or str(info.parameters[name]) != value:
            shown.append(f"{key}={value}")
    return ", ".join(shown) or "-"
