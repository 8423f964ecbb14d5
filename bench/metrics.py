"""The metric registry: every metric defined once, in the style of lm-evaluation-harness's MetricSpec.

A metric's name (its key in run records), unit, CSV column, Markdown header and number format,
and whether higher is better live here, and nowhere else: the
measurement is checked against the registry (`check`), and the leaderboard's CSV and Markdown
columns and the README's metric table are produced from it. Per-runtime metrics are templates
filled in per runtime and batch size (`runtime_key`).

    python -m bench.metrics      # prints the README's metric and runtime tables
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bench.runtimes import REFERENCE_RUNTIME, RUNTIMES, runtime_key


@dataclass(frozen=True)
class MetricSpec:
    """One metric. `name`, `column` and `header` may hold {runtime} (an infix, empty for the
    reference runtime) and {batch}; `table` says which Markdown table shows it ("main",
    "speed", or None for CSV only); `column` None keeps it in the records only; `spread` names the
    record key of its spread, shown beside it in the Markdown; `seed_range` shows beside a row's
    median its lowest and highest seed (the CSV's `<column>_min` and `<column>_max`): a median over
    three seeds hides the one slow run it leaves out."""

    name: str
    definition: str
    unit: str = ""
    column: str | None = None
    header: str | None = None
    table: str | None = "main"
    scale: float = 1.0
    decimals: int = 0  # CSV rounding
    shown: int = 0  # Markdown decimals
    higher_is_better: bool | None = None
    spread: str | None = None
    recorded: bool = True  # False: computed by the leaderboard from other metrics
    aggregate: str = "mean"  # over a row's seeds: "mean", or "median" for wall times and the ratios of them
    seed_range: bool = False

    @property
    def per_runtime(self) -> bool:
        return "{runtime}" in self.name


def label(template: str, runtime: str, batch: int | None = None) -> str:
    """A header template filled in with the runtime's short label."""
    return template.format(runtime=RUNTIMES[runtime].label, batch=batch)


METRICS: list[MetricSpec] = [
    MetricSpec("accuracy", "top-1 accuracy on the whole test split (10,000 images), model in eval mode",
               "%", "accuracy_%", "accuracy (%)", scale=100, decimals=2, shown=2, higher_is_better=True),
    MetricSpec("delta_acc", "`Δ acc`: mean accuracy minus the mean accuracy of the `dense` row of the "
               "same table", "points", "delta_acc_pts", "Δ acc (pts)", decimals=2, shown=2,
               higher_is_better=True, recorded=False),
    MetricSpec("delta_ft", "`Δ vs dense-ft`: mean accuracy minus the mean accuracy of the `dense-ft` "
               "row of the same table, the dense model trained for the methods' extra epochs with "
               "nothing compressed: what a method adds beyond its extra training", "points",
               "delta_ft_pts", "Δ vs dense-ft (pts)", decimals=2, shown=2, higher_is_better=True,
               recorded=False),
    MetricSpec("sparsity", "`1 - nonzeros / params of the dense model` (biases and norms included); "
               "negative for a model with more nonzeros than the dense model (sparse-coding's dictionary)",
               "%", "sparsity_%", "sparsity (%)", scale=100, decimals=2, shown=1, higher_is_better=True),
    MetricSpec("params", "number of elements of the returned model's parameters (`model.parameters()`), "
               "plus its int8/uint8 buffers, where quantized models keep their weights", "", "params",
               higher_is_better=False, table=None),
    MetricSpec("nonzeros", "number of nonzero values among those (a quantized weight is zero where its "
               "integer is)", "", "nonzeros", "nonzeros", higher_is_better=False),
    MetricSpec("weight_sparsity", "fraction of exactly-zero weights among Linear and Conv weights, the "
               "weights methods prune (without the layers a suite's `dense_layers` keeps dense; records only)", "", None, table=None, higher_is_better=True),
    MetricSpec("flops", "forward FLOPs for one input, counted by `torch.utils.flop_counter` on the "
               "returned model (a multiply-add is 2 FLOPs)", "MFLOPs", "flops_M", scale=1e-6,
               decimals=3, table=None, higher_is_better=False),
    MetricSpec("flops_effective", "`flops` with each matrix product's and convolution's share scaled "
               "by the density of the weight it executes (int8 weights included): the cost if zeros "
               "were skipped", "MFLOPs", "flops_effective_M",
               "eff. MFLOPs", scale=1e-6, decimals=3, shown=3, higher_is_better=False),
    MetricSpec("size_bytes", "bytes of the compressed encoding: the smallest registered exact encoding "
               "of the model (`bench.deploy.encoding`; its name is in the record's "
               "`figures.deploy.encoding`). Every model has the bitmask encoding, `torch.save` of the "
               "state dict with each tensor stored dense or, when smaller, as a bitmask "
               "(1 bit per element) plus its nonzero values (an int8 model's all-zero int64 weight zero "
               "points: a bitmask); `uniform` registers packed low-bit codes, "
               "`deep-compression` its Huffman-coded bitstream, bench.lowbit (`gptq`, `rtn`) codes "
               "packed on their grids", "KiB", "size_KiB", "size (KiB)",
               scale=1 / 1024, decimals=1, shown=1, higher_is_better=False),
    MetricSpec("compression", "bitmask size of the dense model (its state dict) divided by `size_bytes`", "x",
               "compression_x", "compression (x)", decimals=2, shown=1, higher_is_better=True),
    MetricSpec("memory_bytes", "peak memory of one inference forward pass at the throughput batch, in "
               "PyTorch: parameters, buffers, the input and the activations alive at the peak. CUDA: "
               "growth of `torch.cuda.max_memory_allocated` over the pass plus the resident tensors; "
               "CPU: torch's `MemTracker` (`torch.distributed._tools.mem_tracker`), which follows every "
               "tensor storage the pass creates or uses. So a GPU figure includes the cuDNN workspace its "
               "convolutions take from PyTorch's allocator, and a CPU figure none of oneDNN's or MKL's own "
               "buffers: compare rows of one device. The eager model's memory: unstructured zeros are "
               "stored, and count, as dense. Known limit: under MemTracker a "
               "`torch.compile`d int8 model runs its unlowered graph, which dequantizes weights to "
               "fp32, so its figure is overstated", "MiB", "memory_MiB", "memory (MiB)",
               scale=1 / 2**20, decimals=2, shown=2, higher_is_better=False),
    MetricSpec("train_epochs", "training epochs the method spent, the dense model's epochs included "
               "when it started from `ctx.pretrained()`", "", "train_epochs", "train epochs",
               decimals=1, higher_is_better=False),
    MetricSpec("train_time_s", "seconds of training those epochs took (the cached dense model's "
               "recorded time included), plus the compute a one-shot method spent outside epochs "
               "(the record's `figures.compress_time_s`). A run trained fused with others (`--fuse`) "
               "counts its share of each fused step: the step's time divided by the runs that took it, "
               "so the shares add up to the group's wall time (see `fused_with`). The leaderboard shows "
               "wall times as the median over seeds, which one run slowed by a busy machine does not move, "
               "with the lowest and highest seed in parentheses",
               "s", "train_time_s", "train time (s)", decimals=1, higher_is_better=False, aggregate="median",
               seed_range=True),
    MetricSpec("method_time_s", "`train_time_s` without the dense stage's share: the seconds of the "
               "method's own training and compute (the dense model's time is its own record's, charged "
               "once per seed, in the record's `dense.train_time_s`)", "s", "method_time_s",
               "own time (s)", decimals=1, higher_is_better=False, aggregate="median", seed_range=True),
    MetricSpec("train_flops", "forward and backward FLOPs of every training step the method took, the "
               "dense model's included when it started from `ctx.pretrained()`: per image counted once "
               "per architecture by `torch.utils.flop_counter`, masked weights as dense (their zeros are "
               "multiplied), times the images drawn. A cost no machine's speed or load moves",
               "TFLOPs", "train_TFLOPs", "train TFLOPs", scale=1e-12, decimals=3, shown=2,
               higher_is_better=False),
    MetricSpec("fused_with", "with `--fuse`: the most runs that one of this run's training calls trained "
               "with as one fused model, itself included (absent: every call trained alone). Its "
               "`train_time_s` is then a share of fused steps, not a time one run takes alone",
               "", "fused_with", "fused with (runs)", decimals=0, higher_is_better=None),
    MetricSpec("compile_time_s", "with `--compile`: seconds of the first training step of every "
               "training call, kept apart from `train_time_s` (records only)", "s", None, table=None,
               higher_is_better=False),
    MetricSpec("theoretical_speedup", "FLOPs of the suite's dense model divided by `flops_effective`: "
               "the speedup if every zero weight and removed channel were skipped (empty where every weight is zero)", "x",
               "theoretical_speedup_x", "theoretical (x)", table="speed", decimals=3, shown=2,
               higher_is_better=True),
    MetricSpec("speedup{runtime}_b{batch}", "measured speedup at batch N in a runtime: the dense "
               "model's latency over this model's, both deployed to that runtime and timed in "
               "alternating blocks in the same process (`bench.measure.paired_speedup`, 10 pairs of "
               "~20 ms blocks); the median of the pairs' ratios (Markdown: with their interquartile "
               "range in parentheses; a row of several seeds shows the median over seeds of each, like "
               "the wall times it is made of, so one seed timed beside a busy process does not move the "
               "row; the spread is the timing's within one process, not between seeds or processes)", "x",
               "speedup{runtime}_b{batch}_x", "{runtime} b{batch} (x)", table="speed", decimals=3,
               shown=2, higher_is_better=True, spread="speedup{runtime}_b{batch}_iqr", aggregate="median"),
    MetricSpec("speedup{runtime}_b{batch}_iqr", "interquartile range of those pairs' ratios", "x",
               "speedup{runtime}_b{batch}_iqr_x", table=None, decimals=3, higher_is_better=False,
               aggregate="median"),
    MetricSpec("latency{runtime}_b{batch}_ms", "this model's median time per forward pass at batch N "
               "(the whole batch of N images: divide by N for a time per image) "
               "over its blocks of that measurement, in eval and inference mode, with the process's "
               "threads (PyTorch eager: `latency_b{N}_ms`). On a shared machine a figure of one "
               "run, not comparable across runs the way the speedup is", "ms",
               "latency{runtime}_b{batch}_ms", table=None, decimals=4, higher_is_better=False,
               aggregate="median"),
    MetricSpec("latency{runtime}_b{batch}_iqr_ms", "interquartile range of those blocks (records only)",
               "ms", None, table=None, higher_is_better=False),
    MetricSpec("artifact{runtime}_bytes", "bytes of the deployed artifact in a runtime: the saved "
               "state dict (PyTorch; with CSR tensors for `torch_csr`), the .onnx file (ONNX "
               "Runtime), the IR (OpenVINO), beside `size_bytes`, the compressed encoding", "KiB",
               "artifact{runtime}_KiB", "{runtime} file (KiB)", table="speed", scale=1 / 1024,
               decimals=1, shown=1, higher_is_better=False),
]


@dataclass(frozen=True)
class Column:
    """A registered metric made concrete for one runtime and batch size: its record key, CSV
    column, Markdown header, the CSV column of its spread, and (a per-runtime metric) the runtime
    and batch size it is of."""

    spec: MetricSpec
    key: str
    column: str | None
    header: str | None
    spread_column: str | None
    runtime: str | None = None
    batch: int | None = None


def pattern(template: str) -> str:
    """A regular expression matching a template's instances."""
    return re.escape(template).replace(r"\{runtime\}", "(?P<runtime>(?:_[a-z0-9_]+)?)").replace(
        r"\{batch\}", r"(?P<batch>\d+)")


def concrete(spec: MetricSpec, runtime: str | None = None, batch: int | None = None) -> Column:
    """`spec` as the Column of one runtime and batch size (None: a metric measured once)."""
    def fill(template: str | None) -> str | None:
        return template and (runtime_key(template, runtime, batch) if runtime else template)

    spread = spec_of(fill(spec.spread)) if spec.spread else None
    header = spec.header and (label(spec.header, runtime, batch) if runtime else spec.header)
    return Column(spec, fill(spec.name), fill(spec.column), header, spread and fill(spread.column), runtime, batch)


def columns(keys: set[str]) -> list[Column]:
    """The registered metrics that occur among `keys` (and those the leaderboard computes), in
    registry order; per-runtime ones in the runtimes' order, then by batch size."""
    out = []
    for spec in METRICS:
        if not spec.per_runtime:
            if spec.name in keys or not spec.recorded:
                out.append(concrete(spec))
            continue
        found = sorted((list(RUNTIMES).index(runtime), batch or 0, runtime, batch)
                       for runtime, batch in filter(None, (_match(spec, key) for key in keys)))
        out += [concrete(spec, runtime, batch) for *_, runtime, batch in found]
    return out


def _match(spec: MetricSpec, key: str) -> tuple[str, int | None] | None:
    """(runtime, batch) if `key` is an instance of the spec for a registered runtime, else None
    (runtime and batch None for a plain metric)."""
    match = re.fullmatch(pattern(spec.name), key)
    if not match:
        return None
    if not spec.per_runtime:
        return None, None
    infix = match.group("runtime")
    runtime = infix[1:] if infix else REFERENCE_RUNTIME
    batch = int(match.group("batch")) if "{batch}" in spec.name else None
    return (runtime, batch) if runtime in RUNTIMES else None


def spec_of(key: str) -> MetricSpec | None:
    """The registered metric a record key belongs to, if any."""
    return next((spec for spec in METRICS if _match(spec, key)), None)


def check(values: dict[str, object]) -> None:
    """Raise ValueError for a measured value that the registry does not define: a metric added to
    the measurement must be added here, or no table would show it."""
    unknown = sorted(k for k in values if spec_of(k) is None or not spec_of(k).recorded)
    if unknown:
        raise ValueError(f"metrics not in bench.metrics.METRICS: {', '.join(unknown)}")


def readme_tables() -> str:
    """The README's metric table and runtime table, generated from the registries."""
    lines = ["| metric | unit | better | measured | definition |", "| --- | --- | --- | --- | --- |"]
    for spec in METRICS:
        name = spec.name.replace("{runtime}", "_{runtime}").replace("{batch}", "{N}")
        better = {True: "higher", False: "lower", None: ""}[spec.higher_is_better]
        measured = "per runtime" if spec.per_runtime else "on every device"
        lines.append(f"| `{name}` | {spec.unit} | {better} | {measured} | {spec.definition} |")
    lines += ["", "| runtime | devices | what runs | accelerates |", "| --- | --- | --- | --- |"]
    for _, r in RUNTIMES.items():
        lines.append(f"| `{r.name}` | {', '.join(r.devices)} | {r.description} | {r.accelerates} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(readme_tables(), end="")
