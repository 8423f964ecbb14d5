"""Wanda: pruning by weights and activations, without weight updates (Sun et al. 2024).

Sun, Liu, Bair and Kolter, "A Simple and Effective Pruning Approach for Large Language Models",
ICLR 2024. A weight's score is |W_ij| * ||X_j||_2, its magnitude times the norm of its input
feature over the calibration inputs, compared within each output row: every row loses its
`sparsity` fraction of lowest scores (unstructured), or, for N:M, the `m - n` lowest of every `m`
consecutive inputs. The surviving weights are not changed. The layers are pruned in forward
order, each on the outputs of the already pruned layers before it (ctx.layer_inputs), as the
paper's code does block by block. 1,024 calibration images, as for sparsegpt (methods/sparsegpt.py
says why an image is not one of the paper's 128 samples).
"""

from __future__ import annotations

import torch
from torch import nn

from bench import Context, Method, bounded, register_method
from bench.sparsity import check_pattern, nm_mask


@register_method("wanda")
class Wanda(Method):
    """Pruning by |weight| x input-activation norm per output row, unstructured or N:M, no weight update (Sun et al. 2024)."""

    family = "one-shot pruning"
    sweep = "sparsity"
    sparsity: float = 0.5
    n: int = 0  # N:M: keep n of every m consecutive inputs (sparsity must be 1 - n/m); 0 = unstructured
    m: int = 0
    calibration_samples: int = bounded(1024, ge=1)
    finetune: bool = False  # then fine-tune for the suite's finetune_epochs with the mask held

    def __post_init__(self) -> None:
        check_pattern(self.name, self.sparsity, self.n, self.m)

    def run(self, ctx: Context) -> nn.Module:
        model = ctx.pretrained()
        for layer in ctx.layer_inputs(model, self.calibration_samples, hessian=False):
            w = layer.weight()
            layer.set_weight(w * wanda_mask(w, layer.feature_norms, self.sparsity, self.n, self.m))
        if self.finetune:
            ctx.finetune(model, hold_zeros=True)
        return model


def wanda_mask(weight: torch.Tensor, feature_norms: torch.Tensor, sparsity: float, n: int = 0,
               m: int = 0) -> torch.Tensor:
    """Keep-mask of a (rows, inputs) weight matrix by |W_ij| * ||X_j||, per row or N:M."""
    scores = weight.abs() * feature_norms
    if n:
        return nm_mask(scores, n, m)
    pruned = scores.topk(round(sparsity * scores.shape[1]), dim=1, largest=False).indices
    return torch.ones_like(scores, dtype=torch.bool).scatter_(1, pruned, False)
