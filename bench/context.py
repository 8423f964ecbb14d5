"""The context a method's `run(ctx)` receives: the suite's data, models, loop and bookkeeping.

Methods only talk to the harness through this object, so that the harness can count what each
method spends (training epochs and time) and keep budgets matched across methods.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import numbers
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator

import safetensors
import safetensors.torch
import torch
from torch import nn

from bench import bounds, files, layerwise, measure
from bench.data import Dataset, Preprocess
from bench.errors import counted
from bench.models import build_model
from bench.sparsity import keep_dense, keep_zeros
from bench.suite import Budget, ModelSpec, Suite
from bench.train import CheckpointError, Hook, LossFn, TrainResult, batching, fit
from bench.train import evaluate as _evaluate


class Context:
    """What a method may use. Attributes: suite, budget, device, seed, data, preprocess."""

    def __init__(self, suite: Suite, data: Dataset, device: torch.device, seed: int,
                 dense: DenseWeights | str | None = None, log: Callable[[str], None] = print,
                 compile: str | None = None, between_steps: Callable[[], None] | None = None):
        self.suite = suite
        self.budget: Budget = suite.training
        self.data = data  # on `device`; train limited by budget.limit_train
        self.device = device
        self.seed = seed
        self.preprocess = Preprocess(suite.data, device)
        self.log = log
        self.compile = compile  # a torch.compile mode for the training forward pass, or None
        self.train_epochs = 0  # what this run spent, dense training included when used
        self.train_time_s = 0.0
        self.dense_time_s = 0.0  # the dense stage's share of train_time_s: its own record's figure
        # Forward + backward FLOPs of every training step, dense stage included: a cost that no
        # machine's load moves. None once a call could not be counted.
        self.train_flops: int | None = 0
        self._flops_per_image: dict[tuple, int] = {}
        self.fused_with = 1  # the most runs one of its training calls trained with (fused), itself included
        self.compile_time_s = 0.0
        self.figures: dict[str, Any] = {}
        # The trained dense model, given by the harness's dense stage; an error text if that
        # stage failed; None for a context built by hand (it is then trained on first use).
        self._dense = dense
        # Passed before each unit of device work the harness does for the run (a training step,
        # an evaluation batch, a calibrated layer): another process measuring its model on the
        # shared device holds the gate (bench.locks.DeviceGate), and this one's work waits.
        self._between_steps = between_steps
        self._used_pretrained = False
        self._previous: nn.Module | None = None
        self._generator = torch.Generator(device=device).manual_seed(seed)
        # The training loop: bench.train.fit, or a bench.fused.Coordinator's fit, which trains
        # this run's calls fused with other runs' (its signature and results are fit's).
        self.fit: Callable[..., TrainResult] = fit

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
        """Every model a run gets comes from here (the dense model's copies, fresh models, the
        student), so the layers the suite keeps dense are marked here and nowhere else."""
        torch.manual_seed(seed)
        model = build_model(spec.name, dict(spec.kwargs), self.data.num_classes,
                            in_channels=self.data.train.x.shape[1])
        keep_dense(model, self.suite.dense_layers)
        # Channels-last: oneDNN and cuDNN convolutions run faster in NHWC (a LeNet-5 epoch 1.7x
        # on the development CPU: benchmarks/RESULTS.md, Training epoch).
        return model.to(self.device, memory_format=torch.channels_last)

    def pretrained(self) -> nn.Module:
        """A fresh copy of the suite's trained dense model for this seed (trained once, cached).

        Its training cost is added to this run's spent epochs and time the first time it is used.
        In a chain, later links get the previous link's model instead.
        """
        if self._previous is not None:
            return copy.deepcopy(self._previous)
        if isinstance(self._dense, str):
            raise RuntimeError(f"the dense model of seed {self.seed} could not be trained: {self._dense}")
        if self._dense is None:
            self._dense = train_dense(self)
        meta = self._dense.meta
        with torch.random.fork_rng(devices=[]):  # leave the run's random stream as it was
            model = self.new_model()
        if not self._used_pretrained:
            self._used_pretrained = True
            self.train_epochs += meta["epochs"]
            self.train_time_s += meta["seconds"]
            self.dense_time_s = meta["seconds"]
            self.compile_time_s += meta.get("compile_seconds", 0.0)
            self._count_training(model, meta["epochs"])
        model.load_state_dict(self._dense.state_dict)
        return model

    @property
    def used_dense(self) -> DenseWeights | None:
        """The dense model this run started from (through `pretrained`), for its provenance."""
        return self._dense if self._used_pretrained and isinstance(self._dense, DenseWeights) else None

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
        result = self.fit(model, self.data.train, self.preprocess, budget, epochs=epochs,
                          lr=self.budget.lr if lr is None else lr, generator=self._generator,
                          loss_fn=loss_fn, after_backward=after_backward, after_step=after_step,
                          optimizer=optimizer, log=self.log, compile=self.compile,
                          between_steps=self._between_steps)
        self.train_epochs += epochs
        self.train_time_s += result.seconds
        self._count_training(model, epochs)
        self.compile_time_s += result.compile_seconds
        self.fused_with = max(self.fused_with, getattr(result, "fused_with", 1))

    def _count_training(self, model: nn.Module, epochs: int) -> None:
        """Add `epochs` epochs of training `model` to train_flops: the per-image FLOPs of a
        forward and backward pass, counted once per architecture, times the images the loop
        draws (whole batches). A model the counter cannot run makes the figure unknown."""
        if self.train_flops is None or epochs == 0:
            return
        shape = (type(model).__qualname__, *((n, tuple(p.shape)) for n, p in model.named_parameters()))
        if shape not in self._flops_per_image:
            try:
                example = self.preprocess.normalize(self.data.train.x[:2])
                self._flops_per_image[shape] = measure.training_flops(model, example)
            except Exception as e:  # noqa: BLE001 - a cost figure never fails a run
                self.log(f"  training FLOPs not counted ({type(e).__name__}: {e})")
                self.train_flops = None
                return
        images = self.steps_per_epoch * min(self.budget.batch_size, len(self.data.train))
        self.train_flops += epochs * images * self._flops_per_image[shape]

    def finetune(self, model: nn.Module, *, hold_zeros: bool = False, **options: Any) -> None:
        """Fine-tune in place as every post-training method does: the budget's finetune_epochs at
        its finetune_lr. `hold_zeros` keeps the weights that are zero now at zero after every
        step (the pruning or quantization a method did stays as it left it); other options are
        `train`'s (loss_fn, after_backward, after_step, optimizer, precision)."""
        if hold_zeros:
            if "after_step" in options:
                raise TypeError("finetune: hold_zeros is an after_step hook; pass one or the other")
            options["after_step"] = keep_zeros(model)
        self.train(model, epochs=self.budget.finetune_epochs, lr=self.budget.finetune_lr, **options)

    def charge(self, seconds: float) -> None:
        """Add compute a method spent outside training epochs (a one-shot method's calibration and
        solves, bench.layerwise) to the run's training cost."""
        self.train_time_s += seconds

    def evaluate(self, model: nn.Module) -> float:
        """Top-1 accuracy (fraction) on the test split."""
        return _evaluate(model, self.data.test, self.preprocess, self._between_steps)

    def calibration_batches(self, n: int = 4, batch_size: int | None = None) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """n normalized (x, y) training batches drawn with the run's seed, for calibration; fewer
        where the training split runs out first (the last one may be short), never an empty one."""
        bs = batch_size or self.budget.batch_size
        g = torch.Generator(device=self.device).manual_seed(self.seed)
        order = torch.randperm(len(self.data.train), device=self.device, generator=g)
        out = []
        for i in range(min(n, -(-len(order) // bs))):
            idx = order[i * bs:(i + 1) * bs]
            out.append((self.preprocess.normalize(self.data.train.x[idx]), self.data.train.y[idx]))
        return out

    @property
    def steps_per_epoch(self) -> int:
        return batching(len(self.data.train), self.budget.batch_size)[1]

    def layer_inputs(self, model: nn.Module, samples: int = 128, *, hessian: bool = True,
                     every_layer: bool = False) -> Iterator[layerwise.Layer]:
        """Each Linear/Conv2d layer of `model` that sparsity may prune (`every_layer`: also those
        the suite's `dense_layers` keeps dense, for a quantizer), in forward order, with its input
        statistics on `samples` training images drawn with the run's seed (all of them, where the
        split holds fewer: a quick run's --limit-train), collected after the caller
        compressed the layers before it (bench.layerwise.layer_inputs). The seconds from the
        first layer to the last, the caller's compression work included, are charged to the run
        and recorded as `compress_time_s` (summed over a chain's links), the images as
        `calibration_samples`."""
        start = time.perf_counter()
        # In batches of at most CALIBRATION_BATCH images: a ResNet's unfolded inputs of 1,024
        # images at once would take gigabytes.
        samples = min(samples, len(self.data.train))
        size = min(samples, layerwise.CALIBRATION_BATCH)
        batches = [x for x, _ in self.calibration_batches(n=-(-samples // size), batch_size=size)]
        batches[-1] = batches[-1][:samples - size * (len(batches) - 1)]
        yield from layerwise.layer_inputs(model, batches, hessian=hessian, every_layer=every_layer,
                                          between_steps=self._between_steps)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        seconds = time.perf_counter() - start
        self.charge(seconds)
        self.record(compress_time_s=self.figures.get("compress_time_s", 0.0) + seconds,
                    calibration_samples=sum(len(x) for x in batches))

    def record(self, **figures: Any) -> None:
        """Extra figures for the run record, e.g. ctx.record(l1_sparsity=0.4): numbers, strings,
        booleans, None, lists and dicts of those, and one-element tensors (recorded as numbers).
        Anything else raises TypeError here, naming it, so that the run fails with the reason
        instead of the sweep failing when it writes the record."""
        self.figures.update({name: _recordable(value, name) for name, value in figures.items()})


def _recordable(value: Any, where: str) -> Any:
    """`value` as JSON can hold it (a NumPy number or a one-element tensor as a Python number);
    TypeError otherwise, and ValueError for a NaN or an infinity, which strict JSON cannot hold
    (the record would fail to be written, without saying which figure)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        if not math.isfinite(value):
            raise ValueError(f"ctx.record: {where} is {float(value)}; a record holds finite numbers")
        return float(value)
    if isinstance(value, (list, tuple)):
        return [_recordable(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: _recordable(v, f"{where}.{k}") for k, v in value.items()}
    what = (f"a tensor of {value.numel()} elements" if isinstance(value, torch.Tensor)
            else "a dict with keys that are not strings" if isinstance(value, dict)
            else f"of type {type(value).__name__}")
    raise TypeError(f"ctx.record: {where} is {what}; a record holds numbers, strings, booleans, None, lists "
                    "and dicts of those, and one-element tensors")


# What a cache's metadata may hold beside its epochs, seconds and accuracy, each where present:
# the driver compares git_commit, device_name and commit_from_env under --refresh (a commit that
# was no text stopped it with a traceback) and identity with the file's name, and every run's
# record takes git_commit as its dense model's commit (a list there made each record malformed,
# so every command ran it again) and adds compile_seconds to its compile time. Provenance.Here.made,
# which --refresh asks of the cache as of a record, also reads method_origin and method_commit
# (plugin commits, which a dense model never names): a number there stopped it with a TypeError.
_META_TYPES: dict[str, tuple[type, ...]] = {"git_commit": (str, type(None)), "device_name": (str,), "identity": (str,),
                                            "commit_from_env": (bool,), "compile_seconds": (int, float),
                                            "method_origin": (dict,), "method_commit": (dict,)}


def _meta_problem(meta: dict[str, Any]) -> str | None:
    """Why a cache's metadata (epochs, seconds and accuracy already checked) cannot be used, as
    "KEY is ...", or None: a value of another type than _META_TYPES gives, or a compile time that
    is no finite number of seconds, not negative, within bounds.MAX_NUMBER."""
    for key, types in _META_TYPES.items():
        if key not in meta:
            continue
        value = meta[key]
        if not isinstance(value, types) or (bool not in types and isinstance(value, bool)):
            expected = " or ".join("null" if t is type(None) else t.__name__ for t in types)
            return f"{key} is {bounds.brief(value, 60)}, expected {expected}"
        if key == "compile_seconds" and not (bounds.finite(value) and value >= 0):
            return f"{key} is {value!r}, expected a finite number of seconds, not negative"
        if key == "method_commit" and not all(isinstance(v, (str, type(None))) for v in value.values()):
            return f"{key} is {bounds.brief(value, 60)}, expected a mapping of text or null"
    return None


@dataclass
class DenseWeights:
    """A trained dense model as its harness stage hands it to method runs: CPU tensors (they
    travel to worker processes and Ray nodes) and what training it cost."""

    state_dict: dict[str, torch.Tensor]
    meta: dict[str, Any]  # epochs, seconds, compile_seconds, accuracy; device_name, git_commit, identity (cached)

    def save(self, f: BinaryIO) -> None:
        """As safetensors, the provenance and cost in its metadata: a file that loads with no
        unpickler at all, so a cache planted in a results folder cannot run code, and small
        enough (about 1 MB for the suites' models) to commit where a GPU window needs it."""
        state = {k: v.contiguous() for k, v in self.state_dict.items()}
        f.write(safetensors.torch.save(state, metadata={"meta": json.dumps(self.meta, sort_keys=True)}))

    @classmethod
    def load(cls, path: Path) -> DenseWeights:
        """The weights `save` wrote to `path`; raises for a file that holds no dense model: not a
        regular file (a FIFO would block the read forever), or metadata that a record could not
        hold (NaN seconds made every later sweep crash writing its records; 1e20 seconds, beyond
        bounds.MAX_NUMBER, made every record of its runs malformed, so each command ran them
        again from the same file), other metadata of another type (_meta_problem), or weights
        that are not finite (every run of the seed would diverge, blamed on its method)."""
        files.check_regular(path)
        with safetensors.safe_open(str(path), framework="pt") as f:
            meta = json.loads((f.metadata() or {}).get("meta", "null"))
            state = {k: f.get_tensor(k) for k in f.keys()}
        given = {k: meta.get(k) for k in ("epochs", "seconds", "accuracy")} if isinstance(meta, dict) else {}
        if not given or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and bounds.finite(v)
                                and v >= 0 for v in given.values()) or given["accuracy"] > 1:
            raise ValueError(f"{path} holds no dense model (a state dict, and its epochs, seconds and accuracy: "
                             f"finite, within ±{bounds.MAX_NUMBER:g}, not negative)")
        if why := _meta_problem(meta):
            raise ValueError(f"{path} holds a dense model whose metadata's {why}")
        if not all(not t.is_floating_point() or bool(torch.isfinite(t).all()) for t in state.values()):
            raise ValueError(f"{path} holds weights that are not finite")
        return cls(state, meta)

    def sha256(self) -> str:
        """A digest of the weights (names, dtypes, shapes, bytes in name order): which dense model
        a run started from, comparable across machines and cache files."""
        h = hashlib.sha256()
        for name in sorted(self.state_dict):
            t = self.state_dict[name].detach().cpu().contiguous()
            h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        return h.hexdigest()

    def copy(self) -> DenseWeights:
        """A run's own copy: what a method does to it can reach no other run."""
        return DenseWeights({k: v.clone() for k, v in self.state_dict.items()}, dict(self.meta))


def train_dense(ctx: Context, checkpoint: Path | None = None) -> DenseWeights:
    """Train the suite's model from the seed's initialization for the dense budget, resuming
    from `checkpoint` (saved every epoch) when an earlier attempt was interrupted."""
    ctx.log(f"  training the dense model (seed {ctx.seed}, {counted(ctx.budget.epochs, 'epoch')}), "
            "shared by every method of this seed")
    try:
        model, result = _fit_dense(ctx, checkpoint)
    except CheckpointError as e:  # removed: train from the seed's initialization instead
        ctx.log(f"  {e}; training from the first epoch")
        model, result = _fit_dense(ctx, checkpoint)
    meta = {"epochs": ctx.budget.epochs, "seconds": result.seconds,
            "compile_seconds": result.compile_seconds,
            "accuracy": ctx.evaluate(model)}
    return DenseWeights({k: v.detach().cpu() for k, v in model.state_dict().items()}, meta)


def _fit_dense(ctx: Context, checkpoint: Path | None) -> tuple[nn.Module, TrainResult]:
    """One attempt from a fresh model and generator: after an unusable checkpoint, the next
    attempt trains exactly what an uninterrupted training would."""
    model = ctx.new_model()
    g = torch.Generator(device=ctx.device).manual_seed(ctx.seed)
    result = ctx.fit(model, ctx.data.train, ctx.preprocess, ctx.budget, epochs=ctx.budget.epochs,
                     lr=ctx.budget.lr, generator=g, log=ctx.log, compile=ctx.compile,
                     between_steps=ctx._between_steps, checkpoint=checkpoint)
    return model, result
