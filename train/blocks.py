"""Building blocks of the G2D networks (`train.model`): conv + BN + activation, the MobileNetV2 inverted residual,
an ONNX-friendly L2 normalisation and the weight initialisation."""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round a channel count to a multiple of ``divisor`` (at least ``divisor``), as MobileNets do."""
    return max(divisor, int(value + divisor / 2) // divisor * divisor)


def activation_layer(kind: str, channels: int) -> nn.Module:
    """The activation module called `kind` ("prelu", "relu6", else ReLU)."""
    if kind == "prelu":
        return nn.PReLU(channels)
    if kind == "relu6":
        return nn.ReLU6(inplace=True)
    return nn.ReLU(inplace=True)


class ConvBNAct(nn.Sequential):
    """Conv2d (no bias) + BatchNorm2d + optional activation."""

    def __init__(self, cin: int, cout: int, kernel: int | tuple[int, int] = 3, stride: int = 1, groups: int = 1,
                 activation: Optional[str] = "prelu") -> None:
        k = (kernel, kernel) if isinstance(kernel, int) else kernel
        layers: list[nn.Module] = [
            nn.Conv2d(cin, cout, k, stride, (k[0] // 2, k[1] // 2), groups=groups, bias=False),
            nn.BatchNorm2d(cout),
        ]
        if activation is not None:
            layers.append(activation_layer(activation, cout))
        super().__init__(*layers)


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand -> 3x3 depthwise (stride) -> 1x1 linear projection, residual when shapes match."""

    def __init__(self, cin: int, cout: int, stride: int, expansion: int, activation: str) -> None:
        super().__init__()
        hidden = cin * expansion
        layers: list[nn.Module] = []
        if expansion != 1:
            layers.append(ConvBNAct(cin, hidden, 1, activation=activation))
        layers += [ConvBNAct(hidden, hidden, 3, stride, groups=hidden, activation=activation),
                   ConvBNAct(hidden, cout, 1, activation=None)]
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout
        if self.residual:  # start as identity: deep stacks train faster from scratch
            nn.init.zeros_(self.block[-1][1].weight)

    def forward(self, x: Tensor) -> Tensor:
        y = self.block(x)
        return x + y if self.residual else y


def l2_normalize(x: Tensor, eps: float = 1e-12) -> Tensor:
    """Row-wise L2 normalisation of (N, D) with plain ops (Mul, ReduceSum, Max, Sqrt, Div) for clean ONNX/TensorRT."""
    return x / torch.sqrt((x * x).sum(dim=1, keepdim=True).clamp_min(eps))


def init_conv_bn_linear(module: nn.Module) -> None:
    """Kaiming-normal convolutions, truncated-normal linear layers, unit LayerNorms; zero biases."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
