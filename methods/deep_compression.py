"""Pruning, trained k-means weight sharing and Huffman coding of the weights (Han et al. 2016).

Han, Mao and Dally, "Deep Compression: Compressing Deep Neural Networks with Pruning, Trained
Quantization and Huffman Coding", ICLR 2016. The three stages:

1. Global magnitude pruning to `sparsity` (torch.nn.utils.prune; the paper thresholds each layer
   by its own weights' spread), fine-tuned with the mask held for `prune_epochs_fraction` of the
   fine-tuning budget.
2. Per-layer weight sharing: each layer's surviving weights are clustered by k-means
   (scikit-learn) into 2**bits centroids, linearly initialized over [min, max], the
   initialization the paper found best. The bits follow the paper's rule for AlexNet and VGG-16
   (Sec. 5.2-5.3): convolutions are more sensitive and get `conv_bits` (8), fully connected layers
   `fc_bits` (5), as in its LeNet-5 (Table 3); its LeNet-300-100 (Table 2) used 6. The rest of
   the budget fine-tunes the centroids: a parametrization makes weight = centroids[index], so
   backpropagation sums the gradients of a cluster's weights into its centroid (the paper's
   eq. 3), the weights of a cluster stay tied and the pruned ones stay zero. The suite's weight
   decay acts on each centroid once, not once per weight of its cluster as the loss's gradients do.
3. Huffman coding (dahuffman; the codes are made canonical so that a code table is one length per
   symbol) of each layer's cluster indices and of the gaps (zeros skipped) between its nonzeros in
   the flattened weight. The paper bounds a gap to `gap_bits` (8 for conv, 5 for fc: Sec. 2; its
   experiments used 5 for every layer of the LeNets and VGG-16 and 4 for AlexNet, Tables 2-5)
   and inserts a filler zero when it is exceeded; here the largest gap symbol 2**gap_bits - 1 is
   an escape that skips that many zeros, the same filler without spending a weight index on it.
   Huffman-coded, the bound only sets the gap alphabet and where escapes begin.

The model returned is decoded from that bitstream into a fresh model, so what the harness
evaluates is what the bitstream holds. The bitstream is registered as an encoding of the deploy
step (`huffman_bytes`): the harness's size of a model whose weights are shared this way is the
bitstream's length.
"""

from __future__ import annotations

import struct

import numpy as np
import torch
import torch.nn.functional as F
from dahuffman import HuffmanCodec
from threadpoolctl import threadpool_limits
from torch import nn
from torch.nn.utils import parametrize, prune

from bench import Context, Method, bounded, register_method
from bench.sparsity import PRUNABLE, make_permanent, prunable_weights, prune_unstructured, weight_layers

GAP_BITS = {"conv": 8, "fc": 5}  # the paper's spans of a stored index difference
RAW_FLOAT, RAW_INT, CODED = 0, 1, 2  # how a state dict entry is stored in the bitstream


@register_method("deep-compression")
class DeepCompression(Method):
    """Pruning, trained k-means weight sharing and Huffman coding of the weights (Han et al. 2016).

    Returns the model decoded from the Huffman-coded bitstream, whose length is its size.
    """

    family = "combined"
    sweep = "sparsity"
    output = "quantized"  # its size is that of the bitstream: retraining it would invalidate it
    sparsity: float = bounded(0.92, ge=0, lt=1)
    # at most 2**8 centroids (the paper's largest), so that the harness finds the bitstream
    # encoding applicable (huffman_bytes)
    conv_bits: int = bounded(8, ge=1, le=8)
    fc_bits: int = bounded(5, ge=1, le=8)
    prune_epochs_fraction: float = bounded(0.5, ge=0, le=1)

    def run(self, ctx: Context) -> nn.Module:
        model = ctx.pretrained()
        prune_unstructured(prunable_weights(model), prune.L1Unstructured, amount=self.sparsity)
        prune_epochs = round(self.prune_epochs_fraction * ctx.budget.finetune_epochs)
        if prune_epochs:
            ctx.train(model, epochs=prune_epochs, lr=ctx.budget.finetune_lr)
        make_permanent(model)
        accuracy_pruned = ctx.evaluate(model)

        bits = share_weights(model, self.conv_bits, self.fc_bits)
        if ctx.budget.finetune_epochs > prune_epochs:
            ctx.train(model, epochs=ctx.budget.finetune_epochs - prune_epochs, lr=ctx.budget.finetune_lr)
        unshare_weights(model)

        layers: dict[str, dict[str, int]] = {}
        bitstream = encode(model, layers)
        decoded = decode(bitstream, ctx.new_model())
        ctx.record(accuracy_pruned=accuracy_pruned, layer_bits=bits, layers=layers,
                   **stage_bytes(model, layers, bits, len(bitstream)))
        return decoded


# -- stage 2: weight sharing --------------------------------------------------------------------
class SharedWeights(nn.Module):
    """Parametrization weight = [0, *centroids][index]: index 0 marks a pruned weight, i > 0 the
    centroid i - 1. The lookup's backward sums a cluster's weight gradients into its centroid; it
    is an embedding lookup because that backward sums in a fixed order (indexing's does not)."""

    def __init__(self, index: torch.Tensor, clusters: int):
        super().__init__()
        self.register_buffer("index", index)
        self.clusters = clusters

    def forward(self, centroids: torch.Tensor) -> torch.Tensor:
        table = torch.cat([centroids.new_zeros(1), centroids]).unsqueeze(1)
        return F.embedding(self.index, table).squeeze(-1)

    def right_inverse(self, weight: torch.Tensor) -> torch.Tensor:
        """The centroids that best represent `weight`: the mean of each cluster."""
        keep = self.index > 0
        return weight.new_zeros(self.clusters).scatter_reduce(
            0, self.index[keep] - 1, weight[keep], reduce="mean", include_self=False)


def layer_kind(module: nn.Module) -> str:
    return "fc" if isinstance(module, nn.Linear) else "conv"


def kmeans_index(weight: torch.Tensor, bits: int) -> tuple[torch.Tensor, int]:
    """Cluster the nonzero weights into at most 2**bits groups by k-means from linearly spaced
    centroids; returns the index map (0 where pruned, cluster + 1 elsewhere) and the cluster count."""
    flat = weight.detach().flatten().cpu()
    keep = flat != 0
    values = flat[keep].numpy().reshape(-1, 1)
    k = min(2 ** bits, len(np.unique(values)))
    index = torch.zeros(flat.numel(), dtype=torch.long)
    if k:
        # Imported here: sklearn takes over a second to import (2-3 s in development at eb6b044),
        # and every run's size measurement imports this plugin for its Huffman encoding, while
        # only this method clusters.
        from sklearn.cluster import KMeans

        init = np.linspace(values.min(), values.max(), k, dtype=values.dtype).reshape(-1, 1)
        with threadpool_limits(1):  # sklearn's threads sum the centroids in a varying order
            labels = KMeans(n_clusters=k, init=init, n_init=1).fit(values).labels_
        index[keep] = torch.from_numpy(labels).long() + 1
    return index.view(weight.shape).to(weight.device), k


def share_weights(model: nn.Module, conv_bits: int, fc_bits: int) -> dict[str, int]:
    """Tie every prunable layer's weights to its k-means centroids (a parametrization whose
    parameter is the centroids); returns the bits per layer."""
    bits = {}
    for name, module in model.named_modules():
        if isinstance(module, PRUNABLE):
            bits[name] = fc_bits if layer_kind(module) == "fc" else conv_bits
            index, k = kmeans_index(module.weight, bits[name])
            parametrize.register_parametrization(module, "weight", SharedWeights(index, k))
    return bits


def unshare_weights(model: nn.Module) -> nn.Module:
    """Replace the parametrizations by the plain (tied) weights they compute: on every layer, as
    share_weights ties those a suite's dense_layers rule keeps from pruning too."""
    for module in weight_layers(model):
        if parametrize.is_parametrized(module, "weight"):
            parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)
    return model


# -- stage 3: Huffman coding --------------------------------------------------------------------
def huffman_encode(symbols: list[int], alphabet: int) -> bytes:
    """A Huffman-coded stream of symbols in [0, alphabet): its code table (one code length per
    symbol, end-of-stream symbol `alphabet` included) followed by the coded bits."""
    counts = np.bincount(np.asarray(symbols, dtype=np.int64), minlength=alphabet)
    freqs = {s: int(c) for s, c in enumerate(counts) if c}
    table = HuffmanCodec.from_frequencies(freqs, concat=list, eof=alphabet).get_code_table()
    lengths = bytes(table.get(s, (0, 0))[0] for s in range(alphabet + 1))
    payload = HuffmanCodec(canonical_codes(lengths), eof=alphabet).encode(symbols)
    return struct.pack("<I", alphabet) + lengths + struct.pack("<I", len(payload)) + payload


def huffman_decode(buffer: memoryview, offset: int) -> tuple[list[int], int]:
    """The symbols of the stream at `offset` and the offset after it."""
    (alphabet,), offset = struct.unpack_from("<I", buffer, offset), offset + 4
    lengths, offset = bytes(buffer[offset:offset + alphabet + 1]), offset + alphabet + 1
    (size,), offset = struct.unpack_from("<I", buffer, offset), offset + 4
    codec = HuffmanCodec(canonical_codes(lengths), concat=list, eof=alphabet)
    return codec.decode(bytes(buffer[offset:offset + size])), offset + size


def canonical_codes(lengths: bytes) -> dict[int, tuple[int, int]]:
    """Canonical Huffman codes (bits, value) from code lengths (0: symbol absent)."""
    table, code, previous = {}, 0, 0
    for length, symbol in sorted((n, s) for s, n in enumerate(lengths) if n):
        code <<= length - previous
        table[symbol] = (length, code)
        code, previous = code + 1, length
    return table


def gap_symbols(positions: np.ndarray, gap_bits: int) -> np.ndarray:
    """The zeros skipped before each nonzero; a run of r zeros becomes r // escape escapes and
    then r % escape, where escape = 2**gap_bits - 1."""
    escape = 2 ** gap_bits - 1
    runs = np.diff(positions, prepend=-1) - 1
    counts = runs // escape + 1
    out = np.full(int(counts.sum()), escape, dtype=np.int64)
    out[np.cumsum(counts) - 1] = runs % escape
    return out


def gap_positions(symbols: np.ndarray, gap_bits: int) -> np.ndarray:
    """The positions of the nonzeros that `gap_symbols` describes."""
    escape = 2 ** gap_bits - 1
    ends = np.cumsum(np.where(symbols == escape, escape, symbols + 1)) - 1
    return ends[symbols != escape]


def encode(model: nn.Module, layers: dict[str, dict[str, int]] | None = None) -> bytes:
    """The model's state dict as one bitstream. Linear/Conv weights: the codebook of their distinct
    nonzero values (fp32), Huffman-coded codebook indices and Huffman-coded gaps; every other
    entry: fp32 (floats) or int64 bytes. Each entry starts with its kind and shape; entries are in
    the order of their sorted names, which registration order (parametrizations) does not change.
    `layers`, when given, receives per coded layer what its parts take."""
    kinds = {f"{n}.weight": layer_kind(m) for n, m in model.named_modules() if isinstance(m, PRUNABLE)}
    state = model.state_dict()
    out = [struct.pack("<I", len(state))]
    for key in sorted(state):
        t = state[key].detach().cpu()
        kind = CODED if key in kinds else RAW_FLOAT if t.is_floating_point() else RAW_INT
        out.append(struct.pack(f"<BB{t.dim()}I", kind, t.dim(), *t.shape))
        if kind == RAW_FLOAT:
            out.append(t.float().numpy().tobytes())
        elif kind == RAW_INT:
            out.append(t.long().numpy().tobytes())
        else:
            flat = t.float().flatten()
            positions = torch.nonzero(flat).flatten()
            codebook, index = torch.unique(flat[positions], return_inverse=True)
            gap_bits = GAP_BITS[kinds[key]]
            gaps = gap_symbols(positions.numpy(), gap_bits)
            index_code = huffman_encode(index.tolist(), len(codebook))
            gap_code = huffman_encode(gaps.tolist(), 2 ** gap_bits)
            out += [struct.pack("<BI", gap_bits, len(codebook)), codebook.numpy().tobytes(),
                    index_code, gap_code]
            if layers is not None:
                layers[key.removesuffix(".weight")] = {
                    "nonzeros": len(positions), "clusters": len(codebook), "gap_bits": gap_bits,
                    "gap_symbols": len(gaps), "index_bytes": len(index_code), "gap_bytes": len(gap_code)}
    return b"".join(out)


def huffman_bytes(model: nn.Module) -> int | None:
    """Length of `encode`'s bitstream, for a model whose every Linear/Conv weight holds at most
    2**8 distinct nonzero values (weight sharing, as stage 2 leaves it); None otherwise, where the
    codebook would be as large as the weights (and coding it takes seconds)."""
    weights = [m.weight for m in model.modules() if isinstance(m, PRUNABLE)]
    if not weights or any(torch.unique(w[w != 0]).numel() > 2 ** 8 for w in weights):
        return None
    return len(encode(model))


def decode(bitstream: bytes, model: nn.Module) -> nn.Module:
    """Load the state dict held by `encode`'s bitstream into `model` (same architecture)."""
    buffer = memoryview(bitstream)
    (count,), offset = struct.unpack_from("<I", buffer, 0), 4
    keys = sorted(model.state_dict())
    if count != len(keys):
        raise ValueError(f"the bitstream holds {count} tensors, the model has {len(keys)}")
    state = {}
    for key in keys:
        kind, ndim = struct.unpack_from("<BB", buffer, offset)
        shape = struct.unpack_from(f"<{ndim}I", buffer, offset + 2)
        offset += 2 + 4 * ndim
        numel = int(np.prod(shape))
        if kind in (RAW_FLOAT, RAW_INT):
            dtype = np.float32 if kind == RAW_FLOAT else np.int64
            values = np.frombuffer(buffer, dtype=dtype, count=numel, offset=offset)
            offset += values.nbytes
            state[key] = torch.from_numpy(values.copy()).view(shape)
            continue
        gap_bits, clusters = struct.unpack_from("<BI", buffer, offset)
        codebook = np.frombuffer(buffer, dtype=np.float32, count=clusters, offset=offset + 5)
        index, offset = huffman_decode(buffer, offset + 5 + codebook.nbytes)
        gaps, offset = huffman_decode(buffer, offset)
        weight = np.zeros(numel, dtype=np.float32)
        weight[gap_positions(np.asarray(gaps, dtype=np.int64), gap_bits)] = codebook[index]
        state[key] = torch.from_numpy(weight).view(shape)
    model.load_state_dict(state)
    return model


def stage_bytes(model: nn.Module, layers: dict[str, dict[str, int]], bits: dict[str, int],
                huffman: int) -> dict[str, int]:
    """The size after each stage, counted the paper's way: dense fp32; pruned (each
    stored entry an fp32 value and a gap_bits index difference, fillers included); quantized
    (bits per value instead, plus the fp32 codebook); Huffman-coded (the real bitstream).
    Entries that are not coded weights are fp32 in all of them."""
    state = model.state_dict()
    dense = sum(t.numel() * t.element_size() for t in state.values())
    other = dense - sum(state[f"{name}.weight"].numel() * 4 for name in layers)
    pruned = quantized = 8 * other
    for name, layer in layers.items():
        pruned += layer["gap_symbols"] * (32 + layer["gap_bits"])
        quantized += layer["gap_symbols"] * (bits[name] + layer["gap_bits"]) + 32 * layer["clusters"]
    return {"bytes_dense": dense, "bytes_pruned": (pruned + 7) // 8,
            "bytes_quantized": (quantized + 7) // 8, "bytes_huffman": huffman}
