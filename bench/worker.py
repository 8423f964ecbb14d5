"""The worker side of `bench run`: one task (a dense model to train, or method runs to execute
and measure), done wherever an executor puts it (a worker process, this process, a Ray node).

A task arrives as a `Task` and leaves as one `Outcome` per run: what happened (status, error,
metrics, figures, timings) and the facts of the device it ran on. A worker writes no record and
stamps no provenance: the driver (bench.runner, bench.sweep) alone does, so that a record names
the code the driver checked, whichever node ran it.

Each run is isolated from the others of its process:
- it gets its own copy of the data, the suite and its seed's dense model, and torch's global state
  (grad mode, default dtype, deterministic flags, thread count) is reset before it and restored
  after it, so nothing it does in place reaches the next run or the measurement;
- its model is judged on the worker's own untouched data;
- a method that raises (SystemExit included) or diverges is a failed outcome with its error, a
  model that is no measurable answer to the suite (non-finite values, the wrong output shape,
  parameters it never uses, weights the counts cannot see) an `invalid` one; the user's Ctrl-C
  alone stops the sweep (a KeyboardInterrupt the plugin raises itself fails its run:
  bench.errors.stops_the_sweep). A hang or a crash of the whole process is the executor's to catch.

Several runs in one task (`--fuse`) run as jobs of a bench.fused.Coordinator: one at a time, each
with its own context, their compatible training calls trained as one model. A run whose fused
training failed in the code the runs share (bench.fused.FusedStepError) comes back unfinished
(`Outcome.fused_fault`): the driver runs it again alone, as a task of its own.
"""

from __future__ import annotations

import contextlib
import copy
import os
import random
import resource
import sys
import time
import traceback
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy
import torch
import torch._dynamo  # noqa: F401 - it wraps torch.manual_seed as it loads: before _code_bindings, not in a run
import torch.nn.modules.module as module_hooks
from torch import nn

from bench import files, measure, provenance, registry
from bench.records import Status
from bench.chain import links
from bench.context import Context, DenseWeights, train_dense
from bench.data import Dataset, default_tensor_cache, load_dataset
from bench.fused import Coordinator, FuseLayout
from bench.locks import DeviceGate
from bench.plan import RunSpec, broken_link, build_method
from bench.errors import DenseMismatch, NotApplicable, first_line, stops_the_sweep
from bench.registry import BROKEN, error_summary
from bench.sparsity import weight_sparsity
from bench.suite import Suite
from bench.train import DivergedError, TrainResult, fit, model_device


@dataclass(frozen=True)
class Task:
    """A dense model to train, or runs to execute: everything a worker needs, picklable."""

    kind: str  # "dense" or "runs"
    suite: Suite  # budget overrides applied
    specs: tuple[RunSpec, ...]  # a dense task: one, method "dense", its seed; several runs train fused (bench.fused)
    source: str  # the data source the plan keyed the runs by; the worker must read the same
    data_dir: str | None
    device: str  # "cpu" or "cuda" (the worker's visible GPU)
    compile: str | None  # a torch.compile mode for training, or None (eager)
    threads: int | None  # torch threads for this task (None: torch's default)
    log_paths: tuple[str | None, ...]  # per run, where its log goes live; None: returned instead
    dense: dict[int, DenseWeights | str] = field(default_factory=dict)  # per seed: the model, or why it is missing
    checkpoint: str | None = None  # a dense task's per-epoch checkpoint (local executors)
    fuse_layout: FuseLayout = "model"  # the stacked tensors' memory layout (bench.fused.fit_group)
    timeout_s: float | None = None  # the whole task's time limit, enforced by the executor


@dataclass
class Outcome:
    """What a worker sends back for one run: plain data the driver turns into its record
    (bench.sweep.Sweep._record), so that a worker writes nothing and stamps no provenance."""

    result: dict[str, Any]  # status, error, metrics, figures, run_time_s; measure_time_s, measured_on, dense
    env: dict[str, Any]  # where it ran
    dense: DenseWeights | None = None  # a dense task's trained model
    log: str | None = None  # the run's log when the task had no log path (None: it is in that file)
    fused_fault: str | None = None  # its fused training met a fault of shared code (this): no result, to run alone


def failed_result(error: str, seconds: float = 0.0) -> dict[str, Any]:
    """An Outcome's result for a run that failed before its method's outcome was known (no data,
    a fault around the method, a dead or timed-out worker): the one shape of it, nothing measured."""
    return {"status": Status.FAILED, "error": error, "metrics": {}, "figures": {}, "run_time_s": seconds}


_DATASETS: dict[tuple, Dataset] = {}  # per process: a long-lived worker loads each dataset once


def _dataset(task: Task, device: torch.device) -> Dataset:
    """The task's data on its device. A worker reads its own data folder: the driver's path if it
    exists here, else $BENCH_DATA_DIR, else the default cache (downloading)."""
    root = task.data_dir if task.data_dir and Path(task.data_dir).exists() else os.environ.get("BENCH_DATA_DIR")
    b = task.suite.training
    key = (repr(task.suite.data), root, b.limit_train, b.limit_test, str(device))
    if key not in _DATASETS:
        _DATASETS.clear()  # one dataset at a time: they are large, and tasks come in suites
        _DATASETS[key] = load_dataset(task.suite.data, Path(root) if root else None, default_tensor_cache(),
                                      b.limit_train, b.limit_test).to(device)
    data = _DATASETS[key]
    if data.source != task.source:
        raise RuntimeError(f"this worker reads {data.source} (data dir {root}), but the run was planned "
                           f"on {task.source}: give every worker the same dataset")
    return data


def _check_latency_batch(suite: Suite, data: Dataset, device: torch.device, gate: DeviceGate) -> None:
    """The suite's largest latency batch goes through its model on this device, before anything
    trains: a batch too large for the device's memory (a suite's `latency_batches: [1, 10000000]`)
    failed each run only once it had trained, at its measurement. One image goes through first
    (after the gate, as a training step: another worker may be timing its model): a model that
    cannot take the suite's data at all fails there with its own error, not as a batch too large.
    The largest batch goes through alone on the device (`gate.alone()`), so that workers checking
    at once never each count the same free memory, nor slow another's timing; on a GPU the memory
    it took goes back to the device, which other workers share, rather than stay reserved in this
    one while its runs train. Costs two forward passes."""
    batch = max(suite.latency_batches)
    ctx = Context(suite, data, device, 0)
    model = ctx.new_model().eval()
    with torch.no_grad():
        gate.pass_through()
        model(measure_input(ctx, 1, device))
        try:
            with gate.alone(), _within_free_memory() if device.type == "cpu" else contextlib.nullcontext():
                model(measure_input(ctx, batch, device))
        except (RuntimeError, MemoryError) as e:  # torch's out-of-memory errors are RuntimeErrors
            raise RuntimeError(f"the suite's latency batch of {batch:,} images cannot run through its model on "
                               f"{device}, so no model could be measured: {first_line(str(e), 200)}") from None
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _proc_kib(path: str, field: str) -> int:
    """A `FIELD: N kB` line's N of a /proc file (Linux)."""
    with open(path) as f:
        return next(int(line.split()[1]) for line in f if line.startswith(f"{field}:"))


@contextlib.contextmanager
def _within_free_memory() -> Iterator[None]:
    """This process's address space bounded, while it lasts, to what it holds now and the memory
    the machine has free. On the CPU, only a batch larger than the machine's memory and swap was an
    allocation error (the kernel overcommits): a suite's `[1, 5000000]` on a 23 GB machine (MNIST
    peaks at 0.5 GB per 100,000 images: 25 GB) allocates, and its pages, which the kernel cannot
    back, leave the OOM killer to take the worker, in the inline executor the command, or another
    user's process. Bounded, the allocation fails, and the check names the batch (which it runs
    alone on the device, so that no two workers count the same free memory). Where /proc cannot
    say (not Linux) or a tighter limit is set, the limit is left alone."""
    try:
        limit = 1024 * (_proc_kib("/proc/self/status", "VmSize") + _proc_kib("/proc/meminfo", "MemAvailable"))
    except (OSError, ValueError, StopIteration):
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if any(v != resource.RLIM_INFINITY and v <= limit for v in (soft, hard)):
        yield
        return
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


class _Log:
    """One run's log: its file, written live and unbuffered (a line that cannot be written, on a
    full disk, fails at once naming the file), or kept to be returned; echoed with `echo`."""

    def __init__(self, path: str | None, echo: Callable[[str], None] | None):
        self.path, self.echo, self.lines, self.file = path, echo, [], None
        if path:
            try:  # not through a link planted at the path (-> ~/.bashrc), nor into a FIFO no one reads
                self.file = os.fdopen(files.open_regular(path, files.APPEND), "ab", buffering=0)
            except files.RefusedFile as e:  # returned instead: the driver writes it in the planted file's place
                self.path = None
                self(f"[bench: {path} is {e}: this run's log is not written through it, but returned and written "
                     "in its place]")

    def __call__(self, line: str) -> None:
        if self.file:
            with files.naming_file(self.path):
                self.file.write((line + "\n").encode())
        else:
            self.lines.append(line)
        if self.echo:
            self.echo(line)

    def text(self) -> str | None:
        return None if self.file else "\n".join(self.lines)

    def close(self) -> None:
        if self.file:
            self.file.close()


def perform(task: Task, echo: Callable[[str], None] | None = None) -> list[Outcome]:
    """Do a task in this process: train a dense model, or run methods and measure their models;
    one Outcome per run. `echo` also shows the logs (the inline executor prints them)."""
    logs = [_Log(path, echo) for path in task.log_paths]
    code = _code_bindings()  # before the plugins are imported: what a run must leave bound as it was
    try:
        if task.kind == "runs":  # the runs' plugins alone: each costs seconds of imports
            registry.load({link for spec in task.specs for link in links(spec.method)})
        if task.threads:
            torch.set_num_threads(task.threads)
        device = torch.device(task.device)
        torch.backends.cudnn.benchmark = device.type == "cuda"  # fixed shapes: autotune once
        env = provenance.environment(device)
        start = time.perf_counter()
        with DeviceGate(device) as gate:  # one per task: its descriptor is closed with it
            try:
                data = _dataset(task, device)
                _check_latency_batch(task.suite, data, device, gate)
            except Exception as e:  # noqa: BLE001 - no data, or no measurement: the task fails with the reason
                error, seconds = f"{type(e).__name__}: {e}", time.perf_counter() - start
                return [Outcome(failed_result(error, seconds), env, log=log.text()) for log in logs]
            if task.kind == "dense":
                (spec,), (log,) = task.specs, logs
                torch.manual_seed(spec.seed)
                ctx = Context(task.suite, data, device, spec.seed, log=log, compile=task.compile,
                              between_steps=gate.pass_through)
                return [_train_dense(ctx, Path(task.checkpoint) if task.checkpoint else None, env, log)]

            rebound: list[list[str]] = [[] for _ in task.specs]  # per run: what it rebound before a hand-off

            def job(j: int, spec: RunSpec, log: _Log) -> Callable[[Callable[..., TrainResult]], dict[str, Any]]:
                return lambda fit_with: _run(task, spec, data, device, gate, log, fit_with, code, rebound[j])

            jobs = [job(j, spec, log) for j, (spec, log) in enumerate(zip(task.specs, logs))]
            if len(jobs) > 1:  # the driver's --fuse K made the task: the runs' compatible training calls fuse
                # the jobs take turns, each saving the settings as it starts and putting them back as it
                # ends: one that starts second and ends last puts back what the first changed meanwhile.
                # What a job rebinds is put back as it hands on its turn, and is its own failure: the
                # job that ran next measured with it, and was blamed for it.
                def handoff(j: int) -> None:
                    rebound[j].extend(_put_back(code))

                coordinator = Coordinator(handoff, keep_layout=task.fuse_layout == "model")
                with _torch_defaults(task.threads):  # so the task puts back what was there before it
                    results = coordinator.run(jobs)  # _run turns every error but Ctrl-C into a status
                # A run whose training met a fault of fused training's shared code goes back to the
                # driver unfinished, to run again alone in a task of its own: the fault may be fusion's
                # own, on a device no test reached (the fused path had never run on CUDA when this was
                # written). Retrained here, one after another, such runs kept the others' finished
                # results from being written, and near a GPU window's end the task was lost whole.
                faults = {j: str(e) for j, e in coordinator.faulted.items()}
                for j in sorted(faults):
                    logs[j]("    the run is to train again alone, from its start: its fused training failed in "
                            "code the runs share (above)")
                return [Outcome(failed_result(f"FusedStepError: {faults[j]}") if j in faults else result, env,
                                log=log.text(), fused_fault=faults.get(j))
                        for j, (result, log) in enumerate(zip(results, logs))]
            else:
                results = [run(fit) for run in jobs]
        return [Outcome(result, env, log=log.text()) for result, log in zip(results, logs)]
    finally:
        for log in logs:
            log.close()


def _run(task: Task, spec: RunSpec, data: Dataset, device: torch.device, gate: DeviceGate, log: _Log,
         fit_with: Callable[..., TrainResult], code: dict[tuple[Any, str], Any],
         rebound_earlier: list[str]) -> dict[str, Any]:
    """One run, isolated: its own copies of the data and the dense model, torch's global state
    reset around it, its model judged on the worker's untouched data, and the harness's and
    torch's functions as `code` found them (see `_put_back`; `rebound_earlier`: what a fused
    run rebound before it handed on its turn). A fault in the harness's steps around the method
    (the reference model, the copies, the dense model's hash) fails this run, as execute() fails
    it for the method's own faults: never the task's other runs."""
    start = time.perf_counter()
    result = _measured_run(task, spec, data, device, gate, log, fit_with, start)
    if rebound := list(dict.fromkeys([*rebound_earlier, *_put_back(code)])):
        return failed_result(f"PluginError: the method rebound {', '.join(rebound[:5])}, code that measures this run "
                             "and later ones; put back, and this run is not ranked", time.perf_counter() - start)
    return result


def _measured_run(task: Task, spec: RunSpec, data: Dataset, device: torch.device, gate: DeviceGate, log: _Log,
                  fit_with: Callable[..., TrainResult], start: float) -> dict[str, Any]:
    try:
        with _torch_defaults(task.threads):
            dense = task.dense.get(spec.seed)
            reference = _reference(task, data, device, dense)
            torch.manual_seed(spec.seed)
            # its own suite, as its own data: the suite's lists (data.mean, dense_layers) are mutable, and
            # a plugin that edited them had the later runs of its process normalize and prune otherwise
            ctx = Context(copy.deepcopy(task.suite), data.copy(), device, spec.seed,
                          dense.copy() if isinstance(dense, DenseWeights) else dense, log=log, compile=task.compile,
                          between_steps=gate.pass_through)
            ctx.fit = fit_with
            judge = Context(task.suite, data, device, spec.seed, log=log)
            result = execute(spec, ctx, judge, reference, gate)
            if ctx.used_dense is not None:  # which dense model, trained by which code, it started from
                meta = ctx.used_dense.meta
                result["dense"] = {"commit": meta.get("git_commit"), "sha256": ctx.used_dense.sha256(),
                                   "train_time_s": meta["seconds"]}
            return result
    except (Exception, SystemExit) as e:  # noqa: BLE001 - this run's failed row
        return failed_result(_failure(e), time.perf_counter() - start)


# Where a plugin could rebind a function to change how runs are measured (a plugin that set
# bench.measure.count_nonzeros = lambda m: 1 gave the next run in its worker 100% sparsity):
# the harness's modules, and the torch namespaces that the measurement calls. Not nn.Module:
# torch rebinds its __init__ and __setstate__ itself, once, at the first torch.compile or export.
TORCH_SPACES = (torch, torch.nn.functional, torch.Tensor)


def _code_bindings() -> dict[tuple[Any, str], Any]:
    """The functions and classes bound in the harness's modules and in TORCH_SPACES, by
    (module or class, name)."""
    owners = [m for name, m in list(sys.modules.items()) if name == "bench" or name.startswith("bench.")]
    return {(owner, name): value for owner in [*owners, *TORCH_SPACES]
            for name, value in list(vars(owner).items()) if callable(value)}


def _put_back(code: dict[tuple[Any, str], Any]) -> list[str]:
    """Bind again what `code` holds where a run rebound it, and take away functions it added to
    TORCH_SPACES (torch.Tensor.count_nonzero = ... shadows the method); the names, if any. The
    plugin's process keeps running other runs: they must meet the code the harness tested."""
    changed = []
    for (owner, name), value in code.items():
        if vars(owner).get(name) is not value:
            setattr(owner, name, value)
            changed.append(f"{_named(owner)}.{name}")
    for owner in TORCH_SPACES:
        for name, value in list(vars(owner).items()):
            if callable(value) and (owner, name) not in code:
                delattr(owner, name)
                changed.append(f"{_named(owner)}.{name}")
    return changed


def _named(owner: Any) -> str:
    """A module's or a class's dotted name (torch.Tensor)."""
    return owner.__name__ if isinstance(owner, types.ModuleType) else f"{owner.__module__}.{owner.__qualname__}"


def _failure(e: BaseException) -> str:
    """A failed run's error: the one-line cause, then the end of the traceback (called in the
    except block that caught `e`)."""
    return f"{error_summary(e)}\n{traceback.format_exc(limit=-4)}"


def _reference(task: Task, data: Dataset, device: torch.device, dense: DenseWeights | str | None) -> dict[str, int]:
    """What sparsity and compression are relative to: the suite's dense model, trained where the
    seed's is at hand (an untrained one encodes its zero-initialized BatchNorm tensors smaller,
    which put cifar's dense row at 1.0029x)."""
    model = Context(task.suite, data, device, 0).new_model()
    if isinstance(dense, DenseWeights):
        try:
            model.load_state_dict(dense.state_dict)
        except RuntimeError as e:  # names or shapes of another model
            raise DenseMismatch("the cached dense model does not fit the suite's model: "
                                + " ".join(str(e).split())[:300]) from None
    return {"params": measure.count_params(model), "size_bytes": measure.size_bytes(model)}


@contextlib.contextmanager
def _torch_defaults(threads: int | None) -> Iterator[None]:
    """torch's process-wide settings as the harness sets them, during a run and back after it:
    a plugin that turns autograd off, changes the default dtype or device, autocast, oneDNN, cuDNN,
    the float32 precision of matmuls and convolutions, cuBLAS's fp16/bf16 reductions or denormal
    flushing (HARNESS_BACKENDS), the deterministic flags or the thread count, draws from (or seeds) Python's and
    numpy's global random generators, changes the working directory or the environment
    variables, or registers hooks on every module (torch.nn.modules.module.
    register_module_forward_hook and the like), does so for its own run only. (The harness reads
    variables as it goes, $BENCH_GIT_COMMIT among them, which marks the records that it names
    unverifiable. A default device of `meta` failed every later run in its worker; where
    --results-dir was relative, a working directory changed sent the inline executor's later
    records into another folder, and killed a worker opening its next run's log; a global
    forward hook left behind ran in every later model of its worker, and one that zeroed outputs
    gave their ok rows 10% accuracy.)"""
    saved = (torch.is_grad_enabled(), torch.get_default_dtype(), torch.are_deterministic_algorithms_enabled(),
             torch.is_deterministic_algorithms_warn_only_enabled(), torch.get_num_threads(),
             torch.is_anomaly_enabled(), torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic,
             random.getstate(), numpy.random.get_state())

    def restore(grad, dtype, deterministic, warn_only, n, anomaly, benchmark, cudnn_deterministic,
                python_random, numpy_random) -> None:
        torch.set_grad_enabled(grad)
        torch.set_default_dtype(dtype)
        torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
        torch.set_num_threads(n)
        torch.autograd.set_detect_anomaly(anomaly)
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = benchmark, cudnn_deterministic
        random.setstate(python_random)
        numpy.random.set_state(numpy_random)

    backends = _backend_settings()
    cwd, environ = os.getcwd(), dict(os.environ)
    # the caller's default device (torch.set_default_device, per thread): the inline executor runs
    # in the process of a script that calls bench.api.run, which may have set one
    device = getattr(getattr(torch, "_GLOBAL_DEVICE_CONTEXT", None), "device_context", None)
    hooks = {name: dict(value) if isinstance(value, dict) else value for name, value in vars(module_hooks).items()
             if name.startswith("_global_")}  # the registries of hooks on every module
    restore(True, torch.float32, False, False, threads or saved[4], False, saved[6], False, *saved[8:])
    torch.set_default_device(None)  # the harness sets none: tensors go where it puts them
    _set_backend_settings(*HARNESS_BACKENDS)
    try:
        yield
    finally:
        restore(*saved)
        _set_backend_settings(*backends)
        torch.set_default_device(device.device if device is not None else None)
        os.chdir(cwd)
        if os.environ != environ:
            os.environ.clear()
            os.environ.update(environ)
        for name, value in hooks.items():  # in place: a hook's handle removes it from the registry itself
            if isinstance(value, dict):
                getattr(module_hooks, name).clear()
                getattr(module_hooks, name).update(value)
            else:
                setattr(module_hooks, name, value)


# Autocast's switch and dtype per device type, oneDNN's and cuDNN's switches, the float32
# precisions, and whether denormal floats are flushed to zero: process-wide settings beside those _torch_defaults
# lists, at torch's defaults. A plugin that left autocast on (torch.set_autocast_enabled) had the
# next run of its process evaluated and timed in bf16; one that turned oneDNN off, timed without it.
_AUTOCAST_DEVICES = ("cpu", "cuda")
# cuBLAS's process-wide switches for fp16 and bf16 matmuls, as (owner, attribute, torch's default,
# which a run starts from): reductions in the inputs' own precision, fp16 accumulation. Each reads
# and sets on a torch without a GPU, from torch 2.7 on. (torch.backends.cuda.matmul.allow_tf32 is
# its float32 precision, FP32_PRECISIONS's; the attention backends' switches,
# enable_flash_sdp and the like, are left as they are: no model of the harness calls
# scaled_dot_product_attention.)
CUBLAS_SWITCHES = ((torch.backends.cuda.matmul, "allow_fp16_reduced_precision_reduction", True),
                   (torch.backends.cuda.matmul, "allow_bf16_reduced_precision_reduction", True),
                   (torch.backends.cuda.matmul, "allow_fp16_accumulation", False))
# The float32 precision of matmuls and convolutions in torch's newer API (2.9 on): each backend's
# `fp32_precision`, the generic one first, at torch's defaults ("none": inherit, IEEE fp32, the older
# API's "highest"; cuDNN's convolutions and RNNs TF32). Once a plugin set one of these, the older
# API's getters (get_float32_matmul_precision, cudnn.allow_tf32) raise ("mix of the legacy and new
# APIs"): the harness read them as each run began, so every later run of the worker failed, and
# oneDNN's convolutions left at bf16 stayed so. So a run's precisions are put back in both APIs
# (`_precisions`), and the older getters are read only where they answer.
FP32_PRECISIONS = ((torch.backends, "none"), (torch.backends.cuda.matmul, "none"), (torch.backends.cudnn, "none"),
                   (torch.backends.cudnn.conv, "tf32"), (torch.backends.cudnn.rnn, "tf32"),
                   (torch.backends.mkldnn, "none"), (torch.backends.mkldnn.matmul, "none"),
                   (torch.backends.mkldnn.conv, "none"), (torch.backends.mkldnn.rnn, "none"))
HARNESS_BACKENDS = (((False, torch.bfloat16), (False, torch.float16)), True, True,
                    ("highest", True, tuple(default for _, default in FP32_PRECISIONS)), False,
                    tuple(default for _, _, default in CUBLAS_SWITCHES))


def _precisions() -> tuple[str | None, bool | None, tuple[str, ...]]:
    """The float32 precisions as they are: the older API's matmul precision and cuDNN TF32 switch
    (None where a setting in the newer API makes their getters raise), and the newer API's."""
    def older(read: Callable[[], Any]) -> Any:
        try:
            return read()
        except RuntimeError:  # "mix of the legacy and new APIs"
            return None

    return (older(torch.get_float32_matmul_precision), older(lambda: torch.backends.cudnn.allow_tf32),
            tuple(owner.fp32_precision for owner, _ in FP32_PRECISIONS))


def _set_precisions(matmul: str | None, cudnn_tf32: bool | None, fp32: tuple[str, ...]) -> None:
    """Put `_precisions`'s back: the older API's first (its setters work in any state, and clear
    it), then the newer's, which hold the older's too."""
    torch.set_float32_matmul_precision(matmul or "highest")
    torch.backends.cudnn.allow_tf32 = True if cudnn_tf32 is None else cudnn_tf32
    for (owner, _), value in zip(FP32_PRECISIONS, fp32):
        owner.fp32_precision = value


def _backend_settings() -> tuple[Any, ...]:
    """The settings HARNESS_BACKENDS lists, as they are now (in its order)."""
    autocast = tuple((torch.is_autocast_enabled(d), torch.get_autocast_dtype(d)) for d in _AUTOCAST_DEVICES)
    return (autocast, torch.backends.mkldnn.enabled, torch.backends.cudnn.enabled, _precisions(),
            _denormals_flushed(), tuple(getattr(owner, name) for owner, name, _ in CUBLAS_SWITCHES))


def _set_backend_settings(autocast: tuple[tuple[bool, torch.dtype], ...], mkldnn: bool, cudnn: bool,
                          precisions: tuple[Any, ...], flush_denormal: bool, cublas: tuple[bool, ...]) -> None:
    for device, (enabled, dtype) in zip(_AUTOCAST_DEVICES, autocast):
        torch.set_autocast_enabled(device, enabled)
        torch.set_autocast_dtype(device, dtype)
    torch.backends.mkldnn.enabled, torch.backends.cudnn.enabled = mkldnn, cudnn
    _set_precisions(*precisions)
    torch.set_flush_denormal(flush_denormal)
    for (owner, name, _), value in zip(CUBLAS_SWITCHES, cublas):
        setattr(owner, name, value)


def _denormals_flushed() -> bool:
    """Whether torch.set_flush_denormal(True) is in force (torch has no getter): a denormal float
    reads back as 0. A float32 whatever the default dtype and device: 1e-40 is a normal float64,
    so a caller working in float64 read as not flushing, and had its flushing turned off after
    its run."""
    return torch.tensor([1e-40], dtype=torch.float32, device="cpu").item() == 0.0


def _train_dense(ctx: Context, checkpoint: Path | None, env: dict[str, Any], log: _Log) -> Outcome:
    start = time.perf_counter()
    weights, result = None, {"status": Status.OK, "error": None, "metrics": {}, "figures": {}}
    try:
        weights = train_dense(ctx, checkpoint)
        result["metrics"] = dict(weights.meta)
        weights.meta["device_name"] = env["device_name"]  # for --refresh; the driver adds the commit
    except DivergedError as e:
        result.update(status=Status.DIVERGED, error=str(e))
    except Exception as e:  # noqa: BLE001 - a failed dense model fails its seed's runs, not the sweep
        result.update(status=Status.FAILED, error=_failure(e))
    result["run_time_s"] = time.perf_counter() - start
    return Outcome(result, env, dense=weights, log=log.text())


def measure_model(model: nn.Module, ctx: Context, reference: dict[str, int]) -> dict[str, Any]:
    """Every metric of the registry (bench.metrics) on the returned model, on the device it lives on.

    Float convolutions are measured channels-last, like the dense model (see Context): for a
    weight with one input channel both layouts count as contiguous, and an elementwise op on it
    (a mask, a straight-through quantizer) returns NCHW, which ran LeNet-5 2x slower (measured in
    development at f08272c: bench.sparsity's _LayoutKeepingMask).

    The deploy step (bench.deploy) gives the model's compressed encoding and its form in each of
    the suite's runtimes; each form is checked against the model's PyTorch outputs and timed side
    by side with the suite's dense model deployed the same way. What each runtime could not take
    is in the record's `figures.deploy`.
    """
    from bench import deploy, metrics as metric_registry  # `metrics` is the dict this fills

    for module in model.modules():
        if isinstance(module, nn.Conv2d) and module.weight.is_floating_point():
            module.to(memory_format=torch.channels_last)
    model.eval()
    device = model_device(model)
    # Said before it starts: on a CPU it takes seconds per runtime (for mlp, often more than a quick
    # run's training: the committed records' measure_time_s, generated into README.md, Using it),
    # and the console showed nothing between the last epoch and the result.
    timed_in = [r for r in ctx.suite.runtimes if device.type in deploy.RUNTIMES[r].devices]
    ctx.log(f"  measuring: accuracy, size, FLOPs, and latency beside the dense model in {', '.join(timed_in)}")
    metrics: dict[str, Any] = {"accuracy": ctx.evaluate(model)}
    params, nonzeros = measure.count_params(model), measure.count_nonzeros(model)
    metrics.update(params=params, nonzeros=nonzeros,
                   sparsity=1.0 - nonzeros / reference["params"],
                   weight_sparsity=weight_sparsity(model))
    one = measure_input(ctx, 1, device)
    metrics["flops"], metrics["flops_effective"] = measure.flops(model, one)
    dense = ctx.new_model().to(device).eval()  # the reference of every speedup: only its shape matters
    # None where every weight is zero: no FLOPs to divide by (the model is measured all the same)
    metrics["theoretical_speedup"] = (measure.flops(dense, one)[0] / metrics["flops_effective"]
                                      if metrics["flops_effective"] else None)
    encoding, metrics["size_bytes"] = deploy.encoding(model)
    metrics["compression"] = reference["size_bytes"] / metrics["size_bytes"]
    inputs = {batch: measure_input(ctx, batch, device) for batch in ctx.suite.latency_batches}
    speed, notes = deploy.measure_runtimes(model, dense, inputs, ctx.suite.runtimes)
    metrics.update(speed)
    metrics["memory_bytes"] = measure.peak_inference_memory(model, inputs[max(inputs)])
    ctx.record(deploy={"encoding": encoding, "runtimes": notes, "versions": deploy.versions()})
    metric_registry.check(metrics)
    return metrics


def measure_input(ctx: Context, n: int, device: torch.device) -> torch.Tensor:
    """The first n normalized test images on `device` (the model's), repeated when --limit-test
    keeps fewer: a latency labelled batch 256 is always timed at batch 256."""
    x = ctx.data.test.x
    index = torch.arange(n, device=x.device) % len(x)
    return ctx.preprocess.normalize(x[index]).to(device)


class InvalidModelError(ValueError):
    """A returned model that is no measurable answer to the suite (status `invalid`)."""


def check_measurable(model: nn.Module, x: torch.Tensor, classes: int) -> None:
    """Raise InvalidModelError unless `model` is what the harness can measure honestly: finite
    parameters, buffers and outputs on `x`, one score per class of the suite for each image, and
    no parameter, buffer or attribute that makes the counted parameters, sparsity and size
    describe another model than the one that runs (bench.measure.uncounted_tensors)."""
    if masked := measure.unfolded_masks(model):
        raise InvalidModelError("the returned model still has pruning masks: call bench.sparsity.make_permanent(model) "
                                f"before returning it (torch.nn.utils.prune on {', '.join(masked[:5])}: weight_orig "
                                "keeps the pruned values, which would count as dense)")
    for name, t in [*model.named_parameters(), *model.named_buffers()]:
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise InvalidModelError(f"the returned model holds non-finite values in '{name}'")
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            out = model(x)
        if not isinstance(out, torch.Tensor) or tuple(out.shape) != (len(x), classes):
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise InvalidModelError(f"the returned model gives {shape} for {len(x)} test images; the suite "
                                    f"has {classes} classes, so each image needs {classes} scores")
        if not bool(torch.isfinite(out).all()):
            raise InvalidModelError(f"the returned model's outputs on {len(x)} test images are not finite")
        unused, hidden = measure.uncounted_tensors(model, x[:1])
    finally:
        model.train(was_training)
    if unused:
        raise InvalidModelError(f"the returned model has parameters its forward pass never uses "
                                f"({', '.join(unused[:5])}): they would count as its size and sparsity")
    if hidden:
        raise InvalidModelError(f"the returned model's forward pass uses {', '.join(hidden[:3])} that is "
                                "neither a parameter nor a buffer: its weights would go uncounted")
    if buffers := measure.float_weight_buffers(model):
        raise InvalidModelError(f"the returned model holds float weights in buffers ({', '.join(buffers[:5])}), "
                                "which the parameter counts leave out: register them as parameters")


def _return_hint(value: Any) -> str:
    """What a run() that returned `value` instead of a model most likely meant."""
    if value is None:
        return ": does run() end with `return model`?"
    if isinstance(value, (tuple, list)) and any(isinstance(v, nn.Module) for v in value):
        return ": return the model alone (ctx.record(...) stores other figures in the record)"
    if isinstance(value, dict):
        return ": return the model itself, not its state_dict()"
    return ""


def execute(spec: RunSpec, ctx: Context, judge: Context, reference: dict[str, int],
            gate: DeviceGate) -> dict[str, Any]:
    """Run one method on `ctx` and measure its model on `judge` (the same suite and seed on data
    the method never saw); failures become a status and an error, never an exception (except
    the user's Ctrl-C, which stops the sweep and writes nothing for this run; a plugin's
    SystemExit, KeyboardInterrupt or own BaseException is a failure of its run, not the end of
    the sweep). The model is measured alone on its device: other runs sharing it wait at the gate
    meanwhile."""
    start = time.perf_counter()
    out: dict[str, Any] = {"status": Status.OK, "error": None, "metrics": {}}
    try:
        if (broken := broken_link(spec.method)) is not None:
            raise ImportError(f"plugin '{broken}' failed to import: {BROKEN[broken]}")
        with _torch_defaults(torch.get_num_threads()):  # what the method changes ends with it
            model = build_method(spec.method, spec.params).run(ctx)
        if not isinstance(model, nn.Module):
            raise TypeError(f"{spec.method}.run() returned {type(model).__name__}, not an nn.Module{_return_hint(model)}")
        measure_start = time.perf_counter()
        check_measurable(model, measure_input(judge, max(judge.suite.latency_batches), model_device(model)),
                         judge.data.num_classes)
        with gate.alone():
            out["metrics"] = measure_model(model, judge, reference)
        where = model_device(model)  # an int8 model of a GPU run runs (and is timed) on the CPU
        out["measured_on"] = {"device": where.type, "device_name": provenance.device_name(where),
                              "threads": torch.get_num_threads()}
        out["metrics"].update(train_epochs=ctx.train_epochs, train_time_s=ctx.train_time_s,
                              method_time_s=ctx.train_time_s - ctx.dense_time_s)
        if ctx.train_flops is not None:
            out["metrics"]["train_flops"] = ctx.train_flops
        if ctx.fused_with > 1:
            out["metrics"]["fused_with"] = ctx.fused_with
        if ctx.compile:
            out["metrics"]["compile_time_s"] = ctx.compile_time_s
        out["measure_time_s"] = time.perf_counter() - measure_start
    except DivergedError as e:
        out.update(status=Status.DIVERGED, error=str(e))
    except NotApplicable as e:
        out.update(status=Status.SKIPPED, error=f"not applicable: {e}")
    except InvalidModelError as e:
        out.update(status=Status.INVALID, error=str(e), metrics={})
    except BaseException as e:  # noqa: BLE001 - a failing plugin is a failed row
        if stops_the_sweep(e):
            raise
        out.update(status=Status.FAILED, error=_failure(e))
    out["figures"] = {**ctx.figures, **judge.figures}
    out["run_time_s"] = time.perf_counter() - start
    return out
