import torch

from bench import Context, Method, register_method


@register_method("dense-ft")
class DenseFinetuned(Method):
    """The dense model fine-tuned like a post-training method, nothing compressed: the matched-budget reference.

    Every post-training method spends the dense epochs plus `finetune_epochs` at `finetune_lr`;
    `dense` spends only the first part. This row spends the same as them with no compression, so
    that a method's change in accuracy can be told apart from the effect of the extra training.
    """

    family = "reference"

    def run(self, ctx: Context) -> torch.nn.Module:
        model = ctx.pretrained()
        ctx.finetune(model)
        return model
