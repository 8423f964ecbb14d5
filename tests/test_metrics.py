"""The metric registry drives the leaderboard's CSV and Markdown columns and the README's table."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pandas as pd

from bench import files, leaderboard, metrics, records

ROOT = Path(__file__).resolve().parents[1]
ENV = {"device_name": "Test CPU", "device": "cpu", "torch": "2.x", "threads": 2}
BUDGET = {"epochs": 20, "finetune_epochs": 10, "limit_train": None, "limit_test": None}


def record(method: str, seed: int, **values) -> dict:
    metrics_ = {"accuracy": 0.98, "sparsity": 0.5, "nonzeros": 500, "flops_effective": 1000,
                "theoretical_speedup": 2.0, **values}
    onnx = {"status": "ok"} if values.get("speedup_onnxruntime_b256") else {
        "status": "empty", "reason": "ONNX export: DispatchError: no function for aten.magic"}
    return {"schema": records.SCHEMA_VERSION, "status": "ok", "error": None, "standard_budget": True,
            "config": {"suite": "mlp", "suite_version": 1, "method": method, "params": {}, "seed": seed,
                       "budget": BUDGET, "data_source": "torchvision:MNIST"}, "config_hash": f"{method}-{seed}",
            "metrics": metrics_, "env": ENV,
            "figures": {"deploy": {"encoding": "bitmask", "runtimes": {"onnxruntime": onnx}}}}


def write(results: Path, recs: list[dict]) -> tuple[pd.DataFrame, str]:
    for i, r in enumerate(recs):
        files.write_json_atomic(results / "mlp" / "runs" / f"r{i}.json", r)
    leaderboard.write(results, "mlp")
    return pd.read_csv(results / "mlp" / "leaderboard.csv"), (results / "mlp" / "leaderboard.md").read_text()


def test_registry_drives_csv_and_markdown_columns(tmp_path, monkeypatch):
    energy = metrics.MetricSpec("energy_j", "joules per inference", "mJ", "energy_mJ", "energy (mJ)",
                                scale=1e3, decimals=3, shown=1)
    monkeypatch.setattr(metrics, "METRICS", [*metrics.METRICS, energy])
    speed = {"speedup_b1": 1.5, "speedup_b1_iqr": 0.1, "speedup_onnxruntime_b256": 3.25,
             "speedup_onnxruntime_b256_iqr": 0.05, "artifact_onnxruntime_bytes": 2048}
    recs = [record("dense", 0, energy_j=0.0123456, speedup_b1=1.0, speedup_b1_iqr=0.0),
            record("magnitude", 0, energy_j=0.001, **speed), record("magnitude", 1, energy_j=0.002, **speed)]
    recs[2]["env"] = {**ENV, "device_name": "Other CPU"}  # one seed trained elsewhere
    table, md = write(tmp_path, recs)

    # CSV: registry order and names, scaled and rounded as registered
    assert list(table.columns) == [
        "data_source", "budget", "device", "method", "setting", "timed_on", "seeds", "machines", "partial_seeds",
        "accuracy_mean_%",
        "accuracy_std_%", "delta_acc_pts", "delta_ft_pts", "sparsity_%", "nonzeros", "flops_effective_M", "theoretical_speedup_x",
        "speedup_b1_x", "speedup_onnxruntime_b256_x", "speedup_b1_iqr_x", "speedup_onnxruntime_b256_iqr_x",
        "artifact_onnxruntime_KiB", "energy_mJ"]
    assert list(table["energy_mJ"]) == [12.346, 1.5]
    assert list(table["machines"]) == ["Test CPU", "Other CPU; Test CPU"]
    assert table.loc[1, "artifact_onnxruntime_KiB"] == 2.0
    # Markdown: the registered headers, formats and spreads
    assert re.search(r"\| eff. MFLOPs +\| energy \(mJ\) +\|\n", md) and re.search(r"\| 12.3 +\|\n", md)
    assert re.search(r"\| theoretical \(x\) +\| eager b1 \(x\) +\| ORT b256 \(x\) +\| ORT file \(KiB\) +\|", md)
    assert re.search(r"\| magnitude +\| - +\| 2.00 +\| 1.50 \(0.10\) +\| 3.25 \(0.05\) +\| 2.0 +\|", md)
    assert "## runtimes that could not take a model" in md
    assert re.search(r"\| dense +\| - +\| onnxruntime \| ONNX export: DispatchError: no function for aten.magic \|", md)

    # the same records with the spec's format changed: the tables follow
    monkeypatch.setattr(metrics, "METRICS", [*metrics.METRICS[:-1], dataclasses.replace(energy, decimals=1, shown=2)])
    table, md = write(tmp_path, recs)
    assert list(table["energy_mJ"]) == [12.3, 1.5] and re.search(r"\| 12.35 +\|\n", md)  # from 12.346, not the CSV's 12.3


def test_readme_metric_and_runtime_tables_are_the_registrys():
    readme = (ROOT / "README.md").read_text()
    assert metrics.readme_tables() in readme, "README's tables are stale: paste `python -m bench.metrics`"


def test_one_slow_dense_run_does_not_move_a_rows_train_time(tmp_path):
    """Wall times aggregate as the median over seeds: seed 2's dense model trained on a busy
    machine (planted at 10x) leaves the row's train time where the other seeds put it, while
    FLOPs, which no load moves, stay means."""
    recs = [record("magnitude", seed, train_time_s=t, method_time_s=10.0, train_flops=2e12)
            for seed, t in ((0, 40.0), (1, 44.0), (2, 400.0))]
    table, md = write(tmp_path, recs)
    assert table.loc[0, "train_time_s"] == 44.0 and table.loc[0, "method_time_s"] == 10.0
    assert table.loc[0, "train_TFLOPs"] == 2.0
    assert re.search(r"\| train time \(s\) +\| own time \(s\) +\| train TFLOPs +\|", md)
    # the slow seed the median leaves out is in sight: its lowest and highest seed beside it, in the
    # CSV as columns of their own; a figure alike on every seed shows none
    assert (table.loc[0, "train_time_s_min"], table.loc[0, "train_time_s_max"]) == (40.0, 400.0)
    assert list(table.columns[table.columns.get_loc("train_time_s"):][:3]) == [
        "train_time_s", "train_time_s_min", "train_time_s_max"]
    assert re.search(r"\| 44 \(40–400\) +\| 10 +\| 2.00 +\|", md), md
    # and the notes say what those parentheses hold, where they said "Mean over seeds" (the .md, the
    # site) or spoke of the speedup's timed pairs alone (the terminal)
    assert "wall times and measured speedups: the median, a wall time with its lowest and highest seed in " \
           "parentheses" in md
    from bench import render

    shown = render.terminal(recs, 400, {})
    assert re.search(r"^magnitude .* 44 \(40–400\) ", shown, flags=re.M), shown
    assert "train time, own time: the median over seeds; in parentheses the lowest and highest seed" in shown
    assert "lowest and highest seed" not in render.terminal(recs[:1], 400, {})  # one seed: no range to read


def test_one_seed_timed_beside_a_busy_process_does_not_move_a_rows_speedup(tmp_path):
    """Measured speedups are ratios of wall times, so they aggregate like them: the median over
    seeds. Seed 2 timed while another process held a core (planted at a third of the others) leaves
    the row's speedup and its spread where seeds 0 and 1 put them; the theoretical speedup, which no
    load moves, stays a mean."""
    recs = [record("magnitude", seed, theoretical_speedup=t, speedup_onnxruntime_b256=s,
                   speedup_onnxruntime_b256_iqr=iqr)
            for seed, t, s, iqr in ((0, 2.0, 3.0, 0.05), (1, 2.5, 3.2, 0.07), (2, 3.0, 1.0, 0.9))]
    table, md = write(tmp_path, recs)
    assert table.loc[0, "speedup_onnxruntime_b256_x"] == 3.0
    assert table.loc[0, "speedup_onnxruntime_b256_iqr_x"] == 0.07
    assert table.loc[0, "theoretical_speedup_x"] == 2.5
    assert re.search(r"\| 3.00 \(0.07\) +\|", md)
