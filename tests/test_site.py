"""The static leaderboard site: built from records alone, byte-identical on regeneration, no
network, every record reachable; and its sorting and filtering exercised in a real browser."""

import re
import shutil
import subprocess

import pytest

from bench import leaderboard, records, site
from bench.cli import main
from test_leaderboard import populate, record

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def build(results):
    populate(results)
    extra = [record("uniform", {"bits": 4}, s, a, 1000) for s, a in ((0, 0.96), (1, 0.965))]
    extra += [record("magnitude", {"sparsity": 0.99}, 0, 0.60, 10)]
    for i, r in enumerate(extra):
        records.write_json_atomic(results / "mlp" / "runs" / f"{r['config']['method']}-x{i}.json", r)
    leaderboard.write(results, "mlp")
    return site.build(results, ["mlp"], results / "site")


def test_the_site_is_built_from_the_records_alone_and_regenerates_byte_identically(tmp_path):
    first = {p: p.read_bytes() for p in build(tmp_path)}
    second = {p: p.read_bytes() for p in site.build(tmp_path, ["mlp"], tmp_path / "site")}
    assert first == second
    assert {p.relative_to(tmp_path / "site").as_posix() for p in first} == {
        "index.html", "site.css", "site.js", "mlp/index.html", "mlp/runs.html", "mlp/pareto.png"}
    page = (tmp_path / "site" / "mlp" / "index.html").read_text()
    index = (tmp_path / "site" / "index.html").read_text()
    assert 'href="mlp/index.html"' in index
    for text in (page, index):  # self-contained: nothing fetched from a network
        assert not re.search(r"""(src|href)=["']?(https?:)?//""", text)
    assert '<script src="../site.js">' in page and '<link rel="stylesheet" href="../site.css">' in page
    assert '<img src="pareto.png"' in page
    # Each suite table row carries what the filters read, and links its seeds' records.
    row = re.search(r'<tr data-family="quantization" data-sparsity="" data-method="uniform">.*?</tr>', page)
    assert row and 'href="runs.html#uniform-x0">s0</a>' in row.group(0) and "96.25 ± 0.35" in row.group(0)
    assert re.search(r'<tr class="ref" data-family="reference" data-sparsity="" data-method="dense">', page)
    assert '<option value="0.9">0.9</option>' in page and '<option value="quantization">' in page
    assert "overridden budgets" in page and "failed and skipped runs" in page and "RuntimeError: boom" in page
    # Every record, failed ones included, has its anchor on the runs page.
    runs = (tmp_path / "site" / "mlp" / "runs.html").read_text()
    stems = [p.stem for p in (tmp_path / "mlp" / "runs").glob("*.json")]
    assert len(stems) == 13 and all(f'<details id="{s}">' in runs for s in stems)


def test_bench_leaderboard_html_writes_the_site_and_refuses_stray_flags(tmp_path, capsys):
    populate(tmp_path)
    assert main(["leaderboard", "--results-dir", str(tmp_path), "--html", "--out", str(tmp_path / "web")]) == 0
    assert f"open {tmp_path / 'web' / 'index.html'}" in capsys.readouterr().out
    assert (tmp_path / "web" / "mlp" / "index.html").exists()
    assert main(["leaderboard", "--results-dir", str(tmp_path), "--out", str(tmp_path / "web")]) == 2
    assert "--out names the folder of --html's site: add --html" in capsys.readouterr().err


# Run inside the page by the browser: sort by accuracy (twice: descending), then filter a family
# and a sparsity, writing what is shown into attributes that --dump-dom prints.
PROBE = """<script>
addEventListener("load", () => {
  const table = [...document.querySelectorAll("table.sortable")]
                  .find(t => t.querySelector('[data-method="uniform"]'));
  const shown = () => [...table.tBodies[0].rows].filter(r => !r.hidden)
                        .map(r => r.dataset.method + "|" + r.children[2].textContent).join(",");
  const th = [...table.querySelectorAll("th")].find(h => h.textContent === "accuracy (%)");
  th.click(); document.body.dataset.ascending = shown();
  th.click(); document.body.dataset.descending = shown();
  const family = document.getElementById("family");
  family.value = "quantization"; family.dispatchEvent(new Event("input"));
  document.body.dataset.quantization = shown();
  family.value = ""; const sparsity = document.getElementById("sparsity");
  sparsity.value = "0.9"; sparsity.dispatchEvent(new Event("input"));
  document.body.dataset.sparsity = shown();
  document.body.dataset.count = document.getElementById("shown").textContent;
});
</script>"""


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="needs a headless Chromium (Debian: apt install chromium)")
def test_a_real_browser_sorts_and_filters_the_leaderboard(tmp_path):
    build(tmp_path)
    page = tmp_path / "site" / "mlp" / "index.html"
    probe = page.with_name("probe.html")
    probe.write_text(page.read_text().replace("</body>", PROBE + "</body>"))
    browser = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--allow-file-access-from-files"]
    dom = subprocess.run([*browser, "--virtual-time-budget=5000", "--dump-dom", probe.as_uri()],
                         capture_output=True, text=True, timeout=180).stdout
    body = re.search(r"<body([^>]*)>", dom).group(1)
    got = dict(re.findall(r'data-(\w+)="([^"]*)"', body))
    # Accuracy ascending: 60.00 (sparsity 0.99) first; descending: dense (98.50) first.
    assert got["ascending"].split(",")[0] == "magnitude|sparsity=0.99"
    assert got["descending"].split(",")[0] == "dense|-"
    # A filter keeps the references and the rows asked for.
    assert got["quantization"] == "dense|-,uniform|bits=4"
    assert got["sparsity"] == "dense|-,magnitude|sparsity=0.9" and got["count"] == "1"
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
