import torch
from torch.nn.utils import prune

from bench import Context, Method, bounded, register_method
from bench.sparsity import make_permanent, prunable_weights, prune_unstructured

SCOPES = ("global", "layer")


@register_method("magnitude")
class Magnitude(Method):
    """One-shot magnitude pruning of the trained model, then fine-tuning (Han et al. 2015).

    The smallest-magnitude `sparsity` fraction of the Linear/Conv weights is masked with
    torch.nn.utils.prune: ranked together across layers (`scope="global"`, which lets the large
    layers take most of the pruning) or within each layer (`scope="layer"`, the same sparsity in
    every layer; Han et al. set each layer's threshold from its own weights' spread). The mask
    holds through fine-tuning (the pruning hook recomputes weight = weight_orig * mask every
    forward) and is folded into the weights at the end, so the returned weights are truly zero.
    """

    family = "pruning"
    sweep = "sparsity"
    sparsity: float = bounded(0.9, ge=0, lt=1)
    scope: str = bounded("global", choices=SCOPES)

    def run(self, ctx: Context) -> torch.nn.Module:
        model = ctx.pretrained()
        self.prune(model)
        ctx.finetune(model)
        return make_permanent(model)

    def prune(self, model: torch.nn.Module) -> None:
        """Mask the smallest weights (torch.nn.utils.prune), globally or per layer."""
        if self.scope == "global":
            prune_unstructured(prunable_weights(model), prune.L1Unstructured, amount=self.sparsity)
        else:
            for module, name in prunable_weights(model):
                prune_unstructured([(module, name)], prune.L1Unstructured, amount=self.sparsity)
