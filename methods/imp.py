import torch
from torch.nn.utils import prune

from bench import Context, Method, bounded, register_method
from bench.sparsity import make_permanent, prunable_weights, prune_unstructured, weight_sparsity


@register_method("imp")
class IterativeMagnitude(Method):
    """Iterative magnitude pruning: prune a share, retrain, repeat (Han et al. 2015).

    Starting from the trained model, each of `rounds` rounds masks the smallest-magnitude
    weights (ranked globally; Han et al. threshold each layer by its own weights' spread) so
    that the kept fraction shrinks by (1 - sparsity)^(1/rounds), reaching `sparsity` exactly
    after the last round, then retrains finetune_epochs at finetune_lr with the mask held.
    Pruning in steps lets the network adapt between them, at the cost of `rounds` fine-tunings
    instead of one (the harness counts them).
    """

    family = "pruning"
    sweep = "sparsity"
    sparsity: float = bounded(0.9, ge=0, lt=1)
    rounds: int = bounded(5, ge=1)

    def run(self, ctx: Context) -> torch.nn.Module:
        model = ctx.pretrained()
        params = prunable_weights(model)
        total = sum(getattr(m, n).numel() for m, n in params)
        reached = []
        for r in range(1, self.rounds + 1):
            # Folding first makes the earlier zeros the smallest weights, so the new mask keeps them.
            make_permanent(model)
            keep = round(total * (1 - self.sparsity) ** (r / self.rounds))
            prune_unstructured(params, prune.L1Unstructured, amount=total - keep)
            reached.append(weight_sparsity(model))
            ctx.finetune(model)
        ctx.record(round_sparsity=reached)
        return make_permanent(model)
