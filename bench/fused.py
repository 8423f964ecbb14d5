"""Fused training: compatible `fit` calls train as one model, each run keeping its own everything.

Several runs of a suite train the same small architecture on the same schedule; one at a time
they leave a GPU mostly idle. Fused (horizontal fusion, as in HFTA, Wang et al. 2021), K runs'
weights are stacked along a new leading dimension and one forward and backward pass under
`torch.func.vmap(functional_call)` trains them all: batched matmuls, grouped convolutions and
per-run BatchNorm statistics, K times the work per kernel.

Fusion is an execution detail, invisible to methods:
- each run's nn.Parameter and buffer objects stay its own (its optimizer, schedule, hooks and
  masks act on them unchanged); only their storage becomes a view of the stacked tensor, and it
  is given back as each run's own storage when the run leaves the group;
- each run draws its own batches and augmentation from its own generator exactly as `fit` does,
  computes its own loss (any loss_fn) on its slice of the output, and takes its own optimizer
  and schedule steps and hooks, in `fit`'s order;
- a hook may change a model's structure (gmp prunes mid-training: weight becomes weight_orig
  and a weight_mask buffer): a cheap per-step fingerprint notices, and the runs are re-stacked
  by structure, so that runs which differ train as separate stacks in the same loop;
- a run that fails (non-finite epoch loss, a raising hook, a loss whose backward raises) leaves
  with its own exception; the others go on unchanged, since no computation mixes the runs' slices;
- a fault of the code the runs share (the stacked forward or backward pass, an optimizer step on
  the stacked tensors' views) fails them with `FusedStepError`, which may well be fusion's own
  (a CUDA kernel that refuses what vmap or the stacking gives it, memory for K runs): the
  Coordinator names the runs it failed so (`faulted`), and the driver (bench.sweep) runs each
  again alone, in a task of its own.

A call that cannot fuse gets `NotFusable` with the reason, and the caller trains it with `fit`:
torch.compile or a checkpoint, an exported graph module (PT2E QAT), a model whose forward pass
vmap cannot run (a custom autograd.Function without a vmap rule, random draws such as dropout,
which would leave the run's own random stream) or that gives other outputs under vmap, forward
hooks other than pruning masks, gradient hooks on parameters, or no other call to fuse with.

`Coordinator` runs K method runs in K threads, one at a time, and trains the `fit` calls they
make together, so that method code needs no change (see its docstring).

Costs (benchmarks/RESULTS.md, Fused training on a 2-core CPU): the gain must come from GPUs. On
the development CPU, fused LeNet-300-100 trained at 0.69-0.85x the epochs per second of one at a
time, and LeNet-5 at 0.38-0.54x, partly because vmap's max_pool2d rule folds the model dimension
into the batch, which copies channels-last activations into NCHW, where CPU max pooling is
several times slower (LeNet-5's first pool: same page, Training epoch, session 4). What fusion
adds per step is small next to that: the per-run optimizer steps cost what one foreach step over
all runs' tensors does, and the structural checks of K=4-8 runs with hooks 12-20 us a step (the
page's Fused training section).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import threading
import time
import traceback
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterator, Literal, TypeVar

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, vmap
from torch.nn.utils import prune
from torch.overrides import TorchFunctionMode

from bench.data import Preprocess, Split
from bench.errors import Interrupted, counted, first_line, stops_the_sweep
from bench.suite import Budget
from bench.train import (Hook, LossFn, TrainResult, batching, default_loss, epoch_end, fit, make_optimizer,
                         make_schedule)

T = TypeVar("T")

# `bench run --fuse auto`: the group size that measured fastest per device kind (README: Fused
# training; benchmarks/RESULTS.md, Fused training on a 2-core CPU). On the 2-core development CPU
# fusion measured slower for both CPU suites, in epochs per second and in runs per hour, so the CPU
# trains alone; CUDA stays alone until a GPU window measures it (benchmarks/gpu_session.sh picks the
# fastest setting there and passes it).
DEFAULT_FUSE = {"cpu": 1, "cuda": 1}
# The memory layout of a fused group's stacked weights and images (`bench run --fuse-layout`):
# the models' own, channels-last for the harness's, or NCHW, where a device's grouped convolutions
# prefer it (cuDNN's channels-last grouped kernels have slow paths: pytorch/pytorch#70954).
FuseLayout = Literal["model", "nchw"]


class NotFusable(Exception):
    """The call cannot train fused; the message says why. Train it alone with `fit`."""


class FusedStepError(RuntimeError):
    """A fused step failed in code its runs share rather than in a run's own (loss, hooks): the
    stacked forward or backward pass, or an optimizer step on views of the stacked tensors (CUDA's
    fused kernels check their layouts). Alone, the run may well train: the fault can be fusion's
    (a kernel or batch rule that only the GPU runs, memory for K runs), which no CPU test reaches.
    Its cause is the original error, whose traceback goes with it."""

    def __init__(self, cause: Exception):
        super().__init__(f"fused training failed in code the runs share: {_first_line(cause)}")
        self.__cause__ = cause

    def __reduce__(self) -> tuple[type, tuple[Exception]]:
        """Pickled with its cause (an executor sends a task's errors between processes): the
        default pickles the message as the argument, which the constructor takes for the cause."""
        return FusedStepError, (self.__cause__,)


def _shared_fault(e: BaseException) -> BaseException:
    """e as the fault of shared code: a FusedStepError caused by it; what is not an Exception
    (the user's stop, a plugin's SystemExit) passes as it is."""
    return FusedStepError(e) if isinstance(e, Exception) else e


@dataclass
class FusedResult(TrainResult):
    """`fit`'s result for a run trained fused. `seconds` is the run's share of the group's wall
    time: each step's time divided by the runs that took it, so the shares of a group add up to
    its wall time and a run's cost falls as K grows."""

    fused_with: int  # runs trained together, this one included
    group_seconds: float  # the group's wall time while this run was in it


class RunState:
    """What a run's code would meet in its own thread, put aside while other runs use it: torch's
    global random state (CPU, and every CUDA device when CUDA is available), one run's stream;
    and whether gradients are on (torch.no_grad, set_grad_enabled: a thread's own). A fused
    group's hooks run in the coordinator's thread: one that turned gradients off there and left
    them off failed every run of the group, where fit fails its own run alone."""

    def __init__(self) -> None:
        self.cpu = torch.get_rng_state()
        self.cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
        self.grad = torch.is_grad_enabled()

    def save(self) -> None:
        """Take the current state as this run's (it advanced while the run used it)."""
        self.cpu = torch.get_rng_state()
        if self.cuda is not None:
            self.cuda = torch.cuda.get_rng_state_all()
        self.grad = torch.is_grad_enabled()

    def restore(self) -> None:
        torch.set_rng_state(self.cpu)
        if self.cuda is not None:
            torch.cuda.set_rng_state_all(self.cuda)
        torch.set_grad_enabled(self.grad)


@contextmanager
def _own_state(state: RunState | None) -> Iterator[None]:
    """Let a run's code draw from its own global random stream, with gradients on or off as it
    left them, then put the caller's back."""
    if state is None:
        yield
        return
    outer = RunState()
    state.restore()
    try:
        yield
    finally:
        state.save()
        outer.restore()


@dataclass
class FitCall:
    """One `fit` call's arguments, plus the calling run's state (set by the Coordinator: the
    run's loss and hooks then draw from its own stream, with gradients as its thread had them)."""

    model: nn.Module
    data: Split
    preprocess: Preprocess
    budget: Budget
    epochs: int
    lr: float
    generator: torch.Generator
    loss_fn: LossFn | None = None
    after_backward: Hook | None = None
    after_step: Hook | None = None
    optimizer: torch.optim.Optimizer | None = None
    log: Callable[[str], None] = print
    compile: str | None = None
    between_steps: Callable[[], None] | None = None
    checkpoint: Path | None = None
    run_state: RunState | None = None

    @classmethod
    def bind(cls, *args: Any, **kwargs: Any) -> FitCall:
        """A call from `fit`'s own arguments (TypeError as `fit` would raise)."""
        return cls(**inspect.signature(fit).bind(*args, **kwargs).arguments)

    def fit_alone(self) -> TrainResult:
        with _own_state(self.run_state):
            return fit(**{f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                          if f.name != "run_state"})


# -- what may fuse with what --------------------------------------------------------------------

def _pruning_hooks(model: nn.Module) -> list[tuple[nn.Module, prune.BasePruningMethod]]:
    return [(m, h) for m in model.modules() for h in m._forward_pre_hooks.values()
            if isinstance(h, prune.BasePruningMethod)]


def _plain_attributes(module: nn.Module) -> tuple:
    """A module's public scalar settings (a conv's stride, a quantizer's bits): the same
    parameter shapes can still compute different functions."""
    simple = (bool, int, float, str, type(None))
    return tuple(sorted((k, v) for k, v in vars(module).items()
                        if not k.startswith("_") and k != "training"
                        and (isinstance(v, simple) or isinstance(v, tuple) and all(isinstance(e, simple) for e in v))))


def _signature(model: nn.Module, modes: bool = True) -> tuple:
    """What must be equal for two models to share one vmapped forward: module types (by name:
    parametrize makes a class per module), settings and training modes (`modes=False`: before
    `fit`'s model.train()), pruning hooks, and every parameter's and buffer's name, shape, dtype,
    device and requires_grad (not its layout: each run gets its own back). A model with hooks of
    its own (a hook registered them mid-training) matches no other: it trains in a stack of its
    own, through its own forward pass (_Stack.plain)."""
    modules = tuple((name, f"{type(m).__module__}.{type(m).__qualname__}", _plain_attributes(m),
                     m.training if modes else None,
                     tuple((type(h).__qualname__, getattr(h, "_tensor_name", None))
                           for h in m._forward_pre_hooks.values()))
                    for name, m in model.named_modules())
    params = tuple((n, tuple(p.shape), p.dtype, p.device, p.requires_grad) for n, p in model.named_parameters())
    buffers = tuple((n, tuple(b.shape), b.dtype, b.device) for n, b in model.named_buffers())
    return modules, params, buffers, id(model) if _hooks(model) else None


def _hooks(model: nn.Module) -> str | None:
    """What a fused forward and backward pass would not call as the model's own passes do: the
    first module with forward or backward hooks (other than pruning masks), or parameter with
    gradient hooks (Tensor.register_hook: a gradient mask), named; None if there is none."""
    for name, m in model.named_modules():
        extra = [h for h in m._forward_pre_hooks.values() if not isinstance(h, prune.BasePruningMethod)]
        if extra or m._forward_hooks or m._backward_hooks or m._backward_pre_hooks:
            return f"module '{name or type(m).__name__}' has forward or backward hooks (other than pruning masks)"
    for name, p in model.named_parameters():
        if p._backward_hooks or getattr(p, "_post_accumulate_grad_hooks", None):
            return f"parameter '{name}' has gradient hooks (Tensor.register_hook)"
    return None


def _hook_mark(hooks: dict | None) -> tuple[int, Any] | None:
    """A hook dict's size and newest handle id, None for none (see _Run.flags)."""
    return (len(hooks), next(reversed(hooks))) if hooks else None


@functools.cache
def autocast_reaches_vmap(device_type: str) -> bool:
    """Whether bf16 autocast casts linear layers and convolutions, with and without a bias, run
    under vmap on this device type, as it casts them in a model's own pass. On the CPU it casts
    only a linear layer without a bias (torch 2.15; functorch's own autocast test is skipped
    there, pytorch/functorch#327): fused, a bf16 suite's runs would train mostly in fp32 while
    their records say bf16. Tried once per process, on tensors of a few bytes."""
    def z(*shape: int) -> torch.Tensor:
        return torch.zeros(2, *shape, device=device_type)  # two runs' worth

    with torch.autocast(device_type, dtype=torch.bfloat16):
        out = [vmap(F.linear)(z(1, 2), z(3, 2)), vmap(F.linear)(z(1, 2), z(3, 2), z(3)),
               vmap(F.conv2d)(z(1, 1, 2, 2), z(3, 1, 1, 1)), vmap(F.conv2d)(z(1, 1, 2, 2), z(3, 1, 1, 1), z(3))]
    return all(o.dtype == torch.bfloat16 for o in out)


def _alone_reason(call: FitCall) -> str | None:
    """Why `call` cannot fuse with any call, judged without running anything; None if it may."""
    device = call.data.x.device.type
    if call.run_state is not None and not call.run_state.grad:
        return "it was called with gradients off (torch.no_grad), as fit trains it (and its backward pass fails)"
    if call.epochs < 1:  # (--finetune-epochs 0): no step to share, and fit leaves the model as it is
        return f"it trains {call.epochs} epochs"
    if call.budget.precision == "bf16" and not autocast_reaches_vmap(device):
        return (f"precision bf16: torch {torch.__version__}'s autocast does not reach operators under vmap on "
                f"{device}, so fused it would train in fp32")
    if call.compile:
        return f"compile={call.compile!r}: torch.compile compiles one model's forward pass"
    if call.checkpoint is not None:
        return "a checkpointed training saves and resumes one model's state"
    if isinstance(call.model, torch.fx.GraphModule):
        return "an exported graph module (torch.export, PT2E QAT) runs its own graph, not a module tree"
    if not any(p.requires_grad for p in call.model.parameters()):
        return "the model has no trainable parameters"
    if (hooks := _hooks(call.model)) is not None:
        return (f"{hooks}, which one fused pass would call once for every run, or never (the stacked "
                "weights' gradients do not pass through the parameter's)")
    return None


def _compatibility(call: FitCall) -> tuple:
    """Calls with equal keys can train in lockstep: same architecture, epochs, steps per
    epoch, batch size, optimizer kind, precision, device and input shape."""
    kind = type(call.optimizer).__name__ if call.optimizer is not None else call.budget.optimizer
    return (_signature(call.model, modes=False), call.epochs, batching(len(call.data), call.budget.batch_size), kind,
            call.budget.precision, call.data.x.device, tuple(call.data.x.shape[1:]), call.data.x.dtype)


def _plan(calls: list[FitCall]) -> tuple[list[list[int]], dict[int, str]]:
    """Indices of calls that may train together (groups of 2 or more, before probing), and why
    each other call trains alone."""
    reasons: dict[int, str] = {}
    seen_tensors: set[int] = set()  # (a model shared by two calls shares its trainable parameters)
    seen_generators: set[int] = set()
    keys: dict[tuple, list[int]] = {}
    for i, call in enumerate(calls):
        reason = _alone_reason(call)
        tensors = {id(t) for t in (*call.model.parameters(), *call.model.buffers())}
        if reason is None and tensors & seen_tensors:
            reason = "its model (or some of its tensors) is also trained by another call"
        if reason is None and id(call.generator) in seen_generators:
            reason = "it shares its random generator with another call, so their batches would interleave"
        if reason is not None:
            reasons[i] = reason
            continue
        seen_tensors |= tensors
        seen_generators.add(id(call.generator))
        keys.setdefault(_compatibility(call), []).append(i)
    groups = []
    for members in keys.values():
        if len(members) == 1:
            reasons[members[0]] = ("no other call has the same architecture (pruning masks included), epochs, "
                                   "steps per epoch, batch size, optimizer kind, precision and device")
        else:
            groups.append(members)
    return groups, reasons


# -- the fused forward pass ---------------------------------------------------------------------

def _tensors(model: nn.Module) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    return dict(model.named_parameters()), dict(model.named_buffers())


def _stack(tensors: list[torch.Tensor], keep_layout: bool = True) -> torch.Tensor:
    """[K, ...] whose slices keep the first tensor's memory layout (channels-last weights and
    images stay channels-last, so grouped convolutions see the layout the model was built in),
    or are contiguous (NCHW) with keep_layout=False."""
    first = tensors[0]
    like = torch.empty_like(first) if keep_layout else torch.empty(first.shape, dtype=first.dtype, device=first.device)
    out = torch.empty_strided((len(tensors), *like.shape), (like.numel(), *like.stride()),
                              dtype=like.dtype, device=like.device)
    return torch.stack([t.detach() for t in tensors], out=out)


def _functional_forward(template: nn.Module, params: dict, buffers: dict, x: torch.Tensor) -> torch.Tensor:
    return functional_call(template, (params, buffers), (x,))


class _Holdings:
    """Where models keep their tensors (every module's parameter and buffer dicts) and the
    masked weights their pruning hooks store: what a functional call on substitutes must leave
    as it found it. functional_call puts a model's tensors back itself, except where a submodule
    is shared: gating's gates serve a layer's weight and bias parametrizations, and with
    tie_weights the substitute is swapped in through both paths and left behind by one of them
    (a vmapped tensor escaping vmap, or a probe's copy silently taking a parameter's place).
    Built once per stack: walking a ResNet-20's modules every step would cost ~0.3 ms."""

    def __init__(self, models: list[nn.Module]):
        self.dicts = [d for model in models for m in model.modules() for d in (m._parameters, m._buffers) if d]
        self.hooks = [pair for model in models for pair in _pruning_hooks(model)]

    @contextmanager
    def kept(self) -> Iterator[None]:
        dicts = [(d, dict(d)) for d in self.dicts]
        masked = [(m, h._tensor_name, getattr(m, h._tensor_name, None)) for m, h in self.hooks]
        try:
            yield
        finally:
            for d, items in dicts:
                d.update(items)
            for m, name, value in masked:
                setattr(m, name, value)


class _BatchNormInFloat(TorchFunctionMode):
    """BatchNorm of bf16 or fp16 activations computed in float32, its output cast back. Under
    vmap, BatchNorm's batch rule runs the kernel with a stand-in weight of the activations' dtype
    beside the float32 running statistics, which the kernel refuses ("expected scalar type
    BFloat16 but found Float"; pytorch/pytorch#192617), where a model's own pass mixes them.
    Under CUDA autocast a bias-free convolution (ResNet-20's) hands BatchNorm bf16 activations:
    every fused step of a bf16 suite on a GPU failed so. A model's own pass computes BatchNorm
    of such activations in float32 too, and gives them back in their dtype, as this does. Only
    under autocast (`_fused_forward`): a mode sees every torch call of the pass, about 1 ms of a
    ResNet-20 step's Python on the development CPU."""

    def __torch_function__(self, func: Callable[..., Any], types: tuple[type, ...], args: tuple = (),
                           kwargs: dict[str, Any] | None = None) -> Any:
        kwargs = kwargs or {}
        if func is F.batch_norm and args and args[0].dtype in (torch.bfloat16, torch.float16):
            x = args[0]
            return func(x.float(), *args[1:], **kwargs).to(x.dtype)
        return func(*args, **kwargs)


def _fused_forward(template: nn.Module, params: dict, buffers: dict, x: torch.Tensor,
                   holdings: _Holdings | None = None) -> torch.Tensor:
    """One forward of the K stacked models on x [K, B, ...] -> [K, B, ...], the template's
    tensors left in place (`holdings`: the template's, if already known). Random draws raise
    (randomness="error"): a fused run must not draw from a stream that is not its own."""
    autocast = torch.is_autocast_enabled(x.device.type)
    with (holdings or _Holdings([template])).kept(), _BatchNormInFloat() if autocast else nullcontext():
        return vmap(partial(_functional_forward, template), randomness="error")(params, buffers, x)


def _first_line(e: BaseException) -> str:
    return f"{type(e).__name__}: {line}" if (line := first_line(str(e))) else type(e).__name__


def _probe_input(call: FitCall) -> torch.Tensor:
    n = min(4, len(call.data))
    return call.preprocess.normalize(call.data.x[:n])


def _cloned(model: nn.Module) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    params, buffers = _tensors(model)
    return ({n: p.detach().clone().requires_grad_(p.requires_grad) for n, p in params.items()},
            {n: b.detach().clone() for n, b in buffers.items()})


@contextmanager
def _settings_kept(models: list[nn.Module]) -> Iterator[None]:
    """Every module's attributes put back as they were (those added taken away), one level deep:
    the probe runs each model's forward pass several times, the template's the most, and a
    setting that pass changes (a step counter, a quantizer's flag that its first pass set its
    scale from the data) went on into training: the template's counter ahead of its partners'
    split their stack (the signature holds it), and a flag already set skipped the first pass's
    initialization even for a call then trained alone."""
    saved = [(vars(m), dict(vars(m))) for model in models for m in model.modules()]
    try:
        yield
    finally:
        for attributes, items in saved:
            for name in attributes.keys() - items.keys():
                del attributes[name]
            attributes.update(items)


def _cuda_devices() -> list[int]:
    """The CUDA devices whose random state a pass may advance (a CUDA model's dropout, which the
    probe's own forward pass runs before vmap refuses it): every one once CUDA is initialized,
    none before, where asking would initialize CUDA (a CPU sweep on a GPU machine). Each device's
    state is a few bytes."""
    return list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []


def _probe(calls: list[FitCall]) -> tuple[list[list[int]], dict[int, str]]:
    """Try the fused forward and backward on copies of the calls' tensors with a few images,
    in fp32: which calls fuse, in groups that give each run the outputs its own model gives, and
    why the others do not. The models, their tensors, generators and torch's random state are
    left as they were (pruning hooks' masked weights and the modules' settings included)."""
    reasons: dict[int, str] = {}
    own: dict[int, torch.Tensor] = {}
    with _settings_kept([c.model for c in calls]), torch.random.fork_rng(devices=_cuda_devices(), device_type="cuda"), \
            torch.enable_grad(), _Holdings([c.model for c in calls]).kept():
        for i, call in enumerate(calls):
            call.model.train()  # as fit trains it
            x = _probe_input(call)
            try:
                own[i] = functional_call(call.model, _cloned(call.model), (x,)).detach()
                params, buffers = _cloned(call.model)
                stacked = ({n: _stack([p]).requires_grad_(p.requires_grad) for n, p in params.items()},
                           {n: _stack([b]) for n, b in buffers.items()})
                _fused_forward(call.model, *stacked, _stack([x])).float().sum().backward()
            except Exception as e:  # noqa: BLE001 - any failure means: train alone, and say why
                reasons[i] = f"its model cannot train under torch.func.vmap: {_first_line(e)}"
        groups, pending = [], [i for i in range(len(calls)) if i not in reasons]
        alone = "no other call computes the same function of its weights (a setting outside them differs)"
        while len(pending) > 1:  # runs that differ from the template try again among themselves
            clones = [_cloned(calls[i].model) for i in pending]
            params = {n: _stack([c[0][n] for c in clones]) for n in clones[0][0]}
            buffers = {n: _stack([c[1][n] for c in clones]) for n in clones[0][1]}
            x = _stack([_probe_input(calls[i]) for i in pending])
            template = calls[pending[0]].model
            try:
                out = _fused_forward(template, params, buffers, x).detach()
                # The template's code on each run's own tensors through the plain kernels, as its own
                # forward pass ran: the same function gives the same numbers there, so a setting
                # outside the weights is judged at the CPU's bound on every device, whatever slack
                # the grouped kernels need (_tolerance).
                with _Holdings([template]).kept():  # (gating's shared gates: see _Holdings)
                    as_template = [own[pending[0]], *(_functional_forward(template, *clones[k], _probe_input(calls[i]))
                                                      .detach() for k, i in enumerate(pending) if k > 0)]
            except Exception as e:  # noqa: BLE001
                reasons.update({i: f"its model cannot train fused: {_first_line(e)}" for i in pending})
                return groups, reasons
            same = [i for k, i in enumerate(pending)
                    if _close(out[k], own[i], _tolerance(out)) and _close(as_template[k], own[i], SAME_FUNCTION)]
            if pending[0] not in same:  # (the others that matched try again, with another template)
                reasons[pending[0]] = "its forward pass under vmap differs from its own forward pass"
                same = [pending[0]]
            elif len(same) == 1:
                reasons[pending[0]] = alone
            else:
                groups.append(same)
            pending = [i for i in pending if i not in same]
        reasons.update({i: alone for i in pending})
    return groups, reasons


# How far, relative to its scale, a run's output from the template's code on its tensors may lie
# from its own output, both through the plain kernels, where the same code gives the same numbers.
# A setting outside the weights that the signature cannot see (one held in a dict or an object)
# moves the output further: LeNet-300-100's weights quantized to 8 and to 7 bits give outputs
# 5e-3 apart, within the GPU's bound for the grouped kernels.
SAME_FUNCTION = 1e-3


def _close(out: torch.Tensor, own: torch.Tensor, tolerance: float) -> bool:
    return torch.allclose(out, own, rtol=tolerance, atol=tolerance * max(1.0, own.abs().max().item()), equal_nan=True)


def _tolerance(out: torch.Tensor) -> float:
    """How far, relative to its scale, a run's output under vmap may lie from its own and still
    be the same function of its weights. On the CPU the two differ by summation order (about
    1e-6). On a GPU, cuDNN computes float32 convolutions in TF32 by default (a 10-bit mantissa),
    and the grouped and the plain convolution may take different algorithms: through ResNet-20,
    with TF32 simulated on one path on the CPU, they lay 0.95e-3 apart, near the CPU's bound,
    past which every run of a GPU sweep would train alone. A bound that loose no longer tells
    every setting outside the weights apart (8- and 7-bit quantization lie 5e-3 apart): the
    plain kernels judge those (SAME_FUNCTION)."""
    return 1e-2 if out.is_cuda else 1e-3


# -- fused training -----------------------------------------------------------------------------

class _Run:
    """One call's training state, as `fit` keeps it."""

    def __init__(self, call: FitCall, fused_with: int):
        self.call = call
        budget = call.budget
        self.bs, self.steps_per_epoch = batching(len(call.data), budget.batch_size)
        device = call.data.x.device
        self.result: TrainResult | BaseException | None = None
        try:  # fit's first lines: what they raise (a negative lr) is the run's own error, before any step
            self.opt = call.optimizer or make_optimizer(call.model.parameters(), budget, call.lr, device)
            self.schedule = make_schedule(self.opt, budget, max(call.epochs * self.steps_per_epoch, 1),
                                          self.steps_per_epoch)
        except Exception as e:  # noqa: BLE001 - the run's result; it never joins a stack
            self.result = e
        self.loss_fn = call.loss_fn or default_loss(budget)
        # Python code of the run's own that may draw random numbers or change the model.
        self.has_code = any(f is not None for f in (call.loss_fn, call.after_backward, call.after_step))
        self.fused_with = fused_with
        self.step = 0
        self.seconds = 0.0
        self.start = time.perf_counter()
        self.order = self.loss_sum = self.correct = None
        self.epoch_lr = float("nan")
        self.epoch_start = 0.0
        self.loss_value = self.accuracy = float("nan")
        self.refresh()
        # each tensor's strides alone, by name, read before any stacking; and the layout of the
        # model's 4-D tensors (channels-last or not), for those it gains while stacked (`own_stride`)
        self.layouts = {n: t.stride() for n, t in (*self.params.items(), *self.buffers.items())}
        self.channels_last = any(t.dim() == 4 and not t.is_contiguous()
                                 and t.is_contiguous(memory_format=torch.channels_last) for t in self.params.values())

    def refresh(self) -> None:
        """Re-read which tensors the model holds (after stacking or a structural change)."""
        model = self.call.model
        self.params, self.buffers = _tensors(model)
        self.prune_hooks = _pruning_hooks(model)
        self.modules = list(model.modules())
        self.dicts = [d for m in self.modules for d in (m._parameters, m._buffers)]
        self.hook_dicts = [d for m in self.modules  # (a module keeps its hook dicts, and fills them in place)
                           for d in (m._forward_pre_hooks, m._forward_hooks, m._backward_hooks, m._backward_pre_hooks)]
        self.settings = [(vars(m), k) for m in self.modules for k, _ in _plain_attributes(m)]
        self.fingerprint = self._fingerprint()

    def _fingerprint(self) -> tuple[list[tuple[str, int, int]], list[Any], tuple[list, ...]]:
        """Which tensor objects the modules hold, under which names, and where their storage is:
        it changes when a hook replaces a tensor (or its .data) or changes the model's structure
        (pruning renames weight to weight_orig and adds a mask; a module gaining a tensor holds
        it in a dict that was empty). Under 1 us per tensor (K runs' checks: benchmarks/RESULTS.md,
        Fused training on a 2-core CPU), paid by runs with hooks only. And
        the modules' scalar settings (a hook that anneals a temperature or changes a stride): the
        stack's forward pass runs its first model's module code, whose settings every run would
        otherwise train with. About 30 ns per setting. And the modules' training modes, the
        parameters' requires_grad and the hooks registered on either (a hook that puts BatchNorm
        in eval mode, freezes a layer or adds a gradient mask): the stack would train with the
        first model's modes and the stacked parameters' flags, and call no hook of the run's."""
        return ([(k, id(t), t.data_ptr()) for d in self.dicts for k, t in d.items() if t is not None],
                self.setting_values(), self.flags())

    def flags(self) -> tuple[list, ...]:
        """The modules' modes, the parameters' requires_grad and gradient hooks, and the modules'
        hooks, each hook dict by its size and newest handle id (ids are never reused: an added
        hook, or one removed, changes them), which costs a third of listing every handle."""
        return ([m.training for m in self.modules],
                [(p.requires_grad, _hook_mark(p._backward_hooks), _hook_mark(getattr(p, "_post_accumulate_grad_hooks", None)))
                 for p in self.params.values()],
                [(i, len(d), next(reversed(d))) for i, d in enumerate(self.hook_dicts) if d])

    def setting_values(self) -> list[Any]:
        return [d.get(k) for d, k in self.settings]

    def changed(self) -> bool:
        try:
            return self._fingerprint() != self.fingerprint
        except Exception:  # noqa: BLE001 - a setting became a value with no truth to its ==, an array
            return True

    def mask_weights(self) -> None:
        """Recompute the masked weights that pruning hooks keep on the modules, as the run's own
        forward pass would have left them (the fused forward sets them on the template only)."""
        for m, h in self.prune_hooks:
            setattr(m, h._tensor_name, h.apply_mask(m))

    def own_stride(self, t: torch.Tensor, keep_layout: bool) -> tuple[int, ...]:
        """The strides of a tensor the model gained while stacked, as it would have them alone. A
        pruning hook's weight_orig (the weight itself) and weight_mask (ones_like it) are made from
        a view of the stack: in the model's own layout where the stack keeps it, else (stacked
        NCHW) in the layout of the model's 4-D tensors, as the weight they replace had it."""
        if keep_layout or t.dim() != 4:
            return t.stride()
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        return torch.empty(t.shape, device="meta", memory_format=fmt).stride()

    def unstack(self) -> None:
        """Give every tensor its own storage again, in the layout it had before stacking."""
        with torch.no_grad():
            for name, t in (*self.params.items(), *self.buffers.items()):
                stride = self.layouts.get(name, t.stride())
                t.data = torch.empty_strided(t.shape, stride, dtype=t.dtype, device=t.device).copy_(t)
        self.mask_weights()


_NO_GRAD = "element 0 of tensors does not require grad and does not have a grad_fn"  # loss.backward()'s


def _checked(loss: torch.Tensor) -> torch.Tensor:
    """The errors `loss.backward()` would raise in `fit`, raised for this run alone."""
    if loss.dim() != 0:
        raise RuntimeError("grad can be implicitly created only for scalar outputs")
    if not loss.requires_grad:
        raise RuntimeError(_NO_GRAD)
    return loss


class _Stack:
    """Runs with one model structure, their tensors stacked: the template's module code runs
    the forward pass with every run's tensors. A model that gained hooks of its own mid-training
    (forward hooks, gradient hooks) is `plain`: a stack of one, trained through its own forward
    pass on its own tensors, as `fit` trains it, so that its hooks run as they would there."""

    def __init__(self, runs: list[_Run], keep_layout: bool):
        self.runs = runs
        self.keep_layout = keep_layout
        self.template = runs[0].call.model
        self.holdings = _Holdings([self.template])
        self.signature = _signature(self.template)
        self.plain = self.signature[-1] is not None  # (its model's id: no other run shares the stack)
        if self.plain:
            self.params, self.buffers = {}, {}
            runs[0].unstack()
            runs[0].refresh()
            return
        self.params = {n: _stack([r.params[n] for r in runs], keep_layout).requires_grad_(p.requires_grad)
                       for n, p in runs[0].params.items()}
        self.buffers = {n: _stack([r.buffers[n] for r in runs], keep_layout) for n in runs[0].buffers}
        for k, run in enumerate(runs):
            self.adopt(k, run)
            run.refresh()
        self.settings = runs[0].setting_values()  # the template's, as its last forward pass left them

    def share_settings(self) -> None:
        """Give every run the settings the template's forward pass changed (a step counter): that
        code ran once for them all, with settings they all had equal (the signature holds them),
        so each run's own pass would have changed its own alike. Only the template's advanced:
        its partners came back from training with their counters where they started, and a
        re-stacking (gmp pruning) split the template from them. One read of the template's
        settings a step, ~30 ns each."""
        values = self.runs[0].setting_values()
        try:
            if values == self.settings:
                return
        except Exception:  # noqa: BLE001 - a setting became a value with no truth to its ==, an array
            pass
        self.settings = values
        for r in self.runs[1:]:
            if r.result is None:
                for (attributes, name), value in zip(r.settings, values):
                    attributes[name] = value
                if r.has_code:  # no hook's change (see _Group.step)
                    r.fingerprint = (r.fingerprint[0], r.setting_values(), r.fingerprint[2])

    def adopt(self, k: int, run: _Run) -> None:
        """Make the run's tensors views of slice k, copying in any that are not yet."""
        if self.plain:
            return
        with torch.no_grad():
            for stacked, own in ((self.params, run.params), (self.buffers, run.buffers)):
                for name, t in own.items():
                    view = stacked[name].detach()[k]
                    if t.data_ptr() != view.data_ptr():
                        if name not in run.layouts:
                            run.layouts[name] = run.own_stride(t, self.keep_layout)
                        view.copy_(t)
                        t.data = view


class _Group:
    """Calls that train in lockstep (same epochs, steps and batch size), as one or more stacks."""

    def __init__(self, calls: list[FitCall], keep_layout: bool):
        self.runs = [_Run(c, len(calls)) for c in calls]
        for r in self.live():  # (not counting a run whose optimizer or schedule could not be made)
            r.fused_with = len(self.live())
        self.keep_layout = keep_layout
        first = calls[0]
        self.device = first.data.x.device
        self.autocast_bf16 = first.budget.precision == "bf16"
        self.epochs = first.epochs
        self.steps_per_epoch = self.runs[0].steps_per_epoch
        self.stacks: list[_Stack] = []
        self.restack = True
        self.clock = time.perf_counter()

    def live(self) -> list[_Run]:
        return [r for r in self.runs if r.result is None]

    def fail(self, run: _Run, error: BaseException) -> None:
        if stops_the_sweep(error):
            raise error
        run.result = error
        run.unstack()
        run.call.model.zero_grad(set_to_none=True)
        self.restack = True

    def announce(self) -> None:
        """Each run's log says with how many runs it trains; a line that cannot be written (a full
        disk) fails its run, as fit fails on its log lines."""
        for r in self.live():
            try:
                r.call.log(f"    training fused with {r.fused_with - 1} other run(s)"
                           f"{'' if self.keep_layout else ', stacked NCHW'}")
            except BaseException as e:  # noqa: BLE001 - the run's own error is its result
                self.fail(r, e)

    def abandon(self, error: BaseException) -> None:
        """Fail the runs still training with `error`, a fault of the code they share that escaped
        the group's training, each with its own tensors again where they can be given back."""
        for r in self.live():
            r.result = _shared_fault(error)
            try:
                r.unstack()
                r.call.model.zero_grad(set_to_none=True)
            except Exception:  # noqa: BLE001 - (memory again): its model stays a view of the stack
                pass

    def charge(self) -> None:
        """Share the wall time since the last charge among the runs that were training."""
        now = time.perf_counter()
        live = self.live()
        for r in live:
            r.seconds += (now - self.clock) / len(live)
        self.clock = now

    def build_stacks(self) -> None:
        by_signature: dict[tuple, list[_Run]] = {}
        for r in self.live():
            r.refresh()
            by_signature.setdefault(_signature(r.call.model), []).append(r)
        self.stacks = [_Stack(runs, self.keep_layout) for runs in by_signature.values()]
        self.restack = False

    def train(self) -> None:
        for epoch in range(1, self.epochs + 1):
            if not self.live():
                break
            for r in self.live():
                try:  # fit's epoch start: what it raises (a module's own train()) is the run's own
                    r.call.model.train()
                    if r.has_code and r.changed():  # a hook had put modules in eval mode: train() changed the structure
                        self.restack = True
                    r.epoch_start, r.epoch_lr = time.perf_counter(), r.opt.param_groups[0]["lr"]
                    r.order = torch.randperm(len(r.call.data), device=self.device, generator=r.call.generator)
                    r.loss_sum = torch.zeros((), device=self.device)
                    r.correct = torch.zeros((), device=self.device, dtype=torch.long)
                except BaseException as e:  # noqa: BLE001
                    self.fail(r, e)
            for i in range(self.steps_per_epoch):
                if self.restack:
                    self.build_stacks()
                for stack in self.stacks:
                    self.step(stack, i)
                self.charge()
            for r in self.live():
                self.end_epoch(r, epoch)
            self.charge()
        for r in self.live():
            r.call.model.zero_grad(set_to_none=True)  # a returned model carries no gradient memory
            r.unstack()
            r.result = FusedResult(self.epochs, r.seconds, 0.0, r.loss_value, r.accuracy, r.fused_with,
                                   time.perf_counter() - r.start)

    def step(self, stack: _Stack, i: int) -> None:
        """One step of `fit` for every run of the stack, the forward and backward pass fused.
        A run that fails keeps its slice until the next step re-stacks; its output is unused."""
        xs: list[torch.Tensor | None] = [None] * len(stack.runs)
        ys: list[torch.Tensor | None] = [None] * len(stack.runs)
        for k, r in enumerate(stack.runs):
            c = r.call
            try:
                if c.run_state is not None and not c.run_state.grad:  # its code turned gradients off:
                    raise RuntimeError(_NO_GRAD)  # fit's next forward pass keeps no graph, and its backward fails so
                if c.between_steps is not None:
                    c.between_steps()
                idx = r.order[i * r.bs:(i + 1) * r.bs]
                xs[k] = c.preprocess.augment(c.preprocess.normalize(c.data.x[idx]), c.generator)
                ys[k] = c.data.y[idx]
            except BaseException as e:  # noqa: BLE001 - the run's own error is its result
                self.fail(r, e)
        ok = [k for k, x in enumerate(xs) if x is not None]
        if not ok:
            return
        x = None if stack.plain else _stack([xs[k] if xs[k] is not None else torch.zeros_like(xs[ok[0]])
                                            for k in range(len(xs))], stack.keep_layout)
        losses: dict[int, torch.Tensor] = {}
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast_bf16):
            first = stack.runs[0]
            try:
                if stack.plain:  # its own forward pass, whose hooks draw from its own stream, as in fit
                    with _own_state(first.call.run_state if first.has_code else None):
                        out = stack.template(xs[0]).unsqueeze(0)
                else:
                    out = _fused_forward(stack.template, stack.params, stack.buffers, x, stack.holdings)
                    stack.share_settings()
            except BaseException as e:  # noqa: BLE001 - the stack's forward code is its runs', not the group's
                # (a hook made its model float64: its stack's forward raises, as its own would in fit,
                # and the runs of the group's other stacks train on). A plain stack's is its model's own
                # pass; a stacked one's may fail where the run's own would not (_shared_fault).
                for k in ok:
                    self.fail(stack.runs[k], e if stack.plain else _shared_fault(e))
                return
            if first.has_code:  # its module code ran: a setting its forward changed (a counter) is no hook's
                first.fingerprint = (first.fingerprint[0], first.setting_values(), first.fingerprint[2])
            # Where the losses' graphs end (see backward); for a plain stack, the model's own output:
            # its loss backpropagates through the model in one pass, as in fit.
            cut = out if stack.plain else out.detach().requires_grad_()
            logits: dict[int, torch.Tensor] = {}
            for k in ok:
                r = stack.runs[k]
                try:
                    with _own_state(r.call.run_state if r.has_code else None):
                        if r.has_code:
                            r.mask_weights()
                        # Each run's own tensor, not a leaf: a loss_fn may change its logits in place, as in
                        # fit. Views of one shared clone share its version counter: one run's in-place
                        # change failed the backward of another whose loss saved its logits (pow, mse).
                        logits[k] = cut[k].clone()
                        losses[k] = _checked(r.loss_fn(logits[k], ys[k], xs[k]))
                except BaseException as e:  # noqa: BLE001
                    self.fail(r, e)
        losses = self.backward(stack, out, cut, losses)
        for k, loss in losses.items():
            r, c = stack.runs[k], stack.runs[k].call
            try:
                for name, p in r.params.items():
                    g = stack.params[name].grad if name in stack.params else None  # (a plain stack's are p's)
                    if g is not None:  # the run's loss may also have reached p directly (l1, gates)
                        p.grad = g[k] if p.grad is None else p.grad + g[k]
                with _own_state(c.run_state if r.has_code else None):
                    if c.after_backward is not None:
                        c.after_backward(c.model, r.step)
                    try:
                        r.opt.step()  # on views of the stacked tensors, in the stack's layout
                    except Exception as e:  # noqa: BLE001
                        raise _shared_fault(e) from e
                    r.schedule.step()
                    if c.after_step is not None:
                        c.after_step(c.model, r.step)
            except BaseException as e:  # noqa: BLE001
                self.fail(r, e)
                continue
            r.loss_sum += loss.detach()
            r.correct += (logits[k].detach().argmax(1) == ys[k]).sum()
            r.step += 1
            if r.has_code and r.changed():
                self.readopt(stack, k, r)

    def backward(self, stack: _Stack, out: torch.Tensor, cut: torch.Tensor,
                 losses: dict[int, torch.Tensor]) -> dict[int, torch.Tensor]:
        """Backpropagate the runs' losses into the stacked gradients; the losses that went through.
        Two passes: the losses' own graphs end at `cut`, the stacked output detached, and one
        backward pass of their sum fills its gradient; then one pass of `out` with it through the
        stacked model. Where the first raises (a run's loss_fn whose own autograd code raises in
        backward), each loss goes back alone through the small graph it kept, so that only the
        run whose backward raises fails, as `fit` fails it, and the others keep their step. The
        model's pass keeps no graph: retaining it for a retry held every saved activation until
        the step ended (~13% more peak RSS for a fused ResNet-20 step on the CPU, K=2-4, measured
        in development at 02d2872). Where that
        pass raises, the stacked model's backward code is every run's, and every run fails (FusedStepError).
        A plain stack's one loss goes back through its model in one pass, as in `fit` (its hooks
        drawing from the run's own random stream, as in its forward pass): in two,
        a gradient hook on a weight its loss also reaches (an l1 penalty) ran once with each part
        of the weight's gradient."""
        def clear() -> None:
            for k in losses:
                stack.runs[k].opt.zero_grad(set_to_none=True)
            for p in stack.params.values():
                p.grad = None
            cut.grad = None

        clear()
        if not losses:
            return losses
        if stack.plain:
            (k, loss), = losses.items()
            r = stack.runs[k]
            try:
                with _own_state(r.call.run_state if r.has_code else None):  # (its gradient hooks' draws)
                    loss.backward()
            except BaseException as e:  # noqa: BLE001 - the run's own error is its result
                self.fail(stack.runs[k], e)
                return {}
            return losses
        went = losses
        try:
            sum(losses.values()).backward(retain_graph=True)  # a few tensors the size of the logits
        except BaseException as e:  # noqa: BLE001 - whose it is, is found below
            if stops_the_sweep(e):
                raise
            clear()  # of what the failed pass accumulated
            went = {}
            for k, loss in losses.items():
                try:
                    loss.backward(retain_graph=True)
                    went[k] = loss
                except BaseException as e:  # noqa: BLE001 - the run's own error is its result
                    self.fail(stack.runs[k], e)
        if went and cut.grad is not None:  # (a loss may reach its run's tensors only: l1 alone)
            try:
                out.backward(cut.grad)
            except BaseException as e:  # noqa: BLE001
                for k in went:
                    self.fail(stack.runs[k], _shared_fault(e))
                return {}
        return went

    def readopt(self, stack: _Stack, slot: int, run: _Run) -> None:
        """A hook replaced tensors: copy them into the run's slice if the structure is the same,
        else re-stack every run by structure before the next step."""
        run.refresh()
        if _signature(run.call.model) == stack.signature:
            stack.adopt(slot, run)
            run.refresh()
        else:
            self.restack = True

    def end_epoch(self, r: _Run, epoch: int) -> None:
        r.loss_value = (r.loss_sum / self.steps_per_epoch).item()
        r.accuracy = r.correct.item() / (self.steps_per_epoch * r.bs)
        try:
            line = epoch_end(epoch, self.epochs, r.loss_value, r.accuracy, r.epoch_lr, time.perf_counter() - r.epoch_start)
            r.call.log(f"{line}  (fused with {counted(len(self.live()) - 1, 'other run')})")
        except BaseException as e:  # noqa: BLE001 - a diverged loss, a line a full disk refuses: as fit fails
            self.fail(r, e)


def _train_group(calls: list[FitCall], keep_layout: bool) -> list[TrainResult | BaseException]:
    """Train calls that fuse as one group; each call's result. A failure no run's own code
    raised (memory running out while the runs stack) escapes the group's training: the runs it
    stopped fail with it as a fault of shared code (FusedStepError), each given back its own
    tensors; runs that had failed keep their own errors, and other groups of the same
    `fit_group` call, finished or not, are not touched (it failed them all, the finished
    groups' results thrown away and their runs trained again alone)."""
    group: _Group | None = None
    try:
        group = _Group(calls, keep_layout)
        group.announce()
        group.train()
    except BaseException as e:  # noqa: BLE001 - the group's own fault, not its sibling groups'
        if stops_the_sweep(e):
            raise
        if group is None:
            return [_shared_fault(e) for _ in calls]
        group.abandon(e)
    return [r.result for r in group.runs]  # type: ignore[misc] - every run has its result


def fit_group(calls: list[FitCall], *, keep_layout: bool = True) -> list[TrainResult | BaseException]:
    """Train the calls, those that can fuse in fused groups (the driver's --fuse K has sized
    the task: every call that can fuse with another does).

    The stacked weights and images keep the models' memory layout (channels-last for the
    harness's models: the fused LeNet-5 step was 1.15x faster than stacked NCHW on the development
    CPU, in one measurement at fd03c28; `benchmarks/fused_throughput.py --layout nchw` measures it);
    keep_layout=False stacks them NCHW, for devices whose grouped convolutions prefer it.

    Returns, per call: a FusedResult; the run's own exception (DivergedError, or whatever its
    hook or its log raised), the others unaffected; a FusedStepError where the code the runs of
    its group share failed (the other groups unaffected: see _train_group); or NotFusable, saying
    why the call must be trained alone (it was not touched: `call.fit_alone()` trains it as `fit`
    would). Each fused run
    logs a line saying with how many runs it trains, then `fit`'s per-epoch lines.
    """
    results: list[TrainResult | BaseException | None] = [None] * len(calls)
    candidates, reasons = _plan(calls)
    for members in candidates:
        try:
            fusable, probe_reasons = _probe([calls[i] for i in members])
        except BaseException as e:  # noqa: BLE001 - memory for the probe's copies: these calls' fault only
            if stops_the_sweep(e):
                raise
            for i in members:
                results[i] = _shared_fault(e)
            continue
        reasons.update({members[j]: reason for j, reason in probe_reasons.items()})
        for found in fusable:
            chunk = [members[j] for j in found]
            for i, result in zip(chunk, _train_group([calls[i] for i in chunk], keep_layout)):
                results[i] = result
    for i, reason in reasons.items():
        results[i] = NotFusable(reason)
    return results  # type: ignore[return-value] - every entry is set


# -- the coordinator ----------------------------------------------------------------------------

class _Aborted(Interrupted):
    """Raised in a job's thread when the coordinator stops (the user's Ctrl-C): it passes through
    the job's run as the interrupt itself would."""


class Coordinator:
    """Run method jobs in threads, one at a time, and train the `fit` calls they make fused.

    `run(jobs)` gives each job a `fit` function to train with (e.g. set as `Context.fit`). Only
    the thread holding the baton runs: a job runs until it calls that `fit` or ends, then hands
    the baton to the next job that is ready. When every job is waiting in `fit` or done, the
    waiting calls are trained with `fit_group` (those that cannot fuse alone with `fit`, their
    log saying why) and the jobs resume in order. Jobs therefore never run concurrently: they are
    as deterministic as one at a time, and a measurement taken in one is never disturbed by
    another. torch's global random state is swapped at every hand-off (and around a run's own
    code during fused training), so each job draws the stream it would draw alone, starting from
    the state `run` was called in. `faulted` holds, by job, the first FusedStepError one of its calls
    was answered with (its traceback in the call's log): their training went through a fault of fused
    training's shared code, and they are to run again alone (bench.worker sends them back to do so).
    """

    def __init__(self, handoff: Callable[[int], None] | None = None, keep_layout: bool = True):
        self.handoff = handoff  # called in job j's thread as it hands on its turn to train (bench.worker's check)
        self.keep_layout = keep_layout  # fit_group's: False stacks the runs' tensors NCHW

    def run(self, jobs: list[Callable[[Callable[..., TrainResult]], T]]) -> list[T | BaseException]:
        """Each job's return value, or the exception it raised (SystemExit and DivergedError
        and a plugin's own KeyboardInterrupt included). The user's Ctrl-C stops everything: it is
        raised here at once."""
        self._cond = threading.Condition()
        self._turn: int | None = None  # the job holding the baton; None: the coordinator
        self._state = ["ready"] * len(jobs)  # ready, running (holds the baton), fit (waiting for its training), done
        self._calls: dict[int, FitCall] = {}
        self.faulted: dict[int, FusedStepError] = {}  # (see the class's docstring)
        self._answers: dict[int, TrainResult | BaseException] = {}
        self._results: list[Any] = [None] * len(jobs)
        self._random = [RunState() for _ in jobs]
        self._abort: BaseException | None = None
        self._driver = threading.current_thread()  # the thread that trains the groups, and runs their hooks
        outer = RunState()
        threads = [threading.Thread(target=self._job, args=(j, job), daemon=True, name=f"fused-job-{j}")
                   for j, job in enumerate(jobs)]
        for t in threads:
            t.start()
        try:
            while True:
                with self._cond:
                    self._pass_baton()
                    self._cond.wait_for(lambda: self._turn is None or self._abort is not None)
                    if self._abort is not None:
                        raise self._abort
                    if all(s == "done" for s in self._state):
                        return self._results
                    waiting = dict(self._calls)
                    self._calls.clear()
                self._train(waiting)
                with self._cond:
                    for j in waiting:
                        self._state[j] = "ready"
        except BaseException:
            with self._cond:
                self._abort = self._abort or KeyboardInterrupt()
                self._cond.notify_all()
            raise
        finally:
            outer.restore()

    def _train(self, waiting: dict[int, FitCall]) -> None:
        jobs = list(waiting)
        try:
            results = fit_group([waiting[j] for j in jobs], keep_layout=self.keep_layout)
        except BaseException as e:  # noqa: BLE001 - a fault of fusion fails the runs it trained, not the others
            if stops_the_sweep(e):
                raise
            results = [_shared_fault(e) for _ in jobs]
        for j, result in zip(jobs, results):
            call = waiting[j]
            try:  # a log line a full disk refuses is the job's own error, as in fit: the others' results stand
                if isinstance(result, FusedStepError):
                    self.faulted.setdefault(j, result)
                    call.log("".join(traceback.format_exception(result)).rstrip())
                if isinstance(result, NotFusable):
                    call.log(f"    training alone, not fused: {result}")
                    result = call.fit_alone()
            except BaseException as e:  # noqa: BLE001 - the job's own error
                if stops_the_sweep(e):
                    raise
                result = e
            self._answers[j] = result

    def _pass_baton(self) -> None:
        """(Lock held.) The first ready job runs next; the coordinator if none is ready."""
        self._turn = next((j for j, s in enumerate(self._state) if s == "ready"), None)
        if self._turn is not None:
            self._state[self._turn] = "running"
        self._cond.notify_all()

    def _wait_turn(self, j: int) -> None:
        """(Lock held.) Wait for the baton; _Aborted if the coordinator stopped."""
        self._cond.wait_for(lambda: self._turn == j or self._abort is not None)
        if self._abort is not None:
            raise _Aborted

    def _job(self, j: int, job: Callable[[Callable[..., TrainResult]], Any]) -> None:
        try:
            with self._cond:
                self._wait_turn(j)
            self._random[j].restore()
            result = job(partial(self._fit, j))
        except _Aborted:
            return
        except BaseException as e:  # noqa: BLE001 - the job's result
            if stops_the_sweep(e):
                with self._cond:
                    self._abort = e
                    self._cond.notify_all()
                return
            result = e
        with self._cond:
            self._results[j] = result
            self._state[j] = "done"
            self._pass_baton()

    def _fit(self, j: int, *args: Any, **kwargs: Any) -> TrainResult:
        """The `fit` a job trains with: deposit the call, hand on the baton, wait for the result.
        Called by a hook or loss of a call being trained (a hook that trains a helper model), it
        runs in the coordinator's thread, which no baton reaches: it trains there and then, alone,
        as `fit` nested in `fit` does (it deadlocked, waiting for the thread that trains)."""
        if threading.current_thread() is self._driver:
            return fit(*args, **kwargs)
        call = FitCall.bind(*args, **kwargs)
        if self.handoff is not None:
            self.handoff(j)
        self._random[j].save()
        call.run_state = self._random[j]
        with self._cond:
            self._calls[j] = call
            self._state[j] = "fit"
            self._pass_baton()
            self._wait_turn(j)
        self._random[j].restore()
        answer = self._answers.pop(j)
        if isinstance(answer, BaseException):
            raise answer
        return answer
