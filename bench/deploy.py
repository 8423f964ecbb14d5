"""The deploy step: a returned model's deployable form per target, defined once.

Between a method's `run()` and measurement, every model is turned into what would be shipped:

- its compressed encoding (what storing it takes): the smallest of the registered exact encodings
  of its weights (`encoding`). The bitmask and low-bit (bench.lowbit) encodings are built in;
  methods whose weights admit a smaller one (packed low-bit codes, a Huffman-coded codebook)
  declare it in `ENCODINGS` (the built-in plugins in methods/__init__.py). The size is a
  function of the weights alone, so a later link of a chain that moves the weights off that form
  is measured by what it returns, not by what an earlier link declared;
- its form in each runtime (bench.runtimes names the loader of each): PyTorch eager, PyTorch
  compiled, PyTorch with CSR products for sparse Linear layers, ONNX Runtime and OpenVINO from
  one ONNX export, and on CUDA 2:4 semi-structured sparse kernels. A runtime that cannot take a model raises `NotDeployable`
  (or fails on its own): its cells stay empty and the reason goes in the run record.

Every deployed form is checked against the PyTorch model's outputs on the batch it is timed on
(`check`) before its latency counts; the speedup is the dense model's latency over the
compressed one's in the same runtime, timed side by side (`measure_runtimes`).
"""

from __future__ import annotations

import copy
import functools
import io
import re
import sys
import tempfile
import warnings
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bench import measure
from bench.errors import COLOUR
from bench.registries import Registry
from bench.runtimes import CSR_MIN_SPARSITY, OPENVINO_SPARSE_RATE, RUNTIMES, runtime_key

SEMI_STRUCTURED_PAD = 64  # 2:4 weights are zero-padded to multiples of this (both kernels' tiles)
PAIRS, BLOCK_S = 10, 0.02  # side-by-side timing: pairs of blocks of about BLOCK_S seconds each

# Output tolerances, as a fraction of the reference's largest absolute output: |y - ref| must stay
# below tolerance * max(1, max|ref|) everywhere. fp32 runtimes differ from PyTorch only by the
# order of summation; fp16 by its 11-bit mantissa; int8 kernels from the fake-quantized reference
# by a rounding step of a requantized activation here and there (a fraction of a percent of the
# largest logit in the committed mlp and mnist records: the README's figure, written from them by
# benchmarks/readme_figures.py), while a wrong graph differs by the size of the outputs.
FP32_TOLERANCE = 1e-4
FP16_TOLERANCE = 1e-2
INT8_TOLERANCE = 5e-2


# A CSR weight warns, once per process, that torch's sparse CSR support is in beta: it is what
# this runtime measures, so the warning says nothing about a run.
warnings.filterwarnings("ignore", "Sparse CSR tensor support is in beta state", UserWarning)


class NotDeployable(Exception):
    """A runtime that cannot take a model: its cells stay empty, the reason goes in the record."""


def versions() -> dict[str, str]:
    """The installed versions of the runtimes' packages, for the record (the environment names torch's)."""
    out = {}
    for name in ("onnx", "onnxscript", "onnxruntime", "openvino"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


# -- the compressed encoding --------------------------------------------------------------------
Encoder = Callable[[nn.Module], int | None]
# `encoder(model) -> bytes, or None where it does not apply to these weights`. Each must count an
# exact encoding: one that decodes to the model's weights. The deploy step takes the smallest of
# those that apply, so an encoding never has to know which method made the weights. Declared by
# "module:attr" (the built-in plugins' in methods/__init__.py), so that every model meets every
# encoding whichever plugins its process imported; a plugin distribution may also register one
# with `@register_encoding(name)` when it is imported.
ENCODINGS: Registry[Encoder] = Registry("encoding")
ENCODINGS.lazy("bitmask", "bench.measure:size_bytes")
ENCODINGS.lazy("lowbit", "bench.lowbit:packed_bytes")
register_encoding = ENCODINGS.register


def encoding(model: nn.Module) -> tuple[str, int]:
    """(name, bytes) of the smallest registered encoding that applies (ties: registration order).
    An encoding whose plugin fails to import is passed over with a warning (in the run's log):
    that plugin's own runs fail, not every run's size."""
    sizes = {}
    for name in ENCODINGS:
        try:
            encoder = ENCODINGS[name]
        except Exception as e:  # noqa: BLE001 - a broken plugin must not take every measurement down
            warnings.warn(f"encoding '{name}' left out: {type(e).__name__}: {e}", stacklevel=2)
            continue
        if (size := encoder(model)) is not None:
            sizes[name] = size
    name = min(sizes, key=sizes.__getitem__)
    return name, int(sizes[name])


# -- what PyTorch computes: the reference outputs -----------------------------------------------
def is_int8(model: nn.Module) -> bool:
    """Whether the model is a PT2E int8 model (bench.quantization.Int8Model). Looked up, not
    imported: bench.quantization needs torchao, and where it was never imported no such model exists."""
    quantization = sys.modules.get("bench.quantization")
    return quantization is not None and isinstance(model, quantization.Int8Model)


def eager_forward(model: nn.Module) -> nn.Module:
    """The model as PyTorch eager runs it. An int8 model's converted graph quantizes and
    dequantizes around fp32 operators: its fake-quantized reference, with no int8 kernels."""
    return model.converted if is_int8(model) else model


@torch.inference_mode()
def reference_outputs(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The outputs every deployed form of `model` is checked against."""
    return eager_forward(model)(x).float()


def saved_bytes(state: dict[str, Any]) -> int:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getbuffer().nbytes


# -- sessions: one model deployed in one runtime for one input shape ---------------------------
@dataclass
class Session:
    """A deployed model, ready to run on inputs of one shape.

    `prepare` turns a torch batch into the runtime's input once, outside the timed calls; `run`
    is one inference; `output` turns its result into a float32 CPU tensor for the check.
    """

    prepare: Callable[[torch.Tensor], Any]
    run: Callable[[Any], Any]
    output: Callable[[Any], torch.Tensor]
    artifact_bytes: int
    tolerance: float

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.output(self.run(self.prepare(x)))


def torch_session(forward: Callable[[torch.Tensor], torch.Tensor], artifact_bytes: int,
                  tolerance: float, dtype: torch.dtype | None = None) -> Session:
    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return forward(x)

    return Session(prepare=lambda x: x if dtype is None else x.to(dtype), run=run,
                   output=lambda y: y.detach().float().cpu(), artifact_bytes=artifact_bytes,
                   tolerance=tolerance)


class Export:
    """A model's ONNX export (torch.onnx's dynamo exporter, dynamic batch), made at most once and
    shared by the runtimes that read ONNX. `example` should be a batch of more than one: torch.export
    specializes a dimension of size 1. A failed export is kept as its reason. Its temporary
    folder is made when it exports: a suite timed in the torch runtime alone makes none, so a
    process killed while timing leaves none behind."""

    def __init__(self, model: nn.Module, example: torch.Tensor):
        self.model, self.example = model, example
        self._folder: tempfile.TemporaryDirectory | None = None
        self._result: Path | NotDeployable | None = None

    @property
    def path(self) -> Path:
        if self._result is None:
            try:
                program = torch.onnx.export(eager_forward(self.model), (self.example,), dynamo=True,
                                            dynamic_shapes=({0: torch.export.Dim("batch")},), verbose=False)
                self._folder = tempfile.TemporaryDirectory(prefix="bench-onnx-")
                path = Path(self._folder.name) / "model.onnx"
                path.write_bytes(program.model_proto.SerializeToString())
                self._result = path
            except Exception as e:  # noqa: BLE001 - an operator ONNX lacks is a reason, not a failure
                self._result = NotDeployable(f"ONNX export: {reason(e)}")
        if isinstance(self._result, NotDeployable):
            raise self._result
        return self._result

    def close(self) -> None:
        if self._folder is not None:
            self._folder.cleanup()


def reason(e: BaseException) -> str:
    """One line saying why: torch.onnx's exception summary where it gives one (its first line is
    a generic "Failed to convert"), else the message's first line."""
    text = COLOUR.sub("", str(e))
    summary = re.findall(r"^<class '[\w.]+'>: (.+)$", text, flags=re.M)
    line = summary[0] if summary else (text.strip().splitlines() or [""])[0]
    return f"{type(e).__name__}: {line}"[:300]


# -- the runtimes -------------------------------------------------------------------------------


def load_torch(model: nn.Module, x: torch.Tensor, export: Export, reference: bool) -> Session:
    tolerance = INT8_TOLERANCE if is_int8(model) else FP32_TOLERANCE
    return torch_session(eager_forward(model), saved_bytes(model.state_dict()), tolerance)


def load_torch_compile(model: nn.Module, x: torch.Tensor, export: Export, reference: bool) -> Session:
    """torch.compile with static shapes; an int8 model is already compiled (Inductor lowers its
    quantize-dequantize patterns to oneDNN int8 kernels), so it runs as it is."""
    if not reference:
        # Each measurement compiles its two models afresh: over a sweep, Dynamo's cache for the
        # models' shared forward code would fill up and fall back to eager without a word.
        torch.compiler.reset()
    if is_int8(model):
        return torch_session(model, saved_bytes(model.state_dict()), INT8_TOLERANCE)
    return torch_session(torch.compile(model, dynamic=False), saved_bytes(model.state_dict()),
                         FP32_TOLERANCE)


class CSRLinear(nn.Module):
    """A Linear layer whose weight is stored and multiplied as a CSR sparse matrix (MKL's sparse
    BLAS on x86): y = (W_csr @ x^T)^T + b. torch.sparse.mm, not F.linear, which refuses a CSR
    weight in inference mode."""

    def __init__(self, layer: nn.Linear):
        super().__init__()
        self.register_buffer("weight", layer.weight.detach().to_sparse_csr())
        self.register_buffer("bias", None if layer.bias is None else layer.bias.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.sparse.mm(self.weight, x.t()).t()
        return y if self.bias is None else y + self.bias


def replace_layers(model: nn.Module, convert: Callable[[nn.Module], nn.Module | None]) -> int:
    """Replace in place every submodule for which convert() returns a module; returns how many."""
    replaced = 0
    for name, module in list(model.named_modules()):
        new = convert(module) if name else None
        if new is not None:
            parent, _, attr = name.rpartition(".")
            setattr(model.get_submodule(parent), attr, new)
            replaced += 1
    return replaced


def load_torch_csr(model: nn.Module, x: torch.Tensor, export: Export, reference: bool) -> Session:
    if is_int8(model):
        raise NotDeployable("int8 model: PyTorch's CSR products take float weights")
    sparse = copy.deepcopy(model)

    def convert(m: nn.Module) -> nn.Module | None:
        if type(m) is nn.Linear and float((m.weight == 0).float().mean()) >= CSR_MIN_SPARSITY:
            return CSRLinear(m)
        return None

    if not replace_layers(sparse, convert) and not reference:
        raise NotDeployable(f"no Linear layer is at least {CSR_MIN_SPARSITY:.0%} sparse")
    return torch_session(sparse, saved_bytes(sparse.state_dict()), FP32_TOLERANCE)


def numpy_input(x: torch.Tensor) -> np.ndarray:
    # ONNX inputs are NCHW; a channels-last batch must be laid out again, once, before timing
    return np.ascontiguousarray(x.detach().cpu().numpy())


def load_onnxruntime(model: nn.Module, x: torch.Tensor, export: Export, reference: bool) -> Session:
    """ONNX Runtime's CPU provider on the ONNX export, all graph optimizations (it fuses QDQ
    patterns into int8 kernels), with the process's thread count."""
    import onnxruntime as ort

    path = export.path
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return Session(prepare=lambda t: {name: numpy_input(t)}, run=lambda feed: session.run(None, feed),
                   output=lambda out: torch.from_numpy(np.asarray(out[0])).float(),
                   artifact_bytes=path.stat().st_size,
                   tolerance=INT8_TOLERANCE if is_int8(model) else FP32_TOLERANCE)


@functools.cache
def openvino_core() -> Any:
    """One OpenVINO Core for the process, as OpenVINO advises. It is also a fix: each Core's CPU
    plugin installs an alternate signal stack on the calling thread, and Cores destroyed out of
    order left it pointing at freed memory, so the next SIGTERM (`kill` of a sweep) crashed
    Python's handler, which runs on that stack, with a segmentation fault."""
    import openvino as ov

    return ov.Core()


def load_openvino(model: nn.Module, x: torch.Tensor, export: Export, reference: bool) -> Session:
    """OpenVINO's CPU plugin on the ONNX export, reshaped to the input's static shape. Inference
    precision is held at f32: on CPUs with bf16 units OpenVINO would otherwise run float models in
    bf16, a different model from the one whose accuracy the leaderboard reports. The artifact is
    OpenVINO's own IR (xml + bin), weights kept in fp32."""
    import openvino as ov

    path = export.path
    core = openvino_core()
    graph = core.read_model(str(path))
    ov.save_model(graph, str(path.with_suffix(".xml")), compress_to_fp16=False)
    artifact = path.with_suffix(".xml").stat().st_size + path.with_suffix(".bin").stat().st_size
    graph.reshape({0: list(x.shape)})
    compiled = core.compile_model(graph, "CPU", {
        "INFERENCE_NUM_THREADS": torch.get_num_threads(), "INFERENCE_PRECISION_HINT": "f32",
        "PERFORMANCE_HINT": "LATENCY", "CPU_SPARSE_WEIGHTS_DECOMPRESSION_RATE": OPENVINO_SPARSE_RATE})
    request = compiled.create_infer_request()
    return Session(prepare=numpy_input, run=lambda a: request.infer({0: a}),
                   output=lambda out: torch.from_numpy(np.asarray(out.to_tuple()[0])).float(),
                   artifact_bytes=artifact, tolerance=INT8_TOLERANCE if is_int8(model) else FP32_TOLERANCE)


def is_n_m_sparse(w: torch.Tensor, n: int = 2, m: int = 4) -> bool:
    """At most n nonzeros in every group of m consecutive weights along the last dimension."""
    return w.shape[-1] % m == 0 and bool(((w != 0).reshape(-1, m).sum(1) <= n).all())


class SemiStructuredLinear(nn.Module):
    """A Linear layer with a 2:4 weight in fp16, multiplied by the semi-structured sparse kernels
    (torch.sparse.to_sparse_semi_structured: cuSPARSELt, or CUTLASS). The kernels take weights
    whose sides are multiples of their tile, so the weight is zero-padded (zeros are 2:4), the
    input padded to match, and the padded outputs dropped."""

    def __init__(self, layer: nn.Linear):
        super().__init__()
        out_features, in_features = layer.weight.shape
        pad_out, pad_in = (-out_features) % SEMI_STRUCTURED_PAD, (-in_features) % SEMI_STRUCTURED_PAD
        weight = F.pad(layer.weight.detach().half(), (0, pad_in, 0, pad_out)).contiguous()
        self.weight = nn.Parameter(torch.sparse.to_sparse_semi_structured(weight), requires_grad=False)
        self.register_buffer("bias", None if layer.bias is None else layer.bias.detach().half())
        self.out_features, self.pad_in = out_features, pad_in

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.linear(F.pad(x, (0, self.pad_in)) if self.pad_in else x, self.weight)[:, :self.out_features]
        return y if self.bias is None else y + self.bias


def tensor_bytes(state: dict[str, torch.Tensor]) -> int:
    """Bytes of a state's tensors; a 2:4 tensor counts its compressed values and metadata."""
    total = 0
    for t in state.values():
        parts = [getattr(t, "packed", None), getattr(t, "meta", None)]
        total += sum(p.nbytes for p in parts if p is not None) if parts[0] is not None else t.nbytes
    return total


def load_torch_2to4(model: nn.Module, x: torch.Tensor, export: Export, reference: bool) -> Session:
    """fp16 PyTorch eager where every Linear layer holding a 2:4 pattern runs on the 2:4 kernels;
    the dense model, its reference, runs in fp16 eager as well."""
    if x.device.type != "cuda":
        raise NotDeployable("2:4 semi-structured kernels need CUDA")
    if is_int8(model):
        raise NotDeployable("int8 model: this runtime deploys float models in fp16")
    half = copy.deepcopy(model).half()

    def convert(m: nn.Module) -> nn.Module | None:
        return SemiStructuredLinear(m) if type(m) is nn.Linear and is_n_m_sparse(m.weight) else None

    if not replace_layers(half, convert) and not reference:
        raise NotDeployable("no Linear layer holds a 2:4 pattern along its inputs")
    return torch_session(half, tensor_bytes(half.state_dict()), FP16_TOLERANCE, dtype=torch.float16)


# -- checking and timing ------------------------------------------------------------------------
def check(session: Session, x: torch.Tensor, expected: torch.Tensor) -> dict[str, float]:
    """Raise NotDeployable unless the session's outputs on x are within its tolerance of
    `expected`; returns the largest difference and the bound, for the record."""
    out = session(x)
    bound = session.tolerance * max(1.0, float(expected.abs().max()))
    if out.shape != expected.shape:
        raise NotDeployable(f"output shape {tuple(out.shape)}, PyTorch's {tuple(expected.shape)}")
    diff = float((out - expected.cpu()).abs().max())
    if not diff <= bound:  # also catches NaN
        raise NotDeployable(f"outputs differ from PyTorch's by up to {diff:.3g} (tolerance {bound:.3g})")
    return {"max_abs_diff": diff, "tolerance": bound}


def timed(session: Session, x: torch.Tensor) -> Callable[[], Any]:
    prepared = session.prepare(x)
    return functools.partial(session.run, prepared)


TIMINGS = ("latency{runtime}_b{batch}_ms", "latency{runtime}_b{batch}_iqr_ms", "speedup{runtime}_b{batch}",
           "speedup{runtime}_b{batch}_iqr")  # per runtime and batch, in the order PairedTiming gives them


def measure_runtimes(model: nn.Module, dense: nn.Module, inputs: dict[int, torch.Tensor],
                     runtimes: list[str]) -> tuple[dict[str, float | None], dict[str, dict[str, Any]]]:
    """Per runtime that runs on the inputs' device: the compressed model's latency and its speedup
    over `dense` at each batch size (the keys of `inputs`), timed side by side, and the deployed
    artifact's size. Returns (metrics, notes): a runtime that cannot take the model, or whose
    outputs differ from PyTorch's, gets None for each of its metrics and its reason in the notes.
    The dense model goes through the same deployment and check.
    """
    device = next(iter(inputs.values())).device.type
    largest = inputs[max(inputs)]
    exports = {"model": Export(model, largest), "dense": Export(dense, largest)}
    metrics: dict[str, float | None] = {}
    notes: dict[str, dict[str, Any]] = {}
    try:
        for name in (r for r in runtimes if device in RUNTIMES[r].devices):
            load, note = RUNTIMES[name].load, {"status": "ok"}
            keys = [runtime_key("artifact{runtime}_bytes", name)]
            keys += [runtime_key(t, name, batch) for batch in inputs for t in TIMINGS]
            try:
                values: list[float] = []
                for batch, x in inputs.items():
                    compressed = load(model, x, exports["model"], False)
                    note[f"check_b{batch}"] = check(compressed, x, reference_outputs(model, x))
                    try:
                        baseline = load(dense, x, exports["dense"], True)
                        check(baseline, x, reference_outputs(dense, x))
                    except NotDeployable as e:
                        raise NotDeployable(f"the dense model: {e}") from e
                    t = measure.paired_speedup(timed(baseline, x), timed(compressed, x),
                                               pairs=PAIRS, block_s=BLOCK_S)
                    values += [t.compressed_ms, t.compressed_iqr_ms, t.speedup, t.speedup_iqr]
                metrics.update(zip(keys, [compressed.artifact_bytes, *values]))
            except Exception as e:  # noqa: BLE001 - a runtime that cannot take a model is an empty cell
                metrics.update(dict.fromkeys(keys))
                note = {"status": "empty", "reason": str(e) if isinstance(e, NotDeployable) else reason(e)}
            notes[name] = note
    finally:
        for export in exports.values():
            export.close()
    return metrics, notes
