import torch
import torch.nn.functional as F
from torch.nn.utils import prune

from bench import Context, Method, bounded, register_method
from bench.sparsity import make_permanent, prunable_weights, prune_unstructured


@register_method("l1")
class L1(Method):
    """L1-regularized training from scratch, then global magnitude pruning and fine-tuning (Han et al. 2015).

    The loss adds `penalty` * sum |w| over the prunable weights for the dense budget, which
    drives most weights towards zero; the fraction of weights the penalty alone brought under
    `threshold` is recorded as penalty_sparsity. The smallest weights are then pruned globally
    to `sparsity` and the rest fine-tuned with the mask held (Han et al.'s L1 variant).
    """

    family = "sparse training"
    sweep = "sparsity"
    starts_from = "scratch"
    sparsity: float = bounded(0.9, ge=0, lt=1)
    penalty: float = bounded(5e-5, ge=0)  # tuned on mlp: pre-pruning accuracy unchanged, most weights near 0
    threshold: float = bounded(1e-3, ge=0)

    def run(self, ctx: Context) -> torch.nn.Module:
        model = ctx.new_model()
        weights = [getattr(m, n) for m, n in prunable_weights(model)]

        def loss_fn(logits: torch.Tensor, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:  # noqa: ARG001
            l1 = torch.stack([w.abs().sum() for w in weights]).sum()
            return F.cross_entropy(logits, y, label_smoothing=ctx.budget.label_smoothing) + self.penalty * l1

        ctx.train(model, epochs=ctx.budget.epochs, loss_fn=loss_fn)
        small = sum(int((w.abs() < self.threshold).sum()) for w in weights)
        ctx.record(penalty_sparsity=small / sum(w.numel() for w in weights))
        prune_unstructured(prunable_weights(model), prune.L1Unstructured, amount=self.sparsity)
        ctx.finetune(model)
        return make_permanent(model)
