import math

import torch

from bench import register_method
from methods.set import SET


@register_method("rigl")
class RigL(SET):
    """RigL: drop the smallest weights and regrow where the dense gradient is largest (Evci et al. 2020).

    SET's loop (a random Erdos-Renyi-Kernel mask, constant per-layer sparsity, updates every `dt`
    steps until `end_fraction` of the steps, regrown weights starting at zero) with two changes:
    connections regrow where |dL/dw| of the full dense weight is largest, and the drop fraction
    decays from `drop_fraction` to 0 on a cosine, alpha_t = alpha/2 * (1 + cos(pi t / T_end)).
    """

    family = "sparse training"

    def drop_at(self, step: int, end_step: int) -> float:
        return self.drop_fraction / 2 * (1 + math.cos(math.pi * step / end_step))

    def grow_score(self, weight: torch.Tensor, grad: torch.Tensor, generator: torch.Generator) -> torch.Tensor:  # noqa: ARG002
        return grad.abs()
