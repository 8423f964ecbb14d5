"""Structured methods (filter-l1, slimming, gating) remove channels for real, on real data.

The central check: zeroing the chosen channels (the masked model) and removing them with
torch-pruning (the returned model) compute the same function, with fewer parameters and FLOPs.
"""

import copy

import pytest
import torch
from torch import nn

from bench import NotApplicable, measure
from bench.structured import example_input, remove_channels, zero_channels
from methods.filter_l1 import FilterL1, filters_to_remove
from methods.gating import Gating, add_gates, closed_channels, fold_gates
from methods.slimming import Slimming, batchnorms, smallest_scales

# CPU ResNet-20 is slow: a tiny subset (a fixed random draw, every class; enough for real shapes,
# BatchNorm statistics and timing), decoded alone where the whole split is not cached yet.
TINY_CIFAR = dict(suite="cifar", limit_train=256, limit_test=256, epochs=1, finetune_epochs=1)
SMALL = {"mlp": dict(suite="mlp"), "mnist": dict(suite="mnist", limit_train=1000, limit_test=500)}


def real_inputs(ctx, n=64):
    return ctx.preprocess.normalize(ctx.data.test.x[:n])


@torch.inference_mode()
def logits(model, x):
    return model.eval()(x)


def assert_same_function_fewer_channels(masked, removed, x):
    """Same logits on real inputs, fewer parameters and FLOPs."""
    assert torch.allclose(logits(masked, x), logits(removed, x), rtol=1e-4, atol=1e-5)
    assert measure.count_params(removed) < measure.count_params(masked)
    assert measure.flops(removed, x[:1])[0] < measure.flops(masked, x[:1])[0]


def same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("suite", ["mlp", "mnist"])
def test_filter_l1_removes_the_weakest_filters_keeping_the_function(make_context, suite):
    ctx = make_context(**SMALL[suite])
    model, example = ctx.pretrained(), example_input(ctx)
    plan = filters_to_remove(model, example, 0.5)
    layers = dict(model.named_modules())
    for name, gone in plan.items():
        norms = layers[name].weight.detach().flatten(1).abs().sum(1)
        kept = [c for c in range(len(norms)) if c not in gone]
        assert len(gone) == len(norms) // 2 and norms[gone].max() <= norms[kept].min()
    masked = zero_channels(copy.deepcopy(model), example, plan)
    removed = remove_channels(copy.deepcopy(model), example, plan)
    assert_same_function_fewer_channels(masked, removed, real_inputs(ctx))
    widths = [m.weight.shape for m in removed.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    assert widths[0][1] == model[1 if suite == "mlp" else 0].weight.shape[1]  # inputs kept
    assert widths[-1][0] == 10  # classifier outputs kept


def test_filter_l1_on_resnet20_halves_channels_and_is_faster(make_context):
    ctx = make_context(**TINY_CIFAR)
    dense = ctx.pretrained()
    example, x = example_input(ctx), real_inputs(ctx)
    plan = filters_to_remove(dense, example, 0.5)
    removed = remove_channels(copy.deepcopy(dense), example, plan)
    assert_same_function_fewer_channels(zero_channels(copy.deepcopy(dense), example, plan), removed, x)

    model = FilterL1(ratio=0.5).run(ctx)
    assert ctx.figures["channels_removed"]["layers.8.conv1"] == 32 and ctx.figures["channels_removed"]["fc"] == 0
    params, flops = measure.count_params(model), measure.flops(model, x[:1])[0]
    assert 0.2 < params / measure.count_params(dense) < 0.5
    assert flops < 0.4 * measure.flops(dense, x[:1])[0]
    # The CPU is shared with other work, and two threads contending with it time both models at
    # about the same: time on one thread, alternating the models, and keep each one's best median.
    batch, threads = ctx.preprocess.normalize(ctx.data.test.x[:64]), torch.get_num_threads()
    timings = {dense: [], model: []}
    torch.set_num_threads(1)
    try:
        for _ in range(2):
            for m in timings:
                timings[m].append(measure.latency_ms(m, batch, min_run_time=0.2)[0])
    finally:
        torch.set_num_threads(threads)
    dense_ms, pruned_ms = min(timings[dense]), min(timings[model])
    print(f"ResNet-20 CPU latency, batch 64, 1 thread: dense {dense_ms:.1f} ms, filter-l1 50% {pruned_ms:.1f} ms")
    assert pruned_ms < 0.8 * dense_ms  # about 0.45 measured


def test_slimming_needs_batchnorm(make_context):
    with pytest.raises(NotApplicable, match="slimming needs BatchNorm layers; suite mlp's model has none"):
        Slimming().run(make_context(suite="mlp"))


def test_slimming_removes_the_requested_fraction_of_bn_channels(make_context):
    ctx = make_context(**TINY_CIFAR)
    model = Slimming(ratio=0.5).run(ctx)
    dense = ctx.new_model()
    total = sum(bn.num_features for bn in batchnorms(dense))
    kept = sum(bn.num_features for bn in batchnorms(model))
    assert abs(kept / total - 0.5) <= 7 / total  # a residual channel spans up to 7 BatchNorms
    assert ctx.figures["bn_channels_removed_fraction"] == pytest.approx(1 - kept / total)
    assert measure.count_params(model) < 0.6 * measure.count_params(dense)


def test_slimming_keeps_the_function_when_removing(make_context):
    ctx = make_context(**TINY_CIFAR)
    model, example = ctx.pretrained(), example_input(ctx)
    plan = smallest_scales(model, example, 0.3)
    scales = {id(bn): bn.weight.detach().abs() for bn in batchnorms(model)}
    masked = zero_channels(copy.deepcopy(model), example, plan)
    removed = remove_channels(copy.deepcopy(model), example, plan)
    assert_same_function_fewer_channels(masked, removed, real_inputs(ctx))
    # the removed channels are the small-scale ones: zeroed gammas are smaller on average than kept ones
    zeroed = torch.cat([s[bn.weight == 0] for bn, s in zip(batchnorms(masked), scales.values())])
    survived = torch.cat([s[bn.weight != 0] for bn, s in zip(batchnorms(masked), scales.values())])
    assert zeroed.mean() < survived.mean()


def test_gating_folds_open_gates_and_removes_closed_channels(make_context):
    ctx = make_context(**SMALL["mnist"])
    model, example = ctx.new_model(), example_input(ctx)
    gates = add_gates(model, example)
    ctx.train(model, epochs=1)
    assert all(g.logit.detach().std() > 0 for g in gates.values())  # the gates trained
    with torch.no_grad():  # close about half of the channels, at random
        for g in gates.values():
            g.logit.copy_(torch.randn(len(g.logit), generator=torch.Generator().manual_seed(0)))
    plan = closed_channels(gates)
    assert all(0 < len(gone) < len(gates[name].logit) for name, gone in plan.items())
    masked, masked_gates = copy.deepcopy((model, gates))
    with torch.no_grad():
        for name, gone in plan.items():
            masked_gates[name].logit[gone] = -float("inf")  # gate exactly 0
    x = real_inputs(ctx)
    # before folding: a deep copy shares the parametrized class that folding the original edits
    expected = logits(masked, x)
    removed = remove_channels(fold_gates(model), example, plan)
    assert torch.allclose(expected, logits(removed, x), rtol=1e-4, atol=1e-5)
    plain = ctx.new_model()
    assert [type(m) for m in removed.modules()] == [type(m) for m in plain.modules()]  # no gates left
    assert measure.count_params(removed) < measure.count_params(plain)
    assert measure.flops(removed, x[:1])[0] < measure.flops(plain, x[:1])[0]


def test_gating_run_removes_units(make_context):
    ctx = make_context(suite="mlp", epochs=2)
    model = Gating(penalty=0.01, gate_lr=0.2).run(ctx)  # 30 steps: a fast gate rate closes gates this soon
    removed = ctx.figures["channels_removed"]
    assert 0 < removed["1"] < 300 and 0 < removed["3"] < 100 and removed["5"] == 0
    widths = [m.weight.shape[0] for m in model if isinstance(m, nn.Linear)]
    assert widths == [300 - removed["1"], 100 - removed["3"], 10]
    assert [type(m) for m in model.modules()] == [type(m) for m in ctx.new_model().modules()]
    assert ctx.train_epochs == 3  # gated training, then fine-tuning


@pytest.mark.parametrize("method, kwargs", [(Gating, dict(suite="mlp")), (FilterL1, dict(suite="mlp")),
                                            (Slimming, TINY_CIFAR)])
def test_seeds_repeat(make_context, method, kwargs):
    a, b = method().run(make_context(**kwargs)), method().run(make_context(**kwargs))
    assert same_weights(a, b)
