"""``model.global_init``: start the global stream from an official DINOv2 backbone (ViT-S/B/L/g/14, with or
without registers; Oquab et al. 2023, Darcet et al. 2024).

Reads ``.safetensors`` or ``.pth`` (``torch.load(weights_only=True)``: no pickle code runs), unwraps the usual
``{"model": ...}`` / ``{"teacher": ...}`` / ``{"state_dict": ...}`` containers and loads the tensors with
``perception.models.load_dinov2_state_dict`` (prefix stripping, chunked blocks, bicubic position-embedding
resampling). A checkpoint that does not fit raises ``GlobalInitError`` naming the file, what differs and the
encoder or override that would fit (width -> ViT size, register tokens).
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from perception.models.dinov2_weights import StateDictError, load_dinov2_state_dict, normalize_dinov2_keys

WIDTH_TO_VARIANT = {384: "ViT-S/14 (dualstream_s)", 768: "ViT-B/14 (dualstream_b)", 1024: "ViT-L/14",
                    1536: "ViT-g/14"}
CONTAINERS = ("model", "teacher", "state_dict", "module")


class GlobalInitError(ValueError):
    """The DINOv2 file is missing, unreadable or does not fit the encoder's global stream."""


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a ``.safetensors`` or ``.pth``/``.pt`` file (safe loading only)."""
    path = Path(path)
    if not path.is_file():
        raise GlobalInitError(f"global_stream init: {path}: no such file")
    try:
        if path.suffix == ".safetensors":
            data = load_file(str(path))
        else:
            data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 (any reader failure is reported with the file name)
        raise GlobalInitError(f"global_stream init: cannot read {path} as safetensors or a weights-only torch "
                              f"file: {exc}") from exc
    while isinstance(data, dict) and len(data) and not any(isinstance(v, torch.Tensor) for v in data.values()):
        inner = next((data[k] for k in CONTAINERS if isinstance(data.get(k), dict)), None)
        if inner is None:
            break
        data = inner
    if not isinstance(data, dict) or not any(isinstance(v, torch.Tensor) for v in data.values()):
        raise GlobalInitError(f"global_stream init: {path} holds no tensor dictionary")
    return {k: v for k, v in data.items() if isinstance(v, torch.Tensor)}


def _hint(vit: nn.Module, sd: dict[str, torch.Tensor]) -> str:
    hints = []
    cls = sd.get("cls_token")
    own_width = int(vit.embed_dim)
    if cls is not None and cls.shape[-1] != own_width:
        hints.append(f"the file is a {WIDTH_TO_VARIANT.get(int(cls.shape[-1]), f'width-{cls.shape[-1]} ViT')}, "
                     f"the encoder's global stream a {WIDTH_TO_VARIANT.get(own_width, f'width-{own_width} ViT')}")
    regs = sd.get("register_tokens")
    own_regs = int(getattr(vit, "num_register_tokens", 0))
    file_regs = 0 if regs is None else int(regs.shape[1])
    if file_regs != own_regs:
        hints.append(f"the file has {file_regs} register tokens, the encoder {own_regs}: set "
                     f"model.overrides.num_register_tokens={file_regs}")
    depth = len({k.split(".")[1] for k in sd if k.startswith("blocks.")})
    own_depth = len(getattr(vit, "blocks", []))
    if depth and depth != own_depth:
        hints.append(f"the file has {depth} blocks, the encoder {own_depth}")
    return ("; ".join(hints) + ". ") if hints else ""


def load_global_init(model: nn.Module, path: str | Path) -> list[str]:
    """Load the DINOv2 file at ``path`` into ``model.global_stream.vit``; returns the loader's notes."""
    vit = model.global_stream.vit
    sd = read_state_dict(path)
    try:
        return load_dinov2_state_dict(vit, sd)
    except (StateDictError, RuntimeError) as exc:
        raise GlobalInitError(f"global_stream init: {path} does not fit the encoder: "
                              f"{_hint(vit, normalize_dinov2_keys(sd))}{exc}") from exc
