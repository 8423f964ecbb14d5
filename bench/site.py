"""A static leaderboard site built from the run records alone, after asv's published results.

`bench leaderboard --html` writes, under one folder, an index of the suites and per suite a page
with its leaderboards as sortable, filterable tables (family, sparsity, method), its plots, the
runtimes that could not take a model, the failed and skipped runs, and where the runs ran; and a
page of its run records, one anchor per record (configuration, metrics, environment, log). The
pages share one CSS file and one script in the site's folder and load nothing from a network,
so they work from a file:// URL and from any static host. Everything is ordered and formatted deterministically: the
same records give the same bytes.
"""

from __future__ import annotations

import html
import json
import shutil
from pathlib import Path
from typing import Any

import pandas as pd

from bench import leaderboard, records
from bench.leaderboard import PARTS, PLOTS, REFERENCES, TABLE, cell, family_of, table_columns
from bench.plan import setting_label

STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:1.5em auto;max-width:1400px;padding:0 1em;color:#222}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em}h3{font-size:1.05em}
table{border-collapse:collapse;font-size:12.5px;margin:.5em 0 1em}
th,td{border:1px solid #ddd;padding:3px 7px;text-align:right;white-space:nowrap}
th{background:#f3f3f3;position:sticky;top:0}
td.t,th.t{text-align:left}
td.s{white-space:normal;min-width:14em;max-width:26em}
table.sortable th{cursor:pointer}
th[aria-sort=ascending]::after{content:" \\25B2"}th[aria-sort=descending]::after{content:" \\25BC"}
tr.ref td{background:#fafae6}
.scroll{overflow-x:auto}
.filters{margin:.5em 0;display:flex;gap:1em;flex-wrap:wrap}
.note{color:#555}
img{max-width:100%;border:1px solid #eee}
pre{background:#f7f7f7;padding:.6em;overflow-x:auto;font-size:12px}
details{margin:.3em 0}
"""

# Sorting by any column (numbers as numbers, blanks last), filtering the rows of every
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
  rows.sort((a, b) => {
    const x = cellValue(a, i), y = cellValue(b, i);
    if (x === null || y === null) return (x === null) - (y === null);
    return (typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y), undefined, {numeric: true})) * dir;
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
  document.querySelectorAll("table.sortable th").forEach(th => th.addEventListener("click", () => sortBy(th)));
  ["family", "sparsity", "method"].forEach(id => {
    const e = document.getElementById(id); if (e) e.addEventListener("input", applyFilters);
  });
  if (document.getElementById("family")) applyFilters();
  openAnchor();
});
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _page(title: str, body: list[str], root: str) -> str:
    """A page; `root` is the relative path to the site's folder, where its CSS and script are."""
    return "\n".join(["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
                      '<meta name="viewport" content="width=device-width, initial-scale=1">',
                      f'<title>{_e(title)}</title><link rel="stylesheet" href="{root}site.css">',
                      f'<script src="{root}site.js"></script>', "</head><body>", *body, "</body></html>", ""])


def _table(headers: list[str], rows: list[list[str]], classes: str = "") -> str:
    """A plain table; cells are escaped here."""
    head = "".join(f'<th class="t">{_e(h)}</th>' for h in headers)
    body = "".join("<tr>" + "".join(f'<td class="t">{_e(c)}</td>' for c in r) + "</tr>" for r in rows)
    return f'<div class="scroll"><table class="{classes}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _sparsity(setting: str) -> str:
    """The sparsity a setting names, as the filter lists it ('' for none)."""
    value = leaderboard.setting_sparsity(setting)
    return "" if value is None else f"{value:g}"


def _runs_by_row(recs: list[dict[str, Any]]) -> dict[tuple, list[tuple[int, str]]]:
    """(table, method, setting, timed_on) of the aggregated row -> its records' (seed, anchor)."""
    out: dict[tuple, list[tuple[int, str]]] = {}
    for r in recs:
        if r["status"] == "ok":
            key = leaderboard.row_key(r)
            out.setdefault(tuple(key[k] for k in [*TABLE, "method", "setting", "timed_on"]), []).append(
                (r["config"]["seed"], r["_stem"]))
    return {k: sorted(v) for k, v in out.items()}


def _leaderboard_tables(recs: list[dict[str, Any]], families: dict[str, str]) -> list[str]:
    """Per table group (data source, budget, device type): one sortable table with every column."""
    cols = table_columns(recs)
    df = leaderboard.frame(recs, cols)
    if df.empty:
        return ['<p class="note">No finished runs.</p>']
    table = leaderboard.aggregate(df, cols)
    runs = _runs_by_row(recs)
    out = []
    for (source, budget, device), t in table.groupby(TABLE, sort=True):
        shown = leaderboard.displayed(cols, t, "main") + leaderboard.displayed(cols, t, "speed")
        head = ['<th class="t">method</th>', '<th class="t">family</th>', '<th class="t">setting</th>',
                "<th>seeds</th>"]
        head += [f'<th title="{_e(c.spec.definition)}">{_e(c.header)}</th>' for c in shown]
        head += ['<th class="t">records</th>']
        rows = []
        for _, r in t.iterrows():
            family = family_of(r["method"], families)
            cells = [f'<td class="t">{_e(leaderboard.timed_label(r["method"], r["timed_on"], device))}</td>',
                     f'<td class="t">{_e(family)}</td>', f'<td class="t s">{_e(r["setting"])}</td>',
                     f"<td>{int(r['seeds'])}</td>"]
            for c in shown:
                value = r["accuracy_mean_%"] if c.key == "accuracy" else r[c.column]
                v = "" if value is None or pd.isna(value) else repr(float(value))
                cells.append(f'<td data-v="{v}">{_e(cell(r, c))}</td>')
            key = (source, budget, device, r["method"], r["setting"], r["timed_on"])
            links = " ".join(f'<a href="runs.html#{_e(stem)}">s{seed}</a>' for seed, stem in runs.get(key, []))
            cells.append(f'<td class="t">{links}</td>')
            ref = ' class="ref"' if r["method"] in REFERENCES else ""
            rows.append(f'<tr{ref} data-family="{_e(family)}" data-sparsity="{_e(_sparsity(r["setting"]))}" '
                        f'data-method="{_e(r["method"])}">' + "".join(cells) + "</tr>")
        out += [f"<h3>data: {_e(source)} · budget: {_e(budget)} · runs on: {_e(device.upper())}</h3>",
                '<div class="scroll"><table class="sortable"><thead><tr>' + "".join(head)
                + "</tr></thead><tbody>" + "".join(rows) + "</tbody></table></div>"]
    return out


def _filters(recs: list[dict[str, Any]], families: dict[str, str]) -> list[str]:
    ok = [r for r in recs if r["status"] == "ok" and r["config"]["method"] not in REFERENCES]
    fams = sorted({family_of(r["config"]["method"], families) for r in ok})
    sparsities = sorted({s for r in ok if (s := _sparsity(setting_label(r["config"]["params"])))},
                        key=float)  # numbers, formatted by _sparsity
    option = '<option value="{0}">{0}</option>'.format
    return ['<div class="filters">',
            '<label>family <select id="family"><option value="">all</option>'
            + "".join(option(_e(f)) for f in fams) + "</select></label>",
            '<label>sparsity <select id="sparsity"><option value="">all</option>'
            + "".join(option(_e(s)) for s in sparsities) + "</select></label>",
            '<label>method <input id="method" type="search" placeholder="substring"></label>',
            '<span class="note"><span id="shown"></span> rows shown besides the references; '
            "click a column header to sort</span>", "</div>"]


def _suite_page(suite: str, recs: list[dict[str, Any]], plots: list[str], families: dict[str, str]) -> str:
    body = [f'<p><a href="../index.html">all suites</a> · <a href="runs.html">run records</a></p>',
            f"<h1>{_e(suite)}</h1>",
            '<p class="note">Mean over seeds (accuracy: mean ± std); hover a header for its definition '
            "(README.md, section Metrics). Rows highlighted are the references: <b>dense</b>, the trained "
            "model unchanged, and <b>dense-ft</b>, the dense model fine-tuned for the methods' extra "
            "epochs. Speed columns: measured speedup over the dense model in the same runtime "
            "(interquartile range in parentheses).</p>"]
    body += _filters(recs, families)
    for standard, _, title in PARTS:
        part = [r for r in recs if r.get("standard_budget") is standard]
        if part:
            body += [f"<h2>{_e(title)}</h2>", *_leaderboard_tables(part, families)]
    for name in plots:
        body.append(f'<h2>{_e(name.removesuffix(".png"))}</h2><img src="{_e(name)}" alt="{_e(name)}">')
    empty = leaderboard.unavailable_runtimes(recs)
    if empty:
        body += ["<h2>runtimes that could not take a model</h2>",
                 _table(["method", "setting", "runtime", "reason"], empty)]
    failed = leaderboard.failed_runs(recs)
    if failed:
        body.append("<h2>failed and skipped runs</h2>")
        rows = "".join("<tr>" + "".join(f'<td class="t">{_e(c)}</td>' for c in row)
                       + f'<td class="t"><a href="runs.html#{_e(r["_stem"])}">record</a></td></tr>' for row, r in failed)
        body.append('<div class="scroll"><table><thead><tr>' + "".join(
            f'<th class="t">{h}</th>' for h in ["method", "setting", "seed", "status", "error", ""])
            + f"</tr></thead><tbody>{rows}</tbody></table></div>")
    envs = pd.Series([_environment(r) for r in recs]).value_counts().sort_index()
    budgets = pd.Series([json.dumps(r["config"]["budget"], sort_keys=True) for r in recs
                         if r.get("standard_budget")]).value_counts().sort_index()
    body += ["<h2>where the runs ran</h2>", _table(["environment", "runs"], [[e, n] for e, n in envs.items()])]
    if len(budgets):
        body += ["<h2>standard budget</h2>", *[f"<pre>{_e(json.dumps(json.loads(b), indent=1))}</pre>"
                                              for b in budgets.index]]
    return _page(f"{suite} leaderboard", body, "../")


def _environment(r: dict[str, Any]) -> str:
    return f"{leaderboard.environment(r)}, commit {leaderboard.code_of(r)}"


def _runs_page(suite: str, recs: list[dict[str, Any]]) -> str:
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


def _description(recs: list[dict[str, Any]]) -> str:
    """The models and data sources of a suite's records."""
    return "; ".join(sorted({f"{r['config'].get('model', {}).get('name', 'an unrecorded model')} on "
                             f"{r['config']['data_source']}" for r in recs}))


def build(results_dir: Path, suites: list[str], out: Path) -> list[Path]:
    """Write the site for `suites` under `out` from their records and their plots (the plots
    that `bench.leaderboard.write` made beside the records are copied: call it first); each
    suite's folder is rebuilt from scratch. Returns the files written."""
    families = leaderboard.families()
    written = []
    index_rows = []
    for suite in suites:
        recs = leaderboard.load(results_dir, suite)
        if not recs:
            continue
        folder = out / suite
        shutil.rmtree(folder, ignore_errors=True)  # the site holds what the records give, nothing older
        folder.mkdir(parents=True)
        plots = [f"{name}{suffix}.png" for suffix in ("", "-custom") for name in PLOTS
                 if (Path(results_dir) / suite / f"{name}{suffix}.png").exists()]
        for name in plots:
            shutil.copyfile(Path(results_dir) / suite / name, folder / name)
            written.append(folder / name)
        for name, text in (("index.html", _suite_page(suite, recs, plots, families)),
                           ("runs.html", _runs_page(suite, recs))):
            records.write_text_atomic(folder / name, text)
            written.append(folder / name)
        ok = [r for r in recs if r["status"] == "ok"]
        index_rows.append(f'<tr><td class="t"><a href="{_e(suite)}/index.html">{_e(suite)}</a></td>'
                          f'<td class="t">{_e(_description(recs))}</td><td>{len(recs)}</td><td>{len(ok)}</td>'
                          f'<td>{len({r["config"]["method"] for r in ok})}</td>'
                          f'<td>{len({r["config"]["seed"] for r in ok})}</td></tr>')
    body = ["<h1>Compression benchmark leaderboards</h1>",
            '<p class="note">Built by <code>bench leaderboard --html</code> from the run records alone.</p>',
            "<table><thead><tr>" + "".join(f'<th class="t">{h}</th>' for h in
                                           ["suite", "model and data", "records", "finished", "methods", "seeds"])
            + "</tr></thead><tbody>" + "".join(index_rows) + "</tbody></table>"]
    records.write_text_atomic(out / "index.html", _page("Compression benchmark leaderboards", body, ""))
    records.write_text_atomic(out / "site.css", STYLE.lstrip())
    records.write_text_atomic(out / "site.js", SCRIPT.lstrip())
    return [*written, out / "index.html", out / "site.css", out / "site.js"]
