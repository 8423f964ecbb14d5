"""A suite's `dense_layers` rule: the layers every sparsity method leaves dense, by role (README:
Layers left dense, Suite files). Tiny real MNIST runs."""

from __future__ import annotations

import copy
import dataclasses
import json

import pytest
import torch
from test_suite import VALID, write

from bench import records
from bench.fused import Coordinator
from bench.models import build_model
from bench.registry import METHODS, discover
from bench.sparsity import layer_roles, prunable_weights, weight_sparsity
from bench.suite import SuiteError, load_suite
from bench.train import fit
from conftest import FAST, ROOT

discover()

RULE = ["first", "classifier"]


def ruled(ctx, roles=RULE):
    """The context's suite with `dense_layers: roles` (the dense model is the same either way)."""
    ctx.suite = dataclasses.replace(ctx.suite, dense_layers=list(roles))
    return ctx


def role_names(model: torch.nn.Module) -> dict[str, str]:
    names = {m: n for n, m in model.named_modules()}
    return {role: names[m] for role, m in layer_roles(model).items()}


def density(module: torch.nn.Module) -> float:
    return float((module.weight != 0).float().mean())


def test_the_field_is_optional_and_checked(tmp_path):
    assert load_suite(str(write(tmp_path, VALID))).dense_layers == []
    suite = load_suite(str(write(tmp_path, VALID + "dense_layers: [classifier, first]\n")))
    assert suite.dense_layers == ["classifier", "first"]
    with pytest.raises(SuiteError, match=r"key 'dense_layers\[1\]': expected one of first, classifier, got 'last'"):
        load_suite(str(write(tmp_path, VALID + "dense_layers: [first, last]\n")))
    with pytest.raises(SuiteError, match="key 'dense_layers': names 'first' more than once"):
        load_suite(str(write(tmp_path, VALID + "dense_layers: [first, first]\n")))
    with pytest.raises(SuiteError, match="key 'dense_layers': expected a list"):
        load_suite(str(write(tmp_path, VALID + "dense_layers: classifier\n")))


def test_a_copy_of_a_shipped_suite_with_the_rule_must_take_another_name(tmp_path):
    path = tmp_path / "mlp.yaml"
    path.write_text((ROOT / "suites" / "mlp.yaml").read_text() + "dense_layers: [classifier]\n")
    with pytest.raises(SuiteError, match=r"named 'mlp'.*dense_layers \['classifier'\] here, \[\] in mlp"):
        load_suite(str(path))


@pytest.mark.parametrize(("name", "channels", "first", "classifier"), [
    ("lenet300", 1, "1", "5"),                  # Linear 784-300, Linear 100-10
    ("lenet5", 1, "0", "7"),                    # conv5x5 20, fc 500-10
    ("resnet20", 3, "stem.0", "fc"),            # the stem's conv, the 64-10 head
    ("timm:test_vit", 3, "patch_embed.proj", "head"),  # timm: get_classifier()
    ("timm:test_efficientnet", 3, "conv_stem", "classifier"),
])
def test_each_role_names_the_stem_and_the_head_of_each_model(name, channels, first, classifier):
    model = build_model(name, {}, 10, channels)
    assert role_names(model) == {"first": first, "classifier": classifier}


def test_without_the_rule_every_layer_is_pruned(make_context):
    model = METHODS["magnitude"].build({"sparsity": 0.9}).run(make_context())
    assert len(prunable_weights(model)) == 3
    assert all(density(m) < 1 for m, _ in prunable_weights(model))


@pytest.mark.parametrize("method", ["magnitude", "sparsegpt"])
def test_the_kept_layers_stay_exactly_dense_and_the_others_reach_the_target(make_context, method):
    ctx = ruled(make_context())
    model = METHODS[method].build({"sparsity": 0.9}).run(ctx)
    first, hidden, classifier = model[1], model[3], model[5]
    assert density(first) == 1 and density(classifier) == 1
    if method == "sparsegpt":  # no fine-tuning: the kept layers are the dense model's
        assert torch.equal(classifier.weight, ctx.pretrained()[5].weight)
    assert density(hidden) == pytest.approx(0.1, abs=1e-3)
    assert prunable_weights(model) == [(hidden, "weight")]
    assert weight_sparsity(model) == pytest.approx(0.9, abs=1e-3)


def test_only_the_named_role_is_kept(make_context):
    model = METHODS["magnitude-oneshot"].build({"sparsity": 0.5}).run(ruled(make_context(), ["classifier"]))
    assert density(model[1]) == pytest.approx(0.5, abs=1e-3) and density(model[5]) == 1


@pytest.mark.parametrize("method", ["gptq", "uniform"])
def test_quantizers_still_quantize_the_kept_layers(make_context, method):
    """The rule is about sparsity: a quantizer gives the model it gives without it."""
    plain = METHODS[method].build({}).run(make_context())
    kept = METHODS[method].build({}).run(ruled(make_context()))
    assert plain.state_dict().keys() == kept.state_dict().keys()
    assert all(torch.equal(a, b) for a, b in zip(plain.state_dict().values(), kept.state_dict().values()))


def test_deep_compression_prunes_around_the_kept_layers_and_shares_every_layer(make_context):
    model = METHODS["deep-compression"].build({"sparsity": 0.9}).run(ruled(make_context()))
    assert density(model[1]) == 1 and density(model[5]) == 1
    assert density(model[3]) == pytest.approx(0.1, abs=1e-3)
    for layer in (model[1], model[3], model[5]):  # plain weights on at most 2^5 shared values
        assert type(layer._parameters["weight"]) is torch.nn.Parameter
        assert layer.weight.unique().numel() <= 2 ** 5 + 1


def test_the_mark_survives_copies_chains_and_the_student(make_context):
    ctx = ruled(make_context())
    model = ctx.pretrained()
    assert role_names(copy.deepcopy(model)) == {"first": "1", "classifier": "5"}
    assert len(prunable_weights(copy.deepcopy(model))) == 1
    ctx.continue_from(METHODS["magnitude"].build({"sparsity": 0.5}).run(ctx))  # a chain's first link
    chained = METHODS["sparsegpt"].build({"sparsity": 0.9}).run(ctx)
    assert density(chained[1]) == 1 and density(chained[5]) == 1 and density(chained[3]) == pytest.approx(0.1, abs=1e-3)
    student = ctx.new_student()  # LeNet-300-100 at 150-50
    assert [m.out_features for m, _ in prunable_weights(student)] == [50]


def test_fused_runs_keep_the_layers_dense_and_match_their_own_training(make_context):
    def job(seed, sparsity):
        ctx = ruled(make_context(seed=seed, limit_train=1024))
        logs: list[str] = []
        ctx.log = logs.append

        def run(fit):
            ctx.fit = fit
            return METHODS["magnitude"].build({"sparsity": sparsity}).run(ctx), logs
        return run

    fused = Coordinator().run([job(0, 0.9), job(1, 0.8)])
    alone = [job(0, 0.9)(fit), job(1, 0.8)(fit)]
    for (model, logs), (reference, _), sparsity in zip(fused, alone, (0.9, 0.8)):
        assert any("training fused with" in line for line in logs)
        assert density(model[1]) == 1 and density(model[5]) == 1
        assert density(model[3]) == pytest.approx(1 - sparsity, abs=1e-3)
        assert torch.allclose(model[5].weight, reference[5].weight, atol=1e-4)


def test_a_suite_with_the_rule_has_records_of_its_own_and_shares_the_dense_model():
    plain = load_suite(str(FAST))
    kept = dataclasses.replace(plain, dense_layers=["first", "classifier"])
    assert "dense_layers" not in records.run_config(plain, "magnitude", {"sparsity": 0.9}, 0, "x")
    assert (records.config_hash(records.run_config(plain, "magnitude", {}, 0, "x"))
            != records.config_hash(records.run_config(kept, "magnitude", {}, 0, "x")))
    assert records.dense_config(plain, 0, "x") == records.dense_config(kept, 0, "x")


def test_bench_run_records_the_rule_and_keeps_its_rows_apart(tmp_path, data_dir, bench):
    """One suite file run without the rule, then with it: records and leaderboard tables apart."""
    suite, results = tmp_path / "kept.yaml", tmp_path / "results"
    plain = FAST.read_text().replace("name: mlp-fast", "name: kept")
    for text in (plain, plain + "dense_layers: [first, classifier]\n"):
        suite.write_text(text)
        proc = bench(["run", "--suite", suite, "--methods", "magnitude", "--set", "magnitude.sparsity=0.9",
                      "--seeds", "0", "--epochs", "1", "--finetune-epochs", "1", "--limit-train", "2000",
                      "--limit-test", "500", "--data-dir", data_dir, "--results-dir", results])
        assert proc.returncode == 0, proc.stderr
    assert "dense model, seed 0: from cache" in proc.stdout  # the same dense model
    assert "sparsity 10.1%" in proc.stdout and "asked for sparsity" not in proc.stdout  # no regrowth suspected
    recs = [json.loads(p.read_text()) for p in (results / "kept" / "runs").glob("*.json")]
    kept = [r for r in recs if r["config"].get("dense_layers")]
    assert len(recs) == 2 and len(kept) == 1
    assert kept[0]["config"]["dense_layers"] == ["classifier", "first"]
    metrics = kept[0]["metrics"]
    assert metrics["weight_sparsity"] == pytest.approx(0.9, abs=1e-3)  # over the pruned layers
    # over the whole model: the 784x300 and 100x10 layers and the biases stay dense
    assert metrics["sparsity"] == pytest.approx(0.9 * 30_000 / 266_610, abs=1e-3)
    assert bench(["leaderboard", "--results-dir", results]).returncode == 0
    board = (results / "kept" / "leaderboard-custom.md").read_text()  # overridden budgets
    assert "1+1 epochs, limit_train=2000, limit_test=500, dense classifier+first" in board
    assert board.count("## data: ") == 2
