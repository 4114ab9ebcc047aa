"""Label propagation on DAVIS-2016: the feature-quality benchmark of EVAL_PROTOCOL.md.

Protocol (Jabri et al., "Space-Time Correspondence as a Contrastive Random Walk", NeurIPS 2020, Sec. 4.1, with the
parameters fixed in EVAL_PROTOCOL.md): frames edge-padded (right/bottom) to a multiple of 8 (854x480 -> 856x480,
a 60x107 grid); features at stride 8, L2-normalised per cell; the first frame's label is its ground-truth mask
average-pooled to the grid (soft background/foreground). Frame t is labelled from a context of the first frame (its
ground truth) and the previous 7 frames (their soft predictions; a frame is used once, so frame 0 is not doubled
while t <= 7): cosine similarity inside a +-12 cell window around each cell in every context frame, top-5 taken
jointly over all context frames, softmax of similarity / 0.1 over those 5, label = weighted sum. Soft labels are
upsampled bilinearly to the padded frame, cropped, and the argmax is the mask (ties go to background).
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import asdict, dataclass
from typing import Callable, Iterator, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from perception.eval.davis import DavisSequence, load_sequence
from perception.eval.features import STRIDE, FeatureExtractor, pooled_grid
from perception.eval.segmentation_metrics import boundary_f_measure, region_similarity


@dataclass(frozen=True)
class PropagationParams:
    """The protocol's constants. ``tile`` (query cells per tile side) and ``max_elements`` (similarities held at
    once) only set how the work is cut: the result does not depend on them (16 and 2M were fastest here)."""

    radius: int = 12
    topk: int = 5
    temperature: float = 0.1
    n_context: int = 7
    stride: int = STRIDE
    tile: int = 16
    max_elements: int = 2_000_000
    threads: int = 1  # torch intra-op threads while propagating (many small ops: 2 threads were 2-10x slower here)

    def as_dict(self) -> dict:
        return asdict(self)


def pad_to_stride(image: np.ndarray, stride: int = STRIDE) -> np.ndarray:
    """Edge-pad ``(H, W[, C])`` on the bottom and right to multiples of ``stride`` (854x480 -> 856x480)."""
    pad_h, pad_w = (-image.shape[0]) % stride, (-image.shape[1]) % stride
    if pad_h == 0 and pad_w == 0:
        return image
    widths = [(0, pad_h), (0, pad_w)] + [(0, 0)] * (image.ndim - 2)
    return np.pad(image, widths, mode="edge")


def first_frame_label(mask: np.ndarray, stride: int = STRIDE) -> torch.Tensor:
    """Soft ``(2, h, w)`` label (background, foreground) of a boolean mask: its pooled foreground fraction."""
    foreground = pooled_grid(pad_to_stride(np.asarray(mask, dtype=np.float32), stride))[0]
    return torch.stack([1.0 - foreground, foreground])


_INVALID = 1.0e4  # similarity offset of window cells outside the grid (cosine similarities lie in [-1, 1])


def _column_tiles(grid: torch.Tensor, tile: int, radius: int, validity: bool = False) -> torch.Tensor:
    """``(T, C, h, w)`` -> ``(nh, w, C', T, K, A)``: a strided view (nothing copied) of the key patches of the tiles
    of ``tile`` x 1 query cells over a nh = ceil(h / tile) x w tile grid, K = tile + 2 * radius rows, A = 2 * radius
    + 1 columns, zero off the grid. ``_tile_chunk`` copies out the patches of a run of tiles.

    With ``validity`` an extra channel is appended, 0 on the grid and -_INVALID off it: a query with an extra
    channel of 1 then gets -_INVALID from the same matrix product for window cells off the grid.

    The patches overlap (each key cell is in ~K/tile x A of them), so copying them all at once made a tensor of
    about 1.8 GB for a full DAVIS frame and took 1.25 of the 2.07 s a frame cost; copying a chunk's worth at a time
    gives the same numbers with memory that stays in cache."""
    t, c, h, w = grid.shape
    nh, rows, side = math.ceil(h / tile), tile + 2 * radius, 2 * radius + 1
    padded = grid.new_zeros(t, c + int(validity), nh * tile + 2 * radius, w + 2 * radius)
    if validity:
        padded[:, c] = -_INVALID
        padded[:, c, radius:radius + h, radius:radius + w] = 0.0
    padded[:, :c, radius:radius + h, radius:radius + w] = grid
    patches = padded.unfold(2, rows, tile).unfold(3, side, 1)  # (T, C', nh, w, K, A)
    return patches.permute(2, 3, 1, 0, 4, 5)


def _tile_chunk(tiles: torch.Tensor, lo: int, hi: int) -> torch.Tensor:
    """Tiles ``lo .. hi - 1`` (row-major over the tile grid) of a ``_column_tiles`` view, copied:
    ``(hi - lo, C', T, K, A)``. Sliced row by row (a slice copies about 2.5x faster than an index gather here)."""
    w = tiles.shape[1]
    parts = []
    while lo < hi:
        row, col = divmod(lo, w)
        end = min(hi - lo, w - col)
        parts.append(tiles[row, col:col + end])
        lo += end
    if len(parts) == 1:
        return parts[0].contiguous()
    return torch.cat(parts)


def _padded_labels(labels: torch.Tensor, height: int, radius: int) -> tuple[torch.Tensor, int, int]:
    """``(T, L, h, w)`` -> ``(L, T * H' * W')`` zero-padded maps read in place (H' = height + 2R, W' = w + 2R):
    cell (t, r, col) of the key patch of tile (i, j) is padded cell (i * S + r, j + col) of frame t."""
    t, n_lab, h, w = labels.shape
    padded_h, padded_w = height + 2 * radius, w + 2 * radius
    label_map = labels.new_zeros(n_lab, t, padded_h, padded_w)
    label_map[:, :, radius:radius + h, radius:radius + w] = labels.transpose(0, 1)
    return label_map.reshape(n_lab, -1), padded_h, padded_w


def _group_size(side: int) -> int:
    """Window rows per group for the pruned top-k: the divisor of ``side`` closest to its square root."""
    return min((d for d in range(1, side + 1) if side % d == 0), key=lambda d: abs(d * d - side))


class WindowedPropagator:
    """Labels a query frame from context frames: windowed cosine affinity, joint top-k, softmax, weighted sum.

    Work is cut into tiles of S x 1 query cells that share one (S + 2R) x (2R + 1) key patch per context frame (one
    batched matrix product); in that layout the window of query u in frame t is one contiguous run of (2R + 1)^2
    similarities. The joint top-k is exact and pruned: each window is cut into groups of G whole rows, every group
    is reduced to its maximum, the k groups with the largest maxima are kept (the k best cells always lie in them)
    and the top-k is taken over their cells. Ties may pick different, equally similar cells than a full sort.
    """

    def __init__(self, params: PropagationParams = PropagationParams()) -> None:
        self.params = params

    def __call__(self, query: torch.Tensor, keys: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """query ``(C, h, w)``, keys ``(T, C, h, w)`` (unit-norm cells), labels ``(T, L, h, w)`` -> ``(L, h, w)``."""
        previous = torch.get_num_threads()
        if self.params.threads > 0:
            torch.set_num_threads(self.params.threads)
        try:
            with torch.no_grad():
                return self._propagate(query, keys, labels)
        finally:
            torch.set_num_threads(previous)

    def _propagate(self, query: torch.Tensor, keys: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        p = self.params
        c, h, w = query.shape
        n_ctx, n_lab = keys.shape[0], labels.shape[1]
        if keys.shape[1:] != query.shape or labels.shape[0] != n_ctx or labels.shape[2:] != query.shape[1:]:
            raise ValueError(f"shapes: query {tuple(query.shape)}, keys {tuple(keys.shape)}, "
                             f"labels {tuple(labels.shape)}")
        s, side = p.tile, 2 * p.radius + 1
        nh, rows = math.ceil(h / s), s + 2 * p.radius
        q = torch.ones(c + 1, nh * s, w)
        q[:c] = 0.0
        q[:c, :h] = query
        q_tiles = q.view(c + 1, nh, s, w).permute(1, 3, 2, 0).reshape(nh * w, s, c + 1)
        k_tiles = _column_tiles(keys.float(), s, p.radius, validity=True)  # view (nh, w, C+1, T, K, A)
        label_map, padded_h, padded_w = _padded_labels(labels.float(), nh * s, p.radius)
        tile_ids = torch.arange(nh * w)
        tile_origin = ((tile_ids // w) * s * padded_w + tile_ids % w).view(-1, 1, 1)  # (n, 1, 1)
        block, window = n_ctx * rows * side, side * side
        group = _group_size(side) * side
        n_groups = window // group
        # flat offset, in one tile's (S, T, K*A) similarities, of group g of query u in frame t
        u = torch.arange(s).view(s, 1, 1)
        group_start = (u * block + torch.arange(n_ctx).view(1, n_ctx, 1) * rows * side + u * side
                       + torch.arange(n_groups).view(1, 1, n_groups) * group).reshape(s, n_ctx * n_groups)
        query_offset = (torch.arange(s) * block).view(1, s, 1)
        in_group = torch.arange(group).view(1, 1, 1, group)
        chunk = max(1, p.max_elements // ((s + c + 1) * block))
        out = torch.empty(nh * w, n_lab, s)
        for lo in range(0, nh * w, chunk):
            hi = min(lo + chunk, nh * w)
            m = hi - lo
            sims = torch.bmm(q_tiles[lo:hi], _tile_chunk(k_tiles, lo, hi).reshape(m, c + 1, block))  # (m, S, T*K*A)
            st = sims.stride()
            groups = sims.as_strided((m, s, n_ctx, n_groups, group),
                                     (st[0], st[1] + side, rows * side, group, 1))
            best = groups.amax(dim=-1).reshape(m, s, n_ctx * n_groups).topk(p.topk, dim=-1).indices
            starts = torch.gather(group_start.expand(m, -1, -1), 2, best)  # (m, S, k)
            flat = (starts[..., None] + in_group).reshape(m, s, p.topk * group)
            candidates = torch.gather(sims.view(m, -1), 1, flat.view(m, -1)).view(m, s, -1)
            values, index = candidates.topk(p.topk, dim=-1)  # (m, S, k)
            weights = torch.softmax(values / p.temperature, dim=-1)
            cell = torch.gather(flat, 2, index) - query_offset  # (t, r, col) of one tile's T x K x A key cells
            t_idx, r_idx, col = cell // (rows * side), (cell // side) % rows, cell % side
            where = t_idx * padded_h * padded_w + r_idx * padded_w + col + tile_origin[lo:hi]
            picked = label_map[:, where.reshape(-1)].view(n_lab, m, s, p.topk)
            out[lo:hi] = (picked * weights[None]).sum(-1).transpose(0, 1)
        grid = out.view(nh, w, n_lab, s).permute(2, 0, 3, 1).reshape(n_lab, nh * s, w)
        return grid[:, :h].contiguous()


def soft_to_mask(label: torch.Tensor, height: int, width: int, stride: int = STRIDE) -> np.ndarray:
    """``(2, h, w)`` soft label -> ``(height, width)`` bool foreground: bilinear to the padded frame, crop, argmax."""
    up = F.interpolate(label[None], size=(label.shape[1] * stride, label.shape[2] * stride), mode="bilinear",
                       align_corners=False)[0, :, :height, :width]
    return (up[1] > up[0]).numpy()


def propagate_masks(frames: np.ndarray, first_mask: np.ndarray, extractor: FeatureExtractor,
                    params: PropagationParams = PropagationParams()) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(t, predicted mask)`` for t = 1 .. T-1 of frames ``(T, H, W, 3)`` uint8 RGB, from ``first_mask``."""
    propagator = WindowedPropagator(params)
    height, width = frames.shape[1:3]
    extractor.reset()
    first = (extractor(pad_to_stride(frames[0], params.stride)), first_frame_label(first_mask, params.stride))
    recent: deque[tuple[torch.Tensor, torch.Tensor]] = deque(maxlen=params.n_context)
    for t in range(1, len(frames)):
        query = extractor(pad_to_stride(frames[t], params.stride))
        context = [first, *recent]
        keys = torch.stack([f for f, _ in context])
        labels = torch.stack([lab for _, lab in context])
        label = propagator(query, keys, labels)
        recent.append((query, label))
        yield t, soft_to_mask(label, height, width, params.stride)


def evaluate_sequence(sequence: DavisSequence, extractor: FeatureExtractor,
                      params: PropagationParams = PropagationParams()) -> dict:
    """J, F and J&F (means over frames 1 .. T-1) of propagating the first mask through ``sequence``."""
    start = time.perf_counter()
    j_values, f_values = [], []
    for t, mask in propagate_masks(sequence.frames, sequence.masks[0], extractor, params):
        j_values.append(region_similarity(mask, sequence.masks[t]))
        f_values.append(boundary_f_measure(mask, sequence.masks[t]))
    j, f = float(np.mean(j_values)), float(np.mean(f_values))
    return {"J": j, "F": f, "JF": (j + f) / 2.0, "frames": len(sequence), "seconds": time.perf_counter() - start,
            "J_per_frame": j_values, "F_per_frame": f_values}


def run_benchmark(root: str, sequences: Sequence[str], methods: Mapping[str, FeatureExtractor],
                  params: PropagationParams = PropagationParams(), max_frames: int = 0,
                  log: Callable[[str], None] = print) -> dict:
    """Every method on every sequence. Returns ``{name: {J, F, JF, seconds, per_sequence: {seq: {...}}}}`` with the
    method's J, F and J&F the means over sequences."""
    results: dict[str, dict] = {name: {"per_sequence": {}} for name in methods}
    for seq_name in sequences:
        sequence = load_sequence(root, seq_name, max_frames)
        for name, extractor in methods.items():
            scores = evaluate_sequence(sequence, extractor, params)
            results[name]["per_sequence"][seq_name] = scores
            log(f"[eval propagate] {name:>12s} {seq_name}: J {scores['J']:.3f} F {scores['F']:.3f} "
                f"J&F {scores['JF']:.3f} ({scores['frames']} frames, {scores['seconds']:.1f} s)")
    for name, entry in results.items():
        per_seq = entry["per_sequence"].values()
        for key in ("J", "F", "JF"):
            entry[key] = float(np.mean([s[key] for s in per_seq]))
        entry["seconds"] = float(sum(s["seconds"] for s in per_seq))
    return results
