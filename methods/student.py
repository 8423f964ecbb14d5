import torch

from bench import Context, Method, register_method


@register_method("student")
class Student(Method):
    """The suite's student model trained without a teacher: the baseline of `kd` (Hinton et al. 2015).

    Same model, initialization and budget (dense plus fine-tuning epochs) as `kd`, with the
    plain cross-entropy loss, so the difference between the two rows is the teacher's doing.
    """

    family = "distillation"
    starts_from = "scratch"

    def run(self, ctx: Context) -> torch.nn.Module:
        model = ctx.new_student()
        ctx.train(model, ctx.budget.epochs + ctx.budget.finetune_epochs)
        return model
