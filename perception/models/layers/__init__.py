"""Building blocks, one small module each; models receive them as arguments (DINOv2 style)."""

from perception.models.layers.attention import Attention
from perception.models.layers.block import Block
from perception.models.layers.conv import ConvNormAct, DepthwiseSeparable
from perception.models.layers.cross_attention import CrossAttention
from perception.models.layers.layer_scale import LayerScale
from perception.models.layers.mlp import Mlp
from perception.models.layers.patch_embed import PatchEmbed
from perception.models.layers.pos_encoding import sincos_2d

__all__ = [
    "Attention",
    "Block",
    "ConvNormAct",
    "CrossAttention",
    "DepthwiseSeparable",
    "LayerScale",
    "Mlp",
    "PatchEmbed",
    "sincos_2d",
]
