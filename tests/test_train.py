"""The training loop's fast-path options: bf16 autocast, torch.compile, channels-last layout."""

import pytest
import torch

from bench.train import fit


def _fit(ctx, model, epochs=1, **kwargs):
    return fit(model, ctx.data.train, ctx.preprocess, ctx.budget, epochs=epochs, lr=ctx.budget.lr,
               generator=torch.Generator().manual_seed(0), log=lambda _: None, **kwargs)


def test_bf16_suites_train_under_autocast_and_keep_fp32_weights(make_context):
    # LeNet-300-100: on a CPU without bf16 arithmetic LeNet-5 trains several times slower in bf16
    ctx = make_context("mlp", limit_train=4096, precision="bf16")
    model = ctx.new_model()
    seen = []
    hook = model[1].register_forward_hook(lambda m, i, out: seen.append(out.dtype))
    _fit(ctx, model, epochs=3)
    hook.remove()
    assert set(seen) == {torch.bfloat16}
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert ctx.evaluate(model) > 0.9  # it learns; evaluated in fp32, outside autocast


def test_fp32_suites_do_not_autocast(make_context):
    ctx = make_context("mnist", limit_train=256, precision="fp32")
    model = ctx.new_model()
    seen = []
    model[0].register_forward_hook(lambda m, i, out: seen.append(out.dtype))
    _fit(ctx, model)
    assert set(seen) == {torch.float32}


def test_models_and_batches_are_channels_last(make_context):
    ctx = make_context("mnist")
    model = ctx.new_model()
    assert model[0].weight.is_contiguous(memory_format=torch.channels_last)
    x = ctx.preprocess.normalize(ctx.data.train.x[:8])
    assert x.is_contiguous(memory_format=torch.channels_last)
    assert ctx.preprocess.augment(x, torch.Generator()).is_contiguous(memory_format=torch.channels_last)


@pytest.mark.stack
def test_compiled_training_matches_eager_and_reports_compile_time(make_context):
    ctx = make_context("mlp", limit_train=1024)
    eager, compiled = ctx.new_model(), ctx.new_model()
    eager_result = _fit(ctx, eager)
    compiled_result = _fit(ctx, compiled, compile="default")
    assert eager_result.compile_seconds == 0.0
    assert compiled_result.compile_seconds > 0.0
    assert compiled_result.seconds > 0.0
    for a, b in zip(eager.parameters(), compiled.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4)


class Interrupted(Exception):
    pass


def test_an_interrupted_training_resumes_from_its_checkpoint_to_the_same_weights(make_context, tmp_path):
    """A dense training cut in its third epoch, resumed from the checkpoint of its second,
    ends with exactly the weights of an uninterrupted one (CPU, same threads)."""
    ctx = make_context("mnist", limit_train=512, precision="bf16")
    whole = ctx.new_model()
    _fit(ctx, whole, epochs=3)

    checkpoint = tmp_path / "dense.ckpt"
    steps = []

    def cut_in_epoch_3() -> None:
        steps.append(1)
        if len(steps) == 2 * ctx.steps_per_epoch + 3:
            raise Interrupted

    cut = ctx.new_model()
    try:
        _fit(ctx, cut, epochs=3, checkpoint=checkpoint, between_steps=cut_in_epoch_3)
    except Interrupted:
        pass
    assert checkpoint.exists()
    resumed = ctx.new_model()  # a fresh process would start from a fresh model
    logs = []
    result = fit(resumed, ctx.data.train, ctx.preprocess, ctx.budget, epochs=3, lr=ctx.budget.lr,
                 generator=torch.Generator().manual_seed(12345), log=logs.append, checkpoint=checkpoint)
    assert any("resumed from" in line and "after epoch 2" in line for line in logs)
    assert sum("epoch   3/3" in line for line in logs) == 1 and not any("epoch   1/3" in line for line in logs)
    assert result.epochs == 3
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name


def test_finetune_spends_the_finetuning_budget_and_holds_zeros(make_context):
    """ctx.finetune is ctx.train at the budget's finetune_epochs and finetune_lr; with
    hold_zeros the weights a method zeroed stay zero through every step."""
    ctx = make_context(finetune_epochs=2)
    model = ctx.pretrained()
    weight = next(m for m in model.modules() if isinstance(m, torch.nn.Linear)).weight
    with torch.no_grad():
        weight[:, ::2] = 0
    epochs = ctx.train_epochs
    ctx.finetune(model, hold_zeros=True)
    assert ctx.train_epochs == epochs + 2
    assert (weight[:, ::2] == 0).all() and (weight[:, 1::2] != 0).any()
    with pytest.raises(TypeError, match="hold_zeros is an after_step hook"):
        ctx.finetune(model, hold_zeros=True, after_step=lambda m, step: None)
