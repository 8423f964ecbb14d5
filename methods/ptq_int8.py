import torch
from torch import nn
from torchao.quantization.pt2e.quantize_pt2e import prepare_pt2e
from torchao.quantization.pt2e.quantizer.x86_inductor_quantizer import X86InductorQuantizer

from bench import Context, Method, bounded, register_method
from bench.quantization import Int8Model, export, x86_config


@register_method("ptq-int8")
class PTQInt8(Method):
    """Post-training static int8 quantization of weights and activations, on x86 int8 kernels (Jacob et al. 2018).

    Weights are quantized per output channel (symmetric int8), activations per tensor (uint8) with
    ranges calibrated on `calibration_batches` training batches; BatchNorm is folded into the
    convolutions first. There is no fine-tuning: the method is defined by calibration alone.

    Adaptations (torchao's X86InductorQuantizer defaults): an activation's range is the one torch's
    HistogramObserver picks, the range whose quantization of the calibration histogram has the
    least L2 error, which may clip outliers, not the observed min/max of Jacob et al. (Sec. 3.1);
    weight codes span -128..127 with step max|w| / 127.5 per channel, so a channel's largest
    positive weight is clipped by half a step to 127 (Jacob et al. use -127..127, step max|w| / 127).

    Why torchao's PT2E flow (torch.export -> prepare_pt2e -> calibrate -> convert_pt2e, with the
    X86InductorQuantizer) and torch.compile: in torch 2.15 the eager and FX flows of
    torch.ao.quantization raise a DeprecationWarning on every call (to be removed), and so does
    creating quint8/qint8 tensors; PT2E stores plain int8 tensors, and Inductor with freezing
    lowers each quantize-dequantize-conv/linear pattern to one oneDNN int8 kernel (VNNI/AMX).
    """

    family = "quantization"
    output = "quantized"
    calibration_batches: int = bounded(4, ge=1)

    def run(self, ctx: Context) -> nn.Module:
        model = ctx.pretrained().cpu().eval()
        batches = [x.cpu() for x, _ in ctx.calibration_batches(self.calibration_batches)]
        quantizer = X86InductorQuantizer().set_global(x86_config())
        prepared = prepare_pt2e(export(model, batches[0]), quantizer)
        with torch.no_grad():
            for x in batches:
                prepared(x)
        return Int8Model(prepared)
