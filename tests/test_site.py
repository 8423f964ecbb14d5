"""The static leaderboard site: built from records alone, byte-identical on regeneration, no
network, every record reachable; and its sorting and filtering exercised in a real browser."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from bench import board, files, leaderboard, records, site, ties
from bench.cli import main
from conftest import FAST, as_from_a_terminal
from test_leaderboard import BUDGET, ENV, populate, record

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def build(results):
    populate(results)
    extra = [record("uniform", {"bits": 4}, s, a, 1000) for s, a in ((0, 0.96), (1, 0.965))]
    extra += [record("magnitude", {"sparsity": 0.99}, 0, 0.60, 10)]
    for i, r in enumerate(extra):
        files.write_json_atomic(results / "mlp" / "runs" / f"{r['config']['method']}-x{i}.json", r)
    leaderboard.write(results, "mlp")
    return site.build(results, ["mlp"], results / "site")


def test_the_site_is_built_from_the_records_alone_and_regenerates_byte_identically(tmp_path):
    first = {p: p.read_bytes() for p in build(tmp_path)}
    second = {p: p.read_bytes() for p in site.build(tmp_path, ["mlp"], tmp_path / "site")}
    assert first == second
    assert {p.relative_to(tmp_path / "site").as_posix() for p in first} == {
        "index.html", "site.css", "site.js", "mlp/index.html", "mlp/runs.html", "mlp/custom.html",
        "mlp/frontier.png", "mlp/pareto.png"}
    page = (tmp_path / "site" / "mlp" / "index.html").read_text()
    index = (tmp_path / "site" / "index.html").read_text()
    custom = (tmp_path / "site" / "mlp" / "custom.html").read_text()
    assert 'href="mlp/index.html"' in index
    for text in (page, index, custom):  # self-contained: nothing fetched from a network
        assert not re.search(r"""(src|href)=["']?(https?:)?//""", text)
    assert '<script src="../site.js">' in page and '<link rel="stylesheet" href="../site.css">' in page
    # Each suite table row carries what the filters read, and links its seeds' records.
    row = re.search(r'<tr id="row-[0-9a-f]{8}" data-family="quantization" data-sparsity="" data-method="uniform">.*?</tr>',
                    page)
    assert row and 'href="runs.html#uniform-x0">s0</a>' in row.group(0) and "96.25 ± 0.35" in row.group(0)
    assert re.search(r'<tr class="ref" id="row-[0-9a-f]{8}" data-family="reference" data-sparsity="" '
                     r'data-method="dense">', page)
    assert '<option value="0.9">0.9</option>' in page and '<option value="quantization">' in page
    assert "failed and skipped runs" in page and "RuntimeError: boom" in page
    # The overridden budget has its own page, said to be so, and is not on the suite's page.
    assert "not comparable with the standard leaderboard" in custom and "1+10 epochs" in custom
    assert "1+10 epochs" not in page and 'href="custom.html"' in page
    assert '<a href="mlp/custom.html">1 run at overridden budgets</a>' in index
    # Every record, failed ones included, has its anchor on the runs page.
    runs = (tmp_path / "site" / "mlp" / "runs.html").read_text()
    stems = [p.stem for p in (tmp_path / "mlp" / "runs").glob("*.json")]
    assert len(stems) == 13 and all(f'<details id="{s}">' in runs for s in stems)


def test_a_suite_page_leads_with_the_frontier_and_the_best_method_at_each_size(tmp_path):
    build(tmp_path)
    page = (tmp_path / "site" / "mlp" / "index.html").read_text()
    index = (tmp_path / "site" / "index.html").read_text()
    # Top to bottom: the frontier figure, the best method at each size, then the table.
    order = [page.index(s) for s in ('<img src="frontier.png"', '<table class="best">', '<table class="sortable">',
                                     '<img src="pareto.png"')]
    assert order == sorted(order)
    # Over the figure, a link per row at its marker: hovering names the row, clicking goes to it.
    overlay = re.findall(r'<a href="#(row-\w+)" title="([^"]*)" style="left:([\d.]+)%;top:([\d.]+)%"></a>', page)
    assert len(overlay) == 5  # dense, magnitude at 0.5, 0.9 and 0.99, uniform
    assert "magnitude sparsity=0.9: 97.25 ± 0.35 %, 0.5 KiB" in [title for _, title, _, _ in overlay]
    for target, _, left, top in overlay:
        assert f'id="{target}"' in page and 0 < float(left) < 100 and 0 < float(top) < 100
    # The headline: per size band, the most accurate row at least that many times smaller than dense.
    # dense 4,100 B at 98.50; magnitude 0.5: 2,100 B (1.95x) at 98.50 (a hair less, the same to the
    # table's 2 decimals: a tie, which the smaller wins; 1.95x, shown as 2.0, so in "≥ 2x" too); 0.9:
    # 500 B (8.2x) at 97.25; 0.99: 140 B (29x) at 60.00; uniform: dense's size at 96.25.
    best = re.search(r'<table class="best">.*?</table>', index).group(0)
    rows = re.findall(r'<tr><td class="t">([^<]*)</td><td class="t m"><a href="mlp/index.html#(row-\w+)">([^<]*)</a>'
                      r'([^<]*)</td><td>([^<]*)</td>', best)
    assert [(band, method, setting.strip(), acc) for band, _, method, setting, acc in rows] == [
        ("any size", "magnitude", "sparsity=0.5", "98.50"), ("≥ 2x", "magnitude", "sparsity=0.5", "98.50"),
        ("≥ 4x", "magnitude", "sparsity=0.9", "97.25 ± 0.35"), ("≥ 8x", "magnitude", "sparsity=0.9", "97.25 ± 0.35"),
        ("≥ 16x", "magnitude", "sparsity=0.99", "60.00")]
    for _, target, *_ in rows:  # each links to its row of the suite's table
        assert f'<tr id="{target}"' in page or f'<tr class="ref" id="{target}"' in page
    # which rows tie with a band's best, and by what test, on the index as on the suite's page
    for html in (index, page):
        assert "tied with" in html and "Welch&#x27;s t over the seeds against the best" in html
        assert "tied: its own test does not tell it from the best" in html
    assert "A blank cell was not measured" in page  # not a zero, nor a missing row
    # the record count and provenance line: of the standard-budget records (the custom one is counted on its page)
    assert "Standard budget: 12 records (9 ok, 3 failed) · 3 methods · seeds 0, 1 · " in index
    # Headline columns show; the rest are of class "x", hidden until "all columns" is ticked.
    head = re.search(r'<table class="sortable"><thead>(.*?)</thead>', page).group(1)
    assert '<th title="top-1 accuracy' in head and re.search(r'<th class="x" title="[^"]*">nonzeros</th>', head)
    assert '<input type="checkbox" id="all-columns">' in page and "#all-columns:not(:checked)~.tables .x{display:none}" in (
        tmp_path / "site" / "site.css").read_text()
    # The swept methods by level: magnitude at 0.5, 0.9 and 0.99.
    pivot = re.search(r"<h2>swept methods by level</h2>.*?</table>", page, flags=re.S).group(0)
    assert "<th>0.5</th><th>0.9</th><th>0.99</th>" in pivot and "><b>97.25</b></a> (0)</td>" in pivot


def test_a_cells_sort_key_is_the_figure_it_shows(tmp_path):
    """data-v held the unrounded mean (98.49999899999999 under 98.50): rows that read alike sorted
    by a digit no one sees, and the page leaked more precision than it shows. The key is the
    shown figure without thousands commas (which a script does not parse), blank where the cell is."""
    build(tmp_path)
    page = (tmp_path / "site" / "mlp" / "index.html").read_text()
    cells = re.findall(r'<td(?: class="x")? data-v="([^"]*)">([^<]*)</td>', page)
    assert len(cells) > 50 and ("98.50", "98.50") in cells and ("1000", "1,000") in cells
    for key, text in cells:
        assert key == text.split(" ")[0].replace(",", ""), (key, text)
    assert site.sort_key(None, 2) == "" and site.sort_key(-0.001, 2) == "0.00" and site.sort_key(1234.56, 1) == "1234.6"


def test_settings_sort_with_their_numbers_as_numbers():
    """As text, a browser's numeric collation sorted sparsity=0.9 before 0.85 and 0.5 before 0.25;
    the setting cell's sort key is its rank with numbers compared as numbers."""
    recs = [record("dense", {}, 0, 0.98, 1000)]
    recs += [record("magnitude", {"sparsity": s}, 0, 0.97, 100) for s in (0.9, 0.25, 0.85, 0.5)]
    recs += [record("magnitude", {"sparsity": 0.5, "scope": "layer"}, 0, 0.97, 100)]
    for r in recs:
        r["_stem"] = r["config"]["method"]
    table, cols = board.table(recs)
    html = "".join(site._leaderboard_tables(table, cols, recs, {}))
    keys = dict(re.findall(r'<td class="t s" title="[^"]*" data-v="(\d+)">([^<]*)</td>', html))
    assert [keys[k] for k in sorted(keys, key=int)] == [
        "-", "sparsity=0.25", "sparsity=0.5", "sparsity=0.5, scope=layer", "sparsity=0.85", "sparsity=0.9"]


def test_a_table_trained_on_several_machine_models_or_fused_says_so_above_its_rows():
    """Accuracy moves between machine models by more than between seeds, and a fused run's train
    time is a share: both were said only in the CSV's machines column and a header's tooltip, so a
    reader compared rows of two processors as if seeds of one."""
    recs = [record("dense", {}, s, 0.98, 1000) for s in (0, 1)]
    recs += [{**record("magnitude", {"sparsity": 0.9}, s, 0.97, 100), "env": {**ENV, "device_name": "Other CPU"}}
             for s in (0, 1)]
    recs += [record("magnitude", {"sparsity": 0.5}, 0, 0.975, 500),
             {**record("magnitude", {"sparsity": 0.5}, 1, 0.975, 500), "env": {**ENV, "device_name": "Other CPU"}}]
    for r in recs:
        r["_stem"] = f"{r['config']['method']}-{r['config']['seed']}"
    table, cols = board.table(recs)
    html = "".join(site._leaderboard_tables(table, cols, recs, {}))
    assert ("<b>Trained on 2 machine models</b>, between which accuracy moves by up to about 0.2 pts, more than "
            "between seeds: compare accuracy between rows of one model (column <i>trained on</i>). M1: Other CPU "
            "(2 rows); M2: Test CPU (2 rows).") in html
    assert '<th class="t">trained on</th>' in html
    cells = re.findall(r'data-method="([^"]*)"><td class="t">[^<]*</td>.*?<td>\d+</td><td class="t">([^<]*)</td>', html)
    assert cells == [("dense", "M2"), ("magnitude", "M1, M2"), ("magnitude", "M1")]
    assert "trained fused with other runs</b>" not in html
    for r in recs[2:4]:
        r["metrics"]["fused_with"] = 2
    table, cols = board.table(recs)
    html = "".join(site._leaderboard_tables(table, cols, recs, {}))
    assert "<b>1 row trained fused with other runs</b>" in html
    one = [r for r in recs if r["env"]["device_name"] == "Test CPU"]  # one machine model: no column, no note
    table, cols = board.table(one)
    html = "".join(site._leaderboard_tables(table, cols, one, {}))
    assert "trained on" not in html and "machine models" not in html


def test_a_row_is_in_the_size_band_that_its_compression_as_shown_reaches():
    # 233 nonzeros: 1,032 B, 3.97x smaller than dense, which the tables show as 4.0: a reader finds
    # it under "≥ 4x", not missing from a band its shown figure reaches
    recs = [record("dense", {}, 0, 0.98, 1000), record("magnitude", {"sparsity": 0.77}, 0, 0.97, 233)]
    table, _ = board.table(recs)
    assert [(band, r["method"]) for band, r in site.best_by_size(table)] == [
        (1, "dense"), (2, "magnitude"), (4, "magnitude")]


def test_the_pivot_bolds_every_cell_that_shows_the_best_accuracy_of_its_level():
    # magnitude at 0.9: 97.25 over two seeds; with scope=layer, 97.2533 over three: both read
    # 97.25, so both are the best of the level as the page shows it, as best_by_size ties them
    recs = [record("dense", {}, s, 0.98, 1000) for s in (0, 1)]
    recs += [record("magnitude", {"sparsity": 0.9}, s, a, 100) for s, a in ((0, 0.97), (1, 0.975))]
    recs += [record("magnitude", {"sparsity": 0.9, "scope": "layer"}, s, a, 100)
             for s, a in ((0, 0.9725), (1, 0.9725), (2, 0.9726))]
    table, _ = board.table(recs)
    pivot = "".join(site._pivot(table))
    assert pivot.count("><b>97.25</b></a>") == 2 and "scope=layer" in pivot


def test_bench_leaderboard_html_writes_the_site_and_refuses_stray_flags(tmp_path, capsys):
    populate(tmp_path)
    assert main(["leaderboard", "--results-dir", str(tmp_path), "--html", "--out", str(tmp_path / "web")]) == 0
    assert f"open {tmp_path / 'web' / 'index.html'}" in capsys.readouterr().out
    assert (tmp_path / "web" / "mlp" / "index.html").exists()
    assert main(["leaderboard", "--results-dir", str(tmp_path), "--out", str(tmp_path / "web")]) == 2
    assert "--out names the folder of --html's site: add --html" in capsys.readouterr().err


def test_a_quick_runs_site_says_the_standard_budget_has_no_records(tmp_path, bench, data_dir):
    """After a quick run (the first session's), `--html` headed the suite "Standard budget: 0
    records () · 0 methods · seeds · · 0 commits · ", on the index and the suite's page."""
    ran = bench(["run", "--suite", FAST, "--methods", "dense", "--seeds", "0", "--epochs", "1", "--limit-train", "512",
                 "--limit-test", "200", "--data-dir", data_dir, "--results-dir", tmp_path])
    assert ran.returncode == 0, ran.stderr
    assert bench(["leaderboard", "--html", "--results-dir", tmp_path]).returncode == 0
    for page in ("index.html", "mlp-fast/index.html"):
        text = (tmp_path / "site" / page).read_text()
        assert "Standard budget: no records" in text and "0 records" not in text, page
    assert "1 record (1 ok) · 1 method · seeds 0" in (tmp_path / "site" / "mlp-fast" / "custom.html").read_text()


# Run inside the page by the browser: sort by accuracy (twice: descending), then filter a family
# and a sparsity, writing what is shown into attributes that --dump-dom prints.
def with_probe(page: Path, script: str) -> str:
    """The page with an inline probe `script` before </body>, and without its Content-Security-
    Policy, which runs no inline script (the pages themselves keep it: the runs page opens its
    anchor under it, in the test below)."""
    text = page.read_text()
    assert f'<meta http-equiv="Content-Security-Policy" content="{site.CSP}">' in text
    return text.replace(f'<meta http-equiv="Content-Security-Policy" content="{site.CSP}">', "").replace(
        "</body>", script + "</body>")


PROBE = """<script>
addEventListener("load", () => {
  const table = [...document.querySelectorAll("table.sortable")]
                  .find(t => t.querySelector('[data-method="uniform"]'));
  const shown = () => [...table.tBodies[0].rows].filter(r => !r.hidden)
                        .map(r => r.dataset.method + "|" + r.children[2].textContent).join(",");
  const th = [...table.querySelectorAll("th")].find(h => h.textContent === "accuracy (%)");
  th.click(); document.body.dataset.ascending = shown();
  th.click(); document.body.dataset.descending = shown();
  const size = [...table.querySelectorAll("th")].find(h => h.textContent === "size (KiB)");
  size.click(); document.body.dataset.size = shown();
  size.dispatchEvent(new KeyboardEvent("keydown", {key: "Enter"})); document.body.dataset.keyed = shown();
  document.body.dataset.focusable = [...table.querySelectorAll("th")].every(h => h.tabIndex === 0);
  const family = document.getElementById("family");
  family.value = "quantization"; family.dispatchEvent(new Event("input"));
  document.body.dataset.quantization = shown();
  family.value = ""; const sparsity = document.getElementById("sparsity");
  sparsity.value = "0.9"; sparsity.dispatchEvent(new Event("input"));
  document.body.dataset.sparsity = shown();
  document.body.dataset.count = document.getElementById("shown").textContent;
  document.body.dataset.filters = document.querySelector(".filters").hidden ? "hidden" : "shown";
});
</script>"""


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="needs a headless Chromium (Debian: apt install chromium)")
def test_a_real_browser_sorts_and_filters_the_leaderboard(tmp_path):
    build(tmp_path)
    page = tmp_path / "site" / "mlp" / "index.html"
    probe = page.with_name("probe.html")
    probe.write_text(with_probe(page, PROBE))
    browser = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--allow-file-access-from-files"]
    dom = subprocess.run([*browser, "--virtual-time-budget=5000", "--dump-dom", probe.as_uri()],
                         capture_output=True, text=True, timeout=180).stdout
    body = re.search(r"<body([^>]*)>", dom).group(1)
    got = dict(re.findall(r'data-(\w+)="([^"]*)"', body))
    # Accuracy ascending: 60.00 (sparsity 0.99) first; descending: dense (98.50) first.
    assert got["ascending"].split(",")[0] == "magnitude|sparsity=0.99"
    assert got["descending"].split(",")[0] == "dense|-"
    # dense (98.50) and magnitude at 0.5 (98.4999999, shown 98.50) read alike: they keep the table's
    # order (dense first) both ways, not the order of a digit the page does not show
    assert got["ascending"].split(",")[-2:] == got["descending"].split(",")[:2] == ["dense|-", "magnitude|sparsity=0.5"]
    # sizes as numbers (0.1 < 0.5 < 2.1 < 4.0 KiB), the two rows at 4.0 KiB in the table's order
    assert got["size"].split(",") == ["magnitude|sparsity=0.99", "magnitude|sparsity=0.9", "magnitude|sparsity=0.5",
                                      "dense|-", "uniform|-"]
    # A reader without a mouse reaches every header with Tab, and Enter sorts by it (here: again, descending)
    assert got["focusable"] == "true"
    assert got["keyed"].split(",") == ["dense|-", "uniform|-", "magnitude|sparsity=0.5", "magnitude|sparsity=0.9",
                                           "magnitude|sparsity=0.99"]
    # A filter keeps the references and the rows asked for.
    assert got["quantization"] == "dense|-,uniform|-"  # bits=4 is uniform's default
    assert got["sparsity"] == "dense|-,magnitude|sparsity=0.9" and got["count"] == "1"  # still by size, descending
    # The filters, which only the script makes work, are hidden until it runs.
    assert got["filters"] == "shown" and '<div class="filters" hidden>' in page.read_text()
    assert ".filters[hidden]{display:none}" in (tmp_path / "site" / "site.css").read_text()  # over display:flex
    # A record link opens the runs page with that record unfolded.
    runs = subprocess.run([*browser, "--virtual-time-budget=3000", "--dump-dom",
                           page.with_name("runs.html").as_uri() + "#uniform-x0"],
                          capture_output=True, text=True, timeout=180).stdout
    assert re.search(r'<details id="uniform-x0" open="">', runs) and '<details id="uniform-x1">' in runs
    shot = tmp_path / "table.png"
    subprocess.run([*browser, f"--screenshot={shot}", "--window-size=1300,800", page.as_uri()],
                   capture_output=True, timeout=180)
    import matplotlib.image

    pixels = matplotlib.image.imread(shot)
    assert pixels.shape[:2] == (800, 1300)
    assert (pixels[..., :3].mean(axis=2) < 0.5).mean() > 0.01  # text drawn, not a blank page


# Run inside a page by the browser at a given window size: where the frontier figure and the
# headline table sit, and how far the page and each table box overflow sideways.
LAYOUT = """<script>
addEventListener("load", () => {
  const top = sel => { const e = document.querySelector(sel); return e ? Math.round(e.getBoundingClientRect().bottom) : -1; };
  document.body.dataset.figure = top('img[src="frontier.png"]');
  document.body.dataset.best = top("table.best");
  document.body.dataset.page = document.documentElement.scrollWidth - document.documentElement.clientWidth;
  document.body.dataset.tables = Math.max(0, ...[...document.querySelectorAll(".scroll")].map(d => d.scrollWidth - d.clientWidth));
});
</script>"""


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="needs a headless Chromium (Debian: apt install chromium)")
def test_a_reader_sees_the_frontier_and_the_best_methods_on_the_first_screen_without_scrolling_sideways(tmp_path):
    build(tmp_path)
    browser = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
               "--allow-file-access-from-files"]
    for name in ("index.html", "mlp/index.html"):
        page = tmp_path / "site" / name
        probe = page.with_name("layout.html")
        probe.write_text(with_probe(page, LAYOUT))
        for width in (1280, 390):
            dom = subprocess.run([*browser, f"--window-size={width},800", "--virtual-time-budget=5000", "--dump-dom",
                                  probe.as_uri()], capture_output=True, text=True, timeout=180).stdout
            got = {k: int(v) for k, v in re.findall(r'data-(\w+)="(-?\d+)"', re.search(r"<body([^>]*)>", dom).group(1))}
            assert got["page"] == 0, (name, width, got)  # the page itself never scrolls sideways
            if width == 1280:
                assert got["tables"] == 0, (name, got)  # nor does any table, at its default columns
                if name == "mlp/index.html":  # the figure and the best methods on the first screen
                    assert 0 < got["figure"] <= 800 and 0 < got["best"] <= 800, got
            shot = tmp_path / f"{name.replace('/', '-')}-{width}.png"
            subprocess.run([*browser, f"--screenshot={shot}", f"--window-size={width},800", page.as_uri()],
                           capture_output=True, timeout=180)
            import matplotlib.image

            pixels = matplotlib.image.imread(shot)
            assert pixels.shape[:2] == (800, width)
            assert (pixels[..., :3].mean(axis=2) < 0.5).mean() > 0.01  # text drawn, not a blank page


def test_the_literature_checks_verdicts_show_beside_the_leaderboard_they_were_decided_on(tmp_path):
    """literature_checks.py --write-readme writes results/checks.json; each suite's page shows
    its verdicts as text, only while its leaderboard.csv is the one they were decided on, and
    names a checks.json it cannot read."""
    import json

    from test_literature_checks import checks

    build(tmp_path)
    readme = tmp_path / "README.md"
    readme.write_text("\n".join(checks.blocks.markers(checks.BLOCK)) + "\n")
    assert checks.main(["--results", str(tmp_path), "--readme", str(readme), "--write-readme"]) == 0
    site.build(tmp_path, ["mlp"], tmp_path / "site")
    page = (tmp_path / "site" / "mlp" / "index.html").read_text()
    assert "<h2>checks against published results</h2>" in page
    assert "<td class=\"t\">magnitude at 92% = dense ± 0.3</td><td class=\"t\">Han et al. 2015, Table 1</td>" in page
    # the note names the interval its column holds (the script's 90%, for one-sided tests at 5%), not another
    assert f"with its {checks.CI_HEADER[len('d ['):-1]};" in page and "90% CI" in checks.CI_HEADER, page
    assert "95% CI" not in page
    assert checks.main(["--results", str(tmp_path), "--readme", str(readme), "--check-readme"]) == 0

    saved = json.loads((tmp_path / "checks.json").read_text())
    hostile = {**saved, "checks": [{"suite": "mlp", "row": ["<script>alert(1)</script>", *saved["checks"][0]["row"][1:]]}]}
    (tmp_path / "checks.json").write_text(json.dumps(hostile))
    site.build(tmp_path, ["mlp"], tmp_path / "site")
    page = (tmp_path / "site" / "mlp" / "index.html").read_text()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>alert" not in page
    assert checks.main(["--results", str(tmp_path), "--readme", str(readme), "--check-readme"]) == 1
    (tmp_path / "checks.json").write_text(json.dumps({**saved, "checks": [{"suite": "mlp", "row": []}]}))
    site.build(tmp_path, ["mlp"], tmp_path / "site")  # stopped with an IndexError
    page = (tmp_path / "site" / "mlp" / "index.html").read_text()
    assert f"{tmp_path / 'checks.json'}: unreadable (ValueError: a check holds an empty row, without its verdict)" in page
    (tmp_path / "checks.json").write_text(json.dumps(saved))

    with open(tmp_path / "mlp" / "leaderboard.csv", "a") as f:  # the table moved on, the verdicts did not
        f.write("\n")
    site.build(tmp_path, ["mlp"], tmp_path / "site")
    page = (tmp_path / "site" / "mlp" / "index.html").read_text()
    assert "The verdicts were decided on another version of this leaderboard" in page
    assert "<td class=\"t\">Han et al. 2015, Table 1</td>" not in page

    (tmp_path / "checks.json").write_text('{"columns": 3')
    site.build(tmp_path, ["mlp"], tmp_path / "site")
    page = (tmp_path / "site" / "mlp" / "index.html").read_text()
    assert f"{tmp_path / 'checks.json'}: unreadable (JSONDecodeError: " in page


def test_a_crafted_record_runs_no_script_on_any_page(tmp_path):
    """Every record-derived string (parameters, error, family, runtime and its reason, machine,
    data source, model, and the suite's folder name) is text on every page, in an element's
    text and in its attributes (title=, data-*, id=, href=): no element, handler or link of its own."""
    import html.parser

    x = "\"'><script>alert(1)</script><img src=x onerror=alert(2)>"
    suite = "s" + x.replace("/", "")
    recs = [record("dense", {}, 0, 0.98, 1000), record("magnitude", {"sparsity": 0.9, "k" + x: x}, 0, 0.97, 100),
            record("magnitude", {"sparsity": 0.5}, 1, None, None, status="failed")]
    recs[0]["env"] = {**recs[0]["env"], "device_name": "d" + x}
    recs[1]["method_info"] = {"family": "f" + x}
    recs[1]["figures"] = {"deploy": {"runtimes": {"rt" + x: {"status": "failed", "reason": "r" + x}}}}
    recs[2]["error"] = "E" + x
    for i, r in enumerate(recs):
        r["config"].update(suite=suite, data_source="src" + x, model={"name": "m" + x})
        files.write_json_atomic(tmp_path / suite / "runs" / f"{r['config']['method']}-{i}.json", r)
    leaderboard.write(tmp_path, suite)
    pages = [p for p in site.build(tmp_path, [suite], tmp_path / "site") if p.suffix == ".html"]

    class Elements(html.parser.HTMLParser):
        def handle_starttag(self, tag, attrs):
            a = dict(attrs)
            assert not any(k.startswith("on") for k in a), (tag, a)
            assert not any((v or "").strip().lower().startswith("javascript:") for v in a.values()), (tag, a)
            assert tag not in ("script", "img") or (a.get("src") or "").endswith(("site.js", ".png")), (tag, a)

    assert len(pages) == 3
    for page in pages:
        text = page.read_text()
        Elements().feed(text)
        assert text.count("alert(1)") == text.count("&lt;script&gt;alert(1)") > 0, page


def test_a_records_own_family_groups_it_where_no_plugin_source_says(tmp_path):
    """A method whose plugin is gone (or never was here) is grouped by the family its records
    name, not as "other"."""
    build(tmp_path)
    for s in (0, 1):
        r = {**record("gone-plugin", {"sparsity": 0.9}, s, 0.97, 100),
             "method_info": {"family": "pruning", "description": "A plugin not installed here."}}
        files.write_json_atomic(tmp_path / "mlp" / "runs" / f"gone-plugin-{s}.json", r)
    leaderboard.write(tmp_path, "mlp")
    site.build(tmp_path, ["mlp"], tmp_path / "site")
    page = (tmp_path / "site" / "mlp" / "index.html").read_text()
    assert re.search(r'data-family="pruning" data-sparsity="0.9" data-method="gone-plugin"', page)
    assert board.families(records.load_records(tmp_path, "mlp"))["gone-plugin"] == "pruning"
    assert "gone-plugin" not in board.families()


def test_serve_writes_the_site_and_serves_it_on_this_machine_until_ctrl_c(tmp_path):
    import os
    import signal
    import sys
    import urllib.request

    build(tmp_path)
    proc = subprocess.Popen([sys.executable, "-m", "bench", "leaderboard", "--serve", "0", "--results-dir", str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "MPLBACKEND": "Agg"}, preexec_fn=as_from_a_terminal)
    try:
        line = ""
        while not line.startswith("serving"):
            line = proc.stdout.readline()
            assert line or proc.poll() is None, proc.stderr.read()
        url = re.search(r"http://127\.0\.0\.1:\d+/", line).group(0)
        with urllib.request.urlopen(url + "mlp/index.html", timeout=30) as page:
            assert page.status == 200 and b"<h1>mlp</h1>" in page.read()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill()
    assert main(["leaderboard", "--serve", "--show", "--results-dir", str(tmp_path)]) == 2


def test_the_site_is_not_written_through_a_link_nor_over_files_it_did_not_write(tmp_path):
    """A results/site planted as a link to another folder had its index.html and site.css
    replaced there (found by a hostile-input audit); an --out folder holding other files is
    refused too, before anything is written."""
    from bench.errors import ResultsFolderError

    build(tmp_path)
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "index.html").write_text("mine")
    shutil.rmtree(tmp_path / "site")
    (tmp_path / "site").symlink_to(victim)
    with pytest.raises(ResultsFolderError, match="is a symbolic link or a file"):
        site.build(tmp_path, ["mlp"], tmp_path / "site")
    with pytest.raises(ResultsFolderError, match=r"holds files the site did not write \(index.html\)"):
        site.build(tmp_path, ["mlp"], victim)
    assert [p.name for p in victim.iterdir()] == ["index.html"] and (victim / "index.html").read_text() == "mine"


def banded_records(other_machine=False):
    """A band at >= 8x (nonzeros 100: 8.2x) whose best is magnitude; gmp within its noise, snip
    clearly worse, set with one seed, rigl 0.15 pts below with no spread (trained on another
    machine model with `other_machine`)."""
    def seeds(method, accuracies, env=ENV):
        return [{**record(method, {"sparsity": 0.9}, s, a, 100), "env": env} for s, a in enumerate(accuracies)]

    recs = [record("dense", {}, s, 0.98, 1000) for s in (0, 1, 2)]
    recs += seeds("magnitude", (0.9700, 0.9701, 0.9702)) + seeds("gmp", (0.9698, 0.9702, 0.9699))
    recs += seeds("snip", (0.900, 0.901, 0.902)) + seeds("set", (0.95,))
    recs += seeds("rigl", (0.96850, 0.96860, 0.96870), {**ENV, "device_name": "Other CPU"} if other_machine else ENV)
    return recs


def test_the_best_at_each_size_counts_and_lists_the_rows_tied_with_it():
    """"Differences within a std are noise" was all the headline said of the rows below its best.
    Each band's other rows are now judged against the best (bench.ties): tied within noise, below
    when clearly worse, unjudged with one seed, and a cross-machine row must clear the margin
    (rigl, 0.15 pts below, is unclear from another machine)."""
    for other_machine, rigl in ((False, ties.BELOW), (True, ties.UNCLEAR)):
        recs = banded_records(other_machine)
        table, cols = board.table(recs)
        band, t = site.bands(table)[-1]
        assert band == 8
        standing = {t.loc[i, "method"]: s.status for i, s in ties.standings(t, recs).items()}
        assert standing == {"magnitude": ties.BEST, "gmp": ties.TIED, "snip": ties.BELOW, "set": ties.UNJUDGED,
                            "rigl": rigl}
        html = site._headline(table, cols, recs, "")
        unclear = ", 1 unclear" if other_machine else ""
        assert f"<summary>1 of 4{unclear}, 1 unjudged (one seed)</summary>" in html
        assert html.count("<li>") == 3  # gmp, in each of the three bands at >= 2x, >= 4x, >= 8x
    assert ties.summary(ties.standings(t, recs), "≥ 8x") == (
        "1 of 4 other rows at ≥ 8x tied with the best, 1 unclear, 1 below it, 1 not judged (one seed)")
    lone = [r for r in recs if r["config"]["method"] != "magnitude" or r["config"]["seed"] == 0]
    lone = [{**r, "metrics": {**r["metrics"], "accuracy": 0.971}} if r["config"]["method"] == "magnitude" else r
            for r in lone]  # a best of one seed: no row of its band can be judged against it
    table, cols = board.table(lone)
    assert "<td class=\"t w\">all 4 unjudged (the best has one seed)</td>" in site._headline(table, cols, lone, "")


def test_a_row_below_the_best_on_its_own_test_but_not_after_holm_is_unclear_not_tied():
    """Holm's correction over a wide band (62 rows of mlp at >= 8x, three seeds each) clears few
    rows, and every row it did not clear was called tied: wanda at 92%, 42.63% against the best's
    98.54%, among them. Here 20 rows within the best's noise and one whose seeds lie far below it,
    but far apart (its own p about 0.01): that one is unclear, the 20 tied, none below."""
    def seeds(method, params, accuracies):
        return [record(method, params, s, a, 100) for s, a in enumerate(accuracies)]

    recs = [record("dense", {}, s, 0.98, 1000) for s in (0, 1, 2)]
    recs += seeds("magnitude", {"sparsity": 0.9}, (0.9700, 0.9702, 0.9704))
    for k in range(20):
        recs += seeds("gmp", {"sparsity": 0.9, "dt": 10 + k}, (0.9698, 0.9702, 0.9700))
    recs += seeds("wanda", {"sparsity": 0.9}, (0.45, 0.38, 0.52))
    table, _ = board.table(recs)
    band, t = site.bands(table)[-1]
    found = ties.standings(t, recs)
    wanda = next(s for i, s in found.items() if t.loc[i, "method"] == "wanda")
    assert wanda.status == ties.UNCLEAR and wanda.change.p < 0.05 <= wanda.change.p_holm, wanda.change
    assert [s.status for s in found.values()].count(ties.TIED) == 20
    assert ties.summary(found, "≥ 8x") == "20 of 21 other rows at ≥ 8x tied with the best, 1 unclear, 0 below it"


def test_records_with_a_compression_but_no_size_are_judged_and_shown_without_a_traceback(tmp_path):
    """Ranking a band sorted ties by `size_KiB`, a column only records holding `size_bytes` make:
    a results folder of hand-made records giving their compression alone stopped the site's
    headline, and now `leaderboard --show --min-compression`, with KeyError: 'size_KiB'."""
    from bench import render

    recs = banded_records()
    for r in recs:
        del r["metrics"]["size_bytes"]
    table, cols = board.table(recs)
    assert "size_KiB" not in table and "compression_x" in table
    band, t = site.bands(table)[-1]
    assert {t.loc[i, "method"]: s.status for i, s in ties.standings(t, recs).items()}["gmp"] == ties.TIED
    assert "<summary>1 of 4, 1 unjudged (one seed)</summary>" in site._headline(table, cols, recs, "")
    shown = render.terminal(recs, 200, board.families(recs), min_compression=8)
    assert "1 of 4 other rows at ≥ 8x tied with the best" in shown
    for i, r in enumerate(recs):
        files.write_json_atomic(tmp_path / "mlp" / "runs" / f"{r['config']['method']}-{i}.json", r)
    leaderboard.write(tmp_path, "mlp")
    assert site.build(tmp_path, ["mlp"], tmp_path / "site")


def test_a_suite_page_says_where_its_standard_runs_ran_and_the_custom_page_where_its_own_did(tmp_path):
    """The suite's page, headed "Standard budget", listed every record's machine and commit under
    "where the runs ran", the quick runs' included: the committed cifar page named CPU runs "with
    uncommitted changes" beside its GPU leaderboard, and mlp's an Intel Xeon beside a board that
    README and leaderboard.md say is all from one AMD EPYC. The Markdown keeps the two apart; so
    does the site now, and the custom page says where its own runs ran, and what failed there."""
    populate(tmp_path)
    quick = record("broken", {}, 0, None, None, status="failed", standard=False, budget={**BUDGET, "epochs": 1})
    for i, r in enumerate([quick, record("dense", {}, 1, 0.91, 1000, standard=False, budget={**BUDGET, "epochs": 1})]):
        r["env"] = {**ENV, "device_name": "Quick Laptop CPU"}
        r["error"] = "RuntimeError: quick boom" if r["status"] == "failed" else None
        files.write_json_atomic(tmp_path / "mlp" / "runs" / f"quick-{i}.json", r)
    leaderboard.write(tmp_path, "mlp")
    site.build(tmp_path, ["mlp"], tmp_path / "site")
    page = (tmp_path / "site" / "mlp" / "index.html").read_text()
    custom = (tmp_path / "site" / "mlp" / "custom.html").read_text()
    assert "Test CPU" in page and "Quick Laptop CPU" not in page and "quick boom" not in page
    assert "<h2>where the runs ran</h2>" in custom and "Quick Laptop CPU" in custom and "quick boom" in custom
    assert "Test CPU" in custom  # populate's own quick run (ENV) is one of them
