"""Helpers that sparsity methods share: which weights are prunable, and how sparse they are."""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import prune

from bench.errors import ParameterError

PRUNABLE = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)

# The attribute that marks a layer the suite keeps dense (`dense_layers`): set by the harness when
# it builds a run's model (bench.context), it travels with the module through deepcopy, chains
# and fused training. It is no part of a state dict: a model loaded from the dense-model cache
# is first built, and marked, by the harness.
KEPT_DENSE = "bench_kept_dense"


def weight_layers(model: nn.Module) -> list[nn.Module]:
    """Every Linear and Conv layer, in module order, kept dense or not: what quantizers compress."""
    return [m for m in model.modules() if isinstance(m, PRUNABLE)]


def kept_dense(module: nn.Module) -> bool:
    """True for a layer the suite's `dense_layers` rule keeps dense (see keep_dense)."""
    return getattr(module, KEPT_DENSE, False)


def prunable_weights(model: nn.Module) -> list[tuple[nn.Module, str]]:
    """(module, "weight") for every Linear and Conv layer but those the suite keeps dense: the
    weights sparsity methods prune and weight_sparsity is measured on."""
    return [(m, "weight") for m in weight_layers(model) if not kept_dense(m)]


def layer_roles(model: nn.Module) -> dict[str, nn.Module]:
    """The layer each role of a suite's `dense_layers` names: `first`, the first Linear/Conv layer
    in module order (the stem), and `classifier`, the model's own `get_classifier()` where it is
    one such layer (timm models), else the last one. Roles rather than module names, so that one
    suite rule fits every architecture. Empty for a model without such layers."""
    found = weight_layers(model)
    if not found:
        return {}
    head = model.get_classifier() if callable(getattr(model, "get_classifier", None)) else None
    return {"first": found[0], "classifier": head if isinstance(head, PRUNABLE) else found[-1]}


def keep_dense(model: nn.Module, roles: list[str]) -> nn.Module:
    """Mark the layers of `roles` (a suite's `dense_layers`) so that prunable_weights and
    bench.layerwise leave them out: the single place where the rule takes effect."""
    found = layer_roles(model)
    for role in roles:
        if role in found:
            setattr(found[role], KEPT_DENSE, True)
    return model


def weight_sparsity(model: nn.Module) -> float:
    """Fraction of the prunable weights that are exactly zero (masks applied where present): over
    the layers the suite lets be pruned, so that it reads against a method's target sparsity."""
    total = zeros = 0
    for module, name in prunable_weights(model):
        w = getattr(module, name)
        total += w.numel()
        zeros += int((w == 0).sum())
    return zeros / total if total else 0.0


def prune_unstructured(params: list[tuple[nn.Module, str]], pruning_method: type[prune.BasePruningMethod],
                       amount: int | float,
                       importance_scores: dict[tuple[nn.Module, str], torch.Tensor] | None = None) -> None:
    """Prune `params` with one ranking by `pruning_method` across all of them: global pruning
    when given every prunable weight, layer-wise when called once per layer.

    It is torch.nn.utils.prune.global_unstructured for weights in any memory format: torch's
    version (and l1_unstructured) flatten with .view(-1), which the harness's channels-last conv
    weights refuse. Here the same pruning method picks the mask over the reshaped scores, and
    prune.custom_from_mask attaches each layer's share: the same masks as torch's. The weights
    must carry no mask yet (make_permanent first).
    """
    if any(hasattr(m, n + "_mask") for m, n in params):
        raise ValueError("prune_unstructured: fold the existing masks first (make_permanent)")
    scores = [(importance_scores or {}).get((m, n), getattr(m, n)).detach().reshape(-1) for m, n in params]
    flat = torch.cat(scores)
    mask = pruning_method(amount).compute_mask(flat, default_mask=torch.ones_like(flat))
    for (module, name), piece in zip(params, mask.split([s.numel() for s in scores])):
        weight = getattr(module, name)
        mask_weight(module, name, torch.empty_like(weight).copy_(piece.view(weight.shape)))


def nm_mask(scores: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """Boolean keep-mask of a (rows, columns) score matrix with the N:M pattern: in every group
    of `m` consecutive columns of a row, the `n` highest scores (all of a last, shorter group
    that has at most `n`)."""
    rows, columns = scores.shape
    padded = F.pad(scores.float(), (0, -columns % m), value=-math.inf).view(rows, -1, m)
    keep = torch.zeros_like(padded, dtype=torch.bool).scatter_(2, padded.topk(n, dim=2).indices, True)
    return keep.view(rows, -1)[:, :columns]


def check_pattern(method: str, sparsity: float, n: int, m: int) -> None:
    """Raise ParameterError unless 0 <= sparsity < 1 and (n, m) is (0, 0), unstructured, or an
    N:M pattern 0 < n < m with the sparsity it fixes, 1 - n/m (set explicitly, the sparsity also
    makes the harness run the pattern once instead of at every swept level)."""
    if not 0 <= sparsity < 1:
        raise ParameterError(f"{method}: sparsity must be in [0, 1), got {sparsity}")
    if (n, m) == (0, 0):
        return
    if not 0 < n < m:
        raise ParameterError(f"{method}: N:M needs 0 < n < m (or n = m = 0, unstructured), got {n}:{m}")
    if abs(sparsity - (1 - n / m)) > 1e-9:
        raise ParameterError(f"{method}: {n}:{m} fixes the sparsity at {1 - n / m:g}; set "
                             f"{method}.sparsity={1 - n / m:g} too, got {sparsity:g}")


class _LayoutKeepingMask(prune.CustomFromMask):
    """torch's CustomFromMask, whose masked weight keeps the unmasked weight's memory layout.

    For a convolution with one input channel (LeNet-5's first layer) channels-last and NCHW
    strides are both "contiguous", and orig * mask comes out NCHW; the convolution then writes
    NCHW, and masked LeNet-5s trained and ran ~2x slower than the dense one (30 vs 16 ms a batch
    of 256 at one thread, measured in development at f08272c).
    """

    def apply_mask(self, module: nn.Module) -> torch.Tensor:
        weight = super().apply_mask(module)
        orig = getattr(module, self._tensor_name + "_orig")
        return weight if weight.stride() == orig.stride() else torch.empty_like(orig).copy_(weight)


def mask_weight(module: nn.Module, name: str, mask: torch.Tensor) -> None:
    """Hold `module.name` at zero where `mask` is 0 (torch.nn.utils.prune.custom_from_mask),
    keeping the weight's memory layout; make_permanent folds it in."""
    _LayoutKeepingMask.apply(module, name, mask=mask)


def make_permanent(model: nn.Module) -> nn.Module:
    """Fold torch.nn.utils.prune masks into the weights of every layer (kept dense or not: a mask
    left on one would be no plain model), leaving plain zeros and no hooks."""
    for module in weight_layers(model):
        if prune.is_pruned(module) and hasattr(module, "weight_mask"):
            prune.remove(module, "weight")
    return model


def erk_densities(model: nn.Module, sparsity: float) -> list[float]:
    """Erdos-Renyi-Kernel densities of the prunable weights (Evci et al. 2020), in the order of
    prunable_weights(model).

    A layer's density is proportional to sum(dims) / prod(dims), so small layers stay denser;
    the scale is chosen so that the overall density is 1 - sparsity. Layers that would exceed
    density 1 are made dense and the scale is solved again over the others.
    """
    shapes = [getattr(m, n).shape for m, n in prunable_weights(model)]
    sizes = [s.numel() for s in shapes]
    raw = [sum(s) / s.numel() for s in shapes]
    target = (1 - sparsity) * sum(sizes)
    dense: set[int] = set()
    while True:
        free = [i for i in range(len(shapes)) if i not in dense]
        budget = target - sum(sizes[i] for i in dense)
        scale = budget / sum(sizes[i] * raw[i] for i in free) if free else 0.0
        over = [i for i in free if scale * raw[i] > 1]
        if not over:
            return [1.0 if i in dense else scale * raw[i] for i in range(len(shapes))]
        dense.add(max(over, key=lambda i: raw[i]))  # cap the densest first, then re-solve


def random_masks(model: nn.Module, densities: list[float], generator: torch.Generator) -> list[torch.Tensor]:
    """Boolean masks of the prunable weights, each with exactly round(density * numel) True
    entries at uniformly random positions."""
    masks = []
    for (module, name), density in zip(prunable_weights(model), densities):
        w = getattr(module, name)
        keep = torch.randperm(w.numel(), device=w.device, generator=generator)[:round(density * w.numel())]
        mask = torch.zeros(w.numel(), dtype=torch.bool, device=w.device)
        mask[keep] = True
        masks.append(mask.view_as(w))
    return masks


GrowScore = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (weight, dense grad) -> score


class DynamicMasks:
    """Masks on a model's prunable weights that are held during ctx.train and, every `dt` steps
    before `end_step`, drop and regrow connections at constant per-layer sparsity (SET, RigL).

    Pass `after_backward` and `after_step` to ctx.train. Masked weights are zeroed after every
    optimizer step and their gradients before it, so neither the step nor weight decay revives
    them; a dropped weight's momentum then decays geometrically until it is regrown. At an update
    step each layer drops the `drop_fraction(step)` smallest-magnitude active weights and grows as
    many where `grow_score(weight, dense_grad)` is largest among the positions left inactive;
    connections that were inactive before start at zero. `trace` holds, per update, the step, the
    masks' sparsity and how many connections were newly grown.

    Two details differ from RigL's reference code, neither by much at the suites' SGD momentum
    0.9 and dt = 100: it zeroes the optimizer state of grown connections (here a never-active one
    has none, and one regrown at least dt steps after its drop keeps at most 0.9^dt of its
    momentum, 3e-5 at dt = 100), and it skips the weight update at a mask-update step (here the
    step is taken).
    """

    def __init__(self, model: nn.Module, masks: list[torch.Tensor], *, dt: int, end_step: int,
                 drop_fraction: Callable[[int], float], grow_score: GrowScore):
        self.weights = [getattr(m, n) for m, n in prunable_weights(model)]
        self.masks = masks
        self.dt, self.end_step = dt, end_step
        self.drop_fraction, self.grow_score = drop_fraction, grow_score
        self.trace: list[dict[str, float]] = []
        self._grads: list[torch.Tensor] = []
        self.apply()

    def is_update(self, step: int) -> bool:
        return 0 < step < self.end_step and step % self.dt == 0

    @torch.no_grad()
    def apply(self) -> None:
        for w, m in zip(self.weights, self.masks):
            w.mul_(m)

    @torch.no_grad()
    def after_backward(self, model: nn.Module, step: int) -> None:  # noqa: ARG002 - hook signature
        if self.is_update(step):
            self._grads = [w.grad.clone() for w in self.weights]  # the dense gradient, for RigL
        for w, m in zip(self.weights, self.masks):
            w.grad.mul_(m)

    @torch.no_grad()
    def after_step(self, model: nn.Module, step: int) -> None:  # noqa: ARG002 - hook signature
        self.apply()
        if not self.is_update(step):
            return
        fraction, grown, active = self.drop_fraction(step), 0, 0
        for i, (w, mask, g) in enumerate(zip(self.weights, self.masks, self._grads)):
            n_active = int(mask.sum())
            n = round(fraction * n_active)
            # reshape, not view: on CUDA a conv weight's gradient can be channels-last
            drop = torch.where(mask, w.abs(), torch.inf).reshape(-1).topk(n, largest=False).indices
            kept = mask.clone()
            kept.view(-1)[drop] = False
            score = torch.where(kept, -torch.inf, self.grow_score(w, g).float())
            new = kept.clone()
            new.view(-1)[score.reshape(-1).topk(n).indices] = True
            w.mul_(new & mask)  # newly grown connections start at zero
            self.masks[i] = new
            grown += int((new & ~mask).sum())
            active += int(new.sum())
        self._grads = []
        total = sum(m.numel() for m in self.masks)
        self.trace.append({"step": step, "sparsity": 1 - active / total, "grown": grown})


def keep_zeros(model: nn.Module) -> Callable[[nn.Module, int], None] | None:
    """An after_step hook that holds at zero the weights (dim > 1) that are exactly zero now."""
    masks = [(p, p != 0) for p in model.parameters() if p.dim() > 1 and not p.all()]
    if not masks:
        return None

    @torch.no_grad()
    def hook(_model: nn.Module, _step: int) -> None:
        for p, mask in masks:
            p.mul_(mask)

    return hook
