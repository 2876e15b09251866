"""Stage `encoder`: self-supervised finetuning of the generative encoder on masked faces (G2D's stage 1).

Starts from the `inpaint` stage's encoder + decoder and continues reconstruction, but as its own recipe
(`EncoderStageConfig`): a lower LR, masks on every face (`mask_prob` 1.0) drawn from every mask style, an optional
frozen decoder (so only the encoder adapts), and a masked-vs-clean consistency term that pulls the encoder's
descriptors of a masked face towards its descriptors of the clean face (stop-gradient target).
"""
from __future__ import annotations

from typing import Dict, Iterable, List, Tuple

import torch
from torch import nn

from ..config import EncoderStageConfig
from ..data import StageData
from .common import Stage, StageNet, set_trainable
from .inpaint import ReconstructionNet


class EncoderStage(Stage):
    """Finetune the encoder by masked reconstruction + descriptor consistency."""

    name = "encoder"
    previous = "inpaint"

    @property
    def stage_cfg(self) -> EncoderStageConfig:
        return self.cfg.stages.encoder

    def keeps_decoder(self) -> bool:
        return True

    def prepare(self, modules: Dict[str, nn.Module], data: StageData, device: torch.device) -> None:
        model = modules["model"]
        set_trainable(model, False)
        set_trainable(model.encoder, True)
        set_trainable(modules["decoder"], not self.stage_cfg.freeze_decoder)

    def trainable(self, modules: Dict[str, nn.Module]) -> List[Tuple[Iterable[nn.Parameter], float]]:
        groups = [(modules["model"].encoder.parameters(), 1.0)]
        if not self.stage_cfg.freeze_decoder:
            groups.append((modules["decoder"].parameters(), 1.0))
        return groups

    def set_train_mode(self, modules: Dict[str, nn.Module]) -> None:
        model = modules["model"]
        model.eval()
        model.encoder.train()
        modules["decoder"].train(not self.stage_cfg.freeze_decoder)

    def build_net(self, modules: Dict[str, nn.Module], data: StageData) -> StageNet:
        return ReconstructionNet(modules["model"].encoder, modules["decoder"], self.stage_cfg.loss,
                                 consistency_weight=self.stage_cfg.consistency_weight)
