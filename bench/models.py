"""Model registry (timm style): the suites' reference architectures, plus any timm model.

A suite names its model as a registry name (`lenet300`) or `timm:<name>`; keyword arguments
come from the suite. Every model takes NCHW float images and returns logits.
"""

from __future__ import annotations

import os

from typing import Any, Callable

import torch
from torch import nn

from bench.registries import Registry

MODELS: Registry[Callable[..., nn.Module]] = Registry("model")
register_model = MODELS.register


def build_model(name: str, kwargs: dict[str, Any], num_classes: int, in_channels: int) -> nn.Module:
    """Build a registered model, or a timm model for names of the form `timm:<name>`."""
    if name.startswith("timm:"):
        import timm

        return timm.create_model(
            name[5:], pretrained=False, num_classes=num_classes, in_chans=in_channels, **kwargs
        )
    return MODELS[name](num_classes=num_classes, in_channels=in_channels, **kwargs)


TRAINING_BYTES_PER_PARAM = 16  # float32 weights, gradients, momentum, and the copy each run gets


def check_model(name: str, kwargs: dict[str, Any], in_channels: int) -> None:
    """Build the model once without training it, so that an unknown name or a keyword argument
    the model does not take fails before any data is loaded, and a model too large to train in
    this machine's memory is refused before any worker tries to allocate it (a suite asking for
    a hidden layer of 10^8 units failed every run separately, and one just under the memory
    would have been allocated once per worker). On the meta device it costs no memory; a model
    whose construction needs real tensors is built on the CPU instead."""
    try:
        with torch.device("meta"):
            model = build_model(name, dict(kwargs), num_classes=10, in_channels=in_channels)
    except Exception:  # noqa: BLE001 - the CPU build below raises the error that counts
        model = build_model(name, dict(kwargs), num_classes=10, in_channels=in_channels)
    params = sum(p.numel() for p in model.parameters() if not isinstance(p, nn.parameter.UninitializedParameter))
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if params * TRAINING_BYTES_PER_PARAM > memory:
        raise ValueError(f"{params:,} parameters: training them takes about "
                         f"{params * TRAINING_BYTES_PER_PARAM / 2**30:,.0f} GiB (weights, gradients, optimizer "
                         f"state, a copy), more than this machine's {memory / 2**30:.0f} GiB of memory")


@register_model("lenet300")
def lenet300(num_classes: int = 10, in_channels: int = 1, image_size: int = 28,
             hidden: tuple[int, int] = (300, 100)) -> nn.Module:
    """LeNet-300-100 (LeCun et al. 1998): a 784-300-100-10 ReLU MLP, 266,610 parameters."""
    h1, h2 = hidden
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(in_channels * image_size * image_size, h1), nn.ReLU(),
        nn.Linear(h1, h2), nn.ReLU(),
        nn.Linear(h2, num_classes),
    )


@register_model("lenet5")
def lenet5(num_classes: int = 10, in_channels: int = 1, width: float = 1.0) -> nn.Module:
    """LeNet-5, Caffe variant used in the pruning literature (Han et al. 2015): 431,080 parameters.

    conv5x5 20 - maxpool - conv5x5 50 - maxpool - fc 800-500 - ReLU - fc 500-10.
    """
    c1, c2, f = round(20 * width), round(50 * width), round(500 * width)
    return nn.Sequential(
        nn.Conv2d(in_channels, c1, 5), nn.MaxPool2d(2),
        nn.Conv2d(c1, c2, 5), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(c2 * 16, f), nn.ReLU(),
        nn.Linear(f, num_classes),
    )


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class GlobalAvgPool(nn.Module):
    """Mean over the spatial dimensions, as AdaptiveAvgPool2d(1) + Flatten computes it, but with
    a vmap batching rule in channels-last: bench.fused trains stacked ResNets through vmap, where
    AdaptiveAvgPool2d falls back to a loop over the stacked models."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean((2, 3))


class CifarResNet(nn.Module):
    """The CIFAR ResNets of He et al. 2016 (6n+2 layers, widths w, 2w, 4w).

    Stage transitions use 1x1 projection shortcuts (option B) rather than zero padding, so that
    structured-pruning tools can trace every layer; this adds 2,560 convolution weights and 192
    BatchNorm parameters to ResNet-20 (1% of its 272,474; tests/test_models.py counts them).
    """

    def __init__(self, depth: int = 20, width: int = 16, num_classes: int = 10, in_channels: int = 3):
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError(f"CIFAR ResNet depth must be 6n+2, got {depth}")
        n = (depth - 2) // 6
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, 1, 1, bias=False),
                                  nn.BatchNorm2d(width), nn.ReLU())
        layers, cin = [], width
        for stage, cout in enumerate((width, 2 * width, 4 * width)):
            for i in range(n):
                layers.append(BasicBlock(cin, cout, 2 if stage > 0 and i == 0 else 1))
                cin = cout
        self.layers = nn.Sequential(*layers)
        self.pool = GlobalAvgPool()
        self.fc = nn.Linear(cin, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.layers(self.stem(x))))


@register_model("resnet20")
def resnet20(num_classes: int = 10, in_channels: int = 3, width: int = 16, depth: int = 20) -> nn.Module:
    """ResNet-20 for CIFAR-10 (He et al. 2016): 3 stages of 3 basic blocks, 16/32/64 channels."""
    return CifarResNet(depth, width, num_classes, in_channels)
