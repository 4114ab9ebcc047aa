"""Encoders: layers, the two streams, fusion, ``DualStreamEncoder``, the registry and checkpoints.

``create_encoder("dualstream_s", global_every=4)`` builds the default encoder; ``list_encoders()`` names them.
"""

from perception.models import variants as _variants  # noqa: F401  (registers the built-in encoders)
from perception.models.dinov2_weights import StateDictError, load_dinov2_state_dict
from perception.models.encoder import DualStreamEncoder, detach_state
from perception.models.registry import create_encoder, list_encoders, register_encoder
from perception.models.types import EncoderOutput, EncoderState

__all__ = [
    "DualStreamEncoder",
    "EncoderOutput",
    "EncoderState",
    "StateDictError",
    "create_encoder",
    "detach_state",
    "list_encoders",
    "load_dinov2_state_dict",
    "register_encoder",
]
