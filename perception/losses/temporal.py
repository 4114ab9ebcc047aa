"""Temporal consistency by correspondence: the contrastive random walk (Jabri et al. 2020, "Space-Time
Correspondence as a Contrastive Random Walk").

Patches of each frame are nodes; the transition ``t -> t+1`` is ``softmax_j(<q_i, q_j> / tau)`` over the patches
of the next frame. A walk along the palindrome ``t -> t+1 -> ... -> t+k -> ... -> t`` should return where it
started: the loss is the cross-entropy of the round-trip transition matrix against the identity. Moving content
may move: only the round trip is constrained, never the position in the other frame. Several gaps ``k`` cover
adjacent frames to frames seconds apart.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from perception.losses.precision import float32_loss

from perception.losses.patch_contrast import as_tokens


class ContrastiveRandomWalkLoss(nn.Module):
    """``forward(clip) -> scalar``; clip: ``(B, T, C, h, w)`` dense maps or ``(B, T, N, C)`` tokens, ``T >= 2``.

    For each gap ``k`` in ``gaps`` with ``k < T`` and each start ``t``, the walk visits frames ``t..t+k`` and
    back (``through_intermediate``) or jumps ``t -> t+k -> t`` directly. Losses are averaged over starts, then
    over gaps. ``edge_dropout`` zeroes transitions at random and renormalises (Jabri et al. Sec. 3.3).
    Cost grows with ``(h*w)^2`` per frame pair: pool dense maps to a coarse grid (Jabri et al. walk on patches
    of a few hundred nodes) before calling it.
    """

    def __init__(self, temperature: float = 0.07, gaps: Sequence[int] = (1, 2, 4),
                 through_intermediate: bool = True, edge_dropout: float = 0.0, eps: float = 1e-20) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"ContrastiveRandomWalkLoss: temperature must be > 0, got {temperature}")
        if not gaps or any(k < 1 for k in gaps):
            raise ValueError(f"ContrastiveRandomWalkLoss: gaps must be positive integers, got {list(gaps)}")
        if not 0.0 <= edge_dropout < 1.0:
            raise ValueError(f"ContrastiveRandomWalkLoss: edge_dropout must be in [0, 1), got {edge_dropout}")
        self.temperature = temperature
        self.gaps = tuple(int(k) for k in gaps)
        self.through_intermediate = through_intermediate
        self.edge_dropout = edge_dropout
        self.eps = eps

    def transition(self, src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
        """``(B, N, C), (B, M, C) -> (B, N, M)`` row-stochastic transitions between L2-normalised nodes."""
        probs = F.softmax(torch.einsum("bnc,bmc->bnm", src, dst) / self.temperature, dim=-1)
        if self.training and self.edge_dropout > 0:
            probs = F.dropout(probs, p=self.edge_dropout)
            probs = probs / probs.sum(dim=-1, keepdim=True).clamp(min=self.eps)
        return probs

    def round_trip_loss(self, path: Sequence[torch.Tensor]) -> torch.Tensor:
        """Cross-entropy of the walk ``path[0] -> ... -> path[-1] -> ... -> path[0]`` against the identity."""
        forward_walk = self.transition(path[0], path[1])
        backward_walk = self.transition(path[1], path[0])
        for src, dst in zip(path[1:-1], path[2:]):
            forward_walk = forward_walk @ self.transition(src, dst)
            backward_walk = self.transition(dst, src) @ backward_walk
        return self._return_loss(forward_walk @ backward_walk)

    def _return_loss(self, round_trip: torch.Tensor) -> torch.Tensor:
        """``-mean log P(return to start)``: cross-entropy of ``(B, N, N)`` round trips against the identity."""
        return -torch.log(round_trip.diagonal(dim1=1, dim2=2) + self.eps).mean()

    @float32_loss
    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        if clip.dim() not in (4, 5) or clip.shape[1] < 2:
            raise ValueError(f"ContrastiveRandomWalkLoss: expected a clip (B, T, C, h, w) or (B, T, N, C) with "
                             f"T >= 2, got shape {tuple(clip.shape)}")
        frames = [F.normalize(as_tokens(clip[:, t]).float(), dim=-1) for t in range(clip.shape[1])]
        n_frames = len(frames)
        gaps = sorted(k for k in self.gaps if k < n_frames)
        if not gaps:
            raise ValueError(f"ContrastiveRandomWalkLoss: no gap in {list(self.gaps)} fits a clip of "
                             f"{n_frames} frames")
        per_gap: dict[int, list[torch.Tensor]] = {k: [] for k in gaps}
        if not self.through_intermediate:
            for k in gaps:
                for t in range(n_frames - k):
                    per_gap[k].append(self.round_trip_loss([frames[t], frames[t + k]]))
        else:
            # Transitions between neighbours are computed once; each start extends its walk one frame at a time.
            ahead = [self.transition(frames[t], frames[t + 1]) for t in range(n_frames - 1)]
            back = [self.transition(frames[t + 1], frames[t]) for t in range(n_frames - 1)]
            for t in range(n_frames - 1):
                out_walk, home_walk = ahead[t], back[t]
                for k in range(1, min(gaps[-1], n_frames - 1 - t) + 1):
                    if k > 1:
                        out_walk = out_walk @ ahead[t + k - 1]
                        home_walk = back[t + k - 1] @ home_walk
                    if k in per_gap:
                        per_gap[k].append(self._return_loss(out_walk @ home_walk))
        return torch.stack([torch.stack(v).mean() for v in per_gap.values()]).mean()
