"""Network slimming: L1 on BatchNorm scales while training, remove the smallest-scale channels, fine-tune.

Liu et al. 2017, "Learning Efficient Convolutional Networks through Network Slimming": training
from scratch adds `penalty * sign(gamma)` to the gradient of every BatchNorm scale factor (the
subgradient of an L1 penalty, as in the authors' code); then the `ratio` fraction of all
BatchNorm channels with the smallest |gamma|, ranked globally across layers, is removed through
torch-pruning, and the slim model is fine-tuned for `budget.finetune_epochs` at the fine-tuning
rate. Channels tied by a residual stream go together: they are ranked by their mean |gamma|
(torch-pruning's BNScaleImportance) and count once per BatchNorm they remove.
"""

from __future__ import annotations

import torch
import torch_pruning as tp
from torch import nn

from bench import Context, Method, NotApplicable, bounded, register_method
from bench.structured import (Plan, channel_counts, channel_groups, example_input, record_removal,
                               remove_channels)


def batchnorms(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def smallest_scales(model: nn.Module, example: torch.Tensor, ratio: float) -> Plan:
    """The channels with the smallest |gamma|, taken globally while the BatchNorm channels they
    remove stay within `ratio` of all BatchNorm channels; each group keeps at least one channel."""
    importance = tp.importance.BNScaleImportance(normalizer=None)
    groups = channel_groups(model, example)
    candidates = []  # (mean |gamma|, group name, channel, BatchNorm channels it removes)
    for name, group in groups.items():
        scores = importance(group)
        if scores is not None:
            norms = sum(item.dep.pruning_fn == tp.prune_batchnorm_out_channels for item in group)
            candidates += [(s, name, c, norms) for c, s in enumerate(scores.tolist())]
    budget = ratio * sum(bn.num_features for bn in batchnorms(model))
    plan: Plan = {name: [] for name in groups}
    removed = 0
    for _, name, channel, norms in sorted(candidates):
        if removed + norms <= budget and len(plan[name]) < len(groups[name][0].idxs) - 1:
            plan[name].append(channel)
            removed += norms
    return {name: sorted(channels) for name, channels in plan.items()}


@register_method("slimming")
class Slimming(Method):
    """L1 on BatchNorm scales while training, then the smallest-scale channels go (Liu et al. 2017)."""

    family = "sparse training"
    starts_from = "scratch"
    penalty: float = bounded(1e-4, ge=0)
    ratio: float = bounded(0.5, ge=0, lt=1)  # of all BatchNorm channels

    def run(self, ctx: Context) -> nn.Module:
        model = ctx.new_model()
        bns = batchnorms(model)
        if not bns:
            raise NotApplicable(f"slimming needs BatchNorm layers; suite {ctx.suite.name}'s model has none")

        def l1_on_scales(model: nn.Module, step: int) -> None:
            for bn in bns:
                bn.weight.grad.add_(torch.sign(bn.weight.detach()), alpha=self.penalty)

        ctx.train(model, epochs=ctx.budget.epochs, after_backward=l1_on_scales)
        example, before = example_input(ctx), channel_counts(model)
        bn_channels = sum(bn.num_features for bn in bns)
        remove_channels(model, example, smallest_scales(model, example, self.ratio))
        record_removal(ctx, before, model)
        kept = sum(bn.num_features for bn in batchnorms(model))
        ctx.record(bn_channels_removed_fraction=1 - kept / bn_channels)
        ctx.finetune(model)
        return model
