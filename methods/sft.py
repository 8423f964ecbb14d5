import math

import torch
from torch import nn

from bench import Context, Method, bounded, register_method


class TopKGradients:
    """after_backward hook: keep each tensor's `density` largest-magnitude gradient entries.

    With error feedback the entries left out are not lost: they wait in `residual` and are added
    to the next step's gradient before the next selection (Lin et al. 2018), so small but
    consistent gradients are applied eventually. Weight decay is folded into the gradient before
    selection, as in DGC, because an optimizer's own decay would move every weight every step.
    """

    def __init__(self, density: float, error_feedback: bool, weight_decay: float):
        self.density = density
        self.error_feedback = error_feedback
        self.weight_decay = weight_decay
        self.residual: dict[str, torch.Tensor] = {}
        self.applied: torch.Tensor | int = 0  # nonzero entries applied, summed on the device
        self.offered = 0  # gradient entries, summed over steps

    def __call__(self, model: nn.Module, step: int) -> None:
        for name, p in model.named_parameters():
            if p.grad is None:
                continue
            grad = p.grad + self.weight_decay * p.detach()
            if self.error_feedback and name in self.residual:
                grad += self.residual[name]
            flat = grad.flatten()
            keep = flat.abs().topk(math.ceil(self.density * flat.numel())).indices
            sparse = torch.zeros_like(flat).scatter_(0, keep, flat[keep]).view_as(grad)
            if self.error_feedback:
                self.residual[name] = grad - sparse
            p.grad = sparse
            self.applied = self.applied + torch.count_nonzero(sparse)  # no host sync per step
            self.offered += sparse.numel()


@register_method("sft")
class SparseFineTuning(Method):
    """Sparse fine-tuning: top-k gradient sparsification with error feedback, then Adam (Lin et al. 2018).

    Every step keeps only the `density` fraction of each parameter tensor's gradient entries with
    the largest magnitude (DGC's top-k sparsification, Lin et al. 2018, "Deep Gradient
    Compression"), with the unapplied remainder fed back into later steps when `error_feedback`
    is on. Training runs with plain SGD, because momentum would spread each sparse step over every
    entry it ever touched; a last `adam_epochs` at `adam_lr` use Adam on the same sparsified
    gradients (an entry never selected keeps zero moments, so Adam leaves it unchanged too). The
    record holds the applied gradient density and how many parameters ever changed.

    `start` (the issue's `from`, a Python keyword) is "pretrained": fine-tune ctx.pretrained()
    (in a chain, the previous method's model) within the fine-tuning budget; or "scratch": train
    ctx.new_model() within the dense plus fine-tuning budget, ignoring any chain input. In both,
    the Adam epochs come out of that budget.
    """

    family = "sparse training"
    density: float = bounded(0.01, gt=0, le=1)
    error_feedback: bool = True
    start: str = bounded("pretrained", choices=("pretrained", "scratch"))
    adam_lr: float = bounded(1e-4, gt=0)
    adam_epochs: int = bounded(1, ge=0)  # (at most the budget's epochs: checked by run, which knows them)

    def run(self, ctx: Context) -> torch.nn.Module:
        if self.start == "pretrained":
            model, epochs, lr = ctx.pretrained(), ctx.budget.finetune_epochs, ctx.budget.finetune_lr
        else:  # "scratch"
            model, epochs, lr = ctx.new_model(), ctx.budget.epochs + ctx.budget.finetune_epochs, ctx.budget.lr
        if not 0 <= self.adam_epochs <= epochs:
            raise ValueError(f"sft adam_epochs must be between 0 and the budget's {epochs} epochs, "
                             f"got {self.adam_epochs}")
        initial = [p.detach().clone() for p in model.parameters()]
        topk = TopKGradients(self.density, self.error_feedback, ctx.budget.weight_decay)
        if epochs > self.adam_epochs:
            ctx.train(model, epochs - self.adam_epochs, after_backward=topk,
                      optimizer=torch.optim.SGD(model.parameters(), lr=lr))
        if self.adam_epochs:
            ctx.train(model, self.adam_epochs, after_backward=topk,
                      optimizer=torch.optim.Adam(model.parameters(), lr=self.adam_lr))
        changed = sum(int((p.detach() != p0).sum()) for p, p0 in zip(model.parameters(), initial))
        total = sum(p.numel() for p in initial)
        ctx.record(update_density=int(topk.applied) / max(topk.offered, 1), changed_params=changed,
                   changed_fraction=changed / total)
        return model
