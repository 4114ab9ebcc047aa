"""Grouping foreground cells of the stride-8 grid into object instances.

Two steps, both on the grid:
- :func:`grid_components`: 4-connected components of the foreground mask, where two neighbours join only if their
  features have cosine similarity above a threshold (feature-gated connected components, in the spirit of
  graph-based segmentation, Felzenszwalb and Huttenlocher, IJCV 2004).
- :func:`split_by_appearance`: touching objects form one component; each component is split in two by 2-means
  on its cell features (initialised deterministically by the sign of the first principal component) and the split
  is kept only when both halves are spatially coherent (their largest 4-connected piece holds at least
  ``coherence`` of their cells). A single textured object splits into interleaved, incoherent halves and stays
  whole; two touching objects of different appearance split into two blobs. Applied recursively.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import label as connected_label
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components


def grid_components(mask: np.ndarray, features: np.ndarray | None = None, min_similarity: float = -1.0) -> np.ndarray:
    """Labels ``(h, w)`` int64 (-1 background, else 0..n-1) of the 4-connected components of ``mask``; neighbours
    whose ``features`` ``(h, w, k)`` have cosine similarity below ``min_similarity`` are not joined."""
    h, w = mask.shape
    if features is None or min_similarity <= -1.0:
        labels, _ = connected_label(mask)
        return labels.astype(np.int64) - 1
    index = np.arange(h * w).reshape(h, w)
    rows, cols = [], []
    for fa, fb in (
        ((slice(None), slice(None, -1)), (slice(None), slice(1, None))),
        ((slice(None, -1), slice(None)), (slice(1, None), slice(None))),
    ):
        u, v = features[fa], features[fb]
        cos = (u * v).sum(-1) / (np.linalg.norm(u, axis=-1) * np.linalg.norm(v, axis=-1) + 1e-6)
        join = mask[fa] & mask[fb] & (cos >= min_similarity)
        rows.append(index[fa][join])
        cols.append(index[fb][join])
    r, c = np.concatenate(rows), np.concatenate(cols)
    graph = coo_matrix((np.ones(r.size, np.int8), (r, c)), shape=(h * w, h * w))
    _, labels = connected_components(graph, directed=False)
    fg_labels = np.unique(labels.reshape(h, w)[mask])
    lookup = np.full(h * w, -1, np.int64)
    lookup[fg_labels] = np.arange(fg_labels.size)
    return lookup[labels].reshape(h, w)


def two_means(x: np.ndarray, iterations: int = 8) -> np.ndarray:
    """Deterministic 2-means of rows of ``x`` (n, k): start from the sign of the first principal component."""
    centred = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    assign = (centred @ vt[0]) > 0
    for _ in range(iterations):
        if assign.all() or not assign.any():
            break
        c1, c0 = x[assign].mean(axis=0), x[~assign].mean(axis=0)
        new = ((x - c1) ** 2).sum(1) < ((x - c0) ** 2).sum(1)
        if np.array_equal(new, assign):
            break
        assign = new
    return assign


def _largest_piece(cells: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Boolean selector of the cells (rows of ``cells`` (n, 2) y, x) in their largest 4-connected piece.

    Labelled on the cells' bounding box only (no other cell of the set lies outside it, so the pieces are those of
    the whole grid): a fraction of the grid for an object."""
    if len(cells) == 0:
        return np.ones(0, bool)
    low = cells.min(axis=0)
    local = cells - low
    grid = np.zeros(tuple(local.max(axis=0) + 1), bool)
    grid[local[:, 0], local[:, 1]] = True
    pieces, count = connected_label(grid)
    if count <= 1:
        return np.ones(len(cells), bool)
    ids = pieces[local[:, 0], local[:, 1]]
    return ids == np.bincount(ids).argmax()


def _split(cells: np.ndarray, feats: np.ndarray, shape: tuple[int, int], min_cells: int, coherence: float,
           depth: int) -> list[np.ndarray]:
    if depth <= 0 or len(cells) < 2 * min_cells:
        return [cells]
    assign = two_means(feats)
    parts = []
    for side in (assign, ~assign):
        if side.sum() < min_cells:
            return [cells]
        keep = _largest_piece(cells[side], shape)
        if keep.mean() < coherence:
            return [cells]
        parts.append((cells[side][keep], feats[side][keep]))
    out: list[np.ndarray] = []
    for part_cells, part_feats in parts:
        out.extend(_split(part_cells, part_feats, shape, min_cells, coherence, depth - 1))
    return out


def split_by_appearance(labels: np.ndarray, features: np.ndarray, min_cells: int = 6, coherence: float = 0.7,
                        max_depth: int = 2) -> np.ndarray:
    """Relabel ``labels`` (h, w) so that components made of differently looking, spatially separate parts become
    separate instances (up to ``2 ** max_depth`` parts each). Cells dropped as incoherent strays become -1."""
    h, w = labels.shape
    out = np.full((h, w), -1, np.int64)
    next_id = 0
    count = int(labels.max()) + 1 if labels.size else 0
    if count == 0:
        return out
    ys_all, xs_all = np.nonzero(labels >= 0)  # row-major, as np.nonzero(labels == comp) lists each component
    comp_of = labels[ys_all, xs_all]
    order = np.argsort(comp_of, kind="stable")  # grouped by component, row-major within each
    bounds = np.searchsorted(comp_of[order], np.arange(count + 1))
    for comp in range(count):
        pick = order[bounds[comp]:bounds[comp + 1]]
        ys, xs = ys_all[pick], xs_all[pick]
        cells = np.stack([ys, xs], axis=1)
        for part in _split(cells, features[ys, xs].astype(np.float64), (h, w), min_cells, coherence, max_depth):
            out[part[:, 0], part[:, 1]] = next_id
            next_id += 1
    return out
