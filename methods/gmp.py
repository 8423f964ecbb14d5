import torch
from torch.nn.utils import prune

from bench import Context, Method, bounded, register_method
from bench.registry import ParameterError
from bench.sparsity import make_permanent, prunable_weights, prune_unstructured, weight_sparsity

SCOPES = ("global", "layer")


def schedule(step: int, *, final: float, initial: float, begin: int, end: int) -> float:
    """Zhu & Gupta's cubic sparsity at `step`: `initial` until `begin`, `final` from `end` on.

    It prunes fast while the network has many redundant weights and slowly near the target.
    """
    progress = min(max((step - begin) / max(end - begin, 1), 0.0), 1.0)
    return final + (initial - final) * (1 - progress) ** 3


@register_method("gmp")
class GradualMagnitude(Method):
    """Gradual magnitude pruning during training from scratch (Zhu & Gupta 2017).

    Over the whole budget (epochs + finetune_epochs, at the dense rate), every `dt` steps
    between `begin_fraction` and `end_fraction` of the training the smallest-magnitude weights
    (ranked globally, or within each layer with `scope="layer"`) are masked so that the
    sparsity follows `schedule`; the rest of the training recovers with the mask fixed.
    Pruned weights stay pruned, since they are the smallest (zero) at the next update.
    Zhu & Gupta prune every layer to s_t (`scope="layer"`); the global ranking of the default
    is this benchmark's choice, the one its other magnitude methods make.
    """

    family = "pruning during training"
    sweep = "sparsity"
    starts_from = "scratch"
    sparsity: float = bounded(0.9, ge=0, lt=1)
    initial_sparsity: float = bounded(0.0, ge=0, lt=1)
    begin_fraction: float = bounded(0.1, ge=0, le=1)
    end_fraction: float = bounded(0.7, ge=0, le=1)
    dt: int = bounded(100, ge=1)
    scope: str = bounded("global", choices=SCOPES)

    def __post_init__(self) -> None:
        if self.begin_fraction > self.end_fraction:
            raise ParameterError(f"gmp: needs begin_fraction <= end_fraction, got {self.begin_fraction} and "
                                 f"{self.end_fraction}")

    def run(self, ctx: Context) -> torch.nn.Module:
        epochs = ctx.budget.epochs + ctx.budget.finetune_epochs
        steps = epochs * ctx.steps_per_epoch
        begin = int(self.begin_fraction * steps)
        end = min(int(self.end_fraction * steps), steps - 1)  # the last update must happen
        model = ctx.new_model()
        params = prunable_weights(model)
        total = sum(getattr(m, n).numel() for m, n in params)
        applied = []

        def update(model: torch.nn.Module, step: int) -> None:
            if not (begin <= step <= end and ((step - begin) % self.dt == 0 or step == end)):
                return
            target = schedule(step, final=self.sparsity, initial=self.initial_sparsity, begin=begin, end=end)
            make_permanent(model)  # the same Parameter objects remain, so the optimizer goes on
            if self.scope == "global":
                prune_unstructured(params, prune.L1Unstructured, amount=round(target * total))
            else:
                for module, name in params:
                    prune_unstructured([(module, name)], prune.L1Unstructured, amount=target)
            applied.append([step, weight_sparsity(model)])

        ctx.train(model, epochs, lr=ctx.budget.lr, after_step=update)
        ctx.record(gmp_schedule=applied)
        return make_permanent(model)
