"""The worker side of `bench run`: one task (a dense model to train, or a method run to execute
and measure), done wherever an executor puts it (this process, a worker process, a Ray node).

A task arrives as a `Task` and leaves as an `Outcome`: what happened (status, error, metrics,
figures, timings) and the facts of the device it ran on. A worker writes no record and stamps no
provenance: the driver (bench.runner) alone does, so that a record names the code the driver
checked, whichever node ran it.

Each run is isolated: a method that raises (SystemExit included), diverges or returns something
unusable becomes a failed outcome with its error, a model with non-finite weights or outputs an
`invalid` one; KeyboardInterrupt alone stops the sweep.
"""

from __future__ import annotations

import os
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from bench import measure, records, registry
from bench.chain import links
from bench.context import Context, DenseWeights, train_dense
from bench.data import Dataset, default_tensor_cache, load_dataset
from bench.locks import DeviceGate
from bench.plan import RunSpec, build_method
from bench.registry import BROKEN, METHODS, NotApplicable, error_summary
from bench.sparsity import weight_sparsity
from bench.suite import Suite
from bench.train import DivergedError, model_device


@dataclass(frozen=True)
class Task:
    """A dense model to train, or a run to execute: everything a worker needs, picklable."""

    kind: str  # "dense" or "run"
    suite: Suite  # budget overrides applied
    spec: RunSpec  # for a dense task: method "dense", the seed
    source: str  # the data source the plan keyed the run by; the worker must read the same
    data_dir: str | None
    device: str  # "cpu" or "cuda" (the worker's visible GPU)
    compile: str | None  # a torch.compile mode for training, or None (eager)
    threads: int | None  # torch threads for this task (None: torch's default)
    log_path: str | None  # where the worker writes the run's log live; None: returned instead
    dense: DenseWeights | str | None = None  # the seed's dense model, or why it is missing
    checkpoint: str | None = None  # a dense task's per-epoch checkpoint (local executors)


@dataclass
class Outcome:
    result: dict[str, Any]  # status, error, metrics, figures, run_time_s (measure_time_s)
    env: dict[str, Any]  # where it ran
    dense: DenseWeights | None = None  # a dense task's trained model
    log: str | None = None  # the run's log when the task had no log_path (None: it is in that file)


_DATASETS: dict[tuple, Dataset] = {}  # per process: a long-lived worker loads each dataset once


def _dataset(task: Task, device: torch.device) -> Dataset:
    """The task's data on its device. A worker reads its own data folder: the driver's path if it
    exists here, else $BENCH_DATA_DIR, else the default cache (downloading)."""
    root = task.data_dir if task.data_dir and Path(task.data_dir).exists() else os.environ.get("BENCH_DATA_DIR")
    b = task.suite.training
    key = (repr(task.suite.data), root, b.limit_train, b.limit_test, str(device))
    if key not in _DATASETS:
        _DATASETS.clear()  # one dataset at a time: they are large, and tasks come in suites
        full = load_dataset(task.suite.data, Path(root) if root else None, cache_dir=default_tensor_cache())
        _DATASETS[key] = Dataset(full.train.subset(b.limit_train), full.test.subset(b.limit_test),
                                 full.source, full.num_classes).to(device)
    data = _DATASETS[key]
    if data.source != task.source:
        raise RuntimeError(f"this worker reads {data.source} (data dir {root}), but the run was planned "
                           f"on {task.source}: give every worker the same dataset")
    return data


def perform(task: Task, echo: Callable[[str], None] | None = None) -> Outcome:
    """Do a task in this process: train a dense model, or run a method and measure its model.
    `echo` also shows the log (the serial executor prints it)."""
    lines: list[str] = []
    # Unbuffered: a line that cannot be written (a full disk) fails at once, naming the file,
    # and closing the file has nothing left to fail on.
    log_file = open(task.log_path, "ab", buffering=0) if task.log_path else None  # noqa: SIM115

    def log(line: str) -> None:
        if log_file:
            with records.naming_file(task.log_path):
                log_file.write((line + "\n").encode())
        else:
            lines.append(line)
        if echo:
            echo(line)

    try:
        if task.kind == "run":
            registry.load(links(task.spec.method))  # its plugins alone: each costs seconds of imports
        if task.threads:
            torch.set_num_threads(task.threads)
        device = torch.device(task.device)
        torch.backends.cudnn.benchmark = device.type == "cuda"  # fixed shapes: autotune once
        env = records.environment(device)
        start = time.perf_counter()
        try:
            data = _dataset(task, device)
        except Exception as e:  # noqa: BLE001 - no data: the task fails with the reason
            result = {"status": "failed", "error": f"{type(e).__name__}: {e}", "metrics": {}, "figures": {},
                      "run_time_s": time.perf_counter() - start}
            return Outcome(result, env, log=None if log_file else "\n".join(lines))
        with DeviceGate(device) as gate:  # one per task: its descriptor is closed with it
            torch.manual_seed(task.spec.seed)
            ctx = Context(task.suite, data, device, task.spec.seed, task.dense, log=log,
                          compile=task.compile, between_steps=gate.pass_through)
            if task.kind == "dense":
                return _train_dense(ctx, Path(task.checkpoint) if task.checkpoint else None, env,
                                    None if log_file else lines)
            new = ctx.new_model()
            reference = {"params": measure.count_params(new), "size_bytes": measure.size_bytes(new)}
            result = execute(task.spec, ctx, reference, gate)
        return Outcome(result, env, log=None if log_file else "\n".join(lines))
    finally:
        if log_file:
            log_file.close()


def _train_dense(ctx: Context, checkpoint: Path | None, env: dict[str, Any], lines: list[str] | None) -> Outcome:
    start = time.perf_counter()
    weights, result = None, {"status": "ok", "error": None, "metrics": {}, "figures": {}}
    try:
        weights = train_dense(ctx, checkpoint)
        result["metrics"] = dict(weights.meta)
        weights.meta["device_name"] = env["device_name"]  # for --refresh; the driver adds the commit
    except DivergedError as e:
        result.update(status="diverged", error=str(e))
    except Exception as e:  # noqa: BLE001 - a failed dense model fails its seed's runs, not the sweep
        result.update(status="failed", error=f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=-4)}")
    result["run_time_s"] = time.perf_counter() - start
    return Outcome(result, env, dense=weights, log=None if lines is None else "\n".join(lines))


def measure_model(model: nn.Module, ctx: Context, reference: dict[str, int]) -> dict[str, Any]:
    """Every metric of the registry (bench.metrics) on the returned model, on the device it lives on.

    Float convolutions are measured channels-last, like the dense model (see Context): for a
    weight with one input channel both layouts count as contiguous, and an elementwise op on it
    (a mask, a straight-through quantizer) returns NCHW, which ran LeNet-5 2x slower.

    The deploy step (bench.deploy) gives the model's compressed encoding and its form in each of
    the suite's runtimes; each form is checked against the model's PyTorch outputs and timed side
    by side with the suite's dense model deployed the same way. What each runtime could not take
    is in the record's `figures.deploy`.
    """
    from bench import deploy, metrics as registry

    for module in model.modules():
        if isinstance(module, nn.Conv2d) and module.weight.is_floating_point():
            module.to(memory_format=torch.channels_last)
    model.eval()
    device = model_device(model)
    metrics: dict[str, Any] = {"accuracy": ctx.evaluate(model)}
    params, nonzeros = measure.count_params(model), measure.count_nonzeros(model)
    metrics.update(params=params, nonzeros=nonzeros,
                   sparsity=1.0 - nonzeros / reference["params"],
                   weight_sparsity=weight_sparsity(model))
    one = measure_input(ctx, 1, device)
    metrics["flops"], metrics["flops_effective"] = measure.flops(model, one)
    dense = ctx.new_model().to(device).eval()  # the reference of every speedup: only its shape matters
    metrics["theoretical_speedup"] = measure.flops(dense, one)[0] / metrics["flops_effective"]
    encoding, metrics["size_bytes"] = deploy.encoding(model)
    metrics["compression"] = reference["size_bytes"] / metrics["size_bytes"]
    inputs = {batch: measure_input(ctx, batch, device) for batch in ctx.suite.latency_batches}
    speed, notes = deploy.measure_runtimes(model, dense, inputs, ctx.suite.runtimes)
    metrics.update(speed)
    metrics["memory_bytes"] = measure.peak_inference_memory(model, inputs[max(inputs)])
    ctx.record(deploy={"encoding": encoding, "runtimes": notes, "versions": deploy.versions()})
    registry.check(metrics)
    return metrics


def measure_input(ctx: Context, n: int, device: torch.device) -> torch.Tensor:
    """The first n normalized test images on `device` (the model's), repeated when --limit-test
    keeps fewer: a latency labelled batch 256 is always timed at batch 256."""
    x = ctx.data.test.x
    index = torch.arange(n, device=x.device) % len(x)
    return ctx.preprocess.normalize(x[index]).to(device)


class InvalidModelError(ValueError):
    """A returned model with non-finite weights or outputs: it is no result (status `invalid`)."""


def check_finite(model: nn.Module, x: torch.Tensor) -> None:
    """Raise InvalidModelError if a floating-point parameter or buffer of `model`, or its output
    on `x`, holds a NaN or an infinity: such a model would otherwise be measured and ranked."""
    for name, t in [*model.named_parameters(), *model.named_buffers()]:
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise InvalidModelError(f"the returned model holds non-finite values in '{name}'")
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        out = model(x)
    model.train(was_training)
    if not bool(torch.isfinite(out).all()):
        raise InvalidModelError(f"the returned model's outputs on {len(x)} test images are not finite")


def execute(spec: RunSpec, ctx: Context, reference: dict[str, int], gate: DeviceGate) -> dict[str, Any]:
    """Run one method and measure it; failures become a status and an error, never an exception
    (except KeyboardInterrupt, which stops the sweep and writes nothing for this run; a plugin's
    SystemExit is a failure of its run, not the end of the sweep). The model is measured alone
    on its device: other runs sharing it wait at the gate meanwhile."""
    start = time.perf_counter()
    out: dict[str, Any] = {"status": "ok", "error": None, "metrics": {}}
    try:
        if spec.method in BROKEN and spec.method not in METHODS:
            raise ImportError(f"plugin '{spec.method}' failed to import: {BROKEN[spec.method]}")
        model = build_method(spec.method, spec.params).run(ctx)
        if not isinstance(model, nn.Module):
            raise TypeError(f"{spec.method}.run() returned {type(model).__name__}, not an nn.Module")
        measure_start = time.perf_counter()
        check_finite(model, measure_input(ctx, max(ctx.suite.latency_batches), model_device(model)))
        with gate.alone():
            out["metrics"] = measure_model(model, ctx, reference)
        where = model_device(model)  # an int8 model of a GPU run runs (and is timed) on the CPU
        out["measured_on"] = {"device": where.type, "device_name": records.device_name(where),
                              "threads": torch.get_num_threads()}
        out["metrics"].update(train_epochs=ctx.train_epochs, train_time_s=ctx.train_time_s)
        if ctx.compile:
            out["metrics"]["compile_time_s"] = ctx.compile_time_s
        out["measure_time_s"] = time.perf_counter() - measure_start
    except DivergedError as e:
        out.update(status="diverged", error=str(e))
    except NotApplicable as e:
        out.update(status="skipped", error=f"not applicable: {e}")
    except InvalidModelError as e:
        out.update(status="invalid", error=str(e))
    except (Exception, SystemExit) as e:  # noqa: BLE001 - a failing plugin is a failed row
        out.update(status="failed", error=f"{error_summary(e)}\n{traceback.format_exc(limit=-4)}")
    out["figures"] = ctx.figures
    out["run_time_s"] = time.perf_counter() - start
    return out
