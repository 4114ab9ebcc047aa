"""Pure schedule functions shared by offline pretraining and online adaptation.

Following lightly's ``cosine_schedule`` and DINO's (Caron et al. 2021) schedules: learning rate with linear warmup
then cosine decay, EMA momentum rising from its base to 1, teacher temperature warmed up linearly. Every function
takes the step and returns a float; none holds state, so a resumed run gets the same values.
"""

from __future__ import annotations

import math


def _check_steps(step: int, total: int, name: str) -> None:
    if total <= 0:
        raise ValueError(f"{name}: total steps must be > 0, got {total}")
    if step < 0:
        raise ValueError(f"{name}: step must be >= 0, got {step}")


def cosine_schedule(step: int, total: int, start: float, end: float) -> float:
    """Half-cosine from ``start`` (step 0) to ``end`` (step ``total``); ``end`` for steps past ``total``.

    ``value = end + (start - end) * (1 + cos(pi * step / total)) / 2``.
    """
    _check_steps(step, total, "cosine_schedule")
    progress = min(step / total, 1.0)
    return end + (start - end) * 0.5 * (1.0 + math.cos(math.pi * progress))


def linear_warmup(step: int, warmup_steps: int, start: float, end: float) -> float:
    """Linear ramp from ``start`` (step 0) to ``end`` (step ``warmup_steps``); ``end`` afterwards.

    ``warmup_steps == 0`` means no warmup: ``end`` from the first step.
    """
    if warmup_steps < 0:
        raise ValueError(f"linear_warmup: warmup_steps must be >= 0, got {warmup_steps}")
    if step < 0:
        raise ValueError(f"linear_warmup: step must be >= 0, got {step}")
    if warmup_steps == 0 or step >= warmup_steps:
        return end
    return start + (end - start) * step / warmup_steps


def warmup_cosine_schedule(step: int, total: int, base: float, final: float, warmup_steps: int = 0,
                           warmup_start: float = 0.0) -> float:
    """Linear warmup from ``warmup_start`` to ``base`` over ``warmup_steps``, then cosine from ``base`` to
    ``final`` over the remaining ``total - warmup_steps`` steps (DINO's learning-rate and weight-decay schedule)."""
    _check_steps(step, total, "warmup_cosine_schedule")
    if not 0 <= warmup_steps < total:
        raise ValueError(f"warmup_cosine_schedule: warmup_steps must be in [0, total={total}), got {warmup_steps}")
    if step < warmup_steps:
        return linear_warmup(step, warmup_steps, warmup_start, base)
    return cosine_schedule(step - warmup_steps, total - warmup_steps, base, final)


def momentum_schedule(step: int, total: int, base: float = 0.996, final: float = 1.0) -> float:
    """EMA teacher momentum: cosine from ``base`` to ``final`` (BYOL, Grill et al. 2020; DINO)."""
    return cosine_schedule(step, total, base, final)


def teacher_temperature(step: int, warmup_steps: int, start: float = 0.04, end: float = 0.07) -> float:
    """DINO teacher temperature: linear warmup from ``start`` to ``end``, then constant."""
    return linear_warmup(step, warmup_steps, start, end)
