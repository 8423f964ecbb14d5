import torch

from bench import Context, Method, bounded, register_method
from bench.sparsity import DynamicMasks, erk_densities, random_masks


@register_method("set")
class SET(Method):
    """Sparse Evolutionary Training: prune the smallest weights and regrow at random (Mocanu et al. 2018).

    Starts from a random Erdos-Renyi-Kernel mask and keeps each layer's sparsity constant: every
    `dt` steps each layer drops its `drop_fraction` smallest-magnitude active weights and regrows
    as many at random inactive positions, starting at zero. The mask stops changing after
    `end_fraction` of the steps so that the final topology is trained to convergence.
    Subclasses (RigL) change only `drop_at` and `grow_score`.

    This is SET as Evci et al. (2020) ran it beside RigL, not Mocanu et al.'s own setting: their
    code draws an Erdos-Renyi mask (no kernel term), gives regrown connections random weights
    (randn / 10) and rewires once per epoch until the last one.
    """

    family = "sparse training"
    sweep = "sparsity"
    starts_from = "scratch"
    sparsity: float = bounded(0.9, ge=0, lt=1)
    drop_fraction: float = bounded(0.3, ge=0, le=1)
    dt: int = bounded(100, ge=1)
    end_fraction: float = bounded(0.75, ge=0, le=1)

    def drop_at(self, step: int, end_step: int) -> float:  # noqa: ARG002 - SET's rate is constant
        return self.drop_fraction

    def grow_score(self, weight: torch.Tensor, grad: torch.Tensor, generator: torch.Generator) -> torch.Tensor:  # noqa: ARG002
        return torch.rand(weight.shape, device=weight.device, generator=generator)

    def run(self, ctx: Context) -> torch.nn.Module:
        model = ctx.new_model()
        generator = torch.Generator(device=ctx.device).manual_seed(ctx.seed)
        epochs = ctx.budget.epochs + ctx.budget.finetune_epochs
        end_step = int(self.end_fraction * epochs * ctx.steps_per_epoch)
        masks = DynamicMasks(
            model, random_masks(model, erk_densities(model, self.sparsity), generator),
            dt=self.dt, end_step=end_step,
            drop_fraction=lambda step: self.drop_at(step, end_step),
            grow_score=lambda w, g: self.grow_score(w, g, generator))
        ctx.train(model, epochs=epochs, after_backward=masks.after_backward, after_step=masks.after_step)
        ctx.record(mask_updates=masks.trace)
        return model
