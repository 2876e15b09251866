"""Stage `classifier`: FC + softmax over the labelled training identities on the reformed embeddings (stage 3).

The only stage that uses identity labels. `num_classes` is the number of labelled training identities (held-out
people excluded) and the checkpoint meta records their names (`class_names`, the logits' order). By default only
the FC layer learns (encoder + reformer frozen, in eval mode); `finetune: true` also trains them at
`lr * finetune_lr_scale`. When identities are held out, the final checkpoint also gets the default verification
threshold and validation metrics measured on them (`train.eval.threshold.calibrate_threshold`).
"""
from __future__ import annotations

from typing import Any, Dict, Iterable, List, Tuple

import torch
from torch import Tensor, nn

from ..config import ClassifierStageConfig
from ..data import StageData, build_stage_data
from ..model import Preprocess
from .common import Runtime, Stage, StageNet, set_trainable


class ClassificationNet(StageNet):
    """face (masked with probability mask_prob) -> embedding -> FC logits; label-smoothed cross-entropy, or a margin
    softmax (CosFace / ArcFace) on the normalised FC weights. Batch accuracy is reported as a term."""

    def __init__(self, model: nn.Module, finetune: bool, label_smoothing: float, head: str = "softmax",
                 margin: float = 0.35, margin_scale: float = 30.0) -> None:
        super().__init__()
        from ..losses import MarginSoftmaxLoss

        self.model = model
        self.finetune = finetune
        self.head = head
        self.ce = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
        self.margin_loss = (MarginSoftmaxLoss(margin_scale, margin, head, label_smoothing)
                            if head != "softmax" else None)

    def forward(self, batch: Dict[str, Tensor]) -> Tuple[Tensor, Dict[str, Tensor]]:
        x = self.preprocess(batch["masked"])
        if self.finetune:
            emb = self.model.embed(x)
        else:
            with torch.no_grad():
                emb = self.model.embed(x)
        labels = batch["label"]
        with torch.autocast(device_type=emb.device.type, enabled=False):
            emb = emb.float()
            if self.margin_loss is None:
                logits = self.model.classifier(emb)
                loss = self.ce(logits, labels)
            else:
                logits = self.margin_loss.cosines(emb, self.model.classifier)
                loss = self.margin_loss(emb, self.model.classifier, labels)
        acc = (logits.detach().argmax(dim=1) == labels).float().mean()
        return loss, {"acc": acc}


@torch.no_grad()
def class_prototypes(model: nn.Module, data: StageData, num_classes: int, device: torch.device,
                     batch_size: int = 256) -> Tensor:
    """Unit-norm mean embedding of each class over the clean training faces (no augmentation), (C, D)."""
    from ..data import AlignedFaceDataset, ImageFolderDataset

    model.eval()
    pre = Preprocess().to(device)
    dim = model.config.embedding_dim
    sums = torch.zeros(num_classes, dim, dtype=torch.float64, device=device)
    for part in data.dataset.datasets:
        if isinstance(part, AlignedFaceDataset):
            rows = part.rows
            images, labels = part.cache.images, part.labels
            for s in range(0, len(rows), batch_size):
                r = rows[s:s + batch_size]
                emb = model.embed(pre(torch.from_numpy(images[r]).to(device))).double()
                lab = torch.from_numpy(labels[r]).to(device)
                ok = lab >= 0
                sums.index_add_(0, lab[ok], emb[ok])
        elif isinstance(part, ImageFolderDataset):
            for i in range(len(part)):
                crop, _, _ = part.aligner(part.paths[i])
                if crop is None or part.labels[i] < 0:
                    continue
                emb = model.embed(pre(torch.from_numpy(crop[None]).to(device))).double()
                sums[int(part.labels[i])] += emb[0]
    return nn.functional.normalize(sums, dim=1).float()


class ClassifierStage(Stage):
    """Train the identity classifier (optionally finetuning the whole network)."""

    name = "classifier"
    previous = "reformer"

    @property
    def stage_cfg(self) -> ClassifierStageConfig:
        return self.cfg.stages.classifier

    def default_sources(self) -> List[str]:
        """Every labelled source."""
        return [s.name for s in self.cfg.data.sources if s.labelled]

    def build_data(self) -> StageData:
        return build_stage_data(self.cfg.data, self.source_names(), self.augment_options(), self.stage_cfg.seed,
                                need_labels=True)

    def prepare(self, modules: Dict[str, nn.Module], data: StageData, device: torch.device) -> None:
        model = modules["model"]
        sc = self.stage_cfg
        n = len(data.class_names)
        weight = None
        if sc.prototype_init:
            weight = sc.prototype_scale * class_prototypes(model, data, n, device)
        model.set_num_classes(n, weight=weight)
        set_trainable(model, sc.finetune)
        set_trainable(model.classifier, True)

    def trainable(self, modules: Dict[str, nn.Module]) -> List[Tuple[Iterable[nn.Parameter], float]]:
        model = modules["model"]
        groups: List[Tuple[Iterable[nn.Parameter], float]] = [(model.classifier.parameters(), 1.0)]
        if self.stage_cfg.finetune:
            groups += [(model.encoder.parameters(), self.stage_cfg.finetune_lr_scale),
                       (model.reformer.parameters(), self.stage_cfg.finetune_lr_scale)]
        return groups

    def set_train_mode(self, modules: Dict[str, nn.Module]) -> None:
        model = modules["model"]
        model.train(self.stage_cfg.finetune)
        model.classifier.train()

    def build_net(self, modules: Dict[str, nn.Module], data: StageData) -> StageNet:
        sc = self.stage_cfg
        return ClassificationNet(modules["model"], sc.finetune, sc.label_smoothing, sc.head, sc.margin,
                                 sc.margin_scale)

    def extra_meta(self, modules: Dict[str, nn.Module], data: StageData) -> Dict[str, Any]:
        return {"class_names": list(data.class_names), "num_classes": len(data.class_names)}

    def finish(self, modules: Dict[str, nn.Module], data: StageData, rt: Runtime) -> Dict[str, Any]:
        if not rt.is_main:
            return {}
        from ..eval.threshold import calibrate_threshold

        if self.stage_cfg.head != "softmax":  # the exported Linear must give the scaled cosines trained on
            from ..losses import fold_cosine_classifier_

            fold_cosine_classifier_(modules["model"].classifier, self.stage_cfg.margin_scale)
        meta = {"class_names": list(data.class_names), "stage": self.name}
        return calibrate_threshold(modules["model"], meta, self.cfg, rt.device)
