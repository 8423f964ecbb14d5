"""sft, kd, student and sparse-coding on small real MNIST subsets (CPU)."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.linear_model import orthogonal_mp_gram
from torch import nn

from bench import NotApplicable, ParameterError, measure
from bench.worker import check_measurable
from methods.kd import KnowledgeDistillation, distillation_loss
from methods.sft import SparseFineTuning, TopKGradients
from methods.sparse_coding import SparseCoding, SparseCodingNet, omp
from methods.student import Student


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def same_weights(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def spy_on_train(ctx, after_each_step=None):
    """Wrap ctx.train to see the hooks and loss a method passes; returns the list of calls."""
    calls, train = [], ctx.train

    def wrapped(model, epochs, **kw):
        calls.append({"model": model, "epochs": epochs, **kw})
        hook = kw.get("after_backward")
        if after_each_step is not None and hook is not None:
            def checked(m, step):
                hook(m, step)
                after_each_step(m, step)
            kw["after_backward"] = checked
        train(model, epochs, **kw)

    ctx.train = wrapped
    return calls


# -- sft ------------------------------------------------------------------------------------------

def test_topk_keeps_the_largest_entries_and_feeds_back_the_rest():
    torch.manual_seed(0)
    model = nn.Linear(40, 25)
    hook = TopKGradients(density=0.05, error_feedback=True, weight_decay=1e-3)
    residual = {n: torch.zeros_like(p) for n, p in model.named_parameters()}
    for step in range(3):
        grads = {n: torch.randn_like(p) for n, p in model.named_parameters()}
        for n, p in model.named_parameters():
            p.grad = grads[n].clone()
        hook(model, step)
        for n, p in model.named_parameters():
            wanted = grads[n] + 1e-3 * p.detach() + residual[n]
            k = math.ceil(0.05 * p.numel())
            assert int(p.grad.count_nonzero()) == k
            kept = p.grad != 0
            assert wanted[kept].abs().min() >= wanted[~kept].abs().max()  # the k largest
            assert torch.equal(p.grad[kept], wanted[kept])
            # what was not applied waits in the residual, and nothing else
            torch.testing.assert_close(p.grad + hook.residual[n], wanted)
            assert torch.all(hook.residual[n][kept] == 0)
            residual[n] = hook.residual[n]

    plain = TopKGradients(density=0.05, error_feedback=False, weight_decay=0.0)
    grad = torch.randn(25, 40)
    model.weight.grad, model.bias.grad = grad.clone(), None
    plain(model, 0)
    assert plain.residual == {}
    top = grad.abs().flatten().topk(50).indices
    assert torch.equal(model.weight.grad.flatten()[top], grad.flatten()[top])
    assert int(model.weight.grad.count_nonzero()) == 50


def test_sft_pretrained_applies_at_most_density_and_counts_changed_weights(make_context):
    ctx = make_context(limit_train=1000, epochs=2, finetune_epochs=2)
    method = SparseFineTuning(density=0.01)
    over = []

    def check(model, step):
        for n, p in model.named_parameters():
            if int(p.grad.count_nonzero()) > math.ceil(0.01 * p.numel()):
                over.append((n, step))

    calls = spy_on_train(ctx, check)
    model = method.run(ctx)
    assert over == []
    assert [c["epochs"] for c in calls] == [1, 1]  # top-k SGD, then Adam, within the 2 epochs
    assert isinstance(calls[0]["optimizer"], torch.optim.SGD)
    assert isinstance(calls[1]["optimizer"], torch.optim.Adam)
    assert calls[1]["optimizer"].param_groups[0]["initial_lr"] == 1e-4
    assert ctx.train_epochs == 2 + 2

    start = ctx.pretrained()
    changed = sum(int((p != q).sum()) for p, q in zip(model.parameters(), start.parameters()))
    total = n_params(start)
    assert ctx.figures["changed_params"] == changed
    assert ctx.figures["changed_fraction"] == pytest.approx(changed / total)
    per_step = sum(math.ceil(0.01 * p.numel()) for p in start.parameters())
    # only entries some step selected can move (Adam's moments stay zero elsewhere)
    assert 0 < changed <= 2 * ctx.steps_per_epoch * per_step < 0.2 * total
    assert 0 < ctx.figures["update_density"] <= per_step / total
    assert ctx.evaluate(model) > ctx.evaluate(start) - 0.05


def test_sft_error_feedback_matters_and_seeds_repeat(make_context):
    def run(**params):
        ctx = make_context(limit_train=1000, epochs=1, finetune_epochs=1)
        return SparseFineTuning(adam_epochs=0, **params).run(ctx)

    with_ef, again, without = run(), run(), run(error_feedback=False)
    assert same_weights(with_ef, again)
    assert not same_weights(with_ef, without)


def test_sft_from_scratch_uses_the_whole_budget(make_context):
    ctx = make_context(limit_train=500, epochs=1, finetune_epochs=1)
    calls = spy_on_train(ctx)
    model = SparseFineTuning(start="scratch", density=0.1).run(ctx)
    assert [c["epochs"] for c in calls] == [1, 1] and ctx.train_epochs == 2  # no dense model used
    assert not same_weights(model, ctx.new_model())
    with pytest.raises(ParameterError, match="parameter 'start': expected one of pretrained, scratch"):
        SparseFineTuning.build({"start": "dense"})  # before any training


# -- kd and student -------------------------------------------------------------------------------

def test_distillation_loss_is_the_formula():
    student = torch.tensor([[2.0, 0.5, -1.0], [0.0, 1.0, 3.0]])
    teacher = torch.tensor([[1.0, 1.5, -2.0], [0.5, -0.5, 2.0]])
    y = torch.tensor([0, 2])
    alpha, T = 0.7, 3.0

    def softmax(row):
        e = [math.exp(v) for v in row]
        return [v / sum(e) for v in e]

    kl = ce = 0.0
    for s, t, label in zip(student.tolist(), teacher.tolist(), y.tolist()):
        p, q = softmax([v / T for v in t]), softmax([v / T for v in s])
        kl += sum(pi * math.log(pi / qi) for pi, qi in zip(p, q))
        ce += -math.log(softmax(s)[label])
    expected = alpha * T * T * kl / 2 + (1 - alpha) * ce / 2
    got = distillation_loss(student, teacher, y, alpha=alpha, temperature=T)
    assert got.item() == pytest.approx(expected, rel=1e-5)


def test_kd_trains_the_student_with_the_teacher_and_returns_only_the_student(make_context):
    ctx = make_context(limit_train=2000, epochs=2, finetune_epochs=1)
    teachers, pretrained = [], ctx.pretrained

    def spy_pretrained():
        teachers.append(pretrained())
        return teachers[-1]

    ctx.pretrained = spy_pretrained
    calls = spy_on_train(ctx)
    model = KnowledgeDistillation(alpha=0.9, temperature=4.0).run(ctx)
    (teacher,) = teachers
    assert n_params(model) == n_params(ctx.new_student()) < n_params(teacher)
    teacher_modules = {id(m) for m in teacher.modules()}
    teacher_storage = {p.data_ptr() for p in teacher.parameters()}
    assert not any(id(m) in teacher_modules for m in model.modules())
    assert not any(p.data_ptr() in teacher_storage for p in model.parameters())
    assert same_weights(teacher, ctx.pretrained())  # the teacher only taught
    assert ctx.train_epochs == 2 + 3  # the teacher's training, then the student's 2 + 1 epochs
    assert ctx.evaluate(model) > 0.6  # chance is 0.1; the 2-epoch teacher itself reaches ~0.78

    # the loss the student trained with is the distillation loss against the teacher's logits
    (call,) = calls
    x, y = ctx.calibration_batches(n=1, batch_size=64)[0]
    with torch.no_grad():
        logits = model(x)
        expected = distillation_loss(logits, teacher(x), y, alpha=0.9, temperature=4.0)
        torch.testing.assert_close(call["loss_fn"](logits, y, x), expected)
    assert not torch.allclose(expected, F.cross_entropy(logits, y))

    again = KnowledgeDistillation().run(make_context(limit_train=2000, epochs=2, finetune_epochs=1))
    assert same_weights(model, again)


def test_kd_lr_scale_scales_the_suite_learning_rate(make_context):
    ctx = make_context(limit_train=1000, epochs=1, finetune_epochs=1)
    calls = spy_on_train(ctx)
    KnowledgeDistillation(lr_scale=0.2).run(ctx)
    assert calls[0]["lr"] == pytest.approx(0.2 * ctx.budget.lr)
    # at scale 0 SGD moves nothing (weight decay and momentum go through the rate too)
    frozen = KnowledgeDistillation(lr_scale=0.0).run(make_context(limit_train=1000, epochs=1, finetune_epochs=1))
    assert same_weights(frozen, make_context().new_student())

def test_student_trains_alone_on_the_same_budget(make_context):
    ctx = make_context(limit_train=2000, epochs=2, finetune_epochs=1)
    model = Student().run(ctx)
    assert n_params(model) == n_params(ctx.new_student())
    assert ctx.train_epochs == 3  # no teacher was trained or used
    assert ctx.evaluate(model) > 0.6


# -- sparse coding --------------------------------------------------------------------------------

def test_torch_omp_matches_scikit_learn():
    torch.manual_seed(0)
    dictionary = torch.randn(64, 100, dtype=torch.float64)
    dictionary /= dictionary.norm(dim=1, keepdim=True)
    x = torch.randn(30, 100, dtype=torch.float64)
    gram = dictionary @ dictionary.T
    codes = omp(x, dictionary, gram, 8)
    expected = orthogonal_mp_gram(gram.numpy(), (dictionary @ x.T).numpy(), n_nonzero_coefs=8).T
    assert int((codes != 0).sum(1).max()) == 8
    np.testing.assert_allclose(codes.numpy(), expected, atol=1e-8)


def test_sparse_coding_encodes_raw_images_and_learns(make_context):
    def run():
        ctx = make_context(limit_train=2000, epochs=1, finetune_epochs=1)
        return ctx, SparseCoding(atoms=64, k=10, samples=512).run(ctx)

    ctx, model = run()
    assert isinstance(model, SparseCodingNet)
    images = ctx.preprocess.normalize(ctx.data.test.x[:200])
    codes = model.encode(images)
    assert codes.shape == (200, 64)
    assert int((codes != 0).sum(1).max()) <= 10
    assert model(images).shape == (200, 10)  # raw images in, logits out: the encoding is inside
    assert ctx.figures["input_nonzeros"] == 10
    assert ctx.train_epochs == 2
    model(images).sum().backward()
    assert model.dictionary.grad is None  # only the MLP trains
    torch.testing.assert_close(model.dictionary.norm(dim=1), torch.ones(64))  # not even decayed
    model.zero_grad(set_to_none=True)
    assert ctx.evaluate(model) > 0.5  # chance is 0.1; ~0.78 here, 64 atoms learned from 512 images
    check_measurable(model, images, 10)  # as the worker checks it: no weights hidden in buffers
    assert measure.count_params(model) == 64 * 784 + 64 * 64 + n_params(model.mlp)  # the Gram matrix counts
    _, again = run()
    assert same_weights(model, again)


def test_sparse_coding_needs_an_mlp_suite(make_context):
    with pytest.raises(NotApplicable, match="MLP suite"):
        SparseCoding().run(make_context(suite="mnist", limit_train=256))


def test_dense_ft_fine_tunes_the_dense_model_with_the_post_training_budget(make_context):
    from methods.dense_ft import DenseFinetuned

    ctx = make_context(epochs=2, finetune_epochs=2, limit_train=4000)
    dense = ctx.pretrained()
    before = ctx.evaluate(dense)
    run = make_context(epochs=2, finetune_epochs=2, limit_train=4000)  # a fresh run, same seed
    model = DenseFinetuned().run(run)
    assert run.train_epochs == 2 + 2  # the dense epochs and the fine-tuning, like magnitude's
    assert not same_weights(model, dense)
    assert n_params(model) == n_params(dense) and all(bool((p != 0).any()) for p in model.parameters())
    assert ctx.evaluate(model) >= before - 0.01  # more training of the same model: no worse
