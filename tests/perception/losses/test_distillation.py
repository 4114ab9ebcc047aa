"""DINOLoss / iBOTPatchLoss against closed-form cross-entropies on 2-prototype cases; centre buffer; DINOHead."""

from __future__ import annotations

import math

import pytest
import torch

from perception.losses import DINOHead, DINOLoss, create_teacher, iBOTPatchLoss, update_momentum


def entropy(p: float) -> float:
    return -(p * math.log(p) + (1 - p) * math.log(1 - p))


def test_dino_loss_matches_closed_form_two_prototypes() -> None:
    # Teacher logits [ln3 * T_t, 0] -> p_t = [3/4, 1/4]; student logits [ln3 * T_s, 0] -> p_s = [3/4, 1/4].
    # Cross-entropy H(p_t, p_s) = entropy(3/4) = 0.5623.
    loss_fn = DINOLoss(out_dim=2, student_temp=0.5, teacher_temp=0.25, center_momentum=0.9, skip_same_view=False)
    teacher = torch.tensor([[[math.log(3) * 0.25, 0.0]]])
    student = torch.tensor([[[math.log(3) * 0.5, 0.0]]])
    loss = loss_fn(student, teacher)
    assert loss.item() == pytest.approx(entropy(0.75), abs=1e-6)
    assert entropy(0.75) == pytest.approx(0.562335, abs=1e-6)
    # Uniform student: H(p_t, [1/2, 1/2]) = ln 2 whatever the teacher.
    assert loss_fn.eval()(torch.zeros(1, 1, 2), teacher).item() == pytest.approx(math.log(2), abs=1e-6)


def test_dino_centre_updates_with_momentum_and_is_used() -> None:
    loss_fn = DINOLoss(out_dim=2, student_temp=1.0, teacher_temp=1.0, center_momentum=0.9, skip_same_view=False)
    assert "center" in loss_fn.state_dict()
    teacher = torch.tensor([[[2.0, 0.0], [4.0, 0.0]]])              # mean over batch [3, 0]
    student = torch.zeros(1, 2, 2)
    loss_fn.train()(student, teacher)
    assert loss_fn.center.tolist() == pytest.approx([0.3, 0.0])     # 0.9 * 0 + 0.1 * 3
    loss_fn(student, teacher)
    assert loss_fn.center.tolist() == pytest.approx([0.57, 0.0])    # 0.9 * 0.3 + 0.1 * 3
    # Centred teacher: logits [2 - 0.57, 0] -> p_t0 = sigmoid(1.43); student p_s = [e/(1+e), 1/(1+e)].
    loss_fn.eval()
    teacher1 = torch.tensor([[[2.0, 0.0]]])
    student1 = torch.tensor([[[1.0, 0.0]]])
    pt = 1 / (1 + math.exp(-(2.0 - 0.57)))
    ps = math.e / (1 + math.e)
    expected = -(pt * math.log(ps) + (1 - pt) * math.log(1 - ps))
    assert loss_fn(student1, teacher1).item() == pytest.approx(expected, abs=1e-6)
    assert loss_fn.center.tolist() == pytest.approx([0.57, 0.0])    # eval mode: no update
    restored = DINOLoss(out_dim=2)
    restored.load_state_dict(loss_fn.state_dict())
    assert restored.center.tolist() == pytest.approx([0.57, 0.0])


def test_dino_skips_same_view_pairs() -> None:
    # Two global views; student view 0 vs teacher view 1 and student view 1 vs teacher view 0 only.
    loss_fn = DINOLoss(out_dim=2, student_temp=1.0, teacher_temp=1.0).eval()
    teacher = torch.tensor([[[0.0, 0.0]], [[math.log(3), 0.0]]])    # p_t: view0 [1/2,1/2], view1 [3/4,1/4]
    student = torch.tensor([[[math.log(3), 0.0]], [[math.log(3), 0.0]]])  # p_s [3/4,1/4] both
    h_half = -(0.5 * math.log(0.75) + 0.5 * math.log(0.25))
    expected = 0.5 * (h_half + entropy(0.75))
    assert loss_fn(student, teacher).item() == pytest.approx(expected, abs=1e-6)
    with pytest.raises(ValueError, match="skip_same_view"):
        loss_fn(student[:1], teacher[:1])
    with pytest.raises(ValueError, match="out_dim=2"):
        loss_fn(torch.zeros(2, 1, 3), torch.zeros(2, 1, 3))


def test_dino_lower_for_matching_than_shuffled_and_gradients_flow() -> None:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(1, 16, 32, generator=g) * 3
    loss_fn = DINOLoss(out_dim=32, student_temp=0.1, teacher_temp=0.04, skip_same_view=False).eval()
    student = logits.clone().requires_grad_(True)
    matched = loss_fn(student, logits)
    shuffled = loss_fn(logits[:, torch.randperm(16, generator=g)], logits)
    assert matched.item() < shuffled.item() - 1.0
    matched.backward()
    assert student.grad is not None and student.grad.abs().sum() > 0


def test_ibot_patch_loss_averages_masked_patches_per_image() -> None:
    loss_fn = iBOTPatchLoss(out_dim=2, student_temp=1.0, teacher_temp=1.0).eval()
    teacher = torch.tensor([[[math.log(3), 0.0], [0.0, 0.0]],
                            [[0.0, 0.0], [0.0, 0.0]]])
    student = torch.tensor([[[math.log(3), 0.0], [5.0, -5.0]],
                            [[0.0, 0.0], [0.0, 0.0]]])
    mask = torch.tensor([[True, False], [True, True]])
    # Image 0: only patch 0 counts -> entropy(3/4); image 1: uniform vs uniform -> ln 2 on both patches.
    expected = 0.5 * (entropy(0.75) + math.log(2))
    assert loss_fn(student, teacher, mask).item() == pytest.approx(expected, abs=1e-6)
    # An image without masked patches is left out of the mean.
    mask0 = torch.tensor([[True, False], [False, False]])
    assert loss_fn(student, teacher, mask0).item() == pytest.approx(entropy(0.75), abs=1e-6)
    with pytest.raises(ValueError, match="no patch"):
        loss_fn(student, teacher, torch.zeros(2, 2, dtype=torch.bool))


def test_ibot_centre_is_buffer_and_teacher_temp_override() -> None:
    loss_fn = iBOTPatchLoss(out_dim=2, student_temp=1.0, teacher_temp=1.0, center_momentum=0.5)
    teacher = torch.tensor([[[math.log(3), 0.0], [math.log(3), 0.0]]])
    student = torch.zeros(1, 2, 2)
    loss_fn.train()(student, teacher)
    assert loss_fn.state_dict()["center"].tolist() == pytest.approx([0.5 * math.log(3), 0.0])
    # Temperature override: logits [ln3, 0] at T=0.5 -> [ln9, 0] -> p_t [0.9, 0.1]; vs student [3/4, 1/4].
    loss_fn.center.zero_()
    s = torch.tensor([[[math.log(3), 0.0]]])
    t = torch.tensor([[[math.log(3), 0.0]]])
    expected = -(0.9 * math.log(0.75) + 0.1 * math.log(0.25))
    assert loss_fn.eval()(s, t, teacher_temp=0.5).item() == pytest.approx(expected, abs=1e-6)


def test_dino_head_shapes_weight_norm_and_ema() -> None:
    torch.manual_seed(0)
    head = DINOHead(in_dim=16, out_dim=40, hidden_dim=32, bottleneck_dim=8, n_layers=3)
    assert head(torch.randn(4, 16)).shape == (4, 40)
    assert head(torch.randn(2, 5, 16)).shape == (2, 5, 40)
    g = head.last_layer.parametrizations.weight.original0
    assert not g.requires_grad and torch.all(g == 1)
    # Weight-normed rows have unit norm, so each logit is a cosine in [-1, 1].
    assert torch.allclose(head.last_layer.weight.norm(dim=1), torch.ones(40), atol=1e-5)
    assert head(torch.randn(8, 16) * 100).abs().max() <= 1.0 + 1e-5
    head_bn = DINOHead(in_dim=16, out_dim=10, hidden_dim=32, bottleneck_dim=8, use_bn=True)
    assert head_bn(torch.randn(3, 4, 16)).shape == (3, 4, 10)
    teacher = create_teacher(head)
    with torch.no_grad():
        for p in head.parameters():
            p.add_(1.0)
    before = teacher.mlp[0].weight.clone()
    update_momentum(head, teacher, 0.75)
    assert torch.allclose(teacher.mlp[0].weight, before + 0.25, atol=1e-6)
