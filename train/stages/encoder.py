"""Stage `encoder`: self-supervised finetuning of the generative encoder on masked faces (G2D's stage 1).

Starts from the `inpaint` stage's encoder + decoder and continues reconstruction, but as its own recipe
(`EncoderStageConfig`): a lower LR, masks on every face (`mask_prob` 1.0) drawn from every mask style, an optional
frozen decoder (so only the encoder adapts), and a masked-vs-clean consistency term that pulls the encoder's
descriptors of a masked face towards its descriptors of the clean face (stop-gradient target).
"""
from __future__ import annotations

import copy
from typing import Dict

from torch import nn

from ..config import EncoderStageConfig
from ..data import StageData
from .common import StageNet, set_trainable
from .inpaint import InpaintStage, ReconstructionNet


class EncoderStage(InpaintStage):
    """Finetune the encoder by masked reconstruction + descriptor consistency."""

    name = "encoder"
    previous = "inpaint"

    @property
    def stage_cfg(self) -> EncoderStageConfig:
        return self.cfg.stages.encoder

    def trains_decoder(self) -> bool:
        return not self.stage_cfg.freeze_decoder

    def encoder_lr_scale(self) -> float:
        return 1.0

    def extra_modules(self, modules: Dict[str, nn.Module], data: StageData) -> Dict[str, nn.Module]:
        """With `consistency_target: initial`, a frozen copy of the encoder as the stage starts (the target)."""
        if self.stage_cfg.consistency_target != "initial":
            return {}
        target = copy.deepcopy(modules["model"].encoder).eval()
        set_trainable(target, False)
        return {"target_encoder": target}

    def set_train_mode(self, modules: Dict[str, nn.Module]) -> None:
        super().set_train_mode(modules)
        if "target_encoder" in modules:
            modules["target_encoder"].eval()

    def build_net(self, modules: Dict[str, nn.Module], data: StageData) -> StageNet:
        return ReconstructionNet(modules["model"].encoder, modules["decoder"], self.stage_cfg.loss,
                                 consistency_weight=self.stage_cfg.consistency_weight,
                                 target_encoder=modules.get("target_encoder"))
