"""Registered ``DualStreamEncoder`` sizes; each is a few lines over ``build_dualstream``.

``dualstream_tiny``: test-sized (ViT D=96, depth 2), fast on CPU. ``dualstream_s``: the default, global stream =
DINOv2 ViT-S/14 exactly (``dinov2_vits14`` loads; ``num_register_tokens=4`` for ``dinov2_vits14_reg4``).
``dualstream_b``: global stream = DINOv2 ViT-B/14.
"""

from __future__ import annotations

import inspect
from typing import Callable, Sequence

from perception.models.encoder import DualStreamEncoder
from perception.models.fusion import Fusion
from perception.models.global_stream import GlobalStream
from perception.models.local_stream import LocalStream
from perception.models.registry import register_encoder
from perception.models.temporal import MemoryUpdate
from perception.models.vit import VisionTransformer, vit_base, vit_small, vit_tiny


def build_dualstream(
    vit_fn: Callable[..., VisionTransformer],
    num_register_tokens: int = 0,
    local_channels: Sequence[int] = (24, 48, 96),
    local_depths: Sequence[int] = (0, 1, 2),
    out_channels: int = 128,
    embed_dim: int | None = None,
    memory_tokens: int = 8,
    fusion_dim: int = 64,
    fusion_heads: int = 2,
    fusion_query_pool: int = 1,
    global_every: int = 4,
    global_scale: float = 0.5,
    global_stages: int = 1,
) -> DualStreamEncoder:
    """Wire the streams: ``embed_dim`` defaults to the ViT's width."""
    vit = vit_fn(num_register_tokens=num_register_tokens)
    memory = MemoryUpdate(vit.embed_dim, num_tokens=memory_tokens, num_heads=vit.num_heads)
    local = LocalStream(channels=tuple(local_channels), depths=tuple(local_depths))
    fusion = Fusion(
        local.out_channels, vit.embed_dim, out_channels, embed_dim or vit.embed_dim,
        attn_dim=fusion_dim, num_heads=fusion_heads, query_pool=fusion_query_pool,
    )
    return DualStreamEncoder(local, GlobalStream(vit, memory), fusion, global_every, global_scale, global_stages)


def _variant(vit_fn: Callable[..., VisionTransformer], **defaults) -> Callable[..., DualStreamEncoder]:
    """A factory over ``build_dualstream`` with its own defaults and an accurate signature for the registry."""
    def factory(**kwargs) -> DualStreamEncoder:
        return build_dualstream(vit_fn, **{**defaults, **kwargs})

    params = [
        p.replace(default=defaults.get(name, p.default))
        for name, p in inspect.signature(build_dualstream).parameters.items()
        if name != "vit_fn"
    ]
    factory.__signature__ = inspect.Signature(params, return_annotation=DualStreamEncoder)
    return factory


dualstream_tiny = register_encoder("dualstream_tiny")(_variant(
    vit_tiny, local_channels=(8, 16, 32), local_depths=(0, 0, 1), out_channels=32, memory_tokens=4,
    fusion_dim=32, fusion_heads=2,
))
dualstream_s = register_encoder("dualstream_s")(_variant(vit_small))
dualstream_b = register_encoder("dualstream_b")(_variant(
    vit_base, local_channels=(32, 64, 128), out_channels=192, fusion_dim=96,
))
