"""Sparse-training methods (l1, snip, static, set, rigl) and their shared helpers, on real MNIST."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bench.models import build_model
from bench.registry import METHODS, discover
from bench.sparsity import DynamicMasks, erk_densities, prunable_weights, random_masks, weight_sparsity

discover()
TOL = 0.005  # sparsity within 0.5 points of the target


def spy_train(ctx, after_step=None):
    """Wrap ctx.train: keep the prune masks each training phase starts with, and call
    after_step(model, step) after the method's own after_step hook."""
    phases = []
    original = ctx.train

    def train(model, epochs, **kw):
        phases.append({name: buf.clone() for name, buf in model.named_buffers() if name.endswith("weight_mask")})
        if after_step is not None:
            inner = kw.get("after_step")

            def hook(m, step):
                if inner is not None:
                    inner(m, step)
                after_step(m, step)

            kw["after_step"] = hook
        original(model, epochs, **kw)

    ctx.train = train
    return phases


def assert_plain(model: nn.Module):
    """No leftover reparametrization: the state dict of a fresh model, no pruning hooks."""
    names = set(model.state_dict())
    assert not any(n.endswith(("weight_orig", "weight_mask")) for n in names)
    assert all(not m._forward_pre_hooks for m in model.modules())
    assert all(isinstance(getattr(m, n), nn.Parameter) for m, n in prunable_weights(model))


@pytest.mark.parametrize("name", ["lenet300", "lenet5"])
@pytest.mark.parametrize("sparsity", [0.5, 0.9, 0.98])
def test_erk_densities_match_target_cap_at_one_and_favour_small_layers(name, sparsity):
    model = build_model(name, {}, 10, in_channels=1)
    sizes = [getattr(m, n).numel() for m, n in prunable_weights(model)]
    dens = erk_densities(model, sparsity)
    assert abs(sum(d * s for d, s in zip(dens, sizes)) / sum(sizes) - (1 - sparsity)) < TOL
    assert all(0 < d <= 1 for d in dens)
    # larger layers get lower density (among layers of one kind: ERK counts a conv kernel's
    # 5x5 in its dims, which makes LeNet-5's 50x20x5x5 conv a bit sparser than its 800x500 fc)
    kinds = [(type(m), s) for (m, _), s in zip(prunable_weights(model), sizes)]
    for (ki, si), di in zip(kinds, dens):
        for (kj, sj), dj in zip(kinds, dens):
            if ki is kj and si > sj:
                assert di < dj or di == dj == 1
    if name == "lenet300" and sparsity == 0.9:
        assert dens[2] == 1.0  # 100x10 would exceed 1: capped dense, the rest re-scaled
        assert dens[0] == pytest.approx((26620 - 1000) / (1084 + 400) * 1084 / 235200)
    masks = random_masks(model, dens, torch.Generator().manual_seed(0))
    assert [int(m.sum()) for m in masks] == [round(d * s) for d, s in zip(dens, sizes)]
    assert abs(1 - sum(int(m.sum()) for m in masks) / sum(sizes) - sparsity) < TOL


def test_dynamic_masks_drop_smallest_grow_best_and_start_grown_at_zero():
    layer = nn.Linear(4, 2, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1., -2., 3., 4.], [-5., 6., 7., 8.]]))
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]], dtype=torch.bool)
    score = torch.tensor([[0., 0., 0., 9.], [0., 0., 5., 1.]])  # zero on the active weights
    masks = DynamicMasks(layer, [mask], dt=2, end_step=5, drop_fraction=lambda step: 0.4,
                         grow_score=lambda w, g: g.abs())
    assert torch.equal(layer.weight != 0, mask)  # masked at once

    def step(i, scale):
        layer.weight.grad = scale * score
        masks.after_backward(layer, i)
        assert (layer.weight.grad[~masks.masks[0]] == 0).all()  # masked weights get no update
        with torch.no_grad():
            layer.weight.sub_(0.1 * layer.weight.grad)
        masks.after_step(layer, i)

    step(0, 1.0)
    step(1, 1.0)
    assert masks.trace == [] and torch.equal(masks.masks[0], mask)  # step 0 is not an update
    step(2, 1.0)
    # 2 of 5 active dropped (|1|, |-2|, the smallest), 2 grown where the score is largest (9, 5)
    assert masks.masks[0].tolist() == [[False, False, True, True], [True, True, True, False]]
    assert masks.trace == [{"step": 2, "sparsity": 0.375, "grown": 2}]
    assert layer.weight[0, 0] == 0 and layer.weight[0, 1] == 0
    assert layer.weight[0, 3] == 0 and layer.weight[1, 2] == 0  # grown at zero
    step(3, 0.01)
    grown = layer.weight[0, 3].item(), layer.weight[1, 2].item()
    assert grown == pytest.approx((-0.009, -0.005))
    step(4, 0.01)  # drops the two small new weights, and regrows them: they keep their values
    assert masks.trace[-1] == {"step": 4, "sparsity": 0.375, "grown": 0}
    assert layer.weight[0, 3] != 0 and layer.weight[1, 2] != 0
    step(5, 0.01)
    assert len(masks.trace) == 2  # no update at or after end_step


@pytest.mark.parametrize("method", ["l1", "snip", "static"])
def test_pruned_weights_stay_zero_plain_model_and_same_seed_same_result(make_context, method):
    runs = []
    for _ in range(2):
        ctx = make_context(limit_train=640, epochs=1, finetune_epochs=1)
        phases = spy_train(ctx)
        model = METHODS[method](sparsity=0.9).run(ctx)
        runs.append((model, [p for p in phases if p], ctx))
    (model, phases, ctx), (again, phases_again, ctx_again) = runs
    assert len(phases) == 1  # pruned once, then trained with the mask held
    assert_plain(model)
    assert abs(weight_sparsity(model) - 0.9) < TOL
    init = ctx.new_model()
    for (layer, kept), (m, n), (m0, _) in zip(phases[0].items(), prunable_weights(model), prunable_weights(init)):
        w = getattr(m, n)
        assert (w[kept == 0] == 0).all(), f"{method}: a pruned weight of {layer} came back"
        assert not torch.equal(w[kept == 1], m0.weight[kept == 1])  # the kept weights trained
    assert ctx.train_epochs == 2  # epochs + finetune_epochs, like dense + fine-tuning
    # the same seed gives the same mask, the same weights and the same figures
    assert all(torch.equal(a, b) for a, b in zip(phases[0].values(), phases_again[0].values()))
    sd, sd_again = model.state_dict(), again.state_dict()
    assert sd.keys() == sd_again.keys() and all(torch.equal(sd[k], sd_again[k]) for k in sd)
    assert ctx.figures == ctx_again.figures


def test_snip_keeps_the_highest_connection_sensitivity(make_context):
    ctx = make_context(limit_train=500, epochs=1, finetune_epochs=0)
    phases = spy_train(ctx)
    METHODS["snip"](sparsity=0.95).run(ctx)
    init = ctx.new_model()
    (x, y), = ctx.calibration_batches(n=1)
    F.cross_entropy(init(x), y).backward()
    scores = torch.cat([(m.weight.grad * m.weight).abs().flatten() for m, _ in prunable_weights(init)])
    kept = torch.cat([mask.flatten() for mask in phases[0].values()]).bool()
    assert kept.sum() == round(0.05 * kept.numel())
    assert scores[kept].min() >= scores[~kept].max()  # a global top-k of |g * w|
    magnitude = torch.cat([m.weight.abs().flatten() for m, _ in prunable_weights(init)])
    assert (magnitude.topk(int(kept.sum())).indices.sort().values != kept.nonzero().flatten()).any()
    assert ctx.figures["layer_density"] == pytest.approx([float(m.float().mean()) for m in phases[0].values()])


def test_static_masks_follow_erk_and_differ_by_seed(make_context):
    kept = []
    for seed in (0, 1):
        ctx = make_context(seed=seed, limit_train=300, epochs=1, finetune_epochs=0)
        phases = spy_train(ctx)
        METHODS["static"](sparsity=0.8).run(ctx)
        kept.append(list(phases[0].values()))
    model = build_model("lenet300", {}, 10, in_channels=1)
    dens = erk_densities(model, 0.8)
    assert [int(m.sum()) for m in kept[0]] == [round(d * m.numel()) for d, m in zip(dens, kept[0])]
    assert any((a != b).any() for a, b in zip(*kept))


def l1_norm(model: nn.Module) -> float:
    return sum(float(m.weight.detach().abs().sum()) for m, _ in prunable_weights(model))


def test_l1_shrinks_weights_versus_dense_training_and_records_penalty_sparsity(make_context):
    budget = dict(limit_train=1280, epochs=2, finetune_epochs=0)
    ctx = make_context(**budget)
    after_penalty = []
    original = ctx.train

    def train(model, epochs, **kw):
        original(model, epochs, **kw)
        after_penalty.append((l1_norm(model), weight_sparsity(model)))

    ctx.train = train
    # 20 steps instead of the suite's ~9,000: a penalty scaled up to show in so few steps
    model = METHODS["l1"](sparsity=0.9, penalty=1e-3).run(ctx)
    dense_ctx = make_context(**budget)
    dense = dense_ctx.new_model()
    dense_ctx.train(dense, epochs=budget["epochs"])  # same seed, batches and steps, no penalty
    assert after_penalty[0][0] < 0.9 * l1_norm(dense)
    assert after_penalty[0][1] < 0.01  # the penalty alone leaves (almost) no exact zeros
    small = sum(int((m.weight.abs() < 1e-3).sum()) for m, _ in prunable_weights(dense)) / 266_200
    assert ctx.figures["penalty_sparsity"] > small + 0.05  # more near-zero weights than dense
    assert abs(weight_sparsity(model) - 0.9) < TOL
    assert ctx.train_epochs == 2


@pytest.mark.parametrize("method", ["set", "rigl"])
def test_dynamic_sparsity_is_constant_through_updates_and_the_mask_moves(make_context, method):
    ctx = make_context(limit_train=1280, epochs=2, finetune_epochs=1)  # 10 steps an epoch
    per_step, patterns = [], []

    def watch(model, step):
        per_step.append((step, weight_sparsity(model)))
        if step in (0, 29):
            patterns.append(torch.cat([(m.weight != 0).flatten() for m, _ in prunable_weights(model)]))

    spy_train(ctx, after_step=watch)
    model = METHODS[method](sparsity=0.9, dt=4).run(ctx)
    trace = ctx.figures["mask_updates"]
    assert [t["step"] for t in trace] == [4, 8, 12, 16, 20]  # none after 0.75 * 30 steps
    assert all(abs(t["sparsity"] - 0.9) < TOL for t in trace)
    assert len(per_step) == 30
    updates = {t["step"] for t in trace}
    for step, s in per_step:
        assert s >= 0.9 - TOL, f"masked weights revived at step {step}"
        if step not in updates:  # right after an update the grown weights are still exactly zero
            assert abs(s - 0.9) < TOL, f"sparsity {s} at step {step}"
    assert sum(t["grown"] for t in trace) > 1000  # connections were dropped and regrown
    first, last = patterns
    assert (first & ~last).sum() > 1000  # the final topology is not the initial one
    assert_plain(model)
    assert abs(weight_sparsity(model) - 0.9) < TOL
    if method == "rigl":  # cosine-decayed drop fraction: fewer connections move later
        assert trace[0]["grown"] > 2 * trace[-1]["grown"]


@pytest.mark.parametrize("method", ["set", "rigl"])
def test_dynamic_sparsity_same_seed_gives_identical_models(make_context, method):
    runs = []
    for _ in range(2):
        ctx = make_context(limit_train=300, epochs=2, finetune_epochs=0)  # 4 steps, updates at 1, 2
        runs.append((METHODS[method](sparsity=0.9, dt=1).run(ctx).state_dict(), ctx.figures))
    (a, fa), (b, fb) = runs
    assert len(fa["mask_updates"]) == 2 and sum(t["grown"] for t in fa["mask_updates"]) > 0
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert fa == fb


def test_rigl_drop_fraction_is_the_papers_cosine_and_set_keeps_its_own():
    """Evci et al. 2020, eq. (1): f(t) = alpha/2 * (1 + cos(pi t / T_end)): alpha at the start,
    half of it half way, zero at T_end. SET's fraction stays constant."""
    rigl, set_ = METHODS["rigl"](drop_fraction=0.3), METHODS["set"](drop_fraction=0.3)
    end = 1000
    assert rigl.drop_at(0, end) == pytest.approx(0.3)
    assert rigl.drop_at(end // 2, end) == pytest.approx(0.15)
    assert rigl.drop_at(end, end) == pytest.approx(0.0, abs=1e-12)
    for t in range(0, end + 1, 125):
        assert rigl.drop_at(t, end) == pytest.approx(0.15 * (1 + math.cos(math.pi * t / end)))
        assert set_.drop_at(t, end) == 0.3


def test_rigl_grows_by_the_gradient_of_the_dense_weight(make_context, monkeypatch):
    """RigL ranks the inactive connections by |dL/dw| as if they were present. DynamicMasks holds
    the masked weights at zero (not torch.nn.utils.prune's weight_orig * mask), so their
    gradient is the dense one; behind a pruning hook it would be zero at every inactive
    position, and growth would pick arbitrary positions."""
    ctx = make_context(limit_train=1280, epochs=1, finetune_epochs=0)  # 10 steps: one update, at 4
    rigl, seen = METHODS["rigl"], []
    grow_score = rigl.grow_score

    def spy(self, weight, grad, generator):
        seen.append((weight.detach().clone(), grad.clone()))
        return grow_score(self, weight, grad, generator)

    monkeypatch.setattr(rigl, "grow_score", spy)
    rigl(sparsity=0.9, dt=4).run(ctx)
    assert len(seen) == 3  # LeNet-300-100's three layers, at the one update
    sparse_layers = [(w, g) for w, g in seen if (w == 0).any()]
    assert len(sparse_layers) >= 2  # ERK keeps the 100x10 classifier dense at 90%
    for weight, grad in sparse_layers:
        inactive = weight == 0
        # nonzero nearly everywhere: the first layer's exceptions are pixels that are zero in the batch
        assert (grad[inactive] != 0).float().mean() > 0.5
        assert grad[inactive].abs().mean() > 0.1 * grad[~inactive].abs().mean()
