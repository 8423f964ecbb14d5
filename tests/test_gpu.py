"""The CUDA path, checked on a real GPU: training step, compiled path, latency, memory, and one
quick run of every method family. Marked `gpu`; without CUDA every test is skipped with the
reason shown in pytest's summary (-ra), never passed silently.

    pytest -m gpu -q          # on a machine with a GPU (benchmarks/gpu_session.sh runs this)
"""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from bench import measure
from bench.data import Preprocess, default_tensor_cache, load_dataset
from bench.models import build_model
from bench.suite import load_suite
from bench.train import evaluate, fit, make_optimizer

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device: torch sees none"),
]

CUDA = torch.device("cuda")


@pytest.fixture(scope="module")
def cifar(cifar_dir):
    """The cifar suite's real training images (a 4,096-image subset) and test images (2,000)."""
    suite = load_suite("cifar")
    data = load_dataset(suite.data, cifar_dir, default_tensor_cache())
    return suite, data.train.subset(4096).to(CUDA), data.test.subset(2000).to(CUDA)


def resnet20() -> nn.Module:
    torch.manual_seed(0)
    return build_model("resnet20", {}, 10, 3).to(CUDA, memory_format=torch.channels_last)


def test_training_step_on_cuda_is_fused_channels_last_bf16_and_learns(cifar):
    suite, train, test = cifar
    assert suite.training.precision == "bf16"
    model = resnet20()
    opt = make_optimizer(model.parameters(), suite.training, suite.training.lr, CUDA)
    assert opt.defaults["fused"] is True
    before = evaluate(model, test, Preprocess(suite.data, CUDA))
    g = torch.Generator(device=CUDA).manual_seed(0)
    result = fit(model, train, Preprocess(suite.data, CUDA), suite.training, epochs=4,
                 lr=suite.training.lr, generator=g, optimizer=opt, log=lambda _: None)
    conv = model.stem[0].weight
    assert conv.is_cuda and conv.dtype == torch.float32  # bf16 autocast, fp32 master weights
    assert conv.is_contiguous(memory_format=torch.channels_last)
    assert math.isfinite(result.final_loss)
    after = evaluate(model, test, Preprocess(suite.data, CUDA))
    assert after > max(before + 0.1, 0.3), (before, after)  # 4 epochs on 4k images: well above chance


@pytest.mark.parametrize("mode", ["default", "reduce-overhead"])
def test_compiled_training_reports_compile_time_apart(cifar, mode):
    suite, train, _ = cifar
    model = resnet20()
    g = torch.Generator(device=CUDA).manual_seed(0)
    result = fit(model, train, Preprocess(suite.data, CUDA), suite.training, epochs=2,
                 lr=suite.training.lr, generator=g, log=lambda _: None, compile=mode)
    assert math.isfinite(result.final_loss)
    assert result.compile_seconds > 0 and result.seconds > 0


def test_latency_waits_for_the_gpu():
    """A forward pass of known GPU work: timed without synchronizing it would read as launch
    time only (microseconds); the harness's figure must cover the kernels themselves."""
    model = nn.Linear(8192, 8192, bias=False).to(CUDA)
    x = torch.randn(8192, 8192, device=CUDA)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    with torch.inference_mode():
        for _ in range(3):
            model(x)
        start.record()
        for _ in range(10):
            model(x)
        end.record()
    torch.cuda.synchronize()
    event_ms = start.elapsed_time(end) / 10
    median, iqr = measure.latency_ms(model, x, min_run_time=0.5)
    assert median > 0.7 * event_ms, (median, event_ms)
    assert median < 2.0 * event_ms + 0.5 and iqr >= 0


def test_peak_memory_counts_weights_input_and_activations():
    model = nn.Sequential(nn.Linear(1024, 4096), nn.ReLU(), nn.Linear(4096, 10)).to(CUDA)
    x = torch.randn(512, 1024, device=CUDA)
    weights = sum(p.numel() * 4 for p in model.parameters())
    activation = 512 * 4096 * 4  # the hidden layer's output, alive at the peak
    peak = measure.peak_inference_memory(model, x)
    assert peak >= weights + x.numel() * 4 + activation
    assert peak < 3 * (weights + x.numel() * 4 + 2 * activation)


FAMILIES = ["dense", "magnitude", "gmp", "lottery", "l1", "gating", "slimming", "rigl", "sft",
            "filter-l1", "ptq-int8", "qat", "uniform", "kd", "deep-compression", "nm", "magnitude+uniform"]


def test_every_method_family_runs_on_cuda(tmp_path, cifar_dir):
    """One short run of a method per family (and a chain) on CUDA through the CLI: each finishes
    with finite metrics, or is skipped with a reason, and its record says where it ran."""
    from conftest import run_bench

    proc = run_bench(["run", "--suite", "cifar", "--methods", ",".join(FAMILIES), "--seeds", "0",
                      "--set", "magnitude.sparsity=0.9", "--set", "gmp.sparsity=0.9",
                      "--set", "lottery.sparsity=0.9", "--set", "lottery.rounds=2",
                      "--set", "l1.sparsity=0.9", "--set", "rigl.sparsity=0.9",
                      "--set", "deep-compression.sparsity=0.9",
                      "--epochs", "1", "--finetune-epochs", "1", "--limit-train", "2048",
                      "--limit-test", "1000", "--device", "cuda", "--data-dir", str(cifar_dir),
                      "--results-dir", str(tmp_path)], timeout=900)
    print(proc.stdout[-6000:])
    recs = [json.loads(p.read_text()) for p in (tmp_path / "cifar" / "runs").glob("*.json")]
    status = {r["config"]["method"]: (r["status"], (r["error"] or "").splitlines()[:1]) for r in recs}
    assert sorted(status) == sorted(FAMILIES), status
    bad = {m: s for m, s in status.items() if s[0] not in ("ok", "skipped")}
    assert not bad, f"{bad}\n{proc.stderr[-4000:]}"
    for r in recs:
        assert r["env"]["device"] == "cuda", r["env"]
        if r["status"] == "ok":
            m = r["metrics"]
            assert 0 <= m["accuracy"] <= 1 and m["params"] > 0
            assert all(math.isfinite(m[k]) for k in m if isinstance(m[k], float)), m


def test_several_runs_share_a_gpu_and_match_one_at_a_time(tmp_path, cifar_dir):
    """--jobs-per-gpu 2: two worker processes on the GPU give the records of a serial run
    (nonzeros, size and FLOPs exactly; GPU training is not bitwise deterministic, so accuracy is
    not compared), each measured on the GPU."""
    from conftest import run_bench

    args = ["run", "--suite", "cifar", "--methods", "magnitude,random", "--seeds", "0", "--set",
            "magnitude.scope=layer", "--epochs", "1", "--finetune-epochs", "1", "--limit-train", "2048",
            "--limit-test", "1000", "--device", "cuda", "--data-dir", str(cifar_dir)]
    serial = run_bench([*args, "--results-dir", str(tmp_path / "serial")], timeout=600)
    shared = run_bench([*args, "--jobs-per-gpu", "2", "--results-dir", str(tmp_path / "shared")], timeout=600)
    assert serial.returncode == 0 and shared.returncode == 0, shared.stderr[-3000:]
    assert "2 local worker processes on 1 GPU, up to 2 per GPU" in shared.stdout

    def load(folder):
        recs = [json.loads(p.read_text()) for p in (folder / "cifar" / "runs").glob("*.json")]
        return {r["config_hash"]: r for r in recs}

    a, b = load(tmp_path / "serial"), load(tmp_path / "shared")
    assert sorted(a) == sorted(b) and len(a) == 6
    for key in a:
        for metric in ("nonzeros", "size_bytes", "flops", "flops_effective"):
            assert a[key]["metrics"][metric] == b[key]["metrics"][metric], metric
        assert b[key]["measured_on"]["device"] == "cuda"


def test_a_cell_whose_capture_failed_leaves_the_next_cell_on_the_default_stream():
    """torch.cuda.graph's __exit__ (torch 2.11, the GPU machines') raises in capture_end before it
    restores the stream it made current, so a capture that fails (here: a synchronize, which no capture permits) left the
    capture stream current for every later cell of the bench."""
    def capture_fails() -> str:
        try:
            with torch.cuda.graph(torch.cuda.CUDAGraph()):
                torch.cuda.synchronize()
        except Exception as e:  # noqa: BLE001 - as time_graphed reports it
            return f"capture failed: {type(e).__name__}"
        return "captured"

    from test_fused_gpu import fused_gpu  # benchmarks/fused_gpu.py, loaded as that test file loads it

    assert fused_gpu.cell(capture_fails, 60.0, {}).startswith("capture failed")
    assert torch.cuda.current_stream() == torch.cuda.default_stream()
    x = torch.ones(4, device="cuda")
    assert float((x * 2).sum()) == 8.0  # the device still works after the failed capture
