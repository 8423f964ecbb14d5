import torch
import torch.nn.functional as F
from torch.nn.utils import prune

from bench import Context, Method, bounded, register_method
from bench.sparsity import make_permanent, prunable_weights, prune_unstructured


@register_method("snip")
class Snip(Method):
    """SNIP: prune once at initialization by connection sensitivity |g * w| (Lee et al. 2019).

    The sensitivity is measured on `batches` training batches of the suite's batch size at the
    seeded initialization and ranked globally across layers; the network is then trained with
    the mask fixed for the whole dense + fine-tuning budget.
    """

    family = "sparse training"
    sweep = "sparsity"
    starts_from = "scratch"
    sparsity: float = bounded(0.9, ge=0, lt=1)
    batches: int = bounded(1, ge=1)

    def run(self, ctx: Context) -> torch.nn.Module:
        model = ctx.new_model()
        weights = prunable_weights(model)
        model.zero_grad(set_to_none=True)
        for x, y in ctx.calibration_batches(n=self.batches):
            F.cross_entropy(model(x), y).backward()
        scores = {(m, n): (getattr(m, n).grad * getattr(m, n)).detach().abs()
                  for m, n in weights}
        model.zero_grad(set_to_none=True)
        prune_unstructured(weights, prune.L1Unstructured, importance_scores=scores, amount=self.sparsity)
        # Where the single global ranking puts the connections is SNIP's whole decision.
        ctx.record(layer_density=[float(getattr(m, n + "_mask").float().mean()) for m, n in weights])
        ctx.train(model, epochs=ctx.budget.epochs + ctx.budget.finetune_epochs)
        return make_permanent(model)
