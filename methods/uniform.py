import math

import torch
from torch import nn
from torch.nn.utils import parametrize

from bench import Context, Method, bounded, register_method
from bench.sparsity import weight_layers


@register_method("uniform")
class Uniform(Method):
    """Weight-only uniform quantization per output channel, fine-tuned with a straight-through estimator (Courbariaux et al. 2015).

    Every Linear/Conv weight row w (one output channel) is stored as bits-bit integers
    round(w / step), with step = max|w| / (2^(bits-1) - 1), plus one fp32 step. Fine-tuning keeps
    float shadow weights: the forward pass uses their quantized values and the gradient passes
    straight through the rounding (Bengio et al. 2013). Unlike BinaryConnect's (Courbariaux et
    al.), the shadow weights are not clipped: each row's step follows its largest shadow weight.
    The returned float model holds the dequantized weights, at most 2^bits - 1 distinct values per
    output channel (the symmetric grid leaves one of the 2^bits codes unused); its size is that
    of the packed codes (bitmask-coded when sparse), the steps, and everything else as float
    (`packed_codes_bytes`, an encoding of the deploy step). Weights that are exactly zero on entry
    stay zero, so it can follow a pruning method in a chain.
    """

    family = "quantization"
    bits: int = bounded(4, ge=2, le=8)

    def run(self, ctx: Context) -> nn.Module:
        model = ctx.pretrained()
        layers = weight_layers(model)  # those a suite's dense_layers rule keeps from pruning too
        for module in layers:
            parametrize.register_parametrization(module, "weight", StraightThrough(self.bits))
        ctx.finetune(model, hold_zeros=True)
        for module in layers:
            parametrize.remove_parametrizations(module, "weight")  # keeps the quantized values
        return model


def quantize(w: torch.Tensor, bits: int) -> torch.Tensor:
    """Symmetric uniform quantization per output channel (dim 0), dequantized."""
    levels = 2 ** (bits - 1) - 1
    step = w.abs().amax(dim=tuple(range(1, w.dim())), keepdim=True).clamp_min(torch.finfo(w.dtype).tiny) / levels
    return torch.round(w / step) * step


class StraightThrough(nn.Module):
    """Parametrization whose value is quantize(w) exactly and whose gradient is the identity."""

    def __init__(self, bits: int):
        super().__init__()
        self.bits = bits

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return quantize(w.detach(), self.bits) + (w - w.detach())


def packed_codes_bytes(model: nn.Module) -> int | None:
    """Each Linear/Conv weight whose rows lie on a b-bit grid (`grid_bits`) as packed b-bit codes,
    or as a bitmask plus the nonzero codes when that is smaller (after pruning), plus an fp32 step
    per output channel; every other tensor at its own size. None when no weight lies on a grid."""
    bits = {id(m.weight): b for m in weight_layers(model) if (b := grid_bits(m.weight)) is not None}
    if not bits:
        return None
    total = 0
    for t in model.state_dict(keep_vars=True).values():
        if id(t) in bits:
            n, nonzeros, b = t.numel(), int(torch.count_nonzero(t)), bits[id(t)]
            total += math.ceil(min(n * b, n + nonzeros * b) / 8) + 4 * t.shape[0]
        else:
            total += t.numel() * t.element_size()
    return total


def grid_bits(w: torch.Tensor) -> int | None:
    """The fewest bits b (2 to 8) such that every row of w is on the grid `quantize` uses,
    k * step with |k| <= 2^(b-1) - 1 and step = max|row| / (2^(b-1) - 1), to within a thousandth
    of a step (the step found from quantized values can differ from the original in its last
    bit); None if no b fits, as for any trained float weight."""
    rows = w.detach().flatten(1)
    amax = rows.abs().amax(dim=1, keepdim=True)
    for bits in range(2, 9):
        step = (amax / (2 ** (bits - 1) - 1)).clamp_min(torch.finfo(w.dtype).tiny)
        k = rows / step
        if float((k - k.round()).abs().max()) <= 1e-3:
            return bits
    return None
