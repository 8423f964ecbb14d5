import torch
from torch.nn.utils import prune

from bench import Context, Method, bounded, register_method
from bench.sparsity import make_permanent, prunable_weights, prune_unstructured


@register_method("random")
class Random(Method):
    """Random unstructured pruning of the trained model, then fine-tuning: the control to beat.

    Every Linear/Conv weight is pruned with the same probability, so each layer ends near
    `sparsity`; a pruning criterion is only worth its name if it beats this at the same budget
    (the random-pruning baseline of Blalock et al. 2020, "What is the state of neural network
    pruning?"). The mask, drawn from the run's seed, holds through fine-tuning and is folded in.
    """

    family = "pruning"
    sweep = "sparsity"
    sparsity: float = bounded(0.9, ge=0, lt=1)

    def run(self, ctx: Context) -> torch.nn.Module:
        model = ctx.pretrained()
        torch.manual_seed(ctx.seed)  # the mask is a function of the seed alone
        prune_unstructured(prunable_weights(model), prune.RandomUnstructured, amount=self.sparsity)
        ctx.finetune(model)
        return make_permanent(model)
