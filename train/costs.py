"""What a network costs: parameters and FLOPs / MACs of one forward pass (see `train.model`'s FLOP convention)."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (all, or only those with ``requires_grad``)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def count_flops(module: nn.Module, input_shape: Sequence[int], dtype: torch.dtype = torch.float32) -> int:
    """FLOPs of one forward pass on a zero input of ``input_shape`` (batch included), in eval mode.

    Counted by ``torch.utils.flop_counter.FlopCounterMode``: 2 FLOPs per multiply-add of conv / linear / matmul;
    BN, activations, softmax and pooling are not counted. Divide by the batch size for a per-face figure.
    """
    from torch.utils.flop_counter import FlopCounterMode

    was_training = module.training
    ref = next(iter(module.parameters()), None)
    device = ref.device if ref is not None else torch.device("cpu")
    x = torch.zeros(tuple(input_shape), dtype=dtype, device=device)
    module.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            module(x)
    finally:
        module.train(was_training)
    return int(counter.get_total_flops())


def count_macs(module: nn.Module, input_shape: Sequence[int], dtype: torch.dtype = torch.float32) -> int:
    """Multiply-accumulates of one forward pass (``count_flops / 2``)."""
    return count_flops(module, input_shape, dtype) // 2
