import torch
import torch.nn.functional as F

from bench import Context, Method, bounded, register_method


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, y: torch.Tensor, *,
                      alpha: float, temperature: float, label_smoothing: float = 0.0) -> torch.Tensor:
    """alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T)) + (1 - alpha) * cross-entropy.

    The T^2 factor keeps the soft term's gradients on the scale of the hard term's as T changes
    (Hinton et al. 2015, Sec. 2); the KL is averaged over the batch like the cross-entropy. The KL
    differs from the paper's cross-entropy with the soft targets by the teacher's entropy, a
    constant, so their gradients are the same. The hard term takes the suite's label smoothing,
    as the student's training does (0 in the committed suites); the paper has none.
    """
    soft = F.kl_div(F.log_softmax(student_logits / temperature, dim=1),
                    F.log_softmax(teacher_logits / temperature, dim=1),
                    reduction="batchmean", log_target=True)
    hard = F.cross_entropy(student_logits, y, label_smoothing=label_smoothing)
    return alpha * temperature ** 2 * soft + (1 - alpha) * hard


@register_method("kd")
class KnowledgeDistillation(Method):
    """The suite's student model distilled from the trained dense model (Hinton et al. 2015).

    The dense model (ctx.pretrained(), frozen, in eval mode) gives soft targets at temperature
    `temperature` on the same augmented batches the student sees; the student trains on the
    dense plus fine-tuning budget with `distillation_loss`. Only the student is returned and
    measured; the teacher's training epochs count toward the run's cost. Compare with `student`,
    the same model and budget without the teacher.

    `lr_scale` multiplies the suite's learning rate. The soft term's gradient with respect to the
    logits is alpha * T * (p_student - p_teacher) at temperature T, up to T times the
    cross-entropy's while the teacher's logits are large next to T, so a rate tuned for
    cross-entropy can be too high: LeNet-5 at lr 0.05 and 0.02 diverged (the mnist suite sets 0.2).
    """

    family = "distillation"
    starts_from = "scratch"
    alpha: float = bounded(0.9, ge=0, le=1)  # the soft term's weight; the hard term's is 1 - alpha
    temperature: float = bounded(4.0, gt=0)
    lr_scale: float = bounded(1.0, ge=0)

    def run(self, ctx: Context) -> torch.nn.Module:
        teacher = ctx.pretrained().eval().requires_grad_(False)
        student = ctx.new_student()

        def loss_fn(logits: torch.Tensor, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                teacher_logits = teacher(x)
            return distillation_loss(logits, teacher_logits, y, alpha=self.alpha,
                                     temperature=self.temperature,
                                     label_smoothing=ctx.budget.label_smoothing)

        ctx.train(student, ctx.budget.epochs + ctx.budget.finetune_epochs, loss_fn=loss_fn,
                  lr=self.lr_scale * ctx.budget.lr)
        return student
