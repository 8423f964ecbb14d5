"""Fused training (bench.fused) against the same runs trained one at a time, on real MNIST subsets.

Tolerances: a fused run computes the same function as its own model, but through batched
matmuls and grouped convolutions whose summation order differs from the plain kernels', so
each step's gradients differ by float rounding (~1e-7 relative). Over the few dozen SGD steps
of these tests LeNet-300-100 and LeNet-5 weights stay within 4e-9 to 3e-8 of their own
training (measured), so WEIGHTS is 1e-6; a real difference (a wrong batch, mask, learning
rate or hook) moves weights by 1e-3 to 1e-1 within a step. Masks, step counters and anything
integer must be exactly equal. The ResNet test explains its own, looser, tolerance. Test
accuracy must agree to within two images of the 1,000 (a weight difference of 1e-8 can flip a
borderline argmax, rarely).
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import prune

from bench.errors import Interrupted
from bench import fused as fusion
from bench.fused import Coordinator, FitCall, FusedResult, FusedStepError, NotFusable, fit_group
from bench.models import resnet20
from bench.registry import METHODS, discover
from bench.sparsity import (DynamicMasks, erk_densities, make_permanent, prunable_weights, prune_unstructured,
                            random_masks)
from bench.train import DivergedError, TrainResult
from methods.sft import TopKGradients

discover()
torch.set_num_threads(1)

WEIGHTS = 1e-6
ACCURACY = 2 / 1000


def call(ctx, model, *, seed=0, lr=None, epochs=1, log=None, **hooks) -> FitCall:
    """A fit call for ctx's data and budget, with its own generator."""
    return FitCall(model, ctx.data.train, ctx.preprocess, ctx.budget, epochs=epochs,
                   lr=ctx.budget.lr if lr is None else lr, generator=torch.Generator().manual_seed(seed),
                   log=log or (lambda msg: None), **hooks)


def assert_same_model(a: nn.Module, b: nn.Module, atol: float = WEIGHTS) -> None:
    """Same state: floats within atol, masks and integers exactly."""
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        if k.endswith("_mask") or not sa[k].is_floating_point():
            assert torch.equal(sa[k], sb[k]), k
        else:
            torch.testing.assert_close(sa[k], sb[k], rtol=0, atol=atol, msg=k)


def fused_and_alone(make_calls, keep_layout: bool = True):
    """Train make_calls() fused and a second make_calls() one at a time with fit: both results."""
    fused_calls, alone_calls = make_calls(), make_calls()
    fused = fit_group(fused_calls, keep_layout=keep_layout)
    alone = []
    for c in alone_calls:
        try:
            alone.append(c.fit_alone())
        except (Exception, KeyboardInterrupt) as e:  # noqa: BLE001 - compared with the fused run's error
            alone.append(e)
    return fused_calls, fused, alone_calls, alone


def assert_runs_match(fused_calls, fused, alone_calls, alone, ctx, atol: float = WEIGHTS) -> None:
    for fc, fr, ac, ar in zip(fused_calls, fused, alone_calls, alone):
        assert isinstance(fr, FusedResult), fr
        assert isinstance(ar, TrainResult)
        assert_same_model(fc.model, ac.model, atol)
        assert fr.final_loss == pytest.approx(ar.final_loss, abs=atol)
        images = ctx.steps_per_epoch * ctx.budget.batch_size
        assert abs(fr.final_train_accuracy - ar.final_train_accuracy) <= 2 / images
        assert abs(ctx.evaluate(fc.model) - ctx.evaluate(ac.model)) <= ACCURACY


def test_plain_lenet300_runs_with_different_seeds_and_rates_match_their_own_training(make_context):
    ctx = make_context("mlp", limit_train=1024)
    lrs = [0.05, 0.01, 0.1]

    def calls():
        return [call(ctx, ctx.new_model(seed=s), seed=s, lr=lr, epochs=2) for s, lr in enumerate(lrs)]

    fused_calls, fused, alone_calls, alone = fused_and_alone(calls)
    assert_runs_match(fused_calls, fused, alone_calls, alone, ctx)
    # Each run's share of the wall time: the shares add up to the group's time.
    assert all(r.fused_with == 3 for r in fused)
    assert sum(r.seconds for r in fused) == pytest.approx(fused[0].group_seconds, rel=0.05)
    # Every run has its own storage again, in its own layout.
    ptrs = {p.data_ptr() for c in fused_calls for p in c.model.parameters()}
    assert len(ptrs) == sum(len(list(c.model.parameters())) for c in fused_calls)
    assert all(p.grad is None for c in fused_calls for p in c.model.parameters())


@pytest.mark.parametrize("keep_layout", [True, False])
def test_lenet5_channels_last_runs_match_their_own_training(make_context, keep_layout):
    """Stacked in the models' layout (channels-last) or NCHW (--fuse-layout nchw), the runs
    train as alone and get their weights back in their own layout."""
    ctx = make_context("mnist", limit_train=512, precision="fp32")

    def calls():
        return [call(ctx, ctx.new_model(seed=s), seed=s) for s in range(2)]

    fused_calls, fused, alone_calls, alone = fused_and_alone(calls, keep_layout)
    assert_runs_match(fused_calls, fused, alone_calls, alone, ctx)
    conv = fused_calls[0].model[0].weight
    assert conv.is_contiguous(memory_format=torch.channels_last)
    assert fused_calls[0].model[2].weight.is_contiguous(memory_format=torch.channels_last)


def test_bf16_runs_train_alone_where_autocast_does_not_reach_vmapped_operators(make_context, monkeypatch):
    """Where bf16 autocast leaves a vmapped product in fp32 (the CPU's, torch 2.15), a fused bf16
    run would train in fp32 under a record that says bf16: such calls train alone, saying why."""
    ctx = make_context("mnist", limit_train=128, precision="bf16")
    monkeypatch.setattr(fusion, "autocast_reaches_vmap", lambda device_type: False)
    results = fit_group([call(ctx, ctx.new_model(seed=s), seed=s) for s in range(2)])
    assert all(isinstance(r, NotFusable) and "precision bf16" in str(r) and "would train in fp32" in str(r)
               for r in results), results


def test_the_autocast_probe_tells_what_autocast_does_to_a_fused_models_products(make_context):
    """The probe agrees with a fused LeNet-5's own pass: its logits' dtype under bf16 autocast."""
    ctx = make_context("mnist", limit_train=128)
    models = [ctx.new_model(seed=s) for s in range(2)]
    params, buffers = torch.func.stack_module_state(models)
    x = torch.zeros(2, 4, *ctx.data.train.x.shape[1:])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = torch.vmap(lambda p, b, x: torch.func.functional_call(models[0], (p, b), (x,)))(params, buffers, x)
    assert fusion.autocast_reaches_vmap("cpu") == (logits.dtype == torch.bfloat16)


def test_bf16_runs_train_fused_under_autocast_close_to_their_own_training(make_context, monkeypatch):
    """bf16 products are rounded to 8 bits of mantissa, so the kernels' different summation
    orders show at 1e-3 in the activations: weights agree to 1e-2 after an epoch. (Fused
    where autocast reached vmapped operators, as on CUDA; on this CPU the fused products stay
    fp32, the path the same.)"""
    ctx = make_context("mnist", limit_train=512, precision="bf16")
    monkeypatch.setattr(fusion, "autocast_reaches_vmap", lambda device_type: True)

    def calls():
        return [call(ctx, ctx.new_model(seed=s), seed=s) for s in range(2)]

    fused_calls, fused, alone_calls, alone = fused_and_alone(calls)
    for fc, ac, fr, ar in zip(fused_calls, alone_calls, fused, alone):
        for p, q in zip(fc.model.parameters(), ac.model.parameters()):
            torch.testing.assert_close(p, q, rtol=0, atol=1e-2)
        assert fr.final_loss == pytest.approx(ar.final_loss, abs=1e-2)


def small_resnet(seed: int) -> nn.Module:
    """ResNet-8 of width 8 (width 4 channels-last crashes torch 2.15's CPU backward by itself)."""
    torch.manual_seed(seed)
    return resnet20(num_classes=10, in_channels=1, width=8, depth=8).to(memory_format=torch.channels_last)


def test_resnet_runs_keep_their_own_batchnorm_statistics(make_context):
    """Two steps only, and weights within 1e-3: the stem convolution's gradient comes through
    BatchNorm's backward, which subtracts near-equal sums over 50,000 terms, so the kernels'
    summation order shows early: the same run trained alone in NCHW instead of channels-last
    differs from itself by 1e-4 to 5e-4 after two steps (measured), as much as fused does."""
    ctx = make_context("mnist", limit_train=128, precision="fp32", batch_size=64)

    def calls():
        return [call(ctx, small_resnet(s), seed=s, lr=lr) for s, lr in enumerate([0.05, 0.02, 0.1])]

    fused_calls, fused, alone_calls, alone = fused_and_alone(calls)
    assert_runs_match(fused_calls, fused, alone_calls, alone, ctx, atol=1e-3)
    bn = [c.model.stem[1] for c in fused_calls]
    assert int(bn[0].num_batches_tracked) == ctx.steps_per_epoch
    assert not torch.allclose(bn[0].running_mean, bn[1].running_mean)  # each run its own statistics


def magnitude_pruned(ctx, seed: int, sparsity: float) -> nn.Module:
    model = ctx.new_model(seed=seed)
    prune_unstructured(prunable_weights(model), prune.L1Unstructured, amount=sparsity)
    return model


def test_masks_held_by_pruning_hooks_and_by_dynamic_masks_match(make_context):
    """magnitude-style masks (torch.nn.utils.prune) at two sparsities, and SET-style dynamic
    masks (bench.sparsity, updated every 2 steps) for two seeds."""
    ctx = make_context("mlp", limit_train=1024)
    dynamic = {}

    def calls():
        out = [call(ctx, magnitude_pruned(ctx, 0, 0.5), seed=0), call(ctx, magnitude_pruned(ctx, 1, 0.9), seed=1)]
        for seed in (2, 3):
            model = ctx.new_model(seed=seed)
            g = torch.Generator().manual_seed(seed)
            masks = DynamicMasks(model, random_masks(model, erk_densities(model, 0.8), g), dt=2, end_step=6,
                                 drop_fraction=lambda step: 0.3, grow_score=lambda w, grad: grad.abs())
            dynamic.setdefault(seed, []).append(masks)
            out.append(call(ctx, model, seed=seed, after_backward=masks.after_backward, after_step=masks.after_step))
        return out

    fused_calls, fused, alone_calls, alone = fused_and_alone(calls)
    assert_runs_match(fused_calls, fused, alone_calls, alone, ctx)
    for seed, (fused_masks, alone_masks) in dynamic.items():
        assert len(fused_masks.trace) == 2
        assert fused_masks.trace == alone_masks.trace
        assert all(torch.equal(a, b) for a, b in zip(fused_masks.masks, alone_masks.masks))
    # The masked weights the pruning hooks keep are the run's own, as after its own forward pass.
    for c in fused_calls[:2]:
        layer = c.model[1]
        assert torch.equal(layer.weight, layer.weight_orig * layer.weight_mask)


def test_a_loss_that_reaches_the_parameters_directly_matches(make_context):
    """l1's loss adds a penalty on the model's own weights: its gradient reaches them outside
    the fused forward pass and is added to the fused gradient."""
    ctx = make_context("mlp", limit_train=1024)

    def l1_call(seed: int, penalty: float) -> FitCall:
        model = ctx.new_model(seed=seed)
        weights = [getattr(m, n) for m, n in prunable_weights(model)]

        def loss_fn(logits, y, x):
            return F.cross_entropy(logits, y) + penalty * torch.stack([w.abs().sum() for w in weights]).sum()

        return call(ctx, model, seed=seed, loss_fn=loss_fn)

    fused_calls, fused, alone_calls, alone = fused_and_alone(lambda: [l1_call(0, 1e-3), l1_call(1, 1e-4)])
    assert_runs_match(fused_calls, fused, alone_calls, alone, ctx)


def test_pruning_mid_training_restacks_and_matches(make_context):
    """gmp-style: after_step prunes at steps 2 and 5 (the model gains weight_orig and weight_mask,
    then its tensors are replaced); a dense run trains in the same group throughout."""
    ctx = make_context("mlp", limit_train=1024)
    applied = {}

    def gmp_call(seed: int, final: float) -> FitCall:
        model = ctx.new_model(seed=seed)
        params = prunable_weights(model)
        applied[seed] = []

        def update(model, step):
            if step in (2, 5):
                make_permanent(model)
                prune_unstructured(params, prune.L1Unstructured, amount=final * step / 5)
                applied[seed].append(step)

        return call(ctx, model, seed=seed, after_step=update)

    fused_calls, fused, alone_calls, alone = fused_and_alone(
        lambda: [gmp_call(0, 0.9), gmp_call(1, 0.5), call(ctx, ctx.new_model(seed=2), seed=2)])
    assert_runs_match(fused_calls, fused, alone_calls, alone, ctx)
    assert fused_calls[0].model[1].weight_mask.float().mean() < 0.2
    assert all(r.fused_with == 3 for r in fused)


@pytest.mark.parametrize("keep_layout", [True, False])
def test_tensors_made_by_pruning_mid_training_come_back_in_the_layout_they_have_alone(make_context, keep_layout):
    """Stacked NCHW (--fuse-layout nchw), a channels-last LeNet-5 pruned mid-training (gmp) got its
    weight_orig and weight_mask back NCHW: they were first seen as views of the NCHW stack, and
    their layout was read from there. Alone (and under keep_layout) they are channels-last, as the
    weight they replace, and the measured latency of such a record was of another layout."""
    ctx = make_context("mnist", limit_train=512, precision="fp32")

    def pruned_call(seed: int) -> FitCall:
        model = ctx.new_model(seed=seed)
        params = prunable_weights(model)

        def update(model, step):
            if step == 1:  # (of 4)
                prune_unstructured(params, prune.L1Unstructured, amount=0.5)

        return call(ctx, model, seed=seed, after_step=update)

    fused_calls, fused, alone_calls, alone = fused_and_alone(lambda: [pruned_call(0), pruned_call(1)], keep_layout)
    assert_runs_match(fused_calls, fused, alone_calls, alone, ctx)
    def layouts(model):  # the memory order (strides may differ in a dimension of size 1, which orders nothing)
        return {n: (t.is_contiguous(), t.is_contiguous(memory_format=torch.channels_last))
                for n, t in (*model.named_parameters(), *model.named_buffers())}

    for fc, ac in zip(fused_calls, alone_calls):
        assert layouts(fc.model) == layouts(ac.model)
    assert layouts(alone_calls[0].model)["2.weight_orig"] == (False, True)  # channels-last, alone


def test_runs_with_their_own_optimizers_match(make_context):
    """sft passes its own optimizer and sparsifies the gradients after the backward pass."""
    ctx = make_context("mlp", limit_train=1024)

    def sft_call(seed: int, density: float) -> FitCall:
        model = ctx.new_model(seed=seed)
        topk = TopKGradients(density, error_feedback=True, weight_decay=1e-4)
        return call(ctx, model, seed=seed, after_backward=topk,
                    optimizer=torch.optim.SGD(model.parameters(), lr=0.05 * (seed + 1)))

    fused_calls, fused, alone_calls, alone = fused_and_alone(lambda: [sft_call(0, 0.01), sft_call(1, 0.1)])
    assert_runs_match(fused_calls, fused, alone_calls, alone, ctx)


def test_a_diverging_run_fails_alone_and_the_others_are_unchanged(make_context):
    ctx = make_context("mlp", limit_train=1024)

    def calls():
        return [call(ctx, ctx.new_model(seed=s), seed=s, lr=lr, epochs=2) for s, lr in enumerate([0.05, 1e5, 0.01])]

    fused_calls, fused, alone_calls, alone = fused_and_alone(calls)
    assert isinstance(fused[1], DivergedError) and isinstance(alone[1], DivergedError)
    assert str(fused[1]) == str(alone[1])
    keep = [0, 2]
    assert_runs_match(*([x[i] for i in keep] for x in (fused_calls, fused, alone_calls, alone)), ctx)


def test_a_run_whose_optimizer_cannot_be_made_fails_alone_and_the_others_train_fused(make_context):
    """fit raises a run's invalid learning rate (torch's ValueError) before its first step. Fused,
    the error escaped fit_group: the coordinator answered every run of the task with a
    FusedStepError, blaming the code the runs share, and the sweep stopped fusing."""
    ctx = make_context("mlp", limit_train=1024)

    def calls():
        return [call(ctx, ctx.new_model(seed=s), seed=s, lr=lr) for s, lr in enumerate([0.05, -1.0, 0.01])]

    fused_calls, fused, alone_calls, alone = fused_and_alone(calls)
    assert type(fused[1]) is ValueError and str(fused[1]) == str(alone[1])
    keep = [0, 2]
    assert_runs_match(*([x[i] for i in keep] for x in (fused_calls, fused, alone_calls, alone)), ctx)
    assert all(fused[i].fused_with == 2 for i in keep)


class Boom(Exception):
    pass


@pytest.fixture
def cli_signals():
    """Ctrl-C handled as the `bench` command handles it, so that a KeyboardInterrupt raised by a
    run's own code is its failure, not the user's interrupt (bench.errors.stops_the_sweep)."""
    import signal

    from bench.cli import _interrupt

    before = signal.signal(signal.SIGINT, _interrupt)
    yield
    signal.signal(signal.SIGINT, before)


@pytest.mark.parametrize("error", [Boom, KeyboardInterrupt])
def test_a_raising_hook_fails_only_its_run(make_context, cli_signals, error):
    ctx = make_context("mlp", limit_train=1024)

    def explode(model, step):
        if step == 3:
            raise error("hook failed")

    def calls():
        return [call(ctx, ctx.new_model(seed=s), seed=s, **({"after_step": explode} if s == 1 else {}))
                for s in range(3)]

    fused_calls, fused, alone_calls, alone = fused_and_alone(calls)
    assert type(fused[1]) is error and type(alone[1]) is error
    assert all(p.data_ptr() != q.data_ptr() for p, q in zip(fused_calls[1].model.parameters(),
                                                           fused_calls[0].model.parameters()))
    assert_runs_match(*([x[i] for i in (0, 2)] for x in (fused_calls, fused, alone_calls, alone)), ctx)


class Scale(nn.Module):
    """A module with a scalar setting of its own, which a hook may change mid-training."""

    def __init__(self):
        super().__init__()
        self.factor = 1.0

    def forward(self, x):
        return self.factor * x


@pytest.mark.parametrize("changer", [0, 1])  # the stack's first run, whose module code runs the forward pass; another
@pytest.mark.parametrize("value", ["scalar", "array"])
def test_a_hook_that_changes_a_modules_setting_changes_its_own_run_only(make_context, changer, value):
    """A setting a hook changes mid-training is its own run's, whichever run of the stack it is.
    One replaced by a tensor of several values has no truth value to compare with: the per-step
    check raised 'Boolean value of Tensor with more than one value is ambiguous' out of
    fit_group, failing every run of the task, where fit trains on."""
    ctx = make_context("mlp", limit_train=1024)
    factor = 0.5 if value == "scalar" else torch.linspace(0.5, 1.0, 28)

    def change(model, step):
        if step == 2:
            model[0].factor = factor

    def model(seed):
        m = ctx.new_model(seed=seed)
        m.insert(0, Scale())
        return m

    def calls():
        return [call(ctx, model(s), seed=s, **({"after_step": change} if s == changer else {})) for s in range(3)]

    assert_runs_match(*fused_and_alone(calls), ctx)


class Counting(nn.Module):
    """A module whose forward pass counts its calls in a setting, without changing its output."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return x


def test_a_setting_the_forward_pass_changes_restacks_nothing(make_context, monkeypatch):
    """The stack's forward pass runs its first model's module code, which may count its calls in
    a setting: that is no hook's change. The per-step setting check took it for one whenever the
    first run had a hook, and re-stacked every run at every step (8 stackings in 8 steps)."""
    from bench import fused as fused_module

    ctx = make_context("mlp", limit_train=1024)
    builds = []
    build = fused_module._Group.build_stacks
    monkeypatch.setattr(fused_module._Group, "build_stacks", lambda self: (builds.append(1), build(self)))

    def model(seed):
        m = ctx.new_model(seed=seed)
        m.insert(0, Counting())
        return m

    def calls():
        return [call(ctx, model(s), seed=s, **({"after_step": lambda m, step: None} if s == 0 else {}))
                for s in range(3)]

    fused_calls, fused, alone_calls, alone = fused_and_alone(calls)
    assert_runs_match(fused_calls, fused, alone_calls, alone, ctx)
    assert len(builds) == 1


class FailingBackward(torch.autograd.Function):
    """A loss whose backward pass raises: the plugin's own autograd code failing."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        raise Boom("the loss's backward failed")


def test_a_loss_whose_backward_raises_fails_only_its_run(make_context):
    ctx = make_context("mlp", limit_train=1024)

    def failing_loss(logits, y, x):
        return FailingBackward.apply(F.cross_entropy(logits, y))

    def calls():
        return [call(ctx, ctx.new_model(seed=s), seed=s, **({"loss_fn": failing_loss} if s == 1 else {}))
                for s in range(3)]

    fused_calls, fused, alone_calls, alone = fused_and_alone(calls)
    assert type(fused[1]) is Boom and type(alone[1]) is Boom
    assert_runs_match(*([x[i] for i in (0, 2)] for x in (fused_calls, fused, alone_calls, alone)), ctx)


def test_a_loss_that_changes_its_logits_in_place_leaves_the_others_logits_alone(make_context):
    """Run 1's loss scales its logits in place (as fit lets it); run 0's loss saves its own logits
    for the backward pass (a logit penalty). Views of one shared tensor share its version counter:
    run 1's change failed run 0's backward ("modified by an inplace operation")."""
    ctx = make_context("mlp", limit_train=1024)

    def penalized(logits, y, x):
        return F.cross_entropy(logits, y) + 1e-2 * logits.pow(2).mean()

    def tempered(logits, y, x):
        return F.cross_entropy(logits.div_(2.0), y)

    def calls():
        return [call(ctx, ctx.new_model(seed=s), seed=s, loss_fn=loss) for s, loss in enumerate([penalized, tempered])]

    assert_runs_match(*fused_and_alone(calls), ctx)


def test_a_forward_pass_that_raises_in_one_stack_fails_its_runs_only(make_context):
    """Run 1's hook makes its model float64 mid-training: it is re-stacked apart, and its forward
    pass on the float32 images raises, as its own does in fit. That error escaped the group and
    failed every run of it. A stacked pass's error may also be fusion's own (a kernel that only
    the GPU runs), so it comes as a FusedStepError caused by it: bench.worker trains such a run
    again alone, where this one fails with its own error."""
    ctx = make_context("mlp", limit_train=1024)

    def to_double(model, step):
        if step == 2:
            model.double()

    def calls():
        return [call(ctx, ctx.new_model(seed=s), seed=s, **({"after_step": to_double} if s == 1 else {}))
                for s in range(3)]

    fused_calls, fused, alone_calls, alone = fused_and_alone(calls)
    assert type(fused[1]) is FusedStepError and type(fused[1].__cause__) is RuntimeError
    assert type(alone[1]) is RuntimeError  # (the kernels word it differently)
    assert_runs_match(*([x[i] for i in (0, 2)] for x in (fused_calls, fused, alone_calls, alone)), ctx)


def bn_mlp(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 64), nn.BatchNorm1d(64), nn.ReLU(), nn.Linear(64, 10))


def eval_mode(model, step):  # BatchNorm's statistics frozen for the rest of the epoch
    if step == 2:
        model.eval()


def freeze(model, step):  # the first layer frozen
    if step == 2:
        model[1].weight.requires_grad_(False)


def zeroing_hook(model, step):  # a forward hook that zeroes the first layer's output
    if step == 2:
        model[1].register_forward_hook(lambda m, i, o: o * 0)


def gradient_mask(model, step):  # a gradient hook on a weight (a gradient mask)
    if step == 2:
        mask = torch.arange(model[1].weight.numel()).reshape(model[1].weight.shape) % 2
        model[1].weight.register_hook(lambda g: g * mask)


@pytest.mark.parametrize("hook", [eval_mode, freeze, zeroing_hook, gradient_mask])
@pytest.mark.parametrize("who", [0, 1])
def test_a_hook_that_changes_a_mode_a_flag_or_the_hooks_of_its_model_trains_its_own_run_so(make_context, hook, who):
    """Mid-training, the hook of run `who` (0: the stack's template, whose module code runs the
    forward pass) puts its model in eval mode, freezes a weight, or registers a forward hook or
    a gradient hook. The stack trained every run with the template's modes, the stacked
    parameters' flags and the template's hooks: the run's change was lost, or, made on the
    template, applied to every run. Two epochs: fit's model.train() ends eval mode at the next."""
    ctx = make_context("mlp", limit_train=512)

    def calls():
        return [call(ctx, bn_mlp(s), seed=s, epochs=2, **({"after_step": hook} if s == who else {})) for s in range(3)]

    assert_runs_match(*fused_and_alone(calls), ctx)


def test_a_gradient_hook_gained_mid_training_sees_the_whole_gradient_once_a_step(make_context):
    """Run 1's loss reaches its first weight directly (an l1 penalty) and its hook adds a gradient
    hook there mid-training: a clamp, which is not linear, and a counter. In fit one backward
    pass calls them once a step with the whole gradient; the plain stack backpropagated the loss
    to its logits and then the logits into the model, and called them twice, with each part."""
    ctx = make_context("mlp", limit_train=512)
    counters: list[list[int]] = []  # the hook's calls, in the fused and then in the alone training

    def calls():
        counted: list[int] = []
        counters.append(counted)

        def make(s):
            model = bn_mlp(s)

            def loss(logits, y, x):
                return F.cross_entropy(logits, y) + 1e-3 * model[1].weight.abs().sum()

            def hook(m, step):
                if step == 1:
                    m[1].weight.register_hook(lambda g: g.clamp(-1e-4, 1e-4))
                    m[1].weight.register_post_accumulate_grad_hook(lambda p: counted.append(step))
            return call(ctx, model, seed=s, loss_fn=loss, **({"after_step": hook} if s == 1 else {}))
        return [make(s) for s in range(3)]

    fused_calls, fused, alone_calls, alone = fused_and_alone(calls)
    assert [len(c) for c in counters] == [ctx.steps_per_epoch - 2] * 2
    assert_runs_match(fused_calls, fused, alone_calls, alone, ctx)


def test_a_model_with_gradient_hooks_trains_alone(make_context):
    ctx = make_context("mlp", limit_train=256)

    def masked(seed):
        model = ctx.new_model(seed=seed)
        model[1].weight.register_hook(lambda g: g * 0)
        return model

    results = fit_group([call(ctx, masked(s), seed=s) for s in range(2)])
    assert all(isinstance(r, NotFusable) and "gradient hooks (Tensor.register_hook)" in str(r) for r in results)


def test_a_step_keeps_no_graph_of_the_stacked_model_after_its_backward_pass(make_context, monkeypatch):
    """The retry that lets a raising loss fail alone needs the losses' graphs, not the model's:
    retaining the stacked model's graph on every step held all its saved activations until the
    step ended (~13% more memory at a fused ResNet-20 step's peak). A second backward pass
    through a step's output finds its graph freed. A loss_fn may still change its logits in
    place, as under fit."""
    from bench import fused as fused_module

    ctx = make_context("mlp", limit_train=256)
    outputs = []
    forward = fused_module._fused_forward

    def kept(*args, **kwargs):
        out = forward(*args, **kwargs)
        outputs.append(out)
        return out

    def in_place(logits, y, x):
        return F.cross_entropy(logits.mul_(2.0), y)

    monkeypatch.setattr(fused_module, "_fused_forward", kept)
    fused_calls, fused, alone_calls, alone = fused_and_alone(
        lambda: [call(ctx, ctx.new_model(seed=s), seed=s, loss_fn=in_place) for s in range(2)])
    assert_runs_match(fused_calls, fused, alone_calls, alone, ctx)
    last = outputs[-1]
    assert last.requires_grad
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        last.backward(torch.ones_like(last))


class Doubler(torch.autograd.Function):
    """A custom autograd.Function without a vmap rule."""

    @staticmethod
    def forward(ctx, x):
        return 2 * x

    @staticmethod
    def backward(ctx, grad):
        return 2 * grad


class DoubleInput(nn.Module):
    def forward(self, x):
        return Doubler.apply(x)


def test_calls_that_cannot_fuse_are_left_untouched_with_the_reason(make_context):
    ctx = make_context("mlp", limit_train=256)
    custom = [ctx.new_model(seed=s) for s in (0, 5)]
    for model in custom:
        model.insert(0, DoubleInput())
    models = [*custom, ctx.new_model(seed=1), ctx.new_model(seed=2), ctx.new_model(seed=3), ctx.new_student()]
    before = [copy.deepcopy(m.state_dict()) for m in models]
    calls = [call(ctx, models[0], seed=0), call(ctx, models[1], seed=5),
             call(ctx, models[2], seed=1, compile="default"), call(ctx, models[3], seed=2),
             call(ctx, models[4], seed=3, epochs=2), call(ctx, models[5], seed=4)]
    results = fit_group(calls)
    assert all(isinstance(r, NotFusable) for r in results)
    assert all("vmap" in str(r) and "setup_context" in str(r) for r in results[:2])
    assert "compile" in str(results[2])
    assert all("no other call" in str(r) for r in results[3:])
    for m, state in zip(models, before):
        for k, v in m.state_dict().items():
            assert torch.equal(v, state[k]), k


# -- the coordinator with real methods ------------------------------------------------------------

# gating's gates are a submodule shared by two parametrizations, which functional_call alone
# would leave swapped after the forward pass.
METHOD_RUNS = [("magnitude", {"sparsity": 0.8}), ("random", {"sparsity": 0.5}), ("gmp", {"dt": 3, "sparsity": 0.8}),
               ("l1", {"sparsity": 0.8}), ("dense-ft", {}), ("gating", {}), ("dense-ft", {}), ("gating", {})]


def method_job(make_context, name: str, params: dict, seed: int, logs: list[str] | None = None):
    """A job for the Coordinator (or, given plain fit, for one-at-a-time): run a method on a
    fresh context whose training goes through the fit it is given."""
    ctx = make_context("mlp", seed=seed, limit_train=1024)
    if logs is not None:
        ctx.log = logs.append

    def job(fit):
        ctx.fit = fit
        model = METHODS[name].build(params).run(ctx)
        return model, ctx

    return job


def test_the_coordinator_runs_real_methods_fused_with_the_results_of_one_at_a_time(make_context):
    logs = [[] for _ in METHOD_RUNS]
    jobs = [method_job(make_context, name, params, seed=i % 2, logs=logs[i])
            for i, (name, params) in enumerate(METHOD_RUNS)]
    fused = Coordinator().run(jobs)
    from bench.train import fit
    alone = [method_job(make_context, name, params, seed=i % 2)(fit) for i, (name, params) in enumerate(METHOD_RUNS)]
    for (name, _), (fm, fctx), (am, actx) in zip(METHOD_RUNS, fused, alone):
        assert_same_model(fm, am)
        assert abs(fctx.evaluate(fm) - actx.evaluate(am)) <= ACCURACY, name
        assert fctx.train_epochs == actx.train_epochs
        assert fctx.figures.keys() == actx.figures.keys()
    gmp = METHOD_RUNS.index(("gmp", {"dt": 3, "sparsity": 0.8}))
    assert fused[gmp][1].figures["gmp_schedule"] == alone[gmp][1].figures["gmp_schedule"]
    # gmp's one training (dense + fine-tuning epochs) has no partner of its length here.
    assert any("training alone, not fused: no other call" in line for line in logs[gmp])
    assert all(any("training fused with" in line for line in log) for i, log in enumerate(logs) if i != gmp)
    print("\n".join(f"{name}: {line}" for (name, _), log in zip(METHOD_RUNS, logs) for line in log))


def test_the_coordinator_gives_each_job_its_own_random_stream_and_its_own_errors(make_context):
    ctx = make_context("mlp", limit_train=256)

    def job(seed: int, fail: BaseException | None = None):
        def run(fit):
            torch.manual_seed(seed)
            before = torch.rand(3)
            model = ctx.new_model(seed=seed)
            drawn = []
            fit(model, ctx.data.train, ctx.preprocess, ctx.budget, epochs=1, lr=0.05,
                generator=torch.Generator().manual_seed(seed), log=lambda _: None,
                after_step=lambda m, step: drawn.append(torch.rand(1)))
            if fail is not None:
                raise fail
            return before, torch.cat(drawn), torch.rand(3), model
        return run

    from bench.train import fit
    state = torch.get_rng_state()
    results = Coordinator().run([job(0), job(1, SystemExit(3)), job(2), job(3, DivergedError("x"))])
    assert torch.equal(torch.get_rng_state(), state)  # the caller's stream is left as it was
    assert isinstance(results[1], SystemExit) and isinstance(results[3], DivergedError)
    for i in (0, 2):
        alone = job(i)(fit)
        for a, b in zip(results[i][:3], alone[:3]):
            assert torch.equal(a, b)
        assert_same_model(results[i][3], alone[3])


def test_gradients_turned_off_fail_only_the_run_that_turned_them_off(make_context):
    """Whether gradients are on is a thread's own: fit trains under its caller's, and a hook that
    turns them off fails its run at the next step. Fused, the hooks ran in the coordinator's
    thread: run 1's hook failed every run of the group, and a call made under torch.no_grad
    (run 3) trained, where alone it fails."""
    import contextlib

    ctx = make_context("mlp", limit_train=1024)

    def off(model, step):
        if step == 2:
            torch.set_grad_enabled(False)

    def job(seed: int, hook=None, no_grad: bool = False):
        def run(fit):
            model = ctx.new_model(seed=seed)
            with torch.no_grad() if no_grad else contextlib.nullcontext():
                fit(model, ctx.data.train, ctx.preprocess, ctx.budget, epochs=1, lr=0.05,
                    generator=torch.Generator().manual_seed(seed), log=lambda _: None, after_step=hook)
            return model
        return run

    from bench.train import fit
    jobs = [job(0), job(1, off), job(2), job(3, no_grad=True)]
    fused = Coordinator().run(jobs)
    left_on = torch.is_grad_enabled()
    torch.set_grad_enabled(True)  # (for the tests that follow, whatever this one finds)
    assert left_on, "a run's hook turned gradients off in the coordinator's thread"
    for j, result in zip(jobs, fused):
        with torch.enable_grad():  # (run 1's hook leaves them off in this thread)
            try:
                alone = j(fit)
            except RuntimeError as e:
                alone = e
        if isinstance(alone, RuntimeError):
            assert type(result) is RuntimeError and str(result) == str(alone)
        else:
            assert_same_model(result, alone)
    assert [isinstance(r, nn.Module) for r in fused] == [True, False, True, False]


def test_a_forward_hook_gained_mid_training_draws_from_its_runs_own_random_stream(make_context):
    """Run 0's hook adds dropout to its first layer's output mid-training (a forward hook), so its
    model trains on through its own forward pass (a plain stack), whose draws are that run's own,
    as in fit: they came from whatever stream the coordinator's thread held, not the run's."""
    ctx = make_context("mlp", limit_train=512)

    def job(seed: int):
        def run(fit):
            torch.manual_seed(seed)
            model = ctx.new_model(seed=seed)

            def noisy(m, step):
                if step == 1 and seed == 0:
                    m[1].register_forward_hook(lambda mod, i, o: F.dropout(o, 0.5, training=True))
            fit(model, ctx.data.train, ctx.preprocess, ctx.budget, epochs=1, lr=0.05,
                generator=torch.Generator().manual_seed(seed), log=lambda _: None, after_step=noisy)
            return torch.rand(3), model
        return run

    from bench.train import fit
    results = Coordinator().run([job(0), job(1)])
    for i in (0, 1):
        drawn, model = job(i)(fit)
        assert torch.equal(results[i][0], drawn)
        assert_same_model(results[i][1], model)


def test_a_hook_that_trains_another_model_trains_it_there_as_alone(make_context):
    """A hook of a fused call that trains a helper model with the run's fit (ctx.train) runs in
    the coordinator's thread, which waited for its own turn for ever: the whole task hung."""
    import threading

    ctx = make_context("mlp", limit_train=256)

    def job(seed: int, nested: bool):
        def run(fit):
            torch.manual_seed(seed)
            model, helper = ctx.new_model(seed=seed), ctx.new_model(seed=seed + 10)

            def train_helper(m, step):
                if step == 1:
                    fit(helper, ctx.data.train, ctx.preprocess, ctx.budget, epochs=1, lr=0.05,
                        generator=torch.Generator().manual_seed(99), log=lambda _: None)

            fit(model, ctx.data.train, ctx.preprocess, ctx.budget, epochs=1, lr=0.05,
                generator=torch.Generator().manual_seed(seed), log=lambda _: None,
                after_step=train_helper if nested else None)
            return model, helper
        return run

    from bench.train import fit
    results = []
    driver = threading.Thread(target=lambda: results.extend(Coordinator().run([job(0, True), job(1, False)])),
                              daemon=True)
    driver.start()
    driver.join(120)
    assert not driver.is_alive(), "the fused task hangs"
    for i, fused in enumerate(results):
        for a, b in zip(fused, job(i, i == 0)(fit)):
            assert_same_model(a, b)


def test_calls_of_no_epochs_train_alone_and_their_runs_say_so(make_context):
    """With --finetune-epochs 0 a method's fine-tuning call trains nothing. Such calls were probed
    (which put their models in training mode) and trained as a fused group of no steps: each run's
    record said fused_with 2 (and, under --fuse-layout nchw, env.fuse_layout)."""
    contexts = [make_context("mlp", seed=s, limit_train=256, finetune_epochs=0) for s in range(2)]

    def job(ctx):
        def run(fit):
            ctx.fit = fit
            model = ctx.pretrained().eval()
            ctx.finetune(model)
            return ctx.fused_with, model.training
        return run

    assert Coordinator().run([job(ctx) for ctx in contexts]) == [(1, False)] * 2


def test_a_call_that_cannot_fuse_trains_alone_and_its_log_says_why(make_context):
    ctx = make_context("mlp", limit_train=256)
    logs: list[str] = []

    def job(fit):
        model = ctx.new_model()
        return fit(model, ctx.data.train, ctx.preprocess, ctx.budget, epochs=1, lr=0.05,
                   generator=torch.Generator().manual_seed(0), log=logs.append)

    (result,) = Coordinator().run([job])
    assert type(result) is TrainResult and math.isfinite(result.final_loss)
    assert any("training alone, not fused: no other call" in line for line in logs)


def test_the_users_interrupt_stops_the_coordinator_and_a_jobs_own_keyboard_interrupt_is_its_result(cli_signals):
    def interrupted(fit):
        raise Interrupted  # what the CLI's handler raises on Ctrl-C

    def raises_its_own(fit):
        raise KeyboardInterrupt("the plugin's")

    with pytest.raises(Interrupted):
        Coordinator().run([interrupted, lambda fit: 1])
    first, second = Coordinator().run([raises_its_own, lambda fit: 1])
    assert type(first) is KeyboardInterrupt and second == 1


def test_runs_that_match_a_template_whose_own_vmapped_pass_differs_still_get_an_answer(make_context, monkeypatch):
    """The probe found the first run's vmapped pass apart from its own (on a GPU, a borderline
    tolerance does it) and the others' alike: it named the first and dropped the others without
    a result, and their methods failed with "'NoneType' object has no attribute 'seconds'"."""
    ctx = make_context("mlp", limit_train=256)
    close = fusion._close
    compared = []

    def first_differs(*args):  # the first comparison: the template's vmapped output against its own
        compared.append(args)
        return len(compared) > 1 and close(*args)

    monkeypatch.setattr(fusion, "_close", first_differs)
    results = fit_group([call(ctx, ctx.new_model(seed=s), seed=s) for s in range(3)])
    assert isinstance(results[0], NotFusable) and "differs from its own" in str(results[0])
    assert all(isinstance(r, FusedResult) and r.fused_with == 2 for r in results[1:]), results


class HiddenBits(nn.Module):
    """Weight quantization whose bit width sits in a dict, which the models' signature (their
    modules' plain attributes) cannot see: only the probe can tell 8 bits from 7."""

    def __init__(self, bits: int):
        super().__init__()
        self.config = {"bits": bits}

    def forward(self, w):
        step = w.detach().abs().amax(dim=1, keepdim=True) / (2 ** (self.config["bits"] - 1) - 1)
        return torch.round(w.detach() / step) * step + (w - w.detach())


def test_a_setting_outside_the_weights_is_told_apart_whatever_slack_the_device_gives_vmap(make_context,
                                                                                        monkeypatch):
    """On a GPU the fused forward pass may lie 1e-2 of its scale from the run's own (TF32, other
    kernels), and 8- and 7-bit quantization of the same weights lie closer than that (5e-3): judged
    by that bound alone, the 7-bit run would have trained fused through the 8-bit template's code.
    The template's code on each run's tensors through the plain kernels is judged apart, at the
    CPU's bound. Here the GPU's bound is put on the CPU."""
    from torch.nn.utils import parametrize

    from bench import fused

    monkeypatch.setattr(fused, "_tolerance", lambda out: 1e-2)
    ctx = make_context("mlp", limit_train=256)
    models = [ctx.new_model(seed=0), ctx.new_model(seed=0)]
    for model, bits in zip(models, (8, 7)):
        for module, _ in prunable_weights(model):
            parametrize.register_parametrization(module, "weight", HiddenBits(bits))
    results = fit_group([call(ctx, models[0], seed=0), call(ctx, models[1], seed=1)])
    assert all(isinstance(r, NotFusable) and "no other call computes the same function" in str(r)
               for r in results), results


class _BFloat16UnderAutocast(nn.Module):
    """What CUDA autocast does to a bias-free convolution's output, which the CPU's does not under
    vmap: bf16 activations, from float32 ones."""

    def forward(self, x):
        return x.to(torch.bfloat16) if torch.is_autocast_enabled(x.device.type) else x


def test_batchnorm_given_bf16_activations_under_autocast_trains_fused_as_it_does_alone(make_context, monkeypatch):
    """Under CUDA autocast a bias-free convolution (ResNet-20's) gives BatchNorm bf16 activations.
    BatchNorm's vmap rule runs the kernel with a weight of the input's dtype and the float32
    running statistics, which the kernel refuses ("expected scalar type BFloat16 but found
    Float"; pytorch/pytorch#192617), where the model's own pass mixes them: every fused step of a
    bf16 suite on a GPU would fail. The CPU's autocast does not reach the convolutions under
    vmap (they stay float32), so here a module does what CUDA's autocast does to them."""
    ctx = make_context("mnist", limit_train=128, precision="bf16", batch_size=32)
    monkeypatch.setattr(fusion, "autocast_reaches_vmap", lambda device_type: True)  # as on CUDA

    def model(seed: int) -> nn.Module:
        torch.manual_seed(seed)
        return nn.Sequential(_BFloat16UnderAutocast(), nn.BatchNorm2d(1), nn.Flatten(), nn.Linear(784, 10))

    def calls():
        return [call(ctx, model(s), seed=s) for s in range(2)]

    fused_calls, fused, alone_calls, alone = fused_and_alone(calls)
    assert_runs_match(fused_calls, fused, alone_calls, alone, ctx, atol=1e-2)  # bf16: as the bf16 test's
    assert not torch.allclose(fused_calls[0].model[1].running_mean, fused_calls[1].model[1].running_mean)


def test_a_fused_step_error_crosses_a_process_boundary_with_its_cause():
    """An executor pickles what a task sends back: FusedStepError's default pickling passed its
    message where its constructor takes the cause, and unpickling raised TypeError."""
    import pickle

    error = pickle.loads(pickle.dumps(FusedStepError(RuntimeError("CUDA error: a kernel refused"))))
    assert type(error) is FusedStepError and repr(error.__cause__) == "RuntimeError('CUDA error: a kernel refused')"
    assert str(error) == "fused training failed in code the runs share: RuntimeError: CUDA error: a kernel refused"


def full_disk_on(marker: str):
    """A run's log that cannot write lines containing marker (a full disk), as bench.worker's _Log fails."""
    def log(line: str) -> None:
        if marker in line:
            raise OSError(28, "No space left on device")
    return log


def test_a_log_that_cannot_be_written_fails_its_own_run_only(make_context):
    """fit raises a log line's OSError (a full disk), failing its run. Fused, the epoch line's error
    escaped fit_group: the coordinator failed every run of the task as a fault of shared code, the
    runs of groups that had finished included, and the driver trained them all again alone."""
    ctx = make_context("mlp", limit_train=512)

    def calls():  # two groups: runs 0 and 1 train one epoch, runs 2 and 3 two
        return [call(ctx, ctx.new_model(seed=s), seed=s, epochs=1 + s // 2,
                     log=full_disk_on("epoch") if s == 3 else None) for s in range(4)]

    fused_calls, fused, alone_calls, alone = fused_and_alone(calls)
    assert type(fused[3]) is OSError and str(fused[3]) == str(alone[3])
    keep = [0, 1, 2]
    assert_runs_match(*([x[i] for i in keep] for x in (fused_calls, fused, alone_calls, alone)), ctx)


def test_a_group_that_cannot_be_stacked_fails_its_runs_only_and_finished_groups_keep_their_results(
        make_context, monkeypatch):
    """Memory that runs out while the second group stacks its tensors escaped fit_group: the
    coordinator answered every run of the task with a FusedStepError, and the first group's
    finished runs were thrown away and trained again alone. Only the second group's runs are
    faulted now (to train again alone); the first group's results stand."""
    ctx = make_context("mlp", limit_train=512)
    stack = fusion._Stack.__init__

    def stack_or_run_out(self, runs, keep_layout):
        if runs[0].call.epochs == 2:
            raise MemoryError("out of memory stacking")
        stack(self, runs, keep_layout)

    monkeypatch.setattr(fusion._Stack, "__init__", stack_or_run_out)

    def job(seed: int):
        def run(fit):
            model = ctx.new_model(seed=seed)
            return fit(model, ctx.data.train, ctx.preprocess, ctx.budget, epochs=1 + seed // 2, lr=0.05,
                       generator=torch.Generator().manual_seed(seed), log=lambda _: None), model
        return run

    coordinator = Coordinator()
    results = coordinator.run([job(s) for s in range(4)])
    assert sorted(coordinator.faulted) == [2, 3]
    assert all(type(results[j]) is FusedStepError and type(results[j].__cause__) is MemoryError for j in (2, 3))
    assert all(isinstance(results[j][0], FusedResult) for j in (0, 1))
    # the finished runs' models hold their own tensors, not views of a stack
    for j in (0, 1):
        assert all(p._base is None for p in results[j][1].parameters())


def test_a_log_that_cannot_be_written_in_the_coordinator_fails_its_job_only(make_context):
    """The coordinator logs why a call trains alone: that line's OSError (a full disk) escaped
    Coordinator.run and lost the task, the finished runs' results with it."""
    ctx = make_context("mlp", limit_train=512)

    def job(seed: int, epochs: int, log=None):
        def run(fit):
            model = ctx.new_model(seed=seed)
            return fit(model, ctx.data.train, ctx.preprocess, ctx.budget, epochs=epochs, lr=0.05,
                       generator=torch.Generator().manual_seed(seed), log=log or (lambda _: None))
        return run

    results = Coordinator().run([job(0, 1), job(1, 1), job(2, 0, full_disk_on("training alone"))])
    assert type(results[2]) is OSError
    assert all(isinstance(results[j], FusedResult) for j in (0, 1))


class CudaDraw(nn.Module):
    """Stands in for dropout on a CUDA device: its forward pass advances CUDA's random state."""

    def __init__(self, state: dict):
        super().__init__()
        self.state = state

    def forward(self, x):
        self.state[0] = self.state[0] + 1
        return x


def test_the_probe_leaves_cudas_random_state_as_it_was(make_context, monkeypatch):
    """The probe runs each model's own forward pass, which on a GPU draws dropout's masks from
    CUDA's random stream; it forked the CPU's stream only, so a call of fit_group on CUDA that
    then trained a dropout model alone (NotFusable) drew other masks than fit would. No CUDA
    here: its state is a stand-in, reached as torch.random.fork_rng reaches it."""
    ctx = make_context("mlp", limit_train=256)
    state = {0: torch.zeros(1)}
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_rng_state", lambda device="cuda": state[0].clone())
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda new, device="cuda": state.__setitem__(0, new.clone()))

    def model(seed):
        m = ctx.new_model(seed=seed)
        m.insert(0, CudaDraw(state))
        return m

    fusion._probe([call(ctx, model(s), seed=s) for s in range(2)])
    assert state[0].item() == 0


def test_the_probe_puts_back_the_settings_a_forward_pass_changes(make_context, monkeypatch):
    """The probe runs the models' forward passes, the template's most often: a setting the pass
    changes (a step counter; a quantizer's flag that its first pass sets, initializing its scale
    from the data) was left as the probe changed it: the counters went into training at 5, 2 and
    2, where fit starts them at 0, and the template trained in a stack of its own, apart from
    the others (the signature holds the setting)."""
    ctx = make_context("mlp", limit_train=256)
    stacks = []
    build = fusion._Group.build_stacks

    def spy(self):
        build(self)
        stacks.append([len(s.runs) for s in self.stacks])

    monkeypatch.setattr(fusion._Group, "build_stacks", spy)

    def model(seed):
        m = ctx.new_model(seed=seed)
        m.insert(0, Counting())
        return m.eval()

    calls = [call(ctx, model(s), seed=s) for s in range(3)]
    fusion._probe(calls)
    assert [c.model[0].calls for c in calls] == [0, 0, 0]
    assert not any(m.training for c in calls for m in c.model.modules())
    assert all(isinstance(r, FusedResult) for r in fit_group(calls))
    assert stacks == [[3]]


def test_a_setting_the_forward_pass_changes_changes_in_every_run_of_the_stack(make_context, monkeypatch):
    """The stack's forward pass runs its template's module code once for every run: a step
    counter it keeps advanced in each stack's template alone: the others came back from training
    with theirs behind (here 9, 4 and 4, where fit leaves 9 in each), and a re-stacking (a prune
    in run 1's hook at step 4) split runs whose counters differed (the signature holds settings)."""
    ctx = make_context("mlp", limit_train=1024)
    stacks = []
    build = fusion._Group.build_stacks

    def spy(self):
        build(self)
        stacks.append(sorted(len(s.runs) for s in self.stacks))

    monkeypatch.setattr(fusion._Group, "build_stacks", spy)

    def model(seed):
        m = ctx.new_model(seed=seed)
        m.insert(0, Counting())
        return m

    def prune_at_4(m, step):
        if step == 4:
            prune.l1_unstructured(m[2], "weight", amount=0.5)

    def calls():
        return [call(ctx, model(s), seed=s, **({"after_step": prune_at_4} if s == 1 else {})) for s in range(3)]

    fused_calls, fused, alone_calls, alone = fused_and_alone(calls)
    assert_runs_match(fused_calls, fused, alone_calls, alone, ctx)
    steps = alone_calls[0].model[0].calls
    assert [c.model[0].calls for c in fused_calls] == [c.model[0].calls for c in alone_calls] == [steps] * 3
    assert stacks == [[3], [1, 2]]
