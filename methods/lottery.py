import torch
from torch.nn.utils import prune

from bench import Context, Method, bounded, register_method
from bench.sparsity import make_permanent, mask_weight, prunable_weights, prune_unstructured, weight_sparsity


@register_method("lottery")
class Lottery(Method):
    """Lottery tickets: iterative magnitude pruning with rewinding (Frankle & Carbin 2019).

    Each of `rounds` rounds trains the masked network, masks the smallest-magnitude surviving
    weights (ranked globally) so that the kept fraction shrinks by (1 - sparsity)^(1/rounds),
    and rewinds the survivors to their values at `rewind_epoch`: 0 is the initialization (the
    dense model's, for this seed); k > 0 is the state after k epochs of the first round's
    training (late rewinding, Frankle et al. 2020, "Linear mode connectivity and the lottery
    ticket hypothesis"). The ticket is then trained once more with its mask held. With
    `reinit`, the ticket keeps its mask but gets fresh random weights instead: the paper's
    control, which should do worse if the initialization matters.

    Every training is `epochs_per_round` epochs at the dense rate (0: the dense budget, as in the
    paper), so a run costs (rounds + 1) trainings; the harness counts them. Each starts the
    suite's schedule afresh (warm-up, then cosine), after late rewinding too: Frankle et al.
    resume the schedule at step k and train the remaining epochs, where here the ticket gets
    the full `epochs_per_round` from the start of the schedule.
    """

    family = "pruning during training"
    sweep = "sparsity"
    starts_from = "scratch"
    sparsity: float = bounded(0.9, ge=0, lt=1)
    rounds: int = bounded(5, ge=1)
    rewind_epoch: int = bounded(0, ge=0)
    reinit: bool = False
    epochs_per_round: int = bounded(0, ge=0)

    def run(self, ctx: Context) -> torch.nn.Module:
        epochs = self.epochs_per_round or ctx.budget.epochs
        if not 0 <= self.rewind_epoch <= epochs:
            raise ValueError(f"lottery: rewind_epoch must be in [0, {epochs}], got {self.rewind_epoch}")
        model = ctx.new_model()
        params = prunable_weights(model)
        total = sum(getattr(m, n).numel() for m, n in params)
        rewind = _state(model)

        def snapshot(model: torch.nn.Module, step: int) -> None:
            if step == self.rewind_epoch * ctx.steps_per_epoch - 1:
                rewind.update(_state(model))

        reached = []
        for r in range(1, self.rounds + 1):
            ctx.train(model, epochs, lr=ctx.budget.lr, after_step=snapshot if r == 1 else None)
            # Folding first makes the earlier zeros the smallest weights, so the new mask keeps them.
            make_permanent(model)
            keep = round(total * (1 - self.sparsity) ** (r / self.rounds))
            prune_unstructured(params, prune.L1Unstructured, amount=total - keep)
            reached.append(weight_sparsity(model))
            masks = [m.weight_mask.clone() for m, _ in params]
            make_permanent(model)
            if self.reinit and r == self.rounds:  # a fresh draw from the suite model's own init
                model.load_state_dict(ctx.new_model(seed=ctx.seed + 10_000).state_dict())
            else:
                model.load_state_dict(rewind)
            for (module, name), mask in zip(params, masks):
                mask_weight(module, name, mask)
        ctx.record(round_sparsity=reached)
        ctx.train(model, epochs, lr=ctx.budget.lr)
        return make_permanent(model)


def _state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}
