"""The one-shot post-training methods (sparsegpt, wanda, gptq, their baselines magnitude-oneshot
and rtn) and the harness's layer-wise calibration.

Small layers with known answers first (a least-squares refit, an exhaustive search over the
quantization grid, a ranking that input statistics change), then the methods on tiny real
MNIST runs, and once through `bench run`.
"""

from __future__ import annotations

import itertools
import json
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bench import deploy, measure
from bench.layerwise import input_rows, layer_inputs, set_weight_matrix, weight_matrix
from bench.lowbit import Grid, pack, unpack
from bench.registry import METHODS, ParameterError, discover
from bench.sparsity import nm_mask, prunable_weights, weight_sparsity
from conftest import FAST
from methods.gptq import gptq
from methods.sparsegpt import sparsegpt
from methods.wanda import wanda_mask

discover()


def correlated_inputs(generator: torch.Generator, samples: int, columns: int) -> torch.Tensor:
    """Inputs whose features are correlated and of different scales, like a layer's activations."""
    mix = torch.eye(columns) + 0.3 * torch.randn(columns, columns, generator=generator)
    return torch.randn(samples, columns, generator=generator) @ mix * 3 * torch.rand(columns, generator=generator)


def output_error(w: torch.Tensor, q: torch.Tensor, hessian: torch.Tensor) -> float:
    """||X W^T - X Q^T||^2 / rows, from H = X^T X / rows."""
    d = (w - q).double()
    return float(torch.einsum("ri,ij,rj->", d, hessian.double(), d))


def has_nm_pattern(matrix: torch.Tensor, n: int, m: int) -> bool:
    """At most n nonzeros in every group of m consecutive columns of every row."""
    padded = F.pad(matrix, (0, -matrix.shape[1] % m)).reshape(matrix.shape[0], -1, m)
    return bool(((padded != 0).sum(2) <= n).all())


# -- the harness's layer-wise calibration --------------------------------------------------------
def test_a_convolution_is_its_weight_matrix_times_its_input_rows():
    torch.manual_seed(0)
    conv = nn.Conv2d(6, 5, (3, 2), stride=(2, 1), padding=(1, 2), dilation=(1, 2)).to(memory_format=torch.channels_last)
    x = torch.randn(2, 6, 9, 8).to(memory_format=torch.channels_last)
    out = conv(x) - conv.bias.view(1, -1, 1, 1)
    rows = input_rows(conv, x) @ weight_matrix(conv).T  # (samples * positions, out channels)
    torch.testing.assert_close(rows, out.permute(0, 2, 3, 1).reshape(-1, 5), rtol=1e-5, atol=1e-5)
    # columns run kernel position by kernel position, channels innermost
    assert torch.equal(weight_matrix(conv)[:, :6], conv.weight[:, :, 0, 0])
    stride = conv.weight.stride()
    set_weight_matrix(conv, 2 * weight_matrix(conv))
    assert conv.weight.stride() == stride
    torch.testing.assert_close(conv(x) - conv.bias.view(1, -1, 1, 1), 2 * out, rtol=1e-5, atol=1e-5)


class Backwards(nn.Module):
    """Two Linear layers registered in the opposite order of their use."""

    def __init__(self):
        super().__init__()
        self.second = nn.Linear(3, 2)
        self.first = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.second(torch.relu(self.first(x)))


def test_layer_inputs_go_in_forward_order_and_see_the_compressed_layers_before():
    torch.manual_seed(0)
    model = Backwards()
    x = torch.randn(10, 4)
    seen = []
    for layer in layer_inputs(model, [x[:6], x[6:]]):
        seen.append(layer.name)
        if layer.name == "first":
            torch.testing.assert_close(layer.hessian, x.T @ x / 10)
            torch.testing.assert_close(layer.feature_norms, x.norm(dim=0))
            layer.set_weight(torch.zeros(3, 4))  # now its output is relu(bias) for every sample
        else:
            h = torch.relu(model.first.bias.detach())
            torch.testing.assert_close(layer.hessian, torch.outer(h, h))
            assert layer.rows == 10
    assert seen == ["first", "second"]


# -- wanda and sparsegpt on small layers ------------------------------------------------------
def test_wanda_keeps_the_weights_with_large_inputs_where_magnitude_keeps_large_weights():
    layer = nn.Linear(4, 2, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, 0.5, 0.2, 0.9], [0.3, -0.8, 0.6, -1.0]]))
    x = torch.randn(64, 4, generator=torch.Generator().manual_seed(0)) * torch.tensor([0.1, 10.0, 10.0, 0.1])
    (calibrated,) = layer_inputs(layer, [x], hessian=False)
    wanda = wanda_mask(calibrated.weight(), calibrated.feature_norms, 0.5)
    magnitude = nm_mask(layer.weight.detach().abs(), 2, 4)
    assert wanda.tolist() == [[False, True, True, False], [False, True, True, False]]
    assert magnitude.tolist() == [[True, False, False, True], [False, True, False, True]]
    assert torch.equal(wanda_mask(calibrated.weight(), calibrated.feature_norms, 0.5, 2, 4), wanda)


def test_sparsegpt_refits_the_kept_weights_by_least_squares():
    """Pruning the first column of a block leaves the others at the least-squares optimum of
    the layer's output: SparseGPT's OBS updates are exact for the weights to the right."""
    g = torch.Generator().manual_seed(0)
    x = correlated_inputs(g, 200, 5)
    w = torch.tensor([[0.01, 1.0, -2.0, 1.5, 0.7], [0.02, -0.5, 1.0, 2.0, -1.2]])
    pruned = sparsegpt(w, x.T @ x / 200, sparsity=0.2, blocksize=5, dampening=0.0)
    assert torch.all(pruned[:, 0] == 0) and torch.all(pruned[:, 1:] != 0)
    refit = torch.linalg.lstsq(x[:, 1:].double(), (x @ w.T).double()).solution.T
    torch.testing.assert_close(pruned[:, 1:].double(), refit, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(("sparsity", "n", "m"), [(0.5, 0, 0), (0.8, 0, 0), (0.5, 2, 4)])
def test_sparsegpt_reconstructs_better_than_wanda_and_magnitude(sparsity, n, m):
    for seed in range(3):
        g = torch.Generator().manual_seed(seed)
        x = correlated_inputs(g, 512, 64)
        h, w = x.T @ x / 512, torch.randn(16, 64, generator=g)
        pruned = sparsegpt(w, h, sparsity, n, m, blocksize=16)
        if n:
            magnitude = w * nm_mask(w.abs(), n, m)
            assert has_nm_pattern(pruned, n, m) and has_nm_pattern(magnitude, n, m)
        else:
            magnitude = w.clone()
            magnitude.view(-1)[w.abs().flatten().topk(round(sparsity * w.numel()), largest=False).indices] = 0
        wanda = w * wanda_mask(w, x.norm(dim=0), sparsity, n, m)
        assert float((pruned == 0).float().mean()) == pytest.approx(sparsity, abs=1 / 256)  # per block of 16x16
        errors = [output_error(w, q, h) for q in (pruned, wanda, magnitude)]
        assert errors == sorted(errors) and errors[0] < errors[1], (seed, errors)


def test_lazy_blocks_do_not_change_the_result():
    """N:M masks and GPTQ's rounding depend only on the current weights, so the blocks of lazy
    updates must give the same weights as one block."""
    g = torch.Generator().manual_seed(1)
    x = correlated_inputs(g, 300, 24)
    h, w = x.T @ x / 300, torch.randn(8, 24, generator=g)
    torch.testing.assert_close(sparsegpt(w, h, 0.5, 2, 4, blocksize=4), sparsegpt(w, h, 0.5, 2, 4, blocksize=24))
    torch.testing.assert_close(gptq(w, h, 3, blocksize=8)[0], gptq(w, h, 3, blocksize=24)[0])


def textbook_sparsegpt(w: torch.Tensor, h: torch.Tensor, sparsity: float, n: int, m: int,
                       blocksize: int, dampening: float) -> torch.Tensor:
    """The paper's Algorithm 1 with explicit inverses, in float64: column c's OBS quantities come
    from the inverse of the damped Hessian of the columns not yet processed, inv(H[c:, c:]); the
    mask is chosen per block of `blocksize` columns by w^2 / inv(H[c:, c:])[0, 0] over the whole
    block (unstructured), or at the first column of every group of m by the same score on the
    current weights (N:M, the m - n lowest pruned)."""
    w, h = w.double().clone(), h.double().clone()
    h += dampening * h.diagonal().mean() * torch.eye(len(h), dtype=h.dtype)
    columns = w.shape[1]
    obs = torch.stack([torch.linalg.inv(h[c:, c:])[0, 0] for c in range(columns)])  # [H_F^-1]_cc
    out = torch.zeros_like(w)
    for start in range(0, columns, blocksize):
        end = min(start + blocksize, columns)
        pruned = torch.zeros(w.shape[0], end - start, dtype=torch.bool)
        if not n:
            score = (w[:, start:end].square() / obs[start:end]).flatten()
            pruned.view(-1)[score.argsort()[:round(sparsity * score.numel())]] = True
        for c in range(start, end):
            if n and (c - start) % m == 0:
                score = w[:, c:c + m].square() / obs[c:c + m]
                pruned[:, c - start:c - start + m].scatter_(1, score.argsort(1)[:, :m - n], True)
            hinv = torch.linalg.inv(h[c:, c:])
            out[:, c] = w[:, c].masked_fill(pruned[:, c - start], 0)
            w[:, c:] -= torch.outer((w[:, c] - out[:, c]) / hinv[0, 0], hinv[0])
    return out


@pytest.mark.parametrize(("sparsity", "n", "m"), [(0.0, 0, 0), (0.6, 0, 0), (0.5, 2, 4), (0.75, 2, 8)])
def test_sparsegpt_is_obs_pruning_with_the_mask_chosen_per_block(sparsity, n, m):
    """The lazy Cholesky form (the paper's code) gives the textbook OBS result: the same mask and
    the same reconstructed weights; with nothing to prune, the weights unchanged."""
    for seed in range(2):
        g = torch.Generator().manual_seed(seed)
        x = correlated_inputs(g, 300, 32)
        h, w = x.T @ x / 300, torch.randn(6, 32, generator=g)
        pruned = sparsegpt(w, h, sparsity, n, m, blocksize=16, dampening=0.01)
        expected = textbook_sparsegpt(w, h, sparsity, n, m, blocksize=16, dampening=0.01)
        assert torch.equal(pruned == 0, expected == 0), seed
        torch.testing.assert_close(pruned.double(), expected, rtol=0, atol=1e-5)
        if not sparsity:
            assert torch.equal(pruned, w)


def test_the_hessian_scale_does_not_matter():
    """The harness's H = X^T X / rows and the papers' code's 2 X^T X / samples (samples counting
    sequences or images, not rows) differ by a constant: with dampening relative to the mean
    diagonal, SparseGPT's masks and weights and GPTQ's codes do not change."""
    g = torch.Generator().manual_seed(3)
    x = correlated_inputs(g, 256, 24)
    h, w = x.T @ x / 256, torch.randn(8, 24, generator=g)
    for scale in (2.0, 2 * 49.0):  # 2 X^T X / images with 49 output positions per image
        for args in [(0.5, 0, 0), (0.5, 2, 4)]:
            a, b = sparsegpt(w, h, *args, blocksize=8), sparsegpt(w, scale * h, *args, blocksize=8)
            assert torch.equal(a == 0, b == 0)
            torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
        for group_size in (0, 4):
            a, b = (gptq(w, s * h, 3, group_size, blocksize=8)[0] for s in (1.0, scale))
            torch.testing.assert_close(a, b, rtol=0, atol=1e-5)  # the same codes (the grids agree to rounding)


# -- gptq on small matrices -----------------------------------------------------------------
def greedy_obs_quantization(w: torch.Tensor, h: torch.Tensor, grid: Grid) -> torch.Tensor:
    """The textbook form of GPTQ's column order (Optimal Brain Quantization with a fixed order):
    round column i, spread its error over the later columns by the inverse Hessian, then remove
    i from the inverse (a rank-one downdate), in float64."""
    w, hinv = w.double().clone(), torch.linalg.inv(h.double())
    scale, zero = grid.scale[:, 0].double(), grid.zero[:, 0].double()
    out = torch.zeros_like(w)
    for i in range(w.shape[1]):
        out[:, i] = scale * (torch.clamp(torch.round(w[:, i] / scale) + zero, 0, 2 ** grid.bits - 1) - zero)
        w -= torch.outer((w[:, i] - out[:, i]) / hinv[i, i], hinv[i])
        hinv -= torch.outer(hinv[:, i], hinv[i]) / hinv[i, i]
    return out


def test_gptq_is_the_greedy_obs_quantization_in_lazy_cholesky_form():
    for seed in range(3):
        g = torch.Generator().manual_seed(seed)
        x = correlated_inputs(g, 256, 20)
        h, w = x.T @ x / 256, torch.randn(5, 20, generator=g)
        quantized, grid = gptq(w, h, bits=3, blocksize=8, dampening=0.0)
        torch.testing.assert_close(quantized.double(), greedy_obs_quantization(w, h, grid), rtol=0, atol=1e-4)


def test_gptq_beats_round_to_nearest_and_nears_the_exhaustive_optimum():
    """On GPTQ's own grid (3 bits, per row), the best codes by exhaustive search over all 8^6
    per row of ten seeded 3x6 layers. GPTQ is greedy, so it need not beat RTN on every layer:
    it must on most, and in total close most of RTN's excess over the optimum."""
    codes = torch.tensor(list(itertools.product(range(8), repeat=6)), dtype=torch.float)
    total = {"best": 0.0, "gptq": 0.0, "rtn": 0.0}
    wins = 0
    for seed in range(10):
        g = torch.Generator().manual_seed(seed)
        x = correlated_inputs(g, 256, 6)
        h, w = x.T @ x / 256, torch.randn(3, 6, generator=g)
        quantized, grid = gptq(w, h, bits=3)
        rtn = Grid.fit(w, 3, 0)
        assert torch.equal(grid.scale, rtn.scale) and torch.equal(grid.zero, rtn.zero)
        assert torch.equal(grid.round(quantized), quantized)  # on the grid
        best = 0.0
        for r in range(3):
            d = (w[r] - rtn.scale[r, 0] * (codes - rtn.zero[r, 0])).double()
            best += float(((d @ h.double()) * d).sum(1).min())
        errors = {"gptq": output_error(w, quantized, h), "rtn": output_error(w, rtn.round(w), h)}
        assert best - 1e-6 <= min(errors.values()), (seed, best, errors)
        wins += errors["gptq"] <= errors["rtn"]
        for key, value in [("best", best), *errors.items()]:
            total[key] += value
    assert wins >= 8, wins
    assert total["gptq"] - total["best"] < (total["rtn"] - total["best"]) / 2, total


def test_gptq_groups_have_their_own_grid_and_zeros_stay_zero():
    g = torch.Generator().manual_seed(2)
    x = correlated_inputs(g, 200, 12)
    w = torch.randn(4, 12, generator=g) * torch.linspace(0.1, 3, 12)
    w[0, 5] = w[2, :3] = 0
    quantized, grid = gptq(w, x.T @ x / 200, bits=3, group_size=4)
    assert grid.scale.shape == (4, 3) and bool((grid.scale[:, 0] < grid.scale[:, 2]).all())
    assert quantized[0, 5] == 0 and torch.all(quantized[2, :3] == 0)
    for start in range(0, 12, 4):
        assert all(len(row.unique()) <= 8 for row in quantized[:, start:start + 4])
    assert torch.equal(grid.round(quantized), quantized)


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
def test_codes_pack_into_bits_bits_each(bits):
    codes = torch.randint(0, 2 ** bits, (37, 11), generator=torch.Generator().manual_seed(bits))
    data = pack(codes, bits)
    assert len(data) == math.ceil(codes.numel() * bits / 8)
    assert torch.equal(unpack(data, codes.numel(), bits).view(37, 11), codes)


def test_lowbit_packed_size_by_hand():
    """A 2-bit min-max grid: [-0.25, 0, 0.5, 0.5] has step 0.25 and zero point 1 (codes 0, 1, 3, 3),
    one byte of codes, one of zero point, four of scale. A row of 32 with two nonzeros (-1 and 2:
    step 1, zero point 1) stores a 4-byte bitmask and a byte of codes instead of 8 bytes."""
    w = torch.tensor([[-0.25, 0, 0.5, 0.5]])
    grid = Grid.fit(w, 2, 0)
    assert grid.scale.item() == 0.25 and grid.zero.item() == 1
    assert grid.codes(w).tolist() == [[0, 1, 3, 3]]
    assert grid.packed_bytes(w) == 1 + 1 + 4
    sparse = torch.zeros(1, 32)
    sparse[0, 0], sparse[0, 5] = -1, 2
    assert Grid.fit(sparse, 2, 0).packed_bytes(sparse) == (4 + 1) + 1 + 4


def test_pattern_parameters_are_checked_before_any_training():
    with pytest.raises(ParameterError, match="2:4 fixes the sparsity at 0.5; set sparsegpt.sparsity=0.5"):
        METHODS["sparsegpt"].build({"n": 2, "m": 4, "sparsity": 0.8})
    with pytest.raises(ParameterError, match="0 < n < m"):
        METHODS["wanda"].build({"n": 4, "m": 4, "sparsity": 0.0})
    with pytest.raises(ParameterError, match="bits must be between 2 and 8"):
        METHODS["gptq"].build({"bits": 1})


# -- the methods on tiny real runs ------------------------------------------------------------
def run(ctx, name: str, **params) -> nn.Module:
    return METHODS[name].build(params).run(ctx)


def test_evaluation_and_calibration_pass_the_device_gate_batch_by_batch(make_context):
    """Runs sharing a device pass its gate before each unit of work the harness does for them,
    so that one timing its model does so alone: a training step, and also each evaluation batch
    and each calibration batch of each layer (these had run beside another run's timing)."""
    ctx = make_context(limit_train=600, limit_test=2500)
    model = ctx.pretrained()
    passes = []
    ctx._between_steps = lambda: passes.append(len(passes))  # what the worker hands a run: its gate's pass
    ctx.evaluate(model)
    assert len(passes) == 3  # 2,500 test images in batches of 1,000 on the CPU
    layers = list(ctx.layer_inputs(model, samples=600, hessian=False))
    assert len(layers) == 3 and len(passes) == 3 + 3 * 3  # three Linear layers, three batches (256, 256, 88) each


@pytest.mark.parametrize("name", ["sparsegpt", "wanda", "gptq"])
def test_a_training_split_smaller_than_the_calibration_sample_calibrates_on_all_of_it(make_context, name):
    """1,024 calibration images by default, in batches of 256, from a split of 500 (a quick run's
    --limit-train 512 on cifar): the calibration takes the 500 there are. The batches past the
    split's end were empty, and a convolution's unfolded empty input stopped the run with
    'cannot reshape tensor of 0 elements'."""
    ctx = make_context(suite="mnist", limit_train=500, limit_test=200, epochs=1, warmup_epochs=0)
    model = run(ctx, name, **({"bits": 4} if name == "gptq" else {"sparsity": 0.5}))
    assert ctx.figures["calibration_samples"] == 500
    assert isinstance(model, nn.Module)


@pytest.mark.parametrize("name", ["sparsegpt", "wanda", "magnitude-oneshot"])
def test_two_of_four_on_lenet5_runs_along_input_channels(make_context, name):
    ctx = make_context(suite="mnist", limit_train=1000, limit_test=500, epochs=1, warmup_epochs=0)
    ctx.pretrained()  # trains and charges the dense model now, so what follows is the method's cost
    dense_seconds = ctx.train_time_s
    model = run(ctx, name, n=2, m=4, sparsity=0.5)
    assert weight_sparsity(model) == pytest.approx(0.5, abs=0.01)
    for module, _ in prunable_weights(model):
        w = module.weight.detach()
        inputs = w.permute(0, 2, 3, 1).reshape(w.shape[0], -1) if w.dim() == 4 else w
        assert has_nm_pattern(inputs, 2, 4), module
    assert ctx.train_epochs == 1  # the dense model's epoch, no fine-tuning
    if name != "magnitude-oneshot":  # calibrated: the time it took is charged beside the dense model's
        # 1,024 by default, in batches of 256; the 1,000 training images of this context are all there is
        assert ctx.figures["calibration_samples"] == 1000 and ctx.figures["compress_time_s"] > 0
        assert ctx.train_time_s == pytest.approx(dense_seconds + ctx.figures["compress_time_s"])
    else:
        assert ctx.train_time_s == dense_seconds


def test_finetune_holds_the_one_shot_mask_and_pays_its_epochs(make_context):
    one_shot = run(make_context(epochs=1), "sparsegpt", sparsity=0.8)
    ctx = make_context(epochs=1, finetune_epochs=1)
    tuned = run(ctx, "sparsegpt", sparsity=0.8, finetune=True)
    assert ctx.train_epochs == 2
    for (a, _), (b, _) in zip(prunable_weights(one_shot), prunable_weights(tuned)):
        assert torch.equal(a.weight == 0, b.weight == 0)
        assert not torch.equal(a.weight, b.weight)


def test_gptq_size_counts_packed_bits_and_fine_tuning_stays_on_the_grid(make_context):
    ctx = make_context(epochs=1)
    dense = ctx.pretrained()
    model = run(ctx, "gptq", bits=3)
    weights = [m.weight for m, _ in prunable_weights(model)]
    biases = measure.count_params(model) - sum(w.numel() for w in weights)
    # codes and zero points at 3 bits, an fp32 scale per output channel, fp32 biases
    expected = 4 * biases + sum(math.ceil(w.numel() * 3 / 8) + math.ceil(w.shape[0] * 3 / 8) + 4 * w.shape[0]
                                for w in weights)
    assert deploy.encoding(model) == ("lowbit", expected)
    assert expected < measure.size_bytes(dense) * (3 / 32 + 0.01)
    assert all(len(row.unique()) <= 8 for w in weights for row in w)

    tuned = run(make_context(epochs=1, finetune_epochs=1), "gptq", bits=3, finetune=True)
    assert deploy.encoding(tuned) == ("lowbit", expected)  # still on the grid
    assert any(not torch.equal(a.weight, b.weight) for (a, _), (b, _) in zip(prunable_weights(model), prunable_weights(tuned)))
    with torch.no_grad():
        tuned[1].weight.add_(1e-3)  # e.g. a later link of a chain retrained it
    assert deploy.encoding(tuned)[1] - expected > 3 * tuned[1].weight.numel()  # now 4 bytes each


def test_sparsegpt_then_gptq_keeps_the_zeros_and_stores_them_as_a_bitmask(make_context):
    alone = deploy.encoding(run(make_context(epochs=1), "gptq", bits=4))[1]
    ctx = make_context(epochs=1)
    ctx.continue_from(run(ctx, "sparsegpt", sparsity=0.75))  # what the chain sparsegpt+gptq does
    first = ctx.figures["compress_time_s"]
    model = run(ctx, "gptq", bits=4)
    assert weight_sparsity(model) >= 0.75
    assert deploy.encoding(model)[1] < 0.7 * alone  # 1 bit a weight plus 4 bits a nonzero
    assert ctx.figures["compress_time_s"] > first  # the links' calibration time adds up


def test_one_shot_methods_through_bench_run(tmp_path, data_dir, bench):
    """Each method as a user runs it, its calibration time charged to the cost, and SparseGPT
    above one-shot magnitude at 80% without fine-tuning (the papers' claim). Wanda's claim and
    GPTQ's over RTN are left to the sweeps: on this small MLP Wanda fell below magnitude, and
    GPTQ and RTN at 3 bits were both within a few test images of dense."""
    proc = bench(["run", "--suite", FAST, "--seeds", "0", "--epochs", "2", "--limit-train", "6000",
                  "--limit-test", "2000", "--data-dir", data_dir, "--results-dir", tmp_path,
                  "--methods", "magnitude-oneshot,wanda,sparsegpt,rtn,gptq",
                  "--set", "magnitude-oneshot.sparsity=0.8", "--set", "wanda.sparsity=0.8",
                  "--set", "sparsegpt.sparsity=0.8", "--set", "rtn.bits=3", "--set", "gptq.bits=3"])
    assert proc.returncode == 0, proc.stderr
    runs = (tmp_path / "mlp-fast" / "runs").glob("*.json")
    recs = {r["config"]["method"]: r for r in (json.loads(p.read_text()) for p in runs)}
    acc = {name: r["metrics"]["accuracy"] for name, r in recs.items()}
    assert acc["sparsegpt"] > acc["magnitude-oneshot"], acc
    base = recs["magnitude-oneshot"]["metrics"]["train_time_s"]  # the dense model's time alone
    for name in ("wanda", "sparsegpt", "gptq"):
        r = recs[name]
        assert r["figures"]["calibration_samples"] == 1024 and r["metrics"]["train_epochs"] == 2
        assert r["metrics"]["train_time_s"] == pytest.approx(base + r["figures"]["compress_time_s"])
    assert recs["sparsegpt"]["metrics"]["weight_sparsity"] == pytest.approx(0.8, abs=0.005)
    assert recs["gptq"]["metrics"]["size_bytes"] == recs["rtn"]["metrics"]["size_bytes"]
