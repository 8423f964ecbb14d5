"""The suites' training loop and evaluation, over in-memory device tensors.

One loop serves every method: the hooks let a method replace the loss, edit gradients after the
backward pass, or re-apply masks after the optimizer step, without copying the loop. The step
loop never waits on the host: loss and accuracy are summed on the device and read once per epoch.
A suite with `precision: bf16` trains under bf16 autocast; `compile` (a torch.compile mode:
"default", or "reduce-overhead" for CUDA graphs) wraps the forward pass in torch.compile and
reports the first step, where compilation happens, apart from training time.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from bench.bounds import finite
from bench.data import Preprocess, Split
from bench.files import atomic_write, load_tensors
from bench.suite import Budget

LossFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]  # (logits, y, x) -> loss
Hook = Callable[[nn.Module, int], None]  # (model, step) -> None


class DivergedError(RuntimeError):
    """Training produced a non-finite loss."""


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be resumed from; it has been removed."""


@dataclass
class TrainResult:
    epochs: int
    seconds: float  # training wall time, compilation excluded
    compile_seconds: float  # the first step's wall time when compiling (0.0 otherwise)
    final_loss: float
    final_train_accuracy: float


def make_optimizer(params: Iterable[torch.nn.Parameter], budget: Budget, lr: float,
                   device: torch.device) -> torch.optim.Optimizer:
    """The suite's optimizer; fused kernels on CUDA, foreach elsewhere."""
    fast = {"fused": True} if device.type == "cuda" else {"foreach": True}
    if budget.optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=budget.momentum, nesterov=budget.nesterov,
                               weight_decay=budget.weight_decay, **fast)
    cls = torch.optim.Adam if budget.optimizer == "adam" else torch.optim.AdamW
    return cls(params, lr=lr, weight_decay=budget.weight_decay, **fast)


def batching(n: int, batch_size: int) -> tuple[int, int]:
    """(batch size, steps per epoch) for `n` training images: full batches only, and a budget's
    batch larger than the data shrinks to it."""
    bs = min(batch_size, n)
    return bs, n // bs


def default_loss(budget: Budget) -> LossFn:
    """Cross-entropy with the budget's label smoothing: the loss of a call that brings none."""
    def loss_fn(logits: torch.Tensor, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:  # noqa: ARG001 - x unused
        return F.cross_entropy(logits, y, label_smoothing=budget.label_smoothing)
    return loss_fn


def epoch_end(epoch: int, epochs: int, loss: float, accuracy: float, lr: float, seconds: float) -> str:
    """An epoch's log line; DivergedError for a non-finite loss (fit raises it, a fused group
    fails that run alone)."""
    if not math.isfinite(loss):
        raise DivergedError(f"training diverged at epoch {epoch}: loss is {loss}")
    return f"    epoch {epoch:>3}/{epochs}  loss {loss:.4f}  train acc {100 * accuracy:6.2f}%  lr {lr:.2e}  {seconds:5.1f}s"


def make_schedule(opt: torch.optim.Optimizer, budget: Budget, total_steps: int,
                  steps_per_epoch: int) -> torch.optim.lr_scheduler.LRScheduler:
    """Linear warm-up, then cosine decay to zero (or a constant rate), stepped every batch."""
    sched = torch.optim.lr_scheduler
    if budget.schedule == "constant":
        return sched.ConstantLR(opt, factor=1.0, total_iters=0)
    warmup = min(int(budget.warmup_epochs * steps_per_epoch), total_steps - 1)
    cosine = sched.CosineAnnealingLR(opt, T_max=max(total_steps - warmup, 1))
    if warmup <= 0:
        return cosine
    linear = sched.LinearLR(opt, start_factor=1e-3, total_iters=warmup)
    return sched.SequentialLR(opt, [linear, cosine], milestones=[warmup])


def fit(
    model: nn.Module,
    data: Split,
    preprocess: Preprocess,
    budget: Budget,
    *,
    epochs: int,
    lr: float,
    generator: torch.Generator,
    loss_fn: LossFn | None = None,
    after_backward: Hook | None = None,
    after_step: Hook | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    log: Callable[[str], None] = print,
    compile: str | None = None,
    between_steps: Callable[[], None] | None = None,
    checkpoint: Path | None = None,
) -> TrainResult:
    """Train `model` in place for `epochs` epochs of the suite's loop.

    Batches are slices of a fresh permutation each epoch (the last partial batch is dropped so
    every step sees the same batch size). `between_steps()` runs before each step: it lets a
    run that shares the device with this one time its model alone (see bench.locks).
    With `checkpoint`, the whole training state (model, optimizer, schedule, random generator,
    time spent) is saved there after every epoch, and a call that finds one resumes after its
    epoch: an interrupted long training loses at most one epoch and ends with the same weights.
    Raises DivergedError on a non-finite epoch loss, and CheckpointError (having removed the
    file) on a checkpoint it cannot resume from.
    """
    device = data.x.device
    bs, steps_per_epoch = batching(len(data), budget.batch_size)
    opt = optimizer or make_optimizer(model.parameters(), budget, lr, device)
    schedule = make_schedule(opt, budget, max(epochs * steps_per_epoch, 1), steps_per_epoch)
    loss_fn = loss_fn or default_loss(budget)
    forward = torch.compile(model, mode=compile) if compile else model
    autocast_bf16 = budget.precision == "bf16"
    start = time.perf_counter()
    compile_seconds = 0.0
    loss_value = accuracy = float("nan")
    step = first = 0
    if checkpoint is not None and checkpoint.exists():
        first, step, seconds = _resume(checkpoint, model, opt, schedule, generator, device)
        start -= seconds
        log(f"    resumed from {checkpoint} after epoch {first}")
    for epoch in range(first + 1, epochs + 1):
        model.train()
        t0, epoch_lr = time.perf_counter(), opt.param_groups[0]["lr"]
        order = torch.randperm(len(data), device=device, generator=generator)
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.long)
        for i in range(steps_per_epoch):
            if between_steps is not None:
                between_steps()
            idx = order[i * bs:(i + 1) * bs]
            x = preprocess.augment(preprocess.normalize(data.x[idx]), generator)
            y = data.y[idx]
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast_bf16):
                logits = forward(x)
                loss = loss_fn(logits, y, x)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if after_backward is not None:
                after_backward(model, step)
            opt.step()
            schedule.step()
            if after_step is not None:
                after_step(model, step)
            loss_sum += loss.detach()
            correct += (logits.detach().argmax(1) == y).sum()
            if compile and epoch == first + 1 and i == 0:  # this call's first step compiles
                _synchronize(device)
                compile_seconds = time.perf_counter() - t0
            step += 1
        loss_value = (loss_sum / steps_per_epoch).item()
        accuracy = correct.item() / (steps_per_epoch * bs)
        log(epoch_end(epoch, epochs, loss_value, accuracy, epoch_lr, time.perf_counter() - t0))
        if checkpoint is not None and epoch < epochs:
            state = {"model": model.state_dict(), "optimizer": opt.state_dict(), "schedule": schedule.state_dict(),
                     "generator": generator.get_state(), "epoch": epoch, "step": step,
                     "seconds": time.perf_counter() - start}
            atomic_write(checkpoint, lambda f: torch.save(state, f))
    model.zero_grad(set_to_none=True)  # a returned model carries no gradient memory
    return TrainResult(epochs, time.perf_counter() - start - compile_seconds, compile_seconds,
                       loss_value, accuracy)


def _resume(checkpoint: Path, model: nn.Module, opt: torch.optim.Optimizer,
            schedule: torch.optim.lr_scheduler.LRScheduler,
            generator: torch.Generator, device: torch.device) -> tuple[int, int, float]:
    """Load a training state that `fit` saved into the objects it came from; returns (epoch,
    step, seconds) at the end of its epoch.

    The file is read by torch's weights-only unpickler (bench.files.load_tensors): a file
    planted in the results folder must not run code, and a checkpoint holds nothing else than
    tensors, numbers and containers of them (the optimizer's and the schedule's state dicts
    included, SequentialLR's nested ones too).
    A file that does not load (truncated, refused, of another model) is removed and
    CheckpointError raised: the objects may be half restored, so the caller starts over.
    """
    try:
        state = load_tensors(checkpoint, map_location=device)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        generator.set_state(state["generator"].cpu())  # a generator's state is a CPU tensor, whatever its device
        epoch, step, seconds = int(state["epoch"]), int(state["step"]), float(state["seconds"])
        if epoch < 0 or step < 0 or not finite(seconds) or seconds < 0:  # NaN or 1e20 seconds would reach a record
            raise ValueError(f"epoch {epoch}, step {step}, seconds {seconds}: not a training state")
        return epoch, step, seconds
    except Exception as e:  # noqa: BLE001 - whatever is wrong with the file, it is not resumed from
        checkpoint.unlink(missing_ok=True)
        raise CheckpointError(f"the checkpoint {checkpoint} cannot be resumed from ({type(e).__name__}: {e}); "
                              "removed it") from None


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def model_device(model: nn.Module) -> torch.device:
    """Where a model's tensors live (CPU for a model without any, e.g. some int8 packages)."""
    for t in (*model.parameters(), *model.buffers()):
        return t.device
    return torch.device("cpu")


@torch.inference_mode()
def evaluate(model: nn.Module, data: Split, preprocess: Preprocess,
             between_steps: Callable[[], None] | None = None) -> float:
    """Top-1 accuracy (a fraction) on `data`, in eval mode, batched (10,000 images at a time on a
    GPU, 1,000 on a CPU), one host read at the end. `between_steps()` runs before each batch, as
    before each training step (fit)."""
    was_training = model.training
    model.eval()
    device = model_device(model)
    batch_size = 10_000 if device.type == "cuda" else 1000
    correct = torch.zeros((), device=device, dtype=torch.long)
    for i in range(0, len(data), batch_size):
        if between_steps is not None:
            between_steps()
        x = preprocess.normalize(data.x[i:i + batch_size]).to(device)
        correct += (model(x).argmax(1) == data.y[i:i + batch_size].to(device)).sum()
    model.train(was_training)
    return correct.item() / len(data)
