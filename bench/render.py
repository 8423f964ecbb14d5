"""The leaderboard table as text: the Markdown files and the terminal view.

Both render a bench.board table; number formats are fixed, so the same records always give the
same bytes. The Markdown has a main table and a speed table per data source, budget and device
type, then what did not run and where and by which code the runs were made.
"""

from __future__ import annotations

import shlex
import textwrap
from typing import Any, Collection

import pandas as pd
from tabulate import tabulate

from bench import ties
from bench.errors import counted, printable
from bench.metrics import Column
from bench.records import Record, Status
from bench.suite import is_plain_name
from bench.board import (REFERENCES, ROW, TABLE, as_shown, at_decimals, best_speedups, code_of, distinct_settings, environment, failed_runs,
                         machine_labels, machines_by_row, row_key, select, setting_sparsity, short_setting,
                         unavailable_runtimes)
from bench.board import table as board_table


def number(value: Any, decimals: int) -> str:
    """A table's (unrounded) value at `decimals`, rounded once and as the CSV rounds
    (`board.at_decimals`): at the CSV's decimals it reads as the CSV does; a change that rounds to
    nothing reads 0.00, not -0.00."""
    if value is None or pd.isna(value):
        return ""
    shown = at_decimals(value, decimals)
    return f"{shown:,.{decimals}f}" if decimals else f"{int(shown):,}"


def cell(row: pd.Series, col: Column) -> str:
    """A Markdown cell: accuracy as mean ± std, a metric with a spread as value (spread), a wall
    time as its median (lowest–highest seed), and a figure that only some of the row's seeds hold
    followed by how many (`board.aggregate`'s `partial_seeds`): under a `seeds` of 3, one seed's
    figure read as the row's."""
    if col.key == "accuracy":
        text = number(row["accuracy_mean_%"], col.spec.shown)
        return text + f" ± {number(row['accuracy_std_%'], col.spec.shown)}" if row["seeds"] > 1 else text
    text = number(row[col.column], col.spec.shown)
    if text and col.spread_column and not pd.isna(row.get(col.spread_column)):
        text += f" ({number(row[col.spread_column], col.spec.shown)})"
    if text and col.spec.seed_range:  # the lowest and highest seed, where they read apart
        low, high = (number(row.get(f"{col.column}{end}"), col.spec.shown) for end in ("_min", "_max"))
        if low != high:
            text += f" ({low}–{high})"
    held = (row.get("partial_seeds") or {}).get(col.column)
    if text and held:
        text += f" ({held} of {int(row['seeds'])} seeds)"
    return text


def displayed(cols: list[Column], t: pd.DataFrame, table: str) -> list[Column]:
    """The columns of Markdown table `table` ("main" or "speed") that hold a value in `t`:
    a column empty for every row of a table (Δ vs dense-ft where no dense-ft ran) is left out."""
    return [c for c in cols if c.spec.table == table and
            (c.key == "accuracy" or (c.column in t and t[c.column].notna().any()))]


def timed_label(method: str, timed_on: str, device: str) -> str:
    """A row's method name, marked when its speed was timed on another device than its run's."""
    return method + (f" (timed on {timed_on.upper()})" if timed_on != device else "")


SPEED_INTRO = ("Speed: theoretical speedup (dense FLOPs / effective FLOPs) and, per runtime and batch "
               "size, the measured speedup over the dense model in the same runtime, timed side by side "
               "(median of interleaved pairs, then median over seeds; in parentheses the pairs' "
               "interquartile range); an empty cell is a runtime that could not take the model "
               "(reasons below). Files: the deployed "
               "artifact per runtime, beside the compressed encoding's `size`.")


def markdown(table: pd.DataFrame, cols: list[Column], recs: list[Record], suite: str,
             title: str) -> str:
    """The Markdown leaderboard: per (data source, budget) a main table and a speed table; then
    the runtimes that could not take a model, failed and skipped runs, and environments."""
    # The suite is its folder's name, which anyone may give a folder (`x$(id)`, "a`<b>`"): the command is
    # quoted for the shell a reader pastes it into, and is a code span only where no backtick can end it.
    command = f"bench leaderboard --suite {shlex.quote(suite)}"
    lines = [f"# {md_text(suite)}: {title}", "",
             "Mean over seeds (accuracy: mean ± std; wall times and measured speedups: the median, a wall time "
             "with its lowest and highest seed in parentheses). Definitions of every column: README.md, "
             "section Metrics. A setting names the swept parameter and those that differ from the method's "
             "defaults (`bench list methods`); the CSV has every parameter. Regenerate with "
             + (f"`{command}`" if is_plain_name(suite) else md_text(command)) + ".", ""]
    tables = table.groupby(TABLE, sort=True) if len(table) else []
    machines = machines_by_row(recs)
    for (source, budget, device), t in tables:
        lines += [f"## data: {md_text(source)} · budget: {md_text(budget)} · runs on: {md_text(device.upper())}", ""]
        main, speed = displayed(cols, t, "main"), displayed(cols, t, "speed")
        trained_on, legend = machine_labels(t, machines)
        if trained_on:
            lines += [md_text(f"Trained on {len(legend)} machine models (column trained on), between which accuracy "
                              f"moves by more than between seeds and train times differ: compare rows of one model. "
                              f"{'; '.join(legend)}."), ""]
        rows = [[r["method"], short_setting(r["method"], r["setting_params"]), int(r["seeds"]),
                 *([trained_on[tuple(r[k] for k in ROW)]] if trained_on else []),
                 *[cell(r, c) for c in main]] for _, r in t.iterrows()]
        lines += [pipe_table(rows, ["method", "setting", "seeds", *(["trained on"] if trained_on else []),
                                    *[c.header for c in main]]), ""]
        if speed:
            elsewhere = t.timed_on != device
            rows = [[timed_label(r["method"], r["timed_on"], device), short_setting(r["method"], r["setting_params"]),
                     *[cell(r, c) for c in speed]]
                    for _, r in t.iterrows()]
            lines += [SPEED_INTRO + (f" A row marked with another device was timed there, not on the "
                                     f"{device.upper()}: its figures compare with that device's only."
                                     if elsewhere.any() else ""), "",
                      pipe_table(rows, ["method", "setting", *[c.header for c in speed]]), ""]
            lines += _machines_note([r for r in recs if r["status"] == Status.OK and
                                     tuple(row_key(r)[k] for k in TABLE) == (source, budget, device)])
    empty = unavailable_runtimes(recs)
    if empty:
        lines += ["## runtimes that could not take a model", "",
                  pipe_table(empty, ["method", "setting", "runtime", "reason"]), ""]
    failed = failed_runs(recs)
    if failed:
        lines += ["## failed and skipped runs", "",
                  pipe_table([row for row, _ in failed], ["method", "setting", "seed", "status", "error"]), ""]
    envs = pd.Series([environment(r) for r in recs]).value_counts().sort_index()
    lines += ["## where the runs ran", ""] + [f"- {md_text(env)}: {counted(n, 'run')}" for env, n in envs.items()]
    codes = pd.Series([code_of(r) for r in recs]).value_counts().sort_index()
    lines += ["", "## the code that made them", ""] + [f"- {md_text(code)}: {counted(n, 'run')}"
                                                        for code, n in codes.items()]
    return "\n".join(lines).rstrip() + "\n"


def md_text(value: Any) -> str:
    """A value as Markdown text on one line: line breaks made spaces and `|` escaped, so that a
    record's value (an error, a parameter, a device name) never splits a table row, nor starts a
    row or a heading of its own; `<` escaped too, so that it is never markup (Markdown passes
    HTML through, and GitHub drops what looks like a tag: an error's `<OpOverload(...)>`), and
    `\\` first, so that each escape means what it says; `[` and `]` escaped, so that no record
    makes a link or an image (`![x](https://tracker)`); control characters (a terminal's escape
    sequences) shown as `?`."""
    text = str(value).replace("\\", "\\\\").replace("|", "\\|").replace("<", "\\<")
    text = text.replace("[", "\\[").replace("]", "\\]")
    return printable(" ".join(text.splitlines()))


def pipe_table(rows: list[list[Any]], headers: list[str]) -> str:
    """A Markdown table of `rows`: their text through md_text, their numbers as they are."""
    return tabulate([[md_text(c) if isinstance(c, str) else c for c in row] for row in rows], headers=headers,
                    tablefmt="pipe", disable_numparse=True)


def _machines_note(recs: list[Record]) -> list[str]:
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


# The terminal's columns, most wanted first; the first CORE answer "how accurate at what size", and
# a narrow terminal narrows the setting column (its text wraps) before it drops them. BEST_SPEED
# stands for the measured speedup at batch 1 of the table's best runtime (board.best_speedups, as
# each plot picks it; the site picks one for all of a suite's tables).
BEST_SPEED = "best runtime's speedup at batch 1"
FIRST = ["accuracy_%", "size_KiB", "compression_x", "delta_acc_pts", "sparsity_%", "delta_ft_pts",
         "theoretical_speedup_x", BEST_SPEED]
CORE = 4


def _not_shown(headers: list[str]) -> str:
    """The note on the columns a narrow terminal dropped, most important first, named: at 80
    columns `mlp`'s table was accuracy alone (before the headers folded), and "25 columns not
    shown" did not say that its size and compression were among them."""
    if not headers:
        return ""
    names = [h.split(" (")[0] for h in headers[:2]]  # "size (KiB)": size
    more = f" and {len(headers) - 2} more columns" if len(headers) > 2 else ""
    return f" ({', '.join(names)}{more} not shown: widen the terminal or read the .md)"


SETTING_WIDTH, MIN_SETTING_WIDTH = 40, 14  # a setting wraps at the first width, then at the second before
# the sorted column or accuracy is dropped


def _none_that_small(rows: pd.DataFrame, min_compression: float) -> str:
    """Why `--min-compression` left the references alone: no row reaches that size, and how far
    the most compressed of `rows` (those the other filters keep) goes, as --sparsity names the
    levels there are. Without it the other rows seemed to have vanished."""
    said = f"no row at least {min_compression:g}x smaller than dense"
    rows = rows[~rows.method.isin(REFERENCES)]
    if "compression_x" not in rows or rows.compression_x.isna().all():
        return said
    top = rows.loc[rows.compression_x.idxmax()]
    setting = "" if top.shown_setting == "-" else f" {top.shown_setting}"
    shown = as_shown(rows.compression_x, "compression")[top.name]
    return f"{said}; the most compressed: {top.method}{setting} at {shown:g}x"


def terminal(recs: list[Record], width: int, families: dict[str, str],
             sparsity: float | None = None, family: str | None = None, sort: str | None = None,
             methods: Collection[str] | None = None, min_compression: float | None = None) -> str:
    """The aggregated tables of `recs` (mean ± std over seeds) for a terminal `width` characters
    wide: one per data source, budget and device type, `dense` and `dense-ft` first, then the
    rows of the `family`, `sparsity`, `methods` and `min_compression` asked for (sorted by `sort`: see `select`). A row's
    setting shows only the parameters that differ between its method's rows, wrapped onto more
    lines where the column is narrow (cut alike, two rows would read the same); columns are
    dropped, least important first, rather than wrapped."""
    table, cols = board_table(recs)
    if table.empty:
        return "no finished runs"
    table["shown_setting"] = distinct_settings(table)  # told apart among all rows, not the filtered
    picked = select(table, cols, families, sparsity, family, sort, methods, min_compression)
    out = []
    if sparsity is not None and picked.method.isin(REFERENCES).all():  # a level no row has: say which there are
        rows = select(table, cols, families, None, family, methods=methods)
        levels = sorted({lv for lv in rows[~rows.method.isin(REFERENCES)].setting_params.map(setting_sparsity)
                         if lv is not None and pd.notna(lv)})
        out += [f"no row{f' of family {family}' if family else ''} at sparsity {sparsity:g}; the levels: "
                f"{', '.join(f'{lv:g}' for lv in levels) or 'none'}", ""]
    if min_compression is not None and picked.method.isin(REFERENCES).all():
        out += [_none_that_small(select(table, cols, families, sparsity, family, methods=methods), min_compression), ""]
    best = {key: best_speedups(t, cols) for key, t in table.groupby(TABLE, sort=True)}  # over all its rows
    table = picked
    standing = {} if min_compression is None else ties.at_least(picked, recs, min_compression)
    for key, t in table.groupby(TABLE, sort=True):
        source, budget, device = key
        by_column = {c.column: c for c in displayed(cols, t, "main") + displayed(cols, t, "speed")}
        first = [best[key][0][0].column if c == BEST_SPEED and best[key] else c for c in FIRST]
        order = [c for c in first if c in by_column] + [c for c in by_column if c not in first]
        # the column the rows are sorted by is dropped last, accuracy before it: a row is never
        # ranked by its size or speed without what it cost
        order.sort(key=lambda c: (c != sort, c != "accuracy_%"))
        shown, cut = list(order), SETTING_WIDTH
        kept = len({sort, "accuracy_%"} & set(order)) or 1  # these go last, after the settings shrink
        core = len((set(FIRST[:CORE]) | {sort}) & set(order))  # they lead `order`: dropped after the cut
        # Before a core column goes, the headers fold ("size (KiB)" over two lines) and a seeds column
        # that reads alike on every row goes into the heading: at 80 columns `mlp`'s table showed
        # accuracy alone, and its size fits so.
        folded, seeds_alike, seeds_shown = False, t["seeds"].nunique() == 1, True
        band = standing.get(key)
        while True:
            # a long setting wraps onto more lines rather than being cut: rows cut alike
            # ("magnitude.spa…" three times) could not be told apart; it wraps between parameters,
            # never inside one ("calibr" / "ation_samples=128")
            rows = [[timed_label(r["method"], r["timed_on"], device),
                     textwrap.fill(r["shown_setting"], cut, break_long_words=False, break_on_hyphens=False),
                     *([int(r["seeds"])] if seeds_shown else []),
                     *([band[i].status if i in band else ""] if band else []),
                     *[cell(r, by_column[c]) for c in shown]] for i, r in t.iterrows()]
            headers = ["method", "setting", *(["seeds"] if seeds_shown else []), *(["vs best"] if band else []),
                       *[by_column[c].header.replace(" (", "\n(", 1) if folded else by_column[c].header for c in shown]]
            text = tabulate(rows, headers=headers, disable_numparse=True)
            over = max(map(len, text.splitlines())) - width
            if over <= 0 or len(shown) <= 1:
                break
            if len(shown) > core:
                shown.pop()
            elif cut > MIN_SETTING_WIDTH:
                cut = max(MIN_SETTING_WIDTH, cut - over)
            elif not folded:
                folded = True
            elif seeds_alike and seeds_shown:
                seeds_shown = False
            elif len(shown) > kept:
                shown.pop()
            else:
                kept = 1
        each = "" if seeds_shown else f" · {counted(int(t['seeds'].iloc[0]), 'seed')} each"
        out += [f"{source} · {budget} · {device.upper()}{each}" + _not_shown([by_column[c].header for c in order
                                                                                if c not in shown]), text, ""]
        timed = [by_column[c].header for c in shown if by_column[c].spread_column]
        if timed:  # what the parentheses hold, as the .md and site say
            out += [f"{', '.join(timed)}: measured speedup over dense, the median over seeds; in parentheses the "
                    "interquartile range of its timed pairs", ""]
        ranged = [by_column[c].header.split(" (")[0] for c in shown if by_column[c].spec.seed_range]
        if ranged and t["seeds"].max() > 1:  # "31 (29–268)": not a spread of timed pairs
            out += [f"{', '.join(ranged)}: the median over seeds; in parentheses the lowest and highest seed", ""]
        if band:
            out += [f"{ties.summary(band, f'≥ {min_compression:g}x')}; {ties.TEST}", ""]
    return "\n".join(out).rstrip() or "no finished runs"
