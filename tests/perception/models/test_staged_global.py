"""Staged global-stream runs (``global_stages > 1``): the same tokens as a run at once, swapped in on the last
stage; the per-stage block split; the first frame never staged; invalid settings refused; batched == alone."""

from __future__ import annotations

import pytest
import torch

from perception.config import ConfigError, EncoderConfig, load_config
from perception.models import create_encoder
from perception.runtime.model_loading import apply_streaming_settings


def _frames(n: int, seed: int = 0) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.rand(1, 3, 64, 96, generator=gen) for _ in range(n)]


@pytest.fixture()
def encoders():
    torch.manual_seed(0)
    sync = create_encoder("dualstream_tiny", global_every=4, global_scale=0.5).eval()
    staged = create_encoder("dualstream_tiny", global_every=4, global_scale=0.5, global_stages=2).eval()
    staged.load_state_dict(sync.state_dict())
    return sync, staged


def test_staged_run_equals_the_run_at_once_and_lands_on_its_last_stage(encoders):
    sync, staged = encoders
    frames = _frames(10)
    sync_tokens, log = [], []
    with torch.inference_mode():
        s_sync = s_staged = None
        for x in frames:
            _, s_sync = sync.encode(x, s_sync)
            out, s_staged = staged.encode(x, s_staged)
            sync_tokens.append(s_sync.global_tokens)
            log.append({"new": bool(out.keyframe[0]), "tokens": s_staged.global_tokens, "memory": s_staged.memory,
                        "done": None if s_staged.pending is None else s_staged.pending.done})
        # the memory after two sync runs (frames 0 and 4), computed directly
        first = sync.global_stream(sync.normalise(frames[0]), None, 0.5)
        second = sync.global_stream(sync.normalise(frames[4]), first.memory, 0.5)
    # frame 0 has no tokens to fall back on: its run is never staged
    assert log[0]["new"] and log[0]["done"] is None and torch.equal(log[0]["tokens"], sync_tokens[0])
    # keyframe 4 starts a run (1 of 2 blocks) and still fuses frame 0's tokens; frame 5 swaps in frame 4's
    assert [e["new"] for e in log] == [True, False, False, False, False, True, False, False, False, True]
    assert [e["done"] for e in log] == [None, None, None, None, 1, None, None, None, 1, None]
    assert torch.equal(log[4]["tokens"], sync_tokens[0])
    assert torch.equal(log[5]["tokens"], sync_tokens[4]) and torch.equal(log[9]["tokens"], sync_tokens[8])
    assert torch.equal(log[5]["memory"], second.memory)


def test_stage_split_covers_every_block_once():
    enc = create_encoder("dualstream_tiny", global_every=8, global_stages=1)
    enc.global_stream.vit.blocks = torch.nn.ModuleList(list(enc.global_stream.vit.blocks) * 6)  # depth 12
    for stages, split in ((8, [2, 2, 2, 2, 1, 1, 1, 1]), (4, [3, 3, 3, 3]), (5, [3, 3, 2, 2, 2]), (1, [12])):
        enc.set_schedule(8, 0.5, stages)
        assert [enc.stage_blocks(i) for i in range(stages)] == split


def test_invalid_stages_are_refused_with_the_field_named():
    with pytest.raises(ConfigError, match="global_stages"):
        EncoderConfig(global_every=4, global_stages=5)
    with pytest.raises(ConfigError, match="global_stages"):
        load_config(None, ["encoder.global_every=2", "encoder.global_stages=3"])
    enc = create_encoder("dualstream_tiny")
    with pytest.raises(ValueError, match="global_stages"):
        enc.set_schedule(4, 0.5, -1)
    apply_streaming_settings(enc, EncoderConfig(global_every=8, global_stages=2))
    assert (enc.global_every, enc.global_stages) == (8, 2)
    apply_streaming_settings(enc, EncoderConfig(global_every=8))  # the default 0: spread over the whole interval
    assert (enc.global_every, enc.global_stages) == (8, 8)
    apply_streaming_settings(enc, EncoderConfig(global_every=1))
    assert (enc.global_every, enc.global_stages) == (1, 1)


def test_fusion_query_pool_is_an_inference_setting():
    enc = create_encoder("dualstream_tiny")
    assert enc.fusion.query_pool == 1
    apply_streaming_settings(enc, EncoderConfig(fusion_query_pool=2))
    assert enc.fusion.query_pool == 2
    apply_streaming_settings(enc, EncoderConfig(fusion_query_pool=0))  # 0 leaves the model's own setting
    assert enc.fusion.query_pool == 2
    with torch.inference_mode():
        out, _ = enc.encode(torch.rand(1, 3, 48, 64))
    assert out.dense.shape[-2:] == (6, 8) and torch.isfinite(out.dense).all()  # read back at every cell
    with pytest.raises(ConfigError, match="fusion_query_pool"):
        EncoderConfig(fusion_query_pool=-1)


@pytest.mark.parametrize("stages", [1, 2])
def test_global_share_beside_the_local_stream_gives_the_same_outputs(encoders, stages):
    """``encode(beside=)`` runs the frame's global-stream share on a helper thread (under the caller's autocast and
    inference mode) while the local stream runs: outputs and states equal the one-thread encode, frame by frame,
    across whole runs and staged ones, in bf16 autocast as served on the CPU."""
    from perception.runtime.beside import Beside  # noqa: PLC0415

    encoder = encoders[1] if stages == 2 else encoders[0]
    beside = Beside("test_global_share")
    threads = []
    real = encoder._global_share

    def share(*args):
        import threading  # noqa: PLC0415

        threads.append((threading.current_thread().name, torch.is_autocast_enabled("cpu"),
                        torch.is_inference_mode_enabled()))
        return real(*args)

    frames = _frames(10, seed=3)
    try:
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            s_one = s_two = None
            for x in frames:
                one, s_one = encoder.encode(x, s_one)
                encoder._global_share = share
                two, s_two = encoder.encode(x, s_two, beside=beside)
                encoder._global_share = real
                assert torch.equal(one.dense, two.dense) and torch.equal(one.global_embedding, two.global_embedding)
                assert torch.equal(one.keyframe, two.keyframe) and torch.equal(s_one.memory, s_two.memory)
                assert (s_one.pending is None) == (s_two.pending is None)
    finally:
        beside.close()
    assert len(threads) == len(frames)
    assert all(name.startswith("test_global_share") and autocast and inference for name, autocast, inference in threads)


def test_a_streams_first_frame_runs_at_the_start_scale_until_the_first_staged_run_lands(encoders):
    """``global_start_scale``: frame 0 runs the global stream whole at the smaller scale (coarse tokens, the memory
    updated from the learned start), frames up to the next keyframe fuse them, and the staged run that keyframe
    starts at ``global_scale`` replaces them on its last stage, its memory update continuing from the coarse run's.
    ``start_scale=0`` (forward, the ONNX export) and unstaged schedules run frame 0 at ``global_scale``."""
    sync, staged = encoders
    staged.set_schedule(4, 0.5, 2, 0.25)
    frames = _frames(7)
    with torch.inference_mode():
        log, state = [], None
        for x in frames:
            out, state = staged.encode(x, state)
            log.append((bool(out.keyframe[0]), state.global_grid, state.global_tokens, state.pending))
        coarse = staged.global_stream(staged.normalise(frames[0]), None, 0.25)
        full = staged.global_stream(staged.normalise(frames[4]), coarse.memory, 0.5)
        plain, _ = staged.encode(frames[0], None, start_scale=0.0)
        sync_out, _ = sync.encode(frames[0], None)
        assert torch.equal(staged.forward(frames[0]).dense, sync_out.dense)
        sync.set_schedule(4, 0.5, 1, 0.25)  # unstaged: keyframes are whole runs, the first one too
        unstaged, unstaged_state = sync.encode(frames[0], None)
    assert [entry[0] for entry in log] == [True, False, False, False, False, True, False]
    assert [entry[1] for entry in log] == [coarse.grid] * 5 + [full.grid] * 2 and coarse.grid != full.grid
    assert log[0][3] is None and log[4][3] is not None and log[4][3].done == 1  # keyframe 4 starts the first staged run
    assert all(torch.equal(entry[2], coarse.patches) for entry in log[:5])
    assert torch.equal(log[5][2], full.patches) and torch.equal(state.memory, full.memory)
    assert torch.equal(plain.dense, sync_out.dense)  # start_scale=0: frame 0 at global_scale
    assert torch.equal(unstaged.dense, sync_out.dense) and unstaged_state.global_grid == full.grid
    with pytest.raises(ValueError, match="global_start_scale"):
        staged.set_schedule(4, 0.5, 2, -0.1)
    with pytest.raises(ConfigError, match="global_start_scale"):
        EncoderConfig(global_start_scale=5.0)
    apply_streaming_settings(staged, EncoderConfig(global_every=8, global_start_scale=0.3))
    assert staged.global_start_scale == 0.3
