"""What the harness measures on every returned model (definitions in the README).

Each function measures one thing and can be called on any nn.Module, so tests can check it on
hand-built models with known answers.
"""

from __future__ import annotations

import io
import statistics
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from torch.utils import benchmark
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torch.utils.flop_counter import FlopCounterMode


# Storage types of quantized weights. Quantized models keep them as buffers (torchao's PT2E
# flow, for one), no longer as nn.Parameters, but they are still the model's weights.
INTEGER_WEIGHTS = (torch.int8, torch.uint8)


def weight_tensors(model: nn.Module) -> list[torch.Tensor]:
    """The parameters, plus the buffers that hold quantized weights (int8/uint8)."""
    return [*model.parameters(), *(b for b in model.buffers() if b.dtype in INTEGER_WEIGHTS)]


def count_params(model: nn.Module) -> int:
    return sum(t.numel() for t in weight_tensors(model))


def _storage(t: torch.Tensor) -> int | None:
    try:
        return t.untyped_storage().data_ptr()
    except (RuntimeError, NotImplementedError):  # sparse and other layouts without one storage
        return None


class _Reads(TorchDispatchMode):
    """Every tensor storage the ops of a forward pass read, and those they produced."""

    def __init__(self) -> None:
        super().__init__()
        self.read: dict[int, torch.Tensor] = {}
        self.made: set[int] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001 - torch's protocol
        inputs = set()
        for t in tree_leaves((args, kwargs or {})):
            if isinstance(t, torch.Tensor) and (ptr := _storage(t)) is not None:
                self.read.setdefault(ptr, t)
                inputs.add(ptr)
        out = func(*args, **(kwargs or {}))
        self.made.update(ptr for t in tree_leaves(out)  # new storages only: a view shares its input's
                         if isinstance(t, torch.Tensor) and (ptr := _storage(t)) and ptr not in inputs)
        return out


HIDDEN_MIN_ELEMENTS = 1000  # smaller tensors a forward makes on the fly (constants) are no weights


def uncounted_tensors(model: nn.Module, x: torch.Tensor) -> tuple[list[str], list[str]]:
    """(parameters the forward pass on `x` never reads, tensors of weight size it reads that the
    model does not hold as parameters or buffers). Either makes the counted parameters, sparsity
    and size describe another model than the one that runs: an unused 5e7-element parameter gave
    a sparsity of -18,754%, weights kept in a plain attribute a compression of 584x. Buffers that
    hold float weights (`float_weight_buffers`) are the third way. A forward whose ops the
    dispatcher does not see (a compiled int8 graph) reads none of the model's tensors here and is
    not judged: ([], [])."""
    own = {ptr: name for name, t in [*model.named_parameters(), *model.named_buffers()]
           if (ptr := _storage(t)) is not None}
    with torch.inference_mode(), _Reads() as reads:
        model(x)
    if not own.keys() & reads.read.keys():
        return [], []
    unused = [name for name, p in model.named_parameters() if _storage(p) not in reads.read]
    hidden = [f"a {tuple(t.shape)} tensor" for ptr, t in reads.read.items()
              if ptr not in own and ptr not in reads.made and ptr != _storage(x)
              and t.is_floating_point() and t.numel() >= HIDDEN_MIN_ELEMENTS]
    return unused, hidden


# Float buffers that are not weights: normalization statistics, and pruning masks (weights are
# zero where their mask is, so the zeros are counted in the weight itself).
NOT_WEIGHTS = ("running_mean", "running_var", "weight_mask", "bias_mask")


def unfolded_masks(model: nn.Module) -> list[str]:
    """The tensors that still carry a torch.nn.utils.prune reparametrization (`1.weight`: a
    `weight_orig` parameter, a `weight_mask` buffer and a hook that multiplies them each forward).
    The counts read the parameter, which keeps the pruned values: such a model counts as dense
    (0% sparsity, a larger size) however much its masks prune."""
    from torch.nn.utils import prune

    return [f"{prefix}{'.' if prefix else ''}{hook._tensor_name}"
            for prefix, module in model.named_modules()
            for hook in module._forward_pre_hooks.values() if isinstance(hook, prune.BasePruningMethod)]


def float_weight_buffers(model: nn.Module) -> list[str]:
    """Float buffers of weight size that are no statistics or masks: weights held where
    `weight_tensors` does not count them."""
    return [name for name, b in model.named_buffers() if b.is_floating_point()
            and b.numel() >= HIDDEN_MIN_ELEMENTS and not name.rsplit(".", 1)[-1].endswith(NOT_WEIGHTS)]


def count_nonzeros(model: nn.Module) -> int:
    """Nonzero values; a quantized weight is zero where its integer is (symmetric quantization)."""
    return sum(int(torch.count_nonzero(t)) for t in weight_tensors(model))


class _EffectiveFlopCounter(FlopCounterMode):
    """FLOPs as torch.utils.flop_counter counts them, plus the FLOPs of every matrix product and
    convolution scaled by the density of the weight it actually executes: a masked weight, an
    int8 weight dequantized for the product, a layer no nn.Linear/nn.Conv2d wraps. (It hooks
    FlopCounterMode's per-op `_count_flops`, present in torch 2.11 to 2.15.)"""

    WEIGHT_ARG = {torch.ops.aten.mm: 1, torch.ops.aten.addmm: 2, torch.ops.aten.convolution: 1,
                  torch.ops.aten._convolution: 1}

    def __init__(self) -> None:
        super().__init__(display=False)
        self.skippable = 0.0  # FLOPs that multiply zeros

    def _count_flops(self, func_packet, out, args, kwargs):  # noqa: ANN001 - torch's signature
        index = self.WEIGHT_ARG.get(func_packet)
        if index is not None and func_packet in self.flop_registry:
            count = self.flop_registry[func_packet](*args, **kwargs, out_val=out)
            weight = args[index]
            self.skippable += count * (1.0 - float(torch.count_nonzero(weight)) / max(weight.numel(), 1))
        return super()._count_flops(func_packet, out, args, kwargs)


@torch.inference_mode()
def flops(model: nn.Module, example: torch.Tensor) -> tuple[int, int]:
    """Forward FLOPs for one input (torch.utils.flop_counter), and the effective FLOPs.

    Effective FLOPs scale each matrix product's and convolution's FLOPs by the density of the
    weight it executes: the theoretical cost if zeros were skipped. Returns (flops, effective).
    """
    model.eval()
    with _EffectiveFlopCounter() as counter:
        model(example)
    total = counter.get_total_flops()
    return int(total), int(round(total - counter.skippable))


def training_flops(model: nn.Module, example: torch.Tensor) -> int:
    """FLOPs of one training step's forward and backward pass per input image
    (torch.utils.flop_counter), in train mode on copies of the model's tensors
    (torch.func.functional_call), so that its BatchNorm statistics, gradients and random stream
    stay as they were. Zero weights count as dense: a masked model's training multiplies its zeros as a
    dense one does. `example` holds two or more inputs (BatchNorm in train mode needs a batch)."""
    params = {n: p.detach().clone().requires_grad_(p.requires_grad) for n, p in model.named_parameters()}
    buffers = {n: b.detach().clone() for n, b in model.named_buffers()}
    was_training = model.training
    model.train()
    try:  # in a fork of the random state: a dropout here must not shift the run's stream
        with torch.random.fork_rng(devices=[example.device] if example.is_cuda else []), \
                FlopCounterMode(display=False) as counter:
            torch.func.functional_call(model, (params, buffers), (example,)).float().sum().backward()
    finally:
        model.train(was_training)
    return int(counter.get_total_flops()) // len(example)


def sparse_state_dict(model: nn.Module) -> dict[str, Any]:
    """The deployable form of a model: each tensor dense, or as a bitmask plus nonzero values when
    that is smaller (a 1-bit-per-weight sparse encoding). Integer tensors too: an int8 model's
    per-channel weight zero points are int64 zeros (symmetric weights), 8 bytes per output channel
    that dense storage would count and no deployment stores. Not integer scalars (BatchNorm's batch
    counter, 0 in a model built anew): their bitmask form saves at most 8 bytes and pickles into
    about 250 more."""
    out: dict[str, Any] = {}
    for key, t in model.state_dict().items():
        t = t.detach().cpu()
        # (not a quantized tensor, which a plugin's eager-quantized model holds: indexing a
        # per-channel one by a mask raises, where it was stored dense before integers were encoded)
        if (t.is_floating_point() or t.dim() > 0) and not t.is_quantized and t.numel() > 0:
            mask = t != 0
            nnz = int(mask.sum())
            sparse_bytes = nnz * t.element_size() + (t.numel() + 7) // 8
            if sparse_bytes < t.numel() * t.element_size():
                bits = torch.from_numpy(np.packbits(mask.flatten().numpy()))
                out[key] = {"shape": list(t.shape), "mask": bits, "values": t[mask].clone()}
                continue
        out[key] = t.clone()
    return out


def size_bytes(model: nn.Module) -> int:
    """Bytes of the bitmask encoding (torch.save of `sparse_state_dict`): the encoding every
    model has. bench.deploy.encoding takes the smallest of it and the registered others."""
    buffer = io.BytesIO()
    torch.save(sparse_state_dict(model), buffer)
    return buffer.getbuffer().nbytes


def latency_ms(model: nn.Module, example: torch.Tensor, min_run_time: float = 1.0) -> tuple[float, float]:
    """Median and interquartile range (ms) of one forward pass on `example`.

    torch.utils.benchmark warms up, synchronizes CUDA, and times blocks of runs; we take the
    median and IQR over the blocks, in eval and inference mode, with all the process's threads.
    A latency of one model alone (benchmarks/latency_stability.py, tests): the records' latencies
    and speedups come from `paired_speedup`.
    """
    model.eval()

    def forward() -> None:
        with torch.inference_mode():
            model(example)

    timer = benchmark.Timer(stmt="forward()", globals={"forward": forward},
                            num_threads=torch.get_num_threads())
    timer.timeit(3)  # warm-up: allocator, lazy initialization, caches
    m = timer.blocked_autorange(min_run_time=min_run_time)
    return median_iqr([1e3 * t for t in m.times])


@dataclass(frozen=True)
class PairedTiming:
    """Side-by-side timing of a dense and a compressed forward pass (milliseconds per call)."""

    dense_ms: float  # median over the dense model's blocks
    compressed_ms: float  # median over the compressed model's blocks
    compressed_iqr_ms: float
    speedup: float  # median over pairs of dense / compressed block time
    speedup_iqr: float  # interquartile range of those ratios


def paired_speedup(dense: Callable[[], object], compressed: Callable[[], object], *, pairs: int = 10,
                   block_s: float = 0.02) -> PairedTiming:
    """Time two forward passes interleaved: `pairs` pairs of blocks, each block about `block_s`
    seconds of calls, the order alternating (ABBA) so that drift hits both alike.

    On a shared machine (in development at 47e3ea9, no script kept) the same GEMM varied 1.63x
    over 40 blocks, and the same model's latency 14-146% between processes (an idle machine's
    spread: benchmarks/latency_stability.py, in RESULTS.md): an absolute latency from one run is
    not a figure, the ratio of two blocks measured next to each other is. torch.utils.benchmark
    times each block (synchronizing CUDA); the speedup is the median of the per-pair ratios, and
    their IQR its spread.
    """
    timers = [benchmark.Timer(stmt="f()", globals={"f": f}, num_threads=torch.get_num_threads())
              for f in (dense, compressed)]
    numbers = []
    for timer in timers:
        timer.timeit(3)  # warm-up: allocator, lazy initialization, caches
        number = 1
        while (elapsed := timer.timeit(number).mean * number) < block_s / 4 and number < 2**20:
            number *= 4
        numbers.append(max(1, round(number * block_s / elapsed)))
    times: list[list[float]] = [[], []]
    for i in range(pairs):
        for j in ((0, 1) if i % 2 == 0 else (1, 0)):
            times[j].append(timers[j].timeit(numbers[j]).mean)
    ratios = [d / c for d, c in zip(*times)]
    compressed_ms, compressed_iqr = median_iqr([1e3 * t for t in times[1]])
    speedup, speedup_iqr = median_iqr(ratios)
    return PairedTiming(1e3 * statistics.median(times[0]), compressed_ms, compressed_iqr, speedup, speedup_iqr)


def median_iqr(values: list[float]) -> tuple[float, float]:
    """The median and interquartile range (0 for a single value)."""
    if len(values) < 2:
        return values[0], 0.0
    quartiles = statistics.quantiles(values, n=4)
    return statistics.median(values), quartiles[2] - quartiles[0]


@torch.inference_mode()
def peak_inference_memory(model: nn.Module, example: torch.Tensor) -> int:
    """Peak bytes during one forward pass on `example`.

    Both count parameters, buffers, the input, and the activations alive at the peak. CUDA:
    growth of torch.cuda.max_memory_allocated over the pass plus the resident tensors. CPU:
    torch's MemTracker, which follows every tensor storage created or used by the pass.
    """
    model.eval()
    if example.device.type == "cuda":
        # Other tensors (the dataset) share the device: count the growth over the pass, plus
        # what the pass needs resident (parameters, buffers and the input).
        resident = sum(t.numel() * t.element_size()
                       for t in [*model.parameters(), *model.buffers(), example])
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        model(example)
        torch.cuda.synchronize()
        return int(torch.cuda.max_memory_allocated() - before + resident)
    from torch.distributed._tools.mem_tracker import MemTracker

    # MemTracker hooks the gradient of every parameter and fails on frozen ones (a fixed
    # dictionary, a teacher): unfreeze them for the measurement, which builds no graph anyway.
    frozen = [p for p in model.parameters() if not p.requires_grad and p.is_floating_point()]
    for p in frozen:
        p.requires_grad_(True)
    try:
        tracker = MemTracker()
        tracker.track_external(model, example)
        with tracker:
            model(example)
    finally:
        for p in frozen:
            p.requires_grad_(False)
    return int(tracker.get_tracker_snapshot("peak")[example.device]["Total"])
