"""The unstructured pruning family (random, magnitude, imp, lottery, gmp) on tiny real MNIST runs.

A `Spy` wraps ctx.train to see, independently of what a method reports, the weights and
torch.nn.utils.prune masks as the forward pass sees them: at the start of every training and
after every optimizer step.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from bench.registry import METHODS, ParameterError, discover
from bench.sparsity import prunable_weights, weight_sparsity
from methods.gmp import schedule

discover()

TARGET = 0.9
CASES = [
    ("random", {}),
    ("magnitude", {}),
    ("magnitude", {"scope": "layer"}),
    ("imp", {"rounds": 3}),
    ("lottery", {"rounds": 2, "epochs_per_round": 1}),
    ("gmp", {"dt": 3}),
    ("gmp", {"dt": 3, "scope": "layer"}),
]


def snapshot(model: nn.Module) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(every tensor as the forward pass sees it, the prune masks), keyed like a plain state dict."""
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    masks = {k[:-5]: v for k, v in state.items() if k.endswith("_mask")}
    seen = {k: v for k, v in state.items() if not k.endswith("_mask") and not k.endswith("_orig")}
    seen.update({k: state[k + "_orig"] * m for k, m in masks.items()})
    return seen, masks


def mask_sparsity(masks: dict[str, torch.Tensor]) -> float:
    zeros = sum(int((m == 0).sum()) for m in masks.values())
    return zeros / sum(m.numel() for m in masks.values()) if masks else 0.0


def same_masks(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


class Spy:
    """Replaces ctx.train with a wrapper that records snapshots: `starts` at the start of each
    training, `last_change` right after the masks last changed, and `steps` the mask sparsity
    after every optimizer step as (training call, step, sparsity)."""

    def __init__(self, ctx):
        self.starts: list[tuple[dict, dict]] = []
        self.last_change: tuple[dict, dict] | None = None
        self.steps: list[tuple[int, int, float]] = []
        self._train = ctx.train
        ctx.train = self.train

    def _see(self, model: nn.Module) -> tuple[dict, dict]:
        snap = snapshot(model)
        if self.last_change is None or not same_masks(snap[1], self.last_change[1]):
            self.last_change = snap
        return snap

    def train(self, model, epochs, *, after_step=None, **kwargs):
        call = len(self.starts)
        self.starts.append(self._see(model))

        def watch(m: nn.Module, step: int) -> None:
            if after_step is not None:
                after_step(m, step)
            self.steps.append((call, step, mask_sparsity(self._see(m)[1])))

        self._train(model, epochs, after_step=watch, **kwargs)


def run_method(ctx, name: str, **params) -> nn.Module:
    return METHODS[name].build({"sparsity": TARGET, **params}).run(ctx)


def assert_plain(model: nn.Module) -> None:
    """No torch.nn.utils.prune leftovers: plain Parameters, no *_orig / *_mask, no hooks."""
    assert not any(k.endswith(("_orig", "_mask")) for k in model.state_dict())
    for module in model.modules():
        assert not module._forward_pre_hooks
    for module, name in prunable_weights(model):
        assert type(module._parameters[name]) is nn.Parameter


@pytest.mark.parametrize(("name", "params"), CASES, ids=[f"{n}-{p.get('scope', 'global')}" for n, p in CASES])
def test_prunes_to_target_holds_mask_and_is_reproducible(make_context, name, params):
    ctx = make_context(epochs=2, finetune_epochs=1)
    spy = Spy(ctx)
    model = run_method(ctx, name, **params)

    assert abs(weight_sparsity(model) - TARGET) < 0.005
    if params.get("scope") == "layer":
        for module, w in prunable_weights(model):
            assert abs(float((getattr(module, w) == 0).float().mean()) - TARGET) < 0.005
    assert_plain(model)

    # Every prunable weight was masked, and each weight masked by the last mask update is still
    # zero at the end, while the surviving weights went on training after that update.
    seen, masks = spy.last_change
    assert set(masks) == {k for k in model.state_dict() if k.endswith("weight")}
    final = model.state_dict()
    for key, mask in masks.items():
        assert torch.all(final[key][mask == 0] == 0)
    assert any(not torch.equal(final[k][m == 1], seen[k][m == 1]) for k, m in masks.items())

    again = run_method(make_context(epochs=2, finetune_epochs=1), name, **params).state_dict()
    assert final.keys() == again.keys() and all(torch.equal(final[k], again[k]) for k in final)


def test_magnitude_and_gmp_reject_unknown_scope():
    for name in ("magnitude", "gmp"):
        with pytest.raises(ValueError, match=f"method '{name}' parameter 'scope': expected one of global, layer, "
                                             "got 'channel'"):
            METHODS[name].build({"scope": "channel"})
    assert issubclass(ParameterError, ValueError)  # so `bench run` stops before training, exit 2


def test_imp_prunes_geometrically_and_pays_for_its_rounds(make_context):
    ctx = make_context(epochs=2, finetune_epochs=1)
    spy = Spy(ctx)
    run_method(ctx, "imp", rounds=3)
    expected = [1 - (1 - TARGET) ** (r / 3) for r in (1, 2, 3)]
    assert ctx.figures["round_sparsity"] == pytest.approx(expected, abs=1e-4)
    # each round's retraining starts from exactly that round's mask
    assert len(spy.starts) == 3
    for (_, masks), sparsity in zip(spy.starts, expected):
        assert mask_sparsity(masks) == pytest.approx(sparsity, abs=1e-4)
    assert ctx.train_epochs == 2 + 3 * 1  # dense + rounds * fine-tuning


def test_gmp_follows_its_cubic_schedule(make_context):
    ctx = make_context(epochs=2, finetune_epochs=1)  # 15 steps an epoch, 45 in all
    spy = Spy(ctx)
    run_method(ctx, "gmp", dt=3, initial_sparsity=0.2)
    begin, end = int(0.1 * 45), int(0.7 * 45)
    applied = ctx.figures["gmp_schedule"]
    steps = [s for s, _ in applied]
    assert steps == [*range(begin, end, 3), end]
    for step, sparsity in applied:
        assert abs(sparsity - schedule(step, final=TARGET, initial=0.2, begin=begin, end=end)) < 0.005
    values = [s for _, s in applied]
    assert values == sorted(values) and values[0] == pytest.approx(0.2, abs=1e-4)
    assert values[-1] == pytest.approx(TARGET, abs=1e-4)
    assert schedule(end + 100, final=TARGET, initial=0.2, begin=begin, end=end) == TARGET

    # What the forward pass actually saw after each step: the latest scheduled value, unchanged
    # between updates, unmasked before the first one, and one training of epochs + finetune_epochs.
    assert [(c, s) for c, s, _ in spy.steps] == [(0, s) for s in range(45)]
    current = 0.0
    for _, step, sparsity in spy.steps:
        if step in steps:
            current = dict(applied)[step]
        assert sparsity == pytest.approx(current, abs=1e-6)
    assert ctx.train_epochs == 3


def test_gmp_schedule_is_zhu_and_guptas_cubic_at_every_pruning_step():
    """Zhu & Gupta 2017, eq. (1): s_t = s_f + (s_i - s_f) (1 - (t - t0) / (n dt))^3 for
    t = t0, t0 + dt, ..., t0 + n dt; s_i before t0 and s_f after, and 7/8 of the way half way."""
    s_i, s_f, t0, dt, n = 0.1, 0.9, 100, 50, 8
    end = t0 + n * dt
    for k in range(n + 1):
        expected = s_f + (s_i - s_f) * (1 - k * dt / (n * dt)) ** 3
        assert schedule(t0 + k * dt, final=s_f, initial=s_i, begin=t0, end=end) == pytest.approx(expected)
    assert schedule(0, final=s_f, initial=s_i, begin=t0, end=end) == pytest.approx(s_i)
    assert schedule(end + 1, final=s_f, initial=s_i, begin=t0, end=end) == pytest.approx(s_f)
    half = schedule(t0 + n * dt // 2, final=s_f, initial=s_i, begin=t0, end=end)
    assert (half - s_i) / (s_f - s_i) == pytest.approx(7 / 8)


def test_lottery_rewinds_to_the_initialization_and_reinit_keeps_the_mask(make_context):
    ctx = make_context(epochs=1, finetune_epochs=1)
    spy = Spy(ctx)
    run_method(ctx, "lottery", rounds=2)
    assert ctx.figures["round_sparsity"] == pytest.approx([1 - 0.1 ** 0.5, TARGET], abs=1e-4)
    assert len(spy.starts) == 3 and ctx.train_epochs == 3  # 2 rounds + the ticket, 1 epoch each
    ticket, masks = spy.starts[-1]
    init = ctx.new_model().state_dict()
    for key, value in init.items():
        expected = value * masks[key] if key in masks else value
        assert torch.equal(ticket[key], expected), key

    ctx2 = make_context(epochs=1, finetune_epochs=1)
    spy2 = Spy(ctx2)
    run_method(ctx2, "lottery", rounds=2, reinit=True)
    fresh, fresh_masks = spy2.starts[-1]
    assert same_masks(fresh_masks, masks)
    for key in init:
        assert not torch.equal(fresh[key], ticket[key]), key
        if key in masks:
            assert torch.all(fresh[key][masks[key] == 0] == 0)


def test_lottery_late_rewinding_goes_back_to_epoch_k_of_the_first_training(make_context):
    ctx = make_context(epochs=2, finetune_epochs=1)
    spy = Spy(ctx)
    run_method(ctx, "lottery", rounds=1, rewind_epoch=1)
    ticket, masks = spy.starts[-1]

    # The same first training, done by hand, with its state kept after epoch 1.
    ref = make_context(epochs=2, finetune_epochs=1)
    model, kept = ref.new_model(), {}

    def keep(m: nn.Module, step: int) -> None:
        if step == ref.steps_per_epoch - 1:
            kept.update({k: v.detach().clone() for k, v in m.state_dict().items()})

    ref.train(model, 2, after_step=keep)
    init = ref.new_model().state_dict()
    for key, value in kept.items():
        expected = value * masks[key] if key in masks else value
        assert torch.equal(ticket[key], expected), key
        assert not torch.equal(ticket[key], init[key] * masks.get(key, 1)), key  # not the init


def test_random_pruning_is_worse_than_magnitude_at_95_percent(make_context):
    accuracy = {}
    for name in ("random", "magnitude"):
        ctx = make_context(limit_train=6000, limit_test=2000, epochs=2, finetune_epochs=1)
        accuracy[name] = ctx.evaluate(run_method(ctx, name, sparsity=0.95))
    assert accuracy["random"] < accuracy["magnitude"] - 0.03, accuracy


@pytest.mark.parametrize("name", ["magnitude", "static", "lottery"])
def test_masked_lenet5_keeps_the_dense_channels_last_layout(make_context, name):
    """LeNet-5's first weight has one input channel, where channels-last and NCHW strides are both
    "contiguous" and orig * mask came out NCHW: the convolutions then wrote NCHW, and masked
    models trained and ran 2x slower than dense. Checked while masked and after folding."""
    ctx = make_context(suite="mnist", limit_train=512, limit_test=256, epochs=1, finetune_epochs=1,
                       warmup_epochs=0)
    dense_strides = [m.weight.stride() for m, _ in prunable_weights(ctx.new_model())]
    x = ctx.preprocess.normalize(ctx.data.test.x[:4])
    during = []
    train = ctx.train

    def spy(model, epochs, **kw):
        train(model, epochs, **kw)
        model(x)  # the prune hooks recompute each masked weight
        during.append(([m.weight.stride() for m, _ in prunable_weights(model)], model[0](x).stride()))

    ctx.train = spy
    params = {"rounds": 1, "epochs_per_round": 1} if name == "lottery" else {}
    model = METHODS[name].build({"sparsity": 0.9, **params}).run(ctx)
    assert during and all(strides == dense_strides for strides, _ in during)
    assert all(out[1] == 1 for _, out in during)  # the first convolution writes channels-last
    assert [m.weight.stride() for m, _ in prunable_weights(model)] == dense_strides
    assert model[0](x).stride()[1] == 1
