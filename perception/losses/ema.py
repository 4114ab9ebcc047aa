"""Exponential moving average (EMA) of a student into a teacher, as pure functions.

The mean-teacher update of BYOL (Grill et al. 2020) and DINO (Caron et al. 2021):
``teacher = m * teacher + (1 - m) * student``. Shared by offline pretraining and the online adapter; it takes
modules, holds no state, and never builds an autograd graph.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


def create_teacher(student: nn.Module) -> nn.Module:
    """A deep copy of ``student`` with gradients off: the starting point of an EMA teacher."""
    teacher = copy.deepcopy(student)
    teacher.requires_grad_(False)
    return teacher


def _paired(student: dict[str, torch.Tensor], teacher: dict[str, torch.Tensor], what: str
            ) -> list[tuple[torch.Tensor, torch.Tensor]]:
    if student.keys() != teacher.keys():
        only_s = sorted(student.keys() - teacher.keys())[:5]
        only_t = sorted(teacher.keys() - student.keys())[:5]
        raise ValueError(f"update_momentum: student and teacher {what} differ; only in student: {only_s}, "
                         f"only in teacher: {only_t}")
    pairs = []
    for name, s in student.items():
        t = teacher[name]
        if s.shape != t.shape:
            raise ValueError(f"update_momentum: {what} {name!r} has shape {tuple(s.shape)} in the student and "
                             f"{tuple(t.shape)} in the teacher")
        pairs.append((s, t))
    return pairs


@torch.no_grad()
def update_momentum(student: nn.Module, teacher: nn.Module, m: float, include_buffers: bool = False) -> None:
    """In place: ``teacher_p = m * teacher_p + (1 - m) * student_p`` for every parameter (matched by name).

    ``m = 1`` leaves the teacher unchanged, ``m = 0`` copies the student. With ``include_buffers``, floating
    buffers (e.g. batch-norm running statistics) are averaged the same way and integer buffers copied.
    """
    if not 0.0 <= m <= 1.0:
        raise ValueError(f"update_momentum: momentum m must be in [0, 1], got {m}")
    for s, t in _paired(dict(student.named_parameters()), dict(teacher.named_parameters()), "parameters"):
        t.lerp_(s.detach().to(t.dtype), 1.0 - m)
    if include_buffers:
        for s, t in _paired(dict(student.named_buffers()), dict(teacher.named_buffers()), "buffers"):
            if t.is_floating_point():
                t.lerp_(s.to(t.dtype), 1.0 - m)
            else:
                t.copy_(s)
