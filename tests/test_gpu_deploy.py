"""The deploy step's CUDA runtimes on a real GPU: 2:4 semi-structured kernels checked against
PyTorch's outputs and timed side by side with the dense model. Marked `gpu`; without CUDA every
test is skipped with the reason shown in pytest's summary (-ra).

    pytest -m gpu -q tests/test_gpu_deploy.py
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from bench import deploy
from methods.nm import nm_mask

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device: torch sees none"),
]

CUDA = torch.device("cuda")


def mlp(*sizes: int, two_four: bool) -> nn.Module:
    """Linear layers of the given sizes, every weight 2:4 along its inputs when `two_four`."""
    torch.manual_seed(0)
    layers = []
    for a, b in zip(sizes, sizes[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    model = nn.Sequential(*layers[:-1]).to(CUDA).eval()
    if two_four:
        with torch.no_grad():
            for m in model:
                if isinstance(m, nn.Linear):
                    m.weight.mul_(nm_mask(m.weight, 2, 4))
    return model


def test_2to4_layers_run_on_semi_structured_kernels_with_pytorchs_outputs():
    """LeNet-300-100's shapes (not multiples of the kernels' tiles: padded) in fp16."""
    model = mlp(784, 300, 100, 10, two_four=True)
    x = torch.randn(256, 784, device=CUDA)
    session = deploy.load_torch_2to4(model, x, None, False)
    result = deploy.check(session, x, deploy.reference_outputs(model, x))
    print(result)
    dense_fp16 = sum(p.numel() * 2 for p in model.parameters())
    assert session.artifact_bytes < 0.75 * dense_fp16  # half the values, plus metadata and padding


def test_a_2to4_model_is_timed_side_by_side_with_its_dense_model():
    """Large matrix products, where 2:4 kernels are reported 1.1-1.7x faster (torchao)."""
    dense, sparse = mlp(4096, 4096, 4096, two_four=False), mlp(4096, 4096, 4096, two_four=True)
    inputs = {1: torch.randn(1, 4096, device=CUDA), 4096: torch.randn(4096, 4096, device=CUDA)}
    values, notes = deploy.measure_runtimes(sparse, dense, inputs, ["torch", "torch_2to4", "onnxruntime"])
    print({k: v for k, v in values.items() if "speedup" in k}, notes)
    assert "onnxruntime" not in notes  # a CPU runtime: not measured on CUDA
    assert notes["torch_2to4"]["status"] == "ok", notes
    assert values["speedup_torch_2to4_b4096"] > 1.0
    assert 0.8 < values["speedup_b4096"] < 1.25  # the same dense kernels in eager: no gain


def test_a_model_without_2to4_layers_gets_the_reason():
    model = mlp(784, 300, 100, 10, two_four=False)
    inputs = {1: torch.randn(1, 784, device=CUDA), 64: torch.randn(64, 784, device=CUDA)}
    values, notes = deploy.measure_runtimes(model, model, inputs, ["torch_2to4"])
    assert notes["torch_2to4"] == {"status": "empty", "reason": "no Linear layer holds a 2:4 pattern along its inputs"}
    assert values["speedup_torch_2to4_b64"] is None
