"""Running a PT2E-quantized model on the CPU's real int8 kernels: shared by the int8 methods.

torchao's PT2E flow (torch.export -> prepare_pt2e -> calibrate or train -> convert_pt2e) leaves an
ATen graph with int8 weights and quantize/dequantize nodes; Inductor, with freezing, lowers each
quantize-dequantize-conv/linear pattern to one oneDNN int8 kernel (VNNI/AMX on x86).
"""

from __future__ import annotations

import warnings

import torch
import torch._inductor.config as inductor_config
from torch import nn
from torchao.quantization.pt2e import move_exported_model_to_eval
from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e
from torchao.quantization.pt2e.quantizer.x86_inductor_quantizer import (
    QuantizationConfig,
    get_default_x86_inductor_quantization_config,
)

# Inductor's int8 lowering copy-constructs a tensor on every compile (torch 2.15): a warning about
# torch's own code, printed once per batch size into every int8 run's log.
warnings.filterwarnings("ignore", message="To copy construct from a tensor", category=UserWarning,
                        module=r"torch\._inductor\.mkldnn_lowerings")


def x86_config(*, is_qat: bool = False, is_dynamic: bool = False) -> QuantizationConfig:
    """The X86InductorQuantizer's default int8 config for this CPU. Without VNNI, the int8 kernels
    multiply uint8 activations by int8 weights with 16-bit pairwise sums (vpmaddubsw), which
    saturate on full-range activations: on an AVX2-only EPYC (Zen 1), in development at 732bdbd
    (no record: the committed int8 records come from VNNI CPUs), LeNet-5's int8 predictions
    agreed with the float model's on 91-95% of test images. The activations then use 7 bits
    (`reduce_range`, as torchao advises for CPUs without VNNI); with VNNI, all 8."""
    return get_default_x86_inductor_quantization_config(is_qat=is_qat, is_dynamic=is_dynamic,
                                                        reduce_range=not torch.cpu._is_vnni_supported())


def export(model: nn.Module, example: torch.Tensor) -> torch.fx.GraphModule:
    """The ATen graph that PT2E quantizers annotate, with a dynamic batch dimension.

    The model is put back in the default memory format first: Inductor's int8 convolution
    lowering mis-derives output strides from channels-last weights, and lays out its prepacked
    weights itself anyway. Strict (Dynamo) tracing: the quantizers find Linear and Conv layers
    by the source-function metadata it records; torch 2.11's default non-strict export leaves
    it out, and the quantizers then annotate nothing.
    """
    model.to(memory_format=torch.contiguous_format)
    return torch.export.export(model, (example,), dynamic_shapes=({0: torch.export.Dim("batch")},), strict=True).module()


class Int8Model(nn.Module):
    """A PT2E-prepared model converted to int8 and run through Inductor's int8 kernels.

    Its state is what a deployment stores: int8 weights, their fp32 per-channel scales, and fp32
    biases, so the harness's size counts int8 bytes; the weights' zero points are int64 zeros
    (symmetric weights), which the bitmask encoding stores as 1 bit each. It runs on the CPU.
    """

    def __init__(self, prepared: torch.fx.GraphModule):
        super().__init__()
        move_exported_model_to_eval(prepared)
        graph = convert_pt2e(prepared.cpu())
        if not any(b.dtype == torch.int8 for b in graph.buffers()):
            raise RuntimeError("the quantizer quantized no weight: the model would run in float, not int8 "
                               f"(torch {torch.__version__}); nothing to measure as an int8 model")
        used = {node.target for node in graph.graph.nodes if node.op == "get_attr"}
        for name in [n for n, _ in [*graph.named_parameters(), *graph.named_buffers()] if n not in used]:
            owner, _, attr = name.rpartition(".")  # a float weight that convert_pt2e replaced by int8
            delattr(graph.get_submodule(owner), attr)
        for module in graph.modules():  # its operators are in eval form (above): now its flags too
            module.training = False
        self.converted = graph
        # A compiled function, not a submodule, so the state dict holds the weights once. Static
        # shapes (one compile per batch size; the harness uses a handful): with dynamic shapes,
        # Inductor (torch 2.15) expects a contiguous output from an int8 convolution whose input has
        # one channel (LeNet-5 on MNIST), while the prepacked oneDNN kernel writes channels-last,
        # and the run stops at a stride assertion.
        self._forward = torch.compile(graph.forward, dynamic=False)

    def train(self, mode: bool = True) -> Int8Model:
        """Sets this module's flag only. The converted graph only infers: its dropout and batch
        norm were put in eval form before conversion, and torchao's train/eval switch of an
        exported graph exports its patterns again, about a second at every call (the harness
        calls eval() and train() around each evaluation)."""
        self.training = mode
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Freezing makes the weights constants that Inductor prepacks for oneDNN; torchao's int8
        # patterns read the global flag, which the `options` of torch.compile do not set.
        with torch.inference_mode(), inductor_config.patch(freezing=True):
            # A fresh inference tensor: inputs made inside or outside inference mode, or views,
            # would otherwise each fail Dynamo's guards and compile the model again.
            return self._forward(x.clone())
