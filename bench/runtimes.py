"""The runtimes a compressed model is deployed to and timed in: what each is, what it
accelerates, and which function of bench.deploy loads a model into it, declared once each.

Only the declarations live here, without torch, ONNX Runtime or OpenVINO, so that reading a suite
file, the metric registry and the leaderboards needs none of them; a runtime's loader is imported
when a model is first deployed to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench.registries import Registry, resolve

REFERENCE_RUNTIME = "torch"  # PyTorch eager: its metrics keep the names they had before runtimes
CSR_MIN_SPARSITY = 0.5  # a Linear layer at least this sparse runs as a CSR product in torch_csr
OPENVINO_SPARSE_RATE = 0.5  # OpenVINO's sparse-weight decompression threshold (int8 FC, AMX CPUs)


@dataclass(frozen=True)
class Runtime:
    """A runtime the harness deploys to."""

    name: str
    label: str  # short, for table headers
    devices: tuple[str, ...]
    description: str  # README: what it runs
    accelerates: str  # README: which compressed forms it turns into speed
    loader: str  # "module:attr" of `load(model, x, export, reference) -> Session` (bench.deploy)

    def load(self, *args: Any) -> Any:
        """Its loader called on `args`, looked up at each call (a test may replace it)."""
        return resolve(self.loader)(*args)


RUNTIMES: Registry[Runtime] = Registry("runtime", ((r.name, r) for r in [
    Runtime("torch", "eager", ("cpu", "cuda"), "PyTorch eager on the returned model, fp32 (on CUDA its "
            "convolutions in TF32, cuDNN's default in PyTorch; matrix products in full fp32); an int8 "
            "model runs its converted PT2E graph, which quantizes and dequantizes around fp32 operators",
            "smaller dense layers (removed channels, a smaller student)", "bench.deploy:load_torch"),
    Runtime("torch_compile", "compiled", ("cpu", "cuda"), "`torch.compile` (Inductor, static shapes) "
            "of the returned model; an int8 model's own forward, which is Inductor with frozen "
            "weights lowered to oneDNN int8 kernels", "smaller dense layers; int8 (CPU)",
            "bench.deploy:load_torch_compile"),
    Runtime("torch_csr", "CSR", ("cpu",), "PyTorch eager where each Linear layer at least "
            f"{CSR_MIN_SPARSITY:.0%} sparse multiplies a CSR weight (`torch.sparse.mm`, MKL); "
            "other layers dense. The artifact is the saved state dict with CSR tensors",
            "unstructured sparsity in Linear layers, at high sparsity", "bench.deploy:load_torch_csr"),
    Runtime("onnxruntime", "ORT", ("cpu",), "ONNX Runtime's CPU provider on the model's ONNX export "
            "(torch.onnx, dynamo exporter); int8 models export as QDQ graphs. The artifact is the "
            ".onnx file", "smaller dense layers; int8 (QDQ fused into int8 kernels)",
            "bench.deploy:load_onnxruntime"),
    Runtime("openvino", "OpenVINO", ("cpu",), "OpenVINO's CPU plugin on the same ONNX export, "
            "static input shape, f32 inference precision, the LATENCY performance hint (one infer "
            "request, called synchronously), sparse-weight decompression enabled at "
            f"{OPENVINO_SPARSE_RATE:.0%}. The artifact is its IR (xml + bin, fp32 weights)",
            "smaller dense layers; int8 (QDQ); sparse int8 fully connected layers on AMX CPUs "
            "only", "bench.deploy:load_openvino"),
    Runtime("torch_2to4", "2:4", ("cuda",), "PyTorch eager in fp16 where each Linear layer holding "
            "a 2:4 pattern runs on semi-structured sparse kernels (`to_sparse_semi_structured`, "
            "zero-padded to 64); the dense model in fp16 eager is its reference",
            "2:4 sparsity (`nm`) in Linear layers", "bench.deploy:load_torch_2to4"),
]))


def runtime_key(template: str, runtime: str, batch: int | None = None) -> str:
    """A metric name template (bench.metrics) filled in: the runtime as an infix (`_onnxruntime`),
    none for PyTorch eager, the reference runtime, whose metrics keep their earlier names
    (`latency_b1_ms`)."""
    infix = "" if runtime == REFERENCE_RUNTIME else f"_{runtime}"
    return template.format(runtime=infix, batch=batch)
