import math

import torch

from bench import Context, Method, register_method
from bench.sparsity import DynamicMasks, erk_densities, random_masks


@register_method("rigl")
class RigL(Method):
    """RigL: drop the smallest weights and regrow where the dense gradient is largest (Evci et al. 2020).

    Starts from a random Erdos-Renyi-Kernel mask and keeps each layer's sparsity constant: every
    `dt` steps each layer drops its alpha_t smallest-magnitude active weights and regrows as many
    where |dL/dw| of the full dense weight is largest, starting at zero; alpha_t decays from
    `drop_fraction` to 0 on a cosine over the first `end_fraction` of the steps, after which the
    mask is fixed.
    """

    sweep = "sparsity"
    starts_from = "scratch"
    sparsity: float = 0.9
    drop_fraction: float = 0.3
    dt: int = 100
    end_fraction: float = 0.75

    def run(self, ctx: Context) -> torch.nn.Module:
        model = ctx.new_model()
        generator = torch.Generator(device=ctx.device).manual_seed(ctx.seed)
        epochs = ctx.budget.epochs + ctx.budget.finetune_epochs
        end_step = int(self.end_fraction * epochs * ctx.steps_per_epoch)
        masks = DynamicMasks(
            model, random_masks(model, erk_densities(model, self.sparsity), generator),
            dt=self.dt, end_step=end_step,
            drop_fraction=lambda step: self.drop_fraction / 2 * (1 + math.cos(math.pi * step / end_step)),
            grow_score=lambda w, g: g.abs())
        ctx.train(model, epochs=epochs, after_backward=masks.after_backward, after_step=masks.after_step)
        ctx.record(mask_updates=masks.trace)
        return model
