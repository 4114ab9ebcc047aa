"""Self-distillation from an EMA teacher with centering and sharpening.

``DINOLoss``: cross-entropy between the sharpened, centred teacher distribution and the student distribution on
global (CLS) embeddings of different views (DINO, Caron et al. 2021, Eq. 1-4). ``iBOTPatchLoss``: the same on
patch tokens, averaged over the masked patches of each image (iBOT, Zhou et al. 2022, Eq. 2). Each loss owns its
centre as a registered buffer, so it is saved with the model and averaged across processes under DDP.

Logits come from a projection head (``DINOHead``); shapes: views ``V``, batch ``B``, patches ``N``, prototypes ``K``.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from perception.losses.precision import float32_loss


class _CenteredDistillation(nn.Module):
    """Centre buffer (EMA of teacher logits) and the centred, sharpened teacher distribution."""

    center: torch.Tensor

    def __init__(self, out_dim: int, student_temp: float, teacher_temp: float, center_momentum: float) -> None:
        super().__init__()
        if student_temp <= 0 or teacher_temp <= 0:
            raise ValueError(f"{type(self).__name__}: temperatures must be > 0, got student_temp={student_temp}, "
                             f"teacher_temp={teacher_temp}")
        if not 0.0 <= center_momentum <= 1.0:
            raise ValueError(f"{type(self).__name__}: center_momentum must be in [0, 1], got {center_momentum}")
        self.out_dim = out_dim
        self.student_temp = student_temp
        self.teacher_temp = teacher_temp
        self.center_momentum = center_momentum
        self.register_buffer("center", torch.zeros(out_dim))

    def _check(self, logits: torch.Tensor, what: str) -> None:
        if logits.shape[-1] != self.out_dim:
            raise ValueError(f"{type(self).__name__}: {what} logits have {logits.shape[-1]} prototypes in the last "
                             f"dimension, expected out_dim={self.out_dim}")

    def teacher_probs(self, teacher_logits: torch.Tensor, teacher_temp: float | None = None) -> torch.Tensor:
        """``softmax((t - centre) / teacher_temp)`` over the last dimension, without gradient, in float32."""
        temp = self.teacher_temp if teacher_temp is None else teacher_temp
        return F.softmax((teacher_logits.detach().float() - self.center) / temp, dim=-1)

    @torch.no_grad()
    def update_center(self, teacher_logits: torch.Tensor) -> None:
        """``centre = m * centre + (1 - m) * mean(teacher logits)``; the mean covers every process under DDP."""
        flat = teacher_logits.detach().float().reshape(-1, self.out_dim)
        total = flat.sum(dim=0)
        count = torch.tensor(float(flat.shape[0]), device=flat.device)
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(total)
            dist.all_reduce(count)
        self.center.mul_(self.center_momentum).add_(total / count, alpha=1.0 - self.center_momentum)

    def extra_repr(self) -> str:
        return (f"out_dim={self.out_dim}, student_temp={self.student_temp}, teacher_temp={self.teacher_temp}, "
                f"center_momentum={self.center_momentum}")


class DINOLoss(_CenteredDistillation):
    """DINO loss on global embeddings of several views.

    ``forward(student_logits (V_s, B, K), teacher_logits (V_t, B, K), teacher_temp=None) -> scalar``: mean over
    view pairs and batch of ``-sum_k p_t log p_s``. The teacher sees the ``V_t`` global views, which are also the
    first ``V_t`` student views; pairs of the same view are skipped when ``skip_same_view`` (so ``V_s = V_t = 1``
    needs ``skip_same_view=False``). In training mode the centre is updated after the loss is computed.
    """

    def __init__(self, out_dim: int, student_temp: float = 0.1, teacher_temp: float = 0.04,
                 center_momentum: float = 0.9, skip_same_view: bool = True) -> None:
        super().__init__(out_dim, student_temp, teacher_temp, center_momentum)
        self.skip_same_view = skip_same_view

    @float32_loss
    def forward(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                teacher_temp: float | None = None) -> torch.Tensor:
        if student_logits.dim() != 3 or teacher_logits.dim() != 3:
            raise ValueError(f"DINOLoss: expected (views, batch, K) logits, got student {tuple(student_logits.shape)}"
                             f" and teacher {tuple(teacher_logits.shape)}")
        self._check(student_logits, "student")
        self._check(teacher_logits, "teacher")
        t_probs = self.teacher_probs(teacher_logits, teacher_temp)             # (V_t, B, K)
        s_logp = F.log_softmax(student_logits.float() / self.student_temp, dim=-1)  # (V_s, B, K)
        ce = -torch.einsum("tbk,sbk->tsb", t_probs, s_logp).mean(dim=-1)          # (V_t, V_s)
        keep = torch.ones_like(ce, dtype=torch.bool)
        if self.skip_same_view:
            n = min(ce.shape)
            keep[torch.arange(n), torch.arange(n)] = False
        if not keep.any():
            raise ValueError("DINOLoss: no view pairs left: with one student and one teacher view set "
                             "skip_same_view=False")
        loss = ce[keep].mean()
        if self.training:
            self.update_center(teacher_logits)
        return loss


class iBOTPatchLoss(_CenteredDistillation):  # noqa: N801 (the paper's spelling)
    """iBOT masked-patch self-distillation.

    ``forward(student_logits (B, N, K), teacher_logits (B, N, K), mask (B, N) bool | None, teacher_temp=None)
    -> scalar``: per patch ``-sum_k p_t log p_s``; averaged over the masked patches of each image, then over the
    images that have any (``mask=None``: every patch counts). Student logits come from the masked view, teacher
    logits from the unmasked one at the same positions.
    """

    def __init__(self, out_dim: int, student_temp: float = 0.1, teacher_temp: float = 0.04,
                 center_momentum: float = 0.9) -> None:
        super().__init__(out_dim, student_temp, teacher_temp, center_momentum)

    @float32_loss
    def forward(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor, mask: torch.Tensor | None = None,
                teacher_temp: float | None = None) -> torch.Tensor:
        if student_logits.shape != teacher_logits.shape or student_logits.dim() != 3:
            raise ValueError(f"iBOTPatchLoss: expected equal (B, N, K) logits, got student "
                             f"{tuple(student_logits.shape)} and teacher {tuple(teacher_logits.shape)}")
        self._check(student_logits, "student")
        t_probs = self.teacher_probs(teacher_logits, teacher_temp)
        s_logp = F.log_softmax(student_logits.float() / self.student_temp, dim=-1)
        ce = -(t_probs * s_logp).sum(dim=-1)                                      # (B, N)
        if mask is None:
            loss = ce.mean()
        else:
            if mask.shape != ce.shape:
                raise ValueError(f"iBOTPatchLoss: mask shape {tuple(mask.shape)} != (B, N) {tuple(ce.shape)}")
            weights = mask.float()
            per_image_count = weights.sum(dim=1)
            has_any = per_image_count > 0
            if not has_any.any():
                raise ValueError("iBOTPatchLoss: the mask selects no patch in any image")
            per_image = (ce * weights).sum(dim=1) / per_image_count.clamp(min=1.0)
            loss = per_image[has_any].mean()
        if self.training:
            self.update_center(teacher_logits)
        return loss
