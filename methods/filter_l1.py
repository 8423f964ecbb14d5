"""Remove the channels whose filters have the smallest L1 norm, then fine-tune (Li et al. 2017).

"Pruning Filters for Efficient ConvNets": in each layer, the `ratio` fraction of output channels
(hidden units for an MLP) with the smallest sum of absolute filter weights goes. The channels are
removed for real through torch-pruning's dependency graph, so the consumers' input channels, the
BatchNorm statistics and, in a ResNet, every layer added into the same residual stream shrink
with them; a channel shared by a residual stream is ranked by the summed L1 norm of all the
filters that write into it. The classifier's outputs and the model's inputs are kept.

The channel helpers here (groups, zeroing, removal) are shared by `gating` and `slimming`.
"""

from __future__ import annotations

import torch
import torch_pruning as tp
from torch import nn

from bench import Context, Method, register_method

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


def filters_to_remove(model: nn.Module, example: torch.Tensor, ratio: float) -> Plan:
    """In every group, the round(ratio * channels) channels with the smallest filter L1 norm
    (summed over the layers that write the channel); at least one channel stays."""
    plan = {}
    for name, group in channel_groups(model, example).items():
        norms = torch.zeros(len(group[0].idxs))
        for item in group:
            if item.dep.pruning_fn in (tp.prune_conv_out_channels, tp.prune_linear_out_channels):
                w = item.dep.layer.weight.detach()[item.idxs].flatten(1)
                norms.index_add_(0, torch.tensor(item.root_idxs), w.abs().sum(1).cpu())
        n = min(round(ratio * len(norms)), len(norms) - 1)
        plan[name] = sorted(torch.argsort(norms, stable=True)[:n].tolist())
    return plan


def example_input(ctx: Context) -> torch.Tensor:
    """Two real training images: what torch-pruning traces the model with."""
    return ctx.calibration_batches(n=1, batch_size=2)[0][0]


@register_method("filter-l1")
class FilterL1(Method):
    """Remove the channels with the smallest filter L1 norm, then fine-tune (Li et al. 2017).

    `ratio` is the fraction of channels each layer loses (not a weight sparsity: with half the
    channels of both its inputs and outputs, a conv layer keeps about a quarter of its weights).
    """

    ratio: float = 0.5

    def run(self, ctx: Context) -> nn.Module:
        model = ctx.pretrained()
        example, before = example_input(ctx), channel_counts(model)
        remove_channels(model, example, filters_to_remove(model, example, self.ratio))
        record_removal(ctx, before, model)
        ctx.train(model, epochs=ctx.budget.finetune_epochs, lr=ctx.budget.finetune_lr)
        return model
