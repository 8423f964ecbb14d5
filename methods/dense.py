import torch

from bench import Context, Method, register_method


@register_method("dense")
class Dense(Method):
    """The suite's trained dense model, unchanged: the reference row."""

    family = "reference"

    def run(self, ctx: Context) -> torch.nn.Module:
        return ctx.pretrained()
