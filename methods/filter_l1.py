"""Remove the channels whose filters have the smallest L1 norm, then fine-tune (Li et al. 2017).

"Pruning Filters for Efficient ConvNets": in each layer, the `ratio` fraction of output channels
(hidden units for an MLP) with the smallest sum of absolute filter weights goes. The channels are
removed for real through torch-pruning's dependency graph, so the consumers' input channels, the
BatchNorm statistics and, in a ResNet, every layer added into the same residual stream shrink
with them; a channel shared by a residual stream is ranked by the summed L1 norm of all the
filters that write into it. The classifier's outputs and the model's inputs are kept.

One `ratio` for every layer is this benchmark's setting: Li et al. choose per-layer ratios from a
sensitivity analysis, leave the sensitive layers whole and, in ResNets, prune only the first
convolution of each residual block, not the residual stream.

The channel groups and their removal are bench.structured's, shared with `gating` and `slimming`.
"""

from __future__ import annotations

import torch
import torch_pruning as tp
from torch import nn

from bench import Context, Method, bounded, register_method
from bench.structured import Plan, channel_counts, channel_groups, example_input, record_removal, remove_channels


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


@register_method("filter-l1")
class FilterL1(Method):
    """Remove the channels with the smallest filter L1 norm, then fine-tune (Li et al. 2017).

    `ratio` is the fraction of channels each layer loses (not a weight sparsity: with half the
    channels of both its inputs and outputs, a conv layer keeps about a quarter of its weights).
    """

    family = "pruning"
    ratio: float = bounded(0.5, ge=0, lt=1)

    def run(self, ctx: Context) -> nn.Module:
        model = ctx.pretrained()
        example, before = example_input(ctx), channel_counts(model)
        remove_channels(model, example, filters_to_remove(model, example, self.ratio))
        record_removal(ctx, before, model)
        ctx.finetune(model)
        return model
