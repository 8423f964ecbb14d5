"""Round-to-nearest weight quantization: the baseline of GPTQ (Frantar et al. 2023).

Every Linear/Conv2d weight is rounded to the nearest point of the same grid as `gptq` (asymmetric
min-max, 2^bits levels per output channel or per group of `group_size` inputs; bench.lowbit),
with no calibration data and no error compensation: the "RTN" rows of the GPTQ paper. Weights
that are exactly zero stay zero. The returned float model holds the quantized values and its
grids; its size packs the codes at `bits` bits (bench.lowbit's encoding).
"""

from __future__ import annotations

from torch import nn

from bench import Context, Method, register_method
from bench.layerwise import set_weight_matrix, weight_matrix
from bench.lowbit import Grid, attach_size, finetune_on_grid
from bench.sparsity import PRUNABLE
from methods.gptq import check_bits


@register_method("rtn")
class RTN(Method):
    """Round-to-nearest weight quantization to `bits` on GPTQ's grid, no calibration (GPTQ's baseline)."""

    family = "quantization"
    bits: int = 4
    group_size: int = 0  # inputs per scale and zero point; 0 = one per output channel
    finetune: bool = False  # then fine-tune on the grid for the suite's finetune_epochs

    def __post_init__(self) -> None:
        check_bits(self.name, self.bits, self.group_size)

    def run(self, ctx: Context) -> nn.Module:
        model = ctx.pretrained()
        grids = {}
        for name, module in model.named_modules():
            if isinstance(module, PRUNABLE):
                w = weight_matrix(module)
                grids[name] = Grid.fit(w, self.bits, self.group_size)
                set_weight_matrix(module, grids[name].round(w))
        if self.finetune:
            finetune_on_grid(ctx, model, grids)
        return attach_size(model, grids)
