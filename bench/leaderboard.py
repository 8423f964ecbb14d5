"""A suite's leaderboard files, rebuilt from its records: CSV, Markdown and plots.

Standard-budget runs go to leaderboard.{csv,md}; runs with overridden budgets go to
leaderboard-custom.{csv,md}, keyed by their budget, so the two never mix. The table is
bench.board's, its text bench.render's, its figures bench.plots'; every file is replaced
atomically, so the same records always give the same bytes.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from bench import files, layout, plots
from bench.locks import Claim
from bench.metrics import Column
from bench.records import Record, Status
from bench.render import markdown
from bench.board import TABLE, csv_text, families, load, main_rows, plot_frame, rounded, row_key
from bench.board import table as board_table


# Standard-budget runs and overridden budgets: never in one table.
PARTS = ((True, "leaderboard", "standard budget"),
         (False, "leaderboard-custom", "overridden budgets (not comparable with the standard leaderboard)"))


def table_path(results_dir: Path | str, suite: str, standard: bool, ext: str = "md") -> Path:
    """A suite's leaderboard file: of the standard budget or of overridden ones, Markdown or CSV
    (the literature checks decide on the standard CSV)."""
    stem = next(stem for part, stem, _ in PARTS if part is bool(standard))
    return layout.suite_dir(results_dir, suite) / f"{stem}.{ext}"


PLOTS = ("frontier", "pareto", "speedup")


# What `write` makes in a suite's folder, as globs: `bench leaderboard --check` compares exactly these.
OUTPUTS = ("leaderboard*.csv", "leaderboard*.md", *(f"{name}*.png" for name in PLOTS))


def write(results_dir: Path, suite: str) -> list[Path]:
    """Rebuild a suite's leaderboard files from its records; returns the files written. Each
    file is replaced atomically, and a plot the records no longer give is removed; a record
    file that cannot be read is named in a warning.

    Rebuilds of one suite take turns (a claim, `claims/leaderboard.lock`), each reading the
    records once the one before has written its files: two commands ending together made the
    one that read first write last, and its tables lacked the other's last records."""
    folder = layout.suite_dir(results_dir, suite)
    layout.refuse_links([folder])  # (its runs folder is only read: --check reads the records through links)
    claims = layout.claims_dir(results_dir, suite)
    turn = Claim(claims, "leaderboard")
    if not turn.acquire():
        holder = turn.holder()
        print(f"bench: waiting for another command{f' (pid {holder})' if holder else ''} to finish rebuilding the "
              f"leaderboard of {suite}", file=sys.stderr)
        turn.acquire(wait=True)
    try:
        return _write(results_dir, suite, folder)
    finally:
        turn.release()
        with contextlib.suppress(OSError):
            claims.rmdir()  # only when empty: other commands may hold claims


def _write(results_dir: Path, suite: str, folder: Path) -> list[Path]:
    recs = load(results_dir, suite)
    written = []
    for standard, stem, title in PARTS:
        suffix = "" if standard else "-custom"
        part = [r for r in recs if r.get("standard_budget") is standard]
        paths = {name: folder / f"{name}{suffix}.png" for name in PLOTS}
        if part:
            table, cols = board_table(part)
            folder.mkdir(parents=True, exist_ok=True)
            csv = table_path(results_dir, suite, standard, "csv")
            files.write_text_atomic(csv, csv_text(rounded(table, cols)))
            md = table_path(results_dir, suite, standard)
            files.write_text_atomic(md, markdown(table, cols, part, suite, title))
            written += [csv, md]
            if len(table):
                plot_title = plot_heading(table, part, suite, title)
                t, ycol = plot_frame(table, families(part))
                drawn = plots.frontier_figure(t, ycol, cols, plot_title)
                figures = {"frontier": drawn and drawn[0],
                           "pareto": plots.family_figure(t, ycol, plot_title),
                           "speedup": plots.speedup_figure(t, cols, plot_title)}
                for name, fig in figures.items():
                    if fig is not None:
                        plots.save(fig, paths[name])
                        written.append(paths[name])
        for path in paths.values():  # a plot these records no longer give
            if path not in written:
                path.unlink(missing_ok=True)
    return written


def plot_heading(table: pd.DataFrame, recs: list[Record], suite: str, title: str) -> str:
    """A plot's title: the suite, the part (standard budget or overridden budgets) and the table
    group it draws, with its seeds."""
    group = main_rows(table).iloc[0]
    seeds = sorted({r["config"]["seed"] for r in recs if r["status"] == Status.OK
                    and tuple(row_key(r)[k] for k in TABLE) == tuple(group[TABLE])})
    return (f"{suite} ({title.split(' (')[0]}): {group['data_source']}, {group['budget']}, "
            f"{group['device'].upper()}, seeds {','.join(map(str, seeds))}")


def frontier(table: pd.DataFrame, cols: list[Column], recs: list[Record], suite: str,
             title: str) -> tuple[Any, pd.DataFrame] | None:
    """The frontier figure of a part's table and its rows' markers (bench.plots.frontier_figure):
    what write saves, and what the site lays its links over."""
    t, ycol = plot_frame(table, families(recs))
    return plots.frontier_figure(t, ycol, cols, plot_heading(table, recs, suite, title))
