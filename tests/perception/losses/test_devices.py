"""Every loss on each available device and under bf16 autocast: finite float32 losses close to the fp32 value,
and DINO's centre update through torch.distributed (gloo, one process)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.distributed as dist

from perception.losses import (ContrastiveRandomWalkLoss, DINOHead, DINOLoss, FutureLatentLoss, KoLeoLoss,
                               LatentPredictor, PatchInfoNCELoss, PhotometricAugment, VarianceCovarianceLoss,
                               iBOTPatchLoss)

DEVICES = ["cpu", pytest.param("cuda", marks=[pytest.mark.gpu, pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs CUDA")])]


def all_losses(device: str) -> dict[str, Callable[[], torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    head = DINOHead(16, 32, hidden_dim=32, bottleneck_dim=8).to(device)
    predictor = LatentPredictor(16, hidden_dim=16, cond_dim=16).to(device)
    tokens = torch.randn(2, 6, 16, generator=g).to(device)
    dense = torch.randn(2, 16, 4, 4, generator=g).to(device)
    clip = torch.randn(2, 3, 16, 4, 4, generator=g).to(device)
    mask = torch.rand(2, 6, generator=g).to(device) > 0.5
    mask[:, 0] = True
    return {
        "dino": lambda: DINOLoss(32).eval()(head(tokens[:, :2]).transpose(0, 1), head(tokens[:, 2:4]).transpose(0, 1)),
        "ibot": lambda: iBOTPatchLoss(32).eval()(head(tokens), head(tokens.flip(1)), mask),
        "nce": lambda: PatchInfoNCELoss()(dense, dense + 0.1),
        "crw": lambda: ContrastiveRandomWalkLoss(gaps=(1, 2))(clip),
        "pred": lambda: FutureLatentLoss()(predictor(dense, tokens[:, 0]), dense.roll(1, dims=3)),
        "koleo": lambda: KoLeoLoss()(tokens[0]),
        "vicreg": lambda: VarianceCovarianceLoss()(tokens.reshape(-1, 16)),
    }


@pytest.mark.parametrize("device", DEVICES)
def test_losses_under_bf16_autocast_match_fp32(device: str) -> None:
    torch.manual_seed(0)
    losses = all_losses(device)
    for name, compute in losses.items():
        ref = compute()
        with torch.autocast(device_type=device, dtype=torch.bfloat16):
            low = compute()
        assert low.dtype == torch.float32 and low.device.type == device, name
        assert torch.isfinite(low), name
        assert low.item() == pytest.approx(ref.item(), rel=0.05, abs=0.05), name


@pytest.mark.parametrize("device", DEVICES)
def test_augment_on_device_is_seeded(device: str) -> None:
    images = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0)).to(device)
    aug = PhotometricAugment(blur_prob=1.0)
    a = aug(images, torch.Generator().manual_seed(1))
    b = aug(images, torch.Generator().manual_seed(1))
    assert a.device.type == device and torch.equal(a, b)


def test_dino_centre_update_through_distributed(tmp_path) -> None:
    if not dist.is_available():
        pytest.skip("torch.distributed unavailable")
    store = dist.FileStore(str(tmp_path / "store"), 1)
    dist.init_process_group("gloo", store=store, rank=0, world_size=1)
    try:
        loss_fn = DINOLoss(2, center_momentum=0.5, skip_same_view=False).train()
        loss_fn(torch.zeros(1, 2, 2), torch.tensor([[[1.0, 0.0], [3.0, 2.0]]]))
        assert loss_fn.center.tolist() == pytest.approx([1.0, 0.5])   # 0.5 * mean([1, 0], [3, 2])
    finally:
        dist.destroy_process_group()
