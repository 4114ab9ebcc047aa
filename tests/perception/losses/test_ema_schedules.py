"""EMA update and schedules: exact values at chosen steps."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from perception.losses import (cosine_schedule, create_teacher, linear_warmup, momentum_schedule,
                               teacher_temperature, update_momentum, warmup_cosine_schedule)


def test_update_momentum_exact_values() -> None:
    student = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    teacher = create_teacher(student)
    assert all(not p.requires_grad for p in teacher.parameters())
    with torch.no_grad():
        for p in student.parameters():
            p.fill_(1.0)
        for p in teacher.parameters():
            p.fill_(0.0)
        student[1].running_mean.fill_(2.0)
    update_momentum(student, teacher, m=0.9)
    assert all(torch.allclose(p, torch.full_like(p, 0.1)) for p in teacher.parameters())
    assert torch.all(teacher[1].running_mean == 0)                      # buffers untouched by default
    update_momentum(student, teacher, m=0.9)
    assert teacher[0].weight[0, 0].item() == pytest.approx(0.19)        # 0.9 * 0.1 + 0.1
    update_momentum(student, teacher, m=0.5, include_buffers=True)
    assert teacher[1].running_mean.tolist() == pytest.approx([1.0, 1.0])  # 0.5 * 0 + 0.5 * 2
    assert teacher[1].num_batches_tracked.item() == student[1].num_batches_tracked.item()
    update_momentum(student, teacher, m=1.0)
    assert teacher[0].weight[0, 0].item() == pytest.approx(0.595)      # unchanged (0.5 * 0.19 + 0.5)
    update_momentum(student, teacher, m=0.0)
    assert teacher[0].weight[0, 0].item() == 1.0


def test_update_momentum_errors() -> None:
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        update_momentum(nn.Linear(2, 2), nn.Linear(2, 2), 1.5)
    with pytest.raises(ValueError, match="'weight' has shape \\(3, 2\\) in the student"):
        update_momentum(nn.Linear(2, 3), nn.Linear(2, 2), 0.9)
    with pytest.raises(ValueError, match="only in student: \\['bias'\\]"):
        update_momentum(nn.Linear(2, 2), nn.Linear(2, 2, bias=False), 0.9)


def test_cosine_schedule_values() -> None:
    assert cosine_schedule(0, 100, 1.0, 0.0) == 1.0
    assert cosine_schedule(50, 100, 1.0, 0.0) == pytest.approx(0.5)
    assert cosine_schedule(25, 100, 1.0, 0.0) == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))
    assert cosine_schedule(100, 100, 1.0, 0.0) == pytest.approx(0.0)
    assert cosine_schedule(500, 100, 1.0, 0.0) == pytest.approx(0.0)
    assert momentum_schedule(0, 10) == pytest.approx(0.996) and momentum_schedule(10, 10) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="total steps must be > 0"):
        cosine_schedule(0, 0, 1.0, 0.0)


def test_warmup_schedules() -> None:
    assert linear_warmup(0, 10, 0.0, 1.0) == 0.0
    assert linear_warmup(4, 10, 0.0, 1.0) == pytest.approx(0.4)
    assert linear_warmup(10, 10, 0.0, 1.0) == 1.0 and linear_warmup(3, 0, 0.0, 1.0) == 1.0
    assert teacher_temperature(15, 30, 0.04, 0.07) == pytest.approx(0.055)
    # 10 warmup steps to 1e-3, then cosine over 90 steps to 1e-5.
    assert warmup_cosine_schedule(5, 100, 1e-3, 1e-5, warmup_steps=10) == pytest.approx(5e-4)
    assert warmup_cosine_schedule(10, 100, 1e-3, 1e-5, warmup_steps=10) == pytest.approx(1e-3)
    assert warmup_cosine_schedule(55, 100, 1e-3, 1e-5, warmup_steps=10) == pytest.approx(0.5 * (1e-3 + 1e-5))
    assert warmup_cosine_schedule(100, 100, 1e-3, 1e-5, warmup_steps=10) == pytest.approx(1e-5)
    with pytest.raises(ValueError, match="warmup_steps must be in"):
        warmup_cosine_schedule(0, 10, 1.0, 0.0, warmup_steps=10)
