"""Low-bit weights on a min-max grid per output channel or group of inputs (GPTQ and its
round-to-nearest baseline): the grid, its packed storage and size, and fine-tuning that keeps
the weights on it.

A group of `group_size` consecutive inputs of one output row (the whole row when per channel)
has a scale s and an integer zero point z: its weights are s * (q - z) with codes q in
[0, 2^bits - 1], and the grid spans [min(w, 0), max(w, 0)] of the group, so zero is a grid
point (GPTQ's asymmetric quantizer). The quantized model stays a float model holding those
values, and carries its grids (`attach_size`); the deploy step's `lowbit` encoding
(`packed_bytes`) packs each layer's codes at `bits` bits (or a bitmask plus the nonzero weights'
codes when that is smaller, after pruning), the zero points at `bits` bits and the scales as
fp32, and stores everything else at its own size. A weight that has left its grid (a later link
of a chain retrained it) is stored as float instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

from bench.layerwise import to_weight_layout, weight_matrix

if TYPE_CHECKING:
    from bench.context import Context


def minmax_grid(w: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, zero point) per row of `w`, spanning [min(w, 0), max(w, 0)] with 2^bits levels;
    an all-zero row gets the span [-1, 1], as in GPTQ's quantizer."""
    lo, hi = w.amin(1).clamp(max=0), w.amax(1).clamp(min=0)
    empty = (lo == 0) & (hi == 0)
    lo, hi = lo.masked_fill(empty, -1), hi.masked_fill(empty, 1)
    scale = (hi - lo) / (2 ** bits - 1)
    return scale, torch.round(-lo / scale)


def quantize(w: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor, bits: int) -> torch.Tensor:
    """The codes q = clamp(round(w / scale) + zero, 0, 2^bits - 1) (scale, zero broadcast to w)."""
    return torch.clamp(torch.round(w / scale) + zero, 0, 2 ** bits - 1)


def dequantize(codes: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor) -> torch.Tensor:
    return scale * (codes - zero)


def pack(codes: torch.Tensor, bits: int) -> bytes:
    """Integer codes in [0, 2^bits) packed at `bits` bits each (numpy.packbits of their bits)."""
    c = codes.detach().flatten().to(torch.uint8).cpu().numpy()
    planes = (c[:, None] >> np.arange(bits, dtype=np.uint8)) & 1
    return np.packbits(planes, bitorder="little").tobytes()


def unpack(data: bytes, count: int, bits: int) -> torch.Tensor:
    """The `count` codes that `pack` stored, as int64."""
    planes = np.unpackbits(np.frombuffer(data, dtype=np.uint8), count=count * bits, bitorder="little")
    return torch.from_numpy((planes.reshape(count, bits).astype(np.int64) << np.arange(bits)).sum(1))


@dataclass
class Grid:
    """The grid of one (rows, columns) weight matrix: scale and zero point per row and group."""

    bits: int
    columns: int
    group_size: int  # columns per group; `columns` for one group per output channel
    scale: torch.Tensor  # (rows, groups)
    zero: torch.Tensor  # (rows, groups), integer-valued

    @classmethod
    def empty(cls, rows: int, columns: int, bits: int, group_size: int, device: torch.device) -> Grid:
        """A grid to fill group by group (`set_group`); group_size 0 means per output channel."""
        size = group_size or columns
        groups = math.ceil(columns / size)
        return cls(bits, columns, size, torch.ones(rows, groups, device=device),
                   torch.zeros(rows, groups, device=device))

    @classmethod
    def fit(cls, w: torch.Tensor, bits: int, group_size: int) -> Grid:
        """The min-max grid of every group of `w` (round-to-nearest's grid)."""
        grid = cls.empty(*w.shape, bits, group_size, w.device)
        for start in range(0, w.shape[1], grid.group_size):
            grid.set_group(start, w[:, start:start + grid.group_size])
        return grid

    def set_group(self, start: int, w: torch.Tensor) -> None:
        """Fit the grid of the group starting at column `start` to the weights `w` of that group."""
        g = start // self.group_size
        self.scale[:, g], self.zero[:, g] = minmax_grid(w, self.bits)

    def expand(self, t: torch.Tensor) -> torch.Tensor:
        """A per-group tensor repeated over each group's columns: (rows, columns)."""
        return t.repeat_interleave(self.group_size, dim=1)[:, :self.columns]

    def codes(self, w: torch.Tensor) -> torch.Tensor:
        return quantize(w, self.expand(self.scale), self.expand(self.zero), self.bits)

    def round(self, w: torch.Tensor) -> torch.Tensor:
        """w rounded to the nearest grid point."""
        return dequantize(self.codes(w), self.expand(self.scale), self.expand(self.zero))

    def packed_bytes(self, w: torch.Tensor) -> int | None:
        """Bytes of `w` stored as packed codes, zero points and fp32 scales; None if `w` is not
        on the grid. Codes: all of them, or a bitmask of the nonzero weights plus their codes,
        whichever is smaller."""
        if w.shape != (self.scale.shape[0], self.columns) or not torch.equal(self.round(w), w):
            return None
        codes, nonzero = self.codes(w), w != 0
        dense = len(pack(codes, self.bits))
        sparse = len(np.packbits(nonzero.flatten().cpu().numpy())) + len(pack(codes[nonzero], self.bits))
        return min(dense, sparse) + len(pack(self.zero, self.bits)) + 4 * self.scale.numel()


def attach_size(model: nn.Module, grids: dict[str, Grid]) -> nn.Module:
    """Keep each layer's grid (its scales and zero points: what the packed encoding stores beside
    the codes) with the model, where `packed_bytes` finds them; a deep copy (the next link of a
    chain) carries its own, and is measured by its own weights."""
    model.lowbit_grids = grids
    return model


def packed_bytes(model: nn.Module) -> int | None:
    """The model's size with each gridded layer's weight packed (Grid.packed_bytes) and every
    other tensor, or a weight that left its grid, at its own size; None for a model without grids."""
    grids: dict[str, Grid] | None = getattr(model, "lowbit_grids", None)
    if grids is None:
        return None
    packed = {}
    for name, grid in grids.items():
        module = model.get_submodule(name)
        size = grid.packed_bytes(weight_matrix(module))
        if size is not None:
            packed[id(module.weight)] = size
    return sum(packed.get(id(t), t.numel() * t.element_size())
               for t in model.state_dict(keep_vars=True).values())


class OnGrid(nn.Module):
    """Parametrization whose value is the weight rounded to a fixed grid and whose gradient
    passes straight through the rounding (Bengio et al. 2013), as in `uniform`."""

    def __init__(self, scale: torch.Tensor, zero: torch.Tensor, bits: int):
        super().__init__()
        self.register_buffer("scale", scale, persistent=False)
        self.register_buffer("zero", zero, persistent=False)
        self.bits = bits

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        on_grid = dequantize(quantize(w.detach(), self.scale, self.zero, self.bits), self.scale, self.zero)
        return on_grid + (w - w.detach())


def finetune_on_grid(ctx: Context, model: nn.Module, grids: dict[str, Grid]) -> None:
    """Fine-tune for the suite's fine-tuning budget with every gridded weight on its grid (float
    shadow weights, straight-through rounding; zero weights held at zero), then leave the
    weights at their grid values."""
    modules = [model.get_submodule(name) for name in grids]
    for module, grid in zip(modules, grids.values()):
        scale, zero = (to_weight_layout(module, grid.expand(t)) for t in (grid.scale, grid.zero))
        parametrize.register_parametrization(module, "weight", OnGrid(scale, zero, grid.bits))
    ctx.finetune(model, hold_zeros=True)
    for module in modules:
        parametrize.remove_parametrizations(module, "weight")  # keeps the values on the grid
