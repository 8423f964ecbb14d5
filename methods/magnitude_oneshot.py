"""One-shot magnitude pruning without fine-tuning: the baseline of SparseGPT and Wanda.

Frantar and Alistarh 2023 and Sun et al. 2024 compare against magnitude pruning applied once to
the trained model, per layer, with no retraining (and at N:M, the m - n smallest of every m
consecutive inputs). This is `magnitude` (Han et al. 2015) with those settings: `scope` "layer"
by default, the N:M pattern, and fine-tuning only when `finetune` is set, which gives the
baseline of the one-shot methods' own `finetune` rows.
"""

from __future__ import annotations

from torch import nn

from bench import Context, bounded, register_method
from bench.layerwise import set_weight_matrix, weight_matrix
from bench.sparsity import check_pattern, make_permanent, nm_mask, prunable_weights
from methods.magnitude import SCOPES, Magnitude


@register_method("magnitude-oneshot")
class MagnitudeOneShot(Magnitude):
    """One-shot magnitude pruning, per layer or N:M, without fine-tuning unless `finetune` (the one-shot papers' baseline)."""

    family = "one-shot pruning"
    sparsity: float = bounded(0.5, ge=0, lt=1)
    scope: str = bounded("layer", choices=SCOPES)
    n: int = 0  # N:M: keep n of every m consecutive inputs (sparsity must be 1 - n/m); 0 = unstructured
    m: int = 0
    finetune: bool = False  # then fine-tune for the suite's finetune_epochs with the mask held

    def __post_init__(self) -> None:
        check_pattern(self.name, self.sparsity, self.n, self.m)

    def run(self, ctx: Context) -> nn.Module:
        model = ctx.pretrained()
        if self.n:
            for module, _ in prunable_weights(model):
                w = weight_matrix(module)
                set_weight_matrix(module, w * nm_mask(w.abs(), self.n, self.m))
        else:
            self.prune(model)
            make_permanent(model)
        if self.finetune:
            ctx.finetune(model, hold_zeros=True)
        return model
