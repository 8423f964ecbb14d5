"""GPTQ: one-shot weight-only quantization with second-order error compensation (Frantar et al. 2023).

Frantar, Ashkboos, Hoefler and Alistarh, "GPTQ: Accurate Post-Training Quantization for
Generative Pre-trained Transformers", ICLR 2023. Each Linear/Conv2d layer, in forward order and
fed the outputs of the already quantized layers (ctx.layer_inputs), is quantized to `bits` bits
to minimize ||X W^T - X W'^T||^2 on the calibration inputs: columns are rounded left to right,
and each column's rounding error is compensated by the columns not yet rounded, through the
Cholesky factor of the damped inverse Hessian (H + 0.01 mean(diag H) I)^-1. Updates outside the
current block of 128 columns are applied once per block (the paper's lazy batch updates).

The grid is asymmetric min-max with 2^bits levels per output channel (`group_size` 0) or per
group of `group_size` consecutive inputs (bench.lowbit), as in the paper's code; a group's grid
is set from the weights as they stand when the block holding its first column starts. Weights
that are exactly zero on entry (a pruned model, in a chain) stay zero, their error compensated
like any other. The returned float model holds the quantized values and its grids; its size
packs the codes at `bits` bits (bench.lowbit's encoding). Blocks of 128 and 1% dampening are the
paper's settings; it reports 4 and 3 bits. 1,024 calibration images rather than the paper's 128
sequences, for the reason given in methods/sparsegpt.py: an image is one row of a Linear layer's X.
"""

from __future__ import annotations

import torch
from torch import nn

from bench import Context, Method, ParameterError, bounded, register_method
from bench.layerwise import inverse_hessian
from bench.lowbit import Grid, attach_size, dequantize, finetune_on_grid, quantize


@register_method("gptq")
class GPTQ(Method):
    """Weight-only quantization to `bits` with second-order error compensation on calibration data (Frantar et al. 2023)."""

    family = "quantization"
    bits: int = 4
    group_size: int = 0  # inputs per scale and zero point; 0 = one per output channel
    blocksize: int = bounded(128, ge=1)
    dampening: float = bounded(0.01, ge=0)
    calibration_samples: int = bounded(1024, ge=1)
    finetune: bool = False  # then fine-tune on the grid for the suite's finetune_epochs

    def __post_init__(self) -> None:
        check_bits(self.name, self.bits, self.group_size)

    def run(self, ctx: Context) -> nn.Module:
        model = ctx.pretrained()
        grids = {}
        # every layer: a suite's dense_layers rule is about sparsity, and GPTQ quantizes as RTN does
        for layer in ctx.layer_inputs(model, self.calibration_samples, every_layer=True):
            weight, grids[layer.name] = gptq(layer.weight(), layer.hessian, self.bits, self.group_size,
                                             self.blocksize, self.dampening)
            layer.set_weight(weight)
        if self.finetune:
            finetune_on_grid(ctx, model, grids)
        return attach_size(model, grids)


def check_bits(method: str, bits: int, group_size: int) -> None:
    if not 2 <= bits <= 8:
        raise ParameterError(f"{method}: bits must be between 2 and 8, got {bits}")
    if group_size < 0:
        raise ParameterError(f"{method}: group_size must be 0 (per channel) or positive, got {group_size}")


@torch.no_grad()
def gptq(weight: torch.Tensor, hessian: torch.Tensor, bits: int, group_size: int = 0,
         blocksize: int = 128, dampening: float = 0.01) -> tuple[torch.Tensor, Grid]:
    """The quantized (rows, inputs) weight matrix and its grid (the paper's Algorithm 1)."""
    w = weight.float().clone()
    keep = w != 0
    u, dead = inverse_hessian(hessian.float(), dampening)
    w[:, dead] = 0
    grid = Grid.empty(*w.shape, bits, group_size, w.device)
    out = torch.zeros_like(w)
    for start in range(0, w.shape[1], blocksize):
        end = min(start + blocksize, w.shape[1])
        block, ub = w[:, start:end].clone(), u[start:end, start:end]
        errors = torch.zeros_like(block)
        for i in range(end - start):
            column = start + i
            if column % grid.group_size == 0:
                grid.set_group(column, w[:, column:column + grid.group_size])
            g = column // grid.group_size
            scale, zero = grid.scale[:, g], grid.zero[:, g]
            q = dequantize(quantize(block[:, i], scale, zero, bits), scale, zero) * keep[:, column]
            out[:, column] = q
            errors[:, i] = (block[:, i] - q) / ub[i, i]
            block[:, i:] -= errors[:, i, None] * ub[i, i:]
        w[:, end:] -= errors @ u[start:end, end:]
    return out, grid
