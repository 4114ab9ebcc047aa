"""Loading official DINOv2 backbone weights (facebookresearch/dinov2) into ``VisionTransformer``.

Accepted inputs: the hub ``dinov2_vit*14[_reg4]_pretrain.pth`` dictionaries (keys as in ``vit.py``), training
checkpoints whose keys carry a ``teacher.backbone.`` / ``student.backbone.`` / ``backbone.`` / ``module.``
prefix, and chunked-block keys ``blocks.{chunk}.{i}.`` (DINOv2 trains with ``block_chunks > 0``). The patch
grid of ``pos_embed`` is bicubically resampled when it differs from the model's. Any other difference raises
``StateDictError`` naming every missing, unexpected and mis-shaped key.
"""

from __future__ import annotations

import re
from typing import Mapping

import torch

from perception.models.vit import VisionTransformer, interpolate_pos_embed

PREFIXES = ("teacher.backbone.", "student.backbone.", "module.backbone.", "backbone.", "module.", "teacher.", "model.")
_CHUNKED = re.compile(r"^blocks\.\d+\.(\d+)\.")


class StateDictError(ValueError):
    """A state dict does not fit a model; the message lists the keys and shapes."""


def normalize_dinov2_keys(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Strip the known prefixes, drop the (parameter-free) head, flatten chunked block indices."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        for prefix in PREFIXES:
            if key.startswith(prefix):
                key = key[len(prefix):]
                break
        if key.startswith("head.") or key.startswith("dino_head.") or key.startswith("ibot_head."):
            continue
        key = _CHUNKED.sub(r"blocks.\1.", key)
        out[key] = value
    return out


def _pos_grid(num_patches: int) -> tuple[int, int]:
    side = int(round(num_patches ** 0.5))
    if side * side != num_patches:
        raise StateDictError(f"pos_embed: {num_patches} patch entries do not form a square grid")
    return side, side


def load_dinov2_state_dict(vit: VisionTransformer, state_dict: Mapping[str, torch.Tensor]) -> list[str]:
    """Load DINOv2 weights into ``vit`` strictly; returns notes on what was adapted (prefixes, pos_embed)."""
    notes: list[str] = []
    sd = normalize_dinov2_keys(state_dict)
    if len(sd) != len(state_dict) or set(sd) != set(state_dict):
        notes.append("normalised key names (prefix / chunked blocks / head)")
    own = vit.state_dict()
    pos = sd.get("pos_embed")
    if pos is not None and "pos_embed" in own and pos.shape != own["pos_embed"].shape:
        if pos.ndim == 3 and pos.shape[0] == 1 and pos.shape[2] == own["pos_embed"].shape[2]:
            src = _pos_grid(pos.shape[1] - 1)
            sd["pos_embed"] = interpolate_pos_embed(pos, vit.pos_grid, src)
            notes.append(f"pos_embed resampled from grid {src} to {vit.pos_grid}")
    missing = sorted(set(own) - set(sd))
    unexpected = sorted(set(sd) - set(own))
    wrong = [
        f"{k}: checkpoint {tuple(sd[k].shape)} vs model {tuple(own[k].shape)}"
        for k in sorted(set(own) & set(sd))
        if sd[k].shape != own[k].shape
    ]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing keys ({len(missing)}): {', '.join(missing[:20])}")
        if unexpected:
            parts.append(f"unexpected keys ({len(unexpected)}): {', '.join(unexpected[:20])}")
        if wrong:
            parts.append(f"shape mismatches ({len(wrong)}): {'; '.join(wrong[:20])}")
        raise StateDictError("DINOv2 state dict does not fit the model: " + " | ".join(parts))
    vit.load_state_dict(sd, strict=True)
    return notes
