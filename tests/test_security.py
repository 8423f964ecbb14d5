"""What a results folder, a cache, a record, a suite file or a plugin may hold must never take the
harness over: no code runs from a planted file, no markup from a record reaches a page as markup,
a malformed record is named and skipped, a figure that JSON cannot hold fails its run only, the
harness's lock files stay its own, YAML stays within bounds, and no plugin silently shadows a
method. The sweeps run in this process on a small suite timed in PyTorch eager alone.
"""

from __future__ import annotations

import fcntl
import html.parser
import json
import os
import re
import resource
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import torch

from bench import files, layout, records, registry
from bench.cli import main
from bench.data import find_source
from bench.plan import run_key
from bench.suite import load_suite

registry.discover()  # the plugins' import warnings belong to no test's output

FAST_SUITE = """\
version: 1
name: sec
description: a small suite, timed in PyTorch eager only
data: {dataset: MNIST, mean: [0.1307], std: [0.3081]}
model: {name: lenet300, kwargs: {hidden: [32, 16]}}
training: {epochs: 1, finetune_epochs: 1, batch_size: 128, lr: 0.05, finetune_lr: 0.01}
seeds: [0]
sparsities: [0.5]
latency_batches: [1, 8]
runtimes: [torch]
"""
LIMITS = ["--limit-train", "1000", "--limit-test", "200"]


@pytest.fixture
def fast_suite(tmp_path) -> Path:
    path = tmp_path / "sec.yaml"
    path.write_text(FAST_SUITE)
    return path


def run(suite: Path, methods: str, data_dir: Path, results: Path, *extra: str) -> int:
    return main(["run", "--suite", str(suite), "--executor", "inline", "--methods", methods, *LIMITS,
                 "--data-dir", str(data_dir),
                 "--results-dir", str(results), *extra])


def dense_cache(suite: Path, data_dir: Path, results: Path, seed: int = 0) -> Path:
    """Where `bench run` caches the dense model of `seed` under LIMITS (bench.runner)."""
    s = load_suite(str(suite)).with_budget(limit_train=1000, limit_test=200)
    key = records.config_hash(records.dense_config(s, seed, find_source(s.data, data_dir)))
    return results / s.name / "cache" / f"dense-s{seed}-{key}.safetensors"


class Planted:
    """A pickle that creates `marker` when it is unpickled by a loader that runs code."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


# -- 1. nothing loaded from a results folder or a cache executes code ----------------------------


def test_planted_pickles_in_the_dense_cache_and_its_checkpoint_run_no_code(tmp_path, fast_suite, data_dir, capsys):
    results, marker = tmp_path / "results", tmp_path / "pwned"
    cache = dense_cache(fast_suite, data_dir, results)
    cache.parent.mkdir(parents=True)
    for path in (cache, cache.with_suffix(".ckpt")):
        torch.save({"state_dict": Planted(marker), "meta": Planted(marker), "model": Planted(marker)}, path)

    assert run(fast_suite, "dense", data_dir, results) == 0
    out = capsys.readouterr().out
    assert not marker.exists()
    assert f"the cache file {cache} is unreadable (" in out
    assert f"the checkpoint {cache.with_suffix('.ckpt')} cannot be resumed from (" in out
    assert "training from the first epoch" in out
    assert not cache.with_suffix(".ckpt").exists()
    (record,) = records.load_records(results, "sec")
    assert record["status"] == "ok"


def test_a_planted_fifo_nan_metadata_or_nan_weights_in_the_dense_cache_are_set_aside(tmp_path, fast_suite, data_dir,
                                                                                       capsys):
    """A FIFO as the cache would block its read forever, past Ctrl-C and SIGTERM; NaN seconds in
    its metadata (JSON's parser takes NaN) made every sweep crash writing its records, again on
    every rerun; NaN weights made every run of the seed 'diverge'. Each is named, removed and
    retrained, and the run's record is ok."""
    import json
    import os

    import safetensors.torch

    results = tmp_path / "results"
    cache = dense_cache(fast_suite, data_dir, results)
    cache.parent.mkdir(parents=True)
    weights = {"w": torch.ones(2)}
    plants = {"a FIFO": lambda: os.mkfifo(cache),
              "NaN seconds": lambda: cache.write_bytes(safetensors.torch.save(weights, metadata={"meta": json.dumps(
                  {"epochs": 1, "seconds": float("nan"), "accuracy": 0.5})})),
              "seconds beyond a record's numbers": lambda: cache.write_bytes(safetensors.torch.save(  # its runs'
                  weights, metadata={"meta": json.dumps({"epochs": 1, "seconds": 1e20, "accuracy": 0.5})})),  # malformed
              "NaN weights": lambda: cache.write_bytes(safetensors.torch.save({"w": torch.tensor([float("nan")])},
                                                                             metadata={"meta": json.dumps(
                  {"epochs": 1, "seconds": 1.0, "accuracy": 0.5})}))}
    for what, plant in plants.items():
        plant()
        assert run(fast_suite, "dense", data_dir, results, "--force") == 0, what
        out = capsys.readouterr().out
        assert f"the cache file {cache} is unreadable (" in out, what
        (record,) = records.load_records(results, "sec")
        assert record["status"] == "ok", what
        cache.unlink()


def test_a_checkpoint_whose_seconds_no_record_holds_is_not_resumed_from(tmp_path):
    """A checkpoint's seconds reach the dense model's, then every record of its runs: NaN, or
    1e20 (beyond bounds.MAX_NUMBER, which every reader refuses), made those records malformed."""
    from bench.train import CheckpointError, _resume

    model = torch.nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    schedule = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0)
    generator = torch.Generator()
    path = tmp_path / "dense.ckpt"
    for seconds, resumed in ((12.5, True), (float("nan"), False), (1e20, False)):
        torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "schedule": schedule.state_dict(),
                    "generator": generator.get_state(), "epoch": 1, "step": 10, "seconds": seconds}, path)
        if resumed:
            assert _resume(path, model, opt, schedule, generator, torch.device("cpu")) == (1, 10, 12.5)
            continue
        with pytest.raises(CheckpointError, match="not a training state"):
            _resume(path, model, opt, schedule, generator, torch.device("cpu"))
        assert not path.exists()


def test_a_planted_tensor_cache_of_decoded_images_runs_no_code(tmp_path, capsys):
    from PIL import Image

    from bench.data import _image_folder_split

    folder = tmp_path / "images" / "train"
    for label in ("a", "b"):
        (folder / label).mkdir(parents=True)
        Image.new("L", (4, 4), color=17 if label == "a" else 99).save(folder / label / "0.png")
    cache, marker = tmp_path / "tensors", tmp_path / "pwned"
    first, _ = _image_folder_split(folder, cache)  # decodes the images and caches them
    (cached,) = cache.glob("*.pt")
    torch.save((Planted(marker), Planted(marker)), cached)

    again, _ = _image_folder_split(folder, cache)
    assert not marker.exists()
    assert f"bench: warning: the tensor cache {cached} is unusable (" in capsys.readouterr().err
    assert torch.equal(again.x, first.x) and torch.equal(again.y, first.y)
    assert torch.equal(_image_folder_split(folder, cache)[0].x, first.x)  # cached anew, and read back
    for x, y in ((torch.zeros(5, 1, 4, 4, dtype=torch.uint8), torch.zeros(200, dtype=torch.long)),  # 5 images, 200 labels
                 (torch.zeros(2, 4, 4, dtype=torch.uint8), torch.zeros(2, dtype=torch.long)),  # no channel axis
                 (first.x, -first.y - 1)):  # negative labels
        torch.save((x, y), cached)
        again, _ = _image_folder_split(folder, cache)
        assert "are no split: uint8 images N x C x H x W, N labels >= 0" in capsys.readouterr().err
        assert torch.equal(again.x, first.x) and torch.equal(again.y, first.y)  # decoded again, not trained on


# -- 2. escaping everywhere: a record's text is text, on every page and in every table -----------

XSS = "document.documentElement.setAttribute('data-xss', 'ran')"
STEM = f"dense-\"'><img src=x onerror=\"{XSS}\">"  # a record's file name: no '/'
HOSTILE = (f"</td></pre>\"'><script>{XSS}</script><img src=x onerror=\"{XSS}\"><svg onload={XSS}>"
           "|\n| injected | row |")


def hostile_records() -> dict[str, dict]:
    """File name -> record: markup, `|` and line breaks in every string field a page or a table
    shows, params keys and values included; and a string seed, which makes a record unusable."""
    from test_leaderboard import record

    ok = json.loads(json.dumps(record("magnitude", {"sparsity": 0.5}, 0, 0.97, 500)))
    # (a method name with markup is a malformed record: a method name is letters, digits, _, - and +)
    ok["config"].update(suite="sec", params={f"k{HOSTILE}": HOSTILE, "sparsity": 0.5},
                        data_source=HOSTILE, model={"name": HOSTILE, "kwargs": {}})
    ok["env"] = {"device": f"cpu{HOSTILE}", "device_name": HOSTILE, "torch": HOSTILE, "threads": 2,
                 "git_commit": HOSTILE}
    ok["measured_on"] = {"device": HOSTILE, "device_name": HOSTILE, "threads": 2}
    ok["figures"] = {"deploy": {"runtimes": {HOSTILE: {"status": HOSTILE, "reason": HOSTILE}}}}
    ok.update(config_hash=HOSTILE, finished_at=HOSTILE, run_time_s=1.0)
    failed = json.loads(json.dumps(ok))
    failed.update(status=HOSTILE, error=f"RuntimeError: {HOSTILE}\ntrace {HOSTILE}", metrics={})
    dense = record("dense", {}, 0, 0.98, 1000)
    seed = record("dense", {}, HOSTILE, 0.98, 1000)
    for r in (dense, seed):
        r["config"]["suite"] = "sec"
    return {"m-ok.json": ok, "m-failed.json": failed, f"{STEM}.json": dense, "dense-seed.json": seed}


class Tags(html.parser.HTMLParser):
    """The start tags of a page, with their attributes."""

    def __init__(self, text: str):
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def write_hostile(results: Path) -> None:
    for name, r in hostile_records().items():
        files.write_json_atomic(results / "sec" / "runs" / name, r)


def test_markup_in_records_is_text_on_every_page_and_in_every_table(tmp_path, capsys):
    write_hostile(tmp_path)
    assert main(["leaderboard", "--html", "--results-dir", str(tmp_path)]) == 0
    assert "dense-seed.json: malformed record: config.seed is str, expected int" in capsys.readouterr().err
    pages = sorted((tmp_path / "site").rglob("*.html"))
    assert [p.relative_to(tmp_path / "site").as_posix() for p in pages] == [
        "index.html", "sec/index.html", "sec/runs.html"]
    for page in pages:
        text = page.read_text()
        for tag, attrs in Tags(text).tags:
            assert not [a for a in attrs if a.startswith("on")], (page, tag, attrs)
            assert tag in {"html", "head", "meta", "title", "link", "script", "body", "p", "a", "h1", "h2", "h3",
                           "div", "table", "thead", "tbody", "tr", "th", "td", "label", "select", "option",
                           "input", "span", "b", "code", "pre", "details", "summary", "img"}, (page, tag)
            if tag == "script":
                assert (attrs.get("src") or "").endswith("site.js"), page
            if tag == "img":
                assert attrs.get("src") in {"frontier.png", "pareto.png", "speedup.png"}, page
            if tag == "a":
                assert not (attrs.get("href") or "").lower().startswith("javascript"), page
        assert "&lt;script&gt;" in text  # the payload is there, as text
    runs = (tmp_path / "site" / "sec" / "runs.html").read_text()
    assert f'<details id="{html.escape(STEM, quote=True)}">' in runs
    for md in (tmp_path / "sec").glob("leaderboard*.md"):
        tables = re.findall(r"(?:^\|.*\n)+", md.read_text(), flags=re.M)
        assert tables, md
        for table in tables:
            widths = {len(re.findall(r"(?<!\\)\|", line)) for line in table.splitlines()}
            assert len(widths) == 1, table
        assert not re.search(r"^\| injected", md.read_text(), flags=re.M)
        assert not re.search(r"(?<!\\)<", md.read_text())  # every < escaped: no markup


def test_a_suite_folder_named_as_a_url_is_linked_as_the_folder_it_is(tmp_path):
    """The site's index linked each suite as href="SUITE/index.html": a results folder's suite
    named "javascript:..." (a folder is anyone's to name) was a javascript: link, and one named
    "a#b" linked to a page that is not there. The folder is now a percent-encoded path."""
    from urllib.parse import unquote, urlsplit

    from test_leaderboard import record

    for suite in ("javascript:alert(1)", "a#b?c"):
        dense = record("dense", {}, 0, 0.98, 1000)
        dense["config"]["suite"] = suite
        files.write_json_atomic(tmp_path / suite / "runs" / "dense.json", dense)
    assert main(["leaderboard", "--html", "--results-dir", str(tmp_path)]) == 0
    hrefs = [attrs["href"] for tag, attrs in Tags((tmp_path / "site" / "index.html").read_text()).tags if tag == "a"]
    assert len(hrefs) >= 2
    for href in hrefs:
        parts = urlsplit(href)
        assert not parts.scheme and not parts.query, href
        assert (tmp_path / "site" / unquote(parts.path)).is_file(), href


def test_a_suite_folder_named_as_a_shell_command_is_quoted_in_the_command_that_regenerates_it(tmp_path, capsys):
    """The Markdown leaderboard ends its intro with the command that regenerates it, and
    `--check` with the one that refreshes it, naming the suite's folder: a folder named `x$(id)`
    (a folder is anyone's to name) made `bench leaderboard --suite x$(id)`, which a reader
    pasting it ran. The name is now quoted for the shell; a real suite's reads as before."""
    from test_leaderboard import record

    for suite in ("x$(touch pwned)", "mlp"):
        dense = record("dense", {}, 0, 0.98, 1000)
        dense["config"]["suite"] = suite
        files.write_json_atomic(tmp_path / suite / suite / "runs" / "dense.json", dense)
        assert main(["leaderboard", "--results-dir", str(tmp_path / suite)]) == 0
    assert "Regenerate with bench leaderboard --suite 'x$(touch pwned)'." in \
        (tmp_path / "x$(touch pwned)" / "x$(touch pwned)" / "leaderboard.md").read_text()
    assert "Regenerate with `bench leaderboard --suite mlp`." in (tmp_path / "mlp" / "mlp" / "leaderboard.md").read_text()
    (tmp_path / "x$(touch pwned)" / "x$(touch pwned)" / "leaderboard.csv").unlink()
    capsys.readouterr()
    assert main(["leaderboard", "--check", "--results-dir", str(tmp_path / "x$(touch pwned)")]) == 1
    assert "refresh them with: bench leaderboard --suite 'x$(touch pwned)' --results-dir" in capsys.readouterr().err


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="needs a headless Chromium (Debian: apt install chromium)")
def test_a_real_browser_runs_no_script_from_a_record(tmp_path):
    write_hostile(tmp_path)
    assert main(["leaderboard", "--html", "--results-dir", str(tmp_path)]) == 0
    browser = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--allow-file-access-from-files",
               "--virtual-time-budget=3000", "--dump-dom"]
    for page in sorted((tmp_path / "site").rglob("*.html")):
        dom = subprocess.run([*browser, page.as_uri()], capture_output=True, text=True, timeout=180).stdout
        assert "</body>" in dom and "injected" in dom, page  # the page loaded, with the payload as text
        assert 'data-xss="ran"' not in dom, page


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="needs a headless Chromium (Debian: apt install chromium)")
def test_a_page_whose_escaping_failed_still_runs_no_script_from_a_record(tmp_path, monkeypatch):
    """The second line of defence: with bench.site's escaping undone (its `_e` made the identity),
    a record's <script> and onerror= reach the page as markup, and the page's Content-Security-
    Policy keeps them from running; without that policy the same page runs them."""
    from bench import site

    write_hostile(tmp_path)
    monkeypatch.setattr(site, "_e", lambda value: str(value))
    assert main(["leaderboard", "--html", "--results-dir", str(tmp_path)]) == 0
    page = tmp_path / "site" / "sec" / "index.html"
    browser = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=3000", "--dump-dom"]
    dom = subprocess.run([*browser, page.as_uri()], capture_output=True, text=True, timeout=180).stdout
    assert "</body>" in dom and 'data-xss="ran"' not in dom
    bare = page.with_name("bare.html")
    bare.write_text(page.read_text().replace(f'<meta http-equiv="Content-Security-Policy" content="{site.CSP}">', ""))
    dom = subprocess.run([*browser, bare.as_uri()], capture_output=True, text=True, timeout=180).stdout
    assert 'data-xss="ran"' in dom  # the payload does run where nothing stops it: the test can fail


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="needs a headless Chromium (Debian: apt install chromium)")
def test_a_records_long_unbroken_text_widens_no_page(tmp_path):
    """A device name of 3000 letters without a space made the suite's page and the index 28000
    pixels wide (the provenance line), and a family as long the filter's menu: a record's text
    wraps, or scrolls within its table, and the page keeps the window's width."""
    from test_leaderboard import record

    from bench.site import CSP

    for seed in (0, 1):
        r = record("magnitude", {"sparsity": 0.5, "scope": "S" * 3000}, seed, 0.97, 500, source="D" * 3000)
        r["env"] = {**r["env"], "device_name": "X" * 3000}
        r["method_info"] = {"family": "F" * 3000, "description": "E" * 3000}
        files.write_json_atomic(tmp_path / "mlp" / "runs" / f"m{seed}.json", r)
    assert main(["leaderboard", "--html", "--results-dir", str(tmp_path)]) == 0
    probe = ('<script>addEventListener("load", () => { document.body.dataset.width = '
             'document.documentElement.scrollWidth; })</script></body>')
    for page in sorted((tmp_path / "site").rglob("*.html")):
        measured = page.with_name("probe.html")  # beside the page, for its CSS; without its CSP, to run the probe
        measured.write_text(page.read_text().replace(f'<meta http-equiv="Content-Security-Policy" content="{CSP}">', "")
                            .replace("</body>", probe))
        dom = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1280,800",
                              "--virtual-time-budget=3000", "--dump-dom", measured.as_uri()],
                             capture_output=True, text=True, timeout=180).stdout
        width = re.search(r'data-width="(\d+)"', dom)
        assert width and int(width.group(1)) <= 1280, (page, width and width.group(1))


# -- 3. records are validated when read ------------------------------------------------------------


def malformed_records() -> dict[str, tuple[dict, str]]:
    """Name -> (a record with a missing or mistyped field, what the warning says about it)."""
    from test_leaderboard import record

    def broken(edit, *, status="ok"):
        r = json.loads(json.dumps(record("magnitude", {"sparsity": 0.5}, 0, 0.97, 500, status=status)))
        edit(r)  # on a copy: the helper's records share their budget and env
        return r

    return {
        "no-device": (broken(lambda r: r["env"].pop("device")), "env.device is missing"),
        "odd-status": (broken(lambda r: r.update(status="<b>won</b>")),
                       "status is '<b>won</b>', expected one of ok, skipped, failed, diverged, invalid"),
        "string-seed": (broken(lambda r: r["config"].update(seed="0")), "config.seed is str, expected int"),
        "bool-seed": (broken(lambda r: r["config"].update(seed=True)), "config.seed is bool, expected int"),
        "list-metrics": (broken(lambda r: r.update(metrics=[0.97])), "metrics is list, expected dict"),
        "text-metric": (broken(lambda r: r["metrics"].update(nonzeros="many")),
                        "metrics.nonzeros is str, expected a number or null"),
        "no-accuracy": (broken(lambda r: r["metrics"].pop("accuracy")),
                        "an ok record without a number in metrics.accuracy"),
        "env-text": (broken(lambda r: r.update(env="cpu")), "env is str, expected dict"),
        "params-list": (broken(lambda r: r["config"].update(params=[0.5])), "config.params is list, expected dict"),
        "no-epochs": (broken(lambda r: r["config"]["budget"].pop("epochs")), "config.budget.epochs is missing"),
        "model-name": (broken(lambda r: r["config"].update(model={"name": 3})),
                       "config.model.name is int, expected str"),
        "measured-on": (broken(lambda r: r.update(measured_on={"device": None})),
                        "measured_on.device is null, expected str"),
        "no-reason": (broken(lambda r: r.update(figures={"deploy": {"runtimes": {"onnxruntime": {"status": "x"}}}})),
                      "figures.deploy.runtimes.onnxruntime holds no status, or no reason for it"),
        "error-number": (broken(lambda r: r.update(error=3), status="failed"), "error is int, expected str or null"),
        "standard-text": (broken(lambda r: r.update(standard_budget="yes")), "standard_budget is str, expected bool"),
    }


def test_malformed_records_are_named_and_skipped_by_every_reader(tmp_path, fast_suite, data_dir, capsys):
    from test_leaderboard import record

    runs = tmp_path / "sec" / "runs"
    for name, (r, _) in malformed_records().items():
        files.write_json_atomic(runs / f"{name}.json", r)
        assert records.record_problem(r) is not None, name
    good = record("dense", {}, 0, 0.98, 1000)
    good["config"]["suite"] = "sec"  # a record in its own suite's folder
    assert records.record_problem(good) is None
    files.write_json_atomic(runs / "good.json", good)

    assert main(["leaderboard", "--html", "--results-dir", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    for name, (_, why) in malformed_records().items():
        assert f"bench: warning: left out of the leaderboard: {runs / name}.json: malformed record: {why}" in err
    assert len((tmp_path / "sec" / "leaderboard.csv").read_text().splitlines()) == 2  # header and dense
    assert "sec: run records (1)" in (tmp_path / "site" / "sec" / "runs.html").read_text()
    assert main(["leaderboard", "--show", "--results-dir", str(tmp_path)]) == 0

    # bench run: a malformed record of a planned run is named and the run planned again
    s = load_suite(str(fast_suite)).with_budget(limit_train=1000, limit_test=200)
    config = records.run_config(s, "dense", {}, 0, find_source(s.data, data_dir))
    planned = layout.record_path(tmp_path, "sec", "dense", 0, run_key(config))
    shutil.copyfile(runs / "no-device.json", planned)
    capsys.readouterr()
    assert run(fast_suite, "dense", data_dir, tmp_path, "--dry-run") == 0
    out = capsys.readouterr().out
    assert f"unusable record, to run again: {planned}: malformed record: env.device is missing" in out
    assert "1 run: 1 to run, 0 finished before" in out


# -- 4. figures a record cannot hold fail their run, not the sweep ---------------------------------


def test_ctx_record_takes_json_values_and_one_element_tensors_and_names_anything_else(make_context):
    import numpy as np

    ctx = make_context(limit_train=256, limit_test=64)
    ctx.record(loss=torch.tensor(0.25), steps=torch.tensor([3]), per_layer=(torch.tensor(1.5), np.float32(0.5)),
               nested={"a": [1, "x", None, True, np.int64(2)]})
    assert ctx.figures == {"loss": 0.25, "steps": 3, "per_layer": [1.5, 0.5],
                           "nested": {"a": [1, "x", None, True, 2]}}
    assert json.loads(json.dumps(ctx.figures)) == ctx.figures
    for value, what in ((torch.zeros(2), "nested.b[0] is a tensor of 2 elements"),
                        (object(), "nested.b[0] is of type object"),
                        ({1: 2}, "nested.b[0] is a dict with keys that are not strings")):
        with pytest.raises(TypeError, match=re.escape(f"ctx.record: {what}; a record holds numbers")):
            ctx.record(nested={"b": [value]})
    for value, shown in ((float("nan"), "nan"), (np.float64("inf"), "inf"), (torch.tensor(float("-inf")), "-inf")):
        with pytest.raises(ValueError, match=re.escape(f"ctx.record: nested.b[0] is {shown}; a record holds finite")):
            ctx.record(nested={"b": [value]})  # strict JSON, which records are, has no NaN
    assert ctx.figures["nested"] == {"a": [1, "x", None, True, 2]}  # a refused call records nothing


@pytest.fixture
def figure_methods():
    """Plugins that record a tensor, record an object, and put an object in ctx.figures by hand."""
    from bench import Method, register_method

    @register_method("sec-raw-figure")
    class RawFigure(Method):
        """Puts what JSON cannot hold into ctx.figures, past ctx.record."""

        def run(self, ctx):
            ctx.figures["raw"] = object()
            return ctx.pretrained()

    @register_method("sec-object-figure")
    class ObjectFigure(Method):
        """Records an object."""

        def run(self, ctx):
            ctx.record(when=object())
            return ctx.pretrained()

    @register_method("sec-tensor-figure")
    class TensorFigure(Method):
        """Records a one-element tensor."""

        def run(self, ctx):
            ctx.record(loss=torch.tensor(0.25))
            return ctx.pretrained()

    yield
    for name in ("sec-raw-figure", "sec-object-figure", "sec-tensor-figure"):
        registry.METHODS.pop(name)


def test_a_figure_json_cannot_hold_fails_its_run_and_the_sweep_goes_on(tmp_path, fast_suite, data_dir, figure_methods,
                                                                       capsys):
    assert run(fast_suite, "sec-raw-figure,sec-object-figure,sec-tensor-figure", data_dir, tmp_path) == 1
    got = {r["config"]["method"]: r for r in records.load_records(tmp_path, "sec")}
    assert set(got) == {"sec-raw-figure", "sec-object-figure", "sec-tensor-figure"}
    assert got["sec-tensor-figure"]["status"] == "ok" and got["sec-tensor-figure"]["figures"]["loss"] == 0.25
    assert got["sec-object-figure"]["status"] == "failed"
    assert got["sec-object-figure"]["error"].startswith("TypeError: ctx.record: when is of type object;")
    assert got["sec-raw-figure"]["status"] == "failed" and got["sec-raw-figure"]["figures"] == {}
    assert got["sec-raw-figure"]["error"].startswith(
        "the run's result cannot be written as JSON: TypeError: Object of type object is not JSON serializable")
    assert "2 of 3 runs did not finish" in capsys.readouterr().err


# -- 5. the harness's own files stay its own -----------------------------------------------------------


def test_a_link_planted_among_the_claims_is_refused_and_its_target_untouched(tmp_path, fast_suite, data_dir, capsys):
    from bench.locks import Claim, ClaimError

    target = tmp_path / "precious.txt"
    target.write_text("keep me\n")
    claims = tmp_path / "results" / "sec" / "claims"
    claims.mkdir(parents=True)
    s = load_suite(str(fast_suite)).with_budget(limit_train=1000, limit_test=200)
    config = records.run_config(s, "dense", {}, 0, find_source(s.data, data_dir))
    run_claim = claims / f"dense-{run_key(config)[:12]}-s0.lock"
    run_claim.symlink_to(target)  # a run's claim: bench run opens it once the dense model is ready
    dense_claim = claims / f"{dense_cache(fast_suite, data_dir, tmp_path / 'results').stem}.lock"
    os.link(target, dense_claim)  # the dense model's claim, a hard link

    assert run(fast_suite, "dense", data_dir, tmp_path / "results") == 1
    err = capsys.readouterr().err
    assert f"bench: error: {dense_claim} is a hard link, not a claim of the harness: remove it" in err
    dense_claim.unlink()
    assert run(fast_suite, "dense", data_dir, tmp_path / "results") == 1
    err = capsys.readouterr().err
    assert f"bench: error: {run_claim} is a symbolic link, not a claim of the harness: remove it" in err
    assert target.read_text() == "keep me\n" and run_claim.is_symlink()

    moved = tmp_path / "elsewhere"
    moved.mkdir()
    folder = tmp_path / "other" / "claims"
    folder.parent.mkdir()
    folder.symlink_to(moved, target_is_directory=True)
    with pytest.raises(ClaimError, match="is a symbolic link, not the harness's claims folder"):
        Claim(folder, "run").acquire()
    assert list(moved.iterdir()) == []


@pytest.fixture
def temp_dir(tmp_path, monkeypatch) -> Path:
    """The system temp folder, where the device gates go, moved into this test's folder."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_the_device_gate_is_shared_by_every_user_and_closes_its_descriptor(temp_dir):
    from bench.locks import DeviceGate

    cpu = torch.device("cpu")
    before = open_descriptors()
    for _ in range(200):
        with DeviceGate(cpu) as gate:
            gate.pass_through()
    assert open_descriptors() == before

    old = os.umask(0o077)  # a user whose files nobody else may read
    try:
        with DeviceGate(cpu) as gate, DeviceGate(cpu) as other:
            assert gate.shared and gate.path == temp_dir / "bench-gates" / "bench-gate-cpu.lock"
            assert gate.path.parent.stat().st_mode & 0o7777 == 0o1777
            assert gate.path.stat().st_mode & 0o777 == 0o644  # readable by all: a lock needs no more
            with gate.alone():
                with pytest.raises(BlockingIOError):  # the other run waits while this one times its model
                    fcntl.flock(other._fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                gate.pass_through()  # work of its own while timing (a context that passes its gate)
                with pytest.raises(BlockingIOError):  # ... keeps the others out
                    fcntl.flock(other._fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    finally:
        os.umask(old)


def test_a_gate_folder_another_user_spoiled_falls_back_to_this_users_own(temp_dir):
    from bench.locks import DeviceGate

    target = temp_dir / "precious.txt"
    target.write_text("keep me\n")
    shared = temp_dir / "bench-gates"
    shared.mkdir(mode=0o1777)
    os.chmod(shared, 0o1777)
    (shared / "bench-gate-cpu.lock").symlink_to(target)
    with DeviceGate(torch.device("cpu")) as gate:
        assert not gate.shared and gate.path == temp_dir / f"bench-gates-{os.getuid()}" / "bench-gate-cpu.lock"
        with gate.alone():
            pass
    (shared / "bench-gate-cpu.lock").unlink()
    os.mkfifo(shared / "bench-gate-cpu.lock")  # opening a FIFO to read would block
    with DeviceGate(torch.device("cpu")) as gate:
        assert not gate.shared
    os.chmod(shared, 0o755)  # a folder only its owner may write
    with DeviceGate(torch.device("cpu")) as gate:
        assert not gate.shared
    assert target.read_text() == "keep me\n"


def test_perform_closes_the_gate_of_every_task(fast_suite, data_dir):
    from bench.plan import RunSpec
    from bench.worker import Task, perform

    suite = load_suite(str(fast_suite)).with_budget(limit_train=1000, limit_test=200)
    task = Task("runs", suite, (RunSpec("dense", {}, 0),), find_source(suite.data, data_dir), str(data_dir), "cpu",
                None, None, (None,), dense={0: "not trained in this test"})
    assert perform(task)[0].result["status"] == "failed"  # loads the data once
    before = open_descriptors()
    # as under `ulimit -n 64`: a descriptor leaked per task would run out within the 200 tasks
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    highest = max(int(fd) for fd in os.listdir("/proc/self/fd"))
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(64, highest + 16), hard))
    try:
        for _ in range(200):
            assert "not trained in this test" in perform(task)[0].result["error"]
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert open_descriptors() == before


# -- 6. YAML within bounds -------------------------------------------------------------------------

SUITE_TAIL = """\
description: a suite
data: {dataset: MNIST, mean: [0.1307], std: [0.3081]}
model: {name: lenet300}
training: {epochs: 1, finetune_epochs: 1, batch_size: 64, lr: 0.1, finetune_lr: 0.01}
seeds: [0]
sparsities: [0.5]
latency_batches: [1, 8]
"""


def billion_laughs(levels: int = 9) -> str:
    """A suite whose name is a list of 9 ** levels strings, written in a few lines of anchors and
    aliases: the parser's error message used to print it whole (1.5 GB, 20 s)."""
    lol = ['&l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lol += [f"&l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, levels)]
    return f"version: 1\nname: [{', '.join(lol)}]\n" + SUITE_TAIL


def test_a_billion_laughs_suite_is_refused_before_anything_expands(tmp_path):
    from bench.suite import SuiteError

    path = tmp_path / "bomb.yaml"
    path.write_text(billion_laughs())
    start = time.perf_counter()
    with pytest.raises(SuiteError) as refused:
        load_suite(str(path))
    assert time.perf_counter() - start < 2
    assert str(refused.value) == (f"{path}: line 2, column 8: anchors and aliases (&name, *name) are not allowed "
                                  "in a suite file or a --set value")
    path.write_text("version: 1\nname: &n tiny\n" + SUITE_TAIL)  # an anchor alone is refused too
    with pytest.raises(SuiteError, match="line 2, column 7: anchors and aliases"):
        load_suite(str(path))


def test_a_suite_of_long_lists_is_checked_in_one_pass():
    """Seeds and sparsity levels must be distinct, and the check counted each item in the whole
    list again: 50,000 seeds took half a minute to check, and a 1 MiB suite file of them
    (140,000) about four. Each item is now counted once: milliseconds, bounded here by 2 s."""
    import dataclasses

    from bench import bounds
    from bench.suite import Suite

    (seeds,) = [f for f in dataclasses.fields(Suite) if f.name == "seeds"]
    start = time.perf_counter()
    assert bounds.problem(seeds, list(range(50_000))) is None
    assert bounds.problem(seeds, [*range(50_000), 7]).startswith("expected distinct values, got 7 more than once")
    assert time.perf_counter() - start < 2


def test_a_plan_of_more_runs_than_one_command_plans_is_refused_before_it_is_built(tmp_path):
    """A suite file of 140,000 seeds (1 MiB) planned 840,000 runs a method, and `--methods all`
    ran out of memory building them: the plan's size is counted first, and refused past MAX_RUNS."""
    from bench import plan as planning
    from bench.errors import ParameterError

    suite = load_suite("mlp")
    seeds = list(range(planning.MAX_RUNS // len(suite.sparsities) + 1))
    with pytest.raises(ParameterError) as refused:
        planning.plan(suite, ["magnitude", "dense"], {}, seeds)
    assert str(refused.value) == (f"{len(seeds) * (len(suite.sparsities) + 1):,} runs planned (2 methods, "
                                  f"{len(seeds):,} seeds, {len(suite.sparsities)} sparsity levels in suite 'mlp'), more "
                                  "than the 100,000 one command plans: split the sweep by --methods or --seeds")
    assert len(planning.plan(suite, ["dense"], {}, list(range(planning.MAX_RUNS)), "breadth")) == planning.MAX_RUNS


def test_the_plan_size_is_counted_as_the_plan_is_built_for_set_sweeps_and_chains():
    """The count took a sweeping method at every level even where its sweep parameter was set (one
    setting: 20,000 seeds of magnitude at sparsity 0.9 were refused as 120,000 runs), and a
    chain at one setting even where a link sweeps (two chains of 10,000 seeds planned 120,000
    runs past the limit)."""
    from bench import plan as planning
    from bench.errors import ParameterError

    suite = load_suite("mlp")
    assert len(suite.sparsities) * 10_000 * 2 > planning.MAX_RUNS >= 20_000
    assert len(planning.plan(suite, ["magnitude"], {"magnitude": {"sparsity": 0.9}}, list(range(20_000)))) == 20_000
    with pytest.raises(ParameterError, match=f"^{len(suite.sparsities) * 20_000:,} runs planned \\(2 methods, "):
        planning.plan(suite, ["magnitude+ptq-int8", "magnitude+uniform"], {}, list(range(10_000)))


def test_a_suite_file_is_at_most_1_mib_and_errors_quote_a_few_hundred_characters_of_a_value(tmp_path, capsys):
    from bench.suite import SuiteError

    path = tmp_path / "big.yaml"
    path.write_text("version: 1\nname: big\n" + SUITE_TAIL + "#" * 2**20 + "\n")
    with pytest.raises(SuiteError, match=f"^{re.escape(str(path))}: a suite file holds at most 1 MiB, and this one"):
        load_suite(str(path))
    long = "x" * 500_000
    for old, new, key in (("name: tiny", f"name: ../{long}", "name"),
                          ("seeds: [0]", f"seeds: [{long}]", "seeds[0]"),
                          ("seeds: [0]", f"seeds: [0]\nmethods: {{magnitude: {{sparsity: {long}}}}}",
                           "methods.magnitude"),
                          ("seeds: [0]", f"seeds: [0]\n{long[:1000]}: 1", "<top level>")):  # a YAML key: <= 1024
        path.write_text(f"version: 1\nname: tiny\n{SUITE_TAIL}".replace(old, new))
        assert main(["run", "--suite", str(path), "--methods", "dense", "--dry-run"]) == 2
        err = capsys.readouterr().err
        assert f"key '{key}'" in err and "characters)" in err and len(err) < 1000, err[:1000]


# -- 7. no silent shadowing ---------------------------------------------------------------------------


def plugin(name: str) -> str:
    return f'''
        from bench import Method, register_method

        @register_method("{name}")
        class Plugin(Method):
            """A plugin's method called {name}."""

            def run(self, ctx):
                return ctx.pretrained()
    '''


@pytest.fixture
def fresh_registry(tmp_path, monkeypatch) -> Path:
    """A registry discovered anew, with the built-in methods, from a folder of fake installed
    plugins put on sys.path; what the test registers or imports is forgotten after it."""
    import sys

    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    # in place: bench.worker and others hold these dicts by their own names
    saved = {name: dict(getattr(registry, name)) for name in ("METHODS", "SOURCES", "BROKEN")}
    monkeypatch.setattr(registry, "_imported", set(registry._imported))
    monkeypatch.setattr(registry, "_discovered", False)
    yield site
    for name, held in saved.items():
        getattr(registry, name).clear()
        getattr(registry, name).update(held)
    for name in [n for n, m in sys.modules.items() if str(getattr(m, "__file__", "")).startswith(str(site))]:
        del sys.modules[name]


def listing(capsys, *check: str) -> dict[str, list[str]]:
    """`bench list methods` (or with --check): method -> its rows."""
    assert main(["list", "methods", *check]) == 0
    rows: dict[str, list[str]] = {}
    for line in capsys.readouterr().out.splitlines()[2:]:
        rows.setdefault(line.split()[0], []).append(line)
    return rows


def test_a_plugin_that_registers_a_built_in_name_is_refused_and_named(fresh_registry, capsys):
    from conftest import make_distribution

    make_distribution(fresh_registry, "shadow_plugin", plugin("magnitude"), {"shadow": "shadow_plugin"})
    registry.discover()
    assert registry.METHODS["magnitude"].__module__ == "methods.magnitude"
    why = ("DuplicateMethodError: method 'magnitude' is already registered by methods.magnitude (built in), so "
           "shadow_plugin (distribution shadow_plugin 0.1) cannot register it; a plugin replaces a built-in method "
           "only if BENCH_ALLOW_SHADOWING names it (BENCH_ALLOW_SHADOWING=magnitude)")
    assert registry.BROKEN["shadow"].splitlines()[0] == why
    fast, checked = listing(capsys), listing(capsys, "--check")
    assert len(fast["magnitude"]) == 1 and "One-shot magnitude pruning" in fast["magnitude"][0]
    assert f"REFUSED: {why}" in fast["shadow"][0]
    assert len(checked["magnitude"]) == 1 and "One-shot magnitude pruning" in checked["magnitude"][0]
    assert f"FAILED TO IMPORT: {why}" in checked["shadow"][0]


def test_bench_allow_shadowing_lets_a_plugin_replace_a_built_in_whatever_the_order(fresh_registry, capsys,
                                                                                   monkeypatch):
    from conftest import make_distribution

    make_distribution(fresh_registry, "shadow_plugin", plugin("magnitude"), {"shadow": "shadow_plugin"})
    monkeypatch.setenv("BENCH_ALLOW_SHADOWING", "snip, magnitude")
    registry.discover()
    assert registry.METHODS["magnitude"].__module__ == "shadow_plugin" and "shadow" not in registry.BROKEN
    for rows in (listing(capsys), listing(capsys, "--check")):
        assert len(rows["magnitude"]) == 1 and "A plugin's method called magnitude" in rows["magnitude"][0]
    built_in, installed = registry.Source("methods.magnitude"), registry.Source("shadow_plugin", "shadow_plugin 0.1")
    assert registry.replaces("magnitude", built_in, installed)
    assert not registry.replaces("magnitude", installed, built_in)  # the built-in imported second keeps out
    monkeypatch.delenv("BENCH_ALLOW_SHADOWING")
    with pytest.raises(registry.DuplicateMethodError):
        registry.replaces("magnitude", installed, built_in)


def test_a_plugin_entry_point_that_registers_a_built_in_name_is_refused_when_imported_first(tmp_path):
    """`bench run --methods shadow,magnitude`, where the entry point `shadow` registers `magnitude`,
    imported the plugin alone first: it took the name, the built-in imported next was the one
    refused, `shadow` was an unknown method, and the runs of `magnitude` ran the plugin's code.
    The built-in is imported before the plugin may take its name, so the plugin is refused."""
    from conftest import FAST, make_distribution, run_bench

    site = make_distribution(tmp_path / "site", "shadow_plugin", plugin("magnitude"), {"shadow": "shadow_plugin"})
    ran = run_bench(["run", "--suite", str(FAST), "--methods", "shadow,magnitude", "--seeds", "0", "--epochs", "1",
                     "--results-dir", str(tmp_path / "r"), "--dry-run"], pythonpath=[site])
    assert ran.returncode == 0, ran.stderr
    assert ("bench: warning: plugin 'shadow' failed to import: DuplicateMethodError: method 'magnitude' is already "
            "registered by methods.magnitude (built in), so shadow_plugin (distribution shadow_plugin 0.1) cannot "
            "register it") in ran.stderr, ran.stderr
    assert "come from installed plugins" not in ran.stderr + ran.stdout  # magnitude is the built-in
    assert re.search(r"^shadow +- ", ran.stdout, re.M) and re.search(r"^magnitude +scope=global", ran.stdout, re.M)


def test_a_plugin_replacing_a_built_in_runs_again_what_the_built_in_recorded(fresh_registry, data_dir, capsys,
                                                                            monkeypatch):
    """A plugin that $BENCH_ALLOW_SHADOWING lets replace `magnitude` met the built-in's finished
    records of its settings (a record's name holds no origin), ran none of them, and the
    leaderboard showed the built-in's rows as the plugin's. Such records are run again, saying
    why; the plugin's own then stand."""
    from conftest import FAST, make_distribution

    args = ["run", "--suite", str(FAST), "--seeds", "0", "--epochs", "1", "--finetune-epochs", "1", "--limit-train",
            "1000", "--limit-test", "200", "--executor", "inline", "--methods", "magnitude", "--set",
            "magnitude.sparsity=0.5", "--data-dir", str(data_dir), "--results-dir", str(fresh_registry.parent / "r")]
    assert main(args) == 0
    (path,) = (fresh_registry.parent / "r" / "mlp-fast" / "runs").glob("magnitude-*.json")
    assert json.loads(path.read_text())["env"]["method_origin"] == {"magnitude": "built in"}
    with_sparsity = plugin("magnitude").replace('"""A plugin\'s method called magnitude."""', '''"""A plugin\'s method called magnitude."""

            sweep = "sparsity"
            sparsity: float = 0.9
            scope: str = "global"''')
    make_distribution(fresh_registry, "shadow_plugin", with_sparsity, {"magnitude": "shadow_plugin"})
    monkeypatch.setenv("BENCH_ALLOW_SHADOWING", "magnitude")
    registry.discover()
    capsys.readouterr()
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "seed=0: its record's magnitude came from built in, and shadow_plugin 0.1 registers magnitude now: to run " \
           "again" in out, out
    assert json.loads(path.read_text())["env"]["method_origin"] == {"magnitude": "shadow_plugin 0.1"}
    assert json.loads(path.read_text())["metrics"]["sparsity"] < 0.01  # the plugin's model: the dense one
    assert main(args) == 0 and "0 to run, 1 finished before" in capsys.readouterr().out


def test_a_tampered_method_origin_is_named_and_rerun_once_never_a_traceback(tmp_path, data_dir, bench):
    """`bench run` compares a finished record's env.method_origin with today's registry: a list
    there stopped it with an AttributeError's traceback. Such a record is now malformed (named,
    and its run runs again); a huge origin is quoted cut short, an origin of a link the method
    has not is no reason to rerun, and a rerun record stands."""
    from conftest import FAST

    args = ["run", "--suite", FAST, "--seeds", "0", "--epochs", "1", "--finetune-epochs", "1", "--limit-train", "500",
            "--limit-test", "100", "--methods", "magnitude,random", "--set", "magnitude.sparsity=0.5", "--set",
            "random.sparsity=0.5", "--data-dir", data_dir, "--results-dir", tmp_path]
    assert bench(args).returncode == 0
    (magnitude,) = (tmp_path / "mlp-fast" / "runs").glob("magnitude-*.json")
    (random,) = (tmp_path / "mlp-fast" / "runs").glob("random-*.json")
    for path, origin in ((magnitude, ["built in"]), (random, {"random": "evil " * 100000, "magnitude": "evil"})):
        record = json.loads(path.read_text())
        record["env"]["method_origin"] = origin
        path.write_text(json.dumps(record))
    ran = bench(args)
    assert ran.returncode == 0, ran.stderr
    assert f"unusable record, to run again: {magnitude}: malformed record: env.method_origin is list" in ran.stdout
    assert f"its record's random came from {'evil ' * 16}, and built in registers random now: to run again" in ran.stdout
    assert "2 to run, 0 finished before" in ran.stdout and len(ran.stdout) < 20000
    record = json.loads(random.read_text())
    record["env"]["method_origin"]["magnitude"] = "evil"  # random has no link called magnitude
    random.write_text(json.dumps(record))
    assert "0 to run, 2 finished before" in bench(args).stdout


def test_two_plugins_never_share_a_name(fresh_registry, capsys, monkeypatch):
    from conftest import make_distribution

    monkeypatch.setenv("BENCH_ALLOW_SHADOWING", "twin")  # allows replacing a built-in, not a plugin
    for dist in ("first_plugin", "second_plugin"):
        make_distribution(fresh_registry, dist, plugin("twin"), {dist: dist})
    registry.discover()
    (refused,) = [name for name in ("first_plugin", "second_plugin") if name in registry.BROKEN]
    kept = ({"first_plugin", "second_plugin"} - {refused}).pop()
    assert registry.METHODS["twin"].__module__ == kept
    assert registry.BROKEN[refused].splitlines()[0] == (
        f"DuplicateMethodError: method 'twin' is already registered by {kept} (distribution {kept} 0.1), so {refused} "
        f"(distribution {refused} 0.1) cannot register it; uninstall one of them, or rename the method in one")
    fast = listing(capsys)
    assert len(fast["twin"]) == 1 and f"REFUSED: {registry.BROKEN[refused].splitlines()[0]}" in fast[refused][0]
