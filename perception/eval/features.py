"""Dense stride-8 features for label propagation: the ``rgb`` colour baseline and an adapter for encoders.

Every extractor maps one padded frame ``(H, W, 3)`` uint8 RGB (H and W multiples of 8) to ``(C, H/8, W/8)`` float32,
L2-normalised per cell, as the label propagation protocol of EVAL_PROTOCOL.md asks (Jabri et al., "Space-Time
Correspondence as a Contrastive Random Walk", NeurIPS 2020, Sec. 4, readout at stride 8).
"""

from __future__ import annotations

from typing import Any, Protocol

import cv2
import numpy as np
import torch
import torch.nn.functional as F

STRIDE = 8
LAB_SCALE = (25.0, 15.0, 15.0)  # (L - 50) / 25, a / 15, b / 15
LAB_OFFSET = (50.0, 0.0, 0.0)


class FeatureExtractor(Protocol):
    """``reset()`` at the start of a sequence; ``__call__(frame)`` -> ``(C, H/8, W/8)`` unit-norm features."""

    name: str

    def reset(self) -> None: ...

    def __call__(self, frame: np.ndarray) -> torch.Tensor: ...


def l2_normalise_cells(features: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Unit L2 norm along the channel axis (dim -3) of ``(..., C, h, w)``; all-zero cells stay zero."""
    return features / features.norm(dim=-3, keepdim=True).clamp_min(eps)


def _check_frame(frame: np.ndarray) -> None:
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB frame, got {frame.shape} {frame.dtype}")
    if frame.shape[0] % STRIDE or frame.shape[1] % STRIDE:
        raise ValueError(f"frame size {frame.shape[1]}x{frame.shape[0]} is not a multiple of the stride {STRIDE}")


class LabColourFeatures:
    """The protocol's ``rgb`` baseline: OpenCV Lab of the float image in [0, 1] (L in [0, 100]), normalised with
    fixed constants ((L - 50) / 25, a / 15, b / 15), averaged over each 8x8 block, L2-normalised per cell."""

    name = "rgb"

    def reset(self) -> None:
        """Stateless."""

    def __call__(self, frame: np.ndarray) -> torch.Tensor:
        _check_frame(frame)
        lab = cv2.cvtColor(frame.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)
        lab = (lab - np.float32(LAB_OFFSET)) / np.float32(LAB_SCALE)
        size = (frame.shape[1] // STRIDE, frame.shape[0] // STRIDE)
        pooled = cv2.resize(lab, size, interpolation=cv2.INTER_AREA)  # integer factor: the mean of each 8x8 block
        return l2_normalise_cells(torch.from_numpy(pooled).permute(2, 0, 1).contiguous())


class EncoderFeatures:
    """Adapter for an encoder with ``forward(frames (B, 3, H, W) float [0, 1]) -> EncoderOutput`` whose ``dense`` is
    ``(B, C, H/8, W/8)``.

    ``streaming=False`` (the benchmark baseline): every frame is encoded on its own with ``forward``.
    ``streaming=True``: ``encode(frames, state)`` with the state carried from frame to frame and reset per sequence.
    ``bf16=True`` runs under CPU/GPU bfloat16 autocast; features are returned as float32.
    ``readout``: ``dense`` (the fused map, the benchmark's readout) or ``local`` (the local stream alone).
    """

    def __init__(self, model: Any, name: str = "encoder", streaming: bool = False, device: str = "cpu",
                 bf16: bool = False, readout: str = "dense") -> None:
        if readout not in ("dense", "local"):
            raise ValueError(f"readout must be 'dense' or 'local', got {readout!r}")
        self.readout = readout
        self.model = model.to(device).eval() if hasattr(model, "to") else model
        self.name = name
        self.streaming = streaming
        self.device = torch.device(device)
        self.bf16 = bf16
        self._state: Any = None

    def reset(self) -> None:
        self._state = None

    @torch.no_grad()
    def __call__(self, frame: np.ndarray) -> torch.Tensor:
        _check_frame(frame)
        x = torch.from_numpy(frame).to(self.device).permute(2, 0, 1)[None].float().div_(255.0)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            if self.streaming:
                output, self._state = self.model.encode(x, self._state)
            else:
                output = self.model(x)
        dense = output.dense if self.readout == "dense" else output.local
        if dense is None:
            raise ValueError(f"encoder '{self.name}': its output has no '{self.readout}' map")
        expected = (frame.shape[0] // STRIDE, frame.shape[1] // STRIDE)
        if dense.ndim != 4 or dense.shape[0] != 1 or tuple(dense.shape[-2:]) != expected:
            raise ValueError(f"encoder '{self.name}': {self.readout} output {tuple(dense.shape)}, expected (1, C, "
                             f"{expected[0]}, {expected[1]}) for a {frame.shape[1]}x{frame.shape[0]} frame")
        return l2_normalise_cells(dense[0].float()).cpu()


def load_encoder_pair(checkpoint: str, seed: int = 0, device: str = "cpu") -> tuple[Any, Any, dict]:
    """(trained model, the same architecture with random weights drawn after ``torch.manual_seed(seed)``, meta).

    ``perception.models.checkpoint.load_checkpoint`` rebuilds the model from the registry name and options in the
    checkpoint's JSON (``name``, ``encoder_kwargs``); ``create_encoder`` with the same name and options gives the
    ``random_init`` model. Imported here so that the ``rgb`` baseline works without the encoder package.
    """
    try:
        from perception.models.checkpoint import load_checkpoint
        from perception.models.registry import create_encoder
        import perception.models.variants  # noqa: F401  (registers the encoders)
    except ImportError as exc:
        raise RuntimeError(f"the encoder package is not available ({exc}); run with --methods rgb") from exc
    model, meta = load_checkpoint(checkpoint, device)
    torch.manual_seed(seed)
    random_model = create_encoder(meta["name"], **meta.get("encoder_kwargs", {}))
    return model, random_model.to(device).eval(), dict(meta)


def pooled_grid(image: np.ndarray) -> torch.Tensor:
    """Average of each 8x8 block of an ``(H, W)`` or ``(H, W, C)`` array -> ``(C, H/8, W/8)`` float32 tensor."""
    t = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))
    t = t[None] if t.ndim == 2 else t.permute(2, 0, 1)
    return F.avg_pool2d(t[None], STRIDE)[0]
