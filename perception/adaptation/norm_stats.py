"""``NormStatsTracker``: re-estimates the running statistics of batch-normalisation layers on the stream.

Covariate-shift adaptation by normalisation statistics (Schneider et al. 2020, "Improving robustness against common
corruptions by covariate shift adaptation"; Nado et al. 2020, "Evaluating prediction-time batch normalization"):
no gradients, no labels, only the BN layers' ``running_mean`` / ``running_var`` move toward the statistics of the
frames the model serves, as an exponential moving average of momentum ``momentum`` per frame. A forward hook reads
each BN layer's input after the layer has used the current statistics, so the frame being encoded is normalised
with the statistics of the frames before it, and the model stays in eval mode. ``ConvNormAct`` folds its BN into
the convolution in eval mode (the BN module is never called), so for a BN that sits in a module with ``conv`` and
``norm`` the hook is on that module and runs its ``conv`` once more on the input (the one extra cost: the local
stream's convolutions, once per frame). Alone it is the ``norm_stats`` baseline of ``dualstream eval adapt``; ``OnlineAdapter`` uses it
under its affine updates when ``AdaptationConfig.norm_stats_momentum > 0`` (as TENT re-estimates the statistics
while it trains the affine parameters, Wang et al. 2021).
"""

from __future__ import annotations

import threading

import torch
from torch import nn

BN_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
StatsSet = dict[str, torch.Tensor]


def bn_modules(model: nn.Module) -> dict[str, nn.modules.batchnorm._BatchNorm]:
    """``{module name: BN module}`` of the layers that track running statistics."""
    return {name: m for name, m in model.named_modules()
            if isinstance(m, BN_TYPES) and m.track_running_stats and m.running_mean is not None}


def read_stats(model: nn.Module) -> StatsSet:
    """Copies of every tracked BN layer's ``running_mean`` and ``running_var``."""
    out: StatsSet = {}
    for name, m in bn_modules(model).items():
        out[f"{name}.running_mean"] = m.running_mean.detach().clone()
        out[f"{name}.running_var"] = m.running_var.detach().clone()
    return out


@torch.no_grad()
def write_stats(model: nn.Module, stats: StatsSet) -> None:
    """Copy ``stats`` (from ``read_stats``) into ``model``'s BN layers."""
    for name, m in bn_modules(model).items():
        m.running_mean.copy_(stats[f"{name}.running_mean"])
        m.running_var.copy_(stats[f"{name}.running_var"])


class _Hook:
    """The forward hook; a deep copy of the hooked model (the adapter's worker copy) gets a hook that does nothing."""

    def __init__(self, tracker: NormStatsTracker | None, norm: nn.Module, conv: nn.Module | None = None) -> None:
        self.tracker, self.norm, self.conv = tracker, norm, conv

    def __call__(self, module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        if self.tracker is None or not self.tracker.enabled or module.training:
            return
        with torch.no_grad():
            x = inputs[0] if self.conv is None else self.conv(inputs[0])
        self.tracker.update(self.norm, x)

    def __deepcopy__(self, memo: dict) -> _Hook:
        return _Hook(None, self.norm)


class NormStatsTracker:
    """Hooks ``model``'s BN layers so each forward pass moves their statistics toward its input's (``momentum``)."""

    def __init__(self, model: nn.Module, momentum: float = 0.05) -> None:
        if not 0.0 < momentum <= 1.0:
            raise ValueError(f"NormStatsTracker: momentum must be in (0, 1], got {momentum}")
        self.model = model
        self.momentum = float(momentum)
        self.source = read_stats(model)
        self.enabled = True
        self.frames = 0
        self._lock = threading.Lock()
        norms = bn_modules(model)
        self._handles = []
        for name, module in model.named_modules():
            conv, norm = getattr(module, "conv", None), getattr(module, "norm", None)
            if isinstance(conv, nn.Conv2d) and any(norm is n for n in norms.values()):
                self._handles.append(module.register_forward_hook(_Hook(self, norm, conv)))
                norms = {k: v for k, v in norms.items() if v is not norm}
        self._handles += [m.register_forward_hook(_Hook(self, m)) for m in norms.values()]

    @torch.no_grad()
    def update(self, module: nn.Module, x: torch.Tensor) -> None:
        """Move BN ``module``'s statistics toward those of its input ``x`` ``(N, C, ...)``."""
        x = x.detach().float()
        dims = [d for d in range(x.dim()) if d != 1]
        m = self.momentum
        with self._lock:
            module.running_mean.mul_(1.0 - m).add_(x.mean(dims).to(module.running_mean.dtype), alpha=m)
            module.running_var.mul_(1.0 - m).add_(x.var(dims).to(module.running_var.dtype), alpha=m)

    def snapshot(self) -> StatsSet:
        """The current statistics (copies, taken under the hook's lock)."""
        with self._lock:
            return read_stats(self.model)

    def reset(self) -> None:
        """Back to the source model's statistics."""
        with self._lock:
            write_stats(self.model, self.source)

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
