import torch
import torch._inductor.config as inductor_config
from torch import nn
from torchao.quantization.pt2e import allow_exported_model_train_eval, move_exported_model_to_eval
from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
from torchao.quantization.pt2e.quantizer.x86_inductor_quantizer import (
    X86InductorQuantizer,
    get_default_x86_inductor_quantization_config,
)

from bench import Context, Method, register_method


@register_method("ptq-int8")
class PTQInt8(Method):
    """Post-training static int8 quantization of weights and activations, on x86 int8 kernels (Jacob et al. 2018).

    Weights are quantized per output channel (symmetric int8), activations per tensor (uint8) with
    ranges calibrated on `calibration_batches` training batches; BatchNorm is folded into the
    convolutions first. There is no fine-tuning: the method is defined by calibration alone.

    Why torchao's PT2E flow (torch.export -> prepare_pt2e -> calibrate -> convert_pt2e, with the
    X86InductorQuantizer) and torch.compile: in torch 2.15 the eager and FX flows of
    torch.ao.quantization raise a DeprecationWarning on every call (to be removed), and so does
    creating quint8/qint8 tensors; PT2E stores plain int8 tensors, and Inductor with freezing
    lowers each quantize-dequantize-conv/linear pattern to one oneDNN int8 kernel (VNNI/AMX).
    """

    output = "quantized"
    calibration_batches: int = 4

    def run(self, ctx: Context) -> nn.Module:
        model = ctx.pretrained().cpu().eval()
        batches = [x.cpu() for x, _ in ctx.calibration_batches(self.calibration_batches)]
        quantizer = X86InductorQuantizer().set_global(get_default_x86_inductor_quantization_config())
        prepared = prepare_pt2e(export(model, batches[0]), quantizer)
        with torch.no_grad():
            for x in batches:
                prepared(x)
        return Int8Model(prepared)


def export(model: nn.Module, example: torch.Tensor) -> torch.fx.GraphModule:
    """The ATen graph that PT2E quantizers annotate, with a dynamic batch dimension."""
    return torch.export.export(model, (example,), dynamic_shapes=({0: torch.export.Dim("batch")},)).module()


class Int8Model(nn.Module):
    """A PT2E-prepared model converted to int8 and run through Inductor's int8 kernels.

    Its state is what a deployment stores: int8 weights, their fp32 per-channel scales (and zero
    points), and fp32 biases, so the harness's size counts int8 bytes. It runs on the CPU.
    """

    def __init__(self, prepared: torch.fx.GraphModule):
        super().__init__()
        move_exported_model_to_eval(prepared)
        graph = convert_pt2e(prepared.cpu())
        used = {node.target for node in graph.graph.nodes if node.op == "get_attr"}
        for name in [n for n, _ in [*graph.named_parameters(), *graph.named_buffers()] if n not in used]:
            owner, _, attr = name.rpartition(".")  # a float weight that convert_pt2e replaced by int8
            delattr(graph.get_submodule(owner), attr)
        allow_exported_model_train_eval(graph)  # the harness calls .eval() on what it measures
        self.converted = graph
        # A compiled function, not a submodule, so the state dict holds the weights once.
        self._forward = torch.compile(graph.forward, dynamic=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Freezing makes the weights constants that Inductor prepacks for oneDNN; torchao's int8
        # patterns read the global flag, which the `options` of torch.compile do not set.
        with torch.inference_mode(), inductor_config.patch(freezing=True):
            # A fresh inference tensor: inputs made inside or outside inference mode, or views,
            # would otherwise each fail Dynamo's guards and compile the model again.
            return self._forward(x.clone())
