import torch
from torch.nn.utils import prune

from bench import Context, Method, register_method
from bench.sparsity import make_permanent, prunable_weights


@register_method("magnitude")
class Magnitude(Method):
    """One-shot global magnitude pruning of the trained model, then fine-tuning (Han et al. 2015).

    The smallest-magnitude `sparsity` fraction of all Linear/Conv weights, ranked together across
    layers, is masked with torch.nn.utils.prune; the mask holds through fine-tuning (the pruning
    hook recomputes weight = weight_orig * mask every forward) and is folded into the weights at
    the end, so the returned weights are truly zero.
    """

    sweep = "sparsity"
    sparsity: float = 0.9

    def run(self, ctx: Context) -> torch.nn.Module:
        model = ctx.pretrained()
        prune.global_unstructured(prunable_weights(model), pruning_method=prune.L1Unstructured,
                                  amount=self.sparsity)
        ctx.train(model, epochs=ctx.budget.finetune_epochs, lr=ctx.budget.finetune_lr)
        return make_permanent(model)
