"""The `nm` method: N:M structured sparsity, its pattern held exactly through fine-tuning."""

from __future__ import annotations

import pytest
import torch
from torch.nn.utils import prune

from bench.registry import METHODS, ParameterError, discover
from bench.sparsity import make_permanent, prunable_weights, weight_sparsity
from methods.nm import NM, groups_view, nm_mask

discover()


def groups(w: torch.Tensor, m: int) -> torch.Tensor:
    """Nonzeros per group of m consecutive input weights."""
    return (groups_view(w) != 0).reshape(-1, m).sum(1)


def test_mask_keeps_the_n_largest_of_every_m_inputs():
    w = torch.tensor([[0.1, -0.9, 0.3, 0.2, 5.0, 4.0, -3.0, 0.0],
                      [1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.5]])
    keep = nm_mask(w, 2, 4)
    assert keep.tolist() == [[False, True, True, False, True, True, False, False],
                             [True, True, False, False, False, False, False, True]]  # ties: lower index; a zero stays out
    assert nm_mask(w, 1, 2).sum(1).tolist() == [4, 3]  # 1:2; the last row's 0,0 group keeps nothing


def test_convolution_groups_run_along_input_channels():
    torch.manual_seed(0)
    w = torch.randn(6, 8, 3, 3).contiguous(memory_format=torch.channels_last)
    keep = nm_mask(w, 2, 4)
    assert keep.shape == w.shape
    # at each output channel and kernel position, 2 of every 4 consecutive input channels
    per_group = keep.permute(0, 2, 3, 1).reshape(6, 3, 3, 2, 4).sum(-1)
    assert (per_group == 2).all()
    kept = w.abs().permute(0, 2, 3, 1).reshape(-1, 4)
    chosen = keep.permute(0, 2, 3, 1).reshape(-1, 4)
    assert (kept[chosen].view(-1, 2).min(1).values >= kept[~chosen].view(-1, 2).max(1).values).all()


def test_parameters_are_checked():
    with pytest.raises(ParameterError, match="0 < n < m"):
        METHODS["nm"].build({"n": 4, "m": 4})


def test_nm_holds_2_to_4_exactly_through_fine_tuning(make_context):
    ctx = make_context(limit_train=2000, epochs=1, finetune_epochs=1)
    dense = ctx.pretrained()
    model = NM().run(ctx)
    assert ctx.train_epochs == 2 and ctx.figures["nm_layers"] == ["1", "3", "5"]
    for (layer, _), (trained, _) in zip(prunable_weights(model), prunable_weights(dense)):
        w, keep = layer.weight, nm_mask(trained.weight, 2, 4)
        assert torch.equal(w != 0, keep)  # the pattern chosen on the trained model, held exactly
        assert (groups(w, 4) == 2).all()
        assert not torch.equal(w[keep], trained.weight[keep])  # and the kept weights fine-tuned
    assert not any(prune.is_pruned(m) for m in model.modules())  # masks folded in
    assert weight_sparsity(model) == 0.5
    assert ctx.evaluate(model) > ctx.evaluate(dense) - 0.03


def test_lenet5_first_convolution_with_one_input_channel_stays_dense(make_context):
    ctx = make_context(suite="mnist", limit_train=500, limit_test=200, epochs=1, finetune_epochs=1,
                       warmup_epochs=0)
    model = NM().run(ctx)
    assert ctx.figures["nm_dense_layers"] == ["0"] and ctx.figures["nm_layers"] == ["2", "5", "7"]
    first, *rest = [m.weight for m, _ in prunable_weights(model)]
    assert bool((first != 0).all())
    assert all((groups(w, 4) == 2).all() for w in rest)
    assert rest[0].is_contiguous(memory_format=torch.channels_last)  # the mask kept the layout


def test_nm_after_magnitude_keeps_its_zeros_and_adds_the_pattern(make_context):
    ctx = make_context(limit_train=2000, epochs=1, finetune_epochs=1)
    pruned = METHODS["magnitude"].build({"sparsity": 0.8}).run(ctx)
    ctx.continue_from(pruned)  # what the chain magnitude+nm does
    model = NM().run(ctx)
    for (layer, _), (before, _) in zip(prunable_weights(model), prunable_weights(pruned)):
        assert not layer.weight[before.weight == 0].any()  # magnitude's zeros stay zero
        assert (groups(layer.weight, 4) <= 2).all()
    assert weight_sparsity(model) > 0.8
