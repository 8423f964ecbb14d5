"""The quantization methods (ptq-int8, dynamic-int8, qat, uniform) on tiny real MNIST runs.

The int8 models are inspected as stored (int8 tensors, not rounded floats) and measured with the
harness's own functions, so the tests also cover what bench.measure reports for them.
"""

from __future__ import annotations

from copy import deepcopy

import pytest
import torch
from torch import nn
from torch.nn.utils import prune
from torchao.quantization.pt2e.quantize_pt2e import prepare_pt2e
from torchao.quantization.pt2e.quantizer.x86_inductor_quantizer import X86InductorQuantizer

from bench import deploy, measure
from bench.quantization import Int8Model, export, x86_config
from bench.registry import METHODS, discover
from bench.sparsity import make_permanent, prunable_weights, weight_sparsity
from methods.uniform import StraightThrough, grid_bits, packed_codes_bytes

pytestmark = pytest.mark.stack  # torch.export and int8 kernels differ between torch versions

discover()

BUDGET = {"suite": "mlp", "seed": 0, "limit_train": 4000, "limit_test": 1000, "epochs": 2,
          "finetune_epochs": 1}


def run(ctx, name: str, **params) -> nn.Module:
    return METHODS[name].build(params).run(ctx)


@torch.inference_mode()
def predictions(ctx, model: nn.Module) -> torch.Tensor:
    return model(ctx.preprocess.normalize(ctx.data.test.x)).argmax(1)


def max_distinct_per_row(w: torch.Tensor) -> int:
    rows = w.detach().flatten(1).sort(dim=1).values
    return int(1 + (rows.diff(dim=1) != 0).sum(dim=1).max())


def float_weight_matrices(model: nn.Module) -> list[str]:
    return [k for k, t in model.state_dict().items() if t.is_floating_point() and t.dim() > 1]


@pytest.mark.parametrize("name", ["ptq-int8", "dynamic-int8", "qat"])
def test_int8_methods_store_int8_weights_and_agree_with_the_float_model(make_context, name):
    ctx = make_context(**BUDGET)
    dense = ctx.pretrained()
    dense_acc = ctx.evaluate(dense)
    model = run(ctx, name)
    assert METHODS[name].output == "quantized"

    state = model.state_dict()
    int8 = [t for t in state.values() if t.dtype == torch.int8]
    dense_weights = sum(m.weight.numel() for m, _ in prunable_weights(dense))
    assert sum(t.numel() for t in int8) == dense_weights  # every Linear weight, as int8
    assert float_weight_matrices(model) == []  # no float copy of a weight is left behind
    assert all(t.device.type == "cpu" for t in state.values())

    agreement = (predictions(ctx, model) == predictions(ctx, dense)).float().mean().item()
    accuracy = ctx.evaluate(model)
    if name == "qat":  # fine-tuned: it may move away from the dense model, not lose accuracy
        assert agreement > 0.95 and accuracy > dense_acc - 0.01
    else:
        assert agreement > 0.97 and abs(accuracy - dense_acc) < 0.01

    # What the harness measures: the weights are still weights, and stored in a quarter the bytes.
    assert measure.count_params(model) == measure.count_params(dense) == 266_610
    assert measure.count_nonzeros(model) > 0.99 * 266_610
    assert 0.2 < measure.size_bytes(model) / measure.size_bytes(dense) < 0.35
    x = ctx.preprocess.normalize(ctx.data.test.x[:64])
    # at the latency batch: an int8 model compiles once per batch size (bench.quantization)
    (total, effective), (dense_total, dense_effective) = measure.flops(model, x), measure.flops(dense, x)
    assert total == dense_total
    # the effective count follows the int8 weights executed: the few that round to zero are skipped
    assert 0.98 * dense_effective < effective <= dense_effective
    assert measure.latency_ms(model, x, min_run_time=0.05)[0] > 0


@pytest.mark.parametrize("name", ["ptq-int8", "qat"])
def test_int8_convolutions_run_on_a_one_channel_input(make_context, name):
    """LeNet-5 on MNIST: int8 convolutions whose input has one channel, at several batch sizes.

    With dynamic shapes Inductor mis-predicted the first int8 convolution's output layout for a
    one-channel input and every call stopped at a stride assertion.
    """
    ctx = make_context(suite="mnist", seed=0, limit_train=1000, limit_test=500, epochs=1, finetune_epochs=1,
                       warmup_epochs=0)
    dense = ctx.pretrained()
    model = run(ctx, name)
    int8 = sorted(tuple(t.shape) for t in model.state_dict().values() if t.dtype == torch.int8)
    assert int8 == [(10, 500), (20, 1, 5, 5), (50, 20, 5, 5), (500, 800)]
    if name == "qat":  # fine-tuned from a 1-epoch model, so it may move away from it
        assert ctx.evaluate(model) > ctx.evaluate(dense) - 0.01
    else:
        assert (predictions(ctx, model) == predictions(ctx, dense)).float().mean() > 0.97
    x = ctx.preprocess.normalize(ctx.data.test.x[:3])
    torch.testing.assert_close(model(x[:1]), model(x)[:1], rtol=1e-4, atol=1e-4)  # another batch size


def int8_linear_model(*, dynamic: bool = False) -> tuple[nn.Module, nn.Module]:
    """A small float MLP and its ptq-int8 model, or its dynamic-int8 model (the PT2E flows of
    methods/ptq_int8.py and methods/dynamic_int8.py)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 64), nn.ReLU(), nn.Linear(64, 3)).eval()
    with torch.no_grad():
        model[0].weight[0].copy_(torch.tensor([0.5, -0.2, 0.1, 0.3, -0.4, 0.25, 0.0, -0.05]))
    x = torch.randn(16, 8)
    quantizer = X86InductorQuantizer()
    if dynamic:
        quantizer.set_module_type_qconfig(nn.Linear, x86_config(is_dynamic=True))
    else:
        quantizer.set_global(x86_config())
    prepared = prepare_pt2e(export(deepcopy(model), x), quantizer)
    prepared(x)
    return model, Int8Model(prepared)


def test_int8_weight_codes_span_minus_128_to_127_with_step_max_over_127_5():
    """What the int8 methods' docstrings state of torchao's symmetric per-channel weights: step
    max|w| / 127.5, codes round(w / step) clamped to -128..127, so a channel's largest positive
    weight is clipped by half a step (Jacob et al. 2018 use -127..127 and max|w| / 127)."""
    model, int8 = int8_linear_model()
    state = int8.state_dict()
    codes = next(t for t in state.values() if t.dtype == torch.int8 and t.shape == (64, 8))
    scale = next(t for k, t in state.items() if "scale" in k and t.shape == (64,))
    w = model[0].weight.detach()
    torch.testing.assert_close(scale, w.abs().amax(1) / 127.5)
    # quantize_per_channel multiplies by the inverse step, which can round a tie the other way
    assert torch.equal(codes, torch.round(w * (1 / scale[:, None])).clamp(-128, 127).to(torch.int8))
    assert codes[0, 0] == 127  # 0.5 / (0.5 / 127.5) rounds to 128: clipped


def test_int8_size_counts_the_all_zero_weight_zero_points_as_a_bitmask():
    """Symmetric weights' zero points are 0, kept by the converted graph as int64: stored dense they
    added 8 bytes per output channel, which no deployment stores (oneDNN's symmetric kernels take
    none; ONNX's int8 zero points are a byte each). On a LeNet-300-100 of random weights, in
    development: 276,927 bytes dense, 274,422 as bitmasks; 50,102 and 47,469 at 98% sparsity."""
    _, int8 = int8_linear_model()
    zero_points = [k for k, t in int8.state_dict().items() if "zero_point" in k]
    assert len(zero_points) == 2 and all(not int8.state_dict()[k].any() for k in zero_points)
    encoded = measure.sparse_state_dict(int8)
    assert all(isinstance(encoded[k], dict) and encoded[k]["values"].numel() == 0 for k in zero_points)


def test_dynamic_int8_ranges_span_the_batch():
    """dynamic-int8's activation range is the whole input tensor's, so one wide input in a batch
    coarsens the others' quantization (its docstring); ptq-int8's calibrated ranges do not move."""
    x = torch.randn(3, 8, generator=torch.Generator().manual_seed(1))
    with_wide = torch.cat([x, 50 * x[:1]])
    model, dynamic = int8_linear_model(dynamic=True)
    _, static = int8_linear_model()
    with torch.inference_mode():
        alone, beside = dynamic(x), dynamic(with_wide)[:3]
        assert (alone - model(x)).abs().max() < 0.02 < (beside - model(x)).abs().max()
        torch.testing.assert_close(static(x), static(with_wide)[:3])


def test_dynamic_int8_quantizes_linear_layers_and_leaves_convolutions_float(make_context):
    ctx = make_context(suite="mnist", seed=0, limit_train=1000, limit_test=500, epochs=1, finetune_epochs=1,
                       warmup_epochs=0)  # a trained float model to compare with
    dense = ctx.pretrained()
    model = run(ctx, "dynamic-int8")
    int8 = sorted(tuple(t.shape) for t in model.state_dict().values() if t.dtype == torch.int8)
    assert int8 == [(10, 500), (500, 800)]
    assert sorted(tuple(model.state_dict()[k].shape) for k in float_weight_matrices(model)) == [
        (20, 1, 5, 5), (50, 20, 5, 5)]
    assert (predictions(ctx, model) == predictions(ctx, dense)).float().mean() > 0.97


@pytest.mark.parametrize("bits", [8, 4, 2])
def test_uniform_has_at_most_2_to_the_bits_values_per_channel_and_packed_size(make_context, bits):
    ctx = make_context(**BUDGET)
    dense = ctx.pretrained()
    dense_acc = ctx.evaluate(dense)
    model = run(ctx, "uniform", bits=bits)
    assert METHODS["uniform"].output == "float"
    assert not any(hasattr(m, "parametrizations") for m in model.modules())  # a plain float model
    weights = [m.weight for m, _ in prunable_weights(model)]
    assert all(w.dtype == torch.float32 and w.requires_grad for w in weights)
    assert all(max_distinct_per_row(w) <= 2 ** bits for w in weights)
    assert [grid_bits(w) for w in weights] == [bits] * len(weights)  # the bits, found from the weights
    if bits == 8:
        assert ctx.evaluate(model) > dense_acc - 0.01

    # packed codes (or a bitmask plus the nonzero codes, if smaller), fp32 steps, fp32 biases
    biases = measure.count_params(model) - sum(w.numel() for w in weights)
    expected = 4 * biases + sum(
        (min(w.numel() * bits, w.numel() + int(w.count_nonzero()) * bits) + 7) // 8 + 4 * w.shape[0]
        for w in weights)
    assert deploy.encoding(model) == ("packed-codes", expected)
    assert expected / measure.size_bytes(dense) < bits / 32 + 0.01
    assert measure.count_params(model) == 266_610


def test_uniform_forward_is_quantized_per_output_channel_and_its_gradient_passes_straight_through():
    """The forward value is round(w / step) * step with each row's own step, max|row| / (2^(b-1) - 1);
    the backward pass is the identity (straight-through estimator), not the rounding's zero."""
    w = torch.tensor([[0.7, -0.2, 0.05], [3.0, 1.1, -2.9]], requires_grad=True)
    q = StraightThrough(3)(w)  # 3 bits: levels -3..3
    assert torch.allclose(q, torch.tensor([[0.7, -0.7 / 3, 0.0], [3.0, 1.0, -3.0]]))
    g = torch.tensor([[0.1, -2.0, 3.0], [4.0, 0.5, -6.0]])
    q.backward(g)
    assert torch.equal(w.grad, g)


def test_uniform_packed_size_by_hand():
    """Two rows on the 3-bit grid (steps 0.1 and 0.2, codes -3..3), 3 nonzeros of 16: dense codes
    take 16 * 3 = 48 bits, a bitmask plus the nonzeros' codes 16 + 3 * 3 = 25 bits, 4 bytes; then
    an fp32 step per row (8 bytes) and the fp32 bias (8 bytes)."""
    layer = nn.Linear(8, 2)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[0.3, -0.1, 0, 0, 0, 0, 0, 0], [0.6, 0, 0, 0, 0, 0, 0, 0]]))
    assert grid_bits(layer.weight) == 3  # -0.1 is not on row 0's 2-bit grid {0, +-0.3}
    assert packed_codes_bytes(nn.Sequential(layer)) == 4 + 8 + 8


def test_uniform_size_falls_back_to_float_once_the_weights_leave_the_grid(make_context):
    ctx = make_context(**BUDGET)
    model = run(ctx, "uniform", bits=4)
    copy = deepcopy(model)  # what ctx.pretrained() hands the next method of a chain
    _, quantized = deploy.encoding(model)
    with torch.no_grad():
        model[1].weight.add_(torch.randn_like(model[1].weight) * 1e-3)  # e.g. a later fine-tuning
    assert grid_bits(model[1].weight) is None
    assert deploy.encoding(model)[1] - quantized > 3 * model[1].weight.numel()  # now 4 bytes each
    assert deploy.encoding(copy)[1] == quantized  # the copy measures itself, not the original


def test_after_pruning_zeros_stay_zero_and_int8_size_counts_them(make_context):
    ctx = make_context(**BUDGET)
    dense_int8_bytes = measure.size_bytes(run(ctx, "ptq-int8"))
    pruned = ctx.pretrained()
    prune.global_unstructured(prunable_weights(pruned), pruning_method=prune.L1Unstructured, amount=0.9)
    ctx.continue_from(make_permanent(pruned))  # what a chain magnitude+<name> does

    models = {name: run(ctx, name) for name in ("uniform", "qat", "ptq-int8")}
    for name, model in models.items():
        assert measure.count_nonzeros(model) < 0.11 * 266_610, name
    assert weight_sparsity(models["uniform"]) >= 0.9
    # 4-bit codes of the 10% nonzeros plus a 1-bit mask: about 0.175 bytes a weight, not 0.5
    assert deploy.encoding(models["uniform"])[1] < 0.25 * 266_610
    # 10% of the int8 values plus a 1-bit mask: about 0.225 of the dense int8 bytes
    assert measure.size_bytes(models["ptq-int8"]) < 0.3 * dense_int8_bytes
    # effective FLOPs come from the weights the int8 model executes, zeros included
    x = ctx.preprocess.normalize(ctx.data.test.x[:1])
    dense_flops, float_effective = measure.flops(pruned, x)
    for name in ("qat", "ptq-int8"):
        total, effective = measure.flops(models[name], x)
        assert total == dense_flops, name
        assert effective < 0.12 * dense_flops and abs(effective - float_effective) < 0.02 * dense_flops, name


@pytest.mark.parametrize("name", ["qat", "uniform"])
def test_seeded_runs_repeat_exactly(make_context, name):
    states = []
    for _ in range(2):
        ctx = make_context(**BUDGET)
        states.append(run(ctx, name).state_dict())
    assert states[0].keys() == states[1].keys()
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])


def test_qat_fine_tunes_in_fp32_in_a_bf16_suite(make_context):
    ctx = make_context(**{**BUDGET, "precision": "bf16"})
    dense = ctx.pretrained()
    model = run(ctx, "qat")
    assert any(t.dtype == torch.int8 for t in model.state_dict().values())
    assert ctx.evaluate(model) > ctx.evaluate(dense) - 0.01
