"""``AdaptationConfig``: the settings of the online adapter (``perception.adaptation.OnlineAdapter``).

Groups: what adapts (``params``: ``"norm"`` = affine weights and biases of normalisation layers, as TENT (Wang et
al. 2021) adapts; ``"norm+adapters"`` adds parameters whose names contain ``adapter``, ``ls`` layer scales or
``lora``; ``"patterns"`` uses ``param_patterns`` only; extra comma-separated ``param_patterns`` (fnmatch patterns on
parameter names) are added to any choice), how hard (``lr``, ``budget``), with which objective weights (a term is off
at weight 0), the buffer, the guard and persistence. Scalars only where the node exposes them as parameters
(``adaptation.lr``); ``gaps`` is a tuple and therefore YAML-only.
"""

from __future__ import annotations

from dataclasses import dataclass

from perception.config import ConfigError

PARAM_CHOICES = ("input", "norm", "norm+adapters", "patterns")


@dataclass
class AdaptationConfig:
    enabled: bool = False
    params: str = "input"                 # input | norm | norm+adapters | patterns
    input_adapter: bool = True            # add an identity-initialised per-channel input affine (InputAffine)
    first_norms: int = 0                  # params "input": the input affine and the first N norm layers
    param_patterns: str = ""              # comma-separated fnmatch patterns added to the choice above
    lr: float = 5e-2                      # AdamW learning rate on the adapted subset
    # BN running statistics re-estimated on served frames (momentum per frame; 0: off), measured on every N-th frame,
    # and (gated) only while the raw frames are outside natural footage's band: their luma mean more than
    # exposure_trigger_margin from exposure_mean (dusk, night, over-exposure) or (gate_contrast) their contrast beyond
    # a factor exposure_trigger_factor (haze, low contrast), or their noise above gate_noise grey levels (0: not);
    # when the gate closes the source statistics come back. Full DAVIS sequences (README, adaptation): they recover
    # low light (J&F 0.38 -> 0.60), fog (0.56 -> 0.65) and, with the smoothing, noise; they lose parkour under low
    # contrast (0.43 -> 0.04), as the norm_stats baseline does. Gating on the mean alone opened late on fog (mean
    # 0.68, near the edge) and lost parkour there instead (J&F 0.41)
    norm_stats_momentum: float = 0.05
    norm_stats_every: int = 1
    norm_stats_gated: bool = True
    norm_stats_gate_noise: float = 8.0
    norm_stats_gate_contrast: bool = True
    weight_decay: float = 0.0
    ema_momentum: float = 0.99            # EMA teacher of the adapted subset (mean teacher, CoTTA)
    # budget: the worker sleeps so that neither limit is exceeded (0 disables a limit)
    max_updates_per_s: float = 1.0
    compute_share: float = 0.15           # fraction of wall time the worker may spend computing (0, 1]
    # buffer of recent frames, stored downscaled as uint8
    buffer_size: int = 32
    buffer_every: int = 1                 # keep every N-th frame, so the buffer spans N times longer
    train_width: int = 128
    train_height: int = 96
    clip_length: int = 3                  # frames per update: t, t+g, t+2g, ... with g drawn from gaps
    gaps: tuple[int, ...] = (1, 2, 4)
    min_frames: int = 4                   # frames buffered before the first update
    # objective weights (0 switches a term off)
    patch_weight: float = 0.0             # PatchInfoNCE between photometric views (student vs EMA teacher)
    temporal_weight: float = 0.0          # contrastive random walk across the clip
    anchor_weight: float = 0.01            # L2 of (adapted - source) on the subset, summed
    collapse_weight: float = 0.0          # VICReg variance/covariance on pooled dense features
    exposure_weight: float = 1.0          # the input adapter's objective (ExposureLoss): its noise term, and luma
    # the luma hinges (mean / contrast of the affine's output pulled into a band). Off by default: on full DAVIS
    # sequences the contrast it restores cost correspondence (J&F lowcontrast 0.58 -> 0.33, fog 0.56 -> 0.38)
    exposure_luma: bool = False
    exposure_mean: float = 0.45
    exposure_std: float = 0.2
    exposure_mean_margin: float = 0.22
    exposure_std_factor: float = 1.45
    # the luma hinges start only past a wider band (while the input affine is at the identity; ExposureLoss)
    exposure_trigger_margin: float = 0.27
    exposure_trigger_factor: float = 2.0
    # the smoothing of the input adapter pulls the served frames' noise (Immerkaer, grey levels, measured on crops
    # at the served resolution) below this (0: no noise term, no crops buffered). Clean centre crops: vtest 1.3-2.8,
    # DAVIS at half size 3.5-6.5 (texture counts); under the noise shift 10.2-18.9
    exposure_noise_max: float = 8.0
    detail_height: int = 96               # the buffered crops at the served resolution (noise term)
    detail_width: int = 128
    input_channels: int = 1               # InputAffine: 1 shared gain/bias (colour-preserving) or 3 per channel
    align_weight: float = 0.0             # activation statistics vs the source's BN statistics (StatsAlignmentLoss)
    align_margin: float = 0.6             # discrepancy clean footage stays within (no gradient below it)
    align_units: int = 3                  # the last N conv+BN units of the local stream (0: all)
    steps_per_update: int = 10             # optimizer steps on each sampled clip
    walk_grid: int = 6                    # dense maps are pooled to walk_grid x walk_grid nodes for the walk
    # guard (perception.adaptation.guard)
    guard_every: int = 1                  # check every N updates
    std_ratio_min: float = 0.5            # feature std below this fraction of the source's trips
    rank_ratio_min: float = 0.5           # effective rank below this fraction of the source's trips
    drift_max: float = 0.98               # mean cosine distance adapted vs source features above this trips
    exposure_tolerance: float = 0.05      # exposure objective may not rise by more than this in one update
    loss_rise_factor: float = 3.0         # EMA loss above this factor times its best value trips
    loss_ema: float = 0.9
    snapshot_every: int = 10              # good updates between snapshots
    max_trips: int = 3                    # trips within trip_window_s before falling back to the source
    trip_window_s: float = 300.0
    # persistence
    state_dir: str = ""                   # empty: do not persist
    save_every_s: float = 60.0
    resume: bool = True
    seed: int = 0

    def budget_wait(self, seconds: float) -> float:
        """Seconds the worker sleeps after an update that took ``seconds``, so both budget limits hold."""
        wait = 0.0
        if self.max_updates_per_s > 0:
            wait = max(wait, 1.0 / self.max_updates_per_s - seconds)
        if self.compute_share < 1.0:
            wait = max(wait, seconds * (1.0 - self.compute_share) / self.compute_share)
        return wait

    def __post_init__(self) -> None:
        if self.params not in PARAM_CHOICES:
            raise ConfigError(f"adaptation.params: expected one of {PARAM_CHOICES}, got {self.params!r}")
        checks = [("lr", self.lr >= 0), ("compute_share", 0.0 < self.compute_share <= 1.0),
                  ("max_updates_per_s", self.max_updates_per_s >= 0), ("buffer_size", self.buffer_size >= 2),
                  ("buffer_every", self.buffer_every >= 1),
                  ("clip_length", 2 <= self.clip_length),
                  ("norm_stats_momentum", 0.0 <= self.norm_stats_momentum <= 1.0),
                  ("norm_stats_every", self.norm_stats_every >= 1),
                  ("norm_stats_gate_noise", self.norm_stats_gate_noise >= 0), ("ema_momentum", 0.0 <= self.ema_momentum <= 1.0),
                  ("train_width", self.train_width >= 16), ("train_height", self.train_height >= 16),
                  ("exposure_noise_max", self.exposure_noise_max >= 0),
                  ("exposure_trigger_margin", self.exposure_trigger_margin >= self.exposure_mean_margin),
                  ("exposure_trigger_factor", self.exposure_trigger_factor >= self.exposure_std_factor), ("detail_height", self.detail_height >= 3),
                  ("detail_width", self.detail_width >= 3),
                  ("snapshot_every", self.snapshot_every >= 1), ("max_trips", self.max_trips >= 1),
                  ("guard_every", self.guard_every >= 1), ("steps_per_update", self.steps_per_update >= 1),
                  ("first_norms", self.first_norms >= 0), ("align_margin", self.align_margin >= 0),
                  ("align_units", self.align_units >= 0), ("gaps", bool(self.gaps) and min(self.gaps) >= 1)]
        for name, ok in checks:
            if not ok:
                raise ConfigError(f"adaptation.{name}: invalid value {getattr(self, name)!r}")
        if (self.clip_length - 1) * min(self.gaps) >= self.buffer_size:
            raise ConfigError(f"adaptation: a clip of {self.clip_length} frames at gap {min(self.gaps)} does not fit "
                             f"a buffer of {self.buffer_size}")
