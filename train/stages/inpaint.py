"""Stage `inpaint`: the encoder and an inpainting decoder learn to reconstruct the clean face from a masked one.

Loss: `train.losses.InpaintingLoss` (L1 weighted on the masked region + SSIM) between the decoder's output and the
clean face, both in the model's [-1, 1] RGB space. The reformer is untouched. This is the generative pretraining of
G2D; the `encoder` stage continues from its final checkpoint.
"""
from __future__ import annotations

from typing import Dict, Iterable, List, Optional, Tuple

import torch
from torch import Tensor, nn

from ..data import StageData
from .common import Stage, StageNet, set_trainable


class ReconstructionNet(StageNet):
    """masked face -> encoder -> decoder -> reconstruction; InpaintingLoss against the clean face.

    consistency_weight > 0 adds a masked-vs-clean descriptor consistency term,
    1 - cos(descriptors(masked), stopgrad(target descriptors(clean))): the target is the encoder itself (masked and
    clean faces go through it as one batch) or, when given, `target_encoder` (a frozen copy, run without gradient).
    train_encoder False runs the encoder without gradient (only the decoder learns).
    """

    def __init__(self, encoder: nn.Module, decoder: nn.Module, loss_kwargs: Optional[dict] = None,
                 consistency_weight: float = 0.0, target_encoder: Optional[nn.Module] = None,
                 train_encoder: bool = True) -> None:
        """loss_kwargs: `train.losses.InpaintingWeights` fields (l1, mask_weight, ssim)."""
        super().__init__()
        from ..losses import InpaintingLoss, InpaintingWeights

        self.encoder = encoder
        self.decoder = decoder
        self.loss = InpaintingLoss(InpaintingWeights(**(loss_kwargs or {})))
        self.consistency_weight = float(consistency_weight)
        self.target_encoder = target_encoder
        self.train_encoder = train_encoder

    def _descriptors(self, masked: Tensor, clean: Tensor) -> Tuple[Tensor, Optional[Tensor]]:
        """Encoder descriptors of the masked faces and (with a consistency term) the target's of the clean ones."""
        with torch.set_grad_enabled(self.train_encoder and torch.is_grad_enabled()):
            if self.consistency_weight > 0 and self.target_encoder is None:
                desc = self.encoder(torch.cat([masked, clean]))
                return desc[:masked.shape[0]], desc[masked.shape[0]:].detach()
            desc_masked = self.encoder(masked)
        if self.consistency_weight <= 0:
            return desc_masked, None
        with torch.no_grad():
            return desc_masked, self.target_encoder(clean)

    def forward(self, batch: Dict[str, Tensor]) -> Tuple[Tensor, Dict[str, Tensor]]:
        masked = self.preprocess(batch["masked"])
        clean = self.preprocess(batch["clean"])
        region = batch["region"].to(masked.dtype).unsqueeze(1)
        desc_masked, desc_clean = self._descriptors(masked, clean)
        recon = self.decoder(desc_masked)
        with torch.autocast(device_type=recon.device.type, enabled=False):
            terms = self.loss.terms(recon.float(), clean, region)
            w = self.loss.weights
            total = w.l1 * terms["l1"] + w.ssim * terms.get("ssim", 0.0)
            terms = {k: v.detach() for k, v in terms.items()}
            if desc_clean is not None:
                a = nn.functional.normalize(desc_masked.float().flatten(1), dim=1)
                b = nn.functional.normalize(desc_clean.float().flatten(1), dim=1)
                consistency = (1.0 - (a * b).sum(dim=1)).mean()
                terms = {"reconstruction": total.detach(), **terms, "consistency": consistency.detach()}
                total = total + self.consistency_weight * consistency
        return total, terms


class InpaintStage(Stage):
    """Generative pretraining: encoder + decoder reconstruct clean faces from masked ones (fresh weights).

    The `encoder` stage continues it (`EncoderStage` subclasses it), with its own recipe.
    """

    name = "inpaint"
    previous = None

    def keeps_decoder(self) -> bool:
        return True

    def trains_decoder(self) -> bool:
        """Whether the decoder learns along with the encoder (else it stays fixed, in eval mode)."""
        return True

    def encoder_lr_scale(self) -> float:
        """The encoder's LR relative to the stage's (0: frozen, in eval mode)."""
        return self.stage_cfg.encoder_lr_scale

    def prepare(self, modules: Dict[str, nn.Module], data: StageData, device: torch.device) -> None:
        model = modules["model"]
        set_trainable(model, False)
        set_trainable(model.encoder, self.encoder_lr_scale() > 0)
        set_trainable(modules["decoder"], self.trains_decoder())

    def trainable(self, modules: Dict[str, nn.Module]) -> List[Tuple[Iterable[nn.Parameter], float]]:
        groups = []
        if self.encoder_lr_scale() > 0:
            groups.append((modules["model"].encoder.parameters(), self.encoder_lr_scale()))
        if self.trains_decoder():
            groups.append((modules["decoder"].parameters(), 1.0))
        return groups

    def set_train_mode(self, modules: Dict[str, nn.Module]) -> None:
        model = modules["model"]
        model.eval()
        model.encoder.train(self.encoder_lr_scale() > 0)
        modules["decoder"].train(self.trains_decoder())

    def build_net(self, modules: Dict[str, nn.Module], data: StageData) -> StageNet:
        return ReconstructionNet(modules["model"].encoder, modules["decoder"], self.stage_cfg.loss,
                                 train_encoder=self.encoder_lr_scale() > 0)
