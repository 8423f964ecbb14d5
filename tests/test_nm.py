"""The `nm` method: N:M structured sparsity, its pattern held exactly through fine-tuning."""

from __future__ import annotations

import pytest
import torch

from bench.layerwise import weight_matrix
from bench.registry import METHODS, ParameterError, discover
from bench.sparsity import nm_mask, prunable_weights, weight_sparsity
from methods.nm import NM

discover()


def groups(module: torch.nn.Module, m: int) -> torch.Tensor:
    """Nonzeros per group of m consecutive input weights (input channels, for a convolution)."""
    return (weight_matrix(module) != 0).reshape(-1, m).sum(1)


def test_parameters_are_checked():
    with pytest.raises(ParameterError, match="0 < n < m"):
        METHODS["nm"].build({"n": 4, "m": 4})


def test_nm_holds_2_to_4_exactly_through_fine_tuning(make_context):
    ctx = make_context(limit_train=2000, epochs=1, finetune_epochs=1)
    dense = ctx.pretrained()
    model = NM().run(ctx)
    assert ctx.train_epochs == 2 and ctx.figures["nm_layers"] == ["1", "3", "5"]
    for (layer, _), (trained, _) in zip(prunable_weights(model), prunable_weights(dense)):
        w, before = weight_matrix(layer), weight_matrix(trained)
        keep = nm_mask(before.abs(), 2, 4)
        assert torch.equal(w != 0, keep)  # the pattern chosen on the trained model, held exactly
        assert (groups(layer, 4) == 2).all()
        assert not torch.equal(w[keep], before[keep])  # and the kept weights fine-tuned
    assert weight_sparsity(model) == 0.5
    assert ctx.evaluate(model) > ctx.evaluate(dense) - 0.03


def test_convolutions_group_input_channels_and_one_input_channel_stays_dense(make_context):
    ctx = make_context(suite="mnist", limit_train=500, limit_test=200, epochs=1, finetune_epochs=1,
                       warmup_epochs=0)
    model = NM().run(ctx)
    assert ctx.figures["nm_dense_layers"] == ["0"] and ctx.figures["nm_layers"] == ["2", "5", "7"]
    (first, _), *rest = prunable_weights(model)
    assert bool((first.weight != 0).all())
    assert all((groups(layer, 4) == 2).all() for layer, _ in rest)
    conv = rest[0][0].weight  # (50, 20, 5, 5): 2 of every 4 input channels at each position
    assert ((conv != 0).view(50, 5, 4, 5, 5).sum(2) == 2).all()
    assert conv.is_contiguous(memory_format=torch.channels_last)  # the model's layout is kept


def test_nm_after_magnitude_keeps_its_zeros_and_adds_the_pattern(make_context):
    ctx = make_context(limit_train=2000, epochs=1, finetune_epochs=1)
    pruned = METHODS["magnitude"].build({"sparsity": 0.8}).run(ctx)
    ctx.continue_from(pruned)  # what the chain magnitude+nm does
    model = NM().run(ctx)
    for (layer, _), (before, _) in zip(prunable_weights(model), prunable_weights(pruned)):
        assert not layer.weight[before.weight == 0].any()  # magnitude's zeros stay zero
        assert (groups(layer, 4) <= 2).all()
    assert weight_sparsity(model) > 0.8
