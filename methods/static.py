import torch

from bench import Context, Method, bounded, register_method
from bench.sparsity import erk_densities, make_permanent, mask_weight, prunable_weights, random_masks


@register_method("static")
class Static(Method):
    """Static sparse training: a random Erdos-Renyi-Kernel mask fixed at initialization (Evci et al. 2020).

    Each layer keeps a uniformly random subset of its weights whose size follows the ERK
    densities (the static baseline of the RigL paper); the mask is held by torch.nn.utils.prune
    for the whole dense + fine-tuning budget and folded into the weights at the end.
    """

    family = "sparse training"
    sweep = "sparsity"
    starts_from = "scratch"
    sparsity: float = bounded(0.9, ge=0, lt=1)

    def run(self, ctx: Context) -> torch.nn.Module:
        model = ctx.new_model()
        generator = torch.Generator(device=ctx.device).manual_seed(ctx.seed)
        masks = random_masks(model, erk_densities(model, self.sparsity), generator)
        for (module, name), mask in zip(prunable_weights(model), masks):
            mask_weight(module, name, mask)
        ctx.train(model, epochs=ctx.budget.epochs + ctx.budget.finetune_epochs)
        return make_permanent(model)
