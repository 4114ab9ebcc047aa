"""``StatsAlignmentLoss``: label-free alignment of the activation statistics of the shifted stream to the source's.

ActMAD (Mirza et al. 2023, "Activation matching for test-time adaptation") and TTT++ (Liu et al. 2021) adapt to a
distribution shift by matching the mean and variance of intermediate activations on the test stream to those stored
from the source (training) data; BN layers already store them (``running_mean``, ``running_var``), so no source data
is needed. For every conv + BN unit (``ConvNormAct``-like: a module with ``conv`` and a tracking ``norm``), on a
batch of buffered frames the pre-normalisation activations are standardised with the source statistics,
``z = (conv(x) - running_mean) / sqrt(running_var + eps)``, and the unit's discrepancy is
``mean_c |mean(z_c)| + |std(z_c) - 1|`` (0 on data like the training data). The loss is the mean over units
minus a ``margin``, floored at 0: natural footage differs from the training data a little (DAVIS' clean frames by
about 0.2 with the shipped checkpoint), and a stream within that margin gets no gradient, so an unshifted stream is
left as it is (as EATA, Niu et al. 2022, updates only on samples that need it). Only the local stream runs when the
model has one (a few milliseconds at the buffer's size).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn


def conv_norm_units(model: nn.Module) -> list[nn.Module]:
    """Modules with a ``conv`` (``nn.Conv2d``) and a ``norm`` (BatchNorm tracking statistics), in order."""
    units = []
    for module in model.modules():
        conv, norm = getattr(module, "conv", None), getattr(module, "norm", None)
        if (isinstance(conv, nn.Conv2d) and isinstance(norm, nn.modules.batchnorm._BatchNorm)
                and norm.running_mean is not None):
            units.append(module)
    return units


def unit_discrepancy(unit: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``mean_c |mean(z_c)| + |std(z_c) - 1|`` of the unit's standardised pre-normalisation activations."""
    conv, norm = unit.conv, unit.norm
    y = F.conv2d(x.float(), conv.weight.float(), None, conv.stride, conv.padding, conv.dilation, conv.groups)
    z = (y - norm.running_mean.view(1, -1, 1, 1)) * torch.rsqrt(norm.running_var.view(1, -1, 1, 1) + norm.eps)
    mean = z.mean(dim=(0, 2, 3))
    std = (z.var(dim=(0, 2, 3), unbiased=False) + 1e-6).sqrt()
    return (mean.abs() + (std - 1.0).abs()).mean()


class StatsAlignmentLoss(nn.Module):
    """``forward(model, frames (T, 3, h, w) in [0, 1]) -> (loss, discrepancy)``: the hinge loss and the raw mean
    discrepancy (detached) over the model's conv + BN units (the last ``max_units`` of them when > 0: the deep
    units separate a photometric shift from a change of scene better than the first ones do)."""

    def __init__(self, margin: float = 0.3, max_units: int = 0) -> None:
        super().__init__()
        self.margin = float(margin)
        self.max_units = int(max_units)

    @contextlib.contextmanager
    def _captured(self, units: list[nn.Module], out: list[torch.Tensor]) -> Iterator[None]:
        handles = [u.register_forward_hook(lambda m, args, _y: out.append(unit_discrepancy(m, args[0])))
                   for u in units]
        try:
            yield
        finally:
            for h in handles:
                h.remove()

    def forward(self, model: nn.Module, frames: torch.Tensor) -> tuple[torch.Tensor, float]:  # type: ignore[override]
        units = conv_norm_units(getattr(model, "local_stream", model))
        if self.max_units > 0:
            units = units[-self.max_units:]
        if not units:
            return torch.zeros((), device=frames.device), 0.0
        values: list[torch.Tensor] = []
        with self._captured(units, values):
            local = getattr(model, "local_stream", None)
            if local is not None and hasattr(model, "mean") and hasattr(model, "std"):
                x = (frames - model.mean.to(frames.dtype)) / model.std.to(frames.dtype)
                stride = getattr(local, "stride", 8)
                x = F.pad(x, (0, -x.shape[-1] % stride, 0, -x.shape[-2] % stride), mode="replicate")
                local(x)
            else:
                model(frames)
        discrepancy = torch.stack(values).mean()
        return F.relu(discrepancy - self.margin), float(discrepancy.detach())
