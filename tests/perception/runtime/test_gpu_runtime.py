"""The CUDA side of the runtime (perception/runtime/gpu.py): what can be checked without a GPU here, the rest on
the device with bench/gpu_encoder.py (the pipeline part times runtime.compile)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from perception.config import ConfigError, load_config
from perception.models import create_encoder
from perception.models.types import EncoderOutput
from perception.runtime.gpu import PinnedUpload, compile_encoder, owned, uncompile_encoder


def test_compile_setting_is_checked_and_refused_on_the_cpu():
    with pytest.raises(ConfigError, match="runtime.compile"):
        load_config(None, ["runtime.compile=fast"])
    from perception.runtime.perceiver import Perceiver

    cfg = load_config(None, ["encoder.name=dualstream_tiny", "runtime.device=cpu", "runtime.compile=cuda_graphs",
                             "runtime.warmup_frames=0"])
    with pytest.raises(ConfigError, match="needs a CUDA device"):
        Perceiver(cfg)


def test_compile_wraps_the_per_frame_parts_and_uncompile_restores_them():
    encoder = create_encoder("dualstream_tiny")
    local, fusion, global_stream = encoder.local_stream, encoder.fusion, encoder.global_stream
    assert not compile_encoder(encoder, "none") and encoder.local_stream is local
    assert compile_encoder(encoder, "inductor")  # lazy: nothing is compiled until a call
    assert encoder.local_stream._orig_mod is local and encoder.fusion._orig_mod is fusion
    assert encoder.global_stream is global_stream
    assert set(encoder.state_dict()) != set()  # still a module with its parameters
    uncompile_encoder(encoder)
    assert encoder.local_stream is local and encoder.fusion is fusion


def test_owned_output_shares_no_memory_with_the_graphs():
    out = EncoderOutput(dense=torch.rand(1, 4, 3, 5), global_embedding=torch.rand(1, 8), local=torch.rand(1, 2, 3, 5),
                        keyframe=torch.tensor([True]))
    mine = owned(out)
    for name in ("dense", "global_embedding", "local"):
        a, b = getattr(out, name), getattr(mine, name)
        assert torch.equal(a, b) and a.data_ptr() != b.data_ptr()
    assert mine.keyframe is out.keyframe


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (run bench/gpu_encoder.py there)")
def test_pinned_upload_never_overwrites_a_copy_in_flight():
    upload = PinnedUpload(torch.device("cuda"))
    frames = [np.full((720, 1280, 3), i, np.uint8) for i in range(6)]
    outs = [upload(f) for f in frames]
    torch.cuda.synchronize()
    assert [int(o[0, 0, 0, 0]) for o in outs] == list(range(6))


def test_attaching_an_adapter_puts_the_eager_modules_back_first():
    """The adapter deep-copies the serving encoder and hooks its streams: it must see the eager modules."""
    from perception.adaptation import attach_online_adapter
    from perception.adaptation.config import AdaptationConfig
    from perception.runtime.perceiver import Perceiver

    perceiver = Perceiver(load_config(None, ["encoder.name=dualstream_tiny", "runtime.device=cpu",
                                             "runtime.warmup_frames=0"]))
    local = perceiver.encoder.local_stream
    assert compile_encoder(perceiver.encoder, "inductor")  # as runtime.compile does on a GPU (lazy: never run here)
    perceiver.compiled = True
    adapter, _ = attach_online_adapter(perceiver, AdaptationConfig(enabled=True), start=False)
    try:
        assert perceiver.encoder.local_stream is local and not perceiver.compiled
        assert not hasattr(adapter.worker_model.local_stream, "_orig_mod")
    finally:
        adapter.stop(save=False)
