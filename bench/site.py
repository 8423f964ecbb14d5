"""A static leaderboard site built from the run records alone, after asv's published results and
the headline tables of Papers with Code and the Open LLM Leaderboard.

`bench leaderboard --html` writes, under one folder:
- an index with each suite's headline: for each size band, the most accurate method, linked to
  its row, and the suite's record count and provenance on one line;
- per suite a page that leads with the frontier figure and the best method at each size, then
  the leaderboard as a sortable, filterable table of headline columns (the rest behind a
  checkbox that works without JavaScript), a method x level pivot of the swept methods, the
  family and speedup plots, the runtimes that could not take a model, the failed and skipped
  runs, and where the runs ran (of its standard-budget runs); the literature checks' verdicts on its rows (results/checks.json,
  shown only beside the leaderboard they were decided on) come between the headline and the
  table;
- per suite a page of the overridden-budget runs, labelled as such, with their failures and
  where they ran, and a page of its run
  records, one anchor per record (configuration, metrics, environment, log).
The pages share one CSS file and one script in the site's folder and load nothing from a
network, so they work from a file:// URL and from any static host. Everything is ordered and
formatted deterministically: the same records give the same bytes.
"""

from __future__ import annotations

import hashlib
import html
import json
import shutil
import sys
import zlib
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pandas as pd

from bench import board, files, layout, leaderboard, plots, render, ties
from bench.errors import ResultsFolderError, counted, printable
from bench.records import MACHINE_MARGIN, Record, Status
from bench.leaderboard import PLOTS
from bench.metrics import Column
from bench.render import cell, number
from bench.board import REFERENCES, ROW, TABLE, family_of, short_setting
from bench.plan import flat_params, setting_label

STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:1em auto;max-width:1400px;padding:0 1em;color:#222}
h1{font-size:1.4em;margin:.3em 0}h2{font-size:1.2em;margin-top:1.6em}h3{font-size:1.05em}
p,h1,h2,h3,summary{overflow-wrap:break-word}
table{border-collapse:collapse;font-size:12.5px;margin:.5em 0 1em}
th,td{border:1px solid #ddd;padding:3px 6px;text-align:right;white-space:nowrap}
th{background:#f3f3f3;position:sticky;top:0;white-space:normal;vertical-align:bottom}
td.t,th.t{text-align:left}
table.sortable th{cursor:pointer}
th[aria-sort=ascending]::after{content:" \\25B2"}th[aria-sort=descending]::after{content:" \\25BC"}
tr.ref td{background:#fafae6}
tr:target td{background:#fff3b0}
.scroll{overflow-x:auto}
.filters{margin:.5em 0;display:flex;gap:1em;flex-wrap:wrap}.filters[hidden]{display:none}.filters select{max-width:20em}
.note{color:#555}
.lead{display:flex;gap:1em;align-items:flex-start;flex-wrap:wrap}
.lead .plot{flex:1 1 600px;max-width:58%;min-width:300px}
.plot{position:relative}.plot img{display:block;width:100%}
.plot a{position:absolute;width:1.1%;aspect-ratio:1;transform:translate(-50%,-50%);border-radius:50%}
.plot a:hover,.plot a:focus{outline:2px solid #000}
.lead .best{flex:1 1 300px;min-width:0}.lead h2{margin-top:0}
table.best th,table.best td.m,table.best td.w,table.plain td.t,td.s{white-space:normal}table.best td.w{min-width:6em}table.best td.m{min-width:9em}td.s{min-width:12em}
@media (max-width:900px){.lead .plot{max-width:100%}}
img{max-width:100%;border:1px solid #eee}
pre{background:#f7f7f7;padding:.6em;overflow-x:auto;font-size:12px}
details{margin:.3em 0}
#all-columns:not(:checked)~.tables .x{display:none}
"""

# Sorting by any column, with the mouse or the keyboard (numbers as numbers, by the figures shown; blanks last; rows that read alike
# in the table's own order: references, then method and setting), filtering the rows of every
# leaderboard table on the page by family, sparsity and a method substring, and unfolding the
# record a link points at. site.js and site.css are shared by the pages, beside index.html.
SCRIPT = """
function cellValue(row, i) {
  const c = row.children[i]; const v = c.dataset.v !== undefined ? c.dataset.v : c.textContent.trim();
  const n = parseFloat(v); return v === "" ? null : (isNaN(n) || !/^[-+0-9.eE]+$/.test(v) ? v : n);
}
function sortBy(th) {
  const table = th.closest("table"), body = table.tBodies[0], i = [...th.parentNode.children].indexOf(th);
  const dir = th.getAttribute("aria-sort") === "ascending" ? -1 : 1;
  table.querySelectorAll("th").forEach(h => h.removeAttribute("aria-sort"));
  th.setAttribute("aria-sort", dir === 1 ? "ascending" : "descending");
  const rows = [...body.rows];
  rows.sort((a, b) => {  // blanks last either way; ties (as shown) in the table's own order
    const x = cellValue(a, i), y = cellValue(b, i);
    const by = x === null || y === null ? (x === null) - (y === null) :
      (typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y), undefined, {numeric: true})) * dir;
    return by || a.dataset.order - b.dataset.order;
  });
  rows.forEach(r => body.appendChild(r));
}
function applyFilters() {
  const f = document.getElementById("family").value, s = document.getElementById("sparsity").value;
  const m = document.getElementById("method").value.trim().toLowerCase();
  let shown = 0;
  document.querySelectorAll("table.sortable tbody tr").forEach(r => {
    const ref = r.classList.contains("ref");
    const ok = ref || ((!f || r.dataset.family === f) && (!s || r.dataset.sparsity === s)
                       && (!m || r.dataset.method.toLowerCase().includes(m)));
    r.hidden = !ok; shown += ok && !ref;
  });
  document.getElementById("shown").textContent = shown;
}
function openAnchor() {  // a record page opened at a record's anchor unfolds it
  const e = location.hash && document.getElementById(decodeURIComponent(location.hash.slice(1)));
  if (e && e.tagName === "DETAILS") { e.open = true; e.scrollIntoView(); }
}
addEventListener("hashchange", openAnchor);
document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("table.sortable th").forEach(th => {  // by mouse, or by keyboard: Tab, then Enter
    th.tabIndex = 0; th.addEventListener("click", () => sortBy(th));
    th.addEventListener("keydown", e => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); sortBy(th); } });
  });
  document.querySelectorAll("table.sortable tbody").forEach(b => [...b.rows].forEach((r, i) => { r.dataset.order = i; }));
  ["family", "sparsity", "method"].forEach(id => {
    const e = document.getElementById(id); if (e) e.addEventListener("input", applyFilters);
  });
  document.querySelectorAll(".filters").forEach(e => { e.hidden = false; });
  if (document.getElementById("family")) applyFilters();
  openAnchor();
});
"""


def _e(value: Any) -> str:
    """A record's text as HTML: escaped, and printable (bench.errors.printable), so that a
    bidirectional override in a method or setting cannot show one row's text as another's."""
    return html.escape(printable(str(value)), quote=True)


# What a page may load and run: the site's own files, nothing inline but style attributes (the
# frontier's points), no plugins, forms or <base>. The second line of defence behind _e: a record's
# text that escaping ever let through as a <script>, an onerror= or a javascript: link runs nothing.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self'; "
       "object-src 'none'; base-uri 'none'; form-action 'none'")


def _page(title: str, body: list[str], root: str) -> str:
    """A page; `root` is the relative path to the site's folder, where its CSS and script are."""
    return "\n".join(["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
                      f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
                      '<meta name="viewport" content="width=device-width, initial-scale=1">',
                      f'<title>{_e(title)}</title><link rel="stylesheet" href="{root}site.css">',
                      f'<script src="{root}site.js"></script>', "</head><body>", *body, "</body></html>", ""])


def _table(headers: list[str], rows: list[list[str]]) -> str:
    """A plain table, its text cells wrapping (reasons, errors); cells are escaped here."""
    head = "".join(f'<th class="t">{_e(h)}</th>' for h in headers)
    body = "".join("<tr>" + "".join(f'<td class="t">{_e(c)}</td>' for c in r) + "</tr>" for r in rows)
    return f'<div class="scroll"><table class="plain"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _sparsity(params: dict[str, Any]) -> str:
    """The sparsity a row's parameters name, as the filter lists it ('' for none)."""
    value = board.setting_sparsity(params)
    return "" if value is None else f"{value:g}"


def _runs_by_row(recs: list[Record]) -> dict[tuple, list[tuple[int, str]]]:
    """(table, method, setting, timed_on) of the aggregated row -> its records' (seed, anchor)."""
    return {key: sorted((r["config"]["seed"], r["_stem"]) for r in rows)
            for key, rows in board.records_by_row(recs).items()}


def _caveats(t: pd.DataFrame, machines: dict[tuple, set[str]]) -> tuple[list[str], dict[tuple, str]]:
    """What a reader must know before comparing a table's rows, as notes above it, and the label of
    each row's machine models ({} where one model trained them all: `board.machine_labels`).
    Accuracy moves between machine models by more than between seeds (MACHINE_MARGIN), so a table
    trained on several names them (M1, M2, ...) and marks each row's; a fused run's train time is
    its share of the fused steps, not a time one run takes alone. Both were only in the CSV or a
    header's tooltip."""
    notes = []
    labels, legend = board.machine_labels(t, machines)
    if labels:
        notes.append(f'<p class="note"><b>Trained on {len(legend)} machine models</b>, between which accuracy moves '
                     f"by up to about {MACHINE_MARGIN:g} pts, more than between seeds: compare accuracy between rows "
                     f"of one model (column <i>trained on</i>). {_e('; '.join(legend))}.</p>")
    if "fused_with" in t and (fused := int((t["fused_with"] > 1).sum())):
        notes.append(f'<p class="note"><b>{counted(fused, "row")} trained fused with other runs</b> '
                     "(<code>--fuse</code>; column <i>fused with</i>): a fused run's train time is its share of the "
                     "fused steps, not the time it takes alone; its accuracy is that of training alone, within float "
                     "tolerance.</p>")
    return notes, labels


# The columns a table shows by default, besides method, setting and seeds, and the best runtime's
# measured speedups: what a reader compares first. The rest sit behind the "all columns" checkbox.
HEADLINE = ("accuracy", "delta_acc", "delta_ft", "size_bytes", "compression", "train_epochs")
# Size bands of the headline: at least this many times smaller than the dense model (`compression`).
BANDS = (1, 2, 4, 8, 16, 32, 64, 128)


def anchor(key: tuple) -> str:
    """A leaderboard row's anchor, from its (data source, budget, device type, method, full
    setting, device timed on): the same on every rebuild, so links to it keep working."""
    return "row-" + format(zlib.crc32("|".join(map(str, key)).encode()), "08x")


def sort_key(value: Any, decimals: int) -> str:
    """A numeric cell's sort key (its data-v): the figure the cell shows (`number`), without the
    thousands commas that a script would not parse as a number; "" where there is none. Not the
    unrounded value: rows that read alike then sort alike (the script keeps their order in the
    table), not by a digit no one sees, and the page holds no more precision than it shows."""
    return number(value, decimals).replace(",", "")


def _setting_order(t: pd.DataFrame) -> dict[Any, int]:
    """Per row of a table (by index), its setting's rank as the row shows it, numbers compared as
    numbers: the setting cell's sort key. As text, a browser's numeric collation reads the digits
    after a point as a whole number, and sorted sparsity=0.9 before 0.85 and 0.5 before 0.25."""
    def key(method: str, params: dict[str, Any]) -> tuple:
        return tuple((k, (0, level, "") if (level := board.level(v)) is not None else (1, 0.0, str(v)))
                     for k, v in board.shown_params(method, params).items())

    keys = {i: key(m, p) for i, m, p in zip(t.index, t.method, t.setting_params)}
    rank = {k: n for n, k in enumerate(sorted(set(keys.values())))}
    return {i: rank[k] for i, k in keys.items()}


def _row_key(r: pd.Series) -> tuple:
    return tuple(r[k] for k in ROW)


def _speed_columns(table: pd.DataFrame, cols: list[Column]) -> list[tuple[Column, str]]:
    """The measured speedups of the suite's best runtime at batch 1 and at its largest batch."""
    return board.best_speedups(board.plot_frame(table)[0], cols) if len(table) else []


def _leaderboard_tables(table: pd.DataFrame, cols: list[Column], recs: list[Record],
                        families: dict[str, str]) -> list[str]:
    """Per table group (data source, budget, device type): one sortable table, its headline
    columns shown and the others of class "x", hidden until "all columns" is ticked. A setting
    shows the swept and non-default parameters; hovering it shows them all."""
    if table.empty:
        return ['<p class="note">No finished runs.</p>']
    runs, machines = _runs_by_row(recs), board.machines_by_row(recs)
    speed = {c.column for c, _ in _speed_columns(table, cols)}
    out = []
    for (source, budget, device), t in table.groupby(TABLE, sort=True):
        notes, trained_on = _caveats(t, machines)
        setting_order = _setting_order(t)
        shown = render.displayed(cols, t, "main") + render.displayed(cols, t, "speed")
        x = {c.column: "" if c.key in HEADLINE or c.column in speed else ' class="x"' for c in shown}
        head = ['<th class="t">method</th>', '<th class="t x">family</th>', '<th class="t">setting</th>',
                "<th>seeds</th>", *(['<th class="t">trained on</th>'] if trained_on else [])]
        head += [f'<th{x[c.column]} title="{_e(c.spec.definition)}">{_e(c.header)}</th>' for c in shown]
        head += ['<th class="t">records</th>']
        rows = []
        for i, r in t.iterrows():
            family = family_of(r["method"], families)
            cells = [f'<td class="t">{_e(render.timed_label(r["method"], r["timed_on"], device))}</td>',
                     f'<td class="t x">{_e(family)}</td>',
                     f'<td class="t s" title="{_e(r["setting"])}" data-v="{setting_order[i]}">'
                     f'{_e(short_setting(r["method"], r["setting_params"]))}</td>',
                     f"<td>{int(r['seeds'])}</td>",
                     *([f'<td class="t">{_e(trained_on[_row_key(r)])}</td>'] if trained_on else [])]
            for c in shown:
                value = r["accuracy_mean_%"] if c.key == "accuracy" else r[c.column]
                cells.append(f'<td{x[c.column]} data-v="{sort_key(value, c.spec.shown)}">{_e(cell(r, c))}</td>')
            links = " ".join(f'<a href="runs.html#{_e(stem)}">s{seed}</a>' for seed, stem in runs.get(_row_key(r), []))
            cells.append(f'<td class="t">{links}</td>')
            ref = ' class="ref"' if r["method"] in REFERENCES else ""
            rows.append(f'<tr{ref} id="{anchor(_row_key(r))}" data-family="{_e(family)}" '
                        f'data-sparsity="{_e(_sparsity(r["setting_params"]))}" data-method="{_e(r["method"])}">'
                        + "".join(cells) + "</tr>")
        out += [f"<h3>data: {_e(source)} · budget: {_e(budget)} · runs on: {_e(device.upper())}</h3>", *notes,
                '<div class="scroll"><table class="sortable"><thead><tr>' + "".join(head)
                + "</tr></thead><tbody>" + "".join(rows) + "</tbody></table></div>"]
    return out


def bands(table: pd.DataFrame) -> list[tuple[int, pd.DataFrame]]:
    """(band, rows) per size band of the largest table group: its rows at least `band` times
    smaller than the dense model, as the tables show their compression (3.97x reads 4.0: at least
    4x), most accurate first (`ties.ranked`). Bands no row reaches are left out."""
    t = board.main_rows(table)
    if "compression_x" not in t:
        return []
    t = ties.ranked(t)
    compression = board.as_shown(t["compression_x"], "compression")
    return [(band, fit) for band in BANDS if len(fit := t[compression >= band])]


def best_by_size(table: pd.DataFrame) -> list[tuple[int, pd.Series]]:
    """(band, row) per size band (`bands`): the band's most accurate row."""
    return [(band, rows.iloc[0]) for band, rows in bands(table)]


def _band_name(band: int) -> str:
    return "any size" if band == 1 else f"≥ {band}x"


def _headline(table: pd.DataFrame, cols: list[Column], recs: list[Record], href: str) -> str:
    """The best method at each size, each linked to its row (`href` is the suite page's path),
    and the band's rows tied with it (bench.ties: its own test does not tell it from the best), counted, and
    listed in a fold, each linked to its row."""
    found = bands(table)
    if not found:
        return '<p class="note">No row with a size.</p>'
    speed = _speed_columns(table, cols)[:1]
    head = ["smaller than dense", "best method and setting", "accuracy (%)", "size (KiB)",
            *[f"speedup (x), {label}" for _, label in speed], "tied with it"]
    rows = []
    for band, t in found:
        standing = ties.standings(t, recs)
        r = t.iloc[0]
        values = [r.get("size_KiB"), *[r[c.column] for c, _ in speed]]  # (no size recorded: blank)
        numbers = [_accuracy(r), *(number(v, d) for v, d in zip(values, (1, 2)))]
        rows.append(f'<tr><td class="t">{_band_name(band)}</td>'
                    f'<td class="t m">{_row_link(r, href)}</td>'
                    + "".join(f"<td>{_e(n)}</td>" for n in numbers) + f'<td class="t w">{_tied_cell(t, standing, href)}</td></tr>')
    return ('<div class="scroll"><table class="best"><thead><tr>'
            + "".join(f'<th class="t">{_e(h)}</th>' for h in head) + "</tr></thead><tbody>" + "".join(rows)
            + "</tbody></table></div>")


def _accuracy(r: pd.Series) -> str:
    """A row's accuracy as the headline shows it: mean ± std, the mean alone for one seed."""
    return number(r["accuracy_mean_%"], 2) + (f" ± {number(r['accuracy_std_%'], 2)}" if r["seeds"] > 1 else "")


def _row_link(r: pd.Series, href: str) -> str:
    """A row's method and setting, linked to it on the suite page at `href`."""
    setting = short_setting(r["method"], r["setting_params"])
    return (f'<a href="{_e(href)}#{anchor(_row_key(r))}">{_e(r["method"])}</a>'
            f'{"" if setting == "-" else " " + _e(setting)}')


def _tied_cell(t: pd.DataFrame, standing: dict[Any, ties.Standing], href: str) -> str:
    """How many of the band's other rows are tied with its best ("3 of 11", "none of 11", with the
    unclear and the unjudged counted apart), and a fold listing them, each with its accuracy and
    linked to its row."""
    tied = [i for i in t.index if standing[i].status == ties.TIED]
    unclear = sum(s.status == ties.UNCLEAR for s in standing.values())
    unjudged = sum(s.status == ties.UNJUDGED for s in standing.values())
    others = len(t) - 1
    if not others:
        return "the only row"
    why = f"unjudged ({ties.unjudged_why(standing)})"
    text = (f"all {others} {why}" if unjudged == others else
            f"{len(tied) or 'none'} of {others}" + (f", {unclear} unclear" if unclear else "")
            + (f", {unjudged} {why}" if unjudged else ""))
    if not tied:
        return _e(text)
    items = "".join(f"<li>{_row_link(t.loc[i], href)}: {_e(_accuracy(t.loc[i]))}</li>" for i in tied)
    return f'<details><summary>{_e(text)}</summary><ul>{items}</ul></details>'


def _pivot(table: pd.DataFrame) -> list[str]:
    """Method x level for the swept methods of the largest table group: accuracy (size) per
    sparsity level, a row per method and non-default setting besides the swept one; the most
    accurate of each level in bold, every cell that shows its accuracy (2 decimals) with it."""
    t = board.main_rows(table)
    levels = []
    for method, params in zip(t.method, t.setting_params):
        swept = [v for k, v in params.items() if board.is_swept(method, k)]
        levels.append(board.level(swept[0]) if swept else None)
    t = t.assign(level=levels)
    t = t[t.level.notna()]
    if t.empty:
        return []
    t = t.assign(series=[board.series_label(m, p) for m, p in zip(t.method, t.setting_params)],
                 shown=board.as_shown(t["accuracy_mean_%"], "accuracy"))
    columns = sorted(set(t.level))
    best = t.groupby("level")["shown"].max()
    rows = []
    for series, m in t.groupby("series", sort=True):
        cells = ""
        for level in columns:
            found = m[m.level == level]
            if found.empty:
                cells += "<td></td>"
                continue
            r = found.iloc[0]
            accuracy = number(r["accuracy_mean_%"], 2)
            if r["shown"] == best[level]:  # ties as shown
                accuracy = f"<b>{accuracy}</b>"
            cells += f'<td><a href="#{anchor(_row_key(r))}">{accuracy}</a> ({_fmt_size(r)})</td>'
        rows.append(f'<tr><td class="t">{_e(series)}</td>{cells}</tr>')
    return ["<h2>swept methods by level</h2>",
            '<p class="note">Accuracy (%) and, in parentheses, size (KiB) at each level of the swept parameter '
            "(sparsity), the most accurate of each level in bold; a row per method and non-default setting. A "
            "cell links to its row.</p>",
            '<div class="scroll"><table><thead><tr><th class="t">method</th>'
            + "".join(f"<th>{v:g}</th>" for v in columns) + "</tr></thead><tbody>" + "".join(rows)
            + "</tbody></table></div>"]


def _fmt_size(r: pd.Series) -> str:
    """A row's size in KiB, as the pivot shows it ('?' where it was not measured)."""
    size = r.get("size_KiB")
    return "?" if size is None or pd.isna(size) else number(size, 0)


def _provenance(recs: list[Record]) -> str:
    """Records in one line (a suite's standard-budget ones, or its others): how many and how they
    ended, what, by which code and where; "no records" for none (a quick run's suite at the
    standard budget read "0 records () · 0 methods · seeds · · 0 commits · ")."""
    if not recs:
        return "no records"
    ok = [r for r in recs if r["status"] == Status.OK]
    ended = Counter(r["status"] for r in recs)
    methods = len({r["config"]["method"] for r in ok})
    commits = {board.code_of(r) for r in recs}
    dirty = sum(c.endswith("uncommitted changes") for c in commits)
    machines = sorted({r["env"].get("device_name", "?") for r in ok})
    seeds = sorted({r["config"]["seed"] for r in ok})
    return (f"{counted(len(recs), 'record')} ({', '.join(f'{ended[s]} {s}' for s in Status if ended[s])})"
            f" · {counted(methods, 'method')} · seeds {', '.join(map(str, seeds))} · {_description(recs)} · "
            f"{counted(len(commits), 'commit')}"
            + (f" ({dirty} with uncommitted changes)" if dirty else "")
            + f" · {'; '.join(machines)}")


def _filters(recs: list[Record], families: dict[str, str]) -> list[str]:
    """The family, sparsity and method filters of a suite's table, hidden until the script runs:
    without it they filtered nothing, and the count of rows shown was blank."""
    ok = [r for r in recs if r["status"] == Status.OK and r["config"]["method"] not in REFERENCES]
    fams = sorted({family_of(r["config"]["method"], families) for r in ok})
    sparsities = sorted({s for r in ok if (s := _sparsity(flat_params(r["config"]["params"])))},
                        key=float)  # numbers, formatted by _sparsity
    option = '<option value="{0}">{0}</option>'.format
    return ['<div class="filters" hidden>',  # shown by the script, which alone makes them work
            '<label>family <select id="family"><option value="">all</option>'
            + "".join(option(_e(f)) for f in fams) + "</select></label>",
            '<label>sparsity <select id="sparsity"><option value="">all</option>'
            + "".join(option(_e(s)) for s in sparsities) + "</select></label>",
            '<label>method <input id="method" type="search" placeholder="substring"></label>',
            '<span class="note"><span id="shown"></span> rows shown besides the references; '
            "click a column header to sort (by the figures shown; ties keep the table's order)</span>", "</div>"]


def _suite_page(suite: str, recs: list[Record], images: list[str], families: dict[str, str],
                checks: list[str]) -> str:
    """A suite's page, top to bottom: the frontier figure beside the best method at each size,
    the literature checks' verdicts (`checks`, from `_checks`), the leaderboard table, the swept
    methods by level, the family and speedup plots, then what did not run and where the runs
    ran, of the standard-budget records alone (the custom page says its own)."""
    standard = [r for r in recs if r.get("standard_budget")]
    custom = any(not r.get("standard_budget") for r in recs)
    table, cols = board.table(standard)
    body = ['<p><a href="../index.html">all suites</a>'
            + (' · <a href="custom.html">runs at overridden budgets</a>' if custom else "")
            + ' · <a href="runs.html">run records</a></p>',
            f"<h1>{_e(suite)}</h1>", f'<p class="note">Standard budget: {_e(_provenance(standard))}</p>']
    if table.empty:
        body.append('<p class="note">No finished standard-budget runs.</p>')
    else:
        lead = ['<div class="lead">']
        if "frontier.png" in images:
            lead.append(_frontier_image(suite, table, cols, standard))
        lead += ['<div class="best"><h2>best at each size</h2>',
                 '<p class="note">The most accurate row (mean over seeds) at least that many times smaller than the '
                 f"dense model, and how many of the band's other rows are tied with it ({_e(ties.TEST)}). A row "
                 "with one seed is not judged.</p>", _headline(table, cols, standard, ""), "</div></div>"]
        body += lead
    body += checks
    body += ["<h2>leaderboard (standard budget)</h2>",
             '<p class="note">Mean over seeds (accuracy: mean ± std; wall times and measured speedups: the '
             "median, a wall time with its lowest and highest seed in parentheses); hover a header for its definition (README.md, section Metrics), a setting for all its parameters: it shows the swept one and those that differ "
             "from the method's defaults. Highlighted rows are the references: <b>dense</b>, the trained model "
             "unchanged, and <b>dense-ft</b>, the dense model fine-tuned for the methods' extra epochs. Speed: "
             "measured speedup over the dense model in the same runtime (the timed pairs' interquartile range in "
             "parentheses). A blank cell was not measured: a runtime that could not take the model (the reasons are below the table), or a "
             "metric the row's records lack; blanks sort last.</p>"]
    body += _filters(standard, families)
    body += ['<input type="checkbox" id="all-columns"> <label for="all-columns">all columns (every runtime and '
             "batch, latencies, FLOPs, memory, training time)</label>", '<div class="tables">',
             *_leaderboard_tables(table, cols, standard, families), "</div>"]
    if not table.empty:
        body += _pivot(table)
    for name in ("pareto.png", "speedup.png"):
        if name in images:
            title = {"pareto.png": "by family", "speedup.png": "measured against theoretical speedup"}[name]
            body.append(f'<h2>{title}</h2><img src="{name}" alt="{_e(title)}">')
    body += _what_did_not_run(standard) + _where_they_ran(standard)
    budgets = sorted({json.dumps(r["config"]["budget"], sort_keys=True) for r in standard})
    if budgets:
        body += ["<h2>the standard budget's settings</h2>"] + [
            f'<p class="note">{_e(", ".join(f"{k}={v}" for k, v in json.loads(b).items()))}</p>' for b in budgets]
    return _page(f"{suite} leaderboard", body, "../")


def _read_checks(results_dir: Path) -> dict[str, Any] | str | None:
    """The results folder's checks.json (read once per site), the reason it is unreadable, or
    None when there is none. A check's row ends with its verdict, which the page counts: an
    empty row stopped the site's build with an IndexError."""
    path = Path(results_dir) / layout.CHECKS
    try:
        checks = files.read_json(path, MAX_FILE_BYTES)
        rows = [(check["suite"], [str(c) for c in check["row"]]) for check in checks["checks"]]
        if not all(row for _, row in rows):
            raise ValueError("a check holds an empty row, without its verdict")
        return {"columns": [str(c) for c in checks["columns"]], "about": str(checks.get("about", "")),
                "leaderboards": dict(checks["leaderboards"]), "rows": rows}
    except FileNotFoundError:
        return None
    except files.UnreadableFile as e:  # (a ValueError: caught before the checks' own)
        return f"{path}: {e}"
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as e:  # JSON, but not the checks
        return f"{path}: unreadable ({type(e).__name__}: {e})"


def _checks(checks: dict[str, Any] | str | None, results_dir: Path, suite: str) -> list[str]:
    """The section of a suite's page that shows the literature checks' verdicts on its rows
    (`_read_checks`): only when the suite's leaderboard.csv is the one they were decided on
    (else the section says they are stale), and as text whatever the file holds."""
    if checks is None:
        return []
    head = ["<h2>checks against published results</h2>"]
    if isinstance(checks, str):
        return head + [f'<p class="note">{_e(checks)}; rewrite it with: python benchmarks/literature_checks.py '
                       "--write-readme</p>"]
    rows = [row for name, row in checks["rows"] if name == suite]
    columns, decided_on, about = checks["columns"], checks["leaderboards"].get(suite), checks["about"]
    if not rows:
        return []
    table = _results_file(leaderboard.table_path(results_dir, suite, True, "csv"))
    now = hashlib.sha256(table).hexdigest() if table is not None else None
    if decided_on != now:
        return head + ['<p class="note">The verdicts were decided on another version of this leaderboard; refresh '
                       "them with: python benchmarks/literature_checks.py --write-readme</p>"]
    tally = pd.Series([row[-1].split(" (")[0] for row in rows]).value_counts().sort_index()
    summary = f"{len(rows)} checks: " + ", ".join(f"{n} {verdict}" for verdict, n in tally.items())
    # the interval as the script printed it, named by its column ("d [unadjusted 90% CI]"): a level
    # written here said 95% beside the 90% column once the script moved to the one-sided tests' interval
    interval = next((c[len("d ["):-1] for c in columns if c.startswith("d [") and c.endswith("]")), "interval")
    return head + [f'<p class="note">Each claim tested on this leaderboard\'s rows over their seeds: d is the '
                   f"difference in accuracy points, with its {_e(interval)}; p is the test on the estimate's side, raw and "
                   f"Holm-adjusted across every check of every suite. {_e(about)}. How each check is built: "
                   "benchmarks/literature_checks.py.</p>",
                   f"<details><summary>{_e(summary)}</summary>{_table(columns, rows)}</details>"]


def _frontier_image(suite: str, table: pd.DataFrame, cols: list[Column], recs: list[Record]) -> str:
    """The frontier figure with a link laid over each row's marker: hovering shows the row (its
    tooltip), clicking goes to it in the table. Plain links placed by CSS: no script needed."""
    fig, points = leaderboard.frontier(table, cols, recs, suite, "standard budget")
    where = plots.positions(fig, points)
    links = []
    for i, p in where.iterrows():
        r = table.loc[i]
        setting = short_setting(r["method"], r["setting_params"])
        text = (f"{r['method']}{'' if setting == '-' else ' ' + setting}: {number(r['accuracy_mean_%'], 2)}"
                + (f" ± {number(r['accuracy_std_%'], 2)}" if r["seeds"] > 1 else "") + f" %, {number(r['size_KiB'], 1)} KiB")
        links.append(f'<a href="#{anchor(_row_key(r))}" title="{_e(text)}" '
                     f'style="left:{p.left:.2f}%;top:{p.top:.2f}%"></a>')
    return ('<div class="plot"><img src="frontier.png" alt="accuracy against size of every method, with the '
            'Pareto frontier, and the measured speedup">' + "".join(links) + "</div>")


def _what_did_not_run(recs: list[Record]) -> list[str]:
    """The runtimes that could not take a model, and the failed and skipped runs."""
    body = []
    empty = board.unavailable_runtimes(recs)
    if empty:
        body += ["<h2>runtimes that could not take a model</h2>",
                 f"<details><summary>{len(empty)} (method, setting, runtime) with the reason</summary>",
                 _table(["method", "setting", "runtime", "reason"], empty), "</details>"]
    failed = board.failed_runs(recs)
    if failed:
        body.append("<h2>failed and skipped runs</h2>")
        rows = "".join("<tr>" + "".join(f'<td class="t">{_e(c)}</td>' for c in row)
                       + f'<td class="t"><a href="runs.html#{_e(r["_stem"])}">record</a></td></tr>' for row, r in failed)
        body.append('<div class="scroll"><table class="plain"><thead><tr>' + "".join(
            f'<th class="t">{h}</th>' for h in ["method", "setting", "seed", "status", "error", ""])
            + f"</tr></thead><tbody>{rows}</tbody></table></div>")
    return body


def _where_they_ran(recs: list[Record]) -> list[str]:
    """The machines and commits of `recs`, one page's records only, as its leaderboard.md says them:
    the suite's page listed the quick runs' too, a laptop's uncommitted code under a GPU board."""
    if not recs:
        return []
    envs = pd.Series([_environment(r) for r in recs]).value_counts().sort_index()
    return ["<h2>where the runs ran</h2>", _table(["environment", "runs"], [[e, n] for e, n in envs.items()])]


def _custom_page(suite: str, recs: list[Record], images: list[str], families: dict[str, str]) -> str:
    """The runs at overridden budgets (quick runs with fewer epochs or a data subset), apart from
    the standard leaderboard and said to be so: their accuracy answers another question."""
    table, cols = board.table(recs)
    body = [f'<p><a href="../index.html">all suites</a> · <a href="index.html">{_e(suite)} leaderboard</a> · '
            '<a href="runs.html">run records</a></p>',
            f"<h1>{_e(suite)}: runs at overridden budgets</h1>",
            '<p class="note">These runs were made with budgets overridden on the command line (<code>--epochs</code>, '
            "<code>--finetune-epochs</code>, <code>--limit-train</code>, <code>--limit-test</code>), mostly as quick "
            "checks. They are <b>not comparable with the standard leaderboard</b>, nor with each other across "
            f"budgets: each table is one budget. {_e(_provenance(recs))}.</p>",
            '<input type="checkbox" id="all-columns"> <label for="all-columns">all columns</label>',
            '<div class="tables">', *_leaderboard_tables(table, cols, recs, families), "</div>"]
    for name in ("frontier-custom.png", "pareto-custom.png", "speedup-custom.png"):
        if name in images:
            body.append(f'<img src="{name}" alt="{_e(name.removesuffix(".png"))}">')
    body += _what_did_not_run(recs) + _where_they_ran(recs)
    return _page(f"{suite}: runs at overridden budgets", body, "../")


def _environment(r: Record) -> str:
    return f"{board.environment(r)}, commit {board.code_of(r)}"


def _runs_page(suite: str, recs: list[Record]) -> str:
    body = [f'<p><a href="../index.html">all suites</a> · <a href="index.html">{_e(suite)} leaderboard</a></p>',
            f"<h1>{_e(suite)}: run records ({len(recs)})</h1>",
            f'<p class="note">One entry per record file, <code>{_e(suite)}/runs/NAME.json</code> in the '
            "results folder; the anchor of each is its NAME. Its log, where the run was made with a log, "
            f"is <code>{_e(suite)}/logs/NAME.log</code> on the machine that ran it (logs are not "
            "committed).</p>"]
    for r in sorted(recs, key=lambda r: r["_stem"]):
        shown = {k: v for k, v in r.items() if k != "_stem"}
        c = r["config"]
        body.append(f'<details id="{_e(r["_stem"])}"><summary>{_e(c["method"])} · '
                    f"{_e(setting_label(c['params']))} · seed {_e(c['seed'])} · {_e(r['status'])}"
                    f" · {_e(r['_stem'])}.json</summary>"
                    f"<pre>{_e(json.dumps(shown, indent=1, sort_keys=True))}</pre></details>")
    return _page(f"{suite} run records", body, "../")


def _description(recs: list[Record]) -> str:
    """The models and data sources of a suite's records."""
    return "; ".join(sorted({f"{r['config'].get('model', {}).get('name', 'an unrecorded model')} on "
                             f"{r['config']['data_source']}" for r in recs}))


# The most bytes a file the site copies or reads from the results folder may hold (a plot, the
# checks, a leaderboard.csv): they are a few hundred KB.
MAX_FILE_BYTES = 64 * 2**20
# The file the site writes into each suite's folder of it: the one sign that the folder is the
# site's to remove on a rebuild. A folder without it may be a user's, or a results folder's suite.
MARKER = ".bench-site"


def _results_file(path: Path) -> bytes | None:
    """The bytes of a file of the results folder, None where there is none; a symbolic link, a
    FIFO, a device or a file over MAX_FILE_BYTES is left out with a warning, neither followed
    (a plot linked to /etc/passwd would be published) nor waited on."""
    try:
        return files.read_regular_file(path, MAX_FILE_BYTES)
    except FileNotFoundError:
        return None
    except files.RefusedFile as e:
        print(f"bench: warning: left out of the site: {path}: {e}", file=sys.stderr)
        return None


def check_out(results_dir: Path, suites: list[str], out: Path) -> None:
    """Refuse (ResultsFolderError), before anything is written, a site folder whose rebuild would
    replace what the site did not write: the results folder itself, a folder holding it, one
    inside a suite's folder of it, or one whose suite folders the site did not write."""
    results, where = Path(results_dir).resolve(), Path(out).resolve()
    homes = [results / s for s in {*suites, *layout.suites_with_records(results_dir)}]
    if results.is_relative_to(where) or any(where.is_relative_to(home) for home in homes):
        raise ResultsFolderError(f"the site cannot be written into {out}: it is, holds, or lies in a suite's "
                                 f"folder of the results folder {results_dir}, whose records it would replace; "
                                 f"choose another --out (by default {Path(results_dir) / layout.SITE})")
    top = Path(out)
    if top.is_symlink() or (top.exists() and not top.is_dir()):
        raise ResultsFolderError(f"the site cannot be written into {out}: it is a symbolic link or a file, and the "
                                 "site writes only into a folder of its own (pass the link's target as --out)")
    loose = sorted(p.name for p in top.iterdir() if (not p.is_dir() or p.is_symlink()) and not p.name.startswith(".")) \
        if top.exists() else []
    if loose and loose != sorted(SITE_FILES):  # a site writes all of these, and only these, beside its suites
        raise ResultsFolderError(f"the site cannot be written into {out}: it holds files the site did not write "
                                 f"({', '.join(loose[:3])}{', ...' if len(loose) > 3 else ''}); choose another --out")
    for folder in (top / suite for suite in suites):
        if not _replaceable(folder):
            raise ResultsFolderError(f"{folder} is not a folder the site wrote (it holds no {MARKER} file), so it is "
                                     "not replaced; remove it yourself if it is an old site's, or choose another --out")


SITE_PAGES = ("index.html", "runs.html", "custom.html")  # a suite folder's pages, beside its plots
SITE_FILES = ("index.html", "site.css", "site.js")  # the site folder's own files, beside the suites' folders


def _replaceable(folder: Path) -> bool:
    """Whether the site may remove `folder` to rebuild it: there is none, or it is an empty
    folder or one the site wrote: it holds MARKER, or (a site built before the marker) nothing
    but the site's pages and plots, as plain files; a symbolic link or a file never is."""
    if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
        return False
    if not folder.exists() or (folder / MARKER).is_file():
        return True
    return all(p.is_file() and not p.is_symlink() and (p.name in SITE_PAGES or p.suffix == ".png")
               for p in folder.iterdir())


def _fresh_folder(folder: Path) -> None:
    """Make `folder` (which check_out let through: the site's, or empty) an empty suite folder
    of the site, marked as the site's: the site holds what the records give, nothing older."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    files.write_text_atomic(folder / MARKER, "written by bench leaderboard --html, which removes this folder "
                                               "and writes it again on each build\n")


def build(results_dir: Path, suites: list[str], out: Path, checks_dir: Path | None = None) -> list[Path]:
    """Write the site for `suites` under `out` from their records and their plots (the plots
    that `bench.leaderboard.write` made beside the records are copied: call it first); each
    suite's folder is rebuilt from scratch, and only a folder the site wrote is removed (see
    `check_out`). The literature checks are read from `checks_dir`'s checks.json (by default
    the results folder's: `bench leaderboard --check` rebuilds elsewhere). Returns the files
    written, the markers aside."""
    check_out(results_dir, suites, out)
    files.remove_stale_temporaries(out)  # a build killed mid-write (kill -9) left them
    written = []
    sections = []
    checks = _read_checks(checks_dir or results_dir)
    for suite in suites:
        recs = board.load(results_dir, suite)
        if not recs:
            continue
        families = board.families(recs)
        folder = out / suite
        _fresh_folder(folder)
        plotted = {name: _results_file(layout.suite_dir(results_dir, suite) / name)
                   for name in (f"{name}{suffix}.png" for suffix in ("", "-custom") for name in PLOTS)}
        images = [name for name, data in plotted.items() if data is not None]
        for name in images:
            files.atomic_write(folder / name, lambda f: f.write(plotted[name]))
            written.append(folder / name)
        custom = [r for r in recs if not r.get("standard_budget")]
        pages = {"index.html": _suite_page(suite, recs, images, families, _checks(checks, results_dir, suite)),
                 "runs.html": _runs_page(suite, recs)}
        if custom:
            pages["custom.html"] = _custom_page(suite, custom, images, families)
        for name, text in pages.items():
            files.write_text_atomic(folder / name, text)
            written.append(folder / name)
        standard = [r for r in recs if r.get("standard_budget")]
        table, cols = board.table(standard)
        # The suite's folder as a path in a link, percent-encoded: a results folder's suite named
        # "javascript:..." (no suite file names one so, but a folder is anyone's to name) was a
        # javascript: link on the index, and one named "a#b" linked to a page that is not there.
        link = quote(suite)
        sections += [f'<h2><a href="{_e(link)}/index.html">{_e(suite)}</a></h2>',
                     f'<p class="note">Standard budget: {_e(_provenance(standard))}'
                     + (f' · <a href="{_e(link)}/custom.html">{counted(len(custom), "run")} at overridden budgets</a>'
                        if custom else "") + "</p>",
                     _headline(table, cols, standard, f"{link}/index.html") if len(table) else
                     '<p class="note">No finished standard-budget runs.</p>']
    body = ["<h1>Compression benchmark leaderboards</h1>",
            '<p class="note">Per suite, the best method at each size: the most accurate row (mean over seeds) at '
            "least that many times smaller than the dense model, linked to its row; the suite's page has the "
            "frontier figure and every row. Accuracy is the mean ± std over seeds; a band's other rows are "
            f"judged against its best ({_e(ties.TEST)}), and a row with one seed is not judged. Built by <code>bench leaderboard "
            "--html</code> from the run records alone.</p>", *sections]
    files.write_text_atomic(out / "index.html", _page("Compression benchmark leaderboards", body, ""))
    files.write_text_atomic(out / "site.css", STYLE.lstrip())
    files.write_text_atomic(out / "site.js", SCRIPT.lstrip())
    return [*written, out / "index.html", out / "site.css", out / "site.js"]
