"""Stage `reformer`: generative descriptors -> discriminative embeddings by relation distillation (G2D's stage 2).

The encoder is frozen (eval mode, no gradient), unless `encoder_lr_scale` > 0 lets it adapt at a lower LR. The student sees the *masked* face (with probability `mask_prob`,
else the clean one); the teacher's embedding of the *clean* face comes from a teacher cache (rows where the teacher
failed are skipped). Loss: `train.losses.RelationDistillationLoss` (distance- and angle-wise relations, teacher
centred on the mean of the training rows and renormalised). Data may combine several sources (e.g. the labelled
training identities + the unlabelled pool); held-out identities are excluded.
"""
from __future__ import annotations

from typing import Any, Dict, Iterable, List, Optional, Tuple

import numpy as np
import torch
from torch import Tensor, nn

from ..data import StageData, build_stage_data
from .common import Stage, StageNet, set_trainable


def build_distillation_loss(loss_kwargs: Dict[str, Any], teacher_mean: Optional[np.ndarray], student_dim: int,
                            teacher_dim: int) -> nn.Module:
    """`RelationDistillationLoss` with `RelationWeights(**loss_kwargs)`, centring the teacher on `teacher_mean`.

    With a cosine term and different dimensions the loss owns a learned projection (trained with the reformer).
    """
    from ..losses import RelationDistillationLoss, RelationWeights

    mean = None if teacher_mean is None else torch.as_tensor(np.asarray(teacher_mean, np.float32))
    return RelationDistillationLoss(RelationWeights(**loss_kwargs), teacher_mean=mean, student_dim=student_dim,
                                    teacher_dim=teacher_dim)


class DistillationNet(StageNet):
    """masked face -> frozen encoder -> reformer -> embedding; relation distillation against the teacher rows."""

    def __init__(self, encoder: nn.Module, reformer: nn.Module, loss: nn.Module, train_encoder: bool = False) -> None:
        super().__init__()
        self.encoder = encoder
        self.reformer = reformer
        self.loss = loss
        self.train_encoder = train_encoder

    def forward(self, batch: Dict[str, Tensor]) -> Tuple[Tensor, Dict[str, Tensor]]:
        with torch.set_grad_enabled(self.train_encoder and torch.is_grad_enabled()):
            desc = self.encoder(self.preprocess(batch["masked"]))
        emb = self.reformer(desc)
        with torch.autocast(device_type=emb.device.type, enabled=False):
            terms = self.loss.terms(emb.float(), batch["teacher"].float())
            total = self.loss.combine(terms)
        return total, {k: v.detach() for k, v in terms.items()}


class ReformerStage(Stage):
    """Train the reformer by relation distillation from a teacher cache; the encoder stays frozen."""

    name = "reformer"
    previous = "encoder"

    def default_sources(self) -> List[str]:
        """Every source that has a teacher cache."""
        return [s.name for s in self.cfg.data.sources if s.teacher]

    def build_data(self) -> StageData:
        return build_stage_data(self.cfg.data, self.source_names(), self.augment_options(), self.stage_cfg.seed,
                                need_teacher=True)

    def prepare(self, modules: Dict[str, nn.Module], data: StageData, device: torch.device) -> None:
        model = modules["model"]
        set_trainable(model, False)
        set_trainable(model.reformer, True)
        if self._train_encoder:
            set_trainable(model.encoder, True)

    @property
    def _train_encoder(self) -> bool:
        return self.stage_cfg.encoder_lr_scale > 0

    def trainable(self, modules: Dict[str, nn.Module]) -> List[Tuple[Iterable[nn.Parameter], float]]:
        groups = [(modules["model"].reformer.parameters(), 1.0)]
        if self._train_encoder:
            groups.append((modules["model"].encoder.parameters(), self.stage_cfg.encoder_lr_scale))
        if "distillation" in modules:  # the cosine term's projection, when it has one
            groups.append((modules["distillation"].parameters(), 1.0))
        return groups

    def set_train_mode(self, modules: Dict[str, nn.Module]) -> None:
        model = modules["model"]
        model.eval()
        model.reformer.train()
        if self._train_encoder:
            model.encoder.train()

    def extra_modules(self, modules: Dict[str, nn.Module], data: StageData) -> Dict[str, nn.Module]:
        """The distillation loss (teacher-mean buffer, optional projection): checkpointed so a resume is exact."""
        model = modules["model"]
        return {"distillation": build_distillation_loss(self.stage_cfg.loss, data.teacher_mean,
                                                        model.config.embedding_dim,
                                                        int(data.summary.get("teacher_dim", 0)))}

    def build_net(self, modules: Dict[str, nn.Module], data: StageData) -> StageNet:
        model = modules["model"]
        return DistillationNet(model.encoder, model.reformer, modules["distillation"], self._train_encoder)

    def extra_meta(self, modules: Dict[str, nn.Module], data: StageData) -> Dict[str, Any]:
        mean = data.teacher_mean
        return {"teacher_mean": [] if mean is None else [float(v) for v in mean]}
