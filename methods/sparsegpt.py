"""SparseGPT: one-shot layer-wise pruning with OBS weight reconstruction (Frantar & Alistarh 2023).

Frantar and Alistarh, "SparseGPT: Massive Language Models Can Be Accurately Pruned in One-Shot",
ICML 2023. Each Linear/Conv2d layer, in forward order and fed the outputs of the already pruned
layers (ctx.layer_inputs), is pruned to minimize ||X W^T - X W'^T||^2 on the calibration inputs
X. Columns are processed left to right: a pruned weight's error is spread over the row's weights
not yet processed through the Cholesky factor of the damped inverse Hessian (H + 0.01 mean(diag
H) I)^-1, so the kept weights absorb what the pruned ones did (Optimal Brain Surgeon). The mask
is chosen as it goes, per lazy block of 128 columns, by the OBS saliency w^2 / [H^-1]_jj: the
`sparsity` fraction of each block (unstructured) or, for N:M, the `m - n` least salient of every
`m` consecutive inputs of a row. Blocks of 128 and 1% dampening are the paper's settings. Its
128 calibration samples are sequences of 2,048 tokens, a quarter of a million rows of X per layer;
here a sample is an image, one row for a Linear layer, so 128 images leave an MLP layer's 784-input
least-squares fit underdetermined and it overfits them (on mlp at 90%, 1,024 images beat 128: the
committed rows at both sizes, quoted in README.md, One-shot post-training methods, by
benchmarks/readme_figures.py): the default is 1,024 images.
"""

from __future__ import annotations

import torch
from torch import nn

from bench import Context, Method, ParameterError, bounded, register_method
from bench.layerwise import inverse_hessian
from bench.sparsity import check_pattern, nm_mask


@register_method("sparsegpt")
class SparseGPT(Method):
    """Layer-wise OBS pruning with weight reconstruction on calibration data, unstructured or N:M (Frantar & Alistarh 2023)."""

    family = "one-shot pruning"
    sweep = "sparsity"
    sparsity: float = 0.5
    n: int = 0  # N:M: keep n of every m consecutive inputs (sparsity must be 1 - n/m); 0 = unstructured
    m: int = 0
    blocksize: int = bounded(128, ge=1)
    dampening: float = bounded(0.01, ge=0)
    calibration_samples: int = bounded(1024, ge=1)
    finetune: bool = False  # then fine-tune for the suite's finetune_epochs with the mask held

    def __post_init__(self) -> None:
        check_pattern(self.name, self.sparsity, self.n, self.m)
        if self.n and self.blocksize % self.m:
            raise ParameterError(f"{self.name}: blocksize must be a multiple of m, got {self.blocksize} and {self.m}")

    def run(self, ctx: Context) -> nn.Module:
        model = ctx.pretrained()
        for layer in ctx.layer_inputs(model, self.calibration_samples):
            layer.set_weight(sparsegpt(layer.weight(), layer.hessian, self.sparsity, self.n, self.m,
                                       self.blocksize, self.dampening))
        if self.finetune:
            ctx.finetune(model, hold_zeros=True)
        return model


@torch.no_grad()
def sparsegpt(weight: torch.Tensor, hessian: torch.Tensor, sparsity: float, n: int = 0, m: int = 0,
              blocksize: int = 128, dampening: float = 0.01) -> torch.Tensor:
    """The pruned and reconstructed (rows, inputs) weight matrix (the paper's Algorithm 1)."""
    w = weight.float().clone()
    u, dead = inverse_hessian(hessian.float(), dampening)
    w[:, dead] = 0
    out = torch.zeros_like(w)
    for start in range(0, w.shape[1], blocksize):
        end = min(start + blocksize, w.shape[1])
        block, ub = w[:, start:end].clone(), u[start:end, start:end]
        d = ub.diagonal()
        pruned = torch.zeros_like(block, dtype=torch.bool)
        if not n:
            saliency = (block / d).square().flatten()
            pruned.view(-1)[saliency.topk(round(sparsity * saliency.numel()), largest=False).indices] = True
        errors = torch.zeros_like(block)
        for i in range(end - start):
            if n and i % m == 0:
                pruned[:, i:i + m] = ~nm_mask((block[:, i:i + m] / d[i:i + m]).square(), n, m)
            q = block[:, i].masked_fill(pruned[:, i], 0)
            out[:, start + i] = q
            errors[:, i] = (block[:, i] - q) / d[i]
            block[:, i:] -= errors[:, i, None] * ub[i, i:]
        w[:, end:] -= errors @ u[start:end, end:]
    return out
