import itertools
import time

import numpy as np
import pytest
import torch
from torch import nn

from bench import measure
from bench.sparsity import weight_sparsity


def half_zero_linear() -> nn.Linear:
    layer = nn.Linear(10, 5)
    with torch.no_grad():
        layer.weight.copy_(torch.arange(1, 51, dtype=torch.float).view(5, 10))
        layer.weight[:, :5] = 0  # 25 of 50 weights zero
        layer.bias.fill_(1.0)
    return layer


def test_params_nonzeros_and_weight_sparsity():
    layer = half_zero_linear()
    assert measure.count_params(layer) == 55
    assert measure.count_nonzeros(layer) == 30
    assert weight_sparsity(layer) == 0.5


def test_flops_of_linear_and_conv_and_effective_flops():
    layer = half_zero_linear()
    total, effective = measure.flops(layer, torch.randn(1, 10))
    assert total == 2 * 10 * 5  # one multiply-add per weight
    assert effective == 50  # half the weights are zero
    conv = nn.Conv2d(1, 2, 3)
    total, effective = measure.flops(conv, torch.randn(1, 1, 5, 5))
    assert total == 2 * 2 * 9 * 9  # 2 output maps of 3x3, 9 multiply-adds each
    assert effective == total


def decoded_state_dict(encoded: dict) -> dict[str, torch.Tensor]:
    """`measure.sparse_state_dict` decoded back into ordinary tensors: the proof that the
    encoding whose bytes `size_bytes` counts is exact."""
    out = {}
    for key, v in encoded.items():
        if isinstance(v, dict):
            numel = int(np.prod(v["shape"]))
            mask = torch.from_numpy(np.unpackbits(v["mask"].numpy())[:numel].astype(bool))
            t = torch.zeros(numel, dtype=v["values"].dtype)
            t[mask] = v["values"]
            out[key] = t.view(v["shape"])
        else:
            out[key] = v
    return out


def test_sparse_encoding_round_trips_and_is_smaller():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(100, 100), nn.ReLU(), nn.Linear(100, 10))
    dense_bytes = measure.size_bytes(model)
    with torch.no_grad():
        w = model[0].weight
        w[w.abs() < w.abs().quantile(0.9)] = 0
    decoded = decoded_state_dict(measure.sparse_state_dict(model))
    for key, value in model.state_dict().items():
        assert torch.equal(decoded[key], value)
    sparse_bytes = measure.size_bytes(model)
    # 10,000 float32 weights -> 1,000 values (4 KB) + a 10,000-bit mask (1.25 KB)
    assert dense_bytes - sparse_bytes > 30_000
    assert 4 * 10_000 > sparse_bytes - 4 * (100 + 1010) > 4_000 + 1_250


def test_integer_tensors_take_the_bitmask_form_but_not_integer_scalars():
    """All-zero integer vectors (an int8 model's weight zero points) are a bitmask; BatchNorm's
    batch counter, 0 in a new model, stays a plain scalar, which pickles ~250 bytes smaller."""
    model = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))
    model.register_buffer("zero_points", torch.zeros(64, dtype=torch.int64))
    encoded = measure.sparse_state_dict(model)
    assert isinstance(encoded["zero_points"], dict) and encoded["zero_points"]["values"].numel() == 0
    assert isinstance(encoded["1.num_batches_tracked"], torch.Tensor)
    decoded = decoded_state_dict(encoded)
    assert all(torch.equal(decoded[k], t) for k, t in model.state_dict().items())


def test_a_quantized_tensor_is_stored_as_it_is():
    """A plugin's eager-quantized model holds per-channel qint8 weights: mostly zero after pruning,
    the bitmask form (which integer tensors now take) indexed one by a mask, which raises, and the
    run failed at its size. It is stored dense, as before integers were encoded."""
    model = nn.Module()
    zeros = torch.quantize_per_channel(torch.zeros(8, 64), torch.ones(8), torch.zeros(8, dtype=torch.long), 0,
                                       torch.qint8)
    model.register_buffer("weight", zeros)
    encoded = measure.sparse_state_dict(model)
    assert torch.equal(encoded["weight"].int_repr(), zeros.int_repr())
    assert measure.size_bytes(model) > 0


def test_latency_reports_median_and_iqr():
    model = nn.Sequential(nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10))
    median, iqr = measure.latency_ms(model, torch.randn(64, 256), min_run_time=0.2)
    assert 0 < median < 100
    assert 0 <= iqr < float("inf")  # its size depends on machine load, so it is not bounded here


@pytest.mark.xdist_group("processes")
def test_paired_speedup_is_the_ratio_of_interleaved_blocks():
    """Two calls of known relative cost (sleeps: independent of how loaded the CPU is): the
    speedup is their ratio, and each block runs its calls in a row, alternating order."""
    calls = []

    def dense():
        calls.append("d")
        time.sleep(0.002)

    def compressed():
        calls.append("c")
        time.sleep(0.001)

    t = measure.paired_speedup(dense, compressed, pairs=4, block_s=0.01)
    assert 1.5 < t.speedup < 2.5, t
    assert 0 <= t.speedup_iqr < float("inf") and 0 <= t.compressed_iqr_ms  # their size depends on the machine's load
    # (sleeps overshoot under load: beside two other busy jobs on 2 cores the IQR reached 1.22)
    assert 0.9 < t.compressed_ms < 2 and 1.9 < t.dense_ms < 3.5, t
    # the timed blocks end d|c c|d d|c c|d (ABBA: drift hits both alike): runs of calls d, cc, dd, cc, d
    runs = [(k, len(list(g))) for k, g in itertools.groupby(calls)][-5:]
    assert [k for k, _ in runs] == ["d", "c", "d", "c", "d"]
    assert runs[2][1] == 2 * runs[4][1] and runs[1][1] == runs[3][1]


def test_peak_inference_memory_counts_params_input_and_activations():
    layer = nn.Linear(100, 10)
    x = torch.randn(4, 100)
    expected = 4 * (100 * 10 + 10) + 4 * 4 * 100 + 4 * 4 * 10  # params + input + output
    assert measure.peak_inference_memory(layer, x) == expected


def test_peak_inference_memory_of_a_model_with_frozen_parameters():
    layer = nn.Linear(100, 10).requires_grad_(False)
    x = torch.randn(4, 100)
    expected = 4 * (100 * 10 + 10) + 4 * 4 * 100 + 4 * 4 * 10
    assert measure.peak_inference_memory(layer, x) == expected
    assert not layer.weight.requires_grad  # left as it was


@pytest.mark.parametrize("device", ["cuda", "cpu"])
def test_a_gpu_gate_waits_for_the_work_its_process_queued_before_passing(device, tmp_path, monkeypatch):
    """A training process stopped at the gate must have no steps queued on the GPU, or they run
    beside the holder's timing: on a GPU it synchronizes before taking the shared lock (checked
    with torch.cuda.synchronize and flock recorded, no GPU needed); on the CPU there is nothing to
    wait for."""
    import fcntl
    import tempfile

    from bench import locks

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(locks, "_device_id", lambda d: d.type)  # a GPU's id asks CUDA for its uuid
    events = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda d=None: events.append(("synchronize", str(d))))
    flock = fcntl.flock
    monkeypatch.setattr(fcntl, "flock", lambda fd, op: (events.append(("flock", op)), flock(fd, op))[1])
    with locks.DeviceGate(torch.device(device)) as gate:
        gate.pass_through()
    waits = [("synchronize", device)] if device == "cuda" else []
    assert events == [*waits, ("flock", fcntl.LOCK_SH), ("flock", fcntl.LOCK_UN)]
