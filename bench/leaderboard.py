"""Leaderboards as a pure function of the run records: CSV, Markdown and a Pareto plot.

Rows are one method and setting (e.g. each sparsity), aggregated over seeds (mean, and std for
accuracy). Columns, their order, scale and number formats come from the metric registry
(bench.metrics); the Markdown has a main table and a speed table per data source and budget.
Standard-budget runs go to leaderboard.{csv,md}; runs with overridden budgets go to
leaderboard-custom.{csv,md}, keyed by their budget, so the two never mix. Within a file, each data
source is its own table. Sorting and number formats are fixed, so the same records always give
the same bytes.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pandas as pd
from tabulate import tabulate

from bench import metrics, records
from bench.metrics import Column


def _budget_label(budget: dict[str, Any]) -> str:
    text = f"{budget['epochs']}+{budget['finetune_epochs']} epochs"
    for key in ("limit_train", "limit_test"):
        if budget.get(key) is not None:
            text += f", {key}={budget[key]}"
    return text


def setting_label(params: dict[str, Any]) -> str:
    """"sparsity=0.9"; for a chain, each link's parameters prefixed by its method name."""
    flat = {f"{k}.{kk}": vv for k, v in params.items() if isinstance(v, dict) for kk, vv in v.items()}
    flat.update({k: v for k, v in params.items() if not isinstance(v, dict)})
    return ", ".join(f"{k}={v}" for k, v in flat.items()) or "-"


def table_columns(recs: list[dict[str, Any]]) -> list[Column]:
    """The registered metrics that the successful records hold."""
    return metrics.columns({k for r in recs if r["status"] == "ok" for k in r["metrics"]})


def frame(recs: list[dict[str, Any]], cols: list[Column]) -> pd.DataFrame:
    """One row per successful record, with the columns of the recorded metrics in `cols`."""
    rows = []
    for r in recs:
        if r["status"] != "ok":
            continue
        m, c = r["metrics"], r["config"]
        device = r["env"]["device"].split(":")[0]
        row = {"data_source": c["data_source"], "budget": _budget_label(c["budget"]), "device": device,
               "method": c["method"], "setting": setting_label(c["params"]), "seed": c["seed"],
               "timed_on": r.get("measured_on", {}).get("device", device)}
        for col in cols:
            if col.column and col.spec.recorded:
                row[col.column] = None if m.get(col.key) is None else m[col.key] * col.spec.scale
        rows.append(row)
    return pd.DataFrame(rows)


TABLE = ["data_source", "budget", "device"]  # one table each: rows that may be compared
REFERENCES = {"dense": 0, "dense-ft": 1}  # listed first; accuracy changes are taken against both


def aggregate(df: pd.DataFrame, cols: list[Column]) -> pd.DataFrame:
    """Mean over seeds per (data source, budget, device type, method, setting, device timed on);
    accuracy also gets its std and its change versus the `dense` row of the same table
    (delta_acc) and versus the matched-budget `dense-ft` row (delta_ft): a method's effect, told
    apart from the effect of its extra training."""
    keys = [*TABLE, "method", "setting", "timed_on"]
    values = [c for c in df.columns if c not in keys + ["seed"]]
    grouped = df.groupby(keys, sort=True)
    out = grouped[values].mean()
    out.insert(0, "seeds", grouped.size())
    out.insert(2, "accuracy_std_%", grouped["accuracy_%"].std(ddof=1).fillna(0.0))
    out = out.rename(columns={"accuracy_%": "accuracy_mean_%"}).reset_index()
    for reference, column, at in (("dense", "delta_acc_pts", 3), ("dense-ft", "delta_ft_pts", 4)):
        base = out[out.method == reference].set_index(TABLE)["accuracy_mean_%"]
        base = base[~base.index.duplicated()]
        out.insert(len(keys) + at, column, [base.get(tuple(r[TABLE]), None) for _, r in out.iterrows()])
        out[column] = out["accuracy_mean_%"] - out[column].astype(float)
    out["_order"] = out["method"].map(lambda m: REFERENCES.get(m, len(REFERENCES)))
    out = out.sort_values([*TABLE, "_order", "method", "setting"]).drop(columns="_order")
    decimals = {col.column: col.spec.decimals for col in cols if col.column}
    decimals.update({"accuracy_mean_%": 2, "accuracy_std_%": 2, "delta_ft_pts": 2})
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


SPEED_INTRO = ("Speed: theoretical speedup (dense FLOPs / effective FLOPs) and, per runtime and batch "
               "size, the measured speedup over the dense model in the same runtime, timed side by side "
               "(median of interleaved pairs; in parentheses their interquartile range); an empty cell "
               "is a runtime that could not take the model (reasons below). Files: the deployed "
               "artifact per runtime, beside the compressed encoding's `size`.")


def markdown(table: pd.DataFrame, cols: list[Column], recs: list[dict[str, Any]], suite: str,
             title: str) -> str:
    """The Markdown leaderboard: per (data source, budget) a main table and a speed table; then
    the runtimes that could not take a model, failed and skipped runs, and environments."""
    failed = [r for r in recs if r["status"] != "ok"]
    lines = [f"# {suite}: {title}", "",
             "Mean over seeds (accuracy: mean ± std). Definitions of every column: README.md, "
             "section Metrics. Regenerate with `bench leaderboard --suite " + suite + "`.", ""]
    shown = [c for c in cols if c.key == "accuracy" or c.column in table]  # accuracy: mean and std
    main = [c for c in shown if c.spec.table == "main"]
    speed = [c for c in shown if c.spec.table == "speed"]
    tables = table.groupby(TABLE, sort=True) if len(table) else []
    for (source, budget, device), t in tables:
        lines += [f"## data: {source} · budget: {budget} · runs on: {device.upper()}", ""]
        ft = "dense-ft" in set(t.method)
        rows = [[r["method"], r["setting"], int(r["seeds"]), *[cell(r, c) for c in main],
                 *([_fmt(r["delta_ft_pts"], 2)] if ft else [])] for _, r in t.iterrows()]
        headers = ["method", "setting", "seeds", *[c.header for c in main], *(["Δ vs dense-ft (pts)"] if ft else [])]
        lines += [tabulate(rows, headers=headers, tablefmt="pipe", disable_numparse=True), ""]
        if speed:
            elsewhere = t.timed_on != device
            rows = [[r["method"] + (f" (timed on {r['timed_on'].upper()})" if away else ""), r["setting"],
                     *[cell(r, c) for c in speed]] for (_, r), away in zip(t.iterrows(), elsewhere)]
            lines += [SPEED_INTRO + (f" A row marked with another device was timed there, not on the "
                                     f"{device.upper()}: its figures compare with that device's only."
                                     if elsewhere.any() else ""), "",
                      tabulate(rows, headers=["method", "setting", *[c.header for c in speed]],
                               tablefmt="pipe", disable_numparse=True), ""]
    empty = sorted({(r["config"]["method"], setting_label(r["config"]["params"]), runtime, note["reason"])
                    for r in recs if r["status"] == "ok"
                    for runtime, note in r.get("figures", {}).get("deploy", {}).get("runtimes", {}).items()
                    if note["status"] != "ok"})
    if empty:
        lines += ["## runtimes that could not take a model", "",
                  tabulate([list(e) for e in empty], headers=["method", "setting", "runtime", "reason"],
                           tablefmt="pipe", disable_numparse=True), ""]
    if failed:
        lines += ["## failed and skipped runs", ""]
        # sorted by content, not file name: a record's name holds its config hash, so seeds of
        # one setting would otherwise appear in hash order
        rows = sorted([r["config"]["method"], setting_label(r["config"]["params"]), r["config"]["seed"],
                       r["status"], (r.get("error") or "").splitlines()[0][:160]] for r in failed)
        lines += [tabulate(rows, headers=["method", "setting", "seed", "status", "error"],
                           tablefmt="pipe", disable_numparse=True), ""]
    envs = pd.Series([f"{r['env']['device_name']} ({r['env']['device']}), torch {r['env']['torch']}, "
                      f"{r['env']['threads']} threads" for r in recs]).value_counts().sort_index()
    lines += ["## where the runs ran", ""] + [f"- {env}: {n} runs" for env, n in envs.items()]
    return "\n".join(lines).rstrip() + "\n"


def pareto_plot(table: pd.DataFrame, path: Path) -> None:
    """Accuracy against nonzero parameters (log scale), one series per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    sources = table["data_source"].unique()
    for (method, source), t in table.groupby(["method", "data_source"], sort=True):
        t = t.sort_values("nonzeros")
        label = method if len(sources) == 1 else f"{method} ({source})"
        ax.errorbar(t["nonzeros"], t["accuracy_mean_%"], yerr=t["accuracy_std_%"], marker="o",
                    markersize=4, capsize=2, label=label)
    ax.set_xscale("log")
    ax.set_xlabel("nonzero parameters (log scale)")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    records.atomic_write(path, lambda f: fig.savefig(f, format="png", metadata={"Software": None}))
    plt.close(fig)


def write(results_dir: Path, suite: str) -> list[Path]:
    """Rebuild a suite's leaderboard files from its records; returns the files written. Each
    file is replaced atomically; a record file that cannot be read is named in a warning."""
    problems: list[str] = []
    recs = records.load_records(results_dir, suite, problems)
    for problem in problems:
        print(f"bench: warning: left out of the leaderboard: {problem}", file=sys.stderr)
    folder = Path(results_dir) / suite
    written = []
    for standard, stem, title in ((True, "leaderboard", "standard budget"),
                                  (False, "leaderboard-custom", "overridden budgets (not comparable "
                                   "with the standard leaderboard)")):
        part = [r for r in recs if r.get("standard_budget") is standard]
        if not part:
            continue
        cols = table_columns(part)
        df = frame(part, cols)
        table = aggregate(df, cols) if len(df) else pd.DataFrame()
        folder.mkdir(parents=True, exist_ok=True)
        csv = folder / f"{stem}.csv"
        records.write_text_atomic(csv, table.to_csv(index=False, lineterminator="\n"))
        md = folder / f"{stem}.md"
        records.write_text_atomic(md, markdown(table, cols, part, suite, title))
        written += [csv, md]
        if standard and len(table):
            png = folder / "pareto.png"
            pareto_plot(table, png)
            written.append(png)
    return written
