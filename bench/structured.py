"""Removing channels for real: the channel groups of torch-pruning's dependency graph, shared by
the structured methods (filter-l1, slimming, gating).

A plan names, per channel group, the channels that go. `zero_channels` gives the masked model
(same architecture, those channels exactly zero) and `remove_channels` the smaller one; both
compute the same function, which is what the structured methods' tests check.
"""

from __future__ import annotations

import torch
import torch_pruning as tp
from torch import nn

from bench.context import Context

Plan = dict[str, list[int]]  # a channel group's root layer name -> the channel indices that go

# The layers whose weights write a channel (rather than read it): zeroing their rows zeroes it.
PRODUCERS = (tp.prune_conv_out_channels, tp.prune_linear_out_channels, tp.prune_batchnorm_out_channels)


def channel_groups(model: nn.Module, example: torch.Tensor) -> dict[str, tp.Group]:
    """The model's prunable channel groups (torch-pruning), keyed by their root layer's name.

    A group is every layer one set of channels touches: the layers that write it, their
    BatchNorms, the layers that read it. The last Linear layer is the classifier: its outputs stay.
    Tracing leaves the model in eval mode.
    """
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=example)
    names = {m: n for n, m in model.named_modules()}
    head = [m for m in model.modules() if isinstance(m, nn.Linear)][-1:]
    return {names[g[0].dep.layer]: g for g in graph.get_all_groups(ignored_layers=head)}


def zero_channels(model: nn.Module, example: torch.Tensor, plan: Plan) -> nn.Module:
    """The masked model: the planned channels are exactly zero (their writers' rows, biases and
    BatchNorm affine terms are zeroed), so the layers that read them get nothing from them."""
    groups = channel_groups(model, example)  # traced with autograd on
    with torch.no_grad():
        for name, group in groups.items():
            gone = set(plan.get(name, ()))
            for item in group:
                if item.dep.pruning_fn in PRODUCERS:
                    rows = [i for i, r in zip(item.idxs, item.root_idxs) if r in gone]
                    layer = item.dep.layer
                    layer.weight[rows] = 0
                    if layer.bias is not None:
                        layer.bias[rows] = 0
    return model


def remove_channels(model: nn.Module, example: torch.Tensor, plan: Plan) -> nn.Module:
    """Remove the planned channels for real (in place): the same function as `zero_channels`,
    with smaller layers."""
    for name, group in channel_groups(model, example).items():
        if plan.get(name):
            group.prune(idxs=plan[name])
    return model


def channel_counts(model: nn.Module) -> dict[str, int]:
    """Output channels / units of every Conv and Linear layer, for recording what was removed."""
    return {n: m.weight.shape[0] for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}


def record_removal(ctx: Context, before: dict[str, int], model: nn.Module) -> None:
    """Record, per Conv/Linear layer, how many output channels or units were removed."""
    after = channel_counts(model)
    ctx.record(channels_removed={n: before[n] - after[n] for n in before},
               channels_kept_fraction=sum(after.values()) / sum(before.values()))


def example_input(ctx: Context) -> torch.Tensor:
    """Two real training images: what torch-pruning traces the model with."""
    return ctx.calibration_batches(n=1, batch_size=2)[0][0]
