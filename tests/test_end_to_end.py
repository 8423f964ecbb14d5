"""`bench run` as a user runs it, on a real MNIST subset (a few epochs, one seed), in this
process (bench.cli.main, what `python -m bench` runs)."""

import dataclasses
import json

import pandas as pd
import pytest
import torch

from conftest import FAST, make_distribution


def quick(results, data_dir, *extra, suite="mlp"):
    return ["run", "--suite", suite, "--seeds", "0", "--epochs", "3", "--finetune-epochs", "2",
            "--limit-train", "12000", "--data-dir", str(data_dir), "--results-dir", str(results), *extra]


@pytest.mark.stack
def test_dense_and_magnitude_end_to_end(tmp_path, data_dir, bench):
    """The shipped mlp suite, every CPU runtime of its deploy step included."""
    proc = bench(quick(tmp_path, data_dir, "--methods", "dense,magnitude",
                       "--set", "magnitude.sparsity=0.9"))
    assert proc.returncode == 0, proc.stderr
    assert "epoch   3/3" in proc.stdout and "[2/2] magnitude scope=global, sparsity=0.9 seed=0" in proc.stdout
    recs = {r["config"]["method"]: r for r in (json.loads(p.read_text()) for p in (tmp_path / "mlp" / "runs").glob("*.json"))}
    dense, mag = recs["dense"]["metrics"], recs["magnitude"]["metrics"]
    assert dense["accuracy"] > 0.93 and dense["params"] == 266_610 and dense["sparsity"] == 0
    assert abs(mag["weight_sparsity"] - 0.9) < 0.005  # the requested sparsity, within 0.5%
    assert abs(mag["sparsity"] - 0.9) < 0.005
    assert mag["accuracy"] > 0.93  # floor: 12k images, 3+2 epochs (dense reaches ~94.5%)
    assert mag["train_epochs"] == 5 and dense["train_epochs"] == 3  # dense epochs are counted
    assert mag["flops_effective"] < 0.11 * dense["flops_effective"]
    assert mag["size_bytes"] < 0.2 * dense["size_bytes"] and mag["compression"] > 5
    assert recs["magnitude"]["standard_budget"] is False  # overridden budget
    assert recs["magnitude"]["env"]["data_source"] == "torchvision:MNIST"
    # the deploy step: measured in every CPU runtime of the suite, beside the theoretical speedup
    assert mag["theoretical_speedup"] > 9 and dense["theoretical_speedup"] == 1
    for key in ("speedup_b1", "speedup_b256", "speedup_onnxruntime_b256", "speedup_openvino_b1",
                "speedup_torch_csr_b256"):
        assert mag[key] > 0 and mag[key + "_iqr"] >= 0, key
    assert dense["speedup_torch_csr_b1"] is None  # no sparse layer: the reason is in the record
    assert recs["dense"]["figures"]["deploy"]["runtimes"]["torch_csr"]["status"] == "empty"
    assert mag["artifact_onnxruntime_bytes"] > 0.95 * dense["artifact_onnxruntime_bytes"]  # no smaller
    table = pd.read_csv(tmp_path / "mlp" / "leaderboard-custom.csv")
    assert list(table.method) == ["dense", "magnitude"]
    assert {"theoretical_speedup_x", "speedup_openvino_b256_x", "artifact_onnxruntime_KiB"} <= set(table.columns)
    assert not (tmp_path / "mlp" / "leaderboard.csv").exists()  # nothing standard ran

    before = {p.name: p.read_bytes() for p in (tmp_path / "mlp").glob("leaderboard*")}
    regen = bench(["leaderboard", "--suite", "mlp", "--results-dir", str(tmp_path)])
    assert regen.returncode == 0, regen.stderr
    assert {p.name: p.read_bytes() for p in (tmp_path / "mlp").glob("leaderboard*")} == before


def test_context_gives_seeded_models_and_counts_cost(make_context):
    ctx = make_context(epochs=1)
    a, b = ctx.new_model(), ctx.new_model()
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))  # same init
    dense = ctx.pretrained()
    assert ctx.train_epochs == 1  # the dense epochs count once
    ctx.pretrained()
    assert ctx.train_epochs == 1
    ctx.train(dense, epochs=2, lr=0.01)
    assert ctx.train_epochs == 3 and ctx.train_time_s > 0
    assert ctx.evaluate(dense) > 0.6  # 3 epochs on 2,000 images; chance is 0.1
    (x, y), = ctx.calibration_batches(n=1, batch_size=32)
    assert x.shape == (32, 1, 28, 28) and x.dtype == torch.float32 and y.shape == (32,)


def test_float_convolutions_are_measured_channels_last(make_context):
    """A returned LeNet-5 whose first weight went NCHW (an elementwise op on a one-input-channel
    weight does that) is measured in the dense model's channels-last layout, at the same weights."""
    from bench.worker import measure_model

    ctx = make_context(suite="mnist", limit_train=256, limit_test=256)
    ctx.suite = dataclasses.replace(ctx.suite, runtimes=["torch"], latency_batches=[1, 16])  # layout, not runtimes
    model = ctx.new_model().eval()
    dense_stride = model[0].weight.stride()
    model[0].weight.data = model[0].weight.detach() * torch.ones_like(model[0].weight)  # NCHW strides
    assert model[0].weight.stride() != dense_stride
    weights = model[0].weight.detach().clone()
    metrics = measure_model(model, ctx, {"params": 431_080, "size_bytes": 1})
    assert model[0].weight.stride() == dense_stride and torch.equal(model[0].weight, weights)
    assert metrics["params"] == 431_080

def test_chain_runs_links_in_order_as_one_row(tmp_path, data_dir, bench):
    proc = bench(quick(tmp_path, data_dir, "--methods", "dense+magnitude", "--set", "magnitude.sparsity=0.8",
                       "--limit-train", "4000", "--epochs", "2", suite=FAST))
    assert proc.returncode == 0, proc.stderr
    assert "chain link 2/2: magnitude" in proc.stdout
    (record,) = [json.loads(p.read_text()) for p in (tmp_path / "mlp-fast" / "runs").glob("*.json")]
    assert record["config"]["method"] == "dense+magnitude"
    assert "method" not in record and "budget" not in record  # the configuration is stored once
    assert record["config"]["params"] == {"dense": {}, "magnitude": {"sparsity": 0.8, "scope": "global"}}
    assert record["metrics"]["train_epochs"] == 2 + 2  # dense training + the fine-tuning
    assert abs(record["metrics"]["weight_sparsity"] - 0.8) < 0.005


def test_impossible_chains_fail_before_training(tmp_path, data_dir, bench, plugins):
    code = '''
        from bench import Method, register_method

        @register_method("from-scratch")
        class FromScratch(Method):
            """Trains its own model."""
            starts_from = "scratch"

            def run(self, ctx):
                return ctx.new_model()

        @register_method("to-int8")
        class ToInt8(Method):
            """Returns a final quantized model."""
            output = "quantized"

            def run(self, ctx):
                return ctx.pretrained()
    '''
    plugins(make_distribution(tmp_path / "site", "chain_plugins", code,
                              {"from-scratch": "chain_plugins", "to-int8": "chain_plugins"}))
    scratch = bench(quick(tmp_path, data_dir, "--methods", "magnitude+from-scratch"))
    assert scratch.returncode == 2
    assert "'from-scratch' trains its own model from scratch, so it cannot continue from 'magnitude'" in scratch.stderr
    quant = bench(quick(tmp_path, data_dir, "--methods", "to-int8+magnitude"))
    assert quant.returncode == 2 and "'magnitude' needs a float model, but 'to-int8' returns a quantized one" in quant.stderr
    twice = bench(quick(tmp_path, data_dir, "--methods", "magnitude+magnitude"))
    assert twice.returncode == 2 and "a method may appear once in a chain" in twice.stderr
    unknown = bench(quick(tmp_path, data_dir, "--methods", "magnitude+ptq-int9"))
    assert unknown.returncode == 2 and "unknown method 'ptq-int9'" in unknown.stderr
    assert not (tmp_path / "mlp").exists()  # nothing trained


def test_every_built_in_method_runs_through_the_harness_at_its_defaults(tmp_path, data_dir, bench):
    """Every built-in method, at its default parameters on a tiny budget, through the worker's
    checks of the model it returns: a harness rule that a plugin no longer passes fails here,
    not in a sweep (sparse-coding's Gram matrix in a buffer, and its model larger than the
    dense one, once made every sparse-coding run invalid, unnoticed). One sparsity level."""
    from bench.registry import METHODS, discover

    suite = tmp_path / "mlp-fast.yaml"
    suite.write_text(FAST.read_text().replace("sparsities: [0.5, 0.9]", "sparsities: [0.9]"))
    proc = bench(["run", "--suite", suite, "--methods", "all", "--seeds", "0", "--epochs", "1", "--finetune-epochs",
                  "1", "--limit-train", "1000", "--limit-test", "500", "--data-dir", data_dir,
                  "--results-dir", tmp_path / "results"])
    recs = [json.loads(p.read_text()) for p in (tmp_path / "results" / "mlp-fast" / "runs").glob("*.json")]
    not_ok = {r["config"]["method"]: r["error"] for r in recs if r["status"] != "ok"}
    assert not_ok == {"slimming": "not applicable: slimming needs BatchNorm layers; suite mlp-fast's model has none"}
    assert proc.returncode == 0, proc.stderr
    discover()
    assert set(METHODS) <= {r["config"]["method"] for r in recs}
