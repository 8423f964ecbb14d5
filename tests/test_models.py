"""The parameter counts that bench/models.py's docstrings and the README's suite table state."""

from torch import nn

from bench.models import CifarResNet


def test_resnet20_projection_shortcuts_count_as_documented():
    model = CifarResNet()
    total = sum(p.numel() for p in model.parameters())
    shortcut = [m for name, m in model.named_modules() if ".shortcut." in name]
    conv = sum(m.weight.numel() for m in shortcut if isinstance(m, nn.Conv2d))
    bn = sum(p.numel() for m in shortcut if isinstance(m, nn.BatchNorm2d) for p in m.parameters())
    assert (total, conv, bn) == (272_474, 2_560, 192)
    assert round((conv + bn) / total, 2) == 0.01
