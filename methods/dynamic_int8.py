import torch
from torch import nn
from torchao.quantization.pt2e.quantize_pt2e import prepare_pt2e
from torchao.quantization.pt2e.quantizer.x86_inductor_quantizer import X86InductorQuantizer

from bench import Context, Method, register_method
from bench.quantization import Int8Model, export, x86_config


@register_method("dynamic-int8")
class DynamicInt8(Method):
    """Dynamic int8 quantization of Linear layers: int8 weights, activations quantized on the fly (Jacob et al. 2018).

    Linear weights are quantized per output channel (symmetric int8, codes -128..127 with step
    max|w| / 127.5, as in ptq-int8); each activation's range is the min/max of the batch, computed
    at run time (uint8, per tensor), so no calibration is needed; convolutions stay float. Jacob et
    al. fix activation ranges ahead of time: run-time ranges are PyTorch's dynamic quantization,
    their int8 arithmetic with ranges that follow each input. The range spans the whole batch, so
    an input's logits depend on the other inputs of its batch (accuracy is measured on batches of
    test images). The PT2E flow
    of ptq-int8 with a dynamic X86InductorQuantizer config runs it on oneDNN int8 kernels.
    torchao's eager `quantize_(Int8DynamicActivationInt8WeightConfig())` was the alternative,
    but in torchao 0.18 it is slower than fp32 on the CPU in eager mode and breaks the
    torch.compile graph at every layer (`torch.cpu._is_amx_tile_supported`).
    """

    family = "quantization"
    output = "quantized"

    def run(self, ctx: Context) -> nn.Module:
        model = ctx.pretrained().cpu().eval()
        x = ctx.calibration_batches(1)[0][0].cpu()
        config = x86_config(is_dynamic=True)
        quantizer = X86InductorQuantizer().set_module_type_qconfig(nn.Linear, config)
        prepared = prepare_pt2e(export(model, x), quantizer)
        with torch.no_grad():
            prepared(x)  # records the weights' per-channel ranges
        return Int8Model(prepared)
