"""The context a method's `run(ctx)` receives: the suite's data, models, loop and bookkeeping.

Methods only talk to the harness through this object, so that the harness can count what each
method spends (training epochs and time) and keep budgets matched across methods.
"""

from __future__ import annotations

import copy
import dataclasses
import os
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from torch import nn

from bench import layerwise, records
from bench.data import Dataset, Preprocess
from bench.models import build_model
from bench.suite import Budget, ModelSpec, Suite
from bench.train import Hook, LossFn, fit
from bench.train import evaluate as _evaluate


class Context:
    """What a method may use. Attributes: suite, budget, device, seed, data, preprocess."""

    def __init__(self, suite: Suite, data: Dataset, device: torch.device, seed: int,
                 dense_store: DenseStore, log: Callable[[str], None] = print, compile: bool = False):
        self.suite = suite
        self.budget: Budget = suite.training
        self.data = data  # on `device`; train limited by budget.limit_train
        self.device = device
        self.seed = seed
        self.preprocess = Preprocess(suite.data, device)
        self.log = log
        self.compile = compile  # torch.compile the training forward pass
        self.train_epochs = 0  # what this run spent, dense training included when used
        self.train_time_s = 0.0
        self.compile_time_s = 0.0
        self.figures: dict[str, Any] = {}
        self._dense = dense_store
        self._used_pretrained = False
        self._previous: nn.Module | None = None
        self._generator = torch.Generator(device=device).manual_seed(seed)

    # -- models -------------------------------------------------------------------------------
    def new_model(self, seed: int | None = None) -> nn.Module:
        """The suite's model, untrained, initialized from the run's seed (same init every call,
        the one the dense model started from), or from another `seed` for a fresh draw."""
        return self._build(self.suite.model, self.seed if seed is None else seed)

    def new_student(self) -> nn.Module:
        """The suite's smaller `student` model, untrained and seeded, for distillation."""
        if self.suite.student is None:
            raise ValueError(f"suite '{self.suite.name}' names no student model")
        return self._build(self.suite.student, self.seed)

    def _build(self, spec: ModelSpec, seed: int) -> nn.Module:
        torch.manual_seed(seed)
        model = build_model(spec.name, dict(spec.kwargs), self.data.num_classes,
                            in_channels=self.data.train.x.shape[1])
        # Channels-last: oneDNN and cuDNN convolutions run faster in NHWC (1.7x for LeNet-5 here).
        return model.to(self.device, memory_format=torch.channels_last)

    def pretrained(self) -> nn.Module:
        """A fresh copy of the suite's trained dense model for this seed (trained once, cached).

        Its training cost is added to this run's spent epochs and time the first time it is used.
        In a chain, later links get the previous link's model instead.
        """
        if self._previous is not None:
            return copy.deepcopy(self._previous)
        model, meta = self._dense.get(self)
        if not self._used_pretrained:
            self._used_pretrained = True
            self.train_epochs += meta["epochs"]
            self.train_time_s += meta["seconds"]
            self.compile_time_s += meta.get("compile_seconds", 0.0)
        return copy.deepcopy(model)

    def continue_from(self, model: nn.Module) -> None:
        """Make pretrained() return copies of `model`: the harness's hook for chains."""
        self._previous = model

    # -- training and evaluation --------------------------------------------------------------
    def train(self, model: nn.Module, epochs: int, *, lr: float | None = None,
              loss_fn: LossFn | None = None, after_backward: Hook | None = None,
              after_step: Hook | None = None,
              optimizer: torch.optim.Optimizer | None = None, precision: str | None = None) -> None:
        """Train in place with the suite's loop, optimizer and schedule (lr defaults to the
        dense rate). Hooks: loss_fn(logits, y, x) replaces the loss; after_backward(model, step)
        and after_step(model, step) run around each optimizer step. `precision` overrides the
        suite's, for models that cannot train in it (fake quantization takes fp32 only)."""
        budget = self.budget if precision is None else dataclasses.replace(self.budget, precision=precision)
        result = fit(model, self.data.train, self.preprocess, budget, epochs=epochs,
                     lr=self.budget.lr if lr is None else lr, generator=self._generator,
                     loss_fn=loss_fn, after_backward=after_backward, after_step=after_step,
                     optimizer=optimizer, log=self.log, compile=self.compile)
        self.train_epochs += epochs
        self.train_time_s += result.seconds
        self.compile_time_s += result.compile_seconds

    def evaluate(self, model: nn.Module) -> float:
        """Top-1 accuracy (fraction) on the test split."""
        return _evaluate(model, self.data.test, self.preprocess)

    def calibration_batches(self, n: int = 4, batch_size: int | None = None) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """n normalized (x, y) training batches drawn with the run's seed, for calibration."""
        bs = batch_size or self.budget.batch_size
        g = torch.Generator(device=self.device).manual_seed(self.seed)
        order = torch.randperm(len(self.data.train), device=self.device, generator=g)
        out = []
        for i in range(n):
            idx = order[i * bs:(i + 1) * bs]
            out.append((self.preprocess.normalize(self.data.train.x[idx]), self.data.train.y[idx]))
        return out

    @property
    def steps_per_epoch(self) -> int:
        return len(self.data.train) // min(self.budget.batch_size, len(self.data.train))

    def layer_inputs(self, model: nn.Module, samples: int = 128, *,
                     hessian: bool = True) -> Iterator[layerwise.Layer]:
        """Each Linear/Conv2d layer of `model`, in forward order, with its input statistics on
        `samples` calibration images, collected after the caller compressed the layers before
        it; the time spent is charged to the run. See bench.layerwise."""
        return layerwise.calibrated_layers(self, model, samples, hessian=hessian)

    def record(self, **figures: Any) -> None:
        """Extra figures for the run record (JSON-able values), e.g. ctx.record(l1_sparsity=0.4)."""
        self.figures.update(figures)


class DenseStore:
    """The dense model per (suite, seed, budget, data source): trained once, kept on disk and
    in memory, and reused by every method."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self._memory: dict[str, tuple[nn.Module, dict[str, Any]]] = {}

    def key(self, ctx: Context) -> str:
        s = ctx.suite
        return records.config_hash({
            "suite": s.name, "version": s.version, "model": vars(s.model), "data": vars(s.data),
            "budget": vars(s.training), "seed": ctx.seed, "source": ctx.data.source,
        })

    def get(self, ctx: Context) -> tuple[nn.Module, dict[str, Any]]:
        key = self.key(ctx)
        if key in self._memory:
            return self._memory[key]
        path = self.folder / f"dense-s{ctx.seed}-{key}.pt"
        model = ctx.new_model()
        if path.exists():
            saved = torch.load(path, map_location=ctx.device)
            model.load_state_dict(saved["state_dict"])
            meta = saved["meta"]
            ctx.log(f"  dense model (seed {ctx.seed}) from cache {path}")
        else:
            ctx.log(f"  training the dense model (seed {ctx.seed}, {ctx.budget.epochs} epochs), "
                    "cached for every method")
            g = torch.Generator(device=ctx.device).manual_seed(ctx.seed)
            result = fit(model, ctx.data.train, ctx.preprocess, ctx.budget, epochs=ctx.budget.epochs,
                         lr=ctx.budget.lr, generator=g, log=ctx.log, compile=ctx.compile)
            meta = {"epochs": ctx.budget.epochs, "seconds": result.seconds,
                    "compile_seconds": result.compile_seconds,
                    "accuracy": _evaluate(model, ctx.data.test, ctx.preprocess)}
            self.folder.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            torch.save({"state_dict": model.state_dict(), "meta": meta}, tmp)
            os.replace(tmp, path)
        self._memory[key] = (model, meta)
        return model, meta

