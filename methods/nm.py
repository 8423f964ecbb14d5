"""N:M fine-grained structured sparsity, fine-tuned with the pattern held (NVIDIA's ASP recipe).

Mishra et al., "Accelerating Sparse Deep Neural Networks" (2021), and NVIDIA's Automatic
SParsity (apex.contrib.sparsity): in every group of M consecutive input weights of a layer the N
largest in magnitude are kept, then the model is retrained with the masks held. 2:4 is the
pattern Ampere and later GPUs multiply at up to twice the dense rate (sparse tensor cores; in
PyTorch `torch.sparse.to_sparse_semi_structured`), so the sparsity is fixed at 1 - N/M and is not
swept.

Groups run along the input dimension, the reduction axis of the matrix product: a Linear
weight's rows; for a convolution, as in ASP, the input channels at each output channel and
kernel position (the layout of an implicit GEMM over NHWC). Layers whose input size is not a
multiple of M (LeNet-5's first convolution has one input channel) stay dense, as ASP leaves
them; the record lists them.
"""

from __future__ import annotations

import torch
from torch import nn

from bench import Context, Method, NotApplicable, register_method
from bench.registry import ParameterError
from bench.sparsity import PRUNABLE, make_permanent, mask_weight


def groups_view(w: torch.Tensor) -> torch.Tensor:
    """The weight with its input dimension last: (out, in) for Linear, (out, kh, kw, in) for a
    convolution; groups are consecutive runs along that last dimension."""
    return w.movedim(1, -1) if w.dim() > 2 else w


def nm_mask(w: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """Boolean mask keeping the n largest-magnitude weights of every group of m consecutive input
    weights (ties go to the lower index, as torch.topk on a stable sort would). Weights that are
    zero already are never kept in place of a nonzero one, and stay zero: an earlier link's
    pruning holds."""
    view = groups_view(w.detach())
    groups = view.abs().reshape(-1, m)
    order = groups.argsort(dim=1, descending=True, stable=True)[:, :n]
    keep = torch.zeros_like(groups, dtype=torch.bool).scatter_(1, order, True)
    keep = keep.reshape(view.shape) & (view != 0)
    return keep.movedim(-1, 1) if w.dim() > 2 else keep


@register_method("nm")
class NM(Method):
    """N:M structured sparsity (2:4 by default): the N largest of every M input weights, fine-tuned with the pattern held (NVIDIA ASP).

    Every Linear/Conv layer whose input size is a multiple of `m` is masked, the mask held through
    the suite's fine-tuning (torch.nn.utils.prune) and folded into the weights, which are then
    truly zero. Zeros left by an earlier link of a chain stay zero, so `magnitude+nm` is 2:4 and
    at least as sparse as the magnitude model.
    """

    n: int = 2
    m: int = 4

    def __post_init__(self) -> None:
        if not 0 < self.n < self.m:
            raise ParameterError(f"nm: need 0 < n < m, got n={self.n}, m={self.m}")

    def run(self, ctx: Context) -> nn.Module:
        model = ctx.pretrained()
        masked, dense = [], []
        for name, module in model.named_modules():
            if not isinstance(module, PRUNABLE):
                continue
            if module.weight.shape[1] % self.m:
                dense.append(name)
                continue
            mask = nm_mask(module.weight, self.n, self.m)
            mask_weight(module, "weight", torch.empty_like(module.weight).copy_(mask))  # the weight's layout
            masked.append(name)
        if not masked:
            raise NotApplicable(f"no layer's input size is a multiple of m={self.m}")
        ctx.record(nm_layers=masked, nm_dense_layers=dense)
        ctx.train(model, epochs=ctx.budget.finetune_epochs, lr=ctx.budget.finetune_lr)
        return make_permanent(model)
