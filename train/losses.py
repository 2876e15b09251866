"""Losses of the G2D stages.

* **Inpainting** (generative pretraining): L1 on pixels with extra weight inside the synthetic-mask region, plus an SSIM
  term (gaussian window) — :class:`InpaintingLoss`, :func:`masked_l1`, :func:`ssim`.
* **Relation distillation** (reformer stage; relational knowledge distillation, Park et al., CVPR 2019): the student
  copies the *relations* between the faces of a batch as the teacher sees them — distance-wise (pairwise distances
  normalised by their mean, Huber / smooth-L1), angle-wise (cosines of the angles of every triplet), and the batch's
  cosine-similarity matrix — plus an optional direct cosine term. Student (N, Ds) and teacher (N, Dt) may differ in
  dimension. Teacher vectors are centred on a given mean and renormalised first: dlib's descriptors sit in a narrow
  cone (cosine ~0.92 with their mean), which otherwise dominates every relation. :class:`RelationDistillationLoss`.
* **Classification** (classifier stage): ``torch.nn.functional.cross_entropy`` on the model's logits, or a margin
  softmax (CosFace / ArcFace) on normalised weights — :class:`MarginSoftmaxLoss` with :func:`fold_cosine_classifier_`
  so that the exported ``nn.Linear`` gives exactly the logits the loss trained on.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from g2d_edge.errors import InputError

__all__ = [
    "center_teacher",
    "pairwise_distances",
    "distance_relation_loss",
    "angle_relation_loss",
    "similarity_relation_loss",
    "cosine_loss",
    "RelationWeights",
    "RelationDistillationLoss",
    "gaussian_window",
    "ssim",
    "masked_l1",
    "InpaintingWeights",
    "InpaintingLoss",
    "MarginSoftmaxLoss",
    "fold_cosine_classifier_",
]


# ---------------------------------------------------------------------------------------------- relation distillation
def _normalize(x: Tensor, eps: float = 1e-12) -> Tensor:
    return F.normalize(x, dim=-1, eps=eps)


def _check_pair(student: Tensor, teacher: Tensor, min_batch: int) -> None:
    if student.ndim != 2 or teacher.ndim != 2:
        raise InputError(f"student and teacher must be (N, D) matrices, got {tuple(student.shape)} and "
                         f"{tuple(teacher.shape)}")
    if student.shape[0] != teacher.shape[0]:
        raise InputError(f"student and teacher batch sizes differ: {student.shape[0]} vs {teacher.shape[0]}")
    if student.shape[0] < min_batch:
        raise InputError(f"relation losses need at least {min_batch} samples per batch, got {student.shape[0]}")


def center_teacher(teacher: Tensor, mean: Optional[Tensor] = None) -> Tensor:
    """Subtract ``mean`` (D,) from every teacher vector (N, D), then L2-normalise the rows (plain normalisation when
    ``mean`` is None). Compute ``mean`` once over the training set's teacher vectors (NaN rows excluded)."""
    if mean is not None:
        if mean.shape != teacher.shape[-1:]:
            raise InputError(f"teacher mean has shape {tuple(mean.shape)}, expected ({teacher.shape[-1]},)")
        teacher = teacher - mean.to(dtype=teacher.dtype, device=teacher.device)
    return _normalize(teacher)


def pairwise_distances(x: Tensor, eps: float = 1e-12) -> Tensor:
    """Euclidean distance matrix (N, N) of the rows of x, zero diagonal; gradients are finite everywhere."""
    sq = (x * x).sum(dim=1)
    d2 = (sq.unsqueeze(0) + sq.unsqueeze(1) - 2.0 * (x @ x.t())).clamp_min(eps)
    d = d2.sqrt()
    return d * (1.0 - torch.eye(x.shape[0], dtype=x.dtype, device=x.device))


def _off_diagonal(m: Tensor) -> Tensor:
    n = m.shape[0]
    return m.flatten()[1:].view(n - 1, n + 1)[:, :-1].flatten()


def distance_relation_loss(student: Tensor, teacher: Tensor) -> Tensor:
    """RKD distance-wise loss: smooth-L1 between the pairwise-distance matrices, each divided by its mean off-diagonal
    distance. Invariant to scaling, rotation and translation of either set; 0 when the relations are identical."""
    _check_pair(student, teacher, 2)
    with torch.no_grad():
        t = _off_diagonal(pairwise_distances(teacher))
        t = t / t.mean().clamp_min(1e-12)
    s = _off_diagonal(pairwise_distances(student))
    s = s / s.mean().clamp_min(1e-12)
    return F.smooth_l1_loss(s, t)


def _angles(x: Tensor) -> Tensor:
    diff = _normalize(x.unsqueeze(0) - x.unsqueeze(1))  # (N, N, D): unit vector from j to i, zero on the diagonal
    return torch.bmm(diff, diff.transpose(1, 2)).flatten()  # cos of the angle at each vertex of each triplet


def angle_relation_loss(student: Tensor, teacher: Tensor, max_items: Optional[int] = 64) -> Tensor:
    """RKD angle-wise loss: smooth-L1 between the cosines of the angles of all triplets of the batch.

    O(N^2 D + N^3): with ``max_items`` only the first ``max_items`` rows take part (batches are shuffled, so this is
    a random subset). Invariant to scaling, rotation and translation; 0 when the relations are identical.
    """
    _check_pair(student, teacher, 3)
    if max_items is not None and student.shape[0] > max_items:
        student, teacher = student[:max_items], teacher[:max_items]
    with torch.no_grad():
        t = _angles(teacher)
    return F.smooth_l1_loss(_angles(student), t)


def similarity_relation_loss(student: Tensor, teacher: Tensor) -> Tensor:
    """Mean squared difference between the off-diagonal cosine-similarity matrices of the batch (rows are
    L2-normalised first). Invariant to rotations and per-row scaling; 0 when the relations are identical."""
    _check_pair(student, teacher, 2)
    s, t = _normalize(student), _normalize(teacher)
    return F.mse_loss(_off_diagonal(s @ s.t()), _off_diagonal((t @ t.t()).detach()))


def cosine_loss(student: Tensor, teacher: Tensor) -> Tensor:
    """Mean ``1 - cos(student_i, teacher_i)``; needs equal dimensions."""
    _check_pair(student, teacher, 1)
    if student.shape[1] != teacher.shape[1]:
        raise InputError(f"cosine loss needs equal dimensions, got {student.shape[1]} and {teacher.shape[1]}")
    return (1.0 - (_normalize(student) * _normalize(teacher.detach())).sum(dim=1)).mean()


@dataclass
class RelationWeights:
    """Weights of the relation-distillation terms (0 switches a term off). Park et al. use distance 1, angle 2."""

    distance: float = 1.0
    angle: float = 2.0
    similarity: float = 1.0
    cosine: float = 0.0  #: direct cosine to the centred teacher (through a learned projection when dims differ)
    angle_max_items: int = 64  #: rows used by the O(N^3) angle term
    #: centre the teacher on the training mean before every term (for teachers in a narrow cone, like dlib's). Off
    #: when the student starts as the teacher itself (SFace's weights): its outputs are the raw teacher vectors.
    center: bool = True


class RelationDistillationLoss(nn.Module):
    """Weighted relation distillation between student embeddings (N, Ds) and teacher embeddings (N, Dt).

    The teacher is centred on ``teacher_mean`` (a buffer, saved with the state dict) and renormalised before every
    term. With ``weights.cosine > 0`` and ``student_dim != teacher_dim`` a bias-free ``nn.Linear(student_dim,
    teacher_dim)`` projection is learned for the cosine term: add this module's parameters to the optimiser.
    Rows with NaN in the teacher must be dropped by the caller.
    """

    def __init__(self, weights: Optional[RelationWeights] = None, teacher_mean: Optional[Tensor] = None,
                 student_dim: Optional[int] = None, teacher_dim: Optional[int] = None) -> None:
        super().__init__()
        self.weights = weights or RelationWeights()
        self.register_buffer("teacher_mean", None if teacher_mean is None else teacher_mean.detach().float().clone())
        self.projection: Optional[nn.Linear] = None
        if self.weights.cosine > 0 and student_dim is not None and teacher_dim is not None \
                and student_dim != teacher_dim:
            self.projection = nn.Linear(student_dim, teacher_dim, bias=False)

    def terms(self, student: Tensor, teacher: Tensor) -> dict[str, Tensor]:
        """Unweighted value of every term whose weight is non-zero (keys: distance, angle, similarity, cosine)."""
        if not torch.isfinite(teacher).all():
            raise InputError("teacher embeddings contain NaN/inf rows: drop the rows the teacher failed on")
        w = self.weights
        t = center_teacher(teacher, self.teacher_mean if w.center else None)
        out: dict[str, Tensor] = {}
        if w.distance:
            out["distance"] = distance_relation_loss(student, t)
        if w.angle:
            out["angle"] = angle_relation_loss(student, t, w.angle_max_items)
        if w.similarity:
            out["similarity"] = similarity_relation_loss(student, t)
        if w.cosine:
            s = self.projection(student) if self.projection is not None else student
            if s.shape[1] != t.shape[1]:
                raise InputError(f"cosine term needs equal dims ({s.shape[1]} vs {t.shape[1]}): pass student_dim "
                                 "and teacher_dim so a projection is learned, or set weights.cosine = 0")
            out["cosine"] = cosine_loss(s, t)
        return out

    def combine(self, terms: dict[str, Tensor]) -> Tensor:
        """Weighted sum of :meth:`terms`' output."""
        total = sum(getattr(self.weights, name) * value for name, value in terms.items())
        if not isinstance(total, Tensor):
            raise InputError("every relation-distillation weight is 0: nothing to optimise")
        return total

    def forward(self, student: Tensor, teacher: Tensor) -> Tensor:
        """Weighted total loss (a scalar)."""
        return self.combine(self.terms(student, teacher))


# -------------------------------------------------------------------------------------------------------- inpainting
def gaussian_window(size: int = 11, sigma: float = 1.5, channels: int = 3, dtype: torch.dtype = torch.float32,
                    device: Optional[torch.device] = None) -> Tensor:
    """Normalised 2-D gaussian kernel as a depthwise conv weight (channels, 1, size, size)."""
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2.0
    g = torch.exp(-(coords ** 2) / (2.0 * sigma ** 2))
    g = g / g.sum()
    window = torch.outer(g, g).to(dtype=dtype, device=device)
    return window.expand(channels, 1, size, size).contiguous()


def ssim(x: Tensor, y: Tensor, data_range: float = 2.0, window_size: int = 11, sigma: float = 1.5,
         reduction: str = "mean") -> Tensor:
    """Structural similarity (Wang et al. 2004) of (N, C, H, W) images with a gaussian window (valid convolution),
    constants K1 = 0.01, K2 = 0.03. ``data_range`` is 2 for images in [-1, 1]. ``reduction``: "mean" (scalar) or
    "none" (one value per image). Identical images give 1."""
    if x.shape != y.shape or x.ndim != 4:
        raise InputError(f"ssim needs two (N, C, H, W) tensors of equal shape, got {tuple(x.shape)} and "
                         f"{tuple(y.shape)}")
    if min(x.shape[-2:]) < window_size:
        raise InputError(f"images of {tuple(x.shape[-2:])} px are smaller than the {window_size}-px SSIM window")
    c = x.shape[1]
    w = gaussian_window(window_size, sigma, c, x.dtype, x.device)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2

    def blur(t: Tensor) -> Tensor:
        return F.conv2d(t, w, groups=c)

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x * mu_x
    var_y = blur(y * y) - mu_y * mu_y
    cov = blur(x * y) - mu_x * mu_y
    num = (2.0 * mu_x * mu_y + c1) * (2.0 * cov + c2)
    den = (mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2)
    per_image = (num / den).flatten(1).mean(dim=1)
    if reduction == "none":
        return per_image
    if reduction == "mean":
        return per_image.mean()
    raise InputError(f"ssim reduction must be 'mean' or 'none', got {reduction!r}")


def _mask_as_nchw(mask: Tensor, like: Tensor) -> Tensor:
    if mask.ndim == 3:
        mask = mask.unsqueeze(1)
    if mask.ndim != 4 or mask.shape[0] != like.shape[0] or mask.shape[-2:] != like.shape[-2:] \
            or mask.shape[1] not in (1, like.shape[1]):
        raise InputError(f"mask must be (N, H, W) or (N, 1, H, W) matching images {tuple(like.shape)}, "
                         f"got {tuple(mask.shape)}")
    return mask.to(like.dtype)


def masked_l1(pred: Tensor, target: Tensor, mask: Tensor, mask_weight: float = 6.0) -> Tensor:
    """Weighted mean absolute error: pixels inside ``mask`` (1 = masked region) weigh ``mask_weight``, others 1;
    the result is normalised by the total weight, so a uniform error e gives e whatever the mask's size."""
    if pred.shape != target.shape:
        raise InputError(f"prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape")
    m = _mask_as_nchw(mask, pred)
    weight = (1.0 + (mask_weight - 1.0) * m).expand_as(pred)
    return (weight * (pred - target).abs()).sum() / weight.sum()


@dataclass
class InpaintingWeights:
    """Weights of the inpainting loss: ``l1 * masked_l1(mask_weight) + ssim * (1 - SSIM)``."""

    l1: float = 1.0
    mask_weight: float = 6.0  #: relative weight of an L1 error inside the mask region
    ssim: float = 0.2


class InpaintingLoss(nn.Module):
    """Inpainting reconstruction loss on images in [-1, 1]: mask-weighted L1 + SSIM term."""

    def __init__(self, weights: Optional[InpaintingWeights] = None) -> None:
        super().__init__()
        self.weights = weights or InpaintingWeights()

    def terms(self, pred: Tensor, target: Tensor, mask: Tensor) -> dict[str, Tensor]:
        """Unweighted terms: ``l1`` (mask-weighted) and ``ssim`` (1 - SSIM)."""
        out = {"l1": masked_l1(pred, target, mask, self.weights.mask_weight)}
        if self.weights.ssim:
            out["ssim"] = 1.0 - ssim(pred, target, data_range=2.0)
        return out

    def forward(self, pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
        """pred, target (N, 3, H, W) in [-1, 1]; mask (N, H, W) or (N, 1, H, W), 1 inside the masked region."""
        terms = self.terms(pred, target, mask)
        return self.weights.l1 * terms["l1"] + self.weights.ssim * terms.get("ssim", 0.0)


# ---------------------------------------------------------------------------------------------------- classification
class MarginSoftmaxLoss(nn.Module):
    """CosFace (``kind="cosface"``: s * (cos - m) on the target) or ArcFace (``"arcface"``: s * cos(theta + m)) on the
    cosines between unit embeddings and the L2-normalised rows of a classifier ``nn.Linear`` (its bias is ignored).
    Call :func:`fold_cosine_classifier_` after training so that the Linear outputs ``s * cos`` at inference."""

    def __init__(self, scale: float = 30.0, margin: float = 0.35, kind: str = "cosface",
                 label_smoothing: float = 0.0) -> None:
        super().__init__()
        if kind not in ("cosface", "arcface"):
            raise InputError(f"margin softmax kind must be 'cosface' or 'arcface', got {kind!r}")
        self.scale, self.margin, self.kind, self.label_smoothing = scale, margin, kind, label_smoothing

    def cosines(self, embedding: Tensor, classifier: nn.Linear) -> Tensor:
        """(N, C) cosines between the embeddings and the class weight vectors."""
        return F.linear(F.normalize(embedding, dim=1), F.normalize(classifier.weight, dim=1))

    def forward(self, embedding: Tensor, classifier: nn.Linear, labels: Tensor) -> Tensor:
        """embedding (N, D), labels (N,) int64 -> scalar loss."""
        cos = self.cosines(embedding, classifier).clamp(-1.0, 1.0)
        onehot = F.one_hot(labels, cos.shape[1]).to(cos.dtype)
        if self.kind == "cosface":
            target = cos - self.margin
        else:
            m = self.margin
            sin = (1.0 - cos * cos).clamp_min(1e-7).sqrt()
            phi = cos * math.cos(m) - sin * math.sin(m)
            # keep the target logit monotonic in theta beyond pi - m (InsightFace's "easy margin off" rule)
            target = torch.where(cos > math.cos(math.pi - m), phi, cos - math.sin(math.pi - m) * m)
        logits = self.scale * (onehot * target + (1.0 - onehot) * cos)
        return F.cross_entropy(logits, labels, label_smoothing=self.label_smoothing)


@torch.no_grad()
def fold_cosine_classifier_(classifier: nn.Linear, scale: float = 30.0) -> nn.Linear:
    """In place: weight <- scale * row-normalised weight, bias <- 0, so ``classifier(unit_embedding)`` equals the
    ``scale * cos`` logits a :class:`MarginSoftmaxLoss` was trained on (argmax and softmax as in training)."""
    classifier.weight.copy_(scale * F.normalize(classifier.weight, dim=1))
    if classifier.bias is not None:
        classifier.bias.zero_()
    return classifier
