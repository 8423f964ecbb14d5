"""Deep Compression: the Huffman coder, trained weight sharing, and the decoded model it returns."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.nn.utils import parametrize, prune

from bench import deploy, measure
from bench.sparsity import make_permanent, prunable_weights, weight_sparsity
from methods.deep_compression import (DeepCompression, decode, encode, gap_positions, gap_symbols,
                                      huffman_decode, huffman_encode, share_weights)


def round_trip(symbols: list[int], alphabet: int) -> list[int]:
    coded = huffman_encode(symbols, alphabet)
    decoded, end = huffman_decode(memoryview(b"xx" + coded), 2)  # read from inside a larger buffer
    assert end == 2 + len(coded)
    return decoded


@pytest.mark.parametrize("symbols, alphabet", [
    ([], 32),                                   # an empty layer
    ([7] * 1000, 32),                           # a single symbol
    ([0], 1),
    ([0, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3], 4),
    (np.random.default_rng(0).integers(0, 256, 5000).tolist(), 256),
    (np.random.default_rng(1).geometric(0.05, 5000).clip(max=1999).tolist(), 2000),  # skewed
])
def test_huffman_round_trips_any_stream(symbols, alphabet):
    assert round_trip(symbols, alphabet) == symbols


def test_huffman_beats_fixed_width_on_skewed_streams():
    symbols = np.random.default_rng(0).geometric(0.3, 10_000).clip(max=31).tolist()
    assert len(huffman_encode(symbols, 32)) < 0.7 * 10_000 * 5 / 8  # vs 5 bits per symbol


@pytest.mark.parametrize("positions", [[], [0], [0, 1, 2], [5, 100, 101, 5000], [30], [31], [62]])
def test_gaps_round_trip_with_escapes(positions):
    positions = np.array(positions, dtype=np.int64)
    gaps = gap_symbols(positions, gap_bits=5)
    runs = np.diff(positions, prepend=-1) - 1  # zeros before each nonzero
    assert gaps.max(initial=0) <= 31 and (gaps == 31).sum() == (runs // 31).sum()  # 31: the escape
    assert np.array_equal(gap_positions(gaps, gap_bits=5), positions)


def pruned_pretrained(ctx, sparsity=0.92):
    model = ctx.pretrained()
    prune.global_unstructured(prunable_weights(model), pruning_method=prune.L1Unstructured, amount=sparsity)
    return make_permanent(model)


def test_bitstream_length_by_hand():
    """One 1x8 fc weight, [0, .5, 0, 0, .5, -.25, 0, 0]: 4 bytes of tensor count; the entry's kind,
    rank and shape (10) and its gap bits and cluster count (5); the fp32 codebook [-.25, .5] (8);
    the indices [1, 1, 0] Huffman-coded with the end symbol (code lengths 2, 1, 2: 4 bytes of
    alphabet, 3 of lengths, 4 of payload length, 6 bits of payload in 1 byte); the relative
    indices (zeros skipped: 1, 2, 0) over the 32-symbol fc alphabet (4 + 33 + 4 bytes, and four
    2-bit codes in 1 byte)."""
    layer = torch.nn.Linear(8, 1, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[0, 0.5, 0, 0, 0.5, -0.25, 0, 0]]))
    bitstream = encode(torch.nn.Sequential(layer))
    assert len(bitstream) == 4 + 10 + 5 + 8 + (4 + 3 + 4 + 1) + (4 + 33 + 4 + 1)
    decoded = decode(bitstream, torch.nn.Sequential(torch.nn.Linear(8, 1, bias=False)))
    assert torch.equal(decoded[0].weight, layer.weight)


def test_centroid_finetuning_sums_gradients_per_cluster_and_keeps_weights_tied(make_context):
    ctx = make_context(limit_train=1000)
    model = pruned_pretrained(ctx)
    pruned = [m.weight == 0 for m, _ in prunable_weights(model)]
    assert share_weights(model, conv_bits=8, fc_bits=5) == {"1": 5, "3": 5, "5": 5}
    layers = [m for m, _ in prunable_weights(model)]
    before = [m.parametrizations.weight.original.detach().clone() for m in layers]
    assert all(c.shape == (32,) for c in before)

    # One backward: each centroid's gradient is the sum of its cluster's weight gradients.
    x, y = ctx.calibration_batches(n=1)[0]
    with parametrize.cached():
        weights = [m.weight for m in layers]
        for w in weights:
            w.retain_grad()
        F.cross_entropy(model(x), y).backward()
    for m, w in zip(layers, weights):
        index = m.parametrizations.weight[0].index
        summed = torch.zeros(33).index_add_(0, index.flatten(), w.grad.flatten())[1:]
        torch.testing.assert_close(m.parametrizations.weight.original.grad, summed)
    model.zero_grad()

    ctx.train(model, epochs=1, lr=ctx.budget.finetune_lr)
    for m, c0, zero in zip(layers, before, pruned):
        centroids, index = m.parametrizations.weight.original.detach(), m.parametrizations.weight[0].index
        assert not torch.equal(centroids, c0)  # the centroids were trained
        w = m.weight.detach()
        assert torch.equal(w[index > 0], centroids[index[index > 0] - 1])  # every weight is its centroid
        assert torch.equal(index == 0, zero) and not w[zero].any()  # the pruned weights stay zero
        for cluster in index.unique()[1:]:
            assert w[index == cluster].unique().numel() == 1  # each cluster tied


def test_run_returns_the_model_decoded_from_its_bitstream(make_context):
    ctx = make_context(limit_train=3000, epochs=2, finetune_epochs=2)
    dense_accuracy = ctx.evaluate(ctx.pretrained())
    out = DeepCompression(sparsity=0.92).run(ctx)
    bitstream = encode(out)
    assert deploy.encoding(out) == ("huffman", len(bitstream))  # the harness's size of the model
    assert ctx.train_epochs == 4  # 2 dense + 1 pruned + 1 quantized fine-tuning epoch

    # The evaluated weights are exactly what the bitstream decodes to, and encode back to it.
    again = decode(bitstream, ctx.new_model()).state_dict()
    state = out.state_dict()
    assert state.keys() == again.keys() and all(torch.equal(state[k], again[k]) for k in state)

    # Pruned where global magnitude pruning of the dense model said; 2**5 shared values per layer.
    assert abs(weight_sparsity(out) - 0.92) < 0.005
    for (layer, _), (reference, _) in zip(prunable_weights(out), prunable_weights(pruned_pretrained(ctx))):
        assert not layer.weight[reference.weight == 0].any()
        assert 2 < layer.weight[layer.weight != 0].unique().numel() <= 32

    dense_bytes = measure.size_bytes(ctx.new_model())
    assert dense_bytes / len(bitstream) >= 30  # Han et al.: 40x on LeNet-300-100 at 92%
    figures = ctx.figures
    assert figures["bytes_huffman"] == len(bitstream)
    assert figures["bytes_dense"] > figures["bytes_pruned"] > figures["bytes_quantized"] > len(bitstream)
    assert figures["layer_bits"] == {"1": 5, "3": 5, "5": 5}
    assert sum(layer["nonzeros"] for layer in figures["layers"].values()) == sum(
        int(torch.count_nonzero(m.weight)) for m, _ in prunable_weights(out))
    accuracy = ctx.evaluate(out)  # 3,000 images, 2 + 2 epochs: dense reaches ~85%
    assert accuracy > dense_accuracy - 0.03 and accuracy > figures["accuracy_pruned"] - 0.03


def test_conv_layers_get_8_bits_on_lenet5(make_context):
    ctx = make_context(suite="mnist", limit_train=1000, epochs=1, finetune_epochs=1)
    out = DeepCompression(sparsity=0.9).run(ctx)
    assert ctx.figures["layer_bits"] == {"0": 8, "2": 8, "5": 5, "7": 5}
    distinct = [(m.weight.dim(), m.weight[m.weight != 0].unique().numel()) for m, _ in prunable_weights(out)]
    assert all(2 < n <= (256 if dim == 4 else 32) for dim, n in distinct), distinct
    assert abs(weight_sparsity(out) - 0.9) < 0.005
    again = decode(encode(out), ctx.new_model()).state_dict()
    assert all(torch.equal(t, again[k]) for k, t in out.state_dict().items())


def test_same_seed_same_bitstream(make_context):
    runs = [DeepCompression(sparsity=0.92).run(make_context(limit_train=1000, finetune_epochs=2))
            for _ in range(2)]
    assert encode(runs[0]) == encode(runs[1])
