"""Tests of train/losses.py: relation distillation invariances, inpainting terms, margin softmax."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from g2d_edge.errors import InputError
from train.losses import (
    InpaintingLoss,
    InpaintingWeights,
    MarginSoftmaxLoss,
    RelationDistillationLoss,
    RelationWeights,
    angle_relation_loss,
    center_teacher,
    distance_relation_loss,
    fold_cosine_classifier_,
    masked_l1,
    pairwise_distances,
    similarity_relation_loss,
    ssim,
)

RELATIONS = (distance_relation_loss, angle_relation_loss, similarity_relation_loss)


@pytest.fixture()
def teacher() -> torch.Tensor:
    torch.manual_seed(0)
    return F.normalize(torch.randn(12, 16, dtype=torch.float64), dim=1)


def _orthonormal(rows: int, cols: int) -> torch.Tensor:
    q, _ = torch.linalg.qr(torch.randn(rows, cols, dtype=torch.float64))
    return q  # (rows, cols) with orthonormal columns


@pytest.mark.parametrize("loss", RELATIONS)
def test_relation_losses_are_exactly_zero_for_identical_inputs(teacher: torch.Tensor, loss) -> None:
    assert loss(teacher.clone(), teacher).item() == 0.0


@pytest.mark.parametrize("loss", RELATIONS)
def test_relation_losses_vanish_for_scaled_and_rotated_copies(teacher: torch.Tensor, loss) -> None:
    rotation = _orthonormal(16, 16)
    assert loss(3.7 * teacher, teacher).item() < 1e-12
    assert loss(teacher @ rotation, teacher).item() < 1e-12
    # a different dimension: embed the teacher's space isometrically into 40 dimensions
    wider = teacher @ _orthonormal(40, 16).t()
    assert wider.shape == (12, 40)
    assert loss(wider, teacher).item() < 1e-12


@pytest.mark.parametrize("loss", (distance_relation_loss, angle_relation_loss))
def test_distance_and_angle_losses_ignore_translation(teacher: torch.Tensor, loss) -> None:
    assert loss(teacher + 5.0, teacher).item() < 1e-12


@pytest.mark.parametrize("loss", RELATIONS)
def test_relation_losses_are_positive_for_unrelated_embeddings_and_pass_gradients(teacher: torch.Tensor,
                                                                                    loss) -> None:
    student = F.normalize(torch.randn(12, 24, dtype=torch.float64), dim=1).requires_grad_(True)
    teacher = teacher.clone().requires_grad_(True)
    value = loss(student, teacher)
    assert value.item() > 1e-4
    value.backward()
    assert student.grad is not None and torch.isfinite(student.grad).all() and student.grad.abs().sum() > 0
    assert teacher.grad is None or teacher.grad.abs().sum() == 0  # the teacher is a fixed target


def test_pairwise_distances_match_cdist_and_have_finite_gradients() -> None:
    x = torch.randn(6, 5, dtype=torch.float64, requires_grad=True)
    d = pairwise_distances(x)
    torch.testing.assert_close(d, torch.cdist(x, x), atol=1e-6, rtol=0)
    d.sum().backward()
    assert torch.isfinite(x.grad).all()


def test_center_teacher_removes_the_common_direction() -> None:
    torch.manual_seed(1)
    cone = torch.tensor([3.0] + [0.0] * 7) + 0.3 * torch.randn(50, 8)  # dlib-like narrow cone
    raw = F.normalize(cone, dim=1)
    assert (raw @ raw.t()).mean() > 0.8
    centred = center_teacher(cone, cone.mean(dim=0))
    torch.testing.assert_close(centred.norm(dim=1), torch.ones(50))
    assert abs((centred @ centred.t()).mean().item()) < 0.1
    with pytest.raises(InputError):
        center_teacher(cone, torch.zeros(3))


def test_relation_module_centres_the_teacher_and_combines_weighted_terms() -> None:
    torch.manual_seed(2)
    teacher = torch.tensor([3.0] + [0.0] * 7) + 0.3 * torch.randn(10, 8)
    mean = teacher.mean(dim=0)
    weights = RelationWeights(distance=1.0, angle=2.0, similarity=0.5, cosine=1.0)
    loss = RelationDistillationLoss(weights, teacher_mean=mean)
    student = center_teacher(teacher, mean)
    assert loss(student, teacher).item() < 1e-6  # a student equal to the centred teacher has nothing to learn
    assert "teacher_mean" in loss.state_dict()
    other = F.normalize(torch.randn(10, 8), dim=1)
    terms = loss.terms(other, teacher)
    assert set(terms) == {"distance", "angle", "similarity", "cosine"}
    expected = terms["distance"] + 2.0 * terms["angle"] + 0.5 * terms["similarity"] + terms["cosine"]
    torch.testing.assert_close(loss.combine(terms), expected)
    # without centring, the raw cone's relations differ from the centred ones
    assert RelationDistillationLoss(weights)(student, teacher).item() > 1e-3


def test_cosine_term_learns_a_projection_when_dims_differ() -> None:
    torch.manual_seed(3)
    loss = RelationDistillationLoss(RelationWeights(cosine=1.0), student_dim=32, teacher_dim=8)
    assert isinstance(loss.projection, nn.Linear)
    student = torch.randn(6, 32, requires_grad=True)
    value = loss(student, torch.randn(6, 8))
    value.backward()
    assert loss.projection.weight.grad is not None and student.grad is not None
    no_projection = RelationDistillationLoss(RelationWeights(cosine=1.0))
    with pytest.raises(InputError, match="projection"):
        no_projection(student, torch.randn(6, 8))


def test_relation_module_rejects_nan_teacher_rows_and_bad_batches() -> None:
    loss = RelationDistillationLoss()
    teacher = torch.randn(5, 8)
    teacher[2] = float("nan")
    with pytest.raises(InputError, match="NaN"):
        loss(torch.randn(5, 8), teacher)
    with pytest.raises(InputError, match="batch sizes"):
        loss(torch.randn(4, 8), torch.randn(5, 8))
    with pytest.raises(InputError):
        RelationDistillationLoss(RelationWeights(0, 0, 0, 0))(torch.randn(4, 8), torch.randn(4, 8))


def test_ssim_is_one_for_identical_images_and_lower_otherwise() -> None:
    torch.manual_seed(4)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    torch.testing.assert_close(ssim(x, x.clone()), torch.tensor(1.0))
    noisy = (x + 0.3 * torch.randn_like(x)).clamp(-1, 1)
    per_image = ssim(x, noisy, reduction="none")
    assert per_image.shape == (2,) and (per_image < 0.95).all()
    torch.testing.assert_close(ssim(x, noisy), ssim(noisy, x))
    # flat images: only the luminance term remains, (2ab + C1) / (a^2 + b^2 + C1) with C1 = (0.01 * range)^2
    a, b, c1 = 0.5, -0.2, (0.01 * 2.0) ** 2
    flat = ssim(torch.full((1, 3, 16, 16), a), torch.full((1, 3, 16, 16), b))
    assert flat.item() == pytest.approx((2 * a * b + c1) / (a * a + b * b + c1), rel=1e-4)


def test_masked_l1_weights_errors_inside_the_mask() -> None:
    target = torch.zeros(1, 3, 4, 4)
    mask = torch.zeros(1, 4, 4)
    mask[:, 2:] = 1  # bottom half masked
    inside, outside = target.clone(), target.clone()
    inside[..., 2:, :] = 1.0
    outside[..., :2, :] = 1.0
    w = 6.0
    assert masked_l1(inside, target, mask, w).item() == pytest.approx(w / (w + 1))
    assert masked_l1(outside, target, mask, w).item() == pytest.approx(1 / (w + 1))
    assert masked_l1(target + 0.25, target, mask, w).item() == pytest.approx(0.25)  # uniform error: its value
    assert masked_l1(inside, target, mask.unsqueeze(1), w) == masked_l1(inside, target, mask, w)
    with pytest.raises(InputError):
        masked_l1(inside, target, torch.zeros(1, 3, 3), w)


def test_inpainting_loss_is_zero_for_perfect_reconstruction_and_differentiable() -> None:
    torch.manual_seed(5)
    target = torch.rand(2, 3, 24, 24) * 2 - 1
    mask = (torch.rand(2, 24, 24) > 0.5).float()
    loss = InpaintingLoss(InpaintingWeights(l1=1.0, mask_weight=4.0, ssim=0.5))
    assert loss(target.clone(), target, mask).item() == pytest.approx(0.0, abs=1e-6)
    pred = torch.zeros_like(target, requires_grad=True)
    value = loss(pred, target, mask)
    terms = loss.terms(pred, target, mask)
    torch.testing.assert_close(value, terms["l1"] + 0.5 * terms["ssim"])
    value.backward()
    assert value.item() > 0 and torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0


@pytest.mark.parametrize("kind", ["cosface", "arcface"])
def test_margin_softmax_penalises_the_target_and_folds_into_a_linear(kind: str) -> None:
    torch.manual_seed(6)
    classifier = nn.Linear(16, 5)
    emb = F.normalize(torch.randn(8, 16), dim=1).requires_grad_(True)
    labels = torch.randint(0, 5, (8,))
    margin_loss = MarginSoftmaxLoss(scale=20.0, margin=0.3, kind=kind)
    cos = margin_loss.cosines(emb, classifier)
    plain = F.cross_entropy(20.0 * cos, labels)
    value = margin_loss(emb, classifier, labels)
    assert value > plain
    value.backward()
    assert torch.isfinite(emb.grad).all() and classifier.weight.grad is not None
    assert MarginSoftmaxLoss(scale=20.0, margin=0.0, kind=kind)(emb, classifier, labels).item() == \
        pytest.approx(plain.item(), rel=1e-5)
    fold_cosine_classifier_(classifier, scale=20.0)
    with torch.no_grad():
        torch.testing.assert_close(classifier(emb), 20.0 * cos)
    with pytest.raises(InputError):
        MarginSoftmaxLoss(kind="sphereface")


def test_arcface_target_logit_is_cos_of_theta_plus_margin() -> None:
    classifier = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        classifier.weight.copy_(torch.eye(2))
    theta = 0.4
    emb = torch.tensor([[math.cos(theta), math.sin(theta)]])
    loss = MarginSoftmaxLoss(scale=1.0, margin=0.5, kind="arcface")(emb, classifier, torch.tensor([0]))
    expected = F.cross_entropy(torch.tensor([[math.cos(theta + 0.5), math.sin(theta)]]), torch.tensor([0]))
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
