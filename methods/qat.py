from torch import nn
from torchao.quantization.pt2e import allow_exported_model_train_eval
from torchao.quantization.pt2e.quantize_pt2e import prepare_qat_pt2e
from torchao.quantization.pt2e.quantizer.x86_inductor_quantizer import X86InductorQuantizer

from bench import Context, Method, register_method
from bench.quantization import Int8Model, export, x86_config


@register_method("qat")
class QAT(Method):
    """Quantization-aware training: fine-tuning through fake int8 quantization, then the int8 model of ptq-int8 (Jacob et al. 2018).

    torchao's PT2E QAT flow inserts fake quantization of the weights (per output channel) and
    activations (per tensor, ranges tracked by moving averages) with BatchNorm folded as in
    training; the model is fine-tuned `finetune_epochs` at `finetune_lr` through the rounding
    (straight-through gradients), then converted to the same int8 execution as ptq-int8.
    Weights that are exactly zero on entry stay zero, so it can follow a pruning method.

    Adaptations (torchao's QAT defaults): a weight channel's range is a moving average (constant
    0.01) of its min/max, not the current weights' min/max of Jacob et al. (Sec. 3.1), and its codes
    span -128..127 with step max|w| / 127.5; activation ranges are moving averages from the first
    step, with no delay, since training starts from the trained model. BatchNorm is folded the
    whitepaper's way (Krishnamoorthi 2018: the weights scaled by gamma / running std, the output
    scaled back and normalized with the batch statistics); neither the BatchNorm statistics nor the
    ranges are frozen after a few epochs, as the whitepaper (the statistics) and torchvision's QAT
    reference script (`references/classification/train_quantization.py`: both) do.
    """

    family = "quantization"
    output = "quantized"

    def run(self, ctx: Context) -> nn.Module:
        model = ctx.pretrained().train()
        x = ctx.calibration_batches(1)[0][0]
        quantizer = X86InductorQuantizer().set_global(x86_config(is_qat=True))
        # Exported on the CPU, then trained on the run's device: on CUDA (torch 2.11), exporting
        # BatchNorm in training mode pins the batch size and the dynamic batch export fails.
        prepared = prepare_qat_pt2e(export(model.cpu(), x.cpu()), quantizer).to(ctx.device)
        allow_exported_model_train_eval(prepared)  # ctx.train switches it to training mode
        ctx.finetune(prepared, hold_zeros=True, precision="fp32")  # fake-quantize ops take fp32 only
        return Int8Model(prepared)
