"""Layer-wise calibration for one-shot post-training methods (SparseGPT, Wanda, GPTQ).

These methods compress one layer at a time from the statistics of that layer's inputs X on a
few calibration images: the Hessian H = X^T X / rows of the layer-wise reconstruction loss
||X W^T - X W'^T||^2 (SparseGPT, GPTQ), or the norm ||X_j||_2 of each input feature (Wanda).
`layer_inputs` walks the Linear and Conv2d layers in forward order and gives each layer's
statistics just before the caller compresses it, so that every layer sees the outputs of the
already compressed layers before it. The papers' implementations go transformer block by
block: the Linear layers inside one block are calibrated together in one pass through it (GPTQ's
`--true-sequential` option, group of layers by group), then the block's compressed outputs feed
the next; here every Linear/Conv2d layer is its own step. Scale does not matter: the papers' code
accumulates 2 X^T X / samples (samples counting sequences, not rows), a constant multiple of
X^T X / rows, and their 1% dampening is relative to the mean diagonal.

A convolution is a matrix product over unfolded inputs: a row of X is one output position's
receptive field, and the weight is the matrix (out channels, kh * kw * in channels). Columns run
channels-last (kernel position, then input channel), the memory order of the harness's weights
and the one 2:4 sparse tensor cores use for NHWC convolutions, so an N:M group of consecutive
columns is consecutive input channels at one kernel position.

The time from the first layer to the last (calibration passes, Hessian inverses, the method's
own per-layer work) is charged to the run by `Context.layer_inputs`: it is added to the run's
`train_time_s`, the cost column of the leaderboard, and recorded apart as `compress_time_s`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bench.errors import NotApplicable
from bench.sparsity import PRUNABLE, kept_dense


def check_supported(module: nn.Module) -> None:
    """Raise NotApplicable for a layer that is not a Linear or a plain Conv2d."""
    if isinstance(module, nn.Linear):
        return
    if (isinstance(module, nn.Conv2d) and module.groups == 1 and module.padding_mode == "zeros"
            and not isinstance(module.padding, str)):
        return
    raise NotApplicable(f"layer-wise compression handles Linear and Conv2d (groups=1, zero padding), "
                        f"not {module}")


def weight_matrix(module: nn.Module) -> torch.Tensor:
    """The layer's weight as the (outputs, inputs) matrix its inputs multiply, a copy; for a
    Conv2d the inputs run kernel position by kernel position, channels innermost."""
    check_supported(module)
    w = module.weight.detach()
    return (w.permute(0, 2, 3, 1) if w.dim() == 4 else w).reshape(w.shape[0], -1).clone()


def to_weight_layout(module: nn.Module, matrix: torch.Tensor) -> torch.Tensor:
    """A matrix in `weight_matrix`'s layout, reshaped to the layer's weight shape."""
    w = module.weight
    if w.dim() == 4:
        out, cin, kh, kw = w.shape
        return matrix.reshape(out, kh, kw, cin).permute(0, 3, 1, 2)
    return matrix.reshape(w.shape)


@torch.no_grad()
def set_weight_matrix(module: nn.Module, matrix: torch.Tensor) -> None:
    """Write a `weight_matrix`-layout matrix into the layer's weight, keeping its memory layout."""
    module.weight.copy_(to_weight_layout(module, matrix))


def input_rows(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The layer's input as rows of X (one per sample, or per sample and output position of a
    convolution), columns in `weight_matrix`'s order."""
    if isinstance(module, nn.Linear):
        return x.reshape(-1, x.shape[-1])
    kh, kw = module.kernel_size
    cols = F.unfold(x, module.kernel_size, module.dilation, module.padding, module.stride)  # (B, C*kh*kw, L)
    b, _, positions = cols.shape
    cols = cols.view(b, -1, kh * kw, positions).transpose(1, 2)  # (B, kh*kw, C, L): channels innermost
    return cols.reshape(b, -1, positions).transpose(1, 2).reshape(b * positions, -1)


@dataclass
class Layer:
    """One layer's inputs on the calibration data, collected just before it is compressed."""

    name: str
    module: nn.Module
    rows: int  # input rows seen: samples, times output positions for a convolution
    sq_norms: torch.Tensor  # (inputs,) sum over rows of x_j^2
    hessian: torch.Tensor | None  # (inputs, inputs) X^T X / rows, when asked for

    @property
    def feature_norms(self) -> torch.Tensor:
        """||X_j||_2 of every input feature j (Wanda's activation norm)."""
        return self.sq_norms.sqrt()

    def weight(self) -> torch.Tensor:
        return weight_matrix(self.module)

    def set_weight(self, matrix: torch.Tensor) -> None:
        set_weight_matrix(self.module, matrix)


class _Stop(Exception):
    """Raised by an input hook to end a calibration pass once the wanted layer has its input."""


def forward_order(model: nn.Module, x: torch.Tensor, every_layer: bool = False) -> list[tuple[str, nn.Module]]:
    """The model's Linear and Conv layers in the order a forward pass first calls them: those
    sparsity methods may prune (bench.sparsity.prunable_weights), or with `every_layer` also
    those the suite keeps dense (a quantizer's pass); unsupported kinds raise NotApplicable."""
    order: list[tuple[str, nn.Module]] = []
    names = {m: n for n, m in model.named_modules()
             if isinstance(m, PRUNABLE) and (every_layer or not kept_dense(m))}
    for module in names:
        check_supported(module)

    def seen(module: nn.Module, _args: tuple) -> None:
        if all(module is not m for _, m in order):
            order.append((names[module], module))

    handles = [m.register_forward_pre_hook(seen) for m in names]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return order


@torch.no_grad()
def collect(model: nn.Module, name: str, module: nn.Module, batches: list[torch.Tensor],
            hessian: bool, between_steps: Callable[[], None] | None = None) -> Layer:
    """Run the batches through the model up to `module` and accumulate its input statistics;
    `between_steps()` before each batch (bench.context: another process may be timing its model
    on the device)."""
    rows, sq_norms, xtx = 0, None, None

    def hook(_module: nn.Module, args: tuple) -> None:
        nonlocal rows, sq_norms, xtx
        x = input_rows(module, args[0]).float()
        rows += x.shape[0]
        sq_norms = x.square().sum(0) + (0 if sq_norms is None else sq_norms)
        if hessian:
            xtx = x.T @ x + (0 if xtx is None else xtx)
        raise _Stop

    handle = module.register_forward_pre_hook(hook)
    try:
        for x in batches:
            if between_steps is not None:
                between_steps()
            try:
                model(x)
            except _Stop:
                pass
    finally:
        handle.remove()
    return Layer(name, module, rows, sq_norms, xtx / rows if hessian else None)


def layer_inputs(model: nn.Module, batches: list[torch.Tensor], *, hessian: bool = True,
                 every_layer: bool = False,
                 between_steps: Callable[[], None] | None = None) -> Iterator[Layer]:
    """Each Linear/Conv2d layer of `model` that sparsity may prune (with `every_layer`, also
    those the suite keeps dense) with its input statistics on `batches`, in forward order. A
    layer's statistics are collected when it is reached, after the caller has compressed the
    layers before it (the generator resumes only then): one truncated forward pass per layer.
    `hessian=False` skips X^T X for methods that need only the norms."""
    model.eval()
    for name, module in forward_order(model, batches[0][:1], every_layer):
        yield collect(model, name, module, batches, hessian, between_steps)


CALIBRATION_BATCH = 256


def inverse_hessian(hessian: torch.Tensor, dampening: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(U, dead): the upper Cholesky factor U of (H + dampening * mean(diag H) * I)^-1, where
    U[i, i:] / U[i, i] is how the not yet processed weights absorb the error of weight i and
    U[i, i]^2 its OBS denominator (SparseGPT and GPTQ); and the inputs that were always zero
    (diag H = 0), whose weights the methods set to zero, as the papers' code does."""
    h = hessian.clone()
    dead = h.diagonal() == 0
    h[dead, dead] = 1
    h.diagonal().add_(dampening * h.diagonal().mean())
    inverse = torch.cholesky_inverse(torch.linalg.cholesky(h))
    return torch.linalg.cholesky(inverse, upper=True), dead

